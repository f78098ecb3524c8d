//! Stamps the commit into `--version`: `git rev-parse --short HEAD`, or `unknown` outside a git
//! checkout (a source archive) or without git.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CILIUM_MIGRATE_COMMIT={commit}");
    // Rebuild when HEAD moves (a commit, a checkout); the paths may not exist outside git.
    let git_dir = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| std::path::PathBuf::from(s.trim()));
    if let Some(dir) = git_dir {
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        println!("cargo:rerun-if-changed={}", dir.join("refs").display());
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
