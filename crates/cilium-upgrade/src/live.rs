//! The cluster side: read what runs, apply the plan hop by hop, roll back.
//!
//! Per hop: a backup bundle (as the hand-over's, read back before anything changes), the
//! preflight check Cilium's upgrade guide asks for (a `cilium-preflight` release whose DaemonSet
//! pre-pulls the hop's image on every node; ready everywhere, then uninstalled), `helm upgrade`
//! with the hop's whole values file (0600; `--reset-values`, never `--reuse-values`, never
//! `--atomic`), the rollout of the agent DaemonSet (the same object: its UID is checked) and the
//! operator, then `verify` like `cilium status`. The first hop that does not verify stops the run.
//! Every step is journaled; a run that stops resumes where it stopped.
//!
//! The plan holds no secret (its values are redacted): `apply` derives each hop's values file
//! again from the release at the plan's revision, as the plan did, and refuses the plan when a
//! hop's file is not the one whose sha256 the plan pinned.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use helm::{
    Capabilities, ChartSource, Helm, Manifest, OnFailure, Ownership, RollbackRequest,
    UninstallRequest, UpgradeInstall, ValuesScope, Wait,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use migration::bundle::{BackupRequest, Bundle};
use migration::identity::ClusterIdentity;
use migration::lock::{ClusterLease, Holder};
use serde_json::{Value as Json, json};
use verify::rollout::{daemon_set_rollout, deployment_rollout, wait_rolled_out};

use crate::archive::ChartArchive;
use crate::charts::ChartStore;
use crate::journal::{HopState, Journal, JournalHop};
use crate::plan::{Start, UpgradePlan, check_values_files, object_names, values_files};
use crate::values::pointer;
use crate::{Error, NAMESPACE, RELEASE, Target};

/// The preflight release's name (Cilium's upgrade guide).
pub const PREFLIGHT_RELEASE: &str = "cilium-preflight";
/// Its DaemonSet and Deployment.
pub const PREFLIGHT_WORKLOAD: &str = "cilium-pre-flight-check";

/// The cluster a run talks to.
pub struct Cluster<'a> {
    /// The Kubernetes client.
    pub client: &'a kube::Client,
    /// The API server URL (the cluster identity records it).
    pub api_server: &'a str,
    /// helm, talking to the same cluster.
    pub helm: &'a Helm,
}

/// Progress lines while a run waits.
pub trait Progress {
    /// One line: what starts, what finished.
    fn note(&mut self, line: &str);
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

/// What runs: the release (its revision, chart version, user values and objects) and the live
/// `cilium-config` and workloads the first hop is compared with.
pub async fn read_start(cluster: &Cluster<'_>) -> Result<Start, Error> {
    let identity = ClusterIdentity::read(cluster.client, cluster.api_server).await?;
    let (revision, version) = release_version(cluster.helm)?;
    let values = cluster
        .helm
        .get_values(RELEASE, NAMESPACE, ValuesScope::User, None)?;
    let manifest =
        Manifest::parse(&cluster.helm.get_manifest(RELEASE, NAMESPACE)?).map_err(|e| {
            Error::BadValues {
                problem: format!("the release's manifest: {e}"),
            }
        })?;
    let config_maps: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let config = config_maps
        .get_opt("cilium-config")
        .await
        .map_err(kube_error("reading ConfigMap kube-system/cilium-config"))?
        .and_then(|c| c.data)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut workloads = Vec::new();
    let daemon_sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    if let Some(agent) = daemon_sets
        .get_opt("cilium")
        .await
        .map_err(kube_error("reading DaemonSet kube-system/cilium"))?
    {
        workloads.push(to_json(&agent, "DaemonSet")?);
    }
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    for name in ["cilium-operator", "hubble-relay", "hubble-ui"] {
        if let Some(deployment) = deployments
            .get_opt(name)
            .await
            .map_err(kube_error(format!("reading Deployment kube-system/{name}")))?
        {
            workloads.push(to_json(&deployment, "Deployment")?);
        }
    }
    Ok(Start {
        cluster: Some(identity),
        release: RELEASE.to_owned(),
        namespace: NAMESPACE.to_owned(),
        revision,
        version,
        values,
        config,
        workloads,
        objects: object_names(&manifest),
        gateway_api_crds: cilium_gateway::collect::gateway_api_crds(cluster.client).await?,
    })
}

/// The release's current revision and its chart version, from `helm history` (`helm status -o
/// json` leaves the chart out).
pub fn release_version(helm: &Helm) -> Result<(u32, semver::Version), Error> {
    let history = helm.history(RELEASE, NAMESPACE)?;
    let last = history
        .iter()
        .max_by_key(|r| r.revision)
        .ok_or_else(|| Error::NoRelease {
            release: RELEASE.to_owned(),
            namespace: NAMESPACE.to_owned(),
        })?;
    let text = last.chart.strip_prefix("cilium-").unwrap_or(&last.chart);
    let version =
        semver::Version::parse(text.trim_start_matches('v')).map_err(|e| Error::BadValues {
            problem: format!(
                "release revision {} runs chart {:?}, not a Cilium chart version ({e})",
                last.revision, last.chart
            ),
        })?;
    Ok((last.revision, version))
}

fn to_json<T: serde::Serialize>(object: &T, kind: &str) -> Result<Json, Error> {
    let mut json = serde_json::to_value(object).map_err(|e| Error::BadValues {
        problem: e.to_string(),
    })?;
    // Typed objects read from the API carry no apiVersion/kind; the gate finds workloads by kind.
    json["apiVersion"] = json!("apps/v1");
    json["kind"] = json!(kind);
    Ok(json)
}

/// The cluster's Kubernetes version and served APIs (discovery), which `helm upgrade` gives
/// the chart as `.Capabilities`: every render of a live plan gets them, so an object a chart
/// creates only when the cluster serves an API (Cilium's GatewayClass) is in the plan.
pub async fn capabilities(client: &kube::Client) -> Result<Capabilities, Error> {
    Capabilities::discover(client)
        .await
        .map_err(|e| Error::Kube {
            what: format!("reading {} from the API server", e.what),
            source: e.source,
        })
}

/// The whole plan from `start` to `target` with the charts of `store`, rendered with the
/// cluster's `capabilities` ([`capabilities`]; `None` offline).
pub fn plan_upgrade(
    start: &Start,
    target: Option<Target>,
    store: &ChartStore,
    helm: &Helm,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<UpgradePlan, Error> {
    let available = store.versions(helm)?;
    let path = crate::upgrade_path(&start.version, target, &available, &store.describe())?;
    let charts = path
        .iter()
        .map(|version| store.archive(helm, version))
        .collect::<Result<Vec<_>, _>>()?;
    crate::plan(start, &charts, helm, capabilities, scratch)
}

/// How the plan's behaviour changes were accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// By name (`--accept KEY`), for a plan made in this run.
    Keys(Vec<String>),
    /// A reviewed plan file (`--plan FILE`): exactly the changes it lists.
    Reviewed(PathBuf),
}

/// How `apply` runs.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// The journal, values files and backup bundles.
    pub state_dir: PathBuf,
    /// Where the charts come from (each archive is checked against the plan's sha256).
    pub store: ChartStore,
    /// How long each hop may take to roll out and verify.
    pub verify_timeout: Duration,
    /// Helm's `--timeout`.
    pub helm_timeout: Duration,
    /// Objects per list request of the backups.
    pub page_size: u32,
    /// Verify checks that do not stop a hop (reported anyway), by name.
    pub ignore_checks: Vec<String>,
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The journal at the end.
    pub journal: Journal,
    /// Its file.
    pub journal_path: PathBuf,
}

/// Applies `plan` hop by hop (see the module documentation).
pub async fn apply(
    cluster: &Cluster<'_>,
    plan: &UpgradePlan,
    acceptance: &Acceptance,
    options: &ApplyOptions,
    progress: &mut dyn Progress,
) -> Result<Applied, Error> {
    let identity = ClusterIdentity::read(cluster.client, cluster.api_server).await?;
    let mismatch = |problem: String| match acceptance {
        Acceptance::Reviewed(path) => Error::PlanMismatch {
            path: path.clone(),
            problem,
        },
        Acceptance::Keys(_) => Error::Journal {
            path: options.state_dir.join(crate::journal::JOURNAL_FILE),
            problem,
        },
    };
    match (&plan.cluster, acceptance) {
        (Some(planned), Acceptance::Reviewed(_))
            if planned.kube_system_uid != identity.kube_system_uid =>
        {
            return Err(mismatch(format!(
                "it was made for the cluster at {} (kube-system UID {}), this is {} (kube-system UID {}); switch the kubeconfig context to that cluster",
                planned.api_server,
                planned.kube_system_uid,
                identity.api_server,
                identity.kube_system_uid
            )));
        }
        (Some(planned), _) => planned.ensure_same(&identity)?,
        (None, Acceptance::Reviewed(_)) => {
            return Err(mismatch("it names no cluster (an offline plan)".to_owned()));
        }
        (None, Acceptance::Keys(_)) => {}
    }
    if plan.format != crate::plan::PLAN_FORMAT {
        return Err(mismatch(format!(
            "plan format {} is not {}",
            plan.format,
            crate::plan::PLAN_FORMAT
        )));
    }
    if let Acceptance::Keys(keys) = acceptance {
        let unaccepted = plan.unaccepted(keys);
        if !unaccepted.is_empty() {
            return Err(Error::Unaccepted {
                changes: unaccepted
                    .iter()
                    .map(|(version, change)| format!("{version} {change}"))
                    .collect(),
            });
        }
    }
    // Every archive is the one planned.
    let mut charts = Vec::new();
    for hop in &plan.hops {
        let version = semver::Version::parse(&hop.version).map_err(|e| mismatch(e.to_string()))?;
        let archive = options.store.archive(cluster.helm, &version)?;
        if archive.sha256 != hop.chart.sha256 {
            return Err(mismatch(format!(
                "chart {} has sha256 {}, the plan pinned {}",
                archive.path.display(),
                archive.sha256,
                hop.chart.sha256
            )));
        }
        charts.push(archive);
    }
    let values = planned_values(cluster, plan, &charts, &options.state_dir, &mismatch).await?;
    let lease =
        ClusterLease::acquire(cluster.client, Holder::this_process("upgrade --apply")).await?;
    if let Some(previous) = lease.taken_over() {
        progress.note(&format!(
            "took the lock over from {previous}, which is gone"
        ));
    }
    let result = run_hops(
        cluster, plan, &charts, &values, &identity, options, progress, &mismatch,
    )
    .await;
    // The run's own error first: a Lease not released only delays the next run (it lapses).
    let released = lease.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}

/// Each hop's values file, derived again from the release at the plan's revision (its user
/// values and objects, still in `helm history` after the release moved on), checked against the
/// sha256 the plan pinned per hop.
async fn planned_values(
    cluster: &Cluster<'_>,
    plan: &UpgradePlan,
    charts: &[ChartArchive],
    state_dir: &Path,
    mismatch: &dyn Fn(String) -> Error,
) -> Result<Vec<Json>, Error> {
    let revision = plan.release.revision;
    let history = cluster.helm.history(RELEASE, NAMESPACE)?;
    let Some(planned) = history.iter().find(|r| r.revision == revision) else {
        return Err(mismatch(format!(
            "it starts from release revision {revision}, which is not in `helm history {RELEASE} -n {NAMESPACE}` any more: its values cannot be derived again"
        )));
    };
    let planned_chart = format!("cilium-{}", plan.release.version);
    if planned.chart != planned_chart {
        return Err(mismatch(format!(
            "release revision {revision} runs chart {}, the plan says {planned_chart}",
            planned.chart
        )));
    }
    let version = semver::Version::parse(&plan.release.version)
        .map_err(|e| mismatch(format!("release version {}: {e}", plan.release.version)))?;
    let release_values =
        cluster
            .helm
            .get_values(RELEASE, NAMESPACE, ValuesScope::User, Some(revision))?;
    let manifest = cluster.helm.run([
        "get",
        "manifest",
        RELEASE,
        "--namespace",
        NAMESPACE,
        "--revision",
        &revision.to_string(),
    ])?;
    let objects = object_names(&Manifest::parse(&manifest).map_err(|e| Error::BadValues {
        problem: format!("the manifest of release revision {revision}: {e}"),
    })?);
    let capabilities = capabilities(cluster.client).await?;
    let values = values_files(
        &release_values,
        &version,
        &objects,
        charts,
        cluster.helm,
        Some(&capabilities),
        &state_dir.join("renders"),
    )?;
    check_values_files(plan, &values, revision).map_err(mismatch)?;
    Ok(values)
}

#[allow(clippy::too_many_arguments)]
async fn run_hops(
    cluster: &Cluster<'_>,
    plan: &UpgradePlan,
    charts: &[ChartArchive],
    values: &[Json],
    identity: &ClusterIdentity,
    options: &ApplyOptions,
    progress: &mut dyn Progress,
    mismatch: &dyn Fn(String) -> Error,
) -> Result<Applied, Error> {
    let dir = &options.state_dir;
    let versions: Vec<String> = plan.hops.iter().map(|h| h.version.clone()).collect();
    let (current_revision, current_version) = release_version(cluster.helm)?;
    let current_version = current_version.to_string();
    // Resume the journal's path when this plan is (the rest of) it.
    let resumable = Journal::load(dir)?.filter(|j| {
        !j.finished()
            && j.rolled_back_to.is_none()
            && j.cluster.kube_system_uid == identity.kube_system_uid
            && j.path.ends_with(&versions)
    });
    let mut journal = match resumable {
        Some(journal) => {
            let last = journal.hops.last().map_or(journal.start_revision, |h| {
                h.revision.unwrap_or(h.revision_before)
            });
            let in_flight = journal
                .hops
                .last()
                .is_some_and(|h| h.state == HopState::Started && h.version == current_version);
            if current_revision != last && !in_flight {
                return Err(mismatch(format!(
                    "the journal's run stopped at release revision {last}, the release is at revision {current_revision} now: someone changed it since; check `helm history {RELEASE} -n {NAMESPACE}`"
                )));
            }
            progress.note(&format!(
                "resuming the upgrade {} -> {} (journal {})",
                journal.start_version,
                journal.path.join(" -> "),
                dir.join(crate::journal::JOURNAL_FILE).display()
            ));
            journal
        }
        None => {
            if current_revision != plan.release.revision {
                return Err(mismatch(format!(
                    "the release is at revision {current_revision} ({current_version}), the plan starts from revision {} ({})",
                    plan.release.revision, plan.release.version
                )));
            }
            // An earlier path's journal (finished or rolled back) is kept beside the new one.
            let previous = dir.join(crate::journal::JOURNAL_FILE);
            if previous.is_file() {
                let kept = dir.join(format!(
                    "upgrade-{}.json",
                    migration::flow::utc_stamp(jiff::Timestamp::now())
                ));
                std::fs::rename(&previous, &kept).map_err(|source| Error::Io {
                    path: previous.clone(),
                    source,
                })?;
                progress.note(&format!(
                    "the earlier upgrade's journal is now {}",
                    kept.display()
                ));
            }
            Journal {
                cluster: identity.clone(),
                release: RELEASE.to_owned(),
                namespace: NAMESPACE.to_owned(),
                start_revision: current_revision,
                start_version: current_version.clone(),
                path: versions.clone(),
                hops: Vec::new(),
                rolled_back_to: None,
            }
        }
    };
    journal.save(dir)?;
    for ((hop, chart), values) in plan.hops.iter().zip(charts).zip(values) {
        if journal
            .hops
            .iter()
            .any(|h| h.version == hop.version && h.state == HopState::Verified)
        {
            continue;
        }
        run_hop(
            cluster,
            hop,
            chart,
            values,
            identity,
            &mut journal,
            options,
            progress,
        )
        .await?;
    }
    Ok(Applied {
        journal,
        journal_path: dir.join(crate::journal::JOURNAL_FILE),
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_hop(
    cluster: &Cluster<'_>,
    hop: &crate::Hop,
    chart: &ChartArchive,
    hop_values: &Json,
    identity: &ClusterIdentity,
    journal: &mut Journal,
    options: &ApplyOptions,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    let dir = &options.state_dir;
    let started = Instant::now();
    let (status_revision, status_version) = release_version(cluster.helm)?;
    let status_version = status_version.to_string();
    let recorded = journal.hop_mut(&hop.version).cloned();
    // A hop whose `helm upgrade` ran before the run stopped is not upgraded twice.
    let upgraded_before = recorded.as_ref().is_some_and(|h| {
        h.state == HopState::Upgraded
            || h.state == HopState::Failed
            || (status_version == hop.version && status_revision > h.revision_before)
    });
    let daemon_sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let agent_uid = || async {
        daemon_sets
            .get_opt("cilium")
            .await
            .map_err(kube_error("reading DaemonSet kube-system/cilium"))
            .map(|d| d.and_then(|d| d.metadata.uid))
    };
    let uid_before = agent_uid().await?;
    if !upgraded_before {
        // One bundle per attempt: a finished backup is never overwritten.
        let stem = format!(
            "backup-before-{}-{}",
            hop.version,
            migration::flow::utc_stamp(jiff::Timestamp::now())
        );
        let bundle = (1..)
            .map(|n| match n {
                1 => dir.join(&stem),
                n => dir.join(format!("{stem}-{n}")),
            })
            .find(|candidate| !candidate.exists())
            .unwrap_or_else(|| dir.join(&stem));
        journal.hops.retain(|h| h.version != hop.version);
        journal.hops.push(JournalHop {
            version: hop.version.clone(),
            revision_before: status_revision,
            revision: None,
            state: HopState::Started,
            bundle: bundle.clone(),
        });
        journal.save(dir)?;

        progress.note(&format!("{}: backup to {}", hop.version, bundle.display()));
        backup(cluster, identity, &bundle, options.page_size, &hop.version).await?;

        progress.note(&format!(
            "{}: preflight (DaemonSet {PREFLIGHT_WORKLOAD} ready on every node, then removed)",
            hop.version
        ));
        preflight(cluster, chart, hop_values, options, progress).await?;

        progress.note(&format!(
            "{}: helm upgrade {RELEASE} (revision {} -> next)",
            hop.version, status_revision
        ));
        let values = crate::write_values(dir, &format!("values-{}", hop.version), hop_values)?;
        let request = UpgradeInstall {
            release: RELEASE.to_owned(),
            namespace: NAMESPACE.to_owned(),
            chart: ChartSource::Archive(chart.path.clone()),
            version: Some(hop.version.clone()),
            values_files: vec![values],
            // Never --atomic: a failed hop stays for the operator to see and roll back.
            ownership: Ownership::Fresh {
                on_failure: OnFailure::Keep,
            },
            wait: Wait::HooksOnly,
            wait_for_jobs: false,
            timeout: options.helm_timeout,
            apply: helm::ApplyMethod::Default,
        };
        let release = cluster.helm.upgrade_install(&request)?;
        if let Some(h) = journal.hop_mut(&hop.version) {
            h.revision = Some(release.revision);
            h.state = HopState::Upgraded;
        }
        journal.save(dir)?;
    }
    progress.note(&format!(
        "{}: waiting for the agents and the operator to roll out",
        hop.version
    ));
    wait_rolled_out(
        &daemon_sets,
        "cilium",
        daemon_set_rollout,
        options.verify_timeout,
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    wait_rolled_out(
        &deployments,
        "cilium-operator",
        deployment_rollout,
        options.verify_timeout,
    )
    .await?;
    if pointer(hop_values, &["envoy", "enabled"]).and_then(Json::as_bool) == Some(true) {
        wait_rolled_out(
            &daemon_sets,
            "cilium-envoy",
            daemon_set_rollout,
            options.verify_timeout,
        )
        .await?;
    }
    let uid_after = agent_uid().await?;
    let (revision, _) = release_version(cluster.helm)?;
    let revision_before = journal
        .hop_mut(&hop.version)
        .map_or(status_revision, |h| h.revision_before);
    if uid_before.is_some() && uid_before != uid_after {
        return Err(fail_hop(
            journal,
            dir,
            hop,
            revision,
            revision_before,
            format!("the agent DaemonSet was replaced (UID {uid_before:?} -> {uid_after:?})"),
        ));
    }
    progress.note(&format!("{}: verify (like `cilium status`)", hop.version));
    let report = verify_until(
        cluster.client,
        &hop.version,
        options.verify_timeout,
        &options.ignore_checks,
    )
    .await?;
    if !healthy(&report, &options.ignore_checks) {
        let problems = report
            .problems()
            .filter(|c| !options.ignore_checks.contains(&c.name))
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(fail_hop(
            journal,
            dir,
            hop,
            revision,
            revision_before,
            problems,
        ));
    }
    if let Some(h) = journal.hop_mut(&hop.version) {
        h.revision = Some(revision);
        h.state = HopState::Verified;
    }
    journal.save(dir)?;
    progress.note(&format!(
        "{}: done, release revision {revision} ({:.0}s)",
        hop.version,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn fail_hop(
    journal: &mut Journal,
    dir: &Path,
    hop: &crate::Hop,
    revision: u32,
    revision_before: u32,
    problems: String,
) -> Error {
    if let Some(h) = journal.hop_mut(&hop.version) {
        h.state = HopState::Failed;
        h.revision = Some(revision);
    }
    if let Err(e) = journal.save(dir) {
        return e;
    }
    Error::HopFailed {
        version: hop.version.clone(),
        revision,
        before: revision_before,
        start: journal.start_revision,
        problems,
    }
}

async fn backup(
    cluster: &Cluster<'_>,
    identity: &ClusterIdentity,
    dir: &Path,
    page_size: u32,
    version: &str,
) -> Result<(), Error> {
    let wrap = |source| Error::Backup {
        version: version.to_owned(),
        source: Box::new(source),
    };
    let manifest =
        Manifest::parse(&cluster.helm.get_manifest(RELEASE, NAMESPACE)?).map_err(|e| {
            Error::BadValues {
                problem: format!("the release's manifest: {e}"),
            }
        })?;
    let extra_objects = manifest
        .objects
        .iter()
        .map(|o| {
            migration::object::ObjectRef::new(
                &o.id.api_version,
                &o.id.kind,
                o.id.namespace.as_deref(),
                &o.id.name,
            )
        })
        .collect();
    let bundle = Bundle::create(
        cluster.client,
        &BackupRequest {
            dir: dir.to_owned(),
            cluster: identity.clone(),
            extra_objects,
            inventory: Vec::new(),
            page_size,
        },
    )
    .await
    .map_err(wrap)?;
    bundle.verify().map_err(wrap)?;
    Ok(())
}

/// The preflight release's values: Cilium's guide (`preflight.enabled`, no agent, no operator),
/// the API server the agents use, and the release's own `preflight` settings (image, placement).
/// Nothing else of the release: its Hubble, Gateway API or secrets namespaces would render
/// objects the main release owns (1.17's `cilium-secrets` Namespace broke preflight installs).
pub fn preflight_values(hop_values: &Json) -> Json {
    let mut values = json!({
        "agent": false,
        "operator": {"enabled": false},
        "preflight": {"enabled": true},
    });
    if let Some(Json::Object(own)) = pointer(hop_values, &["preflight"]) {
        let mut own = own.clone();
        own.insert("enabled".to_owned(), json!(true));
        values["preflight"] = Json::Object(own);
    }
    for key in ["k8sServiceHost", "k8sServicePort", "upgradeCompatibility"] {
        if let Some(value) = hop_values.get(key) {
            values[key] = value.clone();
        }
    }
    values
}

/// The objects the preflight release may render: only its own.
pub fn preflight_objects_are_its_own(manifest: &Manifest) -> Result<(), String> {
    let foreign: Vec<String> = manifest
        .objects
        .iter()
        .filter(|o| !o.id.name.starts_with("cilium-pre-flight"))
        .map(|o| o.id.to_string())
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the preflight release would render objects that are not its own: {}",
            foreign.join(", ")
        ))
    }
}

async fn preflight(
    cluster: &Cluster<'_>,
    chart: &ChartArchive,
    hop_values: &Json,
    options: &ApplyOptions,
    progress: &mut dyn Progress,
) -> Result<(), Error> {
    let version = chart.version.to_string();
    let fail = |problem: String| Error::Preflight {
        version: version.clone(),
        problem,
    };
    let values = preflight_values(hop_values);
    // What the preflight release's install will render on this cluster.
    let capabilities = capabilities(cluster.client).await?;
    let manifest = crate::plan::render(
        cluster.helm,
        chart,
        &values,
        Some(&capabilities),
        &options.state_dir,
    )?;
    preflight_objects_are_its_own(&manifest).map_err(fail)?;
    let file = crate::write_values(&options.state_dir, &format!("preflight-{version}"), &values)?;
    let request = UpgradeInstall {
        release: PREFLIGHT_RELEASE.to_owned(),
        namespace: NAMESPACE.to_owned(),
        chart: ChartSource::Archive(chart.path.clone()),
        version: Some(version.clone()),
        values_files: vec![file],
        ownership: Ownership::Fresh {
            on_failure: OnFailure::Keep,
        },
        wait: Wait::HooksOnly,
        wait_for_jobs: false,
        timeout: options.helm_timeout,
        apply: helm::ApplyMethod::Default,
    };
    cluster.helm.upgrade_install(&request)?;
    let daemon_sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let kinds: BTreeSet<String> = manifest.objects.iter().map(|o| o.id.kind.clone()).collect();
    let waited = async {
        if kinds.contains("DaemonSet") {
            wait_rolled_out(
                &daemon_sets,
                PREFLIGHT_WORKLOAD,
                daemon_set_rollout,
                options.verify_timeout,
            )
            .await?;
        }
        if kinds.contains("Deployment") {
            wait_rolled_out(
                &deployments,
                PREFLIGHT_WORKLOAD,
                deployment_rollout,
                options.verify_timeout,
            )
            .await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    // Removed whether it became ready or not: it is only a check.
    let mut uninstall = UninstallRequest::new(PREFLIGHT_RELEASE, NAMESPACE);
    uninstall.timeout = options.helm_timeout;
    cluster.helm.uninstall(&uninstall)?;
    progress.note(&format!(
        "{version}: preflight ready on every node, removed"
    ));
    waited.map_err(|e| fail(e.to_string()))
}

/// Whether every check passed that is not ignored.
pub fn healthy(report: &verify::Report, ignore_checks: &[String]) -> bool {
    report.problems().all(|c| ignore_checks.contains(&c.name))
}

/// `verify` re-run until healthy (or `timeout`) against this hop's chart version; the last report.
async fn verify_until(
    client: &kube::Client,
    version: &str,
    timeout: Duration,
    ignore_checks: &[String],
) -> Result<verify::Report, Error> {
    let mut options = verify::Options::new(NAMESPACE, RELEASE);
    options.chart_version = Some(version.to_owned());
    Ok(verify::verify_until_healthy(client, &options, ignore_checks, timeout).await?)
}

/// Where `upgrade rollback` returns the release to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RollbackTarget {
    /// The release's revision now.
    pub current: u32,
    /// The revision to return to.
    pub revision: u32,
    /// Its chart (`cilium-1.15.9`).
    pub chart: String,
    /// Why that revision.
    pub why: String,
}

/// Which revision to return to: `to_revision` when given, else the revision before the hop to
/// `hop`, else the revision before the whole path (from the journal in `state_dir`).
pub fn rollback_target(
    helm: &Helm,
    state_dir: &Path,
    to_revision: Option<u32>,
    hop: Option<&str>,
) -> Result<RollbackTarget, Error> {
    let history = helm.history(RELEASE, NAMESPACE)?;
    let current = history
        .iter()
        .map(|r| r.revision)
        .max()
        .ok_or_else(|| Error::NoRelease {
            release: RELEASE.to_owned(),
            namespace: NAMESPACE.to_owned(),
        })?;
    let journal_path = state_dir.join(crate::journal::JOURNAL_FILE);
    let no_journal = || {
        Error::Journal {
        path: journal_path.clone(),
        problem: "no upgrade was journaled here; pass --to-revision N (see `helm history cilium -n kube-system`) or the --state-dir of the upgrade".to_owned(),
    }
    };
    let (revision, why) = match (to_revision, hop) {
        (Some(revision), _) => (revision, format!("--to-revision {revision}")),
        (None, Some(version)) => {
            let journal = Journal::load(state_dir)?.ok_or_else(no_journal)?;
            let entry = journal
                .hops
                .iter()
                .find(|h| h.version == version)
                .ok_or_else(|| Error::Journal {
                    path: journal_path.clone(),
                    problem: format!(
                        "no hop to {version} was journaled; hops: {}",
                        journal
                            .hops
                            .iter()
                            .map(|h| h.version.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            (
                entry.revision_before,
                format!("the revision before the hop to {version}"),
            )
        }
        (None, None) => {
            let journal = Journal::load(state_dir)?.ok_or_else(no_journal)?;
            (
                journal.start_revision,
                format!(
                    "the revision before the upgrade path ({})",
                    journal.start_version
                ),
            )
        }
    };
    let chart = history
        .iter()
        .find(|r| r.revision == revision)
        .map(|r| r.chart.clone())
        .ok_or_else(|| Error::Journal {
            path: journal_path.clone(),
            problem: format!(
                "release revision {revision} is not in `helm history` any more (--history-max)"
            ),
        })?;
    Ok(RollbackTarget {
        current,
        revision,
        chart,
        why,
    })
}

/// `helm rollback` to `target`, then the rollout and `verify`; the journal records it.
pub async fn rollback(
    cluster: &Cluster<'_>,
    target: &RollbackTarget,
    state_dir: &Path,
    verify_timeout: Duration,
    helm_timeout: Duration,
    ignore_checks: &[String],
    progress: &mut dyn Progress,
) -> Result<verify::Report, Error> {
    let lease = ClusterLease::acquire(
        cluster.client,
        Holder::this_process("upgrade rollback --apply"),
    )
    .await?;
    let result = async {
        progress.note(&format!(
            "helm rollback {RELEASE} {} ({})",
            target.revision, target.chart
        ));
        let mut request = RollbackRequest::new(RELEASE, NAMESPACE, Some(target.revision));
        request.wait = Wait::HooksOnly;
        request.timeout = helm_timeout;
        cluster.helm.rollback(&request)?;
        if let Some(mut journal) = Journal::load(state_dir)? {
            journal.rolled_back_to = Some(target.revision);
            journal.save(state_dir)?;
        }
        progress.note("waiting for the agents and the operator to roll out");
        let daemon_sets: Api<DaemonSet> = Api::namespaced(cluster.client.clone(), NAMESPACE);
        wait_rolled_out(&daemon_sets, "cilium", daemon_set_rollout, verify_timeout).await?;
        let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), NAMESPACE);
        wait_rolled_out(
            &deployments,
            "cilium-operator",
            deployment_rollout,
            verify_timeout,
        )
        .await?;
        progress.note("verify (like `cilium status`)");
        let version = target
            .chart
            .rsplit_once('-')
            .map_or(target.chart.as_str(), |(_, v)| v);
        verify_until(cluster.client, version, verify_timeout, ignore_checks).await
    }
    .await;
    // The run's own error first: a Lease not released only delays the next run (it lapses).
    let released = lease.release().await;
    let outcome = result?;
    released?;
    Ok(outcome)
}
