//! Reading `group_vars/` and `host_vars/` files the way Ansible's `host_group_vars` plugin finds them.
//!
//! For an entity `g` Ansible loads `g.yml`, `g.yaml`, `g.json`, then `g` itself: a file, or a
//! directory whose files (`.yml`, `.yaml`, `.json` or no extension, not hidden) are read in sorted
//! order, recursively. A later file wins over an earlier one for the same key.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Error;

/// Who a vars file applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `group_vars/<group>…`
    Group(String),
    /// `host_vars/<host>…`
    Host(String),
}

/// One parsed vars file, kept with its text so that it can be edited losslessly later.
#[derive(Debug, Clone)]
pub struct VarsFile {
    /// The file.
    pub path: PathBuf,
    /// The group or host it applies to.
    pub scope: Scope,
    /// The file's text, as read.
    pub text: String,
    /// The top-level variables (a comment-only file has none).
    pub values: Map<String, Value>,
}

impl VarsFile {
    /// 1-based line of a top-level key, found by a cheap text scan (block style, column 0).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        line_of_key(&self.text, key)
    }
}

pub(crate) fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| top_level_key(l) == Some(key))
        .map(|i| i + 1)
}

/// The key of a block-mapping line at column 0 (`key:` or `"key":`), if it is one.
pub(crate) fn top_level_key(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t', '#', '-']) {
        return None;
    }
    let (key, rest) = line.split_once(':')?;
    if !(rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n'])) {
        return None;
    }
    let key = key.trim_end();
    let key = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')))
        .unwrap_or(key);
    Some(key)
}

/// The most YAML nodes one inventory file may hold once its aliases are expanded. A sample
/// inventory holds a few hundred; an inventory of 5,000 hosts (Kubernetes' limit) tens of
/// thousands. More is an alias bomb or not an inventory.
pub(crate) const MAX_YAML_NODES: usize = 250_000;

/// The most events aliases may replay in one inventory file (Kubespray's samples use none).
pub(crate) const MAX_ALIAS_REPLAYED_EVENTS: usize = 100_000;

/// serde-saphyr options that read YAML the way Ansible (PyYAML, YAML 1.1) does: `yes`/`on` are
/// booleans, `0755` is octal, and a repeated key keeps the last value. The budget stops alias
/// bombs (a few lines that expand to billions of values) before they are expanded.
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        legacy_octal_numbers: true,
        strict_booleans: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        budget: serde_saphyr::budget! {
            max_nodes: MAX_YAML_NODES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_REPLAYED_EVENTS,
        },
    }
}

/// Parse the text of a vars file: a mapping at the top, or nothing (comments only).
pub fn parse_vars(path: &Path, text: &str) -> Result<Map<String, Value>, Error> {
    let value: Value = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| Error::yaml(path, &e))?;
    match value {
        Value::Null => Ok(Map::new()),
        Value::Object(map) => Ok(map),
        other => Err(Error::Shape {
            path: path.to_owned(),
            what: format!(
                "a vars file must hold a mapping of variables at the top level, found {}",
                crate::hosts::kind_name(&other)
            ),
            fix: "write one 'name: value' per line at column 0".to_owned(),
        }),
    }
}

const EXTENSIONS: [&str; 3] = ["yml", "yaml", "json"];

/// Every vars file under `dir` (`group_vars` or `host_vars`), in Ansible's load order per entity.
pub(crate) fn load_vars_dir(dir: &Path, host_scope: bool) -> Result<Vec<VarsFile>, Error> {
    let mut entities: Vec<String> = Vec::new();
    for entry in read_dir_sorted(dir)? {
        let name = file_name(&entry);
        if name.starts_with('.') {
            continue;
        }
        let entity = match entry.extension().and_then(|e| e.to_str()) {
            Some(ext) if EXTENSIONS.contains(&ext) && entry.is_file() => {
                name[..name.len() - ext.len() - 1].to_owned()
            }
            _ => name,
        };
        if !entities.contains(&entity) {
            entities.push(entity);
        }
    }
    let mut files = Vec::new();
    for entity in entities {
        let scope = if host_scope {
            Scope::Host(entity.clone())
        } else {
            Scope::Group(entity.clone())
        };
        for path in entity_files(dir, &entity)? {
            files.push(read_vars_file(&path, scope.clone())?);
        }
    }
    Ok(files)
}

/// The files Ansible loads for one group or host, in order.
fn entity_files(dir: &Path, entity: &str) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    for ext in EXTENSIONS {
        let p = dir.join(format!("{entity}.{ext}"));
        if p.is_file() {
            found.push(p);
        }
    }
    let bare = dir.join(entity);
    if bare.is_dir() {
        collect_dir(&bare, &mut found)?;
    } else if bare.is_file() {
        found.push(bare);
    }
    Ok(found)
}

fn collect_dir(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), Error> {
    for entry in read_dir_sorted(dir)? {
        let name = file_name(&entry);
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        if entry.is_dir() {
            collect_dir(&entry, found)?;
            continue;
        }
        match entry.extension().and_then(|e| e.to_str()) {
            Some(ext) if EXTENSIONS.contains(&ext) => found.push(entry),
            None => found.push(entry),
            Some(_) => {}
        }
    }
    Ok(())
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, "list", e))?
        .map(|e| {
            e.map(|e| e.path())
                .map_err(|err| Error::io(dir, "list", err))
        })
        .collect::<Result<_, _>>()?;
    entries.sort();
    Ok(entries)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read_vars_file(path: &Path, scope: Scope) -> Result<VarsFile, Error> {
    let text = crate::files::read_capped(path, crate::files::MAX_INVENTORY_FILE_BYTES)
        .map_err(|e| Error::io(path, "read", e))?;
    let values = parse_vars(path, &text)?;
    Ok(VarsFile {
        path: path.to_owned(),
        scope,
        text,
        values,
    })
}
