//! Running programs the way a class does: each on a pseudo-terminal of its own, as
//! the leader of its own session, stopped at the end of the window by a Ctrl-C
//! typed into that terminal.
//!
//! One [`Run`] is one side of a comparison: a program (or two, for the FIFO pair)
//! started at given offsets. [`Run::execute`] owns everything it starts until it
//! returns: every process is reaped, the pseudo-terminals and pipes are closed, the
//! working directory it was given is left as it found it except for what the
//! programs wrote there.

use lesson_kit::Failure;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, pthread_sigmask};
use nix::sys::termios::{LocalFlags, OutputFlags, SetArg, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, read, setsid, write};
use std::ffi::OsString;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Set (to the signal number) when compare itself is asked to stop: every run then
/// ends its programs at once (SIGTERM, a short grace, SIGKILL) instead of finishing
/// its window.
pub static STOP: AtomicI32 = AtomicI32::new(0);

/// The value of [`STOP`] when compare gives up for a reason of its own (it could
/// not start a thread for every run): no signal has this number.
pub const ABORT: i32 = i32::MAX;

/// How long a program may take to end after a Ctrl-C before it gets SIGTERM, and
/// after SIGTERM before it gets SIGKILL.
pub const GRACE: Duration = Duration::from_secs(1);

/// The grace after SIGTERM when compare itself is stopping: short, so compare ends
/// within a second of its own Ctrl-C.
const STOP_GRACE: Duration = Duration::from_millis(400);

/// How often the loop looks at the clock, at [`STOP`] and at the processes.
const SLICE: Duration = Duration::from_millis(10);

/// The terminal's interrupt character: what the Ctrl-C key sends.
const CTRL_C: u8 = 0x03;

/// One program of a run.
#[derive(Debug, Clone)]
pub struct Program {
    /// `reader`, `writer`; empty when the run has one program.
    pub role: &'static str,
    pub argv: Vec<OsString>,
    pub cwd: PathBuf,
    /// A directory put in front of `PATH` (the stand-in for `python3` that runs the
    /// Rust child in `pipes.py`'s place).
    pub path_prefix: Option<PathBuf>,
    /// When to start it, after the run's start.
    pub delay: Duration,
}

/// One side of a comparison.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub programs: Vec<Program>,
    /// How long each program runs before Ctrl-C is typed into its terminal, counted
    /// from its first line on `anchor` (from its start while it has printed none):
    /// a slow start (Python takes tens of milliseconds more than Rust, seconds on a
    /// busy machine) must not cut one side's last line and not the other's.
    pub window: Duration,
    /// The stream that is compared.
    pub anchor: Stream,
    /// Remove `PYTHONUNBUFFERED` from the programs' environment.
    pub clear_unbuffered: bool,
}

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The pseudo-terminal: stdout (and nothing else: the terminal does not echo).
    Out,
    /// The stderr pipe.
    Err,
}

impl Stream {
    /// The stream that is not compared.
    pub fn other(self) -> Stream {
        match self {
            Stream::Out => Stream::Err,
            Stream::Err => Stream::Out,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stream::Out => "stdout",
            Stream::Err => "stderr",
        }
    }
}

/// A line a program printed, and when it arrived (since the run's start).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub at: Duration,
    pub role: &'static str,
    pub text: String,
}

/// What compare had to do to end a program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Nothing: it ended before the window closed.
    None,
    CtrlC,
    Term,
    Kill,
}

/// How one program ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    pub role: &'static str,
    /// What compare sent to end it, and when (since the run's start), in order.
    pub sent: Vec<(Stop, Duration)>,
    /// `exited with status 0`, `killed by SIGINT`; or why it never started.
    pub status: String,
    pub ended_at: Duration,
}

/// Everything a run produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub stdout: Vec<Line>,
    pub stderr: Vec<Line>,
    pub endings: Vec<Ending>,
}

impl Outcome {
    pub fn lines(&self, stream: Stream) -> &[Line] {
        match stream {
            Stream::Out => &self.stdout,
            Stream::Err => &self.stderr,
        }
    }
}

/// A started program: its terminal, its stderr pipe, and what we know of its end.
struct Live {
    role: &'static str,
    leader: Pid,
    terminal: Option<OwnedFd>,
    /// The terminal once nothing more comes from it, still open (see `take_in`).
    idle_terminal: Option<OwnedFd>,
    errors: Option<OwnedFd>,
    pending: [Vec<u8>; 2],
    /// The compared stream, and when its first line came: the window counts from
    /// there.
    anchor: Stream,
    first_line: Option<Duration>,
    leader_status: Option<WaitStatus>,
    group_gone: bool,
    stop: Stop,
    stopped_at: Option<Instant>,
    sent: Vec<(Stop, Duration)>,
    ended_at: Option<Duration>,
}

impl Run {
    /// Starts the programs at their offsets, lets them run for the window, types
    /// Ctrl-C into every terminal still running, escalates to SIGTERM and SIGKILL
    /// after a grace each, and reaps everything. Returns what they printed and how
    /// each ended.
    pub fn execute(&self) -> Result<Outcome, Failure> {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        let mut waiting: Vec<&Program> = self.programs.iter().collect();
        let mut live: Vec<Live> = Vec::new();
        let mut failure = None;
        loop {
            let now = started.elapsed();
            let stopping = STOP.load(Ordering::SeqCst) != 0;
            // Start what is due (nothing more once compare itself is stopping).
            while let Some(program) = waiting.first()
                && (stopping || program.delay <= now)
            {
                let program = waiting.remove(0);
                if stopping {
                    outcome
                        .endings
                        .push(never_started(program, "compare stopped"));
                    continue;
                }
                match self.start(program) {
                    Ok(started) => live.push(started),
                    Err(err) => {
                        outcome.endings.push(never_started(program, &err));
                        failure.get_or_insert(err);
                    }
                }
            }
            for program in &mut live {
                program.escalate(
                    started,
                    now >= program.first_line.unwrap_or_default() + self.window
                        || failure.is_some(),
                    stopping,
                );
            }
            if let Err(err) = read_ready(&mut live, started, &mut outcome, SLICE) {
                // Not a reason to leave anything behind: stop them all, and reap.
                failure.get_or_insert(err.to_string());
                std::thread::sleep(SLICE);
            }
            for program in &mut live {
                program.reap(started);
            }
            if waiting.is_empty() && live.iter().all(Live::done) {
                break;
            }
        }
        // Every writer is gone: what is left in the terminals and pipes is all
        // there will be.
        for program in &mut live {
            for stream in [Stream::Out, Stream::Err] {
                program.take_in(stream, started, &mut outcome);
            }
        }
        for program in live {
            outcome.endings.push(program.ending());
        }
        outcome.stdout.sort_by_key(|line| line.at);
        outcome.stderr.sort_by_key(|line| line.at);
        match failure {
            Some(err) => Err(Failure::new(&self.label, err)),
            None => Ok(outcome),
        }
    }

    // ANCHOR: start
    /// Starts one program on a fresh pseudo-terminal, as the leader of a new
    /// session whose controlling terminal it is: then the terminal's Ctrl-C reaches
    /// exactly this program and everything it forks, as in a terminal window.
    fn start(&self, program: &Program) -> Result<Live, String> {
        let (master, slave) = open_terminal()?;
        // No echo (a typed Ctrl-C would show as `^C`) and no `\n` -> `\r\n`: what
        // the program writes is what we read.
        let mut modes =
            tcgetattr(&slave).map_err(|err| format!("tcgetattr: {err}"))?;
        modes.local_flags.remove(LocalFlags::ECHO);
        modes.output_flags.remove(OutputFlags::OPOST);
        tcsetattr(&slave, SetArg::TCSANOW, &modes)
            .map_err(|err| format!("tcsetattr: {err}"))?;
        let (errors, errors_writer) =
            std::io::pipe().map_err(|err| format!("pipe: {err}"))?;
        // Our ends never block: each poll is followed by reads until EAGAIN.
        let errors = OwnedFd::from(errors);
        for fd in [&master, &errors] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .map_err(|err| format!("fcntl O_NONBLOCK: {err}"))?;
        }
        let (name, args) = program.argv.split_first().ok_or("empty command")?;
        let mut command = Command::new(name);
        command
            .args(args)
            .current_dir(&program.cwd)
            .stdin(Stdio::from(dup(&slave)?))
            .stdout(Stdio::from(slave))
            .stderr(errors_writer);
        if self.clear_unbuffered {
            command.env_remove("PYTHONUNBUFFERED");
        }
        if let Some(prefix) = &program.path_prefix {
            let mut path = OsString::from(prefix);
            path.push(":");
            path.push(std::env::var_os("PATH").unwrap_or_default());
            command.env("PATH", path);
        }
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are sound (compare has several threads). setsid,
        // the TIOCSCTTY ioctl and pthread_sigmask are bare system calls on values
        // made here; an error becomes an io::Error from its errno, without
        // allocating; nothing is locked or printed.
        unsafe {
            command.pre_exec(|| {
                // A new session, so the terminal we make controlling is this one's.
                setsid().map_err(std::io::Error::from)?;
                // fd 0 is the terminal (std has already put it there).
                Errno::result(libc::ioctl(0, libc::TIOCSCTTY, 0))
                    .map_err(std::io::Error::from)?;
                // compare blocks its stop signals to read them from a signalfd; the
                // program must start with none blocked, as from a shell.
                let none = SigSet::empty();
                pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&none), None)
                    .map_err(std::io::Error::from)?;
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|err| format!("start {}: {err}", name.to_string_lossy()))?;
        // The Command holds our copies of the terminal and of the pipe's write end:
        // drop them, or we would never see the end of either.
        drop(command);
        let leader = Pid::from_raw(
            i32::try_from(child.id()).map_err(|_| "pid out of range")?,
        );
        // We reap with waitpid on the whole process group (orphans included), not
        // with Child::wait, so the Child handle has nothing left to do.
        drop(child);
        Ok(Live {
            role: program.role,
            leader,
            terminal: Some(master),
            idle_terminal: None,
            errors: Some(errors),
            pending: [Vec::new(), Vec::new()],
            anchor: self.anchor,
            first_line: None,
            leader_status: None,
            group_gone: false,
            stop: Stop::None,
            stopped_at: None,
            sent: Vec::new(),
            ended_at: None,
        })
    }
    // ANCHOR_END: start
}

/// A new pseudo-terminal: our end (the master) and the program's (the slave), both
/// close-on-exec from the start. compare starts programs from several threads at
/// once: an end inherited by another program would keep this terminal open after
/// its own program and compare are gone, and so never hang it up.
fn open_terminal() -> Result<(OwnedFd, OwnedFd), String> {
    let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let master =
        posix_openpt(flags).map_err(|err| format!("posix_openpt: {err}"))?;
    grantpt(&master).map_err(|err| format!("grantpt: {err}"))?;
    unlockpt(&master).map_err(|err| format!("unlockpt: {err}"))?;
    let name = ptsname_r(&master).map_err(|err| format!("ptsname: {err}"))?;
    // std opens every file with O_CLOEXEC; O_NOCTTY: not *our* controlling
    // terminal.
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .map_err(|err| format!("open {name}: {err}"))?;
    // SAFETY: into_raw_fd hands over the descriptor the PtyMaster owned; nothing
    // else owns it or will close it.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    Ok((master, OwnedFd::from(slave)))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, String> {
    fd.try_clone().map_err(|err| format!("dup terminal: {err}"))
}

fn never_started(program: &Program, why: &str) -> Ending {
    Ending {
        role: program.role,
        sent: Vec::new(),
        status: format!("never started: {why}"),
        ended_at: Duration::ZERO,
    }
}

/// A program left behind by a run that ended early (an error, a panic) is not left
/// running: its whole group is killed and reaped here.
impl Drop for Live {
    fn drop(&mut self) {
        if self.done() {
            return;
        }
        let _ = killpg(self.leader, Signal::SIGKILL);
        let group = Pid::from_raw(-self.leader.as_raw());
        // Blocks until no child of ours is left in the group (ECHILD).
        while waitpid(group, None).is_ok() {}
    }
}

impl Live {
    fn done(&self) -> bool {
        self.leader_status.is_some() && self.group_gone
    }

    // ANCHOR: escalate
    /// Ctrl-C when the window closes; SIGTERM to the process group if that has not
    /// ended it after [`GRACE`]; SIGKILL after another. When compare itself is
    /// stopping, SIGTERM at once and SIGKILL soon after.
    fn escalate(&mut self, started: Instant, window_closed: bool, stopping: bool) {
        if self.done() {
            return;
        }
        let since = self.stopped_at.map(|at| at.elapsed());
        let grace = if stopping { STOP_GRACE } else { GRACE };
        let next = match (self.stop, since) {
            (Stop::None, _) if stopping => Stop::Term,
            (Stop::None, _) if window_closed => Stop::CtrlC,
            (Stop::CtrlC, Some(since)) if stopping || since >= grace => Stop::Term,
            (Stop::Term, Some(since)) if since >= grace => Stop::Kill,
            _ => return,
        };
        let group = self.leader;
        match next {
            // Typed into the terminal: the line discipline turns it into SIGINT for
            // the terminal's foreground process group, the program and what it
            // forked.
            Stop::CtrlC => {
                match self.terminal.as_ref().or(self.idle_terminal.as_ref()) {
                    Some(terminal) if self.leader_status.is_none() => {
                        let _ = write(terminal, &[CTRL_C]);
                    }
                    // The leader is gone (so is the terminal's session): signal its
                    // group.
                    _ => {
                        let _ = killpg(group, Signal::SIGINT);
                    }
                }
            }
            Stop::Term => {
                let _ = killpg(group, Signal::SIGTERM);
            }
            Stop::Kill => {
                let _ = killpg(group, Signal::SIGKILL);
            }
            Stop::None => {}
        }
        self.stop = next;
        self.stopped_at = Some(Instant::now());
        self.sent.push((next, started.elapsed()));
    }
    // ANCHOR_END: escalate

    // ANCHOR: reap
    /// Reaps every child in the program's process group: the leader, and any
    /// process orphaned there (compare is a child subreaper, so orphans come to
    /// it). The group is gone when no process in it is left, not even a zombie.
    fn reap(&mut self, started: Instant) {
        let group = Pid::from_raw(-self.leader.as_raw());
        loop {
            match waitpid(group, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if status.pid() == Some(self.leader) {
                        self.leader_status = Some(status);
                    }
                }
            }
        }
        if self.leader_status.is_some() && !self.group_gone {
            // Signal 0 checks that some process of the group still exists.
            self.group_gone = killpg(self.leader, None) == Err(Errno::ESRCH);
            if self.group_gone {
                self.ended_at = Some(started.elapsed());
            }
        }
    }
    // ANCHOR_END: reap

    fn ending(&self) -> Ending {
        let status = match self.leader_status {
            Some(status) => lesson_kit::describe_wait(status),
            None => "not reaped".to_owned(),
        };
        Ending {
            role: self.role,
            sent: self.sent.clone(),
            status,
            ended_at: self.ended_at.unwrap_or_default(),
        }
    }
}

/// Waits up to `wait` for output from any program, and takes in what is there.
fn read_ready(
    live: &mut [Live],
    started: Instant,
    outcome: &mut Outcome,
    wait: Duration,
) -> Result<(), Failure> {
    let mut sources: Vec<(usize, Stream)> = Vec::new();
    let mut fds: Vec<PollFd> = Vec::new();
    for (index, program) in live.iter().enumerate() {
        for (stream, fd) in [
            (Stream::Out, program.terminal.as_ref()),
            (Stream::Err, program.errors.as_ref()),
        ] {
            if let Some(fd) = fd {
                sources.push((index, stream));
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
    }
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    if fds.is_empty() {
        std::thread::sleep(wait);
        return Ok(());
    }
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(err) => return Err(Failure::new("poll terminals", err)),
    }
    let ready: Vec<bool> = fds
        .iter()
        .map(|fd| fd.revents().is_some_and(|events| !events.is_empty()))
        .collect();
    drop(fds);
    for ((index, stream), ready) in sources.into_iter().zip(ready) {
        if ready {
            live[index].take_in(stream, started, outcome);
        }
    }
    Ok(())
}

impl Live {
    fn source(&mut self, stream: Stream) -> &mut Option<OwnedFd> {
        match stream {
            Stream::Out => &mut self.terminal,
            Stream::Err => &mut self.errors,
        }
    }

    /// Everything a source has for us now (our ends are non-blocking: a read with
    /// nothing there says EAGAIN). Its end (EOF, or EIO from a terminal nobody has
    /// open any more) finishes the source.
    fn take_in(&mut self, stream: Stream, started: Instant, outcome: &mut Outcome) {
        let slot = stream as usize;
        let mut chunk = [0u8; 4096];
        while let Some(fd) = self.source(stream).as_ref() {
            let read = read(fd, &mut chunk);
            let at = started.elapsed();
            match read {
                Ok(n @ 1..) => {
                    self.pending[slot].extend_from_slice(&chunk[..n]);
                    while let Some(end) =
                        self.pending[slot].iter().position(|b| *b == b'\n')
                    {
                        let line: Vec<u8> =
                            self.pending[slot].drain(..=end).collect();
                        self.push(stream, at, &line[..end], outcome);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // 0 (EOF), EIO (no process has the terminal open any more) or
                // any error: this source is finished.
                _ => {
                    let rest = std::mem::take(&mut self.pending[slot]);
                    if !rest.is_empty() {
                        self.push(stream, at, &rest, outcome);
                    }
                    // Stop reading, but keep the terminal itself open until the
                    // program has ended: closing our end hangs it up, and the
                    // kernel would send SIGHUP to the program, which may only have
                    // put its stdin and stdout elsewhere (pipes.py does, onto its
                    // pipes).
                    if let Some(fd) = self.source(stream).take()
                        && stream == Stream::Out
                    {
                        self.idle_terminal = Some(fd);
                    }
                }
            }
        }
    }

    fn push(
        &mut self,
        stream: Stream,
        at: Duration,
        bytes: &[u8],
        outcome: &mut Outcome,
    ) {
        if stream == self.anchor && self.first_line.is_none() {
            self.first_line = Some(at);
        }
        let text = String::from_utf8_lossy(bytes);
        let line = Line {
            at,
            role: self.role,
            text: text.strip_suffix('\r').unwrap_or(&text).to_owned(),
        };
        match stream {
            Stream::Out => outcome.stdout.push(line),
            Stream::Err => outcome.stderr.push(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_named_and_paired_as_the_report_says() {
        assert_eq!(
            (Stream::Out.name(), Stream::Err.name()),
            ("stdout", "stderr")
        );
        assert_eq!(
            (Stream::Out.other(), Stream::Err.other()),
            (Stream::Err, Stream::Out)
        );
        let line = |text: &str| Line {
            at: Duration::ZERO,
            role: "",
            text: text.to_owned(),
        };
        let outcome = Outcome {
            stdout: vec![line("out")],
            stderr: vec![line("err")],
            endings: Vec::new(),
        };
        assert_eq!(outcome.lines(Stream::Out)[0].text, "out");
        assert_eq!(outcome.lines(Stream::Err)[0].text, "err");
    }
}
