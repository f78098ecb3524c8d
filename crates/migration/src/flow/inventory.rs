//! The glue between the Kubespray inventory and `cilium-values`: the resolved variables with
//! their origins, whether the inventory still installs Cilium, and the version it names.
//! Separate because `cargo xtask values` uses the same glue through [`inventory_vars`].
//!
//! Also the hand-over's writes next to the inventory ([`write_edit`], [`write_values`]), each
//! recorded in the bundle before it is written, and their rollback ([`restore_written`]).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use cilium_values::{ChartVersion, InventoryVar, InventoryVars};
use kubespray_config::{FileEdit, Inventory, Origin, Variables, files};
use serde_json::Value;

use super::{FlowError, Progress, io};
use crate::bundle::{Bundle, WrittenRestore};
use crate::era::InventoryClaim;

/// Writes one hand-over edit of the inventory ([`FileEdit::write`]: the resolved file, atomic,
/// its permission bits kept), recorded in the bundle first: what the file holds and what the edit
/// writes, so that a rollback restores exactly this file, and only while it holds the edit.
pub(super) fn write_edit(bundle_dir: &Path, edit: &FileEdit) -> Result<(), FlowError> {
    let mode = std::fs::metadata(&edit.target)
        .map_err(io(&edit.target))?
        .permissions()
        .mode();
    let mut bundle = Bundle::open(bundle_dir)?;
    bundle.record_write(
        &edit.target,
        Some((edit.before.as_bytes(), mode)),
        (edit.after.as_bytes(), mode),
    )?;
    edit.write()?;
    Ok(())
}

/// Writes the values file next to the inventory: 0600 (a taken-over release's values can hold
/// keys), atomic, recorded in the bundle first like [`write_edit`]. A symlink at its name is
/// refused: the file would replace the link, and the rollback could not put the link back.
pub(super) fn write_values(bundle_dir: &Path, path: &Path, yaml: &str) -> Result<(), FlowError> {
    let dir = std::fs::canonicalize(files::parent_dir(path)).map_err(io(path))?;
    let path = dir.join(path.file_name().unwrap_or_default());
    let before = match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(FlowError::Refused(format!(
                "{} is a symlink; the hand-over writes its values file there: remove the link (or move it away) and run again",
                path.display()
            )));
        }
        Ok(meta) => Some((
            std::fs::read(&path).map_err(io(&path))?,
            meta.permissions().mode(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&path)(e)),
    };
    let mut bundle = Bundle::open(bundle_dir)?;
    bundle.record_write(
        &path,
        before
            .as_ref()
            .map(|(bytes, mode)| (bytes.as_slice(), *mode)),
        (yaml.as_bytes(), 0o600),
    )?;
    files::write_private_atomic(&path, yaml.as_bytes()).map_err(io(&path))?;
    Ok(())
}

/// Puts back the files the hand-over wrote ([`Bundle::restore_written`]: only while each still
/// holds what the hand-over wrote), and says which it removed. Returns the files changed.
pub(super) fn restore_written(
    bundle: &Bundle,
    progress: &mut dyn Progress,
) -> Result<Vec<PathBuf>, FlowError> {
    let mut changed = Vec::new();
    for (path, action) in bundle.restore_written()? {
        if action == WrittenRestore::Remove {
            progress.note(&format!("removed {}", path.display()));
        }
        changed.push(path);
    }
    Ok(changed)
}

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

    /// A bundle as the backup leaves it, without objects (only its manifest is read here).
    fn empty_bundle(dir: &Path) -> Bundle {
        for d in [dir.to_owned(), dir.join("objects"), dir.join("inventory")] {
            std::fs::create_dir(&d).unwrap();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let manifest = serde_json::json!({
            "format": 1, "created": 0,
            "cluster": {"api_server": "https://127.0.0.1:6443", "kube_system_uid": "u"},
            "objects": [], "absent": [], "inventory": []
        });
        files::write_private_atomic(
            &dir.join(crate::bundle::MANIFEST_FILE),
            manifest.to_string().as_bytes(),
        )
        .unwrap();
        Bundle::open(dir).unwrap()
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.extend(tree(&path));
            } else if meta.is_file() {
                out.push((
                    path.clone(),
                    std::fs::read(&path).unwrap(),
                    meta.permissions().mode() & 0o7777,
                ));
            }
        }
        out.sort();
        out
    }

    /// The hand-over's writes next to the inventory, as the inventory-edit step makes them, and
    /// their rollback: the values file is private, every write is recorded by the file it
    /// really writes (through a symlink inside the inventory), and the rollback gives back the
    /// inventory byte for byte, permission bits included.
    #[test]
    fn the_handover_writes_are_recorded_private_and_rolled_back_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        let inv = tmp.path().join("inventory");
        copy_tree(&example, &inv);
        // Kubespray's legacy group name, linked to the new one inside the inventory.
        std::fs::rename(
            inv.join("group_vars/k8s_cluster"),
            inv.join("group_vars/k8s-cluster"),
        )
        .unwrap();
        std::os::unix::fs::symlink("k8s-cluster", inv.join("group_vars/k8s_cluster")).unwrap();
        let before = tree(&inv);
        let bundle_dir = tmp.path().join("bundle");
        empty_bundle(&bundle_dir);

        let inventory = Inventory::load(&inv).unwrap();
        let edits = inventory
            .handover_edits(&kubespray_config::HandoverOptions::default())
            .unwrap();
        assert!(!edits.is_empty());
        for edit in &edits {
            write_edit(&bundle_dir, edit).unwrap();
        }
        let values = inv.join(super::super::VALUES_FILE);
        write_values(&bundle_dir, &values, "tls:\n  ca:\n    key: c2VjcmV0\n").unwrap();
        assert_eq!(
            std::fs::metadata(&values).unwrap().permissions().mode() & 0o777,
            0o600,
            "the values file can hold keys"
        );
        let bundle = Bundle::open(&bundle_dir).unwrap();
        let written: Vec<&Path> = bundle
            .manifest()
            .written
            .iter()
            .map(|w| w.path.as_path())
            .collect();
        let real =
            std::fs::canonicalize(inv.join("group_vars/k8s-cluster/k8s-cluster.yml")).unwrap();
        assert!(written.contains(&real.as_path()), "{written:?}");
        assert!(
            std::fs::symlink_metadata(inv.join("group_vars/k8s_cluster"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        bundle.verify().unwrap();

        let mut progress = super::super::Quiet;
        let changed = restore_written(&bundle, &mut progress).unwrap();
        assert_eq!(changed.len(), written.len());
        assert_eq!(tree(&inv), before);
    }

    #[test]
    fn a_symlink_where_the_values_file_goes_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let bundle_dir = tmp.path().join("bundle");
        empty_bundle(&bundle_dir);
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, "mine").unwrap();
        let values = tmp.path().join("cilium-values.yaml");
        std::os::unix::fs::symlink(&elsewhere, &values).unwrap();
        let err = write_values(&bundle_dir, &values, "a: 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symlink"), "{err}");
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "mine");
        assert!(
            Bundle::open(&bundle_dir)
                .unwrap()
                .manifest()
                .written
                .is_empty()
        );
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
