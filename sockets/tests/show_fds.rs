//! `--show-fds` on the three socket programs: the tables appear in the right process
//! at the right step, and prove the point of each step (a listener, one more socket
//! per accepted connection, each end of a socketpair kept by one process only).
//! Also the book's system-call excerpt of socketpair-demo, compared with a fresh trace.

use lesson_test::fd_blocks::{self, Block as FdBlock, Row as FdRow};
use lesson_test::{
    Finished, Lesson, TempDir, check_transcript, check_transcript_of, number_after,
};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PREVIEW: &str = env!("CARGO_BIN_EXE_socket-preview");
const PROGS: &str = env!("CARGO_BIN_EXE_socket-progs");
const PAIR: &str = env!("CARGO_BIN_EXE_socketpair-demo");

fn lesson(bin: &str) -> Lesson {
    Lesson::new(bin).deadline(Duration::from_secs(20))
}

fn docs(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src")
        .join(path)
}

/// The sockets of a block: what the program made (0, 1 and 2 are the test's pipes).
fn sockets(block: &FdBlock) -> Vec<FdRow> {
    block
        .rows
        .iter()
        .filter(|r| r.kind == "socket")
        .cloned()
        .collect()
}

fn fds(rows: &[FdRow]) -> Vec<i32> {
    rows.iter().map(|r| r.fd).collect()
}

fn steps(blocks: &[FdBlock]) -> Vec<(String, String)> {
    blocks
        .iter()
        .map(|b| (b.who.clone(), b.step.clone()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(who, step)| ((*who).to_owned(), (*step).to_owned()))
        .collect()
}

#[test]
fn socketpair_after_the_closes_each_process_holds_only_its_own_end() {
    let run = lesson(PAIR)
        .shown_as("cargo run -q -p sockets --bin socketpair-demo --")
        .args(["--messages", "1", "--show-fds"])
        .merge_stderr()
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let output = run.stdout_text();
    let blocks = fd_blocks::blocks(&output);
    // The child prints its tables once the parent's first line is here: after the
    // parent's, so the order is the same on every run.
    assert_eq!(
        steps(&blocks),
        pairs(&[
            ("parent", "after socketpair"),
            ("parent", "after fork"),
            ("parent", "after close(child's end)"),
            ("child", "after fork"),
            ("child", "after close(parent's end)"),
            ("parent", "after the talk (its end closed)"),
        ]),
        "{output}"
    );
    let child = number_after(&output, "forked child ");
    for block in &blocks {
        let pid = if block.who == "parent" {
            run.pid
        } else {
            child
        };
        assert_eq!(block.pid, pid, "{output}");
    }
    // socketpair: two sockets, each its own inode (unlike the two ends of a pipe),
    // each both ways, close-on-exec and non-blocking.
    let pair = sockets(&blocks[0]);
    assert_eq!(fds(&pair), [3, 4], "{output}");
    assert_ne!(pair[0].object, pair[1].object, "{output}");
    assert!(pair.iter().all(|r| r.object.starts_with("socket:[")));
    assert!(pair.iter().all(|r| r.end == "rw"), "{output}");
    assert!(
        pair.iter().all(|r| r.flags == "cloexec,nonblock"),
        "{output}"
    );
    // fork copies the table: both processes hold both ends.
    assert_eq!(sockets(&blocks[1]), pair, "{output}");
    assert_eq!(sockets(&blocks[3]), pair, "{output}");
    // After the closes: the parent keeps fd 3 only, the child fd 4 only. A leftover
    // copy would be one more row here, and the parent would never read EOF.
    assert_eq!(sockets(&blocks[2]), [pair[0].clone()], "{output}");
    assert_eq!(sockets(&blocks[4]), [pair[1].clone()], "{output}");
    // After the talk, the parent holds no socket at all.
    assert_eq!(sockets(&blocks[5]), [], "{output}");
    // The child's tables come before its first read.
    let first_read = output.find(&format!("Child {child} read ")).unwrap();
    assert!(output.find("[fds] child").unwrap() < first_read, "{output}");
    check_transcript_of(&docs("transcripts/sockets-socketpair-fds.txt"), &run);
}

/// Waits (at most 10 s) until `path` exists: the server has bound its socket.
fn wait_for_path(path: &Path) {
    let end = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn socket_progs_the_server_gets_one_socket_per_connection_the_client_its_own() {
    let dir = TempDir::new("progs-fds");
    let server = lesson(PROGS)
        .shown_as("cargo run -q -p sockets --bin socket-progs --")
        .args(["server", "--unix", "progs.sock", "--show-fds"])
        .current_dir(dir.path())
        .merge_stderr()
        .spawn();
    wait_for_path(&dir.path().join("progs.sock"));
    let client = lesson(PROGS)
        .shown_as("cargo run -q -p sockets --bin socket-progs --")
        .args(["client", "--unix", "progs.sock", "--show-fds"])
        .current_dir(dir.path())
        .merge_stderr()
        .run();
    // Ctrl-C, once the client is done (the merged output has no stderr of its own
    // for stop_with to look at).
    server.signal(Signal::SIGINT);
    let server = server.finish();
    assert_eq!(server.code(), Some(130), "{}", server.transcript());
    assert_eq!(client.code(), Some(0), "{}", client.transcript());
    assert!(dir.entries().is_empty(), "{:?}", dir.entries());

    let text = server.stdout_text();
    let blocks = fd_blocks::blocks(&text);
    assert_eq!(
        steps(&blocks),
        pairs(&[
            ("server", "after socket, bind and listen"),
            ("server", "after accept"),
            ("server", "after close (hung up)"),
            ("server", "after closing the listening socket"),
        ]),
        "{text}"
    );
    assert!(blocks.iter().all(|b| b.pid == server.pid), "{text}");
    let listener = sockets(&blocks[0]);
    assert_eq!(fds(&listener), [3], "{text}");
    // accept made a second socket, for this client only; the listener stays.
    let accepted = sockets(&blocks[1]);
    assert_eq!(fds(&accepted), [3, 4], "{text}");
    assert_eq!(accepted[0], listener[0], "{text}");
    assert_ne!(accepted[1].object, listener[0].object, "{text}");
    // Hung up: the connection's socket is gone, the listener left.
    assert_eq!(sockets(&blocks[2]), listener, "{text}");
    assert_eq!(sockets(&blocks[3]), [], "{text}");

    let text = client.stdout_text();
    let blocks = fd_blocks::blocks(&text);
    let name = format!("client:process={}", client.pid);
    assert_eq!(
        steps(&blocks),
        pairs(&[(&name, "after socket and connect"), (&name, "after close")]),
        "{text}"
    );
    // The client's own socket: another inode again (each end of a connection is a
    // socket of its own), gone after the close.
    let connected = sockets(&blocks[0]);
    assert_eq!(fds(&connected), [3], "{text}");
    assert_ne!(connected[0].object, accepted[1].object, "{text}");
    assert_eq!(sockets(&blocks[1]), [], "{text}");

    check_transcript_of(&docs("transcripts/sockets-progs-server-fds.txt"), &server);
    check_transcript_of(&docs("transcripts/sockets-progs-client-fds.txt"), &client);
}

#[test]
fn socket_preview_threads_share_one_table_holding_both_ends_of_a_connection() {
    let run = lesson(PREVIEW)
        .args(["--port", "0", "--clients", "1", "--show-fds"])
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let blocks = fd_blocks::blocks(&run.stderr);
    let text = &run.stderr;
    // One process: every thread prints the same pid, and the same table.
    assert!(blocks.iter().all(|b| b.pid == run.pid), "{text}");
    let find = |who: &str, step: &str| {
        blocks
            .iter()
            .find(|b| b.who == who && b.step == step)
            .unwrap_or_else(|| panic!("no block {who}, {step}:\n{text}"))
    };
    assert_eq!(blocks.len(), 6, "{text}");
    let first = &blocks[0];
    assert_eq!(first.step, "after socket, bind and listen", "{text}");
    assert_eq!(fds(&sockets(first)), [3], "{text}");
    // The client's socket (4, made before the connection was accepted) and the
    // server's (usually 5; another thread's look at /proc may hold 5 for a moment),
    // both in the one table, with the listener.
    let accepted = fds(&sockets(find("server", "after accept")));
    assert_eq!((accepted.len(), &accepted[..2]), (3, &[3, 4][..]), "{text}");
    let connected = sockets(find("client0", "after socket and connect"));
    assert!(fds(&connected).starts_with(&[3, 4]), "{text}");
    // The server hangs up first: its socket goes. The client closes after EOF.
    let hung_up = fds(&sockets(find("server", "after close (hung up)")));
    assert!(!hung_up.contains(&accepted[2]), "{text}");
    assert_eq!(fds(&sockets(find("client0", "after close"))), [3], "{text}");
    let last = &blocks[5];
    assert_eq!(last.step, "after closing the listening socket", "{text}");
    assert_eq!(sockets(last), [], "{text}");
}

#[test]
fn without_show_fds_no_table_is_printed() {
    let runs = [
        lesson(PAIR).run(),
        lesson(PREVIEW)
            .args(["--port", "0", "--clients", "1"])
            .run(),
    ];
    for run in runs {
        assert_eq!(run.code(), Some(0), "{}", run.transcript());
        assert!(!run.stderr.contains("[fds]"), "{}", run.transcript());
    }
}

/// What a trace must show of each process, the same on every run: the calls that
/// make, copy, close or shut down descriptors, and the reaping, in order, exactly;
/// the data calls (read, write, sendto, recvfrom) only by name and descriptor, as a
/// set: how the bytes split into reads, and how often the parent looked for a child
/// that had not exited yet (`wait4 ... = 0`), depend on timing.
fn choreography(trace: &str) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut by_process: BTreeMap<String, (Vec<String>, Vec<String>)> =
        BTreeMap::new();
    for line in trace.lines().skip(1) {
        let (who, call) = line.split_once(' ').unwrap_or((line, ""));
        let call = call.trim();
        let entry = by_process.entry(who.to_owned()).or_default();
        let name = call.split('(').next().unwrap_or(call);
        if call.starts_with("--- ") || (name == "wait4" && call.ends_with(" = 0")) {
            continue;
        }
        if ["read", "write", "sendto", "recvfrom"].contains(&name) {
            let fd = call.split([',', ')']).next().unwrap_or(call);
            if !entry.1.iter().any(|seen| seen == fd) {
                entry.1.push(fd.to_owned());
                entry.1.sort();
            }
        } else {
            entry.0.push(call.to_owned());
        }
    }
    by_process
}

#[test]
fn the_books_socketpair_trace_matches_a_fresh_trace() {
    if let Err(why) = lesson_test::strace_works() {
        println!("skipped: {why}");
        return;
    }
    let file = docs("traces/socketpair/socketpair-demo.txt");
    let recorded = std::fs::read_to_string(&file).unwrap_or_default();
    let bin_dir = Path::new(PAIR).parent().expect("the binaries' folder");
    let run: Finished = Lesson::new(docs("../../scripts/trace"))
        .args(["socketpair-demo", "--messages", "1"])
        .env("TRACE_BIN_DIR", bin_dir)
        .deadline(Duration::from_secs(30))
        .run();
    assert_eq!(run.code(), Some(0), "{}", run.transcript());
    let fresh = run.stdout_text();
    let calls = choreography(&fresh);
    assert!(
        calls["parent"]
            .0
            .iter()
            .any(|c| c.starts_with("shutdown(3")),
        "{fresh}"
    );
    assert!(
        calls["child"].0.contains(&"close(3) = 0".to_owned()),
        "{fresh}"
    );
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        check_transcript(&file, &fresh);
        return;
    }
    assert_eq!(
        choreography(&recorded),
        calls,
        "{} no longer matches a fresh trace (UPDATE_TRANSCRIPTS=1 rewrites it):\n{fresh}",
        file.display()
    );
}
