//! `cargo xtask`: the operator's commands (values, inventory, plan, migrate, nodes, verify, ...)
//! and the project's own tasks (testbed, e2e, ci, bench).
//!
//! Each subcommand lives in its own module with its own `Args`; this file only dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ci;
mod e2e;
mod gateway_api;
mod inventory;
mod nodes;
mod plan;
mod testbed;
mod ui;
mod values;
mod verify;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Hand a Kubespray-installed Cilium over to Helm", version)]
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Values(args) => values::run(args),
        Command::Inventory(args) => inventory::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Nodes(args) => nodes::run(args),
        Command::Verify(args) => verify::run(args),
        Command::GatewayApi(args) => gateway_api::run(args),
        Command::Testbed(args) => testbed::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Ci(args) => ci::run(args),
    }
}
