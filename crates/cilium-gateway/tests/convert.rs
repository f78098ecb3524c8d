//! `convert` on recorded Ingresses (`tests/data/ingresses.json`): the Gateway and HTTPRoutes
//! (the insta snapshot `tests/snapshots/convert__ingresses.gateway.snap`) and one warning per lost
//! annotation.

use std::path::{Path, PathBuf};

use cilium_gateway::convert::{ConvertOptions, convert};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde::Deserialize;

#[derive(Deserialize)]
struct Recorded {
    #[allow(dead_code)]
    about: String,
    ingresses: Vec<Ingress>,
    services: Vec<Service>,
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[test]
fn ingress_nginx_objects_become_a_gateway_and_routes() {
    let text = std::fs::read_to_string(data("ingresses.json")).unwrap_or_else(|e| panic!("{e}"));
    let recorded: Recorded = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let conversion = convert(
        &recorded.ingresses,
        &recorded.services,
        &ConvertOptions::default(),
    );

    assert_eq!(conversion.skipped, ["other/dashboard"]);
    let warnings: Vec<(String, Option<String>)> = conversion
        .warnings
        .iter()
        .map(|w| (w.ingress.clone(), w.annotation.clone()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                "demo/legacy".to_owned(),
                Some("nginx.ingress.kubernetes.io/rewrite-target".to_owned())
            ),
            (
                "demo/lost-canary".to_owned(),
                Some("nginx.ingress.kubernetes.io/canary".to_owned())
            ),
            // The HTTPS redirect answers 301: the default target's CRDs (v1.0) have no 308.
            ("demo/web".to_owned(), None),
            (
                "demo/web".to_owned(),
                Some("nginx.ingress.kubernetes.io/proxy-body-size".to_owned())
            ),
            (
                "demo/web".to_owned(),
                Some("nginx.ingress.kubernetes.io/server-alias".to_owned())
            ),
        ]
    );

    let yaml = conversion.to_yaml().unwrap_or_else(|e| panic!("{e}"));
    // insta compares without trailing whitespace; this keeps the comparison exact.
    assert_eq!(yaml, format!("{}\n", yaml.trim_end()));
    insta::assert_snapshot!("ingresses.gateway", yaml);
}
