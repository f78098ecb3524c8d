//! The commands sent to a node (over SSH or in a pod), always argument vectors whose every
//! argument is shell-quoted, and the parser for what they print.

use crate::error::Error;
use crate::model::{Attrs, DEFAULT_PATHS, Entry, Kind, NodeReport, Tree, TreeState};
use crate::policy::{self, FIX_DIR_ADD, FIX_DIR_REMOVE, FIX_OWNER};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// `find -printf` format: ten NUL-terminated fields per entry, so any byte in a name is safe.
/// Start point, type, uid, gid, user, group, mode, link count, path, link target.
const FIND_FORMAT: &str = "%H\\0%y\\0%U\\0%G\\0%u\\0%g\\0%m\\0%n\\0%p\\0%l\\0";
const FIELDS: usize = 10;

/// Changes the mode of each directory named in its arguments without following a symlink: the
/// argument is entered (`cd -P`), and changed as `.` only when the directory entered has the
/// caller's directory (fd 3, opened first) as its parent. A symlink swapped in after `find`
/// looked leads elsewhere and fails the check instead of changing its target. chmod has no
/// `-h`, hence the detour. The text is fixed; the names arrive as arguments.
const CHMOD_DIRS_SCRIPT: &str = "exec 3<. || exit 1; for d do \
(cd -P -- \"$d\" && [ .. -ef /dev/fd/3 ] && chmod u+rwx,go-w .) || \
{ echo \"$d: not the directory find saw (replaced while fixing?); run the fix again\" >&2; exit 1; }; done";

/// The inspection command: `find ROOTS... -xdev -printf FORMAT` (never follows symlinks).
pub fn inspect_argv(roots: &[PathBuf]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["find".into()];
    argv.extend(roots.iter().map(|r| r.as_os_str().to_owned()));
    argv.extend(["-xdev", "-printf", FIND_FORMAT].map(OsString::from));
    argv
}

/// The two fix commands: chown every entry not root:root (`-h`: the link, not its target; a
/// file with other hard links is left alone, it is also a file elsewhere), then `u+rwx,go-w` on
/// directories that need it (through [`CHMOD_DIRS_SCRIPT`], which never follows a symlink).
/// `-execdir` runs each from the entry's own directory, so no path through a symlink is ever
/// resolved.
pub fn fix_argvs(roots: &[PathBuf]) -> [Vec<OsString>; 2] {
    let start = || -> Vec<OsString> {
        let mut argv: Vec<OsString> = vec!["find".into()];
        argv.extend(roots.iter().map(|r| r.as_os_str().to_owned()));
        argv.push("-xdev".into());
        argv
    };
    let (uid, gid) = FIX_OWNER;
    let mut chown = start();
    chown.extend(
        [
            "(",
            "!",
            "-uid",
            &uid.to_string(),
            "-o",
            "!",
            "-gid",
            &gid.to_string(),
            ")",
            "(",
            "-type",
            "d",
            "-o",
            "-links",
            "1",
            ")",
            "-execdir",
            "chown",
            "-h",
            &format!("{uid}:{gid}"),
            "--",
            "{}",
            "+",
        ]
        .map(OsString::from),
    );
    let mut chmod = start();
    chmod.extend(
        [
            "-type",
            "d",
            "(",
            "-perm",
            &format!("/{FIX_DIR_REMOVE:03o}"),
            "-o",
            "!",
            "-perm",
            &format!("-{FIX_DIR_ADD:03o}"),
            ")",
            "-execdir",
            "sh",
            "-c",
            CHMOD_DIRS_SCRIPT,
            "sh",
            "{}",
            "+",
        ]
        .map(OsString::from),
    );
    [chown, chmod]
}

/// Prefixes `sudo -n --` (non-interactive: fails instead of asking for a password).
pub(crate) fn with_become(argv: Vec<OsString>, become_root: bool) -> Vec<OsString> {
    if !become_root {
        return argv;
    }
    let mut out: Vec<OsString> = ["sudo", "-n", "--"].map(OsString::from).to_vec();
    out.extend(argv);
    out
}

/// Quotes one argument for a POSIX shell: always single quotes, `'` written as `'\''`.
pub fn shell_quote(arg: &OsStr) -> Vec<u8> {
    let mut out = Vec::with_capacity(arg.len() + 2);
    out.push(b'\'');
    for &b in arg.as_bytes() {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

/// The shell text for an argument vector: each argument quoted, joined by spaces.
pub fn shell_command(argv: &[OsString]) -> OsString {
    let mut out = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(shell_quote(arg));
    }
    OsString::from_vec(out)
}

/// Several commands joined with `&&` (the operator is ours, every word is quoted).
pub(crate) fn shell_and(commands: &[Vec<OsString>]) -> OsString {
    let mut out = OsString::new();
    for (i, argv) in commands.iter().enumerate() {
        if i > 0 {
            out.push(" && ");
        }
        out.push(shell_command(argv));
    }
    out
}

/// Checks the requested paths: absolute (so `find` never reads one as an option), no NUL.
pub(crate) fn validate_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut out: Vec<PathBuf> = Vec::new();
    for root in roots {
        if !root.is_absolute() {
            return Err(Error::InvalidPath {
                path: root.clone(),
                reason: "is not absolute; give the full host path, e.g. /opt/cni/bin".into(),
            });
        }
        if root.as_os_str().as_bytes().contains(&0) {
            return Err(Error::InvalidPath {
                path: root.clone(),
                reason: "contains a NUL byte".into(),
            });
        }
        // `..` would make the path mean something else than it reads (`/opt/cni/bin/../..`).
        if root.components().any(|c| c == Component::ParentDir) {
            return Err(Error::InvalidPath {
                path: root.clone(),
                reason: "contains `..`; give the directory itself, e.g. /opt/cni/bin".into(),
            });
        }
        // Drops trailing and doubled slashes, so the path matches what `find` prints.
        let normal: PathBuf = root.components().collect();
        if normal.parent().is_none() {
            return Err(Error::InvalidPath {
                path: root.clone(),
                reason: "is the root directory: the whole file system would be inspected or \
                         made root:root; give the CNI directory, e.g. /opt/cni/bin"
                    .into(),
            });
        }
        if !out.contains(&normal) {
            out.push(normal);
        }
    }
    Ok(out)
}

/// The directories a fix may change, checked: the known CNI directories ([`DEFAULT_PATHS`]) and
/// directories under them, or with `force` any other absolute path. Never `/` nor a path with
/// `..`: one typo must not make a whole tree `root:root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixPaths(Vec<PathBuf>);

impl FixPaths {
    /// Checks `paths` (see [`FixPaths`]); `force` allows paths outside the CNI directories.
    pub fn new(paths: &[PathBuf], force: bool) -> Result<FixPaths, Error> {
        let roots = validate_roots(paths)?;
        if !force
            && let Some(outside) = roots
                .iter()
                .find(|r| !DEFAULT_PATHS.iter().any(|known| r.starts_with(known)))
        {
            return Err(Error::InvalidPath {
                path: outside.clone(),
                reason: format!(
                    "is not {} or a directory under them, and the fix makes everything under it \
                     root:root; give the CNI directory, or pass --force if you mean it",
                    DEFAULT_PATHS.join(", ")
                ),
            });
        }
        Ok(FixPaths(roots))
    }

    /// The known CNI directories, [`DEFAULT_PATHS`].
    pub fn known() -> FixPaths {
        FixPaths(DEFAULT_PATHS.iter().map(PathBuf::from).collect())
    }

    /// The checked paths (normalised, without duplicates).
    pub fn paths(&self) -> &[PathBuf] {
        &self.0
    }
}

/// The entries `find ... -printf FIND_FORMAT` printed, per start point (`shown_starts` as given
/// to `find`, `host_starts` the node's paths they stand for), with the node's paths.
fn parse_entries(
    node: &str,
    host_starts: &[PathBuf],
    shown_starts: &[PathBuf],
    stdout: &[u8],
) -> Result<Vec<Vec<Entry>>, Error> {
    let bad = |reason: String| Error::RemoteOutput {
        node: node.to_string(),
        reason,
    };
    let mut fields: Vec<&[u8]> = stdout.split(|&b| b == 0).collect();
    if fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    if !fields.len().is_multiple_of(FIELDS) {
        return Err(bad(format!(
            "{} fields, not a multiple of {FIELDS}",
            fields.len()
        )));
    }
    let mut per_root: Vec<Vec<Entry>> = vec![Vec::new(); shown_starts.len()];
    for record in fields.chunks(FIELDS) {
        let start = Path::new(OsStr::from_bytes(record[0]));
        let index = shown_starts
            .iter()
            .position(|r| r == start)
            .ok_or_else(|| bad(format!("entry under unrequested path {}", start.display())))?;
        let text = |i: usize| String::from_utf8_lossy(record[i]).into_owned();
        let number = |i: usize, radix: u32| {
            u32::from_str_radix(&text(i), radix)
                .map_err(|_| bad(format!("field {i} `{}` is not a number", text(i))))
        };
        let kind = Kind::from_find_letter(&text(1))
            .ok_or_else(|| bad(format!("unknown file type `{}`", text(1))))?;
        let shown_path = Path::new(OsStr::from_bytes(record[8]));
        let rel = shown_path.strip_prefix(start).map_err(|_| {
            bad(format!(
                "{} is not under {}",
                shown_path.display(),
                start.display()
            ))
        })?;
        let host_path = if rel.as_os_str().is_empty() {
            host_starts[index].clone()
        } else {
            host_starts[index].join(rel)
        };
        let (uid, gid) = (number(2, 10)?, number(3, 10)?);
        let name = |i: usize, id: u32| Some(text(i)).filter(|n| *n != id.to_string());
        per_root[index].push(Entry {
            path: host_path,
            kind,
            attrs: Attrs {
                uid,
                gid,
                mode: number(6, 8)?,
            },
            links: text(7)
                .parse()
                .map_err(|_| bad(format!("link count `{}` is not a number", text(7))))?,
            user: name(4, uid),
            group: name(5, gid),
            link_target: (kind == Kind::Symlink)
                .then(|| PathBuf::from(OsStr::from_bytes(record[9]))),
            verdict: None,
        });
    }
    Ok(per_root)
}

/// The command that lists the directories holding the trees: `find PARENTS -maxdepth 0
/// -printf FORMAT` (a symlink is listed, not followed).
pub(crate) fn parents_argv(parents: &[PathBuf]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["find".into()];
    argv.extend(parents.iter().map(|r| r.as_os_str().to_owned()));
    argv.extend(["-maxdepth", "0", "-printf", FIND_FORMAT].map(OsString::from));
    argv
}

/// The parents of `roots`, each once, in order (validated roots always have one).
pub(crate) fn parents_of(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for parent in roots.iter().filter_map(|r| r.parent()) {
        if !out.iter().any(|p| p == parent) {
            out.push(parent.to_path_buf());
        }
    }
    out
}

/// Parses the output of [`parents_argv`] and sets each tree's parent in `report`; a missing
/// parent stays `None`, any other complaint is an error.
pub(crate) fn attach_parents(
    report: &mut NodeReport,
    host_parents: &[PathBuf],
    shown_parents: &[PathBuf],
    status: i32,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<(), Error> {
    let per_parent = parse_entries(&report.node, host_parents, shown_parents, stdout)?;
    let stderr_text = String::from_utf8_lossy(stderr);
    let unexplained = stderr_text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.contains("No such file or directory"));
    if status != 0 && (status != 1 || unexplained) {
        return Err(Error::Remote {
            node: report.node.clone(),
            what: "inspecting the directories holding the trees".into(),
            status,
            stderr: stderr_text.trim().to_string(),
        });
    }
    for tree in &mut report.trees {
        let Some(parent) = tree.root.parent() else {
            continue;
        };
        tree.parent = host_parents
            .iter()
            .position(|p| p == parent)
            .and_then(|i| per_parent[i].first().cloned());
    }
    Ok(())
}

/// The fix command for the directories holding the trees (only those the fix may change,
/// [`crate::policy::parent_fixable`]): `find PARENTS -maxdepth 0 -type d AT_RISK` (never through
/// a symlink: `-type d` does not follow one), then `chown -h 0:0` and the chmod of
/// [`CHMOD_DIRS_SCRIPT`] on what matched. AT_RISK is [`crate::policy::parent_at_risk`] in
/// `find`'s words, decided once for both changes: the pod's commands are fixed before it looks,
/// and must change exactly what the plan says.
pub fn fix_parent_argv(parents: &[PathBuf]) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["find".into()];
    argv.extend(parents.iter().map(|r| r.as_os_str().to_owned()));
    let (uid, gid) = FIX_OWNER;
    let (uid, gid) = (uid.to_string(), gid.to_string());
    argv.extend(
        [
            "-maxdepth",
            "0",
            "-type",
            "d",
            // Not root's, or (without the sticky bit) writable by others or a group not root.
            "(",
            "!",
            "-uid",
            &uid,
            "-o",
            "!",
            "-gid",
            &gid,
            "-perm",
            "/020",
            "!",
            "-perm",
            "-1000",
            "-o",
            "-perm",
            "/002",
            "!",
            "-perm",
            "-1000",
            ")",
            "-execdir",
            "chown",
            "-h",
            &format!("{uid}:{gid}"),
            "--",
            "{}",
            "+",
            "-execdir",
            "sh",
            "-c",
            CHMOD_DIRS_SCRIPT,
            "sh",
            "{}",
            "+",
        ]
        .map(OsString::from),
    );
    argv
}

/// Parses the output of [`inspect_argv`]: `stdout`, `stderr` and the exit status of `find`.
///
/// `shown_roots` are the paths given to `find`, `host_roots` the node's paths they stand for
/// (they differ in a pod, where the host directories are mounted elsewhere).
pub(crate) fn parse_inspection(
    node: &str,
    host_roots: &[PathBuf],
    shown_roots: &[PathBuf],
    status: i32,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<NodeReport, Error> {
    let per_root = parse_entries(node, host_roots, shown_roots, stdout)?;
    let stderr_text = String::from_utf8_lossy(stderr);
    let mut trees = Vec::new();
    for (index, entries) in per_root.into_iter().enumerate() {
        let host_root = host_roots[index].clone();
        if entries.is_empty() {
            let shown = shown_roots[index].to_string_lossy().into_owned();
            let reason = stderr_text
                .lines()
                .find(|l| l.contains(&shown))
                .map(|l| l.replace(&shown, &host_root.to_string_lossy()))
                .unwrap_or_else(|| "not listed by find".to_string());
            if !reason.contains("No such file or directory") {
                return Err(Error::Remote {
                    node: node.to_string(),
                    what: format!("inspecting {}", host_root.display()),
                    status,
                    stderr: stderr_text.trim().to_string(),
                });
            }
            trees.push(Tree {
                root: host_root,
                parent: None,
                state: TreeState::Missing { reason },
            });
        } else {
            trees.push(policy::tree_from_entries(host_root, entries));
        }
    }
    // Exit status 1 is expected for missing roots; any other complaint means the listing is partial.
    let unexplained = stderr_text
        .lines()
        .any(|l| !l.trim().is_empty() && !l.contains("No such file or directory"));
    if status != 0 && (status != 1 || unexplained) {
        return Err(Error::Remote {
            node: node.to_string(),
            what: "inspecting".into(),
            status,
            stderr: stderr_text.trim().to_string(),
        });
    }
    Ok(NodeReport {
        node: node.to_string(),
        trees,
        not_checked: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        let q = shell_command(&["find".into(), "/tmp/x/opt cni/bin 'q\"".into()]);
        assert_eq!(q, OsString::from("'find' '/tmp/x/opt cni/bin '\\''q\"'"));
    }

    #[test]
    fn fix_commands_read_like_the_docs() {
        let [chown, chmod] = fix_argvs(&["/opt/cni/bin".into()]);
        let text = |v: &[OsString]| {
            v.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            text(&chown),
            "find /opt/cni/bin -xdev ( ! -uid 0 -o ! -gid 0 ) ( -type d -o -links 1 ) -execdir chown -h 0:0 -- {} +"
        );
        assert_eq!(
            text(&chmod),
            format!(
                "find /opt/cni/bin -xdev -type d ( -perm /022 -o ! -perm -700 ) -execdir sh -c {CHMOD_DIRS_SCRIPT} sh {{}} +"
            )
        );
    }

    #[test]
    fn parses_recorded_find_output_with_missing_root() {
        // Recorded from `find /opt/cni/bin /etc/cni/net.d -xdev -printf ...` on a Kubespray node.
        let stdout = b"/opt/cni/bin\0d\x001001\x000\0kube\0root\x00755\x002\0/opt/cni/bin\0\0\
/opt/cni/bin\0f\x001001\x000\0kube\0root\x00755\x001\0/opt/cni/bin/loopback\0\0\
/opt/cni/bin\0l\x000\x000\0root\0root\x00777\x001\0/opt/cni/bin/odd\nname\0/etc/passwd\0";
        let stderr = b"find: '/etc/cni/net.d': No such file or directory\n";
        let roots: Vec<PathBuf> = vec!["/opt/cni/bin".into(), "/etc/cni/net.d".into()];
        let report = parse_inspection("node1", &roots, &roots, 1, stdout, stderr).unwrap();
        assert!(report.agent_would_fail());
        let bin = &report.trees[0];
        assert_eq!(bin.entries().len(), 3);
        assert_eq!(bin.entries()[0].owner_group(), "kube:root");
        assert_eq!(
            bin.entries()[2].path,
            PathBuf::from("/opt/cni/bin/odd\nname")
        );
        assert_eq!(
            bin.entries()[2].link_target,
            Some(PathBuf::from("/etc/passwd"))
        );
        assert!(matches!(report.trees[1].state, TreeState::Missing { .. }));
    }

    #[test]
    fn permission_denied_while_listing_is_an_error() {
        let stdout = b"/r\0d\x000\x000\0root\0root\x00755\x002\0/r\0\0";
        let stderr = b"find: '/r/private': Permission denied\n";
        let roots: Vec<PathBuf> = vec!["/r".into()];
        let err = parse_inspection("n", &roots, &roots, 1, stdout, stderr).unwrap_err();
        assert!(err.to_string().contains("Permission denied"), "{err}");
    }

    #[test]
    fn relative_paths_are_refused() {
        let err = validate_roots(&["opt/cni/bin".into()]).unwrap_err();
        assert!(err.to_string().contains("opt/cni/bin"));
    }

    #[test]
    fn fix_paths_are_the_cni_directories_and_below_unless_forced() {
        let known = FixPaths::known();
        assert_eq!(FixPaths::new(known.paths(), false).unwrap(), known);
        assert!(
            FixPaths::new(
                &["/opt/cni/bin/sub".into(), "/etc/cni/net.d/".into()],
                false
            )
            .is_ok()
        );
        for path in ["/opt", "/opt/cni", "/opt/cni/binx", "/etc", "/tmp/x"] {
            let err = FixPaths::new(&[path.into()], false)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{path:?}")) && err.contains("--force"),
                "{path}: {err}"
            );
            assert!(FixPaths::new(&[path.into()], true).is_ok(), "{path}");
        }
        for path in ["/", "/opt/cni/bin/../../.."] {
            assert!(FixPaths::new(&[path.into()], true).is_err(), "{path}");
        }
    }

    #[test]
    fn the_root_directory_and_dotdot_are_refused() {
        for path in ["/", "//", "/opt/cni/bin/../..", "/opt/cni/bin/.."] {
            let err = validate_roots(&[path.into()]).unwrap_err().to_string();
            assert!(err.contains(&format!("{path:?}")), "{path}: {err}");
        }
        let ok = validate_roots(&["/opt/cni/bin/".into(), "/opt/./cni/bin".into()]).unwrap();
        assert_eq!(ok, [PathBuf::from("/opt/cni/bin")]);
    }
}
