//! End-to-end: era detection and backup on the cilium-cli era (Kubespray >= v2.28): a release
//! `cilium` installed the way Kubespray v2.28.1 does (its rendered values, the released 1.17.3
//! chart), already owning every object it renders.
//!
//! Starts a testbed of its own (the fixture owns `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migration_common;

use migration::adopt::{self, Release};
use migration::bundle::{BackupRequest, Bundle};
use migration::era::{self, Era, HandoverEvidence, InventoryClaim};
use migration::identity::ClusterIdentity;
use migration::journal::JournalStatus;
use migration_common::{options_for, render, start_testbed};
use testbed::fixtures::{self, CiliumCliInstall, FixtureOptions, IdentityAllocation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cilium_cli_release_is_detected_backed_up_and_needs_no_adoption() {
    let Some(upstream) = upstream::Upstream::for_test(
        "migration_era::cilium_cli_release_is_detected_backed_up_and_needs_no_adoption",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap();
    let values = tests::cilium_cli_values(&case);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = start_testbed(&tmp.path().join("testbed")).await;
    let tools = testbed.tools();
    let options = FixtureOptions {
        identity_allocation: IdentityAllocation::Crd,
        ..options_for(&testbed)
    };
    let install = CiliumCliInstall {
        chart: &chart,
        values: &values,
        api_server: testbed.api_server(),
    };
    fixtures::cilium_cli_era(
        &tools.helm3,
        &tools.kubectl,
        testbed.kubeconfig(),
        &install,
        &options,
    )
    .unwrap();
    let client = testbed.client().await.unwrap();

    let state = era::collect_state(&client).await.unwrap();
    assert_eq!(state.releases.len(), 1, "{:?}", state.releases);
    let detected =
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap();
    assert!(
        matches!(detected, Era::CiliumCliRelease { revision: 1, .. }),
        "{detected:?}"
    );
    // With an inventory that no longer installs Cilium, the same cluster counts as handed over.
    assert_eq!(
        era::detect(
            &state,
            JournalStatus::Absent,
            InventoryClaim::DoesNotManageCilium
        )
        .unwrap(),
        Era::HandedOver {
            revision: 1,
            evidence: HandoverEvidence::InventoryReleased
        }
    );

    // The backup holds the release's storage Secret.
    let identity = ClusterIdentity::read(&client, testbed.api_server())
        .await
        .unwrap();
    let request = BackupRequest {
        dir: tmp.path().join("bundle"),
        cluster: identity,
        extra_objects: Vec::new(),
        inventory: Vec::new(),
        page_size: 50,
    };
    let bundle = Bundle::create(&client, &request).await.unwrap();
    let report = bundle.verify().unwrap();
    assert_eq!(report.objects.get("helm-release"), Some(&1), "{report:?}");

    // Every rendered object that exists is already the release's: nothing to patch or prune.
    let rendered = render(
        &tools.helm,
        &chart,
        &fixtures::cilium_cli_values_args(&install).unwrap(),
    );
    let release = Release::default();
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let plan = adopt::plan_adoption(&live, &rendered, &release);
    assert!(plan.can_adopt(), "{:?}", plan.blockers);
    assert!(!plan.patches.is_empty());
    assert!(plan.is_empty(), "{plan:?}");

    // The marker written at the end of a hand-over makes detection say so.
    era::write_handover_marker(&client, "test").await.unwrap();
    let state = era::collect_state(&client).await.unwrap();
    assert_eq!(state.handover_marker.as_deref(), Some("test"));
    assert_eq!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap(),
        Era::HandedOver {
            revision: 1,
            evidence: HandoverEvidence::Marker
        }
    );
}
