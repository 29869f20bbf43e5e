//! The embedded folders (`include_dir!` in src/assets.rs and src/help.rs) are read when the
//! crate compiles, and rustc only notices changes to files that already existed: rebuild when
//! a file is added to or removed from them too.
//!
//! The build id (`novadock --version`): the git commit and the target, so two checkouts of
//! one commit build the "same" novadock and the controller's copy is not sent again
//! (steps/novadock_binary.rs). A tree with uncommitted changes, or no git, gets the build's
//! time as well: such builds never count as the same.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    for dir in [
        "docs",
        "playbooks",
        "templates",
        "src",
        "driver",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={dir}");
    }
    for p in ["HEAD", "index"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let build = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
            Some(s) if s.is_empty() => commit,
            _ => format!("{commit}-dirty.{nanos}"),
        },
        None => format!("nogit.{nanos}"),
    };
    println!("cargo:rustc-env=NOVADOCK_BUILD={build}");
    println!(
        "cargo:rustc-env=NOVADOCK_TARGET={}",
        std::env::var("TARGET").unwrap_or_default()
    );
}
