//! signal2: sets an alarm, waits for it, and says when it went off, again and
//! again.
//!
//! Mirrors `signal2.py` from *Programming Python*: forever, print `Setting at
//! <ctime>`, install a SIGALRM handler, `alarm(5)`, `pause()`; the handler prints
//! `Got alarm 14 at <ctime>`.
//!
//! Usage: signal2 [--count N] [--speed X]
//!
//! Try it (signal2 is the package's default program, so `cargo run -p signals` is
//! the first command too):
//!     cargo run -p signals --bin signal2          # every 5 s, Ctrl-C to stop
//!     cargo run -p signals --bin signal2 -- --count 3 --speed 10
//!     cargo run -p signals --bin signal2 -- --count 200 --speed 1000000
//!
//! Where this differs from the original, on purpose: `alarm` + `pause` has a race
//! (if the alarm goes off before `pause` starts, `pause` waits forever; the last
//! "Try it" line, 5 microsecond alarms, hangs such a version in its first round).
//! Here SIGALRM is blocked before the alarm is set and collected with `sigwait`,
//! which cannot miss it. SIGINT, SIGTERM and SIGHUP are collected the same way and
//! end the program cleanly.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{Pacing, SPEED_RANGE};
use lesson_kit::pyfmt::ctime_now;
use lesson_kit::{Context, Failure, note, signal_exit};
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
    // Block the signals we wait for *before* anything can send them. A blocked
    // signal is not lost: it stays pending until sigwait collects it. That is what
    // removes the race of alarm-then-pause. (The process has one thread, so this
    // thread's mask is the process's.)
    let mut awaited = SigSet::empty();
    let stops = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];
    for signal in std::iter::once(Signal::SIGALRM).chain(stops) {
        awaited.add(signal);
    }
    awaited.thread_block().context("sigprocmask SIG_BLOCK")?;
    // ANCHOR_END: block

    let mut stdout = io::stdout().lock();
    for _ in pacing.messages() {
        writeln!(stdout, "Setting at {}", ctime_now()).context("write stdout")?;
        // ANCHOR: wait
        set_alarm(pacing.secs(ALARM_SECS))?;
        // sigwait returns the first pending signal of the set, waiting if there is
        // none. If the alarm went off already (a busy machine, a tiny --speed), it
        // is pending and sigwait returns at once. pause() would have slept forever.
        let signal = awaited.wait().context("sigwait")?;
        // ANCHOR_END: wait
        if signal != Signal::SIGALRM {
            note!("{PROGRAM}: stopped by {signal}");
            return Ok(signal_exit(signal as i32));
        }
        writeln!(stdout, "Got alarm {} at {}", signal as i32, ctime_now())
            .context("write stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: main

// ANCHOR: alarm
/// `alarm(seconds)`, but with a fraction: `alarm` counts whole seconds, and
/// `--speed` asks for 0.5 s and less. `setitimer(ITIMER_REAL)` with no repeat
/// interval is the same timer (on Linux, alarm is implemented with it) and sends
/// the same SIGALRM.
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
    let (slowest, fastest) = (SPEED_RANGE.start(), SPEED_RANGE.end());
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X]

Prints `Setting at <ctime>`, sets a 5-second alarm, waits for it and prints
`Got alarm 14 at <ctime>`, again and again (Programming Python's signal2.py).

Options:
  --count N    stop after N alarms (default: until SIGINT, SIGTERM or SIGHUP)
  --speed X    make the alarm X times shorter, {slowest} to {fastest}
               (default 1; 10 turns 5 s into 0.5 s)
  -h, --help   print this help

Exit status: 0 N alarms done; 1 a system call failed; 2 bad command line;
129 / 130 / 143 stopped by SIGHUP / SIGINT / SIGTERM.
"
    )
}
