//! `--show-fds` and `--keep-ends`: the tables that parent and child print at each
//! step, what they prove (who holds which end of the pipe), and the deliberately
//! broken run that keeps every end and still ends by itself.

#[path = "common/fds_blocks.rs"]
mod fds_blocks;

use fds_blocks::{
    block, blocks, first_process_first, held, holding, steps, the_pipe,
};
use lesson_test::{
    Finished, Leftovers, Lesson, check_transcript_of, number_after, process, send,
};
use nix::sys::signal::Signal;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anon-pipe");

const PARENT_STEPS: [&str; 4] = [
    "after pipe2",
    "after fork",
    "after closing the write end",
    "at the end, child reaped",
];
const CHILD_STEPS: [&str; 2] = ["after fork", "after closing the read end"];

const PARENT_KEEPS: [&str; 4] = [
    "after pipe2",
    "after fork",
    "write end kept (--keep-ends)",
    "at the end, child reaped",
];
const CHILD_KEEPS: [&str; 2] = ["after fork", "read end kept (--keep-ends)"];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

fn child_pid(stderr: &str) -> i32 {
    number_after(stderr, "forked child ")
}

fn run_with(extra: &[&str], code: i32) -> Finished {
    let run = lesson()
        .args(["--count", "3", "--speed", "20", "--show-fds"])
        .args(extra)
        .run();
    assert_eq!(run.code(), Some(code), "{}", run.transcript());
    run
}

#[test]
fn each_process_prints_a_table_at_each_step_and_nothing_else_changes() {
    let run = run_with(&[], 0);
    let blocks = blocks(&run.stderr);
    assert_eq!(
        steps(&blocks, "parent"),
        PARENT_STEPS,
        "{}",
        run.transcript()
    );
    assert_eq!(steps(&blocks, "child"), CHILD_STEPS, "{}", run.transcript());
    assert_eq!(blocks.len(), 6, "{}", run.transcript());
    let child = child_pid(&run.stderr);
    for b in &blocks {
        let pid = if b.who == "parent" { run.pid } else { child };
        assert_eq!(b.pid, pid, "{b:#?}");
    }
    // stdout is the document's, untouched: the tables go to stderr only.
    assert_eq!(run.texts().len(), 3, "{}", run.transcript());
    assert!(!run.stdout_text().contains("[fds]"), "{}", run.transcript());
    // Without the flag, no table at all.
    let plain = lesson().args(["--count", "1", "--speed", "20"]).run();
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
}

#[test]
fn after_the_closes_the_parent_holds_only_the_read_end_and_the_child_the_write_end()
{
    let run = run_with(&[], 0);
    let blocks = blocks(&run.stderr);
    let pipe = the_pipe(block(&blocks, "parent", "after pipe2"));
    // fork copies the table: both processes start with both ends.
    for who in ["parent", "child"] {
        let after_fork = block(&blocks, who, "after fork");
        assert_eq!(
            holding(after_fork, &pipe).len(),
            2,
            "{who}: {after_fork:#?}"
        );
    }
    // After the closes the pipe's inode shows once per process: a close left out
    // would show a second line, the leaked end that keeps EOF from coming.
    let parent = block(&blocks, "parent", "after closing the write end");
    let child = block(&blocks, "child", "after closing the read end");
    let (read, write) = (holding(parent, &pipe), holding(child, &pipe));
    assert_eq!(read.len(), 1, "{parent:#?}");
    assert_eq!(read[0].1, "read", "{parent:#?}");
    assert_eq!(write.len(), 1, "{child:#?}");
    assert_eq!(write[0].1, "write", "{child:#?}");
    // At the end (EOF, the child reaped) the parent still holds its read end,
    // closed right after.
    let end = block(&blocks, "parent", "at the end, child reaped");
    assert_eq!(holding(end, &pipe), [read[0].clone()], "{end:#?}");
}

#[test]
fn keep_ends_shows_the_leaked_write_end_names_it_and_exits_3() {
    let run = run_with(&["--keep-ends"], 3);
    let blocks = blocks(&run.stderr);
    assert_eq!(
        steps(&blocks, "parent"),
        PARENT_KEEPS,
        "{}",
        run.transcript()
    );
    assert_eq!(steps(&blocks, "child"), CHILD_KEEPS, "{}", run.transcript());
    let pipe = the_pipe(block(&blocks, "parent", "after pipe2"));
    let both = holding(block(&blocks, "parent", "after pipe2"), &pipe);
    // No close: each process holds both ends to the last.
    for (who, step) in [
        ("parent", "write end kept (--keep-ends)"),
        ("child", "read end kept (--keep-ends)"),
        ("parent", "at the end, child reaped"),
    ] {
        assert_eq!(
            holding(block(&blocks, who, step), &pipe),
            both,
            "{who} {step}"
        );
    }
    // Every message arrived; then the child exited, and the parent says which of
    // its descriptors keeps EOF away: the write end of the table, by number.
    assert_eq!(run.texts().len(), 3, "{}", run.transcript());
    let child = child_pid(&run.stderr);
    let write_fd = both[1].0;
    for needle in [
        format!("child {child} exited with status 0"),
        format!(
            "EOF never came: this process still holds the write end, fd {write_fd}"
        ),
        "--keep-ends: read would wait for ever; giving up (exit 3)".to_owned(),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
    assert_eq!(both[1], held(write_fd, "write"));
}

#[test]
fn keep_ends_ends_soon_after_the_child_is_gone() {
    // The last message comes at about 0.26 s; the parent needs two quiet spells of
    // 0.1 s to be sure (the first reaps the child, the second finds the pipe
    // drained). Bounds generous for a loaded machine.
    let run = lesson()
        .args(["--count", "3", "--speed", "20", "--keep-ends"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    let last = run.lines.last().expect("three lines").at;
    assert!(
        run.elapsed >= last + Duration::from_millis(190),
        "too soon: two quiet spells of 100 ms come first\n{}",
        run.transcript()
    );
    assert!(
        run.elapsed < last + Duration::from_secs(3),
        "{:?}",
        run.elapsed
    );
}

#[test]
fn keep_ends_reports_a_killed_child_instead_of_waiting_for_ever() {
    // The document's way: when its child dies, pipe_1's parent blocks in read for
    // ever. --keep-ends notices the death by itself.
    let mut running = lesson().args(["--speed", "20", "--keep-ends"]).spawn();
    running.next_line().expect("a first message");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    send(child, Signal::SIGKILL);
    let run = running.finish();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    for needle in [
        format!("child {child} killed by SIGKILL"),
        "EOF never came".to_owned(),
    ] {
        assert!(
            run.stderr.contains(&needle),
            "{needle}\n{}",
            run.transcript()
        );
    }
}

#[test]
fn keep_ends_child_is_killed_by_the_kernel_when_the_parent_dies() {
    // The child holds a read end itself, so the pipe cannot tell it that its parent
    // died: PR_SET_PDEATHSIG does. At a quarter of the document's speed it would
    // otherwise sleep on for 4 s, past the harness's grace for orphans.
    let mut running = lesson().args(["--speed", "0.25", "--keep-ends"]).spawn();
    running.next_line().expect("a first message");
    let child = child_pid(&running.wait_for_stderr("forked child"));
    running.signal(Signal::SIGKILL);
    let run = running.finish_allowing(Leftovers::Orphans);
    assert_eq!(run.code(), None, "{}", run.transcript());
    assert!(!run.stderr.contains("EPIPE"), "{}", run.transcript());
    let start = Instant::now();
    while process(child).is_some_and(|p| p.state != 'Z') {
        assert!(start.elapsed() < Duration::from_secs(1), "child lives on");
        sleep(Duration::from_millis(10));
    }
}

#[test]
fn keep_ends_still_stops_on_a_signal_with_the_child_ended() {
    let mut running = lesson().args(["--keep-ends"]).spawn();
    running.next_line().expect("a first message");
    let run = running.stop_with(Signal::SIGTERM);
    assert!(
        run.stderr.contains("killed by SIGTERM"),
        "{}",
        run.transcript()
    );
}

/// The run as the book shows it, the two processes' first blocks in a fixed order.
fn book_run(extra: &[&str], code: i32) -> Finished {
    let run = lesson()
        .shown_as("cargo run -q -p anon-pipe --")
        .args(["--count", "2", "--speed", "20", "--show-fds"])
        .args(extra)
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(code), "{}", run.transcript());
    let text =
        first_process_first(&run.stdout_text(), "parent", "Parent ", " got [");
    Finished {
        stdout: text.into_bytes(),
        ..run
    }
}

#[test]
fn book_transcript_of_the_tables_matches_a_fresh_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/anon-pipe-fds.txt");
    check_transcript_of(&path, &book_run(&[], 0));
}

#[test]
fn book_transcript_of_the_keep_ends_tables_matches_a_fresh_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/anon-pipe-keep-ends-fds.txt");
    check_transcript_of(&path, &book_run(&["--keep-ends"], 3));
}
