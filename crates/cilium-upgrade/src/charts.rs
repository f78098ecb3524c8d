//! Where the hops' charts come from: a directory of `cilium-X.Y.Z.tgz` archives (`--charts DIR`,
//! air-gapped clusters and the tests) or Cilium's Helm repository (`cilium/cilium`, pulled into
//! a cache directory so that the archive a plan pins by sha256 is the one applied).

use std::path::{Path, PathBuf};

use helm::{ChartSource, Helm};
use semver::Version;

use crate::Error;
use crate::archive::ChartArchive;

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
                helm.prepare(&ChartSource::cilium())?;
                #[derive(serde::Deserialize)]
                struct Found {
                    version: String,
                }
                let text = helm.run([
                    "search",
                    "repo",
                    "cilium/cilium",
                    "--versions",
                    "--output",
                    "json",
                ])?;
                let found: Vec<Found> =
                    serde_json::from_str(&text).map_err(|e| Error::Repository {
                        problem: format!(
                            "`helm search repo cilium/cilium` printed no JSON list: {e}"
                        ),
                    })?;
                let mut versions: Vec<Version> = found
                    .iter()
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
                if !path.is_file() {
                    std::fs::create_dir_all(cache).map_err(|source| Error::Io {
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
