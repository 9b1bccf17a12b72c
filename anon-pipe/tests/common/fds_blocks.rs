//! The `--show-fds` blocks in a lesson's stderr, parsed back, for the tests of the three
//! pipe lessons (anon-pipe, fdopen-lines, pipe-thread include this one file by path).
//! A block is `[fds] <who> <pid>, <step>:`, a header line, then one indented row per
//! descriptor: `  3  pipe  pipe:[33045]  read  cloexec`.

#![allow(dead_code)] // each test crate uses its own part

/// One block, as printed by `lesson_kit::fds::show`.
#[derive(Debug, Clone)]
pub struct Block {
    pub who: String,
    pub pid: i32,
    pub step: String,
    pub rows: Vec<Row>,
}

/// One descriptor of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fd: i32,
    pub kind: String,
    pub object: String,
    pub end: String,
    pub cloexec: bool,
}

/// The blocks in `text`, in the order they were printed. `who` may hold spaces
/// (`main thread`): the pid is the last word before the comma.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(head) = line.strip_prefix("[fds] ") else {
            continue;
        };
        let (who_pid, step) = head.split_once(", ").expect("who pid, step");
        let (who, pid) = who_pid.rsplit_once(' ').expect("who pid");
        let header = lines.next().expect("a header line");
        assert!(header.trim_start().starts_with("fd  kind"), "{header}");
        let mut rows = Vec::new();
        while let Some(row) = lines.peek().and_then(|l| l.strip_prefix("  ")) {
            let words: Vec<&str> = row.split_whitespace().collect();
            rows.push(Row {
                fd: words[0].parse().expect("fd number"),
                kind: words[1].to_owned(),
                object: words[2].to_owned(),
                end: words[3].to_owned(),
                cloexec: words.get(4).is_some_and(|f| f.contains("cloexec")),
            });
            lines.next();
        }
        blocks.push(Block {
            who: who.to_owned(),
            pid: pid.parse().expect("pid"),
            step: step.trim_end_matches(':').to_owned(),
            rows,
        });
    }
    blocks
}

/// The steps `who` printed, in order.
pub fn steps<'a>(blocks: &'a [Block], who: &str) -> Vec<&'a str> {
    blocks
        .iter()
        .filter(|b| b.who == who)
        .map(|b| b.step.as_str())
        .collect()
}

/// The one block of `who` at `step`.
pub fn block<'a>(blocks: &'a [Block], who: &str, step: &str) -> &'a Block {
    let found: Vec<&Block> = blocks
        .iter()
        .filter(|b| b.who == who && b.step == step)
        .collect();
    assert_eq!(found.len(), 1, "one block of {who} {step}: {blocks:#?}");
    found[0]
}

/// `(fd, end)` of every row of `block` that holds `object`, in fd order.
pub fn holding(block: &Block, object: &str) -> Vec<(i32, String)> {
    block
        .rows
        .iter()
        .filter(|r| r.object == object)
        .map(|r| (r.fd, r.end.clone()))
        .collect()
}

/// `(fd, end)`, to compare with [`holding`].
pub fn held(fd: i32, end: &str) -> (i32, String) {
    (fd, end.to_owned())
}

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
        read.cloexec && write.cloexec,
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

#[test]
fn blocks_reads_who_pid_step_and_rows() {
    let text = "note\n[fds] main thread 7, after pipe:\n   fd  kind  object  end    \
                flags\n    3  pipe  pipe:[9]  read   cloexec\n    4  pipe  pipe:[9]  \
                write\nafter\n";
    let found = blocks(text);
    assert_eq!(found.len(), 1);
    let b = &found[0];
    assert_eq!((&*b.who, b.pid, &*b.step), ("main thread", 7, "after pipe"));
    assert_eq!(holding(b, "pipe:[9]"), [held(3, "read"), held(4, "write")]);
    assert!(b.rows[0].cloexec && !b.rows[1].cloexec);
}
