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
//! never deleted by mistake. The run lock's Lease is released through [`release_lease`], which
//! deletes nothing but a Lease.

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

/// Allows a rollback to delete an object the hand-over created: it must have been recorded
/// absent when the bundle was taken, and carry the ownership metadata of `release` now (so an
/// object someone else created since is left alone). CRDs and Cilium custom resources stay
/// refused; a Secret passes (the chart's `cilium-ca`, say), since it did not exist before.
pub fn check_created(
    object: &ObjectRef,
    live: &serde_json::Value,
    absent_before: &[ObjectRef],
    release: &crate::adopt::Release,
) -> Result<(), DeleteError> {
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
    if !absent_before.iter().any(|a| a.same_object(object)) {
        return refuse("it existed before the hand-over (or was not looked up by the backup)");
    }
    let owner = crate::object::helm_owner(live);
    if owner
        != (crate::object::HelmOwner::Release {
            name: release.name.clone(),
            namespace: release.namespace.clone(),
        })
    {
        return refuse(
            "it does not carry the release's ownership metadata, so the hand-over did not create it",
        );
    }
    Ok(())
}

/// Deletes an object the hand-over created (see [`check_created`]), only if its UID is `uid`.
pub async fn delete_created(
    client: &Client,
    resource: &ApiResource,
    object: &ObjectRef,
    live: &serde_json::Value,
    absent_before: &[ObjectRef],
    release: &crate::adopt::Release,
) -> Result<(), DeleteError> {
    check_created(object, live, absent_before, release)?;
    let uid = crate::object::str_at(live, &["metadata", "uid"])
        .unwrap_or_default()
        .to_owned();
    raw_delete(client, resource, object, &uid, false).await
}

/// Whether a Secret is one of Helm's storage records of `release`
/// (`sh.helm.release.v1.<name>.v<N>`, labels `owner=helm`, `name=<name>`).
pub fn is_release_record(secret: &serde_json::Value, release: &crate::adopt::Release) -> bool {
    let name = crate::object::str_at(secret, &["metadata", "name"]).unwrap_or_default();
    let namespace = crate::object::str_at(secret, &["metadata", "namespace"]);
    let prefix = format!("sh.helm.release.v1.{}.v", release.name);
    secret.get("kind").and_then(serde_json::Value::as_str) == Some("Secret")
        && namespace == Some(release.namespace.as_str())
        && name
            .strip_prefix(&prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        && crate::object::label(secret, "owner") == Some("helm")
        && crate::object::label(secret, "name") == Some(release.name.as_str())
}

/// Deletes Helm's storage records of `release`, so that the release no longer exists while
/// every object it managed stays (Helm's uninstall would delete them, the adopted DaemonSet
/// included: `helm.sh/resource-policy` is read from the release manifest, not from the live
/// objects). For a rollback of a release that did not exist before the hand-over.
pub async fn forget_release(
    client: &Client,
    release: &crate::adopt::Release,
) -> Result<Vec<ObjectRef>, DeleteError> {
    let secrets = ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("", "v1", "Secret"),
        "secrets",
    );
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &release.namespace, &secrets);
    let selector = format!("owner=helm,name={}", release.name);
    let listed = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|source| DeleteError::Api {
            object: ObjectRef::new(
                "v1",
                "Secret",
                Some(&release.namespace),
                &format!("sh.helm.release.v1.{}.*", release.name),
            ),
            source: Box::new(source),
        })?;
    let mut forgotten = Vec::new();
    for item in listed.items {
        let mut json = serde_json::to_value(&item).unwrap_or_default();
        json["kind"] = serde_json::json!("Secret");
        json["apiVersion"] = serde_json::json!("v1");
        let Some(r) = ObjectRef::of(&json) else {
            continue;
        };
        if !is_release_record(&json, release) {
            continue;
        }
        let uid = item.metadata.uid.clone().unwrap_or_default();
        raw_delete(client, &secrets, &r, &uid, false).await?;
        forgotten.push(r);
    }
    Ok(forgotten)
}

/// Kinds `replace` deletes and re-creates: the workloads, whose immutable selector is why the
/// strategy exists. Their pods are orphaned, not deleted (see [`delete`]).
pub const REPLACED_KINDS: &[&str] = &["DaemonSet", "Deployment"];

/// The objects the `replace` strategy deletes: the template-era workloads (agent DaemonSet,
/// Deployments) that exist and that the chart renders, whose replacement takes their pods over.
/// Everything else is adopted as `adopt` does: deleting the ServiceAccounts, RBAC or
/// `cilium-config` would break the orphaned agents that still run on them (their tokens die with
/// the ServiceAccount, a restarting agent cannot mount its config) until Helm re-creates them,
/// and for good if the install fails. A workload the chart does not render stays, as with
/// `adopt`. Never a Secret, CRD or custom resource (the guard refuses them anyway).
pub fn replace_deletions(
    live: &[serde_json::Value],
    rendered: &[serde_json::Value],
) -> Vec<(ObjectRef, String)> {
    let wanted = template_era::template_object_refs();
    let rendered: Vec<ObjectRef> = rendered.iter().filter_map(ObjectRef::of).collect();
    live.iter()
        .filter_map(|o| {
            let r = ObjectRef::of(o)?;
            let uid = crate::object::str_at(o, &["metadata", "uid"])?.to_owned();
            let replaced = REPLACED_KINDS.contains(&r.kind.as_str())
                && wanted.iter().any(|w| w.same_object(&r))
                && rendered
                    .iter()
                    .any(|x| x.group() == r.group() && x.kind == r.kind && x.name == r.name);
            replaced.then_some((r, uid))
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

/// Deletes the run lock's own Lease (`coordination.k8s.io`, see [`crate::lock`]) only while it
/// still has this `uid` and `resource_version`: a renewal or a take-over since wins, and a Lease
/// already gone or changed (404, 409) counts as released. The only delete of a kind the
/// hand-over does not own, hence its own narrow door.
pub async fn release_lease(
    api: &Api<k8s_openapi::api::coordination::v1::Lease>,
    name: &str,
    uid: Option<String>,
    resource_version: Option<String>,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => Ok(()),
        Err(e) => Err(e),
    }
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
        // Every source file, in subdirectories (`flow/`) too.
        let mut files = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        assert!(
            files.iter().any(|p| p.ends_with("flow/steps.rs")),
            "{files:?}"
        );
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            // Only the code, not the tests (this one names what it looks for).
            let text = text.split("#[cfg(test)]").next().unwrap_or_default();
            let calls =
                text.matches(".delete(").count() + text.matches("delete_collection").count();
            if path.ends_with("guard.rs") {
                assert_eq!(
                    calls, 2,
                    "guard.rs holds exactly the raw delete and the run lock's Lease release"
                );
                let callers = text.matches("raw_delete(client").count();
                assert_eq!(
                    callers, 3,
                    "raw_delete is called after a check: delete, delete_created, forget_release"
                );
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
    fn rollback_deletes_only_what_the_hand_over_created() {
        let release = crate::adopt::Release::default();
        let owned = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cilium-ca", "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "cilium", "meta.helm.sh/release-namespace": "kube-system"}}});
        let ca = ObjectRef::of(&owned).unwrap();
        check_created(&ca, &owned, std::slice::from_ref(&ca), &release).unwrap();
        // Existed before the hand-over.
        assert!(check_created(&ca, &owned, &[], &release).is_err());
        // Not the release's: someone else made it since.
        let mut foreign = owned.clone();
        foreign["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!("other");
        assert!(check_created(&ca, &foreign, std::slice::from_ref(&ca), &release).is_err());
        // Never a CRD or a Cilium custom resource.
        let pool = ObjectRef::new(
            "cilium.io/v2alpha1",
            "CiliumLoadBalancerIPPool",
            None,
            "pool",
        );
        assert!(check_created(&pool, &owned, std::slice::from_ref(&pool), &release).is_err());
    }

    #[test]
    fn release_records_are_recognised_exactly() {
        let release = crate::adopt::Release::default();
        let record = |name: &str, owner: &str| {
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "kube-system", "labels": {"owner": owner, "name": "cilium"}}})
        };
        assert!(is_release_record(
            &record("sh.helm.release.v1.cilium.v3", "helm"),
            &release
        ));
        assert!(!is_release_record(
            &record("sh.helm.release.v1.cilium.v3", "someone"),
            &release
        ));
        assert!(!is_release_record(
            &record("sh.helm.release.v1.cilium-extra.v3", "helm"),
            &release
        ));
        assert!(!is_release_record(
            &record("hubble-ca-secret", "helm"),
            &release
        ));
        assert!(!is_release_record(
            &record("sh.helm.release.v1.cilium.v", "helm"),
            &release
        ));
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
    fn replace_deletes_only_the_template_workloads_the_chart_renders() {
        let live = vec![
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u1"}}),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hubble-ca-secret", "namespace": "kube-system", "uid": "u2"}}),
            json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy", "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u3"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system", "uid": "u4"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cilium", "uid": "u5"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u6"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system", "uid": "u7"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cilium-operator", "namespace": "kube-system", "uid": "u8"}}),
            // The chart renders no hubble-ui here: it stays, as adopt leaves it.
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hubble-ui", "namespace": "kube-system", "uid": "u9"}}),
        ];
        // `helm template` output: no namespace on some objects.
        let rendered = vec![
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cilium", "namespace": "kube-system"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "cilium-operator"}}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "cilium", "namespace": "kube-system"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cilium"}}),
        ];
        let got: Vec<String> = replace_deletions(&live, &rendered)
            .into_iter()
            .map(|(r, uid)| format!("{r} {uid}"))
            .collect();
        assert_eq!(
            got,
            [
                "DaemonSet kube-system/cilium u1",
                "Deployment kube-system/cilium-operator u8"
            ]
        );
    }
}
