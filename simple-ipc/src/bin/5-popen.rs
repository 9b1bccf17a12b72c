//! 5-popen: read a command's output, or write its input, through a pipe.
//!
//! Mirrors Python's `os.popen(cmd, "r").read()` and `os.popen(cmd, "w").write(...)`
//! (seeds 000 and 003 name them; `setenv.py` uses the first). The command is
//! `4-upcase`, a filter that writes in capitals. Four steps:
//! 1. mode `r` by hand: `pipe`, `fork`; the child makes the write end its stdout
//!    and execs; the parent closes its write end, reads to EOF, and waits;
//! 2. mode `w` by hand: the child makes the read end its stdin; the parent writes
//!    two lines and closes its write end, which is the child's EOF; the child's
//!    output goes straight to our stdout;
//! 3. and 4. the same with `Command` and `Stdio::piped()`.
//!
//! After each step it prints the command's exit status, as Python's `close()`
//! returns it. `--show-fds` prints the descriptor tables (on stderr) after each
//! step of the wiring, in both processes, and `4-upcase`'s after exec.
//!
//! Usage: 5-popen [--exit CODE] [--forget-close r|w] [--timeout SECS] [--show-fds]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 5-popen
//!     cargo run -p simple-ipc --bin 5-popen -- --exit 3          # status checked
//!     cargo run -p simple-ipc --bin 5-popen -- --forget-close r  # EOF never comes
//!     cargo run -p simple-ipc --bin 5-popen -- --forget-close w  # no EOF for it
//!     cargo run -p simple-ipc --bin 5-popen -- --show-fds        # who holds what
//!     cargo run -p simple-ipc --bin 5-popen -- --forget-close r --show-fds
//!
//! Where this differs from Python: a command that fails is an error (exit 1), not a
//! status to remember to look at; `--forget-close` shows the trap Python's file
//! objects hide (they close the end the caller must not keep), and detects it after
//! `--timeout` seconds instead of hanging (exit 3).

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, exit, note};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;
use nix::unistd::{
    ForkResult, Pid, dup2_stdin, dup2_stdout, fork, pipe2, read, write,
};
use simple_ipc::{
    Ended, Exec, Outcome, Stop, child_ok, describe_raw, end_child, lesson_main,
    read_all, reap, show_fds, show_fds_from_now, showing_fds, sibling,
    spawn_failed, try_reap,
};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const PROGRAM: &str = "5-popen";
const UPCASE: &str = "4-upcase";

/// What mode `w` sends.
const LINES: &[u8] = b"spam\neggs\n";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Read,
    Write,
}

struct Options {
    /// The status `4-upcase` ends with.
    exit: u8,
    /// DELIBERATELY BROKEN: keep our write end open in this mode.
    forget: Option<Mode>,
    /// How long to wait for an EOF before calling it the trap.
    timeout: Duration,
    /// `--show-fds`: print the descriptor tables at each step.
    show_fds: bool,
}

/// How a step ended.
enum Step {
    /// The command ran; its raw wait status.
    Ran(i32),
    /// The EOF trap: nothing moves any more.
    Stuck,
}

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, run)
}

// ANCHOR: run
fn run(options: &Options) -> Outcome {
    show_fds_from_now(options.show_fds);
    let stop = Stop::install()?;
    let upcase = sibling(UPCASE)?;
    let code = options.exit.to_string();
    let argv = |words: &[&str]| -> Vec<Vec<u8>> {
        let show = showing_fds().then_some("--show-fds"); // its table after exec
        [UPCASE, "--exit", &code]
            .iter()
            .chain(show.iter())
            .chain(words)
            .map(|word| word.as_bytes().to_vec())
            .collect()
    };
    let mut failed = false;
    let steps: [(&str, Mode, bool); 4] = [
        (
            "[1] mode r by hand: pipe, fork, dup2 onto the child's stdout, exec",
            Mode::Read,
            true,
        ),
        (
            "[2] mode w by hand: pipe, fork, dup2 onto the child's stdin, exec",
            Mode::Write,
            true,
        ),
        (
            "[3] mode r with Command: Stdio::piped() stdout",
            Mode::Read,
            false,
        ),
        (
            "[4] mode w with Command: Stdio::piped() stdin",
            Mode::Write,
            false,
        ),
    ];
    for (title, mode, by_hand) in steps {
        note!("{title}");
        let step = match (mode, by_hand) {
            (Mode::Read, true) => {
                let exec = Exec::new(&upcase, argv(&["spam", "eggs"]))?;
                popen_read(&exec, options, &stop)?
            }
            (Mode::Write, true) => {
                popen_write(&Exec::new(&upcase, argv(&[]))?, options, &stop)?
            }
            (Mode::Read, false) => command_read(&upcase, &code, &stop)?,
            (Mode::Write, false) => command_write(&upcase, &code, &stop)?,
        };
        match step {
            Step::Ran(status) => {
                close_status(status)?;
                match child_ok(UPCASE, status) {
                    Ok(()) => {}
                    // 127/126: the command could not even start; nothing else will.
                    Err(ended @ Ended::Exec(..)) => return Err(ended),
                    Err(_) => failed = true, // checked, reported at the end
                }
            }
            Step::Stuck => return Ok(ExitCode::from(exit::TIMEOUT)),
        }
    }
    if failed {
        note!("{PROGRAM}: {UPCASE} failed (exit status {code})");
        return Ok(ExitCode::from(exit::RUNTIME));
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: popen_read
/// `os.popen(cmd, "r").read()` by hand.
fn popen_read(exec: &Exec, options: &Options, stop: &Stop) -> Result<Step, Ended> {
    // O_CLOEXEC: exec closes any copy not handed over on purpose as fd 0, 1 or 2.
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    show_fds("parent", "after pipe2");
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: single-threaded process (Stop::install starts no thread); the child
    // only closes, dup2s, resets its signals, execs or writes a fixed message and
    // _exits. With --show-fds it also reads /proc and allocates: sound here, as no
    // other thread can hold a lock of the allocator at the fork.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            show_fds("child", "after fork");
            drop(read_end); // the child only writes
            show_fds("child", "after close(read end)");
            if dup2_stdout(&write_end).is_err() {
                simple_ipc::die(b"5-popen: child: dup2 failed\n", exit::RUNTIME);
            }
            show_fds("child", "after dup2 onto fd 1");
            drop(write_end); // fd 1 is the copy it keeps (dup2 clears CLOEXEC)
            show_fds("child", "after close(write end)");
            exec.exec_in_child()
        }
        ForkResult::Parent { child } => child,
    };
    show_fds("parent", "after fork");
    let kept = if options.forget == Some(Mode::Read) {
        // DELIBERATELY BROKEN: we keep a write end of the pipe we read from, so the
        // kernel can never tell us "no writer is left": EOF never comes.
        show_fds(
            "parent",
            "after NOT closing its write end (--forget-close r)",
        );
        Some(write_end)
    } else {
        drop(write_end); // the child has the only write end: its exit is our EOF
        show_fds("parent", "after close(write end)");
        None
    };
    let outcome = read_to_eof(&read_end, child, options.timeout, stop)?;
    drop(read_end);
    drop(kept);
    match outcome {
        ReadEnd::Eof(text, status) => {
            show_read(&text)?;
            Ok(Step::Ran(status))
        }
        ReadEnd::NoEof(text, status) => {
            show_read(&text)?;
            note!(
                "{PROGRAM}: {UPCASE} {} {:?} ago, yet no EOF:\n  our own write end \
                 is still open (--forget-close r)",
                describe_raw(status),
                options.timeout
            );
            Ok(Step::Stuck)
        }
    }
}
// ANCHOR_END: popen_read

enum ReadEnd {
    /// Everything the command wrote, and its raw wait status.
    Eof(Vec<u8>, i32),
    /// The command exited (with this status) and, a while later, still no EOF.
    NoEof(Vec<u8>, i32),
}

// ANCHOR: read_to_eof
/// Reads until EOF; then reaps the child. If the child has exited and EOF still has
/// not come `timeout` later, that is the trap: returns what was read and the
/// child's status.
fn read_to_eof(
    from_child: &OwnedFd,
    child: Pid,
    timeout: Duration,
    stop: &Stop,
) -> Result<ReadEnd, Ended> {
    let mut text = Vec::new();
    let mut exited: Option<(i32, Instant)> = None;
    loop {
        let events = PollFlags::POLLIN; // POLLHUP comes unasked
        let slice = Duration::from_millis(50);
        let ready = match stop.wait_for(Some((from_child.as_fd(), events)), slice) {
            Ok(ready) => ready,
            Err(ended) => {
                if exited.is_none() {
                    end_child(child);
                }
                return Err(ended);
            }
        };
        if ready {
            let mut chunk = [0u8; 4096];
            let n = match read(from_child, &mut chunk) {
                Ok(n) => n,
                Err(errno) => {
                    if exited.is_none() {
                        end_child(child);
                    }
                    return Err(lesson_kit::Failure::new("read pipe", errno).into());
                }
            };
            if n == 0 {
                // EOF: every write end is closed. Now collect the child's status.
                let status = match exited {
                    Some((status, _)) => status,
                    None => reap(child, stop)?,
                };
                return Ok(ReadEnd::Eof(text, status));
            }
            text.extend_from_slice(&chunk[..n]);
            continue;
        }
        // Nothing to read. Has the child gone, and how long ago?
        match exited {
            None => {
                if let Some(status) = try_reap(child)? {
                    exited = Some((status, Instant::now()));
                }
            }
            Some((status, since)) if since.elapsed() >= timeout => {
                return Ok(ReadEnd::NoEof(text, status));
            }
            Some(_) => {}
        }
    }
}
// ANCHOR_END: read_to_eof

// ANCHOR: popen_write
/// `os.popen(cmd, "w").write(...)` by hand; the command writes to our stdout.
fn popen_write(exec: &Exec, options: &Options, stop: &Stop) -> Result<Step, Ended> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    show_fds("parent", "after pipe2");
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: as in popen_read.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            show_fds("child", "after fork");
            drop(write_end); // the child only reads (a write end here: a trap)
            show_fds("child", "after close(write end)");
            if dup2_stdin(&read_end).is_err() {
                simple_ipc::die(b"5-popen: child: dup2 failed\n", exit::RUNTIME);
            }
            show_fds("child", "after dup2 onto fd 0");
            drop(read_end);
            show_fds("child", "after close(read end)");
            exec.exec_in_child()
        }
        ForkResult::Parent { child } => child,
    };
    show_fds("parent", "after fork");
    drop(read_end); // we only write
    show_fds("parent", "after close(read end)");
    // Two short lines: far below the pipe's 64 KiB, so this write never blocks.
    match write(&write_end, LINES) {
        Ok(_) => {}
        // The child closed its stdin without reading it (exec failed, say): its
        // status says why.
        Err(Errno::EPIPE) => return Ok(Step::Ran(reap(child, stop)?)),
        Err(errno) => {
            end_child(child);
            return Err(lesson_kit::Failure::new("write pipe", errno).into());
        }
    }
    let kept = if options.forget == Some(Mode::Write) {
        // DELIBERATELY BROKEN: the child waits for an EOF that never comes
        show_fds(
            "parent",
            "after NOT closing its write end (--forget-close w)",
        );
        Some(write_end)
    } else {
        // The last write end: the child's next read returns 0 (EOF)
        drop(write_end);
        show_fds("parent", "after close(write end)");
        None
    };
    let step = match reap_within(child, options.timeout, stop)? {
        Some(status) => Step::Ran(status),
        None => {
            note!(
                "{PROGRAM}: no EOF for {UPCASE} {:?} after our last write:\n  \
                 our own write end is still open (--forget-close w); ending it",
                options.timeout
            );
            end_child(child);
            Step::Stuck
        }
    };
    drop(kept); // only now: closed any earlier, it would hand the child its EOF
    Ok(step)
}
// ANCHOR_END: popen_write

/// Waits up to `timeout` for the child to exit: its raw status, or `None` if it
/// still runs (then it is still ours to end and reap).
fn reap_within(
    child: Pid,
    timeout: Duration,
    stop: &Stop,
) -> Result<Option<i32>, Ended> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = try_reap(child)? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        if let Err(ended) = stop.sleep(Duration::from_millis(5)) {
            end_child(child);
            return Err(ended);
        }
    }
}

// ANCHOR: command
/// Mode `r` with `Command`: std makes the pipe, and keeps no write end in the
/// parent.
fn command_read(upcase: &Path, code: &str, stop: &Stop) -> Result<Step, Ended> {
    let mut child = Command::new(upcase)
        .args(["--exit", code])
        .args(showing_fds().then_some("--show-fds"))
        .args(["spam", "eggs"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_failed(upcase, err))?;
    show_fds("parent", "after Command::spawn");
    let from_child = child.stdout.take().expect("stdout was piped");
    let pid = Pid::from_raw(child.id() as libc::pid_t);
    let text = read_all(from_child.as_fd(), stop, "read pipe from 4-upcase");
    drop(from_child);
    // Reaped on every path, before `text?` can return
    let status = reap(pid, stop)?;
    show_read(&text?)?;
    Ok(Step::Ran(status))
}

/// Mode `w` with `Command`: dropping `ChildStdin` closes the only write end.
fn command_write(upcase: &Path, code: &str, stop: &Stop) -> Result<Step, Ended> {
    let mut child = Command::new(upcase)
        .args(["--exit", code])
        .args(showing_fds().then_some("--show-fds"))
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_failed(upcase, err))?;
    show_fds("parent", "after Command::spawn");
    let mut to_child = child.stdin.take().expect("stdin was piped");
    let pid = Pid::from_raw(child.id() as libc::pid_t);
    let wrote = to_child.write_all(LINES);
    drop(to_child); // EOF for the child: forget this and it waits forever
    let status = reap(pid, stop)?; // reaped first, whatever the write did
    // (A failed exec is spawn()'s error with Command, so the child is running
    // 4-upcase here, which reads everything: no broken pipe to expect.)
    wrote.context("write pipe to 4-upcase")?;
    Ok(Step::Ran(status))
}
// ANCHOR_END: command

/// Prints what mode `r` read, line by line.
fn show_read(text: &[u8]) -> Result<(), Ended> {
    let mut out = io::stdout().lock();
    for line in String::from_utf8_lossy(text).lines() {
        writeln!(out, "read: {line}").context("write stdout")?;
    }
    out.flush().context("write stdout")?;
    Ok(())
}

// ANCHOR: close_status
/// Prints the command's status, and what Python's `close()` returns for it.
fn close_status(status: i32) -> Result<(), Ended> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "close: {UPCASE} {} (Python's close() returns {})",
        describe_raw(status),
        python_close(status)
    )
    .and_then(|()| out.flush())
    .context("write stdout")?;
    Ok(())
}

/// Python's `os.popen(...).close()`: `None` for success, else `returncode << 8`:
/// the exit code moved into the second byte, as in a raw wait status; for a command
/// killed by signal n, `returncode` is -n.
fn python_close(status: i32) -> String {
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        "None".to_owned()
    } else if libc::WIFSIGNALED(status) {
        (-libc::WTERMSIG(status) << 8).to_string()
    } else {
        (libc::WEXITSTATUS(status) << 8).to_string()
    }
}
// ANCHOR_END: close_status

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        exit: 0,
        forget: None,
        timeout: Duration::from_secs(2),
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--exit" => {
                // Parsed as u16, so that 256 is "out of range", not "too large".
                let code: u16 = parser.value_in(&arg, 0..=255)?;
                options.exit = u8::try_from(code).unwrap_or(u8::MAX);
            }
            "--forget-close" => {
                options.forget = match parser.value::<String>(&arg)?.as_str() {
                    "r" => Some(Mode::Read),
                    "w" => Some(Mode::Write),
                    other => {
                        return Err(UsageError(format!(
                            "--forget-close {other:?}: must be r or w"
                        )));
                    }
                }
            }
            "--timeout" => {
                let secs: f64 = parser.value_in(&arg, 0.1..=60.0)?;
                options.timeout = Duration::from_secs_f64(secs);
            }
            "--show-fds" => options.show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--exit CODE] [--forget-close r|w] [--timeout SECS] [--show-fds]

Reads the output of `{UPCASE} spam eggs` through a pipe (Python's os.popen mode r),
then writes two lines into `{UPCASE}`'s stdin (mode w), first by hand (pipe, fork,
dup2, exec, wait), then with Command; after each, prints the command's exit status
and what Python's close() returns for it.

Options:
  --exit CODE          {UPCASE} ends with status CODE, 0 to 255 (default 0)
  --forget-close r|w   DELIBERATELY BROKEN: keep our write end open in that mode, so
                       EOF never comes; detected after --timeout, exit 3
  --timeout SECS       how long to wait for that EOF, 0.1 to 60 (default 2)
  --show-fds           print the descriptor tables on stderr after each step:
                       pipe2, fork, the closes and dup2 in both processes, and
                       {UPCASE}'s after exec
  -h, --help           print this help

Exit status: 0 done; 1 a system call failed or {UPCASE} exited non-zero; 2 bad
command line; 3 EOF never came (--forget-close); 126/127 {UPCASE} could not be run;
128+n stopped by signal n.
"
    )
}

#[cfg(test)]
mod tests {
    use super::python_close;

    #[test]
    fn python_close_is_none_or_the_returncode_shifted_left() {
        assert_eq!(python_close(0), "None");
        assert_eq!(python_close(3 << 8), "768");
        assert_eq!(python_close(255 << 8), "65280");
        assert_eq!(python_close(libc::SIGKILL), "-2304"); // returncode -9
        assert_eq!(python_close(libc::SIGPIPE), "-3328"); // returncode -13
    }
}
