//! kube-proxy's own node rules, and nothing else: pure functions from what a node prints
//! (`iptables-save`, `ipvsadm-save -n`, `ip -o addr show dev kube-ipvs0`, `ipset list -n`) to
//! what removes them (an `iptables-restore --noflush` input, argument vectors).
//!
//! The chains are the ones `kube-proxy --cleanup` removes (Kubernetes `pkg/proxy/iptables`
//! `cleanupLeftoversForFamily` and `pkg/proxy/ipvs` `cleanupIptablesLeftovers`): by name, never
//! by a `KUBE` substring, so kubelet's `KUBE-FIREWALL`, `KUBE-KUBELET-CANARY` and
//! `KUBE-MARK-DROP` stay, as does any rule of another chain whose comment mentions KUBE. The
//! common recipe `iptables-save | grep -v KUBE | iptables-restore` removes those too.
//!
//! A rule of a built-in chain that jumps to one of these chains is deleted with the chain (it
//! is kube-proxy's hook, and the chain cannot be deleted while it is referenced). A rule of
//! another user chain that jumps to one is not ours to delete: that chain is kept and
//! reported, with everything it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// kube-proxy's fixed chain names per table (iptables and ipvs modes).
const FIXED_CHAINS: &[(&str, &[&str])] = &[
    (
        "nat",
        &[
            "KUBE-SERVICES",
            "KUBE-NODEPORTS",
            "KUBE-POSTROUTING",
            "KUBE-MARK-MASQ",
            "KUBE-PROXY-CANARY",
            // ipvs mode
            "KUBE-NODE-PORT",
            "KUBE-LOAD-BALANCER",
        ],
    ),
    (
        "filter",
        &[
            "KUBE-SERVICES",
            "KUBE-EXTERNAL-SERVICES",
            "KUBE-FORWARD",
            "KUBE-NODEPORTS",
            "KUBE-PROXY-FIREWALL",
            "KUBE-PROXY-CANARY",
            // ipvs mode
            "KUBE-NODE-PORT",
            "KUBE-SOURCE-RANGES-FIREWALL",
            "KUBE-IPVS-FILTER",
            "KUBE-IPVS-OUT-FILTER",
        ],
    ),
    ("mangle", &["KUBE-PROXY-CANARY"]),
];

/// kube-proxy's per-service chains (`isServiceChainName`, plus the older `KUBE-XLB-`), in nat.
const SERVICE_CHAIN_PREFIXES: &[&str] = &[
    "KUBE-SVC-",
    "KUBE-SVL-",
    "KUBE-SEP-",
    "KUBE-FW-",
    "KUBE-EXT-",
    "KUBE-XLB-",
];

/// Whether `chain` of `table` is one kube-proxy creates and `kube-proxy --cleanup` removes.
pub fn is_kube_proxy_chain(table: &str, chain: &str) -> bool {
    let fixed = FIXED_CHAINS
        .iter()
        .any(|(t, chains)| *t == table && chains.contains(&chain));
    fixed || (table == "nat" && SERVICE_CHAIN_PREFIXES.iter().any(|p| chain.starts_with(p)))
}

/// One table of an `iptables-save` dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Its name (`nat`, `filter`, ...).
    pub name: String,
    /// Chain name → whether it is built in (it has a policy).
    pub chains: BTreeMap<String, bool>,
    /// `(chain, rule spec after "-A CHAIN ")`, in order.
    pub rules: Vec<(String, String)>,
}

/// Parses `iptables-save` output (any tables). Unknown lines are an error naming the line.
pub fn parse_save(text: &str) -> Result<Vec<Table>, String> {
    let mut tables: Vec<Table> = Vec::new();
    let mut current: Option<Table> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let bad = || format!("line {}: unexpected {line:?}", index + 1);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if current.is_some() {
                return Err(bad());
            }
            current = Some(Table {
                name: name.to_owned(),
                ..Table::default()
            });
        } else if line == "COMMIT" {
            tables.push(current.take().ok_or_else(bad)?);
        } else if let Some(rest) = line.strip_prefix(':') {
            let table = current.as_mut().ok_or_else(bad)?;
            let mut words = rest.split_whitespace();
            let name = words.next().ok_or_else(bad)?;
            let policy = words.next().ok_or_else(bad)?;
            table.chains.insert(name.to_owned(), policy != "-");
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let table = current.as_mut().ok_or_else(bad)?;
            let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
            table.rules.push((chain.to_owned(), spec.to_owned()));
        } else {
            return Err(bad());
        }
    }
    if current.is_some() {
        return Err("the dump ends inside a table (no COMMIT)".to_owned());
    }
    Ok(tables)
}

/// The chain a rule spec jumps or goes to (`-j X`, `--jump X`, `-g X`, `--goto X`).
pub fn rule_target(spec: &str) -> Option<&str> {
    let mut words = spec.split_whitespace();
    while let Some(word) = words.next() {
        if matches!(word, "-j" | "--jump" | "-g" | "--goto") {
            return words.next();
        }
    }
    None
}

/// What the cleanup of one table removes and keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableCleanup {
    /// The table.
    pub table: String,
    /// kube-proxy chains flushed and deleted.
    pub chains: Vec<String>,
    /// Rules of built-in chains that jump to them, deleted (`CHAIN spec`).
    pub jumps: Vec<String>,
    /// kube-proxy chains kept, with why (another user chain refers to them).
    pub kept: Vec<String>,
}

/// The cleanup of a whole dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cleanup {
    /// Per table with something of kube-proxy's.
    pub tables: Vec<TableCleanup>,
}

impl Cleanup {
    /// Whether nothing is to be removed.
    pub fn is_empty(&self) -> bool {
        self.tables
            .iter()
            .all(|t| t.chains.is_empty() && t.jumps.is_empty())
    }

    /// Chains removed in all tables.
    pub fn chain_count(&self) -> usize {
        self.tables.iter().map(|t| t.chains.len()).sum()
    }

    /// Chains kept, as `table/chain: why`.
    pub fn kept(&self) -> Vec<String> {
        self.tables
            .iter()
            .flat_map(|t| t.kept.iter().map(move |k| format!("{}/{k}", t.table)))
            .collect()
    }
}

/// The `iptables-restore --noflush` input that removes kube-proxy's chains from `dump` (an
/// `iptables-save` or `ip6tables-save` output) and what it removes. Empty text: nothing to do.
pub fn cleanup_restore_input(dump: &str) -> Result<(String, Cleanup), String> {
    let tables = parse_save(dump)?;
    let mut text = String::new();
    let mut cleanup = Cleanup::default();
    for table in &tables {
        let ours: BTreeSet<&str> = table
            .chains
            .keys()
            .map(String::as_str)
            .filter(|c| !table.chains[*c] && is_kube_proxy_chain(&table.name, c))
            .collect();
        if ours.is_empty() {
            continue;
        }
        // Kept: referenced from a user chain that is not ours, then whatever a kept chain
        // refers to (deleting it would break the kept one).
        let mut kept: BTreeMap<&str, String> = BTreeMap::new();
        for (chain, spec) in &table.rules {
            let foreign_user_chain =
                !ours.contains(chain.as_str()) && table.chains.get(chain) == Some(&false);
            if let Some(target) = rule_target(spec).filter(|t| ours.contains(t))
                && foreign_user_chain
            {
                kept.entry(target)
                    .or_insert_with(|| format!("{target}: chain {chain} jumps to it"));
            }
        }
        loop {
            let more: Vec<(&str, String)> = table
                .rules
                .iter()
                .filter(|(chain, _)| kept.contains_key(chain.as_str()))
                .filter_map(|(chain, spec)| {
                    let target = rule_target(spec).filter(|t| ours.contains(t))?;
                    (!kept.contains_key(target))
                        .then(|| (target, format!("{target}: kept chain {chain} jumps to it")))
                })
                .collect();
            if more.is_empty() {
                break;
            }
            kept.extend(more);
        }
        let removed: Vec<&str> = ours
            .iter()
            .copied()
            .filter(|c| !kept.contains_key(c))
            .collect();
        let jumps: Vec<&(String, String)> = table
            .rules
            .iter()
            .filter(|(chain, spec)| {
                table.chains.get(chain) == Some(&true)
                    && rule_target(spec).is_some_and(|t| removed.contains(&t))
            })
            .collect();
        let entry = TableCleanup {
            table: table.name.clone(),
            chains: removed.iter().map(|c| (*c).to_owned()).collect(),
            jumps: jumps.iter().map(|(c, s)| format!("{c} {s}")).collect(),
            kept: kept.into_values().collect(),
        };
        if !removed.is_empty() {
            let _ = writeln!(text, "*{}", table.name);
            // A chain line under --noflush flushes that chain (its links to others go first).
            for chain in &removed {
                let _ = writeln!(text, ":{chain} - [0:0]");
            }
            for (chain, spec) in &jumps {
                let _ = writeln!(text, "-D {chain} {spec}");
            }
            for chain in &removed {
                let _ = writeln!(text, "-X {chain}");
            }
            let _ = writeln!(text, "COMMIT");
        }
        cleanup.tables.push(entry);
    }
    Ok((text, cleanup))
}

/// kube-proxy's kube-ipvs0 dummy device.
pub const IPVS_DEVICE: &str = "kube-ipvs0";

/// The ipsets kube-proxy's ipvs mode creates (`ipsetInfo`), IPv4 names; IPv6 ones are the same
/// with `KUBE-6-` for `KUBE-`.
const IPVS_SETS: &[&str] = &[
    "KUBE-LOOP-BACK",
    "KUBE-CLUSTER-IP",
    "KUBE-EXTERNAL-IP",
    "KUBE-EXTERNAL-IP-LOCAL",
    "KUBE-LOAD-BALANCER",
    "KUBE-LOAD-BALANCER-FW",
    "KUBE-LOAD-BALANCER-LOCAL",
    "KUBE-LOAD-BALANCER-SOURCE-IP",
    "KUBE-LOAD-BALANCER-SOURCE-CIDR",
    "KUBE-NODE-PORT-TCP",
    "KUBE-NODE-PORT-LOCAL-TCP",
    "KUBE-NODE-PORT-UDP",
    "KUBE-NODE-PORT-LOCAL-UDP",
    "KUBE-NODE-PORT-SCTP-HASH",
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH",
    "KUBE-HEALTH-CHECK-NODE-PORT",
    "KUBE-IPVS-IPS",
];

/// Whether `name` is one of kube-proxy's ipsets.
pub fn is_kube_proxy_ipset(name: &str) -> bool {
    IPVS_SETS.contains(&name)
        || name
            .strip_prefix("KUBE-6-")
            .is_some_and(|rest| IPVS_SETS.contains(&format!("KUBE-{rest}").as_str()))
}

/// The addresses on the kube-ipvs0 device, from `ip -o addr show dev kube-ipvs0`.
pub fn dummy_addresses(ip_addr_output: &str) -> BTreeSet<String> {
    ip_addr_output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            Some(cidr.split('/').next().unwrap_or(cidr).to_owned())
        })
        .collect()
}

/// One IPVS virtual service to delete: `ipvsadm -D <flag> <address>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VirtualService {
    /// `-t`, `-u` or `--sctp-service`.
    pub flag: String,
    /// `10.233.0.1:443`, `[fd00::1]:443`.
    pub address: String,
}

impl VirtualService {
    /// The `ipvsadm` argument vector that deletes it.
    pub fn delete_argv(&self) -> Vec<String> {
        vec![
            "ipvsadm".to_owned(),
            "-D".to_owned(),
            self.flag.clone(),
            self.address.clone(),
        ]
    }
}

/// The virtual services of `ipvsadm-save -n` that are kube-proxy's: at an address bound to
/// kube-ipvs0 (ClusterIPs, external and load-balancer IPs) or at one of the cluster's NodePorts.
/// Others (keepalived's, an operator's) stay: `kube-proxy --cleanup` clears the whole table.
pub fn kube_proxy_virtual_services(
    ipvsadm_save: &str,
    dummy: &BTreeSet<String>,
    node_ports: &BTreeSet<u16>,
) -> Vec<VirtualService> {
    ipvsadm_save
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "-A" {
                return None;
            }
            let flag = words.next()?;
            let flag = match flag {
                "-t" | "--tcp-service" => "-t",
                "-u" | "--udp-service" => "-u",
                "--sctp-service" => "--sctp-service",
                _ => return None,
            };
            let address = words.next()?;
            let (host, port) = address.rsplit_once(':')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().ok()?;
            (dummy.contains(host) || node_ports.contains(&port)).then(|| VirtualService {
                flag: flag.to_owned(),
                address: address.to_owned(),
            })
        })
        .collect()
}

/// kube-proxy's ipsets among the names `ipset list -n` printed.
pub fn kube_proxy_ipsets(ipset_names: &str) -> Vec<String> {
    ipset_names
        .lines()
        .map(str::trim)
        .filter(|n| is_kube_proxy_ipset(n))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from a kube-proxy 1.31 node in iptables mode, with kubelet's chains and an
    /// operator's rules added (one whose comment mentions KUBE).
    const DUMP: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Sun Dec  6 23:09:35 2026
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-IPTABLES-HINT - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A INPUT -j KUBE-FIREWALL
-A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh to KUBE nodes" -j ACCEPT
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-KUBELET-CANARY - [0:0]
:KUBE-MARK-DROP - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-SEP-IT2ZTR26TO4XFPTO - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
:OPERATOR-DNAT - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A PREROUTING -d 192.0.2.10/32 -m comment --comment "KUBE-less operator DNAT" -j OPERATOR-DNAT
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE
-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-IT2ZTR26TO4XFPTO -s 10.0.0.10/32 -m comment --comment "default/kubernetes:https" -j KUBE-MARK-MASQ
-A KUBE-SEP-IT2ZTR26TO4XFPTO -p tcp -m comment --comment "default/kubernetes:https" -m tcp -j DNAT --to-destination 10.0.0.10:6443
-A KUBE-SERVICES -d 10.233.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP" -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-NPX46M4PTMTKRN6Y -m comment --comment "default/kubernetes:https -> 10.0.0.10:6443" -j KUBE-SEP-IT2ZTR26TO4XFPTO
-A OPERATOR-DNAT -p tcp -j DNAT --to-destination 10.0.0.20:80
COMMIT
"#;

    #[test]
    fn only_kube_proxys_chains_and_their_hooks_go() {
        let (text, cleanup) = cleanup_restore_input(DUMP).unwrap_or_else(|e| panic!("{e}"));
        let by_table: BTreeMap<&str, &TableCleanup> = cleanup
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t))
            .collect();
        assert_eq!(by_table["mangle"].chains, ["KUBE-PROXY-CANARY"]);
        assert_eq!(
            by_table["filter"].chains,
            [
                "KUBE-EXTERNAL-SERVICES",
                "KUBE-FORWARD",
                "KUBE-NODEPORTS",
                "KUBE-PROXY-CANARY",
                "KUBE-PROXY-FIREWALL",
                "KUBE-SERVICES"
            ]
        );
        assert_eq!(
            by_table["nat"].chains,
            [
                "KUBE-MARK-MASQ",
                "KUBE-NODEPORTS",
                "KUBE-POSTROUTING",
                "KUBE-PROXY-CANARY",
                "KUBE-SEP-IT2ZTR26TO4XFPTO",
                "KUBE-SERVICES",
                "KUBE-SVC-NPX46M4PTMTKRN6Y"
            ]
        );
        assert_eq!(by_table["filter"].jumps.len(), 9);
        assert_eq!(by_table["nat"].jumps.len(), 3);
        // Kubelet's chains, the operator's chain and rules (one mentions KUBE) are untouched.
        for kept in [
            "KUBE-FIREWALL",
            "KUBE-KUBELET-CANARY",
            "KUBE-MARK-DROP",
            "KUBE-IPTABLES-HINT",
            "OPERATOR-DNAT",
            "ssh to KUBE nodes",
            "KUBE-less operator DNAT",
            "MASQUERADE\n",
        ] {
            assert!(!text.contains(kept), "{kept} is touched:\n{text}");
        }
        assert!(text.contains(
            "-D PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
        ));
        assert!(text.contains(":KUBE-SERVICES - [0:0]\n"));
        assert!(text.contains("-X KUBE-SVC-NPX46M4PTMTKRN6Y\n"));
        assert_eq!(text.matches("COMMIT").count(), 3);
    }

    /// kube-proxy in ipvs mode (Kubespray's default) hooks fewer chains and uses ipsets.
    const IPVS_MODE_DUMP: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-LOAD-BALANCER - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000
-A KUBE-POSTROUTING -m comment --comment "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose" -m set --match-set KUBE-LOOP-BACK dst,dst,src -j MASQUERADE
-A KUBE-SERVICES -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-IPVS-FILTER - [0:0]
:KUBE-IPVS-OUT-FILTER - [0:0]
:KUBE-NODE-PORT - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SOURCE-RANGES-FIREWALL - [0:0]
-A INPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-FILTER
-A INPUT -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check rules" -j KUBE-NODE-PORT
-A INPUT -j KUBE-FIREWALL
-A FORWARD -m comment --comment "kube-proxy firewall rules" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A OUTPUT -m comment --comment "kubernetes ipvs access filter" -j KUBE-IPVS-OUT-FILTER
-A OUTPUT -j KUBE-FIREWALL
-A KUBE-PROXY-FIREWALL -m comment --comment "Kubernetes service load balancer ip + port for load balancer with sourceRange" -m set --match-set KUBE-LOAD-BALANCER-FW dst,dst -j KUBE-SOURCE-RANGES-FIREWALL
-A KUBE-SOURCE-RANGES-FIREWALL -j DROP
COMMIT
"#;

    #[test]
    fn ipvs_modes_chains_go_and_kubelets_stay() {
        let (text, cleanup) =
            cleanup_restore_input(IPVS_MODE_DUMP).unwrap_or_else(|e| panic!("{e}"));
        let chains: Vec<String> = cleanup
            .tables
            .iter()
            .flat_map(|t| t.chains.iter().map(move |c| format!("{}/{c}", t.table)))
            .collect();
        assert_eq!(
            chains,
            [
                "nat/KUBE-LOAD-BALANCER",
                "nat/KUBE-MARK-MASQ",
                "nat/KUBE-NODE-PORT",
                "nat/KUBE-POSTROUTING",
                "nat/KUBE-SERVICES",
                "filter/KUBE-FORWARD",
                "filter/KUBE-IPVS-FILTER",
                "filter/KUBE-IPVS-OUT-FILTER",
                "filter/KUBE-NODE-PORT",
                "filter/KUBE-PROXY-FIREWALL",
                "filter/KUBE-SOURCE-RANGES-FIREWALL"
            ]
        );
        assert!(
            !text.contains("KUBE-FIREWALL "),
            "kubelet's chain is touched:\n{text}"
        );
        assert!(!text.contains("-j KUBE-FIREWALL"), "{text}");
        assert_eq!(text.matches("-D ").count(), 9, "{text}");
    }

    #[test]
    fn a_chain_another_user_chain_jumps_to_is_kept_with_what_it_needs() {
        let dump = "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-AAAA - [0:0]\n:MINE - [0:0]\n-A PREROUTING -j MINE\n-A MINE -j KUBE-SERVICES\n-A KUBE-SERVICES -j KUBE-SVC-AAAA\nCOMMIT\n";
        let (text, cleanup) = cleanup_restore_input(dump).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, "", "nothing removable: {cleanup:?}");
        assert_eq!(
            cleanup.kept(),
            [
                "nat/KUBE-SERVICES: chain MINE jumps to it",
                "nat/KUBE-SVC-AAAA: kept chain KUBE-SERVICES jumps to it"
            ]
        );
    }

    #[test]
    fn a_node_without_kube_proxy_needs_nothing() {
        let dump = "*filter\n:INPUT ACCEPT [0:0]\n:KUBE-FIREWALL - [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n";
        let (text, cleanup) = cleanup_restore_input(dump).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.is_empty() && cleanup.is_empty());
    }

    #[test]
    fn a_malformed_dump_is_refused_with_the_line() {
        let error = cleanup_restore_input("*nat\nbogus\nCOMMIT\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        assert!(cleanup_restore_input("*nat\n:X - [0:0]\n").is_err());
    }

    #[test]
    fn ipvs_services_of_kube_proxy_only() {
        let save = "-A -t 10.233.0.1:443 -s rr\n-a -t 10.233.0.1:443 -r 10.0.0.10:6443 -m -w 1\n-A -u 10.233.0.3:53 -s rr\n-A -t 10.0.0.11:30080 -s rr\n-A -t 192.0.2.50:80 -s wlc\n-A -t [fd00::1]:443 -s rr\n";
        let dummy = dummy_addresses(
            "7: kube-ipvs0    inet 10.233.0.1/32 scope global kube-ipvs0\\       valid_lft forever\n7: kube-ipvs0    inet 10.233.0.3/32 scope global kube-ipvs0\n7: kube-ipvs0    inet6 fd00::1/128 scope global\n",
        );
        let services = kube_proxy_virtual_services(save, &dummy, &BTreeSet::from([30080]));
        let addresses: Vec<&str> = services.iter().map(|s| s.address.as_str()).collect();
        assert_eq!(
            addresses,
            [
                "10.233.0.1:443",
                "10.233.0.3:53",
                "10.0.0.11:30080",
                "[fd00::1]:443"
            ]
        );
        assert_eq!(
            services[1].delete_argv(),
            ["ipvsadm", "-D", "-u", "10.233.0.3:53"]
        );
        assert_eq!(
            kube_proxy_ipsets("KUBE-CLUSTER-IP\nKUBE-6-CLUSTER-IP\nmy-set\nKUBE-NOT-OURS\n"),
            ["KUBE-CLUSTER-IP", "KUBE-6-CLUSTER-IP"]
        );
    }
}
