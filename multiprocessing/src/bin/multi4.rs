//! multi4: three producer children and a consumer parent, over a queue that is a
//! pipe carrying framed records.
//!
//! Mirrors `multi4.py` from *Programming Python* (a `Process` subclass and a
//! `Queue`): the parent prints `start <pid>` and starts three producers whose state
//! begins at 0, 100 and 1000; each three times sleeps 1 s, adds 1 to its state,
//! prints `  @ <pid> <state>` and puts `[pid, state]` on the queue; at the end it
//! prints `  @ <pid> -`. The parent looks at the queue without blocking every
//! 0.5 s, printing `no data...` or `posted: [pid, state]`, until it has all nine
//! records; it joins the producers and prints `finish <pid> <exitcode>` (the last
//! producer's exit code).
//!
//! Usage: multi4 [--count N] [--speed X] [--blocking] [--show-fds]
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi4
//!     cargo run -p multiprocessing --bin multi4 -- --speed 10 --count 5
//!     cargo run -p multiprocessing --bin multi4 -- --blocking  # no polling
//!     cargo run -p multiprocessing --bin multi4 -- --speed 10 --count 1 --show-fds
//!
//! Where this differs from the document, on purpose:
//! - the queue is a pipe; each record is one `write` of a 4-byte length and the
//!   text `[pid, state]`, shorter than PIPE_BUF, so records from three writers
//!   never mix (as Python's queue does: a pipe, length-prefixed pickles, and a
//!   feeder thread);
//! - `--blocking` waits for the next record instead of polling: no `no data...`
//!   lines;
//! - the parent closes its copy of the write end, so if every producer dies before
//!   sending all records the parent sees EOF and says so (the original polls
//!   forever); each producer closes its copy of the read end, so a put after the
//!   consumer is gone fails (EPIPE) instead of waiting on a full pipe;
//! - `--show-fds` prints, on stderr, each process's descriptor table at each step
//!   (after pipe2, after fork, after the closes);
//! - Ctrl-C ends and reaps the producers; a producer whose parent dies ends at
//!   once.

use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pace::{PACING_HELP, Pacing};
use lesson_kit::{Context, Failure};
use multiprocessing::process::{Side, child_code, run_child};
use multiprocessing::{Halt, Team, say, show_fds};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::unistd::{Pid, getpid, pipe2, read, write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

const PROGRAM: &str = "multi4";

/// The producers' starting states, from the document.
const STARTS: [i64; 3] = [0, 100, 1000];

/// The document's three records per producer.
const RECORDS: u64 = 3;

/// The producers' pause before each record, and the consumer's between two looks.
const PRODUCER_PAUSE: Duration = Duration::from_secs(1);
const CONSUMER_PAUSE: Duration = Duration::from_millis(500);

/// PIPE_BUF on Linux: a `write` of at most this many bytes to a pipe is atomic.
const PIPE_BUF: usize = 4096;

struct Options {
    pacing: Pacing,
    blocking: bool,
    /// `--show-fds`: print the descriptor table at each step.
    show_fds: bool,
}

fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    // Whatever is still running at the end is stopped and reaped, on every path.
    Team::lead(PROGRAM, |team| run(team, &options))
}

// ANCHOR: run
fn run(team: &mut Team, options: &Options) -> Result<ExitCode, Halt> {
    let show = options.show_fds;
    say(&format!("start {}", getpid()))?;
    let (queue, put_end) = queue()?;
    show_fds(show, "parent", "after pipe2");
    let records = options.pacing.count.unwrap_or(RECORDS);
    for start in STARTS {
        match team.fork()? {
            Side::Child => run_child(|| {
                show_fds(show, "producer", "after fork");
                // A producer only writes. Without a read end of its own, a put
                // after the consumer is gone fails (EPIPE) instead of waiting.
                drop(queue);
                show_fds(show, "producer", "after close(read end)");
                let pacing = &options.pacing;
                child_code(PROGRAM, produce(start, records, &put_end, pacing))
            }),
            Side::Parent(_) => {}
        }
    }
    show_fds(show, "parent", "after 3 forks");
    // The producers hold the write end now. Closing ours means EOF once they are
    // all gone, so a producer that dies early cannot leave us waiting for ever.
    drop(put_end);
    show_fds(show, "parent", "after close(write end)");

    let mut expected = records * STARTS.len() as u64;
    while expected > 0 {
        let record = if options.blocking {
            team.wait_readable(queue.as_fd())?; // sleeps until a record (or Ctrl-C)
            queue.get()?
        } else {
            team.sleep(options.pacing.scaled(CONSUMER_PAUSE))?;
            queue.get()? // never blocks: the read end is O_NONBLOCK
        };
        match record {
            Got::Record(pid, state) => {
                say(&format!("posted: [{pid}, {state}]"))?;
                expected -= 1;
            }
            Got::Empty => say("no data...")?,
            Got::Closed => {
                let why =
                    format!("every producer is gone, {expected} records missing");
                return Err(Failure::new("queue", why).into());
            }
        }
    }
    drop(queue); // the consumer is done: a late put would get EPIPE

    // Reaps the three, and fails if one did not exit 0; so the exit code the
    // document prints (the last producer's, `r.exitcode`) is 0 here.
    team.join_all()?;
    say(&format!("finish {} 0", getpid()))?;
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

// ANCHOR: produce
/// A producer's `run()`: sleep, count, print, put; then the end mark.
fn produce(
    mut state: i64,
    records: u64,
    queue: &PutEnd,
    pacing: &Pacing,
) -> Result<(), Failure> {
    let me = getpid();
    for _ in 0..records {
        // A plain sleep: SIGTERM or SIGINT (default actions) end it if need be.
        sleep(pacing.scaled(PRODUCER_PAUSE));
        state += 1;
        say(&format!("  @ {me} {state}"))?;
        queue.put(me, state)?;
    }
    say(&format!("  @ {me} -"))
}
// ANCHOR_END: produce

// ANCHOR: queue
/// Python's `multiprocessing.Queue`, reduced to its core: a pipe and framed
/// records. This is the consumer's side, the read end.
struct Queue {
    read_end: OwnedFd,
}

/// The producers' side of the queue: the write end.
struct PutEnd {
    write_end: OwnedFd,
}

/// A new queue: its read end (non-blocking) and its write end.
fn queue() -> Result<(Queue, PutEnd), Failure> {
    let (read_end, write_end) = pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // Non-blocking reads: an empty queue is EAGAIN, not a wait. (Only the read
    // end: a producer's `put` may wait while the pipe is full.)
    fcntl(&read_end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).context("O_NONBLOCK")?;
    Ok((Queue { read_end }, PutEnd { write_end }))
}

/// What one look at the queue found.
enum Got {
    Record(Pid, i64),
    /// Nothing there yet (`queue.Empty`).
    Empty,
    /// Nothing there and never will be: every write end is closed.
    Closed,
}

impl PutEnd {
    /// `queue.put([pid, state])`: one `write` of the whole frame. At most PIPE_BUF
    /// bytes, so it is atomic: frames from several producers never interleave.
    fn put(&self, pid: Pid, state: i64) -> Result<(), Failure> {
        let payload = format!("[{pid}, {state}]");
        let length = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        // 4 bytes, big-endian, as Python's multiprocessing.connection frames.
        let mut frame = length.to_be_bytes().to_vec();
        frame.extend_from_slice(payload.as_bytes());
        debug_assert!(frame.len() <= PIPE_BUF);
        match write(&self.write_end, &frame) {
            Ok(n) if n == frame.len() => Ok(()),
            Ok(n) => Err(Failure::new(
                "queue put",
                format!("short write of {n} bytes"),
            )),
            // EPIPE: the consumer is gone (SIGPIPE is ignored, as Rust sets it).
            Err(errno) => Err(Failure::new("queue put (write pipe)", errno)),
        }
    }
}

impl Queue {
    /// `queue.get(block=False)`: one frame if there is one. Because every frame
    /// went in with a single atomic write, a frame whose header is there is there
    /// whole.
    fn get(&self) -> Result<Got, Failure> {
        let mut header = [0u8; 4];
        match read(&self.read_end, &mut header) {
            Ok(0) => return Ok(Got::Closed),
            Ok(4) => {}
            Ok(n) => {
                return Err(Failure::new(
                    "queue get",
                    format!("torn header ({n} bytes)"),
                ));
            }
            Err(Errno::EAGAIN) => return Ok(Got::Empty),
            Err(errno) => return Err(Failure::new("queue get (read pipe)", errno)),
        }
        let length = u32::from_be_bytes(header) as usize;
        let mut payload = vec![0u8; length.min(PIPE_BUF)];
        let n =
            read(&self.read_end, &mut payload).context("queue get (read pipe)")?;
        parse_record(&payload[..n])
            .map(|(pid, state)| Got::Record(pid, state))
            .ok_or_else(|| {
                let text = String::from_utf8_lossy(&payload[..n]);
                Failure::new(
                    "queue get",
                    format!("bad record {text:?} ({length} bytes)"),
                )
            })
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.read_end.as_fd()
    }
}

/// `[pid, state]` back into numbers.
fn parse_record(payload: &[u8]) -> Option<(Pid, i64)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (pid, state) = text
        .strip_prefix('[')?
        .strip_suffix(']')?
        .split_once(", ")?;
    Some((Pid::from_raw(pid.parse().ok()?), state.parse().ok()?))
}
// ANCHOR_END: queue

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        pacing: Pacing::default(),
        blocking: false,
        show_fds: false,
    };
    while let Some(arg) = parser.next()? {
        if arg == "--count" {
            // Each producer's records: bounded, so the queue's records fit in the
            // pipe.
            options.pacing.count = Some(parser.value_in(&arg, 1..=1000)?);
            continue;
        }
        if options.pacing.accept(&arg, &mut parser)? {
            continue;
        }
        match arg.as_str() {
            "--blocking" => options.blocking = true,
            "--show-fds" => options.show_fds = true,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    // The shared help's --speed lines; --count means something else here.
    let speed: Vec<&str> = PACING_HELP
        .lines()
        .skip_while(|line| !line.starts_with("  --speed"))
        .collect();
    let speed = speed.join("\n");
    format!(
        "\
Usage: {PROGRAM} [--count N] [--speed X] [--blocking] [--show-fds]

Three forked producers put [pid, state] records on a queue (a pipe with framed
records); the parent polls it every 0.5 s until it has them all (Programming
Python's multi4.py).

Options:
  --count N    records per producer, 1 to 1000 (default 3, like the document)
{speed}
  --blocking   wait for each record instead of polling (no `no data...` lines)
  --show-fds   print each process's descriptor table (stderr) at each step: after
               pipe2, after fork, after the closes
  -h, --help   print this help

Exit status: 0 every record arrived and every producer exited 0; 1 a system call
failed, a producer ended badly or records went missing; 2 bad command line; 128+n
stopped by signal n (SIGINT, SIGTERM, SIGHUP), producers ended and reaped.
"
    )
}
