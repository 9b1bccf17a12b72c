//! Every `cargo run` command the README and the book show must run as written when pasted
//! at the workspace root: its package is a member, its binary exists (or the package has
//! a `default-run`), and the binary accepts the arguments. Each command is started (from
//! `target/debug`, as cargo would after building, in the workspace root) for at most two
//! seconds: a usage error (exit 2), a panic (exit 101) or a death by signal fails the test;
//! exit 1 and 3 are allowed (a client started without its server says so and exits 1; a
//! lesson whose own time limit ran out exits 3); a lesson
//! still running then is stopped with SIGTERM and must end cleanly.

use lesson_test::Lesson;
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

/// A `cargo run` command: package, binary (if named), and the program's arguments.
#[derive(Debug, PartialEq)]
struct CargoRun {
    package: String,
    bin: Option<String>,
    args: Vec<String>,
}

/// The `cargo run ...` commands in a text: in backquotes, or after `$ ` in a console
/// block. A `#` comment ends a command.
fn cargo_runs(text: &str) -> Vec<(String, CargoRun)> {
    let mut found = Vec::new();
    let mut candidates: Vec<&str> = text.split('`').collect();
    candidates.extend(
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix("$ ")),
    );
    for candidate in candidates {
        let command = candidate.split(" #").next().unwrap_or("").trim();
        if !command.starts_with("cargo run ") {
            continue;
        }
        if let Some(parsed) = parse(command) {
            found.push((command.to_owned(), parsed));
        }
    }
    found
}

/// Splits a command line into words as a POSIX shell would for simple cases: quotes
/// (`'...'`, `"..."`) and backslashes. `None` for what a test cannot start as one program:
/// pipes, redirections, lists, substitutions, variables.
fn shell_words(command: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                w.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    match c {
                        '"' => break,
                        '$' | '`' => return None,
                        c => w.push(c),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '|' | '<' | '>' | ';' | '&' | '$' | '`' | '(' | ')' | '*' | '?' => {
                return None;
            }
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Some(words)
}

fn parse(command: &str) -> Option<CargoRun> {
    let words = shell_words(command)?;
    let mut package = None;
    let mut bin = None;
    let mut i = 2;
    while i < words.len() && words[i] != "--" {
        match words[i].as_str() {
            "-p" | "--package" => package = words.get(i + 1).cloned(),
            "--bin" => bin = words.get(i + 1).cloned(),
            _ => {}
        }
        i += 1;
    }
    let args = words
        .get(i + 1..)
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    Some(CargoRun {
        package: package?,
        bin,
        args,
    })
}

/// The binary `cargo run -p package` picks: `default-run`, or the only binary.
fn default_binary(package: &str) -> Option<String> {
    let manifest =
        std::fs::read_to_string(root().join(package).join("Cargo.toml")).ok()?;
    if let Some(line) = manifest.lines().find(|l| l.starts_with("default-run")) {
        return Some(line.split('"').nth(1)?.to_owned());
    }
    let bins: Vec<String> = std::fs::read_dir(root().join(package).join("src/bin"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".rs")
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let has_main = root().join(package).join("src/main.rs").exists();
    match (has_main, bins.len()) {
        (true, 0) => Some(package.to_owned()),
        (false, 1) => bins.into_iter().next(),
        _ => None,
    }
}

fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs/src")).expect("docs/src") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn every_cargo_run_command_names_a_package_and_binary_that_exist() {
    let manifest =
        std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let mut problems = Vec::new();
    let mut seen = 0;
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read");
        for (command, run) in cargo_runs(&text) {
            seen += 1;
            let where_ = format!("{}: `{command}`", file.display());
            if !manifest.contains(&format!("\"{}\"", run.package)) {
                problems
                    .push(format!("{where_}: no workspace member {}", run.package));
                continue;
            }
            match &run.bin {
                Some(bin) => {
                    let file =
                        root().join(&run.package).join(format!("src/bin/{bin}.rs"));
                    let main = bin == &run.package
                        && root().join(&run.package).join("src/main.rs").exists();
                    if !file.exists() && !main {
                        problems.push(format!(
                            "{where_}: {} has no binary {bin}",
                            run.package
                        ));
                    }
                }
                None if default_binary(&run.package).is_none() => {
                    problems.push(format!(
                        "{where_}: {} has several binaries and no default-run",
                        run.package
                    ))
                }
                None => {}
            }
        }
    }
    assert!(
        seen >= 10,
        "only {seen} commands found: is the parser broken?"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Starts one command and says what is wrong with how it ended, if anything.
fn try_command(command: &str, run: &CargoRun, bin: &str) -> Option<String> {
    let exe = bin_dir().join(bin);
    if !exe.exists() {
        eprintln!("skipped `{command}`: {} is not built", exe.display());
        return None;
    }
    let running = Lesson::new(&exe)
        .args(&run.args)
        .current_dir(root())
        .deadline(Duration::from_secs(10))
        .spawn();
    let started = Instant::now();
    let alive = |pid| lesson_test::process(pid).is_some_and(|p| p.state != 'Z');
    while started.elapsed() < Duration::from_secs(2) && alive(running.pid()) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped = alive(running.pid());
    if stopped {
        running.signal(Signal::SIGTERM);
    }
    let done = running.finish();
    let fine = match done.code() {
        // 1: a client without its server; 3: the lesson's own time limit, as documented.
        Some(0 | 1 | 3) => true,
        Some(143) => stopped,
        _ => false,
    };
    (!fine).then(|| format!("`{command}` ended badly\n{}", done.transcript()))
}

#[test]
fn every_cargo_run_command_starts_without_a_usage_error_or_a_panic() {
    let mut commands = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).expect("read");
        for (command, run) in cargo_runs(&text) {
            // A missing binary is reported by the test above.
            if let Some(bin) =
                run.bin.clone().or_else(|| default_binary(&run.package))
            {
                commands.push((command, run, bin));
            }
        }
    }
    commands.sort_by(|a, b| a.0.cmp(&b.0));
    commands.dedup_by(|a, b| a.0 == b.0);
    // Two seconds each, side by side: a few seconds in all.
    let problems: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = commands
            .iter()
            .map(|(command, run, bin)| {
                scope.spawn(move || try_command(command, run, bin))
            })
            .collect();
        // A failed harness check panics inside its thread: keep its message and go on.
        handles
            .into_iter()
            .zip(&commands)
            .filter_map(|(handle, (command, _, _))| match handle.join() {
                Ok(problem) => problem,
                Err(panic) => Some(format!(
                    "`{command}`: {}",
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("panicked")
                )),
            })
            .collect()
    });
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn shell_words_handles_quotes_and_refuses_what_needs_a_shell() {
    assert_eq!(
        shell_words("a -c 'sleep 30 & wait' \"x y\" z\\ w").unwrap(),
        ["a", "-c", "sleep 30 & wait", "x y", "z w"]
    );
    for refused in ["a | head", "a > f", "a 2>&1", "a; b", "echo $HOME", "a &"] {
        assert_eq!(shell_words(refused), None, "{refused}");
    }
}

#[test]
fn the_command_parser_finds_backquoted_and_console_commands() {
    let text = "Run `cargo run -p a --bin b -- --count 3` or `cargo build`.\n\
                ```console\n$ cargo run -p c # a comment\n$ ls\n```\n";
    let runs: Vec<CargoRun> =
        cargo_runs(text).into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        runs,
        [
            CargoRun {
                package: "a".into(),
                bin: Some("b".into()),
                args: vec!["--count".into(), "3".into()],
            },
            CargoRun {
                package: "c".into(),
                bin: None,
                args: vec![],
            },
        ]
    );
}
