//! `cilium-migrate values`: Helm values for the Cilium chart, from the inventory and the live
//! cilium-config, translated as `plan` and `migrate` translate them
//! ([`migration::flow::offline_values`]); with `--chart` the config gate runs offline too.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kubespray_config::Inventory;
use migration::flow::OfflineGate;

use crate::offline::OfflineArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    offline: OfflineArgs,
    /// Write the values to this file instead of printing them.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Plain JSON values (for `helm -f`) instead of YAML with a provenance comment on each value.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let options = args.offline.options()?;
    let inventory = Inventory::load(&options.inventory)?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    let (translation, _) = migration::flow::offline_values(&options, &inventory)?;
    let text = if args.json {
        translation.values.to_json_string()?
    } else {
        translation.values.to_yaml_with_provenance()?
    };
    for warning in &translation.warnings {
        eprintln!("warning: {warning}");
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the values to {}", path.display()))?;
            eprintln!(
                "wrote values for the Cilium chart {} to {} ({} warnings)",
                translation.values.version,
                path.display(),
                translation.warnings.len()
            );
        }
        None => print!("{text}"),
    }
    if options.chart.is_some() {
        match migration::flow::offline_gate(&options, &translation)? {
            OfflineGate::Skipped { reason } => eprintln!("gate: skipped: {reason}"),
            OfflineGate::Ran {
                chart, blockers, ..
            } if blockers.is_empty() => {
                eprintln!("gate: ok: chart {chart} renders the live cilium-config")
            }
            OfflineGate::Ran {
                chart, blockers, ..
            } => {
                for blocker in &blockers {
                    eprintln!("gate: BLOCKS: {blocker}");
                }
                bail!(
                    "the chart {chart} with these values changes {} cilium-config key(s) (above)",
                    blockers.len()
                );
            }
        }
    }
    Ok(())
}
