//! The objects Kubespray's template era (<= v2.27) creates, by name.
//!
//! The list is Kubespray's own removal list (`remove_old_resources.yml`, v2.28.1–v2.29.x),
//! which names every object the Jinja manifests created, plus the Secrets its certgen Job and
//! IPsec setting write. CRDs and custom resources are not in it: they are never touched.

use crate::object::ObjectRef;

/// Namespace of every namespaced object Kubespray creates for Cilium.
pub const NAMESPACE: &str = "kube-system";

/// One kind of template-era object and the names it uses.
#[derive(Debug, Clone, Copy)]
pub struct TemplateKind {
    /// API version.
    pub api_version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Plural resource name (for the API path).
    pub plural: &'static str,
    /// Whether the kind lives in a namespace.
    pub namespaced: bool,
    /// Object names.
    pub names: &'static [&'static str],
}

/// The non-Secret objects of the template era: what `adopt` patches, and `replace` too, except
/// the DaemonSet and Deployments, which it deletes ([`crate::guard::replace_deletions`]).
pub const TEMPLATE_OBJECTS: &[TemplateKind] = &[
    TemplateKind {
        api_version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        namespaced: true,
        names: &[
            "cilium",
            "cilium-operator",
            "hubble-generate-certs",
            "hubble-relay",
            "hubble-ui",
        ],
    },
    TemplateKind {
        api_version: "v1",
        kind: "Service",
        plural: "services",
        namespaced: true,
        names: &[
            "hubble-metrics",
            "hubble-relay-metrics",
            "hubble-relay",
            "hubble-ui",
            "hubble-peer",
        ],
    },
    TemplateKind {
        api_version: "apps/v1",
        kind: "Deployment",
        plural: "deployments",
        namespaced: true,
        names: &["cilium-operator", "hubble-relay", "hubble-ui"],
    },
    TemplateKind {
        api_version: "apps/v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        namespaced: true,
        names: &["cilium"],
    },
    TemplateKind {
        api_version: "batch/v1",
        kind: "CronJob",
        plural: "cronjobs",
        namespaced: true,
        names: &["hubble-generate-certs"],
    },
    TemplateKind {
        api_version: "batch/v1",
        kind: "Job",
        plural: "jobs",
        namespaced: true,
        names: &["hubble-generate-certs"],
    },
    TemplateKind {
        api_version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        namespaced: true,
        names: &[
            "cilium-config",
            "ip-masq-agent",
            "hubble-relay-config",
            "hubble-ui-nginx",
            "hubble-ca-cert",
        ],
    },
    TemplateKind {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        namespaced: false,
        names: &[
            "cilium",
            "cilium-operator",
            "hubble-generate-certs",
            "hubble-relay",
            "hubble-ui",
        ],
    },
    TemplateKind {
        api_version: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        namespaced: false,
        names: &[
            "cilium",
            "cilium-operator",
            "hubble-generate-certs",
            "hubble-relay",
            "hubble-ui",
        ],
    },
];

/// Secrets of the template era (hubble certificates from the certgen Job, IPsec keys) and the
/// chart's CA Secret. They are backed up and never deleted: relay and agents keep trusting each
/// other through the hand-over, and IPsec keeps its keys.
pub const KEPT_SECRETS: &[&str] = &[
    "hubble-ca-secret",
    "hubble-server-certs",
    "hubble-relay-client-certs",
    "cilium-ca",
    "cilium-ipsec-keys",
];

/// Every template-era object (non-Secret) as a reference.
pub fn template_object_refs() -> Vec<ObjectRef> {
    TEMPLATE_OBJECTS
        .iter()
        .flat_map(|k| {
            k.names.iter().map(move |name| {
                ObjectRef::new(
                    k.api_version,
                    k.kind,
                    k.namespaced.then_some(NAMESPACE),
                    name,
                )
            })
        })
        .collect()
}

/// The template-era kind entry for a reference, if it is one of ours.
pub fn template_kind(object: &ObjectRef) -> Option<&'static TemplateKind> {
    TEMPLATE_OBJECTS
        .iter()
        .find(|k| k.kind == object.kind && crate::object::group_of(k.api_version) == object.group())
}
