//! `cilium-migrate kube-proxy-replacement check|enable|rollback`: switch the service datapath to
//! Cilium's kube-proxy replacement and retire kube-proxy, reversibly.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use helm::ChartSource;
use kube_proxy_replacement::enable::{EnableOptions, RollbackOptions};
use kube_proxy_replacement::{Endpoint, NodeAccess, Status};

use crate::output::{Output, OutputArg};
use crate::verify::parse_duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Read-only: kube-proxy's mode and objects, Cilium's setting, the API server endpoint the
    /// nodes need (proved against the cluster), kernels, Services, and what enable would change.
    Check(CheckArgs),
    /// Turn kube-proxy replacement on and retire kube-proxy (plan only without --apply).
    Enable(Box<EnableArgs>),
    /// Undo an enable: kube-proxy back from the backup, the previous release revision, the
    /// inventory restored (plan only without --apply).
    Rollback(RollbackArgs),
}

#[derive(clap::Args)]
struct Cluster {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary (default: helm on PATH).
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Where the journal, the backup and the values file go [default: the state directory's
    /// kube-proxy-replacement-<kube-system UID>].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckArgs {
    /// The Kubespray inventory (its API server wiring, and the kube_proxy_remove edit).
    #[arg(long, value_name = "DIR", env = "KUBESPRAY_INVENTORY")]
    inventory: PathBuf,
    /// The API server endpoint every node reaches (replaces the one derived from the inventory).
    #[arg(long, value_name = "HOST:PORT")]
    api_server: Option<Endpoint>,
    #[command(flatten)]
    cluster: Cluster,
    #[command(flatten)]
    output: OutputArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    /// The system `ssh` to each inventory host (honours ~/.ssh/config, agents, jump hosts).
    Ssh,
    /// A short-lived privileged pod per node (the agent's image), each command run in the
    /// node's namespaces with the node's own binaries.
    Pod,
    /// This machine only (a single-node cluster, run on the node as root).
    Local,
}

#[derive(clap::Args)]
struct EnableArgs {
    #[command(flatten)]
    check: CheckArgs,
    /// Really change the cluster, the nodes and the inventory; without it, print the plan.
    #[arg(long)]
    apply: bool,
    /// The chart to upgrade with, at the release's chart version: repo/chart, oci://, a .tgz or
    /// a directory.
    #[arg(long, value_name = "REF|TGZ|DIR", default_value = "cilium/cilium")]
    chart: String,
    /// How to reach the nodes to remove kube-proxy's rules.
    #[arg(long, value_enum, default_value = "ssh")]
    via: Via,
    /// Inventory group whose hosts ran kube-proxy.
    #[arg(long, default_value = "k8s_cluster")]
    group: String,
    /// ssh: run the remote commands through `sudo -n` (for a non-root ansible_user).
    #[arg(long = "become")]
    become_root: bool,
    /// ssh: use this ssh config file (`ssh -F`).
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// ssh: extra `-o KEY=VALUE` option (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    ssh_option: Vec<String>,
    /// pod: the image to run (default: the running agent's image, already on every node).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// pod: how long each pod may take to start.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    pod_timeout: Duration,
    /// Leave kube-proxy's iptables/IPVS rules on the nodes (you remove them yourself). They keep
    /// steering Service traffic beside Cilium's until then.
    #[arg(long)]
    skip_node_cleanup: bool,
    /// Helm's --timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    /// How long the rollouts and verify may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    rollout_timeout: Duration,
    /// A verify check not to wait for (repeatable; names as `verify` prints them).
    #[arg(long, value_name = "CHECK")]
    ignore_check: Vec<String>,
}

#[derive(clap::Args)]
struct RollbackArgs {
    #[command(flatten)]
    cluster: Cluster,
    /// Really roll back; without it, print what would happen.
    #[arg(long)]
    apply: bool,
    /// Helm's --timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    /// How long the rollouts and verify may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    rollout_timeout: Duration,
    /// A verify check not to wait for (repeatable).
    #[arg(long, value_name = "CHECK")]
    ignore_check: Vec<String>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        Command::Check(args) => runtime.block_on(check(args)),
        Command::Enable(args) => runtime.block_on(enable(*args)),
        Command::Rollback(args) => runtime.block_on(rollback(args)),
    }
}

struct Connected {
    connection: migration::flow::Connection,
    config: Option<kube::Config>,
    helm: helm::Helm,
    state_dir: PathBuf,
}

async fn connect(cluster: &Cluster) -> anyhow::Result<Connected> {
    let connection = crate::cluster::connect_pinned(cluster.kubeconfig.as_deref()).await?;
    let helm = connection.helm(cluster.helm.as_deref())?;
    let config = match &connection.kubeconfig {
        Some(pinned) => {
            kube::Config::from_custom_kubeconfig(pinned.config().clone(), &Default::default())
                .await
                .ok()
        }
        None => kube::Config::incluster().ok(),
    };
    let state_dir = match &cluster.state_dir {
        Some(dir) => dir.clone(),
        None => {
            let identity = migration::identity::ClusterIdentity::read(
                &connection.client,
                &connection.api_server,
            )
            .await?;
            migration::flow::state_dir()
                .context("no state directory: set HOME or XDG_STATE_HOME, or pass --state-dir DIR")?
                .join(format!(
                    "kube-proxy-replacement-{}",
                    identity.kube_system_uid
                ))
        }
    };
    Ok(Connected {
        connection,
        config,
        helm,
        state_dir,
    })
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let c = connect(&args.cluster).await?;
    let plan = kube_proxy_replacement::plan(
        &c.connection.client,
        c.config.as_ref(),
        &c.helm,
        &args.inventory,
        args.api_server.as_ref(),
    )
    .await?;
    print_plan(&plan, args.output.output, true)?;
    if let Err(why) = &plan.proof {
        bail!(
            "{}",
            kube_proxy_replacement::enable::not_proved(&plan.wiring, why)
        );
    }
    if !plan.blockers.is_empty() {
        bail!("not ready:\n  {}", plan.blockers.join("\n  "));
    }
    Ok(())
}

fn print_plan(
    plan: &kube_proxy_replacement::Plan,
    output: Output,
    node_cleanup: bool,
) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    for item in &plan.items {
        let word = match item.status {
            Status::Pass => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        println!("{word:4}  {:28} {}", item.name, item.detail);
        if let Some(fix) = &item.fix {
            println!("      {:28} fix: {fix}", "");
        }
    }
    println!("\nAPI server for the agents: {}", plan.wiring.describe());
    match &plan.proof {
        Ok(proof) => {
            for line in &proof.evidence {
                println!("  proved: {line}");
            }
        }
        Err(why) => println!("  NOT PROVED: {why}"),
    }
    println!(
        "\nrelease cilium: revision {}, chart {}",
        plan.revision, plan.chart_version
    );
    println!("enable would:");
    for (n, step) in plan.steps(node_cleanup).iter().enumerate() {
        println!("  {}. {step}", n + 1);
    }
    for edit in &plan.inventory_edits {
        print!("{}", edit.unified_diff());
    }
    Ok(())
}

async fn enable(args: EnableArgs) -> anyhow::Result<()> {
    let c = connect(&args.check.cluster).await?;
    let client = &c.connection.client;
    let chart = ChartSource::parse(&args.chart)?;
    if !args.apply {
        let plan = kube_proxy_replacement::plan(
            client,
            c.config.as_ref(),
            &c.helm,
            &args.check.inventory,
            args.check.api_server.as_ref(),
        )
        .await?;
        print_plan(&plan, args.check.output.output, !args.skip_node_cleanup)?;
        if let Err(why) = &plan.proof {
            bail!(
                "{}",
                kube_proxy_replacement::enable::not_proved(&plan.wiring, why)
            );
        }
        println!(
            "state directory: {}\nrun again with --apply to do it",
            c.state_dir.display()
        );
        return Ok(());
    }
    let nodes = if args.skip_node_cleanup {
        eprintln!(
            "WARNING: --skip-node-cleanup: kube-proxy's iptables/IPVS rules stay on every node and keep steering Service \
             traffic beside Cilium's until you remove them (only kube-proxy's chains: what `kube-proxy --cleanup` removes)"
        );
        None
    } else {
        Some(node_access(&args, client).await?)
    };
    if args.chart == "cilium/cilium" {
        c.helm.prepare(&chart)?;
    }
    let options = EnableOptions {
        chart,
        state_dir: c.state_dir.clone(),
        inventory: args.check.inventory.clone(),
        api_server: args.check.api_server.clone(),
        nodes,
        helm_timeout: args.helm_timeout,
        rollout_timeout: args.rollout_timeout,
        ignore_checks: args.ignore_check.clone(),
    };
    let lease = crate::cluster::lock(client, "kube-proxy-replacement enable --apply").await?;
    let mut progress = |line: &str| eprintln!("kube-proxy-replacement: {line}");
    let result = kube_proxy_replacement::enable(
        client,
        c.config.as_ref(),
        &c.connection.api_server,
        &c.helm,
        &options,
        &mut progress,
    )
    .await
    .map_err(anyhow::Error::from);
    let enabled = crate::cluster::unlock(lease, result).await?;
    println!(
        "kube-proxy replacement {}: release revision {} -> {}, k8sServiceHost/Port {}; kube-proxy removed; journal {}",
        if enabled.already {
            "was already enabled by this run"
        } else {
            "enabled"
        },
        enabled.journal.previous_revision,
        enabled
            .journal
            .upgraded_revision
            .map_or_else(|| "?".to_owned(), |r| r.to_string()),
        enabled.journal.endpoint,
        c.state_dir
            .join(kube_proxy_replacement::enable::JOURNAL_FILE)
            .display()
    );
    for line in &enabled.journal.nodes {
        println!("  {line}");
    }
    Ok(())
}

/// The nodes whose rules go, and how to reach them.
async fn node_access(
    args: &EnableArgs,
    client: &kube::Client,
) -> anyhow::Result<(NodeAccess, Vec<cni_fs::Node>)> {
    match args.via {
        Via::Ssh => {
            let nodes = crate::cluster::inventory_nodes(&args.check.inventory, &args.group)?;
            let ssh = cni_fs::Ssh {
                program: None,
                config: args.ssh_config.clone(),
                options: args.ssh_option.clone(),
                become_root: args.become_root,
            };
            Ok((NodeAccess::Ssh(ssh), nodes))
        }
        Via::Pod => {
            let image = match &args.image {
                Some(image) => image.clone(),
                None => {
                    cni_fs::cilium_agent_image(client, kube_proxy_replacement::NAMESPACE).await?
                }
            };
            let nodes = cni_fs::Node::of_cluster(client).await?;
            let pod = kube_proxy_replacement::node_pod::PodExec {
                client: client.clone(),
                namespace: kube_proxy_replacement::NAMESPACE.to_owned(),
                image,
                timeout: args.pod_timeout,
            };
            Ok((NodeAccess::Pod(pod), nodes))
        }
        Via::Local => {
            let all = cni_fs::Node::of_cluster(client).await?;
            let here = cni_fs::Node::this_machine();
            let others: Vec<&str> = all
                .iter()
                .filter(|n| n.name != here.name)
                .map(|n| n.name.as_str())
                .collect();
            if !others.is_empty() {
                bail!(
                    "--via local removes kube-proxy's rules on this machine ({}) only, and the cluster has other nodes: {}; \
                     use --via ssh, or --skip-node-cleanup and remove them yourself. Nothing was changed",
                    here.name,
                    others.join(", ")
                );
            }
            Ok((NodeAccess::Local, vec![here]))
        }
    }
}

async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let c = connect(&args.cluster).await?;
    let journal = kube_proxy_replacement::Journal::load(&c.state_dir)?.with_context(|| {
        format!(
            "{}: no kube-proxy-replacement enable was journaled there; pass the --state-dir of the enable run",
            c.state_dir.display()
        )
    })?;
    if !args.apply {
        println!(
            "rollback would: re-create kube-proxy's ConfigMap and DaemonSet from {}, helm rollback cilium to revision {}, \
             restore {} inventory file(s), wait for the rollouts, verify",
            c.state_dir.join("backup").display(),
            journal.previous_revision,
            journal.inventory.len()
        );
        println!("run again with --apply to do it");
        return Ok(());
    }
    let client = &c.connection.client;
    let options = RollbackOptions {
        state_dir: c.state_dir.clone(),
        helm_timeout: args.helm_timeout,
        rollout_timeout: args.rollout_timeout,
        ignore_checks: args.ignore_check,
    };
    let lease = crate::cluster::lock(client, "kube-proxy-replacement rollback --apply").await?;
    let mut progress = |line: &str| eprintln!("kube-proxy-replacement: {line}");
    let result = kube_proxy_replacement::rollback(
        client,
        &c.connection.api_server,
        &c.helm,
        &options,
        &mut progress,
    )
    .await
    .map_err(anyhow::Error::from);
    let journal = crate::cluster::unlock(lease, result).await?;
    println!(
        "rolled back: release revision {}, kube-proxy restored, inventory restored ({} file(s)); kube-proxy writes its node rules again as it starts",
        journal.previous_revision,
        journal.inventory.len()
    );
    Ok(())
}
