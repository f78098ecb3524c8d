//! Helpers shared by the `migration_*` end-to-end tests.

// Each test binary uses a subset of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use migration::object::{self, ObjectRef};
use serde_json::Value;
use testbed::Testbed;
use testbed::fixtures::{self, FixtureOptions};
use upstream::{RenderedCase, Upstream};

/// A testbed of the test's own with 3 nodes.
pub(crate) async fn start_testbed(state: &Path) -> Testbed {
    tests::start_own_testbed(state, 3).await
}

/// Kubespray v2.27.1's render of its sample inventory (no Hubble, kvstore identities).
pub(crate) fn sample_v2_27(upstream: &Upstream) -> RenderedCase {
    tests::rendered_case(upstream, "sample", "v2.27.1")
}

/// A copy of the inventory `case` was rendered from.
pub(crate) fn inventory_copy(case: &RenderedCase, into: &Path) -> PathBuf {
    tests::rendered_inventory_copy(case, into)
}

pub(crate) fn resource_of(object: &ObjectRef, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(object.group(), object.version(), &object.kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

pub(crate) async fn live_json(client: &Client, r: &ObjectRef, plural: &str) -> Option<Value> {
    let resource = resource_of(r, plural);
    let api: Api<DynamicObject> = match &r.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(&r.name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

/// The fixture options (custom resources of a running cluster) for this testbed's nodes.
pub(crate) fn options_for(testbed: &Testbed) -> FixtureOptions {
    FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    }
}

/// Seeds what Kubespray applies for `case` (its rendered objects, client-side) and the CRDs and
/// custom resources of a running Cilium; returns the objects seeded.
pub(crate) fn seed_template_era(
    testbed: &Testbed,
    case: &RenderedCase,
    options: &FixtureOptions,
) -> Vec<Value> {
    fixtures::template_era(
        &testbed.tools().kubectl,
        testbed.kubeconfig(),
        &case.file("objects.yaml"),
        options,
    )
    .unwrap_or_else(|e| panic!("seeding {}: {e}", case.id()))
}

/// `helm template cilium <chart> -n kube-system` with `values_args` (`--values=...`,
/// `--set...`), parsed the way Helm reads YAML (`migration::object::parse_manifest`: `0400` is
/// octal).
pub(crate) fn render(helm: &Path, chart: &Path, values_args: &[String]) -> Vec<Value> {
    let output = std::process::Command::new(helm)
        .arg("template")
        .arg("cilium")
        .arg(chart)
        .arg("--namespace=kube-system")
        .args(values_args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    object::parse_manifest(&String::from_utf8(output.stdout).unwrap()).unwrap()
}

/// Runs helm with an argument vector; panics with its error output when it fails.
pub(crate) fn helm(helm: &Path, kubeconfig: &Path, args: &[String]) {
    let output = std::process::Command::new(helm)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}",
        helm.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}
