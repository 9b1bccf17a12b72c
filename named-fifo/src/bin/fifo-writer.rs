//! fifo-writer: sends a message through a named pipe (FIFO) to whoever reads it.
//!
//! Mirrors `write_to_named_pipe.py` from the documents: make the FIFO `my_pipe` if
//! it does not exist, open it for writing (which waits until a reader opens it
//! too), write `Hello <pid>`, close. The reader is a separate, unrelated program:
//! `fifo-reader`.
//!
//! Usage: fifo-writer [PATH] [--messages N] [--size BYTES] [--interval SECS]
//!                    [--wait SECS] [--keep] [--show-fds]
//!
//! Try it, in two terminals, in either order:
//!     cargo run -p named-fifo --bin fifo-reader
//!     cargo run -p named-fifo --bin fifo-writer
//! And to see the descriptor each one holds, at each step:
//!     cargo run -p named-fifo --bin fifo-reader -- --show-fds
//!     cargo run -p named-fifo --bin fifo-writer -- --show-fds
//!
//! Where this differs from the document, on purpose: waiting alone, it says so on
//! stderr and names the command that starts a reader; every wait for the reader can
//! be bounded (`--wait`) and is interruptible by Ctrl-C; a path that is not a FIFO
//! is refused; a reader that goes away is reported (`EPIPE`); the FIFO is removed
//! by whichever program made it (unless `--keep`); `--messages` streams many
//! records, to show EOF, several writers and atomic writes.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit, note};
use named_fifo::{
    COMMON_HELP, Common, Fifo, Gave, MESSAGES_RANGE, WaitError, deadline, pause,
    sleep_until, stop_on_signals, wait_for,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;
use nix::unistd::{getpid, write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "fifo-writer";

/// A write of at most this many bytes to a pipe or FIFO is atomic (POSIX PIPE_BUF;
/// 4096 on Linux): it is never interleaved with another writer's data.
const PIPE_BUF: usize = 4096;

/// What `--size BYTES` accepts: a record must fit in memory comfortably.
const SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=1 << 20;

/// What `--interval SECS` accepts: up to an hour between records.
const INTERVAL_RANGE: std::ops::RangeInclusive<f64> = 0.0..=3600.0;

struct Options {
    common: Common,
    /// `None`: the document's single message, `Hello <pid>`, with no newline.
    messages: Option<u64>,
    size: Option<usize>,
    interval: Duration,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    stop_on_signals()?;
    let wait = options.common.wait;

    // Make the FIFO, or find it (the reader may have made it). Dropping `fifo`
    // removes it if we made it, on every way out of main.
    let fifo = Fifo::make_or_find(&options.common.path, options.common.keep)?;
    let path = fifo.path.display().to_string();
    // A FIFO is a name in the file system: making it opens nothing.
    options
        .common
        .show(PROGRAM, &format!("after mkfifo {path}"));

    // ANCHOR: open
    // A blocking open(O_WRONLY) would wait here until a reader opens the FIFO, and
    // no Ctrl-C handler could get us out (SA_RESTART). Non-blocking, open fails
    // with ENXIO while there is no reader: try again every 20 ms, until a reader
    // comes, --wait runs out, or Ctrl-C.
    let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let until = deadline(wait);
    let mut alone = false;
    let fifo_fd: OwnedFd = loop {
        match open(&fifo.path, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::ENXIO) => {
                if !alone {
                    // Say what we wait for, or it looks like a hang.
                    alone = true;
                    let peer = ("a reader", "fifo-reader");
                    note!(
                        "{}",
                        options.common.waiting_note(PROGRAM, peer.0, peer.1)
                    );
                }
                if let Err(gave) = pause(until) {
                    note!("{PROGRAM}: {}", gave.describe("a reader", wait));
                    return Ok(gave.exit_code());
                }
            }
            Err(errno) => {
                return Err(errno).context(format!("open {}", fifo.path.display()));
            }
        }
    };
    fifo.check_opened(&fifo_fd)?;
    options.common.show(PROGRAM, &format!("after open {path}"));
    // ANCHOR_END: open

    let me = getpid();
    let Some(count) = options.messages else {
        // ANCHOR: document
        // The document's whole message: `Hello <pid>`, no newline. The reader knows
        // it has all of it when we close the FIFO (EOF), so its length does not
        // matter.
        let message = format!("Hello {me}");
        let sent = send(&fifo_fd, message.as_bytes(), &fifo, wait);
        // Our write end closes: once every writer's has, the reader sees EOF.
        drop(fifo_fd);
        options.common.show(PROGRAM, &format!("after close {path}"));
        return report(sent, &fifo, wait, "");
        // ANCHOR_END: document
    };

    // ANCHOR: stream
    // --messages N: one record per line, each `Hello <pid> <i>`, padded to --size
    // bytes.
    for i in 0..count {
        let record = record(me.as_raw(), i, options.size);
        let sent = send(&fifo_fd, &record, &fifo, wait);
        if sent.is_err() {
            return report(sent, &fifo, wait, &format!(" after {i} of {count}"));
        }
        if let Err(gave) = sleep_until(Instant::now() + options.interval) {
            let sent = Err(Sent::Gave(gave));
            return report(
                sent,
                &fifo,
                wait,
                &format!(" after {} of {count}", i + 1),
            );
        }
    }
    // ANCHOR_END: stream
    // Our write end closes: once every writer's has, the reader sees EOF.
    drop(fifo_fd);
    options.common.show(PROGRAM, &format!("after close {path}"));
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
/// Writes all of `bytes`. The descriptor is non-blocking, so a full FIFO gives
/// EAGAIN instead of blocking: wait for room (interruptibly, within --wait) and try
/// again.
///
/// A record of at most PIPE_BUF bytes goes in whole or not at all, so records from
/// several writers never interleave. A larger one may be written in parts, and
/// other writers' data can land between the parts.
fn send(
    fd: &OwnedFd,
    bytes: &[u8],
    fifo: &Fifo,
    wait: Option<Duration>,
) -> Result<(), Sent> {
    let mut rest = bytes;
    while !rest.is_empty() {
        match write(fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EAGAIN) => {
                match wait_for(fd, PollFlags::POLLOUT, deadline(wait)) {
                    Ok(_) => {}
                    Err(WaitError::Gave(gave)) => return Err(Sent::Gave(gave)),
                    Err(WaitError::Failed(failure)) => {
                        return Err(Sent::Failed(failure));
                    }
                }
            }
            // SIGPIPE is ignored in Rust programs, so a write with no reader left
            // fails with EPIPE instead of killing us.
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

/// Says why sending stopped (if it did) and returns the exit status. `so_far` is
/// ` after 3 of 10` in the streaming mode.
fn report(
    sent: Result<(), Sent>,
    fifo: &Fifo,
    wait: Option<Duration>,
    so_far: &str,
) -> Result<ExitCode, Failure> {
    match sent {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(Sent::Gone) => {
            let path = fifo.path.display();
            note!("{PROGRAM}: write {path}: EPIPE: the reader went away{so_far}");
            Ok(ExitCode::from(exit::RUNTIME))
        }
        Err(Sent::Gave(gave)) => {
            let why = gave.describe("room in the FIFO", wait);
            note!("{PROGRAM}: {why}{so_far}");
            Ok(gave.exit_code())
        }
        Err(Sent::Failed(failure)) => Err(failure),
    }
}

/// `Hello <pid> <i>`, then with `--size` a space and dots up to `size` bytes
/// including the newline (at least one dot: no line ends with a space).
fn record(pid: i32, i: u64, size: Option<usize>) -> Vec<u8> {
    let mut record = format!("Hello {pid} {i}").into_bytes();
    if let Some(size) = size {
        let padded = size.saturating_sub(1).max(record.len() + 2);
        record.push(b' ');
        record.resize(padded, b'.');
    }
    record.push(b'\n');
    record
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        common: Common::default(),
        messages: None,
        size: None,
        interval: Duration::ZERO,
    };
    while let Some(arg) = parser.next()? {
        if options.common.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--messages" => {
                options.messages = Some(parser.value_in(&arg, MESSAGES_RANGE)?)
            }
            "--size" => options.size = Some(parser.value_in(&arg, SIZE_RANGE)?),
            "--interval" => {
                let secs = parser.value_in(&arg, INTERVAL_RANGE)?;
                options.interval = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if options.messages.is_none()
        && (options.size.is_some() || !options.interval.is_zero())
    {
        return Err(UsageError(
            "--size and --interval go with --messages".to_owned(),
        ));
    }
    Ok(Some(options))
}

fn usage() -> String {
    let path = named_fifo::DEFAULT_PATH;
    format!(
        "\
Usage: {PROGRAM} [PATH] [--messages N] [--size BYTES] [--interval SECS]
                   [--wait SECS] [--keep] [--show-fds]

Makes the FIFO PATH (default {path}) if it is missing, waits for a reader to open
it, writes `Hello <pid>` and closes it (the documents' write_to_named_pipe.py). Run
fifo-reader in another terminal, before or after.

Options:
  --messages N     send N records `Hello <pid> <i>`, one per line (1 to 1000000000)
  --size BYTES     pad each record to BYTES, 1 to 1048576 (records up to {PIPE_BUF}
                   bytes are written atomically; larger ones may interleave)
  --interval SECS  pause between records, 0 to 3600 (default 0)
{COMMON_HELP}

Exit status: 0 sent; 1 a system call failed, PATH is not a FIFO, or the reader went
away (broken pipe); 2 bad command line; 3 --wait ran out;
129 / 130 / 143 stopped by SIGHUP / SIGINT / SIGTERM.
"
    )
}
