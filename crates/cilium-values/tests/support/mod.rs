//! What the tests on the released Cilium charts share (`tests/acceptance.rs`,
//! `tests/workload.rs`): finding helm, rendering a released chart, and resolving a rendered case's
//! inventory as `migrate` hands it to `translate`.
//!
//! Each test crate uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cilium_values::{ChartVersion, ConfigDifference, InventoryVar, InventoryVars};
use serde_json::Value as Json;
use upstream::{RenderedCase, RenderedEra, Upstream};

/// The chart whose manifests Kubespray v2.27 applied: the hand-over target.
pub(crate) const HANDOVER_CHART: &str = "1.15.9";

/// The template-era cases the hand-over must keep (all of `kubespray/rendered` at this writing);
/// a case added there is covered too, these must not go missing.
pub(crate) const TEMPLATE_CASES: &[&str] = &[
    "sample@v2.26.0",
    "sample@v2.27.1",
    "hubble-full@v2.27.1",
    "ipsec-native@v2.27.1",
    "bgp-lbipam@v2.27.1",
];

/// The Kubernetes version the charts render for. Helm built without release flags assumes 1.20,
/// which 1.17+ refuses; the charts' cilium-config branches on it only at 1.27 (client rate
/// limits), so this one version (Kubespray v2.27.1's default) stands for every cluster Kubespray
/// v2.26-v2.31 installs (1.30 to 1.34).
pub(crate) const KUBE_VERSION: &str = "1.31.9";

pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The helm binary `name` (`helm3`, `helm4`) from `$CILIUM_MIGRATE_TOOLS` or `target/tools/bin`.
/// A missing binary fails the test (`hint` says what else would do): a silent pass would prove
/// nothing.
pub(crate) fn tools_helm(name: &str, hint: &str) -> PathBuf {
    let dir = std::env::var_os("CILIUM_MIGRATE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target/tools/bin"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "no {name} at {}; build it with `cargo xtask testbed build`{hint}",
        path.display()
    );
    path
}

/// A released chart archive and its version.
pub(crate) struct Chart {
    pub(crate) version: ChartVersion,
    pub(crate) archive: PathBuf,
}

pub(crate) fn chart(upstream: &Upstream, version: &str) -> Chart {
    Chart {
        version: ChartVersion::parse(version).expect("a supported version"),
        archive: upstream.chart(version).unwrap_or_else(|e| panic!("{e}")),
    }
}

/// `helm template` of a chart with values files (later ones win, as with `helm -f a -f b`), in
/// the namespace Kubespray installs to, for [`KUBE_VERSION`], with Helm's homes in a temp dir.
pub(crate) fn helm_template(helm: &Path, chart: &Path, values: &[&str], extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(helm);
    command
        .arg("template")
        .arg("cilium")
        .arg(chart)
        .args(["--namespace", "kube-system", "--kube-version", KUBE_VERSION])
        .args(extra)
        .env("HELM_CACHE_HOME", dir.path().join("cache"))
        .env("HELM_CONFIG_HOME", dir.path().join("config"))
        .env("HELM_DATA_HOME", dir.path().join("data"));
    for (i, text) in values.iter().enumerate() {
        let path = dir.path().join(format!("values-{i}.yaml"));
        std::fs::write(&path, text).expect("write values");
        command.arg("-f").arg(path);
    }
    command.output().expect("helm runs")
}

/// The inventory in `dir` resolved by kubespray-config for `era`, as `migrate` hands it to
/// `translate` (plus `etcd_access_addresses` from the etcd hosts, as Kubespray computes it).
pub(crate) fn inventory_vars(dir: &Path, era: kubespray_config::Era) -> InventoryVars {
    let inventory = kubespray_config::Inventory::load(dir)
        .unwrap_or_else(|e| panic!("{}: the inventory loads: {e}", dir.display()));
    let variables = inventory
        .variables(era)
        .unwrap_or_else(|e| panic!("{}: the variables resolve: {e}", dir.display()));
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
            Json::String(etcd.join(",")),
            "inventory.ini: hosts of group etcd",
        ),
    );
    vars
}

/// A copy of a rendered case's inventory, to edit before it is resolved.
pub(crate) fn inventory_copy(case: &RenderedCase) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    case.inventory_copy(dir.path())
        .unwrap_or_else(|e| panic!("{}: copy the inventory: {e}", case.id()));
    dir
}

/// A rendered case's inventory, resolved for `era` ([`inventory_vars`] on a copy).
pub(crate) fn case_inventory(case: &RenderedCase, era: kubespray_config::Era) -> InventoryVars {
    inventory_vars(inventory_copy(case).path(), era)
}

/// A rendered case by its id (`name@tag`).
pub(crate) fn rendered_case(upstream: &Upstream, id: &str) -> RenderedCase {
    let (name, tag) = id.split_once('@').expect("case@tag");
    upstream
        .rendered_case(name, tag)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every template-era case, checked against [`TEMPLATE_CASES`].
pub(crate) fn template_cases(upstream: &Upstream) -> Vec<RenderedCase> {
    let cases: Vec<RenderedCase> = upstream
        .rendered_cases()
        .into_iter()
        .filter(|c| c.era() == RenderedEra::Template)
        .collect();
    let ids: Vec<String> = cases.iter().map(RenderedCase::id).collect();
    for want in TEMPLATE_CASES {
        assert!(
            ids.iter().any(|id| id == want),
            "the template-era case {want} is missing from {}: present {ids:?}",
            upstream.kubespray().join("rendered").display()
        );
    }
    cases
}

/// The behaviour-changing differences, as text.
pub(crate) fn changes(differences: &[ConfigDifference]) -> Vec<String> {
    differences
        .iter()
        .filter(|d| d.changes_behaviour)
        .map(ToString::to_string)
        .collect()
}
