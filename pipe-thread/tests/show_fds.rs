//! `--show-fds`: one process, so one descriptor table, which both threads see; the
//! main thread prints it after the pipe and after EOF, the writer thread once it
//! holds its end.

#[path = "../../anon-pipe/tests/common/fds_blocks.rs"]
mod fds_blocks;

use fds_blocks::{block, blocks, holding, the_pipe};
use lesson_test::{Lesson, check_transcript_of};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_pipe-thread");

const STEPS: [(&str, &str); 3] = [
    ("main thread", "after pipe"),
    ("writer thread", "after taking the write end"),
    ("main thread", "after EOF: the write end is dropped"),
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

#[test]
fn one_table_per_step_from_the_thread_at_that_step_all_of_one_process() {
    let run = lesson()
        .args(["--count", "3", "--speed", "20", "--show-fds"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let blocks = blocks(&run.stderr);
    let seen: Vec<(&str, &str)> = blocks
        .iter()
        .map(|b| (b.who.as_str(), b.step.as_str()))
        .collect();
    assert_eq!(seen, STEPS, "{}", run.transcript());
    assert!(blocks.iter().all(|b| b.pid == run.pid), "{blocks:#?}");
    assert_eq!(run.texts().len(), 3, "{}", run.transcript());
    assert!(!run.stdout_text().contains("[fds]"), "{}", run.transcript());
    let plain = lesson().args(["--count", "1", "--speed", "20"]).run();
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
}

#[test]
fn the_threads_share_one_table_and_eof_comes_when_the_write_end_is_gone() {
    let run = lesson()
        .args(["--count", "2", "--speed", "20", "--show-fds"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let blocks = blocks(&run.stderr);
    let first = block(&blocks, STEPS[0].0, STEPS[0].1);
    let pipe = the_pipe(first);
    // Moving the write end into the thread is a Rust ownership move: the kernel's
    // table, shared by the threads, is the same.
    let writer = block(&blocks, STEPS[1].0, STEPS[1].1);
    assert_eq!(writer.rows, first.rows, "{}", run.transcript());
    // After EOF: the read end alone. Its fd is the one made by the pipe.
    let last = block(&blocks, STEPS[2].0, STEPS[2].1);
    let both = holding(first, &pipe);
    assert_eq!(holding(last, &pipe), both[..1], "{last:#?}");
    assert_eq!(both[0].1, "read");
}

#[test]
fn book_transcript_of_the_tables_matches_a_fresh_run() {
    let run = lesson()
        .shown_as("cargo run -q -p pipe-thread --")
        .args(["--count", "2", "--speed", "20", "--show-fds"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/pipe-thread-fds.txt");
    check_transcript_of(&path, &run);
}
