//! The adopt strategy: give the live objects to Helm without deleting them.
//!
//! [`plan_adoption`] is pure: from the live objects and the objects the chart renders
//! (`helm template`), it computes per object
//! - the JSON merge patch that adds Helm's ownership metadata (Helm refuses to install over an
//!   object without it), and
//! - the fields to prune: what Kubespray applied that the chart does not render. Helm adopts
//!   with a three-way merge whose "original" is the rendered object, so it never removes fields
//!   only the live object has (stale env, volumes, the `scheduler.alpha...` annotation, config
//!   keys). Kubespray's intent is read from the `last-applied-configuration` annotation that
//!   `kubectl apply` left: a field is pruned when Kubespray applied it, it is still live, and
//!   the chart does not render it. Fields set by the API server or by others are never in that
//!   annotation, so they are left alone. The annotation itself goes too.
//!
//! It also finds what blocks adoption: an immutable selector that differs (use `replace`), an
//! object owned by another release, a name the chart renders as a hook that exists as something
//! Helm cannot replace. A completed Job that the chart renders as a hook (Kubespray's certgen
//! Job `hubble-generate-certs`) is deleted instead: it is a finished one-shot run, and Helm
//! could not create its hook over it.
//!
//! [`apply_adoption`] sends the plan through the API: the metadata as a JSON merge patch, the
//! pruning as a JSON patch that first `test`s every value it removes (and the UID), so a
//! concurrent change makes the patch fail instead of removing something unplanned.
//!
//! Order (see [`Prune::phase`]): metadata and the pruning before `helm upgrade --install`, the
//! `last-applied-configuration` annotation after it (from a fresh plan). The testbed showed
//! why the pruning cannot wait for Helm: Helm's merge leaves Kubespray's unnamed Service port
//! next to the chart's (rejected: ports need names), and Helm 4's server-side apply keeps
//! Kubespray's `secret` volume source next to the chart's `projected` one. Within a pod
//! template, field-by-field removal can be rejected too (Kubespray's `privileged: true` gone
//! while its Bidirectional mount remains), so a template with Kubespray-only fields is replaced
//! whole by the rendered one: the workload rolls once, and Helm finds nothing left to change.
//! The cost: hand edits to such a pod template are dropped too (the bundle keeps them; after
//! the hand-over the chart's values are the place for them).
//!
//! Parse `helm template` output with [`crate::object::parse_manifest`]: it reads numbers as
//! Helm does (`defaultMode: 0400` is octal 256; a YAML 1.2 reader gives 400).

use std::collections::HashMap;
use std::fmt;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{self, Scope};
use kube::{Api, Client};
use serde_json::{Map, Value, json};

use crate::guard;
use crate::object::{
    self, HELM_HOOK_ANNOTATION, HelmOwner, LAST_APPLIED_ANNOTATION, MANAGED_BY_LABEL, ObjectRef,
    RELEASE_NAME_ANNOTATION, RELEASE_NAMESPACE_ANNOTATION,
};

/// The release that takes the objects over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
}

impl Default for Release {
    fn default() -> Self {
        Release {
            name: crate::era::RELEASE_NAME.to_owned(),
            namespace: crate::era::RELEASE_NAMESPACE.to_owned(),
        }
    }
}

/// One field to remove from a live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prune {
    /// JSON pointer into the live object.
    pub path: String,
    /// The live value (tested before removal).
    pub live: Value,
    /// Instead of removing, replace with the rendered value: used when removing every item of
    /// a list would leave a required list empty (e.g. a Service whose only port the chart
    /// renders differently).
    pub replacement: Option<Value>,
}

/// What to do to one live object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPatch {
    /// The live object.
    pub object: ObjectRef,
    /// Its UID (the patches refuse any other object of the same name).
    pub uid: String,
    /// JSON merge patch adding the ownership metadata; `None` when it is already there.
    pub metadata: Option<Value>,
    /// Fields to remove.
    pub prune: Vec<Prune>,
}

impl ObjectPatch {
    /// The whole pruning as one JSON patch (both phases): `test` the UID and every value,
    /// then remove them (array elements from the highest index down, so earlier removals do
    /// not shift later ones).
    pub fn prune_json_patch(&self) -> Value {
        json_patch_of(&self.uid, self.prune.iter())
    }

    /// The pruning of one phase as a JSON patch, `None` when that phase has nothing to do.
    pub fn prune_json_patch_for(&self, phase: Phase) -> Option<Value> {
        let mut selected = self.prune.iter().filter(|p| p.phase() == phase).peekable();
        selected.peek()?;
        Some(json_patch_of(&self.uid, selected))
    }
}

impl Prune {
    /// When this change is made. Before the install: everything but the
    /// `last-applied-configuration` annotation, which the pruning reads and which therefore
    /// goes last, after the install.
    pub fn phase(&self) -> Phase {
        if self.path == pointer(&["metadata", "annotations", LAST_APPLIED_ANNOTATION]) {
            Phase::Prune
        } else {
            Phase::Metadata
        }
    }
}

/// Turns the field-by-field pruning of a pod template into one replacement of the template by
/// the rendered one (tested against the live template). Removing fields one by one can leave
/// a template the API rejects (Kubespray's `privileged: true` gone while its Bidirectional
/// mount remains), and letting Helm merge first can too (Helm 4's server-side apply keeps
/// Kubespray's `secret` source next to the chart's `projected` one in the same volume). The
/// rendered template is valid as a whole, the workload rolls once, and Helm then finds
/// nothing to change in it.
fn collapse_template(prune: Vec<Prune>, live: &Value, rendered: &Value) -> Vec<Prune> {
    let in_template = |p: &Prune| p.path.starts_with("/spec/template/");
    let (Some(live_template), Some(rendered_template)) = (
        live.pointer("/spec/template"),
        rendered.pointer("/spec/template"),
    ) else {
        return prune;
    };
    if !prune.iter().any(in_template) {
        return prune;
    }
    let mut out: Vec<Prune> = prune.into_iter().filter(|p| !in_template(p)).collect();
    out.push(Prune {
        path: "/spec/template".to_owned(),
        live: live_template.clone(),
        replacement: Some(rendered_template.clone()),
    });
    out
}

fn json_patch_of<'a>(uid: &str, prune: impl Iterator<Item = &'a Prune>) -> Value {
    let prune: Vec<&Prune> = prune.collect();
    let mut ops = vec![json!({"op": "test", "path": "/metadata/uid", "value": uid})];
    for p in &prune {
        ops.push(json!({"op": "test", "path": p.path, "value": p.live}));
    }
    let mut removals = prune;
    removals.sort_by(|a, b| pointer_order(&b.path, &a.path));
    for p in removals {
        match &p.replacement {
            None => ops.push(json!({"op": "remove", "path": p.path})),
            Some(value) => ops.push(json!({"op": "replace", "path": p.path, "value": value})),
        }
    }
    Value::Array(ops)
}

/// Orders JSON pointers segment by segment, numbers numerically.
fn pointer_order(a: &str, b: &str) -> std::cmp::Ordering {
    let seg = |s: &str| -> Vec<(Option<u64>, String)> {
        s.split('/')
            .map(|x| (x.parse::<u64>().ok(), x.to_owned()))
            .collect()
    };
    seg(a).cmp(&seg(b))
}

/// Why adoption cannot go ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    /// An immutable selector differs between the chart and the live object.
    SelectorDiffers {
        /// The object.
        object: ObjectRef,
        /// Live selector.
        live: Value,
        /// Rendered selector.
        rendered: Value,
    },
    /// The object belongs to another release.
    OwnedByAnotherRelease {
        /// The object.
        object: ObjectRef,
        /// `namespace/name` of that release.
        owner: String,
    },
    /// The chart renders a hook with this name, and the live object is not a completed Job.
    HookCollision {
        /// The object.
        object: ObjectRef,
    },
}

impl Blocker {
    /// The object that blocks.
    pub fn object(&self) -> &ObjectRef {
        match self {
            Blocker::SelectorDiffers { object, .. }
            | Blocker::OwnedByAnotherRelease { object, .. }
            | Blocker::HookCollision { object } => object,
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::SelectorDiffers {
                object,
                live,
                rendered,
            } => write!(
                f,
                "the selector of {object} differs: live {live}, chart {rendered}; selectors are immutable, so the \
                 object cannot be adopted in place: use --strategy replace"
            ),
            Blocker::OwnedByAnotherRelease { object, owner } => write!(
                f,
                "{object} belongs to Helm release {owner}; the release cilium cannot own it: uninstall or rename that \
                 release, or remove the object from it"
            ),
            Blocker::HookCollision { object } => write!(
                f,
                "the chart renders {object} as a Helm hook, and a live object of that name exists that is not a \
                 completed Job; delete it (after checking it is not needed) or change the chart's hubble.tls.auto.method"
            ),
        }
    }
}

/// The adoption plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdoptPlan {
    /// Patches per live object the chart renders.
    pub patches: Vec<ObjectPatch>,
    /// Completed Jobs in the way of a chart hook (deleted through the guard), with UIDs.
    pub hook_job_deletions: Vec<(ObjectRef, String)>,
    /// Rendered objects that do not exist yet (Helm creates them).
    pub to_create: Vec<ObjectRef>,
    /// Live template-era objects the chart does not render: they stay, unmanaged.
    pub leftovers: Vec<ObjectRef>,
    /// What blocks adoption; empty when it can go ahead.
    pub blockers: Vec<Blocker>,
}

impl AdoptPlan {
    /// Whether nothing blocks adoption.
    pub fn can_adopt(&self) -> bool {
        self.blockers.is_empty()
    }

    /// The plan without these objects: what `replace` adopts, the workloads it deletes and
    /// re-creates left out (their selectors may differ; that is what `replace` is for).
    pub fn without(mut self, objects: &[ObjectRef]) -> AdoptPlan {
        let kept = |r: &ObjectRef| !objects.iter().any(|o| o.same_object(r));
        self.patches.retain(|p| kept(&p.object));
        self.hook_job_deletions.retain(|(r, _)| kept(r));
        self.to_create.retain(|r| kept(r));
        self.leftovers.retain(|r| kept(r));
        self.blockers.retain(|b| kept(b.object()));
        self
    }

    /// Whether every patch is applied (a re-planned, finished adoption).
    pub fn is_empty(&self) -> bool {
        self.hook_job_deletions.is_empty()
            && self
                .patches
                .iter()
                .all(|p| p.metadata.is_none() && p.prune.is_empty())
    }
}

/// Kinds whose `spec.selector` cannot change.
const IMMUTABLE_SELECTOR_KINDS: &[&str] = &["DaemonSet", "Deployment", "StatefulSet", "ReplicaSet"];

/// Computes the adoption plan from live objects (the template-era objects and the live
/// counterparts of rendered ones) and the objects the chart renders.
pub fn plan_adoption(live: &[Value], rendered: &[Value], release: &Release) -> AdoptPlan {
    let mut plan = AdoptPlan::default();
    let mut matched = vec![false; live.len()];
    for r in rendered {
        let Some(rref) = ObjectRef::of(r) else {
            continue;
        };
        let found = live.iter().enumerate().find(|(_, l)| {
            ObjectRef::of(l).is_some_and(|lref| {
                lref.group() == rref.group()
                    && lref.kind == rref.kind
                    && lref.name == rref.name
                    && (lref.namespace == rref.namespace
                        || (rref.namespace.is_none()
                            && lref.namespace.as_deref() == Some(&release.namespace)))
            })
        });
        let Some((index, l)) = found else {
            plan.to_create.push(rref);
            continue;
        };
        matched[index] = true;
        let Some(lref) = ObjectRef::of(l) else {
            continue;
        };
        let uid = object::str_at(l, &["metadata", "uid"])
            .unwrap_or_default()
            .to_owned();

        if object::annotation(r, HELM_HOOK_ANNOTATION).is_some() {
            if is_completed_job(l) {
                plan.hook_job_deletions.push((lref, uid));
            } else {
                plan.blockers.push(Blocker::HookCollision { object: lref });
            }
            continue;
        }

        match object::helm_owner(l) {
            HelmOwner::Release { name, namespace }
                if name != release.name || namespace != release.namespace =>
            {
                plan.blockers.push(Blocker::OwnedByAnotherRelease {
                    object: lref,
                    owner: format!("{namespace}/{name}"),
                });
                continue;
            }
            HelmOwner::Partial => {
                if let Some(name) = object::annotation(l, RELEASE_NAME_ANNOTATION)
                    && name != release.name
                {
                    plan.blockers.push(Blocker::OwnedByAnotherRelease {
                        object: lref,
                        owner: format!(
                            "{}/{name}",
                            object::annotation(l, RELEASE_NAMESPACE_ANNOTATION).unwrap_or("?")
                        ),
                    });
                    continue;
                }
            }
            _ => {}
        }

        if IMMUTABLE_SELECTOR_KINDS.contains(&lref.kind.as_str()) {
            let ls = normalized_selector(object::value_at(l, &["spec", "selector"]));
            let rs = normalized_selector(object::value_at(r, &["spec", "selector"]));
            if ls != rs {
                plan.blockers.push(Blocker::SelectorDiffers {
                    object: lref,
                    live: ls,
                    rendered: rs,
                });
                continue;
            }
        }

        plan.patches.push(ObjectPatch {
            metadata: metadata_patch(l, release, &uid),
            prune: collapse_template(prune_fields(l, r), l, r),
            object: lref,
            uid,
        });
    }
    for (l, was_matched) in live.iter().zip(matched) {
        if !was_matched
            && let Some(lref) = ObjectRef::of(l)
            && crate::template_era::template_kind(&lref).is_some()
        {
            plan.leftovers.push(lref);
        }
    }
    plan
}

/// The merge patch that adds the ownership metadata, or `None` if it is complete already.
fn metadata_patch(live: &Value, release: &Release, uid: &str) -> Option<Value> {
    let complete = object::label(live, MANAGED_BY_LABEL) == Some("Helm")
        && object::annotation(live, RELEASE_NAME_ANNOTATION) == Some(&release.name)
        && object::annotation(live, RELEASE_NAMESPACE_ANNOTATION) == Some(&release.namespace);
    if complete {
        return None;
    }
    Some(json!({
        "metadata": {
            // A UID in a merge patch is a precondition: the server refuses another object.
            "uid": uid,
            "labels": { MANAGED_BY_LABEL: "Helm" },
            "annotations": {
                RELEASE_NAME_ANNOTATION: release.name,
                RELEASE_NAMESPACE_ANNOTATION: release.namespace,
            }
        }
    }))
}

fn is_completed_job(live: &Value) -> bool {
    if live.get("kind").and_then(Value::as_str) != Some("Job") {
        return false;
    }
    let conditions = object::value_at(live, &["status", "conditions"]).and_then(Value::as_array);
    conditions.is_some_and(|cs| {
        cs.iter().any(|c| {
            matches!(
                c.get("type").and_then(Value::as_str),
                Some("Complete" | "Failed")
            ) && c.get("status").and_then(Value::as_str) == Some("True")
        })
    })
}

fn normalized_selector(selector: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(s) = selector {
        for key in ["matchLabels", "matchExpressions"] {
            match s.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) if m.is_empty() => {}
                Some(Value::Array(a)) if a.is_empty() => {}
                Some(v) => {
                    out.insert(key.to_owned(), v.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// Fields Kubespray applied, still live, that the chart does not render.
pub fn prune_fields(live: &Value, rendered: &Value) -> Vec<Prune> {
    let mut out = Vec::new();
    let Some(applied_text) = object::annotation(live, LAST_APPLIED_ANNOTATION) else {
        return out;
    };
    // The annotation is kubectl's bookkeeping: Helm has no use for it, and a later
    // `kubectl apply` would compute its three-way diff from a stale record.
    out.push(Prune {
        path: pointer(&["metadata", "annotations", LAST_APPLIED_ANNOTATION]),
        live: Value::String(applied_text.to_owned()),
        replacement: None,
    });
    let Ok(applied) = serde_json::from_str::<Value>(applied_text) else {
        return out;
    };
    let selector_labels: Vec<String> = object::value_at(live, &["spec", "selector", "matchLabels"])
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut walker = Walker {
        out: &mut out,
        selector_labels: &selector_labels,
    };
    for key in [
        "metadata",
        "spec",
        "data",
        "binaryData",
        "stringData",
        "rules",
        "subjects",
        "aggregationRule",
    ] {
        let (Some(a), Some(l)) = (applied.get(key), live.get(key)) else {
            continue;
        };
        let mut path = vec![key.to_owned()];
        if key == "metadata" {
            // Only labels and annotations are Kubespray's to lose; name, namespace, uid... are not.
            for sub in ["labels", "annotations"] {
                if let (Some(a), Some(l)) = (a.get(sub), l.get(sub)) {
                    path.push(sub.to_owned());
                    let r = object::value_at(rendered, &["metadata", sub]);
                    walker.walk(a, l, r, &mut path);
                    path.pop();
                }
            }
            continue;
        }
        walker.walk(a, l, rendered.get(key), &mut path);
    }
    out
}

struct Walker<'a> {
    out: &'a mut Vec<Prune>,
    selector_labels: &'a [String],
}

impl Walker<'_> {
    /// `applied`, `live`, `rendered` are the same field in the three objects.
    fn walk(
        &mut self,
        applied: &Value,
        live: &Value,
        rendered: Option<&Value>,
        path: &mut Vec<String>,
    ) {
        if path.len() == 2 && path[0] == "spec" && path[1] == "selector" {
            // Immutable on workloads, and compared separately.
            return;
        }
        match (applied, live) {
            (Value::Object(a), Value::Object(l)) => {
                for (key, a_value) in a {
                    let Some(l_value) = l.get(key) else { continue };
                    let r_value = rendered.and_then(|r| r.get(key));
                    path.push(key.clone());
                    let is_label_map = matches!(key.as_str(), "labels" | "annotations");
                    match r_value {
                        // Labels and annotations are pruned key by key: keys others set stay
                        // (e.g. `kubectl.kubernetes.io/restartedAt`).
                        None if is_label_map => self.walk(a_value, l_value, None, path),
                        None if !self.protected(path) => self.out.push(Prune {
                            path: pointer_of(path),
                            live: l_value.clone(),
                            replacement: None,
                        }),
                        None => {}
                        Some(r) => self.walk(a_value, l_value, Some(r), path),
                    }
                    path.pop();
                }
            }
            (Value::Array(a), Value::Array(l)) => {
                let Some(r) = rendered.and_then(Value::as_array) else {
                    return;
                };
                let Some(key) = merge_key(path.last().map(String::as_str), a, l, r) else {
                    // Lists without a merge key are replaced whole by Helm.
                    return;
                };
                let first = self.out.len();
                let mut removed = 0;
                for a_item in a {
                    let Some(k) = a_item.get(key) else { continue };
                    let Some(index) = l.iter().position(|x| x.get(key) == Some(k)) else {
                        continue;
                    };
                    path.push(index.to_string());
                    match r.iter().find(|x| x.get(key) == Some(k)) {
                        None => {
                            removed += 1;
                            self.out.push(Prune {
                                path: pointer_of(path),
                                live: l[index].clone(),
                                replacement: None,
                            })
                        }
                        Some(r_item) => self.walk(a_item, &l[index], Some(r_item), path),
                    }
                    path.pop();
                }
                if removed == l.len() && !r.is_empty() {
                    // Every live item goes: replace the list with the rendered one instead, so
                    // that a list the API requires (Service ports) is never empty in between.
                    self.out.truncate(first);
                    self.out.push(Prune {
                        path: pointer_of(path),
                        live: Value::Array(l.clone()),
                        replacement: Some(Value::Array(r.clone())),
                    });
                }
            }
            // Scalars, or a type change: Helm sets the rendered value.
            _ => {}
        }
    }

    /// Pod template labels the selector uses must stay, or the workload becomes invalid.
    fn protected(&self, path: &[String]) -> bool {
        let template_labels = ["spec", "template", "metadata", "labels"];
        path.len() == 5
            && path[..4].iter().zip(template_labels).all(|(a, b)| a == b)
            && self.selector_labels.contains(&path[4])
    }
}

/// The field that identifies items of a list, as the strategic merge patch does.
fn merge_key(field: Option<&str>, a: &[Value], l: &[Value], r: &[Value]) -> Option<&'static str> {
    let all_have = |key: &str| a.iter().chain(l).chain(r).all(|x| x.get(key).is_some());
    let candidates: &[&'static str] = match field {
        Some("volumeMounts" | "volumeDevices") => &["mountPath", "devicePath"],
        Some("ports") => &["containerPort", "port"],
        Some("hostAliases") => &["ip"],
        Some(
            "imagePullSecrets"
            | "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "env",
        ) => &["name"],
        _ => &[],
    };
    candidates.iter().copied().find(|k| all_have(k))
}

fn pointer_of(path: &[String]) -> String {
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    pointer(&parts)
}

/// A JSON pointer (RFC 6901) from path segments.
pub fn pointer(path: &[&str]) -> String {
    path.iter()
        .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// Errors applying the plan.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan has blockers.
    #[error("adoption is blocked: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Blocked(Vec<Blocker>),
    /// The API server refused a patch (for a `test` failure: the object changed since planning).
    #[error(
        "patching {object} ({what}): {source}; if the object changed since the plan was made, run again to re-plan"
    )]
    Patch {
        /// The object.
        object: ObjectRef,
        /// `metadata` or `prune`.
        what: &'static str,
        /// The API error.
        source: kube::Error,
    },
    /// Discovery failed for a kind.
    #[error("finding the API resource of {kind}: {source}")]
    Discovery {
        /// The kind.
        kind: String,
        /// The API error.
        source: kube::Error,
    },
    /// A delete was refused or failed.
    #[error(transparent)]
    Delete(#[from] guard::DeleteError),
}

/// Which half of the plan to apply (two journal steps, before and after the Helm install).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Before the install: ownership metadata, the pruning (pod templates replaced by the
    /// rendered ones), and the deletion of completed hook Jobs.
    Metadata,
    /// After the install, from a fresh plan: the `last-applied-configuration` annotation.
    Prune,
}

/// Caches API resources per kind (discovery round trips).
#[derive(Debug, Default)]
pub struct Resources {
    cache: HashMap<(String, String), (ApiResource, bool)>,
}

impl Resources {
    /// The API resource and whether it is namespaced.
    pub async fn resolve(
        &mut self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<(ApiResource, bool), kube::Error> {
        let key = (object.api_version.clone(), object.kind.clone());
        if let Some(found) = self.cache.get(&key) {
            return Ok(found.clone());
        }
        let gvk = GroupVersionKind::gvk(object.group(), object.version(), &object.kind);
        let (resource, caps) = discovery::pinned_kind(client, &gvk).await?;
        let found = (resource, caps.scope == Scope::Namespaced);
        self.cache.insert(key, found.clone());
        Ok(found)
    }

    /// An `Api` for the object.
    pub async fn api(
        &mut self,
        client: &Client,
        object: &ObjectRef,
    ) -> Result<(Api<DynamicObject>, ApiResource), kube::Error> {
        let (resource, namespaced) = self.resolve(client, object).await?;
        let api = match (&object.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        Ok((api, resource))
    }
}

/// Whether a discovery error says the API server does not serve the kind (its group, or the
/// kind in its group): then no object of it can exist.
pub fn is_not_served(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(kube::error::DiscoveryError::MissingKind(_)) => true,
        _ => false,
    }
}

/// Reads the live counterparts of rendered objects (those that exist), plus the
/// template-era objects, as JSON: the `live` input of [`plan_adoption`].
pub async fn fetch_live(
    client: &Client,
    rendered: &[Value],
    release: &Release,
) -> Result<Vec<Value>, ApplyError> {
    let mut resources = Resources::default();
    let mut refs: Vec<ObjectRef> = crate::template_era::template_object_refs();
    for r in rendered.iter().filter_map(ObjectRef::of) {
        if !refs.iter().any(|x| x.same_object(&r)) {
            refs.push(r);
        }
    }
    let mut out = Vec::new();
    for mut r in refs {
        let (_, namespaced) = match resources.resolve(client, &r).await {
            Ok(found) => found,
            // A kind the server does not serve (e.g. GatewayClass without Gateway API): nothing live.
            Err(e) if is_not_served(&e) => continue,
            Err(source) => {
                return Err(ApplyError::Discovery {
                    kind: r.kind.clone(),
                    source,
                });
            }
        };
        if namespaced && r.namespace.is_none() {
            r.namespace = Some(release.namespace.clone());
        }
        let (api, resource) =
            resources
                .api(client, &r)
                .await
                .map_err(|source| ApplyError::Discovery {
                    kind: r.kind.clone(),
                    source,
                })?;
        match api.get_opt(&r.name).await {
            Ok(Some(mut o)) => {
                o.types = Some(kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                out.push(serde_json::to_value(&o).unwrap_or(Value::Null));
            }
            Ok(None) => {}
            Err(source) => {
                return Err(ApplyError::Patch {
                    object: r,
                    what: "read",
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// Applies one phase of the plan; returns the objects changed. Refuses a blocked plan.
pub async fn apply_adoption(
    client: &Client,
    plan: &AdoptPlan,
    phase: Phase,
) -> Result<Vec<ObjectRef>, ApplyError> {
    if !plan.can_adopt() {
        return Err(ApplyError::Blocked(plan.blockers.clone()));
    }
    let mut resources = Resources::default();
    let mut changed = Vec::new();
    if phase == Phase::Metadata {
        for (object, uid) in &plan.hook_job_deletions {
            let (resource, _) = resources.resolve(client, object).await.map_err(|source| {
                ApplyError::Discovery {
                    kind: object.kind.clone(),
                    source,
                }
            })?;
            guard::delete(client, &resource, object, uid, false).await?;
            changed.push(object.clone());
        }
    }
    for p in &plan.patches {
        let prune = p.prune_json_patch_for(phase);
        let metadata = if phase == Phase::Metadata {
            p.metadata.as_ref()
        } else {
            None
        };
        if prune.is_none() && metadata.is_none() {
            continue;
        }
        let (api, _) =
            resources
                .api(client, &p.object)
                .await
                .map_err(|source| ApplyError::Discovery {
                    kind: p.object.kind.clone(),
                    source,
                })?;
        if let Some(ops) = prune {
            let ops = serde_json::from_value(ops).map_err(|e| ApplyError::Patch {
                object: p.object.clone(),
                what: "prune",
                source: kube::Error::SerdeError(e),
            })?;
            api.patch(
                &p.object.name,
                &PatchParams::default(),
                &Patch::<()>::Json(ops),
            )
            .await
            .map_err(|source| ApplyError::Patch {
                object: p.object.clone(),
                what: "prune",
                source,
            })?;
        }
        if let Some(metadata) = metadata {
            api.patch(
                &p.object.name,
                &PatchParams::default(),
                &Patch::Merge(metadata),
            )
            .await
            .map_err(|source| ApplyError::Patch {
                object: p.object.clone(),
                what: "metadata",
                source,
            })?;
        }
        changed.push(p.object.clone());
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// What Kubespray v2.27 applied for DaemonSet `cilium` (trimmed recording of its template).
    fn kubespray_applied_daemonset() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                "template": {
                    "metadata": {
                        "labels": {"k8s-app": "cilium"},
                        "annotations": {
                            "scheduler.alpha.kubernetes.io/tolerations":
                                "[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"master\",\"effect\":\"NoSchedule\"}]"
                        }
                    },
                    "spec": {
                        "hostNetwork": true,
                        "dnsPolicy": "ClusterFirstWithHostNet",
                        "containers": [{
                            "name": "cilium-agent",
                            "image": "quay.io/cilium/cilium:v1.15.9",
                            "args": ["--config-dir=/tmp/cilium/config-map"],
                            "env": [
                                {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                {"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                {"name": "CILIUM_CLUSTERMESH_CONFIG", "value": "/var/lib/cilium/clustermesh/"}
                            ],
                            "volumeMounts": [
                                {"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"},
                                {"name": "etcd-secrets", "mountPath": "/etc/cilium/certs", "readOnly": true},
                                {"name": "cilium-run", "mountPath": "/var/run/cilium"}
                            ],
                            "securityContext": {"privileged": true}
                        }],
                        "volumes": [
                            {"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}},
                            {"name": "etcd-secrets", "hostPath": {"path": "/etc/cilium/certs"}},
                            {"name": "cilium-run", "hostPath": {"path": "/var/run/cilium", "type": "DirectoryOrCreate"}}
                        ]
                    }
                }
            }
        })
    }

    /// The live object: what was applied, plus server defaults, status and bookkeeping.
    fn live_daemonset() -> Value {
        let applied = kubespray_applied_daemonset();
        let mut live = applied.clone();
        live["metadata"]["uid"] = json!("9b1c2d3e-0000-4000-8000-000000000001");
        live["metadata"]["resourceVersion"] = json!("1234");
        live["metadata"]["generation"] = json!(1);
        live["metadata"]["annotations"] = json!({
            "deprecated.daemonset.template.generation": "1",
            LAST_APPLIED_ANNOTATION: serde_json::to_string(&applied).unwrap()
        });
        live["spec"]["revisionHistoryLimit"] = json!(10);
        live["spec"]["updateStrategy"]["rollingUpdate"]["maxSurge"] = json!(0);
        let c = &mut live["spec"]["template"]["spec"]["containers"][0];
        c["terminationMessagePath"] = json!("/dev/termination-log");
        c["imagePullPolicy"] = json!("IfNotPresent");
        // Someone added an env var by hand: not Kubespray's, so it is not pruned.
        c["env"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "HAND_ADDED", "value": "1"}));
        live["spec"]["template"]["spec"]["schedulerName"] = json!("default-scheduler");
        live["status"] = json!({"desiredNumberScheduled": 3, "numberReady": 3});
        live
    }

    /// What the chart renders for the same DaemonSet.
    fn rendered_daemonset() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "cilium", "namespace": "kube-system",
                         "labels": {"k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium", "app.kubernetes.io/name": "cilium-agent"}},
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                "template": {
                    "metadata": {"labels": {"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent"}},
                    "spec": {
                        "hostNetwork": true,
                        "containers": [{
                            "name": "cilium-agent",
                            "image": "quay.io/cilium/cilium:v1.15.9",
                            "args": ["--config-dir=/tmp/cilium/config-map"],
                            "env": [
                                {"name": "K8S_NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                                {"name": "CILIUM_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
                            ],
                            "volumeMounts": [
                                {"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer"},
                                {"name": "cilium-run", "mountPath": "/var/run/cilium"}
                            ]
                        }],
                        "volumes": [
                            {"name": "cilium-run", "hostPath": {"path": "/var/run/cilium", "type": "DirectoryOrCreate"}},
                            {"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}}
                        ]
                    }
                }
            }
        })
    }

    /// Applies the patch the way the API server does (RFC 6902, all or nothing).
    fn apply_json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
        let patch: json_patch::Patch =
            serde_json::from_value(ops.clone()).map_err(|e| e.to_string())?;
        json_patch::patch(doc, &patch).map_err(|e| e.to_string())
    }

    #[test]
    fn kubespray_only_fields_are_pruned_and_nothing_else() {
        // Field by field (the plan then replaces the template whole, see below).
        let patch = &ObjectPatch {
            object: ObjectRef::new("apps/v1", "DaemonSet", Some("kube-system"), "cilium"),
            uid: "9b1c2d3e-0000-4000-8000-000000000001".into(),
            metadata: None,
            prune: prune_fields(&live_daemonset(), &rendered_daemonset()),
        };
        let paths: Vec<&str> = patch.prune.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                "/spec/template/metadata/annotations/scheduler.alpha.kubernetes.io~1tolerations",
                "/spec/template/spec/dnsPolicy",
                "/spec/template/spec/containers/0/env/2",
                "/spec/template/spec/containers/0/volumeMounts/1",
                "/spec/template/spec/containers/0/securityContext",
                "/spec/template/spec/volumes/1",
            ]
        );

        // Applying the JSON patch to the live object removes exactly those fields.
        let mut live = live_daemonset();
        apply_json_patch(&mut live, &patch.prune_json_patch()).unwrap();
        let c = &live["spec"]["template"]["spec"]["containers"][0];
        let env: Vec<&str> = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(env, ["K8S_NODE_NAME", "CILIUM_K8S_NAMESPACE", "HAND_ADDED"]);
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(mounts, ["bpf-maps", "cilium-run"]);
        let volumes: Vec<&str> = live["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, ["bpf-maps", "cilium-run"]);
        assert_eq!(
            c["terminationMessagePath"], "/dev/termination-log",
            "server defaults stay"
        );
        assert_eq!(
            live["spec"]["selector"],
            json!({"matchLabels": {"k8s-app": "cilium"}})
        );
        assert_eq!(
            live["spec"]["template"]["metadata"]["labels"],
            json!({"k8s-app": "cilium"})
        );
        assert_eq!(
            live["spec"]["template"]["metadata"]["annotations"],
            json!({})
        );
        assert_eq!(
            live["metadata"]["annotations"],
            json!({"deprecated.daemonset.template.generation": "1"})
        );

        // A concurrent change to a pruned field makes the whole patch fail.
        let mut changed = live_daemonset();
        changed["spec"]["template"]["spec"]["volumes"][1]["hostPath"]["path"] = json!("/elsewhere");
        let before = changed.clone();
        assert!(apply_json_patch(&mut changed.clone(), &patch.prune_json_patch()).is_err());
        assert_eq!(changed, before);
        // So does another object of the same name.
        let mut recreated = live_daemonset();
        recreated["metadata"]["uid"] = json!("another");
        assert!(
            apply_json_patch(&mut recreated, &patch.prune_json_patch())
                .unwrap_err()
                .contains("/metadata/uid")
        );
    }

    #[test]
    fn ownership_metadata_is_added_once() {
        let plan = plan_adoption(
            &[live_daemonset()],
            &[rendered_daemonset()],
            &Release::default(),
        );
        assert_eq!(
            plan.patches[0].metadata,
            Some(json!({"metadata": {
                "uid": "9b1c2d3e-0000-4000-8000-000000000001",
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "cilium", "meta.helm.sh/release-namespace": "kube-system"}
            }}))
        );
        // After both phases, a re-plan has nothing left to do.
        let mut live = live_daemonset();
        apply_json_patch(&mut live, &plan.patches[0].prune_json_patch()).unwrap();
        live["metadata"]["labels"]["app.kubernetes.io/managed-by"] = json!("Helm");
        live["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!("cilium");
        live["metadata"]["annotations"]["meta.helm.sh/release-namespace"] = json!("kube-system");
        let again = plan_adoption(&[live], &[rendered_daemonset()], &Release::default());
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn config_keys_only_kubespray_set_are_pruned() {
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cilium-config", "namespace": "kube-system"},
            "data": {"tunnel-protocol": "vxlan", "etcd-config": "---\nendpoints: []", "cluster-name": "default"}});
        let mut live = applied.clone();
        live["metadata"]["uid"] = json!("c1");
        live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: applied.to_string()});
        live["data"]["added-by-operator"] = json!("x");
        let rendered = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cilium-config", "namespace": "kube-system"},
            "data": {"tunnel-protocol": "geneve", "cluster-name": "default"}});
        let plan = plan_adoption(&[live], &[rendered], &Release::default());
        let paths: Vec<&str> = plan.patches[0]
            .prune
            .iter()
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                "/data/etcd-config"
            ]
        );
    }

    #[test]
    fn a_list_is_replaced_rather_than_emptied() {
        let applied = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hubble-relay", "namespace": "kube-system"},
            "spec": {"selector": {"k8s-app": "hubble-relay"}, "ports": [{"port": 443, "targetPort": 4245}]}});
        let mut live = applied.clone();
        live["metadata"]["uid"] = json!("s1");
        live["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: applied.to_string()});
        live["spec"]["ports"][0]["protocol"] = json!("TCP");
        live["spec"]["clusterIP"] = json!("10.233.0.20");
        let rendered = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hubble-relay", "namespace": "kube-system"},
            "spec": {"selector": {"k8s-app": "hubble-relay"}, "ports": [{"port": 80, "targetPort": 4245}]}});
        let plan = plan_adoption(&[live.clone()], &[rendered], &Release::default());
        let patch = &plan.patches[0];
        assert_eq!(patch.prune[1].path, "/spec/ports");
        apply_json_patch(&mut live, &patch.prune_json_patch()).unwrap();
        assert_eq!(
            live["spec"]["ports"],
            json!([{"port": 80, "targetPort": 4245}])
        );
        assert_eq!(live["spec"]["clusterIP"], "10.233.0.20");
    }

    #[test]
    fn a_template_with_kubespray_fields_is_replaced_whole_before_the_install() {
        let plan = plan_adoption(
            &[live_daemonset()],
            &[rendered_daemonset()],
            &Release::default(),
        );
        let patch = &plan.patches[0];
        let phases: Vec<(&str, Phase)> = patch
            .prune
            .iter()
            .map(|p| (p.path.as_str(), p.phase()))
            .collect();
        assert_eq!(
            phases,
            [
                (
                    "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
                    Phase::Prune
                ),
                ("/spec/template", Phase::Metadata),
            ]
        );
        let mut live = live_daemonset();
        apply_json_patch(
            &mut live,
            &patch.prune_json_patch_for(Phase::Metadata).unwrap(),
        )
        .unwrap();
        assert_eq!(
            live["spec"]["template"],
            rendered_daemonset()["spec"]["template"]
        );
        assert_eq!(
            live["spec"]["selector"],
            json!({"matchLabels": {"k8s-app": "cilium"}})
        );
        // The record stays for the fresh plan after the install, which finds only it.
        assert!(object::annotation(&live, LAST_APPLIED_ANNOTATION).is_some());
        let after = plan_adoption(
            &[live.clone()],
            &[rendered_daemonset()],
            &Release::default(),
        );
        let paths: Vec<&str> = after.patches[0]
            .prune
            .iter()
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(
            paths,
            ["/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"]
        );
        apply_json_patch(
            &mut live,
            &after.patches[0].prune_json_patch_for(Phase::Prune).unwrap(),
        )
        .unwrap();
        assert!(object::annotation(&live, LAST_APPLIED_ANNOTATION).is_none());
        let config = Prune {
            path: "/data/etcd-config".into(),
            live: json!(""),
            replacement: None,
        };
        assert_eq!(config.phase(), Phase::Metadata);
    }

    #[test]
    fn a_different_selector_blocks_and_suggests_replace() {
        let mut rendered = rendered_daemonset();
        rendered["spec"]["selector"]["matchLabels"]["kubernetes.io/cluster-service"] =
            json!("true");
        let plan = plan_adoption(&[live_daemonset()], &[rendered], &Release::default());
        assert!(!plan.can_adopt());
        let message = plan.blockers[0].to_string();
        assert!(
            message.contains("DaemonSet kube-system/cilium")
                && message.contains("--strategy replace"),
            "{message}"
        );
        // Empty matchExpressions is the same selector.
        let mut rendered = rendered_daemonset();
        rendered["spec"]["selector"]["matchExpressions"] = json!([]);
        assert!(plan_adoption(&[live_daemonset()], &[rendered], &Release::default()).can_adopt());
    }

    #[test]
    fn replace_adopts_everything_but_the_workloads_it_re_creates() {
        let mut rendered = rendered_daemonset();
        rendered["spec"]["selector"]["matchLabels"]["kubernetes.io/cluster-service"] =
            json!("true");
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cilium-config", "namespace": "kube-system", "uid": "c1"},
            "data": {"debug": "false"}});
        let plan = plan_adoption(
            &[live_daemonset(), config.clone()],
            &[rendered, config],
            &Release::default(),
        );
        assert!(!plan.can_adopt());
        let daemonset = ObjectRef::new("apps/v1", "DaemonSet", Some("kube-system"), "cilium");
        let rest = plan.without(std::slice::from_ref(&daemonset));
        assert!(rest.can_adopt(), "{:?}", rest.blockers);
        let adopted: Vec<String> = rest.patches.iter().map(|p| p.object.to_string()).collect();
        assert_eq!(adopted, ["ConfigMap kube-system/cilium-config"]);
        assert!(rest.patches[0].metadata.is_some());
    }

    #[test]
    fn name_collisions_are_found() {
        let hook_job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "hubble-generate-certs", "namespace": "kube-system",
                         "annotations": {"helm.sh/hook": "post-install,post-upgrade"}}});
        let completed = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "hubble-generate-certs", "namespace": "kube-system", "uid": "j1"},
            "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}});
        let mut running = completed.clone();
        running["status"] = json!({"active": 1});
        let foreign_sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "hubble-relay", "namespace": "kube-system", "uid": "s1",
                         "labels": {"app.kubernetes.io/managed-by": "Helm"},
                         "annotations": {"meta.helm.sh/release-name": "hubble", "meta.helm.sh/release-namespace": "monitoring"}}});
        let rendered_sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "hubble-relay", "namespace": "kube-system"}});
        let rendered_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cilium-secrets"}});
        let leftover = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hubble-generate-certs", "namespace": "kube-system", "uid": "cj"}});

        let plan = plan_adoption(
            &[completed.clone(), foreign_sa.clone(), leftover.clone()],
            &[hook_job.clone(), rendered_sa.clone(), rendered_ns.clone()],
            &Release::default(),
        );
        assert_eq!(
            plan.hook_job_deletions,
            [(
                ObjectRef::new(
                    "batch/v1",
                    "Job",
                    Some("kube-system"),
                    "hubble-generate-certs"
                ),
                "j1".to_owned()
            )]
        );
        assert_eq!(plan.blockers.len(), 1);
        assert!(
            plan.blockers[0].to_string().contains("monitoring/hubble"),
            "{}",
            plan.blockers[0]
        );
        assert_eq!(
            plan.to_create,
            [ObjectRef::new("v1", "Namespace", None, "cilium-secrets")]
        );
        assert_eq!(
            plan.leftovers,
            [ObjectRef::new(
                "batch/v1",
                "CronJob",
                Some("kube-system"),
                "hubble-generate-certs"
            )]
        );
        assert!(plan.patches.is_empty());

        let plan = plan_adoption(&[running], &[hook_job], &Release::default());
        assert!(matches!(plan.blockers[..], [Blocker::HookCollision { .. }]));
        assert!(plan.hook_job_deletions.is_empty());
    }

    #[test]
    fn rendered_objects_without_namespace_match_the_release_namespace() {
        let mut rendered = rendered_daemonset();
        rendered["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("namespace");
        let plan = plan_adoption(&[live_daemonset()], &[rendered], &Release::default());
        assert_eq!(plan.patches.len(), 1);
        assert!(plan.to_create.is_empty());
    }

    #[test]
    fn pointers_escape_and_removals_run_from_the_end() {
        assert_eq!(
            pointer(&["metadata", "annotations", "a/b~c"]),
            "/metadata/annotations/a~1b~0c"
        );
        let p = ObjectPatch {
            object: ObjectRef::new("v1", "ConfigMap", Some("kube-system"), "x"),
            uid: "u".into(),
            metadata: None,
            prune: [
                "/spec/v/2",
                "/spec/v/10",
                "/spec/c/0/env/1",
                "/spec/c/0/env/3",
            ]
            .iter()
            .map(|p| Prune {
                path: (*p).to_owned(),
                live: Value::Null,
                replacement: None,
            })
            .collect(),
        };
        let ops = p.prune_json_patch();
        let removes: Vec<&str> = ops
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["op"] == "remove")
            .map(|o| o["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            removes,
            [
                "/spec/v/10",
                "/spec/v/2",
                "/spec/c/0/env/3",
                "/spec/c/0/env/1"
            ]
        );
    }
}
