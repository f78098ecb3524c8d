//! Where the bundle lives: opening its journal for this cluster, finding an unfinished bundle
//! of this cluster in the working directory or naming a new one, and the UTC stamps those names
//! (and the hand-over marker) carry. Shared by [`run`](super::run) and
//! [`rollback`](super::rollback).

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

/// `./cilium-migrate-<host>-*` with a journal of this cluster, else a new name.
pub(super) fn default_bundle(identity: &ClusterIdentity) -> Result<PathBuf, FlowError> {
    let cwd = std::env::current_dir().map_err(io(Path::new(".")))?;
    let found = default_bundle_in(&cwd, identity)?;
    // Relative, as the operator would type it.
    Ok(found
        .strip_prefix(&cwd)
        .map(Path::to_path_buf)
        .unwrap_or(found))
}

/// The newest `<dir>/cilium-migrate-<host>-*` whose journal belongs to this cluster (a finished
/// one makes the run a no-op, an unfinished one resumes), else a new `<UTC time>` name in `dir`.
fn default_bundle_in(dir: &Path, identity: &ClusterIdentity) -> Result<PathBuf, FlowError> {
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
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| p.join(JOURNAL_FILE).is_file())
        .collect();
    candidates.sort();
    for dir in candidates.into_iter().rev() {
        if let Ok(j) = Journal::open(&dir)
            && j.header().cluster.kube_system_uid == identity.kube_system_uid
        {
            return Ok(dir);
        }
    }
    Ok(dir.join(format!("{prefix}{}", utc_stamp(now_secs()))))
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYYMMDDTHHMMSSZ` for seconds since the epoch (UTC, proleptic Gregorian).
pub fn utc_stamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
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
        let fresh = default_bundle_in(dir.path(), &cluster("a")).unwrap_or_else(|e| panic!("{e}"));
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
            default_bundle_in(dir.path(), &cluster("a")).ok(),
            Some(newer)
        );
        let for_b = default_bundle_in(dir.path(), &cluster("b")).ok();
        assert_eq!(for_b, Some(other));
        let for_c = default_bundle_in(dir.path(), &cluster("c")).unwrap_or_else(|e| panic!("{e}"));
        assert!(!for_c.exists());
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-11-26 18:30:05 UTC.
        assert_eq!(utc_stamp(1_795_717_805), "20261126T183005Z");
        // A leap day.
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
    }
}
