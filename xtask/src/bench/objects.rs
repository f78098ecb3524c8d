//! Many `cilium.io` objects, created fast: the load for the backup benchmark.
//!
//! Object `i` is a CiliumEndpoint (6 in 10), a CiliumIdentity (3 in 10) or a CiliumNetworkPolicy
//! (1 in 10), shaped like the ones a running cluster holds, with names derived from `i` so that
//! growing the load from N to M creates only objects N..M. Creates run concurrently with a
//! bounded number in flight; an object that exists already counts as created.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// Namespaces the namespaced objects are spread over.
const NAMESPACES: usize = 10;
/// Creates in flight at once.
pub(crate) const CONCURRENCY: usize = 48;
/// The first numeric identity used (well above the fixture's and the reserved ones).
const FIRST_IDENTITY: usize = 100_000;
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The kinds the benchmark creates, as `kubectl get` names them.
pub(crate) const KINDS: &str =
    "ciliumendpoints.cilium.io,ciliumidentities.cilium.io,ciliumnetworkpolicies.cilium.io";

/// Which kind object `i` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Endpoint,
    Identity,
    Policy,
}

impl Kind {
    pub(crate) fn of(index: usize) -> Kind {
        match index % 10 {
            0..=5 => Kind::Endpoint,
            6..=8 => Kind::Identity,
            _ => Kind::Policy,
        }
    }

    fn resource(self) -> ApiResource {
        let (kind, plural) = match self {
            Kind::Endpoint => ("CiliumEndpoint", "ciliumendpoints"),
            Kind::Identity => ("CiliumIdentity", "ciliumidentities"),
            Kind::Policy => ("CiliumNetworkPolicy", "ciliumnetworkpolicies"),
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("cilium.io", "v2", kind), plural)
    }
}

/// The namespace of namespaced object `i`.
fn namespace_of(index: usize) -> String {
    format!("bench-{}", index % NAMESPACES)
}

/// The security labels of object `i`'s workload (one of 100 apps per namespace).
fn security_labels(index: usize) -> Value {
    json!({
        "k8s:app": format!("app-{}", index % 100),
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": namespace_of(index),
        "k8s:io.cilium.k8s.policy.cluster": "default",
        "k8s:io.cilium.k8s.policy.serviceaccount": "default",
        "k8s:io.kubernetes.pod.namespace": namespace_of(index),
    })
}

/// Object `i`, as the API server takes it.
pub(crate) fn object(index: usize) -> Value {
    let kind = Kind::of(index);
    let resource = kind.resource();
    let app = format!("app-{}", index % 100);
    match kind {
        Kind::Endpoint => {
            // Pod IPs from Kubespray's pod network, one per object.
            let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 233, 64, 0)) + index as u32);
            let labels: Vec<String> = security_labels(index)
                .as_object()
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(key, value)| format!("{key}={}", value.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": {
                    "name": format!("{app}-{index:06}"),
                    "namespace": namespace_of(index),
                    "labels": { "app": app },
                },
                "status": {
                    "id": index % 4096,
                    "identity": { "id": FIRST_IDENTITY + index % 1000, "labels": labels },
                    "networking": {
                        "addressing": [{ "ipv4": ip.to_string() }],
                        "node": format!("10.0.0.{}", 11 + index % 20),
                    },
                    "encryption": {},
                    "named-ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
                    "state": "ready",
                },
            })
        }
        Kind::Identity => json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": {
                "name": (FIRST_IDENTITY + index).to_string(),
                "labels": {
                    "app": app,
                    "io.cilium.k8s.policy.cluster": "default",
                    "io.cilium.k8s.policy.serviceaccount": "default",
                    "io.kubernetes.pod.namespace": namespace_of(index),
                },
            },
            "security-labels": security_labels(index),
        }),
        Kind::Policy => json!({
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "metadata": { "name": format!("allow-{app}-{index:06}"), "namespace": namespace_of(index) },
            "spec": {
                "endpointSelector": { "matchLabels": { "app": app } },
                "ingress": [{
                    "fromEndpoints": [{ "matchLabels": { "app": format!("app-{}", (index + 1) % 100) } }],
                    "toPorts": [{ "ports": [{ "port": "8080", "protocol": "TCP" }] }],
                }],
                "egress": [{ "toEntities": ["kube-apiserver", "cluster"] }],
            },
        }),
    }
}

/// Creates the benchmark namespaces (existing ones are fine).
pub(crate) async fn create_namespaces(client: &Client) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for n in 0..NAMESPACES {
        let namespace =
            serde_json::from_value(json!({ "metadata": { "name": format!("bench-{n}") } }))?;
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error).context(format!("creating namespace bench-{n}")),
        }
    }
    Ok(())
}

/// Creates objects `from..to`, `CONCURRENCY` at a time, with a progress line on stderr.
pub(crate) async fn create(client: &Client, from: usize, to: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut done = 0usize;
    let total = to.saturating_sub(from);
    let mut creates = futures::stream::iter(from..to)
        .map(|index| create_one(client, index))
        .buffer_unordered(CONCURRENCY);
    while let Some(result) = creates.next().await {
        result?;
        done += 1;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprintln!(
                "bench: created {done}/{total} cilium.io objects ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "bench: created {total} cilium.io objects (#{from}..#{to}) in {:.1?} ({:.0}/s)",
        started.elapsed(),
        total as f64 / started.elapsed().as_secs_f64().max(1e-3)
    );
    Ok(())
}

async fn create_one(client: &Client, index: usize) -> anyhow::Result<()> {
    let kind = Kind::of(index);
    let resource = kind.resource();
    let object: DynamicObject = serde_json::from_value(object(index))?;
    let api: Api<DynamicObject> = match kind {
        Kind::Identity => Api::all_with(client.clone(), &resource),
        Kind::Endpoint | Kind::Policy => {
            Api::namespaced_with(client.clone(), &namespace_of(index), &resource)
        }
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(error) => Err(error).with_context(|| {
            format!(
                "creating {} {}",
                resource.kind,
                object.metadata.name.unwrap_or_default()
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_six_three_one() {
        let count = |kind| (0..1000).filter(|i| Kind::of(*i) == kind).count();
        assert_eq!(count(Kind::Endpoint), 600);
        assert_eq!(count(Kind::Identity), 300);
        assert_eq!(count(Kind::Policy), 100);
    }

    #[test]
    fn names_are_unique_and_objects_are_well_formed() {
        let mut names = std::collections::BTreeSet::new();
        for index in 0..2000 {
            let object = object(index);
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(!name.is_empty(), "{object}");
            assert_eq!(object["apiVersion"], "cilium.io/v2");
            assert_eq!(namespace.is_none(), kind == "CiliumIdentity", "{object}");
            assert!(
                names.insert((kind, namespace, name)),
                "object {index} repeats a name"
            );
        }
    }
}
