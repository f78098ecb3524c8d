//! The facts `check` judges, as plain data: collected from the cluster by
//! [`mod@crate::collect`], or read from a recorded JSON file in tests.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything `check` looks at, collected once.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterState {
    /// The Cilium version in use (`1.15.9`): the release's chart version, or given.
    pub cilium_version: Option<String>,
    /// The Helm release, when there is one.
    #[serde(default)]
    pub release: Option<ReleaseFacts>,
    /// The live `cilium-config` data (`None` when the ConfigMap is missing).
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// The `gateway.networking.k8s.io` CRDs in the cluster.
    #[serde(default)]
    pub crds: Vec<CrdFacts>,
    /// How many `CiliumLoadBalancerIPPool`s exist (`None`: the CRD is not installed).
    #[serde(default)]
    pub lb_ip_pools: Option<usize>,
    /// How many `CiliumL2AnnouncementPolicy`s exist (`None`: the CRD is not installed).
    #[serde(default)]
    pub l2_announcement_policies: Option<usize>,
    /// How many BGP control-plane objects exist (`CiliumBGPClusterConfig`, `CiliumBGPPeeringPolicy`).
    #[serde(default)]
    pub bgp_objects: usize,
    /// When the oldest running operator container started (Unix seconds).
    #[serde(default)]
    pub operator_started_unix: Option<i64>,
    /// GatewayClass `cilium`, when it exists.
    #[serde(default)]
    pub gateway_class: Option<GatewayClassFacts>,
    /// The LB-IPAM pools and their blocks (for the addresses a Gateway can get).
    #[serde(default)]
    pub lb_ip_pool_blocks: Vec<crate::migrate_ingress::PoolFacts>,
    /// ingress-nginx's controller Service, when there is one (what `migrate-ingress` replaces).
    #[serde(default)]
    pub ingress_nginx: Option<IngressNginxFacts>,
}

/// ingress-nginx's controller Service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressNginxFacts {
    /// `namespace/name`.
    pub service: String,
    /// Its external addresses (`status.loadBalancer.ingress`, `spec.loadBalancerIP`,
    /// `spec.externalIPs`).
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// The Helm release of Cilium.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFacts {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Current revision.
    pub revision: u32,
    /// Helm's status word (`deployed`, `failed`, ...).
    pub status: String,
    /// The chart version of the current revision.
    pub chart_version: Option<String>,
    /// The user-supplied values (`helm get values`).
    #[serde(default)]
    pub values: Value,
}

/// One Gateway API CRD as the API server has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrdFacts {
    /// The plural (`gatewayclasses`).
    pub plural: String,
    /// Versions with `served: true`.
    pub served: Vec<String>,
    /// Versions listed with `served: false`.
    #[serde(default)]
    pub unserved: Vec<String>,
    /// `status.storedVersions`: every version objects were ever stored at (TLSRoute `v1alpha2`
    /// from before Cilium 1.20); the API server keeps it across CRD updates.
    #[serde(default)]
    pub stored_versions: Vec<String>,
    /// The `gateway.networking.k8s.io/bundle-version` annotation.
    #[serde(default)]
    pub bundle_version: Option<String>,
    /// The `gateway.networking.k8s.io/channel` annotation.
    #[serde(default)]
    pub channel: Option<String>,
    /// Creation time (Unix seconds).
    #[serde(default)]
    pub created_unix: Option<i64>,
}

/// GatewayClass `cilium`'s state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayClassFacts {
    /// `spec.controllerName`.
    pub controller: String,
    /// The `Accepted` condition's status (`True`, `False`, `Unknown`); `None` without one.
    #[serde(default)]
    pub accepted: Option<String>,
    /// The condition's reason and message.
    #[serde(default)]
    pub message: String,
}

impl ClusterState {
    /// One `cilium-config` key.
    pub fn config_value(&self, key: &str) -> Option<&str> {
        self.config.as_ref()?.get(key).map(String::as_str)
    }

    /// Whether a `cilium-config` boolean is on (Kubespray's template era writes `True`).
    pub fn config_on(&self, key: &str) -> bool {
        self.config_value(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The CRD with this plural.
    pub fn crd(&self, plural: &str) -> Option<&CrdFacts> {
        self.crds.iter().find(|c| c.plural == plural)
    }

    /// A user value of the release by dotted path (`gatewayAPI.enabled`).
    pub fn release_value(&self, path: &str) -> Option<&Value> {
        let mut value = &self.release.as_ref()?.values;
        for key in path.split('.') {
            value = value.get(key)?;
        }
        Some(value)
    }
}
