//! The gate's equivalence rules, as a table.

use std::collections::BTreeMap;

use cilium_values::{ChartVersion, DifferenceKind, LiveConfig, agent_defaults, compare_config};

fn config(pairs: &[(&str, &str)], source: &str) -> LiveConfig {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    LiveConfig::from_map(data, source)
}

type Row<'a> = (&'a str, DifferenceKind, bool);
type Pairs<'a> = &'a [(&'a str, &'a str)];

#[test]
fn equivalence_rules() {
    use DifferenceKind::{AddedByRender, MissingFromRender, ValueDiffers};
    // (live, rendered, chart, expected differences (key, kind, changes behaviour))
    let cases: &[(Pairs, Pairs, &str, &[Row])] = &[
        // Booleans compare case-insensitively; other values do not.
        (&[("debug", "False")], &[("debug", "false")], "1.15.9", &[]),
        (
            &[("enable-ipv4", "TRUE")],
            &[("enable-ipv4", "true")],
            "1.19.6",
            &[],
        ),
        (
            &[("ipam", "Cluster-Pool")],
            &[("ipam", "cluster-pool")],
            "1.15.9",
            &[("ipam", ValueDiffers, true)],
        ),
        (
            &[("debug", "False")],
            &[("debug", "true")],
            "1.15.9",
            &[("debug", ValueDiffers, true)],
        ),
        // Numbers and space-separated lists written differently.
        (
            &[("bpf-map-dynamic-size-ratio", "0.0025")],
            &[("bpf-map-dynamic-size-ratio", "2.5e-3")],
            "1.15.9",
            &[],
        ),
        (
            &[("hubble-metrics", "dns drop\ntcp")],
            &[("hubble-metrics", "dns drop tcp")],
            "1.15.9",
            &[],
        ),
        (
            &[("hubble-metrics", "dns drop tcp")],
            &[("hubble-metrics", "dns tcp")],
            "1.15.9",
            &[("hubble-metrics", ValueDiffers, true)],
        ),
        (
            &[("bpf-ct-global-tcp-max", "524288")],
            &[("bpf-ct-global-tcp-max", "262144")],
            "1.15.9",
            &[("bpf-ct-global-tcp-max", ValueDiffers, true)],
        ),
        // Structured values that parse to the same document.
        (
            &[(
                "etcd-config",
                "---\nendpoints:\n  - https://a:2379\nca-file: \"/c/ca.crt\"",
            )],
            &[(
                "etcd-config",
                "endpoints: [\"https://a:2379\"]\nca-file: /c/ca.crt\n",
            )],
            "1.15.9",
            &[],
        ),
        (
            &[("kvstore-opt", r#"{"etcd.config": "/a"}"#)],
            &[("kvstore-opt", r#"{"etcd.config": "/b"}"#)],
            "1.15.9",
            &[("kvstore-opt", ValueDiffers, true)],
        ),
        // kube-proxy replacement: partial equals false on 1.15; later charts only know true/false.
        (
            &[("kube-proxy-replacement", "partial")],
            &[("kube-proxy-replacement", "false")],
            "1.15.9",
            &[],
        ),
        (
            &[("kube-proxy-replacement", "partial")],
            &[("kube-proxy-replacement", "false")],
            "1.16.19",
            &[("kube-proxy-replacement", ValueDiffers, false)],
        ),
        (
            &[("kube-proxy-replacement", "strict")],
            &[("kube-proxy-replacement", "true")],
            "1.15.9",
            &[],
        ),
        (
            &[("kube-proxy-replacement", "partial")],
            &[("kube-proxy-replacement", "true")],
            "1.15.9",
            &[("kube-proxy-replacement", ValueDiffers, true)],
        ),
        // Absent from the render: fine only where the agent default equals the live value.
        (&[("agent-health-port", "9879")], &[], "1.15.9", &[]),
        (
            &[("agent-health-port", "9876")],
            &[],
            "1.15.9",
            &[("agent-health-port", MissingFromRender, true)],
        ),
        (&[("enable-l2-announcements", "False")], &[], "1.15.9", &[]),
        (
            &[("enable-l2-announcements", "True")],
            &[],
            "1.15.9",
            &[("enable-l2-announcements", MissingFromRender, true)],
        ),
        (
            &[("bpf-ct-global-tcp-max", "524288")],
            &[],
            "1.15.9",
            &[("bpf-ct-global-tcp-max", MissingFromRender, true)],
        ),
        (
            &[("some-unknown-key", "x")],
            &[],
            "1.15.9",
            &[("some-unknown-key", MissingFromRender, true)],
        ),
        // Keys a later agent dropped: same behaviour only if the live value is what it hard-wires.
        (
            &[("enable-remote-node-identity", "True")],
            &[],
            "1.16.19",
            &[("enable-remote-node-identity", MissingFromRender, false)],
        ),
        (
            &[("enable-remote-node-identity", "False")],
            &[],
            "1.16.19",
            &[("enable-remote-node-identity", MissingFromRender, true)],
        ),
        (
            &[("enable-remote-node-identity", "False")],
            &[],
            "1.15.9",
            &[("enable-remote-node-identity", MissingFromRender, true)],
        ),
        (
            &[("disable-cnp-status-updates", "True")],
            &[],
            "1.17.18",
            &[("disable-cnp-status-updates", MissingFromRender, false)],
        ),
        // Added by the render: fine where it equals the agent default the live agent used.
        (&[], &[("bpf-lb-map-max", "65536")], "1.15.9", &[]),
        (
            &[],
            &[("bpf-lb-map-max", "131072")],
            "1.15.9",
            &[("bpf-lb-map-max", AddedByRender, true)],
        ),
        (
            &[],
            &[("kube-proxy-replacement-healthz-bind-address", "")],
            "1.15.9",
            &[],
        ),
        (
            &[],
            &[("some-unknown-key", "/host/proc")],
            "1.15.9",
            &[("some-unknown-key", AddedByRender, true)],
        ),
        // The agent reads only /proc/sys under procfs: the host's sysctls in either path.
        (
            &[],
            &[("procfs", "/host/proc")],
            "1.15.9",
            &[("procfs", AddedByRender, false)],
        ),
        (
            &[],
            &[("procfs", "/var/proc")],
            "1.15.9",
            &[("procfs", AddedByRender, true)],
        ),
        // Keys read only with a switch on: a difference is one of form while it is off.
        (
            &[],
            &[("vtep-mask", "")],
            "1.15.9",
            &[("vtep-mask", AddedByRender, false)],
        ),
        (
            &[("enable-vtep", "true")],
            &[("enable-vtep", "true"), ("vtep-mask", "")],
            "1.15.9",
            &[("vtep-mask", AddedByRender, true)],
        ),
        (&[], &[("vtep-mask", "255.255.255.0")], "1.15.9", &[]),
        // Durations written differently, and 1.19's duration for an interval 1.15 read in seconds.
        (&[], &[("cilium-endpoint-gc-interval", "5m")], "1.15.9", &[]),
        (
            &[],
            &[("cilium-endpoint-gc-interval", "10m")],
            "1.15.9",
            &[("cilium-endpoint-gc-interval", AddedByRender, true)],
        ),
        (
            &[("unmanaged-pod-watcher-interval", "15")],
            &[("unmanaged-pod-watcher-interval", "15s")],
            "1.19.6",
            &[],
        ),
        (
            &[("unmanaged-pod-watcher-interval", "15")],
            &[("unmanaged-pod-watcher-interval", "15m")],
            "1.19.6",
            &[("unmanaged-pod-watcher-interval", ValueDiffers, true)],
        ),
        // An empty bpf-root means /sys/fs/bpf.
        (
            &[],
            &[("bpf-root", "/sys/fs/bpf")],
            "1.15.9",
            &[("bpf-root", AddedByRender, false)],
        ),
        (
            &[],
            &[("bpf-root", "/run/cilium/bpffs")],
            "1.15.9",
            &[("bpf-root", AddedByRender, true)],
        ),
        // The chart's default client rate limits are not the agent's (client-go's 5/10 until 1.17).
        (
            &[],
            &[("k8s-client-qps", "5"), ("k8s-client-burst", "10")],
            "1.15.9",
            &[],
        ),
        (
            &[],
            &[("k8s-client-qps", "10"), ("k8s-client-burst", "20")],
            "1.16.19",
            &[
                ("k8s-client-burst", AddedByRender, true),
                ("k8s-client-qps", AddedByRender, true),
            ],
        ),
        (
            &[],
            &[("k8s-client-qps", "10"), ("k8s-client-burst", "20")],
            "1.17.18",
            &[],
        ),
    ];
    for (live, rendered, chart, want) in cases {
        let version = ChartVersion::parse(chart).expect("version");
        let got: Vec<Row> = compare_config(
            &config(live, "live.yaml"),
            &config(rendered, "render"),
            version,
        )
        .iter()
        .map(|d| (leak(&d.key), d.kind, d.changes_behaviour))
        .collect();
        assert_eq!(
            got, *want,
            "live {live:?} vs rendered {rendered:?} on {chart}"
        );
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn differences_show_both_values() {
    let version = ChartVersion::KUBESPRAY_2_27;
    let differences = compare_config(
        &config(&[("bpf-ct-global-tcp-max", "524288")], "live.yaml"),
        &config(&[], "render"),
        version,
    );
    let text = differences[0].to_string();
    assert!(
        text.contains("bpf-ct-global-tcp-max")
            && text.contains("\"524288\"")
            && text.contains("(absent)"),
        "{text}"
    );
    assert_eq!(differences[0].live.as_deref(), Some("524288"));
    assert_eq!(differences[0].rendered, None);
}

#[test]
fn the_defaults_table_is_sorted_and_unique() {
    let keys: Vec<&str> = agent_defaults().map(|d| d.key).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(keys, sorted);
    assert!(keys.contains(&"agent-health-port"));
}
