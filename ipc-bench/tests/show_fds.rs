//! `--show-fds`: the descriptor tables that the coordinator, the peer and the
//! measuring side print at each step, and what they prove: after the closes each
//! process holds only its own ends, and nothing else leaked.

use lesson_test::fd_blocks::{Block, Row, block, blocks, steps};
use lesson_test::{Finished, Lesson, check_transcript};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-bench");

/// The book's run: one pipe job, as small as it gets (the report goes to /dev/null:
/// its timings change from run to run, the tables' structure does not).
const BOOK: [&str; 11] = [
    "--only",
    "pipe",
    "--sizes",
    "64",
    "--bytes",
    "256",
    "--rounds",
    "2",
    "--reps",
    "1",
    "--show-fds",
];

const COORDINATOR: [&str; 2] =
    ["all made, before fork", "after closing its copies"];
const SIDE: [&str; 2] = ["after fork", "after closing what is not its own"];
const OPENED: [&str; 3] = [
    "after fork",
    "after closing what is not its own",
    "after opening its end",
];
const THREADS: [&str; 2] = [
    "after fork",
    "after its closes (its peer thread shares this table)",
];

/// The lesson with `args`, its stdout thrown away.
fn run_quietly(args: &[&str]) -> Finished {
    let run = Lesson::new("sh")
        .args(["-c", "exec \"$0\" \"$@\" > /dev/null", BIN])
        .args(args)
        .deadline(Duration::from_secs(20))
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    run
}

/// The rows of the lesson's own descriptors (the harness gives it 0, 1 and 2), as
/// (object, end).
fn own(block: &Block) -> Vec<(String, String)> {
    own_as(block, |r| &r.object)
}

/// The same rows as (kind, end).
fn kinds(block: &Block) -> Vec<(String, String)> {
    own_as(block, |r| &r.kind)
}

fn own_as(block: &Block, what: impl Fn(&Row) -> &String) -> Vec<(String, String)> {
    block
        .rows
        .iter()
        .filter(|r| r.fd > 2)
        .map(|r| (what(r).clone(), r.end.clone()))
        .collect()
}

fn end(object: &str, end: &str) -> (String, String) {
    (object.to_owned(), end.to_owned())
}

/// `rows`, sorted, to compare as sets.
fn sorted(mut rows: Vec<(String, String)>) -> Vec<(String, String)> {
    rows.sort();
    rows
}

/// The pipes in a table, in the order of their first descriptor.
fn pipes(block: &Block) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for row in block.rows.iter().filter(|r| r.fd > 2 && r.kind == "pipe") {
        if !seen.contains(&row.object) {
            seen.push(row.object.clone());
        }
    }
    seen
}

/// The coordinator's signalfd, the one descriptor it keeps besides the results pipe.
fn signalfd(block: &Block) -> (String, String) {
    let row: &Row = block
        .rows
        .iter()
        .find(|r| r.object.contains("signalfd"))
        .unwrap_or_else(|| panic!("no signalfd: {block:#?}"));
    assert_eq!((row.fd, row.kind.as_str()), (3, "other"), "{block:#?}");
    (row.object.clone(), row.end.clone())
}

#[test]
fn after_the_closes_each_process_of_a_pipe_job_holds_only_its_own_ends() {
    let run = run_quietly(&BOOK);
    let blocks = blocks(&run.stderr);
    assert_eq!(steps(&blocks, "coordinator"), COORDINATOR, "{}", run.stderr);
    assert_eq!(steps(&blocks, "peer"), SIDE, "{}", run.stderr);
    assert_eq!(steps(&blocks, "measuring side"), SIDE, "{}", run.stderr);
    assert_eq!(blocks.len(), 6, "the limits job shows none: {}", run.stderr);
    let made = block(&blocks, "coordinator", COORDINATOR[0]);
    assert_eq!(made.pid, run.pid, "{made:#?}");
    let peer_pid = block(&blocks, "peer", SIDE[0]).pid;
    let side_pid = block(&blocks, "measuring side", SIDE[0]).pid;
    assert!(peer_pid != run.pid && side_pid != run.pid && peer_pid != side_pid);

    // Made before fork: the two pipes of the mechanism (the stream and the echoes
    // towards the measuring side, the requests towards the peer), the control pipe
    // and the results pipe, each a read end and a write end.
    let [stream, requests, control, results] = <[String; 4]>::try_from(pipes(made))
        .unwrap_or_else(|p| panic!("four pipes, not {p:?}: {made:#?}"));
    let signals = signalfd(made);
    for pipe in [&stream, &requests, &control, &results] {
        let ends: Vec<&str> = made
            .rows
            .iter()
            .filter(|r| &r.object == pipe)
            .map(|r| r.end.as_str())
            .collect();
        assert_eq!(ends, ["read", "write"], "{pipe}: {made:#?}");
        assert!(
            made.rows
                .iter()
                .filter(|r| &r.object == pipe)
                .all(|r| r.cloexec())
        );
    }
    assert_eq!(own(made).len(), 9, "{made:#?}");

    // fork copies the table: the peer starts with everything; the measuring side,
    // forked after the coordinator closed the peer's side, with all but that.
    assert_eq!(own(block(&blocks, "peer", SIDE[0])), own(made));
    let peers_side = [end(&stream, "write"), end(&requests, "read")];
    let without_peers: Vec<_> = own(made)
        .into_iter()
        .filter(|e| !peers_side.contains(e))
        .collect();
    assert_eq!(
        own(block(&blocks, "measuring side", SIDE[0])),
        without_peers
    );

    // After the closes, each end shows once, in the one process that uses it.
    assert_eq!(
        sorted(own(block(&blocks, "peer", SIDE[1]))),
        sorted(vec![
            end(&stream, "write"),
            end(&requests, "read"),
            end(&control, "read"),
        ]),
        "the peer sends the stream and the echoes, reads requests and commands; \
         no results pipe, no signalfd\n{}",
        run.stderr
    );
    assert_eq!(
        sorted(own(block(&blocks, "measuring side", SIDE[1]))),
        sorted(vec![
            end(&stream, "read"),
            end(&requests, "write"),
            end(&control, "write"),
            end(&results, "write"),
        ]),
        "{}",
        run.stderr
    );
    assert_eq!(
        own(block(&blocks, "coordinator", COORDINATOR[1])),
        [signals, end(&results, "read")],
        "the coordinator keeps its signalfd and the results' read end, no more\n{}",
        run.stderr
    );

    // The tables go to stderr only, and only when asked for.
    let plain = run_quietly(&BOOK[..10]);
    assert!(!plain.stderr.contains("[fds]"), "{}", plain.transcript());
}

/// The book's transcript: the notes, then the six tables in the order of the
/// choreography (the three processes print at the same time; each one's own order is
/// kept).
#[test]
fn the_books_descriptor_tables_come_from_a_real_run() {
    let run = run_quietly(&BOOK);
    let order = [
        ("coordinator", COORDINATOR[0]),
        ("peer", SIDE[0]),
        ("peer", SIDE[1]),
        ("measuring side", SIDE[0]),
        ("measuring side", SIDE[1]),
        ("coordinator", COORDINATOR[1]),
    ];
    let mut chunks: Vec<(usize, String)> = Vec::new();
    for line in run.stderr.lines() {
        match chunks.last_mut() {
            Some((_, chunk))
                if chunk.starts_with("[fds] ") && line.starts_with("  ") =>
            {
                chunk.push_str(line);
                chunk.push('\n');
            }
            _ => {
                let rank = order
                    .iter()
                    .position(|(who, step)| {
                        line.starts_with(&format!("[fds] {who} "))
                            && line.ends_with(&format!(", {step}:"))
                    })
                    .map_or(0, |i| i + 1);
                chunks.push((rank, format!("{line}\n")));
            }
        }
    }
    chunks.sort_by_key(|(rank, _)| *rank);
    let text: String = chunks.into_iter().map(|(_, c)| c).collect();
    // The command in two lines, as a shell takes it, to fit the book's column.
    let (first, second) = BOOK.split_at(6);
    check_transcript(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/src/transcripts/ipc-bench-fds.txt"),
        &format!(
            "$ cargo run -q -p ipc-bench -- {} \\\n    {} > /dev/null\n{text}",
            first.join(" "),
            second.join(" ")
        ),
    );
}

/// The jobs of a run: each progress note with the tables printed until the next.
fn jobs(stderr: &str) -> Vec<(String, Vec<Block>)> {
    let mut jobs: Vec<(String, String)> = Vec::new();
    for line in stderr.lines() {
        if let Some(note) = line.strip_prefix("ipc-bench: [") {
            let name = note.split_once("] ").map_or("", |(_, n)| n);
            jobs.push((name.to_owned(), String::new()));
        } else if let Some((_, text)) = jobs.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    jobs.into_iter()
        .map(|(name, text)| (name, blocks(&text)))
        .collect()
}

fn kind(kind: &str, end: &str) -> (String, String) {
    (kind.to_owned(), end.to_owned())
}

#[test]
fn every_mechanism_shows_its_tables_and_the_coordinator_keeps_only_the_results() {
    let run = run_quietly(&[
        "--only",
        "fifo,uds,tcp,ring,vmsplice,socketpair-threads",
        "--sizes",
        "64",
        "--bytes",
        "128",
        "--rounds",
        "1",
        "--reps",
        "1",
        "--show-fds",
    ]);
    let jobs = jobs(&run.stderr);
    let names: Vec<&str> = jobs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "limits: memcpy and one system call",
            "fifo",
            "uds",
            "tcp",
            "ring",
            "vmsplice",
            "socketpair-threads"
        ],
        "{}",
        run.stderr
    );
    assert!(jobs[0].1.is_empty(), "{:#?}", jobs[0].1);
    for (name, blocks) in &jobs[1..] {
        assert_eq!(
            steps(blocks, "coordinator"),
            COORDINATOR,
            "{name}: {blocks:#?}"
        );
        let closed = block(blocks, "coordinator", COORDINATOR[1]);
        assert_eq!(
            kinds(closed),
            [kind("other", "rw"), kind("pipe", "read")],
            "{name}: only the signalfd and the results' read end: {closed:#?}"
        );
        // Compared as sets: which number a descriptor gets depends on what was
        // closed before (the lowest free one).
        let side = |who: &str, step: &str| sorted(kinds(block(blocks, who, step)));
        let set = |rows: &[(&str, &str)]| {
            sorted(rows.iter().map(|(k, e)| kind(k, e)).collect())
        };
        let (control_rx, control_tx, results) =
            (("pipe", "read"), ("pipe", "write"), ("pipe", "write"));
        match name.as_str() {
            // Opened after fork: the tables after the closes hold no FIFO and no
            // connected socket yet; the ones after the open do.
            "fifo" => {
                assert_eq!(steps(blocks, "peer"), OPENED, "{blocks:#?}");
                assert_eq!(steps(blocks, "measuring side"), OPENED, "{blocks:#?}");
                assert_eq!(side("peer", SIDE[1]), set(&[control_rx]));
                assert_eq!(
                    side("peer", OPENED[2]),
                    set(&[control_rx, ("fifo", "write"), ("fifo", "read")])
                );
                assert_eq!(
                    side("measuring side", SIDE[1]),
                    set(&[control_tx, results])
                );
                assert_eq!(
                    side("measuring side", OPENED[2]),
                    set(&[
                        control_tx,
                        results,
                        ("fifo", "read"),
                        ("fifo", "write")
                    ])
                );
            }
            "uds" | "tcp" => {
                assert_eq!(steps(blocks, "peer"), OPENED, "{blocks:#?}");
                assert_eq!(steps(blocks, "measuring side"), OPENED, "{blocks:#?}");
                // The coordinator made the listening socket; the measuring side
                // keeps it until accept, then only the connection.
                let made = kinds(block(blocks, "coordinator", COORDINATOR[0]));
                assert!(made.contains(&kind("socket", "rw")), "{made:?}");
                let socket = ("socket", "rw");
                assert_eq!(
                    side("measuring side", SIDE[1]),
                    set(&[socket, control_tx, results])
                );
                // One connected socket, twice (one number for each direction).
                assert_eq!(
                    side("measuring side", OPENED[2]),
                    set(&[socket, socket, control_tx, results])
                );
                assert_eq!(side("peer", SIDE[1]), set(&[control_rx]));
                assert_eq!(
                    side("peer", OPENED[2]),
                    set(&[control_rx, socket, socket])
                );
            }
            // Shared memory is a mapping: once mapped, no descriptor is left.
            "ring" => {
                assert_eq!(steps(blocks, "peer"), SIDE, "{blocks:#?}");
                assert_eq!(side("peer", SIDE[1]), set(&[control_rx]));
                assert_eq!(
                    side("measuring side", SIDE[1]),
                    set(&[control_tx, results])
                );
            }
            "vmsplice" => {
                assert_eq!(
                    side("peer", SIDE[1]),
                    set(&[("pipe", "write"), control_rx])
                );
                assert_eq!(
                    side("measuring side", SIDE[1]),
                    set(&[
                        ("pipe", "read"),
                        ("null", "write"),
                        control_tx,
                        results
                    ])
                );
            }
            // One process, one table: both ends of everything, closed by nobody.
            "socketpair-threads" => {
                assert!(steps(blocks, "peer").is_empty(), "{blocks:#?}");
                assert_eq!(steps(blocks, "measuring side"), THREADS);
                let socket = ("socket", "rw");
                assert_eq!(
                    side("measuring side", THREADS[1]),
                    set(&[
                        socket, socket, socket, socket, control_rx, control_tx,
                        results
                    ])
                );
            }
            other => panic!("unexpected job {other}"),
        }
    }
}
