//! One strategy's run: testbed, fixture, monitor, the migration in a measured child process.
//!
//! The child is this binary's hidden `bench run-flow`, which calls `migration::flow::run` with
//! `apply` and `yes` on the testbed (the released chart, the testbed's helm, the node directory
//! check skipped: kwok nodes have no file system) and prints the phases it went through as JSON.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use kube::runtime::wait::await_condition;
use migration::flow::{self, MigrateOptions, NodeCheck, Outcome, Plan, Progress};
use migration::journal::Strategy;
use serde_json::{Value, json};
use testbed::Tools;
use testbed::monitor::{
    AGENT_DAEMONSET, AGENT_NAMESPACE, AGENT_SELECTOR, AgentMonitor, AvailabilityReport,
};

use super::measure::{self, Measurement};
use cilium_migrate::ui;

/// The label the DaemonSet controller puts on its pods and ControllerRevisions.
const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// How long every node may take to get a Ready agent, before and after the migration.
const AGENTS_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a progress line is printed while the migration runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Verification checks that cannot pass on kwok, so they do not block the run: no agent runs to
/// write CiliumEndpoints for the Hubble pods, and the flow does not (yet) take the envoy
/// DaemonSet's "disabled" (not installed, as in Cilium 1.15) for a pass.
const IGNORED_CHECKS: [&str; 2] = ["pods managed by Cilium", "DaemonSet cilium-envoy"];

/// A strategy the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Adopt,
    Replace,
}

impl Name {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Name::Adopt => "adopt",
            Name::Replace => "replace",
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one strategy's run measured.
pub(crate) struct StrategyResult {
    name: Name,
    availability: AvailabilityReport,
    migrate: Measurement,
    /// `[(phase, seconds)]` as the flow reported them.
    phases: Vec<(String, f64)>,
    /// Agent pods on the DaemonSet's current template at the end, and all agent pods.
    template: (usize, usize),
}

impl StrategyResult {
    fn longest_gap(&self) -> (f64, String) {
        self.availability
            .longest_gap
            .as_ref()
            .map(|gap| (gap.duration().as_secs_f64(), gap.node.clone()))
            .unwrap_or((0.0, String::new()))
    }

    /// The table of this strategy.
    pub(crate) fn text(&self) -> String {
        let report = &self.availability;
        let (longest, node) = self.longest_gap();
        let rows = vec![
            vec!["nodes".to_owned(), format!("{}", report.nodes)],
            vec![
                "most nodes at once without a Ready agent".to_owned(),
                report.max_nodes_without_agent.to_string(),
            ],
            vec![
                "longest gap on one node".to_owned(),
                if node.is_empty() {
                    "none".to_owned()
                } else {
                    format!("{longest:.2}s ({node})")
                },
            ],
            vec![
                "node-seconds without an agent".to_owned(),
                format!("{:.2}", report.node_seconds_without_agent()),
            ],
            vec![
                "agent pods replaced".to_owned(),
                format!("{} of {}", report.agents_replaced, report.agents_at_start),
            ],
            vec![
                "agent pods on the chart's pod template at the end".to_owned(),
                format!("{} of {}", self.template.0, self.template.1),
            ],
            vec![
                "DaemonSet deleted".to_owned(),
                if report.daemonset.deleted {
                    format!("yes (UIDs {})", report.daemonset.uids.join(" -> "))
                } else {
                    "no".to_owned()
                },
            ],
            vec![
                "tool's own time (CPU, migrate + helm)".to_owned(),
                format!(
                    "{:.2}s (user {:.2}s, system {:.2}s)",
                    self.migrate.cpu_seconds(),
                    self.migrate.user_seconds,
                    self.migrate.system_seconds
                ),
            ],
            vec![
                "migration wall time".to_owned(),
                format!("{:.2}s", self.migrate.wall_seconds),
            ],
            vec![
                "steps (wall)".to_owned(),
                self.phases
                    .iter()
                    .map(|(name, seconds)| format!("{name} {seconds:.1}s"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ],
        ];
        let mut text = ui::heading(&format!("strategy {}", self.name), false);
        text.push('\n');
        text.push_str(&ui::table(&["measure", "value"], &rows));
        if !report.nodes_without_agent_at_end.is_empty() {
            text.push_str(&format!(
                "still without a Ready agent at the end: {}\n",
                report.nodes_without_agent_at_end.join(", ")
            ));
        }
        let (current, all) = self.template;
        if current < all {
            text.push_str(&format!(
                "{} of {all} agent pods still run an older pod template: the DaemonSet took them over and counts \
                 them as up to date (same pod-template-generation), so they change only when restarted\n",
                all - current
            ));
        }
        text.push_str(
            "(kwok runs no datapath: a gap is the time from an agent pod's deletion to its replacement being Ready)\n\n",
        );
        text
    }

    /// The JSON object of this strategy.
    pub(crate) fn json(&self) -> Value {
        let report = &self.availability;
        let (longest, node) = self.longest_gap();
        json!({
            "nodes": report.nodes,
            "max_nodes_without_agent": report.max_nodes_without_agent,
            "longest_gap_seconds": longest,
            "longest_gap_node": if node.is_empty() { Value::Null } else { Value::from(node) },
            "node_seconds_without_agent": report.node_seconds_without_agent(),
            "daemonset_deleted": report.daemonset.deleted,
            "daemonset_uids": report.daemonset.uids,
            "agents_at_start": report.agents_at_start,
            "agents_replaced": report.agents_replaced,
            "agents_on_current_template": self.template.0,
            "agents_at_end": self.template.1,
            "nodes_without_agent_at_end": report.nodes_without_agent_at_end,
            "tool_seconds": self.migrate.cpu_seconds(),
            "tool_seconds_method": "CPU time (user + system) of the migration process and the helm processes it ran",
            "migrate_wall_seconds": self.migrate.wall_seconds,
            "build_profile": super::BUILD_PROFILE,
            "migrate_peak_rss_mib": self.migrate.max_rss_mib(),
            "observed_seconds": report.observed.as_secs_f64(),
            "steps": self.phases.iter().map(|(name, seconds)| json!({ "name": name, "seconds": seconds })).collect::<Vec<_>>(),
            "gaps": report.gaps.iter().map(|gap| json!({
                "node": gap.node,
                "start_seconds": gap.start.as_secs_f64(),
                "end_seconds": gap.end.as_secs_f64(),
                "open": gap.open,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Runs one strategy on a fresh testbed of `nodes` nodes in `work`.
pub(crate) async fn bench(
    name: Name,
    nodes: usize,
    tools: &Tools,
    inputs: &super::Inputs,
    work: &Path,
) -> anyhow::Result<StrategyResult> {
    let testbed = super::seeded_testbed(nodes, tools, inputs, &work.join("testbed")).await?;
    let client = testbed.client().await?;
    // The inventory the objects were rendered from, copied: the hand-over edits it.
    let inventory = inputs
        .case
        .inventory_copy(&work.join("inventory"))
        .with_context(|| format!("copying the inventory of {}", inputs.case.id()))?;

    let monitor = AgentMonitor::start(&client, testbed.nodes());
    wait_for_agents(&monitor, "before the migration").await?;

    let child_args: Vec<OsString> = vec![
        "bench".into(),
        "run-flow".into(),
        "--kubeconfig".into(),
        testbed.kubeconfig().into(),
        "--inventory".into(),
        inventory.into(),
        "--bundle".into(),
        work.join("bundle").into(),
        "--strategy".into(),
        name.as_str().into(),
        "--helm".into(),
        tools.helm.clone().into(),
        "--chart".into(),
        inputs.chart.clone().into(),
    ];
    let me = std::env::current_exe().context("finding the xtask binary")?;
    let (out, log) = (work.join("migrate.json"), work.join("migrate.log"));
    let (out_child, log_child) = (out.clone(), log.clone());
    eprintln!("bench: {name}: migrating (log in {})", log.display());
    let mut child = tokio::task::spawn_blocking(move || {
        measure::measure(&me, &child_args, Some(&out_child), Some(&log_child))
    });
    let migrate = loop {
        tokio::select! {
            result = &mut child => break result??,
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                let without = monitor.inspect(|log| log.nodes_without_agent());
                let report = monitor.report();
                eprintln!(
                    "bench: {name}: {:.0?} in; now without a Ready agent: {}; most at once so far: {}",
                    monitor.elapsed(),
                    if without.is_empty() { "none".to_owned() } else { without.join(", ") },
                    report.max_nodes_without_agent,
                );
            }
        }
    };
    // The flow may return before the DaemonSet has rolled every node (a replacing install
    // adopts the orphaned pods and rolls them afterwards): the gaps of that rollout count too.
    wait_for_rollout(&client, &monitor).await?;
    wait_for_agents(&monitor, "after the migration").await?;
    let availability = monitor.stop();
    let template = agents_on_current_template(&client).await?;
    let phases = read_phases(&out)?;
    testbed.down()?;
    Ok(StrategyResult {
        name,
        availability,
        migrate,
        phases,
        template,
    })
}

/// How many agent pods run the DaemonSet's current pod template, of how many: a pod is current
/// when its `controller-revision-hash` is the hash of the DaemonSet's newest ControllerRevision.
async fn agents_on_current_template(client: &kube::Client) -> anyhow::Result<(usize, usize)> {
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let daemonset = daemonsets
        .get(AGENT_DAEMONSET)
        .await
        .context("reading the cilium DaemonSet")?;
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let selector = ListParams::default().labels(AGENT_SELECTOR);
    let newest = revisions
        .list(&selector)
        .await
        .context("listing the agent's ControllerRevisions")?
        .items
        .into_iter()
        .filter(|revision| {
            revision
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| Some(&owner.uid) == daemonset.metadata.uid.as_ref())
        })
        .max_by_key(|revision| revision.revision);
    let hash = |labels: &Option<std::collections::BTreeMap<String, String>>| {
        labels
            .as_ref()
            .and_then(|labels| labels.get(REVISION_HASH_LABEL).cloned())
    };
    let current = newest.and_then(|revision| hash(&revision.metadata.labels));
    let pods: Api<Pod> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let pods = pods
        .list(&selector)
        .await
        .context("listing the agent pods")?
        .items;
    let on_current = pods
        .iter()
        .filter(|pod| current.is_some() && hash(&pod.metadata.labels) == current)
        .count();
    Ok((on_current, pods.len()))
}

async fn wait_for_rollout(client: &kube::Client, monitor: &AgentMonitor) -> anyhow::Result<()> {
    let started = Instant::now();
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
    let rolled_out = await_condition(
        daemonsets,
        AGENT_DAEMONSET,
        |daemonset: Option<&DaemonSet>| {
            daemonset.is_some_and(|d| verify::rollout::daemon_set_rollout(d).done)
        },
    );
    let mut rolled_out = std::pin::pin!(tokio::time::timeout(AGENTS_TIMEOUT, rolled_out));
    loop {
        tokio::select! {
            result = &mut rolled_out => {
                result
                    .context("waiting for the cilium DaemonSet's rollout after the migration")?
                    .context("watching the cilium DaemonSet")?;
                break;
            }
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                let without = monitor.inspect(|log| log.nodes_without_agent());
                eprintln!(
                    "bench: waiting for the DaemonSet's rollout ({:.0?}); now without a Ready agent: {}",
                    started.elapsed(),
                    if without.is_empty() { "none".to_owned() } else { without.join(", ") },
                );
            }
        }
    }
    eprintln!(
        "bench: the cilium DaemonSet has rolled out (waited {:.1?} after the migration)",
        started.elapsed()
    );
    Ok(())
}

async fn wait_for_agents(monitor: &AgentMonitor, when: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    monitor
        .wait_all_ready(AGENTS_TIMEOUT)
        .await
        .with_context(|| format!("waiting for every node's agent {when}"))?;
    eprintln!(
        "bench: every node has a Ready agent {when} (waited {:.1?})",
        started.elapsed()
    );
    Ok(())
}

fn read_phases(out: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not the JSON of `bench run-flow`", out.display()))?;
    Ok(value["phases"]
        .as_array()
        .map(|phases| {
            phases
                .iter()
                .map(|phase| {
                    (
                        phase["name"].as_str().unwrap_or_default().to_owned(),
                        phase["seconds"].as_f64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// `cargo xtask bench run-flow`: the migration as the bench runs it.
#[derive(clap::Args)]
pub(crate) struct FlowArgs {
    #[arg(long, value_name = "FILE")]
    kubeconfig: PathBuf,
    #[arg(long, value_name = "DIR")]
    inventory: PathBuf,
    #[arg(long, value_name = "DIR")]
    bundle: PathBuf,
    #[arg(long, value_name = "adopt|replace")]
    strategy: String,
    #[arg(long, value_name = "FILE")]
    helm: PathBuf,
    #[arg(long, value_name = "TGZ|DIR")]
    chart: PathBuf,
}

/// Records the flow's phases and says on stderr what runs.
#[derive(Default)]
struct Phases {
    done: Vec<(String, f64)>,
}

impl Progress for Phases {
    fn started(&mut self, name: &str, elapsed: Duration) {
        eprintln!("run-flow: {name} (at {:.1}s)", elapsed.as_secs_f64());
    }

    fn finished(&mut self, name: &str, took: Duration, error: Option<&str>) {
        match error {
            Some(error) => eprintln!("run-flow: {name} failed after {took:.1?}: {error}"),
            None => eprintln!("run-flow: {name} done in {took:.1?}"),
        }
        self.done.push((name.to_owned(), took.as_secs_f64()));
    }

    fn note(&mut self, message: &str) {
        eprintln!("run-flow: {message}");
    }

    fn confirm(&mut self, _: &Plan) -> bool {
        // `yes` is set: never asked.
        true
    }
}

pub(crate) fn run_flow(args: FlowArgs) -> anyhow::Result<()> {
    let strategy = match args.strategy.as_str() {
        "adopt" => Strategy::Adopt,
        "replace" => Strategy::Replace,
        other => anyhow::bail!("--strategy {other}: use adopt or replace"),
    };
    let mut options = MigrateOptions::new(&args.inventory);
    options.kubeconfig = Some(args.kubeconfig);
    options.bundle = Some(args.bundle);
    options.chart = helm::ChartSource::from_path(&args.chart)?;
    options.strategy = Some(strategy);
    options.nodes = NodeCheck::Skip;
    options.helm = Some(args.helm);
    options.ignore_checks = IGNORED_CHECKS.map(str::to_owned).to_vec();
    options.apply = true;
    options.yes = true;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut phases = Phases::default();
    let outcome = runtime
        .block_on(flow::run(&options, &mut phases))
        .context("the migration failed")?;
    let outcome_name = match &outcome {
        Outcome::AlreadyHandedOver { .. } => "already-handed-over",
        Outcome::Planned { .. } => "planned",
        Outcome::Migrated { .. } => "migrated",
    };
    anyhow::ensure!(
        outcome_name == "migrated",
        "the migration ended {outcome_name}, not migrated"
    );
    let json = json!({
        "outcome": outcome_name,
        "phases": phases.done.iter().map(|(name, seconds)| json!({ "name": name, "seconds": seconds })).collect::<Vec<_>>(),
    });
    println!("{json}");
    Ok(())
}
