//! Typed requests, and the argument vectors they become for each Helm major.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::chart::ChartSource;
use crate::error::HelmError;
use crate::version::{HelmMajor, HelmVersion};

/// How objects that already exist in the cluster relate to the release.
///
/// Rolling back on failure (`--atomic`, Helm 4 `--rollback-on-failure`) exists only in
/// [`Ownership::Fresh`]: on a first install it *uninstalls*, which would delete objects the
/// release had just adopted (the running Cilium DaemonSet). An adopting request cannot ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// None of the release's objects exist outside Helm (not even pre-labelled for adoption).
    Fresh {
        /// What Helm does when the install or upgrade fails.
        on_failure: OnFailure,
    },
    /// Existing objects become the release's; a failure leaves everything in place.
    Adopt {
        /// Pass `--take-ownership` (Helm 3.17+, 4): adopt objects without Helm's ownership
        /// metadata. `false` when the objects were labelled and annotated beforehand.
        take_ownership: bool,
    },
}

/// What a failed fresh install or upgrade leaves behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The failed revision stays (status `failed`), objects stay as applied.
    Keep,
    /// Roll back (upgrade) or uninstall (install): `--atomic` / `--rollback-on-failure`.
    RollBack,
}

/// How long and for what Helm waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Only for hooks (Helm 3 without `--wait`; Helm 4 `--wait=hookOnly`, its default).
    HooksOnly,
    /// For every object to be ready: Helm 3 `--wait` (polling); Helm 4 `--wait=watcher`
    /// (kstatus watcher).
    Ready,
    /// For every object to be ready with Helm 3's polling checks on both majors: Helm 3
    /// `--wait`; Helm 4 `--wait=legacy`.
    ReadyLegacy,
}

/// How Helm writes objects (Helm 4 has server-side apply; Helm 3 only the client-side
/// three-way merge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMethod {
    /// This crate's choice: client-side for an adopting request (see the crate docs), Helm's
    /// own default otherwise (Helm 4: server-side for a new install, the previous revision's
    /// method for an upgrade or rollback).
    Default,
    /// Client-side three-way merge (Helm 4 `--server-side=false`; Helm 3 always).
    ClientSide,
    /// Server-side apply (Helm 4 `--server-side=true`); `force_conflicts` takes fields owned by
    /// other managers (`--force-conflicts`). Helm 3 cannot.
    ServerSide {
        /// Overwrite fields owned by other field managers.
        force_conflicts: bool,
    },
}

/// `helm upgrade --install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeInstall {
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// The chart.
    pub chart: ChartSource,
    /// Chart version (for a local chart: checked against its Chart.yaml).
    pub version: Option<String>,
    /// Values files, in order (later ones win).
    pub values_files: Vec<PathBuf>,
    /// Fresh install or adoption (decides whether rolling back on failure is possible).
    pub ownership: Ownership,
    /// What to wait for.
    pub wait: Wait,
    /// Also wait for Jobs to complete (only with `Ready`/`ReadyLegacy`).
    pub wait_for_jobs: bool,
    /// Helm's `--timeout`.
    pub timeout: Duration,
    /// Client- or server-side apply.
    pub apply: ApplyMethod,
}

impl UpgradeInstall {
    /// An adopting request with this crate's defaults: take ownership, client-side apply,
    /// wait until ready, 10 minutes.
    pub fn adopt(release: &str, namespace: &str, chart: ChartSource) -> UpgradeInstall {
        UpgradeInstall {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            chart,
            version: None,
            values_files: Vec::new(),
            ownership: Ownership::Adopt {
                take_ownership: true,
            },
            wait: Wait::Ready,
            wait_for_jobs: false,
            timeout: Duration::from_secs(600),
            apply: ApplyMethod::Default,
        }
    }

    /// The apply method this request uses once `Default` is resolved.
    pub fn effective_apply(&self) -> ApplyMethod {
        match (self.apply, self.ownership) {
            (ApplyMethod::Default, Ownership::Adopt { .. }) => ApplyMethod::ClientSide,
            (apply, _) => apply,
        }
    }

    /// The argument vector for this Helm version (`-o json` included).
    pub fn args(&self, version: &HelmVersion) -> Result<Vec<OsString>, HelmError> {
        let major = major_of(version)?;
        check_name("release", &self.release)?;
        check_name("namespace", &self.namespace)?;
        let mut args: Vec<OsString> = vec![
            "upgrade".into(),
            "--install".into(),
            self.release.clone().into(),
            self.chart.reference(),
            "--namespace".into(),
            self.namespace.clone().into(),
        ];
        if let (Some(version), true) = (&self.version, self.chart.is_remote()) {
            args.extend(["--version".into(), version.into()]);
        }
        for file in &self.values_files {
            args.extend(["--values".into(), file.into()]);
        }
        // The values are exactly the request's files: without this, an upgrade given no values
        // silently reuses the previous revision's.
        args.push("--reset-values".into());
        match self.ownership {
            Ownership::Adopt {
                take_ownership: true,
            } => args.push("--take-ownership".into()),
            Ownership::Adopt {
                take_ownership: false,
            } => {}
            Ownership::Fresh {
                on_failure: OnFailure::Keep,
            } => {}
            Ownership::Fresh {
                on_failure: OnFailure::RollBack,
            } => args.push(match major {
                HelmMajor::V3 => "--atomic".into(),
                HelmMajor::V4 => "--rollback-on-failure".into(),
            }),
        }
        args.extend(wait_args(major, self.wait, self.wait_for_jobs));
        args.extend(timeout_args(self.timeout));
        args.extend(apply_args(version, major, self.effective_apply())?);
        args.extend(["--output".into(), "json".into()]);
        Ok(args)
    }
}

/// `helm template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRequest {
    /// Release name the templates see.
    pub release: String,
    /// Namespace the templates see.
    pub namespace: String,
    /// The chart.
    pub chart: ChartSource,
    /// Chart version (repositories and OCI).
    pub version: Option<String>,
    /// Values files, in order.
    pub values_files: Vec<PathBuf>,
    /// `--kube-version`, for charts that check `.Capabilities.KubeVersion`.
    pub kube_version: Option<String>,
    /// `--api-versions`, for charts that check `.Capabilities.APIVersions`.
    pub api_versions: Vec<String>,
    /// `--include-crds`.
    pub include_crds: bool,
}

impl TemplateRequest {
    /// A request for a release in a namespace, with no values.
    pub fn new(release: &str, namespace: &str, chart: ChartSource) -> TemplateRequest {
        TemplateRequest {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            chart,
            version: None,
            values_files: Vec::new(),
            kube_version: None,
            api_versions: Vec::new(),
            include_crds: false,
        }
    }

    /// The argument vector.
    pub fn args(&self) -> Result<Vec<OsString>, HelmError> {
        check_name("release", &self.release)?;
        check_name("namespace", &self.namespace)?;
        let mut args: Vec<OsString> = vec![
            "template".into(),
            self.release.clone().into(),
            self.chart.reference(),
            "--namespace".into(),
            self.namespace.clone().into(),
        ];
        if let (Some(version), true) = (&self.version, self.chart.is_remote()) {
            args.extend(["--version".into(), version.into()]);
        }
        for file in &self.values_files {
            args.extend(["--values".into(), file.into()]);
        }
        if let Some(kube_version) = &self.kube_version {
            args.extend(["--kube-version".into(), kube_version.into()]);
        }
        for api in &self.api_versions {
            args.extend(["--api-versions".into(), api.into()]);
        }
        if self.include_crds {
            args.push("--include-crds".into());
        }
        Ok(args)
    }
}

/// `helm rollback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRequest {
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// Target revision; `None` is the previous one.
    pub revision: Option<u32>,
    /// What to wait for.
    pub wait: Wait,
    /// Helm's `--timeout`.
    pub timeout: Duration,
    /// `Default` keeps Helm's choice (Helm 4: the method of the revision rolled back from).
    pub apply: ApplyMethod,
}

impl RollbackRequest {
    /// Roll back to `revision` (or the previous one), waiting until ready.
    pub fn new(release: &str, namespace: &str, revision: Option<u32>) -> RollbackRequest {
        RollbackRequest {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            revision,
            wait: Wait::Ready,
            timeout: Duration::from_secs(600),
            apply: ApplyMethod::Default,
        }
    }

    /// The argument vector for this Helm version.
    pub fn args(&self, version: &HelmVersion) -> Result<Vec<OsString>, HelmError> {
        let major = major_of(version)?;
        check_name("release", &self.release)?;
        check_name("namespace", &self.namespace)?;
        let mut args: Vec<OsString> = vec!["rollback".into(), self.release.clone().into()];
        if let Some(revision) = self.revision {
            if revision == 0 {
                return Err(HelmError::InvalidRequest {
                    field: "revision",
                    value: "0".to_owned(),
                    reason: "revisions start at 1; use None for the previous revision",
                });
            }
            args.push(revision.to_string().into());
        }
        args.extend(["--namespace".into(), self.namespace.clone().into()]);
        args.extend(wait_args(major, self.wait, false));
        args.extend(timeout_args(self.timeout));
        args.extend(apply_args(version, major, self.apply)?);
        Ok(args)
    }
}

/// `helm uninstall`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallRequest {
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// Keep the release records (status `uninstalled`).
    pub keep_history: bool,
    /// Wait until deleted objects are gone.
    pub wait: bool,
    /// Helm's `--timeout`.
    pub timeout: Duration,
}

impl UninstallRequest {
    /// Uninstall, waiting for deletion, 5 minutes.
    pub fn new(release: &str, namespace: &str) -> UninstallRequest {
        UninstallRequest {
            release: release.to_owned(),
            namespace: namespace.to_owned(),
            keep_history: false,
            wait: true,
            timeout: Duration::from_secs(300),
        }
    }

    /// The argument vector for this Helm version.
    pub fn args(&self, version: &HelmVersion) -> Result<Vec<OsString>, HelmError> {
        let major = major_of(version)?;
        check_name("release", &self.release)?;
        check_name("namespace", &self.namespace)?;
        let mut args: Vec<OsString> = vec![
            "uninstall".into(),
            self.release.clone().into(),
            "--namespace".into(),
            self.namespace.clone().into(),
        ];
        if self.keep_history {
            args.push("--keep-history".into());
        }
        if self.wait {
            args.push(match major {
                HelmMajor::V3 => "--wait".into(),
                HelmMajor::V4 => "--wait=watcher".into(),
            });
        }
        args.extend(timeout_args(self.timeout));
        Ok(args)
    }
}

fn major_of(version: &HelmVersion) -> Result<HelmMajor, HelmError> {
    version.support().map_err(|reason| HelmError::Unsupported {
        program: PathBuf::from("helm"),
        reason,
    })
}

fn wait_args(major: HelmMajor, wait: Wait, for_jobs: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = match (major, wait) {
        (HelmMajor::V3, Wait::HooksOnly) => vec![],
        (HelmMajor::V3, Wait::Ready | Wait::ReadyLegacy) => vec!["--wait".into()],
        (HelmMajor::V4, Wait::HooksOnly) => vec!["--wait=hookOnly".into()],
        (HelmMajor::V4, Wait::Ready) => vec!["--wait=watcher".into()],
        (HelmMajor::V4, Wait::ReadyLegacy) => vec!["--wait=legacy".into()],
    };
    if for_jobs && wait != Wait::HooksOnly {
        args.push("--wait-for-jobs".into());
    }
    args
}

fn timeout_args(timeout: Duration) -> Vec<OsString> {
    // Go's time.ParseDuration reads whole seconds; never pass 0s (it means "no time at all").
    vec![
        "--timeout".into(),
        format!("{}s", timeout.as_secs().max(1)).into(),
    ]
}

fn apply_args(
    version: &HelmVersion,
    major: HelmMajor,
    apply: ApplyMethod,
) -> Result<Vec<OsString>, HelmError> {
    Ok(match (major, apply) {
        (_, ApplyMethod::Default) => vec![],
        (HelmMajor::V3, ApplyMethod::ClientSide) => vec![],
        (HelmMajor::V3, ApplyMethod::ServerSide { .. }) => {
            return Err(HelmError::NeedsHelm4 {
                what: "server-side apply",
                version: version.clone(),
                hint: "use client-side apply with Helm 3, or a Helm 4 binary",
            });
        }
        (HelmMajor::V4, ApplyMethod::ClientSide) => vec!["--server-side=false".into()],
        (HelmMajor::V4, ApplyMethod::ServerSide { force_conflicts }) => {
            let mut args: Vec<OsString> = vec!["--server-side=true".into()];
            if force_conflicts {
                args.push("--force-conflicts".into());
            }
            args
        }
    })
}

/// Release names and namespaces are DNS-1123 labels (Helm limits release names to 53).
fn check_name(field: &'static str, value: &str) -> Result<(), HelmError> {
    let limit = if field == "release" { 53 } else { 63 };
    let ok = !value.is_empty()
        && value.len() <= limit
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(HelmError::InvalidRequest {
            field,
            value: value.to_owned(),
            reason: "lowercase letters, digits and '-', starting and ending with a letter or digit",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> HelmVersion {
        HelmVersion::parse(text).expect("test version parses")
    }

    fn strings(args: Vec<OsString>) -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn adopt() -> UpgradeInstall {
        let mut req = UpgradeInstall::adopt("cilium", "kube-system", ChartSource::cilium());
        req.version = Some("1.15.9".to_owned());
        req.values_files = vec![PathBuf::from("/inv/cilium-values.yaml")];
        req.timeout = Duration::from_secs(900);
        req
    }

    #[test]
    fn adopting_install_per_major() -> Result<(), HelmError> {
        let common = [
            "upgrade",
            "--install",
            "cilium",
            "cilium/cilium",
            "--namespace",
            "kube-system",
            "--version",
            "1.15.9",
            "--values",
            "/inv/cilium-values.yaml",
            "--reset-values",
            "--take-ownership",
        ];
        let helm3 = strings(adopt().args(&v("v3.17.0"))?);
        let mut expected3: Vec<&str> = common.to_vec();
        expected3.extend(["--wait", "--timeout", "900s", "--output", "json"]);
        assert_eq!(helm3, expected3);

        let helm4 = strings(adopt().args(&v("v4.1.4"))?);
        let mut expected4: Vec<&str> = common.to_vec();
        expected4.extend([
            "--wait=watcher",
            "--timeout",
            "900s",
            "--server-side=false",
            "--output",
            "json",
        ]);
        assert_eq!(helm4, expected4);
        Ok(())
    }

    #[test]
    fn no_adopting_request_can_roll_back_on_failure() -> Result<(), HelmError> {
        // Every adopting combination, every major: never --atomic / --rollback-on-failure.
        for take_ownership in [true, false] {
            for wait in [Wait::HooksOnly, Wait::Ready, Wait::ReadyLegacy] {
                for version in ["v3.17.0", "v3.22.0", "v4.0.0", "v4.3.1"] {
                    let mut req = adopt();
                    req.ownership = Ownership::Adopt { take_ownership };
                    req.wait = wait;
                    let args = strings(req.args(&v(version))?);
                    assert!(
                        !args
                            .iter()
                            .any(|a| a == "--atomic" || a == "--rollback-on-failure"),
                        "{args:?}"
                    );
                    assert_eq!(args.iter().any(|a| a == "--take-ownership"), take_ownership);
                }
            }
        }
        let mut fresh = adopt();
        fresh.ownership = Ownership::Fresh {
            on_failure: OnFailure::RollBack,
        };
        assert!(strings(fresh.args(&v("v3.18.0"))?).contains(&"--atomic".to_owned()));
        assert!(strings(fresh.args(&v("v4.1.0"))?).contains(&"--rollback-on-failure".to_owned()));
        Ok(())
    }

    #[test]
    fn apply_method_per_major() -> Result<(), HelmError> {
        let mut req = adopt();
        req.apply = ApplyMethod::ServerSide {
            force_conflicts: true,
        };
        let args = strings(req.args(&v("v4.1.4"))?);
        assert!(args.contains(&"--server-side=true".to_owned()));
        assert!(args.contains(&"--force-conflicts".to_owned()));
        let err = req.args(&v("v3.17.0")).expect_err("helm 3 has no SSA");
        assert!(
            err.to_string().contains("server-side apply needs Helm 4"),
            "{err}"
        );

        let mut fresh = adopt();
        fresh.ownership = Ownership::Fresh {
            on_failure: OnFailure::Keep,
        };
        let args = strings(fresh.args(&v("v4.1.4"))?);
        assert!(
            !args.iter().any(|a| a.starts_with("--server-side")),
            "Helm's default: {args:?}"
        );
        Ok(())
    }

    #[test]
    fn wait_strategies_per_major() {
        let cases = [
            (HelmMajor::V3, Wait::HooksOnly, true, vec![]),
            (
                HelmMajor::V3,
                Wait::Ready,
                true,
                vec!["--wait", "--wait-for-jobs"],
            ),
            (HelmMajor::V3, Wait::ReadyLegacy, false, vec!["--wait"]),
            (
                HelmMajor::V4,
                Wait::HooksOnly,
                true,
                vec!["--wait=hookOnly"],
            ),
            (HelmMajor::V4, Wait::Ready, false, vec!["--wait=watcher"]),
            (
                HelmMajor::V4,
                Wait::ReadyLegacy,
                true,
                vec!["--wait=legacy", "--wait-for-jobs"],
            ),
        ];
        for (major, wait, jobs, expected) in cases {
            assert_eq!(
                strings(wait_args(major, wait, jobs)),
                expected,
                "{major:?} {wait:?}"
            );
        }
    }

    #[test]
    fn local_charts_get_no_version_flag_and_bad_names_are_refused() -> Result<(), HelmError> {
        let mut req = adopt();
        req.chart = ChartSource::Directory(PathBuf::from("/charts/cilium"));
        let args = strings(req.args(&v("v3.17.0"))?);
        assert!(!args.contains(&"--version".to_owned()));
        assert_eq!(args[3], "/charts/cilium");

        for (release, namespace) in [("Cilium", "kube-system"), ("cilium", ""), ("-x", "ns")] {
            let mut req = adopt();
            req.release = release.to_owned();
            req.namespace = namespace.to_owned();
            assert!(matches!(
                req.args(&v("v3.17.0")),
                Err(HelmError::InvalidRequest { .. })
            ));
        }
        assert!(matches!(
            adopt().args(&v("v3.16.0")),
            Err(HelmError::Unsupported { .. })
        ));
        Ok(())
    }

    #[test]
    fn rollback_and_uninstall_args() -> Result<(), HelmError> {
        let rollback = RollbackRequest::new("cilium", "kube-system", Some(2));
        assert_eq!(
            strings(rollback.args(&v("v4.1.4"))?),
            [
                "rollback",
                "cilium",
                "2",
                "--namespace",
                "kube-system",
                "--wait=watcher",
                "--timeout",
                "600s"
            ]
        );
        let previous = RollbackRequest::new("cilium", "kube-system", None);
        assert_eq!(
            strings(previous.args(&v("v3.17.0"))?)[..3],
            ["rollback", "cilium", "--namespace"]
        );
        assert!(
            RollbackRequest::new("cilium", "kube-system", Some(0))
                .args(&v("v3.17.0"))
                .is_err()
        );

        let mut uninstall = UninstallRequest::new("cilium", "kube-system");
        uninstall.keep_history = true;
        assert_eq!(
            strings(uninstall.args(&v("v3.17.0"))?),
            [
                "uninstall",
                "cilium",
                "--namespace",
                "kube-system",
                "--keep-history",
                "--wait",
                "--timeout",
                "300s"
            ]
        );
        Ok(())
    }
}
