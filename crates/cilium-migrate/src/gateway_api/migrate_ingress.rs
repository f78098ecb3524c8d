//! `cilium-migrate gateway-api migrate-ingress plan|apply|cutover|rollback`: ingress-nginx's
//! traffic to Cilium's Gateway API in stages (see `cilium_gateway::migrate_ingress`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use cilium_gateway::Target;
use cilium_gateway::migrate_ingress::{
    self, AddressMode, CutOver, FrontDoor, IngressNginx, Layout, MigrateOptions, ProbeOptions,
};

use crate::verify::parse_duration;

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Read-only: what apply would create, where the Gateway's address comes from, and how
    /// cutover moves the traffic.
    Plan(Box<PlanArgs>),
    /// Back up the Ingresses and ingress-nginx, create the Gateways and routes beside it, wait
    /// until they serve, and (with --probe) compare both front doors. Run again to resume.
    Apply(Box<ApplyArgs>),
    /// Move the traffic to the Gateway (ingress-nginx's IP, or print the DNS changes); refused
    /// while the probe found a difference.
    Cutover(CutoverArgs),
    /// Put ingress-nginx back in front and delete what apply created; the Ingresses and
    /// ingress-nginx's objects are compared with the backup.
    Rollback(RollbackArgs),
}

#[derive(clap::Args)]
struct Common {
    /// The IngressClass ingress-nginx serves.
    #[arg(long, default_value = "nginx")]
    ingress_class: String,
    /// The GatewayClass (and Gateway name) to use.
    #[arg(long, default_value = "cilium")]
    gateway_class: String,
    /// One shared Gateway in this namespace (its listeners admit the Ingresses' namespaces,
    /// ReferenceGrants let it read their TLS Secrets) instead of one Gateway per namespace.
    #[arg(long, value_name = "NAMESPACE")]
    shared_gateway: Option<String>,
    /// Where the Gateway's address comes from: `existing` (the cluster's LoadBalancer
    /// provider), `pool=CIDR` (a new LB-IPAM pool, announced by L2 or BGP), `take-over`
    /// (ingress-nginx's external IP, at cutover; needs --shared-gateway) or `host-network`.
    #[arg(long, value_name = "MODE", value_parser = parse_address, default_value = "existing")]
    address: AddressMode,
    /// ingress-nginx's namespace.
    #[arg(long, default_value = "ingress-nginx")]
    nginx_namespace: String,
    /// ingress-nginx's controller Service, Deployment and ConfigMap.
    #[arg(long, default_value = "ingress-nginx-controller")]
    nginx_controller: String,
    /// Namespace Cilium and its release live in.
    #[arg(long, default_value = "kube-system")]
    namespace: String,
    /// Helm release name of Cilium.
    #[arg(long, default_value = "cilium")]
    release: String,
    /// The Cilium version the conversion targets (default: the release's chart version).
    #[arg(long, value_name = "X.Y.Z")]
    cilium_version: Option<String>,
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary (default: helm on PATH).
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
}

#[derive(clap::Args)]
struct PlanArgs {
    #[command(flatten)]
    common: Common,
    /// Also print the objects as YAML.
    #[arg(long)]
    yaml: bool,
}

#[derive(clap::Args)]
struct ApplyArgs {
    #[command(flatten)]
    common: Common,
    /// The journal; the backup goes beside it (`<journal>.backup.json`).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "migrate-ingress-journal.json"
    )]
    journal: PathBuf,
    /// How long the Gateways may take to be Programmed and the routes Accepted.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    wait: Duration,
    /// Request every host and path through ingress-nginx and the Gateway and report every
    /// difference (cutover requires a probe without differences).
    #[arg(long)]
    probe: bool,
    /// Where ingress-nginx is reached: `IP:PORT` for HTTP, optionally `,IP:PORT` for HTTPS
    /// (default: its external IP, ports 80 and 443).
    #[arg(long, value_name = "ADDR", value_parser = parse_front_door)]
    probe_nginx: Option<FrontDoor>,
    /// Where the Gateway is reached, as --probe-nginx (default: its address, ports 80 and 443).
    #[arg(long, value_name = "ADDR", value_parser = parse_front_door)]
    probe_gateway: Option<FrontDoor>,
    /// A response header to compare besides the status and Location (repeatable).
    #[arg(long, value_name = "NAME")]
    probe_header: Vec<String>,
    /// How long one probe request may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    probe_timeout: Duration,
}

#[derive(clap::Args)]
struct CutoverArgs {
    /// The journal of the apply.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "migrate-ingress-journal.json"
    )]
    journal: PathBuf,
    /// Cut over although the probe found differences (or did not run).
    #[arg(long)]
    accept_differences: bool,
    /// How long the Gateway may take to be Programmed with the moved IP.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    wait: Duration,
    /// Kubeconfig to use.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

#[derive(clap::Args)]
struct RollbackArgs {
    /// The journal of the apply.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "migrate-ingress-journal.json"
    )]
    journal: PathBuf,
    /// How long deletions may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    wait: Duration,
    /// Kubeconfig to use.
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn parse_address(text: &str) -> Result<AddressMode, String> {
    match text {
        "existing" => Ok(AddressMode::Existing),
        "take-over" => Ok(AddressMode::TakeOver),
        "host-network" => Ok(AddressMode::HostNetwork),
        _ => match text.strip_prefix("pool=") {
            Some(cidr) if !cidr.is_empty() => Ok(AddressMode::Pool {
                cidr: cidr.to_owned(),
            }),
            _ => Err(format!(
                "{text:?}: write existing, pool=CIDR (as pool=10.0.0.240/29), take-over or host-network"
            )),
        },
    }
}

fn parse_front_door(text: &str) -> Result<FrontDoor, String> {
    let bad = |e: std::net::AddrParseError| {
        format!("{text:?}: {e}; write IP:PORT or IP:PORT,IP:PORT (HTTP, then HTTPS)")
    };
    let (http, https) = match text.split_once(',') {
        Some((http, https)) => (http, Some(https)),
        None => (text, None),
    };
    Ok(FrontDoor {
        http: http.trim().parse::<SocketAddr>().map_err(bad)?,
        https: https
            .map(|h| h.trim().parse::<SocketAddr>())
            .transpose()
            .map_err(bad)?,
    })
}

pub(super) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Plan(args) => plan(*args).await,
        Command::Apply(args) => apply(*args).await,
        Command::Cutover(args) => cutover(args).await,
        Command::Rollback(args) => rollback(args).await,
    }
}

impl Common {
    fn nginx(&self) -> IngressNginx {
        IngressNginx {
            namespace: self.nginx_namespace.clone(),
            controller: self.nginx_controller.clone(),
            ingress_class: self.ingress_class.clone(),
        }
    }

    /// The options, with convert's targeted at the cluster's Cilium and CRDs.
    async fn options(
        &self,
        connection: &migration::flow::Connection,
    ) -> anyhow::Result<MigrateOptions> {
        let helm = connection.helm(self.helm.as_deref())?;
        let target = Target {
            namespace: self.namespace.clone(),
            release: self.release.clone(),
            cilium_version: self.cilium_version.clone(),
        };
        let state = cilium_gateway::collect(&connection.client, Some(&helm), &target).await?;
        Ok(MigrateOptions {
            convert: migrate_ingress::convert_options_for(
                &state,
                &self.ingress_class,
                &self.gateway_class,
            ),
            layout: match &self.shared_gateway {
                Some(namespace) => Layout::Shared {
                    namespace: namespace.clone(),
                },
                None => Layout::PerNamespace,
            },
            address: self.address.clone(),
            nginx: self.nginx(),
        })
    }
}

async fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let connection = crate::cluster::connect_pinned(args.common.kubeconfig.as_deref()).await?;
    let options = args.common.options(&connection).await?;
    let facts =
        migrate_ingress::read_facts(&connection.client, &options.nginx, &args.common.namespace)
            .await?;
    let plan = migrate_ingress::plan(&facts, &options)?;
    print!("{}", migrate_ingress::plan_text(&plan));
    if args.yaml {
        for object in &plan.objects {
            println!("---");
            print!("{}", serde_saphyr::to_string(object)?);
        }
    }
    println!("run `migrate-ingress apply --probe` with the same options to create them");
    Ok(())
}

async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    let connection = crate::cluster::connect_pinned(args.common.kubeconfig.as_deref()).await?;
    let options = args.common.options(&connection).await?;
    let client = &connection.client;
    let lease = crate::cluster::lock(client, "gateway-api migrate-ingress apply").await?;
    let probe = args.probe.then(|| ProbeOptions {
        nginx: args.probe_nginx.clone(),
        gateway: args.probe_gateway.clone(),
        headers: args.probe_header.clone(),
        timeout: args.probe_timeout,
    });
    let mut progress = |line: &str| eprintln!("migrate-ingress: {line}");
    let result = migrate_ingress::apply(
        client,
        &options,
        &args.common.namespace,
        &args.journal,
        probe.as_ref(),
        args.wait,
        &mut progress,
    )
    .await
    .map_err(anyhow::Error::from);
    let applied = crate::cluster::unlock(lease, result).await?;
    for (gateway, address) in &applied.gateway_addresses {
        println!("Gateway {gateway} serves at {address}, beside ingress-nginx");
    }
    match &applied.probe {
        Some(report) => print!("{}", report.text()),
        None => println!("not probed: run apply again with --probe before cutover"),
    }
    println!("journal {}", args.journal.display());
    Ok(())
}

async fn cutover(args: CutoverArgs) -> anyhow::Result<()> {
    let connection = crate::cluster::connect_pinned(args.kubeconfig.as_deref()).await?;
    let client = &connection.client;
    let lease = crate::cluster::lock(client, "gateway-api migrate-ingress cutover").await?;
    let mut progress = |line: &str| eprintln!("migrate-ingress: {line}");
    let result = migrate_ingress::cutover(
        client,
        &args.journal,
        args.accept_differences,
        args.wait,
        &mut progress,
    )
    .await
    .map_err(anyhow::Error::from);
    match crate::cluster::unlock(lease, result).await? {
        CutOver::Moved { ip, gateway } => {
            println!("{ip} moved from ingress-nginx to Gateway {gateway}; DNS stays as it is");
        }
        CutOver::Dns(changes) => {
            println!("change DNS (then keep ingress-nginx until the old records' TTL expired):");
            for (host, from, to) in changes {
                println!("  {host}: {from} -> {to}");
            }
        }
    }
    Ok(())
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let connection = crate::cluster::connect_pinned(args.kubeconfig.as_deref()).await?;
    let client = &connection.client;
    let lease = crate::cluster::lock(client, "gateway-api migrate-ingress rollback").await?;
    let mut progress = |line: &str| eprintln!("migrate-ingress: {line}");
    let result = migrate_ingress::rollback(client, &args.journal, args.wait, &mut progress)
        .await
        .map_err(anyhow::Error::from)
        .with_context(|| format!("rollback with journal {}", args.journal.display()));
    let rolled = crate::cluster::unlock(lease, result).await?;
    println!(
        "ingress-nginx is in front again: deleted {}, restored {}; the Ingresses and ingress-nginx's objects match the backup",
        rolled.deleted.len(),
        rolled.restored.len()
    );
    Ok(())
}
