//! multi5-child: the program each `multi5` child becomes with `exec`.
//!
//! Mirrors `child.py` from *Programming Python*: prints `Hello from child <pid>
//! <arg>`. The pid it prints is the one `multi5` forked: `exec` replaces the
//! program a process runs, not the process.
//!
//! Usage: multi5-child ARG
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi5-child -- 7

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use multiprocessing::say;
use nix::unistd::getpid;
use std::process::ExitCode;

const PROGRAM: &str = "multi5-child";

fn main() -> ExitCode {
    let arg = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(arg) => arg,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    // ANCHOR: hello
    match say(&format!("Hello from child {} {arg}", getpid())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            lesson_kit::note!("{PROGRAM}: {failure}");
            ExitCode::from(lesson_kit::exit::RUNTIME)
        }
    }
    // ANCHOR_END: hello
}

fn parse_options() -> Result<Option<String>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut arg = None;
    while let Some(word) = parser.next()? {
        match word.as_str() {
            "-h" | "--help" if !parser.options_ended() => return Ok(None),
            _ if arg.is_none()
                && (parser.options_ended() || !word.starts_with('-')) =>
            {
                arg = Some(word);
            }
            _ => return Err(parser.unexpected(&word)),
        }
    }
    arg.map(Some)
        .ok_or_else(|| UsageError("missing ARG (the child's number)".to_owned()))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} ARG

Prints `Hello from child <pid> <ARG>` (Programming Python's child.py, which multi5's
children exec).

Options:
  -h, --help   print this help

Exit status: 0 printed; 1 stdout failed; 2 bad command line.
"
    )
}
