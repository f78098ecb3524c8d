//! `cargo xtask ci`: everything CI runs, in the order that fails fastest.
//!
//! Formatting and lints first (seconds), then the testbed's tools (a cold Go build is the long
//! pole), unit and integration tests, the bundled example, and last the end-to-end tests.

use anyhow::Context as _;
use std::time::Instant;
use xshell::{Shell, cmd};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    skip_lint: bool,
    /// Skip the end-to-end tests against the testbed.
    #[arg(long)]
    skip_e2e: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(project_root());
    let started = Instant::now();
    let skips = SkipLog::start(&sh)?;

    if !args.skip_lint {
        step("cargo fmt --check", || {
            cmd!(sh, "cargo fmt --all -- --check").run()?;
            Ok(())
        })?;
        step("cargo clippy", || {
            cmd!(sh, "cargo clippy --workspace --all-targets -- -D warnings").run()?;
            // The released build alone: in the workspace xtask turns `fault-injection` on, so
            // the code without it is linted only here.
            cmd!(
                sh,
                "cargo clippy -p cilium-migrate --all-targets -- -D warnings"
            )
            .run()?;
            Ok(())
        })?;
        step("cilium-migrate links no test-cluster code", || {
            let tree = cmd!(sh, "cargo tree -p cilium-migrate --prefix none").read()?;
            let test_code: Vec<&str> = tree
                .lines()
                .filter(|line| line.starts_with("testbed ") || line.starts_with("rcgen "))
                .collect();
            anyhow::ensure!(
                test_code.is_empty(),
                "cargo tree -p cilium-migrate holds test-cluster code: {test_code:?}"
            );
            Ok(())
        })?;
    }
    step("testbed tools (helm, kubectl, kube-apiserver, ...)", || {
        cmd!(sh, "cargo xtask testbed build").run()?;
        Ok(())
    })?;
    step("unit and integration tests", || {
        // The `tests` crate needs a cluster: `cargo xtask e2e` below runs it against the testbed.
        cmd!(sh, "cargo test --workspace --exclude tests").run()?;
        Ok(())
    })?;
    step("the bundled example (README's first command)", || {
        cmd!(
            sh,
            "cargo xtask plan --inventory examples/homelab --live-config examples/homelab/cilium-config.yaml"
        )
        .run()?;
        Ok(())
    })?;
    if !args.skip_e2e {
        step("end-to-end tests on the testbed", || {
            cmd!(sh, "cargo xtask e2e").run()?;
            Ok(())
        })?;
    }
    eprintln!("ci: all steps passed in {:.0?}", started.elapsed());
    skips.report();
    Ok(())
}

/// The tests that skipped for want of the released upstream artefacts (`upstream::for_test`):
/// under CI their absence fails the run at once; elsewhere the run ends with one line that says
/// how many tests were skipped and why.
struct SkipLog {
    path: std::path::PathBuf,
    upstream: Result<upstream::Upstream, upstream::Missing>,
}

impl SkipLog {
    fn start(sh: &Shell) -> anyhow::Result<SkipLog> {
        let upstream = upstream::Upstream::locate();
        match &upstream {
            Err(missing) if upstream::in_ci() => {
                anyhow::bail!("ci: {missing}. CI runs every test against the released artefacts")
            }
            Err(missing) => eprintln!("ci: {missing}: the tests that need them will be skipped"),
            Ok(found) => eprintln!("ci: upstream artefacts: {}", found.root().display()),
        }
        let path = project_root().join("target/upstream-skips.log");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
        }
        std::fs::write(&path, "").with_context(|| path.display().to_string())?;
        sh.set_var(upstream::SKIP_LOG_ENV, &path);
        Ok(SkipLog { path, upstream })
    }

    /// The last line of the run.
    fn report(&self) {
        let skips = upstream::read_skips(&self.path);
        match (&self.upstream, skips.len()) {
            (Ok(found), 0) => eprintln!(
                "ci: no test skipped (upstream artefacts at {})",
                found.root().display()
            ),
            (Ok(_), n) => eprintln!(
                "ci: {n} tests skipped although the upstream artefacts were found: see {}",
                self.path.display()
            ),
            (Err(missing), n) => eprintln!(
                "ci: {n} tests skipped because {missing} (list: {})",
                self.path.display()
            ),
        }
    }
}

fn step(name: &str, f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    eprintln!("ci: ── {name}");
    let started = Instant::now();
    f().with_context(|| format!("ci step failed: {name}"))?;
    eprintln!("ci: ── {name}: ok ({:.0?})", started.elapsed());
    Ok(())
}

/// The workspace root: xtask's manifest sits one level below it.
pub(crate) fn project_root() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().unwrap_or(dir).to_path_buf()
}
