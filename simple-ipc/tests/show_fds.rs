//! `--show-fds`: the descriptor tables that `4-redirect`, `5-popen` and the
//! `4-upcase` they exec print at each step, and what the tables prove (which
//! process holds which end, what `dup2` moved, what `exec` kept).

use lesson_test::fd_blocks::{self, Block, Row, held, holding};
use lesson_test::{Finished, Lesson, TempDir, check_transcript_of};
use std::path::{Path, PathBuf};
use std::time::Duration;

const UPCASE: &str = env!("CARGO_BIN_EXE_4-upcase");
const REDIRECT: &str = env!("CARGO_BIN_EXE_4-redirect");
const POPEN: &str = env!("CARGO_BIN_EXE_5-popen");

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
}

fn transcript(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts")
        .join(format!("simple-ipc-{name}.txt"))
}

/// The blocks in `text`. Lines that `4-redirect` shows from out.txt (`  out.txt: <line>`)
/// count as printed: after `2>&1`, the tables of the child and of `4-upcase` went into
/// that file.
fn blocks(text: &str) -> Vec<Block> {
    let unwrapped: String = text
        .lines()
        .map(|line| line.strip_prefix("  out.txt: ").unwrap_or(line))
        .flat_map(|line| [line, "\n"])
        .collect();
    fd_blocks::blocks(&unwrapped)
}

/// `(who, step)` of every block, in order.
fn steps(blocks: &[Block]) -> Vec<(&str, &str)> {
    blocks
        .iter()
        .map(|b| (b.who.as_str(), b.step.as_str()))
        .collect()
}

/// The row of descriptor `fd`.
fn row(block: &Block, fd: i32) -> &Row {
    block
        .rows
        .iter()
        .find(|r| r.fd == fd)
        .unwrap_or_else(|| panic!("no fd {fd} in {block:#?}"))
}

/// The lesson's pipe in its table after `pipe2`: the one pipe with a read and a
/// write end, both close-on-exec and blocking (the stop pipe is non-blocking, the
/// harness's pipes are not close-on-exec).
fn lesson_pipe(block: &Block) -> String {
    let ours: Vec<&Row> = block
        .rows
        .iter()
        .filter(|r| r.kind == "pipe" && r.cloexec() && !r.nonblock())
        .collect();
    assert_eq!(ours.len(), 2, "{block:#?}");
    assert_eq!(ours[0].object, ours[1].object, "{block:#?}");
    assert_eq!((&*ours[0].end, &*ours[1].end), ("read", "write"));
    ours[0].object.clone()
}

// ---------------------------------------------------------------- 4-upcase

#[test]
fn upcase_prints_its_table_first_only_with_the_flag() {
    let mut running = lesson(UPCASE).arg("--show-fds").piped_stdin().spawn();
    assert!(running.write_stdin(b"one\n"));
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let head = format!("[fds] 4-upcase {}, after exec:\n", run.pid);
    assert!(run.stderr.starts_with(&head), "{}", run.transcript());
    let table = &blocks(&run.stderr)[0];
    assert_eq!(
        (row(table, 0).kind.as_str(), row(table, 0).end.as_str()),
        ("pipe", "read")
    );
    assert_eq!(run.stdout_text(), "ONE\n");

    let mut running = lesson(UPCASE).piped_stdin().spawn();
    assert!(running.write_stdin(b"one\n"));
    let run = running.finish();
    assert!(!run.stderr.contains("[fds]"), "{}", run.transcript());
}

// ---------------------------------------------------------------- 4-redirect

/// A path as the tables show it: one longer than 40 characters is cut to its last
/// 39 behind an ellipsis.
fn as_shown(path: &str) -> String {
    let count = path.chars().count();
    if count <= 40 {
        return path.to_owned();
    }
    let tail: String = path.chars().skip(count - 39).collect();
    format!("…{tail}")
}

/// `4-redirect --show-fds` with its files in `tmp`: the run, and the paths of
/// in.txt and out.txt as the tables show them.
fn redirect_run(tmp: &TempDir) -> (Finished, String, String) {
    let run = lesson(REDIRECT)
        .arg("--show-fds")
        .env("TMPDIR", tmp.path())
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let dir = tmp
        .path()
        .join(format!("simple-ipc-{}-4-redirect", run.pid));
    let path = |name: &str| as_shown(&dir.join(name).display().to_string());
    let (input, out) = (path("in.txt"), path("out.txt"));
    (run, input, out)
}

/// The tables of `4-redirect`, by process: the parent's, the child's on stderr,
/// and those that went into out.txt after `2>&1` (shown when it prints the file).
const REDIRECT_STEPS: [(&str, &str); 13] = [
    ("parent", "after dup(1) and open"),
    ("parent", "after dup2 onto fd 1"),
    ("parent", "after close(file)"),
    ("parent", "after dup2 back onto fd 1 and close(saved)"),
    ("parent", "after fork"),
    ("parent", "after open in.txt, out.txt and try_clone"),
    ("parent", "after Command::spawn"),
    ("child", "after fork"),
    ("child", "after < in.txt (open, dup2 onto fd 0, close)"),
    ("child", "after > out.txt (open, dup2 onto fd 1, close)"),
    ("child", "after 2>&1 (dup2(1, 2))"),
    ("4-upcase", "after exec"),
    ("4-upcase", "after exec"),
];

#[test]
fn redirect_prints_a_table_at_each_step_in_the_process_that_made_it() {
    let tmp = TempDir::new("fds-redirect");
    let (run, _, _) = redirect_run(&tmp);
    let from_stderr = by_process(&run.stderr);
    let from_file = blocks(&run.stdout_text());
    assert_eq!(
        steps(&from_stderr),
        REDIRECT_STEPS[..10],
        "{}",
        run.transcript()
    );
    assert_eq!(
        steps(&from_file),
        REDIRECT_STEPS[10..],
        "{}",
        run.transcript()
    );
    // Pids: the parent is the lesson; the child and the program it becomes are one
    // process; step 3's 4-upcase is another.
    for b in &from_stderr {
        assert_eq!(b.pid == run.pid, b.who == "parent", "{b:#?}");
    }
    let child = from_stderr.iter().find(|b| b.who == "child").unwrap().pid;
    assert_eq!(from_file[0].pid, child);
    assert_eq!(from_file[1].pid, child);
    assert_ne!(from_file[2].pid, child);
    // Without the flag, no table anywhere.
    let plain = lesson(REDIRECT).env("TMPDIR", tmp.path()).run();
    assert_eq!(plain.code(), Some(0), "{}", plain.transcript());
    assert!(
        !plain.stdout_text().contains("[fds]"),
        "{}",
        plain.transcript()
    );
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
    assert!(tmp.entries().is_empty(), "left behind: {:?}", tmp.entries());
}

#[test]
fn redirect_dup2_moves_fd_1_to_the_file_and_back() {
    let tmp = TempDir::new("fds-own");
    let (run, _, out) = redirect_run(&tmp);
    let blocks = blocks(&run.stderr);
    let first = &blocks[0];
    // dup(1): a second descriptor for what fd 1 is (the harness's stdout pipe),
    // and open: the file, close-on-exec (std opens everything with O_CLOEXEC).
    let stdout = row(first, 1).object.clone();
    assert_ne!(stdout, out);
    let copies = holding(first, &stdout);
    assert_eq!(copies.len(), 2, "fd 1 and its saved copy: {first:#?}");
    let saved = copies[1].0;
    let file = holding(first, &out);
    assert_eq!(file.len(), 1, "{first:#?}");
    assert!(row(first, file[0].0).cloexec(), "{first:#?}");

    // dup2(file, 1): fd 1 names the file; the file's own fd still does too.
    let second = &blocks[1];
    assert_eq!(
        holding(second, &out),
        [held(1, "write"), held(file[0].0, "write")]
    );
    assert!(
        !row(second, 1).cloexec(),
        "dup2's copy is not close-on-exec"
    );
    assert_eq!(holding(second, &stdout), [held(saved, "write")]);

    // close(file): fd 1 alone keeps the file open.
    let third = &blocks[2];
    assert_eq!(holding(third, &out), [held(1, "write")], "{third:#?}");

    // dup2(saved, 1), close(saved): fd 1 is stdout again, the file is closed,
    // the spare name is gone.
    let fourth = &blocks[3];
    assert!(holding(fourth, &out).is_empty(), "{fourth:#?}");
    assert_eq!(holding(fourth, &stdout), [held(1, "write")], "{fourth:#?}");
    let before: Vec<i32> = first.rows.iter().map(|r| r.fd).collect();
    let after: Vec<i32> = fourth.rows.iter().map(|r| r.fd).collect();
    let expected: Vec<i32> = before
        .into_iter()
        .filter(|fd| *fd != saved && *fd != file[0].0)
        .collect();
    assert_eq!(after, expected, "the table as before: {fourth:#?}");
}

#[test]
fn redirect_child_gets_each_operator_as_one_dup2_and_exec_keeps_only_them() {
    let tmp = TempDir::new("fds-child");
    let (run, input, out) = redirect_run(&tmp);
    let tables = blocks(&run.stderr);
    let find = |who: &str, step: &str| {
        tables
            .iter()
            .find(|b| b.who == who && b.step == step)
            .unwrap_or_else(|| panic!("{who} {step}: {}", run.transcript()))
    };
    // fork copies the table: the same fds, the same objects.
    let parent = find("parent", "after fork");
    let child = find("child", "after fork");
    assert_eq!(parent.rows, child.rows);
    // < in.txt: fd 0 is the file, and the descriptor open returned is closed.
    let less = find("child", REDIRECT_STEPS[8].1);
    assert_eq!(holding(less, &input), [held(0, "read")], "{less:#?}");
    assert_eq!(row(less, 1).object, row(child, 1).object);
    // > out.txt: fd 1 is the file, once; fd 2 is still the old stderr.
    let more = find("child", REDIRECT_STEPS[9].1);
    assert_eq!(holding(more, &out), [held(1, "write")], "{more:#?}");
    assert_eq!(row(more, 2).object, row(child, 2).object);
    // 2>&1, in out.txt: fd 2 is what fd 1 is.
    let from_file = blocks(&run.stdout_text());
    let both = &from_file[0];
    assert_eq!(holding(both, &out), [held(1, "write"), held(2, "write")]);
    // exec: the close-on-exec descriptors (the stop pipe) are gone, 0, 1 and 2
    // are as the child left them.
    for execd in &from_file[1..] {
        assert_eq!(holding(execd, &input), [held(0, "read")], "{execd:#?}");
        assert_eq!(holding(execd, &out), [held(1, "write"), held(2, "write")]);
        assert!(execd.rows.iter().all(|r| !r.cloexec()), "{execd:#?}");
        let kept: Vec<&Row> = both.rows.iter().filter(|r| !r.cloexec()).collect();
        let execd_rows: Vec<&Row> = execd.rows.iter().collect();
        assert_eq!(execd_rows, kept, "{}", run.transcript());
    }
    // Command: our three files open, then after spawn none of them is ours.
    let opened = find("parent", REDIRECT_STEPS[5].1);
    assert_eq!(holding(opened, &input).len(), 1, "{opened:#?}");
    assert_eq!(holding(opened, &out).len(), 2, "{opened:#?}");
    let spawned = find("parent", REDIRECT_STEPS[6].1);
    assert!(holding(spawned, &input).is_empty(), "{spawned:#?}");
    assert!(holding(spawned, &out).is_empty(), "{spawned:#?}");
}

// ---------------------------------------------------------------- 5-popen

const POPEN_READ_STEPS: [(&str, &str); 8] = [
    ("parent", "after pipe2"),
    ("parent", "after fork"),
    ("parent", "after close(write end)"),
    ("child", "after fork"),
    ("child", "after close(read end)"),
    ("child", "after dup2 onto fd 1"),
    ("child", "after close(write end)"),
    ("4-upcase", "after exec"),
];

const POPEN_WRITE_STEPS: [(&str, &str); 9] = [
    ("parent", "after pipe2"),
    ("parent", "after fork"),
    ("parent", "after close(read end)"),
    ("parent", "after close(write end)"),
    ("child", "after fork"),
    ("child", "after close(write end)"),
    ("child", "after dup2 onto fd 0"),
    ("child", "after close(read end)"),
    ("4-upcase", "after exec"),
];

/// The run's text cut at the step titles (`[1] ...`): the text of each step.
fn sections(text: &str) -> Vec<String> {
    let mut sections: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') && line.as_bytes().get(2) == Some(&b']') {
            sections.push(String::new());
        }
        if let Some(section) = sections.last_mut() {
            section.push_str(line);
            section.push('\n');
        }
    }
    sections
}

/// The blocks of one step, the parent's first, then the child's and the program's
/// (the two processes print at the same time); each process's own order is kept.
fn by_process(text: &str) -> Vec<Block> {
    let (mut parent, others): (Vec<Block>, Vec<Block>) =
        blocks(text).into_iter().partition(|b| b.who == "parent");
    parent.extend(others);
    parent
}

fn popen_run(extra: &[&str]) -> Finished {
    lesson(POPEN).arg("--show-fds").args(extra).run()
}

#[test]
fn popen_prints_a_table_at_each_step_in_each_process() {
    let run = popen_run(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let sections = sections(&run.stderr);
    assert_eq!(sections.len(), 4, "{}", run.transcript());
    let read = by_process(&sections[0]);
    assert_eq!(steps(&read), POPEN_READ_STEPS, "{}", run.transcript());
    let write = by_process(&sections[1]);
    assert_eq!(steps(&write), POPEN_WRITE_STEPS, "{}", run.transcript());
    for section in &sections[2..] {
        let command = by_process(section);
        let expected = [
            ("parent", "after Command::spawn"),
            ("4-upcase", "after exec"),
        ];
        assert_eq!(steps(&command), expected, "{}", run.transcript());
    }
    for step in [&read, &write] {
        let child = step.iter().find(|b| b.who == "child").unwrap().pid;
        for b in step {
            let pid = if b.who == "parent" { run.pid } else { child };
            assert_eq!(b.pid, pid, "{b:#?}");
        }
    }
    // The faithful output is all there, and without the flag no table is.
    assert!(run.stdout_text().contains("read: SPAM\nread: EGGS\n"));
    let plain = lesson(POPEN).run();
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
}

#[test]
fn popen_r_after_the_closes_the_parent_holds_only_the_read_end() {
    let run = popen_run(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let step = by_process(&sections(&run.stderr)[0]);
    let pipe = lesson_pipe(&step[0]);
    // fork copies both ends into the child.
    assert_eq!(holding(&step[1], &pipe).len(), 2, "{:#?}", step[1]);
    assert_eq!(holding(&step[3], &pipe).len(), 2, "{:#?}", step[3]);
    // The parent closes its write end: the inode shows once, `read`.
    let parent = &step[2];
    assert_eq!(holding(parent, &pipe).len(), 1, "{parent:#?}");
    assert_eq!(holding(parent, &pipe)[0].1, "read");
    // The child closes its read end, makes the write end fd 1, closes the original.
    assert_eq!(holding(&step[4], &pipe).len(), 1, "{:#?}", step[4]);
    assert_eq!(holding(&step[4], &pipe)[0].1, "write");
    let dup2 = &step[5];
    assert_eq!(holding(dup2, &pipe)[0], held(1, "write"), "{dup2:#?}");
    assert!(!row(dup2, 1).cloexec(), "dup2's copy is not close-on-exec");
    assert_eq!(holding(dup2, &pipe).len(), 2, "{dup2:#?}");
    assert_eq!(
        holding(&step[6], &pipe),
        [held(1, "write")],
        "{:#?}",
        step[6]
    );
    // After exec the program has the write end as its stdout, nothing else of ours.
    let execd = &step[7];
    assert_eq!(holding(execd, &pipe), [held(1, "write")], "{execd:#?}");
    assert!(execd.rows.iter().all(|r| !r.cloexec()), "{execd:#?}");
    let kept: Vec<&Row> = step[6].rows.iter().filter(|r| !r.cloexec()).collect();
    assert_eq!(execd.rows.iter().collect::<Vec<_>>(), kept);
}

#[test]
fn popen_w_after_the_closes_the_child_holds_only_the_read_end_as_fd_0() {
    let run = popen_run(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let step = by_process(&sections(&run.stderr)[1]);
    let pipe = lesson_pipe(&step[0]);
    assert_eq!(holding(&step[1], &pipe).len(), 2, "{:#?}", step[1]);
    assert_eq!(holding(&step[4], &pipe).len(), 2, "{:#?}", step[4]);
    // The parent keeps the write end only, then closes it too: the child's EOF.
    let parent = &step[2];
    assert_eq!(holding(parent, &pipe).len(), 1, "{parent:#?}");
    assert_eq!(holding(parent, &pipe)[0].1, "write");
    assert!(holding(&step[3], &pipe).is_empty(), "{:#?}", step[3]);
    // The child: only the read end, then as fd 0, then fd 0 alone.
    assert_eq!(holding(&step[5], &pipe).len(), 1, "{:#?}", step[5]);
    assert_eq!(holding(&step[5], &pipe)[0].1, "read");
    let dup2 = &step[6];
    assert_eq!(holding(dup2, &pipe)[0], held(0, "read"), "{dup2:#?}");
    assert_eq!(holding(dup2, &pipe).len(), 2, "{dup2:#?}");
    assert_eq!(
        holding(&step[7], &pipe),
        [held(0, "read")],
        "{:#?}",
        step[7]
    );
    assert_eq!(
        holding(&step[8], &pipe),
        [held(0, "read")],
        "{:#?}",
        step[8]
    );
}

#[test]
fn popen_command_keeps_one_end_in_the_parent_and_hands_the_other_over() {
    let run = popen_run(&[]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let sections = sections(&run.stderr);
    for (section, fd, ours, theirs) in [
        (&sections[2], 1, "read", "write"),
        (&sections[3], 0, "write", "read"),
    ] {
        let step = by_process(section);
        let execd = &step[1];
        let pipe = row(execd, fd).object.clone();
        assert_eq!(
            holding(execd, &pipe),
            [(fd, theirs.to_owned())],
            "{execd:#?}"
        );
        let parent = holding(&step[0], &pipe);
        assert_eq!(parent.len(), 1, "{:#?}", step[0]);
        assert_eq!(parent[0].1, ours);
        assert!(
            row(&step[0], parent[0].0).cloexec(),
            "Command's pipes are cloexec"
        );
    }
}

#[test]
fn forget_close_shows_the_write_end_that_keeps_eof_from_coming() {
    for (mode, section) in [("r", 0), ("w", 1)] {
        let run = popen_run(&["--forget-close", mode, "--timeout", "0.3"]);
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        let sections = sections(&run.stderr);
        assert_eq!(sections.len(), section + 1, "{}", run.transcript());
        let step = by_process(&sections[section]);
        let pipe = lesson_pipe(&step[0]);
        let step_name =
            format!("after NOT closing its write end (--forget-close {mode})");
        let kept = step
            .iter()
            .find(|b| b.step == step_name)
            .unwrap_or_else(|| panic!("{}", run.transcript()));
        assert_eq!(kept.who, "parent");
        let ends: Vec<String> = holding(kept, &pipe)
            .into_iter()
            .map(|(_, end)| end)
            .collect();
        let expected: &[&str] = if mode == "r" {
            &["read", "write"]
        } else {
            &["write"]
        };
        assert_eq!(
            ends, expected,
            "the line that should not be there: {kept:#?}"
        );
        assert!(!run.stderr.contains("after close(write end)\n") || mode == "w");
    }
}

// ---------------------------------------------------------------- the book

/// A run's merged text with each step's blocks grouped as [`by_process`] does, the
/// lines that are not tables after them in their order: the text is then the same
/// from run to run, whichever process printed first.
fn grouped(text: &str) -> String {
    let mut out = String::new();
    let mut chunks: Vec<String> = Vec::new();
    let flush = |chunks: &mut Vec<String>, out: &mut String| {
        let (mut tables, lines): (Vec<String>, Vec<String>) =
            chunks.drain(..).partition(|c| c.starts_with("[fds] "));
        tables.sort_by_key(|c| !c.starts_with("[fds] parent "));
        out.extend(tables);
        out.extend(lines);
    };
    for line in text.lines() {
        let title = line.starts_with('[') && line.as_bytes().get(2) == Some(&b']');
        if title {
            flush(&mut chunks, &mut out);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        match chunks.last_mut() {
            Some(chunk) if chunk.starts_with("[fds] ") && is_row(line) => {
                chunk.push_str(line);
                chunk.push('\n');
            }
            _ => chunks.push(format!("{line}\n")),
        }
    }
    flush(&mut chunks, &mut out);
    out
}

#[test]
fn grouped_puts_the_parents_tables_first_in_each_step() {
    let text = "$ cmd\n[1] one\n[fds] child 2, after fork:\n    0  c\nline a\n\
                [fds] parent 1, after fork:\n    0  p\n  out.txt: b\n[2] two\nc\n";
    assert_eq!(
        grouped(text),
        "$ cmd\n[1] one\n[fds] parent 1, after fork:\n    0  p\n\
         [fds] child 2, after fork:\n    0  c\nline a\n  out.txt: b\n[2] two\nc\n"
    );
}

/// A row or the header of a table (`   fd  kind`, `  251  pipe`), not a line that
/// `4-redirect` shows from out.txt (`  out.txt: ...`).
fn is_row(line: &str) -> bool {
    line.starts_with("  ")
        && line
            .as_bytes()
            .get(2)
            .is_some_and(|b| *b == b' ' || b.is_ascii_digit())
}

fn book_run(bin: &str, name: &str, args: &[&str]) -> Finished {
    let run = lesson(bin)
        .shown_as(&format!("cargo run -q -p simple-ipc --bin {name} --"))
        .args(args)
        .env("TMPDIR", "/tmp")
        .merge_stderr()
        .run();
    let text = grouped(&run.stdout_text());
    Finished {
        stdout: text.into_bytes(),
        ..run
    }
}

#[test]
fn book_transcripts_of_the_tables_match_a_fresh_run() {
    let run = book_run(REDIRECT, "4-redirect", &["--show-fds"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_transcript_of(&transcript("4-redirect-fds"), &run);
    let run = book_run(POPEN, "5-popen", &["--show-fds"]);
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    check_transcript_of(&transcript("5-popen-fds"), &run);
    // The default --timeout (2 s), so that the command fits the page
    let args = ["--forget-close", "r", "--show-fds"];
    let run = book_run(POPEN, "5-popen", &args);
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    check_transcript_of(&transcript("5-popen-forget-close-fds"), &run);
}
