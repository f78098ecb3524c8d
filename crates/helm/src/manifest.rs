//! Multi-document manifests as Helm prints them (`helm template`, `helm get manifest`): split into
//! objects, find one by kind and name, and tell which ones `helm uninstall` would keep.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The annotation that makes Helm leave an object in place on uninstall, upgrade and rollback.
pub const RESOURCE_POLICY_ANNOTATION: &str = "helm.sh/resource-policy";

/// An object's identity: kind, name and namespace (`None` for cluster-scoped or unset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `DaemonSet`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` as rendered (templates often leave it out).
    pub namespace: Option<String>,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// One object of a manifest: its identity, metadata and its own YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObject {
    /// Kind, name, namespace.
    pub id: ObjectRef,
    /// The template it came from (`# Source: cilium/templates/...`), if Helm said.
    pub source: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// The document's YAML text (without the `---` separator).
    pub yaml: String,
}

impl ManifestObject {
    /// Whether Helm keeps this object on uninstall (`helm.sh/resource-policy: keep`).
    pub fn is_kept(&self) -> bool {
        self.annotations
            .get(RESOURCE_POLICY_ANNOTATION)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("keep"))
    }

    /// The whole object as JSON, for key-by-key comparisons.
    pub fn to_json(&self) -> Result<serde_json::Value, ManifestError> {
        serde_saphyr::from_str(&self.yaml).map_err(|e| ManifestError {
            document: self.source.clone().unwrap_or_else(|| self.id.to_string()),
            detail: e.to_string(),
        })
    }
}

/// A manifest document that is not a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest document {document} is not a Kubernetes object: {detail}")]
pub struct ManifestError {
    /// The template source or position of the document.
    pub document: String,
    /// What is wrong.
    pub detail: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Head {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Default, Deserialize)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

/// A parsed multi-document manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The objects in the order Helm printed them.
    pub objects: Vec<ManifestObject>,
}

impl Manifest {
    /// Splits Helm's output on `---` lines and reads each object's head; documents that hold
    /// only comments or whitespace are skipped.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut objects = Vec::new();
        for (index, doc) in split_documents(text).into_iter().enumerate() {
            let source = doc
                .lines()
                .find_map(|l| l.strip_prefix("# Source: "))
                .map(|s| s.trim().to_owned());
            let has_content = doc
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if !has_content {
                continue;
            }
            let position = || source.clone().unwrap_or_else(|| format!("#{}", index + 1));
            let head: Head = serde_saphyr::from_str(&doc).map_err(|e| ManifestError {
                document: position(),
                detail: e.to_string(),
            })?;
            let missing = |what: &str| ManifestError {
                document: position(),
                detail: format!("it has no {what}"),
            };
            let id = ObjectRef {
                api_version: head.api_version.ok_or_else(|| missing("apiVersion"))?,
                kind: head.kind.ok_or_else(|| missing("kind"))?,
                name: head.metadata.name.ok_or_else(|| missing("metadata.name"))?,
                namespace: head.metadata.namespace,
            };
            objects.push(ManifestObject {
                id,
                source,
                labels: head.metadata.labels.unwrap_or_default(),
                annotations: head.metadata.annotations.unwrap_or_default(),
                yaml: doc,
            });
        }
        Ok(Manifest { objects })
    }

    /// The object of this kind and name (the first one, should a chart render it twice).
    pub fn find(&self, kind: &str, name: &str) -> Option<&ManifestObject> {
        self.objects
            .iter()
            .find(|o| o.id.kind == kind && o.id.name == name)
    }

    /// What `helm uninstall` would do with these objects (the release manifest).
    pub fn uninstall_plan(&self) -> UninstallPlan {
        let (kept, deleted) = self.objects.iter().partition::<Vec<_>, _>(|o| o.is_kept());
        UninstallPlan {
            deleted: deleted.into_iter().map(|o| o.id.clone()).collect(),
            kept: kept.into_iter().map(|o| o.id.clone()).collect(),
        }
    }
}

/// Which objects of a release `helm uninstall` deletes and which it keeps. CRDs from the chart's
/// `crds/` directory are in neither list: Helm never deletes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UninstallPlan {
    /// Deleted by uninstall.
    pub deleted: Vec<ObjectRef>,
    /// Kept because of `helm.sh/resource-policy: keep`.
    pub kept: Vec<ObjectRef>,
}

fn split_documents(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        // `---` alone, or followed by a comment; `--- ` with content is rare in Helm output.
        if bare == "---" || bare.starts_with("--- #") {
            docs.push(std::mem::take(&mut current));
            continue;
        }
        current.push_str(line);
    }
    docs.push(current);
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "---\n# Source: tiny/templates/sa.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: cilium\n  namespace: kube-system\n---\n# Source: tiny/templates/empty.yaml\n# nothing rendered here\n---\n# Source: tiny/templates/config.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cilium-config\n  annotations:\n    helm.sh/resource-policy: keep\n  labels:\n    app.kubernetes.io/part-of: cilium\ndata:\n  enable-ipv4: \"true\"\n  cluster-name: default\n---\n# Source: tiny/templates/crb.yaml\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: cilium\n";

    #[test]
    fn splits_and_finds_objects_by_kind_and_name() -> Result<(), ManifestError> {
        let manifest = Manifest::parse(RENDERED)?;
        let ids: Vec<String> = manifest.objects.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(
            ids,
            vec![
                "ServiceAccount kube-system/cilium",
                "ConfigMap cilium-config",
                "ClusterRoleBinding cilium"
            ]
        );
        let config = manifest
            .find("ConfigMap", "cilium-config")
            .expect("config is rendered");
        assert_eq!(config.source.as_deref(), Some("tiny/templates/config.yaml"));
        assert_eq!(
            config
                .labels
                .get("app.kubernetes.io/part-of")
                .map(String::as_str),
            Some("cilium")
        );
        let json = config.to_json()?;
        assert_eq!(json["data"]["enable-ipv4"], "true");
        assert_eq!(json["data"]["cluster-name"], "default");
        assert!(manifest.find("ConfigMap", "absent").is_none());
        assert!(manifest.find("ServiceAccount", "cilium-config").is_none());
        Ok(())
    }

    #[test]
    fn uninstall_plan_separates_kept_objects() -> Result<(), ManifestError> {
        let plan = Manifest::parse(RENDERED)?.uninstall_plan();
        let names = |ids: &[ObjectRef]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(names(&plan.kept), vec!["ConfigMap cilium-config"]);
        assert_eq!(
            names(&plan.deleted),
            vec![
                "ServiceAccount kube-system/cilium",
                "ClusterRoleBinding cilium"
            ]
        );
        Ok(())
    }

    #[test]
    fn a_document_without_kind_is_an_error_naming_its_template() {
        let err = Manifest::parse(
            "---\n# Source: tiny/templates/bad.yaml\napiVersion: v1\nmetadata:\n  name: x\n",
        )
        .expect_err("no kind");
        assert_eq!(err.document, "tiny/templates/bad.yaml");
        assert!(err.detail.contains("kind"), "{err}");
    }

    #[test]
    fn empty_output_has_no_objects() -> Result<(), ManifestError> {
        assert!(Manifest::parse("")?.objects.is_empty());
        assert!(Manifest::parse("---\n# Source: x\n\n")?.objects.is_empty());
        Ok(())
    }
}
