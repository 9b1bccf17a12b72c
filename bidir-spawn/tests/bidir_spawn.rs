//! The lesson's promises, checked by running its binary as a subprocess with a deadline.

use lesson_test::{
    Lesson, assert_usage_errors, check_transcript, children_of, mask_number,
    number_after,
};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bidir-spawn");

/// The document's transcript of pipes.py (parent 20266, child 20267), as facts.
const DOCUMENT: &[&str] = &[
    "Child 20267 of 20266 got arg: \"spam\"",
    "Parent got: \"Child 20267 got: [Hello 1 from parent 20266]\"",
    "Parent got: \"Child 20267 got: [Hello 2 from parent 20266]\"",
];

/// The two ways the lesson can start its child.
const SPAWN_STYLES: [&[&str]; 2] = [&[], &["--command"]];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

fn mask_pids(text: &str, parent: i64, child: i64) -> String {
    mask_number(&mask_number(text, parent, "<parent>"), child, "<child>")
}

#[test]
fn terminal_shows_the_documents_three_lines() {
    for style in SPAWN_STYLES {
        let run = lesson().args(style).args(["--speed", "20"]).run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let child = number_after(&run.stderr, "Child ");
        let ours: Vec<String> = run
            .stderr
            .lines()
            .map(|line| mask_pids(line, run.pid.into(), child.into()))
            .collect();
        let theirs: Vec<String> = DOCUMENT
            .iter()
            .map(|line| mask_pids(line, 20266, 20267))
            .collect();
        assert_eq!(ours, theirs, "{style:?}\n{}", run.transcript());
        // Everything the parent printed on stdout went into the pipe, to the child.
        assert!(run.stdout.is_empty(), "{}", run.transcript());
    }
}

#[test]
fn the_conversation_keeps_the_documents_relative_pace() {
    // The child waits 3 s before reading and 3 s before replying, twice: 12 s in all,
    // 0.6 s at speed 20. Sleeps are never shorter; a busy machine may make them longer.
    let run = lesson().args(["--speed", "20"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.elapsed >= Duration::from_millis(600)
            && run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

/// SIGPIPE's bit in a `SigIgn:` mask of /proc/<pid>/status (signal 13 is bit 12).
fn ignores_sigpipe(pid: i32) -> bool {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .expect("a SigIgn line");
    let mask = u64::from_str_radix(mask.trim(), 16).expect("a hex mask");
    mask & (1 << 12) != 0
}

/// The descriptors of a process, from /proc/<pid>/fd.
fn fds(pid: i32) -> Vec<i32> {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("an fd directory")
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    fds.sort();
    fds
}

/// Whether `fd` of `pid` is marked close-on-exec (`flags:` in /proc/<pid>/fdinfo, octal).
/// A descriptor closed since it was listed (such as the listing's own directory handle)
/// counts as close-on-exec: it cannot have been passed down.
fn cloexec(pid: i32, fd: i32) -> bool {
    let Ok(info) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
    else {
        return true;
    };
    let flags = info
        .lines()
        .find_map(|line| line.strip_prefix("flags:"))
        .expect("a flags line");
    u32::from_str_radix(flags.trim(), 8).expect("octal flags") & 0o2_000_000 != 0
}

#[test]
fn the_execd_child_sees_only_fds_0_1_2_and_default_sigpipe() {
    for style in SPAWN_STYLES {
        // `sleep` never replies: the parent waits (1 s), which gives us time to look.
        let running = lesson()
            .args(style)
            .args(["--reply-timeout", "1", "--", "sleep", "30"])
            .spawn();
        let deadline = Instant::now() + Duration::from_secs(5);
        let child = loop {
            let found = children_of(running.pid());
            if let Some(child) = found.iter().find(|c| c.command == "sleep") {
                break child.pid; // exec has happened
            }
            assert!(
                Instant::now() < deadline,
                "{style:?}: no exec'd child: {found:?}"
            );
            sleep(Duration::from_millis(5));
        };
        if style.is_empty() {
            // The hand-written spawn closes everything above 2, inherited or not.
            assert_eq!(fds(child), [0, 1, 2], "the exec'd child inherited more");
        } else {
            // Command closes what the lesson made (close-on-exec) but passes on what the
            // lesson inherited without the flag: exactly what this test process handed down
            // (from cargo, a shell...). Anything more would be one of the lesson's own.
            let me = i32::try_from(std::process::id()).unwrap();
            let inherited: Vec<i32> = fds(me)
                .into_iter()
                .filter(|fd| *fd > 2 && !cloexec(me, *fd))
                .collect();
            let extra: Vec<i32> =
                fds(child).into_iter().filter(|fd| *fd > 2).collect();
            assert_eq!(
                extra, inherited,
                "Command leaked one of the lesson's descriptors"
            );
        }
        assert!(
            ignores_sigpipe(running.pid()),
            "Rust ignores SIGPIPE in the parent"
        );
        assert!(
            !ignores_sigpipe(child),
            "{style:?}: SIGPIPE still ignored after exec"
        );
        let run = running.finish();
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
    }
}

#[test]
fn no_flush_deadlock_is_detected_explained_and_cleaned_up() {
    let run = lesson()
        .args(["--speed", "20", "--no-flush", "--reply-timeout", "1"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    for needle in [
        "no reply within 1s",
        "the child's output is probably buffered, not flushed",
        "killed by SIGTERM",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
    assert!(!run.stderr.contains("Parent got"), "{}", run.transcript());
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
    // finish() has checked that the killed child was reaped: the group is empty.
}

#[test]
fn a_missing_program_is_reported_with_status_127() {
    let hand_written = lesson().args(["--", "no-such-program-here"]).run();
    assert_eq!(
        hand_written.code(),
        Some(127),
        "{}",
        hand_written.transcript()
    );
    assert!(
        hand_written.stderr.contains(
            "bidir-spawn: exec no-such-program-here: No such file or directory"
        ),
        "{}",
        hand_written.transcript()
    );
    assert!(
        hand_written
            .stderr
            .contains("ended before replying: exited with status 127")
    );

    let command = lesson()
        .args(["--command", "--", "no-such-program-here"])
        .run();
    assert_eq!(command.code(), Some(127), "{}", command.transcript());
    assert!(
        command.stderr.contains(
            "bidir-spawn: spawn no-such-program-here: No such file or directory"
        ),
        "{}",
        command.transcript()
    );
}

#[test]
fn a_program_that_is_not_executable_is_reported_with_status_126() {
    // A directory cannot be executed, not even by root.
    let run = lesson().args(["--", "/"]).run();
    assert_eq!(run.code(), Some(126), "{}", run.transcript());
    assert!(
        run.stderr.contains("exec /: Permission denied"),
        "{}",
        run.transcript()
    );
    let run = lesson().args(["--command", "--", "/"]).run();
    assert_eq!(run.code(), Some(126), "{}", run.transcript());
}

#[test]
fn a_child_that_ends_before_replying_is_reported() {
    for style in SPAWN_STYLES {
        let run = lesson()
            .args(style)
            .args(["--", "sh", "-c", "exit 3"])
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr
                .contains("ended before replying: exited with status 3"),
            "{}",
            run.transcript()
        );
        let run = lesson()
            .args(style)
            .args(["--", "sh", "-c", "kill -9 $$"])
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr
                .contains("ended before replying: killed by SIGKILL"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn any_program_can_be_the_child_and_cat_echoes() {
    for style in SPAWN_STYLES {
        let run = lesson().args(style).args(["--", "cat"]).run();
        // cat exits 0 only because the parent closes the pipe to it (EOF) at the end.
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let expected = format!(
            "Parent got: \"Hello 1 from parent {pid}\"\nParent got: \"Hello 2 from parent {pid}\"\n",
            pid = run.pid
        );
        assert_eq!(run.stderr, expected, "{style:?}");
    }
}

#[test]
fn a_child_that_will_not_exit_is_killed_with_status_3() {
    // Answers both lines, then ignores EOF and sleeps (exec: no grandchild holds the pipes).
    let script = "read a; echo \"$a\"; read b; echo \"$b\"; exec sleep 30";
    let run = lesson()
        .args(["--reply-timeout", "1", "--", "sh", "-c", script])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("did not exit within 1s of its pipes closing"),
        "{}",
        run.transcript()
    );
}

#[test]
fn bad_options_exit_2_with_usage() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--speed", "0"],
            "--speed \"0\": must be from 0.001 to 1000000",
        ),
        (&["--reply-timeout"], "--reply-timeout needs a value"),
        (&["--verbose"], "unknown option --verbose"),
    ];
    assert_usage_errors(lesson, "Usage: bidir-spawn", cases);
}

#[test]
fn book_transcript_matches_a_fresh_run() {
    let run = lesson().args(["--speed", "10"]).merge_stderr().run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p bidir-spawn -- --speed 10\n{}",
        run.stdout_text()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/bidir-spawn.txt");
    check_transcript(&path, &text);

    let run = lesson()
        .args(["--speed", "10", "--no-flush", "--reply-timeout", "2"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p bidir-spawn -- --speed 10 --no-flush --reply-timeout 2\n{}",
        run.stdout_text()
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/bidir-spawn-no-flush.txt");
    check_transcript(&path, &text);
}
