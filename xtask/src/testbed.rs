//! `cargo xtask testbed build|up|down|env|status`: the local test cluster.
//!
//! `build` compiles the tools from the Go modules under `testbed/go/` into `target/tools/bin`
//! (or `$CILIUM_MIGRATE_TOOLS`), skipping families whose stamp matches. `up` builds (if needed),
//! starts a testbed and leaves it running; `env` prints the shell `export` lines to use it;
//! `status` says what runs; `down` stops every recorded pid and removes the state.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use testbed::tools::{BuildOptions, BuildReport};
use testbed::{Options, Testbed, Tools};

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Build kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, helm3
    /// and helm4 (cold: tens of minutes; warm: seconds).
    Build {
        /// Rebuild even when the stamps match.
        #[arg(long)]
        force: bool,
    },
    /// Start a testbed and leave it running.
    Up {
        /// Number of fake nodes (node1 is the control plane).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[command(flatten)]
        state: StateDir,
    },
    /// Stop every process of the testbed (by recorded pid) and remove its state.
    Down {
        #[command(flatten)]
        state: StateDir,
    },
    /// Print `export` lines for KUBECONFIG, the tools directory and PATH.
    Env {
        #[command(flatten)]
        state: StateDir,
    },
    /// Say which processes of the testbed run (exit 1 when any does not).
    Status {
        #[command(flatten)]
        state: StateDir,
    },
}

#[derive(clap::Args)]
struct StateDir {
    /// The testbed's state directory.
    #[arg(long, env = testbed::STATE_DIR_ENV, default_value_os_t = testbed::default_state_dir())]
    state_dir: PathBuf,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Build { force } => {
            build_tools(force)?;
            Ok(())
        }
        Command::Up { nodes, state } => up(nodes, state.state_dir),
        Command::Down { state } => down(state.state_dir),
        Command::Env { state } => env(state.state_dir),
        Command::Status { state } => status(state.state_dir),
    }
}

/// Builds the tools whose stamps are stale, reporting each family on stderr.
pub(crate) fn build_tools(force: bool) -> anyhow::Result<BuildReport> {
    let options = BuildOptions {
        force,
        ..BuildOptions::default()
    };
    eprintln!("testbed: tools in {}", options.out_dir.display());
    let started = Instant::now();
    let report = Tools::build(&options, &mut |line| eprintln!("testbed: {line}"))?;
    eprintln!("testbed: tools ready in {:.0?}", started.elapsed());
    Ok(report)
}

fn up(nodes: usize, state_dir: PathBuf) -> anyhow::Result<()> {
    anyhow::ensure!(nodes >= 1, "--nodes must be at least 1");
    let report = build_tools(false)?;
    let options = Options {
        nodes,
        state_dir,
        tools: report.tools,
        ..Options::default()
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new()?;
    let testbed = runtime.block_on(Testbed::up(&options))?;
    eprintln!(
        "testbed: up in {:.0?}: {} with {} nodes; state in {}",
        started.elapsed(),
        testbed.api_server(),
        testbed.nodes().len(),
        testbed.state_dir().display()
    );
    let dir = testbed.detach();
    eprintln!(
        "testbed: use it with `eval \"$(cargo xtask testbed env --state-dir {dir})\"`; stop it with `cargo xtask testbed down --state-dir {dir}`",
        dir = shell_quote(&dir.display().to_string())
    );
    Ok(())
}

fn down(state_dir: PathBuf) -> anyhow::Result<()> {
    let testbed = match Testbed::from_state(&state_dir) {
        Ok(testbed) => testbed,
        Err(testbed::Error::NoState(dir)) => {
            eprintln!("testbed: nothing to stop in {}", dir.display());
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let count = testbed.processes().len();
    testbed
        .down()
        .with_context(|| format!("stopping the testbed in {}", state_dir.display()))?;
    eprintln!(
        "testbed: stopped {count} processes, removed the state in {}",
        state_dir.display()
    );
    Ok(())
}

fn env(state_dir: PathBuf) -> anyhow::Result<()> {
    let testbed = Testbed::from_state(&state_dir)?;
    print!("{}", export_lines(&testbed));
    Ok(())
}

/// `export NAME='value'` lines for a shell, tools first on PATH.
pub(crate) fn export_lines(testbed: &Testbed) -> String {
    let mut lines = String::new();
    for (name, value) in testbed.env() {
        lines.push_str(&format!("export {name}={}\n", shell_quote(&value)));
    }
    let tools = testbed.tools();
    for (name, path) in [
        ("CILIUM_MIGRATE_KUBECTL", &tools.kubectl),
        ("CILIUM_MIGRATE_HELM3", &tools.helm3),
        ("CILIUM_MIGRATE_HELM4", &tools.helm4),
    ] {
        lines.push_str(&format!(
            "export {name}={}\n",
            shell_quote(&path.display().to_string())
        ));
    }
    // `helm` is Helm 4 and `kubectl` is 1.35 for anything run from this shell.
    lines.push_str(&format!(
        "export PATH={}:\"$PATH\"\n",
        shell_quote(&tools.dir.display().to_string())
    ));
    lines
}

fn status(state_dir: PathBuf) -> anyhow::Result<()> {
    let testbed = Testbed::from_state(&state_dir)?;
    let status = testbed.status();
    println!("state:      {}", status.state_dir.display());
    println!("api server: {}", status.api_server);
    println!("kubeconfig: {}", status.kubeconfig.display());
    println!("nodes:      {}", status.nodes.join(", "));
    for process in &status.processes {
        println!(
            "{:<24} pid {:<8} {:<8} log {}",
            process.process.name,
            process.process.pid,
            if process.alive { "running" } else { "GONE" },
            process.process.log.display()
        );
    }
    if !status.all_alive() {
        let gone: Vec<String> = status
            .processes
            .iter()
            .filter(|process| !process.alive)
            .map(|process| {
                format!(
                    "{}: last log lines:\n{}",
                    process.process.name,
                    process.process.log_tail(10)
                )
            })
            .collect();
        anyhow::bail!(
            "the testbed is degraded (run `cargo xtask testbed down` and `up` again):\n{}",
            gone.join("\n")
        );
    }
    Ok(())
}

/// Quotes a value for POSIX shells: single quotes, with embedded ones spelled `'\''`.
pub(crate) fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_spaces_and_quotes() {
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
