//! After the hand-over: switch Cilium's service datapath to its kube-proxy replacement and
//! retire kube-proxy, reversibly (`cilium-migrate kube-proxy-replacement check|enable|rollback`).
//!
//! - [`endpoint`]: the API server endpoint every node reaches without kube-proxy
//!   (`k8sServiceHost`/`k8sServicePort`), derived from the inventory as Kubespray wires each
//!   node group, then proved against the cluster; refused with the fix when it cannot be.
//! - [`check`]: kube-proxy's mode and objects, Cilium's setting, kernels, Services.
//! - [`rules`]: kube-proxy's own node rules (what `kube-proxy --cleanup` removes), as pure
//!   functions from what a node prints to what removes them; [`node`] runs them (local, ssh).
//! - [`enable`]: the plan, the journaled run (backup, `helm upgrade` with the release's whole
//!   values plus the switch, rollout, verify, kube-proxy's objects deleted through the
//!   migration's delete guard, node rules removed, `kube_proxy_remove: true` in the inventory)
//!   and the rollback.

pub mod check;
pub mod enable;
pub mod endpoint;
pub mod node;
pub mod node_pod;
pub mod rules;

pub use check::{Item, State, Status};
pub use enable::{EnableOptions, Journal, Plan, RollbackOptions, enable, plan, rollback};
pub use endpoint::{Endpoint, Proof, Wiring};
pub use node::{NodeAccess, NodeCleanup};

/// Where Cilium and kube-proxy live.
pub const NAMESPACE: &str = "kube-system";
/// Cilium's release.
pub const RELEASE: &str = "cilium";
/// kube-proxy's DaemonSet and ConfigMap.
pub const KUBE_PROXY: &str = "kube-proxy";

/// Everything that stops a command.
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
    /// The inventory says something this cannot use.
    #[error("inventory: {problem}")]
    Inventory {
        /// What, with the file, key and fix.
        problem: String,
    },
    /// The API server endpoint could not be proved.
    #[error(
        "cannot prove that every node reaches the API server at {endpoint} without kube-proxy: {why}. \
         Nothing was changed. Fix: pass --api-server HOST:PORT with an address every node reaches the API server on \
         (an external load balancer, or set loadbalancer_apiserver in the inventory), after checking it from a node with \
         `curl -k https://HOST:PORT/version`"
    )]
    EndpointNotProved {
        /// The derived endpoint(s).
        endpoint: String,
        /// Why not.
        why: String,
    },
    /// A node command failed.
    #[error("node {node}: {problem}")]
    Node {
        /// The node.
        node: String,
        /// What failed.
        problem: String,
    },
    /// A file cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The journal cannot be used.
    #[error("journal {}: {problem}", path.display())]
    Journal {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// `enable` will not start.
    #[error("enable refuses to start; nothing was changed:\n  {}", items.join("\n  "))]
    Refused {
        /// One line per reason, with its fix.
        items: Vec<String>,
    },
    /// The delete guard refused or the delete failed.
    #[error(transparent)]
    Delete(#[from] migration::guard::DeleteError),
    /// A rollout did not finish or verify failed.
    #[error("{0}")]
    Unhealthy(String),
}

pub(crate) fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}
