//! Gateway API CRD bundles: which CRDs each upstream release (`v1.0` … `v1.6`) ships per channel,
//! which versions they serve, and which bundle each Cilium minor needs.
//!
//! The served versions were read from the `kubernetes-sigs/gateway-api` tags `v1.0.0` … `v1.5.0`
//! (`config/crd/{standard,experimental}/`) and, for v1.6 and the kinds added after v1.3
//! (BackendTLSPolicy, ListenerSet, TCPRoute, UDPRoute; standard channel only), from the released
//! `standard-install.yaml` / experimental TLSRoute of each tag (the tests compare the table with
//! them). The Cilium requirements come from the research note `cilium-chart.md` §5.2 and
//! `migration-anchors.md` §2.3 up to 1.19, and from Cilium v1.20.0's own source for 1.20.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::state::CrdFacts;

/// The API group of every Gateway API CRD.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The annotation upstream puts on each CRD: the release it belongs to (`v1.2.0`).
pub const BUNDLE_VERSION_ANNOTATION: &str = "gateway.networking.k8s.io/bundle-version";
/// The annotation upstream puts on each CRD: `standard` or `experimental`.
pub const CHANNEL_ANNOTATION: &str = "gateway.networking.k8s.io/channel";

/// A release channel of the Gateway API CRDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The stable kinds only.
    Standard,
    /// The stable kinds plus the experimental ones (TLSRoute, TCPRoute, ...), with more versions.
    Experimental,
}

impl Channel {
    /// The word upstream uses (annotation value and directory name).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Standard => "standard",
            Channel::Experimental => "experimental",
        }
    }

    /// Reads the annotation value.
    pub fn parse(text: &str) -> Option<Channel> {
        match text.trim() {
            "standard" => Some(Channel::Standard),
            "experimental" => Some(Channel::Experimental),
            _ => None,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Gateway API release (`v1.2.0`; pre-release suffixes such as `-rc.2` are kept for display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleVersion {
    /// Always 1 so far.
    pub major: u32,
    /// What changes the CRDs.
    pub minor: u32,
    /// Patch level.
    pub patch: u32,
    /// `-rc.2`, `-dev`, ... as written.
    pub pre: Option<String>,
}

impl BundleVersion {
    /// A released version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> BundleVersion {
        BundleVersion {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// Parses `v1.2.0`, `1.2.0`, `1.4` (patch 0), `v1.5.0-rc.2`; `None` when it is not such a
    /// version.
    pub fn parse(text: &str) -> Option<BundleVersion> {
        let version = cilium_values::parse_release(text).ok()?;
        Some(BundleVersion {
            major: version.major.try_into().ok()?,
            minor: version.minor.try_into().ok()?,
            patch: version.patch.try_into().ok()?,
            pre: (!version.pre.is_empty()).then(|| format!("-{}", version.pre)),
        })
    }

    /// The same release line (major and minor).
    pub fn same_minor(&self, other: &BundleVersion) -> bool {
        self.major == other.major && self.minor == other.minor
    }
}

impl fmt::Display for BundleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            f.write_str(pre)?;
        }
        Ok(())
    }
}

/// Whether a CRD is cluster-scoped or namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scope {
    /// `Cluster`.
    Cluster,
    /// `Namespaced`.
    Namespaced,
}

impl Scope {
    /// The CRD's `spec.scope` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Cluster => "Cluster",
            Scope::Namespaced => "Namespaced",
        }
    }
}

/// One version entry of a CRD (`spec.versions[]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionEntry {
    /// `v1`, `v1beta1`, ...
    pub name: &'static str,
    /// Whether the API server serves it.
    pub served: bool,
    /// Whether objects are stored in it (exactly one per CRD).
    pub storage: bool,
}

const fn v(name: &'static str, served: bool, storage: bool) -> VersionEntry {
    VersionEntry {
        name,
        served,
        storage,
    }
}

/// The kinds this crate knows, with their scope.
pub const KINDS: &[(&str, &str, Scope)] = &[
    ("gatewayclasses", "GatewayClass", Scope::Cluster),
    ("gateways", "Gateway", Scope::Namespaced),
    ("httproutes", "HTTPRoute", Scope::Namespaced),
    ("referencegrants", "ReferenceGrant", Scope::Namespaced),
    ("grpcroutes", "GRPCRoute", Scope::Namespaced),
    ("tlsroutes", "TLSRoute", Scope::Namespaced),
    ("backendtlspolicies", "BackendTLSPolicy", Scope::Namespaced),
    ("listenersets", "ListenerSet", Scope::Namespaced),
    ("tcproutes", "TCPRoute", Scope::Namespaced),
    ("udproutes", "UDPRoute", Scope::Namespaced),
];

/// The kind of a plural this crate knows (`gatewayclasses` → `GatewayClass`).
pub fn kind_of(plural: &str) -> Option<&'static str> {
    KINDS
        .iter()
        .find(|(p, _, _)| *p == plural)
        .map(|(_, k, _)| *k)
}

/// The CRD name of a plural: `<plural>.gateway.networking.k8s.io`.
pub fn crd_name(plural: &str) -> String {
    format!("{plural}.{GROUP}")
}

/// The versions `plural` has in bundle `v1.<minor>` on `channel`; `None` when that bundle and
/// channel do not ship the CRD (or this table does not know it). Known for minors 0 to 6;
/// BackendTLSPolicy, ListenerSet, TCPRoute and UDPRoute for the standard channel only.
pub fn versions_in_bundle(plural: &str, minor: u32, channel: Channel) -> Option<Vec<VersionEntry>> {
    use Channel::{Experimental as Exp, Standard as Std};
    let versions = match (plural, minor, channel) {
        ("gatewayclasses" | "gateways" | "httproutes", 0, _) => {
            vec![v("v1", true, false), v("v1beta1", true, true)]
        }
        ("gatewayclasses" | "gateways" | "httproutes", 1..=6, _) => {
            vec![v("v1", true, true), v("v1beta1", true, false)]
        }
        ("referencegrants", 0, _) | ("referencegrants", 1, Exp) => {
            vec![v("v1alpha2", true, false), v("v1beta1", true, true)]
        }
        ("referencegrants", 1, Std) => vec![v("v1alpha2", false, false), v("v1beta1", true, true)],
        ("referencegrants", 2..=4, _) => vec![v("v1beta1", true, true)],
        ("referencegrants", 5..=6, _) => vec![v("v1", true, false), v("v1beta1", true, true)],
        ("grpcroutes", 0, Exp) => vec![v("v1alpha2", true, true)],
        ("grpcroutes", 1, Std) => vec![v("v1", true, true), v("v1alpha2", false, false)],
        ("grpcroutes", 1, Exp) => vec![v("v1", true, true), v("v1alpha2", true, false)],
        ("grpcroutes", 2..=6, _) => vec![v("v1", true, true)],
        ("tlsroutes", 0..=3, Exp) => vec![v("v1alpha2", true, true)],
        ("tlsroutes", 4, Exp) => vec![v("v1alpha2", true, false), v("v1alpha3", true, true)],
        ("tlsroutes", 5..=6, Std) => vec![
            v("v1", true, true),
            v("v1alpha2", false, false),
            v("v1alpha3", false, false),
        ],
        ("tlsroutes", 5..=6, Exp) => vec![
            v("v1", true, true),
            v("v1alpha2", true, false),
            v("v1alpha3", true, false),
        ],
        ("backendtlspolicies", 4..=6, Std) => {
            vec![v("v1", true, true), v("v1alpha3", false, false)]
        }
        ("listenersets", 5..=6, Std) => vec![v("v1", true, true)],
        ("tcproutes" | "udproutes", 6, Std) => {
            vec![v("v1", true, true), v("v1alpha2", false, false)]
        }
        _ => return None,
    };
    Some(versions)
}

/// How much Cilium needs one CRD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// The operator disables (or crashes) the Gateway controller without it.
    Required,
    /// A feature (TLSRoute) is off without it; the rest works.
    Optional,
}

/// One CRD a Cilium minor needs, at one served version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NeededCrd {
    /// The plural (`tlsroutes`).
    pub plural: &'static str,
    /// The kind (`TLSRoute`).
    pub kind: &'static str,
    /// The version Cilium's operator reads; it must be served.
    pub version: &'static str,
    /// Required or optional.
    pub need: Need,
    /// The channel of the bundle that ships it at that version.
    pub channel: Channel,
    /// Versions the cluster uses today (served, or in `status.storedVersions`) that the CRD must
    /// keep serving: TLSRoute `v1alpha2` from before Cilium 1.20, the reason its `channel` is
    /// then experimental (see [`Requirement::for_cluster`]). Empty: nothing to keep.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_served: Vec<String>,
}

/// What one Cilium minor needs from the Gateway API CRDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The Cilium minor (`15` for 1.15).
    pub cilium_minor: u32,
    /// The bundle to install.
    pub bundle: BundleVersion,
    /// The CRDs, in install order.
    pub crds: Vec<NeededCrd>,
}

impl Requirement {
    /// The requirement of Cilium 1.`minor`; `None` for minors this crate does not know (< 1.15,
    /// > 1.20).
    ///
    /// 1.20 (Cilium v1.20.0): `go.mod` pins `sigs.k8s.io/gateway-api v1.6.1` and the
    /// documentation's `gateway_api_version` is `v1.6.1`;
    /// `operator/pkg/gateway-api/helpers/schemes.go` requires GatewayClass, Gateway, HTTPRoute,
    /// GRPCRoute, TLSRoute, ReferenceGrant and BackendTLSPolicy, all at `v1` (1.19 read
    /// ReferenceGrant at `v1beta1`, TLSRoute at `v1alpha2` as an optional kind and no
    /// BackendTLSPolicy), and takes ListenerSet, TCPRoute, UDPRoute (`v1`) and ServiceImport
    /// (`multicluster.x-k8s.io/v1beta1`, not a Gateway API CRD, so not listed here) as optional.
    /// `operator/pkg/gateway-api/cell.go` (`checkCRDs`): a required CRD without its version
    /// keeps the Gateway controller off ("Required GatewayAPI resources are not found", health
    /// degraded); a missing optional one turns that feature off.
    /// `Documentation/network/servicemesh/gateway-api/installation.rst` installs them from the
    /// v1.6 standard channel, except that clusters with TLSRoutes from before 1.20 need the
    /// experimental TLSRoute ([`Requirement::for_cluster`]).
    pub fn for_cilium_minor(minor: u32) -> Option<Requirement> {
        let bundle = match minor {
            15 => BundleVersion::new(1, 0, 0),
            16 => BundleVersion::new(1, 1, 0),
            17 => BundleVersion::new(1, 2, 0),
            18 => BundleVersion::new(1, 3, 0),
            // v1.19.7's go.mod pins v1.4.0-rc.2 and its installation.rst installs v1.4.1;
            // v1.5's standard channel stops serving TLSRoute v1alpha2 and the 1.19 operator
            // crash-loops (cilium/cilium#44920, kubespray#13222).
            19 => BundleVersion::new(1, 4, 1),
            20 => BundleVersion::new(1, 6, 1),
            _ => return None,
        };
        let need =
            |plural: &'static str, version: &'static str, need: Need, channel: Channel| NeededCrd {
                plural,
                kind: kind_of(plural).unwrap_or(plural),
                version,
                need,
                channel,
                keep_served: Vec::new(),
            };
        if minor >= 20 {
            let required = |plural| need(plural, "v1", Need::Required, Channel::Standard);
            let optional = |plural| need(plural, "v1", Need::Optional, Channel::Standard);
            return Some(Requirement {
                cilium_minor: minor,
                bundle,
                crds: vec![
                    required("gatewayclasses"),
                    required("gateways"),
                    required("httproutes"),
                    required("referencegrants"),
                    required("grpcroutes"),
                    required("backendtlspolicies"),
                    required("tlsroutes"),
                    optional("listenersets"),
                    optional("tcproutes"),
                    optional("udproutes"),
                ],
            });
        }
        let mut crds = vec![
            need("gatewayclasses", "v1", Need::Required, Channel::Standard),
            need("gateways", "v1", Need::Required, Channel::Standard),
            need("httproutes", "v1", Need::Required, Channel::Standard),
            need(
                "referencegrants",
                "v1beta1",
                Need::Required,
                Channel::Standard,
            ),
        ];
        if minor == 15 {
            // GRPCRoute is experimental (v1alpha2) in v1.0.0 and Cilium 1.15 reconciles it.
            crds.push(need(
                "grpcroutes",
                "v1alpha2",
                Need::Required,
                Channel::Experimental,
            ));
        } else {
            crds.push(need("grpcroutes", "v1", Need::Required, Channel::Standard));
        }
        // 1.15 and 1.16 need the experimental TLSRoute CRD; from 1.17 TLSRoute support is just
        // off without it (cilium/cilium#34212).
        let tls_need = if minor <= 16 {
            Need::Required
        } else {
            Need::Optional
        };
        crds.push(need(
            "tlsroutes",
            "v1alpha2",
            tls_need,
            Channel::Experimental,
        ));
        Some(Requirement {
            cilium_minor: minor,
            bundle,
            crds,
        })
    }

    /// The requirement of Cilium 1.`minor` on a cluster whose Gateway API CRDs are `live`: as
    /// [`Requirement::for_cilium_minor`], except for a TLSRoute CRD that the cluster uses today
    /// at a version the bundle's standard channel no longer serves (served now, or in its
    /// `status.storedVersions`: TLSRoutes written at `v1alpha2` before Cilium 1.20). That one is
    /// needed from the experimental channel, which still serves those versions, and has to keep
    /// serving them ([`NeededCrd::keep_served`]): Cilium 1.20's installation guide warns that
    /// the v1.6 standard TLSRoute leaves such TLSRoutes unreadable.
    pub fn for_cluster(minor: u32, live: &[CrdFacts]) -> Option<Requirement> {
        let mut requirement = Requirement::for_cilium_minor(minor)?;
        let bundle = requirement.bundle.minor;
        let serves = |versions: &[VersionEntry], name: &str| {
            versions
                .iter()
                .any(|entry| entry.name == name && entry.served)
        };
        for needed in requirement
            .crds
            .iter_mut()
            .filter(|c| c.plural == "tlsroutes" && c.channel == Channel::Standard)
        {
            let Some(crd) = live.iter().find(|c| c.plural == needed.plural) else {
                continue;
            };
            let standard =
                versions_in_bundle(needed.plural, bundle, Channel::Standard).unwrap_or_default();
            let mut lost: Vec<String> = crd
                .served
                .iter()
                .chain(&crd.stored_versions)
                .filter(|version| !serves(&standard, version))
                .cloned()
                .collect();
            lost.sort();
            lost.dedup();
            if lost.is_empty() {
                continue;
            }
            let experimental = versions_in_bundle(needed.plural, bundle, Channel::Experimental)
                .unwrap_or_default();
            if serves(&experimental, needed.version)
                && lost.iter().all(|v| serves(&experimental, v))
            {
                needed.channel = Channel::Experimental;
            }
            needed.keep_served = lost;
        }
        Some(requirement)
    }

    /// The commands that install the CRDs in `missing` from this requirement's bundle: the
    /// experimental bundle when a required CRD other than TLSRoute needs it, else the standard
    /// bundle plus single experimental files.
    ///
    /// From v1.5 the standard install ships the standard TLSRoute and the `safe-upgrades`
    /// ValidatingAdmissionPolicy, which refuses an experimental CRD over a standard one: when the
    /// experimental TLSRoute is needed there, it is applied first and the standard CRDs one file
    /// at a time (as Cilium 1.20's installation guide does), never the whole standard install.
    pub fn install_commands(&self, missing: &[&NeededCrd]) -> Vec<String> {
        let version = &self.bundle;
        let whole_experimental = missing
            .iter()
            .any(|c| c.channel == Channel::Experimental && c.plural != "tlsroutes");
        if whole_experimental {
            return vec![release_asset_command(version, Channel::Experimental)];
        }
        let single = |channel: Channel, plural: &str| {
            format!(
                "kubectl apply --server-side -f https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/{version}/config/crd/{channel}/{GROUP}_{plural}.yaml"
            )
        };
        let standard_install_overrides = self.crds.iter().any(|c| {
            c.channel == Channel::Experimental
                && versions_in_bundle(c.plural, version.minor, Channel::Standard).is_some()
        });
        let mut commands = Vec::new();
        if standard_install_overrides {
            for channel in [Channel::Experimental, Channel::Standard] {
                commands.extend(
                    missing
                        .iter()
                        .filter(|c| c.channel == channel)
                        .map(|c| single(channel, c.plural)),
                );
            }
            return commands;
        }
        if missing.iter().any(|c| c.channel == Channel::Standard) {
            commands.push(release_asset_command(version, Channel::Standard));
        }
        for crd in missing
            .iter()
            .filter(|c| c.channel == Channel::Experimental)
        {
            commands.push(single(Channel::Experimental, crd.plural));
        }
        commands
    }
}

fn release_asset_command(version: &BundleVersion, channel: Channel) -> String {
    format!(
        "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/{version}/{channel}-install.yaml"
    )
}

/// How an installed bundle fits a Cilium minor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleFit {
    /// The bundle Cilium is tested with.
    Expected,
    /// A newer bundle that is not known to break this minor (served versions are checked apart).
    Newer,
    /// Older than what Cilium reconciles: fields and versions are missing.
    TooOld,
    /// Known to break this minor; the reason names the issue.
    Breaks(&'static str),
}

/// How the installed `bundle` on `channel` fits Cilium 1.`cilium_minor` whose requirement is
/// `requirement`.
pub fn bundle_fit(
    requirement: &Requirement,
    bundle: &BundleVersion,
    channel: Channel,
) -> BundleFit {
    let expected = &requirement.bundle;
    if (bundle.major, bundle.minor) < (expected.major, expected.minor) {
        return BundleFit::TooOld;
    }
    if requirement.cilium_minor == 16 && bundle.minor >= 2 {
        return BundleFit::Breaks(
            "v1.2's GatewayClass supportedFeatures schema breaks GatewayClass status on Cilium 1.16",
        );
    }
    if requirement.cilium_minor <= 19 && bundle.minor >= 5 && channel == Channel::Standard {
        return BundleFit::Breaks(
            "v1.5's standard channel stops serving TLSRoute v1alpha2 and the operator crash-loops \
             (cilium/cilium#44920, kubespray#13222)",
        );
    }
    if bundle.same_minor(expected) {
        BundleFit::Expected
    } else {
        BundleFit::Newer
    }
}

/// A schema-less CRD with upstream's names, scope, served versions and annotations for bundle
/// `version` on `channel`; `None` when that bundle does not ship `plural` on that channel.
///
/// **For tests only**: it accepts any object (`x-kubernetes-preserve-unknown-fields`), so it
/// gives a real API server the same discovery and served versions as the upstream bundle without
/// upstream's validation. Never install it in a real cluster.
pub fn minimal_crd(plural: &str, version: &BundleVersion, channel: Channel) -> Option<Value> {
    let (_, kind, scope) = KINDS.iter().find(|(p, _, _)| *p == plural)?;
    let versions = versions_in_bundle(plural, version.minor, channel)?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|entry| {
            json!({
                "name": entry.name,
                "served": entry.served,
                "storage": entry.storage,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                } },
                "subresources": { "status": {} }
            })
        })
        .collect();
    Some(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(plural),
            "annotations": {
                // The API server refuses CRDs of *.k8s.io groups without it.
                "api-approved.kubernetes.io": api_approval(version.minor),
                BUNDLE_VERSION_ANNOTATION: version.to_string(),
                CHANNEL_ANNOTATION: channel.as_str(),
            }
        },
        "spec": {
            "group": GROUP,
            "names": {
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "kind": kind,
                "listKind": format!("{kind}List"),
            },
            "scope": scope.as_str(),
            "versions": versions,
        }
    }))
}

/// The approval upstream's CRDs of release `v1.<minor>` carry.
fn api_approval(minor: u32) -> &'static str {
    match minor {
        0 => "https://github.com/kubernetes-sigs/gateway-api/pull/2466",
        1 => "https://github.com/kubernetes-sigs/gateway-api/pull/2997",
        2..=4 => "https://github.com/kubernetes-sigs/gateway-api/pull/3328",
        _ => "https://github.com/kubernetes-sigs/gateway-api/pull/4530",
    }
}

/// Every CRD of [`KINDS`] that bundle `version` ships on `channel`, as [`minimal_crd`] writes it
/// (tests only).
pub fn minimal_bundle(version: &BundleVersion, channel: Channel) -> Vec<Value> {
    KINDS
        .iter()
        .filter_map(|(plural, _, _)| minimal_crd(plural, version, channel))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_versions_parse_with_and_without_prefix_and_suffix() {
        assert_eq!(
            BundleVersion::parse("v1.2.0"),
            Some(BundleVersion::new(1, 2, 0))
        );
        assert_eq!(
            BundleVersion::parse("1.4"),
            Some(BundleVersion::new(1, 4, 0))
        );
        let rc = BundleVersion::parse("v1.5.0-rc.2");
        assert_eq!(rc.as_ref().map(|v| v.minor), Some(5));
        assert_eq!(rc.map(|v| v.to_string()).as_deref(), Some("v1.5.0-rc.2"));
        assert_eq!(BundleVersion::parse("latest"), None);
        assert_eq!(BundleVersion::parse("v1.2.3.4"), None);
        // With semver, build metadata is no part of the pre-release, and a malformed
        // pre-release or a leading zero is refused.
        let built = BundleVersion::parse("v1.3.0-rc.1+abc").map(|v| v.to_string());
        assert_eq!(built.as_deref(), Some("v1.3.0-rc.1"));
        assert_eq!(BundleVersion::parse("v1.2.0-"), None);
        assert_eq!(BundleVersion::parse("v1.02.0"), None);
    }

    #[test]
    fn each_cilium_minor_names_its_bundle_and_tlsroute_need() {
        let table: Vec<(u32, String, Need, &str)> = (15..=20)
            .filter_map(Requirement::for_cilium_minor)
            .map(|r| {
                let tls = r
                    .crds
                    .iter()
                    .find(|c| c.plural == "tlsroutes")
                    .map(|c| c.need);
                let grpc = r
                    .crds
                    .iter()
                    .find(|c| c.plural == "grpcroutes")
                    .map(|c| c.version)
                    .unwrap_or_default();
                (
                    r.cilium_minor,
                    r.bundle.to_string(),
                    tls.unwrap_or(Need::Optional),
                    grpc,
                )
            })
            .collect();
        assert_eq!(
            table,
            [
                (15, "v1.0.0".to_owned(), Need::Required, "v1alpha2"),
                (16, "v1.1.0".to_owned(), Need::Required, "v1"),
                (17, "v1.2.0".to_owned(), Need::Optional, "v1"),
                (18, "v1.3.0".to_owned(), Need::Optional, "v1"),
                (19, "v1.4.1".to_owned(), Need::Optional, "v1"),
                (20, "v1.6.1".to_owned(), Need::Required, "v1"),
            ]
        );
        assert_eq!(Requirement::for_cilium_minor(21), None);
        assert_eq!(Requirement::for_cilium_minor(14), None);
        // Every minor the values know has its row, so check never skips the CRDs.
        for minor in cilium_values::OLDEST_MINOR..=cilium_values::NEWEST_MINOR {
            assert!(
                Requirement::for_cilium_minor(minor).is_some(),
                "1.{minor} has no Gateway API requirement"
            );
        }
    }

    /// 1.20 reads every kind at v1 (schemes.go), BackendTLSPolicy and TLSRoute among the
    /// required ones, all from the v1.6 standard channel by default.
    #[test]
    fn cilium_1_20_needs_v1_of_the_v1_6_standard_channel() {
        let Some(r20) = Requirement::for_cilium_minor(20) else {
            panic!("1.20 has a requirement");
        };
        let listed: Vec<(&str, &str, Need, Channel)> = r20
            .crds
            .iter()
            .map(|c| (c.kind, c.version, c.need, c.channel))
            .collect();
        let required = |kind| (kind, "v1", Need::Required, Channel::Standard);
        let optional = |kind| (kind, "v1", Need::Optional, Channel::Standard);
        assert_eq!(
            listed,
            [
                required("GatewayClass"),
                required("Gateway"),
                required("HTTPRoute"),
                required("ReferenceGrant"),
                required("GRPCRoute"),
                required("BackendTLSPolicy"),
                required("TLSRoute"),
                optional("ListenerSet"),
                optional("TCPRoute"),
                optional("UDPRoute"),
            ]
        );
        let all: Vec<&NeededCrd> = r20.crds.iter().collect();
        assert_eq!(
            r20.install_commands(&all),
            [
                "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.6.1/standard-install.yaml"
            ]
        );
    }

    fn live_tlsroutes(served: &[&str], stored: &[&str], channel: &str) -> CrdFacts {
        let owned = |list: &[&str]| list.iter().map(|v| (*v).to_owned()).collect();
        CrdFacts {
            plural: "tlsroutes".to_owned(),
            served: owned(served),
            stored_versions: owned(stored),
            channel: Some(channel.to_owned()),
            ..CrdFacts::default()
        }
    }

    /// Installation guide of 1.20: TLSRoutes from before 1.20 need the experimental TLSRoute,
    /// whether the CRD serves v1alpha2 today or once stored objects at it.
    #[test]
    fn tlsroutes_from_before_1_20_keep_the_experimental_channel() {
        let tls = |live: &[CrdFacts]| {
            let r = Requirement::for_cluster(20, live).expect("1.20");
            let crd = r
                .crds
                .iter()
                .find(|c| c.plural == "tlsroutes")
                .cloned()
                .expect("TLSRoute");
            (crd.channel, crd.keep_served)
        };
        let kept = |list: &[&str]| list.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
        // None yet, or one written at v1 only: the standard channel.
        assert_eq!(tls(&[]), (Channel::Standard, Vec::new()));
        let fresh = live_tlsroutes(&["v1"], &["v1"], "standard");
        assert_eq!(tls(&[fresh]), (Channel::Standard, Vec::new()));
        // 1.19's experimental v1.4.1 TLSRoute: serves v1alpha2 and v1alpha3.
        let v1_4 = live_tlsroutes(&["v1alpha2", "v1alpha3"], &["v1alpha2"], "experimental");
        assert_eq!(
            tls(&[v1_4]),
            (Channel::Experimental, kept(&["v1alpha2", "v1alpha3"]))
        );
        // The v1.6 standard TLSRoute already applied over v1alpha2 objects: still stored there.
        let overwritten = live_tlsroutes(&["v1"], &["v1alpha2", "v1"], "standard");
        assert_eq!(
            tls(std::slice::from_ref(&overwritten)),
            (Channel::Experimental, kept(&["v1alpha2"]))
        );
        // Up to 1.19 TLSRoute is experimental anyway: nothing changes there.
        let r19 = Requirement::for_cluster(19, &[overwritten]).expect("1.19");
        assert_eq!(r19, Requirement::for_cilium_minor(19).expect("1.19"));
    }

    /// With the experimental TLSRoute needed on v1.6, the standard install (which ships the
    /// standard TLSRoute and the safe-upgrades policy) is never applied whole: the experimental
    /// TLSRoute first, then the standard CRDs one file at a time.
    #[test]
    fn install_commands_keep_the_experimental_tlsroute_first() {
        let live = [live_tlsroutes(
            &["v1alpha2", "v1alpha3"],
            &["v1alpha2"],
            "experimental",
        )];
        let r20 = Requirement::for_cluster(20, &live).expect("1.20");
        let missing: Vec<&NeededCrd> = r20
            .crds
            .iter()
            .filter(|c| matches!(c.plural, "tlsroutes" | "referencegrants" | "tcproutes"))
            .collect();
        let base = "kubectl apply --server-side -f https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.6.1/config/crd";
        assert_eq!(
            r20.install_commands(&missing),
            [
                format!("{base}/experimental/gateway.networking.k8s.io_tlsroutes.yaml"),
                format!("{base}/standard/gateway.networking.k8s.io_referencegrants.yaml"),
                format!("{base}/standard/gateway.networking.k8s.io_tcproutes.yaml"),
            ]
        );
    }

    #[test]
    fn every_needed_version_is_served_by_the_bundle_to_install() {
        for minor in 15..=20 {
            let Some(requirement) = Requirement::for_cilium_minor(minor) else {
                panic!("1.{minor} has a requirement");
            };
            for crd in &requirement.crds {
                let versions =
                    versions_in_bundle(crd.plural, requirement.bundle.minor, crd.channel)
                        .unwrap_or_default();
                assert!(
                    versions.iter().any(|v| v.name == crd.version && v.served),
                    "1.{minor}: {} {} not served by {} {}",
                    crd.plural,
                    crd.version,
                    requirement.bundle,
                    crd.channel
                );
                assert_eq!(
                    versions.iter().filter(|v| v.storage).count(),
                    1,
                    "{} in {}: one storage version",
                    crd.plural,
                    requirement.bundle
                );
            }
        }
    }

    #[test]
    fn fit_of_installed_bundles() {
        let fit = |cilium: u32, bundle: &str, channel: Channel| {
            let requirement = Requirement::for_cilium_minor(cilium).expect("known minor");
            let bundle = BundleVersion::parse(bundle).expect("version");
            bundle_fit(&requirement, &bundle, channel)
        };
        assert_eq!(fit(17, "v1.2.1", Channel::Standard), BundleFit::Expected);
        assert_eq!(fit(17, "v1.1.0", Channel::Standard), BundleFit::TooOld);
        assert_eq!(fit(18, "v1.4.0", Channel::Standard), BundleFit::Newer);
        assert!(matches!(
            fit(16, "v1.2.0", Channel::Experimental),
            BundleFit::Breaks(_)
        ));
        assert!(matches!(
            fit(19, "v1.5.1", Channel::Standard),
            BundleFit::Breaks(_)
        ));
        assert_eq!(fit(19, "v1.5.1", Channel::Experimental), BundleFit::Newer);
        assert_eq!(fit(20, "v1.6.1", Channel::Standard), BundleFit::Expected);
        assert_eq!(fit(20, "v1.5.1", Channel::Standard), BundleFit::TooOld);
        assert_eq!(fit(20, "v1.4.1", Channel::Experimental), BundleFit::TooOld);
    }

    #[test]
    fn install_commands_pick_the_channel() {
        let r15 = Requirement::for_cilium_minor(15).expect("1.15");
        let all: Vec<&NeededCrd> = r15.crds.iter().collect();
        assert_eq!(
            r15.install_commands(&all),
            [
                "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.0.0/experimental-install.yaml"
            ]
        );
        let r16 = Requirement::for_cilium_minor(16).expect("1.16");
        let all: Vec<&NeededCrd> = r16.crds.iter().collect();
        assert_eq!(
            r16.install_commands(&all),
            [
                "kubectl apply --server-side -f https://github.com/kubernetes-sigs/gateway-api/releases/download/v1.1.0/standard-install.yaml",
                "kubectl apply --server-side -f https://raw.githubusercontent.com/kubernetes-sigs/gateway-api/v1.1.0/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml",
            ]
        );
    }

    #[test]
    fn minimal_crds_carry_upstream_names_and_annotations() {
        let crds = minimal_bundle(&BundleVersion::new(1, 2, 0), Channel::Standard);
        let names: Vec<&str> = crds
            .iter()
            .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(
            names,
            [
                "gatewayclasses.gateway.networking.k8s.io",
                "gateways.gateway.networking.k8s.io",
                "httproutes.gateway.networking.k8s.io",
                "referencegrants.gateway.networking.k8s.io",
                "grpcroutes.gateway.networking.k8s.io",
            ]
        );
        let class = &crds[0];
        assert_eq!(class["spec"]["scope"], "Cluster");
        assert_eq!(class["spec"]["names"]["kind"], "GatewayClass");
        assert_eq!(
            class["metadata"]["annotations"][BUNDLE_VERSION_ANNOTATION],
            "v1.2.0"
        );
        assert_eq!(
            minimal_crd("tlsroutes", &BundleVersion::new(1, 2, 0), Channel::Standard),
            None
        );
    }
}
