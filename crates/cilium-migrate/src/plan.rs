//! `cilium-migrate plan`: the whole migration plan for an inventory, without a cluster.
//!
//! Everything `migrate` would decide before it touches anything: the era, the values with their
//! provenance, the inventory edit, the objects it backs up and adopts (or replaces), the node
//! directories that must be root-owned, and the warnings. Read-only.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use kubespray_config::{Era, HandoverOptions, Inventory};
use migration::template_era::{KEPT_SECRETS, NAMESPACE, TEMPLATE_OBJECTS};
use serde::Serialize;

use crate::ui;

#[derive(clap::Args)]
pub struct Args {
    /// The Kubespray inventory directory (the one holding group_vars/), or its inventory file.
    #[arg(long, value_name = "DIR")]
    inventory: PathBuf,
    /// The live cilium-config, as `kubectl -n kube-system get configmap cilium-config -o yaml` prints it.
    #[arg(long, value_name = "FILE")]
    live_config: Option<PathBuf>,
    /// The chart version [default: the Cilium version that runs: the hand-over does not upgrade].
    #[arg(long, value_name = "X.Y.Z")]
    cilium_version: Option<String>,
    /// The Kubespray era, when the inventory does not show it: template (<= v2.27) or cilium-cli (>= v2.28).
    #[arg(long)]
    era: Option<Era>,
    /// `text` for people, `json` for machines.
    #[arg(long, value_enum, default_value_t = ui::Output::Text)]
    output: ui::Output,
}

/// Node directories the chart's agent writes through hostPath mounts.
pub(crate) const NODE_DIRECTORIES: [&str; 2] = ["/opt/cni/bin", "/etc/cni/net.d"];

#[derive(Serialize)]
struct Plan {
    inventory: String,
    era: String,
    era_evidence: Vec<String>,
    chart_version: String,
    strategy: &'static str,
    kube_proxy_replaced: bool,
    values_yaml: String,
    inventory_diff: String,
    objects: Vec<PlannedObject>,
    nodes: Vec<PlannedNode>,
    kube_owner: Option<String>,
    steps: Vec<&'static str>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct PlannedObject {
    kind: &'static str,
    name: String,
    namespace: Option<&'static str>,
    action: &'static str,
}

#[derive(Serialize)]
struct PlannedNode {
    node: String,
    address: String,
    directories: Vec<&'static str>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let plan = build(&args)?;
    match args.output {
        ui::Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        ui::Output::Text => print_text(&plan),
    }
    Ok(())
}

fn build(args: &Args) -> anyhow::Result<Plan> {
    let (translation, inventory) = crate::values::values_for(
        &args.inventory,
        args.live_config.as_deref(),
        args.cilium_version.as_deref(),
        args.era,
    )?;
    let detection = inventory.detect_era();
    let era = match args.era {
        Some(era) => era,
        None => detection.require(&inventory.dir)?,
    };
    let variables = inventory.variables(era)?;

    // kube-proxy replaced means `kube_network_plugin: cni` must not bring it back.
    let kube_proxy_replaced = translation
        .values
        .chart
        .kube_proxy_replacement
        .as_deref()
        .is_some_and(cilium_values::replaces_kube_proxy);
    let edits = inventory
        .handover_edits(&HandoverOptions {
            kube_proxy_remove: kube_proxy_replaced,
        })
        .context("cannot prepare the hand-over edit of the inventory")?;
    let inventory_diff: String = edits.iter().map(|e| e.unified_diff()).collect();

    let mut warnings: Vec<String> = translation.warnings.iter().map(|w| w.to_string()).collect();
    let kube_owner = variables
        .value("kube_owner")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    if kube_owner.as_deref() != Some("root") {
        warnings.push(format!(
            "kube_owner is {:?}: every Kubespray run chowns /opt/cni/bin to it, and the chart's agent \
             (uid 0 without CAP_DAC_OVERRIDE) then fails with `cp: cannot create regular file \
             '/hostbin/cilium-mount': Permission denied`; the inventory edit sets kube_owner: root \
             and `cilium-migrate nodes fix --apply` repairs the nodes",
            kube_owner.as_deref().unwrap_or("(unset)")
        ));
    }

    Ok(Plan {
        inventory: inventory.dir.display().to_string(),
        era: era.to_string(),
        era_evidence: detection
            .evidence
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    inventory.display_path(&e.file).display(),
                    e.reason
                )
            })
            .collect(),
        chart_version: translation.values.version.to_string(),
        strategy: match era {
            Era::Template => "adopt",
            Era::CiliumCli => "hand over the existing release",
        },
        kube_proxy_replaced,
        values_yaml: translation.values.to_yaml_with_provenance()?,
        inventory_diff,
        objects: planned_objects(era),
        nodes: planned_nodes(&inventory),
        kube_owner,
        steps: steps(era),
        warnings,
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

fn steps(era: Era) -> Vec<&'static str> {
    let mut steps = vec![
        "detect the era from the live cluster and record its identity in the journal",
        "gate: helm template the chart with these values; diff cilium-config key by key and the agent DaemonSet, operator and Hubble Deployments field by field",
        "back up every object above, the cilium.io custom resources and the inventory files; verify the bundle",
        "check that every node directory is root-owned (`cilium-migrate nodes check`)",
    ];
    steps.push(match era {
        Era::Template => {
            "adopt: add Helm ownership metadata, prune Kubespray-only fields, helm upgrade --install (the DaemonSet rolls, never deleted)"
        }
        Era::CiliumCli => {
            "hand over: helm upgrade the release with these values (no pod restarts when nothing changes)"
        }
    });
    steps.push("edit the inventory (above) and save the values next to it");
    steps.push("verify like `cilium status`; finish the journal");
    steps
}

fn print_text(plan: &Plan) {
    let colour = std::io::stdout().is_terminal();
    println!("{}", ui::heading("Migration plan", colour));
    println!("inventory:      {}", plan.inventory);
    println!("era:            {}", plan.era);
    for evidence in &plan.era_evidence {
        println!("                - {evidence}");
    }
    println!(
        "chart version:  {} (the version that runs: the hand-over changes who manages Cilium, not its version)",
        plan.chart_version
    );
    println!("strategy:       {}", plan.strategy);
    println!(
        "kube-proxy:     {}",
        if plan.kube_proxy_replaced {
            "replaced by Cilium (the inventory gets kube_proxy_remove: true)"
        } else {
            "kept"
        }
    );

    println!("\n{}", ui::heading("Steps (with --apply)", colour));
    for (i, step) in plan.steps.iter().enumerate() {
        println!("{:>2}. {step}", i + 1);
    }

    println!("\n{}", ui::heading("Helm values", colour));
    print!("{}", plan.values_yaml);

    println!("\n{}", ui::heading("Inventory edit", colour));
    if plan.inventory_diff.is_empty() {
        println!("(nothing to change: already handed over)");
    } else {
        print!("{}", ui::paint_diff(&plan.inventory_diff, colour));
    }

    println!("\n{}", ui::heading("Objects", colour));
    let rows: Vec<Vec<String>> = plan
        .objects
        .iter()
        .map(|o| {
            vec![
                o.kind.to_owned(),
                match o.namespace {
                    Some(ns) => format!("{ns}/{}", o.name),
                    None => o.name.clone(),
                },
                o.action.to_owned(),
            ]
        })
        .collect();
    print!("{}", ui::table(&["KIND", "NAME", "ACTION"], &rows));

    println!(
        "\n{}",
        ui::heading("Node directories (must be root:root)", colour)
    );
    let rows: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .map(|n| vec![n.node.clone(), n.address.clone(), n.directories.join(" ")])
        .collect();
    print!("{}", ui::table(&["NODE", "ADDRESS", "DIRECTORIES"], &rows));
    println!(
        "Kubespray sets their owner to kube_owner ({}); check with `cilium-migrate nodes check --inventory {}`.",
        plan.kube_owner.as_deref().unwrap_or("unset"),
        plan.inventory
    );

    println!(
        "\n{}",
        ui::heading(&format!("Warnings ({})", plan.warnings.len()), colour)
    );
    for warning in &plan.warnings {
        println!("- {warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        upstream::project_root().join("examples/homelab")
    }

    #[test]
    fn plan_on_the_bundled_example_covers_every_section() {
        let args = Args {
            inventory: example(),
            live_config: Some(example().join("cilium-config.yaml")),
            cilium_version: None,
            era: None,
            output: ui::Output::Json,
        };
        let plan = build(&args).expect("plan");
        assert!(plan.era.starts_with("template era"), "{}", plan.era);
        assert_eq!(plan.chart_version, "1.15.9");
        assert_eq!(plan.strategy, "adopt");
        assert!(!plan.kube_proxy_replaced, "the homelab keeps kube-proxy");
        assert!(plan.inventory_diff.contains("+kube_network_plugin: cni"));
        assert!(plan.inventory_diff.contains("+kube_owner: root"));
        assert!(!plan.inventory_diff.contains("kube_proxy_remove"));
        assert!(
            plan.objects
                .iter()
                .any(|o| o.kind == "DaemonSet" && o.name == "cilium")
        );
        assert!(
            plan.objects
                .iter()
                .filter(|o| o.kind == "CustomResourceDefinition")
                .all(|o| o.action.contains("never deleted"))
        );
        assert_eq!(plan.nodes.len(), 3, "one control plane and two workers");
        assert!(plan.values_yaml.contains("live cilium-config"));
        assert!(plan.warnings.iter().any(|w| w.contains("kube_owner")));
    }

    #[test]
    fn a_missing_inventory_is_a_clear_error() {
        let args = Args {
            inventory: PathBuf::from("/nonexistent/inventory"),
            live_config: None,
            cilium_version: None,
            era: None,
            output: ui::Output::Text,
        };
        let err = format!("{:#}", build(&args).err().expect("error"));
        assert!(err.contains("/nonexistent/inventory"), "{err}");
    }
}
