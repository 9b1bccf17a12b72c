//! pipe-thread: one pipe between two threads of the same process.
//!
//! Mirrors `pipe_thread.py` from the documents: no fork at all. A writer thread runs pipe_1's
//! child loop (`Spam 0` .. `Spam 4` with the 0, 1, 2, 3, 4 s pauses and the 10 ms gap) and
//! the main thread reads at most 32 bytes at a time, printing
//! `Parent <pid> got [b'Spam 0'] at <time>`, with one pid, since there is one process.
//!
//! Usage: pipe-thread [--count N] [--speed X] [--no-gap] [--writer-panics-after N]
//!
//! Try it:
//!     cargo run -p pipe-thread                           # the document's run; Ctrl-C stops it
//!     cargo run -p pipe-thread -- --count 5 --speed 20
//!     cargo run -p pipe-thread -- --speed 20 --writer-panics-after 3   # a failing writer
//!
//! Where this differs from the document, on purpose:
//! - one Ctrl-C (or SIGTERM) ends the program within a few milliseconds, cleanly; a second
//!   one ends it at once. The original ignores the first Ctrl-C: the exception stops the
//!   main thread, but the writer thread keeps the process alive;
//! - a writer thread that fails (an error or a panic) is reported by the main thread,
//!   which sees EOF because the failed thread's write end was dropped. In the original, a
//!   dead writer thread leaves its descriptor open and the reader blocks forever.
//!
//! The pipe is `std::io::pipe()` (Rust 1.87+): portable (Unix and Windows), close-on-exec,
//! and its two ends are ordinary `Read`/`Write` values.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::{bytes_repr, time_str};
use lesson_kit::{Context, Failure, exit};
use nix::sys::signal::Signal;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use std::io::{self, ErrorKind, PipeReader, PipeWriter, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

const PROGRAM: &str = "pipe-thread";

/// The document's `time.sleep(0.01)` before each write; not shortened by `--speed`, since it
/// has to outlast the reader's wake-up, whatever the pace.
const GAP: Duration = Duration::from_millis(10);

/// The document's `os.read(fd, 32)`.
const READ_SIZE: usize = 32;

/// How often a pausing writer looks at the stop flag: the bound on how late it notices.
const STOP_CHECK: Duration = Duration::from_millis(20);

struct Options {
    pacing: Pacing,
    gap: bool,
    /// A deliberately broken variant: the writer panics after this many messages.
    panic_after: Option<u64>,
}

/// Set by a signal handler (or by `main` when it stops reading): the writer stops at its
/// next pause. Statics, because a handler can only reach what lives forever.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);
/// The signal that asked for the stop, or 0.
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // ANCHOR: signals
    // Ctrl-C and SIGTERM. A handler may only do async-signal-safe things, so ours just set
    // atomics; the writer thread looks at them at every pause. signal-hook runs the actions
    // in the order registered, so the first one exits at once if a stop was already
    // requested: a second Ctrl-C always ends the program.
    for signal in [SIGINT, SIGTERM] {
        let what = format!("install handler for signal {signal}");
        flag::register_conditional_shutdown(signal, 128 + signal, &STOP_REQUESTED)
            .context(&what)?;
        flag::register_usize(signal, &STOP_SIGNAL, signal as usize)
            .context(&what)?;
        flag::register(signal, &STOP_REQUESTED).context(&what)?;
    }
    // ANCHOR_END: signals

    // ANCHOR: pipe
    // std's pipe: two plain Read/Write values, close-on-exec, portable beyond Unix.
    let (reader, writer) = io::pipe().context("pipe")?;
    // ANCHOR_END: pipe

    // ANCHOR: spawn
    // The writer thread owns the write end. When the thread ends, however it ends (done,
    // error, panic), `writer` is dropped, and that closes the only write end: the main
    // thread's read then returns EOF.
    let writer_thread = thread::Builder::new()
        .name("writer".to_owned())
        .spawn(move || write_spam(writer, &options))
        .context("spawn writer thread")?;
    // ANCHOR_END: spawn

    let reading = read_chunks(reader); // returns at EOF; drops (closes) the read end
    if reading.is_err() {
        STOP_REQUESTED.store(true, Ordering::SeqCst); // nobody reads now: ask the writer to stop
    }

    // ANCHOR: join
    // join() hands back what the thread returned, or the payload of its panic.
    let code = match writer_thread.join() {
        Ok(Ok(sent)) => match STOP_SIGNAL.load(Ordering::SeqCst) {
            0 => exit::OK,
            signal => {
                let name = Signal::try_from(signal as i32)
                    .map_or("a signal", Signal::as_str);
                eprintln!("{PROGRAM}: stopped by {name} after {sent} messages");
                u8::try_from(128 + signal).unwrap_or(exit::RUNTIME)
            }
        },
        Ok(Err(failure)) => {
            eprintln!("{PROGRAM}: writer thread: {failure}");
            exit::RUNTIME
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            eprintln!("{PROGRAM}: writer thread panicked: {message}");
            exit::RUNTIME
        }
    };
    // ANCHOR_END: join
    reading?;
    Ok(ExitCode::from(code))
}
// ANCHOR_END: main

// ANCHOR: writer
/// The writer thread: pipe_1's child loop. Returns how many messages it sent.
fn write_spam(mut writer: PipeWriter, options: &Options) -> Result<u64, Failure> {
    let mut sent = 0;
    for beat in options.pacing.spam_beats() {
        let pause = if options.gap {
            GAP + beat.pause
        } else {
            beat.pause
        };
        if !pause_unless_stopped(pause) {
            break; // a signal (or main) asked us to stop
        }
        if options.panic_after == Some(sent) {
            // DELIBERATELY BROKEN (--writer-panics-after): shows that a dying writer thread
            // closes its end, so the reader gets EOF and can report, instead of hanging.
            panic!(
                "deliberate panic after {sent} messages (--writer-panics-after)"
            );
        }
        // One write_all of 6 bytes: a single write(2), atomic since it is under PIPE_BUF.
        let message = format!("Spam {}", beat.n);
        writer.write_all(message.as_bytes()).context("write pipe")?;
        sent += 1;
    }
    Ok(sent)
} // `writer` is dropped here: the reader sees EOF
// ANCHOR_END: writer

/// Sleeps for `pause`, looking at the stop flag every 20 ms. Returns false if asked to stop.
fn pause_unless_stopped(pause: Duration) -> bool {
    let end = Instant::now() + pause;
    loop {
        if STOP_REQUESTED.load(Ordering::SeqCst) {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        sleep(left.min(STOP_CHECK));
    }
}

// ANCHOR: reader
/// The main thread: read at most 32 bytes, print them as Python's bytes repr, until EOF.
fn read_chunks(mut reader: PipeReader) -> Result<(), Failure> {
    let pid = std::process::id(); // one process, so one pid for both threads
    let mut stdout = io::stdout().lock();
    let mut buffer = [0u8; READ_SIZE];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()), // EOF: the writer thread has ended and dropped its end
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("read pipe"),
        };
        let received = bytes_repr(&buffer[..n]);
        writeln!(stdout, "Parent {pid} got [{received}] at {}", time_str())
            .context("write stdout")?;
    }
}
// ANCHOR_END: reader

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        gap: true,
        panic_after: None,
    };
    while let Some(arg) = parser.next()? {
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--no-gap" => options.gap = false,
            "--writer-panics-after" => {
                options.panic_after = Some(parser.value(&arg)?)
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--no-gap] [--writer-panics-after N]

A writer thread writes `Spam 0`..`Spam 4` into a pipe, pausing 0, 1, 2, 3, 4 s; the main
thread reads up to 32 bytes at a time and prints what each read returned
(the documents' pipe_thread.py). One process, so one pid.

Options:
{PACING_HELP}
  --no-gap                 drop the 10 ms pause before each write (reads may merge)
  --writer-panics-after N  DELIBERATELY BROKEN: the writer thread panics after N
                           messages; watch the main thread report it
  -h, --help               print this help

Ctrl-C or SIGTERM stops the program cleanly within milliseconds; a second one ends it
at once.
Output: `Parent <pid> got [b'Spam 0'] at <time>` on stdout; notes on stderr.
Exit status: 0 all messages sent; 1 a system call failed or the writer thread failed
or panicked; 2 bad command line; 130 / 143 stopped by SIGINT / SIGTERM (128 + signal).
"
    )
}
