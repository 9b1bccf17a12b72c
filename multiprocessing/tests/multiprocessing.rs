//! The lesson's promises, checked by running its binaries as subprocesses with
//! deadlines. The harness fails any test after which a child is left in the
//! lesson's process group (a zombie nobody reaped, or an orphan still running).

use lesson_test::faults::as_nobody;
use lesson_test::{
    Finished, Leftovers, Lesson, TempDir, assert_usage_errors, check_transcript,
    mask_number, number_after, process, send,
};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const MULTI1: &str = env!("CARGO_BIN_EXE_multi1");
const MULTI2: &str = env!("CARGO_BIN_EXE_multi2");
const MULTI3: &str = env!("CARGO_BIN_EXE_multi3");
const MULTI4: &str = env!("CARGO_BIN_EXE_multi4");
const MULTI5: &str = env!("CARGO_BIN_EXE_multi5");
const MULTI5_CHILD: &str = env!("CARGO_BIN_EXE_multi5-child");

const ALL: [&str; 6] = [MULTI1, MULTI2, MULTI3, MULTI4, MULTI5, MULTI5_CHILD];

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
}

/// The book's command for a binary of this package.
fn shown(bin: &str) -> String {
    let name = Path::new(bin).file_name().unwrap().to_string_lossy();
    format!("cargo run -q -p multiprocessing --bin {name}")
}

/// `bash -c script bin`: the script runs the lesson as "$0".
fn in_shell(script: &str, bin: &str) -> Lesson {
    lesson("bash").args(["-c", script, bin])
}

fn assert_ok(run: &Finished) {
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
}

/// The pid after `pid:` in a multi1/multi3 line (multi3 pads it to four places,
/// as the document's `%4s` does: `pid: 812`).
fn pid_in(line: &str) -> i32 {
    number_after(&unpad(line), "pid:")
}

/// The line without the padding after `pid:`.
fn unpad(line: &str) -> String {
    match line.split_once("pid:") {
        Some((head, tail)) => format!("{head}pid:{}", tail.trim_start()),
        None => line.to_owned(),
    }
}

// ---------------------------------------------------------------- multi1

#[test]
fn multi1_prints_every_line_whole_under_the_lock_and_reaps_six_children() {
    let run = lesson(MULTI1).run();
    assert_ok(&run);
    let lines = run.texts();
    assert_eq!(lines.len(), 8, "{}", run.transcript());
    let me = run.pid;
    assert_eq!(lines[0], format!("function call: name:multi1, pid:{me}"));
    // The joined child comes second, before the parent goes on.
    assert!(
        lines[1].starts_with("spawned child: name:multi1, pid:"),
        "{lines:?}"
    );
    let mut labels = BTreeSet::new();
    let mut pids = BTreeSet::new();
    for line in &lines[1..] {
        if *line == "Main process exit." {
            assert!(labels.insert("main".to_owned()), "{lines:?}");
            continue;
        }
        let (label, rest) = line.split_once(": ").expect("label");
        assert!(rest.starts_with("name:multi1, pid:"), "{line}");
        let pid = pid_in(line);
        assert!(pid != me && pids.insert(pid), "{lines:?}");
        assert!(labels.insert(label.to_owned()), "{lines:?}");
    }
    let expected: BTreeSet<String> = ["spawned child", "main"]
        .into_iter()
        .map(str::to_owned)
        .chain((0..5).map(|i| format!("run process {i}")))
        .collect();
    assert_eq!(labels, expected);
    assert_eq!(pids.len(), 6, "six children");
}

#[test]
fn multi1_book_transcript() {
    let run = lesson(MULTI1).shown_as(&shown(MULTI1)).merge_stderr().run();
    assert_ok(&run);
    check_unordered_transcript("multi1.txt", &run, |line| line.to_owned());
}

// ---------------------------------------------------------------- multi2

#[test]
fn multi2_carries_a_list_a_dict_and_a_set_both_ways() {
    let run = lesson(MULTI2).shown_as(&shown(MULTI2)).merge_stderr().run();
    assert_ok(&run);
    assert_eq!(
        run.texts(),
        [
            "parent got: ['spam', 42, 'eggs']",
            "parent got: {'name': 'Bob', 'spam': 42}",
            "talker got: {'aa', 'mm', 'pp', 'ss'}",
            "parent exit",
        ],
        "{}",
        run.transcript()
    );
    check_transcript(&transcript_path("multi2.txt"), &book_text(&run));
}

// ---------------------------------------------------------------- multi3

/// The document's lines, with the pids masked; loop2's children print the shared
/// values as they are when each child runs, so those are checked apart.
fn check_document_part(run: &Finished) -> Vec<String> {
    let lines = run.texts();
    let me = run.pid;
    let masked: Vec<String> = lines
        .iter()
        .map(|line| match line.split_once("pid:") {
            Some(_) if pid_in(line) == me => {
                mask_number(&unpad(line), me.into(), "<me>")
            }
            Some(_) => mask_number(&unpad(line), pid_in(line).into(), "<child>"),
            None => (*line).to_owned(),
        })
        .collect();
    let expected_head = [
        "start value : pid:<me>, global:0, value:0, array:[0.0, 0.0, 0.0]",
        "child       : pid:<child>, global:0, value:0, array:[0.0, 0.0, 0.0]",
        "",
        "loop1 (updates in parent, serial children)...",
        "process 0   : pid:<child>, global:1, value:1, array:[1.0, 0.0, 0.0]",
        "process 1   : pid:<child>, global:2, value:2, array:[1.0, 1.0, 0.0]",
        "process 2   : pid:<child>, global:3, value:3, array:[1.0, 1.0, 1.0]",
        "",
        "loop2 (updates in parent, parallel children)...",
    ];
    assert_eq!(masked[..9], expected_head, "{}", run.transcript());
    // loop2: each child has its own copy of the global, taken when it was forked
    // (4, 5, 6); the shared value is whatever the parent had reached when it
    // printed.
    let mut globals = BTreeMap::new();
    for line in &masked[9..12] {
        let label = &line[..12];
        let global = number_after(line, "global:");
        let value = number_after(line, "value:");
        assert!((4..=6).contains(&value), "{line}");
        assert!(line.contains("pid:<child>"), "{line}");
        globals.insert(label.trim_end().to_owned(), global);
    }
    let expected: BTreeMap<String, i32> =
        (0..3).map(|i| (format!("process {i}"), 4 + i)).collect();
    assert_eq!(globals, expected, "{}", run.transcript());
    let expected_tail = [
        "",
        "loop3 (updates in serial children)...",
        "parent temp : pid:<me>, global:6, value:9, array:[5.0, 5.0, 5.0]",
        "",
        "loop4 (updates in parallel children)...",
        "parent end  : pid:<me>, global:6, value:12, array:[8.0, 8.0, 8.0]",
    ];
    assert_eq!(masked[12..18], expected_tail, "{}", run.transcript());
    masked
}

#[test]
fn multi3_document_loops_end_with_the_documents_values() {
    let run = lesson(MULTI3).arg("--document-only").run();
    assert_ok(&run);
    assert_eq!(check_document_part(&run).len(), 18, "{}", run.transcript());
}

/// `value:5, array:[2.0, 1.0, 1.0]` in a loop2 line varies from run to run.
fn mask_loop2(line: &str) -> String {
    if line.starts_with("process ")
        && let Some((head, _)) = line.split_once(", value:")
        && number_after(line, "global:") >= 4
    {
        return format!("{head}, value:<value>, array:<array>");
    }
    line.to_owned()
}

/// `(total, lost)` from the race's line for `label`.
fn race_result(run: &Finished, label: &str) -> (u64, u64) {
    let line = run
        .texts()
        .into_iter()
        .find(|line| line.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line\n{}", run.transcript()));
    let total = number_after(line, "total:");
    let lost = number_after(line, "lost:");
    (total.try_into().unwrap(), lost.try_into().unwrap())
}

#[test]
fn multi3_plain_stores_lose_updates_and_fetch_add_and_the_lock_lose_none() {
    // Enough additions that the children overlap on a busy machine too: each runs
    // for tens of milliseconds, many scheduler time slices.
    let increments: u64 = 3_000_000;
    let run = lesson(MULTI3)
        .args(["--children", "3", "--increments", &increments.to_string()])
        .deadline(Duration::from_secs(25))
        .run();
    assert_ok(&run);
    check_document_part(&run);
    let expected = 3 * increments;
    let (total, lost) = race_result(&run, "load + store (plain) : ");
    // Some are lost, not all: the counter did count.
    assert!(
        lost > 0 && total > 0 && total + lost == expected,
        "{}",
        run.transcript()
    );
    for label in ["atomic fetch_add     : ", "under the lock       : "] {
        assert_eq!(
            race_result(&run, label),
            (expected, 0),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn multi3_book_transcript_of_the_race() {
    let run = lesson(MULTI3)
        .shown_as(&shown(MULTI3))
        .args(["--", "--increments", "1000000"])
        .merge_stderr()
        .run();
    assert_ok(&run);
    // Only the race's header and labels are compared: the counts vary.
    check_unordered_transcript("multi3.txt", &run, |line| {
        let line = mask_loop2(line);
        match line.split_once(": total:") {
            Some((label, _)) => format!("{label}: total:<n>, lost:<n>"),
            None => line,
        }
    });
}

#[test]
fn multi3_shares_an_anonymous_mapping_and_leaves_nothing_in_dev_shm() {
    let before = dev_shm();
    let mut running = lesson(MULTI3)
        .args(["--increments", "100000000"])
        .deadline(Duration::from_secs(20))
        .spawn();
    // The race has started: the mappings exist.
    while running
        .next_line()
        .is_some_and(|line| !line.text.starts_with("lost updates"))
    {}
    racers(running.pid());
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", running.pid()))
        .expect("read maps");
    // A MAP_SHARED|MAP_ANONYMOUS mapping shows as `rw-s` backed by `/dev/zero
    // (deleted)`.
    let shared: Vec<&str> = maps
        .lines()
        .filter(|line| line.contains(" rw-s ") && line.contains("/dev/zero"))
        .collect();
    assert!(
        !shared.is_empty(),
        "the race's shared mapping expected:\n{maps}"
    );
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("children ended and reaped"),
        "{}",
        run.transcript()
    );
    assert_eq!(dev_shm(), before, "/dev/shm changed");
}

fn dev_shm() -> BTreeSet<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                // Ours would be named after the lesson; others' (a Python run's
                // `sem.mp-*` next door) are not our business.
                .filter(|name| name.contains("multi"))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- multi4

/// Checks multi4's output: the start line, each producer's three numbered lines and
/// end mark, every record posted exactly once, the finish line. Returns the `no
/// data...` count.
fn check_queue_run(run: &Finished, records: i64) -> usize {
    assert_ok(run);
    let lines = run.texts();
    let me = run.pid;
    assert_eq!(lines[0], format!("start {me}"), "{}", run.transcript());
    assert_eq!(
        lines.last().copied(),
        Some(format!("finish {me} 0").as_str()),
        "{}",
        run.transcript()
    );
    let mut made = Vec::new();
    let mut posted = Vec::new();
    let mut ends = BTreeSet::new();
    let mut no_data = 0;
    for line in &lines[1..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("  @ ") {
            let (pid, state) = rest.split_once(' ').expect("pid and state");
            let pid: i32 = pid.parse().unwrap();
            if state == "-" {
                assert!(ends.insert(pid), "{line}");
            } else {
                assert!(
                    !ends.contains(&pid),
                    "a record after the end mark: {line}"
                );
                made.push((pid, state.parse::<i64>().unwrap()));
            }
        } else if let Some(rest) = line.strip_prefix("posted: [") {
            let (pid, state) = rest.trim_end_matches(']').split_once(", ").unwrap();
            posted
                .push((pid.parse::<i32>().unwrap(), state.parse::<i64>().unwrap()));
        } else {
            assert_eq!(*line, "no data...", "{}", run.transcript());
            no_data += 1;
        }
    }
    assert_eq!(ends.len(), 3, "{}", run.transcript());
    assert_eq!(made.len(), 3 * records as usize, "{}", run.transcript());
    let mut states: Vec<i64> = made.iter().map(|(_, state)| *state).collect();
    states.sort_unstable();
    let expected: Vec<i64> = [0, 100, 1000]
        .into_iter()
        .flat_map(|start| (1..=records).map(move |i| start + i))
        .collect();
    assert_eq!(states, expected, "{}", run.transcript());
    // Every record made is posted exactly once: same multiset.
    made.sort_unstable();
    posted.sort_unstable();
    assert_eq!(made, posted, "{}", run.transcript());
    no_data
}

#[test]
fn multi4_polls_and_delivers_every_record_once() {
    let run = lesson(MULTI4).args(["--speed", "2"]).run();
    // The first look comes at 0.25 s, the first record at 0.5 s; and the parent
    // looks every 0.25 s, no more often.
    let no_data = check_queue_run(&run, 3) as f64;
    let looks = run.elapsed.as_secs_f64() / 0.25;
    assert!(
        no_data >= 1.0 && no_data <= looks + 1.0,
        "{}",
        run.transcript()
    );
}

#[test]
fn multi4_blocking_delivers_every_record_once_without_polling() {
    let run = lesson(MULTI4)
        .args(["--blocking", "--speed", "100", "--count", "40"])
        .run();
    assert_eq!(check_queue_run(&run, 40), 0, "{}", run.transcript());
}

#[test]
fn multi4_book_transcript() {
    let run = lesson(MULTI4)
        .shown_as(&shown(MULTI4))
        .args(["--", "--speed", "2"])
        .merge_stderr()
        .run();
    check_queue_run(&run, 3);
    check_unordered_transcript("multi4.txt", &run, |line| line.to_owned());
}

#[test]
fn multi4_stop_signals_end_and_reap_the_producers_while_they_sleep() {
    for (signal, blocking) in [
        (Signal::SIGINT, false),
        (Signal::SIGTERM, true),
        (Signal::SIGHUP, false),
    ] {
        let mut options = vec!["--speed", "0.01"]; // producers sleep 100 s
        if blocking {
            options.push("--blocking");
        }
        let mut running = lesson(MULTI4).args(options).spawn();
        running.next_line().expect("start line");
        std::thread::sleep(Duration::from_millis(100)); // producers forked
        let run = running.stop_with(signal);
        assert!(
            run.stderr.contains("3 children ended and reaped"),
            "{}",
            run.transcript()
        );
        // They end on SIGTERM: no SIGKILL needed.
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
    }
}

#[test]
fn a_child_that_does_not_end_on_sigterm_gets_sigkill_after_the_grace() {
    // A blocked signal stays blocked across exec and fork: started with SIGTERM
    // blocked, multi4's producers cannot act on the parent's SIGTERM. (The parent
    // cannot either; it is stopped with SIGINT.) Python only sets the mask up.
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!("skipped: no python3 to start multi4 with SIGTERM blocked");
        return;
    }
    let block_and_exec = "import os, signal, sys; \
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM]); \
        os.execv(sys.argv[1], sys.argv[1:])";
    let mut running = lesson("python3")
        .args(["-c", block_and_exec, MULTI4, "--speed", "0.01"])
        .spawn();
    running.next_line().expect("start line");
    let producers = racers(running.pid());
    let run = running.stop_with(Signal::SIGINT);
    for producer in producers {
        let note =
            format!("child {producer} still running 300ms after SIGTERM: SIGKILL");
        assert!(run.stderr.contains(&note), "{}", run.transcript());
    }
    assert!(
        run.stderr.contains("3 children ended and reaped"),
        "{}",
        run.transcript()
    );
}

#[test]
fn ctrl_c_at_the_terminal_stops_parent_and_children_together() {
    // The terminal sends SIGINT to the whole foreground process group: the children
    // die of it (their default action) while the parent cleans up.
    let mut running = lesson(MULTI3).args(["--increments", "100000000"]).spawn();
    while running
        .next_line()
        .is_some_and(|line| !line.text.starts_with("lost updates"))
    {}
    racers(running.pid());
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

#[test]
fn multi4_producers_end_when_the_parent_is_killed() {
    let mut running = lesson(MULTI4).args(["--speed", "0.01"]).spawn();
    running.next_line().expect("start line");
    std::thread::sleep(Duration::from_millis(100));
    running.signal(Signal::SIGKILL);
    // The parent-death signal ends them: the harness waits for them briefly.
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
}

#[test]
fn multi4_a_killed_producer_means_missing_records_reported_not_a_hang() {
    let mut running = lesson(MULTI4).args(["--speed", "10"]).spawn();
    let victim = loop {
        let line = running.next_line().expect("a line");
        if let Some(rest) = line.text.strip_prefix("  @ ") {
            break number_after(rest, "");
        }
    };
    send(victim, Signal::SIGKILL);
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("queue: every producer is gone")
            && run.stderr.contains("records missing"),
        "{}",
        run.transcript()
    );
}

// ---------------------------------------------------------------- multi5

#[test]
fn multi5_children_keep_their_pid_across_exec() {
    let run = lesson(MULTI5).run();
    assert_ok(&run);
    // From the parent's notes: which pid runs which number.
    let mut forked = BTreeMap::new();
    for line in run.stderr.lines() {
        let pid = number_after(line, "forked child ");
        let i = number_after(line, "multi5-child ");
        forked.insert(i, pid);
    }
    let mut hello = BTreeMap::new();
    for line in run.texts() {
        if line == "parent exit" {
            continue;
        }
        let rest = line.strip_prefix("Hello from child ").expect(line);
        let (pid, i) = rest.split_once(' ').unwrap();
        hello.insert(i.parse::<i32>().unwrap(), pid.parse::<i32>().unwrap());
    }
    assert_eq!(forked.len(), 5, "{}", run.transcript());
    assert_eq!(hello, forked, "{}", run.transcript());
    assert!(run.texts().contains(&"parent exit"), "{}", run.transcript());
}

#[test]
fn multi5_book_transcript() {
    let run = lesson(MULTI5).shown_as(&shown(MULTI5)).merge_stderr().run();
    assert_ok(&run);
    check_unordered_transcript("multi5.txt", &run, |line| line.to_owned());
}

#[test]
fn multi5_without_its_second_program_exits_127_after_reaping_all() {
    let dir = TempDir::new("multi5-alone");
    let copy = dir.path().join("multi5");
    std::fs::copy(MULTI5, &copy).expect("copy multi5");
    let run = lesson(copy.to_str().unwrap()).run();
    assert_eq!(run.code(), Some(127), "{}", run.transcript());
    assert_eq!(run.texts(), ["parent exit"], "{}", run.transcript());
    let missing = format!(
        "execv {}: ENOENT",
        dir.path().join("multi5-child").display()
    );
    assert_eq!(
        run.stderr.matches(&missing).count(),
        5,
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("could not run"), "{}", run.transcript());
}

#[test]
fn multi5_child_prints_its_own_pid_and_argument() {
    let run = lesson(MULTI5_CHILD).arg("7").run();
    assert_ok(&run);
    assert_eq!(run.texts(), [format!("Hello from child {} 7", run.pid)]);
    let run = lesson(MULTI5_CHILD).args(["--", "-3"]).run();
    assert_eq!(run.texts(), [format!("Hello from child {} -3", run.pid)]);
    // After `--`, even `--help` is the argument.
    let run = lesson(MULTI5_CHILD).args(["--", "--help"]).run();
    assert_eq!(
        run.texts(),
        [format!("Hello from child {} --help", run.pid)]
    );
    // ... and `--show-fds`: no table, it is printed.
    let run = lesson(MULTI5_CHILD).args(["--", "--show-fds"]).run();
    assert_ok(&run);
    assert_eq!(
        run.texts(),
        [format!("Hello from child {} --show-fds", run.pid)]
    );
    assert!(!run.stderr.contains("[fds]"), "{}", run.transcript());
    // Before it, a table as exec left it, then the line.
    let run = lesson(MULTI5_CHILD).args(["--show-fds", "7"]).run();
    assert_ok(&run);
    assert_eq!(run.texts(), [format!("Hello from child {} 7", run.pid)]);
    assert!(
        run.stderr
            .starts_with(&format!("[fds] multi5-child {}, after exec:", run.pid)),
        "{}",
        run.transcript()
    );
}

// ---------------------------------------------------------------- every program

#[test]
fn bad_command_lines_exit_2_naming_the_problem() {
    for bin in [MULTI1, MULTI2, MULTI5] {
        let name = Path::new(bin).file_name().unwrap().to_string_lossy();
        assert_usage_errors(
            || lesson(bin),
            &format!("Usage: {name}"),
            &[
                (&["--bogus"], "unknown option --bogus"),
                (&["extra"], "unexpected argument \"extra\""),
            ],
        );
    }
    assert_usage_errors(
        || lesson(MULTI3),
        "Usage: multi3",
        &[
            (
                &["--children", "1"],
                "--children \"1\": must be from 2 to 64",
            ),
            (
                &["--children", "65"],
                "--children \"65\": must be from 2 to 64",
            ),
            (&["--increments", "0"], "must be from 1 to 100000000"),
            (
                &["--increments", "100000001"],
                "must be from 1 to 100000000",
            ),
            (&["--increments"], "--increments needs a value"),
            (&["--document-only=yes"], "does not take a value"),
        ],
    );
    assert_usage_errors(
        || lesson(MULTI4),
        "Usage: multi4",
        &[
            (&["--count", "0"], "--count \"0\": must be from 1 to 1000"),
            (
                &["--count", "1001"],
                "--count \"1001\": must be from 1 to 1000",
            ),
            (&["--speed", "0"], "--speed"),
            (&["--speed", "1e7"], "must be from 0.001 to 1000000"),
            (&["--blocking", "--what"], "unknown option --what"),
        ],
    );
    assert_usage_errors(
        || lesson(MULTI5_CHILD),
        "Usage: multi5-child [--show-fds] ARG",
        &[
            (&[], "missing ARG"),
            (&["1", "2"], "unexpected argument \"2\""),
            (&["-x"], "unknown option -x"),
        ],
    );
}

#[test]
fn numbers_at_the_edges_of_their_ranges_are_accepted() {
    let run = lesson(MULTI3)
        .args(["--children", "64", "--increments", "1"])
        .run();
    assert_ok(&run);
    assert_eq!(race_result(&run, "atomic fetch_add"), (64, 0));
    assert_eq!(race_result(&run, "under the lock"), (64, 0));
    let run = lesson(MULTI4)
        .args(["--count", "1", "--speed", "1000000", "--blocking"])
        .run();
    check_queue_run(&run, 1);
}

#[test]
fn help_is_printed_on_stdout_with_every_option_and_fails_into_a_full_stdout() {
    for bin in ALL {
        let run = lesson(bin).arg("--help").run();
        assert_ok(&run);
        let help = run.stdout_text();
        let name = Path::new(bin).file_name().unwrap().to_string_lossy();
        assert!(help.starts_with(&format!("Usage: {name}")), "{help}");
        assert!(help.contains("  -h, --help "), "{help}");
        assert_descriptions_aligned(&help);
        let full = in_shell(r#"exec "$0" --help >/dev/full"#, bin).run();
        assert_eq!(full.code(), Some(1), "{}", full.transcript());
        assert!(
            full.stderr.contains("write stdout"),
            "{}",
            full.transcript()
        );
    }
    let help = lesson(MULTI3).arg("-h").run().stdout_text();
    for option in ["--children N", "--increments N", "--document-only"] {
        assert!(help.contains(&format!("\n  {option}")), "{help}");
    }
    let help = lesson(MULTI4).arg("-h").run().stdout_text();
    for option in ["--count N", "--speed X", "--blocking"] {
        assert!(help.contains(&format!("\n  {option}")), "{help}");
    }
    // --count means records per producer here: the shared pacing help's --count
    // line must not come along with its --speed lines.
    assert_eq!(help.matches("  --count N").count(), 1, "{help}");
    assert!(!help.contains("stop after N messages"), "{help}");
}

/// Every option line is indented two spaces and every description (continuation
/// lines included) starts in one column.
fn assert_descriptions_aligned(help: &str) {
    let options = help
        .split_once("Options:\n")
        .expect("an Options: section")
        .1
        .split("\n\n")
        .next()
        .unwrap();
    let mut columns = BTreeSet::new();
    for line in options.lines() {
        assert!(line.starts_with("  "), "{line:?}\n{help}");
        let column = if line.starts_with("  -") {
            let gap = line[2..].find("  ").expect("two spaces before the text") + 2;
            gap + line[gap..].len() - line[gap..].trim_start().len()
        } else {
            line.len() - line.trim_start().len()
        };
        columns.insert(column);
    }
    assert_eq!(columns.len(), 1, "descriptions not aligned:\n{help}");
}

#[test]
fn a_full_stdout_is_reported_and_every_child_reaped() {
    for (bin, args) in [
        (MULTI1, ""),
        (MULTI2, ""),
        (MULTI3, "--increments 10"),
        (MULTI4, "--speed 50"),
        (MULTI5, ""),
    ] {
        let run = in_shell(&format!(r#"exec "$0" {args} >/dev/full"#), bin).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr.contains("write stdout: ENOSPC"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_closed_stdout_pipe_is_reported_and_every_child_reaped() {
    // `multi1 | true`: the reader is gone before the first line (the lesson starts
    // after it), so every write gets EPIPE; Rust ignores SIGPIPE, so `println!`
    // would panic here.
    for bin in [MULTI1, MULTI2, MULTI4] {
        let script =
            r#"{ sleep 0.2; "$0" --speed 50 2>&3; echo "status $?" >&3; } | true"#;
        let script = if bin == MULTI4 {
            script.to_owned()
        } else {
            script.replace(" --speed 50", "")
        };
        let run = in_shell(&format!("{{ {script}; }} 3>&2"), bin).run();
        assert!(run.stderr.contains("status 1"), "{}", run.transcript());
        assert!(
            run.stderr.contains("write stdout: EPIPE"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_child_that_cannot_write_names_the_error_and_exits_1() {
    // `head -n 1` takes `start <pid>` and is gone long before the producers' first
    // line (0.5 s later); with --blocking the parent writes nothing meanwhile. So the
    // producers are the ones to meet EPIPE.
    let script = r#""$0" --blocking --speed 2 --count 1 | head -n 1
        echo "status ${PIPESTATUS[0]}" >&2"#;
    let run = in_shell(script, MULTI4).run();
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    let failed = run
        .stderr
        .lines()
        .filter(|line| {
            line.starts_with("multi4: child ")
                && line.ends_with("write stdout: EPIPE: Broken pipe")
        })
        .count();
    assert_eq!(failed, 3, "{}", run.transcript());
    assert!(
        run.stderr
            .contains("queue: every producer is gone, 3 records missing"),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_full_stderr_changes_nothing_but_the_notes() {
    let run = in_shell(r#"exec "$0" 2>/dev/full"#, MULTI5).run();
    assert_ok(&run);
    assert_eq!(run.lines.len(), 6, "{}", run.transcript());
}

/// A shell script that closes every descriptor above 2 it inherited (a test runner
/// may pass some on), sets `ulimit -n`, and runs the lesson.
fn with_descriptors(limit: u32) -> String {
    format!(
        r#"for fd in $(ls /proc/$$/fd); do
             [ "$fd" -gt 2 ] && eval "exec $fd>&-"
           done
           ulimit -n {limit}; exec "$0""#
    )
}

#[test]
fn running_out_of_descriptors_is_reported() {
    // Eight descriptors: the stop signals' self-pipe fits, the duplex pipe does not.
    let run = in_shell(&with_descriptors(8), MULTI2).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("socketpair AF_UNIX SOCK_STREAM: EMFILE"),
        "{}",
        run.transcript()
    );
    // Six: not even the self-pipe's copies (one per stop signal).
    let run = in_shell(&with_descriptors(6), MULTI1).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("dup (self-pipe): Too many open files"),
        "{}",
        run.transcript()
    );
    // Seven: the self-pipe fits (3 to 6), the pidfd that join waits on does not;
    // the child already forked is ended and reaped.
    let run = in_shell(&with_descriptors(7), MULTI1).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("pidfd_open ")
            && run.stderr.contains(
                ": EMFILE: Too many open files; 1 child ended and reaped"
            ),
        "{}",
        run.transcript()
    );
}

#[test]
fn a_fork_that_fails_midway_ends_and_reaps_the_children_already_made() {
    // RLIMIT_NPROC does not bind root: run as nobody, with four processes allowed
    // (the parent and three children).
    let Some(nobody) = as_nobody(MULTI1) else {
        return;
    };
    let run = nobody
        .args(["bash", "-c", r#"ulimit -u 4; exec "$0""#, MULTI1])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    // The limit counts every process of user nobody (another test may be running
    // some), so the failing fork may come earlier; whichever it is, the children
    // already made are reaped (the harness checks the group).
    assert!(
        run.stderr.contains("multi1: fork: EAGAIN"),
        "{}",
        run.transcript()
    );
    let unjoined = run
        .texts()
        .iter()
        .any(|line| line.starts_with("run process"));
    if unjoined {
        assert!(
            run.stderr.contains("ended and reaped"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn stop_signals_end_multi3_mid_race_and_reap_the_busy_children() {
    for signal in [Signal::SIGINT, Signal::SIGHUP] {
        let mut running =
            lesson(MULTI3).args(["--increments", "100000000"]).spawn();
        while running
            .next_line()
            .is_some_and(|line| !line.text.starts_with("lost updates"))
        {}
        let children = racers(running.pid());
        let run = running.stop_with(signal);
        assert!(
            run.stderr.contains("3 children ended and reaped"),
            "{}",
            run.transcript()
        );
        for child in children {
            assert!(process(child).is_none(), "child {child} still there");
        }
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
    }
}

/// The three children of `parent` (racers, producers), once all are forked (at most
/// 10 s).
fn racers(parent: i32) -> Vec<i32> {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until {
        let children: Vec<i32> = lesson_test::children_of(parent)
            .iter()
            .map(|child| child.pid)
            .collect();
        if children.len() == 3 {
            return children;
        }
        if process(parent).is_none_or(|lesson| lesson.state == 'Z') {
            panic!("{parent} ended before it forked three children");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{parent} did not fork three children");
}

// ---------------------------------------------------------------- transcripts

fn transcript_path(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts")
        .join(name)
}

/// `$ <command>` and everything the run printed, as the book shows it.
fn book_text(run: &Finished) -> String {
    format!(
        "$ {}\n{}",
        run.shown.as_deref().expect("shown_as"),
        run.stdout_text()
    )
}

/// Like `check_transcript_of`, for programs whose children print in an order that
/// changes from run to run: the file holds the real run; the comparison masks
/// numbers of three digits or more (pids), applies `mask` to each line, and sorts
/// the lines.
fn check_unordered_transcript(
    name: &str,
    run: &Finished,
    mask: impl Fn(&str) -> String,
) {
    let path = transcript_path(name);
    let text = book_text(run);
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        std::fs::write(&path, &text)
            .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "read {}: {err}\n(run UPDATE_TRANSCRIPTS=1 cargo test to create it)",
            path.display()
        )
    });
    let canonical = |text: &str| {
        // How many times the polling parent finds nothing varies with the
        // scheduler.
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| *line != "no data...")
            .map(|line| mask_pids(&mask(&unpad(line))))
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(
        canonical(&recorded),
        canonical(&text),
        "the book's transcript {} no longer matches the lesson's output; \
         if the change is intended, run \
         UPDATE_TRANSCRIPTS=1 cargo test -p multiprocessing",
        path.display()
    );
}

/// Numbers of three digits or more become `<n>`.
fn mask_pids(line: &str) -> String {
    let mut out = String::new();
    let mut digits = String::new();
    for c in line.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if digits.len() >= 3 {
            out.push_str("<n>");
        } else {
            out.push_str(&digits);
        }
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}
