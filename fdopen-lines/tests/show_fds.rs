//! `--show-fds`: the tables that parent and child print at each step, and what they
//! prove: after the closes each process holds one end of the pipe, and wrapping the
//! read end in a `File` and a `BufReader` (Python's `os.fdopen`) makes no new
//! descriptor.

#[path = "../../anon-pipe/tests/common/fds_blocks.rs"]
mod fds_blocks;

use fds_blocks::{block, blocks, first_process_first, holding, steps, the_pipe};
use lesson_test::{Finished, Lesson, check_transcript_of, number_after};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_fdopen-lines");

const PARENT_STEPS: [&str; 4] = [
    "after pipe2",
    "after fork",
    "after closing the write end",
    "at the end, child reaped",
];
const CHILD_STEPS: [&str; 2] = ["after fork", "after closing the read end"];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

fn show_fds_run() -> Finished {
    let run = lesson()
        .args(["--count", "3", "--speed", "20", "--show-fds"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run
}

#[test]
fn each_process_prints_a_table_at_each_step_and_nothing_else_changes() {
    let run = show_fds_run();
    let blocks = blocks(&run.stderr);
    assert_eq!(
        steps(&blocks, "parent"),
        PARENT_STEPS,
        "{}",
        run.transcript()
    );
    assert_eq!(steps(&blocks, "child"), CHILD_STEPS, "{}", run.transcript());
    assert_eq!(blocks.len(), 6, "{}", run.transcript());
    let child = number_after(&run.stderr, "forked child ");
    for b in &blocks {
        let pid = if b.who == "parent" { run.pid } else { child };
        assert_eq!(b.pid, pid, "{b:#?}");
    }
    assert_eq!(run.texts().len(), 3, "{}", run.transcript());
    assert!(!run.stdout_text().contains("[fds]"), "{}", run.transcript());
    let plain = lesson().args(["--count", "1", "--speed", "20"]).run();
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
}

#[test]
fn after_the_closes_each_process_holds_one_end_and_fdopen_adds_no_descriptor() {
    let run = show_fds_run();
    let blocks = blocks(&run.stderr);
    let pipe = the_pipe(block(&blocks, "parent", "after pipe2"));
    for who in ["parent", "child"] {
        let after_fork = block(&blocks, who, "after fork");
        assert_eq!(holding(after_fork, &pipe).len(), 2, "{after_fork:#?}");
    }
    // One line per process for the pipe's inode: a close left out would show a
    // second one, the write end that keeps EOF (and the end of the loop) away.
    let parent = block(&blocks, "parent", "after closing the write end");
    let child = block(&blocks, "child", "after closing the read end");
    let (read, write) = (holding(parent, &pipe), holding(child, &pipe));
    assert_eq!(read.len(), 1, "{parent:#?}");
    assert_eq!(read[0].1, "read", "{parent:#?}");
    assert_eq!(write.len(), 1, "{child:#?}");
    assert_eq!(write[0].1, "write", "{child:#?}");
    // The File that owns the read end (the BufReader reads through it) is the same
    // descriptor: fdopen wraps, it does not duplicate.
    let end = block(&blocks, "parent", "at the end, child reaped");
    assert_eq!(holding(end, &pipe), read, "{end:#?}");
}

#[test]
fn book_transcript_of_the_tables_matches_a_fresh_run() {
    let run = lesson()
        .shown_as("cargo run -q -p fdopen-lines --")
        .args(["--count", "2", "--speed", "20", "--show-fds"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let text =
        first_process_first(&run.stdout_text(), "parent", "Parent ", " got [");
    let run = Finished {
        stdout: text.into_bytes(),
        ..run
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/fdopen-lines-fds.txt");
    check_transcript_of(&path, &run);
}
