//! End-to-end: `gateway-api check` and `enable` against a real API server and the real `helm`.
//!
//! Each test owns `kube-system` and cluster-scoped objects (the Gateway API CRDs), so it starts a
//! testbed of its own. The cluster is the one a hand-over leaves: a release of the released
//! Cilium 1.15.9 chart (so the v1.0.0 bundle with the experimental GRPCRoute and TLSRoute
//! applies) with the values `cargo xtask values` writes for Kubespray v2.27.1's sample, plus the
//! test's own values.
//! The CRDs are the minimal ones of `cilium_gateway::bundle` (upstream names, scopes and served
//! versions, no schema).
//!
//! What this cannot prove: nothing runs the Cilium operator on the testbed, so the test plays it
//! (it marks GatewayClass `cilium` Accepted), or leaves it unaccepted to force the failure.
//! Whether Envoy then serves a Gateway needs a real cluster.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cilium_gateway::bundle::{BundleVersion, Channel, minimal_bundle};
use cilium_gateway::{AcceptWait, EnableOptions, Error, Journal, Outcome, Status, Target};
use helm::{ChartSource, Helm, OnFailure, Ownership, UpgradeInstall, ValuesScope, Wait};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use testbed::fixtures::{self, FixtureOptions};
use testbed::{Testbed, Tools};

const NAMESPACE: &str = "kube-system";
const RELEASE: &str = "cilium";
/// Rollouts on fake nodes take seconds; this bounds a stuck one.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The six CRDs Cilium 1.15 needs.
const CRDS_1_15: [&str; 6] = [
    "CRD gatewayclasses.gateway.networking.k8s.io",
    "CRD gateways.gateway.networking.k8s.io",
    "CRD httproutes.gateway.networking.k8s.io",
    "CRD referencegrants.gateway.networking.k8s.io",
    "CRD grpcroutes.gateway.networking.k8s.io",
    "CRD tlsroutes.gateway.networking.k8s.io",
];

struct Cluster {
    testbed: Testbed,
    chart: PathBuf,
    client: kube::Client,
    helm: Helm,
    tools: Tools,
    dir: tempfile::TempDir,
}

/// A testbed with a release of the released 1.15.9 chart installed by `helm` with the hand-over's
/// values for Kubespray v2.27.1's sample and `extra` values on top, and the Cilium CRDs and custom
/// resources (an LB pool and an L2 announcement policy among them). `None`: the upstream
/// artefacts are missing (a recorded skip).
async fn cluster(test: &str, helm_of: fn(&Tools) -> PathBuf, extra: Value) -> Option<Cluster> {
    let upstream = upstream::Upstream::for_test(test)?;
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = upstream.chart("1.15.9").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let testbed = tests::start_own_testbed(&dir.path().join("testbed"), 2).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let client = testbed
        .client()
        .await
        .unwrap_or_else(|e| panic!("no client: {e}"));
    let helm = Helm::locate(Some(&helm_of(&tools)))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_kubeconfig(&kubeconfig)
        .with_home(&dir.path().join("helm-home"));

    let fixture = FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    };
    let handover_values = tests::xtask_values(&case, "1.15.9", dir.path());
    let extra_values = dir.path().join("test-values.yaml");
    std::fs::write(
        &extra_values,
        serde_saphyr::to_string(&extra).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let source = ChartSource::from_path(&chart).unwrap_or_else(|e| panic!("{e}"));
    let install = UpgradeInstall {
        values_files: vec![handover_values, extra_values],
        ownership: Ownership::Fresh {
            on_failure: OnFailure::Keep,
        },
        wait: Wait::Ready,
        timeout: TIMEOUT,
        ..UpgradeInstall::adopt(RELEASE, NAMESPACE, source)
    };
    let installed = helm
        .upgrade_install(&install)
        .unwrap_or_else(|e| panic!("installing the release: {e}"));
    assert_eq!(installed.revision, 1);
    let custom = fixtures::cilium_custom_resources(&fixture).unwrap_or_else(|e| panic!("{e}"));
    fixtures::apply(&tools.kubectl, &kubeconfig, &custom)
        .unwrap_or_else(|e| panic!("seeding the custom resources: {e}"));
    Some(Cluster {
        testbed,
        chart,
        client,
        helm,
        tools,
        dir,
    })
}

impl Cluster {
    fn target(&self) -> Target {
        Target::kubespray()
    }

    async fn check(&self) -> cilium_gateway::Report {
        let state = cilium_gateway::collect(&self.client, Some(&self.helm), &self.target())
            .await
            .unwrap_or_else(|e| panic!("collect: {e}"));
        cilium_gateway::check(&state, None)
    }

    /// Writes the v1.0.0 experimental bundle (minimal CRDs) and returns the file.
    fn bundle_file(&self) -> PathBuf {
        let mut text = String::new();
        for crd in minimal_bundle(&BundleVersion::new(1, 0, 0), Channel::Experimental) {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(&crd).unwrap_or_else(|e| panic!("{e}")));
        }
        let path = self.dir.path().join("experimental-install.yaml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn kubectl(&self, args: &[&str]) -> String {
        tests::kubectl(&self.tools.kubectl, self.testbed.kubeconfig(), args)
    }

    fn history(&self) -> Vec<(u32, String, String)> {
        self.helm
            .history(RELEASE, NAMESPACE)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| (r.revision, r.status.to_string(), r.description))
            .collect()
    }

    async fn config(&self) -> std::collections::BTreeMap<String, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), NAMESPACE);
        api.get("cilium-config")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .data
            .unwrap_or_default()
    }

    fn options(&self, crd_files: Vec<PathBuf>, accept: AcceptWait) -> EnableOptions {
        EnableOptions {
            target: self.target(),
            chart: ChartSource::from_path(&self.chart).unwrap_or_else(|e| panic!("{e}")),
            crd_files,
            journal: self.dir.path().join("state/gateway-api-journal.json"),
            helm_timeout: TIMEOUT,
            rollout_timeout: TIMEOUT,
            accept,
            inventory: None,
            restart_agents: true,
        }
    }

    fn gateway_classes(&self) -> Api<DynamicObject> {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "GatewayClass"),
            "gatewayclasses",
        );
        Api::all_with(self.client.clone(), &resource)
    }
}

/// The `kubectl.kubernetes.io/restartedAt` annotation of DaemonSet kube-system/cilium's template.
async fn agents_restarted_at(client: &kube::Client) -> Option<String> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    api.get("cilium")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned())
}

fn failing(report: &cilium_gateway::Report) -> Vec<&str> {
    report.failures().map(|i| i.name.as_str()).collect()
}

/// Plays the Cilium operator's part: once GatewayClass `cilium` exists, marks it Accepted.
async fn stand_in_operator(classes: Api<DynamicObject>) {
    let condition = |now: String| {
        json!({ "status": { "conditions": [{
            "type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "accepted by the test's stand-in operator",
            "lastTransitionTime": now, "observedGeneration": 1
        }] } })
    };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = classes.get_opt("cilium").await {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patched = classes
                .patch_status(
                    "cilium",
                    &PatchParams::default(),
                    &Patch::Merge(condition(now)),
                )
                .await;
            if patched.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Check fails with exactly the missing CRDs on a fresh cluster and passes once the bundle is
/// applied; `enable --apply` (Helm 3) flips the value through Helm in a new revision, restarts
/// the operator because the CRDs came after it, waits for GatewayClass `cilium`, and journals.
#[tokio::test(flavor = "multi_thread")]
async fn check_then_enable_with_helm3() {
    let Some(cluster) = cluster(
        "gateway_api::check_then_enable_with_helm3",
        |t| t.helm3.clone(),
        json!({ "kubeProxyReplacement": "true", "l2announcements": { "enabled": true } }),
    )
    .await
    else {
        return;
    };

    let fresh = cluster.check().await;
    assert_eq!(failing(&fresh), CRDS_1_15, "{}", fresh.table());
    for crd in CRDS_1_15 {
        let fix = fresh
            .item(crd)
            .and_then(|i| i.fix.clone())
            .unwrap_or_default();
        assert!(
            fix.contains("releases/download/v1.0.0/experimental-install.yaml"),
            "{crd}: {fix}"
        );
    }
    assert_eq!(
        fresh.item("load-balancer provider").map(|i| i.status),
        Some(Status::Pass),
        "{}",
        fresh.table()
    );

    // The operator applies the bundle check names, the way the fix says.
    let bundle = cluster.bundle_file();
    cluster.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &bundle.display().to_string(),
    ]);
    cluster.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/gatewayclasses.gateway.networking.k8s.io",
        "crd/tlsroutes.gateway.networking.k8s.io",
    ]);
    let ready = cluster.check().await;
    assert!(!ready.failed(), "{}", ready.table());
    assert_eq!(
        ready.item("operator start").map(|i| i.status),
        Some(Status::Warn),
        "the CRDs came after the operator started: {}",
        ready.table()
    );

    let accepted = tokio::spawn(stand_in_operator(cluster.gateway_classes()));
    let options = cluster.options(Vec::new(), AcceptWait::Within(TIMEOUT));
    let mut lines = Vec::new();
    let mut progress = |line: &str| lines.push(line.to_owned());
    let enabled = cilium_gateway::enable(&cluster.client, &cluster.helm, &options, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("enable failed: {e}\nprogress: {lines:#?}"));
    accepted.await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(
        (enabled.previous_revision, enabled.enabled_revision),
        (1, 2)
    );
    assert!(
        enabled
            .operator_restart
            .as_deref()
            .is_some_and(|r| r.contains("CRDs appeared after it started")),
        "{:?}",
        enabled.operator_restart
    );
    let history: Vec<(u32, String)> = cluster
        .history()
        .into_iter()
        .map(|(r, s, _)| (r, s))
        .collect();
    assert_eq!(
        history,
        [(1, "superseded".to_owned()), (2, "deployed".to_owned())]
    );
    let values = cluster
        .helm
        .get_values(RELEASE, NAMESPACE, ValuesScope::User, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values["gatewayAPI"]["enabled"], true);
    assert_eq!(
        values["kubeProxyReplacement"], "true",
        "the release's values stay"
    );
    let config = cluster.config().await;
    assert_eq!(
        config.get("enable-gateway-api").map(String::as_str),
        Some("true")
    );

    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let operator = deployments
        .get("cilium-operator")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let annotations = operator
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        annotations.contains_key("kubectl.kubernetes.io/restartedAt"),
        "{annotations:?}"
    );
    assert_eq!(
        enabled.report.item("operator start").map(|i| i.status),
        Some(Status::Pass),
        "the restarted operator started after the CRDs: {}",
        enabled.report.table()
    );
    assert_eq!(
        enabled.report.item("gatewayAPI.enabled").map(|i| i.status),
        Some(Status::Pass),
        "{}",
        enabled.report.table()
    );

    let journal = Journal::load(&options.journal)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no journal"));
    assert_eq!(journal.outcome, Outcome::Enabled);
    assert_eq!(
        (journal.previous_revision, journal.enabled_revision),
        (1, Some(2))
    );
    assert_private(&journal.values_file);
    assert_private(&options.journal);

    // A second run changes nothing.
    let mut ignore = |_: &str| {};
    let again = cilium_gateway::enable(&cluster.client, &cluster.helm, &options, &mut ignore)
        .await
        .unwrap_or_else(|e| panic!("second enable: {e}"));
    assert_eq!((again.previous_revision, again.enabled_revision), (2, 2));
    assert_eq!(cluster.history().len(), 2);

    assert!(enabled.agents_restarted);
    let agents_before = agents_restarted_at(&cluster.client).await;
    assert!(agents_before.is_some(), "the agents were restarted");
    assert!(journal.agents_restarted);

    // Later, the operator changes their mind: `gateway-api rollback` reads the journal.
    let restarted_before = annotations
        .get("kubectl.kubernetes.io/restartedAt")
        .cloned();
    let to = cilium_gateway::enable::roll_back_from_journal(
        &cluster.client,
        &cluster.helm,
        &options.journal,
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("rollback: {e}"));
    assert_eq!(to, 1);
    let history = cluster.history();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history[2].2.contains("Rollback to 1"), "{history:?}");
    let config = cluster.config().await;
    assert_eq!(config.get("enable-gateway-api"), None);
    let operator = deployments
        .get("cilium-operator")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let restarted_after = operator
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("kubectl.kubernetes.io/restartedAt").cloned());
    assert!(
        restarted_after.is_some(),
        "the operator restarts after the rollback"
    );
    assert_ne!(restarted_after, restarted_before, "a second restart");
    let agents_after = agents_restarted_at(&cluster.client).await;
    assert!(
        agents_after.is_some() && agents_after != agents_before,
        "the agents restart after the rollback too"
    );
    let journal = Journal::load(&options.journal)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no journal"));
    assert!(
        matches!(journal.outcome, Outcome::RolledBack { to: 1, .. }),
        "{:?}",
        journal.outcome
    );

    convert_reads_the_cluster(&cluster).await;
    cluster.testbed.down().unwrap_or_else(|e| panic!("{e}"));
}

/// `convert` reads Ingresses and Services through the API (a named port is resolved from the
/// Service), and the API server serves and stores what it prints.
async fn convert_reads_the_cluster(cluster: &Cluster) {
    let manifest = cluster.dir.path().join("ingress.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: v1
kind: Service
metadata: { name: shop, namespace: demo }
spec:
  ports: [{ name: web, port: 8080, targetPort: 8080 }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: demo
  annotations: { nginx.ingress.kubernetes.io/proxy-read-timeout: "120" }
spec:
  ingressClassName: nginx
  rules:
    - host: shop.example.com
      http:
        paths:
          - { path: /, pathType: Prefix, backend: { service: { name: shop, port: { name: web } } } }
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    cluster.kubectl(&["apply", "-f", &manifest.display().to_string()]);
    let (ingresses, services) =
        cilium_gateway::convert::read_ingresses(&cluster.client, Some("demo"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    let conversion = cilium_gateway::convert::convert(
        &ingresses,
        &services,
        &cilium_gateway::convert::ConvertOptions::default(),
    );
    let warned: Vec<Option<&str>> = conversion
        .warnings
        .iter()
        .map(|w| w.annotation.as_deref())
        .collect();
    assert_eq!(
        warned,
        [Some("nginx.ingress.kubernetes.io/proxy-read-timeout")]
    );
    let route = conversion
        .objects
        .iter()
        .find(|o| o["kind"] == "HTTPRoute")
        .unwrap_or_else(|| panic!("no HTTPRoute: {:?}", conversion.objects));
    assert_eq!(
        route.pointer("/spec/rules/0/backendRefs/0"),
        Some(&json!({ "name": "shop", "port": 8080 }))
    );
    let output = cluster.dir.path().join("gateway.yaml");
    std::fs::write(
        &output,
        conversion.to_yaml().unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let applied = cluster.kubectl(&["apply", "-f", &output.display().to_string()]);
    assert!(
        applied.contains("gateway.gateway.networking.k8s.io/cilium created")
            && applied
                .contains("httproute.gateway.networking.k8s.io/shop-shop-example-com created"),
        "{applied}"
    );
}

fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{}", path.display());
}

/// `enable --apply --install-crds` (Helm 4) on a cluster without kube-proxy replacement: the CRDs
/// are applied, NodePort and Gateway API are switched on in revision 2, nothing accepts the
/// GatewayClass, so it rolls back to revision 1: values, cilium-config and the GatewayClass are
/// back as before, and the journal says so. An unfinished journal blocks a new run.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_failure_rolls_back_with_helm4() {
    let Some(cluster) = cluster(
        "gateway_api::a_forced_failure_rolls_back_with_helm4",
        |t| t.helm4.clone(),
        json!({ "kubeProxyReplacement": "false" }),
    )
    .await
    else {
        return;
    };
    let fresh = cluster.check().await;
    let mut expected: Vec<&str> = CRDS_1_15.to_vec();
    expected.push("kube-proxy replacement / NodePort");
    assert_eq!(failing(&fresh), expected, "{}", fresh.table());

    let bundle = cluster.bundle_file();
    let options = cluster.options(vec![bundle], AcceptWait::Within(Duration::from_secs(5)));

    // An interrupted earlier run: refused, nothing changed.
    let interrupted = Journal {
        release: RELEASE.to_owned(),
        namespace: NAMESPACE.to_owned(),
        previous_revision: 1,
        enabled_revision: None,
        crds_applied: Vec::new(),
        values_file: cilium_gateway::enable::values_file_for(&options.journal),
        operator_restart: None,
        agents_restarted: false,
        outcome: Outcome::InProgress,
        events: Vec::new(),
    };
    interrupted
        .save(&options.journal)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut ignore = |_: &str| {};
    let refused =
        cilium_gateway::enable(&cluster.client, &cluster.helm, &options, &mut ignore).await;
    assert!(
        matches!(
            refused,
            Err(Error::Interrupted {
                previous_revision: 1,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(cluster.history().len(), 1);
    std::fs::remove_file(&options.journal).unwrap_or_else(|e| panic!("{e}"));

    let mut lines = Vec::new();
    let mut progress = |line: &str| lines.push(line.to_owned());
    let failed =
        cilium_gateway::enable(&cluster.client, &cluster.helm, &options, &mut progress).await;
    match &failed {
        Err(Error::EnableFailed {
            reason,
            rolled_back_to: Some(1),
            ..
        }) => assert!(reason.contains("not Accepted"), "{reason}"),
        other => panic!("expected a rollback to revision 1, got {other:?}\nprogress: {lines:#?}"),
    }

    let history = cluster.history();
    let statuses: Vec<(u32, &str)> = history.iter().map(|(r, s, _)| (*r, s.as_str())).collect();
    assert_eq!(
        statuses,
        [(1, "superseded"), (2, "superseded"), (3, "deployed")]
    );
    assert!(history[2].2.contains("Rollback to 1"), "{history:?}");

    let values = cluster
        .helm
        .get_values(RELEASE, NAMESPACE, ValuesScope::User, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(values.get("gatewayAPI"), None, "{values}");
    assert_eq!(values.pointer("/nodePort/enabled"), None, "{values}");
    let upgraded = cluster
        .helm
        .get_values(RELEASE, NAMESPACE, ValuesScope::User, Some(2))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(upgraded["gatewayAPI"]["enabled"], true);
    assert_eq!(upgraded["nodePort"]["enabled"], true);

    let config = cluster.config().await;
    assert_eq!(config.get("enable-gateway-api"), None);
    assert_eq!(
        config.get("enable-node-port").map(String::as_str),
        Some("false")
    );
    let class = cluster
        .gateway_classes()
        .get_opt("cilium")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        class.is_none(),
        "the rollback removes the chart's GatewayClass"
    );
    assert_eq!(
        agents_restarted_at(&cluster.client).await,
        None,
        "a failure before the acceptance never restarts the agents"
    );

    let journal = Journal::load(&options.journal)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no journal"));
    assert!(
        matches!(&journal.outcome, Outcome::RolledBack { to: 1, reason } if reason.contains("not Accepted")),
        "{:?}",
        journal.outcome
    );
    assert_eq!(journal.enabled_revision, Some(2));
    assert_eq!(journal.crds_applied.len(), 6);

    // The CRDs stay (Helm never owned them): check now only misses NodePort.
    let after = cluster.check().await;
    assert_eq!(
        failing(&after),
        ["kube-proxy replacement / NodePort"],
        "{}",
        after.table()
    );

    cluster.testbed.down().unwrap_or_else(|e| panic!("{e}"));
}
