//! Helpers shared by the `migrate_*` end-to-end tests: a testbed of their own holding the objects
//! Kubespray's own templates rendered, the inventory of the same rendered case, the options of
//! `migration::flow` with the released chart, and cluster snapshots.

// Each test binary uses a subset of the helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{ApiResource, ListParams};
use kube::{Api, Client, ResourceExt as _};
use migration::flow::{MigrateOptions, NodeCheck, Plan, Progress};
use migration::object;
use testbed::Testbed;
use testbed::fixtures::FixtureOptions;
use upstream::{RenderedCase, RenderedEra, Upstream};

/// Verify checks a kwok testbed cannot pass: nothing runs Cilium there, so no CiliumEndpoint
/// appears for the pods the hand-over restarts (hubble-relay, hubble-ui).
pub(crate) const KWOK_IGNORED_CHECKS: &[&str] = &["pods managed by Cilium"];

/// A testbed of the test's own (the fixtures own `kube-system` and cluster-scoped objects).
pub(crate) async fn start_testbed(state: &Path) -> Testbed {
    tests::start_own_testbed(state, 3).await
}

/// A testbed of the test's own holding what Kubespray applies in the template era for `case`:
/// its rendered `objects.yaml` applied client-side, plus the CRDs and custom resources a running
/// Cilium creates (no released artefact carries those).
pub(crate) async fn template_era_testbed(state: &Path, case: &RenderedCase) -> Testbed {
    assert_eq!(
        case.era(),
        RenderedEra::Template,
        "{} is no template-era render",
        case.id()
    );
    let testbed = start_testbed(state).await;
    testbed::fixtures::template_era(
        &testbed.tools().kubectl,
        testbed.kubeconfig(),
        &case.file("objects.yaml"),
        &fixture_options(&testbed),
    )
    .unwrap_or_else(|e| panic!("applying the objects of {}: {e}", case.id()));
    testbed
}

/// A testbed of the test's own holding a cilium-cli-era install: `chart` installed as the Helm
/// release `cilium` with `values` by Helm 3 (cilium-cli drives the Helm 3 SDK), plus what a running
/// Cilium creates, its identities as CiliumIdentity objects (Kubespray v2.28's values).
pub(crate) async fn cilium_cli_era_testbed(state: &Path, chart: &Path, values: &Path) -> Testbed {
    let testbed = start_testbed(state).await;
    let tools = testbed.tools();
    testbed::fixtures::cilium_cli_era(
        &tools.helm3,
        &tools.kubectl,
        testbed.kubeconfig(),
        &testbed::fixtures::CiliumCliInstall {
            chart,
            values,
            api_server: testbed.api_server(),
        },
        &FixtureOptions {
            identity_allocation: testbed::fixtures::IdentityAllocation::Crd,
            ..fixture_options(&testbed)
        },
    )
    .unwrap_or_else(|e| panic!("installing {} as cilium-cli does: {e}", chart.display()));
    testbed
}

/// The fixture options for this testbed's nodes (the custom resources of a running cluster).
pub(crate) fn fixture_options(testbed: &Testbed) -> FixtureOptions {
    FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    }
}

/// A copy of the inventory `case` was rendered from, under `into` (so that inventory and live
/// objects agree), never the shared original.
pub(crate) fn inventory_copy(case: &RenderedCase, into: &Path) -> PathBuf {
    tests::rendered_inventory_copy(case, into)
}

/// The upstream artefacts for `test`, or `None` (a recorded skip) outside CI without them.
pub(crate) fn upstream(test: &str) -> Option<Upstream> {
    Upstream::for_test(test)
}

/// Node directories on this machine, as `/opt/cni/bin` and `/etc/cni/net.d` look after
/// `kube_owner: root` (created by this process, which runs as root in the e2e environment).
pub(crate) fn node_check(scratch: &Path) -> NodeCheck {
    let paths = vec![scratch.join("opt/cni/bin"), scratch.join("etc/cni/net.d")];
    for p in &paths {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
    NodeCheck::Check {
        access: Box::new(cni_fs::Access::Local),
        nodes: vec![cni_fs::Node::named("node1")],
        paths,
    }
}

/// The options a test run uses: the chart archive or directory `chart`, the testbed's
/// kubeconfig, `--yes`.
pub(crate) fn migrate_options(
    testbed: &Testbed,
    inventory: &Path,
    bundle: &Path,
    helm: &Path,
    scratch: &Path,
    chart: &Path,
) -> MigrateOptions {
    let mut options = MigrateOptions::new(inventory);
    options.kubeconfig = Some(testbed.kubeconfig().to_path_buf());
    options.bundle = Some(bundle.to_path_buf());
    options.chart = helm::ChartSource::from_path(chart).unwrap_or_else(|e| panic!("{e}"));
    options.helm = Some(helm.to_path_buf());
    options.nodes = node_check(scratch);
    options.apply = true;
    options.yes = true;
    options.helm_timeout = Duration::from_secs(300);
    options.verify_timeout = Duration::from_secs(180);
    options.ignore_checks = KWOK_IGNORED_CHECKS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    options
}

/// A callback run when a phase or step starts.
pub(crate) type StartHook = Box<dyn FnMut(&str) + Send>;

/// Records the flow's progress; optionally runs a callback when a step starts (fault injection).
#[derive(Default)]
pub(crate) struct Recorder {
    /// `started NAME`, `finished NAME`, `failed NAME: ...`, `note ...` lines.
    pub(crate) lines: Vec<String>,
    /// Called with the name of every phase or step that starts.
    pub(crate) on_start: Option<StartHook>,
}

impl Progress for Recorder {
    fn started(&mut self, name: &str, _elapsed: Duration) {
        self.lines.push(format!("started {name}"));
        if let Some(hook) = self.on_start.as_mut() {
            hook(name);
        }
    }

    fn finished(&mut self, name: &str, _took: Duration, error: Option<&str>) {
        self.lines.push(match error {
            None => format!("finished {name}"),
            Some(e) => format!("failed {name}: {e}"),
        });
    }

    fn note(&mut self, message: &str) {
        self.lines.push(format!("note {message}"));
    }

    fn confirm(&mut self, _plan: &Plan) -> bool {
        panic!("the tests pass --yes: no confirmation may be asked")
    }
}

/// Every pod of the cluster: `namespace/name` to UID.
pub(crate) async fn pod_uids(client: &Client) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::all(client.clone());
    pods.list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing pods: {e}"))
        .items
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()),
                p.uid().unwrap_or_default(),
            )
        })
        .collect()
}

/// `data` of ConfigMap kube-system/cilium-config.
pub(crate) async fn live_cilium_config(client: &Client) -> BTreeMap<String, String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    maps.get("cilium-config")
        .await
        .unwrap_or_else(|e| panic!("cilium-config: {e}"))
        .data
        .unwrap_or_default()
}

/// A key of a Secret in kube-system, decoded.
pub(crate) async fn secret_key(client: &Client, name: &str, key: &str) -> Option<Vec<u8>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    secrets
        .get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("Secret {name}: {e}"))
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(key))
        .map(|b| b.0)
}

/// `helm status cilium -n kube-system` with this helm.
pub(crate) fn release_status(helm: &Path, kubeconfig: &Path) -> Option<helm::ReleaseInfo> {
    helm::Helm::locate(Some(helm))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_kubeconfig(kubeconfig)
        .status("cilium", "kube-system")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The `cilium-config` the release's manifest renders.
pub(crate) fn release_cilium_config(helm: &Path, kubeconfig: &Path) -> BTreeMap<String, String> {
    let manifest = helm::Helm::locate(Some(helm))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_kubeconfig(kubeconfig)
        .get_manifest("cilium", "kube-system")
        .unwrap_or_else(|e| panic!("{e}"));
    let objects = object::parse_manifest(&manifest).unwrap_or_else(|e| panic!("{e}"));
    let cm = objects
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "cilium-config")
        .unwrap_or_else(|| panic!("the release renders no cilium-config"));
    cm["data"]
        .as_object()
        .unwrap_or_else(|| panic!("cilium-config without data"))
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect()
}

/// The resource of a kind, for raw reads.
pub(crate) fn resource(api_version: &str, kind: &str, plural: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    )
}

/// The `cargo xtask` binary under test.
pub(crate) fn xtask_binary() -> PathBuf {
    tests::xtask_binary()
}

/// `xtask migrate` arguments for these options (without `--apply`/`--yes`).
pub(crate) fn migrate_args(options: &MigrateOptions, scratch: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["migrate".into(), "--inventory".into()];
    args.push(options.inventory.clone().into());
    if let Some(kubeconfig) = &options.kubeconfig {
        args.extend(["--kubeconfig".into(), kubeconfig.into()]);
    }
    if let Some(bundle) = &options.bundle {
        args.extend(["--bundle".into(), bundle.into()]);
    }
    let chart = match &options.chart {
        helm::ChartSource::Archive(path) | helm::ChartSource::Directory(path) => path.clone(),
        other => panic!("the tests hand over to a local chart, not {other:?}"),
    };
    args.extend(["--chart".into(), chart.into()]);
    if let Some(version) = &options.cilium_version {
        args.extend(["--cilium-version".into(), version.into()]);
    }
    for key in &options.accept_config_changes {
        args.extend(["--accept-config-change".into(), key.into()]);
    }
    for name in &options.accept_workload_changes {
        args.extend(["--accept-workload-change".into(), name.into()]);
    }
    if let Some(helm) = &options.helm {
        args.extend(["--helm".into(), helm.into()]);
    }
    args.extend(["--via".into(), "local".into()]);
    for dir in ["opt/cni/bin", "etc/cni/net.d"] {
        args.extend(["--path".into(), scratch.join(dir).into()]);
    }
    for check in KWOK_IGNORED_CHECKS {
        args.extend(["--ignore-check".into(), (*check).into()]);
    }
    args
}

/// Runs `xtask` with `args`; returns (success, stdout, stderr).
pub(crate) fn run_xtask(args: &[std::ffi::OsString]) -> (bool, String, String) {
    let output = std::process::Command::new(xtask_binary())
        .args(args)
        .env_remove("CILIUM_MIGRATE_FAIL_AT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running xtask: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
