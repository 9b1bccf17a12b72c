//! 2-setenv: a parent's environment is copied into the programs it starts, and only
//! there.
//!
//! Mirrors `setenv.py` (*Programming Python*): prints `setenv... <USER>`, then
//! changes `USER` and runs `echoenv` (here `2-echoenv`) three times, twice letting
//! it print to the terminal (`os.system`) and once reading what it prints
//! (`os.popen`): each run prints `echoenv... Hello, <the new USER>`. The shell that
//! started `setenv` sees no change.
//!
//! Three ways to give a child an environment, side by side:
//! 1. `std::env::set_var` (C's `setenv`) changes *this* process's environment,
//!    which a child made by `fork` + `execv` inherits, as `os.environ[...] = ...`
//!    does in Python;
//! 2. `Command::env` changes only the child's copy, and leaves ours alone;
//! 3. `Command::env_clear` starts the child with nothing at all.
//!
//! Usage: 2-setenv [NAME1 [NAME2 [NAME3]]]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 2-setenv
//!     cargo run -p simple-ipc --bin 2-setenv -- Brian Arthur Gumby; echo "$USER"
//!
//! Where this differs from the document, on purpose: no shell runs between the two
//! programs (`os.system` runs `sh -c`; here the child is exec'd directly); the
//! third name is an argument instead of a line typed at a `?` prompt; a missing
//! `USER` is reported, not a `KeyError`; the `env_clear` run is added.

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, note};
use nix::unistd::{ForkResult, fork};
use simple_ipc::{
    Ended, Exec, Outcome, Stop, child_ok, lesson_main, read_all, reap, sibling,
    spawn_failed,
};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

const PROGRAM: &str = "2-setenv";
const ECHOENV: &str = "2-echoenv";

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, run)
}

// ANCHOR: run
fn run([first, second, third]: &[String; 3]) -> Outcome {
    let stop = Stop::install()?;
    let echoenv = sibling(ECHOENV)?;
    let mut out = io::stdout();
    // var_os: a missing USER is an ordinary case, not a crash (Python: KeyError).
    let user = std::env::var_os("USER");
    match &user {
        Some(user) => out
            .write_all(b"setenv... ")
            .and_then(|()| out.write_all(user.as_bytes()))
            .and_then(|()| out.write_all(b"\n")),
        None => writeln!(out, "setenv... (USER is not set)"),
    }
    .context("write stdout")?;

    // ANCHOR: set_var
    note!("[1] set_var(USER={first}) in this process, then fork + execv {ECHOENV}");
    // SAFETY: set_var is unsafe since Rust 2024 because the C environment is a
    // global that no lock protects: a thread reading it (getenv, in a library)
    // while another changes it is undefined behaviour. This process has one thread,
    // so nobody else can be reading it now.
    unsafe { std::env::set_var("USER", first) };
    fork_exec_wait(&echoenv, &stop)?; // the child inherits our (new) environment
    // ANCHOR_END: set_var

    // ANCHOR: command_env
    note!(
        "[2] Command::env(USER={second}): the child's copy only; ours stays {first}"
    );
    let child = Command::new(&echoenv)
        .env("USER", second)
        .spawn()
        .map_err(|err| spawn_failed(&echoenv, err))?;
    // Waited for by pid, with Ctrl-C watched (Command::status() blocks in waitpid).
    child_ok(ECHOENV, reap(pid_of(&child), &stop)?)?;
    // ANCHOR_END: command_env

    // ANCHOR: popen
    note!(
        "[3] Command::env(USER={third}), its stdout a pipe: os.popen(...).read()"
    );
    let mut child = Command::new(&echoenv)
        .env("USER", third)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|err| spawn_failed(&echoenv, err))?;
    let from_child = child.stdout.take().expect("stdout was piped");
    let read = read_all(from_child.as_fd(), &stop, "read pipe from 2-echoenv");
    drop(from_child); // our read end: done with it, whatever happened
    let status = reap(pid_of(&child), &stop)?;
    let text = read?;
    child_ok(ECHOENV, status)?;
    // print(os.popen(...).read()): the text ends with a newline; print adds one.
    out.write_all(&text)
        .and_then(|()| out.write_all(b"\n"))
        .context("write stdout")?;
    // ANCHOR_END: popen

    // ANCHOR: env_clear
    note!("[4] Command::env_clear(): the child starts with no environment at all");
    let child = Command::new(&echoenv)
        .env_clear()
        .spawn()
        .map_err(|err| spawn_failed(&echoenv, err))?;
    child_ok(ECHOENV, reap(pid_of(&child), &stop)?)?;
    // ANCHOR_END: env_clear

    note!(
        "{PROGRAM}: our USER is now {first}; our shell's is unchanged\n  (a child \
         cannot change its parent's environment)"
    );
    out.flush().context("write stdout")?;
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: fork_exec
/// `os.system` without the shell: fork, exec the program in the child, wait for it.
fn fork_exec_wait(program: &Path, stop: &Stop) -> Result<(), Ended> {
    // argv and the error messages are built before fork: the child must not
    // allocate.
    let exec = Exec::new(program, [ECHOENV.as_bytes().to_vec()])?;
    io::stdout().flush().context("flush stdout")?; // or the child prints it too
    // SAFETY: single-threaded process (Stop::install starts no thread); the child
    // only resets its signals, execs, or writes a fixed message and _exits
    // (Exec::exec_in_child).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => exec.exec_in_child(), // never returns
        ForkResult::Parent { child } => child_ok(ECHOENV, reap(child, stop)?),
    }
}
// ANCHOR_END: fork_exec

fn pid_of(child: &std::process::Child) -> nix::unistd::Pid {
    // A pid always fits in pid_t; std hands it out as u32.
    nix::unistd::Pid::from_raw(child.id() as libc::pid_t)
}

fn parse_options() -> Result<Option<[String; 3]>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut names = ["Ada".to_owned(), "Grace".to_owned(), "Linus".to_owned()];
    let mut given = 0;
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "-h" | "--help" if !parser.options_ended() => return Ok(None),
            _ if arg.starts_with('-') && !parser.options_ended() => {
                return Err(parser.unexpected(&arg));
            }
            _ if given == names.len() => return Err(parser.unexpected(&arg)),
            _ => {
                names[given] = arg;
                given += 1;
            }
        }
    }
    Ok(Some(names))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [NAME1 [NAME2 [NAME3]]]

Prints `setenv... <USER>`, then runs {ECHOENV} (`echoenv... Hello, <USER>`) with
USER=NAME1 set in its own environment (set_var, then fork + exec), with USER=NAME2
given to the child only (Command::env), with USER=NAME3 while reading its output
through a pipe (os.popen), and with an empty environment (Command::env_clear). The
documents' setenv.py and echoenv.py. Names default to Ada, Grace and Linus.

Options:
  -h, --help   print this help

Exit status: 0 done; 1 a system call failed or {ECHOENV} failed; 2 bad command line;
126/127 {ECHOENV} could not be run; 128+n stopped by signal n.
"
    )
}
