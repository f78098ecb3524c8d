//! What the plan tests share: the testbed's helm binaries, a start rendered from a released chart
//! (no cluster: after a hand-over or a cilium-cli install the live objects are that render), and
//! Kubespray v2.28.1's cilium-cli values.

// Each test binary uses a subset of the helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use cilium_upgrade::ChartArchive;
use cilium_upgrade::plan::{Start, config_and_workloads, object_names, render};
use serde_json::{Value as Json, json};

/// Where `cargo xtask testbed build` puts helm (or `CILIUM_MIGRATE_TOOLS`).
pub(crate) fn tools_dir() -> PathBuf {
    match std::env::var_os("CILIUM_MIGRATE_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin"),
    }
}

/// The path of `name` (`helm3`, `helm4`) among the tools; fails the test when it is missing.
pub(crate) fn helm_path(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask testbed build` (or set CILIUM_MIGRATE_TOOLS)",
        path.display()
    );
    path
}

/// Helm 3, which the plans are rendered with.
pub(crate) fn helm() -> helm::Helm {
    helm::Helm::locate(Some(&helm_path("helm3"))).unwrap()
}

/// The start: `chart` rendered with `values` as revision `revision`, as the cluster runs it.
pub(crate) fn start(
    helm: &helm::Helm,
    chart: &ChartArchive,
    values: Json,
    revision: u32,
    scratch: &Path,
) -> Start {
    let manifest = render(helm, chart, &values, None, scratch).unwrap();
    let (config, workloads) = config_and_workloads(&manifest, &chart.path).unwrap();
    Start {
        cluster: None,
        release: "cilium".into(),
        namespace: "kube-system".into(),
        revision,
        version: chart.version.clone(),
        values,
        config,
        workloads,
        objects: object_names(&manifest),
        gateway_api_crds: Vec::new(),
    }
}

/// Kubespray v2.28.1's values for its cilium-cli install, with the API server address that
/// cilium-cli resolves `auto` to from the kubeconfig before it installs.
pub(crate) fn kubespray_2_28_values(upstream: &upstream::Upstream) -> Json {
    let case = upstream.rendered_case("sample", "v2.28.1").unwrap();
    let text = std::fs::read_to_string(case.file("values.yaml")).unwrap();
    let mut values: Json = serde_saphyr::from_str(&text).unwrap();
    values["k8sServiceHost"] = json!("10.0.0.10");
    values["k8sServicePort"] = json!(6443);
    values
}
