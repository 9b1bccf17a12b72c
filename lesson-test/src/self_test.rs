//! Self-tests of the harness: each runs a small real program (`sh -c ...`, `sleep`, `cat`)
//! through it, as the lessons' tests run theirs, and checks one promise those tests rely
//! on, including the ones that must FAIL a test: a zombie or an orphan left in the group,
//! a deadline passed, a bad stop. Nothing forks inside the test process.
//!
//! A check that must fail runs on a thread of its own with a bound ([`failure_of`]): a
//! harness that stopped giving up would hang that check, and the bound fails it instead.

use super::*;

fn sh(script: &str) -> Lesson {
    Lesson::new("sh").args(["-c", script])
}

/// Runs `check` on a thread of its own: it must fail (panic) within `bound`. Returns the
/// panic's message. The thread that starts a lesson is its parent-death "parent", so
/// `check` starts its own (or gets a [`Running`] started by the test's thread).
fn failure_of(bound: Duration, check: impl FnOnce() + Send + 'static) -> String {
    let thread = thread::spawn(check);
    let end = Instant::now() + bound;
    while !thread.is_finished() {
        assert!(
            Instant::now() < end,
            "the harness did not give up within {bound:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let payload = thread
        .join()
        .expect_err("the harness should have failed the test");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs `work` on a thread of its own and returns its result, failing the test if it
/// takes more than five seconds: for the pure text functions, whose loops could spin.
pub(crate) fn bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let thread = thread::spawn(work);
    let end = Instant::now() + Duration::from_secs(5);
    while !thread.is_finished() {
        assert!(
            Instant::now() < end,
            "still working after 5 s: a loop that spins"
        );
        thread::sleep(Duration::from_millis(1));
    }
    match thread.join() {
        Ok(value) => value,
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

/// Whether process `pid` is gone (neither running nor a zombie) within a short bound.
fn gone_soon(pid: i32) -> bool {
    let end = Instant::now() + Duration::from_secs(3);
    while process(pid).is_some() {
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn run_keeps_status_stdout_lines_and_stderr_apart() {
    let run = sh("echo one; echo two >&2; printf 'x\\ny\\nlast'; exit 3").run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert_eq!(run.stdout, b"one\nx\ny\nlast");
    assert_eq!(run.stdout_text(), "one\nx\ny\nlast");
    // A last line without a newline is still a line.
    assert_eq!(run.texts(), ["one", "x", "y", "last"]);
    assert_eq!(run.stderr, "two\n");
    assert!(run.label.starts_with("sh -c echo one;"), "{}", run.label);
    assert_eq!(
        run.transcript(),
        format!(
            "--- command: {}\n--- exited with status 3 after {:?}\n\
             --- stdout:\none\nx\ny\nlast--- stderr:\ntwo\n",
            run.label, run.elapsed
        )
    );
}

#[test]
fn a_signal_death_has_no_code() {
    let run = sh("kill -KILL $$").run();
    assert_eq!(run.code(), None);
    assert!(
        run.transcript().contains("killed by SIGKILL"),
        "{}",
        run.transcript()
    );
}

#[test]
fn merged_stderr_keeps_the_order_of_the_writes() {
    let run = sh("echo a; echo b >&2; echo c").merge_stderr().run();
    assert_eq!(run.texts(), ["a", "b", "c"]);
    assert_eq!(run.stderr, "");
}

#[test]
fn lines_carry_their_arrival_times() {
    let run = sh("echo a; sleep 0.3; echo b").run();
    assert_eq!(run.texts(), ["a", "b"]);
    let gap = run.lines[1].at - run.lines[0].at;
    assert!(gap >= Duration::from_millis(250), "{gap:?}");
    assert!(
        run.elapsed >= Duration::from_millis(300),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn stdin_is_dev_null_unless_piped() {
    let run = sh("readlink /proc/self/fd/0").run();
    assert_eq!(run.texts(), ["/dev/null"]);
    let run = sh("readlink /proc/self/fd/0").piped_stdin().run();
    assert!(run.texts()[0].starts_with("pipe:["), "{}", run.transcript());
}

#[test]
fn env_and_current_dir_reach_the_lesson() {
    let dir = TempDir::new("lesson-test-cwd");
    let run = sh("echo \"$LESSON_TEST_X\"; pwd")
        .env("LESSON_TEST_X", "y z")
        .current_dir(dir.path())
        .run();
    let cwd = dir.path().to_string_lossy().into_owned();
    assert_eq!(run.texts(), ["y z", cwd.as_str()]);
}

#[test]
fn the_lesson_inherits_no_descriptor_but_its_three() {
    // Whatever started the tests may have left descriptors open (cargo's jobserver).
    let running = Lesson::new("sleep").arg("30").spawn();
    let pid = running.pid();
    let end = Instant::now() + Duration::from_secs(5);
    // Until the exec, the child holds all our descriptors; close-on-exec ends that.
    while process(pid).is_none_or(|p| p.command != "sleep") {
        assert!(Instant::now() < end, "{pid} never became sleep");
        thread::sleep(Duration::from_millis(5));
    }
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the lesson's fd directory")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"]);
    drop(running);
}

#[test]
fn the_test_process_is_a_child_subreaper() {
    let run = Lesson::new("true").run();
    assert_eq!(run.code(), Some(0));
    let mut flag: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer, which points
    // at a live local of that type.
    let rc =
        unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag, 0, 0, 0) };
    assert_eq!((rc, flag), (0, 1));
}

#[test]
fn the_lesson_runs_in_a_process_group_of_its_own() {
    let mut running = sh("sleep 0.3 & echo $$ $!; wait").spawn();
    let pid = running.pid();
    let line = running.next_line().expect("a line");
    assert_eq!(
        line.text,
        format!("{pid} {}", line.text.split(' ').nth(1).unwrap())
    );
    let child: i32 = line.text.split(' ').nth(1).unwrap().parse().unwrap();
    let mut members: Vec<i32> = group_members(pid).iter().map(|m| m.pid).collect();
    members.sort();
    assert_eq!(members, [pid.min(child), pid.max(child)]);
    let children = children_of(pid);
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!((children[0].pid, children[0].ppid), (child, pid));
    assert_eq!(process(child).map(|m| m.ppid), Some(pid));
    let me = process(pid).expect("running");
    assert_eq!(me.command, "sh");
    assert_eq!(me.ppid, i32::try_from(std::process::id()).unwrap());
    assert!(group_members(i32::MAX).is_empty());
    assert_eq!(running.finish().code(), Some(0));
}

#[test]
fn a_deadline_kills_a_lesson_that_never_ends() {
    let running = Lesson::new("sleep")
        .arg("30")
        .deadline(Duration::from_millis(300))
        .spawn();
    let pid = running.pid();
    let started = Instant::now();
    let why = failure_of(Duration::from_secs(10), move || {
        running.finish();
    });
    assert!(
        why.starts_with("deadline passed waiting for the lesson to exit"),
        "{why}"
    );
    assert!(why.contains("--- command: sleep 30"), "{why}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert!(gone_soon(pid), "the lesson {pid} is still there");
}

#[test]
fn an_exited_lesson_whose_output_stays_open_fails_at_the_deadline() {
    // The shell exits, its background sleep still holds the stdout pipe.
    let running = sh("sleep 30 & echo $!")
        .deadline(Duration::from_millis(500))
        .spawn();
    let why = failure_of(Duration::from_secs(10), move || {
        running.finish();
    });
    assert!(
        why.contains("something still holds its stdout/stderr"),
        "{why}"
    );
}

#[test]
fn next_line_returns_lines_then_none_at_the_end() {
    let mut running = sh("printf 'a\\nb\\n'").spawn();
    assert_eq!(running.next_line().map(|l| l.text).as_deref(), Some("a"));
    assert_eq!(running.next_line().map(|l| l.text).as_deref(), Some("b"));
    assert_eq!(running.next_line(), None);
    let run = running.finish();
    assert_eq!(run.texts(), ["a", "b"], "lines read one by one are kept");
}

#[test]
fn next_line_gives_up_at_the_deadline() {
    let mut running = Lesson::new("sleep")
        .arg("30")
        .deadline(Duration::from_millis(300))
        .spawn();
    let pid = running.pid();
    let why = failure_of(Duration::from_secs(10), move || {
        running.next_line();
    });
    assert!(
        why.starts_with("deadline passed waiting for a stdout line"),
        "{why}"
    );
    assert!(gone_soon(pid));
}

#[test]
fn wait_for_stderr_fails_at_once_when_stderr_closes_without_the_text() {
    let running = sh("echo other >&2; exit 1")
        .deadline(Duration::from_secs(20))
        .spawn();
    let started = Instant::now();
    let why = failure_of(Duration::from_secs(10), move || {
        let mut running = running;
        running.wait_for_stderr("ready");
    });
    assert!(why.starts_with("stderr closed without \"ready\""), "{why}");
    assert!(why.contains("--- stderr:\nother\n"), "{why}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not wait for the 20 s deadline: {:?}",
        started.elapsed()
    );
}

#[test]
fn wait_for_stderr_waits_for_the_text_and_gives_up_at_the_deadline() {
    let mut running = sh("sleep 0.2; echo ready >&2; exec sleep 30")
        .deadline(Duration::from_secs(2))
        .spawn();
    let pid = running.pid();
    assert_eq!(running.wait_for_stderr("ready"), "ready\n");
    let started = Instant::now();
    let why = failure_of(Duration::from_secs(10), move || {
        running.wait_for_stderr("never");
    });
    assert!(
        why.starts_with("deadline passed waiting for \"never\" on stderr"),
        "{why}"
    );
    assert!(why.contains("--- stderr:\nready\n"), "{why}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "waited to the deadline"
    );
    assert!(gone_soon(pid));
}

#[test]
fn written_bytes_reach_the_lesson_and_closing_stdin_is_its_eof() {
    let mut running = Lesson::new("cat")
        .piped_stdin()
        .deadline(Duration::from_secs(10))
        .spawn();
    assert!(running.write_stdin(b"a\n"));
    assert!(running.write_stdin(b"b\n"), "stdin stays open for more");
    running.close_stdin();
    assert_eq!(running.next_line().map(|l| l.text).as_deref(), Some("a"));
    assert_eq!(running.next_line().map(|l| l.text).as_deref(), Some("b"));
    // cat ends only at EOF: without close_stdin this would wait for the deadline.
    assert_eq!(running.next_line(), None);
    assert_eq!(running.finish().code(), Some(0));
}

#[test]
fn write_stdin_reports_a_lesson_that_closed_its_stdin() {
    let mut running = sh("exec 0<&-; echo closed; sleep 0.3")
        .piped_stdin()
        .spawn();
    assert_eq!(
        running.next_line().map(|l| l.text).as_deref(),
        Some("closed")
    );
    assert!(!running.write_stdin(b"nobody reads this\n"));
    assert_eq!(running.finish().code(), Some(0));
}

#[test]
fn write_stdin_gives_up_at_the_deadline_on_a_lesson_that_never_reads() {
    let mut running = Lesson::new("sleep")
        .arg("30")
        .piped_stdin()
        .deadline(Duration::from_millis(500))
        .spawn();
    let pid = running.pid();
    let why = failure_of(Duration::from_secs(10), move || {
        running.write_stdin(&vec![b'x'; 1 << 20]); // more than a pipe holds
    });
    assert!(
        why.starts_with("deadline passed writing to the lesson's stdin"),
        "{why}"
    );
    assert!(gone_soon(pid));
}

#[test]
fn signal_reaches_the_lesson_itself() {
    let running = Lesson::new("sleep").arg("30").spawn();
    running.signal(Signal::SIGTERM);
    let run = running.finish();
    assert_eq!(run.status.signal(), Some(libc::SIGTERM));
}

#[test]
fn send_to_a_process_that_is_gone_fails_the_test() {
    let run = Lesson::new("true").run();
    let pid = run.pid;
    let why = failure_of(Duration::from_secs(5), move || {
        send(pid, Signal::SIGTERM);
    });
    assert!(why.starts_with(&format!("kill -SIGTERM {pid}: ")), "{why}");
}

#[test]
fn dropping_a_running_lesson_kills_and_reaps_it() {
    let running = Lesson::new("sleep").arg("30").spawn();
    let pid = running.pid();
    drop(running);
    assert!(process(pid).is_none(), "{:?}", process(pid));
}

/// A shell that stops cleanly on SIGTERM, the way the lessons promise, with `exit` and
/// `say` changing what it does.
fn stoppable(exit: &str, say: &str, linger: &str) -> Running {
    // No `wait` for a background child: dash misses a signal that comes just before
    // `wait` blocks. A trap runs as soon as the short foreground sleep ends.
    let script = format!(
        "trap '{linger} {say} exit {exit}' TERM; echo up; \
         while :; do sleep 0.02; done"
    );
    let mut running = sh(&script).deadline(Duration::from_secs(5)).spawn();
    assert_eq!(running.next_line().map(|l| l.text).as_deref(), Some("up"));
    running
}

#[test]
fn stop_with_accepts_a_clean_stop() {
    let say = "echo \"stopped by SIGTERM\" >&2;";
    let run = stoppable("143", say, "").stop_with(Signal::SIGTERM);
    assert_eq!(run.code(), Some(143));
}

#[test]
fn stop_with_refuses_a_wrong_exit_status() {
    let say = "echo \"stopped by SIGTERM\" >&2;";
    let running = stoppable("0", say, "");
    let why = failure_of(Duration::from_secs(10), move || {
        running.stop_with(Signal::SIGTERM);
    });
    assert!(why.contains("right: Some(143)"), "{why}");
}

#[test]
fn stop_with_refuses_a_silent_stop() {
    let running = stoppable("143", "", "");
    let why = failure_of(Duration::from_secs(10), move || {
        running.stop_with(Signal::SIGTERM);
    });
    assert!(why.contains("--- stderr:\n"), "{why}");
    assert!(!why.contains(" took ") && !why.contains("right:"), "{why}");
}

#[test]
fn stop_with_refuses_a_slow_stop() {
    let say = "echo \"stopped by SIGTERM\" >&2;";
    let running = stoppable("143", say, "sleep 1.2;");
    let why = failure_of(Duration::from_secs(10), move || {
        running.stop_with(Signal::SIGTERM);
    });
    assert!(why.starts_with("SIGTERM took "), "{why}");
}

#[test]
fn a_zombie_left_in_the_group_fails_the_test_and_is_reaped() {
    // The shell becomes a `sleep` that never reaps the child the shell started.
    let mut running = sh("sleep 0.05 & echo $!; exec sleep 0.5").spawn();
    let zombie: i32 = running.next_line().expect("pid").text.parse().unwrap();
    let why = failure_of(Duration::from_secs(10), move || {
        running.finish();
    });
    assert!(why.contains("left processes in its group"), "{why}");
    assert!(
        why.contains(&format!("{zombie} sleep (state Z, parent ")),
        "{why}"
    );
    assert!(gone_soon(zombie), "the zombie {zombie} is not reaped");
}

#[test]
fn an_orphan_left_in_the_group_fails_the_test_at_once_and_is_killed() {
    let mut running = sh("sleep 30 >/dev/null 2>&1 & echo $!").spawn();
    let orphan: i32 = running.next_line().expect("pid").text.parse().unwrap();
    let started = Instant::now();
    let why = failure_of(Duration::from_secs(10), move || {
        running.finish();
    });
    assert!(started.elapsed() < Duration::from_millis(1500), "no grace");
    assert!(why.contains("left processes in its group"), "{why}");
    assert!(
        why.contains(&format!("{orphan} sleep (state S, parent ")),
        "{why}"
    );
    assert!(gone_soon(orphan), "the orphan {orphan} is still there");
}

#[test]
fn orphans_allowed_may_end_within_the_grace_and_are_reaped() {
    let mut running = sh("sleep 0.3 >/dev/null 2>&1 & echo $!").spawn();
    let orphan: i32 = running.next_line().expect("pid").text.parse().unwrap();
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(run.code(), Some(0));
    assert!(process(orphan).is_none(), "{:?}", process(orphan));
}

#[test]
fn orphans_allowed_that_outlive_the_grace_fail_the_test() {
    let mut running = sh("sleep 30 >/dev/null 2>&1 & echo $!").spawn();
    let orphan: i32 = running.next_line().expect("pid").text.parse().unwrap();
    let started = Instant::now();
    let why = failure_of(Duration::from_secs(10), move || {
        running.finish_allowing(Leftovers::Orphans);
    });
    assert!(started.elapsed() >= ORPHAN_GRACE, "{:?}", started.elapsed());
    assert!(why.contains("left processes in its group"), "{why}");
    assert!(gone_soon(orphan));
}

#[test]
fn shown_as_appends_the_arguments_quoted_as_typed() {
    let run = Lesson::new("echo")
        .shown_as("cargo run -q -p demo --")
        .args(["a b", "--n=1", "it's"])
        .merge_stderr()
        .run();
    assert_eq!(
        run.shown.as_deref(),
        Some("cargo run -q -p demo -- 'a b' --n=1 'it'\\''s'")
    );
    assert_eq!(run.label, "echo a b --n=1 it's");
    assert_eq!(run.texts(), ["a b --n=1 it's"]);
    assert_eq!(Lesson::new("true").arg("x").run().shown, None);
}

#[test]
fn a_transcript_is_the_shown_command_and_the_output_compared_after_normalize() {
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        eprintln!(
            "skipped: UPDATE_TRANSCRIPTS makes check_transcript write, not compare"
        );
        return;
    }
    let dir = TempDir::new("lesson-test-transcript");
    let file = dir.path().join("demo.txt");
    let run = sh("echo \"Parent $$ at 1795328890.25\"")
        .shown_as("cargo run -q -p demo --")
        .merge_stderr()
        .run();
    // Another run: other pid, other time; same text otherwise.
    std::fs::write(
        &file,
        "$ cargo run -q -p demo --\nParent 97   at 1628658450.5\n",
    )
    .unwrap();
    let (file, run) = bounded(move || {
        check_transcript_of(&file, &run);
        (file, run)
    });
    std::fs::write(
        &file,
        "$ cargo run -q -p demo --\nChild 97 at 1628658450.5\n",
    )
    .unwrap();
    let why = failure_of(Duration::from_secs(5), move || {
        check_transcript_of(&file, &run);
    });
    assert!(
        why.contains("no longer matches the lesson's output"),
        "{why}"
    );
    let missing = dir.path().join("missing.txt");
    let why = failure_of(Duration::from_secs(5), move || {
        check_transcript(&missing, "x\n");
    });
    assert!(why.contains("UPDATE_TRANSCRIPTS=1"), "{why}");
}

/// A fake lesson that reports a usage error the way the lessons do.
fn usage_lesson(stdout: &str, code: &str) -> impl Fn() -> Lesson {
    let script = format!(
        "echo {stdout}; echo \"demo: bad $1\" >&2; echo 'Usage: demo [--n N]' >&2; \
         exit {code}"
    );
    move || sh(&script).arg("demo")
}

#[test]
fn assert_usage_errors_accepts_the_lessons_usage_errors() {
    let cases: &[(&[&str], &str)] = &[(&["--n"], "bad --n"), (&["x"], "bad x")];
    assert_usage_errors(usage_lesson("-n", "2"), "Usage: demo", cases);
}

#[test]
fn assert_usage_errors_refuses_what_is_not_a_usage_error() {
    let refuses =
        |lesson: Box<dyn Fn() -> Lesson + Send>, usage: &'static str, message| {
            let why = failure_of(Duration::from_secs(10), move || {
                let cases: &[(&[&str], &str)] = &[(&["--n"], message)];
                assert_usage_errors(lesson, usage, cases);
            });
            assert!(why.contains("--- command: sh -c"), "{why}");
        };
    refuses(Box::new(usage_lesson("-n", "1")), "Usage: demo", "bad --n");
    refuses(Box::new(usage_lesson("-n", "2")), "Usage: other", "bad --n");
    refuses(
        Box::new(usage_lesson("-n", "2")),
        "Usage: demo",
        "worse --n",
    );
    refuses(
        Box::new(usage_lesson("on-stdout", "2")),
        "Usage: demo",
        "bad --n",
    );
}

#[test]
fn assert_matches_document_masks_times_and_each_sides_pid() {
    let run = sh("echo \"Parent $$ got [b'Spam 0'] at 1795328890.25\"").run();
    let document = ["Parent 9788 got [b'Spam 0'] at 1628658450.6990933"];
    let run = bounded(move || {
        assert_matches_document(&run, &document, 9788);
        run
    });
    let why = failure_of(Duration::from_secs(5), move || {
        let other = ["Parent 9788 got [b'Spam 1'] at 1628658450.6990933"];
        assert_matches_document(&run, &other, 9788);
    });
    assert!(why.contains("--- command: sh -c"), "{why}");
}

#[test]
fn temp_dir_lists_its_entries_sorted_and_is_removed_on_drop() {
    let dir = TempDir::new("lesson-test-tempdir");
    let other = TempDir::new("lesson-test-tempdir");
    assert_ne!(dir.path(), other.path());
    assert!(dir.path().is_dir());
    let name = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("lesson-test-tempdir-{}-", std::process::id())),
        "{name}"
    );
    assert_eq!(dir.entries(), Vec::<String>::new());
    std::fs::write(dir.path().join("b"), "").unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/inner"), "").unwrap();
    assert_eq!(dir.entries(), ["a", "b"]);
    let path = dir.path().to_owned();
    drop(dir);
    assert!(!path.exists(), "{} is left behind", path.display());
}

#[test]
fn reap_within_waits_for_a_child_to_end_and_gives_up_on_others_at_the_bound() {
    // A child of the test process, as an orphan handed to the subreaper would be.
    #[allow(clippy::zombie_processes)] // reap_within is the wait under test
    let child = Command::new("sleep")
        .arg("0.3")
        .spawn()
        .expect("start sleep");
    let pid = i32::try_from(child.id()).unwrap();
    let started = Instant::now();
    reap_within(&[pid], Duration::from_secs(5));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for it"
    );
    assert!(process(pid).is_none(), "reaped: {:?}", process(pid));
    // Nothing to reap: back at once.
    let started = Instant::now();
    reap_within(&[], Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_millis(100));
    // pid 1 is never ours: kept until the bound, not longer.
    let started = Instant::now();
    reap_within(&[1], Duration::from_millis(200));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

// ---------------------------------------------------------------- the fault fixtures

#[test]
fn stalled_stdout_blocks_the_writer_until_the_pipe_breaks() {
    use std::os::unix::process::ExitStatusExt;
    let yes = ["/usr/bin/yes", "/bin/yes"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect("coreutils' yes");
    let (mut stalled, running) = faults::StalledStdout::start(yes, "stalled");
    // Blocked in write, not ended: the fixture returned only once the FIFO stayed full.
    let state = process(running.pid()).expect("yes is still there").state;
    assert!(state == 'S' || state == 'R', "state {state}");
    assert!(
        stalled.queued() > 60_000,
        "{} bytes queued",
        stalled.queued()
    );
    stalled.break_pipe();
    assert_eq!(stalled.queued(), 0);
    let run = running.finish();
    // yes keeps SIGPIPE's default action: its next write kills it.
    assert_eq!(run.status.signal(), Some(13), "{}", run.transcript());
}

#[test]
fn stop_process_returns_once_the_process_is_stopped() {
    let running = sh("exec sleep 30").spawn();
    faults::stop_process(running.pid());
    assert_eq!(process(running.pid()).map(|p| p.state), Some('T'));
    send(running.pid(), Signal::SIGKILL);
    let run = running.finish();
    assert_eq!(run.code(), None, "{}", run.transcript());
}

#[test]
fn as_nobody_runs_a_program_as_nobody_or_says_why_not() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .any(|path| std::path::Path::new(path).exists());
    let nobody = faults::as_nobody("/usr/bin/id");
    if !(root && setpriv) {
        assert!(nobody.is_none(), "needs root and setpriv");
        return;
    }
    let nobody = nobody.expect("as root with setpriv, as_nobody works");
    let run = nobody.args(["/usr/bin/id", "-u"]).run();
    assert_eq!(run.texts(), ["65534"], "{}", run.transcript());
    // A program nobody may not execute: skipped, not run.
    let private = TempDir::new("as-nobody");
    let program = private.path().join("prog");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let mode = std::fs::Permissions::from_mode(0o700);
    std::fs::set_permissions(&program, mode).unwrap();
    assert!(faults::as_nobody(program.to_str().unwrap()).is_none());
}

#[test]
fn stalled_stdout_waits_for_a_slow_writer_to_block() {
    // 1000 bytes every 20 ms: about 1.3 s to fill the FIFO, and a write of 1000 bytes
    // (below PIPE_BUF) waits for room for all of them, so it blocks a little short of
    // 64 KiB (64000 here: 4 writes fill each of the pipe's 16 pages of 4096 bytes, and a
    // write never straddles two).
    let slow = "-c 'while :; do printf %1000s x; sleep 0.02; done'";
    let (mut stalled, running) = faults::StalledStdout::start("/bin/sh", slow);
    let full = stalled.queued();
    thread::sleep(Duration::from_millis(200));
    assert!(full > 60_000, "returned at {full} bytes queued");
    assert_eq!(
        full,
        stalled.queued(),
        "returned while the writer was still writing"
    );
    stalled.break_pipe();
    let run = running.finish();
    assert_eq!(run.code(), None, "{}", run.transcript());
}
