//! `enable`: plan (pure) and run (cluster) the Helm upgrade that turns Gateway API on, with the
//! CRDs, an operator restart, the wait for GatewayClass `cilium`, verification and rollback.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use helm::{ChartSource, Helm, OnFailure, Ownership, RollbackRequest, UpgradeInstall, Wait};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};
use verify::rollout::{self, Rollout, RolloutError, daemon_set_rollout, deployment_rollout};

use crate::Error;
use crate::bundle::Requirement;
use crate::checks::{Remedy, Report, Status, check, check_for};
use crate::collect::{Target, collect, crd_facts_from_manifest};
use crate::inventory::InventoryFacts;
use crate::journal::{Journal, Outcome, write_private};
use crate::state::{ClusterState, CrdFacts};

/// The field manager of everything `enable` writes itself (CRDs, the restart annotation).
pub const FIELD_MANAGER: &str = "cilium-migrate-gateway-api";
/// The operator's Deployment.
pub const OPERATOR_DEPLOYMENT: &str = "cilium-operator";
/// The agents' DaemonSet.
pub const AGENT_DAEMON_SET: &str = "cilium";

/// One value `enable` changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueChange {
    /// Dotted path (`gatewayAPI.enabled`).
    pub path: String,
    /// The user value before (`None`: not set, the chart default applied).
    pub before: Option<Value>,
    /// The value written.
    pub after: Value,
}

/// What `enable` would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnablePlan {
    /// `check` as it will be after the supplied CRDs are applied.
    pub report: Report,
    /// The release's user values plus the changes: the whole values file of the upgrade.
    pub values: Value,
    /// The changed values.
    pub changes: Vec<ValueChange>,
    /// The CRD manifests to apply first (from `--install-crds`).
    #[serde(skip)]
    pub crds: Vec<Value>,
    /// Their names.
    pub crd_names: Vec<String>,
    /// Supplied CRDs left out, each with why: a second manifest of a CRD also supplied in the
    /// channel Cilium needs here (the v1.6 standard TLSRoute beside the experimental one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub crds_left_out: Vec<String>,
}

/// Reads the Gateway API CRDs from bundle files (`standard-install.yaml`, single CRD files).
/// Other objects in them are skipped; a file without any CRD of the group is an error.
pub fn read_crd_files(files: &[PathBuf]) -> Result<Vec<Value>, Error> {
    let mut crds = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        let documents: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| Error::CrdFile {
                path: path.clone(),
                problem: format!("not YAML: {e}"),
            })?;
        let before = crds.len();
        crds.extend(
            documents
                .into_iter()
                .filter(|d| crd_facts_from_manifest(d).is_some()),
        );
        if crds.len() == before {
            return Err(Error::CrdFile {
                path: path.clone(),
                problem: "holds no gateway.networking.k8s.io CustomResourceDefinition; pass the \
                          bundle's standard-install.yaml / experimental-install.yaml or a \
                          config/crd file from the release the check names"
                    .to_owned(),
            });
        }
    }
    Ok(crds)
}

/// The state as it will be once `crds` are applied (a supplied CRD replaces the live one; the
/// API server keeps its `status.storedVersions`).
pub fn with_supplied_crds(state: &ClusterState, crds: &[Value]) -> ClusterState {
    let mut state = state.clone();
    for facts in crds.iter().filter_map(crd_facts_from_manifest) {
        let stored_versions = state
            .crd(&facts.plural)
            .map(|live| live.stored_versions.clone())
            .unwrap_or_default();
        let facts = CrdFacts {
            created_unix: Some(i64::MAX),
            stored_versions,
            ..facts
        };
        state.crds.retain(|c| c.plural != facts.plural);
        state.crds.push(facts);
    }
    state
}

/// One manifest per CRD: where several are supplied for one CRD (a bundle's standard TLSRoute
/// and the experimental TLSRoute file), the last in the channel `requirement` needs for it,
/// else the last one; applying both would leave whichever came last, and from v1.5 the standard
/// install's `safe-upgrades` policy refuses the experimental one after the standard one.
/// Returns the manifests to apply, in their order, and one line per manifest left out.
fn one_per_crd(crds: Vec<Value>, requirement: Option<&Requirement>) -> (Vec<Value>, Vec<String>) {
    let facts: Vec<Option<CrdFacts>> = crds.iter().map(crd_facts_from_manifest).collect();
    let channel = |i: usize| facts[i].as_ref().and_then(|f| f.channel.as_deref());
    let needed = |plural: &str| requirement?.crds.iter().find(|c| c.plural == plural);
    let wanted = |plural: &str| needed(plural).map(|n| n.channel.as_str());
    let mut chosen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, plural) in facts
        .iter()
        .enumerate()
        .filter_map(|(i, f)| Some((i, f.as_ref()?.plural.as_str())))
    {
        let later_wins = chosen
            .get(plural)
            .is_none_or(|&j| channel(i) == wanted(plural) || channel(j) != wanted(plural));
        if later_wins {
            chosen.insert(plural, i);
        }
    }
    let describe = |i: usize| {
        let f = facts[i].as_ref();
        format!(
            "{} {}",
            f.and_then(|f| f.bundle_version.as_deref())
                .unwrap_or("unannotated"),
            channel(i).unwrap_or("")
        )
        .trim_end()
        .to_owned()
    };
    let mut left_out = Vec::new();
    let mut kept = Vec::new();
    for (i, crd) in crds.into_iter().enumerate() {
        let Some(plural) = facts[i].as_ref().map(|f| f.plural.as_str()) else {
            kept.push(crd);
            continue;
        };
        let keep = chosen.get(plural).copied().unwrap_or(i);
        if keep == i {
            kept.push(crd);
            continue;
        }
        let why = match (needed(plural), requirement) {
            (Some(n), Some(r)) if channel(keep) == Some(n.channel.as_str()) => format!(
                ", the channel Cilium 1.{} needs here{}",
                r.cilium_minor,
                if n.keep_served.is_empty() {
                    String::new()
                } else {
                    format!(" (it keeps {} served)", n.keep_served.join(", "))
                }
            ),
            _ => " (the last one)".to_owned(),
        };
        left_out.push(format!(
            "{} ({}): left out for the {} one also supplied{why}",
            crate::bundle::crd_name(plural),
            describe(i),
            describe(keep)
        ));
    }
    (kept, left_out)
}

/// Plans `enable` on `state` with the `crds` to apply first: refuses while an item fails that
/// neither the CRDs nor a values change fix.
pub fn plan(
    state: &ClusterState,
    inventory: Option<&InventoryFacts>,
    crds: Vec<Value>,
) -> Result<EnablePlan, Error> {
    let requirement = state
        .cilium_version
        .as_deref()
        .and_then(|v| cilium_values::ChartVersion::parse(v).ok())
        .and_then(|v| Requirement::for_cluster(v.minor, &state.crds));
    let (crds, crds_left_out) = one_per_crd(crds, requirement.as_ref());
    let after_crds = with_supplied_crds(state, &crds);
    // Judged against what the cluster uses before the CRDs change (TLSRoute v1alpha2).
    let report = check_for(&after_crds, inventory, &state.crds);
    let mut refusals = Vec::new();
    let mut patches = vec![json!({ "gatewayAPI": { "enabled": true } })];
    for item in report.failures() {
        match &item.remedy {
            Remedy::Values { values } => patches.push(values.clone()),
            Remedy::InstallCrds => refusals.push(format!(
                "{}: {} (fix: {}; then pass the downloaded file with --install-crds FILE)",
                item.name,
                item.detail,
                item.fix.as_deref().unwrap_or("install the bundle")
            )),
            Remedy::Manual => refusals.push(format!(
                "{}: {} (fix: {})",
                item.name,
                item.detail,
                item.fix.as_deref().unwrap_or("see check")
            )),
        }
    }
    if !refusals.is_empty() {
        return Err(Error::Refused { items: refusals });
    }
    let release = state.release.as_ref().ok_or_else(|| Error::Refused {
        items: vec!["Helm release: none".to_owned()],
    })?;
    let mut values = match &release.values {
        Value::Object(_) => release.values.clone(),
        _ => json!({}),
    };
    let mut changes = Vec::new();
    for patch in &patches {
        merge(&mut values, patch, "", &release.values, &mut changes);
    }
    let crd_names = crds
        .iter()
        .filter_map(|c| c.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Ok(EnablePlan {
        report,
        values,
        changes,
        crds,
        crd_names,
        crds_left_out,
    })
}

/// Deep-merges `patch` into `target`, recording each leaf that changes.
fn merge(
    target: &mut Value,
    patch: &Value,
    prefix: &str,
    original: &Value,
    changes: &mut Vec<ValueChange>,
) {
    let Value::Object(entries) = patch else {
        return;
    };
    for (key, value) in entries {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if !target.is_object() {
            *target = json!({});
        }
        let Value::Object(map) = target else {
            return;
        };
        if value.is_object() {
            let child = map.entry(key.clone()).or_insert_with(|| json!({}));
            merge(child, value, &path, original, changes);
        } else if map.get(key) != Some(value) {
            let before = path.split('.').try_fold(original, |v, k| v.get(k)).cloned();
            map.insert(key.clone(), value.clone());
            changes.retain(|c| c.path != path);
            changes.push(ValueChange {
                path,
                before,
                after: value.clone(),
            });
        }
    }
}

/// How `enable` waits for GatewayClass `cilium` to be Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptWait {
    /// Wait up to this long; not Accepted by then counts as unhealthy (rollback).
    Within(Duration),
    /// Do not wait: for clusters where nothing runs the operator (the testbed), or when the
    /// operator's acceptance is checked separately. The rest of the verification still runs.
    Skip,
}

/// How to run `enable`.
#[derive(Debug, Clone)]
pub struct EnableOptions {
    /// The installation.
    pub target: Target,
    /// The chart to upgrade with (at the release's chart version).
    pub chart: ChartSource,
    /// Gateway API CRD files to apply first (`--install-crds`).
    pub crd_files: Vec<PathBuf>,
    /// The journal file.
    pub journal: PathBuf,
    /// Helm's `--timeout` for the upgrade and the rollback.
    pub helm_timeout: Duration,
    /// How long the CRDs may take to be established and the operator to roll out.
    pub rollout_timeout: Duration,
    /// The GatewayClass wait.
    pub accept: AcceptWait,
    /// The inventory's guards, when given.
    pub inventory: Option<InventoryFacts>,
    /// Restart the agents (DaemonSet `cilium`) once the GatewayClass is accepted: they read
    /// `enable-envoy-config` only at start (Cilium's documented procedure restarts them).
    pub restart_agents: bool,
}

/// What a successful `enable` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enabled {
    /// The revision before.
    pub previous_revision: u32,
    /// The revision with Gateway API on.
    pub enabled_revision: u32,
    /// Why the operator was restarted (`None`: it was not).
    pub operator_restart: Option<String>,
    /// Whether the agents were restarted.
    pub agents_restarted: bool,
    /// `check` on the cluster afterwards.
    pub report: Report,
}

/// Progress lines for the operator.
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

/// Runs `enable --apply`: checks and plans, applies the CRDs, upgrades the release, restarts the
/// operator when needed, waits for GatewayClass `cilium`, verifies, and rolls back to the
/// previous revision when it does not become healthy. The journal records each step.
pub async fn enable(
    client: &kube::Client,
    helm: &Helm,
    options: &EnableOptions,
    progress: Progress<'_>,
) -> Result<Enabled, Error> {
    if let Some(previous) = Journal::load(&options.journal)?
        && previous.outcome == Outcome::InProgress
    {
        return Err(Error::Interrupted {
            journal: options.journal.clone(),
            release: previous.release,
            namespace: previous.namespace,
            previous_revision: previous.previous_revision,
        });
    }
    let state = collect(client, Some(helm), &options.target).await?;
    let crds = read_crd_files(&options.crd_files)?;
    let plan = plan(&state, options.inventory.as_ref(), crds)?;
    for line in &plan.crds_left_out {
        progress(line);
    }
    let release = state.release.clone().ok_or_else(|| Error::Refused {
        items: vec!["Helm release: none".to_owned()],
    })?;
    if plan.changes.is_empty() && plan.crds.is_empty() {
        // A second run: no new revision, no restarts.
        progress(&format!(
            "Gateway API is already on at revision {}; nothing to change",
            release.revision
        ));
        return Ok(Enabled {
            previous_revision: release.revision,
            enabled_revision: release.revision,
            operator_restart: None,
            agents_restarted: false,
            report: plan.report,
        });
    }

    let values_file = values_file_for(&options.journal);
    let mut journal = Journal {
        release: release.name.clone(),
        namespace: release.namespace.clone(),
        previous_revision: release.revision,
        enabled_revision: None,
        crds_applied: Vec::new(),
        values_file: values_file.clone(),
        operator_restart: None,
        agents_restarted: false,
        outcome: Outcome::InProgress,
        events: Vec::new(),
    };
    journal.note(format!("start at revision {}", release.revision));
    journal.save(&options.journal)?;

    if !plan.crds.is_empty() {
        progress(&format!("applying {} Gateway API CRDs", plan.crds.len()));
        apply_crds(client, &plan.crds, options.rollout_timeout).await?;
        journal.crds_applied = plan.crd_names.clone();
        journal.note("CRDs applied and established");
        journal.save(&options.journal)?;
    }

    // Values can hold secrets: the file is private, like the journal.
    let yaml = serde_saphyr::to_string(&plan.values).map_err(|e| Error::Journal {
        path: values_file.clone(),
        problem: e.to_string(),
    })?;
    write_private(&values_file, yaml.as_bytes())?;

    progress(&format!(
        "helm upgrade {} with {}",
        release.name,
        plan.changes
            .iter()
            .map(|c| format!("{}={}", c.path, c.after))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let request = UpgradeInstall {
        release: release.name.clone(),
        namespace: release.namespace.clone(),
        chart: options.chart.clone(),
        version: release.chart_version.clone(),
        values_files: vec![values_file.clone()],
        // The release exists; a failure is rolled back below, to the journal's revision.
        ownership: Ownership::Fresh {
            on_failure: OnFailure::Keep,
        },
        wait: Wait::Ready,
        wait_for_jobs: false,
        timeout: options.helm_timeout,
        apply: helm::ApplyMethod::Default,
    };
    let upgrade = {
        let helm = helm.clone();
        tokio::task::spawn_blocking(move || helm.upgrade_install(&request))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    };
    let upgraded = match upgrade {
        Ok(info) => info.revision,
        Err(error) => {
            let reason = format!("helm upgrade failed: {error}");
            return Err(
                roll_back(client, helm, options, &mut journal, reason, false, progress).await,
            );
        }
    };
    journal.enabled_revision = Some(upgraded);
    journal.note(format!("upgraded to revision {upgraded}"));
    journal.save(&options.journal)?;

    let restart = restart_reason(&state, &plan.crds);
    if let Some(reason) = &restart {
        progress(&format!("restarting the operator: {reason}"));
        if let Err(error) =
            restart_operator(client, &options.target.namespace, options.rollout_timeout).await
        {
            let reason = format!("operator restart: {error}");
            return Err(
                roll_back(client, helm, options, &mut journal, reason, true, progress).await,
            );
        }
        journal.operator_restart = Some(reason.clone());
        journal.note("operator restarted and rolled out");
        journal.save(&options.journal)?;
    }

    if let AcceptWait::Within(timeout) = options.accept {
        progress(&format!(
            "waiting up to {timeout:?} for GatewayClass cilium to be Accepted"
        ));
        if let Err(last) = wait_accepted(client, timeout).await {
            let reason = format!("GatewayClass cilium was not Accepted within {timeout:?}: {last}");
            return Err(roll_back(
                client,
                helm,
                options,
                &mut journal,
                reason,
                restart.is_some(),
                progress,
            )
            .await);
        }
        journal.note("GatewayClass cilium Accepted");
    }

    // After the acceptance, so that a failed enable never restarted the agents.
    if options.restart_agents {
        progress(
            "restarting the agents (DaemonSet cilium): they read enable-envoy-config only at start",
        );
        journal.agents_restarted = true;
        if let Err(error) =
            restart_agents(client, &options.target.namespace, options.rollout_timeout).await
        {
            let reason = format!("agent restart: {error}");
            return Err(roll_back(
                client,
                helm,
                options,
                &mut journal,
                reason,
                restart.is_some(),
                progress,
            )
            .await);
        }
        journal.note("agents restarted and rolled out");
        journal.save(&options.journal)?;
    }

    let after = collect(client, Some(helm), &options.target).await?;
    let report = check(&after, options.inventory.as_ref());
    if let Some(problem) = unhealthy(&after, &report) {
        return Err(roll_back(
            client,
            helm,
            options,
            &mut journal,
            problem,
            restart.is_some(),
            progress,
        )
        .await);
    }
    journal.outcome = Outcome::Enabled;
    journal.note("verified");
    journal.save(&options.journal)?;
    Ok(Enabled {
        previous_revision: release.revision,
        enabled_revision: upgraded,
        operator_restart: restart,
        agents_restarted: options.restart_agents,
        report,
    })
}

/// The values file that goes with a journal (`journal.json` → `journal.values.yaml`).
pub fn values_file_for(journal: &Path) -> PathBuf {
    journal.with_extension("values.yaml")
}

/// Why the operator must restart after the upgrade, if it must: it reads `enable-gateway-api`
/// and looks for the CRDs only at start, and the chart does not roll it on a ConfigMap change.
fn restart_reason(state: &ClusterState, applied: &[Value]) -> Option<String> {
    let started = state.operator_started_unix?;
    let newest = state.crds.iter().filter_map(|c| c.created_unix).max();
    if !applied.is_empty() || newest.is_some_and(|created| created > started) {
        return Some("the Gateway API CRDs appeared after it started".to_owned());
    }
    if !state.config_on("enable-gateway-api") {
        return Some("it reads enable-gateway-api only at start".to_owned());
    }
    None
}

/// What keeps the enabled cluster from being healthy, if anything.
fn unhealthy(state: &ClusterState, report: &Report) -> Option<String> {
    if let Some(release) = &state.release
        && release.status != "deployed"
    {
        return Some(format!("release is {}", release.status));
    }
    if !state.config_on("enable-gateway-api") {
        return Some(
            "cilium-config has no enable-gateway-api: \"true\" after the upgrade".to_owned(),
        );
    }
    let failures: Vec<String> = report
        .items
        .iter()
        .filter(|i| i.status == Status::Fail)
        .map(|i| format!("{}: {}", i.name, i.detail))
        .collect();
    (!failures.is_empty()).then(|| format!("check fails: {}", failures.join("; ")))
}

async fn roll_back(
    client: &kube::Client,
    helm: &Helm,
    options: &EnableOptions,
    journal: &mut Journal,
    reason: String,
    restart_again: bool,
    progress: Progress<'_>,
) -> Error {
    let to = journal.previous_revision;
    progress(&format!(
        "not healthy ({reason}); rolling back to revision {to}"
    ));
    journal.note(format!("unhealthy: {reason}"));
    let mut request = RollbackRequest::new(&journal.release, &journal.namespace, Some(to));
    request.timeout = options.helm_timeout;
    let rollback = {
        let helm = helm.clone();
        tokio::task::spawn_blocking(move || helm.rollback(&request))
            .await
            .map_err(|e| Error::Task(e.to_string()))
            .and_then(|r| r.map_err(Error::from))
    };
    let mut restarted = match (&rollback, restart_again) {
        // The restarted operator runs with Gateway API on until it restarts again.
        (Ok(()), true) => {
            restart_operator(client, &options.target.namespace, options.rollout_timeout)
                .await
                .err()
                .map(|e| format!("; the operator restart after the rollback failed: {e}"))
        }
        _ => None,
    };
    if rollback.is_ok() && journal.agents_restarted {
        let again =
            restart_agents(client, &options.target.namespace, options.rollout_timeout).await;
        if let Err(e) = again {
            restarted = Some(format!(
                "{}; the agent restart after the rollback failed: {e}",
                restarted.unwrap_or_default()
            ));
        }
    }
    journal.outcome = match &rollback {
        Ok(()) => Outcome::RolledBack {
            to,
            reason: format!("{reason}{}", restarted.unwrap_or_default()),
        },
        Err(error) => Outcome::RollbackFailed {
            reason: format!("{reason}; rollback to revision {to} failed: {error}"),
        },
    };
    journal.note(match &rollback {
        Ok(()) => format!("rolled back to revision {to}"),
        Err(error) => format!("rollback failed: {error}"),
    });
    if let Err(error) = journal.save(&options.journal) {
        return error;
    }
    Error::EnableFailed {
        reason,
        rolled_back_to: rollback.is_ok().then_some(to),
        journal: options.journal.clone(),
    }
}

/// Server-side applies `crds` and waits until each is Established.
pub async fn apply_crds(
    client: &kube::Client,
    crds: &[Value],
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    // The bundle replaces whatever installed these before (kubectl, Kubespray): take the fields.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut names = Vec::new();
    for manifest in crds {
        let crd: CustomResourceDefinition =
            serde_json::from_value(manifest.clone()).map_err(|e| Error::CrdFile {
                path: PathBuf::from("--install-crds"),
                problem: format!("not a CustomResourceDefinition: {e}"),
            })?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| Error::Kube {
                what: format!("applying CRD {name}"),
                source: Box::new(source),
            })?;
        names.push(name);
    }
    for name in names {
        let established = kube::runtime::wait::await_condition(
            api.clone(),
            &name,
            kube::runtime::wait::conditions::is_crd_established(),
        );
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                return Err(Error::Wait {
                    what: format!("CRD {name} to be established"),
                    last: error.to_string(),
                });
            }
            Err(_) => {
                return Err(Error::Wait {
                    what: format!("CRD {name} to be established within {timeout:?}"),
                    last: "not Established".to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// `kubectl rollout restart deployment/cilium-operator`, then waits for the rollout.
pub async fn restart_operator(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    restart_and_wait(&api, OPERATOR_DEPLOYMENT, deployment_rollout, timeout).await
}

/// `kubectl rollout restart daemonset/cilium`, then waits until every node runs the new template.
pub async fn restart_agents(
    client: &kube::Client,
    namespace: &str,
    timeout: Duration,
) -> Result<(), Error> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    restart_and_wait(&api, AGENT_DAEMON_SET, daemon_set_rollout, timeout).await
}

/// [`rollout::restart`] as [`FIELD_MANAGER`], then [`rollout::wait_rolled_out`], with the
/// errors in this crate's words.
async fn restart_and_wait<K>(
    api: &Api<K>,
    name: &str,
    rolled_out: fn(&K) -> Rollout,
    timeout: Duration,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    rollout::restart(api, name, FIELD_MANAGER)
        .await
        .map_err(|source| Error::Kube {
            what: format!("restarting {}", rollout::workload(api, name)),
            source: Box::new(source),
        })?;
    rollout::wait_rolled_out(api, name, rolled_out, timeout)
        .await
        .map_err(|error| match error {
            RolloutError::Kube { what, source } => Error::Kube { what, source },
            RolloutError::Timeout {
                what,
                timeout,
                seen,
            } => Error::Wait {
                what: format!("{what} to roll out within {timeout:?}"),
                last: seen,
            },
        })
}

/// Waits until GatewayClass `cilium` has `Accepted: True` (a watch through kube's
/// `await_condition`, not a polling loop); the error is the last state seen.
pub async fn wait_accepted(client: &kube::Client, timeout: Duration) -> Result<(), String> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk(crate::bundle::GROUP, "v1", "GatewayClass"),
        "gatewayclasses",
    );
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
    let accepted = |object: Option<&kube::api::DynamicObject>| {
        object.is_some_and(|o| {
            crate::collect::gateway_class_facts(&o.data)
                .accepted
                .as_deref()
                == Some("True")
        })
    };
    let watch =
        kube::runtime::wait::await_condition(api.clone(), crate::collect::GATEWAY_CLASS, accepted);
    match tokio::time::timeout(timeout, watch).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(format!("watching GatewayClass cilium: {error}")),
        // Timed out: say what the class looks like now.
        Err(_) => Err(match api.get_opt(crate::collect::GATEWAY_CLASS).await {
            Ok(Some(object)) => {
                let facts = crate::collect::gateway_class_facts(&object.data);
                format!(
                    "Accepted {} {}",
                    facts.accepted.as_deref().unwrap_or("absent"),
                    facts.message
                )
                .trim()
                .to_owned()
            }
            Ok(None) => "GatewayClass cilium does not exist".to_owned(),
            Err(error) => error.to_string(),
        }),
    }
}

/// Rolls the release back to the journal's previous revision (for `gateway-api rollback`), and
/// restarts the operator (and the agents) again when the enable run had restarted them: running
/// ones keep Gateway API on until they restart.
pub async fn roll_back_from_journal(
    client: &kube::Client,
    helm: &Helm,
    journal_path: &Path,
    timeout: Duration,
) -> Result<u32, Error> {
    let mut journal = Journal::load(journal_path)?.ok_or_else(|| Error::Journal {
        path: journal_path.to_owned(),
        problem: "does not exist; pass the --journal of the enable run".to_owned(),
    })?;
    let to = journal.previous_revision;
    let mut request = RollbackRequest::new(&journal.release, &journal.namespace, Some(to));
    request.timeout = timeout;
    {
        let helm = helm.clone();
        tokio::task::spawn_blocking(move || helm.rollback(&request))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    }
    journal.note(format!("rolled back to revision {to} by hand"));
    if journal.operator_restart.is_some() {
        restart_operator(client, &journal.namespace, timeout).await?;
        journal.note("operator restarted after the rollback");
    }
    if journal.agents_restarted {
        restart_agents(client, &journal.namespace, timeout).await?;
        journal.note("agents restarted after the rollback");
    }
    journal.outcome = Outcome::RolledBack {
        to,
        reason: "rolled back by hand (gateway-api rollback)".to_owned(),
    };
    journal.save(journal_path)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ReleaseFacts;

    fn state(operator_started: Option<i64>, crd_created: i64, enabled: bool) -> ClusterState {
        let mut config = std::collections::BTreeMap::new();
        if enabled {
            config.insert("enable-gateway-api".to_owned(), "true".to_owned());
        }
        ClusterState {
            config: Some(config),
            crds: vec![CrdFacts {
                plural: "gateways".to_owned(),
                created_unix: Some(crd_created),
                ..CrdFacts::default()
            }],
            operator_started_unix: operator_started,
            release: Some(ReleaseFacts {
                status: "deployed".to_owned(),
                ..ReleaseFacts::default()
            }),
            ..ClusterState::default()
        }
    }

    #[test]
    fn the_operator_restarts_when_it_cannot_know() {
        let crds_later = restart_reason(&state(Some(100), 200, true), &[]);
        assert!(crds_later.is_some_and(|r| r.contains("appeared after")));
        let applied = restart_reason(&state(Some(300), 200, true), &[json!({})]);
        assert!(applied.is_some_and(|r| r.contains("appeared after")));
        let flag = restart_reason(&state(Some(300), 200, false), &[]);
        assert!(flag.is_some_and(|r| r.contains("enable-gateway-api")));
        assert_eq!(restart_reason(&state(Some(300), 200, true), &[]), None);
        assert_eq!(restart_reason(&state(None, 200, false), &[]), None);
    }

    #[test]
    fn health_needs_the_flag_and_a_deployed_release() {
        let report = Report {
            cilium_version: None,
            bundle: None,
            items: Vec::new(),
        };
        let off = state(Some(1), 1, false);
        assert!(unhealthy(&off, &report).is_some_and(|p| p.contains("enable-gateway-api")));
        let mut failed = state(Some(1), 1, true);
        if let Some(release) = &mut failed.release {
            release.status = "failed".to_owned();
        }
        assert_eq!(
            unhealthy(&failed, &report).as_deref(),
            Some("release is failed")
        );
        assert_eq!(unhealthy(&state(Some(1), 1, true), &report), None);
    }

    #[test]
    fn merge_records_only_real_changes() {
        let original = json!({ "gatewayAPI": { "enabled": false }, "l7Proxy": true });
        let mut values = original.clone();
        let mut changes = Vec::new();
        merge(
            &mut values,
            &json!({ "gatewayAPI": { "enabled": true }, "l7Proxy": true, "nodePort": { "enabled": true } }),
            "",
            &original,
            &mut changes,
        );
        assert_eq!(
            values,
            json!({ "gatewayAPI": { "enabled": true }, "l7Proxy": true, "nodePort": { "enabled": true } })
        );
        let paths: Vec<(&str, Option<&Value>)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.before.as_ref()))
            .collect();
        assert_eq!(
            paths,
            [
                ("gatewayAPI.enabled", Some(&json!(false))),
                ("nodePort.enabled", None)
            ]
        );
    }
}
