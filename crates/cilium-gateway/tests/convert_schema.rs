//! The corpus's converted objects checked against the released Gateway API CRDs
//! (`../shared/gateway-api-crds/<release>/`): every field known to the served version, and every
//! enum, pattern, length and item count of the OpenAPI schema respected. CEL rules are left to
//! the API server (the e2e tests apply objects to a real one).

use std::path::{Path, PathBuf};

use cilium_gateway::bundle::{BundleVersion, Channel};
use cilium_gateway::convert::{ConvertOptions, convert};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

/// The CRD documents of a release: the standard install plus the experimental TLSRoute.
fn crds(upstream: &upstream::Upstream, release: &str) -> Vec<Value> {
    let dir = upstream.gateway_api_crds(release);
    let mut out = Vec::new();
    for file in ["standard-install.yaml", "experimental-tlsroutes.yaml"] {
        let path = dir.join(file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.extend(
            docs.into_iter()
                .filter(|d| d["kind"] == "CustomResourceDefinition"),
        );
    }
    out
}

/// The schema of `kind` at `version`.
fn schema<'a>(crds: &'a [Value], kind: &str, version: &str) -> Option<&'a Value> {
    let crd = crds.iter().find(|c| c["spec"]["names"]["kind"] == kind)?;
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == version && v["served"] == true)
        .map(|v| &v["schema"]["openAPIV3Schema"])
}

/// Checks `value` against `schema`; problems are pushed with their path. `lenient` names
/// fields only the experimental channel has (this folder holds the standard channel).
fn check(value: &Value, schema: &Value, at: &str, lenient: &[&str], problems: &mut Vec<String>) {
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} not in {allowed:?}"));
    }
    match value {
        Value::Object(map) => {
            if at.ends_with("/metadata") {
                return;
            }
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !map.contains_key(name) {
                    problems.push(format!("{at}: required {name} missing"));
                }
            }
            for (key, item) in map {
                let path = format!("{at}/{key}");
                match (
                    properties.and_then(|p| p.get(key)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(sub), _) => check(item, sub, &path, lenient, problems),
                    (None, Some(sub)) if sub.is_object() => {
                        check(item, sub, &path, lenient, problems);
                    }
                    _ if schema["x-kubernetes-preserve-unknown-fields"] == true => {}
                    _ if lenient.contains(&key.as_str()) => {}
                    _ => problems.push(format!("{path}: not in the schema")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                problems.push(format!("{at}: {} items, at most {max}", items.len()));
            }
            for (i, item) in items.iter().enumerate() {
                check(
                    item,
                    &schema["items"],
                    &format!("{at}/{i}"),
                    lenient,
                    problems,
                );
            }
        }
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
                problems.push(format!(
                    "{at}: {text:?} longer than {}",
                    schema["maxLength"]
                ));
            }
            if schema["minLength"].as_u64().is_some_and(|min| length < min) {
                problems.push(format!(
                    "{at}: {text:?} shorter than {}",
                    schema["minLength"]
                ));
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                let regex = regex::Regex::new(pattern)
                    .unwrap_or_else(|e| panic!("{at}: pattern {pattern}: {e}"));
                if !regex.is_match(text) {
                    problems.push(format!("{at}: {text:?} does not match {pattern}"));
                }
            }
        }
        Value::Number(number) => {
            let n = number.as_f64().unwrap_or_default();
            if schema["maximum"].as_f64().is_some_and(|max| n > max) {
                problems.push(format!("{at}: {n} above {}", schema["maximum"]));
            }
            if schema["minimum"].as_f64().is_some_and(|min| n < min) {
                problems.push(format!("{at}: {n} below {}", schema["minimum"]));
            }
        }
        _ => {}
    }
}

/// One corpus file: its Ingresses, Services and ConfigMaps.
type CorpusFile = (Vec<Ingress>, Vec<Service>, Vec<ConfigMap>, PathBuf);

fn corpus() -> Vec<CorpusFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ingress-corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{e}"));
            fn of<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> Vec<T> {
                docs.iter()
                    .filter(|d| d["kind"] == kind)
                    .map(|d| serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{e}")))
                    .collect()
            }
            (
                of(&docs, "Ingress"),
                of(&docs, "Service"),
                of(&docs, "ConfigMap"),
                file,
            )
        })
        .collect()
}

#[test]
fn converted_corpus_fits_the_released_crds() {
    let Some(upstream) = upstream::Upstream::for_test("converted_corpus_fits_the_released_crds")
    else {
        return;
    };
    // (Cilium minor, channel, release, fields only the experimental channel has).
    let targets: [(u32, Channel, BundleVersion, &str, &[&str]); 3] = [
        (
            15,
            Channel::Standard,
            BundleVersion::new(1, 0, 0),
            "v1.0.0",
            &[],
        ),
        (
            19,
            Channel::Experimental,
            BundleVersion::new(1, 4, 1),
            "v1.4.1",
            &[],
        ),
        (
            20,
            Channel::Experimental,
            BundleVersion::new(1, 6, 1),
            "v1.6.1",
            &[],
        ),
    ];
    let mut checked = 0;
    for (minor, channel, crd_version, release, lenient) in targets {
        let crds = crds(&upstream, release);
        for (ingresses, services, config_maps, file) in corpus() {
            let options = ConvertOptions {
                cilium_minor: minor,
                crd_channel: channel,
                crd_version: crd_version.clone(),
                config_maps,
                ..ConvertOptions::default()
            };
            let conversion = convert(&ingresses, &services, &options);
            for object in &conversion.objects {
                let kind = object["kind"].as_str().unwrap_or_default();
                let version = object["apiVersion"]
                    .as_str()
                    .and_then(|v| v.rsplit('/').next())
                    .unwrap_or_default();
                let schema = schema(&crds, kind, version).unwrap_or_else(|| {
                    panic!(
                        "{} ({release}): {kind} {version} is not served",
                        file.display()
                    )
                });
                let mut problems = Vec::new();
                check(object, schema, "", lenient, &mut problems);
                assert!(
                    problems.is_empty(),
                    "{} ({release}): {kind} {}:\n{}",
                    file.display(),
                    object["metadata"]["name"],
                    problems.join("\n")
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} objects checked");
}
