//! Where the hops' charts come from: a directory of `cilium-X.Y.Z.tgz` archives (`--charts DIR`,
//! air-gapped clusters and the tests) or Cilium's Helm repository (`cilium/cilium`, as the
//! operator added it to helm; its index refreshed before the versions are read, the archives
//! pulled into a cache directory so that the archive a plan pins by sha256 is the one applied).

use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use helm::{CILIUM_REPO_NAME, CILIUM_REPO_URL, ChartSource, Helm};
use semver::Version;

use crate::Error;
use crate::archive::ChartArchive;

/// The chart in the repository, as `helm search repo` names it.
const CHART: &str = "cilium/cilium";

/// The URL of the Helm repository `cilium` the operator added (any mirror of it will do).
/// Never added here: a plan changes nothing, and which repository to trust is the operator's
/// choice.
fn added_repository(helm: &Helm) -> Result<String, Error> {
    helm.repo_list()?
        .into_iter()
        .find(|r| r.name == CILIUM_REPO_NAME)
        .map(|r| r.url)
        .ok_or_else(|| Error::Repository {
            problem: format!(
                "helm has no repository named {CILIUM_REPO_NAME} (see `helm repo list`): add Cilium's with `helm repo add {CILIUM_REPO_NAME} {CILIUM_REPO_URL}` (or a mirror of it under that name), or pass --charts DIR (a directory of cilium-X.Y.Z.tgz archives); nothing was changed"
            ),
        })
}

/// Helm's error on one line (its stderr can span several).
fn one_line(error: &helm::HelmError) -> String {
    error
        .to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A source of chart archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartStore {
    /// `cilium-X.Y.Z.tgz` files in a directory.
    Directory(PathBuf),
    /// The `cilium/cilium` repository; archives are pulled into `cache`.
    Repository {
        /// Where pulled archives are kept.
        cache: PathBuf,
    },
}

impl ChartStore {
    /// How the store is named in messages (`--charts DIR` or `cilium/cilium`).
    pub fn describe(&self) -> String {
        match self {
            ChartStore::Directory(dir) => format!("--charts {}", dir.display()),
            ChartStore::Repository { .. } => "the Helm repository cilium/cilium".to_owned(),
        }
    }

    /// The chart versions available.
    pub fn versions(&self, helm: &Helm) -> Result<Vec<Version>, Error> {
        match self {
            ChartStore::Directory(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                let mut versions: Vec<Version> = entries
                    .filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        Version::parse(name.strip_prefix("cilium-")?.strip_suffix(".tgz")?).ok()
                    })
                    .collect();
                versions.sort();
                Ok(versions)
            }
            ChartStore::Repository { .. } => {
                let url = added_repository(helm)?;
                // The newest patch of each minor is the path's: an index older than the
                // repository would silently pick an older patch, so it is refreshed first (this
                // writes only Helm's index cache, never its repository list).
                helm.repo_update(&[CILIUM_REPO_NAME])
                    .map_err(|e| Error::Repository {
                        problem: format!(
                            "the index of the Helm repository {CILIUM_REPO_NAME} ({url}) cannot be refreshed, so its latest patches are unknown: {}; make {url} reachable and run `helm repo update {CILIUM_REPO_NAME}`, or pass --charts DIR (a directory of cilium-X.Y.Z.tgz archives); nothing was changed",
                            one_line(&e)
                        ),
                    })?;
                #[derive(serde::Deserialize)]
                struct Found {
                    name: String,
                    version: String,
                }
                let text = helm.run(["search", "repo", CHART, "--versions", "--output", "json"])?;
                let found: Vec<Found> =
                    serde_json::from_str(&text).map_err(|e| Error::Repository {
                        problem: format!("`helm search repo {CHART}` printed no JSON list: {e}"),
                    })?;
                // `search repo` matches by substring: `cilium/cilium-enterprise` is another chart.
                let mut versions: Vec<Version> = found
                    .iter()
                    .filter(|f| f.name == CHART)
                    .filter_map(|f| Version::parse(f.version.trim_start_matches('v')).ok())
                    .collect();
                versions.sort();
                Ok(versions)
            }
        }
    }

    /// The archive of `version`, read (pulled first from the repository).
    pub fn archive(&self, helm: &Helm, version: &Version) -> Result<ChartArchive, Error> {
        let name = format!("cilium-{version}.tgz");
        let path = match self {
            ChartStore::Directory(dir) => dir.join(&name),
            ChartStore::Repository { cache } => {
                let path = cache.join(&name);
                // A cached archive is the one a plan pinned (its sha256 is checked by `--apply`).
                if !path.is_file() {
                    added_repository(helm)?;
                    // The cache is in the state directory, which holds values files with
                    // secrets: made for its owner only, as `write_private` makes it.
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(cache)
                        .map_err(|source| Error::Io {
                            path: cache.clone(),
                            source,
                        })?;
                    helm.pull(&ChartSource::cilium(), Some(&version.to_string()), cache)?;
                }
                path
            }
        };
        let archive = ChartArchive::read(&path)?;
        if archive.version != *version {
            return Err(Error::Chart {
                path,
                problem: format!(
                    "is chart version {}, but its name says {version}; rename or replace it",
                    archive.version
                ),
            });
        }
        Ok(archive)
    }

    /// The directory archives are read from.
    pub fn dir(&self) -> &Path {
        match self {
            ChartStore::Directory(dir) => dir,
            ChartStore::Repository { cache } => cache,
        }
    }
}
