//! Runs a pod spec's container on this machine the way a node would: a private mount
//! namespace, a container-like root, the pod's hostPath volumes bind-mounted where kubelet would
//! put them after resolving their symlinks as kubelet does. Shared by the cni-fs tests
//! (`mod support`). Needs root, `unshare` and `chroot`.

// Each including test uses a different part of it; a failed setup panics with its cause.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// Mounts the container root `root` in a private mount namespace (system binaries, /dev,
/// /proc, an empty /tmp, and every hostPath volume of `pod` at its mount path, resolved like
/// kubelet resolves it, read-only where the pod says so), then runs the container's command in
/// its working directory with its environment. Returns what it printed (the pod's log).
pub(crate) fn run_pod(pod: &k8s_openapi::api::core::v1::Pod, root: &Path) -> String {
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
