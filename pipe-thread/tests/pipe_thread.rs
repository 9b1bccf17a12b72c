//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::{
    Lesson, assert_matches_document, assert_usage_errors, check_transcript,
    children_of, parse_bytes_repr,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_pipe-thread");

/// The first lines of the document's transcript of pipe_thread.py (pid 14472), as facts.
const DOCUMENT: &[&str] = &[
    "Parent 14472 got [b'Spam 0'] at 1628660580.0414195",
    "Parent 14472 got [b'Spam 1'] at 1628660581.052756",
    "Parent 14472 got [b'Spam 2'] at 1628660583.0650897",
    "Parent 14472 got [b'Spam 3'] at 1628660586.0784411",
    "Parent 14472 got [b'Spam 4'] at 1628660590.0928197",
    "Parent 14472 got [b'Spam 0'] at 1628660590.1031415",
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The bytes one read returned: the repr between `[` and `] at `.
fn chunk(line: &str) -> Vec<u8> {
    let start = line.find("[b").expect("a bytes repr") + 1;
    let end = line.rfind("] at ").expect("the end of the repr");
    parse_bytes_repr(&line[start..end])
}

#[test]
fn output_matches_the_documents_transcript_with_a_single_pid() {
    let run = lesson().args(["--count", "6", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // Masking the lesson's own pid turns every line into the document's: the threads
    // share one process, so there is no other pid.
    assert_matches_document(&run, DOCUMENT, 14472);
}

#[test]
fn hundreds_of_messages_arrive_with_nothing_lost_or_duplicated() {
    let run = lesson()
        .args(["--count", "500", "--speed", "1000", "--no-gap"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let received: Vec<u8> =
        run.texts().iter().flat_map(|line| chunk(line)).collect();
    let sent: String = (0..500).map(|i| format!("Spam {}", i % 5)).collect();
    assert_eq!(
        String::from_utf8_lossy(&received),
        sent,
        "{}",
        run.transcript()
    );
}

#[test]
fn sigint_ends_it_within_a_second() {
    // No --count: like the document, it would run forever.
    let mut running = lesson().spawn();
    running.next_line().expect("a first message");
    running
        .next_line()
        .expect("a second message (after the 1 s pause)");
    let run = running.stop_with(Signal::SIGINT);
    assert!(
        run.stderr.contains("stopped by SIGINT after 2 messages"),
        "{}",
        run.transcript()
    );
}

#[test]
fn sigterm_ends_it_cleanly_too() {
    let mut running = lesson().args(["--speed", "2"]).spawn();
    running.next_line().expect("a first message");
    running.stop_with(Signal::SIGTERM);
}

#[test]
fn a_panicking_writer_is_reported_by_the_main_thread() {
    let run = lesson()
        .args(["--speed", "50", "--writer-panics-after", "3"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "pipe-thread: writer thread panicked: deliberate panic after 3 messages"
        ),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_writer_whose_reader_is_gone_is_stopped_and_reported() {
    // `pipe-thread | head -n 1`: the main thread's print fails, it stops reading and asks
    // the writer to stop; the error is reported and the exit status is 1, with no panic.
    let script = r#""$0" --speed 20 | head -n 1; echo "pipe-thread status ${PIPESTATUS[0]}" >&2"#;
    let run = Lesson::new("bash").args(["-c", script, BIN]).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: write stdout: Broken pipe"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("pipe-thread status 1"),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn it_is_one_process_with_no_children() {
    let mut running = lesson().args(["--speed", "20"]).spawn();
    running.next_line().expect("a first message");
    assert!(
        children_of(running.pid()).is_empty(),
        "a thread is not a process"
    );
    running.stop_with(Signal::SIGINT);
}

#[test]
fn bad_options_exit_2_with_usage_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--writer-panics-after"],
            "--writer-panics-after needs a value",
        ),
        (&["--speed", "fast"], "--speed \"fast\": not a number"),
        (&["now"], "unexpected argument \"now\""),
    ];
    assert_usage_errors(lesson, "Usage: pipe-thread", cases);
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    let run = lesson()
        .args(["--count", "6", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p pipe-thread -- --count 6 --speed 20\n{}",
        run.stdout_text()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/pipe-thread.txt");
    check_transcript(&path, &text);
}
