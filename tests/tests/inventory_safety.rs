//! End-to-end: the hand-over's writes next to the inventory on a real control plane. The values
//! file is private and every write is recorded in the bundle; a rollback stops, before it
//! changes anything, at an inventory file edited since the hand-over (showing the diff with
//! secret-looking values redacted), and once the edit is undone it restores the inventory byte
//! for byte, touching nothing else.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use migrate_common::{
    Recorder, inventory_copy, migrate_options, release_status, template_era_testbed, upstream,
};
use migration::bundle::{Bundle, BundleError};
use migration::flow::{self, FlowError, Outcome, RollbackOptions};
use tests::files_under;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_stops_at_an_inventory_file_edited_since_the_handover() {
    let Some(upstream) =
        upstream("inventory_safety::rollback_stops_at_an_inventory_file_edited_since_the_handover")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let helm = testbed::Tools::default().helm3;
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);
    let bundle_dir = tmp.path().join("bundle");
    let mut migrate = migrate_options(&testbed, &inventory, &bundle_dir, &helm, tmp.path(), &chart);
    migrate.apply = true;
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");

    // The values file is private, and both writes are recorded by the files they wrote.
    let values = inventory.join(flow::VALUES_FILE);
    assert_eq!(
        fs::metadata(&values).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cluster_vars = inventory.join("group_vars/k8s_cluster/k8s-cluster.yml");
    let written: Vec<_> = Bundle::open(&bundle_dir)
        .unwrap()
        .manifest()
        .written
        .iter()
        .map(|w| w.path.clone())
        .collect();
    for file in [&cluster_vars, &values] {
        let real = fs::canonicalize(file).unwrap();
        assert!(written.contains(&real), "{} in {written:?}", real.display());
    }

    // The operator edits the hand-over's file afterwards: the rollback refuses, with the diff,
    // and changes nothing (the release stays, the file keeps the operator's edit).
    let handed_over = fs::read_to_string(&cluster_vars).unwrap();
    let edited = format!("{handed_over}kube_webhook_token: s3cr3t-t0ken\n");
    fs::write(&cluster_vars, &edited).unwrap();
    let revision = release_status(&helm, testbed.kubeconfig())
        .unwrap()
        .revision;
    let rollback = RollbackOptions {
        bundle: bundle_dir.clone(),
        kubeconfig: Some(testbed.kubeconfig().to_path_buf()),
        helm: Some(helm.clone()),
        apply: true,
    };
    let refused = flow::rollback(&rollback, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            FlowError::Bundle(BundleError::ChangedSinceHandover { .. })
        ),
        "{refused:?}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("k8s-cluster.yml")
            && text.contains("+kube_webhook_token: <redacted>")
            && !text.contains("s3cr3t"),
        "{text}"
    );
    assert_eq!(fs::read_to_string(&cluster_vars).unwrap(), edited);
    assert!(values.is_file());
    let status = release_status(&helm, testbed.kubeconfig()).unwrap();
    assert_eq!(status.revision, revision);
    assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);

    // Undone, the rollback runs and gives the inventory back byte for byte.
    fs::write(&cluster_vars, handed_over).unwrap();
    let mut progress = Recorder::default();
    let rolled = flow::rollback(&rollback, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(rolled.differences.is_empty(), "{:#?}", rolled.differences);
    assert_eq!(files_under(&inventory), inventory_before);
    assert!(release_status(&helm, testbed.kubeconfig()).is_none());
}
