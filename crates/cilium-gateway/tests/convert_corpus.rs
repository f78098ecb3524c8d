//! `convert` on the ingress-nginx corpus (`tests/ingress-corpus/*.yaml`, each case citing the
//! behaviour ingress-nginx documents) for three targets: the objects, warnings and converted
//! annotations as insta snapshots (`tests/snapshots/convert_corpus__<file>@<target>.snap`),
//! reviewed against the documentation; every annotation converted or warned; and a property test
//! that no capture-group reference (`$1`) reaches the output.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cilium_gateway::bundle::{BundleVersion, Channel};
use cilium_gateway::convert::{Conversion, ConvertOptions, NGINX_PREFIX, convert};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use proptest::prelude::*;
use serde_json::{Value, json};

/// The targets: the oldest Cilium with Gateway API on its CRDs; Cilium 1.19 on the experimental
/// v1.4.1 CRDs; a Cilium after 1.19 on the experimental v1.5.1 CRDs (308 redirects, CORS).
fn targets() -> Vec<(&'static str, ConvertOptions)> {
    let target = |minor: u32, channel: Channel, crds: BundleVersion| ConvertOptions {
        cilium_minor: minor,
        crd_channel: channel,
        crd_version: crds,
        ..ConvertOptions::default()
    };
    vec![
        (
            "cilium-1.15-v1.0.0-standard",
            target(15, Channel::Standard, BundleVersion::new(1, 0, 0)),
        ),
        (
            "cilium-1.19-v1.4.1-experimental",
            target(19, Channel::Experimental, BundleVersion::new(1, 4, 1)),
        ),
        (
            "cilium-1.20-v1.6.1-experimental",
            target(20, Channel::Experimental, BundleVersion::new(1, 6, 1)),
        ),
    ]
}

struct Corpus {
    ingresses: Vec<Ingress>,
    services: Vec<Service>,
    config_maps: Vec<ConfigMap>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ingress-corpus")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap_or_else(|e| panic!("{e}"))
        .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> Corpus {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut corpus = Corpus {
        ingresses: Vec::new(),
        services: Vec::new(),
        config_maps: Vec::new(),
    };
    for document in documents {
        match document["kind"].as_str() {
            Some("Ingress") => corpus.ingresses.push(
                serde_json::from_value(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            ),
            Some("Service") => corpus.services.push(
                serde_json::from_value(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            ),
            Some("ConfigMap") => corpus.config_maps.push(
                serde_json::from_value(document)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            ),
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        }
    }
    corpus
}

fn run(corpus: &Corpus, options: &ConvertOptions) -> Conversion {
    let options = ConvertOptions {
        config_maps: corpus.config_maps.clone(),
        ..options.clone()
    };
    convert(&corpus.ingresses, &corpus.services, &options)
}

/// The snapshot text: the objects, then the warnings and the converted annotations.
fn report(conversion: &Conversion) -> String {
    let mut out = conversion.to_yaml().unwrap_or_else(|e| panic!("{e}"));
    out.push_str("# warnings\n");
    for w in &conversion.warnings {
        let annotation = w
            .annotation
            .as_deref()
            .map(|a| a.trim_start_matches(NGINX_PREFIX))
            .unwrap_or("-");
        out.push_str(&format!("# {} [{annotation}] {}\n", w.ingress, w.message));
    }
    out.push_str("# converted\n");
    for c in &conversion.converted {
        out.push_str(&format!(
            "# {} [{}]\n",
            c.ingress,
            c.annotation.trim_start_matches(NGINX_PREFIX)
        ));
    }
    out
}

#[test]
fn corpus_converts_as_ingress_nginx_documents() {
    for file in corpus_files() {
        let corpus = read(&file);
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        for (target, options) in targets() {
            let conversion = run(&corpus, &options);
            let text = report(&conversion);
            insta::assert_snapshot!(format!("{stem}@{target}"), text);
        }
    }
}

#[test]
fn every_annotation_of_the_corpus_is_converted_or_warned() {
    for file in corpus_files() {
        let corpus = read(&file);
        for (target, options) in targets() {
            let conversion = run(&corpus, &options);
            let accounted: BTreeSet<(String, String)> = conversion
                .warnings
                .iter()
                .filter_map(|w| Some((w.ingress.clone(), w.annotation.clone()?)))
                .chain(
                    conversion
                        .converted
                        .iter()
                        .map(|c| (c.ingress.clone(), c.annotation.clone())),
                )
                .collect();
            for ingress in &corpus.ingresses {
                let id = format!(
                    "{}/{}",
                    ingress.metadata.namespace.as_deref().unwrap_or("default"),
                    ingress.metadata.name.as_deref().unwrap_or_default()
                );
                for key in ingress
                    .metadata
                    .annotations
                    .iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    if key.starts_with(NGINX_PREFIX) {
                        assert!(
                            accounted.contains(&(id.clone(), key.clone())),
                            "{} ({target}): {id} {key} is neither converted nor warned",
                            file.display()
                        );
                    }
                }
            }
        }
    }
}

/// The documented rewrite example carries over as PathPrefix + ReplacePrefixMatch, on every
/// target (the core of ingress2gateway's `$2` bug).
#[test]
fn documented_rewrite_is_a_prefix_replacement() {
    let corpus = read(&corpus_dir().join("rewrite.yaml"));
    for (target, options) in targets() {
        let conversion = run(&corpus, &options);
        let route = conversion
            .objects
            .iter()
            .find(|o| {
                o["kind"] == "HTTPRoute" && o["metadata"]["name"] == "rewrite-rewrite-example-com"
            })
            .unwrap_or_else(|| panic!("{target}: no route"));
        assert_eq!(
            route["spec"]["rules"][0]["matches"][0]["path"],
            json!({ "type": "PathPrefix", "value": "/something" }),
            "{target}"
        );
        assert_eq!(
            route["spec"]["rules"][0]["filters"][0]["urlRewrite"]["path"],
            json!({ "type": "ReplacePrefixMatch", "replacePrefixMatch": "/" }),
            "{target}"
        );
    }
}

/// Features are emitted only where the target has them: no timeouts, CORS, 308, GRPCRoute or
/// BackendTLSPolicy on Cilium 1.15 with the v1.0 standard CRDs.
#[test]
fn nothing_beyond_the_target_is_emitted() {
    let (_, floor) = targets().remove(0);
    for file in corpus_files() {
        let conversion = run(&read(&file), &floor);
        let yaml = conversion.to_yaml().unwrap_or_else(|e| panic!("{e}"));
        for absent in [
            "timeouts:",
            "cors:",
            "statusCode: 308",
            "GRPCRoute",
            "BackendTLSPolicy",
            "sessionPersistence",
        ] {
            assert!(
                !yaml.contains(absent),
                "{}: {absent} on the floor target:\n{yaml}",
                file.display()
            );
        }
    }
}

fn capture_ref(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'$' && w[1].is_ascii_digit())
}

proptest! {
    /// Whatever paths and targets an Ingress has, no emitted path, filter or match holds `$N`.
    #[test]
    fn no_capture_group_reference_is_emitted(
        prefix in "/[a-z]{0,6}",
        shape in prop::sample::select(vec!["", "(/|$)(.*)", "/(.*)", "(/.*)", "(.*)", "/([0-9]+)/x", "$1", "(a|b)$2"]),
        target in "(/[a-z$0-9]{0,4}){0,3}(/?\\$[0-9])?",
        extra in "[a-z/$0-9]{0,8}",
        regex in any::<bool>(),
    ) {
        let ingress: Ingress = serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "n", "annotations": {
                "nginx.ingress.kubernetes.io/rewrite-target": target,
                "nginx.ingress.kubernetes.io/use-regex": regex.to_string(),
                "nginx.ingress.kubernetes.io/app-root": format!("/{extra}"),
                "nginx.ingress.kubernetes.io/x-forwarded-prefix": format!("/{extra}"),
                "nginx.ingress.kubernetes.io/upstream-vhost": format!("h{extra}"),
            } },
            "spec": { "ingressClassName": "nginx", "rules": [ { "host": "p.example.com", "http": { "paths": [
                { "path": format!("{prefix}{shape}"), "pathType": "ImplementationSpecific",
                  "backend": { "service": { "name": "s", "port": { "number": 80 } } } }
            ] } } ] }
        })).unwrap_or_else(|e| panic!("{e}"));
        let redirect: Ingress = serde_json::from_value(json!({
            "metadata": { "name": "r", "namespace": "n", "annotations": {
                "nginx.ingress.kubernetes.io/permanent-redirect": format!("https://x.example.com/{extra}"),
            } },
            "spec": { "ingressClassName": "nginx", "rules": [ { "host": "r.example.com", "http": { "paths": [
                { "path": "/", "pathType": "Prefix", "backend": { "service": { "name": "s", "port": { "number": 80 } } } }
            ] } } ] }
        })).unwrap_or_else(|e| panic!("{e}"));
        for (_, options) in targets() {
            let conversion = convert(&[ingress.clone(), redirect.clone()], &[], &options);
            let text = serde_json::to_string(&conversion.objects).unwrap_or_default();
            prop_assert!(!capture_ref(&text), "{text}");
        }
    }
}

/// The CRDs allow 16 rules per HTTPRoute: a host with 20 paths becomes two routes, in order.
#[test]
fn a_host_with_many_paths_is_split_into_routes_of_16_rules() {
    let paths: Vec<Value> = (0..20)
        .map(|i| {
            json!({ "path": format!("/p{i}"), "pathType": "Prefix",
                    "backend": { "service": { "name": "s", "port": { "number": 80 } } } })
        })
        .collect();
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "big", "namespace": "n" },
        "spec": { "ingressClassName": "nginx",
                  "rules": [ { "host": "big.example.com", "http": { "paths": paths } } ] }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let conversion = convert(&[ingress], &[], &ConvertOptions::default());
    let routes: Vec<(&str, usize)> = conversion
        .objects
        .iter()
        .filter(|o| o["kind"] == "HTTPRoute")
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or_default(),
                o["spec"]["rules"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [("big-big-example-com", 16), ("big-big-example-com-2", 4)]
    );
    let last = conversion
        .objects
        .iter()
        .find(|o| o["metadata"]["name"] == "big-big-example-com-2")
        .unwrap_or_else(|| panic!("no second route"));
    assert_eq!(
        last["spec"]["rules"][0]["matches"][0]["path"]["value"],
        "/p16"
    );
}

/// A Gateway takes 64 listeners: 40 TLS hosts (80 listeners) become Gateways `cilium` and
/// `cilium-2`, and each route's parentRefs name the Gateway holding its listener.
#[test]
fn a_namespace_with_many_hosts_gets_gateways_of_64_listeners() {
    let ingresses: Vec<Ingress> = (0..40)
        .map(|i| {
            let host = format!("h{i:02}.example.com");
            serde_json::from_value(json!({
                "metadata": { "name": format!("i{i:02}"), "namespace": "n" },
                "spec": { "ingressClassName": "nginx",
                          "tls": [ { "hosts": [host], "secretName": "tls" } ],
                          "rules": [ { "host": host, "http": { "paths": [
                    { "path": "/", "pathType": "Prefix",
                      "backend": { "service": { "name": "s", "port": { "number": 80 } } } } ] } } ] }
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let conversion = convert(&ingresses, &[], &ConvertOptions::default());
    let gateways: Vec<(&str, usize)> = conversion
        .objects
        .iter()
        .filter(|o| o["kind"] == "Gateway")
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or_default(),
                o["spec"]["listeners"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(gateways, [("cilium", 64), ("cilium-2", 16)]);
    for object in &conversion.objects {
        if object["kind"] == "Gateway" {
            continue;
        }
        for parent in object["spec"]["parentRefs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let gateway = conversion
                .objects
                .iter()
                .find(|g| g["kind"] == "Gateway" && g["metadata"]["name"] == parent["name"])
                .unwrap_or_else(|| panic!("no Gateway {}", parent["name"]));
            assert!(
                gateway["spec"]["listeners"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|l| l["name"] == parent["sectionName"]),
                "{} names {} which lacks {}",
                object["metadata"]["name"],
                parent["name"],
                parent["sectionName"]
            );
        }
    }
}

/// An Ingress without a class is served by ingress-nginx only as the default class: skipped with
/// a warning that says so, converted with `include_classless`.
#[test]
fn classless_ingresses_are_warned_about_or_included() {
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": { "name": "old", "namespace": "n" },
        "spec": { "rules": [ { "host": "old.example.com", "http": { "paths": [
            { "path": "/", "pathType": "Prefix",
              "backend": { "service": { "name": "s", "port": { "number": 80 } } } } ] } } ] }
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let skipped = convert(
        std::slice::from_ref(&ingress),
        &[],
        &ConvertOptions::default(),
    );
    assert_eq!(skipped.skipped, ["n/old"]);
    assert!(skipped.objects.is_empty());
    assert!(
        skipped.warnings[0].message.contains("--include-classless"),
        "{:?}",
        skipped.warnings
    );
    let included = convert(
        &[ingress],
        &[],
        &ConvertOptions {
            include_classless: true,
            ..ConvertOptions::default()
        },
    );
    assert!(included.skipped.is_empty());
    assert!(included.objects.iter().any(|o| o["kind"] == "HTTPRoute"));
}
