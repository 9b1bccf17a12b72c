//! socketpair-demo: one socketpair between a parent and a forked child, talking
//! both ways.
//!
//! The two-way replacement for bidir-spawn's two pipes: `socketpair()` gives two
//! connected Unix-domain sockets; after `fork` each process keeps one, and each end
//! both reads and writes. The parent sends `Hello <i> from parent <pid>` lines,
//! then shuts down its sending side (`shutdown(Write)`): the child reads EOF, yet
//! can still answer on the same socket, and the parent still reads the answers. A
//! pipe cannot do that: closing a pipe end is all or nothing, so a conversation
//! needs two pipes.
//!
//! The child says on stderr what each `read` returned: a socket is a byte stream,
//! like a pipe, and a read may hold part of a message or several (`--read-size`
//! makes it small).
//!
//! Usage: socketpair-demo [--messages N] [--read-size N] [--pause SECS]
//!                        [--close-instead] [--show-fds]
//!
//! Try it:
//!     cargo run -p sockets --bin socketpair-demo
//!     cargo run -p sockets --bin socketpair-demo -- --messages 3 --read-size 10
//!     cargo run -p sockets --bin socketpair-demo -- --pause 30   # then: ss -xp
//!     cargo run -p sockets --bin socketpair-demo -- --close-instead  # wrong
//!     cargo run -p sockets --bin socketpair-demo -- --messages 1 --show-fds
//!
//! Not in the documents (they show pipes and TCP sockets); it answers the question
//! their two-pipe program (pipes.py) raises.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pyfmt::bytes_repr;
use lesson_kit::{Context, Failure, describe_wait, exit, exited_ok, note};
use nix::poll::PollFlags;
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use sockets::{
    Fault, Stream, fds_snapshot, read_line, show_fds, stop_on_signals,
    stopped_exit, wait_ready,
};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PROGRAM: &str = "socketpair-demo";

/// How long the whole conversation may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How long the child has to exit after the conversation, and after SIGTERM.
const GRACE: Duration = Duration::from_millis(500);

struct Options {
    messages: u32,
    read_size: usize,
    close_instead: bool,
    /// How long the parent waits before it says "no more".
    pause: Duration,
    show_fds: bool,
}

// ANCHOR: main
fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    sockets::exit_with(PROGRAM, run(&options))
}

fn run(options: &Options) -> Result<ExitCode, Failure> {
    stop_on_signals()?; // flags only: this process still has a single thread
    sockets::show_fds_from_now(options.show_fds);

    // ANCHOR: socketpair
    // Two connected sockets, in one call; close-on-exec like every descriptor we
    // make, and non-blocking: every wait is a `poll` with a bound, watching Ctrl-C
    // and the clock. (Set here, before the fork, and not by each process later:
    // O_NONBLOCK belongs to the open socket, which both processes share until
    // each closes its copy of the other's end.)
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .context("socketpair")?;
    // ANCHOR_END: socketpair
    show_fds("parent", "after socketpair");

    // Flush first, or the child could print our buffered output again.
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: in the child of a multi-threaded process only async-signal-safe calls
    // are sound, because another thread may have held a lock (the allocator's,
    // stdout's) at the moment of the fork. This process has one thread
    // (stop_on_signals registers handlers and starts none), so the child is a whole
    // copy and may run Rust code; it ends with _exit, never by returning into main.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            // --show-fds: the child takes its tables now and prints them once the
            // parent's first line is here, so they come after the parent's own
            // (printed before that line is sent), in the same order on every run.
            let mut tables = fds_snapshot("child", "after fork");
            drop(parent_end); // the parent's end is not ours: keep only our own
            tables += &fds_snapshot("child", "after close(parent's end)");
            let code = child(UnixStream::from(child_end), options, &tables);
            let _ = io::stdout().flush();
            // SAFETY: _exit ends this process at once, skipping the parent's atexit
            // handlers and buffers, which belong to the parent.
            unsafe { libc::_exit(i32::from(code)) }
        }
        ForkResult::Parent { child } => child,
    };
    show_fds("parent", "after fork");
    // Our copy of the child's end must go: otherwise we would never read EOF when
    // the child exits, since one end of the pair would still be open, here.
    drop(child_end);
    show_fds("parent", "after close(child's end)");
    note!("Parent {} forked child {child}", getpid());

    let talked = talk(UnixStream::from(parent_end), options);
    show_fds("parent", "after the talk (its end closed)");
    let status = end_child(child, talked.is_err())?;
    // ANCHOR_END: main
    note!(
        "Parent {}: child {child} {}",
        getpid(),
        describe_wait(status)
    );
    let code = match talked {
        Err(Fault::Stopped) => return Ok(stopped_exit(PROGRAM, "while talking")),
        Err(Fault::TimedOut(what)) => {
            // Both sides writing, neither reading: the buffers are full both ways.
            note!(
                "{PROGRAM}: {what}: a deadlock? (see the flush-deadlock chapter)"
            );
            exit::TIMEOUT
        }
        Err(fault) => {
            note!("{PROGRAM}: {fault}");
            exit::RUNTIME
        }
        // (With --close-instead the child's goodbye always fails: never exit 0.)
        Ok(()) if exited_ok(status) => exit::OK,
        Ok(()) => exit::RUNTIME,
    };
    Ok(ExitCode::from(code))
}

// ANCHOR: talk
/// The parent: send every message, shut down the sending side, read the answers.
fn talk(socket: UnixStream, options: &Options) -> Result<(), Fault> {
    let deadline = Instant::now() + TIMEOUT + options.pause;
    let mut socket = Stream::Unix(socket);
    let me = getpid();
    for i in 1..=options.messages {
        let hello = format!("Hello {i} from parent {me}\n");
        sockets::write_all(&mut socket, hello.as_bytes(), deadline, &"child")?;
    }
    // --pause: time to look (`ss -xp`); the child has answered and waits for more.
    sockets::sleep_unless_stopped(options.pause)?;
    if options.close_instead {
        // DELIBERATELY WRONG (--close-instead): what a pipe end allows. Closing
        // says "no more data" too, but in both directions: the answers have nowhere
        // to go.
        drop(socket);
        note!("Parent {me} closed its socket: the answers cannot reach it now");
        return Ok(());
    }
    // ANCHOR: shutdown
    // Half-close: "I have nothing more to send". The child's read returns EOF; the
    // other direction stays open, on the same socket, for the child's answers.
    let Stream::Unix(unix) = &socket else {
        unreachable!("a Unix socket")
    };
    unix.shutdown(Shutdown::Write).context("shutdown(Write)")?;
    // ANCHOR_END: shutdown
    let mut pending = Vec::new();
    let mut stdout = io::stdout().lock();
    while let Some(answer) =
        read_line(&mut socket, &mut pending, deadline, &"child")?
    {
        let answer = String::from_utf8_lossy(&answer);
        writeln!(stdout, "Parent got: \"{answer}\"").context("write stdout")?;
    }
    Ok(()) // EOF: the child has closed its end (it exited)
}
// ANCHOR_END: talk

// ANCHOR: end_child
/// Reaps the child on every path: it should exit by itself right after its last
/// answer; if it does not (or the talk failed), SIGTERM, a short grace, then
/// SIGKILL.
fn end_child(child: Pid, failed: bool) -> Result<WaitStatus, Failure> {
    let waited = if failed {
        None
    } else {
        wait_within(child, GRACE)?
    };
    if let Some(status) = waited {
        return Ok(status);
    }
    note!("Parent: ending child {child} (SIGTERM, then SIGKILL after {GRACE:?})");
    let _ = kill(child, Signal::SIGTERM); // it may have exited meanwhile
    if let Some(status) = wait_within(child, GRACE)? {
        return Ok(status);
    }
    let _ = kill(child, Signal::SIGKILL);
    waitpid(child, None).context(format!("waitpid child {child}"))
}

fn wait_within(child: Pid, limit: Duration) -> Result<Option<WaitStatus>, Failure> {
    let end = Instant::now() + limit;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG))
            .context(format!("waitpid child {child}"))?
        {
            WaitStatus::StillAlive if Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(5))
            }
            WaitStatus::StillAlive => return Ok(None),
            status => return Ok(Some(status)),
        }
    }
}
// ANCHOR_END: end_child

// ANCHOR: child
/// The child: read what comes, `read_size` bytes at most per read, answer each
/// whole line, and at EOF say goodbye, on the same socket. Returns the exit status.
fn child(socket: UnixStream, options: &Options, tables: &str) -> u8 {
    let me = getpid();
    let parent = getppid();
    // The parent may pause before it says "no more": wait as long as it may.
    let deadline = Instant::now() + TIMEOUT + options.pause;
    if !tables.is_empty() {
        // (A stop or a time-out here is met again, and reported, just below.)
        let _ = wait_ready(socket.as_fd(), PollFlags::POLLIN, deadline, &"parent");
        let _ = io::stderr().write_all(tables.as_bytes());
    }
    match serve_parent(socket, options.read_size, deadline, (me, parent)) {
        Ok(()) => exit::OK,
        Err(Fault::Stopped) => {
            let signal = sockets::stop_signal().unwrap_or(libc::SIGTERM);
            u8::try_from(128 + signal).unwrap_or(exit::RUNTIME)
        }
        Err(fault) => {
            note!("Child {me}: {fault}");
            exit::RUNTIME
        }
    }
}

fn serve_parent(
    socket: UnixStream,
    read_size: usize,
    deadline: Instant,
    (me, parent): (Pid, Pid),
) -> Result<(), Fault> {
    let mut socket = Stream::Unix(socket);
    let mut chunk = vec![0u8; read_size];
    let mut pending = Vec::new();
    loop {
        // Wait until there is something to read (bytes or EOF), then read it.
        wait_ready(socket.fd(), PollFlags::POLLIN, deadline, &"parent")?;
        let n = match socket.read(&mut chunk) {
            Ok(n) => n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => continue, // not yet
            Err(err) => return Err(Failure::new("read parent", err).into()),
        };
        if n == 0 {
            break; // EOF: the parent shut down its sending side (or closed it)
        }
        note!("Child {me} read {n} bytes: {}", bytes_repr(&chunk[..n]));
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]);
            let answer = format!("Child {me} got: [{text}]\n");
            sockets::write_all(&mut socket, answer.as_bytes(), deadline, &"parent")
                .map_err(name_write)?;
        }
    }
    let bye = format!("Child {me} of {parent} saw EOF; goodbye\n");
    sockets::write_all(&mut socket, bye.as_bytes(), deadline, &"parent")
        .map_err(name_write)?;
    drop(socket); // the parent reads EOF after our goodbye
    Ok(())
}
// ANCHOR_END: child

fn name_write(fault: Fault) -> Fault {
    match fault {
        Fault::Failed(failure) => Fault::Failed(Failure::new("answer", failure)),
        other => other,
    }
}

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        messages: 2,
        read_size: 4096,
        close_instead: false,
        pause: Duration::ZERO,
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            // The parent sends everything before it reads: more messages would fill
            // the buffers both ways, and both sides would wait for each other.
            "--messages" => options.messages = parser.value_in(&arg, 1..=100)?,
            "--read-size" => {
                options.read_size = parser.value_in(&arg, 1..=65536)?
            }
            "--close-instead" => options.close_instead = true,
            "--show-fds" => options.show_fds = true,
            "--pause" => {
                let secs: f64 = parser.value_in(&arg, 0.0..=3600.0)?;
                options.pause = Duration::from_secs_f64(secs);
            }
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--messages N] [--read-size N] [--pause SECS] [--close-instead]
                       [--show-fds]

A parent and its forked child talk both ways over one socketpair: the parent sends
`Hello <i> from parent <pid>` lines and shuts down its sending side; the child
answers each line, sees EOF, says goodbye on the same socket, and exits.

Options:
  --messages N     how many lines the parent sends, 1 to 100 (default 2)
  --read-size N    the most the child reads at once, 1 to 65536 bytes (default 4096)
  --pause SECS     wait SECS, 0 to 3600, before saying \"no more\" (time to look at
                   the sockets with `ss -xp`; the child waits meanwhile)
  --close-instead  DELIBERATELY WRONG: the parent closes its socket instead of
                   shutting down its sending side; the child's answers fail
  --show-fds       print each process's descriptor table (on stderr) after
                   socketpair, after fork, and after each closes the other's end
  -h, --help       print this help

Output: `Parent got: \"Child <pid> got: [Hello 1 from parent <pid>]\"` on
stdout; the child's reads (`Child <pid> read 27 bytes: b'...'`) and notes on stderr.
Ctrl-C, SIGTERM or SIGHUP stop it cleanly; the child is always reaped.
Exit status: 0 the conversation completed; 1 a system call failed, the child failed,
or --close-instead; 2 bad command line; 3 no progress within 10 s; 129 / 130 / 143
stopped by SIGHUP / SIGINT / SIGTERM (128 + signal).
"
    )
}
