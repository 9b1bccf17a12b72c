//! Fixtures for the fault tests that several lessons share: a stdout nobody reads, a peer
//! that is stopped, a user whom process limits bind. Each lesson's tests decide what the
//! lesson must do about it.

use crate::{Lesson, Running, TempDir, process, send};
use nix::fcntl::{OFlag, open};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A FIFO that a lesson's stdout goes into and nobody reads: the lesson fills it and then
/// blocks writing, like `lesson | sleep 60`. [`StalledStdout::break_pipe`] (or dropping
/// it) makes the reader leave, so the lesson's next write fails with EPIPE.
pub struct StalledStdout {
    reader: Option<OwnedFd>,
    // Declared after `reader`, so the FIFO's name is removed after its read end closes.
    _dir: TempDir,
}

impl StalledStdout {
    /// Starts `bin` with `args` (split by `sh`), its stdout into the FIFO, and waits until
    /// the FIFO is full and nothing more comes for 300 ms: the lesson is then blocked on
    /// its stdout. Fails the test if the lesson ends or has not filled it within 12 s.
    pub fn start(bin: &str, args: &str) -> (StalledStdout, Running) {
        let dir = TempDir::new("stalled-stdout");
        let path = dir.path().join("stdout");
        mkfifo(&path, Mode::S_IRWXU).expect("mkfifo");
        // Non-blocking, so this open does not wait for the writer; the lesson's open for
        // writing then finds a reader at once. Close-on-exec, or every process the tests
        // start would inherit a read end, and the pipe could never break.
        let reader = open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open the FIFO for reading");
        let script = format!("exec \"$0\" {args} > \"$1\"");
        let path = path.to_str().expect("a UTF-8 temporary path");
        let running = Lesson::new("sh")
            .args(["-c", &script, bin, path])
            .deadline(Duration::from_secs(15))
            .spawn();
        // Full: almost 64 KiB queued, and no more coming for 300 ms (the lessons write
        // tens of KB/s at full speed, so it is blocked, not slow).
        let start = Instant::now();
        let mut last = (0, Instant::now());
        loop {
            let now = queued(&reader);
            if now != last.0 {
                last = (now, Instant::now());
            } else if now > 60_000 && last.1.elapsed() > Duration::from_millis(300)
            {
                break;
            }
            let alive = process(running.pid()).is_some_and(|p| p.state != 'Z');
            assert!(
                alive && start.elapsed() < Duration::from_secs(12),
                "the lesson did not fill its stdout (alive: {alive}, {now} bytes queued)"
            );
            sleep(Duration::from_millis(10));
        }
        let stalled = StalledStdout {
            reader: Some(reader),
            _dir: dir,
        };
        (stalled, running)
    }

    /// How many bytes wait in the FIFO (0 once the pipe is broken).
    pub fn queued(&self) -> i32 {
        self.reader.as_ref().map_or(0, queued)
    }

    /// The reader leaves: the lesson's stdout is broken from now on.
    pub fn break_pipe(&mut self) {
        self.reader = None;
    }
}

/// How many bytes wait in the FIFO.
fn queued(fd: &OwnedFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points to `n`, alive
    // for the call; `fd` is an open descriptor we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "ioctl FIONREAD");
    n
}

/// Stops process `pid` with SIGSTOP and waits (at most 5 s) until the kernel shows it
/// stopped (`T`): a peer that is there but does nothing.
pub fn stop_process(pid: i32) {
    send(pid, Signal::SIGSTOP);
    let start = Instant::now();
    while process(pid).is_some_and(|p| p.state != 'T') {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "process {pid} not stopped 5 s after SIGSTOP"
        );
        sleep(Duration::from_millis(5));
    }
}

/// `setpriv` with the arguments that make the program after them run as user `nobody`
/// (uid and gid 65534, no groups, no capabilities), for the tests of a fork or a thread
/// that fails: `RLIMIT_NPROC` (`prlimit --nproc`, `ulimit -u`) does not bind root, and
/// binds `nobody`. `program` is the lesson the test will run that way; add it, or a shell
/// that runs it, and its arguments:
///
/// ```no_run
/// # use lesson_test::faults::as_nobody;
/// # let lesson = "/path/to/lesson";
/// let Some(nobody) = as_nobody(lesson) else { return };
/// let run = nobody.args(["prlimit", "--nproc=1:1", lesson]).run();
/// ```
///
/// `None`, after printing why the test is skipped, where it cannot work: not root, no
/// `setpriv`, or a `program` that `nobody` may not execute (a clone in root's home).
pub fn as_nobody(program: &str) -> Option<Lesson> {
    match nobody_may_run(program) {
        Ok(setpriv) => Some(nobody(setpriv)),
        Err(why) => {
            println!("skipped: cannot run {program} as user nobody here: {why}");
            None
        }
    }
}

fn nobody_may_run(program: &str) -> Result<&'static str, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("switching to nobody needs root".to_owned());
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .ok_or("setpriv (util-linux) is not installed")?;
    // access(X_OK) as nobody: every folder on the way must let nobody through.
    let run = nobody(setpriv)
        .args(["sh", "-c", r#"test -x "$0""#, program])
        .run();
    match run.code() {
        Some(0) => Ok(setpriv),
        _ => Err(format!("nobody may not execute it\n{}", run.transcript())),
    }
}

fn nobody(setpriv: &str) -> Lesson {
    Lesson::new(setpriv).args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
}
