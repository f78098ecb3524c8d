//! End-to-end: `migrate --etcd-snapshot` on a real control plane. The objects Kubespray v2.27.1
//! applies and the inventory they were rendered from, whose etcd host `node1` is a real `sshd`
//! on loopback, and a real etcd (TLS, client certificates) that the testbed's etcdctl snapshots
//! on the "node" through `sudo -n`. The plan
//! names the snapshot without taking it; `--apply` stopped right after the backup leaves a
//! bundle whose snapshot holds a key written beforehand and verifies. The same snapshot is
//! found with kubeadm's certificate names, given as options or implied by the inventory's
//! `etcd_deployment_type: kubeadm`.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

#[path = "../../crates/migration/tests/support/etcd.rs"]
mod etcd;
mod migrate_common;
#[path = "../../crates/cni-fs/tests/support/sshd.rs"]
mod sshd;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use migrate_common::{Recorder, inventory_copy, migrate_options, template_era_testbed, upstream};
use migration::bundle::{Bundle, ETCD_SNAPSHOT_FILE, EtcdSnapshotFile};
use migration::etcd::{EtcdSnapshotOptions, snapshot_into};
use migration::flow::{self, FlowError, Outcome};
use migration::journal::Step;

const KEY: &str = "/registry/cilium-migrate-e2e/written-before-the-backup";
const VALUE: &str = "in-the-bundle-snapshot";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_saves_an_etcd_snapshot_over_ssh_into_the_bundle() {
    let Some(upstream) =
        upstream("migrate_etcd::the_backup_saves_an_etcd_snapshot_over_ssh_into_the_bundle")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let sshd = sshd::Sshd::start();
    let etcd = etcd::Etcd::start();
    etcd.etcdctl(&["put", KEY, VALUE]);

    let inventory = inventory_copy(&case, tmp.path());
    point_etcd_host_at(&inventory, &sshd);
    let remote_tmp = tmp.path().join("node-tmp");
    fs::create_dir(&remote_tmp).unwrap();
    let bundle_dir = tmp.path().join("bundle");
    let mut migrate = migrate_options(
        &testbed,
        &inventory,
        &bundle_dir,
        &testbed.tools().helm4,
        tmp.path(),
        &chart,
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
    // ... naming the certificate files it will read, so a wrong --etcd-cert-dir shows here.
    let would = format!(
        "note the backup would save an etcd snapshot on node1 ({}, with {}, {}, {})",
        etcd.endpoint,
        etcd.cert_dir.join("ca.pem").display(),
        etcd.cert_dir.join("admin-node1.pem").display(),
        etcd.cert_dir.join("admin-node1-key.pem").display(),
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

/// Points the rendered inventory's etcd host `node1` (`[etcd]`) at this sshd.
fn point_etcd_host_at(inventory: &Path, sshd: &sshd::Sshd) {
    edit(
        &inventory.join("inventory.ini"),
        &format!("{} ansible_host=10.0.0.11\n", etcd::HOST),
        &format!(
            "{} ansible_host=127.0.0.1 ansible_port={} ansible_user=root\n",
            etcd::HOST,
            sshd.port
        ),
    );
}

/// Puts the etcd host (`node1`, this sshd) first in `[kube_control_plane]` of a sample
/// inventory, whose `[etcd:children]` is `kube_control_plane`.
fn add_etcd_host(inventory: &Path, sshd: &sshd::Sshd) {
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
}

/// Replaces `from` (which must be there) with `to` in `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{}: no {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

/// What the end-to-end test checks of a bundle's snapshot: listed, verified, private, holding
/// the key written before it; and nothing left on the node.
fn assert_snapshot(dir: &Path, file: &EtcdSnapshotFile, etcd: &etcd::Etcd, remote_tmp: &Path) {
    assert_eq!(
        (file.node.as_str(), file.endpoint.as_str()),
        (etcd::HOST, etcd.endpoint.as_str())
    );
    let bundle = Bundle::open(dir).unwrap();
    assert_eq!(bundle.manifest().etcd_snapshot.as_ref(), Some(file));
    assert_eq!(
        bundle.verify().unwrap().etcd_snapshot_bytes,
        Some(file.bytes)
    );
    let path = dir.join(ETCD_SNAPSHOT_FILE);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), file.bytes);
    let content = fs::read(&path).unwrap();
    for needle in [KEY, VALUE] {
        assert!(
            content
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle} is not in the snapshot"
        );
    }
    assert_eq!(fs::read_dir(remote_tmp).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeadm_certificate_names_work_as_options_and_from_etcd_deployment_type_kubeadm() {
    let Some(upstream) = upstream(
        "migrate_etcd::kubeadm_certificate_names_work_as_options_and_from_etcd_deployment_type_kubeadm",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sshd = sshd::Sshd::start();
    let etcd = etcd::Etcd::start();
    etcd.etcdctl(&["put", KEY, VALUE]);
    // Kubespray's whole sample inventory: it has the etcd and cluster files this case edits.
    let inventory = tests::kubespray_sample_copy(&upstream, "v2.27.1", tmp.path());
    add_etcd_host(&inventory, &sshd);
    let remote_tmp = tmp.path().join("node-tmp");
    fs::create_dir(&remote_tmp).unwrap();
    // The test etcd's client files under kubeadm's names: Kubespray's kubeadm layout
    // (`<kube_cert_dir>/etcd/{ca.crt,server.crt,server.key}`) and kubeadm's healthcheck client.
    let kube_config_dir = tmp.path().join("kubernetes");
    let kubeadm_etcd = kube_config_dir.join("ssl/etcd");
    fs::create_dir_all(&kubeadm_etcd).unwrap();
    let admin = |suffix: &str| etcd.cert_dir.join(format!("admin-{}{suffix}", etcd::HOST));
    for (from, to) in [
        (etcd.cert_dir.join("ca.pem"), "ca.crt"),
        (admin(".pem"), "server.crt"),
        (admin("-key.pem"), "server.key"),
        (admin(".pem"), "healthcheck-client.crt"),
        (admin("-key.pem"), "healthcheck-client.key"),
    ] {
        fs::copy(&from, kubeadm_etcd.join(to)).unwrap();
    }
    fs::set_permissions(
        kubeadm_etcd.join("server.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let base = EtcdSnapshotOptions {
        etcdctl: etcd::tool("etcdctl"),
        endpoint: Some(etcd.endpoint.clone()),
        remote_tmp_dir: remote_tmp.clone(),
        ..EtcdSnapshotOptions::new(sshd.ssh(true))
    };
    let load = || kubespray_config::Inventory::load(&inventory).unwrap();

    // Given as options: names in the cert dir and an absolute path.
    let dir = tmp.path().join("bundle-options");
    let mut bundle = etcd::empty_bundle(&dir);
    let options = EtcdSnapshotOptions {
        cert_dir: kubeadm_etcd.clone(),
        ca_file: Some("ca.crt".into()),
        cert_file: Some("healthcheck-client.crt".into()),
        key_file: Some(kubeadm_etcd.join("healthcheck-client.key")),
        ..base.clone()
    };
    let file = snapshot_into(&mut bundle, &load(), &options).await.unwrap();
    assert_snapshot(&dir, &file, &etcd, &remote_tmp);

    // Implied by the inventory: `etcd_deployment_type: kubeadm`, the files in
    // `<kube_cert_dir>/etcd` with kube_cert_dir resolved from the sample's
    // `{{ kube_config_dir }}/ssl`.
    edit(
        &inventory.join("group_vars/all/etcd.yml"),
        "etcd_deployment_type: host",
        "etcd_deployment_type: kubeadm",
    );
    edit(
        &inventory.join("group_vars/k8s_cluster/k8s-cluster.yml"),
        "kube_config_dir: /etc/kubernetes",
        &format!("kube_config_dir: {}", kube_config_dir.display()),
    );
    let dir = tmp.path().join("bundle-inventory");
    let mut bundle = etcd::empty_bundle(&dir);
    let file = snapshot_into(&mut bundle, &load(), &base).await.unwrap();
    assert_snapshot(&dir, &file, &etcd, &remote_tmp);

    // The inventory's kubeadm names in a cert dir that lacks them: a clear error naming the
    // files and the flags, and nothing in the bundle.
    let dir = tmp.path().join("bundle-missing");
    let mut bundle = etcd::empty_bundle(&dir);
    let options = EtcdSnapshotOptions {
        cert_dir: etcd.cert_dir.clone(),
        ..base.clone()
    };
    let err = snapshot_into(&mut bundle, &load(), &options)
        .await
        .unwrap_err()
        .to_string();
    for want in ["ca.crt", "server.key", "--etcd-ca", "--etcd-cert-dir"] {
        assert!(err.contains(want), "{want:?} missing from: {err}");
    }
    assert!(!dir.join("etcd").exists());
    assert!(
        Bundle::open(&dir)
            .unwrap()
            .manifest()
            .etcd_snapshot
            .is_none()
    );
    assert_eq!(fs::read_dir(&remote_tmp).unwrap().count(), 0);
}

/// The entries of `dir` by name.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_snapshot_stays_private_and_the_next_one_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let sshd = sshd::Sshd::start();
    let etcd = etcd::Etcd::start();
    etcd.etcdctl(&["put", KEY, VALUE]);
    let inventory = tmp.path().join("inventory");
    fs::create_dir_all(inventory.join("group_vars")).unwrap();
    fs::write(
        inventory.join("hosts.yaml"),
        format!(
            "all:\n  hosts:\n    {}: {{ansible_host: 127.0.0.1, ansible_port: {}, ansible_user: root}}\n  \
             children:\n    etcd: {{hosts: {{{}: }}}}\n",
            etcd::HOST,
            sshd.port,
            etcd::HOST
        ),
    )
    .unwrap();
    let inventory = kubespray_config::Inventory::load(&inventory).unwrap();
    let remote_tmp = tmp.path().join("node-tmp");
    fs::create_dir(&remote_tmp).unwrap();
    fs::set_permissions(&remote_tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    // Someone else's things in the same temporary directory stay.
    fs::write(remote_tmp.join("cilium-migrate-etcd.notes"), b"keep").unwrap();
    fs::create_dir(remote_tmp.join("other")).unwrap();

    // An etcdctl that saves the snapshot, says so through a FIFO, and then hangs until told:
    // the run is interrupted (as by Ctrl-C) while the snapshot is on the node.
    let saved = tmp.path().join("saved.fifo");
    let release = tmp.path().join("release.fifo");
    for fifo in [&saved, &release] {
        let ok = std::process::Command::new("mkfifo")
            .arg(fifo)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo");
    }
    let hanging = tmp.path().join("hanging-etcdctl");
    fs::write(
        &hanging,
        format!(
            "#!/bin/sh\n'{real}' \"$@\" || exit\nfor last do :; done\n\
             echo \"$last\" > '{saved}'\nread x < '{release}'\n",
            real = etcd::tool("etcdctl").display(),
            saved = saved.display(),
            release = release.display(),
        ),
    )
    .unwrap();
    fs::set_permissions(&hanging, fs::Permissions::from_mode(0o755)).unwrap();
    let options = EtcdSnapshotOptions {
        cert_dir: etcd.cert_dir.clone(),
        etcdctl: hanging,
        endpoint: Some(etcd.endpoint.clone()),
        remote_tmp_dir: remote_tmp.clone(),
        ..EtcdSnapshotOptions::new(sshd.ssh(true))
    };
    let interrupted = tokio::spawn({
        let (inventory, options) = (inventory.clone(), options.clone());
        let mut bundle = etcd::empty_bundle(&tmp.path().join("bundle-interrupted"));
        async move { snapshot_into(&mut bundle, &inventory, &options).await }
    });
    let saved_at = tokio::task::spawn_blocking(move || fs::read_to_string(saved).unwrap())
        .await
        .unwrap();
    interrupted.abort();
    assert!(interrupted.await.unwrap_err().is_cancelled());
    tokio::task::spawn_blocking(move || fs::write(release, b"go\n").unwrap())
        .await
        .unwrap();

    // What was left: the snapshot in a directory only root can enter, under a name made at
    // random, not a file anyone could predict (and plant a symlink at).
    let saved_at = Path::new(saved_at.trim_end());
    let left = saved_at.parent().unwrap();
    assert_eq!(left.parent(), Some(remote_tmp.as_path()), "{saved_at:?}");
    let name = left.file_name().unwrap().to_string_lossy().into_owned();
    let random = name
        .strip_prefix("cilium-migrate-etcd.")
        .unwrap_or_default();
    assert_eq!(random.len(), 10, "{name}");
    assert_eq!(
        fs::symlink_metadata(left).unwrap().permissions().mode() & 0o7777,
        0o700,
        "{}",
        left.display()
    );
    assert!(saved_at.is_file());

    // The next snapshot removes it, and leaves nothing of its own.
    let dir = tmp.path().join("bundle");
    let mut bundle = etcd::empty_bundle(&dir);
    let options = EtcdSnapshotOptions {
        etcdctl: etcd::tool("etcdctl"),
        ..options
    };
    let file = snapshot_into(&mut bundle, &inventory, &options)
        .await
        .unwrap();
    assert_eq!(file.node, etcd::HOST);
    assert_eq!(names(&remote_tmp), ["cilium-migrate-etcd.notes", "other"]);
}
