//! `check`: what runs now (kube-proxy's mode and objects, Cilium's setting), the nodes' kernels
//! and the Services whose behaviour changes hands, read through the API, judged by pure
//! functions over [`State`].

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service};
use kube::api::ListParams;
use kube::{Api, Client};
use serde::Serialize;

use crate::{Error, KUBE_PROXY, NAMESPACE, kube_error};

/// The facts judged.
#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    /// DaemonSet kube-system/kube-proxy exists.
    pub daemon_set: bool,
    /// ConfigMap kube-system/kube-proxy exists.
    pub config_map: bool,
    /// Its `config.conf` `mode:` (`iptables` when empty, as kube-proxy on Linux defaults).
    pub mode: Option<String>,
    /// `kube-proxy-replacement` in cilium-config.
    pub cilium_setting: Option<String>,
    /// `(node, kernel version)`.
    pub kernels: Vec<(String, String)>,
    /// `namespace/name` → what it uses.
    pub services: Vec<ServiceFacts>,
    /// Pod host ports Cilium's replacement ignores (`namespace/pod: hostPort N`): in its NodePort
    /// range, or bound to a loopback `hostIP`.
    pub ignored_host_ports: Vec<String>,
}

/// What one Service uses that matters here.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServiceFacts {
    /// `namespace/name`.
    pub name: String,
    /// `spec.externalIPs` is set.
    pub external_ips: bool,
    /// A port of protocol SCTP.
    pub sctp: bool,
    /// NodePorts.
    pub node_ports: Vec<u16>,
    /// Label `service.kubernetes.io/service-proxy-name`.
    pub proxy_name: Option<String>,
}

/// Reads the facts.
pub async fn collect(client: &Client) -> Result<State, Error> {
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let daemon_set = daemon_sets
        .get_opt(KUBE_PROXY)
        .await
        .map_err(kube_error("reading DaemonSet kube-system/kube-proxy"))?
        .is_some();
    let config = config_maps
        .get_opt(KUBE_PROXY)
        .await
        .map_err(kube_error("reading ConfigMap kube-system/kube-proxy"))?;
    let mode = config
        .as_ref()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("config.conf"))
        .map(|conf| proxy_mode(conf));
    let cilium_setting = config_maps
        .get_opt("cilium-config")
        .await
        .map_err(kube_error("reading ConfigMap kube-system/cilium-config"))?
        .and_then(|c| c.data)
        .and_then(|d| d.get("kube-proxy-replacement").cloned());
    let nodes: Api<Node> = Api::all(client.clone());
    let kernels = nodes
        .list(&ListParams::default())
        .await
        .map_err(kube_error("listing Nodes"))?
        .items
        .into_iter()
        .map(|n| {
            (
                n.metadata.name.unwrap_or_default(),
                n.status
                    .and_then(|s| s.node_info)
                    .map(|i| i.kernel_version)
                    .unwrap_or_default(),
            )
        })
        .collect();
    let services: Api<Service> = Api::all(client.clone());
    let services = services
        .list(&ListParams::default())
        .await
        .map_err(kube_error("listing Services"))?
        .items
        .into_iter()
        .map(|s| {
            let spec = s.spec.unwrap_or_default();
            let ports = spec.ports.unwrap_or_default();
            ServiceFacts {
                name: format!(
                    "{}/{}",
                    s.metadata.namespace.unwrap_or_default(),
                    s.metadata.name.unwrap_or_default()
                ),
                external_ips: spec.external_ips.is_some_and(|ips| !ips.is_empty()),
                sctp: ports.iter().any(|p| p.protocol.as_deref() == Some("SCTP")),
                node_ports: ports
                    .iter()
                    .filter_map(|p| p.node_port.and_then(|n| u16::try_from(n).ok()))
                    .collect(),
                proxy_name: s
                    .metadata
                    .labels
                    .and_then(|l| l.get("service.kubernetes.io/service-proxy-name").cloned()),
            }
        })
        .collect();
    let pods: Api<Pod> = Api::all(client.clone());
    let mut ignored_host_ports = Vec::new();
    for pod in pods
        .list(&ListParams::default())
        .await
        .map_err(kube_error("listing Pods"))?
        .items
    {
        let name = format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        );
        for container in pod.spec.map(|s| s.containers).unwrap_or_default() {
            for port in container.ports.unwrap_or_default() {
                if let Some(host_port) = port.host_port
                    && host_port_ignored(host_port, port.host_ip.as_deref())
                {
                    ignored_host_ports.push(format!("{name}: hostPort {host_port}"));
                }
            }
        }
    }
    Ok(State {
        ignored_host_ports,
        daemon_set,
        config_map: config.is_some(),
        mode,
        cilium_setting,
        kernels,
        services,
    })
}

/// kube-proxy's mode from its `config.conf` (`mode: ""` and none mean iptables on Linux).
pub fn proxy_mode(config_conf: &str) -> String {
    let parsed: Result<serde_json::Value, _> = serde_saphyr::from_str(config_conf);
    let mode = parsed
        .ok()
        .and_then(|v| v.get("mode").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if mode.is_empty() {
        "iptables".to_owned()
    } else {
        mode
    }
}

/// Whether Cilium's replacement ignores a Pod's `hostPort` (its KPR guide, "Limitations": one
/// that overlaps the NodePort range, or a `hostIP` on the loopback address).
pub fn host_port_ignored(host_port: i32, host_ip: Option<&str>) -> bool {
    let in_range = u16::try_from(host_port)
        .is_ok_and(|p| (NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&p));
    let loopback = host_ip.is_some_and(|ip| ip.starts_with("127.") || ip == "::1");
    in_range || loopback
}

/// The cluster's NodePorts.
pub fn node_ports(state: &State) -> BTreeSet<u16> {
    state
        .services
        .iter()
        .flat_map(|s| s.node_ports.iter().copied())
        .collect()
}

/// How an item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Look at it; does not stop `enable`.
    Warn,
    /// Stops `enable`.
    Fail,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Short name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, when not `pass`.
    pub fix: Option<String>,
}

/// Cilium's kube-proxy replacement needs a v4.19.57, v5.1.16, v5.2.0 or newer kernel; v5.3 or
/// newer is recommended (Cilium's "Kubernetes Without kube-proxy" guide).
pub fn kernel_supports_kpr(version: &str) -> Option<bool> {
    let numbers: Vec<u64> = version
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    let (major, minor, patch) = match numbers.as_slice() {
        [a, b, c] => (*a, *b, *c),
        [a, b] => (*a, *b, 0),
        _ => return None,
    };
    Some(match (major, minor) {
        (m, _) if m > 5 => true,
        (5, 0) => false,
        (5, 1) => patch >= 16,
        (5, _) => true,
        (4, 19) => patch >= 57,
        _ => false,
    })
}

/// Cilium's default NodePort range (`node-port-range`).
pub const NODE_PORT_RANGE: (u16, u16) = (30000, 32767);

/// The checks over `state`.
pub fn judge(state: &State) -> Vec<Item> {
    let mut items = Vec::new();
    let item = |name: &str, status, detail: String, fix: Option<&str>| Item {
        name: name.to_owned(),
        status,
        detail,
        fix: fix.map(str::to_owned),
    };
    let kpr_on = state
        .cilium_setting
        .as_deref()
        .is_some_and(cilium_values::replaces_kube_proxy);
    items.push(item(
        "cilium",
        if state.cilium_setting.is_some() {
            Status::Pass
        } else {
            Status::Fail
        },
        match &state.cilium_setting {
            Some(v) => format!(
                "kube-proxy-replacement: {v}{}",
                if kpr_on {
                    " (already replaces kube-proxy)"
                } else {
                    ""
                }
            ),
            None => {
                "ConfigMap kube-system/cilium-config has no kube-proxy-replacement (or is missing)"
                    .to_owned()
            }
        },
        (state.cilium_setting.is_none())
            .then_some("hand Cilium over first: cilium-migrate migrate --apply"),
    ));
    items.push(item(
        "kube-proxy",
        Status::Pass,
        match (state.daemon_set, state.config_map) {
            (false, false) => "no kube-proxy DaemonSet or ConfigMap in kube-system".to_owned(),
            (ds, cm) => format!(
                "DaemonSet {}, ConfigMap {}, mode {}",
                if ds { "present" } else { "absent" },
                if cm { "present" } else { "absent" },
                state.mode.as_deref().unwrap_or("unknown")
            ),
        },
        None,
    ));
    let old: Vec<String> = state
        .kernels
        .iter()
        .filter(|(_, k)| kernel_supports_kpr(k) == Some(false))
        .map(|(n, k)| format!("{n} ({k})"))
        .collect();
    let unknown: Vec<&str> = state
        .kernels
        .iter()
        .filter(|(_, k)| kernel_supports_kpr(k).is_none())
        .map(|(n, _)| n.as_str())
        .collect();
    items.push(item(
        "kernel",
        if !old.is_empty() {
            Status::Fail
        } else if !unknown.is_empty() {
            Status::Warn
        } else {
            Status::Pass
        },
        if !old.is_empty() {
            format!(
                "too old for kube-proxy replacement (v4.19.57, v5.1.16, v5.2.0 or newer): {}",
                old.join(", ")
            )
        } else if !unknown.is_empty() {
            format!("kernel version not reported by {}", unknown.join(", "))
        } else {
            format!("{} nodes on a kernel that supports it", state.kernels.len())
        },
        (!old.is_empty() || !unknown.is_empty())
            .then_some("upgrade those nodes' kernels (v5.3 or newer recommended) before enabling"),
    ));
    let names = |f: &dyn Fn(&ServiceFacts) -> bool| -> Vec<String> {
        state
            .services
            .iter()
            .filter(|s| f(s))
            .map(|s| s.name.clone())
            .collect()
    };
    let sctp = names(&|s| s.sctp);
    items.push(item(
        "services: SCTP",
        if sctp.is_empty() { Status::Pass } else { Status::Warn },
        if sctp.is_empty() { "no SCTP Service ports".to_owned() } else { format!("SCTP ports: {}", sctp.join(", ")) },
        (!sctp.is_empty()).then_some("Cilium's replacement serves SCTP Services only with sctp.enabled: true (beta; its KPR guide lists SCTP as unsupported before that): set it in the release's values first, or keep those Services off SCTP"),
    ));
    let out_of_range = names(&|s| {
        s.node_ports
            .iter()
            .any(|p| *p < NODE_PORT_RANGE.0 || *p > NODE_PORT_RANGE.1)
    });
    items.push(item(
        "services: NodePort range",
        if out_of_range.is_empty() { Status::Pass } else { Status::Warn },
        if out_of_range.is_empty() {
            "every NodePort is within Cilium's default range 30000-32767".to_owned()
        } else {
            format!("NodePorts outside 30000-32767 (the API server's --service-node-port-range differs): {}", out_of_range.join(", "))
        },
        (!out_of_range.is_empty()).then_some("set nodePort.range to the API server's --service-node-port-range in the release's values first"),
    ));
    let proxy_named = names(&|s| s.proxy_name.is_some());
    items.push(item(
        "services: service-proxy-name",
        if proxy_named.is_empty() { Status::Pass } else { Status::Warn },
        if proxy_named.is_empty() {
            "no Service is labelled service.kubernetes.io/service-proxy-name".to_owned()
        } else {
            format!("labelled for another proxy (Cilium leaves them alone unless k8s.serviceProxyName matches): {}", proxy_named.join(", "))
        },
        (!proxy_named.is_empty()).then_some("make sure the proxy named in the label serves them after kube-proxy is gone"),
    ));
    items.push(item(
        "pods: hostPort",
        if state.ignored_host_ports.is_empty() {
            Status::Pass
        } else {
            Status::Warn
        },
        if state.ignored_host_ports.is_empty() {
            "no hostPort in 30000-32767 or on a loopback hostIP".to_owned()
        } else {
            format!(
                "Cilium's replacement ignores these hostPorts (in its NodePort range or on loopback): {}",
                state.ignored_host_ports.join(", ")
            )
        },
        (!state.ignored_host_ports.is_empty()).then_some(
            "move those hostPorts out of 30000-32767 and off loopback (or change nodePort.range) first",
        ),
    ));
    let external = names(&|s| s.external_ips);
    items.push(item(
        "services: externalIPs",
        Status::Pass,
        if external.is_empty() {
            "no Service uses externalIPs".to_owned()
        } else {
            format!("served by Cilium's replacement from now on (externalIPs.enabled follows kubeProxyReplacement): {}", external.join(", "))
        },
        None,
    ));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_against_ciliums_minimums() {
        for (version, ok) in [
            ("4.19.56-generic", Some(false)),
            ("4.19.57", Some(true)),
            ("5.0.21", Some(false)),
            ("5.1.15", Some(false)),
            ("5.1.16", Some(true)),
            ("5.4.0-150-generic", Some(true)),
            ("6.8.0-45-generic", Some(true)),
            ("3.10.0-1160.el7.x86_64", Some(false)),
            ("", None),
        ] {
            assert_eq!(kernel_supports_kpr(version), ok, "{version}");
        }
    }

    #[test]
    fn host_ports_cilium_ignores() {
        assert!(host_port_ignored(30080, None));
        assert!(host_port_ignored(8080, Some("127.0.0.1")));
        assert!(!host_port_ignored(8080, Some("0.0.0.0")));
        assert!(!host_port_ignored(443, None));
    }

    #[test]
    fn modes_as_kubeadm_writes_them() {
        assert_eq!(
            proxy_mode("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: ipvs\n"),
            "ipvs"
        );
        assert_eq!(proxy_mode("mode: \"\"\n"), "iptables");
        assert_eq!(proxy_mode("kind: KubeProxyConfiguration\n"), "iptables");
        assert_eq!(proxy_mode("mode: nftables\n"), "nftables");
    }

    #[test]
    fn services_that_need_attention_warn_and_old_kernels_fail() {
        let state = State {
            cilium_setting: Some("partial".to_owned()),
            kernels: vec![("n1".to_owned(), "4.18.0".to_owned())],
            services: vec![ServiceFacts {
                name: "default/sig".to_owned(),
                sctp: true,
                node_ports: vec![8080],
                ..ServiceFacts::default()
            }],
            ..State::default()
        };
        let items = judge(&state);
        let status = |name: &str| items.iter().find(|i| i.name == name).map(|i| i.status);
        assert_eq!(status("kernel"), Some(Status::Fail));
        assert_eq!(status("services: SCTP"), Some(Status::Warn));
        assert_eq!(status("services: NodePort range"), Some(Status::Warn));
        assert_eq!(status("cilium"), Some(Status::Pass));
    }
}
