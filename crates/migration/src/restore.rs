//! Rollback building blocks: put the hand-over objects back as the bundle recorded them, and
//! compare the cluster with the bundle object by object.
//!
//! Rollback, composed by the caller: undo the release without deleting what it adopted
//! ([`crate::guard::forget_release`] when the bundle has no release records, i.e. the release
//! did not exist before; `helm rollback` to the recorded revision otherwise), delete what the
//! hand-over created ([`remove_created`]), [`restore_handover`], restore the inventory
//! ([`crate::bundle::Bundle::restore_written`]), then [`compare_with_cluster`].
//!
//! Restoring an object that exists replaces it (PUT) with the backed-up object: that removes
//! Helm's ownership metadata and brings back the backed-up labels, annotations (including
//! `last-applied-configuration`), spec and data, keeping the UID. An object created since the
//! backup (another UID) whose immutable fields differ, such as a Service Helm re-created with
//! another clusterIP, is deleted and created from the backup, so the clusterIP comes back. An object that is gone is
//! created from the backup without its server-managed fields. Completed Jobs are not
//! re-created: they are finished one-shot runs (Kubespray's certgen Job would issue new hubble
//! certificates), not state.
//!
//! A workload re-created that way (the agent DaemonSet after `replace` with a chart whose
//! selector differs from Kubespray's) is deleted with its pods *orphaned*, never cascading: a
//! cascading delete would take every agent down at once. Its dependents (pods and
//! ControllerRevisions of a DaemonSet, ReplicaSets of a Deployment) get the restored selector's
//! labels, before the delete and again after it, so the re-created workload adopts them; an
//! orphaned agent pod also loses its `pod-template-generation` label, so that the DaemonSet
//! controller counts it up to date only by its revision hash and replaces it within the
//! restored `maxUnavailable`, node by node, as the forward path rolls the agents. A workload
//! found gone (orphaned by `replace`'s own delete, or by a rollback cut short) is re-created
//! the same way. [`wait_daemonset_rolled`] awaits the roll.
//!
//! The comparison ignores what the API server manages: `uid`, `resourceVersion`,
//! `creationTimestamp`, `generation`, `managedFields`, `selfLink`, `status`, and the
//! annotations `deprecated.daemonset.template.generation` and `deployment.kubernetes.io/revision`
//! (they count template changes), and for Jobs the generated selector and controller-uid labels.
//! It skips the custom resources that a running Cilium writes for itself and that churn on a live
//! cluster whatever the hand-over did ([`CHURNING_KINDS`]: endpoints, identities, nodes): a pod
//! that came or went since the backup is no rollback difference.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::conditions;
use kube::runtime::wait::await_condition;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::bundle::{Bundle, BundleError, Section};
use crate::object::{self, ObjectRef};

/// Kinds of `cilium.io` custom resources that the agents and the operator write for themselves
/// and rewrite or remove as pods, identities and nodes come and go: a live cluster differs from
/// any backup in them within minutes, so they are not compared. They are still backed up, and
/// never deleted ([`crate::guard`]).
pub const CHURNING_KINDS: &[&str] = &[
    "CiliumEndpoint",
    "CiliumEndpointSlice",
    "CiliumIdentity",
    "CiliumNode",
    "CiliumBGPNodeConfig",
];

/// Whether the comparison skips objects of this kind (see [`CHURNING_KINDS`]).
pub fn churns(api_version: &str, kind: &str) -> bool {
    object::is_cilium_group(object::group_of(api_version)) && CHURNING_KINDS.contains(&kind)
}

/// Metadata fields the API server sets.
pub const SERVER_MANAGED_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations controllers maintain.
pub const SERVER_MANAGED_ANNOTATIONS: &[&str] = &[
    "deprecated.daemonset.template.generation",
    "deployment.kubernetes.io/revision",
];

/// Labels the Job controller generates.
const JOB_GENERATED_LABELS: &[&str] = &[
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// The object without server-managed fields, as compared and as created.
pub fn normalize(object: &Value) -> Value {
    let mut o = object.clone();
    if let Some(map) = o.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_MANAGED_METADATA {
            meta.remove(*key);
        }
        if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in SERVER_MANAGED_ANNOTATIONS {
                ann.remove(*key);
            }
            if ann.is_empty() {
                meta.remove("annotations");
            }
        }
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(|m| m.is_empty())
        {
            meta.remove("labels");
        }
    }
    if o.get("kind").and_then(Value::as_str) == Some("Job") {
        if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("selector");
        }
        if let Some(labels) = o
            .pointer_mut("/spec/template/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            for key in JOB_GENERATED_LABELS {
                labels.remove(*key);
            }
        }
    }
    o
}

/// Whether rollback puts this object back (everything except completed Jobs).
pub fn restorable(object: &Value) -> bool {
    if object.get("kind").and_then(Value::as_str) != Some("Job") {
        return true;
    }
    let done = object::value_at(object, &["status", "conditions"])
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                matches!(
                    c.get("type").and_then(Value::as_str),
                    Some("Complete" | "Failed")
                ) && c.get("status").and_then(Value::as_str) == Some("True")
            })
        });
    !done
}

/// JSON pointers where two normalized objects differ (at most `limit`).
pub fn compare_objects(expected: &Value, actual: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff(
        &normalize(expected),
        &normalize(actual),
        &mut String::new(),
        &mut out,
        limit,
    );
    out
}

fn diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    let empty = Value::Object(serde_json::Map::new());
    match (a, b) {
        // An absent map and an empty one are the same (normalize drops empty maps).
        (Value::Object(_), Value::Null) => diff(a, &empty, path, out, limit),
        (Value::Null, Value::Object(_)) => diff(&empty, b, path, out, limit),
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    path,
                    out,
                    limit,
                );
                path.truncate(len);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                diff(p, q, path, out, limit);
                path.truncate(len);
            }
        }
        _ => out.push(if path.is_empty() {
            "/".to_owned()
        } else {
            path.clone()
        }),
    }
}

/// How the cluster differs from the bundle for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// In the bundle, not in the cluster.
    Missing(ObjectRef),
    /// In both, with different content at these paths.
    Changed {
        /// The object.
        object: ObjectRef,
        /// JSON pointers that differ.
        paths: Vec<String>,
    },
    /// Recorded as absent at backup time, present now.
    Unexpected(ObjectRef),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Missing(o) => write!(f, "{o}: missing"),
            Difference::Changed { object, paths } => {
                write!(f, "{object}: differs at {}", paths.join(", "))
            }
            Difference::Unexpected(o) => write!(f, "{o}: exists but did not before the hand-over"),
        }
    }
}

/// Errors restoring or comparing.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading the bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The API server refused.
    #[error("{action} {object}: {source}")]
    Api {
        /// What was done.
        action: &'static str,
        /// The object.
        object: ObjectRef,
        /// The API error.
        source: kube::Error,
    },
    /// An object in the bundle lacks its name or kind.
    #[error("bundle object without apiVersion/kind/name in {0}")]
    BadObject(String),
    /// A delete was refused or failed.
    #[error(transparent)]
    Delete(#[from] crate::guard::DeleteError),
    /// An object to re-create did not go away in time.
    #[error(
        "{object} was deleted to be re-created from the bundle but still exists after {timeout:?}; check its finalizers, then run again"
    )]
    NotDeleted {
        /// The object.
        object: ObjectRef,
        /// How long we waited.
        timeout: std::time::Duration,
    },
}

/// How long a delete before a re-creation may take.
const DELETE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`restore_handover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Objects replaced with the backed-up version.
    pub replaced: Vec<ObjectRef>,
    /// Objects re-created.
    pub created: Vec<ObjectRef>,
    /// Objects already equal to the backup.
    pub unchanged: Vec<ObjectRef>,
    /// Completed Jobs not re-created.
    pub skipped: Vec<ObjectRef>,
}

/// Order in which kinds are restored: what others refer to first.
fn kind_rank(kind: &str) -> u8 {
    match kind {
        "ServiceAccount" | "Secret" | "ConfigMap" => 0,
        "ClusterRole" | "Role" => 1,
        "ClusterRoleBinding" | "RoleBinding" => 2,
        "Service" => 3,
        "DaemonSet" | "Deployment" => 4,
        _ => 5,
    }
}

fn api_for(
    client: &Client,
    bundle_file: &crate::bundle::ObjectFile,
    object: &ObjectRef,
) -> Api<DynamicObject> {
    let resource = bundle_file.api_resource();
    match (&object.namespace, bundle_file.namespaced) {
        (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
        _ => Api::all_with(client.clone(), &resource),
    }
}

/// The body that creates `backup` anew.
pub fn creation_body(backup: &Value) -> Value {
    let mut body = normalize(backup);
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("ownerReferences");
    }
    body
}

/// How often a replace that lost a race with a controller (409 Conflict) is retried.
const CONFLICT_ATTEMPTS: u32 = 5;

/// Puts every object of the `handover` section back as backed up.
pub async fn restore_handover(
    client: &Client,
    bundle: &Bundle,
) -> Result<RestoreReport, RestoreError> {
    let mut report = RestoreReport::default();
    let mut files: Vec<_> = bundle.files(Section::Handover).collect();
    files.sort_by_key(|f| kind_rank(&f.kind));
    for file in files {
        for backup in bundle.read_objects(file)? {
            let backup = backup?;
            let r =
                ObjectRef::of(&backup).ok_or_else(|| RestoreError::BadObject(file.path.clone()))?;
            if !restorable(&backup) {
                report.skipped.push(r);
                continue;
            }
            let api = api_for(client, file, &r);
            'attempt: for attempt in 1..=CONFLICT_ATTEMPTS {
                let live = api
                    .get_opt(&r.name)
                    .await
                    .map_err(|source| RestoreError::Api {
                        action: "reading",
                        object: r.clone(),
                        source,
                    })?;
                match live {
                    Some(live) => {
                        let live_json = serde_json::to_value(&live).unwrap_or(Value::Null);
                        if compare_objects(&backup, &live_json, 1).is_empty() {
                            report.unchanged.push(r.clone());
                            break;
                        }
                        let mut body = creation_body(&backup);
                        body["metadata"]["resourceVersion"] = json!(live.metadata.resource_version);
                        if let Some(owners) = backup.pointer("/metadata/ownerReferences") {
                            body["metadata"]["ownerReferences"] = owners.clone();
                        }
                        let body: DynamicObject = serde_json::from_value(body)
                            .map_err(|_| RestoreError::BadObject(file.path.clone()))?;
                        let live_uid = live.metadata.uid.clone().unwrap_or_default();
                        let backup_uid =
                            object::str_at(&backup, &["metadata", "uid"]).unwrap_or_default();
                        match api.replace(&r.name, &PostParams::default(), &body).await {
                            Ok(_) => report.replaced.push(r.clone()),
                            // A controller wrote the object (status, annotations) between our
                            // read and our replace: read it again and retry.
                            Err(kube::Error::Api(status))
                                if status.code == 409 && attempt < CONFLICT_ATTEMPTS =>
                            {
                                continue 'attempt;
                            }
                            // Another object of that name was created since the backup, and its
                            // immutable fields differ (a Service with another clusterIP): delete it
                            // and create the backed-up one.
                            Err(kube::Error::Api(status))
                                if status.code == 422 && live_uid != backup_uid =>
                            {
                                // A workload's pods are orphaned and adopted by the re-created
                                // one below, which then rolls them (module documentation).
                                let workload =
                                    crate::guard::REPLACED_KINDS.contains(&r.kind.as_str());
                                let live_selector =
                                    object::value_at(&live_json, &["spec", "selector"]);
                                if workload {
                                    // Labelled while still owned, so that a rollback cut short
                                    // between the delete and the create finds them adoptable.
                                    label_dependents(
                                        client,
                                        &r,
                                        live_selector,
                                        Chosen::ControlledBy(&live_uid),
                                        &match_labels(&backup),
                                        false,
                                    )
                                    .await?;
                                }
                                crate::guard::delete(
                                    client,
                                    &file.api_resource(),
                                    &r,
                                    &live_uid,
                                    workload,
                                )
                                .await?;
                                let gone = tokio::time::timeout(
                                    DELETE_TIMEOUT,
                                    await_condition(
                                        api.clone(),
                                        &r.name,
                                        conditions::is_deleted(&live_uid),
                                    ),
                                )
                                .await;
                                if !matches!(gone, Ok(Ok(_))) {
                                    return Err(RestoreError::NotDeleted {
                                        object: r.clone(),
                                        timeout: DELETE_TIMEOUT,
                                    });
                                }
                                if workload {
                                    // And the orphans: those created after the first pass too.
                                    label_dependents(
                                        client,
                                        &r,
                                        live_selector,
                                        Chosen::Orphaned,
                                        &match_labels(&backup),
                                        true,
                                    )
                                    .await?;
                                }
                                let body: DynamicObject =
                                    serde_json::from_value(creation_body(&backup))
                                        .map_err(|_| RestoreError::BadObject(file.path.clone()))?;
                                api.create(&PostParams::default(), &body).await.map_err(
                                    |source| RestoreError::Api {
                                        action: "re-creating",
                                        object: r.clone(),
                                        source,
                                    },
                                )?;
                                report.created.push(r.clone());
                            }
                            Err(source) => {
                                return Err(RestoreError::Api {
                                    action: "replacing",
                                    object: r.clone(),
                                    source,
                                });
                            }
                        }
                    }
                    None => {
                        if crate::guard::REPLACED_KINDS.contains(&r.kind.as_str()) {
                            // Orphans left by a delete (of `replace`, or of a rollback cut
                            // short) that the restored selector picks: adopted, and rolled
                            // unless they run its template already (same revision hash).
                            label_dependents(
                                client,
                                &r,
                                object::value_at(&backup, &["spec", "selector"]),
                                Chosen::Orphaned,
                                &serde_json::Map::new(),
                                true,
                            )
                            .await?;
                        }
                        let body: DynamicObject = serde_json::from_value(creation_body(&backup))
                            .map_err(|_| RestoreError::BadObject(file.path.clone()))?;
                        api.create(&PostParams::default(), &body)
                            .await
                            .map_err(|source| RestoreError::Api {
                                action: "re-creating",
                                object: r.clone(),
                                source,
                            })?;
                        report.created.push(r.clone());
                    }
                }
                break;
            }
        }
    }
    Ok(report)
}

/// Deletes the objects the hand-over created: those the bundle recorded as absent that now
/// exist and carry the release's ownership metadata (through [`crate::guard::delete_created`]).
/// Run it after [`crate::guard::forget_release`], before [`restore_handover`].
pub async fn remove_created(
    client: &Client,
    bundle: &Bundle,
    release: &crate::adopt::Release,
) -> Result<Vec<ObjectRef>, RestoreError> {
    let mut resources = crate::adopt::Resources::default();
    let mut removed = Vec::new();
    for r in &bundle.manifest().absent {
        let (api, resource) = match resources.api(client, r).await {
            Ok(found) => found,
            Err(e) if crate::adopt::is_not_served(&e) => continue,
            Err(source) => {
                return Err(RestoreError::Api {
                    action: "finding the resource of",
                    object: r.clone(),
                    source,
                });
            }
        };
        let Some(live) = api
            .get_opt(&r.name)
            .await
            .map_err(|source| RestoreError::Api {
                action: "reading",
                object: r.clone(),
                source,
            })?
        else {
            continue;
        };
        let mut live = serde_json::to_value(&live).unwrap_or(Value::Null);
        live["apiVersion"] = json!(r.api_version);
        live["kind"] = json!(r.kind);
        if crate::guard::check_created(r, &live, &bundle.manifest().absent, release).is_err() {
            continue;
        }
        crate::guard::delete_created(
            client,
            &resource,
            r,
            &live,
            &bundle.manifest().absent,
            release,
        )
        .await?;
        removed.push(r.clone());
    }
    Ok(removed)
}

/// Compares the cluster with the bundle, object by object, for the given sections (and the
/// objects recorded absent, for `handover`), except the kinds that churn by themselves
/// ([`CHURNING_KINDS`]). Empty means "restored exactly".
pub async fn compare_with_cluster(
    client: &Client,
    bundle: &Bundle,
    sections: &[Section],
) -> Result<Vec<Difference>, RestoreError> {
    let mut differences = Vec::new();
    for file in bundle
        .manifest()
        .objects
        .iter()
        .filter(|f| sections.contains(&f.section) && !churns(&f.api_version, &f.kind))
    {
        for backup in bundle.read_objects(file)? {
            let backup = backup?;
            let r =
                ObjectRef::of(&backup).ok_or_else(|| RestoreError::BadObject(file.path.clone()))?;
            if file.section == Section::Handover && !restorable(&backup) {
                continue;
            }
            let api = api_for(client, file, &r);
            let live = api
                .get_opt(&r.name)
                .await
                .map_err(|source| RestoreError::Api {
                    action: "reading",
                    object: r.clone(),
                    source,
                })?;
            match live {
                None => differences.push(Difference::Missing(r)),
                Some(live) => {
                    let live = serde_json::to_value(&live).unwrap_or(Value::Null);
                    let paths = compare_objects(&backup, &live, 20);
                    if !paths.is_empty() {
                        differences.push(Difference::Changed { object: r, paths });
                    }
                }
            }
        }
    }
    if sections.contains(&Section::Handover) {
        for r in &bundle.manifest().absent {
            let Some(file) = bundle
                .files(Section::Handover)
                .find(|f| f.kind == r.kind && f.api_version == r.api_version)
            else {
                continue;
            };
            if api_for(client, file, r)
                .get_opt(&r.name)
                .await
                .map_err(|source| RestoreError::Api {
                    action: "reading",
                    object: r.clone(),
                    source,
                })?
                .is_some()
            {
                differences.push(Difference::Unexpected(r.clone()));
            }
        }
    }
    Ok(differences)
}

/// The label the DaemonSet controller compares with the DaemonSet's template generation: a pod
/// whose label equals it counts as up to date, whatever it runs.
const POD_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// The label the DaemonSet controller puts on its pods and ControllerRevisions.
pub(crate) const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// What a re-created workload must adopt from the one deleted with orphaning: (apiVersion,
/// kind, plural, labels to drop so the adopted object counts as outdated).
fn orphaned_dependents(
    kind: &str,
) -> &'static [(
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
)] {
    match kind {
        "DaemonSet" => &[
            ("v1", "Pod", "pods", &[POD_TEMPLATE_GENERATION_LABEL]),
            ("apps/v1", "ControllerRevision", "controllerrevisions", &[]),
        ],
        "Deployment" => &[("apps/v1", "ReplicaSet", "replicasets", &[])],
        _ => &[],
    }
}

/// Which dependents [`label_dependents`] changes.
#[derive(Clone, Copy)]
enum Chosen<'a> {
    /// Those whose controller is the object of this UID.
    ControlledBy(&'a str),
    /// Those without a controller.
    Orphaned,
}

/// Gives the dependents of `workload` (pods and ControllerRevisions of a DaemonSet, ReplicaSets
/// of a Deployment) that `selector` and `chosen` pick the labels `wanted` (the restored
/// selector's), so that the re-created workload adopts them instead of starting a second agent
/// next to each; with `outdate`, it also drops the labels that would make an adopted pod count
/// as up to date. Objects that went away or changed meanwhile (their UID is a precondition) are
/// skipped.
async fn label_dependents(
    client: &Client,
    workload: &ObjectRef,
    selector: Option<&Value>,
    chosen: Chosen<'_>,
    wanted: &serde_json::Map<String, Value>,
    outdate: bool,
) -> Result<(), RestoreError> {
    let Some(namespace) = workload.namespace.as_deref() else {
        return Ok(());
    };
    // An empty selector would choose every object of the namespace: no dependent can be told
    // apart by it.
    let Some(selector) = label_selector(selector) else {
        return Ok(());
    };
    let failed = |action: &'static str| {
        let workload = workload.clone();
        move |source| RestoreError::Api {
            action,
            object: workload,
            source,
        }
    };
    for (api_version, kind, plural, dropped) in orphaned_dependents(&workload.kind) {
        let gvk = GroupVersionKind::gvk(
            object::group_of(api_version),
            object::version_of(api_version),
            kind,
        );
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let listed = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(failed("listing the dependents of"))?;
        for item in listed.items {
            let controller = item
                .metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.as_str());
            let picked = match chosen {
                Chosen::ControlledBy(uid) => controller == Some(uid),
                Chosen::Orphaned => controller.is_none(),
            };
            if !picked {
                continue;
            }
            let labels = item.metadata.labels.clone().unwrap_or_default();
            let mut changes = serde_json::Map::new();
            for (key, value) in wanted {
                if labels.get(key).map(String::as_str) != value.as_str() {
                    changes.insert(key.clone(), value.clone());
                }
            }
            for key in dropped.iter().filter(|_| outdate) {
                if labels.contains_key(*key) {
                    changes.insert((*key).to_owned(), Value::Null);
                }
            }
            if changes.is_empty() {
                continue;
            }
            let patch = json!({"metadata": {"uid": item.metadata.uid, "labels": changes}});
            let name = item.metadata.name.clone().unwrap_or_default();
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(failed("labelling a dependent of")(e)),
            }
        }
    }
    Ok(())
}

/// The `matchLabels` of a workload's selector.
fn match_labels(workload: &Value) -> serde_json::Map<String, Value> {
    object::value_at(workload, &["spec", "selector", "matchLabels"])
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// A label selector (`k=v,k in (a,b),!k`) from a workload's `spec.selector`; `None` when it is
/// empty (it would choose everything).
pub fn label_selector(selector: Option<&Value>) -> Option<String> {
    let mut parts = Vec::new();
    let labels = selector
        .and_then(|s| s.get("matchLabels"))
        .and_then(Value::as_object);
    for (key, value) in labels.into_iter().flatten() {
        parts.push(format!("{key}={}", value.as_str()?));
    }
    let expressions = selector
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array);
    for e in expressions.into_iter().flatten() {
        let key = e.get("key")?.as_str()?;
        let values = || -> Option<String> {
            let list: Option<Vec<&str>> = e
                .get("values")?
                .as_array()?
                .iter()
                .map(Value::as_str)
                .collect();
            Some(list?.join(","))
        };
        parts.push(match e.get("operator")?.as_str()? {
            "In" => format!("{key} in ({})", values()?),
            "NotIn" => format!("{key} notin ({})", values()?),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The DaemonSet's `matchLabels` as a label selector.
pub(crate) fn daemonset_selector(daemonset: &DaemonSet) -> String {
    daemonset
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The `controller-revision-hash` of the DaemonSet's newest ControllerRevision (`None` before
/// the controller has written one).
pub(crate) async fn current_revision_hash(
    client: &Client,
    daemonset: &DaemonSet,
) -> Result<Option<String>, kube::Error> {
    let uid = daemonset.metadata.uid.clone().unwrap_or_default();
    let namespace = daemonset.metadata.namespace.as_deref().unwrap_or_default();
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), namespace);
    let list = revisions
        .list(&ListParams::default().labels(&daemonset_selector(daemonset)))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true) && o.uid == uid)
        })
        .max_by_key(|r| r.revision)
        .and_then(|r| r.metadata.labels?.get(REVISION_HASH_LABEL).cloned()))
}

/// Names of the DaemonSet's pods whose revision is not `hash` (terminating ones included: the
/// rollout is not over while they exist).
pub(crate) async fn pods_not_on(
    client: &Client,
    daemonset: &DaemonSet,
    hash: &str,
) -> Result<Vec<String>, kube::Error> {
    Ok(stale_pods(client, daemonset, hash)
        .await?
        .into_iter()
        .map(|p| p.metadata.name.unwrap_or_default())
        .collect())
}

/// The DaemonSet's pods whose revision is not `hash`.
async fn stale_pods(
    client: &Client,
    daemonset: &DaemonSet,
    hash: &str,
) -> Result<Vec<Pod>, kube::Error> {
    let namespace = daemonset.metadata.namespace.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&daemonset_selector(daemonset)))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                .map(String::as_str)
                != Some(hash)
        })
        .collect())
}

/// Waits until DaemonSet `namespace/name` has rolled out ([`verify::rollout::wait_rolled_out`],
/// a watch) and each of its pods runs its current revision (a stale pod that is terminating is
/// awaited until it is gone), or `timeout` passes. Returns what is behind then: empty when
/// rolled out (or when there is no such DaemonSet), else the pods not on the current revision,
/// or the rollout status while the controller is still at it.
pub async fn wait_daemonset_rolled(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<Vec<String>, RestoreError> {
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let object = ObjectRef::new("apps/v1", "DaemonSet", Some(namespace), name);
    let failed = |source| RestoreError::Api {
        action: "watching the rollout of",
        object: object.clone(),
        source,
    };
    let deadline = Instant::now() + timeout;
    loop {
        if daemonsets.get_opt(name).await.map_err(failed)?.is_none() {
            return Ok(Vec::new());
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        match verify::rollout::wait_rolled_out(
            &daemonsets,
            name,
            verify::rollout::daemon_set_rollout,
            remaining,
        )
        .await
        {
            Ok(()) => {}
            Err(verify::rollout::RolloutError::Timeout { seen, .. }) => {
                return Ok(vec![format!("(rollout in progress: {seen})")]);
            }
            Err(verify::rollout::RolloutError::Kube { source, .. }) => return Err(failed(*source)),
        }
        let Some(daemonset) = daemonsets.get_opt(name).await.map_err(failed)? else {
            return Ok(Vec::new());
        };
        // The controller counts every pod updated; each pod's own revision says so too, once
        // the replaced ones are gone.
        let Some(hash) = current_revision_hash(client, &daemonset)
            .await
            .map_err(failed)?
        else {
            return Ok(vec!["(no ControllerRevision yet)".to_owned()]);
        };
        let stale = stale_pods(client, &daemonset, &hash)
            .await
            .map_err(failed)?;
        let names = || -> Vec<String> {
            stale
                .iter()
                .map(|p| p.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        if stale
            .iter()
            .any(|p| p.metadata.deletion_timestamp.is_none())
        {
            // Counted up to date though on another revision: no wait changes that.
            return Ok(names());
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        for pod in &stale {
            let (Some(pod_name), Some(uid)) = (&pod.metadata.name, &pod.metadata.uid) else {
                continue;
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let gone = tokio::time::timeout(
                remaining,
                await_condition(pods.clone(), pod_name, conditions::is_deleted(uid)),
            )
            .await;
            if gone.is_err() {
                return Ok(names());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backed_up() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system", "uid": "u1", "resourceVersion": "10",
                         "generation": 1, "creationTimestamp": "2026-11-26T10:00:00Z",
                         "labels": {"k8s-app": "cilium"},
                         "annotations": {"deprecated.daemonset.template.generation": "1",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"template": {"spec": {"containers": [{"name": "cilium-agent", "image": "a:1"}]}}},
            "status": {"numberReady": 3}})
    }

    #[test]
    fn the_agent_selector_is_the_daemonsets_match_labels() -> Result<(), serde_json::Error> {
        let daemonset: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "cilium"},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium", "tier": "agent"}},
                "template": {}
            }
        }))?;
        assert_eq!(daemonset_selector(&daemonset), "k8s-app=cilium,tier=agent");
        Ok(())
    }

    #[test]
    fn selectors_become_label_selectors() {
        let selector = json!({
            "matchLabels": {"k8s-app": "cilium", "kubespray.example/edit": "true"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["agent", "node"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "env", "operator": "NotIn", "values": ["test"]}
            ]
        });
        assert_eq!(
            label_selector(Some(&selector)).as_deref(),
            Some(
                "k8s-app=cilium,kubespray.example/edit=true,tier in (agent,node),!canary,zone,env notin (test)"
            )
        );
        // An empty selector chooses everything: no orphan can be told apart by it.
        assert_eq!(label_selector(Some(&json!({}))), None);
        assert_eq!(label_selector(None), None);
    }

    #[test]
    fn the_custom_resources_a_running_cilium_rewrites_are_not_compared() {
        for kind in [
            "CiliumEndpoint",
            "CiliumIdentity",
            "CiliumNode",
            "CiliumEndpointSlice",
        ] {
            assert!(churns("cilium.io/v2", kind), "{kind}");
        }
        assert!(churns("cilium.io/v2alpha1", "CiliumEndpointSlice"));
        for (api_version, kind) in [
            ("cilium.io/v2", "CiliumNetworkPolicy"),
            ("cilium.io/v2alpha1", "CiliumLoadBalancerIPPool"),
            ("example.com/v1", "CiliumEndpoint"),
            ("v1", "Endpoints"),
        ] {
            assert!(!churns(api_version, kind), "{api_version} {kind}");
        }
    }

    #[test]
    fn server_managed_fields_are_ignored() {
        let mut live = backed_up();
        live["metadata"]["uid"] = json!("u2");
        live["metadata"]["resourceVersion"] = json!("99");
        live["metadata"]["generation"] = json!(3);
        live["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = json!("3");
        live["status"] = json!({"numberReady": 1});
        assert_eq!(
            compare_objects(&backed_up(), &live, 10),
            Vec::<String>::new()
        );
    }

    #[test]
    fn helm_metadata_and_spec_changes_are_reported() {
        let mut live = backed_up();
        live["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
        live["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubectl.kubernetes.io/last-applied-configuration");
        live["spec"]["template"]["spec"]["containers"][0]["image"] = json!("a:2");
        assert_eq!(
            compare_objects(&backed_up(), &live, 10),
            [
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                "/metadata/labels/app.kubernetes.io~1managed-by",
                "/spec/template/spec/containers/0/image",
            ]
        );
        assert_eq!(compare_objects(&backed_up(), &live, 1).len(), 1);
    }

    #[test]
    fn creation_drops_server_fields_and_job_generated_selectors() {
        let body = creation_body(&backed_up());
        assert!(
            body["metadata"].get("uid").is_none()
                && body["metadata"].get("resourceVersion").is_none()
        );
        assert!(body.get("status").is_none());
        assert_eq!(
            body["metadata"]["annotations"],
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{}"})
        );

        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "x"}},
                     "template": {"metadata": {"labels": {"k8s-app": "j", "controller-uid": "x", "batch.kubernetes.io/controller-uid": "x",
                                                          "job-name": "j", "batch.kubernetes.io/job-name": "j"}}}},
            "status": {"active": 1}});
        let body = creation_body(&job);
        assert!(body["spec"].get("selector").is_none());
        assert_eq!(
            body["spec"]["template"]["metadata"]["labels"],
            json!({"k8s-app": "j"})
        );
        assert!(restorable(&job));
        let mut done = job.clone();
        done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
        assert!(!restorable(&done));
        assert!(restorable(&backed_up()));
    }
}
