//! 3-showargs: prints the `argv` it was given, one entry per line, as exact bytes.
//!
//! The program `3-argv` execs. Each entry is shown as a Python bytes literal, so
//! spaces, empty strings and bytes that are not UTF-8 are all visible: `argv[2] =
//! b'caf\xe9' (not UTF-8)`.
//!
//! Usage: 3-showargs [ARG...]   (all data, except a lone --help)
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 3-showargs -- one "two words" '$HOME' *.toml
//!
//! (There the *shell* splits the line into words, expands `*.toml` and removes the
//! quotes, before the program starts. A program started with `exec` gets exactly
//! the strings it is given: see `3-argv`.)

use lesson_kit::args::{UsageError, parse_command_line};
use lesson_kit::pyfmt::bytes_repr;
use lesson_kit::{Context, Failure, note};
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const PROGRAM: &str = "3-showargs";

// ANCHOR: main
fn main() -> ExitCode {
    // args_os, not args: std::env::args() panics on an argument that is not UTF-8.
    let argv: Vec<OsString> = std::env::args_os().collect();
    let only_help = argv.len() == 2 && (argv[1] == "--help" || argv[1] == "-h");
    let help =
        || -> Result<Option<()>, UsageError> { Ok((!only_help).then_some(())) };
    if let Err(code) = parse_command_line(PROGRAM, help, usage) {
        return code; // --help printed
    }
    match show(&argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            note!("{PROGRAM}: {failure}");
            ExitCode::from(lesson_kit::exit::RUNTIME)
        }
    }
}

fn show(argv: &[OsString]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "showargs: argc = {}", argv.len()).context("write stdout")?;
    for (i, arg) in argv.iter().enumerate() {
        let bytes = arg.as_bytes();
        let remark = match std::str::from_utf8(bytes) {
            Ok(_) => "",
            Err(_) => " (not UTF-8)",
        };
        writeln!(out, "  argv[{i}] = {}{remark}", bytes_repr(bytes))
            .context("write stdout")?;
    }
    out.flush().context("write stdout")
}
// ANCHOR_END: main

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [ARG...]

Prints argc and every argv entry, argv[0] included, as exact bytes (a Python bytes
literal). Every argument is data, except a lone --help or -h.

Options:
  -h, --help   print this help (only as the one argument)

Exit status: 0 printed; 1 stdout could not be written.
"
    )
}
