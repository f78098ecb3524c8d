//! End-to-end: the `helm` crate's driver against a real API server, with Helm 3 and Helm 4.
//!
//! Objects are first written the way Kubespray writes them (`kubectl apply`, field manager
//! `kubectl-client-side-apply`), then: the ownership error typed from a real failure, adoption
//! with take-ownership (the DaemonSet keeps its UID), upgrade, history, get values, rollback,
//! and uninstall with a kept object. Each major works in its own namespace.
//!
//! Under `cargo xtask e2e` (which exports `TESTBED_STATE_DIR` and `KUBECONFIG`) the shared
//! testbed is used; otherwise each test starts a testbed of its own in a temporary directory.

#[path = "../../crates/helm/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use helm::{
    ApplyMethod, ChartSource, Helm, HelmError, HelmFailure, MetadataField, OnFailure, Ownership,
    ReleaseStatus, RollbackRequest, UninstallRequest, UpgradeInstall, ValuesScope, Wait,
};
use serde_json::{Value, json};
use support::{tools_dir, write_tiny_chart};

const RELEASE: &str = "cilium";
/// Rollouts on fake nodes take seconds; this bounds a stuck one.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The cluster a test talks to: the shared testbed, or one of its own (stopped on drop).
struct Cluster {
    kubeconfig: PathBuf,
    _own: Option<(testbed::Testbed, tokio::runtime::Runtime, tempfile::TempDir)>,
}

fn cluster() -> Cluster {
    if let Ok(shared) = tests::SharedCluster::from_env() {
        return Cluster {
            kubeconfig: shared.kubeconfig,
            _own: None,
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"));
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let options = testbed::Options {
        nodes: 2,
        state_dir: state.path().join("testbed"),
        tools: testbed::Tools::default(),
        ..testbed::Options::default()
    };
    let testbed = runtime
        .block_on(testbed::Testbed::up(&options))
        .unwrap_or_else(|e| panic!("the testbed does not start: {e}"));
    Cluster {
        kubeconfig: testbed.kubeconfig().to_owned(),
        _own: Some((testbed, runtime, state)),
    }
}

struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run kubectl: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    fn must(&self, args: &[&str]) -> String {
        self.run(args)
            .unwrap_or_else(|e| panic!("kubectl {args:?} failed: {e}"))
    }

    /// The object as JSON, or `None` when it does not exist.
    fn get(&self, namespace: &str, kind: &str, name: &str) -> Option<Value> {
        match self.run(&["get", kind, name, "-n", namespace, "-o", "json"]) {
            Ok(text) => Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"))),
            Err(e) if e.contains("NotFound") => None,
            Err(e) => panic!("kubectl get {kind} {name} failed: {e}"),
        }
    }
}

/// What Kubespray's template era leaves: the same objects, applied client-side, without Helm's
/// metadata, with values that differ from the chart's (image tag, a Kubespray-only key).
fn kubespray_objects(namespace: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: cilium-config
  namespace: {namespace}
data:
  cluster-name: default
  kube-proxy-replacement: "false"
  debug: "true"
  kubespray-only: "yes"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: cilium
  namespace: {namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cilium-{namespace}
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cilium
  namespace: {namespace}
  labels:
    k8s-app: cilium
spec:
  selector:
    matchLabels:
      k8s-app: cilium
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 2
  template:
    metadata:
      labels:
        k8s-app: cilium
    spec:
      serviceAccountName: cilium
      tolerations:
        - operator: Exists
      containers:
        - name: agent
          image: registry.local/cilium:v1.15.8
          env:
            - name: DEBUG
              value: "true"
"#
    )
}

fn request(namespace: &str, chart: &Path, values: Vec<PathBuf>) -> UpgradeInstall {
    let mut request =
        UpgradeInstall::adopt(RELEASE, namespace, ChartSource::Directory(chart.into()));
    request.values_files = values;
    request.timeout = TIMEOUT;
    // kwok makes the agent pods ready; on kind (real kubelets) the test image does not exist.
    let kind = std::env::var("E2E_CLUSTER").is_ok_and(|c| c == "kind");
    request.wait = if kind { Wait::HooksOnly } else { Wait::Ready };
    request
}

fn user_values(helm: &Helm, namespace: &str) -> Value {
    helm.get_values(RELEASE, namespace, ValuesScope::User, None)
        .unwrap_or_else(|e| panic!("get values: {e}"))
}

fn hand_over(major: u32) {
    let cluster = cluster();
    let namespace = format!("helm{major}-e2e");
    let ns = namespace.as_str();
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let chart = write_tiny_chart(work.path(), "0.1.0").unwrap_or_else(|e| panic!("chart: {e}"));
    let write = |name: &str, text: &str| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{name}: {e}"));
        path
    };
    let debug_values = write("debug.yaml", "debug: true\n");
    let keep_values = write("keep.yaml", "keepConfig: true\n");
    let lb_values = write("lb.yaml", "loadBalancer: true\n");
    let objects = write("kubespray.yaml", &kubespray_objects(ns));

    let tools = tools_dir();
    let kubectl = Kubectl {
        program: tools.join("kubectl"),
        kubeconfig: cluster.kubeconfig.clone(),
    };
    let helm = Helm::locate(Some(&tools.join(format!("helm{major}"))))
        .unwrap_or_else(|e| panic!("locate helm{major}: {e}"))
        .with_kubeconfig(&cluster.kubeconfig)
        .with_home(&work.path().join("helm-home"));

    // A namespace left by an earlier run of this test on the shared testbed goes first.
    let _ = kubectl.run(&["delete", "namespace", ns, "--wait=true", "--timeout=120s"]);
    let _ = kubectl.run(&[
        "delete",
        "clusterrole",
        &format!("cilium-{ns}"),
        "--ignore-not-found",
    ]);
    kubectl.must(&["create", "namespace", ns]);
    kubectl.must(&["apply", "-f", &objects.to_string_lossy()]);
    let uid = |kubectl: &Kubectl| {
        kubectl
            .get(ns, "daemonset", "cilium")
            .and_then(|ds| ds["metadata"]["uid"].as_str().map(str::to_owned))
    };
    let original_uid = uid(&kubectl).unwrap_or_else(|| panic!("the DaemonSet was not created"));

    // 1. Without adoption Helm refuses, and the error names the object and the missing keys.
    let mut fresh = request(ns, &chart, vec![]);
    fresh.ownership = Ownership::Fresh {
        on_failure: OnFailure::Keep,
    };
    let err = helm
        .upgrade_install(&fresh)
        .expect_err("unowned objects exist");
    let HelmError::Helm {
        failure: HelmFailure::InvalidOwnership(object),
        ..
    } = &err
    else {
        panic!("helm{major}: expected the ownership error, got {err}");
    };
    assert!(
        ["ConfigMap", "ServiceAccount", "ClusterRole", "DaemonSet"].contains(&object.kind.as_str()),
        "{object:?}"
    );
    let keys: Vec<(MetadataField, &str, &str)> = object
        .problems
        .iter()
        .map(|p| (p.field, p.key.as_str(), p.expected.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (MetadataField::Label, "app.kubernetes.io/managed-by", "Helm"),
            (
                MetadataField::Annotation,
                "meta.helm.sh/release-name",
                RELEASE
            ),
            (
                MetadataField::Annotation,
                "meta.helm.sh/release-namespace",
                ns
            ),
        ]
    );
    assert!(err.to_string().contains("take-ownership"), "{err}");
    assert!(
        helm.status(RELEASE, ns)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );

    // 2. Helm 4 only: server-side apply without force conflicts with kubectl's field manager.
    if major == 4 {
        let mut ssa = request(ns, &chart, vec![]);
        ssa.apply = ApplyMethod::ServerSide {
            force_conflicts: false,
        };
        ssa.wait = Wait::HooksOnly;
        let err = helm
            .upgrade_install(&ssa)
            .expect_err("fields owned by kubectl differ");
        assert!(
            matches!(&err, HelmError::Helm { failure: HelmFailure::FieldManagerConflict { managers, .. }, .. }
                if managers.iter().any(|m| m == "kubectl-client-side-apply")),
            "helm4: expected a field-manager conflict, got {err}"
        );
    }

    // 3. Adoption: take ownership, client-side merge; the DaemonSet is patched, never recreated.
    let adopted = helm
        .upgrade_install(&request(ns, &chart, vec![]))
        .unwrap_or_else(|e| panic!("adopt: {e}"));
    assert_eq!(adopted.info.status, ReleaseStatus::Deployed);
    assert_eq!(
        uid(&kubectl).as_deref(),
        Some(original_uid.as_str()),
        "the DaemonSet was recreated"
    );
    let ds = kubectl
        .get(ns, "daemonset", "cilium")
        .unwrap_or_else(|| panic!("DaemonSet gone"));
    assert_eq!(
        ds["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "Helm"
    );
    assert_eq!(
        ds["metadata"]["annotations"]["meta.helm.sh/release-namespace"],
        ns
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/cilium:v1.15.9"
    );
    if major == 4 {
        assert_eq!(
            adopted.apply_method.as_deref(),
            Some("csa"),
            "adoption is client-side"
        );
    }
    let role = kubectl
        .get("", "clusterrole", &format!("cilium-{ns}"))
        .unwrap_or_else(|| panic!("role"));
    assert_eq!(
        role["metadata"]["annotations"]["meta.helm.sh/release-name"],
        RELEASE
    );
    let adopted_revision = adopted.revision;

    // 4. Upgrade with values; history and values follow.
    let upgraded = helm
        .upgrade_install(&request(ns, &chart, vec![debug_values.clone()]))
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    assert_eq!(upgraded.revision, adopted_revision + 1);
    assert_eq!(user_values(&helm, ns), json!({ "debug": true }));
    let all = helm
        .get_values(RELEASE, ns, ValuesScope::All, None)
        .unwrap_or_else(|e| panic!("get values --all: {e}"));
    assert_eq!(all["clusterName"], "default");
    assert_eq!(all["debug"], true);
    let history = helm
        .history(RELEASE, ns)
        .unwrap_or_else(|e| panic!("history: {e}"));
    let last = history.last().unwrap_or_else(|| panic!("empty history"));
    assert_eq!(
        (last.revision, last.status),
        (upgraded.revision, ReleaseStatus::Deployed)
    );
    assert!(
        history
            .iter()
            .any(|r| r.revision == adopted_revision && r.status == ReleaseStatus::Superseded)
    );
    let listed = helm.list(Some(ns)).unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].revision),
        (RELEASE, upgraded.revision)
    );

    // 5. Rollback to the adoption revision: values and the ConfigMap return.
    helm.rollback(&{
        let mut r = RollbackRequest::new(RELEASE, ns, Some(adopted_revision));
        r.timeout = TIMEOUT;
        r
    })
    .unwrap_or_else(|e| panic!("rollback: {e}"));
    assert_eq!(user_values(&helm, ns), json!({}));
    let status = helm
        .check_release(RELEASE, ns)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.map(|s| (s.revision, s.info.status)),
        Some((upgraded.revision + 1, ReleaseStatus::Deployed))
    );
    let config = kubectl
        .get(ns, "configmap", "cilium-config")
        .unwrap_or_else(|| panic!("config"));
    assert_eq!(config["data"]["debug"], "false");
    assert_eq!(uid(&kubectl).as_deref(), Some(original_uid.as_str()));

    // 6. A release left failed, then one left pending by an interrupted helm, are typed from
    //    status with the revision to roll back to; the hint's rollback repairs both.
    let good = upgraded.revision + 1;
    let mut never_ready = request(ns, &chart, vec![lb_values.clone()]);
    never_ready.wait = Wait::ReadyLegacy;
    never_ready.timeout = Duration::from_secs(3);
    let err = helm
        .upgrade_install(&never_ready)
        .expect_err("the Service never gets an address");
    assert!(
        matches!(
            &err,
            HelmError::Helm {
                failure: HelmFailure::Timeout { .. },
                ..
            }
        ),
        "helm{major}: expected a timeout, got {err}"
    );
    let stuck = helm
        .check_release(RELEASE, ns)
        .expect_err("the release failed");
    assert!(
        matches!(stuck, HelmError::ReleaseStuck { status: ReleaseStatus::Failed, last_deployed: Some(n), .. } if n == good),
        "{stuck}"
    );
    assert!(
        stuck
            .to_string()
            .contains(&format!("helm rollback {RELEASE} {good} -n {ns}")),
        "{stuck}"
    );

    never_ready.timeout = TIMEOUT;
    let args = never_ready
        .args(helm.version())
        .unwrap_or_else(|e| panic!("{e}"));
    let pending = interrupt_when(&helm, args, ns, ReleaseStatus::PendingUpgrade);
    let stuck = helm
        .check_release(RELEASE, ns)
        .expect_err("the release is pending");
    assert!(
        matches!(&stuck, HelmError::ReleaseStuck { status: ReleaseStatus::PendingUpgrade, revision, last_deployed: Some(n), .. }
            if *revision == pending.revision && *n == good),
        "{stuck}"
    );
    // The driver refuses to upgrade over it; helm itself would say an operation is in progress.
    let refused = helm
        .upgrade_install(&request(ns, &chart, vec![]))
        .expect_err("pending");
    assert!(
        matches!(refused, HelmError::ReleaseStuck { .. }),
        "{refused}"
    );
    let raw = helm.run(
        request(ns, &chart, vec![])
            .args(helm.version())
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert!(
        matches!(
            raw,
            Err(HelmError::Helm {
                failure: HelmFailure::OperationInProgress,
                ..
            })
        ),
        "{raw:?}"
    );
    helm.rollback(&{
        let mut r = RollbackRequest::new(RELEASE, ns, Some(good));
        r.timeout = TIMEOUT;
        r
    })
    .unwrap_or_else(|e| panic!("rollback of the pending release: {e}"));
    let repaired = helm
        .check_release(RELEASE, ns)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        repaired.map(|s| s.info.status),
        Some(ReleaseStatus::Deployed)
    );
    assert!(
        kubectl.get(ns, "service", "cilium-lb").is_none(),
        "rollback removes the Service"
    );
    assert_eq!(uid(&kubectl).as_deref(), Some(original_uid.as_str()));

    // 7. Mark the ConfigMap keep; uninstall deletes the rest and keeps it.
    helm.upgrade_install(&request(ns, &chart, vec![keep_values]))
        .unwrap_or_else(|e| panic!("upgrade keepConfig: {e}"));
    let plan = helm
        .uninstall_plan(RELEASE, ns)
        .unwrap_or_else(|e| panic!("plan: {e}"));
    let names = |ids: &[helm::ObjectRef]| {
        let mut v: Vec<String> = ids
            .iter()
            .map(|i| format!("{}/{}", i.kind, i.name))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&plan.kept), ["ConfigMap/cilium-config"]);
    assert_eq!(
        names(&plan.deleted),
        [
            format!("ClusterRole/cilium-{ns}"),
            "DaemonSet/cilium".to_owned(),
            "ServiceAccount/cilium".to_owned()
        ]
    );
    let mut uninstall = UninstallRequest::new(RELEASE, ns);
    uninstall.timeout = TIMEOUT;
    let report = helm
        .uninstall(&uninstall)
        .unwrap_or_else(|e| panic!("uninstall: {e}"));
    assert_eq!(report.plan, plan);
    assert_eq!(report.kept_by_helm, ["[ConfigMap] cilium-config"]);
    assert!(
        kubectl.get(ns, "configmap", "cilium-config").is_some(),
        "kept object deleted"
    );
    assert!(
        kubectl.get(ns, "daemonset", "cilium").is_none(),
        "DaemonSet left behind"
    );
    assert!(kubectl.get(ns, "serviceaccount", "cilium").is_none());
    assert!(
        helm.status(RELEASE, ns)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    assert!(
        helm.history(RELEASE, ns)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );

    // 8. An interrupted first install leaves pending-install with nothing to roll back to; the
    //    hint's repair (delete only the release Secret) works, and adoption then succeeds.
    let mut first = request(ns, &chart, vec![lb_values]);
    first.ownership = Ownership::Fresh {
        on_failure: OnFailure::Keep,
    };
    first.wait = Wait::ReadyLegacy;
    let args = first.args(helm.version()).unwrap_or_else(|e| panic!("{e}"));
    interrupt_when(&helm, args, ns, ReleaseStatus::PendingInstall);
    let stuck = helm
        .check_release(RELEASE, ns)
        .expect_err("pending install");
    assert!(
        matches!(
            stuck,
            HelmError::ReleaseStuck {
                status: ReleaseStatus::PendingInstall,
                revision: 1,
                last_deployed: None,
                ..
            }
        ),
        "{stuck}"
    );
    let secret = format!("sh.helm.release.v1.{RELEASE}.v1");
    let message = stuck.to_string();
    assert!(
        message.contains(&format!("delete only the release Secret {secret} in {ns}")),
        "{message}"
    );
    assert!(message.contains("Do not `helm uninstall`"), "{message}");
    kubectl.must(&["delete", "secret", &secret, "-n", ns]);
    assert!(
        helm.check_release(RELEASE, ns)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    let again = helm
        .upgrade_install(&request(ns, &chart, vec![]))
        .unwrap_or_else(|e| panic!("adopt after the repair: {e}"));
    assert_eq!(
        (again.revision, again.info.status),
        (1, ReleaseStatus::Deployed)
    );

    let _ = kubectl.run(&["delete", "namespace", ns, "--wait=false"]);
    let _ = kubectl.run(&[
        "delete",
        "clusterrole",
        &format!("cilium-{ns}"),
        "--ignore-not-found",
    ]);
}

/// Runs helm with `args` and kills it (as Ctrl-C or a lost session would) once the release
/// reaches `status`; returns that status.
fn interrupt_when(
    helm: &Helm,
    args: Vec<std::ffi::OsString>,
    ns: &str,
    status: ReleaseStatus,
) -> helm::ReleaseInfo {
    let mut child = helm
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", helm.program().display()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let reached = loop {
        let current = helm.status(RELEASE, ns).unwrap_or_else(|e| panic!("{e}"));
        if let Some(current) = current.filter(|s| s.info.status == status) {
            break current;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("helm {} never reached {status}", helm.version());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    child.kill().unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = child.wait();
    reached
}

#[test]
fn helm3_adopts_upgrades_rolls_back_and_uninstalls_keeping_objects() {
    hand_over(3);
}

#[test]
fn helm4_adopts_upgrades_rolls_back_and_uninstalls_keeping_objects() {
    hand_over(4);
}
