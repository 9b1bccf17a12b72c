//! The lesson's promises, checked by running its binaries as subprocesses with deadlines.

use lesson_test::faults::as_nobody;
use lesson_test::{
    Finished, Lesson, TempDir, assert_usage_errors, check_transcript,
    check_transcript_of, mask_number, number_after,
};
use nix::sys::signal::Signal;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EXITSTATUS: &str = env!("CARGO_BIN_EXE_1-exitstatus");
const SETENV: &str = env!("CARGO_BIN_EXE_2-setenv");
const ECHOENV: &str = env!("CARGO_BIN_EXE_2-echoenv");
const ARGV: &str = env!("CARGO_BIN_EXE_3-argv");
const SHOWARGS: &str = env!("CARGO_BIN_EXE_3-showargs");
const UPCASE: &str = env!("CARGO_BIN_EXE_4-upcase");
const REDIRECT: &str = env!("CARGO_BIN_EXE_4-redirect");
const POPEN: &str = env!("CARGO_BIN_EXE_5-popen");
const FILES: &str = env!("CARGO_BIN_EXE_6-file-exchange");

const ALL: [&str; 9] = [
    EXITSTATUS, SETENV, ECHOENV, ARGV, SHOWARGS, UPCASE, REDIRECT, POPEN, FILES,
];

const STOPS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

fn lesson(bin: impl AsRef<OsStr>) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
}

/// The lesson run through `sh -c SCRIPT`, with `$0` the binary.
fn shell(script: &str, bin: &str) -> Lesson {
    lesson("sh").args(["-c", script, bin])
}

/// The lesson run with one environment change (`USER=ada`, or `-u USER`) through `env`,
/// which execs it: same pid, same process group.
fn with_env(change: &[&str], bin: &str) -> Lesson {
    lesson("env").args(change).arg(bin)
}

fn transcript(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts")
        .join(format!("simple-ipc-{name}.txt"))
}

fn shown(bin: &str) -> String {
    format!("cargo run -q -p simple-ipc --bin {bin} --")
}

fn ok(run: &Finished) {
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
}

/// `bin` alone in a fresh directory: the programs it runs are not next to it. A hard link,
/// not a copy: a copy is a file open for writing, and a test thread forking meanwhile
/// would make exec fail with ETXTBSY ("Text file busy").
fn alone(bin: &str, dir: &Path) -> PathBuf {
    let link = dir.join(Path::new(bin).file_name().unwrap());
    std::fs::hard_link(bin, &link).expect("link the binary");
    link
}

// ---------------------------------------------------------------- every binary

#[test]
fn every_help_starts_with_usage_and_aligns_its_option_descriptions() {
    for bin in ALL {
        let run = lesson(bin).arg("--help").run();
        ok(&run);
        let text = run.stdout_text();
        assert!(text.starts_with("Usage: "), "{}", run.transcript());
        let options: Vec<&str> = text
            .split("\nOptions:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no Options: in {text}"))
            .split("\n\n")
            .next()
            .unwrap()
            .lines()
            .collect();
        // The column where descriptions start: after the option and two or more spaces.
        let column = |line: &str| {
            let body = &line[2..];
            let gap = body.find("  ").expect("two spaces before the description");
            let rest = &body[gap..];
            2 + gap + rest.len() - rest.trim_start().len()
        };
        let first = column(options[0]);
        for line in &options {
            assert!(line.starts_with("  "), "{bin}: {line:?}");
            let at = if line.trim_start().starts_with('-') {
                column(line)
            } else {
                line.len() - line.trim_start().len() // a continuation line
            };
            assert_eq!(at, first, "{bin}: not aligned: {line:?}");
        }
        assert!(text.contains("-h, --help"), "{bin}");
    }
}

#[test]
fn help_into_a_full_stdout_is_an_error_not_a_panic() {
    for bin in ALL {
        let run = shell("exec \"$0\" --help >/dev/full", bin).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains("write stdout"), "{}", run.transcript());
        assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    }
}

#[test]
fn a_full_stdout_is_reported_with_exit_1_by_every_program() {
    let cases: [(&str, &[&str]); 7] = [
        (EXITSTATUS, &["--count", "1"]),
        (SETENV, &[]),
        (ARGV, &[]),
        (REDIRECT, &[]),
        (POPEN, &[]),
        (FILES, &["--records", "2"]),
        (UPCASE, &["spam"]),
    ];
    for (bin, args) in cases {
        let run = shell("exec \"$0\" \"$@\" >/dev/full", bin)
            .args(args.iter().copied())
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains("ENOSPC") || run.stderr.contains("No space"));
        assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
    }
    for bin in [ECHOENV, SHOWARGS] {
        let run = shell("exec \"$0\" >/dev/full", bin).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains("write stdout"), "{}", run.transcript());
    }
}

#[test]
fn a_full_stderr_changes_nothing() {
    let cases: [(&str, &[&str]); 5] = [
        (EXITSTATUS, &["--count", "2"]),
        (SETENV, &[]),
        (ARGV, &[]),
        (REDIRECT, &[]),
        (POPEN, &[]),
    ];
    for (bin, args) in cases {
        let run = shell("exec \"$0\" \"$@\" 2>/dev/full", bin)
            .args(args.iter().copied())
            .run();
        ok(&run);
        assert!(!run.stdout.is_empty(), "{}", run.transcript());
    }
}

#[test]
fn a_program_that_is_not_next_to_the_lesson_is_exit_127_with_its_path() {
    // Next to the target directory: a hard link cannot cross file systems.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("simple-ipc-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the directory");
    for (bin, missing) in [
        (SETENV, "2-echoenv"),
        (ARGV, "3-showargs"),
        (REDIRECT, "4-upcase"),
        (POPEN, "4-upcase"),
    ] {
        let run = lesson(alone(bin, &dir)).run();
        assert_eq!(run.code(), Some(127), "{}", run.transcript());
        let expected = format!("exec {}: not found", dir.join(missing).display());
        if bin == REDIRECT {
            // The child's stderr is out.txt by then (2>&1): the path is said there, as
            // with a shell. The lesson reports the status.
            let said = format!(
                "{missing}: exited with status 127: exec failed, not found"
            );
            assert!(run.stderr.contains(&said), "{}", run.transcript());
        } else {
            assert!(run.stderr.contains(&expected), "{}", run.transcript());
        }
    }
    std::fs::remove_dir_all(&dir).expect("remove the directory");
}

/// A directory holding `2-setenv` and, as `2-echoenv`, a shell script of ours.
fn setenv_with_fake_echoenv(script: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "simple-ipc-fake-{}-{}",
        std::process::id(),
        script.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the directory");
    let fake = dir.join("2-echoenv");
    std::fs::write(&fake, format!("#!/bin/sh\n{script}\n"))
        .expect("write the script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755))
        .unwrap();
    (alone(SETENV, &dir), dir)
}

#[test]
fn a_program_that_vanishes_or_loses_its_x_bit_is_127_or_126_from_command_too() {
    // The script works for the fork + exec step, then removes itself (or its execute
    // permission), so that the next step, with Command, cannot run it.
    for (script, code, said) in [
        ("echo ok; rm -- \"$0\"", 127, "No such file or directory"),
        ("echo ok; chmod -x \"$0\"", 126, "Permission denied"),
    ] {
        let (setenv, dir) = setenv_with_fake_echoenv(script);
        let run = lesson(&setenv).run();
        assert_eq!(run.code(), Some(code), "{}", run.transcript());
        let expected = format!("spawn {}: {said}", dir.join("2-echoenv").display());
        assert!(run.stderr.contains(&expected), "{}", run.transcript());
        std::fs::remove_dir_all(&dir).expect("remove the directory");
    }
}

#[test]
fn popen_style_reads_take_1_mib_and_refuse_more() {
    // Only the third run (USER=Linus) is read through a pipe.
    let print = |bytes: usize| {
        format!(
            "if [ \"$USER\" = Linus ]; then head -c {bytes} /dev/zero; \
             else echo \"echoenv... Hello, $USER\"; fi"
        )
    };
    let (setenv, dir) = setenv_with_fake_echoenv(&print(1 << 20));
    let run = lesson(&setenv).run();
    ok(&run);
    assert!(run.stdout.len() > 1 << 20, "{}", run.stdout.len());
    std::fs::remove_dir_all(&dir).expect("remove the directory");
    let (setenv, dir) = setenv_with_fake_echoenv(&print((1 << 20) + 1));
    let run = lesson(&setenv).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("read pipe from 2-echoenv: more than 1 MiB")
    );
    std::fs::remove_dir_all(&dir).expect("remove the directory");
}

#[test]
fn too_few_descriptors_is_a_clean_error_naming_the_call() {
    // 5: no room for the stop pipe's copies; 8: room for them, none for popen's pipe.
    for (limit, bin, call) in [
        ("5", EXITSTATUS, "dup (stop pipe): EMFILE"),
        ("8", POPEN, "pipe2: EMFILE"),
    ] {
        // Descriptors inherited from the test run (cargo's jobserver pipes, say) would
        // count too: close every one above 2 first (bash: dash cannot name fd 10).
        let script = format!(
            "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; \
             done; ulimit -n {limit}; exec \"$0\""
        );
        let run = lesson("bash").args(["-c", &script, bin]).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(run.stderr.contains(call), "{}", run.transcript());
    }
}

// ---------------------------------------------------------------- 1-exitstatus

#[test]
fn exitstatus_mirrors_testexit_fork_lines_and_the_child_counter_stays_1() {
    let run = lesson(EXITSTATUS)
        .shown_as(&shown("1-exitstatus"))
        .args(["--count", "3"])
        .merge_stderr()
        .run();
    ok(&run);
    check_transcript_of(&transcript("1-exitstatus"), &run);
    let lines: Vec<&str> = run
        .texts()
        .into_iter()
        .filter(|line| !line.starts_with("  status"))
        .collect();
    assert_eq!(lines.len(), 6, "{}", run.transcript());
    for pair in lines.chunks(2) {
        let child = number_after(pair[0], "Hello from child ");
        let masked: Vec<String> = pair
            .iter()
            .map(|line| mask_number(line, child.into(), "<pid>"))
            .collect();
        // Every child adds 1 to its own copy of the counter, which is 0 in the parent.
        assert_eq!(
            masked,
            ["Hello from child <pid> 1", "Parent got <pid> 256 1"],
            "{}",
            run.transcript()
        );
    }
}

/// Runs one child with `args` and returns the parent's line and the decoding note.
fn one_child(args: &[&str]) -> (String, String) {
    let run = lesson(EXITSTATUS).args(["--count", "1"]).args(args).run();
    ok(&run);
    let child = number_after(&run.stdout_text(), "Hello from child ");
    let parent = mask_number(run.texts()[1], child.into(), "<pid>");
    (parent, run.stderr.trim().to_owned())
}

#[test]
fn exitstatus_decodes_codes_0_1_255_and_a_killed_child() {
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["--status", "0"],
            "Parent got <pid> 0 0",
            "status 0 = 0x0000: WIFEXITED, WEXITSTATUS 0 (a shell's $? would be 0)",
        ),
        (
            &[],
            "Parent got <pid> 256 1",
            "status 256 = 0x0100: WIFEXITED, WEXITSTATUS 1 (a shell's $? would be 1)",
        ),
        (
            &["--status", "255"],
            "Parent got <pid> 65280 255",
            "status 65280 = 0xff00: WIFEXITED, WEXITSTATUS 255 (a shell's $? would be 255)",
        ),
        (
            &["--signal", "KILL"],
            "Parent got <pid> 9 0",
            "status 9 = 0x0009: WIFSIGNALED, WTERMSIG 9 (SIGKILL), no core dump \
             (a shell's $? would be 137)",
        ),
        (
            &["--signal", "SIGABRT"],
            "Parent got <pid> 6 0",
            "status 6 = 0x0006: WIFSIGNALED, WTERMSIG 6 (SIGABRT), no core dump \
             (a shell's $? would be 134)",
        ),
    ];
    for (args, parent, decoded) in cases {
        let (line, note) = one_child(args);
        assert_eq!(line, parent, "{args:?}");
        assert_eq!(note, decoded, "{args:?}");
    }
    let (line, _) = one_child(&["--signal", "15"]);
    assert_eq!(line, "Parent got <pid> 15 0");
}

#[test]
fn exitstatus_reads_a_line_per_child_and_stops_on_q_or_at_the_end_of_input() {
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    running.wait_for_stderr("q (or Ctrl-D) stops");
    assert!(running.write_stdin(b"\n\nq\n"));
    let run = running.finish();
    ok(&run);
    assert_eq!(run.lines.len(), 6, "{}", run.transcript());
    // stdin is /dev/null: the end of input after the first child.
    let run = lesson(EXITSTATUS).run();
    ok(&run);
    assert_eq!(run.lines.len(), 2, "{}", run.transcript());
    // A last line without a newline, or text other than q, is not a stop.
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    assert!(running.write_stdin(b"again\n q \nq"));
    let run = running.finish();
    assert_eq!(run.lines.len(), 4, "{}", run.transcript());
}

#[test]
fn exitstatus_accepts_a_64_kib_line_and_refuses_a_longer_one() {
    let mut line = vec![b'x'; 65535];
    line.extend_from_slice(b"\nq\n"); // 64 KiB with its newline: another child
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    assert!(running.write_stdin(&line));
    let run = running.finish();
    ok(&run);
    assert_eq!(run.lines.len(), 4, "{}", run.transcript());
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    running.write_stdin(&[b'x'; 70000]); // no newline: refused, not stored forever
    let run = running.finish();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains("read stdin: a line over 64 KiB"));
}

#[test]
fn a_reap_that_cannot_open_its_pidfd_ends_and_reaps_the_child_and_says_why() {
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    running.wait_for_stderr("q (or Ctrl-D) stops");
    running.next_line().expect("Hello from child");
    running.next_line().expect("Parent got");
    // From now on no descriptor above 3 may be made (3 and 5 to 7, the stop pipe's,
    // stay open): the next child's pidfd would be 4, over the limit.
    let limited = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", running.pid()))
        .arg("--nofile=4:4")
        .status()
        .expect("run prlimit");
    assert!(limited.success(), "prlimit failed");
    assert!(running.write_stdin(b"\n"));
    let run = running.finish(); // and the group check: the child was reaped
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("1-exitstatus: pidfd_open ")
            && run.stderr.contains(": EMFILE"),
        "{}",
        run.transcript()
    );
}

#[test]
fn exitstatus_stops_cleanly_while_waiting_for_a_line() {
    for signal in STOPS {
        let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
        running.wait_for_stderr("q (or Ctrl-D) stops");
        running.next_line().expect("Hello from child");
        running.next_line().expect("Parent got");
        running.stop_with(signal);
    }
}

#[test]
fn exitstatus_into_a_closed_pipe_ends_with_exit_1_and_no_panic() {
    let run = shell(
        "{ \"$0\" --count 100000; echo \"status $?\" >&2; } | head -n 1",
        EXITSTATUS,
    )
    .run();
    ok(&run);
    assert!(run.stderr.contains("status 1"), "{}", run.transcript());
    assert!(run.stderr.contains("Broken pipe"), "{}", run.transcript());
    assert!(!run.stderr.contains("panicked"), "{}", run.transcript());
}

#[test]
fn exitstatus_fork_failure_is_reported() {
    // RLIMIT_NPROC does not bind root: run as nobody, allowed one process (itself).
    let Some(nobody) = as_nobody(EXITSTATUS) else {
        return;
    };
    let run = nobody
        .args(["prlimit", "--nproc=1", EXITSTATUS, "--count", "1"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(run.stderr.contains("fork: EAGAIN"), "{}", run.transcript());
}

#[test]
fn exitstatus_refuses_bad_options() {
    assert_usage_errors(
        || lesson(EXITSTATUS),
        "Usage: 1-exitstatus",
        &[
            (
                &["--count", "0"],
                "--count \"0\": must be from 1 to 1000000",
            ),
            (&["--count", "1000001"], "must be from 1 to 1000000"),
            (
                &["--status", "256"],
                "--status \"256\": must be from 0 to 255",
            ),
            (&["--status", "-1"], "--status"),
            (
                &["--signal", "STOP"],
                "SIGSTOP does not end a process by default",
            ),
            (
                &["--signal", "chld"],
                "SIGCHLD does not end a process by default",
            ),
            (&["--signal", "99"], "no such signal"),
            (&["--signal", "NOPE"], "no such signal"),
            (&["--status", "1", "--signal", "KILL"], "exclude each other"),
            (&["extra"], "unexpected argument"),
        ],
    );
    ok(&lesson(EXITSTATUS)
        .args(["--count", "1", "--status", "255"])
        .run());
}

// ---------------------------------------------------------------- 2-setenv

#[test]
fn setenv_mirrors_setenv_py_and_the_shell_keeps_its_user() {
    let run = shell(
        "unset USER; USER=zed \"$0\" Brian Arthur Gumby; echo \"shell: ${USER-unset}\"",
        SETENV,
    )
    .run();
    ok(&run);
    assert_eq!(
        run.texts(),
        [
            "setenv... zed",
            "echoenv... Hello, Brian",
            "echoenv... Hello, Arthur",
            "echoenv... Hello, Gumby",
            "",
            "echoenv... (USER is not set)",
            "shell: unset",
        ],
        "{}",
        run.transcript()
    );
    assert!(
        run.stderr.contains("our USER is now Brian"),
        "{}",
        run.transcript()
    );
}

#[test]
fn setenv_changes_reach_the_children_only_and_the_book_shows_it() {
    let run = with_env(&["USER=ada"], SETENV).merge_stderr().run();
    ok(&run);
    let text = format!(
        "$ USER=ada cargo run -q -p simple-ipc --bin 2-setenv\n{}",
        run.stdout_text()
    );
    check_transcript(&transcript("2-setenv"), &text);
    let run =
        shell("export USER=ada; \"$0\" >/dev/null; echo \"$USER\"", SETENV).run();
    assert_eq!(run.texts(), ["ada"], "{}", run.transcript());
}

#[test]
fn setenv_and_echoenv_handle_a_missing_user() {
    let run = with_env(&["-u", "USER"], SETENV).run();
    ok(&run);
    assert_eq!(run.texts()[0], "setenv... (USER is not set)");
    assert_eq!(run.texts()[1], "echoenv... Hello, Ada");
    let run = with_env(&["-u", "USER"], ECHOENV).run();
    ok(&run);
    assert_eq!(run.texts(), ["echoenv... (USER is not set)"]);
}

#[test]
fn echoenv_prints_a_user_that_is_not_utf8_as_its_bytes() {
    let run = lesson("env")
        .arg(OsStr::from_bytes(b"USER=caf\xe9"))
        .arg(ECHOENV)
        .run();
    ok(&run);
    assert_eq!(run.stdout, b"echoenv... Hello, caf\xe9\n");
}

#[test]
fn setenv_and_echoenv_refuse_bad_arguments() {
    assert_usage_errors(
        || lesson(SETENV),
        "Usage: 2-setenv",
        &[
            (&["a", "b", "c", "d"], "unexpected argument \"d\""),
            (&["--bogus"], "unknown option --bogus"),
        ],
    );
    assert_usage_errors(
        || lesson(ECHOENV),
        "Usage: 2-echoenv",
        &[
            (&["x"], "unexpected argument"),
            (&["--x"], "unknown option"),
        ],
    );
    // After `--`, a name may start with a dash.
    for name in ["-x", "--help"] {
        let run = lesson(SETENV).args(["--", name]).run();
        ok(&run);
        assert_eq!(run.texts()[1], format!("echoenv... Hello, {name}"));
    }
}

// ---------------------------------------------------------------- 3-argv

const DEMO_ARGV: [&str; 6] = [
    "showargs: argc = 5",
    "  argv[0] = b'any name at all'",
    "  argv[1] = b'two words'",
    "  argv[2] = b'caf\\xe9' (not UTF-8)",
    "  argv[3] = b''",
    "  argv[4] = b'$HOME *'",
];

#[test]
fn argv_arrives_exactly_as_passed_by_execv_and_by_command() {
    let run = lesson(ARGV).shown_as(&shown("3-argv")).merge_stderr().run();
    ok(&run);
    check_transcript_of(&transcript("3-argv"), &run);
    let run = lesson(ARGV).run();
    ok(&run);
    let twice: Vec<&str> = DEMO_ARGV.iter().chain(&DEMO_ARGV).copied().collect();
    assert_eq!(run.texts(), twice, "{}", run.transcript());
}

#[test]
fn argv_passes_the_given_arguments_and_nothing_after_a_bare_double_dash() {
    let run = lesson(ARGV).args(["--", "one two", "--help"]).run();
    ok(&run);
    let expected = [
        "showargs: argc = 3",
        "  argv[0] = b'any name at all'",
        "  argv[1] = b'one two'",
        "  argv[2] = b'--help'",
    ];
    assert_eq!(run.texts()[..4], expected, "{}", run.transcript());
    assert_eq!(run.texts()[4..], expected, "{}", run.transcript());
    let run = lesson(ARGV).arg("--").run();
    ok(&run);
    assert_eq!(
        run.texts()[..2],
        ["showargs: argc = 1", "  argv[0] = b'any name at all'"]
    );
    assert_usage_errors(
        || lesson(ARGV),
        "Usage: 3-argv",
        &[
            (&["x"], "unexpected argument"),
            (&["--x"], "unknown option"),
        ],
    );
}

#[test]
fn showargs_shows_bytes_and_treats_everything_but_a_lone_help_as_data() {
    let run = lesson(SHOWARGS)
        .arg(OsStr::from_bytes(b"\xff"))
        .args(["--help", "it's"])
        .run();
    ok(&run);
    assert_eq!(run.texts()[0], "showargs: argc = 4");
    assert!(
        run.texts()[1].starts_with("  argv[0] = b'/"),
        "{}",
        run.transcript()
    );
    assert_eq!(
        run.texts()[2..],
        [
            "  argv[1] = b'\\xff' (not UTF-8)",
            "  argv[2] = b'--help'",
            "  argv[3] = b\"it's\"",
        ]
    );
    for help in ["--help", "-h"] {
        let run = lesson(SHOWARGS).arg(help).run();
        ok(&run);
        assert!(run.stdout_text().starts_with("Usage: 3-showargs"));
    }
}

// ---------------------------------------------------------------- 4-redirect

const REDIRECT_OUT: [&str; 6] = [
    "  out.txt: this process wrote to fd 1 while fd 1 was out.txt (not the terminal)",
    "  out.txt: HELLO FROM IN.TXT",
    "  out.txt: SECOND LINE",
    "  out.txt: upcase: 2 lines (on stderr)",
    "  out.txt: HELLO AGAIN, FROM COMMAND",
    "  out.txt: upcase: 1 line (on stderr)",
];

#[test]
fn redirect_round_trips_stdout_and_spells_the_shells_operators() {
    let run = lesson(REDIRECT)
        .shown_as(&shown("4-redirect"))
        .merge_stderr()
        .run();
    ok(&run);
    check_transcript_of(&transcript("4-redirect"), &run);
    // In a temporary directory of our own, to see that nothing is left behind.
    let tmp = TempDir::new("simple-ipc-redirect");
    let run =
        with_env(&[&format!("TMPDIR={}", tmp.path().display())], REDIRECT).run();
    ok(&run);
    assert_eq!(run.texts(), REDIRECT_OUT, "{}", run.transcript());
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
}

#[test]
fn redirect_reports_a_file_that_cannot_be_written_and_restores_stdout() {
    let run = lesson(REDIRECT).args(["--out", "/dev/full"]).run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("/dev/full (as stdout): write: ENOSPC"),
        "{}",
        run.transcript()
    );
    // The failed line did not stay in a buffer to reach the real stdout later.
    assert!(run.stdout.is_empty(), "{}", run.transcript());
    let run = lesson(REDIRECT)
        .args(["--out", "/nonexistent/out.txt"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("create /nonexistent/out.txt: No such file")
    );
    let tmp = TempDir::new("simple-ipc-redirect-out");
    let out = tmp.path().join("mine.txt");
    let run = lesson(REDIRECT).arg("--out").arg(&out).run();
    ok(&run);
    let expected = format!("  {}: upcase: 1 line (on stderr)", out.display());
    assert_eq!(run.texts().last().copied(), Some(expected.as_str()));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "HELLO AGAIN, FROM COMMAND\nupcase: 1 line (on stderr)\n"
    );
    assert_usage_errors(
        || lesson(REDIRECT),
        "Usage: 4-redirect",
        &[
            (&["--out"], "--out needs a value"),
            (&["x"], "unexpected argument"),
        ],
    );
}

#[test]
fn upcase_filters_stdin_or_words_and_ends_with_the_asked_status() {
    let mut running = lesson(UPCASE).piped_stdin().spawn();
    assert!(running.write_stdin(b"abc\nd\xe9f\n"));
    running.close_stdin();
    let run = running.finish();
    ok(&run);
    assert_eq!(run.stdout, b"ABC\nD\xe9F\n");
    assert_eq!(run.stderr, "upcase: 2 lines (on stderr)\n");
    let run = lesson(UPCASE)
        .args(["--exit", "255", "spam", "--", "-x"])
        .run();
    assert_eq!(run.code(), Some(255), "{}", run.transcript());
    assert_eq!(run.texts(), ["SPAM", "-X"]);
    assert_eq!(run.stderr, "upcase: 2 words (on stderr)\n");
    assert_usage_errors(
        || lesson(UPCASE),
        "Usage: 4-upcase",
        &[
            (&["--exit", "256"], "must be from 0 to 255"),
            (&["-x"], "unknown option"),
        ],
    );
}

// ---------------------------------------------------------------- 5-popen

fn popen_lines(status: &str, python: &str) -> Vec<String> {
    let close = format!(
        "close: 4-upcase exited with status {status} (Python's close() returns {python})"
    );
    let read = ["read: SPAM", "read: EGGS"];
    let write = ["SPAM", "EGGS"];
    [&read[..], &write[..], &read[..], &write[..]]
        .iter()
        .flat_map(|lines| {
            lines
                .iter()
                .map(|line| line.to_string())
                .chain([close.clone()])
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn popen_reads_and_writes_a_command_and_checks_its_status() {
    let run = lesson(POPEN)
        .shown_as(&shown("5-popen"))
        .merge_stderr()
        .run();
    ok(&run);
    check_transcript_of(&transcript("5-popen"), &run);
    let run = lesson(POPEN).run();
    ok(&run);
    assert_eq!(
        run.texts(),
        popen_lines("0", "None"),
        "{}",
        run.transcript()
    );
    for (code, python) in [("3", "768"), ("255", "65280")] {
        let run = lesson(POPEN).args(["--exit", code]).run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert_eq!(
            run.texts(),
            popen_lines(code, python),
            "{}",
            run.transcript()
        );
        assert!(
            run.stderr
                .contains(&format!("4-upcase failed (exit status {code})"))
        );
    }
}

#[test]
fn popen_detects_the_eof_that_never_comes_in_both_modes() {
    let run = lesson(POPEN)
        .args(["--forget-close", "r", "--timeout", "0.3"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    assert_eq!(
        run.texts(),
        ["read: SPAM", "read: EGGS"],
        "{}",
        run.transcript()
    );
    assert!(run.stderr.contains("yet no EOF"), "{}", run.transcript());
    assert!(
        run.elapsed >= Duration::from_millis(300),
        "{}",
        run.transcript()
    );

    let run = lesson(POPEN)
        .shown_as(&shown("5-popen"))
        .args(["--forget-close", "w", "--timeout", "0.3"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    check_transcript_of(&transcript("5-popen-forget-close"), &run);
    assert!(run.stdout_text().contains("(--forget-close w); ending it"));
    assert!(
        !run.stdout_text().contains("upcase: 2 lines"),
        "{}",
        run.transcript()
    );
}

#[test]
fn popen_stops_cleanly_while_waiting_for_an_eof() {
    for (mode, signal) in [
        ("r", Signal::SIGINT),
        ("w", Signal::SIGTERM),
        ("w", Signal::SIGHUP),
    ] {
        let mut running = lesson(POPEN)
            .args(["--forget-close", mode, "--timeout", "60"])
            .spawn();
        if mode == "r" {
            running.wait_for_stderr("upcase: 2 words"); // it has written and exited
        } else {
            running.wait_for_stderr("[2] mode w");
            running.next_line().expect("read: SPAM");
            running.next_line().expect("read: EGGS");
            running.next_line().expect("close");
            running.next_line().expect("SPAM");
            running.next_line().expect("EGGS");
        }
        std::thread::sleep(Duration::from_millis(100)); // now blocked for good
        let run = running.stop_with(signal);
        // The child ended on SIGTERM, as a program with default dispositions does.
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
    }
}

/// The targets of a process's descriptors 3 and up (`pipe:[1234]`, a path).
fn descriptors(pid: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read fds") {
        let entry = entry.expect("fd entry");
        let fd: u32 = entry
            .file_name()
            .to_string_lossy()
            .parse()
            .expect("a number");
        if let (true, Ok(target)) = (fd > 2, std::fs::read_link(entry.path())) {
            found.push(target.to_string_lossy().into_owned());
        }
    }
    found
}

#[test]
fn an_execd_program_inherits_no_descriptor_of_the_lesson() {
    // 4-upcase waits for an EOF that never comes: look at what it holds meanwhile.
    let mut running = lesson(POPEN)
        .args(["--forget-close", "w", "--timeout", "60"])
        .spawn();
    running.wait_for_stderr("[2] mode w");
    running.next_line().expect("read: SPAM");
    running.next_line().expect("read: EGGS");
    running.next_line().expect("close");
    running.next_line().expect("SPAM"); // 4-upcase runs
    let upcase = lesson_test::children_of(running.pid())
        .into_iter()
        .find(|child| child.command.contains("upcase"))
        .expect("4-upcase is the lesson's child");
    let ours = descriptors("self"); // what the test run itself passed down, if anything
    let leaked: Vec<String> = descriptors(&upcase.pid.to_string())
        .into_iter()
        .filter(|target| !ours.contains(target))
        .collect();
    assert!(leaked.is_empty(), "4-upcase holds the lesson's {leaked:?}");
    running.stop_with(Signal::SIGTERM);
}

#[test]
fn a_lesson_waiting_for_input_does_not_spin() {
    let mut running = lesson(EXITSTATUS).piped_stdin().spawn();
    running.next_line().expect("Hello from child");
    running.next_line().expect("Parent got");
    // Sampled 50 times: a process that waits in poll sleeps (state S); one that polls
    // in a loop is running or runnable (R), however loaded the machine is.
    let mut running_samples = 0;
    for _ in 0..50 {
        let state = lesson_test::process(running.pid()).expect("it runs").state;
        if state == 'R' {
            running_samples += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(running_samples <= 5, "R in {running_samples} of 50 samples");
    running.stop_with(Signal::SIGINT);
}

#[test]
fn popen_refuses_bad_options() {
    assert_usage_errors(
        || lesson(POPEN),
        "Usage: 5-popen",
        &[
            (&["--exit", "256"], "--exit \"256\": must be from 0 to 255"),
            (&["--forget-close", "x"], "must be r or w"),
            (&["--timeout", "0.09"], "must be from 0.1 to 60"),
            (&["--timeout", "61"], "must be from 0.1 to 60"),
            (&["--count", "1"], "unknown option --count"),
        ],
    );
    let run = lesson(POPEN).args(["--timeout", "60", "--exit", "0"]).run();
    ok(&run);
}

// ---------------------------------------------------------------- 6-file-exchange

/// The counts in a `[label] N reads: W whole, T torn...` line.
fn tally(line: &str) -> (u64, u64, u64) {
    let reads = number_after(line, "] ") as u64;
    let whole = number_after(line, "reads: ") as u64;
    let torn = number_after(line, "whole, ") as u64;
    (reads, whole, torn)
}

#[test]
fn file_exchange_with_rename_never_shows_a_torn_record() {
    let tmp = TempDir::new("simple-ipc-files");
    let run = with_env(&[&format!("TMPDIR={}", tmp.path().display())], FILES)
        .args(["--mode", "rename", "--records", "200", "--pause", "1"])
        .run();
    ok(&run);
    let line = run.texts()[0];
    assert!(line.starts_with("[rename] "), "{}", run.transcript());
    let (reads, whole, torn) = tally(line);
    assert_eq!(torn, 0, "{}", run.transcript());
    let missing = number_after(line, "torn, ") as u64;
    assert!(
        whole > 0 && whole + missing == reads,
        "{}",
        run.transcript()
    );
    assert_eq!(
        run.texts()[1],
        "[rename] no torn read; last record seen: 199",
        "{}",
        run.transcript()
    );
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
}

#[test]
fn file_exchange_in_place_shows_torn_records() {
    // A race, so not certain in one run: the writer holds a half-written record for 20 ms,
    // 20 times, while the reader looks every half millisecond. Missing all 20 windows
    // takes a reader starved for the whole run; three runs make that vanishingly rare.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let run = lesson(FILES)
            .args(["--mode", "in-place", "--records", "20", "--pause", "20"])
            .run();
        ok(&run);
        let line = run.texts()[0].to_owned();
        let second = run.texts()[1];
        assert!(line.starts_with("[in place] "), "{}", run.transcript());
        assert!(
            second.ends_with("; last record seen: 19"),
            "{}",
            run.transcript()
        );
        let (_, _, torn) = tally(&line);
        if torn > 0 {
            // At least the first half: the writer pauses half-way through a record.
            let got = number_after(second, "the largest torn read had ");
            assert!((32790..65581).contains(&got), "{second}");
            assert!(second.contains(" of 65581 bytes;"), "{second}");
            return;
        }
        seen.push(line);
    }
    panic!("no torn record in three runs: {seen:#?}");
}

fn digits_masked(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match (c.is_ascii_digit(), out.ends_with('#')) {
            (true, true) => {}
            (true, false) => out.push('#'),
            (false, _) => out.push(c),
        }
    }
    out
}

#[test]
fn file_exchange_book_run_shows_both_writers() {
    // The counts differ from run to run: compare the shape, every number masked. The shape
    // includes "the first torn read had...", a race (see the test above): three tries.
    let path = transcript("6-file-exchange");
    let mut last = String::new();
    for _ in 0..3 {
        let run = lesson(FILES)
            .shown_as(&shown("6-file-exchange"))
            .args(["--records", "10", "--pause", "20"])
            .merge_stderr()
            .run();
        ok(&run);
        let text =
            format!("$ {}\n{}", run.shown.as_deref().unwrap(), run.stdout_text());
        assert!(text.contains("[rename] "), "{text}");
        if !text.contains("[in place] the largest torn read had ") {
            last = text;
            continue;
        }
        if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
            std::fs::write(&path, &text).expect("write the transcript");
        }
        let recorded = std::fs::read_to_string(&path).expect("read the transcript");
        assert_eq!(
            digits_masked(&recorded),
            digits_masked(&text),
            "{}",
            path.display()
        );
        return;
    }
    panic!("no torn record in three runs:\n{last}");
}

#[test]
fn file_exchange_stops_cleanly_and_removes_its_files() {
    for signal in STOPS {
        let tmp = TempDir::new("simple-ipc-files-stop");
        let mut running =
            with_env(&[&format!("TMPDIR={}", tmp.path().display())], FILES)
                .args(["--records", "100000", "--pause", "10"])
                .spawn();
        running.wait_for_stderr("writer");
        std::thread::sleep(Duration::from_millis(100));
        let run = running.stop_with(signal);
        assert!(!run.stderr.contains("SIGKILL"), "{}", run.transcript());
        assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
    }
}

#[test]
fn a_second_ctrl_c_does_not_break_the_clean_up() {
    let tmp = TempDir::new("simple-ipc-files-twice");
    let mut running =
        with_env(&[&format!("TMPDIR={}", tmp.path().display())], FILES)
            .args(["--records", "100000", "--pause", "10"])
            .spawn();
    running.wait_for_stderr("started");
    running.signal(Signal::SIGINT);
    running.signal(Signal::SIGINT);
    let run = running.finish();
    assert_eq!(run.code(), Some(130), "{}", run.transcript());
    assert!(
        run.stderr.contains("stopped by SIGINT"),
        "{}",
        run.transcript()
    );
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
}

#[test]
fn file_exchange_writer_ends_when_its_parent_is_killed() {
    // SIGKILL leaves the parent no chance to clean up: the writer must end by itself
    // (its parent-death signal), or it would write 100000 records to nobody.
    let tmp = TempDir::new("simple-ipc-files-orphan");
    let mut running =
        with_env(&[&format!("TMPDIR={}", tmp.path().display())], FILES)
            .args(["--records", "100000", "--pause", "10"])
            .spawn();
    let notes = running.wait_for_stderr("started");
    let writer = number_after(&notes, "writer ");
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(lesson_test::Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
    assert!(lesson_test::process(writer).is_none_or(|p| p.state == 'Z'));
}

#[test]
fn file_exchange_refuses_bad_options_and_takes_the_edges() {
    assert_usage_errors(
        || lesson(FILES),
        "Usage: 6-file-exchange",
        &[
            (
                &["--records", "0"],
                "--records \"0\": must be from 1 to 100000",
            ),
            (&["--size", "0"], "--size \"0\": must be from 1 to 16777216"),
            (&["--size", "16777217"], "must be from 1 to 16777216"),
            (
                &["--pause", "1001"],
                "--pause \"1001\": must be from 0 to 1000",
            ),
            (&["--mode", "x"], "must be both, in-place or rename"),
        ],
    );
    let run = lesson(FILES)
        .args(["--records", "1", "--size", "1", "--pause", "0"])
        .run();
    ok(&run);
    assert_eq!(run.texts().len(), 4, "{}", run.transcript());
    for line in [run.texts()[1], run.texts()[3]] {
        assert!(
            line.ends_with("last record seen: 0"),
            "{}",
            run.transcript()
        );
    }
}
