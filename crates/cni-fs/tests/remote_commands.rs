//! The commands sent to nodes, run on this machine the way the node runs them: the pod's script
//! in a container-like root (a private mount namespace, the pod's hostPath volumes bind-mounted
//! where kubelet would put them, after resolving their symlinks as kubelet does), and the fix's
//! `-execdir` command on what `find` hands it. Needs root, `unshare` and `chroot`.

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

use cni_fs::{TreeState, fix_argvs, parse_logs, pod_spec};
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Mounts the container root `root` in a private mount namespace (system binaries, /dev,
/// /proc, an empty /tmp, and every hostPath volume of `pod` at its mount path, resolved like
/// kubelet resolves it, read-only where the pod says so), then runs the container's command in
/// its working directory with its environment. Returns what it printed (the pod's log).
fn run_pod(pod: &k8s_openapi::api::core::v1::Pod, root: &Path) -> String {
    let spec = serde_json::to_value(pod.spec.as_ref().unwrap()).unwrap();
    let container = &spec["containers"][0];
    for dir in ["usr", "dev", "proc", "tmp"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), root.join(link)).unwrap();
    }
    let mut mounts: Vec<String> = Vec::new();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let volume = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let Some(host_path) = volume["hostPath"]["path"].as_str() else {
            continue;
        };
        // hostPath type Directory: kubelet checks that the path (symlinks followed) is a
        // directory, and the runtime bind-mounts what it resolves to.
        assert_eq!(volume["hostPath"]["type"], "Directory");
        let source = std::fs::canonicalize(host_path).unwrap();
        assert!(source.is_dir(), "{host_path}");
        let target = root.join(mount["mountPath"].as_str().unwrap().trim_start_matches('/'));
        std::fs::create_dir_all(&target).unwrap();
        let read_only = mount["readOnly"].as_bool().unwrap_or(false);
        mounts.extend([
            source.display().to_string(),
            target.display().to_string(),
            if read_only { "ro" } else { "rw" }.to_string(),
        ]);
    }
    let setup = r#"set -e
root=$1; shift
mount --rbind /usr "$root/usr"
mount --rbind /dev "$root/dev"
mount --rbind /proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
while [ "$#" -gt 0 ]; do
  mount --bind "$1" "$2"
  if [ "$3" = ro ]; then mount -o remount,bind,ro "$2"; fi
  shift 3
done
exec chroot "$root" sh -c 'cd "${POD_WORKDIR:-/}" && exec sh -c "$POD_SCRIPT"'"#;
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            setup,
            "sh",
        ])
        .arg(root)
        .args(&mounts)
        .env_clear()
        .env("PATH", "/usr/bin:/usr/sbin")
        .env("POD_SCRIPT", container["command"][2].as_str().unwrap());
    if let Some(dir) = container["workingDir"].as_str() {
        command.env("POD_WORKDIR", dir);
    }
    for var in container["env"].as_array().unwrap() {
        command.env(
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap(),
        );
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "the pod failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

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
