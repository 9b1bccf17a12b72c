//! bidir-child: the program `bidir-spawn` execs, the documents'
//! `pipes_test_child.py`.
//!
//! Says on stderr which argument it got, then twice: waits 3 s, reads a line from
//! its stdin, waits 3 s, and answers `Child <pid> got: [<line>]` on its stdout,
//! flushing each answer as pipes_test_child.py does. It knows nothing about pipes:
//! `bidir-spawn` gives it a pipe as stdin and another as stdout; run by hand, it
//! talks to the terminal.
//!
//! Usage: bidir-child [--speed X] [--no-flush] [--show-fds] ARG
//!
//! Try it:
//!     cargo run -p bidir-spawn -- --speed 10   # bidir-spawn runs it for you
//!     printf 'a\nb\n' | cargo run -p bidir-spawn --bin bidir-child -- spam
//!     cargo run -p bidir-spawn --bin bidir-child -- spam   # then type two lines
//!     echo | cargo run -p bidir-spawn --bin bidir-child -- --show-fds spam
//!
//! Where this differs from pipes_test_child.py, on purpose: its replies go through
//! a `BufWriter`, a block buffer like the one Python gives a program whose stdout
//! is a pipe (Rust's own `Stdout` flushes at every newline, which would hide the
//! deadlock); `--no-flush` removes the flush (DELIBERATELY BROKEN: the flush
//! deadlock); EOF before a line and a line longer than 64 KiB are reported (exit 1)
//! instead of a traceback.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::SPEED_RANGE;
use lesson_kit::{Context, Failure, fds, note};
use nix::unistd::{getpid, getppid};
use std::io::{self, BufRead, BufWriter, Read, Write};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

const PROGRAM: &str = "bidir-child";

/// pipes_test_child.py sleeps 3 s before reading a line and 3 s before replying.
const WAIT_SECS: f64 = 3.0;

/// The longest line it reads (without the newline): a parent cannot make it grow
/// without bound.
const MAX_LINE: usize = 64 * 1024;

struct Options {
    speed: f64,
    flush: bool,
    /// Print this program's descriptor table as exec left it (stderr).
    show_fds: bool,
    arg: String,
}

fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    if options.show_fds {
        // Same pid as the child that bidir-spawn forked: exec keeps the process and
        // its descriptors, except those marked close-on-exec.
        fds::show(PROGRAM, "after exec");
    }
    let me = getpid();
    match converse(me, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            note!("Child {me}: {failure}");
            ExitCode::FAILURE
        }
    }
}

// ANCHOR: child_program
/// pipes_test_child.py's main(): report the argument, then twice: wait, read a
/// line, wait, reply.
fn converse(me: nix::unistd::Pid, options: &Options) -> Result<(), Failure> {
    note!("Child {me} of {} got arg: \"{}\"", getppid(), options.arg);
    let wait = Duration::from_secs_f64(WAIT_SECS / options.speed);
    let mut stdin = io::stdin().lock();
    // A block buffer of our own, as C stdio and Python give any program whose
    // stdout is a pipe. Rust's Stdout flushes at every newline today, which would
    // hide the document's deadlock; through BufWriter a reply waits for flush() as
    // Python's does.
    let mut stdout = BufWriter::new(io::stdout().lock());
    for _ in 0..2 {
        sleep(wait);
        let line = read_line(&mut stdin)?;
        sleep(wait);
        writeln!(stdout, "Child {me} got: [{line}]").context("write stdout")?;
        if options.flush {
            stdout.flush().context("write stdout")?; // sys.stdout.flush()
        }
        // DELIBERATELY BROKEN with --no-flush: the reply stays in our buffer. The
        // parent waits for it; we wait for the parent's next line: neither moves
        // again.
    }
    drop(stdout); // what --no-flush left in the buffer goes out now, at the end
    Ok(())
}
// ANCHOR_END: child_program

/// One line from stdin, without its newline, at most [`MAX_LINE`] bytes.
fn read_line(stdin: &mut impl BufRead) -> Result<String, Failure> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1; // and its newline
    let n = stdin
        .take(limit)
        .read_until(b'\n', &mut line)
        .context("read stdin")?;
    if n == 0 {
        return Err(Failure::new(
            "read stdin",
            "EOF: the parent closed the pipe",
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_LINE {
        let why = format!("a line longer than {MAX_LINE} bytes");
        return Err(Failure::new("read stdin", why));
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut speed = 1.0;
    let mut flush = true;
    let mut show_fds = false;
    let mut args = Vec::new();
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--speed" => speed = parser.value_in(&arg, SPEED_RANGE)?,
            "--no-flush" => flush = false,
            "--show-fds" => show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ if parser.options_ended() || !arg.starts_with('-') || arg == "-" => {
                args.push(arg);
            }
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    let [arg] = <[String; 1]>::try_from(args)
        .map_err(|_| UsageError("takes exactly one argument, ARG".to_owned()))?;
    Ok(Some(Options {
        speed,
        flush,
        show_fds,
        arg,
    }))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--speed X] [--no-flush] [--show-fds] ARG

The child program of bidir-spawn (the documents' pipes_test_child.py). Says on
stderr `Child <pid> of <ppid> got arg: \"ARG\"`, then twice: waits 3 s, reads a
line from stdin, waits 3 s and answers `Child <pid> got: [<line>]` on stdout,
flushed.

Options:
  --speed X    make the 3 s waits X times shorter, 0.001 to 1000000 (default 1)
  --no-flush   DELIBERATELY BROKEN: do not flush the replies (the flush deadlock)
  --show-fds   print its descriptor table on stderr first, as exec left it
  -h, --help   print this help

Exit status: 0 both lines answered; 1 EOF before a line, a line longer than 64 KiB,
or a failed write; 2 bad command line.
"
    )
}
