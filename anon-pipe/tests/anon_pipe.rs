//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::faults::{StalledStdout, as_nobody, stop_process};
use lesson_test::{
    Leftovers, Lesson, assert_matches_document, assert_usage_errors,
    check_transcript_of, number_after, parse_bytes_repr, process, send,
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

/// The child's pid, from the parent's `Parent <pid> forked child <pid>` note on stderr.
fn child_pid(stderr: &str) -> i32 {
    number_after(stderr, "forked child ")
}

/// Whether the lesson reported that its stdout lost its reader: seen by `poll` while
/// it waited (POLLERR), or, rarely, by the `write` that followed a ready poll.
fn reported_broken_stdout(stderr: &str) -> bool {
    stderr.contains("Error: poll stdout: POLLERR: its reader is gone")
        || stderr.contains("Error: write stdout: EPIPE: Broken pipe")
}

/// The bytes one read returned, as text: the repr between `[` and `] at `.
fn unrepr(line: &str) -> String {
    let start = line.find("[b").expect("a bytes repr in the line") + 1;
    let end = line.rfind("] at ").expect("the end of the repr");
    String::from_utf8(parse_bytes_repr(&line[start..end])).expect("ASCII messages")
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
fn output_matches_the_documents_transcript_line_for_line() {
    // Five messages: the sixth, `Spam 0` right after `Spam 4`, is only 10 ms behind
    // it, and on a loaded machine the two can come in one read (the lesson's point).
    let run = lesson().args(["--count", "5", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_matches_document(&run, &DOCUMENT[..5], 9788);
    // The time is Python's time.time(): seconds since the epoch, with a fraction.
    for line in run.texts() {
        let time = line.rsplit(" at ").next().unwrap();
        let seconds: f64 = time.parse().expect("a float after ' at '");
        assert!(seconds > 1.6e9 && time.contains('.'), "{line}");
    }
}

#[test]
fn messages_follow_the_documents_cadence() {
    let run = lesson().args(["--count", "11", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_arrive_on_cadence(&run, 11, 10, unrepr);
}

#[test]
fn nothing_is_lost_when_reads_merge_without_the_gap() {
    // --no-gap: `Spam 4` and `Spam 0` are written back to back, so a read often returns
    // both. It is a race (the parent may wake up between the two writes), so give it 20
    // chances.
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
fn killing_the_parent_ends_the_child_at_once_even_in_a_long_pause() {
    // At a quarter of the document's speed the child sleeps 4 s before `Spam 1`. Its
    // pause watches the pipe, so it notices the parent's death at once, well inside the
    // harness's 2 s grace for orphans; a child that only found out at its next write
    // would still be running.
    let mut running = lesson().args(["--speed", "0.25"]).spawn();
    running.next_line().expect("a first message");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(
        run.code(),
        None,
        "the parent was killed\n{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains(&format!(
            "Child {child}: write pipe: EPIPE, the parent is gone"
        )),
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
fn stop_signals_end_it_within_a_second_and_end_the_child() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // The document's pace: the child is asleep for a second after `Spam 0`.
        let mut running = lesson().spawn();
        running.next_line().expect("a first message");
        let child = child_pid(&running.wait_for_stderr("forked child"));
        let run = running.stop_with(signal);
        assert!(
            run.stderr
                .contains(&format!("child {child} killed by SIGTERM")),
            "{signal}: {}",
            run.transcript()
        );
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
    }
}

#[test]
fn a_second_sigint_right_after_the_first_does_not_break_the_cleanup() {
    let mut running = lesson().spawn();
    running.next_line().expect("a first message");
    running.signal(Signal::SIGINT);
    let run = running.stop_with(Signal::SIGINT);
    assert!(
        run.stderr.contains("killed by SIGTERM"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_stop_signal_ends_it_while_blocked_on_a_stalled_stdout() {
    let (stalled, running) = StalledStdout::start(BIN, "--speed 1000000 --no-gap");
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("killed by SIGTERM"),
        "{}",
        run.transcript()
    );
    drop(stalled);
}

#[test]
fn a_stopped_child_is_killed_after_a_grace_when_stdout_breaks() {
    let (mut stalled, mut running) =
        StalledStdout::start(BIN, "--speed 1000000 --no-gap");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    stop_process(child);
    stalled.break_pipe(); // the reader leaves: the lesson's next write fails
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: poll stdout: POLLERR"),
        "{}",
        run.transcript()
    );
    for needle in [
        format!("child {child} still there 500 ms after SIGTERM"),
        "sending SIGKILL".to_owned(),
        format!("child {child} killed by SIGKILL"),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_a_grace() {
    // An ignored signal stays ignored across fork: the child inherits the shell's trap,
    // while the parent installs its own handlers.
    let script = r#"trap "" TERM
        "$0" --speed 20 | head -n 1 >/dev/null; echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert!(reported_broken_stdout(&run.stderr), "{}", run.transcript());
    for needle in [
        "after SIGTERM (stopped, or ignoring it): sending SIGKILL",
        "killed by SIGKILL",
        "status 1",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn closed_stdout_is_reported_and_the_child_reaped() {
    // `anon-pipe | head -n 1`: once head exits, the parent's next print fails with
    // EPIPE. Rust ignores SIGPIPE, so `println!` would panic here (exit 101).
    let script =
        r#""$0" --speed 20 | head -n 1; echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(reported_broken_stdout(&run.stderr), "{}", run.transcript());
    for needle in ["status 1", "killed by SIGTERM"] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn stdout_and_stderr_into_a_closed_pipe_exit_1_without_a_panic() {
    // `2>&1 | head -n 1`: the notes cannot be written either; they must not stop the
    // clean-up (the harness checks that nothing is left in the group).
    let script = r#""$0" --count 20 --speed 20 2>&1 | head -n 1
        echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
}

#[test]
fn a_full_stdout_is_reported_and_the_child_reaped() {
    let run = in_shell(r#"exec "$0" --count 3 --speed 20 >/dev/full"#).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    for needle in ["Error: write stdout: ENOSPC", "killed by SIGTERM"] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn a_full_stderr_changes_nothing_but_the_notes() {
    let run = in_shell(r#"exec "$0" --count 3 --speed 20 2>/dev/full"#).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
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
fn running_out_of_descriptors_is_reported_before_and_after_the_fork() {
    // Four descriptors: the pipe does not fit.
    let run = in_shell(&only_stdio(r#"ulimit -n 4; exec "$0" --count 1"#)).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: pipe2: EMFILE"),
        "{}",
        run.transcript()
    );
    // Six: the pipe fits, the signal socket does not; the child is already there (in
    // its first pause, as it runs with no --count), and is ended and reaped.
    let run = in_shell(&only_stdio(r#"ulimit -n 6; exec "$0""#)).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    for needle in [
        "Error: install signal handlers: Too many open files",
        "killed by SIGTERM",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn a_failing_fork_is_reported() {
    // RLIMIT_NPROC does not bind root: run as `nobody`, allowed one process (itself).
    let Some(nobody) = as_nobody(BIN) else { return };
    let run = nobody
        .args(["prlimit", "--nproc=1:1", BIN, "--count", "1"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: fork: EAGAIN"),
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
            "--speed \"-2\": must be from 0.001 to 1000000",
        ),
        (
            &["--speed", "1e-20"],
            "--speed \"1e-20\": must be from 0.001",
        ),
        (&["--speed", "1e7"], "--speed \"1e7\": must be from 0.001"),
        (&["--fast"], "unknown option --fast"),
        (&["spam"], "unexpected argument \"spam\""),
        (&["--no-gap=yes"], "does not take a value"),
        (&["--keep-ends=1"], "does not take a value"),
    ];
    assert_usage_errors(lesson, "Usage: anon-pipe", cases);
}

#[test]
fn speeds_at_the_edges_of_the_range_work() {
    let run = lesson().args(["--count", "3", "--speed", "1000000"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    // 0.001: the first message comes at once (no pause before `Spam 0`); stop there.
    let mut running = lesson().args(["--speed", "0.001"]).spawn();
    running.next_line().expect("a first message");
    running.stop_with(Signal::SIGTERM);
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
        "--count N",
        "--speed X",
        "0.001 to 1000000",
        "--no-gap",
        "--show-fds",
        "--keep-ends",
        "DELIBERATELY BROKEN",
        "3 --keep-ends: EOF",
        "Exit status",
        "130",
        "SIGKILL after 0.5 s",
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
        .shown_as("cargo run -q -p anon-pipe --")
        .args(["--count", "5", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/anon-pipe.txt");
    check_transcript_of(&path, &run);
}

#[test]
fn ctrl_c_at_a_terminal_reaching_parent_and_child_is_still_a_clean_stop() {
    // A terminal sends SIGINT to the whole foreground group, so the child (which keeps
    // the default action) may die of it before the parent reads its own signal. The
    // run must still end as a stop: exit 130, `stopped by SIGINT`. Several tries,
    // since which process acts first varies.
    for _ in 0..5 {
        let mut running = lesson().args(["--speed", "20"]).spawn();
        running.next_line().expect("a first message");
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(running.pid()),
            Signal::SIGINT,
        )
        .expect("killpg");
        let run = running.finish();
        assert_eq!(run.code(), Some(130), "{}", run.transcript());
        assert!(
            run.stderr.contains("stopped by SIGINT"),
            "{}",
            run.transcript()
        );
    }
}
