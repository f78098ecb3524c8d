//! `cargo xtask bench`: what the hand-over costs the cluster, and what the backup costs the
//! machine. Speed and memory targets live here, never in timed tests.
//!
//! For each strategy (`adopt`, `replace`): a fresh testbed with `--nodes` kwok nodes, the objects
//! Kubespray v2.27.1 applies with Hubble fully on (the rendered `hubble-full` case of the upstream
//! artefacts, `CILIUM_MIGRATE_UPSTREAM`, and that case's inventory), the agent availability monitor (`testbed::monitor`) running, then
//! the whole migration with `apply` and `yes` in a child process. Reported per strategy: the
//! most nodes at once without a Ready agent, the longest gap on one node, node-seconds without an
//! agent, whether the `cilium` DaemonSet was deleted, and the tool's own time apart from waiting,
//! measured as the CPU time (user + system) of the migration process and the `helm` processes it
//! ran, handing over to the released 1.15.9 chart (the flow does not report its waits separately, so wall time minus waits is not known).
//! On kwok nothing runs a datapath: a gap is the time from an agent pod's deletion to its
//! replacement becoming Ready, i.e. real controller, scheduler and kwok latency, not packet loss.
//!
//! The backup benchmark: a testbed with those objects and `--objects` `cilium.io` objects
//! (CiliumEndpoints, CiliumIdentities, CiliumNetworkPolicies); first with a tenth of them, then
//! with all, it runs `cargo xtask backup` and `kubectl get <those kinds> -A -o yaml > file` each in
//! a child process and reports wall time and peak resident memory of each. The backup pages and
//! streams to disk, so its memory stays flat as the cluster grows; kubectl's grows with it.
//!
//! Every child is measured by a fresh intermediate process (`bench measure`, see
//! [`measure`]) with `getrusage(RUSAGE_CHILDREN)`.

mod measure;
mod objects;
mod strategy;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use testbed::fixtures::{self, FixtureOptions};
use testbed::{Options, Testbed, Tools};

use cilium_migrate::ui::{self, Output};
use measure::Measurement;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Nodes of each strategy's testbed (node1 is the control plane).
    #[arg(long, default_value_t = 20)]
    nodes: usize,
    /// `cilium.io` objects for the backup benchmark (it also runs with a tenth of them).
    #[arg(long, default_value_t = 50_000)]
    objects: usize,
    /// Which strategies to run (`none`: only the backup benchmark).
    #[arg(long, value_enum, default_value = "both")]
    strategy: Strategies,
    /// Skip the backup benchmark.
    #[arg(long)]
    skip_backup: bool,
    /// Where testbeds, bundles and logs go (default: target/bench; emptied first).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Run a program and print its wall time, CPU time and peak memory as JSON (internal).
    #[command(hide = true)]
    Measure(measure::Args),
    /// Run the migration flow on a testbed, as the bench does (internal).
    #[command(hide = true)]
    RunFlow(strategy::FlowArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Strategies {
    Adopt,
    Replace,
    Both,
    None,
}

impl Strategies {
    fn list(self) -> Vec<strategy::Name> {
        match self {
            Strategies::Adopt => vec![strategy::Name::Adopt],
            Strategies::Replace => vec![strategy::Name::Replace],
            Strategies::Both => vec![strategy::Name::Adopt, strategy::Name::Replace],
            Strategies::None => Vec::new(),
        }
    }
}

/// How this binary was built: the children it measures are this binary too, so the numbers of a
/// debug build (`cargo xtask`) are slower than an operator's release build would be.
pub(crate) const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// The Kubespray render the bench seeds: v2.27.1 with Hubble, relay, UI, certgen and metrics.
const BENCH_CASE: (&str, &str) = ("hubble-full", "v2.27.1");
/// The released chart the bench hands over to (the Cilium that v2.27.1 runs).
const BENCH_CHART: &str = "1.15.9";

/// What the bench seeds and hands over to, from the upstream artefacts.
pub(crate) struct Inputs {
    /// Kubespray's render (objects and the inventory they came from).
    pub(crate) case: upstream::RenderedCase,
    /// The released chart archive.
    pub(crate) chart: PathBuf,
}

impl Inputs {
    fn locate() -> anyhow::Result<Inputs> {
        let upstream =
            upstream::Upstream::locate().map_err(|missing| anyhow::anyhow!("{missing}"))?;
        let (case, tag) = BENCH_CASE;
        Ok(Inputs {
            case: upstream
                .rendered_case(case, tag)
                .map_err(anyhow::Error::msg)?,
            chart: upstream.chart(BENCH_CHART).map_err(anyhow::Error::msg)?,
        })
    }
}

/// How long a testbed start-up condition may take (20 nodes, 2 cores, busy machine).
const TESTBED_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Command::Measure(args)) => return measure::run(args),
        Some(Command::RunFlow(args)) => return strategy::run_flow(args),
        None => {}
    }
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(
        args.skip_backup || args.objects >= 10,
        "--objects must be at least 10 (the backup also runs with a tenth of them), or pass --skip-backup"
    );
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| testbed::tools::workspace_root().join("target/bench"));
    let inputs = Inputs::locate()?;
    prepare_work_dir(&work)?;
    let tools = crate::testbed::build_tools(false)?.tools;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let mut results = serde_json::Map::new();
    let mut text = String::new();
    for name in args.strategy.list() {
        eprintln!("bench: {name} on {} nodes", args.nodes);
        let result = runtime.block_on(strategy::bench(
            name,
            args.nodes,
            &tools,
            &inputs,
            &work.join(name.as_str()),
        ))?;
        text.push_str(&result.text());
        results.insert(name.as_str().to_owned(), result.json());
    }
    if !args.skip_backup {
        let backup = runtime.block_on(backup_bench(
            args.objects,
            &tools,
            &inputs,
            &work.join("backup"),
        ))?;
        text.push_str(&backup_text(&backup));
        results.insert("backup".to_owned(), backup_json(&backup));
    }
    eprintln!("bench: done in {:.0?}", started.elapsed());
    text.push_str(&format!(
        "(measured with a {BUILD_PROFILE} build of xtask; for release numbers: cargo run --release -p xtask -- bench)\n"
    ));
    match args.output {
        Output::Text => print!("{text}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(&Value::Object(results))?),
    }
    Ok(())
}

/// What a bench leaves in its work directory: one directory per run.
const WORK_ENTRIES: [&str; 3] = ["adopt", "replace", "backup"];

/// Empties (or creates) the work directory. Refuses a directory holding anything a bench did not
/// write, or a testbed of an earlier bench that still runs.
fn prepare_work_dir(work: &Path) -> anyhow::Result<()> {
    if work.exists() {
        for entry in
            std::fs::read_dir(work).with_context(|| format!("reading {}", work.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            anyhow::ensure!(
                WORK_ENTRIES.iter().any(|known| name == *known),
                "--work-dir {}: holds {:?}, which no bench wrote; the bench empties its work \
                 directory, so pass a new or bench-only directory",
                work.display(),
                name
            );
            let dir = entry.path().join("testbed");
            if let Ok(old) = Testbed::from_state(&dir)
                && old.status().processes.iter().any(|p| p.alive)
            {
                anyhow::bail!(
                    "a testbed of an earlier bench still runs in {}; stop it with \
                     `cargo xtask testbed down --state-dir {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
        std::fs::remove_dir_all(work).with_context(|| format!("emptying {}", work.display()))?;
    }
    std::fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))
}

/// Starts a testbed and seeds Kubespray's objects of the bench's case, and the run-time objects
/// of its nodes.
pub(crate) async fn seeded_testbed(
    nodes: usize,
    tools: &Tools,
    inputs: &Inputs,
    state_dir: &Path,
) -> anyhow::Result<Testbed> {
    let started = Instant::now();
    let testbed = Testbed::up(&Options {
        nodes,
        state_dir: state_dir.to_path_buf(),
        tools: tools.clone(),
        timeout: TESTBED_TIMEOUT,
    })
    .await
    .context("starting the testbed")?;
    eprintln!(
        "bench: testbed with {nodes} nodes up in {:.0?}",
        started.elapsed()
    );
    let options = FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    };
    let (kubectl, kubeconfig) = (tools.kubectl.clone(), testbed.kubeconfig().to_path_buf());
    let objects_yaml = inputs.case.file("objects.yaml");
    tokio::task::spawn_blocking(move || {
        fixtures::template_era(&kubectl, &kubeconfig, &objects_yaml, &options)
    })
    .await??;
    eprintln!("bench: Kubespray's objects of {} seeded", inputs.case.id());
    Ok(testbed)
}

/// One backup measurement at one size.
struct BackupRun {
    objects: usize,
    backup: Measurement,
    bundle_bytes: u64,
    kubectl: Measurement,
    yaml_bytes: u64,
}

async fn backup_bench(
    total: usize,
    tools: &Tools,
    inputs: &Inputs,
    work: &Path,
) -> anyhow::Result<Vec<BackupRun>> {
    eprintln!(
        "bench: backup of {} and {total} cilium.io objects",
        total / 10
    );
    let testbed = seeded_testbed(3, tools, inputs, &work.join("testbed")).await?;
    let client = testbed.client().await?;
    objects::create_namespaces(&client).await?;
    let mut runs = Vec::new();
    let mut created = 0;
    for size in [total / 10, total] {
        objects::create(&client, created, size).await?;
        created = size;
        let kubeconfig = testbed.kubeconfig().to_path_buf();
        let (tools, work) = (tools.clone(), work.to_path_buf());
        let run =
            tokio::task::spawn_blocking(move || measure_backup(size, &tools, &kubeconfig, &work))
                .await??;
        eprintln!(
            "bench: {size} objects: backup {:.1}s {:.0} MiB; kubectl {:.1}s {:.0} MiB",
            run.backup.wall_seconds,
            run.backup.max_rss_mib(),
            run.kubectl.wall_seconds,
            run.kubectl.max_rss_mib()
        );
        runs.push(run);
    }
    testbed.down()?;
    Ok(runs)
}

fn measure_backup(
    size: usize,
    tools: &Tools,
    kubeconfig: &Path,
    work: &Path,
) -> anyhow::Result<BackupRun> {
    let me = std::env::current_exe()?;
    let bundle = work.join(format!("bundle-{size}"));
    let backup = measure::measure(
        &me,
        &[
            "backup".into(),
            "--bundle".into(),
            bundle.clone().into(),
            "--kubeconfig".into(),
            kubeconfig.into(),
        ],
        Some(&work.join(format!("backup-{size}.out"))),
        Some(&work.join(format!("backup-{size}.log"))),
    )?;
    let bundle_bytes = tree_size(&bundle);
    let yaml = work.join(format!("kubectl-{size}.yaml"));
    let kubectl = measure::measure(
        &tools.kubectl,
        &[
            "--kubeconfig".into(),
            kubeconfig.into(),
            "get".into(),
            objects::KINDS.into(),
            "--all-namespaces".into(),
            "--output=yaml".into(),
        ],
        Some(&yaml),
        Some(&work.join(format!("kubectl-{size}.log"))),
    )?;
    let yaml_bytes = std::fs::metadata(&yaml).map(|m| m.len()).unwrap_or(0);
    // The copies are big and only their size matters.
    let _ = std::fs::remove_dir_all(&bundle);
    let _ = std::fs::remove_file(&yaml);
    Ok(BackupRun {
        objects: size,
        backup,
        bundle_bytes,
        kubectl,
        yaml_bytes,
    })
}

/// Bytes of every file under `dir`.
fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => tree_size(&entry.path()),
            _ => entry.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn backup_text(runs: &[BackupRun]) -> String {
    let mut rows = Vec::new();
    for run in runs {
        for (what, measurement, bytes) in [
            ("cargo xtask backup", &run.backup, run.bundle_bytes),
            ("kubectl get -o yaml", &run.kubectl, run.yaml_bytes),
        ] {
            rows.push(vec![
                run.objects.to_string(),
                what.to_owned(),
                format!("{:.1}s", measurement.wall_seconds),
                format!("{:.1}s", measurement.cpu_seconds()),
                format!("{:.1} MiB", measurement.max_rss_mib()),
                mib(bytes),
            ]);
        }
    }
    let mut text = ui::heading(
        "backup of cilium.io objects (endpoints, identities, policies)",
        false,
    );
    text.push('\n');
    text.push_str(&ui::table(
        &["objects", "tool", "wall", "cpu", "peak memory", "output"],
        &rows,
    ));
    if let [small, large] = runs {
        text.push_str(&format!(
            "peak memory from {} to {} objects: backup x{:.2}, kubectl x{:.2}\n",
            small.objects,
            large.objects,
            large.backup.max_rss_mib() / small.backup.max_rss_mib().max(1e-9),
            large.kubectl.max_rss_mib() / small.kubectl.max_rss_mib().max(1e-9)
        ));
    }
    text.push_str(
        "(the backup holds every cilium.io kind plus the hand-over objects, and reads its files back to check them; \
         kubectl gets the three kinds)\n\n",
    );
    text
}

fn backup_json(runs: &[BackupRun]) -> Value {
    let one = |m: &Measurement, bytes: u64| {
        json!({
            "wall_seconds": m.wall_seconds,
            "cpu_seconds": m.cpu_seconds(),
            "peak_rss_mib": m.max_rss_mib(),
            "output_bytes": bytes,
        })
    };
    json!({
        "kinds": objects::KINDS,
        "build_profile": BUILD_PROFILE,
        "memory": "peak resident set (ru_maxrss) of the child process, from getrusage(RUSAGE_CHILDREN) in a fresh intermediate process",
        "runs": runs.iter().map(|run| json!({
            "objects": run.objects,
            "backup": one(&run.backup, run.bundle_bytes),
            "kubectl_get_yaml": one(&run.kubectl, run.yaml_bytes),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_dir_is_emptied_only_when_a_bench_wrote_it() {
        let work = std::env::temp_dir().join(format!("xtask-bench-work-{}", std::process::id()));
        std::fs::create_dir_all(work.join("adopt/bundle")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(work.join("adopt/migrate.log"), "log").unwrap_or_else(|e| panic!("{e}"));
        prepare_work_dir(&work).unwrap_or_else(|e| panic!("{e}"));
        assert!(work.is_dir());
        assert!(!work.join("adopt").exists(), "an earlier run's files go");

        std::fs::write(work.join("notes.txt"), "mine").unwrap_or_else(|e| panic!("{e}"));
        let error = prepare_work_dir(&work)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            error.contains("notes.txt") && error.contains("--work-dir"),
            "{error}"
        );
        assert!(
            work.join("notes.txt").exists(),
            "nothing is removed on error"
        );
        std::fs::remove_dir_all(&work).unwrap_or_else(|e| panic!("{e}"));
    }
}
