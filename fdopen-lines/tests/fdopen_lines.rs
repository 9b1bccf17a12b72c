//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::{
    Lesson, assert_matches_document, assert_usage_errors, check_transcript,
    number_after, send,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fdopen-lines");

/// The first lines of the document's transcript of pipe_2.py (pid 12480), as facts.
const DOCUMENT: &[&str] = &[
    "Parent 12480 got [Spam 0] at 1628659738.422731",
    "Parent 12480 got [Spam 1] at 1628659739.4239635",
    "Parent 12480 got [Spam 2] at 1628659741.4260693",
    "Parent 12480 got [Spam 3] at 1628659744.4292457",
    "Parent 12480 got [Spam 4] at 1628659748.4317737",
    "Parent 12480 got [Spam 0] at 1628659748.4318242",
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The text between `[` and `] at ` in one output line.
fn message(line: &str) -> &str {
    let start = line.find('[').expect("a [") + 1;
    let end = line.rfind("] at ").expect("a ] at");
    &line[start..end]
}

/// Runs the lesson with `--from-stdin`, feeding it `input`.
fn from_stdin(input: &[u8], extra: &[&str]) -> lesson_test::Finished {
    let mut running = lesson()
        .arg("--from-stdin")
        .args(extra)
        .piped_stdin()
        .spawn();
    running.write_stdin(input);
    running.close_stdin();
    running.finish()
}

#[test]
fn output_matches_the_documents_transcript_line_for_line() {
    let run = lesson().args(["--count", "6", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_matches_document(&run, DOCUMENT, 12480);
}

#[test]
fn hundreds_of_messages_arrive_in_order_one_per_line() {
    // Pauses of 0..4 ms: no gap, so only the newline keeps the messages apart.
    let run = lesson().args(["--count", "400", "--speed", "1000"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let got: Vec<&str> = run.texts().into_iter().map(message).collect();
    let sent: Vec<String> = (0..400).map(|i| format!("Spam {}", i % 5)).collect();
    assert_eq!(got, sent, "{}", run.transcript());
}

#[test]
fn a_dead_child_is_reported_once_instead_of_a_busy_loop() {
    let mut running = lesson().args(["--speed", "20"]).spawn();
    running.next_line().expect("a first message");
    let child =
        number_after(&running.wait_for_stderr("forked child"), "forked child ");
    send(child, Signal::SIGKILL);
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains(&format!("child {child} killed by SIGKILL")),
        "{}",
        run.transcript()
    );
    // The original prints `got []` forever at EOF; every line here carries a message.
    assert!(
        run.texts()
            .iter()
            .all(|line| message(line).starts_with("Spam ")),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_last_line_without_newline_is_delivered_whole() {
    let run = from_stdin(b"first\nlast words", &[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let got: Vec<&str> = run.texts().into_iter().map(message).collect();
    assert_eq!(got, ["first", "last words"], "{}", run.transcript());
}

#[test]
fn a_line_larger_than_the_pipe_arrives_whole() {
    // 200 KiB in one line: three times the pipe's 64 KiB buffer. The child's write blocks
    // until the parent has drained part of it; nothing is lost or reordered.
    let big: String = (0..200 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let input = format!("before\n{big}\nafter\n");
    let run = from_stdin(input.as_bytes(), &[]);
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let got: Vec<&str> = run.texts().into_iter().map(message).collect();
    assert_eq!(got.len(), 3, "{}", run.stderr);
    assert_eq!((got[0], got[2]), ("before", "after"));
    assert!(got[1] == big, "the big line changed on the way");
}

#[test]
fn invalid_utf8_is_a_clear_error() {
    let run = from_stdin(b"fine\nbad \xff byte\nnever printed\n", &[]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.texts().len(), 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: read pipe: a line is not UTF-8"),
        "{}",
        run.transcript()
    );
}

#[test]
fn an_over_long_line_is_refused_with_bounded_memory() {
    // A writer that never sends a newline: the reader stops at --max-line bytes.
    let endless = vec![b'x'; 10_000];
    let run = from_stdin(&endless, &["--max-line", "1000"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.lines.is_empty(), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("Error: read pipe: a line is longer than 1000 bytes"),
        "{}",
        run.transcript()
    );
    // A line of exactly the limit is fine.
    let exact = format!("{}\n", "y".repeat(1000));
    let run = from_stdin(exact.as_bytes(), &["--max-line", "1000"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
}

#[test]
fn seed_004_variant_greets_and_asks_how_are_you() {
    let run = lesson()
        .args(["--hello", "--count", "3", "--speed", "20"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let child = number_after(&run.stderr, "forked child ");
    let mut lines = run.texts();
    // Parent and child greet on the same stdout, in whichever order they get there.
    let mut greetings: Vec<&str> = lines.drain(..2).collect();
    greetings.sort();
    assert_eq!(
        greetings,
        [
            format!("hello from child {child}"),
            format!("hello from parent {} {child}", run.pid),
        ]
    );
    assert_eq!(lines, ["how are you"; 3], "{}", run.transcript());
}

#[test]
fn bad_options_exit_2_with_usage_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["--count", "x"], "--count \"x\""),
        (&["--max-line", "0"], "--max-line must be at least 1"),
        (
            &["--hello", "--from-stdin"],
            "choose one of --hello and --from-stdin",
        ),
        (
            &["--from-stdin", "--count", "3"],
            "--count and --speed do not apply",
        ),
        (&["--loud"], "unknown option --loud"),
    ];
    assert_usage_errors(lesson, "Usage: fdopen-lines", cases);
    let help = lesson().arg("--help").run();
    assert_eq!(help.code(), Some(0), "{}", help.transcript());
    assert!(help.stdout_text().contains("--max-line BYTES"));
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    let run = lesson()
        .args(["--count", "6", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p fdopen-lines -- --count 6 --speed 20\n{}",
        run.stdout_text()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/fdopen-lines.txt");
    check_transcript(&path, &text);
}
