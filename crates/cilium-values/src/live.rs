//! The live `cilium-config` ConfigMap: the truth of what the agents run with.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use crate::Error;

/// The `data` map of the live `cilium-config`, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveConfig {
    source: String,
    data: BTreeMap<String, String>,
}

impl LiveConfig {
    /// Read a ConfigMap manifest, `kubectl get cm cilium-config -o yaml` output, a `kind: List`
    /// or a multi-document file (as Kubespray writes `cilium-config.yml`), and keep `cilium-config`.
    pub fn from_configmap_yaml(text: &str, source_path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = source_path.as_ref().display().to_string();
        let documents: Vec<Json> =
            serde_saphyr::from_multiple(text).map_err(|e| Error::LiveConfigYaml {
                path: path.clone(),
                message: first_line(&e.to_string()),
            })?;
        let mut seen = Vec::new();
        let mut candidates = Vec::new();
        for document in &documents {
            collect_configmaps(document, &mut candidates, &mut seen);
        }
        let chosen = candidates
            .iter()
            .find(|cm| name_of(cm) == Some("cilium-config"))
            .ok_or_else(|| Error::NoCiliumConfig {
                path: path.clone(),
                found: if seen.is_empty() {
                    "nothing".to_owned()
                } else {
                    seen.join(", ")
                },
            })?;
        let mut data = BTreeMap::new();
        match chosen.get("data") {
            None | Some(Json::Null) => {}
            Some(Json::Object(map)) => {
                for (key, value) in map {
                    data.insert(key.clone(), scalar_text(&path, key, value)?);
                }
            }
            Some(other) => {
                return Err(Error::LiveValueNotString {
                    path,
                    key: "data".to_owned(),
                    found: describe(other),
                });
            }
        }
        Ok(Self { source: path, data })
    }

    /// Read [`LiveConfig::from_configmap_yaml`] from a file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadLiveConfig {
            path: path.to_owned(),
            source,
        })?;
        Self::from_configmap_yaml(&text, path)
    }

    /// Build from a data map already in hand (e.g. fetched through the Kubernetes API).
    pub fn from_map(data: BTreeMap<String, String>, source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            data,
        }
    }

    /// Where the map came from (a file path, or a description like `kube-system/cilium-config`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The whole `data` map.
    pub fn data(&self) -> &BTreeMap<String, String> {
        &self.data
    }

    /// One key's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }
}

fn collect_configmaps<'a>(document: &'a Json, out: &mut Vec<&'a Json>, seen: &mut Vec<String>) {
    let kind = document.get("kind").and_then(Json::as_str);
    match kind {
        Some("ConfigMap") => {
            seen.push(format!(
                "ConfigMap {}",
                name_of(document).unwrap_or("<unnamed>")
            ));
            out.push(document);
        }
        Some("List") => {
            if let Some(items) = document.get("items").and_then(Json::as_array) {
                for item in items {
                    collect_configmaps(item, out, seen);
                }
            }
        }
        Some(other) => seen.push(format!(
            "{other} {}",
            name_of(document).unwrap_or("<unnamed>")
        )),
        None if document.is_null() => {}
        None => seen.push("a document without `kind`".to_owned()),
    }
}

fn name_of(document: &Json) -> Option<&str> {
    document.get("metadata")?.get("name")?.as_str()
}

/// ConfigMap values are strings; an unquoted number or boolean in a hand-written manifest is read as
/// its text (the API server would have refused it, but the meaning is clear).
fn scalar_text(path: &str, key: &str, value: &Json) -> Result<String, Error> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Bool(b) => Ok(b.to_string()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Null => Ok(String::new()),
        other => Err(Error::LiveValueNotString {
            path: path.to_owned(),
            key: key.to_owned(),
            found: describe(other),
        }),
    }
}

fn describe(value: &Json) -> String {
    match value {
        Json::Array(_) => "a list".to_owned(),
        Json::Object(_) => "a mapping".to_owned(),
        other => format!("`{other}`"),
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or(text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kubectl_output_and_manifest_streams() {
        let kubectl = "apiVersion: v1\ndata:\n  debug: \"False\"\n  bpf-ct-global-tcp-max: \"524288\"\nkind: ConfigMap\nmetadata:\n  name: cilium-config\n  namespace: kube-system\n";
        let live = LiveConfig::from_configmap_yaml(kubectl, "cm.yaml").expect("valid");
        assert_eq!(live.get("debug"), Some("False"));
        assert_eq!(live.get("bpf-ct-global-tcp-max"), Some("524288"));
        assert_eq!(live.source(), "cm.yaml");

        let stream = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cilium-config}\ndata:\n  a: b\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ip-masq-agent}\ndata:\n  config: x\n";
        let live = LiveConfig::from_configmap_yaml(stream, "s.yaml").expect("valid");
        assert_eq!(live.data().len(), 1);

        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: cilium-config}\n  data: {x: \"1\"}\n";
        assert_eq!(
            LiveConfig::from_configmap_yaml(list, "l.yaml")
                .expect("valid")
                .get("x"),
            Some("1")
        );
    }

    #[test]
    fn bad_files_name_the_file_and_the_fix() {
        let cases: &[(&str, &str)] = &[
            ("data: [unclosed", "not valid YAML"),
            (
                "kind: ConfigMap\nmetadata: {name: other}\ndata: {}\n",
                "ConfigMap other",
            ),
            (
                "kind: Secret\nmetadata: {name: cilium-config}\n",
                "Secret cilium-config",
            ),
            (
                "kind: ConfigMap\nmetadata: {name: cilium-config}\ndata: {a: {b: c}}\n",
                "key `a` holds a mapping",
            ),
        ];
        for (text, want) in cases {
            let err = LiveConfig::from_configmap_yaml(text, "bad.yaml")
                .expect_err(text)
                .to_string();
            assert!(err.contains("bad.yaml"), "{err}");
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }
}
