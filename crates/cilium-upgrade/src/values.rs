//! The values of one hop: the release's user values carried whole (never `--reuse-values`),
//! keys that changed form translated by a small reviewed table, keys the hop's chart no longer
//! reads reported and left out (never silently), `upgradeCompatibility` kept at the first
//! installed minor, and Envoy kept where it runs now.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::Error;
use crate::archive::ChartArchive;

/// A value carried in another form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Translated {
    /// Dotted path in the release's values.
    pub path: String,
    /// The value there.
    pub before: Json,
    /// Dotted path in the hop's values (the same path when only the value changed).
    pub to_path: String,
    /// The value written.
    pub after: Json,
    /// Why this is the same behaviour.
    pub why: String,
}

/// A value the hop's chart does not read: left out of the hop's values, and a behaviour change
/// the operator accepts by name (`value:<path>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dropped {
    /// Dotted path.
    pub path: String,
    /// The value.
    pub value: Json,
    /// Why it is gone.
    pub why: String,
}

/// What [`hop_values`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct HopValues {
    /// The whole values file of the hop.
    pub values: Json,
    /// Values carried in another form.
    pub translated: Vec<Translated>,
    /// Values left out.
    pub dropped: Vec<Dropped>,
}

/// What the table does with a key.
enum Action {
    /// Same meaning under another path.
    Rename(&'static str),
    /// The chart removed it; why.
    Drop(&'static str),
    /// `kubeProxyReplacement`'s 1.15 words.
    KubeProxyReplacement,
    /// The chart refuses it and nothing carries it over: the operator must act first; the fix.
    Refuse(&'static str),
}

/// The reviewed table: `(dotted path, first chart minor that needs it, action)`. Checked
/// against the `validate.yaml` of the released charts 1.16.19, 1.17.18, 1.18.12 and 1.19.6
/// (each renamed or removed key fails their render), 1.20.0's values and templates (which ignore
/// the 1.20 rows silently but for the Cluster Mesh certificates) and Cilium's upgrade notes.
const TABLE: &[(&str, u64, Action)] = &[
    ("kubeProxyReplacement", 16, Action::KubeProxyReplacement),
    (
        "encryption.keyFile",
        16,
        Action::Rename("encryption.ipsec.keyFile"),
    ),
    (
        "encryption.mountPath",
        16,
        Action::Rename("encryption.ipsec.mountPath"),
    ),
    (
        "encryption.secretName",
        16,
        Action::Rename("encryption.ipsec.secretName"),
    ),
    (
        "encryption.interface",
        16,
        Action::Rename("encryption.ipsec.interface"),
    ),
    (
        "proxy.prometheus.enabled",
        16,
        Action::Rename("envoy.prometheus.enabled"),
    ),
    (
        "proxy.prometheus.port",
        16,
        Action::Rename("envoy.prometheus.port"),
    ),
    (
        "remoteNodeIdentity",
        16,
        Action::Drop("1.16 removed it: the remote-node identity is always on"),
    ),
    (
        "containerRuntime.integration",
        16,
        Action::Drop(
            "1.16 removed it (the render fails when it is set); only `crio` changed anything: it left out the bpf-maps mount",
        ),
    ),
    (
        "endpointStatus",
        16,
        Action::Drop("1.16 removed CiliumEndpoint status reporting"),
    ),
    (
        "etcd.managed",
        16,
        Action::Drop("removed in 1.16 (deprecated since 1.10)"),
    ),
    (
        "encryption.wireguard.userspaceFallback",
        17,
        Action::Drop("1.17 removed the userspace WireGuard fallback: nodes need kernel WireGuard"),
    ),
    (
        "enableCiliumEndpointSlice",
        18,
        Action::Rename("ciliumEndpointSlice.enabled"),
    ),
    (
        "ciliumEndpointSlice.sliceMode",
        18,
        Action::Drop("1.18 removed it: slices are always grouped by identity"),
    ),
    // 1.20: the upgrade notes' "Removed Options", each checked in the 1.20.0 chart's values.yaml,
    // cilium-configmap.yaml and validate.yaml.
    (
        "encryption.strictMode.enabled",
        20,
        Action::Rename("encryption.strictMode.egress.enabled"),
    ),
    (
        "encryption.strictMode.cidr",
        20,
        Action::Rename("encryption.strictMode.egress.cidr"),
    ),
    (
        "encryption.strictMode.allowRemoteNodeIdentities",
        20,
        Action::Rename("encryption.strictMode.egress.allowRemoteNodeIdentities"),
    ),
    (
        "clustermesh.enableMCSAPISupport",
        20,
        Action::Rename("clustermesh.mcsapi.enabled"),
    ),
    (
        "encryption.ipsec.interface",
        20,
        Action::Drop(
            "1.20 removed it with the agent's --encrypt-interface (a no-op since 1.18): IPsec attaches to the devices the agent selects",
        ),
    ),
    (
        "encryption.ipsec.encryptedOverlay",
        20,
        Action::Drop("1.20 removed it with the agent flag, which 1.19 already ignored"),
    ),
    (
        "hubble.redact.kafka",
        20,
        Action::Drop("1.20 removed Kafka API-key redaction with Kafka-aware policies"),
    ),
    (
        "preflight.tofqdnsPreCache",
        20,
        Action::Drop("1.20 removed the preflight's DNS pre-cache"),
    ),
    (
        "clustermesh.apiserver.tls.server.cert",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.server.key",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.admin.cert",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.admin.key",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.remote.cert",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.remote.key",
        20,
        Action::Refuse(CLUSTERMESH_CERTS),
    ),
    (
        "clustermesh.apiserver.tls.server.extraDnsNames",
        20,
        Action::Rename("clustermesh.apiserver.tls.auto.server.extraDnsNames"),
    ),
    (
        "clustermesh.apiserver.tls.server.extraIpAddresses",
        20,
        Action::Rename("clustermesh.apiserver.tls.auto.server.extraIpAddresses"),
    ),
    (
        "clustermesh.apiserver.tls.enableSecrets",
        20,
        Action::Drop(
            "1.20 removed it: the certificate Secrets are generated (tls.auto) or created beforehand",
        ),
    ),
];

/// 1.20's validate.yaml fails on Cluster Mesh certificates given as values, and dropping them
/// would leave the clustermesh-apiserver without its certificates.
const CLUSTERMESH_CERTS: &str = "chart 1.20 no longer takes Cluster Mesh certificates as values: \
     create the Secrets clustermesh-apiserver-server-cert, -admin-cert and -remote-cert from them \
     (kubectl -n kube-system create secret tls ...), remove clustermesh.apiserver.tls.server/admin/remote \
     from the release (helm upgrade with the same chart), or set clustermesh.apiserver.tls.auto.enabled, \
     then plan again";

/// The values for the hop to `chart`: `user` (the release's user values, or the previous
/// hop's), translated for the chart's minor, with `upgradeCompatibility` and `envoy.enabled`
/// as decided. `envoy_runs` says whether a `cilium-envoy` DaemonSet runs before this hop.
pub fn hop_values(
    user: &Json,
    chart: &ChartArchive,
    upgrade_compatibility: &str,
    envoy_runs: bool,
) -> Result<HopValues, Error> {
    let minor = chart.version.minor;
    let mut values = match user {
        Json::Object(_) => user.clone(),
        Json::Null => json!({}),
        other => {
            // Its kind only: the values themselves may hold secrets.
            let kind = match other {
                Json::Array(_) => "a list",
                Json::String(_) => "a string",
                _ => "a scalar",
            };
            return Err(Error::BadValues {
                problem: format!("the release's values are {kind}, not a map"),
            });
        }
    };
    let mut translated = Vec::new();
    let mut dropped = Vec::new();
    for (path, first, action) in TABLE {
        if minor < *first {
            continue;
        }
        let keys: Vec<&str> = path.split('.').collect();
        let Some(before) = take(&mut values, &keys) else {
            continue;
        };
        match action {
            Action::Rename(to) => {
                let to_keys: Vec<&str> = to.split('.').collect();
                put(&mut values, &to_keys, before.clone());
                translated.push(Translated {
                    path: (*path).to_owned(),
                    before: before.clone(),
                    to_path: (*to).to_owned(),
                    after: before,
                    why: format!("the chart 1.{minor} reads it as {to}"),
                });
            }
            Action::Drop(why) => dropped.push(Dropped {
                path: (*path).to_owned(),
                value: before,
                why: (*why).to_owned(),
            }),
            // An empty certificate is the 1.19 default that `helm get values --all` may show.
            Action::Refuse(_) if before.is_null() || before.as_str() == Some("") => {}
            Action::Refuse(fix) => {
                // Never the value itself: these are certificates and keys.
                return Err(Error::CannotTranslate {
                    path: (*path).to_owned(),
                    value: "(certificates and keys)".to_owned(),
                    fix: (*fix).to_owned(),
                });
            }
            Action::KubeProxyReplacement => {
                let (after, why) = kube_proxy_replacement(&before, minor)?;
                put(&mut values, &keys, after.clone());
                if after != before {
                    translated.push(Translated {
                        path: (*path).to_owned(),
                        before,
                        to_path: (*path).to_owned(),
                        after,
                        why,
                    });
                }
            }
        }
    }
    // What the chart does not read any more, found from its own values.yaml and templates.
    let mut unread = Vec::new();
    find_unread(&values, chart, &mut Vec::new(), &mut unread);
    for path in unread {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        if let Some(value) = take(&mut values, &keys) {
            dropped.push(Dropped {
                path: path.join("."),
                value,
                why: format!(
                    "the chart {} neither has it in values.yaml nor reads it in a template",
                    chart.version
                ),
            });
        }
    }
    let map = values.as_object_mut().ok_or_else(|| Error::BadValues {
        problem: "the release's values are not a map".to_owned(),
    })?;
    map.insert(
        "upgradeCompatibility".to_owned(),
        json!(upgrade_compatibility),
    );
    // From 1.16 an unset `envoy.enabled` is decided by upgradeCompatibility; pinning it to
    // what runs now makes the decision explicit, and independent of that value.
    if minor >= 16 && pointer(&values, &["envoy", "enabled"]).is_none_or(Json::is_null) {
        put(&mut values, &["envoy", "enabled"], json!(envoy_runs));
        translated.push(Translated {
            path: "envoy.enabled".to_owned(),
            before: Json::Null,
            to_path: "envoy.enabled".to_owned(),
            after: json!(envoy_runs),
            why: if envoy_runs {
                "kept: Envoy runs as the cilium-envoy DaemonSet now".to_owned()
            } else {
                "kept: Envoy runs inside the agent now; from 1.16 an unset envoy.enabled lets \
                 upgradeCompatibility decide, and a new install gets the cilium-envoy DaemonSet \
                 (set envoy.enabled: true in the release to move to it)"
                    .to_owned()
            },
        });
    }
    Ok(HopValues {
        values,
        translated,
        dropped,
    })
}

/// 1.16+ accepts only `true`/`false`.
fn kube_proxy_replacement(value: &Json, minor: u64) -> Result<(Json, String), Error> {
    let word = match value {
        Json::Bool(_) => return Ok((value.clone(), String::new())),
        Json::String(s) => s.as_str(),
        other => {
            return Err(Error::BadValues {
                problem: format!(
                    "kubeProxyReplacement is {other}; set it to true or false in the release's values"
                ),
            });
        }
    };
    let why = |text: &str| format!("the chart 1.{minor} accepts only true/false: {text}");
    Ok(match word {
        "true" | "false" => (json!(word == "true"), why("the same setting as a boolean")),
        "strict" => (
            json!(true),
            why("`strict` is `true`, full kube-proxy replacement"),
        ),
        "disabled" => (json!(false), why("`disabled` is `false`")),
        "partial" => (
            json!(false),
            why(
                "`partial` is `false` with each feature on through its own value (nodePort, hostPort, externalIPs, socketLB), which the release's values carry",
            ),
        ),
        other => {
            return Err(Error::CannotTranslate {
                path: "kubeProxyReplacement".to_owned(),
                value: other.to_owned(),
                fix: "`probe` turned on what the kernel supported; decide: set \
                      kubeProxyReplacement to true (kube-proxy removed) or false in the release \
                      (helm upgrade with the same chart), then plan again"
                    .to_owned(),
            });
        }
    })
}

fn find_unread(
    value: &Json,
    chart: &ChartArchive,
    at: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
) {
    let Json::Object(map) = value else { return };
    for (key, child) in map {
        at.push(key.clone());
        let path: Vec<&str> = at.iter().map(String::as_str).collect();
        if at.len() == 1 && key == "upgradeCompatibility" {
            // Read by every chart's templates; set below.
        } else if !chart.reads_value(&path) {
            out.push(at.clone());
        } else {
            find_unread(child, chart, at, out);
        }
        at.pop();
    }
}

/// The value at `keys`.
pub(crate) fn pointer<'a>(value: &'a Json, keys: &[&str]) -> Option<&'a Json> {
    keys.iter().try_fold(value, |v, k| v.get(k))
}

/// Removes and returns the value at `keys`; parents left empty are removed too.
fn take(value: &mut Json, keys: &[&str]) -> Option<Json> {
    let (last, parents) = keys.split_last()?;
    let map = value.as_object_mut()?;
    if parents.is_empty() {
        return map.remove(*last);
    }
    let child = map.get_mut(parents[0])?;
    let taken = take(child, &[&parents[1..], &[*last]].concat())?;
    if child.as_object().is_some_and(Map::is_empty) {
        map.remove(parents[0]);
    }
    Some(taken)
}

/// Sets the value at `keys`, creating maps on the way (a non-map on the way is replaced).
fn put(value: &mut Json, keys: &[&str], new: Json) {
    let Some((first, rest)) = keys.split_first() else {
        *value = new;
        return;
    };
    if !value.is_object() {
        *value = json!({});
    }
    if let Json::Object(map) = value {
        let child = map.entry((*first).to_owned()).or_insert(Json::Null);
        put(child, rest, new);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_and_put_prune_and_create_parents() {
        let mut v = json!({"a": {"b": 1}, "c": 2});
        assert_eq!(take(&mut v, &["a", "b"]), Some(json!(1)));
        assert_eq!(v, json!({"c": 2}));
        put(&mut v, &["x", "y"], json!(true));
        assert_eq!(v, json!({"c": 2, "x": {"y": true}}));
        assert_eq!(take(&mut v, &["nope", "y"]), None);
    }

    #[test]
    fn kube_proxy_replacement_words_become_booleans_and_probe_is_refused() -> Result<(), Error> {
        assert_eq!(kube_proxy_replacement(&json!("strict"), 16)?.0, json!(true));
        assert_eq!(
            kube_proxy_replacement(&json!("partial"), 16)?.0,
            json!(false)
        );
        assert_eq!(
            kube_proxy_replacement(&json!("disabled"), 16)?.0,
            json!(false)
        );
        assert_eq!(kube_proxy_replacement(&json!(true), 16)?.0, json!(true));
        let err = kube_proxy_replacement(&json!("probe"), 16)
            .expect_err("probe has no 1.16 form")
            .to_string();
        assert!(
            err.contains("probe") && err.contains("kubeProxyReplacement"),
            "{err}"
        );
        Ok(())
    }
}
