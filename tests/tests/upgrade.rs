//! End-to-end: `upgrade` after the hand-over, through the real `cargo xtask` binary.
//!
//! 1. Kubespray v2.27.1's objects handed over to the released 1.15.9 chart; `upgrade --to 1.17
//!    --output json` saves the plan, `--apply` without acceptance is refused (nothing changed),
//!    `--plan plan.json --apply` goes 1.15.9 -> 1.15.19 -> 1.16.19 -> 1.17.18: one Helm revision
//!    per hop with the right chart and exactly the plan's values (the plan shows them redacted
//!    and pins each hop's values file by sha256: a plan whose hash is not the file's is refused),
//!    the agent DaemonSet never replaced, no preflight release left, the values files and the
//!    journal 0600; the same plan is refused once the release moved;
//!    `upgrade rollback --apply` returns the release and `cilium-config` to the start.
//! 2. The cilium-cli era (Kubespray v2.28.1's values on the released 1.17.3 chart) to 1.19.6,
//!    each behaviour change accepted by name with `--accept` (a failed 1.18 hop resumes), then on
//!    to 1.20.0: one more revision, the same agent DaemonSet, the xDS server kept.
//!
//! kwok nodes fake pods, so the DaemonSets (agent, Envoy, preflight) become ready without a
//! datapath; the one verify check kwok cannot pass is ignored. Each test starts a testbed of its
//! own (the fixtures own `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::ffi::OsString;
use std::path::Path;

use k8s_openapi::api::apps::v1::DaemonSet;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, PostParams};
use migrate_common::{
    KWOK_IGNORED_CHECKS, Recorder, cilium_cli_era_testbed, inventory_copy, live_cilium_config,
    migrate_options, release_status, resource, run_xtask, template_era_testbed, upstream,
};
use migration::flow::{self, Outcome};
use serde_json::Value as Json;

/// `--kubeconfig K --helm H --state-dir S --ignore-check ...`: what every upgrade call passes.
fn common(kubeconfig: &Path, helm: &Path, state: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--kubeconfig".into(),
        kubeconfig.into(),
        "--helm".into(),
        helm.into(),
        "--state-dir".into(),
        state.into(),
    ];
    for check in KWOK_IGNORED_CHECKS {
        args.extend(["--ignore-check".into(), (*check).into()]);
    }
    args
}

fn xtask(args: Vec<OsString>) -> (bool, String, String) {
    run_xtask(&args)
}

async fn agent_uid(client: &kube::Client) -> String {
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    daemon_sets
        .get("cilium")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// `(revision, chart)` of every release revision, oldest first.
fn history(helm: &Path, kubeconfig: &Path) -> Vec<(u32, String)> {
    helm::Helm::locate(Some(helm))
        .unwrap()
        .with_kubeconfig(kubeconfig)
        .history("cilium", "kube-system")
        .unwrap()
        .into_iter()
        .map(|r| (r.revision, r.chart))
        .collect()
}

fn values_of(helm: &Path, kubeconfig: &Path, revision: u32) -> Json {
    helm::Helm::locate(Some(helm))
        .unwrap()
        .with_kubeconfig(kubeconfig)
        .get_values(
            "cilium",
            "kube-system",
            helm::ValuesScope::User,
            Some(revision),
        )
        .unwrap()
}

fn hop_versions(plan: &Json) -> Vec<String> {
    plan["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["version"].as_str().unwrap().to_owned())
        .collect()
}

/// A testbed holding Kubespray v2.27.1's objects, handed over to the released 1.15.9 chart.
async fn handed_over(upstream: &upstream::Upstream, tmp: &Path) -> testbed::Testbed {
    let case = tests::rendered_case(upstream, "sample", "v2.27.1");
    let chart = upstream.chart("1.15.9").unwrap();
    let testbed = template_era_testbed(&tmp.join("testbed"), &case).await;
    let helm = testbed.tools().helm;
    let inventory = inventory_copy(&case, tmp);
    let handover = migrate_options(
        &testbed,
        &inventory,
        &tmp.join("bundle"),
        &helm,
        tmp,
        &chart,
    );
    let mut progress = Recorder::default();
    let outcome = flow::run(&handover, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("hand-over: {e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");
    testbed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_stops_at_the_first_hop_that_does_not_verify_and_rolls_back_before_that_hop() {
    let Some(upstream) = upstream(
        "upgrade::upgrade_stops_at_the_first_hop_that_does_not_verify_and_rolls_back_before_that_hop",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let testbed = handed_over(&upstream, tmp.path()).await;
    let client = testbed.client().await.unwrap();
    let helm = testbed.tools().helm;
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let start = release_status(&helm, &kubeconfig).unwrap();
    let config_before = live_cilium_config(&client).await;
    let state = tmp.path().join("upgrade-state");
    // A node whose CiliumNode is gone fails verification ("CiliumNodes"): the first hop's.
    let cilium_nodes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("cilium.io/v2", "CiliumNode", "ciliumnodes"),
    );
    let node = testbed.nodes()[0].clone();
    let saved = cilium_nodes.get(&node).await.unwrap();
    cilium_nodes
        .delete(&node, &DeleteParams::default())
        .await
        .unwrap();
    tests::wait_for(
        "the CiliumNode to be gone",
        std::time::Duration::from_secs(60),
        async || match cilium_nodes.get_opt(&node).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let mut args: Vec<OsString> = vec![
        "upgrade".into(),
        "--to".into(),
        "1.16".into(),
        "--charts".into(),
        upstream.charts_dir().into(),
        "--kubeconfig".into(),
        kubeconfig.clone().into(),
        "--helm".into(),
        helm.clone().into(),
        "--state-dir".into(),
        state.clone().into(),
        "--verify-timeout".into(),
        "15s".into(),
    ];
    for check in KWOK_IGNORED_CHECKS {
        args.extend(["--ignore-check".into(), (*check).into()]);
    }
    let (ok, stdout, stderr) = xtask(
        args.clone()
            .into_iter()
            .chain(["--output".into(), "json".into()])
            .collect(),
    );
    assert!(ok, "{stderr}");
    let plan: Json = serde_json::from_str(&stdout).unwrap();
    let mut apply = args;
    for hop in plan["hops"].as_array().unwrap() {
        for change in hop["changes"].as_array().unwrap() {
            apply.extend(["--accept".into(), change["key"].as_str().unwrap().into()]);
        }
    }
    apply.push("--apply".into());
    let (ok, _, stderr) = xtask(apply);
    assert!(!ok, "a hop that does not verify let the run go on");
    assert!(
        stderr.contains("hop to 1.15.19")
            && stderr.contains("did not verify")
            && stderr.contains("CiliumNode")
            && stderr.contains("upgrade rollback"),
        "{stderr}"
    );
    // Stopped there: one revision, 1.15.19; 1.16 never started.
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision + 1, "cilium-1.15.19".to_owned())
    );

    // Back to the revision before that hop, the node registered again.
    let mut again = saved.clone();
    again.metadata.resource_version = None;
    again.metadata.uid = None;
    again.metadata.creation_timestamp = None;
    again.metadata.managed_fields = None;
    cilium_nodes
        .create(&PostParams::default(), &again)
        .await
        .unwrap();
    let mut rollback: Vec<OsString> = vec![
        "upgrade".into(),
        "rollback".into(),
        "--hop".into(),
        "1.15.19".into(),
    ];
    rollback.extend(common(&kubeconfig, &helm, &state));
    let (ok, stdout, _) = xtask(rollback.clone());
    assert!(ok);
    assert!(
        stdout.contains(&format!("to revision {}", start.revision)),
        "{stdout}"
    );
    rollback.push("--apply".into());
    let (ok, stdout, stderr) = xtask(rollback);
    assert!(ok, "upgrade rollback failed:\n{stdout}\n{stderr}");
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision + 2, "cilium-1.15.9".to_owned())
    );
    assert_eq!(live_cilium_config(&client).await, config_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_hands_over_kubespray_v2_27_1_then_goes_to_1_17_one_minor_at_a_time_and_rolls_back()
{
    let Some(upstream) = upstream(
        "upgrade::upgrade_hands_over_kubespray_v2_27_1_then_goes_to_1_17_one_minor_at_a_time_and_rolls_back",
    ) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let testbed = handed_over(&upstream, tmp.path()).await;
    let client = testbed.client().await.unwrap();
    let helm = testbed.tools().helm;
    let kubeconfig = testbed.kubeconfig().to_path_buf();

    let start = release_status(&helm, &kubeconfig).unwrap();
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision, "cilium-1.15.9".to_owned())
    );
    let config_before = live_cilium_config(&client).await;
    let uid_before = agent_uid(&client).await;
    let state = tmp.path().join("upgrade-state");
    let charts = upstream.charts_dir();
    let base = || {
        let mut args: Vec<OsString> = vec!["upgrade".into(), "--to".into(), "1.17".into()];
        args.extend(["--charts".into(), charts.clone().into()]);
        args.extend(common(&kubeconfig, &helm, &state));
        args
    };

    // The plan, saved for review.
    let mut plan_args = base();
    plan_args.extend(["--output".into(), "json".into()]);
    let (ok, stdout, stderr) = xtask(plan_args);
    assert!(ok, "upgrade plan failed: {stderr}");
    let plan: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(hop_versions(&plan), ["1.15.19", "1.16.19", "1.17.18"]);
    assert_eq!(plan["release"]["revision"], start.revision);
    let changes: usize = plan["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["changes"].as_array().unwrap().len())
        .sum();
    assert!(
        changes > 0,
        "the 1.16 and 1.17 hops change behaviour: {plan:#}"
    );
    let plan_file = tmp.path().join("plan.json");
    std::fs::write(&plan_file, &stdout).unwrap();

    // --apply without accepting the changes: refused, nothing changed.
    let mut unaccepted = base();
    unaccepted.push("--apply".into());
    let (ok, _, stderr) = xtask(unaccepted);
    assert!(!ok, "an apply without acceptance ran");
    assert!(stderr.contains("not accepted"), "{stderr}");
    assert_eq!(
        release_status(&helm, &kubeconfig).unwrap().revision,
        start.revision
    );

    // A reviewed plan is refused, nothing changed, when a chart archive is not the one
    // reviewed (same chart, other bytes) or the cluster is another one.
    let altered = tmp.path().join("altered-charts");
    std::fs::create_dir(&altered).unwrap();
    for entry in std::fs::read_dir(&charts).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, altered.join(path.file_name().unwrap())).unwrap();
    }
    let mut archive = std::fs::read(altered.join("cilium-1.16.19.tgz")).unwrap();
    archive.extend([0u8; 16]);
    std::fs::write(altered.join("cilium-1.16.19.tgz"), archive).unwrap();
    let mut stale_charts: Vec<OsString> = vec!["upgrade".into(), "--charts".into(), altered.into()];
    stale_charts.extend(common(&kubeconfig, &helm, &state));
    stale_charts.extend(["--plan".into(), plan_file.clone().into(), "--apply".into()]);
    let (ok, _, stderr) = xtask(stale_charts);
    assert!(!ok, "a plan with another chart archive was applied");
    assert!(
        stderr.contains("sha256") && stderr.contains("cilium-1.16.19.tgz"),
        "{stderr}"
    );
    let mut elsewhere = plan.clone();
    elsewhere["cluster"]["kube_system_uid"] = "another-cluster".into();
    let elsewhere_file = tmp.path().join("plan-elsewhere.json");
    std::fs::write(&elsewhere_file, elsewhere.to_string()).unwrap();
    let mut other_cluster = base();
    other_cluster.extend(["--plan".into(), elsewhere_file.into(), "--apply".into()]);
    let (ok, _, stderr) = xtask(other_cluster);
    assert!(!ok, "a plan for another cluster was applied");
    assert!(stderr.contains("another-cluster"), "{stderr}");
    assert_eq!(
        release_status(&helm, &kubeconfig).unwrap().revision,
        start.revision
    );
    // A plan whose pinned values file is not the one the release gives: refused, naming the hop.
    let mut tampered = plan.clone();
    tampered["hops"][1]["values_sha256"] = "0".repeat(64).into();
    let tampered_file = tmp.path().join("plan-tampered.json");
    std::fs::write(&tampered_file, tampered.to_string()).unwrap();
    let mut other_values = base();
    other_values.extend(["--plan".into(), tampered_file.into(), "--apply".into()]);
    let (ok, _, stderr) = xtask(other_values);
    assert!(!ok, "a plan with another values hash was applied");
    assert!(
        stderr.contains("hop 1.15.19 -> 1.16.19") && stderr.contains("sha256"),
        "{stderr}"
    );
    assert_eq!(
        release_status(&helm, &kubeconfig).unwrap().revision,
        start.revision
    );

    // The reviewed plan, applied.
    let mut apply = base();
    apply.extend([
        "--plan".into(),
        plan_file.clone().into(),
        "--apply".into(),
        "--verify-timeout".into(),
        "5m".into(),
    ]);
    let (ok, stdout, stderr) = xtask(apply.clone());
    assert!(ok, "upgrade --apply failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("preflight"), "no progress shown: {stderr}");

    let revisions = history(&helm, &kubeconfig);
    let after_start: Vec<(u32, String)> = revisions
        .iter()
        .filter(|(r, _)| *r > start.revision)
        .cloned()
        .collect();
    assert_eq!(
        after_start,
        [
            (start.revision + 1, "cilium-1.15.19".to_owned()),
            (start.revision + 2, "cilium-1.16.19".to_owned()),
            (start.revision + 3, "cilium-1.17.18".to_owned()),
        ]
    );
    // Each revision holds exactly the values the reviewed plan listed for its hop (as the plan
    // shows them: secret-looking ones redacted), from a values file only its owner reads.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for (offset, hop) in plan["hops"].as_array().unwrap().iter().enumerate() {
        let revision = start.revision + 1 + u32::try_from(offset).unwrap();
        let installed = values_of(&helm, &kubeconfig, revision);
        let mut shown = installed.clone();
        cilium_values::redact_json(&mut shown);
        assert_eq!(shown, hop["values"], "revision {revision}");
        let file = state.join(format!(
            "values-{}.values.json",
            hop["version"].as_str().unwrap()
        ));
        let written: Json = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(written, installed, "{}", file.display());
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&state.join("upgrade.json")), 0o600);
    assert_eq!(
        agent_uid(&client).await,
        uid_before,
        "the agent DaemonSet was replaced"
    );
    let preflight = helm::Helm::locate(Some(&helm))
        .unwrap()
        .with_kubeconfig(&kubeconfig)
        .status("cilium-preflight", "kube-system")
        .unwrap();
    assert!(preflight.is_none(), "the preflight release was left behind");

    // The same plan again: the release moved, so it is refused.
    let (ok, _, stderr) = xtask(apply);
    assert!(!ok, "a stale plan was applied");
    assert!(stderr.contains("revision"), "{stderr}");

    // Back to where the path started.
    let mut rollback: Vec<OsString> = vec!["upgrade".into(), "rollback".into(), "--apply".into()];
    rollback.extend(common(&kubeconfig, &helm, &state));
    let (ok, stdout, stderr) = xtask(rollback);
    assert!(ok, "upgrade rollback failed:\n{stdout}\n{stderr}");
    let status = release_status(&helm, &kubeconfig).unwrap();
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision + 4, "cilium-1.15.9".to_owned())
    );
    assert_eq!(
        values_of(&helm, &kubeconfig, status.revision),
        values_of(&helm, &kubeconfig, start.revision)
    );
    assert_eq!(live_cilium_config(&client).await, config_before);
    assert_eq!(agent_uid(&client).await, uid_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_takes_the_cilium_cli_release_from_1_17_3_to_1_19_6_then_1_20_0_with_each_change_accepted_by_name()
 {
    let Some(upstream) = upstream(
        "upgrade::upgrade_takes_the_cilium_cli_release_from_1_17_3_to_1_19_6_then_1_20_0_with_each_change_accepted_by_name",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.28.1");
    let chart = upstream.chart("1.17.3").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let testbed = cilium_cli_era_testbed(
        &tmp.path().join("testbed"),
        &chart,
        &tests::cilium_cli_values(&case),
    )
    .await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let helm = tools.helm.clone();
    let start = release_status(&helm, &kubeconfig).unwrap();
    let uid_before = agent_uid(&client).await;
    let state = tmp.path().join("upgrade-state");
    let base = |to: &str| {
        let mut args: Vec<OsString> = vec!["upgrade".into(), "--to".into(), to.into()];
        args.extend(["--charts".into(), upstream.charts_dir().into()]);
        args.extend(common(&kubeconfig, &helm, &state));
        args
    };

    // A minor the gate has no agent defaults for is refused with the reason, nothing changed.
    let (ok, _, stderr) = xtask(base("1.21"));
    assert!(!ok);
    assert!(
        stderr.contains("1.21") && stderr.contains("not supported"),
        "{stderr}"
    );

    let mut plan_args = base("1.19.6");
    plan_args.extend(["--output".into(), "json".into()]);
    let (ok, stdout, stderr) = xtask(plan_args);
    assert!(ok, "upgrade plan failed: {stderr}");
    let plan: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(hop_versions(&plan), ["1.17.18", "1.18.12", "1.19.6"]);
    // Each change by name, the 1.19 ones for that hop only.
    let mut apply = base("1.19.6");
    for hop in plan["hops"].as_array().unwrap() {
        for change in hop["changes"].as_array().unwrap() {
            let key = change["key"].as_str().unwrap();
            let accept = if hop["version"] == "1.19.6" {
                format!("1.19.6={key}")
            } else {
                key.to_owned()
            };
            apply.extend(["--accept".into(), accept.into()]);
        }
    }
    apply.extend(["--apply".into(), "--verify-timeout".into(), "5m".into()]);

    // The 1.18 hop's `helm upgrade` fails (a helm wrapper refuses it): the run stops after the
    // verified 1.17.18 hop, and the next run resumes at 1.18.12 without redoing it.
    let wrapper = tmp.path().join("helm-refusing-1.18");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1\" = upgrade ] && [ \"$3\" = cilium ]; then\n  case \"$*\" in *cilium-1.18.12.tgz*)\n    echo 'Error: UPGRADE FAILED: injected by the test' >&2\n    exit 1;;\n  esac\nfi\nexec '{}' \"$@\"\n",
            helm.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let with_wrapper: Vec<OsString> = apply
        .iter()
        .map(|a| {
            if a == helm.as_os_str() {
                wrapper.clone().into()
            } else {
                a.clone()
            }
        })
        .collect();
    let (ok, _, stderr) = xtask(with_wrapper);
    assert!(!ok, "the injected helm failure did not stop the run");
    assert!(stderr.contains("injected by the test"), "{stderr}");
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision + 1, "cilium-1.17.18".to_owned())
    );
    let (ok, stdout, stderr) = xtask(apply);
    assert!(ok, "upgrade --apply failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");

    let after_start: Vec<(u32, String)> = history(&helm, &kubeconfig)
        .into_iter()
        .filter(|(r, _)| *r > start.revision)
        .collect();
    assert_eq!(
        after_start,
        [
            (start.revision + 1, "cilium-1.17.18".to_owned()),
            (start.revision + 2, "cilium-1.18.12".to_owned()),
            (start.revision + 3, "cilium-1.19.6".to_owned()),
        ]
    );
    assert_eq!(
        agent_uid(&client).await,
        uid_before,
        "the agent DaemonSet was replaced"
    );
    let values = values_of(&helm, &kubeconfig, start.revision + 3);
    assert_eq!(values["upgradeCompatibility"], "1.17");
    assert_eq!(
        values["envoy"]["enabled"], true,
        "Envoy ran as its DaemonSet: kept"
    );

    // On to 1.20.0, the newest minor: one hop, each change accepted by name.
    let mut plan_args = base("1.20");
    plan_args.extend(["--output".into(), "json".into()]);
    let (ok, stdout, stderr) = xtask(plan_args);
    assert!(ok, "upgrade plan to 1.20 failed: {stderr}");
    let plan: Json = serde_json::from_str(&stdout).unwrap();
    assert_eq!(hop_versions(&plan), ["1.20.0"]);
    let mut apply = base("1.20");
    for change in plan["hops"][0]["changes"].as_array().unwrap() {
        apply.extend(["--accept".into(), change["key"].as_str().unwrap().into()]);
    }
    apply.extend(["--apply".into(), "--verify-timeout".into(), "5m".into()]);
    let (ok, stdout, stderr) = xtask(apply);
    assert!(ok, "upgrade --apply to 1.20 failed:\n{stdout}\n{stderr}");
    assert_eq!(
        history(&helm, &kubeconfig).last().unwrap(),
        &(start.revision + 4, "cilium-1.20.0".to_owned())
    );
    assert_eq!(
        agent_uid(&client).await,
        uid_before,
        "the agent DaemonSet was replaced on the 1.20 hop"
    );
    // upgradeCompatibility 1.17 keeps the xDS server the agents ran (the 1.20 chart's default
    // for a new install is `ads`).
    let config: k8s_openapi::api::core::v1::ConfigMap =
        Api::namespaced(client.clone(), "kube-system")
            .get("cilium-config")
            .await
            .unwrap();
    let data = config.data.unwrap_or_default();
    assert_eq!(
        data.get("envoy-access-log-enabled").map(String::as_str),
        Some("true")
    );
    assert!(!data.contains_key("envoy-xds-mode"), "{data:?}");
}
