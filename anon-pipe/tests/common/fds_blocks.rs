//! What the tests of the pipe lessons (anon-pipe, fdopen-lines, pipe-thread, ipc-bench
//! include this one file by path) add to `lesson_test::fd_blocks`, the parser of the
//! `--show-fds` tables: the lesson's one pipe, and a fixed order for blocks that two
//! processes print at the same moment.

#![allow(dead_code)] // each test crate uses its own part

pub use lesson_test::fd_blocks::*;

/// The lesson's pipe in `block` (its first table): the last two pipe rows, one
/// object, a read end then a write end, both close-on-exec. (The test harness's own
/// pipes, fd 1 and 2, come first.)
pub fn the_pipe(block: &Block) -> String {
    let pipes: Vec<&Row> = block.rows.iter().filter(|r| r.kind == "pipe").collect();
    assert!(pipes.len() >= 2, "{block:#?}");
    let (read, write) = (pipes[pipes.len() - 2], pipes[pipes.len() - 1]);
    assert_eq!(read.object, write.object, "{block:#?}");
    assert_eq!((&*read.end, &*write.end), ("read", "write"), "{block:#?}");
    assert!(
        read.cloexec() && write.cloexec(),
        "made close-on-exec: {block:#?}"
    );
    read.object.clone()
}

/// A transcript's text with the blocks that two processes print at the same moment
/// put in a fixed order: before the first line that holds `first_output`,
/// `first_who`'s blocks and lines (those starting with `first_lines`) go first, each
/// process's own order kept; the rest keeps the order it came in.
pub fn first_process_first(
    text: &str,
    first_who: &str,
    first_lines: &str,
    first_output: &str,
) -> String {
    let mut chunks: Vec<String> = Vec::new();
    for line in text.lines() {
        match chunks.last_mut() {
            Some(chunk)
                if chunk.starts_with("[fds] ") && line.starts_with("  ") =>
            {
                chunk.push_str(line);
                chunk.push('\n');
            }
            _ => chunks.push(format!("{line}\n")),
        }
    }
    let output = chunks
        .iter()
        .position(|c| c.contains(first_output))
        .unwrap_or(chunks.len());
    let block_head = format!("[fds] {first_who} ");
    let early = |i: usize, c: &str| {
        i < output && (c.starts_with(&block_head) || c.starts_with(first_lines))
    };
    let front = chunks.iter().enumerate().filter(|(i, c)| early(*i, c));
    let rest = chunks.iter().enumerate().filter(|(i, c)| !early(*i, c));
    front.chain(rest).map(|(_, c)| c.as_str()).collect()
}

#[test]
fn first_process_first_moves_only_the_early_chunks_of_the_first_process() {
    let text = "[fds] child 2, after fork:\n  row c\n[fds] parent 1, after fork:\n  \
                row p\nParent 1 forked child 2\nParent 1 got [x]\n[fds] parent 1, \
                end:\n  row e\n";
    assert_eq!(
        first_process_first(text, "parent", "Parent ", " got ["),
        "[fds] parent 1, after fork:\n  row p\nParent 1 forked child 2\n\
         [fds] child 2, after fork:\n  row c\nParent 1 got [x]\n\
         [fds] parent 1, end:\n  row e\n"
    );
}
