//! The book's system-call excerpt of one pipe job, `docs/src/traces/ipc-bench/`:
//! made by `scripts/trace`, then condensed by [`excerpt`] below, and compared here
//! with a fresh trace, process by process.
//!
//! Why a filter of its own: the whole trace is long and changes from run to run.
//! The coordinator polls (`wait4(..., WNOHANG) = 0` every time `poll` wakes), reads
//! its signalfd as often as SIGCHLDs happen to be merged, and reads result lines in
//! whatever pieces they arrive; the result lines carry timings. The excerpt keeps
//! the pipe job only (from its progress note to the coordinator's last close), drops
//! those lines and std's `fcntl(fd, F_GETFD)` check before each close, masks the
//! timings, and names the processes.
//! `UPDATE_TRANSCRIPTS=1` rewrites the file.

use lesson_test::Lesson;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-bench");

/// The traced run: one repetition, two 64-byte messages, one round trip (and the
/// last one, which tells the peer to stop echoing).
const ARGS: [&str; 10] = [
    "--only", "pipe", "--sizes", "64", "--bytes", "128", "--rounds", "1", "--reps",
    "1",
];

/// Strings longer than this many characters (an escape such as `\377` is one) are
/// cut: a line must fit the book's 86 columns.
const SHOWN: usize = 16;

/// The condensed excerpt of a `scripts/trace` output (see the module's notes).
fn excerpt(trace: &str) -> String {
    let mut lines = trace.lines();
    let command = lines.next().unwrap_or_default();
    let mut out = format!("{command}\n");
    let mut started = false;
    let mut eof = false;
    for line in lines {
        let (who, call) = line.split_once(' ').unwrap_or((line, ""));
        let call = call.trim();
        if !started {
            started = who == "parent" && call.contains("[2/2] pipe");
            if !started {
                continue;
            }
        }
        if who == "parent" && is_noise(call) {
            continue;
        }
        if call.starts_with("fcntl(") && call.contains("F_GETFD") {
            continue; // std checks that a descriptor is open before it closes it
        }
        let name = match who {
            "parent" => "coordinator",
            "child2" => "peer",
            "child3" => "measuring",
            other => other,
        };
        let call = call
            .replace("<parent>", "<coordinator>")
            .replace("<child2>", "<peer>")
            .replace("<child3>", "<measuring>");
        out.push_str(&format!("{name:<12}{}\n", shorten(&mask_results(&call))));
        if who == "parent" && call.starts_with("read(") && call.ends_with(" = 0") {
            eof = true;
        } else if eof && who == "parent" && call.starts_with("close(") {
            break; // the results pipe's read end: the job is over
        }
    }
    out
}

/// The coordinator's lines whose number depends on timing: polls that find no child
/// gone, its signalfd (fd 3), and result lines read in whatever pieces they came.
fn is_noise(call: &str) -> bool {
    call.starts_with("--- ")
        || (call.starts_with("wait4(") && call.ends_with(" = 0"))
        || call.starts_with("read(3, ")
        || (call.starts_with("read(") && !call.ends_with(" = 0"))
}

/// `write(11, "tp 64 0 174345 128 1\n", 21) = 21` becomes
/// `write(11, "tp 64 0 <ns> 128 1\n", …) = …`: the timings change from run to run.
fn mask_results(call: &str) -> String {
    let Some(start) = call.find("\"tp ").or_else(|| call.find("\"rt ")) else {
        return call.to_owned();
    };
    let Some(end) = call[start + 1..].find('"').map(|i| start + 1 + i) else {
        return call.to_owned();
    };
    let text = &call[start + 1..end];
    let timed = if text.starts_with("tp ") { 3..4 } else { 3..5 };
    let masked: Vec<&str> = text
        .split(' ')
        .enumerate()
        .map(|(i, word)| if timed.contains(&i) { "<ns>" } else { word })
        .collect();
    let head = &call[..start + 1];
    let tail = &call[end..];
    let tail = match tail.find(", ") {
        Some(comma) => format!("{}, …) = …", &tail[..comma]),
        None => tail.to_owned(),
    };
    format!("{head}{}{tail}", masked.join(" "))
}

/// Cuts every quoted string of binary data (one that starts with an escape) after
/// [`SHOWN`] characters (an escape counts as one); text is left whole.
fn shorten(call: &str) -> String {
    let mut out = String::new();
    let mut chars = call.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        // Only the bytes of messages and commands: they start with an escape.
        if c != '"' || chars.peek() != Some(&'\\') {
            continue;
        }
        let mut shown = 0;
        let mut cut = false;
        while let Some(c) = chars.next() {
            if c == '"' {
                out.push('"');
                if cut && !chars.clone().collect::<String>().starts_with("...") {
                    out.push_str("...");
                }
                break;
            }
            let mut token = c.to_string();
            if c == '\\'
                && let Some(next) = chars.next()
            {
                token.push(next);
                while next.is_ascii_digit()
                    && token.len() < 4
                    && chars.peek().is_some_and(|d| d.is_ascii_digit())
                {
                    token.push(chars.next().expect("peeked"));
                }
            }
            if shown < SHOWN {
                out.push_str(&token);
            } else {
                cut = true;
            }
            shown += 1;
        }
    }
    out
}

/// Each process's lines in order. The coordinator's ending (the two reaps and the
/// results pipe's EOF) comes in whatever order the children end: compared as a set.
fn by_process(excerpt: &str) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in excerpt.lines().skip(1) {
        let (who, call) = line.split_once(' ').unwrap_or((line, ""));
        groups
            .entry(who.to_owned())
            .or_default()
            .push(call.trim().to_owned());
    }
    if let Some(calls) = groups.get_mut("coordinator") {
        let ending = |c: &String| c.starts_with("wait4(") || c.starts_with("read(");
        if let Some(first) = calls.iter().position(ending) {
            let last = calls.iter().rposition(ending).expect("one at least");
            calls[first..=last].sort();
        }
    }
    groups
}

#[test]
fn the_books_trace_of_a_pipe_job_matches_a_fresh_trace() {
    if let Err(why) = lesson_test::strace_works() {
        eprintln!("skipped: {why}");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = root.join("docs/src/traces/ipc-bench/pipe-job.txt");
    let trace = Lesson::new(root.join("scripts/trace"))
        .arg("ipc-bench")
        .args(ARGS)
        .env(
            "TRACE_BIN_DIR",
            Path::new(BIN).parent().expect("its folder"),
        )
        .deadline(Duration::from_secs(30))
        .run();
    assert_eq!(trace.code(), Some(0), "{}", trace.transcript());
    let fresh = excerpt(&trace.stdout_text());
    if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
        std::fs::create_dir_all(file.parent().expect("folder")).expect("mkdir");
        std::fs::write(&file, &fresh).expect("write the excerpt");
        return;
    }
    let recorded = std::fs::read_to_string(&file).expect("the book's excerpt");
    assert_eq!(
        by_process(&recorded),
        by_process(&fresh),
        "{} no longer matches a fresh trace; if the change is intended, run \
         UPDATE_TRANSCRIPTS=1 cargo test -p ipc-bench --test trace\n{fresh}",
        file.display()
    );
    for line in recorded.lines() {
        assert!(line.chars().count() <= 86, "wider than the book: {line}");
    }
}

#[test]
fn the_filter_masks_timings_and_cuts_long_strings() {
    assert_eq!(
        mask_results(r#"write(11, "tp 64 0 174345 128 1\n", 21) = 21"#),
        r#"write(11, "tp 64 0 <ns> 128 1\n", …) = …"#
    );
    assert_eq!(
        mask_results(r#"write(11, "rt 64 0 7274 10441 2\n", 22) = 22"#),
        r#"write(11, "rt 64 0 <ns> <ns> 2\n", …) = …"#
    );
    assert_eq!(mask_results("close(4) = 0"), "close(4) = 0");
    assert_eq!(
        shorten(
            r#"write(9, "\1\0\0\0\0\0\0\0@\0\0\0\0\0\0\0\2\0\0\0\0\0\0\0", 24) = 24"#
        ),
        r#"write(9, "\1\0\0\0\0\0\0\0@\0\0\0\0\0\0\0"..., 24) = 24"#
    );
    assert_eq!(
        shorten(
            r#"read(4, "\1\2\3\4\5\6\7\10\t\n\v\f\r\16\17\20\21\22"..., 64) = 64"#
        ),
        r#"read(4, "\1\2\3\4\5\6\7\10\t\n\v\f\r\16\17\20"..., 64) = 64"#
    );
    assert_eq!(
        shorten(r#"read(10, "", 4096) = 0"#),
        r#"read(10, "", 4096) = 0"#
    );
    let trace = "$ scripts/trace ipc-bench\nparent   pipe2([4, 5], O_CLOEXEC) = 0\n\
                 parent   write(2, \"ipc-bench: [2/2] pipe\\n\", 22) = 22\n\
                 child2   fcntl(9, F_GETFD) = 0x1 (flags FD_CLOEXEC)\n\
                 child2   close(9) = 0\n\
                 parent   wait4(<child2>, 0x…, WNOHANG, NULL) = 0\n\
                 parent   read(10, \"tp 64\", 4096) = 5\n\
                 parent   wait4(<child2>, [exited 0], WNOHANG, NULL) = <child2>\n\
                 parent   read(10, \"\", 4096) = 0\n\
                 parent   close(10) = 0\n\
                 parent   exit_group(0) = ?\n";
    assert_eq!(
        excerpt(trace),
        "$ scripts/trace ipc-bench\n\
         coordinator write(2, \"ipc-bench: [2/2] pipe\\n\", 22) = 22\n\
         peer        close(9) = 0\n\
         coordinator wait4(<peer>, [exited 0], WNOHANG, NULL) = <peer>\n\
         coordinator read(10, \"\", 4096) = 0\n\
         coordinator close(10) = 0\n"
    );
}
