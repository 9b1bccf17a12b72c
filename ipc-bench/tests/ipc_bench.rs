//! The lesson's promises, checked by running its binary as a subprocess with a
//! deadline. Every run is tiny (a few KiB, a few round trips): these tests prove
//! behaviour (bytes arrive exactly, records are neither lost nor repeated, nothing
//! is left behind, signals stop it), never timings.

use lesson_test::faults::as_nobody;
use lesson_test::{
    Leftovers, Lesson, Running, TempDir, assert_usage_errors, check_transcript_of,
    children_of, process, send,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-bench");

/// Every mechanism that streams (all but ring-spin), and every one that echoes.
const STREAMING: [&str; 10] = [
    "pipe",
    "pipe-threads",
    "fifo",
    "socketpair",
    "socketpair-threads",
    "uds",
    "tcp",
    "ring",
    "ring-threads",
    "vmsplice",
];
const ECHOING: [&str; 10] = [
    "pipe",
    "pipe-threads",
    "fifo",
    "socketpair",
    "socketpair-threads",
    "uds",
    "tcp",
    "ring",
    "ring-spin",
    "ring-threads",
];

/// A tiny run's options: one repetition of a few KiB and a few round trips.
const TINY: [&str; 8] = [
    "--reps",
    "1",
    "--bytes",
    "8192",
    "--rounds",
    "20",
    "--sizes",
    "64,1000,4K",
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(20))
}

/// The lesson run with TMPDIR set to `dir` (through `sh -c 'exec ...'`, so the pid
/// the harness watches is the lesson's own).
fn lesson_in(dir: &Path) -> Lesson {
    Lesson::new("sh")
        .args(["-c", "d=$1; shift; TMPDIR=$d exec \"$0\" \"$@\"", BIN])
        .arg(dir)
        .deadline(Duration::from_secs(20))
}

/// The JSON objects (one per line) of a section of `--json` output, as text.
fn section<'a>(json: &'a str, name: &str) -> Vec<&'a str> {
    let start = json
        .find(&format!("\"{name}\": ["))
        .expect("section present");
    json[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.trim_start().starts_with('{'))
        .collect()
}

/// The number after `"key": ` in one JSON object line.
fn field(object: &str, key: &str) -> f64 {
    let marker = format!("\"{key}\": ");
    let rest = &object[object
        .find(&marker)
        .unwrap_or_else(|| panic!("{key} in {object}"))
        + marker.len()..];
    let end = rest.find([',', '}']).expect("end of value");
    rest[..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {object}"))
}

fn mechanism(object: &str) -> &str {
    let start = object.find("\"mechanism\": \"").expect("mechanism") + 14;
    let end = object[start..].find('"').expect("end") + start;
    &object[start..end]
}

/// The lesson's children once there are `n` of them: the progress note comes just
/// before the forks, so they may take a moment on a busy machine.
fn sides_of(pid: i32, n: usize) -> Vec<lesson_test::Member> {
    eventually(|| children_of(pid), |sides| sides.len() == n)
}

/// `probe()` once `done` holds of it, or after 5 s whatever it is.
fn eventually<T>(probe: impl Fn() -> T, done: impl Fn(&T) -> bool) -> T {
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = probe();
        if done(&value) || std::time::Instant::now() > give_up {
            return value;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the note that starts the job `name`; fails at once if the lesson ends
/// first (`wait_for_stderr` alone would wait out the whole deadline, which makes a
/// mutant that breaks the lesson slow to catch). The job has begun when the lesson
/// has both its children (one, for the threads variants: then the limits job's
/// child may be taken for it, and `wait_for_stderr` waits the rest).
fn wait_for_job(running: &mut Running, name: &str) {
    let pid = running.pid();
    let sides = if name.ends_with("-threads") { 1 } else { 2 };
    let alive = |m: &Option<lesson_test::Member>| {
        m.as_ref().is_some_and(|m| m.state != 'Z')
    };
    let seen = eventually(
        || (process(pid), children_of(pid).len()),
        |(me, children)| *children == sides || !alive(me),
    );
    assert!(
        alive(&seen.0),
        "the lesson ended before the {name} job: {seen:?}"
    );
    running.wait_for_stderr(&format!("] {name}\n"));
}

/// /dev/shm entries this lesson run (pid) might have left.
fn shm_left_by(pid: i32) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&format!("ipc-bench-{pid}-")))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_mechanism_moves_exactly_the_bytes_sent() {
    let dir = TempDir::new("ipc-bench-bytes");
    let run = lesson_in(dir.path()).args(TINY).arg("--json").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let throughput = section(&json, "throughput");
    // 8192 bytes per repetition, at most max(8192 / 256, 16) = 32 messages.
    for (size, messages) in [(64.0, 32.0), (1000.0, 8.0), (4096.0, 2.0)] {
        for name in STREAMING {
            let row = throughput
                .iter()
                .find(|o| mechanism(o) == name && field(o, "size") == size)
                .unwrap_or_else(|| panic!("{name} at {size} missing\n{json}"));
            assert_eq!(field(row, "bytes"), size * messages, "{row}");
            assert!(field(row, "gbps") > 0.0, "{row}");
            // The checksum was compared, except where the receiver never sees bytes.
            let checked = if name == "vmsplice" { "false" } else { "true" };
            assert!(row.contains(&format!("\"checked\": {checked}}}")), "{row}");
        }
    }
    assert!(json.contains("\"pipe_capacity\": 1048576,"), "{json}");
    // The lesson compares each stream's checksum with what was sent and fails if
    // they differ; exit 0 above says they matched. Every row is there once:
    assert_eq!(throughput.len(), 3 * (STREAMING.len() + 1), "{json}");
    assert!(dir.entries().is_empty(), "left behind: {:?}", dir.entries());
    assert!(shm_left_by(run.pid).is_empty());
}

#[test]
fn ring_never_loses_or_repeats_a_record_when_blocking_or_spinning() {
    // Each round trip carries its number; the lesson fails (exit 1) the moment a
    // reply is not the request just sent. 2 x 100 records per waiting mode, both
    // directions.
    let run = lesson()
        .args(["--only", "ring,ring-spin,ring-threads", "--reps", "2"])
        .args([
            "--rounds", "100", "--bytes", "65536", "--sizes", "64,100K", "--json",
        ])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let trips = section(&json, "round_trip");
    assert_eq!(trips.len(), 3, "{json}");
    for trip in trips {
        assert_eq!(field(trip, "rounds"), 100.0, "{trip}");
        assert!(field(trip, "median_ns") > 0.0, "{trip}");
        assert!(field(trip, "p99_ns") >= field(trip, "median_ns"), "{trip}");
    }
    // 100K does not divide the ring: records wrap around its end.
    let streams = section(&json, "throughput");
    assert!(
        streams
            .iter()
            .any(|o| mechanism(o) == "ring" && field(o, "bytes") == 102400.0),
        "{json}"
    );
}

#[test]
fn the_ring_streams_several_times_its_capacity_in_pieces_that_wrap() {
    // 40 messages of 100 KiB: 4 MB through a 1 MiB ring, so its counters pass the
    // capacity several times and messages are split at its end; 1 MiB messages too.
    let run = lesson()
        .args([
            "--only",
            "ring,ring-threads",
            "--sizes",
            "100K,1M",
            "--reps",
            "1",
        ])
        .args(["--bytes", "4194304", "--rounds", "10", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    for name in ["ring", "ring-threads"] {
        for (size, bytes) in [(102400.0, 4096000.0), (1048576.0, 4194304.0)] {
            let row = section(&json, "throughput")
                .into_iter()
                .find(|o| mechanism(o) == name && field(o, "size") == size)
                .unwrap_or_else(|| panic!("{name} {size}\n{json}"));
            assert_eq!(field(row, "bytes"), bytes, "{row}");
            assert!(row.contains("\"checked\": true"), "{row}");
        }
    }
}

#[test]
fn every_echoing_mechanism_reports_a_round_trip() {
    let run = lesson().args(TINY).args(["--sizes", "64", "--json"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let trips = section(&json, "round_trip");
    let names: Vec<&str> = trips.iter().map(|o| mechanism(o)).collect();
    assert_eq!(names, ECHOING, "{json}");
    let syscall = field(
        json.lines().find(|l| l.contains("syscall_ns")).unwrap(),
        "syscall_ns",
    );
    assert!(syscall > 0.0, "{json}");
    for trip in trips {
        let expected = field(trip, "median_ns") / syscall;
        assert!(
            (field(trip, "syscalls") - expected).abs() <= 0.1 + expected * 0.01,
            "{trip}"
        );
    }
}

#[test]
fn the_text_report_shows_every_figure_with_its_ratio_to_the_limit() {
    let run = lesson().args(TINY).args(["--only", "pipe,vmsplice"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = run.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ipc-bench on "), "{text}");
    assert!(
        lines[1]
            .starts_with("command: cargo run --release -p ipc-bench -- --reps 1"),
        "{text}"
    );
    assert!(text.contains("not pinned"), "{text}");
    assert!(text.contains("pipes hold "), "{text}");
    for size in ["64 B", "1000 B", "4 KiB"] {
        for name in ["memcpy", "pipe", "vmsplice"] {
            let row = lines
                .iter()
                .find(|l| {
                    l.starts_with(&format!("{name} "))
                        && l.contains(&format!(" {size} "))
                })
                .unwrap_or_else(|| panic!("{name} {size}\n{text}"));
            assert!(row.ends_with('%'), "{row}");
        }
    }
    let pipe_trip = lines
        .iter()
        .find(|l| l.starts_with("pipe ") && l.contains("µs"))
        .expect("round trip");
    assert_eq!(pipe_trip.matches("µs").count(), 2, "{pipe_trip}");
    // vmsplice goes one way only: no round trip for it.
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("vmsplice") && l.contains("µs")),
        "{text}"
    );
    assert!(run.stderr.contains("[1/3] limits"), "{}", run.transcript());
    assert!(
        run.stderr.contains("[3/3] vmsplice"),
        "{}",
        run.transcript()
    );
}

#[test]
fn markdown_and_svg_carry_the_same_measurements() {
    let dir = TempDir::new("ipc-bench-svg");
    let chart = dir.path().join("chart.svg");
    let run = lesson()
        .args(TINY)
        .args(["--only", "pipe,ring", "--markdown", "--svg"])
        .arg(&chart)
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = run.stdout_text();
    assert!(
        text.contains("| throughput, GB/s (% of memcpy) | 64 B | 1000 B | 4 KiB |"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("| pipe | ") && l.matches('%').count() == 3),
        "{text}"
    );
    assert!(
        text.contains(
            "| round trip, 64 B | median | p99 | spread | in system calls |"
        ),
        "{text}"
    );
    let svg = std::fs::read_to_string(&chart).expect("chart written");
    assert!(svg.starts_with("<svg "), "{svg}");
    assert_eq!(
        svg.matches("<polyline").count(),
        3,
        "memcpy, pipe, ring\n{svg}"
    );
    for name in [">memcpy<", ">pipe<", ">ring<"] {
        assert!(svg.contains(name), "{name}\n{svg}");
    }
    assert!(
        run.stderr.contains("chart written to"),
        "{}",
        run.transcript()
    );
}

#[test]
fn pinning_says_whether_the_sides_share_a_cpu() {
    let run = lesson()
        .args(TINY)
        .args(["--only", "pipe", "--cpus", "0,0"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stdout_text()
            .contains("both sides pinned to CPU 0 (the same CPU"),
        "{}",
        run.transcript()
    );
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus >= 2 {
        let run = lesson()
            .args(TINY)
            .args(["--only", "pipe-threads", "--cpus", "0,1", "--json"])
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert!(
            run.stdout_text().contains("\"pinned\": [0, 1]"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn bad_options_are_usage_errors() {
    assert_usage_errors(
        lesson,
        "Usage: ipc-bench",
        &[
            (
                &["--only", "pipe,carrier-pigeon"],
                "--only \"carrier-pigeon\": unknown",
            ),
            (&["--sizes", "0"], "--sizes \"0\": must be from 1 to 1M"),
            (
                &["--sizes", "64,2M"],
                "--sizes \"2M\": must be from 1 to 1M",
            ),
            (&["--sizes", "1048577"], "must be from 1 to 1M"),
            (&["--sizes", "4Q"], "--sizes \"4Q\""),
            (&["--reps", "0"], "--reps \"0\": must be from 1 to 20"),
            (&["--reps", "21"], "must be from 1 to 20"),
            (
                &["--bytes", "0"],
                "--bytes \"0\": must be from 1 to 1073741824",
            ),
            (&["--bytes", "1073741825"], "must be from 1 to 1073741824"),
            (
                &["--rounds", "1000001"],
                "--rounds \"1000001\": must be from 1 to 1000000",
            ),
            (
                &["--patience", "0"],
                "--patience \"0\": must be from 1 to 3600",
            ),
            (&["--cpus", "0"], "--cpus \"0\": give two CPU numbers"),
            (&["--cpus", "0,x"], "give two CPU numbers"),
            (
                &["--cpus", "0,1023"],
                "CPU 1023 is not one this process may use",
            ),
            (&["--json", "--markdown"], "choose one"),
            (&["--markdown", "--json"], "choose one"),
            (&["--svg"], "--svg needs a value"),
            (&["--fast"], "unknown option --fast"),
            (&["extra"], "unexpected argument \"extra\""),
        ],
    );
}

#[test]
fn edges_of_the_ranges_are_accepted() {
    let run = lesson()
        .args([
            "--only",
            "socketpair",
            "--sizes",
            "1,1M",
            "--reps",
            "1",
            "--bytes",
            "1",
        ])
        .args(["--rounds", "1", "--patience", "3600", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let rows = section(&json, "throughput");
    // --bytes 1: one message of each size, whatever its size.
    assert!(
        rows.iter()
            .any(|o| mechanism(o) == "socketpair" && field(o, "bytes") == 1.0),
        "{json}"
    );
    assert!(rows.iter().any(|o| mechanism(o) == "socketpair" && field(o, "bytes") == 1048576.0), "{json}");
    assert_eq!(
        field(section(&json, "round_trip")[0], "rounds"),
        1.0,
        "{json}"
    );
}

#[test]
fn help_lists_every_option_and_is_in_the_book() {
    let run = lesson()
        .shown_as("cargo run -q -p ipc-bench --")
        .arg("--help")
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = run.stdout_text();
    assert!(text.starts_with("Usage: ipc-bench"), "{text}");
    for option in [
        "--quick",
        "--only LIST",
        "--sizes LIST",
        "--reps N",
        "--bytes N",
        "--rounds N",
        "--cpus A,B",
        "--patience S",
        "--python",
        "--json",
        "--markdown",
        "--svg FILE",
        "--show-fds",
        "-h, --help",
    ] {
        assert!(text.contains(&format!("\n  {option} ")), "{option}\n{text}");
    }
    // The descriptions start in one column.
    let columns: Vec<usize> = text
        .lines()
        .filter(|l| l.starts_with("  -"))
        .map(|l| {
            let gap = l[2..].find("  ").expect("two spaces after the option") + 2;
            gap + l[gap..].len() - l[gap..].trim_start().len()
        })
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "{columns:?}\n{text}"
    );
    check_transcript_of(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/src/transcripts/ipc-bench-help.txt"),
        &run,
    );
}

#[test]
fn a_stop_signal_ends_it_within_a_second_and_removes_its_files() {
    for (signal, name) in [
        (Signal::SIGINT, "fifo"),
        (Signal::SIGTERM, "uds"),
        (Signal::SIGHUP, "ring"),
    ] {
        let dir = TempDir::new("ipc-bench-stop");
        // Millions of 64-byte messages: it is surely still streaming when the
        // signal comes.
        let mut running = lesson_in(dir.path())
            .args(["--only", name, "--sizes", "64", "--bytes", "1073741824"])
            .spawn();
        wait_for_job(&mut running, name);
        std::thread::sleep(Duration::from_millis(200));
        let pid = running.pid();
        let run = running.stop_with(signal);
        // Both sides ended on SIGTERM, within the grace: no SIGKILL was needed.
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
        assert!(
            dir.entries().is_empty(),
            "{signal}: left {:?}",
            dir.entries()
        );
        assert!(shm_left_by(pid).is_empty(), "{signal}");
        assert!(run.stdout.is_empty(), "{}", run.transcript());
    }
}

#[test]
fn a_stop_signal_ends_it_while_a_side_spins() {
    let mut running = lesson()
        .args(["--only", "ring-spin", "--rounds", "1000000", "--reps", "20"])
        .spawn();
    wait_for_job(&mut running, "ring-spin");
    std::thread::sleep(Duration::from_millis(200));
    running.stop_with(Signal::SIGINT);
}

#[test]
fn a_killed_side_fails_the_run_and_the_other_side_is_ended() {
    // The peer is forked first, the measuring side second (the higher pid).
    for (victim, expected) in [(0, "peer "), (1, "measuring side ")] {
        let dir = TempDir::new("ipc-bench-kill");
        let mut running = lesson_in(dir.path())
            .args(["--only", "fifo", "--sizes", "64", "--bytes", "1073741824"])
            .spawn();
        wait_for_job(&mut running, "fifo");
        std::thread::sleep(Duration::from_millis(100));
        let mut sides = sides_of(running.pid(), 2);
        assert_eq!(sides.len(), 2, "{sides:?}");
        sides.sort_by_key(|side| side.pid);
        send(sides[victim].pid, Signal::SIGKILL);
        let run = running.finish();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        // Whichever the coordinator noticed first: the killed side, or the other
        // side failing for lack of it (end of file, broken pipe).
        assert!(
            run.stderr.contains(&format!(
                "{expected}{} killed by SIGKILL",
                sides[victim].pid
            )) || run.stderr.contains("exited with status 1"),
            "{}",
            run.transcript()
        );
        assert!(dir.entries().is_empty(), "left {:?}", dir.entries());
    }
}

#[test]
fn a_stopped_side_is_detected_and_the_run_ends_with_status_3() {
    let mut running = lesson()
        .args([
            "--only",
            "socketpair",
            "--sizes",
            "64",
            "--bytes",
            "1073741824",
            "--patience",
            "1",
        ])
        .spawn();
    wait_for_job(&mut running, "socketpair");
    let sides = sides_of(running.pid(), 2);
    assert_eq!(sides.len(), 2, "{sides:?}");
    for side in &sides {
        // A stopped process does not act on SIGTERM: it takes SIGKILL.
        send(side.pid, Signal::SIGSTOP);
    }
    let run = running.finish();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert!(
        run.stderr.contains("socketpair: no result for 1s"),
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("SIGKILL"), "{}", run.transcript());
}

#[test]
fn when_the_coordinator_is_killed_its_children_end_too() {
    let mut running = lesson()
        .args(["--only", "ring-spin", "--rounds", "1000000", "--reps", "20"])
        .spawn();
    wait_for_job(&mut running, "ring-spin");
    let sides = sides_of(running.pid(), 2);
    assert_eq!(sides.len(), 2, "{sides:?}");
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
}

#[test]
fn a_failed_stdout_write_is_reported_and_exits_1() {
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" > /dev/full", BIN])
        .args(TINY)
        .args(["--only", "pipe"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("ipc-bench: write stdout: "),
        "{}",
        run.transcript()
    );
    // A reader that is gone before the report comes: EPIPE, not a panic (101).
    let run = Lesson::new("sh")
        .args([
            "-c",
            "{ \"$0\" \"$@\"; echo \"status $?\" >&2; } | head -c 0",
            BIN,
        ])
        .args(TINY)
        .args(["--only", "pipe"])
        .run();
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    assert!(
        run.stderr.contains("write stdout: Broken pipe"),
        "{}",
        run.transcript()
    );
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" --help > /dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
}

#[test]
fn a_chart_that_cannot_be_written_is_a_failure() {
    let dir = TempDir::new("ipc-bench-nochart");
    let chart = dir.path().join("missing").join("chart.svg");
    let run = lesson()
        .args(TINY)
        .args(["--only", "pipe", "--svg"])
        .arg(&chart)
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let expected = format!("ipc-bench: write {}: No such file", chart.display());
    assert!(run.stderr.contains(&expected), "{}", run.transcript());
    assert!(
        run.stdout_text().contains("round trip"),
        "the report came first"
    );
}

#[test]
fn stderr_into_dev_full_changes_nothing() {
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" 2> /dev/full", BIN])
        .args(TINY)
        .args(["--only", "pipe", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stdout_text().trim_end().ends_with('}'),
        "{}",
        run.transcript()
    );
}

#[test]
fn too_few_descriptors_is_a_clean_failure() {
    let dir = TempDir::new("ipc-bench-fds");
    let run = Lesson::new("sh")
        .args([
            "-c",
            "ulimit -n 9; d=$1; shift; TMPDIR=$d exec \"$0\" \"$@\"",
            BIN,
        ])
        .arg(dir.path())
        .args(TINY)
        .args(["--only", "pipe"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains("EMFILE"), "{}", run.transcript());
    assert!(dir.entries().is_empty(), "left {:?}", dir.entries());
}

#[test]
fn a_fork_that_fails_midway_ends_the_peer_already_made() {
    // RLIMIT_NPROC does not bind root, so run as nobody with room for the lesson
    // and one more process: the peer forks, the measuring side cannot. (The limit
    // counts every process of the user: if other processes run as nobody, an
    // earlier fork fails instead, which must be just as clean.)
    let Some(nobody) = as_nobody(BIN) else { return };
    let run = nobody
        .args(["prlimit", "--nproc=2", "--", BIN])
        .args(TINY)
        .args(["--only", "pipe"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains(": EAGAIN"), "{}", run.transcript());
    if run.stderr.contains("[2/2] pipe") {
        assert!(
            run.stderr.contains("fork measuring side: EAGAIN"),
            "{}",
            run.transcript()
        );
    }
    // The peer made before the failed fork was ended and reaped: the harness found
    // the lesson's process group empty.
}

/// Whether PATH holds an executable file named python3, as the shell would find it.
fn python3_on_path() -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join("python3")
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

#[test]
fn python_runs_the_same_loops_when_installed() {
    let run = lesson()
        .args(TINY)
        .args(["--only", "pipe,socketpair", "--sizes", "64K", "--python"])
        .args(["--bytes", "1048576"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = run.stdout_text();
    if !python3_on_path() {
        assert!(
            run.stderr.contains("no python3 on PATH"),
            "{}",
            run.transcript()
        );
        assert!(!text.contains("python3"), "{text}");
        return;
    }
    // Found (the lesson looks for an executable file on PATH, as the shell does),
    // and counted as a job of its own.
    assert!(
        run.stderr.contains("[4/4] pipe and socketpair in Python"),
        "{}",
        run.transcript()
    );
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("python3"))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    for (row, name) in rows[1..].iter().zip(["pipe", "socketpair"]) {
        let words: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&words[..3], [name, "64", "KiB"], "{row}");
        let rate: f64 = words[3].parse().expect("GB/s");
        assert!(rate > 0.0, "{row}");
        assert!(words[4].ends_with('x') && words[7].ends_with('x'), "{row}");
    }
}

#[test]
fn python_figures_are_rates_and_times_of_their_own_mechanism() {
    // A file named python3 that is not executable, first on PATH, must be passed over.
    let dir = TempDir::new("ipc-bench-path");
    std::fs::write(dir.path().join("python3"), "not a program").expect("decoy");
    let run = Lesson::new("sh")
        .args(["-c", "d=$1; shift; PATH=$d:$PATH exec \"$0\" \"$@\"", BIN])
        .arg(dir.path())
        .args(TINY)
        .args(["--only", "pipe", "--sizes", "64K", "--bytes", "1048576"])
        .args(["--python", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    if run.stderr.contains("no python3 on PATH") {
        return;
    }
    let json = run.stdout_text();
    let rows = section(&json, "python");
    assert_eq!(rows.len(), 2, "{json}");
    for row in &rows {
        // 1 MiB in 16 messages: a rate (bytes per nanosecond), never above a
        // physical bound, and a round trip of at least a nanosecond.
        let rate = field(row, "gbps");
        assert!(rate > 0.0 && rate < 1000.0, "{row}");
        assert!(field(row, "median_ns") >= 1.0, "{row}");
    }
    // Each mechanism's figure is its own: two medians in nanoseconds, or two rates,
    // never agree.
    assert_ne!(
        field(rows[0], "median_ns"),
        field(rows[1], "median_ns"),
        "{json}"
    );
    assert_ne!(field(rows[0], "gbps"), field(rows[1], "gbps"), "{json}");
}

#[test]
fn a_stop_signal_during_python_ends_python_and_its_child() {
    if !python3_on_path() {
        eprintln!("skipped: no python3 on PATH");
        return;
    }
    let mut running = lesson()
        .args([
            "--only", "pipe", "--sizes", "64", "--bytes", "1024", "--reps", "1",
        ])
        .args(["--rounds", "1000000", "--python"])
        .spawn();
    // (python3 may be a shell script that execs it, as pyenv's shim: wait for the
    // interpreter itself, which then forks its peer.)
    running.wait_for_stderr("measuring");
    std::thread::sleep(Duration::from_millis(300));
    running.stop_with(Signal::SIGTERM); // and the group is empty: python's child too
}

#[test]
fn quick_measures_four_sizes_twice() {
    let run = lesson()
        .args([
            "--quick",
            "--only",
            "socketpair",
            "--bytes",
            "4096",
            "--rounds",
            "10",
        ])
        .arg("--json")
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let sizes: Vec<f64> = section(&json, "throughput")
        .iter()
        .filter(|o| mechanism(o) == "socketpair")
        .map(|o| field(o, "size"))
        .collect();
    assert_eq!(sizes, [64.0, 4096.0, 65536.0, 1048576.0], "{json}");
    assert!(json.contains("\"reps\": 2,"), "{json}");
}

#[test]
fn without_sizes_it_measures_eight_from_64_bytes_to_1_mib() {
    let run = lesson()
        .args(["--only", "socketpair", "--bytes", "1", "--rounds", "1"])
        .args(["--reps", "1", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let sizes: Vec<f64> = section(&json, "throughput")
        .iter()
        .filter(|o| mechanism(o) == "socketpair")
        .map(|o| field(o, "size"))
        .collect();
    let expected = [64, 256, 1024, 4096, 16384, 65536, 262144, 1048576];
    assert_eq!(sizes, expected.map(f64::from), "{json}");
}

#[test]
fn the_byte_budget_defaults_to_32_mib_and_4_mib_with_quick() {
    // 64-byte messages hit the message cap: bytes / 256 of them.
    for (quick, messages) in [(false, 131_072.0), (true, 16_384.0)] {
        let run = lesson()
            .args(["--only", "socketpair", "--sizes", "64", "--rounds", "10"])
            .args(["--reps", "1", "--json"])
            .args(quick.then_some("--quick"))
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let json = run.stdout_text();
        let row = section(&json, "throughput")
            .into_iter()
            .find(|o| mechanism(o) == "socketpair")
            .expect("a socketpair row");
        assert_eq!(field(row, "bytes"), 64.0 * messages, "quick {quick}: {row}");
    }
}

#[test]
fn a_second_ctrl_c_does_not_break_the_clean_up() {
    let dir = TempDir::new("ipc-bench-twice");
    let mut running = lesson_in(dir.path())
        .args(["--only", "fifo", "--sizes", "64", "--bytes", "1073741824"])
        .spawn();
    wait_for_job(&mut running, "fifo");
    std::thread::sleep(Duration::from_millis(100));
    running.signal(Signal::SIGINT); // the first; stop_with sends the second
    let run = running.stop_with(Signal::SIGINT);
    assert_eq!(
        run.stderr.matches("stopped by SIGINT").count(),
        1,
        "{}",
        run.transcript()
    );
    assert!(dir.entries().is_empty(), "left {:?}", dir.entries());
}

/// The CPUs a thread may run on, from /proc (`0`, `1`, `0-1`).
fn allowed_cpus(task: &str) -> String {
    let status =
        std::fs::read_to_string(format!("/proc/{task}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Stops a run whose two sides spin on both CPUs: it ends cleanly (status 143, the
/// group empty), but how fast depends on how busy the machine is, since each pinned
/// thread must be scheduled to die; the one-second promise is tested unpinned.
fn stop_pinned(running: Running) {
    running.signal(Signal::SIGTERM);
    let run = running.finish();
    assert_eq!(run.code(), Some(143), "{}", run.transcript());
    assert!(
        run.stderr.contains("stopped by SIGTERM"),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_threads_variants_run_in_one_child_and_pinning_binds_each_side() {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    // Two processes, pinned 1 and 0.
    let mut running = lesson()
        .args(["--only", "pipe", "--sizes", "64", "--bytes", "1073741824"])
        .args(["--cpus", "1,0"])
        .spawn();
    wait_for_job(&mut running, "pipe");
    std::thread::sleep(Duration::from_millis(100));
    let sides = sides_of(running.pid(), 2);
    let pinned = || {
        let mut cpus: Vec<String> = sides
            .iter()
            .map(|s| allowed_cpus(&s.pid.to_string()))
            .collect();
        cpus.sort();
        cpus
    };
    assert_eq!(
        eventually(pinned, |c| *c == ["0", "1"]),
        ["0", "1"],
        "{sides:?}"
    );
    stop_pinned(running);

    // One process with two threads, pinned 0 (the measuring thread) and 1 (the peer).
    let mut running = lesson()
        .args([
            "--only",
            "pipe-threads",
            "--sizes",
            "64",
            "--bytes",
            "1073741824",
        ])
        .args(["--cpus", "0,1"])
        .spawn();
    wait_for_job(&mut running, "pipe-threads");
    std::thread::sleep(Duration::from_millis(100));
    let sides = sides_of(running.pid(), 1);
    assert_eq!(sides.len(), 1, "{sides:?}");
    let child = sides[0].pid;
    let pinned = || {
        let mut tasks: Vec<i32> = std::fs::read_dir(format!("/proc/{child}/task"))
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        tasks.sort();
        tasks
            .iter()
            .map(|t| allowed_cpus(&format!("{child}/task/{t}")))
            .collect::<Vec<String>>()
    };
    // Two threads: the measuring one (the process's first) on 0, the peer on 1.
    assert_eq!(eventually(pinned, |c| *c == ["0", "1"]), ["0", "1"]);
    stop_pinned(running);
}

#[test]
fn a_round_trip_repetition_stops_after_a_second_and_says_how_many() {
    let run = lesson()
        .args([
            "--only", "pipe", "--sizes", "64", "--bytes", "64", "--reps", "1",
        ])
        .args(["--rounds", "1000000", "--json"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let json = run.stdout_text();
    let rounds = field(section(&json, "round_trip")[0], "rounds");
    assert!(rounds > 0.0 && rounds < 1_000_000.0, "{json}");
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
}
