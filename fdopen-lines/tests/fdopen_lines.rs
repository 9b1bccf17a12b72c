//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::faults::{StalledStdout, as_nobody, stop_process};
use lesson_test::{
    Finished, Leftovers, Lesson, TempDir, assert_matches_document,
    assert_usage_errors, check_transcript_of, number_after, process, send,
};
use nix::fcntl::{OFlag, open};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::mkfifo;
use std::path::Path;
use std::thread::sleep;
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

/// The text between `[` and `] at ` in one output line.
fn message(line: &str) -> &str {
    let start = line.find('[').expect("a [") + 1;
    let end = line.rfind("] at ").expect("a ] at");
    &line[start..end]
}

/// Runs the lesson with `--from-stdin`, feeding it `input`.
fn from_stdin(input: &[u8], extra: &[&str]) -> Finished {
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
fn messages_follow_the_documents_cadence() {
    let run = lesson().args(["--count", "6", "--speed", "10"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // Load-proof bounds: message i cannot arrive before the sum of the pauses up to
    // it (a sleep is never shorter), and on any machine it comes within 3 s of that.
    // At speed 10: 0, 0.1, 0.2, 0.3, 0.4 s, then again (no gap in pipe_2).
    let mut due = Duration::ZERO;
    for (i, line) in run.lines.iter().enumerate() {
        due += Duration::from_millis(100 * (i as u64 % 5));
        assert!(
            line.at >= due && line.at <= due + Duration::from_secs(3),
            "message {i} at {:?}, due at {due:?}\n{}",
            line.at,
            run.transcript()
        );
    }
}

#[test]
fn a_dead_child_is_reported_once_instead_of_a_busy_loop() {
    let mut running = lesson().args(["--speed", "20"]).spawn();
    running.next_line().expect("a first message");
    let child = child_pid(&running.wait_for_stderr("forked child"));
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
    // 200 KiB in one line: three times the pipe's 64 KiB buffer. The child's write
    // blocks until the parent has drained part of it; nothing is lost or reordered.
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
        run.stderr.contains(
            "Error: read pipe: a line is longer than 1000 bytes (--max-line)"
        ),
        "{}",
        run.transcript()
    );
    // A line of exactly the limit is fine, with or without its newline.
    let exact = "y".repeat(1000);
    for input in [format!("{exact}\n"), exact.clone()] {
        let run = from_stdin(input.as_bytes(), &["--max-line", "1000"]);
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(
            run.texts().into_iter().map(message).collect::<Vec<_>>(),
            [&exact]
        );
    }
    // One byte more, with no newline after it, is refused.
    let run = from_stdin(format!("{exact}z").as_bytes(), &["--max-line", "1000"]);
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("longer than 1000 bytes"),
        "{}",
        run.transcript()
    );
}

#[test]
fn max_line_accepts_its_whole_range_and_nothing_else() {
    let run = from_stdin(b"a\n", &["--max-line", "1"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let run = from_stdin(b"ab\n", &["--max-line", "67108864"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let cases: &[(&[&str], &str)] = &[
        (
            &["--max-line", "0"],
            "--max-line \"0\": must be from 1 to 67108864",
        ),
        (
            &["--max-line", "67108865"],
            "--max-line \"67108865\": must be from 1",
        ),
        (
            &["--max-line", "18446744073709551615"],
            "--max-line \"18446744073709551615\": must be from 1",
        ),
    ];
    assert_usage_errors(lesson, "Usage: fdopen-lines", cases);
}

#[test]
fn seed_004_variant_greets_and_asks_how_are_you() {
    let run = lesson()
        .args(["--hello", "--count", "3", "--speed", "20"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let child = child_pid(&run.stderr);
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
    // One a second (50 ms at speed 20), and the child pauses after each: 150 ms at
    // least, however late the reader prints.
    assert!(
        run.elapsed >= Duration::from_millis(140),
        "{}",
        run.transcript()
    );
}

#[test]
fn killing_the_parent_ends_the_child_at_once_even_in_a_long_pause() {
    // At a quarter of the document's speed the child sleeps 4 s before `Spam 1`. Its
    // pause watches the pipe, so it notices the parent's death at once, well inside the
    // harness's 2 s grace for orphans.
    for args in [&["--speed", "0.25"][..], &["--hello", "--speed", "0.25"]] {
        let mut running = lesson().args(args).spawn();
        running.next_line().expect("a first message");
        let child = child_pid(&running.wait_for_stderr("forked child"));
        running.signal(Signal::SIGKILL);
        let run = running.finish_allowing(Leftovers::Orphans);
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
}

#[test]
fn killing_the_parent_ends_a_child_waiting_on_an_idle_stdin() {
    // The child's stdin is a FIFO that we keep open and never write to: it would wait
    // for ever in `read`. It waits in `poll` instead, on stdin and on the pipe.
    let dir = TempDir::new("fdopen-lines-idle");
    let path = dir.path().join("stdin");
    mkfifo(&path, Mode::S_IRWXU).expect("mkfifo");
    // Read-write: a FIFO opened so never blocks (Linux), and it is a writer that stays.
    let _writer = open(&path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .expect("open fifo");
    let mut running = Lesson::new("sh")
        .args([
            "-c",
            "exec \"$0\" --from-stdin < \"$1\"",
            BIN,
            path.to_str().unwrap(),
        ])
        .deadline(Duration::from_secs(10))
        .spawn();
    let child = child_pid(&running.wait_for_stderr("forked child"));
    sleep(Duration::from_millis(100)); // the child is in its poll now
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(Leftovers::Orphans);
    assert!(
        run.stderr.contains(&format!(
            "Child {child}: write pipe: EPIPE, the parent is gone"
        )),
        "{}",
        run.transcript()
    );
}

#[test]
fn reading_a_directory_as_stdin_names_the_call() {
    let run = in_shell(r#"exec "$0" --from-stdin < /tmp"#).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let child = child_pid(&run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "Child {child}: read stdin: Is a directory (os error 21)"
        )),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains(&format!("child {child} exited with status 1")),
        "{}",
        run.transcript()
    );
}

#[test]
fn stop_signals_end_it_within_a_second_and_end_the_child() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
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
fn a_stop_signal_ends_it_while_it_waits_for_the_rest_of_a_line() {
    // Half a line, and an idle stdin: read_until would wait for the newline for ever.
    let mut running = lesson().arg("--from-stdin").piped_stdin().spawn();
    running.write_stdin(b"half a li");
    running.wait_for_stderr("forked child");
    sleep(Duration::from_millis(100));
    let run = running.stop_with(Signal::SIGTERM);
    assert!(run.lines.is_empty(), "{}", run.transcript());
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
    let (stalled, running) = StalledStdout::start(BIN, "--speed 1000000");
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
    let (mut stalled, mut running) = StalledStdout::start(BIN, "--speed 1000000");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    stop_process(child);
    stalled.break_pipe(); // the reader leaves: the lesson's stdout is broken
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(reported_broken_stdout(&run.stderr), "{}", run.transcript());
    for needle in [
        format!("child {child} still there 500 ms after SIGTERM"),
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
    let script = r#""$0" --count 20 --speed 20 2>&1 | head -n 1
        echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script).run();
    assert_eq!(run.lines.len(), 1, "{}", run.transcript());
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
}

#[test]
fn a_full_stdout_is_reported_and_the_child_reaped() {
    for args in ["--count 3 --speed 20", "--hello --count 3 --speed 20"] {
        let run = in_shell(&format!(r#"exec "$0" {args} >/dev/full"#)).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr.contains("Error: write stdout: ENOSPC"),
            "{}",
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
    let run = in_shell(&only_stdio(r#"ulimit -n 4; exec "$0" --count 1"#)).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("Error: pipe2: EMFILE"),
        "{}",
        run.transcript()
    );
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
        (&["--count", "x"], "--count \"x\""),
        (
            &["--speed", "1e-20"],
            "--speed \"1e-20\": must be from 0.001 to 1000000",
        ),
        (&["--max-line", "x"], "--max-line \"x\""),
        (
            &["--hello", "--from-stdin"],
            "choose one of --hello and --from-stdin",
        ),
        (
            &["--from-stdin", "--count", "3"],
            "--count and --speed do not apply",
        ),
        (
            &["--from-stdin", "--speed", "3"],
            "--count and --speed do not apply",
        ),
        (&["--loud"], "unknown option --loud"),
    ];
    assert_usage_errors(lesson, "Usage: fdopen-lines", cases);
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
        "--hello",
        "--from-stdin",
        "--max-line BYTES",
        "--show-fds",
        "1 to 67108864",
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
        .shown_as("cargo run -q -p fdopen-lines --")
        .args(["--count", "6", "--speed", "20"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/fdopen-lines.txt");
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
