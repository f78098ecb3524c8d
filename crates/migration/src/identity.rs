//! Which cluster a bundle and journal belong to.
//!
//! The `kube-system` namespace UID is what decides: it is created once per cluster and never
//! changes. The API server URL is recorded for the operator to read; a different URL with the
//! same UID is the same cluster reached another way (a load balancer instead of a control-plane
//! node), so it is accepted.

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

/// The identity of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdentity {
    /// API server URL as the kubeconfig names it.
    pub api_server: String,
    /// UID of the `kube-system` namespace.
    pub kube_system_uid: String,
}

/// Errors about cluster identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The journal or bundle was written for another cluster.
    #[error(
        "this bundle belongs to another cluster: it was written for {recorded_url} (kube-system UID {recorded_uid}), \
         but the current context is {live_url} (kube-system UID {live_uid}); switch the kubeconfig context to that \
         cluster, or pass a new bundle directory for this one"
    )]
    OtherCluster {
        /// URL recorded in the journal.
        recorded_url: String,
        /// UID recorded in the journal.
        recorded_uid: String,
        /// URL of the live cluster.
        live_url: String,
        /// UID of the live cluster.
        live_uid: String,
    },
    /// Reading `kube-system` failed.
    #[error("cannot read namespace kube-system to identify the cluster at {url}: {source}")]
    Api {
        /// API server URL.
        url: String,
        /// The API error.
        source: kube::Error,
    },
    /// `kube-system` has no UID (never happens on a real API server).
    #[error("namespace kube-system at {0} has no metadata.uid")]
    NoUid(String),
}

impl ClusterIdentity {
    /// Reads the identity of the cluster behind `client`; `api_server` is the URL it talks to
    /// (`kube::Config::cluster_url`).
    pub async fn read(client: &Client, api_server: &str) -> Result<ClusterIdentity, IdentityError> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = namespaces
            .get("kube-system")
            .await
            .map_err(|source| IdentityError::Api {
                url: api_server.to_owned(),
                source,
            })?;
        let uid = ns
            .metadata
            .uid
            .ok_or_else(|| IdentityError::NoUid(api_server.to_owned()))?;
        Ok(ClusterIdentity {
            api_server: api_server.to_owned(),
            kube_system_uid: uid,
        })
    }

    /// Refuses when `live` is another cluster than the recorded `self`.
    pub fn ensure_same(&self, live: &ClusterIdentity) -> Result<(), IdentityError> {
        if self.kube_system_uid == live.kube_system_uid {
            Ok(())
        } else {
            Err(IdentityError::OtherCluster {
                recorded_url: self.api_server.clone(),
                recorded_uid: self.kube_system_uid.clone(),
                live_url: live.api_server.clone(),
                live_uid: live.kube_system_uid.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_uid_decides_not_the_url() {
        let a = ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: "u-1".into(),
        };
        let via_lb = ClusterIdentity {
            api_server: "https://lb.example:6443".into(),
            kube_system_uid: "u-1".into(),
        };
        let other = ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: "u-2".into(),
        };
        a.ensure_same(&via_lb).unwrap();
        let err = a.ensure_same(&other).unwrap_err().to_string();
        assert!(
            err.contains("u-1") && err.contains("u-2") && err.contains("new bundle directory"),
            "{err}"
        );
    }
}
