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
    for warning in &translation.warnings {
        eprintln!("warning: {warning}");
    }
    let values = &translation.values;
    match &args.write {
        // The file for helm holds the real values: private (0600), written atomically.
        Some(path) => {
            let text = if args.output.is_json() {
                values.to_json_string()?
            } else {
                values.to_yaml_with_provenance()?
            };
            kubespray_config::files::write_private_atomic(path, text.as_bytes())
                .with_context(|| format!("cannot write the values to {}", path.display()))?;
            eprintln!(
                "wrote values for the Cilium chart {} to {} ({} warnings)",
                translation.values.version,
                path.display(),
                translation.warnings.len()
            );
        }
        // A printout shows secret-looking values as <redacted>, and says so.
        None => {
            let (text, redacted) = printout(values, args.output.is_json())?;
            print!("{text}");
            if !redacted.is_empty() {
                eprintln!(
                    "warning: {} secret-looking value(s) shown as {} ({}); to write the real values for helm, pass --write FILE (created 0600)",
                    redacted.len(),
                    cilium_values::REDACTED,
                    redacted.join(", ")
                );
            }
        }
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

/// The values as printed: secret-looking values shown as `<redacted>`; returns the paths hidden.
fn printout(values: &cilium_values::Values, json: bool) -> anyhow::Result<(String, Vec<String>)> {
    Ok(if json {
        values.to_json_string_redacted()?
    } else {
        values.to_yaml_with_provenance_redacted()?
    })
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

    /// The homelab example with a secret-looking key in its live cilium-config, carried in
    /// `extraConfig`.
    fn example_with_a_token(dir: &std::path::Path) -> Vec<String> {
        let example = upstream::project_root().join("examples/homelab");
        let live = std::fs::read_to_string(example.join("cilium-config.yaml")).expect("live");
        let live = live.replacen("data:\n", "data:\n  kvstore-token: abc123secret\n", 1);
        let live_path = dir.join("cilium-config.yaml");
        std::fs::write(&live_path, live).expect("write live");
        vec![
            "values".to_owned(),
            "--inventory".into(),
            example.display().to_string(),
            "--live-config".into(),
            live_path.display().to_string(),
        ]
    }

    #[test]
    fn printed_values_hide_secrets_in_text_and_json() {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = Cli::parse_from(example_with_a_token(dir.path())).args;
        let options = args.offline.options().expect("options");
        let inventory = Inventory::load(&options.inventory).expect("inventory");
        let (translation, _) =
            migration::flow::offline_values(&options, &inventory).expect("values");
        for json in [false, true] {
            let (text, hidden) = printout(&translation.values, json).expect("printout");
            assert_eq!(hidden, ["extraConfig.kvstore-token"], "{text}");
            assert!(
                !text.contains("abc123secret") && text.contains(cilium_values::REDACTED),
                "{text}"
            );
        }
    }

    #[test]
    fn written_values_keep_secrets_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mut argv = example_with_a_token(dir.path());
        for output in ["text", "json"] {
            let file = dir.path().join(format!("values.{output}"));
            // A file already there, readable by everyone, becomes private.
            std::fs::write(&file, "old").expect("old file");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            argv.truncate(5);
            argv.extend([
                "--output".into(),
                output.into(),
                "--write".into(),
                file.display().to_string(),
            ]);
            run(Cli::parse_from(&argv).args).expect("values");
            let text = std::fs::read_to_string(&file).expect("values written");
            assert!(
                text.contains("abc123secret"),
                "helm needs the real value: {text}"
            );
            assert_eq!(
                std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
                0o600,
                "{output}"
            );
        }
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
