//! End-to-end: the upgrade plan renders each hop with the cluster's capabilities, as `helm
//! upgrade` does.
//!
//! `helm upgrade` gives the chart the cluster's served APIs as `.Capabilities.APIVersions`;
//! `helm template` does not. Cilium's chart renders GatewayClass `cilium` only when the cluster
//! serves `gateway.networking.k8s.io/v1/GatewayClass`, so a plan rendered without the cluster's
//! APIs misses the object the upgrade creates. Here: Kubespray v2.28.1's cilium-cli release
//! (chart 1.17.3) with `gatewayAPI.enabled`, installed before the Gateway API CRDs (so the
//! release has no GatewayClass); the plan to 1.17 lists none; the CRDs are installed; the plan
//! now lists GatewayClass `cilium` as the hop's new object, and `--apply` creates exactly it.
//!
//! The chart refuses to render a ServiceMonitor unless the cluster serves
//! `monitoring.coreos.com/v1`: a release with ServiceMonitors, installed on a cluster that serves
//! them, is planned by `migrate` (its gate renders the release's chart) and by `upgrade`, where a
//! render without the cluster's APIs failed.
//!
//! kwok nodes fake pods; the one verify check kwok cannot pass is ignored.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use cilium_gateway::bundle::{Channel, Requirement, minimal_bundle};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use migrate_common::{
    KWOK_IGNORED_CHECKS, Recorder, cilium_cli_era_testbed, fixture_options, inventory_copy,
    migrate_options, resource, run_xtask, start_testbed, upstream,
};
use migration::flow::{self, Outcome};
use serde_json::{Value as Json, json};
use testbed::fixtures::{self, CiliumCliInstall, IdentityAllocation};

fn args(to: &str, charts: &Path, kubeconfig: &Path, helm: &Path, state: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["upgrade".into(), "--to".into(), to.into()];
    args.extend(["--charts".into(), charts.into()]);
    args.extend(["--kubeconfig".into(), kubeconfig.into()]);
    args.extend(["--helm".into(), helm.into()]);
    args.extend(["--state-dir".into(), state.into()]);
    for check in KWOK_IGNORED_CHECKS {
        args.extend(["--ignore-check".into(), (*check).into()]);
    }
    args
}

fn plan_json(args: &[OsString]) -> Json {
    let mut plan_args = args.to_vec();
    plan_args.extend(["--output".into(), "json".into()]);
    let (ok, stdout, stderr) = run_xtask(&plan_args);
    assert!(ok, "upgrade plan failed: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// `(object, added)` of every object change of the plan's only hop.
fn object_changes(plan: &Json) -> Vec<(String, bool)> {
    let hops = plan["hops"].as_array().unwrap();
    assert_eq!(hops.len(), 1, "{plan}");
    hops[0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["object"].as_str().unwrap().to_owned(),
                o["added"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn change_keys(plan: &Json) -> Vec<String> {
    plan["hops"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_lists_the_gateway_class_the_hop_creates_once_the_cluster_serves_gateway_api() {
    let Some(upstream) = upstream(
        "upgrade_capabilities::the_plan_lists_the_gateway_class_the_hop_creates_once_the_cluster_serves_gateway_api",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Kubespray's values with the Gateway API on (the role's `cilium_gateway_api_enabled`).
    let text = std::fs::read_to_string(tests::cilium_cli_values(&case)).unwrap();
    let off = "gatewayAPI:\n  enabled: false\n";
    assert!(text.contains(off), "Kubespray's values changed form");
    let values = tmp.path().join("values.yaml");
    std::fs::write(&values, text.replace(off, "gatewayAPI:\n  enabled: true\n")).unwrap();

    let testbed = cilium_cli_era_testbed(&tmp.path().join("testbed"), &chart, &values).await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let helm = tools.helm.clone();
    let state = tmp.path().join("upgrade-state");
    let base = args("1.17", &upstream.charts_dir(), &kubeconfig, &helm, &state);

    // No Gateway API served: the chart renders no GatewayClass, on the cluster as in the plan.
    let before = plan_json(&base);
    assert!(
        !object_changes(&before)
            .iter()
            .any(|(o, _)| o.starts_with("GatewayClass/")),
        "{before}"
    );

    // The CRDs Cilium 1.17 needs (the minimal ones: upstream names, scopes, served versions).
    let requirement = Requirement::for_cilium_minor(17).unwrap();
    fixtures::apply(
        &tools.kubectl,
        &kubeconfig,
        &minimal_bundle(&requirement.bundle, Channel::Standard),
    )
    .unwrap();
    tests::wait_for(
        "discovery to serve gateway.networking.k8s.io/v1 GatewayClass",
        Duration::from_secs(60),
        async || match client
            .list_api_group_resources("gateway.networking.k8s.io/v1")
            .await
        {
            Ok(list) if list.resources.iter().any(|r| r.kind == "GatewayClass") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // The same release, the same chart: the hop's `helm upgrade` creates GatewayClass `cilium`
    // now, and the plan says so, as a change to accept.
    let after = plan_json(&base);
    let hop = &after["hops"][0];
    assert_eq!(hop["version"], "1.17.18");
    assert!(
        object_changes(&after).contains(&("GatewayClass/cilium".to_owned(), true)),
        "{after}"
    );
    assert!(
        change_keys(&after).contains(&"object:GatewayClass/cilium".to_owned()),
        "{after}"
    );

    // Applied, the hop creates exactly what the plan listed.
    let classes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "gateway.networking.k8s.io/v1",
            "GatewayClass",
            "gatewayclasses",
        ),
    );
    assert!(classes.get_opt("cilium").await.unwrap().is_none());
    let mut apply = base.clone();
    for key in change_keys(&after) {
        apply.extend(["--accept".into(), key.into()]);
    }
    apply.extend(["--apply".into(), "--verify-timeout".into(), "5m".into()]);
    let (ok, stdout, stderr) = run_xtask(&apply);
    assert!(ok, "upgrade --apply failed:\n{stdout}\n{stderr}");
    let class = classes.get_opt("cilium").await.unwrap();
    let class = class.expect("the hop's helm upgrade created no GatewayClass cilium");
    assert_eq!(
        class
            .metadata
            .annotations
            .unwrap_or_default()
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some("cilium"),
        "GatewayClass cilium is not the release's"
    );
}

/// Waits until discovery lists `kind` in `group_version`.
async fn wait_served(client: &kube::Client, group_version: &str, kind: &str) {
    tests::wait_for(
        &format!("discovery to serve {group_version} {kind}"),
        Duration::from_secs(60),
        async || match client.list_api_group_resources(group_version).await {
            Ok(list) if list.resources.iter().any(|r| r.kind == kind) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_service_monitors_is_planned_by_migrate_and_upgrade_on_a_cluster_that_serves_them()
 {
    let Some(upstream) = upstream(
        "upgrade_capabilities::a_release_with_service_monitors_is_planned_by_migrate_and_upgrade_on_a_cluster_that_serves_them",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let testbed = start_testbed(&tmp.path().join("testbed")).await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    // The Prometheus operator's ServiceMonitor CRD (a minimal one: its name, scope and served
    // version; no schema).
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList",
                      "plural": "servicemonitors", "singular": "servicemonitor"},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                          "schema": {"openAPIV3Schema": {
                              "type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }))
    .unwrap();
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &crd)
        .await
        .unwrap();
    wait_served(&client, "monitoring.coreos.com/v1", "ServiceMonitor").await;

    // Kubespray's values with the agent's metrics scraped through a ServiceMonitor.
    let text = std::fs::read_to_string(tests::cilium_cli_values(&case)).unwrap();
    assert!(
        !text.contains("\nprometheus:"),
        "Kubespray's values changed form"
    );
    let values = tmp.path().join("values.yaml");
    std::fs::write(
        &values,
        format!("{text}\nprometheus:\n  enabled: true\n  serviceMonitor:\n    enabled: true\n"),
    )
    .unwrap();
    let options = fixtures::FixtureOptions {
        identity_allocation: IdentityAllocation::Crd,
        ..fixture_options(&testbed)
    };
    fixtures::cilium_cli_era(
        &tools.helm3,
        &tools.kubectl,
        testbed.kubeconfig(),
        &CiliumCliInstall {
            chart: &chart,
            values: &values,
            api_server: testbed.api_server(),
        },
        &options,
    )
    .unwrap();
    let monitors: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "kube-system",
        &resource(
            "monitoring.coreos.com/v1",
            "ServiceMonitor",
            "servicemonitors",
        ),
    );
    assert!(
        monitors.get_opt("cilium-agent").await.unwrap().is_some(),
        "the release's install made no ServiceMonitor cilium-agent"
    );

    // migrate's gate renders the release's chart with the release's values.
    let inventory = inventory_copy(&case, tmp.path());
    let mut migrate = migrate_options(
        &testbed,
        &inventory,
        &tmp.path().join("bundle"),
        &tools.helm,
        tmp.path(),
        &chart,
    );
    migrate.apply = false;
    migrate.yes = false;
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("migrate plan: {e}\n{}", progress.lines.join("\n")));
    let Outcome::Planned { plan } = outcome else {
        panic!("expected a plan, got {outcome:?}")
    };
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);

    // upgrade renders each hop, the ServiceMonitor kept.
    let state = tmp.path().join("upgrade-state");
    let upgrade = plan_json(&args(
        "1.17",
        &upstream.charts_dir(),
        testbed.kubeconfig(),
        &tools.helm,
        &state,
    ));
    assert_eq!(upgrade["hops"][0]["version"], "1.17.18");
    assert!(
        !object_changes(&upgrade)
            .iter()
            .any(|(o, _)| o.starts_with("ServiceMonitor/")),
        "{upgrade}"
    );
}
