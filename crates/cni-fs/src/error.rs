//! The errors of this crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while inspecting or fixing node directories.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A requested path cannot be used.
    #[error("path {path:?} {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A node's host or user contains characters a shell would interpret.
    #[error(
        "node {node}: {field} {value:?} contains characters other than letters, digits, '.', '-', '_', ':' \
         (or starts with '-'); fix the inventory, or use an alias from your ssh config"
    )]
    InvalidNode {
        /// The node name.
        node: String,
        /// The inventory variable.
        field: String,
        /// Its value.
        value: String,
    },
    /// A program could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `ssh` itself failed (connection, authentication, host key): exit status 255.
    #[error("node {node}: ssh to {address} failed: {stderr}")]
    Ssh {
        /// The node name.
        node: String,
        /// The address used.
        address: String,
        /// What ssh printed.
        stderr: String,
    },
    /// Reading a streamed remote command's output ([`crate::Ssh::run_to_writer`]) failed.
    #[error("node {node}: {what} failed: {source}")]
    Stream {
        /// The node name.
        node: String,
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The writer given to [`crate::Ssh::run_to_writer`] failed (the caller knows its path).
    #[error("node {node}: writing the output of the remote command failed: {source}")]
    StreamWrite {
        /// The node name.
        node: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A command on the node failed.
    #[error("node {node}: {what} failed with exit status {status}: {stderr}")]
    Remote {
        /// The node name.
        node: String,
        /// What was being done.
        what: String,
        /// The exit status.
        status: i32,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The node printed something the parser does not understand.
    #[error("node {node}: unexpected inspection output: {reason}")]
    RemoteOutput {
        /// The node name.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// The inspection pod did not finish as expected.
    #[error("node {node}: pod {namespace}/{pod}: {reason}")]
    Pod {
        /// The node name.
        node: String,
        /// The namespace.
        namespace: String,
        /// The pod name.
        pod: String,
        /// What happened.
        reason: String,
    },
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The cause.
        source: kube::Error,
    },
    /// `--node NAME` names no node of the selection.
    #[error("--node {name}: no such node (known: {})", known.join(", "))]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The nodes there are.
        known: Vec<String>,
    },
    /// Some node directories would make the agent's init containers fail.
    #[error(
        "the Cilium agent would fail with `{}` on these nodes:\n{summary}\nfix: cilium-migrate nodes fix --apply",
        crate::HOSTBIN_ERROR
    )]
    AgentWouldFail {
        /// One line per failing directory.
        summary: String,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
