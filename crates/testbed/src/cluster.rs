//! [`Testbed`]: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kwok
//! controller on 127.0.0.1, with N fake nodes, under one state directory.
//!
//! State directory layout:
//! - `testbed.json`: ports, nodes and the pid of every process (what `from_state` and `down` read);
//! - `kubeconfig`: the admin kubeconfig (client certificate in `system:masters`);
//! - `pki/`: CA, serving and client certificates, the service-account key (keys 0600);
//! - `etcd/`: etcd's data; `kwok.yaml`: the kwok stages; `logs/<component>.log`.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, PostParams};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};
use crate::pki::Pki;
use crate::process::{ProcessRecord, spawn, stop_all};
use crate::stages::KWOK_CONFIG;
use crate::tools::{TOOLS_DIR_ENV, Tools, workspace_root};

/// Environment variable naming the state directory of the testbed the tests use.
pub const STATE_DIR_ENV: &str = "TESTBED_STATE_DIR";
/// Environment variable holding the number of nodes of that testbed.
pub const NODES_ENV: &str = "TESTBED_NODES";
/// The kubeconfig variable every Kubernetes client reads.
pub const KUBECONFIG_ENV: &str = "KUBECONFIG";

/// Kubespray's `kube_service_addresses`.
pub const SERVICE_CIDR: &str = "10.233.0.0/18";
/// Kubespray's `kube_pods_subnet` (kwok hands out pod IPs from it).
pub const POD_CIDR: &str = "10.233.64.0/18";
/// The `kubernetes` Service's address (first of [`SERVICE_CIDR`]).
const SERVICE_IP: &str = "10.233.0.1";

/// Version of the state file format.
const STATE_FORMAT: u32 = 1;
/// How long a process gets to exit after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Where [`Testbed::stop_apiserver`] keeps the API server's arguments.
const APISERVER_ARGS: &str = "kube-apiserver.args.json";
/// How often a condition is re-checked while waiting on it.
const POLL: Duration = Duration::from_millis(200);

/// The directory a testbed lives in unless told otherwise: `$TESTBED_STATE_DIR`, else
/// `<workspace>/target/testbed`.
pub fn default_state_dir() -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target/testbed"),
    }
}

/// How to start a testbed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of fake nodes (`node1` is the control plane, the rest are workers); at least 1.
    pub nodes: usize,
    /// The state directory (created; must not hold a running testbed).
    pub state_dir: PathBuf,
    /// The binaries to run.
    pub tools: Tools,
    /// How long each start-up condition may take.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 3,
            state_dir: default_state_dir(),
            tools: Tools::default(),
            timeout: Duration::from_secs(120),
        }
    }
}

/// The loopback ports the testbed's processes listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// etcd's client port.
    pub etcd_client: u16,
    /// etcd's peer port (bound, never used by another member).
    pub etcd_peer: u16,
    /// kube-apiserver's secure port.
    pub api_server: u16,
    /// kube-controller-manager's secure (health) port.
    pub controller_manager: u16,
    /// kube-scheduler's secure (health) port.
    pub scheduler: u16,
}

/// What `testbed.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    format: u32,
    api_server: String,
    kubeconfig: PathBuf,
    tools_dir: PathBuf,
    nodes: Vec<String>,
    ports: Ports,
    /// In start order; stopped in reverse.
    processes: Vec<ProcessRecord>,
}

/// A running testbed. Dropping one that [`Testbed::up`] returned stops it (a guard for tests);
/// [`Testbed::detach`] leaves it running, [`Testbed::from_state`] reattaches to it.
#[derive(Debug)]
pub struct Testbed {
    dir: PathBuf,
    state: State,
    children: Vec<Child>,
    stop_on_drop: bool,
}

/// One process of a testbed and whether it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStatus {
    /// What was recorded when it started.
    pub process: ProcessRecord,
    /// Whether it still runs.
    pub alive: bool,
}

/// What [`Testbed::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The state directory.
    pub state_dir: PathBuf,
    /// The API server's URL.
    pub api_server: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The fake nodes' names.
    pub nodes: Vec<String>,
    /// Every process, in start order.
    pub processes: Vec<ProcessStatus>,
}

impl Status {
    /// Whether every process runs.
    pub fn all_alive(&self) -> bool {
        self.processes.iter().all(|process| process.alive)
    }
}

impl Testbed {
    /// Starts a testbed and waits until it serves: API server ready, controller-manager and
    /// scheduler leading, every node Ready. On failure, every process started is stopped and the
    /// error names the component and quotes its log.
    pub async fn up(options: &Options) -> Result<Testbed> {
        let dir = absolute(&options.state_dir)?;
        if let Ok(old) = Testbed::from_state(&dir) {
            let pids: Vec<u32> = old
                .state
                .processes
                .iter()
                .filter(|process| process.is_alive())
                .map(|process| process.pid)
                .collect();
            if !pids.is_empty() {
                return Err(Error::AlreadyRunning { dir, pids });
            }
            // Leftovers of a testbed that died: its files go, nothing runs.
            remove_state_files(&dir)?;
        }
        let tools = Tools::locate_in(&options.tools.dir)?;
        fs::create_dir_all(&dir).at(&dir)?;
        let pki = Pki::generate(&dir.join("pki"), SERVICE_IP)?;
        let ports = free_ports()?;
        let api_server = format!("https://127.0.0.1:{}", ports.api_server);
        let kubeconfig = dir.join("kubeconfig");
        fs::write(&kubeconfig, pki.admin_kubeconfig(&api_server)).at(&kubeconfig)?;
        let kwok_config = dir.join("kwok.yaml");
        fs::write(&kwok_config, KWOK_CONFIG).at(&kwok_config)?;

        let mut testbed = Testbed {
            state: State {
                format: STATE_FORMAT,
                api_server,
                kubeconfig,
                tools_dir: tools.dir.clone(),
                nodes: (1..=options.nodes.max(1))
                    .map(|n| format!("node{n}"))
                    .collect(),
                ports,
                processes: Vec::new(),
            },
            dir,
            children: Vec::new(),
            stop_on_drop: true,
        };
        match testbed.start(&tools, &pki, options.timeout).await {
            Ok(()) => Ok(testbed),
            Err(error) => {
                // Keep the logs for reading; the processes go.
                testbed.stop_on_drop = false;
                let _ = testbed.stop_processes();
                Err(error)
            }
        }
    }

    async fn start(&mut self, tools: &Tools, pki: &Pki, timeout: Duration) -> Result<()> {
        let ports = self.state.ports;
        let dir = self.dir.clone();
        let path = |p: &Path| p.display().to_string();
        let kubeconfig = path(&self.state.kubeconfig);

        let etcd_client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let etcd_peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        self.start_process(
            "etcd",
            &tools.etcd,
            vec![
                "--name=testbed".to_owned(),
                format!("--data-dir={}", path(&dir.join("etcd"))),
                format!("--listen-client-urls={etcd_client}"),
                format!("--advertise-client-urls={etcd_client}"),
                format!("--listen-peer-urls={etcd_peer}"),
                format!("--initial-advertise-peer-urls={etcd_peer}"),
                format!("--initial-cluster=testbed={etcd_peer}"),
                "--initial-cluster-state=new".to_owned(),
                // Throwaway data: durability costs seconds per test run for nothing.
                "--unsafe-no-fsync=true".to_owned(),
            ],
        )?;
        self.wait("etcd to accept connections", timeout, async |_| {
            Ok(TcpStream::connect((Ipv4Addr::LOCALHOST, ports.etcd_client)).is_ok())
        })
        .await?;

        self.start_process(
            "kube-apiserver",
            &tools.kube_apiserver,
            vec![
                format!("--etcd-servers={etcd_client}"),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={}", ports.api_server),
                // A loopback address is not a valid endpoint of the `kubernetes` Service.
                "--endpoint-reconciler-type=none".to_owned(),
                format!("--tls-cert-file={}", path(&pki.apiserver_cert)),
                format!("--tls-private-key-file={}", path(&pki.apiserver_key)),
                format!("--client-ca-file={}", path(&pki.ca_cert)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
                format!(
                    "--service-account-key-file={}",
                    path(&pki.service_account_public_key)
                ),
                format!(
                    "--service-account-signing-key-file={}",
                    path(&pki.service_account_key)
                ),
                format!("--service-cluster-ip-range={SERVICE_CIDR}"),
                // RBAC like a real cluster, so tests can check what a restricted identity may do.
                "--authorization-mode=Node,RBAC".to_owned(),
                // The aggregation layer's front proxy, as kubeadm sets it up (one CA here): without
                // it every component logs a missing request-header CA bundle.
                format!("--requestheader-client-ca-file={}", path(&pki.ca_cert)),
                "--requestheader-username-headers=X-Remote-User".to_owned(),
                "--requestheader-group-headers=X-Remote-Group".to_owned(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
                "--requestheader-allowed-names=front-proxy-client".to_owned(),
                format!("--proxy-client-cert-file={}", path(&pki.front_proxy_cert)),
                format!("--proxy-client-key-file={}", path(&pki.front_proxy_key)),
                // Kubespray's Cilium agent runs privileged containers.
                "--allow-privileged=true".to_owned(),
                "--profiling=false".to_owned(),
            ],
        )?;
        let client = self.client().await?;
        self.wait("kube-apiserver /readyz", timeout, async |_| {
            let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
                return Ok(false);
            };
            Ok(client
                .request_text(request)
                .await
                .is_ok_and(|body| body.trim() == "ok"))
        })
        .await?;

        let delegated = [
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_owned(),
            // A leader that cannot renew its lease exits; long deadlines let the one instance
            // of each ride out an API server restart (`stop_apiserver`), as a kubelet-restarted
            // static pod would.
            "--leader-elect-lease-duration=120s".to_owned(),
            "--leader-elect-renew-deadline=100s".to_owned(),
            "--leader-elect-retry-period=2s".to_owned(),
        ];
        let mut controller_manager = delegated.to_vec();
        controller_manager.extend([
            format!("--secure-port={}", ports.controller_manager),
            format!(
                "--service-account-private-key-file={}",
                path(&pki.service_account_key)
            ),
            format!("--root-ca-file={}", path(&pki.ca_cert)),
            format!("--cluster-signing-cert-file={}", path(&pki.ca_cert)),
            format!("--cluster-signing-key-file={}", path(&pki.ca_key)),
            format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            format!("--cluster-cidr={POD_CIDR}"),
            "--profiling=false".to_owned(),
        ]);
        self.start_process(
            "kube-controller-manager",
            &tools.kube_controller_manager,
            controller_manager,
        )?;
        let mut scheduler = delegated.to_vec();
        scheduler.extend([
            format!("--secure-port={}", ports.scheduler),
            "--profiling=false".to_owned(),
        ]);
        self.start_process("kube-scheduler", &tools.kube_scheduler, scheduler)?;
        self.start_process(
            "kwok",
            &tools.kwok,
            vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--config={}", path(&dir.join("kwok.yaml"))),
                "--manage-all-nodes=true".to_owned(),
                format!("--cidr={POD_CIDR}"),
                "--node-lease-duration-seconds=40".to_owned(),
            ],
        )?;

        // Both leaders hold their Lease once they are connected and running their loops.
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        for (name, leader) in [
            ("kube-controller-manager", "kube-controller-manager"),
            ("kube-scheduler", "kube-scheduler"),
        ] {
            self.wait(&format!("{name} to lead"), timeout, async |_| {
                Ok(leases
                    .get_opt(leader)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|lease| lease.spec)
                    .and_then(|spec| spec.holder_identity)
                    .is_some_and(|holder| !holder.is_empty()))
            })
            .await?;
        }

        let nodes: Api<Node> = Api::all(client.clone());
        for (index, name) in self.state.nodes.iter().enumerate() {
            let node = fake_node(name, index);
            nodes
                .create(&PostParams::default(), &node)
                .await
                .map_err(|source| Error::Kube {
                    what: format!("create node {name}"),
                    source,
                })?;
        }
        let names = self.state.nodes.clone();
        self.wait(
            &format!("nodes {} to be Ready (kwok)", names.join(", ")),
            timeout,
            async |_| {
                let Ok(list) = nodes.list(&Default::default()).await else {
                    return Ok(false);
                };
                let ready: Vec<String> = list
                    .items
                    .iter()
                    .filter(|node| is_ready(node))
                    .filter_map(|node| node.metadata.name.clone())
                    .collect();
                Ok(names.iter().all(|name| ready.contains(name)))
            },
        )
        .await?;
        // The service-account controller runs: pods in new namespaces can be admitted.
        let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
        self.wait(
            "the `default` ServiceAccount (kube-controller-manager)",
            timeout,
            async |_| Ok(accounts.get_opt("default").await.ok().flatten().is_some()),
        )
        .await?;
        Ok(())
    }

    fn start_process(&mut self, name: &str, binary: &Path, args: Vec<String>) -> Result<()> {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        let (child, record) = spawn(name, binary, &args, &log)?;
        self.children.push(child);
        self.state.processes.push(record);
        self.save()
    }

    /// Re-checks `condition` until it holds, failing when a process exits or time runs out.
    async fn wait(
        &mut self,
        what: &str,
        timeout: Duration,
        mut condition: impl AsyncFnMut(()) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_processes()?;
            if condition(()).await? {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let last = self.state.processes.last();
                let hint = match last {
                    Some(process) => format!(
                        "last started: {} (log {})\n--- last lines ---\n{}",
                        process.name,
                        process.log.display(),
                        process.log_tail(20)
                    ),
                    None => "nothing was started".to_owned(),
                };
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    timeout,
                    hint,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails with the log of the first process that exited.
    fn check_processes(&mut self) -> Result<()> {
        for child in &mut self.children {
            let Ok(Some(status)) = child.try_wait() else {
                continue;
            };
            let pid = child.id();
            if let Some(process) = self.state.processes.iter().find(|p| p.pid == pid) {
                return Err(Error::ProcessExited {
                    name: process.name.clone(),
                    pid,
                    status: status.to_string(),
                    log: process.log.clone(),
                    tail: process.log_tail(30),
                });
            }
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let path = self.dir.join("testbed.json");
        let json = serde_json::to_string_pretty(&self.state).map_err(|error| Error::BadState {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        fs::write(&path, json).at(&path)
    }

    /// Reattaches to the testbed recorded in `dir`. The handle does not stop it when dropped.
    pub fn from_state(dir: impl AsRef<Path>) -> Result<Testbed> {
        let dir = absolute(dir.as_ref())?;
        let path = dir.join("testbed.json");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoState(dir));
            }
            Err(error) => return Err(error).at(&path),
        };
        let state: State = serde_json::from_str(&text).map_err(|error| Error::BadState {
            path: path.clone(),
            reason: error.to_string(),
        })?;
        if state.format != STATE_FORMAT {
            return Err(Error::BadState {
                path,
                reason: format!("format {} (this build reads {STATE_FORMAT})", state.format),
            });
        }
        Ok(Testbed {
            dir,
            state,
            children: Vec::new(),
            stop_on_drop: false,
        })
    }

    /// Leaves the testbed running after this handle is gone; returns its state directory.
    pub fn detach(mut self) -> PathBuf {
        self.stop_on_drop = false;
        self.dir.clone()
    }

    /// Stops every process (newest first; SIGTERM, then SIGKILL) and removes the state.
    pub fn down(mut self) -> Result<()> {
        self.stop_on_drop = false;
        self.stop_processes()?;
        remove_state_files(&self.dir)
    }

    fn stop_processes(&mut self) -> Result<()> {
        let reversed: Vec<ProcessRecord> = self.state.processes.iter().rev().cloned().collect();
        let left = stop_all(&reversed, &mut self.children, STOP_GRACE);
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::StillRunning(left))
        }
    }

    /// Stops kube-apiserver (SIGTERM, then SIGKILL) and keeps its command line in the state
    /// directory for [`Testbed::start_apiserver`]: for tests of what a client does while the API
    /// server is away. Everything else keeps running.
    pub fn stop_apiserver(&mut self) -> Result<()> {
        let record = self.apiserver()?.clone();
        let cmdline_path = PathBuf::from(format!("/proc/{}/cmdline", record.pid));
        let cmdline = fs::read(&cmdline_path).at(&cmdline_path)?;
        let args: Vec<String> = cmdline
            .split(|byte| *byte == 0)
            .skip(1)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect();
        let saved = self.dir.join(APISERVER_ARGS);
        let json = serde_json::to_string(&args).map_err(|error| Error::BadState {
            path: saved.clone(),
            reason: error.to_string(),
        })?;
        fs::write(&saved, json).at(&saved)?;
        let left = stop_all(
            std::slice::from_ref(&record),
            &mut self.children,
            STOP_GRACE,
        );
        if left.is_empty() {
            Ok(())
        } else {
            Err(Error::StillRunning(left))
        }
    }

    /// Starts kube-apiserver again with the command line [`Testbed::stop_apiserver`] kept, and
    /// waits until it serves `/readyz`.
    pub async fn start_apiserver(&mut self, timeout: Duration) -> Result<()> {
        let record = self.apiserver()?.clone();
        let saved = self.dir.join(APISERVER_ARGS);
        let text = fs::read_to_string(&saved).at(&saved)?;
        let args: Vec<String> = serde_json::from_str(&text).map_err(|error| Error::BadState {
            path: saved.clone(),
            reason: error.to_string(),
        })?;
        let (child, new) = spawn(&record.name, &record.binary, &args, &record.log)?;
        self.children.push(child);
        if let Some(slot) = self
            .state
            .processes
            .iter_mut()
            .find(|p| p.pid == record.pid)
        {
            *slot = new;
        }
        self.save()?;
        let client = self.client().await?;
        let deadline = Instant::now() + timeout;
        loop {
            let ready = match http::Request::get("/readyz").body(Vec::new()) {
                Ok(request) => client
                    .request_text(request)
                    .await
                    .is_ok_and(|body| body.trim() == "ok"),
                Err(_) => false,
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "kube-apiserver /readyz after a restart".to_owned(),
                    timeout,
                    hint: self.apiserver()?.log_tail(20),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn apiserver(&self) -> Result<&ProcessRecord> {
        self.state
            .processes
            .iter()
            .find(|p| p.name == "kube-apiserver")
            .ok_or_else(|| Error::BadState {
                path: self.dir.join("testbed.json"),
                reason: "no kube-apiserver process recorded".to_owned(),
            })
    }

    /// Which processes run.
    pub fn status(&self) -> Status {
        Status {
            state_dir: self.dir.clone(),
            api_server: self.state.api_server.clone(),
            kubeconfig: self.state.kubeconfig.clone(),
            nodes: self.state.nodes.clone(),
            processes: self
                .state
                .processes
                .iter()
                .map(|process| ProcessStatus {
                    alive: process.is_alive(),
                    process: process.clone(),
                })
                .collect(),
        }
    }

    /// A client with the admin kubeconfig.
    pub async fn client(&self) -> Result<kube::Client> {
        client_for(&self.state.kubeconfig).await
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.state.kubeconfig
    }

    /// The API server's URL.
    pub fn api_server(&self) -> &str {
        &self.state.api_server
    }

    /// The fake nodes' names (`node1` is the control plane).
    pub fn nodes(&self) -> &[String] {
        &self.state.nodes
    }

    /// The ports the processes listen on.
    pub fn ports(&self) -> Ports {
        self.state.ports
    }

    /// Every process, in start order.
    pub fn processes(&self) -> &[ProcessRecord] {
        &self.state.processes
    }

    /// The tools the testbed runs (and the tests should use).
    pub fn tools(&self) -> Tools {
        Tools::in_dir(&self.state.tools_dir)
    }

    /// The environment a test run needs: kubeconfig, tools directory, state directory, node count.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (KUBECONFIG_ENV, self.state.kubeconfig.display().to_string()),
            (TOOLS_DIR_ENV, self.state.tools_dir.display().to_string()),
            (STATE_DIR_ENV, self.dir.display().to_string()),
            (NODES_ENV, self.state.nodes.len().to_string()),
        ]
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.stop_on_drop {
            let _ = self.stop_processes();
            let _ = remove_state_files(&self.dir);
        }
    }
}

/// A client for the cluster a kubeconfig file names.
pub async fn client_for(kubeconfig: &Path) -> Result<kube::Client> {
    let bad = |reason: String| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        reason,
    };
    let file = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| bad(e.to_string()))
}

/// Whether a node's Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|condition| condition.type_ == "Ready" && condition.status == "True")
        })
}

/// A fake node like Kubespray's: `node1` carries the control-plane role label (but no taint, so
/// every DaemonSet covers it), the others are plain workers. InternalIPs are 10.0.0.11, .12, ...
/// as in `fixtures::FixtureOptions`. Nodes take their status on create; kwok then keeps it Ready.
fn fake_node(name: &str, index: usize) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/hostname".to_owned(), name.to_owned()),
    ]);
    if index == 0 {
        labels.insert(
            "node-role.kubernetes.io/control-plane".to_owned(),
            String::new(),
        );
        labels.insert(
            "node.kubernetes.io/exclude-from-external-load-balancers".to_owned(),
            String::new(),
        );
    }
    let internal_ip = Ipv4Addr::new(10, 0, 0, 11u8.saturating_add(index as u8));
    let node = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": { "kwok.x-k8s.io/node": "fake" },
        },
        "spec": {},
        "status": {
            "addresses": [
                { "type": "InternalIP", "address": internal_ip.to_string() },
                { "type": "Hostname", "address": name },
            ],
            "allocatable": { "cpu": "16", "memory": "64Gi", "pods": "110" },
            "capacity": { "cpu": "16", "memory": "64Gi", "pods": "110" },
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "kwok fake node",
                "kernelVersion": "6.1.0-kwok",
                "containerRuntimeVersion": "kwok://0",
                "kubeletVersion": "v1.35.4",
                "kubeProxyVersion": "",
                "bootID": "",
                "machineID": "",
                "systemUUID": "",
            },
        },
    });
    serde_json::from_value(node).unwrap_or_default()
}

/// Five distinct free loopback ports, all held open at once while picked so none repeats.
fn free_ports() -> Result<Ports> {
    let listeners = (0..5)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::NoFreePort)?;
    let ports = listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::NoFreePort)?;
    Ok(Ports {
        etcd_client: ports[0],
        etcd_peer: ports[1],
        api_server: ports[2],
        controller_manager: ports[3],
        scheduler: ports[4],
    })
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    std::path::absolute(dir).at(dir)
}

/// Removes what a testbed wrote into `dir` (never anything else), then `dir` if it is empty.
fn remove_state_files(dir: &Path) -> Result<()> {
    for name in ["pki", "etcd", "logs"] {
        let path = dir.join(name);
        match fs::remove_dir_all(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).at(&path);
            }
            _ => {}
        }
    }
    for name in ["testbed.json", "kubeconfig", "kwok.yaml"] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).at(&path);
            }
            _ => {}
        }
    }
    let _ = fs::remove_dir(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_nodes_look_like_kubesprays() {
        let control_plane = fake_node("node1", 0);
        let worker = fake_node("node2", 1);
        let labels = |node: &Node| node.metadata.labels.clone().unwrap_or_default();
        assert!(labels(&control_plane).contains_key("node-role.kubernetes.io/control-plane"));
        assert!(!labels(&worker).contains_key("node-role.kubernetes.io/control-plane"));
        assert_eq!(
            labels(&worker)
                .get("kubernetes.io/hostname")
                .map(String::as_str),
            Some("node2")
        );
        for node in [&control_plane, &worker] {
            let taints = node.spec.as_ref().and_then(|spec| spec.taints.clone());
            assert!(
                taints.unwrap_or_default().is_empty(),
                "no taint hides a node"
            );
        }
        let address = worker
            .status
            .and_then(|status| status.addresses)
            .unwrap_or_default()
            .into_iter()
            .find(|address| address.type_ == "InternalIP")
            .map(|address| address.address);
        assert_eq!(address.as_deref(), Some("10.0.0.12"));
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports().unwrap_or_else(|error| panic!("{error}"));
        let mut all = vec![
            ports.etcd_client,
            ports.etcd_peer,
            ports.api_server,
            ports.controller_manager,
            ports.scheduler,
        ];
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn from_state_names_the_missing_state_and_the_fix() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let error = Testbed::from_state(dir.path())
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("testbed.json missing"), "{error}");
        assert!(error.contains("cargo xtask testbed up"), "{error}");
        fs::write(dir.path().join("testbed.json"), "{ not json")
            .unwrap_or_else(|error| panic!("{error}"));
        let error = Testbed::from_state(dir.path())
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("unreadable testbed state"), "{error}");
    }

    #[test]
    fn removing_state_leaves_foreign_files_alone() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let state = dir.path().join("state");
        fs::create_dir_all(state.join("logs")).unwrap_or_else(|error| panic!("{error}"));
        fs::write(state.join("testbed.json"), "{}").unwrap_or_else(|error| panic!("{error}"));
        fs::write(state.join("notes.txt"), "mine").unwrap_or_else(|error| panic!("{error}"));
        remove_state_files(&state).unwrap_or_else(|error| panic!("{error}"));
        assert!(state.join("notes.txt").exists());
        assert!(!state.join("testbed.json").exists());
        assert!(!state.join("logs").exists());
        fs::remove_file(state.join("notes.txt")).unwrap_or_else(|error| panic!("{error}"));
        remove_state_files(&state).unwrap_or_else(|error| panic!("{error}"));
        assert!(!state.exists(), "an empty state directory goes too");
    }
}
