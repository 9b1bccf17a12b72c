//! bidir-spawn: a parent and an exec'd child talk both ways over two pipes.
//!
//! Mirrors `pipes.py` from the documents. `spawn()` makes two pipes and forks; the
//! parent rewires its own stdin/stdout onto its ends, the child rewires its
//! stdin/stdout onto the other ends and `execvp`s a program: by default
//! `bidir-child`, this package's second binary and the counterpart of
//! pipes_test_child.py. Then they talk in lines: the parent prints `Hello 1 from
//! parent <pid>` (into the pipe), the child answers `Child <pid> got: [Hello 1 from
//! parent <pid>]`, twice. The terminal (stderr) shows:
//!
//!     Child 20267 of 20266 got arg: "spam"
//!     Parent got: "Child 20267 got: [Hello 1 from parent 20266]"
//!     Parent got: "Child 20267 got: [Hello 2 from parent 20266]"
//!
//! Usage: bidir-spawn [--speed X] [--no-flush] [--reply-timeout SECS] [--command]
//!                    [-- PROGRAM [ARGS...]]
//!
//! Try it:
//!     cargo run -p bidir-spawn                      # the document's 12-second run
//!     cargo run -p bidir-spawn -- --speed 10
//!     cargo run -p bidir-spawn -- --speed 10 --no-flush   # the flush deadlock
//!     cargo run -p bidir-spawn -- --command --speed 10    # with std's Command
//!     cargo run -p bidir-spawn -- -- cat -n         # any program: cat echoes
//!     cargo run -p bidir-spawn -- --reply-timeout 1 -- sh -c 'sleep 30 & wait'
//!
//! `bidir-child` is looked for next to this executable. Under `cargo run`, which
//! builds only the binary it runs, a missing (or out-of-date) `bidir-child` is
//! built first (`cargo build --bin bidir-child`), so the commands above need
//! nothing else.
//!
//! Where this differs from the document, on purpose: the child runs in a process
//! group of its own and dies with the parent (`PR_SET_PDEATHSIG`); its SIGPIPE,
//! signal mask and inherited descriptors are reset before exec; an exec failure is
//! reported (status 127 or 126) instead of a child that falls back into the
//! parent's code; a child that exits early, never replies or never exits is
//! detected, never waited for forever (exit 3); SIGINT, SIGTERM and SIGHUP end the
//! child's whole process group (SIGTERM, then SIGKILL after 300 ms) and exit 128+n;
//! the child is always reaped.

use lesson_kit::args::{Parser, UsageError, parse_command_line, usage_failure};
use lesson_kit::pace::SPEED_RANGE;
use lesson_kit::{
    Context, Failure, describe_wait, exit, exited_ok, note, signal_exit,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{
    SigHandler, SigSet, SigmaskHow, Signal, killpg, signal, sigprocmask,
};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{
    ForkResult, Pid, dup2_stdin, dup2_stdout, execvp, fork, getpid, getppid, pipe2,
    read, setpgid, write,
};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PROGRAM: &str = "bidir-spawn";

/// The child program run when no PROGRAM is named: this package's other binary.
const CHILD: &str = "bidir-child";

/// pipes_test_child.py waits 3 s before reading a line and 3 s before replying.
const CHILD_WAIT_SECS: f64 = 3.0;

/// What `--reply-timeout` accepts: a millisecond to a day.
const REPLY_TIMEOUT_RANGE: std::ops::RangeInclusive<f64> = 0.001..=86_400.0;

/// The longest reply line the parent accepts (without its newline).
const MAX_REPLY: usize = 64 * 1024;

/// How long the child's process group gets to exit after SIGTERM, before SIGKILL.
const GRACE: Duration = Duration::from_millis(300);

struct Options {
    speed: f64,
    flush: bool,
    /// `None`: wait as long as the document's child needs, plus 2 s.
    reply_timeout: Option<f64>,
    /// Spawn with std::process::Command instead of the hand-written fork + exec.
    command: bool,
    /// The program to spawn and its arguments; empty: bidir-child.
    program: Vec<String>,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    // ANCHOR: argv
    // Everything the child will need is built now, before fork: after fork the
    // child may not allocate. A NUL byte cannot be passed to exec, so that is
    // refused here too.
    let (program, args) = program_and_args(&options)?;
    let argv = match c_argv(&program, &args) {
        Ok(argv) => argv,
        Err(err) => return Ok(usage_failure(PROGRAM, &err, &usage())),
    };
    // ANCHOR_END: argv
    let timeout = reply_timeout(&options);
    // Ctrl-C, kill, a closed terminal: from now on they wait in a descriptor that
    // every wait below watches, so the child's group is ended before we go, even
    // mid-wait. (Until here, they simply end us: nothing to clean up yet.)
    let stops = StopSignals::block()?;

    let me = getpid();
    // ANCHOR: choreography
    let (child, to_child, mut replies) = if options.command {
        match spawn_with_command(me, &program, &args)? {
            Spawned::Running(child, to_child, replies) => {
                (child, to_child, replies)
            }
            Spawned::Failed(code) => return Ok(ExitCode::from(code)),
        }
    } else {
        let child = spawn(me, &argv)?;
        // From here on our own stdout writes into the child's stdin, and our own
        // stdin reads the child's stdout, exactly as in the document.
        let to_child: Box<dyn Write> = Box::new(io::stdout());
        (child, to_child, Replies::new(Box::new(io::stdin())))
    };
    // One message, one write: lines wait in our buffer until flush() sends them
    // whole.
    let mut to_child = BufWriter::new(to_child);

    let talk = converse(me, &mut to_child, &mut replies, timeout, &stops);
    // Not a clean end (a deadlock, a stop signal, an error): end the child's
    // process group now, before it can see the pipes below close and react.
    let ended = (!talk.is_clean()).then(|| stop_child(child, &talk));

    // Close our ends of both pipes. A child that reads until EOF (cat) can finish
    // now; a child that keeps writing (yes) dies of SIGPIPE instead of writing into
    // a pipe nobody reads.
    drop(to_child);
    drop(replies);
    if !options.command {
        // Our fd 0 and fd 1 *are* those ends: put /dev/null in their place.
        if let Err(failure) = close_stdin_and_stdout() {
            // The bounded wait below still ends the child.
            note!("{PROGRAM}: {failure}");
        }
    }
    let code = finish(child, talk, ended, timeout, &stops);
    // ANCHOR_END: choreography
    Ok(code)
}
// ANCHOR_END: main

// ANCHOR: spawn
/// The document's `spawn()`: two pipes, `fork`, and each side rewires its stdin and
/// stdout onto its ends of the pipes. The child then `execvp`s `argv`. Returns the
/// child's pid; from then on, the parent's stdout goes to the child and its stdin
/// comes from the child.
fn spawn(parent: Pid, argv: &[CString]) -> Result<Pid, Failure> {
    // Two one-way pipes make one two-way conversation. O_CLOEXEC: any copy we
    // forget is closed by exec, so the exec'd program holds only what we give it on
    // purpose.
    let (parent_in, child_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (child to parent)")?;
    let (child_in, parent_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (parent to child)")?;

    // Or the child could print it again:
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: this process is single-threaded when it forks (nothing before this
    // point starts a thread). The child still follows the strict rules for a forked
    // child: it only makes system calls (setpgid, prctl, dup2, close, sigaction,
    // sigprocmask, write), execs and _exits, all async-signal-safe except execvp's
    // PATH search, which is fine in a single-threaded process. argv was allocated
    // before the fork.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // In the child: no allocation, no `?`, no println!, no unwrap from here
            // on. A process group of its own: one killpg ends it and all it starts.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // If the parent dies, the kernel kills us (prctl cannot fail for a
            // valid signal); if it died before this line, we are an orphan already:
            // go now.
            let _ = set_pdeathsig(Signal::SIGKILL);
            if getppid() != parent {
                die(b"bidir-spawn: the parent is gone\n", exit::RUNTIME);
            }
            drop(parent_in); // the parent's ends are not ours
            drop(parent_out);
            if dup2_stdin(&child_in).is_err() {
                die(
                    b"bidir-spawn: dup2 stdin failed in the child\n",
                    exit::RUNTIME,
                );
            }
            if dup2_stdout(&child_out).is_err() {
                die(
                    b"bidir-spawn: dup2 stdout failed in the child\n",
                    exit::RUNTIME,
                );
            }
            drop(child_in); // fd 0 and fd 1 are the copies we keep
            drop(child_out);
            close_inherited_descriptors();
            // Rust set SIGPIPE to "ignore" before main, and an ignored signal stays
            // ignored across exec; our blocked stop signals would stay blocked.
            // Give the program the defaults it expects. (Command resets SIGPIPE,
            // but not the mask: see spawn_with_command.)
            // SAFETY: SIG_DFL installs no handler: no Rust code runs in signal
            // context.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let _ =
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let Err(errno) = execvp(&argv[0], argv);
            // Only reached if exec failed: say so, with the shell's codes.
            exec_failed(&argv[0], errno)
        }
        ForkResult::Parent { child } => {
            // The same setpgid as the child's: whichever runs first, the group
            // exists before we ever signal it. (EACCES once the child has exec'd:
            // harmless.)
            let _ = setpgid(child, child);
            // The child's ends: if we kept child_out, we would never see EOF from
            // the child, even after it exits.
            drop(child_in);
            drop(child_out);
            let rewired = dup2_stdin(&parent_in)
                .context("dup2 pipe onto stdin")
                .and_then(|_| {
                    dup2_stdout(&parent_out).context("dup2 pipe onto stdout")
                });
            drop(parent_in); // fd 0 and fd 1 are now the copies we use
            drop(parent_out);
            if let Err(failure) = rewired {
                end_group(child); // never leave a child behind, not even here
                return Err(failure);
            }
            Ok(child)
        }
    }
}
// ANCHOR_END: spawn

/// Closes every descriptor above 2 in the child, before exec.
///
/// Our own pipes are close-on-exec already. These are the ones *this* process
/// inherited without the flag from whoever started it (a shell, a terminal, cargo):
/// exec would pass them on to a program that knows nothing about them, and an
/// inherited pipe end can keep some other reader from ever seeing EOF. Python's
/// subprocess does the same (`close_fds=True`); the document's `os.execvp`, and
/// Rust's `Command`, do not.
fn close_inherited_descriptors() {
    // SAFETY: close_range(2) only closes descriptors; nothing in this child uses
    // any above 2 (Rust code here holds none), and it is one system call,
    // async-signal-safe.
    let closed = unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    if closed != 0 {
        // Linux before 5.9 has no close_range: close them one by one (also safe
        // here).
        for fd in 3..1024 {
            // SAFETY: as above; closing a descriptor that is not open fails
            // harmlessly.
            unsafe { libc::close(fd) };
        }
    }
}

/// The exit code for a failed exec, as a shell gives it: 127 the program was not
/// found, 126 it was found but cannot be executed, 1 anything else (too many open
/// files, out of memory: the program might run another time).
fn exec_failure_code(errno: Errno) -> u8 {
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => exit::NOT_FOUND,
        Errno::EACCES | Errno::EPERM | Errno::ENOEXEC | Errno::EISDIR => {
            exit::NOT_EXECUTABLE
        }
        _ => exit::RUNTIME,
    }
}

/// A forked child's report of a failed exec: `bidir-spawn: exec <program>: <error>`
/// in fixed pieces (no allocation after fork), then `_exit` with
/// [`exec_failure_code`].
fn exec_failed(program: &CString, errno: Errno) -> ! {
    for piece in [
        b"bidir-spawn: exec ".as_slice(),
        program.as_bytes(),
        b": ",
        errno.desc().as_bytes(),
        b"\n",
    ] {
        let _ = write(io::stderr(), piece); // best effort: no one to tell
    }
    die(b"", exec_failure_code(errno))
}

/// A forked child's last words: a fixed message on stderr, then `_exit`.
fn die(message: &[u8], code: u8) -> ! {
    let _ = write(io::stderr(), message); // best effort, as above
    // SAFETY: `_exit` ends the process at once and is async-signal-safe.
    unsafe { libc::_exit(i32::from(code)) }
}

// ANCHOR: command
/// The idiomatic way: `std::process::Command` makes the pipes (close-on-exec),
/// forks (or uses posix_spawn), resets SIGPIPE in the child, and reports an exec
/// failure as an error from `spawn()` itself, through a pipe of its own. What else
/// the child needs before exec goes in a `pre_exec` hook.
fn spawn_with_command(
    parent: Pid,
    program: &str,
    args: &[String],
) -> Result<Spawned, Failure> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0); // a group of its own, as in spawn()
    // SAFETY: the closure runs in the forked child before exec, so it may only make
    // async-signal-safe calls: prctl, getppid and sigprocmask are single system
    // calls; the error is built from a number, without allocating.
    unsafe {
        command.pre_exec(move || {
            set_pdeathsig(Signal::SIGKILL)?; // die with the parent, as in spawn()
            if getppid() != parent {
                // The parent is gone already.
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            // Command resets SIGPIPE, but not the signal mask: unblock our stop
            // signals, or the program could not be stopped by SIGTERM.
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            note!("{PROGRAM}: spawn {program}: {err}");
            let errno = Errno::from_raw(err.raw_os_error().unwrap_or(0));
            return Ok(Spawned::Failed(exec_failure_code(errno)));
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take())
    else {
        return Err(Failure::new("spawn", "piped stdin/stdout missing"));
    };
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    // `child` (std's handle) is dropped here; dropping it neither kills nor reaps
    // the process, so the same waitpid code reaps it below, whichever spawn made
    // it.
    Ok(Spawned::Running(
        pid,
        Box::new(stdin),
        Replies::new(Box::new(stdout)),
    ))
}
// ANCHOR_END: command

enum Spawned {
    Running(Pid, Box<dyn Write>, Replies),
    /// Spawning failed; the exit code to use (127, 126 or 1).
    Failed(u8),
}

/// How the conversation ended.
enum Talk {
    /// Both replies arrived.
    Done,
    /// The child closed its stdout (or its stdin) before replying: it exited or
    /// crashed.
    ChildGone,
    /// No reply within the time limit: a deadlock, most likely.
    NoReply(Duration),
    /// Both pipes are closed, and the child has not exited within the time limit.
    NoExit(Duration),
    /// SIGINT, SIGTERM or SIGHUP arrived.
    Stopped(Signal),
    /// A system call failed.
    Failed(Failure),
}

impl Talk {
    /// Whether the child may be left to exit by itself once our pipes close.
    fn is_clean(&self) -> bool {
        matches!(self, Talk::Done | Talk::ChildGone)
    }
}

// ANCHOR: converse
/// The document's main(): say hello twice, each time waiting for the reply line.
fn converse(
    me: Pid,
    to_child: &mut BufWriter<Box<dyn Write>>,
    replies: &mut Replies,
    timeout: Duration,
    stops: &StopSignals,
) -> Talk {
    for i in 1..=2 {
        // writeln! only fills our buffer; flush() sends the line, in one write.
        // Without it the child would wait for a line that sits in our memory.
        let hello = writeln!(to_child, "Hello {i} from parent {me}")
            .and_then(|()| to_child.flush());
        match hello {
            Ok(()) => {}
            // The child closed its stdin: it exited, or it will not read any more.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                return Talk::ChildGone;
            }
            Err(err) => {
                return Talk::Failed(Failure::new("write to the child", err));
            }
        }
        match replies.next_line(timeout, stops) {
            Ok(Reply::Line(reply)) => note!("Parent got: \"{reply}\""),
            Ok(Reply::Eof) => return Talk::ChildGone,
            Ok(Reply::Silent) => return Talk::NoReply(timeout),
            Ok(Reply::Stopped(signal)) => return Talk::Stopped(signal),
            Err(failure) => return Talk::Failed(failure),
        }
    }
    Talk::Done
}
// ANCHOR_END: converse

// ANCHOR: finish
/// Says why the child must stop now, and ends its process group (see
/// [`end_group`]).
fn stop_child(child: Pid, talk: &Talk) -> Option<WaitStatus> {
    match talk {
        // Most likely the reply sits in the child's buffer while each side waits
        // for the other; nothing in the kernel tells that apart from a slow child.
        Talk::NoReply(waited) => note!(
            "{PROGRAM}: no reply within {waited:?} \
             (deadlock: a reply left unflushed?); ending it"
        ),
        Talk::NoExit(waited) => note!(
            "{PROGRAM}: child {child} did not exit within {waited:?} of its pipes \
             closing; ending it"
        ),
        Talk::Stopped(signal) => {
            note!("{PROGRAM}: stopped by {signal}; ending child {child}'s group");
        }
        Talk::Failed(failure) => {
            note!("{PROGRAM}: {failure}; ending child {child}")
        }
        Talk::Done | Talk::ChildGone => {}
    }
    end_group(child)
}

/// Reaps the child (waiting for it if `stop_child` has not ended it already) and
/// turns the outcome into the exit code.
fn finish(
    child: Pid,
    mut talk: Talk,
    ended: Option<Option<WaitStatus>>,
    timeout: Duration,
    stops: &StopSignals,
) -> ExitCode {
    let status = match ended {
        Some(status) => status,
        // Our pipes are closed: it gets as long to exit as it had to reply.
        None => match wait_for_exit(child, timeout, stops) {
            Ok(status) => Some(status),
            Err(late) => {
                talk = late;
                stop_child(child, &talk)
            }
        },
    };
    let how =
        status.map_or_else(|| "could not be reaped".to_owned(), describe_wait);
    let code = match &talk {
        Talk::Done if status.is_some_and(exited_ok) => return ExitCode::SUCCESS,
        Talk::ChildGone => {
            note!("{PROGRAM}: child {child} ended before replying: {how}");
            return match status {
                Some(WaitStatus::Exited(_, code @ (126 | 127))) => {
                    ExitCode::from(u8::try_from(code).unwrap_or(exit::RUNTIME))
                }
                _ => ExitCode::from(exit::RUNTIME),
            };
        }
        Talk::Done | Talk::Failed(_) => ExitCode::from(exit::RUNTIME),
        Talk::NoReply(_) | Talk::NoExit(_) => ExitCode::from(exit::TIMEOUT),
        Talk::Stopped(signal) => signal_exit(*signal as i32),
    };
    note!("{PROGRAM}: child {child} {how}");
    code
}

/// Waits up to `timeout` for the child to exit, watching for stop signals, and
/// reaps it.
fn wait_for_exit(
    child: Pid,
    timeout: Duration,
    stops: &StopSignals,
) -> Result<WaitStatus, Talk> {
    let deadline = Instant::now() + timeout;
    while !has_exited(child) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Talk::NoExit(timeout));
        }
        match stops.wait(left.min(Duration::from_millis(10))) {
            Ok(None) => {}
            Ok(Some(signal)) => return Err(Talk::Stopped(signal)),
            Err(failure) => return Err(Talk::Failed(failure)),
        }
    }
    // Whatever the child left running in its group (a background job that still
    // holds our pipes: deadlock number 4) ends with it.
    let _ = killpg(child, Signal::SIGKILL);
    waitpid(child, None)
        .context(format!("waitpid child {child}"))
        .map_err(Talk::Failed)
}

/// Ends the child's process group, grandchildren included: SIGTERM, up to [`GRACE`]
/// for the child to exit, then SIGKILL for whatever is left. Reaps the child;
/// returns how it ended (`None` only if waitpid itself failed).
fn end_group(child: Pid) -> Option<WaitStatus> {
    let _ = killpg(child, Signal::SIGTERM); // errors: the group is gone already
    let _ = killpg(child, Signal::SIGCONT); // a stopped process acts on it only now
    if !exits_within(child, GRACE) {
        note!(
            "{PROGRAM}: child {child} still running {GRACE:?} after SIGTERM; \
             SIGKILL"
        );
    }
    // The child is not reaped yet, so its pid (the group's id) cannot have been
    // given to another process: this SIGKILL reaches only what is left of the
    // child's group.
    let _ = killpg(child, Signal::SIGKILL);
    waitpid(child, None).ok()
}

/// Whether the child exits within `limit` (checked every 5 ms), without reaping it.
fn exits_within(child: Pid, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if has_exited(child) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether the child has exited, without reaping it (`WNOWAIT`): until we reap it,
/// its pid and so its process group id stay ours to signal.
fn has_exited(child: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(child), flags), Ok(WaitStatus::StillAlive))
}
// ANCHOR_END: finish

// ANCHOR: replies
/// Reads the child's replies line by line, never waiting longer than asked.
///
/// Python's `input()` would block forever on a child that never answers. Here every
/// wait is a `poll` with a timeout, on the pipe and on the stop signals, and bytes
/// after a newline are kept for the next line.
struct Replies {
    from_child: Box<dyn AsFd>,
    pending: Vec<u8>,
}

enum Reply {
    Line(String),
    /// The child closed its end: it has exited, or closed its stdout.
    Eof,
    /// Nothing (or no complete line) within the time limit.
    Silent,
    /// A stop signal arrived first.
    Stopped(Signal),
}

impl Replies {
    fn new(from_child: Box<dyn AsFd>) -> Replies {
        Replies {
            from_child,
            pending: Vec::new(),
        }
    }

    fn next_line(
        &mut self,
        timeout: Duration,
        stops: &StopSignals,
    ) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let newline = self.pending.iter().position(|byte| *byte == b'\n');
            if newline.unwrap_or(self.pending.len()) > MAX_REPLY {
                let why = format!("a reply line is longer than {MAX_REPLY} bytes");
                return Err(Failure::new("read the pipe from the child", why));
            }
            if let Some(end) = newline {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]).into_owned();
                return Ok(Reply::Line(text));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Reply::Silent);
            }
            let fd = self.from_child.as_fd();
            let mut ready = [
                PollFd::new(fd, PollFlags::POLLIN),
                PollFd::new(stops.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut ready, poll_timeout(left)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(errno).context("poll the pipe from the child");
                }
            }
            if let Some(signal) = stops.take() {
                return Ok(Reply::Stopped(signal));
            }
            if ready[0].revents().is_none_or(|events| events.is_empty()) {
                continue; // nothing yet: the deadline check decides
            }
            let mut chunk = [0u8; 4096];
            let n = read(fd, &mut chunk).context("read the pipe from the child")?;
            if n == 0 && self.pending.is_empty() {
                return Ok(Reply::Eof);
            }
            if n == 0 {
                // EOF after a partial line: deliver it, the next call reports EOF.
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                return Ok(Reply::Line(text));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}
// ANCHOR_END: replies

/// A `poll` timeout for what is `left` of a wait, at most a second (the caller
/// loops).
fn poll_timeout(left: Duration) -> PollTimeout {
    PollTimeout::from(u16::try_from(left.as_millis().min(1000)).unwrap_or(1000))
}

// ANCHOR: stops
/// SIGINT, SIGTERM and SIGHUP, blocked and read from a descriptor (`signalfd`)
/// instead of run as handlers: every wait polls that descriptor beside what it
/// waits for, so a stop signal is seen at once, even while we wait for a reply or
/// for the child to exit, and a second Ctrl-C only waits, blocked, while the first
/// one's clean-up runs.
struct StopSignals(SignalFd);

impl StopSignals {
    fn block() -> Result<StopSignals, Failure> {
        let mut stops = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            stops.add(signal);
        }
        stops.thread_block().context("sigprocmask SIG_BLOCK")?;
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        let fd = SignalFd::with_flags(&stops, flags).context("signalfd")?;
        Ok(StopSignals(fd))
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// The stop signal that has arrived, if any; never waits.
    fn take(&self) -> Option<Signal> {
        let info = self.0.read_signal().ok()??;
        Signal::try_from(i32::try_from(info.ssi_signo).ok()?).ok()
    }

    /// Waits up to `limit` for a stop signal.
    fn wait(&self, limit: Duration) -> Result<Option<Signal>, Failure> {
        let mut ready = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        match poll(&mut ready, poll_timeout(limit)) {
            Ok(_) | Err(Errno::EINTR) => Ok(self.take()),
            Err(errno) => Err(errno).context("poll signalfd"),
        }
    }
}
// ANCHOR_END: stops

/// Closes our ends of the two pipes, which the hand-written spawn put on fd 0 and
/// fd 1, by putting /dev/null there instead (closing fd 0 or 1 outright would let
/// the next file we open take its number).
fn close_stdin_and_stdout() -> Result<(), Failure> {
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")?;
    dup2_stdin(&null).context("dup2 /dev/null onto stdin")?;
    dup2_stdout(&null).context("dup2 /dev/null onto stdout")?;
    Ok(()) // `null` closes here; fd 0 and fd 1 are its copies
}

/// The time limit for each reply: `--reply-timeout`, or by default what the
/// document's child needs at this speed (3 s before it reads, 3 s before it
/// replies) plus 2 s.
fn reply_timeout(options: &Options) -> Duration {
    let secs = options
        .reply_timeout
        .unwrap_or(2.0 + 2.0 * CHILD_WAIT_SECS / options.speed);
    Duration::from_secs_f64(secs)
}

/// The program to spawn: the one named after `--`, or bidir-child with the
/// document's argument `spam`.
fn program_and_args(options: &Options) -> Result<(String, Vec<String>), Failure> {
    if let Some((program, args)) = options.program.split_first() {
        return Ok((program.clone(), args.to_vec()));
    }
    let child = child_program()?;
    let mut args = vec!["--speed".to_owned(), options.speed.to_string()];
    if !options.flush {
        args.push("--no-flush".to_owned());
    }
    args.push("spam".to_owned());
    Ok((child.to_string_lossy().into_owned(), args))
}

/// bidir-child's path: next to this executable, where cargo builds both.
fn child_program() -> Result<PathBuf, Failure> {
    let me = std::env::current_exe().context("find this program (current_exe)")?;
    let child = me.with_file_name(CHILD);
    if let Some(cargo) = std::env::var_os("CARGO")
        && out_of_date(&child)
    {
        build_child(Path::new(&cargo), &me)?;
    }
    // Still missing (not started by cargo): exec reports it, with status 127.
    Ok(child)
}

/// Whether `child` is missing, or older than its source: edited since it was built,
/// and `cargo run -p bidir-spawn` rebuilds only bidir-spawn. Without the source at
/// hand (a copied binary), whatever is built is used.
fn out_of_date(child: &Path) -> bool {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/bidir-child.rs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified());
    let Ok(built) = modified(child) else {
        return true; // not built at all
    };
    modified(&source).is_ok_and(|edited| edited > built)
}

/// `cargo run -p bidir-spawn` builds only bidir-spawn. Started by cargo (it says so
/// in `CARGO`), build bidir-child the same way, into the same directory.
fn build_child(cargo: &Path, me: &Path) -> Result<(), Failure> {
    let profile_dir = me.parent().unwrap_or(Path::new("."));
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    note!(
        "{PROGRAM}: building {CHILD} first \
         (cargo run builds only the binary it runs)"
    );
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", CHILD, "--profile", profile])
        .arg("--target-dir")
        .arg(profile_dir.parent().unwrap_or(Path::new("target")));
    if let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") {
        build
            .arg("--manifest-path")
            .arg(Path::new(&package).join("Cargo.toml"));
    }
    let status = build.status().context("run cargo build")?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(format!("cargo build --bin {CHILD}"), status))
    }
}

/// argv for exec, as C strings. A NUL byte would cut an argument short: refuse it.
fn c_argv(program: &str, args: &[String]) -> Result<Vec<CString>, UsageError> {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|arg| {
            CString::new(arg).map_err(|_| {
                UsageError(format!("argument {arg:?} contains a NUL byte"))
            })
        })
        .collect()
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        speed: 1.0,
        flush: true,
        reply_timeout: None,
        command: false,
        program: Vec::new(),
    };
    while let Some(arg) = parser.next()? {
        if parser.options_ended() || !arg.starts_with('-') || arg == "-" {
            // The program's name: what follows is all the program's, dashes
            // included, as with `env` or `sudo`.
            options.program.push(arg);
            options.program.extend(parser.rest());
            break;
        }
        match arg.as_str() {
            "--speed" => options.speed = parser.value_in(&arg, SPEED_RANGE)?,
            "--no-flush" => options.flush = false,
            "--reply-timeout" => {
                let secs = parser.value_in(&arg, REPLY_TIMEOUT_RANGE)?;
                options.reply_timeout = Some(secs);
            }
            "--command" => options.command = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if !options.flush && !options.program.is_empty() {
        return Err(UsageError(
            "--no-flush changes bidir-child only, not PROGRAM".to_owned(),
        ));
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--speed X] [--no-flush] [--reply-timeout SECS] [--command]
                   [-- PROGRAM [ARGS...]]

The parent makes two pipes, forks, and rewires its stdin/stdout onto them; the child
rewires its own and execs PROGRAM (by default {CHILD} --speed X spam, the
documents' pipes_test_child.py, found next to this program). The parent sends
`Hello 1 from parent <pid>` and `Hello 2 ...`, and prints each reply line on
stderr as `Parent got: \"<reply>\"` (the documents' pipes.py).

Options:
  --speed X             the child's 3 s waits are X times shorter, 0.001 to 1000000
                        (default 1: the document's run takes about 12 s)
  --no-flush            DELIBERATELY BROKEN: {CHILD} does not flush its replies, as
                        in the document with the flushes removed; the parent detects
                        the deadlock, ends the child and exits 3
  --reply-timeout SECS  how long to wait for each reply, 0.001 to 86400 (default:
                        2 s more than the document's child needs at this speed)
  --command             spawn with std::process::Command instead of fork + exec
  -h, --help            print this help

SIGINT, SIGTERM and SIGHUP end the child's whole process group (SIGTERM, SIGKILL
after 300 ms), then the parent (exit 128 + the signal's number).
Exit status: 0 both replies arrived and the child exited 0; 1 a system call failed
or the child ended badly; 2 bad command line; 3 no reply in time (deadlock) or the
child would not exit; 127 / 126 the program was not found / not executable.
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // No fork here: c_argv is what runs before the fork, and must refuse before it.
    #[test]
    fn an_argument_with_a_nul_byte_is_refused_before_any_fork() {
        let err = c_argv("cat", &["ok".to_owned(), "a\0b".to_owned()]).unwrap_err();
        assert_eq!(err.0, "argument \"a\\0b\" contains a NUL byte");
        assert_eq!(c_argv("cat", &["-n".to_owned()]).unwrap().len(), 2);
    }

    #[test]
    fn exec_errors_map_to_the_shells_codes_by_kind() {
        assert_eq!(exec_failure_code(Errno::ENOENT), 127);
        assert_eq!(exec_failure_code(Errno::ENOTDIR), 127);
        for errno in [Errno::EACCES, Errno::EPERM, Errno::ENOEXEC, Errno::EISDIR] {
            assert_eq!(exec_failure_code(errno), 126, "{errno}");
        }
        for errno in [Errno::EMFILE, Errno::EAGAIN, Errno::ENOMEM, Errno::E2BIG] {
            assert_eq!(exec_failure_code(errno), 1, "{errno}");
        }
    }
}
