//! Inspection and fix on this machine, with direct system calls.
//!
//! The fix walks the tree through directory file descriptors opened with `O_NOFOLLOW`, and changes
//! entries relative to them (`fchownat(AT_SYMLINK_NOFOLLOW)`, `fchmod`), so a symlink (even one
//! swapped in while the fix runs) is never followed out of the tree.

use crate::error::Error;
use crate::model::{Attrs, Entry, Kind, NodeReport, Tree, TreeState};
use crate::policy::{self, FIX_OWNER};
use rustix::fs::{AtFlags, Dir, FileType, Gid, Mode, OFlags, Stat, Uid};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Inspects `roots` on this machine; `node` names the report.
pub(crate) fn inspect(node: &str, roots: &[PathBuf]) -> Result<NodeReport, Error> {
    let names = Names::load();
    let trees = roots
        .iter()
        .map(|root| inspect_tree(root, &names))
        .collect::<Result<_, _>>()?;
    Ok(NodeReport {
        node: node.to_string(),
        trees,
        not_checked: None,
    })
}

fn inspect_tree(root: &Path, names: &Names) -> Result<Tree, Error> {
    let parent = match root.parent() {
        Some(parent) => inspect_parent(parent, names)?,
        None => None,
    };
    let meta = match std::fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Tree {
                root: root.to_path_buf(),
                parent,
                state: TreeState::Missing {
                    reason: e.to_string(),
                },
            });
        }
        Err(e) => return Err(Error::io(root, e)),
    };
    let mut entries = Vec::new();
    walk(root, &meta, meta.dev(), names, &mut entries)?;
    let mut tree = policy::tree_from_entries(root.to_path_buf(), entries);
    tree.parent = parent;
    Ok(tree)
}

/// The directory holding a tree, as an entry (not followed when a symlink), if it exists.
fn inspect_parent(parent: &Path, names: &Names) -> Result<Option<Entry>, Error> {
    let meta = match std::fs::symlink_metadata(parent) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(parent, e)),
    };
    Ok(Some(entry(parent, &meta, names)?))
}

fn walk(
    path: &Path,
    meta: &std::fs::Metadata,
    dev: u64,
    names: &Names,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    let entry = entry(path, meta, names)?;
    let kind = entry.kind;
    out.push(entry);
    // Like `find -xdev`: list a mount point, do not descend into it.
    if kind == Kind::Dir && meta.dev() == dev {
        for child in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let child = child.map_err(|e| Error::io(path, e))?;
            let child_path = child.path();
            let child_meta =
                std::fs::symlink_metadata(&child_path).map_err(|e| Error::io(&child_path, e))?;
            walk(&child_path, &child_meta, dev, names, out)?;
        }
    }
    Ok(())
}

/// The entry for `path` with its (not followed) metadata `meta`.
fn entry(path: &Path, meta: &std::fs::Metadata, names: &Names) -> Result<Entry, Error> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_file() {
        Kind::File
    } else {
        Kind::Other
    };
    let link_target = match kind {
        Kind::Symlink => Some(std::fs::read_link(path).map_err(|e| Error::io(path, e))?),
        _ => None,
    };
    Ok(Entry {
        path: path.to_path_buf(),
        kind,
        attrs: Attrs {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
        },
        links: meta.nlink(),
        user: names.users.get(&meta.uid()).cloned(),
        group: names.groups.get(&meta.gid()).cloned(),
        link_target,
        verdict: None,
    })
}

/// Makes the directories `parents` (see [`policy::parents_to_fix`]) and every tree in `roots`
/// root:root with directories `u+rwx,go-w`; missing roots and roots that are not directories
/// are left alone.
pub(crate) fn fix(parents: &[PathBuf], roots: &[PathBuf]) -> Result<(), Error> {
    // The parents first: after them, nobody else can swap a tree while it is fixed.
    for parent in parents {
        let fd = match rustix::fs::open(
            parent,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                continue;
            }
            Err(e) => return Err(Error::io(parent, e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io(parent, e.into()))?;
        if needs_owner_fix(&stat) {
            rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT))
                .map_err(|e| Error::io(parent, e.into()))?;
        }
        fix_dir_mode(&fd, parent)?;
    }
    for root in roots {
        let fd = match rustix::fs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP) => {
                continue;
            }
            Err(e) => return Err(Error::io(root, e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io(root, e.into()))?;
        if needs_owner_fix(&stat) {
            rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT))
                .map_err(|e| Error::io(root, e.into()))?;
        }
        fix_dir_mode(&fd, root)?;
        fix_children(&fd, root, stat.st_dev)?;
    }
    Ok(())
}

fn needs_owner_fix(stat: &Stat) -> bool {
    (stat.st_uid, stat.st_gid) != FIX_OWNER
}

fn fix_dir_mode(fd: &OwnedFd, path: &Path) -> Result<(), Error> {
    let stat = rustix::fs::fstat(fd).map_err(|e| Error::io(path, e.into()))?;
    let attrs = Attrs {
        uid: stat.st_uid,
        gid: stat.st_gid,
        mode: stat.st_mode & 0o7777,
    };
    let fixed = policy::fixed_attrs(Kind::Dir, attrs);
    if fixed.mode != attrs.mode {
        rustix::fs::fchmod(fd, Mode::from_raw_mode(fixed.mode))
            .map_err(|e| Error::io(path, e.into()))?;
    }
    Ok(())
}

fn fix_children(dir: &OwnedFd, dir_path: &Path, dev: u64) -> Result<(), Error> {
    let entries = Dir::read_from(dir).map_err(|e| Error::io(dir_path, e.into()))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir_path, e.into()))?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let path = dir_path.join(OsStr::from_bytes(name.to_bytes()));
        let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io(&path, e.into()))?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        // A file with other hard links is also a file elsewhere: leave it (the plan does too).
        if needs_owner_fix(&stat) && (is_dir || stat.st_nlink <= 1) {
            rustix::fs::chownat(
                dir,
                name,
                Some(Uid::ROOT),
                Some(Gid::ROOT),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| Error::io(&path, e.into()))?;
        }
        if is_dir {
            let child = rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io(&path, e.into()))?;
            fix_dir_mode(&child, &path)?;
            if stat.st_dev == dev {
                fix_children(&child, &path, dev)?;
            }
        }
    }
    Ok(())
}

/// User and group names from this machine's `/etc/passwd` and `/etc/group` (best effort).
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn load() -> Names {
        let parse = |file: &str| -> HashMap<u32, String> {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let mut map = HashMap::new();
            for line in text.lines() {
                let fields: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(id)) = (fields.first(), fields.get(2))
                    && let Ok(id) = id.parse()
                {
                    map.entry(id).or_insert_with(|| (*name).to_string());
                }
            }
            map
        };
        Names {
            users: parse("/etc/passwd"),
            groups: parse("/etc/group"),
        }
    }
}
