//! The gate before the cut-over: does the rendered `cilium-config` keep what the live one says?

use std::fmt;

use serde_json::Value as Json;

use crate::{ChartVersion, LiveConfig};

/// A value the Cilium agent (or operator) uses when its `cilium-config` key is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentDefault {
    /// The `cilium-config` key (= the agent flag).
    pub key: &'static str,
    /// The default the agent uses without it.
    pub value: &'static str,
}

/// The agent defaults the comparison relies on (Cilium 1.15 flags; unchanged through 1.19 for these
/// keys). A key absent on one side is equal only when the other side holds exactly this default.
const AGENT_DEFAULTS: &[(&str, &str)] = &[
    ("agent-health-port", "9879"),
    ("auto-direct-node-routes", "false"),
    ("bpf-lb-acceleration", "disabled"),
    ("bpf-lb-map-max", "65536"),
    ("bpf-lb-mode", "snat"),
    ("bpf-policy-map-max", "16384"),
    ("clean-cilium-bpf-state", "false"),
    ("clean-cilium-state", "false"),
    ("cluster-id", "0"),
    ("cluster-name", "default"),
    ("custom-cni-conf", "false"),
    ("debug", "false"),
    ("enable-auto-protect-node-port-range", "true"),
    ("enable-bandwidth-manager", "false"),
    ("enable-bbr", "false"),
    ("enable-bgp-control-plane", "false"),
    ("enable-bpf-clock-probe", "false"),
    ("enable-bpf-masquerade", "false"),
    ("enable-endpoint-health-checking", "true"),
    ("enable-external-ips", "false"),
    ("enable-health-checking", "true"),
    ("enable-host-firewall", "false"),
    ("enable-host-port", "false"),
    ("enable-hubble", "false"),
    ("enable-hubble-open-metrics", "false"),
    ("enable-ip-masq-agent", "false"),
    ("enable-ipsec", "false"),
    ("enable-ipv4", "true"),
    ("enable-ipv4-masquerade", "true"),
    ("enable-ipv6-masquerade", "true"),
    ("enable-l2-announcements", "false"),
    ("enable-l7-proxy", "true"),
    ("enable-node-port", "false"),
    ("enable-policy", "default"),
    ("enable-remote-node-identity", "true"),
    ("enable-well-known-identities", "false"),
    ("enable-wireguard", "false"),
    ("encrypt-node", "false"),
    ("hubble-disable-tls", "false"),
    ("hubble-socket-path", "/var/run/cilium/hubble.sock"),
    ("install-no-conntrack-iptables-rules", "false"),
    ("kube-proxy-replacement", "false"),
    ("kube-proxy-replacement-healthz-bind-address", ""),
    ("monitor-aggregation-flags", "all"),
    ("monitor-aggregation-interval", "5s"),
    ("mtu", "0"),
    ("node-port-bind-protection", "true"),
    ("operator-api-serve-addr", "localhost:9234"),
    ("policy-audit-mode", "false"),
    ("preallocate-bpf-maps", "false"),
    ("routing-mode", "tunnel"),
    ("sidecar-istio-proxy-image", "cilium/istio_proxy"),
    ("tunnel-protocol", "vxlan"),
];

/// Keys the agent dropped in a later minor, with the behaviour it hard-wires from then on.
const REMOVED: &[(&str, u32, &str, &str)] = &[
    (
        "enable-remote-node-identity",
        16,
        "true",
        "removed in 1.16, where remote-node identity is always on",
    ),
    (
        "disable-cnp-status-updates",
        16,
        "true",
        "removed in 1.16, which no longer writes CiliumNetworkPolicy status",
    ),
    (
        "enable-wireguard-userspace-fallback",
        17,
        "false",
        "removed in 1.17 (kernel WireGuard only)",
    ),
];

/// The table of agent defaults [`compare_config`] relies on.
pub fn agent_defaults() -> impl Iterator<Item = AgentDefault> {
    AGENT_DEFAULTS
        .iter()
        .map(|&(key, value)| AgentDefault { key, value })
}

fn agent_default(key: &str) -> Option<&'static str> {
    AGENT_DEFAULTS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|&(_, v)| v)
}

/// How two values differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DifferenceKind {
    /// Both have the key, with different values.
    ValueDiffers,
    /// The live config has the key, the render does not.
    MissingFromRender,
    /// The render has a key the live config does not.
    AddedByRender,
}

/// One difference between the live and the rendered `cilium-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDifference {
    /// The key.
    pub key: String,
    /// The live value.
    pub live: Option<String>,
    /// The rendered value.
    pub rendered: Option<String>,
    /// How it differs.
    pub kind: DifferenceKind,
    /// Whether the agent behaves differently after the cut-over.
    pub changes_behaviour: bool,
    /// Why it is (or is not) a change.
    pub reason: String,
}

impl fmt::Display for ConfigDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        write!(
            f,
            "{}: live {} vs rendered {} ({}{})",
            self.key,
            show(&self.live),
            show(&self.rendered),
            if self.changes_behaviour {
                "changes behaviour: "
            } else {
                "same behaviour: "
            },
            self.reason
        )
    }
}

/// Compare the live config with a render for `version`. Differences that keep the behaviour are
/// listed too (with `changes_behaviour: false`), so the operator sees every change of form.
pub fn compare_config(
    live: &LiveConfig,
    rendered: &LiveConfig,
    version: ChartVersion,
) -> Vec<ConfigDifference> {
    let mut out = Vec::new();
    for (key, live_value) in live.data() {
        let difference =
            |rendered: Option<&str>, kind, changes_behaviour, reason: String| ConfigDifference {
                key: key.clone(),
                live: Some(live_value.clone()),
                rendered: rendered.map(str::to_owned),
                kind,
                changes_behaviour,
                reason,
            };
        match rendered.get(key) {
            Some(rendered_value) => match equivalent(key, live_value, rendered_value, version) {
                Some(None) => {}
                Some(Some(reason)) => out.push(difference(
                    Some(rendered_value),
                    DifferenceKind::ValueDiffers,
                    false,
                    reason,
                )),
                None => out.push(difference(
                    Some(rendered_value),
                    DifferenceKind::ValueDiffers,
                    true,
                    "the rendered value differs".to_owned(),
                )),
            },
            None => {
                if let Some((_, _, hardwired, why)) = REMOVED
                    .iter()
                    .find(|(k, minor, _, _)| k == key && version.minor >= *minor)
                {
                    let same = equivalent(key, live_value, hardwired, version).is_some();
                    if same {
                        out.push(difference(
                            None,
                            DifferenceKind::MissingFromRender,
                            false,
                            (*why).to_owned(),
                        ));
                    } else {
                        out.push(difference(
                            None,
                            DifferenceKind::MissingFromRender,
                            true,
                            format!("{why}; the live value cannot be kept"),
                        ));
                    }
                    continue;
                }
                match agent_default(key) {
                    Some(default) if equivalent(key, live_value, default, version).is_some() => {}
                    Some(default) => out.push(difference(
                        None,
                        DifferenceKind::MissingFromRender,
                        true,
                        format!("absent from the render, and the agent default is {default:?}"),
                    )),
                    None => out.push(difference(
                        None,
                        DifferenceKind::MissingFromRender,
                        true,
                        "absent from the render, and no agent default is known for it".to_owned(),
                    )),
                }
            }
        }
    }
    for (key, rendered_value) in rendered.data() {
        if live.get(key).is_some() {
            continue;
        }
        let (changes_behaviour, reason) = match agent_default(key) {
            Some(default) if equivalent(key, default, rendered_value, version).is_some() => {
                continue;
            }
            Some(default) => (true, format!("the live agent uses the default {default:?}")),
            None => (
                true,
                "the live config does not set it and no agent default is known for it".to_owned(),
            ),
        };
        out.push(ConfigDifference {
            key: key.clone(),
            live: None,
            rendered: Some(rendered_value.clone()),
            kind: DifferenceKind::AddedByRender,
            changes_behaviour,
            reason,
        });
    }
    out
}

/// `None`: the values differ. `Some(None)`: the same. `Some(Some(reason))`: written differently
/// with the same behaviour.
pub(crate) fn equivalent(
    key: &str,
    a: &str,
    b: &str,
    version: ChartVersion,
) -> Option<Option<String>> {
    let (a, b) = (a.trim(), b.trim());
    if a == b || a.eq_ignore_ascii_case(b) && is_bool(a) {
        return Some(None);
    }
    if key == "kube-proxy-replacement" {
        let meaning = |v: &str| match v.to_ascii_lowercase().as_str() {
            "partial" | "disabled" | "false" => Some(false),
            "strict" | "true" => Some(true),
            _ => None,
        };
        if meaning(a).is_some() && meaning(a) == meaning(b) {
            // 1.15 accepts both spellings; from 1.16 only true/false exist.
            return Some(if version.accepts_legacy_kube_proxy_replacement() {
                None
            } else {
                Some(format!(
                    "`{a}` vs `{b}`: chart {version} accepts only true/false, which is what the legacy value means"
                ))
            });
        }
        return None;
    }
    // Space-separated lists (hubble-metrics) may be folded over lines.
    if a.split_whitespace().eq(b.split_whitespace()) && !a.contains(':') {
        return Some(None);
    }
    // Numbers written differently (`0.0025` vs `2.5e-3`).
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>())
        && x == y
    {
        return Some(None);
    }
    // Structured values (etcd-config, kvstore-opt) that parse to the same document.
    if a.contains(['\n', '{', ':']) {
        let parse = |t: &str| {
            serde_saphyr::from_str::<Json>(t)
                .ok()
                .filter(Json::is_object)
        };
        if let (Some(x), Some(y)) = (parse(a), parse(b))
            && x == y
        {
            return Some(None);
        }
    }
    None
}

fn is_bool(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
}
