//! The lesson's promises, checked by running its binaries as subprocesses with a
//! deadline.
//!
//! The exec'd child runs in a process group of its own, which the harness's group
//! check (the lesson's own group) does not see: tests that start one check its
//! group themselves ([`assert_group_gone`]).

use lesson_test::faults::as_nobody;
use lesson_test::{
    Leftovers, Lesson, Running, TempDir, assert_usage_errors, check_transcript_of,
    children_of, group_members, mask_number, number_after, process,
};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_bidir-spawn");
const CHILD_BIN: &str = env!("CARGO_BIN_EXE_bidir-child");

/// The document's transcript of pipes.py (parent 20266, child 20267), as facts.
const DOCUMENT: &[&str] = &[
    "Child 20267 of 20266 got arg: \"spam\"",
    "Parent got: \"Child 20267 got: [Hello 1 from parent 20266]\"",
    "Parent got: \"Child 20267 got: [Hello 2 from parent 20266]\"",
];

/// The two ways the lesson can start its child.
const SPAWN_STYLES: [&[&str]; 2] = [&[], &["--command"]];

/// The lesson's MAX_REPLY: the longest reply line it accepts.
const MAX_REPLY: usize = 64 * 1024;

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

/// The lesson run through `sh -c SCRIPT`, where the script names the lesson as
/// "$0".
fn in_shell(script: &str) -> Lesson {
    Lesson::new("sh")
        .args(["-c", script, BIN])
        .deadline(Duration::from_secs(10))
}

fn mask_pids(text: &str, parent: i64, child: i64) -> String {
    mask_number(&mask_number(text, parent, "<parent>"), child, "<child>")
}

/// Polls `found` every 5 ms until it returns something; fails after 5 s.
fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(value) = found() {
            return value;
        }
        assert!(Instant::now() < deadline, "waited 5 s for {what}");
        sleep(Duration::from_millis(5));
    }
}

/// The pid of the lesson's child once it runs `command` (exec has happened).
fn execd_child(running: &Running, command: &str) -> i32 {
    wait_for(&format!("the lesson's child {command}"), || {
        let children = children_of(running.pid());
        children
            .iter()
            .find(|c| c.command == command)
            .map(|c| c.pid)
    })
}

/// Checks that nothing of the process group `pgid` (the exec'd child's) still runs,
/// a second at most after the lesson exited. Members that died as orphans were
/// handed to this test process (a subreaper): reap them.
fn assert_group_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let members = group_members(pgid);
        for member in &members {
            let _ = waitpid(Pid::from_raw(member.pid), Some(WaitPidFlag::WNOHANG));
        }
        if members.iter().all(|m| m.state == 'Z') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the child's process group {pgid} outlived the lesson: {members:?}"
        );
        sleep(Duration::from_millis(10));
    }
}

/// A mask line (`SigIgn:`, `SigBlk:`) of /proc/<pid>/status, as bits.
fn signal_mask(pid: i32, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .expect("the mask line");
    u64::from_str_radix(mask.trim(), 16).expect("a hex mask")
}

/// SIGPIPE's bit in a signal mask (signal 13 is bit 12).
const SIGPIPE_BIT: u64 = 1 << 12;

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

/// Whether `fd` of `pid` is marked close-on-exec (`flags:` in /proc/<pid>/fdinfo,
/// octal). A descriptor closed since it was listed (such as the listing's own
/// directory handle) counts as close-on-exec: it cannot have been passed down.
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

/// Field 5 of /proc/<pid>/stat: the process group.
fn process_group(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("a command in parentheses") + 1..];
    after.split_whitespace().nth(2).unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------
// The document's conversation

#[test]
fn terminal_shows_the_documents_three_lines() {
    // Also the parent's flush: without it, Hello 1 stays in the parent's BufWriter,
    // no reply ever comes, and the run ends with exit 3.
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
        assert_group_gone(child);
    }
}

#[test]
fn the_conversation_keeps_the_documents_relative_pace() {
    // The child waits 3 s before reading and 3 s before replying, twice: 12 s in
    // all, 0.6 s at speed 20. Sleeps are never shorter; a busy machine may make
    // them longer.
    let run = lesson().args(["--speed", "20"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.elapsed >= Duration::from_millis(600)
            && run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
}

#[test]
fn any_program_can_be_the_child_and_cat_echoes() {
    for style in SPAWN_STYLES {
        let run = lesson().args(style).args(["--", "cat"]).run();
        // cat exits 0 only because the parent closes the pipe to it (EOF) at the
        // end.
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let expected = format!(
            "Parent got: \"Hello 1 from parent {pid}\"\n\
             Parent got: \"Hello 2 from parent {pid}\"\n",
            pid = run.pid
        );
        assert_eq!(run.stderr, expected, "{style:?}");
    }
}

#[test]
fn book_transcripts_match_fresh_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/transcripts");
    let run = lesson()
        .shown_as("cargo run -q -p bidir-spawn --")
        .args(["--speed", "10"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_transcript_of(&dir.join("bidir-spawn.txt"), &run);

    let run = lesson()
        .shown_as("cargo run -q -p bidir-spawn --")
        .args(["--speed", "10", "--no-flush"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    check_transcript_of(&dir.join("bidir-spawn-no-flush.txt"), &run);

    let run = lesson()
        .shown_as("cargo run -q -p bidir-spawn --")
        .args(["--reply-timeout", "1", "--", "sh", "-c", "sleep 30 & wait"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    check_transcript_of(&dir.join("bidir-spawn-grandchild.txt"), &run);
}

// ---------------------------------------------------------------------------------
// The flush deadlock and the time limits

#[test]
fn no_flush_deadlock_is_detected_explained_and_cleaned_up() {
    let run = lesson()
        .args(["--speed", "20", "--no-flush", "--reply-timeout", "1"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    for needle in [
        "no reply within 1s",
        "(deadlock: a reply left unflushed?); ending it",
        "killed by SIGTERM",
    ] {
        assert!(
            run.stderr.contains(needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
    assert!(!run.stderr.contains("Parent got"), "{}", run.transcript());
    // It died of the SIGTERM at once: no SIGKILL was needed, none was announced.
    assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
    assert_group_gone(number_after(&run.stderr, "Child "));
}

#[test]
fn the_default_reply_timeout_is_the_childs_two_waits_plus_two_seconds() {
    // At speed 20 the child's two 3 s waits take 0.3 s: the parent waits 2.3 s.
    let run = lesson().args(["--speed", "20", "--no-flush"]).run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr.contains("no reply within 2.3s"),
        "{}",
        run.transcript()
    );
    assert!(
        run.elapsed >= Duration::from_millis(2300),
        "gave up after {:?}",
        run.elapsed
    );
}

#[test]
fn a_child_that_will_not_exit_is_ended_with_status_3() {
    // Answers both lines, then ignores EOF and sleeps (exec: no grandchild holds
    // the pipes).
    let script = "read a; echo \"$a\"; read b; echo \"$b\"; exec sleep 30";
    let run = lesson()
        .args(["--reply-timeout", "1", "--", "sh", "-c", script])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("did not exit within 1s of its pipes closing; ending it"),
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
fn a_child_that_ignores_sigterm_gets_sigkill_after_the_grace_and_is_told() {
    for style in SPAWN_STYLES {
        // sleep inherits the ignored TERM.
        let script = "trap '' TERM; exec sleep 30";
        let run = lesson()
            .args(style)
            .args(["--reply-timeout", "1", "--", "sh", "-c", script])
            .run();
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        for needle in [
            "still running 300ms after SIGTERM; SIGKILL",
            "killed by SIGKILL",
        ] {
            assert!(
                run.stderr.contains(needle),
                "{needle}\n{}",
                run.transcript()
            );
        }
        assert!(
            run.elapsed < Duration::from_secs(4),
            "took {:?}",
            run.elapsed
        );
    }
}

#[test]
fn a_stopped_child_is_continued_so_that_sigterm_ends_it() {
    let run = lesson()
        .args(["--reply-timeout", "1", "--", "sh", "-c", "kill -STOP $$"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr.contains("killed by SIGTERM"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_reply_of_max_reply_bytes_is_accepted_and_one_byte_more_is_refused() {
    for (length, accepted) in [(MAX_REPLY, true), (MAX_REPLY + 1, false)] {
        // One reply line of `length` digits, then the child only sleeps.
        let script = format!("printf '%0{length}d\\n' 0; exec sleep 30");
        let run = lesson()
            .args(["--reply-timeout", "2", "--", "sh", "-c", &script])
            .run();
        let zeros = "0".repeat(length);
        if accepted {
            // The second hello gets no reply.
            assert_eq!(run.code(), Some(3), "{length}: {}", run.stderr.len());
            assert!(run.stderr.contains(&format!("Parent got: \"{zeros}\"")));
        } else {
            assert_eq!(run.code(), Some(1), "{length}: {}", run.stderr);
            assert!(
                run.stderr.contains(&format!(
                    "read the pipe from the child: a reply line is longer than \
                     {MAX_REPLY} bytes; ending child"
                )),
                "{}",
                run.stderr
            );
            assert!(run.stderr.contains("killed by SIGTERM"), "{}", run.stderr);
        }
    }
}

#[test]
fn a_last_reply_without_a_newline_is_delivered_at_eof() {
    let run = lesson()
        .args(["--", "sh", "-c", "read a; printf 'no newline'"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .starts_with("Parent got: \"no newline\"\nbidir-spawn: child "),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("ended before replying: exited with status 0"),
        "{}",
        run.transcript()
    );
}

// ---------------------------------------------------------------------------------
// Children that go away, and programs that cannot run

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
fn a_broken_pipe_to_the_child_means_the_child_is_gone_not_an_error() {
    // The child answers the first hello, closes its stdin and lingers: the second
    // hello meets a pipe with no reader (EPIPE). That is the child leaving,
    // reported as such.
    let script = "read a; exec <&-; echo \"$a\"; sleep 0.3; exit 4";
    for style in SPAWN_STYLES {
        let run = lesson().args(style).args(["--", "sh", "-c", script]).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr
                .contains("ended before replying: exited with status 4"),
            "{style:?}\n{}",
            run.transcript()
        );
        assert!(!run.stderr.contains("write to the child"), "{}", run.stderr);
    }
}

#[test]
fn closing_the_reply_pipe_lets_a_child_that_keeps_writing_die_of_sigpipe() {
    for style in SPAWN_STYLES {
        let run = lesson()
            .args(style)
            .args(["--reply-timeout", "10", "--", "yes"])
            .run();
        // Both replies are "y"; then the parent closes its read end, and `yes` dies
        // at its next write instead of being killed after a time limit.
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr.contains("killed by SIGPIPE"),
            "{}",
            run.transcript()
        );
        assert!(
            run.elapsed < Duration::from_secs(5),
            "took {:?}",
            run.elapsed
        );
    }
}

#[test]
fn a_missing_program_is_reported_with_status_127() {
    let run = lesson().args(["--", "no-such-program-here"]).run();
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "bidir-spawn: exec no-such-program-here: No such file or directory"
        ),
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr
            .contains("ended before replying: exited with status 127")
    );

    let run = lesson()
        .args(["--command", "--", "no-such-program-here"])
        .run();
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert!(
        run.stderr.contains(
            "bidir-spawn: spawn no-such-program-here: No such file or directory"
        ),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_program_may_follow_the_options_without_a_double_dash() {
    let run = lesson().args(["--reply-timeout", "5", "cat", "-n"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stderr.contains("Parent got: \"     1\tHello 1"),
        "{}",
        run.stderr
    );
    // A lone `-` is a word, not an option: here, a program that does not exist.
    let run = lesson().arg("-").run();
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert!(
        run.stderr.contains("exec -: No such file"),
        "{}",
        run.transcript()
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
    assert!(
        run.stderr.contains("spawn /: Permission denied"),
        "{}",
        run.transcript()
    );
}

#[test]
fn too_many_open_files_is_a_runtime_error_not_126() {
    // fds 0-2, the signalfd and one pipe fit in 6; the second pipe (or Command's
    // own pipes) do not. The shell first closes what it may have inherited.
    let limited =
        "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; ulimit -n 6; exec \"$0\"";
    let run = in_shell(&format!("{limited} -- cat")).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("pipe2 (parent to child): EMFILE: Too many open files"),
        "{}",
        run.transcript()
    );
    let run = in_shell(&format!("{limited} --command -- cat")).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("spawn cat: Too many open files"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_fork_that_fails_is_a_runtime_error_not_126() {
    // RLIMIT_NPROC does not bind root: run as nobody, allowed one process (itself).
    for (style, message) in [
        (&[][..], "fork: EAGAIN"),
        (
            &["--command"][..],
            "spawn sleep: Resource temporarily unavailable",
        ),
    ] {
        let Some(nobody) = as_nobody(BIN) else { return };
        let run = nobody
            .args(["prlimit", "--nproc=1:1", BIN])
            .args(style)
            .args(["--", "sleep", "30"])
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains(message), "{}", run.transcript());
    }
}

// ---------------------------------------------------------------------------------
// What the exec'd program gets

#[test]
fn the_execd_child_gets_fds_0_1_2_default_signals_and_a_group_of_its_own() {
    for style in SPAWN_STYLES {
        // `sleep` never replies: the parent waits (1 s), which gives us time to
        // look. The shell hands the lesson fd 7 without close-on-exec, as shells
        // often do.
        let script = format!(
            "exec 7</dev/null; exec \"$0\" {} --reply-timeout 1 -- sleep 30",
            style.join(" ")
        );
        let running = in_shell(&script).spawn();
        let child = execd_child(&running, "sleep");
        if style.is_empty() {
            // The hand-written spawn closes everything above 2, inherited or not.
            assert_eq!(fds(child), [0, 1, 2], "the exec'd child inherited more");
        } else {
            // Command closes what the lesson made (close-on-exec) but passes on
            // what the lesson inherited without the flag: exactly what this test
            // process handed down (from cargo, a shell...). Anything more would be
            // the lesson's own.
            let me = i32::try_from(std::process::id()).unwrap();
            let mut inherited: Vec<i32> = fds(me)
                .into_iter()
                .filter(|fd| *fd > 2 && *fd != 7 && !cloexec(me, *fd))
                .chain([7])
                .collect();
            inherited.sort();
            let extra: Vec<i32> =
                fds(child).into_iter().filter(|fd| *fd > 2).collect();
            assert_eq!(
                extra, inherited,
                "Command leaked one of the lesson's descriptors"
            );
        }
        let lesson_pid = running.pid();
        assert_ne!(
            signal_mask(lesson_pid, "SigIgn:") & SIGPIPE_BIT,
            0,
            "Rust ignores SIGPIPE in the parent"
        );
        assert_ne!(signal_mask(lesson_pid, "SigBlk:"), 0, "the parent blocks");
        assert_eq!(
            signal_mask(child, "SigIgn:") & SIGPIPE_BIT,
            0,
            "{style:?}: SIGPIPE still ignored after exec"
        );
        assert_eq!(
            signal_mask(child, "SigBlk:"),
            0,
            "{style:?}: signals still blocked after exec"
        );
        assert_eq!(process_group(child), child, "{style:?}: not its own group");
        let run = running.finish();
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        assert_group_gone(child);
    }
}

#[test]
fn the_execd_child_dies_with_its_parent() {
    for style in SPAWN_STYLES {
        let running = lesson()
            .args(style)
            .args(["--reply-timeout", "20", "--", "sleep", "30"])
            .spawn();
        let child = execd_child(&running, "sleep");
        running.signal(Signal::SIGKILL); // no clean-up possible: the kernel's turn
        let run = running.finish_allowing(Leftovers::Orphans);
        assert_eq!(run.code(), None, "{}", run.transcript());
        // PR_SET_PDEATHSIG: the kernel kills the child when its parent dies.
        assert_group_gone(child);
        assert!(
            process(child).is_none_or(|p| p.state == 'Z'),
            "{style:?}: sleep outlived its parent"
        );
    }
}

// ---------------------------------------------------------------------------------
// Stop signals

#[test]
fn stop_signals_end_the_childs_whole_group_grandchildren_included() {
    let cases = [
        (Signal::SIGINT, &[][..]),
        (Signal::SIGTERM, &["--command"][..]),
        (Signal::SIGHUP, &[][..]),
        (Signal::SIGTERM, &[][..]),
    ];
    for (signal, style) in cases {
        let running = lesson()
            .args(style)
            .args(["--reply-timeout", "20", "--", "sh", "-c", "sleep 30 & wait"])
            .spawn();
        let child = execd_child(&running, "sh");
        wait_for("the grandchild sleep", || {
            children_of(child)
                .iter()
                .find(|c| c.command == "sleep")
                .map(|_| ())
        });
        let run = running.stop_with(signal);
        assert!(
            run.stderr
                .contains(&format!("child {child} killed by SIGTERM")),
            "{}",
            run.transcript()
        );
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
        assert_group_gone(child);
    }
}

#[test]
fn the_whole_group_gets_sigterm_first_so_grandchildren_can_clean_up() {
    // The grandchild writes a file when SIGTERM reaches it; the child takes 0.2 s
    // to exit on SIGTERM, well inside the grace, so no SIGKILL comes before that.
    let dir = TempDir::new("bidir-group");
    let grandchild = "trap 'echo got TERM > marker' TERM; sleep 30 & wait";
    let child = "trap 'sleep 0.2; exit 0' TERM; sh -c \"$0\" & wait";
    let running = lesson()
        .current_dir(dir.path())
        .args(["--reply-timeout", "20", "--", "sh", "-c", child, grandchild])
        .spawn();
    let leader = execd_child(&running, "sh");
    wait_for("the grandchild's sleep", || {
        let shells = children_of(leader);
        shells
            .iter()
            .any(|shell| {
                children_of(shell.pid).iter().any(|c| c.command == "sleep")
            })
            .then_some(())
    });
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("exited with status 0"),
        "{}",
        run.stderr
    );
    assert_group_gone(leader);
    let marker = std::fs::read_to_string(dir.path().join("marker"));
    assert_eq!(marker.ok().as_deref(), Some("got TERM\n"), "{}", run.stderr);
}

#[test]
fn a_stop_signal_while_waiting_for_the_child_to_exit_ends_it_too() {
    let script = "read a; echo \"$a\"; read b; echo \"$b\"; exec sleep 30";
    let mut running = lesson()
        .args(["--reply-timeout", "20", "--", "sh", "-c", script])
        .spawn();
    running.wait_for_stderr("Parent got: \"Hello 2");
    let child = execd_child(&running, "sleep");
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("stopped by SIGTERM; ending child"),
        "{}",
        run.transcript()
    );
    assert_group_gone(child);
}

#[test]
fn a_second_ctrl_c_right_after_the_first_does_not_break_the_clean_up() {
    let running = lesson()
        .args(["--reply-timeout", "20", "--", "sh", "-c", "sleep 30 & wait"])
        .spawn();
    let child = execd_child(&running, "sh");
    running.signal(Signal::SIGINT);
    let run = running.stop_with(Signal::SIGINT);
    assert_eq!(
        run.stderr.matches("stopped by SIGINT").count(),
        1,
        "{}",
        run.transcript()
    );
    assert_group_gone(child);
}

// ---------------------------------------------------------------------------------
// Output that cannot be written

#[test]
fn stderr_into_a_closed_pipe_neither_panics_nor_leaves_the_child() {
    for style in ["", "--command"] {
        // `head` keeps the first line and exits; later notes meet a closed pipe.
        let script = format!(
            "exec 3>&1; \
             {{ \"$0\" {style} --speed 20 2>&1; echo \"status $?\" >&3; }} \
             | head -n 1"
        );
        let run = in_shell(&script).run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let text = run.stdout_text();
        assert!(text.contains("status 0"), "{}", run.transcript());
        assert!(
            text.starts_with("Child ") || text.contains("\nChild "),
            "{text}"
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
        assert_group_gone(number_after(&text, "Child "));
    }
}

#[test]
fn stderr_and_stdout_into_dev_full_change_nothing() {
    // The notes are lost, never a panic; stdout is the pipe to the child anyway.
    let run = in_shell("exec \"$0\" --speed 20 2>/dev/full >/dev/full").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let run =
        in_shell("exec \"$0\" --command --speed 20 2>/dev/full >/dev/full").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // A failure path, notes lost too: still exit 3, still nothing left behind.
    let run =
        in_shell("exec \"$0\" --reply-timeout 0.5 -- sleep 30 2>/dev/full").run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
}

// ---------------------------------------------------------------------------------
// Command line and help

#[test]
fn bad_options_exit_2_with_usage() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["--speed", "0"],
            "--speed \"0\": must be from 0.001 to 1000000",
        ),
        (&["--speed", "1e-300"], "must be from 0.001 to 1000000"),
        (&["--speed", "2e6"], "must be from 0.001 to 1000000"),
        (&["--speed", "NaN"], "must be from 0.001 to 1000000"),
        (&["--reply-timeout"], "--reply-timeout needs a value"),
        (&["--reply-timeout", "0"], "must be from 0.001 to 86400"),
        (&["--reply-timeout", "1e19"], "must be from 0.001 to 86400"),
        (&["--reply-timeout", "86401"], "must be from 0.001 to 86400"),
        (
            &["--no-flush", "--", "cat"],
            "--no-flush changes bidir-child only",
        ),
        (&["--child"], "unknown option --child"),
        (&["--verbose"], "unknown option --verbose"),
    ];
    assert_usage_errors(lesson, "Usage: bidir-spawn", cases);
}

#[test]
fn numbers_at_the_edges_of_their_ranges_are_accepted() {
    // The fastest speed, the shortest reply timeout: cat answers at once.
    let run = lesson()
        .args([
            "--speed",
            "1000000",
            "--reply-timeout",
            "86400",
            "--",
            "cat",
        ])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let run = lesson()
        .args([
            "--speed",
            "0.001",
            "--reply-timeout",
            "0.001",
            "--",
            "sleep",
            "9",
        ])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(run.stderr.contains("no reply within 1ms"), "{}", run.stderr);
}

/// Checks a `--help` text: it starts with `Usage:`, every option line under
/// `Options:` is indented two spaces with its description in one column shared by
/// all (and by the continuation lines), and it lists each of `options`.
fn assert_help(bin: &str, name: &str, options: &[&str]) {
    let run = Lesson::new(bin).arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = run.stdout_text();
    assert!(text.starts_with(&format!("Usage: {name} ")), "{text}");
    let block: Vec<&str> = text
        .split("Options:\n")
        .nth(1)
        .expect("an Options: section")
        .lines()
        .take_while(|line| !line.is_empty())
        .collect();
    let mut column = None;
    for line in &block {
        let indent = line.len() - line.trim_start().len();
        let description = if line.trim_start().starts_with('-') {
            assert_eq!(indent, 2, "option line not indented two spaces: {line:?}");
            let gap = line[2..].find("  ").expect("two spaces before the text");
            let rest = &line[2 + gap..];
            2 + gap + (rest.len() - rest.trim_start().len())
        } else {
            indent
        };
        assert_eq!(*column.get_or_insert(description), description, "{line:?}");
    }
    for option in options {
        assert!(
            block.iter().any(|line| line.trim_start().starts_with('-')
                && line
                    .split("  ")
                    .nth(1)
                    .is_some_and(|spec| spec.contains(option))),
            "{option} missing from the help:\n{text}"
        );
    }
}

#[test]
fn help_of_both_binaries_is_aligned_and_lists_every_option() {
    assert_help(
        BIN,
        "bidir-spawn",
        &[
            "--speed X",
            "--no-flush",
            "--reply-timeout SECS",
            "--command",
            "--show-fds",
            "--help",
        ],
    );
    assert_help(
        CHILD_BIN,
        "bidir-child",
        &["--speed X", "--no-flush", "--show-fds", "--help"],
    );
}

#[test]
fn help_into_dev_full_is_reported_not_a_panic() {
    for bin in [BIN, CHILD_BIN] {
        let run = Lesson::new("sh")
            .args(["-c", "exec \"$0\" --help >/dev/full", bin])
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains("write stdout"), "{}", run.transcript());
    }
}

// ---------------------------------------------------------------------------------
// Finding and building bidir-child

/// A copy of the lesson in `<dir>/<profile>/`, with no bidir-child beside it, and a
/// stand-in for cargo that records its arguments and "builds" by copying the real
/// child (or fails, if `works` is false).
fn lone_lesson(dir: &TempDir, profile: &str, works: bool) -> (PathBuf, PathBuf) {
    let bin_dir = dir.path().join(profile);
    std::fs::create_dir_all(&bin_dir).unwrap();
    let lesson = bin_dir.join("bidir-spawn");
    std::fs::copy(BIN, &lesson).unwrap();
    let cargo = dir.path().join("fake-cargo");
    let body = if works {
        format!(
            "cp '{CHILD_BIN}' '{}'",
            bin_dir.join("bidir-child").display()
        )
    } else {
        "exit 1".to_owned()
    };
    let script = format!(
        "#!/bin/sh\necho \"$@\" > '{}'\n{body}\n",
        dir.path().join("cargo-args").display()
    );
    std::fs::write(&cargo, script).unwrap();
    std::process::Command::new("chmod")
        .args(["+x"])
        .arg(&cargo)
        .status()
        .unwrap();
    (lesson, cargo)
}

#[test]
fn under_cargo_a_missing_child_is_built_next_to_the_parent_first() {
    for (profile, flag) in [("debug", "dev"), ("release", "release")] {
        let dir = TempDir::new("bidir-build");
        let (copy, cargo) = lone_lesson(&dir, profile, true);
        let run = Lesson::new("env")
            .arg(format!("CARGO={}", cargo.display()))
            .arg("CARGO_MANIFEST_DIR=/the/package")
            .arg(&copy)
            .args(["--speed", "20"])
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert!(
            run.stderr
                .starts_with("bidir-spawn: building bidir-child first"),
            "{}",
            run.transcript()
        );
        let args = std::fs::read_to_string(dir.path().join("cargo-args")).unwrap();
        assert_eq!(
            args.trim_end(),
            format!(
                "build --quiet --bin bidir-child --profile {flag} --target-dir {} \
                 --manifest-path /the/package/Cargo.toml",
                dir.path().display()
            )
        );
    }
}

#[test]
fn under_cargo_a_child_older_than_its_source_is_rebuilt_and_a_newer_one_kept() {
    for (stale, rebuilt) in [(true, true), (false, false)] {
        let dir = TempDir::new("bidir-build");
        let (copy, cargo) = lone_lesson(&dir, "debug", true);
        let child = dir.path().join("debug/bidir-child");
        std::fs::copy(CHILD_BIN, &child).unwrap(); // built now: newer than its source
        if stale {
            // As if built in 2000, and src/bin/bidir-child.rs edited since.
            std::process::Command::new("touch")
                .args(["-d", "2000-01-01"])
                .arg(&child)
                .status()
                .unwrap();
        }
        let run = Lesson::new("env")
            .arg(format!("CARGO={}", cargo.display()))
            .arg(&copy)
            .args(["--speed", "20"])
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(
            run.stderr.contains("building bidir-child first"),
            rebuilt,
            "{}",
            run.transcript()
        );
        assert_eq!(dir.path().join("cargo-args").exists(), rebuilt);
    }
}

#[test]
fn a_failed_build_or_no_cargo_is_reported() {
    let dir = TempDir::new("bidir-build");
    let (copy, cargo) = lone_lesson(&dir, "debug", false);
    let run = Lesson::new("env")
        .arg(format!("CARGO={}", cargo.display()))
        .arg(&copy)
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("cargo build --bin bidir-child: exit status: 1"),
        "{}",
        run.transcript()
    );
    // Not started by cargo: nothing to build with; exec says what is missing.
    let run = Lesson::new("env").args(["-u", "CARGO"]).arg(&copy).run();
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("bidir-child: No such file or directory"),
        "{}",
        run.transcript()
    );
}
