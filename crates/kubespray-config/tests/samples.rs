//! Kubespray's own sample inventories: every one parses and resolves, and the hand-over edit on
//! the template-era samples (with `kube_network_plugin: cilium`) changes nothing but its keys.

mod common;

use std::path::Path;

use kubespray_config::{Era, HandoverOptions, Inventory, Origin};
use serde_json::json;

fn era_of(tag: &str) -> Era {
    Era::from_kubespray_version(tag).expect("tag is a version")
}

#[test]
fn every_sample_inventory_loads_and_resolves_for_its_era() {
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::samples::every_sample_inventory_loads_and_resolves_for_its_era",
    ) else {
        return;
    };
    let tags = common::sample_tags(&shared);
    assert!(
        tags.len() >= 8,
        "expected the samples v2.24..v2.31, found {tags:?}"
    );
    for tag in &tags {
        let dir = shared.join("samples").join(tag);
        let inventory = Inventory::load(&dir).unwrap_or_else(|e| panic!("{tag}: {e}"));
        // The samples only hold commented-out hosts.
        assert!(inventory.hosts.is_empty(), "{tag}: {:?}", inventory.hosts);
        assert!(inventory.groups.contains_key("kube_control_plane"), "{tag}");
        // v2.24..v2.26 declare k8s_cluster's children; from v2.27 the sample lets etcd follow the control plane.
        let (group, children) = if common::version_key(tag) < common::version_key("v2.27.0") {
            (
                "k8s_cluster",
                vec!["kube_control_plane", "kube_node", "calico_rr"],
            )
        } else {
            ("etcd", vec!["kube_control_plane"])
        };
        assert_eq!(inventory.groups[group].children, children, "{tag}");
        let detected = inventory.detect_era();
        if let Some(era) = detected.era {
            assert_eq!(era, era_of(tag), "{tag}: {:?}", detected.evidence);
        }
        let era = era_of(tag);
        let vars = inventory
            .variables(era)
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(
            vars.value("kube_network_plugin"),
            Some(&json!("calico")),
            "{tag}"
        );
        assert_eq!(vars.value("kube_owner"), Some(&json!("kube")), "{tag}");
        assert_eq!(
            vars.value("kube_pods_subnet"),
            Some(&json!("10.233.64.0/18")),
            "{tag}"
        );
        assert_eq!(
            vars.value("kube_network_node_prefix"),
            Some(&json!(24)),
            "{tag}"
        );
        let identity = vars
            .get("cilium_identity_allocation_mode")
            .expect("identity mode");
        let (want_identity, want_kpr) = match era {
            Era::Template => ("kvstore", json!("partial")),
            Era::CiliumCli => ("crd", json!(false)),
        };
        assert_eq!(identity.value, json!(want_identity), "{tag}");
        assert!(
            matches!(identity.origin, Origin::RoleDefault { .. }),
            "{tag}: {:?}",
            identity.origin
        );
        assert_eq!(
            vars.value("cilium_kube_proxy_replacement"),
            Some(&want_kpr),
            "{tag}"
        );
        // kube_cert_dir is "{{ kube_config_dir }}/ssl" in the sample: resolved, with the chain kept.
        let cert_dir = vars.get("kube_cert_dir").expect("kube_cert_dir");
        assert_eq!(cert_dir.value, json!("/etc/kubernetes/ssl"), "{tag}");
        match &cert_dir.origin {
            Origin::Template {
                template,
                uses,
                defined,
            } => {
                assert_eq!(template, "{{ kube_config_dir }}/ssl");
                assert!(defined.is_inventory(), "{tag}: {defined}");
                assert_eq!(uses[0].name, "kube_config_dir");
            }
            other => panic!("{tag}: {other:?}"),
        }
    }
}

#[test]
fn sample_values_carry_file_key_and_line() {
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::samples::sample_values_carry_file_key_and_line",
    ) else {
        return;
    };
    let dir = shared.join("samples/v2.27.1");
    let inventory = Inventory::load(&dir).expect("load");
    let vars = inventory.variables(Era::Template).expect("resolve");
    let l2 = vars.get("cilium_l2announcements").expect("l2");
    assert_eq!(l2.value, json!(false));
    let want = dir.join("group_vars/k8s_cluster/k8s-net-cilium.yml");
    let text = std::fs::read_to_string(&want).expect("read");
    let line = text
        .lines()
        .position(|l| l.starts_with("cilium_l2announcements:"))
        .map(|i| i + 1);
    assert_eq!(
        l2.origin,
        Origin::Inventory {
            file: want,
            key: "cilium_l2announcements".into(),
            line
        }
    );
    // Template-era ports depend on cilium_version (v1.15.9 by default).
    assert_eq!(vars.value("cilium_agent_health_port"), Some(&json!("9879")));
    assert_eq!(vars.value("cilium_agent_scrape_port"), Some(&json!("9962")));
    // Per-host names stay for the caller to fill in.
    let cert = vars.get("kube_etcd_cert_file").expect("cert");
    assert!(cert.is_per_host());
    assert_eq!(cert.for_host("node1"), json!("node-node1.pem"));
}

/// Line-by-line comparison, line endings included: every line is byte-identical except the lines
/// of the intended keys, and the only added lines are intended keys at the end.
fn assert_only_keys_changed(before: &str, after: &str, keys: &[&str]) {
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let key_of = |l: &str| {
        keys.iter()
            .copied()
            .find(|k| l.starts_with(&format!("{k}:")))
    };
    assert!(new.len() >= old.len(), "lines were removed");
    for (n, line) in old.iter().enumerate() {
        match key_of(line) {
            Some(k) => assert_eq!(
                key_of(new[n]),
                Some(k),
                "line {} changed key: {line:?} -> {:?}",
                n + 1,
                new[n]
            ),
            None => assert_eq!(new[n], *line, "line {} changed", n + 1),
        }
    }
    for extra in &new[old.len()..] {
        assert!(key_of(extra).is_some(), "unexpected added line {extra:?}");
    }
}

fn set_cilium(dir: &Path) {
    let path = dir.join("group_vars/k8s_cluster/k8s-cluster.yml");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("\nkube_network_plugin: calico\n"));
    std::fs::write(
        &path,
        text.replace(
            "\nkube_network_plugin: calico\n",
            "\nkube_network_plugin: cilium\n",
        ),
    )
    .expect("write");
}

#[test]
fn handover_edit_on_template_era_samples_changes_only_its_keys() {
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::samples::handover_edit_on_template_era_samples_changes_only_its_keys",
    ) else {
        return;
    };
    let tags: Vec<String> = common::sample_tags(&shared)
        .into_iter()
        .filter(|t| era_of(t) == Era::Template)
        .collect();
    assert!(tags.len() >= 4, "{tags:?}");
    for tag in &tags {
        for kube_proxy_remove in [false, true] {
            let tmp = tempfile::tempdir().expect("tempdir");
            common::copy_dir(&shared.join("samples").join(tag), tmp.path());
            set_cilium(tmp.path());
            let untouched = common::snapshot(tmp.path());
            let inventory = Inventory::load(tmp.path()).expect("load");
            let options = HandoverOptions { kube_proxy_remove };
            let edits = inventory
                .handover_edits(&options)
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert_eq!(
                common::snapshot(tmp.path()),
                untouched,
                "{tag}: computing edits wrote files"
            );
            assert_eq!(edits.len(), 1, "{tag}: {edits:?}");
            let edit = &edits[0];
            assert_eq!(
                edit.path,
                tmp.path().join("group_vars/k8s_cluster/k8s-cluster.yml")
            );
            let mut keys = vec!["kube_network_plugin", "kube_owner"];
            if kube_proxy_remove {
                keys.push("kube_proxy_remove");
            }
            assert_eq!(edit.changed_keys, keys, "{tag}");
            assert_only_keys_changed(&edit.before, &edit.after, &keys);
            assert!(edit.after.contains("\nkube_network_plugin: cni\n"), "{tag}");
            assert!(edit.after.contains("\nkube_owner: root\n"), "{tag}");
            assert_eq!(
                edit.after.contains("\nkube_proxy_remove: true\n"),
                kube_proxy_remove,
                "{tag}"
            );
            let diff = edit.unified_diff();
            assert!(
                diff.contains("-kube_network_plugin: cilium\n+kube_network_plugin: cni\n"),
                "{diff}"
            );
            assert_eq!(
                diff.lines()
                    .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                    .count(),
                keys.len()
            );

            // Write, reload: the cluster now reads the hand-over values, and a second run has nothing to do.
            let mode_before = std::fs::metadata(&edit.path).expect("meta").permissions();
            edit.write().expect("write");
            assert_eq!(
                std::fs::read_to_string(&edit.path).expect("read"),
                edit.after
            );
            assert_eq!(
                std::fs::metadata(&edit.path).expect("meta").permissions(),
                mode_before
            );
            let reloaded = Inventory::load(tmp.path()).expect("reload");
            let vars = reloaded.variables(Era::Template).expect("resolve");
            assert_eq!(vars.value("kube_network_plugin"), Some(&json!("cni")));
            assert_eq!(vars.value("kube_owner"), Some(&json!("root")));
            assert_eq!(
                vars.value("kube_proxy_remove"),
                kube_proxy_remove.then_some(&json!(true))
            );
            assert!(
                reloaded.handover_edits(&options).expect("again").is_empty(),
                "{tag}: not idempotent"
            );
        }
    }
}
