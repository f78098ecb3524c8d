//! The only way this crate deletes anything.
//!
//! [`delete`] checks every target with [`check_deletable`] and only then calls the private raw
//! delete, so no code path in this crate can delete a `CustomResourceDefinition`, a Cilium
//! custom resource (group `cilium.io` or a subgroup) or a Secret:
//! - CRDs and custom resources hold the cluster's identities, endpoints, policies and LB-IPAM
//!   pools; deleting a CRD deletes all its objects.
//! - Secrets hold the hubble CA and leaf certificates (relay and agents must keep trusting each
//!   other through the hand-over), the IPsec keys, and Helm's release records. The `replace`
//!   strategy therefore keeps every Secret, including Kubespray's `hubble-ca-secret`,
//!   `hubble-server-certs`, `hubble-relay-client-certs` and `cilium-ipsec-keys`; the chart's
//!   rendered Secrets of the same name are adopted instead.
//!
//! Deletes also carry a UID precondition, so an object re-created since it was planned is
//! never deleted by mistake.

use kube::api::{ApiResource, DeleteParams, DynamicObject, Preconditions};
use kube::{Api, Client};

use crate::object::{ObjectRef, is_cilium_group};
use crate::template_era;

/// Why a delete is refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The guard refused the target.
    #[error("refusing to delete {object}: {reason}")]
    Refused {
        /// The target.
        object: ObjectRef,
        /// Which rule.
        reason: &'static str,
    },
    /// The API server refused or failed.
    #[error("deleting {object}: {source}")]
    Api {
        /// The target.
        object: ObjectRef,
        /// The API error.
        source: Box<kube::Error>,
    },
}

/// Refuses CRDs, Cilium custom resources and Secrets; allows everything else.
pub fn check_deletable(object: &ObjectRef) -> Result<(), DeleteError> {
    let refuse = |reason| {
        Err(DeleteError::Refused {
            object: object.clone(),
            reason,
        })
    };
    if object.kind == "CustomResourceDefinition" {
        return refuse(
            "CustomResourceDefinitions are never deleted (it would delete every object of the kind)",
        );
    }
    if is_cilium_group(object.group()) {
        return refuse("Cilium custom resources (cilium.io) are never deleted");
    }
    if object.group().is_empty() && object.kind == "Secret" {
        return refuse(
            "Secrets are never deleted (hubble certificates, IPsec keys, Helm release records)",
        );
    }
    Ok(())
}

/// The objects the `replace` strategy deletes: the template-era objects that exist, never a
/// Secret, CRD or custom resource (those are not in the template-era list, and the guard
/// refuses them anyway).
pub fn replace_deletions(live: &[serde_json::Value]) -> Vec<(ObjectRef, String)> {
    let wanted = template_era::template_object_refs();
    live.iter()
        .filter_map(|o| {
            let r = ObjectRef::of(o)?;
            let uid = crate::object::str_at(o, &["metadata", "uid"])?.to_owned();
            wanted.iter().any(|w| w.same_object(&r)).then_some((r, uid))
        })
        .filter(|(r, _)| check_deletable(r).is_ok())
        .collect()
}

/// Deletes one object, if the guard allows it, only if its UID is still `uid`. An object that
/// is already gone counts as deleted. Dependents are deleted in the background, except for
/// workloads whose pods should be taken over by their replacement (`orphan_dependents`).
pub async fn delete(
    client: &Client,
    resource: &ApiResource,
    object: &ObjectRef,
    uid: &str,
    orphan_dependents: bool,
) -> Result<(), DeleteError> {
    check_deletable(object)?;
    raw_delete(client, resource, object, uid, orphan_dependents).await
}

// Private on purpose: every delete in this crate goes through `delete` above.
async fn raw_delete(
    client: &Client,
    resource: &ApiResource,
    object: &ObjectRef,
    uid: &str,
    orphan_dependents: bool,
) -> Result<(), DeleteError> {
    let api: Api<DynamicObject> = match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    let params = if orphan_dependents {
        DeleteParams::orphan()
    } else {
        DeleteParams::background()
    };
    let params = params.preconditions(Preconditions {
        uid: Some(uid.to_owned()),
        resource_version: None,
    });
    match api.delete(&object.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(DeleteError::Api {
            object: object.clone(),
            source: Box::new(source),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn crds_cilium_resources_and_secrets_are_refused() {
        for (api_version, kind, ns, name) in [
            (
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "ciliumnetworkpolicies.cilium.io",
            ),
            (
                "apiextensions.k8s.io/v1beta1",
                "CustomResourceDefinition",
                None,
                "ciliumnodes.cilium.io",
            ),
            (
                "cilium.io/v2",
                "CiliumNetworkPolicy",
                Some("default"),
                "allow-dns",
            ),
            (
                "cilium.io/v2alpha1",
                "CiliumLoadBalancerIPPool",
                None,
                "pool",
            ),
            ("cilium.io/v2", "CiliumIdentity", None, "12345"),
            ("isovalent.cilium.io/v1", "Anything", None, "x"),
            ("v1", "Secret", Some("kube-system"), "hubble-ca-secret"),
            ("v1", "Secret", Some("kube-system"), "cilium-ipsec-keys"),
            (
                "v1",
                "Secret",
                Some("kube-system"),
                "sh.helm.release.v1.cilium.v1",
            ),
        ] {
            let r = ObjectRef::new(api_version, kind, ns, name);
            let err = check_deletable(&r).unwrap_err();
            assert!(matches!(err, DeleteError::Refused { .. }), "{r}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    /// The raw delete is private and the only API delete in the crate: nothing bypasses the guard.
    #[test]
    fn no_delete_outside_the_guard() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // Only the code, not the tests (this one names what it looks for).
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let calls =
                text.matches(".delete(").count() + text.matches("delete_collection").count();
            if path.ends_with("guard.rs") {
                assert_eq!(calls, 1, "guard.rs holds exactly the raw delete");
                assert!(
                    text.contains("\nasync fn raw_delete("),
                    "raw_delete stays private"
                );
            } else {
                assert_eq!(calls, 0, "{} deletes without the guard", path.display());
            }
        }
    }

    #[test]
    fn template_objects_are_allowed() {
        for r in template_era::template_object_refs() {
            check_deletable(&r).unwrap();
        }
        // A group that merely contains "cilium" is not Cilium's.
        check_deletable(&ObjectRef::new("notcilium.io/v1", "Thing", None, "x")).unwrap();
    }

    #[test]
    fn replace_deletes_only_template_objects_that_exist() {
        let live = vec![
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u1"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hubble-ca-secret", "namespace": "kube-system", "uid": "u2"}}),
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u3"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system", "uid": "u4"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cilium", "uid": "u5"}}),
        ];
        let got: Vec<String> = replace_deletions(&live)
            .into_iter()
            .map(|(r, uid)| format!("{r} {uid}"))
            .collect();
        assert_eq!(
            got,
            ["DaemonSet kube-system/cilium u1", "ClusterRole cilium u5"]
        );
    }
}
