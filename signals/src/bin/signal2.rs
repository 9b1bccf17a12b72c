//! signal2: sets an alarm, waits for it, and says when it went off, again and again.
//!
//! Mirrors `signal2.py` from *Programming Python*: forever, print `Setting at <ctime>`,
//! install a SIGALRM handler, `alarm(5)`, `pause()`; the handler prints
//! `Got alarm 14 at <ctime>`.
//!
//! Usage: signal2 [--count N] [--speed X]
//!
//! Try it:
//!     cargo run -p signals --bin signal2                         # every 5 s, Ctrl-C to stop
//!     cargo run -p signals --bin signal2 -- --count 3 --speed 10
//!
//! Where this differs from the original, on purpose: `alarm` + `pause` has a race (if the
//! alarm goes off before `pause` starts, `pause` waits forever). Here SIGALRM is blocked
//! before the alarm is set and collected with `sigwait`, which cannot miss it. SIGINT and
//! SIGTERM are collected the same way and end the program cleanly.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::ctime_now;
use lesson_kit::{Context, Failure, exit};
use nix::sys::signal::{SigSet, Signal};
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

const PROGRAM: &str = "signal2";

/// The original's `signal.alarm(5)`.
const ALARM_SECS: f64 = 5.0;

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let pacing = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(pacing) => pacing,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // ANCHOR: block
    // Block the signals we wait for *before* anything can send them. A blocked signal is
    // not lost: it stays pending until sigwait collects it. That is what removes the race
    // of alarm-then-pause. (The process has one thread, so this thread's mask is the
    // process's.)
    let mut awaited = SigSet::empty();
    for signal in [Signal::SIGALRM, Signal::SIGINT, Signal::SIGTERM] {
        awaited.add(signal);
    }
    awaited.thread_block().context("sigprocmask SIG_BLOCK")?;
    // ANCHOR_END: block

    let mut stdout = io::stdout().lock();
    for _ in pacing.messages() {
        writeln!(stdout, "Setting at {}", ctime_now()).context("write stdout")?;
        // ANCHOR: wait
        set_alarm(pacing.secs(ALARM_SECS))?;
        // sigwait returns the first pending signal of the set, waiting if there is none.
        // If the alarm went off already (a busy machine, a tiny --speed), it is pending and
        // sigwait returns at once. pause() would have slept forever.
        let signal = awaited.wait().context("sigwait")?;
        // ANCHOR_END: wait
        if signal != Signal::SIGALRM {
            eprintln!("{PROGRAM}: stopped by {signal}");
            return Ok(ExitCode::from(
                u8::try_from(128 + signal as i32).unwrap_or(exit::RUNTIME),
            ));
        }
        writeln!(stdout, "Got alarm {} at {}", signal as i32, ctime_now())
            .context("write stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: main

// ANCHOR: alarm
/// `alarm(seconds)`, but with a fraction: `alarm` counts whole seconds, and `--speed` asks
/// for 0.5 s and less. `setitimer(ITIMER_REAL)` with no repeat interval is the same timer
/// (on Linux, alarm is implemented with it) and sends the same SIGALRM.
fn set_alarm(after: Duration) -> Result<(), Failure> {
    // A zero it_value would cancel the timer instead of firing it at once.
    let after = after.max(Duration::from_micros(1));
    let timer = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: after.as_secs() as libc::time_t,
            tv_usec: libc::suseconds_t::from(after.subsec_micros()),
        },
    };
    // SAFETY: `timer` is a valid itimerval for the duration of the call, and a null
    // old-value pointer is allowed (we do not want the previous setting).
    let result =
        unsafe { libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error()).context("setitimer ITIMER_REAL")
    }
}
// ANCHOR_END: alarm

fn parse_options() -> Result<Option<Pacing>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut pacing = Pacing::default();
    while let Some(arg) = parser.next()? {
        if pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(pacing))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X]

Prints `Setting at <ctime>`, sets a 5-second alarm, waits for it and prints
`Got alarm 14 at <ctime>`, again and again (Programming Python's signal2.py).

Options:
{PACING_HELP}
  -h, --help   print this help

Exit status: 0 N alarms done; 1 a system call failed; 2 bad command line;
130 / 143 stopped by SIGINT / SIGTERM.
"
    )
}
