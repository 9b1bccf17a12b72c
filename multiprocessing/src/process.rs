//! Python's `Process(target=f).start()` and `.join()`, under the `fork` start
//! method, and the parts the Python module leaves to luck: a stop signal (Ctrl-C,
//! SIGTERM, SIGHUP) ends and reaps every child, and a child whose parent dies ends
//! at once.
//!
//! A [`Team`] is the parent's side: it forks children ([`Team::start`]), reaps them
//! ([`Team::join`]), waits without ever blocking past a stop signal
//! ([`Team::sleep`], [`Team::wait_readable`]), and at the end ([`Team::end`]) stops
//! whatever is still running: SIGTERM, a short grace, then SIGKILL, and always
//! `waitpid`.

use crate::lock::{Guard, Lock};
use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, describe_wait, exit, exited_ok, note};
use lesson_kit::{signal_exit, signal_name};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The signals that stop a lesson cleanly.
pub const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// How long children get to end after SIGTERM before they get SIGKILL.
pub const GRACE: Duration = Duration::from_millis(300);

/// The longest a wait sleeps without looking at the stop flag (the self-pipe wakes
/// it sooner; this bound is a second line of defence).
const SLICE: Duration = Duration::from_millis(250);

/// The stop signal that arrived (0: none yet). Set by the signal handler.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Which side of a `fork` we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Child,
    Parent(Pid),
}

/// Why the parent's work ended early.
#[derive(Debug)]
pub enum Halt {
    /// A stop signal arrived (its number).
    Stopped(i32),
    /// Something failed: a system call, or a child that ended badly.
    Failed(Failure),
}

impl From<Failure> for Halt {
    fn from(failure: Failure) -> Halt {
        Halt::Failed(failure)
    }
}

/// The stop signal that has arrived, if any.
pub fn stop_signal() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

/// The parent's side of the lesson: its children and its stop signals.
pub struct Team {
    program: &'static str,
    /// Children not reaped yet.
    children: Vec<Pid>,
    /// The read end of the self-pipe: a byte arrives on every stop signal.
    wake: UnixStream,
}

impl Team {
    // ANCHOR: signals
    /// Installs the stop signals. From here on SIGINT, SIGTERM and SIGHUP set a
    /// flag and write a byte into a self-pipe, so a parent waiting (in `poll`) for
    /// a child, a record or a timeout wakes up at once. Nothing ever blocks without
    /// watching that pipe: signal-hook installs its handlers with SA_RESTART, so a
    /// blocking `waitpid` or `read` would just carry on after Ctrl-C.
    pub fn new(program: &'static str) -> Result<Team, Failure> {
        let (wake, waker) = UnixStream::pair().context("socketpair (self-pipe)")?;
        wake.set_nonblocking(true).context("O_NONBLOCK self-pipe")?;
        // Each handler owns the descriptor it writes to: two copies and the end
        // itself, one per signal.
        let copy = || waker.try_clone().context("dup (self-pipe)");
        let ends = [copy()?, copy()?, waker];
        for (signal, end) in STOP_SIGNALS.into_iter().zip(ends) {
            let what = format!("install handler for {}", signal_name(signal));
            let value = usize::try_from(signal).unwrap_or(usize::MAX);
            signal_hook::flag::register_usize(signal, &STOP_SIGNAL, value)
                .context(&what)?;
            signal_hook::low_level::pipe::register(signal, end).context(&what)?;
        }
        Ok(Team {
            program,
            children: Vec::new(),
            wake,
        })
    }
    // ANCHOR_END: signals

    /// The whole life of a parent: makes the team, runs `work` (the program's
    /// choreography), then [`Team::end`]: whatever `work` left running is stopped
    /// and reaped, on every path.
    pub fn lead(
        program: &'static str,
        work: impl FnOnce(&mut Team) -> Result<ExitCode, Halt>,
    ) -> ExitCode {
        let mut team = match Team::new(program) {
            Ok(team) => team,
            Err(failure) => {
                note!("{program}: {failure}");
                return ExitCode::from(exit::RUNTIME);
            }
        };
        let outcome = work(&mut team);
        team.end(outcome)
    }

    /// Ok, or `Halt::Stopped` once a stop signal has arrived.
    pub fn check(&self) -> Result<(), Halt> {
        match stop_signal() {
            Some(signal) => Err(Halt::Stopped(signal)),
            None => Ok(()),
        }
    }

    /// Takes a cross-process lock, unless a stop signal comes first.
    pub fn lock<'a>(&self, lock: &'a Lock) -> Result<Guard<'a>, Halt> {
        self.check()?;
        lock.lock_unless(|| stop_signal().is_some())
            .ok_or_else(|| self.check().err().unwrap_or(Halt::Stopped(SIGINT)))
    }

    // ANCHOR: start
    /// Python's `Process(target=body).start()`: forks a child that runs `body` and
    /// exits with the code it returns. Returns the child's pid; never returns in
    /// the child.
    pub fn start(&mut self, body: impl FnOnce() -> u8) -> Result<Pid, Halt> {
        match self.fork()? {
            Side::Child => run_child(body),
            Side::Parent(child) => Ok(child),
        }
    }

    /// `fork`, for a parent that wants to write the child's part in line
    /// (`Side::Child => run_child(|| ...)`) and close different ends on each side.
    pub fn fork(&mut self) -> Result<Side, Halt> {
        self.check()?;
        let parent = getpid();
        // Bytes waiting in our stdout buffer would be copied into the child and
        // printed twice. (The lesson writes lines with `say`, unbuffered; this is
        // the habit.)
        io::stdout().flush().context("flush stdout")?;
        // The stop signals are blocked across the fork: one arriving in the child
        // before it has put back the default actions would run the parent's handler
        // there, and be lost. Blocked, it waits (the child starts with no signal
        // pending), and acts once the child unblocks it.
        let before = block(stop_set()).context("sigprocmask SIG_BLOCK")?;
        // SAFETY: after `fork` in a multi-threaded process the child may only make
        // async-signal-safe calls, because another thread may have held a lock (the
        // allocator's, stdout's) at that moment. This process has one thread:
        // neither the lesson nor signal-hook's flag and pipe handlers start one. So
        // the child is a full copy of a consistent process and may run ordinary
        // Rust code, until it ends with `_exit` (`run_child`), never returning into
        // `main`.
        match unsafe { fork() } {
            Err(errno) => {
                let _ = block_only(before); // back as it was; the fork is the error
                Err(Failure::new("fork", errno).into())
            }
            Ok(ForkResult::Child) => {
                become_child(parent, before);
                Ok(Side::Child)
            }
            Ok(ForkResult::Parent { child }) => {
                self.children.push(child);
                block_only(before).context("sigprocmask SIG_SETMASK")?;
                Ok(Side::Parent(child))
            }
        }
    }
    // ANCHOR_END: start

    // ANCHOR: join
    /// Python's `p.join()`: waits for `child` to end and reaps it. Returns how it
    /// ended. On a stop signal returns `Halt::Stopped` with the child still
    /// running, for [`Team::end`] to stop.
    pub fn join(&mut self, child: Pid) -> Result<WaitStatus, Halt> {
        // A pidfd is the child as a descriptor: it turns readable when the child
        // ends, so one `poll` watches for that and for a stop signal at once, and
        // `waitpid` is called when it cannot block.
        let ended = pidfd_open(child)?;
        self.wait_readable(ended.as_fd())?;
        drop(ended); // done with it: the child is a zombie now, waitpid reaps it
        let status = waitpid(child, None)
            .map_err(|errno| Failure::new(format!("waitpid {child}"), errno))?;
        self.children.retain(|pid| *pid != child);
        Ok(status)
    }
    // ANCHOR_END: join

    /// [`Team::join`], and a failure unless the child exited with status 0.
    pub fn join_ok(&mut self, child: Pid) -> Result<(), Halt> {
        let status = self.join(child)?;
        if exited_ok(status) {
            Ok(())
        } else {
            Err(
                Failure::new(format!("child {child}"), describe_wait(status))
                    .into(),
            )
        }
    }

    /// Joins every child still running, in the order they were started. A child
    /// that ended badly (a status other than 0, a signal) is named on stderr, and
    /// the first one is the error; the others are still reaped.
    pub fn join_all(&mut self) -> Result<(), Halt> {
        let mut first_bad = None;
        for child in self.children.clone() {
            let status = self.join(child)?;
            if !exited_ok(status) {
                let failure =
                    Failure::new(format!("child {child}"), describe_wait(status));
                note!("{}: {failure}", self.program);
                first_bad.get_or_insert(failure);
            }
        }
        match first_bad {
            Some(failure) => Err(failure.into()),
            None => Ok(()),
        }
    }

    /// Sleeps for `duration`, unless a stop signal comes first.
    pub fn sleep(&self, duration: Duration) -> Result<(), Halt> {
        let until = Instant::now() + duration;
        loop {
            self.check()?;
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.pause(left.min(SLICE), None)?;
        }
    }

    /// Waits until `fd` is readable (or at EOF, or in error: a `read` will tell),
    /// unless a stop signal comes first.
    pub fn wait_readable(&self, fd: BorrowedFd<'_>) -> Result<(), Halt> {
        loop {
            self.check()?;
            if self.pause(SLICE, Some(fd))? {
                return Ok(());
            }
        }
    }

    /// One `poll` on the self-pipe (and `fd`), for at most `timeout`. Returns
    /// whether `fd` is ready. Drains the self-pipe if a signal wrote into it, so
    /// the next pause sleeps again.
    fn pause(
        &self,
        timeout: Duration,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<bool, Halt> {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
        if let Some(fd) = fd {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(Failure::new("poll", errno).into()),
        }
        let readable = |fd: Option<&PollFd>| {
            fd.and_then(PollFd::revents)
                .is_some_and(|events| !events.is_empty())
        };
        let ready = readable(fds.get(1));
        if readable(fds.first()) {
            let mut drain = [0u8; 64];
            // Non-blocking: stops at EAGAIN once the pipe is empty.
            while matches!((&self.wake).read(&mut drain), Ok(1..)) {}
        }
        self.check()?;
        Ok(ready)
    }

    // ANCHOR: end
    /// The last thing `main` does: stops and reaps every child still running, says
    /// why the lesson ended, and returns the exit code: the outcome's, 1 for a
    /// failure, 128 + n for stop signal n.
    pub fn end(mut self, outcome: Result<ExitCode, Halt>) -> ExitCode {
        // A child killed by Ctrl-C (the terminal signals the whole process group)
        // may be reaped before we notice our own SIGINT: the signal is the real
        // reason.
        let outcome = match (outcome, stop_signal()) {
            (Err(Halt::Failed(_)), Some(signal)) => Err(Halt::Stopped(signal)),
            (outcome, _) => outcome,
        };
        let ended = self.stop_children();
        let what = match ended {
            0 => String::new(),
            1 => "; 1 child ended and reaped".to_owned(),
            n => format!("; {n} children ended and reaped"),
        };
        match outcome {
            Ok(code) => code,
            Err(Halt::Stopped(signal)) => {
                note!("{}: stopped by {}{what}", self.program, signal_name(signal));
                signal_exit(signal)
            }
            Err(Halt::Failed(failure)) => {
                note!("{}: {failure}{what}", self.program);
                ExitCode::from(exit::RUNTIME)
            }
        }
    }

    /// SIGTERM to every child still running, a grace of [`GRACE`], then SIGKILL;
    /// every one reaped. Returns how many there were.
    fn stop_children(&mut self) -> usize {
        let count = self.children.len();
        for child in &self.children {
            let _ = kill(*child, Signal::SIGTERM); // a zombie ignores it: fine
        }
        let until = Instant::now() + GRACE;
        while !self.children.is_empty() {
            self.children.retain(|child| {
                !matches!(
                    waitpid(*child, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
                )
            });
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = self.pause(left.min(Duration::from_millis(20)), None);
        }
        for child in self.children.drain(..) {
            note!(
                "{}: child {child} still running {GRACE:?} after SIGTERM: SIGKILL",
                self.program
            );
            let _ = kill(child, Signal::SIGKILL);
            // SIGKILL cannot be caught: this wait is short.
            let _ = waitpid(child, None);
        }
        count
    }
    // ANCHOR_END: end
}

// ANCHOR: become_child
/// The first thing a child does after `fork`.
fn become_child(parent: Pid, mask: SigSet) {
    // The parent's stop handlers write into the parent's self-pipe: a child wants
    // the default actions back, so Ctrl-C at the terminal (sent to the whole
    // process group) and the parent's SIGTERM end it.
    for signal in STOP_SIGNALS {
        // SAFETY: resetting a disposition to SIG_DFL is async-signal-safe and
        // involves no Rust code running in a handler.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    // Now a stop signal may come: it acts by default (a pending one acts at once).
    if block_only(mask).is_err() {
        exit_child(exit::RUNTIME);
    }
    // If the parent dies (even by SIGKILL), the kernel sends us SIGKILL: no orphan
    // lives on. The parent may have died before this line: then our parent is
    // already someone else, and we leave at once.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
        || getppid() != parent
    {
        exit_child(exit::RUNTIME);
    }
}
// ANCHOR_END: become_child

/// The stop signals, as a signal set.
fn stop_set() -> SigSet {
    let mut set = SigSet::empty();
    for signal in STOP_SIGNALS {
        if let Ok(signal) = Signal::try_from(signal) {
            set.add(signal);
        }
    }
    set
}

/// `pidfd_open(2)` (Linux 5.3): a descriptor for `child` that turns readable when
/// it ends (close-on-exec, as the kernel always makes it).
fn pidfd_open(child: Pid) -> Result<OwnedFd, Failure> {
    let what = || format!("pidfd_open {child}");
    // SAFETY: pidfd_open takes a pid and flags (none) and returns a new descriptor
    // or -1; no memory of ours is involved.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    if fd < 0 {
        return Err(Failure::new(what(), Errno::last()));
    }
    let fd = RawFd::try_from(fd).map_err(|_| Failure::new(what(), "not an fd"))?;
    // SAFETY: the kernel just made this descriptor for us: it is open and owned
    // by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks `set` and returns the mask as it was.
fn block(set: SigSet) -> nix::Result<SigSet> {
    let mut before = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut before))?;
    Ok(before)
}

/// Makes `mask` the signal mask again.
fn block_only(mask: SigSet) -> nix::Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&mask), None)
}

/// The child's whole life: runs `body` and exits with the code it returns (1 if it
/// panics: a panic must not unwind into the parent's code that forked us).
pub fn run_child(body: impl FnOnce() -> u8) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or(exit::RUNTIME);
    exit_child(code)
}

/// Ends a child without returning into the parent's code and without running
/// exit-time clean-up that belongs to the parent.
pub fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the process at once; it is async-signal-safe and touches
    // no memory of ours.
    unsafe { libc::_exit(i32::from(code)) }
}

/// What a child returns from its body: 0, or 1 after naming the failure on stderr.
pub fn child_code(program: &str, result: Result<(), Failure>) -> u8 {
    match result {
        Ok(()) => exit::OK,
        Err(failure) => {
            note!("{program}: child {}: {failure}", getpid());
            exit::RUNTIME
        }
    }
}

// ANCHOR: say
/// Prints one line on stdout with a single `write` (looping only on a short write),
/// so a line from one process is never split by a line from another (a pipe's
/// writes of up to PIPE_BUF bytes are atomic), and nothing is left in a buffer when
/// a child `_exit`s.
pub fn say(line: &str) -> Result<(), Failure> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    write_stdout(&bytes)
}
// ANCHOR_END: say

/// Writes all of `bytes` to stdout, bypassing Rust's buffer.
pub fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let stdout = io::stdout();
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(stdout.as_fd(), rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(Failure::new("write stdout", errno)),
        }
    }
    Ok(())
}

/// The `main` of a program that takes no option but `--help`: prints the help or
/// the usage error, or else [`Team::lead`]s `work`.
pub fn main_without_options(
    program: &'static str,
    usage: fn() -> String,
    work: impl FnOnce(&mut Team) -> Result<ExitCode, Halt>,
) -> ExitCode {
    match parse_command_line(program, || no_options(program), usage) {
        Ok(()) => Team::lead(program, work),
        Err(code) => code, // --help printed, or a usage error reported
    }
}

/// The option parser of a program whose only option is `--show-fds`: whether it
/// was given; `None` for `--help`.
pub fn show_fds_option(program: &str) -> Result<Option<bool>, UsageError> {
    let mut parser = Parser::from_env(program)?;
    let mut show = false;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--show-fds" => show = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(show))
}

/// The option parser of a program that takes none but `--help`.
fn no_options(program: &str) -> Result<Option<()>, UsageError> {
    let mut parser = Parser::from_env(program)?;
    match parser.next()?.as_deref() {
        None => Ok(Some(())),
        Some("-h" | "--help") => Ok(None),
        Some(arg) => Err(parser.unexpected(arg)),
    }
}
