//! fifo-reader: receives messages from a named pipe (FIFO) and prints them.
//!
//! Mirrors `read_from_named_pipe.py` from the documents: make the FIFO `my_pipe` if it does
//! not exist, open it for reading, read, print
//! `I pid [<reader pid>] received a message => Hello <writer pid>`, close.
//!
//! Usage: fifo-reader [PATH] [--messages N] [--wait SECS] [--keep]
//!
//! Try it, in two terminals, in either order:
//!     cargo run -p named-fifo --bin fifo-reader
//!     cargo run -p named-fifo --bin fifo-writer
//!
//! Where this differs from the document, on purpose: the original reads at most 22 bytes
//! once, so a longer message would be cut; this reader reads until EOF (every writer has
//! closed the FIFO), one message per line, and the last one without a newline too. Waiting
//! can be bounded (`--wait`) and is always interruptible; a path that is not a FIFO is
//! refused; the FIFO is removed by whichever program made it (unless `--keep`).

use lesson_kit::args::{Parser, Positive, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit};
use named_fifo::{
    COMMON_HELP, DEFAULT_PATH, Fifo, WaitError, stop_on_signals, wait_for,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;
use nix::unistd::{getpid, read};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "fifo-reader";

/// The longest message accepted: a writer that never sends a newline cannot make us
/// buffer without end.
const MAX_MESSAGE: usize = 1 << 20;

struct Options {
    path: PathBuf,
    /// Stop after this many messages, holding the FIFO open for writing meanwhile.
    messages: Option<u64>,
    wait: Option<Duration>,
    keep: bool,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    stop_on_signals()?;
    let deadline = options.wait.map(|wait| Instant::now() + wait);

    // Make the FIFO, or find it (the writer may have made it). Dropping `fifo` removes it
    // if we made it, on every way out of main.
    let fifo = Fifo::make_or_find(&options.path, options.keep)?;

    // ANCHOR: open
    // A blocking open(O_RDONLY) would wait here for a writer, deaf to Ctrl-C. Non-blocking,
    // it succeeds at once; we then wait for the first data with poll, a slice at a time.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fifo_fd = open(&fifo.path, flags, Mode::empty())
        .context(format!("open {}", fifo.path.display()))?;
    fifo.check_opened(&fifo_fd)?;
    // ANCHOR_END: open

    // ANCHOR: hold
    // With --messages N, several writers may come one after another. Between two of them no
    // writer has the FIFO open, and a reader would see EOF. Holding a write end ourselves
    // (a reader is already there, so this open cannot fail with ENXIO) means EOF never comes;
    // we stop after N messages instead.
    let _hold = match options.messages {
        Some(_) => Some(
            open(
                &fifo.path,
                OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .context(format!("open {} for writing too", fifo.path.display()))?,
        ),
        None => None,
    };
    // ANCHOR_END: hold

    // Wait for the first data, within --wait if given.
    match wait_for(&fifo_fd, PollFlags::POLLIN, deadline) {
        Ok(()) => {}
        Err(WaitError::Gave(gave)) => {
            eprintln!("{PROGRAM}: {}", gave.describe("writer", options.wait));
            return Ok(ExitCode::from(gave.exit_code()));
        }
        Err(WaitError::Failed(failure)) => return Err(failure),
    }

    let received = receive(&fifo_fd, &fifo, options.messages)?;
    let code = report(&fifo, &received, options.messages);
    drop(fifo_fd); // close our read end; then `fifo` is dropped, removing it if we made it
    Ok(ExitCode::from(code))
}
// ANCHOR_END: main

/// What arrived.
struct Received {
    messages: u64,
    bytes: u64,
    /// Why reading stopped, if not EOF or the expected count.
    stopped: Option<String>,
}

// ANCHOR: receive
/// Reads until EOF (or N messages) and prints one line per message.
///
/// The document does `os.read(fd, 22)`: one read of at most 22 bytes. `Hello <pid>` is 11
/// to 13 bytes, so it fits, but a longer message would be cut, and nothing in the FIFO says
/// where a message ends. Here a message ends at a newline, or at EOF, which comes when every
/// writer has closed the FIFO.
fn receive(
    fd: &OwnedFd,
    fifo: &Fifo,
    expected: Option<u64>,
) -> Result<Received, Failure> {
    let me = getpid();
    let mut stdout = io::stdout().lock();
    let mut received = Received {
        messages: 0,
        bytes: 0,
        stopped: None,
    };
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if expected.is_some_and(|n| received.messages >= n) {
            return Ok(received);
        }
        let n = match read(fd, &mut chunk) {
            Ok(n) => n,
            // Non-blocking: nothing there yet. Wait for data or for the last writer to close.
            Err(Errno::EAGAIN) => match wait_for(fd, PollFlags::POLLIN, None) {
                Ok(()) => continue,
                Err(WaitError::Gave(gave)) => {
                    received.stopped = Some(gave.describe("more data", None));
                    return Ok(received);
                }
                Err(WaitError::Failed(failure)) => return Err(failure),
            },
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(errno).context(format!("read {}", fifo.path.display()));
            }
        };
        received.bytes += n as u64;
        if n == 0 {
            // EOF: no writer has the FIFO open. What is left is the last message.
            if !pending.is_empty() {
                print_message(&mut stdout, me, &pending)?;
                received.messages += 1;
            }
            return Ok(received);
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            print_message(&mut stdout, me, &line[..end])?;
            received.messages += 1;
        }
        if pending.len() > MAX_MESSAGE {
            let why = format!("a message is longer than {MAX_MESSAGE} bytes");
            return Err(Failure::new(format!("read {}", fifo.path.display()), why));
        }
    }
}
// ANCHOR_END: receive

fn print_message(
    stdout: &mut impl Write,
    me: nix::unistd::Pid,
    message: &[u8],
) -> Result<(), Failure> {
    let text = String::from_utf8_lossy(message);
    writeln!(stdout, "I pid [{me}] received a message => {text}")
        .context("write stdout")
}

/// Says on stderr what arrived and why reading stopped; returns the exit code.
fn report(fifo: &Fifo, received: &Received, expected: Option<u64>) -> u8 {
    let path = fifo.path.display();
    let plural =
        |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let what = format!(
        "{}, {}",
        plural(received.messages, "message"),
        plural(received.bytes, "byte")
    );
    match (&received.stopped, expected) {
        (Some(why), _) => {
            eprintln!("{PROGRAM}: {why}; received {what}");
            named_fifo::Gave::Interrupted.exit_code()
        }
        (None, Some(n)) if received.messages < n => {
            eprintln!("{PROGRAM}: {path}: EOF after {what}, expected {n} messages");
            exit::RUNTIME
        }
        (None, Some(_)) => {
            eprintln!("{PROGRAM}: {path}: received {what}");
            exit::OK
        }
        (None, None) => {
            eprintln!(
                "{PROGRAM}: {path}: EOF, every writer has closed it; received {what}"
            );
            exit::OK
        }
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        path: PathBuf::from(DEFAULT_PATH),
        messages: None,
        wait: None,
        keep: false,
    };
    let mut path = None;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--messages" => options.messages = Some(parser.value(&arg)?),
            "--wait" => {
                options.wait =
                    Some(Duration::from_secs_f64(parser.value::<Positive>(&arg)?.0))
            }
            "--keep" => options.keep = true,
            "-h" | "--help" => return Ok(None),
            _ if path.is_none()
                && (parser.options_ended() || !arg.starts_with('-')) =>
            {
                path = Some(PathBuf::from(arg));
            }
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if let Some(path) = path {
        options.path = path;
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [PATH] [--messages N] [--wait SECS] [--keep]

Makes the FIFO PATH (default {DEFAULT_PATH}) if it is missing, waits for a writer, and
prints every message it receives as `I pid [<pid>] received a message => <message>`
until EOF (the documents' read_from_named_pipe.py). Run fifo-writer in another
terminal, before or after.

Options:
  --messages N  stop after N messages; meanwhile hold the FIFO open for writing too, so
                a gap between two writers is not taken for the end
{COMMON_HELP}

Exit status: 0 read until EOF (or N messages); 1 a system call failed, PATH is not a
FIFO, or EOF came before N messages; 2 bad command line; 3 --wait ran out;
130 / 143 stopped by SIGINT / SIGTERM.
"
    )
}
