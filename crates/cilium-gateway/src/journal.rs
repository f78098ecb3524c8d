//! The enable journal: a small JSON file that records which release revision an `enable` run
//! started from and how far it got, so that a later run (or the operator) knows what to roll
//! back to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// How far an `enable` run got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Outcome {
    /// Running, or interrupted: the release may be at `enabled_revision`.
    InProgress,
    /// Gateway API is on and healthy at `enabled_revision`.
    Enabled,
    /// It did not become healthy and the release was rolled back.
    RolledBack {
        /// The revision rolled back to (the journal's `previous_revision`).
        to: u32,
        /// Why.
        reason: String,
    },
    /// It did not become healthy and the rollback failed too: act by hand.
    RollbackFailed {
        /// Why the enable failed, then why the rollback failed.
        reason: String,
    },
}

/// One `enable` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// The revision before the upgrade: what a rollback returns to.
    pub previous_revision: u32,
    /// The revision the upgrade created, once known.
    #[serde(default)]
    pub enabled_revision: Option<u32>,
    /// The CRDs applied by this run.
    #[serde(default)]
    pub crds_applied: Vec<String>,
    /// The values file given to `helm upgrade`.
    pub values_file: PathBuf,
    /// Whether the operator was restarted, and why.
    #[serde(default)]
    pub operator_restart: Option<String>,
    /// Whether the agents (DaemonSet `cilium`) were restarted.
    #[serde(default)]
    pub agents_restarted: bool,
    /// How far it got.
    pub outcome: Outcome,
    /// What happened, in order (Unix seconds, text).
    #[serde(default)]
    pub events: Vec<(i64, String)>,
}

impl Journal {
    /// Reads a journal; `Ok(None)` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Journal>, Error> {
        load_json(path, "an enable journal")
    }

    /// Writes the journal (0600, through a temporary file and a rename so it is never half
    /// written).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        save_json(self, path)
    }

    /// Adds an event stamped now.
    pub fn note(&mut self, what: impl Into<String>) {
        self.events.push((now_unix(), what.into()));
    }
}

/// Reads the JSON file `path` holds (`what` it should be, for the message); `Ok(None)` when it
/// does not exist.
pub(crate) fn load_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
) -> Result<Option<T>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Journal {
            path: path.to_owned(),
            problem: format!("{e}; it is not {what}: move it away or pass another --journal"),
        })
}

/// Writes `value` as JSON to `path` (0600, atomically: [`write_private`]).
pub(crate) fn save_json<T: Serialize>(value: &T, path: &Path) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Journal {
        path: path.to_owned(),
        problem: e.to_string(),
    })?;
    write_private(path, text.as_bytes())
}

/// Seconds since the Unix epoch.
pub(crate) fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Writes `bytes` to `path` with mode 0600, atomically: an `O_EXCL` temporary sibling (never an
/// existing file or symlink), synced, renamed, and the directory synced
/// ([`kubespray_config::files::write_private_atomic`]).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    kubespray_config::files::write_private_atomic(path, bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn journal_round_trips_private() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub/journal.json");
        assert_eq!(Journal::load(&path)?, None);
        let mut journal = Journal {
            release: "cilium".into(),
            namespace: "kube-system".into(),
            previous_revision: 3,
            enabled_revision: Some(4),
            crds_applied: vec!["gateways.gateway.networking.k8s.io".into()],
            values_file: dir.path().join("values.yaml"),
            operator_restart: None,
            agents_restarted: false,
            outcome: Outcome::RolledBack {
                to: 3,
                reason: "GatewayClass cilium not Accepted".into(),
            },
            events: Vec::new(),
        };
        journal.note("upgraded");
        journal.save(&path)?;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Journal::load(&path)?, Some(journal));
        Ok(())
    }

    /// The temporary file is never a name someone else can prepare: a symlink at the old
    /// predictable `<journal>.tmp` is neither followed nor replaced, and nothing is left behind.
    #[test]
    fn saving_never_writes_through_a_prepared_temporary_name()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("journal.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "mine")?;
        std::os::unix::fs::symlink(&victim, dir.path().join("journal.json.tmp"))?;
        write_private(&path, b"{}")?;
        assert_eq!(std::fs::read_to_string(&victim)?, "mine");
        assert_eq!(std::fs::read_to_string(&path)?, "{}");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        assert_eq!(names, ["journal.json", "journal.json.tmp", "victim"]);
        Ok(())
    }

    #[test]
    fn a_foreign_file_is_named_with_the_fix() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("journal.json");
        std::fs::write(&path, "{\"something\": 1}")?;
        let error = Journal::load(&path).expect_err("not a journal");
        let text = error.to_string();
        assert!(text.contains("journal.json"), "{text}");
        assert!(text.contains("pass another --journal"), "{text}");
        Ok(())
    }
}
