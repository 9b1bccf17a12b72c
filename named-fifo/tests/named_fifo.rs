//! The lesson's promises, checked by running both programs as subprocesses with deadlines,
//! each test in a directory of its own.

use lesson_test::{Finished, Lesson, Running, TempDir, check_transcript};
use nix::sys::signal::Signal;
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

const WRITER: &str = env!("CARGO_BIN_EXE_fifo-writer");
const READER: &str = env!("CARGO_BIN_EXE_fifo-reader");

fn program(bin: &str, dir: &TempDir) -> Lesson {
    Lesson::new(bin)
        .current_dir(dir.path())
        .deadline(Duration::from_secs(20))
}

/// Waits until `path` exists (the first program has made the FIFO).
fn wait_for_path(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        sleep(Duration::from_millis(5));
    }
}

fn assert_document_exchange(reader: &Finished, writer: &Finished) {
    assert_eq!(reader.code(), Some(0), "{}", reader.transcript());
    assert_eq!(writer.code(), Some(0), "{}", writer.transcript());
    assert_eq!(
        reader.stdout_text(),
        format!(
            "I pid [{}] received a message => Hello {}\n",
            reader.pid, writer.pid
        ),
        "{}",
        reader.transcript()
    );
    assert!(writer.stdout.is_empty(), "{}", writer.transcript());
}

#[test]
fn reader_first_then_writer_exchange_the_documents_message() {
    let dir = TempDir::new("fifo-order-1");
    let reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir).run();
    let reader = reader.finish();
    assert_document_exchange(&reader, &writer);
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the reader made the FIFO, and removes it"
    );
    // The reader prints its message, then its note on stderr: stdout first is their order.
    let text = format!(
        "$ cargo run -q -p named-fifo --bin fifo-reader  # and fifo-writer in another terminal\n{}{}",
        reader.stdout_text(),
        reader.stderr
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/named-fifo.txt");
    check_transcript(&path, &text);
}

#[test]
fn writer_first_then_reader_exchange_the_documents_message() {
    let dir = TempDir::new("fifo-order-2");
    let writer = program(WRITER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let reader = program(READER, &dir).run();
    let writer = writer.finish();
    assert_document_exchange(&reader, &writer);
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the writer made the FIFO, and removes it"
    );
}

#[test]
fn a_path_that_is_not_a_fifo_is_refused_and_left_intact() {
    let dir = TempDir::new("fifo-notfifo");
    let file = dir.path().join("my_pipe");
    std::fs::write(&file, b"precious data\n").unwrap();
    for bin in [WRITER, READER] {
        let run = program(bin, &dir).arg("--wait").arg("1").run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr
                .contains("my_pipe: exists and is a regular file, not a FIFO"),
            "{}",
            run.transcript()
        );
    }
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let run = program(READER, &dir).arg("sub").run();
    assert_eq!(run.code(), Some(1), "{}", run.transcript());
    assert!(
        run.stderr.contains("sub: exists and is a directory"),
        "{}",
        run.transcript()
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"precious data\n");
    assert_eq!(dir.entries(), ["my_pipe", "sub"]);
}

#[test]
fn a_missing_directory_is_reported() {
    let dir = TempDir::new("fifo-nodir");
    for bin in [WRITER, READER] {
        let run = program(bin, &dir).arg("no/such/dir/fifo").run();
        assert_eq!(run.code(), Some(1), "{}", run.transcript());
        assert!(
            run.stderr.contains(
                "mkfifo no/such/dir/fifo: ENOENT: No such file or directory"
            ),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn bounded_waits_end_with_exit_3_and_remove_the_fifo() {
    let dir = TempDir::new("fifo-wait");
    for (bin, peer) in [(WRITER, "reader"), (READER, "writer")] {
        let run = program(bin, &dir).args(["--wait", "0.3"]).run();
        assert_eq!(run.code(), Some(3), "{}", run.transcript());
        assert!(
            run.stderr
                .contains(&format!("no {peer} within 300ms; giving up")),
            "{}",
            run.transcript()
        );
        assert!(
            run.elapsed < Duration::from_secs(3),
            "took {:?}",
            run.elapsed
        );
        assert_eq!(dir.entries(), Vec::<String>::new());
    }
}

#[test]
fn ctrl_c_while_waiting_ends_promptly_and_cleans_up() {
    let dir = TempDir::new("fifo-sigint");
    for bin in [WRITER, READER] {
        let running = program(bin, &dir).spawn();
        wait_for_path(&dir.path().join("my_pipe"));
        sleep(Duration::from_millis(100)); // well inside the wait for the peer
        running.stop_with(Signal::SIGINT);
        assert_eq!(dir.entries(), Vec::<String>::new());
    }
}

#[test]
fn keep_leaves_the_fifo_for_ls() {
    let dir = TempDir::new("fifo-keep");
    let run = program(READER, &dir)
        .args(["--keep", "--wait", "0.2"])
        .run();
    assert_eq!(run.code(), Some(3), "{}", run.transcript());
    let kind = std::fs::metadata(dir.path().join("my_pipe"))
        .unwrap()
        .file_type();
    assert!(kind.is_fifo(), "my_pipe is a FIFO (ls -l shows prw-...)");
}

/// Starts `count` writers at once, each sending `messages` records of `size` bytes.
fn writers(
    dir: &TempDir,
    count: usize,
    messages: u64,
    size: usize,
) -> Vec<Running> {
    (0..count)
        .map(|_| {
            program(WRITER, dir)
                .args([
                    "--messages",
                    &messages.to_string(),
                    "--size",
                    &size.to_string(),
                ])
                .spawn()
        })
        .collect()
}

#[test]
fn concurrent_writers_of_pipe_buf_records_never_tear() {
    let dir = TempDir::new("fifo-atomic");
    let (count, messages, size) = (4, 150, 4096);
    let total = count as u64 * messages;
    let reader = program(READER, &dir)
        .args(["--messages", &total.to_string()])
        .spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writers: Vec<Finished> = writers(&dir, count, messages, size)
        .into_iter()
        .map(Running::finish)
        .collect();
    let reader = reader.finish();
    assert_eq!(reader.code(), Some(0), "{}", reader.stderr);
    let mut next_per_writer: BTreeMap<i32, u64> =
        writers.iter().map(|w| (w.pid, 0)).collect();
    let prefix = format!("I pid [{}] received a message => ", reader.pid);
    for line in reader.texts() {
        let record = line.strip_prefix(&prefix).expect("the reader's format");
        // A torn record would have the wrong length or mixed contents.
        assert_eq!(
            record.len(),
            size - 1,
            "a record was torn: {:.80}...",
            record
        );
        let mut words = record.split(' ');
        assert_eq!(words.next(), Some("Hello"));
        let pid: i32 = words.next().unwrap().parse().unwrap();
        let i: u64 = words.next().unwrap().parse().unwrap();
        assert!(
            words.next().unwrap().bytes().all(|b| b == b'.'),
            "padding intact"
        );
        let next = next_per_writer.get_mut(&pid).expect("a known writer");
        assert_eq!(
            i, *next,
            "writer {pid}'s records arrive in order, none lost"
        );
        *next += 1;
    }
    assert!(
        next_per_writer.values().all(|n| *n == messages),
        "{next_per_writer:?}"
    );
    for writer in &writers {
        assert_eq!(writer.code(), Some(0), "{}", writer.transcript());
    }
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn a_reader_that_goes_away_gives_the_writer_a_broken_pipe_report() {
    let dir = TempDir::new("fifo-epipe");
    let writer = program(WRITER, &dir)
        .args(["--messages", "1000", "--interval", "0.01"])
        .spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let mut reader = program(READER, &dir).spawn();
    reader.next_line().expect("a first message");
    reader.signal(Signal::SIGKILL);
    let reader = reader.finish();
    assert_eq!(reader.code(), None, "killed");
    let writer = writer.finish();
    assert_eq!(writer.code(), Some(1), "{}", writer.transcript());
    assert!(
        writer
            .stderr
            .contains("write my_pipe: EPIPE: the reader went away after"),
        "{}",
        writer.transcript()
    );
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the writer made it and removed it"
    );
}

#[test]
fn a_writer_that_dies_leaves_the_reader_a_report_of_what_arrived() {
    let dir = TempDir::new("fifo-writer-dies");
    let mut reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir)
        .args(["--messages", "1000", "--interval", "0.01"])
        .spawn();
    for _ in 0..3 {
        reader.next_line().expect("a message");
    }
    writer.signal(Signal::SIGKILL);
    let writer = writer.finish();
    assert_eq!(writer.code(), None, "killed");
    let reader = reader.finish();
    assert_eq!(reader.code(), Some(0), "{}", reader.transcript());
    let arrived = reader.lines.len();
    assert!(arrived >= 3, "{}", reader.transcript());
    assert!(
        reader.stderr.contains(&format!(
            "EOF, every writer has closed it; received {arrived} messages"
        )),
        "{}",
        reader.transcript()
    );
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the reader made it and removed it"
    );
}

#[test]
fn bad_options_exit_2_with_usage() {
    let dir = TempDir::new("fifo-usage");
    let cases: &[(&str, &[&str], &str)] = &[
        (WRITER, &["--wait", "soon"], "--wait \"soon\": not a number"),
        (
            WRITER,
            &["--size", "100"],
            "--size and --interval go with --messages",
        ),
        (WRITER, &["a", "b"], "unexpected argument \"b\""),
        (READER, &["--messages"], "--messages needs a value"),
        (READER, &["--fast"], "unknown option --fast"),
    ];
    for (bin, args, message) in cases {
        let run = program(bin, &dir).args(*args).run();
        assert_eq!(run.code(), Some(2), "{args:?}\n{}", run.transcript());
        assert!(
            run.stderr.contains(message),
            "{args:?}\n{}",
            run.transcript()
        );
        assert!(run.stderr.contains("Usage: fifo-"), "{}", run.transcript());
    }
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "usage errors create nothing"
    );
}
