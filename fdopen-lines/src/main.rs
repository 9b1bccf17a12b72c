//! fdopen-lines: newline-framed messages through a pipe, read one line at a time.
//!
//! Mirrors `pipe_2.py` from the documents: like pipe_1 (the `anon-pipe` lesson),
//! but the child ends every message with `\n`, each process closes the pipe end it
//! does not use, and the parent wraps its read end in a buffered reader and reads
//! whole lines. It prints `Parent <pid> got [Spam 0] at <time>`: text now, not
//! bytes.
//!
//! Usage: fdopen-lines [--count N] [--speed X] [--hello] [--from-stdin]
//!                     [--max-line BYTES] [--show-fds]
//!
//! Try it (at the workspace root):
//!     cargo run -p fdopen-lines                        # the document's run
//!     cargo run -p fdopen-lines -- --count 5 --speed 20
//!     cargo run -p fdopen-lines -- --hello --count 3   # seed 004's "how are you"
//!     printf 'one\ntwo' | cargo run -p fdopen-lines -- --from-stdin
//!     cargo run -p fdopen-lines -- --count 2 --speed 20 --show-fds
//!
//! Where this differs from the document, on purpose:
//! - at EOF the original's `readline()` returns an empty string forever, so it
//!   prints `got []` in a busy loop once the child is gone; here EOF ends the loop,
//!   and the parent reaps the child and reports how it ended;
//! - a last line without a newline is delivered whole (the original's `[:-1]` cuts
//!   its last character); a line that is not UTF-8, or longer than `--max-line`, is
//!   a clear error, never unbounded memory;
//! - SIGINT, SIGTERM and SIGHUP stop the parent cleanly, even while it is blocked
//!   on a read or a full stdout: it ends the child (SIGTERM, then SIGKILL after 0.5
//!   s), reaps it and exits 128 + n; a child whose parent dies stops at once, even
//!   one waiting for input on an idle stdin.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::time_str;
use lesson_kit::{
    Context, Failure, describe_wait, exit, exited_ok, fds, note, signal_exit,
    signal_name,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, pipe2, read, write};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROGRAM: &str = "fdopen-lines";

/// The longest line the parent accepts, unless `--max-line` says otherwise. A
/// reader that waits for a newline must stop somewhere, or a writer that never
/// sends one could make it buffer without end.
const DEFAULT_MAX_LINE: usize = 1 << 20;

/// What `--max-line` accepts: 64 MiB at most, a buffer any machine can hold.
const MAX_LINE_RANGE: std::ops::RangeInclusive<usize> = 1..=1 << 26;

/// How long a child asked to stop (SIGTERM) may take before it is killed (SIGKILL):
/// 50 looks, 10 ms apart.
const GRACE_CHECKS: u128 = 50;
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// The stop signal that arrived (0: none yet). A signal handler can reach only
/// statics.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

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
    /// `--show-fds`: print the descriptor table at each step.
    show_fds: bool,
}

/// Why the parent stopped reading.
enum Ended {
    /// EOF: every write end is closed, so the child is done.
    Eof,
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) arrived.
    Signal(i32),
}

/// A failed call in the child: the call and object (`read stdin`), and the error.
type ChildError = (&'static str, io::Error);

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    show_fds(&options, "parent", "after pipe2");

    io::stdout().flush().context("flush stdout")?; // or the child prints it again
    // SAFETY: this process is single-threaded (nothing above starts a thread), so
    // the child is a complete copy of it and may run ordinary Rust code, allocation
    // included.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            show_fds(&options, "child", "after fork");
            // ANCHOR: child_close
            // The child only writes. It closes its copy of the read end at once:
            // then, if the parent dies, no read end is left anywhere, and the child
            // learns it (EPIPE, POLLERR) instead of filling a pipe that nobody will
            // ever read.
            drop(read_end);
            show_fds(&options, "child", "after closing the read end");
            // ANCHOR_END: child_close
            child(write_end, &options) // never returns
        }
        ForkResult::Parent { child } => child,
    };
    show_fds(&options, "parent", "after fork");

    // ANCHOR: parent_close
    // The parent only reads. It closes its copy of the write end at once: a reader
    // sees EOF only when every write end is closed, and this one would keep the
    // pipe open.
    drop(write_end);
    show_fds(&options, "parent", "after closing the write end");
    // ANCHOR_END: parent_close
    note!(
        "Parent {} forked child {child} (stop it with: kill {child})",
        getpid()
    );

    // ANCHOR: fdopen
    // Python's os.fdopen(fd): a file object that owns the descriptor. In Rust, File
    // takes ownership of the OwnedFd (and closes it when dropped); BufReader adds
    // the buffer that lets us ask for "everything up to the next newline". (Watched
    // only makes each read wait in poll, where a stop signal can wake it.)
    let pipe = File::from(read_end);
    let signals = stop_signals().context("install signal handlers");
    let reading = signals.and_then(|signals| {
        let mut lines = BufReader::new(Watched {
            pipe: &pipe,
            signals: &signals,
            stopped: None,
        });
        parent(&mut lines, child, &options)
    });
    // ANCHOR_END: fdopen

    // Reap the child in any case; if we stopped early, end it first, with a bound.
    let status = match reading {
        Ok(Ended::Eof) => waitpid(child, None),
        _ => end_child(child),
    }
    .context(format!("waitpid child {child}"))?;
    show_fds(&options, "parent", "at the end, child reaped");
    drop(pipe); // closed last, so a child asked to stop hears it from SIGTERM
    note!(
        "Parent {}: child {child} {}",
        getpid(),
        describe_wait(status)
    );
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
    if let Ended::Signal(signal) = reading? {
        note!("{PROGRAM}: stopped by {}", signal_name(signal));
        return Ok(signal_exit(signal));
    }
    Ok(ExitCode::from(if exited_ok(status) {
        exit::OK
    } else {
        exit::RUNTIME
    }))
}
// ANCHOR_END: main

// ANCHOR: parent
/// The parent's loop: one line per message until EOF (or a stop signal).
fn parent(
    lines: &mut BufReader<Watched>,
    child: Pid,
    options: &Options,
) -> Result<Ended, Failure> {
    let me = getpid();
    let signals = lines.get_ref().signals;
    if options.sender == Sender::Hello
        && let Some(signal) =
            print(&format!("hello from parent {me} {child}\n"), signals)?
    {
        return Ok(Ended::Signal(signal));
    }
    // At most max_line bytes and the newline (64 MiB + 1 at most: no overflow).
    let limit = options.max_line as u64 + 1;
    let mut line = Vec::new();
    loop {
        line.clear();
        // readline(): read_until returns once it has a '\n', or at EOF; `take`
        // bounds it.
        let n = match lines.take(limit).read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(err) => return stopped_or_failed(lines, err),
        };
        if n == 0 {
            // EOF: no write end is left open, so the child is done. The document's
            // readline() returns '' here, again and again: its `got []` busy loop.
            return Ok(Ended::Eof);
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
        let out = if options.sender == Sender::Hello {
            format!("{text}\n")
        } else {
            format!("Parent {me} got [{text}] at {}\n", time_str())
        };
        if let Some(signal) = print(&out, signals)? {
            return Ok(Ended::Signal(signal));
        }
    }
}
// ANCHOR_END: parent

// ANCHOR: watched
/// The pipe's read end, as a `Read` whose every `read` first waits in `poll`, next
/// to the stop signals' socket: a blocked `read` would not notice a signal
/// (signal-hook's handlers are installed with SA_RESTART, so the kernel restarts
/// the read).
struct Watched<'a> {
    pipe: &'a File,
    signals: &'a UnixStream,
    /// The stop signal that ended the reading, if one did.
    stopped: Option<i32>,
}

impl Read for Watched<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match wait_for(self.pipe.as_fd(), PollFlags::POLLIN, self.signals) {
            Ok(None) => self.pipe.read(buffer), // data or EOF: it will not block
            Ok(Some(signal)) => {
                self.stopped = Some(signal);
                Err(io::Error::other("stopped by a signal"))
            }
            Err(failure) => Err(io::Error::other(failure)),
        }
    }
}

/// Sorts out why `read_until` failed: a stop signal, a failed `poll`, or the read.
fn stopped_or_failed(
    lines: &BufReader<Watched>,
    err: io::Error,
) -> Result<Ended, Failure> {
    if let Some(signal) = lines.get_ref().stopped {
        return Ok(Ended::Signal(signal));
    }
    match err.downcast::<Failure>() {
        Ok(failure) => Err(failure),
        Err(err) => Err(Failure::new("read pipe", err)),
    }
}
// ANCHOR_END: watched

// ANCHOR: child
/// The child's whole life: send, close, `_exit`. It never returns into `main`.
fn child(write_end: OwnedFd, options: &Options) -> ! {
    // File is a thin owner of the descriptor: each write_all below is one write(2)
    // call (or several, if the pipe takes part of a large buffer at a time).
    let mut pipe = File::from(write_end);
    let sent = match options.sender {
        Sender::Spam => options.pacing.spam_beats().try_for_each(|beat| {
            pause(&pipe, beat.pause)?; // no 10 ms gap: the newline separates now
            let message = format!("Spam {}\n", beat.n);
            pipe.write_all(message.as_bytes())
                .map_err(|err| ("write pipe", err))
        }),
        Sender::Hello => greet().and_then(|()| {
            options.pacing.messages().try_for_each(|_| {
                let sent = pipe.write_all(b"how are you\n");
                sent.map_err(|err| ("write pipe", err))?;
                pause(&pipe, options.pacing.secs(1.0))
            })
        }),
        Sender::Stdin => copy_stdin(&pipe),
    };
    match sent {
        Ok(()) => {}
        // SIGPIPE is ignored (Rust sets that up before main, and fork keeps it), so a
        // write with no reader left fails with EPIPE rather than killing us silently;
        // and EPIPE is the only way a blocking write to our pipe can fail.
        Err(("write pipe", _)) => {
            note!("Child {}: write pipe: EPIPE, the parent is gone", getpid());
            exit_child(exit::RUNTIME);
        }
        Err((what, err)) => {
            note!("Child {}: {what}: {err}", getpid());
            exit_child(exit::RUNTIME);
        }
    }
    drop(pipe); // the last write end: the parent's next read returns EOF
    exit_child(exit::OK)
}
// ANCHOR_END: child

// ANCHOR: copy_stdin
/// `--from-stdin`: copies stdin into the pipe as it comes. Waits in `poll` on both:
/// stdin for data, and the pipe for POLLERR, so that an idle stdin cannot keep the
/// child alive once the parent is gone.
fn copy_stdin(pipe: &File) -> Result<(), ChildError> {
    let stdin = io::stdin();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(pipe.as_fd(), PollFlags::empty()), // POLLERR: no reader
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) if fds[1].any() == Some(true) => {
                return Err(("write pipe", Errno::EPIPE.into()));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(("poll stdin", err.into())),
        }
        let n = read(stdin.as_fd(), &mut buffer)
            .map_err(|e| ("read stdin", e.into()))?;
        if n == 0 {
            return Ok(()); // EOF on stdin
        }
        let mut pipe = pipe;
        pipe.write_all(&buffer[..n])
            .map_err(|err| ("write pipe", err))?;
    }
}
// ANCHOR_END: copy_stdin

/// Sleeps for `pause`, but not past the parent's death: `poll` reports POLLERR on a
/// write end whose every read end is closed, and we answer EPIPE, as `write` would.
fn pause(pipe: &File, pause: Duration) -> Result<(), ChildError> {
    let end = Instant::now() + pause;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_micros().div_ceil(1000))
            .unwrap_or(PollTimeout::MAX);
        // No events asked for: POLLERR and POLLHUP are always reported.
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::empty())];
        match poll(&mut fds, ms) {
            // Timed out: the whole pause has passed (the timeout was rounded up).
            Ok(0) => return Ok(()),
            Err(Errno::EINTR) => {} // stopped and continued: wait out the rest
            Ok(_) => return Err(("write pipe", Errno::EPIPE.into())),
            Err(err) => return Err(("poll pipe", err.into())),
        }
    }
}

/// Seed 004's child greets on stdout, which it shares with the parent.
fn greet() -> Result<(), ChildError> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "hello from child {}", getpid())
        .and_then(|()| stdout.flush())
        .map_err(|err| ("write stdout", err))
}

/// Ends the child at once, without returning into `main` or running the parent's
/// exit work.
fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the calling process; it touches none of our memory and
    // is async-signal-safe, so it is sound in a forked child.
    unsafe { libc::_exit(i32::from(code)) }
}

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

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        sender: Sender::Spam,
        max_line: DEFAULT_MAX_LINE,
        show_fds: false,
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
            "--show-fds" => options.show_fds = true,
            "--max-line" => {
                options.max_line = parser.value_in(&arg, MAX_LINE_RANGE)?
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
            let why = "--from-stdin sends stdin as it comes: --count and --speed \
                       do not apply";
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

/// `--show-fds`: this process's descriptor table, as the kernel holds it now.
fn show_fds(options: &Options, who: &str, step: &str) {
    if options.show_fds {
        fds::show(who, step);
    }
}

fn usage() -> String {
    let (min, max) = (MAX_LINE_RANGE.start(), MAX_LINE_RANGE.end());
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--hello] [--from-stdin] [--max-line BYTES]
                    [--show-fds]

A forked child writes `Spam 0\\n`..`Spam 4\\n` into a pipe, pausing 0, 1, 2, 3, 4 s;
the parent reads whole lines through a buffered reader and prints each one
(the documents' pipe_2.py).

Options:
{PACING_HELP}
  --hello      seed 004's variant: both sides greet, then the child sends
               `how are you` every second and the parent prints each line
  --from-stdin
               the child sends its stdin through the pipe instead (try invalid
               UTF-8, a missing last newline, a huge line)
  --max-line BYTES
               refuse lines longer than this, {min} to {max}
               (default {DEFAULT_MAX_LINE})
  --show-fds   each process prints its descriptor table (stderr) after pipe2,
               after fork, after closing its unused end, and at the end
  -h, --help   print this help

Output: `Parent <pid> got [Spam 0] at <time>` on stdout; notes on stderr.
Ctrl-C, SIGTERM or SIGHUP: the child is ended (SIGTERM, SIGKILL after 0.5 s) and
reaped, and the parent exits 128 + the signal's number.
Exit status: 0 the child sent everything and exited 0; 1 a system call failed, a
line was refused, or the child ended badly; 2 bad command line; 129, 130, 143
stopped by SIGHUP, SIGINT, SIGTERM.
"
    )
}
