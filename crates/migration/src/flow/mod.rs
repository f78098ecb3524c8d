//! The whole hand-over as one library call: [`run`] (what `cargo xtask migrate` does) and
//! [`rollback`] (what `cargo xtask rollback` does).
//!
//! [`run`] in order:
//! 1. **Detect** the era from the live cluster ([`crate::era`]) and the cluster's identity; a
//!    journal in the bundle written for another cluster is refused.
//! 2. **Plan** (always, read-only): values for the chart (the live `cilium-config` and the
//!    inventory through `cilium-values`; for a cilium-cli release its own values and chart
//!    version), the inventory edit, the adoption plan, the steps.
//! 3. **Gate**: `helm template` with those values; the rendered `cilium-config` is compared key
//!    by key with the live one and every behaviour change blocks unless accepted by key; the
//!    rendered agent DaemonSet and operator (and Hubble) Deployments are compared with the live
//!    ones (`cilium_values::compare_workloads`) and every blocking difference blocks unless
//!    accepted by name; adoption
//!    blockers (immutable selectors, another release's objects, hook collisions) block; node
//!    directories that the unprivileged agent cannot write block (through `cni-fs`, unless the
//!    caller skips that check, which it must say loudly).
//! 4. Without `apply` the plan is the outcome. With it, the journaled steps of the strategy run
//!    from the first unfinished one ([`crate::journal`]): backup (written and read back before any
//!    write), adoption metadata or deletion of the template objects, `helm upgrade --install`
//!    (never `--atomic`), pruning, the inventory edit (plus the values file next to the
//!    inventory), verification, and the hand-over marker.
//!
//! `replace` deletes the template-era DaemonSet and Deployments with *orphaning*, unlike the
//! blog's manual procedure (a cascading delete), on purpose: the agents keep running while Helm
//! creates the chart's DaemonSet, so no node is without an agent in between. The chart's
//! DaemonSet adopts those pods and would count them as up to date (same
//! `pod-template-generation`), so the install step of `replace` then rolls every agent that is
//! not on the DaemonSet's current revision, as `kubectl rollout restart` does, and waits for the
//! rollout. The Deployments need nothing: their new ReplicaSet (new `pod-template-hash`)
//! replaces the adopted pods by itself.
//!
//! A re-run resumes at the first unfinished step; a finished migration is a no-op. Values on a
//! resumed run come from the backed-up `cilium-config`, never from a half-migrated live one.
//!
//! [`rollback`] undoes the release without deleting what it adopted (Helm's release records
//! go through [`crate::guard::forget_release`] when the release did not exist before; otherwise
//! `helm rollback` to the backed-up revision), deletes what the hand-over created, restores the
//! backed-up objects and inventory files, and compares the cluster with the bundle.
//!
//! **Test hook** (feature `fault-injection`, test builds only): `MigrateOptions::fail_after`
//! makes the run fail right after the work of that step, before the journal records it done, as
//! a crash there would (`cargo xtask migrate` sets it from `CILIUM_MIGRATE_FAIL_AT=<step>`).
//!
//! Layout: this file holds the options, the plan and outcome types and [`run`]'s orchestration;
//! `plan` decides (values, gate), `steps` carries out the journaled steps, `rollback` undoes a
//! hand-over, `inventory` is the glue between the inventory and `cilium-values`, `bundle_dir`
//! finds and names the bundle directory, and `error` holds [`FlowError`].

mod bundle_dir;
mod error;
mod inventory;
mod offline;
mod plan;
mod rollback;
mod steps;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cilium_values::{ChartVersion, ConfigDifference, WorkloadDifference};
use helm::{ChartSource, Helm};
use kube::Client;
use kubespray_config::{HandoverOptions, Inventory};
use serde::Serialize;
use serde_json::Value;

use crate::adopt::Release;
use crate::bundle::{Bundle, MANIFEST_FILE};
use crate::era::{self, Era};
use crate::etcd::{self, EtcdSnapshotOptions};
use crate::identity::ClusterIdentity;
use crate::journal::{Journal, JournalStatus, StepState, Strategy};
use crate::kubeconfig::PinnedKubeconfig;
use crate::lock::{self, BundleLock, ClusterLease, Holder};

use bundle_dir::{default_bundle, open_journal};
pub use bundle_dir::{state_dir, utc_stamp};
pub use error::FlowError;
use error::{api, io};
use inventory::inventory_claim;
pub use inventory::{default_version, inventory_vars};
pub use offline::{
    EraChoice, NODE_DIRECTORIES, OfflineGate, OfflineOptions, OfflinePlan, PlannedNode,
    PlannedObject, PlannedStep, choose_era, era_from_configmap, offline_gate, offline_values,
    plan_offline, planned_steps,
};
use plan::{
    ValuesChoice, agent_version_of, backed_up_agent_version, backed_up_config, backed_up_workloads,
    read_live_config, release_values, write_temp_values,
};
pub use rollback::{RollbackOptions, RollbackOutcome, rollback};

pub use crate::journal::Step;

/// Name of the values file written next to the inventory.
pub const VALUES_FILE: &str = "cilium-values.yaml";
/// Name the journal gets after a rollback: the bundle is then no longer resumable.
pub const ROLLED_BACK_JOURNAL: &str = "journal.rolled-back.jsonl";
/// Prefix of the default bundle directories (`cilium-migrate-<host>-<time>`).
pub const BUNDLE_PREFIX: &str = "cilium-migrate-";

/// How the node directories are checked before anything restarts.
#[derive(Clone)]
pub enum NodeCheck {
    /// Inspect these directories on these nodes through `access`.
    Check {
        /// Local, SSH or pod.
        access: Box<cni_fs::Access>,
        /// The nodes.
        nodes: Vec<cni_fs::Node>,
        /// The directories (`/opt/cni/bin`, `/etc/cni/net.d` unless told otherwise).
        paths: Vec<PathBuf>,
    },
    /// Not checked: the operator vouches for the nodes (reported as a warning).
    Skip,
}

/// What [`run`] does.
#[derive(Clone)]
pub struct MigrateOptions {
    /// The Kubespray inventory (directory or inventory file).
    pub inventory: PathBuf,
    /// Kubeconfig for the API client and helm (`None`: `$KUBECONFIG`, `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The bundle directory; `None` resumes this cluster's `cilium-migrate-<host>-*` in the state
    /// directory ([`state_dir`]) or the working directory, or starts
    /// `<state dir>/cilium-migrate-<host>-<UTC time>`.
    pub bundle: Option<PathBuf>,
    /// The chart to hand over to.
    pub chart: ChartSource,
    /// The chart version (default: the Cilium version that runs; a release's own chart version).
    pub cilium_version: Option<String>,
    /// `adopt` or `replace` for the template era (default: adopt).
    pub strategy: Option<Strategy>,
    /// `cilium-config` keys whose behaviour change the operator accepts.
    pub accept_config_changes: Vec<String>,
    /// Names of workload differences the operator accepts
    /// (`DaemonSet/cilium: container cilium-agent: volumeMount /var/lib/etcd-config`).
    pub accept_workload_changes: Vec<String>,
    /// Node directory check.
    pub nodes: NodeCheck,
    /// The helm binary (`None`: `helm` on `PATH`).
    pub helm: Option<PathBuf>,
    /// Change the cluster (without it: plan only).
    pub apply: bool,
    /// Skip the confirmation ([`Progress::confirm`]).
    pub yes: bool,
    /// Helm's `--timeout` for the install.
    pub helm_timeout: Duration,
    /// How long verification may take to turn green.
    pub verify_timeout: Duration,
    /// Names of `verify` checks that do not block (reported, not required).
    pub ignore_checks: Vec<String>,
    /// Test hook: fail right after this step's work, before it is recorded done.
    #[cfg(feature = "fault-injection")]
    pub fail_after: Option<Step>,
    /// Also save an etcd snapshot into the bundle during `backup` (`--etcd-snapshot`).
    pub etcd_snapshot: Option<EtcdSnapshotOptions>,
}

impl MigrateOptions {
    /// Options with the defaults: chart `cilium/cilium`, check nodes over nothing (callers set
    /// [`MigrateOptions::nodes`]), plan only.
    pub fn new(inventory: impl Into<PathBuf>) -> MigrateOptions {
        MigrateOptions {
            inventory: inventory.into(),
            kubeconfig: None,
            bundle: None,
            chart: ChartSource::cilium(),
            cilium_version: None,
            strategy: None,
            accept_config_changes: Vec::new(),
            accept_workload_changes: Vec::new(),
            nodes: NodeCheck::Skip,
            helm: None,
            apply: false,
            yes: false,
            helm_timeout: Duration::from_secs(600),
            verify_timeout: Duration::from_secs(300),
            ignore_checks: Vec::new(),
            #[cfg(feature = "fault-injection")]
            fail_after: None,
            etcd_snapshot: None,
        }
    }
}

/// Where the flow reports what it does.
pub trait Progress {
    /// A phase or step begins; `elapsed` is the time since the run started.
    fn started(&mut self, name: &str, elapsed: Duration);
    /// It ended (`error` when it failed), after `took`.
    fn finished(&mut self, name: &str, took: Duration, error: Option<&str>);
    /// Something the operator should read (warnings, decisions).
    fn note(&mut self, message: &str);
    /// Asked once before the first change unless `yes`; `false` stops without changing anything.
    fn confirm(&mut self, plan: &Plan) -> bool;
}

/// A [`Progress`] that records nothing and declines confirmation (for callers that pass `yes`).
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: &str, _: Duration) {}
    fn finished(&mut self, _: &str, _: Duration, _: Option<&str>) {}
    fn note(&mut self, _: &str) {}
    fn confirm(&mut self, _: &Plan) -> bool {
        false
    }
}

/// One difference of the gate, as shown to the operator: the comparison's own difference and
/// whether the operator accepted it. In JSON its fields sit next to `accepted` (`key`, `live`,
/// `rendered`, `kind`, `changes_behaviour`, `reason`), as `--output json` readers expect.
#[derive(Debug, Clone, Serialize)]
pub struct GateDifference {
    /// The difference between the live and the rendered `cilium-config`.
    #[serde(flatten)]
    pub difference: ConfigDifference,
    /// Accepted with `--accept-config-change`.
    pub accepted: bool,
}

impl fmt::Display for GateDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        let d = &self.difference;
        write!(
            f,
            "{}: live {} vs rendered {} ({}{})",
            d.key,
            show(&d.live),
            show(&d.rendered),
            match (d.changes_behaviour, self.accepted) {
                (false, _) => "same behaviour: ",
                (true, true) => "accepted change: ",
                (true, false) => "CHANGES BEHAVIOUR: ",
            },
            d.reason
        )
    }
}

/// One difference between a live and a rendered workload, as shown to the operator. In JSON its
/// fields sit next to `accepted`: `name` (what `--accept-workload-change` takes), `live` and
/// `rendered` (the values with the API server's defaults, `null` when absent), `effect` (what it
/// changes on a node), `blocks` (whether it blocks unless accepted).
#[derive(Debug, Clone, Serialize)]
pub struct GateWorkloadDifference {
    /// The difference.
    #[serde(flatten)]
    pub difference: WorkloadDifference,
    /// Accepted with `--accept-workload-change`.
    pub accepted: bool,
}

impl fmt::Display for GateWorkloadDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.difference;
        let text = d.to_string();
        // The comparison's own wording, with the operator's decision in place of its verdict.
        let verdict = match (d.blocks, self.accepted) {
            (false, _) => return f.write_str(&text),
            (true, true) => "accepted change",
            (true, false) => "BLOCKS",
        };
        f.write_str(&text.replacen("(BLOCKS: ", &format!("({verdict}: "), 1))
    }
}

/// Objects the adoption touches.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdoptionSummary {
    /// Objects that get Helm's ownership metadata.
    pub adopted: Vec<String>,
    /// Objects with Kubespray-only fields to prune.
    pub pruned: Vec<String>,
    /// Objects Helm creates.
    pub created: Vec<String>,
    /// Template-era objects the chart does not render (they stay, unmanaged).
    pub left_alone: Vec<String>,
    /// Completed certgen Jobs deleted so that the chart's hook can run.
    pub deleted_jobs: Vec<String>,
}

/// Everything the flow decided before changing anything.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The cluster.
    pub cluster: ClusterIdentity,
    /// The era, in words.
    pub era: String,
    /// The strategy.
    pub strategy: Strategy,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The step a run starts with (`None`: finished).
    pub next_step: Option<Step>,
    /// Every step of the strategy.
    pub steps: Vec<Step>,
    /// The chart, as helm is given it.
    pub chart: String,
    /// The chart version.
    pub chart_version: String,
    /// The values (YAML, with provenance comments when translated).
    pub values_yaml: String,
    /// The inventory edit as a unified diff (empty when already edited).
    pub inventory_diff: String,
    /// Every difference between the rendered and the live `cilium-config`.
    pub config_differences: Vec<GateDifference>,
    /// Every difference between the rendered and the live agent DaemonSet and operator (and
    /// Hubble) Deployments.
    pub workload_differences: Vec<GateWorkloadDifference>,
    /// The adoption (adopt strategy).
    pub adoption: Option<AdoptionSummary>,
    /// Node directory verdicts, one line per node.
    pub nodes: Vec<String>,
    /// What blocks the hand-over (empty: the gate passes).
    pub blockers: Vec<String>,
    /// What the operator should know.
    pub warnings: Vec<String>,
}

/// How long one step took.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// Seconds.
    pub seconds: f64,
}

/// One verification check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    /// The check.
    pub name: String,
    /// `ok`, `warning`, `error`...
    pub state: String,
    /// What it saw.
    pub detail: String,
    /// Passed (or not installed, for an optional part).
    pub green: bool,
    /// Whether the run ignored it (`ignore_checks`).
    pub ignored: bool,
}

/// What [`run`] ended with.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing to do: the cluster is handed over already.
    AlreadyHandedOver {
        /// The era, in words (with the evidence).
        era: String,
        /// The bundle of the finished run, when known.
        bundle: Option<PathBuf>,
    },
    /// Plan only (no `apply`), or the operator declined.
    Planned {
        /// The plan.
        plan: Box<Plan>,
    },
    /// The hand-over ran to the end.
    Migrated {
        /// The plan it followed.
        plan: Box<Plan>,
        /// The steps this run carried out (a resumed run starts later).
        steps: Vec<StepReport>,
        /// The last verification.
        checks: Vec<CheckLine>,
    },
}

/// A client for the kubeconfig (or the default one) and the API server URL it talks to.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<(Client, String), FlowError> {
    let connection = Connection::open(kubeconfig).await?;
    Ok((connection.client, connection.api_server))
}

/// One cluster for a whole run: the kubeconfig's current context, resolved once and pinned
/// ([`PinnedKubeconfig`]); the client and every helm call of the run use that same context.
pub struct Connection {
    /// The Kubernetes client.
    pub client: Client,
    /// The API server URL it talks to (what the cluster identity records).
    pub api_server: String,
    /// The pinned kubeconfig (`None`: no kubeconfig, in-cluster).
    pub kubeconfig: Option<PinnedKubeconfig>,
}

impl Connection {
    /// Connects through `kubeconfig` (`--kubeconfig`), else `$KUBECONFIG`, `~/.kube/config`,
    /// or in-cluster, pinning the context it resolves.
    pub async fn open(kubeconfig: Option<&Path>) -> Result<Connection, FlowError> {
        let shown = kubeconfig.map_or_else(|| "default".to_owned(), |p| p.display().to_string());
        let bad = |reason: String| FlowError::Kubeconfig {
            path: shown.clone(),
            reason,
        };
        let pinned = PinnedKubeconfig::pin(kubeconfig).map_err(|e| FlowError::Kubeconfig {
            path: e.path,
            reason: e.reason,
        })?;
        let config = match &pinned {
            Some(pinned) => {
                kube::Config::from_custom_kubeconfig(pinned.config().clone(), &Default::default())
                    .await
                    .map_err(|e| bad(e.to_string()))?
            }
            None => kube::Config::infer()
                .await
                .map_err(|e| bad(e.to_string()))?,
        };
        let api_server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
        Ok(Connection {
            client,
            api_server,
            kubeconfig: pinned,
        })
    }

    /// helm (`explicit`, else on `PATH`) talking to this connection's cluster only.
    pub fn helm(&self, explicit: Option<&Path>) -> Result<Helm, FlowError> {
        let helm = Helm::locate(explicit)?;
        Ok(match &self.kubeconfig {
            Some(pinned) => pinned.helm(helm),
            None => helm,
        })
    }

    /// What the operator should know about the kubeconfig (`insecure-skip-tls-verify`).
    pub fn warnings(&self) -> &[String] {
        self.kubeconfig
            .as_ref()
            .map_or(&[], PinnedKubeconfig::warnings)
    }
}

/// The chart the gate renders and the install installs: one local archive, resolved once per
/// run (pulled, packaged or copied into a private directory), with its sha256.
struct PinnedChart {
    _dir: tempfile::TempDir,
    path: PathBuf,
    sha256: String,
}

impl PinnedChart {
    fn resolve(helm: &Helm, source: &ChartSource, version: &str) -> Result<PinnedChart, FlowError> {
        let dir = private_chart_dir()?;
        let path = match source {
            ChartSource::Archive(archive) => return PinnedChart::copy_of(archive),
            ChartSource::Directory(chart) => helm.package(chart, dir.path())?,
            ChartSource::Repository { .. } | ChartSource::Oci(_) => {
                helm.prepare(source)?;
                helm.pull(source, Some(version), dir.path())?
            }
        };
        let sha256 = file_sha256(&path)?;
        Ok(PinnedChart {
            _dir: dir,
            path,
            sha256,
        })
    }

    /// A private copy of a local archive: changing the original later changes nothing.
    fn copy_of(archive: &Path) -> Result<PinnedChart, FlowError> {
        let dir = private_chart_dir()?;
        let path = dir.path().join(
            archive
                .file_name()
                .unwrap_or(std::ffi::OsStr::new("chart.tgz")),
        );
        std::fs::copy(archive, &path).map_err(io(archive))?;
        let sha256 = file_sha256(&path)?;
        Ok(PinnedChart {
            _dir: dir,
            path,
            sha256,
        })
    }

    /// The archive's sha256, refusing an archive that changed since the gate rendered it.
    fn verified_sha256(&self) -> Result<&str, FlowError> {
        let now = file_sha256(&self.path)?;
        if now != self.sha256 {
            return Err(FlowError::Refused(format!(
                "the chart archive {} changed since the gate rendered it (sha256 {} then, {now} now): nothing was installed; run again to gate the chart as it is",
                self.path.display(),
                self.sha256
            )));
        }
        Ok(&self.sha256)
    }
}

fn private_chart_dir() -> Result<tempfile::TempDir, FlowError> {
    tempfile::Builder::new()
        .prefix("cilium-migrate-chart-")
        .tempdir()
        .map_err(io(&std::env::temp_dir()))
}

fn file_sha256(path: &Path) -> Result<String, FlowError> {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The run's shared state.
struct Session<'a> {
    /// The run's options, with `chart` the pinned archive.
    options: &'a MigrateOptions,
    client: Client,
    helm: Helm,
    /// The archive `options.chart` names, and its sha256.
    chart: PinnedChart,
    /// This run, as the Lease and the journal's helm records name it.
    holder: Holder,
    identity: ClusterIdentity,
    release: Release,
    bundle_dir: PathBuf,
    inventory: Inventory,
    strategy: Strategy,
    chart_version: String,
    /// The version of the agent that runs now (from its image tag), when known.
    live_agent_version: Option<String>,
    /// The values file helm reads (kept alive for the run).
    values_file: tempfile::NamedTempFile,
    values_yaml: String,
    kube_proxy_replaced: bool,
    rendered: Vec<Value>,
}

impl Session<'_> {
    /// A `pending-*` release is this bundle's own interrupted helm run only when its journal
    /// recorded starting the helm run that writes that revision; anything else (another
    /// operator's `helm upgrade --wait`, a helm another tool left running) is refused untouched.
    fn ensure_pending_is_ours(&self, status: &helm::ReleaseInfo) -> Result<(), FlowError> {
        let journal = Journal::open(&self.bundle_dir)?;
        if journal
            .helm_run(&status.name, &status.namespace, status.revision)
            .is_some()
        {
            return Ok(());
        }
        Err(FlowError::Refused(format!(
            "release {} is {} at revision {}, and this run's journal {} did not record starting that helm run: \
             it is another operator's helm upgrade or rollback (perhaps still running), or a helm another tool left behind. \
             Nothing was changed. Check `helm history {} -n {}` and who runs helm; run again once that run has finished, \
             or, if its helm is gone, after `helm rollback {} <last deployed revision> -n {}`",
            status.name,
            status.info.status,
            status.revision,
            journal.path().display(),
            status.name,
            status.namespace,
            status.name,
            status.namespace,
        )))
    }

    /// Records in the journal, before helm starts, that this run's `step` runs helm `action`
    /// on the release, writing the revision after `last_revision` (`None`: no release).
    fn record_helm_run(
        &self,
        step: Step,
        action: &str,
        last_revision: Option<u32>,
        chart_sha256: Option<String>,
    ) -> Result<(), FlowError> {
        let mut journal = Journal::open(&self.bundle_dir)?;
        journal.helm_started(
            step,
            crate::journal::HelmRun {
                action: action.to_owned(),
                release: self.release.name.clone(),
                namespace: self.release.namespace.clone(),
                revision: last_revision.map_or(1, |r| r.saturating_add(1)),
                holder: self.holder.process().to_owned(),
                chart_sha256,
            },
        )?;
        Ok(())
    }

    /// The pinned chart's sha256, refusing an archive that changed since the gate.
    fn verified_chart(&self) -> Result<String, FlowError> {
        self.chart.verified_sha256().map(str::to_owned)
    }
}

/// Runs the migration (see the module documentation).
pub async fn run(
    options: &MigrateOptions,
    progress: &mut dyn Progress,
) -> Result<Outcome, FlowError> {
    // On the heap: the flow's future is large, and a caller's thread stack may be small.
    Box::pin(run_boxed(options, progress)).await
}

async fn run_boxed(
    options: &MigrateOptions,
    progress: &mut dyn Progress,
) -> Result<Outcome, FlowError> {
    let started = Instant::now();
    let (connection, identity) =
        connect_pinned_and_identify(progress, started, options.kubeconfig.as_deref()).await?;
    let holder = Holder::this_process("migrate --apply");
    // Only a run that changes the cluster takes the lock; a plan may run beside one.
    let lease = if options.apply {
        Some(lock_cluster(&connection.client, holder.clone(), progress).await?)
    } else {
        None
    };
    let result = Box::pin(run_connected(
        options,
        progress,
        started,
        connection,
        identity,
        holder,
        lease.as_ref(),
    ))
    .await;
    if let Some(lease) = lease
        && let Err(e) = lease.release().await
    {
        progress.note(&format!("warning: {e}"));
    }
    result
}

fn lock_bundle(dir: &Path) -> Result<BundleLock, FlowError> {
    BundleLock::acquire(dir).map_err(|e| FlowError::Refused(e.to_string()))
}

/// Takes the cluster's run Lease for `holder`, saying so when it replaces a dead run's.
pub async fn lock_cluster(
    client: &Client,
    holder: Holder,
    progress: &mut dyn Progress,
) -> Result<ClusterLease, FlowError> {
    let lease = ClusterLease::acquire(client, holder)
        .await
        .map_err(|e| FlowError::Refused(e.to_string()))?;
    if let Some(previous) = lease.taken_over() {
        progress.note(&format!(
            "took over Lease {}/{} from {previous}: it lapsed or its process is gone",
            lock::LEASE_NAMESPACE,
            lock::LEASE_NAME
        ));
    }
    Ok(lease)
}

async fn run_connected(
    options: &MigrateOptions,
    progress: &mut dyn Progress,
    started: Instant,
    connection: Connection,
    identity: ClusterIdentity,
    holder: Holder,
    lease: Option<&ClusterLease>,
) -> Result<Outcome, FlowError> {
    let client = connection.client.clone();

    // The bundle: given, or this cluster's latest in the state (or working) directory, or new.
    let bundle_dir = match &options.bundle {
        Some(dir) => dir.clone(),
        None => {
            let dir = default_bundle(&identity)?;
            // Said at once: the operator must know where the backup (and its Secrets) will be.
            progress.note(&format!(
                "bundle: {} (pick another with --bundle)",
                dir.display()
            ));
            dir
        }
    };
    // Another process of this host on the same bundle is refused before its journal is read.
    // A bundle that does not exist yet is locked once the journal creates it (a finished
    // hand-over creates none).
    let bundle_lock = if options.apply && bundle_dir.exists() {
        Some(lock_bundle(&bundle_dir)?)
    } else {
        None
    };
    let journal = open_journal(&bundle_dir, &identity)?;
    let journal_status = journal
        .as_ref()
        .map_or(JournalStatus::Absent, Journal::status);

    // Inventory: whether it still installs Cilium decides between "cilium-cli era" and "done".
    let inventory = Inventory::load(&options.inventory)?;
    for warning in &inventory.warnings {
        progress.note(&format!("inventory: {warning}"));
    }
    let inventory_era = inventory.detect_era().era;
    let variables =
        inventory.variables(inventory_era.unwrap_or(kubespray_config::Era::Template))?;
    let claim = inventory_claim(&variables);

    let t = Instant::now();
    progress.started("detect", started.elapsed());
    let state = era::collect_state(&client).await?;
    let detected = era::detect(&state, journal_status, claim);
    progress.finished(
        "detect",
        t.elapsed(),
        detected.as_ref().err().map(ToString::to_string).as_deref(),
    );
    let detected = detected?;
    progress.note(&format!("era: {detected}"));
    let strategy = match (&detected, &journal) {
        (Era::HandedOver { .. }, _) => {
            return Ok(Outcome::AlreadyHandedOver {
                era: detected.to_string(),
                bundle: journal.map(|_| bundle_dir),
            });
        }
        (Era::InProgress { .. }, Some(j)) => j.header().strategy,
        (Era::InProgress { .. }, None) => {
            return Err(FlowError::Refused(
                "the era detection says a migration is in progress, but no journal was found"
                    .into(),
            ));
        }
        (Era::TemplateManifests { .. }, _) => match options.strategy {
            None | Some(Strategy::Adopt) => Strategy::Adopt,
            Some(Strategy::Replace) => Strategy::Replace,
            Some(Strategy::TakeOverRelease) => {
                return Err(FlowError::Refused(
                    "--strategy take-over-release needs a release cilium (Kubespray >= v2.28); this cluster has none: use adopt or replace".into(),
                ));
            }
        },
        (Era::CiliumCliRelease { .. }, _) => {
            if options.strategy == Some(Strategy::Replace) {
                progress.note(
                    "a release cilium exists already (Kubespray >= v2.28): its owner changes, nothing is replaced; --strategy replace is ignored",
                );
            }
            Strategy::TakeOverRelease
        }
    };
    if journal.is_none() && bundle_dir.join(MANIFEST_FILE).exists() {
        return Err(FlowError::Refused(format!(
            "{} holds a backup without a journal (a rolled-back or foreign bundle); it is never reused: pass a new --bundle directory",
            bundle_dir.display()
        )));
    }
    let backup_done = journal
        .as_ref()
        .is_some_and(|j| j.state_of(Step::Backup) == Some(StepState::Done));
    let install_done = journal
        .as_ref()
        .is_some_and(|j| j.state_of(Step::HelmInstall) == Some(StepState::Done));

    // Helm, the chart, the values.
    let helm = connection.helm(options.helm.as_deref())?;
    let release = Release::default();
    // A resumed run reads what ran before it began: the backup, not a half-migrated cluster.
    let (live_config, agent_version, backed_up) = if backup_done {
        let bundle = Bundle::open(&bundle_dir)?;
        (
            backed_up_config(&bundle)?,
            backed_up_agent_version(&bundle)?,
            Some(backed_up_workloads(&bundle)?),
        )
    } else {
        (
            read_live_config(&client).await?,
            agent_version_of(&state),
            None,
        )
    };
    let mut warnings = Vec::new();
    let t = Instant::now();
    progress.started("values", started.elapsed());
    let values = match strategy {
        Strategy::TakeOverRelease => {
            release_values(&helm, &release, options.cilium_version.as_deref())?
        }
        Strategy::Adopt | Strategy::Replace => {
            let kubespray_era = kubespray_config::Era::Template;
            let variables = inventory.variables(kubespray_era)?;
            let vars = inventory_vars(&inventory, &variables);
            let version = match (&options.cilium_version, &detected) {
                (Some(v), _) => ChartVersion::parse(v)?,
                (
                    None,
                    Era::TemplateManifests {
                        cilium_version: Some(v),
                    },
                ) => ChartVersion::parse(v)?,
                _ => agent_version.as_deref().map_or_else(
                    || default_version(&vars),
                    |v| ChartVersion::parse(v).map_err(FlowError::from),
                )?,
            };
            let translation = cilium_values::translate(&cilium_values::Sources {
                live: Some(live_config.clone()),
                inventory: vars,
                version,
            })?;
            warnings.extend(translation.warnings.iter().map(ToString::to_string));
            ValuesChoice {
                json: translation.values.to_json()?,
                yaml: translation.values.to_yaml_with_provenance()?,
                version: translation.values.version.to_string(),
            }
        }
    };
    progress.finished("values", t.elapsed(), None);
    // The gate renders and the install installs this very archive.
    let chart = {
        let (helm, source, version) = (helm.clone(), options.chart.clone(), values.version.clone());
        blocking(move || PinnedChart::resolve(&helm, &source, &version)).await??
    };
    let pinned_options = MigrateOptions {
        chart: ChartSource::Archive(chart.path.clone()),
        ..options.clone()
    };
    let values_file = write_temp_values(&values.json)?;
    let kube_proxy_replaced =
        cilium_values::replaces_kube_proxy_value(values.json.get("kubeProxyReplacement"));

    let mut session = Session {
        options: &pinned_options,
        client,
        helm,
        chart,
        holder,
        identity,
        release,
        bundle_dir,
        inventory,
        strategy,
        chart_version: values.version.clone(),
        live_agent_version: agent_version,
        values_file,
        values_yaml: values.yaml,
        kube_proxy_replaced,
        rendered: Vec::new(),
    };

    // Gate.
    let t = Instant::now();
    progress.started("gate", started.elapsed());
    let gate =
        Box::pin(session.gate(&live_config, backed_up.as_deref(), install_done, progress)).await;
    // A gate that found blockers did not pass: it must never read "ok" above its blockers.
    let gate_failure = match &gate {
        Err(e) => Some(e.to_string()),
        Ok(result) => blocked_summary(&result.blockers),
    };
    progress.finished("gate", t.elapsed(), gate_failure.as_deref());
    let plan::GateResult {
        config: config_differences,
        workloads: workload_differences,
        adoption,
        nodes,
        mut blockers,
    } = gate?;
    if matches!(options.nodes, NodeCheck::Skip) && !install_done {
        warnings.push(
            "node directories NOT checked (--skip-node-check): if /opt/cni/bin or /etc/cni/net.d is not root-owned on a node, \
             the chart's agent fails there with `cp: cannot create regular file '/hostbin/cilium-mount': Permission denied`"
                .to_owned(),
        );
    }
    let inventory_diff = match session.inventory.handover_edits(&HandoverOptions {
        kube_proxy_remove: session.kube_proxy_replaced,
    }) {
        Ok(edits) => edits
            .iter()
            .map(|e| cilium_values::redact_yaml_lines(&e.unified_diff()))
            .collect(),
        Err(e) => {
            blockers.push(e.to_string());
            String::new()
        }
    };
    if let Some(etcd) = options.etcd_snapshot.as_ref().filter(|_| !backup_done) {
        let planned =
            etcd::target(&session.inventory, etcd.endpoint.as_deref()).and_then(|target| {
                let files = etcd
                    .for_inventory(&session.inventory, &target.node.name)?
                    .certificate_files(&target.node.name);
                Ok((target, files))
            });
        match planned {
            Ok((target, [ca, cert, key])) => progress.note(&format!(
                "the backup {} an etcd snapshot on {} ({}, with {}, {}, {}) into {}",
                if options.apply { "saves" } else { "would save" },
                target.node.name,
                target.endpoint,
                ca.display(),
                cert.display(),
                key.display(),
                session
                    .bundle_dir
                    .join(crate::bundle::ETCD_SNAPSHOT_FILE)
                    .display()
            )),
            Err(e) => blockers.push(e.to_string()),
        }
    }
    for warning in &warnings {
        progress.note(&format!("warning: {warning}"));
    }
    let plan = Plan {
        cluster: session.identity.clone(),
        era: detected.to_string(),
        strategy,
        bundle: session.bundle_dir.clone(),
        next_step: journal
            .as_ref()
            .map_or(Some(Step::Backup), Journal::next_step),
        steps: strategy.steps().to_vec(),
        chart: options.chart.reference().to_string_lossy().into_owned(),
        chart_version: session.chart_version.clone(),
        values_yaml: cilium_values::redact_values_yaml(&session.values_yaml),
        inventory_diff,
        config_differences,
        workload_differences,
        adoption,
        nodes,
        blockers,
        warnings,
    };
    if !options.apply {
        return Ok(Outcome::Planned {
            plan: Box::new(plan),
        });
    }
    if !plan.blockers.is_empty() {
        return Err(FlowError::Gate(plan.blockers.clone()));
    }
    if !options.yes && !progress.confirm(&plan) {
        return Err(FlowError::NotConfirmed);
    }

    // The journaled steps.
    let mut journal = match journal {
        Some(j) => j,
        None => Journal::create(&session.bundle_dir, session.identity.clone(), strategy)?,
    };
    let _bundle_lock = match bundle_lock {
        Some(lock) => lock,
        None => lock_bundle(&session.bundle_dir)?,
    };
    let mut reports = Vec::new();
    while let Some(step) = journal.next_step() {
        let t = Instant::now();
        let name = step.to_string();
        if let Some(lease) = lease {
            lease
                .ensure_held()
                .map_err(|e| FlowError::Refused(e.to_string()))?;
        }
        progress.started(&name, started.elapsed());
        journal.start(step)?;
        #[cfg_attr(not(feature = "fault-injection"), allow(unused_mut))]
        let mut result = Box::pin(session.run_step(step, progress)).await;
        #[cfg(feature = "fault-injection")]
        if result.is_ok() && options.fail_after == Some(step) {
            result = Err(FlowError::Injected(step));
        }
        match result {
            Ok(()) => {
                journal.done(step)?;
                progress.finished(&name, t.elapsed(), None);
                reports.push(StepReport {
                    step,
                    seconds: t.elapsed().as_secs_f64(),
                });
            }
            Err(e) => {
                let text = e.to_string();
                progress.finished(&name, t.elapsed(), Some(&text));
                // The step's own error matters more than a journal that cannot record it.
                let _ = journal.failed(step, &text);
                return Err(e);
            }
        }
    }
    let checks = session.checks().await?;
    Ok(Outcome::Migrated {
        plan: Box::new(plan),
        steps: reports,
        checks,
    })
}

/// The `connect` phase (the kubeconfig pinned, its warnings noted), then the cluster's identity
/// (what the journal and the bundle are bound to).
async fn connect_pinned_and_identify(
    progress: &mut dyn Progress,
    started: Instant,
    kubeconfig: Option<&Path>,
) -> Result<(Connection, ClusterIdentity), FlowError> {
    let connection = phase(progress, started, "connect", Connection::open(kubeconfig)).await?;
    for warning in connection.warnings() {
        progress.note(&format!("warning: {warning}"));
    }
    let identity = ClusterIdentity::read(&connection.client, &connection.api_server).await?;
    Ok((connection, identity))
}

async fn phase<T>(
    progress: &mut dyn Progress,
    started: Instant,
    name: &str,
    work: impl std::future::Future<Output = Result<T, FlowError>>,
) -> Result<T, FlowError> {
    let t = Instant::now();
    progress.started(name, started.elapsed());
    let result = work.await;
    progress.finished(
        name,
        t.elapsed(),
        result.as_ref().err().map(ToString::to_string).as_deref(),
    );
    result
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FlowError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FlowError::Refused(format!("a helm call did not finish: {e}")))
}

/// How a step that found blockers ends: their count and the first, `None` when there are none.
pub fn blocked_summary(blockers: &[String]) -> Option<String> {
    let first = blockers.first()?;
    Some(format!(
        "{} blocker(s), the first: {}",
        blockers.len(),
        first.lines().next().unwrap_or_default()
    ))
}

#[cfg(test)]
mod chart_tests {
    use super::PinnedChart;

    /// The install gets exactly the archive the gate rendered: a private copy, whose digest is
    /// checked again before helm runs.
    #[test]
    fn the_gated_chart_is_a_private_copy_checked_by_digest() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let original = tmp.path().join("cilium-1.15.9.tgz");
        std::fs::write(&original, b"the gated chart").expect("write");
        let pinned = PinnedChart::copy_of(&original).expect("pinned");
        std::fs::write(&original, b"a chart swapped after the gate").expect("write");
        let sha = pinned
            .verified_sha256()
            .expect("the copy did not change")
            .to_owned();
        assert_eq!(sha.len(), 64);
        std::fs::write(&pinned.path, b"tampered").expect("write");
        let err = pinned.verified_sha256().expect_err("changed").to_string();
        assert!(
            err.contains("changed since the gate rendered it") && err.contains(&sha),
            "{err}"
        );
    }
}

#[cfg(test)]
mod blocked_tests {
    use super::blocked_summary;

    #[test]
    fn a_step_with_blockers_does_not_finish_ok() {
        assert_eq!(blocked_summary(&[]), None);
        let blockers = [
            "cilium-config tunnel: vxlan -> disabled".to_owned(),
            "x".into(),
        ];
        let summary = blocked_summary(&blockers).expect("blocked");
        assert!(
            summary.starts_with("2 blocker(s)") && summary.contains("tunnel"),
            "{summary}"
        );
    }
}

#[cfg(test)]
mod tests {
    use cilium_values::DifferenceKind;

    use super::*;

    fn difference(changes_behaviour: bool, accepted: bool) -> GateDifference {
        GateDifference {
            difference: ConfigDifference {
                key: "tunnel-protocol".into(),
                live: Some("vxlan".into()),
                rendered: None,
                kind: DifferenceKind::MissingFromRender,
                changes_behaviour,
                reason: "the agent default is vxlan".into(),
            },
            accepted,
        }
    }

    #[test]
    fn gate_differences_read_as_before() {
        assert_eq!(
            difference(true, false).to_string(),
            r#"tunnel-protocol: live "vxlan" vs rendered (absent) (CHANGES BEHAVIOUR: the agent default is vxlan)"#
        );
        assert_eq!(
            difference(true, true).to_string(),
            r#"tunnel-protocol: live "vxlan" vs rendered (absent) (accepted change: the agent default is vxlan)"#
        );
        assert_eq!(
            difference(false, true).to_string(),
            r#"tunnel-protocol: live "vxlan" vs rendered (absent) (same behaviour: the agent default is vxlan)"#
        );
    }

    fn workload(blocks: bool, accepted: bool) -> GateWorkloadDifference {
        GateWorkloadDifference {
            difference: WorkloadDifference {
                name: "DaemonSet/cilium: dnsPolicy".into(),
                live: Some(serde_json::json!("ClusterFirstWithHostNet")),
                rendered: Some(serde_json::json!("ClusterFirst")),
                effect: "which resolver the pods ask".into(),
                blocks,
            },
            accepted,
        }
    }

    #[test]
    fn workload_differences_read_with_the_operators_decision() {
        let base = r#"DaemonSet/cilium: dnsPolicy: live "ClusterFirstWithHostNet" vs rendered "ClusterFirst""#;
        assert_eq!(
            workload(true, false).to_string(),
            format!("{base} (BLOCKS: which resolver the pods ask)")
        );
        assert_eq!(
            workload(true, true).to_string(),
            format!("{base} (accepted change: which resolver the pods ask)")
        );
        assert_eq!(
            workload(false, true).to_string(),
            format!("{base} (explained: which resolver the pods ask)")
        );
    }

    /// The documented `--output json` fields of a workload difference.
    #[test]
    fn workload_differences_have_their_documented_json_fields() {
        let json = serde_json::to_value(workload(true, true)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({
                "name": "DaemonSet/cilium: dnsPolicy",
                "live": "ClusterFirstWithHostNet",
                "rendered": "ClusterFirst",
                "effect": "which resolver the pods ask",
                "blocks": true,
                "accepted": true,
            })
        );
    }

    /// `cargo xtask migrate --output json` readers see the fields they saw before, one level deep.
    #[test]
    fn gate_differences_keep_their_json_fields() {
        let json = serde_json::to_value(difference(true, false)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            json,
            serde_json::json!({
                "key": "tunnel-protocol",
                "live": "vxlan",
                "rendered": null,
                "kind": "missing-from-render",
                "changes_behaviour": true,
                "reason": "the agent default is vxlan",
                "accepted": false,
            })
        );
    }
}
