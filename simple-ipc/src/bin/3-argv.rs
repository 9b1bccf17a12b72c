//! 3-argv: what a program receives in `argv` is exactly the list its parent passed
//! to `exec`: no shell splits, expands or unquotes anything.
//!
//! Not a program of the documents (seeds 000 and 003 list command-line arguments
//! first among the simple mechanisms). The parent execs `3-showargs`, which prints
//! each entry of its `argv` as bytes, twice: with `fork` + `execv` by hand, then
//! with `Command`. The list holds an `argv[0]` that is not the program's file name,
//! an argument with a space (one argument, not two), bytes that are not UTF-8, an
//! empty argument, and `$HOME *` (no shell, so no expansion).
//!
//! Usage: 3-argv [-- ARG...]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 3-argv
//!     cargo run -p simple-ipc --bin 3-argv -- -- 'one two' three
//!
//! Where this differs from Python: `sys.argv` holds `str`s, with bytes that are not
//! UTF-8 smuggled in as surrogates; `subprocess.run([...])` passes a list the same
//! way `Command` does, while `os.system("...")` goes through `sh -c` and its word
//! splitting.

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, note};
use nix::unistd::{ForkResult, fork};
use simple_ipc::{
    Ended, Exec, Outcome, Stop, child_ok, lesson_main, reap, sibling, spawn_failed,
};
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};

const PROGRAM: &str = "3-argv";
const SHOWARGS: &str = "3-showargs";

/// `argv[0]`: by convention the program's name, but it is just the first string.
const ARGV0: &[u8] = b"any name at all";

/// The demonstration's arguments (after `argv[0]`).
const DEMO: [&[u8]; 4] = [b"two words", b"caf\xe9", b"", b"$HOME *"];

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, |args: &Vec<_>| run(args))
}

// ANCHOR: run
fn run(args: &[Vec<u8>]) -> Outcome {
    let stop = Stop::install()?;
    let showargs = sibling(SHOWARGS)?;

    note!("[1] fork + execv: the child's argv is exactly our list");
    // ANCHOR: execv
    let argv = std::iter::once(ARGV0.to_vec()).chain(args.iter().cloned());
    let exec = Exec::new(&showargs, argv)?; // C strings, built before fork
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: single-threaded process (Stop::install starts no thread); the child
    // only resets its signals, execs, or writes a fixed message and _exits.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => exec.exec_in_child(), // execv: never returns
        ForkResult::Parent { child } => child_ok(SHOWARGS, reap(child, &stop)?)?,
    }
    // ANCHOR_END: execv

    note!("[2] Command: arg0 and args, the same list without a fork in sight");
    command(&showargs, args, &stop)?;
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: command
fn command(showargs: &Path, args: &[Vec<u8>], stop: &Stop) -> Result<(), Ended> {
    let child = Command::new(showargs)
        .arg0(OsStr::from_bytes(ARGV0)) // default: the program as given to new()
        .args(args.iter().map(|arg| OsStr::from_bytes(arg)))
        .spawn()
        .map_err(|err| spawn_failed(showargs, err))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as libc::pid_t);
    child_ok(SHOWARGS, reap(pid, stop)?)
}
// ANCHOR_END: command

fn parse_options() -> Result<Option<Vec<Vec<u8>>>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    // Nothing: the demonstration's list. `--` and what follows: exactly that list.
    let args = match parser.next()? {
        None if parser.options_ended() => Vec::new(), // a bare `--`: no arguments
        None => DEMO.iter().map(|arg| arg.to_vec()).collect(),
        Some(arg) if parser.options_ended() => std::iter::once(arg)
            .chain(parser.rest())
            .map(String::into_bytes)
            .collect(),
        Some(arg) if arg == "-h" || arg == "--help" => return Ok(None),
        Some(arg) => return Err(parser.unexpected(&arg)),
    };
    Ok(Some(args))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [-- ARG...]

Execs {SHOWARGS}, which prints the argv it receives, first with fork + execv, then
with Command. Without ARGs the list shows an argv[0] that is not a file name, an
argument with a space, bytes that are not UTF-8, an empty argument and `$HOME *`.

Options:
  -- ARG...    pass these arguments instead
  -h, --help   print this help

Exit status: 0 done; 1 a system call failed or {SHOWARGS} failed; 2 bad command
line; 126/127 {SHOWARGS} could not be run; 128+n stopped by signal n.
"
    )
}
