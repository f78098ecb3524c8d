//! `check`: pure judgements over a [`ClusterState`] (and optionally the inventory), one
//! [`Item`] per prerequisite with pass/warn/fail and the fix.

use std::fmt::Write as _;

use cilium_values::{ChartVersion, NEWEST_MINOR, OLDEST_MINOR};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bundle::{BundleFit, BundleVersion, Channel, Need, NeededCrd, Requirement, bundle_fit};
use crate::inventory::{InventoryFacts, truthy};
use crate::state::{ClusterState, CrdFacts};

/// How one item came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, with a known trap or a missing optional part.
    Warn,
    /// Gateway API will not work (or the chart refuses it) until fixed.
    Fail,
}

impl Status {
    /// The word in the table.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// What can fix an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "by")]
pub enum Remedy {
    /// Only the operator (the fix text says how).
    Manual,
    /// `enable` merges these Helm values into the release's.
    Values {
        /// A partial values tree.
        values: Value,
    },
    /// `enable --install-crds FILE` (the bundle the fix names).
    InstallCrds,
}

/// One line of the check table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// What was checked, in the operator's words.
    pub name: String,
    /// The outcome.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, when not a pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// What can apply the fix.
    pub remedy: Remedy,
}

impl Item {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
            remedy: Remedy::Manual,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
            remedy: Remedy::Manual,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
            remedy: Remedy::Manual,
        }
    }

    fn remedy(mut self, remedy: Remedy) -> Item {
        self.remedy = remedy;
        self
    }
}

/// The result of `check`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The Cilium version judged.
    pub cilium_version: Option<String>,
    /// The Gateway API bundle it needs (`v1.2.0`).
    pub bundle: Option<String>,
    /// Every item, in table order.
    pub items: Vec<Item>,
}

impl Report {
    /// Whether any item failed (the command exits non-zero).
    pub fn failed(&self) -> bool {
        self.items.iter().any(|i| i.status == Status::Fail)
    }

    /// The failing items.
    pub fn failures(&self) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(|i| i.status == Status::Fail)
    }

    /// The item with this name.
    pub fn item(&self, name: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.name == name)
    }

    /// The table: status, item, detail; the fix indented below a warn or fail.
    pub fn table(&self) -> String {
        let mut table = comfy_table::Table::new();
        // No borders, no styling: the same plain text on a terminal, in a pipe and in tests.
        table.load_preset(comfy_table::presets::NOTHING);
        for item in &self.items {
            table.add_row([item.status.label(), &item.name, &item.detail]);
            if let Some(fix) = &item.fix {
                table.add_row(["", "", &format!("fix: {fix}")]);
            }
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Gateway API prerequisites for Cilium {} (CRD bundle {})",
            self.cilium_version.as_deref().unwrap_or("?"),
            self.bundle.as_deref().unwrap_or("?")
        );
        if !self.items.is_empty() {
            let _ = writeln!(out, "{}", table.trim_fmt());
        }
        let (fails, warns) = self.items.iter().fold((0, 0), |(f, w), i| match i.status {
            Status::Fail => (f + 1, w),
            Status::Warn => (f, w + 1),
            Status::Pass => (f, w),
        });
        let _ = writeln!(out, "{fails} failed, {warns} warnings");
        out
    }
}

/// Every check over `state` (and the inventory's guards when given).
pub fn check(state: &ClusterState, inventory: Option<&InventoryFacts>) -> Report {
    check_for(state, inventory, &state.crds)
}

/// [`check`] with the CRD requirement worked out from `live`, the CRDs in the cluster now: `enable`
/// judges the state after its CRDs are applied against what the cluster uses before (the
/// TLSRoute versions that must stay served, [`Requirement::for_cluster`]).
pub(crate) fn check_for(
    state: &ClusterState,
    inventory: Option<&InventoryFacts>,
    live: &[CrdFacts],
) -> Report {
    let mut items = Vec::new();
    let version = state
        .cilium_version
        .as_deref()
        .map(ChartVersion::parse)
        .transpose();
    let version = match version {
        Ok(Some(version)) => {
            items.push(Item::pass("Cilium version", format!("{version}")));
            Some(version)
        }
        Ok(None) => {
            items.push(Item::fail(
                "Cilium version",
                "unknown: no Helm release and no --cilium-version",
                "hand Cilium over to Helm first, or pass --cilium-version X.Y.Z",
            ));
            None
        }
        Err(error) => {
            items.push(Item::fail(
                "Cilium version",
                error.to_string(),
                format!(
                    "Gateway API checks know Cilium 1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}; upgrade to one of them"
                ),
            ));
            None
        }
    };
    let requirement = version.and_then(|v| Requirement::for_cluster(v.minor, live));
    if let (Some(version), None) = (version, &requirement) {
        // Without it no CRD would be judged and enable would go ahead blind.
        items.push(Item::fail(
            "Gateway API CRDs",
            format!("this tool does not know which Gateway API CRDs Cilium {version} needs"),
            "use a cilium-migrate that knows this Cilium minor",
        ));
    }

    items.push(release_item(state));
    if state.config.is_none() {
        items.push(Item::fail(
            "cilium-config",
            "ConfigMap cilium-config is missing",
            "is Cilium installed in this namespace? pass --namespace",
        ));
    }

    if let Some(requirement) = &requirement {
        items.extend(crd_items(state, requirement));
        items.extend(bundle_item(state, requirement));
    }
    if let Some(version) = version {
        items.push(service_datapath_item(state, version));
        items.push(l7_proxy_item(state));
        items.push(load_balancer_item(state));
        items.push(ingress_nginx_address_item(state));
        items.push(tproxy_item(state));
        items.push(host_network_item(state));
        items.push(host_firewall_item(state));
        items.push(regressions_item(version));
        items.push(operator_start_item(state));
        items.push(enabled_item(state));
    }
    if let Some(inventory) = inventory {
        items.extend(inventory_items(state, inventory));
    }
    Report {
        cilium_version: version.map(|v| v.to_string()),
        bundle: requirement.map(|r| r.bundle.to_string()),
        items,
    }
}

fn release_item(state: &ClusterState) -> Item {
    match &state.release {
        None => Item::fail(
            "Helm release",
            "no Helm release of Cilium",
            "hand Cilium over to Helm first (cilium-migrate migrate); enable upgrades that release",
        ),
        Some(release) if release.status != "deployed" => Item::fail(
            "Helm release",
            format!(
                "{}/{} revision {} is {}",
                release.namespace, release.name, release.revision, release.status
            ),
            format!(
                "finish or roll back the last operation first (helm history {} -n {})",
                release.name, release.namespace
            ),
        ),
        Some(release) => Item::pass(
            "Helm release",
            format!(
                "{}/{} revision {} deployed (chart {})",
                release.namespace,
                release.name,
                release.revision,
                release.chart_version.as_deref().unwrap_or("?")
            ),
        ),
    }
}

/// The versions `needed` must serve that `crd` does not: its own, then those to keep.
fn unserved_needs<'a>(needed: &'a NeededCrd, crd: &CrdFacts) -> Vec<&'a str> {
    std::iter::once(needed.version)
        .chain(needed.keep_served.iter().map(String::as_str))
        .filter(|version| !crd.served.iter().any(|v| v == version))
        .collect()
}

fn crd_items(state: &ClusterState, requirement: &Requirement) -> Vec<Item> {
    let missing: Vec<&NeededCrd> = requirement
        .crds
        .iter()
        .filter(|needed| {
            state
                .crd(needed.plural)
                .is_none_or(|crd| !unserved_needs(needed, crd).is_empty())
        })
        .collect();
    let commands = |crds: &[&NeededCrd]| requirement.install_commands(crds).join(" && ");
    requirement
        .crds
        .iter()
        .map(|needed| {
            let name = format!("CRD {}", crate::bundle::crd_name(needed.plural));
            match state.crd(needed.plural) {
                None if needed.need == Need::Required => Item::fail(
                    name,
                    format!(
                        "missing: Cilium {} needs {} {} ({} channel of {}); the operator keeps Gateway API off without it (\"Required GatewayAPI resources are not found\")",
                        requirement.cilium_minor_text(),
                        needed.kind,
                        needed.version,
                        needed.channel,
                        requirement.bundle
                    ),
                    commands(&missing),
                )
                .remedy(Remedy::InstallCrds),
                None => Item::warn(
                    name,
                    format!("missing (optional): {} support stays off", needed.kind),
                    commands(&[needed]),
                ),
                Some(crd) if !unserved_needs(needed, crd).is_empty() => {
                    let unserved = unserved_needs(needed, crd);
                    let mut detail = format!(
                        "does not serve {} (serves {})",
                        unserved.join(", "),
                        list_or_none(&crd.served)
                    );
                    if unserved.contains(&needed.version) {
                        detail.push_str(&format!(
                            "; the operator cannot reconcile {}",
                            needed.kind
                        ));
                    }
                    let mut fix = format!(
                        "install {} from {}: {}",
                        needed.kind,
                        requirement.bundle,
                        commands(&missing)
                    );
                    if !needed.keep_served.is_empty() {
                        let kept = needed.keep_served.join(", ");
                        detail.push_str(&format!(
                            "; {}s in this cluster use {kept} (served or stored), which the {} standard {} does not serve: they would become unreadable",
                            needed.kind, requirement.bundle, needed.kind
                        ));
                        fix = format!(
                            "install the {} {} {}, which serves {} and {kept} (Cilium 1.{}'s installation guide: TLSRoutes from before 1.20 need the experimental TLSRoute): {}; if kubectl refuses with ValidatingAdmissionPolicy safe-upgrades.gateway.networking.k8s.io (from a v1.5+ standard install; it forbids an experimental CRD over a standard one), delete ValidatingAdmissionPolicyBinding safe-upgrades.gateway.networking.k8s.io first",
                            requirement.bundle,
                            needed.channel,
                            needed.kind,
                            needed.version,
                            requirement.cilium_minor,
                            commands(&missing)
                        );
                    }
                    Item::fail(name, detail, fix).remedy(Remedy::InstallCrds)
                }
                Some(crd) => Item::pass(
                    name,
                    format!(
                        "serves {} (bundle {} {})",
                        needed.version,
                        crd.bundle_version.as_deref().unwrap_or("unannotated"),
                        crd.channel.as_deref().unwrap_or("")
                    )
                    .trim_end()
                    .to_owned(),
                ),
            }
        })
        .collect()
}

impl Requirement {
    fn cilium_minor_text(&self) -> String {
        format!("1.{}", self.cilium_minor)
    }
}

fn list_or_none(list: &[String]) -> String {
    if list.is_empty() {
        "nothing".to_owned()
    } else {
        list.join(", ")
    }
}

fn bundle_item(state: &ClusterState, requirement: &Requirement) -> Option<Item> {
    let present: Vec<_> = requirement
        .crds
        .iter()
        .filter_map(|needed| Some((needed, state.crd(needed.plural)?)))
        .collect();
    if present.is_empty() {
        return None;
    }
    let name = "CRD bundle";
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let mut bundles: Vec<(String, String)> = present
        .iter()
        .map(|(_, crd)| (text(&crd.bundle_version), text(&crd.channel)))
        .collect();
    bundles.sort_unstable();
    bundles.dedup();
    // An experimental CRD where the requirement asks for one (TLSRoute beside a standard
    // bundle) is the install the fix gives, not a mix: only the versions and the channel of
    // the rest count.
    let mut channels: Vec<String> = present
        .iter()
        .filter(|(needed, crd)| {
            !(needed.channel == Channel::Experimental
                && crd.channel.as_deref() == Some(Channel::Experimental.as_str()))
        })
        .map(|(_, crd)| text(&crd.channel))
        .collect();
    channels.sort_unstable();
    channels.dedup();
    let mut versions: Vec<&str> = bundles.iter().map(|(v, _)| v.as_str()).collect();
    versions.dedup();
    let install = requirement
        .install_commands(&requirement.crds.iter().collect::<Vec<_>>())
        .join(" && ");
    if versions.iter().any(|version| version.is_empty()) {
        return Some(Item::warn(
            name,
            "some Gateway API CRDs carry no bundle-version annotation (not installed from an upstream bundle)",
            format!(
                "install the upstream bundle {}: {install}",
                requirement.bundle
            ),
        ));
    }
    if versions.len() > 1 || channels.len() > 1 {
        let seen: Vec<String> = bundles.iter().map(|(v, c)| format!("{v} {c}")).collect();
        return Some(Item::warn(
            name,
            format!("mixed bundles: {}", seen.join(", ")),
            format!("install one bundle, {}: {install}", requirement.bundle),
        ));
    }
    let version_text = versions[0];
    let channel_text = channels
        .first()
        .map_or(Channel::Experimental.as_str(), String::as_str);
    let Some(version) = BundleVersion::parse(version_text) else {
        return Some(Item::warn(
            name,
            format!("unreadable bundle-version {version_text:?}"),
            format!(
                "install the upstream bundle {}: {install}",
                requirement.bundle
            ),
        ));
    };
    let channel = Channel::parse(channel_text).unwrap_or(Channel::Standard);
    let seen = format!("{version} {channel}");
    Some(match bundle_fit(requirement, &version, channel) {
        BundleFit::Expected => Item::pass(
            name,
            format!(
                "{seen}, the bundle Cilium 1.{} is built against",
                requirement.cilium_minor
            ),
        ),
        BundleFit::Newer => Item::warn(
            name,
            format!(
                "{seen} is newer than {} (what Cilium 1.{} is tested with); rolling Cilium back later leaves these CRDs behind (cilium/cilium#34835)",
                requirement.bundle, requirement.cilium_minor
            ),
            format!("prefer {}: {install}", requirement.bundle),
        ),
        BundleFit::TooOld => Item::fail(
            name,
            format!(
                "{seen} is older than {}, which Cilium 1.{} needs",
                requirement.bundle, requirement.cilium_minor
            ),
            install,
        )
        .remedy(Remedy::InstallCrds),
        BundleFit::Breaks(why) => {
            Item::fail(name, format!("{seen}: {why}"), install).remedy(Remedy::InstallCrds)
        }
    })
}

/// `kube-proxy-replacement` as the agent reads it (lower case; missing = `false`).
fn kube_proxy_replacement(state: &ClusterState) -> String {
    state
        .config_value("kube-proxy-replacement")
        .unwrap_or("false")
        .trim()
        .to_ascii_lowercase()
}

/// Whether Cilium replaces kube-proxy (`true`, or 1.15's `strict`).
pub fn kube_proxy_replaced(state: &ClusterState) -> bool {
    cilium_values::replaces_kube_proxy(&kube_proxy_replacement(state))
}

fn service_datapath_item(state: &ClusterState, version: ChartVersion) -> Item {
    let name = "kube-proxy replacement / NodePort";
    let kpr = kube_proxy_replacement(state);
    if kube_proxy_replaced(state) {
        return Item::pass(name, format!("kube-proxy-replacement: {kpr}"));
    }
    if version.minor >= 18 {
        return Item::fail(
            name,
            format!(
                "kube-proxy-replacement: {kpr}; Cilium 1.18+ disables Gateway API without it (\"Gateway API support requires kube-proxy-replacement enabled\")"
            ),
            "run `cilium-migrate kube-proxy-replacement enable --inventory DIR` (the plan; then --apply): it sets kubeProxyReplacement: true with k8sServiceHost/k8sServicePort, removes kube-proxy and its node rules and sets kube_proxy_remove: true in the inventory, reversibly; gateway-api enable does not switch the service datapath for you",
        );
    }
    let values_kpr = state
        .release_value("kubeProxyReplacement")
        .map(|v| match v {
            Value::String(s) => s.to_ascii_lowercase(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    if kpr == "disabled" || values_kpr == "disabled" {
        return Item::fail(
            name,
            "kubeProxyReplacement is \"disabled\": the chart refuses gatewayAPI.enabled with it",
            "enable sets kubeProxyReplacement: \"false\" (the same datapath, spelled the way the chart accepts) and nodePort.enabled: true",
        )
        .remedy(Remedy::Values {
            values: json!({ "kubeProxyReplacement": "false", "nodePort": { "enabled": true } }),
        });
    }
    if state.config_on("enable-node-port") {
        return Item::pass(
            name,
            format!("kube-proxy-replacement: {kpr}, enable-node-port: true"),
        );
    }
    Item::fail(
        name,
        format!("kube-proxy-replacement: {kpr} and NodePort off; Cilium 1.{} needs one of them for Gateway API", version.minor),
        "enable sets nodePort.enabled: true (or set kubeProxyReplacement: true yourself)",
    )
    .remedy(Remedy::Values {
        values: json!({ "nodePort": { "enabled": true } }),
    })
}

fn l7_proxy_item(state: &ClusterState) -> Item {
    let name = "L7 proxy";
    match state.config_value("enable-l7-proxy") {
        Some(v) if !v.trim().eq_ignore_ascii_case("true") => Item::fail(
            name,
            format!(
                "enable-l7-proxy: {v}; Gateway API runs through Envoy and the chart refuses it"
            ),
            "enable sets l7Proxy: true",
        )
        .remedy(Remedy::Values {
            values: json!({ "l7Proxy": true }),
        }),
        Some(_) => Item::pass(name, "enable-l7-proxy: true"),
        None => Item::pass(name, "enable-l7-proxy unset (on by default)"),
    }
}

fn load_balancer_item(state: &ClusterState) -> Item {
    let name = "load-balancer provider";
    if state.config_on("gateway-api-hostnetwork-enabled") {
        return Item::pass(
            name,
            "host-network mode: Gateways need no LoadBalancer Service",
        );
    }
    let pools = state.lb_ip_pools.unwrap_or(0);
    let l2_on = state.config_on("enable-l2-announcements");
    let l2_policies = state.l2_announcement_policies.unwrap_or(0);
    let bgp_on = state.config_on("enable-bgp-control-plane");
    let announced = (l2_on && l2_policies > 0) || (bgp_on && state.bgp_objects > 0);
    let seen = format!(
        "{pools} CiliumLoadBalancerIPPool, L2 announcements {} with {l2_policies} policies, BGP {} with {} objects",
        if l2_on { "on" } else { "off" },
        if bgp_on { "on" } else { "off" },
        state.bgp_objects
    );
    let fix = "each Gateway gets a LoadBalancer Service: create a CiliumLoadBalancerIPPool (cilium_loadbalancer_ip_pools) and announce it with l2announcements.enabled: true plus a CiliumL2AnnouncementPolicy, or with BGP (bgpControlPlane.enabled and CiliumBGPClusterConfig); without a provider (or MetalLB) Gateway addresses stay <pending>";
    if pools == 0 || !announced {
        return Item::warn(name, seen, fix);
    }
    if l2_on && !kube_proxy_replaced(state) {
        return Item::warn(
            name,
            format!("{seen}; L2 announcements need kube-proxy replacement"),
            "set kubeProxyReplacement: true, or announce with BGP",
        );
    }
    Item::pass(name, seen)
}

/// What `migrate-ingress` can do with ingress-nginx's address: take it over (a pool holds it, or
/// cut-over adds a /32 pool for it) so that DNS need not change, or DNS moves.
fn ingress_nginx_address_item(state: &ClusterState) -> Item {
    let name = "ingress-nginx address";
    let pools = if state.lb_ip_pool_blocks.is_empty() {
        "no LB-IPAM pool".to_owned()
    } else {
        let listed: Vec<String> = state
            .lb_ip_pool_blocks
            .iter()
            .map(|p| format!("{} ({})", p.name, p.blocks.join(", ")))
            .collect();
        format!("pools {}", listed.join("; "))
    };
    let Some(nginx) = &state.ingress_nginx else {
        return Item::pass(
            name,
            format!(
                "no ingress-nginx controller Service ({}); {pools}",
                crate::collect::INGRESS_NGINX_SELECTOR
            ),
        );
    };
    let Some(ip) = nginx
        .addresses
        .iter()
        .find(|a| a.parse::<std::net::IpAddr>().is_ok())
    else {
        return Item::warn(
            name,
            format!("Service {} has no external IP; {pools}", nginx.service),
            "migrate-ingress cannot take its address over: give the Gateway one with --address pool=CIDR (or an existing pool) and change DNS at cut-over",
        );
    };
    let held = match crate::migrate_ingress::pool_containing(&state.lb_ip_pool_blocks, ip) {
        Some(pool) => format!("in pool {}", pool.name),
        None => "in no LB-IPAM pool: cut-over adds a /32 pool for it".to_owned(),
    };
    Item::pass(
        name,
        format!(
            "Service {} at {}; {ip} is {held}: `migrate-ingress --layout shared --address take-over` keeps DNS as it is; {pools}",
            nginx.service,
            nginx.addresses.join(", ")
        ),
    )
}

fn tproxy_item(state: &ClusterState) -> Item {
    let name = "TPROXY";
    if state.config_on("enable-bpf-tproxy") {
        return Item::pass(name, "bpf.tproxy: eBPF TPROXY (no iptables dependency)");
    }
    Item::warn(
        name,
        "iptables TPROXY (bpf.tproxy off): nodes need iptables with the TPROXY and socket matches, else connections to the Gateway time out before reaching Envoy (cilium/cilium#38100)",
        "check `iptables -m socket --help` and the xt_TPROXY/xt_socket modules on every node, or set bpf.tproxy: true (beta)",
    )
}

fn host_network_item(state: &ClusterState) -> Item {
    let name = "host-network mode";
    if !state.config_on("gateway-api-hostnetwork-enabled") {
        return Item::pass(name, "off (LoadBalancer Services)");
    }
    Item::warn(
        name,
        "on: listeners bind on every selected node; ports must be unique per Gateway and free on each node, ports below 1024 need NET_BIND_SERVICE, TCPRoute/UDPRoute are not supported (cilium/cilium#47234), and 1.18.3 Gateways can stay PROGRAMMED False (#42786)",
        "use ports >= 1024 or set envoy.securityContext.capabilities.keepCapNetBindService: true with NET_BIND_SERVICE; restrict nodes with gatewayAPI.hostNetwork.nodes.matchLabels",
    )
}

fn host_firewall_item(state: &ClusterState) -> Item {
    let name = "host firewall";
    if state.config_on("enable-host-firewall") {
        return Item::warn(
            name,
            "on: Envoy got no replies with the host firewall on (cilium/cilium#35559)",
            "allow the Envoy traffic in your CiliumClusterwideNetworkPolicy host policies and test a Gateway before relying on it",
        );
    }
    Item::pass(name, "off")
}

fn regressions_item(version: ChartVersion) -> Item {
    let name = "known regressions";
    match (version.minor, version.patch) {
        (18, 0..=5) => Item::warn(
            name,
            format!(
                "{version}: HTTPRoutes stop reloading (cilium/cilium#42220, 1.18.2), HTTP listener dies once an HTTPS listener is added (#36750, fixed ~1.18.5), CiliumGatewayClassConfig not found (#42956/#43647, 1.18.4-1.18.5), Node IPAM with GatewayClass parameters (#42890)"
            ),
            "upgrade to 1.18.6 or later before enabling Gateway API",
        ),
        (19, patch) => Item::warn(
            name,
            format!(
                "{version}: a bad Gateway/TLSRoute can break CNI (cilium/cilium#45925, fixed by #45371, backport #45966){}",
                if patch <= 1 {
                    "; 1.19.0-1.19.1 LoadBalancer external access reported broken (KBVE/kbve#8616)"
                } else {
                    ""
                }
            ),
            "use the newest 1.19 patch (check its notes for backport #45966) and keep the CRDs at v1.4.x",
        ),
        _ => Item::pass(name, format!("none recorded for {version}")),
    }
}

fn operator_start_item(state: &ClusterState) -> Item {
    let name = "operator start";
    let newest_crd = state.crds.iter().filter_map(|c| c.created_unix).max();
    match (state.operator_started_unix, newest_crd) {
        (Some(started), Some(created)) if created > started => Item::warn(
            name,
            "the operator started before the Gateway API CRDs appeared; it checks them only at start and keeps its Gateway controller off (rancher/rke2#8839)",
            "enable restarts it; by hand: kubectl -n kube-system rollout restart deployment/cilium-operator",
        ),
        (Some(_), _) => Item::pass(name, "started after the Gateway API CRDs appeared"),
        (None, _) => Item::warn(
            name,
            "no running cilium-operator pod",
            "check Deployment cilium-operator; enable waits for it to roll out",
        ),
    }
}

fn enabled_item(state: &ClusterState) -> Item {
    let name = "gatewayAPI.enabled";
    if !state.config_on("enable-gateway-api") {
        return Item::pass(name, "off (enable --apply turns it on)");
    }
    match &state.gateway_class {
        Some(class) if class.accepted.as_deref() == Some("True") => {
            Item::pass(name, "on; GatewayClass cilium Accepted")
        }
        Some(class) => Item::warn(
            name,
            format!(
                "on, but GatewayClass cilium is not Accepted ({}: {})",
                class.accepted.as_deref().unwrap_or("no condition"),
                class.message
            ),
            "restart the operator after the CRDs are installed: kubectl -n kube-system rollout restart deployment/cilium-operator",
        ),
        None => Item::warn(
            name,
            "on, but there is no GatewayClass cilium",
            "the chart creates it only when the GatewayClass API exists at render time: install the CRDs, then run enable --apply again",
        ),
    }
}

fn inventory_items(state: &ClusterState, inventory: &InventoryFacts) -> Vec<Item> {
    let text = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut items = Vec::new();

    let name = "kubespray kube_network_plugin";
    items.push(match &inventory.kube_network_plugin {
        Some(v) if text(&v.value) == "cni" => Item::pass(name, format!("cni ({})", v.origin)),
        Some(v) => Item::fail(
            name,
            format!("{} ({}): Kubespray would reinstall Cilium over the Helm release", text(&v.value), v.origin),
            "set kube_network_plugin: cni in group_vars/k8s_cluster/k8s-cluster.yml (cilium-migrate inventory --write)",
        ),
        None => Item::fail(
            name,
            "not set",
            "set kube_network_plugin: cni in group_vars/k8s_cluster/k8s-cluster.yml",
        ),
    });

    let name = "kubespray kube_owner";
    items.push(match &inventory.kube_owner {
        Some(v) if text(&v.value) == "root" => Item::pass(name, format!("root ({})", v.origin)),
        Some(v) => Item::fail(
            name,
            format!(
                "{} ({}): every cluster.yml run chowns /opt/cni/bin and the unprivileged agent fails with \"cp: cannot create regular file '/hostbin/cilium-mount': Permission denied\"",
                text(&v.value),
                v.origin
            ),
            "set kube_owner: root in group_vars/k8s_cluster/k8s-cluster.yml and keep it",
        ),
        None => Item::fail(
            name,
            "not set (Kubespray's default is kube)",
            "set kube_owner: root in group_vars/k8s_cluster/k8s-cluster.yml",
        ),
    });

    let name = "kubespray kube_proxy_remove";
    let remove = inventory
        .kube_proxy_remove
        .as_ref()
        .is_some_and(|v| truthy(&v.value));
    let origin = inventory
        .kube_proxy_remove
        .as_ref()
        .map(|v| format!(" ({})", v.origin))
        .unwrap_or_default();
    items.push(match (kube_proxy_replaced(state), remove) {
        (true, true) => Item::pass(name, format!("true{origin}")),
        (true, false) => Item::fail(
            name,
            format!("not true{origin} while Cilium replaces kube-proxy: with kube_network_plugin: cni the next cluster.yml or upgrade deploys kube-proxy again"),
            "set kube_proxy_remove: true in group_vars/k8s_cluster/k8s-cluster.yml",
        ),
        (false, true) => Item::fail(
            name,
            format!("true{origin} but Cilium does not replace kube-proxy: Services would have no proxy after the next Kubespray run"),
            "remove kube_proxy_remove, or set kubeProxyReplacement: true first",
        ),
        (false, false) => Item::pass(name, format!("unset{origin}; kube-proxy stays (Cilium does not replace it)")),
    });
    items
}
