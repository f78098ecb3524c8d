//! `check` and the `enable` plan on recorded cluster states (`tests/data/states/*.json`), the
//! Kubespray guards on real inventories, and the `--install-crds` file errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cilium_gateway::bundle::{BundleVersion, Channel, minimal_bundle, minimal_crd};
use cilium_gateway::enable::read_crd_files;
use cilium_gateway::{ClusterState, Error, InventoryFacts, Report, Status, check, plan};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    about: String,
    state: ClusterState,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    failed: bool,
    items: BTreeMap<String, Status>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    fix_contains: BTreeMap<String, String>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn load_case(name: &str) -> Case {
    let path = data_dir().join("states").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn case_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data_dir().join("states"))
        .unwrap_or_else(|e| panic!("tests/data/states: {e}"))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_recorded_state_gets_the_expected_verdicts() {
    let names = case_names();
    assert!(names.len() >= 6, "recorded states: {names:?}");
    let mut problems = Vec::new();
    for name in &names {
        let case = load_case(name);
        let report = check(&case.state, None);
        if report.failed() != case.expect.failed {
            problems.push(format!(
                "{name} ({}): failed = {}, expected {}",
                case.about,
                report.failed(),
                case.expect.failed
            ));
        }
        for (item, status) in &case.expect.items {
            match report.item(item) {
                Some(found) if found.status == *status => {}
                Some(found) => problems.push(format!(
                    "{name}: {item} is {:?} ({}), expected {status:?}",
                    found.status, found.detail
                )),
                None => problems.push(format!("{name}: no item {item}")),
            }
        }
        for item in &case.expect.absent {
            if report.item(item).is_some() {
                problems.push(format!("{name}: item {item} should not be there"));
            }
        }
        for (item, words) in &case.expect.fix_contains {
            let fix = report
                .item(item)
                .and_then(|i| i.fix.clone())
                .unwrap_or_default();
            if !fix.contains(words.as_str()) {
                problems.push(format!("{name}: fix of {item} lacks {words:?}: {fix:?}"));
            }
        }
        // Every warn and fail says what to do.
        for item in &report.items {
            if item.status != Status::Pass && item.fix.as_deref().is_none_or(str::is_empty) {
                problems.push(format!("{name}: {} has no fix", item.name));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_fresh_cluster_table_is_stable() {
    let report = check(&load_case("fresh-1.15-no-crds.json").state, None);
    let table = report.table();
    // insta compares without trailing whitespace; this keeps the comparison exact.
    assert_eq!(table, format!("{}\n", table.trim_end()));
    insta::assert_snapshot!("fresh-1.15-no-crds.table", table);
    // JSON output carries the same verdicts.
    let json = serde_json::to_value(&report).unwrap_or_default();
    let back: Report = serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, report);
}

fn write_yaml_stream(dir: &Path, name: &str, objects: &[Value]) -> PathBuf {
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_saphyr::to_string(object).unwrap_or_else(|e| panic!("{e}")));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[test]
fn enable_plan_needs_the_right_bundle_and_fixes_values_itself() {
    let case = load_case("fresh-1.15-no-crds.json");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    // Without CRDs: refused, naming each missing CRD and where to pass the bundle.
    let Err(Error::Refused { items }) = plan(&case.state, None, Vec::new()) else {
        panic!("a plan without the CRDs must be refused");
    };
    assert_eq!(items.len(), 6, "{items:#?}");
    assert!(items[0].contains("--install-crds FILE"), "{}", items[0]);

    // The v1.2.0 standard bundle does not serve what 1.15 reads (GRPCRoute v1alpha2, TLSRoute);
    // being newer is only a warning, the served versions decide.
    let wrong = write_yaml_stream(
        dir.path(),
        "v1.2.0-standard.yaml",
        &minimal_bundle(&BundleVersion::new(1, 2, 0), Channel::Standard),
    );
    let crds = read_crd_files(&[wrong]).unwrap_or_else(|e| panic!("{e}"));
    let Err(Error::Refused { items }) = plan(&case.state, None, crds) else {
        panic!("the v1.2.0 standard bundle must be refused for 1.15");
    };
    let named: Vec<&str> = items.iter().filter_map(|i| i.split(':').next()).collect();
    assert_eq!(
        named,
        [
            "CRD grpcroutes.gateway.networking.k8s.io",
            "CRD tlsroutes.gateway.networking.k8s.io",
        ],
        "{items:#?}"
    );

    // The v1.0.0 experimental bundle: planned, with NodePort switched on by values.
    let right = write_yaml_stream(
        dir.path(),
        "v1.0.0-experimental.yaml",
        &minimal_bundle(&BundleVersion::new(1, 0, 0), Channel::Experimental),
    );
    let crds = read_crd_files(&[right]).unwrap_or_else(|e| panic!("{e}"));
    let planned = plan(&case.state, None, crds).unwrap_or_else(|e| panic!("{e}"));
    // What still fails is what the values change fixes.
    let left: Vec<&str> = planned.report.failures().map(|i| i.name.as_str()).collect();
    assert_eq!(
        left,
        ["kube-proxy replacement / NodePort"],
        "{}",
        planned.report.table()
    );
    let changes: Vec<(&str, &Value)> = planned
        .changes
        .iter()
        .map(|c| (c.path.as_str(), &c.after))
        .collect();
    assert_eq!(
        changes,
        [
            ("gatewayAPI.enabled", &Value::Bool(true)),
            ("nodePort.enabled", &Value::Bool(true))
        ]
    );
    // The release's own values stay.
    assert_eq!(planned.values["kubeProxyReplacement"], "partial");
    assert_eq!(planned.crd_names.len(), 6);
}

#[test]
fn enable_refuses_what_only_the_operator_can_fix() {
    let case = load_case("no-kpr-on-1.18.json");
    let Err(Error::Refused { items }) = plan(&case.state, None, Vec::new()) else {
        panic!("1.18 without kube-proxy replacement must be refused");
    };
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(
        items[0].starts_with("kube-proxy replacement / NodePort:"),
        "{}",
        items[0]
    );
    let message = Error::Refused { items }.to_string();
    assert!(message.contains("nothing was changed"), "{message}");
}

#[test]
fn crd_files_without_gateway_crds_are_named_with_the_fix() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config_map = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" }
    });
    let cilium_crd = serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "ciliumnodes.cilium.io" },
        "spec": { "group": "cilium.io", "names": { "plural": "ciliumnodes" }, "versions": [] }
    });
    let other = write_yaml_stream(dir.path(), "other.yaml", &[config_map, cilium_crd]);
    let error = read_crd_files(std::slice::from_ref(&other)).expect_err("no Gateway API CRD");
    let text = error.to_string();
    assert!(text.contains(&other.display().to_string()), "{text}");
    assert!(text.contains("standard-install.yaml"), "{text}");

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: [unclosed\n").unwrap_or_else(|e| panic!("{e}"));
    let text = read_crd_files(&[broken]).expect_err("not YAML").to_string();
    assert!(text.contains("broken.yaml: not YAML"), "{text}");

    let missing = read_crd_files(&[dir.path().join("absent.yaml")]).expect_err("no file");
    assert!(missing.to_string().contains("absent.yaml"), "{missing}");

    // A single upstream-style CRD file is enough on its own.
    let tls = minimal_crd(
        "tlsroutes",
        &BundleVersion::new(1, 2, 0),
        Channel::Experimental,
    )
    .unwrap_or_default();
    let single = write_yaml_stream(dir.path(), "tlsroutes.yaml", &[tls]);
    assert_eq!(read_crd_files(&[single]).map(|c| c.len()).ok(), Some(1));
}

fn write_inventory(dir: &Path, cluster_vars: &str) {
    let files = [
        (
            "inventory.ini",
            "[kube_control_plane]\ncp1 ansible_host=10.0.0.1\n[kube_node]\nw1 ansible_host=10.0.0.2\n[etcd:children]\nkube_control_plane\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n",
        ),
        ("group_vars/k8s_cluster/k8s-cluster.yml", cluster_vars),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn guard_statuses(state: &ClusterState, inventory: &InventoryFacts) -> Vec<(String, Status)> {
    check(state, Some(inventory))
        .items
        .into_iter()
        .filter(|i| i.name.starts_with("kubespray "))
        .map(|i| (i.name, i.status))
        .collect()
}

fn guards(plugin: Status, owner: Status, proxy: Status) -> Vec<(String, Status)> {
    vec![
        ("kubespray kube_network_plugin".to_owned(), plugin),
        ("kubespray kube_owner".to_owned(), owner),
        ("kubespray kube_proxy_remove".to_owned(), proxy),
    ]
}

#[test]
fn kubespray_guards_fail_on_kubesprays_own_sample() {
    let Some(upstream) = upstream::Upstream::for_test(
        "cilium-gateway::recorded::kubespray_guards_fail_on_kubesprays_own_sample",
    ) else {
        return;
    };
    let replaced = load_case("ready-1.17.json").state;
    // Kubespray's own sample (v2.28.0): calico and kube_owner: kube.
    let sample = upstream.kubespray_sample("v2.28.0");
    let facts = InventoryFacts::load(&sample).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        guard_statuses(&replaced, &facts),
        guards(Status::Fail, Status::Fail, Status::Fail)
    );
    let owner = check(&replaced, Some(&facts));
    let fix = owner
        .item("kubespray kube_owner")
        .and_then(|i| i.fix.clone())
        .unwrap_or_default();
    assert!(fix.contains("kube_owner: root"), "{fix}");
    let detail = owner
        .item("kubespray kube_owner")
        .map(|i| i.detail.clone())
        .unwrap_or_default();
    assert!(
        detail.contains("k8s-cluster.yml"),
        "the origin is named: {detail}"
    );
}

#[test]
fn kubespray_guards_follow_the_inventory() {
    let replaced = load_case("ready-1.17.json").state;
    let kept = load_case("fresh-1.15-no-crds.json").state;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_inventory(
        dir.path(),
        "kube_network_plugin: cni\nkube_owner: root\nkube_proxy_remove: true\n",
    );
    let handed_over = InventoryFacts::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        guard_statuses(&replaced, &handed_over),
        guards(Status::Pass, Status::Pass, Status::Pass)
    );
    // kube_proxy_remove with kube-proxy still needed would leave Services without a proxy.
    assert_eq!(
        guard_statuses(&kept, &handed_over),
        guards(Status::Pass, Status::Pass, Status::Fail)
    );

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    write_inventory(dir.path(), "kube_network_plugin: cni\nkube_owner: root\n");
    let without_remove = InventoryFacts::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        guard_statuses(&replaced, &without_remove),
        guards(Status::Pass, Status::Pass, Status::Fail)
    );
    assert_eq!(
        guard_statuses(&kept, &without_remove),
        guards(Status::Pass, Status::Pass, Status::Pass)
    );

    let error = InventoryFacts::load(&dir.path().join("nowhere")).expect_err("no inventory");
    assert!(error.to_string().contains("nowhere"), "{error}");
}
