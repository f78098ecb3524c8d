//! What `helm status`, `helm history` and `helm list` print with `-o json`, as typed values.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A release revision's status, as Helm stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Helm's `unknown`.
    Unknown,
    /// The current revision, applied successfully.
    Deployed,
    /// Uninstalled with `--keep-history`.
    Uninstalled,
    /// An older revision replaced by a newer one.
    Superseded,
    /// The operation failed.
    Failed,
    /// An uninstall is running (or was interrupted).
    Uninstalling,
    /// An install is running (or was interrupted).
    PendingInstall,
    /// An upgrade is running (or was interrupted).
    PendingUpgrade,
    /// A rollback is running (or was interrupted).
    PendingRollback,
    /// A status this crate does not know (a newer Helm).
    #[serde(other)]
    Unrecognized,
}

impl ReleaseStatus {
    /// Pending or failed: the release needs attention before another upgrade.
    pub fn is_stuck(self) -> bool {
        matches!(
            self,
            ReleaseStatus::Failed
                | ReleaseStatus::PendingInstall
                | ReleaseStatus::PendingUpgrade
                | ReleaseStatus::PendingRollback
                | ReleaseStatus::Uninstalling
        )
    }

    /// Helm's own spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Unknown => "unknown",
            ReleaseStatus::Deployed => "deployed",
            ReleaseStatus::Uninstalled => "uninstalled",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::Uninstalling => "uninstalling",
            ReleaseStatus::PendingInstall => "pending-install",
            ReleaseStatus::PendingUpgrade => "pending-upgrade",
            ReleaseStatus::PendingRollback => "pending-rollback",
            ReleaseStatus::Unrecognized => "unrecognized",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `helm status -o json`: one release revision (the chart's templates are not kept).
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseInfo {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Revision number (Helm calls it `version`).
    #[serde(rename = "version")]
    pub revision: u32,
    /// Status and timestamps.
    pub info: RevisionInfo,
    /// The chart's metadata, when Helm includes it.
    #[serde(default, deserialize_with = "chart_metadata")]
    pub chart: Option<ChartMetadata>,
    /// The user-supplied values of this revision (`config`).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Helm 4 only: `ssa` or `csa`, how this revision was applied.
    #[serde(default)]
    pub apply_method: Option<String>,
}

/// `info` of a release revision.
#[derive(Debug, Clone, Deserialize)]
pub struct RevisionInfo {
    /// The status.
    pub status: ReleaseStatus,
    /// Helm's description (`Install complete`, `Upgrade "x" failed: ...`).
    #[serde(default)]
    pub description: String,
    /// RFC 3339 time of the first deployment.
    #[serde(default)]
    pub first_deployed: Option<String>,
    /// RFC 3339 time of this revision.
    #[serde(default)]
    pub last_deployed: Option<String>,
}

/// The `Chart.yaml` fields this crate needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChartMetadata {
    /// Chart name.
    pub name: String,
    /// Chart version.
    pub version: String,
    /// The application version (Cilium's version for the cilium chart).
    #[serde(default, rename = "appVersion")]
    pub app_version: Option<String>,
}

fn chart_metadata<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ChartMetadata>, D::Error> {
    #[derive(Deserialize)]
    struct Chart {
        metadata: Option<ChartMetadata>,
    }
    Ok(Option::<Chart>::deserialize(d)?.and_then(|c| c.metadata))
}

/// One row of `helm history -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Revision {
    /// Revision number.
    pub revision: u32,
    /// RFC 3339 time.
    #[serde(default)]
    pub updated: Option<String>,
    /// Status.
    pub status: ReleaseStatus,
    /// `name-version` of the chart.
    pub chart: String,
    /// The chart's appVersion.
    #[serde(default)]
    pub app_version: String,
    /// Helm's description.
    #[serde(default)]
    pub description: String,
}

/// One row of `helm list -o json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseSummary {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Current revision (Helm prints it as a string).
    #[serde(deserialize_with = "number_in_string")]
    pub revision: u32,
    /// Helm's time text.
    #[serde(default)]
    pub updated: String,
    /// Status.
    pub status: ReleaseStatus,
    /// `name-version` of the chart.
    pub chart: String,
    /// The chart's appVersion.
    #[serde(default)]
    pub app_version: String,
}

fn number_in_string<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Int(u32),
        Text(String),
    }
    match Number::deserialize(d)? {
        Number::Int(n) => Ok(n),
        Number::Text(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

/// The newest revision that was successfully applied (`deployed` or `superseded`).
pub fn last_good_revision(history: &[Revision]) -> Option<u32> {
    history
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                ReleaseStatus::Deployed | ReleaseStatus::Superseded
            )
        })
        .map(|r| r.revision)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_history_and_list_json() -> Result<(), serde_json::Error> {
        let status: ReleaseInfo = serde_json::from_str(
            r#"{"name":"cilium","info":{"first_deployed":"2026-11-26T17:00:00Z","last_deployed":"2026-11-26T17:00:00Z","deleted":"","description":"Install complete","status":"deployed"},"chart":{"metadata":{"name":"cilium","version":"1.15.9","appVersion":"1.15.9","apiVersion":"v2"},"templates":[]},"config":{"ipam":{"mode":"kubernetes"}},"manifest":"---\n","version":2,"namespace":"kube-system","apply_method":"csa"}"#,
        )?;
        assert_eq!(status.revision, 2);
        assert_eq!(status.info.status, ReleaseStatus::Deployed);
        assert_eq!(
            status.chart.as_ref().map(|c| c.version.as_str()),
            Some("1.15.9")
        );
        assert_eq!(status.apply_method.as_deref(), Some("csa"));

        let history: Vec<Revision> = serde_json::from_str(
            r#"[{"revision":1,"updated":"2026-11-26T17:00:00Z","status":"superseded","chart":"cilium-1.15.9","app_version":"1.15.9","description":"Install complete"},
                {"revision":2,"updated":"2026-11-26T17:05:00Z","status":"failed","chart":"cilium-1.15.9","app_version":"1.15.9","description":"Upgrade failed"},
                {"revision":3,"status":"pending-rollback","chart":"cilium-1.15.9","app_version":"1.15.9","description":"Rollback"}]"#,
        )?;
        assert_eq!(last_good_revision(&history), Some(1));
        assert!(history[2].status.is_stuck());

        let list: Vec<ReleaseSummary> = serde_json::from_str(
            r#"[{"name":"cilium","namespace":"kube-system","revision":"7","updated":"2026-11-26 17:00:00 +0000 UTC","status":"deployed","chart":"cilium-1.15.9","app_version":"1.15.9"}]"#,
        )?;
        assert_eq!(list[0].revision, 7);

        let odd: Revision = serde_json::from_str(
            r#"{"revision":1,"status":"some-future-status","chart":"c-1","app_version":""}"#,
        )?;
        assert_eq!(odd.status, ReleaseStatus::Unrecognized);
        Ok(())
    }
}
