//! 4-upcase: a tiny filter, the program `4-redirect` and `5-popen` run.
//!
//! Reads its stdin to the end and writes it back in capitals to stdout, then says
//! how many lines it read on stderr (`upcase: 2 lines (on stderr)`); with WORDs it
//! writes those instead and does not read stdin. `--exit CODE` makes it end with
//! that status, so a parent can show that it checks it. `--show-fds` first prints
//! the descriptor table it was started with ("after exec"): which is how
//! `4-redirect` and `5-popen` show what their children handed over.
//!
//! Usage: 4-upcase [--exit CODE] [--show-fds] [WORD...]
//!
//! Try it:
//!     printf 'hello\nworld\n' | cargo run -q -p simple-ipc --bin 4-upcase
//!     cargo run -q -p simple-ipc --bin 4-upcase -- --exit 3 spam eggs; echo $?
//!     echo hi | cargo run -q -p simple-ipc --bin 4-upcase -- --show-fds

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, fds, note};
use std::io::{self, Read, Write};
use std::process::ExitCode;

const PROGRAM: &str = "4-upcase";

struct Options {
    exit: u8,
    show_fds: bool,
    words: Vec<String>,
}

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    if options.show_fds {
        // What exec left us: the descriptors without close-on-exec, as they were
        fds::show(PROGRAM, "after exec");
    }
    match filter(&options) {
        Ok(()) => ExitCode::from(options.exit),
        Err(failure) => {
            note!("{PROGRAM}: {failure}");
            ExitCode::from(lesson_kit::exit::RUNTIME)
        }
    }
}

fn filter(options: &Options) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    if !options.words.is_empty() {
        for word in &options.words {
            writeln!(out, "{}", word.to_uppercase()).context("write stdout")?;
        }
        out.flush().context("write stdout")?;
        let count = options.words.len();
        let plural = if count == 1 { "" } else { "s" };
        note!("upcase: {count} word{plural} (on stderr)");
        return Ok(());
    }
    let mut stdin = io::stdin().lock();
    let mut chunk = [0u8; 4096];
    let mut lines = 0;
    loop {
        // Blocks until the writer writes, or closes its end: then comes EOF (0).
        let n = stdin.read(&mut chunk).context("read stdin")?;
        if n == 0 {
            break;
        }
        lines += chunk[..n].iter().filter(|byte| **byte == b'\n').count();
        out.write_all(&chunk[..n].to_ascii_uppercase())
            .and_then(|()| out.flush())
            .context("write stdout")?;
    }
    let plural = if lines == 1 { "" } else { "s" };
    note!("upcase: {lines} line{plural} (on stderr)");
    Ok(())
}
// ANCHOR_END: main

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        exit: 0,
        show_fds: false,
        words: Vec::new(),
    };
    while let Some(arg) = parser.next()? {
        if parser.options_ended() || !arg.starts_with('-') {
            options.words.push(arg);
            continue;
        }
        match arg.as_str() {
            "--exit" => {
                // Parsed as u16, so that 256 is "out of range", not "too large".
                let code: u16 = parser.value_in(&arg, 0..=255)?;
                options.exit = u8::try_from(code).unwrap_or(u8::MAX);
            }
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
Usage: {PROGRAM} [--exit CODE] [--show-fds] [WORD...]

Copies stdin to stdout in capitals, then writes `upcase: <n> lines (on stderr)` to
stderr. With WORDs, writes them in capitals instead, one per line, without reading
stdin.

Options:
  --exit CODE  end with status CODE, 0 to 255 (default 0), after doing the work
  --show-fds   first print its descriptor table on stderr, as exec left it
  -h, --help   print this help

Exit status: CODE (default 0); 1 stdin or stdout failed; 2 bad command line.
"
    )
}
