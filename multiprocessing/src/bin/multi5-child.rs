//! multi5-child: the program each `multi5` child becomes with `exec`.
//!
//! Mirrors `child.py` from *Programming Python*: prints `Hello from child <pid>
//! <arg>`. The pid it prints is the one `multi5` forked: `exec` replaces the
//! program a process runs, not the process.
//!
//! Usage: multi5-child [--show-fds] ARG
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi5-child -- 7
//!     cargo run -p multiprocessing --bin multi5-child -- --show-fds 7
//!
//! `--show-fds` prints its descriptor table (on stderr) as `exec` left it: `multi5`
//! passes it to its first child.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use multiprocessing::{say, show_fds};
use nix::unistd::getpid;
use std::process::ExitCode;

const PROGRAM: &str = "multi5-child";

fn main() -> ExitCode {
    let (show, arg) = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    // ANCHOR: hello
    // What crossed exec: the descriptors without close-on-exec.
    show_fds(show, "multi5-child", "after exec");
    match say(&format!("Hello from child {} {arg}", getpid())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            lesson_kit::note!("{PROGRAM}: {failure}");
            ExitCode::from(lesson_kit::exit::RUNTIME)
        }
    }
    // ANCHOR_END: hello
}

/// `--show-fds` and ARG; `None` for `--help`.
fn parse_options() -> Result<Option<(bool, String)>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut show = false;
    let mut arg = None;
    while let Some(word) = parser.next()? {
        match word.as_str() {
            "-h" | "--help" if !parser.options_ended() => return Ok(None),
            "--show-fds" if !parser.options_ended() => show = true,
            _ if arg.is_none()
                && (parser.options_ended() || !word.starts_with('-')) =>
            {
                arg = Some(word);
            }
            _ => return Err(parser.unexpected(&word)),
        }
    }
    arg.map(|arg| Some((show, arg)))
        .ok_or_else(|| UsageError("missing ARG (the child's number)".to_owned()))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--show-fds] ARG

Prints `Hello from child <pid> <ARG>` (Programming Python's child.py, which multi5's
children exec).

Options:
  --show-fds   print the descriptor table (stderr) as exec left it
  -h, --help   print this help

Exit status: 0 printed; 1 stdout failed; 2 bad command line.
"
    )
}
