//! `cilium-migrate rollback`: return the cluster and the inventory to a migration's backup
//! (`migration::flow::rollback`). Without `--apply` it says what it would do.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use migration::flow::{self, Plan, RollbackOptions, RollbackOutcome};

use crate::ui;

#[derive(clap::Args)]
pub struct Args {
    /// The bundle directory of the migration to undo.
    #[arg(long, value_name = "DIR")]
    bundle: PathBuf,
    /// Kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary [default: helm on PATH].
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// Change the cluster (without it, only say what would be done).
    #[arg(long)]
    apply: bool,
    /// `text` for people, `json` for machines.
    #[command(flatten)]
    output: ui::OutputArg,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime
        .block_on(roll_back(&args))
        .context("rollback stopped")?;
    match args.output.output {
        ui::Output::Json => println!("{}", serde_json::to_string_pretty(&outcome)?),
        ui::Output::Text => print_text(&outcome),
    }
    if outcome.applied && !outcome.differences.is_empty() {
        bail!(
            "the cluster still differs from the backup in {} places (listed above)",
            outcome.differences.len()
        );
    }
    Ok(())
}

/// The rollback; with `--apply` under the cluster's run lock and the bundle's lock, on the one
/// cluster the kubeconfig's context named when it started.
async fn roll_back(args: &Args) -> anyhow::Result<RollbackOutcome> {
    let mut options = RollbackOptions {
        bundle: args.bundle.clone(),
        kubeconfig: args.kubeconfig.clone(),
        helm: args.helm.clone(),
        apply: args.apply,
    };
    let mut progress = ui::StderrProgress::new(|_: &Plan| false);
    if !args.apply {
        return Ok(flow::rollback(&options, &mut progress).await?);
    }
    // The Lease is taken on the cluster the rollback then runs on: the flow reads the pinned
    // single-context copy, not the kubeconfig another terminal may switch meanwhile.
    let connection = flow::Connection::open(args.kubeconfig.as_deref()).await?;
    if let Some(pinned) = &connection.kubeconfig {
        options.kubeconfig = Some(pinned.path().to_owned());
    }
    let lease = crate::cluster::lock(&connection.client, "rollback --apply").await?;
    let result = async {
        let _bundle = if args.bundle.is_dir() {
            Some(migration::lock::BundleLock::acquire(&args.bundle)?)
        } else {
            None
        };
        Ok(flow::rollback(&options, &mut progress).await?)
    }
    .await;
    crate::cluster::unlock(lease, result).await
}

fn print_text(outcome: &RollbackOutcome) {
    let colour = std::io::stdout().is_terminal();
    println!(
        "{}",
        ui::heading(
            if outcome.applied {
                "Rollback"
            } else {
                "Rollback plan (nothing changed; run with --apply)"
            },
            colour
        )
    );
    println!("release:   {}", outcome.release);
    if !outcome.applied {
        println!(
            "objects:   the hand-over objects are put back as backed up; objects the hand-over created are deleted"
        );
        println!("inventory: the backed-up files are written back");
        return;
    }
    let rows: Vec<Vec<String>> = [
        ("deleted (created by the hand-over)", &outcome.removed),
        ("put back as backed up", &outcome.replaced),
        ("re-created", &outcome.recreated),
    ]
    .iter()
    .flat_map(|(action, list)| list.iter().map(|o| vec![(*action).to_owned(), o.clone()]))
    .collect();
    print!("{}", ui::table(&["ACTION", "OBJECT"], &rows));
    println!("already as backed up: {} objects", outcome.unchanged);
    for path in &outcome.inventory {
        println!("inventory restored: {}", path.display());
    }
    if outcome.differences.is_empty() {
        println!("the cluster matches the backup object by object");
    } else {
        println!("\n{}", ui::heading("Still different", colour));
        for d in &outcome.differences {
            println!("- {d}");
        }
    }
}
