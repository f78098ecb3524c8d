//! Secret-looking values kept out of everything printed: a taken-over release's values can hold
//! a CA key (`tls.ca.key`), Hubble's and Clustermesh's certificates and keys, tokens. Printouts
//! (the plan, `--output json`, `values` on a terminal) show [`REDACTED`] in their place; the file
//! written for helm keeps the real values.
//!
//! A value is secret-looking when its key names secret material (its last segment ends in `key`,
//! `password`, `passwd`, `token`, `secret`, `cert`, `crt`, `pem` or `credentials`, whatever the
//! case or separators: `tls.ca.key`, `caCert`, `client-secret`) or when the text itself is PEM
//! (`-----BEGIN`), also base64-encoded as the chart takes certificates. Keys that only name a
//! secret (`secretName`, `keyFile`, `bgp-secrets-namespace`) end otherwise and stay shown.

use serde_json::Value as Json;

/// What a printout shows instead of a secret-looking value.
pub const REDACTED: &str = "<redacted>";

/// Endings of a key (lower case, letters and digits only) that names secret material.
const SECRET_KEY_ENDINGS: &[&str] = &[
    "key",
    "password",
    "passwd",
    "token",
    "secret",
    "cert",
    "crt",
    "pem",
    "credentials",
];

/// Whether a values key (one segment, e.g. `key`, `caCert`, `client-secret`) names secret material.
pub fn is_secret_key(key: &str) -> bool {
    let key: String = key
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_KEY_ENDINGS
        .iter()
        .any(|ending| key.ends_with(ending))
}

/// Whether a text is key or certificate material: PEM, or PEM in base64 (`LS0tLS1CRUdJTi` is
/// `-----BEGIN` encoded).
pub fn looks_like_secret_material(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("-----BEGIN") || text.starts_with("LS0tLS1CRUdJTi")
}

/// Replaces every secret-looking string in `value` with [`REDACTED`] (empty strings stay: they
/// hold nothing) and returns the dotted paths replaced, in document order.
pub fn redact_json(value: &mut Json) -> Vec<String> {
    let mut paths = Vec::new();
    walk(value, false, "", "", &mut paths);
    paths
}

/// `name` is the key `value` sits under (empty for list items and the top).
fn walk(value: &mut Json, secret_key: bool, name: &str, path: &str, out: &mut Vec<String>) {
    match value {
        Json::Object(map) => {
            // Kubernetes' references to a key (a volume's `items: [{key, path}]`, `secretKeyRef`,
            // `configMapKeyRef`) hold the key's name, not its material.
            let reference =
                map.contains_key("path") || name.to_ascii_lowercase().ends_with("keyref");
            for (key, inner) in map.iter_mut() {
                let inner_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let secret = is_secret_key(key) && !(reference && key == "key");
                walk(inner, secret, key, &inner_path, out);
            }
        }
        Json::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, secret_key, "", &format!("{path}[{i}]"), out);
            }
        }
        Json::String(text)
            if !text.is_empty()
                && text != REDACTED
                && (secret_key || looks_like_secret_material(text)) =>
        {
            *text = REDACTED.to_owned();
            out.push(path.to_owned());
        }
        _ => {}
    }
}

/// The comment line that says what a printout left out.
pub(crate) fn redaction_note(paths: &[String]) -> String {
    format!(
        "# Secret-looking values are shown as {REDACTED} ({}); the values file written for helm holds them.\n",
        paths.join(", ")
    )
}

/// Values YAML as it may be printed: unchanged when nothing in it is secret-looking; otherwise
/// its leading comments, a note naming what was left out, and the values with [`REDACTED`] in
/// place of each secret-looking one. Text that does not read as YAML is not printed at all.
pub fn redact_values_yaml(text: &str) -> String {
    let Ok(mut value) = serde_saphyr::from_str::<Json>(text) else {
        return "# (the values are not shown: they do not read as YAML)\n".to_owned();
    };
    let paths = redact_json(&mut value);
    if paths.is_empty() {
        return text.to_owned();
    }
    let header: String = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| format!("{line}\n"))
        .collect();
    let body = serde_saphyr::to_string(&value).unwrap_or_else(|_| {
        "# (the values are not shown: they cannot be written as YAML)\n".into()
    });
    format!("{header}{}{body}", redaction_note(&paths))
}

/// YAML text, or a unified diff of YAML files, as it may be printed, line by line (comments and
/// layout kept): the value of each `key: value` line whose key is secret-looking, the lines of a
/// block scalar (`key: |`) under such a key, and every line of PEM material become
/// [`REDACTED`]. For diffs of files this tool does not write itself (inventory files), where
/// parsing the whole document is not possible.
pub fn redact_yaml_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // The indentation of a secret key whose block scalar is being hidden.
    let mut block_of: Option<usize> = None;
    let mut in_pem = false;
    for line in text.split_inclusive('\n') {
        let is_header =
            line.starts_with("+++ ") || line.starts_with("--- ") || line.starts_with("@@");
        if is_header {
            out.push_str(line);
            continue;
        }
        // A diff line: its marker, then the file's line.
        let (marker, body) = match line.chars().next() {
            Some(c @ ('+' | '-' | ' ')) if text.starts_with("--- ") || text.contains("\n@@") => {
                (c.to_string(), &line[1..])
            }
            _ => (String::new(), line),
        };
        let (content, eol) = match body.strip_suffix('\n') {
            Some(c) => (c.strip_suffix('\r').unwrap_or(c), &body[c.len()..]),
            None => (body, ""),
        };
        let trimmed = content.trim_start();
        let indent = content.len() - trimmed.len();
        if let Some(of) = block_of {
            if trimmed.is_empty() || indent > of {
                out.push_str(&format!("{marker}{}{REDACTED}{eol}", &content[..indent]));
                continue;
            }
            block_of = None;
        }
        if in_pem || looks_like_secret_material(trimmed) {
            in_pem = !trimmed.starts_with("-----END");
            out.push_str(&format!("{marker}{}{REDACTED}{eol}", &content[..indent]));
            continue;
        }
        let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if let Some(colon) = item.find(':')
            && let (key, value) = (&item[..colon], &item[colon + 1..])
            && !key.trim().is_empty()
            && !key.starts_with('#')
            && (value.is_empty() || value.starts_with([' ', '\t']))
        {
            let value = value.trim();
            let secret = is_secret_key(key.trim().trim_matches(['"', '\'']));
            if secret && !value.is_empty() && !value.starts_with('#') {
                if value.starts_with(['|', '>']) {
                    block_of = Some(indent);
                }
                // Everything up to the colon stays: indentation, list dash, the key as written.
                let head = &content[..content.len() - item.len() + colon];
                out.push_str(&format!("{marker}{head}: {REDACTED}{eol}"));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_that_name_secret_material_are_secret_and_names_of_secrets_are_not() {
        for key in [
            "key",
            "caKey",
            "cert",
            "caCert",
            "crt",
            "password",
            "token",
            "client-secret",
            "tls.crt",
            "bootstrapToken",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "keyFile",
            "secretName",
            "secretsNamespace",
            "bgp-secrets-namespace",
            "ipsec-key-file",
            "certValidityDuration",
            "enabled",
            "monkeys",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn secret_values_are_replaced_and_named_and_the_rest_stays() {
        let pem_b64 = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=";
        let mut values = json!({
            "tls": {"ca": {"cert": pem_b64, "key": "c2VjcmV0", "certValidityDuration": 1095}},
            "hubble": {"tls": {"server": {"key": ""}}, "relay": {"enabled": true}},
            "clustermesh": {"config": {"clusters": [{"name": "c1", "tls": {"key": "k"}}]}},
            "extraConfig": {"some-pem": "-----BEGIN PRIVATE KEY-----\nMII\n"},
            "encryption": {"ipsec": {"keyFile": "keys", "secretName": "cilium-ipsec-keys"}},
            "extraVolumes": [{"configMap": {"items": [{"key": "etcd.config", "path": "etcd.config"}]}}],
            "extraEnv": [{"valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}}]
        });
        let paths = redact_json(&mut values);
        assert_eq!(
            paths,
            [
                "tls.ca.cert",
                "tls.ca.key",
                "clustermesh.config.clusters[0].tls.key",
                "extraConfig.some-pem"
            ]
        );
        assert_eq!(values["tls"]["ca"]["key"], REDACTED);
        assert_eq!(values["tls"]["ca"]["certValidityDuration"], 1095);
        assert_eq!(values["hubble"]["tls"]["server"]["key"], "");
        assert_eq!(values["clustermesh"]["config"]["clusters"][0]["name"], "c1");
        assert_eq!(values["encryption"]["ipsec"]["keyFile"], "keys");
        assert_eq!(
            values["encryption"]["ipsec"]["secretName"],
            "cilium-ipsec-keys"
        );
        assert_eq!(
            values["extraVolumes"][0]["configMap"]["items"][0]["key"],
            "etcd.config"
        );
        assert_eq!(
            values["extraEnv"][0]["valueFrom"]["secretKeyRef"]["key"],
            "password"
        );
        // Redacting twice finds nothing more.
        assert!(redact_json(&mut values).is_empty());
    }

    #[test]
    fn printed_translated_values_keep_their_provenance_and_hide_secrets() {
        let mut values = crate::Values::new(crate::ChartVersion::parse("1.15.9").expect("version"));
        values
            .chart
            .extra_config
            .insert("kvstore-token".into(), "abc123".into());
        values.note(
            "extraConfig.kvstore-token",
            crate::Provenance::Live {
                source: "cilium-config.yaml".into(),
                key: "kvstore-token".into(),
            },
        );
        let (shown, paths) = values.to_yaml_with_provenance_redacted().expect("yaml");
        assert_eq!(paths, ["extraConfig.kvstore-token"]);
        assert!(
            shown.contains("kvstore-token: \"<redacted>\"  # live cilium-config kvstore-token")
                && !shown.contains("abc123"),
            "{shown}"
        );
        let (json, _) = values.to_json_string_redacted().expect("json");
        assert!(!json.contains("abc123"), "{json}");
        // The file for helm keeps the value.
        assert!(
            values
                .to_yaml_with_provenance()
                .expect("yaml")
                .contains("\"abc123\"")
        );
    }

    #[test]
    fn diffs_of_yaml_hide_secret_lines_and_keep_the_rest() {
        let diff = "--- a/inventory/group_vars/k8s_cluster/k8s-net-cilium.yml\n+++ b/inventory/group_vars/k8s_cluster/k8s-net-cilium.yml\n@@ -1,4 +1,4 @@\n cilium_ipsec_key: \"3+ rfc4106(gcm(aes)) 0123 128\"\n-kube_network_plugin: cilium\n+kube_network_plugin: cni\n tls:\n   key: |\n     c2VjcmV0\n     bW9yZQ==\n   keyFile: keys\n-  cert: \"-----BEGIN CERTIFICATE-----\\nMII\"\n   - password: hunter2  # old\n";
        let shown = redact_yaml_lines(diff);
        for secret in ["0123 128", "c2VjcmV0", "bW9yZQ==", "MII", "hunter2"] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        for kept in [
            "--- a/inventory/group_vars/k8s_cluster/k8s-net-cilium.yml\n",
            "@@ -1,4 +1,4 @@\n",
            " cilium_ipsec_key: <redacted>\n",
            "-kube_network_plugin: cilium\n+kube_network_plugin: cni\n",
            "   key: <redacted>\n     <redacted>\n     <redacted>\n   keyFile: keys\n",
            "-  cert: <redacted>\n",
            "   - password: <redacted>\n",
        ] {
            assert!(shown.contains(kept), "{kept:?}: {shown}");
        }
        // Plain YAML (no diff) too, a PEM block to its end line.
        let yaml =
            "ca: |\n  -----BEGIN CERTIFICATE-----\n  MIIC\n  -----END CERTIFICATE-----\nname: x\n";
        assert_eq!(
            redact_yaml_lines(yaml),
            "ca: |\n  <redacted>\n  <redacted>\n  <redacted>\nname: x\n"
        );
    }

    #[test]
    fn printed_values_yaml_keeps_its_header_and_names_what_it_left_out() {
        let plain = "# The values of release cilium revision 1\nipam:\n  mode: kubernetes\n";
        assert_eq!(redact_values_yaml(plain), plain);
        let secret = "# The values of release cilium revision 1\ntls:\n  ca:\n    key: c2VjcmV0\n    cert: |\n      -----BEGIN CERTIFICATE-----\n      MIIC\n";
        let shown = redact_values_yaml(secret);
        assert!(
            shown.starts_with("# The values of release cilium revision 1\n"),
            "{shown}"
        );
        assert!(
            shown.contains("(tls.ca.key, tls.ca.cert)") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
        assert!(!shown.contains("MIIC"), "{shown}");
        let back: Json = serde_saphyr::from_str(&shown).expect("still YAML");
        assert_eq!(back["tls"]["ca"]["key"], REDACTED);

        // A taken-over release's values as the flow prints them (serde-saphyr's YAML).
        let release = json!({
            "hubble": {"tls": {"server": {"cert": "LS0tLS1CRUdJTiBDRVJU\nLS0t", "key": "a2V5"}}},
            "k8sServiceHost": "10.0.0.1"
        });
        let text = format!(
            "# The values of release cilium revision 3 (set by cilium-cli), handed over unchanged.\n{}",
            serde_saphyr::to_string(&release).expect("yaml")
        );
        let shown = redact_values_yaml(&text);
        assert!(
            !shown.contains("a2V5") && !shown.contains("LS0t") && shown.contains("10.0.0.1"),
            "{shown}"
        );
    }
}
