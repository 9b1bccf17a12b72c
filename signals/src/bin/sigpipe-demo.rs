//! sigpipe-demo: what a writer sees when nobody is left to read.
//!
//! Not in the documents; the signals chapter needs it. The program makes a pipe,
//! closes the read end, and writes. By default, as in every Rust program, SIGPIPE
//! is ignored, so the write fails with EPIPE and the program reports it. With
//! `--default` it first restores SIGPIPE's default action: the kernel then kills it
//! on the write, and a shell shows exit status 141 (128 + 13).
//!
//! Usage: sigpipe-demo [--default] [--show-fds]
//!
//! Try it:
//!     cargo run -q -p signals --bin sigpipe-demo; echo "status $?"
//!     cargo run -q -p signals --bin sigpipe-demo -- --default; echo "status $?"
//!     cargo run -q -p signals --bin sigpipe-demo -- --show-fds

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit, fds, note};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::unistd::{pipe2, write};
use std::process::ExitCode;

const PROGRAM: &str = "sigpipe-demo";

struct Options {
    /// Restore SIGPIPE's default action before writing.
    default_action: bool,
    /// Print the descriptor table after each step (stderr).
    show_fds: bool,
}

// ANCHOR: main
fn main() -> Result<ExitCode, Failure> {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return Ok(code), // --help printed, or a usage error reported
    };
    let show = |step: &str| {
        if options.show_fds {
            fds::show(PROGRAM, step);
        }
    };

    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    show("after pipe2");
    drop(read_end); // the only read end: from now on nobody can read this pipe
    show("after close(read end)");

    if options.default_action {
        // SAFETY: SIG_DFL installs no handler, so no code of ours will run in
        // signal context; it only tells the kernel to apply the default action
        // (terminate).
        unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
            .context("signal SIGPIPE SIG_DFL")?;
        note!(
            "{PROGRAM}: SIGPIPE restored to its default action \
             (terminate the process)"
        );
    } else {
        note!("{PROGRAM}: SIGPIPE is ignored, as Rust sets it up before main");
    }
    note!("{PROGRAM}: writing to a pipe that has no reader...");

    match write(&write_end, b"is anyone there?\n") {
        // With SIGPIPE at its default, the kernel ends the process inside this
        // write: none of the lines below runs, and the exit status says "killed by
        // SIGPIPE".
        Err(Errno::EPIPE) => {
            note!(
                "{PROGRAM}: write pipe: EPIPE (Broken pipe): \
                 the write failed, we live on"
            );
            Ok(ExitCode::from(exit::RUNTIME))
        }
        Err(errno) => Err(errno).context("write pipe"),
        Ok(n) => Err(Failure::new(
            "write pipe",
            format!("wrote {n} bytes with no reader?"),
        )),
    }
}
// ANCHOR_END: main

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        default_action: false,
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--default" => options.default_action = true,
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
Usage: {PROGRAM} [--default] [--show-fds]

Writes to a pipe whose read end is closed. By default SIGPIPE is ignored (as in
every Rust program): the write fails with EPIPE, reported, exit status 1. With the
option --default, SIGPIPE's default action is restored first: the kernel kills the
process during the write, and the shell shows status 141 (128 + 13).

Options:
  --default    restore SIGPIPE's default action before writing
  --show-fds   print the descriptor table (on stderr) after the pipe is made and
               after its read end is closed
  -h, --help   print this help

Exit status: 1 the write failed with EPIPE (or another system call failed); 2 bad
command line; with --default, none: SIGPIPE kills the process (a shell says 141).
"
    )
}
