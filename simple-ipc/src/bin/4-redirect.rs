//! 4-redirect: the shell's `>`, `<` and `2>&1` are `open` + `dup2` on descriptors
//! 0, 1, 2.
//!
//! Not a program of the documents (seeds 000 and 003 list standard stream
//! redirection among the simple mechanisms). Three steps, each followed by what the
//! file now holds:
//! 1. this process points its own stdout (fd 1) at a file with `dup2`, writes a
//!    line, and points it back at the terminal with the copy it saved with `dup`;
//! 2. the shell's `4-upcase < in.txt > out.txt 2>&1`, spelled as system calls in a
//!    forked child: `open` + `dup2` onto fd 0, `open` + `dup2` onto fd 1, `dup2(1,
//!    2)`, `execv`;
//! 3. the same with `Command` and `Stdio`, the way a Rust program usually says it.
//!
//! The files live in a fresh temporary directory, removed on every exit path.
//! `--show-fds` prints the descriptor tables at each step (on stderr): ours around
//! the `dup2`s of step 1, the child's after each redirection of step 2, and
//! `4-upcase`'s as `exec` left it.
//!
//! Usage: 4-redirect [--out PATH] [--show-fds]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 4-redirect
//!     cargo run -p simple-ipc --bin 4-redirect -- --show-fds
//!     cargo run -p simple-ipc --bin 4-redirect -- --out /dev/full  # write fails

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, Failure, exit, note};
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::unistd::{
    ForkResult, dup, dup2_stderr, dup2_stdin, dup2_stdout, fork, write,
};
use simple_ipc::{
    Ended, Exec, Outcome, Scratch, Stop, child_ok, die, lesson_main, reap,
    show_fds, show_fds_from_now, showing_fds, sibling, spawn_failed,
};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const PROGRAM: &str = "4-redirect";
const UPCASE: &str = "4-upcase";

struct Options {
    /// Where the redirected output goes; `None`: `out.txt` in the temporary dir.
    out: Option<PathBuf>,
    /// `--show-fds`: print the descriptor tables at each step.
    show_fds: bool,
}

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, run)
}

// ANCHOR: run
fn run(options: &Options) -> Outcome {
    show_fds_from_now(options.show_fds);
    let stop = Stop::install()?;
    let upcase = sibling(UPCASE)?;
    let scratch = Scratch::new(PROGRAM)?; // removed on every path out of `run`
    let out = options
        .out
        .clone()
        .unwrap_or_else(|| scratch.join("out.txt"));
    let input = scratch.join("in.txt");
    std::fs::write(&input, "hello from in.txt\nsecond line\n")
        .context(format!("write {}", input.display()))?;

    note!(
        "[1] dup + dup2: our own stdout into {}, then back",
        name(&out)
    );
    redirect_own_stdout(&out)?;
    show(&out)?;

    note!("[2] {UPCASE} < in.txt > out.txt 2>&1, as system calls in a child");
    shell_style(&upcase, &input, &out, &stop)?;
    show(&out)?;

    note!("[3] the same with Command and Stdio, and new lines in in.txt");
    std::fs::write(&input, "hello again, from Command\n")
        .context(format!("write {}", input.display()))?;
    with_command(&upcase, &input, &out, &stop)?;
    show(&out)?;
    drop(scratch); // in.txt, out.txt and their directory are gone
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: own_stdout
/// Points fd 1 at `path`, writes a line through `stdout`, and points fd 1 back.
fn redirect_own_stdout(path: &Path) -> Result<(), Failure> {
    let stdout = io::stdout();
    // Whatever is still buffered belongs to the terminal: send it there first.
    stdout.lock().flush().context("flush stdout")?;
    let saved = dup(&stdout).context("dup stdout")?; // another name for the tty
    let file = File::create(path).context(format!("create {}", path.display()))?;
    show_fds("parent", "after dup(1) and open");
    dup2_stdout(&file).context("dup2 file onto stdout")?; // fd 1 now names the file
    show_fds("parent", "after dup2 onto fd 1");
    drop(file); // its own descriptor is not needed: fd 1 keeps the file open
    show_fds("parent", "after close(file)");
    // write(2) on fd 1 itself. Rust's Stdout has a buffer, emptied into whatever
    // fd 1 names at the moment it is flushed: text left in it (after a failed
    // write, say) would reach the terminal later. A raw write leaves nothing.
    // (Longer than what step 2 writes: without O_TRUNC there, a tail would remain.)
    let line = format!(
        "this process wrote to fd 1 while fd 1 was {} (not the terminal)\n",
        name(path)
    );
    let wrote = match write(&stdout, line.as_bytes()) {
        Ok(n) if n == line.len() => Ok(()),
        Ok(n) => Err(Failure::new("write", format!("only {n} bytes written"))),
        Err(errno) => Err(Failure::new("write", errno)),
    };
    // Back to the terminal *before* reporting anything, whatever the write did.
    dup2_stdout(&saved).context("dup2 saved stdout back onto stdout")?;
    drop(saved); // fd 1 is the terminal again; the spare name can go
    show_fds("parent", "after dup2 back onto fd 1 and close(saved)");
    wrote
        .map_err(|err| Failure::new(format!("{} (as stdout)", path.display()), err))
}
// ANCHOR_END: own_stdout

// ANCHOR: shell_style
/// `upcase < input > out 2>&1`, the way a shell does it: in the child, between
/// `fork` and `exec`, so the parent's own descriptors never move.
fn shell_style(
    upcase: &Path,
    input: &Path,
    out: &Path,
    stop: &Stop,
) -> Result<(), Ended> {
    // Everything the child needs, built before fork (it may not allocate after).
    let mut argv = vec![UPCASE.as_bytes().to_vec()];
    if showing_fds() {
        argv.push(b"--show-fds".to_vec()); // its table after exec
    }
    let exec = Exec::new(upcase, argv)?;
    let input_c = c_path(input)?;
    let out_c = c_path(out)?;
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: single-threaded process (Stop::install starts no thread); the child
    // only opens files, calls dup2, resets its signals, execs or writes a fixed
    // message and _exits: all async-signal-safe. With --show-fds it also reads
    // /proc and allocates (show_fds): sound here, as no other thread can hold a
    // lock of the allocator at the fork.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            show_fds("child", "after fork");
            // < in.txt: open it, and make fd 0 another name for it.
            let Ok(fd) = open(input_c.as_c_str(), OFlag::O_RDONLY, Mode::empty())
            else {
                die(
                    b"4-redirect: child: open the input file failed\n",
                    exit::RUNTIME,
                )
            };
            if dup2_stdin(&fd).is_err() {
                die(
                    b"4-redirect: child: dup2 onto stdin failed\n",
                    exit::RUNTIME,
                );
            }
            drop(fd); // fd 0 is the copy the program will use
            show_fds("child", "after < in.txt (open, dup2 onto fd 0, close)");
            // > out.txt: create or truncate it, and make fd 1 another name for it.
            let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
            let mode = Mode::from_bits_truncate(0o644);
            let Ok(fd) = open(out_c.as_c_str(), flags, mode) else {
                die(
                    b"4-redirect: child: open the output file failed\n",
                    exit::RUNTIME,
                )
            };
            if dup2_stdout(&fd).is_err() {
                die(
                    b"4-redirect: child: dup2 onto stdout failed\n",
                    exit::RUNTIME,
                );
            }
            drop(fd);
            show_fds("child", "after > out.txt (open, dup2 onto fd 1, close)");
            // 2>&1: fd 2 becomes another name for what fd 1 is *now* (the file).
            if dup2_stderr(io::stdout()).is_err() {
                die(
                    b"4-redirect: child: dup2 onto stderr failed\n",
                    exit::RUNTIME,
                );
            }
            // Into out.txt, like everything on fd 2 from now on
            show_fds("child", "after 2>&1 (dup2(1, 2))");
            exec.exec_in_child() // never returns; the program inherits fds 0, 1, 2
        }
        ForkResult::Parent { child } => {
            show_fds("parent", "after fork"); // the same as before: nothing moved
            child_ok(UPCASE, reap(child, stop)?)
        }
    }
}
// ANCHOR_END: shell_style

// ANCHOR: with_command
/// The same redirection, said with `Command`: it does the `dup2`s in its own child.
fn with_command(
    upcase: &Path,
    input: &Path,
    out: &Path,
    stop: &Stop,
) -> Result<(), Ended> {
    let stdin = File::open(input).context(format!("open {}", input.display()))?;
    let stdout = File::create(out).context(format!("create {}", out.display()))?;
    let stderr = stdout.try_clone().context("dup the output file")?; // 2>&1
    show_fds("parent", "after open in.txt, out.txt and try_clone");
    let child = Command::new(upcase)
        .args(showing_fds().then_some("--show-fds"))
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|err| spawn_failed(upcase, err))?;
    // The Command and our copies of the three files are gone: only the child has
    // them now.
    show_fds("parent", "after Command::spawn");
    let pid = nix::unistd::Pid::from_raw(child.id() as libc::pid_t);
    child_ok(UPCASE, reap(pid, stop)?)
}
// ANCHOR_END: with_command

/// Prints what a file holds, line by line, as `  out.txt: <line>`.
fn show(path: &Path) -> Result<(), Failure> {
    let text = std::fs::read(path).context(format!("read {}", path.display()))?;
    let mut out = io::stdout().lock();
    for line in String::from_utf8_lossy(&text).lines() {
        writeln!(out, "  {}: {line}", name(path)).context("write stdout")?;
    }
    out.flush().context("write stdout")
}

/// A path as the output shows it: just `out.txt` for ours, others in full.
fn name(path: &Path) -> String {
    match path.file_name() {
        Some(file) if file == "out.txt" => "out.txt".to_owned(),
        _ => path.display().to_string(),
    }
}

fn c_path(path: &Path) -> Result<CString, Failure> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Failure::new(path.display(), "a path cannot hold a NUL byte"))
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        out: None,
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--out" => {
                options.out = Some(PathBuf::from(parser.value::<String>(&arg)?))
            }
            "--show-fds" => options.show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--out PATH] [--show-fds]

Redirects stdout into a file and back in this process (dup, dup2), then runs
`{UPCASE} < in.txt > out.txt 2>&1` with open + dup2 in a forked child, then the same
with Command and Stdio, printing what out.txt holds after each step. The files are
in a fresh temporary directory, removed at the end.

Options:
  --out PATH   write the redirected output to PATH instead (it is truncated;
               /dev/full shows a write that fails)
  --show-fds   print the descriptor tables on stderr at each step: ours around
               the dup2s, the child's after each redirection (after 2>&1 they
               go into out.txt), and {UPCASE}'s after exec
  -h, --help   print this help

Exit status: 0 done; 1 a system call failed or {UPCASE} failed; 2 bad command line;
126/127 {UPCASE} could not be run; 128+n stopped by signal n.
"
    )
}
