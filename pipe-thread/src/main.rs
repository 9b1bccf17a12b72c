//! pipe-thread: one pipe between two threads of the same process.
//!
//! Mirrors `pipe_thread.py` from the documents: no fork at all. A writer thread
//! runs pipe_1's child loop (`Spam 0` .. `Spam 4` with the 0, 1, 2, 3, 4 s pauses
//! and the 10 ms gap) and the main thread reads at most 32 bytes at a time,
//! printing `Parent <pid> got [b'Spam 0'] at <time>`, with one pid, since there is
//! one process.
//!
//! Usage: pipe-thread [--count N] [--speed X] [--no-gap] [--writer-panics-after N]
//!                    [--writer-ignores-stop] [--show-fds]
//!
//! Try it (at the workspace root):
//!     cargo run -p pipe-thread                            # the document's run
//!     cargo run -p pipe-thread -- --count 5 --speed 20
//!     cargo run -p pipe-thread -- --speed 20 --writer-panics-after 3
//!     cargo run -p pipe-thread -- --writer-ignores-stop   # then Ctrl-C, Ctrl-C
//!     cargo run -p pipe-thread -- --count 2 --speed 20 --show-fds
//!
//! Where this differs from the document, on purpose:
//! - one Ctrl-C (or SIGTERM, SIGHUP) ends the program within milliseconds, cleanly,
//!   even while it is blocked on a full stdout; a second one ends it at once. The
//!   original ignores the first Ctrl-C: the exception stops the main thread, but
//!   the writer thread keeps the process alive;
//! - a writer thread that fails (an error or a panic) is reported by the main
//!   thread, which sees EOF because the failed thread's write end was dropped. In
//!   the original, a dead writer thread leaves its descriptor open and the reader
//!   blocks forever.
//!
//! The pipe is `std::io::pipe()` (Rust 1.87+): portable (Unix and Windows),
//! close-on-exec, and its two ends are ordinary `Read`/`Write` values.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::{bytes_repr, time_str};
use lesson_kit::{Context, Failure, exit, fds, note, signal_exit, signal_name};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::write;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

const PROGRAM: &str = "pipe-thread";

/// The document's `time.sleep(0.01)` before each write; not shortened by `--speed`,
/// since it has to outlast the reader's wake-up, whatever the pace.
const GAP: Duration = Duration::from_millis(10);

/// The document's `os.read(fd, 32)`.
const READ_SIZE: usize = 32;

/// How often a pausing writer looks at the stop flag: the bound on how late it
/// notices.
const STOP_CHECK: Duration = Duration::from_millis(20);

struct Options {
    pacing: Pacing,
    gap: bool,
    /// A deliberately broken variant: the writer panics after this many messages.
    panic_after: Option<u64>,
    /// A deliberately broken variant: the writer never looks at the stop flag.
    deaf: bool,
    /// `--show-fds`: print the descriptor table at each step.
    show_fds: bool,
}

/// Why the main thread stopped reading.
enum Ended {
    /// EOF: the writer thread has ended and dropped its end.
    Eof,
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) arrived.
    Signal(i32),
}

/// The first stop signal that arrived (0: none yet). Set by the signal handler,
/// which can reach only statics.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);
/// Set by `main` when it stops reading: the writer stops at its next pause.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    let signals = stop_signals().context("install signal handlers")?;

    // ANCHOR: pipe
    // std's pipe: two plain Read/Write values, close-on-exec, portable beyond Unix.
    let (mut reader, writer) = io::pipe().context("pipe")?;
    show_fds(options.show_fds, "main thread", "after pipe");
    // ANCHOR_END: pipe
    let show = options.show_fds; // `options` moves into the writer thread

    // ANCHOR: spawn
    // The writer thread owns the write end. When the thread ends, however it ends
    // (done, error, panic), `writer` is dropped, and that closes the only write
    // end: the main thread's read then returns EOF.
    let writer_thread = thread::Builder::new()
        .name("writer".to_owned())
        .spawn(move || write_spam(writer, &options))
        .context("spawn writer thread")?;
    // ANCHOR_END: spawn

    let reading = read_chunks(&mut reader, &signals);
    if let Ok(Ended::Eof) = reading {
        // One process, one table: the writer's end is gone from it for everyone.
        show_fds(show, "main thread", "after EOF: the write end is dropped");
    }
    // However the reading ended, the writer must end too: ask it (it looks at the
    // flag at every pause), and close our end, so a write it is blocked in fails
    // (EPIPE).
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    drop(reader);
    if let Ok(Ended::Signal(signal)) = reading {
        let name = signal_name(signal);
        note!("{PROGRAM}: {name}: ending the writer thread (another one: at once)");
    }

    // ANCHOR: join
    // join() hands back what the thread returned, or the payload of its panic.
    let joined = writer_thread.join();
    if let Ended::Signal(signal) = reading? {
        let sent = match joined {
            Ok(Ok(sent)) => format!(" after {sent} messages"),
            _ => String::new(), // it ended on its write to our closed end: expected
        };
        note!("{PROGRAM}: stopped by {}{sent}", signal_name(signal));
        return Ok(signal_exit(signal));
    }
    let code = match joined {
        Ok(Ok(_)) => exit::OK,
        Ok(Err(failure)) => {
            note!("{PROGRAM}: writer thread: {failure}");
            exit::RUNTIME
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            note!("{PROGRAM}: writer thread panicked: {message}");
            exit::RUNTIME
        }
    };
    // ANCHOR_END: join
    Ok(ExitCode::from(code))
}
// ANCHOR_END: main

// ANCHOR: signals
/// SIGINT, SIGTERM and SIGHUP. The first one becomes a byte on a socket that the
/// main thread's `poll` waits on, next to the pipe and stdout; a second one ends
/// the process at once, in the handler, should the clean stop ever get stuck.
fn stop_signals() -> io::Result<UnixStream> {
    let (receiver, sender) = UnixStream::pair()?;
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let message = format!(
            "{PROGRAM}: stopped by {} (a second stop signal: at once)\n",
            signal_name(signal)
        );
        let second = move || {
            if STOP_SIGNAL.swap(signal as usize, Ordering::SeqCst) != 0 {
                // SAFETY: write(2) of bytes prepared before the signal, and _exit,
                // are async-signal-safe: no allocation, no lock. `message` lives as
                // long as the handler (it moved into this closure).
                unsafe {
                    libc::write(2, message.as_ptr().cast(), message.len());
                    libc::_exit(128 + signal);
                }
            }
        };
        // SAFETY: the action above runs inside a signal handler: it only swaps an
        // atomic, and on a second signal writes fixed bytes and calls _exit, all
        // async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, second) }?;
        signal_hook::low_level::pipe::register(signal, sender.try_clone()?)?;
    }
    Ok(receiver)
}
// ANCHOR_END: signals

// ANCHOR: writer
/// The writer thread: pipe_1's child loop. Returns how many messages it sent.
fn write_spam(mut writer: PipeWriter, options: &Options) -> Result<u64, Failure> {
    // The threads of a process share one descriptor table: moving the write end
    // into this thread changed nothing in it.
    show_fds(
        options.show_fds,
        "writer thread",
        "after taking the write end",
    );
    let mut sent = 0;
    for beat in options.pacing.spam_beats() {
        let pause = if options.gap {
            GAP + beat.pause
        } else {
            beat.pause
        };
        if options.deaf {
            // DELIBERATELY BROKEN (--writer-ignores-stop): like the Python
            // original's thread, it sleeps on, deaf to the stop flag; only its next
            // write, into the closed pipe, ends it. A second Ctrl-C does not wait
            // for that.
            sleep(pause);
        } else if !pause_unless_stopped(pause) {
            break; // main asked us to stop
        }
        if options.panic_after == Some(sent) {
            // DELIBERATELY BROKEN (--writer-panics-after): shows that a dying
            // writer thread closes its end, so the reader gets EOF and can report,
            // instead of hanging.
            panic!(
                "deliberate panic after {sent} messages (--writer-panics-after)"
            );
        }
        // One write_all of 6 bytes: a single write(2), atomic since it is under
        // PIPE_BUF.
        let message = format!("Spam {}", beat.n);
        writer.write_all(message.as_bytes()).context("write pipe")?;
        sent += 1;
    }
    Ok(sent)
} // `writer` is dropped here: the reader sees EOF
// ANCHOR_END: writer

/// Sleeps for `pause`, looking at the stop flag every 20 ms. Returns false if asked
/// to stop.
fn pause_unless_stopped(pause: Duration) -> bool {
    let end = Instant::now() + pause;
    loop {
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        sleep(left.min(STOP_CHECK));
    }
}

// ANCHOR: reader
/// The main thread: read at most 32 bytes, print them as Python's bytes repr, until
/// EOF or a stop signal.
fn read_chunks(
    reader: &mut PipeReader,
    signals: &UnixStream,
) -> Result<Ended, Failure> {
    let pid = std::process::id(); // one process, so one pid for both threads
    let mut buffer = [0u8; READ_SIZE];
    loop {
        // Wait in poll, not in read: a signal does not interrupt a read
        // (signal-hook installs its handlers with SA_RESTART), but it does wake
        // poll.
        if let Some(signal) = wait_for(reader.as_fd(), PollFlags::POLLIN, signals)?
        {
            return Ok(Ended::Signal(signal));
        }
        let n = reader.read(&mut buffer).context("read pipe")?;
        if n == 0 {
            // EOF: the writer thread has ended and dropped its end.
            return Ok(Ended::Eof);
        }
        let received = bytes_repr(&buffer[..n]);
        let line = format!("Parent {pid} got [{received}] at {}\n", time_str());
        if let Some(signal) = print(&line, signals)? {
            return Ok(Ended::Signal(signal));
        }
    }
}
// ANCHOR_END: reader

// ANCHOR: print
/// Writes `line` to stdout with `write(2)`, no buffer in between, and never blocks
/// past a stop signal: a reader that stalls (`| sleep 60`) fills the pipe, and a
/// plain `write` would then wait, deaf to Ctrl-C. Returns the signal if one came
/// first.
fn print(line: &str, signals: &UnixStream) -> Result<Option<i32>, Failure> {
    let stdout = io::stdout();
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        if let Some(signal) = wait_for(stdout.as_fd(), PollFlags::POLLOUT, signals)?
        {
            return Ok(Some(signal));
        }
        // Room for at least PIPE_BUF bytes: a short line goes in without blocking.
        let n = write(stdout.as_fd(), rest).context("write stdout")?;
        rest = &rest[n..];
    }
    Ok(None)
}
// ANCHOR_END: print

/// Waits until `fd` is ready for `events` (or in error: the call that follows will
/// say which), or until a stop signal arrives, and returns that signal. Watches
/// stdout all the while: when its reader goes away (`| head -n 1`) we stop now, not
/// at our next line, which a stopped child might never let us write.
fn wait_for(
    fd: BorrowedFd,
    events: PollFlags,
    signals: &UnixStream,
) -> Result<Option<i32>, Failure> {
    let stdout = io::stdout();
    let mut fds = [
        PollFd::new(fd, events),
        PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        // No events asked for: POLLERR, the sign of a pipe with no reader, always
        // is.
        PollFd::new(stdout.as_fd(), PollFlags::empty()),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            // poll is never restarted after a handler ran (SA_RESTART or not): the
            // signal's byte is waiting on the socket, so the next round sees it.
            Err(Errno::EINTR) => {}
            Err(err) => return Err(Failure::new("poll", err)),
            Ok(_) => break,
        }
    }
    let [_, signal, out] = fds.map(|fd| fd.revents().unwrap_or(PollFlags::POLLERR));
    if signal.contains(PollFlags::POLLIN) {
        let signal = STOP_SIGNAL.load(Ordering::SeqCst);
        return Ok(Some(i32::try_from(signal).unwrap_or(SIGTERM)));
    }
    if out.contains(PollFlags::POLLERR) {
        return Err(Failure::new("poll stdout", "POLLERR: its reader is gone"));
    }
    Ok(None)
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        gap: true,
        panic_after: None,
        deaf: false,
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--no-gap" => options.gap = false,
            "--writer-panics-after" => {
                options.panic_after = Some(parser.value(&arg)?);
            }
            "--writer-ignores-stop" => options.deaf = true,
            "--show-fds" => options.show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

/// `--show-fds`: the process's descriptor table, as the kernel holds it now.
fn show_fds(show: bool, who: &str, step: &str) {
    if show {
        fds::show(who, step);
    }
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--no-gap] [--writer-panics-after N]
                   [--writer-ignores-stop] [--show-fds]

A writer thread writes `Spam 0`..`Spam 4` into a pipe, pausing 0, 1, 2, 3, 4 s; the
main thread reads up to 32 bytes at a time and prints what each read returned
(the documents' pipe_thread.py). One process, so one pid.

Options:
{PACING_HELP}
  --no-gap     drop the 10 ms pause before each write (reads may merge)
  --writer-panics-after N
               DELIBERATELY BROKEN: the writer thread panics after N messages;
               watch the main thread report it
  --writer-ignores-stop
               DELIBERATELY BROKEN: the writer thread never looks at the stop
               flag, like the original's; a second Ctrl-C ends it at once
  --show-fds   print the process's descriptor table (stderr) after the pipe,
               from the writer thread with its end, and after EOF
  -h, --help   print this help

Ctrl-C, SIGTERM or SIGHUP stops the program cleanly within milliseconds; a second
one ends it at once.
Output: `Parent <pid> got [b'Spam 0'] at <time>` on stdout; notes on stderr.
Exit status: 0 all messages sent; 1 a system call failed or the writer thread failed
or panicked; 2 bad command line; 129, 130, 143 stopped by SIGHUP, SIGINT, SIGTERM
(128 + the signal's number).
"
    )
}
