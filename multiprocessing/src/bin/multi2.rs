//! multi2: Python objects through a duplex pipe between a parent and its children.
//!
//! Mirrors `multi2.py` from *Programming Python* (`Pipe`): a first child sends a
//! list `['spam', 42, 'eggs']` and closes its end; the parent prints `parent got:
//! ...`. A second child sends a dict `{'name': 'Bob', 'spam': 42}` and waits for a
//! reply; the parent prints it and answers with the set made of each letter of
//! `'spam'` doubled; the child prints `talker got: ...`; the parent joins it and
//! prints `parent exit`.
//!
//! Usage: multi2 [--show-fds]
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi2
//!     cargo run -p multiprocessing --bin multi2 -- --show-fds  # who holds which end
//!     scripts/trace multi2   # its system calls: socketpair, clone, write, read...
//!
//! Where this differs from the document, on purpose:
//! - the duplex pipe is what Python's `Pipe()` is on Unix: `socketpair(AF_UNIX,
//!   SOCK_STREAM)`, one socket for each side, each readable and writable;
//! - objects travel as JSON lines (`["spam", 42, "eggs"]`), not pickles: readable,
//!   and nothing in them is executed; a set, which JSON lacks, is `{"$set":
//!   [...]}`;
//! - the set prints sorted, `{'aa', 'mm', 'pp', 'ss'}`: Python's order changes from
//!   run to run (string hashes are randomised per process);
//! - a peer that closes before it answers is reported (`connection closed`), where
//!   Python raises `EOFError`; Ctrl-C ends and reaps the children;
//! - `--show-fds` prints, on stderr, each process's descriptor table at each step of
//!   the first conversation (after socketpair, after fork, after the closes).

use lesson_kit::Failure;
use lesson_kit::args::parse_command_line;
use multiprocessing::process::{Side, child_code, run_child, show_fds_option};
use multiprocessing::pyobj::{PyObject, str_obj};
use multiprocessing::{Halt, Team, say, show_fds};
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::unistd::{read, write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;

const PROGRAM: &str = "multi2";

/// The longest message line accepted (a peer sending an endless line must not grow
/// our memory without bound).
const MAX_LINE: usize = 64 * 1024;

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
    let (mut parent_end, child_end) = pipe()?;
    show_fds(show, "parent", "after socketpair");
    let sender = match team.fork()? {
        Side::Child => run_child(|| {
            show_fds(show, "child", "after fork");
            drop(parent_end); // the child uses its own end only
            show_fds(show, "child", "after close(parent's end)");
            child_code(PROGRAM, sender(child_end))
        }),
        Side::Parent(child) => child,
    };
    show_fds(show, "parent", "after fork");
    // Only the child's copy of its end is left open now: when the child closes it,
    // or dies, our next read returns EOF instead of waiting forever.
    drop(child_end);
    show_fds(show, "parent", "after close(child's end)");
    let got = parent_end.recv(|fd| team.wait_readable(fd))?;
    say(&format!("parent got: {}", got.repr()))?;
    drop(parent_end); // parentEnd.close()

    let (mut parent_end, child_end) = pipe()?;
    let talker = match team.fork()? {
        Side::Child => run_child(|| {
            drop(parent_end);
            child_code(PROGRAM, talker(child_end))
        }),
        Side::Parent(child) => child,
    };
    drop(child_end);
    let got = parent_end.recv(|fd| team.wait_readable(fd))?;
    say(&format!("parent got: {}", got.repr()))?;
    let doubled = "spam".chars().map(|c| str_obj(&format!("{c}{c}")));
    parent_end.send(&PyObject::Set(doubled.collect()))?;
    team.join_ok(talker)?;
    drop(parent_end);
    say("parent exit")?;
    // The sender was never joined in the document: Python reaps it at exit; so do
    // we.
    team.join_ok(sender)?;
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: children
/// The first child: sends a list and closes its end.
fn sender(mut end: Connection) -> Result<(), Failure> {
    let list = vec![str_obj("spam"), PyObject::Int(42), str_obj("eggs")];
    end.send(&PyObject::List(list))?;
    drop(end); // pipe.close(): the parent's next read would see EOF
    Ok(())
}

/// The second child: sends a dict, then waits for the reply and prints it.
fn talker(mut end: Connection) -> Result<(), Failure> {
    let dict = vec![
        ("name".to_owned(), str_obj("Bob")),
        ("spam".to_owned(), PyObject::Int(42)),
    ];
    end.send(&PyObject::Dict(dict))?;
    // A child blocks in `read` without watching for signals: Ctrl-C (the default
    // action, restored in every child) or the parent's SIGTERM ends it.
    let reply = end.recv(|_| Ok::<(), Failure>(()))?;
    say(&format!("talker got: {}", reply.repr()))
}
// ANCHOR_END: children

// ANCHOR: pipe
/// Python's `Pipe()`: two connected sockets. Unlike `pipe()`, each end reads and
/// writes.
fn pipe() -> Result<(Connection, Connection), Failure> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|errno| Failure::new("socketpair AF_UNIX SOCK_STREAM", errno))?;
    Ok((Connection::new(a), Connection::new(b)))
}

/// One end of the duplex pipe: whole objects in, whole objects out, one JSON line
/// each.
struct Connection {
    socket: OwnedFd,
    /// Bytes read but not yet part of a whole line.
    pending: Vec<u8>,
}

impl Connection {
    fn new(socket: OwnedFd) -> Connection {
        Connection {
            socket,
            pending: Vec::new(),
        }
    }

    /// `conn.send(obj)`: the object as one line of JSON.
    fn send(&mut self, object: &PyObject) -> Result<(), Failure> {
        let mut line = object.to_json().into_bytes();
        line.push(b'\n');
        let mut rest = &line[..];
        while !rest.is_empty() {
            match write(&self.socket, rest) {
                Ok(n) => rest = &rest[n..],
                Err(Errno::EINTR) => {}
                // EPIPE: the peer closed its end (SIGPIPE is ignored, as Rust sets
                // it).
                Err(errno) => {
                    return Err(Failure::new("send (write socket)", errno));
                }
            }
        }
        Ok(())
    }

    /// `conn.recv()`: the next whole line, parsed. `wait` is called before each
    /// read, with the socket: the parent waits there for the socket or a stop
    /// signal.
    fn recv<E: From<Failure>>(
        &mut self,
        wait: impl Fn(BorrowedFd<'_>) -> Result<(), E>,
    ) -> Result<PyObject, E> {
        loop {
            if let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return Ok(parse_line(&line[..end])?);
            }
            if self.pending.len() > MAX_LINE {
                let why = format!("a line longer than {MAX_LINE} bytes");
                return Err(Failure::new("recv", why).into());
            }
            wait(self.socket.as_fd())?;
            let mut chunk = [0u8; 4096];
            match read(&self.socket, &mut chunk) {
                Ok(0) => {
                    let why =
                        "connection closed by the peer before a whole message";
                    return Err(Failure::new("recv", why).into());
                }
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(Failure::new("recv (read socket)", errno).into());
                }
            }
        }
    }
}
// ANCHOR_END: pipe

fn parse_line(line: &[u8]) -> Result<PyObject, Failure> {
    let text = std::str::from_utf8(line)
        .map_err(|err| Failure::new("recv: message is not UTF-8", err))?;
    PyObject::from_json(text).map_err(|err| Failure::new("recv: bad message", err))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--show-fds]

A parent and two forked children exchange a list, a dict and a set through duplex
pipes (socketpair), one JSON line per object (Programming Python's multi2.py).

Options:
  --show-fds   print each process's descriptor table (stderr) at each step of the
               first conversation: after socketpair, after fork, after the closes
  -h, --help   print this help

Exit status: 0 both children exited 0; 1 a system call failed, a message was bad
or a child ended badly; 2 bad command line; 128+n stopped by signal n (SIGINT,
SIGTERM, SIGHUP), children ended and reaped.
"
    )
}
