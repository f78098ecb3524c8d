//! Why the flow stops: [`FlowError`] and the small adapters that turn component errors into it.
//! Separate so that the orchestration in `mod.rs` reads as the flow, not as its error plumbing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use helm::HelmError;

#[cfg(feature = "fault-injection")]
use super::Step;
use crate::adopt;
use crate::era;
use crate::etcd::EtcdError;
use crate::guard;
use crate::restore;

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
    #[cfg(feature = "fault-injection")]
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

pub(super) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> FlowError {
    let what = what.into();
    move |source| FlowError::Api {
        what,
        source: Box::new(source),
    }
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FlowError + '_ {
    move |source| FlowError::Io {
        path: path.to_owned(),
        source,
    }
}
