//! `--show-fds`: the descriptor tables that parent and child print at each step of
//! the wiring, and what they prove (who holds which end of which pipe).

use lesson_test::fd_blocks::{Block, Row, block, blocks};
use lesson_test::{Finished, Lesson, check_transcript_of, number_after};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bidir-spawn");
const CHILD_BIN: &str = env!("CARGO_BIN_EXE_bidir-child");

/// The parent's steps, in the order it prints them.
const PARENT_STEPS: [&str; 6] = [
    "after pipe2 twice",
    "after fork",
    "after closing the child's ends",
    "after dup2 onto fd 0 and 1",
    "after closing the originals",
    "after closing both pipes",
];

/// The forked child's steps, before exec.
const CHILD_STEPS: [&str; 4] = [
    "after fork",
    "after closing the parent's ends",
    "after dup2 onto fd 0 and 1",
    "after closing the originals and what it inherited",
];

fn lesson() -> Lesson {
    Lesson::new(BIN).deadline(Duration::from_secs(10))
}

/// `(fd, end, cloexec)` of every row of `block` that holds `object`: here, whether a
/// descriptor survives `exec` is the point.
fn holding(block: &Block, object: &str) -> Vec<(i32, String, bool)> {
    block
        .rows
        .iter()
        .filter(|r| r.object == object)
        .map(|r| (r.fd, r.end.clone(), r.cloexec()))
        .collect()
}

fn held(fd: i32, end: &str, cloexec: bool) -> (i32, String, bool) {
    (fd, end.to_owned(), cloexec)
}

/// The two pipes the parent made: (child to parent, parent to child), from its
/// first table, where each shows a read end and then a write end.
fn the_two_pipes(blocks: &[Block]) -> (String, String) {
    let first = block(blocks, "parent", PARENT_STEPS[0]);
    let pipes: Vec<&Row> = first.rows.iter().filter(|r| r.kind == "pipe").collect();
    // The harness's own pipes (stdout, stderr) are there too: ours are the last
    // four, made in the order of the lesson's two pipe2 calls.
    assert!(pipes.len() >= 4, "{first:#?}");
    let ours = &pipes[pipes.len() - 4..];
    for pair in ours.chunks(2) {
        assert_eq!(pair[0].object, pair[1].object, "{first:#?}");
        assert_eq!((&*pair[0].end, &*pair[1].end), ("read", "write"));
        assert!(pair[0].cloexec() && pair[1].cloexec(), "pipe2(O_CLOEXEC)");
    }
    assert_ne!(ours[0].object, ours[2].object, "two pipes, not one");
    (ours[0].object.clone(), ours[2].object.clone())
}

fn show_fds_run(extra: &[&str]) -> Finished {
    let run = lesson()
        .args(["--speed", "100", "--show-fds"])
        .args(extra)
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run
}

#[test]
fn each_process_prints_a_table_at_each_step_of_the_wiring() {
    let run = show_fds_run(&[]);
    let blocks = blocks(&run.stderr);
    let steps = |who: &str| -> Vec<&str> {
        blocks
            .iter()
            .filter(|b| b.who == who)
            .map(|b| b.step.as_str())
            .collect()
    };
    assert_eq!(steps("parent"), PARENT_STEPS, "{}", run.transcript());
    assert_eq!(steps("child"), CHILD_STEPS, "{}", run.transcript());
    assert_eq!(steps("bidir-child"), ["after exec"], "{}", run.transcript());
    assert_eq!(blocks.len(), 11, "{}", run.transcript());
    // Who is who: the parent is the lesson; the forked child and the program it
    // became are one process, the one that says `Child <pid> of <ppid>`.
    let child = number_after(&run.stderr, "Child ");
    for b in &blocks {
        let expected = if b.who == "parent" { run.pid } else { child };
        assert_eq!(b.pid, expected, "{b:#?}");
    }
    // The conversation is unchanged: the document's lines are all there.
    let others: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.starts_with("[fds] ") && !l.starts_with("  "))
        .collect();
    assert_eq!(others.len(), 3, "{others:?}");
    assert!(run.stdout.is_empty(), "{}", run.transcript());
}

#[test]
fn after_the_closes_each_process_holds_one_end_of_each_pipe() {
    let run = show_fds_run(&[]);
    let blocks = blocks(&run.stderr);
    let (up, down) = the_two_pipes(&blocks); // child to parent, parent to child

    // fork copies the table: both processes start with all four ends.
    for who in ["parent", "child"] {
        let after_fork = block(&blocks, who, "after fork");
        assert_eq!(holding(after_fork, &up).len(), 2, "{after_fork:#?}");
        assert_eq!(holding(after_fork, &down).len(), 2, "{after_fork:#?}");
    }

    // The parent reads what comes up and writes what goes down; the child the
    // other way round. Each pipe's inode shows once per process: a close left out
    // would show a second line, the leaked end that keeps EOF from coming.
    let parent = block(&blocks, "parent", "after closing the child's ends");
    let child = block(&blocks, "child", "after closing the parent's ends");
    let (p_up, p_down) = (holding(parent, &up), holding(parent, &down));
    let (c_up, c_down) = (holding(child, &up), holding(child, &down));
    assert_eq!((p_up.len(), p_down.len()), (1, 1), "{parent:#?}");
    assert_eq!((c_up.len(), c_down.len()), (1, 1), "{child:#?}");
    assert_eq!((&*p_up[0].1, &*p_down[0].1), ("read", "write"));
    assert_eq!((&*c_up[0].1, &*c_down[0].1), ("write", "read"));
}

#[test]
fn dup2_copies_the_ends_onto_fd_0_and_1_without_close_on_exec() {
    let run = show_fds_run(&[]);
    let blocks = blocks(&run.stderr);
    let (up, down) = the_two_pipes(&blocks);

    // dup2 makes a second descriptor for the same end; the copy does not inherit
    // O_CLOEXEC, which is what lets fd 0 and fd 1 survive exec.
    let parent = block(&blocks, "parent", "after dup2 onto fd 0 and 1");
    assert_eq!(
        holding(parent, &up)[0],
        held(0, "read", false),
        "{parent:#?}"
    );
    assert_eq!(holding(parent, &up)[1].1, "read");
    assert!(holding(parent, &up)[1].2, "the original keeps O_CLOEXEC");
    assert_eq!(holding(parent, &down)[0], held(1, "write", false));
    assert_eq!(holding(parent, &down).len(), 2);
    let child = block(&blocks, "child", "after dup2 onto fd 0 and 1");
    assert_eq!(
        holding(child, &down)[0],
        held(0, "read", false),
        "{child:#?}"
    );
    assert_eq!(
        holding(child, &up)[0],
        held(1, "write", false),
        "{child:#?}"
    );
    assert_eq!(
        (holding(child, &up).len(), holding(child, &down).len()),
        (2, 2)
    );

    // Then the originals go: fd 0 and fd 1 are each pipe's only descriptor.
    let parent = block(&blocks, "parent", "after closing the originals");
    assert_eq!(
        holding(parent, &up),
        [held(0, "read", false)],
        "{parent:#?}"
    );
    assert_eq!(holding(parent, &down), [held(1, "write", false)]);
    let child = block(&blocks, "child", CHILD_STEPS[3]);
    assert_eq!(
        holding(child, &down),
        [held(0, "read", false)],
        "{child:#?}"
    );
    assert_eq!(holding(child, &up), [held(1, "write", false)]);
    // ...and the child has closed everything else above 2 (the parent's signalfd
    // among them) before exec.
    let fds: Vec<i32> = child.rows.iter().map(|r| r.fd).collect();
    assert_eq!(fds, [0, 1, 2], "{child:#?}");

    // exec keeps the process and those three: the program starts with the pipes
    // as its stdin and stdout, and nothing else.
    let execd = block(&blocks, "bidir-child", "after exec");
    assert_eq!(execd.rows, child.rows, "{}", run.transcript());

    // At the end the parent puts /dev/null on fd 0 and 1: no end of either pipe
    // is left anywhere in it.
    let last = block(&blocks, "parent", "after closing both pipes");
    assert!(holding(last, &up).is_empty() && holding(last, &down).is_empty());
    assert_eq!((&*last.rows[0].kind, &*last.rows[1].kind), ("null", "null"));
}

#[test]
fn with_command_the_parent_shows_its_two_ends_and_the_program_its_table() {
    let run = show_fds_run(&["--command"]);
    let blocks = blocks(&run.stderr);
    let whos: Vec<(&str, &str)> = blocks
        .iter()
        .map(|b| (b.who.as_str(), b.step.as_str()))
        .collect();
    // Command forks inside std: no table between fork and exec.
    assert_eq!(
        whos.iter().filter(|(who, _)| *who == "parent").count(),
        2,
        "{whos:?}"
    );
    let parent = block(&blocks, "parent", "after Command::spawn");
    let execd = block(&blocks, "bidir-child", "after exec");
    block(&blocks, "parent", "after closing both pipes");
    assert_eq!(blocks.len(), 3, "{whos:?}");
    // The program's stdin and stdout are pipes whose other ends the parent holds,
    // once each: it writes into the child's stdin and reads its stdout.
    let stdin = &execd.rows[0];
    let stdout = &execd.rows[1];
    assert_eq!((stdin.fd, &*stdin.end), (0, "read"), "{execd:#?}");
    assert_eq!((stdout.fd, &*stdout.end), (1, "write"), "{execd:#?}");
    let to_child = holding(parent, &stdin.object);
    let from_child = holding(parent, &stdout.object);
    assert_eq!(to_child.len(), 1, "{parent:#?}");
    assert_eq!(from_child.len(), 1, "{parent:#?}");
    assert_eq!((&*to_child[0].1, &*from_child[0].1), ("write", "read"));
    assert!(
        to_child[0].2 && from_child[0].2,
        "Command's pipes are cloexec"
    );
}

#[test]
fn any_program_gets_the_childs_tables_before_exec_but_no_flag() {
    // cat would take --show-fds for a file name: it is passed to bidir-child only.
    let run = lesson().args(["--show-fds", "--", "cat"]).run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let blocks = blocks(&run.stderr);
    let children: Vec<&str> = blocks
        .iter()
        .filter(|b| b.who != "parent")
        .map(|b| b.step.as_str())
        .collect();
    assert_eq!(children, CHILD_STEPS, "{}", run.transcript());
    assert!(!run.stderr.contains("cat:"), "{}", run.transcript());
}

#[test]
fn bidir_child_alone_shows_its_table_first_and_only_with_the_flag() {
    let mut running = Lesson::new(CHILD_BIN)
        .args(["--speed", "100", "--show-fds", "spam"])
        .piped_stdin()
        .deadline(Duration::from_secs(10))
        .spawn();
    assert!(running.write_stdin(b"one\ntwo\n"));
    let run = running.finish();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    assert!(
        run.stderr
            .starts_with(&format!("[fds] bidir-child {}, after exec:\n", run.pid)),
        "{}",
        run.transcript()
    );
    let table = &blocks(&run.stderr)[0];
    assert_eq!(table.rows[0].kind, "pipe", "stdin is the test's pipe");
    assert_eq!(run.texts().len(), 2, "{}", run.transcript());
}

/// The transcript's text: the parent and the child print their first tables at the
/// same moment, in an order that changes from run to run. The parent's blocks from
/// before its first reply go first, each process's own order kept; what follows is
/// ordered by the conversation itself.
fn parent_setup_first(text: &str) -> String {
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
    let first_reply = chunks
        .iter()
        .position(|c| c.starts_with("Parent got"))
        .unwrap_or(chunks.len());
    let setup = |c: &(usize, &String)| {
        c.0 < first_reply && c.1.starts_with("[fds] parent ")
    };
    let indexed: Vec<(usize, &String)> = chunks.iter().enumerate().collect();
    let (front, rest): (Vec<_>, Vec<_>) = indexed.into_iter().partition(setup);
    front
        .into_iter()
        .chain(rest)
        .map(|(_, c)| c.as_str())
        .collect()
}

#[test]
fn parent_setup_first_moves_only_the_parents_early_blocks() {
    let text = "[fds] child 2, after fork:\n  row c\n[fds] parent 1, after fork:\n  \
                row p\nChild 2 of 1 got arg\nParent got: x\n[fds] parent 1, end:\n  \
                row e\n";
    assert_eq!(
        parent_setup_first(text),
        "[fds] parent 1, after fork:\n  row p\n[fds] child 2, after fork:\n  row c\n\
         Child 2 of 1 got arg\nParent got: x\n[fds] parent 1, end:\n  row e\n"
    );
}

#[test]
fn book_transcript_of_the_tables_matches_a_fresh_run() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/bidir-spawn-fds.txt");
    let run = lesson()
        .shown_as("cargo run -q -p bidir-spawn --")
        .args(["--speed", "100", "--show-fds"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let grouped = parent_setup_first(&run.stdout_text());
    let run = Finished {
        stdout: grouped.into_bytes(),
        ..run
    };
    check_transcript_of(&path, &run);
}

#[test]
fn an_inherited_descriptor_reaches_the_program_only_through_command() {
    // fd 9, open without close-on-exec in the lesson: the hand-written spawn closes
    // it before exec, Command passes it on (the chapter's claim).
    for (style, passed) in [("", false), ("--command", true)] {
        let script =
            format!("exec \"$0\" {style} --speed 100 --show-fds 9</dev/null");
        let run = Lesson::new("sh")
            .args(["-c", &script, BIN])
            .deadline(Duration::from_secs(10))
            .run();
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        let blocks = blocks(&run.stderr);
        let execd = block(&blocks, "bidir-child", "after exec");
        let has_9 = execd.rows.iter().any(|r| r.fd == 9);
        assert_eq!(has_9, passed, "{style:?}: {execd:#?}");
        let parent = block(&blocks, "parent", "after closing both pipes");
        assert!(parent.rows.iter().any(|r| r.fd == 9), "{parent:#?}");
    }
}
