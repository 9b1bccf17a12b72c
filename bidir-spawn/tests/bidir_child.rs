//! bidir-child on its own: the program bidir-spawn execs, run with a pipe as stdin.

use lesson_test::{Lesson, assert_usage_errors, number_after};
use std::time::Duration;

const CHILD_BIN: &str = env!("CARGO_BIN_EXE_bidir-child");

/// The child's MAX_LINE: the longest line it reads.
const MAX_LINE: usize = 64 * 1024;

fn child() -> Lesson {
    Lesson::new(CHILD_BIN).deadline(Duration::from_secs(10))
}

#[test]
fn it_answers_two_lines_in_the_documents_format() {
    let mut running = child()
        .args(["--speed", "20", "spam"])
        .piped_stdin()
        .spawn();
    assert!(running.write_stdin(b"one\ntwo\n"));
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let me = run.pid;
    assert_eq!(
        run.stderr,
        format!("Child {me} of {} got arg: \"spam\"\n", std::process::id())
    );
    assert_eq!(
        run.texts(),
        [
            format!("Child {me} got: [one]"),
            format!("Child {me} got: [two]")
        ]
    );
}

#[test]
fn each_reply_is_flushed_at_once_unless_no_flush() {
    // At speed 5 the child waits 0.6 s before reading and 0.6 s before replying:
    // with the flush, the replies arrive 1.2 s apart; without it, both only at
    // exit.
    let gap = |extra: &[&str]| {
        let mut running = child()
            .args(["--speed", "5"])
            .args(extra)
            .arg("spam")
            .piped_stdin()
            .spawn();
        assert!(running.write_stdin(b"one\ntwo\n"));
        let run = running.finish();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(run.lines.len(), 2, "{}", run.transcript());
        run.lines[1].at.saturating_sub(run.lines[0].at)
    };
    let flushed = gap(&[]);
    assert!(
        flushed >= Duration::from_millis(900),
        "flushed: {flushed:?}"
    );
    let buffered = gap(&["--no-flush"]);
    assert!(
        buffered < Duration::from_millis(300),
        "buffered: {buffered:?}"
    );
}

#[test]
fn eof_before_a_line_is_an_error_not_a_hang() {
    let mut running = child()
        .args(["--speed", "1000", "spam"])
        .piped_stdin()
        .spawn();
    assert!(running.write_stdin(b"only one\n"));
    running.close_stdin();
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let me = number_after(&run.stderr, "Child ");
    assert!(
        run.stderr.contains(&format!(
            "Child {me}: read stdin: EOF: the parent closed the pipe"
        )),
        "{}",
        run.transcript()
    );
    assert_eq!(run.texts(), [format!("Child {me} got: [only one]")]);
}

#[test]
fn a_line_of_max_line_bytes_is_read_and_one_byte_more_is_refused() {
    for (length, accepted) in [(MAX_LINE, true), (MAX_LINE + 1, false)] {
        let mut running = child()
            .args(["--speed", "1000", "spam"])
            .piped_stdin()
            .spawn();
        let mut input = vec![b'x'; length];
        input.extend_from_slice(b"\nsecond\n");
        assert!(running.write_stdin(&input));
        running.close_stdin();
        let run = running.finish();
        if accepted {
            assert_eq!(run.code(), Some(0), "{}", run.stderr);
            assert_eq!(run.lines.len(), 2);
            assert_eq!(
                run.lines[0].text.len(),
                length
                    + "Child  got: []".len()
                    + number_after(&run.stderr, "Child ").to_string().len()
            );
        } else {
            assert_eq!(run.code(), Some(1), "{}", run.stderr);
            assert!(
                run.stderr.contains(&format!(
                    "read stdin: a line longer than {MAX_LINE} bytes"
                )),
                "{}",
                run.stderr
            );
        }
    }
}

#[test]
fn a_last_line_without_a_newline_is_answered_up_to_max_line_bytes() {
    // At EOF a line may lack its newline; the same limit holds for it.
    for (length, accepted) in [(MAX_LINE, true), (MAX_LINE + 1, false)] {
        let mut running = child()
            .args(["--speed", "1000", "spam"])
            .piped_stdin()
            .spawn();
        assert!(running.write_stdin(&vec![b'y'; length]));
        running.close_stdin();
        let run = running.finish();
        // Either way the second line never comes: exit 1.
        assert_eq!(run.code(), Some(1), "{}", run.stderr);
        let answered = run.lines.len() == 1 && run.lines[0].text.ends_with("y]");
        assert_eq!(answered, accepted, "{length}: {}", run.stderr);
    }
}

#[test]
fn a_write_to_a_closed_pipe_is_reported_and_exits_1() {
    // stdout into `true`, which exits at once: the reply meets a pipe with no
    // reader (SIGPIPE is ignored in a Rust program, so the write fails with EPIPE).
    let run = Lesson::new("sh")
        .args([
            "-c",
            "printf 'a\\nb\\n' | \"$0\" --speed 1000 spam | true",
            CHILD_BIN,
        ])
        .run();
    assert!(
        run.stderr.contains("write stdout: Broken pipe"),
        "{}",
        run.transcript()
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn bad_options_exit_2_with_usage() {
    let cases: &[(&[&str], &str)] = &[
        (&[], "takes exactly one argument, ARG"),
        (&["a", "b"], "takes exactly one argument, ARG"),
        (
            &["--speed", "0", "spam"],
            "--speed \"0\": must be from 0.001 to 1000000",
        ),
        (&["--verbose", "spam"], "unknown option --verbose"),
    ];
    assert_usage_errors(child, "Usage: bidir-child", cases);
    // After `--`, a word with dashes is the argument.
    let mut running = child()
        .args(["--speed", "1000", "--", "--spam"])
        .piped_stdin()
        .spawn();
    assert!(running.write_stdin(b"1\n2\n"));
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(run.stderr.contains("got arg: \"--spam\""), "{}", run.stderr);
    // A lone `-` is a word too.
    let mut running = child().args(["--speed", "1000", "-"]).piped_stdin().spawn();
    assert!(running.write_stdin(b"1\n2\n"));
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(run.stderr.contains("got arg: \"-\""), "{}", run.stderr);
}
