//! `--show-fds` on multi2, multi4 and multi5: the tables appear in the right process at the
//! right step, and prove the point of each step: after the closes, each process
//! holds only the end it uses (a close left out is one more row, and fails here).
//! The book's tables are made here too, grouped by process (the processes print
//! them concurrently, so the order on the terminal changes from run to run).

use lesson_test::fd_blocks::{Block, Row, blocks};
use lesson_test::{Finished, Lesson, check_transcript};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MULTI2: &str = env!("CARGO_BIN_EXE_multi2");
const MULTI4: &str = env!("CARGO_BIN_EXE_multi4");
const MULTI5: &str = env!("CARGO_BIN_EXE_multi5");

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
}

fn transcript(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts")
        .join(name)
}

/// The steps that process `pid` showed, in its order.
fn steps_of(blocks: &[Block], pid: i32) -> Vec<(&str, &str)> {
    blocks
        .iter()
        .filter(|b| b.pid == pid)
        .map(|b| (b.who.as_str(), b.step.as_str()))
        .collect()
}

/// The block of process `pid` at `step`.
fn block<'a>(blocks: &'a [Block], pid: i32, step: &str) -> &'a Block {
    blocks
        .iter()
        .find(|b| b.pid == pid && b.step == step)
        .unwrap_or_else(|| panic!("no block of {pid} at {step}: {blocks:#?}"))
}

/// The rows of `block` that are `object`.
fn rows_of(block: &Block, object: &str) -> Vec<Row> {
    block
        .rows
        .iter()
        .filter(|r| r.object == object)
        .cloned()
        .collect()
}

/// The pids of the processes other than `parent` that showed tables, in pid order.
fn children(blocks: &[Block], parent: i32) -> Vec<i32> {
    let mut pids: Vec<i32> = blocks.iter().map(|b| b.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    pids.retain(|pid| *pid != parent);
    pids
}

/// The book's text: the command, then the blocks of the parent, then those of each
/// child in pid order (each process's own blocks in the order it printed them).
fn book_text(run: &Finished, blocks: &[Block], command: &str) -> String {
    let mut text = format!("$ {command}\n");
    let parent = run.pid;
    for pid in [parent].into_iter().chain(children(blocks, parent)) {
        for block in blocks.iter().filter(|b| b.pid == pid) {
            text.push_str(&block.text);
        }
    }
    text
}

#[test]
fn multi2_after_the_closes_parent_and_child_each_hold_one_end_of_the_socketpair() {
    let command = "cargo run -q -p multiprocessing --bin multi2 -- --show-fds";
    let run = lesson(MULTI2).arg("--show-fds").merge_stderr().run();
    let output = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{output}");
    // The faithful lines are all there, untouched.
    assert!(output.contains("parent exit\n"), "{output}");
    let blocks = blocks(&output);
    let parent = run.pid;
    assert_eq!(
        steps_of(&blocks, parent),
        [
            ("parent", "after socketpair"),
            ("parent", "after fork"),
            ("parent", "after close(child's end)"),
        ],
        "{output}"
    );
    let kids = children(&blocks, parent);
    assert_eq!(kids.len(), 1, "only the first child shows tables: {output}");
    let child = kids[0];
    assert_eq!(
        steps_of(&blocks, child),
        [
            ("child", "after fork"),
            ("child", "after close(parent's end)")
        ],
        "{output}"
    );
    // socketpair made the two highest descriptors (below them: the self-pipe of
    // the stop signals): two sockets, each its own inode, each both ways.
    let first = block(&blocks, parent, "after socketpair");
    let sockets: Vec<&Row> = first.rows.iter().filter(|r| r.fd > 2).collect();
    let pair = [
        sockets[sockets.len() - 2].clone(),
        sockets[sockets.len() - 1].clone(),
    ];
    assert_eq!(pair[1].fd, pair[0].fd + 1, "{output}");
    assert_ne!(pair[0].object, pair[1].object, "{output}");
    for end in &pair {
        assert!(end.object.starts_with("socket:["), "{output}");
        assert_eq!(end.end, "rw", "{output}");
        assert_eq!(
            rows_of(first, &end.object),
            std::slice::from_ref(end),
            "{output}"
        );
    }
    let [parent_end, child_end] = &pair;
    // fork copies the table: both processes hold both ends.
    for (pid, step) in [(parent, "after fork"), (child, "after fork")] {
        let table = block(&blocks, pid, step);
        assert_eq!(
            rows_of(table, &parent_end.object),
            std::slice::from_ref(parent_end)
        );
        assert_eq!(
            rows_of(table, &child_end.object),
            std::slice::from_ref(child_end)
        );
    }
    // After the closes, each keeps its own end only: a copy left open would be one
    // more row here (and EOF would never come to its peer).
    let table = block(&blocks, parent, "after close(child's end)");
    assert_eq!(
        rows_of(table, &parent_end.object),
        std::slice::from_ref(parent_end)
    );
    assert_eq!(rows_of(table, &child_end.object), [], "{output}");
    let table = block(&blocks, child, "after close(parent's end)");
    assert_eq!(
        rows_of(table, &child_end.object),
        std::slice::from_ref(child_end)
    );
    assert_eq!(rows_of(table, &parent_end.object), [], "{output}");
    check_transcript(
        &transcript("multi2-fds.txt"),
        &book_text(&run, &blocks, command),
    );
}

#[test]
fn multi4_after_the_closes_the_consumer_holds_only_the_read_end_each_producer_the_write_end()
 {
    let args = ["--speed", "10", "--count", "1", "--show-fds"];
    let command = format!(
        "cargo run -q -p multiprocessing --bin multi4 -- {}",
        args.join(" ")
    );
    let run = lesson(MULTI4).args(args).merge_stderr().run();
    let output = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{output}");
    assert_eq!(output.matches("posted: [").count(), 3, "{output}");
    let blocks = blocks(&output);
    let parent = run.pid;
    assert_eq!(
        steps_of(&blocks, parent),
        [
            ("parent", "after pipe2"),
            ("parent", "after 3 forks"),
            ("parent", "after close(write end)"),
        ],
        "{output}"
    );
    let producers = children(&blocks, parent);
    assert_eq!(producers.len(), 3, "{output}");
    for pid in &producers {
        assert_eq!(
            steps_of(&blocks, *pid),
            [
                ("producer", "after fork"),
                ("producer", "after close(read end)")
            ],
            "{output}"
        );
        // The tables are the producers' own: each of them put a record.
        assert!(output.contains(&format!("posted: [{pid}, ")), "{output}");
    }
    // pipe2: one inode, two descriptors, a read end and a write end.
    let first = block(&blocks, parent, "after pipe2");
    let pipe = &first
        .rows
        .iter()
        .rfind(|r| r.fd > 2)
        .expect("the pipe")
        .object;
    assert!(pipe.starts_with("pipe:["), "{output}");
    let ends = |table: &Block| -> Vec<String> {
        rows_of(table, pipe).iter().map(|r| r.end.clone()).collect()
    };
    assert_eq!(ends(first), ["read", "write"], "{output}");
    // fork copies the table: every producer starts with both ends, and so does the
    // parent still.
    assert_eq!(
        ends(block(&blocks, parent, "after 3 forks")),
        ["read", "write"]
    );
    for pid in &producers {
        assert_eq!(ends(block(&blocks, *pid, "after fork")), ["read", "write"]);
    }
    // After the closes: the consumer reads only, so EOF comes once the producers
    // are gone; each producer writes only.
    let table = block(&blocks, parent, "after close(write end)");
    assert_eq!(ends(table), ["read"], "{output}");
    for pid in &producers {
        let table = block(&blocks, *pid, "after close(read end)");
        assert_eq!(ends(table), ["write"], "{output}");
    }
    check_transcript(
        &transcript("multi4-fds.txt"),
        &book_text(&run, &blocks, &command),
    );
}

#[test]
fn multi5_exec_keeps_the_pid_and_the_plain_descriptors_and_closes_the_cloexec_ones()
{
    let command = "cargo run -q -p multiprocessing --bin multi5 -- --show-fds";
    let run = lesson(MULTI5).arg("--show-fds").merge_stderr().run();
    let output = run.stdout_text();
    assert_eq!(run.code(), Some(0), "{output}");
    assert_eq!(output.matches("Hello from child ").count(), 5, "{output}");
    let blocks = blocks(&output);
    let parent = run.pid;
    assert_eq!(steps_of(&blocks, parent), [], "{output}");
    // One process shows two tables: the first child after fork, and the program it
    // became after exec, under the same pid.
    let kids = children(&blocks, parent);
    assert_eq!(kids.len(), 1, "only the first child shows tables: {output}");
    let child = kids[0];
    assert_eq!(
        steps_of(&blocks, child),
        [("child", "after fork"), ("multi5-child", "after exec")],
        "{output}"
    );
    assert!(
        output.contains(&format!("Hello from child {child} 0\n")),
        "{output}"
    );
    let before = block(&blocks, child, "after fork");
    let after = block(&blocks, child, "after exec");
    // Before exec: the parent's self-pipe (close-on-exec) came along with fork.
    let cloexec: Vec<&Row> = before.rows.iter().filter(|r| r.cloexec()).collect();
    assert!(cloexec.len() >= 4, "the self-pipe's four: {output}");
    assert!(cloexec.iter().all(|r| r.fd > 2), "{output}");
    // After exec: exactly the descriptors without close-on-exec, as they were.
    let kept: Vec<Row> = before
        .rows
        .iter()
        .filter(|r| !r.cloexec())
        .cloned()
        .collect();
    assert_eq!(after.rows, kept, "{output}");
    assert_eq!(
        after.rows.iter().map(|r| r.fd).take(3).collect::<Vec<_>>(),
        [0, 1, 2],
        "{output}"
    );
    check_transcript(
        &transcript("multi5-fds.txt"),
        &book_text(&run, &blocks, command),
    );
}
