//! Plumbing the `simple-ipc` programs share, so each binary reads as its mechanism.
//!
//! - [`Stop`]: SIGINT, SIGTERM and SIGHUP become a byte in a pipe (the self-pipe
//!   trick), so every wait can also watch for them and end the program cleanly;
//! - [`Ended`] and [`conclude`]: one place that turns "stopped by a signal" or "a
//!   call failed" into the message and the exit status (128 + n, or 1);
//! - [`sibling`]: the path of another binary of this package, next to the running
//!   one, so nothing needs to be on `PATH`;
//! - [`Exec`]: an `argv` built before `fork`, and the child's side of `exec`;
//! - [`reap`] and [`end_child`]: every child is waited for, with a bound, on every
//!   path;
//! - [`Scratch`]: a fresh temporary directory that is removed on every exit path;
//! - [`show_fds`]: with `--show-fds`, the descriptor table at a step of the wiring.
//!
//! Every system call a lesson is about (`fork`, `exec`, `dup2`, `pipe`, `setenv`,
//! `rename`) stays in the lesson's own file.

use lesson_kit::args::{UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit, note, signal_exit, signal_name};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::unistd::{Pid, dup, execv, getpid, getppid, pipe2, read};
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The signals that stop a lesson cleanly.
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The last stop signal that arrived (0: none yet). Set by the handler, read by
/// [`Stop`].
static LAST_STOP: AtomicUsize = AtomicUsize::new(0);

/// Set by `--show-fds`: [`show_fds`] prints tables.
static SHOW_FDS: AtomicBool = AtomicBool::new(false);

/// `--show-fds`: from now on, [`show_fds`] prints this process's descriptor table.
pub fn show_fds_from_now(on: bool) {
    SHOW_FDS.store(on, Ordering::Relaxed);
}

/// Whether `--show-fds` was given (to pass it on to a program we exec).
pub fn showing_fds() -> bool {
    SHOW_FDS.load(Ordering::Relaxed)
}

/// With `--show-fds`, prints this process's descriptor table on stderr, headed
/// `[fds] <who> <pid>, <step>:` (see `lesson_kit::fds`). It reads `/proc` and
/// allocates: call it in the parent, in the child of this single-threaded process,
/// or in an exec'd program.
pub fn show_fds(who: &str, step: &str) {
    if showing_fds() {
        lesson_kit::fds::show(who, step);
    }
}

/// How a lesson ended early: a stop signal, or a failed call.
#[derive(Debug)]
pub enum Ended {
    /// SIGINT, SIGTERM or SIGHUP arrived: clean up, then exit 128 + n.
    Signal(i32),
    /// A call failed: clean up, report it, exit 1.
    Failed(Failure),
    /// A program could not be run: report it, exit with the shell's code (127 not
    /// found, 126 not executable).
    Exec(u8, Failure),
}

impl From<Failure> for Ended {
    fn from(failure: Failure) -> Ended {
        Ended::Failed(failure)
    }
}

/// What `main` returns: the lesson's own exit code, or how it ended early.
pub type Outcome = Result<ExitCode, Ended>;

/// A lesson's `main`: parse the command line (`--help` and usage errors end here,
/// with exit status 0 and 2), run the lesson, and turn its outcome into the exit
/// status.
pub fn lesson_main<T>(
    program: &str,
    parse: impl FnOnce() -> Result<Option<T>, UsageError>,
    usage: impl Fn() -> String,
    run: impl FnOnce(&T) -> Outcome,
) -> ExitCode {
    match parse_command_line(program, parse, usage) {
        Ok(options) => conclude(program, run(&options)),
        Err(code) => code, // --help printed, or a usage error reported
    }
}

/// Turns a lesson's outcome into its exit status, with a note on stderr for an
/// early end. Called by `main` after everything the lesson made is gone (children
/// reaped, files removed: they are dropped when the lesson's function returns).
pub fn conclude(program: &str, outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(Ended::Signal(signal)) => {
            note!("{program}: stopped by {}", signal_name(signal));
            signal_exit(signal)
        }
        Err(Ended::Failed(failure)) => {
            note!("{program}: {failure}");
            ExitCode::from(exit::RUNTIME)
        }
        Err(Ended::Exec(code, failure)) => {
            note!("{program}: {failure}");
            ExitCode::from(code)
        }
    }
}

/// Checks a child's raw wait status: `Ok` for status 0. A child that exited 127 or
/// 126 could not exec its program (see [`Exec::exec_in_child`]): the lesson passes
/// that code on, as a shell does. Any other status is a failure (exit 1).
pub fn child_ok(what: &str, status: i32) -> Result<(), Ended> {
    let failure = || Failure::new(what, describe_raw(status));
    if !libc::WIFEXITED(status) {
        return Err(Ended::Failed(failure()));
    }
    match u8::try_from(libc::WEXITSTATUS(status)) {
        Ok(exit::OK) => Ok(()),
        Ok(code @ (exit::NOT_FOUND | exit::NOT_EXECUTABLE)) => {
            let why = if code == exit::NOT_FOUND {
                "not found"
            } else {
                "not executable"
            };
            let cause = format!("{}: exec failed, {why}", describe_raw(status));
            Err(Ended::Exec(code, Failure::new(what, cause)))
        }
        _ => Err(Ended::Failed(failure())),
    }
}

/// The error `Command::spawn` returned, as the shell's exit code: 127 if the
/// program does not exist, 126 if it cannot be executed.
pub fn spawn_failed(program: &Path, err: std::io::Error) -> Ended {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => exit::NOT_FOUND,
        _ => exit::NOT_EXECUTABLE,
    };
    Ended::Exec(
        code,
        Failure::new(format!("spawn {}", program.display()), err),
    )
}

/// The most [`read_all`] accepts: these lessons exchange a few lines.
pub const READ_LIMIT: usize = 1 << 20;

/// Reads `fd` to its end (EOF), waiting with `poll` so a stop signal is seen.
/// `what` names the object in errors (`read pipe from 4-upcase`).
pub fn read_all(
    fd: BorrowedFd<'_>,
    stop: &Stop,
    what: &str,
) -> Result<Vec<u8>, Ended> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // POLLIN; poll reports POLLHUP (every writer gone) without being asked.
        let events = PollFlags::POLLIN;
        if !stop.wait_for(Some((fd, events)), Duration::from_secs(1))? {
            // Nothing yet: wait again (the stop pipe is checked each time)
            continue;
        }
        let n = read(fd, &mut chunk).context(what)?;
        if n == 0 {
            return Ok(data); // EOF: every write end is closed
        }
        data.extend_from_slice(&chunk[..n]);
        if data.len() > READ_LIMIT {
            return Err(Failure::new(what, "more than 1 MiB").into());
        }
    }
}

// ANCHOR: stop
/// The stop signals, turned into something `poll` can wait for.
///
/// signal-hook installs its handlers with `SA_RESTART`, so a blocked `read` or
/// `waitpid` is *not* interrupted by Ctrl-C. Instead, every wait in these lessons
/// is a `poll` on the descriptor it waits for *and* on this pipe, which the handler
/// writes a byte into.
pub struct Stop {
    wake: OwnedFd,
}

impl Stop {
    /// Registers the handlers. Starts no thread: the process stays single-threaded,
    /// so the lessons may `fork` afterwards.
    pub fn install() -> Result<Stop, Failure> {
        let (wake, write_end) =
            pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).context("pipe2 (stop)")?;
        for signal in STOP_SIGNALS {
            let what = format!("install a handler for {}", signal_name(signal));
            // First the flag (which signal), then the byte (wake up): the reader
            // sees the flag set whenever it sees the byte.
            signal_hook::flag::register_usize(signal, &LAST_STOP, signal as usize)
                .context(&what)?;
            let copy = dup(&write_end).context("dup (stop pipe)")?;
            signal_hook::low_level::pipe::register(signal, copy).context(&what)?;
        }
        drop(write_end); // each handler owns a copy
        Ok(Stop { wake })
    }

    // ANCHOR_END: stop
    /// The stop signal that has arrived, if any.
    pub fn signal(&self) -> Option<i32> {
        match LAST_STOP.load(Ordering::SeqCst) {
            0 => None,
            signal => i32::try_from(signal).ok(),
        }
    }

    /// `Err(Ended::Signal)` once a stop signal has arrived.
    pub fn check(&self) -> Result<(), Ended> {
        match self.signal() {
            Some(signal) => Err(Ended::Signal(signal)),
            None => Ok(()),
        }
    }

    /// Waits until `fd` shows one of `events` (returns `true`) or `timeout` passes
    /// (`false`). A stop signal ends the wait with `Err(Ended::Signal)`.
    pub fn wait_for(
        &self,
        fd: Option<(BorrowedFd<'_>, PollFlags)>,
        timeout: Duration,
    ) -> Result<bool, Ended> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check()?;
            let left = deadline.saturating_duration_since(Instant::now());
            // At most a second per poll: a u16 of milliseconds always fits. Rounded
            // up, so that a wait of 0.3 ms sleeps 1 ms instead of spinning with a
            // timeout of 0.
            let ms = left.as_micros().div_ceil(1000).min(1000);
            let ms = u16::try_from(ms).unwrap_or(1000);
            let mut fds = vec![PollFd::new(self.wake.as_fd(), PollFlags::POLLIN)];
            if let Some((fd, events)) = fd {
                fds.push(PollFd::new(fd, events));
            }
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(errno) => return Err(Failure::new("poll", errno).into()),
            }
            let woken = fds[0].any().unwrap_or(false);
            let ready = fds.get(1).is_some_and(|fd| fd.any().unwrap_or(false));
            if woken {
                let mut bytes = [0u8; 16];
                // Empty the pipe; the flag says which
                let _ = read(&self.wake, &mut bytes);
            }
            // Checked even when the pipe looked empty: a signal that arrives while
            // poll returns for `fd` has its handler run before poll returns to us,
            // after the pipe was looked at. The flag is already set then; the byte
            // is not seen yet.
            self.check()?;
            if ready {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
        }
    }

    /// Sleeps for `pause`, ending early with `Err(Ended::Signal)` on a stop signal.
    pub fn sleep(&self, pause: Duration) -> Result<(), Ended> {
        self.wait_for(None, pause).map(drop)
    }
}

/// The path of another binary of this package (`2-echoenv`), in the same directory
/// as the running one: `cargo run` builds them all, so nothing needs to be
/// installed or on PATH.
pub fn sibling(name: &str) -> Result<PathBuf, Failure> {
    let me = std::env::current_exe().context("find this program (current_exe)")?;
    let dir = me.parent().ok_or_else(|| {
        Failure::new("current_exe", "the program has no directory")
    })?;
    Ok(dir.join(name))
}

/// Everything a forked child needs to `exec` a program, built *before* `fork`:
/// after it, the child may not allocate (see the pitfalls of fork in a
/// multi-threaded process).
pub struct Exec {
    path: CString,
    argv: Vec<CString>,
    parent: Pid,
    not_found: Vec<u8>,
    not_executable: Vec<u8>,
}

impl Exec {
    /// `program` with `argv` (`argv[0]` included: by convention the program's name,
    /// but any string the caller likes). Fails on a NUL byte, which C strings
    /// cannot hold.
    pub fn new(
        program: &Path,
        argv: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<Exec, Failure> {
        use std::os::unix::ffi::OsStrExt;
        let shown = program.display().to_string();
        let c_string = |bytes: Vec<u8>| {
            CString::new(bytes).map_err(|_| {
                Failure::new(
                    format!("exec {shown}"),
                    "an argument contains a NUL byte",
                )
            })
        };
        Ok(Exec {
            path: c_string(program.as_os_str().as_bytes().to_vec())?,
            argv: argv.into_iter().map(c_string).collect::<Result<_, _>>()?,
            parent: getpid(),
            not_found: format!(
                "exec {shown}: not found (build it: cargo build -p simple-ipc)\n"
            )
            .into_bytes(),
            not_executable: format!("exec {shown}: not executable\n").into_bytes(),
        })
    }

    // ANCHOR: exec
    /// The child's side, after `fork`: restore the signal state a program expects,
    /// then `execv`. Never returns: if `exec` fails, it writes a fixed message and
    /// `_exit`s with the shell's code, 127 (not found) or 126 (not executable).
    pub fn exec_in_child(&self) -> ! {
        child_defaults(self.parent);
        let Err(errno) = execv(&self.path, &self.argv);
        match errno {
            Errno::ENOENT | Errno::ENOTDIR => die(&self.not_found, exit::NOT_FOUND),
            _ => die(&self.not_executable, exit::NOT_EXECUTABLE),
        }
    }
}

/// A forked child's first step: the signal state of a fresh process, and an end of
/// its own if the parent dies. Only async-signal-safe calls (`sigaction`,
/// `sigprocmask`, `prctl`, `getppid`, `_exit`).
pub fn child_defaults(parent: Pid) {
    // The parent's stop handlers would only write into its pipe: a child must die
    // of SIGTERM. Rust ignores SIGPIPE before main, and an ignored signal stays
    // ignored across exec: give programs the default they expect (`Command` does
    // the same).
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGPIPE,
    ] {
        // SAFETY: SIG_DFL installs no handler, so no Rust code runs in signal
        // context.
        let _ = unsafe { nix::sys::signal::signal(signal, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // If the parent dies, the kernel sends us SIGTERM (it survives exec). The
    // parent may have died before this line: then our parent is already someone
    // else.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    if getppid() != parent {
        die(b"child: the parent is gone\n", exit::RUNTIME);
    }
}

// ANCHOR_END: exec
/// A forked child's last words: a fixed message on stderr, then `_exit`.
pub fn die(message: &[u8], code: u8) -> ! {
    // Nobody to tell if it fails
    let _ = nix::unistd::write(std::io::stderr(), message);
    exit_child(code)
}

/// Ends a forked child without returning into `main` (which would run the parent's
/// code and its destructors: the parent's temporary files would be removed twice).
pub fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the process at once; it is async-signal-safe and touches
    // no memory of ours.
    unsafe { libc::_exit(i32::from(code)) }
}

/// How long a child gets to end after SIGTERM before it is killed.
pub const GRACE: Duration = Duration::from_millis(300);

/// Waits for `child` and returns its raw wait status (`status` of `waitpid`). A
/// stop signal while waiting ends the child ([`end_child`]) before returning
/// `Ended::Signal`, so the child is reaped on every path.
pub fn reap(child: Pid, stop: &Stop) -> Result<i32, Ended> {
    // A pidfd is the child as a descriptor: readable once the child has ended. One
    // `poll` sleeps on it and on the stop pipe together, and `waitpid` is called
    // once, when it returns at once: no polling loop, no `WNOHANG`.
    let ended = match pidfd_open(child) {
        Ok(fd) => fd,
        Err(failure) => {
            end_child(child);
            return Err(failure.into());
        }
    };
    let events = PollFlags::POLLIN;
    loop {
        match stop.wait_for(Some((ended.as_fd(), events)), Duration::from_secs(1)) {
            Ok(true) => break,
            Ok(false) => {} // still running: wait on
            Err(why) => {
                end_child(child);
                return Err(why);
            }
        }
    }
    drop(ended); // the child is a zombie now: waitpid reaps it without blocking
    let mut status = 0;
    // SAFETY: waitpid writes one int into `status`, a live local variable.
    match unsafe { libc::waitpid(child.as_raw(), &mut status, 0) } {
        -1 => Err(Failure::new(
            format!("waitpid {child}"),
            std::io::Error::last_os_error(),
        )
        .into()),
        _ => Ok(status),
    }
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

/// `waitpid(child, WNOHANG)`: the raw status if it has ended, `None` if it still
/// runs.
pub fn try_reap(child: Pid) -> Result<Option<i32>, Failure> {
    let mut status = 0;
    // SAFETY: waitpid writes one int into `status`, a live local variable.
    let pid = unsafe { libc::waitpid(child.as_raw(), &mut status, libc::WNOHANG) };
    match pid {
        0 => Ok(None),
        -1 => Err(Failure::new(
            format!("waitpid {child}"),
            std::io::Error::last_os_error(),
        )),
        _ => Ok(Some(status)),
    }
}

// ANCHOR: end_child
/// Ends a child for good and reaps it: SIGTERM, up to [`GRACE`] to go, then
/// SIGKILL. Says so on stderr when it has to kill.
pub fn end_child(child: Pid) {
    let _ = kill(child, Signal::SIGTERM); // it may be gone already: reaped below
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        match try_reap(child) {
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Ok(Some(_)) | Err(_) => return, // reaped, or not ours to reap (ECHILD)
        }
    }
    note!("child {child} still runs {GRACE:?} after SIGTERM: sending SIGKILL");
    let _ = kill(child, Signal::SIGKILL);
    // SAFETY: a null status pointer is allowed; this blocks until the killed child
    // is gone, which SIGKILL makes immediate.
    unsafe { libc::waitpid(child.as_raw(), std::ptr::null_mut(), 0) };
}

// ANCHOR_END: end_child
/// How a child ended, from its raw wait status: `exited with status 3`,
/// `killed by SIGKILL`.
pub fn describe_raw(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let core = if libc::WCOREDUMP(status) {
            " (core dumped)"
        } else {
            ""
        };
        format!("killed by {}{core}", signal_name(libc::WTERMSIG(status)))
    } else {
        format!("changed state (raw status {status})")
    }
}

/// A fresh temporary directory (`$TMPDIR/simple-ipc-<pid>-<name>`), removed with
/// what is in it when dropped: on a normal end, an error and a stop signal alike.
pub struct Scratch {
    path: PathBuf,
    owner: Pid,
}

impl Scratch {
    pub fn new(name: &str) -> Result<Scratch, Failure> {
        let owner = getpid();
        // The name last: `--show-fds` shows a long path as its last 17 characters,
        // `…4-redirect/in.txt`, the same for every pid.
        let path = std::env::temp_dir().join(format!("simple-ipc-{owner}-{name}"));
        // A directory of that name can only be a leftover of a killed run that had
        // our pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path)
            .context(format!("create directory {}", path.display()))?;
        Ok(Scratch { path, owner })
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Only the process that made it removes it (a forked child never should).
        if getpid() == self.owner
            && let Err(err) = std::fs::remove_dir_all(&self.path)
        {
            note!("remove {}: {err}", self.path.display());
        }
    }
}
