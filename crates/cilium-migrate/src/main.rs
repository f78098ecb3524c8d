//! `cilium-migrate`: the operator's binary (see the library for the commands).

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    cilium_migrate::run(cilium_migrate::Cli::parse().command)
}
