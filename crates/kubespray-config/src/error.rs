//! The one error type of this crate: every variant names the file (and key or line) and says
//! how to fix it, because the operator reads these messages, not a developer.

use std::path::PathBuf;

/// Everything that can go wrong while reading, resolving or editing an inventory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{}: cannot {action}: {reason}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done ("read", "write", "list").
        action: &'static str,
        /// The underlying error (shown in the message, so not repeated as a source).
        reason: std::io::Error,
    },

    /// The path holds no Ansible inventory file.
    #[error(
        "{}: no inventory file found (looked for inventory.ini, hosts.yaml, hosts.yml); \
         fix: pass the Kubespray inventory directory (e.g. inventory/mycluster) or the inventory file itself",
        path.display()
    )]
    NoInventoryFile {
        /// The path that was given.
        path: PathBuf,
    },

    /// The inventory directory has no `group_vars` directory.
    #[error(
        "{}: missing group_vars directory next to the inventory file; \
         fix: point --inventory at the directory that holds group_vars/ (copy Kubespray's inventory/sample if you started from a bare host list)",
        dir.display()
    )]
    MissingGroupVars {
        /// The inventory directory.
        dir: PathBuf,
    },

    /// A YAML file does not parse.
    #[error("{}:{line}:{column}: broken YAML: {message}; fix: correct the syntax at that line", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// The parser's message.
        message: String,
    },

    /// A YAML file expands to more than an inventory holds (an alias bomb, or not an inventory).
    #[error(
        "{}:{line}:{column}: the YAML expands to more than an inventory file holds ({detail}); \
         nothing was read from it; fix: write the values out instead of repeating anchors and aliases (&name / *name), \
         or point --inventory at the Kubespray inventory",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: u64,
        /// 1-based column (0 when unknown).
        column: u64,
        /// Which limit was reached.
        detail: String,
    },

    /// A vars file or YAML inventory has the wrong shape (e.g. a list at the top level).
    #[error("{}: {what}; fix: {fix}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
        /// How to fix it.
        fix: String,
    },

    /// An INI inventory line that cannot be read.
    #[error("{}:{line}: {message}; fix: {fix}", path.display())]
    Ini {
        /// The inventory file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
        /// How to fix it.
        fix: String,
    },

    /// A `[group:children]` (or `children:`) entry names a group defined nowhere.
    #[error(
        "{}:{line}: group '{parent}' lists child group '{child}', which is not defined anywhere in the inventory; \
         fix: add a [{child}] section (it may be empty) or correct the name",
        path.display()
    )]
    UnknownChildGroup {
        /// The inventory file.
        path: PathBuf,
        /// 1-based line (0 when unknown, e.g. in a YAML inventory).
        line: usize,
        /// The group whose children are listed.
        parent: String,
        /// The undefined child.
        child: String,
    },

    /// A variable has a value of the wrong type for what Kubespray does with it.
    #[error("{}: key '{key}': expected {expected}, found {found}; fix: {fix}", path.display())]
    WrongType {
        /// The file that sets it (or the role-default file when a default was combined with it).
        path: PathBuf,
        /// The variable.
        key: String,
        /// What the variable must hold.
        expected: String,
        /// What it holds, as written.
        found: String,
        /// How to fix it.
        fix: String,
    },

    /// A Jinja expression that is more than a plain `{{ other_var }}` reference.
    #[error(
        "{}: key '{key}': cannot evaluate the Jinja expression {expression:?} (only plain {{{{ other_var }}}} references are resolved, nothing is guessed); \
         fix: replace it with the literal value it renders to",
        path.display()
    )]
    CannotEvaluate {
        /// The file that holds the expression.
        path: PathBuf,
        /// The variable whose value it is.
        key: String,
        /// The expression as written.
        expression: String,
    },

    /// A `{{ other_var }}` reference to a variable that is defined nowhere.
    #[error(
        "{}: key '{key}': refers to undefined variable '{variable}'; fix: define '{variable}' in group_vars or write the value literally",
        path.display()
    )]
    UndefinedVariable {
        /// The file that holds the reference.
        path: PathBuf,
        /// The variable whose value holds the reference.
        key: String,
        /// The undefined variable.
        variable: String,
    },

    /// `{{ a }}` → `{{ b }}` → `{{ a }}`.
    #[error(
        "{}: key '{key}': variables refer to each other in a cycle ({}); fix: give one of them a literal value",
        path.display(),
        chain.join(" -> ")
    )]
    ReferenceCycle {
        /// The file that closes the cycle.
        path: PathBuf,
        /// The variable that closes the cycle.
        key: String,
        /// The variables in the cycle, in order.
        chain: Vec<String>,
    },

    /// The era could not be told from the inventory (or the evidence disagrees).
    #[error("{}: cannot tell the Kubespray era: {reason}; fix: {fix}", dir.display())]
    UnknownEra {
        /// The inventory directory.
        dir: PathBuf,
        /// Why.
        reason: String,
        /// How to fix it.
        fix: String,
    },

    /// A hand-over key is set where a lossless edit cannot reach it or would not win.
    #[error("{}: key '{key}': {what}; fix: {fix}", path.display())]
    CannotEdit {
        /// The file that sets (or should receive) the key.
        path: PathBuf,
        /// The variable.
        key: String,
        /// What is in the way.
        what: String,
        /// How to fix it.
        fix: String,
    },

    /// The self-check after an edit found a difference that was not intended; nothing was written.
    #[error(
        "{}: the edit would change more than the intended keys ({detail}); nothing was written; fix: make the change by hand",
        path.display()
    )]
    EditNotLossless {
        /// The file.
        path: PathBuf,
        /// What differed.
        detail: String,
    },

    /// The file changed on disk between reading and writing.
    #[error("{}: the file changed on disk since it was read; nothing was written; fix: run the command again", path.display())]
    ChangedOnDisk {
        /// The file.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            reason: source,
        }
    }

    pub(crate) fn yaml(path: impl Into<PathBuf>, err: &serde_saphyr::Error) -> Self {
        let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
        if let Some(detail) = budget_breach(err) {
            return Self::TooLarge {
                path: path.into(),
                line,
                column,
                detail,
            };
        }
        Self::Yaml {
            path: path.into(),
            line,
            column,
            message: err.without_snippet().to_string(),
        }
    }
}

/// The limit a YAML read ran into, when it stopped on one of the budget's limits.
fn budget_breach(err: &serde_saphyr::Error) -> Option<String> {
    let mut err = err;
    loop {
        match err {
            serde_saphyr::Error::WithSnippet { error, .. }
            | serde_saphyr::Error::AliasError { error, .. } => err = error,
            serde_saphyr::Error::Budget { breach, .. } => return Some(format!("{breach:?}")),
            serde_saphyr::Error::AliasReplayLimitExceeded {
                max_total_replayed_events,
                ..
            } => {
                return Some(format!(
                    "aliases replay more than {max_total_replayed_events} events"
                ));
            }
            _ => return None,
        }
    }
}
