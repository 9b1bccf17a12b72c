//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::{
    Leftovers, Lesson, assert_matches_document, assert_usage_errors,
    check_transcript, number_after, parse_bytes_repr, process, send,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_anon-pipe");

/// The first lines of the document's transcript of pipe_1.py (pid 9788), as facts: the
/// output format, and the times at which the reads happened.
const DOCUMENT: &[&str] = &[
    "Parent 9788 got [b'Spam 0'] at 1628658450.6990933",
    "Parent 9788 got [b'Spam 1'] at 1628658451.710451",
    "Parent 9788 got [b'Spam 2'] at 1628658453.7227986",
    "Parent 9788 got [b'Spam 3'] at 1628658456.7358887",
    "Parent 9788 got [b'Spam 4'] at 1628658460.7503185",
    "Parent 9788 got [b'Spam 0'] at 1628658460.76058",
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The child's pid, from the parent's `Parent <pid> forked child <pid>` note on stderr.
fn child_pid(stderr: &str) -> i32 {
    number_after(stderr, "forked child ")
}

/// The bytes one read returned, as text: the repr between `[` and `] at `.
fn unrepr(line: &str) -> String {
    let start = line.find("[b").expect("a bytes repr in the line") + 1;
    let end = line.rfind("] at ").expect("the end of the repr");
    String::from_utf8(parse_bytes_repr(&line[start..end])).expect("ASCII messages")
}

#[test]
fn output_matches_the_documents_transcript_line_for_line() {
    let run = lesson().args(["--count", "6", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_matches_document(&run, DOCUMENT, 9788);
    // The time is Python's time.time(): seconds since the epoch, with a fraction.
    for line in run.texts() {
        let time = line.rsplit(" at ").next().unwrap();
        let seconds: f64 = time.parse().expect("a float after ' at '");
        assert!(seconds > 1.6e9 && time.contains('.'), "{line}");
    }
}

#[test]
fn messages_follow_the_documents_cadence() {
    // At speed 10 the child waits 0, 0.1, 0.2, 0.3, 0.4, 0, 0.1 ... s before each message.
    let speed = 10.0;
    let run = lesson().args(["--count", "11", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let expected: Vec<String> =
        (0..11).map(|i| format!("b'Spam {}'", i % 5)).collect();
    let got: Vec<String> = run
        .texts()
        .iter()
        .map(|l| format!("b'{}'", unrepr(l)))
        .collect();
    assert_eq!(got, expected, "{}", run.transcript());
    for (i, pair) in run.lines.windows(2).enumerate() {
        let wait = (i + 1) % 5; // the document's pause before message i + 1, in seconds
        let expected = Duration::from_secs_f64(wait as f64 / speed);
        let gap = pair[1].at - pair[0].at;
        // Generous bounds: a sleep is never shorter, a busy machine may make it longer.
        assert!(
            gap >= expected.mul_f64(0.8)
                && gap <= expected + Duration::from_millis(400),
            "message {}: {gap:?} after the previous one, expected about {expected:?}\n{}",
            i + 1,
            run.transcript()
        );
    }
}

#[test]
fn nothing_is_lost_when_reads_merge_without_the_gap() {
    // --no-gap: `Spam 4` and `Spam 0` are written back to back, so a read often returns both.
    // It is a race (the parent may wake up between the two writes), so give it 20 chances.
    let run = lesson()
        .args(["--count", "100", "--speed", "100", "--no-gap"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let received: String = run.texts().iter().map(|line| unrepr(line)).collect();
    let sent: String = (0..100).map(|i| format!("Spam {}", i % 5)).collect();
    assert_eq!(received, sent, "{}", run.transcript());
    // The flaw the gap hides: twenty 4 -> 0 transitions, and at least one became one read.
    assert!(
        run.texts()
            .iter()
            .any(|line| line.contains("[b'Spam 4Spam 0']")),
        "no merged read in twenty chances\n{}",
        run.transcript()
    );
}

#[test]
fn child_is_reaped_and_reported_when_count_is_reached() {
    let run = lesson().args(["--count", "3", "--speed", "20"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    let child = child_pid(&run.stderr);
    assert!(
        run.stderr
            .contains(&format!("child {child} exited with status 0")),
        "{}",
        run.transcript()
    );
    // `run()` has already checked that the process group is empty: the child is neither
    // running nor a zombie.
}

#[test]
fn killing_the_parent_ends_the_child() {
    let mut running = lesson().args(["--speed", "20"]).spawn();
    running.next_line().expect("a first message");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    running.signal(Signal::SIGKILL);
    // The child's next write (at most 0.2 s away) fails with EPIPE and it stops. With its
    // parent gone, nobody reaps it, so a zombie may remain; nothing may still run.
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(
        run.code(),
        None,
        "the parent was killed\n{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains(&format!("Child {child}: write pipe: EPIPE")),
        "{}",
        run.transcript()
    );
    assert!(
        process(child).is_none_or(|p| p.state == 'Z'),
        "child still runs"
    );
}

#[test]
fn killing_the_child_ends_the_parent_with_a_report() {
    for (signal, name) in
        [(Signal::SIGKILL, "SIGKILL"), (Signal::SIGTERM, "SIGTERM")]
    {
        let mut running = lesson().args(["--speed", "20"]).spawn();
        running.next_line().expect("a first message");
        let child = child_pid(&running.wait_for_stderr("forked child"));
        send(child, signal);
        let run = running.finish();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr
                .contains(&format!("child {child} killed by {name}")),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn closed_stdout_is_reported_and_the_child_reaped() {
    // `anon-pipe | head -n 1`: once head exits, the parent's next print fails with EPIPE.
    // Rust ignores SIGPIPE, so without care `println!` would panic (exit 101).
    let script = r#""$0" --speed 20 | head -n 1; echo "anon-pipe status ${PIPESTATUS[0]}" >&2"#;
    let run = Lesson::new("bash").args(["-c", script, BIN]).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(
        run.stderr.contains("write stdout: Broken pipe"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("anon-pipe status 1"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("killed by SIGTERM"),
        "{}",
        run.transcript()
    );
}

#[test]
fn bad_options_exit_2_with_usage_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (&["--count"], "--count needs a value"),
        (&["--count", "many"], "--count \"many\""),
        (&["--count", "0"], "--count must be at least 1"),
        (
            &["--speed", "-2"],
            "--speed \"-2\": must be a positive number",
        ),
        (&["--fast"], "unknown option --fast"),
        (&["spam"], "unexpected argument \"spam\""),
        (&["--no-gap=yes"], "does not take a value"),
    ];
    assert_usage_errors(lesson, "Usage: anon-pipe", cases);
}

#[test]
fn help_prints_usage_and_exits_0() {
    let run = lesson().arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    for needle in [
        "Usage: anon-pipe",
        "--count N",
        "--speed X",
        "--no-gap",
        "Exit status",
    ] {
        assert!(
            help.contains(needle),
            "{needle} missing from --help:\n{help}"
        );
    }
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    let run = lesson()
        .args(["--count", "5", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p anon-pipe -- --count 5 --speed 20\n{}",
        run.stdout_text()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/anon-pipe.txt");
    check_transcript(&path, &text);
}
