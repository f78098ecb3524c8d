//! Kubespray's role defaults that decide a variable when the inventory is silent, per era, and
//! the type each variable must have.
//!
//! This is the crate's own table, written from the research notes, not a copy of Kubespray's
//! files. A test (`tests/defaults_table.rs`) reads Kubespray's real defaults files of the tags
//! named by [`checked_against`] and checks every entry here against them.

use crate::Era;

/// The Kubespray file a default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultsFile {
    /// `roles/network_plugin/cilium/defaults/main.yml`
    CiliumRole,
    /// `roles/kubespray-defaults/defaults/main/main.yml` (`kubespray_defaults` from v2.28)
    KubesprayMain,
    /// `roles/kubespray-defaults/defaults/main/download.yml` (`kubespray_defaults` from v2.28)
    KubesprayDownload,
}

impl DefaultsFile {
    /// The file's path in the Kubespray repository for an era.
    pub fn repo_path(self, era: Era) -> &'static str {
        match (self, era) {
            (Self::CiliumRole, _) => "roles/network_plugin/cilium/defaults/main.yml",
            (Self::KubesprayMain, Era::Template) => {
                "roles/kubespray-defaults/defaults/main/main.yml"
            }
            (Self::KubesprayMain, Era::CiliumCli) => {
                "roles/kubespray_defaults/defaults/main/main.yml"
            }
            (Self::KubesprayDownload, Era::Template) => {
                "roles/kubespray-defaults/defaults/main/download.yml"
            }
            (Self::KubesprayDownload, Era::CiliumCli) => {
                "roles/kubespray_defaults/defaults/main/download.yml"
            }
        }
    }
}

/// How a default's value is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Eval {
    /// The YAML value as written; any `{{ var }}` in it is resolved like an inventory value.
    AsWritten,
    /// Kubespray's `cilium_version | regex_replace('v') is version(V, '>=')` choice between two values.
    CiliumVersionAtLeast {
        /// The version compared against.
        version: &'static str,
        /// The value when `cilium_version >= version`.
        then: &'static str,
        /// The value otherwise.
        otherwise: &'static str,
    },
    /// Kubespray's `{{ var | default(fallback) }}`.
    DefaultOr {
        /// The variable read.
        var: &'static str,
        /// The YAML value used when it is undefined.
        fallback: &'static str,
    },
}

/// One role default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoleDefault {
    /// The variable.
    pub name: &'static str,
    /// Its value as YAML text (for [`Eval::AsWritten`]) or the upstream Jinja expression as written.
    pub yaml: &'static str,
    /// Where it lives.
    pub file: DefaultsFile,
    /// How it is computed.
    pub eval: Eval,
}

/// The Kubespray tag whose defaults files the table of an era was checked against.
pub fn checked_against(era: Era) -> &'static str {
    match era {
        Era::Template => "v2.27.1",
        Era::CiliumCli => "v2.31.0",
    }
}

use DefaultsFile::{CiliumRole as C, KubesprayDownload as D, KubesprayMain as M};

/// Defaults with the same value and file in both eras.
const COMMON: &[(&str, &str, DefaultsFile)] = &[
    ("cilium_debug", "false", C),
    ("cilium_l2announcements", "false", C),
    ("cilium_cert_dir", "/etc/cilium/certs", C),
    ("kube_etcd_cacert_file", "ca.pem", C),
    (
        "kube_etcd_cert_file",
        "node-{{ inventory_hostname }}.pem",
        C,
    ),
    (
        "kube_etcd_key_file",
        "node-{{ inventory_hostname }}-key.pem",
        C,
    ),
    ("cilium_memory_limit", "500M", C),
    ("cilium_cpu_limit", "500m", C),
    ("cilium_memory_requests", "64M", C),
    ("cilium_cpu_requests", "100m", C),
    ("cilium_tunnel_mode", "vxlan", C),
    ("cilium_loadbalancer_mode", "snat", C),
    ("cilium_loadbalancer_ip_pools", "[]", C),
    ("cilium_enable_prometheus", "false", C),
    ("cilium_enable_portmap", "false", C),
    ("cilium_monitor_aggregation", "medium", C),
    ("cilium_preallocate_bpf_maps", "false", C),
    ("cilium_auto_direct_node_routes", "false", C),
    ("cilium_native_routing_cidr", "''", C),
    ("cilium_native_routing_cidr_ipv6", "''", C),
    ("cilium_encryption_enabled", "false", C),
    ("cilium_encryption_type", "ipsec", C),
    ("cilium_wireguard_userspace_fallback", "false", C),
    ("cilium_enable_bandwidth_manager", "false", C),
    ("cilium_ip_masq_agent_enable", "false", C),
    (
        "cilium_non_masquerade_cidrs",
        "[10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 192.0.0.0/24, 192.0.2.0/24, \
         192.88.99.0/24, 198.18.0.0/15, 198.51.100.0/24, 203.0.113.0/24, 240.0.0.0/4]",
        C,
    ),
    ("cilium_masq_link_local", "false", C),
    ("cilium_ip_masq_resync_interval", "60s", C),
    ("cilium_enable_hubble", "false", C),
    ("cilium_enable_hubble_ui", "'{{ cilium_enable_hubble }}'", C),
    ("cilium_enable_hubble_metrics", "false", C),
    ("cilium_hubble_install", "false", C),
    ("cilium_hubble_tls_generate", "false", C),
    ("cilium_ipam_mode", "cluster-pool", C),
    ("cilium_agent_custom_args", "[]", C),
    ("cilium_agent_extra_volumes", "[]", C),
    ("cilium_agent_extra_volume_mounts", "[]", C),
    ("cilium_agent_extra_env_vars", "[]", C),
    ("cilium_operator_replicas", "2", C),
    ("cilium_operator_api_serve_addr", "'127.0.0.1:9234'", C),
    ("cilium_config_extra_vars", "{}", C),
    ("cilium_operator_extra_volumes", "[]", C),
    ("cilium_operator_extra_volume_mounts", "[]", C),
    ("cilium_operator_custom_args", "[]", C),
    ("cilium_cluster_name", "default", C),
    ("cilium_cni_exclusive", "true", C),
    ("cilium_cni_log_file", "/var/run/cilium/cilium-cni.log", C),
    ("cilium_cgroup_auto_mount", "true", C),
    ("cilium_cgroup_host_root", "/run/cilium/cgroupv2", C),
    ("cilium_bpf_map_dynamic_size_ratio", "'0.0025'", C),
    ("cilium_enable_ipv4_masquerade", "true", C),
    ("cilium_enable_ipv6_masquerade", "true", C),
    ("cilium_enable_bpf_masquerade", "false", C),
    ("cilium_enable_remote_node_identity", "true", C),
    ("cilium_enable_well_known_identities", "false", C),
    ("cilium_monitor_aggregation_flags", "all", C),
    ("cilium_enable_bgp_control_plane", "false", C),
    ("cilium_bgp_cluster_configs", "[]", C),
    ("cilium_bgp_peer_configs", "[]", C),
    ("cilium_bgp_advertisements", "[]", C),
    ("cilium_bgp_node_config_overrides", "[]", C),
    ("cilium_bgp_peering_policies", "[]", C),
    ("cilium_disable_cnp_status_updates", "true", C),
    ("cilium_rolling_restart_wait_retries_count", "30", C),
    ("cilium_rolling_restart_wait_retries_delay_seconds", "10", C),
    (
        "cilium_certgen_args",
        "{cilium-namespace: kube-system, ca-reuse-secret: true, ca-secret-name: hubble-ca-secret, \
         ca-generate: true, ca-validity-duration: 94608000s, hubble-server-cert-generate: true, \
         hubble-server-cert-common-name: '*.{{ cilium_cluster_name }}.hubble-grpc.cilium.io', \
         hubble-server-cert-validity-duration: 94608000s, hubble-server-cert-secret-name: hubble-server-certs, \
         hubble-relay-client-cert-generate: true, \
         hubble-relay-client-cert-common-name: '*.{{ cilium_cluster_name }}.hubble-grpc.cilium.io', \
         hubble-relay-client-cert-validity-duration: 94608000s, \
         hubble-relay-client-cert-secret-name: hubble-relay-client-certs, hubble-relay-server-cert-generate: false}",
        C,
    ),
    ("cilium_enable_host_firewall", "false", C),
    ("cilium_policy_audit_mode", "false", C),
    // Cluster variables the Cilium settings depend on.
    ("bin_dir", "/usr/local/bin", M),
    ("cluster_name", "cluster.local", M),
    ("dns_domain", "'{{ cluster_name }}'", M),
    ("kube_config_dir", "/etc/kubernetes", M),
    ("kube_cert_dir", "'{{ kube_config_dir }}/ssl'", M),
    ("kube_owner", "kube", M),
    ("kube_network_plugin", "calico", M),
    ("kube_proxy_mode", "ipvs", M),
    ("kube_service_addresses", "10.233.0.0/18", M),
    ("kube_pods_subnet", "10.233.64.0/18", M),
    ("kube_network_node_prefix", "24", M),
    (
        "kube_service_addresses_ipv6",
        "'fd85:ee78:d8a6:8607::1000/116'",
        M,
    ),
    (
        "kube_pods_subnet_ipv6",
        "'fd85:ee78:d8a6:8607::1:0000/112'",
        M,
    ),
    ("kube_network_node_prefix_ipv6", "120", M),
    ("kube_apiserver_port", "6443", M),
    ("etcd_deployment_type", "host", M),
    ("etcd_data_dir", "/var/lib/etcd", M),
    ("etcd_config_dir", "/etc/ssl/etcd", M),
    ("etcd_cert_dir", "'{{ etcd_config_dir }}/ssl'", M),
];

/// Defaults of the template era (Kubespray v2.27.1).
const TEMPLATE: &[(&str, &str, DefaultsFile)] = &[
    ("cilium_min_version_required", "'1.10'", C),
    ("cilium_mtu", "''", C),
    ("cilium_enable_ipv4", "true", C),
    ("cilium_enable_ipv6", "false", C),
    ("cilium_identity_allocation_mode", "kvstore", C),
    ("cilium_kube_proxy_replacement", "partial", C),
    ("cilium_tofqdns_enable_poller", "false", C),
    ("cilium_enable_legacy_services", "false", C),
    ("cilium_deploy_additionally", "false", C),
    ("cilium_ipsec_node_encryption", "false", C),
    ("cilium_hubble_metrics", "{}", C),
    ("cilium_enable_host_legacy_routing", "true", C),
    ("cilium_enable_bpf_clock_probe", "true", C),
    ("cilium_clusterrole_rules_operator_extra_vars", "[]", C),
    ("cilium_version", "v1.15.9", D),
    ("cilium_cli_version", "v0.16.24", D),
    ("enable_dual_stack_networks", "false", M),
];

/// Template-era defaults computed from `cilium_version`.
const TEMPLATE_VERSION_GATED: &[(&str, &str, &str, &str, &str)] = &[
    (
        "cilium_agent_health_port",
        "{%- if cilium_version | regex_replace('v') is version('1.11.6', '>=') -%}9879{%- else -%}9876{%- endif -%}",
        "1.11.6",
        "9879",
        "9876",
    ),
    (
        "cilium_agent_scrape_port",
        "{{ cilium_version | regex_replace('v') is version('1.12', '>=') | ternary('9962', '9090') }}",
        "1.12",
        "9962",
        "9090",
    ),
    (
        "cilium_operator_scrape_port",
        "{{ cilium_version | regex_replace('v') is version('1.12', '>=') | ternary('9963', '6942') }}",
        "1.12",
        "9963",
        "6942",
    ),
    (
        "cilium_hubble_scrape_port",
        "{{ cilium_version | regex_replace('v') is version('1.12', '>=') | ternary('9965', '9091') }}",
        "1.12",
        "9965",
        "9091",
    ),
];

/// Defaults of the cilium-cli era (Kubespray v2.31.0).
const CILIUM_CLI: &[(&str, &str, DefaultsFile)] = &[
    ("cilium_min_version_required", "'1.15'", C),
    ("cilium_mtu", "'0'", C),
    ("cilium_enable_ipv4", "'{{ ipv4_stack }}'", C),
    ("cilium_enable_ipv6", "'{{ ipv6_stack }}'", C),
    ("cilium_agent_health_port", "'9879'", C),
    ("cilium_identity_allocation_mode", "crd", M),
    ("cilium_kube_proxy_replacement", "false", C),
    ("cilium_deploy_additionally", "false", M),
    ("cilium_encryption_node_encryption", "false", C),
    ("cilium_enable_bandwidth_manager_bbr", "false", C),
    ("cilium_masq_link_local_ipv6", "false", C),
    ("cilium_hubble_metrics", "[]", C),
    ("cilium_hubble_export_file_max_backups", "'5'", C),
    ("cilium_hubble_export_file_max_size_mb", "'10'", C),
    ("cilium_hubble_export_dynamic_enabled", "false", C),
    (
        "cilium_hubble_export_dynamic_config_content",
        "[{name: all, fieldMask: [], includeFilters: [], excludeFilters: [], filePath: /var/run/cilium/hubble/events.log}]",
        C,
    ),
    (
        "cilium_hubble_peer_service_cluster_domain",
        "'{{ dns_domain }}'",
        C,
    ),
    ("cilium_gateway_api_enabled", "false", C),
    ("cilium_agent_extra_args", "[]", C),
    ("cilium_operator_extra_args", "[]", C),
    ("cilium_operator_tolerations", "[{operator: Exists}]", C),
    ("cilium_cluster_id", "0", C),
    ("cilium_enable_host_legacy_routing", "false", C),
    ("cilium_agent_scrape_port", "'9962'", C),
    ("cilium_operator_scrape_port", "'9963'", C),
    ("cilium_hubble_scrape_port", "'9965'", C),
    ("cilium_install_extra_flags", "''", C),
    ("cilium_extra_values", "{}", C),
    ("cilium_version", "'1.19.3'", D),
    ("ipv4_stack", "true", M),
];

/// The role defaults the tool needs for an era.
pub fn role_defaults(era: Era) -> Vec<RoleDefault> {
    let plain = |(name, yaml, file): &(&'static str, &'static str, DefaultsFile)| RoleDefault {
        name,
        yaml,
        file: *file,
        eval: Eval::AsWritten,
    };
    let mut out: Vec<RoleDefault> = COMMON.iter().map(plain).collect();
    match era {
        Era::Template => {
            out.extend(TEMPLATE.iter().map(plain));
            out.extend(TEMPLATE_VERSION_GATED.iter().map(
                |(name, expr, version, then, otherwise)| RoleDefault {
                    name,
                    yaml: expr,
                    file: C,
                    eval: Eval::CiliumVersionAtLeast {
                        version,
                        then,
                        otherwise,
                    },
                },
            ));
        }
        Era::CiliumCli => {
            out.extend(CILIUM_CLI.iter().map(plain));
            out.push(RoleDefault {
                name: "ipv6_stack",
                yaml: "{{ enable_dual_stack_networks | default(false) }}",
                file: M,
                eval: Eval::DefaultOr {
                    var: "enable_dual_stack_networks",
                    fallback: "false",
                },
            });
        }
    }
    out
}

/// The cluster variables resolved next to every `cilium_*` variable, when set or defaulted.
pub const CLUSTER_VARIABLES: &[&str] = &[
    "kube_network_plugin",
    "kube_owner",
    "kube_pods_subnet",
    "kube_pods_subnet_ipv6",
    "kube_network_node_prefix",
    "kube_network_node_prefix_ipv6",
    "kube_service_addresses",
    "kube_service_addresses_ipv6",
    "kube_proxy_remove",
    "kube_proxy_mode",
    "kube_apiserver_port",
    "ipv4_stack",
    "ipv6_stack",
    "enable_dual_stack_networks",
    "kube_config_dir",
    "kube_cert_dir",
    "bin_dir",
    "cluster_name",
    "dns_domain",
    "etcd_deployment_type",
    "etcd_data_dir",
    "etcd_config_dir",
    "etcd_cert_dir",
    "kube_etcd_cacert_file",
    "kube_etcd_cert_file",
    "kube_etcd_key_file",
    "loadbalancer_apiserver",
    "apiserver_loadbalancer_domain_name",
];

/// The type a variable must have, as Kubespray's templates and tasks use it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// `true`/`false` (or a string Ansible's `bool` filter reads as one).
    Bool,
    /// A string.
    Str,
    /// A string from a fixed set.
    OneOf(&'static [&'static str]),
    /// A string or a number (rendered into a string: ports, sizes, quantities).
    Scalar,
    /// A whole number (or a string of digits), within bounds.
    Int {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A list.
    List,
    /// A mapping.
    Map,
    /// A list or a mapping (`cilium_hubble_metrics` changed shape between eras).
    ListOrMap,
    /// `cilium_kube_proxy_replacement`: a boolean or strict/partial/disabled/probe.
    KubeProxyReplacement,
}

const BOOLS: &[&str] = &[
    "cilium_debug",
    "cilium_enable_ipv4",
    "cilium_enable_ipv6",
    "cilium_l2announcements",
    "cilium_enable_prometheus",
    "cilium_enable_portmap",
    "cilium_preallocate_bpf_maps",
    "cilium_tofqdns_enable_poller",
    "cilium_enable_legacy_services",
    "cilium_deploy_additionally",
    "cilium_auto_direct_node_routes",
    "cilium_encryption_enabled",
    "cilium_ipsec_node_encryption",
    "cilium_encryption_node_encryption",
    "cilium_wireguard_userspace_fallback",
    "cilium_enable_bandwidth_manager",
    "cilium_enable_bandwidth_manager_bbr",
    "cilium_ip_masq_agent_enable",
    "cilium_masq_link_local",
    "cilium_masq_link_local_ipv6",
    "cilium_enable_hubble",
    "cilium_enable_hubble_ui",
    "cilium_enable_hubble_metrics",
    "cilium_hubble_install",
    "cilium_hubble_tls_generate",
    "cilium_hubble_export_dynamic_enabled",
    "cilium_gateway_api_enabled",
    "cilium_cni_exclusive",
    "cilium_cgroup_auto_mount",
    "cilium_enable_ipv4_masquerade",
    "cilium_enable_ipv6_masquerade",
    "cilium_enable_bpf_masquerade",
    "cilium_enable_host_legacy_routing",
    "cilium_enable_remote_node_identity",
    "cilium_enable_well_known_identities",
    "cilium_enable_bpf_clock_probe",
    "cilium_enable_bgp_control_plane",
    "cilium_disable_cnp_status_updates",
    "cilium_enable_host_firewall",
    "cilium_policy_audit_mode",
    "cilium_ipsec_enabled",
    "cilium_dns_proxy_enable_transparent_mode",
    "cilium_remove_old_resources",
    "kube_proxy_remove",
    "ipv4_stack",
    "ipv6_stack",
    "enable_dual_stack_networks",
];

const LISTS: &[&str] = &[
    "cilium_loadbalancer_ip_pools",
    "cilium_non_masquerade_cidrs",
    "cilium_agent_custom_args",
    "cilium_agent_extra_args",
    "cilium_agent_extra_volumes",
    "cilium_agent_extra_volume_mounts",
    "cilium_agent_extra_env_vars",
    "cilium_operator_extra_volumes",
    "cilium_operator_extra_volume_mounts",
    "cilium_operator_custom_args",
    "cilium_operator_extra_args",
    "cilium_operator_tolerations",
    "cilium_bgp_cluster_configs",
    "cilium_bgp_peer_configs",
    "cilium_bgp_advertisements",
    "cilium_bgp_node_config_overrides",
    "cilium_bgp_peering_policies",
    "cilium_hubble_export_dynamic_config_content",
    "cilium_clusterrole_rules_operator_extra_vars",
];

const MAPS: &[&str] = &[
    "cilium_config_extra_vars",
    "cilium_certgen_args",
    "cilium_extra_values",
];

const SCALARS: &[&str] = &[
    "cilium_mtu",
    "cilium_agent_health_port",
    "cilium_agent_scrape_port",
    "cilium_operator_scrape_port",
    "cilium_hubble_scrape_port",
    "cilium_memory_limit",
    "cilium_cpu_limit",
    "cilium_memory_requests",
    "cilium_cpu_requests",
    "cilium_bpf_map_dynamic_size_ratio",
    "cilium_hubble_export_file_max_backups",
    "cilium_hubble_export_file_max_size_mb",
];

const STRINGS: &[&str] = &[
    "cilium_version",
    "cilium_cli_version",
    "cilium_min_version_required",
    "cilium_cert_dir",
    "kube_etcd_cacert_file",
    "kube_etcd_cert_file",
    "kube_etcd_key_file",
    "cilium_monitor_aggregation",
    "cilium_native_routing_cidr",
    "cilium_native_routing_cidr_ipv6",
    "cilium_ip_masq_resync_interval",
    "cilium_ipam_mode",
    "cilium_operator_api_serve_addr",
    "cilium_cluster_name",
    "cilium_cni_log_file",
    "cilium_cgroup_host_root",
    "cilium_monitor_aggregation_flags",
    "cilium_hubble_peer_service_cluster_domain",
    "cilium_install_extra_flags",
    "cilium_pool_cidr",
    "cilium_pool_cidr_ipv6",
    "cilium_ipsec_key",
    "kube_network_plugin",
    "kube_owner",
    "kube_pods_subnet",
    "kube_pods_subnet_ipv6",
    "kube_service_addresses",
    "kube_service_addresses_ipv6",
    "kube_config_dir",
    "kube_cert_dir",
    "bin_dir",
    "cluster_name",
    "dns_domain",
    "etcd_data_dir",
    "etcd_config_dir",
    "etcd_cert_dir",
];

/// The type `name` must have, when the tool knows it.
pub fn expected_kind(name: &str) -> Option<Kind> {
    let kind = match name {
        "cilium_tunnel_mode" => Kind::OneOf(&["vxlan", "geneve", "disabled"]),
        "cilium_loadbalancer_mode" => Kind::OneOf(&["snat", "dsr", "hybrid"]),
        "cilium_encryption_type" => Kind::OneOf(&["ipsec", "wireguard"]),
        "cilium_identity_allocation_mode" => Kind::OneOf(&[
            "crd",
            "kvstore",
            "doublewrite-readkvstore",
            "doublewrite-readcrd",
        ]),
        "kube_proxy_mode" => Kind::OneOf(&["ipvs", "iptables", "nftables"]),
        "etcd_deployment_type" => Kind::OneOf(&["host", "kubeadm", "docker"]),
        "cilium_kube_proxy_replacement" => Kind::KubeProxyReplacement,
        "cilium_hubble_metrics" => Kind::ListOrMap,
        "cilium_cluster_id" => Kind::Int { min: 0, max: 255 },
        "cilium_operator_replicas"
        | "cilium_rolling_restart_wait_retries_count"
        | "cilium_rolling_restart_wait_retries_delay_seconds"
        | "cilium_hubble_event_buffer_capacity"
        | "cilium_hubble_event_queue_size" => Kind::Int {
            min: 0,
            max: i64::from(u32::MAX),
        },
        "kube_network_node_prefix" | "cilium_pool_mask_size" => Kind::Int { min: 0, max: 32 },
        "kube_network_node_prefix_ipv6" | "cilium_pool_mask_size_ipv6" => {
            Kind::Int { min: 0, max: 128 }
        }
        "kube_apiserver_port" => Kind::Int { min: 1, max: 65535 },
        n if BOOLS.contains(&n) => Kind::Bool,
        n if LISTS.contains(&n) => Kind::List,
        n if MAPS.contains(&n) => Kind::Map,
        n if SCALARS.contains(&n) => Kind::Scalar,
        n if STRINGS.contains(&n) => Kind::Str,
        _ => return None,
    };
    Some(kind)
}
