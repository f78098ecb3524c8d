//! `cilium-migrate plan`: the whole migration plan for an inventory, without a cluster.
//!
//! Everything `migrate` would decide before it touches anything, as `migration::flow` decides it
//! offline ([`migration::flow::plan_offline`]): the era, the values with their provenance, the
//! inventory edit, the objects it backs up and adopts, the node directories that must be
//! root-owned, the steps, the warnings, and with `--chart` the config gate. Read-only.

use std::io::IsTerminal as _;

use migration::flow::{OfflineGate, OfflinePlan};

use crate::offline::OfflineArgs;
use crate::ui;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    offline: OfflineArgs,
    #[command(flatten)]
    output: ui::OutputArg,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let plan = build(&args)?;
    match args.output.output {
        ui::Output::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        ui::Output::Text => print_text(&plan),
    }
    Ok(())
}

fn build(args: &Args) -> anyhow::Result<OfflinePlan> {
    Ok(migration::flow::plan_offline(&args.offline.options()?)?)
}

fn print_text(plan: &OfflinePlan) {
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
        match step.journaled {
            Some(name) => println!("{:>2}. [{name}] {}", i + 1, step.description),
            None => println!("{:>2}. {}", i + 1, step.description),
        }
    }

    println!("\n{}", ui::heading("Gate (offline)", colour));
    match &plan.gate {
        OfflineGate::Skipped { reason } => println!("skipped: {reason}"),
        OfflineGate::Ran {
            chart,
            differences,
            blockers,
            not_checked,
        } => {
            // Blockers first and never after an "ok": the verdict is the first line.
            if blockers.is_empty() {
                println!(
                    "ok: chart {chart} renders the live cilium-config ({} difference(s), none changes behaviour)",
                    differences.len()
                );
            } else {
                println!(
                    "BLOCKED: chart {chart}: {} difference(s) change behaviour",
                    blockers.len()
                );
                for blocker in blockers {
                    println!("- {blocker}");
                }
            }
            for d in differences
                .iter()
                .filter(|d| !d.difference.changes_behaviour)
            {
                println!("  (no behaviour change) {d}");
            }
            println!("not checked offline: {not_checked}");
        }
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

    print!("{}", ui::section("Warnings", &plan.warnings, colour));
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use clap::Parser as _;
    use migration::flow::Step;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let example = example();
        let live = example.join("cilium-config.yaml");
        let mut argv = vec![
            "plan".to_owned(),
            "--inventory".into(),
            example.display().to_string(),
            "--live-config".into(),
            live.display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        Cli::parse_from(argv).args
    }

    fn example() -> PathBuf {
        upstream::project_root().join("examples/homelab")
    }

    #[test]
    fn plan_on_the_bundled_example_covers_every_section() {
        let plan = build(&args(&["--output", "json"])).expect("plan");
        assert!(plan.era.starts_with("template era"), "{}", plan.era);
        assert_eq!(plan.chart_version, "1.15.9");
        assert_eq!(plan.strategy, migration::journal::Strategy::Adopt);
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
        // The same journaled steps as the live run's adopt.
        let journaled: Vec<Step> = plan.steps.iter().filter_map(|s| s.journaled).collect();
        assert_eq!(journaled, migration::journal::Strategy::Adopt.steps());
        // Without --chart nothing is rendered, and the plan says so.
        assert!(
            matches!(&plan.gate, OfflineGate::Skipped { reason } if reason.contains("--chart")),
            "{:?}",
            plan.gate
        );
    }

    #[test]
    fn plan_with_the_released_chart_runs_the_gate_offline() {
        let Some(upstream) = upstream::Upstream::for_test("plan_with_the_released_chart") else {
            return;
        };
        let chart = upstream.chart("1.15.9").expect("the released 1.15.9 chart");
        let helm = upstream::project_root().join("target/tools/bin/helm3");
        assert!(
            helm.is_file(),
            "{} is missing: run `cargo xtask testbed build`",
            helm.display()
        );
        let plan = build(&args(&[
            "--chart",
            &chart.display().to_string(),
            "--helm",
            &helm.display().to_string(),
        ]))
        .expect("plan");
        match &plan.gate {
            OfflineGate::Ran {
                differences,
                blockers,
                ..
            } => {
                // The 1.15.9 render differs from Kubespray's ConfigMap in a few keys at least.
                assert!(!differences.is_empty(), "no comparison happened");
                // Every difference that changes behaviour is a blocker, and only those.
                let changing = differences
                    .iter()
                    .filter(|d| d.difference.changes_behaviour)
                    .count();
                assert_eq!(blockers.len(), changing, "{blockers:?}");
            }
            OfflineGate::Skipped { reason } => panic!("the gate was skipped: {reason}"),
        }
    }

    /// A secret-looking live key (carried in `extraConfig`) is never printed: not in the text
    /// plan, not in `--output json`.
    #[test]
    fn the_plan_never_prints_secret_looking_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = std::fs::read_to_string(example().join("cilium-config.yaml")).expect("live");
        let live = live.replacen("data:\n", "data:\n  kvstore-token: abc123secret\n", 1);
        let live_path = dir.path().join("cilium-config.yaml");
        std::fs::write(&live_path, live).expect("write live");
        let mut args = args(&[]);
        args.offline.live_config = Some(live_path);
        let plan = build(&args).expect("plan");
        let json = serde_json::to_string(&plan).expect("json");
        assert!(!json.contains("abc123secret"), "{json}");
        assert!(
            plan.values_yaml.contains("kvstore-token: \"<redacted>\""),
            "{}",
            plan.values_yaml
        );
    }

    /// The inventory diff's context lines never show a secret-looking variable.
    #[test]
    fn the_inventory_diff_hides_a_neighbouring_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inventory = dir.path().join("inventory");
        copy_tree(&example(), &inventory);
        let vars = inventory.join("group_vars/k8s_cluster/k8s-cluster.yml");
        let text = std::fs::read_to_string(&vars).expect("vars");
        let text = text.replacen(
            "kube_owner: kube\n",
            "kube_owner: kube\nkube_webhook_token: s3cr3t-t0ken\n",
            1,
        );
        std::fs::write(&vars, text).expect("write vars");
        let mut args = args(&[]);
        args.offline.inventory = inventory;
        let plan = build(&args).expect("plan");
        assert!(
            plan.inventory_diff.contains("+kube_owner: root")
                && plan
                    .inventory_diff
                    .contains(" kube_webhook_token: <redacted>")
                && !plan.inventory_diff.contains("s3cr3t"),
            "{}",
            plan.inventory_diff
        );
    }

    fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("dir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }

    #[test]
    fn a_missing_inventory_is_a_clear_error() {
        let mut args = args(&[]);
        args.offline.inventory = PathBuf::from("/nonexistent/inventory");
        let err = format!("{:#}", build(&args).expect_err("error"));
        assert!(err.contains("/nonexistent/inventory"), "{err}");
    }
}
