//! Objects as the API server returns them (`serde_json::Value`), and how to name them.
//!
//! Everything the pure parts of this crate look at is plain JSON, so recorded objects
//! (`kubectl get -o json`, a backup bundle, a test fixture) work the same as live ones.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Label Helm checks before it adopts an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation naming the release that owns an object.
pub const RELEASE_NAME_ANNOTATION: &str = "meta.helm.sh/release-name";
/// Annotation naming the namespace of the release that owns an object.
pub const RELEASE_NAMESPACE_ANNOTATION: &str = "meta.helm.sh/release-namespace";
/// Annotation `kubectl apply` (client-side) leaves on every object it applied.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Annotation that makes an object a Helm hook instead of a release resource.
pub const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";

/// Which object: API version, kind, namespace (none when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// Kind, e.g. `DaemonSet`.
    pub kind: String,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// A reference from its parts.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The reference of a JSON object, or `None` when it lacks apiVersion, kind or name.
    pub fn of(object: &Value) -> Option<Self> {
        Some(ObjectRef {
            api_version: object.get("apiVersion")?.as_str()?.to_owned(),
            kind: object.get("kind")?.as_str()?.to_owned(),
            namespace: str_at(object, &["metadata", "namespace"]).map(str::to_owned),
            name: str_at(object, &["metadata", "name"])?.to_owned(),
        })
    }

    /// API group (empty for the core group).
    pub fn group(&self) -> &str {
        group_of(&self.api_version)
    }

    /// Version part of the API version.
    pub fn version(&self) -> &str {
        version_of(&self.api_version)
    }

    /// Same object, ignoring the API version (objects are served under several versions).
    pub fn same_object(&self, other: &ObjectRef) -> bool {
        self.group() == other.group()
            && self.kind == other.kind
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The group of an `apiVersion` (empty for `v1`).
pub fn group_of(api_version: &str) -> &str {
    match api_version.rsplit_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// The version of an `apiVersion` (`v1` for `apps/v1`).
pub fn version_of(api_version: &str) -> &str {
    api_version.rsplit('/').next().unwrap_or(api_version)
}

/// Whether an API group belongs to Cilium (`cilium.io` or a subgroup of it).
pub fn is_cilium_group(group: &str) -> bool {
    group == "cilium.io" || group.ends_with(".cilium.io")
}

/// The string at a path of object keys.
pub fn str_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a str> {
    value_at(object, path)?.as_str()
}

/// The value at a path of object keys.
pub fn value_at<'a>(object: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, key| v.get(*key))
}

/// A label of an object.
pub fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "labels", key])
}

/// An annotation of an object.
pub fn annotation<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    str_at(object, &["metadata", "annotations", key])
}

/// Who owns an object, as far as Helm is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelmOwner {
    /// No Helm ownership metadata at all.
    None,
    /// Complete ownership metadata for this release.
    Release {
        /// Release name.
        name: String,
        /// Release namespace.
        namespace: String,
    },
    /// Some of the three keys are set, not all (a half-finished adoption or a hand edit).
    Partial,
}

/// Reads the Helm ownership metadata of an object.
pub fn helm_owner(object: &Value) -> HelmOwner {
    let managed = label(object, MANAGED_BY_LABEL);
    let name = annotation(object, RELEASE_NAME_ANNOTATION);
    let namespace = annotation(object, RELEASE_NAMESPACE_ANNOTATION);
    match (managed, name, namespace) {
        (None, None, None) => HelmOwner::None,
        (Some("Helm"), Some(name), Some(namespace)) => HelmOwner::Release {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        },
        // `managed-by` set by another tool (not Helm) without release annotations is not Helm's.
        (Some(tool), None, None) if tool != "Helm" => HelmOwner::None,
        _ => HelmOwner::Partial,
    }
}

/// Parses a multi-document YAML stream (e.g. `helm template` output) into JSON objects,
/// skipping empty documents. Numbers are read the way Helm and the API server read them
/// (YAML 1.1): `defaultMode: 0400` is octal, 256.
pub fn parse_manifest(yaml: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(yaml, options)?;
    Ok(docs
        .into_iter()
        .filter(|d| d.is_object() && d.get("kind").is_some())
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn manifests_parse_like_helm_reads_them() {
        let yaml = "# Source: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# empty\n---\n\
                    apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: b\nspec:\n  mode: 0400\n  port: 4244\n";
        let objects = parse_manifest(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["spec"], json!({"mode": 256, "port": 4244}));
        assert!(objects[1]["spec"]["mode"].is_u64());
    }

    #[test]
    fn helm_ownership_is_read_from_label_and_annotations() {
        let owned = json!({"metadata": {"labels": {MANAGED_BY_LABEL: "Helm"},
            "annotations": {RELEASE_NAME_ANNOTATION: "cilium", RELEASE_NAMESPACE_ANNOTATION: "kube-system"}}});
        assert_eq!(
            helm_owner(&owned),
            HelmOwner::Release {
                name: "cilium".into(),
                namespace: "kube-system".into()
            }
        );
        assert_eq!(helm_owner(&json!({"metadata": {}})), HelmOwner::None);
        assert_eq!(
            helm_owner(&json!({"metadata": {"labels": {MANAGED_BY_LABEL: "kustomize"}}})),
            HelmOwner::None
        );
        assert_eq!(
            helm_owner(&json!({"metadata": {"labels": {MANAGED_BY_LABEL: "Helm"}}})),
            HelmOwner::Partial
        );
    }
}
