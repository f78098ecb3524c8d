//! The written values: YAML quoting, provenance on every value, and properties over arbitrary input.

use std::collections::BTreeMap;

use cilium_values::{
    ChartVersion, InventoryVars, LiveConfig, Sources, Values, compare_config, translate,
};
use proptest::prelude::*;
use serde_json::Value as Json;

fn values_from(
    pairs: &[(String, String)],
    chart: ChartVersion,
) -> Result<Values, cilium_values::Error> {
    let data: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let live = LiveConfig::from_map(data, "live.yaml");
    translate(&Sources {
        live: Some(live),
        inventory: InventoryVars::new(),
        version: chart,
    })
    .map(|t| t.values)
}

/// Every value in the output has a provenance entry: at its own path, or (for chart-shaped
/// objects and lists written as one value) at an enclosing path.
fn assert_every_value_has_provenance(values: &Values) {
    fn walk(values: &Values, json: &Json, path: &str) {
        if !path.is_empty() && values.provenance_of(path).is_some() {
            return;
        }
        match json {
            Json::Object(map) if !map.is_empty() => {
                for (key, inner) in map {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    walk(values, inner, &child);
                }
            }
            _ => panic!("{path} has no provenance"),
        }
    }
    walk(values, &values.to_json().expect("json"), "");
}

#[test]
fn ambiguous_strings_stay_strings() {
    let tricky = [
        "true", "False", "on", "off", "yes", "no", "y", "~", "null", "0755", "1e3", "0x1F", ".inf",
        "-", ": x", "#x", "a\nb", "\"q\"",
    ];
    let mut pairs: Vec<(String, String)> = tricky
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("future-key-{i}"), (*v).to_owned()))
        .collect();
    pairs.push(("on".to_owned(), "key named on".to_owned()));
    pairs.push(("cluster-name".to_owned(), "0755".to_owned()));
    let values = values_from(&pairs, ChartVersion::KUBESPRAY_2_27).expect("translates");
    let yaml = values.to_yaml_with_provenance().expect("yaml");
    let parsed: Json = serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(parsed, values.to_json().expect("json"));
    for (i, v) in tricky.iter().enumerate() {
        assert_eq!(
            parsed["extraConfig"][format!("future-key-{i}")],
            Json::String((*v).to_owned())
        );
    }
    assert_eq!(parsed["cluster"]["name"], Json::String("0755".to_owned()));
    assert_eq!(
        parsed["extraConfig"]["on"],
        Json::String("key named on".to_owned())
    );
    assert_every_value_has_provenance(&values);
}

#[test]
fn comments_say_where_each_value_came_from() {
    let pairs = vec![
        ("bpf-ct-global-tcp-max".to_owned(), "524288".to_owned()),
        (
            "sidecar-istio-proxy-image".to_owned(),
            "cilium/istio_proxy".to_owned(),
        ),
        ("vlan-bpf-bypass".to_owned(), "0".to_owned()),
    ];
    let values = values_from(&pairs, ChartVersion::KUBESPRAY_2_27).expect("translates");
    let yaml = values.to_yaml_with_provenance().expect("yaml");
    assert!(
        yaml.contains("ctTcpMax: 524288  # live cilium-config bpf-ct-global-tcp-max (live.yaml)"),
        "{yaml}"
    );
    assert!(yaml.contains("sidecarImageRegex: \"cilium/istio_proxy\"  # live cilium-config sidecar-istio-proxy-image (live.yaml)"), "{yaml}");
    assert!(
        yaml.contains("vlan-bpf-bypass: \"0\"  # live cilium-config vlan-bpf-bypass (live.yaml)"),
        "{yaml}"
    );
    assert!(
        yaml.starts_with("# Helm values for the Cilium chart 1.15.9"),
        "{yaml}"
    );
}

const KNOWN_KEYS: &[&str] = &[
    "debug",
    "enable-ipv4",
    "enable-ipv6",
    "kube-proxy-replacement",
    "routing-mode",
    "tunnel-protocol",
    "tunnel",
    "bpf-ct-global-tcp-max",
    "bpf-map-dynamic-size-ratio",
    "cluster-pool-ipv4-cidr",
    "cluster-pool-ipv4-mask-size",
    "cluster-id",
    "cluster-name",
    "hubble-metrics",
    "hubble-metrics-server",
    "hubble-disable-tls",
    "hubble-tls-cert-file",
    "prometheus-serve-addr",
    "operator-prometheus-serve-addr",
    "enable-metrics",
    "etcd-config",
    "kvstore",
    "kvstore-opt",
    "identity-allocation-mode",
    "ipsec-key-file",
    "enable-ipsec",
    "enable-wireguard",
    "enable-remote-node-identity",
    "disable-cnp-status-updates",
    "enable-node-port",
    "operator-api-serve-addr",
    "write-cni-conf-when-ready",
    "mtu",
    "agent-health-port",
    "enable-hubble",
];

fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_owned()),
        Just("False".to_owned()),
        Just("partial".to_owned()),
        Just(":9962".to_owned()),
        Just("524288".to_owned()),
        Just("0.5".to_owned()),
        Just("/etc/ipsec/keys".to_owned()),
        Just("---\nendpoints:\n  - https://a:2379\nca-file: /x/ca.crt".to_owned()),
        Just(r#"{"etcd.config": "/var/lib/etcd-config/etcd.config"}"#.to_owned()),
        "[ -~\n]{0,24}",
        any::<String>(),
    ]
}

fn live_map() -> impl Strategy<Value = Vec<(String, String)>> {
    let key = prop_oneof![
        proptest::sample::select(KNOWN_KEYS).prop_map(str::to_owned),
        "[a-z][a-z0-9-]{0,20}",
        any::<String>()
    ];
    proptest::collection::vec((key, value_strategy()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Translation never panics; when it succeeds, the YAML parses back to the same values, every
    /// value has a provenance, and every carried key keeps the live value.
    #[test]
    fn translation_never_panics(pairs in live_map(), minor in 15u32..=19) {
        let chart = ChartVersion::new(1, minor, 6).expect("supported");
        if let Ok(values) = values_from(&pairs, chart) {
            let yaml = values.to_yaml_with_provenance().expect("yaml");
            let parsed: Json = serde_saphyr::from_str(&yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
            prop_assert_eq!(parsed, values.to_json().expect("json"));
            assert_every_value_has_provenance(&values);
            let live: BTreeMap<String, String> = pairs.iter().cloned().collect();
            for (key, carried) in &values.chart.extra_config {
                if key != "etcd-config" {
                    prop_assert_eq!(Some(carried), live.get(key));
                }
            }
        }
    }

    /// A config compared with itself has no difference.
    #[test]
    fn comparison_is_reflexive(pairs in live_map(), minor in 15u32..=19) {
        let live = LiveConfig::from_map(pairs.into_iter().collect(), "live.yaml");
        let chart = ChartVersion::new(1, minor, 0).expect("supported");
        prop_assert!(compare_config(&live, &live, chart).is_empty());
    }

    /// Parsing arbitrary text as a ConfigMap never panics.
    #[test]
    fn configmap_parsing_never_panics(text in "[ -~\n]{0,200}") {
        let _ = LiveConfig::from_configmap_yaml(&text, "x.yaml");
    }
}
