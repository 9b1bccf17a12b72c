//! The book's system-call excerpts (`docs/src/traces/*.txt`) are made by `scripts/trace`:
//! each file starts with the command that made it. This test traces each command again and
//! compares, process by process, the calls each one made (the kernel may interleave two
//! processes differently from run to run; within one process the order is the lesson's).
//! `UPDATE_TRANSCRIPTS=1` rewrites the files. Where `strace` is missing or cannot trace
//! (no ptrace permission), the test says so and checks nothing else.

use lesson_test::Lesson;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/debug`, where `cargo test --workspace` has built every lesson's binaries.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_owned()
}

/// The lines of a trace, grouped by the process that made them, in order. What changes
/// from run to run is left out: when a signal arrives (`--- SIGCHLD ---` may come before
/// or after the `wait4` returns), and the lengths of reads and writes, which count the
/// digits of pids and times (masked in the text, not in the count). A string strace cut
/// short is kept up to its last space, since where strace cut depends on those digits too.
fn by_process(trace: &str) -> BTreeMap<String, Vec<String>> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in trace.lines().skip(1) {
        let (who, call) = line.split_once(' ').unwrap_or((line, ""));
        let call = call.trim();
        if call.starts_with("--- ") {
            continue;
        }
        groups
            .entry(who.to_owned())
            .or_default()
            .push(without_lengths(call));
    }
    groups
}

/// `write(1, "Parent <parent> got"..., 50) = 50` becomes `write(1, "Parent <parent>`;
/// the same for `read`, `sendto` and `recvfrom`.
fn without_lengths(call: &str) -> String {
    let data = ["write(", "read(", "sendto(", "recvfrom("];
    if !data.iter().any(|name| call.starts_with(name)) {
        return call.to_owned();
    }
    let Some(open) = call.find('"') else {
        return call.to_owned();
    };
    let body = &call[open + 1..];
    match body.find("\"...") {
        Some(cut) => {
            let text = &body[..cut];
            let kept = text.rfind(' ').map_or(text, |space| &text[..space]);
            format!("{}{kept}", &call[..=open])
        }
        None => match body.rfind('"') {
            Some(close) => call[..=open + 1 + close].to_owned(),
            None => call.to_owned(),
        },
    }
}

#[test]
fn every_trace_excerpt_matches_a_fresh_trace_process_by_process() {
    if let Err(why) = lesson_test::strace_works() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = root().join("docs/src/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "txt"));
    files.sort();
    assert!(!files.is_empty(), "no excerpts in {}", dir.display());
    for file in files {
        let recorded = std::fs::read_to_string(&file).expect("read trace");
        let command = recorded
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("$ scripts/trace "))
            .unwrap_or_else(|| {
                panic!("{}: first line is not a command", file.display())
            });
        let words: Vec<&str> = command.split_whitespace().collect();
        if !bin_dir().join(words[0]).exists() {
            eprintln!("skipped {}: {} is not built", file.display(), words[0]);
            continue;
        }
        let run = Lesson::new(root().join("scripts/trace"))
            .args(&words)
            .env("TRACE_BIN_DIR", bin_dir())
            .deadline(Duration::from_secs(30))
            .run();
        // The traced program's exit status is part of the trace (`+++ exited with 1 +++`).
        let fresh = run.stdout_text();
        if std::env::var_os("UPDATE_TRANSCRIPTS").is_some() {
            std::fs::write(&file, &fresh).expect("write trace");
            continue;
        }
        assert_eq!(
            by_process(&recorded),
            by_process(&fresh),
            "{} no longer matches a fresh trace; if the change is intended, run \
             UPDATE_TRANSCRIPTS=1 cargo test --workspace",
            file.display()
        );
    }
}

#[test]
fn by_process_groups_lines_under_their_process_in_order() {
    let trace = "$ scripts/trace x\nparent   a(1)\nchild    b(2)\nparent   c(3) = 0\n\
                 parent   --- SIGCHLD ---\nparent   write(1, \"ab\"..., 51) = 51\n";
    let groups = by_process(trace);
    assert_eq!(groups["parent"], ["a(1)", "c(3) = 0", "write(1, \"ab"]);
    assert_eq!(
        without_lengths("write(2, \"Parent <parent> forked <child>\\n\", 36) = 36"),
        "write(2, \"Parent <parent> forked <child>\\n\""
    );
    assert_eq!(
        without_lengths("read(3, \"Spam 1 and more\"..., 32) = 32"),
        "read(3, \"Spam 1 and"
    );
    assert_eq!(without_lengths("close(3) = 0"), "close(3) = 0");
    assert_eq!(groups["child"], ["b(2)"]);
    assert_eq!(groups.len(), 2);
}
