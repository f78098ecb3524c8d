//! Read a Kubespray inventory, resolve its Cilium variables with the role defaults of its era,
//! and make the lossless hand-over edit that lets Helm own Cilium.
//!
//! - [`Inventory::load`] reads `inventory.ini` / `hosts.yaml`, `group_vars/` and `host_vars/`.
//! - [`Inventory::detect_era`] tells the Kubespray [`Era`] from the inventory, with evidence.
//! - [`Inventory::variables`] resolves every `cilium_*` variable (and the cluster variables
//!   they depend on) to a [`Variable`] with its [`Origin`].
//! - [`Inventory::handover_edits`] computes the [`FileEdit`]s of the hand-over; nothing is
//!   written until [`FileEdit::write`].

mod defaults;
mod era;
mod error;
pub mod files;
mod handover;
mod hosts;
mod inventory;
mod resolve;
mod vars;

pub use defaults::{
    CLUSTER_VARIABLES, DefaultsFile, Eval, Kind, RoleDefault, checked_against, expected_kind,
    role_defaults,
};
pub use era::{Era, EraDetection, EraEvidence};
pub use error::Error;
pub use handover::{
    FileEdit, HandoverOptions, Target, edit_vars_text, handover_keys, unified_diff,
};
pub use hosts::{Group, HostEntry, HostList, InventoryVar, parse_ini, parse_yaml};
pub use inventory::{Host, INVENTORY_FILE_NAMES, Inventory};
pub use resolve::{Origin, Variable, Variables};
pub use vars::{Scope, VarsFile, parse_vars, yaml_options};
