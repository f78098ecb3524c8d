//! Helpers shared by the `migration_*` end-to-end tests.

// Each test binary uses a subset of the helpers.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};
use migration::object::{self, ObjectRef};
use serde_json::Value;
use testbed::Testbed;
use testbed::fixtures::{self, FixtureOptions};

/// A testbed of the test's own with 3 nodes.
pub(crate) async fn start_testbed(state: &Path) -> Testbed {
    tests::start_own_testbed(state, 3).await
}

/// A copy of Kubespray v2.27.1's sample inventory as it is (it installs Calico).
pub(crate) fn inventory_copy(into: &Path) -> PathBuf {
    tests::kubespray_sample_copy("v2.27.1", into)
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

/// The v2.27 fixture options for this testbed's nodes.
pub(crate) fn options_for(testbed: &Testbed) -> FixtureOptions {
    FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    }
}

/// Seeds the Kubespray v2.27 fixture; returns the objects seeded.
pub(crate) fn seed_v2_27(testbed: &Testbed, options: &FixtureOptions) -> Vec<Value> {
    let seeded = fixtures::kubespray_v2_27(options).unwrap();
    fixtures::apply(&testbed.tools().kubectl, testbed.kubeconfig(), &seeded).unwrap();
    seeded
}

/// `helm template` of the look-alike chart with the fixture's values, parsed the way Helm reads
/// YAML (`migration::object::parse_manifest`: `0400` is octal).
pub(crate) fn render(helm: &Path, options: &FixtureOptions, scratch: &Path) -> Vec<Value> {
    let values = scratch.join("render-values.json");
    fs::write(&values, fixtures::helm_values(options).to_string()).unwrap();
    let output = std::process::Command::new(helm)
        .arg("template")
        .arg("cilium")
        .arg(fixtures::chart_dir())
        .arg("--namespace=kube-system")
        .arg(format!("--values={}", values.display()))
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
