//! Plumbing shared by the lessons, kept out of them so each lesson reads as its system calls.
//!
//! Nothing here makes a system call on a lesson's behalf: pipes, forks, reads, writes and
//! waits all stay in the lessons, where students can see them. What lives here:
//!
//! - [`args`]: a hand-written command-line parser (`--help`, `Usage:`, exit code 2);
//! - [`pace`]: the `--count` and `--speed` options every paced lesson shares;
//! - [`pyfmt`]: Python's `bytes` repr and `time.time()` text, to match the documents;
//! - [`Failure`] and [`Context`]: error messages that name the call and the object
//!   (`read pipe: EIO: I/O error`);
//! - [`note!`]: a line on stderr that can never panic, even into `2>&1 | head -n 1` or
//!   `2>/dev/full` (where `eprintln!` panics, and a panic would skip the clean-up);
//! - [`fds`]: `--show-fds`, a process's own descriptor table read from `/proc/self`
//!   (observation only);
//! - [`signal_exit`] and [`signal_name`]: the shell's `128 + n` and `SIGINT` for a stop
//!   signal.
//!
//! The test harness is in the dev-only crate `lesson-test`: no lesson runs with it.

pub mod args;
pub mod fds;
pub mod pace;
pub mod pyfmt;

/// Writes one line to stderr, like `eprintln!`, but ignores a failed write instead of
/// panicking. Lessons use it for every note: a note that cannot be written (stderr closed
/// or full) must never stop the clean-up that follows it (kill, reap, unlink).
///
/// ```
/// lesson_kit::note!("Parent {} forked child {}", 41, 42);
/// ```
// ANCHOR: note
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        // Built first, then written with one `write`: stderr is unbuffered, and
        // `writeln!` straight to it makes one system call per piece, so the notes of
        // a parent and a child could interleave mid-line (`scripts/trace` shows it).
        // One write of at most PIPE_BUF bytes to a pipe is never split. A failed note
        // is not worth a failure: stdout carries the lesson's output, and the exit
        // status tells the rest.
        let line = ::std::format!("{}\n", ::std::format_args!($($arg)*));
        let _ = ::std::io::stderr().write_all(line.as_bytes());
    }};
}
// ANCHOR_END: note

/// The exit status for a lesson stopped by `signal`: the shell's `128 + n` (130 for SIGINT,
/// 143 for SIGTERM, 129 for SIGHUP).
pub fn signal_exit(signal: i32) -> std::process::ExitCode {
    std::process::ExitCode::from(
        u8::try_from(128 + signal).unwrap_or(exit::RUNTIME),
    )
}

/// The name of a signal number (`SIGINT`), or `signal 40` for one without a name.
pub fn signal_name(signal: i32) -> String {
    match nix::sys::signal::Signal::try_from(signal) {
        Ok(signal) => signal.as_str().to_owned(),
        Err(_) => format!("signal {signal}"),
    }
}

use std::fmt;

/// The exit codes every lesson documents in its `--help` and the README.
pub mod exit {
    /// The lesson did what it was asked.
    pub const OK: u8 = 0;
    /// A system call failed, or a process the lesson watches ended badly.
    pub const RUNTIME: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = crate::args::EXIT_USAGE;
    /// The lesson's own time limit ran out, or it detected a deadlock.
    pub const TIMEOUT: u8 = 3;
    /// A program could be found but not executed (the shell's convention).
    pub const NOT_EXECUTABLE: u8 = 126;
    /// A program could not be found (the shell's convention).
    pub const NOT_FOUND: u8 = 127;
}

/// A failed operation, with the call and the object it was applied to.
///
/// `main` functions return `Result<ExitCode, Failure>`; when one fails, Rust prints
/// `Error: ` and this message, and the process exits with code 1.
pub struct Failure {
    what: String,
    cause: String,
}

impl Failure {
    /// A failure that is not an error code: `Failure::new("child 42", "killed by SIGKILL")`.
    pub fn new(what: impl fmt::Display, cause: impl fmt::Display) -> Failure {
        Failure {
            what: what.to_string(),
            cause: cause.to_string(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.cause)
    }
}

/// `main` returning `Err` prints the `Debug` form; make it the readable one.
impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Failure {}

/// Labels an error with the operation and object: `.context("write pipe")`.
pub trait Context<T> {
    /// Turns the error into a [`Failure`] whose message starts with `what`.
    fn context(self, what: impl fmt::Display) -> Result<T, Failure>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, Failure> {
        // nix prints an errno as `EPIPE: Broken pipe`: the name to search for, then the text.
        self.map_err(|errno| Failure::new(what, errno))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|err| Failure::new(what, err))
    }
}

/// How a child ended, in the words the lessons print: `exited with status 3`,
/// `killed by SIGKILL`, `killed by SIGSEGV (core dumped)`.
pub fn describe_wait(status: nix::sys::wait::WaitStatus) -> String {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, false) => format!("killed by {signal}"),
        WaitStatus::Signaled(_, signal, true) => {
            format!("killed by {signal} (core dumped)")
        }
        other => format!("changed state: {other:?}"),
    }
}

/// Whether a wait status is a clean exit (status 0).
pub fn exited_ok(status: nix::sys::wait::WaitStatus) -> bool {
    matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;
    use std::process::{Command, ExitCode, Stdio};
    use std::time::{Duration, Instant};

    /// The environment variable that turns [`helper_process`] on, naming what it does.
    const HELPER: &str = "LESSON_KIT_TEST_HELPER";

    /// Not a test of its own: the process the write tests start (this test binary,
    /// run again with only this test and `HELPER` set), so that what it writes to
    /// stderr can be caught whole. In an ordinary run it returns at once.
    #[test]
    fn helper_process() {
        let Ok(what) = std::env::var(HELPER) else {
            return;
        };
        match what.as_str() {
            "note" => note!("Parent {} forked child {}", 41, 42),
            "show" => fds::show("child", "after fork"),
            "usage" => {
                let err = args::UsageError("--count must be at least 1".into());
                let code = args::usage_failure("demo", &err, "Usage: demo\n");
                assert_eq!(code, ExitCode::from(exit::USAGE));
            }
            other => panic!("unknown helper {other}"),
        }
    }

    /// Runs [`helper_process`] doing `what`, with stderr a datagram socket, and returns
    /// what it wrote to stderr one `write` at a time: each write is one datagram.
    pub(crate) fn stderr_writes_of_helper(what: &str) -> Vec<String> {
        use std::os::unix::net::UnixDatagram;
        let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "tests::helper_process", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(HELPER, what)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::os::fd::OwnedFd::from(theirs))
            .spawn()
            .expect("start the helper");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match child.try_wait().expect("wait for the helper") {
                Some(status) => break status,
                None if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the helper {what} did not end within 20 s");
                }
            }
        };
        ours.set_nonblocking(true).expect("O_NONBLOCK");
        let mut writes = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = ours.recv(&mut buf) {
            writes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert!(status.success(), "helper {what}: {status}: {writes:?}");
        writes
    }

    #[test]
    fn a_note_is_one_line_in_one_write() {
        // One write, so the notes of a parent and its child never interleave mid-line.
        assert_eq!(
            stderr_writes_of_helper("note"),
            ["Parent 41 forked child 42\n"]
        );
    }

    #[test]
    fn a_usage_error_is_reported_with_the_usage_in_one_write() {
        assert_eq!(
            stderr_writes_of_helper("usage"),
            ["demo: --count must be at least 1\n\nUsage: demo\n\n"]
        );
    }

    #[test]
    fn a_failure_names_the_call_and_the_object() {
        let failure = Failure::new("child 42", "killed by SIGKILL");
        assert_eq!(failure.to_string(), "child 42: killed by SIGKILL");
        // `main` returning Err prints the Debug form: it must read the same.
        assert_eq!(format!("{failure:?}"), "child 42: killed by SIGKILL");
        let io: std::io::Result<()> =
            Err(std::io::Error::from_raw_os_error(libc::EPIPE));
        let text = io.context("write stdout").unwrap_err().to_string();
        assert!(text.starts_with("write stdout: Broken pipe"), "{text}");
        let errno: nix::Result<()> = Err(nix::errno::Errno::ECONNREFUSED);
        assert_eq!(
            errno
                .context("connect 127.0.0.1:50008")
                .unwrap_err()
                .to_string(),
            "connect 127.0.0.1:50008: ECONNREFUSED: Connection refused"
        );
        assert_eq!(Ok::<u8, nix::errno::Errno>(7).context("x").ok(), Some(7));
    }

    #[test]
    fn wait_statuses_are_described_in_the_lessons_words() {
        let pid = Pid::from_raw(42);
        let exited = WaitStatus::Exited(pid, 3);
        assert_eq!(describe_wait(exited), "exited with status 3");
        let killed = WaitStatus::Signaled(pid, Signal::SIGKILL, false);
        assert_eq!(describe_wait(killed), "killed by SIGKILL");
        let dumped = WaitStatus::Signaled(pid, Signal::SIGSEGV, true);
        assert_eq!(describe_wait(dumped), "killed by SIGSEGV (core dumped)");
        let stopped = WaitStatus::Stopped(pid, Signal::SIGSTOP);
        assert!(
            describe_wait(stopped).starts_with("changed state: Stopped"),
            "{}",
            describe_wait(stopped)
        );
        assert!(exited_ok(WaitStatus::Exited(pid, 0)));
        assert!(!exited_ok(exited));
        assert!(!exited_ok(killed));
    }

    #[test]
    fn stop_signals_map_to_the_shells_statuses_and_names() {
        assert_eq!(signal_exit(2), std::process::ExitCode::from(130));
        assert_eq!(signal_exit(15), std::process::ExitCode::from(143));
        assert_eq!(signal_exit(1), std::process::ExitCode::from(129));
        assert_eq!(
            signal_exit(200),
            std::process::ExitCode::from(exit::RUNTIME)
        );
        assert_eq!(signal_name(2), "SIGINT");
        assert_eq!(signal_name(1), "SIGHUP");
        assert_eq!(signal_name(99), "signal 99");
    }
}
