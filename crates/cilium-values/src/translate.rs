//! Live `cilium-config` + inventory -> chart values, with provenance and warnings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Value as Json, json};

use crate::compare::equivalent;
use crate::inventory::{HUBBLE_TLS_CA, HUBBLE_TLS_CERT, HUBBLE_TLS_KEY, Reader};
use crate::values::{ChartValues, Provenance, Values};
use crate::{ChartVersion, Error, InventoryVars, LiveConfig, kubespray_config_view};

/// What the translation reads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The live `cilium-config`, when a cluster is at hand.
    pub live: Option<LiveConfig>,
    /// Resolved inventory variables (may be empty when only the live config is known).
    pub inventory: InventoryVars,
    /// The chart the values are for.
    pub version: ChartVersion,
}

/// Values and what the operator must know about them.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The chart values, with provenance.
    pub values: Values,
    /// Disagreements, settings that cannot be carried, and advice.
    pub warnings: Vec<Warning>,
}

/// What kind of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WarningKind {
    /// The inventory and the live config disagree; the live value was used.
    Disagreement,
    /// A setting that the target chart cannot carry: behaviour changes after the cut-over.
    NotCarried,
    /// A setting carried in a different form (same behaviour), e.g. `partial` -> `false`.
    Changed,
    /// Something the operator should do or know around this setting.
    Advice,
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WarningKind::Disagreement => "disagreement",
            WarningKind::NotCarried => "not carried",
            WarningKind::Changed => "changed form",
            WarningKind::Advice => "advice",
        })
    }
}

/// One warning, with both values and where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What kind.
    pub kind: WarningKind,
    /// The `cilium-config` key (or inventory variable) concerned.
    pub key: String,
    /// The live value, if any.
    pub live: Option<String>,
    /// The inventory's value, if any.
    pub inventory: Option<String>,
    /// The file and key (or variable) each value came from.
    pub location: String,
    /// What happened and what to do.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.kind, self.key, self.message)?;
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        if self.live.is_some() || self.inventory.is_some() {
            write!(
                f,
                " [live {}, inventory {}]",
                show(&self.live),
                show(&self.inventory)
            )?;
        }
        write!(f, " ({})", self.location)
    }
}

/// Translate the sources into values for `sources.version`.
///
/// The live config is the truth: each of its keys maps to the typed value that renders it, or is
/// carried in `extraConfig`. Without a live config, the `cilium-config` Kubespray would render from
/// the inventory stands in for it.
pub fn translate(sources: &Sources) -> Result<Translation, Error> {
    if sources.live.is_none() && sources.inventory.is_empty() {
        return Err(Error::NoSources);
    }
    let view = kubespray_config_view(&sources.inventory)?;
    let mut warnings = Vec::new();
    let mut effective: BTreeMap<String, (String, Provenance)> = BTreeMap::new();
    match &sources.live {
        Some(live) => {
            for (key, value) in live.data() {
                let provenance = Provenance::Live {
                    source: live.source().to_owned(),
                    key: key.clone(),
                };
                effective.insert(key.clone(), (value.clone(), provenance));
            }
            if !sources.inventory.is_empty() {
                disagreements(live, &view, sources.version, &mut warnings);
            }
        }
        None => {
            for (key, entry) in &view.keys {
                let provenance = Provenance::Inventory {
                    origin: entry.origin.clone(),
                    variable: entry.variable.clone(),
                };
                effective.insert(key.clone(), (entry.value.clone(), provenance));
            }
        }
    }

    let mut mapper = Mapper {
        version: sources.version,
        effective,
        consumed: BTreeSet::new(),
        values: Values::new(sources.version),
        warnings,
        live_source: sources.live.as_ref().map(|l| l.source().to_owned()),
        running: sources.inventory.get("cilium_version").and_then(|v| {
            v.value
                .as_str()
                .map(|text| (text.to_owned(), v.origin.clone()))
        }),
    };
    mapper.map_all()?;
    mapper.carry_rest();
    inventory_only(&mut mapper, &sources.inventory)?;
    Ok(Translation {
        values: mapper.values,
        warnings: mapper.warnings,
    })
}

fn disagreements(
    live: &LiveConfig,
    view: &crate::inventory::KubesprayView,
    version: ChartVersion,
    out: &mut Vec<Warning>,
) {
    for (key, entry) in &view.keys {
        match live.get(key) {
            Some(value) if equivalent(key, value, &entry.value, version).is_some() => {}
            Some(value) => out.push(Warning {
                kind: WarningKind::Disagreement,
                key: key.clone(),
                live: Some(value.to_owned()),
                inventory: Some(entry.value.clone()),
                location: format!("live {}: {key}; inventory {}", live.source(), origin_text(&entry.origin, &entry.variable)),
                message: "the inventory renders a different value; the live value is kept. Change the inventory to match, or Kubespray will believe something else".to_owned(),
            }),
            None => out.push(Warning {
                kind: WarningKind::Disagreement,
                key: key.clone(),
                live: None,
                inventory: Some(entry.value.clone()),
                location: format!("live {}; inventory {}", live.source(), origin_text(&entry.origin, &entry.variable)),
                message: "the inventory renders this key but the live config does not have it; the live config is kept".to_owned(),
            }),
        }
    }
    for (key, entry) in &view.absent {
        if let Some(value) = live.get(key) {
            out.push(Warning {
                kind: WarningKind::Disagreement,
                key: key.clone(),
                live: Some(value.to_owned()),
                inventory: None,
                location: format!("live {}: {key}; inventory {}", live.source(), origin_text(&entry.origin, &entry.variable)),
                message: format!("the live config has this key but `{}` in the inventory switches it off; the live value is kept", entry.variable),
            });
        }
    }
}

fn origin_text(origin: &str, variable: &str) -> String {
    if origin.contains(variable) {
        origin.to_owned()
    } else {
        format!("{origin} ({variable})")
    }
}

struct Mapper {
    version: ChartVersion,
    effective: BTreeMap<String, (String, Provenance)>,
    consumed: BTreeSet<String>,
    values: Values,
    warnings: Vec<Warning>,
    live_source: Option<String>,
    /// The agent version the inventory says runs (`cilium_version`) and where that is set.
    running: Option<(String, String)>,
}

type Setter<T> = fn(&mut ChartValues, T);

/// A running-agent default the values pin.
struct Pin {
    /// The cilium-config key.
    key: &'static str,
    /// The chart minor from which the chart renders another value.
    since: u32,
    /// The values path.
    path: &'static str,
    /// The 1.15 agent's default (for people).
    default: &'static str,
    /// Whether the chart renders the key for these values (it renders some only behind a switch).
    rendered: fn(&ChartValues) -> bool,
    set: fn(&mut ChartValues),
}

impl Pin {
    /// A pin for a key the chart always renders.
    const fn always(
        key: &'static str,
        since: u32,
        path: &'static str,
        default: &'static str,
        set: fn(&mut ChartValues),
    ) -> Self {
        Pin {
            key,
            since,
            path,
            default,
            rendered: |_| true,
            set,
        }
    }
}

/// A switch that exists only in some chart minors.
struct Switch {
    key: &'static str,
    /// Whether the target chart still has the value.
    exists: bool,
    path: &'static str,
    set: Setter<bool>,
    /// The behaviour a newer agent hard-wires once the flag is gone (`None`: follows kube-proxy replacement).
    hardwired: Option<bool>,
    why: &'static str,
}

/// Plain boolean keys: cilium-config key, values path, setter.
const BOOLEANS: &[(&str, &str, Setter<bool>)] = &[
    ("debug", "debug.enabled", |v, b| v.debug.enabled = Some(b)),
    ("enable-ipv4", "ipv4.enabled", |v, b| {
        v.ipv4.enabled = Some(b)
    }),
    ("enable-ipv6", "ipv6.enabled", |v, b| {
        v.ipv6.enabled = Some(b)
    }),
    ("cni-exclusive", "cni.exclusive", |v, b| {
        v.cni.exclusive = Some(b)
    }),
    ("custom-cni-conf", "cni.customConf", |v, b| {
        v.cni.custom_conf = Some(b)
    }),
    ("preallocate-bpf-maps", "bpf.preallocateMaps", |v, b| {
        v.bpf.preallocate_maps = Some(b)
    }),
    (
        "enable-l2-announcements",
        "l2announcements.enabled",
        |v, b| v.l2announcements.enabled = Some(b),
    ),
    ("enable-host-firewall", "hostFirewall.enabled", |v, b| {
        v.host_firewall.enabled = Some(b)
    }),
    ("policy-audit-mode", "policyAuditMode", |v, b| {
        v.policy_audit_mode = Some(b)
    }),
    ("auto-direct-node-routes", "autoDirectNodeRoutes", |v, b| {
        v.auto_direct_node_routes = Some(b)
    }),
    ("enable-ip-masq-agent", "ipMasqAgent.enabled", |v, b| {
        v.ip_masq_agent.enabled = Some(b)
    }),
    (
        "enable-bandwidth-manager",
        "bandwidthManager.enabled",
        |v, b| v.bandwidth_manager.enabled = Some(b),
    ),
    ("enable-bbr", "bandwidthManager.bbr", |v, b| {
        v.bandwidth_manager.bbr = Some(b)
    }),
    ("enable-ipv4-masquerade", "enableIPv4Masquerade", |v, b| {
        v.enable_ipv4_masquerade = Some(b)
    }),
    ("enable-ipv6-masquerade", "enableIPv6Masquerade", |v, b| {
        v.enable_ipv6_masquerade = Some(b)
    }),
    ("enable-bpf-masquerade", "bpf.masquerade", |v, b| {
        v.bpf.masquerade = Some(b)
    }),
    (
        "enable-host-legacy-routing",
        "bpf.hostLegacyRouting",
        |v, b| v.bpf.host_legacy_routing = Some(b),
    ),
    (
        "enable-well-known-identities",
        "wellKnownIdentities.enabled",
        |v, b| v.well_known_identities.enabled = Some(b),
    ),
    ("enable-bpf-clock-probe", "bpfClockProbe", |v, b| {
        v.bpf_clock_probe = Some(b)
    }),
    (
        "enable-bgp-control-plane",
        "bgpControlPlane.enabled",
        |v, b| v.bgp_control_plane.enabled = Some(b),
    ),
    ("enable-l7-proxy", "l7Proxy", |v, b| v.l7_proxy = Some(b)),
    ("bpf-lb-sock", "socketLB.enabled", |v, b| {
        v.socket_lb.enabled = Some(b)
    }),
    (
        "install-no-conntrack-iptables-rules",
        "installNoConntrackIptablesRules",
        |v, b| v.install_no_conntrack_iptables_rules = Some(b),
    ),
    (
        "enable-endpoint-health-checking",
        "endpointHealthChecking.enabled",
        |v, b| v.endpoint_health_checking.enabled = Some(b),
    ),
    ("enable-health-checking", "healthChecking", |v, b| {
        v.health_checking = Some(b)
    }),
    ("clean-cilium-state", "cleanState", |v, b| {
        v.clean_state = Some(b)
    }),
    ("clean-cilium-bpf-state", "cleanBpfState", |v, b| {
        v.clean_bpf_state = Some(b)
    }),
    ("enable-hubble", "hubble.enabled", |v, b| {
        v.hubble.enabled = Some(b)
    }),
    (
        "enable-hubble-open-metrics",
        "hubble.metrics.enableOpenMetrics",
        |v, b| v.hubble.metrics.enable_open_metrics = Some(b),
    ),
    ("encrypt-node", "encryption.nodeEncryption", |v, b| {
        v.encryption.node_encryption = Some(b)
    }),
    (
        "dnsproxy-enable-transparent-mode",
        "dnsProxy.enableTransparentMode",
        |v, b| v.dns_proxy.enable_transparent_mode = Some(b),
    ),
    (
        "tofqdns-enable-dns-compression",
        "dnsProxy.enableDnsCompression",
        |v, b| v.dns_proxy.enable_dns_compression = Some(b),
    ),
    (
        "enable-l2-neigh-discovery",
        "l2NeighDiscovery.enabled",
        |v, b| v.l2_neigh_discovery.enabled = Some(b),
    ),
    ("mesh-auth-enabled", "authentication.enabled", |v, b| {
        v.authentication.enabled = Some(b)
    }),
    (
        "set-cilium-node-taints",
        "operator.setNodeTaints",
        |v, b| v.operator.set_node_taints = Some(b),
    ),
];

/// Plain string keys.
const STRINGS: &[(&str, &str, Setter<String>)] = &[
    (
        "identity-allocation-mode",
        "identityAllocationMode",
        |v, s| v.identity_allocation_mode = Some(s),
    ),
    ("cluster-name", "cluster.name", |v, s| {
        v.cluster.name = Some(s)
    }),
    ("devices", "devices", |v, s| v.devices = Some(s)),
    ("ipam", "ipam.mode", |v, s| v.ipam.mode = Some(s)),
    ("monitor-aggregation", "bpf.monitorAggregation", |v, s| {
        v.bpf.monitor_aggregation = Some(s)
    }),
    ("monitor-aggregation-flags", "bpf.monitorFlags", |v, s| {
        v.bpf.monitor_flags = Some(s)
    }),
    (
        "monitor-aggregation-interval",
        "bpf.monitorInterval",
        |v, s| v.bpf.monitor_interval = Some(s),
    ),
    ("bpf-lb-mode", "loadBalancer.mode", |v, s| {
        v.load_balancer.mode = Some(s)
    }),
    ("bpf-lb-algorithm", "loadBalancer.algorithm", |v, s| {
        v.load_balancer.algorithm = Some(s)
    }),
    (
        "bpf-lb-acceleration",
        "loadBalancer.acceleration",
        |v, s| v.load_balancer.acceleration = Some(s),
    ),
    ("cni-log-file", "cni.logFile", |v, s| {
        v.cni.log_file = Some(s)
    }),
    ("cni-chaining-mode", "cni.chainingMode", |v, s| {
        v.cni.chaining_mode = Some(s)
    }),
    ("cgroup-root", "cgroup.hostRoot", |v, s| {
        v.cgroup.host_root = Some(s)
    }),
    (
        "ipv4-native-routing-cidr",
        "ipv4NativeRoutingCIDR",
        |v, s| v.ipv4_native_routing_cidr = Some(s),
    ),
    (
        "ipv6-native-routing-cidr",
        "ipv6NativeRoutingCIDR",
        |v, s| v.ipv6_native_routing_cidr = Some(s),
    ),
    ("enable-policy", "policyEnforcementMode", |v, s| {
        v.policy_enforcement_mode = Some(s)
    }),
    ("debug-verbose", "debug.verbose", |v, s| {
        v.debug.verbose = Some(s)
    }),
    (
        "l2-announcements-lease-duration",
        "l2announcements.leaseDuration",
        |v, s| v.l2announcements.lease_duration = Some(s),
    ),
    (
        "l2-announcements-renew-deadline",
        "l2announcements.leaseRenewDeadline",
        |v, s| v.l2announcements.lease_renew_deadline = Some(s),
    ),
    (
        "l2-announcements-retry-period",
        "l2announcements.leaseRetryPeriod",
        |v, s| v.l2announcements.lease_retry_period = Some(s),
    ),
    ("hubble-listen-address", "hubble.listenAddress", |v, s| {
        v.hubble.listen_address = Some(s)
    }),
    ("hubble-socket-path", "hubble.socketPath", |v, s| {
        v.hubble.socket_path = Some(s)
    }),
    // The DNS proxy keys every chart writes from `dnsProxy.*` (1.15.9 to 1.19.6).
    (
        "tofqdns-dns-reject-response-code",
        "dnsProxy.dnsRejectResponseCode",
        |v, s| v.dns_proxy.dns_reject_response_code = Some(s),
    ),
    (
        "tofqdns-idle-connection-grace-period",
        "dnsProxy.idleConnectionGracePeriod",
        |v, s| v.dns_proxy.idle_connection_grace_period = Some(s),
    ),
    (
        "tofqdns-proxy-response-max-delay",
        "dnsProxy.proxyResponseMaxDelay",
        |v, s| v.dns_proxy.proxy_response_max_delay = Some(s),
    ),
    // The charts render it (with the BGP control plane on) from this value, never from extraConfig.
    (
        "bgp-secrets-namespace",
        "bgpControlPlane.secretsNamespace.name",
        |v, s| v.bgp_control_plane.secrets_namespace.name = Some(s),
    ),
    ("routing-mode", "routingMode", |v, s| {
        v.routing_mode = Some(s)
    }),
    ("tunnel-protocol", "tunnelProtocol", |v, s| {
        v.tunnel_protocol = Some(s)
    }),
];

/// Whole-number keys.
const NUMBERS: &[(&str, &str, Setter<u64>)] = &[
    ("bpf-ct-global-tcp-max", "bpf.ctTcpMax", |v, n| {
        v.bpf.ct_tcp_max = Some(n)
    }),
    ("bpf-ct-global-any-max", "bpf.ctAnyMax", |v, n| {
        v.bpf.ct_any_max = Some(n)
    }),
    ("bpf-nat-global-max", "bpf.natMax", |v, n| {
        v.bpf.nat_max = Some(n)
    }),
    ("bpf-neigh-global-max", "bpf.neighMax", |v, n| {
        v.bpf.neigh_max = Some(n)
    }),
    ("bpf-policy-map-max", "bpf.policyMapMax", |v, n| {
        v.bpf.policy_map_max = Some(n)
    }),
    ("bpf-lb-map-max", "bpf.lbMapMax", |v, n| {
        v.bpf.lb_map_max = Some(n)
    }),
    (
        "tofqdns-max-deferred-connection-deletes",
        "dnsProxy.maxDeferredConnectionDeletes",
        |v, n| v.dns_proxy.max_deferred_connection_deletes = Some(n),
    ),
    (
        "hubble-event-buffer-capacity",
        "hubble.eventBufferCapacity",
        |v, n| v.hubble.event_buffer_capacity = Some(n),
    ),
    (
        "hubble-event-queue-size",
        "hubble.eventQueueSize",
        |v, n| v.hubble.event_queue_size = Some(n),
    ),
];

/// Small whole numbers (ports, ids, mask sizes).
const SMALL_NUMBERS: &[(&str, &str, Setter<u32>)] = &[
    ("cluster-id", "cluster.id", |v, n| v.cluster.id = Some(n)),
    (
        "cluster-pool-ipv4-mask-size",
        "ipam.operator.clusterPoolIPv4MaskSize",
        |v, n| v.ipam.operator.cluster_pool_ipv4_mask_size = Some(n),
    ),
    (
        "cluster-pool-ipv6-mask-size",
        "ipam.operator.clusterPoolIPv6MaskSize",
        |v, n| v.ipam.operator.cluster_pool_ipv6_mask_size = Some(n),
    ),
    ("agent-health-port", "healthPort", |v, n| {
        v.health_port = Some(n)
    }),
    ("mtu", "MTU", |v, n| v.mtu = Some(n)),
    ("k8s-client-qps", "k8sClientRateLimit.qps", |v, n| {
        v.k8s_client_rate_limit.qps = Some(n)
    }),
    ("k8s-client-burst", "k8sClientRateLimit.burst", |v, n| {
        v.k8s_client_rate_limit.burst = Some(n)
    }),
    (
        "tofqdns-endpoint-max-ip-per-hostname",
        "dnsProxy.endpointMaxIpPerHostname",
        |v, n| v.dns_proxy.endpoint_max_ip_per_hostname = Some(n),
    ),
];

/// The file the chart tells the agent to write its CNI config to (`cni.hostConfDirMountPath`).
const CHART_CNI_CONF: &str = "/host/etc/cni/net.d/05-cilium.conflist";

impl Mapper {
    fn peek(&self, key: &str) -> Option<(String, Provenance)> {
        self.effective.get(key).cloned()
    }

    fn take(&mut self, key: &str) -> Option<(String, Provenance)> {
        let found = self.effective.get(key).cloned();
        if found.is_some() {
            self.consumed.insert(key.to_owned());
        }
        found
    }

    fn bad(&self, key: &str, value: &str, provenance: &Provenance, expected: &str) -> Error {
        match provenance {
            Provenance::Inventory { origin, variable } => Error::BadInventoryValue {
                origin: origin.clone(),
                name: variable.clone(),
                expected: format!("{expected} (it renders cilium-config `{key}`)"),
                found: format!("`{value}`"),
            },
            Provenance::Live { source, .. } => Error::BadLiveValue {
                path: source.clone(),
                key: key.to_owned(),
                value: value.to_owned(),
                expected: expected.to_owned(),
            },
            Provenance::Tool { reason } => Error::BadLiveValue {
                path: reason.clone(),
                key: key.to_owned(),
                value: value.to_owned(),
                expected: expected.to_owned(),
            },
        }
    }

    fn set_bool(
        &mut self,
        key: &str,
        path: &str,
        set: Setter<bool>,
    ) -> Result<Option<bool>, Error> {
        let Some((value, provenance)) = self.take(key) else {
            return Ok(None);
        };
        let b = parse_bool(&value)
            .ok_or_else(|| self.bad(key, &value, &provenance, "true or false"))?;
        set(&mut self.values.chart, b);
        self.values.note(path, provenance);
        Ok(Some(b))
    }

    fn set_string(&mut self, key: &str, path: &str, set: Setter<String>) {
        if let Some((value, provenance)) = self.take(key) {
            set(&mut self.values.chart, value);
            self.values.note(path, provenance);
        }
    }

    fn set_number<T: std::str::FromStr>(
        &mut self,
        key: &str,
        path: &str,
        set: Setter<T>,
    ) -> Result<(), Error> {
        let Some((value, provenance)) = self.take(key) else {
            return Ok(());
        };
        let n = value
            .trim()
            .parse::<T>()
            .map_err(|_| self.bad(key, &value, &provenance, "a whole number"))?;
        set(&mut self.values.chart, n);
        self.values.note(path, provenance);
        Ok(())
    }

    /// A warning about a value of the effective config: that value is live when a live config
    /// was given, else it is what the inventory renders.
    fn warn(
        &mut self,
        kind: WarningKind,
        key: &str,
        value: Option<&str>,
        location: String,
        message: impl Into<String>,
    ) {
        let value = value.map(str::to_owned);
        let (live, inventory) = if self.live_source.is_some() {
            (value, None)
        } else {
            (None, value)
        };
        self.warnings.push(Warning {
            kind,
            key: key.to_owned(),
            live,
            inventory,
            location,
            message: message.into(),
        });
    }

    fn location_of(&self, key: &str, provenance: &Provenance) -> String {
        match provenance {
            Provenance::Live { source, .. } => format!("{source}: {key}"),
            other => other.to_string(),
        }
    }

    fn carry(&mut self, key: &str, value: String, provenance: Provenance) {
        self.consumed.insert(key.to_owned());
        self.values.chart.extra_config.insert(key.to_owned(), value);
        self.values.note(format!("extraConfig.{key}"), provenance);
    }

    fn map_all(&mut self) -> Result<(), Error> {
        for (key, path, set) in BOOLEANS {
            self.set_bool(key, path, *set)?;
        }
        for (key, path, set) in STRINGS {
            self.set_string(key, path, *set);
        }
        for (key, path, set) in NUMBERS {
            self.set_number(key, path, *set)?;
        }
        for (key, path, set) in SMALL_NUMBERS {
            self.set_number(key, path, *set)?;
        }
        self.map_ratio()?;
        self.map_pools();
        self.map_legacy_tunnel();
        self.pin_routing_mode();
        self.map_kube_proxy_replacement()?;
        self.map_kube_proxy_healthz();
        self.map_sidecar_image();
        self.map_versioned_switches()?;
        self.map_prometheus()?;
        self.map_hubble()?;
        self.map_encryption()?;
        self.map_cni_and_operator_addresses();
        self.map_kvstore()?;
        // Kubespray's operator manifest always resolves through the cluster DNS; the chart
        // leaves host-network pods on the node's resolver (the workload gate).
        self.values.chart.operator.dns_policy = Some("ClusterFirstWithHostNet".to_owned());
        self.values.note(
            "operator.dnsPolicy",
            Provenance::Tool {
                reason: "Kubespray's operator runs with dnsPolicy ClusterFirstWithHostNet"
                    .to_owned(),
            },
        );
        self.check_cluster_name();
        self.check_native_routing();
        self.pin_running_agent_defaults();
        Ok(())
    }

    /// Keys the live config leaves to the running (template-era, 1.15) agent's default while the
    /// chart renders a different value: the values pin the running agent's default instead, so
    /// that the hand-over keeps the behaviour. Each default is in the gate's table.
    fn pin_running_agent_defaults(&mut self) {
        let pins: &[Pin] = &[
            Pin::always("k8s-client-qps", 15, "k8sClientRateLimit.qps", "5", |c| {
                c.k8s_client_rate_limit.qps = Some(5)
            }),
            Pin::always(
                "k8s-client-burst",
                15,
                "k8sClientRateLimit.burst",
                "10",
                |c| c.k8s_client_rate_limit.burst = Some(10),
            ),
            Pin::always(
                "controller-group-metrics",
                15,
                "prometheus.controllerGroupMetrics",
                "",
                |c| c.prometheus.controller_group_metrics = Some(Vec::new()),
            ),
            Pin::always(
                "dnsproxy-enable-transparent-mode",
                15,
                "dnsProxy.enableTransparentMode",
                "false",
                |c| c.dns_proxy.enable_transparent_mode = Some(false),
            ),
            Pin::always(
                "tofqdns-endpoint-max-ip-per-hostname",
                17,
                "dnsProxy.endpointMaxIpPerHostname",
                "50",
                |c| c.dns_proxy.endpoint_max_ip_per_hostname = Some(50),
            ),
            Pin::always(
                "proxy-prometheus-port",
                15,
                "envoy.prometheus.enabled",
                "0 (no Envoy metrics listener)",
                |c| c.envoy.prometheus.enabled = Some(false),
            ),
            Pin::always(
                "set-cilium-node-taints",
                15,
                "operator.setNodeTaints",
                "false",
                |c| c.operator.set_node_taints = Some(false),
            ),
            Pin::always(
                "enable-l2-neigh-discovery",
                18,
                "l2NeighDiscovery.enabled",
                "true",
                |c| c.l2_neigh_discovery.enabled = Some(true),
            ),
            Pin::always(
                "mesh-auth-enabled",
                19,
                "authentication.enabled",
                "true",
                |c| c.authentication.enabled = Some(true),
            ),
            Pin::always(
                "enable-tcx",
                16,
                "bpf.enableTCX",
                "false (tc attachment)",
                |c| c.bpf.enable_tcx = Some(false),
            ),
            Pin::always(
                "packetization-layer-pmtud-mode",
                19,
                "pmtuDiscovery.packetizationLayerPMTUDMode",
                "unset (the pods' own setting)",
                |c| c.pmtu_discovery.packetization_layer_pmtud_mode = Some("unset".to_owned()),
            ),
            Pin::always(
                "policy-default-local-cluster",
                18,
                "clustermesh.policyDefaultLocalCluster",
                "false (policies select endpoints of every cluster)",
                |c| c.clustermesh.policy_default_local_cluster = Some(false),
            ),
            // Kubespray renders `enable-hubble` only when Hubble is on; every chart defaults
            // `hubble.enabled` to true, which would start Hubble on a cluster that ran without it.
            Pin::always(
                "enable-hubble",
                15,
                "hubble.enabled",
                "false (no Hubble server)",
                |c| c.hubble.enabled = Some(false),
            ),
            // With the BGP control plane on, every chart writes the Secrets namespace (default
            // kube-system), which makes the agent watch and use Secrets there; Kubespray's
            // template sets none, so the agent read no BGP Secrets.
            Pin {
                key: "bgp-secrets-namespace",
                since: 15,
                path: "bgpControlPlane.secretsNamespace.name",
                default: "(empty: no BGP Secrets are read)",
                rendered: |c| c.bgp_control_plane.enabled == Some(true),
                set: |c| c.bgp_control_plane.secrets_namespace.name = Some(String::new()),
            },
        ];
        let unset = if self.live_source.is_some() {
            "the live config does not set it"
        } else {
            "Kubespray's template does not render it"
        };
        // The pinned defaults are the 1.15 agent's: for any other running agent they could
        // themselves be the change, so they are left to the gate (which knows each version's).
        // Without `cilium_version` the template era's agent is assumed (Kubespray v2.27's
        // default, 1.15.9): the inventory resolves it with role defaults whenever there is one.
        let Some((shown, origin)) = self.running.clone() else {
            self.pin_defaults(pins, unset);
            return;
        };
        if ChartVersion::parse(&shown).is_ok_and(|v| v.minor == 15) {
            self.pin_defaults(pins, unset);
        } else {
            self.warn(
                WarningKind::Advice,
                "cilium_version",
                None,
                origin,
                format!(
                    "the running agent is Cilium {shown}, not 1.15: the values pin none of its defaults that chart {} renders differently; the gate reports each of them",
                    self.version
                ),
            );
        }
    }

    fn pin_defaults(&mut self, pins: &[Pin], unset: &str) {
        for pin in pins {
            let &Pin {
                key,
                since,
                path,
                default,
                rendered,
                set,
            } = pin;
            if self.version.minor < since
                || self.effective.contains_key(key)
                || !rendered(&self.values.chart)
            {
                continue;
            }
            set(&mut self.values.chart);
            self.values.note(
                path,
                Provenance::Tool {
                    reason: format!(
                        "{unset} ({key}), so the running 1.15 agent uses its default {}; pinned because chart {} renders another value",
                        if default.is_empty() { "(empty)" } else { default },
                        self.version
                    ),
                },
            );
        }
    }

    fn map_ratio(&mut self) -> Result<(), Error> {
        let key = "bpf-map-dynamic-size-ratio";
        if let Some((value, provenance)) = self.take(key) {
            let ratio = value
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| r.is_finite() && (0.0..=1.0).contains(r))
                .ok_or_else(|| self.bad(key, &value, &provenance, "a ratio between 0.0 and 1.0"))?;
            self.values.chart.bpf.map_dynamic_size_ratio = Some(ratio);
            self.values.note("bpf.mapDynamicSizeRatio", provenance);
        }
        Ok(())
    }

    fn map_pools(&mut self) {
        for (key, path, v6) in [
            (
                "cluster-pool-ipv4-cidr",
                "ipam.operator.clusterPoolIPv4PodCIDRList",
                false,
            ),
            (
                "cluster-pool-ipv6-cidr",
                "ipam.operator.clusterPoolIPv6PodCIDRList",
                true,
            ),
        ] {
            if let Some((value, provenance)) = self.take(key) {
                let list: Vec<String> = value
                    .split([' ', ',', '\n', '\t'])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                let operator = &mut self.values.chart.ipam.operator;
                if v6 {
                    operator.cluster_pool_ipv6_pod_cidr_list = Some(list);
                } else {
                    operator.cluster_pool_ipv4_pod_cidr_list = Some(list);
                }
                self.values.note(path, provenance);
            }
        }
    }

    /// `tunnel: vxlan|geneve|disabled` is the pre-1.14 spelling of routing mode + protocol.
    fn map_legacy_tunnel(&mut self) {
        let Some((value, provenance)) = self.take("tunnel") else {
            return;
        };
        let location = self.location_of("tunnel", &provenance);
        if self.values.chart.routing_mode.is_none() {
            let (mode, protocol) = if value == "disabled" {
                ("native", None)
            } else {
                ("tunnel", Some(value.clone()))
            };
            self.values.chart.routing_mode = Some(mode.to_owned());
            self.values.note("routingMode", provenance.clone());
            if let Some(protocol) = protocol {
                self.values.chart.tunnel_protocol = Some(protocol);
                self.values.note("tunnelProtocol", provenance);
            }
            self.warn(
                WarningKind::Changed,
                "tunnel",
                Some(&value),
                location,
                "the pre-1.14 `tunnel` key is written as routingMode/tunnelProtocol (the chart removed `tunnel` in 1.15)",
            );
        } else {
            self.warn(
                WarningKind::Changed,
                "tunnel",
                Some(&value),
                location,
                "dropped: `routing-mode` is also set and is what the agent uses",
            );
        }
    }

    /// Charts up to 1.16 write `tunnel-protocol: vxlan` when `routingMode` is unset and then the
    /// set `tunnelProtocol` again (the key twice): a protocol without a mode pins the agent's
    /// default mode, tunnel.
    fn pin_routing_mode(&mut self) {
        if self.version.minor <= 16
            && self.values.chart.tunnel_protocol.is_some()
            && self.values.chart.routing_mode.is_none()
        {
            self.values.chart.routing_mode = Some("tunnel".to_owned());
            self.values.note(
                "routingMode",
                Provenance::Tool {
                    reason: format!(
                        "tunnel-protocol is set without routing-mode; the agent's default mode is written so that chart {} renders tunnel-protocol once",
                        self.version
                    ),
                },
            );
        }
    }

    fn map_kube_proxy_replacement(&mut self) -> Result<(), Error> {
        let key = "kube-proxy-replacement";
        let Some((value, provenance)) = self.take(key) else {
            return Ok(());
        };
        let normal = value.trim().to_ascii_lowercase();
        let legacy = self.version.accepts_legacy_kube_proxy_replacement();
        let mapped = match normal.as_str() {
            "true" | "false" => normal.clone(),
            // 1.15 still knows `disabled`, which is more than `false` (see below): kept as is.
            "disabled" if legacy => normal.clone(),
            "strict" => "true".to_owned(),
            "partial" | "disabled" => "false".to_owned(),
            _ => {
                return Err(self.bad(
                    key,
                    &value,
                    &provenance,
                    "true, false, strict, partial or disabled",
                ));
            }
        };
        if normal == "disabled" && !legacy {
            let location = self.location_of(key, &provenance);
            self.warn(
                WarningKind::NotCarried,
                key,
                Some(&value),
                location,
                format!(
                    "written as kubeProxyReplacement: \"false\" (chart {} accepts only true/false), which changes behaviour: 1.15's `disabled` also forces NodePort, hostPort, externalIPs and socket LB off, legacy host routing on, and runs no kube-proxy healthz server; with `false` the agent handles NodePort/hostPort/externalIPs/socket LB by their own switches and defaults. Accept it with --accept-config-change kube-proxy-replacement, or pin those features",
                    self.version
                ),
            );
        } else if mapped != normal {
            let location = self.location_of(key, &provenance);
            self.warn(
                WarningKind::Changed,
                key,
                Some(&value),
                location,
                format!(
                    "written as kubeProxyReplacement: \"{mapped}\", its meaning since Cilium 1.14 (chart 1.16+ accepts only true/false; kube-proxy {} needed)",
                    if mapped == "true" { "is not" } else { "stays" }
                ),
            );
        }
        self.values.chart.kube_proxy_replacement = Some(mapped);
        self.values.note("kubeProxyReplacement", provenance);
        Ok(())
    }

    /// `kubeProxyReplacementHealthzBindAddr` renders only with kube-proxy replacement on from chart
    /// 1.17.6; without it an address is carried verbatim (an empty one is the agent's default).
    fn map_kube_proxy_healthz(&mut self) {
        let key = "kube-proxy-replacement-healthz-bind-address";
        let Some((value, provenance)) = self.take(key) else {
            return;
        };
        let kpr_on = self.values.chart.kube_proxy_replacement.as_deref() == Some("true");
        if kpr_on
            || self
                .version
                .renders_kube_proxy_healthz_without_replacement()
        {
            self.values.chart.kube_proxy_replacement_healthz_bind_addr = Some(value);
            self.values
                .note("kubeProxyReplacementHealthzBindAddr", provenance);
        } else if !value.trim().is_empty() {
            self.carry(key, value, provenance);
        }
    }

    /// Chart 1.15 renders `sidecar-istio-proxy-image` itself: the value goes to
    /// `proxy.sidecarImageRegex`, never to `extraConfig` (that would write the key twice).
    fn map_sidecar_image(&mut self) {
        if !self.version.renders_sidecar_istio_proxy_image() {
            return;
        }
        if let Some((value, provenance)) = self.take("sidecar-istio-proxy-image") {
            self.values.chart.proxy.sidecar_image_regex = Some(value);
            self.values.note("proxy.sidecarImageRegex", provenance);
        }
    }

    /// Switches that exist only in some chart minors: kept where the chart has them, otherwise
    /// dropped with a warning when the newer agent behaves differently.
    fn map_versioned_switches(&mut self) -> Result<(), Error> {
        let v = self.version;
        let switches = [
            Switch {
                key: "enable-remote-node-identity",
                exists: v.has_legacy_1_15_values(),
                path: "remoteNodeIdentity",
                set: |c, b| c.remote_node_identity = Some(b),
                hardwired: Some(true),
                why: "removed in 1.16, where remote-node identity is always on",
            },
            Switch {
                key: "disable-cnp-status-updates",
                // Chart 1.15 already refuses `enableCnpStatusUpdates: true` and renders no key.
                exists: false,
                path: "enableCnpStatusUpdates",
                set: |_, _| {},
                hardwired: Some(true),
                why: "removed in 1.15 (chart and agent), which no longer write CiliumNetworkPolicy status",
            },
            Switch {
                key: "enable-wireguard-userspace-fallback",
                exists: v.has_wireguard_userspace_fallback(),
                path: "encryption.wireguard.userspaceFallback",
                set: |c, b| c.encryption.wireguard.userspace_fallback = Some(b),
                hardwired: Some(false),
                why: "removed in 1.17 (kernel WireGuard only)",
            },
            Switch {
                key: "enable-node-port",
                exists: v.has_node_port_value(),
                path: "nodePort.enabled",
                set: |c, b| c.node_port.enabled = Some(b),
                hardwired: None,
                why: "removed in 1.19: NodePort comes with kubeProxyReplacement=true",
            },
            Switch {
                key: "enable-host-port",
                exists: v.renders_host_port(),
                path: "hostPort.enabled",
                set: |c, b| c.host_port.enabled = Some(b),
                hardwired: None,
                why: if v.minor == 17 {
                    "chart 1.17.0-1.17.5 never renders hostPort.enabled (it is gated on `partial`, which 1.17 refuses): hostPort comes with kubeProxyReplacement=true"
                } else {
                    "removed in 1.18: hostPort comes with kubeProxyReplacement=true"
                },
            },
            Switch {
                key: "enable-external-ips",
                exists: v.renders_external_ips(),
                path: "externalIPs.enabled",
                set: |c, b| c.external_ips.enabled = Some(b),
                hardwired: None,
                why: "not rendered from chart 1.17 on (1.17.0-1.17.5 gate it on `partial`, 1.17.6 removed it): externalIPs come with kubeProxyReplacement=true",
            },
        ];
        for Switch {
            key,
            exists,
            path,
            set,
            hardwired,
            why,
        } in switches
        {
            let Some((value, provenance)) = self.peek(key) else {
                continue;
            };
            let b = parse_bool(&value)
                .ok_or_else(|| self.bad(key, &value, &provenance, "true or false"))?;
            if exists {
                self.set_bool(key, path, set)?;
                continue;
            }
            self.consumed.insert(key.to_owned());
            let location = self.location_of(key, &provenance);
            let kpr_true = self.values.chart.kube_proxy_replacement.as_deref() == Some("true");
            let same = match hardwired {
                Some(h) => h == b,
                None => b == kpr_true,
            };
            if same {
                self.warn(
                    WarningKind::Changed,
                    key,
                    Some(&value),
                    location,
                    format!("not written for chart {v}: {why}; same behaviour"),
                );
            } else {
                self.warn(
                    WarningKind::NotCarried,
                    key,
                    Some(&value),
                    location,
                    format!("cannot be carried to chart {v}: {why}; behaviour changes"),
                );
            }
        }
        Ok(())
    }

    fn map_prometheus(&mut self) -> Result<(), Error> {
        let live_absent = self.live_source.clone().map(|s| Provenance::Tool {
            reason: format!("{s} has no such key, so it stays off"),
        });
        let absent = live_absent.unwrap_or(Provenance::Tool {
            reason: "the inventory does not enable it, so it stays off".to_owned(),
        });
        for (key, enabled_path, port_path, operator) in [
            (
                "prometheus-serve-addr",
                "prometheus.enabled",
                "prometheus.port",
                false,
            ),
            (
                "operator-prometheus-serve-addr",
                "operator.prometheus.enabled",
                "operator.prometheus.port",
                true,
            ),
        ] {
            match self.peek(key) {
                Some((value, provenance)) => match port_only(&value) {
                    Some(port) => {
                        self.consumed.insert(key.to_owned());
                        let block = if operator {
                            &mut self.values.chart.operator.prometheus
                        } else {
                            &mut self.values.chart.prometheus
                        };
                        block.enabled = Some(true);
                        block.port = Some(port);
                        self.values.note(enabled_path, provenance.clone());
                        self.values.note(port_path, provenance);
                    }
                    None => {
                        // A host in the address (`10.0.0.1:9962`) is not expressible in the chart.
                        self.carry(key, value, provenance);
                    }
                },
                None => {
                    let block = if operator {
                        &mut self.values.chart.operator.prometheus
                    } else {
                        &mut self.values.chart.prometheus
                    };
                    block.enabled = Some(false);
                    self.values.note(enabled_path, absent.clone());
                }
            }
        }
        // The chart pairs `enable-metrics: "true"` with operator metrics.
        if let Some((value, provenance)) = self.peek("enable-metrics") {
            let operator_on = self.values.chart.operator.prometheus.enabled == Some(true);
            if operator_on && parse_bool(&value) == Some(true) {
                self.consumed.insert("enable-metrics".to_owned());
            } else {
                self.carry("enable-metrics", value, provenance);
            }
        }
        Ok(())
    }

    fn map_hubble(&mut self) -> Result<(), Error> {
        let server = self.peek("hubble-metrics-server");
        let metrics = self.peek("hubble-metrics");
        match (server, metrics) {
            (Some((server_value, server_prov)), Some((list, list_prov)))
                if port_only(&server_value).is_some() =>
            {
                self.consumed.insert("hubble-metrics-server".to_owned());
                self.consumed.insert("hubble-metrics".to_owned());
                self.values.chart.hubble.metrics.port = port_only(&server_value);
                self.values.note("hubble.metrics.port", server_prov);
                self.values.chart.hubble.metrics.enabled =
                    Some(list.split_whitespace().map(str::to_owned).collect());
                self.values.note("hubble.metrics.enabled", list_prov);
            }
            _ => {} // carried verbatim by `carry_rest`
        }

        let tls_keys = [
            ("hubble-tls-cert-file", HUBBLE_TLS_CERT),
            ("hubble-tls-key-file", HUBBLE_TLS_KEY),
            ("hubble-tls-client-ca-files", HUBBLE_TLS_CA),
        ];
        if let Some((value, provenance)) = self.peek("hubble-disable-tls") {
            let disabled = parse_bool(&value).ok_or_else(|| {
                self.bad("hubble-disable-tls", &value, &provenance, "true or false")
            })?;
            self.consumed.insert("hubble-disable-tls".to_owned());
            self.values.chart.hubble.tls.enabled = Some(!disabled);
            self.values.note("hubble.tls.enabled", provenance.clone());
            // With TLS on the chart renders exactly Kubespray's three paths; keep any other value verbatim.
            for (key, chart_path) in tls_keys {
                if let Some((path, p)) = self.peek(key) {
                    if !disabled && path == chart_path {
                        self.consumed.insert(key.to_owned());
                    } else {
                        self.carry(key, path, p);
                    }
                }
            }
            if !disabled {
                self.pin_hubble_certificate_issuer(&value, &provenance);
            }
        } else if let Some((listen, provenance)) = self.peek("hubble-listen-address")
            && !listen.trim().is_empty()
            && self
                .peek("enable-hubble")
                .is_some_and(|(v, _)| parse_bool(&v) == Some(true))
            && tls_keys.iter().all(|(key, _)| self.peek(key).is_none())
        {
            // Kubespray without cilium_hubble_install: TLS not disabled and no certificate files,
            // so the agent has no certificate for its remote listener. Every chart writes either
            // TLS files or `hubble-disable-tls: "true"`; neither keeps that.
            let location = self.location_of("hubble-listen-address", &provenance);
            self.warn(
                WarningKind::NotCarried,
                "hubble-disable-tls",
                None,
                location,
                format!(
                    "Hubble listens on {listen} with TLS on but no certificate files (Kubespray without cilium_hubble_install); chart {} writes certificate files (hubble.tls.enabled) or disables TLS, so the remote Hubble listener changes: the gate reports it, accept it by name or set cilium_hubble_install",
                    self.version
                ),
            );
        }
        Ok(())
    }

    /// Hubble TLS is on: the chart must issue the certificates. `helm`, not `cronJob`, written
    /// explicitly because it is a decision: chart 1.15's certgen (cronJob) never issues
    /// `hubble-ui-client-certs`, so a UI talking TLS to the relay would never start; its Job is a
    /// post-install hook, which an install that waits for readiness runs only after a relay that
    /// needs the certificate that Job writes; and it pulls a certgen image Kubespray's nodes
    /// never pulled. `helm` issues every Secret at render time, signed by `cilium-ca`.
    fn pin_hubble_certificate_issuer(&mut self, value: &str, provenance: &Provenance) {
        let tls = &mut self.values.chart.hubble.tls.auto;
        tls.enabled = Some(true);
        tls.method = Some("helm".to_owned());
        let why = Provenance::Tool {
            reason: format!(
                "Hubble TLS is on ({provenance}); the chart issues the certificates at render time (not cronJob: chart 1.15's certgen never issues the UI's client certificate, and its post-install Job would wait behind the relay it certifies)"
            ),
        };
        self.values.note("hubble.tls.auto.enabled", why.clone());
        self.values.note("hubble.tls.auto.method", why);
        let location = self.location_of("hubble-disable-tls", provenance);
        self.warn(
            WarningKind::Advice,
            "hubble-disable-tls",
            Some(value),
            location,
            "Hubble TLS is on: the chart issues its certificates at every helm upgrade (hubble.tls.auto.method=helm) into Secrets hubble-server-certs and hubble-relay-client-certs (with the relay's TLS also hubble-relay-server-certs and hubble-ui-client-certs), which become release objects, signed by the CA in Secret cilium-ca. Kubespray's CA is in hubble-ca-secret: `migrate --apply` copies it to cilium-ca before the install, so agents, relay and UI keep trusting each other; installing by hand, copy its ca.crt/ca.key into a Secret cilium-ca first, or Hubble's mTLS fails until every pod has the new Secrets (helm template alone cannot look cilium-ca up and issues a new CA each time). ACT after the hand-over: delete Kubespray's CronJob hubble-generate-certs with its ServiceAccount, ClusterRole and ClusterRoleBinding (the chart renders none of them), which would otherwise keep rewriting those Secrets every four months, then hubble-ca-secret",
        );
    }

    fn map_encryption(&mut self) -> Result<(), Error> {
        for (key, kind) in [("enable-ipsec", "ipsec"), ("enable-wireguard", "wireguard")] {
            if let Some((value, provenance)) = self.take(key) {
                let on = parse_bool(&value)
                    .ok_or_else(|| self.bad(key, &value, &provenance, "true or false"))?;
                if on || self.values.chart.encryption.enabled.is_none() {
                    self.values.chart.encryption.enabled = Some(on);
                    self.values.note("encryption.enabled", provenance.clone());
                }
                if on {
                    self.values.chart.encryption.kind = Some(kind.to_owned());
                    self.values.note("encryption.type", provenance);
                }
            }
        }
        if let Some((value, provenance)) = self.peek("ipsec-key-file") {
            match value.rsplit_once('/') {
                Some((dir, file)) if !dir.is_empty() && !file.is_empty() => {
                    self.consumed.insert("ipsec-key-file".to_owned());
                    self.values.chart.encryption.ipsec.mount_path = Some(dir.to_owned());
                    self.values.chart.encryption.ipsec.key_file = Some(file.to_owned());
                    self.values
                        .note("encryption.ipsec.mountPath", provenance.clone());
                    self.values.note("encryption.ipsec.keyFile", provenance);
                }
                _ => self.carry("ipsec-key-file", value, provenance),
            }
        }
        if self.version.has_ipsec_interface_value() {
            self.set_string("encrypt-interface", "encryption.ipsec.interface", |v, s| {
                v.encryption.ipsec.interface = Some(s)
            });
        } else if let Some((value, provenance)) = self.peek("encrypt-interface") {
            // Carried in extraConfig it would look kept while the agent ignores it: left out, and
            // the gate reports the live value as dropped.
            self.consumed.insert("encrypt-interface".to_owned());
            let location = self.location_of("encrypt-interface", &provenance);
            self.warn(
                WarningKind::NotCarried,
                "encrypt-interface",
                Some(&value),
                location,
                format!(
                    "cannot be carried to chart {}: 1.20 removed encryption.ipsec.interface and the agent flag; IPsec attaches to the devices the agent selects (set `devices` to choose them)",
                    self.version
                ),
            );
        }
        Ok(())
    }

    /// Keys the chart computes itself: consumed when the chart computes the same value.
    fn map_cni_and_operator_addresses(&mut self) {
        if let Some((value, provenance)) = self.peek("write-cni-conf-when-ready") {
            if value == CHART_CNI_CONF && self.values.chart.cni.custom_conf != Some(true) {
                self.consumed.insert("write-cni-conf-when-ready".to_owned());
            } else {
                self.carry("write-cni-conf-when-ready", value, provenance);
            }
        }
        if let Some((value, provenance)) = self.peek("operator-api-serve-addr") {
            let ipv4 = self.values.chart.ipv4.enabled != Some(false);
            let computed = if ipv4 { "127.0.0.1:9234" } else { "[::1]:9234" };
            if value == computed {
                self.consumed.insert("operator-api-serve-addr".to_owned());
            } else {
                self.carry("operator-api-serve-addr", value, provenance);
            }
        }
    }

    /// kvstore identity allocation: keep Kubespray's etcd settings byte for byte in `extraConfig`
    /// and mount what they point at (the etcd-config item and the per-node certificate directory
    /// Kubespray hard-links) with extraVolumes. The chart's `etcd.enabled`/`etcd.ssl` would instead
    /// need one Secret `cilium-etcd-secrets` holding a client key for every node, and rewrite the
    /// file names; the hostPath mount keeps each node's own certificate and changes nothing.
    fn map_kvstore(&mut self) -> Result<(), Error> {
        let kvstore = self.peek("kvstore");
        let config = self.peek("etcd-config");
        if kvstore.is_none() && config.is_none() {
            return Ok(());
        }
        for key in ["kvstore", "kvstore-opt"] {
            if let Some((value, provenance)) = self.peek(key) {
                self.carry(key, value, provenance);
            }
        }
        let opt = self
            .values
            .chart
            .extra_config
            .get("kvstore-opt")
            .cloned()
            .unwrap_or_default();
        let config_file = serde_json::from_str::<Json>(&opt)
            .ok()
            .and_then(|j| {
                j.get("etcd.config")
                    .and_then(Json::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "/var/lib/etcd-config/etcd.config".to_owned());
        let (config_dir, config_name) = config_file
            .rsplit_once('/')
            .unwrap_or(("/var/lib/etcd-config", "etcd.config"));

        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        let mut origin = None;
        if let Some((mut text, provenance)) = config {
            let location = self.location_of("etcd-config", &provenance);
            if self.version.minor >= 17
                && text.contains("\nca-file:")
                && !text.contains("trusted-ca-file:")
            {
                text = text.replace("\nca-file:", "\ntrusted-ca-file:");
                self.warn(
                    WarningKind::Changed,
                    "etcd-config",
                    None,
                    location.clone(),
                    "`ca-file` is written as `trusted-ca-file`, the name the etcd client of Cilium 1.17+ reads",
                );
            }
            let dirs = certificate_dirs(&text);
            self.carry("etcd-config", text, provenance.clone());
            volumes.push(json!({
                "name": "etcd-config-path",
                "configMap": {"name": "cilium-config", "items": [{"key": "etcd-config", "path": config_name}]}
            }));
            mounts.push(
                json!({"name": "etcd-config-path", "mountPath": config_dir, "readOnly": true}),
            );
            for (i, dir) in dirs.iter().enumerate() {
                let name = if i == 0 {
                    "etcd-secrets".to_owned()
                } else {
                    format!("etcd-secrets-{}", i + 1)
                };
                volumes.push(json!({"name": name, "hostPath": {"path": dir, "type": "Directory"}}));
                mounts.push(json!({"name": name, "mountPath": dir, "readOnly": true}));
            }
            self.warn(
                WarningKind::Advice,
                "identity-allocation-mode",
                Some("kvstore"),
                location,
                format!(
                    "kvstore mode is kept: etcd-config is carried verbatim and the agent and operator mount the per-node etcd client certificates from the host ({}). With kube_network_plugin: cni Kubespray stops creating those certificates and hard links for new nodes: plan a move to identityAllocationMode crd",
                    if dirs.is_empty() { "no certificate paths found".to_owned() } else { dirs.join(", ") }
                ),
            );
            origin = Some(provenance);
        }
        if !volumes.is_empty() {
            let provenance = Provenance::Tool {
                reason: format!(
                    "mounts what etcd-config points at ({})",
                    origin
                        .as_ref()
                        .map_or_else(String::new, ToString::to_string)
                ),
            };
            self.values.chart.extra_volumes = Some(volumes.clone());
            self.values.chart.extra_volume_mounts = Some(mounts.clone());
            self.values.chart.operator.extra_volumes = Some(volumes);
            self.values.chart.operator.extra_volume_mounts = Some(mounts);
            for path in [
                "extraVolumes",
                "extraVolumeMounts",
                "operator.extraVolumes",
                "operator.extraVolumeMounts",
            ] {
                self.values.note(path, provenance.clone());
            }
            // Kubespray's kvstore-mode agent resolves through the cluster DNS; the chart leaves
            // host-network pods on the node's resolver (the workload gate).
            self.values.chart.dns_policy = Some("ClusterFirstWithHostNet".to_owned());
            self.values.note(
                "dnsPolicy",
                Provenance::Tool {
                    reason:
                        "Kubespray's kvstore-mode agent runs with dnsPolicy ClusterFirstWithHostNet"
                            .to_owned(),
                },
            );
        }
        Ok(())
    }

    fn check_cluster_name(&mut self) {
        let Some(name) = self.values.chart.cluster.name.clone() else {
            return;
        };
        if self.version.minor < 16 {
            return;
        }
        let valid = !name.is_empty()
            && name.len() <= 32
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        let location = self
            .values
            .provenance_of("cluster.name")
            .map(ToString::to_string)
            .unwrap_or_default();
        if !valid {
            self.warn(
                WarningKind::NotCarried,
                "cluster-name",
                Some(&name),
                location.clone(),
                format!("chart {} refuses cluster names that are not ≤ 32 characters of [a-z0-9-]; renaming changes the cluster identity", self.version),
            );
        }
        if self.version.rejects_default_cluster_name_with_id()
            && name == "default"
            && self.values.chart.cluster.id.is_some_and(|id| id != 0)
        {
            self.warn(
                WarningKind::NotCarried,
                "cluster-id",
                None,
                location,
                format!(
                    "chart {} refuses cluster.name \"default\" with a non-zero cluster.id",
                    self.version
                ),
            );
        }
    }

    /// Chart 1.18+ fails the render for native routing with masquerading but no native-routing CIDR.
    /// It reads the values as written: an unset `enableIPv4Masquerade` (null from 1.18) does not trip
    /// the IPv4 check, `enableIPv6Masquerade` defaults to true; ENI and Alibaba Cloud IPAM are exempt
    /// from the IPv4 check.
    fn check_native_routing(&mut self) {
        let chart = &self.values.chart;
        if self.version.minor < 18
            || chart.routing_mode.as_deref() != Some("native")
            || chart.ip_masq_agent.enabled == Some(true)
        {
            return;
        }
        let cloud_ipam = matches!(chart.ipam.mode.as_deref(), Some("eni" | "alibabacloud"));
        let mut missing = Vec::new();
        if chart.ipv4.enabled != Some(false)
            && chart.enable_ipv4_masquerade == Some(true)
            && !cloud_ipam
            && chart.ipv4_native_routing_cidr.is_none()
        {
            missing.push((
                "ipv4-native-routing-cidr",
                "ipv4NativeRoutingCIDR",
                "cilium_native_routing_cidr",
            ));
        }
        if chart.ipv6.enabled == Some(true)
            && chart.enable_ipv6_masquerade != Some(false)
            && chart.ipv6_native_routing_cidr.is_none()
        {
            missing.push((
                "ipv6-native-routing-cidr",
                "ipv6NativeRoutingCIDR",
                "cilium_native_routing_cidr_ipv6",
            ));
        }
        let location = self
            .values
            .provenance_of("routingMode")
            .map(ToString::to_string)
            .unwrap_or_default();
        for (key, value, variable) in missing {
            self.warn(
                WarningKind::Advice,
                key,
                None,
                location.clone(),
                format!("chart {} fails to render routingMode native with masquerading but no {value}; set {variable}", self.version),
            );
        }
    }

    /// Every key not mapped to a typed value is carried verbatim, so the rendered config keeps it;
    /// except a key the target chart writes itself, which is left to the chart (a second copy
    /// would make the ConfigMap hold the key twice) and named in one warning: the gate compares
    /// the chart's value with the live one.
    fn carry_rest(&mut self) {
        let rest: Vec<(String, (String, Provenance))> = self
            .effective
            .iter()
            .filter(|(k, _)| !self.consumed.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut left = Vec::new();
        for (key, (value, provenance)) in rest {
            if self.version.writes_itself(&key) {
                self.consumed.insert(key.clone());
                left.push(key);
            } else if crate::agent_defaults::not_read(&key, self.version) {
                // A copy in extraConfig would look kept while the agent ignores it.
                self.consumed.insert(key.clone());
                let location = self.location_of(&key, &provenance);
                self.warn(
                    WarningKind::NotCarried,
                    &key,
                    Some(&value),
                    location,
                    format!(
                        "not carried to chart {}: its agent no longer reads this key, so a copy in extraConfig would change nothing; the gate reports it",
                        self.version
                    ),
                );
            } else {
                self.carry(&key, value, provenance);
            }
        }
        if !left.is_empty() {
            let location = self
                .live_source
                .clone()
                .unwrap_or_else(|| "the inventory's cilium-config".to_owned());
            self.warn(
                WarningKind::Advice,
                "cilium-config",
                None,
                location,
                format!(
                    "chart {} writes {} of these keys itself, from values this tool does not set; each is left to the chart and the gate compares its value with this one: {}",
                    self.version,
                    left.len(),
                    left.join(", ")
                ),
            );
        }
    }
}

/// Values only the inventory knows: Deployments, resources, the API server address, advice.
fn inventory_only(mapper: &mut Mapper, vars: &InventoryVars) -> Result<(), Error> {
    let r = Reader { vars };
    let inv = |origin: &str, variable: &str| Provenance::Inventory {
        origin: origin.to_owned(),
        variable: variable.to_owned(),
    };

    let hubble_on = mapper.values.chart.hubble.enabled == Some(true);
    if hubble_on && let Some((install, o)) = r.boolean("cilium_hubble_install")? {
        mapper.values.chart.hubble.relay.enabled = Some(install);
        mapper
            .values
            .note("hubble.relay.enabled", inv(o, "cilium_hubble_install"));
        if let Some((ui, uo)) = r.boolean("cilium_enable_hubble_ui")? {
            mapper.values.chart.hubble.ui.enabled = Some(install && ui);
            mapper
                .values
                .note("hubble.ui.enabled", inv(uo, "cilium_enable_hubble_ui"));
        }
        if install && template_era(vars) {
            relay_server_tls(mapper, &r)?;
        }
    }
    if template_era(vars) {
        workload_settings(mapper, vars)?;
    }
    if let Some((replicas, o)) = r.string("cilium_operator_replicas")? {
        let n = replicas
            .trim()
            .parse::<u32>()
            .map_err(|_| Error::BadInventoryValue {
                origin: o.to_owned(),
                name: "cilium_operator_replicas".to_owned(),
                expected: "a whole number".to_owned(),
                found: format!("`{replicas}`"),
            })?;
        mapper.values.chart.operator.replicas = Some(n);
        mapper
            .values
            .note("operator.replicas", inv(o, "cilium_operator_replicas"));
    }

    let mut resources = serde_json::Map::new();
    let mut resource_origin = None;
    for (var, section, resource) in [
        ("cilium_memory_limit", "limits", "memory"),
        ("cilium_cpu_limit", "limits", "cpu"),
        ("cilium_memory_requests", "requests", "memory"),
        ("cilium_cpu_requests", "requests", "cpu"),
    ] {
        if let Some((value, o)) = r.string(var)? {
            let entry = resources.entry(section).or_insert_with(|| json!({}));
            if let Json::Object(map) = entry {
                map.insert(resource.to_owned(), Json::String(value));
            }
            resource_origin.get_or_insert_with(|| inv(o, var));
        }
    }
    if let Some(origin) = resource_origin {
        mapper.values.chart.resources = Some(Json::Object(resources));
        mapper.values.note("resources", origin);
    }

    if mapper.values.chart.ip_masq_agent.enabled == Some(true) {
        let mut config = serde_json::Map::new();
        let mut origin = None;
        if let Some((cidrs, o)) = r.list("cilium_non_masquerade_cidrs")? {
            config.insert("nonMasqueradeCIDRs".to_owned(), json!(cidrs));
            origin = Some(inv(o, "cilium_non_masquerade_cidrs"));
        }
        if let Some((link_local, o)) = r.boolean("cilium_masq_link_local")? {
            config.insert("masqLinkLocal".to_owned(), json!(link_local));
            origin.get_or_insert_with(|| inv(o, "cilium_masq_link_local"));
        }
        if let Some(origin) = origin {
            mapper.values.chart.ip_masq_agent.config = Some(Json::Object(config));
            mapper.values.note("ipMasqAgent.config", origin);
        }
    }

    if mapper.values.chart.kube_proxy_replacement.as_deref() == Some("true") {
        match r.string("kube_apiserver_global_endpoint")? {
            Some((endpoint, o)) if host_port(&endpoint).is_some() => {
                let (host, port) = host_port(&endpoint).unwrap_or_default();
                mapper.values.chart.k8s_service_host = Some(host);
                mapper.values.chart.k8s_service_port = Some(port);
                mapper
                    .values
                    .note("k8sServiceHost", inv(o, "kube_apiserver_global_endpoint"));
                mapper
                    .values
                    .note("k8sServicePort", inv(o, "kube_apiserver_global_endpoint"));
            }
            _ => {
                let location = mapper
                    .values
                    .provenance_of("kubeProxyReplacement")
                    .map(ToString::to_string)
                    .unwrap_or_default();
                mapper.warn(
                WarningKind::Advice,
                "k8sServiceHost",
                None,
                location,
                "without kube-proxy the agent and operator need the API server address: set k8sServiceHost/k8sServicePort (e.g. localhost and 6443 with Kubespray's nginx proxy)",
            );
            }
        }
    }

    if let Some((owner, o)) = r.string("kube_owner")?
        && owner != "root"
    {
        mapper.warn(
                WarningKind::Advice,
                "kube_owner",
                None,
                o.to_owned(),
                format!("kube_owner is `{owner}`: /opt/cni/bin is not root-owned and the chart's unprivileged init containers cannot write to it; run `cilium-migrate inventory --write` (kube_owner: root) and fix the nodes, or set securityContext.privileged"),
            );
    }

    if let Some((running, o)) = r.string("cilium_version")?
        && let Ok(running) = ChartVersion::parse(&running)
        && running.minor <= mapper.version.minor
    {
        mapper.values.chart.upgrade_compatibility =
            Some(format!("{}.{}", running.major, running.minor));
        mapper.values.note(
            "upgradeCompatibility",
            Provenance::Tool {
                reason: format!(
                    "the cluster runs Cilium {running} ({o}); keeps that minor's computed defaults"
                ),
            },
        );
    }
    Ok(())
}

/// Whether the inventory is of Kubespray's template era, whose manifests this module models:
/// there `cilium_version` carries its `v` (`v1.15.9`); the cilium-cli era writes it without and
/// passes the workload settings through its own values file (the release's values carry them).
fn template_era(vars: &InventoryVars) -> bool {
    vars.get("cilium_version")
        .and_then(|v| v.value.as_str())
        .is_none_or(|v| v.trim().starts_with('v'))
}

/// What Kubespray's v2.27 templates put into the agent DaemonSet and operator Deployment
/// directly, not into cilium-config: each maps to the chart value that renders the same field on
/// the node. `cilium_mtu` becomes the same `--mtu` flag (`extraArgs`), not `MTU`: that would
/// write a cilium-config key the live config lacks and drop the flag the agent runs with.
fn workload_settings(mapper: &mut Mapper, vars: &InventoryVars) -> Result<(), Error> {
    let r = Reader { vars };
    let inv = |origin: &str, variable: &str| Provenance::Inventory {
        origin: origin.to_owned(),
        variable: variable.to_owned(),
    };

    // Agent flags, in the template's order: `--mtu`, then the custom ones.
    let mut args = Vec::new();
    let mut origins = Vec::new();
    if let Some((mtu, o)) = r.string("cilium_mtu")?
        && !mtu.is_empty()
    {
        args.push(format!("--mtu={mtu}"));
        origins.push(inv(o, "cilium_mtu"));
    }
    if let Some((custom, o)) = flags(vars, "cilium_agent_custom_args")?
        && !custom.is_empty()
    {
        args.extend(custom);
        origins.push(inv(o, "cilium_agent_custom_args"));
    }
    if !args.is_empty() {
        mapper.values.chart.extra_args = Some(args);
        mapper.values.note("extraArgs", joined(origins));
    }
    if let Some((custom, o)) = flags(vars, "cilium_operator_custom_args")?
        && !custom.is_empty()
    {
        mapper.values.chart.operator.extra_args = Some(custom);
        mapper
            .values
            .note("operator.extraArgs", inv(o, "cilium_operator_custom_args"));
    }

    if let Some((env, o)) = objects(vars, "cilium_agent_extra_env_vars", &["name"])?
        && !env.is_empty()
    {
        mapper.values.chart.extra_env = Some(env);
        mapper
            .values
            .note("extraEnv", inv(o, "cilium_agent_extra_env_vars"));
    }

    for (variable, path) in [
        ("cilium_agent_extra_volume_mounts", "extraVolumeMounts"),
        ("cilium_operator_extra_volumes", "operator.extraVolumes"),
        (
            "cilium_operator_extra_volume_mounts",
            "operator.extraVolumeMounts",
        ),
    ] {
        let required: &[&str] = if path.ends_with("Mounts") {
            &["name", "mountPath"]
        } else {
            &["name"]
        };
        let Some((items, o)) = objects(vars, variable, required)? else {
            continue;
        };
        if items.is_empty() {
            continue;
        }
        let chart = &mut mapper.values.chart;
        let list = match path {
            "extraVolumeMounts" => &mut chart.extra_volume_mounts,
            "operator.extraVolumes" => &mut chart.operator.extra_volumes,
            _ => &mut chart.operator.extra_volume_mounts,
        };
        // After the etcd certificate mounts of kvstore mode, as Kubespray appends them.
        list.get_or_insert_with(Vec::new)
            .extend(items.iter().cloned());
        let provenance = match mapper.values.provenance_of(path) {
            Some(before) => joined(vec![before.clone(), inv(o, variable)]),
            None => inv(o, variable),
        };
        mapper.values.note(path, provenance);
        if variable == "cilium_agent_extra_volume_mounts" {
            kubespray_only_volumes(mapper, &items, o);
        }
    }

    if let Some((volumes, o)) = objects(vars, "cilium_agent_extra_volumes", &["name"])?
        && !volumes.is_empty()
    {
        mapper.warn(
            WarningKind::Advice,
            "cilium_agent_extra_volumes",
            None,
            o.to_owned(),
            "not carried: Kubespray's v2.27 DaemonSet template never renders cilium_agent_extra_volumes (only the mounts, which name the DaemonSet's own volumes), so the running agent has none of these volumes",
        );
    }
    Ok(())
}

/// The volumes of Kubespray's agent DaemonSet that chart 1.15+ does not render, by name, as
/// Kubespray defines them: a Kubespray extra mount may name one (its extra volumes are never
/// rendered).
const KUBESPRAY_ONLY_AGENT_VOLUMES: &[(&str, &str)] = &[(
    "cilium-config-path",
    r#"{"name": "cilium-config-path", "configMap": {"name": "cilium-config"}}"#,
)];

/// Adds to `extraVolumes` the Kubespray-only volumes the extra mounts name.
fn kubespray_only_volumes(mapper: &mut Mapper, mounts: &[Json], origin: &str) {
    for (name, volume) in KUBESPRAY_ONLY_AGENT_VOLUMES {
        let named = mounts.iter().any(|m| m["name"] == *name);
        let present = mapper
            .values
            .chart
            .extra_volumes
            .iter()
            .flatten()
            .any(|v| v["name"] == *name);
        if named && !present {
            mapper
                .values
                .chart
                .extra_volumes
                .get_or_insert_with(Vec::new)
                .push(serde_json::from_str(volume).unwrap_or(Json::Null));
            let reason = Provenance::Tool {
                reason: format!(
                    "Kubespray's DaemonSet volume {name}, which an extra mount names ({origin})"
                ),
            };
            let provenance = match mapper.values.provenance_of("extraVolumes") {
                Some(before) => joined(vec![before.clone(), reason]),
                None => reason,
            };
            mapper.values.note("extraVolumes", provenance);
        }
    }
}

/// One provenance for a value several sources fill.
fn joined(mut origins: Vec<Provenance>) -> Provenance {
    if origins.len() == 1 {
        return origins.remove(0);
    }
    Provenance::Tool {
        reason: origins
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; then "),
    }
}

/// A custom-args variable: a list of flags, or one string (the template writes it as one item).
fn flags<'a>(vars: &'a InventoryVars, name: &str) -> Result<Option<(Vec<String>, &'a str)>, Error> {
    let Some(var) = vars.get(name) else {
        return Ok(None);
    };
    let bad = |expected: &str| Error::BadInventoryValue {
        origin: var.origin.clone(),
        name: name.to_owned(),
        expected: expected.to_owned(),
        found: crate::inventory::kind_of(&var.value),
    };
    let items: Vec<&Json> = match &var.value {
        Json::Null => return Ok(None),
        Json::Array(items) => items.iter().collect(),
        one @ Json::String(s) if !s.is_empty() => vec![one],
        Json::String(_) => Vec::new(),
        _ => return Err(bad("a list of flags such as --log-opt=format=json")),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Json::String(s) if s.contains("{{") || s.contains("{%") => {
                return Err(bad(
                    "flags without Jinja expressions (they are not evaluated)",
                ));
            }
            Json::String(_) | Json::Number(_) | Json::Bool(_) => {
                out.push(crate::inventory::text_of(item));
            }
            _ => return Err(bad("a list of flags such as --log-opt=format=json")),
        }
    }
    Ok(Some((out, var.origin.as_str())))
}

/// A list of Kubernetes objects (env vars, volumes, mounts), each with the `required` fields.
fn objects<'a>(
    vars: &'a InventoryVars,
    name: &str,
    required: &[&str],
) -> Result<Option<(Vec<Json>, &'a str)>, Error> {
    let Some(var) = vars.get(name) else {
        return Ok(None);
    };
    let expected = format!(
        "a list of mappings, each with {}, as in a pod spec",
        required.join(" and ")
    );
    let items = match &var.value {
        Json::Null => return Ok(None),
        Json::Array(items) => items,
        _ => {
            return Err(Error::BadInventoryValue {
                origin: var.origin.clone(),
                name: name.to_owned(),
                expected,
                found: crate::inventory::kind_of(&var.value),
            });
        }
    };
    for item in items {
        let complete = item.is_object() && required.iter().all(|f| item.get(*f).is_some());
        if !complete || item.to_string().contains("{{") {
            return Err(Error::BadInventoryValue {
                origin: var.origin.clone(),
                name: name.to_owned(),
                expected: format!("{expected} (no Jinja expressions: they are not evaluated)"),
                found: format!("the item {item}"),
            });
        }
    }
    Ok(Some((items.clone(), var.origin.as_str())))
}

/// Kubespray's relay serves TLS exactly when the agents do (both follow
/// `cilium_hubble_tls_generate`): on 443, and its UI connects with TLS. The chart's relay does so
/// only with `hubble.relay.tls.server.enabled`, and only together with `hubble.tls.enabled`.
fn relay_server_tls(mapper: &mut Mapper, r: &Reader<'_>) -> Result<(), Error> {
    if mapper.values.chart.hubble.tls.enabled != Some(true) {
        return Ok(());
    }
    // The live agents' TLS wins; an inventory that says otherwise is already a disagreement.
    let provenance = match r.boolean("cilium_hubble_tls_generate")? {
        Some((true, o)) => Provenance::Inventory {
            origin: o.to_owned(),
            variable: "cilium_hubble_tls_generate".to_owned(),
        },
        _ => mapper
            .values
            .provenance_of("hubble.tls.enabled")
            .cloned()
            .unwrap_or_else(|| Provenance::Tool {
                reason: "Hubble TLS is on".to_owned(),
            }),
    };
    mapper.values.chart.hubble.relay.tls.server.enabled = Some(true);
    mapper
        .values
        .note("hubble.relay.tls.server.enabled", provenance.clone());
    mapper.warn(
        WarningKind::Changed,
        "hubble.relay.tls.server.enabled",
        None,
        provenance.to_string(),
        "hubble-relay keeps serving TLS on port 443 and hubble-ui keeps connecting with TLS, now with the chart's certificates: the relay presents *.hubble-relay.cilium.io (Secret hubble-relay-server-certs) instead of the agents' *.<cluster>.hubble-grpc.cilium.io, and the UI its own client certificate (hubble-ui-client-certs). A hubble CLI that connects to the relay with TLS must now pass --tls-server-name ui.hubble-relay.cilium.io",
    );
    Ok(())
}

/// `:9962` -> 9962. An address with a host is not what the chart renders.
fn port_only(addr: &str) -> Option<u32> {
    addr.trim().strip_prefix(':')?.parse().ok()
}

/// `https://localhost:6443` -> (`localhost`, `6443`).
fn host_port(endpoint: &str) -> Option<(String, String)> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let rest = rest.split('/').next()?;
    let (host, port) = rest.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        None
    } else {
        Some((host.to_owned(), port.to_owned()))
    }
}

/// The directories of the certificate files an etcd-config names (`ca-file`, `cert-file`, ...).
fn certificate_dirs(text: &str) -> Vec<String> {
    let parsed: Option<Json> = serde_saphyr::from_str(text).ok();
    let mut dirs = Vec::new();
    if let Some(Json::Object(map)) = parsed {
        for key in ["ca-file", "trusted-ca-file", "cert-file", "key-file"] {
            if let Some(path) = map.get(key).and_then(Json::as_str)
                && let Some((dir, _)) = path.rsplit_once('/')
                && !dir.is_empty()
                && !dirs.iter().any(|d| d == dir)
            {
                dirs.push(dir.to_owned());
            }
        }
    }
    dirs
}

/// Booleans as the agent reads them (case-insensitive; Ansible writes `True`/`False`).
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}
