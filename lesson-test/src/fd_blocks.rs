//! The `--show-fds` tables in a lesson's stderr, read back, so a test can ask "which
//! process holds which end of which pipe at this step?" as a student would.
//!
//! `lesson_kit::fds::show` prints one block per step: a line `[fds] <who> <pid>, <step>:`,
//! a header line, then one indented row per descriptor:
//!
//! ```text
//! [fds] parent 4242, after the closes:
//!     fd  kind      object              end    flags
//!      3  pipe      pipe:[33045]        read   cloexec
//! ```
//!
//! Lines that are not part of a block (the lesson's own output, notes) are skipped.

/// One block: the table one process printed at one step.
#[derive(Debug, Clone)]
pub struct Block {
    /// Who printed it: `parent`, `child`, `main thread` (it may hold spaces).
    pub who: String,
    pub pid: i32,
    /// The step, without the closing colon: `after fork`.
    pub step: String,
    pub rows: Vec<Row>,
    /// The block as printed, head line, header and rows, each ending in a newline.
    pub text: String,
}

/// One descriptor of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub fd: i32,
    /// `pipe`, `fifo`, `socket`, `tty`, `file`, ...
    pub kind: String,
    /// The kernel object: `pipe:[33045]`, `socket:[33046]`, a path.
    pub object: String,
    /// `read`, `write` or `rw`.
    pub end: String,
    /// `cloexec`, `nonblock`, `cloexec,nonblock`, or empty.
    pub flags: String,
}

impl Row {
    /// Whether the descriptor is closed by `exec`.
    pub fn cloexec(&self) -> bool {
        self.flags.split(',').any(|flag| flag == "cloexec")
    }

    /// Whether the descriptor is in non-blocking mode.
    pub fn nonblock(&self) -> bool {
        self.flags.split(',').any(|flag| flag == "nonblock")
    }
}

/// The blocks in `text`, in the order they were printed. A row is an indented line that
/// starts with a number, so an indented line of the lesson's own right after a block
/// (multiprocessing's `  @ <pid> <state>`) ends the block instead of being misread.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(head) = line.strip_prefix("[fds] ") else {
            continue;
        };
        let (who_pid, step) = head.split_once(", ").unwrap_or_else(|| {
            panic!("a block's first line is `[fds] WHO PID, STEP:`: {line:?}")
        });
        let (who, pid) = who_pid
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no pid after the process's name: {line:?}"));
        let header = lines.next().unwrap_or_default();
        assert!(
            header.trim_start().starts_with("fd  kind"),
            "a header line after {line:?}, got {header:?}"
        );
        let mut text = format!("{line}\n{header}\n");
        let mut rows = Vec::new();
        while let Some(row) = lines.next_if(|l| is_row(l)) {
            let words: Vec<&str> = row.split_whitespace().collect();
            assert!(words.len() >= 4, "a row has fd, kind, object, end: {row:?}");
            rows.push(Row {
                fd: words[0].parse().expect("is_row checked the number"),
                kind: words[1].to_owned(),
                object: words[2].to_owned(),
                end: words[3].to_owned(),
                flags: words.get(4).copied().unwrap_or_default().to_owned(),
            });
            text.push_str(row);
            text.push('\n');
        }
        blocks.push(Block {
            who: who.to_owned(),
            pid: pid
                .parse()
                .unwrap_or_else(|_| panic!("a pid before the comma: {line:?}")),
            step: step.trim_end_matches(':').to_owned(),
            rows,
            text,
        });
    }
    blocks
}

/// Whether `line` is a row of a block: indented, starting with a descriptor number.
pub fn is_row(line: &str) -> bool {
    line.starts_with("  ")
        && line
            .split_whitespace()
            .next()
            .is_some_and(|word| word.parse::<i32>().is_ok())
}

/// The steps `who` printed, in order.
pub fn steps<'a>(blocks: &'a [Block], who: &str) -> Vec<&'a str> {
    blocks
        .iter()
        .filter(|b| b.who == who)
        .map(|b| b.step.as_str())
        .collect()
}

/// The one block of `who` at `step`; fails the test if there is none or more than one.
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

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "before\n\
        [fds] main thread 7, after pipe:\n\
        \x20  fd  kind  object    end    flags\n\
        \x20   3  pipe  pipe:[9]  read   cloexec\n\
        \x20   4  pipe  pipe:[9]  write\n\
        \x20 @ 12 Z\n\
        [fds] child 8, after fork:\n\
        \x20  fd  kind  object    end    flags\n\
        \x20  10  fifo  /tmp/x/p  rw     cloexec,nonblock\n\
        after\n";

    #[test]
    fn blocks_reads_who_pid_step_rows_and_text() {
        let found = blocks(TWO);
        assert_eq!(found.len(), 2, "{found:#?}");
        let b = &found[0];
        assert_eq!((&*b.who, b.pid, &*b.step), ("main thread", 7, "after pipe"));
        assert_eq!(holding(b, "pipe:[9]"), [held(3, "read"), held(4, "write")]);
        assert_eq!(b.rows[1].flags, "");
        assert!(b.text.starts_with("[fds] main thread 7, after pipe:\n"));
        assert!(
            b.text.ends_with("   4  pipe  pipe:[9]  write\n"),
            "{}",
            b.text
        );
        let c = &found[1];
        assert_eq!((&*c.who, c.pid, &*c.step), ("child", 8, "after fork"));
        assert_eq!(c.rows.len(), 1);
        assert_eq!((c.rows[0].fd, &*c.rows[0].kind), (10, "fifo"));
        assert_eq!(c.rows[0].object, "/tmp/x/p");
    }

    #[test]
    fn an_indented_line_that_is_not_a_row_ends_the_block() {
        let found = blocks(TWO);
        assert_eq!(found[0].rows.len(), 2);
        assert!(!found[0].text.contains('@'));
        assert!(!is_row("  @ 12 Z") && !is_row("3  pipe") && is_row("   3  pipe"));
    }

    #[test]
    fn flags_are_read_one_by_one() {
        let found = blocks(TWO);
        let (read, write, fifo) =
            (&found[0].rows[0], &found[0].rows[1], &found[1].rows[0]);
        assert!(read.cloexec() && !read.nonblock());
        assert!(!write.cloexec() && !write.nonblock());
        assert!(fifo.cloexec() && fifo.nonblock());
    }

    #[test]
    fn steps_and_block_pick_one_process() {
        let found = blocks(TWO);
        assert_eq!(steps(&found, "child"), ["after fork"]);
        assert_eq!(steps(&found, "main thread"), ["after pipe"]);
        assert!(steps(&found, "parent").is_empty());
        assert_eq!(block(&found, "child", "after fork").pid, 8);
        // The same step in two processes: each has its own block.
        let both = "[fds] parent 1, after fork:\n  fd  kind\n\
                    [fds] child 2, after fork:\n  fd  kind\n\
                    [fds] parent 1, end:\n  fd  kind\n";
        let both = blocks(both);
        assert_eq!(block(&both, "parent", "after fork").pid, 1);
        assert_eq!(block(&both, "child", "after fork").pid, 2);
        assert_eq!(steps(&both, "parent"), ["after fork", "end"]);
    }

    #[test]
    #[should_panic(expected = "one block of child after pipe")]
    fn block_fails_when_the_step_is_missing() {
        block(&blocks(TWO), "child", "after pipe");
    }

    #[test]
    #[should_panic(expected = "one block of parent x")]
    fn block_fails_when_the_step_is_printed_twice() {
        let twice =
            "[fds] parent 1, x:\n  fd  kind\n[fds] parent 1, x:\n  fd  kind\n";
        block(&blocks(twice), "parent", "x");
    }

    #[test]
    #[should_panic(expected = "a header line")]
    fn a_block_without_its_header_fails_loudly() {
        blocks("[fds] parent 1, x:\n   3  pipe  pipe:[9]  read\n");
    }
}
