//! End-to-end: `migration::flow` (what `cargo xtask migrate` runs) adopts the objects Kubespray
//! really applies into a release of the released Cilium 1.15.9 chart on a real control plane, and
//! `rollback` restores the backup exactly, for every template-era case Kubespray's templates
//! rendered: v2.27.1's sample (Helm 3), with Hubble, relay, UI and certgen (`hubble-full`, Helm
//! 4), with IPsec in native routing (`ipsec-native`, Helm 3), with BGP and LB-IPAM
//! (`bgp-lbipam`, Helm 4), and v2.26.0's sample (Helm 4).
//!
//! Each test starts a testbed of its own (the fixture owns `kube-system`). While the hand-over
//! runs, `testbed::monitor::AgentMonitor` watches the agent DaemonSet's UID and which nodes have
//! a Ready agent pod, event by event.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use migrate_common::{
    Recorder, inventory_copy, live_cilium_config, migrate_args, migrate_options,
    release_cilium_config, release_status, run_xtask, template_era_testbed, upstream,
};
use migration::bundle::{Bundle, Section};
use migration::era::{self, Era, InventoryClaim};
use migration::flow::{self, FlowError, Outcome, RollbackOptions};
use migration::identity::ClusterIdentity;
use migration::journal::{Journal, JournalStatus, Step, Strategy};
use testbed::monitor::AgentMonitor;
use tests::{bundle_uids, files_under, live_uids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_adopt_with_helm3() {
    adopt_and_roll_back(
        "migrate_adopt::v2_27_adopt_with_helm3",
        ("sample", "v2.27.1"),
        &testbed::Tools::default().helm3,
    )
    .await;
}

/// Hubble's relay, UI, certgen Job and CronJob and their Secrets are adopted or left alone too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_hubble_full_adopt_with_helm4() {
    adopt_and_roll_back(
        "migrate_adopt::v2_27_hubble_full_adopt_with_helm4",
        ("hubble-full", "v2.27.1"),
        &testbed::Tools::default().helm4,
    )
    .await;
}

/// IPsec in native routing: Kubespray's `cilium-ipsec-keys` Secret is kept and adopted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_ipsec_native_adopt_with_helm3() {
    adopt_and_roll_back(
        "migrate_adopt::v2_27_ipsec_native_adopt_with_helm3",
        ("ipsec-native", "v2.27.1"),
        &testbed::Tools::default().helm3,
    )
    .await;
}

/// BGP control plane and LB-IPAM: Kubespray's own pool and peering policy (custom resources it
/// applies) stay as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_bgp_lbipam_adopt_with_helm4() {
    adopt_and_roll_back(
        "migrate_adopt::v2_27_bgp_lbipam_adopt_with_helm4",
        ("bgp-lbipam", "v2.27.1"),
        &testbed::Tools::default().helm4,
    )
    .await;
}

/// Kubespray v2.26.0 runs Cilium 1.15.4: the hand-over to the 1.15.9 chart is also a patch
/// upgrade, asked for with `--cilium-version`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_26_adopt_with_helm4() {
    adopt_and_roll_back(
        "migrate_adopt::v2_26_adopt_with_helm4",
        ("sample", "v2.26.0"),
        &testbed::Tools::default().helm4,
    )
    .await;
}

async fn adopt_and_roll_back(test: &str, (name, tag): (&str, &str), helm: &Path) {
    let Some(upstream) = upstream(test) else {
        return;
    };
    let case = tests::rendered_case(&upstream, name, tag);
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let client = testbed.client().await.unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);
    let bundle_dir = tmp.path().join("bundle");
    let mut migrate = migrate_options(&testbed, &inventory, &bundle_dir, helm, tmp.path(), &chart);
    if tag != "v2.27.1" {
        migrate.cilium_version = Some(tests::HANDOVER_CHART_VERSION.to_owned());
    }

    // The command line: the plan as JSON, and a refusal of --apply without --yes off a terminal.
    let (_, stdout, stderr) = run_xtask(&plan_json_args(&migrate, tmp.path()));
    let printed: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON plan ({e}):\n{stderr}\n{stdout}"));
    // v2.26.0 runs Cilium 1.15.4, so the 1.15.9 chart is also the patch upgrade this case asks
    // for: its images, and nothing else, block; they are accepted by name. v2.27.1 runs 1.15.9:
    // nothing blocks.
    let upgrade = upgraded_images(&printed["plan"]["workload_differences"]);
    if tag == "v2.27.1" {
        assert!(upgrade.is_empty(), "{stdout}");
    } else {
        assert!(!upgrade.is_empty(), "{stdout}");
    }
    assert_eq!(
        printed["plan"]["blockers"].as_array().map(Vec::len),
        Some(upgrade.len()),
        "{stdout}"
    );
    migrate.accept_workload_changes = upgrade;
    let args = migrate_args(&migrate, tmp.path());
    let (ok, stdout, stderr) = run_xtask(&plan_json_args(&migrate, tmp.path()));
    assert!(ok, "{stderr}\n{stdout}");
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["outcome"], "planned", "{stdout}");
    assert_eq!(printed["plan"]["strategy"], "adopt", "{stdout}");
    assert_eq!(
        printed["plan"]["blockers"],
        serde_json::json!([]),
        "{stdout}"
    );
    // Each gate difference keeps its documented JSON shape, and none changes behaviour.
    let differences = printed["plan"]["config_differences"]
        .as_array()
        .unwrap_or_else(|| panic!("no config_differences array: {stdout}"));
    // Kubespray's objects have changes of form (keys the chart no longer writes).
    assert!(!differences.is_empty(), "{stdout}");
    for d in differences {
        for field in [
            "key",
            "live",
            "rendered",
            "kind",
            "changes_behaviour",
            "accepted",
            "reason",
        ] {
            assert!(d.get(field).is_some(), "{field} missing from {d}");
        }
        assert_eq!(d["changes_behaviour"], false, "{d}");
    }
    assert!(stderr.contains("] gate ..."), "{stderr}");
    let mut no_yes = args.clone();
    no_yes.push("--apply".into());
    let (ok, _, stderr) = run_xtask(&no_yes);
    assert!(!ok && stderr.contains("--yes"), "{stderr}");

    // The plan alone changes nothing: no bundle, no journal, the same cluster.
    migrate.apply = false;
    let planned = flow::run(&migrate, &mut Recorder::default()).await.unwrap();
    let Outcome::Planned { plan } = planned else {
        panic!("expected a plan, got {planned:?}")
    };
    assert_eq!(plan.strategy, Strategy::Adopt);
    assert_eq!(plan.next_step, Some(Step::Backup));
    assert!(plan.blockers.is_empty(), "{:#?}", plan.blockers);
    assert!(
        plan.inventory_diff.contains("+kube_network_plugin: cni"),
        "{}",
        plan.inventory_diff
    );
    let adoption = plan.adoption.as_ref().unwrap();
    assert!(
        adoption
            .adopted
            .iter()
            .any(|o| o.contains("DaemonSet kube-system/cilium")),
        "{adoption:?}"
    );
    assert!(
        !bundle_dir.exists(),
        "planning wrote {}",
        bundle_dir.display()
    );
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap(),
        Era::TemplateManifests { .. }
    ));

    // Watch the agents for the whole run.
    let monitor = AgentMonitor::start(&client, testbed.nodes());
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let daemonset_uid = monitor
        .inspect(|log| log.daemonset_uid().map(str::to_owned))
        .unwrap();

    let agents_before = agent_pods(&client).await;
    migrate.apply = true;
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress).await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    let Outcome::Migrated {
        plan,
        steps,
        checks,
    } = outcome
    else {
        panic!("expected a migration, got {outcome:?}")
    };
    let ran: Vec<Step> = steps.iter().map(|s| s.step).collect();
    assert_eq!(ran, Strategy::Adopt.steps());
    assert!(
        checks.iter().filter(|c| !c.ignored).all(|c| c.green),
        "{checks:#?}"
    );
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let availability = monitor.stop();

    // The agents rolled (new pods on every node), so the watch saw a real rollout. The
    // DaemonSet was never deleted, and at no moment were more nodes without a Ready agent
    // than the chart's maxUnavailable.
    let agents_after = agent_pods(&client).await;
    assert_eq!(agents_after.len(), testbed.nodes().len());
    assert!(
        agents_after.iter().all(|uid| !agents_before.contains(uid)),
        "the agent pods were not replaced: {agents_before:?} -> {agents_after:?}"
    );
    assert!(
        !availability.daemonset.deleted,
        "{:?}",
        availability.daemonset
    );
    assert_eq!(availability.daemonset.uids, vec![daemonset_uid.clone()]);
    let rendered_ds = helm_manifest_object(helm, testbed.kubeconfig(), "DaemonSet", "cilium");
    let max_unavailable = rendered_ds
        .pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable")
        .and_then(serde_json::Value::as_u64)
        .unwrap() as usize;
    assert!(
        availability.max_nodes_without_agent <= max_unavailable,
        "{} nodes at once without a Ready agent, maxUnavailable {max_unavailable}: {:?}",
        availability.max_nodes_without_agent,
        availability.gaps
    );

    // Every cilium.io object and CRD is the same object as before; the release is deployed;
    // the live cilium-config is what the release renders.
    let bundle = Bundle::open(&bundle_dir).unwrap();
    for section in [Section::CustomResources, Section::Crds] {
        let before = bundle_uids(&bundle, section);
        assert!(!before.is_empty(), "{section:?}");
        assert_eq!(
            live_uids(&client, &bundle, section).await,
            before,
            "{section:?}"
        );
    }
    let status = release_status(helm, testbed.kubeconfig()).unwrap();
    assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);
    assert_eq!(
        release_cilium_config(helm, testbed.kubeconfig()),
        live_cilium_config(&client).await
    );
    // The inventory no longer installs Cilium, and the values sit next to it.
    let cluster_vars =
        fs::read_to_string(inventory.join("group_vars/k8s_cluster/k8s-cluster.yml")).unwrap();
    assert!(
        cluster_vars.contains("kube_network_plugin: cni"),
        "{cluster_vars}"
    );
    assert!(inventory.join(flow::VALUES_FILE).is_file());
    assert_eq!(plan.bundle, bundle_dir);

    // A second run is a no-op, with or without the bundle (and from the command line).
    let mut apply = args.clone();
    apply.extend([
        "--apply".into(),
        "--yes".into(),
        "--output".into(),
        "json".into(),
    ]);
    let (ok, stdout, stderr) = run_xtask(&apply);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("\"outcome\": \"already-handed-over\""),
        "{stdout}"
    );
    let again = flow::run(&migrate, &mut Recorder::default()).await.unwrap();
    assert!(
        matches!(again, Outcome::AlreadyHandedOver { .. }),
        "{again:?}"
    );
    let mut elsewhere = migrate.clone();
    elsewhere.bundle = Some(tmp.path().join("another-bundle"));
    let again = flow::run(&elsewhere, &mut Recorder::default())
        .await
        .unwrap();
    assert!(
        matches!(again, Outcome::AlreadyHandedOver { .. }),
        "{again:?}"
    );
    assert!(!tmp.path().join("another-bundle").exists());
    assert_eq!(
        release_status(helm, testbed.kubeconfig()).unwrap().revision,
        status.revision
    );

    // A journal of another cluster is refused before anything is read or written.
    let foreign = tmp.path().join("foreign-bundle");
    let other = ClusterIdentity {
        api_server: "https://10.0.0.10:6443".into(),
        kube_system_uid: "00000000-0000-0000-0000-000000000000".into(),
    };
    Journal::create(&foreign, other, Strategy::Adopt).unwrap();
    let mut wrong = migrate.clone();
    wrong.bundle = Some(foreign.clone());
    let refused = flow::run(&wrong, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(refused, FlowError::Journal(_)), "{refused:?}");
    assert!(refused.to_string().contains("another cluster"), "{refused}");
    let rollback_refused = flow::rollback(
        &RollbackOptions {
            bundle: foreign,
            kubeconfig: Some(testbed.kubeconfig().to_path_buf()),
            helm: Some(helm.to_path_buf()),
            apply: true,
        },
        &mut Recorder::default(),
    )
    .await
    .unwrap_err();
    assert!(
        rollback_refused.to_string().contains("another cluster"),
        "{rollback_refused}"
    );

    // Rollback: the backup comes back exactly, with the same objects (UIDs), and the inventory
    // byte for byte.
    let mut progress = Recorder::default();
    let rolled = flow::rollback(
        &RollbackOptions {
            bundle: bundle_dir.clone(),
            kubeconfig: Some(testbed.kubeconfig().to_path_buf()),
            helm: Some(helm.to_path_buf()),
            apply: true,
        },
        &mut progress,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(rolled.differences.is_empty(), "{:#?}", rolled.differences);
    // The chart's own objects, which Kubespray never applied, are gone again.
    assert!(
        rolled
            .removed
            .iter()
            .any(|o| o == "Role kube-system/cilium-config-agent"),
        "{rolled:?}"
    );
    assert_eq!(files_under(&inventory), inventory_before);
    assert!(
        release_status(helm, testbed.kubeconfig()).is_none(),
        "the release is forgotten"
    );
    let handover = bundle_uids(&bundle, Section::Handover);
    let live = live_uids(&client, &bundle, Section::Handover).await;
    for (r, uid) in &handover {
        if r.kind != "Job" {
            assert_eq!(live.get(r), Some(uid), "{r}");
        }
    }
    assert_eq!(
        live.iter()
            .find(|(r, _)| r.kind == "DaemonSet")
            .map(|(_, u)| u.clone()),
        Some(Some(daemonset_uid))
    );
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap(),
        Era::TemplateManifests { .. }
    ));
    assert!(state.handover_marker.is_none());
    // The rolled-back bundle is not resumable.
    let reuse = flow::run(&migrate, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(reuse.to_string().contains("never reused"), "{reuse}");
}

/// `xtask migrate ... --output json` for these options.
fn plan_json_args(migrate: &flow::MigrateOptions, scratch: &Path) -> Vec<std::ffi::OsString> {
    let mut args = migrate_args(migrate, scratch);
    args.extend(["--output".into(), "json".into()]);
    args
}

/// The names of the blocking workload differences of a plan, each checked to be an image moving
/// from Cilium 1.15.4 to 1.15.9 (a patch upgrade) and nothing else.
fn upgraded_images(differences: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    for d in differences.as_array().unwrap() {
        if d["blocks"] != true {
            continue;
        }
        let name = d["name"].as_str().unwrap();
        let live = d["live"].as_str().unwrap_or_default();
        let rendered = d["rendered"].as_str().unwrap_or_default();
        assert!(
            name.ends_with(": image") && live.contains(":v1.15.4") && rendered.contains(":v1.15.9"),
            "a blocking difference other than the 1.15.4 -> 1.15.9 images: {d}"
        );
        names.push(name.to_owned());
    }
    names
}

/// One object of the release's manifest.
fn helm_manifest_object(
    helm: &Path,
    kubeconfig: &Path,
    kind: &str,
    name: &str,
) -> serde_json::Value {
    let manifest = helm::Helm::locate(Some(helm))
        .unwrap()
        .with_kubeconfig(kubeconfig)
        .get_manifest("cilium", "kube-system")
        .unwrap();
    migration::object::parse_manifest(&manifest)
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap()
}

/// UIDs of the agent pods (`k8s-app=cilium` in kube-system).
async fn agent_pods(client: &kube::Client) -> Vec<String> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "kube-system");
    pods.list(&kube::api::ListParams::default().labels("k8s-app=cilium"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.uid)
        .collect()
}
