//! The journal: an append-only record, inside the backup bundle, of every mutating step.
//!
//! Each step is written as `started` before it runs and `done` or `failed` after, and every
//! line is fsynced before the step proceeds, so after a crash the journal tells exactly which
//! step may have been cut short. Steps are idempotent, so a re-run resumes by running the first
//! unfinished step again. A finished journal makes the migration a no-op.
//!
//! Format: JSON lines. The first line is the header (cluster identity, strategy, steps); the
//! others are step records. A torn last line (a crash while writing it) is ignored.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::{ClusterIdentity, IdentityError};

/// File name of the journal inside the bundle directory.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// How the objects pass from Kubespray to Helm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Label and annotate the live objects, prune Kubespray-only fields, then `helm upgrade --install`.
    Adopt,
    /// Adopt the template-era objects as `Adopt` does, except the workloads the chart renders:
    /// those are deleted with their pods orphaned and re-created by the install.
    Replace,
    /// A release `cilium` already exists (Kubespray >= v2.28): only the owner changes.
    TakeOverRelease,
}

impl Strategy {
    /// The fixed, ordered mutating steps of this strategy.
    pub fn steps(self) -> &'static [Step] {
        match self {
            // Pruning comes after the install: Helm first sets the rendered values, so that
            // removing Kubespray's leftovers never leaves an intermediate object the API
            // rejects (e.g. `privileged: true` gone while a Bidirectional mount remains).
            Strategy::Adopt => &[
                Step::Backup,
                Step::AdoptMetadata,
                Step::HelmInstall,
                Step::PruneFields,
                Step::InventoryEdit,
                Step::Verify,
            ],
            Strategy::Replace => &[
                Step::Backup,
                Step::DeleteTemplateObjects,
                Step::HelmInstall,
                Step::PruneFields,
                Step::InventoryEdit,
                Step::Verify,
            ],
            Strategy::TakeOverRelease => &[
                Step::Backup,
                Step::HelmInstall,
                Step::InventoryEdit,
                Step::Verify,
            ],
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Adopt => "adopt",
            Strategy::Replace => "replace",
            Strategy::TakeOverRelease => "take-over-release",
        })
    }
}

/// One mutating step of the hand-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Write and verify the backup bundle.
    Backup,
    /// Add Helm ownership metadata to the live objects.
    AdoptMetadata,
    /// Remove Kubespray-only fields from the live objects.
    PruneFields,
    /// Adopt the template-era objects but delete the workloads, orphaning their pods (replace).
    DeleteTemplateObjects,
    /// `helm upgrade --install`.
    HelmInstall,
    /// Apply the hand-over edit to the Kubespray inventory.
    InventoryEdit,
    /// Check Cilium's health after the hand-over.
    Verify,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Backup => "backup",
            Step::AdoptMetadata => "adopt-metadata",
            Step::PruneFields => "prune-fields",
            Step::DeleteTemplateObjects => "delete-template-objects",
            Step::HelmInstall => "helm-install",
            Step::InventoryEdit => "inventory-edit",
            Step::Verify => "verify",
        })
    }
}

/// What a step record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// The step began; it may have been cut short.
    Started,
    /// The step completed.
    Done,
    /// The step reported an error.
    Failed,
}

/// First line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHeader {
    /// Journal format version.
    pub format: u32,
    /// The cluster this journal belongs to.
    pub cluster: ClusterIdentity,
    /// The strategy chosen when the journal was created.
    pub strategy: Strategy,
    /// Seconds since the epoch.
    pub created: u64,
}

/// One step record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Which step.
    pub step: Step,
    /// Started, done or failed.
    pub state: StepState,
    /// Seconds since the epoch.
    pub at: u64,
    /// Error text for a failed step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A helm run this step starts on the release (recorded before helm runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmRun>,
}

/// A helm run that changes the release, recorded before helm starts: a `pending-*` revision
/// left behind is this run's own only when the journal recorded the run that writes it.
/// Anything else pending (another operator's `helm upgrade --wait`, a helm orphaned by another
/// tool) is not ours to forget or roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelmRun {
    /// `upgrade --install` or `rollback`.
    pub action: String,
    /// The release.
    pub release: String,
    /// Its namespace.
    pub namespace: String,
    /// The revision this helm run writes (the release's last revision plus one).
    pub revision: u32,
    /// Who runs it (`user@host pid N`).
    pub holder: String,
    /// The chart archive's sha256 (`upgrade --install`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_sha256: Option<String>,
}

/// Where a migration stands according to its journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalStatus {
    /// No journal: nothing was started.
    Absent,
    /// Started but not finished; the step to run next.
    InProgress(Step),
    /// Every step is done.
    Finished,
}

/// Errors reading or writing the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// I/O on the journal file.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line that is not a valid record (and not a torn last line).
    #[error(
        "journal {path}, line {line}: {message}; the journal is damaged: restore it from a copy or start a new bundle directory"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// `create` on a directory that already has a journal.
    #[error(
        "journal {0} already exists: run again with the same bundle to resume, or choose a new bundle directory"
    )]
    AlreadyExists(PathBuf),
    /// `open` on a directory without journal.
    #[error("no journal at {0}: this bundle has no migration in progress")]
    Missing(PathBuf),
    /// The journal belongs to another cluster.
    #[error(transparent)]
    WrongCluster(#[from] IdentityError),
    /// A step was begun or finished out of order.
    #[error("journal {path}: cannot {action} step {step}: {reason}")]
    OutOfOrder {
        /// The journal file.
        path: PathBuf,
        /// `start` or `finish`.
        action: &'static str,
        /// The step.
        step: Step,
        /// Why not.
        reason: String,
    },
}

/// An open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    header: JournalHeader,
    records: Vec<StepRecord>,
}

impl Journal {
    /// Creates the journal of a new migration in `bundle_dir` (fsynced, mode 0600), creating
    /// the directory (0700) when it does not exist.
    pub fn create(
        bundle_dir: &Path,
        cluster: ClusterIdentity,
        strategy: Strategy,
    ) -> Result<Journal, JournalError> {
        let path = bundle_dir.join(JOURNAL_FILE);
        // The bundle directory holds Secrets: private from the start, as is the state directory
        // that holds default bundles (created here, on the first --apply, not by a plan).
        if !bundle_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(bundle_dir)
                .map_err(|source| JournalError::Io {
                    path: bundle_dir.to_owned(),
                    source,
                })?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::AlreadyExists {
                    JournalError::AlreadyExists(path.clone())
                } else {
                    JournalError::Io {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
        let header = JournalHeader {
            format: 1,
            cluster,
            strategy,
            created: now(),
        };
        let journal = Journal {
            path,
            header,
            records: Vec::new(),
        };
        journal.write_line(file, &header_line(&journal.header))?;
        // The new directory entry must survive a crash too.
        sync_dir(bundle_dir).map_err(|source| JournalError::Io {
            path: journal.path.clone(),
            source,
        })?;
        Ok(journal)
    }

    /// Opens the journal in `bundle_dir`.
    pub fn open(bundle_dir: &Path) -> Result<Journal, JournalError> {
        let path = bundle_dir.join(JOURNAL_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JournalError::Missing(path));
            }
            Err(source) => return Err(JournalError::Io { path, source }),
        };
        let mut lines = Vec::new();
        let mut reader = BufReader::new(file);
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .map_err(|source| JournalError::Io {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            lines.push(line);
        }
        let corrupt = |line: usize, message: String| JournalError::Corrupt {
            path: path.clone(),
            line,
            message,
        };
        let Some(first) = lines.first() else {
            return Err(corrupt(1, "empty file, the header line is missing".into()));
        };
        let header: JournalHeader = serde_json::from_str(first.trim_end())
            .map_err(|e| corrupt(1, format!("bad header: {e}")))?;
        let mut records = Vec::new();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate().skip(1) {
            let torn = i == last && !line.ends_with('\n');
            match serde_json::from_str::<StepRecord>(line.trim_end()) {
                Ok(r) => records.push(r),
                // A crash while appending leaves a partial last line without newline: the step
                // it recorded never got its fsync, so it did not happen as far as we know.
                Err(_) if torn => {}
                Err(e) => return Err(corrupt(i + 1, format!("bad step record: {e}"))),
            }
        }
        let journal = Journal {
            path,
            header,
            records,
        };
        for r in &journal.records {
            if !journal.header.strategy.steps().contains(&r.step) {
                return Err(JournalError::Corrupt {
                    path: journal.path.clone(),
                    line: 0,
                    message: format!(
                        "step {} is not part of strategy {}",
                        r.step, journal.header.strategy
                    ),
                });
            }
        }
        Ok(journal)
    }

    /// The status of the journal in `bundle_dir` (absent when there is none).
    pub fn status_in(bundle_dir: &Path) -> Result<JournalStatus, JournalError> {
        match Journal::open(bundle_dir) {
            Ok(j) => Ok(j.status()),
            Err(JournalError::Missing(_)) => Ok(JournalStatus::Absent),
            Err(e) => Err(e),
        }
    }

    /// Path of the journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The header (cluster identity, strategy).
    pub fn header(&self) -> &JournalHeader {
        &self.header
    }

    /// All step records, oldest first.
    pub fn records(&self) -> &[StepRecord] {
        &self.records
    }

    /// Refuses to go on when the journal was written for another cluster.
    pub fn ensure_cluster(&self, live: &ClusterIdentity) -> Result<(), JournalError> {
        self.header.cluster.ensure_same(live)?;
        Ok(())
    }

    /// The last recorded state of a step.
    pub fn state_of(&self, step: Step) -> Option<StepState> {
        self.records
            .iter()
            .rev()
            .find(|r| r.step == step)
            .map(|r| r.state)
    }

    /// The first step that is not done: the one a re-run starts with.
    pub fn next_step(&self) -> Option<Step> {
        self.header
            .strategy
            .steps()
            .iter()
            .copied()
            .find(|s| self.state_of(*s) != Some(StepState::Done))
    }

    /// Whether every step is done.
    pub fn is_finished(&self) -> bool {
        self.next_step().is_none()
    }

    /// Absent/in progress/finished.
    pub fn status(&self) -> JournalStatus {
        match self.next_step() {
            Some(s) => JournalStatus::InProgress(s),
            None => JournalStatus::Finished,
        }
    }

    /// Records that `step` starts. Only the next unfinished step may start.
    pub fn start(&mut self, step: Step) -> Result<(), JournalError> {
        match self.next_step() {
            Some(next) if next == step => {}
            Some(next) => {
                return Err(self.out_of_order("start", step, format!("the next step is {next}")));
            }
            None => {
                return Err(self.out_of_order("start", step, "the migration is finished".into()));
            }
        }
        self.append(StepRecord {
            step,
            state: StepState::Started,
            at: now(),
            error: None,
            helm: None,
        })
    }

    /// Records that `step` completed.
    pub fn done(&mut self, step: Step) -> Result<(), JournalError> {
        self.ensure_started(step)?;
        self.append(StepRecord {
            step,
            state: StepState::Done,
            at: now(),
            error: None,
            helm: None,
        })
    }

    /// Records that `step` failed with `error`.
    pub fn failed(&mut self, step: Step, error: &str) -> Result<(), JournalError> {
        self.ensure_started(step)?;
        self.append(StepRecord {
            step,
            state: StepState::Failed,
            at: now(),
            error: Some(error.to_owned()),
            helm: None,
        })
    }

    /// Records, while `step` runs, that it starts helm on the release (fsynced before helm
    /// runs, like every record).
    pub fn helm_started(&mut self, step: Step, run: HelmRun) -> Result<(), JournalError> {
        self.ensure_started(step)?;
        self.append(StepRecord {
            step,
            state: StepState::Started,
            at: now(),
            error: None,
            helm: Some(run),
        })
    }

    /// The helm run this journal recorded that writes `revision` of `release` in `namespace`.
    pub fn helm_run(&self, release: &str, namespace: &str, revision: u32) -> Option<&HelmRun> {
        self.records
            .iter()
            .rev()
            .filter_map(|r| r.helm.as_ref())
            .find(|h| h.release == release && h.namespace == namespace && h.revision == revision)
    }

    fn ensure_started(&self, step: Step) -> Result<(), JournalError> {
        match self.state_of(step) {
            Some(StepState::Started) => Ok(()),
            other => Err(self.out_of_order(
                "finish",
                step,
                format!("it is not running (last state: {other:?})"),
            )),
        }
    }

    fn out_of_order(&self, action: &'static str, step: Step, reason: String) -> JournalError {
        JournalError::OutOfOrder {
            path: self.path.clone(),
            action,
            step,
            reason,
        }
    }

    fn append(&mut self, record: StepRecord) -> Result<(), JournalError> {
        let file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        let line = serde_json::to_string(&record).unwrap_or_default();
        self.write_line(file, &line)?;
        self.records.push(record);
        Ok(())
    }

    fn write_line(&self, mut file: File, line: &str) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        file.write_all(line.as_bytes()).map_err(io)?;
        file.write_all(b"\n").map_err(io)?;
        file.sync_all().map_err(io)
    }
}

fn header_line(header: &JournalHeader) -> String {
    serde_json::to_string(header).unwrap_or_default()
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    // A clock before 1970 reads as 0, as it did with `SystemTime`.
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0)
}

/// Fsyncs a directory so that entries created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(url: &str) -> ClusterIdentity {
        ClusterIdentity {
            api_server: url.to_owned(),
            kube_system_uid: "6c1f7a38-0d8e-4d5b-9c57-1c1d2b0e4a11".to_owned(),
        }
    }

    fn new_journal(strategy: Strategy) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), cluster("https://10.0.0.10:6443"), strategy).unwrap();
        (dir, j)
    }

    #[test]
    fn steps_run_in_order_and_a_finished_journal_has_no_next_step() {
        let (dir, mut j) = new_journal(Strategy::Adopt);
        assert_eq!(j.status(), JournalStatus::InProgress(Step::Backup));
        for step in Strategy::Adopt.steps() {
            assert_eq!(j.next_step(), Some(*step));
            j.start(*step).unwrap();
            j.done(*step).unwrap();
        }
        assert!(j.is_finished());
        let reopened = Journal::open(dir.path()).unwrap();
        assert_eq!(reopened.status(), JournalStatus::Finished);
        assert_eq!(reopened.records().len(), 2 * Strategy::Adopt.steps().len());
        // Nothing can start once finished: the migration is a no-op.
        let mut reopened = reopened;
        assert!(matches!(
            reopened.start(Step::Verify),
            Err(JournalError::OutOfOrder { .. })
        ));
    }

    /// A crash after each possible record: reopening resumes at the step that was cut short
    /// (or at the next one when the cut came after `done`).
    #[test]
    fn crash_after_every_record_resumes_at_the_first_unfinished_step() {
        let steps = Strategy::Replace.steps();
        for crash_at in 0..=(2 * steps.len()) {
            let (dir, mut j) = new_journal(Strategy::Replace);
            let mut written = 0;
            'run: for step in steps {
                for done in [false, true] {
                    if written == crash_at {
                        break 'run;
                    }
                    if done {
                        j.done(*step).unwrap()
                    } else {
                        j.start(*step).unwrap()
                    }
                    written += 1;
                }
            }
            drop(j);
            let reopened = Journal::open(dir.path()).unwrap();
            let expected = steps.get(crash_at / 2).copied();
            assert_eq!(
                reopened.next_step(),
                expected,
                "crash after {crash_at} records"
            );
        }
    }

    #[test]
    fn a_failed_step_is_run_again() {
        let (dir, mut j) = new_journal(Strategy::TakeOverRelease);
        j.start(Step::Backup).unwrap();
        j.done(Step::Backup).unwrap();
        j.start(Step::HelmInstall).unwrap();
        j.failed(Step::HelmInstall, "helm: exit status 1").unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.next_step(), Some(Step::HelmInstall));
        assert_eq!(
            j.records().last().unwrap().error.as_deref(),
            Some("helm: exit status 1")
        );
        j.start(Step::HelmInstall).unwrap();
        j.done(Step::HelmInstall).unwrap();
        assert_eq!(j.next_step(), Some(Step::InventoryEdit));
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_damage_elsewhere_is_refused() {
        let (dir, mut j) = new_journal(Strategy::Adopt);
        j.start(Step::Backup).unwrap();
        j.done(Step::Backup).unwrap();
        let path = j.path().to_owned();
        drop(j);
        // Crash in the middle of writing `started` for adopt-metadata.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"step":"adopt-metad"#).unwrap();
        drop(f);
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.next_step(), Some(Step::AdoptMetadata));

        // The same garbage followed by a newline and another line is damage, not a torn write.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\n{\"step\":\"backup\",\"state\":\"done\",\"at\":1}\n")
            .unwrap();
        drop(f);
        match Journal::open(dir.path()) {
            Err(JournalError::Corrupt { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_recorded_helm_run_is_found_by_the_revision_it_writes() {
        let (dir, mut j) = new_journal(Strategy::TakeOverRelease);
        j.start(Step::Backup).unwrap();
        j.done(Step::Backup).unwrap();
        let run = HelmRun {
            action: "upgrade --install".into(),
            release: "cilium".into(),
            namespace: "kube-system".into(),
            revision: 3,
            holder: "root@admin pid 42".into(),
            chart_sha256: Some("ab12".into()),
        };
        // Only a running step starts helm.
        assert!(j.helm_started(Step::HelmInstall, run.clone()).is_err());
        j.start(Step::HelmInstall).unwrap();
        j.helm_started(Step::HelmInstall, run.clone()).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.helm_run("cilium", "kube-system", 3), Some(&run));
        assert_eq!(j.helm_run("cilium", "kube-system", 4), None);
        assert_eq!(j.helm_run("other", "kube-system", 3), None);
        // The record keeps the step running: a resumed run starts it again.
        assert_eq!(j.state_of(Step::HelmInstall), Some(StepState::Started));
        assert_eq!(j.next_step(), Some(Step::HelmInstall));
    }

    #[test]
    fn steps_out_of_order_are_refused() {
        let (_dir, mut j) = new_journal(Strategy::Adopt);
        let err = j.start(Step::HelmInstall).unwrap_err();
        assert!(err.to_string().contains("the next step is backup"), "{err}");
        assert!(matches!(
            j.done(Step::Backup),
            Err(JournalError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn journal_is_private_and_create_refuses_an_existing_one() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, j) = new_journal(Strategy::Adopt);
        let mode = std::fs::metadata(j.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = Journal::create(dir.path(), cluster("https://x:6443"), Strategy::Adopt);
        assert!(matches!(again, Err(JournalError::AlreadyExists(_))));
    }

    #[test]
    fn continuing_on_another_cluster_is_refused() {
        let (dir, j) = new_journal(Strategy::Adopt);
        drop(j);
        let j = Journal::open(dir.path()).unwrap();
        j.ensure_cluster(&cluster("https://10.0.0.10:6443"))
            .unwrap();
        let other = ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: "0f0f0f0f-0000-0000-0000-000000000000".into(),
        };
        let err = j.ensure_cluster(&other).unwrap_err().to_string();
        assert!(err.contains("another cluster"), "{err}");
        assert!(err.contains("6c1f7a38"), "{err}");
        assert_eq!(
            Journal::status_in(tempfile::tempdir().unwrap().path()).unwrap(),
            JournalStatus::Absent
        );
    }
}
