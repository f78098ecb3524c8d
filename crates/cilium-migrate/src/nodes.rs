//! `cilium-migrate nodes check|fix`: the node directories the unprivileged Cilium agent must write.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use cni_fs::{Access, FixPaths, Node, NodeFix, NodeReport, PodAccess, Ssh};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Show owner, group and mode of each directory and whether the agent can create files there;
    /// exits non-zero when any directory would make the agent fail.
    Check(Common),
    /// Make the directories root:root and writable by root only (shows the plan without --apply).
    Fix {
        #[command(flatten)]
        common: Common,
        /// Change the nodes (without it, only show what would change).
        #[arg(long)]
        apply: bool,
        /// Allow a --path outside /opt/cni/bin and /etc/cni/net.d: the fix makes everything
        /// under it root:root (`/` and paths with `..` are always refused).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Via {
    /// The system `ssh` to each inventory host (honours ~/.ssh/config, agents, jump hosts).
    Ssh,
    /// A short-lived privileged pod per node, with the Cilium image already on the node.
    Pod,
    /// This machine (run the tool on the node); needs no inventory.
    Local,
}

use crate::output::{Output, OutputArg};

#[derive(clap::Args)]
struct Common {
    /// The Kubespray inventory (directory or inventory file); its hosts are the nodes.
    #[arg(long, value_name = "DIR", env = "KUBESPRAY_INVENTORY")]
    inventory: Option<PathBuf>,
    /// How to reach the nodes.
    #[arg(long, value_enum, default_value = "ssh")]
    via: Via,
    /// The directories to check (default: /opt/cni/bin /etc/cni/net.d).
    #[arg(long = "path", value_name = "DIR", num_args = 1..)]
    paths: Vec<PathBuf>,
    /// Only these nodes (inventory host or Kubernetes node names; repeatable).
    #[arg(long = "node", value_name = "NAME")]
    nodes: Vec<String>,
    /// Inventory group whose hosts run the agent.
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
    /// pod: kubeconfig (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// pod: namespace for the pods (and of the Cilium DaemonSet whose image they use).
    #[arg(long, default_value = "kube-system")]
    namespace: String,
    /// pod: image to run (default: the running agent's image, already on every node).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// pod: how long each pod may take.
    #[arg(long, value_name = "DURATION", value_parser = crate::verify::parse_duration, default_value = "2m")]
    pod_timeout: Duration,
    #[command(flatten)]
    output: OutputArg,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: Args) -> anyhow::Result<()> {
    let (common, apply, force) = match &args.action {
        Action::Check(common) => (common, None, false),
        Action::Fix {
            common,
            apply,
            force,
        } => (common, Some(*apply), *force),
    };
    let paths: Vec<PathBuf> = if common.paths.is_empty() {
        cni_fs::DEFAULT_PATHS.iter().map(PathBuf::from).collect()
    } else {
        common.paths.clone()
    };
    // Refuse a bad --path before reaching any node.
    let fix_paths = match apply {
        Some(_) => Some(FixPaths::new(&paths, force)?),
        None => None,
    };
    let (access, nodes) = connect(common).await?;
    // --via local reaches this machine only: the others are named as not checked.
    let (nodes, unchecked) = access.reach(&nodes);
    if matches!(access, Access::Local) && common.inventory.is_none() {
        eprintln!(
            "note: --via local inspects only this machine ({}); the other nodes are not checked \
             (pass --inventory to list them, or use --via ssh or --via pod)",
            nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut failed = Vec::new();
    match fix_paths.zip(apply) {
        None => {
            let mut reports = Vec::new();
            for node in &nodes {
                match access.inspect(node, &paths).await {
                    Ok(report) => reports.push(report),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            reports.extend(unchecked);
            print_check(&reports, common.output.output)?;
            finish(&reports, &failed)
        }
        Some((fix_paths, apply)) => {
            let mut fixes = Vec::new();
            for node in &nodes {
                match access.fix(node, &fix_paths, apply).await {
                    Ok(fix) => fixes.push(fix),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            print_fix(&fixes, common.output.output)?;
            for report in &unchecked {
                eprintln!("note: {}: not fixed: {}", report.node, report.outcome());
            }
            if apply {
                let after: Vec<NodeReport> = fixes.iter().filter_map(|f| f.after.clone()).collect();
                finish(&after, &failed)
            } else if failed.is_empty() {
                Ok(())
            } else {
                bail!("could not inspect:\n  {}", failed.join("\n  "))
            }
        }
    }
}

fn finish(reports: &[NodeReport], failed: &[String]) -> anyhow::Result<()> {
    let summary = cni_fs::failure_summary(reports);
    match (summary.is_empty(), failed.is_empty()) {
        (true, true) => Ok(()),
        (false, _) => bail!(
            "the Cilium agent would fail with `{}`:\n{summary}{}\nfix: cilium-migrate nodes fix --apply",
            cni_fs::HOSTBIN_ERROR,
            failed
                .iter()
                .map(|f| format!("\n  {f}"))
                .collect::<String>()
        ),
        (true, false) => bail!("could not inspect:\n  {}", failed.join("\n  ")),
    }
}

fn print_check(reports: &[NodeReport], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Text if reports.is_empty() => {}
        Output::Text => print!("{}", cni_fs::render_check(reports)),
        Output::Json => println!("{}", serde_json::to_string_pretty(reports)?),
    }
    Ok(())
}

fn print_fix(fixes: &[NodeFix], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Text if fixes.is_empty() => {}
        Output::Text => {
            // After --apply the table shows the result, before it the current state.
            let state: Vec<NodeReport> = fixes
                .iter()
                .map(|f| f.after.clone().unwrap_or_else(|| f.before.clone()))
                .collect();
            print!("{}", cni_fs::render_check(&state));
            println!();
            print!("{}", cni_fs::render_fix(fixes));
        }
        Output::Json => println!("{}", serde_json::to_string_pretty(fixes)?),
    }
    Ok(())
}

/// The access method and the nodes it reaches.
async fn connect(common: &Common) -> anyhow::Result<(Access, Vec<Node>)> {
    let access = match common.via {
        Via::Local => {
            // With an inventory its hosts are listed, so the ones not reached can be named.
            let nodes = match &common.inventory {
                Some(_) => inventory_nodes(common)?,
                None => vec![Node::this_machine()],
            };
            return Ok((Access::Local, Node::select(nodes, &common.nodes)?));
        }
        Via::Ssh => Access::Ssh(Ssh {
            program: None,
            config: common.ssh_config.clone(),
            options: common.ssh_option.clone(),
            become_root: common.become_root,
        }),
        Via::Pod => {
            let client = crate::cluster::client(common.kubeconfig.as_deref()).await?;
            let image = match &common.image {
                Some(image) => image.clone(),
                None => cni_fs::cilium_agent_image(&client, &common.namespace).await?,
            };
            let nodes = if common.inventory.is_some() {
                inventory_nodes(common)?
            } else {
                Node::of_cluster(&client).await?
            };
            let access = Access::Pod(PodAccess {
                client,
                namespace: common.namespace.clone(),
                image,
                timeout: common.pod_timeout,
            });
            return Ok((access, Node::select(nodes, &common.nodes)?));
        }
    };
    Ok((
        access,
        Node::select(inventory_nodes(common)?, &common.nodes)?,
    ))
}

/// The inventory's hosts in `--group`, as nodes.
fn inventory_nodes(common: &Common) -> anyhow::Result<Vec<Node>> {
    let Some(dir) = &common.inventory else {
        bail!(
            "--via ssh needs --inventory DIR (the Kubespray inventory), or use --via local on the node"
        );
    };
    crate::cluster::inventory_nodes(dir, &common.group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        action: Action,
    }

    fn common(args: &[&str]) -> Common {
        let cli =
            Cli::try_parse_from(std::iter::once("nodes").chain(args.iter().copied())).unwrap();
        match cli.action {
            Action::Check(common) | Action::Fix { common, .. } => common,
        }
    }

    fn example() -> String {
        upstream::project_root()
            .join("examples/homelab")
            .display()
            .to_string()
    }

    fn run_cli(args: &[&str]) -> anyhow::Result<()> {
        let cli = Cli::try_parse_from(std::iter::once("nodes").chain(args.iter().copied()))?;
        run(Args { action: cli.action })
    }

    #[test]
    fn fix_refuses_paths_outside_the_cni_directories_unless_forced_and_root_or_dotdot_always() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().display().to_string();
        for (args, refused) in [
            (vec!["fix", "--via", "local", "--path", &outside], true),
            (vec!["fix", "--via", "local", "--path", "/opt"], true),
            (
                vec!["fix", "--via", "local", "--path", "/opt/cni/bin/../../.."],
                true,
            ),
            (
                vec!["fix", "--via", "local", "--force", "--path", "/", "--apply"],
                true,
            ),
            (
                vec![
                    "fix",
                    "--via",
                    "local",
                    "--force",
                    "--path",
                    "/opt/cni/bin/../..",
                    "--apply",
                ],
                true,
            ),
            (vec!["check", "--via", "local", "--path", "/"], true),
            (
                vec!["fix", "--via", "local", "--force", "--path", &outside],
                false,
            ),
        ] {
            let result = run_cli(&args);
            if refused {
                let err = format!("{:#}", result.expect_err(&args.join(" ")));
                assert!(err.contains("path \""), "{args:?}: {err}");
            } else {
                result.unwrap_or_else(|e| panic!("{args:?}: {e:#}"));
            }
        }
        let err = format!(
            "{:#}",
            run_cli(&["fix", "--via", "local", "--path", &outside]).unwrap_err()
        );
        assert!(
            err.contains("/opt/cni/bin")
                && err.contains("/etc/cni/net.d")
                && err.contains("--force"),
            "{err}"
        );
    }

    #[test]
    fn via_local_with_an_inventory_names_the_nodes_it_does_not_check() {
        let c = common(&["check", "--via", "local", "--inventory", &example()]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (access, nodes) = rt.block_on(connect(&c)).unwrap();
        let (reached, unchecked) = access.reach(&nodes);
        assert_eq!(reached, [Node::this_machine()]);
        let unchecked: Vec<&str> = unchecked.iter().map(|r| r.node.as_str()).collect();
        assert_eq!(unchecked, ["cp1", "worker1", "worker2"]);
        // Without an inventory: this machine.
        let (_, nodes) = rt
            .block_on(connect(&common(&["check", "--via", "local"])))
            .unwrap();
        assert_eq!(nodes, [Node::this_machine()]);
    }

    #[test]
    fn inventory_hosts_become_nodes_with_their_ssh_address() {
        let nodes = inventory_nodes(&common(&["check", "--inventory", &example()])).unwrap();
        let got: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.address.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("cp1", "192.168.1.10"),
                ("worker1", "192.168.1.11"),
                ("worker2", "192.168.1.12")
            ]
        );
        assert_eq!(
            nodes[0].user, None,
            "ssh config decides when the inventory says nothing"
        );
    }

    #[test]
    fn node_filter_and_group_errors_name_the_fix() {
        let c = common(&[
            "fix",
            "--inventory",
            &example(),
            "--node",
            "worker2",
            "--apply",
        ]);
        let nodes = Node::select(inventory_nodes(&c).unwrap(), &c.nodes).unwrap();
        assert_eq!(nodes.len(), 1);
        let err = Node::select(inventory_nodes(&c).unwrap(), &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope") && err.contains("worker1"), "{err}");
        let err = inventory_nodes(&common(&[
            "check",
            "--inventory",
            &example(),
            "--group",
            "calico_rr",
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("no hosts in group calico_rr") && err.contains("--group"),
            "{err}"
        );
        let err = inventory_nodes(&common(&["check"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--inventory") && err.contains("--via local"),
            "{err}"
        );
    }
}
