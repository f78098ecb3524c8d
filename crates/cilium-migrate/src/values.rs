//! `cilium-migrate values`: Helm values for the Cilium chart, from the inventory and the live
//! cilium-config, translated as `plan` and `migrate` translate them
//! ([`migration::flow::offline_values`]); with `--chart` the config gate runs offline too.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kubespray_config::{Era, Inventory};
use migration::flow::{OfflineGate, OfflineOptions};

#[derive(clap::Args)]
pub struct Args {
    /// The Kubespray inventory directory (or its inventory file).
    #[arg(long, value_name = "DIR")]
    inventory: PathBuf,
    /// The live cilium-config, as `kubectl -n kube-system get configmap cilium-config -o yaml` prints it.
    #[arg(long, value_name = "FILE")]
    live_config: Option<PathBuf>,
    /// The chart version to write values for [default: the inventory's cilium_version].
    #[arg(long, value_name = "X.Y.Z")]
    cilium_version: Option<String>,
    /// The Kubespray era, when neither the inventory nor the live cilium-config's metadata shows
    /// it: template (<= v2.27) or cilium-cli (>= v2.28).
    #[arg(long)]
    era: Option<Era>,
    /// Check the values with this chart offline (`helm template`, then the config gate against
    /// --live-config); blocking differences fail the command after the values are written.
    #[arg(long, value_name = "REF|TGZ|DIR")]
    chart: Option<String>,
    /// The helm binary for --chart [default: helm on PATH].
    #[arg(long, value_name = "FILE")]
    helm: Option<PathBuf>,
    /// Accept the behaviour change of this cilium-config key (repeatable), as `migrate` does.
    #[arg(long = "accept-config-change", value_name = "KEY")]
    accept_config_changes: Vec<String>,
    /// Write the values to this file instead of printing them.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Plain JSON values (for `helm -f`) instead of YAML with a provenance comment on each value.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let options = OfflineOptions {
        inventory: args.inventory.clone(),
        live_config: args.live_config.clone(),
        cilium_version: args.cilium_version.clone(),
        era: args.era,
        chart: args
            .chart
            .as_deref()
            .map(helm::ChartSource::parse)
            .transpose()?,
        helm: args.helm.clone(),
        accept_config_changes: args.accept_config_changes.clone(),
    };
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
