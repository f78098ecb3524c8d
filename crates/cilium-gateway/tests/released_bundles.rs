//! The bundle table and the Cilium requirements checked against the released Gateway API CRDs
//! (`../shared/gateway-api-crds/<release>/`: each tag's `standard-install.yaml` and experimental
//! TLSRoute), and `enable`'s TLSRoute choice for Cilium 1.20 planned with those files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cilium_gateway::bundle::{
    BundleVersion, Channel, KINDS, Requirement, VersionEntry, versions_in_bundle,
};
use cilium_gateway::collect::crd_facts_from_manifest;
use cilium_gateway::enable::read_crd_files;
use cilium_gateway::state::{CrdFacts, ReleaseFacts};
use cilium_gateway::{ClusterState, Error, Status, check, plan};
use serde_json::{Value, json};

const STANDARD: &str = "standard-install.yaml";
const EXPERIMENTAL_TLS: &str = "experimental-tlsroutes.yaml";

fn file(upstream: &upstream::Upstream, release: &str, name: &str) -> PathBuf {
    upstream.gateway_api_crds(release).join(name)
}

/// The Gateway API CRDs of one released file, by plural.
fn crds_of(path: PathBuf) -> BTreeMap<String, Value> {
    read_crd_files(&[path])
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|crd| {
            let plural = crd["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (plural, crd)
        })
        .collect()
}

fn facts(crd: &Value) -> CrdFacts {
    crd_facts_from_manifest(crd).unwrap_or_else(|| panic!("not a Gateway API CRD: {crd}"))
}

/// `(name, served, storage)` of a manifest's versions.
fn entries(crd: &Value) -> Vec<(String, bool, bool)> {
    crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_owned(),
                v["served"] == true,
                v["storage"] == true,
            )
        })
        .collect()
}

fn table_entries(versions: &[VersionEntry]) -> Vec<(String, bool, bool)> {
    versions
        .iter()
        .map(|v| (v.name.to_owned(), v.served, v.storage))
        .collect()
}

/// Every release folder: its version and name.
fn releases(upstream: &upstream::Upstream) -> Vec<(BundleVersion, String)> {
    let dir = upstream.root().join("gateway-api-crds");
    let mut releases: Vec<(BundleVersion, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((BundleVersion::parse(&name)?, name)))
        .collect();
    releases.sort_by_key(|(v, _)| (v.minor, v.patch));
    releases
}

#[test]
fn the_served_versions_table_matches_every_released_bundle() {
    let Some(upstream) = upstream::Upstream::for_test(
        "cilium-gateway::released_bundles::the_served_versions_table_matches_every_released_bundle",
    ) else {
        return;
    };
    let releases = releases(&upstream);
    let names: Vec<&str> = releases.iter().map(|(_, n)| n.as_str()).collect();
    assert!(names.contains(&"v1.6.1"), "releases: {names:?}");
    let mut problems = Vec::new();
    for (version, name) in &releases {
        for (file_name, channel) in [
            (STANDARD, Channel::Standard),
            (EXPERIMENTAL_TLS, Channel::Experimental),
        ] {
            let released = crds_of(file(&upstream, name, file_name));
            for (plural, crd) in &released {
                assert_eq!(
                    crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
                    channel.as_str(),
                    "{name} {file_name} {plural}"
                );
                let table = versions_in_bundle(plural, version.minor, channel);
                if table.as_deref().map(table_entries) != Some(entries(crd)) {
                    problems.push(format!(
                        "{name} {channel} {plural}: released {:?}, table {table:?}",
                        entries(crd)
                    ));
                }
            }
            // The standard install is the whole channel: the table ships nothing more.
            if channel == Channel::Standard {
                for (plural, _, _) in KINDS {
                    if versions_in_bundle(plural, version.minor, channel).is_some()
                        && !released.contains_key(*plural)
                    {
                        problems.push(format!("{name} standard does not ship {plural}"));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Cilium 1.20's requirement is met by the released v1.6.1 standard install, and the TLSRoute
/// rule is grounded in the files: the standard TLSRoute lists `v1alpha2` unserved, the
/// experimental one serves it beside `v1`. 1.19's row is met by v1.4.1 with the experimental
/// TLSRoute.
#[test]
fn each_requirement_is_met_by_its_released_bundle() {
    let Some(upstream) = upstream::Upstream::for_test(
        "cilium-gateway::released_bundles::each_requirement_is_met_by_its_released_bundle",
    ) else {
        return;
    };
    for minor in 15..=20 {
        let Some(requirement) = Requirement::for_cilium_minor(minor) else {
            panic!("1.{minor} has a requirement");
        };
        let release = match minor {
            // The folder holds the v1.2.1 patch; 1.17's row names v1.2.0 of the same line.
            17 => "v1.2.1".to_owned(),
            _ => requirement.bundle.to_string(),
        };
        let standard = crds_of(file(&upstream, &release, STANDARD));
        let experimental = crds_of(file(&upstream, &release, EXPERIMENTAL_TLS));
        for needed in &requirement.crds {
            let shipped = match needed.channel {
                Channel::Standard => standard.get(needed.plural),
                Channel::Experimental => experimental.get(needed.plural),
            };
            // 1.15's experimental GRPCRoute comes with v1.0's experimental install, which the
            // folder does not hold; the table test covers it.
            if minor == 15 && needed.plural == "grpcroutes" {
                continue;
            }
            let Some(crd) = shipped else {
                panic!(
                    "1.{minor}: {release} {} does not ship {}",
                    needed.channel, needed.plural
                );
            };
            assert!(
                facts(crd).served.iter().any(|v| v == needed.version),
                "1.{minor}: {release} {} {} does not serve {}",
                needed.channel,
                needed.plural,
                needed.version
            );
        }
    }

    let standard = facts(&crds_of(file(&upstream, "v1.6.1", STANDARD))["tlsroutes"]);
    assert_eq!(standard.served, ["v1"]);
    assert_eq!(standard.unserved, ["v1alpha2", "v1alpha3"]);
    assert_eq!(standard.bundle_version.as_deref(), Some("v1.6.1"));
    let experimental = facts(&crds_of(file(&upstream, "v1.6.1", EXPERIMENTAL_TLS))["tlsroutes"]);
    assert_eq!(experimental.served, ["v1", "v1alpha2", "v1alpha3"]);
    assert_eq!(experimental.channel.as_deref(), Some("experimental"));
}

/// A Cilium 1.20.0 release with kube-proxy replacement and these Gateway API CRDs.
fn state_1_20(crds: Vec<CrdFacts>) -> ClusterState {
    ClusterState {
        cilium_version: Some("1.20.0".to_owned()),
        release: Some(ReleaseFacts {
            name: "cilium".to_owned(),
            namespace: "kube-system".to_owned(),
            revision: 3,
            status: "deployed".to_owned(),
            chart_version: Some("1.20.0".to_owned()),
            values: json!({ "kubeProxyReplacement": true }),
        }),
        config: Some(BTreeMap::from([(
            "kube-proxy-replacement".to_owned(),
            "true".to_owned(),
        )])),
        crds,
        operator_started_unix: Some(1_790_000_000),
        ..ClusterState::default()
    }
}

/// What 1.19 left: the v1.4.1 standard CRDs and its experimental TLSRoute, whose objects were
/// stored at `stored` (v1alpha2 when created under v1.0 … v1.3; v1alpha3 only when the CRD came
/// with v1.4, though it serves v1alpha2 to clients today).
fn left_by_1_19(upstream: &upstream::Upstream, stored: &[&str]) -> ClusterState {
    let mut crds: Vec<CrdFacts> = crds_of(file(upstream, "v1.4.1", STANDARD))
        .values()
        .map(facts)
        .collect();
    let mut tls = facts(&crds_of(file(upstream, "v1.4.1", EXPERIMENTAL_TLS))["tlsroutes"]);
    tls.stored_versions = stored.iter().map(|v| (*v).to_owned()).collect();
    crds.push(tls);
    state_1_20(crds)
}

fn tlsroutes_item(report: &cilium_gateway::Report) -> (Status, String, String) {
    let item = report
        .item("CRD tlsroutes.gateway.networking.k8s.io")
        .unwrap_or_else(|| panic!("no TLSRoute item:\n{}", report.table()));
    (
        item.status,
        item.detail.clone(),
        item.fix.clone().unwrap_or_default(),
    )
}

#[test]
fn enable_keeps_tlsroutes_from_before_1_20_on_the_experimental_crd() {
    let Some(upstream) = upstream::Upstream::for_test(
        "cilium-gateway::released_bundles::enable_keeps_tlsroutes_from_before_1_20_on_the_experimental_crd",
    ) else {
        return;
    };
    for stored in [&["v1alpha2", "v1alpha3"][..], &["v1alpha3"]] {
        tlsroutes_stay_on_the_experimental_crd(&upstream, &left_by_1_19(&upstream, stored));
    }
}

fn tlsroutes_stay_on_the_experimental_crd(upstream: &upstream::Upstream, live: &ClusterState) {
    let standard = file(upstream, "v1.6.1", STANDARD);
    let experimental = file(upstream, "v1.6.1", EXPERIMENTAL_TLS);

    // check names the experimental TLSRoute, applied first, and never the whole standard
    // install (it would put the standard TLSRoute back).
    let (status, detail, fix) = tlsroutes_item(&check(live, None));
    assert_eq!(status, Status::Fail, "{detail}");
    assert!(detail.contains("v1alpha2"), "{detail}");
    let first_command = fix
        .split("kubectl apply")
        .nth(1)
        .and_then(|c| c.split(" && ").next())
        .unwrap_or_default();
    assert!(
        first_command
            .contains("v1.6.1/config/crd/experimental/gateway.networking.k8s.io_tlsroutes.yaml"),
        "{fix}"
    );
    assert!(!fix.contains("standard-install.yaml"), "{fix}");

    // The standard install alone would leave those TLSRoutes unreadable: refused.
    let crds = read_crd_files(std::slice::from_ref(&standard)).unwrap_or_else(|e| panic!("{e}"));
    let Err(Error::Refused { items }) = plan(live, None, crds) else {
        panic!("the v1.6.1 standard TLSRoute over v1alpha2 TLSRoutes must be refused");
    };
    assert_eq!(items.len(), 1, "{items:#?}");
    assert!(
        items[0].starts_with("CRD tlsroutes.gateway.networking.k8s.io:")
            && items[0].contains("does not serve v1alpha2, v1alpha3")
            && items[0].contains("experimental"),
        "{}",
        items[0]
    );

    // Both files, in either order: the experimental TLSRoute is the one applied.
    for files in [
        [standard.clone(), experimental.clone()],
        [experimental.clone(), standard.clone()],
    ] {
        let crds = read_crd_files(&files).unwrap_or_else(|e| panic!("{e}"));
        let planned = plan(live, None, crds).unwrap_or_else(|e| panic!("{files:?}: {e}"));
        let tls: Vec<&Value> = planned
            .crds
            .iter()
            .filter(|c| c["spec"]["names"]["plural"] == "tlsroutes")
            .collect();
        assert_eq!(tls.len(), 1, "{:?}", planned.crd_names);
        assert_eq!(
            tls[0]["metadata"]["annotations"]["gateway.networking.k8s.io/channel"],
            "experimental"
        );
        assert_eq!(planned.crd_names.len(), 10, "{:?}", planned.crd_names);
        assert_eq!(
            planned.crds_left_out.len(),
            1,
            "{:?}",
            planned.crds_left_out
        );
        assert!(
            planned.crds_left_out[0].starts_with(
                "tlsroutes.gateway.networking.k8s.io (v1.6.1 standard): left out for the v1.6.1 experimental one"
            ),
            "{}",
            planned.crds_left_out[0]
        );
        let (status, detail, _) = tlsroutes_item(&planned.report);
        assert_eq!(status, Status::Pass, "{detail}");
        // The recommended layout (standard bundle, experimental TLSRoute) is no mix.
        let bundle = planned.report.item("CRD bundle").map(|i| i.status);
        assert_eq!(bundle, Some(Status::Pass), "{}", planned.report.table());
    }
}

/// A cluster without TLSRoutes before 1.20 takes the v1.6.1 standard install as it is.
#[test]
fn a_cluster_without_tlsroutes_takes_the_standard_install() {
    let Some(upstream) = upstream::Upstream::for_test(
        "cilium-gateway::released_bundles::a_cluster_without_tlsroutes_takes_the_standard_install",
    ) else {
        return;
    };
    let fresh = state_1_20(Vec::new());
    let (status, _, fix) = tlsroutes_item(&check(&fresh, None));
    assert_eq!(status, Status::Fail);
    assert!(
        fix.contains("releases/download/v1.6.1/standard-install.yaml"),
        "{fix}"
    );
    let crds =
        read_crd_files(&[file(&upstream, "v1.6.1", STANDARD)]).unwrap_or_else(|e| panic!("{e}"));
    let planned = plan(&fresh, None, crds).unwrap_or_else(|e| panic!("{e}"));
    assert!(planned.crds_left_out.is_empty());
    let crd_items: Vec<(&str, Status)> = planned
        .report
        .items
        .iter()
        .filter(|i| i.name.starts_with("CRD "))
        .map(|i| (i.name.as_str(), i.status))
        .collect();
    assert_eq!(crd_items.len(), 11, "{crd_items:?}");
    assert!(
        crd_items.iter().all(|(_, s)| *s == Status::Pass),
        "{}",
        planned.report.table()
    );
}
