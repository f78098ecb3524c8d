//! Acceptance: on the bundled homelab example, the values rendered by the real `helm` binary with
//! the look-alike chart reproduce the live `cilium-config` (no behaviour-changing difference).

use std::path::{Path, PathBuf};
use std::process::Command;

use cilium_values::{
    ChartVersion, ConfigDifference, DifferenceKind, InventoryVar, InventoryVars, LiveConfig,
    Sources, Values, compare_config, translate,
};

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `HELM`, else `$CILIUM_MIGRATE_TOOLS/helm`, else `target/tools/bin/helm`. Missing helm fails the
/// test: a silent pass would prove nothing.
fn helm() -> PathBuf {
    let (path, from) = if let Some(path) = std::env::var_os("HELM") {
        (PathBuf::from(path), "HELM")
    } else if let Some(dir) = std::env::var_os("CILIUM_MIGRATE_TOOLS") {
        (PathBuf::from(dir).join("helm"), "CILIUM_MIGRATE_TOOLS")
    } else {
        (
            project_root().join("target/tools/bin/helm"),
            "the default tools directory",
        )
    };
    assert!(
        path.is_file(),
        "no helm binary at {} (from {from}); build it with `cargo xtask testbed build`, or point HELM at a helm binary",
        path.display()
    );
    path
}

fn homelab() -> PathBuf {
    project_root().join("examples/homelab")
}

fn live_homelab() -> LiveConfig {
    LiveConfig::read(homelab().join("cilium-config.yaml"))
        .expect("the example's live cilium-config parses")
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

/// `helm template` the look-alike chart with a values file, and read back its cilium-config.
fn render(values_file_text: &str, name: &str) -> LiveConfig {
    let text = helm_template(
        values_file_text,
        name,
        &["--show-only", "templates/cilium-configmap.yaml"],
    );
    LiveConfig::from_configmap_yaml(&text, "helm template output")
        .expect("the render holds cilium-config")
}

/// Run `helm template` on the look-alike chart; the rendered manifests.
fn helm_template(values_file_text: &str, name: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let values_path = dir.path().join(name);
    std::fs::write(&values_path, values_file_text).expect("write values");
    let output = Command::new(helm())
        .arg("template")
        .arg("cilium")
        .arg(project_root().join("tests/charts/cilium"))
        .args(["--namespace", "kube-system"])
        .args(extra)
        .arg("-f")
        .arg(&values_path)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"))
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm template failed: {}\nvalues:\n{values_file_text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

fn behaviour_changes(differences: &[ConfigDifference]) -> Vec<String> {
    differences
        .iter()
        .filter(|d| d.changes_behaviour)
        .map(ToString::to_string)
        .collect()
}

fn translate_homelab(with_live: bool) -> (Values, Vec<String>) {
    let sources = Sources {
        live: with_live.then(live_homelab),
        inventory: homelab_inventory(),
        version: ChartVersion::KUBESPRAY_2_27,
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
fn homelab_values_reproduce_the_live_config() {
    let (values, warnings) = translate_homelab(true);
    let json = values.to_json().expect("values serialise");
    let rendered = render(
        &serde_json::to_string_pretty(&json).expect("json"),
        "values.json",
    );
    let live = live_homelab();
    let differences = compare_config(&live, &rendered, values.version);
    assert_eq!(
        behaviour_changes(&differences),
        Vec::<String>::new(),
        "warnings: {warnings:#?}"
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
        "etcd-config",
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
    ] {
        let (l, r) = (live.get(key), rendered.get(key));
        assert!(r.is_some(), "{key} missing from the render");
        assert!(
            l.map(str::to_ascii_lowercase) == r.map(str::to_ascii_lowercase)
                || l.map(|s| s.split_whitespace().collect::<Vec<_>>())
                    == r.map(|s| s.split_whitespace().collect()),
            "{key}: live {l:?} rendered {r:?}"
        );
    }
    // The only difference of form is kube-proxy replacement's legacy spelling, equal on 1.15.
    assert!(
        differences.iter().all(|d| !d.changes_behaviour),
        "{differences:#?}"
    );
}

#[test]
fn the_commented_yaml_is_what_helm_reads() {
    let (values, _) = translate_homelab(true);
    let yaml = values.to_yaml_with_provenance().expect("yaml");
    let from_yaml = render(&yaml, "values.yaml");
    let from_json = render(
        &serde_json::to_string(&values.to_json().expect("json")).expect("json"),
        "values.json",
    );
    assert_eq!(
        from_yaml,
        LiveConfig::from_map(from_json.data().clone(), "helm template output")
    );
    let reparsed: serde_json::Value =
        serde_saphyr::from_str(&yaml).expect("the commented YAML parses");
    assert_eq!(reparsed, values.to_json().expect("json"));
}

#[test]
fn inventory_alone_renders_what_kubespray_rendered() {
    let (values, warnings) = translate_homelab(false);
    let rendered = render(
        &serde_json::to_string(&values.to_json().expect("json")).expect("json"),
        "values.json",
    );
    let differences = compare_config(&live_homelab(), &rendered, values.version);
    assert_eq!(
        behaviour_changes(&differences),
        Vec::<String>::new(),
        "warnings: {warnings:#?}"
    );
}

#[test]
fn the_gate_catches_a_dropped_map_size() {
    let (mut values, _) = translate_homelab(true);
    values.chart.bpf.ct_tcp_max = None;
    values.chart.bpf.host_legacy_routing = None;
    let rendered = render(
        &serde_json::to_string(&values.to_json().expect("json")).expect("json"),
        "values.json",
    );
    let differences = compare_config(&live_homelab(), &rendered, values.version);
    let changed: Vec<(&str, DifferenceKind)> = differences
        .iter()
        .filter(|d| d.changes_behaviour)
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
        ]
    );
}

#[test]
fn the_whole_chart_renders_with_the_values() {
    let (values, _) = translate_homelab(true);
    let yaml = values.to_yaml_with_provenance().expect("yaml");
    let manifests = helm_template(&yaml, "values.yaml", &[]);
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
            "{object} missing from {kinds:?}"
        );
    }
}
