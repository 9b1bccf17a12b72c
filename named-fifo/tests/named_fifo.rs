//! The lesson's promises, checked by running both programs as subprocesses with
//! deadlines, each test in a directory of its own.

use lesson_test::fd_blocks::{self, Block as FdBlock, Row as FdRow};
use lesson_test::{
    Finished, Lesson, Running, TempDir, check_transcript_of, group_members,
};
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
        .deadline(Duration::from_secs(10))
}

/// A program run through `sh -c SCRIPT` (for redirections), `$0` being the program.
fn shell(script: &str, bin: &str, dir: &TempDir) -> Lesson {
    program("sh", dir).args(["-c", script, bin])
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

fn message_line(reader_pid: i32, writer_pid: i32) -> String {
    format!("I pid [{reader_pid}] received a message => Hello {writer_pid}")
}

fn assert_code(run: &Finished, code: i32) {
    assert_eq!(run.code(), Some(code), "{}", run.transcript());
}

fn assert_stderr(run: &Finished, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "{needle:?}\n{}",
        run.transcript()
    );
}

#[test]
fn reader_first_then_writer_exchange_the_documents_message() {
    let dir = TempDir::new("fifo-order-1");
    let mut reader = program(READER, &dir)
        .shown_as("cargo run -q -p named-fifo --bin fifo-reader")
        .merge_stderr()
        .spawn();
    // Alone, the reader says what it waits for, and how to start a writer.
    let note: Vec<String> = (0..3)
        .map(|_| reader.next_line().expect("the waiting note").text)
        .collect();
    assert_eq!(
        note,
        [
            "fifo-reader: waiting for a writer to open my_pipe",
            "fifo-reader: start one in another terminal, in this directory, with:",
            "fifo-reader:   cargo run -p named-fifo --bin fifo-writer",
        ]
    );
    let writer = program(WRITER, &dir).run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_code(&writer, 0);
    let bytes = "Hello ".len() + writer.pid.to_string().len();
    let eof = format!(
        "fifo-reader: my_pipe: EOF, every writer has closed it; \
         received 1 message, {bytes} bytes"
    );
    assert_eq!(
        reader.texts()[3..],
        [message_line(reader.pid, writer.pid), eof],
        "{}",
        reader.transcript()
    );
    assert!(writer.stdout.is_empty(), "{}", writer.transcript());
    assert_eq!(writer.stderr, "", "the reader was there: no note");
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the reader made it, removed it"
    );
    let book = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/src/transcripts/named-fifo.txt");
    check_transcript_of(&book, &reader);
}

#[test]
fn writer_first_then_reader_exchange_the_documents_message() {
    let dir = TempDir::new("fifo-order-2");
    let mut writer = program(WRITER, &dir).spawn();
    let note = writer.wait_for_stderr("cargo run");
    assert_eq!(
        note,
        "fifo-writer: waiting for a reader to open my_pipe\n\
         fifo-writer: start one in another terminal, in this directory, with:\n\
         fifo-writer:   cargo run -p named-fifo --bin fifo-reader\n"
    );
    let reader = program(READER, &dir).run();
    let writer = writer.finish();
    assert_code(&reader, 0);
    assert_code(&writer, 0);
    assert_eq!(reader.texts(), [message_line(reader.pid, writer.pid)]);
    assert!(
        !reader.stderr.contains("waiting"),
        "{}",
        reader.transcript()
    );
    // Without --messages, EOF is the end at once: no grace for another writer.
    let last = reader.lines[0].at;
    assert!(
        reader.elapsed.saturating_sub(last) < Duration::from_secs(1),
        "{}",
        reader.transcript()
    );
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the writer made it, removed it"
    );
}

#[test]
fn the_waiting_note_names_a_path_that_is_not_the_default() {
    let dir = TempDir::new("fifo-note-path");
    let run = program(READER, &dir).args(["a pipe", "--wait", "0"]).run();
    assert_code(&run, 3);
    assert_stderr(
        &run,
        "fifo-reader: waiting for a writer to open a pipe\n\
         fifo-reader: start one in another terminal, in this directory, with:\n\
         fifo-reader:   cargo run -p named-fifo --bin fifo-writer -- 'a pipe'\n",
    );
}

#[test]
fn each_package_runs_a_sensible_program_by_default() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"),
    )
    .unwrap();
    assert!(
        manifest.contains("\ndefault-run = \"fifo-reader\"\n"),
        "{manifest}"
    );
}

#[test]
fn a_path_that_is_not_a_fifo_is_refused_and_left_intact() {
    let dir = TempDir::new("fifo-notfifo");
    let file = dir.path().join("my_pipe");
    std::fs::write(&file, b"precious data\n").unwrap();
    for bin in [WRITER, READER] {
        let run = program(bin, &dir).arg("--wait").arg("1").run();
        assert_code(&run, 1);
        assert_stderr(&run, "my_pipe: exists and is a regular file, not a FIFO");
    }
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let run = program(READER, &dir).arg("sub").run();
    assert_code(&run, 1);
    assert_stderr(&run, "sub: exists and is a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious data\n");
    assert_eq!(dir.entries(), ["my_pipe", "sub"]);
}

#[test]
fn a_missing_directory_is_reported() {
    let dir = TempDir::new("fifo-nodir");
    for bin in [WRITER, READER] {
        let run = program(bin, &dir).arg("no/such/dir/fifo").run();
        assert_code(&run, 1);
        assert_stderr(
            &run,
            "mkfifo no/such/dir/fifo: ENOENT: No such file or directory",
        );
    }
}

#[test]
fn wait_bounds_the_wait_for_the_peer_no_more_and_no_less() {
    let dir = TempDir::new("fifo-wait");
    for (bin, peer) in [(WRITER, "a reader"), (READER, "a writer")] {
        let run = program(bin, &dir).args(["--wait", "0.5"]).run();
        assert_code(&run, 3);
        assert_stderr(&run, &format!("gave up waiting for {peer} after 500ms"));
        assert!(
            run.elapsed >= Duration::from_millis(500)
                && run.elapsed < Duration::from_secs(3),
            "took {:?}",
            run.elapsed
        );
        assert_eq!(dir.entries(), Vec::<String>::new());
    }
}

#[test]
fn wait_bounds_the_readers_wait_for_more_data() {
    let dir = TempDir::new("fifo-wait-data");
    let mut writer = program(WRITER, &dir)
        .args(["--messages", "3", "--interval", "10"])
        .spawn();
    writer.wait_for_stderr("waiting for a reader");
    let mut reader = program(READER, &dir).args(["--wait", "0.5"]).spawn();
    let first = reader.next_line().expect("the first record");
    let reader = reader.finish();
    assert_code(&reader, 3);
    assert_stderr(
        &reader,
        "gave up waiting for data from the writer after 500ms; received 1 message",
    );
    let silent = reader.elapsed.saturating_sub(first.at);
    assert!(
        silent >= Duration::from_millis(450) && silent < Duration::from_secs(3),
        "gave up {silent:?} after the last data"
    );
    writer.stop_with(Signal::SIGTERM); // asleep between records
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn wait_bounds_the_writers_wait_for_room() {
    let dir = TempDir::new("fifo-wait-room");
    let mut reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir)
        .args(["--messages", "1000000", "--wait", "0.5"])
        .spawn();
    reader.next_line().expect("a first record");
    // The reader stops reading: the FIFO fills, the writer waits for room.
    reader.signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let writer = writer.finish();
    assert_code(&writer, 3);
    assert_stderr(
        &writer,
        "gave up waiting for room in the FIFO after 500ms after ",
    );
    // The wait began when the FIFO was full: after the SIGSTOP, or just before it
    // on a busy machine, where the reader had fallen behind; so measure from the
    // writer's start for the lower bound, and from the SIGSTOP for the upper one.
    assert!(
        writer.elapsed >= Duration::from_millis(500)
            && stopped.elapsed() < Duration::from_secs(3),
        "writer ran {:?}, gave up {:?} after the SIGSTOP",
        writer.elapsed,
        stopped.elapsed()
    );
    reader.signal(Signal::SIGCONT);
    let reader = reader.finish();
    assert_code(&reader, 0); // EOF: the writer has gone
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn stop_signals_while_waiting_end_promptly_and_clean_up() {
    let dir = TempDir::new("fifo-stop");
    for bin in [WRITER, READER] {
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            let mut running = program(bin, &dir).spawn();
            running.wait_for_stderr("waiting for");
            let run = running.stop_with(signal);
            assert_stderr(
                &run,
                &format!("stopped by {signal} while waiting for a "),
            );
            assert_eq!(dir.entries(), Vec::<String>::new());
        }
    }
}

#[test]
fn a_second_signal_right_after_the_first_neither_skips_the_clean_up_nor_the_status()
{
    let dir = TempDir::new("fifo-twice");
    for bin in [WRITER, READER] {
        for (first, second) in [
            (Signal::SIGINT, Signal::SIGINT),
            (Signal::SIGTERM, Signal::SIGINT),
        ] {
            let mut running = program(bin, &dir).spawn();
            running.wait_for_stderr("waiting for");
            running.signal(first);
            running.signal(second);
            let run = running.finish();
            // The first signal decides the status: 128 + its number.
            assert_code(&run, 128 + first as i32);
            assert_stderr(&run, &format!("stopped by {first}"));
            assert_eq!(dir.entries(), Vec::<String>::new(), "{}", run.transcript());
        }
    }
}

#[test]
fn a_reader_stalled_on_stdout_stops_at_the_first_signal() {
    let dir = TempDir::new("fifo-stalled");
    // `sleep` never reads: once the pipe to it is full, every write would block.
    let script = r#"{ "$0"; echo "reader exit $?" >&2; } | sleep 30"#;
    let mut pipeline = shell(script, READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir)
        .args(["--messages", "1000000"])
        .spawn();
    sleep(Duration::from_millis(500)); // 64 KiB of output fill the pipe in far less
    let reader = group_members(pipeline.pid())
        .into_iter()
        .find(|m| m.command == "fifo-reader")
        .expect("the reader is running");
    let sent = Instant::now();
    lesson_test::send(reader.pid, Signal::SIGINT);
    let stderr = pipeline.wait_for_stderr("reader exit ");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "took {:?}",
        sent.elapsed()
    );
    assert!(
        stderr.contains("stopped by SIGINT while waiting for room on stdout"),
        "{stderr}"
    );
    assert!(stderr.contains("reader exit 130"), "{stderr}");
    for member in group_members(pipeline.pid()) {
        if member.command == "sleep" {
            lesson_test::send(member.pid, Signal::SIGKILL);
        }
    }
    pipeline.finish();
    let writer = writer.finish();
    assert_code(&writer, 1);
    assert_stderr(&writer, "EPIPE: the reader went away");
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn keep_leaves_the_fifo_whoever_made_it() {
    let dir = TempDir::new("fifo-keep");
    let run = program(READER, &dir)
        .args(["--keep", "--wait", "0.2"])
        .run();
    assert_code(&run, 3);
    let kind = std::fs::metadata(dir.path().join("my_pipe"))
        .unwrap()
        .file_type();
    assert!(kind.is_fifo(), "my_pipe is a FIFO (ls -l shows prw-...)");
    std::fs::remove_file(dir.path().join("my_pipe")).unwrap();

    let writer = program(WRITER, &dir).arg("--keep").spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let reader = program(READER, &dir).run();
    let writer = writer.finish();
    assert_code(&writer, 0);
    assert_eq!(reader.texts(), [message_line(reader.pid, writer.pid)]);
    let kind = std::fs::metadata(dir.path().join("my_pipe"))
        .unwrap()
        .file_type();
    assert!(kind.is_fifo(), "the writer made it and kept it");
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
    assert_code(&reader, 0);
    let mut next_per_writer: BTreeMap<i32, u64> =
        writers.iter().map(|w| (w.pid, 0)).collect();
    let prefix = format!("I pid [{}] received a message => ", reader.pid);
    for line in reader.texts() {
        let record = line.strip_prefix(&prefix).expect("the reader's format");
        // A torn record would have the wrong length or mixed contents.
        assert_eq!(record.len(), size - 1, "a record was torn: {record:.80}...");
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
        assert_code(writer, 0);
    }
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn records_are_one_line_each_with_no_trailing_space() {
    let dir = TempDir::new("fifo-records");
    let reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir).args(["--messages", "3"]).run();
    let reader = reader.finish();
    let prefix = format!("I pid [{}] received a message => ", reader.pid);
    let expected: Vec<String> = (0..3)
        .map(|i| format!("{prefix}Hello {} {i}", writer.pid))
        .collect();
    assert_eq!(reader.texts(), expected, "{}", reader.transcript());
    assert_stderr(
        &reader,
        &format!(
            "received 3 messages, {} bytes",
            3 * (9 + writer.pid.to_string().len())
        ),
    );

    // --size pads with a space and dots, never leaving a space at the end.
    for (size, padding) in [(1, " ."), (20, "")] {
        let reader = program(READER, &dir).spawn();
        wait_for_path(&dir.path().join("my_pipe"));
        let writer = program(WRITER, &dir)
            .args(["--messages", "1", "--size", &size.to_string()])
            .run();
        let reader = reader.finish();
        let body = reader.texts()[0].split(" => ").nth(1).unwrap().to_owned();
        let head = format!("Hello {} 0", writer.pid);
        if padding.is_empty() {
            assert_eq!(body.len(), size - 1, "{body:?}");
            assert!(body.starts_with(&format!("{head} .")), "{body:?}");
            assert!(
                body[head.len() + 1..].bytes().all(|b| b == b'.'),
                "{body:?}"
            );
        } else {
            assert_eq!(body, format!("{head}{padding}"));
        }
    }
}

#[test]
fn messages_n_stops_after_exactly_n_even_when_more_arrive_at_once() {
    let dir = TempDir::new("fifo-exactly");
    let reader = program(READER, &dir).args(["--messages", "3"]).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir).args(["--messages", "10"]).run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_eq!(reader.lines.len(), 3, "{}", reader.transcript());
    assert_stderr(&reader, "my_pipe: received 3 messages");
    // All ten fit in the FIFO at once, or the writer met a closed FIFO: both are fine.
    assert!(
        matches!(writer.code(), Some(0 | 1)),
        "{}",
        writer.transcript()
    );
}

#[test]
fn messages_n_spans_writers_that_follow_one_another() {
    let dir = TempDir::new("fifo-gap");
    let reader = program(READER, &dir).args(["--messages", "2"]).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    // The first writer has closed the FIFO (EOF) before the second opens it.
    let first = program(WRITER, &dir).run();
    sleep(Duration::from_millis(300));
    let second = program(WRITER, &dir).run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_eq!(
        reader.texts(),
        [
            message_line(reader.pid, first.pid),
            message_line(reader.pid, second.pid)
        ]
    );
}

#[test]
fn eof_before_n_messages_ends_with_exit_1_after_the_grace() {
    let dir = TempDir::new("fifo-eof-early");
    let reader = program(READER, &dir).args(["--messages", "10"]).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir).args(["--messages", "5"]).run();
    assert_code(&writer, 0);
    let reader = reader.finish();
    assert_code(&reader, 1);
    assert_eq!(reader.lines.len(), 5);
    assert_stderr(&reader, "my_pipe: EOF after 5 messages, ");
    assert_stderr(
        &reader,
        "expected 10 messages (no other writer came within 2s)",
    );
    // It gave the next writer its two seconds, no more.
    let waited = reader.elapsed.saturating_sub(reader.lines[4].at);
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
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
    assert_code(&writer, 1);
    assert_stderr(&writer, "write my_pipe: EPIPE: the reader went away after ");
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the writer made it, removed it"
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
    assert_code(&reader, 0);
    let arrived = reader.lines.len();
    assert!(arrived >= 3, "{}", reader.transcript());
    assert_stderr(
        &reader,
        &format!("EOF, every writer has closed it; received {arrived} messages"),
    );
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "the reader made it, removed it"
    );
}

#[test]
fn a_closed_or_full_stdout_is_reported_and_the_fifo_removed() {
    let dir = TempDir::new("fifo-stdout");
    for (script, error) in [
        (
            r#"{ "$0"; echo "reader exit $?" >&2; } | head -n 1"#,
            "write stdout: EPIPE",
        ),
        (
            r#""$0" > /dev/full; echo "reader exit $?" >&2"#,
            "write stdout: ENOSPC",
        ),
    ] {
        let reader = shell(script, READER, &dir).spawn();
        wait_for_path(&dir.path().join("my_pipe"));
        let writer = program(WRITER, &dir).args(["--messages", "100000"]).run();
        let reader = reader.finish();
        assert_stderr(&reader, error);
        assert_stderr(&reader, "reader exit 1");
        assert!(
            !reader.stderr.contains("panicked"),
            "{}",
            reader.transcript()
        );
        assert!(matches!(writer.code(), Some(1)), "{}", writer.transcript());
        assert_eq!(dir.entries(), Vec::<String>::new());
    }
}

#[test]
fn a_full_stderr_changes_nothing_else() {
    let dir = TempDir::new("fifo-stderr");
    let reader = shell(r#"exec "$0" 2>/dev/full"#, READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = shell(r#"exec "$0" --messages 2 2>/dev/full"#, WRITER, &dir).run();
    let reader = reader.finish();
    assert_code(&writer, 0);
    assert_code(&reader, 0);
    assert_eq!(reader.lines.len(), 2);
    let run = shell(r#"exec "$0" --wait 0.1 2>/dev/full"#, WRITER, &dir).run();
    assert_code(&run, 3);
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn numbers_at_the_edges_of_their_ranges_are_honoured() {
    let dir = TempDir::new("fifo-edges");
    // The largest record: 1 MiB, newline included, read whole.
    let reader = program(READER, &dir).args(["--wait", "86400"]).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir)
        .args(["--messages", "1", "--size", "1048576", "--interval", "0"])
        .run();
    let reader = reader.finish();
    assert_code(&writer, 0);
    assert_code(&reader, 0);
    let body = reader.texts()[0].split(" => ").nth(1).unwrap().len();
    assert_eq!(body, 1_048_575);
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn a_message_of_the_longest_length_is_accepted_and_one_byte_more_refused() {
    let dir = TempDir::new("fifo-longest");
    // One message of 1 MiB, with no newline: it ends at EOF.
    let fill = r#"head -c "$1" /dev/zero | tr '\0' a > "$0""#;
    for (bytes, accepted) in [(1_048_576, true), (1_048_577, false)] {
        let reader = program(READER, &dir).spawn();
        wait_for_path(&dir.path().join("my_pipe"));
        let shell =
            program("sh", &dir).args(["-c", fill, "my_pipe", &bytes.to_string()]);
        let writer = shell.run();
        let reader = reader.finish();
        if accepted {
            assert_code(&reader, 0);
            assert_code(&writer, 0);
            let body = reader.texts()[0].split(" => ").nth(1).unwrap().len();
            assert_eq!(body, bytes);
        } else {
            assert_code(&reader, 1);
            assert_stderr(
                &reader,
                "read my_pipe: a message is longer than 1048576 bytes",
            );
            assert!(reader.stdout.is_empty());
        }
        assert_eq!(dir.entries(), Vec::<String>::new());
    }
}

#[test]
fn bad_options_exit_2_with_usage_naming_the_range() {
    let dir = TempDir::new("fifo-usage");
    let cases: &[(&str, &[&str], &str)] = &[
        (
            WRITER,
            &["--wait", "soon"],
            "--wait \"soon\": invalid float literal",
        ),
        (
            WRITER,
            &["--wait", "1e19"],
            "--wait \"1e19\": must be from 0 to 86400",
        ),
        (
            READER,
            &["--wait", "1e308"],
            "--wait \"1e308\": must be from 0 to 86400",
        ),
        (
            READER,
            &["--wait", "-1"],
            "--wait \"-1\": must be from 0 to 86400",
        ),
        (
            WRITER,
            &["--messages", "2", "--interval", "1e308"],
            "must be from 0 to 3600",
        ),
        (
            WRITER,
            &["--messages", "1", "--size", "0"],
            "must be from 1 to 1048576",
        ),
        (
            WRITER,
            &["--messages", "1", "--size", "1048577"],
            "must be from 1 to 1048576",
        ),
        (
            READER,
            &["--messages", "0"],
            "--messages \"0\": must be from 1 to 1000000000",
        ),
        (
            WRITER,
            &["--messages", "1000000001"],
            "must be from 1 to 1000000000",
        ),
        (
            WRITER,
            &["--size", "100"],
            "--size and --interval go with --messages",
        ),
        (
            WRITER,
            &["--interval", "1"],
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
        assert!(run.stdout.is_empty());
    }
    assert_eq!(
        dir.entries(),
        Vec::<String>::new(),
        "usage errors create nothing"
    );
}

/// Checks a `--help`: exit 0, `Usage:` first, every option line indented two spaces
/// with its description (and continuation lines) in one column, and exactly `options`.
fn assert_help(bin: &str, options: &[&str]) {
    let dir = TempDir::new("fifo-help");
    let run = program(bin, &dir).arg("--help").run();
    assert_code(&run, 0);
    let text = run.stdout_text();
    assert!(text.starts_with("Usage: "), "{text}");
    let section: Vec<&str> = text
        .split("\nOptions:\n")
        .nth(1)
        .expect("an Options: section")
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .collect();
    let column = |line: &str| {
        let spec_end = line[2..].find("  ").map_or(line.len(), |i| i + 2);
        spec_end + line[spec_end..].len() - line[spec_end..].trim_start().len()
    };
    let mut columns = Vec::new();
    let mut seen = Vec::new();
    for line in &section {
        if line.trim_start().starts_with('-') {
            assert!(
                line.starts_with("  -") && !line.starts_with("   "),
                "{line:?}"
            );
            let spec = line[2..].split("  ").next().unwrap();
            seen.extend(
                spec.split(", ")
                    .map(|s| s.split(' ').next().unwrap().to_owned()),
            );
            columns.push(column(line));
        } else {
            columns.push(line.len() - line.trim_start().len());
        }
    }
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "misaligned {columns:?}:\n{text}"
    );
    assert_eq!(seen, options, "{text}");
    let full = shell(r#"exec "$0" --help > /dev/full"#, bin, &dir).run();
    assert_code(&full, 1);
    assert_stderr(&full, "write stdout");
}

#[test]
fn help_lists_every_option_aligned_and_survives_a_full_stdout() {
    assert_help(
        WRITER,
        &[
            "--messages",
            "--size",
            "--interval",
            "--wait",
            "--keep",
            "--show-fds",
            "-h",
            "--help",
        ],
    );
    assert_help(
        READER,
        &[
            "--messages",
            "--wait",
            "--keep",
            "--show-fds",
            "-h",
            "--help",
        ],
    );
}

/// The rows of `block` that are FIFOs.
fn fifo_rows(block: &FdBlock) -> Vec<FdRow> {
    block
        .rows
        .iter()
        .filter(|row| row.kind == "fifo")
        .cloned()
        .collect()
}

/// A directory whose path has the same length in every run (the pid padded to 7
/// digits), so the tables' columns line up the same in the book's transcripts.
struct FixedDir(std::path::PathBuf);

impl FixedDir {
    fn new(prefix: &str) -> FixedDir {
        let path = std::env::temp_dir()
            .join(format!("{prefix}-{:07}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the directory");
        FixedDir(path)
    }
}

impl Drop for FixedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Marks every descriptor of this test process above 2 close-on-exec, so the
/// lessons it starts inherit only 0, 1 and 2, wherever the tests run. (A shell or CI
/// runner may hand `cargo test` descriptors of its own, and `Command` passes on
/// whatever is not close-on-exec: the tables in the book would show them.)
fn inherit_no_stray_descriptors() {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd");
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok())
        else {
            continue;
        };
        if fd > 2 {
            // SAFETY: F_SETFD only changes the close-on-exec flag of a descriptor
            // number; on a number that is closed by now it fails with EBADF, which
            // is fine to ignore. No memory is involved.
            unsafe {
                nix::libc::fcntl(fd, nix::libc::F_SETFD, nix::libc::FD_CLOEXEC)
            };
        }
    }
}

#[test]
fn show_fds_shows_the_fifo_only_between_open_and_close_read_and_write_ends() {
    inherit_no_stray_descriptors();
    let dir = FixedDir::new("fifo-fds");
    let fifo_path = dir.0.join("my_pipe");
    let mut reader = Lesson::new(READER)
        .current_dir(&dir.0)
        .deadline(Duration::from_secs(10))
        .shown_as("cargo run -q -p named-fifo --bin fifo-reader --")
        .arg("--show-fds")
        .merge_stderr()
        .spawn();
    // The note comes after the reader has opened the FIFO: the writer finds it.
    while !reader
        .next_line()
        .expect("reader output")
        .text
        .contains("waiting")
    {}
    let writer = Lesson::new(WRITER)
        .current_dir(&dir.0)
        .deadline(Duration::from_secs(10))
        .shown_as("cargo run -q -p named-fifo --bin fifo-writer --")
        .arg("--show-fds")
        .merge_stderr()
        .run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_code(&writer, 0);

    for (run, who, end) in [
        (&reader, "fifo-reader", "read"),
        (&writer, "fifo-writer", "write"),
    ] {
        let output = run.stdout_text();
        let blocks = fd_blocks::blocks(&output);
        let steps: Vec<&str> = blocks.iter().map(|b| b.step.as_str()).collect();
        assert_eq!(
            steps,
            [
                "after mkfifo my_pipe",
                "after open my_pipe",
                "after close my_pipe"
            ],
            "{output}"
        );
        assert!(blocks.iter().all(|b| b.who == who), "{output}");
        // mkfifo makes a name, not a descriptor; close takes the descriptor away.
        assert_eq!(fifo_rows(&blocks[0]), [], "{output}");
        assert_eq!(fifo_rows(&blocks[2]), [], "{output}");
        // In between: one descriptor, our end only, kept out of exec'd programs and
        // never blocking.
        let opened = fifo_rows(&blocks[1]);
        assert_eq!(opened.len(), 1, "{output}");
        assert_eq!(opened[0].fd, 3, "{output}");
        assert_eq!(opened[0].object, fifo_path.display().to_string());
        assert_eq!(opened[0].end, end, "{output}");
        assert_eq!(opened[0].flags, "cloexec,nonblock", "{output}");
        // Nothing else changes from step to step: 0, 1 and 2 are the harness's.
        let others = |b: &FdBlock| -> Vec<FdRow> {
            b.rows
                .iter()
                .filter(|r| r.kind != "fifo")
                .cloned()
                .collect()
        };
        assert_eq!(others(&blocks[0]), blocks[2].rows, "{output}");
        assert_eq!(others(&blocks[1]), blocks[2].rows, "{output}");
        let fds: Vec<i32> = blocks[2].rows.iter().map(|r| r.fd).collect();
        assert_eq!(fds, [0, 1, 2], "{output}");
    }
    // The order in the reader's output: open, the note, the message, close, EOF.
    let texts = reader.texts();
    let at = |needle: &str| {
        texts
            .iter()
            .position(|t| t.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {}", reader.transcript()))
    };
    assert!(at("after open") < at("waiting for a writer"));
    assert!(at("received a message") < at("after close"));
    assert!(at("after close") < at("EOF, every writer"));
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0, "removed");

    let book =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src/transcripts");
    check_transcript_of(&book.join("named-fifo-fds.txt"), &reader);
    check_transcript_of(&book.join("named-fifo-writer-fds.txt"), &writer);
}

#[test]
fn without_show_fds_no_table_is_printed() {
    let dir = TempDir::new("fifo-no-fds");
    let reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir).args(["--messages", "2"]).run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_code(&writer, 0);
    for run in [&reader, &writer] {
        assert!(!run.stderr.contains("[fds]"), "{}", run.transcript());
    }
}

#[test]
fn show_fds_in_the_streaming_writer_shows_the_close_before_the_end() {
    let dir = TempDir::new("fifo-fds-stream");
    let reader = program(READER, &dir).spawn();
    wait_for_path(&dir.path().join("my_pipe"));
    let writer = program(WRITER, &dir)
        .args(["--messages", "3", "--show-fds"])
        .run();
    let reader = reader.finish();
    assert_code(&reader, 0);
    assert_code(&writer, 0);
    assert_eq!(reader.lines.len(), 3, "{}", reader.transcript());
    let blocks = fd_blocks::blocks(&writer.stderr);
    assert_eq!(blocks.len(), 3, "{}", writer.transcript());
    assert_eq!(blocks[2].step, "after close my_pipe");
    assert_eq!(fifo_rows(&blocks[1])[0].end, "write");
    assert_eq!(fifo_rows(&blocks[2]), [], "{}", writer.transcript());
}

/// The book's trace of the writer, made the way the chapter says: a reader waits
/// in the directory, then `scripts/trace fifo-writer` runs there. The workspace's
/// trace test (lesson-test/tests/traces.rs) runs a traced program alone, where the
/// writer would wait for ever, so this excerpt lives in a folder of its own, and
/// this test traces it again and compares it, process by process.
#[test]
fn the_books_trace_of_the_writer_meeting_a_reader_matches_a_fresh_trace() {
    if let Err(why) = lesson_test::strace_works() {
        eprintln!("skipped: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join("docs/src/traces/fifo-pair/fifo-writer.txt");
    let dir = TempDir::new("ftr");
    // The script shows the binary as BIN when its path is short enough to be
    // printed whole: a copy next to the FIFO is.
    std::fs::copy(WRITER, dir.path().join("fifo-writer")).expect("copy the writer");
    let mut reader = program(READER, &dir).spawn();
    reader.wait_for_stderr("waiting for a writer");
    let trace = Lesson::new(root.join("scripts/trace"))
        .arg("fifo-writer")
        .current_dir(dir.path())
        .env("TRACE_BIN_DIR", dir.path())
        .deadline(Duration::from_secs(30))
        .run();
    let reader = reader.finish();
    assert_code(&trace, 0);
    assert_code(&reader, 0);
    let fresh = trace.stdout_text();
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).expect("traces folder");
        std::fs::write(&file, &fresh).expect("write the trace");
        return;
    }
    let recorded = std::fs::read_to_string(&file).expect("the book's trace");
    assert_eq!(
        lesson_test::calls_by_process(&recorded),
        lesson_test::calls_by_process(&fresh),
        "{} no longer matches a fresh trace; if the change is intended, run \
         UPDATE_TRANSCRIPTS=1 cargo test -p named-fifo",
        file.display()
    );
}

#[test]
fn a_path_of_any_other_kind_is_refused_by_name_before_it_is_opened() {
    // Each kind is named; the check comes before the open (a directory cannot be
    // opened for writing, a socket file not at all: either would give a less
    // helpful error), and nothing is removed.
    let dir = TempDir::new("fifo-kinds");
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let _listener =
        std::os::unix::net::UnixListener::bind(dir.path().join("sock")).unwrap();
    let cases = [
        ("sub", "a directory"),
        ("sock", "a socket"),
        ("/dev/null", "a device"),
    ];
    for bin in [WRITER, READER] {
        for (path, kind) in cases {
            let run = program(bin, &dir).args(["--wait", "1", path]).run();
            assert_code(&run, 1);
            let wanted = format!("{path}: exists and is {kind}, not a FIFO");
            assert_stderr(&run, &wanted);
        }
    }
    assert_eq!(dir.entries(), ["sock", "sub"]);
    let kind = std::fs::metadata("/dev/null").unwrap().file_type();
    assert!(kind.is_char_device(), "/dev/null is left as it is");
}

#[test]
fn a_fifo_replaced_by_a_file_while_the_writer_waits_is_refused_and_left_intact() {
    let dir = TempDir::new("fifo-swapped");
    let fifo = dir.path().join("my_pipe");
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&fifo, mode).unwrap();
    let mut writer = program(WRITER, &dir).spawn();
    writer.wait_for_stderr("cargo run");
    // While the writer waits for a reader, someone's file takes the FIFO's name: the
    // writer's next open succeeds, on that file. What it opened is checked, so it
    // writes nothing into it.
    let file = dir.path().join("data");
    std::fs::write(&file, b"precious data\n").unwrap();
    std::fs::rename(&file, &fifo).unwrap();
    let run = writer.finish();
    assert_code(&run, 1);
    assert_stderr(&run, "my_pipe: exists and is a regular file, not a FIFO");
    assert_eq!(std::fs::read(&fifo).unwrap(), b"precious data\n");
    assert_eq!(dir.entries(), ["my_pipe"]);
}

#[test]
fn a_file_that_took_the_fifos_name_is_not_removed_at_the_end() {
    let dir = TempDir::new("fifo-taken");
    let mut reader = program(READER, &dir).spawn();
    reader.wait_for_stderr("cargo run");
    // The reader made my_pipe and waits for a writer; someone's file takes the name.
    let file = dir.path().join("data");
    std::fs::write(&file, b"precious data\n").unwrap();
    std::fs::rename(&file, dir.path().join("my_pipe")).unwrap();
    let run = reader.stop_with(Signal::SIGTERM);
    assert_stderr(&run, "stopped by SIGTERM while waiting for a writer");
    let kept = std::fs::read(dir.path().join("my_pipe")).unwrap();
    assert_eq!(kept, b"precious data\n", "{}", run.transcript());
    assert_eq!(dir.entries(), ["my_pipe"]);
}
