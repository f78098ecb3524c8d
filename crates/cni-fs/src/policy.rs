//! The rules, shared by every way of reaching a node: the verdict for a root process without
//! DAC capabilities, and what the fix changes.

use crate::model::{
    Attrs, Change, Class, DEFAULT_PATHS, Entry, Kind, NodeReport, Tree, TreeState, Verdict,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Owner and group the fix gives every entry.
pub(crate) const FIX_OWNER: (u32, u32) = (0, 0);
/// Mode bits the fix adds on directories (owner `rwx`).
pub(crate) const FIX_DIR_ADD: u32 = 0o700;
/// Mode bits the fix removes on directories (group and other write).
pub(crate) const FIX_DIR_REMOVE: u32 = 0o022;

/// Sets the verdict of every directory in `entries` (root first, as inspected).
///
/// The kernel checks a process with uid 0 and gid 0 against the owner bits when the directory is
/// owned by uid 0, else the group bits when its group is 0, else the other bits; without
/// CAP_DAC_OVERRIDE nothing overrides them. Creating a file needs write and search on the
/// directory and search on every directory above it, from the tree's root down (the agent reaches
/// the tree through its hostPath mount, so directories above the root do not matter).
pub fn judge(root: &Path, entries: &mut [Entry]) {
    let bits_of: HashMap<PathBuf, u32> = entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| (e.path.clone(), Class::for_root(&e.attrs).bits(e.attrs.mode)))
        .collect();
    for entry in entries.iter_mut() {
        if entry.kind != Kind::Dir {
            entry.verdict = None;
            continue;
        }
        let blocked_at = ancestors_within(root, &entry.path)
            .into_iter()
            .find(|a| bits_of.get(a).is_some_and(|bits| bits & 1 == 0));
        let class = Class::for_root(&entry.attrs);
        let bits = class.bits(entry.attrs.mode);
        entry.verdict = Some(match blocked_at {
            Some(blocked_at) => Verdict::Unreachable { blocked_at },
            None if bits & 3 == 3 => Verdict::Writable { class, bits },
            None => Verdict::Denied { class, bits },
        });
    }
}

/// The directories strictly above `path`, from `root` down (empty for the root itself).
fn ancestors_within(root: &Path, path: &Path) -> Vec<PathBuf> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Vec::new();
    };
    let mut out = vec![root.to_path_buf()];
    let mut current = root.to_path_buf();
    let components: Vec<_> = rel.components().collect();
    for component in components.iter().take(components.len().saturating_sub(1)) {
        current.push(component);
        out.push(current.clone());
    }
    if rel.as_os_str().is_empty() {
        out.clear();
    }
    out
}

/// What the fix makes of an entry's attributes.
///
/// Everything becomes root:root; directories get `u+rwx,go-w`; other modes are left alone, except
/// that the kernel clears setuid (and setgid when group-executable) when a file's owner changes.
pub fn fixed_attrs(kind: Kind, attrs: Attrs) -> Attrs {
    let owner_changes = (attrs.uid, attrs.gid) != FIX_OWNER;
    let mut mode = attrs.mode;
    match kind {
        Kind::Dir => mode = (mode | FIX_DIR_ADD) & !FIX_DIR_REMOVE,
        Kind::File | Kind::Other if owner_changes => {
            mode &= !0o4000;
            if mode & 0o010 != 0 {
                mode &= !0o2000;
            }
        }
        _ => {}
    }
    Attrs {
        uid: FIX_OWNER.0,
        gid: FIX_OWNER.1,
        mode,
    }
}

/// True when the fix would touch this entry.
pub fn needs_fix(kind: Kind, attrs: Attrs) -> bool {
    fixed_attrs(kind, attrs) != attrs
}

/// True when the fix may change `parent`, the directory holding a requested one: only the
/// CNI directories' own parents (`/opt/cni`, `/etc/cni`) and what is under the CNI directories.
/// The parent of a path given with `--force` could be anything (`/srv`, a home directory).
pub fn parent_fixable(parent: &Path) -> bool {
    DEFAULT_PATHS
        .iter()
        .map(Path::new)
        .any(|known| known.parent() == Some(parent) || parent.starts_with(known))
}

/// True when someone other than root could rename an entry of a directory with these
/// attributes (and put their own in its place): it is not root's, or it is writable by others
/// or by a group other than root, without the sticky bit (which keeps others from renaming
/// root's entries, as in `/tmp`).
pub fn parent_at_risk(attrs: Attrs) -> bool {
    let sticky = attrs.mode & 0o1000 != 0;
    let group_writes = attrs.mode & 0o020 != 0 && attrs.gid != FIX_OWNER.1;
    let others_write = attrs.mode & 0o002 != 0;
    attrs.uid != FIX_OWNER.0 || (!sticky && (group_writes || others_write))
}

/// The parents the fix changes in an inspected node: fixable, real directories at risk.
pub(crate) fn parents_to_fix(report: &NodeReport) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for parent in report.trees.iter().filter_map(|t| t.parent.as_ref()) {
        if parent.kind == Kind::Dir
            && parent_at_risk(parent.attrs)
            && parent_fixable(&parent.path)
            && !out.contains(&parent.path)
        {
            out.push(parent.path.clone());
        }
    }
    out
}

/// Every entry of an inspection, the parents of the trees included, each path once.
fn all_entries(report: &NodeReport) -> Vec<&Entry> {
    let mut seen = std::collections::HashSet::new();
    report
        .trees
        .iter()
        .flat_map(|t| t.parent.iter().chain(t.entries()))
        .filter(|e| seen.insert(e.path.as_path()))
        .collect()
}

/// What the fix would change in an inspected node (a parent it may fix first).
pub fn plan_fix(report: &NodeReport) -> Vec<Change> {
    let parents = parents_to_fix(report);
    let in_trees: std::collections::HashSet<&Path> = report
        .trees
        .iter()
        .flat_map(|t| t.entries())
        .map(|e| e.path.as_path())
        .collect();
    all_entries(report)
        .into_iter()
        .filter(|e| {
            if in_trees.contains(e.path.as_path()) {
                needs_fix(e.kind, e.attrs) && !e.hard_linked()
            } else {
                parents.contains(&e.path)
            }
        })
        .map(|e| Change {
            path: e.path.clone(),
            kind: e.kind,
            before: e.attrs,
            after: fixed_attrs(e.kind, e.attrs),
        })
        .collect()
}

/// The entries whose owner, group or mode differ between two inspections of the same node.
pub fn diff(before: &NodeReport, after: &NodeReport) -> Vec<Change> {
    let after_by_path: HashMap<&Path, &Entry> = all_entries(after)
        .into_iter()
        .map(|e| (e.path.as_path(), e))
        .collect();
    all_entries(before)
        .into_iter()
        .filter_map(|b| {
            let a = after_by_path.get(b.path.as_path())?;
            (a.attrs != b.attrs).then(|| Change {
                path: b.path.clone(),
                kind: b.kind,
                before: b.attrs,
                after: a.attrs,
            })
        })
        .collect()
}

/// Builds a tree from the entries of one root (sorted, judged), or the non-directory state.
pub(crate) fn tree_from_entries(root: PathBuf, mut entries: Vec<Entry>) -> Tree {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let state = match entries.first() {
        Some(first) if first.path == root && first.kind != Kind::Dir => TreeState::NotADirectory {
            entry: first.clone(),
        },
        _ => {
            judge(&root, &mut entries);
            TreeState::Present { entries }
        }
    };
    Tree {
        root,
        parent: None,
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str, uid: u32, gid: u32, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::Dir,
            attrs: Attrs { uid, gid, mode },
            links: 2,
            user: None,
            group: None,
            link_target: None,
            verdict: None,
        }
    }

    #[test]
    fn kubespray_default_is_denied_by_group_bits() {
        // kube_owner=kube, group root, 0755: the case from the chart's init containers.
        let tree = tree_from_entries(
            "/opt/cni/bin".into(),
            vec![dir("/opt/cni/bin", 1001, 0, 0o755)],
        );
        let verdict = tree.entries()[0].verdict.clone();
        assert_eq!(
            verdict,
            Some(Verdict::Denied {
                class: Class::Group,
                bits: 0o5
            })
        );
        assert!(tree.agent_would_fail());
        let why = verdict.unwrap().explain(&tree.entries()[0]);
        assert!(
            why.contains("Permission denied") && why.contains("group bits"),
            "{why}"
        );
    }

    #[test]
    fn parents_at_risk_and_the_ones_fix_may_change() {
        let at = |uid, gid, mode| parent_at_risk(Attrs { uid, gid, mode });
        assert!(at(1001, 0, 0o755), "kube-owned /opt/cni");
        assert!(at(0, 1001, 0o775), "group-writable");
        assert!(!at(0, 0, 0o755));
        assert!(!at(0, 0, 0o555), "root's, nobody else writes");
        assert!(!at(0, 0, 0o775), "group root");
        assert!(!at(0, 1001, 0o755), "the group cannot write");
        assert!(at(0, 0, 0o757));
        assert!(
            !at(0, 0, 0o1777),
            "a root sticky directory like /tmp protects its entries"
        );
        assert!(at(1001, 1001, 0o1777), "not root's");
        for (path, fixable) in [
            ("/opt/cni", true),
            ("/etc/cni", true),
            ("/opt/cni/bin/sub", true),
            ("/opt", false),
            ("/srv/x", false),
            ("/opt/cnix", false),
        ] {
            assert_eq!(parent_fixable(Path::new(path)), fixable, "{path}");
        }
    }

    #[test]
    fn verdict_table() {
        // (uid, gid, mode, expected word): owner bits only count when uid 0, even if they deny.
        let cases = [
            (0, 0, 0o755, "ok"),
            (0, 1001, 0o555, "DENIED"),
            (0, 0, 0o577, "DENIED"),
            (1001, 0, 0o775, "ok"),
            (1001, 1001, 0o757, "ok"),
            (1001, 1001, 0o775, "DENIED"),
            (1001, 0, 0o767, "DENIED"),
        ];
        for (uid, gid, mode, word) in cases {
            let tree = tree_from_entries("/r".into(), vec![dir("/r", uid, gid, mode)]);
            let v = tree.entries()[0].verdict.clone().unwrap();
            assert_eq!(v.word(), word, "uid {uid} gid {gid} mode {mode:o}");
        }
    }

    #[test]
    fn nested_directory_behind_unsearchable_parent_is_unreachable() {
        let tree = tree_from_entries(
            "/r".into(),
            vec![
                dir("/r/a/b", 0, 0, 0o755),
                dir("/r", 0, 0, 0o755),
                dir("/r/a", 0, 0, 0o600),
            ],
        );
        let b = &tree.entries()[2];
        assert_eq!(
            b.verdict,
            Some(Verdict::Unreachable {
                blocked_at: "/r/a".into()
            })
        );
    }

    #[test]
    fn fix_clears_group_other_write_and_setuid_on_chown() {
        let d = fixed_attrs(
            Kind::Dir,
            Attrs {
                uid: 5,
                gid: 5,
                mode: 0o1577,
            },
        );
        assert_eq!(
            d,
            Attrs {
                uid: 0,
                gid: 0,
                mode: 0o1755
            }
        );
        let f = fixed_attrs(
            Kind::File,
            Attrs {
                uid: 5,
                gid: 0,
                mode: 0o6755,
            },
        );
        assert_eq!(f.mode, 0o0755);
        let untouched = fixed_attrs(
            Kind::File,
            Attrs {
                uid: 0,
                gid: 0,
                mode: 0o4777,
            },
        );
        assert_eq!(untouched.mode, 0o4777);
        assert!(!needs_fix(
            Kind::Symlink,
            Attrs {
                uid: 0,
                gid: 0,
                mode: 0o777
            }
        ));
    }
}
