//! The lesson's promises, checked by running its binaries as subprocesses with deadlines.
//! The tests send the signals themselves: no person at a terminal is needed.

use lesson_test::{Lesson, check_transcript, number_after, send};
use nix::sys::signal::Signal;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

const SIGNAL1: &str = env!("CARGO_BIN_EXE_signal1");
const SIGNAL2: &str = env!("CARGO_BIN_EXE_signal2");
const SIGPIPE_DEMO: &str = env!("CARGO_BIN_EXE_sigpipe-demo");
const SIGCHLD_DEMO: &str = env!("CARGO_BIN_EXE_sigchld-demo");

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
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
fn signal1_ends_promptly_on_sigint_and_sigterm() {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let mut running = lesson(SIGNAL1).arg("HUP").spawn();
        running.wait_for_stderr("to stop it");
        running.stop_with(signal);
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
fn signal2_ends_promptly_on_sigint_while_waiting() {
    let mut running = lesson(SIGNAL2).spawn(); // the document's 5 s alarm
    let line = running.next_line().expect("Setting at ...");
    assert!(line.text.starts_with("Setting at "), "{}", line.text);
    running.stop_with(Signal::SIGINT);
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

#[test]
fn sigchld_reaps_every_child_even_when_signals_merge() {
    let run = lesson(SIGCHLD_DEMO).args(["--children", "6"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let texts = run.texts();
    let forked: Vec<i32> = texts[0]
        .split(": ")
        .nth(1)
        .expect("the list of children")
        .split(' ')
        .map(|pid| pid.parse().unwrap())
        .collect();
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
fn sigchld_demo_ends_promptly_on_sigterm_and_reaps_its_children() {
    // Busy for 5 s: the stop must not wait for the end of it.
    let mut running = lesson(SIGCHLD_DEMO).args(["--busy", "5000"]).spawn();
    running.next_line().expect("the list of children");
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("children killed and reaped"),
        "{}",
        run.transcript()
    );
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
    let run = lesson(SIGNAL2).args(["--count", "2", "--speed", "5"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p signals --bin signal2 -- --count 2 --speed 5\n{}",
        run.stdout_text()
    );
    // Times of day differ from run to run; compare the shape.
    check_timed_transcript(&dir.join("signal2.txt"), &text);

    // signal1, with the signals a person would send from another terminal.
    let mut running = lesson(SIGNAL1)
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
    let text = format!(
        "$ cargo run -q -p signals --bin signal1 -- USR1 --count 2   # then kill -USR1 twice\n{}",
        run.stdout_text()
    );
    check_timed_transcript(&dir.join("signal1.txt"), &text);

    // Busy for 2 s while the children exit after 0.1 s: one merged SIGCHLD, every time.
    let run = lesson(SIGCHLD_DEMO)
        .args(["--children", "3", "--busy", "2000"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text = format!(
        "$ cargo run -q -p signals --bin sigchld-demo -- --children 3 --busy 2000\n{}",
        run.stdout_text()
    );
    check_transcript(&dir.join("sigchld-demo.txt"), &text);

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
