//! [`Helm`]: a located, version-checked helm binary and the typed calls on it. Every call runs
//! the binary with an argument vector (`std::process::Command`), never through a shell.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::chart::{ChartError, ChartSource, read_chart_yaml};
use crate::error::{HelmError, HelmFailure};
use crate::manifest::{Manifest, UninstallPlan};
use crate::release::{ChartMetadata, ReleaseInfo, ReleaseSummary, Revision, last_good_revision};
use crate::request::{RollbackRequest, TemplateRequest, UninstallRequest, UpgradeInstall};
use crate::version::{HelmMajor, HelmVersion};

/// A helm binary this crate can drive (Helm 3.17+ or 4.x), with the cluster it talks to.
#[derive(Debug, Clone)]
pub struct Helm {
    program: PathBuf,
    version: HelmVersion,
    major: HelmMajor,
    kubeconfig: Option<PathBuf>,
    kube_context: Option<String>,
    env: Vec<(OsString, OsString)>,
}

/// Which values `get_values` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValuesScope {
    /// Only the values the user supplied (`helm get values`).
    User,
    /// The chart's defaults merged with the user's (`helm get values --all`).
    All,
}

/// One configured chart repository (`helm repo list -o json`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Repository {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

/// What `helm uninstall` did: the plan computed from the release manifest beforehand, and the
/// objects Helm itself reported as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallReport {
    /// Deleted vs kept, from `helm get manifest` before uninstalling.
    pub plan: UninstallPlan,
    /// `[Kind] name` lines Helm printed under "These resources were kept due to the resource
    /// policy".
    pub kept_by_helm: Vec<String>,
}

impl Helm {
    /// Finds helm (`explicit` is `--helm`, else `helm` on `PATH`), reads its version, and
    /// refuses versions this crate does not drive.
    pub fn locate(explicit: Option<&Path>) -> Result<Helm, HelmError> {
        let program = match explicit {
            Some(path) => {
                if !path.is_file() {
                    return Err(HelmError::BinaryMissing {
                        path: path.to_owned(),
                    });
                }
                path.to_owned()
            }
            None => find_on_path("helm").ok_or(HelmError::NotOnPath)?,
        };
        let version = read_version(&program)?;
        let major = version.support().map_err(|reason| HelmError::Unsupported {
            program: program.clone(),
            reason,
        })?;
        Ok(Helm {
            program,
            version,
            major,
            kubeconfig: None,
            kube_context: None,
            env: Vec::new(),
        })
    }

    /// Talk to the cluster of this kubeconfig (`--kubeconfig`) instead of `$KUBECONFIG`. Helm
    /// never sees `KUBECONFIG` or the `HELM_KUBE*` overrides of this process (those are dropped
    /// even without a kubeconfig: the Kubernetes client ignores them).
    pub fn with_kubeconfig(mut self, path: &Path) -> Helm {
        self.kubeconfig = Some(path.to_owned());
        self
    }

    /// Use this kubeconfig context (`--kube-context`).
    pub fn with_kube_context(mut self, context: &str) -> Helm {
        self.kube_context = Some(context.to_owned());
        self
    }

    /// Set an environment variable for every helm run.
    pub fn with_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Helm {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Keep Helm's repositories, cache and plugins under `dir` (tests, and runs that must not
    /// touch the operator's own Helm configuration).
    pub fn with_home(self, dir: &Path) -> Helm {
        let config = dir.join("config");
        let cache = dir.join("cache");
        // The three file variables win over the homes: one exported in the shell would lead
        // Helm back to the operator's repositories.
        self.with_env("HELM_REPOSITORY_CONFIG", config.join("repositories.yaml"))
            .with_env("HELM_REPOSITORY_CACHE", cache.join("repository"))
            .with_env("HELM_REGISTRY_CONFIG", config.join("registry/config.json"))
            .with_env("HELM_CONFIG_HOME", config)
            .with_env("HELM_CACHE_HOME", cache)
            .with_env("HELM_DATA_HOME", dir.join("data"))
    }

    /// The binary's path.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Its version.
    pub fn version(&self) -> &HelmVersion {
        &self.version
    }

    /// Its major (which decides flags).
    pub fn major(&self) -> HelmMajor {
        self.major
    }

    /// The `Command` for helm with `args`, this driver's kubeconfig, context and environment;
    /// for callers that must spawn helm themselves (to stream or interrupt it).
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let (command, _) = self.command_and_args(args);
        command
    }

    fn command_and_args<I, S>(&self, args: I) -> (Command, Vec<OsString>)
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        if let Some(kubeconfig) = &self.kubeconfig {
            args.extend(["--kubeconfig".into(), kubeconfig.into()]);
        }
        if let Some(context) = &self.kube_context {
            args.extend(["--kube-context".into(), context.into()]);
        }
        let mut command = Command::new(&self.program);
        command
            .args(&args)
            .stdin(Stdio::null())
            // Helm 4 colours its output on terminals; never in what we parse.
            .env("NO_COLOR", "1");
        // Helm reads these at every call and they win over the kubeconfig: a `HELM_KUBECONTEXT`
        // exported in the operator's shell would send helm to another cluster than the one the
        // Kubernetes client identified (which ignores them).
        for key in kube_overrides() {
            command.env_remove(key);
        }
        if self.kubeconfig.is_some() {
            command.env_remove("KUBECONFIG");
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        (command, args)
    }

    /// Runs helm with `args` and returns stdout; a failure becomes [`HelmError::Helm`] with
    /// the classified stderr.
    pub fn run<I, S>(&self, args: I) -> Result<String, HelmError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let (mut command, args) = self.command_and_args(args);
        let output = command.output().map_err(|source| HelmError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        Err(HelmError::Helm {
            command: command_line(&self.program, &args),
            failure: HelmFailure::from_stderr(&stderr),
            stderr,
        })
    }

    fn run_json<T: DeserializeOwned>(
        &self,
        args: Vec<OsString>,
        expected: &'static str,
    ) -> Result<T, HelmError> {
        let stdout = self.run(args.clone())?;
        serde_json::from_str(&stdout).map_err(|e| HelmError::Output {
            command: command_line(&self.program, &args),
            expected,
            detail: e.to_string(),
        })
    }

    /// `helm repo list -o json` (empty when none is configured).
    pub fn repo_list(&self) -> Result<Vec<Repository>, HelmError> {
        match self.run(["repo", "list", "--output", "json"]) {
            Ok(stdout) if stdout.trim().is_empty() => Ok(Vec::new()),
            Ok(stdout) => serde_json::from_str(&stdout).map_err(|e| HelmError::Output {
                command: "helm repo list --output json".to_owned(),
                expected: "a JSON repository list",
                detail: e.to_string(),
            }),
            // Helm 3 fails when there are none.
            Err(HelmError::Helm { stderr, .. }) if stderr.contains("no repositories to show") => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// `helm repo add NAME URL`.
    pub fn repo_add(&self, name: &str, url: &str) -> Result<(), HelmError> {
        self.run(["repo", "add", name, url]).map(drop)
    }

    /// `helm repo update [NAME...]` (all repositories when `names` is empty); fails when an
    /// index cannot be fetched.
    pub fn repo_update(&self, names: &[&str]) -> Result<(), HelmError> {
        let mut args: Vec<OsString> = vec!["repo".into(), "update".into()];
        // Helm 3 only warns and exits 0, leaving the old index in use (Helm 4 fails).
        if self.major == HelmMajor::V3 {
            args.push("--fail-on-repo-update-fail".into());
        }
        args.extend(names.iter().map(OsString::from));
        self.run(args).map(drop)
    }

    /// Makes a chart source usable: for `repo/chart`, refreshes the index of the repository the
    /// operator added (a mirror under that name included); one that is not added is refused with
    /// the command that adds it, never added behind their back. Local charts are checked again.
    pub fn prepare(&self, source: &ChartSource) -> Result<(), HelmError> {
        match source {
            ChartSource::Repository { repo, url, .. } => {
                let configured = self.repo_list()?.iter().any(|r| &r.name == repo);
                if configured {
                    self.repo_update(&[repo])
                } else {
                    Err(match url {
                        Some(url) => ChartError::RepositoryNotAdded {
                            repo: repo.clone(),
                            url: url.clone(),
                        },
                        None => ChartError::RepositoryUnknown { repo: repo.clone() },
                    }
                    .into())
                }
            }
            ChartSource::Oci(_) => Ok(()),
            ChartSource::Archive(path) | ChartSource::Directory(path) => {
                ChartSource::from_path(path)?;
                Ok(())
            }
        }
    }

    /// The chart's `Chart.yaml` (`helm show chart`, or the file itself for a directory).
    pub fn show_chart(
        &self,
        source: &ChartSource,
        version: Option<&str>,
    ) -> Result<ChartMetadata, HelmError> {
        if let ChartSource::Directory(dir) = source {
            return Ok(read_chart_yaml(&dir.join("Chart.yaml"))?);
        }
        let mut args: Vec<OsString> = vec!["show".into(), "chart".into(), source.reference()];
        if let (Some(version), true) = (version, source.is_remote()) {
            args.extend(["--version".into(), version.into()]);
        }
        let stdout = self.run(args.clone())?;
        serde_saphyr::from_str(&stdout).map_err(|e| HelmError::Output {
            command: command_line(&self.program, &args),
            expected: "a Chart.yaml",
            detail: e.to_string(),
        })
    }

    /// `helm pull` of a repository or OCI chart into `dest`; returns the `.tgz` written.
    pub fn pull(
        &self,
        source: &ChartSource,
        version: Option<&str>,
        dest: &Path,
    ) -> Result<PathBuf, HelmError> {
        if let Some(path) = source.local_path() {
            return Err(HelmError::InvalidRequest {
                field: "chart",
                value: path.display().to_string(),
                reason: "is already local; pull takes a repository or oci:// chart",
            });
        }
        let before = tgz_files(dest)?;
        let mut args: Vec<OsString> = vec!["pull".into(), source.reference()];
        if let Some(version) = version {
            args.extend(["--version".into(), version.into()]);
        }
        args.extend(["--destination".into(), dest.into()]);
        self.run(args.clone())?;
        let mut new: Vec<PathBuf> = tgz_files(dest)?.difference(&before).cloned().collect();
        match (new.pop(), new.is_empty()) {
            (Some(path), true) => Ok(path),
            _ => Err(HelmError::Output {
                command: command_line(&self.program, &args),
                expected: "exactly one new chart archive",
                detail: format!("look in {}", dest.display()),
            }),
        }
    }

    /// `helm package DIR --destination DEST`; returns the `.tgz` written.
    pub fn package(&self, chart_dir: &Path, dest: &Path) -> Result<PathBuf, HelmError> {
        let args: Vec<OsString> = vec![
            "package".into(),
            chart_dir.into(),
            "--destination".into(),
            dest.into(),
        ];
        let stdout = self.run(args.clone())?;
        stdout
            .lines()
            .find_map(|l| {
                l.split_once("saved it to: ")
                    .map(|(_, p)| PathBuf::from(p.trim()))
            })
            .ok_or_else(|| HelmError::Output {
                command: command_line(&self.program, &args),
                expected: "the path of the packaged chart",
                detail: stdout.trim().to_owned(),
            })
    }

    /// `helm template`: the rendered manifest text (parse it with [`Manifest::parse`]). A
    /// repository chart needs [`Helm::prepare`] first (it may reach the network).
    pub fn template(&self, request: &TemplateRequest) -> Result<String, HelmError> {
        check_values_files(&request.values_files)?;
        check_local_version(self, &request.chart, request.version.as_deref())?;
        self.run(request.args()?)
    }

    /// `helm upgrade --install` (a repository chart needs [`Helm::prepare`] first). Refuses a release whose last revision is pending (an
    /// interrupted run) with [`HelmError::ReleaseStuck`]; a `failed` one is upgraded (a retry).
    pub fn upgrade_install(&self, request: &UpgradeInstall) -> Result<ReleaseInfo, HelmError> {
        let args = request.args(&self.version)?;
        check_values_files(&request.values_files)?;
        check_local_version(self, &request.chart, request.version.as_deref())?;
        if let Some(status) = self.status(&request.release, &request.namespace)?
            && status.info.status.is_stuck()
            && status.info.status != crate::ReleaseStatus::Failed
        {
            return Err(self.stuck(&status)?);
        }
        self.run_json(args, "a JSON release")
    }

    fn stuck(&self, status: &ReleaseInfo) -> Result<HelmError, HelmError> {
        let history = self.history(&status.name, &status.namespace)?;
        Ok(HelmError::ReleaseStuck {
            release: status.name.clone(),
            namespace: status.namespace.clone(),
            status: status.info.status,
            revision: status.revision,
            last_deployed: last_good_revision(&history),
        })
    }

    /// The release's status, or why it needs attention: `Ok(None)` when there is no release,
    /// [`HelmError::ReleaseStuck`] when its last revision is pending or failed.
    pub fn check_release(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Option<ReleaseInfo>, HelmError> {
        match self.status(release, namespace)? {
            Some(status) if status.info.status.is_stuck() => Err(self.stuck(&status)?),
            other => Ok(other),
        }
    }

    /// `helm status -o json`; `None` when there is no such release.
    pub fn status(&self, release: &str, namespace: &str) -> Result<Option<ReleaseInfo>, HelmError> {
        let args = vec![
            "status".into(),
            release.into(),
            "--namespace".into(),
            namespace.into(),
            "--output".into(),
            "json".into(),
        ];
        not_found_is_none(self.run_json(args, "a JSON release status"))
    }

    /// `helm history -o json`; empty when there is no such release.
    pub fn history(&self, release: &str, namespace: &str) -> Result<Vec<Revision>, HelmError> {
        let args = vec![
            "history".into(),
            release.into(),
            "--namespace".into(),
            namespace.into(),
            "--max".into(),
            "1000".into(),
            "--output".into(),
            "json".into(),
        ];
        Ok(not_found_is_none(self.run_json(args, "a JSON release history"))?.unwrap_or_default())
    }

    /// `helm get values -o json` (`{}` when none were supplied).
    pub fn get_values(
        &self,
        release: &str,
        namespace: &str,
        scope: ValuesScope,
        revision: Option<u32>,
    ) -> Result<serde_json::Value, HelmError> {
        let mut args: Vec<OsString> = vec![
            "get".into(),
            "values".into(),
            release.into(),
            "--namespace".into(),
            namespace.into(),
            "--output".into(),
            "json".into(),
        ];
        if scope == ValuesScope::All {
            args.push("--all".into());
        }
        if let Some(revision) = revision {
            args.extend(["--revision".into(), revision.to_string().into()]);
        }
        let values: serde_json::Value = self.run_json(args, "JSON values")?;
        Ok(if values.is_null() {
            serde_json::json!({})
        } else {
            values
        })
    }

    /// `helm get manifest` as text.
    pub fn get_manifest(&self, release: &str, namespace: &str) -> Result<String, HelmError> {
        self.run(["get", "manifest", release, "--namespace", namespace])
    }

    /// Which objects `helm uninstall` would delete and which it keeps
    /// (`helm.sh/resource-policy: keep`), from the release manifest.
    pub fn uninstall_plan(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<UninstallPlan, HelmError> {
        let text = self.get_manifest(release, namespace)?;
        let manifest = Manifest::parse(&text).map_err(|e| HelmError::Output {
            command: format!("helm get manifest {release} --namespace {namespace}"),
            expected: "a Kubernetes manifest",
            detail: e.to_string(),
        })?;
        Ok(manifest.uninstall_plan())
    }

    /// `helm rollback`.
    pub fn rollback(&self, request: &RollbackRequest) -> Result<(), HelmError> {
        self.run(request.args(&self.version)?).map(drop)
    }

    /// `helm uninstall`, reporting what was deleted and kept. Note: this deletes every object
    /// the release adopted unless it is annotated `helm.sh/resource-policy: keep`; check
    /// [`Helm::uninstall_plan`] first.
    pub fn uninstall(&self, request: &UninstallRequest) -> Result<UninstallReport, HelmError> {
        let args = request.args(&self.version)?;
        let plan = self.uninstall_plan(&request.release, &request.namespace)?;
        let stdout = self.run(args)?;
        let kept_by_helm = stdout
            .lines()
            .skip_while(|l| !l.contains("kept due to the resource policy"))
            .skip(1)
            .take_while(|l| l.starts_with('['))
            .map(str::to_owned)
            .collect();
        Ok(UninstallReport { plan, kept_by_helm })
    }

    /// Every release in one namespace (all namespaces with `None`), whatever its status:
    /// Helm 3 `helm list --all -o json`; Helm 4 lists every status by default (no `--all`).
    pub fn list(&self, namespace: Option<&str>) -> Result<Vec<ReleaseSummary>, HelmError> {
        let mut args: Vec<OsString> = vec!["list".into(), "--output".into(), "json".into()];
        if self.major == HelmMajor::V3 {
            args.push("--all".into());
        }
        match namespace {
            Some(ns) => args.extend(["--namespace".into(), ns.into()]),
            None => args.push("--all-namespaces".into()),
        }
        self.run_json(args, "a JSON release list")
    }
}

/// Helm's environment variables that override the kubeconfig (Helm 3.17 and 4), and any other
/// `HELM_KUBE*` this process has.
const HELM_KUBE_VARIABLES: &[&str] = &[
    "HELM_KUBEAPISERVER",
    "HELM_KUBEASGROUPS",
    "HELM_KUBEASUSER",
    "HELM_KUBECAFILE",
    "HELM_KUBECONTEXT",
    "HELM_KUBEINSECURE_SKIP_TLS_VERIFY",
    "HELM_KUBETLS_SERVER_NAME",
    "HELM_KUBETOKEN",
];

fn kube_overrides() -> Vec<OsString> {
    let mut keys: Vec<OsString> = HELM_KUBE_VARIABLES.iter().map(OsString::from).collect();
    let present: Vec<OsString> = std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| key.to_string_lossy().starts_with("HELM_KUBE") && !keys.contains(key))
        .collect();
    keys.extend(present);
    keys
}

fn not_found_is_none<T>(result: Result<T, HelmError>) -> Result<Option<T>, HelmError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(HelmError::Helm {
            failure: HelmFailure::ReleaseNotFound,
            ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn check_values_files(files: &[PathBuf]) -> Result<(), HelmError> {
    for path in files {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                return Err(HelmError::ValuesFile {
                    path: path.clone(),
                    reason: "is not a regular file".to_owned(),
                });
            }
            Err(e) => {
                return Err(HelmError::ValuesFile {
                    path: path.clone(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A version asked for with a local chart must be that chart's version (helm would ignore it).
fn check_local_version(
    helm: &Helm,
    chart: &ChartSource,
    version: Option<&str>,
) -> Result<(), HelmError> {
    let (Some(path), Some(requested)) = (chart.local_path(), version) else {
        return Ok(());
    };
    let actual = helm.show_chart(chart, None)?.version;
    if actual.trim_start_matches('v') != requested.trim_start_matches('v') {
        return Err(ChartError::VersionMismatch {
            path: path.to_owned(),
            requested: requested.to_owned(),
            actual,
        }
        .into());
    }
    Ok(())
}

fn tgz_files(dir: &Path) -> Result<BTreeSet<PathBuf>, HelmError> {
    let io = |source| HelmError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "tgz") {
            files.insert(path);
        }
    }
    Ok(files)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn read_version(program: &Path) -> Result<HelmVersion, HelmError> {
    let spawn = |source| HelmError::Spawn {
        program: program.to_owned(),
        source,
    };
    // `--template` prints exactly the version on both majors; `--short` is the fallback for
    // builds whose template support is broken.
    let mut printed = String::new();
    for args in [
        &["version", "--template", "{{.Version}}"][..],
        &["version", "--short"][..],
    ] {
        let output = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .env("NO_COLOR", "1")
            .output()
            .map_err(spawn)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success()
            && let Some(version) = HelmVersion::parse(&stdout)
        {
            return Ok(version);
        }
        printed = format!("{}{}", stdout, String::from_utf8_lossy(&output.stderr))
            .trim()
            .to_owned();
    }
    Err(HelmError::VersionUnreadable {
        program: program.to_owned(),
        output: printed,
    })
}

/// The command as an operator would type it, for messages (quoted where needed).
fn command_line(program: &Path, args: &[OsString]) -> String {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let mut line = name.into_owned();
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c));
        if plain {
            line.push_str(&arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', "'\\''"));
            line.push('\'');
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        let args: Vec<OsString> = ["template", "x y", "--set", "a='b'", ""]
            .map(Into::into)
            .to_vec();
        assert_eq!(
            command_line(Path::new("/usr/bin/helm"), &args),
            "helm template 'x y' --set 'a='\\''b'\\''' ''"
        );
    }

    /// One cluster for every call: the kubeconfig and context are arguments, and nothing in
    /// helm's environment can point it elsewhere.
    #[test]
    fn a_pinned_helm_gets_its_cluster_in_arguments_and_no_kube_environment() {
        let helm = Helm {
            program: PathBuf::from("/usr/bin/helm"),
            version: HelmVersion::parse("v3.18.4").expect("a version"),
            major: HelmMajor::V3,
            kubeconfig: None,
            kube_context: None,
            env: Vec::new(),
        }
        .with_kubeconfig(Path::new("/run/pinned/kubeconfig"))
        .with_kube_context("prod");
        let command = helm.command(["status", "cilium"]);
        let args: Vec<&OsStr> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "status",
                "cilium",
                "--kubeconfig",
                "/run/pinned/kubeconfig",
                "--kube-context",
                "prod"
            ]
        );
        let removed: Vec<&OsStr> = command
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key)
            .collect();
        for key in [
            "KUBECONFIG",
            "HELM_KUBECONTEXT",
            "HELM_KUBEAPISERVER",
            "HELM_KUBETOKEN",
        ] {
            assert!(
                removed.contains(&OsStr::new(key)),
                "{key} stays: {removed:?}"
            );
        }
    }

    #[test]
    fn a_missing_explicit_binary_is_named() {
        let err = Helm::locate(Some(Path::new("/nonexistent/helm"))).expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/helm does not exist"),
            "{err}"
        );
    }

    #[test]
    fn missing_values_files_are_named_before_helm_runs() {
        let err =
            check_values_files(&[PathBuf::from("/nonexistent/values.yaml")]).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("values file /nonexistent/values.yaml:"),
            "{err}"
        );
    }
}
