//! Reads a [`ClusterState`] through the Kubernetes API (and Helm for the release).

use std::collections::BTreeMap;

use helm::{Helm, ValuesScope};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use serde_json::Value;

use crate::Error;
use crate::bundle::{BUNDLE_VERSION_ANNOTATION, CHANNEL_ANNOTATION, GROUP};
use crate::state::{ClusterState, CrdFacts, GatewayClassFacts, IngressNginxFacts, ReleaseFacts};

/// Which Cilium installation to read.
#[derive(Debug, Clone)]
pub struct Target {
    /// Namespace of Cilium and its release (`kube-system`).
    pub namespace: String,
    /// Helm release name (`cilium`).
    pub release: String,
    /// Overrides the Cilium version read from the release's chart.
    pub cilium_version: Option<String>,
}

impl Target {
    /// Kubespray's layout: release `cilium` in `kube-system`.
    pub fn kubespray() -> Target {
        Target {
            namespace: "kube-system".to_owned(),
            release: "cilium".to_owned(),
            cilium_version: None,
        }
    }
}

/// The operator pods' label (chart and Kubespray alike).
pub const OPERATOR_SELECTOR: &str = "io.cilium/app=operator";
/// The GatewayClass the chart creates.
pub const GATEWAY_CLASS: &str = "cilium";

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

/// Collects everything `check` judges. Helm is asked for the release when `helm` is given.
pub async fn collect(
    client: &kube::Client,
    helm: Option<&Helm>,
    target: &Target,
) -> Result<ClusterState, Error> {
    let release = match helm {
        Some(helm) => release_facts(helm, target).await?,
        None => None,
    };
    let cilium_version = target
        .cilium_version
        .clone()
        .or_else(|| release.as_ref().and_then(|r| r.chart_version.clone()));

    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &target.namespace);
    let config = config_maps
        .get_opt("cilium-config")
        .await
        .map_err(kube_error(format!(
            "ConfigMap {}/cilium-config",
            target.namespace
        )))?
        .map(|cm| cm.data.unwrap_or_default());

    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let all_crds = crd_api
        .list(&ListParams::default())
        .await
        .map_err(kube_error("CustomResourceDefinitions"))?
        .items;
    let crds = all_crds
        .iter()
        .filter(|crd| crd.spec.group == GROUP)
        .map(crd_facts)
        .collect();

    let count = async |name: &str| -> Result<Option<usize>, Error> {
        let Some(resource) = served_resource(&all_crds, name) else {
            return Ok(None);
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(kube_error(name.to_owned()))?;
        Ok(Some(list.items.len()))
    };
    let lb_ip_pools = count("ciliumloadbalancerippools.cilium.io").await?;
    let l2_announcement_policies = count("ciliuml2announcementpolicies.cilium.io").await?;
    let bgp_objects = count("ciliumbgpclusterconfigs.cilium.io")
        .await?
        .unwrap_or(0)
        + count("ciliumbgppeeringpolicies.cilium.io")
            .await?
            .unwrap_or(0);

    let pods: Api<Pod> = Api::namespaced(client.clone(), &target.namespace);
    let operator_pods = pods
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await
        .map_err(kube_error("cilium-operator pods"))?
        .items;
    let operator_started_unix = operator_pods.iter().filter_map(pod_started).min();

    let gateway_class = gateway_class(client, &all_crds).await?;

    let lb_ip_pool_blocks = match served_resource(&all_crds, "ciliumloadbalancerippools.cilium.io")
    {
        None => Vec::new(),
        Some(resource) => Api::<DynamicObject>::all_with(client.clone(), &resource)
            .list(&ListParams::default())
            .await
            .map_err(kube_error("CiliumLoadBalancerIPPools"))?
            .items
            .iter()
            .map(crate::migrate_ingress::run::pool_facts)
            .collect(),
    };
    let ingress_nginx = ingress_nginx(client).await?;

    Ok(ClusterState {
        cilium_version,
        release,
        config,
        crds,
        lb_ip_pools,
        l2_announcement_policies,
        bgp_objects,
        operator_started_unix,
        gateway_class,
        lb_ip_pool_blocks,
        ingress_nginx,
    })
}

/// The Gateway API CRDs in the cluster, as [`collect`] reads them: what
/// [`crate::bundle::Requirement::for_cluster`] needs (an upgrade plan's hop to 1.20 asks it
/// which TLSRoute channel keeps the cluster's TLSRoutes readable).
pub async fn gateway_api_crds(client: &kube::Client) -> Result<Vec<CrdFacts>, Error> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_error("CustomResourceDefinitions"))?
        .items;
    Ok(crds
        .iter()
        .filter(|crd| crd.spec.group == GROUP)
        .map(crd_facts)
        .collect())
}

/// The label ingress-nginx's released manifests and chart put on the controller's Service.
pub const INGRESS_NGINX_SELECTOR: &str =
    "app.kubernetes.io/name=ingress-nginx,app.kubernetes.io/component=controller";

/// ingress-nginx's controller Service (the first one with an external address, else the first).
async fn ingress_nginx(client: &kube::Client) -> Result<Option<IngressNginxFacts>, Error> {
    let services = Api::<Service>::all(client.clone())
        .list(&ListParams::default().labels(INGRESS_NGINX_SELECTOR))
        .await
        .map_err(kube_error("ingress-nginx controller Services"))?
        .items;
    let facts: Vec<IngressNginxFacts> = services
        .iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| !n.ends_with("-admission"))
        })
        .map(|s| IngressNginxFacts {
            service: format!(
                "{}/{}",
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default()
            ),
            addresses: crate::migrate_ingress::nginx_addresses(s),
        })
        .collect();
    Ok(facts
        .iter()
        .find(|f| !f.addresses.is_empty())
        .or(facts.first())
        .cloned())
}

async fn release_facts(helm: &Helm, target: &Target) -> Result<Option<ReleaseFacts>, Error> {
    let helm = helm.clone();
    let (release, namespace) = (target.release.clone(), target.namespace.clone());
    // helm runs as a child process; keep it off the async workers.
    let joined = tokio::task::spawn_blocking(move || -> Result<_, helm::HelmError> {
        let Some(status) = helm.status(&release, &namespace)? else {
            return Ok(None);
        };
        let values = helm.get_values(&release, &namespace, ValuesScope::User, None)?;
        // `helm status -o json` leaves the chart out; `helm get metadata` has its version.
        let chart_version = match status.chart {
            Some(chart) => Some(chart.version),
            None => chart_version(&helm, &release, &namespace)?,
        };
        Ok(Some(ReleaseFacts {
            name: status.name,
            namespace: status.namespace,
            revision: status.revision,
            status: status.info.status.to_string(),
            chart_version,
            values,
        }))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?;
    Ok(joined?)
}

/// The chart version of the release's current revision (`helm get metadata -o json`).
fn chart_version(
    helm: &Helm,
    release: &str,
    namespace: &str,
) -> Result<Option<String>, helm::HelmError> {
    let text = helm.run([
        "get",
        "metadata",
        release,
        "--namespace",
        namespace,
        "--output",
        "json",
    ])?;
    let metadata: Value = serde_json::from_str(&text).map_err(|e| helm::HelmError::Output {
        command: format!("helm get metadata {release} --namespace {namespace} --output json"),
        expected: "JSON release metadata",
        detail: e.to_string(),
    })?;
    Ok(metadata["version"].as_str().map(str::to_owned))
}

fn crd_facts(crd: &CustomResourceDefinition) -> CrdFacts {
    let annotation = |key: &str| {
        crd.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let (served, unserved): (Vec<_>, Vec<_>) =
        crd.spec.versions.iter().partition(|version| version.served);
    CrdFacts {
        plural: crd.spec.names.plural.clone(),
        served: served.iter().map(|v| v.name.clone()).collect(),
        unserved: unserved.iter().map(|v| v.name.clone()).collect(),
        stored_versions: crd
            .status
            .as_ref()
            .and_then(|s| s.stored_versions.clone())
            .unwrap_or_default(),
        bundle_version: annotation(BUNDLE_VERSION_ANNOTATION),
        channel: annotation(CHANNEL_ANNOTATION),
        created_unix: crd
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
    }
}

/// The API resource of a CRD at its storage version (served), if the CRD exists.
fn served_resource(crds: &[CustomResourceDefinition], name: &str) -> Option<ApiResource> {
    let crd = crds
        .iter()
        .find(|crd| crd.metadata.name.as_deref() == Some(name))?;
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.served && v.storage)
        .or_else(|| crd.spec.versions.iter().find(|v| v.served))?;
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
    Some(ApiResource::from_gvk_with_plural(
        &gvk,
        &crd.spec.names.plural,
    ))
}

/// When the operator container started (a container restart re-checks the CRDs too).
fn pod_started(pod: &Pod) -> Option<i64> {
    let status = pod.status.as_ref()?;
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.running.as_ref()?.started_at.as_ref());
    container
        .or(status.start_time.as_ref())
        .map(|t| t.0.as_second())
}

async fn gateway_class(
    client: &kube::Client,
    crds: &[CustomResourceDefinition],
) -> Result<Option<GatewayClassFacts>, Error> {
    let name = format!("gatewayclasses.{GROUP}");
    let Some(resource) = served_resource(crds, &name) else {
        return Ok(None);
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let Some(object) = api
        .get_opt(GATEWAY_CLASS)
        .await
        .map_err(kube_error(format!("GatewayClass {GATEWAY_CLASS}")))?
    else {
        return Ok(None);
    };
    Ok(Some(gateway_class_facts(&object.data)))
}

/// The facts of a GatewayClass object's `spec` and `status` (its JSON without metadata).
pub fn gateway_class_facts(data: &Value) -> GatewayClassFacts {
    let accepted = data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Accepted");
    let text = |v: Option<&Value>, key: &str| {
        v.and_then(|v| v[key].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    GatewayClassFacts {
        controller: data
            .pointer("/spec/controllerName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        accepted: accepted.map(|c| text(Some(c), "status")),
        message: format!("{} {}", text(accepted, "reason"), text(accepted, "message"))
            .trim()
            .to_owned(),
    }
}

/// A CRD's facts from its manifest (a file given to `--install-crds`), to judge it before it is
/// applied.
pub fn crd_facts_from_manifest(object: &Value) -> Option<CrdFacts> {
    if object["kind"] != "CustomResourceDefinition" || object.pointer("/spec/group")? != GROUP {
        return None;
    }
    let annotations: BTreeMap<String, String> = object
        .pointer("/metadata/annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default();
    let mut facts = CrdFacts {
        plural: object.pointer("/spec/names/plural")?.as_str()?.to_owned(),
        bundle_version: annotations.get(BUNDLE_VERSION_ANNOTATION).cloned(),
        channel: annotations.get(CHANNEL_ANNOTATION).cloned(),
        ..CrdFacts::default()
    };
    for version in object.pointer("/spec/versions")?.as_array()? {
        let name = version["name"].as_str()?.to_owned();
        if version["served"].as_bool().unwrap_or(false) {
            facts.served.push(name);
        } else {
            facts.unserved.push(name);
        }
    }
    Some(facts)
}
