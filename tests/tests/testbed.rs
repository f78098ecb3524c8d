//! The testbed itself: the shared cluster's nodes are Ready and a DaemonSet rolls out on every one
//! of them; a testbed of its own leaves no process behind after `down`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use testbed::{Options, Testbed, Tools};
use tests::{SharedCluster, create_namespace, delete_namespace, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn shared_cluster_has_ready_nodes_and_rolls_out_a_daemonset_on_each() {
    let cluster = SharedCluster::require();
    let client = cluster.client().await;

    let nodes: Api<Node> = Api::all(client.clone());
    let listed = nodes.list(&Default::default()).await.expect("list nodes");
    let ready = listed
        .items
        .iter()
        .filter(|node| testbed::is_ready(node))
        .count();
    assert_eq!(ready, cluster.nodes, "every testbed node is Ready");
    let control_planes = listed
        .items
        .iter()
        .filter(|node| {
            node.metadata
                .labels
                .as_ref()
                .is_some_and(|labels| labels.contains_key("node-role.kubernetes.io/control-plane"))
        })
        .count();
    assert_eq!(
        control_planes, 1,
        "one control-plane node, like Kubespray's"
    );

    let namespace = create_namespace(&client, "smoke").await;
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), &namespace);
    let daemonset: DaemonSet = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "everywhere" },
        "spec": {
            "selector": { "matchLabels": { "app": "everywhere" } },
            "template": {
                "metadata": { "labels": { "app": "everywhere" } },
                "spec": { "containers": [{ "name": "pause", "image": "registry.k8s.io/pause:3.10" }] }
            }
        }
    }))
    .expect("DaemonSet");
    daemonsets
        .create(&PostParams::default(), &daemonset)
        .await
        .expect("create DaemonSet");

    let expected = i32::try_from(cluster.nodes).expect("node count");
    wait_for("DaemonSet everywhere: desired = ready = nodes", TIMEOUT, async || {
        let current = daemonsets.get("everywhere").await.map_err(|e| e.to_string())?;
        let generation = current.metadata.generation;
        let status = current.status.ok_or("no status yet")?;
        let seen = format!(
            "desired {} ready {} updated {:?} observedGeneration {:?} (generation {generation:?})",
            status.desired_number_scheduled,
            status.number_ready,
            status.updated_number_scheduled,
            status.observed_generation
        );
        let done = status.observed_generation == generation
            && status.desired_number_scheduled == expected
            && status.number_ready == expected
            && status.updated_number_scheduled == Some(expected);
        if done { Ok(()) } else { Err(seen) }
    })
    .await;

    delete_namespace(&client, &namespace).await;
}

#[tokio::test]
async fn a_testbed_of_its_own_leaves_no_process_and_no_state_after_down() {
    let tools = Tools::locate().unwrap_or_else(|error| panic!("{error}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    let state_dir = dir.path().join("testbed");
    let options = Options {
        nodes: 2,
        state_dir: state_dir.clone(),
        tools,
        timeout: TIMEOUT,
    };
    let testbed = Testbed::up(&options)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let status = testbed.status();
    assert!(status.all_alive(), "{status:#?}");
    let names: Vec<&str> = status
        .processes
        .iter()
        .map(|p| p.process.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok"
        ]
    );

    // Reattaching through the state directory sees the same processes.
    let reattached = Testbed::from_state(&state_dir).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(reattached.processes(), testbed.processes());
    assert_eq!(reattached.nodes(), ["node1", "node2"]);
    let client = reattached
        .client()
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    let nodes: Api<Node> = Api::all(client);
    let ready = nodes
        .list(&Default::default())
        .await
        .expect("list nodes")
        .items
        .iter()
        .filter(|node| testbed::is_ready(node))
        .count();
    assert_eq!(ready, 2);
    drop(reattached);
    assert!(
        testbed.status().all_alive(),
        "dropping a reattached handle stops nothing"
    );

    // A second `up` on the same state directory refuses, naming the running pids.
    let second = Testbed::up(&options).await.err().map(|e| e.to_string());
    let second = second.expect("a second up on a running testbed fails");
    assert!(second.contains("already running"), "{second}");
    assert!(second.contains("testbed down"), "{second}");
    assert!(
        testbed.status().all_alive(),
        "the refused up stopped nothing"
    );

    let records = testbed.processes().to_vec();
    testbed.down().unwrap_or_else(|error| panic!("{error}"));
    for record in &records {
        assert!(
            !record.is_alive(),
            "{} (pid {}) still runs",
            record.name,
            record.pid
        );
    }
    assert!(!state_dir.join("testbed.json").exists(), "state removed");
    assert!(!state_dir.join("etcd").exists(), "etcd data removed");
}

#[tokio::test]
async fn a_component_that_fails_to_start_is_named_with_its_log_and_nothing_is_left_running() {
    let tools = Tools::locate().unwrap_or_else(|error| panic!("{error}"));
    let dir = tempfile::tempdir().expect("temporary directory");
    // The real tools, except a kube-apiserver that rejects its flags like a misconfigured one.
    let broken = dir.path().join("tools");
    std::fs::create_dir_all(&broken).expect("tools directory");
    for name in testbed::tools::TOOL_NAMES {
        let link = broken.join(name);
        if name == "kube-apiserver" {
            std::fs::write(
                &link,
                "#!/bin/sh\necho 'Error: unknown flag: --bogus' >&2\nexit 1\n",
            )
            .expect("script");
            std::fs::set_permissions(&link, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .expect("chmod");
        } else {
            std::os::unix::fs::symlink(tools.dir.join(name), &link).expect("symlink");
        }
    }
    let state_dir = dir.path().join("testbed");
    let options = Options {
        nodes: 1,
        state_dir: state_dir.clone(),
        tools: Tools::in_dir(&broken),
        timeout: TIMEOUT,
    };
    let error = Testbed::up(&options).await.err().map(|e| e.to_string());
    let error = error.expect("up fails when kube-apiserver exits");
    assert!(error.contains("kube-apiserver"), "{error}");
    assert!(
        error.contains("unknown flag: --bogus"),
        "the log's last lines: {error}"
    );
    assert!(
        error.contains("kube-apiserver.log"),
        "the log's path: {error}"
    );

    // etcd had started: it was stopped, and the state (with the logs) stays for reading.
    let left = Testbed::from_state(&state_dir).unwrap_or_else(|error| panic!("{error}"));
    let etcd = &left.processes()[0];
    assert_eq!(etcd.name, "etcd");
    assert!(!etcd.is_alive(), "etcd (pid {}) still runs", etcd.pid);
    assert!(state_dir.join("logs/kube-apiserver.log").exists());
    left.down().unwrap_or_else(|error| panic!("{error}"));
    assert!(!state_dir.join("testbed.json").exists());
}
