//! After the hand-over: check and enable Cilium's Gateway API safely.
//!
//! Operators hand Cilium over to Helm so that they can take the next step: Cilium's Gateway API
//! in place of ingress-nginx. This crate is that step, a layer over the Helm release the
//! migration produced. It is a crate of its own (not part of `xtask`) because it is a separate
//! stage with its own state (the enable journal), used by `cargo xtask gateway-api` and reusable
//! by anything else that holds a `kube::Client` and a [`helm::Helm`].
//!
//! - [`bundle`]: the Gateway API CRD bundles (`v1.0` … `v1.6`, standard and experimental
//!   channels: names, scopes and served versions as upstream ships them) and what each Cilium
//!   minor needs (1.15: v1.0, 1.16: v1.1, 1.17: v1.2, 1.18: v1.3, 1.19: up to v1.4.x, 1.20:
//!   v1.6.1, with the experimental TLSRoute where TLSRoutes from before 1.20 are at `v1alpha2`).
//! - [`state`]: the facts judged, as plain data ([`ClusterState`]); [`mod@collect`] reads them
//!   through the Kubernetes API and Helm.
//! - [`checks`]: `check`, pure functions over a [`ClusterState`] and optionally the Kubespray
//!   inventory's guards ([`InventoryFacts`]), giving a [`Report`] with pass/warn/fail and a fix
//!   per item.
//! - [`mod@enable`]: the plan (pure: values to change, what refuses) and the run: CRDs from files
//!   (never downloaded, never without `--apply`), `helm upgrade` with the release's values plus
//!   `gatewayAPI.enabled: true`, operator restart, wait for GatewayClass `cilium`, verification,
//!   and `helm rollback` to the journal's revision when it does not become healthy.
//! - [`journal`]: the JSON record of an `enable` run (the revision to roll back to).
//! - [`convert`]: ingress-nginx Ingresses → Gateway and HTTPRoute YAML for GatewayClass `cilium`,
//!   with a warning for every annotation that does not carry over.
//! - [`migrate_ingress`]: the staged cut-over from ingress-nginx: `plan`, `apply` beside it
//!   (backed up, journaled, waited for, probed through both front doors), `cutover` (ingress-nginx's
//!   IP moves to the Gateway, or the DNS changes are printed) and `rollback`.
//!
//! What a test cluster without a datapath can and cannot prove: the API server, Helm, the CRDs,
//! the chart's GatewayClass, the operator's rollout and the rollback are real. Nothing runs the
//! Cilium operator there, so nobody accepts GatewayClass `cilium`: tests either play the operator
//! (set the `Accepted` condition themselves) or pass [`AcceptWait::Skip`]. Whether Envoy really
//! serves a Gateway is only provable on a real cluster.

pub mod bundle;
pub mod checks;
pub mod collect;
pub mod convert;
pub mod enable;
pub mod inventory;
pub mod journal;
pub mod migrate_ingress;
pub mod state;

use std::path::PathBuf;

pub use checks::{Item, Remedy, Report, Status, check};
pub use collect::{Target, collect};
pub use enable::{AcceptWait, EnableOptions, EnablePlan, Enabled, enable, plan};
pub use inventory::InventoryFacts;
pub use journal::{Journal, Outcome};
pub use state::ClusterState;

/// Everything that stops `check` or `enable` (a failing check item is not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was read or written.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Helm failed.
    #[error(transparent)]
    Helm(#[from] helm::HelmError),
    /// The inventory cannot be read.
    #[error("inventory {}: {source}", dir.display())]
    Inventory {
        /// The directory given.
        dir: PathBuf,
        /// Why.
        #[source]
        source: Box<kubespray_config::Error>,
    },
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--install-crds` file is not usable.
    #[error("--install-crds {}: {problem}", path.display())]
    CrdFile {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to pass instead.
        problem: String,
    },
    /// The journal cannot be used.
    #[error("journal {}: {problem}", path.display())]
    Journal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// `enable` will not start: these check items fail and it cannot fix them.
    #[error("enable refuses to start; nothing was changed:\n  {}", items.join("\n  "))]
    Refused {
        /// One line per failing item, with its fix.
        items: Vec<String>,
    },
    /// A previous `enable` did not finish.
    #[error(
        "journal {} says an earlier enable of {namespace}/{release} did not finish (it started at revision {previous_revision}); check `helm history {release} -n {namespace}`, then run `cilium-migrate gateway-api rollback --journal {}` or move the journal away to start over",
        journal.display(), journal.display()
    )]
    Interrupted {
        /// The journal.
        journal: PathBuf,
        /// Release name.
        release: String,
        /// Release namespace.
        namespace: String,
        /// The revision to roll back to.
        previous_revision: u32,
    },
    /// `enable` upgraded but the result was not healthy.
    #[error(
        "Gateway API did not become healthy: {reason}; {} (journal {})",
        match rolled_back_to { Some(r) => format!("rolled back to revision {r}"), None => "the rollback failed too: roll back by hand".to_owned() },
        journal.display()
    )]
    EnableFailed {
        /// Why.
        reason: String,
        /// The revision rolled back to, when the rollback worked.
        rolled_back_to: Option<u32>,
        /// The journal.
        journal: PathBuf,
    },
    /// A wait timed out.
    #[error("timed out waiting for {what}; last seen: {last}")]
    Wait {
        /// What was awaited.
        what: String,
        /// The last observation.
        last: String,
    },
    /// A background task died.
    #[error("background task failed: {0}")]
    Task(String),
}
