//! What a chart sees as `.Capabilities` on a cluster, for `helm template`.
//!
//! `helm upgrade` reads the cluster's Kubernetes version and served APIs (discovery) into
//! `.Capabilities.KubeVersion` and `.Capabilities.APIVersions`; `helm template` has only Helm's
//! built-in list and the Kubernetes version Helm was built with. A chart that gates an object on
//! an API (Cilium's GatewayClass on `gateway.networking.k8s.io/v1/GatewayClass`, its
//! ServiceMonitor check on `monitoring.coreos.com/v1`) or on the Kubernetes version renders
//! something else than what the upgrade applies, unless the render is given the cluster's
//! [`Capabilities`] (`--kube-version`, `--api-versions`).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;

use crate::request::TemplateRequest;

/// The cluster's Kubernetes version and served APIs, in the forms Helm gives charts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// The API server's `gitVersion` (`v1.33.1`).
    pub kube_version: Option<String>,
    /// Every served `group/version` (`v1` for the core group) and `group/version/Kind`, as Helm
    /// builds `.Capabilities.APIVersions` from discovery.
    pub api_versions: BTreeSet<String>,
}

/// Discovery failed: without the cluster's APIs a render is not what the upgrade applies.
#[derive(Debug, thiserror::Error)]
#[error(
    "reading {what} from the API server (what `helm upgrade` gives the chart as .Capabilities): {source}"
)]
pub struct DiscoveryError {
    /// What was read.
    pub what: String,
    /// The client's error.
    #[source]
    pub source: Box<kube::Error>,
}

impl Capabilities {
    /// Helm's version set from discovery: each served group version, and each resource's
    /// `group/version/Kind` (subresources' kinds too, as Helm lists them; a Kind once per group
    /// version). `resources` are the resource lists of the group versions that answered.
    pub fn from_discovery<'a>(
        kube_version: Option<&str>,
        group_versions: impl IntoIterator<Item = &'a str>,
        resources: &[APIResourceList],
    ) -> Capabilities {
        let mut api_versions: BTreeSet<String> =
            group_versions.into_iter().map(str::to_owned).collect();
        for list in resources {
            api_versions.insert(list.group_version.clone());
            for resource in &list.resources {
                api_versions.insert(format!("{}/{}", list.group_version, resource.kind));
            }
        }
        Capabilities {
            kube_version: kube_version.map(str::to_owned),
            api_versions,
        }
    }

    /// Reads the cluster's capabilities as Helm does. A group version whose resources the API
    /// server cannot list (an aggregated API whose backend is down) keeps its `group/version`
    /// and has no kinds, as in Helm; any other failure is an error.
    pub async fn discover(client: &kube::Client) -> Result<Capabilities, DiscoveryError> {
        let failed = |what: &str| {
            let what = what.to_owned();
            move |source| DiscoveryError {
                what,
                source: Box::new(source),
            }
        };
        let version = client
            .apiserver_version()
            .await
            .map_err(failed("the Kubernetes version (/version)"))?;
        let core = client
            .list_core_api_versions()
            .await
            .map_err(failed("the core API versions (/api)"))?;
        let groups = client
            .list_api_groups()
            .await
            .map_err(failed("the API groups (/apis)"))?;
        let mut group_versions: Vec<String> = core.versions;
        group_versions.extend(
            groups
                .groups
                .into_iter()
                .flat_map(|g| g.versions.into_iter().map(|v| v.group_version)),
        );
        let mut resources = Vec::new();
        for group_version in &group_versions {
            let listed = if group_version.contains('/') {
                client.list_api_group_resources(group_version).await
            } else {
                client.list_core_api_resources(group_version).await
            };
            match listed {
                Ok(list) => resources.push(list),
                // The API server answered for this group version only: Helm skips it too.
                Err(kube::Error::Api(_)) => {}
                Err(source) => {
                    return Err(failed(&format!("the resources of {group_version}"))(source));
                }
            }
        }
        Ok(Capabilities::from_discovery(
            Some(&version.git_version),
            group_versions.iter().map(String::as_str),
            &resources,
        ))
    }

    /// Gives `request` these capabilities (`--kube-version`, `--api-versions`).
    pub fn apply_to(&self, request: &mut TemplateRequest) {
        request.kube_version.clone_from(&self.kube_version);
        request.api_versions = self.api_versions.iter().cloned().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::ChartSource;

    fn list(json: serde_json::Value) -> APIResourceList {
        serde_json::from_value(json).expect("an APIResourceList")
    }

    #[test]
    fn discovery_becomes_helms_version_set_and_template_arguments() {
        // Shaped as the API server answers /api/v1 and /apis/<group>/<version>.
        let core = list(serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
                {"name": "bindings", "singularName": "binding", "namespaced": true, "kind": "Binding", "verbs": ["create"]}
            ]
        }));
        let apps = list(serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "apps/v1",
            "resources": [
                {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get"]},
                {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get"]}
            ]
        }));
        let gateway = list(serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "gateway.networking.k8s.io/v1",
            "resources": [
                {"name": "gatewayclasses", "singularName": "gatewayclass", "namespaced": false, "kind": "GatewayClass", "verbs": ["get"]}
            ]
        }));
        let capabilities = Capabilities::from_discovery(
            Some("v1.33.1"),
            [
                "v1",
                "apps/v1",
                "gateway.networking.k8s.io/v1",
                // Served, but its resources could not be listed (aggregated API down).
                "metrics.k8s.io/v1beta1",
            ],
            &[core, apps, gateway],
        );
        assert_eq!(
            capabilities.api_versions.iter().collect::<Vec<_>>(),
            [
                "apps/v1",
                "apps/v1/Deployment",
                // Helm keys a subresource by the list's group version and its own kind.
                "apps/v1/Scale",
                "gateway.networking.k8s.io/v1",
                "gateway.networking.k8s.io/v1/GatewayClass",
                "metrics.k8s.io/v1beta1",
                "v1",
                "v1/Binding",
                "v1/Pod",
            ]
        );

        let mut request = TemplateRequest::new("cilium", "kube-system", ChartSource::cilium());
        capabilities.apply_to(&mut request);
        let args: Vec<String> = request
            .args()
            .expect("valid request")
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let flag_values = |flag: &str| -> Vec<&str> {
            args.windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].as_str())
                .collect()
        };
        assert_eq!(flag_values("--kube-version"), ["v1.33.1"]);
        let apis = flag_values("--api-versions");
        assert_eq!(apis.len(), 9);
        assert!(apis.contains(&"gateway.networking.k8s.io/v1/GatewayClass"));
        assert!(apis.contains(&"v1"));

        // Offline: nothing is passed, Helm's built-in capabilities stay.
        let mut offline = TemplateRequest::new("cilium", "kube-system", ChartSource::cilium());
        Capabilities::default().apply_to(&mut offline);
        let args = offline.args().expect("valid request");
        assert!(
            !args
                .iter()
                .any(|a| a == "--api-versions" || a == "--kube-version")
        );
    }
}
