//! Secrets kept out of the plan: a taken-over release's values can hold a CA key (`tls.ca.key`),
//! Hubble's certificates and keys, tokens. The plan (its text, `--output json`, the saved
//! `plan.json`) shows `<redacted>` in their place, with `cilium-values`' rule of what is
//! secret-looking; each hop carries the sha256 of its real values file instead, which `--plan
//! --apply` checks against the values it derives again from the release.
//!
//! Values structured by key are redacted by key; what a plan shows as free text (a dropped
//! value in a behaviour change, a `cilium-config` difference's reason, a workload difference)
//! has every secret text found in the values and `cilium-config` replaced as well.

use std::collections::BTreeMap;

use cilium_values::{REDACTED, is_secret_key, looks_like_secret_material, redact_json};
use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

/// Secret texts shorter than this are redacted where a key says so, but not searched for in
/// free text: a short text would replace ordinary words.
const MIN_SCRUBBED: usize = 6;

/// The secret texts of a plan's values and `cilium-config`s, to be kept out of its printouts.
#[derive(Debug, Default)]
pub(crate) struct Secrets {
    /// Each secret as written raw, JSON-escaped and Rust-escaped; longest first.
    texts: Vec<String>,
}

impl Secrets {
    /// Adds the secret-looking strings of `values`.
    pub(crate) fn add_values(&mut self, values: &Json) {
        let mut redacted = values.clone();
        redact_json(&mut redacted);
        self.add_differing(values, &redacted);
    }

    /// Adds the secret-looking entries of a `cilium-config`.
    pub(crate) fn add_config(&mut self, config: &BTreeMap<String, String>) {
        for (key, value) in config {
            if is_secret_config(key, value) {
                self.add(value);
            }
        }
    }

    fn add_differing(&mut self, original: &Json, redacted: &Json) {
        match (original, redacted) {
            (Json::Object(a), Json::Object(b)) => {
                for (key, inner) in a {
                    if let Some(other) = b.get(key) {
                        self.add_differing(inner, other);
                    }
                }
            }
            (Json::Array(a), Json::Array(b)) => {
                for (inner, other) in a.iter().zip(b) {
                    self.add_differing(inner, other);
                }
            }
            (Json::String(a), Json::String(b)) if a != b => self.add(a),
            _ => {}
        }
    }

    fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SCRUBBED {
            return;
        }
        let json = serde_json::to_string(secret).unwrap_or_default();
        let debug = format!("{secret:?}");
        for form in [
            secret,
            json.trim_matches('"'),
            debug.trim_matches('"'),
            secret.trim(),
        ] {
            if form.chars().count() >= MIN_SCRUBBED && !self.texts.iter().any(|t| t == form) {
                self.texts.push(form.to_owned());
            }
        }
        // The longest first: a secret that contains another is replaced whole.
        self.texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub(crate) fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.texts {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// `value` with secret-looking values redacted by key and every secret text replaced.
    /// Returns the dotted paths redacted by key.
    pub(crate) fn json(&self, value: &mut Json) -> Vec<String> {
        let paths = redact_json(value);
        self.strings(value);
        paths
    }

    fn strings(&self, value: &mut Json) {
        match value {
            Json::Object(map) => map.values_mut().for_each(|v| self.strings(v)),
            Json::Array(items) => items.iter_mut().for_each(|v| self.strings(v)),
            Json::String(text) => *text = self.text(text),
            _ => {}
        }
    }

    /// The value found at the dotted `path` of a values file, redacted as it would be there:
    /// a string under a secret-looking key is secret however it reads.
    pub(crate) fn value_at(&self, path: &str, value: &Json) -> Json {
        let key = path.rsplit('.').next().unwrap_or(path);
        let mut wrapped = Json::Object(std::iter::once((key.to_owned(), value.clone())).collect());
        self.json(&mut wrapped);
        wrapped
            .as_object_mut()
            .and_then(|m| m.remove(key))
            .unwrap_or(Json::Null)
    }

    /// A `cilium-config` value as the plan may show it.
    pub(crate) fn config_value(&self, key: &str, value: Option<String>) -> Option<String> {
        value.map(|v| {
            if is_secret_config(key, &v) {
                REDACTED.to_owned()
            } else {
                self.text(&v)
            }
        })
    }
}

/// Whether a `cilium-config` entry is secret material.
fn is_secret_config(key: &str, value: &str) -> bool {
    !value.is_empty() && (is_secret_key(key) || looks_like_secret_material(value))
}

/// The text of the values file helm gets for `values` ([`crate::write_values`] writes exactly
/// this).
pub fn values_file_text(values: &Json) -> String {
    serde_json::to_string_pretty(values).unwrap_or_default()
}

/// sha256 (hex) of the values file helm gets for `values`: what a plan pins per hop in place of
/// the values themselves.
pub fn values_sha256(values: &Json) -> String {
    sha256_hex(values_file_text(values).as_bytes())
}

/// sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_found_by_key_and_replaced_in_text_in_every_written_form() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\n-----END RSA PRIVATE KEY-----\n";
        let mut secrets = Secrets::default();
        secrets.add_values(&json!({
            "tls": {"ca": {"key": "c2VjcmV0LWNhLWtleQ==", "certValidityDuration": 1095}},
            "hubble": {"tls": {"server": {"key": pem}}},
            "short": {"key": "abc"},
        }));
        secrets.add_config(&BTreeMap::from([
            ("kvstore-token".to_owned(), "tok3n-value".to_owned()),
            ("ipam".to_owned(), "kubernetes".to_owned()),
        ]));
        let text = format!(
            "x = \"c2VjcmV0LWNhLWtleQ==\"; y = {}; z = {pem:?}; w tok3n-value; ipam kubernetes",
            serde_json::to_string(pem).unwrap_or_default()
        );
        let shown = secrets.text(&text);
        for secret in ["c2VjcmV0LWNhLWtleQ", "MIIEsecret", "tok3n-value"] {
            assert!(!shown.contains(secret), "{secret}: {shown}");
        }
        assert!(shown.contains("ipam kubernetes"), "{shown}");
        // A short secret is redacted by its key, not searched for in text.
        assert_eq!(
            secrets.value_at("short.key", &json!("abc")),
            json!(REDACTED)
        );
        assert_eq!(secrets.text("abc"), "abc");
        assert_eq!(
            secrets.value_at("tls.ca", &json!({"key": "k", "certValidityDuration": 1095})),
            json!({"key": REDACTED, "certValidityDuration": 1095})
        );
        assert_eq!(
            secrets.config_value("kvstore-token", Some("x".into())),
            Some(REDACTED.to_owned())
        );
        assert_eq!(
            secrets.config_value("ipam", Some("kubernetes".into())),
            Some("kubernetes".to_owned())
        );
    }

    #[test]
    fn the_values_hash_is_of_the_file_helm_gets() {
        let values = json!({"b": 1, "a": {"c": "d"}});
        assert_eq!(
            values_sha256(&values),
            sha256_hex(values_file_text(&values).as_bytes())
        );
        assert_ne!(values_sha256(&values), values_sha256(&json!({"b": 2})));
        assert_eq!(values_sha256(&values).len(), 64);
    }
}
