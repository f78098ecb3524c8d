//! `cilium-migrate migrate`: hand the cluster's Cilium over to Helm (the library flow
//! `migration::flow::run`, with a terminal around it).
//!
//! Read-only by default: it prints the plan and the gate. `--apply` runs the journaled steps;
//! `--yes` skips the confirmation, and is required when stdin is not a terminal. Progress goes
//! to stderr, one line when a step starts and one when it ends, with the time since the start.
//!
//! Test hook, in test builds only (feature `fault-injection`): `CILIUM_MIGRATE_FAIL_AT=<step>`
//! (`backup`, `adopt-metadata`, `helm-install`, ...) makes the run fail right after that step's
//! work, before the journal records it done.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use cni_fs::{Access, Node, PodAccess, Ssh};
use helm::ChartSource;
use migration::etcd::EtcdSnapshotOptions;
use migration::flow::{self, MigrateOptions, NodeCheck, Outcome, Plan};
use migration::journal::Strategy;

use crate::ui;

/// The environment variable of the failure-injection test hook.
#[cfg(feature = "fault-injection")]
pub(crate) const FAIL_AT_ENV: &str = "CILIUM_MIGRATE_FAIL_AT";

#[derive(clap::Args)]
pub struct Args {
    /// The Kubespray inventory directory (the one holding group_vars/), or its inventory file.
    #[arg(long, value_name = "DIR")]
    inventory: PathBuf,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The backup bundle directory [default: this cluster's latest cilium-migrate-<host>-* in
    /// $XDG_STATE_HOME/cilium-migrate (~/.local/state/cilium-migrate) or the working directory,
    /// else a new one in the state directory].
    #[arg(long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// The chart: repo/chart (a repository you added: `helm repo add cilium
    /// https://helm.cilium.io/`), oci://..., a .tgz or a chart directory.
    #[arg(long, value_name = "REF|TGZ|DIR", default_value = "cilium/cilium")]
    chart: String,
    /// The chart version [default: the Cilium version that runs: the hand-over does not upgrade].
    #[arg(long, value_name = "X.Y.Z")]
    cilium_version: Option<String>,
    /// How the template-era objects pass to Helm [default: adopt].
    #[arg(long, value_enum)]
    strategy: Option<StrategyArg>,
    /// Accept the behaviour change of this cilium-config key (repeatable).
    #[arg(long = "accept-config-change", value_name = "KEY")]
    accept_config_changes: Vec<String>,
    /// Accept this workload difference, by the name the plan shows (repeatable), e.g.
    /// 'DaemonSet/cilium: container cilium-agent: image'.
    #[arg(long = "accept-workload-change", value_name = "NAME")]
    accept_workload_changes: Vec<String>,
    /// How the node directories are checked before anything restarts.
    #[arg(long, value_enum, default_value = "ssh")]
    via: Via,
    /// The directories to check (default: /opt/cni/bin /etc/cni/net.d).
    #[arg(long = "path", value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// The inventory group whose hosts are the nodes (--via ssh).
    #[arg(long, default_value = "k8s_cluster")]
    group: String,
    /// ssh: run the remote commands (node check, etcd snapshot) through `sudo -n`.
    #[arg(long = "become", alias = "become-root")]
    become_root: bool,
    /// ssh: use this ssh config file (`ssh -F`).
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// ssh: extra `-o KEY=VALUE` option (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    ssh_option: Vec<String>,
    /// Also save an etcd snapshot into the bundle (over ssh, on the first etcd host) during the backup.
    #[arg(long)]
    etcd_snapshot: bool,
    /// --etcd-snapshot: the directory of ca.pem and admin-<host>[-key].pem on the etcd host.
    #[arg(long, value_name = "DIR", default_value = migration::etcd::KUBESPRAY_ETCD_CERT_DIR, requires = "etcd_snapshot")]
    etcd_cert_dir: PathBuf,
    /// --etcd-snapshot: etcdctl on the etcd host.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "etcdctl",
        requires = "etcd_snapshot"
    )]
    etcdctl: PathBuf,
    /// --etcd-snapshot: the etcd endpoint [default: https://<access_ip|ip of the host, else 127.0.0.1>:2379].
    #[arg(long, value_name = "URL", requires = "etcd_snapshot")]
    etcd_endpoint: Option<String>,
    /// --etcd-snapshot: the etcd CA certificate, a name in --etcd-cert-dir or an absolute path [default: ca.pem; with etcd_deployment_type: kubeadm in the inventory, /etc/kubernetes/ssl/etcd/ca.crt (kubeadm's /etc/kubernetes/pki/etcd/ca.crt)].
    #[arg(long, value_name = "FILE", requires = "etcd_snapshot")]
    etcd_ca: Option<PathBuf>,
    /// --etcd-snapshot: the etcd client certificate, like --etcd-ca [default: admin-<host>.pem; kubeadm: /etc/kubernetes/ssl/etcd/server.crt, or kubeadm's /etc/kubernetes/pki/etcd/healthcheck-client.crt].
    #[arg(long, value_name = "FILE", requires = "etcd_snapshot")]
    etcd_cert: Option<PathBuf>,
    /// --etcd-snapshot: the etcd client key, like --etcd-ca [default: admin-<host>-key.pem; kubeadm: /etc/kubernetes/ssl/etcd/server.key, or kubeadm's /etc/kubernetes/pki/etcd/healthcheck-client.key].
    #[arg(long, value_name = "FILE", requires = "etcd_snapshot")]
    etcd_key: Option<PathBuf>,
    /// Do not check the node directories (you vouch that they are root-owned).
    #[arg(long)]
    skip_node_check: bool,
    /// The helm binary [default: helm on PATH].
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Change the cluster (without it, only the plan and the gate are shown).
    #[arg(long)]
    apply: bool,
    /// Do not ask for confirmation (required with --apply when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
    /// A verify check that does not block the end (repeatable; reported anyway).
    #[arg(long = "ignore-check", value_name = "NAME")]
    ignore_checks: Vec<String>,
    /// How long verification may take to pass.
    #[arg(long, value_name = "DURATION", value_parser = crate::verify::parse_duration, default_value = "5m")]
    verify_timeout: Duration,
    /// Helm's --timeout for the install.
    #[arg(long, value_name = "DURATION", value_parser = crate::verify::parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    /// `text` for people, `json` for machines.
    #[command(flatten)]
    output: ui::OutputArg,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StrategyArg {
    /// Give the live objects to Helm in place; the DaemonSet rolls, never deleted.
    Adopt,
    /// Delete the template-era objects (never CRDs, custom resources or Secrets), then install.
    Replace,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    /// The system `ssh` to each inventory host.
    Ssh,
    /// A short-lived privileged pod per node.
    Pod,
    /// This machine (the tool runs on the node).
    Local,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    if args.apply && !args.yes && !std::io::stdin().is_terminal() {
        bail!("--apply without --yes needs a terminal to confirm on; pass --yes to go ahead");
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let options = options(&args).await?;
    let (colour, output) = (std::io::stderr().is_terminal(), args.output.output);
    let mut progress =
        ui::StderrProgress::new(|plan: &Plan| confirm_on_terminal(plan, colour, output));
    let outcome = flow::run(&options, &mut progress).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(flow::FlowError::NotConfirmed) => {
            eprintln!("not confirmed: nothing was changed");
            return Ok(());
        }
        Err(e) => return Err(e).context("migrate stopped"),
    };
    match args.output.output {
        ui::Output::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        ui::Output::Text => print_text(&outcome),
    }
    if let Outcome::Planned { plan } = &outcome
        && !plan.blockers.is_empty()
    {
        bail!(
            "the gate blocks the hand-over ({} blockers above)",
            plan.blockers.len()
        );
    }
    Ok(())
}

async fn options(args: &Args) -> anyhow::Result<MigrateOptions> {
    let mut options = MigrateOptions::new(&args.inventory);
    options.kubeconfig = args.kubeconfig.clone();
    options.bundle = args.bundle.clone();
    options.chart = ChartSource::parse(&args.chart)?;
    options.cilium_version = args.cilium_version.clone();
    options.strategy = args.strategy.map(|s| match s {
        StrategyArg::Adopt => Strategy::Adopt,
        StrategyArg::Replace => Strategy::Replace,
    });
    options.accept_config_changes = args.accept_config_changes.clone();
    options.accept_workload_changes = args.accept_workload_changes.clone();
    options.helm = args.helm.clone();
    options.apply = args.apply;
    options.yes = args.yes;
    options.ignore_checks = args.ignore_checks.clone();
    options.verify_timeout = args.verify_timeout;
    options.helm_timeout = args.helm_timeout;
    options.nodes = node_check(args).await?;
    options.etcd_snapshot = args.etcd_snapshot.then(|| EtcdSnapshotOptions {
        cert_dir: args.etcd_cert_dir.clone(),
        etcdctl: args.etcdctl.clone(),
        endpoint: args.etcd_endpoint.clone(),
        ca_file: args.etcd_ca.clone(),
        cert_file: args.etcd_cert.clone(),
        key_file: args.etcd_key.clone(),
        ..EtcdSnapshotOptions::new(ssh(args))
    });
    #[cfg(feature = "fault-injection")]
    {
        options.fail_after = injected_failure()?;
    }
    Ok(options)
}

/// The step after which the test hook fails the run ([`FAIL_AT_ENV`]), if any.
#[cfg(feature = "fault-injection")]
fn injected_failure() -> anyhow::Result<Option<flow::Step>> {
    Ok(match std::env::var(FAIL_AT_ENV) {
        Ok(step) if !step.is_empty() => Some(
            serde_json::from_value::<flow::Step>(serde_json::Value::String(step.clone())).map_err(
                |_| {
                    anyhow::anyhow!(
                        "{FAIL_AT_ENV}={step}: not a step; use backup, adopt-metadata, delete-template-objects, helm-install, prune-fields, inventory-edit or verify"
                    )
                },
            )?,
        ),
        _ => None,
    })
}

/// The ssh client for the node check and the etcd snapshot.
fn ssh(args: &Args) -> Ssh {
    Ssh {
        program: None,
        config: args.ssh_config.clone(),
        options: args.ssh_option.clone(),
        become_root: args.become_root,
    }
}

async fn node_check(args: &Args) -> anyhow::Result<NodeCheck> {
    if args.skip_node_check {
        eprintln!(
            "WARNING: --skip-node-check: the node directories are not checked; a kube-owned /opt/cni/bin makes the new agent crash-loop"
        );
        return Ok(NodeCheck::Skip);
    }
    let paths = if args.paths.is_empty() {
        cni_fs::DEFAULT_PATHS.iter().map(PathBuf::from).collect()
    } else {
        args.paths.clone()
    };
    let (access, nodes) = match args.via {
        // All hosts, so the gate names those --via local does not reach (`Access::reach`).
        Via::Local => (
            Access::Local,
            crate::cluster::inventory_nodes(&args.inventory, &args.group)?,
        ),
        Via::Ssh => {
            let nodes = crate::cluster::inventory_nodes(&args.inventory, &args.group)?;
            (Access::Ssh(ssh(args)), nodes)
        }
        Via::Pod => {
            let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
            let image = cni_fs::cilium_agent_image(&client, "kube-system").await?;
            let nodes = Node::of_cluster(&client).await?;
            let access = Access::Pod(PodAccess {
                client,
                namespace: "kube-system".into(),
                image,
                timeout: Duration::from_secs(120),
            });
            (access, nodes)
        }
    };
    Ok(NodeCheck::Check {
        access: Box::new(access),
        nodes,
        paths,
    })
}

/// Asks on the terminal whether to go ahead, after printing the plan (text output only).
fn confirm_on_terminal(plan: &Plan, colour: bool, output: ui::Output) -> bool {
    if output == ui::Output::Text {
        print_plan(plan, colour);
    }
    eprint!(
        "Hand Cilium over to Helm on {} with strategy {}, starting at {}? [y/N] ",
        plan.cluster.api_server,
        plan.strategy,
        plan.next_step
            .map_or("the end".to_owned(), |s| s.to_string())
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim(), "y" | "Y" | "yes")
}

fn print_text(outcome: &Outcome) {
    let colour = std::io::stdout().is_terminal();
    match outcome {
        Outcome::AlreadyHandedOver { era, bundle } => {
            println!("nothing to do: {era}");
            if let Some(bundle) = bundle {
                println!("bundle of that migration: {}", bundle.display());
            }
        }
        Outcome::Planned { plan } => {
            print_plan(plan, colour);
            println!(
                "\nNothing was changed. Run again with --apply to hand over{}.",
                if plan.blockers.is_empty() {
                    ""
                } else {
                    " once the gate passes"
                }
            );
        }
        Outcome::Migrated {
            plan,
            steps,
            checks,
        } => {
            println!("{}", ui::heading("Steps run", colour));
            let rows: Vec<Vec<String>> = steps
                .iter()
                .map(|s| vec![s.step.to_string(), format!("{:.1}s", s.seconds)])
                .collect();
            print!("{}", ui::table(&["STEP", "TIME"], &rows));
            println!("\n{}", ui::heading("Verification", colour));
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        if c.ignored {
                            format!("{} (ignored)", c.state)
                        } else {
                            c.state.clone()
                        },
                        c.detail.clone(),
                    ]
                })
                .collect();
            print!("{}", ui::table(&["CHECK", "STATE", "DETAIL"], &rows));
            println!(
                "\nCilium is now the Helm release cilium in kube-system (chart {} {}); the backup is {}.",
                plan.chart,
                plan.chart_version,
                plan.bundle.display()
            );
            println!(
                "Undo with: cilium-migrate rollback --bundle {} --apply",
                plan.bundle.display()
            );
        }
    }
}

fn print_plan(plan: &Plan, colour: bool) {
    println!("{}", ui::heading("Migration plan", colour));
    println!(
        "cluster:        {} (kube-system {})",
        plan.cluster.api_server, plan.cluster.kube_system_uid
    );
    println!("era:            {}", plan.era);
    println!("strategy:       {}", plan.strategy);
    println!("chart:          {} {}", plan.chart, plan.chart_version);
    println!("bundle:         {}", plan.bundle.display());
    let steps: Vec<String> = plan
        .steps
        .iter()
        .map(|s| {
            if Some(*s) == plan.next_step {
                format!("[{s}]")
            } else {
                s.to_string()
            }
        })
        .collect();
    println!("steps:          {} (next in brackets)", steps.join(" -> "));

    println!("\n{}", ui::heading("Helm values", colour));
    print!("{}", plan.values_yaml);
    if !plan.values_yaml.ends_with('\n') {
        println!();
    }

    println!(
        "\n{}",
        ui::heading("Gate: rendered vs live cilium-config", colour)
    );
    if plan.config_differences.is_empty() {
        println!("identical");
    }
    for d in &plan.config_differences {
        println!("- {d}");
    }

    println!(
        "\n{}",
        ui::heading(
            "Gate: rendered vs live workloads (agent DaemonSet, operator, Hubble)",
            colour
        )
    );
    if plan.workload_differences.is_empty() {
        println!("identical");
    }
    for d in &plan.workload_differences {
        println!("- {d}");
    }

    if let Some(adoption) = &plan.adoption {
        println!("\n{}", ui::heading("Adoption", colour));
        for (what, list) in [
            ("ownership metadata", &adoption.adopted),
            ("prune Kubespray-only fields", &adoption.pruned),
            ("Helm creates", &adoption.created),
            ("completed certgen Job deleted", &adoption.deleted_jobs),
            ("left alone (not in the chart)", &adoption.left_alone),
        ] {
            if !list.is_empty() {
                println!("{what}: {}", list.join(", "));
            }
        }
    }

    println!("\n{}", ui::heading("Inventory edit", colour));
    if plan.inventory_diff.is_empty() {
        println!("(nothing to change)");
    } else {
        print!("{}", ui::paint_diff(&plan.inventory_diff, colour));
    }

    if !plan.nodes.is_empty() {
        println!("\n{}", ui::heading("Node directories", colour));
        for line in &plan.nodes {
            println!("{line}");
        }
    }
    print!("{}", ui::section("Warnings", &plan.warnings, colour));
    if !plan.blockers.is_empty() {
        print!("{}", ui::section("BLOCKED", &plan.blockers, colour));
    }
}

#[cfg(test)]
mod tests {
    use super::Args;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn options(argv: &[&str]) -> anyhow::Result<migration::flow::MigrateOptions> {
        let cli = Cli::try_parse_from(
            ["migrate", "--inventory", "inv", "--skip-node-check"]
                .iter()
                .chain(argv),
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(super::options(&cli.args))
    }

    #[test]
    fn accepted_changes_reach_the_flow_by_key_and_by_name() -> anyhow::Result<()> {
        let name = "DaemonSet/cilium: container cilium-agent: image";
        let accepting = options(&[
            "--accept-config-change",
            "tunnel-protocol",
            "--accept-workload-change",
            name,
            "--accept-workload-change",
            "Deployment/cilium-operator: replicas",
        ])?;
        assert_eq!(accepting.accept_config_changes, ["tunnel-protocol"]);
        assert_eq!(
            accepting.accept_workload_changes,
            [name, "Deployment/cilium-operator: replicas"]
        );
        assert!(options(&[])?.accept_workload_changes.is_empty());
        Ok(())
    }

    #[test]
    fn etcd_snapshot_flags_reach_the_flow_with_the_ssh_settings() -> anyhow::Result<()> {
        assert!(options(&[])?.etcd_snapshot.is_none());
        let defaults = options(&["--etcd-snapshot"])?
            .etcd_snapshot
            .ok_or_else(|| anyhow::anyhow!("no etcd options"))?;
        assert_eq!(defaults.cert_dir.to_str(), Some("/etc/ssl/etcd/ssl"));
        assert_eq!(defaults.etcdctl.to_str(), Some("etcdctl"));
        assert_eq!(defaults.endpoint, None);
        assert!(!defaults.ssh.become_root);
        let set = options(&[
            "--etcd-snapshot",
            "--etcd-cert-dir",
            "/etc/kubernetes/ssl/etcd",
            "--etcdctl",
            "/usr/local/bin/etcdctl",
            "--etcd-endpoint",
            "https://10.0.0.1:2379",
            "--become",
            "--ssh-config",
            "/tmp/ssh_config",
            "--ssh-option",
            "Port=2222",
        ])?
        .etcd_snapshot
        .ok_or_else(|| anyhow::anyhow!("no etcd options"))?;
        assert_eq!(set.cert_dir.to_str(), Some("/etc/kubernetes/ssl/etcd"));
        assert_eq!(set.etcdctl.to_str(), Some("/usr/local/bin/etcdctl"));
        assert_eq!(set.endpoint.as_deref(), Some("https://10.0.0.1:2379"));
        assert!(set.ssh.become_root);
        assert_eq!(set.ssh.config.as_deref(), Some("/tmp/ssh_config".as_ref()));
        assert_eq!(set.ssh.options, ["Port=2222"]);
        assert_eq!(set.ca_file, None);
        let kubeadm = options(&[
            "--etcd-snapshot",
            "--etcd-ca",
            "/etc/kubernetes/pki/etcd/ca.crt",
            "--etcd-cert",
            "healthcheck-client.crt",
            "--etcd-key",
            "healthcheck-client.key",
        ])?
        .etcd_snapshot
        .ok_or_else(|| anyhow::anyhow!("no etcd options"))?;
        assert_eq!(
            [kubeadm.ca_file, kubeadm.cert_file, kubeadm.key_file].map(|f| f.unwrap_or_default()),
            [
                "/etc/kubernetes/pki/etcd/ca.crt",
                "healthcheck-client.crt",
                "healthcheck-client.key"
            ]
            .map(std::path::PathBuf::from)
        );
        // The older spelling still works.
        assert!(
            options(&["--etcd-snapshot", "--become-root"])?
                .etcd_snapshot
                .is_some_and(|etcd| etcd.ssh.become_root)
        );
        // The etcd settings mean nothing without --etcd-snapshot.
        for flag in ["--etcd-cert-dir", "--etcd-ca", "--etcd-cert", "--etcd-key"] {
            let err = options(&[flag, "/x"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("--etcd-snapshot"), "{flag}: {err}");
        }
        Ok(())
    }
}
