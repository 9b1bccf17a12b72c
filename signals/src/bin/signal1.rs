//! signal1: prints a line each time a chosen signal arrives.
//!
//! Mirrors `signal1.py` from *Programming Python* (the book behind the documents):
//! install a handler for the signal named on the command line, then wait forever;
//! the handler prints `Got signal <n> at <ctime>`. Send the signal from another
//! terminal with `kill`.
//!
//! Usage: signal1 SIGNAL [--count N] [--show-fds]
//!
//! Try it, in two terminals (signal1 also prints its pid and the kill commands):
//!     cargo run -p signals --bin signal1 -- USR1
//!     kill -USR1 $(pgrep -n -x signal1)
//!     cargo run -p signals --bin signal1 -- USR1 --show-fds   # the self-pipe
//!
//! Where this differs from the original, on purpose: the printing happens in
//! ordinary code, not in the handler (signal-hook's iterator); SIGINT, SIGTERM and
//! SIGHUP end it cleanly (unless one of them is the signal being watched); signals
//! that cannot or must not be caught are refused with a clear message; a closed
//! stdout is reported, not a panic.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pyfmt::ctime_now;
use lesson_kit::{Context, Failure, fds, note, signal_exit, signal_name};
use nix::sys::signal::Signal;
use nix::unistd::getpid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io::{self, Write};
use std::process::ExitCode;
use std::str::FromStr;

const PROGRAM: &str = "signal1";

/// What `--count N` accepts.
const COUNT_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000_000;

struct Options {
    signal: Signal,
    count: Option<u64>,
    /// Print the descriptor table (stderr) once the handlers are installed.
    show_fds: bool,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    let watched = options.signal as i32;

    // ANCHOR: register
    // signal-hook installs one small handler per signal. The handler does only what
    // is safe in a handler: it notes the signal and writes a byte into a pipe of
    // its own (the "self-pipe"). Our code runs in the loop below, in the main
    // thread, where printing is fine. SIGINT, SIGTERM and SIGHUP are watched too,
    // so they end the loop cleanly.
    let stops: Vec<i32> = [SIGINT, SIGTERM, SIGHUP]
        .into_iter()
        .filter(|s| *s != watched)
        .collect();
    let mut signals =
        Signals::new(std::iter::once(watched).chain(stops.iter().copied()))
            .context(format!("register a handler for {}", options.signal))?;
    // ANCHOR_END: register
    if options.show_fds {
        // The self-pipe is a socket pair: the handler writes into one end.
        fds::show(PROGRAM, "after Signals::new");
    }

    let me = getpid();
    let stop_with = stops
        .iter()
        .map(|s| format!("kill -{s} {me}"))
        .collect::<Vec<_>>();
    let name = options.signal;
    note!(
        "{PROGRAM}: pid {me}, waiting for {name} ({watched}). \
         From another terminal: kill -{watched} {me}"
    );
    note!("{PROGRAM}: to stop it: {}", stop_with.join(" or "));

    // ANCHOR: loop
    // forever() blocks until a signal has arrived, then yields its number. Several
    // deliveries of one signal before we look are merged into one: a signal is a
    // flag, not a message queue.
    let mut stdout = io::stdout().lock();
    let mut got = 0;
    for signal in signals.forever() {
        if signal == watched {
            writeln!(stdout, "Got signal {signal} at {}", ctime_now())
                .context("write stdout")?;
            got += 1;
            if options.count.is_some_and(|count| got >= count) {
                return Ok(ExitCode::SUCCESS);
            }
        } else {
            let name = signal_name(signal);
            note!("{PROGRAM}: stopped by {name} after {got} signals");
            return Ok(signal_exit(signal));
        }
    }
    // ANCHOR_END: loop
    Ok(ExitCode::SUCCESS) // forever() ends only if the iterator is closed
}
// ANCHOR_END: main

// ANCHOR: parse_signal
/// `10`, `USR1`, `SIGUSR1` or `sigusr1`, refused if it cannot or must not be
/// caught.
fn parse_signal(text: &str) -> Result<Signal, UsageError> {
    let signal = match text.parse::<i32>() {
        Ok(0) => {
            return Err(UsageError(
                "0 is not a signal (`kill -0` only checks that a process exists)"
                    .to_owned(),
            ));
        }
        Ok(number) => Signal::try_from(number).map_err(|_| {
            UsageError(format!(
                "there is no signal {number} among the standard signals 1-31 \
                 (`kill -l` lists them)"
            ))
        })?,
        Err(_) => {
            let upper = text.to_ascii_uppercase();
            let name = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            Signal::from_str(&name).map_err(|_| {
                UsageError(format!(
                    "unknown signal {text:?} (`kill -l` lists them)"
                ))
            })?
        }
    };
    match signal {
        Signal::SIGKILL | Signal::SIGSTOP => Err(UsageError(format!(
            "{signal} ({}) cannot be caught, blocked or ignored: \
             the kernel always applies it",
            signal as i32
        ))),
        Signal::SIGSEGV | Signal::SIGILL | Signal::SIGFPE | Signal::SIGBUS => {
            Err(UsageError(format!(
                "{signal} ({}) reports a fault in the process itself; \
                 signal-hook refuses it, since a handler that returns would run \
                 the faulting instruction again",
                signal as i32
            )))
        }
        _ => Ok(signal),
    }
}
// ANCHOR_END: parse_signal

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut signal = None;
    let mut count = None;
    let mut show_fds = false;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--count" => count = Some(parser.value_in(&arg, COUNT_RANGE)?),
            "--show-fds" => show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ if signal.is_none() && !arg.starts_with("--") => {
                signal = Some(parse_signal(&arg)?)
            }
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    let signal = signal
        .ok_or_else(|| UsageError("which signal? e.g. USR1 or 10".to_owned()))?;
    Ok(Some(Options {
        signal,
        count,
        show_fds,
    }))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} SIGNAL [--count N] [--show-fds]

Waits for SIGNAL (a number such as 10, or a name such as USR1 or SIGUSR1) and prints
`Got signal <n> at <ctime>` each time it arrives (Programming Python's signal1.py).
Send it from another terminal with `kill -<n> <pid>`; the pid is printed on stderr.

Options:
  --count N    stop after N signals, 1 to 1000000000 (default: until SIGINT,
               SIGTERM or SIGHUP)
  --show-fds   print the descriptor table (on stderr) once the handlers are
               installed: the self-pipe they write to
  -h, --help   print this help

SIGKILL and SIGSTOP cannot be caught; SIGSEGV, SIGILL, SIGFPE and SIGBUS are
refused.
Exit status: 0 N signals received; 1 a system call failed; 2 bad command line;
129 / 130 / 143 stopped by SIGHUP / SIGINT / SIGTERM.
"
    )
}
