//! `cilium-migrate upgrade [rollback]`: upgrade the Cilium release one minor at a time, with the
//! gate at every hop (the library `cilium_upgrade`, with a terminal around it).
//!
//! Read-only by default: the plan, hop by hop. `--apply` needs each behaviour change accepted by
//! name (`--accept KEY`), or a reviewed plan (`--output json > plan.json`, then `--plan plan.json
//! --apply`). Progress goes to stderr while it waits.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cilium_upgrade::live::{self, Acceptance, ApplyOptions, Cluster, Progress};
use cilium_upgrade::{ChartStore, Target, UpgradePlan};

use crate::output::OutputArg;
use crate::ui;
use crate::verify::parse_duration;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Roll the release back instead.
    #[command(subcommand)]
    action: Option<Action>,
    /// The version to reach: 1.17 (its latest patch) or 1.17.18 [default: the newest chart
    /// the gate supports].
    #[arg(long, value_name = "X.Y[.Z]")]
    to: Option<String>,
    /// A directory of cilium-X.Y.Z.tgz chart archives (air-gapped) [default: the Helm
    /// repository cilium/cilium].
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Accept a behaviour change by the key the plan shows (repeatable); VERSION=KEY accepts
    /// it in one hop only.
    #[arg(long = "accept", value_name = "KEY")]
    accept: Vec<String>,
    /// Apply this reviewed plan (`upgrade --output json > FILE`): exactly its hops, accepting
    /// exactly the changes it lists; refused when the cluster, release or charts moved.
    #[arg(long, value_name = "FILE", requires = "apply")]
    plan: Option<PathBuf>,
    /// Change the cluster (without it, only the plan is shown).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    common: Common,
    /// How long each hop may take to roll out and verify.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    verify_timeout: Duration,
    /// Helm's --timeout for each upgrade.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    #[command(flatten)]
    output: OutputArg,
}

#[derive(clap::Args)]
struct Common {
    /// Kubeconfig of the cluster (default: $KUBECONFIG, ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The helm binary [default: helm on PATH].
    #[arg(long, value_name = "PATH")]
    helm: Option<PathBuf>,
    /// The journal, values files and backups [default: upgrade-<kube-system UID> in
    /// $XDG_STATE_HOME/cilium-migrate (~/.local/state/cilium-migrate)].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A verify check that does not stop the run (repeatable; reported anyway).
    #[arg(long = "ignore-check", value_name = "NAME")]
    ignore_checks: Vec<String>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Return the release to the revision before the upgrade (or before one hop) with `helm
    /// rollback`, then verify.
    Rollback(RollbackArgs),
}

#[derive(clap::Args)]
struct RollbackArgs {
    /// The revision to return to [default: the one before the journaled upgrade path].
    #[arg(long, value_name = "N", conflicts_with = "hop")]
    to_revision: Option<u32>,
    /// Return to the revision before the hop to this version.
    #[arg(long, value_name = "X.Y.Z")]
    hop: Option<String>,
    /// Change the cluster (without it, only the target revision is shown).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    common: Common,
    /// How long the rollout and verification may take.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    verify_timeout: Duration,
    /// Helm's --timeout for the rollback.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10m")]
    helm_timeout: Duration,
    #[command(flatten)]
    output: OutputArg,
}

/// Progress lines on stderr, with the time since the start.
struct StderrNotes(Instant);

impl Progress for StderrNotes {
    fn note(&mut self, line: &str) {
        eprintln!("[{:>7.1}s] {line}", self.0.elapsed().as_secs_f64());
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match args.action {
        Some(Action::Rollback(rollback)) => runtime.block_on(run_rollback(rollback)),
        None => runtime.block_on(run_upgrade(args)),
    }
}

async fn connect(
    common: &Common,
) -> anyhow::Result<(migration::flow::Connection, helm::Helm, PathBuf)> {
    let connection = migration::flow::Connection::open(common.kubeconfig.as_deref()).await?;
    let helm = connection.helm(common.helm.as_deref())?;
    let state_dir = match &common.state_dir {
        Some(dir) => dir.clone(),
        None => {
            let identity = migration::identity::ClusterIdentity::read(
                &connection.client,
                &connection.api_server,
            )
            .await?;
            migration::flow::state_dir()
                .context("no state directory: set HOME or XDG_STATE_HOME, or pass --state-dir DIR")?
                .join(format!("upgrade-{}", identity.kube_system_uid))
        }
    };
    Ok((connection, helm, state_dir))
}

fn chart_store(charts: Option<&Path>, state_dir: &Path) -> ChartStore {
    match charts {
        Some(dir) => ChartStore::Directory(dir.to_owned()),
        None => ChartStore::Repository {
            cache: state_dir.join("charts"),
        },
    }
}

async fn run_upgrade(args: Args) -> anyhow::Result<()> {
    let target = args.to.as_deref().map(str::parse::<Target>).transpose()?;
    let (connection, helm, state_dir) = connect(&args.common).await?;
    let cluster = Cluster {
        client: &connection.client,
        api_server: &connection.api_server,
        helm: &helm,
    };
    let store = chart_store(args.charts.as_deref(), &state_dir);
    let (plan, acceptance) = match &args.plan {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the plan {}", file.display()))?;
            let plan: UpgradePlan = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not an upgrade plan; write one with `cilium-migrate upgrade --output json > FILE`",
                    file.display()
                )
            })?;
            if let Some(target) = target
                && !matches_target(&plan.target, target)
            {
                bail!(
                    "--to {target} but the plan {} goes to {}; pass the plan's target or plan again",
                    file.display(),
                    plan.target
                );
            }
            (plan, Acceptance::Reviewed(file.clone()))
        }
        None => {
            let start = live::read_start(&cluster).await?;
            let capabilities = live::capabilities(&connection.client).await?;
            // The renders' values files: the state directory is private (0700 parents, 0600 files).
            let plan = live::plan_upgrade(
                &start,
                target,
                &store,
                &helm,
                Some(&capabilities),
                &state_dir.join("renders"),
            )?;
            (plan, Acceptance::Keys(args.accept.clone()))
        }
    };
    if !args.apply {
        print!(
            "{}",
            plan_printout(&plan, &args.accept, args.output.is_json())?
        );
        return Ok(());
    }
    if plan.hops.is_empty() {
        eprintln!(
            "the release already runs {}: nothing to upgrade",
            plan.target
        );
        return Ok(());
    }
    let options = ApplyOptions {
        state_dir: state_dir.clone(),
        store,
        verify_timeout: args.verify_timeout,
        helm_timeout: args.helm_timeout,
        page_size: 500,
        ignore_checks: args.common.ignore_checks.clone(),
    };
    let journal = state_dir.join(cilium_upgrade::journal::JOURNAL_FILE);
    let applied = live::apply(
        &cluster,
        &plan,
        &acceptance,
        &options,
        &mut StderrNotes(Instant::now()),
    )
    .await
    .with_context(|| {
        format!(
            "the upgrade stopped (journal {}): run the same command again to resume, or return with `cilium-migrate upgrade rollback --apply`",
            journal.display()
        )
    })?;
    if args.output.is_json() {
        println!("{}", serde_json::to_string_pretty(&applied.journal)?);
    } else {
        let rows: Vec<Vec<String>> = applied
            .journal
            .hops
            .iter()
            .map(|h| {
                vec![
                    h.version.clone(),
                    h.revision_before.to_string(),
                    h.revision.map_or_else(|| "-".to_owned(), |r| r.to_string()),
                    format!("{:?}", h.state).to_lowercase(),
                ]
            })
            .collect();
        print!(
            "{}",
            ui::table(&["HOP", "REVISION BEFORE", "REVISION", "STATE"], &rows)
        );
        println!(
            "upgraded {} -> {}; journal {}; back with `cilium-migrate upgrade rollback --apply`",
            applied.journal.start_version,
            plan.target,
            applied.journal_path.display()
        );
    }
    Ok(())
}

fn matches_target(planned: &str, target: Target) -> bool {
    planned.parse::<Target>().is_ok_and(|planned| {
        planned.minor == target.minor && target.patch.is_none_or(|p| Some(p) == planned.patch)
    })
}

/// The plan as printed: `--output json` (what `--plan` reads back) or text. Neither holds a
/// secret: the plan's values are redacted when it is made.
fn plan_printout(plan: &UpgradePlan, accepted: &[String], json: bool) -> anyhow::Result<String> {
    Ok(if json {
        format!("{}\n", serde_json::to_string_pretty(plan)?)
    } else {
        plan_text(plan, accepted)
    })
}

fn plan_text(plan: &UpgradePlan, accepted: &[String]) -> String {
    let mut out = ui::heading(
        &format!(
            "Upgrade {}/{} {} -> {} (revision {})",
            plan.release.namespace,
            plan.release.name,
            plan.release.version,
            plan.target,
            plan.release.revision
        ),
        false,
    );
    out.push('\n');
    let path: Vec<&str> = std::iter::once(plan.release.version.as_str())
        .chain(plan.hops.iter().map(|h| h.version.as_str()))
        .collect();
    out.push_str(&format!("path: {}\n", path.join(" -> ")));
    out.push_str(&format!(
        "upgradeCompatibility: {} ({})\n",
        plan.upgrade_compatibility, plan.upgrade_compatibility_origin
    ));
    if plan.hops.is_empty() {
        out.push_str("nothing to do: the release runs the target\n");
        return out;
    }
    for hop in &plan.hops {
        out.push('\n');
        out.push_str(&ui::heading(
            &format!(
                "Hop {} -> {} ({}, sha256 {})",
                hop.from, hop.version, hop.chart.file, hop.chart.sha256
            ),
            false,
        ));
        out.push('\n');
        if hop.preflight {
            out.push_str("preflight: cilium-preflight release, its DaemonSet ready on every node, then removed\n");
        }
        // The values themselves are in --output json; the hash is what --plan --apply checks.
        out.push_str(&format!(
            "values file: sha256 {}",
            if hop.values_sha256.is_empty() {
                "(none: a plan of an older format)"
            } else {
                &hop.values_sha256
            }
        ));
        if !hop.values_redacted.is_empty() {
            out.push_str(&format!(
                " (secret-looking values shown as {}: {})",
                cilium_values::REDACTED,
                hop.values_redacted.join(", ")
            ));
        }
        out.push('\n');
        for t in &hop.translated {
            out.push_str(&format!(
                "value {} = {} -> {} = {}: {}\n",
                t.path, t.before, t.to_path, t.after, t.why
            ));
        }
        if let Some(gateway) = &hop.gateway_api {
            out.push_str(&format!(
                "Gateway API CRDs: bundle {} ({})\n",
                gateway.bundle,
                gateway.crds.join(", ")
            ));
        }
        let same = hop.config.iter().filter(|c| !c.changes_behaviour).count();
        let explained = hop.workloads.iter().filter(|w| !w.blocks).count();
        out.push_str(&format!(
            "same behaviour: {same} cilium-config difference(s), {explained} explained workload difference(s) (--output json lists them)\n"
        ));
        let lines: Vec<String> = hop
            .changes
            .iter()
            .map(|c| {
                let mark = if accepted.iter().any(|a| {
                    a == &c.key
                        || a.split_once('=')
                            .is_some_and(|(v, k)| v == hop.version && k == c.key)
                }) {
                    "accepted "
                } else {
                    ""
                };
                format!("{mark}{c}")
            })
            .collect();
        out.push_str(&ui::section("Behaviour changes", &lines, false));
    }
    let unaccepted = plan.unaccepted(accepted);
    out.push('\n');
    if unaccepted.is_empty() {
        out.push_str("every behaviour change is accepted: run again with --apply\n");
    } else {
        out.push_str(&format!(
            "{} behaviour change(s) to accept before --apply: --accept KEY for each (VERSION=KEY for one hop), or review `--output json > plan.json` and apply it with --plan plan.json --apply\n",
            unaccepted.len()
        ));
    }
    out
}

async fn run_rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let (connection, helm, state_dir) = connect(&args.common).await?;
    let target = live::rollback_target(&helm, &state_dir, args.to_revision, args.hop.as_deref())?;
    if !args.apply {
        if args.output.is_json() {
            println!("{}", serde_json::to_string_pretty(&target)?);
        } else {
            println!(
                "would roll release cilium back from revision {} to revision {} ({}): {}; run again with --apply",
                target.current, target.revision, target.chart, target.why
            );
        }
        return Ok(());
    }
    let cluster = Cluster {
        client: &connection.client,
        api_server: &connection.api_server,
        helm: &helm,
    };
    let report = live::rollback(
        &cluster,
        &target,
        &state_dir,
        args.verify_timeout,
        args.helm_timeout,
        &args.common.ignore_checks,
        &mut StderrNotes(Instant::now()),
    )
    .await?;
    if args.output.is_json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "rolledBackTo": target.revision,
                "chart": target.chart,
                "report": report,
            }))?
        );
    } else {
        print!("{}", report.table());
        println!(
            "rolled back to revision {} ({})",
            target.revision, target.chart
        );
    }
    if !live::healthy(&report, &args.common.ignore_checks) {
        bail!(
            "the release is back at revision {} but does not verify yet; see the checks above",
            target.revision
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_plan_shows_the_path_each_hop_and_what_is_left_to_accept() {
        let plan: UpgradePlan = serde_json::from_value(serde_json::json!({
            "format": 1, "cluster": null,
            "release": {"name": "cilium", "namespace": "kube-system", "revision": 3, "version": "1.15.9"},
            "target": "1.16.19", "upgrade_compatibility": "1.15",
            "upgrade_compatibility_origin": "the release's values",
            "hops": [{
                "from": "1.15.9", "version": "1.16.19",
                "chart": {"file": "cilium-1.16.19.tgz", "sha256": "abc"}, "values": {},
                "translated": [{"path": "kubeProxyReplacement", "before": "strict",
                    "to_path": "kubeProxyReplacement", "after": true, "why": "strict is true"}],
                "dropped": [], "config": [], "workloads": [], "objects": [],
                "gateway_api": null, "preflight": true,
                "changes": [
                    {"key": "config:a", "what": "changes a"},
                    {"key": "object:Namespace/cilium-secrets", "what": "adds it"}
                ]
            }]
        }))
        .expect("a plan");
        let text = plan_text(&plan, &["config:a".to_owned()]);
        assert!(text.contains("path: 1.15.9 -> 1.16.19\n"), "{text}");
        assert!(
            text.contains("value kubeProxyReplacement = \"strict\" -> kubeProxyReplacement = true"),
            "{text}"
        );
        assert!(text.contains("- accepted config:a: changes a\n"), "{text}");
        assert!(
            text.contains("- object:Namespace/cilium-secrets: adds it\n"),
            "{text}"
        );
        assert!(
            text.contains("1 behaviour change(s) to accept before --apply"),
            "{text}"
        );
        let text = plan_text(
            &plan,
            &[
                "config:a".to_owned(),
                "1.16.19=object:Namespace/cilium-secrets".to_owned(),
            ],
        );
        assert!(
            text.contains("every behaviour change is accepted"),
            "{text}"
        );
        assert!(
            text.contains("values file: sha256 (none: a plan of an older format)\n"),
            "a plan without the hash shows none: {text}"
        );
        assert!(matches_target("1.17.18", "1.17".parse().expect("target")));
        assert!(!matches_target(
            "1.17.18",
            "1.17.3".parse().expect("target")
        ));
    }

    #[test]
    fn a_plan_of_a_release_holding_keys_prints_them_redacted_in_text_and_json() {
        let Some(upstream) = upstream::Upstream::for_test(
            "upgrade::a_plan_of_a_release_holding_keys_prints_them_redacted_in_text_and_json",
        ) else {
            return;
        };
        let helm = upstream::project_root().join("target/tools/bin/helm3");
        assert!(
            helm.is_file(),
            "{} is missing: run `cargo xtask testbed build`",
            helm.display()
        );
        let helm = helm::Helm::locate(Some(&helm)).expect("helm");
        let scratch = tempfile::tempdir().expect("tempdir");
        let server_key = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCnNlcnZlci1rZXk=";
        let token = "t0ken-for-the-kvstore";
        // A taken-over release: Hubble's server key, and a token under a key 1.15.19 does not
        // read (left out, so its value is in a behaviour change).
        let values = serde_json::json!({
            "k8sServiceHost": "10.0.0.10",
            "k8sServicePort": 6443,
            "hubble": {"tls": {"auto": {"enabled": false},
                "server": {"cert": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t", "key": server_key}}},
            "etcdStore": {"token": token},
        });
        let archive = |v: &str| {
            cilium_upgrade::ChartArchive::read(&upstream.chart(v).expect("chart")).expect("read")
        };
        let (from, to) = (archive("1.15.9"), archive("1.15.19"));
        let manifest = cilium_upgrade::plan::render(&helm, &from, &values, None, scratch.path())
            .expect("render");
        let (config, workloads) =
            cilium_upgrade::plan::config_and_workloads(&manifest, &from.path).expect("config");
        let start = cilium_upgrade::Start {
            cluster: None,
            release: "cilium".into(),
            namespace: "kube-system".into(),
            revision: 2,
            version: from.version.clone(),
            values,
            config,
            workloads,
            objects: cilium_upgrade::plan::object_names(&manifest),
            gateway_api_crds: Vec::new(),
        };
        let plan = cilium_upgrade::plan(&start, &[to], &helm, None, scratch.path()).expect("plan");
        for json in [false, true] {
            let shown = plan_printout(&plan, &[], json).expect("printout");
            for secret in [server_key, token] {
                assert!(!shown.contains(secret), "{secret} printed:\n{shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(shown.contains(&plan.hops[0].values_sha256), "{shown}");
        }
        let text = plan_text(&plan, &[]);
        assert!(
            text.contains("secret-looking values shown as <redacted>: ")
                && text.contains("hubble.tls.server.key"),
            "{text}"
        );
        assert!(
            text.contains("value:etcdStore: etcdStore = {\"token\":\"<redacted>\"} is left out"),
            "{text}"
        );
    }
}
