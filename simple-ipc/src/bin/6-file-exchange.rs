//! 6-file-exchange: two processes pass data through a file, and why it tears.
//!
//! Not a program of the documents (seeds 000 and 003 list simple files first among
//! the simple mechanisms). A forked writer puts records into `data.txt`, one after
//! the other; the parent reads the file as often as it can and checks each read: a
//! whole record, or a torn one (the reader caught the writer half-way). Two
//! writers, one after the other:
//! 1. in place: `File::create` (which truncates) and `write`: a reader can see an
//!    empty file, or the first half of a record;
//! 2. write to `data.txt.tmp`, then `rename` it to `data.txt`: `rename` replaces
//!    the name in one step, so a reader opens either the old file or the new one,
//!    each whole.
//!
//! The writer pauses half-way through each record (`--pause`), as a slow disk or a
//! big record would, so that the race shows in a short run. Everything is in a
//! fresh temporary directory, removed on every exit path.
//!
//! Usage: 6-file-exchange [--records N] [--size BYTES] [--pause MS] [--mode MODE]
//!
//! Try it:
//!     cargo run -p simple-ipc --bin 6-file-exchange
//!     cargo run -p simple-ipc --bin 6-file-exchange -- --mode rename --records 200
//!
//! Caveat: `rename` makes each *read* see a whole file; it does not make the reader
//! see every record (it may miss some), nor order two writers. Those need a
//! protocol: a pipe, a socket, or a lock.

use lesson_kit::args::{Parser, UsageError};
use lesson_kit::{Context, Failure, exit, note};
use nix::unistd::{ForkResult, Pid, fork, getpid};
use simple_ipc::{
    Ended, Outcome, Scratch, Stop, child_defaults, child_ok, end_child, exit_child,
    lesson_main, try_reap,
};
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

const PROGRAM: &str = "6-file-exchange";

#[derive(Clone, Copy, PartialEq)]
enum Writer {
    /// Truncate and write `data.txt` itself.
    InPlace,
    /// Write `data.txt.tmp`, then rename it over `data.txt`.
    Rename,
}

struct Options {
    records: u32,
    size: usize,
    pause: Duration,
    writers: Vec<Writer>,
}

/// What the reader saw.
#[derive(Default)]
struct Tally {
    reads: u64,
    whole: u64,
    torn: u64,
    missing: u64,
    /// The largest torn read: how many bytes it had, of how many.
    largest_torn: Option<(usize, usize)>,
    last_record: Option<u32>,
}

fn main() -> ExitCode {
    lesson_main(PROGRAM, parse_options, usage, run)
}

// ANCHOR: run
fn run(options: &Options) -> Outcome {
    let stop = Stop::install()?;
    // Removed when `run` returns, on every path
    let scratch = Scratch::new(PROGRAM)?;
    let data = scratch.join("data.txt");
    let mut out = io::stdout();
    for &writer in &options.writers {
        let label = match writer {
            Writer::InPlace => "in place",
            Writer::Rename => "rename",
        };
        // Start each writer from no file at all
        let _ = std::fs::remove_file(&data);
        let child = spawn_writer(writer, &data, options)?;
        note!(
            "[{label}] writer {child} started: {} records",
            options.records
        );
        let tally = read_while_writing(&data, options.size, child, &stop)?;
        let largest_torn = match tally.largest_torn {
            Some((got, of)) => {
                format!("the largest torn read had {got} of {of} bytes")
            }
            None => "no torn read".to_owned(),
        };
        writeln!(
            out,
            "[{label}] {} reads: {} whole, {} torn, {} before the first record\n\
             [{label}] {largest_torn}; last record seen: {}",
            tally.reads,
            tally.whole,
            tally.torn,
            tally.missing,
            tally
                .last_record
                .map_or("none".to_owned(), |n| n.to_string()),
        )
        .and_then(|()| out.flush())
        .context("write stdout")?;
        if writer == Writer::Rename && tally.torn > 0 {
            // Never seen; it would mean rename is not atomic on this file system.
            return Err(Failure::new("rename", "a reader saw a torn record").into());
        }
    }
    drop(scratch); // data.txt, data.txt.tmp and the directory are gone
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: run

/// Forks the writer, which writes every record and exits.
fn spawn_writer(
    writer: Writer,
    data: &Path,
    options: &Options,
) -> Result<Pid, Failure> {
    let parent = getpid();
    io::stdout().flush().context("flush stdout")?;
    // SAFETY: this process is single-threaded (Stop::install starts no thread), so
    // the child is a full copy and may allocate and write files; it ends with
    // _exit, never returning into main (whose Scratch would then remove the
    // directory twice).
    match unsafe { fork() }.context("fork")? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            child_defaults(parent);
            for n in 0..options.records {
                let written = match writer {
                    Writer::InPlace => write_in_place(data, n, options),
                    Writer::Rename => write_then_rename(data, n, options),
                };
                if let Err(failure) = written {
                    note!("{PROGRAM}: writer: {failure}");
                    exit_child(exit::RUNTIME);
                }
                sleep(options.pause); // the reader's turn to look at a whole record
            }
            exit_child(exit::OK)
        }
    }
}

// ANCHOR: writers
/// The fragile way: the reader can open the file while it is empty (just truncated)
/// or half-written.
fn write_in_place(data: &Path, n: u32, options: &Options) -> Result<(), Failure> {
    let record = record(n, options.size);
    let (first, second) = record.split_at(record.len() / 2);
    let what = || format!("write {}", data.display());
    let mut file = File::create(data).context(what())?; // O_TRUNC: empty, from now
    file.write_all(first).context(what())?;
    // A slow disk, a big record: the window a reader can fall into
    sleep(options.pause);
    file.write_all(second).context(what())?;
    Ok(()) // closed here
}

/// The cure: write the whole record under a temporary name, then `rename` it. A
/// reader that opens `data.txt` gets the old file or the new one, never a mix: the
/// name moves to the new file in one step.
fn write_then_rename(
    data: &Path,
    n: u32,
    options: &Options,
) -> Result<(), Failure> {
    let record = record(n, options.size);
    let (first, second) = record.split_at(record.len() / 2);
    // Same directory: same file system
    let temporary = data.with_extension("txt.tmp");
    let what = || format!("write {}", temporary.display());
    let mut file = File::create(&temporary).context(what())?;
    file.write_all(first).context(what())?;
    sleep(options.pause); // the same slow write, but nobody reads this name
    file.write_all(second).context(what())?;
    drop(file); // closed: complete
    std::fs::rename(&temporary, data).context(format!(
        "rename {} to {}",
        temporary.display(),
        data.display()
    ))
}
// ANCHOR_END: writers

// ANCHOR: reader
/// Reads the file over and over until the writer has exited, and checks every read.
fn read_while_writing(
    data: &Path,
    size: usize,
    writer: Pid,
    stop: &Stop,
) -> Result<Tally, Ended> {
    let mut tally = Tally::default();
    loop {
        // Has the writer finished? Then one last read, and we are done.
        let finished = match try_reap(writer) {
            Ok(finished) => finished,
            Err(failure) => {
                end_child(writer);
                return Err(failure.into());
            }
        };
        match std::fs::read(data) {
            Ok(bytes) => match check(&bytes, size) {
                Some(n) => {
                    tally.whole += 1;
                    tally.last_record = Some(n);
                }
                None => {
                    tally.torn += 1;
                    let whole = record(0, size).len();
                    if tally.largest_torn.is_none_or(|(got, _)| got < bytes.len()) {
                        tally.largest_torn = Some((bytes.len(), whole));
                    }
                }
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => tally.missing += 1,
            Err(err) => {
                end_child(writer);
                return Err(
                    Failure::new(format!("read {}", data.display()), err).into()
                );
            }
        }
        tally.reads += 1;
        if let Some(status) = finished {
            child_ok("writer", status)?;
            return Ok(tally);
        }
        if let Err(ended) = stop.sleep(Duration::from_micros(500)) {
            end_child(writer);
            return Err(ended);
        }
    }
}
// ANCHOR_END: reader

// ANCHOR: record
/// Record `n`: a header, `size` bytes of one letter, a trailer. Only a complete one
/// passes [`check`].
fn record(n: u32, size: usize) -> Vec<u8> {
    let letter = b'a' + (n % 26) as u8;
    let mut record = format!("record {n:010} {size:010}\n").into_bytes();
    record.resize(record.len() + size, letter);
    record.extend_from_slice(format!("\nend {n:010}\n").as_bytes());
    record
}

/// The record number if `bytes` is one whole record, `None` if it is torn.
fn check(bytes: &[u8], size: usize) -> Option<u32> {
    let text = std::str::from_utf8(bytes.get(..29)?).ok()?;
    let n: u32 = text.strip_prefix("record ")?.get(..10)?.parse().ok()?;
    (record(n, size) == bytes).then_some(n)
}
// ANCHOR_END: record

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        records: 20,
        size: 64 * 1024,
        pause: Duration::from_millis(5),
        writers: vec![Writer::InPlace, Writer::Rename],
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--records" => options.records = parser.value_in(&arg, 1..=100_000)?,
            "--size" => {
                options.size = parser.value_in(&arg, 1..=16 * 1024 * 1024)?
            }
            "--pause" => {
                options.pause =
                    Duration::from_millis(parser.value_in(&arg, 0..=1000)?)
            }
            "--mode" => {
                options.writers = match parser.value::<String>(&arg)?.as_str() {
                    "both" => vec![Writer::InPlace, Writer::Rename],
                    "in-place" => vec![Writer::InPlace],
                    "rename" => vec![Writer::Rename],
                    other => {
                        return Err(UsageError(format!(
                            "--mode {other:?}: must be both, in-place or rename"
                        )));
                    }
                }
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
Usage: {PROGRAM} [--records N] [--size BYTES] [--pause MS] [--mode MODE]

A forked writer puts N records into data.txt, one after the other; the parent reads
the file as often as it can and counts whole and torn records. First the writer
rewrites data.txt in place, then it writes data.txt.tmp and renames it (the cure).
The files are in a fresh temporary directory, removed at the end.

Options:
  --records N     records per writer, 1 to 100000 (default 20)
  --size BYTES    bytes of data per record, 1 to 16777216 (default 65536)
  --pause MS      the writer's pause half-way through a record and after it,
                  0 to 1000 (default 5)
  --mode MODE     both (default), in-place or rename
  -h, --help      print this help

Exit status: 0 done; 1 a system call failed, the writer failed, or a torn record was
seen despite rename; 2 bad command line; 128+n stopped by signal n.
"
    )
}
