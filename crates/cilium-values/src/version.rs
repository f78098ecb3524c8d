//! Which Cilium chart minor the values are written for, and what that minor knows.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// Oldest chart minor this tool writes values for.
pub const OLDEST_MINOR: u32 = 15;
/// Newest chart minor this tool writes values for.
pub const NEWEST_MINOR: u32 = 20;

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

    /// Parse `1.15.9`, `v1.15.9`, `1.16` (patch 0). A pre-release or build suffix (`-rc.1`,
    /// `+abc`) is dropped: the chart minor and patch decide what the values are.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::BadVersion {
            text: text.to_owned(),
        };
        let version = parse_release(text).map_err(|_| bad())?;
        let number = |n: u64| u32::try_from(n).map_err(|_| bad());
        Self::new(
            number(version.major)?,
            number(version.minor)?,
            number(version.patch)?,
        )
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

    /// `encryption.ipsec.interface` (`encrypt-interface`) exists up to 1.19; 1.20 removed the
    /// value and the agent flag (upgrade notes: a no-op since 1.18).
    pub fn has_ipsec_interface_value(self) -> bool {
        self.minor <= 19
    }

    /// From 1.16 the chart deploys a separate `cilium-envoy` DaemonSet unless `upgradeCompatibility` ≤ 1.15.
    pub fn defaults_to_envoy_daemonset(self) -> bool {
        self.minor >= 16
    }
}

/// cilium-config keys the released charts write from their own values, which the translation does
/// not model: `(key, first minor, last minor)`. A live key among them is left to the chart (and the
/// gate compares the chart's value with the live one): a copy in `extraConfig` would be a second
/// `key:` in the same ConfigMap, which a strict YAML reader refuses.
///
/// Read from `helm template` of the released charts 1.15.9, 1.15.19, 1.16.19, 1.17.3, 1.17.18,
/// 1.18.12, 1.19.6 and 1.20.0 with their defaults and with each switch this crate writes turned on
/// (Hubble with relay, metrics and TLS; IPsec; WireGuard; BGP; kube-proxy replacement; L2
/// announcements; agent, operator and Envoy metrics; native routing), minus the keys the
/// translation maps to typed values, 2026-12-06 (1.20.0 on 2026-12-07: it stops writing
/// `enable-ipsec-encrypted-overlay` and writes the eight `(20, 20)` keys by default).
const CHART_WRITTEN: &[(&str, u32, u32)] = &[
    ("agent-not-ready-taint-key", 15, 20),
    ("arping-refresh-period", 15, 17),
    ("bgp-router-id-allocation-ip-pool", 18, 20),
    ("bgp-router-id-allocation-mode", 18, 20),
    ("bpf-distributed-lru", 17, 20),
    ("bpf-events-drop-enabled", 16, 20),
    ("bpf-events-policy-verdict-enabled", 16, 20),
    ("bpf-events-trace-enabled", 16, 20),
    ("bpf-lb-algorithm-annotation", 17, 20),
    ("bpf-lb-external-clusterip", 15, 20),
    ("bpf-lb-mode-annotation", 17, 20),
    ("bpf-lb-source-range-all-types", 17, 20),
    ("bpf-policy-stats-map-max", 18, 20),
    ("bpf-root", 15, 20),
    ("cilium-endpoint-gc-interval", 15, 20),
    ("clustermesh-cache-ttl", 19, 20),
    ("clustermesh-default-global-namespace", 20, 20),
    ("clustermesh-enable-endpoint-sync", 16, 20),
    ("clustermesh-enable-mcs-api", 16, 20),
    ("clustermesh-mcs-api-install-crds", 19, 20),
    ("controller-group-metrics", 15, 20),
    ("datapath-mode", 16, 20),
    ("datapath-plugins-state-dir", 20, 20),
    ("default-lb-service-ipam", 17, 20),
    ("direct-routing-skip-unreachable", 16, 20),
    ("dnsproxy-socket-linger-timeout", 15, 20),
    ("egress-gateway-reconciliation-trigger-interval", 15, 20),
    ("enable-auto-protect-node-port-range", 15, 20),
    ("enable-bgp-control-plane-status-report", 17, 20),
    ("enable-bgp-legacy-origin-attribute", 18, 20),
    ("enable-datapath-plugins", 20, 20),
    ("enable-drift-checker", 18, 20),
    ("enable-dynamic-config", 18, 20),
    ("enable-dynamic-source-lookup-nodeport", 20, 20),
    ("enable-endpoint-lockdown-on-policy-overflow", 17, 20),
    ("enable-experimental-lb", 17, 17),
    ("enable-health-check-loadbalancer-ip", 15, 20),
    ("enable-health-check-nodeport", 15, 20),
    ("enable-internal-traffic-policy", 17, 18),
    ("enable-ipsec-encrypted-overlay", 16, 19),
    ("enable-ipsec-key-watcher", 15, 20),
    ("enable-ipv4-big-tcp", 15, 20),
    ("enable-ipv6-big-tcp", 15, 20),
    ("enable-k8s-networkpolicy", 15, 20),
    ("enable-k8s-terminating-endpoint", 15, 17),
    ("enable-lb-ipam", 17, 20),
    ("enable-local-redirect-policy", 15, 17),
    ("enable-masquerade-to-route-source", 15, 20),
    ("enable-no-service-endpoints-routable", 19, 20),
    ("enable-node-selector-labels", 16, 20),
    ("enable-non-default-deny-policies", 17, 20),
    ("enable-policy-secrets-sync", 17, 20),
    ("enable-runtime-device-detection", 16, 17),
    ("enable-sctp", 15, 20),
    ("enable-service-topology", 19, 20),
    ("enable-source-ip-verification", 17, 20),
    ("enable-svc-source-range-check", 15, 18),
    ("enable-tcx", 16, 20),
    ("enable-vtep", 15, 20),
    ("enable-xt-socket-fallback", 15, 20),
    ("envoy-access-log-buffer-size", 16, 20),
    ("envoy-access-log-enabled", 20, 20),
    ("envoy-base-id", 16, 20),
    ("envoy-keep-cap-netbindservice", 16, 20),
    ("envoy-node-locality-enabled", 20, 20),
    ("envoy-xds-mode", 20, 20),
    ("external-envoy-proxy", 15, 20),
    ("health-check-icmp-failure-threshold", 17, 20),
    ("http-retry-count", 17, 20),
    ("http-stream-idle-timeout", 18, 20),
    ("hubble-export-file-max-backups", 15, 17),
    ("hubble-export-file-max-size-mb", 15, 17),
    ("hubble-metrics-server-enable-tls", 16, 20),
    ("hubble-network-policy-correlation-enabled", 18, 20),
    ("identity-gc-interval", 15, 20),
    ("identity-heartbeat-timeout", 15, 20),
    ("identity-management-mode", 18, 20),
    ("ipam-cilium-node-update-rate", 15, 20),
    ("ipsec-key-rotation-duration", 15, 20),
    ("iptables-random-fully", 17, 20),
    ("k8s-require-ipv4-pod-cidr", 16, 20),
    ("k8s-require-ipv6-pod-cidr", 16, 20),
    ("max-connected-clusters", 15, 20),
    ("mesh-auth-gc-interval", 15, 20),
    ("mesh-auth-queue-size", 15, 20),
    ("mesh-auth-rotated-identities-queue-size", 15, 20),
    ("metrics-sampling-interval", 18, 20),
    ("nat-map-stats-entries", 16, 20),
    ("nat-map-stats-interval", 16, 20),
    ("node-port-bind-protection", 15, 20),
    ("nodeport-addresses", 16, 20),
    ("nodes-gc-interval", 15, 20),
    ("packetization-layer-pmtud-mode", 19, 20),
    ("policy-cidr-match-mode", 15, 20),
    ("policy-default-local-cluster", 18, 20),
    ("policy-deny-response", 19, 20),
    ("policy-secrets-namespace", 17, 20),
    ("policy-secrets-only-from-secrets-namespace", 17, 20),
    ("procfs", 15, 20),
    ("proxy-cluster-max-connections", 19, 20),
    ("proxy-cluster-max-pending-requests", 20, 20),
    ("proxy-cluster-max-requests", 19, 20),
    ("proxy-connect-timeout", 15, 20),
    ("proxy-idle-timeout-seconds", 15, 20),
    ("proxy-initial-fetch-timeout", 16, 20),
    ("proxy-max-active-downstream-connections", 19, 20),
    ("proxy-max-concurrent-retries", 17, 20),
    ("proxy-max-connection-duration-seconds", 15, 20),
    ("proxy-max-requests-per-connection", 15, 20),
    ("proxy-prometheus-port", 15, 15),
    ("proxy-use-original-source-address", 19, 20),
    ("proxy-xff-num-trusted-hops-egress", 15, 20),
    ("proxy-xff-num-trusted-hops-ingress", 15, 20),
    ("remove-cilium-node-taints", 15, 20),
    ("service-no-backend-response", 15, 20),
    ("set-cilium-is-up-condition", 15, 20),
    ("skip-cnp-status-startup-clean", 15, 15),
    ("synchronize-k8s-nodes", 15, 20),
    ("tofqdns-preallocate-identities", 18, 20),
    ("tunnel-source-port-range", 17, 20),
    ("unmanaged-pod-watcher-interval", 15, 20),
    ("vtep-cidr", 15, 20),
    ("vtep-endpoint", 15, 20),
    ("vtep-mac", 15, 20),
    ("vtep-mask", 15, 20),
    ("wireguard-persistent-keepalive", 15, 20),
];

impl ChartVersion {
    /// Whether this chart writes `key` itself from values the translation does not model.
    pub fn writes_itself(self, key: &str) -> bool {
        CHART_WRITTEN
            .iter()
            .any(|&(k, first, last)| k == key && (first..=last).contains(&self.minor))
    }
}

/// A release version as Kubespray, Helm and upstream tags write it: a leading `v` and surrounding
/// whitespace are allowed, and `X.Y` means `X.Y.0` (semver itself wants all three numbers).
pub fn parse_release(text: &str) -> Result<semver::Version, semver::Error> {
    let plain = text.trim();
    let plain = plain.strip_prefix('v').unwrap_or(plain);
    semver::Version::parse(plain).or_else(|error| {
        let (core, suffix) = plain.split_at(plain.find(['-', '+']).unwrap_or(plain.len()));
        if core.matches('.').count() == 1 {
            semver::Version::parse(&format!("{core}.0{suffix}")).map_err(|_| error)
        } else {
            Err(error)
        }
    })
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
            ("1.20.0", Some((1, 20, 0))),
            ("1.21.0", None),
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

    /// semver is stricter than the hand-written parser it replaced: an empty or non-ASCII
    /// pre-release and leading zeros are refused now, and the error still quotes the input.
    #[test]
    fn malformed_suffixes_and_leading_zeros_are_bad_versions() {
        for text in [
            "1.17.0-",
            "1.17.0+",
            "1.17.0-rc_1",
            "1.016.0",
            "01.16.0",
            "v1.16.x",
        ] {
            let error = ChartVersion::parse(text).expect_err(text);
            assert!(matches!(error, Error::BadVersion { .. }), "{text}: {error}");
            assert!(error.to_string().contains(&format!("`{text}`")), "{error}");
        }
        // Build metadata and a pre-release of a two-number version are dropped, as before.
        assert_eq!(
            ChartVersion::parse("v1.17.6+abc").ok(),
            ChartVersion::new(1, 17, 6).ok()
        );
        assert_eq!(
            ChartVersion::parse("1.18-rc.1").ok(),
            ChartVersion::new(1, 18, 0).ok()
        );
        assert!(matches!(
            ChartVersion::parse("1.4294967296.0"),
            Err(Error::BadVersion { .. })
        ));
    }

    #[test]
    fn releases_parse_with_a_v_and_two_numbers() {
        let v = |s: &str| parse_release(s).map(|v| v.to_string()).ok();
        assert_eq!(v(" v1.2 ").as_deref(), Some("1.2.0"));
        assert_eq!(v("v1.5.0-rc.2").as_deref(), Some("1.5.0-rc.2"));
        assert_eq!(v("1.2-rc.2+b").as_deref(), Some("1.2.0-rc.2+b"));
        assert_eq!(v("1"), None);
        assert_eq!(v("1.2.3.4"), None);
        assert_eq!(v("latest"), None);
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

    #[test]
    fn keys_the_charts_write_themselves() {
        let v = |s: &str| ChartVersion::parse(s).expect("valid version");
        assert!(v("1.15.9").writes_itself("agent-not-ready-taint-key"));
        assert!(!v("1.16.19").writes_itself("tunnel-source-port-range"));
        assert!(v("1.17.3").writes_itself("tunnel-source-port-range"));
        assert!(!v("1.19.6").writes_itself("kvstore"));
        for window in CHART_WRITTEN.windows(2) {
            assert!(window[0].0 < window[1].0, "{window:?}: sorted, once each");
        }
        for &(key, first, last) in CHART_WRITTEN {
            assert!(
                OLDEST_MINOR <= first && first <= last && last <= NEWEST_MINOR,
                "{key}"
            );
        }
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
            ("1.20.0", true, false, false, false),
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
