//! sigchld-demo: reaping children as they exit, when one SIGCHLD stands for
//! several.
//!
//! Not in the documents; the signals chapter needs it. The parent forks N children
//! that all exit at the same moment (child i with status i). The kernel sends
//! SIGCHLD for each, but a signal is a flag, not a queue: while one is pending,
//! more of the same merge into it. So on every SIGCHLD the parent reaps *every*
//! child that has exited, with `waitpid(WNOHANG)` in a loop, and prints how many
//! notifications it took.
//!
//! Usage: sigchld-demo [--children N] [--busy MS] [--show-fds]
//!
//! Try it:
//!     cargo run -q -p signals --bin sigchld-demo
//!     cargo run -q -p signals --bin sigchld-demo -- --children 10 --busy 0
//!     cargo run -q -p signals --bin sigchld-demo -- --children 2 --show-fds
//!
//! Every way out reaps every child: the end, SIGINT/SIGTERM/SIGHUP (the children
//! are killed first; a second signal right after the first does not cut that
//! short), a stdout that fails (`| head -n 1`), and a `fork` that fails half-way
//! (`ulimit -u`).

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{
    Context, Failure, describe_wait, fds, note, signal_exit, signal_name,
};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROGRAM: &str = "sigchld-demo";

/// The first stop signal (SIGINT, SIGTERM, SIGHUP) that arrived, 0 for none: a busy
/// parent looks at it, and it decides the exit status even if another one follows.
static FIRST_STOP: AtomicUsize = AtomicUsize::new(0);

/// When the children exit, after the start.
const CHILDREN_EXIT_AFTER: Duration = Duration::from_millis(100);

/// What `--children` and `--busy` accept.
const CHILDREN_RANGE: std::ops::RangeInclusive<u16> = 1..=255;
const BUSY_RANGE: std::ops::RangeInclusive<u64> = 0..=60_000;

struct Options {
    children: u8,
    /// How long the parent is busy elsewhere before it looks at its signals.
    busy: Duration,
    /// Print the descriptor tables (stderr): the parent's once its handlers are
    /// installed, each child's before it exits.
    show_fds: bool,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // Register before forking, so no child can exit before we are listening.
    // Signals::new starts no thread: the process stays single-threaded for the
    // forks.
    let mut signals = Signals::new([SIGCHLD, SIGINT, SIGTERM, SIGHUP])
        .context("register handlers")?;
    // The stop signals also note which came first, so the busy period below can end
    // early, and a second signal cannot change the exit status.
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let first = move || {
            let _ = FIRST_STOP.compare_exchange(
                0,
                signal as usize,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        };
        // SAFETY: the action runs in signal context and only does a
        // compare-and-swap on an atomic integer: lock-free, no allocation,
        // async-signal-safe.
        unsafe { signal_hook::low_level::register(signal, first) }
            .context(format!("install handler for {}", signal_name(signal)))?;
    }
    if options.show_fds {
        // Signals::new made a socket pair: the handler writes a byte into one end,
        // and `signals` reads the other.
        fds::show("parent", "after installing the handlers");
    }

    // ANCHOR: fork
    let exit_at = Instant::now() + CHILDREN_EXIT_AFTER;
    let mut out = io::stdout().lock();
    // Or what sits in stdout's buffer would be copied into each child.
    out.flush().context("flush stdout")?;
    let mut children = Vec::new(); // the children not reaped yet
    for i in 0..options.children {
        // SAFETY: single-threaded here (nothing above starts a thread), so the
        // child is a full copy that may sleep; it then ends with _exit, never
        // returning into main.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                sleep(exit_at.saturating_duration_since(Instant::now()));
                if options.show_fds {
                    // Shown just before exiting, all at the same moment, after the
                    // parent's line: nothing has changed since the fork.
                    let step = format!("after fork, just before _exit({i})");
                    fds::show("child", &step);
                }
                // SAFETY: _exit ends the process at once; it is async-signal-safe.
                unsafe { libc::_exit(i32::from(i)) }
            }
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(errno) => {
                // A process limit (`ulimit -u`) half-way: do not leave the others
                // behind.
                end_children(&mut children);
                let made = i;
                note!(
                    "{PROGRAM}: fork failed after {made} children; they were reaped"
                );
                return Err(errno).context("fork");
            }
        }
    }
    // ANCHOR_END: fork

    // Whatever goes wrong from here (stdout closed by `| head -n 1`, a failed
    // waitpid), the children are ended and reaped before we leave.
    let result = watch(&mut out, &mut signals, &mut children, options.busy);
    if result.is_err() {
        end_children(&mut children);
    }
    result
}
// ANCHOR_END: main

// ANCHOR: watch
fn watch(
    out: &mut impl Write,
    signals: &mut Signals,
    children: &mut Vec<Pid>,
    busy: Duration,
) -> Result<ExitCode, Failure> {
    let pids: Vec<String> = children.iter().map(Pid::to_string).collect();
    let (me, n) = (getpid(), children.len());
    writeln!(out, "Parent {me} forked {n} children: {}", pids.join(" "))
        .context("write stdout")?;

    // Busy elsewhere for a while, as real programs are: the children exit
    // meanwhile, and their SIGCHLDs pile up into one pending signal. (Busy, but
    // still looking at the stop flag every 20 ms; the signal itself waits in
    // `signals` for the loop.)
    let busy_until = Instant::now() + busy;
    while Instant::now() < busy_until && stop_signal().is_none() {
        let left = busy_until.saturating_duration_since(Instant::now());
        sleep(left.min(Duration::from_millis(20)));
    }

    // ANCHOR: reap
    let mut notifications = 0;
    let mut reaped = 0;
    for signal in signals.forever() {
        if signal != SIGCHLD {
            end_children(children);
            let first = stop_signal().unwrap_or(signal);
            let name = signal_name(first);
            note!("{PROGRAM}: stopped by {name}; children killed and reaped");
            return Ok(signal_exit(first));
        }
        notifications += 1;
        // One SIGCHLD may stand for several exited children: reap until none is
        // left.
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) => status,
                Err(errno) => return Err(errno).context("waitpid"),
            };
            let Some(pid) = status.pid() else { continue };
            children.retain(|child| *child != pid);
            let how = describe_wait(status);
            writeln!(out, "SIGCHLD #{notifications}: reaped child {pid} ({how})")
                .context("write stdout")?;
            reaped += 1;
        }
        if children.is_empty() {
            break;
        }
    }
    let plural = if notifications == 1 { "" } else { "s" };
    writeln!(
        out,
        "{reaped} children reaped after {notifications} \
         SIGCHLD notification{plural}"
    )
    .context("write stdout")?;
    // ANCHOR_END: reap
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: watch

/// The first stop signal received, if any.
fn stop_signal() -> Option<i32> {
    match FIRST_STOP.load(Ordering::SeqCst) {
        0 => None,
        signal => i32::try_from(signal).ok(),
    }
}

// ANCHOR: end_children
/// Kills the children not reaped yet and reaps them. Only those: the pid of a child
/// already reaped may belong to a stranger by now. SIGKILL cannot be caught or
/// ignored, and it ends a stopped child too, so each `waitpid` returns promptly.
fn end_children(children: &mut Vec<Pid>) {
    for child in children.drain(..) {
        // It may have exited already (a zombie): then kill does nothing.
        let _ = kill(child, Signal::SIGKILL);
        while let Err(Errno::EINTR) = waitpid(child, None) {}
    }
}
// ANCHOR_END: end_children

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        children: 5,
        busy: Duration::from_millis(300),
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--children" => {
                let n = parser.value_in(&arg, CHILDREN_RANGE)?;
                options.children = u8::try_from(n).unwrap_or(u8::MAX); // n <= 255
            }
            "--busy" => {
                let ms = parser.value_in(&arg, BUSY_RANGE)?;
                options.busy = Duration::from_millis(ms);
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
Usage: {PROGRAM} [--children N] [--busy MS] [--show-fds]

Forks N children that all exit at the same moment, child i with status i, and
reaps them on SIGCHLD, printing each and how many notifications it took.

Options:
  --children N  how many children, 1 to 255 (default 5)
  --busy MS     how long the parent is busy before it handles signals, 0 to 60000
                (default 300; 0 to handle each SIGCHLD as soon as it comes)
  --show-fds    print the descriptor tables (on stderr): the parent's after its
                handlers are installed, each child's just before it exits
  -h, --help    print this help

Exit status: 0 all children reaped; 1 a system call failed (the children are killed
and reaped first); 2 bad command line; 129 / 130 / 143 stopped by SIGHUP / SIGINT /
SIGTERM.
"
    )
}
