//! Every binary's `--help` reads well and is complete: it exits 0 and prints on stdout
//! only; it starts with `Usage:`; every option line in it is indented two spaces, and
//! the descriptions start in one column; and every option the binary accepts is listed.
//!
//! Which options a binary accepts is asked of the binary itself: every `"--name"` string
//! in its package's sources is a candidate, and the binary is run with the candidate and
//! then two unknown options. If the candidate is unknown the parser names it; if it is a
//! flag, or takes a value (the first unknown word), the parser names the second unknown
//! word instead. Either way the parser stops before the program does anything.

use lesson_test::Lesson;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/debug")
        .to_owned()
}

/// The `.rs` files under a folder.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every lesson binary: (name, its package's source files).
fn binaries() -> Vec<(String, Vec<PathBuf>)> {
    let manifest =
        std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let start = manifest.find("members").expect("members");
    let list = &manifest[start..manifest[start..].find(']').expect("]") + start];
    let mut found = Vec::new();
    for member in list.split('"').skip(1).step_by(2) {
        if member.starts_with("lesson-") {
            continue;
        }
        let src = root().join(member).join("src");
        let sources = rust_files(&src);
        if src.join("main.rs").exists() {
            found.push((member.to_owned(), sources.clone()));
        }
        if let Ok(dir) = std::fs::read_dir(src.join("bin")) {
            for entry in dir.filter_map(Result::ok) {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "rs")
                    && let Some(name) = path.file_stem().and_then(|n| n.to_str())
                {
                    found.push((name.to_owned(), sources.clone()));
                }
            }
        }
    }
    found.sort();
    found
}

/// Every `"--name"` string literal in a source: the candidates for options.
fn candidate_options(source: &str) -> Vec<String> {
    let mut options: Vec<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|piece| {
            piece.len() > 2
                && piece.starts_with("--")
                && piece[2..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .collect();
    options.sort();
    options.dedup();
    options
}

/// Whether the binary's parser accepts `option` (see the module comment).
fn accepts(exe: &Path, option: &str) -> bool {
    const UNKNOWN: &str = "--no-such-option-at-all";
    let run = Lesson::new(exe)
        .args([option, UNKNOWN, UNKNOWN])
        .deadline(Duration::from_secs(10))
        .run();
    !run.stderr.contains(&format!("unknown option {option}"))
}

/// What is wrong with a help text's layout: option lines not indented two spaces, or
/// descriptions not starting in one column.
fn layout_problems(help: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !help.starts_with("Usage:") {
        problems.push("does not start with `Usage:`".to_owned());
    }
    let mut columns = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('-')
            || line.len() == trimmed.len() && !line.starts_with("--")
        {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent != 2 {
            problems
                .push(format!("option line indented {indent}, not 2: {line:?}"));
            continue;
        }
        // The description starts after the first run of two or more spaces.
        if let Some(gap) = trimmed.find("  ") {
            let rest = &trimmed[gap..];
            columns
                .push((indent + gap + rest.len() - rest.trim_start().len(), line));
        }
    }
    if let Some((first, _)) = columns.first() {
        for (column, line) in &columns {
            if column != first {
                problems.push(format!(
                    "description at column {column}, others at {first}: {line:?}"
                ));
            }
        }
    }
    problems
}

#[test]
fn every_binarys_help_starts_with_usage_is_aligned_and_lists_every_option() {
    let mut problems = Vec::new();
    let all = binaries();
    assert!(all.len() >= 10, "{all:?}");
    for (name, sources) in all {
        let exe = bin_dir().join(&name);
        if !exe.exists() {
            eprintln!("skipped {name}: not built");
            continue;
        }
        let run = Lesson::new(&exe)
            .arg("--help")
            .deadline(Duration::from_secs(10))
            .run();
        let help = run.stdout_text();
        if run.code() != Some(0) || !run.stderr.is_empty() {
            problems.push(format!("{name} --help: {}", run.transcript()));
            continue;
        }
        problems.extend(
            layout_problems(&help)
                .into_iter()
                .map(|p| format!("{name}: {p}")),
        );
        let mut candidates: Vec<String> = sources
            .iter()
            .flat_map(|file| {
                candidate_options(&std::fs::read_to_string(file).expect("read"))
            })
            .collect();
        candidates.sort();
        candidates.dedup();
        if accepts(&exe, "--surely-not-an-option") {
            // A program that takes every word as an argument (an argv printer): it has no
            // options to list.
            continue;
        }
        for option in candidates {
            if !help.contains(&option) && accepts(&exe, &option) {
                problems.push(format!(
                    "{name} accepts {option}, which --help does not list"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_see_misaligned_help_and_unlisted_options() {
    let good = "Usage: x [--count N]\n\nOptions:\n  --count N    stop after N\n  \
                -h, --help   print this help\n               (continued)\n";
    assert_eq!(layout_problems(good), Vec::<String>::new());
    let bad =
        "Usage: x\n--count N    at column 0\n  --speed X  misaligned\n  -h    ok\n";
    let problems = layout_problems(bad);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("indented 0"));
    assert!(problems[1].contains("column"));
    assert!(layout_problems("usage: x\n")[0].contains("Usage:"));
    let source = r#"match arg.as_str() { "--count" => 1, "-h" | "--help" => 2, _ => 3 }
                    let text = "--no gap"; let b = "--"; let c = "--count";"#;
    assert_eq!(candidate_options(source), ["--count", "--help"]);
}
