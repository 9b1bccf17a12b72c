//! compare's own mechanics, tested with small Python fixtures this project wrote
//! (`tests/fixtures/`): they stand in for both the documents' programs (put in a
//! temporary originals folder under the documents' file names) and the lessons'
//! programs (shell wrappers in a temporary `--bin-dir`). One test runs the real
//! anon-pipe, which compare builds itself; the book's transcript test runs the real
//! originals, when `../shared/originals` exists.

use lesson_test::faults::as_nobody;
use lesson_test::{Lesson, TempDir, assert_usage_errors};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_compare");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A temporary originals folder and bin folder, filled from the fixtures.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = TempDir::new("compare-test");
        std::fs::create_dir(dir.path().join("originals")).unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        Setup { dir }
    }

    fn originals(&self) -> PathBuf {
        self.dir.path().join("originals")
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// The fixture, under the document's file name.
    fn original(self, file: &str, fixture_name: &str) -> Setup {
        std::fs::copy(fixture(fixture_name), self.originals().join(file)).unwrap();
        self
    }

    /// A lesson's program: a shell script running `body`.
    fn lesson(self, binary: &str, body: &str) -> Setup {
        use std::os::unix::fs::PermissionsExt;
        let path = self.bin().join(binary);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        self
    }

    /// A lesson's program that runs a fixture with python3.
    fn python_lesson(self, binary: &str, fixture_name: &str) -> Setup {
        let body = format!(
            "exec '{}' '{}' \"$@\"",
            python().display(),
            fixture(fixture_name).display()
        );
        self.lesson(binary, &body)
    }

    /// compare LESSON --originals ... --bin-dir ..., plus `args`.
    fn compare(&self, lesson: &str, args: &[&str]) -> Lesson {
        Lesson::new(BIN)
            .arg(lesson)
            .arg("--originals")
            .arg(self.originals())
            .arg("--bin-dir")
            .arg(self.bin())
            .args(args)
    }

    /// The same, run by `sh -c` as `<before> exec compare ... <after>`: `before`
    /// sets an environment or a limit, `after` redirects.
    fn compare_in_shell(&self, before: &str, after: &str, lesson: &str) -> Lesson {
        let script = format!("{before} exec \"$0\" \"$@\" {after}");
        Lesson::new("/bin/sh")
            .args(["-c", &script, BIN, lesson])
            .arg("--originals")
            .arg(self.originals())
            .arg("--bin-dir")
            .arg(self.bin())
    }
}

/// The Python interpreter itself, by full path: a fake Rust child must not run
/// `python3` from PATH, where compare puts its stand-in `python3` that runs that
/// very child (it would call itself for ever).
fn python() -> PathBuf {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; sys.stdout.write(sys.executable)"])
        .output()
        .expect("python3");
    PathBuf::from(String::from_utf8(output.stdout).unwrap())
}

/// Processes whose command line mentions `marker` (a test's own temporary folder).
fn processes_mentioning(marker: &Path) -> Vec<String> {
    let marker = marker.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&marker) {
                found.push(format!("{name}: {cmdline}"));
            }
        }
    }
    found
}

/// The number of seconds after `marker` in `text`: `Ctrl-C at 2.03 s` -> 2.03.
fn seconds_after(text: &str, marker: &str) -> f64 {
    let rest = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{marker} in {text}"))
        .1;
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("{marker} in {text}"))
}

const STDOUT: bool = true;
const STDERR: bool = false;

/// Fails, with everything the run printed, unless its stdout (or stderr) has
/// `text`.
fn says(run: &lesson_test::Finished, stdout: bool, text: &str) {
    let printed = if stdout {
        run.stdout_text()
    } else {
        run.stderr.clone()
    };
    assert!(
        printed.contains(text),
        "{text:?} missing:\n{}",
        run.transcript()
    );
}

/// compare's scratch folder for the run with this pid.
fn scratch_of(pid: i32) -> PathBuf {
    std::env::temp_dir().join(format!("compare-{pid}"))
}

fn spam_setup(original: &str) -> Setup {
    Setup::new()
        .original("pipe_1.py", original)
        .python_lesson("anon-pipe", "spam_match.py")
}

#[test]
fn list_names_the_original_of_every_lesson() {
    let run = Lesson::new(BIN).arg("--list").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert_eq!(
        run.texts(),
        [
            "anon-pipe     pipe_1.py",
            "fdopen-lines  pipe_2.py",
            "pipe-thread   pipe_thread.py",
            "bidir-spawn   pipes.py + pipes_test_child.py",
            "named-fifo    write_to_named_pipe.py + read_from_named_pipe.py",
        ]
    );
}

#[test]
fn help_lists_every_option_in_one_column() {
    let run = Lesson::new(BIN).arg("--help").run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let help = run.stdout_text();
    assert!(help.starts_with("Usage: compare LESSON"), "{help}");
    let options: Vec<&str> =
        help.lines().filter(|l| l.starts_with("  -")).collect();
    for option in [
        "--originals DIR",
        "--all",
        "--list",
        "--seconds S",
        "--tolerance MS",
        "--svg FILE",
        "--stderr",
        "--keep-env",
        "--bin-dir DIR",
        "-h, --help",
    ] {
        assert!(
            options
                .iter()
                .any(|line| line.starts_with(&format!("  {option} "))),
            "{option} missing from\n{help}"
        );
    }
    // Every description starts in the column of the first one.
    let column = options[0].find("the folder").unwrap();
    for line in &options {
        let gap = line[2..].find("  ").unwrap() + 2;
        let start = gap + line[gap..].len() - line[gap..].trim_start().len();
        assert_eq!(start, column, "{line}");
    }
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let compare = || Lesson::new(BIN);
    assert_usage_errors(
        compare,
        "Usage: compare",
        &[
            (&[], "give a LESSON or --all"),
            (
                &["signals", "--originals", "."],
                "no original is known for \"signals\"",
            ),
            (&["anon-pipe", "--all", "--originals", "."], "not both"),
            (
                &["--all", "--svg", "x.svg", "--originals", "."],
                "--svg draws one lesson",
            ),
            (
                &["anon-pipe", "--seconds", "0.05"],
                "--seconds \"0.05\": must be from 0.1 to 3600",
            ),
            (
                &["anon-pipe", "--seconds", "3601"],
                "must be from 0.1 to 3600",
            ),
            (
                &["anon-pipe", "--tolerance", "10001"],
                "must be from 0 to 10000",
            ),
            (&["anon-pipe", "--tolerance", "-1"], "--tolerance"),
            (
                &["anon-pipe", "--frobnicate"],
                "unknown option --frobnicate",
            ),
            (
                &["anon-pipe", "pipe-thread"],
                "unexpected argument \"pipe-thread\"",
            ),
            (&["anon-pipe", "--originals"], "--originals needs a value"),
        ],
    );
}

#[test]
fn edge_values_of_seconds_and_tolerance_are_accepted() {
    let setup = spam_setup("spam_match.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "0.1", "--tolerance", "10000"])
        .run();
    // A tenth of a second after each side's first line (or after its start, if
    // Python has printed nothing by then): a run, not a usage error.
    assert!(matches!(run.code(), Some(0 | 1)), "{}", run.transcript());
    says(&run, STDOUT, "original ended: Ctrl-C at 0.");
    let run = setup
        .compare("anon-pipe", &["--seconds", "3", "--tolerance", "0"])
        .run();
    says(&run, STDOUT, "tolerance 0 ms");
}

#[test]
fn a_missing_folder_original_program_or_python_is_a_clear_error() {
    let setup = spam_setup("spam_match.py");
    let missing = setup.dir.path().join("nowhere");
    let run = Lesson::new(BIN)
        .args(["anon-pipe", "--originals"])
        .arg(&missing)
        .run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    says(&run, STDERR, "no such folder");

    let run = Lesson::new(BIN).arg("anon-pipe").run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    says(&run, STDERR, "--originals DIR is needed");

    let run = setup.compare("pipe-thread", &[]).run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("pipe_thread.py: the original of pipe-thread is missing"),
        "{}",
        run.transcript()
    );

    std::fs::copy(
        fixture("spam_match.py"),
        setup.originals().join("pipe_2.py"),
    )
    .unwrap();
    let run = setup.compare("fdopen-lines", &[]).run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    assert!(
        run.stderr
            .contains("fdopen-lines: the lesson's program is missing"),
        "{}",
        run.transcript()
    );

    // A python3 that cannot be run (no x bit), first on PATH, is passed over.
    let fake = setup.dir.path().join("fake");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(fake.join("python3"), "#!/bin/sh\nexit 1\n").unwrap();
    let run = setup
        .compare_in_shell(
            &format!("PATH='{}':\"$PATH\"", fake.display()),
            "",
            "anon-pipe",
        )
        .args(["--seconds", "2", "--tolerance", "1000"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());

    // A python3 that runs but fails to say where its interpreter is.
    std::fs::write(
        fake.join("python3"),
        "#!/bin/sh\nprintf /x/python3\nexit 1\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(fake.join("python3"), mode).unwrap();
    }
    let run = setup
        .compare_in_shell(
            &format!("PATH='{}':\"$PATH\"", fake.display()),
            "",
            "anon-pipe",
        )
        .run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    says(&run, STDERR, "does not say where its interpreter is");

    // No python3 on PATH (sh is found by its full path, compare by "$0").
    let run = setup
        .compare_in_shell("PATH=/nonexistent", "", "anon-pipe")
        .run();
    assert_eq!(run.code(), Some(2), "{}", run.transcript());
    says(&run, STDERR, "python3 not found on PATH");
}

#[test]
fn programs_with_the_same_lines_and_cadence_on_terminals_compare_equal() {
    let setup = spam_setup("spam_match.py");
    // A tolerance for a busy machine: two Pythons started at once, on shared cores.
    let run = setup
        .compare("anon-pipe", &["--seconds", "3", "--tolerance", "250"])
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    // The fixture prints "stdout is not a terminal" when it is not on one.
    assert!(!out.contains("not a terminal"), "{}", run.transcript());
    assert!(out.contains("lines equal: 2 of 2"), "{}", run.transcript());
    assert!(out.contains("result: equal"), "{}", run.transcript());
    let rows: Vec<&str> = out.lines().filter(|l| l.contains("Spam")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    for row in rows {
        assert!(row.starts_with("  "), "no mark expected: {row}");
        assert!(
            row.contains("Parent <pid> got [b'Spam "),
            "pid masked: {row}"
        );
        assert!(row.contains("at <time>  | "), "time masked: {row}");
        assert!(row.ends_with("  ="), "the lesson's line is the same: {row}");
    }
    // One pairing: no table.
    assert!(!out.contains("run (beside the original)"), "{out}");
    // Ctrl-C ended both: a Python program dies of SIGINT (KeyboardInterrupt).
    // The window counts from each program's first line (at 0.01 s after its start).
    let ended = |side: &str| {
        let line = out.lines().find(|line| line.starts_with(side)).unwrap();
        seconds_after(line, "Ctrl-C at ")
    };
    assert!((3.0..4.5).contains(&ended("original ended:")), "{out}");
    assert!((3.0..4.5).contains(&ended("lesson ended:")), "{out}");
    assert!(out.contains("killed by SIGINT"), "{}", run.transcript());
    assert!(!scratch_of(run.pid).exists());
}

#[test]
fn output_still_buffered_when_a_program_ends_is_read_to_the_end() {
    let setup = Setup::new()
        .original("pipe_1.py", "burst.py")
        .python_lesson("anon-pipe", "burst.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "5", "--tolerance", "10000"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    says(&run, STDOUT, "lines equal: 300 of 300");
    says(
        &run,
        STDOUT,
        "stderr (not compared): original 300 lines, lesson 300 lines",
    );
    says(&run, STDOUT, "exited with status 0 by itself");
}

#[test]
fn a_line_that_differs_is_marked_and_exits_1() {
    let setup = spam_setup("spam_differs.py");
    let run = setup.compare("anon-pipe", &["--seconds", "3"]).run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let marked: Vec<&str> = out.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{out}");
    assert!(
        marked[0].contains("Spam 7") && marked[0].contains("Spam 1"),
        "{out}"
    );
    assert!(out.contains("lines equal: 1 of 2"), "{out}");
    assert!(out.contains("result: DIFFERENT"), "{out}");
}

#[test]
fn a_late_line_is_a_cadence_difference() {
    let setup = spam_setup("spam_late.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "3", "--tolerance", "250"])
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let late: Vec<&str> = out.lines().filter(|l| l.starts_with('~')).collect();
    assert_eq!(late.len(), 1, "{out}");
    assert!(late[0].contains("Spam 1"), "{out}");
    assert!(out.contains("lines equal: 2 of 2"), "{out}");
    let ms: u64 = lesson_test::number_after(&out, "largest difference ")
        .try_into()
        .unwrap();
    assert!((450..=850).contains(&ms), "{ms} ms\n{out}");
    assert!(out.contains("(line 2), tolerance 250 ms"), "{out}");
    assert!(out.contains("result: DIFFERENT"), "{out}");

    // A tolerance wide enough makes the same runs equal.
    let run = setup
        .compare("anon-pipe", &["--seconds", "3", "--tolerance", "2000"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
}

#[test]
fn a_program_deaf_to_ctrl_c_and_sigterm_is_killed_and_reaped() {
    let setup = spam_setup("spam_never_ends.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "2"])
        .deadline(Duration::from_secs(15))
        .run();
    let out = run.stdout_text();
    // Spam 0 on both sides, the lesson's Spam 1 at 1.02 s has no counterpart.
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let ended = out
        .lines()
        .find(|line| line.starts_with("original ended: "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ended.ends_with(": killed by SIGKILL"), "{ended}");
    // Ctrl-C two seconds after its first line, SIGTERM a second later, SIGKILL
    // another.
    let ctrl_c = seconds_after(ended, "Ctrl-C at ");
    let term = seconds_after(ended, "SIGTERM at ");
    let kill = seconds_after(ended, "SIGKILL at ");
    assert!((2.0..3.5).contains(&ctrl_c), "{ended}");
    assert!((0.95..1.5).contains(&(term - ctrl_c)), "{ended}");
    assert!((0.95..1.5).contains(&(kill - term)), "{ended}");
    assert!(out.contains("lesson ended:   Ctrl-C at "), "{out}");
    assert!(
        out.contains(": exited with status 130")
            || out.contains(": killed by SIGINT"),
        "{out}"
    );
    // The fixture and the child it forked are both gone, and reaped.
    let left = processes_mentioning(setup.dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn pythonunbuffered_is_removed_unless_keep_env() {
    let setup = spam_setup("spam_match.py");
    let with_env = |extra: &[&str]| {
        setup
            .compare_in_shell("PYTHONUNBUFFERED=1", "", "anon-pipe")
            .args(["--seconds", "3", "--stderr", "--tolerance", "1000"])
            .args(extra)
            .run()
    };
    let run = with_env(&[]);
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        out.starts_with("PYTHONUNBUFFERED removed from the programs' environment"),
        "{out}"
    );
    assert!(out.contains("PYTHONUNBUFFERED=unset"), "{out}");
    assert!(!out.contains("PYTHONUNBUFFERED=1"), "{out}");

    let run = with_env(&["--keep-env"]);
    let out = run.stdout_text();
    assert!(
        out.starts_with("PYTHONUNBUFFERED kept (--keep-env)"),
        "{out}"
    );
    assert!(out.contains("PYTHONUNBUFFERED=1"), "{out}");
    assert!(!out.contains("PYTHONUNBUFFERED=unset"), "{out}");
}

#[test]
fn named_fifo_runs_every_pairing_in_both_orders() {
    let setup = Setup::new()
        .original("write_to_named_pipe.py", "fifo_writer.py")
        .original("read_from_named_pipe.py", "fifo_reader.py")
        .python_lesson("fifo-writer", "fifo_writer.py")
        .python_lesson("fifo-reader", "fifo_reader.py");
    let svg = setup.dir.path().join("fifo.svg");
    let run = setup
        .compare("named-fifo", &["--tolerance", "1000", "--svg"])
        .arg(&svg)
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    for pairing in [
        "rs writer, then rs reader",
        "py writer, then rs reader",
        "rs writer, then py reader",
        "rs reader, then rs writer",
        "rs reader, then py writer",
        "py reader, then rs writer",
    ] {
        let row = out
            .lines()
            .find(|line| line.starts_with("named-fifo ") && line.contains(pairing))
            .unwrap_or_else(|| panic!("{pairing} missing:\n{out}"));
        assert!(row.contains("1 of 1") && row.ends_with("equal"), "{row}");
    }
    assert!(
        out.contains("reader: I pid [<pid>] received a message => Hello <pid>"),
        "{out}"
    );
    // The picture: a title and eight rows, each original's run drawn once.
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(picture.matches("<text x=\"10\"").count(), 9, "{picture}");
    assert_eq!(picture.matches(">py writer, then py reader<").count(), 1);
    // The programs' FIFOs were made in compare's scratch folder, which is gone.
    assert!(!scratch_of(run.pid).exists());
}

#[test]
fn bidir_spawn_pairs_each_parent_with_the_other_child() {
    // The fake "Rust" child says `rust-spam`, so every pairing that runs it differs
    // from the original in that line, and the one that runs the Python child does
    // not.
    let setup = Setup::new()
        .original("pipes.py", "spawn_parent.py")
        .original("pipes_test_child.py", "spawn_child.py")
        .lesson(
            "bidir-child",
            &format!(
                "exec '{}' '{}' \"rust-$1\"",
                python().display(),
                fixture("spawn_child.py").display()
            ),
        )
        .lesson(
            "bidir-spawn",
            &format!(
                "[ $# -eq 0 ] && set -- -- \"$(dirname \"$0\")/bidir-child\" spam\n\
                 exec '{}' '{}' \"$@\"",
                python().display(),
                fixture("spawn_parent.py").display()
            ),
        );
    let run = setup
        .compare("bidir-spawn", &["--seconds", "5", "--tolerance", "1000"])
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let row = |label: &str| {
        out.lines()
            .find(|line| line.starts_with("bidir-spawn ") && line.contains(label))
            .unwrap_or_else(|| panic!("{label} missing:\n{out}"))
            .to_owned()
    };
    assert!(
        row("bidir-spawn + its Rust child").contains("2 of 3"),
        "{out}"
    );
    assert!(
        row("bidir-spawn + python3 pipes_test_child.py").contains("3 of 3"),
        "{out}"
    );
    assert!(
        row("python3 pipes.py + the Rust child").contains("2 of 3"),
        "{out}"
    );
    let marked: Vec<&str> = out.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 2, "{out}");
    for line in marked {
        assert!(
            line.contains("got arg: \"spam\"")
                && line.contains("got arg: \"rust-spam\""),
            "{line}"
        );
    }
    // Each ended by itself, well before the window.
    assert!(!out.contains("Ctrl-C at"), "{out}");
}

#[test]
fn ctrl_c_ends_compare_and_everything_it_started() {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let setup = spam_setup("spam_never_ends.py");
        let mut running = setup.compare("anon-pipe", &["--seconds", "30"]).spawn();
        running.wait_for_stderr("side by side");
        std::thread::sleep(Duration::from_millis(500)); // the programs are up
        assert!(!processes_mentioning(setup.dir.path()).is_empty());
        let pid = running.pid();
        if signal == Signal::SIGINT {
            // A second Ctrl-C right after the first changes nothing.
            running.signal(signal);
        }
        let run = running.stop_with(signal);
        assert!(
            run.stdout_text().lines().all(|l| !l.contains("Spam")),
            "{}",
            run.transcript()
        );
        let left = processes_mentioning(setup.dir.path());
        assert!(left.is_empty(), "{signal}: left behind: {left:?}");
        assert!(!scratch_of(pid).exists(), "{signal}: scratch folder left");
    }
}

#[test]
fn too_few_descriptors_is_a_clear_error_and_leaves_nothing() {
    let setup = spam_setup("spam_match.py");
    let run = setup
        .compare_in_shell("ulimit -n 9;", "", "anon-pipe")
        .args(["--seconds", "1"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    says(&run, STDERR, "Too many open files");
    assert!(!scratch_of(run.pid).exists());
    let left = processes_mentioning(setup.dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// How many processes the user `uid` has: what RLIMIT_NPROC counts.
fn processes_of(uid: u32) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let status = std::fs::read_to_string(entry.path().join("status"));
        let owner = status.ok().and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("Uid:"))?;
            line.split_whitespace().nth(1)?.parse::<u32>().ok()
        });
        count += usize::from(owner == Some(uid));
    }
    count
}

#[test]
fn a_process_limit_is_a_clear_error_and_leaves_nothing() {
    // RLIMIT_NPROC does not bind root: compare runs as nobody (65534), under
    // prlimit, with the system's python3 (root's pyenv is out of nobody's reach).
    const PATH: [&str; 2] = ["env", "PATH=/usr/bin:/bin"];
    let Some(nobody) = as_nobody(BIN) else { return };
    let probe = nobody.args(PATH).args([BIN, "--list"]).run();
    if probe.code() != Some(0) || !Path::new("/usr/bin/python3").exists() {
        println!(
            "skipped: compare cannot run as nobody here\n{}",
            probe.transcript()
        );
        return;
    }
    let setup = Setup::new().original("pipe_1.py", "spam_match.py").lesson(
        "anon-pipe",
        &format!(
            "exec /usr/bin/python3 '{}'",
            fixture("spam_match.py").display()
        ),
    );
    // Room for compare and python3's check of itself, and then: no thread for the
    // second run; or threads, but no process for the second program.
    for (room, error) in [(2, "thread for anon-pipe"), (4, "start ")] {
        let limit = format!("--nproc={}", processes_of(65534) + room);
        let nobody = as_nobody(BIN).expect("checked above");
        let run = nobody
            .args(PATH)
            .args(["prlimit", &limit, "--", BIN, "anon-pipe", "--seconds", "1"])
            .arg("--originals")
            .arg(setup.originals())
            .arg("--bin-dir")
            .arg(setup.bin())
            .run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        says(&run, STDERR, error);
        says(&run, STDERR, "Resource temporarily unavailable");
        assert!(!scratch_of(run.pid).exists());
        let left = processes_mentioning(setup.dir.path());
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn programs_end_by_hangup_when_compare_is_killed_outright() {
    // SIGKILL leaves compare no chance to clean up: its terminals close with it,
    // the kernel hangs them up, and each program, a session leader, gets SIGHUP.
    let setup = spam_setup("spam_match.py");
    let mut running = setup.compare("anon-pipe", &["--seconds", "30"]).spawn();
    running.wait_for_stderr("side by side");
    std::thread::sleep(Duration::from_millis(500)); // the programs are up
    assert!(!processes_mentioning(setup.dir.path()).is_empty());
    let pid = running.pid();
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(lesson_test::Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
    let gone = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        processes_mentioning(setup.dir.path()).is_empty()
    });
    assert!(
        gone,
        "left behind: {:?}",
        processes_mentioning(setup.dir.path())
    );
    // The one thing SIGKILL does leave: compare's scratch folder.
    let _ = std::fs::remove_dir_all(scratch_of(pid));
}

#[test]
fn a_full_or_unwritable_output_is_reported_not_a_panic() {
    let run = Lesson::new("/bin/sh")
        .args(["-c", "exec \"$0\" --list >/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    says(&run, STDERR, "compare: write stdout");

    let run = Lesson::new("/bin/sh")
        .args(["-c", "exec \"$0\" --help >/dev/full", BIN])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());

    // stdout closed altogether: Rust's runtime puts /dev/null there before main.
    let run = Lesson::new("/bin/sh")
        .args(["-c", "exec \"$0\" --list >&-", BIN])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());

    let setup = spam_setup("spam_match.py");
    let run = setup
        .compare_in_shell("", ">/dev/full", "anon-pipe")
        .args(["--seconds", "3", "--tolerance", "1000"])
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    says(&run, STDERR, "write stdout");
    assert!(!scratch_of(run.pid).exists());

    // stderr into /dev/full: the notes are lost, the result is not.
    let run = setup
        .compare_in_shell("", "2>/dev/full", "anon-pipe")
        .args(["--seconds", "3", "--tolerance", "1000"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    says(&run, STDOUT, "result: equal");

    let run = setup
        .compare(
            "anon-pipe",
            &["--seconds", "0.3", "--svg", "/nonexistent/x.svg"],
        )
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    says(&run, STDERR, "write /nonexistent/x.svg");
}

#[test]
fn svg_draws_a_row_per_run_and_a_tick_per_line() {
    let setup = spam_setup("spam_differs.py");
    let svg = setup.dir.path().join("t.svg");
    let run = setup
        .compare("anon-pipe", &["--seconds", "3", "--svg"])
        .arg(&svg)
        .run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg "), "{picture}");
    assert!(picture.trim_end().ends_with("</svg>"), "{picture}");
    assert!(picture.contains(">python3 pipe_1.py</text>"), "{picture}");
    assert!(picture.contains(">anon-pipe</text>"), "{picture}");
    let ticks = picture.matches("<title>").count();
    assert_eq!(ticks, 4, "two lines on each row\n{picture}");
    // The lesson's second line differs from the original's: red.
    assert_eq!(picture.matches("fill=\"#d00\"").count(), 1, "{picture}");
    assert!(
        picture.contains("Parent &lt;pid&gt; got [b'Spam 7'] at &lt;time&gt;"),
        "{picture}"
    );
}

#[test]
fn the_real_lesson_is_built_and_matches_a_fixture_with_its_cadence() {
    // No --bin-dir: compare builds anon-pipe with cargo and runs it.
    let setup = Setup::new().original("pipe_1.py", "spam_match.py");
    let run = Lesson::new(BIN)
        .args([
            "anon-pipe",
            "--seconds",
            "3",
            "--tolerance",
            "500",
            "--originals",
        ])
        .arg(setup.originals())
        .deadline(Duration::from_secs(300))
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let out = run.stdout_text();
    assert!(out.contains("lines equal: 2 of 2"), "{out}");
    let ended = out
        .lines()
        .find(|l| l.starts_with("lesson ended:"))
        .unwrap();
    assert!(
        (3.0..4.5).contains(&seconds_after(ended, "Ctrl-C at ")),
        "{out}"
    );
}

/// The book's side-by-side transcript and timeline picture, from a real run of the
/// document's pipe_1.py beside anon-pipe. Needs the originals beside the project; a
/// fresh clone has none, and the test says it skipped.
#[test]
fn the_books_transcript_and_picture_come_from_a_real_run() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // Under cargo-mutants it would only re-check the book (13 s a mutant): the
    // tool's behaviour is the other tests' job.
    if std::env::var_os("INSIDE_MUTANTS").is_some() {
        println!("skipped under cargo-mutants");
        return;
    }
    if !workspace.join("../shared/originals/pipe_1.py").is_file() {
        println!("skipped: no ../shared/originals/pipe_1.py beside the project");
        return;
    }
    let update = std::env::var_os("UPDATE_TRANSCRIPTS").is_some();
    let scratch = TempDir::new("compare-book");
    let book_svg = "docs/src/compare-anon-pipe.svg";
    let svg = if update {
        workspace.join(book_svg)
    } else {
        scratch.path().join("compare-anon-pipe.svg")
    };
    // As on the project's machines, where PYTHONUNBUFFERED=1 is exported.
    let run = Lesson::new("/bin/sh")
        .args([
            "-c",
            "PYTHONUNBUFFERED=1 exec \"$0\" \"$@\"",
            BIN,
            "anon-pipe",
        ])
        .args(["--originals", "../shared/originals", "--svg"])
        .arg(&svg)
        .current_dir(&workspace)
        .merge_stderr()
        .deadline(Duration::from_secs(120))
        .run();
    assert!(matches!(run.code(), Some(0 | 1)), "{}", run.transcript());
    let transcript = format!(
        "$ cargo run -q -p compare -- anon-pipe \
         --originals ../shared/originals \\\n    \
         --svg {book_svg}\n{}",
        run.stdout_text()
    );
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(
        picture.matches("<title>").count(),
        14,
        "7 lines a row\n{picture}"
    );
    let path = workspace.join("docs/src/transcripts/compare-anon-pipe.txt");
    if update {
        std::fs::write(&path, &transcript).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err} (UPDATE_TRANSCRIPTS=1 cargo test -p compare)",
            path.display()
        )
    });
    assert_eq!(
        shape(&recorded),
        shape(&transcript),
        "the book's {} no longer has the shape of compare's output; if that is \
         intended, run UPDATE_TRANSCRIPTS=1 cargo test -p compare\n{transcript}",
        path.display()
    );
}

/// A transcript without what changes from run to run: every number is `#`, the
/// marks at the start of a row and the result word (timing on a busy machine) are
/// blanked, runs of spaces are one.
fn shape(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.chars().next() {
            Some('*' | '~') => &line[1..],
            _ => line,
        };
        let line = if line.starts_with("result: ") {
            "result:"
        } else {
            line
        };
        let mut last = ' ';
        for c in line.chars() {
            let c = if c.is_ascii_digit() || (c == '.' && last == '#') {
                '#'
            } else {
                c
            };
            if !((c == '#' && last == '#') || (c == ' ' && last == ' ')) {
                out.push(c);
            }
            last = c;
        }
        out.push('\n');
    }
    out
}

#[test]
fn all_runs_every_lesson_at_once_and_details_only_what_differs() {
    let setup = Setup::new()
        .original("pipe_1.py", "spam_match.py")
        .original("pipe_2.py", "spam_match.py")
        .original("pipe_thread.py", "spam_match.py")
        .original("pipes.py", "spawn_parent.py")
        .original("pipes_test_child.py", "spawn_child.py")
        .original("write_to_named_pipe.py", "fifo_writer.py")
        .original("read_from_named_pipe.py", "fifo_reader.py")
        .python_lesson("anon-pipe", "spam_match.py")
        .python_lesson("fdopen-lines", "spam_differs.py")
        .python_lesson("pipe-thread", "spam_match.py")
        .python_lesson("bidir-child", "spawn_child.py")
        .lesson(
            "bidir-spawn",
            &format!(
                "[ $# -eq 0 ] && set -- -- \"$(dirname \"$0\")/bidir-child\" spam\n\
                 exec '{}' '{}' \"$@\"",
                python().display(),
                fixture("spawn_parent.py").display()
            ),
        )
        .python_lesson("fifo-writer", "fifo_writer.py")
        .python_lesson("fifo-reader", "fifo_reader.py");
    let run = Lesson::new(BIN)
        .args([
            "--all",
            "--seconds",
            "6",
            "--tolerance",
            "1000",
            "--stderr",
            "--originals",
        ])
        .arg(setup.originals())
        .arg("--bin-dir")
        .arg(setup.bin())
        .deadline(Duration::from_secs(30))
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    let table: Vec<&str> = out
        .lines()
        .skip_while(|line| !line.contains("run (beside the original)"))
        .collect();
    assert_eq!(table.len(), 13, "a heading and 12 pairings:\n{out}");
    let different: Vec<&str> = table
        .iter()
        .copied()
        .filter(|l| l.ends_with("DIFFERENT"))
        .collect();
    assert_eq!(different.len(), 1, "{out}");
    assert!(different[0].starts_with("fdopen-lines "), "{out}");
    // Only the pairing that differs is shown in columns.
    assert_eq!(out.matches(" beside the original\n").count(), 1, "{out}");
    says(
        &run,
        STDOUT,
        "fdopen-lines: fdopen-lines beside the original",
    );
}

#[test]
fn a_stop_signal_while_cargo_builds_the_lessons_ends_cargo_and_compare() {
    // Without --bin-dir compare builds the lessons first; a build can take a while,
    // or wait for cargo's lock. A stand-in cargo that never ends stands for both.
    let dir = TempDir::new("compare-slow-cargo");
    let cargo = dir.path().join("cargo");
    std::fs::write(&cargo, "#!/bin/sh\nexec sleep 30\n").expect("write stand-in");
    std::fs::set_permissions(
        &cargo,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    // compare checks that the original is there before it builds anything.
    std::fs::write(dir.path().join("pipe_1.py"), "print('spam')\n")
        .expect("original");
    let running = Lesson::new(BIN)
        .args(["anon-pipe", "--originals"])
        .arg(dir.path())
        .env("CARGO", &cargo)
        .deadline(Duration::from_secs(10))
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("before the runs started"),
        "{}",
        run.transcript()
    );
}

#[test]
fn the_window_counts_from_the_first_compared_line_and_a_last_line_needs_no_newline()
{
    // stderr at once, stdout's first line a second later, its second 1.5 s after
    // that: a window of 2 s from stdout's first line keeps both lines and types
    // Ctrl-C at about 3 s (from stderr's line it would cut the second at 2 s; from
    // the latest line it would wait until 4.5 s).
    let setup = Setup::new()
        .original("pipe_1.py", "slow_start.py")
        .python_lesson("anon-pipe", "slow_start.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "2", "--tolerance", "1000"])
        .deadline(Duration::from_secs(12))
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(out.contains("lines equal: 3 of 3"), "{}", run.transcript());
    assert!(out.contains("line 2 of pid <pid>"), "{}", run.transcript());
    // The answer to the Ctrl-C has no newline: it is a line all the same, and no
    // empty line is made up at the end of either stream.
    assert!(
        out.contains("SIGINT typed on the terminal, no newline"),
        "the Ctrl-C is typed into the terminal, not sent with kill:\n{}",
        run.transcript()
    );
    assert!(
        out.contains("stderr (not compared): original 1 lines, lesson 1 lines"),
        "{}",
        run.transcript()
    );
    for side in ["original ended:", "lesson ended:"] {
        let ended = out
            .lines()
            .find(|line| line.starts_with(side))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(ended.ends_with(": exited with status 0"), "{ended}");
        let ctrl_c = seconds_after(ended, "Ctrl-C at ");
        assert!((2.9..4.3).contains(&ctrl_c), "{ended}");
    }
}

#[test]
fn a_group_outliving_its_leader_is_read_to_the_end_stopped_by_signal_and_reaped() {
    // The leader ends at once; its child prints half a second later and waits for
    // SIGINT. Its session has no terminal any more, so compare signals the group.
    let setup = Setup::new()
        .original("pipe_1.py", "orphan.py")
        .python_lesson("anon-pipe", "orphan.py");
    let run = setup
        .compare("anon-pipe", &["--seconds", "1.5", "--tolerance", "1000"])
        .deadline(Duration::from_secs(12))
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(out.contains("lines equal: 3 of 3"), "{}", run.transcript());
    assert!(out.contains("Child <pid> goes on"), "{}", run.transcript());
    assert!(
        out.contains("Child got SIGINT sent with kill"),
        "{}",
        run.transcript()
    );
    assert!(!out.contains("SIGTERM at"), "{}", run.transcript());
    for side in ["original ended:", "lesson ended:"] {
        let ended = out
            .lines()
            .find(|line| line.starts_with(side))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(ended.ends_with(": exited with status 0"), "{ended}");
    }
    let left = processes_mentioning(setup.dir.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn each_program_of_a_pair_is_timed_to_its_own_end() {
    // The writer stays a second after its reader has read and ended.
    let setup = Setup::new()
        .original("write_to_named_pipe.py", "fifo_writer_lingers.py")
        .original("read_from_named_pipe.py", "fifo_reader.py")
        .python_lesson("fifo-writer", "fifo_writer_lingers.py")
        .python_lesson("fifo-reader", "fifo_reader.py");
    let run = setup
        .compare("named-fifo", &["--tolerance", "1000"])
        .deadline(Duration::from_secs(15))
        .run();
    let out = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let ended: Vec<&str> = out
        .lines()
        .filter(|line| {
            line.starts_with("original ended: ")
                || line.starts_with("lesson ended: ")
        })
        .collect();
    assert_eq!(ended.len(), 12, "two for each of the six pairings:\n{out}");
    for line in ended {
        let writer =
            seconds_after(line, "writer exited with status 0 by itself at ");
        let reader =
            seconds_after(line, "reader exited with status 0 by itself at ");
        assert!(writer - reader > 0.7, "{line}");
    }
}

#[test]
fn lessons_are_built_into_the_target_folder_and_profile_compare_runs_from() {
    // compare copied into `<dir>/target/<profile>/`, with a stand-in cargo that
    // writes down its arguments: the dev profile's folder is `debug` (no
    // --profile), any other is the profile's own name.
    let setup = spam_setup("spam_match.py");
    let target = setup.dir.path().join("target");
    let cargo = setup.dir.path().join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" >\"$CARGO_ARGS\"\nexit \"$CARGO_STATUS\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &cargo,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    for (profile, status) in [("debug", "0"), ("fast", "0"), ("fast", "1")] {
        let folder = target.join(profile);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(BIN, folder.join("compare")).unwrap();
        std::fs::copy(setup.bin().join("anon-pipe"), folder.join("anon-pipe"))
            .unwrap();
        let args_file = setup.dir.path().join(format!("args-{profile}-{status}"));
        let run = Lesson::new(folder.join("compare"))
            .args(["anon-pipe", "--seconds", "1.5", "--tolerance", "1000"])
            .arg("--originals")
            .arg(setup.originals())
            .env("CARGO", &cargo)
            .env("CARGO_ARGS", &args_file)
            .env("CARGO_STATUS", status)
            .deadline(Duration::from_secs(12))
            .run();
        let args = std::fs::read_to_string(&args_file)
            .unwrap_or_else(|err| panic!("{err}: {}", run.transcript()));
        let mut expected = vec![
            "build".to_owned(),
            "--quiet".to_owned(),
            "--bins".to_owned(),
            "--manifest-path".to_owned(),
            manifest.to_string_lossy().into_owned(),
            "--target-dir".to_owned(),
            target.to_string_lossy().into_owned(),
        ];
        if profile != "debug" {
            expected.extend(["--profile".to_owned(), profile.to_owned()]);
        }
        expected.extend(["-p".to_owned(), "anon-pipe".to_owned()]);
        assert_eq!(args.lines().collect::<Vec<_>>(), expected, "{profile}");
        if status == "0" {
            // The lesson ran from the profile's folder.
            assert_eq!(run.code(), Some(0), "{}", run.transcript());
            says(&run, STDOUT, "lines equal: 2 of 2");
        } else {
            assert_eq!(run.code(), Some(2), "{}", run.transcript());
            says(&run, STDERR, "cargo build of the lessons failed");
        }
    }
}
