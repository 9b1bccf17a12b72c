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
