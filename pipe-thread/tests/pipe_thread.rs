//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::faults::{StalledStdout, as_nobody};
use lesson_test::{
    Lesson, assert_matches_document, assert_usage_errors, check_transcript_of,
    children_of, parse_bytes_repr,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};

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
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

/// The lesson run by a shell script (`$0` is the lesson), for redirections and limits.
fn in_shell(script: &str) -> Lesson {
    Lesson::new("bash")
        .args(["-c", script, BIN])
        .deadline(Duration::from_secs(10))
}

/// `script`, run with only descriptors 0, 1 and 2 open: a descriptor limit then means
/// the same wherever the test runs (a test runner may leak descriptors to its children).
fn only_stdio(script: &str) -> String {
    format!(
        r#"for fd in /proc/$$/fd/*; do n=${{fd##*/}}; [ "$n" -gt 2 ] && eval "exec $n>&-"; done
        {script}"#
    )
}

/// The bytes one read returned: the repr between `[` and `] at `.
fn chunk(line: &str) -> Vec<u8> {
    let start = line.find("[b").expect("a bytes repr") + 1;
    let end = line.rfind("] at ").expect("the end of the repr");
    parse_bytes_repr(&line[start..end])
}

/// Whether the lesson reported that its stdout lost its reader: seen by `poll` while
/// it waited (POLLERR), or, rarely, by the `write` that followed a ready poll.
fn reported_broken_stdout(stderr: &str) -> bool {
    stderr.contains("Error: poll stdout: POLLERR: its reader is gone")
        || stderr.contains("Error: write stdout: EPIPE: Broken pipe")
}

/// Checks that `count` `Spam n` messages arrived in order and on the document's
/// cadence at speed 10: 0, 0.1, 0.2, 0.3, 0.4 s, then again, each after `gap_ms`.
/// Load-proof bounds: a message cannot arrive before the sum of the pauses up to it
/// (a sleep is never shorter), and on any machine it comes within 3 s of that. A line
/// may hold several messages (a pipe is a byte stream): it is due with its last one.
fn assert_arrive_on_cadence(
    run: &lesson_test::Finished,
    count: u64,
    gap_ms: u64,
    received: impl Fn(&str) -> String,
) {
    let due = |message: u64| -> Duration {
        (0..=message)
            .map(|i| Duration::from_millis(100 * (i % 5) + gap_ms))
            .sum()
    };
    let sent: String = (0..count).map(|i| format!("Spam {}", i % 5)).collect();
    let mut got = String::new();
    let mut seen = 0;
    for line in &run.lines {
        let first = seen;
        let chunk = received(&line.text);
        seen += chunk.matches("Spam ").count() as u64;
        got.push_str(&chunk);
        assert!(
            seen > first
                && line.at >= due(seen - 1)
                && line.at <= due(first) + Duration::from_secs(3),
            "messages {first}..{seen} at {:?}, due at {:?}\n{}",
            line.at,
            due(seen - 1),
            run.transcript()
        );
    }
    assert_eq!(got, sent, "{}", run.transcript());
}

#[test]
fn output_matches_the_documents_transcript_with_a_single_pid() {
    // Five messages: the sixth, `Spam 0` right after `Spam 4`, is only 10 ms behind
    // it, and on a loaded machine the two can come in one read.
    let run = lesson().args(["--count", "5", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // Masking the lesson's own pid turns every line into the document's: the threads
    // share one process, so there is no other pid.
    assert_matches_document(&run, &DOCUMENT[..5], 14472);
}

#[test]
fn messages_follow_the_documents_cadence_with_the_gap() {
    let run = lesson().args(["--count", "11", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // The 10 ms gap is not shortened by --speed.
    assert_arrive_on_cadence(&run, 11, 10, |line| {
        String::from_utf8(chunk(line)).expect("ASCII")
    });
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
    // Without the gap, `Spam 4` and `Spam 0` are written back to back: some reads merge.
    assert!(
        run.texts()
            .iter()
            .any(|line| line.contains("[b'Spam 4Spam 0']")),
        "{}",
        run.transcript()
    );
}

#[test]
fn stop_signals_end_it_within_a_second() {
    for (signal, name) in [
        (Signal::SIGINT, "SIGINT"),
        (Signal::SIGTERM, "SIGTERM"),
        (Signal::SIGHUP, "SIGHUP"),
    ] {
        // No --count: like the document, it would run forever.
        let mut running = lesson().spawn();
        running.next_line().expect("a first message");
        running
            .next_line()
            .expect("a second message (after the 1 s pause)");
        let run = running.stop_with(signal);
        assert!(
            run.stderr
                .contains(&format!("stopped by {name} after 2 messages")),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_stop_signal_ends_it_while_blocked_on_a_stalled_stdout() {
    // `pipe-thread --speed 1e6 --no-gap | sleep 25`: the main thread waits to write.
    let (stalled, running) = StalledStdout::start(BIN, "--speed 1000000 --no-gap");
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("stopped by SIGTERM"),
        "{}",
        run.transcript()
    );
    drop(stalled);
}

#[test]
fn a_broken_stdout_is_noticed_while_waiting_on_the_pipe() {
    // The writer sleeps 4 s before `Spam 1` at this speed; the reader of our stdout
    // leaves before: the main thread notices at once, not at its next line.
    let script = r#""$0" --speed 0.25 | head -n 1
        echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).deadline(Duration::from_secs(3)).run();
    assert!(
        run.stderr
            .contains("Error: poll stdout: POLLERR: its reader is gone"),
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    assert!(run.elapsed < Duration::from_secs(2), "{}", run.transcript());
}

#[test]
fn a_second_stop_signal_ends_it_at_once_with_its_own_status() {
    // A writer deaf to the stop flag (like the original's thread) keeps the clean stop
    // waiting until its next write, up to 2 s away here; the second signal does not wait.
    for (second, status) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut running = lesson().arg("--writer-ignores-stop").spawn();
        running.next_line().expect("a first message");
        running
            .next_line()
            .expect("a second message (after the 1 s pause)");
        running.signal(Signal::SIGINT);
        running.wait_for_stderr("SIGINT: ending the writer thread");
        let sent = Instant::now();
        running.signal(second);
        let run = running.finish();
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{}",
            run.transcript()
        );
        assert_eq!(run.code(), Some(status), "{}", run.transcript());
        assert!(
            run.stderr.contains(&format!(
                "pipe-thread: stopped by {second} (a second stop signal: at once)"
            )),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn one_stop_signal_waits_for_a_deaf_writer_and_then_ends_cleanly() {
    let mut running = lesson()
        .args(["--writer-ignores-stop", "--speed", "2"])
        .spawn();
    running.next_line().expect("a first message");
    running.next_line().expect("a second message");
    let sent = Instant::now();
    running.signal(Signal::SIGINT);
    let run = running.finish();
    // It ended with the writer's next write, about 1 s later, into the closed pipe.
    assert!(
        sent.elapsed() >= Duration::from_millis(600),
        "{}",
        run.transcript()
    );
    assert_eq!(run.code(), Some(130), "{}", run.transcript());
    assert!(
        run.stderr.contains("pipe-thread: stopped by SIGINT\n"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_second_sigint_right_after_the_first_ends_it_with_130() {
    let mut running = lesson().spawn();
    running.next_line().expect("a first message");
    running.signal(Signal::SIGINT);
    running.stop_with(Signal::SIGINT);
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
    // `pipe-thread | head -n 1`: the main thread stops reading and asks the writer to
    // stop; the error is reported and the exit status is 1, with no panic.
    let script =
        r#""$0" --speed 20 | head -n 1; echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(reported_broken_stdout(&run.stderr), "{}", run.transcript());
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn stdout_and_stderr_into_a_closed_pipe_exit_1_without_a_panic() {
    let script = r#""$0" --count 20 --speed 20 2>&1 | head -n 1
        echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
}

#[test]
fn a_full_stdout_is_reported() {
    let run = in_shell(r#"exec "$0" --count 3 --speed 20 >/dev/full"#).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: write stdout: ENOSPC"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_full_stderr_changes_nothing_but_the_notes() {
    let run = in_shell(r#"exec "$0" --count 3 --speed 20 2>/dev/full"#).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    // Stopped by a signal with nowhere to say so: still the right status.
    let mut running = in_shell(r#"exec "$0" 2>/dev/full"#).spawn();
    running.next_line().expect("a first message");
    running.signal(Signal::SIGTERM);
    let run = running.finish();
    assert_eq!(run.code(), Some(143), "{}", run.transcript());
}

#[test]
fn help_into_a_full_stdout_is_an_error_not_a_panic() {
    let run = in_shell(r#"exec "$0" --help >/dev/full"#).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("write stdout: No space left"),
        "{}",
        run.transcript()
    );
}

#[test]
fn running_out_of_descriptors_is_reported() {
    // Four: the signal sockets do not fit; eight: they do (five descriptors, one
    // closed again), the pipe does not.
    for (limit, error) in [
        (4, "Error: install signal handlers: Too many open files"),
        (8, "Error: pipe: Too many open files"),
    ] {
        let run = in_shell(&only_stdio(&format!(
            r#"ulimit -n {limit}; exec "$0" --count 1"#
        )))
        .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains(error), "{error}\n{}", run.transcript());
    }
}

#[test]
fn a_thread_that_cannot_be_started_is_reported() {
    // RLIMIT_NPROC counts threads too. It does not bind root: run as `nobody`, allowed
    // one task (the main thread).
    let Some(nobody) = as_nobody(BIN) else { return };
    let run = nobody
        .args(["prlimit", "--nproc=1:1", BIN, "--count", "1"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "Error: spawn writer thread: Resource temporarily unavailable"
        ),
        "{}",
        run.transcript()
    );
}

#[test]
fn it_is_one_process_with_no_children() {
    let mut running = lesson().args(["--speed", "20"]).spawn();
    running.next_line().expect("a first message");
    assert!(
        children_of(running.pid()).is_empty(),
        "a thread is not a process"
    );
    let threads = std::fs::read_dir(format!("/proc/{}/task", running.pid()))
        .expect("/proc/<pid>/task")
        .count();
    assert_eq!(threads, 2, "the main thread and the writer");
    running.stop_with(Signal::SIGINT);
}

#[test]
fn bad_options_exit_2_with_usage_naming_the_option() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--writer-panics-after"],
            "--writer-panics-after needs a value",
        ),
        (
            &["--writer-panics-after", "-1"],
            "--writer-panics-after \"-1\"",
        ),
        (&["--speed", "fast"], "--speed \"fast\""),
        (
            &["--speed", "1e-20"],
            "--speed \"1e-20\": must be from 0.001 to 1000000",
        ),
        (&["--writer-ignores-stop=1"], "does not take a value"),
        (&["now"], "unexpected argument \"now\""),
    ];
    assert_usage_errors(lesson, "Usage: pipe-thread", cases);
}

#[test]
fn help_lists_the_options_ranges_and_exit_statuses() {
    let run = lesson().arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    // Layout and completeness are checked for every binary by lesson-test's help
    // test; here, what this lesson's help must say.
    assert!(help.starts_with("Usage: "), "{help}");
    for needle in [
        "--writer-panics-after N",
        "--writer-ignores-stop",
        "--show-fds",
        "Exit status",
        "130",
        "a second",
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
        .shown_as("cargo run -q -p pipe-thread --")
        .args(["--count", "5", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/pipe-thread.txt");
    check_transcript_of(&path, &run);
}
