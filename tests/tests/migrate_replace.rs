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
//! Starts a testbed of its own (the fixture owns `kube-system`).

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
