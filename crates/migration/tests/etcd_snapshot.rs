//! `--etcd-snapshot` against real parts: a real `sshd` on 127.0.0.1 (the cni-fs test setup), a
//! real etcd from the testbed tools serving TLS on free loopback ports with certificates laid
//! out like Kubespray's `/etc/ssl/etcd/ssl` (in a temp dir passed as the cert dir), and the
//! testbed's etcdctl run on the "node" through `sudo -n`. Needs root, `/usr/sbin/sshd`, `sudo`,
//! and `cargo xtask testbed build` (etcd, etcdctl in target/tools/bin or $CILIUM_MIGRATE_TOOLS).

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

#[path = "support/etcd.rs"]
mod etcd;
#[path = "../../cni-fs/tests/support/sshd.rs"]
mod sshd;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use etcd::{Etcd, HOST, empty_bundle, free_port, tool};
use migration::bundle::{Bundle, ETCD_SNAPSHOT_FILE};
use migration::etcd::{EtcdSnapshotOptions, snapshot_into};
use sshd::Sshd;

const KEY: &str = "/cilium-migrate-test/written-before-the-snapshot";
const VALUE: &str = "value-that-must-be-in-the-snapshot";

/// An inventory whose etcd group holds `node1` (this sshd) and whose first control-plane host
/// is unreachable: picking it instead of `groups['etcd'][0]` would fail.
fn inventory(sshd: &Sshd) -> (tempfile::TempDir, kubespray_config::Inventory) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("group_vars")).unwrap();
    let yaml = format!(
        "all:\n  hosts:\n    cp0: {{ansible_host: 127.0.0.1, ansible_port: {closed}, ansible_user: root}}\n    \
         {HOST}: {{ansible_host: 127.0.0.1, ansible_port: {port}, ansible_user: root}}\n  children:\n    \
         kube_control_plane: {{hosts: {{cp0: }}}}\n    etcd: {{hosts: {{{HOST}: }}}}\n",
        closed = free_port(),
        port = sshd.port,
    );
    std::fs::write(dir.path().join("hosts.yaml"), yaml).unwrap();
    let inventory = kubespray_config::Inventory::load(dir.path()).unwrap();
    (dir, inventory)
}

/// Every path under `dir` with its content (directories empty), sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            out.push((p, Vec::new()));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn options(sshd: &Sshd, etcd: &Etcd, remote_tmp: &Path) -> EtcdSnapshotOptions {
    let mut options = EtcdSnapshotOptions::new(sshd.ssh(true));
    options.cert_dir = etcd.cert_dir.clone();
    options.etcdctl = tool("etcdctl");
    options.endpoint = Some(etcd.endpoint.clone());
    options.remote_tmp_dir = remote_tmp.to_path_buf();
    options
}

#[test]
fn the_snapshot_holds_a_key_written_before_it_verifies_and_is_private() {
    let sshd = Sshd::start();
    let etcd = Etcd::start();
    etcd.etcdctl(&["put", KEY, VALUE]);
    let (_inv_dir, inventory) = inventory(&sshd);
    let work = tempfile::tempdir().unwrap();
    let remote_tmp = work.path().join("node tmp 'q'");
    std::fs::create_dir(&remote_tmp).unwrap();
    let dir = work.path().join("bundle");
    let mut bundle = empty_bundle(&dir);

    let file = runtime()
        .block_on(snapshot_into(
            &mut bundle,
            &inventory,
            &options(&sshd, &etcd, &remote_tmp),
        ))
        .unwrap();

    assert_eq!(file.node, HOST, "groups['etcd'][0], not the control plane");
    assert_eq!(file.endpoint, etcd.endpoint);
    let path = dir.join(ETCD_SNAPSHOT_FILE);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), file.bytes);
    // The bundle on disk lists it, and verify checks its hash.
    let reopened = Bundle::open(&dir).unwrap();
    assert_eq!(reopened.manifest().etcd_snapshot.as_ref(), Some(&file));
    assert_eq!(
        reopened.verify().unwrap().etcd_snapshot_bytes,
        Some(file.bytes)
    );
    // The key written beforehand is inside (bbolt stores the key-value pair unencrypted).
    let content = std::fs::read(&path).unwrap();
    for needle in [KEY, VALUE] {
        assert!(
            content
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle} is not in the snapshot"
        );
    }
    // The temporary snapshot on the node is gone.
    let left: Vec<_> = std::fs::read_dir(&remote_tmp).unwrap().collect();
    assert!(left.is_empty(), "left on the node: {left:?}");
    // A second snapshot never replaces the first.
    let again = runtime()
        .block_on(snapshot_into(
            &mut bundle,
            &inventory,
            &options(&sshd, &etcd, &remote_tmp),
        ))
        .unwrap_err()
        .to_string();
    assert!(again.contains("already holds an etcd snapshot"), "{again}");
    assert_eq!(std::fs::read(&path).unwrap(), content);
}

#[test]
fn a_wrong_cert_dir_or_a_missing_etcdctl_fails_clearly_and_writes_nothing() {
    let sshd = Sshd::start();
    let etcd = Etcd::start();
    let (_inv_dir, inventory) = inventory(&sshd);
    let work = tempfile::tempdir().unwrap();
    let remote_tmp = work.path().join("node-tmp");
    std::fs::create_dir(&remote_tmp).unwrap();
    let dir = work.path().join("bundle");
    let mut bundle = empty_bundle(&dir);
    let before = listing(&dir);

    let mut wrong_dir = options(&sshd, &etcd, &remote_tmp);
    wrong_dir.cert_dir = work.path().join("kubeadm-etcd-certs");
    let mut no_etcdctl = options(&sshd, &etcd, &remote_tmp);
    no_etcdctl.etcdctl = work.path().join("bin/etcdctl");
    let cases = [
        (
            wrong_dir,
            vec![
                "etcd snapshot on node1",
                "etcdctl snapshot save failed",
                "admin-node1.pem",
                "pass --etcd-cert-dir DIR",
            ],
        ),
        (
            no_etcdctl,
            vec![
                "etcdctl not found on node1",
                "/usr/local/bin",
                "pass --etcdctl PATH",
            ],
        ),
    ];
    for (options, wanted) in cases {
        let err = runtime()
            .block_on(snapshot_into(&mut bundle, &inventory, &options))
            .unwrap_err()
            .to_string();
        for want in wanted {
            assert!(err.contains(want), "{want:?} missing from: {err}");
        }
        assert_eq!(listing(&dir), before, "the bundle changed: {err}");
        let left: Vec<_> = std::fs::read_dir(&remote_tmp).unwrap().collect();
        assert!(left.is_empty(), "left on the node: {left:?}");
    }
    assert!(bundle.manifest().etcd_snapshot.is_none());
    bundle.verify().unwrap();
}
