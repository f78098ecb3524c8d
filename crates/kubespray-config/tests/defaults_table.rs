//! The crate's own table of role defaults, checked entry by entry against Kubespray's real
//! defaults files in `../shared/kubespray/defaults/<tag>/`.

mod common;

use kubespray_config::{
    DefaultsFile, Era, Eval, checked_against, expected_kind, role_defaults, yaml_options,
};
use serde_json::Value;

fn shared_name(file: DefaultsFile) -> &'static str {
    match file {
        DefaultsFile::CiliumRole => "network_plugin-cilium.yml",
        DefaultsFile::KubesprayMain => "kubespray-defaults-main.yml",
        DefaultsFile::KubesprayDownload => "kubespray-defaults-download.yml",
    }
}

fn read_defaults(dir: &std::path::Path, file: DefaultsFile) -> serde_json::Map<String, Value> {
    let path = dir.join(shared_name(file));
    let text = std::fs::read_to_string(&path).expect("defaults file");
    match serde_saphyr::from_str_with_options::<Value>(&text, yaml_options())
        .expect("parse defaults")
    {
        Value::Object(map) => map,
        other => panic!("{}: not a mapping: {other}", path.display()),
    }
}

#[test]
fn every_table_entry_matches_kubesprays_defaults_files() {
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::defaults_table::every_table_entry_matches_kubesprays_defaults_files",
    ) else {
        return;
    };
    let mut checked = 0;
    for era in [Era::Template, Era::CiliumCli] {
        let dir = shared.join("defaults").join(checked_against(era));
        let mut problems = Vec::new();
        let files = [
            DefaultsFile::CiliumRole,
            DefaultsFile::KubesprayMain,
            DefaultsFile::KubesprayDownload,
        ]
        .map(|f| (f, read_defaults(&dir, f)));
        for entry in role_defaults(era) {
            let upstream = &files
                .iter()
                .find(|(f, _)| *f == entry.file)
                .expect("file")
                .1;
            let Some(actual) = upstream.get(entry.name) else {
                problems.push(format!(
                    "{}: not in {}",
                    entry.name,
                    shared_name(entry.file)
                ));
                continue;
            };
            let ours = match entry.eval {
                Eval::AsWritten => {
                    serde_saphyr::from_str_with_options::<Value>(entry.yaml, yaml_options())
                        .unwrap_or_else(|e| panic!("{}: our YAML does not parse: {e}", entry.name))
                }
                // Computed defaults record the upstream expression verbatim.
                _ => Value::String(entry.yaml.to_owned()),
            };
            if &ours != actual {
                problems.push(format!("{}: ours {ours} != upstream {actual}", entry.name));
            }
            checked += 1;
        }
        assert!(problems.is_empty(), "{era}: {}", problems.join("\n"));
    }
    assert!(checked > 150, "only {checked} entries checked");
}

#[test]
fn every_cilium_variable_of_the_role_defaults_is_in_the_table_with_a_type() {
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::defaults_table::every_cilium_variable_of_the_role_defaults_is_in_the_table_with_a_type",
    ) else {
        return;
    };
    for era in [Era::Template, Era::CiliumCli] {
        let dir = shared.join("defaults").join(checked_against(era));
        let upstream = read_defaults(&dir, DefaultsFile::CiliumRole);
        let ours: Vec<&str> = role_defaults(era).iter().map(|d| d.name).collect();
        for name in upstream.keys() {
            assert!(
                ours.contains(&name.as_str()),
                "{era}: {name} is missing from the table"
            );
            assert!(expected_kind(name).is_some(), "{name} has no expected type");
        }
    }
}

#[test]
fn the_eras_differ_where_the_research_says_they_do() {
    let value = |era: Era, name: &str| {
        role_defaults(era)
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| d.yaml)
            .unwrap_or("<absent>")
    };
    assert_eq!(
        value(Era::Template, "cilium_identity_allocation_mode"),
        "kvstore"
    );
    assert_eq!(
        value(Era::CiliumCli, "cilium_identity_allocation_mode"),
        "crd"
    );
    assert_eq!(
        value(Era::Template, "cilium_kube_proxy_replacement"),
        "partial"
    );
    assert_eq!(
        value(Era::CiliumCli, "cilium_kube_proxy_replacement"),
        "false"
    );
    assert_eq!(
        value(Era::Template, "cilium_enable_host_legacy_routing"),
        "true"
    );
    assert_eq!(
        value(Era::CiliumCli, "cilium_enable_host_legacy_routing"),
        "false"
    );
}

#[test]
fn the_cilium_cli_table_also_holds_for_v2_28_where_both_have_the_key() {
    // The cilium-cli era spans v2.28..v2.31; report (not fail on) values that moved since v2.28.0.
    let Some(shared) = common::shared_kubespray(
        "kubespray-config::defaults_table::the_cilium_cli_table_also_holds_for_v2_28_where_both_have_the_key",
    ) else {
        return;
    };
    let dir = shared.join("defaults/v2.28.0");
    let upstream = read_defaults(&dir, DefaultsFile::CiliumRole);
    let main = read_defaults(&dir, DefaultsFile::KubesprayMain);
    let mut same = 0;
    for entry in role_defaults(Era::CiliumCli) {
        let Some(actual) = upstream.get(entry.name).or_else(|| main.get(entry.name)) else {
            continue;
        };
        let ours = serde_saphyr::from_str_with_options::<Value>(entry.yaml, yaml_options()).ok();
        if ours.as_ref() == Some(actual) || actual.as_str() == Some(entry.yaml) {
            same += 1;
        } else {
            eprintln!("note: {} differs in v2.28.0: {actual}", entry.name);
        }
    }
    assert!(same > 100, "only {same} entries agree with v2.28.0");
}
