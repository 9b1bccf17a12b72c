//! anon-pipe: a forked child sends messages to its parent through an anonymous pipe.
//!
//! Mirrors `pipe_1.py` from the documents: `pipe()`, then `fork()`; the child writes
//! `Spam 0` .. `Spam 4` with growing pauses (0, 1, 2, 3, 4 s, then again), the parent reads at
//! most 32 bytes at a time and prints each read as `Parent <pid> got [b'Spam 0'] at <time>`.
//!
//! Usage: anon-pipe [--count N] [--speed X] [--no-gap]
//!
//! Try it:
//!     cargo run -p anon-pipe                          # the document's run: Ctrl-C to stop
//!     cargo run -p anon-pipe -- --count 5 --speed 20  # five messages in a fraction of a second
//!     cargo run -p anon-pipe -- --count 10 --no-gap   # watch `b'Spam 4Spam 0'`: one read, two writes
//!
//! Where this differs from the document, on purpose:
//! - each process closes the pipe end it does not use, so a child whose parent dies gets a
//!   broken pipe and stops, and a parent whose child dies reads EOF, reaps it and says how it
//!   ended (the original blocks or lives on forever);
//! - `--count` makes the child stop after N messages, and the parent stop at EOF.
//!
//! Caveat: the 10 ms gap before each write only makes merged reads unlikely. A pipe is a
//! byte stream; pipe_2 (the `fdopen-lines` lesson) adds real framing.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::pyfmt::{bytes_repr, time_str};
use lesson_kit::{Context, Failure, describe_wait, exit, exited_ok};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, getpid, pipe2, read, write};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

const PROGRAM: &str = "anon-pipe";

/// The document's `time.sleep(0.01)` before each write. It is not shortened by `--speed`:
/// its job is to outlast the parent's wake-up after the previous write, which takes just as
/// long however fast the demonstration runs.
const GAP: Duration = Duration::from_millis(10);

/// The document's `os.read(fd, 32)`: a read returns at most this many bytes.
const READ_SIZE: usize = 32;

struct Options {
    pacing: Pacing,
    gap: bool,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };

    // ANCHOR: pipe
    // Two file descriptors: what is written to `write_end` comes out of `read_end`.
    // O_CLOEXEC keeps them out of any program exec'd later; a habit, since nothing here
    // execs, that prevents the "EOF never comes" deadlock (see the hazards chapter).
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // ANCHOR_END: pipe

    // ANCHOR: fork
    // Whatever sits in our stdout buffer at fork time would be copied into the child and
    // printed twice.
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: in the child of a multi-threaded process only async-signal-safe calls are
    // sound, because other threads may have held locks (the allocator's, stdout's) at the
    // moment of the fork. This process has a single thread, nothing above starts one, so the
    // child is a complete copy and may run ordinary Rust code.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(read_end); // the child only writes: close its copy of the read end
            child(write_end, &options) // never returns
        }
        ForkResult::Parent { child } => child,
    };
    // ANCHOR_END: fork

    // ANCHOR: close
    // The parent only reads. Its copy of the write end must go: `read` returns 0 (EOF) only
    // when every write end in every process is closed, and this one would never be.
    drop(write_end);
    // ANCHOR_END: close
    eprintln!(
        "Parent {} forked child {child} (stop it with: kill {child})",
        getpid()
    );

    let reading = parent(&read_end);

    // ANCHOR: wait
    // Done reading, normally because the child closed its end (EOF). If we stopped for an
    // error instead, the child may be asleep before its next write: ask it to stop now rather
    // than wait for its broken pipe.
    if reading.is_err() {
        let _ = kill(child, Signal::SIGTERM); // it may already be gone: nothing to report
    }
    drop(read_end); // from now on a write by the child fails with EPIPE
    // Reap the child: until we do, it stays a zombie in the process table.
    let status = waitpid(child, None).context(format!("waitpid child {child}"))?;
    eprintln!(
        "Parent {}: child {child} {}",
        getpid(),
        describe_wait(status)
    );
    // ANCHOR_END: wait
    reading?;
    Ok(ExitCode::from(if exited_ok(status) {
        exit::OK
    } else {
        exit::RUNTIME
    }))
}
// ANCHOR_END: main

// ANCHOR: child
/// The child's whole life: write `Spam <n>` on the document's cadence, then exit. It never
/// returns to `main`, so nothing after the fork in `main` runs twice.
fn child(write_end: OwnedFd, options: &Options) -> ! {
    for beat in options.pacing.spam_beats() {
        if options.gap {
            sleep(GAP); // keeps two writes apart, so one read rarely gets both
        }
        sleep(beat.pause); // the document's simulated work: 0, 1, 2, 3, 4 s, and again
        let message = format!("Spam {}", beat.n); // no newline: pipe_1 has no framing at all
        match write(&write_end, message.as_bytes()) {
            // A write of at most PIPE_BUF (4096) bytes to a pipe is all-or-nothing.
            Ok(_) => {}
            // The parent closed its read end (or died): with SIGPIPE ignored, as Rust sets it
            // up before main, the write fails with EPIPE instead of killing us silently.
            Err(Errno::EPIPE) => {
                eprintln!(
                    "Child {}: write pipe: EPIPE, the parent is gone; stopping",
                    getpid()
                );
                exit_child(exit::RUNTIME);
            }
            Err(err) => {
                eprintln!("Child {}: write pipe: {err}", getpid());
                exit_child(exit::RUNTIME);
            }
        }
    }
    drop(write_end); // the last write end: the parent's next read returns 0 (EOF)
    exit_child(exit::OK)
}
// ANCHOR_END: child

/// Ends the child without returning through `main` (which would run the parent's code) and
/// without running exit-time cleanup that belongs to the parent.
fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the calling process at once; it touches no memory of ours and is
    // async-signal-safe, so it is sound anywhere, including in a forked child.
    unsafe { libc::_exit(i32::from(code)) }
}

// ANCHOR: parent
/// The parent's loop: one `read` of at most 32 bytes, one line of output, until EOF.
fn parent(read_end: &OwnedFd) -> Result<(), Failure> {
    let me = getpid();
    let mut stdout = io::stdout().lock();
    let mut buffer = [0u8; READ_SIZE];
    loop {
        // Blocks until the child writes. Returns what is in the pipe, up to 32 bytes: one
        // message, or two if the child wrote twice before we got here.
        let n = read(read_end, &mut buffer).context("read pipe")?;
        if n == 0 {
            return Ok(()); // EOF: every write end is closed, so the child is done
        }
        let received = bytes_repr(&buffer[..n]);
        writeln!(stdout, "Parent {me} got [{received}] at {}", time_str())
            .context("write stdout")?;
    }
}
// ANCHOR_END: parent

// ANCHOR: options
fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        gap: true,
    };
    while let Some(arg) = parser.next()? {
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--no-gap" => options.gap = false,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}
// ANCHOR_END: options

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--no-gap]

A forked child writes `Spam 0`..`Spam 4` into an anonymous pipe, pausing 0, 1, 2, 3, 4 s;
the parent reads up to 32 bytes at a time and prints what each read returned
(the documents' pipe_1.py).

Options:
{PACING_HELP}
  --no-gap     drop the 10 ms pause before each write, so `Spam 4` and `Spam 0`
               usually arrive in one read: b'Spam 4Spam 0'
  -h, --help   print this help

Output: `Parent <pid> got [b'Spam 0'] at <time>` on stdout; notes on stderr.
Exit status: 0 the child sent everything and exited 0; 1 a system call failed or the
child ended badly (killed, non-zero status); 2 bad command line.
"
    )
}
