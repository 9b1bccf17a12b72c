//! Which document program goes with which lesson, and the runs that compare them.

use crate::run::{Program, Run, Stream};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How a lesson is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One program against one binary.
    Single {
        original: &'static str,
        binary: &'static str,
    },
    /// pipes.py + pipes_test_child.py against bidir-spawn and its child, crosswise.
    Spawn,
    /// The FIFO writer and reader, every pairing, both start orders.
    Fifo,
}

/// A lesson that has an original.
#[derive(Debug, Clone, Copy)]
pub struct Lesson {
    pub name: &'static str,
    pub shape: Shape,
    /// The original's files, for `--list` and the check that they exist.
    pub originals: &'static [&'static str],
    /// Where the document's output goes: stdout, except for pipes.py, whose stdout
    /// is the pipe to its child and whose lines are all on stderr.
    pub stream: Stream,
    /// The default window, counted from each program's first line: long enough for
    /// the document's full cycle, and away from any line (a line at the edge would
    /// come or not from run to run).
    pub window: Duration,
}

// ANCHOR: lessons
/// Every lesson with an original, in teaching order.
pub const LESSONS: &[Lesson] = &[
    Lesson {
        name: "anon-pipe",
        shape: Shape::Single {
            original: "pipe_1.py",
            binary: "anon-pipe",
        },
        originals: &["pipe_1.py"],
        stream: Stream::Out,
        // Spam 0..4 at 0, 1, 3, 6, 10 s, Spam 0 again at 10.01, Spam 1 at 11: a
        // full cycle and the wrap, with a second to spare before Spam 2 at 13.
        window: Duration::from_secs(12),
    },
    Lesson {
        name: "fdopen-lines",
        shape: Shape::Single {
            original: "pipe_2.py",
            binary: "fdopen-lines",
        },
        originals: &["pipe_2.py"],
        stream: Stream::Out,
        window: Duration::from_secs(12),
    },
    Lesson {
        name: "pipe-thread",
        shape: Shape::Single {
            original: "pipe_thread.py",
            binary: "pipe-thread",
        },
        originals: &["pipe_thread.py"],
        stream: Stream::Out,
        window: Duration::from_secs(12),
    },
    Lesson {
        name: "bidir-spawn",
        shape: Shape::Spawn,
        originals: &["pipes.py", "pipes_test_child.py"],
        stream: Stream::Err,
        // About 12 s in all, then both end by themselves; a run that ends early
        // ends the wait early, so the window can be generous.
        window: Duration::from_secs(20),
    },
    Lesson {
        name: "named-fifo",
        shape: Shape::Fifo,
        originals: &["write_to_named_pipe.py", "read_from_named_pipe.py"],
        stream: Stream::Out,
        // The second program starts after FIFO_GAP; both end at once.
        window: Duration::from_secs(3),
    },
];
// ANCHOR_END: lessons

/// How long the second program of the FIFO pair starts after the first: long enough
/// that the first is surely waiting in `open` when the second arrives.
pub const FIFO_GAP: Duration = Duration::from_millis(500);

/// The Rust counterpart of pipes_test_child.py, a second binary of bidir-spawn.
const RUST_CHILD: &str = "bidir-child";

pub fn find(name: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|lesson| lesson.name == name)
}

impl Lesson {
    /// The Cargo packages whose binaries the comparison runs.
    pub fn package(&self) -> &'static str {
        self.name
    }

    /// The binaries the comparison runs, to check they exist.
    pub fn binaries(&self) -> Vec<&'static str> {
        match self.shape {
            Shape::Single { binary, .. } => vec![binary],
            Shape::Spawn => vec!["bidir-spawn", RUST_CHILD],
            Shape::Fifo => vec!["fifo-writer", "fifo-reader"],
        }
    }
}

/// Where everything is.
pub struct Places<'a> {
    pub originals: &'a Path,
    pub binaries: &'a Path,
    pub python: &'a Path,
    /// A fresh directory of compare's own, removed when compare ends.
    pub scratch: &'a Path,
}

/// One comparison: the original's run against one of the lesson's.
#[derive(Debug, Clone)]
pub struct Pairing {
    pub lesson: &'static str,
    pub stream: Stream,
    pub reference: usize,
    pub tested: usize,
}

/// The runs for one lesson (appended to `runs`) and the pairings that compare them.
pub fn plan(
    lesson: &Lesson,
    places: &Places,
    window: Option<Duration>,
    clear_unbuffered: bool,
    runs: &mut Vec<Run>,
) -> std::io::Result<Vec<Pairing>> {
    let window = window.unwrap_or(lesson.window);
    let run = |label: String, programs: Vec<Program>| Run {
        label,
        programs,
        window,
        anchor: lesson.stream,
        clear_unbuffered,
    };
    let original = |file: &str| places.originals.join(file).into_os_string();
    let python = OsString::from(places.python);
    let binary = |name: &str| places.binaries.join(name).into_os_string();
    let mut made: usize = 0; // makes the folder names unique
    let mut scratch = |name: &str| -> std::io::Result<PathBuf> {
        made += 1;
        let dir = places
            .scratch
            .join(format!("{}-{made}-{name}", lesson.name));
        std::fs::create_dir(&dir)?;
        Ok(dir)
    };
    let first = runs.len();
    let mut pairings = Vec::new();
    let mut pair = |reference: usize, tested: usize| {
        pairings.push(Pairing {
            lesson: lesson.name,
            stream: lesson.stream,
            reference: first + reference,
            tested: first + tested,
        });
    };
    match lesson.shape {
        Shape::Single {
            original: file,
            binary: name,
        } => {
            // Each in an empty directory of its own: whatever it leaves is removed.
            let cwd = scratch("original")?;
            runs.push(run(
                format!("python3 {file}"),
                vec![one(vec![python.clone(), original(file)], cwd)],
            ));
            let cwd = scratch("lesson")?;
            runs.push(run(name.to_owned(), vec![one(vec![binary(name)], cwd)]));
            pair(0, 1);
        }
        Shape::Spawn => {
            // pipes.py runs `python3 pipes_test_child.py spam` from its working
            // directory, so every run starts in the originals' folder (nothing is
            // written there).
            let cwd = places.originals.to_path_buf();
            let at = |argv: Vec<OsString>| one(argv, cwd.clone());
            runs.push(run(
                "python3 pipes.py + pipes_test_child.py".to_owned(),
                vec![at(vec![python.clone(), original("pipes.py")])],
            ));
            runs.push(run(
                "bidir-spawn + its Rust child".to_owned(),
                vec![at(vec![binary("bidir-spawn")])],
            ));
            runs.push(run(
                "bidir-spawn + python3 pipes_test_child.py".to_owned(),
                vec![at(vec![
                    binary("bidir-spawn"),
                    "--".into(),
                    python.clone(),
                    "pipes_test_child.py".into(),
                    "spam".into(),
                ])],
            ));
            // The Python parent with the Rust child: pipes.py execs `python3` found
            // on PATH; a directory in front of PATH holds a `python3` that execs
            // the Rust child instead (same pid, so the child's line names the right
            // parent).
            let shim = scratch("python3-stands-for-the-rust-child")?;
            write_child_shim(&shim, places)?;
            let mut parent = at(vec![python.clone(), original("pipes.py")]);
            parent.path_prefix = Some(shim);
            runs.push(run(
                "python3 pipes.py + the Rust child".to_owned(),
                vec![parent],
            ));
            pair(0, 1);
            pair(0, 2);
            pair(0, 3);
        }
        Shape::Fifo => {
            let writers = [
                (
                    "py",
                    vec![python.clone(), original("write_to_named_pipe.py")],
                ),
                ("rs", vec![binary("fifo-writer")]),
            ];
            let readers = [
                (
                    "py",
                    vec![python.clone(), original("read_from_named_pipe.py")],
                ),
                ("rs", vec![binary("fifo-reader")]),
            ];
            // (writer, reader): the original pair first, then the three others.
            let pairs = [(0, 0), (1, 1), (0, 1), (1, 0)];
            for writer_first in [true, false] {
                let reference = runs.len() - first;
                for (w, r) in pairs {
                    let (wname, wargv) = &writers[w];
                    let (rname, rargv) = &readers[r];
                    let cwd = scratch(&format!("fifo-{wname}-{rname}"))?;
                    let mut writer = one(wargv.clone(), cwd.clone());
                    writer.role = "writer";
                    let mut reader = one(rargv.clone(), cwd);
                    reader.role = "reader";
                    let (label, programs) = if writer_first {
                        reader.delay = FIFO_GAP;
                        (
                            format!("{wname} writer, then {rname} reader"),
                            vec![writer, reader],
                        )
                    } else {
                        writer.delay = FIFO_GAP;
                        (
                            format!("{rname} reader, then {wname} writer"),
                            vec![reader, writer],
                        )
                    };
                    let index = runs.len() - first;
                    runs.push(run(label, programs));
                    if index != reference {
                        pair(reference, index);
                    }
                }
            }
        }
    }
    Ok(pairings)
}

fn one(argv: Vec<OsString>, cwd: PathBuf) -> Program {
    Program {
        role: "",
        argv,
        cwd,
        path_prefix: None,
        delay: Duration::ZERO,
    }
}

// ANCHOR: shim
/// Writes `python3` into `dir`: a shell script that pipes.py's `execvp("python3",
/// ["python3", "pipes_test_child.py", "spam"])` finds first on PATH. It drops the
/// script name and `exec`s the Rust child with the rest (`spam`), so the process
/// pipes.py forked becomes the Rust child: same pid, same pipes, same parent.
fn write_child_shim(dir: &Path, places: &Places) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let program = places.binaries.join(RUST_CHILD);
    let quoted = shell_quote(&program.to_string_lossy());
    let script = format!(
        "#!/bin/sh\n\
         # Written by compare: stands in for `python3 pipes_test_child.py ARG`.\n\
         shift\n\
         exec {quoted} \"$@\"\n"
    );
    let path = dir.join("python3");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
}
// ANCHOR_END: shim

/// `'text'` for a POSIX shell, with every `'` written as `'\''`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn plan_pairs_each_run_with_its_original_after_the_runs_already_planned() {
        let scratch = std::env::temp_dir()
            .join(format!("compare-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).expect("scratch");
        let places = Places {
            originals: Path::new("/originals"),
            binaries: Path::new("/binaries"),
            python: Path::new("/usr/bin/python3"),
            scratch: &scratch,
        };
        let mut runs = Vec::new();
        let lesson = |name| find(name).expect("a lesson");
        let single = plan(lesson("anon-pipe"), &places, None, false, &mut runs);
        let three = Some(Duration::from_secs(3));
        let spawn = plan(lesson("bidir-spawn"), &places, three, true, &mut runs);
        let fifo = plan(lesson("named-fifo"), &places, None, false, &mut runs);
        let pairs =
            |planned: std::io::Result<Vec<Pairing>>| -> Vec<(usize, usize)> {
                let planned = planned.expect("planned");
                planned.iter().map(|p| (p.reference, p.tested)).collect()
            };
        // Indices count from the runs planned before: 2 runs, then 4, then 8.
        assert_eq!(pairs(single), [(0, 1)]);
        assert_eq!(pairs(spawn), [(2, 3), (2, 4), (2, 5)]);
        assert_eq!(
            pairs(fifo),
            [(6, 7), (6, 8), (6, 9), (10, 11), (10, 12), (10, 13)]
        );
        assert_eq!(runs.len(), 14);
        let labels: Vec<&str> = runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels[..2], ["python3 pipe_1.py", "anon-pipe"]);
        assert_eq!(labels[6], "py writer, then py reader");
        assert_eq!(labels[10], "py reader, then py writer");
        assert_eq!(labels[13], "py reader, then rs writer");
        assert_eq!(runs[0].window, Duration::from_secs(12), "the lesson's own");
        assert_eq!(runs[2].window, Duration::from_secs(3), "the one asked for");
        assert!(runs[2].clear_unbuffered && !runs[0].clear_unbuffered);
        // Every run in a folder of its own, numbered per lesson.
        assert_eq!(
            runs[0].programs[0].cwd,
            scratch.join("anon-pipe-1-original")
        );
        assert_eq!(runs[1].programs[0].cwd, scratch.join("anon-pipe-2-lesson"));
        assert_eq!(
            runs[1].programs[0].argv,
            [OsString::from("/binaries/anon-pipe")]
        );
        assert_eq!(
            runs[6].programs[0].cwd,
            scratch.join("named-fifo-1-fifo-py-py")
        );
        assert_eq!(
            runs[13].programs[0].cwd,
            scratch.join("named-fifo-8-fifo-rs-py")
        );
        // The second program of a FIFO pair starts FIFO_GAP later.
        let delays = |run: &Run| -> Vec<(&str, Duration)> {
            run.programs.iter().map(|p| (p.role, p.delay)).collect()
        };
        assert_eq!(
            delays(&runs[6]),
            [("writer", Duration::ZERO), ("reader", FIFO_GAP)]
        );
        assert_eq!(
            delays(&runs[10]),
            [("reader", Duration::ZERO), ("writer", FIFO_GAP)]
        );
        // The Python parent finds the Rust child's stand-in first on PATH.
        let shim = scratch.join("bidir-spawn-1-python3-stands-for-the-rust-child");
        assert_eq!(runs[5].programs[0].path_prefix.as_ref(), Some(&shim));
        let script = std::fs::read_to_string(shim.join("python3")).expect("shim");
        assert!(script.ends_with("shift\nexec '/binaries/bidir-child' \"$@\"\n"));
        std::fs::remove_dir_all(&scratch).expect("remove scratch");
    }

    #[test]
    fn every_lesson_is_found_by_name() {
        for lesson in LESSONS {
            assert_eq!(find(lesson.name).map(|l| l.name), Some(lesson.name));
        }
        assert!(find("signals").is_none());
    }
}
