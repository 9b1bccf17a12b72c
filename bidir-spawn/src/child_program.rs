//! Where bidir-child is, and building it when `cargo run` did not (plumbing).

use crate::PROGRAM;
use lesson_kit::{Context, Failure, note};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The child program run when no PROGRAM is named: this package's other binary.
pub const CHILD: &str = "bidir-child";

/// bidir-child's path: next to this executable, where cargo builds both.
pub fn child_program() -> Result<PathBuf, Failure> {
    let me = std::env::current_exe().context("find this program (current_exe)")?;
    let child = me.with_file_name(CHILD);
    if let Some(cargo) = std::env::var_os("CARGO")
        && out_of_date(&child)
    {
        build_child(Path::new(&cargo), &me)?;
    }
    // Still missing (not started by cargo): exec reports it, with status 127.
    Ok(child)
}

/// Whether `child` is missing, or older than its source: edited since it was built,
/// and `cargo run -p bidir-spawn` rebuilds only bidir-spawn. Without the source at
/// hand (a copied binary), whatever is built is used.
fn out_of_date(child: &Path) -> bool {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/bidir-child.rs");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified());
    let Ok(built) = modified(child) else {
        return true; // not built at all
    };
    modified(&source).is_ok_and(|edited| edited > built)
}

/// `cargo run -p bidir-spawn` builds only bidir-spawn. Started by cargo (it says so
/// in `CARGO`), build bidir-child the same way, into the same directory.
fn build_child(cargo: &Path, me: &Path) -> Result<(), Failure> {
    let profile_dir = me.parent().unwrap_or(Path::new("."));
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(name) => name,
    };
    note!(
        "{PROGRAM}: building {CHILD} first \
         (cargo run builds only the binary it runs)"
    );
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "--bin", CHILD, "--profile", profile])
        .arg("--target-dir")
        .arg(profile_dir.parent().unwrap_or(Path::new("target")));
    if let Some(package) = std::env::var_os("CARGO_MANIFEST_DIR") {
        build
            .arg("--manifest-path")
            .arg(Path::new(&package).join("Cargo.toml"));
    }
    let status = build.status().context("run cargo build")?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure::new(format!("cargo build --bin {CHILD}"), status))
    }
}
