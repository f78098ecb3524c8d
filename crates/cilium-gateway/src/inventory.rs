//! The Kubespray variables that guard a Gateway API cluster after the hand-over:
//! `kube_network_plugin`, `kube_owner` and `kube_proxy_remove`, each with where it was set.

use std::path::{Path, PathBuf};

use kubespray_config::{Era, Inventory};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;

/// One resolved inventory variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryValue {
    /// The effective value (`null` when Kubespray never defines it, as `kube_proxy_remove`).
    pub value: Value,
    /// Where it came from, as an operator reads it (`group_vars/...:12 (kube_owner)`).
    pub origin: String,
}

/// The guard variables of one inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InventoryFacts {
    /// The inventory directory given.
    pub dir: PathBuf,
    /// `kube_network_plugin`.
    pub kube_network_plugin: Option<InventoryValue>,
    /// `kube_owner`.
    pub kube_owner: Option<InventoryValue>,
    /// `kube_proxy_remove`.
    pub kube_proxy_remove: Option<InventoryValue>,
}

impl InventoryFacts {
    /// Reads the inventory at `dir` and resolves the guard variables with its era's role
    /// defaults (the cilium-cli era's when the era cannot be told: these defaults are the same).
    pub fn load(dir: &Path) -> Result<InventoryFacts, Error> {
        let inventory = Inventory::load(dir).map_err(|source| Error::Inventory {
            dir: dir.to_owned(),
            source: Box::new(source),
        })?;
        let era = inventory.detect_era().era.unwrap_or(Era::CiliumCli);
        let variables = inventory
            .variables(era)
            .map_err(|source| Error::Inventory {
                dir: dir.to_owned(),
                source: Box::new(source),
            })?;
        let get = |name: &str| {
            variables.get(name).map(|variable| InventoryValue {
                value: variable.value.clone(),
                origin: variable.origin.to_string(),
            })
        };
        Ok(InventoryFacts {
            dir: dir.to_owned(),
            kube_network_plugin: get("kube_network_plugin"),
            kube_owner: get("kube_owner"),
            kube_proxy_remove: get("kube_proxy_remove"),
        })
    }
}

/// Ansible's truthiness for the values these variables take (`true`, `"true"`, `yes`, `1`).
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "on" | "1"
        ),
        _ => false,
    }
}
