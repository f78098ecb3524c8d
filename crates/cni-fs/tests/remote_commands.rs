//! The commands sent to nodes, run on this machine the way the node runs them: the pod's script
//! in a container-like root (a private mount namespace, the pod's hostPath volumes bind-mounted
//! where kubelet would put them, after resolving their symlinks as kubelet does), and the fix's
//! `-execdir` command on what `find` hands it. Needs root, `unshare` and `chroot`.

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

mod support {
    pub(crate) mod pod;
}

use cni_fs::{TreeState, fix_argvs, parse_logs, pod_spec};
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::pod::run_pod;

fn owned(path: &Path, uid: u32, mode: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(0)).unwrap();
    if !path.is_symlink() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn the_pod_reports_a_symlinked_directory_and_never_fixes_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    // /opt/cni/bin is a symlink to a kube-owned directory elsewhere; /etc/cni/net.d is real.
    let real = host.join("srv/cni-bin");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("loopback"), b"").unwrap();
    owned(&real, 1001, 0o755);
    owned(&real.join("loopback"), 1001, 0o755);
    std::fs::create_dir_all(host.join("opt/cni")).unwrap();
    std::os::unix::fs::symlink("../../srv/cni-bin", host.join("opt/cni/bin")).unwrap();
    let net_d = host.join("etc/cni/net.d");
    std::fs::create_dir_all(&net_d).unwrap();
    owned(&net_d, 1001, 0o775);
    let roots: Vec<PathBuf> = vec![host.join("opt/cni/bin"), net_d.clone()];

    // The check: the symlink is what it is, as over SSH and locally.
    let check = pod_spec("n1", "kube-system", "img", &roots, false).unwrap();
    let logs = run_pod(&check, &tmp.path().join("check-root"));
    let report = parse_logs("n1", &roots, &logs).unwrap().before;
    assert!(
        matches!(&report.trees[0].state, TreeState::NotADirectory { entry } if entry.path == roots[0]),
        "{:?}",
        report.trees[0]
    );
    assert!(report.agent_would_fail());
    assert_eq!(report.trees[1].entries()[0].path, net_d);

    // The fix changes the real directory and leaves the symlink's target alone.
    let fix = pod_spec("n1", "kube-system", "img", &roots, true).unwrap();
    let logs = run_pod(&fix, &tmp.path().join("fix-root"));
    let result = parse_logs("n1", &roots, &logs).unwrap();
    let after = result.after.unwrap();
    assert!(matches!(
        after.trees[0].state,
        TreeState::NotADirectory { .. }
    ));
    let net_d_after = &after.trees[1].entries()[0];
    assert_eq!((net_d_after.attrs.uid, net_d_after.attrs.mode), (0, 0o755));
    for path in [&real, &real.join("loopback")] {
        let meta = std::fs::metadata(path).unwrap();
        assert_eq!(
            (meta.uid(), meta.mode() & 0o7777),
            (1001, 0o755),
            "{} changed through the symlink",
            path.display()
        );
    }
}

/// The command `find -execdir ... {} +` runs for the fix's step `index`, without `{}`.
fn execdir_command(index: usize) -> Vec<OsString> {
    let argv = fix_argvs(&["/unused".into()])[index].clone();
    let start = argv.iter().position(|a| a == "-execdir").unwrap() + 1;
    let end = argv.iter().position(|a| a == "{}").unwrap();
    argv[start..end].to_vec()
}

#[test]
fn the_fix_never_changes_the_mode_of_a_symlinks_target() {
    // What happens when a directory is swapped for a symlink after `find` looked at it:
    // `-execdir` runs the command in the parent with `./name`.
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    owned(&outside, 1001, 0o777);
    let tree = tmp.path().join("bin");
    std::fs::create_dir(&tree).unwrap();
    std::fs::create_dir(tree.join("real")).unwrap();
    owned(&tree.join("real"), 0, 0o777);
    std::os::unix::fs::symlink(&outside, tree.join("swapped")).unwrap();

    let command = execdir_command(1);
    let run = |name: &str| {
        Command::new(&command[0])
            .args(&command[1..])
            .arg(format!("./{name}"))
            .current_dir(&tree)
            .output()
            .unwrap()
    };
    let out = run("swapped");
    assert!(!out.status.success(), "a symlink must fail the step");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("./swapped"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(&outside).unwrap().mode() & 0o7777,
        0o777,
        "the symlink's target changed"
    );
    // A real directory is changed as planned.
    let out = run("real");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::metadata(tree.join("real")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn the_parent_fix_changes_exactly_the_parents_at_risk() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(u32, u32, u32); 9] = [
        (1001, 0, 0o755),
        (1001, 1001, 0o1777),
        (0, 1001, 0o775),
        (0, 1001, 0o755),
        (0, 0, 0o757),
        (0, 0, 0o755),
        (0, 0, 0o775),
        (0, 0, 0o1777),
        (0, 0, 0o555),
    ];
    let mut parents = Vec::new();
    for (i, (uid, gid, mode)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("p{i}"));
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(*uid), Some(*gid)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(*mode)).unwrap();
        parents.push(dir);
    }
    let argv = cni_fs::fix_parent_argv(&parents);
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (dir, (uid, gid, mode)) in parents.iter().zip(cases) {
        let before = cni_fs::Attrs { uid, gid, mode };
        let meta = std::fs::metadata(dir).unwrap();
        let after = cni_fs::Attrs {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        };
        let want = if cni_fs::parent_at_risk(before) {
            cni_fs::fixed_attrs(cni_fs::Kind::Dir, before)
        } else {
            before
        };
        assert_eq!(after, want, "{before:?}");
    }
}
