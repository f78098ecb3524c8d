//! Wall time, CPU time and peak memory of one child process.
//!
//! The bench runs `cargo xtask bench measure [--stdout FILE] -- PROGRAM ARGS...` as a fresh
//! intermediate process: it starts PROGRAM, waits for it, then asks the kernel for its children's
//! resource usage (`getrusage(RUSAGE_CHILDREN)`, through `nix`'s safe wrapper: this workspace
//! forbids `unsafe`). Because the intermediate has only that one child, the numbers are exactly
//! PROGRAM's: its peak resident set (`ru_maxrss`, the largest of it and of the children it waited
//! for) and its user and system CPU time (its own plus that of the children it waited for, e.g.
//! the `helm` processes a migration runs). The intermediate prints one JSON [`Measurement`].

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};
use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// `cargo xtask bench measure`: the intermediate process.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Write the program's standard output to this file (default: discard it).
    #[arg(long, value_name = "FILE")]
    stdout: Option<PathBuf>,
    /// Write the program's standard error to this file (default: inherit).
    #[arg(long, value_name = "FILE")]
    stderr: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true, value_name = "PROGRAM")]
    command: Vec<OsString>,
}

/// What one measured run cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct Measurement {
    /// Whether the program exited with status 0.
    pub(crate) success: bool,
    /// Its exit code (`None` when a signal ended it).
    pub(crate) exit_code: Option<i32>,
    /// From start to exit.
    pub(crate) wall_seconds: f64,
    /// User CPU time.
    pub(crate) user_seconds: f64,
    /// System CPU time.
    pub(crate) system_seconds: f64,
    /// Peak resident set size, KiB.
    pub(crate) max_rss_kib: u64,
}

impl Measurement {
    /// User plus system CPU time.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }

    /// Peak resident set size in MiB.
    pub(crate) fn max_rss_mib(&self) -> f64 {
        self.max_rss_kib as f64 / 1024.0
    }
}

/// Runs in the intermediate process: starts the program, waits, prints the measurement.
pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let Some((program, rest)) = args.command.split_first() else {
        bail!("give the program to measure after `--`");
    };
    let mut command = Command::new(program);
    command.args(rest).stdin(Stdio::null());
    command.stdout(match &args.stdout {
        Some(path) => Stdio::from(create(path)?),
        None => Stdio::null(),
    });
    if let Some(path) = &args.stderr {
        command.stderr(Stdio::from(create(path)?));
    }
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let wall = started.elapsed();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage(RUSAGE_CHILDREN)")?;
    let seconds =
        |time: nix::sys::time::TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1_000_000.0;
    let measurement = Measurement {
        success: status.success(),
        exit_code: status.code(),
        wall_seconds: wall.as_secs_f64(),
        user_seconds: seconds(usage.user_time()),
        system_seconds: seconds(usage.system_time()),
        // Linux reports ru_maxrss in KiB.
        max_rss_kib: u64::try_from(usage.max_rss()).unwrap_or(0),
    };
    println!("{}", serde_json::to_string(&measurement)?);
    Ok(())
}

fn create(path: &Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// Runs `program args` under a fresh intermediate (this binary's `bench measure`) and returns
/// what it cost. Standard output goes to `stdout` (or nowhere), standard error to `stderr` (or
/// this process's). A program that fails is an error naming it and its log.
pub(crate) fn measure(
    program: &Path,
    args: &[OsString],
    stdout: Option<&Path>,
    stderr: Option<&Path>,
) -> anyhow::Result<Measurement> {
    let me = std::env::current_exe().context("finding the xtask binary")?;
    let mut command = Command::new(&me);
    command.args(["bench", "measure"]);
    if let Some(path) = stdout {
        command.arg("--stdout").arg(path);
    }
    if let Some(path) = stderr {
        command.arg("--stderr").arg(path);
    }
    command.arg("--").arg(program).args(args);
    // A failing child's log is quoted: its error, not a backtrace.
    command
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    let output = command
        .output()
        .with_context(|| format!("starting {} bench measure", me.display()))?;
    if !output.status.success() {
        bail!(
            "measuring {} failed ({}): {}",
            program.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let measurement: Measurement = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading the measurement of {}: {}",
            program.display(),
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    if !measurement.success {
        let log = stderr
            .map(|path| {
                format!(
                    "; its standard error is in {}:\n{}",
                    path.display(),
                    tail(path, 30)
                )
            })
            .unwrap_or_default();
        bail!(
            "{} {} failed (exit code {:?}){log}",
            program.display(),
            args.iter()
                .map(|arg| arg.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            measurement.exit_code
        );
    }
    Ok(measurement)
}

/// The last `lines` lines of a text file (empty when unreadable).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_round_trips_as_json() {
        let measurement = Measurement {
            success: true,
            exit_code: Some(0),
            wall_seconds: 1.5,
            user_seconds: 0.25,
            system_seconds: 0.5,
            max_rss_kib: 2048,
        };
        let text = serde_json::to_string(&measurement).unwrap_or_default();
        let back: Measurement = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, measurement);
        assert!((back.cpu_seconds() - 0.75).abs() < 1e-9);
        assert!((back.max_rss_mib() - 2.0).abs() < 1e-9);
    }
}
