//! The book's claims about the documents' own Python programs, measured by running
//! them.
//!
//! They need `../shared/originals/` beside the workspace (not in a fresh clone) and
//! `python3`; without them each test says it skipped and passes. Every run removes
//! `PYTHONUNBUFFERED` (these machines export it, and it hides all buffering).
//! Python's waits are the document's own 3 s, so these tests take 12 to 15 s each.

use lesson_test::{Lesson, TempDir, TimedLine};
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bidir-spawn");

/// The originals' folder, or `None` (with the reason printed) when a test cannot
/// run.
fn originals() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/originals");
    if !dir.join("pipes.py").exists() {
        println!("skipped: {} does not exist (a fresh clone)", dir.display());
        return None;
    }
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if !python.is_ok_and(|out| out.status.success()) {
        println!("skipped: python3 is not installed");
        return None;
    }
    Some(dir)
}

/// Copies `name` from the originals into `dir`, without its `sys.stdout.flush()`
/// lines if `flush` is false, and returns the copy's path.
fn copy(originals: &Path, name: &str, dir: &TempDir, flush: bool) -> PathBuf {
    let text = std::fs::read_to_string(originals.join(name)).expect("an original");
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| flush || line.trim() != "sys.stdout.flush()")
        .collect();
    assert!(
        flush || kept.len() < text.lines().count(),
        "no flush in {name}"
    );
    let path = dir.path().join(name);
    std::fs::write(&path, kept.join("\n") + "\n").expect("write the copy");
    path
}

/// When each `Parent got` line arrived, in seconds since the start.
fn reply_times(lines: &[TimedLine]) -> Vec<f64> {
    lines
        .iter()
        .filter(|line| line.text.starts_with("Parent got"))
        .map(|line| line.at.as_secs_f64())
        .collect()
}

/// The lesson's parent with the document's child, without PYTHONUNBUFFERED.
fn with_python_child(child: &Path, options: &[&str]) -> Lesson {
    Lesson::new("env")
        .args(["-u", "PYTHONUNBUFFERED", BIN])
        .args(options)
        .args(["--", "python3"])
        .arg(child)
        .arg("spam")
        .merge_stderr()
        .deadline(Duration::from_secs(40))
}

// Python takes a while to start (up to 2 s on a loaded machine), which shifts every
// reply; the gap between the two replies does not depend on it. With its flush the
// child answers 6 s after each hello (3 s, read, 3 s, reply): the gap is 6 s.
// Without it, reply 1 leaves at the child's next input() and reply 2 at its exit, 3
// s apart.

#[test]
fn python_child_with_its_flush_replies_6_s_after_each_hello() {
    let Some(originals) = originals() else { return };
    let dir = TempDir::new("bidir-python");
    let child = copy(&originals, "pipes_test_child.py", &dir, true);
    let run = with_python_child(&child, &["--reply-timeout", "20"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let times = reply_times(&run.lines);
    assert!(times.len() == 2 && times[1] - times[0] >= 5.5, "{times:?}");
}

#[test]
fn python_child_without_its_flush_misses_the_default_8_s_timeout() {
    // The reply waits in Python's buffer until the child's next input() flushes it,
    // at 9 s: one second after the default limit (3 s + 3 s + 2 s at speed 1).
    let Some(originals) = originals() else { return };
    let dir = TempDir::new("bidir-python");
    let child = copy(&originals, "pipes_test_child.py", &dir, false);
    let run = with_python_child(&child, &[]).run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    let text = run.stdout_text();
    assert!(text.contains("no reply within 8s"), "{text}");
    assert!(!text.contains("Parent got"), "{text}");
}

#[test]
fn python_child_without_its_flush_replies_at_its_next_input_given_time() {
    let Some(originals) = originals() else { return };
    let dir = TempDir::new("bidir-python");
    let child = copy(&originals, "pipes_test_child.py", &dir, false);
    let run = with_python_child(&child, &["--reply-timeout", "20"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let times = reply_times(&run.lines);
    assert!(times.len() == 2, "{}", run.transcript());
    let gap = times[1] - times[0];
    assert!(
        times[0] >= 8.8 && (2.5..5.0).contains(&gap),
        "replies at {times:?}"
    );
}

/// Runs the documents' pipes.py with every flush removed from both programs, its
/// stdout a terminal (`script` gives it a pseudo-terminal) or a pipe, for at most
/// 20 s.
fn pipes_py_without_flushes(on_a_terminal: bool) -> Option<(String, Vec<f64>)> {
    let originals = originals()?;
    let dir = TempDir::new("bidir-python");
    copy(&originals, "pipes.py", &dir, false);
    copy(&originals, "pipes_test_child.py", &dir, false);
    let command =
        "env -u PYTHONUNBUFFERED timeout 20 python3 pipes.py; echo status $?";
    let lesson = if on_a_terminal {
        Lesson::new("script").args(["-qfec", command, "/dev/null"])
    } else {
        Lesson::new("sh").args(["-c", command])
    };
    let run = lesson
        .current_dir(dir.path())
        .merge_stderr()
        .deadline(Duration::from_secs(40))
        .run();
    Some((run.stdout_text(), reply_times(&run.lines)))
}

#[test]
fn pipes_py_without_flushes_deadlocks_in_round_two_when_stdout_is_a_pipe() {
    let Some((text, times)) = pipes_py_without_flushes(false) else {
        return;
    };
    // The parent's readline() does not flush Hello 2: `timeout` ends the deadlock.
    assert!(text.contains("status 124"), "{text}");
    assert_eq!(times.len(), 1, "{text}");
}

#[test]
fn pipes_py_without_flushes_completes_when_stdout_is_a_terminal() {
    let Some((text, times)) = pipes_py_without_flushes(true) else {
        return;
    };
    // sys.stdout was made line-buffered at start-up (a terminal), and stays so
    // after the dup2 onto the pipe: Hello 2 goes out at its newline.
    assert!(text.contains("status 0"), "{text}");
    assert!(
        times.len() == 2 && times[0] >= 8.8 && times[1] >= 11.8,
        "{times:?}"
    );
}
