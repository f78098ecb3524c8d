//! Which Cilium chart minor the values are written for, and what that minor knows.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Oldest chart minor this tool writes values for.
pub const OLDEST_MINOR: u32 = 15;
/// Newest chart minor this tool writes values for.
pub const NEWEST_MINOR: u32 = 19;

/// A Cilium chart version such as `1.15.9` (a leading `v` is accepted, as Kubespray ≤ v2.27 writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChartVersion {
    /// Always 1 for the charts this tool knows.
    pub major: u32,
    /// The minor decides which values exist.
    pub minor: u32,
    /// Patch level; only 1.17.6+ differs from its minor (externalIPs removed).
    pub patch: u32,
}

impl ChartVersion {
    /// Build a version from its parts, checking it is a chart this tool supports.
    pub fn new(major: u32, minor: u32, patch: u32) -> Result<Self, Error> {
        if major != 1 || !(OLDEST_MINOR..=NEWEST_MINOR).contains(&minor) {
            return Err(Error::UnsupportedVersion {
                version: format!("{major}.{minor}.{patch}"),
            });
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }

    /// The chart Kubespray v2.27 installs the manifests of: 1.15.9.
    pub const KUBESPRAY_2_27: Self = Self {
        major: 1,
        minor: 15,
        patch: 9,
    };

    /// Parse `1.15.9`, `v1.15.9`, `1.16` (patch 0). Pre-release suffixes (`-rc.1`) are ignored.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::BadVersion {
            text: text.to_owned(),
        };
        let trimmed = text.trim();
        let plain = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let plain = plain.split(['-', '+']).next().unwrap_or(plain);
        let mut parts = plain.split('.');
        let mut number = |required: bool| -> Result<u32, Error> {
            match parts.next() {
                Some(p) => p.parse::<u32>().map_err(|_| bad()),
                None if required => Err(bad()),
                None => Ok(0),
            }
        };
        let major = number(true)?;
        let minor = number(true)?;
        let patch = number(false)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Self::new(major, minor, patch)
    }

    /// `values.schema.json` ships from chart 1.16.0: types are enforced (a string `"24"` for an integer fails).
    pub fn has_values_schema(self) -> bool {
        self.minor >= 16
    }

    /// 1.15 accepts `kubeProxyReplacement` `partial`/`strict`/`disabled`; 1.16+ fails the render unless `true`/`false`.
    pub fn accepts_legacy_kube_proxy_replacement(self) -> bool {
        self.minor <= 15
    }

    /// `remoteNodeIdentity`, `containerRuntime.integration`, legacy `encryption.keyFile`/`mountPath`/
    /// `interface` exist only up to 1.15 (1.16's validate.yaml fails on them). `enableCnpStatusUpdates`
    /// is gone already in 1.15 (its validate.yaml fails when it is true; no key is rendered).
    pub fn has_legacy_1_15_values(self) -> bool {
        self.minor <= 15
    }

    /// 1.15 renders `sidecar-istio-proxy-image` from `proxy.sidecarImageRegex`; 1.16 dropped both.
    pub fn renders_sidecar_istio_proxy_image(self) -> bool {
        self.minor <= 15
    }

    /// `encryption.wireguard.userspaceFallback` was removed in 1.17.
    pub fn has_wireguard_userspace_fallback(self) -> bool {
        self.minor <= 16
    }

    /// `enable-host-port` is rendered from `hostPort.enabled` (when kube-proxy replacement is off)
    /// up to 1.16 and in 1.17.6 to 1.17.x. 1.17.0 to 1.17.5 gate it on `partial`, which 1.17 refuses,
    /// so the value is never rendered there; 1.18 removed it.
    pub fn renders_host_port(self) -> bool {
        self.minor <= 16 || (self.minor == 17 && self.patch >= 6)
    }

    /// `enable-node-port` is rendered from `nodePort.enabled` (kube-proxy replacement off) up to 1.18;
    /// 1.19 removed the value and the agent flag.
    pub fn has_node_port_value(self) -> bool {
        self.minor <= 18
    }

    /// `enable-external-ips` is rendered from `externalIPs.enabled` up to 1.16. 1.17.0 to 1.17.5 gate
    /// it on `partial` (never rendered), 1.17.6 removed the value.
    pub fn renders_external_ips(self) -> bool {
        self.minor <= 16
    }

    /// `kube-proxy-replacement-healthz-bind-address` is rendered whenever kube-proxy replacement is
    /// not `disabled` up to 1.17.5; from 1.17.6 only when it is `true`.
    pub fn renders_kube_proxy_healthz_without_replacement(self) -> bool {
        self.minor < 17 || (self.minor == 17 && self.patch < 6)
    }

    /// `enable-bgp-control-plane: "false"` is rendered by 1.15; 1.16+ renders the key only when true.
    pub fn renders_bgp_control_plane_when_off(self) -> bool {
        self.minor <= 15
    }

    /// `enable-hubble` is rendered only when true up to 1.17.1, always from 1.17.2.
    pub fn renders_enable_hubble_when_off(self) -> bool {
        self.minor >= 18 || (self.minor == 17 && self.patch >= 2)
    }

    /// From 1.16 validate.yaml refuses `cluster.name: default` with a non-zero `cluster.id`.
    pub fn rejects_default_cluster_name_with_id(self) -> bool {
        self.minor >= 16
    }

    /// From 1.16 the chart deploys a separate `cilium-envoy` DaemonSet unless `upgradeCompatibility` ≤ 1.15.
    pub fn defaults_to_envoy_daemonset(self) -> bool {
        self.minor >= 16
    }
}

impl fmt::Display for ChartVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for ChartVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions_in_every_spelling() {
        type Parts = Option<(u32, u32, u32)>;
        let cases: &[(&str, Parts)] = &[
            ("1.15.9", Some((1, 15, 9))),
            ("v1.15.9", Some((1, 15, 9))),
            (" 1.19.6 ", Some((1, 19, 6))),
            ("1.16", Some((1, 16, 0))),
            ("1.17.0-rc.1", Some((1, 17, 0))),
            ("1.14.12", None),
            ("1.20.0", None),
            ("2.15.0", None),
            ("1.x.0", None),
            ("", None),
            ("1.15.9.1", None),
        ];
        for (text, want) in cases {
            let got = ChartVersion::parse(text)
                .ok()
                .map(|v| (v.major, v.minor, v.patch));
            assert_eq!(got, *want, "parsing {text:?}");
        }
    }

    #[test]
    fn per_minor_facts() {
        let v = |s: &str| ChartVersion::parse(s).expect("valid version");
        assert!(!v("1.15.9").has_values_schema());
        assert!(v("1.16.19").has_values_schema());
        assert!(v("1.15.9").accepts_legacy_kube_proxy_replacement());
        assert!(!v("1.16.0").accepts_legacy_kube_proxy_replacement());
        assert!(v("1.16.19").renders_external_ips());
        assert!(!v("1.17.5").renders_external_ips());
        assert!(v("1.16.19").renders_host_port());
        assert!(!v("1.17.5").renders_host_port());
        assert!(v("1.17.6").renders_host_port());
        assert!(v("1.17.18").renders_host_port());
        assert!(!v("1.18.0").renders_host_port());
        assert!(v("1.18.12").has_node_port_value());
        assert!(!v("1.19.6").has_node_port_value());
        assert_eq!(v("v1.15.9").to_string(), "1.15.9");
    }

    /// Render quirks read from the released charts (latest patches and the patch where each moved).
    #[test]
    fn render_quirks_per_patch() {
        let v = |s: &str| ChartVersion::parse(s).expect("valid version");
        let cases: &[(&str, bool, bool, bool, bool)] = &[
            // version, enable-hubble when off, bgp when off, healthz without KPR, sidecar image
            ("1.15.9", false, true, true, true),
            ("1.16.19", false, false, true, false),
            ("1.17.1", false, false, true, false),
            ("1.17.2", true, false, true, false),
            ("1.17.5", true, false, true, false),
            ("1.17.6", true, false, false, false),
            ("1.18.12", true, false, false, false),
            ("1.19.6", true, false, false, false),
        ];
        for &(text, hubble, bgp, healthz, sidecar) in cases {
            let version = v(text);
            assert_eq!(version.renders_enable_hubble_when_off(), hubble, "{text}");
            assert_eq!(version.renders_bgp_control_plane_when_off(), bgp, "{text}");
            assert_eq!(
                version.renders_kube_proxy_healthz_without_replacement(),
                healthz,
                "{text}"
            );
            assert_eq!(
                version.renders_sidecar_istio_proxy_image(),
                sidecar,
                "{text}"
            );
        }
        assert!(!v("1.15.9").rejects_default_cluster_name_with_id());
        assert!(v("1.16.0").rejects_default_cluster_name_with_id());
    }
}
