//! The objects `verify` looks at, read once from the Kubernetes API so that every check is a pure
//! function of them (and can be tested on recorded objects).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectList};
use kube::{Api, Client};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Label selector of the Cilium agent pods (set by Kubespray's manifests and by the chart).
pub const AGENT_POD_SELECTOR: &str = "k8s-app=cilium";

/// Page size for cluster-wide lists, so large clusters don't produce one huge response.
const PAGE_SIZE: u32 = 500;

/// Everything the pure checks read, as the API returned it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSnapshot {
    /// Namespace Cilium is installed in.
    pub namespace: String,
    /// DaemonSet `cilium` (the agent).
    pub agent: Option<DaemonSet>,
    /// DaemonSet `cilium-envoy` (absent before Cilium 1.16 or when Envoy runs in the agent).
    pub envoy: Option<DaemonSet>,
    /// Deployment `cilium-operator`.
    pub operator: Option<Deployment>,
    /// Deployment `hubble-relay`.
    pub hubble_relay: Option<Deployment>,
    /// Deployment `hubble-ui`.
    pub hubble_ui: Option<Deployment>,
    /// Agent pods (label `k8s-app=cilium` in the namespace).
    pub agent_pods: Vec<Pod>,
    /// All pods in the cluster.
    pub pods: Vec<Pod>,
    /// All CiliumEndpoints; `None` when the CRD is not installed.
    pub endpoints: Option<Vec<DynamicObject>>,
    /// All CiliumNodes; `None` when the CRD is not installed.
    pub cilium_nodes: Option<Vec<DynamicObject>>,
    /// All Nodes.
    pub nodes: Vec<Node>,
    /// ConfigMap `cilium-config`.
    pub cilium_config: Option<ConfigMap>,
    /// Helm storage Secrets of the release (labels `owner=helm,name=<release>`).
    pub helm_secrets: Vec<Secret>,
}

/// `cilium.io/v2` CiliumEndpoint (namespaced).
pub fn cilium_endpoint_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumEndpoint"),
        "ciliumendpoints",
    )
}

/// `cilium.io/v2` CiliumNode (cluster-scoped).
pub fn cilium_node_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2", "CiliumNode"),
        "ciliumnodes",
    )
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

/// Lists every object, following `continue` tokens page by page.
async fn list_all<K>(api: &Api<K>, params: ListParams, what: &str) -> Result<Vec<K>, Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = params.limit(PAGE_SIZE);
    loop {
        let page: ObjectList<K> = api.list(&params).await.map_err(kube_error(what))?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(items),
        }
    }
}

/// Like [`list_all`], but a 404 (CRD not installed) is `None`.
async fn list_all_optional(
    api: &Api<DynamicObject>,
    what: &str,
) -> Result<Option<Vec<DynamicObject>>, Error> {
    match list_all(api, ListParams::default(), what).await {
        Ok(items) => Ok(Some(items)),
        Err(Error::Kube { source, .. }) if is_not_found(&source) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn get_optional<K>(api: &Api<K>, name: &str, what: &str) -> Result<Option<K>, Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.map_err(kube_error(what))
}

impl ClusterSnapshot {
    /// Reads the snapshot for Cilium in `namespace` and Helm release `release`.
    pub async fn collect(client: &Client, namespace: &str, release: &str) -> Result<Self, Error> {
        let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let namespaced_pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let all_pods: Api<Pod> = Api::all(client.clone());
        let nodes: Api<Node> = Api::all(client.clone());
        let endpoints: Api<DynamicObject> =
            Api::all_with(client.clone(), &cilium_endpoint_resource());
        let cilium_nodes: Api<DynamicObject> =
            Api::all_with(client.clone(), &cilium_node_resource());

        let helm_selector = format!("owner=helm,name={release}");
        let (agent, envoy, operator, hubble_relay, hubble_ui, cilium_config) = tokio::try_join!(
            get_optional(&daemonsets, "cilium", "DaemonSet cilium"),
            get_optional(&daemonsets, "cilium-envoy", "DaemonSet cilium-envoy"),
            get_optional(
                &deployments,
                "cilium-operator",
                "Deployment cilium-operator"
            ),
            get_optional(&deployments, "hubble-relay", "Deployment hubble-relay"),
            get_optional(&deployments, "hubble-ui", "Deployment hubble-ui"),
            get_optional(&configmaps, "cilium-config", "ConfigMap cilium-config"),
        )?;
        let (agent_pods, pods, nodes, helm_secrets, endpoints, cilium_nodes) = tokio::try_join!(
            list_all(
                &namespaced_pods,
                ListParams::default().labels(AGENT_POD_SELECTOR),
                "agent pods"
            ),
            list_all(&all_pods, ListParams::default(), "pods"),
            list_all(&nodes, ListParams::default(), "Nodes"),
            list_all(
                &secrets,
                ListParams::default().labels(&helm_selector),
                "Helm release Secrets"
            ),
            list_all_optional(&endpoints, "CiliumEndpoints"),
            list_all_optional(&cilium_nodes, "CiliumNodes"),
        )?;
        Ok(ClusterSnapshot {
            namespace: namespace.to_owned(),
            agent,
            envoy,
            operator,
            hubble_relay,
            hubble_ui,
            agent_pods,
            pods,
            endpoints,
            cilium_nodes,
            nodes,
            cilium_config,
            helm_secrets,
        })
    }
}
