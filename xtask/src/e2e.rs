//! `cargo xtask e2e [--cluster testbed|kind] [--keep] [--nodes N] [-- TEST ARGS]`: the end-to-end
//! tests in `tests/` against a real cluster.
//!
//! **testbed** (default, runs anywhere with Go): builds the tools (skipped when stamped), starts
//! one testbed in `target/e2e/testbed`, runs
//! `cargo test -p tests --no-fail-fast -- --test-threads=1` with
//! `KUBECONFIG`, `CILIUM_MIGRATE_TOOLS`, `TESTBED_STATE_DIR`, `TESTBED_NODES` and
//! `E2E_CLUSTER=testbed` set (tools first on PATH), then stops the testbed: also when the tests
//! fail and on Ctrl-C or SIGTERM. Tests share that cluster one at a time, each in its own
//! namespace; tests that need a pristine cluster start their own through the `testbed` library.
//! Each test seeds the fixtures it needs. `--keep` leaves the testbed running and prints how to
//! reach it.
//!
//! **kind** (for machines with a Docker engine, `kind` on PATH and internet access for the
//! images): creates the kind cluster `cilium-migrate-e2e` with no default CNI (one control plane,
//! N-1 workers, Kubespray's pod and service subnets), installs Cilium the Kubespray v2.27.1 way
//! (its rendered `objects.yaml` from the upstream artefacts, real images, applied with
//! `kubectl apply`; identities in CRDs instead of the kvstore, since kind has no Kubespray etcd),
//! waits for the agent DaemonSet, starts a traffic check (a client on one node sending bounded
//! HTTP requests to servers on two others through a Service), runs the same tests with
//! `E2E_CLUSTER=kind` (they hand over to the released chart of the upstream artefacts), then
//! counts the failed requests from the client's log and fails above `--max-failed-requests`. The
//! cluster is deleted at the end unless `--keep`. It fails at once with a clear message when
//! Docker (`docker info`) or kind is missing.
//!
//! Both export `CILIUM_MIGRATE_XTASK`, the path of this binary, for the tests that run
//! `cargo xtask migrate`/`rollback` as an operator would.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process_group};
use testbed::fixtures::{self, FixtureNode, FixtureOptions, IdentityAllocation};
use testbed::{Options, Testbed, Tools};
use tokio::signal::unix::{SignalKind, signal};

use crate::ci::project_root;
use crate::testbed::{build_tools, export_lines};

/// Environment variable telling the tests which kind of cluster they run on.
const CLUSTER_ENV: &str = "E2E_CLUSTER";
/// Environment variable telling the tests which `cargo xtask` binary to run (this one).
const XTASK_ENV: &str = "CILIUM_MIGRATE_XTASK";
/// The kind cluster's name.
const KIND_CLUSTER: &str = "cilium-migrate-e2e";

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Which cluster to run against.
    #[arg(long, value_enum, default_value_t = ClusterKind::Testbed)]
    cluster: ClusterKind,
    /// Leave the cluster running afterwards (and print how to reach it).
    #[arg(long)]
    keep: bool,
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// kind only: how many failed requests the traffic check tolerates.
    #[arg(long, default_value_t = 5)]
    max_failed_requests: usize,
    /// Passed to the test binaries after `--test-threads=1` (e.g. a test name filter).
    #[arg(last = true)]
    test_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ClusterKind {
    /// A local control plane with kwok nodes (no Docker needed).
    Testbed,
    /// A kind cluster with real Cilium (needs Docker and internet).
    Kind,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    match args.cluster {
        ClusterKind::Testbed => run_on_testbed(&args),
        ClusterKind::Kind => run_on_kind(&args),
    }
}

fn e2e_dir() -> PathBuf {
    project_root().join("target/e2e")
}

fn run_on_testbed(args: &Args) -> anyhow::Result<()> {
    let report = build_tools(false)?;
    let options = Options {
        nodes: args.nodes,
        state_dir: e2e_dir().join("testbed"),
        tools: report.tools,
        ..Options::default()
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut interrupts = Interrupts::new()?;
        let started = Instant::now();
        // Dropping the start-up future (on a signal) stops whatever it had started.
        let testbed = tokio::select! {
            testbed = Testbed::up(&options) => testbed?,
            signal = interrupts.next() => bail!("{signal} while starting the testbed; stopped it"),
        };
        eprintln!(
            "e2e: testbed up in {:.0?} ({}, {} nodes)",
            started.elapsed(),
            testbed.api_server(),
            testbed.nodes().len()
        );
        let mut env = testbed.env();
        env.push((CLUSTER_ENV, "testbed".to_owned()));
        env.push(xtask_env()?);
        let outcome = run_tests(&testbed.tools(), &env, &args.test_args, &mut interrupts).await;
        finish_testbed(testbed, args.keep)?;
        outcome
    })
}

/// The tests run this very binary for `cargo xtask migrate`/`rollback`: the one they test is
/// the one that was built for the run, whatever the target directory.
fn xtask_env() -> anyhow::Result<(&'static str, String)> {
    let exe = std::env::current_exe().context("the path of the running xtask binary")?;
    Ok((XTASK_ENV, exe.display().to_string()))
}

fn finish_testbed(testbed: Testbed, keep: bool) -> anyhow::Result<()> {
    if keep {
        let exports = export_lines(&testbed);
        let dir = testbed.detach();
        eprintln!(
            "e2e: --keep: the testbed runs on; reach it with\n{exports}stop it with `cargo xtask testbed down --state-dir {}`",
            dir.display()
        );
        return Ok(());
    }
    let started = Instant::now();
    testbed.down().context("stopping the e2e testbed")?;
    eprintln!("e2e: testbed stopped in {:.0?}", started.elapsed());
    Ok(())
}

/// SIGINT and SIGTERM, listened for from before the cluster starts until it is gone.
struct Interrupts {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn new() -> anyhow::Result<Interrupts> {
        Ok(Interrupts {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the next signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted (SIGINT)",
            _ = self.terminate.recv() => "terminated (SIGTERM)",
        }
    }
}

/// Runs `cargo test -p tests -- --test-threads=1 ARGS` in its own process group with `env`;
/// on a signal, stops the whole group (cargo and the test binary) and reports the signal.
async fn run_tests(
    tools: &Tools,
    env: &[(&'static str, String)],
    test_args: &[String],
    interrupts: &mut Interrupts,
) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let path = std::env::join_paths(
        std::iter::once(tools.dir.clone()).chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths),
        ),
    )?;
    let mut command = tokio::process::Command::new(cargo);
    command
        .current_dir(project_root())
        // Every test binary runs even when an earlier one fails: one report lists all failures.
        .args([
            "test",
            "-p",
            "tests",
            "--no-fail-fast",
            "--",
            "--test-threads=1",
        ])
        .args(test_args)
        .envs(env.iter().map(|(name, value)| (*name, value)))
        .env("PATH", path)
        .process_group(0)
        .kill_on_drop(true);
    eprintln!(
        "e2e: cargo test -p tests --no-fail-fast -- --test-threads=1 {}",
        test_args.join(" ")
    );
    let started = Instant::now();
    let mut child = command.spawn().context("starting `cargo test -p tests`")?;
    let status = tokio::select! {
        status = child.wait() => status?,
        signal = interrupts.next() => {
            stop_group(&mut child).await;
            bail!("{signal}: stopped the tests");
        }
    };
    eprintln!("e2e: tests finished in {:.0?}: {status}", started.elapsed());
    test_outcome(status)
}

fn test_outcome(status: ExitStatus) -> anyhow::Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("end-to-end tests failed ({status})")
    }
}

/// SIGTERM to the test run's process group, then SIGKILL if it lingers.
async fn stop_group(child: &mut tokio::process::Child) {
    let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
    else {
        return;
    };
    let _ = kill_process_group(pid, Signal::TERM);
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = kill_process_group(pid, Signal::KILL);
        let _ = child.wait().await;
    }
}

// ---------------------------------------------------------------------------------------------
// kind

fn run_on_kind(args: &Args) -> anyhow::Result<()> {
    preflight_kind()?;
    let tools = build_tools(false)?.tools;
    let dir = e2e_dir().join("kind");
    std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
    let kubeconfig = dir.join("kubeconfig");
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let mut interrupts = Interrupts::new()?;
        let setup = async {
            create_kind_cluster(&dir, &kubeconfig, args.nodes)?;
            install_cilium_like_kubespray_v2_27(&tools, &kubeconfig, &dir)?;
            start_traffic(&tools, &kubeconfig)?;
            anyhow::Ok(())
        };
        tokio::select! {
            done = setup => done?,
            signal = interrupts.next() => bail!("{signal} while setting up kind"),
        };
        let env = vec![
            (testbed::KUBECONFIG_ENV, kubeconfig.display().to_string()),
            (
                testbed::tools::TOOLS_DIR_ENV,
                tools.dir.display().to_string(),
            ),
            (testbed::STATE_DIR_ENV, dir.display().to_string()),
            (testbed::NODES_ENV, args.nodes.to_string()),
            (CLUSTER_ENV, "kind".to_owned()),
            xtask_env()?,
        ];
        let tests = run_tests(&tools, &env, &args.test_args, &mut interrupts).await;
        let traffic = count_failed_requests(&tools, &kubeconfig).and_then(|(ok, failed)| {
            eprintln!("e2e: traffic check: {ok} requests answered, {failed} failed");
            if failed > args.max_failed_requests {
                bail!(
                    "traffic check: {failed} failed requests (more than --max-failed-requests {})",
                    args.max_failed_requests
                );
            }
            Ok(())
        });
        tests.and(traffic)
    });
    if args.keep {
        eprintln!(
            "e2e: --keep: kind cluster {KIND_CLUSTER} runs on; export KUBECONFIG={}; delete it with `kind delete cluster --name {KIND_CLUSTER}`",
            kubeconfig.display()
        );
    } else {
        run_checked(Command::new("kind").args(["delete", "cluster", "--name", KIND_CLUSTER]))?;
    }
    outcome
}

/// Docker's engine must answer and kind must be installed; says what to do otherwise.
fn preflight_kind() -> anyhow::Result<()> {
    let docker = Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match docker {
        Err(error) => bail!(
            "--cluster kind needs Docker, and `docker` could not be run ({error}); install Docker, or run `cargo xtask e2e` (the local testbed needs no Docker)"
        ),
        Ok(output) if !output.status.success() => bail!(
            "--cluster kind needs a running Docker engine, and `docker info` failed: {}; start Docker, or run `cargo xtask e2e` (the local testbed needs no Docker)",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Ok(_) => {}
    }
    if let Err(error) = Command::new("kind").arg("version").output() {
        bail!(
            "--cluster kind needs the `kind` binary on PATH ({error}); install kind (https://kind.sigs.k8s.io), or run `cargo xtask e2e`"
        );
    }
    Ok(())
}

fn run_checked(command: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

fn output_checked(command: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !output.status.success() {
        bail!("{shown} failed ({})", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn create_kind_cluster(dir: &Path, kubeconfig: &Path, nodes: usize) -> anyhow::Result<()> {
    let mut config = String::from(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  disableDefaultCNI: true\n",
    );
    config.push_str(&format!(
        "  podSubnet: {}\n  serviceSubnet: {}\nnodes:\n- role: control-plane\n",
        testbed::POD_CIDR,
        testbed::SERVICE_CIDR
    ));
    for _ in 1..nodes {
        config.push_str("- role: worker\n");
    }
    let file = dir.join("kind.yaml");
    std::fs::write(&file, config).with_context(|| file.display().to_string())?;
    run_checked(
        Command::new("kind")
            .args(["create", "cluster", "--name", KIND_CLUSTER, "--config"])
            .arg(&file)
            .arg("--kubeconfig")
            .arg(kubeconfig),
    )
}

fn kubectl(tools: &Tools, kubeconfig: &Path) -> Command {
    let mut command = Command::new(&tools.kubectl);
    command.arg("--kubeconfig").arg(kubeconfig);
    command
}

/// The kind nodes with their InternalIPs, control plane first (as the fixtures expect).
fn kind_nodes(tools: &Tools, kubeconfig: &Path) -> anyhow::Result<Vec<FixtureNode>> {
    let json = output_checked(kubectl(tools, kubeconfig).args(["get", "nodes", "-o", "json"]))?;
    let list: serde_json::Value = serde_json::from_str(&json)?;
    let mut nodes = Vec::new();
    for node in list["items"].as_array().into_iter().flatten() {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let ip = node["status"]["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|address| address["type"] == "InternalIP")
            .and_then(|address| address["address"].as_str())
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("kind node {name} has no IPv4 InternalIP"))?;
        nodes.push(FixtureNode {
            name,
            internal_ip: ip,
        });
    }
    nodes.sort_by_key(|node| !node.name.ends_with("control-plane"));
    Ok(nodes)
}

fn install_cilium_like_kubespray_v2_27(
    tools: &Tools,
    kubeconfig: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    let upstream = upstream::Upstream::locate().map_err(|missing| anyhow::anyhow!("{missing}"))?;
    let case = upstream
        .rendered_case("sample", "v2.27.1")
        .map_err(anyhow::Error::msg)?;
    let objects = with_crd_identities(&case.file("objects.yaml"), &dir.join("objects.yaml"))?;
    let options = FixtureOptions {
        nodes: kind_nodes(tools, kubeconfig)?,
        identity_allocation: IdentityAllocation::Crd,
        ..FixtureOptions::default()
    };
    fixtures::template_era(&tools.kubectl, kubeconfig, &objects, &options)?;
    run_checked(kubectl(tools, kubeconfig).args([
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/cilium",
        "--timeout=10m",
    ]))
}

/// Kubespray's rendered objects with identities in CRDs instead of its etcd, which kind lacks:
/// `identity-allocation-mode: crd`, no `kvstore`/`kvstore-opt` (the agent then never dials
/// etcd). A text edit of those three lines, so that everything else (octal file modes included)
/// reaches kubectl exactly as Kubespray rendered it. Written to `out`.
fn with_crd_identities(objects: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(objects).with_context(|| objects.display().to_string())?;
    let edited = crd_identities(&text).with_context(|| objects.display().to_string())?;
    std::fs::write(out, edited).with_context(|| out.display().to_string())?;
    Ok(out.to_path_buf())
}

fn crd_identities(text: &str) -> anyhow::Result<String> {
    let mut edited = String::with_capacity(text.len());
    let (mut mode, mut dropped) = (0, 0);
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "  identity-allocation-mode: kvstore" {
            edited.push_str("  identity-allocation-mode: crd\n");
            mode += 1;
        } else if line.starts_with("  kvstore: ") || line.starts_with("  kvstore-opt: ") {
            dropped += 1;
        } else {
            edited.push_str(line);
        }
    }
    anyhow::ensure!(
        (mode, dropped) == (1, 2),
        "not the kvstore render this edit expects (identity-allocation-mode lines: {mode}, kvstore lines: {dropped})"
    );
    Ok(edited)
}

/// Objects of the traffic check: two servers on different nodes behind a Service, one client
/// elsewhere sending a bounded number of requests and logging `ok` or `FAIL` for each.
const TRAFFIC: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: e2e-traffic
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: server
  namespace: e2e-traffic
spec:
  replicas: 2
  selector:
    matchLabels: {app: server}
  template:
    metadata:
      labels: {app: server}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels: {app: server}
      containers:
      - name: server
        image: registry.k8s.io/e2e-test-images/agnhost:2.53
        args: ["netexec", "--http-port=8080"]
---
apiVersion: v1
kind: Service
metadata:
  name: server
  namespace: e2e-traffic
spec:
  selector: {app: server}
  ports:
  - port: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: e2e-traffic
spec:
  restartPolicy: Never
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels: {app: server}
  containers:
  - name: client
    image: registry.k8s.io/e2e-test-images/agnhost:2.53
    command: ["sh", "-c"]
    args:
    - |
      i=0
      while [ "$i" -lt 18000 ]; do
        if wget -q -T 1 -O /dev/null http://server:8080/hostname; then echo ok; else echo FAIL; fi
        i=$((i + 1))
        sleep 0.1
      done
"#;

fn start_traffic(tools: &Tools, kubeconfig: &Path) -> anyhow::Result<()> {
    let file = e2e_dir().join("kind/traffic.yaml");
    std::fs::write(&file, TRAFFIC).with_context(|| file.display().to_string())?;
    run_checked(kubectl(tools, kubeconfig).arg("apply").arg("-f").arg(&file))?;
    run_checked(kubectl(tools, kubeconfig).args([
        "-n",
        "e2e-traffic",
        "wait",
        "--for=condition=Ready",
        "pod",
        "--all",
        "--timeout=5m",
    ]))
}

/// (answered, failed) requests so far, from the client's log; the client is deleted after.
fn count_failed_requests(tools: &Tools, kubeconfig: &Path) -> anyhow::Result<(usize, usize)> {
    let log =
        output_checked(kubectl(tools, kubeconfig).args(["-n", "e2e-traffic", "logs", "client"]))?;
    let ok = log.lines().filter(|line| line.trim() == "ok").count();
    let failed = log.lines().filter(|line| line.trim() == "FAIL").count();
    run_checked(kubectl(tools, kubeconfig).args([
        "delete",
        "namespace",
        "e2e-traffic",
        "--wait=false",
    ]))?;
    if ok == 0 {
        bail!(
            "traffic check: the client answered no request at all; see `kubectl -n e2e-traffic logs client`"
        );
    }
    Ok((ok, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_identities_move_to_crds_and_nothing_else_changes() {
        let rendered = "data:\n  identity-allocation-mode: kvstore\n  kvstore: etcd\n  kvstore-opt: '{}'\n          defaultMode: 0400\n";
        assert_eq!(
            crd_identities(rendered).expect("a kvstore render"),
            "data:\n  identity-allocation-mode: crd\n          defaultMode: 0400\n"
        );
        assert!(crd_identities("data:\n  identity-allocation-mode: crd\n").is_err());
    }

    #[test]
    fn traffic_check_is_bounded_and_counts_each_request() {
        assert!(
            TRAFFIC.contains("-lt 18000"),
            "a bounded number of requests"
        );
        assert!(TRAFFIC.contains("echo ok") && TRAFFIC.contains("echo FAIL"));
        assert!(
            TRAFFIC.contains("podAntiAffinity"),
            "client and servers on different nodes"
        );
    }
}
