//! An mdBook preprocessor that strips the common indentation of every fenced code block.
//!
//! A chapter includes code by anchor (`{{#include ../../anon-pipe/src/main.rs:close}}`),
//! and an anchor inside a function brings the function's indentation with it: the listing
//! starts four or eight columns in and wastes the page's narrow code column. mdBook 0.5
//! copies anchored lines as they are, so this runs after its `links` preprocessor and
//! removes, per code block, the indentation all its non-blank lines share.
//!
//! book.toml:
//!     [preprocessor.dedent]
//!     after = ["links"]

use mdbook_preprocessor::book::{Book, BookItem};
use mdbook_preprocessor::errors::Result;
use mdbook_preprocessor::{Preprocessor, PreprocessorContext};
use std::io::{self, Write};
use std::process::ExitCode;

struct Dedent;

impl Preprocessor for Dedent {
    fn name(&self) -> &str {
        "dedent"
    }

    fn run(&self, _ctx: &PreprocessorContext, mut book: Book) -> Result<Book> {
        book.for_each_mut(|item| {
            if let BookItem::Chapter(chapter) = item {
                chapter.content = dedent_code_blocks(&chapter.content);
            }
        });
        Ok(book)
    }
}

/// Strips, inside each fenced code block (``` or ~~~), the leading whitespace that all of
/// its non-blank lines share. Text outside code blocks is left as it is.
fn dedent_code_blocks(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut block: Option<(String, Vec<&str>)> = None; // (fence, lines inside)
    for line in markdown.split_inclusive('\n') {
        let trimmed = line.trim_start();
        match &mut block {
            None => {
                if let Some(fence) = fence_of(trimmed) {
                    block = Some((fence, Vec::new()));
                }
                out.push_str(line);
            }
            Some((fence, lines)) => {
                if trimmed.trim_end() == fence.as_str() {
                    let indent = lines
                        .iter()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| l.len() - l.trim_start_matches([' ', '\t']).len())
                        .min()
                        .unwrap_or(0);
                    for l in lines.iter() {
                        out.push_str(if l.trim().is_empty() {
                            l.trim_start_matches([' ', '\t'])
                        } else {
                            &l[indent..]
                        });
                    }
                    out.push_str(line);
                    block = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    if let Some((_, lines)) = block {
        lines.iter().for_each(|l| out.push_str(l)); // unclosed: leave it alone
    }
    out
}

/// The fence that opens a code block (three or more backticks or tildes), if `line` is one.
fn fence_of(line: &str) -> Option<String> {
    let mark = line.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let fence: String = line.chars().take_while(|c| *c == mark).collect();
    (fence.len() >= 3).then_some(fence)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        // `mdbook` asks first whether a renderer is supported: every one is.
        (Some("supports"), Some(_)) => return ExitCode::SUCCESS,
        (Some("--version"), None) => {
            // Like every program here: a closed or full stdout is not a panic.
            let _ = writeln!(
                io::stdout(),
                "mdbook-dedent {}",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        (None, None) => {}
        _ => {
            let _ = writeln!(
                io::stderr(),
                "usage: mdbook-dedent [supports RENDERER | --version]"
            );
            return ExitCode::from(2);
        }
    }
    let result =
        mdbook_preprocessor::parse_input(io::stdin()).and_then(|(ctx, book)| {
            let book = Dedent.run(&ctx, book)?;
            serde_json::to_writer(io::stdout(), &book)?;
            Ok(())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = writeln!(io::stderr(), "mdbook-dedent: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_indentation_a_code_block_shares() {
        let md = "Text\n    kept\n```rust\n        let a = 1;\n\n            b();\n    \
                  ```\nafter\n";
        assert_eq!(
            dedent_code_blocks(md),
            "Text\n    kept\n```rust\nlet a = 1;\n\n    b();\n    ```\nafter\n"
        );
    }

    #[test]
    fn leaves_unindented_blocks_and_long_fences_alone() {
        let md = "````console\n$ ls\n  x\n````\n~~~\n a\n~~~\n";
        assert_eq!(
            dedent_code_blocks(md),
            "````console\n$ ls\n  x\n````\n~~~\na\n~~~\n"
        );
    }

    #[test]
    fn an_unclosed_block_is_kept_as_written() {
        assert_eq!(dedent_code_blocks("```\n  x\n"), "```\n  x\n");
    }
}
