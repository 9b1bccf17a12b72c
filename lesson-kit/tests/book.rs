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

/// Every relative link target in a chapter (`[text](target)`), without its `#fragment`:
/// web links and links within the page are not ours to check.
fn links(chapter: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = chapter;
    while let Some(start) = rest.find("](") {
        let after = &rest[start + 2..];
        let Some(end) = after.find(')') else { break };
        let target = after[..end].trim();
        rest = &after[end..];
        if target.is_empty()
            || target.starts_with('#')
            || target.contains("://")
            || target.starts_with("mailto:")
            || target.contains(' ')
        {
            continue;
        }
        match target.split_once('#') {
            Some((path, fragment)) => {
                found.push((path.to_owned(), Some(fragment.to_owned())))
            }
            None => found.push((target.to_owned(), None)),
        }
    }
    found
}

/// mdBook's id for a heading: lower case, spaces to `-`, other punctuation dropped.
fn heading_id(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => {
                Some(c.to_lowercase().next().unwrap_or(c))
            }
            _ => None,
        })
        .collect()
}

/// What is wrong with one chapter's links: a file that does not exist, or a `#fragment`
/// that names no heading of the chapter it points to.
fn link_problems(chapter_path: &Path, chapter: &str) -> Vec<String> {
    let dir = chapter_path.parent().expect("a chapter is in a folder");
    let mut problems = Vec::new();
    for (path, fragment) in links(chapter) {
        let file = dir.join(&path);
        let Ok(text) = fs::read(&file) else {
            problems.push(format!(
                "{}: links to {path}, which does not exist",
                chapter_path.display()
            ));
            continue;
        };
        if let Some(fragment) = fragment.filter(|_| path.ends_with(".md")) {
            let text = String::from_utf8_lossy(&text);
            let found = text
                .lines()
                .filter_map(|line| line.trim_start_matches('#').strip_prefix(' '))
                .any(|heading| heading_id(heading) == fragment);
            if !found {
                problems.push(format!(
                    "{}: links to {path}#{fragment}, a heading {path} does not have",
                    chapter_path.display()
                ));
            }
        }
    }
    problems
}

/// The widest line a reader may see in a code listing: the page's code column holds
/// about 86 characters before it scrolls.
const CODE_COLUMN: usize = 86;

/// A chapter as mdBook shows it: includes expanded (anchored lines only), then each code
/// block's shared indentation stripped (our `mdbook-dedent` preprocessor does that).
fn expand(chapter_path: &Path, chapter: &str) -> String {
    let dir = chapter_path.parent().expect("a chapter is in a folder");
    let mut out = String::new();
    let mut rest = chapter;
    while let Some(start) = rest.find("{{#") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else { break };
        let directive = after[..end].trim();
        rest = &after[end + 2..];
        let target = directive.split_once(' ').map_or("", |(_, t)| t.trim());
        let (path, anchor) = match target.split_once(':') {
            Some((path, anchor)) => (path, Some(anchor)),
            None => (target, None),
        };
        let text = fs::read_to_string(dir.join(path)).unwrap_or_default();
        match anchor {
            None => out.push_str(text.trim_end_matches('\n')),
            Some(anchor) => {
                let lines: Vec<&str> = text
                    .lines()
                    .skip_while(|l| !l.contains(&format!("ANCHOR: {anchor}")))
                    .skip(1)
                    .take_while(|l| !l.contains(&format!("ANCHOR_END: {anchor}")))
                    .filter(|l| {
                        !l.contains("ANCHOR: ") && !l.contains("ANCHOR_END: ")
                    })
                    .collect();
                out.push_str(&lines.join("\n"));
            }
        }
    }
    out.push_str(rest);
    out
}

/// The lines of every fenced code block, each with its shared indentation removed.
fn code_lines(markdown: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().starts_with("```")
            || line.trim_start().starts_with("~~~");
        match (&mut block, fence) {
            (None, true) => block = Some(Vec::new()),
            (None, false) => {}
            (Some(inside), true) => {
                let indent = inside
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.len() - l.trim_start().len())
                    .min()
                    .unwrap_or(0);
                lines.extend(
                    inside
                        .iter()
                        .map(|l| l.get(indent..).unwrap_or("").to_owned()),
                );
                block = None;
            }
            (Some(inside), false) => inside.push(line),
        }
    }
    lines
}

/// Code lines wider than the page's code column.
fn width_problems(chapter_path: &Path, chapter: &str) -> Vec<String> {
    code_lines(&expand(chapter_path, chapter))
        .into_iter()
        .filter(|line| line.chars().count() > CODE_COLUMN)
        .map(|line| {
            format!(
                "{}: a listing line of {} characters (the column holds {CODE_COLUMN}): {line}",
                chapter_path.display(),
                line.chars().count()
            )
        })
        .collect()
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
fn every_link_names_an_existing_chapter_file_and_heading() {
    let mut problems = Vec::new();
    for chapter in chapters(&root().join("docs/src")) {
        let text = fs::read_to_string(&chapter).expect("read chapter");
        problems.extend(link_problems(&chapter, &text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_listing_line_fits_the_pages_code_column() {
    let mut problems = Vec::new();
    for chapter in chapters(&root().join("docs/src")) {
        let text = fs::read_to_string(&chapter).expect("read chapter");
        problems.extend(width_problems(&chapter, &text));
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
fn checker_reports_broken_links_and_fragments() {
    let here = root().join("docs/src/chapter.md");
    let broken = "See [a](no-such-chapter.md), [b](anon-pipe.md#no-such-heading), \
                  [c](https://example.org/x.md), [d](#local) and [e](anon-pipe.md).";
    let problems = link_problems(&here, broken);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("no-such-chapter.md, which does not exist"));
    assert!(problems[1].contains("#no-such-heading"));
    assert_eq!(
        heading_id("Try it: the flush (deadlock)"),
        "try-it-the-flush-deadlock"
    );
}

#[test]
fn checker_reports_wide_listing_lines_after_stripping_indentation() {
    let here = root().join("docs/src/chapter.md");
    let wide = format!(
        "```rust\n    {}\n        short\n```\n",
        "x".repeat(CODE_COLUMN)
    );
    assert_eq!(
        width_problems(&here, &wide),
        Vec::<String>::new(),
        "dedented fits"
    );
    let too_wide = format!(
        "```rust\n{}\n```\nprose {}\n",
        "y".repeat(87),
        "z".repeat(200)
    );
    let problems = width_problems(&here, &too_wide);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("87 characters"));
}

#[test]
fn members_are_read_from_the_manifest() {
    let manifest = "[workspace]\nmembers = [\"a\", \"b-c\",\n  \"d\"]\n";
    assert_eq!(workspace_members(manifest), ["a", "b-c", "d"]);
}
