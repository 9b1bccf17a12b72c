//! `--python`: the same pipe and socketpair loops in Python, in the same run, so the
//! ratio shows the cost of the language rather than of the mechanism.
//!
//! The script below is this lesson's own (not a document's): `fork`, then one side
//! streams 64 KiB messages and echoes 64-byte requests, the other times both. Like the
//! Rust loops it reads into a buffer made once (`os.readv` into a `bytearray`),
//! handles partial writes, and looks at every byte it receives once: it searches
//! them for a zero byte, which the pattern never holds (`bytearray.find`, a `memchr`
//! in C, about as fast as the Rust checksum), since a byte loop in Python would
//! measure the interpreter and not the pipe.

use crate::measure::{Plan, SMALL};
use crate::report::{PythonRow, Report};
use crate::{Children, Stop, collect};
use lesson_kit::{Context, note};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The message size of the Python throughput figure (the issue's reference size).
const SIZE: usize = 64 << 10;

// ANCHOR: script
const SCRIPT: &str = r#"
import os, signal, socket, sys, time
size, count, rounds, reps, small = map(int, sys.argv[1:6])

def write_all(fd, view):
    while view:
        view = view[os.write(fd, view):]

def read_exact(fd, buf, n):
    view, got = memoryview(buf), 0
    while got < n:
        k = os.readv(fd, [view[got:n]])
        if k == 0:
            raise EOFError("peer gone")
        got += k

def peer(rx, tx):
    message = bytes(i % 251 + 1 for i in range(size))  # no zero byte
    echo = bytearray(small)
    for _ in range(reps):
        read_exact(rx, echo, 1)                 # "go"
        for _ in range(count):
            write_all(tx, memoryview(message))
        for _ in range(rounds):
            read_exact(rx, echo, small)
            write_all(tx, memoryview(echo))

def measure(name, rx, tx):
    buf, request = bytearray(size), bytes(small)
    for rep in range(reps):
        total, got, view = size * count, 0, memoryview(buf)
        start = time.perf_counter_ns()
        write_all(tx, b"g")
        while got < total:
            k = os.readv(rx, [view[:min(size, total - got)]])
            if k == 0:
                raise EOFError("peer gone")
            if buf.find(0, 0, k) != -1:  # look at every byte once (memchr, in C)
                raise ValueError("a zero byte: the pattern has none")
            got += k
        took = time.perf_counter_ns() - start
        print(f"{name} tp {rep} {took} {got}", flush=True)
        times = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            write_all(tx, memoryview(request))
            read_exact(rx, buf, small)
            times.append(time.perf_counter_ns() - start)
        times.sort()
        print(f"{name} rt {rep} {times[len(times) // 2]}", flush=True)

def run(name):
    if name == "pipe":
        a_rx, b_tx = os.pipe()
        b_rx, a_tx = os.pipe()
        a, b = (a_rx, a_tx), (b_rx, b_tx)
    else:
        s, t = socket.socketpair()
        a, b = (s.fileno(), s.fileno()), (t.fileno(), t.fileno())
    child = os.fork()
    if child == 0:
        for fd in set(a):
            os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            peer(*b)
        except (EOFError, OSError):
            os._exit(1)
        os._exit(0)
    for fd in set(b):
        os.close(fd)
    def stop(signo, frame):  # end the peer too, and reap it, then go
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os._exit(128 + signo)
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signo, stop)
    measure(name, *a)
    os.waitpid(child, 0)
    for signo in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signo, signal.SIG_DFL)
    for fd in set(a):
        os.close(fd)

print(f"ipc-bench: python3 {os.getpid()} measuring", file=sys.stderr, flush=True)
run("pipe")
run("socketpair")
"#;
// ANCHOR_END: script

/// `python3` on PATH, if there is one.
fn find_python() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("python3"))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs the script and adds its figures to the report.
pub fn run(
    report: &mut Report,
    plan: &Plan,
    signals: &SignalFd,
    patience: Duration,
) -> Result<(), Stop> {
    let Some(python) = find_python() else {
        note!("ipc-bench: --python: no python3 on PATH; skipped");
        return Ok(());
    };
    let count = plan.messages(SIZE);
    let rounds = plan.rounds;
    let mut command = Command::new(&python);
    command
        .arg("-c")
        .arg(SCRIPT)
        .args([SIZE.to_string(), count.to_string()])
        .args([rounds.to_string(), plan.reps.to_string(), SMALL.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // The mask we set to read signals from a signalfd survives exec: python3 would
    // start with SIGINT, SIGTERM and SIGHUP blocked, and never see our SIGTERM.
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigprocmask, which is async-signal-safe and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    let mut spawned = command
        .spawn()
        .context(format!("spawn {}", python.display()))?;
    let pid = Pid::from_raw(i32::try_from(spawned.id()).unwrap_or(i32::MAX));
    let mut children = Children {
        pids: vec![(pid, "python3")],
        failed: None,
    };
    let output: OwnedFd = spawned.stdout.take().expect("stdout is piped").into();
    drop(spawned); // we reap it ourselves, with waitpid, like the forked children
    let lines = collect(&output, signals, &mut children, "python3", patience)?;
    for name in ["pipe", "socketpair"] {
        let mut best_rate = 0.0f64;
        let mut best_median = f64::INFINITY;
        for line in &lines {
            let words: Vec<&str> = line.split(' ').collect();
            let number =
                |i: usize| words.get(i).and_then(|w| w.parse::<f64>().ok());
            match (words.first(), words.get(1)) {
                (Some(n), Some(&"tp")) if *n == name => {
                    if let (Some(ns), Some(bytes)) = (number(3), number(4)) {
                        best_rate = best_rate.max(bytes / ns.max(1.0));
                    }
                }
                (Some(n), Some(&"rt")) if *n == name => {
                    if let Some(median) = number(3) {
                        best_median = best_median.min(median);
                    }
                }
                _ => {}
            }
        }
        report.python.push(PythonRow {
            mechanism: if name == "pipe" { "pipe" } else { "socketpair" },
            size: SIZE,
            gbps: best_rate,
            median_ns: best_median,
        });
    }
    Ok(())
}
