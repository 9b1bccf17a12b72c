//! The book cannot drift from the code: every `{{#include}}` must name a file that exists
//! and, for code, an anchor that exists in it; every lesson must have a chapter.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `members` of the workspace's root `Cargo.toml`.
fn workspace_members(manifest: &str) -> Vec<String> {
    let start = manifest.find("members").expect("a members list");
    let open = start + manifest[start..].find('[').expect("members = [");
    let close = open + manifest[open..].find(']').expect("members = [...]");
    manifest[open + 1..close]
        .split(',')
        .map(|item| item.trim().trim_matches('"').to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// Every include directive in a chapter: (path, selector after `:`, if any).
fn includes(chapter: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = chapter;
    while let Some(start) = rest.find("{{#") {
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let directive = after[..end].trim();
        rest = &after[end + 2..];
        let Some(target) = directive
            .strip_prefix("include ")
            .or_else(|| directive.strip_prefix("rustdoc_include "))
        else {
            continue;
        };
        let target = target.trim();
        match target.split_once(':') {
            Some((path, selector)) => {
                found.push((path.to_owned(), Some(selector.to_owned())))
            }
            None => found.push((target.to_owned(), None)),
        }
    }
    found
}

/// What is wrong with one chapter's includes; empty when all is well.
fn include_problems(chapter_path: &Path, chapter: &str) -> Vec<String> {
    let dir = chapter_path.parent().expect("a chapter is in a folder");
    let mut problems = Vec::new();
    for (path, selector) in includes(chapter) {
        let file = dir.join(&path);
        let Ok(text) = fs::read_to_string(&file) else {
            problems.push(format!(
                "{}: includes {path}, which does not exist",
                chapter_path.display()
            ));
            continue;
        };
        match selector {
            Some(anchor)
                if anchor.chars().next().is_some_and(|c| c.is_ascii_digit()) =>
            {
                problems.push(format!(
                    "{}: includes {path}:{anchor} by line numbers; use a named anchor",
                    chapter_path.display()
                ));
            }
            Some(anchor) => {
                let opens = text.contains(&format!("ANCHOR: {anchor}\n"));
                let closes = text.contains(&format!("ANCHOR_END: {anchor}\n"));
                if !(opens && closes) {
                    problems.push(format!(
                        "{}: anchor {anchor:?} is not in {path} (needs ANCHOR: and ANCHOR_END:)",
                        chapter_path.display()
                    ));
                }
            }
            None if path.ends_with(".rs") => problems.push(format!(
                "{}: includes the whole of {path}; include code by anchor",
                chapter_path.display()
            )),
            None => {} // whole transcripts are fine
        }
    }
    problems
}

fn chapters(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("docs/src") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(chapters(&path));
        } else if path.extension().is_some_and(|ext| ext == "md") {
            found.push(path);
        }
    }
    found
}

#[test]
fn every_include_names_an_existing_file_and_anchor() {
    let src = root().join("docs/src");
    let mut problems = Vec::new();
    let all = chapters(&src);
    assert!(all.len() >= 3, "docs/src has chapters");
    for chapter in all {
        let text = fs::read_to_string(&chapter).expect("read chapter");
        problems.extend(include_problems(&chapter, &text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_lesson_has_a_chapter_in_the_summary() {
    let manifest =
        fs::read_to_string(root().join("Cargo.toml")).expect("root Cargo.toml");
    let summary =
        fs::read_to_string(root().join("docs/src/SUMMARY.md")).expect("SUMMARY.md");
    let lessons: Vec<String> = workspace_members(&manifest)
        .into_iter()
        .filter(|member| member != "lesson-kit" && member != "lesson-test")
        .collect();
    assert!(lessons.contains(&"anon-pipe".to_owned()), "{lessons:?}");
    for lesson in lessons {
        let chapter = format!("{lesson}.md");
        assert!(
            root().join("docs/src").join(&chapter).is_file(),
            "lesson {lesson} has no chapter docs/src/{chapter}"
        );
        assert!(
            summary.contains(&format!("]({chapter})")),
            "SUMMARY.md does not link to {chapter}"
        );
    }
}

// The checker itself must be able to fail: these feed it broken chapters.
#[test]
fn checker_reports_missing_files_anchors_and_line_ranges() {
    let here = root().join("docs/src/chapter.md");
    let broken = "\
{{#include ../../anon-pipe/src/main.rs:no_such_anchor}}
{{#include ../../anon-pipe/src/missing.rs:main}}
{{#rustdoc_include ../../anon-pipe/src/main.rs:10:20}}
{{#include ../../anon-pipe/src/main.rs}}
";
    let problems = include_problems(&here, broken);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0].contains("no_such_anchor"));
    assert!(problems[1].contains("does not exist"));
    assert!(problems[2].contains("line numbers"));
    assert!(problems[3].contains("by anchor"));
    let fine = "{{#include ../../anon-pipe/src/main.rs:pipe}}";
    assert_eq!(include_problems(&here, fine), Vec::<String>::new());
}

#[test]
fn members_are_read_from_the_manifest() {
    let manifest = "[workspace]\nmembers = [\"a\", \"b-c\",\n  \"d\"]\n";
    assert_eq!(workspace_members(manifest), ["a", "b-c", "d"]);
}
