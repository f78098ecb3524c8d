//! End-to-end: `migrate --etcd-snapshot` on a real control plane. The Kubespray v2.27 fixture
//! and inventory, whose control-plane host `node1` (so its etcd host: `[etcd:children]` is
//! `kube_control_plane`) is a real `sshd` on loopback, and a real etcd (TLS, client
//! certificates) that the testbed's etcdctl snapshots on the "node" through `sudo -n`. The plan
//! names the snapshot without taking it; `--apply` stopped right after the backup leaves a
//! bundle whose snapshot holds a key written beforehand and verifies.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

#[path = "../../crates/migration/tests/support/etcd.rs"]
mod etcd;
mod migrate_common;
#[path = "../../crates/cni-fs/tests/support/sshd.rs"]
mod sshd;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use migrate_common::{Recorder, fixture_options, inventory_copy, migrate_options, start_testbed};
use migration::bundle::{Bundle, ETCD_SNAPSHOT_FILE};
use migration::etcd::EtcdSnapshotOptions;
use migration::flow::{self, FlowError, Outcome};
use migration::journal::Step;
use testbed::fixtures;

const KEY: &str = "/registry/cilium-migrate-e2e/written-before-the-backup";
const VALUE: &str = "in-the-bundle-snapshot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_saves_an_etcd_snapshot_over_ssh_into_the_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let testbed = start_testbed(&tmp.path().join("testbed")).await;
    fixtures::apply(
        &testbed.tools().kubectl,
        testbed.kubeconfig(),
        &fixtures::kubespray_v2_27(&fixture_options(&testbed)).unwrap(),
    )
    .unwrap();
    let sshd = sshd::Sshd::start();
    let etcd = etcd::Etcd::start();
    etcd.etcdctl(&["put", KEY, VALUE]);

    let inventory = inventory_copy("v2.27.1", tmp.path());
    let ini = inventory.join("inventory.ini");
    let text = fs::read_to_string(&ini).unwrap();
    assert!(text.contains("[kube_control_plane]\n"), "{text}");
    fs::write(
        &ini,
        text.replace(
            "[kube_control_plane]\n",
            &format!(
                "[kube_control_plane]\n{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root\n",
                etcd::HOST,
                sshd.port
            ),
        ),
    )
    .unwrap();
    let remote_tmp = tmp.path().join("node-tmp");
    fs::create_dir(&remote_tmp).unwrap();
    let bundle_dir = tmp.path().join("bundle");
    let mut migrate = migrate_options(
        &testbed,
        &inventory,
        &bundle_dir,
        &testbed.tools().helm4,
        tmp.path(),
    );
    migrate.etcd_snapshot = Some(EtcdSnapshotOptions {
        cert_dir: etcd.cert_dir.clone(),
        etcdctl: etcd::tool("etcdctl"),
        endpoint: Some(etcd.endpoint.clone()),
        remote_tmp_dir: remote_tmp.clone(),
        ..EtcdSnapshotOptions::new(sshd.ssh(true))
    });

    // The plan says it would, and takes nothing.
    migrate.apply = false;
    let mut recorder = Recorder::default();
    let outcome = flow::run(&migrate, &mut recorder).await.unwrap();
    assert!(matches!(outcome, Outcome::Planned { .. }));
    let would = format!(
        "note the backup would save an etcd snapshot on node1 ({})",
        etcd.endpoint
    );
    assert!(
        recorder.lines.iter().any(|l| l.starts_with(&would)),
        "{:#?}",
        recorder.lines
    );
    assert!(!bundle_dir.exists(), "the plan wrote a bundle");

    // --apply, stopped right after the backup's work.
    migrate.apply = true;
    migrate.fail_after = Some(Step::Backup);
    let mut recorder = Recorder::default();
    let err = flow::run(&migrate, &mut recorder).await.unwrap_err();
    assert!(matches!(err, FlowError::Injected(Step::Backup)), "{err}");
    assert!(
        recorder
            .lines
            .iter()
            .any(|l| l.starts_with("note etcd snapshot from node1 (")),
        "{:#?}",
        recorder.lines
    );
    let bundle = Bundle::open(&bundle_dir).unwrap();
    let report = bundle.verify().unwrap();
    let file = bundle.manifest().etcd_snapshot.clone().unwrap();
    assert_eq!(report.etcd_snapshot_bytes, Some(file.bytes));
    assert_eq!(
        (file.node.as_str(), file.endpoint.as_str()),
        ("node1", etcd.endpoint.as_str())
    );
    let path = bundle_dir.join(ETCD_SNAPSHOT_FILE);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let content = fs::read(&path).unwrap();
    for needle in [KEY, VALUE] {
        assert!(
            content
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle} is not in the snapshot"
        );
    }
    assert_eq!(fs::read_dir(&remote_tmp).unwrap().count(), 0);
}
