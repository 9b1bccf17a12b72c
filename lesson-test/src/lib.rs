//! The test harness every lesson's tests use (a dev-dependency only: no lesson runs with it).
//!
//! Tests never fork inside the test process (see the book's chapter on the shared crate):
//! they run the lesson's binary as a subprocess, in a process group of its own, with a
//! deadline. On expiry the whole group is killed and the test fails with everything the
//! lesson printed, so a regression that hangs fails in seconds instead of stalling CI.
//!
//! The test process makes itself a *child subreaper* (`prctl(PR_SET_CHILD_SUBREAPER)`)
//! before it starts the first lesson. A process the lesson leaves behind is then re-parented
//! to the test process, not to pid 1, and stays visible: a child the lesson never reaped
//! stays a zombie (state `Z`) until the harness looks, and an orphan stays in the lesson's
//! process group. [`Running::finish`] checks the group right after the lesson exits: it must
//! be empty, with no grace period, because a lesson that reaped its children has none left.
//!
//! ```no_run
//! # use lesson_test::Lesson;
//! let run = Lesson::new(env!("CARGO_PKG_NAME")).args(["--count", "3"]).run();
//! assert_eq!(run.code(), Some(0), "{}", run.transcript());
//! ```

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub mod faults;
pub mod fd_blocks;

/// The deadline when a test sets none: long enough for a slow CI machine, short enough to
/// fail fast.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(20);

/// How long orphans may take to end after a test killed the lesson itself on purpose
/// ([`Leftovers::Orphans`]): the lessons promise that a child whose parent dies ends
/// promptly (it sees EOF, a broken pipe, or its parent-death signal).
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// How long processes the harness has just sent SIGKILL may take to die and be reaped
/// (they die in microseconds; the bound is for a loaded machine).
const KILLED_GRACE: Duration = Duration::from_millis(500);

/// Makes the test process a child subreaper, once. Orphans of the lessons it starts are then
/// re-parented to it instead of to pid 1 (which, on some machines, reaps them within a
/// couple of seconds and so hides a lesson that never called `waitpid`).
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument and changes only a flag
        // of this process; no memory is passed to the kernel.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            rc,
            0,
            "harness: prctl(PR_SET_CHILD_SUBREAPER): {}",
            std::io::Error::last_os_error()
        );
        // Whatever started the tests may have left descriptors open without close-on-exec
        // (a shell's, cargo's). A lesson would inherit them and show them in its
        // `--show-fds` tables: mark every one above 2 close-on-exec, once.
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors of
        // this process; it passes no memory and closes nothing.
        unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
        }
    });
}

/// Reaps the processes `pids` (orphans of a lesson, handed to us as subreaper) as each
/// becomes a zombie child of the test process, for at most `bound`: a process just killed
/// takes a moment to die, and a grandchild becomes ours only once its parent is reaped.
/// A pid that is gone, or that never becomes ours, is given up at the bound.
fn reap_within(pids: &[i32], bound: Duration) {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    let end = Instant::now() + bound;
    let mut left = pids.to_vec();
    loop {
        left.retain(|&pid| {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(_) => false,                   // reaped
                Err(_) => process(pid).is_some(), // not ours (yet)
            }
        });
        if left.is_empty() {
            return;
        }
        if Instant::now() >= end {
            return; // given up: a test fails anyway, or the grace is over
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// A fresh directory for one test's files (FIFOs), removed with everything in it on drop.
pub struct TempDir {
    path: std::path::PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<n>`, unique within and across test processes.
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 =
            std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir()
            .join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path); // a leftover from a crashed run with our pid
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The names of the entries in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.path)
            .expect("read temp dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A line the lesson printed on stdout, and when it arrived (since the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedLine {
    pub at: Duration,
    pub text: String,
}

/// A lesson binary to run: a [`Command`] with a deadline.
pub struct Lesson {
    command: Command,
    label: String,
    /// How the book shows the command (`cargo run -q -p anon-pipe --`), set by
    /// [`Lesson::shown_as`]; the arguments are appended as they are given, once.
    shown: Option<String>,
    deadline: Duration,
    merged: bool,
    stdin: bool,
}

impl Lesson {
    /// A lesson binary, usually `env!("CARGO_BIN_EXE_<name>")`.
    pub fn new(program: impl AsRef<OsStr>) -> Lesson {
        let program = program.as_ref();
        Lesson {
            command: Command::new(program),
            label: program.to_string_lossy().into_owned(),
            shown: None,
            deadline: DEFAULT_DEADLINE,
            merged: false,
            stdin: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Lesson {
        let text = arg.as_ref().to_string_lossy();
        self.label.push(' ');
        self.label.push_str(&text);
        if let Some(shown) = &mut self.shown {
            shown.push(' ');
            shown.push_str(&shell_word(&text));
        }
        self.command.arg(arg);
        self
    }

    /// How a reader would type this run at the workspace root, without the arguments:
    /// `shown_as("cargo run -q -p anon-pipe --")`. Set it before the arguments; they are
    /// appended as given, so a transcript shows exactly the command that was run
    /// ([`check_transcript_of`]).
    pub fn shown_as(mut self, command: &str) -> Lesson {
        self.shown = Some(command.to_owned());
        self
    }

    pub fn args<I, S>(self, args: I) -> Lesson
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Lesson::arg)
    }

    /// Sets an environment variable for the lesson.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Lesson {
        self.command.env(key, value);
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<std::path::Path>) -> Lesson {
        self.command.current_dir(dir);
        self
    }

    /// The whole run (until [`Running::finish`] returns) must fit in `deadline`.
    pub fn deadline(mut self, deadline: Duration) -> Lesson {
        self.deadline = deadline;
        self
    }

    /// Send stderr into the same pipe as stdout, so the lines come in the order they were
    /// written (for transcripts). [`Finished::stderr`] is then empty.
    pub fn merge_stderr(mut self) -> Lesson {
        self.merged = true;
        self
    }

    /// Give the lesson a pipe as stdin ([`Running::stdin`]); by default stdin is `/dev/null`.
    pub fn piped_stdin(mut self) -> Lesson {
        self.stdin = true;
        self
    }

    /// Starts the lesson in a new process group (its pid is the group id).
    pub fn spawn(mut self) -> Running {
        become_subreaper();
        let stderr_buf = Arc::new(Mutex::new(Vec::new()));
        let stdout_buf = Arc::new(Mutex::new(Vec::new()));
        // If the test process dies (a test binary killed by cargo-mutants' timeout, say),
        // its `Drop` never runs: the kernel kills the lesson instead, whose own children
        // then see it gone. The "parent" here is the thread that spawns, which lives
        // until `finish`.
        // SAFETY: the closure runs in the forked child before exec and makes one
        // async-signal-safe system call, with no allocation and no lock.
        unsafe {
            self.command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) == 0
                {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        self.command.process_group(0).stdin(if self.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let (out_reader, out_writer) =
            std::io::pipe().expect("harness: pipe for stdout");
        let err_pipe = if self.merged {
            let copy = out_writer.try_clone().expect("harness: dup stdout pipe");
            self.command.stderr(copy);
            None
        } else {
            let (reader, writer) =
                std::io::pipe().expect("harness: pipe for stderr");
            self.command.stderr(writer);
            Some(reader)
        };
        self.command.stdout(out_writer);
        // ANCHOR: spawn
        let started = Instant::now();
        let mut child = self.command.spawn().unwrap_or_else(|err| {
            panic!("harness: cannot start {}: {err}", self.label)
        });
        // The Command still holds our copies of the pipes' write ends. Drop it now, or the
        // readers below would never see EOF (the lessons' own EOF rule applies to us too).
        drop(self.command);
        // ANCHOR_END: spawn

        let (line_tx, lines) = channel();
        let out_thread = thread::spawn({
            let stdout_buf = Arc::clone(&stdout_buf);
            move || {
                let mut reader = out_reader;
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match reader.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let at = started.elapsed();
                    stdout_buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                    pending.extend_from_slice(&chunk[..n]);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let text =
                            String::from_utf8_lossy(&line[..end]).into_owned();
                        let _ = line_tx.send(TimedLine { at, text });
                    }
                }
                if !pending.is_empty() {
                    let text = String::from_utf8_lossy(&pending).into_owned();
                    let at = started.elapsed();
                    let _ = line_tx.send(TimedLine { at, text });
                }
            }
        });
        let err_thread = err_pipe.map(|mut reader| {
            let stderr_buf = Arc::clone(&stderr_buf);
            thread::spawn(move || {
                let mut chunk = [0u8; 4096];
                while let Ok(n @ 1..) = reader.read(&mut chunk) {
                    stderr_buf.lock().unwrap().extend_from_slice(&chunk[..n]);
                }
            })
        });

        let pid = i32::try_from(child.id()).expect("pid fits in i32");
        Running {
            stdin: child.stdin.take(),
            child: Some(child),
            pid,
            label: self.label,
            shown: self.shown,
            started,
            deadline: started + self.deadline,
            lines,
            seen: Vec::new(),
            stdout_buf,
            stderr_buf,
            readers: [Some(out_thread), err_thread],
        }
    }

    /// Runs the lesson to the end ([`Lesson::spawn`] then [`Running::finish`]).
    pub fn run(self) -> Finished {
        self.spawn().finish()
    }
}

/// A lesson that is running. Dropping it (a failed assertion, say) kills its process group.
pub struct Running {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: i32,
    label: String,
    shown: Option<String>,
    started: Instant,
    deadline: Instant,
    lines: Receiver<TimedLine>,
    seen: Vec<TimedLine>,
    stdout_buf: Arc<Mutex<Vec<u8>>>,
    stderr_buf: Arc<Mutex<Vec<u8>>>,
    readers: [Option<JoinHandle<()>>; 2],
}

/// What the group check after exit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Nothing at all may remain: no orphan, no zombie.
    None,
    /// For tests that kill the lesson's own process on purpose (SIGKILL): its children lose
    /// the parent that would have reaped them and come to the test process (the subreaper).
    /// They must end by themselves within a short grace ([`ORPHAN_GRACE`]); the harness then
    /// reaps them.
    Orphans,
}

impl Running {
    /// The lesson's pid, which is also its process group id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Writes all of `bytes` to the lesson's stdin (started with [`Lesson::piped_stdin`]),
    /// waiting at most until the deadline: a lesson that stops reading fails the test instead
    /// of hanging it. Returns `false` if the lesson closed its stdin (EPIPE).
    pub fn write_stdin(&mut self, bytes: &[u8]) -> bool {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        let stdin = self
            .stdin
            .take()
            .expect("start the lesson with piped_stdin()");
        // Non-blocking, so a full pipe makes `write` return EAGAIN and we can wait with a bound.
        fcntl(stdin.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .expect("harness: O_NONBLOCK");
        let mut rest = bytes;
        while !rest.is_empty() {
            match nix::unistd::write(stdin.as_fd(), rest) {
                Ok(n) => rest = &rest[n..],
                Err(nix::errno::Errno::EAGAIN) => {
                    let left =
                        self.deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.fail(
                            "deadline passed writing to the lesson's stdin (it stopped reading)",
                        );
                    }
                    let ms =
                        u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
                    let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(ms));
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EPIPE) => return false,
                Err(err) => {
                    self.fail(&format!("write to the lesson's stdin: {err}"))
                }
            }
        }
        self.stdin = Some(stdin);
        true
    }

    /// Closes the lesson's stdin (it reads EOF).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next line of stdout, waiting at most until the deadline (then the test fails).
    /// `None` when stdout is closed.
    pub fn next_line(&mut self) -> Option<TimedLine> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                self.fail("deadline passed waiting for a stdout line")
            }
        }
    }

    /// Waits until stderr contains `needle` (or the deadline passes) and returns stderr.
    /// Fails at once when stderr closes without it (the lesson ended, or gave its stderr
    /// away), so a lesson that dies early fails its test in milliseconds, not at the deadline.
    pub fn wait_for_stderr(&mut self, needle: &str) -> String {
        loop {
            // Asked before reading: once the reader is done, the text read next is all.
            let closed = self.readers[1].as_ref().is_some_and(|r| r.is_finished());
            let text = self.stderr_text();
            if text.contains(needle) {
                return text;
            }
            if closed {
                self.fail(&format!(
                    "stderr closed without {needle:?} (did the lesson end?)"
                ));
            }
            if Instant::now() >= self.deadline {
                self.fail(&format!(
                    "deadline passed waiting for {needle:?} on stderr"
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `signal` to the lesson's own process (not its group).
    pub fn signal(&self, signal: Signal) {
        send(self.pid, signal);
    }

    /// Sends `signal` (SIGINT, SIGTERM) and checks the lessons' promise for it: the lesson
    /// ends within a second, cleanly (exit status 128 + the signal number, group empty), and
    /// says `stopped by SIG...` on stderr. Returns the run for further checks.
    pub fn stop_with(self, signal: Signal) -> Finished {
        let sent = Instant::now();
        self.signal(signal);
        let run = self.finish();
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "{signal} took {took:?} to stop it\n{}",
            run.transcript()
        );
        assert_eq!(
            run.code(),
            Some(128 + signal as i32),
            "{}",
            run.transcript()
        );
        assert!(
            run.stderr.contains(&format!("stopped by {signal}")),
            "{}",
            run.transcript()
        );
        run
    }

    /// Waits for the lesson to exit and for its output to close, then checks that its
    /// process group is empty. Any of these that misses the deadline fails the test.
    pub fn finish(self) -> Finished {
        self.finish_allowing(Leftovers::None)
    }

    /// [`Running::finish`], with a weaker group check (see [`Leftovers`]).
    pub fn finish_allowing(mut self, allowed: Leftovers) -> Finished {
        self.stdin = None;
        let status = loop {
            let child = self.child.as_mut().expect("child is there until finish");
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < self.deadline => {
                    thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    self.fail("deadline passed waiting for the lesson to exit")
                }
                Err(err) => self.fail(&format!("waitpid on the lesson: {err}")),
            }
        };
        self.child = None; // reaped
        let elapsed = self.started.elapsed();

        // Output closes only when every process holding the pipes has exited.
        for reader in &mut self.readers {
            while reader.as_ref().is_some_and(|r| !r.is_finished()) {
                if Instant::now() >= self.deadline {
                    self.fail("the lesson exited but something still holds its stdout/stderr");
                }
                thread::sleep(Duration::from_millis(5));
            }
            if let Some(reader) = reader.take() {
                let _ = reader.join();
            }
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }

        // ANCHOR: group_check
        // We are the subreaper: anything of the lesson's still in its group is visible here,
        // a zombie (a child it never reaped) or a live orphan. Neither may exist once the
        // lesson has exited, so there is no grace, except for orphans a test made on purpose.
        let grace_end = Instant::now()
            + match allowed {
                Leftovers::None => Duration::ZERO,
                Leftovers::Orphans => ORPHAN_GRACE,
            };
        loop {
            let members = group_members(self.pid);
            let live = members.iter().filter(|m| m.state != 'Z').count();
            let bad = match allowed {
                Leftovers::None => !members.is_empty(),
                Leftovers::Orphans => live > 0,
            };
            let pids: Vec<i32> = members.iter().map(|m| m.pid).collect();
            if !bad {
                reap_within(&pids, ORPHAN_GRACE);
                break;
            }
            if Instant::now() >= grace_end {
                let list: Vec<String> =
                    members.iter().map(Member::describe).collect();
                let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
                reap_within(&pids, KILLED_GRACE);
                self.fail(&format!(
                    "the lesson exited ({}) but left processes in its group \
                     (running: an orphan; Z: a child nobody reaped): {}",
                    describe_status(status),
                    list.join(", ")
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
        // ANCHOR_END: group_check

        Finished {
            status,
            pid: self.pid,
            elapsed,
            label: self.label.clone(),
            shown: self.shown.take(),
            stdout: self.stdout_buf.lock().unwrap().clone(),
            stderr: self.stderr_text(),
            lines: std::mem::take(&mut self.seen),
        }
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr_buf.lock().unwrap()).into_owned()
    }

    /// Kills the group and fails the test with everything the lesson printed so far.
    fn fail(&mut self, why: &str) -> ! {
        self.kill_group();
        thread::sleep(Duration::from_millis(50)); // let the readers catch the last bytes
        panic!(
            "{why}\n--- command: {}\n--- after {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.label,
            self.started.elapsed(),
            String::from_utf8_lossy(&self.stdout_buf.lock().unwrap()),
            self.stderr_text()
        );
    }

    /// Kills the lesson's whole group and reaps the lesson and every member that comes
    /// to us, so a failing test leaves no process behind, not even a zombie.
    fn kill_group(&mut self) {
        let members: Vec<i32> =
            group_members(self.pid).iter().map(|m| m.pid).collect();
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        reap_within(&members, KILLED_GRACE);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only reached with the child unreaped when a test failed half-way: clean up so a
        // failing test leaves no processes behind either.
        if self.child.is_some() {
            self.kill_group();
        }
    }
}

/// A lesson that has exited, with everything it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub pid: i32,
    pub elapsed: Duration,
    pub label: String,
    /// The command as the book shows it, if the test set [`Lesson::shown_as`].
    pub shown: Option<String>,
    /// Every byte of stdout, exactly.
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Stdout split into lines, with arrival times (the reader's view).
    pub lines: Vec<TimedLine>,
}

impl Finished {
    /// The exit code, or `None` if a signal killed the lesson.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The lines of stdout, without times.
    pub fn texts(&self) -> Vec<&str> {
        self.lines.iter().map(|line| line.text.as_str()).collect()
    }

    /// Everything printed, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "--- command: {}\n--- {} after {:?}\n--- stdout:\n{}--- stderr:\n{}",
            self.label,
            describe_status(self.status),
            self.elapsed,
            self.stdout_text(),
            self.stderr
        )
    }
}

/// Runs a lesson once per case and checks that each is a usage error: exit status 2, the
/// case's message and the `Usage:` line on stderr, nothing on stdout.
pub fn assert_usage_errors(
    lesson: impl Fn() -> Lesson,
    usage_line: &str,
    cases: &[(&[&str], &str)],
) {
    for (args, message) in cases {
        let run = lesson().args(*args).run();
        assert_eq!(run.code(), Some(2), "{args:?}\n{}", run.transcript());
        assert!(
            run.stderr.contains(message),
            "{args:?}: {message:?}\n{}",
            run.transcript()
        );
        assert!(
            run.stderr.contains(usage_line),
            "{args:?}\n{}",
            run.transcript()
        );
        assert!(run.stdout.is_empty(), "{args:?}\n{}", run.transcript());
    }
}

/// Checks a run's stdout against the first lines of a document's transcript, line for
/// line, after masking timestamps and the pids (the run's own, the document's).
pub fn assert_matches_document(
    run: &Finished,
    document: &[&str],
    document_pid: i64,
) {
    let ours: Vec<String> = run
        .texts()
        .iter()
        .map(|line| mask_number(&mask_times(line), run.pid.into(), "<pid>"))
        .collect();
    let theirs: Vec<String> = document
        .iter()
        .map(|line| mask_number(&mask_times(line), document_pid, "<pid>"))
        .collect();
    assert_eq!(ours, theirs, "{}", run.transcript());
}

/// `exited with status 3` / `killed by SIGKILL`.
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(signal)) => match Signal::try_from(signal) {
            Ok(signal) => format!("killed by {signal}"),
            Err(_) => format!("killed by signal {signal}"),
        },
        _ => format!("{status:?}"),
    }
}

/// Sends a signal to one process, failing the test if that is impossible (it is gone).
pub fn send(pid: i32, signal: Signal) {
    if let Err(err) = kill(Pid::from_raw(pid), signal) {
        panic!("kill -{signal} {pid}: {err}");
    }
}

/// A process found in `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `Z`... as in `ps`.
    pub state: char,
    pub command: String,
}

impl Member {
    fn describe(&self) -> String {
        format!(
            "{} {} (state {}, parent {})",
            self.pid, self.command, self.state, self.ppid
        )
    }
}

/// The processes whose process group is `pgid`, read from `/proc/<pid>/stat`.
pub fn group_members(pgid: i32) -> Vec<Member> {
    processes()
        .into_iter()
        .filter(|(_, pgrp)| *pgrp == pgid)
        .map(|(m, _)| m)
        .collect()
}

/// The processes whose parent is `ppid`.
pub fn children_of(ppid: i32) -> Vec<Member> {
    processes()
        .into_iter()
        .map(|(m, _)| m)
        .filter(|m| m.ppid == ppid)
        .collect()
}

/// One process's `/proc/<pid>/stat`, or `None` if it is gone.
pub fn process(pid: i32) -> Option<Member> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat).map(|(member, _)| member)
}

fn processes() -> Vec<(Member, i32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(pid, &stat)
    })
    .collect()
}

/// `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses, so split at
/// the last `)`.
fn parse_stat(pid: i32, stat: &str) -> Option<(Member, i32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let command = stat.get(open + 1..close)?.to_owned();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((
        Member {
            pid,
            ppid,
            state,
            command,
        },
        pgrp,
    ))
}

/// The whole number that follows `marker` in `text`, for reading pids out of a lesson's
/// notes: `number_after(&stderr, "forked child ")`. Fails the test if there is none.
pub fn number_after(text: &str, marker: &str) -> i32 {
    let rest = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found in:\n{text}"))
        .1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?} in:\n{text}"))
}

/// The bytes a Python `bytes` repr stands for (`b'Spam 4Spam 0'`, `b"it's"`, `b'\\x00'`):
/// the inverse of [`lesson_kit::pyfmt::bytes_repr`], for tests that check nothing was lost.
pub fn parse_bytes_repr(repr: &str) -> Vec<u8> {
    let body = repr
        .strip_prefix("b'")
        .and_then(|rest| rest.strip_suffix('\''))
        .or_else(|| {
            repr.strip_prefix("b\"")
                .and_then(|rest| rest.strip_suffix('"'))
        })
        .unwrap_or_else(|| panic!("not a bytes repr: {repr}"));
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.bytes();
    while let Some(byte) = chars.next() {
        if byte != b'\\' {
            bytes.push(byte);
            continue;
        }
        match chars.next() {
            Some(b't') => bytes.push(b'\t'),
            Some(b'n') => bytes.push(b'\n'),
            Some(b'r') => bytes.push(b'\r'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).expect("ASCII");
                bytes.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
            }
            Some(other) => bytes.push(other), // \\, \', \"
            None => panic!("dangling backslash in {repr}"),
        }
    }
    bytes
}

/// Replaces Unix timestamps (`1628658450.6990933`: nine or more digits, an optional
/// fraction) with `<time>`, so runs at different moments compare equal.
pub fn mask_times(text: &str) -> String {
    map_numbers(text, |number| {
        let whole = number.split('.').next().unwrap_or(number);
        (whole.len() >= 9).then(|| "<time>".to_owned())
    })
}

/// Replaces the whole number `value` wherever it stands alone (not inside a longer number)
/// with `token`: `mask_number("Parent 9788 got", 9788, "<pid>")`.
pub fn mask_number(text: &str, value: i64, token: &str) -> String {
    let value = value.to_string();
    map_numbers(text, |number| (number == value).then(|| token.to_owned()))
}

/// Normalizes a transcript for comparison: timestamps become `<time>`, and every other
/// number of two or more digits (pids, mostly) becomes `<#1>`, `<#2>`... in order of first
/// appearance, so the structure survives (the same pid on every line) but the values do not.
pub fn normalize(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let masked = map_numbers(&mask_times(text), |number| {
        if number.len() < 2 || number.contains('.') {
            return None;
        }
        let index = match seen.iter().position(|known| known == number) {
            Some(index) => index,
            None => {
                seen.push(number.to_owned());
                seen.len() - 1
            }
        };
        Some(format!("<#{}>", index + 1))
    });
    // A run of spaces is one gap: columns aligned after a pid or an inode move when
    // the number has a digit more or less, and that is not a difference in content.
    masked
        .lines()
        .map(|line| {
            line.split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Compares `output` with the transcript file the book includes, after [`normalize`].
/// With `UPDATE_TRANSCRIPTS=1` in the environment it writes the file instead, so the book
/// always shows real output: `UPDATE_TRANSCRIPTS=1 cargo test --workspace`.
pub fn check_transcript(path: &std::path::Path, output: &str) {
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        std::fs::write(path, output)
            .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        return;
    }
    let recorded = std::fs::read_to_string(path).unwrap_or_else(|err| {
        panic!(
            "read {}: {err}\n(run UPDATE_TRANSCRIPTS=1 cargo test to create it)",
            path.display()
        )
    });
    assert_eq!(
        normalize(&recorded),
        normalize(output),
        "the book's transcript {} no longer matches the lesson's output; \
         if the change is intended, run UPDATE_TRANSCRIPTS=1 cargo test --workspace",
        path.display()
    );
}

/// [`check_transcript`] for a run started with [`Lesson::shown_as`] and
/// [`Lesson::merge_stderr`]: the file holds `$ <the command as run>` and then everything the
/// lesson printed, so the command is typed once, in the test, and cannot drift from the book.
pub fn check_transcript_of(path: &std::path::Path, run: &Finished) {
    let shown = run
        .shown
        .as_deref()
        .expect("a transcript needs Lesson::shown_as(\"cargo run -q -p ... --\")");
    check_transcript(path, &format!("$ {shown}\n{}", run.stdout_text()));
}

/// Whether `strace` can trace here: `Ok` when it is installed and allowed to trace (a
/// container may forbid `ptrace`), else the reason, for a test to print as it skips.
/// The tests that compare the book's trace excerpts with a fresh trace call it first.
pub fn strace_works() -> Result<(), String> {
    probe_tracer("strace")
}

/// A `scripts/trace` output's lines (after its command line) grouped by process,
/// signals left out (when one arrives varies), and each write cut after its string,
/// without its length: a pid printed in it (`<child>` in the trace) has more digits
/// in one run than in another. A string strace cut short (`"..."...`) is cut
/// further, at its last space, since more or less of it shows.
pub fn calls_by_process(
    trace: &str,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut groups: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for line in trace.lines().skip(1) {
        let (who, call) = line.split_once(' ').unwrap_or((line, ""));
        let call = call.trim();
        if call.starts_with("--- ") {
            continue;
        }
        let call = if !call.starts_with("write(") {
            call.to_owned()
        } else if let Some((shown, _)) = call.split_once("\"...") {
            shown
                .rsplit_once(' ')
                .map_or(shown, |(kept, _)| kept)
                .to_owned()
        } else if let Some(end) = call.rfind("\", ") {
            call[..=end].to_owned()
        } else {
            call.to_owned()
        };
        groups.entry(who.to_owned()).or_default().push(call);
    }
    groups
}

/// [`strace_works`] with the tracer's program named, so the self-tests can stand in a
/// missing or refusing one.
fn probe_tracer(program: &str) -> Result<(), String> {
    let probe = std::process::Command::new(program)
        .args(["-qq", "-e", "trace=none", "true"])
        .output()
        .map_err(|err| format!("strace: {err} (Debian: apt-get install strace)"))?;
    if probe.status.success() {
        Ok(())
    } else {
        Err(format!(
            "strace cannot trace here: {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        ))
    }
}

/// Quotes a word for a POSIX shell when it needs it, so a shown command pastes as it ran.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Calls `replace` on every number in `text` (digits, with a `.fraction` if one follows)
/// and substitutes what it returns; `None` keeps the number.
fn map_numbers(
    text: &str,
    mut replace: impl FnMut(&str) -> Option<String>,
) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit()
        {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
        }
        // Digits and '.' are ASCII, so start and i are on character boundaries.
        if let Some(replacement) = replace(&text[start..i]) {
            out.push_str(&text[copied..start]);
            out.push_str(&replacement);
            copied = i;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod self_test;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::self_test::bounded;

    // The scanning functions, each run with a bound: a broken loop fails its test in
    // seconds instead of hanging the run. (These shadow the glob import above.)
    fn mask_times(text: &str) -> String {
        let text = text.to_owned();
        bounded(move || super::mask_times(&text))
    }

    fn mask_number(text: &str, value: i64, token: &'static str) -> String {
        let text = text.to_owned();
        bounded(move || super::mask_number(&text, value, token))
    }

    fn normalize(text: &str) -> String {
        let text = text.to_owned();
        bounded(move || super::normalize(&text))
    }

    #[test]
    fn mask_times_hides_timestamps_but_not_small_numbers() {
        assert_eq!(
            mask_times("Parent 9788 got [b'Spam 0'] at 1628658450.6990933"),
            "Parent 9788 got [b'Spam 0'] at <time>"
        );
        assert_eq!(mask_times("at 1628658450.0 and 12.5"), "at <time> and 12.5");
        // A point that ends a sentence is not a decimal point, also at the very end.
        assert_eq!(mask_times("at 1628658450. and 12."), "at <time>. and 12.");
    }

    #[test]
    fn mask_number_replaces_whole_numbers_only() {
        assert_eq!(
            mask_number("Parent 97 got 970 and 97", 97, "<pid>"),
            "Parent <pid> got 970 and <pid>"
        );
    }

    #[test]
    fn normalize_ignores_how_wide_a_gap_is() {
        let a = "   3  pipe    pipe:[98765]    read\n";
        let b = "   3  pipe    pipe:[1234567]  read\n";
        assert_eq!(normalize(a), normalize(b));
        assert_ne!(
            normalize(a),
            normalize("   3  pipe    pipe:[98765]    write\n")
        );
    }

    #[test]
    fn normalize_numbers_values_in_order_and_keeps_small_ones() {
        assert_eq!(
            normalize("pid 97 child 98 pid 97 fd 3 took 12.5 s\nat 1628658450.5"),
            "pid <#1> child <#2> pid <#1> fd 3 took 12.5 s\nat <time>"
        );
        assert_eq!(normalize("pid 97. then 97"), "pid <#1>. then <#1>");
    }

    #[test]
    fn normalize_keeps_structure_but_not_values() {
        let a = "Parent 97 forked child 98\nParent 97 got [b'Spam 1'] at 1628658450.5\n";
        let b = "Parent 1234 forked child 1240\nParent 1234 got [b'Spam 1'] at 1795328890.25\n";
        assert_eq!(normalize(a), normalize(b));
        let swapped =
            "Parent 1240 forked child 1234\nParent 1234 got [b'Spam 1'] at 1.0e9\n";
        assert_ne!(normalize(a), normalize(swapped));
    }

    #[test]
    fn parse_bytes_repr_inverts_bytes_repr() {
        let all: Vec<u8> = (0..=255).collect();
        for sample in [&all[..], b"it's", b"say \"hi\"", b"it's \"x\"", b""] {
            assert_eq!(
                parse_bytes_repr(&lesson_kit::pyfmt::bytes_repr(sample)),
                sample
            );
        }
    }

    #[test]
    fn number_after_reads_a_pid_from_a_note() {
        let note = "Parent 41 forked child 42 (stop it with: kill 42)";
        assert_eq!(number_after(note, "forked child "), 42);
    }

    #[test]
    fn parse_stat_handles_parentheses_in_the_command() {
        let (member, pgrp) = parse_stat(42, "42 (a (b) c) Z 1 40 40 0").unwrap();
        assert_eq!(member.command, "a (b) c");
        assert_eq!((member.state, member.ppid, pgrp), ('Z', 1, 40));
    }

    #[test]
    fn shell_word_quotes_only_what_needs_it() {
        assert_eq!(shell_word("--count"), "--count");
        assert_eq!(shell_word("a b"), "'a b'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn describe_status_names_signals() {
        assert_eq!(
            describe_status(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_status(ExitStatus::from_raw(9)),
            "killed by SIGKILL"
        );
    }

    #[test]
    fn a_tracer_that_cannot_run_or_refuses_is_a_reason_to_skip_not_a_pass() {
        assert_eq!(probe_tracer("true"), Ok(()));
        let missing = probe_tracer("/nonexistent/strace").unwrap_err();
        assert!(missing.contains("apt-get install strace"), "{missing}");
        let refused = probe_tracer("false").unwrap_err();
        assert!(refused.starts_with("strace cannot trace here"), "{refused}");
    }

    #[test]
    fn trace_calls_group_by_process_without_signals_or_write_lengths() {
        let trace = "$ scripts/trace demo\n\
            parent   write(1, \"Parent 12 got\", 13) = 13\n\
            child    write(2, \"Child 1234 says a long\"..., 40) = 40\n\
            parent   --- SIGCHLD ---\n\
            parent   wait4(<child>, [exited 0], 0, NULL) = <child>\n";
        let groups = calls_by_process(trace);
        assert_eq!(
            groups["parent"],
            [
                "write(1, \"Parent 12 got\"",
                "wait4(<child>, [exited 0], 0, NULL) = <child>"
            ]
        );
        assert_eq!(groups["child"], ["write(2, \"Child 1234 says a"]);
        assert_eq!(groups.len(), 2);
    }
}
