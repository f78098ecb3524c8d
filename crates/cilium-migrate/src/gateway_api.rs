//! `cilium-migrate gateway-api check|enable|rollback`: Cilium's Gateway API after the hand-over.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cilium_gateway::{AcceptWait, EnableOptions, InventoryFacts, Target};
use helm::{ChartSource, Helm};

use crate::verify::parse_duration;

mod migrate_ingress;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Read-only: are the CRDs, the datapath and the inventory ready for Gateway API?
    Check(CheckArgs),
    /// Turn Gateway API on through Helm (plan only without --apply).
    Enable(EnableArgs),
    /// Roll the release back to the revision an enable journal started from.
    Rollback(RollbackArgs),
    /// Move ingress-nginx's traffic to the Gateway API in stages: plan, apply (beside it,
    /// probed), cutover, rollback.
    #[command(subcommand_value_name = "STAGE")]
    MigrateIngress(migrate_ingress::Args),
    /// Print Gateway and HTTPRoute YAML for the cluster's ingress-nginx Ingresses (warnings to
    /// stderr for every annotation that does not carry over); applies nothing.
    Convert(ConvertArgs),
}

use crate::output::{Output, OutputArg};

#[derive(clap::Args)]
struct Cluster {
    /// Namespace Cilium and its release live in.
    #[arg(long, default_value = "kube-system")]
    namespace: String,
    /// Helm release name.
    #[arg(long, default_value = "cilium")]
    release: String,
    /// The Cilium version to judge (default: the release's chart version).
    #[arg(long, value_name = "X.Y.Z")]
    cilium_version: Option<String>,
    /// Kubespray inventory directory: also check kube_network_plugin, kube_owner, kube_proxy_remove.
    #[arg(long, value_name = "DIR")]
    inventory: Option<PathBuf>,
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary (default: helm on PATH).
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    cluster: Cluster,
    #[command(flatten)]
    output: OutputArg,
}

#[derive(clap::Args)]
struct EnableArgs {
    #[command(flatten)]
    cluster: Cluster,
    /// Really change the cluster; without it, print the plan.
    #[arg(long)]
    apply: bool,
    /// Gateway API CRD files to apply first (the bundle `check` names, downloaded).
    #[arg(long, value_name = "FILE", num_args = 1..)]
    install_crds: Vec<PathBuf>,
    /// The chart to upgrade with, at the release's chart version: repo/chart, oci://, a .tgz or
    /// a directory.
    #[arg(long, default_value = "cilium/cilium")]
    chart: String,
    /// The journal (JSON) recording the revision to roll back to; the values file goes beside it.
    #[arg(long, value_name = "FILE", default_value = "gateway-api-journal.json")]
    journal: PathBuf,
    /// How long GatewayClass cilium may take to be Accepted.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "3m")]
    accept_timeout: Duration,
    /// Do not wait for GatewayClass cilium (nothing accepts it where no operator runs, as on
    /// the testbed); everything else is still verified.
    #[arg(long)]
    no_accept_wait: bool,
    /// Do not restart the agents (DaemonSet cilium) after the GatewayClass is accepted; they
    /// then serve Gateways only after their next restart.
    #[arg(long)]
    no_agent_restart: bool,
    /// Helm's --timeout for the upgrade and a rollback.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    /// How long the CRDs and the operator's rollout may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    rollout_timeout: Duration,
}

#[derive(clap::Args)]
struct RollbackArgs {
    /// The journal of the enable run.
    #[arg(long, value_name = "FILE", default_value = "gateway-api-journal.json")]
    journal: PathBuf,
    /// Kubeconfig to use.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary (default: helm on PATH).
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Helm's --timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// Only this namespace's Ingresses (default: all namespaces).
    #[arg(long)]
    namespace: Option<String>,
    /// Read Ingresses (and Services, for named ports) from this file instead of the cluster:
    /// `kubectl get ingresses,services -A -o yaml` output.
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// The IngressClass to convert.
    #[arg(long, default_value = "nginx")]
    ingress_class: String,
    /// The GatewayClass (and Gateway name) to use.
    #[arg(long, default_value = "cilium")]
    gateway_class: String,
    /// The Cilium minor the Gateways run on (`17` or `1.17`): what it lacks becomes a warning.
    #[arg(long, value_name = "MINOR", value_parser = parse_cilium_minor, default_value = "15")]
    cilium_minor: u32,
    /// The channel of the installed Gateway API CRDs: standard or experimental.
    #[arg(long, value_name = "CHANNEL", value_parser = parse_crd_channel, default_value = "standard")]
    crd_channel: cilium_gateway::bundle::Channel,
    /// The release of the installed Gateway API CRDs (`v1.2.1`).
    #[arg(long, value_name = "VERSION", value_parser = parse_crd_version, default_value = "v1.0.0")]
    crd_version: cilium_gateway::bundle::BundleVersion,
    /// The TLSRoute CRD is not installed (ssl-passthrough is then warned about).
    #[arg(long)]
    no_tls_route_crd: bool,
    /// Also convert Ingresses without a class (when ingress-nginx's IngressClass is the default).
    #[arg(long)]
    include_classless: bool,
    /// Kubeconfig to use.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn parse_cilium_minor(text: &str) -> Result<u32, String> {
    let minor = text.trim().trim_start_matches('v');
    let minor = minor.strip_prefix("1.").unwrap_or(minor);
    minor
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("{text:?} is not a Cilium minor: pass 17 or 1.17"))
}

fn parse_crd_channel(text: &str) -> Result<cilium_gateway::bundle::Channel, String> {
    cilium_gateway::bundle::Channel::parse(text)
        .ok_or_else(|| format!("{text:?} is not a channel: pass standard or experimental"))
}

fn parse_crd_version(text: &str) -> Result<cilium_gateway::bundle::BundleVersion, String> {
    cilium_gateway::bundle::BundleVersion::parse(text)
        .ok_or_else(|| format!("{text:?} is not a Gateway API release: pass one as v1.2.1"))
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Enable(args) => runtime.block_on(enable(args)),
        Command::Rollback(args) => runtime.block_on(rollback(args)),
        Command::Convert(args) => runtime.block_on(convert(args)),
        Command::MigrateIngress(args) => runtime.block_on(migrate_ingress::run(args)),
    }
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let connection = crate::cluster::connect_pinned(args.kubeconfig.as_deref()).await?;
    let helm = connection.helm(args.helm.as_deref())?;
    let lease = crate::cluster::lock(&connection.client, "gateway-api rollback").await?;
    let result = cilium_gateway::enable::roll_back_from_journal(
        &connection.client,
        &helm,
        &args.journal,
        args.helm_timeout,
    )
    .await
    .map_err(anyhow::Error::from);
    let to = crate::cluster::unlock(lease, result).await?;
    eprintln!("rolled back to revision {to} ({})", args.journal.display());
    Ok(())
}

impl Cluster {
    fn target(&self) -> Target {
        Target {
            namespace: self.namespace.clone(),
            release: self.release.clone(),
            cilium_version: self.cilium_version.clone(),
        }
    }

    fn inventory(&self) -> anyhow::Result<Option<InventoryFacts>> {
        Ok(self
            .inventory
            .as_deref()
            .map(InventoryFacts::load)
            .transpose()?)
    }
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let inventory = args.cluster.inventory()?;
    let connection = crate::cluster::connect_pinned(args.cluster.kubeconfig.as_deref()).await?;
    let (client, helm) = (
        &connection.client,
        connection.helm(args.cluster.helm.as_deref())?,
    );
    let state = cilium_gateway::collect(client, Some(&helm), &args.cluster.target()).await?;
    let report = cilium_gateway::check(&state, inventory.as_ref());
    match args.output.output {
        Output::Text => print!("{}", report.table()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if report.failed() {
        let names: Vec<&str> = report.failures().map(|i| i.name.as_str()).collect();
        bail!("not ready for Gateway API: {}", names.join(", "));
    }
    Ok(())
}

async fn enable(args: EnableArgs) -> anyhow::Result<()> {
    let inventory = args.cluster.inventory()?;
    let connection = crate::cluster::connect_pinned(args.cluster.kubeconfig.as_deref()).await?;
    let (client, helm) = (
        &connection.client,
        connection.helm(args.cluster.helm.as_deref())?,
    );
    let target = args.cluster.target();
    let chart = ChartSource::parse(&args.chart)?;

    if !args.apply {
        let state = cilium_gateway::collect(client, Some(&helm), &target).await?;
        let crds = cilium_gateway::enable::read_crd_files(&args.install_crds)?;
        let plan = cilium_gateway::plan(&state, inventory.as_ref(), crds)?;
        print!("{}", plan.report.table());
        println!("\nenable would:");
        for name in &plan.crd_names {
            println!("  apply CRD {name}");
        }
        for left_out in &plan.crds_left_out {
            println!("  not applied: {left_out}");
        }
        for change in &plan.changes {
            let before = change
                .before
                .as_ref()
                .map_or("(chart default)".to_owned(), ToString::to_string);
            println!("  set {} = {} (was {before})", change.path, change.after);
        }
        println!(
            "  helm upgrade {} in {} with the release's values plus these, restart the operator, wait for GatewayClass cilium, restart the agents, verify, and roll back on failure",
            target.release, target.namespace
        );
        println!("run again with --apply to do it");
        return Ok(());
    }

    let lease = crate::cluster::lock(client, "gateway-api enable --apply").await?;
    let result = enable_locked(args, client, &helm, target, chart, inventory).await;
    crate::cluster::unlock(lease, result).await
}

async fn enable_locked(
    args: EnableArgs,
    client: &kube::Client,
    helm: &Helm,
    target: Target,
    chart: ChartSource,
    inventory: Option<InventoryFacts>,
) -> anyhow::Result<()> {
    if args.chart == "cilium/cilium" {
        helm.prepare(&chart)?;
    }
    let options = EnableOptions {
        target,
        chart,
        crd_files: args.install_crds,
        journal: args.journal,
        helm_timeout: args.helm_timeout,
        rollout_timeout: args.rollout_timeout,
        accept: if args.no_accept_wait {
            AcceptWait::Skip
        } else {
            AcceptWait::Within(args.accept_timeout)
        },
        inventory,
        restart_agents: !args.no_agent_restart,
    };
    let mut progress = |line: &str| eprintln!("gateway-api: {line}");
    let enabled = cilium_gateway::enable(client, helm, &options, &mut progress).await?;
    print!("{}", enabled.report.table());
    println!(
        "Gateway API enabled: revision {} -> {}{}{}; journal {}",
        enabled.previous_revision,
        enabled.enabled_revision,
        if enabled.agents_restarted {
            ", agents restarted"
        } else {
            ""
        },
        enabled
            .operator_restart
            .map(|r| format!(", operator restarted ({r})"))
            .unwrap_or_default(),
        options.journal.display()
    );
    Ok(())
}

async fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    use cilium_gateway::convert::{ConvertOptions, read_custom_header_config_maps, read_ingresses};
    let (ingresses, services, config_maps) = match &args.from {
        Some(path) => read_list(path)?,
        None => {
            let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
            let (ingresses, services) = read_ingresses(&client, args.namespace.as_deref()).await?;
            let config_maps = read_custom_header_config_maps(&client, &ingresses).await?;
            (ingresses, services, config_maps)
        }
    };
    let options = ConvertOptions {
        ingress_class: args.ingress_class,
        gateway_class: args.gateway_class,
        cilium_minor: args.cilium_minor,
        crd_channel: args.crd_channel,
        crd_version: args.crd_version,
        tls_route_crd: !args.no_tls_route_crd,
        include_classless: args.include_classless,
        config_maps,
    };
    let conversion = cilium_gateway::convert::convert(&ingresses, &services, &options);
    print!("{}", conversion.to_yaml()?);
    for warning in &conversion.warnings {
        match &warning.annotation {
            Some(annotation) => eprintln!(
                "warning: {}: {annotation}: {}",
                warning.ingress, warning.message
            ),
            None => eprintln!("warning: {}: {}", warning.ingress, warning.message),
        }
    }
    if !conversion.skipped.is_empty() {
        eprintln!(
            "left alone (other ingress classes): {}",
            conversion.skipped.join(", ")
        );
    }
    Ok(())
}

/// Ingresses, Services and ConfigMaps (the `custom-headers` ones) from `kubectl get ... -o
/// yaml|json` output (a List or single objects).
fn read_list(
    path: &std::path::Path,
) -> anyhow::Result<(
    Vec<k8s_openapi::api::networking::v1::Ingress>,
    Vec<k8s_openapi::api::core::v1::Service>,
    Vec<k8s_openapi::api::core::v1::ConfigMap>,
)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("{} is not YAML or JSON", path.display()))?;
    let mut objects = Vec::new();
    for document in documents {
        match document["items"].as_array() {
            Some(items) => objects.extend(items.iter().cloned()),
            None => objects.push(document),
        }
    }
    let (mut ingresses, mut services, mut config_maps) = (Vec::new(), Vec::new(), Vec::new());
    for object in objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Ingress" => ingresses.push(
                serde_json::from_value(object)
                    .with_context(|| format!("{}: an Ingress is malformed", path.display()))?,
            ),
            "Service" => services.push(
                serde_json::from_value(object)
                    .with_context(|| format!("{}: a Service is malformed", path.display()))?,
            ),
            "ConfigMap" => config_maps.push(
                serde_json::from_value(object)
                    .with_context(|| format!("{}: a ConfigMap is malformed", path.display()))?,
            ),
            _ => {}
        }
    }
    if ingresses.is_empty() {
        bail!(
            "{} holds no Ingress; pass the output of `kubectl get ingresses,services -A -o yaml` (with the ConfigMaps that custom-headers annotations name)",
            path.display()
        );
    }
    Ok((ingresses, services, config_maps))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `convert --from` reads the header ConfigMaps in the file, so `custom-headers` is carried
    /// (only the Ingress whose ConfigMap is missing is warned about).
    #[test]
    fn convert_from_a_file_carries_the_custom_headers_configmap_it_holds() {
        let corpus = upstream::project_root()
            .join("crates/cilium-gateway/tests/ingress-corpus/headers.yaml");
        let (ingresses, services, config_maps) = read_list(&corpus).expect("read the corpus");
        assert!(
            config_maps
                .iter()
                .any(|c| c.metadata.name.as_deref() == Some("security-headers")),
            "the ConfigMap in the file is read"
        );
        let options = cilium_gateway::convert::ConvertOptions {
            config_maps,
            ..Default::default()
        };
        let conversion = cilium_gateway::convert::convert(&ingresses, &services, &options);
        let header_warnings: Vec<&str> = conversion
            .warnings
            .iter()
            .filter(|w| {
                w.annotation
                    .as_deref()
                    .is_some_and(|a| a.ends_with("custom-headers"))
            })
            .map(|w| w.ingress.as_str())
            .collect();
        assert_eq!(header_warnings, ["apps/legacy-api"]);
        assert!(
            conversion
                .to_yaml()
                .expect("yaml")
                .contains("X-Frame-Options")
        );
    }

    #[test]
    fn custom_header_references_resolve_a_bare_name_in_the_ingress_namespace() {
        let corpus = upstream::project_root()
            .join("crates/cilium-gateway/tests/ingress-corpus/headers.yaml");
        let (ingresses, _, _) = read_list(&corpus).expect("read the corpus");
        let references = cilium_gateway::convert::custom_header_references(&ingresses);
        assert!(references.contains(&("apps".to_owned(), "security-headers".to_owned())));
        assert!(references.contains(&("apps".to_owned(), "missing-headers".to_owned())));
    }
}
