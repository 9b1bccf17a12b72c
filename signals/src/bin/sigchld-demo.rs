//! sigchld-demo: reaping children as they exit, when one SIGCHLD stands for several.
//!
//! Not in the documents; the signals chapter needs it. The parent forks N children that
//! all exit at the same moment (child i with status i). The kernel sends SIGCHLD for each,
//! but a signal is a flag, not a queue: while one is pending, more of the same merge into
//! it. So on every SIGCHLD the parent reaps *every* child that has exited, with
//! `waitpid(WNOHANG)` in a loop, and prints how many notifications it took.
//!
//! Usage: sigchld-demo [--children N] [--busy MS]
//!
//! Try it:
//!     cargo run -q -p signals --bin sigchld-demo
//!     cargo run -q -p signals --bin sigchld-demo -- --children 10 --busy 0

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, describe_wait, exit};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid};
use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const PROGRAM: &str = "sigchld-demo";

/// Set by Ctrl-C or SIGTERM, so that a busy parent notices them.
static STOP: AtomicBool = AtomicBool::new(false);

/// When the children exit, after the start.
const CHILDREN_EXIT_AFTER: Duration = Duration::from_millis(100);

struct Options {
    children: u8,
    /// How long the parent is busy elsewhere before it looks at its signals.
    busy: Duration,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // Register before forking, so no child can exit before we are listening. Signals::new
    // starts no thread: the process stays single-threaded for the forks below.
    let mut signals =
        Signals::new([SIGCHLD, SIGINT, SIGTERM]).context("register handlers")?;
    // Ctrl-C and SIGTERM also set a flag, so the busy period below can end early; a second
    // one exits at once.
    for signal in [SIGINT, SIGTERM] {
        let what = format!("install handler for signal {signal}");
        flag::register_conditional_shutdown(signal, 128 + signal, &STOP)
            .context(&what)?;
        flag::register(signal, &STOP).context(&what)?;
    }

    // ANCHOR: fork
    let exit_at = Instant::now() + CHILDREN_EXIT_AFTER;
    io::stdout().flush().context("flush stdout")?;
    let mut children = Vec::new();
    for i in 0..options.children {
        // SAFETY: single-threaded here (nothing above starts a thread), so the child is a
        // full copy that may sleep; it then ends with _exit, never returning into main.
        match unsafe { fork() }.context("fork")? {
            ForkResult::Child => {
                sleep(exit_at.saturating_duration_since(Instant::now()));
                // SAFETY: _exit ends the process at once; it is async-signal-safe.
                unsafe { libc::_exit(i32::from(i)) }
            }
            ForkResult::Parent { child } => children.push(child),
        }
    }
    // ANCHOR_END: fork
    let pids: Vec<String> = children.iter().map(Pid::to_string).collect();
    println!(
        "Parent {} forked {} children: {}",
        getpid(),
        children.len(),
        pids.join(" ")
    );

    // Busy elsewhere for a while, as real programs are: the children exit meanwhile, and
    // their SIGCHLDs pile up into one pending signal. (Busy, but still looking at the stop
    // flag every 20 ms; the signal itself waits in `signals` for the loop below.)
    let busy_until = Instant::now() + options.busy;
    while Instant::now() < busy_until && !STOP.load(Ordering::SeqCst) {
        sleep(
            busy_until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(20)),
        );
    }

    // ANCHOR: reap
    let mut notifications = 0;
    let mut reaped = 0;
    for signal in signals.forever() {
        if signal != SIGCHLD {
            return stop(signal, &children);
        }
        notifications += 1;
        // One SIGCHLD may stand for several exited children: reap until none is left.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(status) => {
                    let pid = status
                        .pid()
                        .map_or_else(|| "?".to_owned(), |pid| pid.to_string());
                    println!(
                        "SIGCHLD #{notifications}: reaped child {pid} ({})",
                        describe_wait(status)
                    );
                    reaped += 1;
                }
                Err(errno) => return Err(errno).context("waitpid"),
            }
        }
        if reaped == children.len() {
            break;
        }
    }
    let plural = if notifications == 1 { "" } else { "s" };
    println!(
        "{reaped} children reaped after {notifications} SIGCHLD notification{plural}"
    );
    // ANCHOR_END: reap
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: main

/// Ctrl-C or SIGTERM: end the children, reap them, leave.
fn stop(signal: i32, children: &[Pid]) -> Result<ExitCode, Failure> {
    for child in children {
        let _ = kill(*child, Signal::SIGKILL); // some may be reaped already
    }
    while waitpid(None, None).is_ok() {} // until ECHILD: nobody left to reap
    let name = Signal::try_from(signal).map_or("a signal", Signal::as_str);
    eprintln!("{PROGRAM}: stopped by {name}; children killed and reaped");
    Ok(ExitCode::from(
        u8::try_from(128 + signal).unwrap_or(exit::RUNTIME),
    ))
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        children: 5,
        busy: Duration::from_millis(300),
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--children" => {
                options.children = parser.value(&arg)?;
                if options.children == 0 {
                    return Err(UsageError(
                        "--children must be at least 1".to_owned(),
                    ));
                }
            }
            "--busy" => options.busy = Duration::from_millis(parser.value(&arg)?),
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--children N] [--busy MS]

Forks N children (default 5) that all exit at the same moment, child i with status i,
and reaps them on SIGCHLD, printing each and how many notifications it took.

Options:
  --children N  how many children, 1 to 255
  --busy MS     how long the parent is busy before it handles signals (default 300;
                0 to handle each SIGCHLD as soon as it comes)
  -h, --help    print this help

Exit status: 0 all children reaped; 1 a system call failed; 2 bad command line;
130 / 143 stopped by SIGINT / SIGTERM.
"
    )
}
