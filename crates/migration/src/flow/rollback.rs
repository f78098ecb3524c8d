//! Undoing a hand-over from its bundle: [`rollback`] and its helpers. Separate from the
//! forward flow: it shares only the connection, the bundle and the progress reporting with it.
//!
//! A bundle is rolled back once: the rollback renames its journal to [`ROLLED_BACK_JOURNAL`],
//! and a second rollback of it is refused before anything is read from the cluster (it would
//! put the backup over whatever changed since). After the objects are restored, the rollback
//! waits for the agent DaemonSet to roll onto the restored pod template, node by node within
//! its `maxUnavailable` ([`restore::wait_daemonset_rolled`]); agents still on the chart's
//! template when [`AGENT_ROLL_TIMEOUT`] passes are reported among the differences.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use helm::{ReleaseStatus, RollbackRequest, Wait};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use serde_json::json;

use super::bundle_dir::open_journal;
use super::{
    FlowError, MANIFEST_FILE, Progress, ROLLED_BACK_JOURNAL, Step, api, blocking,
    connect_pinned_and_identify, io, phase,
};
use crate::adopt::Release;
use crate::bundle::{Bundle, Section};
use crate::era;
use crate::guard;
use crate::journal::{JOURNAL_FILE, StepState};
use crate::restore::{self, Difference, RestoreReport};
use crate::template_era::NAMESPACE;

/// How long the rollback waits for the agents to roll onto the restored DaemonSet's template.
const AGENT_ROLL_TIMEOUT: Duration = Duration::from_secs(600);

/// The agent DaemonSet, in both eras.
const AGENT_DAEMONSET: &str = "cilium";

/// What [`rollback`] does.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The bundle of the migration to undo.
    pub bundle: PathBuf,
    /// Kubeconfig (`None`: the default).
    pub kubeconfig: Option<PathBuf>,
    /// The helm binary (`None`: `helm` on `PATH`).
    pub helm: Option<PathBuf>,
    /// Change the cluster (without it: say what would be done).
    pub apply: bool,
}

/// What [`rollback`] did (or would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackOutcome {
    /// What happens to the release.
    pub release: String,
    /// Objects the hand-over created, deleted.
    pub removed: Vec<String>,
    /// Objects put back as backed up.
    pub replaced: Vec<String>,
    /// Objects re-created from the backup.
    pub recreated: Vec<String>,
    /// Objects already as backed up.
    pub unchanged: usize,
    /// Inventory files written back.
    pub inventory: Vec<PathBuf>,
    /// Differences left between the bundle and the cluster (empty: restored exactly).
    pub differences: Vec<String>,
    /// Whether anything was changed.
    pub applied: bool,
}

/// Returns the cluster and the inventory to the backed-up state (see the module documentation).
pub async fn rollback(
    options: &RollbackOptions,
    progress: &mut dyn Progress,
) -> Result<RollbackOutcome, FlowError> {
    Box::pin(rollback_boxed(options, progress)).await
}

async fn rollback_boxed(
    options: &RollbackOptions,
    progress: &mut dyn Progress,
) -> Result<RollbackOutcome, FlowError> {
    let started = Instant::now();
    let dir = &options.bundle;
    refuse_rolled_back(dir)?;
    let (connection, identity) =
        connect_pinned_and_identify(progress, started, options.kubeconfig.as_deref()).await?;
    let client = connection.client.clone();
    if !dir.join(MANIFEST_FILE).exists() {
        let journal = open_journal(dir, &identity)?;
        return match journal {
            Some(j) if j.state_of(Step::Backup) != Some(StepState::Done) => Ok(RollbackOutcome {
                release:
                    "nothing to roll back: the backup never finished, and nothing changes before it"
                        .into(),
                ..RollbackOutcome::default()
            }),
            _ => Err(FlowError::Refused(format!(
                "{} has no {MANIFEST_FILE}: it is not a backup bundle of this tool",
                dir.display()
            ))),
        };
    }
    let bundle = Bundle::open(dir)?;
    phase(progress, started, "verify bundle", async {
        Ok(bundle.verify()?)
    })
    .await?;
    bundle.manifest().cluster.ensure_same(&identity)?;
    // The files the hand-over wrote must still hold what it wrote: checked before anything changes.
    bundle.check_written()?;
    let release = Release::default();
    let recorded = recorded_revision(&bundle)?;
    let helm = connection.helm(options.helm.as_deref())?;
    let mut outcome = RollbackOutcome {
        release: match recorded {
            None => "release cilium did not exist before: forget it (delete its records only; the objects stay and are restored)".into(),
            Some(r) => format!("release cilium was at revision {r}: helm rollback to it when it has moved"),
        },
        ..RollbackOutcome::default()
    };
    if !options.apply {
        return Ok(outcome);
    }
    outcome.applied = true;

    let t = Instant::now();
    progress.started("release", started.elapsed());
    match recorded {
        None => {
            let forgotten = guard::forget_release(&client, &release).await?;
            let removed = restore::remove_created(&client, &bundle, &release).await?;
            outcome.release = format!(
                "forgot release cilium ({} records); the objects it managed stay",
                forgotten.len()
            );
            outcome.removed = removed.iter().map(ToString::to_string).collect();
        }
        Some(revision) => {
            let current = {
                let helm = helm.clone();
                blocking(move || helm.status(&release.name, &release.namespace)).await??
            };
            let moved = current
                .as_ref()
                .is_none_or(|c| c.revision != revision || c.info.status != ReleaseStatus::Deployed);
            if moved {
                let mut request = RollbackRequest::new("cilium", NAMESPACE, Some(revision));
                request.wait = Wait::ReadyLegacy;
                let helm = helm.clone();
                blocking(move || helm.rollback(&request)).await??;
                outcome.release = format!("helm rollback cilium {revision}");
            } else {
                outcome.release =
                    format!("release cilium is still at revision {revision}: unchanged");
            }
        }
    }
    progress.finished("release", t.elapsed(), None);

    let t = Instant::now();
    progress.started("restore objects", started.elapsed());
    let report: RestoreReport = restore::restore_handover(&client, &bundle).await?;
    outcome.replaced = report.replaced.iter().map(ToString::to_string).collect();
    outcome.recreated = report.created.iter().map(ToString::to_string).collect();
    outcome.unchanged = report.unchanged.len();
    remove_marker(&client).await?;
    progress.finished("restore objects", t.elapsed(), None);

    let t = Instant::now();
    progress.started("agent rollout", started.elapsed());
    let behind =
        restore::wait_daemonset_rolled(&client, NAMESPACE, AGENT_DAEMONSET, AGENT_ROLL_TIMEOUT)
            .await?;
    let agents_behind = (!behind.is_empty()).then(|| {
        format!(
            "DaemonSet {NAMESPACE}/{AGENT_DAEMONSET}: not rolled onto the restored pod template within {AGENT_ROLL_TIMEOUT:?}: {}; check `kubectl -n {NAMESPACE} rollout status ds/{AGENT_DAEMONSET}`",
            behind.join(", ")
        )
    });
    progress.finished("agent rollout", t.elapsed(), agents_behind.as_deref());

    let t = Instant::now();
    progress.started("restore inventory", started.elapsed());
    outcome.inventory = super::inventory::restore_written(&bundle, progress)?;
    progress.finished("restore inventory", t.elapsed(), None);

    // The bundle is no longer a migration to resume.
    let journal = dir.join(JOURNAL_FILE);
    if journal.exists() {
        let to = dir.join(ROLLED_BACK_JOURNAL);
        std::fs::rename(&journal, &to).map_err(io(&journal))?;
    }

    let t = Instant::now();
    progress.started("compare", started.elapsed());
    let differences = restore::compare_with_cluster(
        &client,
        &bundle,
        &[Section::Handover, Section::CustomResources, Section::Crds],
    )
    .await?;
    outcome.differences = differences.iter().map(Difference::to_string).collect();
    outcome.differences.extend(agents_behind);
    progress.finished("compare", t.elapsed(), None);
    Ok(outcome)
}

/// Refuses a bundle whose rollback has run: its journal was renamed to [`ROLLED_BACK_JOURNAL`].
fn refuse_rolled_back(dir: &Path) -> Result<(), FlowError> {
    if dir.join(ROLLED_BACK_JOURNAL).exists() && !dir.join(JOURNAL_FILE).exists() {
        return Err(FlowError::Refused(format!(
            "{} was rolled back already ({ROLLED_BACK_JOURNAL}); rolling back again would put its backup over everything changed since: nothing was done. To restore that backup once more anyway, rename {ROLLED_BACK_JOURNAL} to {JOURNAL_FILE} in it and run the rollback again",
            dir.display()
        )));
    }
    Ok(())
}

/// The newest deployed revision among the backed-up release records (`None`: no release).
fn recorded_revision(bundle: &Bundle) -> Result<Option<u32>, FlowError> {
    let mut newest = None;
    for file in bundle.files(Section::HelmRelease) {
        for o in bundle.read_objects(file)? {
            if let Some(r) = era::ReleaseRecord::from_secret(&o?)
                && r.name == era::RELEASE_NAME
                && matches!(r.status.as_str(), "deployed")
            {
                newest = newest.max(Some(r.revision));
            }
        }
    }
    Ok(newest)
}

async fn remove_marker(client: &Client) -> Result<(), FlowError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {era::HANDOVER_MARKER_ANNOTATION: null}}});
    namespaces
        .patch(NAMESPACE, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api(
            "removing the hand-over marker from namespace kube-system",
        ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused from the bundle alone, before any cluster is asked (the kubeconfig is missing).
    #[tokio::test]
    async fn a_rolled_back_bundle_is_not_rolled_back_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), "{}").unwrap();
        std::fs::write(dir.path().join(ROLLED_BACK_JOURNAL), "").unwrap();
        let options = RollbackOptions {
            bundle: dir.path().to_owned(),
            kubeconfig: Some(dir.path().join("no-kubeconfig")),
            helm: None,
            apply: true,
        };
        let mut progress = super::super::Quiet;
        let err = rollback(&options, &mut progress).await.unwrap_err();
        assert!(matches!(err, FlowError::Refused(_)), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("rolled back already") && message.contains(ROLLED_BACK_JOURNAL),
            "{message}"
        );
        // A bundle whose journal is back in place (the operator's explicit choice) passes the
        // check and fails later, at the missing kubeconfig.
        std::fs::write(dir.path().join(JOURNAL_FILE), "").unwrap();
        let err = rollback(&options, &mut progress).await.unwrap_err();
        assert!(!err.to_string().contains("rolled back already"), "{err}");
    }
}
