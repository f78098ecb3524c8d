//! The plan on the released charts (no cluster): the path, the values carried per hop and every
//! behaviour change each hop brings, for the two starts of the acceptance: Kubespray v2.27.1's
//! hand-over (chart 1.15.9) and Kubespray v2.28.1's cilium-cli release (chart 1.17.3).
//!
//! "What runs" before the first hop is the start chart rendered with the release's values:
//! after a hand-over (or a cilium-cli install) the live objects are that render.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use cilium_upgrade::plan::{Start, config_and_workloads, render};
use cilium_upgrade::{ChartArchive, ChartStore, Target, UpgradePlan, plan, upgrade_path};
use migration::flow::{OfflineOptions, offline_values};
use serde_json::{Value as Json, json};
use support::{helm, kubespray_2_28_values, start};

fn plan_to(upstream: &upstream::Upstream, start: &Start, to: &str, scratch: &Path) -> UpgradePlan {
    let store = ChartStore::Directory(upstream.charts_dir());
    let helm = helm();
    let path = upgrade_path(
        &start.version,
        Some(to.parse::<Target>().unwrap()),
        &store.versions(&helm).unwrap(),
        &store.describe(),
    )
    .unwrap();
    let charts: Vec<ChartArchive> = path
        .iter()
        .map(|v| store.archive(&helm, v).unwrap())
        .collect();
    plan(start, &charts, &helm, None, scratch).unwrap()
}

/// One stable text per plan: per hop the values translated and dropped, and every change key.
fn summary(plan: &UpgradePlan) -> String {
    let mut out = format!(
        "{} -> {} (upgradeCompatibility {}: {})\n",
        plan.release.version,
        plan.target,
        plan.upgrade_compatibility,
        plan.upgrade_compatibility_origin
    );
    for hop in &plan.hops {
        out.push_str(&format!(
            "\n== {} -> {} (preflight: {})\n",
            hop.from, hop.version, hop.preflight
        ));
        for t in &hop.translated {
            out.push_str(&format!(
                "translated {} = {} -> {} = {}\n",
                t.path, t.before, t.to_path, t.after
            ));
        }
        for d in &hop.dropped {
            out.push_str(&format!("dropped {} = {}\n", d.path, d.value));
        }
        if let Some(gateway) = &hop.gateway_api {
            out.push_str(&format!("gateway API CRDs {}\n", gateway.bundle));
        }
        for change in &hop.changes {
            out.push_str(&format!("accept {}\n", change.key));
        }
    }
    out
}

#[test]
fn kubespray_2_27_hand_over_to_1_17_goes_through_every_minor_and_keeps_envoy_in_the_agent() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::kubespray_2_27_hand_over_to_1_17_goes_through_every_minor_and_keeps_envoy_in_the_agent",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let case = upstream.rendered_case("sample", "v2.27.1").unwrap();
    let inventory = case
        .inventory_copy(&scratch.path().join("inventory"))
        .unwrap();
    let options = OfflineOptions {
        inventory: inventory.clone(),
        live_config: Some(case.file("cilium-config.yaml")),
        cilium_version: Some("1.15.9".into()),
        era: Some(kubespray_config::Era::Template),
        chart: None,
        helm: None,
        accept_config_changes: Vec::new(),
    };
    let loaded = kubespray_config::Inventory::load(&inventory).unwrap();
    let (translation, _) = offline_values(&options, &loaded).unwrap();
    let values = translation.values.to_json().unwrap();
    let helm = helm();
    let chart = ChartArchive::read(&upstream.chart("1.15.9").unwrap()).unwrap();
    let start = start(&helm, &chart, values, 1, scratch.path());
    let plan = plan_to(&upstream, &start, "1.17", scratch.path());

    let hops: Vec<&str> = plan.hops.iter().map(|h| h.version.as_str()).collect();
    assert_eq!(hops, ["1.15.19", "1.16.19", "1.17.18"]);
    assert_eq!(plan.upgrade_compatibility, "1.15");
    for hop in &plan.hops {
        assert_eq!(
            hop.values["upgradeCompatibility"],
            json!("1.15"),
            "{}",
            hop.version
        );
        assert!(
            !hop.changes
                .iter()
                .any(|c| c.key == "object:DaemonSet/cilium-envoy")
        );
    }
    // Envoy stays inside the agent, explicitly, from the first 1.16 hop on.
    assert_eq!(plan.hops[1].values["envoy"]["enabled"], json!(false));
    // Every hop renders the agent DaemonSet: it is upgraded in place, never removed.
    for hop in &plan.hops {
        assert!(!hop.objects.iter().any(|o| o.object == "DaemonSet/cilium"));
    }
    insta::assert_snapshot!("kubespray_2_27_to_1_17", summary(&plan));
}

#[test]
fn kubespray_2_28_release_to_1_19_6() {
    let Some(upstream) = upstream::Upstream::for_test("plan::kubespray_2_28_release_to_1_19_6")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let values = kubespray_2_28_values(&upstream);
    let helm = helm();
    let chart = ChartArchive::read(&upstream.chart("1.17.3").unwrap()).unwrap();
    let start = start(&helm, &chart, values, 1, scratch.path());
    let plan = plan_to(&upstream, &start, "1.19.6", scratch.path());

    let hops: Vec<&str> = plan.hops.iter().map(|h| h.version.as_str()).collect();
    assert_eq!(hops, ["1.17.18", "1.18.12", "1.19.6"]);
    assert_eq!(plan.upgrade_compatibility, "1.17");
    insta::assert_snapshot!("kubespray_2_28_to_1_19_6", summary(&plan));
}

#[test]
fn a_strict_kube_proxy_replacement_becomes_true_and_removed_values_are_reported() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::a_strict_kube_proxy_replacement_becomes_true_and_removed_values_are_reported",
    ) else {
        return;
    };
    let chart = ChartArchive::read(&upstream.chart("1.16.19").unwrap()).unwrap();
    let user = json!({
        "kubeProxyReplacement": "strict",
        "k8sServiceHost": "10.0.0.10",
        "remoteNodeIdentity": true,
        "encryption": {"keyFile": "keys"},
        "notACiliumValue": {"x": 1},
        "extraConfig": {"anything-goes": "1"},
        "hubble": {"relay": {"enabled": true, "madeUp": 2}},
    });
    let hop = cilium_upgrade::values::hop_values(&user, &chart, "1.15", false).unwrap();
    assert_eq!(hop.values["kubeProxyReplacement"], json!(true));
    assert_eq!(
        hop.values["encryption"],
        json!({"ipsec": {"keyFile": "keys"}})
    );
    assert_eq!(hop.values["extraConfig"], json!({"anything-goes": "1"}));
    assert_eq!(hop.values["envoy"]["enabled"], json!(false));
    let dropped: BTreeMap<&str, &Json> = hop
        .dropped
        .iter()
        .map(|d| (d.path.as_str(), &d.value))
        .collect();
    assert_eq!(
        dropped.keys().copied().collect::<Vec<_>>(),
        [
            "hubble.relay.madeUp",
            "notACiliumValue",
            "remoteNodeIdentity"
        ]
    );
    // 1.15.19 still has them all.
    let chart = ChartArchive::read(&upstream.chart("1.15.19").unwrap()).unwrap();
    let hop = cilium_upgrade::values::hop_values(&user, &chart, "1.15", false).unwrap();
    assert_eq!(hop.values["kubeProxyReplacement"], json!("strict"));
    assert_eq!(
        hop.dropped
            .iter()
            .map(|d| d.path.as_str())
            .collect::<Vec<_>>(),
        ["notACiliumValue", "hubble.relay.madeUp"]
    );
}

#[test]
fn the_preflight_release_renders_only_its_own_objects_whatever_the_release_enables() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::the_preflight_release_renders_only_its_own_objects_whatever_the_release_enables",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let helm = helm();
    // What the release enables must not leak into the preflight release: 1.17's cilium-secrets
    // Namespace (tls.secretsNamespace, gatewayAPI) belongs to the main release.
    let release = json!({
        "k8sServiceHost": "10.0.0.10",
        "k8sServicePort": 6443,
        "gatewayAPI": {"enabled": true},
        "hubble": {"relay": {"enabled": true}, "ui": {"enabled": true}},
        "envoy": {"enabled": true},
        "kubeProxyReplacement": true,
        "preflight": {"tolerations": [{"operator": "Exists"}]},
        "upgradeCompatibility": "1.15",
    });
    let values = cilium_upgrade::live::preflight_values(&release);
    assert_eq!(values["k8sServiceHost"], json!("10.0.0.10"));
    assert_eq!(values["preflight"]["enabled"], json!(true));
    assert_eq!(
        values["preflight"]["tolerations"],
        json!([{"operator": "Exists"}])
    );
    for version in ["1.15.19", "1.16.19", "1.17.18", "1.18.12", "1.19.6"] {
        let chart = ChartArchive::read(&upstream.chart(version).unwrap()).unwrap();
        let manifest = render(&helm, &chart, &values, None, scratch.path()).unwrap();
        cilium_upgrade::live::preflight_objects_are_its_own(&manifest)
            .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert!(
            manifest
                .find("DaemonSet", cilium_upgrade::live::PREFLIGHT_WORKLOAD)
                .is_some(),
            "{version}"
        );
        // The release's own values would not do: they render the main release's objects.
        let mut whole = release.clone();
        whole["preflight"]["enabled"] = json!(true);
        whole["agent"] = json!(false);
        whole["operator"] = json!({"enabled": false});
        let manifest = render(&helm, &chart, &whole, None, scratch.path()).unwrap();
        assert!(
            cilium_upgrade::live::preflight_objects_are_its_own(&manifest).is_err(),
            "{version}"
        );
    }
}

#[test]
fn a_change_is_accepted_by_its_key_or_for_one_hop_by_version_and_key() {
    let change = |key: &str| cilium_upgrade::BehaviourChange {
        key: key.into(),
        what: "x".into(),
    };
    let hop = |version: &str, keys: &[&str]| {
        let mut hop: cilium_upgrade::Hop = serde_json::from_value(json!({
            "from": "1.15.9", "version": version,
            "chart": {"file": "f", "sha256": "s"}, "values": {},
            "translated": [], "dropped": [], "config": [], "workloads": [], "objects": [],
            "gateway_api": null, "preflight": true, "changes": [],
        }))
        .unwrap();
        hop.changes = keys.iter().map(|k| change(k)).collect();
        hop
    };
    let plan: UpgradePlan = serde_json::from_value(json!({
        "format": 1, "cluster": null,
        "release": {"name": "cilium", "namespace": "kube-system", "revision": 1, "version": "1.15.9"},
        "target": "1.17.18", "upgrade_compatibility": "1.15", "upgrade_compatibility_origin": "x",
        "hops": [],
    }))
    .unwrap();
    let plan = UpgradePlan {
        hops: vec![
            hop("1.16.19", &["config:a", "object:B"]),
            hop("1.17.18", &["config:a"]),
        ],
        ..plan
    };
    let keys = |accepted: &[&str]| -> Vec<String> {
        let accepted: Vec<String> = accepted.iter().map(|s| (*s).to_owned()).collect();
        plan.unaccepted(&accepted)
            .iter()
            .map(|(v, c)| format!("{v} {}", c.key))
            .collect()
    };
    assert_eq!(
        keys(&[]),
        ["1.16.19 config:a", "1.16.19 object:B", "1.17.18 config:a"]
    );
    assert_eq!(keys(&["config:a"]), ["1.16.19 object:B"]);
    assert_eq!(
        keys(&["1.16.19=config:a", "object:B"]),
        ["1.17.18 config:a"]
    );
}

#[test]
fn with_gateway_api_on_each_hop_names_the_crd_bundle_its_minor_needs() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::with_gateway_api_on_each_hop_names_the_crd_bundle_its_minor_needs",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let helm = helm();
    let chart = ChartArchive::read(&upstream.chart("1.15.9").unwrap()).unwrap();
    let values = json!({
        "kubeProxyReplacement": "strict",
        "k8sServiceHost": "10.0.0.10",
        "k8sServicePort": 6443,
        "gatewayAPI": {"enabled": true},
    });
    let start = start(&helm, &chart, values, 1, scratch.path());
    let plan = plan_to(&upstream, &start, "1.17", scratch.path());
    let bundles: Vec<(&str, Option<&str>)> = plan
        .hops
        .iter()
        .map(|h| {
            (
                h.version.as_str(),
                h.gateway_api.as_ref().map(|g| g.bundle.as_str()),
            )
        })
        .collect();
    assert_eq!(
        bundles,
        [
            ("1.15.19", Some("v1.0.0")),
            ("1.16.19", Some("v1.1.0")),
            ("1.17.18", Some("v1.2.0"))
        ]
    );
    // `strict` reaches 1.16 as `true`, and the gate sees the same kube-proxy replacement.
    assert_eq!(plan.hops[1].values["kubeProxyReplacement"], json!(true));
    assert!(
        !plan.hops[1]
            .changes
            .iter()
            .any(|c| c.key == "config:kube-proxy-replacement"),
        "{:#?}",
        plan.hops[1].changes
    );
}

#[test]
fn kubespray_2_28_release_on_1_19_6_to_1_20_0() {
    let Some(upstream) =
        upstream::Upstream::for_test("plan::kubespray_2_28_release_on_1_19_6_to_1_20_0")
    else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let mut values = kubespray_2_28_values(&upstream);
    // As the 1.17.3 -> 1.19.6 path leaves it: the 1.17 hop drops `loadbalancer` and pins Envoy.
    values.as_object_mut().unwrap().remove("loadbalancer");
    values["envoy"] = json!({"enabled": true});
    values["upgradeCompatibility"] = json!("1.17");
    let helm = helm();
    let chart = ChartArchive::read(&upstream.chart("1.19.6").unwrap()).unwrap();
    let start = start(&helm, &chart, values, 1, scratch.path());
    let plan = plan_to(&upstream, &start, "1.20", scratch.path());

    let hops: Vec<&str> = plan.hops.iter().map(|h| h.version.as_str()).collect();
    assert_eq!(hops, ["1.20.0"]);
    assert_eq!(plan.upgrade_compatibility, "1.17");
    // upgradeCompatibility 1.17 keeps the split xDS server the agent runs today.
    assert!(
        !plan.hops[0]
            .changes
            .iter()
            .any(|c| c.key == "config:envoy-xds-mode"),
        "{:?}",
        plan.hops[0].changes
    );
    insta::assert_snapshot!("kubespray_2_28_on_1_19_6_to_1_20_0", summary(&plan));
}

#[test]
fn the_1_20_hop_renames_strict_mode_and_refuses_cluster_mesh_certificates_as_values() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::the_1_20_hop_renames_strict_mode_and_refuses_cluster_mesh_certificates_as_values",
    ) else {
        return;
    };
    let chart = ChartArchive::read(&upstream.chart("1.20.0").unwrap()).unwrap();
    let user = json!({
        "encryption": {
            "enabled": true,
            "type": "wireguard",
            "strictMode": {"enabled": true, "cidr": "10.0.0.0/8", "allowRemoteNodeIdentities": true},
            "ipsec": {"interface": "eth0"},
        },
        "clustermesh": {
            "enableMCSAPISupport": true,
            "apiserver": {"tls": {"server": {"cert": "", "extraDnsNames": ["mesh.example"]}}},
        },
    });
    let hop = cilium_upgrade::values::hop_values(&user, &chart, "1.17", true).unwrap();
    assert_eq!(
        hop.values["encryption"]["strictMode"],
        json!({"egress": {"enabled": true, "cidr": "10.0.0.0/8", "allowRemoteNodeIdentities": true}})
    );
    assert_eq!(
        hop.values["clustermesh"]["mcsapi"],
        json!({"enabled": true})
    );
    assert_eq!(
        hop.values["clustermesh"]["apiserver"]["tls"],
        json!({"auto": {"server": {"extraDnsNames": ["mesh.example"]}}})
    );
    let dropped: Vec<&str> = hop.dropped.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(dropped, ["encryption.ipsec.interface"]);
    // The renamed values render what the 1.19 ones did.
    let manifest = render(
        &helm(),
        &chart,
        &hop.values,
        None,
        tempfile::tempdir().unwrap().path(),
    )
    .unwrap();
    let (config, _) = config_and_workloads(&manifest, &chart.path).unwrap();
    assert_eq!(
        config
            .get("enable-encryption-strict-mode-egress")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        config
            .get("encryption-strict-egress-cidr")
            .map(String::as_str),
        Some("10.0.0.0/8")
    );
    // Certificates given as values: refused with the way out, the key never printed.
    let mut with_certs = user.clone();
    with_certs["clustermesh"]["apiserver"]["tls"]["server"]["key"] = json!("PRIVATE KEY TEXT");
    let err = cilium_upgrade::values::hop_values(&with_certs, &chart, "1.17", true)
        .expect_err("certificates as values have no 1.20 form")
        .to_string();
    assert!(
        err.contains("clustermesh.apiserver.tls.server.key")
            && err.contains("clustermesh-apiserver-server-cert")
            && !err.contains("PRIVATE KEY TEXT"),
        "{err}"
    );
    // 1.19.6 keeps them all as they are.
    let chart = ChartArchive::read(&upstream.chart("1.19.6").unwrap()).unwrap();
    let hop = cilium_upgrade::values::hop_values(&user, &chart, "1.17", true).unwrap();
    assert_eq!(
        hop.values["encryption"]["strictMode"]["enabled"],
        json!(true)
    );
}

#[test]
fn the_1_20_hop_keeps_tlsroutes_stored_at_v1alpha2_readable_with_the_experimental_crd() {
    let Some(upstream) = upstream::Upstream::for_test(
        "plan::the_1_20_hop_keeps_tlsroutes_stored_at_v1alpha2_readable_with_the_experimental_crd",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let helm = helm();
    let chart = ChartArchive::read(&upstream.chart("1.19.6").unwrap()).unwrap();
    let values = json!({
        "kubeProxyReplacement": true,
        "k8sServiceHost": "10.0.0.10",
        "k8sServicePort": 6443,
        "gatewayAPI": {"enabled": true},
    });
    let tlsroutes_need = |start: &Start| {
        let plan = plan_to(&upstream, start, "1.20", scratch.path());
        let gateway = plan.hops[0].gateway_api.clone().expect("gatewayAPI is on");
        assert_eq!(gateway.bundle, "v1.6.1");
        gateway
            .crds
            .into_iter()
            .find(|c| c.starts_with("TLSRoute "))
            .expect("1.20 needs TLSRoute")
    };
    // A cluster whose TLSRoutes were stored at v1alpha2 (the 1.19 operator's version).
    let mut start = start(&helm, &chart, values, 1, scratch.path());
    start.gateway_api_crds = vec![cilium_gateway::state::CrdFacts {
        plural: "tlsroutes".into(),
        served: vec!["v1alpha2".into(), "v1alpha3".into()],
        stored_versions: vec!["v1alpha2".into()],
        ..Default::default()
    }];
    let need = tlsroutes_need(&start);
    assert!(
        need.contains("Experimental") && need.contains("keeps serving v1alpha2"),
        "{need}"
    );
    // Offline, or with no TLSRoutes before: the standard channel.
    start.gateway_api_crds.clear();
    let need = tlsroutes_need(&start);
    assert!(
        need.contains("Standard") && !need.contains("keeps"),
        "{need}"
    );
}
