//! What an inspection finds: the entries of a directory tree on one node, and the verdicts.

use serde::Serialize;
use std::path::{Path, PathBuf};

/// The directories Cilium's agent writes on every node, in the order they are checked.
pub const DEFAULT_PATHS: [&str; 2] = ["/opt/cni/bin", "/etc/cni/net.d"];

/// The error the chart's init containers print when the CNI bin directory is not writable.
pub const HOSTBIN_ERROR: &str =
    "cp: cannot create regular file '/hostbin/cilium-mount': Permission denied";

/// A node as the library sees it: the Kubernetes node name and how to reach it over SSH.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The Kubernetes node name (also the inventory host name); used for `pod` and in reports.
    pub name: String,
    /// The address `ssh` connects to (`ansible_host`, else the name).
    pub address: String,
    /// The login user (`ansible_user`); `None` lets `~/.ssh/config` decide.
    pub user: Option<String>,
    /// The SSH port (`ansible_port`); `None` lets `~/.ssh/config` decide.
    pub port: Option<u16>,
}

impl Node {
    /// A node reached at its own name with the SSH defaults.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        Node {
            address: name.clone(),
            name,
            user: None,
            port: None,
        }
    }

    /// This machine, by its host name (`--via local`: the tool runs on the node).
    pub fn this_machine() -> Self {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        Node::named(name)
    }

    /// True when this is the machine the tool runs on: named by its host name, or by the
    /// first label of it (`node1` for `node1.example.com`, and the other way round).
    pub fn is_this_machine(&self) -> bool {
        let here = Node::this_machine().name;
        let first = |name: &str| name.split('.').next().unwrap_or_default().to_owned();
        self.name == here || first(&self.name) == first(&here)
    }

    /// Every node the cluster lists, by name (`--via pod` without an inventory).
    pub async fn of_cluster(client: &kube::Client) -> Result<Vec<Node>, crate::Error> {
        let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
        let list = api
            .list(&Default::default())
            .await
            .map_err(|source| crate::Error::Kube {
                what: "listing the cluster's nodes".into(),
                source,
            })?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .map(Node::named)
            .collect())
    }

    /// The nodes named in `only` (`--node`, repeatable), or all when it is empty. A name that is
    /// not among `nodes` is an error listing the known ones: a typo must not check nothing.
    pub fn select(nodes: Vec<Node>, only: &[String]) -> Result<Vec<Node>, crate::Error> {
        if let Some(unknown) = only.iter().find(|o| !nodes.iter().any(|n| &n.name == *o)) {
            return Err(crate::Error::UnknownNode {
                name: unknown.clone(),
                known: nodes.iter().map(|n| n.name.clone()).collect(),
            });
        }
        if only.is_empty() {
            return Ok(nodes);
        }
        Ok(nodes
            .into_iter()
            .filter(|n| only.contains(&n.name))
            .collect())
    }
}

/// The file type of an entry, as `find -printf %y` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

impl Kind {
    /// The kind for a `find -printf %y` letter.
    pub fn from_find_letter(letter: &str) -> Option<Kind> {
        Some(match letter {
            "d" => Kind::Dir,
            "f" => Kind::File,
            "l" => Kind::Symlink,
            "b" | "c" | "p" | "s" | "D" => Kind::Other,
            _ => return None,
        })
    }
}

/// Ownership and permission bits of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Attrs {
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
}

impl Attrs {
    /// `0755`-style octal text.
    pub fn mode_octal(&self) -> String {
        format!("{:04o}", self.mode)
    }
}

/// One entry of an inspected tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The host path of the entry.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// File type.
    pub kind: Kind,
    /// Owner, group and mode.
    pub attrs: Attrs,
    /// How many names it has (hard links). The fix leaves a file with more than one alone:
    /// changing its owner would change a file elsewhere too.
    pub links: u64,
    /// The owner's user name on the node, when known.
    pub user: Option<String>,
    /// The group name on the node, when known.
    pub group: Option<String>,
    /// Where a symlink points (not followed).
    #[serde(serialize_with = "lossy_opt_path")]
    pub link_target: Option<PathBuf>,
    /// For directories: can the agent create files here?
    pub verdict: Option<Verdict>,
}

impl Entry {
    /// True for a file (not a directory) with more than one name: the fix leaves it alone.
    pub fn hard_linked(&self) -> bool {
        self.kind != Kind::Dir && self.links > 1
    }

    /// `kube:root`-style owner text (names when known, else numbers).
    pub fn owner_group(&self) -> String {
        let user = self
            .user
            .clone()
            .unwrap_or_else(|| self.attrs.uid.to_string());
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| self.attrs.gid.to_string());
        format!("{user}:{group}")
    }
}

/// Which class of permission bits the kernel applies to a root process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The directory is owned by uid 0: the owner bits apply.
    Owner,
    /// Owned by someone else but group 0: the group bits apply.
    Group,
    /// Neither: the other bits apply.
    Other,
}

impl Class {
    /// The class the kernel uses for a process with uid 0 and gid 0 and no DAC capability.
    pub fn for_root(attrs: &Attrs) -> Class {
        if attrs.uid == 0 {
            Class::Owner
        } else if attrs.gid == 0 {
            Class::Group
        } else {
            Class::Other
        }
    }

    /// The three `rwx` bits of this class in `mode` (as `0..=7`).
    pub fn bits(self, mode: u32) -> u32 {
        match self {
            Class::Owner => (mode >> 6) & 7,
            Class::Group => (mode >> 3) & 7,
            Class::Other => mode & 7,
        }
    }
}

/// Whether a process running as uid 0 without `CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH` and
/// `CAP_FOWNER` (the chart's init containers) can create files in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Write and search are granted by the bits of `class`.
    Writable {
        /// The class that applies.
        class: Class,
        /// Its `rwx` bits.
        bits: u32,
    },
    /// The bits of `class` lack write or search on the directory itself.
    Denied {
        /// The class that applies.
        class: Class,
        /// Its `rwx` bits.
        bits: u32,
    },
    /// A directory above it in the tree denies search, so the path cannot be reached.
    Unreachable {
        /// The first directory (from the root down) that denies search.
        #[serde(serialize_with = "lossy_path")]
        blocked_at: PathBuf,
    },
}

impl Verdict {
    /// True when the agent can create files in the directory.
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Writable { .. })
    }

    /// One word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Writable { .. } => "ok",
            Verdict::Denied { .. } => "DENIED",
            Verdict::Unreachable { .. } => "UNREACHABLE",
        }
    }

    /// Why, in an operator's words, for the directory `entry`.
    pub fn explain(&self, entry: &Entry) -> String {
        let who = match Class::for_root(&entry.attrs) {
            Class::Owner => "owned by root, so the owner bits apply".to_string(),
            Class::Group => format!(
                "owned by {} (not root) with group root, so the group bits apply",
                entry
                    .user
                    .clone()
                    .unwrap_or_else(|| format!("uid {}", entry.attrs.uid))
            ),
            Class::Other => format!(
                "owned by {} and neither owner nor group is root, so the other bits apply",
                entry.owner_group()
            ),
        };
        match self {
            Verdict::Writable { bits, .. } => {
                format!(
                    "{who}: {} allows root without CAP_DAC_OVERRIDE to create files",
                    rwx(*bits)
                )
            }
            Verdict::Denied { bits, .. } => {
                let missing = match (bits & 2 == 0, bits & 1 == 0) {
                    (true, true) => "write and search",
                    (true, false) => "write",
                    _ => "search",
                };
                format!(
                    "{who}: {} lacks {missing}, and the agent's init containers run as root without \
                     CAP_DAC_OVERRIDE, so they fail with `{HOSTBIN_ERROR}`",
                    rwx(*bits)
                )
            }
            Verdict::Unreachable { blocked_at } => format!(
                "{} above it denies search to root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, \
                 so creating files here fails with Permission denied",
                blocked_at.display()
            ),
        }
    }
}

/// `r-x`-style text for three permission bits.
pub fn rwx(bits: u32) -> String {
    let flag = |bit: u32, c: char| if bits & bit != 0 { c } else { '-' };
    [flag(4, 'r'), flag(2, 'w'), flag(1, 'x')].iter().collect()
}

/// What was found at one requested path on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TreeState {
    /// The path does not exist (kubelet would create it root:root 0755 for the agent's hostPath).
    Missing {
        /// What the node said.
        reason: String,
    },
    /// The path exists but is not a directory (e.g. a symlink, which is never followed).
    NotADirectory {
        /// The root entry.
        entry: Entry,
    },
    /// A directory: every entry under it on the same filesystem, root first, sorted by path.
    Present {
        /// The entries.
        entries: Vec<Entry>,
    },
}

/// One requested directory on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tree {
    /// The requested host path.
    #[serde(serialize_with = "lossy_path")]
    pub root: PathBuf,
    /// The directory holding it (not followed when it is a symlink), when it exists: whoever
    /// may write there can rename the tree and put another in its place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Entry>,
    /// What was found.
    #[serde(flatten)]
    pub state: TreeState,
}

impl Tree {
    /// Why the directory holding the tree is a risk, when it is: not root:root or writable by
    /// group or others (the fix's rule for directories), or a symlink (its target is unknown).
    pub fn parent_concern(&self) -> Option<String> {
        let parent = self.parent.as_ref()?;
        let root = self.root.display();
        match parent.kind {
            Kind::Symlink => Some(format!(
                "a symlink to {}: {root} is reached through it; check by hand that the target is \
                 root:root and writable by root only",
                parent
                    .link_target
                    .as_deref()
                    .unwrap_or(Path::new("?"))
                    .display()
            )),
            Kind::Dir if crate::policy::parent_at_risk(parent.attrs) => {
                let who = if parent.attrs.uid != 0 {
                    format!("owned by {}", parent.owner_group())
                } else {
                    format!("mode {}", parent.attrs.mode_octal())
                };
                let fix = if crate::policy::parent_fixable(&parent.path) {
                    "fix makes it root:root, writable by root only"
                } else {
                    "not a CNI directory, so fix leaves it: change it by hand"
                };
                Some(format!(
                    "holds {root} and is {who}: whoever else may write here can rename {root} and \
                     put a directory of their own in its place, whose plugins kubelet runs as \
                     root; {fix}"
                ))
            }
            _ => None,
        }
    }

    /// The entries (empty unless present).
    pub fn entries(&self) -> &[Entry] {
        match &self.state {
            TreeState::Present { entries } => entries,
            _ => &[],
        }
    }

    /// True when the agent would fail on this tree (a directory it cannot write, or a non-directory).
    pub fn agent_would_fail(&self) -> bool {
        match &self.state {
            TreeState::Missing { .. } => false,
            TreeState::NotADirectory { .. } => true,
            TreeState::Present { entries } => entries
                .iter()
                .any(|e| e.verdict.as_ref().is_some_and(|v| !v.passes())),
        }
    }
}

/// The inspection of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    /// The node name.
    pub node: String,
    /// One tree per requested path.
    pub trees: Vec<Tree>,
    /// Why the node was not inspected at all (`--via local` reaches only this machine): its
    /// directories are unknown, which is not "ok".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_checked: Option<String>,
}

impl NodeReport {
    /// The report of a node that was not inspected, and why.
    pub fn not_checked(node: &str, reason: String) -> NodeReport {
        NodeReport {
            node: node.to_string(),
            trees: Vec::new(),
            not_checked: Some(reason),
        }
    }

    /// One line for the node: `ok`, `agent would fail`, or `not checked: <why>`; then each
    /// directory holding a tree that others could write (`; /opt/cni: <why>`).
    pub fn outcome(&self) -> String {
        let mut line = match &self.not_checked {
            Some(reason) => format!("not checked: {reason}"),
            None if self.agent_would_fail() => "agent would fail".into(),
            None => "ok".into(),
        };
        let mut seen: Vec<&Path> = Vec::new();
        for tree in &self.trees {
            if let (Some(parent), Some(why)) = (&tree.parent, tree.parent_concern())
                && !seen.contains(&parent.path.as_path())
            {
                seen.push(&parent.path);
                line.push_str(&format!("; {}: {why}", parent.path.display()));
            }
        }
        line
    }

    /// True when any tree on this node would make the agent fail.
    pub fn agent_would_fail(&self) -> bool {
        self.trees.iter().any(Tree::agent_would_fail)
    }
}

/// One entry whose owner, group or mode changes (planned or done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The host path.
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// File type.
    pub kind: Kind,
    /// Before.
    pub before: Attrs,
    /// After.
    pub after: Attrs,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (b, a) = (&self.before, &self.after);
        write!(f, "{}:", self.path.display())?;
        if (b.uid, b.gid) != (a.uid, a.gid) {
            write!(f, " owner {}:{} -> {}:{}", b.uid, b.gid, a.uid, a.gid)?;
        }
        if b.mode != a.mode {
            write!(f, " mode {:04o} -> {:04o}", b.mode, a.mode)?;
        }
        Ok(())
    }
}

/// The fix of one node: the inspection before, the plan, and (with `--apply`) what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFix {
    /// The node name.
    pub node: String,
    /// The inspection before anything changed.
    pub before: NodeReport,
    /// What the fix would change, computed from `before`.
    pub planned: Vec<Change>,
    /// With `--apply`: the inspection afterwards.
    pub after: Option<NodeReport>,
    /// With `--apply`: what actually changed (the difference between `before` and `after`).
    pub changed: Option<Vec<Change>>,
}

fn lossy_path<S: serde::Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn lossy_opt_path<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod node_selection_tests {
    use super::*;

    #[test]
    fn select_keeps_the_named_nodes_and_refuses_unknown_names() {
        let nodes = || vec![Node::named("cp1"), Node::named("w1"), Node::named("w2")];
        assert_eq!(Node::select(nodes(), &[]).expect("all").len(), 3);
        let picked = Node::select(nodes(), &["w2".into()]).expect("w2");
        assert_eq!(picked, vec![Node::named("w2")]);
        let err = Node::select(nodes(), &["w3".into()]).expect_err("unknown");
        let text = err.to_string();
        assert!(
            text.contains("--node w3") && text.contains("cp1, w1, w2"),
            "{text}"
        );
    }

    #[test]
    fn this_machine_has_a_name() {
        assert!(!Node::this_machine().name.is_empty());
    }
}
