//! anon-pipe: a forked child sends messages to its parent through an anonymous
//! pipe.
//!
//! Mirrors `pipe_1.py` from the documents: `pipe()`, then `fork()`; the child
//! writes `Spam 0` .. `Spam 4` with growing pauses (0, 1, 2, 3, 4 s, then again),
//! the parent reads at most 32 bytes at a time and prints each read as `Parent
//! <pid> got [b'Spam 0'] at <time>`.
//!
//! Usage: anon-pipe [--count N] [--speed X] [--no-gap] [--show-fds] [--keep-ends]
//!
//! Try it (at the workspace root):
//!     cargo run -p anon-pipe                           # the document's run
//!     cargo run -p anon-pipe -- --count 5 --speed 20   # five messages, 0.5 s
//!     cargo run -p anon-pipe -- --count 10 --no-gap    # see b'Spam 4Spam 0'
//!     cargo run -p anon-pipe -- --speed 20 | head -n 1 # a reader that leaves
//!     cargo run -p anon-pipe -- --count 2 --speed 20 --show-fds
//!     cargo run -p anon-pipe -- --count 2 --speed 20 --show-fds --keep-ends
//!
//! Where this differs from the document, on purpose:
//! - each process closes the pipe end it does not use, so a child whose parent dies
//!   notices (its pause wakes up with POLLERR, or its write fails with EPIPE) and
//!   stops, and a parent whose child dies reads EOF, reaps it and says how it ended
//!   (the original blocks or lives on forever);
//! - SIGINT, SIGTERM and SIGHUP stop the parent cleanly, even while it is blocked
//!   on a full stdout: it ends the child (SIGTERM, then SIGKILL after 0.5 s), reaps
//!   it and exits 128 + n;
//! - `--count` makes the child stop after N messages, and the parent stop at EOF;
//! - `--show-fds` prints each process's descriptor table at each step;
//!   `--keep-ends` is the document's way, deliberately broken: no end is closed, so
//!   EOF never comes; the parent notices that the child is gone (`waitpid` with
//!   `WNOHANG` whenever the pipe is quiet for 100 ms), says which descriptor of its
//!   own keeps the pipe open, and exits 3. The child, which then cannot notice its
//!   parent's death through the pipe, is killed by the kernel if the parent dies
//!   (`PR_SET_PDEATHSIG`).
//!
//! Caveat: the 10 ms gap before each write only makes merged reads unlikely. A pipe
//! is a byte stream; pipe_2 (the `fdopen-lines` lesson) adds real framing.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::{bytes_repr, time_str};
use lesson_kit::{
    Context, Failure, describe_wait, exit, exited_ok, fds, note, signal_exit,
    signal_name,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid, pipe2, read, write};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROGRAM: &str = "anon-pipe";

/// The document's `time.sleep(0.01)` before each write. It is not shortened by
/// `--speed`: its job is to outlast the parent's wake-up after the previous write,
/// which takes just as long however fast the demonstration runs.
const GAP: Duration = Duration::from_millis(10);

/// The document's `os.read(fd, 32)`: a read returns at most this many bytes.
const READ_SIZE: usize = 32;

/// How long a child asked to stop (SIGTERM) may take before it is killed (SIGKILL):
/// 50 looks, 10 ms apart.
const GRACE_CHECKS: u128 = 50;
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// `--keep-ends`: how long (ms) the pipe may stay quiet before the parent looks
/// whether the child is still there (`waitpid` with `WNOHANG`).
const QUIET_MS: u8 = 100;

/// The stop signal that arrived (0: none yet). A signal handler can reach only
/// statics.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

struct Options {
    pacing: Pacing,
    gap: bool,
    /// `--show-fds`: print the descriptor table at each step.
    show_fds: bool,
    /// `--keep-ends`, deliberately broken: close no end, as the document does.
    keep_ends: bool,
}

/// Why the parent stopped reading.
enum Ended {
    /// EOF: every write end is closed, so the child is done.
    Eof,
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) arrived.
    Signal(i32),
    /// `--keep-ends`: the child is gone (reaped, with this status) and the pipe is
    /// empty, yet EOF never came: a write end is still open, in this process.
    NoEof(WaitStatus),
}

/// What woke a wait in `poll`.
enum Woke {
    /// The descriptor is ready (or in error: the call that follows will say which).
    Ready,
    /// A stop signal arrived.
    Signal(i32),
    /// Nothing happened within the timeout.
    Quiet,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // ANCHOR: pipe
    // Two file descriptors: what is written to `write_end` comes out of `read_end`.
    // O_CLOEXEC keeps them out of any program exec'd later; a habit, since nothing
    // here execs, that prevents the "EOF never comes" deadlock (see the hazards
    // chapter).
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    show_fds(&options, "parent", "after pipe2");
    // ANCHOR_END: pipe

    // ANCHOR: fork
    // Whatever sits in our stdout buffer at fork time would be copied into the
    // child and printed twice.
    io::stdout().flush().context("flush stdout")?;
    let parent_pid = getpid();
    // SAFETY: in the child of a multi-threaded process only async-signal-safe calls
    // are sound, because other threads may have held locks (the allocator's,
    // stdout's) at the moment of the fork. This process has a single thread
    // (nothing above starts one), so the child is a complete copy and may run
    // ordinary Rust code.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            show_fds(&options, "child", "after fork");
            let kept = if options.keep_ends {
                // DELIBERATELY BROKEN (--keep-ends): the document's child keeps
                // its read end. It is then a reader itself, so no POLLERR and no
                // EPIPE can tell it that its parent is gone.
                show_fds(&options, "child", "read end kept (--keep-ends)");
                Some(read_end)
            } else {
                drop(read_end); // the child only writes: close its read end
                show_fds(&options, "child", "after closing the read end");
                None
            };
            child(write_end, kept, parent_pid, &options) // never returns
        }
        ForkResult::Parent { child } => child,
    };
    show_fds(&options, "parent", "after fork");
    // ANCHOR_END: fork

    // ANCHOR: close
    // The parent only reads. Its copy of the write end must go: `read` returns 0
    // (EOF) only when every write end in every process is closed, and this one
    // would never be.
    let kept = if options.keep_ends {
        // DELIBERATELY BROKEN (--keep-ends): the document's parent keeps it.
        show_fds(&options, "parent", "write end kept (--keep-ends)");
        Some(write_end)
    } else {
        drop(write_end);
        show_fds(&options, "parent", "after closing the write end");
        None
    };
    // ANCHOR_END: close
    note!("Parent {parent_pid} forked child {child} (stop it with: kill {child})");

    // Installed after the fork, so the child keeps the default actions: Ctrl-C,
    // which the terminal sends to both processes, simply ends it.
    let watch = kept.as_ref().map(|_| child); // --keep-ends: watch the child
    let reading = match stop_signals() {
        Ok(signals) => parent(&read_end, &signals, watch),
        Err(err) => Err(Failure::new("install signal handlers", err)),
    };

    // ANCHOR: wait
    // Reap the child: until we do, it stays a zombie in the process table. At EOF
    // it has closed its end and is exiting; otherwise (a stop signal, an error) it
    // may be asleep before its next write, or stopped: end it, with a bound.
    let status = match reading {
        Ok(Ended::Eof) => waitpid(child, None),
        Ok(Ended::NoEof(status)) => Ok(status), // reaped already, by WNOHANG
        _ => end_child(child),
    }
    .context(format!("waitpid child {child}"))?;
    show_fds(&options, "parent", "at the end, child reaped");
    note!(
        "Parent {parent_pid}: child {child} {}",
        describe_wait(status)
    );
    if let (Ok(Ended::NoEof(_)), Some(write_end)) = (&reading, &kept) {
        // The child is reaped and the pipe is drained: EOF would have come, but
        // for our own write end.
        note!(
            "Parent {parent_pid}: EOF never came: this process still holds the \
             write end, fd {}",
            write_end.as_raw_fd()
        );
        note!(
            "{PROGRAM}: --keep-ends: read would wait for ever; giving up (exit 3)"
        );
    }
    drop(kept); // --keep-ends: the write end we should have closed at once
    drop(read_end); // closed last, so a child asked to stop hears it from SIGTERM
    // ANCHOR_END: wait
    // A Ctrl-C typed at a terminal reaches the whole foreground group: the child may
    // die of it, and we read EOF, before we look at our own signal. The handler has
    // run by then (the kernel raises a group's signal in every member at once), so a
    // recorded stop signal wins over the EOF it caused.
    let reading = match reading {
        Ok(Ended::Eof) if STOP_SIGNAL.load(Ordering::SeqCst) != 0 => {
            Ok(Ended::Signal(STOP_SIGNAL.load(Ordering::SeqCst) as i32))
        }
        other => other,
    };
    match reading? {
        Ended::Signal(signal) => {
            note!("{PROGRAM}: stopped by {}", signal_name(signal));
            Ok(signal_exit(signal))
        }
        Ended::NoEof(_) => Ok(ExitCode::from(exit::TIMEOUT)),
        Ended::Eof if exited_ok(status) => Ok(ExitCode::from(exit::OK)),
        Ended::Eof => Ok(ExitCode::from(exit::RUNTIME)),
    }
}
// ANCHOR_END: main

// ANCHOR: child
/// The child's whole life: write `Spam <n>` on the document's cadence, then exit.
/// It never returns to `main`, so nothing after the fork in `main` runs twice.
/// `kept` is the read end, when `--keep-ends` kept it.
fn child(
    write_end: OwnedFd,
    kept: Option<OwnedFd>,
    parent: Pid,
    options: &Options,
) -> ! {
    if kept.is_some() {
        // --keep-ends: the pipe can no longer tell us that the parent died, so the
        // kernel is asked to kill us when it does. If it died before we asked, we
        // were re-parented already: go now.
        match (set_pdeathsig(Signal::SIGKILL), getppid() == parent) {
            (Ok(()), true) => {}
            (armed, _) => {
                note!(
                    "Child {}: parent gone or prctl failed ({armed:?})",
                    getpid()
                );
                exit_child(exit::RUNTIME);
            }
        }
    }
    for beat in options.pacing.spam_beats() {
        let gap = if options.gap { GAP } else { Duration::ZERO };
        // The document's simulated work (0, 1, 2, 3, 4 s), after the gap that keeps
        // two writes apart so one read rarely gets both.
        let sent = pause(&write_end, gap + beat.pause).and_then(|()| {
            // No newline: pipe_1 has no framing at all. A write of at most PIPE_BUF
            // (4096) bytes to a pipe is all-or-nothing.
            write(&write_end, format!("Spam {}", beat.n).as_bytes())
        });
        match sent {
            Ok(_) => {}
            // No read end is left: the parent is gone. With SIGPIPE ignored, as
            // Rust sets it up before main, the write fails with EPIPE instead of
            // killing us silently.
            Err(Errno::EPIPE) => {
                note!("Child {}: write pipe: EPIPE, the parent is gone", getpid());
                exit_child(exit::RUNTIME);
            }
            Err(err) => {
                note!("Child {}: write pipe: {err}", getpid());
                exit_child(exit::RUNTIME);
            }
        }
    }
    drop(write_end); // the last write end? not with --keep-ends: the parent has one
    drop(kept); // --keep-ends: the read end this child never needed
    exit_child(exit::OK)
}
// ANCHOR_END: child

// ANCHOR: pause
/// Sleeps for `pause`, but not past the parent's death: `poll` reports POLLERR on a
/// write end whose every read end is closed, and we answer EPIPE, as `write` would.
fn pause(write_end: &OwnedFd, pause: Duration) -> Result<(), Errno> {
    let end = Instant::now() + pause;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_micros().div_ceil(1000))
            .unwrap_or(PollTimeout::MAX);
        // No events asked for: POLLERR and POLLHUP are always reported.
        let mut fds = [PollFd::new(write_end.as_fd(), PollFlags::empty())];
        match poll(&mut fds, ms) {
            // Timed out: the whole pause has passed (the timeout was rounded up).
            Ok(0) => return Ok(()),
            Err(Errno::EINTR) => {} // stopped and continued: wait out the rest
            Ok(_) => return Err(Errno::EPIPE), // POLLERR: no reader is left
            Err(err) => return Err(err),
        }
    }
}
// ANCHOR_END: pause

/// Ends the child without returning through `main` (which would run the parent's
/// code) and without running exit-time cleanup that belongs to the parent.
fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the calling process at once; it touches no memory of
    // ours and is async-signal-safe, so it is sound anywhere, including in a forked
    // child.
    unsafe { libc::_exit(i32::from(code)) }
}

// ANCHOR: parent
/// The parent's loop: one `read` of at most 32 bytes, one line of output, until EOF
/// or a stop signal. With `--keep-ends`, `watch` is the child, whose end the parent
/// must notice by itself, since EOF cannot come.
fn parent(
    read_end: &OwnedFd,
    signals: &UnixStream,
    watch: Option<Pid>,
) -> Result<Ended, Failure> {
    let me = getpid();
    let mut buffer = [0u8; READ_SIZE];
    let quiet = watch.map(|_| QUIET_MS); // None: wait as long as it takes
    let mut gone = None; // --keep-ends: the child's status, once it is reaped
    loop {
        // Wait until the child writes (or a signal asks us to stop), then read what
        // is in the pipe, up to 32 bytes: one message, or two if the child wrote
        // twice before we got here.
        match wait_for(read_end.as_fd(), PollFlags::POLLIN, signals, quiet)? {
            Woke::Ready => {}
            Woke::Signal(signal) => return Ok(Ended::Signal(signal)),
            // --keep-ends only: the pipe was quiet for 100 ms. A child that exited
            // had written everything before: once the pipe is drained too, no
            // EOF will ever come (our own write end keeps the pipe open).
            Woke::Quiet => {
                if let Some(status) = gone {
                    return Ok(Ended::NoEof(status));
                }
                if let Some(child) = watch {
                    gone = reaped(child)?; // one more round drains the pipe
                }
                continue;
            }
        }
        let n = read(read_end, &mut buffer).context("read pipe")?;
        if n == 0 {
            return Ok(Ended::Eof); // every write end is closed: the child is done
        }
        let received = bytes_repr(&buffer[..n]);
        let line = format!("Parent {me} got [{received}] at {}\n", time_str());
        if let Some(signal) = print(&line, signals)? {
            return Ok(Ended::Signal(signal));
        }
    }
}

/// `--keep-ends`: the child's status if it has ended (and is now reaped), without
/// waiting.
fn reaped(child: Pid) -> Result<Option<WaitStatus>, Failure> {
    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => Ok(None),
        Ok(status) => Ok(Some(status)),
        Err(err) => Err(Failure::new(format!("waitpid child {child}"), err)),
    }
}
// ANCHOR_END: parent

// ANCHOR: print
/// Writes `line` to stdout with `write(2)`, no buffer in between, and never blocks
/// past a stop signal: a reader that stalls (`| sleep 60`) fills the pipe, and a
/// plain `write` would then wait, deaf to Ctrl-C. Returns the signal if one came
/// first.
fn print(line: &str, signals: &UnixStream) -> Result<Option<i32>, Failure> {
    let stdout = io::stdout();
    let mut rest = line.as_bytes();
    while !rest.is_empty() {
        let room = wait_for(
            stdout.as_fd(),
            PollFlags::POLLOUT,
            signals,
            PollTimeout::NONE,
        )?;
        if let Woke::Signal(signal) = room {
            return Ok(Some(signal));
        }
        // Room for at least PIPE_BUF bytes: a short line goes in without blocking.
        let n = write(stdout.as_fd(), rest).context("write stdout")?;
        rest = &rest[n..];
    }
    Ok(None)
}
// ANCHOR_END: print

// ANCHOR: signals
/// SIGINT, SIGTERM and SIGHUP become a byte on a socket that `poll` can wait on,
/// next to the pipe and stdout. The handlers only store the signal's number and
/// write that byte, both async-signal-safe; everything else happens in `main`.
fn stop_signals() -> io::Result<UnixStream> {
    let (receiver, sender) = UnixStream::pair()?;
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register_usize(signal, &STOP_SIGNAL, signal as usize)?;
        signal_hook::low_level::pipe::register(signal, sender.try_clone()?)?;
    }
    Ok(receiver)
}

/// Waits until `fd` is ready for `events` (or in error: the call that follows will
/// say which), until a stop signal arrives, or until `timeout` passes, and says
/// which. Watches stdout all the while: when its reader goes away (`| head -n 1`) we
/// stop now, not at our next line, which a stopped child might never let us write.
fn wait_for(
    fd: BorrowedFd,
    events: PollFlags,
    signals: &UnixStream,
    timeout: impl Into<PollTimeout>,
) -> Result<Woke, Failure> {
    let timeout = timeout.into();
    let stdout = io::stdout();
    let mut fds = [
        PollFd::new(fd, events),
        PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        // No events asked for: POLLERR, the sign of a pipe with no reader, always
        // is.
        PollFd::new(stdout.as_fd(), PollFlags::empty()),
    ];
    loop {
        match poll(&mut fds, timeout) {
            // poll is never restarted after a handler ran (SA_RESTART or not): the
            // signal's byte is waiting on the socket, so the next round sees it.
            Err(Errno::EINTR) => {}
            Err(err) => return Err(Failure::new("poll", err)),
            Ok(0) => return Ok(Woke::Quiet),
            Ok(_) => break,
        }
    }
    let [_, signal, out] = fds.map(|fd| fd.revents().unwrap_or(PollFlags::POLLERR));
    if signal.contains(PollFlags::POLLIN) {
        let signal = STOP_SIGNAL.load(Ordering::SeqCst);
        return Ok(Woke::Signal(i32::try_from(signal).unwrap_or(SIGTERM)));
    }
    if out.contains(PollFlags::POLLERR) {
        return Err(Failure::new("poll stdout", "POLLERR: its reader is gone"));
    }
    Ok(Woke::Ready)
}
// ANCHOR_END: signals

// ANCHOR: end_child
/// Ends the child, with a bound: SIGTERM, half a second for it to go, then SIGKILL
/// (a stopped child, or one that ignores SIGTERM, would otherwise keep us waiting
/// for ever). Always reaps it.
fn end_child(child: Pid) -> nix::Result<WaitStatus> {
    // It may be gone already: then it is a zombie, and reaped below.
    let _ = kill(child, Signal::SIGTERM);
    for _ in 0..GRACE_CHECKS {
        match waitpid(child, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::StillAlive => sleep(CHECK_EVERY),
            status => return Ok(status),
        }
    }
    note!(
        "Parent {}: child {child} still there {} ms after SIGTERM (stopped, or \
         ignoring it): sending SIGKILL",
        getpid(),
        GRACE_CHECKS * CHECK_EVERY.as_millis()
    );
    kill(child, Signal::SIGKILL)?;
    waitpid(child, None) // SIGKILL ends even a stopped process
}
// ANCHOR_END: end_child

// ANCHOR: options
fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        gap: true,
        show_fds: false,
        keep_ends: false,
    };
    while let Some(arg) = parser.next()? {
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--no-gap" => options.gap = false,
            "--show-fds" => options.show_fds = true,
            "--keep-ends" => options.keep_ends = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}
// ANCHOR_END: options

/// `--show-fds`: this process's descriptor table, as the kernel holds it now.
fn show_fds(options: &Options, who: &str, step: &str) {
    if options.show_fds {
        fds::show(who, step);
    }
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--no-gap] [--show-fds] [--keep-ends]

A forked child writes `Spam 0`..`Spam 4` into an anonymous pipe, pausing 0, 1, 2, 3,
4 s; the parent reads up to 32 bytes at a time and prints what each read returned
(the documents' pipe_1.py).

Options:
{PACING_HELP}
  --no-gap     drop the 10 ms pause before each write, so `Spam 4` and `Spam 0`
               usually arrive in one read: b'Spam 4Spam 0'
  --show-fds   each process prints its descriptor table (stderr) after pipe2,
               after fork, after closing its unused end, and at the end
  --keep-ends  DELIBERATELY BROKEN, the document's way: no end is closed, so EOF
               never comes. Once the child is gone and the pipe stays empty for
               0.1 s, the parent names the write end it still holds, exit 3
  -h, --help   print this help

Output: `Parent <pid> got [b'Spam 0'] at <time>` on stdout; notes on stderr.
Ctrl-C, SIGTERM or SIGHUP: the child is ended (SIGTERM, SIGKILL after 0.5 s) and
reaped, and the parent exits 128 + the signal's number.
Exit status: 0 the child sent everything and exited 0; 1 a system call failed or the
child ended badly (killed, non-zero status); 2 bad command line; 3 --keep-ends: EOF
never came; 129, 130, 143 stopped by SIGHUP, SIGINT, SIGTERM.
"
    )
}
