//! Helpers shared by the integration tests: temporary inventories and Kubespray's sample data.
#![allow(dead_code, unreachable_pub, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Kubespray's data files (`$CILIUM_MIGRATE_UPSTREAM/kubespray`) for the test named `test`:
/// `None` (a recorded skip) when they are missing outside CI; a failure under CI.
pub fn shared_kubespray(test: &str) -> Option<PathBuf> {
    upstream::Upstream::for_test(test).map(|found| found.kubespray())
}

/// The sample inventory tags present, oldest first.
pub fn sample_tags(shared: &Path) -> Vec<String> {
    let mut tags: Vec<String> = std::fs::read_dir(shared.join("samples"))
        .expect("samples dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    tags.sort_by_key(|t| version_key(t));
    tags
}

pub fn version_key(tag: &str) -> Vec<u64> {
    tag.trim_start_matches('v')
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Write files (path relative to `dir` → text) into `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

/// A temporary inventory made of `files`.
pub fn inventory(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), files);
    dir
}

/// Every file under `dir` with its bytes, to prove nothing was written.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), std::fs::read(&p).expect("read"));
            }
        }
    }
    walk(dir, &mut out);
    out
}
