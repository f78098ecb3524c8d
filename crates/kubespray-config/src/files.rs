//! Writing and reading the operator's files safely: the one place the workspace replaces a file.
//!
//! [`write_atomic`] never leaves a half-written file and never writes through a name someone
//! else chose: the temporary file is created next to the target with `O_CREAT|O_EXCL` (so an
//! existing file or symlink at that name is never opened) and mode 0600 (so the umask plays no
//! part and nobody else can read it while it fills), its bytes and the rename are synced to disk.
//! [`read_capped`] refuses a file larger than a limit before reading it.

use std::fs::{self, File};
use std::io::{self, Read, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The most bytes read from one inventory file (inventory, `group_vars`, `host_vars`): the
/// largest real inventories are a few hundred kilobytes, so a larger file is a mistake (or an
/// attack) that would otherwise be read into memory whole.
pub const MAX_INVENTORY_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Replaces `path` with `bytes`, permission bits `mode`: a temporary file in the same directory
/// (`O_EXCL`, 0600), written and synced, given `mode`, renamed over `path`, and the directory
/// synced so that the rename survives a crash. A symlink at `path` is replaced, not followed:
/// callers that mean the link's target resolve it first.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile opens with O_CREAT|O_EXCL and a random name, mode 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    if mode & 0o7777 != 0o600 {
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode & 0o7777))?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(&dir)
}

/// [`write_atomic`] with mode 0600: for files that may hold secrets (values, journals).
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic(path, bytes, 0o600)
}

/// Syncs a directory, so that a rename or a new file in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory a file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Reads a text file of at most `limit` bytes; a larger one is an error of kind
/// `FileTooLarge` that says the limit, and is not read.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<String> {
    let file = File::open(path)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {limit} bytes, more than an inventory file holds"),
        )
    };
    if file.metadata()?.len() > limit {
        return Err(too_large());
    }
    // The size can change between the check and the read: never read more than the limit.
    let mut text = String::new();
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .unwrap();
        names.sort();
        names
    }

    #[test]
    fn a_private_file_is_0600_whatever_was_there_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cilium-values.yaml");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_private_atomic(&path, b"tls:\n  ca:\n    key: secret\n").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            fs::read_to_string(&path).unwrap_or_default(),
            "tls:\n  ca:\n    key: secret\n"
        );
        assert_eq!(entries(dir.path()), ["cilium-values.yaml"]);
    }

    #[test]
    fn a_mode_is_kept_and_a_symlink_at_the_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere.yml");
        fs::write(&elsewhere, "shared").unwrap();
        let path = dir.path().join("k8s-cluster.yml");
        symlink(&elsewhere, &path).unwrap();
        write_atomic(&path, b"kube_owner: root\n", 0o640).unwrap();
        assert_eq!(fs::read_to_string(&elsewhere).unwrap_or_default(), "shared");
        assert!(fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()));
        assert_eq!(mode(&path), 0o640);
    }

    #[test]
    fn a_file_over_the_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("all.yml");
        fs::write(&path, "a: 1\n").unwrap();
        assert_eq!(read_capped(&path, 5).unwrap_or_default(), "a: 1\n");
        let err = read_capped(&path, 4).expect_err("too large");
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("larger than 4 bytes"), "{err}");
    }
}
