//! fdopen-lines: newline-framed messages through a pipe, read one line at a time.
//!
//! Mirrors `pipe_2.py` from the documents: like pipe_1 (the `anon-pipe` lesson), but the
//! child ends every message with `\n`, each process closes the pipe end it does not use, and
//! the parent wraps its read end in a buffered reader and reads whole lines. It prints
//! `Parent <pid> got [Spam 0] at <time>`: text now, not bytes.
//!
//! Usage: fdopen-lines [--count N] [--speed X] [--hello] [--from-stdin] [--max-line BYTES]
//!
//! Try it:
//!     cargo run -p fdopen-lines                          # the document's run: Ctrl-C to stop
//!     cargo run -p fdopen-lines -- --count 5 --speed 20
//!     cargo run -p fdopen-lines -- --hello --count 3     # seed 004's "how are you" variant
//!     printf 'one\ntwo' | cargo run -p fdopen-lines -- --from-stdin
//!
//! Where this differs from the document, on purpose:
//! - at EOF the original's `readline()` returns an empty string forever, so it prints
//!   `got []` in a busy loop once the child is gone; here EOF ends the loop, and the parent
//!   reaps the child and reports how it ended;
//! - a last line without a newline is delivered whole (the original's `[:-1]` cuts its last
//!   character); a line that is not UTF-8, or longer than `--max-line`, is a clear error,
//!   never unbounded memory.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::time_str;
use lesson_kit::{Context, Failure, describe_wait, exit, exited_ok};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, getpid, pipe2};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::thread::sleep;

const PROGRAM: &str = "fdopen-lines";

/// The longest line the parent accepts, unless `--max-line` says otherwise. A reader that
/// waits for a newline must stop somewhere, or a writer that never sends one could make it
/// buffer without end.
const DEFAULT_MAX_LINE: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Sender {
    /// pipe_2: `Spam <n>\n` on the 0, 1, 2, 3, 4 s cadence.
    Spam,
    /// seed 004's variant: `how are you\n` every second, with greetings on stdout.
    Hello,
    /// The child copies its stdin into the pipe, byte for byte: any input you like.
    Stdin,
}

struct Options {
    pacing: Pacing,
    sender: Sender,
    max_line: usize,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;

    io::stdout().flush().context("flush stdout")?; // or the child prints it again
    // SAFETY: this process is single-threaded (nothing above starts a thread), so the child
    // is a complete copy of it and may run ordinary Rust code, allocation included.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // ANCHOR: child_close
            // The child only writes. It closes its copy of the read end at once: then, if
            // the parent dies, no read end is left anywhere and our next write fails with
            // EPIPE, instead of filling a pipe that nobody will ever read.
            drop(read_end);
            // ANCHOR_END: child_close
            child(write_end, &options) // never returns
        }
        ForkResult::Parent { child } => child,
    };

    // ANCHOR: parent_close
    // The parent only reads. It closes its copy of the write end at once: a reader sees EOF
    // only when every write end is closed, and this one would keep the pipe open forever.
    drop(write_end);
    // ANCHOR_END: parent_close
    eprintln!(
        "Parent {} forked child {child} (stop it with: kill {child})",
        getpid()
    );
    if options.sender == Sender::Hello {
        println!("hello from parent {} {child}", getpid());
    }

    // ANCHOR: fdopen
    // Python's os.fdopen(fd): a file object that owns the descriptor. In Rust, File takes
    // ownership of the OwnedFd (and closes it when dropped); BufReader adds the buffer that
    // lets us ask for "everything up to the next newline".
    let pipe = BufReader::new(File::from(read_end));
    // ANCHOR_END: fdopen
    let reading = parent(pipe, &options);

    // Stop the child if we stopped reading early; reap it in any case.
    if reading.is_err() {
        let _ = kill(child, Signal::SIGTERM); // it may be gone already
    }
    let status = waitpid(child, None).context(format!("waitpid child {child}"))?;
    eprintln!(
        "Parent {}: child {child} {}",
        getpid(),
        describe_wait(status)
    );
    reading?;
    Ok(ExitCode::from(if exited_ok(status) {
        exit::OK
    } else {
        exit::RUNTIME
    }))
}
// ANCHOR_END: main

// ANCHOR: parent
/// The parent's loop: one line per message until EOF. Dropping `pipe` on return closes the
/// read end, so a child still writing gets EPIPE.
fn parent(mut pipe: BufReader<File>, options: &Options) -> Result<(), Failure> {
    let me = getpid();
    let mut stdout = io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        // readline(): read_until returns once it has a '\n', or when the pipe reaches EOF.
        // `take` bounds it: at most max_line bytes and the newline.
        let limit = options.max_line as u64 + 1;
        let n = (&mut pipe)
            .take(limit)
            .read_until(b'\n', &mut line)
            .context("read pipe")?;
        if n == 0 {
            // EOF: no write end is left open, so the child is done. The document's readline()
            // returns '' here, again and again: that is its `got []` busy loop.
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop(); // the document's [:-1], applied only to a real newline
        } else if line.len() > options.max_line {
            let why = format!(
                "a line is longer than {} bytes (--max-line)",
                options.max_line
            );
            return Err(Failure::new("read pipe", why));
        } // else: the last line, cut short by EOF; it is delivered as it is
        let text = std::str::from_utf8(&line).map_err(|err| {
            Failure::new("read pipe", format!("a line is not UTF-8 ({err})"))
        })?;
        if options.sender == Sender::Hello {
            writeln!(stdout, "{text}").context("write stdout")?;
        } else {
            writeln!(stdout, "Parent {me} got [{text}] at {}", time_str())
                .context("write stdout")?;
        }
    }
}
// ANCHOR_END: parent

// ANCHOR: child
/// The child's whole life: send, close, `_exit`. It never returns into `main`.
fn child(write_end: OwnedFd, options: &Options) -> ! {
    // File is a thin owner of the descriptor: each write_all below is one write(2) call
    // (or several, if the pipe takes part of a large buffer at a time).
    let mut pipe = File::from(write_end);
    let sent = match options.sender {
        Sender::Spam => options.pacing.spam_beats().try_for_each(|beat| {
            sleep(beat.pause); // no 10 ms gap: the newline does the separating now
            pipe.write_all(format!("Spam {}\n", beat.n).as_bytes())
        }),
        Sender::Hello => greet().and_then(|()| {
            options.pacing.messages().try_for_each(|_| {
                pipe.write_all(b"how are you\n")?;
                sleep(options.pacing.secs(1.0));
                Ok(())
            })
        }),
        Sender::Stdin => io::copy(&mut io::stdin().lock(), &mut pipe).map(drop),
    };
    match sent {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(Errno::EPIPE as i32) => {
            // SIGPIPE is ignored (Rust sets that up before main, and fork keeps it), so a
            // write with no reader left fails with EPIPE rather than killing us silently.
            eprintln!(
                "Child {}: write pipe: EPIPE, the parent is gone; stopping",
                getpid()
            );
            exit_child(exit::RUNTIME);
        }
        Err(err) => {
            eprintln!("Child {}: {err}", getpid());
            exit_child(exit::RUNTIME);
        }
    }
    drop(pipe); // the last write end: the parent's next read returns EOF
    exit_child(exit::OK)
}
// ANCHOR_END: child

/// Seed 004's child greets on stdout, which it shares with the parent.
fn greet() -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "hello from child {}", getpid())?;
    stdout.flush()
}

/// Ends the child at once, without returning into `main` or running the parent's exit work.
fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the calling process; it touches none of our memory and is
    // async-signal-safe, so it is sound in a forked child.
    unsafe { libc::_exit(i32::from(code)) }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        sender: Sender::Spam,
        max_line: DEFAULT_MAX_LINE,
    };
    let mut from_stdin = false;
    let mut hello = false;
    while let Some(arg) = parser.next()? {
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--hello" => hello = true,
            "--from-stdin" => from_stdin = true,
            "--max-line" => {
                options.max_line = parser.value(&arg)?;
                if options.max_line == 0 {
                    return Err(UsageError(
                        "--max-line must be at least 1".to_owned(),
                    ));
                }
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    options.sender = match (hello, from_stdin) {
        (false, false) => Sender::Spam,
        (true, false) => Sender::Hello,
        (false, true) if options.pacing == Pacing::default() => Sender::Stdin,
        (false, true) => {
            let why = "--from-stdin sends stdin as it comes: --count and --speed do not apply";
            return Err(UsageError(why.to_owned()));
        }
        (true, true) => {
            return Err(UsageError(
                "choose one of --hello and --from-stdin".to_owned(),
            ));
        }
    };
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--hello] [--from-stdin] [--max-line BYTES]

A forked child writes `Spam 0\\n`..`Spam 4\\n` into a pipe, pausing 0, 1, 2, 3, 4 s; the
parent reads whole lines through a buffered reader and prints each one
(the documents' pipe_2.py).

Options:
{PACING_HELP}
  --hello           seed 004's variant: both sides greet, then the child sends
                    `how are you` every second and the parent prints each line
  --from-stdin      the child sends its stdin through the pipe instead (try
                    invalid UTF-8, a missing last newline, a huge line)
  --max-line BYTES  refuse lines longer than this (default {DEFAULT_MAX_LINE})
  -h, --help        print this help

Output: `Parent <pid> got [Spam 0] at <time>` on stdout; notes on stderr.
Exit status: 0 the child sent everything and exited 0; 1 a system call failed, a line
was refused, or the child ended badly; 2 bad command line.
"
    )
}
