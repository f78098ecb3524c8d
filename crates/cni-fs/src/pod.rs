//! Reaching nodes through a short-lived privileged pod per node: the Cilium image already on the
//! node (never pulled), `nodeName` pinned, every taint tolerated, the directories mounted with
//! `hostPath`. It runs the same `find` commands as SSH and prints their output hex-encoded, one
//! line per step, which is parsed from the pod's log.

use crate::error::Error;
use crate::model::NodeReport;
use crate::remote;
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, Pod, PodSpec, SecurityContext,
    Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the parents of the host directories are mounted in the pod, one directory per
/// requested path (`/host/0`, `/host/1`, ...); also the container's working directory.
const HOST_PREFIX: &str = "/host";
/// The container name.
const CONTAINER: &str = "cni-fs";
/// Label on every pod this module creates.
pub const POD_LABEL: (&str, &str) = ("app.kubernetes.io/name", "cni-fs");

/// The script is fixed; the commands arrive already quoted in environment variables, built by the
/// same functions as the SSH commands.
const SCRIPT: &str = r#"set -u
step() { printf 'cni-fs-result %s %s %s %s\n' "$1" "$2" "$(od -An -v -tx1 /tmp/o | tr -d ' \n')" "$(od -An -v -tx1 /tmp/e | tr -d ' \n')"; }
eval "$CNI_FS_PARENTS" >/tmp/o 2>/tmp/e; step parents-before $?
eval "$CNI_FS_INSPECT" >/tmp/o 2>/tmp/e; step before $?
if [ -n "${CNI_FS_FIX:-}" ]; then
  eval "$CNI_FS_FIX" >/tmp/o 2>/tmp/e; step fix $?
  eval "$CNI_FS_PARENTS" >/tmp/o 2>/tmp/e; step parents-after $?
  eval "$CNI_FS_INSPECT" >/tmp/o 2>/tmp/e; step after $?
fi
"#;

/// How to reach nodes through pods.
#[derive(Clone)]
pub struct PodAccess {
    /// The API client.
    pub client: kube::Client,
    /// Where the pods are created (e.g. `kube-system`).
    pub namespace: String,
    /// The Cilium agent image already on every node.
    pub image: String,
    /// How long a pod may take from creation to completion.
    pub timeout: Duration,
}

/// What the pod printed, parsed.
#[derive(Debug)]
pub struct PodResult {
    /// The inspection before any change.
    pub before: NodeReport,
    /// After the fix (only when the pod was asked to fix).
    pub after: Option<NodeReport>,
}

/// How the pod reaches one requested host directory.
///
/// Kubelet resolves a hostPath's symlinks before mounting it, so mounting the directory itself
/// would turn a symlinked `/opt/cni/bin` into its target, which the fix would then change. The
/// directory above its parent is mounted instead (`/opt` for `/opt/cni/bin`), and `find`
/// starts at the names inside it (`cni/bin`, and `cni` for the parent): like over SSH, a
/// symlink there is listed, never followed.
struct Mounted {
    /// The host directory mounted: the parent's parent (`/` when the parent is `/`).
    host_mount: String,
    /// Where it is mounted in the pod (`/host/<index>`).
    mount_path: String,
    /// What `find` is given for the requested directory, relative to the working directory
    /// [`HOST_PREFIX`] (`<index>/cni/bin`: starts with a digit, so never read as an option).
    shown: PathBuf,
    /// The same for its parent (`<index>/cni`, or `<index>` when the parent is `/`).
    shown_parent: PathBuf,
    /// The parent on the host.
    host_parent: PathBuf,
}

fn layout(roots: &[PathBuf]) -> Result<Vec<Mounted>, Error> {
    roots
        .iter()
        .enumerate()
        .map(|(i, root)| {
            let Some(parent) = root.parent() else {
                return Err(Error::InvalidPath {
                    path: root.clone(),
                    reason: "has no parent directory to mount; give the CNI directory, \
                             e.g. /opt/cni/bin"
                        .into(),
                });
            };
            let mount = parent.parent().unwrap_or(parent);
            utf8(root)?;
            let index = PathBuf::from(i.to_string());
            let under = |path: &Path| match path.strip_prefix(mount) {
                Ok(rel) if !rel.as_os_str().is_empty() => index.join(rel),
                _ => index.clone(),
            };
            Ok(Mounted {
                host_mount: utf8(mount)?,
                mount_path: format!("{HOST_PREFIX}/{i}"),
                shown: under(root),
                shown_parent: under(parent),
                host_parent: parent.to_path_buf(),
            })
        })
        .collect()
}

/// A DNS-1123 pod name for a node: readable prefix plus a hash so different nodes never collide.
pub fn pod_name(node: &str) -> String {
    let hash = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut slug: String = node
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    slug.truncate(40);
    let slug = slug.trim_matches('-');
    format!("cni-fs-{slug}-{:08x}", hash as u32).replace("--", "-")
}

fn utf8(path: &Path) -> Result<String, Error> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidPath {
            path: path.to_path_buf(),
            reason: "is not UTF-8, which a pod spec cannot carry; use --via ssh".into(),
        })
}

/// The pod that inspects (and with `apply`, fixes) `roots` on `node`.
pub fn pod_spec(
    node: &str,
    namespace: &str,
    image: &str,
    roots: &[PathBuf],
    apply: bool,
) -> Result<Pod, Error> {
    let mounted = layout(roots)?;
    let shown: Vec<PathBuf> = mounted.iter().map(|m| m.shown.clone()).collect();
    let mut volumes = vec![Volume {
        name: "scratch".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "scratch".into(),
        mount_path: "/tmp".into(),
        ..VolumeMount::default()
    }];
    for (i, m) in mounted.iter().enumerate() {
        let name = format!("host-{i}");
        volumes.push(Volume {
            name: name.clone(),
            // `Directory`: a missing path fails the mount instead of being created.
            host_path: Some(HostPathVolumeSource {
                path: m.host_mount.clone(),
                type_: Some("Directory".into()),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name,
            mount_path: m.mount_path.clone(),
            read_only: Some(!apply),
            ..VolumeMount::default()
        });
    }
    let env_var = |name: &str, argvs: &[Vec<std::ffi::OsString>]| -> Result<EnvVar, Error> {
        let text = remote::shell_and(argvs);
        Ok(EnvVar {
            name: name.into(),
            value: Some(utf8(Path::new(&text))?),
            ..EnvVar::default()
        })
    };
    let shown_parents: Vec<PathBuf> = mounted.iter().map(|m| m.shown_parent.clone()).collect();
    let mut env = vec![
        env_var("CNI_FS_INSPECT", &[remote::inspect_argv(&shown)])?,
        env_var("CNI_FS_PARENTS", &[remote::parents_argv(&shown_parents)])?,
    ];
    if apply {
        // Only the parents the fix may change; `find` decides whether they need it.
        let fixable: Vec<PathBuf> = mounted
            .iter()
            .filter(|m| crate::policy::parent_fixable(&m.host_parent))
            .map(|m| m.shown_parent.clone())
            .collect();
        let mut commands = Vec::new();
        if !fixable.is_empty() {
            commands.push(remote::fix_parent_argv(&fixable));
        }
        commands.extend(remote::fix_argvs(&shown));
        env.push(env_var("CNI_FS_FIX", &commands)?);
    }
    let labels = BTreeMap::from([
        (POD_LABEL.0.to_string(), POD_LABEL.1.to_string()),
        (
            "app.kubernetes.io/managed-by".into(),
            "cargo-xtask-nodes".into(),
        ),
    ]);
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(node)),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            restart_policy: Some("Never".into()),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".into()),
                ..Toleration::default()
            }]),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(0),
            containers: vec![Container {
                name: CONTAINER.into(),
                image: Some(image.into()),
                // The agent image is on every node already; never pull.
                image_pull_policy: Some("Never".into()),
                command: Some(vec!["sh".into(), "-c".into(), SCRIPT.into()]),
                // The commands name the directories relative to it.
                working_dir: Some(HOST_PREFIX.into()),
                env: Some(env),
                volume_mounts: Some(mounts),
                security_context: Some(SecurityContext {
                    privileged: Some(true),
                    run_as_user: Some(0),
                    run_as_group: Some(0),
                    ..SecurityContext::default()
                }),
                ..Container::default()
            }],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    })
}

fn unhex(node: &str, text: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::RemoteOutput {
        node: node.into(),
        reason: "pod log: bad hex".into(),
    };
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// Parses the pod's log into the inspections before and (when it fixed) after.
pub fn parse_logs(node: &str, roots: &[PathBuf], logs: &str) -> Result<PodResult, Error> {
    let mounted = layout(roots)?;
    let shown: Vec<PathBuf> = mounted.iter().map(|m| m.shown.clone()).collect();
    let shown_parents: Vec<PathBuf> = mounted.iter().map(|m| m.shown_parent.clone()).collect();
    let host_parents: Vec<PathBuf> = mounted.iter().map(|m| m.host_parent.clone()).collect();
    let (mut before, mut after) = (None, None);
    let (mut parents_before, mut parents_after) = (None, None);
    for line in logs.lines() {
        let Some(rest) = line.strip_prefix("cni-fs-result ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let [stage, status, out, err] = fields[..] else {
            return Err(Error::RemoteOutput {
                node: node.into(),
                reason: format!("pod log line `{line}`"),
            });
        };
        let status: i32 = status.parse().unwrap_or(-1);
        let (out, err) = (unhex(node, out)?, unhex(node, err)?);
        match stage {
            "before" | "after" => {
                let mut report = remote::parse_inspection(node, roots, &shown, status, &out, &err)?;
                forget_container_names(&mut report);
                if stage == "before" {
                    before = Some(report)
                } else {
                    after = Some(report)
                }
            }
            "parents-before" => parents_before = Some((status, out, err)),
            "parents-after" => parents_after = Some((status, out, err)),
            "fix" if status != 0 => {
                return Err(Error::Remote {
                    node: node.into(),
                    what: "fixing (in the pod)".into(),
                    status,
                    stderr: String::from_utf8_lossy(&err).trim().to_string(),
                });
            }
            _ => {}
        }
    }
    let mut before = before.ok_or_else(|| Error::RemoteOutput {
        node: node.into(),
        reason: format!("the pod log has no inspection result: {}", logs.trim()),
    })?;
    let attach = |report: &mut NodeReport, parents: Option<(i32, Vec<u8>, Vec<u8>)>| {
        let Some((status, out, err)) = parents else {
            return Ok(());
        };
        remote::attach_parents(report, &host_parents, &shown_parents, status, &out, &err)?;
        for parent in report.trees.iter_mut().filter_map(|t| t.parent.as_mut()) {
            forget_container_name(parent);
        }
        Ok::<(), Error>(())
    };
    attach(&mut before, parents_before)?;
    if let Some(after) = after.as_mut() {
        attach(after, parents_after)?;
    }
    Ok(PodResult { before, after })
}

/// Names resolved inside the container come from the image's `/etc/passwd`, not the node's:
/// keep only root's, which is the same everywhere.
fn forget_container_names(report: &mut NodeReport) {
    for tree in &mut report.trees {
        let entries = match &mut tree.state {
            crate::model::TreeState::Present { entries } => entries,
            _ => continue,
        };
        entries.iter_mut().for_each(forget_container_name);
    }
}

fn forget_container_name(entry: &mut crate::model::Entry) {
    if entry.attrs.uid != 0 {
        entry.user = None;
    }
    if entry.attrs.gid != 0 {
        entry.group = None;
    }
}

impl PodAccess {
    /// Runs the pod on `node`, waits for it, reads its log and deletes it.
    pub async fn run(
        &self,
        node: &str,
        roots: &[PathBuf],
        apply: bool,
    ) -> Result<PodResult, Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let pod = pod_spec(node, &self.namespace, &self.image, roots, apply)?;
        let name = pod_name(node);
        let kube_err = |what: String| move |source| Error::Kube { what, source };
        // A pod left over from an interrupted run would block the name.
        let _ = pods
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await;
        wait_gone(&pods, &name, self.timeout).await;
        pods.create(&PostParams::default(), &pod)
            .await
            .map_err(kube_err(format!("creating pod {}/{name}", self.namespace)))?;
        let outcome = self.wait_and_read(&pods, node, &name, roots).await;
        let _ = pods
            .delete(&name, &DeleteParams::default().grace_period(0))
            .await;
        outcome
    }

    async fn wait_and_read(
        &self,
        pods: &Api<Pod>,
        node: &str,
        name: &str,
        roots: &[PathBuf],
    ) -> Result<PodResult, Error> {
        let finished = |pod: Option<&Pod>| {
            pod.and_then(|p| p.status.as_ref()).is_some_and(|s| {
                matches!(s.phase.as_deref(), Some("Succeeded" | "Failed"))
                    || stuck_reason(s).is_some()
            })
        };
        let waited = tokio::time::timeout(
            self.timeout,
            kube::runtime::wait::await_condition(pods.clone(), name, finished),
        )
        .await;
        let pod_error = |reason: String| Error::Pod {
            node: node.into(),
            namespace: self.namespace.clone(),
            pod: name.into(),
            reason,
        };
        let pod = match waited {
            Ok(Ok(Some(pod))) => pod,
            Ok(Ok(None)) => return Err(pod_error("was deleted before it finished".into())),
            Ok(Err(e)) => return Err(pod_error(format!("watching it failed: {e}"))),
            Err(_) => {
                let events = self.events(name).await;
                return Err(pod_error(format!(
                    "did not finish within {:?}; events: {events}",
                    self.timeout
                )));
            }
        };
        if let Some(reason) = pod.status.as_ref().and_then(stuck_reason) {
            return Err(pod_error(format!(
                "cannot start: {reason} (is image {} on the node?)",
                self.image
            )));
        }
        let logs = pods
            .logs(
                name,
                &LogParams {
                    container: Some(CONTAINER.into()),
                    ..LogParams::default()
                },
            )
            .await
            .map_err(|source| Error::Kube {
                what: format!("reading the log of pod {name}"),
                source,
            })?;
        parse_logs(node, roots, &logs)
    }

    async fn events(&self, pod: &str) -> String {
        let events: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let params = ListParams::default().fields(&format!("involvedObject.name={pod}"));
        match events.list(&params).await {
            Ok(list) if list.items.is_empty() => "none".into(),
            Ok(list) => list
                .items
                .iter()
                .filter_map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => format!("(cannot list events: {e})"),
        }
    }
}

/// The image of the running Cilium agent (DaemonSet `cilium`, container `cilium-agent`): it is on
/// every node already, so the pods need no pull.
pub async fn cilium_agent_image(client: &kube::Client, namespace: &str) -> Result<String, Error> {
    let daemonsets: Api<k8s_openapi::api::apps::v1::DaemonSet> =
        Api::namespaced(client.clone(), namespace);
    let ds = daemonsets
        .get("cilium")
        .await
        .map_err(|source| Error::Kube {
            what: format!(
                "reading DaemonSet {namespace}/cilium for the agent image (or pass --image)"
            ),
            source,
        })?;
    ds.spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().find(|c| c.name == "cilium-agent"))
        .and_then(|c| c.image)
        .ok_or_else(|| Error::Pod {
            node: "-".into(),
            namespace: namespace.into(),
            pod: "DaemonSet/cilium".into(),
            reason: "has no container cilium-agent with an image; pass --image".into(),
        })
}

/// A waiting reason that will not resolve by itself.
fn stuck_reason(status: &k8s_openapi::api::core::v1::PodStatus) -> Option<String> {
    status.container_statuses.iter().flatten().find_map(|c| {
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        let reason = waiting.reason.as_deref()?;
        matches!(
            reason,
            "ErrImageNeverPull"
                | "CreateContainerConfigError"
                | "CreateContainerError"
                | "InvalidImageName"
        )
        .then(|| format!("{reason}: {}", waiting.message.clone().unwrap_or_default()))
    })
}

async fn wait_gone(pods: &Api<Pod>, name: &str, timeout: Duration) {
    let gone = |pod: Option<&Pod>| pod.is_none();
    let _ = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(pods.clone(), name, gone),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Vec<PathBuf> {
        vec!["/opt/cni/bin".into(), "/etc/cni/net.d".into()]
    }

    #[test]
    fn spec_pins_the_node_tolerates_everything_and_never_pulls() {
        let pod = pod_spec(
            "node-1",
            "kube-system",
            "quay.io/cilium/cilium:v1.15.9",
            &roots(),
            false,
        )
        .unwrap();
        let json = serde_json::to_value(&pod).unwrap();
        let spec = &json["spec"];
        assert_eq!(spec["nodeName"], "node-1");
        assert_eq!(
            spec["tolerations"],
            serde_json::json!([{"operator": "Exists"}])
        );
        assert_eq!(spec["restartPolicy"], "Never");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Never");
        assert_eq!(c["securityContext"]["privileged"], true);
        // The parent's parent is mounted: kubelet would resolve a symlinked /opt/cni/bin (or
        // /opt/cni) to its target.
        assert_eq!(
            spec["volumes"][1]["hostPath"],
            serde_json::json!({"path": "/opt", "type": "Directory"})
        );
        assert_eq!(
            spec["volumes"][2]["hostPath"],
            serde_json::json!({"path": "/etc", "type": "Directory"})
        );
        assert_eq!(c["volumeMounts"][1]["mountPath"], "/host/0");
        assert_eq!(c["volumeMounts"][2]["mountPath"], "/host/1");
        assert_eq!(c["workingDir"], "/host");
        assert_eq!(
            c["volumeMounts"][1]["readOnly"], true,
            "check mounts read-only"
        );
        let env = c["env"].as_array().unwrap();
        assert_eq!(env.len(), 2, "no fix command without apply");
        assert!(
            env[0]["value"]
                .as_str()
                .unwrap()
                .starts_with("'find' '0/cni/bin' '1/cni/net.d' '-xdev'")
        );
        assert!(
            env[1]["value"]
                .as_str()
                .unwrap()
                .starts_with("'find' '0/cni' '1/cni' '-maxdepth' '0' '-printf'")
        );
    }

    #[test]
    fn fix_pod_mounts_read_write_and_carries_the_fix_commands() {
        let pod = pod_spec("node-1", "kube-system", "img", &roots(), true).unwrap();
        let json = serde_json::to_value(&pod).unwrap();
        let c = &json["spec"]["containers"][0];
        assert_eq!(c["volumeMounts"][1]["readOnly"], false);
        let fix = c["env"][2]["value"].as_str().unwrap();
        assert!(
            fix.starts_with("'find' '0/cni' '1/cni' '-maxdepth' '0' '-type' 'd' '('")
                && fix.contains("'chown' '-h' '0:0'")
                && fix.contains(" && 'find' '0/cni/bin' '1/cni/net.d' '-xdev'"),
            "{fix}"
        );
        // A parent that is not a CNI directory's is never changed.
        let pod = pod_spec("node-1", "ns", "img", &["/srv/x/bin".into()], true).unwrap();
        let json = serde_json::to_value(&pod).unwrap();
        let fix = json["spec"]["containers"][0]["env"][2]["value"]
            .as_str()
            .unwrap();
        assert!(fix.starts_with("'find' '0/x/bin' '-xdev'"), "{fix}");
    }

    #[test]
    fn pod_names_are_dns_labels_and_distinct() {
        let a = pod_name("Node_1.example.com");
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert_ne!(pod_name("node-1"), pod_name("node_1"));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn parses_a_recorded_fix_log() {
        let before = b"0/cni/bin\0d\x001001\x000\x001001\0root\x00755\x002\x000/cni/bin\0\0";
        let after = b"0/cni/bin\0d\x000\x000\0root\0root\x00755\x002\x000/cni/bin\0\0";
        let missing = b"find: '1/cni/net.d': No such file or directory\n";
        let parents = b"0/cni\0d\x001001\x000\x001001\0root\x00755\x003\x000/cni\0\0\
1/cni\0d\x000\x000\0root\0root\x00755\x002\x001/cni\0\0";
        let logs = format!(
            "cni-fs-result parents-before 0 {} \ncni-fs-result before 1 {} {}\n\
             cni-fs-result fix 0  \ncni-fs-result after 1 {} {}\n",
            hex(parents),
            hex(before),
            hex(missing),
            hex(after),
            hex(missing)
        );
        let result = parse_logs("node-1", &roots(), &logs).unwrap();
        assert!(result.before.agent_would_fail());
        let entry = &result.before.trees[0].entries()[0];
        assert_eq!(
            entry.path,
            PathBuf::from("/opt/cni/bin"),
            "host path, not the pod's"
        );
        let parent = result.before.trees[0].parent.as_ref().unwrap();
        assert_eq!(
            (parent.path.as_path(), parent.attrs.uid),
            (Path::new("/opt/cni"), 1001)
        );
        assert!(result.before.trees[0].parent_concern().is_some());
        assert_eq!(
            result.before.trees[1].parent.as_ref().unwrap().path,
            PathBuf::from("/etc/cni")
        );
        let after = result.after.unwrap();
        assert!(!after.agent_would_fail());
        assert!(after.trees[1].entries().is_empty());
    }

    #[test]
    fn a_failed_fix_in_the_pod_is_an_error() {
        let logs = format!("cni-fs-result before 0 {} \ncni-fs-result fix 1 {} {}\n",
            hex(b"0/cni/bin\0d\x000\x000\0root\0root\x00755\x002\x000/cni/bin\0\x001/cni/net.d\0d\x000\x000\0root\0root\x00755\x002\x001/cni/net.d\0\0"),
            "", hex(b"chown: Read-only file system"));
        let err = parse_logs("node-1", &roots(), &logs).unwrap_err();
        assert!(err.to_string().contains("Read-only"), "{err}");
    }
}
