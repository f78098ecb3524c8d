//! Acceptance: on the bundled homelab example, the values rendered by the real `helm` binaries
//! (Helm 3 and Helm 4) with the look-alike chart reproduce the live `cilium-config` (no
//! behaviour-changing difference), for every chart minor the tool writes values for.
//!
//! The look-alike chart ships as 1.15.9; its templates branch on `.Chart.Version`, so each target
//! renders a copy whose Chart.yaml says that version. Its cilium-config template follows each
//! minor's key logic for the keys this crate maps (see the crate README, "Verified per chart").

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cilium_values::{
    ChartVersion, ConfigDifference, DifferenceKind, InventoryVar, InventoryVars, LiveConfig,
    Sources, Values, compare_config_across, translate,
};
use serde_json::{Value as Json, json};

/// The targets: the chart Kubespray v2.27 installed and the latest patch of each later minor.
const TARGETS: &[&str] = &["1.15.9", "1.16.19", "1.17.18", "1.18.12", "1.19.6"];

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The helm binaries to render with: `HELM` alone when set, else `helm3` and `helm4` from
/// `$CILIUM_MIGRATE_TOOLS` or `target/tools/bin`. A missing binary fails the test: a silent pass
/// would prove nothing.
fn helms() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("HELM") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "HELM={} is not a file", path.display());
        return vec![path];
    }
    let dir = std::env::var_os("CILIUM_MIGRATE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target/tools/bin"));
    ["helm3", "helm4"]
        .iter()
        .map(|name| {
            let path = dir.join(name);
            assert!(
                path.is_file(),
                "no {name} at {}; build it with `cargo xtask testbed build`, or point HELM at a helm binary",
                path.display()
            );
            path
        })
        .collect()
}

fn homelab() -> PathBuf {
    project_root().join("examples/homelab")
}

fn live_homelab() -> LiveConfig {
    LiveConfig::read(homelab().join("cilium-config.yaml"))
        .expect("the example's live cilium-config parses")
}

/// The homelab live config with some keys set (`Some`) or removed (`None`).
fn live_homelab_with(edits: &[(&str, Option<&str>)]) -> LiveConfig {
    let mut data = live_homelab().data().clone();
    for (key, value) in edits {
        match value {
            Some(v) => data.insert((*key).to_owned(), (*v).to_owned()),
            None => data.remove(*key),
        };
    }
    LiveConfig::from_map(data, "live cilium-config")
}

/// The homelab inventory resolved by the kubespray-config crate (the same glue as `cargo xtask values`).
fn homelab_inventory() -> InventoryVars {
    let dir = homelab();
    let inventory = kubespray_config::Inventory::load(&dir).expect("the example inventory loads");
    let era = inventory
        .detect_era()
        .require(&dir)
        .expect("the example's era is detectable");
    let variables = inventory
        .variables(era)
        .expect("the example's variables resolve");
    let mut vars = InventoryVars::new();
    for variable in variables.iter() {
        vars.insert(
            variable.name.clone(),
            InventoryVar::new(variable.value.clone(), variable.origin.to_string()),
        );
    }
    let etcd: Vec<String> = inventory
        .group_hosts("etcd")
        .iter()
        .map(|h| format!("https://{}:2379", h.access_address()))
        .collect();
    vars.insert(
        "etcd_access_addresses".to_owned(),
        InventoryVar::new(
            serde_json::Value::String(etcd.join(",")),
            "inventory.ini: hosts of group etcd",
        ),
    );
    vars
}

/// The look-alike chart rendering as `version`: the shipped chart for 1.15.9, else a copy whose
/// Chart.yaml names `version`.
struct Chart {
    version: ChartVersion,
    dir: PathBuf,
    _copy: Option<tempfile::TempDir>,
}

fn chart(version: &str) -> Chart {
    let shipped = project_root().join("tests/charts/cilium");
    let parsed = ChartVersion::parse(version).expect("a supported version");
    if parsed == ChartVersion::KUBESPRAY_2_27 {
        return Chart {
            version: parsed,
            dir: shipped,
            _copy: None,
        };
    }
    let copy = tempfile::tempdir().expect("temp dir");
    let dir = copy.path().join("cilium");
    copy_tree(&shipped, &dir);
    let chart_yaml = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&chart_yaml).expect("Chart.yaml");
    let text: String = text
        .lines()
        .map(|line| {
            if line.starts_with("version:") {
                format!("version: {version}\n")
            } else if line.starts_with("appVersion:") {
                format!("appVersion: {version}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert!(text.contains(&format!("\nversion: {version}\n")), "{text}");
    std::fs::write(&chart_yaml, text).expect("write Chart.yaml");
    Chart {
        version: parsed,
        dir,
        _copy: Some(copy),
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read chart dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Run `helm template` on a chart with a values file.
fn helm_template(helm: &Path, chart: &Chart, values_text: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let values_path = dir.path().join("values.yaml");
    std::fs::write(&values_path, values_text).expect("write values");
    Command::new(helm)
        .arg("template")
        .arg("cilium")
        .arg(&chart.dir)
        .args(["--namespace", "kube-system"])
        .args(extra)
        .arg("-f")
        .arg(&values_path)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"))
        .output()
        .expect("helm runs")
}

fn rendered_text(helm: &Path, chart: &Chart, values_text: &str, extra: &[&str]) -> String {
    let output = helm_template(helm, chart, values_text, extra);
    assert!(
        output.status.success(),
        "{} template (chart {}) failed: {}\nvalues:\n{values_text}",
        helm.display(),
        chart.version,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// The cilium-config a values text renders to.
fn render(helm: &Path, chart: &Chart, values_text: &str) -> LiveConfig {
    let text = rendered_text(
        helm,
        chart,
        values_text,
        &["--show-only", "templates/cilium-configmap.yaml"],
    );
    LiveConfig::from_configmap_yaml(&text, "helm template output")
        .expect("the render holds cilium-config (and no key twice)")
}

fn json_text(values: &Values) -> String {
    serde_json::to_string_pretty(&values.to_json().expect("values serialise")).expect("json")
}

/// The gate as `migrate` runs it: the homelab's live agent is 1.15.9 (Kubespray v2.27).
fn gate(live: &LiveConfig, rendered: &LiveConfig, version: ChartVersion) -> Vec<ConfigDifference> {
    compare_config_across(live, ChartVersion::KUBESPRAY_2_27, rendered, version)
}

/// The behaviour-changing differences.
fn unexpected_changes(differences: &[ConfigDifference]) -> Vec<&ConfigDifference> {
    differences.iter().filter(|d| d.changes_behaviour).collect()
}

fn texts(differences: &[&ConfigDifference]) -> Vec<String> {
    differences.iter().map(ToString::to_string).collect()
}

fn translate_homelab(version: ChartVersion, with_live: bool) -> (Values, Vec<String>) {
    let sources = Sources {
        live: with_live.then(live_homelab),
        inventory: homelab_inventory(),
        version,
    };
    let translation = translate(&sources).expect("the example translates");
    (
        translation.values,
        translation
            .warnings
            .iter()
            .map(ToString::to_string)
            .collect(),
    )
}

#[test]
fn homelab_values_reproduce_the_live_config_on_every_target() {
    let live = live_homelab();
    for target in TARGETS {
        let chart = chart(target);
        let (values, warnings) = translate_homelab(chart.version, true);
        let json = values.to_json().expect("values serialise");
        // Values a target's validate.yaml refuses are never written.
        assert_eq!(json.get("enableCnpStatusUpdates"), None, "{target}");
        if !chart.version.has_legacy_1_15_values() {
            assert_eq!(json.get("remoteNodeIdentity"), None, "{target}");
        }
        for helm in helms() {
            let rendered = render(&helm, &chart, &json_text(&values));
            let differences = gate(&live, &rendered, chart.version);
            assert_eq!(
                texts(&unexpected_changes(&differences)),
                Vec::<String>::new(),
                "{target} with {}: warnings {warnings:#?}",
                helm.display()
            );
            // The settings that change behaviour when dropped are present with the live values.
            for key in [
                "bpf-ct-global-tcp-max",
                "bpf-ct-global-any-max",
                "bpf-policy-map-max",
                "enable-host-legacy-routing",
                "routing-mode",
                "tunnel-protocol",
                "identity-allocation-mode",
                "kvstore",
                "kvstore-opt",
                "cluster-name",
                "cluster-pool-ipv4-cidr",
                "cluster-pool-ipv4-mask-size",
                "enable-ipv4-masquerade",
                "hubble-metrics",
                "hubble-disable-tls",
                "prometheus-serve-addr",
                "operator-prometheus-serve-addr",
                "hubble-metrics-server",
                "sidecar-istio-proxy-image",
            ] {
                let (l, r) = (live.get(key), rendered.get(key));
                assert!(r.is_some(), "{target}: {key} missing from the render");
                assert!(
                    l.map(str::to_ascii_lowercase) == r.map(str::to_ascii_lowercase)
                        || l.map(|s| s.split_whitespace().collect::<Vec<_>>())
                            == r.map(|s| s.split_whitespace().collect()),
                    "{target}: {key}: live {l:?} rendered {r:?}"
                );
            }
            // The render quirks of each minor, as the version facts state them.
            let v = chart.version;
            let expect_key = |key: &str, present: bool| {
                assert_eq!(
                    rendered.get(key).is_some(),
                    present,
                    "{target}: {key} in the render: {:?}",
                    rendered.get(key)
                );
            };
            expect_key(
                "enable-bgp-control-plane",
                v.renders_bgp_control_plane_when_off(),
            );
            expect_key("enable-remote-node-identity", v.has_legacy_1_15_values());
            expect_key("disable-cnp-status-updates", false);
            assert_eq!(
                rendered.get("kube-proxy-replacement"),
                Some("false"),
                "{target}"
            );
            // On every target every difference is one of form only.
            assert!(
                differences.iter().all(|d| !d.changes_behaviour),
                "{target}: {differences:#?}"
            );
        }
    }
}

#[test]
fn etcd_config_is_renamed_not_lost() {
    let live = live_homelab();
    let live_etcd = live.get("etcd-config").expect("the example runs kvstore");
    for target in TARGETS {
        let chart = chart(target);
        let (values, _) = translate_homelab(chart.version, true);
        for helm in helms() {
            let rendered = render(&helm, &chart, &json_text(&values));
            let etcd = rendered.get("etcd-config").expect("etcd-config rendered");
            let want = if chart.version.minor >= 17 {
                live_etcd.replace("\nca-file:", "\ntrusted-ca-file:")
            } else {
                live_etcd.to_owned()
            };
            assert_eq!(etcd.trim(), want.trim(), "{target}");
            let differences = gate(&live, &rendered, chart.version);
            let unexpected = texts(&unexpected_changes(&differences));
            assert_eq!(unexpected, Vec::<String>::new(), "{target}");
        }
    }
}

#[test]
fn the_commented_yaml_is_what_helm_reads() {
    for target in TARGETS {
        let chart = chart(target);
        let (values, _) = translate_homelab(chart.version, true);
        let yaml = values.to_yaml_with_provenance().expect("yaml");
        for helm in helms() {
            let from_yaml = render(&helm, &chart, &yaml);
            let from_json = render(&helm, &chart, &json_text(&values));
            assert_eq!(
                from_yaml,
                LiveConfig::from_map(from_json.data().clone(), "helm template output"),
                "{target}"
            );
        }
        let reparsed: serde_json::Value =
            serde_saphyr::from_str(&yaml).expect("the commented YAML parses");
        assert_eq!(reparsed, values.to_json().expect("json"), "{target}");
    }
}

#[test]
fn inventory_alone_renders_what_kubespray_rendered() {
    for target in TARGETS {
        let chart = chart(target);
        let (values, warnings) = translate_homelab(chart.version, false);
        for helm in helms() {
            let rendered = render(&helm, &chart, &json_text(&values));
            let differences = gate(&live_homelab(), &rendered, values.version);
            assert_eq!(
                texts(&unexpected_changes(&differences)),
                Vec::<String>::new(),
                "{target}: warnings: {warnings:#?}"
            );
        }
    }
}

#[test]
fn the_gate_catches_a_dropped_map_size_on_every_target() {
    for target in TARGETS {
        let chart = chart(target);
        let (mut values, _) = translate_homelab(chart.version, true);
        values.chart.bpf.ct_tcp_max = None;
        values.chart.bpf.host_legacy_routing = None;
        for helm in helms() {
            let rendered = render(&helm, &chart, &json_text(&values));
            let differences = gate(&live_homelab(), &rendered, values.version);
            let changed: Vec<(&str, DifferenceKind)> = unexpected_changes(&differences)
                .iter()
                .map(|d| (d.key.as_str(), d.kind))
                .collect();
            assert_eq!(
                changed,
                vec![
                    ("bpf-ct-global-tcp-max", DifferenceKind::MissingFromRender),
                    (
                        "enable-host-legacy-routing",
                        DifferenceKind::MissingFromRender
                    ),
                ],
                "{target}"
            );
        }
    }
}

/// What a negative control must end in.
enum Expect {
    /// helm refuses to render, with this text in its error.
    Refused(&'static str),
    /// The render succeeds and the gate reports exactly these keys as behaviour changes.
    GateFlags(&'static [&'static str]),
}

/// Merge `patch` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(base), Json::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Json::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

#[test]
fn each_minor_refuses_or_flags_what_it_lost() {
    type Edits<'a> = &'a [(&'a str, Option<&'a str>)];
    // (target, what, values written on top of the homelab values, live edits, expectation)
    let cases: Vec<(&str, &str, Json, Edits, Expect)> = vec![
        (
            "1.15.9",
            "enableCnpStatusUpdates is refused since 1.15",
            json!({"enableCnpStatusUpdates": true}),
            &[],
            Expect::Refused("enableCnpStatusUpdates"),
        ),
        (
            "1.15.9",
            "a dropped CT size is caught",
            json!({"bpf": {"ctAnyMax": null}}),
            &[],
            Expect::GateFlags(&["bpf-ct-global-any-max"]),
        ),
        (
            "1.16.19",
            "remoteNodeIdentity is refused from 1.16",
            json!({"remoteNodeIdentity": true}),
            &[],
            Expect::Refused("remoteNodeIdentity"),
        ),
        (
            "1.16.19",
            "the legacy kube-proxy replacement spelling is refused from 1.16",
            json!({"kubeProxyReplacement": "partial"}),
            &[],
            Expect::Refused("kubeProxyReplacement"),
        ),
        (
            "1.16.19",
            "the schema refuses a string mask size",
            json!({"ipam": {"operator": {"clusterPoolIPv4MaskSize": "24"}}}),
            &[],
            Expect::Refused("clusterPoolIPv4MaskSize"),
        ),
        (
            "1.16.19",
            "the legacy IPsec key file value is refused from 1.16",
            json!({"encryption": {"keyFile": "keys"}}),
            &[],
            Expect::Refused("encryption.keyFile"),
        ),
        (
            "1.17.18",
            "the wireguard userspace fallback written anyway renders nothing",
            json!({"encryption": {"enabled": true, "type": "wireguard", "wireguard": {"userspaceFallback": true}}}),
            &[
                ("enable-wireguard", Some("true")),
                ("enable-wireguard-userspace-fallback", Some("true")),
            ],
            Expect::GateFlags(&["enable-wireguard-userspace-fallback"]),
        ),
        (
            "1.17.18",
            "a cluster name 1.17 refuses",
            json!({"cluster": {"name": "Home_Lab"}, "upgradeCompatibility": "1.15"}),
            &[],
            Expect::Refused("cluster name"),
        ),
        (
            "1.18.12",
            "hostPort.enabled written anyway renders nothing",
            json!({"hostPort": {"enabled": true}}),
            &[("enable-host-port", Some("true"))],
            Expect::GateFlags(&["enable-host-port"]),
        ),
        (
            "1.18.12",
            "native routing with masquerading needs a native-routing CIDR",
            json!({"routingMode": "native", "enableIPv4Masquerade": true}),
            &[],
            Expect::Refused("ipv4NativeRoutingCIDR"),
        ),
        (
            "1.19.6",
            "nodePort.enabled written anyway renders nothing",
            json!({"nodePort": {"enabled": true}}),
            &[("enable-node-port", Some("true"))],
            Expect::GateFlags(&["enable-node-port"]),
        ),
        (
            "1.19.6",
            "a dropped policy map size is caught",
            json!({"bpf": {"policyMapMax": 16384}}),
            &[],
            Expect::GateFlags(&["bpf-policy-map-max"]),
        ),
    ];
    // Every minor has a control.
    for target in TARGETS {
        assert!(
            cases.iter().any(|(t, ..)| t == target),
            "no negative control for {target}"
        );
    }
    for (target, what, patch, live_edits, expect) in cases {
        let chart = chart(target);
        let (values, _) = translate_homelab(chart.version, true);
        let mut json = values.to_json().expect("json");
        merge(&mut json, &patch);
        let text = serde_json::to_string_pretty(&json).expect("json");
        let live = live_homelab_with(live_edits);
        for helm in helms() {
            let output = helm_template(
                &helm,
                &chart,
                &text,
                &["--show-only", "templates/cilium-configmap.yaml"],
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            match &expect {
                Expect::Refused(needle) => {
                    assert!(
                        !output.status.success(),
                        "{target}: {what}: helm rendered it"
                    );
                    assert!(
                        stderr.contains(needle),
                        "{target}: {what}: {needle:?} not in {stderr}"
                    );
                }
                Expect::GateFlags(keys) => {
                    assert!(output.status.success(), "{target}: {what}: {stderr}");
                    let rendered = LiveConfig::from_configmap_yaml(
                        &String::from_utf8_lossy(&output.stdout),
                        "helm template output",
                    )
                    .expect("the render holds cilium-config");
                    let differences = gate(&live, &rendered, chart.version);
                    let mut flagged: Vec<&str> = unexpected_changes(&differences)
                        .iter()
                        .map(|d| d.key.as_str())
                        .collect();
                    flagged.sort_unstable();
                    assert_eq!(flagged, *keys, "{target}: {what}");
                }
            }
        }
    }
}

#[test]
fn the_whole_chart_renders_with_the_values() {
    for target in TARGETS {
        let chart = chart(target);
        let (values, _) = translate_homelab(chart.version, true);
        let yaml = values.to_yaml_with_provenance().expect("yaml");
        for helm in helms() {
            let manifests = rendered_text(&helm, &chart, &yaml, &[]);
            let documents: Vec<serde_json::Value> =
                serde_saphyr::from_multiple(&manifests).expect("helm output parses");
            let kinds: Vec<String> = documents
                .iter()
                .filter_map(|d| {
                    Some(format!(
                        "{}/{}",
                        d.get("kind")?.as_str()?,
                        d.get("metadata")?.get("name")?.as_str()?
                    ))
                })
                .collect();
            for object in [
                "ConfigMap/cilium-config",
                "DaemonSet/cilium",
                "Deployment/cilium-operator",
            ] {
                assert!(
                    kinds.iter().any(|k| k == object),
                    "{target}: {object} missing from {kinds:?}"
                );
            }
        }
    }
}
