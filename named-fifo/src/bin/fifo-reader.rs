//! fifo-reader: receives messages from a named pipe (FIFO) and prints them.
//!
//! Mirrors `read_from_named_pipe.py` from the documents: make the FIFO `my_pipe` if
//! it does not exist, open it for reading, read, print `I pid [<reader pid>]
//! received a message => Hello <writer pid>`, close.
//!
//! Usage: fifo-reader [PATH] [--messages N] [--wait SECS] [--keep] [--show-fds]
//!
//! Try it, in two terminals, in either order (the default program of the package is
//! this one, so `cargo run -p named-fifo` starts it too):
//!     cargo run -p named-fifo --bin fifo-reader
//!     cargo run -p named-fifo --bin fifo-writer
//! And to see the descriptor each one holds, at each step:
//!     cargo run -p named-fifo --bin fifo-reader -- --show-fds
//!     cargo run -p named-fifo --bin fifo-writer -- --show-fds
//!
//! Where this differs from the document, on purpose: the original reads at most 22
//! bytes once, so a longer message would be cut; this reader reads until EOF (every
//! writer has closed the FIFO), one message per line, and the last one without a
//! newline too. Waiting alone, it says so on stderr and names the command that
//! starts a writer. Every wait for the writer can be bounded (`--wait`) and is
//! interruptible, writing to a stalled stdout included; a path that is not a FIFO
//! is refused; the FIFO is removed by whichever program made it (unless `--keep`).

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit, note};
use named_fifo::{
    COMMON_HELP, Common, Fifo, Gave, MESSAGES_RANGE, WaitError, deadline, pause,
    ready_within, stop_on_signals, stop_signal, wait_for,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::PollFlags;
use nix::sys::stat::Mode;
use nix::unistd::{Pid, getpid, read, write};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "fifo-reader";

/// The longest message accepted: a writer that never sends a newline cannot make us
/// buffer without end.
const MAX_MESSAGE: usize = 1 << 20;

/// With `--messages N`, how long EOF may last before it counts as the end: time for
/// the next writer to open the FIFO (`echo one > my_pipe; echo two > my_pipe`).
const NEXT_WRITER_GRACE: Duration = Duration::from_secs(2);

/// How long the reader waits for data before it says that it is waiting.
const QUIET_BEFORE_NOTE: Duration = Duration::from_millis(200);

/// A write of at most this many bytes to a pipe with room for it never blocks.
const PIPE_BUF: usize = 4096;

struct Options {
    common: Common,
    /// Stop after this many messages; EOF before them is an error.
    messages: Option<u64>,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    stop_on_signals()?;
    let wait = options.common.wait;

    // Make the FIFO, or find it (the writer may have made it). Dropping `fifo`
    // removes it if we made it, on every way out of main.
    let fifo = Fifo::make_or_find(&options.common.path, options.common.keep)?;
    let path = fifo.path.display().to_string();
    // A FIFO is a name in the file system: making it opens nothing.
    options
        .common
        .show(PROGRAM, &format!("after mkfifo {path}"));

    // ANCHOR: open
    // A blocking open(O_RDONLY) would wait here for a writer, deaf to Ctrl-C.
    // Non-blocking, it succeeds at once; we then wait for the first data with poll,
    // a slice at a time.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let fifo_fd = open(&fifo.path, flags, Mode::empty())
        .context(format!("open {}", fifo.path.display()))?;
    fifo.check_opened(&fifo_fd)?;
    options.common.show(PROGRAM, &format!("after open {path}"));
    // ANCHOR_END: open

    // Nothing there after a moment: say what we wait for, or it looks like a hang.
    // (A writer that has just opened the FIFO writes within microseconds.)
    let moment = QUIET_BEFORE_NOTE.min(wait.unwrap_or(Duration::MAX));
    if !ready_within(&fifo_fd, PollFlags::POLLIN, moment) {
        note!(
            "{}",
            options
                .common
                .waiting_note(PROGRAM, "a writer", "fifo-writer")
        );
    }
    // Wait for the first data (or a writer that came and went), within --wait.
    match wait_for(&fifo_fd, PollFlags::POLLIN, deadline(wait)) {
        Ok(_) => {}
        Err(WaitError::Gave(gave)) => {
            note!("{PROGRAM}: {}", gave.describe("a writer", wait));
            return Ok(gave.exit_code());
        }
        Err(WaitError::Failed(failure)) => return Err(failure),
    }

    let received = receive(&fifo_fd, &fifo, &options)?;
    // Close our read end; then `fifo` is dropped, removing it if we made it.
    drop(fifo_fd);
    options.common.show(PROGRAM, &format!("after close {path}"));
    Ok(report(&fifo, &received, &options))
}
// ANCHOR_END: main

/// What arrived, and why reading stopped.
struct Received {
    messages: u64,
    bytes: u64,
    /// A wait that gave up (--wait ran out, or a signal came).
    stopped: Option<Gave>,
    /// What the last wait was for, to say why we stopped.
    waiting_for: &'static str,
}

// ANCHOR: receive
/// Reads until EOF (or N messages) and prints one line per message.
///
/// The document does `os.read(fd, 22)`: one read of at most 22 bytes. `Hello <pid>`
/// is 11 to 13 bytes, so it fits, but a longer message would be cut, and nothing in
/// the FIFO says where a message ends. Here a message ends at a newline, or at EOF,
/// which comes when every writer has closed the FIFO.
fn receive(
    fd: &OwnedFd,
    fifo: &Fifo,
    options: &Options,
) -> Result<Received, Failure> {
    let mut received = Received {
        messages: 0,
        bytes: 0,
        stopped: None,
        waiting_for: "a writer",
    };
    match receive_into(fd, fifo, options, &mut received) {
        Ok(()) => Ok(received),
        Err(WaitError::Gave(gave)) => {
            received.stopped = Some(gave);
            Ok(received)
        }
        Err(WaitError::Failed(failure)) => Err(failure),
    }
}

fn receive_into(
    fd: &OwnedFd,
    fifo: &Fifo,
    options: &Options,
    received: &mut Received,
) -> Result<(), WaitError> {
    let me = getpid();
    let expected = options.messages;
    let done =
        |received: &Received| expected.is_some_and(|n| received.messages >= n);
    let mut pending = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while !done(received) {
        if let Some(signal) = stop_signal() {
            // A busy writer keeps every wait short: look at the flag here too.
            return Err(WaitError::Gave(Gave::Interrupted(signal)));
        }
        let n = match read(fd, &mut chunk) {
            Ok(n) => n,
            // Non-blocking: nothing there yet. Wait for data or for the last writer
            // to close, within --wait.
            Err(Errno::EAGAIN) => {
                received.waiting_for = "data from the writer";
                let until = deadline(options.common.wait);
                wait_for(fd, PollFlags::POLLIN, until)?;
                continue;
            }
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                let what = format!("read {}", fifo.path.display());
                return Err(WaitError::Failed(Failure::new(what, errno)));
            }
        };
        received.bytes += n as u64;
        if n == 0 {
            // EOF: no writer has the FIFO open. What is left is the last message.
            if !pending.is_empty() {
                received.waiting_for = "room on stdout";
                print_message(me, &pending)?;
                received.messages += 1;
                pending.clear();
            }
            if expected.is_none() || done(received) {
                return Ok(());
            }
            // ANCHOR: gap
            // --messages N, and fewer so far: the next writer may be on its way
            // (`echo one > my_pipe; echo two > my_pipe`). Give it a moment; if none
            // comes, EOF it is, and report() says so.
            received.waiting_for = "the next writer";
            match next_writer(fd) {
                Err(WaitError::Gave(Gave::Up)) => return Ok(()),
                other => other?,
            }
            // ANCHOR_END: gap
            continue;
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            if done(received) {
                break; // N messages printed: the rest is not ours to print
            }
            let line: Vec<u8> = pending.drain(..=end).collect();
            received.waiting_for = "room on stdout";
            print_message(me, &line[..end])?;
            received.messages += 1;
        }
        if pending.len() > MAX_MESSAGE {
            let why = format!("a message is longer than {MAX_MESSAGE} bytes");
            let what = format!("read {}", fifo.path.display());
            return Err(WaitError::Failed(Failure::new(what, why)));
        }
    }
    Ok(())
}
// ANCHOR_END: receive

/// After EOF: waits up to [`NEXT_WRITER_GRACE`] for another writer's data. Until a
/// writer opens the FIFO, poll reports only a hang-up; data is what we wait for.
fn next_writer(fd: &OwnedFd) -> Result<(), WaitError> {
    let until = Some(Instant::now() + NEXT_WRITER_GRACE);
    loop {
        let revents = wait_for(fd, PollFlags::POLLIN, until)?;
        if revents.contains(PollFlags::POLLIN) {
            return Ok(());
        }
        pause(until).map_err(WaitError::Gave)?; // a hang-up: nobody yet
    }
}

// ANCHOR: print
/// Prints one message line.
///
/// Not with `println!`: a full stdout (`fifo-reader | sleep 20`) would block it in
/// `write`, where SA_RESTART keeps Ctrl-C from reaching us. We wait for room with
/// poll, a slice at a time, then write at most PIPE_BUF bytes, which a pipe with
/// room takes without blocking. A closed stdout (`| head -n 1`) fails the write:
/// reported, exit 1.
fn print_message(me: Pid, message: &[u8]) -> Result<(), WaitError> {
    let text = String::from_utf8_lossy(message);
    let line = format!("I pid [{me}] received a message => {text}\n");
    let stdout = io::stdout();
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        wait_for(stdout.as_fd(), PollFlags::POLLOUT, None)?;
        match write(stdout.as_fd(), &rest[..rest.len().min(PIPE_BUF)]) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(errno) => {
                return Err(WaitError::Failed(Failure::new("write stdout", errno)));
            }
        }
    }
    Ok(())
}
// ANCHOR_END: print

/// Says on stderr what arrived and why reading stopped; returns the exit status.
fn report(fifo: &Fifo, received: &Received, options: &Options) -> ExitCode {
    let path = fifo.path.display();
    let plural =
        |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let what = format!(
        "{}, {}",
        plural(received.messages, "message"),
        plural(received.bytes, "byte")
    );
    match (received.stopped, options.messages) {
        (Some(gave), _) => {
            let why = gave.describe(received.waiting_for, options.common.wait);
            note!("{PROGRAM}: {why}; received {what}");
            gave.exit_code()
        }
        (None, Some(n)) if received.messages < n => {
            let grace = NEXT_WRITER_GRACE;
            note!(
                "{PROGRAM}: {path}: EOF after {what}, expected {n} messages \
                 (no other writer came within {grace:?})"
            );
            ExitCode::from(exit::RUNTIME)
        }
        (None, Some(_)) => {
            note!("{PROGRAM}: {path}: received {what}");
            ExitCode::SUCCESS
        }
        (None, None) => {
            note!(
                "{PROGRAM}: {path}: EOF, every writer has closed it; \
                 received {what}"
            );
            ExitCode::SUCCESS
        }
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        common: Common::default(),
        messages: None,
    };
    while let Some(arg) = parser.next()? {
        if options.common.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--messages" => {
                options.messages = Some(parser.value_in(&arg, MESSAGES_RANGE)?)
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    let grace = NEXT_WRITER_GRACE.as_secs();
    let path = named_fifo::DEFAULT_PATH;
    format!(
        "\
Usage: {PROGRAM} [PATH] [--messages N] [--wait SECS] [--keep] [--show-fds]

Makes the FIFO PATH (default {path}) if it is missing, waits for a writer, and
prints every message it receives as `I pid [<pid>] received a message => <message>`
until EOF (the documents' read_from_named_pipe.py). Run fifo-writer in another
terminal, before or after.

Options:
  --messages N     stop after N messages (1 to 1000000000); EOF in between is the
                   end only if no other writer opens the FIFO within {grace} s
{COMMON_HELP}

Exit status: 0 read until EOF (or N messages); 1 a system call failed, PATH is not a
FIFO, or EOF came before N messages; 2 bad command line; 3 --wait ran out;
129 / 130 / 143 stopped by SIGHUP / SIGINT / SIGTERM.
"
    )
}
