//! End-to-end: `nodes --via pod` against a real API server (the shared testbed, in a namespace
//! of its own; run with `cargo xtask e2e`).
//!
//! kwok's fake nodes never run containers, so this proves the plumbing, not the inspection: the
//! API server accepts the pod; it is pinned to the node, tolerates every taint, is privileged,
//! never pulls, mounts the directories' parents' parents with hostPath; a pod that does not
//! finish is reported with the node and pod named, and is deleted in every case. The agent image
//! is read from the running DaemonSet. (The inspection itself is the same `find` as over SSH,
//! tested there; the pod's script runs in a container-like root in `cni-fs`'s
//! `remote_commands` test, and its log format is unit-tested in `cni-fs`.)

use std::path::PathBuf;
use std::time::Duration;

use cni_fs::{Access, Error, Node, PodAccess};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

const IMAGE: &str = "quay.io/cilium/cilium:v1.15.9";
/// How long the pod may run before the tool gives up (kwok keeps it Running forever).
const POD_TIMEOUT: Duration = Duration::from_secs(8);
/// How long to wait for the pod to appear and to be gone.
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn pod_access_pins_a_privileged_pod_reports_a_stuck_one_and_always_deletes_it() {
    let cluster = tests::SharedCluster::require();
    let client = cluster.client().await;
    let node_name = cluster.testbed().nodes()[0].clone();
    let namespace = tests::create_namespace(&client, "nodes-pod").await;
    let namespace = namespace.as_str();
    // Pods are admitted once the namespace's default ServiceAccount exists.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let exists = |sa: Option<&ServiceAccount>| sa.is_some();
    tokio::time::timeout(WAIT, await_condition(accounts, "default", exists))
        .await
        .expect("the default ServiceAccount appears in time")
        .expect("watch");

    // The agent image comes from the running DaemonSet; without one the error says what to pass.
    let missing = cni_fs::cilium_agent_image(&client, namespace)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("--image"), "{missing}");
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "cilium"},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "cilium"}},
                "spec": {
                    "nodeSelector": {"no-such-node": "true"},
                    "containers": [{"name": "cilium-agent", "image": IMAGE}]
                }
            }
        }
    }))
    .expect("DaemonSet");
    daemonsets
        .create(&PostParams::default(), &ds)
        .await
        .expect("create DaemonSet");
    let image = cni_fs::cilium_agent_image(&client, namespace)
        .await
        .expect("agent image");
    assert_eq!(image, IMAGE);

    // Watch for the pod while the tool runs, to see it as the API server stored it.
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod_name = cni_fs::pod_name(&node_name);
    let seen = tokio::spawn({
        let (pods, pod_name) = (pods.clone(), pod_name.clone());
        async move {
            let exists = |pod: Option<&Pod>| pod.is_some();
            tokio::time::timeout(WAIT, await_condition(pods, &pod_name, exists)).await
        }
    });
    let access = Access::Pod(PodAccess {
        client: client.clone(),
        namespace: namespace.to_string(),
        image,
        timeout: POD_TIMEOUT,
    });
    let roots: Vec<PathBuf> = cni_fs::DEFAULT_PATHS.iter().map(PathBuf::from).collect();
    let result = access
        .inspect(&Node::named(node_name.clone()), &roots)
        .await;

    let pod = seen
        .await
        .expect("watcher task")
        .expect("the pod appeared in time")
        .expect("watch")
        .expect("pod");
    let spec = serde_json::to_value(pod.spec.expect("spec")).expect("json");
    assert_eq!(spec["nodeName"], node_name.as_str());
    assert_eq!(spec["tolerations"][0]["operator"], "Exists");
    assert_eq!(spec["restartPolicy"], "Never");
    let container = &spec["containers"][0];
    assert_eq!(container["image"], IMAGE);
    assert_eq!(container["imagePullPolicy"], "Never");
    assert_eq!(container["securityContext"]["privileged"], true);
    let host_paths: Vec<&str> = spec["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    // The parents' parents: kubelet resolves a hostPath's symlinks, so a symlinked
    // /opt/cni/bin (or /opt/cni) mounted itself would be fixed at its target; `find` starts at
    // the names inside the mount instead, and never follows them.
    assert_eq!(host_paths, ["/opt", "/etc"]);
    assert_eq!(container["workingDir"], "/host");
    let env = container["env"][0]["value"]
        .as_str()
        .expect("inspect command");
    assert!(
        env.starts_with("'find' '0/cni/bin' '1/cni/net.d' "),
        "{env}"
    );

    // kwok never finishes the pod: the error names node and pod, and says what happened.
    match result {
        Err(Error::Pod {
            node, pod, reason, ..
        }) => {
            assert_eq!(node, node_name);
            assert_eq!(pod, pod_name);
            assert!(reason.contains("did not finish within"), "{reason}");
        }
        other => panic!("expected a pod error, got {other:?}"),
    }

    // And the pod is gone afterwards.
    let gone = |pod: Option<&Pod>| pod.is_none();
    tokio::time::timeout(WAIT, await_condition(pods.clone(), &pod_name, gone))
        .await
        .expect("the pod is deleted in time")
        .expect("watch");
    tests::delete_namespace(&client, namespace).await;
}
