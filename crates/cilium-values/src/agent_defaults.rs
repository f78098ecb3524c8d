//! What the Cilium agent (and operator) does when a `cilium-config` key is absent or no longer read:
//! the defaults per agent version, the keys later agents dropped (and what they hard-wire instead),
//! the keys read only behind a switch, and the keys shell scripts read as a literal `true`.
//!
//! The gate ([`compare_config`](crate::compare_config)) weighs an absent key with these tables.
//! They were checked against the agent source, per version; the versions and files are named in
//! the doc comment of `AGENT_DEFAULTS` and, per key, in the test tables `VERIFIED`, `CITED`,
//! `INTRODUCED` and `BOUNDARIES` below.

use crate::{ChartVersion, LiveConfig, OLDEST_MINOR};

/// A value the Cilium agent (or operator) uses when its `cilium-config` key is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentDefault {
    /// The `cilium-config` key (= the agent flag).
    pub key: &'static str,
    /// The default the agent uses without it.
    pub value: &'static str,
}

/// The defaults the comparison relies on: `(key, first (minor, patch), default)`, sorted by key,
/// then version. A row holds from its version until the next row of the same key; a key absent on
/// one side is equal only when the other side holds exactly this default.
///
/// Checked against the Cilium source of v1.15.9, v1.15.19, v1.16.0, v1.16.19, v1.17.0, v1.17.16,
/// v1.18.0, v1.18.11, v1.19.0 and v1.19.7, plus v1.15.0 and v1.17.1-v1.17.8 where a default moved
/// (flag registrations in `daemon/cmd/daemon_main.go`, `pkg/defaults`, `pkg/option` and the cells'
/// `Flags()` methods), 2026-11-26. Rows that differ from the 1.15 flag: `hubble-disable-tls` (the
/// certloader cell defaults to true from 1.18.0) and `enable-hubble` (true in 1.17.0 and 1.17.1).
///
/// The keys the released charts 1.15.9-1.19.6 render for the homelab example were added the same
/// day, each checked at its flag registration in v1.15.9 (the file is named in the test table
/// `CITED`) and against the generated flag reference (`Documentation/cmdref`) of v1.15.19,
/// v1.16.0, v1.16.19, v1.17.0, v1.17.16, v1.18.0, v1.18.11, v1.19.0 and v1.19.7 for later moves:
/// `k8s-client-qps`/`-burst` (0 up to 1.16, which means client-go's 5 and 10),
/// `tofqdns-endpoint-max-ip-per-hostname` (1000 from 1.17.0), `enable-l2-neigh-discovery` (false
/// from 1.18.0), `mesh-auth-enabled` (false from 1.19.0), `unmanaged-pod-watcher-interval` (a
/// duration from 1.19.0). The rows `bgp-secrets-namespace`, `enable-ipsec-key-watcher`,
/// `ipsec-key-rotation-duration`, `enable-wireguard-userspace-fallback` and
/// `wireguard-persistent-keepalive` were added on 2026-12-06, for the keys the released charts
/// render for Kubespray's BGP, IPsec and WireGuard inventories (the 1.15 agent's flag
/// registrations and `pkg/defaults`; for the Secrets namespace, `pkg/bgpv1/cell.go`, which creates
/// no Secret resource while it is empty).
/// v1.20.0 was checked on 2026-12-07 the same way: its generated flag reference
/// (`Documentation/cmdref/cilium-agent.md` and `cilium-operator-generic.md`) against v1.19.7's
/// moves no default of a key in this table (`mesh-auth-enabled` is only deprecated, still false in
/// `pkg/auth/cell.go`); the keys the 1.20.0 chart renders that 1.19.6 does not have rows from 1.15
/// (test table `INTRODUCED`), and `devices`, which the 1.20 chart renders empty, is cited.
/// Keys a later agent introduced have a 1.15 row with the value that does
/// what v1.15.9 does: the behaviour it hard-wires, or off for a feature it lacks (test table
/// `INTRODUCED`, which names the files; `enable-source-ip-verification` is read without a flag
/// in 1.17, so absent means off there). Keys nothing in the agent reads any more are in [`REMOVED`] (with what
/// the agent does instead) or [`NOT_READ`] (without), which win over this table.
const AGENT_DEFAULTS: &[(&str, (u32, u32), &str)] = &[
    ("agent-health-port", (15, 0), "9879"),
    (
        "agent-not-ready-taint-key",
        (15, 0),
        "node.cilium.io/agent-not-ready",
    ),
    ("arping-refresh-period", (15, 0), "30s"),
    ("auto-direct-node-routes", (15, 0), "false"),
    // Empty: the BGP control plane watches no Secrets (no peer authentication from Secrets).
    ("bgp-secrets-namespace", (15, 0), ""),
    ("bpf-distributed-lru", (15, 0), "false"),
    ("bpf-events-drop-enabled", (15, 0), "true"),
    ("bpf-events-policy-verdict-enabled", (15, 0), "true"),
    ("bpf-events-trace-enabled", (15, 0), "true"),
    ("bpf-lb-acceleration", (15, 0), "disabled"),
    ("bpf-lb-external-clusterip", (15, 0), "false"),
    ("bpf-lb-map-max", (15, 0), "65536"),
    ("bpf-lb-mode", (15, 0), "snat"),
    ("bpf-lb-sock", (15, 0), "false"),
    ("bpf-lb-source-range-all-types", (15, 0), "false"),
    ("bpf-policy-map-max", (15, 0), "16384"),
    // Empty: /sys/fs/bpf when it holds a BPF filesystem or nothing (pkg/bpf/bpffs_linux.go).
    ("bpf-root", (15, 0), ""),
    ("cilium-endpoint-gc-interval", (15, 0), "5m0s"),
    // Read by the chart's `clean-cilium-state` init container, which acts only on exactly `true`.
    ("clean-cilium-bpf-state", (15, 0), "false"),
    ("clean-cilium-state", (15, 0), "false"),
    ("cluster-id", (15, 0), "0"),
    ("cluster-name", (15, 0), "default"),
    // 1.20 made the flag visible; 1.19 had it hidden, earlier agents had no namespace filter:
    // every namespace was global.
    ("clustermesh-default-global-namespace", (15, 0), "true"),
    ("clustermesh-enable-endpoint-sync", (15, 0), "false"),
    ("clustermesh-enable-mcs-api", (15, 0), "false"),
    // Read by the agent's preStop cni-uninstall.sh, which removes the CNI config only on `true`.
    ("cni-uninstall", (15, 0), "false"),
    ("controller-group-metrics", (15, 0), ""),
    // No component of 1.15-1.19 reads this key (cni-uninstall.sh reads an environment variable
    // the chart never sets); kept so that a live `true` is still shown to the operator.
    ("custom-cni-conf", (15, 0), "false"),
    ("datapath-mode", (15, 0), "veth"),
    (
        "datapath-plugins-state-dir",
        (15, 0),
        "/var/run/cilium/plugins",
    ),
    ("debug", (15, 0), "false"),
    ("debug-verbose", (15, 0), ""),
    ("default-lb-service-ipam", (15, 0), "lbipam"),
    // Empty: the agent detects the devices itself.
    ("devices", (15, 0), ""),
    ("direct-routing-skip-unreachable", (15, 0), "false"),
    ("dnsproxy-enable-transparent-mode", (15, 0), "false"),
    ("dnsproxy-socket-linger-timeout", (15, 0), "10"),
    (
        "egress-gateway-reconciliation-trigger-interval",
        (15, 0),
        "1s",
    ),
    ("enable-auto-protect-node-port-range", (15, 0), "true"),
    ("enable-bandwidth-manager", (15, 0), "false"),
    ("enable-bbr", (15, 0), "false"),
    ("enable-bgp-control-plane", (15, 0), "false"),
    ("enable-bpf-clock-probe", (15, 0), "false"),
    ("enable-bpf-masquerade", (15, 0), "false"),
    ("enable-datapath-plugins", (15, 0), "false"),
    ("enable-dynamic-source-lookup-nodeport", (15, 0), "false"),
    ("enable-endpoint-health-checking", (15, 0), "true"),
    (
        "enable-endpoint-lockdown-on-policy-overflow",
        (15, 0),
        "false",
    ),
    ("enable-experimental-lb", (15, 0), "false"),
    ("enable-external-ips", (15, 0), "false"),
    ("enable-health-check-loadbalancer-ip", (15, 0), "false"),
    ("enable-health-check-nodeport", (15, 0), "true"),
    ("enable-health-checking", (15, 0), "true"),
    ("enable-host-firewall", (15, 0), "false"),
    ("enable-host-port", (15, 0), "false"),
    ("enable-hubble", (15, 0), "false"),
    // The 1.17 hubble cell shipped with `true`; 1.17.2 restored `false`.
    ("enable-hubble", (17, 0), "true"),
    ("enable-hubble", (17, 2), "false"),
    ("enable-hubble-open-metrics", (15, 0), "false"),
    ("enable-internal-traffic-policy", (15, 0), "true"),
    ("enable-ip-masq-agent", (15, 0), "false"),
    ("enable-ipsec", (15, 0), "false"),
    ("enable-ipsec-key-watcher", (15, 0), "true"),
    ("enable-ipv4", (15, 0), "true"),
    ("enable-ipv4-big-tcp", (15, 0), "false"),
    ("enable-ipv4-masquerade", (15, 0), "true"),
    ("enable-ipv6-big-tcp", (15, 0), "false"),
    ("enable-ipv6-masquerade", (15, 0), "true"),
    ("enable-k8s-networkpolicy", (15, 0), "true"),
    ("enable-k8s-terminating-endpoint", (15, 0), "true"),
    ("enable-l2-announcements", (15, 0), "false"),
    ("enable-l2-neigh-discovery", (15, 0), "true"),
    ("enable-l2-neigh-discovery", (18, 0), "false"),
    ("enable-l7-proxy", (15, 0), "true"),
    ("enable-lb-ipam", (15, 0), "true"),
    ("enable-local-redirect-policy", (15, 0), "false"),
    ("enable-masquerade-to-route-source", (15, 0), "false"),
    ("enable-node-port", (15, 0), "false"),
    ("enable-node-selector-labels", (15, 0), "false"),
    ("enable-non-default-deny-policies", (15, 0), "true"),
    ("enable-policy", (15, 0), "default"),
    ("enable-remote-node-identity", (15, 0), "true"),
    ("enable-runtime-device-detection", (15, 0), "false"),
    ("enable-sctp", (15, 0), "false"),
    ("enable-service-topology", (15, 0), "false"),
    ("enable-source-ip-verification", (15, 0), "true"),
    ("enable-source-ip-verification", (17, 0), "false"),
    ("enable-svc-source-range-check", (15, 0), "true"),
    // Introduced in 1.16 (default true); 1.15 attaches with tc only, which `false` keeps.
    ("enable-tcx", (15, 0), "false"),
    ("enable-tcx", (16, 0), "true"),
    ("enable-vtep", (15, 0), "false"),
    // The agent keeps the old behaviour; only the chart's default is false.
    ("enable-well-known-identities", (15, 0), "true"),
    ("enable-wireguard", (15, 0), "false"),
    ("enable-wireguard-userspace-fallback", (15, 0), "false"),
    ("enable-xt-socket-fallback", (15, 0), "true"),
    ("encrypt-node", (15, 0), "false"),
    // Before 1.20 the xDS server always forwarded Envoy's access log to Hubble.
    ("envoy-access-log-enabled", (15, 0), "true"),
    ("envoy-node-locality-enabled", (15, 0), "false"),
    // Before 1.20 the per-resource-type ("split") xDS server was the only one; the 1.20 chart
    // writes "ads" unless upgradeCompatibility is below 1.20.
    ("envoy-xds-mode", (15, 0), "split"),
    ("external-envoy-proxy", (15, 0), "false"),
    ("http-retry-count", (15, 0), "3"),
    ("hubble-disable-tls", (15, 0), "false"),
    ("hubble-disable-tls", (18, 0), "true"),
    ("hubble-export-file-max-backups", (15, 0), "5"),
    ("hubble-export-file-max-size-mb", (15, 0), "10"),
    ("hubble-socket-path", (15, 0), "/var/run/cilium/hubble.sock"),
    ("identity-gc-interval", (15, 0), "15m0s"),
    ("identity-heartbeat-timeout", (15, 0), "30m0s"),
    ("install-no-conntrack-iptables-rules", (15, 0), "false"),
    ("ipam-cilium-node-update-rate", (15, 0), "15s"),
    ("ipsec-key-rotation-duration", (15, 0), "5m0s"),
    ("iptables-random-fully", (15, 0), "false"),
    // 0 up to 1.16: the agent leaves client-go's own default (burst 10, QPS 5) in place.
    ("k8s-client-burst", (15, 0), "10"),
    ("k8s-client-burst", (17, 0), "20"),
    ("k8s-client-qps", (15, 0), "5"),
    ("k8s-client-qps", (17, 0), "10"),
    ("k8s-require-ipv4-pod-cidr", (15, 0), "false"),
    ("k8s-require-ipv6-pod-cidr", (15, 0), "false"),
    ("kube-proxy-replacement", (15, 0), "false"),
    ("kube-proxy-replacement-healthz-bind-address", (15, 0), ""),
    ("max-connected-clusters", (15, 0), "255"),
    ("mesh-auth-enabled", (15, 0), "true"),
    ("mesh-auth-enabled", (19, 0), "false"),
    ("mesh-auth-gc-interval", (15, 0), "5m0s"),
    ("mesh-auth-queue-size", (15, 0), "1024"),
    ("mesh-auth-rotated-identities-queue-size", (15, 0), "1024"),
    // A string slice; the chart's default `all` is not the agent's.
    ("monitor-aggregation-flags", (15, 0), "syn fin rst"),
    ("monitor-aggregation-interval", (15, 0), "5s"),
    ("mtu", (15, 0), "0"),
    ("node-port-bind-protection", (15, 0), "true"),
    ("nodeport-addresses", (15, 0), ""),
    ("nodes-gc-interval", (15, 0), "5m0s"),
    // An operator flag (the operator reads the same ConfigMap).
    ("operator-api-serve-addr", (15, 0), "localhost:9234"),
    // Introduced in 1.19 (default blackhole); before, the pods' own setting is left alone: `unset`.
    ("packetization-layer-pmtud-mode", (15, 0), "unset"),
    ("packetization-layer-pmtud-mode", (19, 0), "blackhole"),
    ("policy-audit-mode", (15, 0), "false"),
    ("policy-cidr-match-mode", (15, 0), ""),
    // Introduced in 1.18 (default false, true from 1.19); before, policies select every cluster.
    ("policy-default-local-cluster", (15, 0), "false"),
    ("policy-default-local-cluster", (19, 0), "true"),
    // The agent pre-allocates; the chart's default (`bpf.preallocateMaps: false`) is not the agent's.
    ("preallocate-bpf-maps", (15, 0), "true"),
    // Read only for /proc/sys (pkg/sysctl); see `equivalent` for the chart's /host/proc.
    ("procfs", (15, 0), "/proc"),
    // Before 1.20 Cilium set no pending-request limit on Envoy clusters: Envoy's own default, 1024.
    ("proxy-cluster-max-pending-requests", (15, 0), "1024"),
    ("proxy-connect-timeout", (15, 0), "2"),
    ("proxy-idle-timeout-seconds", (15, 0), "60"),
    ("proxy-max-connection-duration-seconds", (15, 0), "0"),
    ("proxy-max-requests-per-connection", (15, 0), "0"),
    ("proxy-prometheus-port", (15, 0), "0"),
    ("proxy-xff-num-trusted-hops-egress", (15, 0), "0"),
    ("proxy-xff-num-trusted-hops-ingress", (15, 0), "0"),
    ("remove-cilium-node-taints", (15, 0), "true"),
    ("routing-mode", (15, 0), "tunnel"),
    ("service-no-backend-response", (15, 0), "reject"),
    ("set-cilium-is-up-condition", (15, 0), "true"),
    ("set-cilium-node-taints", (15, 0), "false"),
    ("sidecar-istio-proxy-image", (15, 0), "cilium/istio_proxy"),
    ("skip-cnp-status-startup-clean", (15, 0), "false"),
    ("synchronize-k8s-nodes", (15, 0), "true"),
    ("tofqdns-dns-reject-response-code", (15, 0), "refused"),
    ("tofqdns-enable-dns-compression", (15, 0), "true"),
    ("tofqdns-endpoint-max-ip-per-hostname", (15, 0), "50"),
    ("tofqdns-endpoint-max-ip-per-hostname", (17, 0), "1000"),
    ("tofqdns-idle-connection-grace-period", (15, 0), "0s"),
    ("tofqdns-max-deferred-connection-deletes", (15, 0), "10000"),
    ("tofqdns-proxy-response-max-delay", (15, 0), "100ms"),
    ("tunnel-protocol", (15, 0), "vxlan"),
    ("unmanaged-pod-watcher-interval", (15, 0), "15"),
    ("unmanaged-pod-watcher-interval", (19, 0), "15s"),
    // The vtep-* keys are read only with enable-vtep on (`DORMANT`).
    ("vtep-cidr", (15, 0), ""),
    ("vtep-endpoint", (15, 0), ""),
    ("vtep-mac", (15, 0), ""),
    ("vtep-mask", (15, 0), "255.255.255.0"),
    // No keepalive packets.
    ("wireguard-persistent-keepalive", (15, 0), "0s"),
];

/// What a key the agent no longer reads hard-wires instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hardwired {
    /// The behaviour of this value.
    Value(&'static str),
    /// On exactly when `kube-proxy-replacement` is true.
    KubeProxyReplacement,
}

/// Keys the agent dropped (no flag, nothing reads them) from a minor on, with the behaviour it
/// hard-wires from then on. Checked with the sources listed at [`AGENT_DEFAULTS`].
pub(crate) const REMOVED: &[(&str, u32, Hardwired, &str)] = &[
    (
        "disable-cnp-status-updates",
        15,
        Hardwired::Value("true"),
        "removed in 1.15, which no longer writes CiliumNetworkPolicy status",
    ),
    (
        "enable-external-ips",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where externalIPs are handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-host-port",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where hostPort is handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-node-port",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where NodePort is handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-k8s-terminating-endpoint",
        18,
        Hardwired::Value("true"),
        "removed in 1.18 (deprecated in 1.17), where terminating endpoints are always detected",
    ),
    (
        "enable-remote-node-identity",
        16,
        Hardwired::Value("true"),
        "removed in 1.16, where remote-node identity is always on",
    ),
    (
        "enable-runtime-device-detection",
        16,
        Hardwired::Value("true"),
        "deprecated in 1.16 and read by nothing: runtime device detection is the only mode",
    ),
    (
        "enable-wireguard-userspace-fallback",
        17,
        Hardwired::Value("false"),
        "removed in 1.17 (kernel WireGuard only)",
    ),
    (
        "sidecar-istio-proxy-image",
        16,
        Hardwired::Value("cilium/istio_proxy"),
        "removed in 1.16 with the Istio sidecar integration; its old default named only Cilium's own proxy image",
    ),
];

/// Keys the agent stopped reading from a version, where this table does not claim what it does
/// instead: a live value the render drops is a change, a rendered one is ignored.
const NOT_READ: &[(&str, (u32, u32))] = &[
    ("arping-refresh-period", (18, 0)),
    ("enable-svc-source-range-check", (19, 0)),
    // Removed with its chart value in 1.20 (daemon/cmd/daemon_main.go of v1.19.7 registers it,
    // v1.20.0's cmdref has no such flag); the 1.20 agent attaches IPsec to its selected devices.
    ("encrypt-interface", (20, 0)),
    ("skip-cnp-status-startup-clean", (16, 0)),
];

/// Keys the agent reads only when a switch is on: `(key, switch)`. With the switch off on both
/// sides, a difference in the key is one of form (`validateVTEP` in `pkg/option/config.go` runs
/// only with `enable-vtep`, v1.15.9 to v1.19.7).
const DORMANT: &[(&str, &str)] = &[
    ("vtep-cidr", "enable-vtep"),
    ("vtep-endpoint", "enable-vtep"),
    ("vtep-mac", "enable-vtep"),
    ("vtep-mask", "enable-vtep"),
];

/// Keys read by shell scripts that act on exactly `true` (not `True`).
pub(crate) const LITERAL_TRUE_KEYS: &[&str] = &[
    "clean-cilium-bpf-state",
    "clean-cilium-state",
    "cni-uninstall",
];

/// The table of agent defaults [`compare_config`](crate::compare_config) relies on, for the oldest
/// supported minor.
pub fn agent_defaults() -> impl Iterator<Item = AgentDefault> {
    agent_defaults_for(ChartVersion {
        major: 1,
        minor: OLDEST_MINOR,
        patch: 0,
    })
}

/// The agent defaults of chart `version`'s agent: one per key, without the keys it dropped.
fn agent_defaults_for(version: ChartVersion) -> impl Iterator<Item = AgentDefault> {
    let mut keys: Vec<&'static str> = AGENT_DEFAULTS.iter().map(|&(key, _, _)| key).collect();
    keys.dedup();
    keys.into_iter()
        .filter_map(move |key| agent_default(key, version).map(|value| AgentDefault { key, value }))
}

/// The default of `key` for `version`'s agent; `None` when unknown or dropped by that agent.
pub(crate) fn agent_default(key: &str, version: ChartVersion) -> Option<&'static str> {
    if removed(key, version).is_some() || not_read(key, version) {
        return None;
    }
    AGENT_DEFAULTS
        .iter()
        .filter(|&&(k, since, _)| k == key && since <= (version.minor, version.patch))
        .map(|&(_, _, value)| value)
        .next_back()
}

/// What `version`'s agent hard-wires for `key` it no longer reads, and why.
pub(crate) fn removed(key: &str, version: ChartVersion) -> Option<(Hardwired, &'static str)> {
    REMOVED
        .iter()
        .find(|&&(k, minor, _, _)| k == key && version.minor >= minor)
        .map(|&(_, _, hardwired, why)| (hardwired, why))
}

/// Whether `version`'s agent no longer reads `key` (without a claim about what it does instead).
pub(crate) fn not_read(key: &str, version: ChartVersion) -> bool {
    NOT_READ
        .iter()
        .any(|&(k, since)| k == key && (version.minor, version.patch) >= since)
}

/// The switch `key` depends on, when that switch is off in `config` (or by `version`'s default).
pub(crate) fn dormant(
    key: &str,
    config: &LiveConfig,
    version: ChartVersion,
) -> Option<&'static str> {
    let &(_, switch) = DORMANT.iter().find(|&&(k, _)| k == key)?;
    let value = config
        .get(switch)
        .or_else(|| agent_default(switch, version))?;
    (value.trim().eq_ignore_ascii_case("false")).then_some(switch)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn version(text: &str) -> ChartVersion {
        ChartVersion::parse(text).expect("a supported version")
    }

    /// (key, 1.15 agent default, 1.19 agent default); `None`: the 1.19 agent has no such flag.
    pub(crate) const VERIFIED: &[(&str, &str, Option<&str>)] = &[
        ("agent-health-port", "9879", Some("9879")),
        ("auto-direct-node-routes", "false", Some("false")),
        ("bpf-lb-acceleration", "disabled", Some("disabled")),
        ("bpf-lb-map-max", "65536", Some("65536")),
        ("bpf-lb-mode", "snat", Some("snat")),
        ("bpf-policy-map-max", "16384", Some("16384")),
        ("clean-cilium-bpf-state", "false", Some("false")),
        ("clean-cilium-state", "false", Some("false")),
        ("cluster-id", "0", Some("0")),
        ("cluster-name", "default", Some("default")),
        ("cni-uninstall", "false", Some("false")),
        ("custom-cni-conf", "false", Some("false")),
        ("debug", "false", Some("false")),
        ("enable-auto-protect-node-port-range", "true", Some("true")),
        ("enable-bandwidth-manager", "false", Some("false")),
        ("enable-bbr", "false", Some("false")),
        ("enable-bgp-control-plane", "false", Some("false")),
        ("enable-bpf-clock-probe", "false", Some("false")),
        ("enable-bpf-masquerade", "false", Some("false")),
        ("enable-endpoint-health-checking", "true", Some("true")),
        ("enable-external-ips", "false", None),
        ("enable-health-checking", "true", Some("true")),
        ("enable-host-firewall", "false", Some("false")),
        ("enable-host-port", "false", None),
        ("enable-hubble", "false", Some("false")),
        ("enable-hubble-open-metrics", "false", Some("false")),
        ("enable-ip-masq-agent", "false", Some("false")),
        ("enable-ipsec", "false", Some("false")),
        ("enable-ipv4", "true", Some("true")),
        ("enable-ipv4-masquerade", "true", Some("true")),
        ("enable-ipv6-masquerade", "true", Some("true")),
        ("enable-l2-announcements", "false", Some("false")),
        ("enable-l7-proxy", "true", Some("true")),
        ("enable-node-port", "false", None),
        ("enable-policy", "default", Some("default")),
        ("enable-remote-node-identity", "true", None),
        ("enable-well-known-identities", "true", Some("true")),
        ("enable-wireguard", "false", Some("false")),
        ("encrypt-node", "false", Some("false")),
        ("hubble-disable-tls", "false", Some("true")),
        (
            "hubble-socket-path",
            "/var/run/cilium/hubble.sock",
            Some("/var/run/cilium/hubble.sock"),
        ),
        (
            "install-no-conntrack-iptables-rules",
            "false",
            Some("false"),
        ),
        ("kube-proxy-replacement", "false", Some("false")),
        ("kube-proxy-replacement-healthz-bind-address", "", Some("")),
        (
            "monitor-aggregation-flags",
            "syn fin rst",
            Some("syn fin rst"),
        ),
        ("monitor-aggregation-interval", "5s", Some("5s")),
        ("mtu", "0", Some("0")),
        ("node-port-bind-protection", "true", Some("true")),
        (
            "operator-api-serve-addr",
            "localhost:9234",
            Some("localhost:9234"),
        ),
        ("policy-audit-mode", "false", Some("false")),
        ("preallocate-bpf-maps", "true", Some("true")),
        ("routing-mode", "tunnel", Some("tunnel")),
        ("sidecar-istio-proxy-image", "cilium/istio_proxy", None),
        ("tunnel-protocol", "vxlan", Some("vxlan")),
    ];

    /// The keys the released charts render for the homelab example: (key, 1.15.9 agent default,
    /// 1.19.7 agent default, the v1.15.9 file that registers the flag). `None`: 1.19 reads no such key.
    const CITED: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "agent-not-ready-taint-key",
            "node.cilium.io/agent-not-ready",
            Some("node.cilium.io/agent-not-ready"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "arping-refresh-period",
            "30s",
            None,
            "daemon/cmd/daemon_main.go",
        ),
        // Seen where it is read (no Secret resource while empty), not at its registration.
        ("bgp-secrets-namespace", "", Some(""), "pkg/bgpv1/cell.go"),
        (
            "bpf-lb-external-clusterip",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "bpf-lb-sock",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        ("bpf-root", "", Some(""), "daemon/cmd/daemon_main.go"),
        (
            "cilium-endpoint-gc-interval",
            "5m0s",
            Some("5m0s"),
            "pkg/endpointmanager/config.go",
        ),
        (
            "controller-group-metrics",
            "",
            Some(""),
            "pkg/controller/cell.go",
        ),
        (
            "datapath-mode",
            "veth",
            Some("veth"),
            "daemon/cmd/daemon_main.go",
        ),
        ("debug-verbose", "", Some(""), "daemon/cmd/daemon_main.go"),
        (
            "dnsproxy-enable-transparent-mode",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "dnsproxy-socket-linger-timeout",
            "10",
            Some("10"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "egress-gateway-reconciliation-trigger-interval",
            "1s",
            Some("1s"),
            "pkg/egressgateway/manager.go",
        ),
        (
            "enable-health-check-loadbalancer-ip",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-health-check-nodeport",
            "true",
            Some("true"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-ipv4-big-tcp",
            "false",
            Some("false"),
            "pkg/datapath/linux/bigtcp/bigtcp.go",
        ),
        (
            "enable-ipv6-big-tcp",
            "false",
            Some("false"),
            "pkg/datapath/linux/bigtcp/bigtcp.go",
        ),
        (
            "enable-ipsec-key-watcher",
            "true",
            Some("true"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-k8s-networkpolicy",
            "true",
            Some("true"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-k8s-terminating-endpoint",
            "true",
            None,
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-l2-neigh-discovery",
            "true",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-local-redirect-policy",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-masquerade-to-route-source",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-runtime-device-detection",
            "false",
            None,
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-sctp",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-service-topology",
            "false",
            Some("false"),
            "pkg/k8s/service_cache.go",
        ),
        (
            "enable-svc-source-range-check",
            "true",
            None,
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-vtep",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-wireguard-userspace-fallback",
            "false",
            None,
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-xt-socket-fallback",
            "true",
            Some("true"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "external-envoy-proxy",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "http-retry-count",
            "3",
            Some("3"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "hubble-export-file-max-backups",
            "5",
            Some("5"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "hubble-export-file-max-size-mb",
            "10",
            Some("10"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "identity-gc-interval",
            "15m0s",
            Some("15m0s"),
            "operator/identitygc/cell.go",
        ),
        (
            "identity-heartbeat-timeout",
            "30m0s",
            Some("30m0s"),
            "operator/identitygc/cell.go",
        ),
        (
            "ipam-cilium-node-update-rate",
            "15s",
            Some("15s"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "ipsec-key-rotation-duration",
            "5m0s",
            Some("5m0s"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "iptables-random-fully",
            "false",
            Some("false"),
            "pkg/datapath/iptables/cell.go",
        ),
        (
            "k8s-client-burst",
            "10",
            Some("20"),
            "pkg/k8s/client/config.go",
        ),
        (
            "k8s-client-qps",
            "5",
            Some("10"),
            "pkg/k8s/client/config.go",
        ),
        (
            "k8s-require-ipv4-pod-cidr",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "k8s-require-ipv6-pod-cidr",
            "false",
            Some("false"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "max-connected-clusters",
            "255",
            Some("255"),
            "pkg/clustermesh/types/option.go",
        ),
        (
            "mesh-auth-enabled",
            "true",
            Some("false"),
            "pkg/auth/cell.go",
        ),
        (
            "mesh-auth-gc-interval",
            "5m0s",
            Some("5m0s"),
            "pkg/auth/cell.go",
        ),
        (
            "mesh-auth-queue-size",
            "1024",
            Some("1024"),
            "pkg/auth/cell.go",
        ),
        (
            "mesh-auth-rotated-identities-queue-size",
            "1024",
            Some("1024"),
            "pkg/auth/spire/delegate.go",
        ),
        (
            "nodeport-addresses",
            "",
            Some(""),
            "pkg/datapath/tables/node_address.go",
        ),
        (
            "nodes-gc-interval",
            "5m0s",
            Some("5m0s"),
            "operator/cmd/flags.go",
        ),
        (
            "policy-cidr-match-mode",
            "",
            Some(""),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "procfs",
            "/proc",
            Some("/proc"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-connect-timeout",
            "2",
            Some("2"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-idle-timeout-seconds",
            "60",
            Some("60"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-max-connection-duration-seconds",
            "0",
            Some("0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-max-requests-per-connection",
            "0",
            Some("0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-prometheus-port",
            "0",
            Some("0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-xff-num-trusted-hops-egress",
            "0",
            Some("0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "proxy-xff-num-trusted-hops-ingress",
            "0",
            Some("0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "remove-cilium-node-taints",
            "true",
            Some("true"),
            "operator/cmd/flags.go",
        ),
        (
            "service-no-backend-response",
            "reject",
            Some("reject"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "set-cilium-is-up-condition",
            "true",
            Some("true"),
            "operator/cmd/flags.go",
        ),
        (
            "set-cilium-node-taints",
            "false",
            Some("false"),
            "operator/cmd/flags.go",
        ),
        (
            "skip-cnp-status-startup-clean",
            "false",
            None,
            "operator/cmd/flags.go",
        ),
        (
            "synchronize-k8s-nodes",
            "true",
            Some("true"),
            "operator/cmd/flags.go",
        ),
        (
            "tofqdns-dns-reject-response-code",
            "refused",
            Some("refused"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "tofqdns-enable-dns-compression",
            "true",
            Some("true"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "tofqdns-endpoint-max-ip-per-hostname",
            "50",
            Some("1000"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "tofqdns-idle-connection-grace-period",
            "0s",
            Some("0s"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "tofqdns-max-deferred-connection-deletes",
            "10000",
            Some("10000"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "tofqdns-proxy-response-max-delay",
            "100ms",
            Some("100ms"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "unmanaged-pod-watcher-interval",
            "15",
            Some("15s"),
            "operator/cmd/flags.go",
        ),
        ("vtep-cidr", "", Some(""), "daemon/cmd/daemon_main.go"),
        ("devices", "", Some(""), "daemon/cmd/daemon_main.go"),
        ("vtep-endpoint", "", Some(""), "daemon/cmd/daemon_main.go"),
        ("vtep-mac", "", Some(""), "daemon/cmd/daemon_main.go"),
        (
            "vtep-mask",
            "255.255.255.0",
            Some("255.255.255.0"),
            "daemon/cmd/daemon_main.go",
        ),
        (
            "wireguard-persistent-keepalive",
            "0s",
            Some("0s"),
            "daemon/cmd/daemon_main.go",
        ),
    ];

    /// Keys a later agent introduced: (key, the value that does what the v1.15.9 agent does, the
    /// v1.15.9 file that hard-wires that behaviour ("" when 1.15 has no such feature at all), a
    /// version with the flag, the agent's default there, the file that registers or reads it there).
    const INTRODUCED: &[(&str, &str, &str, &str, &str, &str)] = &[
        (
            "bpf-distributed-lru",
            "false",
            "",
            "1.17.16",
            "false",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "bpf-events-drop-enabled",
            "true",
            "daemon/cmd/daemon_main.go",
            "1.16.19",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "bpf-events-policy-verdict-enabled",
            "true",
            "daemon/cmd/daemon_main.go",
            "1.16.19",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "bpf-events-trace-enabled",
            "true",
            "daemon/cmd/daemon_main.go",
            "1.16.19",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "bpf-lb-source-range-all-types",
            "false",
            "",
            "1.17.16",
            "false",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "clustermesh-enable-endpoint-sync",
            "false",
            "",
            "1.16.19",
            "false",
            "pkg/clustermesh/operator/cell.go",
        ),
        (
            "clustermesh-enable-mcs-api",
            "false",
            "",
            "1.16.19",
            "false",
            "pkg/clustermesh/mcsapi/cell.go",
        ),
        (
            "default-lb-service-ipam",
            "lbipam",
            "operator/pkg/lbipam/lbipam.go",
            "1.17.16",
            "lbipam",
            "operator/pkg/lbipam/cell.go",
        ),
        (
            "direct-routing-skip-unreachable",
            "false",
            "",
            "1.16.19",
            "false",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-endpoint-lockdown-on-policy-overflow",
            "false",
            "",
            "1.17.16",
            "false",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-experimental-lb",
            "false",
            "",
            "1.17.16",
            "false",
            "pkg/loadbalancer/experimental/config.go",
        ),
        (
            "enable-internal-traffic-policy",
            "true",
            "pkg/k8s/service.go",
            "1.17.16",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-lb-ipam",
            "true",
            "operator/cmd/root.go",
            "1.17.16",
            "true",
            "operator/pkg/lbipam/cell.go",
        ),
        (
            "enable-node-selector-labels",
            "false",
            "",
            "1.16.19",
            "false",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-non-default-deny-policies",
            "true",
            "",
            "1.17.16",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "enable-source-ip-verification",
            "true",
            "daemon/cmd/daemon_main.go",
            "1.17.16",
            "false",
            "pkg/option/config.go",
        ),
        (
            "enable-tcx",
            "false",
            "",
            "1.16.0",
            "true",
            "daemon/cmd/daemon_main.go",
        ),
        (
            "packetization-layer-pmtud-mode",
            "unset",
            "",
            "1.19.0",
            "blackhole",
            "pkg/mtu/cell.go",
        ),
        (
            "policy-default-local-cluster",
            "false",
            "",
            "1.18.0",
            "false",
            "pkg/clustermesh/types/option.go",
        ),
        (
            "clustermesh-default-global-namespace",
            "true",
            "",
            "1.20.0",
            "true",
            "pkg/clustermesh/namespace/config.go",
        ),
        (
            "datapath-plugins-state-dir",
            "/var/run/cilium/plugins",
            "",
            "1.20.0",
            "/var/run/cilium/plugins",
            "pkg/datapath/plugins/cell.go",
        ),
        (
            "enable-datapath-plugins",
            "false",
            "",
            "1.20.0",
            "false",
            "pkg/option/config.go",
        ),
        (
            "enable-dynamic-source-lookup-nodeport",
            "false",
            "",
            "1.20.0",
            "false",
            "pkg/loadbalancer/config.go",
        ),
        (
            "envoy-access-log-enabled",
            "true",
            "pkg/envoy/xds_server.go",
            "1.20.0",
            "true",
            "pkg/envoy/config/config.go",
        ),
        (
            "envoy-node-locality-enabled",
            "false",
            "",
            "1.20.0",
            "false",
            "pkg/envoy/config/config.go",
        ),
        (
            "envoy-xds-mode",
            "split",
            "pkg/envoy/xds_server.go",
            "1.20.0",
            "split",
            "pkg/envoy/config/config.go",
        ),
        (
            "proxy-cluster-max-pending-requests",
            "1024",
            "pkg/envoy/embedded_envoy.go",
            "1.20.0",
            "1024",
            "pkg/envoy/config/config.go",
        ),
    ];

    /// (key, chart, agent default); the minors where a default changes or a key goes away.
    const BOUNDARIES: &[(&str, &str, Option<&str>)] = &[
        ("enable-hubble", "1.16.19", Some("false")),
        ("enable-hubble", "1.17.0", Some("true")),
        ("enable-hubble", "1.17.1", Some("true")),
        ("enable-hubble", "1.17.2", Some("false")),
        ("hubble-disable-tls", "1.17.18", Some("false")),
        ("hubble-disable-tls", "1.18.0", Some("true")),
        ("enable-remote-node-identity", "1.15.19", Some("true")),
        ("enable-remote-node-identity", "1.16.0", None),
        ("sidecar-istio-proxy-image", "1.16.0", None),
        ("enable-node-port", "1.18.12", Some("false")),
        ("enable-host-port", "1.18.12", Some("false")),
        ("enable-external-ips", "1.18.12", Some("false")),
        ("disable-cnp-status-updates", "1.15.9", None),
        ("enable-wireguard-userspace-fallback", "1.17.0", None),
        ("k8s-client-qps", "1.16.19", Some("5")),
        ("k8s-client-qps", "1.17.0", Some("10")),
        ("k8s-client-burst", "1.16.19", Some("10")),
        ("k8s-client-burst", "1.17.0", Some("20")),
        (
            "tofqdns-endpoint-max-ip-per-hostname",
            "1.16.19",
            Some("50"),
        ),
        (
            "tofqdns-endpoint-max-ip-per-hostname",
            "1.17.0",
            Some("1000"),
        ),
        ("enable-l2-neigh-discovery", "1.17.18", Some("true")),
        ("enable-l2-neigh-discovery", "1.18.0", Some("false")),
        ("mesh-auth-enabled", "1.18.12", Some("true")),
        ("mesh-auth-enabled", "1.19.0", Some("false")),
        ("unmanaged-pod-watcher-interval", "1.18.12", Some("15")),
        ("unmanaged-pod-watcher-interval", "1.19.0", Some("15s")),
        ("enable-runtime-device-detection", "1.15.19", Some("false")),
        ("enable-runtime-device-detection", "1.16.0", None),
        ("enable-k8s-terminating-endpoint", "1.17.18", Some("true")),
        ("enable-k8s-terminating-endpoint", "1.18.0", None),
        ("skip-cnp-status-startup-clean", "1.16.0", None),
        ("arping-refresh-period", "1.17.18", Some("30s")),
        ("arping-refresh-period", "1.18.0", None),
        ("enable-svc-source-range-check", "1.18.12", Some("true")),
        ("enable-svc-source-range-check", "1.19.0", None),
        ("policy-default-local-cluster", "1.18.12", Some("false")),
        ("policy-default-local-cluster", "1.19.0", Some("true")),
        ("packetization-layer-pmtud-mode", "1.18.12", Some("unset")),
        ("enable-tcx", "1.15.19", Some("false")),
    ];

    #[test]
    fn defaults_are_the_agent_source_ones() {
        for &(key, oldest, newest) in VERIFIED {
            assert_eq!(
                agent_default(key, version("1.15.9")),
                Some(oldest),
                "{key} on 1.15"
            );
            for newer in ["1.19.7", "1.20.0"] {
                assert_eq!(
                    agent_default(key, version(newer)),
                    newest,
                    "{key} on {newer}"
                );
            }
        }
        for &(key, oldest, newest, source) in CITED {
            assert!(source.ends_with(".go"), "{key}: {source}");
            assert_eq!(
                agent_default(key, version("1.15.9")),
                Some(oldest),
                "{key} on 1.15 ({source})"
            );
            for newer in ["1.19.7", "1.20.0"] {
                assert_eq!(
                    agent_default(key, version(newer)),
                    newest,
                    "{key} on {newer}"
                );
            }
        }
        for &(key, before, evidence, first, default, source) in INTRODUCED {
            assert!(evidence.is_empty() || evidence.ends_with(".go"), "{key}");
            assert_eq!(
                agent_default(key, version("1.15.9")),
                Some(before),
                "{key} ({evidence})"
            );
            assert_eq!(
                agent_default(key, version(first)),
                Some(default),
                "{key} on {first} ({source})"
            );
        }
        for &(key, chart, want) in BOUNDARIES {
            assert_eq!(agent_default(key, version(chart)), want, "{key} on {chart}");
        }
    }

    #[test]
    fn every_table_row_is_verified() {
        let verified: Vec<&str> = VERIFIED
            .iter()
            .map(|&(key, _, _)| key)
            .chain(CITED.iter().map(|&(key, _, _, _)| key))
            .chain(INTRODUCED.iter().map(|&(key, ..)| key))
            .collect();
        for &(key, _, _) in AGENT_DEFAULTS {
            assert!(verified.contains(&key), "{key} has no verified row");
        }
        for window in AGENT_DEFAULTS.windows(2) {
            let ((a, a_since, _), (b, b_since, _)) = (window[0], window[1]);
            assert!(
                a < b || a == b && a_since < b_since,
                "{a} {a_since:?} / {b} {b_since:?}: sort by key, then version"
            );
        }
        for &(key, _, _, _) in REMOVED {
            assert!(
                agent_default(key, version("1.20.0")).is_none(),
                "{key} is dropped by 1.20"
            );
        }
    }

    #[test]
    fn defaults_per_version_list_each_key_once() {
        for chart in [
            "1.15.9", "1.16.19", "1.17.18", "1.18.12", "1.19.7", "1.20.0",
        ] {
            let keys: Vec<&str> = agent_defaults_for(version(chart)).map(|d| d.key).collect();
            let mut unique = keys.clone();
            unique.dedup();
            assert_eq!(keys, unique, "{chart}");
        }
        let newest: Vec<AgentDefault> = agent_defaults_for(version("1.19.7")).collect();
        assert!(newest.contains(&AgentDefault {
            key: "hubble-disable-tls",
            value: "true"
        }));
        assert!(!newest.iter().any(|d| d.key == "enable-node-port"));
        assert!(agent_defaults().any(|d| d
            == AgentDefault {
                key: "hubble-disable-tls",
                value: "false"
            }));
    }
}
