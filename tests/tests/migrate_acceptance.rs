//! End-to-end: the acceptance scenario of the hand-over, as an operator runs it. A testbed holds
//! the objects Kubespray v2.27.1 really applies (its rendered `objects.yaml`, client-side); the
//! real `cargo xtask migrate --inventory <copy> --chart <upstream>/cilium-charts/cilium-1.15.9.tgz
//! --apply --yes` (no `--accept-config-change`, no `--accept-workload-change`) ends with a
//! deployed release, the agent DaemonSet's UID unchanged and a `cilium-config` without behaviour
//! change; then `cargo xtask rollback --bundle ... --apply` returns every object as the bundle
//! recorded it (same UIDs, same contents) and the inventory byte for byte.
//!
//! The binary is the one `cargo xtask e2e` runs ([`tests::XTASK_ENV`]). Starts a testbed of its
//! own (Kubespray's objects own `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::ffi::OsString;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::Api;
use migrate_common::{
    KWOK_IGNORED_CHECKS, inventory_copy, live_cilium_config, release_cilium_config, release_status,
    run_xtask, template_era_testbed, upstream,
};
use migration::bundle::{Bundle, Section};
use migration::restore::{self, Difference};
use tests::{bundle_uids, files_under, live_uids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xtask_migrate_hands_kubespray_v2_27_1_over_to_the_released_chart_and_rollback_returns_every_object()
 {
    let Some(upstream) = upstream(
        "migrate_acceptance::xtask_migrate_hands_kubespray_v2_27_1_over_to_the_released_chart_and_rollback_returns_every_object",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    // The archive itself, as the acceptance names it (never `$CILIUM_MIGRATE_CHART`).
    let chart = upstream.chart("1.15.9").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let client = testbed.client().await.unwrap();
    let helm = testbed.tools().helm;
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);
    let bundle_dir = tmp.path().join("bundle");
    let config_before = live_cilium_config(&client).await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let daemonset_uid = daemonsets
        .get("cilium")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();

    // cargo xtask migrate ... --apply --yes: the testbed's kubeconfig and helm; node directories
    // checked locally (kwok nodes have none); the one verify check kwok cannot pass ignored.
    let mut migrate: Vec<OsString> = vec![
        "migrate".into(),
        "--inventory".into(),
        inventory.clone().into(),
        "--chart".into(),
        chart.clone().into(),
        "--kubeconfig".into(),
        testbed.kubeconfig().into(),
        "--helm".into(),
        helm.clone().into(),
        "--bundle".into(),
        bundle_dir.clone().into(),
        "--via".into(),
        "local".into(),
    ];
    for dir in ["opt/cni/bin", "etc/cni/net.d"] {
        let path = tmp.path().join(dir);
        std::fs::create_dir_all(&path).unwrap();
        migrate.extend(["--path".into(), path.into()]);
    }
    for check in KWOK_IGNORED_CHECKS {
        migrate.extend(["--ignore-check".into(), (*check).into()]);
    }
    migrate.extend([
        "--apply".into(),
        "--yes".into(),
        "--output".into(),
        "json".into(),
    ]);
    let (ok, stdout, stderr) = run_xtask(&migrate);
    assert!(ok, "cargo xtask migrate failed:\n{stderr}\n{stdout}");
    let outcome: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("migrate --output json printed no JSON ({e}):\n{stdout}"));
    assert_eq!(outcome["outcome"], "migrated", "{stdout}");
    let plan = &outcome["plan"];
    assert_eq!(plan["strategy"], "adopt", "{stdout}");
    assert_eq!(plan["chart_version"], "1.15.9", "{stdout}");
    // The gate passed on its own: nothing changes behaviour, nothing was accepted.
    for d in plan["config_differences"].as_array().unwrap() {
        assert_eq!(d["changes_behaviour"], false, "{d}");
        assert_eq!(d["accepted"], false, "{d}");
    }
    for d in plan["workload_differences"].as_array().unwrap() {
        assert_eq!(d["blocks"], false, "{d}");
        assert_eq!(d["accepted"], false, "{d}");
    }

    // A deployed release of the released chart; the same DaemonSet; the live cilium-config is
    // the release's, and every key that changed is one the gate weighed as the same behaviour.
    let status = release_status(&helm, testbed.kubeconfig()).unwrap();
    assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);
    let history = helm::Helm::locate(Some(&helm))
        .unwrap()
        .with_kubeconfig(testbed.kubeconfig())
        .history("cilium", "kube-system")
        .unwrap();
    assert_eq!(
        history.last().map(|r| r.chart.as_str()),
        Some("cilium-1.15.9")
    );
    assert_eq!(
        daemonsets.get("cilium").await.unwrap().metadata.uid,
        Some(daemonset_uid.clone())
    );
    let config_after = live_cilium_config(&client).await;
    assert_eq!(
        release_cilium_config(&helm, testbed.kubeconfig()),
        config_after
    );
    // Weighed again on what is live now, with the gate's own rule (a key only one side sets
    // against the 1.15.9 agent's default): no key changes behaviour, and the chart did change
    // the ConfigMap (it is its render now, not Kubespray's).
    assert_ne!(config_after, config_before);
    let version = cilium_values::ChartVersion::parse("1.15.9").unwrap();
    let after = cilium_values::compare_config(
        &cilium_values::LiveConfig::from_map(config_before.clone(), "before the hand-over"),
        &cilium_values::LiveConfig::from_map(config_after.clone(), "after the hand-over"),
        version,
    );
    let changes: Vec<_> = after.iter().filter(|d| d.changes_behaviour).collect();
    assert!(changes.is_empty(), "{changes:#?}");

    // cargo xtask rollback --bundle ... --apply
    let (ok, stdout, stderr) = run_xtask(&[
        "rollback".into(),
        "--bundle".into(),
        bundle_dir.clone().into(),
        "--kubeconfig".into(),
        testbed.kubeconfig().into(),
        "--helm".into(),
        helm.clone().into(),
        "--apply".into(),
        "--output".into(),
        "json".into(),
    ]);
    assert!(ok, "cargo xtask rollback failed:\n{stderr}\n{stdout}");
    let rolled: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(rolled["applied"], true, "{stdout}");
    assert_eq!(rolled["differences"], serde_json::json!([]), "{stdout}");

    // Every object the bundle recorded is back: the same objects (UIDs) with the recorded
    // contents; no release; the inventory byte for byte.
    let bundle = Bundle::open(&bundle_dir).unwrap();
    let sections = [Section::Handover, Section::CustomResources, Section::Crds];
    for section in sections {
        let recorded = bundle_uids(&bundle, section);
        assert!(!recorded.is_empty(), "{section:?}");
        assert_eq!(
            live_uids(&client, &bundle, section).await,
            recorded,
            "{section:?}"
        );
    }
    assert_eq!(
        restore::compare_with_cluster(&client, &bundle, &sections)
            .await
            .unwrap(),
        Vec::<Difference>::new()
    );
    assert_eq!(live_cilium_config(&client).await, config_before);
    assert!(release_status(&helm, testbed.kubeconfig()).is_none());
    assert_eq!(files_under(&inventory), inventory_before);
}
