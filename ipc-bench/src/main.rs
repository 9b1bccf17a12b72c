//! ipc-bench: how fast is each IPC mechanism of the course, measured side by side,
//! in one run, on this machine, and why.
//!
//! Not a document program: the course's closing question ("which one should I
//! use?") answered by measurement. For each mechanism two processes (forked) or two
//! threads move messages of 64 B to 1 MiB one way (throughput) and a 64-byte
//! message back and forth (round trip); the same run measures the machine's limits,
//! `memcpy` of the same sizes and one trivial system call, and prints every figure
//! with its ratio to them.
//!
//! Usage: ipc-bench [--quick] [--only LIST] [--sizes LIST] [--reps N] [--bytes N]
//!                  [--rounds N] [--cpus A,B] [--patience S] [--python]
//!                  [--json | --markdown] [--svg FILE] [--show-fds]
//!
//! Try it:
//!     cargo run --release -p ipc-bench               # everything, under 30 s
//!     cargo run --release -p ipc-bench -- --quick    # under 5 s, for class
//!     cargo run --release -p ipc-bench -- --only pipe,vmsplice --sizes 64K,1M
//!     cargo run --release -p ipc-bench -- --quick --only pipe,ring-spin --cpus 0,0
//!     cargo run --release -p ipc-bench -- --quick --markdown --svg /tmp/bench.svg
//!     cargo run -p ipc-bench -- --only pipe --sizes 64 --bytes 256 --show-fds
//!
//! How it works: this process only coordinates. For each mechanism it makes what
//! must exist before `fork` (pipes, a listening socket, FIFOs, shared memory),
//! forks the peer and the measuring side, closes its own copies, and waits for
//! result lines on a pipe while watching for signals (a `signalfd`), so Ctrl-C ends
//! everything within a second. `--show-fds` prints each process's descriptor table
//! (stderr) at each step of that choreography.
//!
//! Caveats: a debug build (`cargo run` without `--release`) measures the compiler,
//! not the mechanism. Numbers from a busy machine (other programs on the same CPUs)
//! are noise: the spread column says how much.

mod channel;
mod measure;
mod python;
mod report;
mod ring;

use channel::{ALL, Mechanism, Setup};
use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::{
    Context, Failure, describe_wait, exit, fds, note, signal_exit, signal_name,
};
use measure::{Plan, Results};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid, pipe2, read};
use report::{Format, Report};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "ipc-bench";

/// The sizes measured by default, and with `--quick`.
const SIZES: [usize; 8] = [
    64,
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
];
const QUICK_SIZES: [usize; 4] = [64, 4 << 10, 64 << 10, 1 << 20];
/// The largest message `--sizes` accepts: the rings' and pipes' capacity.
const MAX_SIZE: usize = 1 << 20;

/// If no result arrives for this long (`--patience`), something is stuck: stop,
/// exit 3.
const PATIENCE: u64 = 30;
/// How long a child asked to stop (SIGTERM) may take before SIGKILL.
const GRACE: Duration = Duration::from_millis(300);

#[derive(Debug)]
struct Options {
    plan: Plan,
    only: Vec<Mechanism>,
    cpus: Option<[usize; 2]>,
    patience: Duration,
    python: bool,
    format: Format,
    svg: Option<PathBuf>,
    /// `--show-fds`: each process prints its descriptor table at each step.
    show_fds: bool,
    /// The command line as given, for the report.
    args: Vec<String>,
}

/// Why a run ended early.
enum Stop {
    Failed(Failure),
    Signal(i32),
    Stalled(String, Duration),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Failed(failure)
    }
}

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };

    // ANCHOR: signals
    // Block the stop signals and SIGCHLD, and receive them as data on a descriptor
    // instead: the coordinator then waits for results, signals and dying children
    // in one `poll`, and no handler ever interrupts (or fails to interrupt) a
    // system call. A second Ctrl-C is just one more record to read: the clean-up is
    // never cut short.
    let mut mask = SigSet::empty();
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        mask.add(signal);
    }
    let signals = match mask.thread_block().and_then(|()| {
        SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    }) {
        Ok(signals) => signals,
        Err(err) => {
            note!("{PROGRAM}: signalfd: {err}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    // ANCHOR_END: signals

    // FIFOs and the Unix socket live in a private directory, removed on every path.
    let outcome = match make_private_dir(&std::env::temp_dir()) {
        Ok(dir) => {
            let outcome = run_all(&options, &signals, &dir);
            if let Err(err) = std::fs::remove_dir_all(&dir) {
                note!("{PROGRAM}: remove {}: {err}", dir.display());
            }
            outcome
        }
        Err(failure) => Err(Stop::Failed(failure)),
    };

    match outcome
        .and_then(|report| print_report(&report, &options).map_err(Stop::from))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stop::Failed(failure)) => {
            note!("{PROGRAM}: {failure}");
            ExitCode::from(exit::RUNTIME)
        }
        Err(Stop::Stalled(what, patience)) => {
            note!(
                "{PROGRAM}: {what}: no result for {patience:?}; stopped it (stuck?)"
            );
            ExitCode::from(exit::TIMEOUT)
        }
        Err(Stop::Signal(signal)) => {
            note!("{PROGRAM}: stopped by {}", signal_name(signal));
            signal_exit(signal)
        }
    }
}
// ANCHOR_END: main

/// A new directory only we can use, `ipc-bench-<pid>` in `tmp`. A run killed outright
/// (SIGKILL) leaves its own behind, and pids come round again: then the next free
/// `ipc-bench-<pid>-<n>`.
fn make_private_dir(tmp: &std::path::Path) -> Result<std::path::PathBuf, Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let base = format!("{PROGRAM}-{}", getpid());
    let mut n = 0;
    loop {
        let dir = match n {
            0 => tmp.join(&base),
            n => tmp.join(format!("{base}-{n}")),
        };
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(err)
                if err.kind() == std::io::ErrorKind::AlreadyExists && n < 100 =>
            {
                n += 1
            }
            Err(err) => {
                return Err(Failure::new(format!("mkdir {}", dir.display()), err));
            }
        }
    }
}

/// What one job (the limits, or one mechanism) sent back: its result lines.
struct JobOutput {
    lines: Vec<String>,
    pipe_capacity: Option<usize>,
}

// ANCHOR: run_all
/// Measures the limits, then every mechanism asked for, one after the other (never
/// two at once: they would compete for the CPUs).
fn run_all(
    options: &Options,
    signals: &SignalFd,
    dir: &std::path::Path,
) -> Result<Report, Stop> {
    let mut report = Report::new(&options.plan, options.cpus, &options.args);
    let total = options.only.len() + 1 + usize::from(options.python);
    note!("{PROGRAM}: [1/{total}] limits: memcpy and one system call");
    let limits = run_job(None, options, signals, dir)?;
    report.add_limits(&limits.lines)?;
    for (i, &mechanism) in options.only.iter().enumerate() {
        note!("{PROGRAM}: [{}/{total}] {}", i + 2, mechanism.name());
        let output = run_job(Some(mechanism), options, signals, dir)?;
        report.add_mechanism(mechanism, &output.lines, output.pipe_capacity)?;
    }
    if options.python {
        note!("{PROGRAM}: [{total}/{total}] pipe and socketpair in Python");
        python::run(&mut report, &options.plan, signals, options.patience)?;
    }
    Ok(report)
}
// ANCHOR_END: run_all

/// The children of one job: ended (SIGTERM, a grace, SIGKILL) and reaped on every
/// path.
struct Children {
    pids: Vec<(Pid, &'static str)>,
    failed: Option<String>,
}

impl Children {
    /// Reaps whichever children have exited, without waiting. A child that did not
    /// exit with status 0 is remembered as the job's failure.
    fn reap_exited(&mut self) {
        self.pids.retain(|&(pid, role)| {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(status) => {
                    if !lesson_kit::exited_ok(status) && self.failed.is_none() {
                        self.failed =
                            Some(format!("{role} {pid} {}", describe_wait(status)));
                    }
                    false
                }
                Err(_) => false, // not our child any more: nothing to reap
            }
        });
    }

    // ANCHOR: end_children
    /// Asks every child left to stop, waits a little, then kills and reaps the
    /// rest.
    fn end_all(&mut self) {
        for &(pid, _) in &self.pids {
            let _ = kill(pid, Signal::SIGTERM); // it may be gone already
        }
        let give_up = Instant::now() + GRACE;
        while !self.pids.is_empty() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
            self.reap_exited();
        }
        for &(pid, role) in &self.pids {
            note!("{PROGRAM}: {role} {pid} ignored SIGTERM for {GRACE:?}; SIGKILL");
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None); // SIGKILL cannot be ignored: this returns
        }
        self.pids.clear();
    }
    // ANCHOR_END: end_children
}

impl Drop for Children {
    fn drop(&mut self) {
        // On an early return (an error, a signal) nothing is left running.
        self.end_all();
    }
}

// ANCHOR: run_job
/// One job: make the mechanism, fork the peer and the measuring side, collect
/// results. `None` measures the limits (memcpy, a system call): a measuring side
/// with no peer.
fn run_job(
    mechanism: Option<Mechanism>,
    options: &Options,
    signals: &SignalFd,
    dir: &std::path::Path,
) -> Result<JobOutput, Stop> {
    let setup = mechanism.map(|m| Setup::new(m, dir)).transpose()?;
    let pipe_capacity = setup.as_ref().and_then(|s| s.pipe_capacity);
    let (a, b) = match setup {
        Some(Setup { a, b, .. }) => (Some(a), Some(b)),
        None => (None, None),
    };
    let threads = mechanism.is_some_and(Mechanism::threads);
    // Commands from the measuring side to the peer; results from it to us.
    let (control_rx, control_tx) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    let (results_rx, results_tx) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // `--show-fds`, for the mechanisms (the limits job has none to show).
    let show = options.show_fds && mechanism.is_some();
    let fds = move |who: &str, step: &str| {
        if show {
            fds::show(who, step);
        }
    };
    fds("coordinator", "all made, before fork");
    let mut children = Children {
        pids: Vec::new(),
        failed: None,
    };
    let [cpu_a, cpu_b] = options
        .cpus
        .map_or([None, None], |[a, b]| [Some(a), Some(b)]);
    let coordinator = getpid();
    let largest = options
        .plan
        .sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(measure::SMALL);

    // Whatever sits in our stdout buffer would be copied into the children.
    io::stdout().flush().context("flush stdout")?;
    // The peer is a process of its own, or a thread of the measuring side.
    let (b_process, b_thread) = if threads { (None, b) } else { (b, None) };
    if let Some(b) = b_process {
        // SAFETY: this process is single-threaded (it never starts a thread), so
        // the child is a complete copy and may allocate; it never returns from
        // `child`.
        match unsafe { fork() }.context("fork peer")? {
            ForkResult::Child => {
                fds("peer", "after fork");
                drop(control_tx); // the peer only reads commands
                drop(results_rx);
                drop(results_tx); // sends no results: our EOF comes from `a` alone
                drop(a); // the other side's descriptors are not ours
                close_signalfd(signals);
                fds("peer", "after closing what is not its own");
                child(coordinator, cpu_b, || {
                    let late = b.opens_late();
                    let end = b.open()?;
                    if late {
                        fds("peer", "after opening its end");
                    }
                    measure::peer(end, &control_rx, largest)
                })
            }
            ForkResult::Parent { child } => {
                children.pids.push((child, "peer"));
                drop(b); // the peer's own: the measuring side must not get a copy
            }
        }
    }
    // SAFETY: as above; a fork that fails here leaves the peer in `children`, whose
    // drop ends and reaps it.
    match unsafe { fork() }.context("fork measuring side")? {
        ForkResult::Child => {
            fds("measuring side", "after fork");
            drop(results_rx); // only the coordinator reads results
            close_signalfd(signals);
            // The peer reads the commands: kept for our peer thread, else closed.
            let control_rx = if threads {
                fds("measuring side", THREADS_CLOSED);
                Some(control_rx)
            } else {
                drop(control_rx); // only the peer reads commands
                fds("measuring side", "after closing what is not its own");
                None
            };
            child(coordinator, cpu_a, || {
                let mut results = Results::new(results_tx);
                let Some((a, mechanism)) = a.zip(mechanism) else {
                    return measure::limits(&mut results, &options.plan);
                };
                // With a thread for a peer, it takes its side and the commands.
                let peer = b_thread.zip(control_rx).map(|(b, control_rx)| {
                    std::thread::spawn(move || {
                        pin(cpu_b)?;
                        measure::peer(b.open()?, &control_rx, largest)
                    })
                });
                let late = a.opens_late();
                let end = a.open()?;
                if late {
                    fds("measuring side", "after opening its end");
                }
                measure::measurer(
                    end,
                    control_tx,
                    &mut results,
                    &options.plan,
                    mechanism.streams(),
                    mechanism.echoes(),
                    mechanism.sees_bytes(),
                )?;
                match peer.map(std::thread::JoinHandle::join) {
                    Some(Ok(done)) => done,
                    Some(Err(_)) => Err(Failure::new("peer thread", "panicked")),
                    None => Ok(()),
                }
            })
        }
        ForkResult::Parent { child } => {
            children.pids.push((child, "measuring side"))
        }
    }
    // Our copies of every end must go: the results pipe reaches EOF only when the
    // measuring side closes the last write end, and a FIFO or a socket would keep a
    // reader waiting for a writer that is only us.
    drop(control_rx);
    drop(control_tx);
    drop(results_tx);
    drop(a);
    drop(b_thread);
    fds("coordinator", "after closing its copies");

    let what = mechanism.map_or("limits", Mechanism::name);
    let lines =
        collect(&results_rx, signals, &mut children, what, options.patience)?;
    Ok(JobOutput {
        lines,
        pipe_capacity,
    })
}
// ANCHOR_END: run_job

// ANCHOR: collect
/// Reads result lines until the measuring side closes the pipe, while watching for
/// signals and dead children; then reaps both children.
fn collect(
    results: &OwnedFd,
    signals: &SignalFd,
    children: &mut Children,
    what: &str,
    patience: Duration,
) -> Result<Vec<String>, Stop> {
    let mut text = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut last_news = Instant::now();
    let mut open = true;
    while open || !children.pids.is_empty() {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(results.as_fd(), PollFlags::POLLIN),
        ];
        let watched = if open { 2 } else { 1 };
        match poll(&mut fds[..watched], PollTimeout::from(100u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(err) => return Err(Failure::new("poll", err).into()),
        }
        let signal_ready = fds[0].any().unwrap_or(false);
        let results_ready = open && fds[1].any().unwrap_or(false);
        if signal_ready {
            while let Some(info) = signals.read_signal().context("read signalfd")? {
                let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                if signo != libc::SIGCHLD {
                    return Err(Stop::Signal(signo)); // `children` drop ends them
                }
            }
        }
        children.reap_exited();
        if let Some(failed) = children.failed.take() {
            return Err(Failure::new(what, failed).into());
        }
        if results_ready {
            let n = read(results, &mut chunk).context("read results pipe")?;
            if n == 0 {
                // The measuring side is done (its exit status tells how).
                open = false;
            }
            text.extend_from_slice(&chunk[..n]);
            last_news = Instant::now();
        }
        if last_news.elapsed() > patience {
            return Err(Stop::Stalled(what.to_owned(), patience));
        }
    }
    let text = String::from_utf8(text)
        .map_err(|_| Failure::new(what, "results not UTF-8"))?;
    Ok(text.lines().map(str::to_owned).collect())
}
// ANCHOR_END: collect

// ANCHOR: child
/// A forked child's life: die with the coordinator, take the signals back, go to
/// its CPU, do `work`, and `_exit` (never return into the coordinator's code).
fn child(
    coordinator: Pid,
    cpu: Option<usize>,
    work: impl FnOnce() -> Result<(), Failure>,
) -> ! {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes a flag of this
    // process only. If the coordinator dies (even by SIGKILL), we get SIGKILL.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if getppid() != coordinator {
        exit_child(exit::RUNTIME); // it died before the line above took effect
    }
    // The coordinator blocked these to read them from its signalfd; a child wants
    // the default actions back (Ctrl-C ends it, and the coordinator reaps it).
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // A panic must not unwind out of here: above us is the coordinator's code.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pin(cpu).and_then(|()| work())
    }));
    match outcome {
        Ok(Ok(())) => exit_child(exit::OK),
        Ok(Err(failure)) => {
            note!("{PROGRAM}: {failure}");
            exit_child(exit::RUNTIME)
        }
        Err(_) => exit_child(exit::RUNTIME), // the panic message is on stderr
    }
}
// ANCHOR_END: child

/// The step a thread-based measuring side shows after its closes: its peer is a
/// thread, which has no table of its own.
const THREADS_CLOSED: &str = "after its closes (its peer thread shares this table)";

/// In a forked child: closes its copy of the coordinator's signalfd, which it never
/// reads (a child takes its signals the default way). The `SignalFd` value that owns
/// the number is never dropped in a child (children end with `_exit`), so the number
/// is closed once, here.
fn close_signalfd(signals: &SignalFd) {
    let _ = nix::unistd::close(signals.as_raw_fd());
}

/// Ends a forked child without running the coordinator's exit-time code.
fn exit_child(code: u8) -> ! {
    // SAFETY: `_exit` ends the process at once, touching no memory of ours.
    unsafe { libc::_exit(i32::from(code)) }
}

/// Binds the calling thread to one CPU (`--cpus`), or leaves it free.
fn pin(cpu: Option<usize>) -> Result<(), Failure> {
    let Some(cpu) = cpu else { return Ok(()) };
    let mut set = CpuSet::new();
    set.set(cpu).context(format!("CPU {cpu}"))?;
    // Pid 0: the calling thread (in Linux, affinity belongs to each thread).
    sched_setaffinity(Pid::from_raw(0), &set)
        .context(format!("sched_setaffinity CPU {cpu}"))
}

fn print_report(report: &Report, options: &Options) -> Result<(), Failure> {
    let text = match options.format {
        Format::Text => report.text(),
        Format::Markdown => report.markdown(),
        Format::Json => report.json(),
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("write stdout")?;
    if let Some(path) = &options.svg {
        std::fs::write(path, report.svg())
            .context(format!("write {}", path.display()))?;
        note!("{PROGRAM}: chart written to {}", path.display());
    }
    Ok(())
}

// ANCHOR: options
fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut quick = false;
    let mut only = None;
    let mut sizes = None;
    let mut reps = None;
    let mut bytes = None;
    let mut rounds = None;
    let mut cpus = None;
    let mut patience = PATIENCE;
    let mut python = false;
    let mut format = Format::Text;
    let mut svg = None;
    let mut show_fds = false;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => only = Some(parse_only(&parser.value::<String>(&arg)?)?),
            "--sizes" => sizes = Some(parse_sizes(&parser.value::<String>(&arg)?)?),
            "--reps" => reps = Some(parser.value_in(&arg, 1..=20)?),
            "--bytes" => bytes = Some(parser.value_in(&arg, 1..=1u64 << 30)?),
            "--rounds" => rounds = Some(parser.value_in(&arg, 1..=1_000_000)?),
            "--cpus" => cpus = Some(parse_cpus(&parser.value::<String>(&arg)?)?),
            "--patience" => patience = parser.value_in(&arg, 1..=3600)?,
            "--python" => python = true,
            "--json" if format == Format::Text => format = Format::Json,
            "--markdown" if format == Format::Text => format = Format::Markdown,
            "--json" | "--markdown" => {
                return Err(UsageError("--json and --markdown: choose one".into()));
            }
            "--svg" => svg = Some(PathBuf::from(parser.value::<String>(&arg)?)),
            "--show-fds" => show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    let bytes = bytes.unwrap_or(if quick { 4 << 20 } else { 32 << 20 });
    let plan = Plan {
        sizes: sizes.unwrap_or_else(|| {
            if quick {
                QUICK_SIZES.to_vec()
            } else {
                SIZES.to_vec()
            }
        }),
        reps: reps.unwrap_or(if quick { 2 } else { 3 }),
        bytes,
        max_messages: (bytes / 256).max(16),
        rounds: rounds.unwrap_or(if quick { 1_000 } else { 10_000 }),
        syscalls: if quick { 50_000 } else { 200_000 },
    };
    Ok(Some(Options {
        plan,
        only: only.unwrap_or_else(|| ALL.to_vec()),
        cpus,
        patience: Duration::from_secs(patience),
        python,
        format,
        svg,
        show_fds,
        // The report names the command that made it (already checked to be UTF-8).
        args: std::env::args_os()
            .skip(1)
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect(),
    }))
}
// ANCHOR_END: options

fn parse_only(list: &str) -> Result<Vec<Mechanism>, UsageError> {
    let mut chosen = Vec::new();
    for name in list.split(',') {
        let mechanism = Mechanism::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = ALL.iter().map(|m| m.name()).collect();
            UsageError(format!(
                "--only {name:?}: unknown; choose from {}",
                known.join(",")
            ))
        })?;
        if !chosen.contains(&mechanism) {
            chosen.push(mechanism);
        }
    }
    Ok(chosen)
}

/// `64,4K,1M` (K = 1024 bytes, M = 1 MiB), each from 1 byte to 1 MiB.
fn parse_sizes(list: &str) -> Result<Vec<usize>, UsageError> {
    let mut sizes = Vec::new();
    for item in list.split(',') {
        let (digits, unit) = match item.strip_suffix(['K', 'k']) {
            Some(digits) => (digits, 1 << 10),
            None => match item.strip_suffix(['M', 'm']) {
                Some(digits) => (digits, 1 << 20),
                None => (item, 1),
            },
        };
        let size = digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(unit))
            .filter(|n| (1..=MAX_SIZE).contains(n))
            .ok_or_else(|| {
                UsageError(format!(
                    "--sizes {item:?}: must be from 1 to 1M (1048576) bytes"
                ))
            })?;
        if !sizes.contains(&size) {
            sizes.push(size);
        }
    }
    sizes.sort_unstable();
    Ok(sizes)
}

/// `A,B`: the measuring side on CPU A, the peer on CPU B (the same CPU is allowed:
/// it shows what a wake-up on one CPU costs). Both must be CPUs this process may
/// use.
fn parse_cpus(text: &str) -> Result<[usize; 2], UsageError> {
    let bad = || UsageError(format!("--cpus {text:?}: give two CPU numbers, A,B"));
    let (a, b) = text.split_once(',').ok_or_else(bad)?;
    let allowed = sched_getaffinity(Pid::from_raw(0))
        .map_err(|err| UsageError(format!("sched_getaffinity: {err}")))?;
    let mut pair = [0; 2];
    for (slot, word) in pair.iter_mut().zip([a, b]) {
        let cpu: usize = word.parse().map_err(|_| bad())?;
        if !allowed.is_set(cpu).unwrap_or(false) {
            let usable: Vec<String> = (0..CpuSet::count())
                .filter(|&c| allowed.is_set(c).unwrap_or(false))
                .map(|c| c.to_string())
                .collect();
            return Err(UsageError(format!(
                "--cpus {text:?}: CPU {cpu} is not one this process may use ({})",
                usable.join(",")
            )));
        }
        *slot = cpu;
    }
    Ok(pair)
}

fn usage() -> String {
    let names: Vec<&str> = ALL.iter().map(|m| m.name()).collect();
    format!(
        "\
Usage: {PROGRAM} [--quick] [--only LIST] [--sizes LIST] [--reps N] [--bytes N]
                 [--rounds N] [--cpus A,B] [--patience S] [--python]
                 [--json | --markdown] [--svg FILE] [--show-fds]

Measures every IPC mechanism of the course on this machine, in one run: throughput
(one way, messages of 64 B to 1 MiB) and round-trip latency (64 B there and back),
next to the machine's limits (memcpy of the same sizes, one trivial system call).
Build with --release: a debug build measures the compiler.

Options:
  --quick          fewer sizes, repetitions and messages: under 5 s
  --only LIST      only these mechanisms, comma-separated, from:
                   {}
  --sizes LIST     message sizes, e.g. 64,4K,1M (from 1 to 1M bytes)
  --reps N         repetitions of each figure; the best is shown
                   (1 to 20; 3, quick 2)
  --bytes N        bytes per throughput repetition, at most N/256 messages
                   (1 to 1073741824; 32 MiB, quick 4 MiB)
  --rounds N       round trips per repetition (1 to 1000000; 10000, quick 1000)
  --cpus A,B       pin the measuring side to CPU A and its peer to CPU B
  --patience S     give up (exit 3) if no result comes for S seconds (1 to 3600; 30)
  --python         also run the pipe and socketpair loops in python3, if installed
  --json           print the results as JSON
  --markdown       print the results as Markdown tables (the book's)
  --svg FILE       also write a chart of throughput against message size to FILE
  --show-fds       each process prints its descriptor table (stderr) for each
                   mechanism: made, after fork, after the closes, after an open
  -h, --help       print this help

Exit status: 0 measured; 1 a system call or a side failed (bytes lost, a child
died); 2 bad command line; 3 no progress for --patience seconds; 128+n stopped
by signal n.
",
        wrapped_list(&names)
    )
}

/// The mechanisms' names, comma-separated, in lines that keep the help within 80
/// columns (continued under the option's description).
fn wrapped_list(names: &[&str]) -> String {
    let mut lines = vec![String::new()];
    for (i, name) in names.iter().enumerate() {
        let item = if i + 1 < names.len() {
            format!("{name},")
        } else {
            (*name).to_owned()
        };
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + item.len() > 60 {
            lines.push(item);
        } else {
            line.push_str(&item);
        }
    }
    lines.join("\n                   ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `make_private_dir(tmp)` on a thread, failing the test if it takes 5 s: a
    /// broken count would try names for ever.
    fn private_dir_within_5_s(tmp: &std::path::Path) -> Result<PathBuf, String> {
        let (done, finished) = std::sync::mpsc::channel();
        let tmp = tmp.to_owned();
        std::thread::spawn(move || {
            let _ = done.send(make_private_dir(&tmp).map_err(|f| f.to_string()));
        });
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("make_private_dir tries names for ever")
    }

    #[test]
    fn a_stale_directory_of_an_earlier_run_with_our_pid_is_stepped_over() {
        let tmp = std::env::temp_dir().join(format!("ipc-bench-unit-{}", getpid()));
        let _ = std::fs::remove_dir_all(&tmp);
        let base = format!("{PROGRAM}-{}", getpid());
        std::fs::create_dir_all(tmp.join(&base)).unwrap();
        let dir = private_dir_within_5_s(&tmp).expect("a free name");
        assert_eq!(dir, tmp.join(format!("{base}-1")));
        let again = private_dir_within_5_s(&tmp).expect("the next free name");
        assert_eq!(again, tmp.join(format!("{base}-2")));
        // 100 more names are tried, no more: -100 is the last.
        for n in 3..=99 {
            std::fs::create_dir(tmp.join(format!("{base}-{n}"))).unwrap();
        }
        let last = private_dir_within_5_s(&tmp).expect("the last free name");
        assert_eq!(last, tmp.join(format!("{base}-100")));
        let refused = private_dir_within_5_s(&tmp).expect_err("no name left");
        assert!(
            refused.starts_with(&format!(
                "mkdir {}: ",
                tmp.join(format!("{base}-100")).display()
            )),
            "{refused}"
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error_at_once() {
        let tmp =
            std::env::temp_dir().join(format!("ipc-bench-absent-{}", getpid()));
        let refused = private_dir_within_5_s(&tmp).expect_err("no parent");
        let first = tmp.join(format!("{PROGRAM}-{}", getpid()));
        assert!(
            refused.starts_with(&format!("mkdir {}: ", first.display())),
            "{refused}"
        );
        assert!(!tmp.exists());
    }

    #[test]
    fn the_mechanisms_names_wrap_at_60_columns() {
        let (a, b) = ("a".repeat(29), "b".repeat(30));
        // "aaa…a," and "bbb…b" make 60 exactly: one line.
        assert_eq!(wrapped_list(&[&a, &b]), format!("{a},{b}"));
        let c = "b".repeat(29);
        assert_eq!(
            wrapped_list(&[&a, &c, "c"]),
            format!("{a},{c},\n                   c")
        );
    }

    #[test]
    fn sizes_take_units_and_come_sorted_without_repeats() {
        assert_eq!(
            parse_sizes("4K,64,1M,64,1k,1m"),
            Ok(vec![64, 1024, 4096, 1 << 20])
        );
        assert_eq!(parse_sizes("1"), Ok(vec![1]));
        for bad in ["0", "", "1025K", "2M", "x", "1.5K", "-1"] {
            assert!(parse_sizes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_takes_known_names_once_each() {
        assert_eq!(
            parse_only("tcp,pipe,tcp"),
            Ok(vec![Mechanism::Tcp, Mechanism::Pipe])
        );
        assert!(parse_only("pipe,").is_err());
    }
}
