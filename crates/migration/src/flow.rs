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
//!    by key with the live one and every behaviour change blocks unless accepted by key; adoption
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
//! **Test hook:** [`MigrateOptions::fail_after`] makes the run fail right after the work of
//! that step, before the journal records it done, as a crash there would (`cargo xtask migrate`
//! sets it from `CILIUM_MIGRATE_FAIL_AT=<step>`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cilium_values::{ChartVersion, ConfigDifference, InventoryVar, InventoryVars, LiveConfig};
use helm::{
    ChartSource, Helm, HelmError, Ownership, ReleaseStatus, RollbackRequest, TemplateRequest,
    UpgradeInstall, ValuesScope, Wait,
};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use kubespray_config::{HandoverOptions, Inventory, Origin, Variables};
use serde::Serialize;
use serde_json::{Value, json};

use crate::adopt::{self, AdoptPlan, Blocker, Phase, Release};
use crate::bundle::{BackupRequest, Bundle, DEFAULT_PAGE_SIZE, MANIFEST_FILE, Section};
use crate::era::{self, Era, InventoryClaim};
use crate::etcd::{self, EtcdError, EtcdSnapshotOptions};
use crate::guard;
use crate::identity::ClusterIdentity;
use crate::journal::{JOURNAL_FILE, Journal, JournalStatus, StepState, Strategy};
use crate::object::{self, ObjectRef};
use crate::restore::{self, Difference, RestoreReport};
use crate::template_era::{self, NAMESPACE};

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
    /// The bundle directory; `None` resumes an unfinished `./cilium-migrate-<host>-*` of this
    /// cluster, or starts `./cilium-migrate-<host>-<UTC time>`.
    pub bundle: Option<PathBuf>,
    /// The chart to hand over to.
    pub chart: ChartSource,
    /// The chart version (default: the Cilium version that runs; a release's own chart version).
    pub cilium_version: Option<String>,
    /// `adopt` or `replace` for the template era (default: adopt).
    pub strategy: Option<Strategy>,
    /// `cilium-config` keys whose behaviour change the operator accepts.
    pub accept_config_changes: Vec<String>,
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
            nodes: NodeCheck::Skip,
            helm: None,
            apply: false,
            yes: false,
            helm_timeout: Duration::from_secs(600),
            verify_timeout: Duration::from_secs(300),
            ignore_checks: Vec::new(),
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

/// One difference of the gate, as shown to the operator.
#[derive(Debug, Clone, Serialize)]
pub struct GateDifference {
    /// The `cilium-config` key.
    pub key: String,
    /// The live value.
    pub live: Option<String>,
    /// The rendered value.
    pub rendered: Option<String>,
    /// Whether the agent would behave differently.
    pub changes_behaviour: bool,
    /// Accepted with `--accept-config-change`.
    pub accepted: bool,
    /// Why.
    pub reason: String,
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

/// Why the flow stopped.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// The kubeconfig cannot be used.
    #[error("kubeconfig {path}: {reason}; pass --kubeconfig with a working admin kubeconfig")]
    Kubeconfig {
        /// The file (or "default" for $KUBECONFIG / ~/.kube/config).
        path: String,
        /// What failed.
        reason: String,
    },
    /// An API request failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The era cannot be decided or is not one this tool hands over.
    #[error("{0}")]
    Era(#[from] era::EraError),
    /// Collecting the cluster state failed.
    #[error(transparent)]
    Collect(#[from] era::CollectError),
    /// Cluster identity.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// The journal.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// The backup bundle.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// The inventory.
    #[error(transparent)]
    Inventory(Box<kubespray_config::Error>),
    /// The values.
    #[error(transparent)]
    Values(Box<cilium_values::Error>),
    /// helm.
    #[error("{0}")]
    Helm(Box<HelmError>),
    /// Adoption.
    #[error(transparent)]
    Adopt(Box<adopt::ApplyError>),
    /// A delete.
    #[error(transparent)]
    Delete(Box<guard::DeleteError>),
    /// Restoring from the bundle.
    #[error(transparent)]
    Restore(Box<restore::RestoreError>),
    /// The node directories.
    #[error(transparent)]
    Nodes(Box<cni_fs::Error>),
    /// The etcd snapshot.
    #[error(transparent)]
    Etcd(Box<EtcdError>),
    /// Verification could not run.
    #[error(transparent)]
    Verify(Box<verify::Error>),
    /// The gate blocks.
    #[error("the gate blocks the hand-over:\n- {}", .0.join("\n- "))]
    Gate(Vec<String>),
    /// The operator said no.
    #[error("not confirmed: nothing was changed")]
    NotConfirmed,
    /// A precondition that is not an error of a component.
    #[error("{0}")]
    Refused(String),
    /// Verification did not turn green in time.
    #[error(
        "verification did not pass within {timeout:?}:\n{problems}\nthe hand-over itself is done; fix what is named and run again to finish (the run resumes at verify)"
    )]
    VerifyTimeout {
        /// The wait.
        timeout: Duration,
        /// The failing checks.
        problems: String,
    },
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The test hook fired.
    #[error(
        "injected failure after the work of step {0}, before it was recorded done (test hook CILIUM_MIGRATE_FAIL_AT)"
    )]
    Injected(Step),
}

macro_rules! boxed_from {
    ($($source:ty => $variant:ident),* $(,)?) => {
        $(impl From<$source> for FlowError {
            fn from(e: $source) -> Self {
                FlowError::$variant(Box::new(e))
            }
        })*
    };
}

boxed_from!(
    kubespray_config::Error => Inventory,
    cilium_values::Error => Values,
    HelmError => Helm,
    adopt::ApplyError => Adopt,
    guard::DeleteError => Delete,
    restore::RestoreError => Restore,
    cni_fs::Error => Nodes,
    EtcdError => Etcd,
    verify::Error => Verify,
);

impl From<helm::ChartError> for FlowError {
    fn from(e: helm::ChartError) -> Self {
        FlowError::Helm(Box::new(HelmError::from(e)))
    }
}

fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> FlowError {
    let what = what.into();
    move |source| FlowError::Api {
        what,
        source: Box::new(source),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FlowError + '_ {
    move |source| FlowError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A client for the kubeconfig (or the default one) and the API server URL it talks to.
pub async fn connect(kubeconfig: Option<&Path>) -> Result<(Client, String), FlowError> {
    let shown = kubeconfig.map_or_else(|| "default".to_owned(), |p| p.display().to_string());
    let bad = |reason: String| FlowError::Kubeconfig {
        path: shown.clone(),
        reason,
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| bad(e.to_string()))?,
    };
    let url = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_owned();
    let client = Client::try_from(config).map_err(|e| bad(e.to_string()))?;
    Ok((client, url))
}

/// The run's shared state.
struct Session<'a> {
    options: &'a MigrateOptions,
    client: Client,
    helm: Helm,
    identity: ClusterIdentity,
    release: Release,
    bundle_dir: PathBuf,
    inventory: Inventory,
    strategy: Strategy,
    chart_version: String,
    /// The values file helm reads (kept alive for the run).
    values_file: tempfile::NamedTempFile,
    values_yaml: String,
    kube_proxy_replaced: bool,
    rendered: Vec<Value>,
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
    let (client, url) = phase(
        progress,
        started,
        "connect",
        connect(options.kubeconfig.as_deref()),
    )
    .await?;
    let identity = ClusterIdentity::read(&client, &url).await?;

    // The bundle: given, or an unfinished one of this cluster in the working directory, or new.
    let bundle_dir = match &options.bundle {
        Some(dir) => dir.clone(),
        None => default_bundle(&identity)?,
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
    let mut helm = Helm::locate(options.helm.as_deref())?;
    if let Some(kubeconfig) = &options.kubeconfig {
        helm = helm.with_kubeconfig(kubeconfig);
    }
    let release = Release::default();
    // A resumed run reads what ran before it began: the backup, not a half-migrated cluster.
    let (live_config, agent_version) = if backup_done {
        let bundle = Bundle::open(&bundle_dir)?;
        (
            backed_up_config(&bundle)?,
            backed_up_agent_version(&bundle)?,
        )
    } else {
        (read_live_config(&client).await?, agent_version_of(&state))
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
                _ => agent_version.map_or_else(
                    || default_version(&vars),
                    |v| ChartVersion::parse(&v).map_err(FlowError::from),
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
    let values_file = write_temp_values(&values.json)?;
    let kube_proxy_replaced = matches!(
        values.json.get("kubeProxyReplacement"),
        Some(Value::Bool(true))
    ) || matches!(
        values
            .json
            .get("kubeProxyReplacement")
            .and_then(Value::as_str),
        Some("true" | "strict")
    );

    let mut session = Session {
        options,
        client,
        helm,
        identity,
        release,
        bundle_dir,
        inventory,
        strategy,
        chart_version: values.version.clone(),
        values_file,
        values_yaml: values.yaml,
        kube_proxy_replaced,
        rendered: Vec::new(),
    };

    // Gate.
    let t = Instant::now();
    progress.started("gate", started.elapsed());
    let gate = Box::pin(session.gate(&live_config, install_done, progress)).await;
    progress.finished(
        "gate",
        t.elapsed(),
        gate.as_ref().err().map(ToString::to_string).as_deref(),
    );
    let (config_differences, adoption, nodes, mut blockers) = gate?;
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
        Ok(edits) => edits.iter().map(|e| e.unified_diff()).collect(),
        Err(e) => {
            blockers.push(e.to_string());
            String::new()
        }
    };
    if let Some(etcd) = options.etcd_snapshot.as_ref().filter(|_| !backup_done) {
        match etcd::target(&session.inventory, etcd.endpoint.as_deref()) {
            Ok(target) => progress.note(&format!(
                "the backup {} an etcd snapshot on {} ({}) into {}",
                if options.apply { "saves" } else { "would save" },
                target.node.name,
                target.endpoint,
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
        chart: session
            .options
            .chart
            .reference()
            .to_string_lossy()
            .into_owned(),
        chart_version: session.chart_version.clone(),
        values_yaml: session.values_yaml.clone(),
        inventory_diff,
        config_differences,
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
    let mut reports = Vec::new();
    while let Some(step) = journal.next_step() {
        let t = Instant::now();
        let name = step.to_string();
        progress.started(&name, started.elapsed());
        journal.start(step)?;
        let mut result = Box::pin(session.run_step(step, progress)).await;
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

struct ValuesChoice {
    json: Value,
    yaml: String,
    version: String,
}

type GateResult = (
    Vec<GateDifference>,
    Option<AdoptionSummary>,
    Vec<String>,
    Vec<String>,
);

impl Session<'_> {
    fn chart_request(&self) -> TemplateRequest {
        let mut request = TemplateRequest::new(
            &self.release.name,
            &self.release.namespace,
            self.options.chart.clone(),
        );
        request.version = Some(self.chart_version.clone());
        request.values_files = vec![self.values_file.path().to_owned()];
        request
    }

    /// Renders the chart, compares `cilium-config`, plans the adoption, checks the nodes.
    async fn gate(
        &mut self,
        live_config: &LiveConfig,
        install_done: bool,
        progress: &mut dyn Progress,
    ) -> Result<GateResult, FlowError> {
        let helm = self.helm.clone();
        let chart = self.options.chart.clone();
        let request = self.chart_request();
        let text = tokio::task::spawn_blocking(move || {
            helm.prepare(&chart)?;
            helm.template(&request)
        })
        .await
        .map_err(|e| FlowError::Refused(format!("helm template did not finish: {e}")))??;
        self.rendered = object::parse_manifest(&text).map_err(|e| {
            FlowError::Refused(format!(
                "helm template printed something that is not YAML: {e}"
            ))
        })?;
        let mut blockers = Vec::new();

        // cilium-config, key by key.
        let rendered_config = self
            .rendered
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap" && object::str_at(o, &["metadata", "name"]) == Some("cilium-config")
            })
            .map(|o| string_map(&o["data"]))
            .ok_or_else(|| {
                FlowError::Refused(format!(
                    "the chart {} renders no ConfigMap cilium-config with these values: it is not a Cilium chart, or the values disable the agent",
                    self.options.chart.reference().to_string_lossy()
                ))
            })?;
        let rendered_config = LiveConfig::from_map(rendered_config, "helm template");
        let version = ChartVersion::parse(&self.chart_version)?;
        let mut differences = Vec::new();
        for d in cilium_values::compare_config(live_config, &rendered_config, version) {
            let accepted = self.options.accept_config_changes.contains(&d.key);
            if d.changes_behaviour && !accepted && !install_done {
                blockers.push(format!(
                    "cilium-config {}; keep it with the values, or accept it with --accept-config-change {}",
                    d, d.key
                ));
            }
            differences.push(gate_difference(&d, accepted));
        }
        for key in &self.options.accept_config_changes {
            if !differences.iter().any(|d| &d.key == key) {
                progress.note(&format!(
                    "--accept-config-change {key}: cilium-config has no such difference; nothing to accept"
                ));
            }
        }

        // Adoption.
        let live = adopt::fetch_live(&self.client, &self.rendered, &self.release).await?;
        let plan = adopt::plan_adoption(&live, &self.rendered, &self.release);
        let adoption = (self.strategy == Strategy::Adopt).then(|| summary(&plan));
        if !install_done {
            for b in &plan.blockers {
                let replacing = self.strategy == Strategy::Replace;
                if replacing
                    && matches!(
                        b,
                        Blocker::SelectorDiffers { .. } | Blocker::HookCollision { .. }
                    )
                {
                    continue;
                }
                blockers.push(b.to_string());
            }
        }

        // Node directories, before anything restarts.
        let mut nodes = Vec::new();
        if !install_done
            && let NodeCheck::Check {
                access,
                nodes: list,
                paths,
            } = &self.options.nodes
        {
            let reports = cni_fs::check_nodes(access, list, paths).await?;
            let summary = cni_fs::failure_summary(&reports);
            for report in &reports {
                nodes.push(format!(
                    "{}: {}",
                    report.node,
                    if report.agent_would_fail() {
                        "agent would fail"
                    } else {
                        "ok"
                    }
                ));
            }
            if !summary.is_empty() {
                blockers.push(format!(
                    "node directories the unprivileged agent cannot write:\n{summary}\nfix them with `cargo xtask nodes fix --apply` and set kube_owner: root"
                ));
            }
        }
        Ok((differences, adoption, nodes, blockers))
    }

    async fn run_step(&mut self, step: Step, progress: &mut dyn Progress) -> Result<(), FlowError> {
        match step {
            Step::Backup => self.backup(progress).await,
            Step::AdoptMetadata => {
                self.seed_hubble_ca(progress).await?;
                let plan = self.adoption_plan().await?;
                adopt::apply_adoption(&self.client, &plan, Phase::Metadata).await?;
                Ok(())
            }
            Step::DeleteTemplateObjects => {
                self.seed_hubble_ca(progress).await?;
                self.delete_template_objects(progress).await
            }
            Step::HelmInstall => self.install(progress).await,
            Step::PruneFields => {
                let plan = self.adoption_plan().await?;
                adopt::apply_adoption(&self.client, &plan, Phase::Prune).await?;
                Ok(())
            }
            Step::InventoryEdit => self.edit_inventory(progress),
            Step::Verify => self.verify(progress).await,
        }
    }

    async fn backup(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let inventory_dir = absolute(&self.inventory.dir)?;
        if absolute(&self.bundle_dir)?.starts_with(&inventory_dir) {
            return Err(FlowError::Refused(format!(
                "the bundle {} is inside the inventory {}, which the backup copies: put the bundle elsewhere",
                self.bundle_dir.display(),
                inventory_dir.display()
            )));
        }
        let request = BackupRequest {
            dir: self.bundle_dir.clone(),
            cluster: self.identity.clone(),
            extra_objects: self.rendered.iter().filter_map(ObjectRef::of).collect(),
            inventory: vec![inventory_dir],
            page_size: DEFAULT_PAGE_SIZE,
        };
        let mut bundle = Bundle::create(&self.client, &request).await?;
        if let Some(options) = &self.options.etcd_snapshot {
            let file = etcd::snapshot_into(&mut bundle, &self.inventory, options).await?;
            progress.note(&format!(
                "etcd snapshot from {} ({} bytes, sha256 {})",
                file.node, file.bytes, file.sha256
            ));
        }
        let report = bundle.verify()?;
        progress.note(&format!(
            "backup {} verified: {} ({} inventory files)",
            self.bundle_dir.display(),
            report
                .objects
                .iter()
                .map(|(section, n)| format!("{section} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            report.inventory_files
        ));
        Ok(())
    }

    async fn adoption_plan(&self) -> Result<AdoptPlan, FlowError> {
        let live = adopt::fetch_live(&self.client, &self.rendered, &self.release).await?;
        Ok(adopt::plan_adoption(&live, &self.rendered, &self.release))
    }

    /// Kubespray's certgen wrote the hubble CA to `hubble-ca-secret`; the chart reuses a CA only
    /// from `cilium-ca`. Copying it there (with the release's ownership metadata, so that a
    /// rollback removes it as created by the hand-over) makes the chart sign the new hubble
    /// certificates with the CA that agents and relay already trust.
    async fn seed_hubble_ca(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let renders_ca = self.rendered.iter().any(|o| {
            o["kind"] == "Secret" && object::str_at(o, &["metadata", "name"]) == Some("cilium-ca")
        });
        if !renders_ca {
            return Ok(());
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        if secrets
            .get_opt("cilium-ca")
            .await
            .map_err(api("reading Secret kube-system/cilium-ca"))?
            .is_some()
        {
            return Ok(());
        }
        let Some(kubespray_ca) = secrets
            .get_opt("hubble-ca-secret")
            .await
            .map_err(api("reading Secret kube-system/hubble-ca-secret"))?
        else {
            return Ok(());
        };
        let data = kubespray_ca.data.unwrap_or_default();
        let (Some(cert), Some(key)) = (data.get("ca.crt"), data.get("ca.key")) else {
            progress
                .note("hubble-ca-secret has no ca.crt/ca.key: the chart generates a new hubble CA");
            return Ok(());
        };
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": "cilium-ca",
                "namespace": NAMESPACE,
                "labels": { object::MANAGED_BY_LABEL: "Helm" },
                "annotations": {
                    object::RELEASE_NAME_ANNOTATION: self.release.name,
                    object::RELEASE_NAMESPACE_ANNOTATION: self.release.namespace,
                },
            },
            "data": { "ca.crt": cert, "ca.key": key },
        }))
        .map_err(|e| FlowError::Refused(format!("building Secret cilium-ca: {e}")))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            // Created by an interrupted earlier attempt of this step.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api("creating Secret kube-system/cilium-ca")(e)),
        }
        progress.note("copied Kubespray's hubble CA (hubble-ca-secret) to cilium-ca: the chart keeps signing with it");
        Ok(())
    }

    async fn delete_template_objects(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let state = era::collect_state(&self.client).await?;
        let deletions = guard::replace_deletions(&state.objects);
        for (object, uid) in &deletions {
            let Some(kind) = template_era::template_kind(object) else {
                continue;
            };
            let gvk =
                kube::api::GroupVersionKind::gvk(object.group(), object.version(), &object.kind);
            let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, kind.plural);
            // Workload pods are orphaned (the blog's manual procedure cascades): the chart's
            // workload with the same selector takes them over instead of leaving every node
            // without an agent; the install step then rolls the adopted agents.
            let orphan = matches!(object.kind.as_str(), "DaemonSet" | "Deployment");
            guard::delete(&self.client, &resource, object, uid, orphan).await?;
            let api_: Api<kube::api::DynamicObject> = match &object.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                let live = api_
                    .get_opt(&object.name)
                    .await
                    .map_err(api(format!("reading {object}")))?;
                if live.is_none_or(|o| o.metadata.uid.as_deref() != Some(uid.as_str())) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(FlowError::Refused(format!(
                        "{object} was deleted but is still there after 2 minutes (finalizers?); check it and run again"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        progress.note(&format!("deleted {} template-era objects", deletions.len()));
        Ok(())
    }

    async fn install(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        // A previous attempt of this step may have been cut short while helm ran: repair the
        // pending revision it left, as Helm's own hint says.
        let helm = self.helm.clone();
        let release = self.release.clone();
        let status = {
            let helm = helm.clone();
            let release = release.clone();
            blocking(move || helm.status(&release.name, &release.namespace)).await??
        };
        if let Some(status) = status
            && matches!(
                status.info.status,
                ReleaseStatus::PendingInstall
                    | ReleaseStatus::PendingUpgrade
                    | ReleaseStatus::PendingRollback
            )
        {
            let history = {
                let helm = helm.clone();
                let release = release.clone();
                blocking(move || helm.history(&release.name, &release.namespace)).await??
            };
            match helm::last_good_revision(&history) {
                None => {
                    let forgotten = guard::forget_release(&self.client, &self.release).await?;
                    progress.note(&format!(
                        "release cilium was left pending-install by an interrupted run: removed its record ({}); the objects stay",
                        forgotten.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
                Some(good) => {
                    let mut request =
                        RollbackRequest::new(&release.name, &release.namespace, Some(good));
                    request.wait = Wait::ReadyLegacy;
                    request.timeout = self.options.helm_timeout;
                    let helm = helm.clone();
                    blocking(move || helm.rollback(&request)).await??;
                    progress.note(&format!(
                        "release cilium was left {} by an interrupted run: rolled back to revision {good}",
                        status.info.status
                    ));
                }
            }
        }
        let mut request = UpgradeInstall::adopt(
            &release.name,
            &release.namespace,
            self.options.chart.clone(),
        );
        request.version = Some(self.chart_version.clone());
        request.values_files = vec![self.values_file.path().to_owned()];
        request.wait = Wait::ReadyLegacy;
        request.timeout = self.options.helm_timeout;
        if self.strategy == Strategy::TakeOverRelease {
            // The release owns its objects already; Helm keeps its own apply method.
            request.ownership = Ownership::Fresh {
                on_failure: helm::OnFailure::Keep,
            };
        }
        let info = blocking(move || helm.upgrade_install(&request)).await??;
        progress.note(&format!(
            "release {} revision {} {}",
            info.name, info.revision, info.info.status
        ));
        if self.strategy == Strategy::Replace {
            // Part of this step so that a resumed install rolls what an interrupted one left.
            self.roll_adopted_agents(progress).await?;
        }
        Ok(())
    }

    /// `replace` orphans the template-era agent pods and the chart's DaemonSet adopts them, but
    /// the DaemonSet controller treats a pod as up to date when its `pod-template-generation`
    /// label equals the DaemonSet's generation, which is 1 for both: they would keep running
    /// Kubespray's privileged pod spec. Agents whose `controller-revision-hash` is not the
    /// DaemonSet's current revision are rolled the way `kubectl rollout restart` does (a new
    /// pod template annotation), node by node within the chart's `maxUnavailable`, and the
    /// rollout is awaited. Helm leaves that live-only annotation alone on later upgrades (its
    /// three-way merge and server-side apply only touch fields it rendered before or renders now).
    async fn roll_adopted_agents(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let daemonsets: Api<DaemonSet> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + self.options.helm_timeout;
        let mut restarted = false;
        let mut stale: Vec<String>;
        loop {
            let daemonset = daemonsets
                .get_opt(AGENT_DAEMONSET)
                .await
                .map_err(api("reading DaemonSet kube-system/cilium"))?;
            let Some(daemonset) = daemonset else {
                return Ok(());
            };
            stale = Vec::new();
            if rollout_settled(&daemonset) {
                match self.current_revision_hash(&daemonset).await? {
                    // The controller has not written the revision yet.
                    None => stale.push("(no ControllerRevision yet)".into()),
                    Some(hash) => {
                        stale = self.agents_not_on(&daemonset, &hash).await?;
                        if stale.is_empty() {
                            if restarted {
                                progress.note("agent rollout finished: every agent pod runs the chart's pod template");
                            }
                            return Ok(());
                        }
                        if !restarted {
                            self.restart_agents(&daemonsets).await?;
                            restarted = true;
                            progress.note(&format!(
                                "{} adopted agent pods still run the template-era pod spec: rolling them ({RESTARTED_AT_ANNOTATION})",
                                stale.len()
                            ));
                            continue;
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(FlowError::Refused(format!(
                    "the agent DaemonSet kube-system/cilium did not roll out within {:?}; pods not on its current revision: {}; check `kubectl -n kube-system rollout status ds/cilium` and run again (the run resumes at helm-install)",
                    self.options.helm_timeout,
                    if stale.is_empty() {
                        "(rollout still in progress)".to_owned()
                    } else {
                        stale.join(", ")
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The `controller-revision-hash` of the DaemonSet's newest ControllerRevision.
    async fn current_revision_hash(
        &self,
        daemonset: &DaemonSet,
    ) -> Result<Option<String>, FlowError> {
        let uid = daemonset.metadata.uid.clone().unwrap_or_default();
        let revisions: Api<ControllerRevision> = Api::namespaced(self.client.clone(), NAMESPACE);
        let list = revisions
            .list(&ListParams::default().labels(&selector_of(daemonset)))
            .await
            .map_err(api("listing the agent ControllerRevisions in kube-system"))?;
        Ok(list
            .items
            .into_iter()
            .filter(|r| {
                r.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.controller == Some(true) && o.uid == uid)
            })
            .max_by_key(|r| r.revision)
            .and_then(|r| r.metadata.labels?.get(REVISION_HASH_LABEL).cloned()))
    }

    /// Names of the DaemonSet's pods whose revision is not `hash` (terminating ones included:
    /// the rollout is not over while they exist).
    async fn agents_not_on(
        &self,
        daemonset: &DaemonSet,
        hash: &str,
    ) -> Result<Vec<String>, FlowError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), NAMESPACE);
        let list = pods
            .list(&ListParams::default().labels(&selector_of(daemonset)))
            .await
            .map_err(api("listing the agent pods in kube-system"))?;
        Ok(list
            .items
            .into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REVISION_HASH_LABEL))
                    .map(String::as_str)
                    != Some(hash)
            })
            .map(|p| p.metadata.name.unwrap_or_default())
            .collect())
    }

    /// What `kubectl rollout restart` does: a new pod template annotation, hence a new revision.
    async fn restart_agents(&self, daemonsets: &Api<DaemonSet>) -> Result<(), FlowError> {
        let secs = now_secs();
        let stamp = utc_stamp(secs);
        // YYYYMMDDTHHMMSSZ -> RFC 3339, as kubectl writes it.
        let at = format!(
            "{}-{}-{}T{}:{}:{}Z",
            &stamp[0..4],
            &stamp[4..6],
            &stamp[6..8],
            &stamp[9..11],
            &stamp[11..13],
            &stamp[13..15]
        );
        let patch = json!({"spec": {"template": {"metadata": {"annotations": {
            RESTARTED_AT_ANNOTATION: at
        }}}}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        daemonsets
            .patch(AGENT_DAEMONSET, &params, &Patch::Merge(&patch))
            .await
            .map_err(api("restarting DaemonSet kube-system/cilium"))?;
        Ok(())
    }

    fn edit_inventory(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let inventory = Inventory::load(&self.options.inventory)?;
        let edits = inventory.handover_edits(&HandoverOptions {
            kube_proxy_remove: self.kube_proxy_replaced,
        })?;
        for edit in &edits {
            edit.write()?;
            progress.note(&format!(
                "inventory: {} ({})",
                edit.path.display(),
                edit.changed_keys.join(", ")
            ));
        }
        let path = inventory.dir.join(VALUES_FILE);
        std::fs::write(&path, &self.values_yaml).map_err(io(&path))?;
        progress.note(&format!(
            "values for `helm upgrade cilium -n kube-system -f {}` saved",
            path.display()
        ));
        Ok(())
    }

    async fn verify(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let deadline = Instant::now() + self.options.verify_timeout;
        loop {
            let checks = self.checks().await?;
            let failing: Vec<&CheckLine> =
                checks.iter().filter(|c| !c.ignored && !c.green).collect();
            if failing.is_empty() {
                for c in checks.iter().filter(|c| c.ignored && !c.green) {
                    progress.note(&format!(
                        "ignored check {}: {} {}",
                        c.name, c.state, c.detail
                    ));
                }
                break;
            }
            if Instant::now() >= deadline {
                return Err(FlowError::VerifyTimeout {
                    timeout: self.options.verify_timeout,
                    problems: failing
                        .iter()
                        .map(|c| format!("- {}: {} {}", c.name, c.state, c.detail))
                        .collect::<Vec<_>>()
                        .join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        era::write_handover_marker(
            &self.client,
            &format!("{} {}", utc_stamp(now_secs()), self.bundle_dir.display()),
        )
        .await?;
        Ok(())
    }

    async fn checks(&self) -> Result<Vec<CheckLine>, FlowError> {
        let options = verify::Options::new(&self.release.namespace, &self.release.name);
        let report = verify::verify(&self.client, &options).await?;
        Ok(report
            .checks
            .iter()
            .map(|c| CheckLine {
                name: c.name.clone(),
                state: c.state.label().to_owned(),
                detail: c.detail.clone(),
                green: c.state.is_green(),
                ignored: self.options.ignore_checks.contains(&c.name),
            })
            .collect())
    }
}

/// The agent DaemonSet, in both eras.
const AGENT_DAEMONSET: &str = "cilium";
/// The pod template annotation `kubectl rollout restart` sets.
const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
/// The label the DaemonSet controller puts on its pods and ControllerRevisions.
const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Field manager of this tool's own writes.
const FIELD_MANAGER: &str = "cilium-migrate";

/// The DaemonSet's `matchLabels` as a label selector.
fn selector_of(daemonset: &DaemonSet) -> String {
    daemonset
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The controller has seen the latest spec and every scheduled pod counts as updated and
/// available (by the controller's own rule, which is why pod revisions are checked as well).
fn rollout_settled(daemonset: &DaemonSet) -> bool {
    let generation = daemonset.metadata.generation.unwrap_or(0);
    daemonset.status.as_ref().is_some_and(|status| {
        status.observed_generation.unwrap_or(0) >= generation
            && status.updated_number_scheduled.unwrap_or(0) == status.desired_number_scheduled
            && status.number_ready == status.desired_number_scheduled
            && status.number_available.unwrap_or(0) == status.desired_number_scheduled
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, FlowError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| FlowError::Refused(format!("a helm call did not finish: {e}")))
}

fn summary(plan: &AdoptPlan) -> AdoptionSummary {
    let show = |r: &ObjectRef| r.to_string();
    AdoptionSummary {
        adopted: plan
            .patches
            .iter()
            .filter(|p| p.metadata.is_some())
            .map(|p| show(&p.object))
            .collect(),
        pruned: plan
            .patches
            .iter()
            .filter(|p| !p.prune.is_empty())
            .map(|p| format!("{} ({} fields)", p.object, p.prune.len()))
            .collect(),
        created: plan.to_create.iter().map(show).collect(),
        left_alone: plan.leftovers.iter().map(show).collect(),
        deleted_jobs: plan
            .hook_job_deletions
            .iter()
            .map(|(r, _)| show(r))
            .collect(),
    }
}

fn gate_difference(d: &ConfigDifference, accepted: bool) -> GateDifference {
    GateDifference {
        key: d.key.clone(),
        live: d.live.clone(),
        rendered: d.rendered.clone(),
        changes_behaviour: d.changes_behaviour,
        accepted,
        reason: d.reason.clone(),
    }
}

fn string_map(data: &Value) -> BTreeMap<String, String> {
    data.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn read_live_config(client: &Client) -> Result<LiveConfig, FlowError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let cm = maps
        .get_opt("cilium-config")
        .await
        .map_err(api("reading ConfigMap kube-system/cilium-config"))?
        .ok_or_else(|| {
            FlowError::Refused(
                "ConfigMap kube-system/cilium-config does not exist: there is no Cilium configuration to carry over".into(),
            )
        })?;
    Ok(LiveConfig::from_map(
        cm.data.unwrap_or_default().into_iter().collect(),
        "live ConfigMap kube-system/cilium-config",
    ))
}

/// The `cilium-config` of the backup (a resumed run compares with what ran before it began).
fn backed_up_config(bundle: &Bundle) -> Result<LiveConfig, FlowError> {
    for file in bundle
        .files(Section::Handover)
        .filter(|f| f.kind == "ConfigMap")
    {
        for o in bundle.read_objects(file)? {
            let o = o?;
            if object::str_at(&o, &["metadata", "name"]) == Some("cilium-config") {
                return Ok(LiveConfig::from_map(
                    string_map(&o["data"]),
                    format!("backed-up cilium-config in {}", bundle.dir().display()),
                ));
            }
        }
    }
    Err(FlowError::Refused(format!(
        "the bundle {} holds no cilium-config: it is not the backup of this migration",
        bundle.dir().display()
    )))
}

/// The agent version of the backed-up DaemonSet `cilium`.
fn backed_up_agent_version(bundle: &Bundle) -> Result<Option<String>, FlowError> {
    for file in bundle
        .files(Section::Handover)
        .filter(|f| f.kind == "DaemonSet")
    {
        for o in bundle.read_objects(file)? {
            let o = o?;
            if object::str_at(&o, &["metadata", "name"]) == Some("cilium") {
                return Ok(era::agent_version(&o));
            }
        }
    }
    Ok(None)
}

/// Values of a cilium-cli release, for handing it over unchanged.
fn release_values(
    helm: &Helm,
    release: &Release,
    version: Option<&str>,
) -> Result<ValuesChoice, FlowError> {
    let status = helm
        .status(&release.name, &release.namespace)?
        .ok_or_else(|| {
            FlowError::Refused("release cilium disappeared while planning; run again".into())
        })?;
    let values = helm.get_values(&release.name, &release.namespace, ValuesScope::User, None)?;
    // `helm status` leaves the chart out in some versions; the history names it `name-version`.
    let from_history = || -> Result<Option<String>, FlowError> {
        let history = helm.history(&release.name, &release.namespace)?;
        Ok(history
            .iter()
            .filter(|r| r.revision == status.revision)
            .find_map(|r| chart_version_of(&r.chart)))
    };
    let version = match (version, status.chart.clone()) {
        (Some(v), _) => v.trim_start_matches('v').to_owned(),
        (None, Some(chart)) => chart.version,
        (None, None) => from_history()?.ok_or_else(|| {
            FlowError::Refused(
                "helm does not say which chart version release cilium runs; pass --cilium-version"
                    .into(),
            )
        })?,
    };
    let yaml = format!(
        "# The values of release cilium revision {} (set by cilium-cli), handed over unchanged.\n{}",
        status.revision,
        serde_saphyr::to_string(&values)
            .map_err(|e| FlowError::Refused(format!("writing the release values as YAML: {e}")))?
    );
    Ok(ValuesChoice {
        json: values,
        yaml,
        version,
    })
}

/// The version in Helm's `name-version` chart label (`cilium-1.17.3` gives `1.17.3`).
fn chart_version_of(label: &str) -> Option<String> {
    let bytes = label.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map(|i| label[i..].to_owned())
}

fn write_temp_values(values: &Value) -> Result<tempfile::NamedTempFile, FlowError> {
    use std::io::Write as _;
    let mut file = tempfile::Builder::new()
        .prefix("cilium-values-")
        .suffix(".json")
        .tempfile()
        .map_err(io(&std::env::temp_dir()))?;
    let text = serde_json::to_string_pretty(values).unwrap_or_default();
    file.write_all(text.as_bytes())
        .map_err(io(&std::env::temp_dir()))?;
    Ok(file)
}

fn agent_version_of(state: &era::ClusterState) -> Option<String> {
    state
        .objects
        .iter()
        .find(|o| {
            o["kind"] == "DaemonSet" && object::str_at(o, &["metadata", "name"]) == Some("cilium")
        })
        .and_then(era::agent_version)
}

fn default_version(vars: &InventoryVars) -> Result<ChartVersion, FlowError> {
    match vars.get("cilium_version").and_then(|v| v.value.as_str()) {
        Some(text) => Ok(ChartVersion::parse(text)?),
        None => Err(FlowError::Refused(
            "neither the agent image nor the inventory says which Cilium version runs: pass --cilium-version X.Y.Z".into(),
        )),
    }
}

/// Whether the inventory still installs Cilium (`kube_network_plugin: cilium`).
fn inventory_claim(variables: &Variables) -> InventoryClaim {
    let plugin = variables
        .value("kube_network_plugin")
        .and_then(Value::as_str);
    let additionally = variables
        .value("cilium_deploy_additionally")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    match plugin {
        Some("cilium") => InventoryClaim::ManagesCilium,
        _ if additionally => InventoryClaim::ManagesCilium,
        Some(_) => InventoryClaim::DoesNotManageCilium,
        None => InventoryClaim::Unknown,
    }
}

/// The inventory's resolved variables as `cilium-values` reads them, with short origins, plus
/// `etcd_access_addresses` computed from the etcd hosts as Kubespray does (the same glue as
/// `cargo xtask values`).
pub fn inventory_vars(inventory: &Inventory, variables: &Variables) -> InventoryVars {
    let mut vars = InventoryVars::new();
    for variable in variables.iter() {
        let origin = match &variable.origin {
            Origin::Inventory { file, key, line } => {
                let file = inventory.display_path(file).display();
                match line {
                    Some(line) => format!("{file}:{line}: {key}"),
                    None => format!("{file}: {key}"),
                }
            }
            other => other.to_string(),
        };
        vars.insert(
            variable.name.clone(),
            InventoryVar::new(variable.value.clone(), origin),
        );
    }
    let mut etcd = inventory.group_hosts("etcd");
    let mut group = "etcd";
    if etcd.is_empty() {
        etcd = inventory.group_hosts("kube_control_plane");
        group = "kube_control_plane";
    }
    if !etcd.is_empty() && !vars.contains_key("etcd_access_addresses") {
        let addresses: Vec<String> = etcd
            .iter()
            .map(|h| format!("https://{}:2379", h.access_address()))
            .collect();
        let files: Vec<String> = inventory
            .inventory_files
            .iter()
            .map(|f| inventory.display_path(f).display().to_string())
            .collect();
        vars.insert(
            "etcd_access_addresses".to_owned(),
            InventoryVar::new(
                Value::String(addresses.join(",")),
                format!("{}: hosts of group {group}", files.join(", ")),
            ),
        );
    }
    vars
}

fn absolute(path: &Path) -> Result<PathBuf, FlowError> {
    std::path::absolute(path).map_err(io(path))
}

/// Opens the bundle's journal, refusing one written for another cluster.
fn open_journal(dir: &Path, identity: &ClusterIdentity) -> Result<Option<Journal>, FlowError> {
    match Journal::open(dir) {
        Ok(j) => {
            j.ensure_cluster(identity)?;
            Ok(Some(j))
        }
        Err(crate::journal::JournalError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `./cilium-migrate-<host>-*` with a journal of this cluster, else a new name.
fn default_bundle(identity: &ClusterIdentity) -> Result<PathBuf, FlowError> {
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    let found = default_bundle_in(&cwd, identity)?;
    // Relative, as the operator would type it.
    Ok(found
        .strip_prefix(&cwd)
        .map(Path::to_path_buf)
        .unwrap_or(found))
}

/// The newest `<dir>/cilium-migrate-<host>-*` whose journal belongs to this cluster (a finished
/// one makes the run a no-op, an unfinished one resumes), else a new `<UTC time>` name in `dir`.
fn default_bundle_in(dir: &Path, identity: &ClusterIdentity) -> Result<PathBuf, FlowError> {
    let host: String = identity
        .api_server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let prefix = format!("{BUNDLE_PREFIX}{host}-");
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| p.join(JOURNAL_FILE).is_file())
        .collect();
    candidates.sort();
    for dir in candidates.into_iter().rev() {
        if let Ok(j) = Journal::open(&dir)
            && j.header().cluster.kube_system_uid == identity.kube_system_uid
        {
            return Ok(dir);
        }
    }
    Ok(dir.join(format!("{prefix}{}", utc_stamp(now_secs()))))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (UTC, proleptic Gregorian).
pub fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// What [`rollback`] does.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The bundle of the migration to undo.
    pub bundle: PathBuf,
    /// Kubeconfig (`None`: the default).
    pub kubeconfig: Option<PathBuf>,
    /// The helm binary (`None`: `helm` on `PATH`).
    pub helm: Option<PathBuf>,
    /// Change the cluster (without it: say what would be done).
    pub apply: bool,
}

/// What [`rollback`] did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackOutcome {
    /// What happens to the release.
    pub release: String,
    /// Objects the hand-over created, deleted.
    pub removed: Vec<String>,
    /// Objects put back as backed up.
    pub replaced: Vec<String>,
    /// Objects re-created from the backup.
    pub recreated: Vec<String>,
    /// Objects already as backed up.
    pub unchanged: usize,
    /// Inventory files written back.
    pub inventory: Vec<PathBuf>,
    /// Differences left between the bundle and the cluster (empty: restored exactly).
    pub differences: Vec<String>,
    /// Whether anything was changed.
    pub applied: bool,
}

/// Returns the cluster and the inventory to the backed-up state (see the module documentation).
pub async fn rollback(
    options: &RollbackOptions,
    progress: &mut dyn Progress,
) -> Result<RollbackOutcome, FlowError> {
    Box::pin(rollback_boxed(options, progress)).await
}

async fn rollback_boxed(
    options: &RollbackOptions,
    progress: &mut dyn Progress,
) -> Result<RollbackOutcome, FlowError> {
    let started = Instant::now();
    let (client, url) = phase(
        progress,
        started,
        "connect",
        connect(options.kubeconfig.as_deref()),
    )
    .await?;
    let identity = ClusterIdentity::read(&client, &url).await?;
    let dir = &options.bundle;
    if !dir.join(MANIFEST_FILE).exists() {
        let journal = open_journal(dir, &identity)?;
        return match journal {
            Some(j) if j.state_of(Step::Backup) != Some(StepState::Done) => Ok(RollbackOutcome {
                release:
                    "nothing to roll back: the backup never finished, and nothing changes before it"
                        .into(),
                ..RollbackOutcome::default()
            }),
            _ => Err(FlowError::Refused(format!(
                "{} has no {MANIFEST_FILE}: it is not a backup bundle of this tool",
                dir.display()
            ))),
        };
    }
    let bundle = Bundle::open(dir)?;
    phase(progress, started, "verify bundle", async {
        Ok(bundle.verify()?)
    })
    .await?;
    bundle.manifest().cluster.ensure_same(&identity)?;
    let release = Release::default();
    let recorded = recorded_revision(&bundle)?;
    let mut helm = Helm::locate(options.helm.as_deref())?;
    if let Some(kubeconfig) = &options.kubeconfig {
        helm = helm.with_kubeconfig(kubeconfig);
    }
    let mut outcome = RollbackOutcome {
        release: match recorded {
            None => "release cilium did not exist before: forget it (delete its records only; the objects stay and are restored)".into(),
            Some(r) => format!("release cilium was at revision {r}: helm rollback to it when it has moved"),
        },
        ..RollbackOutcome::default()
    };
    if !options.apply {
        return Ok(outcome);
    }
    outcome.applied = true;

    let t = Instant::now();
    progress.started("release", started.elapsed());
    match recorded {
        None => {
            let forgotten = guard::forget_release(&client, &release).await?;
            let removed = restore::remove_created(&client, &bundle, &release).await?;
            outcome.release = format!(
                "forgot release cilium ({} records); the objects it managed stay",
                forgotten.len()
            );
            outcome.removed = removed.iter().map(ToString::to_string).collect();
        }
        Some(revision) => {
            let current = {
                let helm = helm.clone();
                blocking(move || helm.status(&release.name, &release.namespace)).await??
            };
            let moved = current
                .as_ref()
                .is_none_or(|c| c.revision != revision || c.info.status != ReleaseStatus::Deployed);
            if moved {
                let mut request = RollbackRequest::new("cilium", NAMESPACE, Some(revision));
                request.wait = Wait::ReadyLegacy;
                let helm = helm.clone();
                blocking(move || helm.rollback(&request)).await??;
                outcome.release = format!("helm rollback cilium {revision}");
            } else {
                outcome.release =
                    format!("release cilium is still at revision {revision}: unchanged");
            }
        }
    }
    progress.finished("release", t.elapsed(), None);

    let t = Instant::now();
    progress.started("restore objects", started.elapsed());
    let report: RestoreReport = restore::restore_handover(&client, &bundle).await?;
    outcome.replaced = report.replaced.iter().map(ToString::to_string).collect();
    outcome.recreated = report.created.iter().map(ToString::to_string).collect();
    outcome.unchanged = report.unchanged.len();
    remove_marker(&client).await?;
    progress.finished("restore objects", t.elapsed(), None);

    let t = Instant::now();
    progress.started("restore inventory", started.elapsed());
    outcome.inventory = bundle.restore_inventory()?;
    // The values file the hand-over saved next to the inventory, when it did not exist before.
    let originals: Vec<&Path> = bundle
        .manifest()
        .inventory
        .iter()
        .map(|f| f.original.as_path())
        .collect();
    let mut roots: Vec<PathBuf> = originals
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    roots.sort();
    roots.dedup();
    for root in roots {
        let values = root.join(VALUES_FILE);
        if values.is_file()
            && !originals.contains(&values.as_path())
            && root.join("group_vars").is_dir()
        {
            std::fs::remove_file(&values).map_err(io(&values))?;
            progress.note(&format!("removed {}", values.display()));
        }
    }
    progress.finished("restore inventory", t.elapsed(), None);

    // The bundle is no longer a migration to resume.
    let journal = dir.join(JOURNAL_FILE);
    if journal.exists() {
        let to = dir.join(ROLLED_BACK_JOURNAL);
        std::fs::rename(&journal, &to).map_err(io(&journal))?;
    }

    let t = Instant::now();
    progress.started("compare", started.elapsed());
    let differences = restore::compare_with_cluster(
        &client,
        &bundle,
        &[Section::Handover, Section::CustomResources, Section::Crds],
    )
    .await?;
    outcome.differences = differences.iter().map(Difference::to_string).collect();
    progress.finished("compare", t.elapsed(), None);
    Ok(outcome)
}

/// The newest deployed revision among the backed-up release records (`None`: no release).
fn recorded_revision(bundle: &Bundle) -> Result<Option<u32>, FlowError> {
    let mut newest = None;
    for file in bundle.files(Section::HelmRelease) {
        for o in bundle.read_objects(file)? {
            if let Some(r) = era::ReleaseRecord::from_secret(&o?)
                && r.name == era::RELEASE_NAME
                && matches!(r.status.as_str(), "deployed")
            {
                newest = newest.max(Some(r.revision));
            }
        }
    }
    Ok(newest)
}

async fn remove_marker(client: &Client) -> Result<(), FlowError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {era::HANDOVER_MARKER_ANNOTATION: null}}});
    namespaces
        .patch(NAMESPACE, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api(
            "removing the hand-over marker from namespace kube-system",
        ))?;
    Ok(())
}

impl fmt::Display for GateDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        write!(
            f,
            "{}: live {} vs rendered {} ({}{})",
            self.key,
            show(&self.live),
            show(&self.rendered),
            match (self.changes_behaviour, self.accepted) {
                (false, _) => "same behaviour: ",
                (true, true) => "accepted change: ",
                (true, false) => "CHANGES BEHAVIOUR: ",
            },
            self.reason
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_versions_come_from_helm_chart_labels() {
        assert_eq!(chart_version_of("cilium-1.17.3").as_deref(), Some("1.17.3"));
        assert_eq!(
            chart_version_of("my-cilium-1.18.0-rc.1").as_deref(),
            Some("1.18.0-rc.1")
        );
        assert_eq!(chart_version_of("cilium"), None);
    }

    #[test]
    fn the_default_bundle_is_this_clusters_newest_or_a_new_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cluster = |uid: &str| ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: uid.into(),
        };
        let fresh = default_bundle_in(dir.path(), &cluster("a")).unwrap_or_else(|e| panic!("{e}"));
        let name = fresh.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("cilium-migrate-10.0.0.10-6443-2")),
            "{fresh:?}"
        );
        assert!(!fresh.exists(), "nothing is created");
        let older = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T100000Z");
        let newer = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T110000Z");
        let other = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T120000Z");
        Journal::create(&older, cluster("a"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        Journal::create(&newer, cluster("a"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        // Another cluster behind the same address: never picked.
        Journal::create(&other, cluster("b"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            default_bundle_in(dir.path(), &cluster("a")).ok(),
            Some(newer)
        );
        let for_b = default_bundle_in(dir.path(), &cluster("b")).ok();
        assert_eq!(for_b, Some(other));
        let for_c = default_bundle_in(dir.path(), &cluster("c")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!for_c.exists());
    }

    #[test]
    fn a_rollout_settles_when_every_pod_counts_as_updated_and_available() {
        let daemonset = |generation: i64, observed: i64, updated: i32, ready: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "cilium", "generation": generation},
                "spec": {
                    "selector": {"matchLabels": {"k8s-app": "cilium", "tier": "agent"}},
                    "template": {}
                },
                "status": {
                    "observedGeneration": observed,
                    "desiredNumberScheduled": 3,
                    "currentNumberScheduled": 3,
                    "numberMisscheduled": 0,
                    "updatedNumberScheduled": updated,
                    "numberReady": ready,
                    "numberAvailable": ready,
                }
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(rollout_settled(&daemonset(1, 1, 3, 3)));
        // Just restarted: the controller has not seen generation 2.
        assert!(!rollout_settled(&daemonset(2, 1, 3, 3)));
        assert!(!rollout_settled(&daemonset(2, 2, 1, 3)));
        assert!(!rollout_settled(&daemonset(2, 2, 3, 2)));
        assert_eq!(
            selector_of(&daemonset(1, 1, 3, 3)),
            "k8s-app=cilium,tier=agent"
        );
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-11-26 18:30:05 UTC.
        assert_eq!(utc_stamp(1_795_717_805), "20261126T183005Z");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }

    #[test]
    fn the_inventory_claim_follows_kube_network_plugin() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        let inventory = Inventory::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let variables = inventory
            .variables(kubespray_config::Era::Template)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inventory_claim(&variables), InventoryClaim::ManagesCilium);
        let vars = inventory_vars(&inventory, &variables);
        assert!(vars.contains_key("etcd_access_addresses"));
    }
}
