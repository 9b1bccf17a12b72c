//! bidir-spawn: a parent and an exec'd child talk both ways over two pipes.
//!
//! Mirrors `pipes.py` and `pipes_test_child.py` from the documents. `spawn()` makes two
//! pipes and forks; the parent rewires its own stdin/stdout onto its ends, the child rewires
//! its stdin/stdout onto the other ends and `execvp`s a program. Then they talk in lines:
//! the parent prints `Hello 1 from parent <pid>` (into the pipe), the child answers
//! `Child <pid> got: [Hello 1 from parent <pid>]`, twice. The terminal (stderr) shows:
//!
//!     Child 20267 of 20266 got arg: "spam"
//!     Parent got: "Child 20267 got: [Hello 1 from parent 20266]"
//!     Parent got: "Child 20267 got: [Hello 2 from parent 20266]"
//!
//! Usage: bidir-spawn [--speed X] [--no-flush] [--reply-timeout SECS] [--command]
//!                    [-- PROGRAM [ARGS...]]
//!        bidir-spawn --child [--speed X] [--no-flush] ARG
//!
//! Try it:
//!     cargo run -p bidir-spawn                      # the document's 12-second run
//!     cargo run -p bidir-spawn -- --speed 10
//!     cargo run -p bidir-spawn -- --speed 10 --no-flush   # the flush deadlock, detected
//!     cargo run -p bidir-spawn -- -- cat            # any program: cat echoes
//!     cargo run -p bidir-spawn -- -- python3 pipes_test_child.py spam
//!
//! With no PROGRAM, the child is this same binary run with `--child spam`, the Rust
//! counterpart of pipes_test_child.py, so the lesson needs nothing else built.
//!
//! Where this differs from the document, on purpose: the child's SIGPIPE is reset before
//! exec; an exec failure is reported (status 127 or 126) instead of a child that falls back
//! into the parent's code; a child that exits early or never replies is detected, never
//! waited for forever (exit 3 with an explanation); the child is always reaped.

use lesson_kit::args::{
    Parser, Positive, UsageError, parse_command_line, usage_failure,
};
use lesson_kit::{Context, Failure, describe_wait, exit};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{
    SigHandler, SigSet, SigmaskHow, Signal, kill, signal, sigprocmask,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{
    ForkResult, Pid, dup2_stdin, dup2_stdout, execvp, fork, getpid, getppid, pipe2,
    read, write,
};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufWriter, Write};
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROGRAM: &str = "bidir-spawn";

/// pipes_test_child.py sleeps 3 s before reading a line and 3 s before replying.
const CHILD_WAIT_SECS: f64 = 3.0;

/// The longest reply line the parent accepts.
const MAX_REPLY: usize = 64 * 1024;

struct Options {
    speed: f64,
    flush: bool,
    /// `None`: wait as long as the document's child needs, plus 2 s.
    reply_timeout: Option<Duration>,
    /// Spawn with std::process::Command instead of the hand-written fork + exec.
    command: bool,
    /// Run as the child program (pipes_test_child), with this argument.
    child_arg: Option<String>,
    /// The program to spawn and its arguments; empty: this binary in child mode.
    program: Vec<String>,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    if let Some(arg) = &options.child_arg {
        return pipes_test_child(arg, &options);
    }

    // ANCHOR: argv
    // Everything the child will need is built now, before fork: after fork the child may
    // not allocate. A NUL byte cannot be passed to exec, so that is refused here too.
    let (program, args) = program_and_args(&options)?;
    let argv = match c_argv(&program, &args) {
        Ok(argv) => argv,
        Err(err) => return Ok(usage_failure(PROGRAM, &err, &usage())),
    };
    let exec_failed = ExecMessages::for_program(&program);
    // ANCHOR_END: argv
    let timeout = options.reply_timeout.unwrap_or_else(|| {
        Duration::from_secs(2)
            + Duration::from_secs_f64(2.0 * CHILD_WAIT_SECS / options.speed)
    });

    let me = getpid();
    // ANCHOR: choreography
    let (child, mut to_child, mut replies) = if options.command {
        match spawn_with_command(&program, &args)? {
            Spawned::Running(child, to_child, replies) => {
                (child, to_child, replies)
            }
            Spawned::Failed(code) => return Ok(ExitCode::from(code)),
        }
    } else {
        let child = spawn(&argv, &exec_failed)?;
        // From here on our own stdout writes into the child's stdin, and our own stdin
        // reads the child's stdout, exactly as in the document.
        let to_child: Box<dyn Write> = Box::new(io::stdout());
        (child, to_child, Replies::new(Box::new(io::stdin())))
    };

    let talk = converse(me, &mut to_child, &mut replies, timeout);
    if let Ok(Talk::NoReply(waited)) = &talk {
        // A deadlock: each side waits for the other, and neither will move. Say why, and
        // end it from our side, before closing anything the child might react to.
        eprintln!(
            "{PROGRAM}: no reply within {waited:?}: the child's output is probably \
             buffered, not flushed (both sides now wait for each other); killing it"
        );
        let _ = kill(child, Signal::SIGKILL); // it may have exited meanwhile
    }

    // Whatever happened, the child's stdin must reach EOF, or a child reading it (cat)
    // would wait forever: close our end of that pipe.
    drop(to_child);
    if !options.command {
        // Our fd 1 *is* that pipe's write end: replace it with /dev/null to close it.
        let null = File::options()
            .write(true)
            .open("/dev/null")
            .context("open /dev/null")?;
        dup2_stdout(&null).context("dup2 /dev/null onto stdout")?;
    }
    let code = finish(child, talk, timeout)?;
    // ANCHOR_END: choreography
    Ok(ExitCode::from(code))
}
// ANCHOR_END: main

// ANCHOR: spawn
/// The document's `spawn()`: two pipes, `fork`, and each side rewires its stdin and stdout
/// onto its ends of the pipes. The child then `execvp`s `argv`. Returns the child's pid;
/// from then on, the parent's stdout goes to the child and its stdin comes from the child.
fn spawn(argv: &[CString], exec_failed: &ExecMessages) -> Result<Pid, Failure> {
    // Two one-way pipes make one two-way conversation. O_CLOEXEC: any copy we forget is
    // closed by exec, so the exec'd program holds only what we give it on purpose.
    let (parent_in, child_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (child to parent)")?;
    let (child_in, parent_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (parent to child)")?;

    io::stdout().flush().context("flush stdout")?; // or the child could print it again
    // SAFETY: this process is single-threaded when it forks (nothing before this point
    // starts a thread). The child still follows the strict rules for a forked child: it
    // only closes descriptors, calls dup2, resets signal state, writes fixed bytes, execs
    // and _exits, all async-signal-safe except execvp's PATH search, which is fine in a
    // single-threaded process. Every allocation it needs (argv, messages) was made before.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // In the child: no allocation, no `?`, no println!, no unwrap from here on.
            drop(parent_in); // the parent's ends are not ours
            drop(parent_out);
            if dup2_stdin(&child_in).is_err() || dup2_stdout(&child_out).is_err() {
                die(b"bidir-spawn: dup2 failed in the child\n", exit::RUNTIME);
            }
            drop(child_in); // fd 0 and fd 1 are the copies we keep
            drop(child_out);
            close_inherited_descriptors();
            // Rust set SIGPIPE to "ignore" before main, and an ignored signal stays ignored
            // across exec. Give the program the default it expects (Command does the same),
            // and an empty signal mask.
            // SAFETY: SIG_DFL installs no handler, so no Rust code can run in signal context.
            let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
            let _ =
                sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let Err(errno) = execvp(&argv[0], argv);
            // Only reached if exec failed. Say so, with bytes built before fork, and use the
            // shell's codes: 127 not found, 126 found but not executable.
            match errno {
                Errno::ENOENT | Errno::ENOTDIR => {
                    die(&exec_failed.not_found, exit::NOT_FOUND)
                }
                _ => die(&exec_failed.not_executable, exit::NOT_EXECUTABLE),
            }
        }
        ForkResult::Parent { child } => {
            drop(child_in); // the child's ends: if we kept child_out, we would never see
            drop(child_out); // EOF from the child, even after it exits
            dup2_stdin(&parent_in).context("dup2 pipe onto stdin")?;
            dup2_stdout(&parent_out).context("dup2 pipe onto stdout")?;
            drop(parent_in); // fd 0 and fd 1 are now the copies we use
            drop(parent_out);
            Ok(child)
        }
    }
}
// ANCHOR_END: spawn

/// Closes every descriptor above 2 in the child, before exec.
///
/// Our own pipes are close-on-exec already. These are the ones *this* process inherited
/// without the flag from whoever started it (a shell, a terminal, cargo): exec would pass
/// them on to a program that knows nothing about them, and an inherited pipe end can keep
/// some other reader from ever seeing EOF. Python's subprocess does the same
/// (`close_fds=True`); the document's `os.execvp`, and Rust's `Command`, do not.
fn close_inherited_descriptors() {
    // SAFETY: close_range(2) only closes descriptors; nothing in this child uses any above 2
    // (Rust code here holds none), and it is async-signal-safe, being a single system call.
    let closed = unsafe { libc::close_range(3, libc::c_uint::MAX, 0) };
    if closed != 0 {
        // Linux before 5.9 has no close_range: close them one by one (also safe after fork).
        for fd in 3..1024 {
            // SAFETY: as above; closing a descriptor that is not open fails harmlessly.
            unsafe { libc::close(fd) };
        }
    }
}

/// A forked child's last words: a fixed message on stderr, then `_exit`.
fn die(message: &[u8], code: u8) -> ! {
    let _ = write(io::stderr(), message); // best effort: nobody to report a failure to
    // SAFETY: `_exit` ends the process at once and is async-signal-safe.
    unsafe { libc::_exit(i32::from(code)) }
}

/// The exec-failure messages, built before fork so the child need not allocate.
struct ExecMessages {
    not_found: Vec<u8>,
    not_executable: Vec<u8>,
}

impl ExecMessages {
    fn for_program(program: &str) -> ExecMessages {
        ExecMessages {
            not_found: format!("{PROGRAM}: exec {program}: not found\n")
                .into_bytes(),
            not_executable: format!("{PROGRAM}: exec {program}: not executable\n")
                .into_bytes(),
        }
    }
}

// ANCHOR: command
/// The idiomatic way: `std::process::Command` makes the pipes (close-on-exec), forks or
/// uses posix_spawn, resets SIGPIPE and the signal mask in the child, and reports an exec
/// failure as an error from `spawn()` itself, through a pipe of its own.
fn spawn_with_command(program: &str, args: &[String]) -> Result<Spawned, Failure> {
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            eprintln!("{PROGRAM}: spawn {program}: {err}");
            let code = match err.kind() {
                io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::NOT_EXECUTABLE,
            };
            return Ok(Spawned::Failed(code));
        }
    };
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take())
    else {
        return Err(Failure::new("spawn", "piped stdin/stdout missing"));
    };
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    // `child` (std's handle) is dropped here; dropping it neither kills nor reaps the
    // process, so the same waitpid code reaps it below, whichever spawn made it.
    Ok(Spawned::Running(
        pid,
        Box::new(stdin),
        Replies::new(Box::new(stdout)),
    ))
}
// ANCHOR_END: command

enum Spawned {
    Running(Pid, Box<dyn Write>, Replies),
    /// Exec failed; the exit code to use (127 or 126).
    Failed(u8),
}

/// How the conversation ended.
enum Talk {
    /// Both replies arrived.
    Done,
    /// The child closed its stdout (or its stdin) before replying: it exited or crashed.
    ChildGone,
    /// No reply within the time limit.
    NoReply(Duration),
}

// ANCHOR: converse
/// The document's main(): say hello twice, each time waiting for the reply line.
fn converse(
    me: Pid,
    to_child: &mut dyn Write,
    replies: &mut Replies,
    timeout: Duration,
) -> Result<Talk, Failure> {
    for i in 1..=2 {
        let hello = writeln!(to_child, "Hello {i} from parent {me}");
        // The flush is what makes this work: without it, the line could sit in our buffer.
        match hello.and_then(|()| to_child.flush()) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(Talk::ChildGone);
            }
            Err(err) => return Err(err).context("write to child"),
        }
        match replies.next_line(timeout)? {
            Reply::Line(reply) => eprintln!("Parent got: \"{reply}\""),
            Reply::Eof => return Ok(Talk::ChildGone),
            Reply::Silent => return Ok(Talk::NoReply(timeout)),
        }
    }
    Ok(Talk::Done)
}
// ANCHOR_END: converse

// ANCHOR: finish
/// Reaps the child on every path and turns the outcome into the exit code.
fn finish(
    child: Pid,
    talk: Result<Talk, Failure>,
    timeout: Duration,
) -> Result<u8, Failure> {
    match talk {
        Ok(Talk::NoReply(_)) => {
            // main has killed it; reap it.
            let status =
                waitpid(child, None).context(format!("waitpid child {child}"))?;
            eprintln!("{PROGRAM}: child {child} {}", describe_wait(status));
            Ok(exit::TIMEOUT)
        }
        Ok(Talk::ChildGone) => {
            let Some(status) = wait_or_kill(child, timeout)? else {
                return Ok(exit::TIMEOUT);
            };
            eprintln!(
                "{PROGRAM}: child {child} ended before replying: {}",
                describe_wait(status)
            );
            Ok(match status {
                WaitStatus::Exited(_, code @ (126 | 127)) => code as u8,
                _ => exit::RUNTIME,
            })
        }
        Ok(Talk::Done) => {
            let Some(status) = wait_or_kill(child, timeout)? else {
                return Ok(exit::TIMEOUT);
            };
            if matches!(status, WaitStatus::Exited(_, 0)) {
                Ok(exit::OK)
            } else {
                eprintln!("{PROGRAM}: child {child} {}", describe_wait(status));
                Ok(exit::RUNTIME)
            }
        }
        Err(failure) => {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None); // reap it even on this path
            Err(failure)
        }
    }
}

/// Waits up to `timeout` for the child to exit and returns how it ended; if it is still
/// running then, kills and reaps it and returns `None`.
fn wait_or_kill(
    child: Pid,
    timeout: Duration,
) -> Result<Option<WaitStatus>, Failure> {
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).context("waitpid")? {
            WaitStatus::StillAlive if Instant::now() < deadline => {
                sleep(Duration::from_millis(10))
            }
            WaitStatus::StillAlive => {
                eprintln!(
                    "{PROGRAM}: child {child} did not exit within {timeout:?} of its stdin \
                     closing; killing it"
                );
                let _ = kill(child, Signal::SIGKILL);
                waitpid(child, None).context("waitpid")?;
                return Ok(None);
            }
            status => return Ok(Some(status)),
        }
    }
}
// ANCHOR_END: finish

// ANCHOR: replies
/// Reads the child's replies line by line, never waiting longer than asked.
///
/// Python's `input()` would block forever on a child that never answers. Here every wait is
/// a `poll` with a timeout, and bytes after a newline are kept for the next line.
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
}

impl Replies {
    fn new(from_child: Box<dyn AsFd>) -> Replies {
        Replies {
            from_child,
            pending: Vec::new(),
        }
    }

    fn next_line(&mut self, timeout: Duration) -> Result<Reply, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line[..end]).into_owned();
                return Ok(Reply::Line(text));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Reply::Silent);
            }
            let fd = self.from_child.as_fd();
            let mut ready = [PollFd::new(fd, PollFlags::POLLIN)];
            match poll(
                &mut ready,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) | Err(Errno::EINTR) => continue, // the deadline check decides
                Ok(_) => {}
                Err(errno) => {
                    return Err(errno).context("poll the pipe from the child");
                }
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
            if self.pending.len() > MAX_REPLY {
                let why = format!(
                    "a reply is longer than {MAX_REPLY} bytes without a newline"
                );
                return Err(Failure::new("read the pipe from the child", why));
            }
        }
    }
}
// ANCHOR_END: replies

// ANCHOR: child_program
/// The child program, pipes_test_child.py in Rust: report the argument, then twice: wait,
/// read a line, wait, reply.
fn pipes_test_child(arg: &str, options: &Options) -> Result<ExitCode, Failure> {
    let me = getpid();
    eprintln!("Child {me} of {} got arg: \"{arg}\"", getppid());
    let wait = Duration::from_secs_f64(CHILD_WAIT_SECS / options.speed);
    let mut stdin = io::stdin().lock();
    // A block buffer of our own, as C stdio and Python give any program whose stdout is a
    // pipe. Rust's Stdout by itself flushes at every newline today, which would hide the
    // document's deadlock; with BufWriter the reply waits for flush() like Python's does.
    let mut stdout = BufWriter::new(io::stdout().lock());
    for _ in 0..2 {
        sleep(wait);
        let mut line = String::new();
        if stdin.read_line(&mut line).context("read stdin")? == 0 {
            return Err(Failure::new(
                "read stdin",
                "EOF: the parent closed the pipe",
            ));
        }
        let line = line.strip_suffix('\n').unwrap_or(&line);
        sleep(wait);
        writeln!(stdout, "Child {me} got: [{line}]").context("write stdout")?;
        if options.flush {
            stdout.flush().context("flush stdout")?; // sys.stdout.flush()
        }
        // DELIBERATELY BROKEN with --no-flush: the reply stays in our buffer. The parent
        // waits for it, we wait for the parent's next line: neither moves again.
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: child_program

/// The program to spawn: the one named after `--`, or this binary as pipes_test_child.
fn program_and_args(options: &Options) -> Result<(String, Vec<String>), Failure> {
    if let Some((program, args)) = options.program.split_first() {
        return Ok((program.clone(), args.to_vec()));
    }
    let me = std::env::current_exe().context("find this program (current_exe)")?;
    let mut args = vec![
        "--child".to_owned(),
        "--speed".to_owned(),
        options.speed.to_string(),
    ];
    if !options.flush {
        args.push("--no-flush".to_owned());
    }
    args.push("spam".to_owned()); // the document's argument
    Ok((me.to_string_lossy().into_owned(), args))
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
        child_arg: None,
        program: Vec::new(),
    };
    let mut child = false;
    let mut positionals = Vec::new();
    while let Some(arg) = parser.next()? {
        if parser.options_ended() || !arg.starts_with('-') || arg == "-" {
            // The program's name (or --child's argument): what follows is all the program's,
            // dashes included, as with `env` or `sudo`.
            positionals.push(arg);
            positionals.extend(parser.rest());
            break;
        }
        match arg.as_str() {
            "--speed" => options.speed = parser.value::<Positive>(&arg)?.0,
            "--no-flush" => options.flush = false,
            "--reply-timeout" => {
                let secs = parser.value::<Positive>(&arg)?.0;
                options.reply_timeout = Some(Duration::from_secs_f64(secs));
            }
            "--command" => options.command = true,
            "--child" => child = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if child {
        let [arg] = <[String; 1]>::try_from(positionals).map_err(|_| {
            UsageError("--child takes exactly one argument".to_owned())
        })?;
        options.child_arg = Some(arg);
    } else {
        options.program = positionals;
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--speed X] [--no-flush] [--reply-timeout SECS] [--command]
                   [-- PROGRAM [ARGS...]]
       {PROGRAM} --child [--speed X] [--no-flush] ARG

The parent makes two pipes, forks, and rewires its stdin/stdout onto them; the child
rewires its own and execs PROGRAM (by default this binary with `--child spam`, the
documents' pipes_test_child.py). The parent sends `Hello 1 from parent <pid>` and
`Hello 2 ...`, and prints each reply line on stderr as `Parent got: \"<reply>\"`
(the documents' pipes.py).

Options:
  --speed X             the child's 3 s waits are X times shorter (the document's run
                        takes about 12 s)
  --no-flush            DELIBERATELY BROKEN: the child does not flush its replies, as in
                        the document with the flushes removed; the parent detects the
                        deadlock, kills the child and exits 3
  --reply-timeout SECS  how long to wait for each reply (default: 2 s more than the
                        document's child needs at this speed)
  --command             spawn with std::process::Command instead of fork + dup2 + exec
  --child               run as the child program (what the parent execs)
  -h, --help            print this help

Exit status: 0 both replies arrived and the child exited 0; 1 a system call failed or
the child ended badly; 2 bad command line; 3 no reply in time (deadlock) or the child
would not exit; 127 / 126 the program was not found / not executable.
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
}
