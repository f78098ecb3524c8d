//! `cilium-migrate values`: Helm values for the Cilium chart, from the inventory and the live
//! cilium-config, translated as `plan` and `migrate` translate them
//! ([`migration::flow::offline_values`]); with `--chart` the config gate runs offline too.

use std::path::PathBuf;

use anyhow::{Context, bail};
use kubespray_config::Inventory;
use migration::flow::OfflineGate;

use crate::offline::OfflineArgs;
use crate::output::OutputArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    offline: OfflineArgs,
    /// `text`: YAML with a comment on each value saying where it came from; `json`: the plain
    /// values as one JSON document (for machines, and `helm -f` reads it too).
    #[command(flatten)]
    output: OutputArg,
    /// Write the values to this file instead of printing them.
    #[arg(long, value_name = "FILE")]
    write: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let options = args.offline.options()?;
    let inventory = Inventory::load(&options.inventory)?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    let (translation, _) = migration::flow::offline_values(&options, &inventory)?;
    let text = if args.output.is_json() {
        translation.values.to_json_string()?
    } else {
        translation.values.to_yaml_with_provenance()?
    };
    for warning in &translation.warnings {
        eprintln!("warning: {warning}");
    }
    match &args.write {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write the values to {}", path.display()))?;
            eprintln!(
                "wrote values for the Cilium chart {} to {} ({} warnings)",
                translation.values.version,
                path.display(),
                translation.warnings.len()
            );
        }
        None => print!("{text}"),
    }
    if options.chart.is_some() {
        match migration::flow::offline_gate(&options, &translation)? {
            OfflineGate::Skipped { reason } => eprintln!("gate: skipped: {reason}"),
            OfflineGate::Ran {
                chart, blockers, ..
            } if blockers.is_empty() => {
                eprintln!("gate: ok: chart {chart} renders the live cilium-config")
            }
            OfflineGate::Ran {
                chart, blockers, ..
            } => {
                for blocker in &blockers {
                    eprintln!("gate: BLOCKS: {blocker}");
                }
                bail!(
                    "the chart {chart} with these values changes {} cilium-config key(s) (above)",
                    blockers.len()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn argv(extra: &[&str]) -> Vec<String> {
        let example = upstream::project_root().join("examples/homelab");
        let mut argv = vec![
            "values".to_owned(),
            "--inventory".into(),
            example.display().to_string(),
            "--live-config".into(),
            example.join("cilium-config.yaml").display().to_string(),
        ];
        argv.extend(extra.iter().map(|s| (*s).to_owned()));
        argv
    }

    #[test]
    fn json_output_written_to_a_file_is_the_plain_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("values.json");
        let file_arg = file.display().to_string();
        let cli = Cli::parse_from(argv(&["--output", "json", "--write", &file_arg]));
        run(cli.args).expect("values");
        let text = std::fs::read_to_string(&file).expect("values written");
        let values: serde_json::Value = serde_json::from_str(&text).expect("plain JSON");
        assert!(values.is_object(), "{text}");
        assert!(
            !text.contains('#'),
            "no provenance comments in JSON: {text}"
        );
    }

    #[test]
    fn text_output_carries_provenance_and_a_file_name_is_not_an_output_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("values.yaml");
        let file_arg = file.display().to_string();
        run(Cli::parse_from(argv(&["--write", &file_arg])).args).expect("values");
        let text = std::fs::read_to_string(&file).expect("values written");
        assert!(text.contains("live cilium-config"), "{text}");
        // The old `--output FILE` spelling is refused rather than read as a format.
        assert!(Cli::try_parse_from(argv(&["--output", &file_arg])).is_err());
    }
}
