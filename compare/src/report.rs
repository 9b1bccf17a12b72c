//! Lining up two runs, saying where they differ, and drawing them.

use crate::lessons::Pairing;
use crate::run::{Ending, Line, Outcome, Run, Stop};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

// ANCHOR: mask
/// A line as compared: Unix timestamps (nine or more digits before the point)
/// become `<time>`, every other whole number of two digits or more becomes `<pid>`
/// (in these programs' output the only other numbers are single digits: `Spam 4`,
/// `Hello 2`).
pub fn mask(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_digit() {
                i += 1;
            }
            out.push_str(&text[start..i]);
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let whole = i - start;
        let fraction = i + 1 < bytes.len()
            && bytes[i] == b'.'
            && bytes[i + 1].is_ascii_digit();
        if whole >= 9 {
            if fraction {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push_str("<time>");
        } else if whole >= 2 && !fraction {
            out.push_str("<pid>");
        } else {
            out.push_str(&text[start..i]);
        }
    }
    out
}
// ANCHOR_END: mask

/// One row of the side-by-side listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub original: Option<(Duration, String)>,
    pub lesson: Option<(Duration, String)>,
    /// The masked texts differ (or one side has no line here).
    pub differs: bool,
    /// How far this line's offset from its side's first line differs between the
    /// sides.
    pub cadence: Option<Duration>,
}

/// The comparison of two runs.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub rows: Vec<Row>,
    pub equal: usize,
    /// The largest cadence difference and its row (1-based).
    pub worst: Option<(Duration, usize)>,
    pub tolerance: Duration,
}

impl Verdict {
    /// Equal: the same lines, at least one, each within the cadence tolerance.
    pub fn is_equal(&self) -> bool {
        !self.rows.is_empty()
            && self.equal == self.rows.len()
            && self.worst.is_none_or(|(worst, _)| worst <= self.tolerance)
    }
}

fn shown(line: &Line) -> String {
    if line.role.is_empty() {
        mask(&line.text)
    } else {
        format!("{}: {}", line.role, mask(&line.text))
    }
}

// ANCHOR: compare
/// Lines up the two runs' lines by position. Cadence is measured from each side's
/// first line, so the time Python takes to start (tens of milliseconds more than
/// Rust) does not count; what counts is the rhythm after it.
pub fn compare(original: &[Line], lesson: &[Line], tolerance: Duration) -> Verdict {
    let count = original.len().max(lesson.len());
    let (first_o, first_l) = match (original.first(), lesson.first()) {
        (Some(o), Some(l)) => (o.at, l.at),
        _ => (Duration::ZERO, Duration::ZERO),
    };
    let mut rows = Vec::with_capacity(count);
    let mut worst: Option<(Duration, usize)> = None;
    for i in 0..count {
        let o = original.get(i).map(|line| (line.at, shown(line)));
        let l = lesson.get(i).map(|line| (line.at, shown(line)));
        let differs = match (&o, &l) {
            (Some((_, a)), Some((_, b))) => a != b,
            _ => true,
        };
        let cadence = match (&o, &l) {
            (Some((a, _)), Some((b, _))) => Some(
                (a.saturating_sub(first_o)).abs_diff(b.saturating_sub(first_l)),
            ),
            _ => None,
        };
        if let Some(cadence) = cadence
            && worst.is_none_or(|(largest, _)| cadence > largest)
        {
            worst = Some((cadence, i + 1));
        }
        rows.push(Row {
            original: o,
            lesson: l,
            differs,
            cadence,
        });
    }
    let equal = rows.iter().filter(|row| !row.differs).count();
    Verdict {
        rows,
        equal,
        worst,
        tolerance,
    }
}
// ANCHOR_END: compare

/// `Ctrl-C at 12.00 s, SIGTERM at 13.00 s: killed by SIGTERM`, or
/// `exited with status 0 by itself at 12.07 s`.
pub fn describe_ending(ending: &Ending) -> String {
    let mut text = String::new();
    if !ending.role.is_empty() {
        let _ = write!(text, "{} ", ending.role);
    }
    if ending.sent.is_empty() {
        let _ = write!(
            text,
            "{} by itself at {:.2} s",
            ending.status,
            ending.ended_at.as_secs_f64()
        );
        return text;
    }
    let sent: Vec<String> = ending
        .sent
        .iter()
        .map(|(stop, at)| {
            let name = match stop {
                Stop::CtrlC => "Ctrl-C",
                Stop::Term => "SIGTERM",
                Stop::Kill => "SIGKILL",
                Stop::None => "nothing",
            };
            format!("{name} at {:.2} s", at.as_secs_f64())
        })
        .collect();
    let _ = write!(text, "{}: {}", sent.join(", "), ending.status);
    text
}

fn endings(outcome: &Outcome) -> String {
    let all: Vec<String> = outcome.endings.iter().map(describe_ending).collect();
    all.join("; ")
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

// ANCHOR: columns
/// The side-by-side listing of one pairing, and its summary. The lesson's column
/// shows `=` for a line that is the original's, after masking.
pub fn write_columns(
    out: &mut impl Write,
    pairing: &Pairing,
    runs: &[Run],
    outcomes: &[Outcome],
    verdict: &Verdict,
    show_stderr: bool,
) -> io::Result<()> {
    let (original, lesson) = (&runs[pairing.reference], &runs[pairing.tested]);
    let heading = format!("original: {}", original.label);
    let width = verdict
        .rows
        .iter()
        .filter_map(|row| {
            row.original.as_ref().map(|(_, text)| text.chars().count())
        })
        .chain([heading.chars().count()])
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "{}: {} beside the original",
        pairing.lesson, lesson.label
    )?;
    writeln!(
        out,
        "  {:>7}  {heading:width$}  | {:>7}  {}",
        "", "", lesson.label
    )?;
    for row in &verdict.rows {
        let mark = if row.differs {
            '*'
        } else if row.cadence.is_some_and(|c| c > verdict.tolerance) {
            '~'
        } else {
            ' '
        };
        let side = |side: &Option<(Duration, String)>| match side {
            Some((at, text)) => (format!("{:7.3}", at.as_secs_f64()), text.clone()),
            None => (String::new(), String::new()),
        };
        let (o_at, o_text) = side(&row.original);
        let (l_at, mut l_text) = side(&row.lesson);
        if !row.differs {
            // The same line, after masking: `=` keeps a listing in 86 columns, and
            // lets the differences stand out.
            l_text = "=".to_owned();
        }
        let line =
            format!("{mark} {o_at:>7}  {o_text:width$}  | {l_at:>7}  {l_text}");
        writeln!(out, "{}", line.trim_end())?;
    }
    let reference = &outcomes[pairing.reference];
    let tested = &outcomes[pairing.tested];
    writeln!(
        out,
        "lines equal: {} of {}",
        verdict.equal,
        verdict.rows.len()
    )?;
    match verdict.worst {
        Some((worst, row)) => writeln!(
            out,
            "cadence: largest difference {} ms (line {row}), tolerance {} ms",
            millis(worst),
            millis(verdict.tolerance)
        )?,
        None => writeln!(out, "cadence: no line on both sides")?,
    }
    writeln!(out, "original ended: {}", endings(reference))?;
    writeln!(out, "lesson ended:   {}", endings(tested))?;
    let other = pairing.stream.other();
    let (o_notes, l_notes) = (reference.lines(other), tested.lines(other));
    if show_stderr {
        for (who, lines) in [("original", o_notes), ("lesson", l_notes)] {
            writeln!(out, "{who} {} (not compared):", other.name())?;
            // As printed: masking would turn a traceback's line numbers into <pid>.
            for line in lines {
                let colon = if line.role.is_empty() { "" } else { ": " };
                let at = line.at.as_secs_f64();
                writeln!(out, "  {at:7.3}  {}{colon}{}", line.role, line.text)?;
            }
        }
    } else {
        writeln!(
            out,
            "{} (not compared): original {} lines, lesson {} lines \
             (--stderr shows them)",
            other.name(),
            o_notes.len(),
            l_notes.len()
        )?;
    }
    let result = if verdict.is_equal() {
        "equal"
    } else {
        "DIFFERENT"
    };
    writeln!(out, "result: {result}")
}
// ANCHOR_END: columns

/// How a run ended, in a few characters: `SIGINT`, `130`, `SIGTERM after Ctrl-C`.
fn short_ending(outcome: &Outcome) -> String {
    let all: Vec<String> = outcome
        .endings
        .iter()
        .map(|ending| {
            let status = match ending.status.strip_prefix("exited with status ") {
                Some(code) => format!("exit {code}"),
                None => ending
                    .status
                    .strip_prefix("killed by ")
                    .unwrap_or(&ending.status)
                    .to_owned(),
            };
            match ending.sent.len() {
                0 | 1 => status,
                _ => format!("{status} after Ctrl-C"),
            }
        })
        .collect();
    all.join(",")
}

/// One row of the `--all` table.
pub fn table_row(
    pairing: &Pairing,
    runs: &[Run],
    outcomes: &[Outcome],
    verdict: &Verdict,
) -> [String; 6] {
    let cadence = match verdict.worst {
        Some((worst, _)) => format!("{} ms", millis(worst)),
        None => "-".to_owned(),
    };
    [
        pairing.lesson.to_owned(),
        runs[pairing.tested].label.clone(),
        format!("{} of {}", verdict.equal, verdict.rows.len()),
        cadence,
        format!(
            "{} / {}",
            short_ending(&outcomes[pairing.reference]),
            short_ending(&outcomes[pairing.tested])
        ),
        if verdict.is_equal() {
            "equal"
        } else {
            "DIFFERENT"
        }
        .to_owned(),
    ]
}

/// A table with aligned columns, the first row its heading.
pub fn write_table(out: &mut impl Write, rows: &[[String; 6]]) -> io::Result<()> {
    let mut widths = [0; 6];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (width, cell) in widths.iter().zip(row) {
            let _ = write!(line, "{cell:width$}  ");
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

// ANCHOR: svg
/// The timeline picture: one row per program run, a tick per line at its arrival
/// time (red where it differs from the original's line), a grey mark where Ctrl-C
/// was typed.
pub fn svg(
    title: &str,
    runs: &[(&Run, &Outcome, Vec<bool>)],
    stream: crate::run::Stream,
) -> String {
    const LEFT: f64 = 330.0;
    const WIDTH: f64 = 600.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 40.0;
    // The scale reaches the last line, or the last Ctrl-C or signal sent.
    let end = runs
        .iter()
        .flat_map(|(_, outcome, _)| {
            let lines = outcome.lines(stream).iter().map(|line| line.at);
            let sent = outcome
                .endings
                .iter()
                .flat_map(|ending| ending.sent.iter().map(|(_, at)| *at));
            lines.chain(sent)
        })
        .max()
        .unwrap_or(Duration::from_secs(1))
        .as_secs_f64()
        .ceil()
        .max(1.0);
    let x = |at: Duration| LEFT + at.as_secs_f64() / end * WIDTH;
    let height = TOP + ROW * runs.len() as f64 + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" \
         height=\"{height}\" \
         font-family=\"monospace\" font-size=\"12\">",
        LEFT + WIDTH + 20.0
    );
    let _ = writeln!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-size=\"14\">{}</text>",
        xml(title)
    );
    for (i, (run, outcome, differs)) in runs.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{}\">{}</text>\n\
             <rect x=\"{LEFT}\" y=\"{}\" width=\"{WIDTH}\" height=\"{}\" \
         fill=\"#f2f2f2\"/>",
            y + 17.0,
            xml(&run.label),
            y + 4.0,
            ROW - 8.0
        );
        for ending in &outcome.endings {
            if let Some((_, at)) = ending.sent.first() {
                let _ = writeln!(
                    svg,
                    "<rect x=\"{:.1}\" y=\"{}\" width=\"3\" height=\"{}\" \
                     fill=\"#999\"/>",
                    x(*at),
                    y + 4.0,
                    ROW - 8.0
                );
            }
        }
        for (j, line) in outcome.lines(stream).iter().enumerate() {
            let color = if differs.get(j).copied().unwrap_or(false) {
                "#d00"
            } else {
                "#000"
            };
            let _ = writeln!(
                svg,
                "<rect x=\"{:.1}\" y=\"{}\" width=\"2\" height=\"{}\" \
                 fill=\"{color}\">\
                 <title>{:.3} s: {}</title></rect>",
                x(line.at),
                y + 6.0,
                ROW - 12.0,
                line.at.as_secs_f64(),
                xml(&shown(line))
            );
        }
    }
    let axis = TOP + ROW * runs.len() as f64 + 14.0;
    let mut second = 0.0;
    while second <= end {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{axis}\" \
             text-anchor=\"middle\">{second} s</text>",
            x(Duration::from_secs_f64(second))
        );
        second += if end > 20.0 { 5.0 } else { 1.0 };
    }
    svg.push_str("</svg>\n");
    svg
}
// ANCHOR_END: svg

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Stream;

    /// A bound on the whole unit-test run, started by every test here: these tests
    /// take milliseconds, so a scan that spins (a broken loop in `mask`) ends the
    /// test binary with a failure after 20 s instead of hanging it.
    fn bounded() {
        static WATCHDOG: std::sync::Once = std::sync::Once::new();
        WATCHDOG.call_once(|| {
            std::thread::spawn(|| {
                std::thread::sleep(Duration::from_secs(20));
                let _ = writeln!(
                    io::stderr(),
                    "report's unit tests still running after 20 s: a loop spins"
                );
                std::process::exit(101);
            });
        });
    }

    fn line(ms: u64, text: &str) -> Line {
        Line {
            at: Duration::from_millis(ms),
            role: "",
            text: text.to_owned(),
        }
    }

    fn ending(role: &'static str, sent: &[(Stop, u64)], status: &str) -> Ending {
        Ending {
            role,
            sent: sent
                .iter()
                .map(|(stop, ms)| (*stop, Duration::from_millis(*ms)))
                .collect(),
            status: status.to_owned(),
            ended_at: Duration::from_millis(2500),
        }
    }

    #[test]
    fn endings_say_what_was_sent_and_how_it_ended() {
        bounded();
        let itself = ending("", &[], "exited with status 0");
        assert_eq!(
            describe_ending(&itself),
            "exited with status 0 by itself at 2.50 s"
        );
        let deaf = ending(
            "reader",
            &[
                (Stop::CtrlC, 12_000),
                (Stop::Term, 13_010),
                (Stop::Kill, 14_020),
            ],
            "killed by SIGKILL",
        );
        assert_eq!(
            describe_ending(&deaf),
            "reader Ctrl-C at 12.00 s, SIGTERM at 13.01 s, SIGKILL at 14.02 s: \
             killed by SIGKILL"
        );
        let outcome = Outcome {
            endings: vec![
                ending("", &[(Stop::CtrlC, 1)], "exited with status 130"),
                deaf.clone(),
                ending("", &[(Stop::CtrlC, 1)], "killed by SIGINT"),
            ],
            ..Outcome::default()
        };
        assert_eq!(
            short_ending(&outcome),
            "exit 130,SIGKILL after Ctrl-C,SIGINT"
        );
    }

    #[test]
    fn the_picture_has_a_second_scale_up_to_20_s_and_five_beyond() {
        bounded();
        let run = Run {
            label: "a & <b>".to_owned(),
            programs: Vec::new(),
            window: Duration::from_secs(1),
            anchor: crate::run::Stream::Out,
            clear_unbuffered: true,
        };
        // A line at 0.5 s, Ctrl-C typed at `ms`: the scale reaches the Ctrl-C.
        let outcome = |ms| Outcome {
            stdout: vec![line(500, "x")],
            endings: vec![ending("", &[(Stop::CtrlC, ms)], "killed by SIGINT")],
            ..Outcome::default()
        };
        let short = outcome(19_200);
        let picture = svg("t", &[(&run, &short, vec![true])], Stream::Out);
        assert!(picture.contains(">20 s</text>") && picture.contains(">19 s<"));
        assert!(picture.contains(">a &amp; &lt;b&gt;</text>"), "{picture}");
        assert_eq!(picture.matches("fill=\"#d00\"").count(), 1, "{picture}");
        // The Ctrl-C mark at 19.2 of 20 s: 330 + 600 * 0.96.
        assert!(picture.contains("<rect x=\"906.0\""), "{picture}");
        let long = outcome(20_100);
        let picture = svg("t", &[(&run, &long, vec![false])], Stream::Out);
        assert!(picture.contains(">20 s</text>") && !picture.contains(">19 s<"));
        assert_eq!(picture.matches("fill=\"#d00\"").count(), 0, "{picture}");
    }

    #[test]
    fn a_line_exactly_at_the_tolerance_is_not_marked_one_beyond_is() {
        bounded();
        let run = |label: &str| Run {
            label: label.to_owned(),
            programs: Vec::new(),
            window: Duration::from_secs(1),
            anchor: Stream::Out,
            clear_unbuffered: true,
        };
        let runs = [run("python3 x.py"), run("x")];
        let outcome = |at: [u64; 3]| Outcome {
            stdout: at.iter().map(|ms| line(*ms, "Spam 42")).collect(),
            endings: vec![ending("", &[], "exited with status 0")],
            ..Outcome::default()
        };
        let outcomes = [outcome([0, 1000, 2000]), outcome([0, 1050, 2051])];
        let pairing = Pairing {
            lesson: "x",
            stream: Stream::Out,
            reference: 0,
            tested: 1,
        };
        let verdict = compare(
            &outcomes[0].stdout,
            &outcomes[1].stdout,
            Duration::from_millis(50),
        );
        let mut out = Vec::new();
        write_columns(&mut out, &pairing, &runs, &outcomes, &verdict, false)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = "\
x: x beside the original
           original: python3 x.py  |          x
    0.000  Spam <pid>              |   0.000  =
    1.000  Spam <pid>              |   1.050  =
~   2.000  Spam <pid>              |   2.051  =
lines equal: 3 of 3
cadence: largest difference 51 ms (line 3), tolerance 50 ms
original ended: exited with status 0 by itself at 2.50 s
lesson ended:   exited with status 0 by itself at 2.50 s
stderr (not compared): original 0 lines, lesson 0 lines (--stderr shows them)
result: DIFFERENT
";
        assert_eq!(text, expected);
    }

    #[test]
    fn the_picture_is_laid_out_to_the_pixel() {
        bounded();
        let run = Run {
            label: "python3 pipe_1.py".to_owned(),
            programs: Vec::new(),
            window: Duration::from_secs(1),
            anchor: Stream::Out,
            clear_unbuffered: true,
        };
        let outcome = Outcome {
            stdout: vec![line(0, "Spam 0"), line(1500, "Spam 1")],
            endings: vec![ending("", &[(Stop::CtrlC, 2000)], "killed by SIGINT")],
            ..Outcome::default()
        };
        let rows = [
            (&run, &outcome, vec![false, true]),
            (&run, &outcome, vec![]),
        ];
        let picture = svg("title", &rows, Stream::Out);
        assert_eq!(picture, GOLDEN_SVG);
    }

    /// One row with a red tick, one without; Ctrl-C at 2 s, the end of the scale.
    const GOLDEN_SVG: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" width="950" height="138" font-family="monospace" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="20" font-size="14">title</text>
<text x="10" y="57">python3 pipe_1.py</text>
<rect x="330" y="44" width="600" height="26" fill="#f2f2f2"/>
<rect x="930.0" y="44" width="3" height="26" fill="#999"/>
<rect x="330.0" y="46" width="2" height="22" fill="#000"><title>0.000 s: Spam 0</title></rect>
<rect x="780.0" y="46" width="2" height="22" fill="#d00"><title>1.500 s: Spam 1</title></rect>
<text x="10" y="91">python3 pipe_1.py</text>
<rect x="330" y="78" width="600" height="26" fill="#f2f2f2"/>
<rect x="930.0" y="78" width="3" height="26" fill="#999"/>
<rect x="330.0" y="80" width="2" height="22" fill="#000"><title>0.000 s: Spam 0</title></rect>
<rect x="780.0" y="80" width="2" height="22" fill="#000"><title>1.500 s: Spam 1</title></rect>
<text x="330.0" y="122" text-anchor="middle">0 s</text>
<text x="630.0" y="122" text-anchor="middle">1 s</text>
<text x="930.0" y="122" text-anchor="middle">2 s</text>
</svg>
"##;

    #[test]
    fn mask_hides_times_and_pids_but_not_small_numbers() {
        bounded();
        assert_eq!(
            mask("Parent 20617 got [b'Spam 0'] at 1795445934.7318056"),
            "Parent <pid> got [b'Spam 0'] at <time>"
        );
        assert_eq!(mask("Hello 1 from parent 42"), "Hello 1 from parent <pid>");
        assert_eq!(mask("at 1795445934 and 2.5"), "at <time> and 2.5");
        assert_eq!(mask("über 7 ünd 123456789.5x"), "über 7 ünd <time>x");
        assert_eq!(mask("12345678 12.5 99"), "<pid> 12.5 <pid>");
        // A point that is not a decimal point: the end of a sentence.
        assert_eq!(mask("Hello 42. Bye 43."), "Hello <pid>. Bye <pid>.");
    }

    #[test]
    fn compare_measures_cadence_from_each_sides_first_line() {
        bounded();
        let original = [line(40, "a 1"), line(1040, "b 2"), line(3040, "c")];
        let lesson = [line(2, "a 1"), line(1010, "b 2"), line(3002, "d")];
        let verdict = compare(&original, &lesson, Duration::from_millis(50));
        assert_eq!(verdict.equal, 2);
        assert!(verdict.rows[2].differs);
        assert_eq!(verdict.worst, Some((Duration::from_millis(8), 2)));
        assert!(!verdict.is_equal());
        // On a tie, the first line with the largest difference is named.
        let original = [line(0, "a"), line(1000, "b"), line(2000, "c")];
        let lesson = [line(0, "a"), line(1010, "b"), line(2010, "c")];
        let verdict = compare(&original, &lesson, Duration::from_millis(50));
        assert_eq!(verdict.worst, Some((Duration::from_millis(10), 2)));
    }

    #[test]
    fn a_missing_line_differs_and_nothing_at_all_is_not_equal() {
        bounded();
        let verdict = compare(&[line(0, "x")], &[], Duration::from_millis(50));
        assert_eq!((verdict.equal, verdict.rows.len()), (0, 1));
        assert!(!compare(&[], &[], Duration::from_millis(50)).is_equal());
        let same = compare(&[line(0, "x")], &[line(5, "x")], Duration::ZERO);
        assert!(same.is_equal());
    }

    #[test]
    fn cadence_beyond_the_tolerance_is_a_difference() {
        bounded();
        let original = [line(0, "a"), line(1000, "b")];
        let late = [line(0, "a"), line(1051, "b")];
        assert!(!compare(&original, &late, Duration::from_millis(50)).is_equal());
        let close = [line(0, "a"), line(1050, "b")];
        assert!(compare(&original, &close, Duration::from_millis(50)).is_equal());
    }
}
