//! socketpair-demo: one socketpair, a parent and a forked child, both ways.

use lesson_test::faults::as_nobody;
use lesson_test::{
    Leftovers, Lesson, assert_usage_errors, check_transcript_of, number_after,
    parse_bytes_repr, process, send,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_socketpair-demo");

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The bytes of every `Child <pid> read <n> bytes: b'...'` note, in order.
fn reads(stderr: &str) -> Vec<Vec<u8>> {
    stderr
        .lines()
        .filter_map(|line| line.split_once(" bytes: ").map(|(_, repr)| repr))
        .map(parse_bytes_repr)
        .collect()
}

#[test]
fn the_child_answers_each_line_and_after_eof_still_says_goodbye() {
    let run = lesson().args(["--messages", "3"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let parent = run.pid;
    let child = number_after(&run.stderr, "forked child ");
    let mut expected: Vec<String> = (1..=3)
        .map(|i| format!("Parent got: \"Child {child} got: [Hello {i} from parent {parent}]\""))
        .collect();
    expected.push(format!(
        "Parent got: \"Child {child} of {parent} saw EOF; goodbye\""
    ));
    assert_eq!(run.texts(), expected, "{}", run.transcript());
    assert!(
        run.stderr
            .contains(&format!("child {child} exited with status 0")),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_socket_is_a_byte_stream_reads_do_not_follow_writes() {
    let run = lesson().args(["--messages", "4", "--read-size", "7"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let reads = reads(&run.stderr);
    assert!(
        reads.iter().all(|read| read.len() <= 7),
        "{}",
        run.transcript()
    );
    let parent = run.pid;
    let sent: String = (1..=4)
        .map(|i| format!("Hello {i} from parent {parent}\n"))
        .collect();
    assert_eq!(reads.concat(), sent.as_bytes(), "{}", run.transcript());
    // Framing puts the lines back together: four whole answers and the goodbye.
    assert_eq!(run.lines.len(), 5, "{}", run.transcript());
}

#[test]
fn one_read_can_hold_several_messages() {
    let run = lesson().args(["--messages", "100"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let reads = reads(&run.stderr);
    assert!(
        reads
            .iter()
            .any(|read| read.iter().filter(|b| **b == b'\n').count() > 1),
        "no read held two messages in 100\n{}",
        run.transcript()
    );
    assert_eq!(run.lines.len(), 101, "{}", run.transcript());
}

#[test]
fn closing_instead_of_shutting_down_loses_the_answers() {
    let run = lesson().arg("--close-instead").run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.lines.is_empty(), "{}", run.transcript());
    assert!(
        run.stderr.contains("answer: write parent: Broken pipe")
            || run.stderr.contains("Connection reset by peer"),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("exited with status 1"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_closed_stdout_is_reported_and_the_child_reaped() {
    let script =
        r#"{ sleep 0.5; exec "$0"; } | true; echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = Lesson::new("bash").args(["-c", script, BIN]).run();
    assert!(
        run.stderr.contains("write stdout: Broken pipe"),
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn a_full_stderr_changes_nothing_and_help_into_a_full_stdout_fails() {
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" 2>/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" --help >/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
}

#[test]
fn bad_options_exit_2_naming_the_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--messages", "0"],
            "--messages \"0\": must be from 1 to 100",
        ),
        (&["--messages", "101"], "must be from 1 to 100"),
        (
            &["--read-size", "0"],
            "--read-size \"0\": must be from 1 to 65536",
        ),
        (&["--read-size", "65537"], "must be from 1 to 65536"),
        (&["--close-instead=yes"], "does not take a value"),
        (
            &["--pause", "3601"],
            "--pause \"3601\": must be from 0 to 3600",
        ),
        (&["--pause", "-1"], "--pause"),
        (&["spam"], "unexpected argument \"spam\""),
    ];
    assert_usage_errors(lesson, "Usage: socketpair-demo", cases);
}

#[test]
fn the_edges_of_the_ranges_work() {
    let run = lesson()
        .args(["--messages", "100", "--read-size", "65536"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 101, "{}", run.transcript());
    let run = lesson().args(["--messages", "1", "--read-size", "1"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 2, "{}", run.transcript());
}

#[test]
fn help_lists_every_option() {
    let run = lesson().arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    for needle in [
        "Usage: socketpair-demo",
        "--messages N",
        "--read-size N",
        "--close-instead",
        "--show-fds",
    ] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    // stdout only: the child's read notes on stderr depend on timing.
    let run = lesson()
        .shown_as("cargo run -q -p sockets --bin socketpair-demo --")
        .args(["--messages", "2"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/sockets-socketpair.txt");
    check_transcript_of(&path, &run);
}

#[test]
fn a_fork_that_fails_is_reported_and_leaves_nothing() {
    // RLIMIT_NPROC does not bind root: run as nobody, allowed one process (itself).
    let Some(nobody) = as_nobody(BIN) else { return };
    let run = nobody
        .args(["bash", "-c", "ulimit -u 1; exec \"$0\"", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains("fork: EAGAIN"), "{}", run.transcript());
    assert!(run.lines.is_empty(), "{}", run.transcript());
}

/// The demo paused before "no more": the child has answered and waits for more.
fn paused(pause: &str) -> (lesson_test::Running, i32) {
    let mut running = lesson().args(["--pause", pause]).spawn();
    // The child's note on its read: it has the messages, answers, and waits for more.
    let stderr = running.wait_for_stderr(" bytes: ");
    let child = number_after(&stderr, "forked child ");
    (running, child)
}

#[test]
fn every_stop_signal_ends_parent_and_child_while_they_wait() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let (running, child) = paused("60");
        let run = running.stop_with(signal);
        // The parent's socket closes with answers unread in it, which resets the
        // child's connection (status 1), unless the parent's SIGTERM is first (143).
        let ended =
            [1, 143].map(|s| format!("child {child} exited with status {s}"));
        assert!(
            ended.iter().any(|text| run.stderr.contains(text)),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_child_stopped_by_a_signal_is_reported_with_its_status() {
    let (running, child) = paused("1");
    send(child, Signal::SIGHUP);
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains(&format!("child {child} exited with status 129")),
        "{}",
        run.transcript()
    );
}

#[test]
fn killing_the_parent_ends_the_child() {
    let (running, child) = paused("60");
    running.signal(Signal::SIGKILL);
    // The child reads EOF (its parent's end closed with the parent), says goodbye into
    // a closed socket, and exits; nobody is left to reap it.
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
    assert!(
        process(child).is_none_or(|p| p.state == 'Z'),
        "child still runs"
    );
}

#[test]
fn answers_left_unread_by_a_closing_parent_reset_the_childs_connection() {
    // The pause gives the child time to answer before the parent closes: its answers
    // are still unread in the parent's socket, so the close resets the connection and
    // the child's next read fails (it does not see EOF and try its goodbye).
    let run = lesson().args(["--close-instead", "--pause", "0.5"]).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let child = number_after(&run.stderr, "forked child ");
    let reset = format!("Child {child}: read parent: Connection reset by peer");
    assert!(run.stderr.contains(&reset), "{}", run.transcript());
    assert!(run.lines.is_empty(), "{}", run.transcript());
    assert!(!run.stderr.contains("Broken pipe"), "{}", run.transcript());
    assert!(
        run.stderr
            .contains(&format!("child {child} exited with status 1")),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_pause_does_not_count_against_the_conversations_time_limit() {
    // The time limit (10 s) counts from the end of --pause: a pause of half of it or
    // more leaves the parent as long to read the answers as no pause at all.
    let run = lesson().args(["--pause", "5"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    assert!(
        run.texts()[2].ends_with("saw EOF; goodbye\""),
        "{}",
        run.transcript()
    );
}
