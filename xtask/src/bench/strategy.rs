//! One strategy's run: testbed, fixture, monitor, the migration in a measured child process.
//!
//! The child is this binary's hidden `bench run-flow`, which calls `migration::flow::run` with
//! `apply` and `yes` on the testbed (the look-alike chart, the testbed's helm, the node directory
//! check skipped: kwok nodes have no file system) and prints the phases it went through as JSON.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use migration::flow::{self, MigrateOptions, NodeCheck, Outcome, Plan, Progress};
use migration::journal::Strategy;
use serde_json::{Value, json};
use testbed::Tools;
use testbed::monitor::{AgentMonitor, AvailabilityReport};

use super::measure::{self, Measurement};
use crate::ui;

/// How long every node may take to get a Ready agent, before and after the migration.
const AGENTS_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a progress line is printed while the migration runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Kubespray's sample inventory of the template era, relative to the workspace root.
const SAMPLE_INVENTORY: &str = "../shared/kubespray/samples/v2.27.1";

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
            "nodes_without_agent_at_end": report.nodes_without_agent_at_end,
            "tool_seconds": self.migrate.cpu_seconds(),
            "tool_seconds_method": "CPU time (user + system) of the migration process and the helm processes it ran",
            "migrate_wall_seconds": self.migrate.wall_seconds,
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
    work: &Path,
) -> anyhow::Result<StrategyResult> {
    let testbed = super::seeded_testbed(nodes, tools, &work.join("testbed")).await?;
    let client = testbed.client().await?;
    let inventory = inventory_copy(&work.join("inventory"))?;

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
        testbed::fixtures::chart_dir().into(),
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
    wait_for_agents(&monitor, "after the migration").await?;
    let availability = monitor.stop();
    let phases = read_phases(&out)?;
    testbed.down()?;
    Ok(StrategyResult {
        name,
        availability,
        migrate,
        phases,
    })
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

/// A copy of Kubespray v2.27.1's sample inventory that installs Cilium, as the fixture's cluster.
fn inventory_copy(into: &Path) -> anyhow::Result<PathBuf> {
    let sample = testbed::tools::workspace_root().join(SAMPLE_INVENTORY);
    anyhow::ensure!(
        sample.is_dir(),
        "the Kubespray sample inventory is missing at {}",
        sample.display()
    );
    copy_tree(&sample, into)?;
    let cluster = into.join("group_vars/k8s_cluster/k8s-cluster.yml");
    let text = std::fs::read_to_string(&cluster)
        .with_context(|| format!("reading {}", cluster.display()))?;
    anyhow::ensure!(
        text.contains("\nkube_network_plugin: calico\n"),
        "{}: expected `kube_network_plugin: calico` to switch to cilium",
        cluster.display()
    );
    std::fs::write(
        &cluster,
        text.replace(
            "\nkube_network_plugin: calico\n",
            "\nkube_network_plugin: cilium\n",
        ),
    )
    .with_context(|| format!("writing {}", cluster.display()))?;
    Ok(into.to_path_buf())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
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
    #[arg(long, value_name = "DIR")]
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
    options.chart = helm::ChartSource::Directory(args.chart);
    options.strategy = Some(strategy);
    options.nodes = NodeCheck::Skip;
    options.helm = Some(args.helm);
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
