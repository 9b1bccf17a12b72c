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
//!                    [--show-fds] [-- PROGRAM [ARGS...]]
//!
//! Try it:
//!     cargo run -p bidir-spawn                      # the document's 12-second run
//!     cargo run -p bidir-spawn -- --speed 10
//!     cargo run -p bidir-spawn -- --speed 10 --no-flush   # the flush deadlock
//!     cargo run -p bidir-spawn -- --command --speed 10    # with std's Command
//!     cargo run -p bidir-spawn -- --speed 100 --show-fds  # descriptor tables
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

mod child_program;
mod group;
mod replies;
mod stops;

use child_program::{CHILD, child_program};
use group::{end_group, has_exited};
use lesson_kit::args::{Parser, UsageError, parse_command_line, usage_failure};
use lesson_kit::pace::SPEED_RANGE;
use lesson_kit::{
    Context, Failure, describe_wait, exit, exited_ok, fds, note, signal_exit,
};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{
    SigHandler, SigSet, SigmaskHow, Signal, killpg, signal, sigprocmask,
};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{
    ForkResult, Pid, dup2_stdin, dup2_stdout, execvp, fork, getpid, getppid, pipe2,
    setpgid, write,
};
use replies::{Replies, Reply};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use stops::StopSignals;

const PROGRAM: &str = "bidir-spawn";

/// pipes_test_child.py waits 3 s before reading a line and 3 s before replying.
const CHILD_WAIT_SECS: f64 = 3.0;

/// What `--reply-timeout` accepts: a millisecond to a day.
const REPLY_TIMEOUT_RANGE: std::ops::RangeInclusive<f64> = 0.001..=86_400.0;

struct Options {
    speed: f64,
    flush: bool,
    /// `None`: wait as long as the document's child needs, plus 2 s.
    reply_timeout: Option<f64>,
    /// Spawn with std::process::Command instead of the hand-written fork + exec.
    command: bool,
    /// Print the descriptor tables at each step (stderr), in parent and child.
    show_fds: bool,
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
                show(&options, "after Command::spawn");
                (child, to_child, replies)
            }
            Spawned::Failed(code) => return Ok(ExitCode::from(code)),
        }
    } else {
        let child = spawn(me, &argv, options.show_fds)?;
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
    show(&options, "after closing both pipes");
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
fn spawn(parent: Pid, argv: &[CString], show_fds: bool) -> Result<Pid, Failure> {
    // --show-fds: the parent's tables. (A closure that only calls: no allocation.)
    let parent_shows = |step: &str| {
        if show_fds {
            fds::show("parent", step);
        }
    };
    // Two one-way pipes make one two-way conversation. O_CLOEXEC: any copy we
    // forget is closed by exec, so the exec'd program holds only what we give it on
    // purpose.
    let (parent_in, child_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (child to parent)")?;
    let (child_in, parent_out) =
        pipe2(OFlag::O_CLOEXEC).context("pipe2 (parent to child)")?;
    parent_shows("after pipe2 twice");

    // The child may print its tables before exec only if it is the child of a
    // single-threaded process (fds::show allocates and reads /proc): counted here,
    // just before the fork. Otherwise it shows them only after exec.
    let child_may_show = show_fds && single_threaded();
    // Or the child could print it again:
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: this process is single-threaded when it forks (nothing before this
    // point starts a thread; with --show-fds, /proc/self/task has just said so, and
    // only this thread could have started another since). The child still follows
    // the strict rules for a forked child: it only makes system calls (setpgid,
    // prctl, dup2, close, sigaction, sigprocmask, write), execs and _exits, all
    // async-signal-safe except execvp's PATH search, which is fine in a
    // single-threaded process. argv was allocated before the fork. The one
    // exception, fds::show (which allocates), runs only if child_may_show: the
    // child of a single-threaded process is an ordinary single-threaded process,
    // where no other thread can have left the allocator's lock taken at the fork.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // In the child: no allocation, no `?`, no println!, no unwrap from here
            // on (but fds::show, if child_may_show: see SAFETY above).
            let child_shows = |step: &str| {
                if child_may_show {
                    fds::show("child", step);
                }
            };
            // A process group of its own: one killpg ends it and all it starts.
            let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
            // If the parent dies, the kernel kills us (prctl cannot fail for a
            // valid signal); if it died before this line, we are an orphan already:
            // go now.
            let _ = set_pdeathsig(Signal::SIGKILL);
            if getppid() != parent {
                die(b"bidir-spawn: the parent is gone\n", exit::RUNTIME);
            }
            child_shows("after fork");
            drop(parent_in); // the parent's ends are not ours
            drop(parent_out);
            child_shows("after closing the parent's ends");
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
            child_shows("after dup2 onto fd 0 and 1");
            drop(child_in); // fd 0 and fd 1 are the copies we keep
            drop(child_out);
            close_inherited_descriptors();
            child_shows("after closing the originals and what it inherited");
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
            parent_shows("after fork");
            // The child's ends: if we kept child_out, we would never see EOF from
            // the child, even after it exits.
            drop(child_in);
            drop(child_out);
            parent_shows("after closing the child's ends");
            let rewired = dup2_stdin(&parent_in)
                .context("dup2 pipe onto stdin")
                .and_then(|_| {
                    dup2_stdout(&parent_out).context("dup2 pipe onto stdout")
                });
            parent_shows("after dup2 onto fd 0 and 1");
            drop(parent_in); // fd 0 and fd 1 are now the copies we use
            drop(parent_out);
            parent_shows("after closing the originals");
            if let Err(failure) = rewired {
                end_group(child); // never leave a child behind, not even here
                return Err(failure);
            }
            Ok(child)
        }
    }
}
// ANCHOR_END: spawn

/// Whether this process runs one thread: `/proc/self/task` lists one entry per
/// thread. (Read in the parent, before fork, where it may allocate.)
fn single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// `--show-fds`: the parent's table at `step`.
fn show(options: &Options, step: &str) {
    if options.show_fds {
        fds::show("parent", step);
    }
}

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

// ANCHOR_END: finish

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
    if options.show_fds {
        args.push("--show-fds".to_owned()); // its table after exec
    }
    args.push("spam".to_owned());
    Ok((child.to_string_lossy().into_owned(), args))
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
        show_fds: false,
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
            "--show-fds" => options.show_fds = true,
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
                   [--show-fds] [-- PROGRAM [ARGS...]]

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
  --show-fds            print the descriptor tables on stderr: the parent's after
                        pipe2, fork, each close and dup2; the child's after fork,
                        its closes and dup2, and {CHILD}'s after exec
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
