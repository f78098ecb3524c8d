//! The directory holding `/opt/cni/bin` on its real path: Kubespray's `file: state=directory
//! owner=kube` makes the missing `/opt/cni` kube-owned too, and whoever owns it can rename
//! `bin` and put a directory of their own in its place. Each test runs again in a private mount
//! namespace with an empty tmpfs on `/opt`, so nothing of this machine's `/opt` is touched.
//! Needs root, `unshare`, `chroot` and `/usr/sbin/sshd`.

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod pod;
    pub(crate) mod sshd;
}

use cni_fs::{Access, FixPaths, Node, NodeFix, parse_logs, pod_spec};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const IN_NAMESPACE: &str = "CNI_FS_TEST_IN_MOUNT_NAMESPACE";

/// In the test's own run: runs `test` again in a private mount namespace and checks that it
/// passed there; returns false. In that run: mounts an empty tmpfs on `/opt`; returns true.
fn in_private_opt(test: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs", "/opt"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on /opt");
        return true;
    }
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(IN_NAMESPACE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} in its mount namespace:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// `/opt/cni` and `/opt/cni/bin` as Kubespray leaves them (uid 1001 standing in for `kube`).
fn kubespray_opt_cni() {
    std::fs::create_dir_all("/opt/cni/bin").unwrap();
    std::fs::write("/opt/cni/bin/loopback", b"").unwrap();
    for path in ["/opt/cni", "/opt/cni/bin", "/opt/cni/bin/loopback"] {
        std::os::unix::fs::chown(path, Some(1001), Some(0)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn bin() -> FixPaths {
    FixPaths::new(&["/opt/cni/bin".into()], false).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What every access must make of `kubespray_opt_cni`: the check names `/opt/cni`, the fix
/// plans it first and makes it root:root, 0755.
fn assert_parent_reported_and_fixed(fix: &NodeFix) {
    let table = cni_fs::render_check(std::slice::from_ref(&fix.before));
    let row = table
        .lines()
        .find(|l| l.contains("/opt/cni ") && l.contains("PARENT"))
        .unwrap_or_else(|| panic!("no row for /opt/cni:\n{table}"));
    assert!(
        row.contains("can rename /opt/cni/bin") && row.contains("fix makes it root:root"),
        "{row}"
    );
    // The migrate gate's line for the node names it too.
    let outcome = fix.before.outcome();
    assert!(
        outcome.starts_with("agent would fail; /opt/cni: holds /opt/cni/bin"),
        "{outcome}"
    );
    assert_eq!(
        fix.planned[0].path,
        Path::new("/opt/cni"),
        "{:?}",
        fix.planned
    );
    assert_eq!(fix.changed.as_ref(), Some(&fix.planned));
    let meta = std::fs::metadata("/opt/cni").unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o755)
    );
    let after = fix.after.as_ref().unwrap();
    assert_eq!(after.trees[0].parent_concern(), None);
}

#[test]
fn local_reports_and_fixes_a_kube_owned_opt_cni() {
    if !in_private_opt("local_reports_and_fixes_a_kube_owned_opt_cni") {
        return;
    }
    kubespray_opt_cni();
    let rt = runtime();
    let fix = rt
        .block_on(Access::Local.fix(&Node::this_machine(), &bin(), true))
        .unwrap();
    assert_parent_reported_and_fixed(&fix);

    // A symlinked /opt/cni: named, and its target left alone (it could be anything).
    let target = PathBuf::from("/opt/kube-home");
    std::fs::rename("/opt/cni", &target).unwrap();
    std::os::unix::fs::chown(&target, Some(1001), Some(1001)).unwrap();
    std::os::unix::fs::symlink("kube-home", "/opt/cni").unwrap();
    let fix = rt
        .block_on(Access::Local.fix(&Node::this_machine(), &bin(), true))
        .unwrap();
    let why = fix.before.trees[0].parent_concern().unwrap();
    assert!(why.starts_with("a symlink to kube-home"), "{why}");
    assert_eq!(std::fs::metadata(&target).unwrap().uid(), 1001);
}

#[test]
fn ssh_reports_and_fixes_a_kube_owned_opt_cni() {
    if !in_private_opt("ssh_reports_and_fixes_a_kube_owned_opt_cni") {
        return;
    }
    kubespray_opt_cni();
    // Started in the namespace: its sessions see the same /opt.
    let sshd = support::sshd::Sshd::start();
    let fix = runtime()
        .block_on(sshd.access(true).fix(&sshd.node(), &bin(), true))
        .unwrap();
    assert_parent_reported_and_fixed(&fix);
}

#[test]
fn the_pod_reports_and_fixes_a_kube_owned_opt_cni() {
    if !in_private_opt("the_pod_reports_and_fixes_a_kube_owned_opt_cni") {
        return;
    }
    kubespray_opt_cni();
    let work = tempfile::tempdir().unwrap();
    let roots = bin().paths().to_vec();
    let pod = pod_spec("n1", "kube-system", "img", &roots, true).unwrap();
    let logs = support::pod::run_pod(&pod, &work.path().join("root"));
    let result = parse_logs("n1", &roots, &logs).unwrap();
    let before = result.before;
    let after = result.after.unwrap();
    let fix = NodeFix {
        node: "n1".into(),
        planned: cni_fs::plan_fix(&before),
        changed: Some(cni_fs::diff(&before, &after)),
        before,
        after: Some(after),
    };
    assert_parent_reported_and_fixed(&fix);
}
