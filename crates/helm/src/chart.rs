//! Where the chart comes from: a repository reference (default `cilium/cilium`), an OCI
//! reference, a packaged `.tgz`, or a chart directory (air-gapped clusters and tests).

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::release::ChartMetadata;

/// The repository name Cilium's documentation uses.
pub const CILIUM_REPO_NAME: &str = "cilium";
/// Cilium's chart repository.
pub const CILIUM_REPO_URL: &str = "https://helm.cilium.io/";

/// A chart, as the operator names it with `--chart`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// `repo/chart` from a chart repository; the repository is added when missing and its URL
    /// is known.
    Repository {
        /// Repository name, e.g. `cilium`.
        repo: String,
        /// The repository URL to add it with, when it is not configured yet.
        url: Option<String>,
        /// Chart name, e.g. `cilium`.
        chart: String,
    },
    /// `oci://registry/path/chart`.
    Oci(String),
    /// A packaged chart archive (`helm package`, `helm pull`).
    Archive(PathBuf),
    /// An unpacked chart directory with a `Chart.yaml`.
    Directory(PathBuf),
}

/// Why a `--chart` value cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A path that does not exist.
    #[error("--chart {}: no such file or directory; pass a .tgz, a chart directory or repo/chart", path.display())]
    PathMissing {
        /// The path given.
        path: PathBuf,
    },
    /// A directory without `Chart.yaml`.
    #[error("--chart {}: the directory has no Chart.yaml; pass the chart's own directory (the one holding Chart.yaml)", path.display())]
    NotAChartDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// A file that is not gzip data.
    #[error("--chart {}: the file is not a gzip chart archive; pass a .tgz made by `helm package` or `helm pull`", path.display())]
    NotAnArchive {
        /// The file.
        path: PathBuf,
    },
    /// `Chart.yaml` cannot be read.
    #[error("{}: {detail}; a chart needs at least `name` and `version`", path.display())]
    ChartYaml {
        /// The Chart.yaml file.
        path: PathBuf,
        /// The parser's message.
        detail: String,
    },
    /// Not a path, not `repo/chart`, not `oci://`.
    #[error(
        "--chart {arg:?} is neither repo/chart (e.g. cilium/cilium), oci://..., a .tgz nor a chart directory"
    )]
    Unrecognized {
        /// The value given.
        arg: String,
    },
    /// A repository that helm does not know and whose URL is unknown.
    #[error(
        "chart repository {repo:?} is not added to helm and its URL is unknown; run `helm repo add {repo} <URL>` first, or pass a .tgz or chart directory"
    )]
    RepositoryUnknown {
        /// Repository name.
        repo: String,
    },
    /// A repository helm does not know, with the URL it is published at: adding it writes the
    /// operator's Helm configuration, which is theirs to do.
    #[error(
        "chart repository {repo:?} is not added to helm (see `helm repo list`): add it with `helm repo add {repo} {url}` (or a mirror under that name), or pass --chart a .tgz or chart directory; nothing was changed"
    )]
    RepositoryNotAdded {
        /// Repository name.
        repo: String,
        /// Where it is published.
        url: String,
    },
    /// A version was asked for, but the local chart has another.
    #[error("--chart {} is version {actual}, but version {requested} was asked for; pass the matching chart or drop the version", path.display())]
    VersionMismatch {
        /// The chart path.
        path: PathBuf,
        /// The version asked for.
        requested: String,
        /// The chart's version.
        actual: String,
    },
    /// Reading the path failed.
    #[error("--chart {}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
}

impl Default for ChartSource {
    fn default() -> Self {
        ChartSource::cilium()
    }
}

impl ChartSource {
    /// `cilium/cilium` from <https://helm.cilium.io/>.
    pub fn cilium() -> ChartSource {
        ChartSource::Repository {
            repo: CILIUM_REPO_NAME.to_owned(),
            url: Some(CILIUM_REPO_URL.to_owned()),
            chart: "cilium".to_owned(),
        }
    }

    /// Reads a `--chart` value. Like Helm, an existing path wins over a repository reference.
    pub fn parse(arg: &str) -> Result<ChartSource, ChartError> {
        if arg.starts_with("oci://") {
            return Ok(ChartSource::Oci(arg.to_owned()));
        }
        let path = Path::new(arg);
        if path.exists() {
            return ChartSource::from_path(path);
        }
        let looks_like_path = arg.starts_with('/')
            || arg.starts_with("./")
            || arg.starts_with("../")
            || arg.starts_with('~')
            || arg.ends_with(".tgz")
            || arg.ends_with(".tar.gz");
        if looks_like_path {
            return Err(ChartError::PathMissing {
                path: path.to_owned(),
            });
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match arg.split_once('/') {
            Some((repo, chart)) if valid(repo) && valid(chart) => Ok(ChartSource::Repository {
                repo: repo.to_owned(),
                url: (repo == CILIUM_REPO_NAME).then(|| CILIUM_REPO_URL.to_owned()),
                chart: chart.to_owned(),
            }),
            _ => Err(ChartError::Unrecognized {
                arg: arg.to_owned(),
            }),
        }
    }

    /// A local `.tgz` or chart directory, checked.
    pub fn from_path(path: &Path) -> Result<ChartSource, ChartError> {
        let io = |source| ChartError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ChartError::PathMissing {
                path: path.to_owned(),
            },
            _ => io(e),
        })?;
        if meta.is_dir() {
            let chart_yaml = path.join("Chart.yaml");
            if !chart_yaml.is_file() {
                return Err(ChartError::NotAChartDirectory {
                    path: path.to_owned(),
                });
            }
            read_chart_yaml(&chart_yaml)?;
            return Ok(ChartSource::Directory(path.to_owned()));
        }
        let mut magic = [0u8; 2];
        let mut file = std::fs::File::open(path).map_err(io)?;
        let read = file.read(&mut magic).map_err(io)?;
        if read < 2 || magic != [0x1f, 0x8b] {
            return Err(ChartError::NotAnArchive {
                path: path.to_owned(),
            });
        }
        Ok(ChartSource::Archive(path.to_owned()))
    }

    /// The chart argument given to helm.
    pub fn reference(&self) -> OsString {
        match self {
            ChartSource::Repository { repo, chart, .. } => format!("{repo}/{chart}").into(),
            ChartSource::Oci(reference) => reference.into(),
            ChartSource::Archive(path) | ChartSource::Directory(path) => path.into(),
        }
    }

    /// Whether helm's `--version` selects among versions (repositories and OCI only; a local
    /// chart has exactly one).
    pub fn is_remote(&self) -> bool {
        matches!(self, ChartSource::Repository { .. } | ChartSource::Oci(_))
    }

    /// The local path, for an archive or directory.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            ChartSource::Archive(path) | ChartSource::Directory(path) => Some(path),
            _ => None,
        }
    }
}

/// Reads a chart directory's `Chart.yaml`.
pub fn read_chart_yaml(path: &Path) -> Result<ChartMetadata, ChartError> {
    let text = std::fs::read_to_string(path).map_err(|source| ChartError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| ChartError::ChartYaml {
        path: path.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_references_and_the_cilium_default() -> Result<(), ChartError> {
        assert_eq!(ChartSource::parse("cilium/cilium")?, ChartSource::cilium());
        assert_eq!(
            ChartSource::default().reference(),
            OsString::from("cilium/cilium")
        );
        assert_eq!(
            ChartSource::parse("mirror/cilium")?,
            ChartSource::Repository {
                repo: "mirror".into(),
                url: None,
                chart: "cilium".into()
            }
        );
        assert_eq!(
            ChartSource::parse("oci://registry.local/charts/cilium")?,
            ChartSource::Oci("oci://registry.local/charts/cilium".into())
        );
        for bad in ["cilium", "a/b/c", "a/", "cil ium/cilium", ""] {
            assert!(
                matches!(
                    ChartSource::parse(bad),
                    Err(ChartError::Unrecognized { .. })
                ),
                "{bad:?} accepted"
            );
        }
        Ok(())
    }

    #[test]
    fn local_paths_are_checked() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let chart = dir.path().join("tiny");
        std::fs::create_dir(&chart)?;
        let arg = chart.to_string_lossy().into_owned();
        let err = ChartSource::parse(&arg).expect_err("no Chart.yaml yet");
        assert!(
            matches!(err, ChartError::NotAChartDirectory { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Chart.yaml"));

        std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: tiny\n")?;
        let err = ChartSource::parse(&arg).expect_err("no version");
        assert!(matches!(err, ChartError::ChartYaml { .. }), "{err}");

        std::fs::write(
            chart.join("Chart.yaml"),
            "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
        )?;
        assert_eq!(
            ChartSource::parse(&arg)?,
            ChartSource::Directory(chart.clone())
        );

        let not_gzip = dir.path().join("cilium-1.15.9.tgz");
        std::fs::write(&not_gzip, "plain text")?;
        let err = ChartSource::parse(&not_gzip.to_string_lossy()).expect_err("not gzip");
        assert!(matches!(err, ChartError::NotAnArchive { .. }), "{err}");

        let gzip = dir.path().join("real.tgz");
        std::fs::write(&gzip, [0x1f, 0x8b, 0x08, 0x00])?;
        assert_eq!(
            ChartSource::parse(&gzip.to_string_lossy())?,
            ChartSource::Archive(gzip)
        );

        let missing = dir.path().join("absent-1.0.0.tgz");
        let err = ChartSource::parse(&missing.to_string_lossy()).expect_err("missing");
        assert!(matches!(err, ChartError::PathMissing { .. }), "{err}");
        assert!(matches!(
            ChartSource::parse("./charts/cilium"),
            Err(ChartError::PathMissing { .. })
        ));
        Ok(())
    }
}
