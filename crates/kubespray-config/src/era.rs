//! Which Kubespray era an inventory belongs to, and the evidence for it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;

use crate::{Error, Inventory};

/// How Kubespray installs Cilium, which decides the role defaults and the objects in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Era {
    /// Kubespray ≤ v2.27: Jinja manifests applied with kubectl.
    Template,
    /// Kubespray ≥ v2.28: a Helm release `cilium` installed by cilium-cli.
    CiliumCli,
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Era::Template => "template era (Kubespray <= v2.27: Cilium applied as manifests with kubectl)",
            Era::CiliumCli => "cilium-cli era (Kubespray >= v2.28: Cilium installed as Helm release by cilium-cli)",
        })
    }
}

impl FromStr for Era {
    type Err = String;

    /// `template` or `cilium-cli` (also a Kubespray version such as `v2.27.1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "template" | "templates" | "manifests" => Ok(Era::Template),
            "cilium-cli" | "cilium_cli" | "ciliumcli" | "helm" => Ok(Era::CiliumCli),
            other => Era::from_kubespray_version(other).ok_or_else(|| {
                format!("unknown era {s:?}: use 'template' (Kubespray <= v2.27) or 'cilium-cli' (>= v2.28)")
            }),
        }
    }
}

impl Era {
    /// The era of a Kubespray release (`v2.27.1`, `2.28.0`, `2.26`); `None` if unreadable.
    pub fn from_kubespray_version(version: &str) -> Option<Era> {
        let version = crate::resolve::parse_version(version)?;
        match (version.major, version.minor) {
            (2, m) if m <= 27 => Some(Era::Template),
            (2, _) => Some(Era::CiliumCli),
            (0 | 1, _) => Some(Era::Template),
            _ => Some(Era::CiliumCli),
        }
    }

    /// A short name for messages and command lines: `template` or `cilium-cli`.
    pub fn short_name(self) -> &'static str {
        match self {
            Era::Template => "template",
            Era::CiliumCli => "cilium-cli",
        }
    }
}

/// One reason to believe the inventory belongs to an era.
#[derive(Debug, Clone, PartialEq)]
pub struct EraEvidence {
    /// The era it points to.
    pub era: Era,
    /// Why, in the operator's words.
    pub reason: String,
    /// The file it was found in.
    pub file: PathBuf,
}

/// The outcome of era detection: the era when the evidence agrees, and all the evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct EraDetection {
    /// The era, when there is evidence and it all points the same way.
    pub era: Option<Era>,
    /// Every piece of evidence found.
    pub evidence: Vec<EraEvidence>,
}

impl EraDetection {
    /// The detected era, or an error that says why not and how to force one.
    pub fn require(&self, dir: &Path) -> Result<Era, Error> {
        if let Some(era) = self.era {
            return Ok(era);
        }
        let fix = "pass the era explicitly (--era template for Kubespray <= v2.27, --era cilium-cli for >= v2.28), \
                   or pin cilium_version in group_vars/k8s_cluster/k8s-net-cilium.yml"
            .to_owned();
        let reason = if self.evidence.is_empty() {
            "no evidence in the inventory (cilium_version is not pinned and no era-only variable is set)".to_owned()
        } else {
            let parts: Vec<String> = self
                .evidence
                .iter()
                .map(|e| {
                    format!(
                        "{} says {} ({})",
                        e.file.display(),
                        e.era.short_name(),
                        e.reason
                    )
                })
                .collect();
            format!("the evidence disagrees: {}", parts.join("; "))
        };
        Err(Error::UnknownEra {
            dir: dir.to_owned(),
            reason,
            fix,
        })
    }
}

/// Variables that exist in the role defaults of only one era: setting one is a sign of that era.
const TEMPLATE_ONLY: &[&str] = &[
    "cilium_tofqdns_enable_poller",
    "cilium_enable_legacy_services",
    "cilium_ipsec_node_encryption",
    "cilium_clusterrole_rules_operator_extra_vars",
];
const CILIUM_CLI_ONLY: &[&str] = &[
    "cilium_encryption_node_encryption",
    "cilium_enable_bandwidth_manager_bbr",
    "cilium_masq_link_local_ipv6",
    "cilium_hubble_export_file_max_backups",
    "cilium_hubble_export_file_max_size_mb",
    "cilium_hubble_export_dynamic_enabled",
    "cilium_hubble_export_dynamic_config_content",
    "cilium_hubble_peer_service_cluster_domain",
    "cilium_gateway_api_enabled",
    "cilium_agent_extra_args",
    "cilium_operator_extra_args",
    "cilium_operator_tolerations",
    "cilium_install_extra_flags",
    "cilium_extra_values",
    "cilium_dns_proxy_enable_transparent_mode",
];

impl Inventory {
    /// Tell the era from the inventory, with the evidence; nothing is guessed.
    ///
    /// The heuristic, strongest first:
    /// 1. The Kubespray checkout the inventory sits in (`<repo>/inventory/<name>`): its
    ///    `galaxy.yml` `version` is the Kubespray release that will run.
    /// 2. A pinned `cilium_version`: the template era writes it with a `v` prefix (`v1.15.9`,
    ///    used verbatim as image tag); the cilium-cli era without (`1.17.3`, passed to
    ///    `cilium install --version` and prefixed with `v` for image tags). An inventory pinned
    ///    the wrong way breaks Kubespray itself, so the prefix is reliable.
    /// 3. Variables that exist in only one era's role defaults (e.g. `cilium_gateway_api_enabled`,
    ///    `cilium_extra_values` from v2.28; `cilium_tofqdns_enable_poller` up to v2.27): a user sets
    ///    them because their Kubespray reads them.
    ///
    /// When the evidence is empty or disagrees, `era` is `None` and the caller must choose
    /// (see [`EraDetection::require`]).
    pub fn detect_era(&self) -> EraDetection {
        let mut evidence = Vec::new();
        if let Some(e) = self.checkout_evidence() {
            evidence.push(e);
        }
        for file in self
            .vars_files
            .iter()
            .filter(|f| matches!(&f.scope, crate::Scope::Group(_)))
        {
            for (key, value) in &file.values {
                if key == "cilium_version"
                    && let Value::String(v) = value
                    && !v.contains("{{")
                {
                    let era = if v.trim().starts_with('v') {
                        Era::Template
                    } else {
                        Era::CiliumCli
                    };
                    let how = if era == Era::Template {
                        "with"
                    } else {
                        "without"
                    };
                    evidence.push(EraEvidence {
                        era,
                        reason: format!("cilium_version: {v} is pinned {how} a 'v' prefix"),
                        file: file.path.clone(),
                    });
                }
                if TEMPLATE_ONLY.contains(&key.as_str()) {
                    evidence.push(EraEvidence {
                        era: Era::Template,
                        reason: format!("{key} exists only up to Kubespray v2.27"),
                        file: file.path.clone(),
                    });
                }
                if CILIUM_CLI_ONLY.contains(&key.as_str()) {
                    evidence.push(EraEvidence {
                        era: Era::CiliumCli,
                        reason: format!("{key} exists only from Kubespray v2.28"),
                        file: file.path.clone(),
                    });
                }
            }
        }
        let first = evidence.first().map(|e| e.era);
        let agree = evidence.iter().all(|e| Some(e.era) == first);
        EraDetection {
            era: if agree { first } else { None },
            evidence,
        }
    }

    fn checkout_evidence(&self) -> Option<EraEvidence> {
        let galaxy = self.dir.parent()?.parent()?.join("galaxy.yml");
        let text = std::fs::read_to_string(&galaxy).ok()?;
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("version:"))?
            .trim()
            .trim_matches(['"', '\'']);
        let era = Era::from_kubespray_version(version)?;
        Some(EraEvidence {
            era,
            reason: format!("the Kubespray checkout around the inventory is version {version}"),
            file: galaxy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubespray_versions_map_to_eras() {
        for (v, era) in [
            ("v2.24.0", Era::Template),
            ("2.27.1", Era::Template),
            ("v2.26", Era::Template),
            ("v2.28.0", Era::CiliumCli),
            ("2.31.0", Era::CiliumCli),
            ("2.30.0-rc1", Era::CiliumCli),
        ] {
            assert_eq!(Era::from_kubespray_version(v), Some(era), "{v}");
        }
        assert_eq!(Era::from_kubespray_version("latest"), None);
        // With semver a tag must be a whole version: no text glued to the minor.
        assert_eq!(Era::from_kubespray_version("v2.28rc1"), None);
        assert_eq!(
            Era::from_kubespray_version("2.28.0-rc.1"),
            Some(Era::CiliumCli)
        );
        assert_eq!("cilium-cli".parse::<Era>(), Ok(Era::CiliumCli));
        assert!("sometimes".parse::<Era>().is_err());
    }
}
