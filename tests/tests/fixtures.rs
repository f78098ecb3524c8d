//! End-to-end: the cluster fixtures of both Kubespray eras, seeded into a real control plane: the
//! objects Kubespray v2.27.1 renders (template era) and the release Kubespray v2.28.1 installs
//! through cilium-cli (its values, the released 1.17.3 chart), plus the run-time objects.
//!
//! The fixtures own `kube-system` and cluster-scoped objects (CRDs), so each test starts a
//! testbed of its own in a temporary directory instead of sharing the one `cargo xtask e2e`
//! started; the tools come from `$CILIUM_MIGRATE_TOOLS` (or `target/tools/bin`).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::Api;
use kube::runtime::wait::await_condition;
use serde_json::Value;
use testbed::fixtures::{
    self, CHART_RELEASE, CHART_RELEASE_NAMESPACE, CiliumCliInstall, FixtureOptions,
    IdentityAllocation,
};
use testbed::{Testbed, Tools};

/// Nodes of each test's cluster.
const NODES: usize = 3;
/// How long a rollout may take on fake nodes.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(180);

async fn start_testbed(state: &Path) -> Testbed {
    tests::start_own_testbed(state, NODES).await
}

fn options_for(testbed: &Testbed) -> FixtureOptions {
    FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    }
}

/// Waits until DaemonSet kube-system/cilium has rolled out its current generation to `nodes`
/// nodes, every pod ready and available; returns it.
async fn wait_for_agent_rollout(testbed: &Testbed, nodes: usize) -> DaemonSet {
    let client = match testbed.client().await {
        Ok(client) => client,
        Err(error) => panic!("no client for the testbed: {error}"),
    };
    let api: Api<DaemonSet> = Api::namespaced(client, "kube-system");
    let expected = i32::try_from(nodes).unwrap_or(i32::MAX);
    let rolled_out = move |daemon_set: Option<&DaemonSet>| {
        let Some(daemon_set) = daemon_set else {
            return false;
        };
        let generation = daemon_set.metadata.generation;
        daemon_set.status.as_ref().is_some_and(|status| {
            status.observed_generation == generation
                && status.desired_number_scheduled == expected
                && status.number_ready == expected
                && status.number_available == Some(expected)
                && status.updated_number_scheduled == Some(expected)
        })
    };
    let waited = tokio::time::timeout(
        ROLLOUT_TIMEOUT,
        await_condition(api.clone(), "cilium", rolled_out),
    )
    .await;
    match waited {
        Ok(Ok(Some(daemon_set))) => daemon_set,
        Ok(Ok(None)) => panic!("DaemonSet kube-system/cilium is gone"),
        Ok(Err(error)) => panic!("watching DaemonSet kube-system/cilium failed: {error}"),
        Err(_) => {
            let status = api.get_status("cilium").await.ok().and_then(|ds| ds.status);
            panic!(
                "DaemonSet kube-system/cilium did not reach desired = ready = {nodes} within \
                 {ROLLOUT_TIMEOUT:?}; status: {status:?}"
            )
        }
    }
}

/// `helm list` in kube-system, in every state, as JSON (Helm 4 dropped `--all`; both Helms
/// take the state flags).
fn helm_releases(helm: &Path, kubeconfig: &Path) -> Vec<Value> {
    let output = std::process::Command::new(helm)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(["list", "--output=json"])
        .args([
            "--deployed",
            "--failed",
            "--pending",
            "--superseded",
            "--uninstalling",
            "--uninstalled",
        ])
        .arg(format!("--namespace={CHART_RELEASE_NAMESPACE}"))
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", helm.display()));
    assert!(
        output.status.success(),
        "{} list failed: {}",
        helm.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice::<Value>(&output.stdout) {
        Ok(Value::Array(releases)) => releases,
        Ok(other) => panic!("{} list printed {other}", helm.display()),
        Err(error) => panic!("{} list printed no JSON: {error}", helm.display()),
    }
}

fn field_managers(object: &Value) -> Vec<(String, String)> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().unwrap_or_default().to_owned();
            (text("manager"), text("operation"))
        })
        .collect()
}

fn kubectl_get_json(tools: &Tools, kubeconfig: &Path, args: &[&str]) -> Value {
    let args: Vec<&str> = ["get"]
        .into_iter()
        .chain(args.iter().copied())
        .chain(["--output=json", "--show-managed-fields"])
        .collect();
    let stdout = tests::kubectl(&tools.kubectl, kubeconfig, &args);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("kubectl {args:?} printed no JSON: {error}"))
}

/// The template era: Kubespray's objects applied client-side, the agent rolled out on every
/// node, every object present, no Helm release, and nothing left running after `down`.
#[tokio::test(flavor = "multi_thread")]
async fn template_era_fixture_rolls_out_without_a_helm_release() {
    let Some(upstream) = upstream::Upstream::for_test(
        "fixtures::template_era_fixture_rolls_out_without_a_helm_release",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let state = tempfile::tempdir().unwrap_or_else(|error| panic!("no temp dir: {error}"));
    let testbed = start_testbed(state.path()).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let options = FixtureOptions {
        identity_allocation: IdentityAllocation::Crd,
        ..options_for(&testbed)
    };
    let objects = fixtures::template_era(
        &tools.kubectl,
        &kubeconfig,
        &case.file("objects.yaml"),
        &options,
    )
    .unwrap_or_else(|error| panic!("seeding {} failed: {error}", case.id()));

    let daemon_set = wait_for_agent_rollout(&testbed, NODES).await;
    assert_eq!(
        daemon_set
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.match_labels.clone())
            .and_then(|labels| labels.get("k8s-app").cloned())
            .as_deref(),
        Some("cilium")
    );

    let missing = fixtures::missing_objects(&tools.kubectl, &kubeconfig, &objects)
        .unwrap_or_else(|error| panic!("cannot list the fixture objects: {error}"));
    assert!(
        missing.is_empty(),
        "objects missing after seeding: {missing:?}"
    );
    // The lookup does report what is not there.
    let ghost = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "never-seeded", "namespace": "kube-system" }
    });
    let missing =
        fixtures::missing_objects(&tools.kubectl, &kubeconfig, std::slice::from_ref(&ghost))
            .unwrap_or_else(|error| panic!("cannot look up a missing object: {error}"));
    assert_eq!(missing, [fixtures::ObjectRef::of(&ghost)]);

    // Kubespray's objects carry client-side apply's traces; Cilium's run-time ones do not.
    let live = kubectl_get_json(
        &tools,
        &kubeconfig,
        &["--namespace=kube-system", "daemonset/cilium"],
    );
    assert!(
        live.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
            .is_some(),
        "DaemonSet cilium has kubectl's last-applied-configuration"
    );
    assert!(
        field_managers(&live)
            .contains(&("kubectl-client-side-apply".to_owned(), "Update".to_owned())),
        "DaemonSet cilium is managed by kubectl-client-side-apply: {:?}",
        field_managers(&live)
    );
    let node = kubectl_get_json(&tools, &kubeconfig, &["ciliumnode/node1"]);
    assert!(
        field_managers(&node).contains(&("cilium-agent".to_owned(), "Apply".to_owned())),
        "CiliumNode node1 is written by the agent: {:?}",
        field_managers(&node)
    );
    assert!(
        node.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration")
            .is_none()
    );

    for helm in [&tools.helm3, &tools.helm4] {
        let releases = helm_releases(helm, &kubeconfig);
        assert!(
            releases.is_empty(),
            "{} lists releases: {releases:?}",
            helm.display()
        );
    }

    let processes = testbed.processes().to_vec();
    assert!(!processes.is_empty());
    if let Err(error) = testbed.down() {
        panic!("testbed down failed: {error}");
    }
    let running: Vec<String> = processes
        .iter()
        .filter(|process| process.is_alive())
        .map(|process| format!("{} (pid {})", process.name, process.pid))
        .collect();
    assert!(running.is_empty(), "still running after down: {running:?}");
}

/// The cilium-cli era: a deployed Helm release `cilium` in kube-system from the released 1.17.3
/// chart with Kubespray v2.28.1's values, the API server cilium-cli resolves for `auto`, its
/// agent rolled out, and the CRDs and custom resources beside it.
#[tokio::test(flavor = "multi_thread")]
async fn cilium_cli_era_fixture_is_a_deployed_release() {
    let Some(upstream) =
        upstream::Upstream::for_test("fixtures::cilium_cli_era_fixture_is_a_deployed_release")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap_or_else(|e| panic!("{e}"));
    let values = tests::cilium_cli_values(&case);
    let state = tempfile::tempdir().unwrap_or_else(|error| panic!("no temp dir: {error}"));
    let testbed = start_testbed(state.path()).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let options = FixtureOptions {
        identity_allocation: IdentityAllocation::Crd,
        ..options_for(&testbed)
    };

    // cilium-cli drives the Helm 3 SDK.
    let install = CiliumCliInstall {
        chart: &chart,
        values: &values,
        api_server: testbed.api_server(),
    };
    if let Err(error) = fixtures::cilium_cli_era(
        &tools.helm3,
        &tools.kubectl,
        &kubeconfig,
        &install,
        &options,
    ) {
        panic!("seeding the v2.28 fixture failed: {error}");
    }
    // `auto` became the testbed's API server, as cilium-cli makes it.
    let (host, port) = fixtures::host_and_port(testbed.api_server()).unwrap();
    let config = kubectl_get_json(
        &tools,
        &kubeconfig,
        &["--namespace=kube-system", "configmap/cilium-config"],
    );
    let env = kubectl_get_json(
        &tools,
        &kubeconfig,
        &["--namespace=kube-system", "daemonset/cilium"],
    );
    let agent_env = env
        .pointer("/spec/template/spec/containers/0/env")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let env_value = |name: &str| {
        agent_env
            .iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(env_value("KUBERNETES_SERVICE_HOST"), Some(host), "{config}");
    assert_eq!(env_value("KUBERNETES_SERVICE_PORT"), Some(port.to_string()));

    for helm in [&tools.helm3, &tools.helm4] {
        let releases = helm_releases(helm, &kubeconfig);
        let statuses: Vec<(&str, &str)> = releases
            .iter()
            .map(|release| {
                (
                    release["name"].as_str().unwrap_or_default(),
                    release["status"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            statuses,
            [(CHART_RELEASE, "deployed")],
            "{} list",
            helm.display()
        );
    }

    let daemon_set = wait_for_agent_rollout(&testbed, NODES).await;
    let labels = daemon_set.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("Helm")
    );
    let annotations = daemon_set.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some(CHART_RELEASE)
    );

    let custom_resources = fixtures::cilium_custom_resources(&options)
        .unwrap_or_else(|error| panic!("the fixture options are valid, yet: {error}"));
    let missing = fixtures::missing_objects(&tools.kubectl, &kubeconfig, &custom_resources)
        .unwrap_or_else(|error| panic!("cannot list the custom resources: {error}"));
    assert!(missing.is_empty(), "custom resources missing: {missing:?}");

    if let Err(error) = testbed.down() {
        panic!("testbed down failed: {error}");
    }
}
