//! 1-exitstatus: a child's exit status is a small result it hands to its parent.
//!
//! Mirrors `testexit_fork.py` (*Programming Python*, the book of seeds 000 and
//! 003): fork; the child prints `Hello from child <pid> <n>` and exits with status
//! `n`; the parent waits and prints `Parent got <pid> <status> <status >> 8>`, then
//! reads a line and stops on `q`. `n` is the child's copy of a counter the parent
//! never changes: after `fork` the two processes share no memory, so it is 1 every
//! time.
//!
//! Then it decodes the raw wait status on stderr as C does (`WIFEXITED`,
//! `WEXITSTATUS`, `WIFSIGNALED`, `WTERMSIG`, `WCOREDUMP`), with the `$?` a shell
//! would show: the exit code, or 128 + n for a child killed by signal n.
//!
//! Usage: 1-exitstatus [--count N] [--status CODE | --signal SIG]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 1-exitstatus       # Enter: again; q: stop
//!     cargo run -p simple-ipc --bin 1-exitstatus -- --count 2
//!     cargo run -p simple-ipc --bin 1-exitstatus -- --count 1 --status 255
//!     cargo run -p simple-ipc --bin 1-exitstatus -- --count 1 --signal KILL
//!
//! Where this differs from the document, on purpose: `--count` ends it without a
//! terminal; end of input stops it like `q` (Python's `input()` raises `EOFError`);
//! the decoding lines; a child killed by a signal can be asked for; the child's
//! core-dump limit is 0, so a `--signal ABRT` child leaves no core file behind.

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, Failure, note, signal_name};
use nix::poll::PollFlags;
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigHandler, Signal, raise, signal};
use nix::unistd::{ForkResult, Pid, fork, getpid, read};
use simple_ipc::{
    Ended, Outcome, Stop, child_defaults, exit_child, lesson_main, reap,
};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

const PROGRAM: &str = "1-exitstatus";

struct Options {
    /// `None`: like the document, another child for each line that is not `q`.
    count: Option<u32>,
    /// The child's exit status; `None`: its copy of the counter (always 1).
    status: Option<u8>,
    /// A signal the child sends itself instead of exiting.
    signal: Option<Signal>,
}

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, run)
}

// ANCHOR: run
fn run(options: &Options) -> Outcome {
    let stop = Stop::install()?;
    let mut input = Lines::default();
    // The document's global: each child adds 1 to *its own copy*; ours stays 0.
    let mut exitstat: u8 = 0;
    if options.count.is_none() {
        note!("{PROGRAM}: Enter starts another child; q (or Ctrl-D) stops");
    }
    let mut rounds = 0;
    loop {
        let child = spawn_child(&mut exitstat, options)?;
        let status = reap(child, &stop)?; // the raw int that waitpid(2) fills in
        let mut out = io::stdout().lock();
        writeln!(out, "Parent got {child} {status} {}", status >> 8)
            .and_then(|()| out.flush())
            .context("write stdout")?;
        note!("{}", decode(status));
        rounds += 1;
        match options.count {
            Some(count) if rounds >= count => break,
            Some(_) => continue,
            None => {}
        }
        match input.next_line(&stop)? {
            Some(line) if line.trim() != "q" => continue,
            _ => break, // `q`, or the end of the input
        }
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: child
/// Forks one child, which prints its line and ends with its status (or its signal).
fn spawn_child(exitstat: &mut u8, options: &Options) -> Result<Pid, Failure> {
    let parent = getpid();
    // Anything left in our stdout buffer would be copied and printed twice.
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: this process is single-threaded (Stop::install starts no thread), so
    // the child is a complete copy and may run ordinary code; it ends with _exit
    // and never returns into the parent's code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            child_defaults(parent);
            // The child's copy of the memory: the parent never sees this.
            *exitstat += 1;
            let mut out = io::stdout().lock();
            let said = writeln!(out, "Hello from child {} {exitstat}", getpid())
                .and_then(|()| out.flush());
            if let Err(err) = said {
                note!("{PROGRAM}: child: write stdout: {err}");
                exit_child(lesson_kit::exit::RUNTIME);
            }
            if let Some(sig) = options.signal {
                // No core file: this lesson leaves nothing behind.
                let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
                // SAFETY: SIG_DFL installs no handler; the default action ends us.
                let _ = unsafe { signal(sig, SigHandler::SigDfl) };
                let _ = raise(sig);
            }
            exit_child(options.status.unwrap_or(*exitstat)) // os._exit(exitstat)
        }
    }
}
// ANCHOR_END: child

// ANCHOR: decode
/// What the raw status holds (read with the C macros), and a shell's `$?`.
fn decode(status: i32) -> String {
    let raw = format!("  status {status} = {status:#06x}:");
    if libc::WIFEXITED(status) {
        // The exit code is in bits 8..15: hence the document's `status >> 8`.
        let code = libc::WEXITSTATUS(status);
        format!(
            "{raw} WIFEXITED, WEXITSTATUS {code} (a shell's $? would be {code})"
        )
    } else if libc::WIFSIGNALED(status) {
        // The signal number is in bits 0..6; bit 7 says whether a core was dumped.
        let signo = libc::WTERMSIG(status);
        let core = if libc::WCOREDUMP(status) {
            "WCOREDUMP"
        } else {
            "no core dump"
        };
        format!(
            "{raw} WIFSIGNALED, WTERMSIG {signo} ({}), {core} \
             (a shell's $? would be {})",
            signal_name(signo),
            128 + signo
        )
    } else {
        format!("{raw} neither exited nor killed")
    }
}
// ANCHOR_END: decode

/// Lines from stdin, read with `poll`, so that Ctrl-C is seen while we wait.
#[derive(Default)]
struct Lines {
    pending: Vec<u8>,
    eof: bool,
}

impl Lines {
    /// The next line (without its newline), or `None` at the end of the input.
    fn next_line(&mut self, stop: &Stop) -> Result<Option<String>, Ended> {
        loop {
            if let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(Some(
                    String::from_utf8_lossy(&line[..end]).into_owned(),
                ));
            }
            if self.eof {
                return Ok(None); // a last line without a newline is not a command
            }
            let stdin = io::stdin();
            let events = PollFlags::POLLIN; // POLLHUP comes unasked
            if stop
                .wait_for(Some((stdin.as_fd(), events)), Duration::from_secs(1))?
            {
                let mut chunk = [0u8; 1024];
                let n = read(stdin.as_fd(), &mut chunk).context("read stdin")?;
                self.eof = n == 0;
                self.pending.extend_from_slice(&chunk[..n]);
                if self.pending.len() > 64 * 1024 {
                    return Err(
                        Failure::new("read stdin", "a line over 64 KiB").into()
                    );
                }
            }
        }
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        count: None,
        status: None,
        signal: None,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--count" => {
                options.count = Some(parser.value_in(&arg, 1..=1_000_000)?)
            }
            "--status" => {
                // Parsed as u16, so that 256 is "out of range", not "too large".
                let code: u16 = parser.value_in(&arg, 0..=255)?;
                options.status = Some(u8::try_from(code).unwrap_or(u8::MAX));
            }
            "--signal" => {
                options.signal = Some(parse_signal(&parser.value::<String>(&arg)?)?)
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if options.status.is_some() && options.signal.is_some() {
        return Err(UsageError(
            "--status and --signal exclude each other: a child exits or is killed"
                .to_owned(),
        ));
    }
    Ok(Some(options))
}

/// `KILL`, `SIGKILL` or `9`; only signals whose default action ends the process.
fn parse_signal(text: &str) -> Result<Signal, UsageError> {
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    let signal = match text.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => name.parse::<Signal>().ok(),
    }
    .ok_or_else(|| UsageError(format!("--signal {text:?}: no such signal")))?;
    use Signal::*;
    if matches!(
        signal,
        SIGCHLD
            | SIGCONT
            | SIGURG
            | SIGWINCH
            | SIGSTOP
            | SIGTSTP
            | SIGTTIN
            | SIGTTOU
    ) {
        return Err(UsageError(format!(
            "--signal {text:?}: {signal} does not end a process by default"
        )));
    }
    Ok(signal)
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--status CODE | --signal SIG]

Forks a child that prints `Hello from child <pid> <n>` and exits with status n; the
parent waits and prints `Parent got <pid> <status> <status >> 8>`, then decodes the
raw status on stderr (the documents' testexit_fork.py). Without --count it reads a
line after each child, and stops on `q` or at the end of the input.

Options:
  --count N        fork N children, 1 to 1000000, without reading stdin
  --status CODE    the child exits with CODE, 0 to 255 (default: its counter, 1)
  --signal SIG     the child kills itself with SIG (KILL, 9, SIGTERM...)
  -h, --help       print this help

Exit status: 0 done (whatever the children's statuses); 1 a system call failed;
2 bad command line; 128+n stopped by signal n (SIGINT, SIGTERM, SIGHUP).
"
    )
}
