//! Every check on recorded API objects (`tests/data/*.json`), healthy and failing, as one table.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::api::DynamicObject;
use serde::de::DeserializeOwned;
use verify::{Check, ClusterSnapshot, State, checks, helm_release, probe};

fn data(file: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One object from a file holding a single object.
fn one<T: DeserializeOwned>(file: &str) -> T {
    serde_json::from_value(data(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The items of a `*List` file.
fn list<T: DeserializeOwned>(file: &str) -> Vec<T> {
    let items = data(file)
        .get("items")
        .cloned()
        .unwrap_or_else(|| panic!("{file}: no items"));
    serde_json::from_value(items).unwrap_or_else(|e| panic!("{file}: {e}"))
}

struct Case {
    name: &'static str,
    run: fn() -> Check,
    state: State,
    /// Substrings the detail must contain.
    detail: &'static [&'static str],
    /// Substring the hint must contain; `None` means no hint at all.
    hint: Option<&'static str>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "agent DaemonSet converged",
            run: || {
                checks::daemonset_converged(
                    "cilium",
                    Some(&one::<DaemonSet>("daemonset-cilium-healthy.json")),
                    true,
                )
            },
            state: State::Pass,
            detail: &["3/3 ready, 3 updated, 3 available"],
            hint: None,
        },
        Case {
            name: "agent DaemonSet rolling out",
            run: || {
                checks::daemonset_converged(
                    "cilium",
                    Some(&one::<DaemonSet>("daemonset-cilium-rolling-out.json")),
                    true,
                )
            },
            state: State::Fail,
            detail: &["1 of 3 pods not ready", "rolling out: 1 of 3 pods updated"],
            hint: None,
        },
        Case {
            name: "agent DaemonSet generation not observed",
            run: || {
                checks::daemonset_converged(
                    "cilium",
                    Some(&one::<DaemonSet>("daemonset-cilium-not-observed.json")),
                    true,
                )
            },
            state: State::Fail,
            detail: &["generation 5 not yet observed (observed 4)"],
            hint: None,
        },
        Case {
            name: "agent DaemonSet missing",
            run: || checks::daemonset_converged("cilium", None, true),
            state: State::Fail,
            detail: &["not found"],
            hint: Some("--namespace"),
        },
        Case {
            name: "envoy DaemonSet absent is disabled",
            run: || checks::daemonset_converged("cilium-envoy", None, false),
            state: State::Disabled,
            detail: &["not installed"],
            hint: None,
        },
        Case {
            name: "envoy DaemonSet with an unavailable pod",
            run: || {
                checks::daemonset_converged(
                    "cilium-envoy",
                    Some(&one::<DaemonSet>("daemonset-cilium-envoy-unavailable.json")),
                    false,
                )
            },
            state: State::Warn,
            detail: &["1 pods unavailable"],
            hint: None,
        },
        Case {
            name: "operator Deployment converged",
            run: || {
                checks::deployment_converged(
                    "cilium-operator",
                    Some(&one::<Deployment>(
                        "deployment-cilium-operator-healthy.json",
                    )),
                )
            },
            state: State::Pass,
            detail: &["2/2 ready"],
            hint: None,
        },
        Case {
            name: "operator Deployment with a replica not ready",
            run: || {
                checks::deployment_converged(
                    "cilium-operator",
                    Some(&one::<Deployment>(
                        "deployment-cilium-operator-unready.json",
                    )),
                )
            },
            state: State::Fail,
            detail: &["1 of 2 replicas not ready"],
            hint: None,
        },
        Case {
            name: "hubble-ui absent is disabled",
            run: || checks::deployment_converged("hubble-ui", None),
            state: State::Disabled,
            detail: &["not installed"],
            hint: None,
        },
        Case {
            name: "agent pods healthy",
            run: || checks::agent_pods(&list::<Pod>("pods-agent-healthy.json")),
            state: State::Pass,
            detail: &["3/3 running"],
            hint: None,
        },
        Case {
            name: "agent pod init container denied /hostbin",
            run: || checks::agent_pods(&list::<Pod>("pods-agent-hostbin-denied.json")),
            state: State::Fail,
            detail: &[
                "cilium-x7k2n on node2: init container mount-cgroup CrashLoopBackOff (restarts 4), last exit 1",
                "cp: cannot create regular file '/hostbin/cilium-mount': Permission denied",
            ],
            hint: Some("`cilium-migrate nodes fix --apply` for node(s) node2"),
        },
        Case {
            name: "agent container crash-looping",
            run: || checks::agent_pods(&list::<Pod>("pods-agent-crashloop.json")),
            state: State::Fail,
            detail: &[
                "cilium-9qz7d on node2: container cilium-agent CrashLoopBackOff (restarts 7)",
                "ipv4-native-routing-cidr",
            ],
            hint: Some("kubectl -n kube-system logs cilium-9qz7d -c cilium-agent --previous"),
        },
        Case {
            name: "agent running but not ready",
            run: || checks::agent_pods(&list::<Pod>("pods-agent-not-ready.json")),
            state: State::Warn,
            detail: &["container cilium-agent running but not ready"],
            hint: None,
        },
        Case {
            name: "no agent pods",
            run: || checks::agent_pods(&[]),
            state: State::Fail,
            detail: &["no pods with label k8s-app=cilium"],
            hint: Some("describe daemonset cilium"),
        },
        Case {
            name: "all pods managed",
            run: || {
                checks::managed_pods(
                    &list::<Pod>("pods-cluster.json"),
                    Some(&list::<DynamicObject>("ciliumendpoints-all.json")),
                )
            },
            // hostNetwork, Succeeded and unscheduled pods are not counted: 4 candidates.
            state: State::Pass,
            detail: &["4/4 managed by Cilium"],
            hint: None,
        },
        Case {
            name: "a pod without a CiliumEndpoint",
            run: || {
                checks::managed_pods(
                    &list::<Pod>("pods-cluster.json"),
                    Some(&list::<DynamicObject>("ciliumendpoints-missing-web.json")),
                )
            },
            state: State::Warn,
            detail: &["3/4 managed by Cilium; unmanaged: default/web-6d4cf56db6-hk2fz"],
            hint: Some("restart them"),
        },
        Case {
            name: "CiliumEndpoint CRD missing",
            run: || checks::managed_pods(&list::<Pod>("pods-cluster.json"), None),
            state: State::Fail,
            detail: &["CiliumEndpoint CRD (cilium.io/v2) is not installed"],
            hint: Some("cilium-operator"),
        },
        Case {
            name: "nodes ready",
            run: || checks::nodes_ready(&list::<Node>("nodes-healthy.json")),
            state: State::Pass,
            detail: &["3 Ready"],
            hint: None,
        },
        Case {
            name: "node with NetworkUnavailable",
            run: || checks::nodes_ready(&list::<Node>("nodes-network-unavailable.json")),
            state: State::Fail,
            detail: &["NetworkUnavailable: node2", "not Ready: node2"],
            hint: Some("Cilium agent on these nodes"),
        },
        Case {
            name: "one CiliumNode per Node",
            run: || {
                checks::cilium_nodes(
                    &list::<Node>("nodes-healthy.json"),
                    Some(&list::<DynamicObject>("ciliumnodes-all.json")),
                )
            },
            state: State::Pass,
            detail: &["3/3 nodes registered"],
            hint: None,
        },
        Case {
            name: "missing and stale CiliumNodes",
            run: || {
                checks::cilium_nodes(
                    &list::<Node>("nodes-healthy.json"),
                    Some(&list::<DynamicObject>(
                        "ciliumnodes-missing-node3-stale-node9.json",
                    )),
                )
            },
            state: State::Fail,
            detail: &[
                "no CiliumNode for: node3",
                "CiliumNode without a Node: node9",
            ],
            hint: Some("has not registered"),
        },
        Case {
            name: "cilium-config clean",
            run: || {
                checks::config_errors(Some(&one::<ConfigMap>(
                    "configmap-cilium-config-healthy.json",
                )))
            },
            state: State::Pass,
            detail: &["9 keys, no configuration errors"],
            hint: None,
        },
        Case {
            name: "cilium-config with a configuration error",
            run: || {
                checks::config_errors(Some(&one::<ConfigMap>(
                    "configmap-cilium-config-error.json",
                )))
            },
            state: State::Fail,
            detail: &[
                "config.cilium.io/error-tunnel-protocol: unsupported tunnel protocol \"gre\"",
            ],
            hint: Some("Helm values"),
        },
        Case {
            name: "cilium-config missing",
            run: || checks::config_errors(None),
            state: State::Fail,
            detail: &["not found"],
            hint: Some("installed"),
        },
        Case {
            name: "Helm release deployed at the expected chart",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-deployed.json"),
                    "kube-system",
                    "cilium",
                    Some("1.16.19"),
                )
            },
            state: State::Pass,
            detail: &["revision 2 deployed, chart 1.16.19 (app 1.16.19)"],
            hint: None,
        },
        Case {
            name: "Helm release at another chart version",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-deployed.json"),
                    "kube-system",
                    "cilium",
                    Some("v1.17.18"),
                )
            },
            state: State::Fail,
            detail: &["chart 1.16.19 deployed, 1.17.18 expected"],
            hint: None,
        },
        Case {
            name: "Helm release stuck in pending-upgrade",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-pending-upgrade.json"),
                    "kube-system",
                    "cilium",
                    None,
                )
            },
            state: State::Fail,
            detail: &["revision 2 pending-upgrade"],
            hint: Some("helm -n kube-system rollback cilium"),
        },
        Case {
            name: "Helm release failed",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-failed.json"),
                    "kube-system",
                    "cilium",
                    None,
                )
            },
            state: State::Fail,
            detail: &["revision 2 failed"],
            hint: Some("helm -n kube-system history cilium"),
        },
        Case {
            name: "Helm release stored as plain JSON",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-plain-json.json"),
                    "kube-system",
                    "cilium",
                    None,
                )
            },
            state: State::Pass,
            detail: &["revision 1 deployed"],
            hint: None,
        },
        Case {
            name: "Helm release payload corrupt",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-corrupt.json"),
                    "kube-system",
                    "cilium",
                    None,
                )
            },
            state: State::Fail,
            detail: &[
                "Secret sh.helm.release.v1.cilium.v1: data key `release` is not Helm's base64+gzip JSON (base64",
            ],
            hint: None,
        },
        Case {
            name: "no Helm release and none expected (Kubespray template era)",
            run: || checks::helm_release(&[], "kube-system", "cilium", None),
            state: State::Disabled,
            detail: &[
                "no Helm release cilium in namespace kube-system: Cilium is not managed by Helm",
            ],
            hint: None,
        },
        Case {
            name: "no Helm release but a chart version expected",
            run: || checks::helm_release(&[], "kube-system", "cilium", Some("1.16.19")),
            state: State::Fail,
            detail: &["no Helm release cilium"],
            hint: Some("hand-over"),
        },
        Case {
            name: "Helm release of another name is ignored",
            run: || {
                checks::helm_release(
                    &list::<Secret>("secrets-helm-deployed.json"),
                    "kube-system",
                    "hubble",
                    None,
                )
            },
            state: State::Disabled,
            detail: &["no Helm release hubble"],
            hint: None,
        },
        Case {
            name: "probe succeeded",
            run: || {
                probe::probe_outcome(
                    "node1",
                    None,
                    Some(&one::<Pod>("probe-pod-succeeded.json")),
                    None,
                )
            },
            state: State::Pass,
            detail: &["resolved kubernetes.default and got /healthz ok"],
            hint: None,
        },
        Case {
            name: "probe DNS step failed (termination message)",
            run: || {
                probe::probe_outcome(
                    "node2",
                    None,
                    Some(&one::<Pod>("probe-pod-dns-failed.json")),
                    None,
                )
            },
            state: State::Fail,
            detail: &[
                "step resolve exited 1: ;; connection timed out; no servers could be reached",
            ],
            hint: Some("DNS from pods on this node fails"),
        },
        Case {
            name: "probe healthz step failed (log read)",
            run: || {
                probe::probe_outcome(
                    "node3",
                    None,
                    Some(&one::<Pod>("probe-pod-healthz-failed.json")),
                    Some("wget: bad address 'kubernetes.default.svc'\n"),
                )
            },
            state: State::Fail,
            detail: &["step healthz exited 1: wget: bad address 'kubernetes.default.svc'"],
            hint: Some("API server's Service is unreachable"),
        },
        Case {
            name: "probe image cannot be pulled",
            run: || {
                probe::probe_outcome(
                    "node3",
                    None,
                    Some(&one::<Pod>("probe-pod-image-pull.json")),
                    None,
                )
            },
            state: State::Fail,
            detail: &["still Pending (ImagePullBackOff) at the timeout"],
            hint: Some("--probe-image"),
        },
        Case {
            name: "probe created no pod",
            run: || probe::probe_outcome("node3", None, None, None),
            state: State::Fail,
            detail: &["no probe Job in time"],
            hint: Some("describe job"),
        },
    ]
}

#[test]
fn every_check_on_recorded_objects() {
    let mut failures = Vec::new();
    for case in cases() {
        let check = (case.run)();
        let mut problems = Vec::new();
        if check.state != case.state {
            problems.push(format!(
                "state {:?}, expected {:?}",
                check.state, case.state
            ));
        }
        for part in case.detail {
            if !check.detail.contains(part) {
                problems.push(format!("detail lacks {part:?}"));
            }
        }
        match (case.hint, &check.hint) {
            (None, None) => {}
            (Some(part), Some(hint)) if hint.contains(part) => {}
            (expected, got) => problems.push(format!(
                "hint {got:?}, expected one containing {expected:?}"
            )),
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n    got: {check:?}",
                case.name,
                problems.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn helm_payload_decodes_to_the_recorded_release() {
    let secrets = list::<Secret>("secrets-helm-deployed.json");
    let latest = helm_release::latest(&secrets, "cilium")
        .expect("a release")
        .expect("decodes");
    assert_eq!(latest.secret, "sh.helm.release.v1.cilium.v2");
    assert_eq!(
        (
            latest.name.as_str(),
            latest.revision,
            latest.status.as_str()
        ),
        ("cilium", 2, "deployed")
    );
    assert_eq!(latest.chart_version, "1.16.19");
    let first = helm_release::decode(&secrets[0]).expect("decodes");
    assert_eq!(
        (
            first.revision,
            first.status.as_str(),
            first.chart_version.as_str()
        ),
        (1, "superseded", "1.15.9")
    );
}

/// A whole snapshot: the healthy objects evaluate green, and one bad object turns exactly its
/// check red.
#[test]
fn snapshot_evaluates_green_then_red() {
    let mut snapshot = ClusterSnapshot {
        namespace: "kube-system".to_owned(),
        agent: Some(one("daemonset-cilium-healthy.json")),
        operator: Some(one("deployment-cilium-operator-healthy.json")),
        agent_pods: list("pods-agent-healthy.json"),
        pods: list("pods-cluster.json"),
        endpoints: Some(list("ciliumendpoints-all.json")),
        cilium_nodes: Some(list("ciliumnodes-all.json")),
        nodes: list("nodes-healthy.json"),
        cilium_config: Some(one("configmap-cilium-config-healthy.json")),
        helm_secrets: list("secrets-helm-deployed.json"),
        ..Default::default()
    };
    let report = verify::Report::new(verify::evaluate(&snapshot, "cilium", Some("1.16.19")));
    assert!(report.healthy, "{}", report.table());
    assert_eq!(report.checks.len(), 11);

    snapshot.agent_pods = list("pods-agent-hostbin-denied.json");
    let report = verify::Report::new(verify::evaluate(&snapshot, "cilium", Some("1.16.19")));
    assert!(!report.healthy);
    let red: Vec<&str> = report.problems().map(|c| c.name.as_str()).collect();
    assert_eq!(red, ["agent pods"]);
    assert!(
        report
            .table()
            .contains("hint: the agent's init containers run as root without CAP_DAC_OVERRIDE")
    );

    // The snapshot round-trips through JSON (it can be recorded and replayed).
    let json = serde_json::to_string(&snapshot).expect("serialize");
    let back: ClusterSnapshot = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(
        verify::evaluate(&back, "cilium", None),
        verify::evaluate(&snapshot, "cilium", None)
    );
}

#[test]
fn probe_job_is_pinned_tolerant_and_unprivileged() {
    let job = probe::probe_job("kube-system", "node 1", "example.org/probe:1", "run42");
    let value = serde_json::to_value(&job).expect("serialize");
    let pod = &value["spec"]["template"]["spec"];
    assert_eq!(pod["nodeName"], "node 1");
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}])
    );
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        pod.get("hostNetwork").is_none(),
        "the probe must use the pod network"
    );
    assert_eq!(
        pod["initContainers"][0]["command"],
        serde_json::json!(["nslookup", "kubernetes.default"])
    );
    assert_eq!(pod["containers"][0]["image"], "example.org/probe:1");
    assert_eq!(pod["containers"][0]["command"][7], probe::HEALTHZ_URL);
    assert_eq!(value["spec"]["backoffLimit"], 0);
    assert_eq!(value["metadata"]["generateName"], "cilium-verify-probe-");
    assert_eq!(value["metadata"]["labels"][probe::PROBE_RUN_LABEL], "run42");
    assert_eq!(probe::probe_node(&job.metadata), Some("node 1"));
}
