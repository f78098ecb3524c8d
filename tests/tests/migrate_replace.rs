//! End-to-end: `migration::flow` with `--strategy replace` on the objects Kubespray v2.27.1
//! applies, handed over to the released Cilium 1.15.9 chart.
//!
//! `replace` deletes the template-era DaemonSet with orphaning, so the chart's DaemonSet adopts
//! the running agents; the DaemonSet controller counts a pod as up to date by its
//! `pod-template-generation` label, which is 1 on both sides. The flow must roll them: after it
//! every agent pod runs the DaemonSet's current ControllerRevision and the chart's pod spec (an
//! unprivileged `cilium-agent` that drops ALL), and at no moment are more nodes without a Ready agent than the chart's
//! `maxUnavailable`. The orphaned operator pods are replaced by the Deployment's new ReplicaSet.
//!
//! The released chart's selectors equal Kubespray's, so adopt would do; what `replace` exists
//! for, a live DaemonSet whose selector differs, is made by fault injection (one label more in
//! Kubespray's rendered DaemonSet): adopt is refused, replace hands over.
//!
//! Each test starts a testbed of its own (the fixture owns `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use migrate_common::{Recorder, inventory_copy, migrate_options, template_era_testbed, upstream};
use migration::flow::{self, Outcome};
use migration::journal::Strategy;
use testbed::monitor::AgentMonitor;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_replace_rolls_the_adopted_agents_onto_the_chart() {
    let Some(upstream) =
        upstream("migrate_replace::v2_27_replace_rolls_the_adopted_agents_onto_the_chart")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let helm = testbed::Tools::default().helm4;
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let client = testbed.client().await.unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let bundle_dir = tmp.path().join("bundle");
    let mut migrate = migrate_options(&testbed, &inventory, &bundle_dir, &helm, tmp.path(), &chart);
    migrate.strategy = Some(Strategy::Replace);

    let monitor = AgentMonitor::start(&client, testbed.nodes());
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let agents_before = pods(&client, "k8s-app=cilium").await;
    let operators_before = pods(&client, "io.cilium/app=operator").await;
    assert_eq!(agents_before.len(), testbed.nodes().len());
    assert!(
        agents_before.iter().all(privileged),
        "Kubespray's objects run privileged agents"
    );
    assert!(!operators_before.is_empty());

    let kept_before = live_objects(&client, KEPT_BY_REPLACE).await;
    let replaced_before = live_objects(&client, REPLACED_BY_REPLACE).await;

    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    let Outcome::Migrated { steps, checks, .. } = outcome else {
        panic!("expected a migration, got {outcome:?}")
    };
    let ran: Vec<_> = steps.iter().map(|s| s.step).collect();
    assert_eq!(ran, Strategy::Replace.steps());
    assert!(
        checks.iter().filter(|c| !c.ignored).all(|c| c.green),
        "{checks:#?}"
    );
    // Cilium 1.15 runs no cilium-envoy DaemonSet: verify reports it disabled, which does not
    // block the verify step (nor is it merely ignored).
    let envoy = checks
        .iter()
        .find(|c| c.name == "DaemonSet cilium-envoy")
        .unwrap();
    assert!(
        envoy.state == "disabled" && envoy.green && !envoy.ignored,
        "{envoy:?}"
    );
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let availability = monitor.stop();

    // Every agent runs the DaemonSet's current revision and the chart's unprivileged spec.
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let daemonset = daemonsets.get("cilium").await.unwrap();
    let current = current_revision_hash(&client, &daemonset).await;
    let agents_after = pods(&client, "k8s-app=cilium").await;
    assert_eq!(agents_after.len(), testbed.nodes().len());
    let stale: Vec<String> = agents_after
        .iter()
        .filter(|p| label(p, "controller-revision-hash") != Some(current.as_str()))
        .map(|p| {
            format!(
                "{} ({:?})",
                p.metadata.name.clone().unwrap_or_default(),
                label(p, "controller-revision-hash")
            )
        })
        .collect();
    assert!(
        stale.is_empty(),
        "agent pods not on the DaemonSet's current revision {current}: {stale:?}\n{}",
        progress.lines.join("\n")
    );
    // The agent container is not privileged and drops ALL (the chart's init container
    // `mount-bpf-fs` is privileged by the chart itself), and every container carries the
    // security context of the DaemonSet's template.
    let template = daemonset
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap();
    for pod in &agents_after {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref().unwrap();
        let agent = spec
            .containers
            .iter()
            .find(|c| c.name == "cilium-agent")
            .unwrap();
        let context = agent.security_context.as_ref();
        assert!(
            !context.and_then(|s| s.privileged).unwrap_or(false),
            "{name}: cilium-agent still runs Kubespray's privileged spec"
        );
        let drops = context
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|c| c.drop.clone())
            .unwrap_or_default();
        assert!(drops.iter().any(|d| d == "ALL"), "{name}: drops {drops:?}");
        for (live, wanted) in [
            (&spec.containers, &template.containers),
            (
                spec.init_containers.as_ref().unwrap(),
                template.init_containers.as_ref().unwrap(),
            ),
        ] {
            let names = |list: &[k8s_openapi::api::core::v1::Container]| -> Vec<String> {
                list.iter().map(|c| c.name.clone()).collect()
            };
            assert_eq!(names(live), names(wanted), "{name}");
            for (l, w) in live.iter().zip(wanted) {
                assert_eq!(l.security_context, w.security_context, "{name}/{}", l.name);
            }
        }
    }
    let uids = |list: &[Pod]| -> Vec<String> {
        list.iter().filter_map(|p| p.metadata.uid.clone()).collect()
    };
    let before = uids(&agents_before);
    assert!(uids(&agents_after).iter().all(|u| !before.contains(u)));

    // Only the workloads were deleted and re-created; the ServiceAccounts, RBAC and
    // cilium-config the orphaned agents ran on were adopted in place (same UIDs, so never
    // absent), with Helm's ownership and without kubectl's last-applied annotation.
    let kept_after = live_objects(&client, KEPT_BY_REPLACE).await;
    for ((what, before), (_, after)) in kept_before.iter().zip(&kept_after) {
        let (before, after) = (before.as_ref().unwrap(), after.as_ref().unwrap());
        assert_eq!(
            after["metadata"]["uid"], before["metadata"]["uid"],
            "{what} was deleted and re-created"
        );
        assert_eq!(
            after["metadata"]["annotations"]["meta.helm.sh/release-name"], "cilium",
            "{what} is not the release's"
        );
        assert!(
            after["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_none(),
            "{what} keeps Kubespray's last-applied annotation"
        );
    }
    let replaced_after = live_objects(&client, REPLACED_BY_REPLACE).await;
    for ((what, before), (_, after)) in replaced_before.iter().zip(&replaced_after) {
        assert_ne!(
            after.as_ref().unwrap()["metadata"]["uid"],
            before.as_ref().unwrap()["metadata"]["uid"],
            "{what} was not re-created"
        );
    }

    // The Deployment rolls by itself: its new ReplicaSet (new pod-template-hash) replaced the
    // orphaned operator pods.
    let operators_after = pods(&client, "io.cilium/app=operator").await;
    assert!(!operators_after.is_empty());
    let before = uids(&operators_before);
    assert!(
        uids(&operators_after).iter().all(|u| !before.contains(u)),
        "the orphaned operator pods were not replaced"
    );

    // At most maxUnavailable nodes at once without a Ready agent.
    let max_unavailable = daemonset
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref())
        .map(|m| match m {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as usize,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                panic!("maxUnavailable {s} is not a count")
            }
        })
        .unwrap();
    assert!(
        availability.max_nodes_without_agent <= max_unavailable,
        "{} nodes at once without a Ready agent, maxUnavailable {max_unavailable}: {:?}",
        availability.max_nodes_without_agent,
        availability.gaps
    );
}

/// (apiVersion, kind, plural, namespace, name) of an object.
type Named = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// What the orphaned agents and operator run on until the chart's pods replace them: `replace`
/// must adopt these, not delete them.
const KEPT_BY_REPLACE: &[Named] = &[
    (
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        Some("kube-system"),
        "cilium",
    ),
    (
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        Some("kube-system"),
        "cilium-operator",
    ),
    (
        "v1",
        "ConfigMap",
        "configmaps",
        Some("kube-system"),
        "cilium-config",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        None,
        "cilium",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        None,
        "cilium-operator",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        None,
        "cilium",
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        None,
        "cilium-operator",
    ),
];

/// The workloads `replace` deletes (orphaning their pods) for the chart to re-create.
const REPLACED_BY_REPLACE: &[Named] = &[
    (
        "apps/v1",
        "DaemonSet",
        "daemonsets",
        Some("kube-system"),
        "cilium",
    ),
    (
        "apps/v1",
        "Deployment",
        "deployments",
        Some("kube-system"),
        "cilium-operator",
    ),
];

/// Each object as JSON (`None` when absent), named `Kind namespace/name`.
async fn live_objects(
    client: &kube::Client,
    objects: &[Named],
) -> Vec<(String, Option<serde_json::Value>)> {
    let mut out = Vec::new();
    for (api_version, kind, plural, namespace, name) in objects {
        let resource = migrate_common::resource(api_version, kind, plural);
        let api: Api<kube::api::DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let live = api.get_opt(name).await.unwrap();
        out.push((
            format!(
                "{kind} {}{name}",
                namespace.map(|n| format!("{n}/")).unwrap_or_default()
            ),
            live.map(|o| serde_json::to_value(o).unwrap()),
        ));
    }
    out
}

/// Live (not terminating) pods in kube-system with these labels.
async fn pods(client: &kube::Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    api.list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// Whether the agent container runs privileged.
fn privileged(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers.iter().any(|c| {
            c.name == "cilium-agent"
                && c.security_context
                    .as_ref()
                    .and_then(|s| s.privileged)
                    .unwrap_or(false)
        })
    })
}

/// The `controller-revision-hash` of the DaemonSet's newest ControllerRevision.
async fn current_revision_hash(client: &kube::Client, daemonset: &DaemonSet) -> String {
    let uid = daemonset.metadata.uid.clone().unwrap();
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "kube-system");
    revisions
        .list(&ListParams::default().labels("k8s-app=cilium"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .max_by_key(|r| r.revision)
        .and_then(|r| r.metadata.labels?.get("controller-revision-hash").cloned())
        .unwrap()
}

/// The label the fault injection adds to the agent DaemonSet's selector and pod template.
const EXTRA_SELECTOR_LABEL: &str = "kubespray.example/selector-edit";

/// Kubespray's v2.27.1 objects with one more label in the agent DaemonSet's selector (and pod
/// template), written to `out`: a DaemonSet whose immutable selector the chart's cannot equal.
/// No released chart or Kubespray render has such a selector, hence this edit.
fn with_extra_selector_label(
    objects: &std::path::Path,
    out: &std::path::Path,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(objects).unwrap();
    let label = format!("{EXTRA_SELECTOR_LABEL}: \"true\"");
    let mut edited = String::new();
    let (mut in_daemonset, mut edits) = (false, 0);
    let mut previous = String::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("kind: ") {
            in_daemonset = line.trim_end() == "kind: DaemonSet";
        }
        edited.push_str(line);
        // `spec.selector.matchLabels` and `spec.template.metadata.labels` of the DaemonSet.
        if in_daemonset
            && line.trim_end() == "      k8s-app: cilium"
            && previous.trim_end() == "    matchLabels:"
        {
            edited.push_str(&format!("      {label}\n"));
            edits += 1;
        }
        if in_daemonset
            && line.trim_end() == "        k8s-app: cilium"
            && previous.trim_end() == "      labels:"
        {
            edited.push_str(&format!("        {label}\n"));
            edits += 1;
        }
        previous = line.to_owned();
    }
    assert_eq!(
        edits,
        2,
        "{}: not the DaemonSet this edit expects",
        objects.display()
    );
    std::fs::write(out, edited).unwrap();
    out.to_path_buf()
}

/// A testbed of its own holding Kubespray's v2.27.1 objects with the agent DaemonSet's selector
/// edited ([`with_extra_selector_label`]), plus the custom resources of a running Cilium.
async fn differing_selector_testbed(
    scratch: &std::path::Path,
    case: &upstream::RenderedCase,
) -> testbed::Testbed {
    let testbed = migrate_common::start_testbed(&scratch.join("testbed")).await;
    let objects =
        with_extra_selector_label(&case.file("objects.yaml"), &scratch.join("objects.yaml"));
    testbed::fixtures::template_era(
        &testbed.tools().kubectl,
        testbed.kubeconfig(),
        &objects,
        &migrate_common::fixture_options(&testbed),
    )
    .unwrap();
    testbed
}

/// What `replace` exists for: a live DaemonSet whose immutable selector differs from the chart's.
/// Adoption is refused with a pointer to `replace`, and `replace` hands over: the DaemonSet is
/// re-created with the chart's selector and every agent runs under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_differing_selector_blocks_adopt_and_replace_hands_over() {
    let Some(upstream) =
        upstream("migrate_replace::a_differing_selector_blocks_adopt_and_replace_hands_over")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = differing_selector_testbed(tmp.path(), &case).await;
    let client = testbed.client().await.unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let bundle_dir = tmp.path().join("bundle");
    let helm = testbed.tools().helm4;
    let mut migrate = migrate_options(&testbed, &inventory, &bundle_dir, &helm, tmp.path(), &chart);
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let live_uid = daemonsets.get("cilium").await.unwrap().metadata.uid;

    // adopt (the default): the plan names the selector and the way out, and nothing changes.
    migrate.apply = false;
    let planned = flow::run(&migrate, &mut Recorder::default()).await.unwrap();
    let Outcome::Planned { plan } = planned else {
        panic!("expected a plan, got {planned:?}")
    };
    assert_eq!(plan.strategy, Strategy::Adopt);
    assert!(
        plan.blockers.iter().any(|b| b
            .contains("selector of DaemonSet kube-system/cilium differs")
            && b.contains("replace")),
        "{:#?}",
        plan.blockers
    );
    migrate.apply = true;
    let refused = flow::run(&migrate, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(refused, flow::FlowError::Gate(_)), "{refused:?}");
    assert!(
        !bundle_dir.exists(),
        "a refused hand-over wrote {}",
        bundle_dir.display()
    );
    assert_eq!(
        daemonsets.get("cilium").await.unwrap().metadata.uid,
        live_uid
    );

    // replace: a new DaemonSet with the chart's selector, every agent under it. Its pods lose the
    // injected label: the workload gate says so, and only that, accepted by name.
    migrate.strategy = Some(Strategy::Replace);
    migrate.apply = false;
    let planned = flow::run(&migrate, &mut Recorder::default()).await.unwrap();
    let Outcome::Planned { plan } = planned else {
        panic!("expected a plan, got {planned:?}")
    };
    let dropped_label = format!("DaemonSet/cilium: label {EXTRA_SELECTOR_LABEL}");
    assert_eq!(plan.blockers.len(), 1, "{:#?}", plan.blockers);
    assert!(
        plan.blockers[0].contains(&format!("--accept-workload-change '{dropped_label}'")),
        "{:#?}",
        plan.blockers
    );
    migrate.accept_workload_changes = vec![dropped_label];
    migrate.apply = true;
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");
    let daemonset = daemonsets.get("cilium").await.unwrap();
    assert_ne!(daemonset.metadata.uid, live_uid);
    let selector = daemonset
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    assert!(!selector.contains_key(EXTRA_SELECTOR_LABEL), "{selector:?}");
    let agents = pods(&client, "k8s-app=cilium").await;
    assert_eq!(agents.len(), testbed.nodes().len());
    let uid = daemonset.metadata.uid.clone().unwrap();
    for pod in &agents {
        assert!(
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid),
            "{:?} is not the new DaemonSet's",
            pod.metadata.name
        );
    }
}

/// Rolling back a `replace` whose chart's selector differs from Kubespray's (the case `replace`
/// exists for) re-creates Kubespray's DaemonSet, whose immutable selector the chart's cannot
/// take. The chart's agents are orphaned and adopted by the re-created DaemonSet, which then
/// replaces them within its `maxUnavailable`: never every agent at once, as a cascading delete
/// would. A second rollback of the bundle is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_replace_hands_the_agents_over_node_by_node() {
    let Some(upstream) =
        upstream("migrate_replace::rolling_back_replace_hands_the_agents_over_node_by_node")
    else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = differing_selector_testbed(tmp.path(), &case).await;
    let client = testbed.client().await.unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let bundle_dir = tmp.path().join("bundle");
    let helm = testbed.tools().helm4;
    let mut migrate = migrate_options(&testbed, &inventory, &bundle_dir, &helm, tmp.path(), &chart);
    migrate.strategy = Some(Strategy::Replace);
    migrate.accept_workload_changes =
        vec![format!("DaemonSet/cilium: label {EXTRA_SELECTOR_LABEL}")];
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");
    let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    let chart_daemonset = daemonsets
        .get("cilium")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let chart_agents: Vec<String> = pods(&client, "k8s-app=cilium")
        .await
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    assert_eq!(chart_agents.len(), testbed.nodes().len());

    let monitor = AgentMonitor::start(&client, testbed.nodes());
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let options = migration::flow::RollbackOptions {
        bundle: bundle_dir.clone(),
        kubeconfig: Some(testbed.kubeconfig().to_path_buf()),
        helm: Some(helm.clone()),
        apply: true,
    };
    let mut progress = Recorder::default();
    let rolled = flow::rollback(&options, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(
        rolled.differences.is_empty(),
        "{:#?}\n{}",
        rolled.differences,
        progress.lines.join("\n")
    );
    assert!(
        rolled
            .recreated
            .iter()
            .any(|o| o == "DaemonSet kube-system/cilium"),
        "{rolled:?}"
    );
    // The rollback waited for the roll: every agent is the re-created DaemonSet's, on its
    // current revision, running Kubespray's privileged spec again.
    let restored = daemonsets.get("cilium").await.unwrap();
    let restored_uid = restored.metadata.uid.clone().unwrap();
    assert_ne!(restored_uid, chart_daemonset);
    let selector = restored
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    assert!(selector.contains_key(EXTRA_SELECTOR_LABEL), "{selector:?}");
    let current = current_revision_hash(&client, &restored).await;
    let agents = pods(&client, "k8s-app=cilium").await;
    assert_eq!(agents.len(), testbed.nodes().len());
    for pod in &agents {
        let name = pod.metadata.name.clone().unwrap_or_default();
        assert!(
            pod.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == restored_uid),
            "{name} is not the re-created DaemonSet's"
        );
        assert_eq!(
            label(pod, "controller-revision-hash"),
            Some(current.as_str()),
            "{name}"
        );
        assert!(privileged(pod), "{name} does not run Kubespray's spec");
    }
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let controllers = monitor.pod_controllers();
    let availability = monitor.stop();

    // Each chart agent outlived the DaemonSet's re-creation: it was adopted by the re-created
    // DaemonSet before that one replaced it (a cascading delete takes every one down with the
    // chart's DaemonSet, never adopted).
    for uid in &chart_agents {
        let seen = controllers.get(uid).cloned().unwrap_or_default();
        assert!(
            seen.contains(&restored_uid),
            "agent pod {uid} went without being adopted by the re-created DaemonSet (controllers seen: {seen:?})\n{}",
            progress.lines.join("\n")
        );
    }
    // And they were replaced within the restored maxUnavailable, never all at once.
    let max_unavailable = restored
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref())
        .map(|m| match m {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => *n as usize,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => {
                panic!("maxUnavailable {s} is not a count")
            }
        })
        .unwrap();
    assert!(
        availability.max_nodes_without_agent <= max_unavailable
            && availability.max_nodes_without_agent < testbed.nodes().len(),
        "{} nodes at once without a Ready agent (maxUnavailable {max_unavailable}, {} nodes): {:?}",
        availability.max_nodes_without_agent,
        testbed.nodes().len(),
        availability.gaps
    );
    assert_eq!(availability.agents_replaced, chart_agents.len());

    // Rolled back once: a second rollback of the bundle is refused, and changes nothing.
    let again = flow::rollback(&options, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("rolled back already"), "{again}");
    assert_eq!(
        daemonsets.get("cilium").await.unwrap().metadata.uid,
        Some(restored_uid)
    );
}
