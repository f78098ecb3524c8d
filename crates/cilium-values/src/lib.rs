//! Helm values for the Cilium chart (1.15 to 1.19), derived from what runs and what Kubespray believes.
//!
//! Two sources feed a translation: the live `cilium-config` ConfigMap ([`LiveConfig`], the truth of
//! what the agents run with) and the resolved Kubespray inventory variables ([`InventoryVars`], what
//! Kubespray would render). The live config wins; every disagreement and every setting that cannot
//! be carried becomes a [`Warning`]. The result is a typed [`Values`] with the origin of each value.
//!
//! [`compare_config`] is the gate `migrate` uses before the cut-over: it checks that the
//! `cilium-config` rendered by the chart keeps what the live one says, weighing an absent key with
//! the agent defaults of [`agent_defaults`] (the module `agent_defaults` holds those tables).

mod agent_defaults;
mod compare;
mod inventory;
mod kube_proxy;
mod live;
mod redact;
mod translate;
mod values;
mod version;
mod workload;

pub use agent_defaults::{AgentDefault, agent_defaults};
pub use compare::{ConfigDifference, DifferenceKind, compare_config, compare_config_across};
pub use inventory::{InventoryVar, InventoryVars, KubesprayView, ViewEntry, kubespray_config_view};
pub use kube_proxy::{replaces_kube_proxy, replaces_kube_proxy_value};
pub use live::LiveConfig;
pub use redact::{
    REDACTED, is_secret_key, looks_like_secret_material, redact_json, redact_values_yaml,
    redact_yaml_lines,
};
pub use translate::{Sources, Translation, Warning, WarningKind, translate};
pub use values::{ChartValues, Provenance, Values};
pub use version::{ChartVersion, NEWEST_MINOR, OLDEST_MINOR, parse_release};
pub use workload::{WorkloadDifference, compare_workloads};

use std::path::PathBuf;

/// What can go wrong; every variant names the file (or origin), the key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The version text is not `X.Y.Z`.
    #[error("`{text}` is not a Cilium version: write it as 1.15.9 or v1.15.9")]
    BadVersion {
        /// What was given.
        text: String,
    },
    /// A version outside the charts this tool knows.
    #[error(
        "Cilium chart {version} is not supported: this tool writes values for charts 1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}; pick a version in that range with --cilium-version"
    )]
    UnsupportedVersion {
        /// The version that was asked for.
        version: String,
    },
    /// The live config file could not be read.
    #[error("cannot read the live cilium-config {path}: {source}")]
    ReadLiveConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The live config file is not YAML.
    #[error(
        "{path} is not valid YAML: {message}; pass the output of `kubectl -n kube-system get configmap cilium-config -o yaml`"
    )]
    LiveConfigYaml {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// The file holds no ConfigMap named `cilium-config`.
    #[error(
        "{path} holds no ConfigMap named cilium-config (found: {found}); pass the output of `kubectl -n kube-system get configmap cilium-config -o yaml`"
    )]
    NoCiliumConfig {
        /// The file.
        path: String,
        /// What the file holds instead.
        found: String,
    },
    /// A `data` entry that is not a string.
    #[error(
        "{path}: data key `{key}` holds {found}, but ConfigMap data values are strings; quote the value"
    )]
    LiveValueNotString {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// A short description of what was found.
        found: String,
    },
    /// A live value that the agent could not parse either.
    #[error(
        "{path}: cilium-config key `{key}` is `{value}`, expected {expected}; fix the value in the ConfigMap"
    )]
    BadLiveValue {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What it should look like.
        expected: String,
    },
    /// An inventory variable of the wrong type.
    #[error(
        "{origin}: `{name}` is {found}, expected {expected}; fix the variable in the inventory"
    )]
    BadInventoryValue {
        /// Where the variable was set (file and key, or "Kubespray default").
        origin: String,
        /// The variable.
        name: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: String,
    },
    /// Nothing to translate from.
    #[error(
        "no source for the values: give an inventory with cilium_* variables, or a live cilium-config (--live-config FILE)"
    )]
    NoSources,
    /// Serialising the values failed (a bug).
    #[error("cannot serialise the values: {0}")]
    Serialise(String),
}
