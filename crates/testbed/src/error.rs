//! The testbed's errors: each names the binary, file or directory at fault and what to do.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong building tools or running the testbed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tool binary is missing from the tools directory.
    #[error(
        "{tool} is missing in {dir}: run `cargo xtask testbed build` (or point {env} at a directory holding it)",
        env = crate::tools::TOOLS_DIR_ENV
    )]
    ToolMissing {
        /// The binary's file name.
        tool: &'static str,
        /// The directory searched.
        dir: PathBuf,
    },

    /// `go` is not on PATH.
    #[error("`go` was not found on PATH: install Go >= 1.26 to build the testbed tools ({0})")]
    GoMissing(#[source] std::io::Error),

    /// A Go module file lacks the version of a module the build stamps into the binaries.
    #[error("{file}: no `require {module} vX.Y.Z` line; run `go mod tidy` in {dir}", dir = file.parent().map(|d| d.display().to_string()).unwrap_or_default())]
    GoModVersion {
        /// The go.mod read.
        file: PathBuf,
        /// The module whose version is missing.
        module: &'static str,
    },

    /// `go build` failed for a tool family.
    #[error(
        "building {family} failed (exit {status}); full log: {log}\n--- last lines ---\n{tail}"
    )]
    ToolBuild {
        /// The tool family (`helm3`, `k8s`, ...).
        family: &'static str,
        /// How `go build` exited.
        status: String,
        /// The build log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },

    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path at fault.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A process could not be started.
    #[error("starting {name} ({binary}) failed: {source}")]
    Spawn {
        /// The component (`etcd`, `kube-apiserver`, ...).
        name: String,
        /// The binary run.
        binary: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A testbed process exited while the testbed was starting or waiting on it.
    #[error("{name} (pid {pid}) exited: {status}; log: {log}\n--- last lines ---\n{tail}")]
    ProcessExited {
        /// The component.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it exited, as far as known.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },

    /// A condition was not met in time.
    #[error("timed out after {timeout:?} waiting for {what}; {hint}")]
    Timeout {
        /// The condition waited on.
        what: String,
        /// The timeout.
        timeout: Duration,
        /// Where to look (usually a log and its last lines).
        hint: String,
    },

    /// `up` found a testbed already running in the state directory.
    #[error(
        "a testbed is already running in {dir} (pids {pids:?}): run `cargo xtask testbed down --state-dir {dir}` first"
    )]
    AlreadyRunning {
        /// The state directory.
        dir: PathBuf,
        /// The live pids.
        pids: Vec<u32>,
    },

    /// No testbed state in the directory.
    #[error("{0}: no testbed state here (testbed.json missing): run `cargo xtask testbed up`")]
    NoState(PathBuf),

    /// The state file is not what this version writes.
    #[error(
        "{path}: unreadable testbed state ({reason}); remove the directory and run `cargo xtask testbed up`"
    )]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// Some testbed processes would not stop.
    #[error("processes still running after SIGKILL: {0:?}")]
    StillRunning(Vec<String>),

    /// Generating certificates failed.
    #[error("generating the testbed certificates failed: {0}")]
    Certificate(#[from] rcgen::Error),

    /// A Kubernetes API call failed.
    #[error("Kubernetes API ({what}): {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },

    /// The kubeconfig could not be loaded.
    #[error("{path}: cannot load kubeconfig: {reason}")]
    Kubeconfig {
        /// The kubeconfig path.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// No free port on 127.0.0.1.
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoFreePort(#[source] std::io::Error),
}

/// The testbed's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Names `path` in the error.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
