//! The glue between the Kubespray inventory and `cilium-values`: the resolved variables with
//! their origins, whether the inventory still installs Cilium, and the version it names.
//! Separate because `cargo xtask values` uses the same glue through [`inventory_vars`].

use cilium_values::{ChartVersion, InventoryVar, InventoryVars};
use kubespray_config::{Inventory, Origin, Variables};
use serde_json::Value;

use super::FlowError;
use crate::era::InventoryClaim;

/// The default chart version when none is given and no running agent says it: the inventory's
/// `cilium_version`, the Cilium version that runs (the hand-over changes who manages Cilium, not
/// its version). The one rule behind `values`, `plan` and `migrate`.
pub fn default_version(vars: &InventoryVars) -> Result<ChartVersion, FlowError> {
    let Some(var) = vars.get("cilium_version") else {
        return Err(FlowError::Refused(
            "neither the agent image nor the inventory says which Cilium version runs (cilium_version): pass --cilium-version X.Y.Z".into(),
        ));
    };
    match var.value.as_str().map(ChartVersion::parse) {
        Some(Ok(version)) => Ok(version),
        Some(Err(e)) => Err(FlowError::Refused(format!(
            "{}: cilium_version: {e}; pass --cilium-version X.Y.Z",
            var.origin
        ))),
        None => Err(FlowError::Refused(format!(
            "{}: cilium_version is {}, not a version; pass --cilium-version X.Y.Z",
            var.origin, var.value
        ))),
    }
}

/// Whether the inventory still installs Cilium (`kube_network_plugin: cilium`).
pub(super) fn inventory_claim(variables: &Variables) -> InventoryClaim {
    let plugin = variables
        .value("kube_network_plugin")
        .and_then(Value::as_str);
    let additionally = variables
        .value("cilium_deploy_additionally")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    match plugin {
        Some("cilium") => InventoryClaim::ManagesCilium,
        _ if additionally => InventoryClaim::ManagesCilium,
        Some(_) => InventoryClaim::DoesNotManageCilium,
        None => InventoryClaim::Unknown,
    }
}

/// The inventory's resolved variables as `cilium-values` reads them, with short origins, plus
/// `etcd_access_addresses` computed from the etcd hosts as Kubespray does (the same glue as
/// `cargo xtask values`).
pub fn inventory_vars(inventory: &Inventory, variables: &Variables) -> InventoryVars {
    let mut vars = InventoryVars::new();
    for variable in variables.iter() {
        let origin = match &variable.origin {
            Origin::Inventory { file, key, line } => {
                let file = inventory.display_path(file).display();
                match line {
                    Some(line) => format!("{file}:{line}: {key}"),
                    None => format!("{file}: {key}"),
                }
            }
            other => other.to_string(),
        };
        vars.insert(
            variable.name.clone(),
            InventoryVar::new(variable.value.clone(), origin),
        );
    }
    let mut etcd = inventory.group_hosts("etcd");
    let mut group = "etcd";
    if etcd.is_empty() {
        etcd = inventory.group_hosts("kube_control_plane");
        group = "kube_control_plane";
    }
    if !etcd.is_empty() && !vars.contains_key("etcd_access_addresses") {
        let addresses: Vec<String> = etcd
            .iter()
            .map(|h| format!("https://{}:2379", h.access_address()))
            .collect();
        let files: Vec<String> = inventory
            .inventory_files
            .iter()
            .map(|f| inventory.display_path(f).display().to_string())
            .collect();
        vars.insert(
            "etcd_access_addresses".to_owned(),
            InventoryVar::new(
                Value::String(addresses.join(",")),
                format!("{}: hosts of group {group}", files.join(", ")),
            ),
        );
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_chart_version_is_the_inventorys_cilium_version() {
        let mut vars = InventoryVars::new();
        let err = default_version(&vars).expect_err("nothing says the version");
        assert!(err.to_string().contains("--cilium-version"), "{err}");
        vars.insert(
            "cilium_version".into(),
            InventoryVar::new(
                Value::String("v1.15.9".into()),
                "group_vars/k8s_cluster/k8s-net-cilium.yml: cilium_version",
            ),
        );
        assert_eq!(
            default_version(&vars).expect("version").to_string(),
            "1.15.9"
        );
        vars.insert(
            "cilium_version".into(),
            InventoryVar::new(Value::String("latest".into()), "all.yml: cilium_version"),
        );
        let err = default_version(&vars).expect_err("not a version");
        assert!(err.to_string().contains("all.yml: cilium_version"), "{err}");
    }

    #[test]
    fn the_inventory_claim_follows_kube_network_plugin() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        let inventory = Inventory::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        let variables = inventory
            .variables(kubespray_config::Era::Template)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inventory_claim(&variables), InventoryClaim::ManagesCilium);
        let vars = inventory_vars(&inventory, &variables);
        assert!(vars.contains_key("etcd_access_addresses"));
    }
}
