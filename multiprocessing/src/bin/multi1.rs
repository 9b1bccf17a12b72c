//! multi1: a parent and six forked children print their names one at a time, under
//! a lock that works across processes.
//!
//! Mirrors `multi1.py` from *Programming Python* (`Process` + `Lock`):
//! `whoami(label)` prints `<label>: name:<name>, pid:<pid>` while holding the lock:
//! first as a plain function call in the parent, then in one child the parent joins
//! (`spawned child`), then in five children it does not wait for (`run process 0`
//! .. `4`); the parent says `Main process exit.` under the same lock, so that line
//! may come before some of the children's.
//!
//! Usage: multi1
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi1
//!     cargo run -p multiprocessing --bin multi1 | cat   # into a pipe: the same
//!
//! Where this differs from the document, on purpose:
//! - the lock is a futex word in shared memory (`multiprocessing::lock`), not a
//!   POSIX semaphore; a `std::sync::Mutex` would not do (see there why);
//! - `name:` is the Rust module path (`multi1`), where Python prints its module
//!   name (`__main__` under the fork start method, `__mp_main__` in children under
//!   spawn);
//! - the parent reaps all six children before it exits (Python's `Process` joins
//!   them at exit too), and a Ctrl-C ends and reaps them; a child whose parent dies
//!   ends at once.

use lesson_kit::Failure;
use multiprocessing::lock::Lock;
use multiprocessing::process::main_without_options;
use multiprocessing::process::{child_code, write_stdout};
use multiprocessing::shm::Shared;
use multiprocessing::{Halt, Team, say};
use nix::unistd::getpid;
use std::process::ExitCode;

const PROGRAM: &str = "multi1";

fn main() -> ExitCode {
    // `--help`, or a usage error; else `run`, and then whatever is still running is
    // stopped and reaped, on every path.
    main_without_options(PROGRAM, usage, run)
}

// ANCHOR: run
fn run(team: &mut Team) -> Result<ExitCode, Halt> {
    // The lock must be in memory the children share with us: a lock in ordinary
    // memory would be copied by fork, one private lock per process.
    let lock = Shared::new(Lock::new())?;

    {
        let _held = team.lock(&lock)?; // the parent takes it like anyone else
        whoami("function call")?;
    } // unlocked here

    let child = team.start(|| {
        let _held = lock.lock();
        child_code(PROGRAM, whoami("spawned child"))
    })?;
    team.join_ok(child)?; // p.join()

    for i in 0..5 {
        let label = format!("run process {i}");
        team.start(|| {
            let _held = lock.lock();
            child_code(PROGRAM, whoami(&label))
        })?; // not joined yet: these run alongside the parent
    }

    {
        let _held = team.lock(&lock)?;
        say("Main process exit.")?;
    }
    // Python joins a program's children when it exits; we do it in plain sight.
    team.join_all()?;
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: whoami
/// `<label>: name:<name>, pid:<pid>`, written the way Python's `print` writes it:
/// the text, then the newline, in two writes. Only the lock keeps another process's
/// line from landing between them.
fn whoami(label: &str) -> Result<(), Failure> {
    let text = format!("{label}: name:{}, pid:{}", module_path!(), getpid());
    write_stdout(text.as_bytes())?;
    write_stdout(b"\n")
}
// ANCHOR_END: whoami

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM}

The parent and six forked children print `<label>: name:<name>, pid:<pid>` one
at a time, each holding a lock that lives in shared memory (Programming Python's
multi1.py).

Options:
  -h, --help   print this help

Exit status: 0 every child printed its line and exited 0; 1 a system call failed
or a child ended badly; 2 bad command line; 128+n stopped by signal n (SIGINT,
SIGTERM, SIGHUP), children ended and reaped.
"
    )
}
