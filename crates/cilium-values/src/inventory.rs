//! The inventory side: resolved Kubespray variables, and the `cilium-config` Kubespray would render
//! from them (its v2.27 template logic, which the Helm era keeps for the keys the chart carries).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::Error;

/// One resolved inventory variable and where its value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryVar {
    /// The effective value (role defaults applied, plain `{{ var }}` references resolved).
    pub value: Json,
    /// A human origin such as `group_vars/k8s_cluster/k8s-net-cilium.yml: cilium_enable_hubble`
    /// or `Kubespray v2.27 default`.
    pub origin: String,
}

impl InventoryVar {
    /// A variable with its origin.
    pub fn new(value: Json, origin: impl Into<String>) -> Self {
        Self {
            value,
            origin: origin.into(),
        }
    }
}

/// The resolved `cilium_*` and cluster variables, by name.
pub type InventoryVars = BTreeMap<String, InventoryVar>;

/// One `cilium-config` key as Kubespray renders it, with the variable behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewEntry {
    /// The rendered value (Ansible prints booleans as `True`/`False`).
    pub value: String,
    /// The variable that decides it.
    pub variable: String,
    /// Where that variable was set.
    pub origin: String,
}

/// The `cilium-config` Kubespray would render from an inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubesprayView {
    /// Keys Kubespray renders, with their values.
    pub keys: BTreeMap<String, ViewEntry>,
    /// Keys Kubespray would not render because a known variable switches them off (key -> variable origin).
    pub absent: BTreeMap<String, ViewEntry>,
}

impl KubesprayView {
    fn put(&mut self, key: &str, value: impl Into<String>, var: &str, origin: &str) {
        self.keys.insert(
            key.to_owned(),
            ViewEntry {
                value: value.into(),
                variable: var.to_owned(),
                origin: origin.to_owned(),
            },
        );
    }

    fn off(&mut self, keys: &[&str], var: &str, origin: &str) {
        for key in keys {
            self.absent.insert(
                (*key).to_owned(),
                ViewEntry {
                    value: String::new(),
                    variable: var.to_owned(),
                    origin: origin.to_owned(),
                },
            );
        }
    }
}

/// Hubble keys the template renders only when hubble is on.
const HUBBLE_KEYS: &[&str] = &[
    "enable-hubble",
    "hubble-listen-address",
    "hubble-metrics-server",
    "hubble-metrics",
    "hubble-disable-tls",
    "hubble-tls-cert-file",
    "hubble-tls-key-file",
    "hubble-tls-client-ca-files",
];
const PROMETHEUS_KEYS: &[&str] = &[
    "prometheus-serve-addr",
    "operator-prometheus-serve-addr",
    "enable-metrics",
];
const ETCD_KEYS: &[&str] = &["etcd-config", "kvstore", "kvstore-opt"];
const IPSEC_KEYS: &[&str] = &["enable-ipsec", "ipsec-key-file", "encrypt-node"];
const WIREGUARD_KEYS: &[&str] = &["enable-wireguard", "enable-wireguard-userspace-fallback"];

/// Kubespray's hubble TLS files inside the agent (the chart uses the same paths).
pub(crate) const HUBBLE_TLS_CERT: &str = "/var/lib/cilium/tls/hubble/server.crt";
pub(crate) const HUBBLE_TLS_KEY: &str = "/var/lib/cilium/tls/hubble/server.key";
pub(crate) const HUBBLE_TLS_CA: &str = "/var/lib/cilium/tls/hubble/client-ca.crt";

/// Render the `cilium-config` Kubespray's template (v2.27.1, Cilium ≥ 1.14) makes from these
/// variables. A key whose variables are missing is left out: the view only states what it knows.
pub fn kubespray_config_view(vars: &InventoryVars) -> Result<KubesprayView, Error> {
    let mut view = KubesprayView::default();
    let r = Reader { vars };

    if let Some((mode, o)) = r.string("cilium_identity_allocation_mode")? {
        view.put(
            "identity-allocation-mode",
            &mode,
            "cilium_identity_allocation_mode",
            o,
        );
        if mode == "kvstore" {
            view.put("kvstore", "etcd", "cilium_identity_allocation_mode", o);
            view.put(
                "kvstore-opt",
                r#"{"etcd.config": "/var/lib/etcd-config/etcd.config"}"#,
                "cilium_identity_allocation_mode",
                o,
            );
            if let Some((addresses, ao)) = r.string("etcd_access_addresses")? {
                let dir = r
                    .string("cilium_cert_dir")?
                    .map(|(d, _)| d)
                    .unwrap_or_else(|| "/etc/cilium/certs".to_owned());
                let mut text = String::from("---\nendpoints:\n");
                for endpoint in addresses
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                {
                    text.push_str(&format!("  - {endpoint}\n"));
                }
                text.push_str(&format!(
                    "ca-file: \"{dir}/ca_cert.crt\"\nkey-file: \"{dir}/key.pem\"\ncert-file: \"{dir}/cert.crt\""
                ));
                view.put("etcd-config", text, "etcd_access_addresses", ao);
            }
        } else {
            view.off(ETCD_KEYS, "cilium_identity_allocation_mode", o);
        }
    }
    r.capitalised(&mut view, "debug", "cilium_debug")?;
    r.capitalised(&mut view, "enable-ipv4", "cilium_enable_ipv4")?;
    let ipv6 = r.capitalised(&mut view, "enable-ipv6", "cilium_enable_ipv6")?;

    if let Some((hubble, o)) = r.boolean("cilium_enable_hubble")? {
        if hubble {
            view.put("enable-hubble", "true", "cilium_enable_hubble", o);
            view.put("hubble-listen-address", ":4244", "cilium_enable_hubble", o);
            match r.boolean("cilium_enable_hubble_metrics")? {
                Some((true, mo)) => {
                    let port = r
                        .string("cilium_hubble_scrape_port")?
                        .map(|(p, _)| p)
                        .unwrap_or_else(|| "9965".to_owned());
                    view.put(
                        "hubble-metrics-server",
                        format!(":{port}"),
                        "cilium_enable_hubble_metrics",
                        mo,
                    );
                    if let Some((metrics, lo)) = r.list("cilium_hubble_metrics")? {
                        view.put(
                            "hubble-metrics",
                            metrics.join(" "),
                            "cilium_hubble_metrics",
                            lo,
                        );
                    }
                }
                Some((false, mo)) => view.off(
                    &["hubble-metrics-server", "hubble-metrics"],
                    "cilium_enable_hubble_metrics",
                    mo,
                ),
                None => {}
            }
            match r.boolean("cilium_hubble_install")? {
                Some((true, io)) => {
                    let tls = r.boolean("cilium_hubble_tls_generate")?;
                    let (generate, to) = tls.unwrap_or((false, io));
                    view.put(
                        "hubble-disable-tls",
                        if generate { "false" } else { "true" },
                        "cilium_hubble_tls_generate",
                        to,
                    );
                    view.put(
                        "hubble-tls-cert-file",
                        HUBBLE_TLS_CERT,
                        "cilium_hubble_install",
                        io,
                    );
                    view.put(
                        "hubble-tls-key-file",
                        HUBBLE_TLS_KEY,
                        "cilium_hubble_install",
                        io,
                    );
                    view.put(
                        "hubble-tls-client-ca-files",
                        HUBBLE_TLS_CA,
                        "cilium_hubble_install",
                        io,
                    );
                }
                Some((false, io)) => view.off(&HUBBLE_KEYS[4..], "cilium_hubble_install", io),
                None => {}
            }
            if let Some((v, o)) = r.string("cilium_hubble_event_buffer_capacity")? {
                view.put(
                    "hubble-event-buffer-capacity",
                    v,
                    "cilium_hubble_event_buffer_capacity",
                    o,
                );
            }
            if let Some((v, o)) = r.string("cilium_hubble_event_queue_size")? {
                view.put(
                    "hubble-event-queue-size",
                    v,
                    "cilium_hubble_event_queue_size",
                    o,
                );
            }
        } else {
            view.off(HUBBLE_KEYS, "cilium_enable_hubble", o);
        }
    }

    // Hard-coded by the v2.27 template, with no variable behind them.
    const TEMPLATE: &str = "Kubespray v2.27 template cilium/config.yml.j2 (hard-coded)";
    view.put("clean-cilium-state", "false", "", TEMPLATE);
    view.put("clean-cilium-bpf-state", "false", "", TEMPLATE);
    view.put("custom-cni-conf", "false", "", TEMPLATE);
    view.put(
        "write-cni-conf-when-ready",
        "/host/etc/cni/net.d/05-cilium.conflist",
        "(template)",
        TEMPLATE,
    );
    view.put("bpf-ct-global-tcp-max", "524288", "", TEMPLATE);
    view.put("bpf-ct-global-any-max", "262144", "", TEMPLATE);
    view.put(
        "sidecar-istio-proxy-image",
        "cilium/istio_proxy",
        "(template)",
        TEMPLATE,
    );

    r.capitalised(&mut view, "cni-exclusive", "cilium_cni_exclusive")?;
    r.verbatim(&mut view, "cni-log-file", "cilium_cni_log_file")?;

    if let Some((prometheus, o)) = r.boolean("cilium_enable_prometheus")? {
        if prometheus {
            let agent = r
                .string("cilium_agent_scrape_port")?
                .map(|(p, _)| p)
                .unwrap_or_else(|| "9962".to_owned());
            let operator = r
                .string("cilium_operator_scrape_port")?
                .map(|(p, _)| p)
                .unwrap_or_else(|| "9963".to_owned());
            view.put(
                "prometheus-serve-addr",
                format!(":{agent}"),
                "cilium_enable_prometheus",
                o,
            );
            view.put(
                "operator-prometheus-serve-addr",
                format!(":{operator}"),
                "cilium_enable_prometheus",
                o,
            );
            view.put("enable-metrics", "true", "cilium_enable_prometheus", o);
        } else {
            view.off(PROMETHEUS_KEYS, "cilium_enable_prometheus", o);
        }
    }
    r.verbatim(
        &mut view,
        "monitor-aggregation",
        "cilium_monitor_aggregation",
    )?;
    r.capitalised(
        &mut view,
        "preallocate-bpf-maps",
        "cilium_preallocate_bpf_maps",
    )?;

    if let Some((mode, o)) = r.string("cilium_tunnel_mode")? {
        if mode == "disabled" {
            view.put("routing-mode", "native", "cilium_tunnel_mode", o);
            view.off(&["tunnel-protocol"], "cilium_tunnel_mode", o);
        } else {
            view.put("routing-mode", "tunnel", "cilium_tunnel_mode", o);
            view.put("tunnel-protocol", mode, "cilium_tunnel_mode", o);
        }
    }
    r.verbatim(&mut view, "bpf-lb-mode", "cilium_loadbalancer_mode")?;
    r.capitalised(
        &mut view,
        "enable-l2-announcements",
        "cilium_l2announcements",
    )?;
    r.capitalised(
        &mut view,
        "enable-host-firewall",
        "cilium_enable_host_firewall",
    )?;
    r.capitalised(&mut view, "policy-audit-mode", "cilium_policy_audit_mode")?;
    r.verbatim(&mut view, "cluster-name", "cilium_cluster_name")?;
    if r.vars
        .get("cilium_cluster_id")
        .is_some_and(|v| !v.value.is_null())
    {
        r.verbatim(&mut view, "cluster-id", "cilium_cluster_id")?;
    }
    r.verbatim(
        &mut view,
        "kube-proxy-replacement",
        "cilium_kube_proxy_replacement",
    )?;
    r.capitalised(
        &mut view,
        "auto-direct-node-routes",
        "cilium_auto_direct_node_routes",
    )?;
    for (key, var) in [
        ("ipv4-native-routing-cidr", "cilium_native_routing_cidr"),
        (
            "ipv6-native-routing-cidr",
            "cilium_native_routing_cidr_ipv6",
        ),
    ] {
        match r.string(var)? {
            Some((cidr, o)) if !cidr.is_empty() => view.put(key, cidr, var, o),
            Some((_, o)) => view.off(&[key], var, o),
            None => {}
        }
    }
    r.verbatim(
        &mut view,
        "operator-api-serve-addr",
        "cilium_operator_api_serve_addr",
    )?;
    r.capitalised(
        &mut view,
        "enable-ip-masq-agent",
        "cilium_ip_masq_agent_enable",
    )?;

    if let Some((enabled, o)) = r.boolean("cilium_encryption_enabled")? {
        let kind = r
            .string("cilium_encryption_type")?
            .map(|(t, _)| t)
            .unwrap_or_else(|| "ipsec".to_owned());
        if enabled && kind == "ipsec" {
            view.put("enable-ipsec", "true", "cilium_encryption_enabled", o);
            view.put(
                "ipsec-key-file",
                "/etc/ipsec/keys",
                "cilium_encryption_enabled",
                o,
            );
            r.capitalised(&mut view, "encrypt-node", "cilium_ipsec_node_encryption")?;
            view.off(WIREGUARD_KEYS, "cilium_encryption_type", o);
        } else if enabled && kind == "wireguard" {
            view.put("enable-wireguard", "true", "cilium_encryption_enabled", o);
            r.capitalised(
                &mut view,
                "enable-wireguard-userspace-fallback",
                "cilium_wireguard_userspace_fallback",
            )?;
            view.off(IPSEC_KEYS, "cilium_encryption_type", o);
        } else if !enabled {
            view.off(IPSEC_KEYS, "cilium_encryption_enabled", o);
            view.off(WIREGUARD_KEYS, "cilium_encryption_enabled", o);
        }
    }
    match r.boolean("cilium_enable_bandwidth_manager")? {
        Some((true, o)) => view.put(
            "enable-bandwidth-manager",
            "true",
            "cilium_enable_bandwidth_manager",
            o,
        ),
        Some((false, o)) => view.off(
            &["enable-bandwidth-manager"],
            "cilium_enable_bandwidth_manager",
            o,
        ),
        None => {}
    }

    if let Some((ipam, o)) = r.string("cilium_ipam_mode")? {
        view.put("ipam", &ipam, "cilium_ipam_mode", o);
        if ipam == "cluster-pool" {
            r.first_of(
                &mut view,
                "cluster-pool-ipv4-cidr",
                &["cilium_pool_cidr", "kube_pods_subnet"],
            )?;
            r.first_of(
                &mut view,
                "cluster-pool-ipv4-mask-size",
                &["cilium_pool_mask_size", "kube_network_node_prefix"],
            )?;
            if ipv6 == Some(true) {
                r.first_of(
                    &mut view,
                    "cluster-pool-ipv6-cidr",
                    &["cilium_pool_cidr_ipv6", "kube_pods_subnet_ipv6"],
                )?;
                r.first_of(
                    &mut view,
                    "cluster-pool-ipv6-mask-size",
                    &[
                        "cilium_pool_mask_size_ipv6",
                        "kube_network_node_prefix_ipv6",
                    ],
                )?;
            }
        }
    }
    r.verbatim(&mut view, "agent-health-port", "cilium_agent_health_port")?;
    r.verbatim(&mut view, "cgroup-root", "cilium_cgroup_host_root")?;
    r.verbatim(
        &mut view,
        "bpf-map-dynamic-size-ratio",
        "cilium_bpf_map_dynamic_size_ratio",
    )?;
    r.capitalised(
        &mut view,
        "enable-ipv4-masquerade",
        "cilium_enable_ipv4_masquerade",
    )?;
    r.capitalised(
        &mut view,
        "enable-ipv6-masquerade",
        "cilium_enable_ipv6_masquerade",
    )?;
    r.capitalised(
        &mut view,
        "enable-bpf-masquerade",
        "cilium_enable_bpf_masquerade",
    )?;
    r.capitalised(
        &mut view,
        "enable-host-legacy-routing",
        "cilium_enable_host_legacy_routing",
    )?;
    r.capitalised(
        &mut view,
        "enable-remote-node-identity",
        "cilium_enable_remote_node_identity",
    )?;
    r.capitalised(
        &mut view,
        "enable-well-known-identities",
        "cilium_enable_well_known_identities",
    )?;
    r.verbatim(
        &mut view,
        "monitor-aggregation-flags",
        "cilium_monitor_aggregation_flags",
    )?;
    r.capitalised(
        &mut view,
        "enable-bpf-clock-probe",
        "cilium_enable_bpf_clock_probe",
    )?;
    r.capitalised(
        &mut view,
        "enable-bgp-control-plane",
        "cilium_enable_bgp_control_plane",
    )?;
    r.capitalised(
        &mut view,
        "disable-cnp-status-updates",
        "cilium_disable_cnp_status_updates",
    )?;

    if let Some(extra) = vars.get("cilium_config_extra_vars") {
        match &extra.value {
            Json::Object(map) => {
                for (key, value) in map {
                    view.put(
                        key,
                        text_of(value),
                        "cilium_config_extra_vars",
                        &extra.origin,
                    );
                }
            }
            Json::Null => {}
            other => {
                return Err(Error::BadInventoryValue {
                    origin: extra.origin.clone(),
                    name: "cilium_config_extra_vars".to_owned(),
                    expected: "a mapping of cilium-config keys to values".to_owned(),
                    found: kind_of(other),
                });
            }
        }
    }
    Ok(view)
}

/// Typed access to the variables, with errors that name the origin.
pub(crate) struct Reader<'a> {
    pub(crate) vars: &'a InventoryVars,
}

impl<'a> Reader<'a> {
    /// A boolean as Ansible's `| bool` reads it.
    pub(crate) fn boolean(&self, name: &str) -> Result<Option<(bool, &'a str)>, Error> {
        let Some(var) = self.vars.get(name) else {
            return Ok(None);
        };
        let parsed = match &var.value {
            Json::Bool(b) => Some(*b),
            Json::Null => return Ok(None),
            Json::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "y" => Some(true),
                "false" | "no" | "off" | "0" | "n" | "" => Some(false),
                _ => None,
            },
            Json::Number(n) => n.as_i64().map(|i| i != 0),
            _ => None,
        };
        match parsed {
            Some(b) => Ok(Some((b, var.origin.as_str()))),
            None => Err(self.bad(name, var, "a boolean (true or false)")),
        }
    }

    /// A scalar as text (numbers and booleans as Ansible prints them).
    pub(crate) fn string(&self, name: &str) -> Result<Option<(String, &'a str)>, Error> {
        let Some(var) = self.vars.get(name) else {
            return Ok(None);
        };
        match &var.value {
            Json::Null => Ok(None),
            Json::String(s) => Ok(Some((s.clone(), var.origin.as_str()))),
            Json::Number(n) => Ok(Some((n.to_string(), var.origin.as_str()))),
            Json::Bool(b) => Ok(Some((b.to_string(), var.origin.as_str()))),
            _ => Err(self.bad(name, var, "a single value (string or number)")),
        }
    }

    /// A list of scalars. Kubespray ≤ v2.27 defaults `cilium_hubble_metrics` to `{}`, read as empty.
    pub(crate) fn list(&self, name: &str) -> Result<Option<(Vec<String>, &'a str)>, Error> {
        let Some(var) = self.vars.get(name) else {
            return Ok(None);
        };
        match &var.value {
            Json::Null => Ok(None),
            Json::Object(map) if map.is_empty() => Ok(Some((Vec::new(), var.origin.as_str()))),
            Json::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Json::String(_) | Json::Number(_) | Json::Bool(_) => {
                            out.push(text_of(item))
                        }
                        _ => return Err(self.bad(name, var, "a list of names")),
                    }
                }
                Ok(Some((out, var.origin.as_str())))
            }
            _ => Err(self.bad(name, var, "a list")),
        }
    }

    fn bad(&self, name: &str, var: &InventoryVar, expected: &str) -> Error {
        Error::BadInventoryValue {
            origin: var.origin.clone(),
            name: name.to_owned(),
            expected: expected.to_owned(),
            found: kind_of(&var.value),
        }
    }

    /// `key: "{{ var | capitalize }}"`-style booleans (`True`/`False`).
    fn capitalised(
        &self,
        view: &mut KubesprayView,
        key: &str,
        var: &str,
    ) -> Result<Option<bool>, Error> {
        let found = self.boolean(var)?;
        if let Some((b, o)) = found {
            view.put(key, if b { "True" } else { "False" }, var, o);
        }
        Ok(found.map(|(b, _)| b))
    }

    fn verbatim(&self, view: &mut KubesprayView, key: &str, var: &str) -> Result<(), Error> {
        if let Some((v, o)) = self.string(var)? {
            view.put(key, v, var, o);
        }
        Ok(())
    }

    fn first_of(&self, view: &mut KubesprayView, key: &str, vars: &[&str]) -> Result<(), Error> {
        for var in vars {
            if let Some((v, o)) = self.string(var)? {
                view.put(key, v, var, o);
                return Ok(());
            }
        }
        Ok(())
    }
}

pub(crate) fn text_of(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn kind_of(value: &Json) -> String {
    match value {
        Json::Null => "empty".to_owned(),
        Json::Bool(b) => format!("the boolean {b}"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) if s.contains("{{") || s.contains("{%") => {
            format!("the unevaluated Jinja expression `{s}`")
        }
        Json::String(s) => format!("the string `{s}`"),
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "a mapping".to_owned(),
    }
}
