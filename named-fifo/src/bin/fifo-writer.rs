//! fifo-writer: sends a message through a named pipe (FIFO) to whoever reads it.
//!
//! Mirrors `write_to_named_pipe.py` from the documents: make the FIFO `my_pipe` if it does
//! not exist, open it for writing (which waits until a reader opens it too), write
//! `Hello <pid>`, close. The reader is a separate, unrelated program: `fifo-reader`.
//!
//! Usage: fifo-writer [PATH] [--messages N] [--size BYTES] [--interval SECS]
//!                    [--wait SECS] [--keep]
//!
//! Try it, in two terminals, in either order:
//!     cargo run -p named-fifo --bin fifo-reader
//!     cargo run -p named-fifo --bin fifo-writer
//!
//! Where this differs from the document, on purpose: waiting for the reader can be bounded
//! (`--wait`) and is always interruptible by Ctrl-C; a path that is not a FIFO is refused;
//! a reader that goes away is reported (`EPIPE`); the FIFO is removed by whichever program
//! made it (unless `--keep`); `--messages` streams many records, to show EOF, several
//! writers and atomic writes.

use lesson_kit::args::{Parser, Positive, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit};
use named_fifo::{
    COMMON_HELP, DEFAULT_PATH, Fifo, Gave, WaitError, pause, sleep_until,
    stop_on_signals, wait_for,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;
use nix::unistd::{getpid, write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "fifo-writer";

/// A write of at most this many bytes to a pipe or FIFO is atomic (POSIX PIPE_BUF; 4096 on
/// Linux): it is never interleaved with another writer's data.
const PIPE_BUF: usize = 4096;

struct Options {
    path: PathBuf,
    /// `None`: the document's single message, `Hello <pid>`, with no newline.
    messages: Option<u64>,
    size: Option<usize>,
    interval: Duration,
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

    // Make the FIFO, or find it (the reader may have made it). Dropping `fifo` removes it
    // if we made it, on every way out of main.
    let fifo = Fifo::make_or_find(&options.path, options.keep)?;

    // ANCHOR: open
    // A blocking open(O_WRONLY) would wait here until a reader opens the FIFO, and no
    // Ctrl-C handler could get us out (SA_RESTART). Non-blocking, open fails with ENXIO
    // while there is no reader: try again every 20 ms, until a reader comes, the deadline
    // passes, or Ctrl-C.
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fifo_fd: OwnedFd = loop {
        match open(&fifo.path, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::ENXIO) => {
                if let Err(gave) = pause(deadline) {
                    eprintln!(
                        "{PROGRAM}: {}",
                        gave.describe("reader", options.wait)
                    );
                    return Ok(ExitCode::from(gave.exit_code()));
                }
            }
            Err(errno) => {
                return Err(errno).context(format!("open {}", fifo.path.display()));
            }
        }
    };
    fifo.check_opened(&fifo_fd)?;
    // ANCHOR_END: open

    let me = getpid();
    let Some(count) = options.messages else {
        // ANCHOR: document
        // The document's whole message: `Hello <pid>`, no newline. The reader knows it has
        // all of it when we close the FIFO (EOF), so its length does not matter.
        let message = format!("Hello {me}");
        return Ok(match send(&fifo_fd, message.as_bytes(), &fifo) {
            Ok(()) => ExitCode::SUCCESS,
            Err(Sent::Gone) => {
                eprintln!(
                    "{PROGRAM}: write {}: EPIPE: the reader went away",
                    fifo.path.display()
                );
                ExitCode::from(exit::RUNTIME)
            }
            Err(Sent::Gave(gave)) => {
                eprintln!("{PROGRAM}: {}", gave.describe("room in the FIFO", None));
                ExitCode::from(gave.exit_code())
            }
            Err(Sent::Failed(failure)) => return Err(failure),
        });
        // ANCHOR_END: document
    };

    // ANCHOR: stream
    // --messages N: one record per line, each `Hello <pid> <i>`, padded to --size bytes.
    for i in 0..count {
        let record = record(me.as_raw(), i, options.size);
        match send(&fifo_fd, &record, &fifo) {
            Ok(()) => {}
            Err(Sent::Gone) => {
                eprintln!(
                    "{PROGRAM}: write {}: EPIPE: the reader went away after {i} of {count} messages",
                    fifo.path.display()
                );
                return Ok(ExitCode::from(exit::RUNTIME));
            }
            Err(Sent::Gave(gave)) => {
                eprintln!(
                    "{PROGRAM}: {} after {i} messages",
                    gave.describe("the reader", None)
                );
                return Ok(ExitCode::from(gave.exit_code()));
            }
            Err(Sent::Failed(failure)) => return Err(failure),
        }
        if let Err(gave) = sleep_until(Instant::now() + options.interval) {
            eprintln!(
                "{PROGRAM}: {} after {} messages",
                gave.describe("the next message", None),
                i + 1
            );
            return Ok(ExitCode::from(gave.exit_code()));
        }
    }
    // ANCHOR_END: stream
    drop(fifo_fd); // our write end closes: once every writer has closed, the reader sees EOF
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: main

/// Why a message was not sent.
enum Sent {
    /// EPIPE: no reader has the FIFO open any more.
    Gone,
    Gave(Gave),
    Failed(Failure),
}

// ANCHOR: send
/// Writes all of `bytes`. The descriptor is non-blocking, so a full FIFO gives EAGAIN
/// instead of blocking: wait for room (interruptibly) and try again.
///
/// A record of at most PIPE_BUF bytes goes in whole or not at all, so records from several
/// writers never interleave. A larger one may be written in parts, and other writers'
/// data can land between the parts.
fn send(fd: &OwnedFd, bytes: &[u8], fifo: &Fifo) -> Result<(), Sent> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match write(fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EAGAIN) => match wait_for(fd, PollFlags::POLLOUT, None) {
                Ok(()) => {}
                Err(WaitError::Gave(gave)) => return Err(Sent::Gave(gave)),
                Err(WaitError::Failed(failure)) => {
                    return Err(Sent::Failed(failure));
                }
            },
            // SIGPIPE is ignored in Rust programs, so a write with no reader left fails
            // with EPIPE instead of killing us.
            Err(Errno::EPIPE) => return Err(Sent::Gone),
            Err(Errno::EINTR) => {}
            Err(errno) => {
                return Err(Sent::Failed(Failure::new(
                    format!("write {}", fifo.path.display()),
                    errno,
                )));
            }
        }
    }
    Ok(())
}
// ANCHOR_END: send

/// `Hello <pid> <i>`, padded with dots to `size` bytes including the newline.
fn record(pid: i32, i: u64, size: Option<usize>) -> Vec<u8> {
    let mut record = format!("Hello {pid} {i} ").into_bytes();
    if let Some(size) = size {
        record.resize(size.saturating_sub(1).max(record.len()), b'.');
    }
    record.push(b'\n');
    record
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        path: PathBuf::from(DEFAULT_PATH),
        messages: None,
        size: None,
        interval: Duration::ZERO,
        wait: None,
        keep: false,
    };
    let mut path = None;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--messages" => options.messages = Some(parser.value(&arg)?),
            "--size" => options.size = Some(parser.value(&arg)?),
            "--interval" => {
                options.interval =
                    Duration::from_secs_f64(parser.value::<Positive>(&arg)?.0);
            }
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
    if options.messages.is_none()
        && (options.size.is_some() || !options.interval.is_zero())
    {
        return Err(UsageError(
            "--size and --interval go with --messages".to_owned(),
        ));
    }
    if options.size.is_some_and(|size| size > 1 << 20) {
        return Err(UsageError("--size is at most 1048576 bytes".to_owned()));
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [PATH] [--messages N] [--size BYTES] [--interval SECS] [--wait SECS] [--keep]

Makes the FIFO PATH (default {DEFAULT_PATH}) if it is missing, waits for a reader to open
it, writes `Hello <pid>` and closes it (the documents' write_to_named_pipe.py). Run
fifo-reader in another terminal, before or after.

Options:
  --messages N     send N newline-terminated records `Hello <pid> <i>` instead
  --size BYTES     pad each record to BYTES (records up to {PIPE_BUF} bytes are written
                   atomically; larger ones may interleave with other writers')
  --interval SECS  pause between records
{COMMON_HELP}

Exit status: 0 sent; 1 a system call failed, PATH is not a FIFO, or the reader went away
(broken pipe); 2 bad command line; 3 --wait ran out; 130 / 143 stopped by SIGINT / SIGTERM.
"
    )
}
