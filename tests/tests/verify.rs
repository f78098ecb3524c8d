//! End-to-end: `verify` against the objects Kubespray v2.27.1 applies with Hubble fully on, on a
//! real control plane.
//!
//! One testbed of its own (the fixture owns `kube-system`), then, in order: the healthy fixture
//! verifies green; the per-node probe's Jobs run (kwok completes Job pods without running them, so
//! this proves the plumbing: created, pinned, read, cleaned up); a pod without a CiliumEndpoint is
//! listed as unmanaged; an agent pod whose init container failed with the `/hostbin` permission
//! error turns the report red with the `nodes fix` hint.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use testbed::fixtures::{self, FixtureOptions};
use testbed::{Options, Testbed, Tools};
use verify::{Check, ProbeOptions, Report, State};

/// Nodes of the test's cluster.
const NODES: usize = 3;
/// How long the fixture may take to converge, and each later state to show.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(180);
/// How often the report is re-read while waiting for a state.
const POLL: Duration = Duration::from_millis(500);
/// The init container failure Cilium's chart hits on a `kube`-owned /opt/cni/bin.
const HOSTBIN_DENIED: &str =
    "cp: cannot create regular file '/hostbin/cilium-mount': Permission denied";

async fn start_testbed(state: &Path) -> Testbed {
    let options = Options {
        nodes: NODES,
        state_dir: state.to_path_buf(),
        tools: Tools::default(),
        ..Options::default()
    };
    Testbed::up(&options)
        .await
        .unwrap_or_else(|error| panic!("the testbed does not start: {error}"))
}

fn check<'a>(report: &'a Report, name: &str) -> &'a Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name:?} in\n{}", report.table()))
}

/// Re-runs `verify` until `done` holds for the report (or panics with the last table).
async fn wait_for_report(
    client: &Client,
    options: &verify::Options,
    what: &str,
    done: impl Fn(&Report) -> bool,
) -> Report {
    let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
    loop {
        let report = verify::verify(client, options)
            .await
            .unwrap_or_else(|error| panic!("verify failed while waiting for {what}: {error}"));
        if done(&report) {
            return report;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "{what} not seen within {CONVERGE_TIMEOUT:?}; last report:\n{}",
                report.table()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Plays the agents' part that kwok cannot: a CiliumEndpoint for every pod on the pod network
/// that has none yet (the fixture records endpoints only for its demo pods). Returns their names.
async fn register_endpoints(client: &Client) -> Vec<String> {
    let resource = verify::snapshot::cilium_endpoint_resource();
    let endpoints: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let existing: Vec<(Option<String>, String)> = endpoints
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|error| panic!("listing CiliumEndpoints: {error}"))
        .items
        .iter()
        .map(|e| (e.namespace(), e.name_any()))
        .collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let mut created = Vec::new();
    for pod in pods
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|error| panic!("listing pods: {error}"))
    {
        let spec = pod.spec.as_ref();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if spec.and_then(|s| s.host_network).unwrap_or(false)
            || spec.and_then(|s| s.node_name.as_ref()).is_none()
            || !matches!(phase, Some("Running" | "Pending"))
            || existing.contains(&(pod.namespace(), pod.name_any()))
        {
            continue;
        }
        let namespace = pod.namespace().unwrap_or_default();
        let endpoint = DynamicObject::new(&pod.name_any(), &resource)
            .within(&namespace)
            .data(json!({
                "status": { "state": "ready", "networking": { "node": spec.and_then(|s| s.node_name.clone()) } }
            }));
        let namespaced: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &namespace, &resource);
        namespaced
            .create(&PostParams::default(), &endpoint)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "creating CiliumEndpoint {namespace}/{}: {error}",
                    pod.name_any()
                )
            });
        created.push(format!("{namespace}/{}", pod.name_any()));
    }
    created
}

/// Makes the API report what the kubelet reports after an agent pod's sandbox was recreated and
/// its first host-writing init container failed on a `kube`-owned /opt/cni/bin: phase stays
/// Running (the pod was initialized before), not ready, that init container in CrashLoopBackOff
/// with the `cp` message as its last termination message. Phase Running keeps kwok's stages from
/// overwriting it.
async fn fail_init_container(pods: &Api<Pod>, pod: &Pod) -> String {
    let spec = pod
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("pod {} has no spec", pod.name_any()));
    let inits = spec.init_containers.clone().unwrap_or_default();
    let failing = inits
        .iter()
        .position(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/hostbin")
        })
        .unwrap_or_else(|| panic!("no init container of {} mounts /hostbin", pod.name_any()));
    let now = "2026-11-26T12:00:00Z";
    let init_statuses: Vec<_> = inits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let base = json!({ "name": c.name, "image": c.image, "ready": false, "restartCount": 0 });
            let mut status = base;
            if i < failing {
                status["ready"] = json!(true);
                status["state"] = json!({ "terminated": { "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now } });
            } else if i == failing {
                status["restartCount"] = json!(5);
                status["state"] = json!({ "waiting": { "reason": "CrashLoopBackOff",
                    "message": format!("back-off 2m40s restarting failed container={} pod={}", c.name, pod.name_any()) } });
                status["lastState"] = json!({ "terminated": { "exitCode": 1, "reason": "Error",
                    "message": format!("{HOSTBIN_DENIED}\n"), "startedAt": now, "finishedAt": now } });
            } else {
                status["state"] = json!({ "waiting": { "reason": "PodInitializing" } });
            }
            status
        })
        .collect();
    let container_statuses: Vec<_> = spec
        .containers
        .iter()
        .map(|c| {
            json!({ "name": c.name, "image": c.image, "ready": false, "restartCount": 0,
                         "state": { "waiting": { "reason": "PodInitializing" } } })
        })
        .collect();
    let condition = |kind: &str, status: &str| json!({ "type": kind, "status": status, "lastTransitionTime": now });
    let patch = json!({
        "status": {
            "phase": "Running",
            "conditions": [
                condition("PodScheduled", "True"),
                condition("Initialized", "False"),
                condition("ContainersReady", "False"),
                condition("Ready", "False"),
            ],
            "initContainerStatuses": init_statuses,
            "containerStatuses": container_statuses,
        }
    });
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|error| panic!("patching the status of {}: {error}", pod.name_any()));
    inits[failing].name.clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_on_the_v2_27_fixture() {
    let Some(upstream) = upstream::Upstream::for_test("verify::verify_on_the_v2_27_fixture") else {
        return;
    };
    // Hubble's relay and UI included: verify checks them too.
    let case = tests::rendered_case(&upstream, "hubble-full", "v2.27.1");
    let state = tempfile::tempdir().unwrap_or_else(|error| panic!("no temp dir: {error}"));
    let testbed = start_testbed(state.path()).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let fixture = FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    };
    fixtures::template_era(
        &tools.kubectl,
        &kubeconfig,
        &case.file("objects.yaml"),
        &fixture,
    )
    .unwrap_or_else(|error| panic!("seeding {} failed: {error}", case.id()));
    let client = testbed
        .client()
        .await
        .unwrap_or_else(|error| panic!("no client: {error}"));
    let options = verify::Options::new("kube-system", "cilium");

    // 1. Healthy: once the workloads have rolled out and every pod has its endpoint, all green.
    let everything_but_endpoints = |report: &Report| {
        report
            .checks
            .iter()
            .filter(|c| c.name != "pods managed by Cilium")
            .all(|c| c.state.is_green())
    };
    wait_for_report(
        &client,
        &options,
        "the fixture to converge",
        everything_but_endpoints,
    )
    .await;
    let registered = register_endpoints(&client).await;
    let report = wait_for_report(&client, &options, "a green report", |r| r.healthy).await;
    let states: Vec<(&str, State)> = report
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.state))
        .collect();
    assert_eq!(
        states,
        [
            ("DaemonSet cilium", State::Pass),
            ("agent pods", State::Pass),
            ("DaemonSet cilium-envoy", State::Disabled),
            ("Deployment cilium-operator", State::Pass),
            ("Deployment hubble-relay", State::Pass),
            ("Deployment hubble-ui", State::Pass),
            ("ConfigMap cilium-config", State::Pass),
            ("nodes", State::Pass),
            ("CiliumNodes", State::Pass),
            ("pods managed by Cilium", State::Pass),
            // Kubespray ≤ v2.27 installs no Helm release.
            ("Helm release cilium", State::Disabled),
        ],
        "{}\n(endpoints registered for {registered:?})",
        report.table()
    );
    assert_eq!(
        check(&report, "agent pods").detail,
        format!("{NODES}/{NODES} running")
    );
    assert_eq!(
        check(&report, "CiliumNodes").detail,
        format!("{NODES}/{NODES} nodes registered")
    );

    // 2. The probe: one Job per node, pinned to it, read back and cleaned up.
    let probing = verify::Options {
        probe: Some(ProbeOptions {
            namespace: "kube-system".to_owned(),
            image: "registry.example/probe:1".to_owned(),
            timeout: Duration::from_secs(120),
        }),
        ..options.clone()
    };
    let report = verify::verify(&client, &probing)
        .await
        .unwrap_or_else(|error| panic!("verify --probe failed: {error}"));
    for node in testbed.nodes() {
        let probe = check(&report, &format!("probe {node}"));
        assert_eq!(probe.state, State::Pass, "{}", report.table());
    }
    assert!(report.healthy, "{}", report.table());
    let leftover_jobs = Api::<Job>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default().labels("app.kubernetes.io/name=cilium-verify-probe"))
        .await
        .unwrap_or_else(|error| panic!("listing probe Jobs: {error}"));
    let leftover_pods = Api::<Pod>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default().labels("app.kubernetes.io/name=cilium-verify-probe"))
        .await
        .unwrap_or_else(|error| panic!("listing probe pods: {error}"));
    assert!(
        leftover_jobs.items.is_empty() && leftover_pods.items.is_empty(),
        "probe objects left: {:?} {:?}",
        leftover_jobs
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>(),
        leftover_pods
            .iter()
            .map(ResourceExt::name_any)
            .collect::<Vec<_>>()
    );

    // 3. A pod on the pod network without a CiliumEndpoint is listed as unmanaged.
    let default_pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let stray: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "started-before-cilium", "namespace": "default" },
        "spec": {
            "nodeName": testbed.nodes()[0],
            "containers": [{ "name": "app", "image": "registry.example/app:1" }],
            "tolerations": [{ "operator": "Exists" }]
        }
    }))
    .unwrap_or_else(|error| panic!("the pod literal is a Pod: {error}"));
    default_pods
        .create(&PostParams::default(), &stray)
        .await
        .unwrap_or_else(|error| panic!("creating the stray pod: {error}"));
    let report = wait_for_report(
        &client,
        &options,
        "the stray pod listed as unmanaged",
        |r| check(r, "pods managed by Cilium").state == State::Warn,
    )
    .await;
    let managed = check(&report, "pods managed by Cilium");
    assert!(
        managed
            .detail
            .ends_with("unmanaged: default/started-before-cilium"),
        "{}",
        managed.detail
    );
    assert!(
        managed
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("restart them"))
    );
    assert!(!report.healthy);
    let problems: Vec<&str> = report.problems().map(|c| c.name.as_str()).collect();
    assert_eq!(problems, ["pods managed by Cilium"], "{}", report.table());

    // 4. An agent pod failing its init container with the /hostbin error: red, with the hint.
    let agent_pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let victim_node = &testbed.nodes()[1];
    let victim = agent_pods
        .list(&ListParams::default().labels("k8s-app=cilium"))
        .await
        .unwrap_or_else(|error| panic!("listing agent pods: {error}"))
        .items
        .into_iter()
        .find(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(victim_node))
        .unwrap_or_else(|| panic!("no agent pod on {victim_node}"));
    let container = fail_init_container(&agent_pods, &victim).await;
    let report = wait_for_report(&client, &options, "the init failure reported", |r| {
        check(r, "agent pods").state == State::Fail
    })
    .await;
    let agents = check(&report, "agent pods");
    assert!(
        agents.detail.contains(&format!(
            "{} on {victim_node}: init container {container} CrashLoopBackOff (restarts 5), last exit 1: {HOSTBIN_DENIED}",
            victim.name_any()
        )),
        "{}",
        agents.detail
    );
    let hint = agents.hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("cilium-migrate nodes fix --apply") && hint.contains(victim_node.as_str()),
        "{hint}"
    );
    assert!(
        report
            .table()
            .contains("hint: the agent's init containers run as root without CAP_DAC_OVERRIDE")
    );
    // The DaemonSet controller sees the pod unready too.
    let report = wait_for_report(
        &client,
        &options,
        "the DaemonSet to count the unready pod",
        |r| check(r, "DaemonSet cilium").state == State::Fail,
    )
    .await;
    assert!(
        check(&report, "DaemonSet cilium")
            .detail
            .contains(&format!("1 of {NODES} pods not ready"))
    );

    testbed
        .down()
        .unwrap_or_else(|error| panic!("testbed down failed: {error}"));
}

/// The probe's real result on a cluster whose nodes run containers (kind, with Cilium installed):
/// every node's pod resolves `kubernetes.default` and gets `ok` from `/healthz`, and nothing is
/// left behind. Uses `$KUBECONFIG`; run with `cargo xtask e2e --cluster kind` (needs Docker).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a cluster with a real datapath (kind): cargo xtask e2e --cluster kind"]
async fn probe_on_a_real_datapath() {
    let client = Client::try_default()
        .await
        .unwrap_or_else(|error| panic!("no cluster in $KUBECONFIG: {error}"));
    let options = verify::Options {
        probe: Some(ProbeOptions {
            namespace: "kube-system".to_owned(),
            image: verify::probe::DEFAULT_PROBE_IMAGE.to_owned(),
            timeout: Duration::from_secs(180),
        }),
        ..verify::Options::new("kube-system", "cilium")
    };
    let report = verify::verify(&client, &options)
        .await
        .unwrap_or_else(|error| panic!("verify --probe failed: {error}"));
    let probes: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| c.name.starts_with("probe "))
        .collect();
    assert!(!probes.is_empty(), "{}", report.table());
    for probe in probes {
        assert_eq!(probe.state, State::Pass, "{}", report.table());
    }
    assert!(
        report.checks.iter().all(|c| c.name != "probe cleanup"),
        "{}",
        report.table()
    );
}
