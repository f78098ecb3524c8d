//! The flags `plan` and `values` share: what the offline plan and its gate read.

use std::path::PathBuf;

use kubespray_config::Era;
use migration::flow::OfflineOptions;

/// The inventory, the live config and the optional offline gate, as `plan` and `values` take them.
#[derive(clap::Args)]
pub struct OfflineArgs {
    /// The Kubespray inventory directory (the one holding group_vars/), or its inventory file.
    #[arg(long, value_name = "DIR")]
    pub(crate) inventory: PathBuf,
    /// The live cilium-config, as `kubectl -n kube-system get configmap cilium-config -o yaml` prints it.
    #[arg(long, value_name = "FILE")]
    pub(crate) live_config: Option<PathBuf>,
    /// The chart version [default: the inventory's cilium_version, the Cilium version that runs:
    /// the hand-over does not upgrade].
    #[arg(long, value_name = "X.Y.Z")]
    pub(crate) cilium_version: Option<String>,
    /// The Kubespray era, when neither the inventory nor the live cilium-config's metadata shows
    /// it: template (<= v2.27) or cilium-cli (>= v2.28).
    #[arg(long)]
    pub(crate) era: Option<Era>,
    /// Run the config gate offline with this chart (repo/chart, oci://..., a .tgz or a chart
    /// directory; `helm template` needs no cluster) [default: no gate, and the output says so].
    #[arg(long, value_name = "REF|TGZ|DIR")]
    pub(crate) chart: Option<String>,
    /// The helm binary for --chart [default: helm on PATH].
    #[arg(long, value_name = "FILE")]
    pub(crate) helm: Option<PathBuf>,
    /// Accept the behaviour change of this cilium-config key (repeatable), as `migrate` does.
    #[arg(long = "accept-config-change", value_name = "KEY")]
    pub(crate) accept_config_changes: Vec<String>,
}

impl OfflineArgs {
    /// The library's options for these flags.
    pub(crate) fn options(&self) -> anyhow::Result<OfflineOptions> {
        Ok(OfflineOptions {
            inventory: self.inventory.clone(),
            live_config: self.live_config.clone(),
            cilium_version: self.cilium_version.clone(),
            era: self.era,
            chart: self
                .chart
                .as_deref()
                .map(helm::ChartSource::parse)
                .transpose()?,
            helm: self.helm.clone(),
            accept_config_changes: self.accept_config_changes.clone(),
        })
    }
}
