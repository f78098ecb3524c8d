//! `cilium-migrate values`: Helm values for the Cilium chart, from the inventory and the live cilium-config.

use std::path::{Path, PathBuf};

use anyhow::Context;
use cilium_values::{ChartVersion, LiveConfig, Sources, Translation, translate};
use kubespray_config::{Era, Inventory};

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
    /// The Kubespray era, when the inventory does not show it: template (<= v2.27) or cilium-cli (>= v2.28).
    #[arg(long)]
    era: Option<Era>,
    /// Write the values to this file instead of printing them.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Plain JSON values (for `helm -f`) instead of YAML with a provenance comment on each value.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let (translation, _) = values_for(
        &args.inventory,
        args.live_config.as_deref(),
        args.cilium_version.as_deref(),
        args.era,
    )?;
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
    Ok(())
}

/// Translate an inventory (and optionally a live cilium-config file) into chart values; also
/// returns the loaded inventory for callers that need its hosts. Kubespray's own inventory
/// warnings go to stderr.
pub(crate) fn values_for(
    inventory_path: &Path,
    live_config: Option<&Path>,
    cilium_version: Option<&str>,
    era: Option<Era>,
) -> anyhow::Result<(Translation, Inventory)> {
    let inventory = Inventory::load(inventory_path)?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    let era = match era {
        Some(era) => era,
        None => inventory.detect_era().require(&inventory.dir)?,
    };
    let variables = inventory.variables(era)?;
    let vars = migration::flow::inventory_vars(&inventory, &variables);
    let version = match cilium_version {
        Some(text) => ChartVersion::parse(text)?,
        None => migration::flow::default_version(&vars)?,
    };
    let live = live_config.map(LiveConfig::read).transpose()?;
    let translation = translate(&Sources {
        live,
        inventory: vars,
        version,
    })?;
    Ok((translation, inventory))
}
