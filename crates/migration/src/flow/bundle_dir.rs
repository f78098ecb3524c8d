//! Where the bundle lives: opening its journal for this cluster, finding an unfinished bundle
//! of this cluster in the user's state directory (or, from earlier runs, the working directory)
//! or naming a new one there, and the UTC stamps those names
//! (and the hand-over marker) carry. Shared by [`run`](super::run) and
//! [`rollback`](super::rollback).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{BUNDLE_PREFIX, FlowError, io};
use crate::identity::ClusterIdentity;
use crate::journal::{JOURNAL_FILE, Journal};

/// Opens the bundle's journal, refusing one written for another cluster.
pub(super) fn open_journal(
    dir: &Path,
    identity: &ClusterIdentity,
) -> Result<Option<Journal>, FlowError> {
    match Journal::open(dir) {
        Ok(j) => {
            j.ensure_cluster(identity)?;
            Ok(Some(j))
        }
        Err(crate::journal::JournalError::Missing(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// This cluster's newest bundle (a finished one makes the run a no-op, an unfinished one
/// resumes) in the state directory ([`state_dir`]) or, where bundles went before, the working
/// directory; else a new `<state dir>/cilium-migrate-<host>-<UTC time>`.
pub(super) fn default_bundle(identity: &ClusterIdentity) -> Result<PathBuf, FlowError> {
    let state = state_dir().ok_or_else(|| {
        FlowError::Refused(
            "no state directory for the backup bundle: neither XDG_STATE_HOME nor HOME is an absolute path; pass --bundle DIR".into(),
        )
    })?;
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    let found = default_bundle_in(&[&state, &cwd], &state, identity)?;
    // In the working directory: relative, as the operator would type it.
    Ok(match found.parent() {
        Some(parent) if parent == cwd => found
            .strip_prefix(&cwd)
            .map_or(found.clone(), Path::to_path_buf),
        _ => found,
    })
}

/// Where default bundles go: `$XDG_STATE_HOME/cilium-migrate`, else
/// `~/.local/state/cilium-migrate`. Never the working directory: a bundle holds Secrets, and the
/// working directory is often a git checkout (of the inventory, of this tool).
pub fn state_dir() -> Option<PathBuf> {
    state_dir_from(std::env::var_os("XDG_STATE_HOME"), std::env::var_os("HOME"))
}

fn state_dir_from(xdg_state_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    // The XDG base directory spec: a relative path is invalid and is ignored.
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    let base =
        absolute(xdg_state_home).or_else(|| absolute(home).map(|h| h.join(".local/state")))?;
    Some(base.join("cilium-migrate"))
}

/// The newest `<dir>/cilium-migrate-<host>-*` of `search` whose journal belongs to this cluster,
/// else a new `<UTC time>` name in `new_in`. A missing directory holds nothing.
fn default_bundle_in(
    search: &[&Path],
    new_in: &Path,
    identity: &ClusterIdentity,
) -> Result<PathBuf, FlowError> {
    let host: String = identity
        .api_server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let prefix = format!("{BUNDLE_PREFIX}{host}-");
    let mut candidates: Vec<PathBuf> = Vec::new();
    for dir in search {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(dir)(e)),
        };
        candidates.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .filter(|p| p.join(JOURNAL_FILE).is_file()),
        );
    }
    // The names end in their UTC time: the newest sorts last, whichever directory holds it.
    candidates.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    for dir in candidates.into_iter().rev() {
        if let Ok(j) = Journal::open(&dir)
            && j.header().cluster.kube_system_uid == identity.kube_system_uid
        {
            return Ok(dir);
        }
    }
    Ok(new_in.join(format!("{prefix}{}", utc_stamp(jiff::Timestamp::now()))))
}

/// `YYYYMMDDTHHMMSSZ`: the instant in UTC, as bundle names and the hand-over marker carry it.
pub fn utc_stamp(at: jiff::Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Strategy;

    #[test]
    fn the_default_bundle_is_this_clusters_newest_or_a_new_one() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cluster = |uid: &str| ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: uid.into(),
        };
        let fresh = default_bundle_in(&[dir.path()], dir.path(), &cluster("a"))
            .unwrap_or_else(|e| panic!("{e}"));
        let name = fresh.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with("cilium-migrate-10.0.0.10-6443-2")),
            "{fresh:?}"
        );
        assert!(!fresh.exists(), "nothing is created");
        let older = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T100000Z");
        let newer = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T110000Z");
        let other = dir
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T120000Z");
        Journal::create(&older, cluster("a"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        Journal::create(&newer, cluster("a"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        // Another cluster behind the same address: never picked.
        Journal::create(&other, cluster("b"), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            default_bundle_in(&[dir.path()], dir.path(), &cluster("a")).ok(),
            Some(newer)
        );
        let for_b = default_bundle_in(&[dir.path()], dir.path(), &cluster("b")).ok();
        assert_eq!(for_b, Some(other));
        let for_c = default_bundle_in(&[dir.path()], dir.path(), &cluster("c"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!for_c.exists());
    }

    #[test]
    fn bundles_resume_from_the_working_directory_but_new_ones_go_to_the_state_directory() {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cwd = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cluster = ClusterIdentity {
            api_server: "https://10.0.0.10:6443".into(),
            kube_system_uid: "a".into(),
        };
        // The state directory need not exist yet.
        let missing = state.path().join("cilium-migrate");
        let search = [missing.as_path(), cwd.path()];
        let fresh =
            default_bundle_in(&search, &missing, &cluster).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fresh.parent(), Some(missing.as_path()));
        // An unfinished bundle an earlier version left in the working directory resumes...
        let legacy = cwd
            .path()
            .join("cilium-migrate-10.0.0.10-6443-20261126T100000Z");
        Journal::create(&legacy, cluster.clone(), Strategy::Adopt)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            default_bundle_in(&search, &missing, &cluster).ok(),
            Some(legacy)
        );
        // ...unless the state directory holds a newer one (created with its parents, private).
        let newer = missing.join("cilium-migrate-10.0.0.10-6443-20261126T110000Z");
        Journal::create(&newer, cluster.clone(), Strategy::Adopt).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            default_bundle_in(&search, &missing, &cluster).ok(),
            Some(newer)
        );
    }

    #[test]
    fn the_state_directory_follows_xdg_and_ignores_relative_paths() {
        let dir = |xdg: Option<&str>, home: Option<&str>| {
            state_dir_from(xdg.map(OsString::from), home.map(OsString::from))
        };
        assert_eq!(
            dir(Some("/s"), Some("/home/u")),
            Some(PathBuf::from("/s/cilium-migrate"))
        );
        assert_eq!(
            dir(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/cilium-migrate"))
        );
        assert_eq!(
            dir(Some("relative"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.local/state/cilium-migrate"))
        );
        assert_eq!(dir(None, None), None);
        assert_eq!(dir(Some(""), Some("")), None);
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        let stamp =
            |secs| utc_stamp(jiff::Timestamp::from_second(secs).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(stamp(0), "19700101T000000Z");
        // 2026-11-26 18:30:05 UTC.
        assert_eq!(stamp(1_795_717_805), "20261126T183005Z");
        // A leap day.
        assert_eq!(stamp(951_782_400), "20000229T000000Z");
    }
}
