//! Data-driven tests of the translation: live keys -> values, inventory disagreements, errors.

use std::collections::BTreeMap;

use cilium_values::{
    ChartVersion, Error, InventoryVar, InventoryVars, LiveConfig, Sources, Translation, Warning,
    WarningKind, kubespray_config_view, translate,
};
use serde_json::{Value as Json, json};

/// Live config pairs of a table row.
type Pairs<'a> = &'a [(&'a str, &'a str)];
/// Expected warnings of a table row.
type Kinds<'a> = &'a [(WarningKind, &'a str)];
/// Inventory variables of a table row.
type Vars<'a> = &'a [(&'a str, Json)];

fn version(text: &str) -> ChartVersion {
    ChartVersion::parse(text).expect("valid version")
}

fn live(pairs: &[(&str, &str)]) -> LiveConfig {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    LiveConfig::from_map(data, "live.yaml")
}

fn vars(pairs: &[(&str, Json)]) -> InventoryVars {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                InventoryVar::new(
                    v.clone(),
                    format!("group_vars/k8s_cluster/k8s-net-cilium.yml: {k}"),
                ),
            )
        })
        .collect()
}

fn run(
    live_pairs: &[(&str, &str)],
    inventory: &[(&str, Json)],
    chart: &str,
) -> Result<Translation, Error> {
    translate(&Sources {
        live: (!live_pairs.is_empty()).then(|| live(live_pairs)),
        inventory: vars(inventory),
        version: version(chart),
    })
}

#[test]
fn live_keys_map_to_typed_values() {
    // (live config, chart, JSON pointer into the values, expected value)
    let cases: &[(Pairs, &str, &str, Json)] = &[
        // Chart 1.20 renders `devices` itself (empty by default): a value, never extraConfig.
        (
            &[("devices", "eth0 eth+")],
            "1.20.0",
            "/devices",
            json!("eth0 eth+"),
        ),
        (&[("devices", "eth0")], "1.15.9", "/devices", json!("eth0")),
        (
            &[("tofqdns-dns-reject-response-code", "nameError")],
            "1.15.9",
            "/dnsProxy/dnsRejectResponseCode",
            json!("nameError"),
        ),
        (
            &[("tofqdns-max-deferred-connection-deletes", "20000")],
            "1.19.6",
            "/dnsProxy/maxDeferredConnectionDeletes",
            json!(20000),
        ),
        (
            &[("tofqdns-enable-dns-compression", "false")],
            "1.17.18",
            "/dnsProxy/enableDnsCompression",
            json!(false),
        ),
        (
            &[("bpf-ct-global-tcp-max", "524288")],
            "1.15.9",
            "/bpf/ctTcpMax",
            json!(524288),
        ),
        (
            &[("bpf-ct-global-any-max", "262144")],
            "1.19.6",
            "/bpf/ctAnyMax",
            json!(262144),
        ),
        (
            &[("bpf-nat-global-max", "1048576")],
            "1.16.19",
            "/bpf/natMax",
            json!(1048576),
        ),
        (
            &[("bpf-policy-map-max", "32768")],
            "1.15.9",
            "/bpf/policyMapMax",
            json!(32768),
        ),
        (
            &[("bpf-map-dynamic-size-ratio", "0.0025")],
            "1.15.9",
            "/bpf/mapDynamicSizeRatio",
            json!(0.0025),
        ),
        (
            &[("enable-host-legacy-routing", "True")],
            "1.15.9",
            "/bpf/hostLegacyRouting",
            json!(true),
        ),
        (
            &[("cluster-pool-ipv4-mask-size", "24")],
            "1.16.19",
            "/ipam/operator/clusterPoolIPv4MaskSize",
            json!(24),
        ),
        (
            &[("cluster-pool-ipv4-cidr", "10.233.64.0/18 10.240.0.0/16")],
            "1.15.9",
            "/ipam/operator/clusterPoolIPv4PodCIDRList",
            json!(["10.233.64.0/18", "10.240.0.0/16"]),
        ),
        (
            &[("cluster-name", "homelab")],
            "1.15.9",
            "/cluster/name",
            json!("homelab"),
        ),
        (&[("cluster-id", "7")], "1.15.9", "/cluster/id", json!(7)),
        (
            &[("kube-proxy-replacement", "partial")],
            "1.15.9",
            "/kubeProxyReplacement",
            json!("false"),
        ),
        (
            &[("kube-proxy-replacement", "strict")],
            "1.16.19",
            "/kubeProxyReplacement",
            json!("true"),
        ),
        // 1.15's `disabled` is more than `false`: kept where the chart still accepts it.
        (
            &[("kube-proxy-replacement", "disabled")],
            "1.15.9",
            "/kubeProxyReplacement",
            json!("disabled"),
        ),
        (
            &[("kube-proxy-replacement", "disabled")],
            "1.16.19",
            "/kubeProxyReplacement",
            json!("false"),
        ),
        // Keys the live config leaves to the 1.15 agent's default, pinned where a chart renders another.
        (
            &[("debug", "false")],
            "1.15.9",
            "/k8sClientRateLimit/qps",
            json!(5),
        ),
        (
            &[("debug", "false")],
            "1.15.9",
            "/operator/setNodeTaints",
            json!(false),
        ),
        (
            &[("debug", "false")],
            "1.15.9",
            "/prometheus/controllerGroupMetrics",
            json!([]),
        ),
        (
            &[("debug", "false")],
            "1.15.9",
            "/dnsProxy/enableTransparentMode",
            json!(false),
        ),
        (
            &[("debug", "false")],
            "1.15.9",
            "/envoy/prometheus/enabled",
            json!(false),
        ),
        (
            &[("debug", "false")],
            "1.17.18",
            "/dnsProxy/endpointMaxIpPerHostname",
            json!(50),
        ),
        (
            &[("debug", "false")],
            "1.16.19",
            "/bpf/enableTCX",
            json!(false),
        ),
        (
            &[("debug", "false")],
            "1.18.12",
            "/l2NeighDiscovery/enabled",
            json!(true),
        ),
        (
            &[("debug", "false")],
            "1.18.12",
            "/clustermesh/policyDefaultLocalCluster",
            json!(false),
        ),
        (
            &[("debug", "false")],
            "1.19.6",
            "/authentication/enabled",
            json!(true),
        ),
        (
            &[("debug", "false")],
            "1.19.6",
            "/pmtuDiscovery/packetizationLayerPMTUDMode",
            json!("unset"),
        ),
        (
            &[("k8s-client-qps", "20")],
            "1.19.6",
            "/k8sClientRateLimit/burst",
            json!(10),
        ),
        (
            &[("k8s-client-qps", "20")],
            "1.19.6",
            "/k8sClientRateLimit/qps",
            json!(20),
        ),
        (
            &[("mesh-auth-enabled", "false")],
            "1.15.9",
            "/authentication/enabled",
            json!(false),
        ),
        (
            &[("kube-proxy-replacement", "True")],
            "1.18.12",
            "/kubeProxyReplacement",
            json!("true"),
        ),
        (
            &[("routing-mode", "native")],
            "1.15.9",
            "/routingMode",
            json!("native"),
        ),
        (
            &[("tunnel", "geneve")],
            "1.15.9",
            "/tunnelProtocol",
            json!("geneve"),
        ),
        (
            &[("tunnel", "disabled")],
            "1.15.9",
            "/routingMode",
            json!("native"),
        ),
        (
            &[("identity-allocation-mode", "crd")],
            "1.17.18",
            "/identityAllocationMode",
            json!("crd"),
        ),
        (
            &[("enable-ipv4-masquerade", "False")],
            "1.18.12",
            "/enableIPv4Masquerade",
            json!(false),
        ),
        (
            &[("enable-bpf-masquerade", "true")],
            "1.15.9",
            "/bpf/masquerade",
            json!(true),
        ),
        (
            &[("enable-ip-masq-agent", "True")],
            "1.15.9",
            "/ipMasqAgent/enabled",
            json!(true),
        ),
        (
            &[
                ("enable-ipsec", "true"),
                ("ipsec-key-file", "/etc/ipsec/keys"),
            ],
            "1.16.19",
            "/encryption/ipsec/keyFile",
            json!("keys"),
        ),
        (
            &[
                ("enable-ipsec", "true"),
                ("ipsec-key-file", "/etc/ipsec/keys"),
            ],
            "1.16.19",
            "/encryption/type",
            json!("ipsec"),
        ),
        (
            &[("enable-wireguard", "true")],
            "1.17.18",
            "/encryption/type",
            json!("wireguard"),
        ),
        (
            &[("encrypt-node", "True")],
            "1.15.9",
            "/encryption/nodeEncryption",
            json!(true),
        ),
        (
            &[
                ("hubble-metrics-server", ":9965"),
                ("hubble-metrics", "dns drop\ntcp"),
            ],
            "1.15.9",
            "/hubble/metrics/enabled",
            json!(["dns", "drop", "tcp"]),
        ),
        (
            &[
                ("hubble-metrics-server", ":9091"),
                ("hubble-metrics", "dns"),
            ],
            "1.15.9",
            "/hubble/metrics/port",
            json!(9091),
        ),
        (
            &[("hubble-disable-tls", "false")],
            "1.15.9",
            "/hubble/tls/enabled",
            json!(true),
        ),
        (
            &[("hubble-disable-tls", "true")],
            "1.15.9",
            "/hubble/tls/enabled",
            json!(false),
        ),
        (
            &[("prometheus-serve-addr", ":9090")],
            "1.15.9",
            "/prometheus/port",
            json!(9090),
        ),
        (
            &[("operator-prometheus-serve-addr", ":6942")],
            "1.15.9",
            "/operator/prometheus/port",
            json!(6942),
        ),
        (
            &[("enable-l2-announcements", "True")],
            "1.15.9",
            "/l2announcements/enabled",
            json!(true),
        ),
        (
            &[("agent-health-port", "9876")],
            "1.15.9",
            "/healthPort",
            json!(9876),
        ),
        (&[("mtu", "1450")], "1.16.19", "/MTU", json!(1450)),
        (
            &[("enable-remote-node-identity", "True")],
            "1.15.9",
            "/remoteNodeIdentity",
            json!(true),
        ),
        // A protocol without a mode: 1.15/1.16 would write tunnel-protocol twice without routingMode.
        (
            &[("tunnel-protocol", "geneve")],
            "1.16.19",
            "/routingMode",
            json!("tunnel"),
        ),
        (
            &[("tunnel-protocol", "geneve")],
            "1.15.9",
            "/tunnelProtocol",
            json!("geneve"),
        ),
        // Chart 1.15 renders this key itself: a typed value, never extraConfig (a duplicate key).
        (
            &[("sidecar-istio-proxy-image", "cilium/istio_proxy")],
            "1.15.9",
            "/proxy/sidecarImageRegex",
            json!("cilium/istio_proxy"),
        ),
        (
            &[
                ("kube-proxy-replacement", "true"),
                (
                    "kube-proxy-replacement-healthz-bind-address",
                    "0.0.0.0:10256",
                ),
            ],
            "1.19.6",
            "/kubeProxyReplacementHealthzBindAddr",
            json!("0.0.0.0:10256"),
        ),
        (
            &[
                ("kube-proxy-replacement", "partial"),
                (
                    "kube-proxy-replacement-healthz-bind-address",
                    "0.0.0.0:10256",
                ),
            ],
            "1.17.5",
            "/kubeProxyReplacementHealthzBindAddr",
            json!("0.0.0.0:10256"),
        ),
        (
            &[("enable-node-port", "true")],
            "1.18.12",
            "/nodePort/enabled",
            json!(true),
        ),
        // Kept verbatim: unknown keys, YAML-1.1-ambiguous strings, values the chart cannot express.
        (
            &[("sidecar-istio-proxy-image", "cilium/istio_proxy")],
            "1.16.19",
            "/extraConfig/sidecar-istio-proxy-image",
            json!("cilium/istio_proxy"),
        ),
        // From 1.17.6 the chart renders the healthz address only with kube-proxy replacement on.
        (
            &[
                ("kube-proxy-replacement", "partial"),
                (
                    "kube-proxy-replacement-healthz-bind-address",
                    "0.0.0.0:10256",
                ),
            ],
            "1.17.6",
            "/extraConfig/kube-proxy-replacement-healthz-bind-address",
            json!("0.0.0.0:10256"),
        ),
        (
            &[("some-future-flag", "on")],
            "1.19.6",
            "/extraConfig/some-future-flag",
            json!("on"),
        ),
        (
            &[("prometheus-serve-addr", "10.0.0.1:9962")],
            "1.15.9",
            "/extraConfig/prometheus-serve-addr",
            json!("10.0.0.1:9962"),
        ),
        (
            &[(
                "write-cni-conf-when-ready",
                "/host/etc/cni/net.d/10-cilium.conflist",
            )],
            "1.15.9",
            "/extraConfig/write-cni-conf-when-ready",
            json!("/host/etc/cni/net.d/10-cilium.conflist"),
        ),
        (
            &[("kvstore", "etcd")],
            "1.15.9",
            "/extraConfig/kvstore",
            json!("etcd"),
        ),
    ];
    for (pairs, chart, pointer, want) in cases {
        let translation = run(pairs, &[], chart).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        let json = translation.values.to_json().expect("json");
        assert_eq!(
            json.pointer(pointer),
            Some(want),
            "{pairs:?} on {chart}: {json:#}"
        );
        let path = pointer.trim_start_matches('/').replace('/', ".");
        assert!(
            translation.values.provenance_of(&path).is_some(),
            "{path} has no provenance"
        );
    }
}

#[test]
fn every_live_key_is_mapped_or_carried() {
    // Keys that the chart renders from computed values are consumed only when equal.
    let pairs: &[(&str, &str)] = &[
        ("operator-api-serve-addr", "127.0.0.1:9234"),
        (
            "write-cni-conf-when-ready",
            "/host/etc/cni/net.d/05-cilium.conflist",
        ),
        ("enable-metrics", "true"),
        ("operator-prometheus-serve-addr", ":9963"),
    ];
    let json = run(pairs, &[], "1.15.9")
        .expect("translates")
        .values
        .to_json()
        .expect("json");
    assert_eq!(json.pointer("/extraConfig"), None, "{json:#}");
    let pairs: &[(&str, &str)] = &[
        ("operator-api-serve-addr", "0.0.0.0:9234"),
        ("enable-metrics", "true"),
    ];
    let json = run(pairs, &[], "1.15.9")
        .expect("translates")
        .values
        .to_json()
        .expect("json");
    assert_eq!(
        json.pointer("/extraConfig/operator-api-serve-addr"),
        Some(&json!("0.0.0.0:9234"))
    );
    // Operator metrics are off here, so the chart would not render enable-metrics: carried.
    assert_eq!(
        json.pointer("/extraConfig/enable-metrics"),
        Some(&json!("true"))
    );
    assert_eq!(
        json.pointer("/operator/prometheus/enabled"),
        Some(&json!(false))
    );
}

#[test]
fn kvstore_keeps_etcd_settings_and_mounts_the_certificates() {
    let etcd = "---\nendpoints:\n  - https://10.0.0.11:2379\nca-file: \"/etc/cilium/certs/ca_cert.crt\"\nkey-file: \"/etc/cilium/certs/key.pem\"\ncert-file: \"/etc/cilium/certs/cert.crt\"";
    let pairs: &[(&str, &str)] = &[
        ("identity-allocation-mode", "kvstore"),
        ("kvstore", "etcd"),
        (
            "kvstore-opt",
            r#"{"etcd.config": "/var/lib/etcd-config/etcd.config"}"#,
        ),
        ("etcd-config", etcd),
    ];
    for chart in ["1.15.9", "1.16.19", "1.17.18", "1.19.6"] {
        let translation = run(pairs, &[], chart).expect("translates");
        let json = translation.values.to_json().expect("json");
        let carried = json
            .pointer("/extraConfig/etcd-config")
            .and_then(Json::as_str)
            .expect("carried");
        let rewritten = version(chart).minor >= 17;
        assert_eq!(
            carried.contains("trusted-ca-file:"),
            rewritten,
            "{chart}: {carried}"
        );
        for pointer in ["/extraVolumeMounts", "/operator/extraVolumeMounts"] {
            let mounts = json
                .pointer(pointer)
                .and_then(Json::as_array)
                .expect("mounts");
            let paths: Vec<&str> = mounts
                .iter()
                .filter_map(|m| m["mountPath"].as_str())
                .collect();
            assert_eq!(
                paths,
                ["/var/lib/etcd-config", "/etc/cilium/certs"],
                "{chart} {pointer}"
            );
        }
        let volumes = json
            .pointer("/extraVolumes")
            .and_then(Json::as_array)
            .expect("volumes");
        assert_eq!(volumes[1]["hostPath"]["path"], json!("/etc/cilium/certs"));
        assert_eq!(
            volumes[0]["configMap"]["items"][0]["path"],
            json!("etcd.config")
        );
        assert!(
            translation
                .warnings
                .iter()
                .any(|w| w.kind == WarningKind::Advice && w.key == "identity-allocation-mode")
        );
    }
}

fn kinds(warnings: &[Warning]) -> Vec<(WarningKind, &str)> {
    warnings.iter().map(|w| (w.kind, w.key.as_str())).collect()
}

#[test]
fn versioned_keys_warn_when_the_target_chart_lost_them() {
    // (live, chart, expected (kind, key) warnings, pointer that must be absent or present)
    let cases: &[(Pairs, &str, Kinds)] = &[
        (&[("enable-remote-node-identity", "True")], "1.15.9", &[]),
        (
            &[("enable-remote-node-identity", "True")],
            "1.16.19",
            &[(WarningKind::Changed, "enable-remote-node-identity")],
        ),
        (
            &[("enable-remote-node-identity", "False")],
            "1.16.19",
            &[(WarningKind::NotCarried, "enable-remote-node-identity")],
        ),
        (
            &[("disable-cnp-status-updates", "True")],
            "1.15.9",
            &[(WarningKind::Changed, "disable-cnp-status-updates")],
        ),
        (
            &[("disable-cnp-status-updates", "False")],
            "1.15.9",
            &[(WarningKind::NotCarried, "disable-cnp-status-updates")],
        ),
        (
            &[("disable-cnp-status-updates", "True")],
            "1.17.18",
            &[(WarningKind::Changed, "disable-cnp-status-updates")],
        ),
        // 1.17.0-1.17.5 have the values but never render them.
        (
            &[("enable-host-port", "true")],
            "1.17.5",
            &[(WarningKind::NotCarried, "enable-host-port")],
        ),
        (
            &[("enable-external-ips", "true")],
            "1.17.0",
            &[(WarningKind::NotCarried, "enable-external-ips")],
        ),
        (&[("enable-external-ips", "true")], "1.16.19", &[]),
        (
            &[("enable-wireguard-userspace-fallback", "true")],
            "1.16.19",
            &[],
        ),
        (
            &[("enable-wireguard-userspace-fallback", "true")],
            "1.17.18",
            &[(
                WarningKind::NotCarried,
                "enable-wireguard-userspace-fallback",
            )],
        ),
        (
            &[("enable-node-port", "true")],
            "1.19.6",
            &[(WarningKind::NotCarried, "enable-node-port")],
        ),
        (
            &[
                ("enable-node-port", "true"),
                ("kube-proxy-replacement", "true"),
            ],
            "1.19.6",
            &[
                (WarningKind::Changed, "enable-node-port"),
                (WarningKind::Advice, "k8sServiceHost"),
            ],
        ),
        (
            &[("enable-external-ips", "false")],
            "1.17.6",
            &[(WarningKind::Changed, "enable-external-ips")],
        ),
        (&[("enable-host-port", "true")], "1.17.18", &[]),
        (
            &[("kube-proxy-replacement", "partial")],
            "1.15.9",
            &[(WarningKind::Changed, "kube-proxy-replacement")],
        ),
        (&[("kube-proxy-replacement", "disabled")], "1.15.9", &[]),
        (
            &[("kube-proxy-replacement", "disabled")],
            "1.16.19",
            &[(WarningKind::NotCarried, "kube-proxy-replacement")],
        ),
        (&[("cluster-name", "Home_Lab")], "1.15.9", &[]),
        (
            &[("cluster-name", "Home_Lab")],
            "1.16.19",
            &[(WarningKind::NotCarried, "cluster-name")],
        ),
        (
            &[("cluster-name", "default"), ("cluster-id", "3")],
            "1.18.12",
            &[(WarningKind::NotCarried, "cluster-id")],
        ),
        (
            &[("cluster-name", "default"), ("cluster-id", "3")],
            "1.16.19",
            &[(WarningKind::NotCarried, "cluster-id")],
        ),
        (
            &[("cluster-name", "default"), ("cluster-id", "3")],
            "1.15.9",
            &[],
        ),
        (
            &[
                ("routing-mode", "native"),
                ("enable-ipv4-masquerade", "true"),
            ],
            "1.18.12",
            &[(WarningKind::Advice, "ipv4-native-routing-cidr")],
        ),
        // An unset enableIPv4Masquerade (null from 1.18) does not trip the chart's check.
        (&[("routing-mode", "native")], "1.18.12", &[]),
        (
            &[
                ("routing-mode", "native"),
                ("enable-ipv4-masquerade", "true"),
                ("ipam", "eni"),
            ],
            "1.18.12",
            &[],
        ),
        (
            &[
                ("routing-mode", "native"),
                ("enable-ipv6", "true"),
                ("ipv4-native-routing-cidr", "10.0.0.0/8"),
            ],
            "1.19.6",
            &[(WarningKind::Advice, "ipv6-native-routing-cidr")],
        ),
        (
            &[
                ("routing-mode", "native"),
                ("ipv4-native-routing-cidr", "10.0.0.0/8"),
            ],
            "1.18.12",
            &[],
        ),
        (
            &[("tunnel", "vxlan")],
            "1.15.9",
            &[(WarningKind::Changed, "tunnel")],
        ),
        // A key the target agent no longer reads is not copied into extraConfig.
        (
            &[("arping-refresh-period", "1m")],
            "1.18.12",
            &[(WarningKind::NotCarried, "arping-refresh-period")],
        ),
        (
            &[("enable-svc-source-range-check", "false")],
            "1.19.6",
            &[(WarningKind::NotCarried, "enable-svc-source-range-check")],
        ),
        (
            &[("enable-svc-source-range-check", "false")],
            "1.18.12",
            &[(WarningKind::Advice, "cilium-config")],
        ),
        (&[("encrypt-interface", "eth0")], "1.19.6", &[]),
        (
            &[("encrypt-interface", "eth0")],
            "1.20.0",
            &[(WarningKind::NotCarried, "encrypt-interface")],
        ),
    ];
    for (pairs, chart, want) in cases {
        let translation = run(pairs, &[], chart).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        assert_eq!(kinds(&translation.warnings), *want, "{pairs:?} on {chart}");
        for warning in &translation.warnings {
            assert!(warning.location.contains("live.yaml"), "{warning}");
        }
    }
    // What 1.20 no longer reads is neither a value nor an extraConfig copy the agent would ignore.
    for (chart, written) in [("1.19.6", true), ("1.20.0", false)] {
        let translation = run(&[("encrypt-interface", "eth0")], &[], chart).expect("translates");
        let json = translation.values.to_json().expect("json");
        assert_eq!(
            json.pointer("/encryption/ipsec/interface").is_some(),
            written,
            "{chart}: {json}"
        );
        assert!(
            !json.to_string().contains("encrypt-interface"),
            "{chart}: carried in extraConfig: {json}"
        );
    }
}

#[test]
fn disagreements_name_both_values_and_both_places() {
    // (live, inventory, expected (key, live, inventory))
    type Expected<'a> = &'a [(&'a str, Option<&'a str>, Option<&'a str>)];
    let cases: &[(Pairs, Vars, Expected)] = &[
        // Same meaning, different spelling: no warning.
        (
            &[("debug", "false")],
            &[("cilium_debug", json!(false))],
            &[],
        ),
        (
            &[("kube-proxy-replacement", "partial")],
            &[("cilium_kube_proxy_replacement", json!("partial"))],
            &[],
        ),
        (
            &[("debug", "False")],
            &[("cilium_debug", json!(true))],
            &[("debug", Some("False"), Some("True"))],
        ),
        (
            &[("routing-mode", "tunnel"), ("tunnel-protocol", "vxlan")],
            &[("cilium_tunnel_mode", json!("geneve"))],
            &[("tunnel-protocol", Some("vxlan"), Some("geneve"))],
        ),
        (
            &[("cluster-name", "default")],
            &[("cilium_cluster_name", json!("homelab"))],
            &[("cluster-name", Some("default"), Some("homelab"))],
        ),
        (
            &[("cluster-pool-ipv4-cidr", "10.233.64.0/18")],
            &[
                ("cilium_ipam_mode", json!("cluster-pool")),
                ("kube_pods_subnet", json!("10.244.0.0/16")),
            ],
            &[
                (
                    "cluster-pool-ipv4-cidr",
                    Some("10.233.64.0/18"),
                    Some("10.244.0.0/16"),
                ),
                ("ipam", None, Some("cluster-pool")),
            ],
        ),
        // The inventory turns hubble off, the cluster runs it.
        (
            &[("enable-hubble", "true")],
            &[("cilium_enable_hubble", json!(false))],
            &[("enable-hubble", Some("true"), None)],
        ),
        // The inventory enables metrics the live config lacks.
        (
            &[("debug", "false")],
            &[("cilium_enable_prometheus", json!(true))],
            &[
                ("enable-metrics", None, Some("true")),
                ("operator-prometheus-serve-addr", None, Some(":9963")),
                ("prometheus-serve-addr", None, Some(":9962")),
            ],
        ),
    ];
    for (pairs, inventory, want) in cases {
        let translation =
            run(pairs, inventory, "1.15.9").unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
        let got: Vec<(&str, Option<&str>, Option<&str>)> = translation
            .warnings
            .iter()
            .filter(|w| w.kind == WarningKind::Disagreement)
            .map(|w| (w.key.as_str(), w.live.as_deref(), w.inventory.as_deref()))
            .collect();
        // The Kubespray template always renders a few hard-coded keys; only compare the rest.
        let got: Vec<_> = got
            .into_iter()
            .filter(|(k, _, _)| !HARD_CODED.contains(k))
            .collect();
        assert_eq!(got, *want, "{pairs:?} vs {inventory:?}");
        for warning in translation.warnings.iter().filter(|w| {
            w.kind == WarningKind::Disagreement && !HARD_CODED.contains(&w.key.as_str())
        }) {
            assert!(warning.location.contains("live.yaml"), "{warning}");
            assert!(warning.location.contains("k8s-net-cilium.yml"), "{warning}");
        }
        // The live value wins.
        for (key, value) in *pairs {
            let json = translation.values.to_json().expect("json");
            if let Some(Json::String(carried)) = json.pointer(&format!("/extraConfig/{key}")) {
                assert_eq!(carried, value);
            }
        }
    }
}

const HARD_CODED: &[&str] = &[
    "clean-cilium-state",
    "clean-cilium-bpf-state",
    "custom-cni-conf",
    "write-cni-conf-when-ready",
    "bpf-ct-global-tcp-max",
    "bpf-ct-global-any-max",
    "sidecar-istio-proxy-image",
];

#[test]
fn inventory_alone_follows_kubesprays_mapping() {
    let inventory: &[(&str, Json)] = &[
        ("cilium_enable_hubble", json!(true)),
        ("cilium_enable_hubble_metrics", json!("true")),
        ("cilium_hubble_metrics", json!(["dns", "drop"])),
        ("cilium_hubble_install", json!(true)),
        ("cilium_hubble_tls_generate", json!(false)),
        ("cilium_enable_hubble_ui", json!(false)),
        ("cilium_tunnel_mode", json!("disabled")),
        ("cilium_native_routing_cidr", json!("10.233.64.0/18")),
        ("cilium_kube_proxy_replacement", json!("strict")),
        (
            "kube_apiserver_global_endpoint",
            json!("https://localhost:6443"),
        ),
        ("cilium_operator_replicas", json!(1)),
        ("cilium_ip_masq_agent_enable", json!(true)),
        ("cilium_non_masquerade_cidrs", json!(["10.0.0.0/8"])),
        ("cilium_masq_link_local", json!(false)),
        (
            "cilium_config_extra_vars",
            json!({"bpf-nat-global-max": "1048576", "enable-session-affinity": "true"}),
        ),
        ("cilium_version", json!("v1.15.9")),
    ];
    let translation = run(&[], inventory, "1.16.19").expect("translates");
    let json = translation.values.to_json().expect("json");
    let expect: &[(&str, Json)] = &[
        ("/hubble/enabled", json!(true)),
        ("/hubble/metrics/enabled", json!(["dns", "drop"])),
        ("/hubble/metrics/port", json!(9965)),
        ("/hubble/tls/enabled", json!(false)),
        ("/hubble/relay/enabled", json!(true)),
        ("/hubble/ui/enabled", json!(false)),
        ("/routingMode", json!("native")),
        ("/ipv4NativeRoutingCIDR", json!("10.233.64.0/18")),
        ("/kubeProxyReplacement", json!("true")),
        ("/k8sServiceHost", json!("localhost")),
        ("/k8sServicePort", json!("6443")),
        ("/operator/replicas", json!(1)),
        ("/ipMasqAgent/enabled", json!(true)),
        (
            "/ipMasqAgent/config",
            json!({"nonMasqueradeCIDRs": ["10.0.0.0/8"], "masqLinkLocal": false}),
        ),
        ("/bpf/natMax", json!(1048576)),
        ("/extraConfig/enable-session-affinity", json!("true")),
        ("/bpf/ctTcpMax", json!(524288)),
        ("/upgradeCompatibility", json!("1.15")),
        ("/prometheus/enabled", json!(false)),
        ("/operator/prometheus/enabled", json!(false)),
    ];
    for (pointer, want) in expect {
        assert_eq!(json.pointer(pointer), Some(want), "{pointer} in {json:#}");
    }
    assert_eq!(json.pointer("/tunnelProtocol"), None);
    for warning in &translation.warnings {
        assert!(
            warning.live.is_none(),
            "no live config, so no live value: {warning}"
        );
    }
    assert!(
        translation
            .values
            .provenance_of("hubble.relay.enabled")
            .is_some_and(|p| p.to_string().contains("cilium_hubble_install"))
    );
}

#[test]
fn bad_input_names_the_file_the_key_and_the_fix() {
    let cases: Vec<(Result<Translation, Error>, &[&str])> = vec![
        (
            run(&[("bpf-ct-global-tcp-max", "lots")], &[], "1.15.9"),
            &["live.yaml", "bpf-ct-global-tcp-max", "lots", "whole number"],
        ),
        (
            run(&[("debug", "maybe")], &[], "1.15.9"),
            &["live.yaml", "`debug`", "true or false"],
        ),
        (
            run(&[("kube-proxy-replacement", "probe")], &[], "1.15.9"),
            &["live.yaml", "kube-proxy-replacement", "partial"],
        ),
        (
            run(&[("bpf-map-dynamic-size-ratio", "2.5")], &[], "1.15.9"),
            &["bpf-map-dynamic-size-ratio", "between 0.0 and 1.0"],
        ),
        (
            run(&[], &[("cilium_enable_hubble", json!("maybe"))], "1.15.9"),
            &["k8s-net-cilium.yml", "cilium_enable_hubble", "boolean"],
        ),
        (
            run(
                &[],
                &[
                    ("cilium_enable_hubble", json!(true)),
                    ("cilium_enable_hubble_metrics", json!(true)),
                    ("cilium_hubble_metrics", json!("dns")),
                ],
                "1.15.9",
            ),
            &["cilium_hubble_metrics", "list"],
        ),
        (
            run(
                &[],
                &[("cilium_debug", json!("{{ debug_all | bool }}"))],
                "1.15.9",
            ),
            &["cilium_debug", "Jinja"],
        ),
        (
            run(&[], &[("cilium_config_extra_vars", json!(["a"]))], "1.15.9"),
            &["cilium_config_extra_vars", "mapping"],
        ),
        (
            run(&[], &[("cilium_operator_replicas", json!("two"))], "1.15.9"),
            &["cilium_operator_replicas", "whole number"],
        ),
        (
            translate(&Sources {
                live: None,
                inventory: InventoryVars::new(),
                version: ChartVersion::KUBESPRAY_2_27,
            }),
            &["--live-config"],
        ),
    ];
    for (result, needles) in cases {
        let message = match result {
            Ok(_) => panic!("expected an error mentioning {needles:?}"),
            Err(e) => e.to_string(),
        };
        for needle in needles {
            assert!(
                message.contains(needle),
                "`{message}` should mention `{needle}`"
            );
        }
    }
    let message = ChartVersion::parse("1.21.0")
        .expect_err("unsupported")
        .to_string();
    assert!(
        message.contains("1.15 to 1.20") && message.contains("--cilium-version"),
        "{message}"
    );
}

/// Kubespray's v2.27.1 sample inventory with all role defaults renders the reference cilium-config
/// (kubespray.md §3.1: 3 etcd hosts, kube_pods_subnet 10.233.64.0/18).
#[test]
fn kubespray_view_of_the_v2_27_1_sample_matches_the_reference_rendering() {
    let Some(upstream) = upstream::Upstream::for_test(
        "kubespray_view_of_the_v2_27_1_sample_matches_the_reference_rendering",
    ) else {
        return;
    };
    let sample = upstream.kubespray_sample("v2.27.1");
    assert!(
        sample.is_dir(),
        "{} is missing; samples present: {:?}",
        sample.display(),
        upstream.kubespray_sample_tags()
    );
    let inventory = kubespray_config::Inventory::load(&sample).expect("sample loads");
    let variables = inventory
        .variables(kubespray_config::Era::Template)
        .expect("sample resolves");
    let mut vars = InventoryVars::new();
    for v in variables.iter() {
        vars.insert(
            v.name.clone(),
            InventoryVar::new(v.value.clone(), v.origin.to_string()),
        );
    }
    vars.insert(
        "etcd_access_addresses".to_owned(),
        InventoryVar::new(
            json!("https://10.0.0.11:2379,https://10.0.0.12:2379,https://10.0.0.13:2379"),
            "test",
        ),
    );
    let view = kubespray_config_view(&vars).expect("view");
    let got: BTreeMap<&str, &str> = view
        .keys
        .iter()
        .map(|(k, e)| (k.as_str(), e.value.as_str()))
        .collect();
    let want: BTreeMap<&str, &str> = [
        ("identity-allocation-mode", "kvstore"),
        ("etcd-config", "---\nendpoints:\n  - https://10.0.0.11:2379\n  - https://10.0.0.12:2379\n  - https://10.0.0.13:2379\nca-file: \"/etc/cilium/certs/ca_cert.crt\"\nkey-file: \"/etc/cilium/certs/key.pem\"\ncert-file: \"/etc/cilium/certs/cert.crt\""),
        ("kvstore", "etcd"),
        ("kvstore-opt", r#"{"etcd.config": "/var/lib/etcd-config/etcd.config"}"#),
        ("debug", "False"),
        ("enable-ipv4", "True"),
        ("enable-ipv6", "False"),
        ("clean-cilium-state", "false"),
        ("clean-cilium-bpf-state", "false"),
        ("custom-cni-conf", "false"),
        ("write-cni-conf-when-ready", "/host/etc/cni/net.d/05-cilium.conflist"),
        ("cni-exclusive", "True"),
        ("cni-log-file", "/var/run/cilium/cilium-cni.log"),
        ("monitor-aggregation", "medium"),
        ("bpf-ct-global-tcp-max", "524288"),
        ("bpf-ct-global-any-max", "262144"),
        ("preallocate-bpf-maps", "False"),
        ("sidecar-istio-proxy-image", "cilium/istio_proxy"),
        ("routing-mode", "tunnel"),
        ("tunnel-protocol", "vxlan"),
        ("bpf-lb-mode", "snat"),
        ("enable-l2-announcements", "False"),
        ("enable-host-firewall", "False"),
        ("policy-audit-mode", "False"),
        ("cluster-name", "default"),
        ("kube-proxy-replacement", "partial"),
        ("auto-direct-node-routes", "False"),
        ("operator-api-serve-addr", "127.0.0.1:9234"),
        ("enable-ip-masq-agent", "False"),
        ("ipam", "cluster-pool"),
        ("cluster-pool-ipv4-cidr", "10.233.64.0/18"),
        ("cluster-pool-ipv4-mask-size", "24"),
        ("agent-health-port", "9879"),
        ("cgroup-root", "/run/cilium/cgroupv2"),
        ("bpf-map-dynamic-size-ratio", "0.0025"),
        ("enable-ipv4-masquerade", "True"),
        ("enable-ipv6-masquerade", "True"),
        ("enable-bpf-masquerade", "False"),
        ("enable-host-legacy-routing", "True"),
        ("enable-remote-node-identity", "True"),
        ("enable-well-known-identities", "False"),
        ("monitor-aggregation-flags", "all"),
        ("enable-bpf-clock-probe", "True"),
        ("enable-bgp-control-plane", "False"),
        ("disable-cnp-status-updates", "True"),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
}

#[test]
fn only_a_running_1_15_agent_gets_its_defaults_pinned() {
    // (inventory cilium_version, target chart, pinned?)
    let cases: &[(Option<&str>, &str, bool)] = &[
        (Some("v1.15.9"), "1.17.18", true),
        (None, "1.17.18", true),
        // A 1.16 agent's defaults are not the 1.15 ones the values would pin (enable-tcx, ...).
        (Some("v1.16.5"), "1.17.18", false),
        (Some("v1.14.4"), "1.16.19", false),
    ];
    for &(running, chart, pinned) in cases {
        let inventory: Vec<(&str, Json)> = running
            .map(|v| vec![("cilium_version", json!(v))])
            .unwrap_or_default();
        let translation = run(&[("debug", "false")], &inventory, chart)
            .unwrap_or_else(|e| panic!("{running:?} -> {chart}: {e}"));
        let json = translation.values.to_json().expect("json");
        assert_eq!(
            json.pointer("/k8sClientRateLimit/qps").is_some(),
            pinned,
            "{running:?} -> {chart}: {json:#}"
        );
        let advised = translation
            .warnings
            .iter()
            .any(|w| w.key == "cilium_version" && w.message.contains("not 1.15"));
        assert_eq!(advised, !pinned, "{running:?} -> {chart}");
    }
}

/// Keys Kubespray's template writes only behind a switch, which every chart writes from its own
/// default: a running 1.15 agent's default is pinned, and only where the chart would render it.
#[test]
fn switched_keys_the_chart_defaults_differently_are_pinned() {
    // (live config, values path, expected value (None: left to the chart), pinned by the tool)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<Json>, bool);
    let cases: &[Case] = &[
        // Hubble off: Kubespray renders no enable-hubble, the charts default hubble.enabled true.
        (
            &[("debug", "false")],
            "hubble.enabled",
            Some(json!(false)),
            true,
        ),
        (
            &[("enable-hubble", "true")],
            "hubble.enabled",
            Some(json!(true)),
            false,
        ),
        // BGP on: the charts write bgp-secrets-namespace kube-system, Kubespray none.
        (
            &[("enable-bgp-control-plane", "True")],
            "bgpControlPlane.secretsNamespace.name",
            Some(json!("")),
            true,
        ),
        (
            &[("enable-bgp-control-plane", "False")],
            "bgpControlPlane.secretsNamespace.name",
            None,
            false,
        ),
        (
            &[
                ("enable-bgp-control-plane", "true"),
                ("bgp-secrets-namespace", "bgp"),
            ],
            "bgpControlPlane.secretsNamespace.name",
            Some(json!("bgp")),
            false,
        ),
    ];
    for (pairs, path, want, pinned) in cases {
        let translation = run(pairs, &[], "1.15.9").expect("translates");
        let json = translation.values.to_json().expect("json");
        let pointer = format!("/{}", path.replace('.', "/"));
        assert_eq!(json.pointer(&pointer), want.as_ref(), "{pairs:?}: {json:#}");
        let provenance = translation
            .values
            .provenance_of(path)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert_eq!(
            provenance.contains("pinned"),
            *pinned,
            "{pairs:?}: {path}: {provenance}"
        );
    }
}

/// Kubespray without `cilium_hubble_install` runs Hubble's listener with TLS on and no certificate
/// files, which no chart can write: the translation says so (the gate reports the keys).
#[test]
fn hubble_without_certificates_is_named_as_not_carried() {
    let on = [
        ("enable-hubble", "true"),
        ("hubble-listen-address", ":4244"),
    ];
    let translation = run(&on, &[], "1.15.9").expect("translates");
    let warned = translation.warnings.iter().any(|w| {
        w.kind == WarningKind::NotCarried
            && w.key == "hubble-disable-tls"
            && w.message.contains("no certificate files")
    });
    assert!(warned, "{:#?}", translation.warnings);
    let with_tls = [
        ("enable-hubble", "true"),
        ("hubble-listen-address", ":4244"),
        ("hubble-disable-tls", "false"),
    ];
    let translation = run(&with_tls, &[], "1.15.9").expect("translates");
    assert!(
        !translation
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::NotCarried),
        "{:#?}",
        translation.warnings
    );
}

#[test]
fn template_era_workload_settings_map_to_the_chart_values_that_render_them() {
    let settings: &[(&str, Json)] = &[
        ("cilium_mtu", json!(1400)),
        ("cilium_agent_custom_args", json!("--log-opt=format=json")),
        (
            "cilium_operator_custom_args",
            json!(["--log-opt=format=json"]),
        ),
        (
            "cilium_agent_extra_env_vars",
            json!([{"name": "GODEBUG", "value": "x"}]),
        ),
        (
            "cilium_agent_extra_volume_mounts",
            json!([{"name": "cilium-config-path", "mountPath": "/cfg", "readOnly": true}]),
        ),
        (
            "cilium_agent_extra_volumes",
            json!([{"name": "never-rendered", "emptyDir": {}}]),
        ),
    ];
    let with = |version: &str| {
        let mut inventory = settings.to_vec();
        inventory.push(("cilium_version", json!(version)));
        run(&[], &inventory, "1.15.9").expect("translates")
    };
    let template = with("v1.15.9");
    let json = template.values.to_json().expect("json");
    assert_eq!(
        json["extraArgs"],
        json!(["--mtu=1400", "--log-opt=format=json"])
    );
    assert_eq!(
        json["operator"]["extraArgs"],
        json!(["--log-opt=format=json"])
    );
    assert_eq!(json["extraEnv"], json!([{"name": "GODEBUG", "value": "x"}]));
    assert_eq!(json["MTU"], Json::Null, "the MTU stays the agent's flag");
    // A mount of Kubespray's own config volume brings that volume along; the extra volumes
    // Kubespray never rendered do not come.
    assert_eq!(
        json["extraVolumes"],
        json!([{"name": "cilium-config-path", "configMap": {"name": "cilium-config"}}])
    );
    assert!(
        template
            .warnings
            .iter()
            .any(|w| w.key == "cilium_agent_extra_volumes" && w.message.starts_with("not carried")),
        "{:#?}",
        template.warnings
    );
    let origin = template
        .values
        .provenance_of("extraArgs")
        .expect("provenance")
        .to_string();
    assert!(
        origin.contains("cilium_mtu") && origin.contains("cilium_agent_custom_args"),
        "{origin}"
    );

    // The cilium-cli era passes them through its own values file: nothing is taken from here.
    let cli = with("1.17.7").values.to_json().expect("json");
    for key in ["extraArgs", "extraEnv", "extraVolumes", "extraVolumeMounts"] {
        assert_eq!(cli.get(key), None, "{key} in {cli:#}");
    }

    // Malformed items name the variable, where it was set, and what is expected.
    let bad = run(
        &[],
        &[("cilium_agent_extra_env_vars", json!([{"value": "x"}]))],
        "1.15.9",
    )
    .expect_err("an env var without a name");
    let text = bad.to_string();
    assert!(
        text.contains("group_vars/k8s_cluster/k8s-net-cilium.yml")
            && text.contains("cilium_agent_extra_env_vars")
            && text.contains("each with name"),
        "{text}"
    );
    let jinja = run(
        &[],
        &[("cilium_agent_custom_args", json!(["--mtu={{ mtu }}"]))],
        "1.15.9",
    )
    .expect_err("an unevaluated flag");
    assert!(jinja.to_string().contains("Jinja"), "{jinja}");
}

#[test]
fn hubble_tls_keeps_the_relays_server_tls_and_pins_the_certificate_issuer() {
    let hubble = |tls: bool, version: &str| {
        run(
            &[
                ("enable-hubble", "true"),
                ("hubble-listen-address", ":4244"),
                ("hubble-disable-tls", if tls { "false" } else { "true" }),
            ],
            &[
                ("cilium_enable_hubble", json!(true)),
                ("cilium_hubble_install", json!(true)),
                ("cilium_hubble_tls_generate", json!(tls)),
                ("cilium_version", json!(version)),
            ],
            "1.15.9",
        )
        .expect("translates")
    };
    let on = hubble(true, "v1.15.9");
    let json = on.values.to_json().expect("json");
    assert_eq!(json["hubble"]["relay"]["tls"]["server"]["enabled"], true);
    assert_eq!(
        json["hubble"]["tls"]["auto"],
        json!({"enabled": true, "method": "helm"})
    );
    assert!(
        on.values
            .provenance_of("hubble.tls.auto.method")
            .is_some_and(|p| p.to_string().contains("not cronJob")),
        "the choice is explained"
    );
    assert!(
        on.warnings
            .iter()
            .any(|w| w.message.contains("ACT after the hand-over")),
        "{:#?}",
        on.warnings
    );
    // TLS off: the relay serves plain gRPC, as Kubespray's did; no issuer is pinned.
    let off = hubble(false, "v1.15.9").values.to_json().expect("json");
    assert_eq!(off["hubble"]["relay"].get("tls"), None, "{off:#}");
    assert_eq!(off["hubble"]["tls"].get("auto"), None, "{off:#}");
    // The cilium-cli era's relay never served TLS (Kubespray's values do not ask for it).
    let cli = hubble(true, "1.17.7").values.to_json().expect("json");
    assert_eq!(cli["hubble"]["relay"].get("tls"), None, "{cli:#}");
}

#[test]
fn the_mtu_alone_is_one_flag_from_one_variable() {
    let translation = run(
        &[],
        &[
            ("cilium_mtu", json!("9000")),
            ("cilium_agent_custom_args", json!([])),
            ("cilium_version", json!("v1.15.9")),
        ],
        "1.15.9",
    )
    .expect("translates");
    let json = translation.values.to_json().expect("json");
    assert_eq!(json["extraArgs"], json!(["--mtu=9000"]));
    let origin = translation
        .values
        .provenance_of("extraArgs")
        .expect("provenance")
        .to_string();
    assert!(
        origin.contains("cilium_mtu") && !origin.contains("cilium_agent_custom_args"),
        "{origin}"
    );
    // Kubespray's default (an empty MTU) writes no flag.
    let default = run(&[], &[("cilium_mtu", json!(""))], "1.15.9").expect("translates");
    assert_eq!(
        default.values.to_json().expect("json").get("extraArgs"),
        None
    );
}
