//! A small command-line parser, written by hand so a lesson builds in a second.
//!
//! A lesson loops over [`Parser::next`] and matches the option names itself, so its `--help`
//! text and its options sit side by side in the lesson:
//!
//! ```
//! # use lesson_kit::args::{Parser, UsageError};
//! # fn demo() -> Result<(), UsageError> {
//! let mut parser = Parser::new("demo", ["--count", "3", "--no-gap"]);
//! let mut count = None;
//! let mut gap = true;
//! while let Some(arg) = parser.next()? {
//!     match arg.as_str() {
//!         "--count" => count = Some(parser.value::<u64>(&arg)?),
//!         "--no-gap" => gap = false,
//!         _ => return Err(parser.unexpected(&arg)),
//!     }
//! }
//! assert_eq!((count, gap), (Some(3), false));
//! # Ok(()) }
//! # demo().unwrap();
//! ```
//!
//! Both `--count 3` and `--count=3` work; `--` ends the options; a word that does not start
//! with `-` is a positional argument and is returned as it is.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;

/// The exit code for a usage error (bad option, bad value), as documented in the README.
pub const EXIT_USAGE: u8 = 2;

/// What went wrong on the command line. Printed with the usage text, then exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Command-line arguments, consumed one at a time.
pub struct Parser {
    program: String,
    args: VecDeque<String>,
    /// The value glued to the last option with `=` (`--count=3`), waiting for `value()`.
    glued: Option<String>,
    only_positionals: bool,
}

impl Parser {
    /// Parses the arguments of this process. A non-UTF-8 argument is a usage error.
    pub fn from_env(program: &str) -> Result<Parser, UsageError> {
        let mut args = Vec::new();
        for arg in std::env::args_os().skip(1) {
            match arg.into_string() {
                Ok(arg) => args.push(arg),
                Err(raw) => {
                    return Err(UsageError(format!(
                        "argument {raw:?} is not valid UTF-8"
                    )));
                }
            }
        }
        Ok(Parser::new(program, args))
    }

    /// Parses the given arguments (the program name not included).
    pub fn new<I, S>(program: &str, args: I) -> Parser
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Parser {
            program: program.to_owned(),
            args: args.into_iter().map(Into::into).collect(),
            glued: None,
            only_positionals: false,
        }
    }

    /// The name the lesson gave itself, for messages.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The next option (`--count`, `-h`) or positional argument, or `None` at the end.
    ///
    /// Fails if the previous option was given a value with `=` that nobody asked for
    /// (`--no-gap=yes`).
    #[allow(clippy::should_implement_trait)] // it returns a Result, unlike Iterator::next
    pub fn next(&mut self) -> Result<Option<String>, UsageError> {
        if let Some(value) = self.glued.take() {
            return Err(UsageError(format!(
                "an option does not take a value: ={value}"
            )));
        }
        let Some(arg) = self.args.pop_front() else {
            return Ok(None);
        };
        // After `--` every argument is a word, even `--n=2`. Before it, a word (`x`,
        // `-`, `a=b`) needs no test of its own: it is neither `--` nor `--name=value`,
        // so it comes out unchanged at the end.
        if self.only_positionals {
            return Ok(Some(arg));
        }
        if arg == "--" {
            self.only_positionals = true;
            return self.next();
        }
        if let Some((name, value)) = arg.split_once('=')
            && name.starts_with("--")
        {
            self.glued = Some(value.to_owned());
            return Ok(Some(name.to_owned()));
        }
        Ok(Some(arg))
    }

    /// Whether `--` has been seen: from then on, every argument is positional.
    pub fn options_ended(&self) -> bool {
        self.only_positionals
    }

    /// Everything not consumed yet, as it is: for a lesson that runs a program named on its
    /// command line (`bidir-spawn -- cat -n`), the program's own arguments.
    pub fn rest(&mut self) -> Vec<String> {
        self.args.drain(..).collect()
    }

    /// The value of `option` (the next argument, or what followed `=`), parsed as `T`.
    /// The error names the option and the value, so the user sees what to fix.
    pub fn value<T>(&mut self, option: &str) -> Result<T, UsageError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let text = match self.glued.take() {
            Some(text) => text,
            None => self
                .args
                .pop_front()
                .ok_or_else(|| UsageError(format!("{option} needs a value")))?,
        };
        text.parse()
            .map_err(|err| UsageError(format!("{option} {text:?}: {err}")))
    }

    /// [`Parser::value`], refused unless it lies in `range`: every numeric option has a
    /// range the program can honour (a wait that fits in a `Duration` and a `poll` timeout,
    /// a size that fits in memory), and the error names it:
    /// `--speed "1e-20": must be from 0.001 to 1000000`.
    // ANCHOR: value_in
    pub fn value_in<T>(
        &mut self,
        option: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, UsageError>
    where
        T: FromStr + PartialOrd + fmt::Display,
        T::Err: fmt::Display,
    {
        let text = self.glued.clone().or_else(|| self.args.front().cloned());
        let value: T = self.value(option)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(UsageError(format!(
                "{option} {:?}: must be from {} to {}",
                text.unwrap_or_default(),
                range.start(),
                range.end()
            )))
        }
    }
    // ANCHOR_END: value_in

    /// The error for an option or argument the lesson does not know.
    pub fn unexpected(&self, arg: &str) -> UsageError {
        if arg.starts_with('-') && !self.only_positionals {
            UsageError(format!("unknown option {arg}"))
        } else {
            UsageError(format!("unexpected argument {arg:?}"))
        }
    }
}

/// Runs a lesson's option parser and deals with the two ways it can end the program:
/// `Ok(None)` means `--help` (print the usage on stdout, exit 0), `Err` a usage error
/// (print it and the usage on stderr, exit 2). `Err(code)` is the code to exit with.
///
/// ```
/// # use lesson_kit::args::{parse_command_line, UsageError};
/// # use std::process::ExitCode;
/// fn parse() -> Result<Option<u32>, UsageError> { Ok(Some(7)) }
/// fn usage() -> String { "Usage: demo\n".to_owned() }
/// # fn main() -> ExitCode {
/// let options = match parse_command_line("demo", parse, usage) {
///     Ok(options) => options,
///     Err(code) => return code, // --help printed, or a usage error reported
/// };
/// # assert_eq!(options, 7); ExitCode::SUCCESS }
/// ```
pub fn parse_command_line<T>(
    program: &str,
    parse: impl FnOnce() -> Result<Option<T>, UsageError>,
    usage: impl Fn() -> String,
) -> Result<T, ExitCode> {
    match parse() {
        Ok(Some(options)) => Ok(options),
        Ok(None) => {
            // `--help > /dev/full` or `--help | true`: report it, never panic.
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(usage().as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => Err(ExitCode::SUCCESS),
                Err(err) => {
                    crate::note!("{program}: write stdout: {err}");
                    Err(ExitCode::from(crate::exit::RUNTIME))
                }
            }
        }
        Err(err) => Err(usage_failure(program, &err, &usage())),
    }
}

/// Prints a usage error and the usage text to stderr; the caller returns the exit code.
///
/// ```text
/// anon-pipe: --count "x": invalid digit found in string
///
/// Usage: anon-pipe [--count N] [--speed X] [--no-gap]
/// ...
/// ```
pub fn usage_failure(program: &str, err: &UsageError, usage: &str) -> ExitCode {
    crate::note!("{program}: {err}\n\n{usage}");
    ExitCode::from(EXIT_USAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(args: &[&str]) -> Result<Vec<String>, UsageError> {
        let mut parser = Parser::new("t", args.iter().copied());
        let mut seen = Vec::new();
        while let Some(arg) = parser.next()? {
            if arg == "--n" {
                let n: u32 = parser.value(&arg)?;
                seen.push(format!("n={n}"));
            } else {
                seen.push(arg);
            }
        }
        Ok(seen)
    }

    #[test]
    fn values_may_follow_or_be_glued_with_equals() {
        assert_eq!(collect(&["--n", "3"]).unwrap(), ["n=3"]);
        assert_eq!(collect(&["--n=4", "x"]).unwrap(), ["n=4", "x"]);
    }

    #[test]
    fn double_dash_ends_options() {
        assert_eq!(
            collect(&["--n", "1", "--", "--n=2", "-x"]).unwrap(),
            ["n=1", "--n=2", "-x"]
        );
    }

    #[test]
    fn errors_name_the_option_and_the_value() {
        assert_eq!(collect(&["--n"]).unwrap_err().0, "--n needs a value");
        let err = collect(&["--n", "x"]).unwrap_err().0;
        assert!(err.starts_with("--n \"x\": "), "{err}");
        let err = collect(&["--flag=1"]).unwrap_err().0;
        assert_eq!(err, "an option does not take a value: =1");
    }

    #[test]
    fn words_and_a_lone_dash_come_out_unchanged() {
        assert_eq!(
            collect(&["x", "-", "a=b", "-x=1", "--n", "5"]).unwrap(),
            ["x", "-", "a=b", "-x=1", "n=5"]
        );
    }

    #[test]
    fn rest_hands_over_a_programs_own_arguments() {
        // `bidir-spawn -- cat -n`: after `--`, the rest is the program and its options.
        let mut parser = Parser::new("bidir", ["--n", "2", "--", "cat", "-n"]);
        assert_eq!(parser.program(), "bidir");
        assert_eq!(parser.next(), Ok(Some("--n".to_owned())));
        assert!(!parser.options_ended());
        assert_eq!(parser.value::<u32>("--n"), Ok(2));
        assert_eq!(parser.next(), Ok(Some("cat".to_owned())));
        assert!(parser.options_ended(), "`--` was seen");
        assert_eq!(parser.rest(), ["-n"]);
        assert_eq!(parser.next(), Ok(None), "rest took everything");
        assert_eq!(parser.rest(), Vec::<String>::new());
    }

    #[test]
    fn a_usage_error_displays_as_its_message() {
        let err = UsageError("--count must be at least 1".to_owned());
        assert_eq!(err.to_string(), "--count must be at least 1");
        assert_eq!(format!("t: {err}"), "t: --count must be at least 1");
    }

    #[test]
    fn unexpected_distinguishes_options_from_words() {
        let mut parser = Parser::new("t", ["--", "--what"]);
        assert_eq!(parser.unexpected("--what").0, "unknown option --what");
        assert_eq!(parser.unexpected("what").0, "unexpected argument \"what\"");
        // After `--`, a word that looks like an option is a stray word.
        assert_eq!(parser.next(), Ok(Some("--what".to_owned())));
        assert_eq!(
            parser.unexpected("--what").0,
            "unexpected argument \"--what\""
        );
    }

    #[test]
    fn value_in_refuses_values_outside_the_range_and_names_it() {
        let mut parser = Parser::new("t", ["--w", "1e19", "--w=5", "--w", "-1"]);
        parser.next().unwrap();
        let err = parser.value_in::<f64>("--w", 0.0..=86400.0).unwrap_err().0;
        assert_eq!(err, "--w \"1e19\": must be from 0 to 86400");
        parser.next().unwrap();
        assert_eq!(parser.value_in::<f64>("--w", 0.0..=86400.0), Ok(5.0));
        parser.next().unwrap();
        assert!(parser.value_in::<f64>("--w", 0.0..=86400.0).is_err());
    }
}
