//! `--via pod`: kube-proxy's rules removed through a short-lived privileged pod per node, for
//! clusters the admin host cannot SSH into. The pod (the running Cilium agent's image, already on
//! every node) only sleeps; each command is an exec of `nsenter -t 1 -m -u -i -n -- <argv>`, so
//! it runs with the node's own binaries in the node's namespaces, exactly as over SSH, and the
//! rules reach `iptables-restore` on the exec's standard input. The pod is deleted afterwards.
//!
//! Why not cni-fs's `PodAccess`: it runs one script and reads its log; this needs several
//! commands with standard input and exit statuses, which only exec gives.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::Error;
use crate::node::Output;

/// The pod's container.
const CONTAINER: &str = "cleanup";
/// The pod's label (to find leftovers).
pub const POD_LABEL: &str = "cilium-migrate.io/kube-proxy-cleanup";

/// How to run the pods.
#[derive(Clone)]
pub struct PodExec {
    /// The client.
    pub client: Client,
    /// Their namespace.
    pub namespace: String,
    /// The image: one with `nsenter` and `sleep` that every node has (the agent's).
    pub image: String,
    /// How long a pod may take to start.
    pub timeout: Duration,
}

/// The pod's name for `node` (a DNS label: at most 63 characters).
pub fn pod_name(node: &str) -> String {
    let clean: String = node
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let mut name = format!("kube-proxy-cleanup-{clean}");
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// The pod for `node`: on that node, the host's network and PID namespaces, privileged, only
/// sleeping (it ends by itself after 15 minutes if it is never deleted).
pub fn pod_spec(node: &str, namespace: &str, image: &str) -> Result<Pod, Error> {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(node),
            "namespace": namespace,
            "labels": { POD_LABEL: "true" },
        },
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "hostPID": true,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 900,
            "terminationGracePeriodSeconds": 0,
            "priorityClassName": "system-node-critical",
            "tolerations": [{ "operator": "Exists" }],
            "containers": [{
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "900"],
                "securityContext": { "privileged": true },
            }],
        },
    }))
    .map_err(|e| Error::Unhealthy(format!("the cleanup pod spec: {e}")))
}

/// What an exec runs for `argv`: the node's own program in the node's namespaces.
pub fn exec_argv(argv: &[&str]) -> Vec<String> {
    ["nsenter", "-t", "1", "-m", "-u", "-i", "-n", "--"]
        .iter()
        .chain(argv)
        .map(|s| (*s).to_owned())
        .collect()
}

/// A running cleanup pod on one node.
pub struct PodSession {
    pods: Api<Pod>,
    name: String,
    node: String,
}

impl PodExec {
    /// Starts the pod on `node` and waits until it runs.
    pub async fn open(&self, node: &str) -> Result<PodSession, Error> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = pod_name(node);
        let fail = |problem: String| Error::Node {
            node: node.to_owned(),
            problem,
        };
        // A pod an interrupted run left would block the name.
        if pods
            .get_opt(&name)
            .await
            .map_err(crate::kube_error(format!("reading pod {name}")))?
            .is_some()
        {
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            let gone =
                kube::runtime::wait::await_condition(pods.clone(), &name, |p: Option<&Pod>| {
                    p.is_none()
                });
            tokio::time::timeout(self.timeout, gone)
                .await
                .map_err(|_| fail(format!("an old pod {name} does not go away")))?
                .map_err(|e| fail(format!("waiting for the old pod {name}: {e}")))?;
        }
        pods.create(
            &PostParams::default(),
            &pod_spec(node, &self.namespace, &self.image)?,
        )
        .await
        .map_err(crate::kube_error(format!(
            "creating pod {}/{name}",
            self.namespace
        )))?;
        let session = PodSession {
            pods: pods.clone(),
            name: name.clone(),
            node: node.to_owned(),
        };
        let running = kube::runtime::wait::await_condition(
            pods.clone(),
            &name,
            kube::runtime::conditions::is_pod_running(),
        );
        match tokio::time::timeout(self.timeout, running).await {
            Ok(Ok(_)) => Ok(session),
            Ok(Err(e)) => {
                session.close().await;
                Err(fail(format!("waiting for pod {name}: {e}")))
            }
            Err(_) => {
                session.close().await;
                Err(fail(format!(
                    "pod {name} did not run within {:?} (is image {} on the node?)",
                    self.timeout, self.image
                )))
            }
        }
    }
}

impl PodSession {
    /// Runs `argv` on the node with `stdin`.
    pub async fn run(&self, argv: &[&str], stdin: Option<&str>) -> Result<Output, Error> {
        let fail = |problem: String| Error::Node {
            node: self.node.clone(),
            problem,
        };
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(stdin.is_some())
            .stdout(true)
            .stderr(true);
        let mut attached = self
            .pods
            .exec(&self.name, exec_argv(argv), &params)
            .await
            .map_err(|e| fail(format!("exec in pod {}: {e}", self.name)))?;
        let pipe = attached.stdin();
        let status = attached.take_status();
        let mut out = attached.stdout();
        let mut err = attached.stderr();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        // Written while the output is read: a command that prints while it reads cannot block.
        let write = async move {
            if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
                pipe.write_all(text.as_bytes()).await?;
                pipe.shutdown().await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_out = async {
            if let Some(out) = out.as_mut() {
                out.read_to_end(&mut stdout).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(err) = err.as_mut() {
                err.read_to_end(&mut stderr).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (w, a, b) = tokio::join!(write, read_out, read_err);
        w.and(a)
            .and(b)
            .map_err(|e| fail(format!("talking to {}: {e}", argv[0])))?;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let code = exit_code(status.as_ref());
        Ok(Output {
            status: code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    /// Deletes the pod.
    pub async fn close(self) {
        let _ = self
            .pods
            .delete(&self.name, &DeleteParams::default().grace_period(0))
            .await;
    }
}

/// The exit code in an exec's final status (`Success`, or `NonZeroExitCode` with cause
/// `ExitCode`); -1 when there is none.
pub fn exit_code(status: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>) -> i32 {
    let Some(status) = status else { return -1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref())
                .and_then(|m| m.parse().ok())
        })
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

    use super::*;

    #[test]
    fn the_pod_runs_on_its_node_in_the_hosts_namespaces_and_only_sleeps() {
        let pod = pod_spec(
            "Node_1.example",
            "kube-system",
            "quay.io/cilium/cilium:v1.15.9",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = pod.spec.unwrap_or_default();
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some("kube-proxy-cleanup-node-1-example")
        );
        assert_eq!(spec.node_name.as_deref(), Some("Node_1.example"));
        assert_eq!((spec.host_network, spec.host_pid), (Some(true), Some(true)));
        assert!(spec.volumes.is_none(), "no host path is mounted");
        let container = &spec.containers[0];
        assert_eq!(
            container.command.as_deref(),
            Some(&["sleep".to_owned(), "900".to_owned()][..])
        );
        assert_eq!(
            container
                .security_context
                .as_ref()
                .and_then(|s| s.privileged),
            Some(true)
        );
        assert!(pod_name(&"n".repeat(100)).len() <= 63);
    }

    #[test]
    fn commands_run_in_the_nodes_namespaces_as_argument_vectors() {
        assert_eq!(
            exec_argv(&["iptables-restore", "--noflush"]),
            [
                "nsenter",
                "-t",
                "1",
                "-m",
                "-u",
                "-i",
                "-n",
                "--",
                "iptables-restore",
                "--noflush"
            ]
        );
    }

    #[test]
    fn exit_codes_from_the_exec_status() {
        let failed = Status {
            status: Some("Failure".to_owned()),
            reason: Some("NonZeroExitCode".to_owned()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".to_owned()),
                    message: Some("127".to_owned()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&failed)), 127);
        let ok = Status {
            status: Some("Success".to_owned()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&ok)), 0);
        assert_eq!(exit_code(None), -1);
    }
}
