//! `cilium-migrate`: hand a Kubespray-installed Cilium over to Helm.
//!
//! The operator's command-line tool. Each command lives in its own module with its own `Args`;
//! [`run`] only dispatches. It is a library as well so that `cargo xtask` runs the very same
//! commands (`cargo xtask plan` = `cilium-migrate plan`) without a copy of them.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod backup;
mod cluster;
pub mod gateway_api;
pub mod inventory;
pub mod kube_proxy_replacement;
pub mod migrate;
pub mod nodes;
pub mod offline;
pub mod output;
pub mod plan;
pub mod rollback;
pub mod ui;
pub mod upgrade;
pub mod values;
pub mod verify;

use clap::{CommandFactory as _, Parser, Subcommand};

/// The version and the commit it was built from (`build.rs`), e.g. `0.0.0 (3f2a1bc)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CILIUM_MIGRATE_COMMIT"),
    ")"
);

/// The `cilium-migrate` command line.
#[derive(Parser)]
#[command(
    name = "cilium-migrate",
    about = "Hand a Kubespray-installed Cilium over to Helm",
    version = VERSION
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The operator's commands.
#[derive(Subcommand)]
pub enum Command {
    /// Derive Helm values from the inventory (and the live cilium-config), with provenance.
    Values(values::Args),
    /// Show (or write) the hand-over edit of the Kubespray inventory.
    Inventory(inventory::Args),
    /// Print the whole migration plan for an inventory, without a cluster.
    Plan(plan::Args),
    /// Hand the cluster's Cilium over to Helm: plan and gate, or with --apply back up, adopt, install, verify.
    // Boxed: its many flags make it much larger than the other commands' arguments.
    Migrate(Box<migrate::Args>),
    /// Return the cluster and inventory to a migration's backup bundle.
    Rollback(rollback::Args),
    /// Check or fix the node directories the unprivileged agent must write.
    Nodes(nodes::Args),
    /// Check Cilium's health through the Kubernetes API, like `cilium status`.
    Verify(verify::Args),
    /// After the hand-over: check and enable Cilium's Gateway API.
    GatewayApi(gateway_api::Args),
    /// After the hand-over: upgrade Cilium one minor at a time, the gate at every hop (plan only without --apply); `upgrade rollback` returns.
    Upgrade(Box<upgrade::Args>),
    /// After the hand-over: switch to Cilium's kube-proxy replacement and retire kube-proxy (plan only without --apply); `rollback` returns.
    KubeProxyReplacement(kube_proxy_replacement::Args),
    /// Back up what the hand-over touches and every cilium.io object into a bundle directory.
    #[command(hide = true)]
    Backup(backup::Args),
    /// Print a shell completion script for cilium-migrate.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

/// Runs one command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Values(args) => values::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Migrate(args) => migrate::run(*args),
        Command::Rollback(args) => rollback::run(args),
        Command::Nodes(args) => nodes::run(args),
        Command::Verify(args) => verify::run(args),
        Command::GatewayApi(args) => gateway_api::run(args),
        Command::Upgrade(args) => upgrade::run(*args),
        Command::KubeProxyReplacement(args) => kube_proxy_replacement::run(args),
        Command::Backup(args) => backup::run(args),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a failed write (`| head` closes stdout).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "cilium-migrate", &mut script);
            write_stdout(&script)
        }
    }
}

/// Writes to stdout; a reader that stopped early (a closed pipe) is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(bytes) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
