//! End-to-end: helm acts on the cluster a run identified, whatever the kubeconfig or the
//! environment says later. The kubeconfig has a second context, `elsewhere`, whose API server
//! refuses every connection: a helm that followed it would fail.
//!
//! - `helm_stays_on_the_identified_cluster`: as `helm-install` starts, "another terminal"
//!   switches the kubeconfig's current context to `elsewhere`, and the chart archive the run was
//!   given is overwritten; the hand-over still installs the chart the gate rendered on the
//!   testbed. Then `gateway-api check`, run with `HELM_KUBECONTEXT=elsewhere` in its
//!   environment, still reads the release through helm.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::path::{Path, PathBuf};

use kube::config::{Kubeconfig, NamedCluster, NamedContext};
use migrate_common::{
    Recorder, inventory_copy, migrate_options, release_status, template_era_testbed, upstream,
};
use migration::flow::{self, Outcome};

/// The context of the testbed in the test's kubeconfig.
const HERE: &str = "testbed";
/// A context whose API server refuses connections (port 1 on loopback).
const ELSEWHERE: &str = "elsewhere";

/// A kubeconfig at `into/kubeconfig` with the testbed's cluster as context [`HERE`] (current)
/// and a second context [`ELSEWHERE`] with the same user and an API server that is not there.
fn two_contexts(testbed: &Path, into: &Path) -> PathBuf {
    let mut config = Kubeconfig::read_from(testbed).unwrap();
    let context = config
        .contexts
        .iter()
        .find(|c| Some(&c.name) == config.current_context.as_ref())
        .cloned()
        .unwrap();
    let inner = context.context.clone().unwrap();
    let mut cluster: NamedCluster = config
        .clusters
        .iter()
        .find(|c| c.name == inner.cluster)
        .cloned()
        .unwrap();
    cluster.name = ELSEWHERE.into();
    if let Some(c) = cluster.cluster.as_mut() {
        c.server = Some("https://127.0.0.1:1".into());
    }
    let mut elsewhere_inner = inner.clone();
    elsewhere_inner.cluster = ELSEWHERE.into();
    config.clusters.push(cluster);
    let mut here = context.clone();
    here.name = HERE.into();
    let mut elsewhere: NamedContext = context;
    elsewhere.name = ELSEWHERE.into();
    elsewhere.context = Some(elsewhere_inner);
    config.contexts = vec![here, elsewhere];
    config.current_context = Some(HERE.into());
    let path = into.join("kubeconfig");
    write(&path, &config);
    path
}

fn write(path: &Path, config: &Kubeconfig) {
    std::fs::write(path, serde_json::to_string_pretty(config).unwrap()).unwrap();
}

/// What `kubectl config use-context NAME` does to the file.
fn use_context(path: &Path, name: &str) {
    let mut config = Kubeconfig::read_from(path).unwrap();
    config.current_context = Some(name.into());
    write(path, &config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_stays_on_the_identified_cluster() {
    let Some(upstream) = upstream("cluster_pin::helm_stays_on_the_identified_cluster") else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the released archive: the test overwrites it mid-run.
    let chart = tmp.path().join("cilium.tgz");
    std::fs::copy(tests::cilium_chart(&upstream), &chart).unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let tools = testbed.tools();
    let kubeconfig = two_contexts(testbed.kubeconfig(), tmp.path());
    let inventory = inventory_copy(&case, tmp.path());
    let mut migrate = migrate_options(
        &testbed,
        &inventory,
        &tmp.path().join("bundle"),
        &tools.helm3,
        tmp.path(),
        &chart,
    );
    migrate.kubeconfig = Some(kubeconfig.clone());

    // 1. Another terminal switches the kubeconfig, and the chart file changes, as the install
    //    starts.
    let (switched, swapped) = (kubeconfig.clone(), chart.clone());
    let mut progress = Recorder {
        on_start: Some(Box::new(move |name| {
            if name == "helm-install" {
                use_context(&switched, ELSEWHERE);
                std::fs::write(&swapped, b"not the chart the gate rendered").unwrap();
            }
        })),
        ..Recorder::default()
    };
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");
    assert_eq!(
        Kubeconfig::read_from(&kubeconfig)
            .unwrap()
            .current_context
            .as_deref(),
        Some(ELSEWHERE),
        "the switch happened"
    );
    let status = release_status(&tools.helm3, testbed.kubeconfig()).unwrap();
    assert_eq!(status.info.status, helm::ReleaseStatus::Deployed);

    // 2. HELM_KUBECONTEXT (and a KUBECONFIG) in the environment of a later command.
    use_context(&kubeconfig, HERE);
    let output = std::process::Command::new(tests::xtask_binary())
        .args(["gateway-api", "check", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--helm")
        .arg(&tools.helm3)
        .env("HELM_KUBECONTEXT", ELSEWHERE)
        .env("KUBECONFIG", tmp.path().join("no-such-kubeconfig"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // The report needs the release's chart version, which only helm reads: it is printed only
    // when helm reached the testbed (the check itself may find Gateway API not ready).
    assert!(
        stdout.contains(tests::HANDOVER_CHART_VERSION)
            && !stderr.contains("127.0.0.1:1")
            && !stderr.contains(ELSEWHERE),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
