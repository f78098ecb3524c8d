//! `cargo xtask`: the operator's commands (values, inventory, plan, migrate, nodes, verify, ...)
//! and the project's own tasks (testbed, e2e, ci, bench).
//!
//! Each subcommand lives in its own module with its own `Args`; this file only dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod backup;
mod bench;
mod ci;
mod cluster;
mod e2e;
mod gateway_api;
mod inventory;
mod migrate;
mod nodes;
mod plan;
mod rollback;
mod testbed;
mod ui;
mod values;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Hand a Kubespray-installed Cilium over to Helm",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Build, start, stop or inspect the local test cluster.
    Testbed(testbed::Args),
    /// Run the end-to-end tests against a real cluster.
    E2e(e2e::Args),
    /// Run everything CI runs: formatting, lints, unit tests, end-to-end tests.
    Ci(ci::Args),
    /// Measure adopt against replace on a 20-node testbed, and the backup against kubectl.
    Bench(bench::Args),
    /// Back up what the hand-over touches and every cilium.io object into a bundle directory.
    #[command(hide = true)]
    Backup(backup::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Values(args) => values::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Migrate(args) => migrate::run(*args),
        Command::Rollback(args) => rollback::run(args),
        Command::Nodes(args) => nodes::run(args),
        Command::Verify(args) => verify::run(args),
        Command::GatewayApi(args) => gateway_api::run(args),
        Command::Testbed(args) => testbed::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Backup(args) => backup::run(args),
    }
}
