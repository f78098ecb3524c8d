//! End-to-end: the cilium-cli era (Kubespray >= v2.28). The release `cilium` is installed the way
//! Kubespray v2.28.1 does through cilium-cli: `helm upgrade --install cilium <chart> -n
//! kube-system -f values.yaml` with the values Kubespray's role rendered, from the released 1.17.3
//! chart (Kubespray v2.28.1 installs chart 1.17.7, which is not among the released archives at
//! hand; its values, which pin the v1.17.7 images, are used as rendered), and
//! `k8sServiceHost/Port: auto` replaced by the kubeconfig's API server host and port as cilium-cli
//! does. `migration::flow` then hands it over to Helm with the same values and chart version: no
//! pod restarts (every pod keeps its UID), with Helm 3, then, after `rollback`, again with Helm 4.
//!
//! Starts a testbed of its own (the fixture owns `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::fs;

use migrate_common::{
    Recorder, cilium_cli_era_testbed, inventory_copy, live_cilium_config, migrate_options,
    pod_uids, release_cilium_config, release_status, upstream,
};
use migration::flow::{self, Outcome, RollbackOptions};
use migration::journal::{Step, Strategy};
use tests::files_under;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_28_release_is_handed_over_without_restarting_pods_with_helm3_and_helm4() {
    let Some(upstream) = upstream(
        "migrate_v2_28::v2_28_release_is_handed_over_without_restarting_pods_with_helm3_and_helm4",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let values = tests::cilium_cli_values(&case);
    let testbed = cilium_cli_era_testbed(&tmp.path().join("testbed"), &chart, &values).await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);
    let installed = release_status(&tools.helm3, testbed.kubeconfig()).unwrap();
    assert_eq!(installed.revision, 1);
    // Let the controllers create every pod first: "no restart" compares pod UIDs.
    let pods_before = tests::wait_for(
        "the fixture's pods",
        std::time::Duration::from_secs(120),
        async || {
            let pods = pod_uids(&client).await;
            let agents = pods
                .keys()
                .filter(|p| p.starts_with("kube-system/cilium-"))
                .count();
            if agents >= testbed.nodes().len() {
                Ok(pods)
            } else {
                Err(format!("{pods:?}"))
            }
        },
    )
    .await;

    for (round, helm) in [tools.helm3.clone(), tools.helm4.clone()]
        .iter()
        .enumerate()
    {
        let bundle = tmp.path().join(format!("bundle-{round}"));
        let migrate = migrate_options(&testbed, &inventory, &bundle, helm, tmp.path(), &chart);
        let mut progress = Recorder::default();
        let outcome = flow::run(&migrate, &mut progress)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", progress.lines.join("\n")));
        let Outcome::Migrated { plan, steps, .. } = outcome else {
            panic!("expected a migration, got {outcome:?}")
        };
        assert_eq!(plan.strategy, Strategy::TakeOverRelease);
        assert!(
            plan.config_differences
                .iter()
                .all(|d| !d.difference.changes_behaviour),
            "{:#?}",
            plan.config_differences
        );
        assert_eq!(
            steps.iter().map(|s| s.step).collect::<Vec<_>>(),
            Strategy::TakeOverRelease.steps()
        );
        assert!(!steps.iter().any(|s| s.step == Step::AdoptMetadata));

        // The same release, one revision on, same chart; no pod was restarted or replaced.
        let status = release_status(helm, testbed.kubeconfig()).unwrap();
        assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);
        assert_eq!(
            status.chart.as_ref().map(|c| c.version.as_str()),
            installed.chart.as_ref().map(|c| c.version.as_str())
        );
        assert_eq!(pod_uids(&client).await, pods_before, "round {round}");
        assert_eq!(
            release_cilium_config(helm, testbed.kubeconfig()),
            live_cilium_config(&client).await
        );
        let cluster_vars =
            fs::read_to_string(inventory.join("group_vars/k8s_cluster/k8s-cluster.yml")).unwrap();
        assert!(
            cluster_vars.contains("kube_network_plugin: cni"),
            "{cluster_vars}"
        );

        // A second run is a no-op.
        let again = flow::run(&migrate, &mut Recorder::default()).await.unwrap();
        assert!(
            matches!(again, Outcome::AlreadyHandedOver { .. }),
            "{again:?}"
        );

        // Rollback: the release goes back to the backed-up revision, the objects and the
        // inventory to the backup; still no pod restarted.
        let rolled = flow::rollback(
            &RollbackOptions {
                bundle: bundle.clone(),
                kubeconfig: Some(testbed.kubeconfig().to_path_buf()),
                helm: Some(helm.clone()),
                apply: true,
            },
            &mut Recorder::default(),
        )
        .await
        .unwrap();
        assert!(rolled.differences.is_empty(), "{:#?}", rolled.differences);
        assert!(
            rolled.release.contains("helm rollback"),
            "{}",
            rolled.release
        );
        assert_eq!(files_under(&inventory), inventory_before);
        assert_eq!(
            pod_uids(&client).await,
            pods_before,
            "round {round} rollback"
        );
        let status = release_status(helm, testbed.kubeconfig()).unwrap();
        assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);
    }
}
