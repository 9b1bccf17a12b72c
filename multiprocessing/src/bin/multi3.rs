//! multi3: an integer and an array of floats in memory shared after `fork`, next to
//! a plain variable that every child only copies; then the flaw the document hides.
//!
//! Mirrors `multi3.py` from *Programming Python* (`Value('i')`, `Array('d', 3)` and
//! a global): four loops (updates in the parent with serial children, with parallel
//! children; updates in serial children, in parallel children), each line `<label>:
//! pid:<pid>, global:<count>, value:<value>, array:<array>`, ending with `parent
//! end  : ... global:6, value:12, array:[8.0, 8.0, 8.0]`.
//!
//! Then what the document does not show: `value += 1` on shared memory is three
//! steps (load, add, store), and children running in parallel lose each other's
//! updates. N children add 1 to a shared counter many times with a plain load and
//! store, then with an atomic `fetch_add`, then under a lock; only the last two
//! always get the full count.
//!
//! Usage: multi3 [--children N] [--increments N] [--document-only]
//!
//! Try it:
//!     cargo run -p multiprocessing --bin multi3
//!     cargo run -p multiprocessing --bin multi3 -- --children 4 --increments 10000
//!
//! Where this differs from the document, on purpose:
//! - `Value` and `Array` are one `mmap(MAP_SHARED | MAP_ANONYMOUS)` mapping holding
//!   atomics (the floats as their bits: there is no atomic f64); nothing in
//!   `/dev/shm`;
//! - the plain variable is a local the children capture: `fork` copies it, as it
//!   copies Python's global (under fork; under spawn the children start from 0
//!   instead);
//! - the lost-update demonstration and its two cures are new.

use lesson_kit::Failure;
use lesson_kit::args::{Parser, UsageError, parse_command_line};
use lesson_kit::pyfmt::float_str;
use multiprocessing::lock::{Lock, futex_wait, futex_wake};
use multiprocessing::process::child_code;
use multiprocessing::shm::{ProcessShared, Shared};
use multiprocessing::{Halt, Team, say};
use nix::unistd::getpid;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

const PROGRAM: &str = "multi3";

/// The document's `procs = 3`.
const PROCS: usize = 3;

struct Options {
    children: u32,
    increments: u64,
    race: bool,
}

// ANCHOR: data
/// The document's `Value('i', 0)` and `Array('d', 3)`, in one shared mapping.
#[repr(C)]
struct Data {
    value: AtomicI32,
    /// f64 values, stored as their bits (`f64::to_bits`).
    array: [AtomicU64; PROCS],
}

// SAFETY: atomics only, no pointer, no Drop.
unsafe impl ProcessShared for Data {}
// ANCHOR_END: data

fn main() -> ExitCode {
    let options = match parse_command_line(PROGRAM, parse_options, usage) {
        Ok(options) => options,
        Err(code) => return code, // --help printed, or a usage error reported
    };
    // Whatever is still running at the end is stopped and reaped, on every path.
    Team::lead(PROGRAM, |team| {
        document(team)?;
        if options.race {
            lost_updates(team, &options)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

// ANCHOR: document
fn document(team: &mut Team) -> Result<(), Halt> {
    let mut count = 0; // the document's global: every child gets a copy
    let data = Shared::new(Data {
        value: AtomicI32::new(0),
        array: [const { AtomicU64::new(0) }; PROCS], // 0u64 is the bits of 0.0
    })?;
    show("start value", count, &data)?;
    let child = team.start(|| child_code(PROGRAM, show("child", count, &data)))?;
    team.join_ok(child)?;

    say("\nloop1 (updates in parent, serial children)...")?;
    for i in 0..PROCS {
        count += 1;
        add_to_value(&data);
        add_to_item(&data, i);
        let label = format!("process {i}");
        let child =
            team.start(|| child_code(PROGRAM, show(&label, count, &data)))?;
        team.join_ok(child)?;
    }

    say("\nloop2 (updates in parent, parallel children)...")?;
    for i in 0..PROCS {
        count += 1;
        add_to_value(&data);
        add_to_item(&data, i);
        let label = format!("process {i}");
        team.start(|| child_code(PROGRAM, show(&label, count, &data)))?;
    }
    team.join_all()?;

    say("\nloop3 (updates in serial children)...")?;
    for _ in 0..PROCS {
        let child = team.start(|| updater(count, &data))?;
        team.join_ok(child)?;
    }
    show("parent temp", count, &data)?;

    say("\nloop4 (updates in parallel children)...")?;
    for _ in 0..PROCS {
        team.start(|| updater(count, &data))?;
    }
    team.join_all()?;
    show("parent end", count, &data)?;
    Ok(())
}
// ANCHOR_END: document

// ANCHOR: updater
/// The document's `updater`: adds 1 to the global, the value and each array item.
fn updater(mut count: i32, data: &Data) -> u8 {
    count += 1; // our own copy: the parent never sees it
    let _ = count;
    add_to_value(data);
    for i in 0..PROCS {
        add_to_item(data, i);
    }
    0
}

/// `value += 1`, as Python does it: read, add, write back. Each step is atomic; the
/// steps together are not (see `lost_updates`).
fn add_to_value(data: &Data) {
    let value = data.value.load(Ordering::Relaxed);
    data.value.store(value + 1, Ordering::Relaxed);
}

/// `array[i] += 1`, the same way.
fn add_to_item(data: &Data, i: usize) {
    let item = f64::from_bits(data.array[i].load(Ordering::Relaxed));
    data.array[i].store((item + 1.0).to_bits(), Ordering::Relaxed);
}
// ANCHOR_END: updater

/// The document's `showdata`: `'%-12s: pid:%4s, global:%s, value:%s, array:%s'`.
fn show(label: &str, count: i32, data: &Data) -> Result<(), Failure> {
    let items: Vec<String> = data
        .array
        .iter()
        .map(|item| float_str(f64::from_bits(item.load(Ordering::Relaxed))))
        .collect();
    say(&format!(
        "{label:<12}: pid:{:>4}, global:{count}, value:{}, array:[{}]",
        getpid(),
        data.value.load(Ordering::Relaxed),
        items.join(", ")
    ))
}

// ANCHOR: race
/// A counter for the race, with its lock and a start line for the runners.
#[repr(C)]
struct Race {
    counter: AtomicU64,
    lock: Lock,
    /// 0 until the parent says go: the children start counting at the same moment.
    go: AtomicU32,
}

// SAFETY: atomics and a Lock (one atomic) only.
unsafe impl ProcessShared for Race {}

#[derive(Clone, Copy)]
enum Method {
    /// `let v = load(); store(v + 1)`: two atomic steps, not one.
    LoadStore,
    /// One indivisible read-modify-write (`lock xadd` on x86).
    FetchAdd,
    /// Load and store, but only while holding the lock.
    Locked,
}

const METHODS: [(Method, &str); 3] = [
    (Method::LoadStore, "load + store (plain)"),
    (Method::FetchAdd, "atomic fetch_add"),
    (Method::Locked, "under the lock"),
];

fn lost_updates(team: &mut Team, options: &Options) -> Result<(), Halt> {
    let (children, increments) = (options.children, options.increments);
    let expected = u64::from(children) * increments;
    say(&format!(
        "\nlost updates ({children} parallel children, \
         {increments} increments each)..."
    ))?;
    let race = Shared::new(Race {
        counter: AtomicU64::new(0),
        lock: Lock::new(),
        go: AtomicU32::new(0),
    })?;
    for (method, label) in METHODS {
        race.counter.store(0, Ordering::Relaxed);
        race.go.store(0, Ordering::Relaxed);
        for _ in 0..children {
            team.start(|| run_race(&race, method, increments))?;
        }
        race.go.store(1, Ordering::Release);
        futex_wake(&race.go, i32::MAX); // everyone at the start line, go
        team.join_all()?;
        let total = race.counter.load(Ordering::Relaxed);
        let lost = expected.saturating_sub(total);
        say(&format!("{label:<21}: total:{total}, lost:{lost}"))?;
    }
    Ok(())
}

/// One child's part: wait for the start, then add 1, `increments` times.
fn run_race(race: &Race, method: Method, increments: u64) -> u8 {
    while race.go.load(Ordering::Acquire) == 0 {
        futex_wait(&race.go, 0, Duration::from_millis(100));
    }
    let counter = &race.counter;
    for _ in 0..increments {
        match method {
            Method::LoadStore => {
                // Another process may store between our load and our store: its
                // update is then overwritten, lost.
                let seen = counter.load(Ordering::Relaxed);
                counter.store(seen + 1, Ordering::Relaxed);
            }
            Method::FetchAdd => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Method::Locked => {
                let _held = race.lock.lock();
                let seen = counter.load(Ordering::Relaxed);
                counter.store(seen + 1, Ordering::Relaxed);
            }
        }
    }
    0
}
// ANCHOR_END: race

fn parse_options() -> Result<Option<Options>, UsageError> {
    let mut parser = Parser::from_env(PROGRAM)?;
    let mut options = Options {
        children: 3,
        increments: 1_000_000,
        race: true,
    };
    while let Some(arg) = parser.next()? {
        match arg.as_str() {
            "--children" => options.children = parser.value_in(&arg, 2..=64)?,
            "--increments" => {
                options.increments = parser.value_in(&arg, 1..=100_000_000)?;
            }
            "--document-only" => options.race = false,
            "-h" | "--help" => return Ok(None),
            _ => return Err(parser.unexpected(&arg)),
        }
    }
    Ok(Some(options))
}

fn usage() -> String {
    format!(
        "\
Usage: {PROGRAM} [--children N] [--increments N] [--document-only]

The document's four loops over a shared integer, a shared array of three floats
and a plain variable each child only copies (Programming Python's multi3.py); then
N children add 1 to a shared counter in parallel: with a plain load and store
(updates are lost), with an atomic fetch_add, and under a lock (none are).

Options:
  --children N     children in the race, 2 to 64 (default 3)
  --increments N   additions per child, 1 to 100000000 (default 1000000)
  --document-only  print the document's loops only, no race
  -h, --help       print this help

Exit status: 0 done; 1 a system call failed or a child ended badly; 2 bad command
line; 128+n stopped by signal n (SIGINT, SIGTERM, SIGHUP), children ended and
reaped.
"
    )
}
