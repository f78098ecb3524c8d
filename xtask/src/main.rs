//! `cargo xtask`: the project's own tasks (testbed, e2e, ci, bench), and the operator's commands
//! of `cilium-migrate` (values, inventory, plan, migrate, nodes, verify, ...) run as they are.
//!
//! Each task lives in its own module with its own `Args`; this file only dispatches.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod e2e;
mod testbed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Hand a Kubespray-installed Cilium over to Helm",
    version = cilium_migrate::VERSION
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The operator's commands, the same as `cilium-migrate`'s.
    #[command(flatten)]
    Operator(cilium_migrate::Command),
    /// Build, start, stop or inspect the local test cluster.
    Testbed(testbed::Args),
    /// Run the end-to-end tests against a real cluster.
    E2e(e2e::Args),
    /// Run everything CI runs: formatting, lints, unit tests, end-to-end tests.
    Ci(ci::Args),
    /// Measure adopt against replace on a 20-node testbed, and the backup against kubectl.
    Bench(bench::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Operator(command) => cilium_migrate::run(command),
        Command::Testbed(args) => testbed::run(args),
        Command::E2e(args) => e2e::run(args),
        Command::Ci(args) => ci::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
