//! 2-echoenv: prints the `USER` it inherited; the program `2-setenv` runs.
//!
//! Mirrors `echoenv.py` (*Programming Python*): prints `echoenv... Hello, <USER>`.
//! It reads its environment once, at start, as every program does: a change made by
//! its parent afterwards, or by anyone else, never reaches it.
//!
//! Usage: 2-echoenv
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 2-echoenv
//!     USER=Ada cargo run -p simple-ipc --bin 2-echoenv
//!     env -u USER cargo run -p simple-ipc --bin 2-echoenv
//!
//! Where this differs from the document, on purpose: a missing `USER` prints
//! `echoenv... (USER is not set)` instead of a `KeyError` traceback; a `USER` that
//! is not UTF-8 is printed as the bytes it is.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const PROGRAM: &str = "2-echoenv";

// ANCHOR: main
fn main() -> ExitCode {
    match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(()) => {}
        Err(code) => return code, // --help printed, or a usage error reported
    }
    match echo() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            lesson_kit::note!("{PROGRAM}: {failure}");
            ExitCode::from(lesson_kit::exit::RUNTIME)
        }
    }
}

fn echo() -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    // var_os, not var: an environment value is bytes, and need not be UTF-8.
    match std::env::var_os("USER") {
        Some(user) => out
            .write_all(b"echoenv... Hello, ")
            .and_then(|()| out.write_all(user.as_bytes()))
            .and_then(|()| out.write_all(b"\n")),
        None => writeln!(out, "echoenv... (USER is not set)"),
    }
    .and_then(|()| out.flush())
    .context("write stdout")
}
// ANCHOR_END: main

fn parse_options() -> Result<Option<()>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    match parser.next()? {
        None => Ok(Some(())),
        Some(arg) if arg == "-h" || arg == "--help" => Ok(None),
        Some(arg) => Err(parser.unexpected(&arg)),
    }
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM}

Prints `echoenv... Hello, <USER>` with the USER of its environment (the documents'
echoenv.py); `2-setenv` runs it.

Options:
  -h, --help   print this help

Exit status: 0 printed; 1 stdout could not be written; 2 bad command line.
"
    )
}
