//! The gate before the cut-over: does the rendered `cilium-config` keep what the live one says?

use std::fmt;

use serde_json::Value as Json;

use crate::agent_defaults::{
    Hardwired, LITERAL_TRUE_KEYS, agent_default, dormant, not_read, removed,
};
use crate::{ChartVersion, LiveConfig};

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
        let same = |rendered_value: &str| {
            equivalent_across(key, live_value, live_agent, rendered_value, version)
        };
        match rendered.get(key) {
            Some(rendered_value) => match same(rendered_value) {
                Some(None) => {}
                Some(Some(reason)) => out.push(difference(
                    Some(rendered_value),
                    DifferenceKind::ValueDiffers,
                    false,
                    reason,
                )),
                None => match dormant_on_both(key, live, live_agent, rendered, version) {
                    Some(reason) => out.push(difference(
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
            },
            None => {
                if let Some((hardwired, why)) = removed(key, version) {
                    let hardwired = hardwired_value(hardwired, rendered, version);
                    if same(hardwired).is_some() {
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
                let default = agent_default(key, version);
                if default.is_some_and(|d| same(d).is_some()) {
                    continue;
                }
                if let Some(reason) = dormant_on_both(key, live, live_agent, rendered, version) {
                    out.push(difference(
                        None,
                        DifferenceKind::MissingFromRender,
                        false,
                        reason,
                    ));
                    continue;
                }
                match default {
                    Some(default) => out.push(difference(
                        None,
                        DifferenceKind::MissingFromRender,
                        true,
                        format!("absent from the render, and the agent default is {default:?}"),
                    )),
                    None if not_read(key, version) => out.push(difference(
                        None,
                        DifferenceKind::MissingFromRender,
                        true,
                        format!("absent from the render; the {version} agent no longer reads it, and what it does instead is not checked"),
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
        let added = |changes_behaviour, reason: String| ConfigDifference {
            key: key.clone(),
            live: None,
            rendered: Some(rendered_value.clone()),
            kind: DifferenceKind::AddedByRender,
            changes_behaviour,
            reason,
        };
        let live_default = agent_default(key, live_agent);
        if let Some((hardwired, why)) = removed(key, version) {
            // The agent does not read it: what matters is what it hard-wires instead, against the
            // default the live agent ran with (when that agent still read the key).
            let hardwired = hardwired_value(hardwired, rendered, version);
            match live_default {
                Some(default)
                    if equivalent_across(key, default, live_agent, hardwired, version)
                        .is_none() =>
                {
                    out.push(added(
                        true,
                        format!(
                            "{why}; the live agent ({live_agent}) uses the default {default:?}"
                        ),
                    ));
                }
                // The render adds a word, not a behaviour.
                _ => out.push(added(false, format!("{why}; the agent ignores it"))),
            }
            continue;
        }
        if not_read(key, version) {
            out.push(added(
                false,
                format!("the {version} agent no longer reads it; the agent ignores it"),
            ));
            continue;
        }
        let dormant = dormant_on_both(key, live, live_agent, rendered, version);
        match live_default {
            Some(default) => {
                match equivalent_across(key, default, live_agent, rendered_value, version) {
                    Some(None) => {}
                    Some(Some(reason)) => out.push(added(
                        false,
                        format!(
                            "the live agent ({live_agent}) uses the default {default:?}: {reason}"
                        ),
                    )),
                    None => out.push(match dormant {
                        Some(reason) => added(false, reason),
                        None => added(
                            true,
                            format!("the live agent ({live_agent}) uses the default {default:?}"),
                        ),
                    }),
                }
            }
            None => out.push(match dormant {
                Some(reason) => added(false, reason),
                None => added(
                    true,
                    "the live config does not set it and no agent default is known for it"
                        .to_owned(),
                ),
            }),
        }
    }
    out
}

/// Why a difference in `key` is one of form: the switch it depends on is off on both sides.
fn dormant_on_both(
    key: &str,
    live: &LiveConfig,
    live_agent: ChartVersion,
    rendered: &LiveConfig,
    version: ChartVersion,
) -> Option<String> {
    let switch = dormant(key, live, live_agent)?;
    dormant(key, rendered, version)?;
    Some(format!(
        "read only when {switch} is on, and it is off on both sides"
    ))
}

/// `None`: the values differ. `Some(None)`: the same. `Some(Some(reason)))`: written differently
/// with the same behaviour. Both values are read by the agent of chart `version`.
pub(crate) fn equivalent(
    key: &str,
    a: &str,
    b: &str,
    version: ChartVersion,
) -> Option<Option<String>> {
    equivalent_across(key, a, version, b, version)
}

/// [`equivalent`] for `a` read by an agent of `a_agent` and `b` by one of `b_agent`.
fn equivalent_across(
    key: &str,
    a: &str,
    a_agent: ChartVersion,
    b: &str,
    b_agent: ChartVersion,
) -> Option<Option<String>> {
    let version = b_agent;
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
        // Each value means what its own agent reads in it.
        let meaning = |v: &str, agent: ChartVersion| match v.to_ascii_lowercase().as_str() {
            "disabled" if agent.accepts_legacy_kube_proxy_replacement() => Some("disabled"),
            "partial" | "disabled" | "false" => Some("false"),
            "strict" | "true" => Some("true"),
            _ => None,
        };
        if meaning(a, a_agent).is_some() && meaning(a, a_agent) == meaning(b, b_agent) {
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
    if key == "procfs" && [a, b].contains(&"/proc") && [a, b].contains(&"/host/proc") {
        // The agent reads only /proc/sys (pkg/sysctl): with host networking, the sysctls of
        // the host in either path; the chart mounts the host's /proc at /host/proc.
        return Some(Some(
            "the agent reads only /proc/sys there: the host's sysctls in both paths (the chart mounts the host's /proc at /host/proc)".to_owned(),
        ));
    }
    if key == "bpf-root" && [a, b].contains(&"") && [a, b].contains(&"/sys/fs/bpf") {
        // Empty: /sys/fs/bpf when it holds a BPF filesystem or nothing, which the chart's
        // mount-bpf-fs init container ensures (pkg/bpf/bpffs_linux.go).
        return Some(Some(
            "empty means /sys/fs/bpf, where the chart mounts the BPF filesystem".to_owned(),
        ));
    }
    if key == "etcd-config" {
        return same_etcd_config(a, a_agent, b, b_agent);
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
    // Durations written differently (`5m` vs `5m0s`); a bare number of seconds where the agent
    // read an integer before (`unmanaged-pod-watcher-interval` until 1.19).
    let seconds = |v: &str| {
        duration_seconds(v).or_else(|| {
            SECONDS_KEYS
                .contains(&key)
                .then(|| v.parse::<f64>().ok())
                .flatten()
        })
    };
    if let (Some(x), Some(y)) = (seconds(a), seconds(b))
        && x == y
    {
        return Some(None);
    }
    // Structured values (kvstore-opt) that parse to the same document.
    if a.contains(['\n', '{', ':'])
        && let (Some(x), Some(y)) = (yaml_map(a), yaml_map(b))
        && x == y
    {
        return Some(None);
    }
    None
}

/// Keys an older agent read as a whole number of seconds and a newer one as a duration.
const SECONDS_KEYS: &[&str] = &["unmanaged-pod-watcher-interval"];

/// A Go duration (`1h2m3.5s`, `100ms`) in seconds; `None` for anything else (a bare number too).
fn duration_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    // jiff also reads what the agent's `time.ParseDuration` refuses (ISO 8601 `PT5M`, signs,
    // spaces, `5 mins`): only Go's digits and unit letters may reach it.
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || ".hmsunµ".contains(c))
    {
        return None;
    }
    let duration: jiff::SignedDuration = text.parse().ok()?;
    Some(duration.as_secs_f64())
}

fn yaml_map(text: &str) -> Option<serde_json::Map<String, Json>> {
    match serde_saphyr::from_str::<Json>(text).ok()? {
        Json::Object(map) => Some(map),
        _ => None,
    }
}

/// The etcd client configuration as an agent of `agent` reads it: up to 1.16 Cilium's own wrapper
/// falls back to `ca-file` when `trusted-ca-file` is unset and `insecure-transport` is not true
/// (`newConfig` in `pkg/kvstore/etcd.go` of v1.15.9 and v1.16.19); from 1.17 the agent calls etcd's `clientyaml.NewConfig`, which reads
/// only `trusted-ca-file` and ignores `ca-file`.
fn etcd_config_as_read(text: &str, agent: ChartVersion) -> Option<serde_json::Map<String, Json>> {
    let mut map = yaml_map(text)?;
    let legacy = map.remove("ca-file");
    let insecure = map.get("insecure-transport") == Some(&Json::Bool(true));
    if agent.minor <= 16
        && !insecure
        && let Some(ca) = legacy
        && !map.contains_key("trusted-ca-file")
    {
        map.insert("trusted-ca-file".to_owned(), ca);
    }
    Some(map)
}

fn same_etcd_config(
    a: &str,
    a_agent: ChartVersion,
    b: &str,
    b_agent: ChartVersion,
) -> Option<Option<String>> {
    let (x, y) = (
        etcd_config_as_read(a, a_agent)?,
        etcd_config_as_read(b, b_agent)?,
    );
    if x != y {
        return None;
    }
    if yaml_map(a) == yaml_map(b) {
        return Some(None);
    }
    Some(Some(format!(
        "the {a_agent} agent reads the CA from `ca-file` when `trusted-ca-file` is unset; the {b_agent} agent reads only `trusted-ca-file`: the same etcd client configuration"
    )))
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
    use crate::agent_defaults::REMOVED;
    use crate::agent_defaults::tests::VERIFIED;

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

    #[test]
    fn durations_are_read_as_go_writes_them() {
        for (text, seconds) in [
            ("5m", 300.0),
            ("5m0s", 300.0),
            ("1h2m3.5s", 3723.5),
            ("100ms", 0.1),
            ("1µs", 1e-6),
            ("1ms500us", 0.0015),
            ("1.5h", 5400.0),
        ] {
            assert_eq!(duration_seconds(text), Some(seconds), "{text}");
        }
        // Not Go durations: a bare number, ISO 8601, a sign, spaces and long unit names.
        for text in ["", "300", "PT5M", "-5m", "5 m", "5mins", "1d"] {
            assert_eq!(duration_seconds(text), None, "{text}");
        }
        // jiff wants units from largest to smallest, each once, and a fraction only in the last:
        // Go reads these, the hand-written parser did too, and now they count as different.
        for text in ["10s5m", "1m1m", "1.5h30m", ".5s"] {
            assert_eq!(duration_seconds(text), None, "{text}");
        }
    }

    #[test]
    fn etcd_config_ca_file_is_read_per_agent() {
        let old = "---\nendpoints:\n  - https://10.0.0.1:2379\nca-file: \"/etc/cilium/certs/ca.crt\"\nkey-file: /k.pem\ncert-file: /c.crt";
        let renamed = "endpoints: [\"https://10.0.0.1:2379\"]\ntrusted-ca-file: /etc/cilium/certs/ca.crt\nkey-file: /k.pem\ncert-file: /c.crt";
        let other_endpoint = renamed.replace("10.0.0.1", "10.0.0.2");
        let other_ca = renamed.replace("/etc/cilium/certs/ca.crt", "/etc/ssl/ca.crt");
        let insecure = format!("{old}\ninsecure-transport: true");
        let insecure_renamed = format!("{renamed}\ninsecure-transport: true");
        // (live, live agent, rendered, chart, expected: None differs, Some(reason given))
        let cases: &[(&str, &str, &str, &str, Option<bool>)] = &[
            // 1.15 reads `ca-file` when `trusted-ca-file` is unset; 1.17 only `trusted-ca-file`.
            (old, "1.15.9", renamed, "1.17.18", Some(true)),
            (old, "1.15.9", renamed, "1.19.6", Some(true)),
            (old, "1.16.19", renamed, "1.18.12", Some(true)),
            (old, "1.15.9", renamed, "1.15.9", Some(true)),
            (renamed, "1.15.9", old, "1.16.19", Some(true)),
            (old, "1.15.9", old, "1.17.18", Some(false)),
            // The other way: a 1.17 agent ignores `ca-file`, so that render drops the CA.
            (renamed, "1.15.9", old, "1.17.18", None),
            (old, "1.17.18", renamed, "1.17.18", None),
            // A changed endpoint or file path is still a change.
            (old, "1.15.9", &other_endpoint, "1.17.18", None),
            (old, "1.15.9", &other_ca, "1.17.18", None),
            // With insecure-transport the 1.15 wrapper reads no CA at all.
            (&insecure, "1.15.9", &insecure_renamed, "1.17.18", None),
        ];
        for &(live, live_agent, rendered, chart, want) in cases {
            let got = equivalent_across(
                "etcd-config",
                live,
                version(live_agent),
                rendered,
                version(chart),
            );
            assert_eq!(
                got.as_ref().map(Option::is_some),
                want,
                "{live_agent} -> {chart}: {live:?} vs {rendered:?}: {got:?}"
            );
        }
    }

    #[test]
    fn kube_proxy_replacement_disabled_means_what_its_agent_reads() {
        let (live, rendered) = (
            config(&[("kube-proxy-replacement", "disabled")]),
            config(&[("kube-proxy-replacement", "false")]),
        );
        let across = compare_config_across(&live, version("1.15.9"), &rendered, version("1.16.19"));
        assert_eq!(across.len(), 1, "{across:?}");
        assert!(across[0].changes_behaviour, "{across:?}");
        let kept = config(&[("kube-proxy-replacement", "disabled")]);
        assert!(
            compare_config_across(&live, version("1.15.9"), &kept, version("1.15.9")).is_empty()
        );
    }

    #[test]
    fn a_render_only_key_an_agent_dropped_is_weighed_against_the_live_default() {
        let live = config(&[]);
        let rendered = config(&[("enable-runtime-device-detection", "true")]);
        let across = compare_config_across(&live, version("1.15.9"), &rendered, version("1.16.19"));
        assert_eq!(across.len(), 1, "{across:?}");
        assert!(across[0].changes_behaviour, "{across:?}");
        let across =
            compare_config_across(&live, version("1.16.19"), &rendered, version("1.17.18"));
        assert!(across.iter().all(|d| !d.changes_behaviour), "{across:?}");
        // A key the agent no longer reads, without a claim what it does instead.
        let live = config(&[("arping-refresh-period", "1m")]);
        let across =
            compare_config_across(&live, version("1.15.9"), &config(&[]), version("1.18.12"));
        assert!(across[0].changes_behaviour, "{across:?}");
        let rendered = config(&[("arping-refresh-period", "1m")]);
        let across = compare_config_across(
            &config(&[]),
            version("1.18.12"),
            &rendered,
            version("1.18.12"),
        );
        assert!(!across[0].changes_behaviour, "{across:?}");
    }
}
