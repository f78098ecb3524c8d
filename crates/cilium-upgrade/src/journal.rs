//! The record of an upgrade run (`upgrade.json` in the state directory): the revision before the
//! path, and per hop the revision before it, the one it made and how far it got. A run that
//! stops resumes from it; `upgrade rollback` reads the revisions to return to from it.

use std::path::{Path, PathBuf};

use migration::identity::ClusterIdentity;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "upgrade.json";

/// How far a hop got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HopState {
    /// Backed up; preflight and `helm upgrade` may have run.
    Started,
    /// `helm upgrade` made the revision; not verified yet.
    Upgraded,
    /// Rolled out and verified.
    Verified,
    /// Verification failed: the run stopped here.
    Failed,
}

/// One hop in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalHop {
    /// The chart version.
    pub version: String,
    /// The release revision before the hop.
    pub revision_before: u32,
    /// The revision the hop made.
    pub revision: Option<u32>,
    /// How far it got.
    pub state: HopState,
    /// Its backup bundle.
    pub bundle: PathBuf,
}

/// The journal of one upgrade path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// The cluster.
    pub cluster: ClusterIdentity,
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// The revision before the path.
    pub start_revision: u32,
    /// Its chart version.
    pub start_version: String,
    /// The path's versions, in order.
    pub path: Vec<String>,
    /// The hops started so far.
    pub hops: Vec<JournalHop>,
    /// The revision a rollback returned to, once one ran.
    pub rolled_back_to: Option<u32>,
}

impl Journal {
    /// Reads the journal in `dir`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Journal>, Error> {
        let path = dir.join(JOURNAL_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Journal {
                    path,
                    problem: format!("not an upgrade journal ({e}); move it away to start over"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// Writes it to `dir` (0600, replaced atomically).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(JOURNAL_FILE);
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Journal {
            path: path.clone(),
            problem: e.to_string(),
        })?;
        crate::write_private(dir, &path, json.as_bytes())
    }

    /// Whether every hop of the path verified.
    pub fn finished(&self) -> bool {
        self.hops.len() == self.path.len()
            && self.hops.iter().all(|h| h.state == HopState::Verified)
    }

    /// The hop of `version`, to update.
    pub fn hop_mut(&mut self, version: &str) -> Option<&mut JournalHop> {
        self.hops.iter_mut().find(|h| h.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_round_trips_privately_and_knows_when_the_path_is_done() -> Result<(), Error> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().map_err(|source| Error::Io {
            path: PathBuf::from("tempdir"),
            source,
        })?;
        let state = dir.path().join("state");
        assert_eq!(Journal::load(&state)?, None);
        let hop = |version: &str, state: HopState| JournalHop {
            version: version.into(),
            revision_before: 3,
            revision: Some(4),
            state,
            bundle: PathBuf::from("b"),
        };
        let mut journal = Journal {
            cluster: ClusterIdentity {
                api_server: "https://10.0.0.10:6443".into(),
                kube_system_uid: "u-1".into(),
            },
            release: "cilium".into(),
            namespace: "kube-system".into(),
            start_revision: 3,
            start_version: "1.15.9".into(),
            path: vec!["1.15.19".into(), "1.16.19".into()],
            hops: vec![hop("1.15.19", HopState::Verified)],
            rolled_back_to: None,
        };
        journal.save(&state)?;
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok()
        };
        assert_eq!(mode(&state.join(JOURNAL_FILE)), Some(0o600));
        assert_eq!(mode(&state), Some(0o700));
        assert_eq!(Journal::load(&state)?.as_ref(), Some(&journal));
        assert!(!journal.finished());
        journal.hops.push(hop("1.16.19", HopState::Upgraded));
        assert!(!journal.finished());
        if let Some(h) = journal.hop_mut("1.16.19") {
            h.state = HopState::Verified;
        }
        assert!(journal.finished());
        std::fs::write(state.join(JOURNAL_FILE), "{").map_err(|source| Error::Io {
            path: state.clone(),
            source,
        })?;
        let err = Journal::load(&state)
            .expect_err("not a journal")
            .to_string();
        assert!(err.contains("move it away"), "{err}");
        Ok(())
    }
}
