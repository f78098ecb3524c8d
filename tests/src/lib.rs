//! End-to-end test support: the shared testbed that `cargo xtask e2e` started, a client for it,
//! its tools, per-test namespaces and condition waits.
//!
//! `cargo xtask e2e` starts one testbed and runs `cargo test -p tests -- --test-threads=1` with
//! `KUBECONFIG`, `CILIUM_MIGRATE_TOOLS`, `TESTBED_STATE_DIR` and `TESTBED_NODES` set. Tests on the
//! shared cluster work in their own namespace ([`create_namespace`]); a test that needs a
//! pristine cluster starts its own with [`testbed::Testbed::up`] in a temporary directory.
//!
//! What Kubespray applies and the charts the tests install are the released upstream artefacts
//! (`upstream` crate, `CILIUM_MIGRATE_UPSTREAM`): [`rendered_case`] for Kubespray's own renders and
//! their inventories, [`cilium_chart`] for the released chart. A test that needs them calls
//! `upstream::Upstream::for_test` first: skipped loudly outside CI when they are missing, failed
//! under CI.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use testbed::Tools;

/// What to run when the environment is missing.
pub const HOW_TO_RUN: &str = "run the end-to-end tests with `cargo xtask e2e` (it builds the tools, starts a testbed and sets KUBECONFIG, CILIUM_MIGRATE_TOOLS, TESTBED_STATE_DIR and TESTBED_NODES)";

/// Which cluster the tests run on (`testbed` or `kind`), set by `cargo xtask e2e`.
pub const CLUSTER_ENV: &str = "E2E_CLUSTER";
/// Overrides the chart the hand-over tests install (an archive or a chart directory), e.g. to try
/// another released patch; unset, they use the upstream artefacts' [`HANDOVER_CHART_VERSION`].
pub const CHART_ENV: &str = "CILIUM_MIGRATE_CHART";

/// True on a kind cluster with real Cilium (`cargo xtask e2e --cluster kind`).
pub fn on_kind() -> bool {
    std::env::var(CLUSTER_ENV).is_ok_and(|kind| kind == "kind")
}

/// The path of the `cargo xtask` binary that runs the tests, set by `cargo xtask e2e`.
pub const XTASK_ENV: &str = "CILIUM_MIGRATE_XTASK";

/// The `cargo xtask` binary: the one running `cargo xtask e2e` ([`XTASK_ENV`]), else the debug
/// build.
pub fn xtask_binary() -> PathBuf {
    let binary = std::env::var_os(XTASK_ENV)
        .filter(|path| !path.is_empty())
        .map_or_else(
            || testbed::tools::workspace_root().join("target/debug/xtask"),
            PathBuf::from,
        );
    assert!(
        binary.is_file(),
        "{} is missing: build it with `cargo build -p xtask` (cargo xtask e2e does)",
        binary.display()
    );
    binary
}

/// Helm values for the released chart from a template-era case, as `cargo xtask values` writes
/// them for its inventory and live `cilium-config` (the chart version `version`), in `into`.
pub fn xtask_values(
    case: &upstream::RenderedCase,
    version: &str,
    into: &std::path::Path,
) -> PathBuf {
    let inventory = rendered_inventory_copy(case, &into.join("values-input"));
    let values = into.join("values.yaml");
    let output = std::process::Command::new(xtask_binary())
        .arg("values")
        .arg("--inventory")
        .arg(&inventory)
        .arg("--live-config")
        .arg(case.file("cilium-config.yaml"))
        .args(["--cilium-version", version, "--era", "template", "--write"])
        .arg(&values)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running xtask values: {e}"));
    assert!(
        output.status.success(),
        "xtask values for {} failed: {}",
        case.id(),
        String::from_utf8_lossy(&output.stderr)
    );
    values
}

/// The released chart the hand-over tests install: Kubespray v2.27's Cilium, the version a
/// template-era hand-over keeps.
pub const HANDOVER_CHART_VERSION: &str = "1.15.9";

/// The chart to hand over to: `$CILIUM_MIGRATE_CHART` when set, else the released
/// [`HANDOVER_CHART_VERSION`] archive of the upstream folder.
pub fn cilium_chart(upstream: &upstream::Upstream) -> PathBuf {
    match std::env::var_os(CHART_ENV) {
        Some(chart) if !chart.is_empty() => PathBuf::from(chart),
        _ => upstream
            .chart(HANDOVER_CHART_VERSION)
            .unwrap_or_else(|e| panic!("{e}")),
    }
}

/// A case Kubespray's own templates rendered (`sample`, `v2.27.1`); panics naming the cases
/// present.
pub fn rendered_case(
    upstream: &upstream::Upstream,
    case: &str,
    tag: &str,
) -> upstream::RenderedCase {
    upstream
        .rendered_case(case, tag)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The values file of a cilium-cli era case, after checking Kubespray's command line
/// (`install.txt`, line 1) passes cilium-cli nothing else: `--version` and exactly one `-f`, the
/// role's `cilium-values.yaml`. Then `helm upgrade --install cilium <chart> -n kube-system -f
/// values.yaml` is the whole install (cilium-cli's defaults: release `cilium` in `kube-system`).
pub fn cilium_cli_values(case: &upstream::RenderedCase) -> PathBuf {
    let install = case.file("install.txt");
    let text =
        std::fs::read_to_string(&install).unwrap_or_else(|e| panic!("{}: {e}", install.display()));
    let command: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let flags: Vec<&str> = command
        .iter()
        .copied()
        .filter(|w| w.starts_with('-'))
        .collect();
    assert!(
        command.get(1) == Some(&"install") && flags == ["--version", "-f"],
        "{}: Kubespray runs more than `cilium install --version X -f values.yaml`: {command:?}",
        install.display()
    );
    assert!(
        command
            .last()
            .is_some_and(|f| f.ends_with("/cilium-values.yaml")),
        "{}: {command:?}",
        install.display()
    );
    case.file("values.yaml")
}

/// A copy of a rendered case's inventory at `into/inventory`: never the shared original, because
/// rollback and the hand-over edit write to it.
pub fn rendered_inventory_copy(case: &upstream::RenderedCase, into: &std::path::Path) -> PathBuf {
    let target = into.join("inventory");
    case.inventory_copy(&target)
        .unwrap_or_else(|e| panic!("copying the inventory of {}: {e}", case.id()))
}

/// The shared cluster, as `cargo xtask e2e` describes it in the environment.
#[derive(Debug, Clone)]
pub struct SharedCluster {
    /// The admin kubeconfig (`$KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// The testbed's state directory (`$TESTBED_STATE_DIR`).
    pub state_dir: PathBuf,
    /// The number of nodes (`$TESTBED_NODES`).
    pub nodes: usize,
    /// kubectl, helm3, helm4, ... (`$CILIUM_MIGRATE_TOOLS`).
    pub tools: Tools,
}

impl SharedCluster {
    /// Reads the environment; the error says which variable is missing and how to run the tests.
    pub fn from_env() -> Result<SharedCluster, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|value| !value.is_empty())
                .ok_or_else(|| format!("${name} is not set: {HOW_TO_RUN}"))
        };
        let kubeconfig = PathBuf::from(var(testbed::KUBECONFIG_ENV)?);
        let state_dir = PathBuf::from(var(testbed::STATE_DIR_ENV)?);
        let nodes = var(testbed::NODES_ENV)?
            .parse()
            .map_err(|error| format!("${}: {error}: {HOW_TO_RUN}", testbed::NODES_ENV))?;
        let tools = Tools::locate_in(PathBuf::from(var(testbed::tools::TOOLS_DIR_ENV)?))
            .map_err(|error| error.to_string())?;
        if !kubeconfig.is_file() {
            return Err(format!(
                "{} does not exist (is the testbed still up?): {HOW_TO_RUN}",
                kubeconfig.display()
            ));
        }
        Ok(SharedCluster {
            kubeconfig,
            state_dir,
            nodes,
            tools,
        })
    }

    /// The shared cluster; panics with the way to run the tests when the environment lacks it.
    pub fn require() -> SharedCluster {
        match SharedCluster::from_env() {
            Ok(cluster) => cluster,
            Err(message) => panic!("{message}"),
        }
    }

    /// A client with the admin kubeconfig.
    pub async fn client(&self) -> kube::Client {
        match testbed::client_for(&self.kubeconfig).await {
            Ok(client) => client,
            Err(error) => panic!("{error}: {HOW_TO_RUN}"),
        }
    }

    /// The testbed behind the cluster (to read its processes and nodes; dropping it stops
    /// nothing).
    pub fn testbed(&self) -> testbed::Testbed {
        match testbed::Testbed::from_state(&self.state_dir) {
            Ok(testbed) => testbed,
            Err(error) => panic!("{error}: {HOW_TO_RUN}"),
        }
    }
}

/// Creates a namespace named `<prefix>-<unique suffix>` and returns its name.
pub async fn create_namespace(client: &kube::Client, prefix: &str) -> String {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() % 1_000_000)
        .unwrap_or_default();
    let name = format!("{prefix}-{}-{suffix}", std::process::id());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { "e2e.cilium-migrate/test": prefix } }
    }))
    .unwrap_or_default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(error) = namespaces.create(&PostParams::default(), &namespace).await {
        panic!("creating namespace {name}: {error}");
    }
    name
}

/// Deletes a namespace (the controller-manager then removes what it held).
pub async fn delete_namespace(client: &kube::Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(error) = namespaces.delete(name, &DeleteParams::default()).await {
        panic!("deleting namespace {name}: {error}");
    }
}

/// Re-checks `condition` every 200 ms until it yields a value; panics after `timeout` with
/// `what` and the last observation `condition` reported.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut condition: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match condition().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pristine testbed of the test's own with `nodes` nodes under `state` (for tests that own
/// `kube-system` and the cluster-scoped Cilium objects). Panics with the testbed's error.
pub async fn start_own_testbed(state: &std::path::Path, nodes: usize) -> testbed::Testbed {
    let options = testbed::Options {
        nodes,
        state_dir: state.to_path_buf(),
        tools: Tools::default(),
        ..testbed::Options::default()
    };
    match testbed::Testbed::up(&options).await {
        Ok(testbed) => testbed,
        Err(error) => panic!("the testbed does not start: {error}"),
    }
}

/// A copy of Kubespray's sample inventory of `version` (`v2.27.1`, ...) at `into/inventory`:
/// never the shared original, because rollback and the hand-over edit write to it.
pub fn kubespray_sample_copy(
    upstream: &upstream::Upstream,
    version: &str,
    into: &std::path::Path,
) -> PathBuf {
    let sample = upstream.kubespray_sample(version);
    assert!(
        sample.is_dir(),
        "the Kubespray sample {version} is missing at {}; present: {:?}",
        sample.display(),
        upstream.kubespray_sample_tags()
    );
    let target = into.join("inventory");
    copy_tree(&sample, &target);
    target
}

/// Copies the files and directories under `from` to `to` (symlinks are not followed).
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        let kind = entry
            .file_type()
            .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.display()));
        }
    }
}

/// Every file under `dir` with its bytes (symlinks are read through; the tests make none).
pub fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in
                std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            {
                stack.push(entry.unwrap_or_else(|e| panic!("{e}")).path());
            }
        } else {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(path, bytes);
        }
    }
    out
}

/// The UID of every object of the bundle's section as the backup recorded it (every recorded
/// object has one: the API server gave it).
pub fn bundle_uids(
    bundle: &migration::bundle::Bundle,
    section: migration::bundle::Section,
) -> std::collections::BTreeMap<migration::object::ObjectRef, Option<String>> {
    let mut uids = std::collections::BTreeMap::new();
    for file in bundle.files(section) {
        for o in bundle.read_objects(file).unwrap_or_else(|e| panic!("{e}")) {
            let o = o.unwrap_or_else(|e| panic!("{e}"));
            let r = migration::object::ObjectRef::of(&o).unwrap_or_else(|| panic!("no ref: {o}"));
            let uid = migration::object::str_at(&o, &["metadata", "uid"])
                .unwrap_or_else(|| panic!("{r}: recorded without a UID"))
                .to_owned();
            uids.insert(r, Some(uid));
        }
    }
    uids
}

/// The live UID of every object of the bundle's section (`None` when it is gone).
pub async fn live_uids(
    client: &kube::Client,
    bundle: &migration::bundle::Bundle,
    section: migration::bundle::Section,
) -> std::collections::BTreeMap<migration::object::ObjectRef, Option<String>> {
    let mut uids = std::collections::BTreeMap::new();
    for file in bundle.files(section) {
        let resource = file.api_resource();
        for o in bundle.read_objects(file).unwrap_or_else(|e| panic!("{e}")) {
            let o = o.unwrap_or_else(|e| panic!("{e}"));
            let r = migration::object::ObjectRef::of(&o).unwrap_or_else(|| panic!("no ref: {o}"));
            let api: Api<kube::api::DynamicObject> = match &r.namespace {
                Some(ns) if file.namespaced => Api::namespaced_with(client.clone(), ns, &resource),
                _ => Api::all_with(client.clone(), &resource),
            };
            let live = api
                .get_opt(&r.name)
                .await
                .unwrap_or_else(|e| panic!("{r}: {e}"));
            uids.insert(r, live.and_then(|o| o.metadata.uid));
        }
    }
    uids
}

/// `kubectl --kubeconfig KUBECONFIG ARGS...` with the testbed's kubectl; its standard output.
/// Panics with kubectl's standard error when it fails.
pub fn kubectl(kubectl: &std::path::Path, kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new(kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
