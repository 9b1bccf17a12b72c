//! multi5: five forked children each `exec` another program, and keep their pid.
//!
//! Mirrors `multi5.py` from *Programming Python* (a `Process` whose target calls
//! `os.execlp`): five children each become `child.py <i>`, which prints
//! `Hello from child <pid> <i>`; the parent prints `parent exit`, usually first.
//!
//! Usage: multi5 [--show-fds]
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi5
//!     cargo run -p multiprocessing --bin multi5 -- --show-fds  # what crosses exec
//!
//! Where this differs from the document, on purpose:
//! - the second program is `multi5-child`, a binary of this package found next to
//!   the running `multi5` (`cargo run` builds both): no `python` on PATH needed;
//! - `execv` with that path, not `execlp` searching PATH (PATH search is not
//!   async-signal-safe; this parent is single-threaded, but the habit is worth
//!   having);
//! - a program that cannot be run is reported: the child exits 127 (not found) or
//!   126 (not executable), and so does the parent, after reaping the others;
//! - the parent reaps all five (Python joins them at exit); Ctrl-C ends and reaps
//!   them, and a child whose parent dies ends at once (the parent-death signal
//!   survives exec);
//! - `--show-fds` prints, on stderr, the first child's descriptor table after the
//!   fork and again in `multi5-child` after the exec: the close-on-exec descriptors
//!   are gone, 0, 1 and 2 crossed.

use lesson_kit::args::parse_command_line;
use lesson_kit::{Context, Failure, describe_wait, exit, exited_ok, note};
use multiprocessing::process::show_fds_option;
use multiprocessing::{Halt, Team, say, show_fds};
use nix::errno::Errno;
use nix::sys::wait::WaitStatus;
use nix::unistd::{execv, getpid};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

const PROGRAM: &str = "multi5";

/// The program the children become, next to this one.
const CHILD_PROGRAM: &str = "multi5-child";

fn main() -> ExitCode {
    let show = match parse_command_line(PROGRAM, || show_fds_option(PROGRAM), usage)
    {
        Ok(show) => show,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    // Whatever is still running at the end is stopped and reaped, on every path.
    Team::lead(PROGRAM, |team| run(team, show))
}

// ANCHOR: run
fn run(team: &mut Team, show: bool) -> Result<ExitCode, Halt> {
    let program = child_program()?;
    let mut children = Vec::new();
    for i in 0..5 {
        // Everything exec needs is made before the fork: the child only calls
        // execv. With --show-fds the first child shows its table, and asks the
        // program it becomes to show it again.
        let show = show && i == 0;
        let mut argv = vec![program.clone()];
        if show {
            argv.push(c"--show-fds".to_owned());
        }
        argv.push(number(i));
        let child = team.start(|| {
            show_fds(show, "child", "after fork");
            become_program(&program, &argv)
        })?;
        note!("{PROGRAM}: forked child {child}, which runs {CHILD_PROGRAM} {i}");
        children.push(child);
    }
    say("parent exit")?;

    // Reap all five; remember the worst ending.
    let mut exec_failed = None;
    let mut failure = None;
    for child in children {
        let status = team.join(child)?;
        match status {
            _ if exited_ok(status) => {}
            WaitStatus::Exited(_, code @ (126 | 127)) => {
                exec_failed = Some(code);
            }
            _ => {
                let why = describe_wait(status);
                failure.get_or_insert(Failure::new(format!("child {child}"), why));
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure.into());
    }
    if let Some(code) = exec_failed {
        let name = program.to_string_lossy();
        note!("{PROGRAM}: a child could not run {name} (exit status {code})");
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(exit::RUNTIME)));
    }
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: exec
/// The child: becomes `program` with `argv`. Returns only if exec failed, with the
/// shell's status for it.
fn become_program(program: &CStr, argv: &[CString]) -> u8 {
    // Rust ignores SIGPIPE, and an ignored signal stays ignored across exec: give
    // the new program the default it expects. SAFETY: setting a disposition to
    // SIG_DFL is async-signal-safe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // Replaces this process's program: same pid, same parent, same open descriptors
    // (except those marked close-on-exec), the parent-death signal kept.
    let Err(errno) = execv(program, argv);
    note!(
        "{PROGRAM}: child {}: execv {}: {errno}",
        getpid(),
        program.to_string_lossy()
    );
    match errno {
        Errno::ENOENT | Errno::ENOTDIR => exit::NOT_FOUND,
        _ => exit::NOT_EXECUTABLE,
    }
}
// ANCHOR_END: exec

/// `<directory of this executable>/multi5-child`, as a C string for execv.
fn child_program() -> Result<CString, Failure> {
    let me = std::env::current_exe().context("current_exe")?;
    let path = me.with_file_name(CHILD_PROGRAM);
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Failure::new(path.display(), "a NUL byte in the path"))
}

fn number(i: u32) -> CString {
    // Digits never contain NUL.
    CString::new(i.to_string()).unwrap_or_default()
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--show-fds]

Five forked children each exec {CHILD_PROGRAM} <i> (found next to this program),
which prints `Hello from child <pid> <i>` with the pid the parent forked
(Programming Python's multi5.py).

Options:
  --show-fds   print the first child's descriptor table (stderr) after fork, and
               {CHILD_PROGRAM}'s after exec: what crossed exec
  -h, --help   print this help

Exit status: 0 all five ran and exited 0; 1 a system call failed or a child ended
badly; 2 bad command line; 126/127 a child could not run {CHILD_PROGRAM} (not
executable / not found); 128+n stopped by signal n (SIGINT, SIGTERM, SIGHUP),
children ended and reaped.
"
    )
}
