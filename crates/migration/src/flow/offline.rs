//! The offline plan: everything [`super::run`] decides that needs no cluster, from the inventory
//! and a saved `cilium-config`. Its step list is [`Strategy::steps`], the very list the live run
//! journals; with a chart at hand it runs the config gate (`helm template` needs no cluster), so
//! blocking differences show before anyone touches the cluster.

use std::path::{Path, PathBuf};

use cilium_values::{ChartVersion, LiveConfig, Translation};
use helm::{ChartSource, Helm, TemplateRequest};
use kubespray_config::{Era, HandoverOptions, Inventory};
use serde::Serialize;
use serde_json::Value;

use super::plan::{config_gate, rendered_cilium_config, write_temp_values};
use super::{FlowError, GateDifference, default_version, inventory_vars};
use crate::journal::{Step, Strategy};
use crate::object;
use crate::template_era::{KEPT_SECRETS, NAMESPACE, TEMPLATE_OBJECTS};

/// Node directories the chart's agent writes through hostPath mounts.
pub const NODE_DIRECTORIES: [&str; 2] = ["/opt/cni/bin", "/etc/cni/net.d"];

/// What [`plan_offline`] reads.
#[derive(Clone, Debug, Default)]
pub struct OfflineOptions {
    /// The Kubespray inventory (directory or inventory file).
    pub inventory: PathBuf,
    /// The live `cilium-config` as `kubectl get configmap -o yaml` prints it.
    pub live_config: Option<PathBuf>,
    /// The chart version (default: [`default_version`]).
    pub cilium_version: Option<String>,
    /// The Kubespray era when neither the inventory nor the ConfigMap shows it.
    pub era: Option<Era>,
    /// The chart to run the gate with; `None` skips the gate (and the plan says so).
    pub chart: Option<ChartSource>,
    /// The helm binary (`None`: `helm` on `PATH`).
    pub helm: Option<PathBuf>,
    /// `cilium-config` keys whose behaviour change the operator accepts.
    pub accept_config_changes: Vec<String>,
}

/// The era and the sentences that justify it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraChoice {
    /// The era.
    pub era: Era,
    /// Where it was read.
    pub evidence: Vec<String>,
}

/// The offline plan.
#[derive(Debug, Serialize)]
pub struct OfflinePlan {
    /// The inventory directory.
    pub inventory: String,
    /// The Kubespray era.
    pub era: String,
    /// Why that era.
    pub era_evidence: Vec<String>,
    /// The chart version the values are for.
    pub chart_version: String,
    /// The strategy `migrate` would use.
    pub strategy: Strategy,
    /// Whether Cilium replaces kube-proxy (the inventory then gets `kube_proxy_remove: true`).
    pub kube_proxy_replaced: bool,
    /// The values with a provenance comment on each, as printed: secret-looking values shown as
    /// `<redacted>` (the file `migrate` writes for helm holds them).
    pub values_yaml: String,
    /// The hand-over edit of the inventory.
    pub inventory_diff: String,
    /// What is backed up, adopted or kept.
    pub objects: Vec<PlannedObject>,
    /// The nodes whose directories must be root-owned.
    pub nodes: Vec<PlannedNode>,
    /// Kubespray's `kube_owner`.
    pub kube_owner: Option<String>,
    /// What `migrate --apply` does, in order: the checks, then the strategy's journaled steps.
    pub steps: Vec<PlannedStep>,
    /// The config gate, run offline or skipped.
    pub gate: OfflineGate,
    /// Warnings.
    pub warnings: Vec<String>,
}

/// One object of the plan.
#[derive(Debug, Serialize)]
pub struct PlannedObject {
    /// Its kind.
    pub kind: &'static str,
    /// Its name (a glob for families).
    pub name: String,
    /// Its namespace.
    pub namespace: Option<&'static str>,
    /// What happens to it.
    pub action: &'static str,
}

/// One node of the plan.
#[derive(Debug, Serialize)]
pub struct PlannedNode {
    /// The inventory host.
    pub node: String,
    /// Where SSH connects.
    pub address: String,
    /// The directories that must be root-owned.
    pub directories: Vec<&'static str>,
}

/// One step of the plan: `journaled` names the [`Step`] the live run records (`None` for checks).
#[derive(Debug, Serialize)]
pub struct PlannedStep {
    /// The journal's name of the step, when it is journaled.
    pub journaled: Option<Step>,
    /// What it does.
    pub description: &'static str,
}

/// The gate as the offline plan could run it.
#[derive(Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum OfflineGate {
    /// Not run, and why.
    Skipped {
        /// Why.
        reason: String,
    },
    /// `helm template` ran; the config gate compared its `cilium-config` with the live one.
    Ran {
        /// The chart.
        chart: String,
        /// Every difference.
        differences: Vec<GateDifference>,
        /// What blocks `migrate --apply`.
        blockers: Vec<String>,
        /// What only the live run can compare (the workloads need the live objects).
        not_checked: String,
    },
}

impl OfflineGate {
    /// The blockers found (none when skipped).
    pub fn blockers(&self) -> &[String] {
        match self {
            OfflineGate::Ran { blockers, .. } => blockers,
            OfflineGate::Skipped { .. } => &[],
        }
    }
}

/// The steps of `migrate --apply` for `strategy`: the checks it makes first, then exactly
/// [`Strategy::steps`], the list the live run journals.
pub fn planned_steps(strategy: Strategy) -> Vec<PlannedStep> {
    let checks = [
        "detect the era from the live cluster and record its identity in the journal",
        "gate: helm template the chart with these values; diff cilium-config key by key and the agent DaemonSet, operator and Hubble Deployments field by field",
        "check that every node directory is root-owned (`cilium-migrate nodes check`)",
    ];
    let mut steps: Vec<PlannedStep> = checks
        .into_iter()
        .map(|description| PlannedStep {
            journaled: None,
            description,
        })
        .collect();
    steps.extend(strategy.steps().iter().map(|&step| PlannedStep {
        journaled: Some(step),
        description: describe(step, strategy),
    }));
    steps
}

fn describe(step: Step, strategy: Strategy) -> &'static str {
    match (step, strategy) {
        (Step::Backup, _) => {
            "back up every object below, the cilium.io custom resources and the inventory files; verify the bundle"
        }
        (Step::AdoptMetadata, _) => {
            "adopt: add Helm ownership metadata to the live objects (the DaemonSet rolls, never deleted)"
        }
        (Step::DeleteTemplateObjects, _) => {
            "replace: adopt Kubespray's objects, but delete its DaemonSet and Deployments, their pods orphaned for the chart's to take over"
        }
        (Step::HelmInstall, Strategy::TakeOverRelease) => {
            "hand over: helm upgrade the release with these values (no pod restarts when nothing changes)"
        }
        (Step::HelmInstall, _) => "helm upgrade --install the release cilium with these values",
        (Step::PruneFields, _) => "prune the Kubespray-only fields Helm did not set",
        (Step::InventoryEdit, _) => "edit the inventory (above) and save the values next to it",
        (Step::Verify, _) => "verify like `cilium status`; finish the journal",
    }
}

/// The era the saved `cilium-config` shows by its own metadata: Helm's ownership (cilium-cli,
/// Kubespray >= v2.28, installs a release) or its absence (Kubespray <= v2.27 applies manifests).
/// `None` when the document has no metadata to judge by.
pub fn era_from_configmap(configmap: &Value, file: &str) -> Option<EraChoice> {
    let metadata = configmap.get("metadata")?.as_object()?;
    let managed_by = object::str_at(
        configmap,
        &["metadata", "labels", "app.kubernetes.io/managed-by"],
    );
    let release = object::str_at(
        configmap,
        &["metadata", "annotations", "meta.helm.sh/release-name"],
    );
    if managed_by == Some("Helm") || release.is_some() {
        let mut why = Vec::new();
        if managed_by == Some("Helm") {
            why.push("label app.kubernetes.io/managed-by: Helm".to_owned());
        }
        if let Some(release) = release {
            why.push(format!("annotation meta.helm.sh/release-name: {release}"));
        }
        return Some(EraChoice {
            era: Era::CiliumCli,
            evidence: vec![format!(
                "{file}: {} (a Helm release, Kubespray >= v2.28)",
                why.join(", ")
            )],
        });
    }
    // An exported ConfigMap always has a name; without one this is not kubectl's output.
    metadata.get("name")?;
    Some(EraChoice {
        era: Era::Template,
        evidence: vec![format!(
            "{file}: no Helm ownership labels or annotations (applied manifests, Kubespray <= v2.27)"
        )],
    })
}

/// The era: `--era`, else the inventory's evidence, else the saved ConfigMap's metadata; refused
/// with the inventory's explanation when none says.
pub fn choose_era(
    inventory: &Inventory,
    explicit: Option<Era>,
    live_config: Option<&Path>,
) -> Result<EraChoice, FlowError> {
    let detection = inventory.detect_era();
    let evidence: Vec<String> = detection
        .evidence
        .iter()
        .map(|e| {
            format!(
                "{}: {}",
                inventory.display_path(&e.file).display(),
                e.reason
            )
        })
        .collect();
    if let Some(era) = explicit {
        return Ok(EraChoice {
            era,
            evidence: vec!["--era".to_owned()],
        });
    }
    if let Some(era) = detection.era {
        return Ok(EraChoice { era, evidence });
    }
    if detection.evidence.is_empty()
        && let Some(path) = live_config
    {
        let text = std::fs::read_to_string(path).map_err(super::io(path))?;
        let doc: Value = serde_saphyr::from_str(&text).map_err(|e| {
            FlowError::Refused(format!("{}: not a YAML ConfigMap: {e}", path.display()))
        })?;
        if let Some(choice) = era_from_configmap(&doc, &path.display().to_string()) {
            return Ok(choice);
        }
    }
    Err(detection
        .require(&inventory.dir)
        .err()
        .map_or_else(|| FlowError::Refused("no era".into()), FlowError::from))
}

/// The values for the inventory and the saved `cilium-config`, with the era they assume: the
/// one translation `values` and `plan` print.
pub fn offline_values(
    options: &OfflineOptions,
    inventory: &Inventory,
) -> Result<(Translation, EraChoice), FlowError> {
    let era = choose_era(inventory, options.era, options.live_config.as_deref())?;
    let variables = inventory.variables(era.era)?;
    let vars = inventory_vars(inventory, &variables);
    let version = match &options.cilium_version {
        Some(text) => ChartVersion::parse(text)?,
        None => default_version(&vars)?,
    };
    let live = options
        .live_config
        .as_deref()
        .map(LiveConfig::read)
        .transpose()?;
    let translation = cilium_values::translate(&cilium_values::Sources {
        live,
        inventory: vars,
        version,
    })?;
    Ok((translation, era))
}

/// Builds the offline plan (see the module documentation).
pub fn plan_offline(options: &OfflineOptions) -> Result<OfflinePlan, FlowError> {
    let inventory = Inventory::load(&options.inventory)?;
    let (translation, era) = offline_values(options, &inventory)?;
    let variables = inventory.variables(era.era)?;
    let kube_proxy_replaced = translation
        .values
        .chart
        .kube_proxy_replacement
        .as_deref()
        .is_some_and(cilium_values::replaces_kube_proxy);
    let edits = inventory.handover_edits(&HandoverOptions {
        kube_proxy_remove: kube_proxy_replaced,
    })?;
    // Printed: a neighbouring line can hold a key (cilium_ipsec_key).
    let inventory_diff: String = edits
        .iter()
        .map(|e| cilium_values::redact_yaml_lines(&e.unified_diff()))
        .collect();

    let mut warnings: Vec<String> = inventory.warnings.iter().map(ToString::to_string).collect();
    warnings.extend(translation.warnings.iter().map(ToString::to_string));
    let kube_owner = variables
        .value("kube_owner")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if kube_owner.as_deref() != Some("root") {
        warnings.push(format!(
            "kube_owner is {:?}: every Kubespray run chowns /opt/cni/bin to it, and the chart's agent \
             (uid 0 without CAP_DAC_OVERRIDE) then fails with `{}`; the inventory edit sets kube_owner: root \
             and `cilium-migrate nodes fix --apply` repairs the nodes",
            kube_owner.as_deref().unwrap_or("(unset)"),
            cni_fs::HOSTBIN_ERROR,
        ));
    }
    let strategy = match era.era {
        Era::Template => Strategy::Adopt,
        Era::CiliumCli => Strategy::TakeOverRelease,
    };
    let gate = offline_gate(options, &translation)?;
    Ok(OfflinePlan {
        inventory: inventory.dir.display().to_string(),
        era: era.era.to_string(),
        era_evidence: era.evidence,
        chart_version: translation.values.version.to_string(),
        strategy,
        kube_proxy_replaced,
        values_yaml: translation.values.to_yaml_with_provenance_redacted()?.0,
        inventory_diff,
        objects: planned_objects(era.era),
        nodes: planned_nodes(&inventory),
        kube_owner,
        steps: planned_steps(strategy),
        gate,
        warnings,
    })
}

/// The config gate without a cluster: render `options.chart`, then compare with the saved
/// `cilium-config` (`values --chart` and `plan --chart` both run it).
pub fn offline_gate(
    options: &OfflineOptions,
    translation: &Translation,
) -> Result<OfflineGate, FlowError> {
    let Some(chart) = &options.chart else {
        return Ok(OfflineGate::Skipped {
            reason: "no --chart given: pass a chart archive or directory (or repo/chart) to run the config gate offline; `migrate` runs it on the cluster".into(),
        });
    };
    let Some(live_path) = &options.live_config else {
        return Ok(OfflineGate::Skipped {
            reason:
                "no --live-config given: the gate compares the render with the live cilium-config"
                    .into(),
        });
    };
    let live = LiveConfig::read(live_path)?;
    let helm = Helm::locate(options.helm.as_deref())?;
    helm.prepare(chart)?;
    let values_file = write_temp_values(&translation.values.to_json()?)?;
    let version = translation.values.version;
    let mut request = TemplateRequest::new("cilium", NAMESPACE, chart.clone());
    request.version = Some(version.to_string());
    request.values_files = vec![values_file.path().to_owned()];
    let text = helm.template(&request)?;
    let rendered = object::parse_manifest(&text).map_err(|e| {
        FlowError::Refused(format!(
            "helm template printed something that is not YAML: {e}"
        ))
    })?;
    let chart_name = chart.reference().to_string_lossy().into_owned();
    let rendered_config = rendered_cilium_config(&rendered, &chart_name)?;
    // Offline the running agent's version is the chart's (the hand-over keeps the version).
    let (differences, blockers) = config_gate(
        cilium_values::compare_config_across(&live, version, &rendered_config, version),
        &options.accept_config_changes,
        false,
    );
    Ok(OfflineGate::Ran {
        chart: chart_name,
        differences,
        blockers,
        not_checked: "the workloads (agent DaemonSet, operator, Hubble) need the live objects, and objects the chart renders only for the cluster's APIs or Kubernetes version need the cluster (rendered here with Helm's built-in ones): `migrate` compares them".into(),
    })
}

fn planned_objects(era: Era) -> Vec<PlannedObject> {
    let mut objects = Vec::new();
    match era {
        Era::Template => {
            for kind in TEMPLATE_OBJECTS {
                for name in kind.names {
                    objects.push(PlannedObject {
                        kind: kind.kind,
                        name: (*name).to_owned(),
                        namespace: kind.namespaced.then_some(NAMESPACE),
                        action: "back up, adopt into release cilium (if present)",
                    });
                }
            }
            for name in KEPT_SECRETS {
                objects.push(PlannedObject {
                    kind: "Secret",
                    name: (*name).to_owned(),
                    namespace: Some(NAMESPACE),
                    action: "back up (0600), keep: hubble/IPsec trust",
                });
            }
        }
        Era::CiliumCli => objects.push(PlannedObject {
            kind: "Secret",
            name: "sh.helm.release.v1.cilium.v*".to_owned(),
            namespace: Some(NAMESPACE),
            action: "back up; the release stays, Helm takes over from cilium-cli",
        }),
    }
    objects.push(PlannedObject {
        kind: "CustomResourceDefinition",
        name: "*.cilium.io".to_owned(),
        namespace: None,
        action: "back up custom resources; never deleted",
    });
    objects
}

fn planned_nodes(inventory: &Inventory) -> Vec<PlannedNode> {
    let mut hosts = inventory.group_hosts("k8s_cluster");
    if hosts.is_empty() {
        hosts = inventory.hosts.iter().collect();
    }
    hosts
        .into_iter()
        .map(|host| PlannedNode {
            node: host.name.clone(),
            address: host.connect_address().to_owned(),
            directories: NODE_DIRECTORIES.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_step_list_is_the_strategys_journaled_steps() {
        for strategy in [
            Strategy::Adopt,
            Strategy::Replace,
            Strategy::TakeOverRelease,
        ] {
            let journaled: Vec<Step> = planned_steps(strategy)
                .iter()
                .filter_map(|s| s.journaled)
                .collect();
            assert_eq!(journaled, strategy.steps(), "{strategy:?}");
        }
        let adopt = planned_steps(Strategy::Adopt);
        assert!(adopt.iter().any(|s| s.description.starts_with("adopt:")));
        let takeover = planned_steps(Strategy::TakeOverRelease);
        assert!(!takeover.iter().any(|s| s.description.starts_with("adopt:")));
    }

    #[test]
    fn helm_ownership_on_the_configmap_means_the_cilium_cli_era() {
        let by_label = json!({"metadata": {"name": "cilium-config",
            "labels": {"app.kubernetes.io/managed-by": "Helm"}}});
        let choice = era_from_configmap(&by_label, "cm.yaml").expect("era");
        assert_eq!(choice.era, Era::CiliumCli);
        assert!(choice.evidence[0].contains("managed-by: Helm"));
        let by_annotation = json!({"metadata": {"name": "cilium-config",
            "annotations": {"meta.helm.sh/release-name": "cilium"}}});
        assert_eq!(
            era_from_configmap(&by_annotation, "cm.yaml").map(|c| c.era),
            Some(Era::CiliumCli)
        );
    }

    #[test]
    fn a_configmap_without_helm_ownership_is_the_template_era() {
        let plain = json!({"metadata": {"name": "cilium-config", "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "kubectl"}}});
        assert_eq!(
            era_from_configmap(&plain, "cm.yaml").map(|c| c.era),
            Some(Era::Template)
        );
        // No metadata at all is no evidence either way.
        assert_eq!(era_from_configmap(&json!({"data": {}}), "cm.yaml"), None);
    }

    /// The homelab inventory without `cilium_version`, and its ConfigMap with `metadata`
    /// replaced, in a temporary directory.
    fn unpinned_homelab(metadata: &str) -> (tempfile::TempDir, OfflineOptions) {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/homelab");
        let dir = tempfile::tempdir().expect("tempdir");
        for file in [
            "inventory.ini",
            "group_vars/all/all.yml",
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "group_vars/k8s_cluster/k8s-net-cilium.yml",
        ] {
            let text = std::fs::read_to_string(example.join(file)).expect("example file");
            let text: String = text
                .lines()
                .filter(|l| !l.starts_with("cilium_version:"))
                .map(|l| format!("{l}\n"))
                .collect();
            let target = dir.path().join(file);
            std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
            std::fs::write(target, text).expect("write");
        }
        let config = std::fs::read_to_string(example.join("cilium-config.yaml")).expect("config");
        let data = &config[..config.find("\nmetadata:").expect("metadata")];
        let live = dir.path().join("cilium-config.yaml");
        std::fs::write(&live, format!("{data}\n{metadata}")).expect("write config");
        let options = OfflineOptions {
            inventory: dir.path().to_owned(),
            live_config: Some(live),
            cilium_version: Some("1.15.9".into()),
            ..OfflineOptions::default()
        };
        (dir, options)
    }

    #[test]
    fn an_unpinned_inventory_takes_the_era_from_the_configmap_metadata() {
        let helm_owned = "metadata:\n  name: cilium-config\n  namespace: kube-system\n  labels:\n    app.kubernetes.io/managed-by: Helm\n  annotations:\n    meta.helm.sh/release-name: cilium\n";
        let (_dir, options) = unpinned_homelab(helm_owned);
        let plan = plan_offline(&options).expect("plan");
        assert_eq!(plan.strategy, Strategy::TakeOverRelease);
        assert!(
            plan.era_evidence[0].contains("managed-by: Helm"),
            "{:?}",
            plan.era_evidence
        );

        let applied = "metadata:\n  name: cilium-config\n  namespace: kube-system\n";
        let (_dir, options) = unpinned_homelab(applied);
        let plan = plan_offline(&options).expect("plan");
        assert_eq!(plan.strategy, Strategy::Adopt);
        assert!(
            plan.era_evidence[0].contains("no Helm ownership"),
            "{:?}",
            plan.era_evidence
        );
    }

    #[test]
    fn without_inventory_evidence_or_configmap_metadata_the_era_is_refused() {
        let (_dir, options) = unpinned_homelab("");
        let err = plan_offline(&options).expect_err("no era");
        assert!(err.to_string().contains("--era"), "{err}");
    }
}
