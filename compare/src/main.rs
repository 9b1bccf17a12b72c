//! compare: run a lesson and the document's Python program side by side, each on
//! its own pseudo-terminal, and say where they differ.
//!
//! The documents' programs are not part of this project; the folder given with
//! `--originals` holds them (on the project's machines, `../shared/originals`). For
//! each lesson compare starts the original (`python3 pipe_1.py`) and the lesson
//! (`anon-pipe`) at the same moment, each as the leader of a new session on a
//! pseudo-terminal of its own, so both see a terminal as in class (into a pipe,
//! CPython would keep every `print` in its buffer until exit and the cadence would
//! be lost). When the window closes it types Ctrl-C into each terminal, escalates
//! to SIGTERM and SIGKILL for a program that ignores it, reaps everything, and
//! prints both outputs in two columns with pids and times masked, a mark on every
//! line that differs, and a summary.
//!
//! Usage: compare LESSON --originals DIR [--seconds S] [--tolerance MS]
//!                [--svg FILE] [--stderr] [--keep-env] [--bin-dir DIR]
//!        compare --all --originals DIR [--seconds S] [--tolerance MS]
//!                [--stderr] [--keep-env] [--bin-dir DIR]
//!        compare --list
//!
//! Try it:
//!     cargo run -p compare -- --list
//!     cargo run -p compare -- anon-pipe --originals ../shared/originals
//!     cargo run -p compare -- named-fifo --originals ../shared/originals
//!     cargo run -p compare -- --all --originals ../shared/originals
//!
//! Without `--bin-dir`, compare builds the lessons it runs with `cargo build` into
//! the target directory it was itself built in, and runs them from there.

mod lessons;
mod report;
mod run;

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{Context, Failure, exit, note, signal_exit, signal_name};
use lessons::{LESSONS, Lesson, Pairing, Places};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl::set_child_subreaper;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use run::{ABORT, Outcome, Run, STOP};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

const PROGRAM: &str = "compare";

/// What `--seconds` accepts: a tenth of a second to an hour.
const SECONDS_RANGE: std::ops::RangeInclusive<f64> = 0.1..=3600.0;

/// What `--tolerance` accepts, in milliseconds.
const TOLERANCE_RANGE: std::ops::RangeInclusive<u64> = 0..=10_000;

/// The cadence tolerance unless `--tolerance` says otherwise.
const TOLERANCE_MS: u64 = 50;

struct Options {
    /// `None` with `--all`.
    lesson: Option<&'static Lesson>,
    originals: Option<PathBuf>,
    window: Option<Duration>,
    tolerance: Duration,
    svg: Option<PathBuf>,
    show_stderr: bool,
    keep_env: bool,
    bin_dir: Option<PathBuf>,
    list: bool,
}

/// Why compare could not even start comparing: exit 2, as for a usage error.
struct Setup(String);

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    let mut stdout = io::stdout().lock();
    if options.list {
        return finish_writing(write_list(&mut stdout));
    }
    let lessons: Vec<&'static Lesson> = match options.lesson {
        Some(lesson) => vec![lesson],
        None => LESSONS.iter().collect(),
    };

    // From here on compare starts programs (python3 to ask where it is, cargo, the
    // runs): the stop signals are blocked first, and read from a signalfd later, so
    // one that comes while a program runs is never the default action, which would
    // leave that program behind. Each program gets an empty mask back.
    let mut stops = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stops.add(signal);
    }
    if let Err(err) = stops.thread_block() {
        note!("{PROGRAM}: block SIGINT, SIGTERM, SIGHUP: {err}");
        return ExitCode::from(exit::RUNTIME);
    }

    // Everything that can be missing is checked before anything starts: exit 2.
    let (python, originals, binaries) = match prepare(&options, &lessons) {
        Ok(found) => found,
        Err(Setup(message)) => {
            note!("{PROGRAM}: {message}");
            return ExitCode::from(exit::USAGE);
        }
    };

    match compare(
        &options,
        &lessons,
        &python,
        &originals,
        &binaries,
        &mut stdout,
    ) {
        Ok(code) => code,
        Err(err) => {
            note!("{PROGRAM}: {err}");
            ExitCode::from(exit::RUNTIME)
        }
    }
}
// ANCHOR_END: main

/// Finds python3, the originals and the lesson binaries (building them unless
/// `--bin-dir`).
fn prepare(
    options: &Options,
    lessons: &[&'static Lesson],
) -> Result<(PathBuf, PathBuf, PathBuf), Setup> {
    let originals = options.originals.clone().ok_or_else(|| {
        Setup(
            "--originals DIR is needed: the folder with the documents' programs"
                .into(),
        )
    })?;
    if !originals.is_dir() {
        return Err(Setup(format!(
            "--originals {}: no such folder (it holds the documents' programs, \
             e.g. ../shared/originals)",
            originals.display()
        )));
    }
    for lesson in lessons {
        for file in lesson.originals {
            if !originals.join(file).is_file() {
                return Err(Setup(format!(
                    "{}: the original of {} is missing",
                    originals.join(file).display(),
                    lesson.name
                )));
            }
        }
    }
    // Canonical: the programs' tracebacks then show a plain path.
    let originals = originals.canonicalize().map_err(|err| {
        Setup(format!("--originals {}: {err}", originals.display()))
    })?;
    let python = find_on_path("python3").ok_or_else(|| {
        Setup("python3 not found on PATH: the originals need it".to_owned())
    })?;
    let python = interpreter(&python)?;
    let binaries = match &options.bin_dir {
        Some(dir) => absolute(dir)?,
        None => build(lessons)?,
    };
    for lesson in lessons {
        for binary in lesson.binaries() {
            if !binaries.join(binary).is_file() {
                return Err(Setup(format!(
                    "{}: the lesson's program is missing",
                    binaries.join(binary).display()
                )));
            }
        }
    }
    Ok((python, originals, binaries))
}

fn absolute(path: &Path) -> Result<PathBuf, Setup> {
    std::path::absolute(path)
        .map_err(|err| Setup(format!("{}: {err}", path.display())))
}

/// The interpreter itself, as Python reports it (`sys.executable`). `python3` on
/// PATH may be a launcher (pyenv's shim is a script that runs `pyenv exec`, which
/// puts its own folders in front of PATH): run through it, pipes.py would never
/// find the stand-in `python3` that compare puts first on PATH for the Rust child.
fn interpreter(python: &Path) -> Result<PathBuf, Setup> {
    let mut command = std::process::Command::new(python);
    // SAFETY: one async-signal-safe call (sigprocmask) in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            SigSet::empty()
                .thread_set_mask()
                .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
        });
    }
    let output = command
        .args(["-c", "import sys; sys.stdout.write(sys.executable)"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|err| Setup(format!("run {}: {err}", python.display())))?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).into_owned());
    if output.status.success() && path.is_absolute() {
        Ok(path)
    } else {
        Err(Setup(format!(
            "{} does not say where its interpreter is ({})",
            python.display(),
            output.status
        )))
    }
}

/// The first executable `name` in the directories of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|file| {
            file.metadata().is_ok_and(|meta| {
                meta.is_file() && meta.permissions().mode() & 0o111 != 0
            })
        })
}

// ANCHOR: build
/// Builds the lessons' binaries with the cargo that runs us (`cargo run` sets
/// `CARGO`), into the target directory and profile compare itself was built in, and
/// returns the folder they are in: the one compare's own executable is in.
fn build(lessons: &[&'static Lesson]) -> Result<PathBuf, Setup> {
    let me = std::env::current_exe()
        .map_err(|err| Setup(format!("find compare's own executable: {err}")))?;
    let folder = me.parent().map(Path::to_path_buf).unwrap_or_default();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(&cargo);
    command
        .args(["build", "--quiet", "--bins", "--manifest-path"])
        .arg(workspace.join("Cargo.toml"));
    if let Some(target) = folder.parent() {
        command.arg("--target-dir").arg(target);
    }
    // The profile's folder is `debug` for the default (dev) profile, else its name.
    if let Some(profile) = folder.file_name().and_then(|name| name.to_str())
        && profile != "debug"
    {
        command.args(["--profile", profile]);
    }
    for lesson in lessons {
        command.args(["-p", lesson.package()]);
    }
    // The build can take a while (or wait for cargo's lock): our stop signals must
    // still end it. They are blocked here, before any thread exists, and read from a
    // signalfd while cargo runs; cargo gets an empty mask (Command keeps ours).
    let mut stops = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stops.add(signal);
    }
    let signals = stops
        .thread_block()
        .and_then(|()| {
            SignalFd::with_flags(
                &stops,
                SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
            )
        })
        .map_err(|err| Setup(format!("block the stop signals: {err}")))?;
    // SAFETY: the closure runs in the forked child before exec and makes one
    // async-signal-safe call (sigprocmask), with no allocation and no lock.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            SigSet::empty()
                .thread_set_mask()
                .map_err(|errno| io::Error::from_raw_os_error(errno as i32))
        });
    }
    let mut child = command.spawn().map_err(|err| {
        Setup(format!(
            "run {}: {err} (or give --bin-dir)",
            cargo.to_string_lossy()
        ))
    })?;
    let status = loop {
        if let Ok(Some(info)) = signals.read_signal() {
            let signal = i32::try_from(info.ssi_signo).unwrap_or(libc::SIGTERM);
            let _ = child.kill(); // cargo, and the compilers it waits for, end
            let _ = child.wait();
            note!(
                "{PROGRAM}: stopped by {} before the runs started",
                signal_name(signal)
            );
            // Nothing else exists yet: no scratch folder, no program, no thread.
            std::process::exit(128 + signal);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(err) => return Err(Setup(format!("wait for cargo: {err}"))),
        }
    };
    if !status.success() {
        return Err(Setup(format!(
            "cargo build of the lessons failed ({status}); fix it or give --bin-dir"
        )));
    }
    Ok(folder)
}
// ANCHOR_END: build

// ANCHOR: compare
/// Runs every run of every lesson at once, one thread each, and reports.
fn compare(
    options: &Options,
    lessons: &[&'static Lesson],
    python: &Path,
    originals: &Path,
    binaries: &Path,
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    // Orphans of the programs (a child whose parent was killed) are re-parented to
    // us, not to pid 1, so each run can reap them and see its process group empty.
    set_child_subreaper(true).context("prctl PR_SET_CHILD_SUBREAPER")?;
    // Our own Ctrl-C (and SIGTERM, SIGHUP) is read from a signalfd, so it is
    // blocked here, before any thread exists; every thread inherits the mask, and
    // the programs get an empty one (see run.rs).
    let mut stops = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        stops.add(signal);
    }
    stops
        .thread_block()
        .context("block SIGINT, SIGTERM, SIGHUP")?;
    let signals =
        SignalFd::with_flags(&stops, SfdFlags::SFD_CLOEXEC).context("signalfd")?;

    let scratch = Scratch::new()?;
    let clear_unbuffered = !options.keep_env;
    let places = Places {
        originals,
        binaries,
        python,
        scratch: &scratch.0,
    };
    let mut runs: Vec<Run> = Vec::new();
    let mut pairings: Vec<Pairing> = Vec::new();
    for lesson in lessons {
        let planned = lessons::plan(
            lesson,
            &places,
            options.window,
            clear_unbuffered,
            &mut runs,
        )
        .context(format!(
            "prepare {} in {}",
            lesson.name,
            scratch.0.display()
        ))?;
        pairings.extend(planned);
    }
    match (std::env::var_os("PYTHONUNBUFFERED"), options.keep_env) {
        (Some(_), false) => writeln!(
            out,
            "PYTHONUNBUFFERED removed from the programs' environment \
             (--keep-env keeps it)"
        ),
        (Some(_), true) => writeln!(
            out,
            "PYTHONUNBUFFERED kept (--keep-env): Python's own buffering is hidden"
        ),
        (None, _) => Ok(()),
    }
    .context("write stdout")?;

    let longest = runs.iter().map(|run| run.window).max().unwrap_or_default();
    note!(
        "{PROGRAM}: running {} programs side by side for up to {:.1} s \
         (Ctrl-C stops them)",
        runs.iter().map(|run| run.programs.len()).sum::<usize>(),
        longest.as_secs_f64()
    );
    let outcomes = run_all(&runs, &signals)?;
    drop(scratch); // every program has ended: remove the working folders
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(signal) => {
            note!("{PROGRAM}: stopped by {}", signal_name(signal));
            return Ok(signal_exit(signal));
        }
    };
    report_all(options, &runs, &pairings, &outcomes, out)
}
// ANCHOR_END: compare

/// The runs' threads, and our own stop signals meanwhile. `Err(signal)` if compare
/// was stopped (after every program has been ended and reaped).
fn run_all(
    runs: &[Run],
    signals: &SignalFd,
) -> Result<Result<Vec<Outcome>, i32>, Failure> {
    let (done, results) = mpsc::channel();
    let mut outcomes: Vec<Option<Result<Outcome, Failure>>> =
        runs.iter().map(|_| None).collect();
    let mut no_thread = None;
    std::thread::scope(|scope| {
        let mut left = 0;
        for (index, run) in runs.iter().enumerate() {
            let done = done.clone();
            let spawned =
                std::thread::Builder::new().spawn_scoped(scope, move || {
                    // A panic (a bug) must not leave the main thread waiting for
                    // ever: it becomes this run's failure; the run's programs were
                    // ended and reaped as it unwound.
                    let outcome = catch_unwind(AssertUnwindSafe(|| run.execute()))
                        .unwrap_or_else(|_| {
                            Err(Failure::new(&run.label, "panicked"))
                        });
                    let _ = done.send((index, outcome));
                });
            if let Err(err) = spawned {
                // A process limit counts threads too. Stop the runs already going.
                no_thread =
                    Some(Failure::new(format!("thread for {}", run.label), err));
                STOP.store(ABORT, Ordering::SeqCst);
                break;
            }
            left += 1;
        }
        drop(done);
        while left > 0 {
            let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(20u8));
            if fds[0]
                .revents()
                .is_some_and(|events| events.contains(PollFlags::POLLIN))
                && let Ok(Some(info)) = signals.read_signal()
            {
                // The runs see it within their slice and end their programs at
                // once.
                let signal = i32::try_from(info.ssi_signo).unwrap_or(libc::SIGTERM);
                let _ = STOP.compare_exchange(
                    0,
                    signal,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
            while let Ok((index, outcome)) = results.try_recv() {
                outcomes[index] = Some(outcome);
                left -= 1;
            }
        }
    });
    if let Some(failure) = no_thread {
        return Err(failure);
    }
    let stopped = STOP.load(Ordering::SeqCst);
    if stopped != 0 {
        return Ok(Err(stopped));
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Err(Failure::new("run", "no result")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Ok)
}

/// One lesson: the columns of every pairing (and the picture). `--all`: the columns
/// of the pairings that differ, then one table.
fn report_all(
    options: &Options,
    runs: &[Run],
    pairings: &[Pairing],
    outcomes: &[Outcome],
    out: &mut impl Write,
) -> Result<ExitCode, Failure> {
    let verdicts: Vec<report::Verdict> = pairings
        .iter()
        .map(|pairing| {
            report::compare(
                outcomes[pairing.reference].lines(pairing.stream),
                outcomes[pairing.tested].lines(pairing.stream),
                options.tolerance,
            )
        })
        .collect();
    let all = options.lesson.is_none();
    let mut table = vec![
        [
            "lesson",
            "run (beside the original)",
            "lines equal",
            "cadence",
            "ended (original / run)",
            "result",
        ]
        .map(String::from),
    ];
    for (pairing, verdict) in pairings.iter().zip(&verdicts) {
        if !all || !verdict.is_equal() {
            writeln!(out).context("write stdout")?;
            report::write_columns(
                out,
                pairing,
                runs,
                outcomes,
                verdict,
                options.show_stderr,
            )
            .context("write stdout")?;
        }
        table.push(report::table_row(pairing, runs, outcomes, verdict));
    }
    if all || pairings.len() > 1 {
        writeln!(out).context("write stdout")?;
        report::write_table(out, &table).context("write stdout")?;
    }
    if let Some(path) = &options.svg {
        let title = format!(
            "compare {}: arrival of each {} line",
            pairings.first().map_or("", |p| p.lesson),
            pairings.first().map_or("stdout", |p| p.stream.name())
        );
        // Each original's run once (named-fifo has one per start order), then the
        // runs compared with it.
        let mut rows: Vec<(&Run, &Outcome, Vec<bool>)> = Vec::new();
        let mut drawn: Vec<usize> = Vec::new();
        for (pairing, verdict) in pairings.iter().zip(&verdicts) {
            if !drawn.contains(&pairing.reference) {
                drawn.push(pairing.reference);
                let reference = &outcomes[pairing.reference];
                rows.push((&runs[pairing.reference], reference, Vec::new()));
            }
            let differs = verdict.rows.iter().map(|row| row.differs).collect();
            rows.push((&runs[pairing.tested], &outcomes[pairing.tested], differs));
        }
        let stream = pairings.first().map_or(run::Stream::Out, |p| p.stream);
        std::fs::write(path, report::svg(&title, &rows, stream))
            .context(format!("write {}", path.display()))?;
    }
    out.flush().context("write stdout")?;
    let equal = verdicts.iter().all(report::Verdict::is_equal);
    Ok(ExitCode::from(if equal { exit::OK } else { exit::RUNTIME }))
}

/// compare's own folder in the temporary directory: a working folder per run (the
/// FIFO pairs make `my_pipe` there) and the stand-in `python3`. Removed on drop, on
/// every path out of `compare`.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, Failure> {
        let path =
            std::env::temp_dir().join(format!("compare-{}", std::process::id()));
        // A leftover of a killed run that had our pid.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).context(format!("mkdir {}", path.display()))?;
        Ok(Scratch(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            note!("{PROGRAM}: remove {}: {err}", self.0.display());
        }
    }
}

fn write_list(out: &mut impl Write) -> io::Result<()> {
    for lesson in LESSONS {
        writeln!(out, "{:14}{}", lesson.name, lesson.originals.join(" + "))?;
    }
    Ok(())
}

fn finish_writing(result: io::Result<()>) -> ExitCode {
    match result.and_then(|()| io::stdout().flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            note!("{PROGRAM}: write stdout: {err}");
            ExitCode::from(exit::RUNTIME)
        }
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        lesson: None,
        originals: None,
        window: None,
        tolerance: Duration::from_millis(TOLERANCE_MS),
        svg: None,
        show_stderr: false,
        keep_env: false,
        bin_dir: None,
        list: false,
    };
    let mut all = false;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--originals" => options.originals = Some(parser.value(&arg)?),
            "--seconds" => {
                let seconds = parser.value_in(&arg, SECONDS_RANGE)?;
                options.window = Some(Duration::from_secs_f64(seconds));
            }
            "--tolerance" => {
                let ms = parser.value_in(&arg, TOLERANCE_RANGE)?;
                options.tolerance = Duration::from_millis(ms);
            }
            "--svg" => options.svg = Some(parser.value(&arg)?),
            "--stderr" => options.show_stderr = true,
            "--keep-env" => options.keep_env = true,
            "--bin-dir" => options.bin_dir = Some(parser.value(&arg)?),
            "--all" => all = true,
            "--list" => options.list = true,
            "-h" | "--help" => return Ok(None),
            name if !name.starts_with('-') && options.lesson.is_none() => {
                options.lesson = Some(lessons::find(name).ok_or_else(|| {
                    let known: Vec<&str> = LESSONS.iter().map(|l| l.name).collect();
                    UsageError(format!(
                        "no original is known for {name:?} (known: {})",
                        known.join(", ")
                    ))
                })?);
            }
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    if options.list {
        return Ok(Some(options));
    }
    match (all, options.lesson.is_some()) {
        (true, true) => {
            Err(UsageError("give a LESSON or --all, not both".to_owned()))
        }
        (false, false) => Err(UsageError(
            "which lesson? give a LESSON or --all".to_owned(),
        )),
        (true, false) if options.svg.is_some() => Err(UsageError(
            "--svg draws one lesson: give a LESSON".to_owned(),
        )),
        _ => Ok(Some(options)),
    }
}

fn usage() -> String {
    let lessons: Vec<&str> = LESSONS.iter().map(|lesson| lesson.name).collect();
    format!(
        "\
Usage: {PROGRAM} LESSON --originals DIR [--seconds S] [--tolerance MS] [--svg FILE]
               [--stderr] [--keep-env] [--bin-dir DIR]
       {PROGRAM} --all --originals DIR [--seconds S] [--tolerance MS] [--stderr]
               [--keep-env] [--bin-dir DIR]
       {PROGRAM} --list

Runs a lesson and the document's Python program at the same time, each on its
own pseudo-terminal, for a window; then types Ctrl-C into both, and prints their
lines side by side (pids and times masked), a mark on each line that differs
(* text, ~ cadence), and a summary.
LESSON is one of: {}.

Options:
  --originals DIR  the folder with the documents' programs (../shared/originals)
  --all            every lesson, all at once, and one summary table
  --list           print which original goes with which lesson
  --seconds S      the window, from each program's first line, 0.1 to 3600
                   (default: the document's full cycle, e.g. 12 for anon-pipe)
  --tolerance MS   the largest cadence difference still equal, 0 to 10000
                   (default 50)
  --svg FILE       also draw the runs as a timeline picture (one lesson only)
  --stderr         show the stream that is not compared, too
  --keep-env       keep PYTHONUNBUFFERED in the programs' environment
  --bin-dir DIR    run the lessons' programs from DIR instead of building them with
                   cargo (into the target folder compare was built in)
  -h, --help       print this help

Exit status: 0 every lesson equal; 1 a lesson differs, or a system call failed;
2 bad command line, or python3, DIR, an original or a lesson's program is missing;
128+n stopped by signal n (everything it started is ended and reaped first).
",
        lessons.join(", ")
    )
}
