//! The node cleanup for real, in a network namespace of the test's own: kube-proxy-style chains
//! in nat, filter and mangle (both iptables back ends, and IPv6), kubelet's chains, an
//! operator's rules (one whose comment mentions KUBE) and an nftables table of kube-proxy's and
//! one of the operator's; after `clean_node` through `NodeAccess::Local` only kube-proxy's are
//! gone. IPVS (virtual services, kube-ipvs0) where the kernel has it; a recorded skip where not.
//!
//! The same over SSH (`cni_fs::Ssh`, a real sshd in that namespace): the rules reach
//! `iptables-restore` on its standard input through ssh.
//!
//! The outer test re-runs this test binary under `unshare -n` (a new network namespace, so the
//! machine's own rules are never touched) for the inner one, which refuses to run elsewhere.

// What ran inside the namespace (the cleanup summary, a skip) is printed for the log.
#![allow(clippy::print_stderr)]

use std::collections::BTreeSet;
use std::process::Command;

use kube_proxy_replacement::NodeAccess;
use kube_proxy_replacement::node::clean_node;

#[path = "../../cni-fs/tests/support/sshd.rs"]
mod sshd;

const INNER_ENV: &str = "KUBE_PROXY_REPLACEMENT_NETNS_TEST";
/// Set to require IPVS (ip_vs and dummy devices): a machine that has them must not skip.
const REQUIRE_IPVS_ENV: &str = "CILIUM_MIGRATE_REQUIRE_IPVS";

/// kube-proxy 1.31's iptables-mode chains (trimmed to the matches every kernel has), kubelet's,
/// and an operator's.
const DUMP: &str = r#"*mangle
:PREROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
-A PREROUTING -p tcp -m tcp --dport 9999 -m comment --comment "operator mark" -j MARK --set-xmark 0x1/0x1
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh to KUBE nodes" -j ACCEPT
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-MARK-DROP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-IT2ZTR26TO4XFPTO - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:OPERATOR-DNAT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -d 192.0.2.10/32 -m comment --comment "KUBE-like operator DNAT" -j OPERATOR-DNAT
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.0.0.0/8 -m comment --comment "KUBE-like operator SNAT" -j MASQUERADE
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-IT2ZTR26TO4XFPTO -s 10.0.0.10/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-IT2ZTR26TO4XFPTO -p tcp -m tcp -j DNAT --to-destination 10.0.0.10:6443
-A KUBE-SERVICES -d 10.233.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SERVICES -j KUBE-NODEPORTS
-A KUBE-SVC-NPX46M4PTMTKRN6Y -j KUBE-SEP-IT2ZTR26TO4XFPTO
-A OPERATOR-DNAT -p tcp -j DNAT --to-destination 10.0.0.20:80
COMMIT
"#;

/// What must be left of [`DUMP`]: every chain and rule that is not kube-proxy's, as
/// `table: line`.
const LEFT: &[&str] = &[
    "mangle: :KUBE-KUBELET-CANARY",
    "mangle: -A PREROUTING -p tcp -m tcp --dport 9999 -m comment --comment \"operator mark\" -j MARK --set-xmark 0x1/0x1",
    "filter: :KUBE-FIREWALL",
    "filter: -A INPUT -j KUBE-FIREWALL",
    "filter: -A INPUT -p tcp -m tcp --dport 22 -m comment --comment \"ssh to KUBE nodes\" -j ACCEPT",
    "filter: -A OUTPUT -j KUBE-FIREWALL",
    "filter: -A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment \"block incoming localnet connections\" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    "nat: :KUBE-MARK-DROP",
    "nat: :OPERATOR-DNAT",
    "nat: -A PREROUTING -d 192.0.2.10/32 -m comment --comment \"KUBE-like operator DNAT\" -j OPERATOR-DNAT",
    "nat: -A POSTROUTING -s 10.0.0.0/8 -m comment --comment \"KUBE-like operator SNAT\" -j MASQUERADE",
    "nat: -A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000",
    "nat: -A OPERATOR-DNAT -p tcp -j DNAT --to-destination 10.0.0.20:80",
];

const DUMP6: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:MINE6 - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n-A PREROUTING -d fd00::10/128 -j MINE6\n-A MINE6 -j RETURN\nCOMMIT\n";
const LEFT6: &[&str] = &[
    "nat: :MINE6",
    "nat: -A PREROUTING -d fd00::10/128 -j MINE6",
    "nat: -A MINE6 -j RETURN",
];

fn in_ci() -> bool {
    upstream::in_ci()
}

/// A capability is missing: under CI a failure, elsewhere a recorded skip.
fn missing(test: &str, why: &str) {
    assert!(
        !in_ci(),
        "{test}: {why} (CI runs as root with iptables installed: see .ci/run)"
    );
    upstream::record_skip(test, why);
}

fn run(argv: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    if let Some(text) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]))
}

fn must(argv: &[&str], stdin: Option<&str>) -> String {
    let out = run(argv, stdin);
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        argv.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `table: line` for every chain declaration (name only) and rule of a dump.
fn lines(dump: &str) -> BTreeSet<String> {
    let mut table = String::new();
    let mut out = BTreeSet::new();
    for line in dump.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_owned();
        } else if let Some(chain) = line.strip_prefix(':') {
            let name = chain.split_whitespace().next().unwrap_or_default();
            // Built-in chains have a policy; only user chains are asserted.
            if chain.split_whitespace().nth(1) == Some("-") {
                out.insert(format!("{table}: :{name}"));
            }
        } else if line.starts_with("-A ") {
            out.insert(format!("{table}: {line}"));
        }
    }
    out
}

/// Root, `unshare` and iptables, else a recorded skip (a failure under CI).
fn can_run(test: &str) -> bool {
    if !rustix::process::geteuid().is_root() {
        missing(test, "not root: cannot create a network namespace");
        return false;
    }
    for tool in [
        "unshare",
        "iptables-restore",
        "iptables-save",
        "ip6tables-restore",
    ] {
        if Command::new(tool).arg("--version").output().is_err() {
            missing(
                test,
                &format!("{tool} is not installed (apt-get install -y iptables util-linux)"),
            );
            return false;
        }
    }
    true
}

/// Runs the ignored test `inner` of this binary in a new network namespace and checks it passed.
fn in_new_network_namespace(inner: &str) {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(&exe)
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INNER_ENV, "1")
        .output()
        .unwrap_or_else(|e| panic!("unshare: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "inside the namespace:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the inner test did not run:\n{stdout}\n{stderr}"
    );
    // The skip of IPVS inside is recorded by the inner test; say it here too.
    for line in stderr
        .lines()
        .filter(|l| l.starts_with("SKIP ") || l.contains("iptables chains"))
    {
        eprintln!("{line}");
    }
}

#[test]
fn kube_proxys_rules_go_and_nothing_else_in_a_network_namespace() {
    if can_run("kube_proxys_rules_go_and_nothing_else_in_a_network_namespace") {
        in_new_network_namespace("inner_cleanup_local");
    }
}

#[test]
fn kube_proxys_rules_go_over_ssh_with_the_rules_on_stdin() {
    const TEST: &str = "kube_proxys_rules_go_over_ssh_with_the_rules_on_stdin";
    if !can_run(TEST) {
        return;
    }
    if !std::path::Path::new("/usr/sbin/sshd").exists() {
        return missing(
            TEST,
            "/usr/sbin/sshd is missing (apt-get install -y openssh-server)",
        );
    }
    in_new_network_namespace("inner_cleanup_over_ssh");
}

#[test]
#[ignore = "changes this network namespace's rules: run by kube_proxys_rules_go_and_nothing_else_in_a_network_namespace under unshare -n"]
fn inner_cleanup_local() {
    clean_this_namespace(&NodeAccess::Local, &cni_fs::Node::named("netns"));
}

#[test]
#[ignore = "changes this network namespace's rules: run by kube_proxys_rules_go_over_ssh_with_the_rules_on_stdin under unshare -n"]
fn inner_cleanup_over_ssh() {
    in_this_namespace_only();
    // sshd listens on this namespace's loopback, so what it runs changes this namespace.
    must(&["ip", "link", "set", "lo", "up"], None);
    let sshd = sshd::Sshd::start();
    // A cluster's worth of service chains: the restore input (about 160 KiB) is far more than a
    // pipe holds, so it must stream through ssh whole.
    let mut many = String::from("*nat\n");
    for i in 0..4000 {
        many.push_str(&format!(":KUBE-SEP-T{i:015} - [0:0]\n"));
    }
    for i in 0..4000 {
        many.push_str(&format!("-A KUBE-SEP-T{i:015} -j KUBE-MARK-MASQ\n"));
    }
    many.push_str("COMMIT\n");
    clean_this_namespace_with(&NodeAccess::Ssh(sshd.ssh(false)), &sshd.node(), Some(&many));
}

fn in_this_namespace_only() {
    assert_eq!(
        std::env::var(INNER_ENV).as_deref(),
        Ok("1"),
        "this test changes the network namespace's rules; it runs only inside the one its outer test creates"
    );
}

/// Loads kube-proxy's and others' rules into this namespace, cleans them through `access`, and
/// checks that only kube-proxy's went.
fn clean_this_namespace(access: &NodeAccess, node: &cni_fs::Node) {
    clean_this_namespace_with(access, node, None);
}

/// As [`clean_this_namespace`], with `more` kube-proxy rules loaded (noflush) after the others.
fn clean_this_namespace_with(access: &NodeAccess, node: &cni_fs::Node, more: Option<&str>) {
    in_this_namespace_only();
    // Both back ends: kube-proxy's image may have written through either.
    must(&["iptables-restore"], Some(DUMP));
    let legacy = Command::new("iptables-legacy-restore")
        .arg("--version")
        .output()
        .is_ok();
    if legacy {
        must(&["iptables-legacy-restore"], Some(DUMP));
    }
    must(&["ip6tables-restore"], Some(DUMP6));
    if let Some(more) = more {
        must(&["iptables-restore", "--noflush"], Some(more));
    }
    let nft = Command::new("nft").arg("--version").output().is_ok();
    if nft {
        must(&["nft", "add", "table", "ip", "kube-proxy"], None);
        must(&["nft", "add", "table", "ip", "operator"], None);
    }
    let ipvs = ipvs_setup();
    // ipvs mode's sets, one referenced by a kube-proxy rule (destroyable only after it goes),
    // and an operator's.
    let ipset = Command::new("ipset").arg("--version").output().is_ok();
    if ipset {
        must(
            &["ipset", "create", "KUBE-CLUSTER-IP", "hash:ip,port"],
            None,
        );
        must(&["ipset", "create", "operator-set", "hash:ip"], None);
        must(
            &[
                "iptables",
                "-t",
                "nat",
                "-A",
                "KUBE-SERVICES",
                "-m",
                "set",
                "--match-set",
                "KUBE-CLUSTER-IP",
                "dst,dst",
                "-j",
                "KUBE-MARK-MASQ",
            ],
            None,
        );
    } else {
        missing(
            "kube_proxys_rules_go_and_nothing_else_in_a_network_namespace (ipset)",
            "ipset is not installed (apt-get install -y ipset)",
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let done = runtime
        .block_on(clean_node(access, node, &BTreeSet::from([30080])))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{}", done.summary());

    let want: BTreeSet<String> = LEFT.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        lines(&must(&["iptables-save"], None)),
        want,
        "iptables (default back end)"
    );
    if legacy {
        assert_eq!(
            lines(&must(&["iptables-legacy-save"], None)),
            want,
            "iptables-legacy"
        );
    }
    let want6: BTreeSet<String> = LEFT6.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(lines(&must(&["ip6tables-save"], None)), want6, "ip6tables");
    assert!(done.kept.is_empty(), "{:?}", done.kept);
    if nft {
        let tables = must(&["nft", "list", "tables"], None);
        assert!(!tables.contains("table ip kube-proxy"), "{tables}");
        assert!(tables.contains("table ip operator"), "{tables}");
        assert_eq!(done.nft_tables, ["ip kube-proxy"]);
    }
    if ipset {
        assert_eq!(must(&["ipset", "list", "-n"], None).trim(), "operator-set");
        assert_eq!(done.ipsets, ["KUBE-CLUSTER-IP"]);
    }
    if ipvs {
        let left = must(&["ipvsadm-save", "-n"], None);
        assert!(
            left.contains("192.0.2.50:80"),
            "the operator's virtual service went:\n{left}"
        );
        assert!(!left.contains("10.233.0.1:443"), "{left}");
        assert!(!left.contains(":30080"), "{left}");
        assert!(done.ipvs_device);
        assert!(
            !run(&["ip", "link", "show", "kube-ipvs0"], None)
                .status
                .success()
        );
    }
}

/// kube-proxy's IPVS objects (kube-ipvs0 with a ClusterIP, a ClusterIP and a NodePort virtual
/// service) and an operator's virtual service; false (after a recorded skip) when this kernel
/// has no IPVS or dummy devices.
fn ipvs_setup() -> bool {
    const TEST: &str = "kube_proxys_rules_go_and_nothing_else_in_a_network_namespace (IPVS)";
    let skip = |why: String| {
        assert!(
            std::env::var_os(REQUIRE_IPVS_ENV).is_none(),
            "{TEST}: {why} ({REQUIRE_IPVS_ENV} is set)"
        );
        upstream::record_skip(TEST, &why);
        false
    };
    if Command::new("ipvsadm").arg("--version").output().is_err() {
        return skip("ipvsadm is not installed (apt-get install -y ipvsadm)".to_owned());
    }
    let device = run(&["ip", "link", "add", "kube-ipvs0", "type", "dummy"], None);
    if !device.status.success() {
        return skip(format!(
            "this kernel has no dummy network devices: {}",
            String::from_utf8_lossy(&device.stderr).trim()
        ));
    }
    let service = run(&["ipvsadm", "-A", "-t", "10.233.0.1:443", "-s", "rr"], None);
    if !service.status.success() {
        return skip(format!(
            "this kernel has no IPVS (module ip_vs): {}",
            String::from_utf8_lossy(&service.stderr).trim()
        ));
    }
    must(
        &["ip", "addr", "add", "10.233.0.1/32", "dev", "kube-ipvs0"],
        None,
    );
    must(
        &[
            "ipvsadm",
            "-a",
            "-t",
            "10.233.0.1:443",
            "-r",
            "10.0.0.10:6443",
            "-m",
        ],
        None,
    );
    must(
        &["ipvsadm", "-A", "-t", "10.0.0.11:30080", "-s", "rr"],
        None,
    );
    must(&["ipvsadm", "-A", "-t", "192.0.2.50:80", "-s", "wlc"], None);
    true
}
