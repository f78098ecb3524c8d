//! End-to-end: `kube-proxy-replacement enable|rollback` after the hand-over, through the real
//! `cargo xtask` binary.
//!
//! The cluster: Kubespray v2.27.1's objects handed over to the released 1.15.9 chart (as
//! `migrate --apply` does it), plus kube-proxy as Kubespray deploys it. Kubespray runs kubeadm's
//! kube-proxy addon (`kubeadm init phase addon kube-proxy`); the released artefact is kubeadm's
//! own manifest, read from the Go module the testbed builds Kubernetes from
//! (`k8s.io/kubernetes@<testbed version>/cmd/kubeadm/app/phases/addons/proxy/manifests.go`) and
//! filled as kubeadm fills it. Hand-made, because no released artefact holds them: the
//! ServiceAccount the DaemonSet runs as (kubeadm creates it in Go) and the KubeProxyConfiguration
//! (Kubespray's defaults: `mode: ipvs`, the sample's pod subnet).
//!
//! The nodes: kwok nodes have no datapath, so the inventory's nodes are reached over SSH (the
//! real `ssh` and `sshd`), each a network namespace of the test's own holding kube-proxy's,
//! kubelet's and an operator's rules (`NetnsNodes`); the verify check kwok cannot pass is ignored.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use migrate_common::{
    KWOK_IGNORED_CHECKS, Recorder, inventory_copy, live_cilium_config, migrate_options,
    release_status, run_xtask, template_era_testbed, upstream,
};
use migration::flow::{self, Outcome};
use testbed::Testbed;

const TIMEOUT: Duration = Duration::from_secs(180);

/// What the tests share: a handed-over testbed with kube-proxy, and its paths.
struct Cluster {
    testbed: Testbed,
    client: kube::Client,
    helm: PathBuf,
    chart: PathBuf,
    inventory: PathBuf,
    tmp: tempfile::TempDir,
}

impl Cluster {
    fn kubeconfig(&self) -> &Path {
        self.testbed.kubeconfig()
    }

    fn state(&self) -> PathBuf {
        self.tmp.path().join("kpr-state")
    }

    /// `kube-proxy-replacement <command> --kubeconfig K --helm H --state-dir S` + `args`.
    fn xtask(&self, command: &str, args: &[&str]) -> (bool, String, String) {
        self.xtask_with_helm(command, args, &self.helm)
    }

    /// As [`Cluster::xtask`] with another helm binary.
    fn xtask_with_helm(&self, command: &str, args: &[&str], helm: &Path) -> (bool, String, String) {
        let mut argv: Vec<OsString> = vec!["kube-proxy-replacement".into(), command.into()];
        argv.extend([
            "--kubeconfig".into(),
            self.kubeconfig().into(),
            "--helm".into(),
            helm.into(),
            "--state-dir".into(),
            self.state().into(),
        ]);
        if command != "rollback" {
            argv.extend(["--inventory".into(), self.inventory.clone().into()]);
        }
        if command == "enable" {
            argv.extend(["--chart".into(), self.chart.clone().into()]);
        }
        if command != "check" {
            for check in KWOK_IGNORED_CHECKS {
                argv.extend(["--ignore-check".into(), (*check).into()]);
            }
        }
        argv.extend(args.iter().map(OsString::from));
        run_xtask(&argv)
    }

    /// A helm that dies right after `helm upgrade` wrote the release (the run stops there).
    fn dying_helm(&self) -> PathBuf {
        let path = self.tmp.path().join("helm-dies-after-upgrade");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{} \"$@\"; rc=$?\ncase \" $* \" in *\" upgrade \"*) echo 'helm: connection lost' >&2; exit 1;; esac\nexit $rc\n",
                self.helm.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }

    /// `HOST:PORT` of the testbed's API server (its kubeconfig's server).
    fn api_server(&self) -> String {
        let url = self.testbed.api_server();
        url.trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned()
    }

    async fn kube_proxy(&self) -> (Option<DaemonSet>, Option<ConfigMap>) {
        let daemon_sets: Api<DaemonSet> = Api::namespaced(self.client.clone(), "kube-system");
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), "kube-system");
        (
            daemon_sets.get_opt("kube-proxy").await.unwrap(),
            config_maps.get_opt("kube-proxy").await.unwrap(),
        )
    }
}

/// Kubespray v2.27.1's sample handed over to 1.15.9, then kube-proxy from kubeadm's manifest.
async fn handed_over_with_kube_proxy(test: &str) -> Option<Cluster> {
    let upstream = upstream(test)?;
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = upstream.chart("1.15.9").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let client = testbed.client().await.unwrap();
    let helm = testbed.tools().helm;
    let inventory = inventory_copy(&case, tmp.path());
    let handover = migrate_options(
        &testbed,
        &inventory,
        &tmp.path().join("bundle"),
        &helm,
        tmp.path(),
        &chart,
    );
    let mut progress = Recorder::default();
    let outcome = flow::run(&handover, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("hand-over: {e}\n{}", progress.lines.join("\n")));
    assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");

    let manifest = tmp.path().join("kube-proxy.yaml");
    std::fs::write(&manifest, kubeadm_kube_proxy(testbed.api_server())).unwrap();
    let applied = std::process::Command::new(&testbed.tools().kubectl)
        .arg("--kubeconfig")
        .arg(testbed.kubeconfig())
        .args(["apply", "-f"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "applying kube-proxy: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), "kube-system");
    verify::rollout::wait_rolled_out(
        &daemon_sets,
        "kube-proxy",
        verify::rollout::daemon_set_rollout,
        TIMEOUT,
    )
    .await
    .unwrap_or_else(|e| panic!("kube-proxy does not roll out: {e}"));
    Some(Cluster {
        testbed,
        client,
        helm,
        chart,
        inventory,
        tmp,
    })
}

/// kubeadm's kube-proxy ConfigMap and DaemonSet templates, from the Kubernetes module the testbed
/// builds from, filled as kubeadm fills them; and the ServiceAccount kubeadm creates in Go.
fn kubeadm_kube_proxy(api_server: &str) -> String {
    let (modcache, version) = kubernetes_module();
    let source = modcache
        .join(format!("k8s.io/kubernetes@{version}"))
        .join("cmd/kubeadm/app/phases/addons/proxy/manifests.go");
    let text = std::fs::read_to_string(&source).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the testbed's Go module cache: run `cargo xtask testbed build`)",
            source.display()
        )
    });
    let template = |name: &str| -> String {
        let start = text
            .find(&format!("{name} = `"))
            .unwrap_or_else(|| panic!("{}: no {name}", source.display()))
            + name.len()
            + 4;
        let end = start + text[start..].find('`').unwrap();
        text[start..end].to_owned()
    };
    // Kubespray's defaults (kube_proxy_mode: ipvs) and its sample's kube_pods_subnet.
    let proxy_config = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nbindAddress: 0.0.0.0\nclusterCIDR: 10.233.64.0/18\nmode: ipvs\nipvs:\n  strictARP: false\n";
    let indented: String = proxy_config.lines().map(|l| format!("    {l}\n")).collect();
    let fill = |t: String| {
        t.replace("{{ .ProxyConfigMap }}", "kube-proxy")
            .replace("{{ .ProxyConfigMapKey }}", "config.conf")
            .replace("{{ .ControlPlaneEndpoint }}", api_server)
            .replace("{{ .ProxyConfig}}", indented.trim_end())
            .replace(
                "{{ .Image }}",
                &format!("registry.k8s.io/kube-proxy:{version}"),
            )
    };
    let config_map = fill(template("KubeProxyConfigMap19"));
    let daemon_set = fill(template("KubeProxyDaemonSet19"));
    for filled in [&config_map, &daemon_set] {
        assert!(
            !filled.contains("{{"),
            "kubeadm's template has a field this test does not fill:\n{filled}"
        );
    }
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: kube-proxy\n  namespace: kube-system\n---{config_map}---{daemon_set}"
    )
}

/// The Go module cache and the k8s.io/kubernetes version of `testbed/go/k8s/go.mod`.
fn kubernetes_module() -> (PathBuf, String) {
    let root = testbed::tools::workspace_root();
    let go_mod = std::fs::read_to_string(root.join("testbed/go/k8s/go.mod")).unwrap();
    let version = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes v"))
        .map(|v| format!("v{}", v.split_whitespace().next().unwrap_or(v)))
        .expect("testbed/go/k8s/go.mod requires k8s.io/kubernetes");
    let go = ["go", "/usr/local/go/bin/go"]
        .into_iter()
        .find_map(|go| {
            std::process::Command::new(go)
                .args(["env", "GOMODCACHE"])
                .output()
                .ok()
                .filter(|o| o.status.success())
        })
        .expect("go is needed to find the testbed's Go module cache (it builds the testbed)");
    let modcache = PathBuf::from(String::from_utf8_lossy(&go.stdout).trim());
    (modcache, version)
}

fn kube_proxy_remove(inventory: &Path) -> Option<serde_json::Value> {
    let inventory = kubespray_config::Inventory::load(inventory).unwrap();
    inventory
        .vars_files
        .iter()
        .filter_map(|f| f.values.get("kube_proxy_remove").cloned())
        .next_back()
}

/// kube-proxy's rules as a node in iptables mode holds them, beside kubelet's and an operator's
/// (whose comment mentions KUBE).
const NODE_RULES: &str = r#"*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh to KUBE nodes" -j ACCEPT
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -d 192.0.2.10/32 -p tcp -m comment --comment "KUBE-like operator DNAT" -j DNAT --to-destination 10.0.0.20:80
-A KUBE-SERVICES -d 10.233.0.1/32 -p tcp -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
COMMIT
"#;

/// The inventory's nodes over SSH, each a network namespace of the test's own: one sshd per
/// node on 127.0.0.1 whose `ForceCommand` runs every command in that node's namespace, and a
/// client config mapping the inventory's `ansible_host` to it. Removed on drop.
struct NetnsNodes {
    sshds: Vec<std::process::Child>,
    namespaces: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for NetnsNodes {
    fn drop(&mut self) {
        for sshd in &mut self.sshds {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        for ns in &self.namespaces {
            let _ = std::process::Command::new("ip")
                .args(["netns", "delete", ns])
                .status();
        }
    }
}

fn sh(argv: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "`{}`: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl NetnsNodes {
    /// `None` (a recorded skip; a failure under CI) without root, sshd or iptables.
    fn start(test: &str, hosts: &[(&str, &str)]) -> Option<NetnsNodes> {
        let missing = |why: &str| {
            assert!(
                !upstream::in_ci(),
                "{test}: {why} (CI has them: see .ci/run)"
            );
            upstream::record_skip(test, why);
        };
        if !rustix::process::geteuid().is_root() {
            missing("not root: cannot create network namespaces for the nodes");
            return None;
        }
        if !Path::new("/usr/sbin/sshd").exists()
            || std::process::Command::new("iptables-restore")
                .arg("--version")
                .output()
                .is_err()
        {
            missing(
                "sshd or iptables is not installed (apt-get install -y openssh-server iptables)",
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            sh(
                &[
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-f",
                    d.join(key).to_str().unwrap(),
                ],
                None,
            );
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut nodes = NetnsNodes {
            sshds: Vec::new(),
            namespaces: Vec::new(),
            dir,
        };
        let mut client = String::new();
        let mut known = String::new();
        for (index, (name, address)) in hosts.iter().enumerate() {
            let ns = format!("kpr-{}-{index}", std::process::id());
            sh(&["ip", "netns", "add", &ns], None);
            nodes.namespaces.push(ns.clone());
            sh(
                &["ip", "netns", "exec", &ns, "iptables-restore"],
                Some(NODE_RULES),
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let d = nodes.dir.path();
            let config = d.join(format!("sshd_config_{name}"));
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n\
                     ForceCommand ip netns exec {ns} /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
                    hk = d.join("host_key").display(),
                    ak = d.join("authorized_keys").display(),
                ),
            )
            .unwrap();
            let mut sshd = std::process::Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // Ready when it says it listens (it logs to stderr with -e).
            let stderr = sshd.stderr.take().unwrap();
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
            let listening = lines.any(|l| l.is_ok_and(|l| l.contains("Server listening")));
            assert!(listening, "sshd for {name} did not start");
            std::thread::spawn(move || lines.for_each(drop));
            nodes.sshds.push(sshd);
            client.push_str(&format!(
                "Host {address}\n  HostName 127.0.0.1\n  Port {port}\n"
            ));
            known.push_str(&format!("[127.0.0.1]:{port} {host_pub}"));
        }
        let d = nodes.dir.path();
        client.push_str(&format!(
            "Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
            key = d.join("client_key").display(),
            kh = d.join("known_hosts").display(),
        ));
        std::fs::write(d.join("known_hosts"), known).unwrap();
        std::fs::write(d.join("ssh_config"), client).unwrap();
        std::fs::set_permissions(
            d.join("ssh_config"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        Some(nodes)
    }

    fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// Each node's `iptables-save`.
    fn rules(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|ns| sh(&["ip", "netns", "exec", ns, "iptables-save"], None))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_replaces_kube_proxy_and_rollback_restores_it() {
    let Some(cluster) = handed_over_with_kube_proxy(
        "kube_proxy_replacement::enable_replaces_kube_proxy_and_rollback_restores_it",
    )
    .await
    else {
        return;
    };
    let api_server = cluster.api_server();
    // The inventory's nodes over SSH, each a network namespace holding kube-proxy's rules.
    let inventory = kubespray_config::Inventory::load(&cluster.inventory).unwrap();
    let hosts: Vec<(&str, &str)> = inventory
        .hosts
        .iter()
        .filter(|h| h.in_group("k8s_cluster"))
        .map(|h| (h.name.as_str(), h.connect_address()))
        .collect();
    let nodes = NetnsNodes::start(
        "kube_proxy_replacement::enable_replaces_kube_proxy_and_rollback_restores_it (node cleanup)",
        &hosts,
    );
    let ssh_config = nodes.as_ref().map(|n| n.ssh_config().display().to_string());
    let mut apply = vec!["--apply", "--api-server", api_server.as_str()];
    match &ssh_config {
        Some(config) => apply.extend(["--via", "ssh", "--ssh-config", config.as_str()]),
        None => apply.push("--skip-node-cleanup"),
    }
    let kubeconfig = cluster.kubeconfig().to_path_buf();
    let before_release = release_status(&cluster.helm, &kubeconfig).unwrap();
    let before_config = live_cilium_config(&cluster.client).await;
    let before_files = tests::files_under(&cluster.inventory);
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(ds.is_some());
    let before_proxy_data = cm.unwrap().data;
    assert_ne!(
        before_config
            .get("kube-proxy-replacement")
            .map(String::as_str),
        Some("true")
    );

    // The plan changes nothing.
    let (ok, stdout, stderr) = cluster.xtask("enable", &["--api-server", &api_server]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("enable would:"), "{stdout}");
    assert!(stdout.contains("proved:"), "{stdout}");
    assert_eq!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision,
        before_release.revision
    );

    // A run that stops right after its helm upgrade (a helm that dies once the release is
    // written) leaves kube-proxy alone and is resumed, not repeated.
    let dying_helm = cluster.dying_helm();
    let (ok, stdout, stderr) = cluster.xtask_with_helm("enable", &apply, &dying_helm);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("connection lost"), "{stderr}");
    let upgraded = release_status(&cluster.helm, &kubeconfig).unwrap().revision;
    assert_eq!(upgraded, before_release.revision + 1);
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(
        ds.is_some() && cm.is_some(),
        "kube-proxy went before Cilium verified"
    );

    let (ok, stdout, stderr) = cluster.xtask("enable", &apply);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    assert_eq!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision,
        upgraded,
        "the resumed run upgraded again"
    );
    eprintln!("enable --apply:\n{stdout}{stderr}");
    match &nodes {
        Some(nodes) => {
            for (node, rules) in hosts.iter().zip(nodes.rules()) {
                for gone in ["KUBE-SERVICES", "KUBE-SVC-", "KUBE-FORWARD"] {
                    assert!(
                        !rules.contains(gone),
                        "{}: {gone} is left:\n{rules}",
                        node.0
                    );
                }
                for kept in [
                    ":KUBE-FIREWALL",
                    "-A INPUT -j KUBE-FIREWALL",
                    "ssh to KUBE nodes",
                    "KUBE-like operator DNAT",
                ] {
                    assert!(rules.contains(kept), "{}: {kept} went:\n{rules}", node.0);
                }
            }
            assert_eq!(
                stdout.matches("iptables chains").count(),
                hosts.len(),
                "{stdout}"
            );
        }
        None => assert!(
            stderr.contains("--skip-node-cleanup"),
            "the skip is loud:\n{stderr}"
        ),
    }
    let config = live_cilium_config(&cluster.client).await;
    assert_eq!(
        config.get("kube-proxy-replacement").map(String::as_str),
        Some("true")
    );
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(ds.is_none() && cm.is_none(), "kube-proxy is still there");
    assert_eq!(
        kube_proxy_remove(&cluster.inventory),
        Some(serde_json::json!(true))
    );
    let agents: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), "kube-system");
    let agent = serde_json::to_value(agents.get("cilium").await.unwrap()).unwrap();
    let env = agent["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let (host, port) = api_server.rsplit_once(':').unwrap();
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "KUBERNETES_SERVICE_HOST" && e["value"] == host)
            && env
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "KUBERNETES_SERVICE_PORT" && e["value"] == port),
        "the agents do not reach the API server directly: {env}"
    );
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cluster.state().join("journal.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(journal["previous_revision"], before_release.revision);
    for backup in ["daemonset-kube-proxy.json", "configmap-kube-proxy.json"] {
        let path = cluster.state().join("backup").join(backup);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }

    // A second run finds it done and changes nothing.
    let revision = release_status(&cluster.helm, &kubeconfig).unwrap().revision;
    let (ok, stdout, stderr) = cluster.xtask("enable", &apply);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("already enabled"), "{stdout}");
    assert_eq!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision,
        revision
    );

    let (ok, stdout, stderr) = cluster.xtask("rollback", &["--apply"]);
    assert!(ok, "{stdout}\n{stderr}");
    let config = live_cilium_config(&cluster.client).await;
    assert_eq!(
        config.get("kube-proxy-replacement"),
        before_config.get("kube-proxy-replacement")
    );
    assert_eq!(
        config.get("k8s-service-host"),
        before_config.get("k8s-service-host")
    );
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(ds.is_some(), "kube-proxy's DaemonSet is not back");
    assert_eq!(cm.unwrap().data, before_proxy_data);
    let after_files: BTreeMap<PathBuf, Vec<u8>> = tests::files_under(&cluster.inventory);
    assert_eq!(after_files, before_files, "the inventory is not restored");
    assert_eq!(kube_proxy_remove(&cluster.inventory), None);
    let history = helm::Helm::locate(Some(&cluster.helm))
        .unwrap()
        .with_kubeconfig(&kubeconfig)
        .history("cilium", "kube-system")
        .unwrap();
    assert!(
        history
            .last()
            .unwrap()
            .description
            .contains(&format!("Rollback to {}", before_release.revision)),
        "{history:?}"
    );

    // A second rollback finds it done and changes nothing.
    let revision = release_status(&cluster.helm, &kubeconfig).unwrap().revision;
    let (ok, stdout, stderr) = cluster.xtask("rollback", &["--apply"]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("already rolled back"), "{stderr}");
    assert_eq!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision,
        revision
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_endpoint_that_cannot_be_proved_is_refused_with_the_fix() {
    let Some(cluster) = handed_over_with_kube_proxy(
        "kube_proxy_replacement::an_api_server_endpoint_that_cannot_be_proved_is_refused_with_the_fix",
    )
    .await
    else {
        return;
    };
    let kubeconfig = cluster.kubeconfig().to_path_buf();
    let before_release = release_status(&cluster.helm, &kubeconfig).unwrap();
    let before_files = tests::files_under(&cluster.inventory);

    // Kubespray's default wiring (a local nginx on workers): no such proxy runs on the nodes.
    let (ok, stdout, stderr) = cluster.xtask("enable", &["--apply", "--skip-node-cleanup"]);
    assert!(!ok, "{stdout}\n{stderr}");
    for needle in [
        "cannot prove",
        "nginx-proxy",
        "--api-server HOST:PORT",
        "Nothing was changed",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    // `check` says the same, read-only.
    let (ok, stdout, stderr) = cluster.xtask("check", &[]);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("NOT PROVED"), "{stdout}");

    // An address nothing answers on (TEST-NET-1) is refused too.
    let (ok, stdout, stderr) = cluster.xtask(
        "enable",
        &[
            "--apply",
            "--skip-node-cleanup",
            "--api-server",
            "192.0.2.1:6443",
        ],
    );
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("192.0.2.1:6443") && stderr.contains("cannot prove"),
        "{stderr}"
    );

    // Nothing changed.
    assert_eq!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision,
        before_release.revision
    );
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(ds.is_some() && cm.is_some());
    assert_eq!(tests::files_under(&cluster.inventory), before_files);
    assert!(!cluster.state().join("journal.json").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_enable_that_stopped_during_its_helm_upgrade_rolls_back() {
    let Some(cluster) = handed_over_with_kube_proxy(
        "kube_proxy_replacement::an_enable_that_stopped_during_its_helm_upgrade_rolls_back",
    )
    .await
    else {
        return;
    };
    let api_server = cluster.api_server();
    let kubeconfig = cluster.kubeconfig().to_path_buf();
    let before_release = release_status(&cluster.helm, &kubeconfig).unwrap();
    let before_config = live_cilium_config(&cluster.client).await;
    let before_files = tests::files_under(&cluster.inventory);

    let (ok, stdout, stderr) = cluster.xtask_with_helm(
        "enable",
        &[
            "--apply",
            "--api-server",
            &api_server,
            "--skip-node-cleanup",
        ],
        &cluster.dying_helm(),
    );
    assert!(!ok, "{stdout}\n{stderr}");
    assert_eq!(
        live_cilium_config(&cluster.client)
            .await
            .get("kube-proxy-replacement")
            .map(String::as_str),
        Some("true"),
        "helm wrote the release before it died"
    );

    let (ok, stdout, stderr) = cluster.xtask("rollback", &["--apply"]);
    assert!(ok, "{stdout}\n{stderr}");
    let config = live_cilium_config(&cluster.client).await;
    assert_eq!(
        config.get("kube-proxy-replacement"),
        before_config.get("kube-proxy-replacement")
    );
    assert!(
        release_status(&cluster.helm, &kubeconfig).unwrap().revision > before_release.revision,
        "no helm rollback ran"
    );
    let (ds, cm) = cluster.kube_proxy().await;
    assert!(ds.is_some() && cm.is_some());
    assert_eq!(tests::files_under(&cluster.inventory), before_files);
}
