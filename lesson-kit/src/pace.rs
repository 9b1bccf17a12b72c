//! Pacing: `--count N` (stop after N messages) and `--speed X` (wait X times less).
//!
//! With neither option a lesson runs like the document: forever, at the document's cadence.

use crate::args::{Parser, UsageError};
use std::time::Duration;

/// What `--speed` accepts: 1000 times slower to a million times faster. Every wait the
/// documents make (at most a few seconds) then stays a `Duration` a `sleep` and a `poll`
/// can take, and the value in the help is one a person would type.
pub const SPEED_RANGE: std::ops::RangeInclusive<f64> = 0.001..=1_000_000.0;

/// The help lines for the two pacing options, for a lesson's usage text whose option
/// descriptions start in column 15. A lesson with longer option names uses
/// [`pacing_help`] with its own column.
pub const PACING_HELP: &str = concat!(
    "  --count N    stop after N messages (default: run until interrupted,\n",
    "               like the document)\n",
    "  --speed X    make every wait X times shorter, 0.001 to 1000000\n",
    "               (default 1; 20 turns 4 s into 0.2 s)"
);

/// [`PACING_HELP`] with the descriptions starting at `column` (counted from 0, as the
/// help test counts), so they line up with the lesson's other options.
pub fn pacing_help(column: usize) -> String {
    let lines = [
        (
            "--count N",
            "stop after N messages (default: run until interrupted,",
        ),
        ("", "like the document)"),
        (
            "--speed X",
            "make every wait X times shorter, 0.001 to 1000000",
        ),
        ("", "(default 1; 20 turns 4 s into 0.2 s)"),
    ];
    let width = column.saturating_sub(2).max(11);
    lines
        .iter()
        .map(|(option, text)| format!("  {option:<width$}{text}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many messages to send and how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// `None`: forever, as in the document.
    pub count: Option<u64>,
    /// Waits are divided by this; always positive and finite.
    pub speed: f64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            count: None,
            speed: 1.0,
        }
    }
}

impl Pacing {
    // ANCHOR: pacing
    /// Takes `--count` or `--speed` from the parser if `option` is one of them.
    /// Returns `Ok(false)` for any other option, so the lesson can go on matching.
    pub fn accept(
        &mut self,
        option: &str,
        parser: &mut Parser,
    ) -> Result<bool, UsageError> {
        match option {
            "--count" => {
                let count: u64 = parser.value(option)?;
                if count == 0 {
                    return Err(UsageError(
                        "--count must be at least 1".to_owned(),
                    ));
                }
                self.count = Some(count);
            }
            "--speed" => self.speed = parser.value_in(option, SPEED_RANGE)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    // ANCHOR_END: pacing

    /// The message numbers to send: `0..count`, or `0..` without `--count`.
    pub fn messages(&self) -> impl Iterator<Item = u64> + use<> {
        (0..).take_while({
            let count = self.count;
            move |i| count.is_none_or(|count| *i < count)
        })
    }

    /// The documents' cadence: message `i` is `Spam n` with `n = i % 5`, sent after a pause
    /// of `n` seconds (shortened by `--speed`): 0, 1, 2, 3, 4, 0, 1... for as many messages
    /// as `--count` allows.
    pub fn spam_beats(&self) -> impl Iterator<Item = Beat> + use<> {
        let pacing = *self;
        self.messages().map(move |i| {
            let n = u32::try_from(i % 5).expect("below 5");
            Beat {
                n,
                pause: pacing.secs(f64::from(n)),
            }
        })
    }

    /// A wait of the document's length, shortened by `--speed`.
    pub fn scaled(&self, document_wait: Duration) -> Duration {
        document_wait.div_f64(self.speed)
    }

    /// A wait of `seconds` document seconds, shortened by `--speed`.
    pub fn secs(&self, seconds: f64) -> Duration {
        self.scaled(Duration::from_secs_f64(seconds))
    }
}

/// One message of the documents' cadence: wait `pause`, then send `Spam <n>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beat {
    pub n: u32,
    pub pause: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Pacing, UsageError> {
        let mut parser = Parser::new("t", args.iter().copied());
        let mut pacing = Pacing::default();
        while let Some(arg) = parser.next()? {
            if !pacing.accept(&arg, &mut parser)? {
                return Err(parser.unexpected(&arg));
            }
        }
        Ok(pacing)
    }

    #[test]
    fn pacing_help_lines_are_indented_and_aligned() {
        assert_eq!(pacing_help(15), PACING_HELP);
        for line in pacing_help(27).lines() {
            assert!(line.starts_with("  "), "{line:?}");
            assert_eq!(
                line.char_indices().nth(27).map(|(_, c)| c != ' '),
                Some(true)
            );
        }
        assert!(
            PACING_HELP.starts_with("  --count N    stop"),
            "{PACING_HELP:?}"
        );
    }

    #[test]
    fn defaults_are_the_documents_forever_at_full_length() {
        let pacing = parse(&[]).unwrap();
        assert_eq!(pacing.count, None);
        assert_eq!(pacing.secs(4.0), Duration::from_secs(4));
        assert_eq!(pacing.messages().take(1000).count(), 1000);
    }

    #[test]
    fn count_and_speed_are_applied() {
        let pacing = parse(&["--count", "3", "--speed=20"]).unwrap();
        // `take` bounds the check: a pacing that ignored --count would run forever.
        assert_eq!(pacing.messages().take(10).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(pacing.secs(4.0), Duration::from_millis(200));
    }

    #[test]
    fn spam_beats_follow_the_documents_cadence() {
        let pacing = parse(&["--count", "7", "--speed", "10"]).unwrap();
        let beats: Vec<(u32, u64)> = pacing
            .spam_beats()
            .take(10)
            .map(|beat| (beat.n, beat.pause.as_millis() as u64))
            .collect();
        assert_eq!(
            beats,
            [
                (0, 0),
                (1, 100),
                (2, 200),
                (3, 300),
                (4, 400),
                (0, 0),
                (1, 100)
            ]
        );
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_option() {
        assert!(parse(&["--count", "0"]).unwrap_err().0.contains("--count"));
        assert!(parse(&["--count", "-3"]).unwrap_err().0.contains("--count"));
        assert!(parse(&["--speed", "0"]).unwrap_err().0.contains("--speed"));
        for edge in ["1e-20", "1e-300", "1e7", "inf", "NaN"] {
            let err = parse(&["--speed", edge]).unwrap_err().0;
            assert!(
                err.contains("--speed") && err.contains("must be from"),
                "{err}"
            );
        }
        assert_eq!(parse(&["--speed", "1000000"]).unwrap().speed, 1e6);
        assert_eq!(parse(&["--speed", "0.001"]).unwrap().speed, 0.001);
        assert!(parse(&["--other"]).unwrap_err().0.contains("--other"));
    }
}
