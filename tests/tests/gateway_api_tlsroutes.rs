//! End-to-end: Cilium 1.20 on a cluster whose TLSRoutes come from before 1.20, with the released
//! Gateway API CRDs (`../shared/gateway-api-crds/`, real schemas) on a real API server and the
//! released 1.20.0 chart through the real `helm`.
//!
//! Cilium 1.20's installation guide: the v1.6 standard TLSRoute does not serve `v1alpha2`, so
//! TLSRoutes written at `v1alpha2` become unreadable; such clusters install the experimental
//! TLSRoute. `gateway-api check` must say so, `enable` must refuse the standard TLSRoute alone
//! (nothing changed) and, given both files, apply the experimental one.
//!
//! What this cannot prove: nothing runs the Cilium operator on the testbed, so GatewayClass
//! `cilium` is not waited for ([`AcceptWait::Skip`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cilium_gateway::{AcceptWait, EnableOptions, Error, Status, Target};
use helm::{ChartSource, Helm, OnFailure, Ownership, UpgradeInstall, Wait};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use serde_json::json;
use testbed::Tools;

const NAMESPACE: &str = "kube-system";
const RELEASE: &str = "cilium";
const TIMEOUT: Duration = Duration::from_secs(180);
const TLSROUTES: &str = "tlsroutes.gateway.networking.k8s.io";

fn kubectl(tools: &Tools, kubeconfig: &Path, args: &[&str]) -> String {
    tests::kubectl(&tools.kubectl, kubeconfig, args)
}

/// The TLSRoute CRD's channel annotation, served versions and stored versions.
async fn tlsroute_crd(client: &kube::Client) -> (String, Vec<String>, Vec<String>) {
    let crd = Api::<CustomResourceDefinition>::all(client.clone())
        .get(TLSROUTES)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let channel = crd
        .metadata
        .annotations
        .unwrap_or_default()
        .get("gateway.networking.k8s.io/channel")
        .cloned()
        .unwrap_or_default();
    let served = crd
        .spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| v.name.clone())
        .collect();
    let stored = crd
        .status
        .and_then(|s| s.stored_versions)
        .unwrap_or_default();
    (channel, served, stored)
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_on_1_20_keeps_v1alpha2_tlsroutes_on_the_experimental_crd() {
    let Some(upstream) = upstream::Upstream::for_test(
        "gateway_api_tlsroutes::enable_on_1_20_keeps_v1alpha2_tlsroutes_on_the_experimental_crd",
    ) else {
        return;
    };
    let crds =
        |release: &str, file: &str| -> PathBuf { upstream.gateway_api_crds(release).join(file) };
    let chart = upstream.chart("1.20.0").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let testbed = tests::start_own_testbed(&dir.path().join("testbed"), 2).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let client = testbed
        .client()
        .await
        .unwrap_or_else(|e| panic!("no client: {e}"));
    let helm = Helm::locate(Some(&tools.helm3))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_kubeconfig(&kubeconfig)
        .with_home(&dir.path().join("helm-home"));
    let kubectl = |args: &[&str]| kubectl(&tools, &kubeconfig, args);
    let apply = |path: &Path| {
        kubectl(&["apply", "--server-side", "-f", &path.display().to_string()]);
    };

    // History: TLSRoutes since the v1.0 experimental CRD (stored at v1alpha2), then what 1.19
    // ran with, v1.4.1 standard and its experimental TLSRoute.
    apply(&crds("v1.0.0", "experimental-tlsroutes.yaml"));
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        &format!("crd/{TLSROUTES}"),
    ]);
    let route = dir.path().join("tlsroute.yaml");
    std::fs::write(
        &route,
        "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata:\n  name: passthrough\n  namespace: default\nspec:\n  parentRefs:\n  - name: shared\n  hostnames:\n  - db.example.com\n  rules:\n  - backendRefs:\n    - name: db\n      port: 5432\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    apply(&route);
    apply(&crds("v1.4.1", "standard-install.yaml"));
    apply(&crds("v1.4.1", "experimental-tlsroutes.yaml"));
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/gatewayclasses.gateway.networking.k8s.io",
        &format!("crd/{TLSROUTES}"),
    ]);

    let chart_source = ChartSource::from_path(&chart).unwrap_or_else(|e| panic!("{e}"));
    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        serde_saphyr::to_string(&json!({
            "kubeProxyReplacement": true,
            "k8sServiceHost": "127.0.0.1",
            "k8sServicePort": 6443,
            "operator": { "replicas": 1 },
        }))
        .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let install = UpgradeInstall {
        values_files: vec![values],
        ownership: Ownership::Fresh {
            on_failure: OnFailure::Keep,
        },
        wait: Wait::Ready,
        timeout: TIMEOUT,
        ..UpgradeInstall::adopt(RELEASE, NAMESPACE, chart_source.clone())
    };
    helm.upgrade_install(&install)
        .unwrap_or_else(|e| panic!("installing the 1.20.0 release: {e}"));

    // collect reads what the API server stored at.
    let target = Target::kubespray();
    let state = cilium_gateway::collect(&client, Some(&helm), &target)
        .await
        .unwrap_or_else(|e| panic!("collect: {e}"));
    let live = state.crd("tlsroutes").cloned().unwrap_or_default();
    assert!(
        live.stored_versions.iter().any(|v| v == "v1alpha2"),
        "{live:?}"
    );
    // The lighter read an upgrade plan uses gives the same facts and the same requirement.
    let gateway_crds = cilium_gateway::collect::gateway_api_crds(&client)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gateway_crds, state.crds);
    let requirement = cilium_gateway::bundle::Requirement::for_cluster(20, &gateway_crds)
        .unwrap_or_else(|| panic!("1.20 has a requirement"));
    let tls = requirement
        .crds
        .iter()
        .find(|c| c.plural == "tlsroutes")
        .unwrap_or_else(|| panic!("{requirement:?}"));
    assert_eq!(
        (tls.channel, tls.keep_served.as_slice()),
        (
            cilium_gateway::bundle::Channel::Experimental,
            &["v1alpha2".to_owned(), "v1alpha3".to_owned()][..]
        )
    );
    let report = cilium_gateway::check(&state, None);
    let item = report
        .item(&format!("CRD {TLSROUTES}"))
        .unwrap_or_else(|| panic!("{}", report.table()));
    assert_eq!(item.status, Status::Fail, "{}", report.table());
    let fix = item.fix.clone().unwrap_or_default();
    assert!(
        fix.contains("v1.6.1/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml")
            && !fix.contains("standard-install.yaml"),
        "{fix}"
    );

    let enable_options = |crd_files: Vec<PathBuf>| EnableOptions {
        target: target.clone(),
        chart: chart_source.clone(),
        crd_files,
        journal: dir.path().join("state/gateway-api-journal.json"),
        helm_timeout: TIMEOUT,
        rollout_timeout: TIMEOUT,
        accept: AcceptWait::Skip,
        inventory: None,
        restart_agents: false,
    };
    let standard = crds("v1.6.1", "standard-install.yaml");
    let experimental = crds("v1.6.1", "experimental-tlsroutes.yaml");
    let before = tlsroute_crd(&client).await;

    // The standard install alone: refused, nothing changed.
    let mut lines = Vec::new();
    let mut progress = |line: &str| lines.push(line.to_owned());
    let refused = cilium_gateway::enable(
        &client,
        &helm,
        &enable_options(vec![standard.clone()]),
        &mut progress,
    )
    .await;
    match &refused {
        Err(Error::Refused { items }) => assert!(
            items
                .iter()
                .any(|i| i.starts_with(&format!("CRD {TLSROUTES}:")) && i.contains("v1alpha2")),
            "{items:#?}"
        ),
        other => panic!("the standard TLSRoute over v1alpha2 TLSRoutes must be refused: {other:?}"),
    }
    assert_eq!(tlsroute_crd(&client).await, before);
    let history = helm
        .history(RELEASE, NAMESPACE)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.len(), 1, "no new revision");

    // The command without --apply prints that plan: the standard TLSRoute left out, and
    // changes nothing.
    let output = std::process::Command::new(tests::xtask_binary())
        .args(["gateway-api", "enable", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--helm")
        .arg(&tools.helm3)
        .arg("--chart")
        .arg(&chart)
        .arg("--install-crds")
        .arg(&standard)
        .arg(&experimental)
        .output()
        .unwrap_or_else(|e| panic!("cargo xtask: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "not applied: {TLSROUTES} (v1.6.1 standard): left out"
        )),
        "{stdout}"
    );
    assert_eq!(tlsroute_crd(&client).await, before);

    // Both files: the experimental TLSRoute is applied, the standard one left out.
    let mut lines = Vec::new();
    let mut progress = |line: &str| lines.push(line.to_owned());
    let enabled = cilium_gateway::enable(
        &client,
        &helm,
        &enable_options(vec![standard, experimental]),
        &mut progress,
    )
    .await
    .unwrap_or_else(|e| panic!("enable failed: {e}\nprogress: {lines:#?}"));
    assert_eq!(
        (enabled.previous_revision, enabled.enabled_revision),
        (1, 2)
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{TLSROUTES} (v1.6.1 standard): left out"))),
        "{lines:#?}"
    );
    let (channel, served, stored) = tlsroute_crd(&client).await;
    assert_eq!(channel, "experimental");
    assert_eq!(served, ["v1", "v1alpha2", "v1alpha3"]);
    assert!(stored.iter().any(|v| v == "v1alpha2"), "{stored:?}");
    // The TLSRoute written before is still readable at v1alpha2 and at v1, which 1.20 reads.
    for version in ["v1alpha2", "v1"] {
        let name = kubectl(&[
            "get",
            &format!("tlsroutes.{version}.gateway.networking.k8s.io"),
            "passthrough",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.hostnames[0]}",
        ]);
        assert_eq!(name, "db.example.com", "{version}");
    }
    let after = cilium_gateway::collect(&client, Some(&helm), &target)
        .await
        .unwrap_or_else(|e| panic!("collect: {e}"));
    let report = cilium_gateway::check(&after, None);
    let crd_statuses: Vec<(&str, Status)> = report
        .items
        .iter()
        .filter(|i| i.name.starts_with("CRD "))
        .map(|i| (i.name.as_str(), i.status))
        .collect();
    assert!(
        crd_statuses.iter().all(|(_, s)| *s == Status::Pass),
        "{}",
        report.table()
    );
    assert_eq!(
        report.item("gatewayAPI.enabled").map(|i| i.status),
        Some(Status::Warn),
        "on, nobody accepts GatewayClass cilium on the testbed: {}",
        report.table()
    );
}
