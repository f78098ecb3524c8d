//! The gate before the cut-over: does the rendered `cilium-config` keep what the live one says?

use std::fmt;

use serde_json::Value as Json;

use crate::{ChartVersion, LiveConfig, OLDEST_MINOR};

/// A value the Cilium agent (or operator) uses when its `cilium-config` key is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentDefault {
    /// The `cilium-config` key (= the agent flag).
    pub key: &'static str,
    /// The default the agent uses without it.
    pub value: &'static str,
}

/// The defaults the comparison relies on: `(key, first (minor, patch), default)`, sorted by key,
/// then version. A row holds from its version until the next row of the same key; a key absent on
/// one side is equal only when the other side holds exactly this default.
///
/// Checked against the Cilium source of v1.15.9, v1.15.19, v1.16.0, v1.16.19, v1.17.0, v1.17.16,
/// v1.18.0, v1.18.11, v1.19.0 and v1.19.7, plus v1.15.0 and v1.17.1-v1.17.8 where a default moved
/// (flag registrations in `daemon/cmd/daemon_main.go`, `pkg/defaults`, `pkg/option` and the cells'
/// `Flags()` methods), 2026-11-26. Rows that differ from the 1.15 flag: `hubble-disable-tls` (the
/// certloader cell defaults to true from 1.18.0) and `enable-hubble` (true in 1.17.0 and 1.17.1).
/// Keys nothing in the agent reads any more are in [`REMOVED`], which wins over this table.
const AGENT_DEFAULTS: &[(&str, (u32, u32), &str)] = &[
    ("agent-health-port", (15, 0), "9879"),
    ("auto-direct-node-routes", (15, 0), "false"),
    ("bpf-lb-acceleration", (15, 0), "disabled"),
    ("bpf-lb-map-max", (15, 0), "65536"),
    ("bpf-lb-mode", (15, 0), "snat"),
    ("bpf-policy-map-max", (15, 0), "16384"),
    // Read by the chart's `clean-cilium-state` init container, which acts only on exactly `true`.
    ("clean-cilium-bpf-state", (15, 0), "false"),
    ("clean-cilium-state", (15, 0), "false"),
    ("cluster-id", (15, 0), "0"),
    ("cluster-name", (15, 0), "default"),
    // Read by the agent's preStop cni-uninstall.sh, which removes the CNI config only on `true`.
    ("cni-uninstall", (15, 0), "false"),
    // No component of 1.15-1.19 reads this key (cni-uninstall.sh reads an environment variable
    // the chart never sets); kept so that a live `true` is still shown to the operator.
    ("custom-cni-conf", (15, 0), "false"),
    ("debug", (15, 0), "false"),
    ("enable-auto-protect-node-port-range", (15, 0), "true"),
    ("enable-bandwidth-manager", (15, 0), "false"),
    ("enable-bbr", (15, 0), "false"),
    ("enable-bgp-control-plane", (15, 0), "false"),
    ("enable-bpf-clock-probe", (15, 0), "false"),
    ("enable-bpf-masquerade", (15, 0), "false"),
    ("enable-endpoint-health-checking", (15, 0), "true"),
    ("enable-external-ips", (15, 0), "false"),
    ("enable-health-checking", (15, 0), "true"),
    ("enable-host-firewall", (15, 0), "false"),
    ("enable-host-port", (15, 0), "false"),
    ("enable-hubble", (15, 0), "false"),
    // The 1.17 hubble cell shipped with `true`; 1.17.2 restored `false`.
    ("enable-hubble", (17, 0), "true"),
    ("enable-hubble", (17, 2), "false"),
    ("enable-hubble-open-metrics", (15, 0), "false"),
    ("enable-ip-masq-agent", (15, 0), "false"),
    ("enable-ipsec", (15, 0), "false"),
    ("enable-ipv4", (15, 0), "true"),
    ("enable-ipv4-masquerade", (15, 0), "true"),
    ("enable-ipv6-masquerade", (15, 0), "true"),
    ("enable-l2-announcements", (15, 0), "false"),
    ("enable-l7-proxy", (15, 0), "true"),
    ("enable-node-port", (15, 0), "false"),
    ("enable-policy", (15, 0), "default"),
    ("enable-remote-node-identity", (15, 0), "true"),
    // The agent keeps the old behaviour; only the chart's default is false.
    ("enable-well-known-identities", (15, 0), "true"),
    ("enable-wireguard", (15, 0), "false"),
    ("encrypt-node", (15, 0), "false"),
    ("hubble-disable-tls", (15, 0), "false"),
    ("hubble-disable-tls", (18, 0), "true"),
    ("hubble-socket-path", (15, 0), "/var/run/cilium/hubble.sock"),
    ("install-no-conntrack-iptables-rules", (15, 0), "false"),
    ("kube-proxy-replacement", (15, 0), "false"),
    ("kube-proxy-replacement-healthz-bind-address", (15, 0), ""),
    // A string slice; the chart's default `all` is not the agent's.
    ("monitor-aggregation-flags", (15, 0), "syn fin rst"),
    ("monitor-aggregation-interval", (15, 0), "5s"),
    ("mtu", (15, 0), "0"),
    ("node-port-bind-protection", (15, 0), "true"),
    // An operator flag (the operator reads the same ConfigMap).
    ("operator-api-serve-addr", (15, 0), "localhost:9234"),
    ("policy-audit-mode", (15, 0), "false"),
    // The agent pre-allocates; the chart's default (`bpf.preallocateMaps: false`) is not the agent's.
    ("preallocate-bpf-maps", (15, 0), "true"),
    ("routing-mode", (15, 0), "tunnel"),
    ("sidecar-istio-proxy-image", (15, 0), "cilium/istio_proxy"),
    ("tunnel-protocol", (15, 0), "vxlan"),
];

/// What a key the agent no longer reads hard-wires instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hardwired {
    /// The behaviour of this value.
    Value(&'static str),
    /// On exactly when `kube-proxy-replacement` is true.
    KubeProxyReplacement,
}

/// Keys the agent dropped (no flag, nothing reads them) from a minor on, with the behaviour it
/// hard-wires from then on. Checked with the sources listed at [`AGENT_DEFAULTS`].
const REMOVED: &[(&str, u32, Hardwired, &str)] = &[
    (
        "disable-cnp-status-updates",
        15,
        Hardwired::Value("true"),
        "removed in 1.15, which no longer writes CiliumNetworkPolicy status",
    ),
    (
        "enable-external-ips",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where externalIPs are handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-host-port",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where hostPort is handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-node-port",
        19,
        Hardwired::KubeProxyReplacement,
        "removed in 1.19, where NodePort is handled exactly when kube-proxy-replacement is on",
    ),
    (
        "enable-remote-node-identity",
        16,
        Hardwired::Value("true"),
        "removed in 1.16, where remote-node identity is always on",
    ),
    (
        "enable-wireguard-userspace-fallback",
        17,
        Hardwired::Value("false"),
        "removed in 1.17 (kernel WireGuard only)",
    ),
    (
        "sidecar-istio-proxy-image",
        16,
        Hardwired::Value("cilium/istio_proxy"),
        "removed in 1.16 with the Istio sidecar integration; its old default named only Cilium's own proxy image",
    ),
];

/// Keys read by shell scripts that act on exactly `true` (not `True`).
const LITERAL_TRUE_KEYS: &[&str] = &[
    "clean-cilium-bpf-state",
    "clean-cilium-state",
    "cni-uninstall",
];

/// The table of agent defaults [`compare_config`] relies on, for the oldest supported minor.
pub fn agent_defaults() -> impl Iterator<Item = AgentDefault> {
    agent_defaults_for(ChartVersion {
        major: 1,
        minor: OLDEST_MINOR,
        patch: 0,
    })
}

/// The agent defaults of chart `version`'s agent: one per key, without the keys it dropped.
fn agent_defaults_for(version: ChartVersion) -> impl Iterator<Item = AgentDefault> {
    let mut keys: Vec<&'static str> = AGENT_DEFAULTS.iter().map(|&(key, _, _)| key).collect();
    keys.dedup();
    keys.into_iter()
        .filter_map(move |key| agent_default(key, version).map(|value| AgentDefault { key, value }))
}

/// The default of `key` for `version`'s agent; `None` when unknown or dropped by that agent.
fn agent_default(key: &str, version: ChartVersion) -> Option<&'static str> {
    if removed(key, version).is_some() {
        return None;
    }
    AGENT_DEFAULTS
        .iter()
        .filter(|&&(k, since, _)| k == key && since <= (version.minor, version.patch))
        .map(|&(_, _, value)| value)
        .next_back()
}

/// What `version`'s agent hard-wires for `key` it no longer reads, and why.
fn removed(key: &str, version: ChartVersion) -> Option<(Hardwired, &'static str)> {
    REMOVED
        .iter()
        .find(|&&(k, minor, _, _)| k == key && version.minor >= minor)
        .map(|&(_, _, hardwired, why)| (hardwired, why))
}

/// How two values differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DifferenceKind {
    /// Both have the key, with different values.
    ValueDiffers,
    /// The live config has the key, the render does not.
    MissingFromRender,
    /// The render has a key the live config does not.
    AddedByRender,
}

/// One difference between the live and the rendered `cilium-config`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// Compare the live config with a render for `version`, as if the live agent were of the same
/// version. Differences that keep the behaviour are listed too (with `changes_behaviour: false`),
/// so the operator sees every change of form.
pub fn compare_config(
    live: &LiveConfig,
    rendered: &LiveConfig,
    version: ChartVersion,
) -> Vec<ConfigDifference> {
    compare_config_across(live, version, rendered, version)
}

/// Compare the live config, read by an agent of `live_agent`, with a render for chart `version`.
///
/// A key only the live config sets is weighed against the default of the agent that will run
/// after the cut-over (`version`'s); a key only the render sets, against the default the live
/// agent has been running with (`live_agent`'s): the defaults changed between minors (e.g.
/// `hubble-disable-tls` from 1.18), and each side's absence means its own agent's default.
pub fn compare_config_across(
    live: &LiveConfig,
    live_agent: ChartVersion,
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
                if let Some((hardwired, why)) = removed(key, version) {
                    let hardwired = hardwired_value(hardwired, rendered, version);
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
                match agent_default(key, version) {
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
        if let Some((_, why)) = removed(key, version) {
            // The agent does not read it: the render adds a word, not a behaviour.
            out.push(ConfigDifference {
                key: key.clone(),
                live: None,
                rendered: Some(rendered_value.clone()),
                kind: DifferenceKind::AddedByRender,
                changes_behaviour: false,
                reason: format!("{why}; the agent ignores it"),
            });
            continue;
        }
        let (changes_behaviour, reason) = match agent_default(key, live_agent) {
            Some(default) if equivalent(key, default, rendered_value, version).is_some() => {
                continue;
            }
            Some(default) => (
                true,
                format!("the live agent ({live_agent}) uses the default {default:?}"),
            ),
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
    if LITERAL_TRUE_KEYS.contains(&key) {
        return (a == "true" && b == "true" || a != "true" && b != "true").then_some(None);
    }
    let (a, b) = (a.trim(), b.trim());
    if a == b || a.eq_ignore_ascii_case(b) && is_bool(a) {
        return Some(None);
    }
    if key == "kube-proxy-replacement" {
        // 1.15's `disabled` is not `false`: it also forces NodePort, hostPort, externalIPs and
        // socket LB off, legacy host routing on, and skips the kube-proxy healthz server
        // (daemon/cmd/kube_proxy_replacement.go, daemon_main.go of v1.15.9). 1.16 rejects it.
        let meaning = |v: &str| match v.to_ascii_lowercase().as_str() {
            "disabled" if version.accepts_legacy_kube_proxy_replacement() => Some("disabled"),
            "partial" | "disabled" | "false" => Some("false"),
            "strict" | "true" => Some("true"),
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

/// The value whose behaviour a dropped key's agent hard-wires, given the rendered config.
fn hardwired_value(
    hardwired: Hardwired,
    rendered: &LiveConfig,
    version: ChartVersion,
) -> &'static str {
    match hardwired {
        Hardwired::Value(value) => value,
        Hardwired::KubeProxyReplacement => {
            let kube_proxy_replacement = rendered
                .get("kube-proxy-replacement")
                .or_else(|| agent_default("kube-proxy-replacement", version))
                .unwrap_or("false");
            if kube_proxy_replacement.trim().eq_ignore_ascii_case("true") {
                "true"
            } else {
                "false"
            }
        }
    }
}

fn is_bool(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn version(text: &str) -> ChartVersion {
        ChartVersion::parse(text).expect("a supported version")
    }

    fn config(pairs: &[(&str, &str)]) -> LiveConfig {
        let data: BTreeMap<String, String> = pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        LiveConfig::from_map(data, "test")
    }

    /// (key, 1.15 agent default, 1.19 agent default); `None`: the 1.19 agent has no such flag.
    const VERIFIED: &[(&str, &str, Option<&str>)] = &[
        ("agent-health-port", "9879", Some("9879")),
        ("auto-direct-node-routes", "false", Some("false")),
        ("bpf-lb-acceleration", "disabled", Some("disabled")),
        ("bpf-lb-map-max", "65536", Some("65536")),
        ("bpf-lb-mode", "snat", Some("snat")),
        ("bpf-policy-map-max", "16384", Some("16384")),
        ("clean-cilium-bpf-state", "false", Some("false")),
        ("clean-cilium-state", "false", Some("false")),
        ("cluster-id", "0", Some("0")),
        ("cluster-name", "default", Some("default")),
        ("cni-uninstall", "false", Some("false")),
        ("custom-cni-conf", "false", Some("false")),
        ("debug", "false", Some("false")),
        ("enable-auto-protect-node-port-range", "true", Some("true")),
        ("enable-bandwidth-manager", "false", Some("false")),
        ("enable-bbr", "false", Some("false")),
        ("enable-bgp-control-plane", "false", Some("false")),
        ("enable-bpf-clock-probe", "false", Some("false")),
        ("enable-bpf-masquerade", "false", Some("false")),
        ("enable-endpoint-health-checking", "true", Some("true")),
        ("enable-external-ips", "false", None),
        ("enable-health-checking", "true", Some("true")),
        ("enable-host-firewall", "false", Some("false")),
        ("enable-host-port", "false", None),
        ("enable-hubble", "false", Some("false")),
        ("enable-hubble-open-metrics", "false", Some("false")),
        ("enable-ip-masq-agent", "false", Some("false")),
        ("enable-ipsec", "false", Some("false")),
        ("enable-ipv4", "true", Some("true")),
        ("enable-ipv4-masquerade", "true", Some("true")),
        ("enable-ipv6-masquerade", "true", Some("true")),
        ("enable-l2-announcements", "false", Some("false")),
        ("enable-l7-proxy", "true", Some("true")),
        ("enable-node-port", "false", None),
        ("enable-policy", "default", Some("default")),
        ("enable-remote-node-identity", "true", None),
        ("enable-well-known-identities", "true", Some("true")),
        ("enable-wireguard", "false", Some("false")),
        ("encrypt-node", "false", Some("false")),
        ("hubble-disable-tls", "false", Some("true")),
        (
            "hubble-socket-path",
            "/var/run/cilium/hubble.sock",
            Some("/var/run/cilium/hubble.sock"),
        ),
        (
            "install-no-conntrack-iptables-rules",
            "false",
            Some("false"),
        ),
        ("kube-proxy-replacement", "false", Some("false")),
        ("kube-proxy-replacement-healthz-bind-address", "", Some("")),
        (
            "monitor-aggregation-flags",
            "syn fin rst",
            Some("syn fin rst"),
        ),
        ("monitor-aggregation-interval", "5s", Some("5s")),
        ("mtu", "0", Some("0")),
        ("node-port-bind-protection", "true", Some("true")),
        (
            "operator-api-serve-addr",
            "localhost:9234",
            Some("localhost:9234"),
        ),
        ("policy-audit-mode", "false", Some("false")),
        ("preallocate-bpf-maps", "true", Some("true")),
        ("routing-mode", "tunnel", Some("tunnel")),
        ("sidecar-istio-proxy-image", "cilium/istio_proxy", None),
        ("tunnel-protocol", "vxlan", Some("vxlan")),
    ];

    /// (key, chart, agent default); the minors where a default changes or a key goes away.
    const BOUNDARIES: &[(&str, &str, Option<&str>)] = &[
        ("enable-hubble", "1.16.19", Some("false")),
        ("enable-hubble", "1.17.0", Some("true")),
        ("enable-hubble", "1.17.1", Some("true")),
        ("enable-hubble", "1.17.2", Some("false")),
        ("hubble-disable-tls", "1.17.18", Some("false")),
        ("hubble-disable-tls", "1.18.0", Some("true")),
        ("enable-remote-node-identity", "1.15.19", Some("true")),
        ("enable-remote-node-identity", "1.16.0", None),
        ("sidecar-istio-proxy-image", "1.16.0", None),
        ("enable-node-port", "1.18.12", Some("false")),
        ("enable-host-port", "1.18.12", Some("false")),
        ("enable-external-ips", "1.18.12", Some("false")),
        ("disable-cnp-status-updates", "1.15.9", None),
        ("enable-wireguard-userspace-fallback", "1.17.0", None),
    ];

    #[test]
    fn defaults_are_the_agent_source_ones() {
        for &(key, oldest, newest) in VERIFIED {
            assert_eq!(
                agent_default(key, version("1.15.9")),
                Some(oldest),
                "{key} on 1.15"
            );
            assert_eq!(
                agent_default(key, version("1.19.7")),
                newest,
                "{key} on 1.19"
            );
        }
        for &(key, chart, want) in BOUNDARIES {
            assert_eq!(agent_default(key, version(chart)), want, "{key} on {chart}");
        }
    }

    #[test]
    fn every_table_row_is_verified() {
        let verified: Vec<&str> = VERIFIED.iter().map(|&(key, _, _)| key).collect();
        for &(key, _, _) in AGENT_DEFAULTS {
            assert!(verified.contains(&key), "{key} has no verified row");
        }
        for window in AGENT_DEFAULTS.windows(2) {
            let ((a, a_since, _), (b, b_since, _)) = (window[0], window[1]);
            assert!(
                a < b || a == b && a_since < b_since,
                "{a} {a_since:?} / {b} {b_since:?}: sort by key, then version"
            );
        }
        for &(key, _, _, _) in REMOVED {
            assert!(
                agent_default(key, version("1.19.7")).is_none(),
                "{key} is dropped by 1.19"
            );
        }
    }

    #[test]
    fn defaults_per_version_list_each_key_once() {
        for chart in ["1.15.9", "1.16.19", "1.17.18", "1.18.12", "1.19.7"] {
            let keys: Vec<&str> = agent_defaults_for(version(chart)).map(|d| d.key).collect();
            let mut unique = keys.clone();
            unique.dedup();
            assert_eq!(keys, unique, "{chart}");
        }
        let newest: Vec<AgentDefault> = agent_defaults_for(version("1.19.7")).collect();
        assert!(newest.contains(&AgentDefault {
            key: "hubble-disable-tls",
            value: "true"
        }));
        assert!(!newest.iter().any(|d| d.key == "enable-node-port"));
        assert!(agent_defaults().any(|d| d
            == AgentDefault {
                key: "hubble-disable-tls",
                value: "false"
            }));
    }

    type Row = (&'static str, DifferenceKind, bool);
    type Pairs = &'static [(&'static str, &'static str)];

    #[test]
    fn a_key_only_the_render_sets_is_weighed_against_the_live_agents_default() {
        // A 1.17 agent runs with TLS on (hubble-disable-tls defaults to false); a 1.19 render that
        // writes the 1.19 default `true` turns it off: a change, though 1.19's own default agrees.
        let live = config(&[]);
        let rendered = config(&[("hubble-disable-tls", "true")]);
        let across = compare_config_across(&live, version("1.17.18"), &rendered, version("1.19.7"));
        assert_eq!(across.len(), 1, "{across:?}");
        assert!(across[0].changes_behaviour);
        assert!(across[0].reason.contains("1.17.18"), "{}", across[0].reason);
        assert!(compare_config(&live, &rendered, version("1.19.7")).is_empty());
        // A key only the live config sets is weighed against the new agent's default.
        let live = config(&[("hubble-disable-tls", "false")]);
        let across =
            compare_config_across(&live, version("1.17.18"), &config(&[]), version("1.19.7"));
        assert_eq!(across.len(), 1, "{across:?}");
        assert_eq!(across[0].kind, DifferenceKind::MissingFromRender);
        assert!(across[0].changes_behaviour);
        assert!(
            compare_config_across(&live, version("1.19.7"), &config(&[]), version("1.17.18"))
                .is_empty()
        );
    }

    #[test]
    fn the_gate_uses_the_default_of_the_chart_version() {
        use DifferenceKind::{AddedByRender, MissingFromRender, ValueDiffers};
        // (live, rendered, chart, expected differences (key, kind, changes behaviour))
        let cases: &[(Pairs, Pairs, &str, &[Row])] = &[
            (
                &[],
                &[("hubble-disable-tls", "true")],
                "1.17.18",
                &[("hubble-disable-tls", AddedByRender, true)],
            ),
            (&[], &[("hubble-disable-tls", "true")], "1.18.0", &[]),
            (&[("hubble-disable-tls", "false")], &[], "1.17.18", &[]),
            (
                &[("hubble-disable-tls", "false")],
                &[],
                "1.18.12",
                &[("hubble-disable-tls", MissingFromRender, true)],
            ),
            (
                &[],
                &[("enable-hubble", "false")],
                "1.17.1",
                &[("enable-hubble", AddedByRender, true)],
            ),
            (&[], &[("enable-hubble", "false")], "1.17.2", &[]),
            (
                &[("preallocate-bpf-maps", "False")],
                &[],
                "1.15.9",
                &[("preallocate-bpf-maps", MissingFromRender, true)],
            ),
            (&[], &[("preallocate-bpf-maps", "true")], "1.19.7", &[]),
            (
                &[("enable-well-known-identities", "False")],
                &[],
                "1.15.9",
                &[("enable-well-known-identities", MissingFromRender, true)],
            ),
            (
                &[("monitor-aggregation-flags", "all")],
                &[],
                "1.16.19",
                &[("monitor-aggregation-flags", MissingFromRender, true)],
            ),
            (
                &[("monitor-aggregation-flags", "syn\nfin rst")],
                &[],
                "1.16.19",
                &[],
            ),
            (
                &[("enable-node-port", "true")],
                &[],
                "1.18.12",
                &[("enable-node-port", MissingFromRender, true)],
            ),
            (
                &[
                    ("enable-node-port", "true"),
                    ("kube-proxy-replacement", "true"),
                ],
                &[("kube-proxy-replacement", "true")],
                "1.19.7",
                &[("enable-node-port", MissingFromRender, false)],
            ),
            (
                &[
                    ("enable-node-port", "true"),
                    ("kube-proxy-replacement", "false"),
                ],
                &[("kube-proxy-replacement", "false")],
                "1.19.7",
                &[("enable-node-port", MissingFromRender, true)],
            ),
            (
                &[("enable-host-port", "false")],
                &[],
                "1.19.7",
                &[("enable-host-port", MissingFromRender, false)],
            ),
            (
                &[],
                &[("enable-external-ips", "true")],
                "1.19.7",
                &[("enable-external-ips", AddedByRender, false)],
            ),
            (
                &[],
                &[("enable-external-ips", "true")],
                "1.18.12",
                &[("enable-external-ips", AddedByRender, true)],
            ),
            (
                &[("disable-cnp-status-updates", "True")],
                &[],
                "1.15.9",
                &[("disable-cnp-status-updates", MissingFromRender, false)],
            ),
            (
                &[("sidecar-istio-proxy-image", "cilium/istio_proxy")],
                &[],
                "1.15.9",
                &[],
            ),
            (
                &[("sidecar-istio-proxy-image", "cilium/istio_proxy")],
                &[],
                "1.16.0",
                &[("sidecar-istio-proxy-image", MissingFromRender, false)],
            ),
            (
                &[("sidecar-istio-proxy-image", "corp/istio-proxy")],
                &[],
                "1.16.0",
                &[("sidecar-istio-proxy-image", MissingFromRender, true)],
            ),
            (
                &[("kube-proxy-replacement", "disabled")],
                &[("kube-proxy-replacement", "false")],
                "1.15.9",
                &[("kube-proxy-replacement", ValueDiffers, true)],
            ),
            (
                &[("kube-proxy-replacement", "disabled")],
                &[],
                "1.15.9",
                &[("kube-proxy-replacement", MissingFromRender, true)],
            ),
            (&[("kube-proxy-replacement", "partial")], &[], "1.15.9", &[]),
            (
                &[("kube-proxy-replacement", "disabled")],
                &[("kube-proxy-replacement", "false")],
                "1.16.19",
                &[("kube-proxy-replacement", ValueDiffers, false)],
            ),
            (
                &[("clean-cilium-state", "True")],
                &[("clean-cilium-state", "true")],
                "1.15.9",
                &[("clean-cilium-state", ValueDiffers, true)],
            ),
            (
                &[("clean-cilium-state", "False")],
                &[("clean-cilium-state", "false")],
                "1.15.9",
                &[],
            ),
            (&[("clean-cilium-bpf-state", "True")], &[], "1.19.7", &[]),
            (&[], &[("cni-uninstall", "false")], "1.15.9", &[]),
            (
                &[],
                &[("cni-uninstall", "true")],
                "1.19.7",
                &[("cni-uninstall", AddedByRender, true)],
            ),
            (
                &[("clean-cilium-bpf-state", "true")],
                &[],
                "1.19.7",
                &[("clean-cilium-bpf-state", MissingFromRender, true)],
            ),
        ];
        for &(live, rendered, chart, want) in cases {
            let got: Vec<Row> = compare_config(&config(live), &config(rendered), version(chart))
                .iter()
                .map(|d| {
                    let key = VERIFIED
                        .iter()
                        .map(|&(k, _, _)| k)
                        .chain(REMOVED.iter().map(|&(k, _, _, _)| k))
                        .find(|k| *k == d.key)
                        .expect("a known key");
                    (key, d.kind, d.changes_behaviour)
                })
                .collect();
            assert_eq!(
                got, want,
                "live {live:?} vs rendered {rendered:?} on {chart}"
            );
        }
    }
}
