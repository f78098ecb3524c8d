//! After the hand-over: upgrade the Cilium Helm release one minor at a time, with the gate at
//! every hop.
//!
//! Cilium's upgrade guide is the contract: the latest patch of the running minor first, then
//! each next minor's latest patch; before each, the preflight check; the full values every time
//! (never `--reuse-values`), `upgradeCompatibility` kept at the first installed minor; verify
//! before the next hop.
//!
//! - [`mod@path`]: the hops from the running version to `--to X.Y[.Z]` (pure).
//! - [`archive`]: a chart archive's version, sha256, `values.yaml` and templates.
//! - [`charts`]: where archives come from (`--charts DIR` or the `cilium/cilium` repository).
//! - [`values`]: each hop's values, carried from the release, translated by a reviewed table,
//!   what the chart no longer reads reported.
//! - [`mod@plan`]: per hop the render compared with the previous hop's (hop 1: what runs),
//!   `cilium-config` with the gate of `cilium-values` (each side's absent keys weighed with its
//!   own agent's defaults), the workloads with its workload gate, objects added or removed;
//!   every behaviour change listed under a key the operator accepts it by.
//! - [`live`]: the cluster side: read the start, apply hop by hop (backup, preflight, `helm
//!   upgrade`, rollout, verify), journaled and resumable, and roll back.
//! - [`journal`]: the JSON record of a run.
//! - [`redact`]: secrets kept out of the plan (redacted values, each hop's values file pinned
//!   by sha256).

pub mod archive;
pub mod charts;
pub mod journal;
pub mod live;
pub mod path;
pub mod plan;
pub mod redact;
pub mod values;

use std::path::{Path, PathBuf};

pub use archive::ChartArchive;
pub use charts::ChartStore;
pub use path::{Target, newest_supported, upgrade_path};
pub use plan::{BehaviourChange, Hop, Start, UpgradePlan, plan};

/// The release Cilium's documentation and cilium-cli name.
pub const RELEASE: &str = "cilium";
/// Its namespace.
pub const NAMESPACE: &str = "kube-system";

/// Everything that stops a plan, an upgrade or a rollback.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--to` is not a version.
    #[error("--to {text:?} is not a Cilium version: write 1.17 (its latest patch) or 1.17.18")]
    BadTarget {
        /// What was given.
        text: String,
    },
    /// The target is newer than the gate knows.
    #[error(
        "Cilium {target} is not supported yet: the gate weighs cilium-config with each agent's defaults, and this tool has them for 1.{} to 1.{} only; pass --to 1.{} (or older)",
        cilium_values::OLDEST_MINOR,
        cilium_values::NEWEST_MINOR,
        cilium_values::NEWEST_MINOR
    )]
    UnsupportedTarget {
        /// The target.
        target: String,
    },
    /// The running version is outside what the gate knows.
    #[error(
        "the release runs chart {version}; this tool upgrades releases of 1.{}.x to 1.{}.x, the minors the gate has agent defaults for (older ones: follow Cilium's upgrade guide to 1.{} first)",
        cilium_values::OLDEST_MINOR,
        cilium_values::NEWEST_MINOR,
        cilium_values::OLDEST_MINOR
    )]
    UnsupportedStart {
        /// The running version.
        version: String,
    },
    /// A downgrade was asked for.
    #[error(
        "the release runs {current} and --to means {target}: that is a downgrade, which `upgrade` refuses; use `upgrade rollback` to return to an earlier revision"
    )]
    Downgrade {
        /// The running version.
        current: String,
        /// The target.
        target: String,
    },
    /// No chart for a version the path needs.
    #[error(
        "no chart {version} in {store}: the path needs it (one minor at a time, each at its latest patch); available: {available}"
    )]
    ChartMissing {
        /// The version (`1.16.x`).
        version: String,
        /// Where charts were looked for.
        store: String,
        /// What is there.
        available: String,
    },
    /// No chart at all.
    #[error("no Cilium chart archives (cilium-X.Y.Z.tgz) in {store}")]
    NoCharts {
        /// Where charts were looked for.
        store: String,
    },
    /// A chart archive cannot be used.
    #[error("chart {}: {problem}", path.display())]
    Chart {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The repository answered something unexpected.
    #[error("chart repository: {problem}")]
    Repository {
        /// What is wrong.
        problem: String,
    },
    /// The release's values cannot be carried.
    #[error("the release's values: {problem}")]
    BadValues {
        /// What is wrong.
        problem: String,
    },
    /// A value has no form in the next chart that this tool can choose.
    #[error("the release's value {path}: {value:?} has no form in the next minor; {fix}")]
    CannotTranslate {
        /// Dotted path.
        path: String,
        /// The value.
        value: String,
        /// What to do.
        fix: String,
    },
    /// `helm template` of a hop failed.
    #[error("rendering chart {version} with the hop's values: {source}")]
    Render {
        /// The hop.
        version: String,
        /// Helm's error.
        #[source]
        source: Box<helm::HelmError>,
    },
    /// Helm failed.
    #[error(transparent)]
    Helm(#[from] helm::HelmError),
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster's Gateway API CRDs cannot be read.
    #[error("reading the cluster's Gateway API CRDs: {0}")]
    GatewayApi(#[from] cilium_gateway::Error),
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was read or written.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// No release to upgrade.
    #[error(
        "there is no Helm release {namespace}/{release}: `upgrade` upgrades a Helm release; hand Cilium over first with `cilium-migrate migrate --apply`"
    )]
    NoRelease {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
    },
    /// The plan file does not match the cluster, the release or the charts.
    #[error("plan {}: {problem}; nothing was changed: plan again (`upgrade --output json > FILE`), review, and apply that", path.display())]
    PlanMismatch {
        /// The plan file.
        path: PathBuf,
        /// What differs.
        problem: String,
    },
    /// Behaviour changes nobody accepted.
    #[error(
        "{} behaviour change(s) not accepted, nothing was changed:\n  {}\naccept each with --accept KEY (or VERSION=KEY for one hop), or review the plan (`--output json > plan.json`) and apply it with --plan plan.json",
        changes.len(), changes.join("\n  ")
    )]
    Unaccepted {
        /// `VERSION KEY: what`.
        changes: Vec<String>,
    },
    /// The run lock.
    #[error(transparent)]
    Lock(#[from] migration::lock::LockError),
    /// The backup.
    #[error("backup before hop {version}: {source}")]
    Backup {
        /// The hop.
        version: String,
        /// Why.
        #[source]
        source: Box<migration::bundle::BundleError>,
    },
    /// The cluster identity.
    #[error(transparent)]
    Identity(#[from] migration::identity::IdentityError),
    /// The journal cannot be used.
    #[error("journal {}: {problem}", path.display())]
    Journal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A wait failed.
    #[error(transparent)]
    Rollout(#[from] verify::rollout::RolloutError),
    /// The preflight check did not become ready.
    #[error("preflight for {version}: {problem}")]
    Preflight {
        /// The hop.
        version: String,
        /// What happened.
        problem: String,
    },
    /// A hop did not verify: the run stops there.
    #[error(
        "hop to {version} (release revision {revision}) did not verify: {problems}; nothing further was upgraded. Roll back with `cilium-migrate upgrade rollback --apply` (to revision {before}, before this hop) or `upgrade rollback --to-revision {start} --apply` (before the whole path)"
    )]
    HopFailed {
        /// The hop.
        version: String,
        /// The revision it made.
        revision: u32,
        /// The revision before it.
        before: u32,
        /// The revision before the path.
        start: u32,
        /// The checks that failed.
        problems: String,
    },
    /// Verification could not run.
    #[error("verify: {0}")]
    Verify(#[from] verify::Error),
}

/// Writes a values file (JSON, which Helm reads as YAML) readable by its owner only: values can
/// hold secrets. The file is replaced atomically through a new 0600 file (never written through
/// an existing file or a symlink at its name).
pub fn write_values(dir: &Path, stem: &str, values: &serde_json::Value) -> Result<PathBuf, Error> {
    let path = dir.join(format!("{stem}.values.json"));
    // The text a plan's values_sha256 is of.
    write_private(dir, &path, redact::values_file_text(values).as_bytes())?;
    Ok(path)
}

/// Writes `path` in the state directory `dir` (made 0700 when new) for its owner only.
pub(crate) fn write_private(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    // The state directory holds values and backups: its owner's only.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    kubespray_config::files::write_private_atomic(path, bytes).map_err(io(path))
}
