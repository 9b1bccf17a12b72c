//! The lesson's promises, checked by running its binaries as subprocesses with deadlines.
//! The tests send the signals themselves: no person at a terminal is needed.

use lesson_test::faults::as_nobody;
use lesson_test::fd_blocks::{self, Block as FdBlock, Row as FdRow};
use lesson_test::{
    Finished, Lesson, check_transcript, check_transcript_of, group_members,
    number_after, send,
};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

const SIGNAL1: &str = env!("CARGO_BIN_EXE_signal1");
const SIGNAL2: &str = env!("CARGO_BIN_EXE_signal2");
const SIGPIPE_DEMO: &str = env!("CARGO_BIN_EXE_sigpipe-demo");
const SIGCHLD_DEMO: &str = env!("CARGO_BIN_EXE_sigchld-demo");

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(10))
}

/// A program run through `sh -c SCRIPT` (for pipes and redirections), `$0` being it.
fn shell(script: &str, bin: &str) -> Lesson {
    lesson("sh").args(["-c", script, bin])
}

fn assert_code(run: &Finished, code: i32) {
    assert_eq!(run.code(), Some(code), "{}", run.transcript());
}

fn assert_stderr(run: &Finished, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "{needle:?}\n{}",
        run.transcript()
    );
}

/// The pid of the process running `command` in the group of the shell `sh`.
fn pid_in_group(sh: i32, command: &str) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(member) =
            group_members(sh).into_iter().find(|m| m.command == command)
        {
            return member.pid;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{command} never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Checks C's `ctime` shape: `Sun Nov  2 05:53:10 2026` (24 characters, day space-padded).
fn assert_ctime(text: &str) {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
        "Nov", "Dec",
    ];
    assert_eq!(text.len(), 24, "not ctime: {text:?}");
    assert!(
        DAYS.contains(&&text[0..3]) && MONTHS.contains(&&text[4..7]),
        "{text:?}"
    );
    let day = text[8..10].trim_start();
    assert!(
        day.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d)),
        "{text:?}"
    );
    let clock = &text.as_bytes()[11..19];
    assert!(clock[2] == b':' && clock[5] == b':', "{text:?}");
    assert!(text[20..].parse::<u32>().is_ok(), "{text:?}");
}

#[test]
fn signal1_prints_one_line_per_signal_with_its_number() {
    for (name, signal, number) in
        [("USR1", Signal::SIGUSR1, 10), ("12", Signal::SIGUSR2, 12)]
    {
        let mut running = lesson(SIGNAL1).args([name, "--count", "3"]).spawn();
        let hint = running.wait_for_stderr("From another terminal");
        let pid = running.pid();
        assert!(hint.contains(&format!("kill -{number} {pid}")), "{hint}");
        for _ in 0..3 {
            // One at a time: two deliveries before the program looks would merge into one.
            send(pid, signal);
            let line = running.next_line().expect("a line per signal");
            let time = line
                .text
                .strip_prefix(&format!("Got signal {number} at "))
                .unwrap_or_else(|| panic!("{:?}", line.text));
            assert_ctime(time);
        }
        let run = running.finish();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert_eq!(run.lines.len(), 3, "{}", run.transcript());
    }
}

#[test]
fn signal1_ends_promptly_on_sigint_sigterm_and_sighup() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let mut running = lesson(SIGNAL1).arg("USR1").spawn();
        running.wait_for_stderr("to stop it");
        let run = running.stop_with(signal);
        assert_stderr(&run, &format!("stopped by {signal} after 0 signals"));
    }
}

#[test]
fn signal1_can_watch_sigint_itself_and_stop_on_sigterm() {
    let mut running = lesson(SIGNAL1).arg("INT").spawn();
    let hint = running.wait_for_stderr("to stop it");
    assert!(
        hint.contains(&format!("kill -15 {}", running.pid())),
        "{hint}"
    );
    running.signal(Signal::SIGINT);
    let line = running.next_line().expect("Ctrl-C is now a watched signal");
    assert!(line.text.starts_with("Got signal 2 at "), "{}", line.text);
    running.stop_with(Signal::SIGTERM);
}

#[test]
fn signal1_refuses_signals_it_cannot_or_must_not_catch() {
    let cases: &[(&str, &str)] = &[
        ("9", "SIGKILL (9) cannot be caught"),
        ("KILL", "SIGKILL (9) cannot be caught"),
        ("SIGSTOP", "SIGSTOP (19) cannot be caught"),
        ("segv", "SIGSEGV (11) reports a fault"),
        ("FPE", "SIGFPE (8) reports a fault"),
        ("0", "0 is not a signal"),
        ("99", "there is no signal 99"),
        ("bogus", "unknown signal \"bogus\""),
    ];
    for (args, message) in [
        (&["USR1", "USR2"][..], "unexpected argument \"USR2\""),
        (&["USR1", "--bogus"][..], "unknown option --bogus"),
    ] {
        let run = lesson(SIGNAL1).args(args).run();
        assert_code(&run, 2);
        assert_stderr(&run, message);
    }
    for (arg, message) in cases {
        let run = lesson(SIGNAL1).arg(arg).run();
        assert_eq!(run.code(), Some(2), "{arg}\n{}", run.transcript());
        assert!(run.stderr.contains(message), "{arg}\n{}", run.transcript());
        assert!(
            run.stderr.contains("Usage: signal1"),
            "{}",
            run.transcript()
        );
    }
    let run = lesson(SIGNAL1).run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    assert!(run.stderr.contains("which signal?"), "{}", run.transcript());
}

#[test]
fn signal2_alternates_setting_and_alarm_at_the_scaled_cadence() {
    // Alarms every 5 s / 20 = 0.25 s.
    let run = lesson(SIGNAL2)
        .args(["--count", "4", "--speed", "20"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(run.lines.len(), 8, "{}", run.transcript());
    for (i, pair) in run.lines.chunks(2).enumerate() {
        let set = pair[0]
            .text
            .strip_prefix("Setting at ")
            .expect("Setting first");
        let got = pair[1]
            .text
            .strip_prefix("Got alarm 14 at ")
            .expect("then the alarm");
        assert_ctime(set);
        assert_ctime(got);
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited >= Duration::from_millis(200)
                && waited < Duration::from_millis(1500),
            "alarm {i} after {waited:?}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn signal2_ends_promptly_on_stop_signals_while_waiting() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let mut running = lesson(SIGNAL2).spawn(); // the document's 5 s alarm
        let line = running.next_line().expect("Setting at ...");
        assert!(line.text.starts_with("Setting at "), "{}", line.text);
        running.stop_with(signal);
    }
}

/// The alarm goes off 5 microseconds after it is set: often before the program could
/// start waiting. `alarm` + `pause()` (the original) then waits for a signal that has
/// come and gone, and hangs within a few rounds; a blocked signal and `sigwait` cannot
/// miss it. The deadline turns such a hang into a failure.
#[test]
fn signal2_cannot_miss_an_alarm_that_fires_before_it_waits() {
    let run = lesson(SIGNAL2)
        .args(["--count", "200", "--speed", "1000000"])
        .deadline(Duration::from_secs(15))
        .run();
    assert_code(&run, 0);
    assert_eq!(run.lines.len(), 400, "{}", run.transcript());
    assert!(run.texts().last().unwrap().starts_with("Got alarm 14 at "));
}

#[test]
fn sigpipe_is_an_error_when_ignored_and_fatal_when_default() {
    let ignored = lesson(SIGPIPE_DEMO).run();
    assert_eq!(ignored.code(), Some(1), "{}", ignored.transcript());
    assert!(
        ignored.stderr.contains("write pipe: EPIPE (Broken pipe)"),
        "{}",
        ignored.transcript()
    );
    let default = lesson(SIGPIPE_DEMO).arg("--default").run();
    assert_eq!(
        default.status.signal(),
        Some(Signal::SIGPIPE as i32),
        "{}",
        default.transcript()
    );
    assert!(
        !default.stderr.contains("EPIPE"),
        "{}",
        default.transcript()
    );
    // What a shell reports for it: 128 + 13.
    let script = r#""$0" --default 2>/dev/null; echo "status $?""#;
    let shell = lesson("sh").args(["-c", script, SIGPIPE_DEMO]).run();
    assert_eq!(
        shell.stdout_text(),
        "status 141\n",
        "{}",
        shell.transcript()
    );
}

/// The pids in sigchld-demo's first line, `Parent 41 forked 2 children: 42 43`.
fn forked_pids(line: &str) -> Vec<i32> {
    line.split(": ")
        .nth(1)
        .expect("the list of children")
        .split(' ')
        .map(|pid| pid.parse().expect("a pid"))
        .collect()
}

#[test]
fn sigchld_reaps_every_child_even_when_signals_merge() {
    let run = lesson(SIGCHLD_DEMO).args(["--children", "6"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let texts = run.texts();
    let forked = forked_pids(texts[0]);
    assert_eq!(forked.len(), 6, "{}", run.transcript());
    let mut reaped: Vec<(i32, String)> = texts[1..texts.len() - 1]
        .iter()
        .map(|line| {
            let pid = number_after(line, "reaped child ");
            let status = line
                .rsplit_once(" (")
                .unwrap()
                .1
                .trim_end_matches(')')
                .to_owned();
            (pid, status)
        })
        .collect();
    reaped.sort();
    let expected: Vec<(i32, String)> = forked
        .iter()
        .enumerate()
        .map(|(i, pid)| (*pid, format!("exited with status {i}")))
        .collect();
    assert_eq!(reaped, expected, "{}", run.transcript());
    // All six exit at once while the parent is busy: their SIGCHLDs merge.
    let notifications = number_after(texts[texts.len() - 1], "reaped after ");
    assert!((1..6).contains(&notifications), "{}", run.transcript());
    // finish() checked the process group: no zombie is left.
}

#[test]
fn sigchld_demo_ends_promptly_on_stop_signals_and_reaps_its_children() {
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // Busy for 5 s: the stop must not wait for the end of it.
        let mut running = lesson(SIGCHLD_DEMO).args(["--busy", "5000"]).spawn();
        running.next_line().expect("the list of children");
        let run = running.stop_with(signal);
        assert_stderr(&run, "children killed and reaped");
    }
}

#[test]
fn sigchld_demo_a_second_signal_keeps_the_clean_up_and_the_first_status() {
    for (first, second) in [
        (Signal::SIGINT, Signal::SIGINT),
        (Signal::SIGTERM, Signal::SIGINT),
    ] {
        let mut running = lesson(SIGCHLD_DEMO).args(["--busy", "5000"]).spawn();
        running.next_line().expect("the list of children");
        running.signal(first);
        running.signal(second);
        // finish() fails if a child is left, as a zombie or running.
        let run = running.finish();
        assert_code(&run, 128 + first as i32);
        assert_stderr(
            &run,
            &format!("stopped by {first}; children killed and reaped"),
        );
        assert!(run.elapsed < Duration::from_secs(2), "{}", run.transcript());
    }
}

/// The children all exit 100 ms after the start; `--busy MS` is how long the parent
/// lets their SIGCHLDs wait. Both show in when the reaped lines arrive.
#[test]
fn sigchld_demo_busy_delays_the_reaping_and_the_children_exit_together() {
    let reaped_at = |run: &Finished| -> Vec<Duration> {
        run.lines
            .iter()
            .filter(|line| line.text.contains("reaped child"))
            .map(|line| line.at)
            .collect()
    };
    let prompt = lesson(SIGCHLD_DEMO)
        .args(["--children", "4", "--busy", "0"])
        .run();
    assert_code(&prompt, 0);
    let times = reaped_at(&prompt);
    assert_eq!(times.len(), 4, "{}", prompt.transcript());
    // Not before the shared exit time, and all close to it.
    assert!(
        times[0] >= Duration::from_millis(100),
        "{}",
        prompt.transcript()
    );
    assert!(
        times[3] - times[0] < Duration::from_millis(300),
        "{times:?}"
    );

    let busy = lesson(SIGCHLD_DEMO)
        .args(["--children", "4", "--busy", "800"])
        .run();
    assert_code(&busy, 0);
    let times = reaped_at(&busy);
    assert!(
        times[0] >= Duration::from_millis(800),
        "{}",
        busy.transcript()
    );
    // Everything had exited long before: one notification for all four.
    assert!(
        busy.texts()
            .last()
            .unwrap()
            .ends_with("after 1 SIGCHLD notification"),
        "{}",
        busy.transcript()
    );
}

#[test]
fn sigchld_demo_reaps_its_children_when_stdout_fails() {
    for (script, error) in [
        (
            r#"{ "$0" --busy 200; echo "demo exit $?" >&2; } | head -n 1"#,
            "Broken pipe",
        ),
        (
            r#""$0" > /dev/full; echo "demo exit $?" >&2"#,
            "No space left",
        ),
    ] {
        // The children are in the shell's group: finish() sees any left behind.
        let run = shell(script, SIGCHLD_DEMO).run();
        assert_stderr(&run, &format!("Error: write stdout: {error}"));
        assert_stderr(&run, "demo exit 1");
        assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    }
    let run = shell(r#"exec "$0" 2>/dev/full"#, SIGCHLD_DEMO).run();
    assert_code(&run, 0);
}

/// As root, RLIMIT_NPROC does not bind; run as `nobody`, whose processes it counts.
#[test]
fn sigchld_demo_whose_fork_fails_half_way_reaps_the_children_it_has() {
    let Some(nobody) = as_nobody(SIGCHLD_DEMO) else {
        return;
    };
    let run = nobody
        .deadline(Duration::from_secs(10))
        .args([
            "bash",
            "-c",
            r#"ulimit -u 4 && exec "$0" --children 20"#,
            SIGCHLD_DEMO,
        ])
        .run();
    assert_code(&run, 1);
    assert_stderr(&run, "Error: fork: EAGAIN");
    assert_stderr(&run, "they were reaped");
    let made = number_after(&run.stderr, "fork failed after ");
    assert!((1..20).contains(&made), "{}", run.transcript());
    // finish() has checked the group: none of the children made is left.
}

#[test]
fn sigchld_demo_handles_the_largest_number_of_children() {
    let run = lesson(SIGCHLD_DEMO)
        .args(["--children", "255", "--busy", "0"])
        .run();
    assert_code(&run, 0);
    assert_eq!(
        run.texts()
            .last()
            .copied()
            .map(|line| line.starts_with("255 children reaped")),
        Some(true),
        "{}",
        run.transcript()
    );
}

#[test]
fn signal1_and_signal2_report_a_stdout_that_fails_without_panicking() {
    // signal1: the first line goes through, the second meets a closed pipe.
    let script =
        r#"{ "$0" USR1 --count 2; echo "signal1 exit $?" >&2; } | head -n 1"#;
    let mut running = shell(script, SIGNAL1).spawn();
    running.wait_for_stderr("to stop it");
    let pid = pid_in_group(running.pid(), "signal1");
    send(pid, Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(300)); // head reads the line and exits
    send(pid, Signal::SIGUSR1);
    let run = running.finish();
    assert_stderr(&run, "Error: write stdout: Broken pipe");
    assert_stderr(&run, "signal1 exit 1");

    for (script, error) in [
        (
            r#""$0" --count 3 --speed 100 | head -n 1; exit 0"#,
            "Broken pipe",
        ),
        (
            r#"exec "$0" --count 3 --speed 100 > /dev/full"#,
            "No space left",
        ),
    ] {
        let run = shell(script, SIGNAL2).run();
        assert_stderr(&run, &format!("Error: write stdout: {error}"));
        assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    }
    let run =
        shell(r#"exec "$0" --count 3 --speed 100 > /dev/full"#, SIGNAL2).run();
    assert_code(&run, 1);
    // A full stderr changes nothing else.
    let run =
        shell(r#"exec "$0" --count 2 --speed 100 2>/dev/full"#, SIGNAL2).run();
    assert_code(&run, 0);
    assert_eq!(run.lines.len(), 4);
    let run = shell(r#"exec "$0" 2>/dev/full"#, SIGPIPE_DEMO).run();
    assert_code(&run, 1);
}

#[test]
fn bad_numbers_are_usage_errors_naming_the_range() {
    let cases: &[(&str, &[&str], &str)] = &[
        (
            SIGCHLD_DEMO,
            &["--children", "0"],
            "--children \"0\": must be from 1 to 255",
        ),
        (
            SIGCHLD_DEMO,
            &["--children", "256"],
            "must be from 1 to 255",
        ),
        (
            SIGCHLD_DEMO,
            &["--busy", "60001"],
            "--busy \"60001\": must be from 0 to 60000",
        ),
        (SIGCHLD_DEMO, &["--busy", "-1"], "--busy \"-1\": "),
        (
            SIGNAL2,
            &["--speed", "1e-20"],
            "--speed \"1e-20\": must be from 0.001 to 1000000",
        ),
        (SIGNAL2, &["--count", "0"], "--count must be at least 1"),
        (
            SIGNAL1,
            &["USR1", "--count", "0"],
            "--count \"0\": must be from 1 to 1000000000",
        ),
        (SIGPIPE_DEMO, &["--fast"], "unknown option --fast"),
    ];
    for (bin, args, message) in cases {
        let run = lesson(bin).args(*args).run();
        assert_code(&run, 2);
        assert!(
            run.stderr.contains(message),
            "{args:?}\n{}",
            run.transcript()
        );
        assert!(run.stderr.contains("Usage: "), "{}", run.transcript());
        assert!(run.stdout.is_empty());
    }
}

#[test]
fn the_package_runs_signal2_by_default() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let manifest = std::fs::read_to_string(manifest).unwrap();
    assert!(
        manifest.contains("\ndefault-run = \"signal2\"\n"),
        "{manifest}"
    );
}

/// Checks a `--help`: exit 0, `Usage:` first, every option line indented two spaces
/// with its description (and continuation lines) in one column, and exactly `options`;
/// and `--help > /dev/full` reported with exit 1.
fn assert_help(bin: &str, options: &[&str]) {
    let run = lesson(bin).arg("--help").run();
    assert_code(&run, 0);
    let text = run.stdout_text();
    assert!(text.starts_with("Usage: "), "{text}");
    let section = text
        .split("\nOptions:\n")
        .nth(1)
        .expect("an Options: section")
        .split("\n\n")
        .next()
        .unwrap();
    let mut columns = Vec::new();
    let mut seen = Vec::new();
    for line in section.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with('-') {
            assert_eq!(indent, 2, "{line:?}");
            let spec = line[2..].split("  ").next().unwrap();
            let words = spec.split(", ").map(|s| s.split(' ').next().unwrap());
            seen.extend(words.map(str::to_owned));
            let rest = &line[2 + spec.len()..];
            columns.push(2 + spec.len() + rest.len() - rest.trim_start().len());
        } else {
            columns.push(indent);
        }
    }
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "{columns:?}\n{text}"
    );
    assert_eq!(seen, options, "{text}");
    let full = shell(r#"exec "$0" --help > /dev/full"#, bin).run();
    assert_code(&full, 1);
    assert_stderr(&full, "write stdout");
}

#[test]
fn help_lists_every_option_aligned_and_survives_a_full_stdout() {
    assert_help(SIGNAL1, &["--count", "--show-fds", "-h", "--help"]);
    assert_help(SIGNAL2, &["--count", "--speed", "-h", "--help"]);
    assert_help(SIGPIPE_DEMO, &["--default", "--show-fds", "-h", "--help"]);
    assert_help(
        SIGCHLD_DEMO,
        &["--children", "--busy", "--show-fds", "-h", "--help"],
    );
    let signal2 = lesson(SIGNAL2).arg("--help").run().stdout_text();
    assert!(signal2.contains("10 turns 5 s into 0.5 s"), "{signal2}");
}

/// Compares a transcript whose lines end in a time of day (`... at Sun Nov 22 10:15:02 2026`)
/// with the recorded one by shape: everything before ` at `. With UPDATE_TRANSCRIPTS,
/// records it instead.
fn check_timed_transcript(path: &Path, text: &str) {
    let shape = |text: &str| -> String {
        text.lines()
            .map(|line| line.split(" at ").next().unwrap_or(line).to_owned() + "\n")
            .collect()
    };
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        check_transcript(path, text);
    } else {
        let recorded =
            std::fs::read_to_string(path).expect("a recorded transcript");
        // Pids differ from run to run: normalize them like every transcript.
        assert_eq!(
            lesson_test::normalize(&shape(&recorded)),
            lesson_test::normalize(&shape(text)),
            "{}",
            path.display()
        );
    }
}

#[test]
fn book_transcripts_match_fresh_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/transcripts");
    let run = lesson(SIGNAL2)
        .shown_as("cargo run -q -p signals --bin signal2 --")
        .args(["--count", "2", "--speed", "5"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!("$ {}\n{}", run.shown.as_ref().unwrap(), run.stdout_text());
    // Times of day differ from run to run; compare the shape.
    check_timed_transcript(&dir.join("signal2.txt"), &text);

    // signal1, with the signals a person would send from another terminal.
    let mut running = lesson(SIGNAL1)
        .shown_as("cargo run -q -p signals --bin signal1 --")
        .args(["USR1", "--count", "2"])
        .merge_stderr()
        .spawn();
    let pid = running.pid();
    // The two notes on stderr come first: the pid and kill commands.
    while !running
        .next_line()
        .expect("output")
        .text
        .contains("to stop it")
    {}
    for _ in 0..2 {
        send(pid, Signal::SIGUSR1);
        running.next_line().expect("Got signal ...");
    }
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!("$ {}\n{}", run.shown.as_ref().unwrap(), run.stdout_text());
    check_timed_transcript(&dir.join("signal1.txt"), &text);

    // Busy for 2 s while the children exit after 0.1 s: one merged SIGCHLD, every time.
    let run = lesson(SIGCHLD_DEMO)
        .shown_as("cargo run -q -p signals --bin sigchld-demo --")
        .args(["--children", "3", "--busy", "2000"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_transcript_of(&dir.join("sigchld-demo.txt"), &run);

    for (args, name) in [
        (&[][..], "sigpipe-demo.txt"),
        (&["--default"][..], "sigpipe-demo-default.txt"),
    ] {
        let run = lesson("sh")
            .args(["-c", r#""$0" "$@" 2>&1; echo "status $?""#, SIGPIPE_DEMO])
            .args(args)
            .run();
        let text = format!(
            "$ cargo run -q -p signals --bin sigpipe-demo -- {}; echo \"status $?\"\n{}",
            args.join(" "),
            run.stdout_text()
        );
        check_transcript(&dir.join(name), &text.replace(" -- ;", ";"));
    }
}

/// The rows of `block` above 2: what the program itself opened.
fn own_rows(block: &FdBlock) -> Vec<FdRow> {
    block.rows.iter().filter(|r| r.fd > 2).cloned().collect()
}

/// Marks every descriptor of this test process above 2 close-on-exec, so the
/// lessons it starts inherit only 0, 1 and 2, wherever the tests run. (A shell or CI
/// runner may hand `cargo test` descriptors of its own, and `Command` passes on
/// whatever is not close-on-exec: the tables in the book would show them.)
fn inherit_no_stray_descriptors() {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if fd > 2 {
            // SAFETY: F_SETFD only changes the close-on-exec flag of a descriptor
            // number; on a number that is closed by now it fails with EBADF, which
            // is fine to ignore. No memory is involved.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

fn book_transcript(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts")
        .join(name)
}

#[test]
fn sigpipe_demo_show_fds_leaves_the_write_end_alone_before_the_write() {
    inherit_no_stray_descriptors();
    let run = lesson(SIGPIPE_DEMO)
        .shown_as("cargo run -q -p signals --bin sigpipe-demo --")
        .arg("--show-fds")
        .merge_stderr()
        .run();
    assert_code(&run, 1);
    let output = run.stdout_text();
    let blocks = fd_blocks::blocks(&output);
    let steps: Vec<&str> = blocks.iter().map(|b| b.step.as_str()).collect();
    assert_eq!(steps, ["after pipe2", "after close(read end)"], "{output}");
    assert!(
        blocks
            .iter()
            .all(|b| b.who == "sigpipe-demo" && b.pid == run.pid)
    );
    // After pipe2: the two ends of one pipe, one inode, read and write.
    let made = own_rows(&blocks[0]);
    assert_eq!(made.len(), 2, "{output}");
    assert!(made[0].object.starts_with("pipe:["), "{output}");
    assert_eq!(made[0].object, made[1].object, "one pipe: {output}");
    assert_eq!((made[0].fd, made[1].fd), (3, 4), "{output}");
    assert_eq!(
        (&*made[0].end, &*made[1].end),
        ("read", "write"),
        "{output}"
    );
    assert!(made.iter().all(|r| r.flags == "cloexec"), "{output}");
    // After the close: the write end only. No read end is left anywhere (this is
    // the only process), so the write that follows gets EPIPE.
    assert_eq!(own_rows(&blocks[1]), [made[1].clone()], "{output}");
    let blocks_end = output.find("after close(read end)").unwrap();
    assert!(
        output[blocks_end..].contains("write pipe: EPIPE"),
        "{output}"
    );
    check_transcript_of(&book_transcript("sigpipe-demo-fds.txt"), &run);
}

#[test]
fn sigchld_demo_show_fds_children_hold_copies_of_the_parents_self_pipe() {
    inherit_no_stray_descriptors();
    let run = lesson(SIGCHLD_DEMO)
        .args(["--children", "3", "--show-fds"])
        .run();
    assert_code(&run, 0);
    let blocks = fd_blocks::blocks(&run.stderr);
    assert_eq!(blocks.len(), 4, "{}", run.transcript());
    let parent = &blocks[0];
    assert_eq!(
        (parent.who.as_str(), parent.pid, parent.step.as_str()),
        ("parent", run.pid, "after installing the handlers")
    );
    // signal-hook's self-pipe: a socket pair, two sockets (each its own inode,
    // unlike the two ends of a pipe), both ways, close-on-exec.
    let pipe = own_rows(parent);
    assert_eq!(pipe.len(), 2, "{}", run.transcript());
    assert!(pipe.iter().all(|r| r.kind == "socket" && r.end == "rw"));
    assert!(pipe.iter().all(|r| r.flags == "cloexec"));
    assert_ne!(pipe[0].object, pipe[1].object);
    // Each child: a copy of the parent's table, nothing more, nothing less.
    let forked = forked_pids(run.texts()[0]);
    let mut seen = Vec::new();
    for child in &blocks[1..] {
        assert_eq!(child.who, "child", "{}", run.transcript());
        assert_eq!(child.rows, parent.rows, "{}", run.transcript());
        let i = forked
            .iter()
            .position(|pid| *pid == child.pid)
            .expect("a forked child");
        assert_eq!(
            child.step,
            format!("after fork, just before _exit({i})"),
            "{}",
            run.transcript()
        );
        seen.push(i);
    }
    seen.sort();
    assert_eq!(seen, [0, 1, 2], "{}", run.transcript());

    // The book's run: one child, so the blocks come in one order.
    let run = lesson(SIGCHLD_DEMO)
        .shown_as("cargo run -q -p signals --bin sigchld-demo --")
        .args(["--children", "1", "--show-fds"])
        .merge_stderr()
        .run();
    assert_code(&run, 0);
    check_transcript_of(&book_transcript("sigchld-demo-fds.txt"), &run);
}

#[test]
fn signal1_show_fds_shows_the_self_pipe_its_handlers_write_to() {
    inherit_no_stray_descriptors();
    let mut running = lesson(SIGNAL1)
        .args(["USR1", "--count", "1", "--show-fds"])
        .spawn();
    let stderr = running.wait_for_stderr("to stop it");
    let blocks = fd_blocks::blocks(&stderr);
    assert_eq!(blocks.len(), 1, "{stderr}");
    assert_eq!(blocks[0].step, "after Signals::new", "{stderr}");
    let pipe = own_rows(&blocks[0]);
    assert_eq!(pipe.len(), 2, "{stderr}");
    assert!(
        pipe.iter()
            .all(|r| r.kind == "socket" && r.flags == "cloexec")
    );
    // The table comes before the notes, which tell where to send the signal.
    assert!(stderr.find("[fds]") < stderr.find("waiting for SIGUSR1"));
    send(running.pid(), Signal::SIGUSR1);
    let run = running.finish();
    assert_code(&run, 0);
}

#[test]
fn without_show_fds_no_table_is_printed() {
    let runs = [
        lesson(SIGPIPE_DEMO).run(),
        lesson(SIGCHLD_DEMO)
            .args(["--children", "2", "--busy", "0"])
            .run(),
    ];
    for run in runs {
        assert!(!run.stderr.contains("[fds]"), "{}", run.transcript());
    }
}

/// The book's trace of sigchld-demo, traced again and compared process by process.
/// It is kept out of docs/src/traces/ (whose test compares the lengths of writes,
/// and a write that prints a pid is one byte longer when the pid has one digit more)
/// until that test leaves them out too.
#[test]
fn the_books_trace_of_sigchld_demo_matches_a_fresh_trace() {
    if let Err(why) = lesson_test::strace_works() {
        eprintln!("skipped: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join("docs/src/traces/sigchld/sigchld-demo.txt");
    // The script shows the binary as BIN when its path is short enough to be
    // printed whole: a copy in a temporary directory is.
    let dir = lesson_test::TempDir::new("str");
    std::fs::copy(SIGCHLD_DEMO, dir.path().join("sigchld-demo")).expect("copy");
    let trace = Lesson::new(root.join("scripts/trace"))
        .args(["sigchld-demo", "--children", "1", "--busy", "300"])
        .env("TRACE_BIN_DIR", dir.path())
        .deadline(Duration::from_secs(30))
        .run();
    assert_code(&trace, 0);
    let fresh = trace.stdout_text();
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        std::fs::write(&file, &fresh).expect("write the trace");
        return;
    }
    let recorded = std::fs::read_to_string(&file).expect("the book's trace");
    assert_eq!(
        lesson_test::calls_by_process(&recorded),
        lesson_test::calls_by_process(&fresh),
        "{} no longer matches a fresh trace; if the change is intended, run \
         UPDATE_TRANSCRIPTS=1 cargo test -p signals",
        file.display()
    );
}

#[test]
fn trace_comparison_ignores_what_the_digits_of_a_pid_change() {
    let a = "$ x\nparent   write(1, \"P <parent> forked: <child>\\n\", 36) = 36\n\
             parent   --- SIGCHLD ---\n\
             parent   write(1, \"reaped child <child> (exited wi\"..., 53) = 53\n\
             child    exit_group(0) = ?\n";
    let b = "$ x\nparent   write(1, \"P <parent> forked: <child>\\n\", 34) = 34\n\
             parent   write(1, \"reaped child <child> (exited with\"..., 51) = 51\n\
             child    exit_group(0) = ?\n";
    assert_eq!(
        lesson_test::calls_by_process(a),
        lesson_test::calls_by_process(b)
    );
    assert_eq!(
        lesson_test::calls_by_process(a)["parent"],
        [
            "write(1, \"P <parent> forked: <child>\\n\"",
            "write(1, \"reaped child <child> (exited"
        ]
    );
    let c = "$ x\nparent   write(1, \"P <parent> forked: <child2>\\n\", 36) = 36\n";
    assert_ne!(
        lesson_test::calls_by_process(a)["parent"][0],
        lesson_test::calls_by_process(c)["parent"][0]
    );
}
