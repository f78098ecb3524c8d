//! The typed chart values this tool writes, with the origin of every value.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::Value as Json;

use crate::{ChartVersion, Error};

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// An `enabled` switch, the most common shape in the chart.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Toggle {
    /// `<block>.enabled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `cluster.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Cluster {
    /// `cluster.name` -> `cluster-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `cluster.id` -> `cluster-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

/// `debug.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Debug {
    /// `debug.enabled` -> `debug`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `debug.verbose` -> `debug-verbose`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbose: Option<String>,
}

/// `ipam.operator.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpamOperator {
    /// -> `cluster-pool-ipv4-cidr` (space-joined).
    #[serde(
        rename = "clusterPoolIPv4PodCIDRList",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_pool_ipv4_pod_cidr_list: Option<Vec<String>>,
    /// -> `cluster-pool-ipv4-mask-size` (an integer: 1.16+'s schema refuses a string).
    #[serde(
        rename = "clusterPoolIPv4MaskSize",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_pool_ipv4_mask_size: Option<u32>,
    /// -> `cluster-pool-ipv6-cidr`.
    #[serde(
        rename = "clusterPoolIPv6PodCIDRList",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_pool_ipv6_pod_cidr_list: Option<Vec<String>>,
    /// -> `cluster-pool-ipv6-mask-size`.
    #[serde(
        rename = "clusterPoolIPv6MaskSize",
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_pool_ipv6_mask_size: Option<u32>,
}

/// `ipam.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ipam {
    /// `ipam.mode` -> `ipam`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Pool settings.
    #[serde(skip_serializing_if = "is_default")]
    pub operator: IpamOperator,
}

/// `ipMasqAgent.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IpMasqAgent {
    /// -> `enable-ip-masq-agent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The chart's own `ip-masq-agent` ConfigMap content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Json>,
}

/// `bpf.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bpf {
    /// -> `enable-bpf-masquerade`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masquerade: Option<bool>,
    /// -> `enable-host-legacy-routing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_legacy_routing: Option<bool>,
    /// -> `bpf-ct-global-tcp-max` (the chart omits it by default: a resize drops tracked connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_tcp_max: Option<u64>,
    /// -> `bpf-ct-global-any-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ct_any_max: Option<u64>,
    /// -> `bpf-nat-global-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_max: Option<u64>,
    /// -> `bpf-neigh-global-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neigh_max: Option<u64>,
    /// -> `bpf-policy-map-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_map_max: Option<u64>,
    /// -> `bpf-lb-map-max`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_map_max: Option<u64>,
    /// -> `bpf-map-dynamic-size-ratio` (a number: 1.16+'s schema wants `number`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_dynamic_size_ratio: Option<f64>,
    /// -> `preallocate-bpf-maps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preallocate_maps: Option<bool>,
    /// -> `monitor-aggregation`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_aggregation: Option<String>,
    /// -> `monitor-aggregation-flags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_flags: Option<String>,
    /// -> `monitor-aggregation-interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitor_interval: Option<String>,
    /// -> `enable-tcx` (chart 1.16+).
    #[serde(rename = "enableTCX", skip_serializing_if = "Option::is_none")]
    pub enable_tcx: Option<bool>,
}

/// `encryption.ipsec.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipsec {
    /// Directory of the key file -> first half of `ipsec-key-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
    /// Key file name -> second half of `ipsec-key-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// -> `encrypt-interface`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// `encryption.wireguard.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wireguard {
    /// -> `enable-wireguard-userspace-fallback` (chart ≤ 1.16).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userspace_fallback: Option<bool>,
}

/// `encryption.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// -> `enable-ipsec` / `enable-wireguard`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `ipsec` or `wireguard`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// -> `encrypt-node`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_encryption: Option<bool>,
    /// IPsec settings.
    #[serde(skip_serializing_if = "is_default")]
    pub ipsec: Ipsec,
    /// WireGuard settings.
    #[serde(skip_serializing_if = "is_default")]
    pub wireguard: Wireguard,
}

/// `bandwidthManager.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BandwidthManager {
    /// -> `enable-bandwidth-manager`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// -> `enable-bbr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bbr: Option<bool>,
}

/// `l2announcements.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct L2Announcements {
    /// -> `enable-l2-announcements`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// -> `l2-announcements-lease-duration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_duration: Option<String>,
    /// -> `l2-announcements-renew-deadline`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_renew_deadline: Option<String>,
    /// -> `l2-announcements-retry-period`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_retry_period: Option<String>,
}

/// `bgpControlPlane.secretsNamespace.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SecretsNamespace {
    /// -> `bgp-secrets-namespace` (rendered with the BGP control plane on; empty: no Secrets read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `bgpControlPlane.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpControlPlane {
    /// -> `enable-bgp-control-plane`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The namespace the agent reads BGP peer Secrets from.
    #[serde(skip_serializing_if = "is_default")]
    pub secrets_namespace: SecretsNamespace,
}

/// `loadBalancer.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadBalancer {
    /// -> `bpf-lb-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// -> `bpf-lb-algorithm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// -> `bpf-lb-acceleration`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceleration: Option<String>,
}

/// `cni.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cni {
    /// -> `cni-exclusive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive: Option<bool>,
    /// -> `cni-log-file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// -> `custom-cni-conf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_conf: Option<bool>,
    /// -> `cni-chaining-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chaining_mode: Option<String>,
}

/// `cgroup.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cgroup {
    /// -> `cgroup-root`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_root: Option<String>,
}

/// `prometheus.*` and `operator.prometheus.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prometheus {
    /// -> `prometheus-serve-addr` / `operator-prometheus-serve-addr` present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The port in that address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// -> `controller-group-metrics` (agent only; an empty list renders no key).
    #[serde(
        rename = "controllerGroupMetrics",
        skip_serializing_if = "Option::is_none"
    )]
    pub controller_group_metrics: Option<Vec<String>>,
}

/// `operator.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Operator {
    /// Deployment replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// -> `set-cilium-node-taints` (rendered only when true, or unset with `removeNodeTaints`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_node_taints: Option<bool>,
    /// Operator metrics.
    #[serde(skip_serializing_if = "is_default")]
    pub prometheus: Prometheus,
    /// Flags after the chart's own (Kubespray's `cilium_operator_custom_args`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_args: Option<Vec<String>>,
    /// Extra volumes (the etcd certificate mount in kvstore mode, Kubespray's extra volumes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_volumes: Option<Vec<Json>>,
    /// Extra mounts for those volumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_volume_mounts: Option<Vec<Json>>,
    /// The operator pods' DNS policy (`ClusterFirstWithHostNet`, as Kubespray's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
}

/// `hubble.metrics.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubbleMetrics {
    /// -> `hubble-metrics` (space-joined).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<Vec<String>>,
    /// -> the port of `hubble-metrics-server`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// -> `enable-hubble-open-metrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_open_metrics: Option<bool>,
}

/// `hubble.tls.auto.*`: who issues Hubble's certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubbleTlsAuto {
    /// Whether the chart issues them at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `helm` (at render time), `cronJob` (a certgen Job and CronJob) or `certmanager`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `hubble.tls.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubbleTls {
    /// -> `hubble-disable-tls` (inverted) and the three certificate paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Certificate issuing.
    #[serde(skip_serializing_if = "is_default")]
    pub auto: HubbleTlsAuto,
}

/// `hubble.relay.tls.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubbleRelayTls {
    /// `hubble.relay.tls.server.enabled`: the relay serves TLS on 443 and the UI connects with TLS.
    #[serde(skip_serializing_if = "is_default")]
    pub server: Toggle,
}

/// `hubble.relay.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HubbleRelay {
    /// The hubble-relay Deployment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The relay's own server TLS.
    #[serde(skip_serializing_if = "is_default")]
    pub tls: HubbleRelayTls,
}

/// `hubble.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hubble {
    /// -> `enable-hubble`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// -> `hubble-listen-address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_address: Option<String>,
    /// -> `hubble-socket-path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// -> `hubble-event-buffer-capacity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_buffer_capacity: Option<u64>,
    /// -> `hubble-event-queue-size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_queue_size: Option<u64>,
    /// Metrics.
    #[serde(skip_serializing_if = "is_default")]
    pub metrics: HubbleMetrics,
    /// TLS between relay and agents.
    #[serde(skip_serializing_if = "is_default")]
    pub tls: HubbleTls,
    /// hubble-relay Deployment.
    #[serde(skip_serializing_if = "is_default")]
    pub relay: HubbleRelay,
    /// hubble-ui Deployment.
    #[serde(skip_serializing_if = "is_default")]
    pub ui: Toggle,
}

/// `proxy.*` (chart 1.15 only).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proxy {
    /// -> `sidecar-istio-proxy-image` (chart 1.15 renders it always; 1.16 dropped it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_image_regex: Option<String>,
}

/// `k8sClientRateLimit.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct K8sClientRateLimit {
    /// -> `k8s-client-qps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qps: Option<u32>,
    /// -> `k8s-client-burst`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// `dnsProxy.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsProxy {
    /// -> `dnsproxy-enable-transparent-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_transparent_mode: Option<bool>,
    /// -> `tofqdns-endpoint-max-ip-per-hostname`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_max_ip_per_hostname: Option<u32>,
    /// -> `tofqdns-dns-reject-response-code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_reject_response_code: Option<String>,
    /// -> `tofqdns-enable-dns-compression`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_dns_compression: Option<bool>,
    /// -> `tofqdns-idle-connection-grace-period`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_connection_grace_period: Option<String>,
    /// -> `tofqdns-max-deferred-connection-deletes` (an integer: 1.16+'s schema).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deferred_connection_deletes: Option<u64>,
    /// -> `tofqdns-proxy-response-max-delay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_response_max_delay: Option<String>,
}

/// `envoy.*`: only its metrics switch (the embedded proxy reads it too).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Envoy {
    /// -> `proxy-prometheus-port` present.
    #[serde(skip_serializing_if = "is_default")]
    pub prometheus: Toggle,
}

/// `pmtuDiscovery.*` (chart 1.19+).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PmtuDiscovery {
    /// -> `packetization-layer-pmtud-mode`.
    #[serde(
        rename = "packetizationLayerPMTUDMode",
        skip_serializing_if = "Option::is_none"
    )]
    pub packetization_layer_pmtud_mode: Option<String>,
}

/// `clustermesh.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Clustermesh {
    /// -> `policy-default-local-cluster` (chart 1.18+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_default_local_cluster: Option<bool>,
}

/// The Helm values this tool writes, in the chart's layout. Unset fields are left to the chart.
///
/// Never written, because a later chart fails on them or they are gone: `tunnel` (removed in 1.15,
/// written as `routingMode`/`tunnelProtocol`), `containerRuntime.integration`, the legacy
/// `encryption.keyFile`/`mountPath`/`secretName`/`interface` (`encryption.ipsec.*` instead),
/// `proxy.prometheus`, `endpointStatus`, `etcd.managed` (1.16's validate.yaml fails on all of them),
/// `enableCnpStatusUpdates` (1.15's validate.yaml fails when it is true, and no chart renders it).
/// `remoteNodeIdentity` and `proxy.sidecarImageRegex` are written for 1.15 only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartValues {
    /// Keeps 1.15-era computed defaults (embedded Envoy on 1.16+) for a cluster born on 1.15.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_compatibility: Option<String>,
    /// Cluster identity.
    #[serde(skip_serializing_if = "is_default")]
    pub cluster: Cluster,
    /// -> `identity-allocation-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_allocation_mode: Option<String>,
    /// -> `devices`, the devices the datapath attaches to (space-separated, as the agent reads
    /// them). A value of its own because chart 1.20 renders the key itself (empty by default), so
    /// a copy in `extraConfig` would be a second `devices:`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<String>,
    /// Debug logging.
    #[serde(skip_serializing_if = "is_default")]
    pub debug: Debug,
    /// -> `enable-ipv4`.
    #[serde(skip_serializing_if = "is_default")]
    pub ipv4: Toggle,
    /// -> `enable-ipv6`.
    #[serde(skip_serializing_if = "is_default")]
    pub ipv6: Toggle,
    /// Pod address management.
    #[serde(skip_serializing_if = "is_default")]
    pub ipam: Ipam,
    /// -> `kube-proxy-replacement`: `"true"` or `"false"` (the only values 1.16+ accepts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_proxy_replacement: Option<String>,
    /// -> `kube-proxy-replacement-healthz-bind-address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kube_proxy_replacement_healthz_bind_addr: Option<String>,
    /// API server address for agents that cannot rely on kube-proxy.
    #[serde(rename = "k8sServiceHost", skip_serializing_if = "Option::is_none")]
    pub k8s_service_host: Option<String>,
    /// API server port (a string, as the chart documents it).
    #[serde(rename = "k8sServicePort", skip_serializing_if = "Option::is_none")]
    pub k8s_service_port: Option<String>,
    /// -> `routing-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_mode: Option<String>,
    /// -> `tunnel-protocol`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel_protocol: Option<String>,
    /// -> `ipv4-native-routing-cidr`.
    #[serde(
        rename = "ipv4NativeRoutingCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_native_routing_cidr: Option<String>,
    /// -> `ipv6-native-routing-cidr`.
    #[serde(
        rename = "ipv6NativeRoutingCIDR",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv6_native_routing_cidr: Option<String>,
    /// -> `auto-direct-node-routes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_direct_node_routes: Option<bool>,
    /// -> `enable-ipv4-masquerade`.
    #[serde(
        rename = "enableIPv4Masquerade",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv4_masquerade: Option<bool>,
    /// -> `enable-ipv6-masquerade`.
    #[serde(
        rename = "enableIPv6Masquerade",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_ipv6_masquerade: Option<bool>,
    /// ip-masq-agent.
    #[serde(skip_serializing_if = "is_default")]
    pub ip_masq_agent: IpMasqAgent,
    /// BPF map sizes and datapath switches.
    #[serde(skip_serializing_if = "is_default")]
    pub bpf: Bpf,
    /// -> `enable-bpf-clock-probe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf_clock_probe: Option<bool>,
    /// Transparent encryption.
    #[serde(skip_serializing_if = "is_default")]
    pub encryption: Encryption,
    /// Bandwidth manager.
    #[serde(skip_serializing_if = "is_default")]
    pub bandwidth_manager: BandwidthManager,
    /// L2 announcements.
    #[serde(skip_serializing_if = "is_default")]
    pub l2announcements: L2Announcements,
    /// -> `enable-host-firewall`.
    #[serde(skip_serializing_if = "is_default")]
    pub host_firewall: Toggle,
    /// -> `policy-audit-mode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_audit_mode: Option<bool>,
    /// -> `enable-policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_enforcement_mode: Option<String>,
    /// -> `enable-bgp-control-plane`, `bgp-secrets-namespace`.
    #[serde(skip_serializing_if = "is_default")]
    pub bgp_control_plane: BgpControlPlane,
    /// -> `enable-well-known-identities`.
    #[serde(skip_serializing_if = "is_default")]
    pub well_known_identities: Toggle,
    /// -> `enable-remote-node-identity` (chart 1.15 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_node_identity: Option<bool>,
    /// Istio sidecar proxy settings (chart 1.15 only).
    #[serde(skip_serializing_if = "is_default")]
    pub proxy: Proxy,
    /// Service load-balancing.
    #[serde(skip_serializing_if = "is_default")]
    pub load_balancer: LoadBalancer,
    /// -> `enable-node-port` (chart ≤ 1.18).
    #[serde(skip_serializing_if = "is_default")]
    pub node_port: Toggle,
    /// -> `enable-host-port` (chart ≤ 1.17).
    #[serde(skip_serializing_if = "is_default")]
    pub host_port: Toggle,
    /// -> `enable-external-ips` (chart < 1.17.6).
    #[serde(rename = "externalIPs", skip_serializing_if = "is_default")]
    pub external_ips: Toggle,
    /// -> `bpf-lb-sock`.
    #[serde(rename = "socketLB", skip_serializing_if = "is_default")]
    pub socket_lb: Toggle,
    /// -> `enable-l7-proxy`.
    #[serde(rename = "l7Proxy", skip_serializing_if = "Option::is_none")]
    pub l7_proxy: Option<bool>,
    /// -> `install-no-conntrack-iptables-rules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_no_conntrack_iptables_rules: Option<bool>,
    /// -> `enable-endpoint-health-checking`.
    #[serde(skip_serializing_if = "is_default")]
    pub endpoint_health_checking: Toggle,
    /// -> `enable-health-checking`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_checking: Option<bool>,
    /// -> `agent-health-port` (the chart renders it only when not 9879).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_port: Option<u32>,
    /// -> `mtu` (rendered only when not 0).
    #[serde(rename = "MTU", skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// -> `clean-cilium-state` (rendered only when true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_state: Option<bool>,
    /// -> `clean-cilium-bpf-state` (rendered only when true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clean_bpf_state: Option<bool>,
    /// CNI configuration.
    #[serde(skip_serializing_if = "is_default")]
    pub cni: Cni,
    /// cgroup v2 mount.
    #[serde(skip_serializing_if = "is_default")]
    pub cgroup: Cgroup,
    /// Agent metrics.
    #[serde(skip_serializing_if = "is_default")]
    pub prometheus: Prometheus,
    /// cilium-operator.
    #[serde(skip_serializing_if = "is_default")]
    pub operator: Operator,
    /// Hubble.
    #[serde(skip_serializing_if = "is_default")]
    pub hubble: Hubble,
    /// Agent container resources (Kubespray's `cilium_*_limit`/`_requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<Json>,
    /// Agent flags after the chart's own (Kubespray's `--mtu` and `cilium_agent_custom_args`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_args: Option<Vec<String>>,
    /// Agent environment variables (Kubespray's `cilium_agent_extra_env_vars`; the chart sets
    /// them in the `config` and `clean-cilium-state` init containers too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_env: Option<Vec<Json>>,
    /// Extra agent volumes (the etcd certificate mount in kvstore mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_volumes: Option<Vec<Json>>,
    /// Extra agent mounts (the etcd certificates, Kubespray's `cilium_agent_extra_volume_mounts`;
    /// the chart mounts them in the `config` and `clean-cilium-state` init containers too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_volume_mounts: Option<Vec<Json>>,
    /// The agent pods' DNS policy (kvstore mode: `ClusterFirstWithHostNet`, as Kubespray's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// Agent API client rate limits.
    #[serde(skip_serializing_if = "is_default")]
    pub k8s_client_rate_limit: K8sClientRateLimit,
    /// DNS proxy.
    #[serde(skip_serializing_if = "is_default")]
    pub dns_proxy: DnsProxy,
    /// Envoy metrics.
    #[serde(skip_serializing_if = "is_default")]
    pub envoy: Envoy,
    /// -> `enable-l2-neigh-discovery`.
    #[serde(skip_serializing_if = "is_default")]
    pub l2_neigh_discovery: Toggle,
    /// -> `mesh-auth-enabled`.
    #[serde(skip_serializing_if = "is_default")]
    pub authentication: Toggle,
    /// Path MTU discovery.
    #[serde(skip_serializing_if = "is_default")]
    pub pmtu_discovery: PmtuDiscovery,
    /// Cluster mesh policy scope.
    #[serde(skip_serializing_if = "is_default")]
    pub clustermesh: Clustermesh,
    /// `cilium-config` keys carried verbatim: appended last, so they win over chart keys.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_config: BTreeMap<String, String>,
}

/// Where one value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A key of the live `cilium-config`.
    Live {
        /// The file (or API object) the map was read from.
        source: String,
        /// The `cilium-config` key.
        key: String,
    },
    /// An inventory variable.
    Inventory {
        /// Where the variable was set.
        origin: String,
        /// The variable.
        variable: String,
    },
    /// A decision of this tool, with its reason.
    Tool {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Live { source, key } => write!(f, "live cilium-config {key} ({source})"),
            Provenance::Inventory { origin, variable } => {
                if variable.is_empty() {
                    write!(f, "{origin}")
                } else if origin.contains(variable.as_str()) {
                    write!(f, "inventory {origin}")
                } else {
                    write!(f, "inventory {variable} ({origin})")
                }
            }
            Provenance::Tool { reason } => write!(f, "cilium-migrate: {reason}"),
        }
    }
}

/// Chart values for one chart version, with the origin of each value (keyed by dotted path, e.g.
/// `bpf.ctTcpMax` or `extraConfig.sidecar-istio-proxy-image`).
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// The chart the values are written for.
    pub version: ChartVersion,
    /// The values.
    pub chart: ChartValues,
    /// Dotted path -> where the value came from.
    pub provenance: BTreeMap<String, Provenance>,
}

impl Values {
    /// Empty values for a chart version.
    pub fn new(version: ChartVersion) -> Self {
        Self {
            version,
            chart: ChartValues::default(),
            provenance: BTreeMap::new(),
        }
    }

    /// Record where the value at `path` came from.
    pub fn note(&mut self, path: impl Into<String>, provenance: Provenance) {
        self.provenance.insert(path.into(), provenance);
    }

    /// Where the value at a dotted path came from.
    pub fn provenance_of(&self, path: &str) -> Option<&Provenance> {
        self.provenance.get(path)
    }

    /// Plain values, as `helm -f` reads them (JSON is YAML).
    pub fn to_json(&self) -> Result<Json, Error> {
        serde_json::to_value(&self.chart).map_err(|e| Error::Serialise(e.to_string()))
    }

    /// [`Values::to_json`] as pretty text.
    pub fn to_json_string(&self) -> Result<String, Error> {
        let mut text = serde_json::to_string_pretty(&self.to_json()?)
            .map_err(|e| Error::Serialise(e.to_string()))?;
        text.push('\n');
        Ok(text)
    }

    /// [`Values::to_json_string`] as it may be printed: secret-looking values replaced with
    /// [`crate::REDACTED`] (see [`crate::redact_json`]), and the dotted paths replaced.
    pub fn to_json_string_redacted(&self) -> Result<(String, Vec<String>), Error> {
        let mut json = self.to_json()?;
        let paths = crate::redact_json(&mut json);
        let mut text =
            serde_json::to_string_pretty(&json).map_err(|e| Error::Serialise(e.to_string()))?;
        text.push('\n');
        Ok((text, paths))
    }

    /// YAML with a comment on each value saying where it came from. Every string is double-quoted,
    /// so `"true"`, `"on"` or `"0755"` stay strings for Helm. This is the file for helm: every
    /// printout uses [`Values::to_yaml_with_provenance_redacted`].
    pub fn to_yaml_with_provenance(&self) -> Result<String, Error> {
        Ok(self.provenance_yaml(false)?.0)
    }

    /// [`Values::to_yaml_with_provenance`] as it may be printed: secret-looking values replaced
    /// with [`crate::REDACTED`] and named in a comment; returns the dotted paths replaced.
    pub fn to_yaml_with_provenance_redacted(&self) -> Result<(String, Vec<String>), Error> {
        self.provenance_yaml(true)
    }

    fn provenance_yaml(&self, redact: bool) -> Result<(String, Vec<String>), Error> {
        let mut json = self.to_json()?;
        let paths = if redact {
            crate::redact_json(&mut json)
        } else {
            Vec::new()
        };
        let mut out = format!(
            "# Helm values for the Cilium chart {}, written by cilium-migrate.\n# Each value says where it came from; the live cilium-config wins over the inventory.\n",
            self.version
        );
        if self.version.has_values_schema() {
            out.push_str("# Chart 1.16+ checks these types against its values.schema.json.\n");
        }
        if !paths.is_empty() {
            out.push_str(&crate::redact::redaction_note(&paths));
        }
        if let Json::Object(map) = &json {
            if map.is_empty() {
                out.push_str("{}\n");
            }
            self.emit_map(map, "", 0, &mut out);
        }
        Ok((out, paths))
    }

    fn emit_map(
        &self,
        map: &serde_json::Map<String, Json>,
        prefix: &str,
        indent: usize,
        out: &mut String,
    ) {
        let pad = "  ".repeat(indent);
        for (key, value) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            let comment = self
                .provenance
                .get(&path)
                .map(|p| format!("  # {}", one_line(&p.to_string())))
                .unwrap_or_default();
            match value {
                Json::Object(inner) if !inner.is_empty() => {
                    out.push_str(&format!("{pad}{}:{comment}\n", yaml_key(key)));
                    self.emit_map(inner, &path, indent + 1, out);
                }
                Json::Array(items) if !items.is_empty() && items.iter().all(is_scalar) => {
                    out.push_str(&format!("{pad}{}:{comment}\n", yaml_key(key)));
                    for item in items {
                        out.push_str(&format!("{pad}  - {}\n", yaml_scalar(item)));
                    }
                }
                // Empty collections and lists of mappings: JSON flow style is valid YAML.
                other => out.push_str(&format!(
                    "{pad}{}: {}{comment}\n",
                    yaml_key(key),
                    yaml_scalar(other)
                )),
            }
        }
    }
}

fn is_scalar(value: &Json) -> bool {
    !matches!(value, Json::Array(_) | Json::Object(_))
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Scalars as JSON text: strings double-quoted (a valid YAML double-quoted scalar), the rest plain.
fn yaml_scalar(value: &Json) -> String {
    value.to_string()
}

/// Keys plain where unambiguous, double-quoted otherwise.
fn yaml_key(key: &str) -> String {
    const AMBIGUOUS: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~",
    ];
    let plain = !key.is_empty()
        && key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !AMBIGUOUS.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        key.to_owned()
    } else {
        Json::String(key.to_owned()).to_string()
    }
}
