//! The hand-over edit: tell Kubespray to stop managing Cilium (`kube_network_plugin: cni`), to
//! leave the CNI directories root-owned (`kube_owner: root`) and, when Cilium replaces kube-proxy,
//! not to deploy kube-proxy again (`kube_proxy_remove: true`).
//!
//! Edits are lossless: the user's files are edited through yaml-edit's concrete syntax tree, the
//! edited file is parsed again and compared with the original (only the intended keys may differ,
//! and only their lines may change), and nothing is written unless [`FileEdit::write`] is called.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;
use yaml_edit::{ScalarStyle, ScalarValue, YamlFile, YamlNode};

use crate::resolve::Defined;
use crate::vars::{parse_vars, top_level_key};
use crate::{Error, Inventory, Scope, files};

/// What the hand-over edit should do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoverOptions {
    /// Add `kube_proxy_remove: true` (the caller knows Cilium replaces kube-proxy).
    pub kube_proxy_remove: bool,
}

/// The change to one file: its text before and after, and the keys that changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    /// The file, as the inventory names it.
    pub path: PathBuf,
    /// The file the edit writes: `path` with every symlink resolved, always inside the
    /// inventory directory (a link that leads out of it is refused, see
    /// [`Inventory::handover_edits`]).
    pub target: PathBuf,
    /// Its text as read.
    pub before: String,
    /// Its text after the edit.
    pub after: String,
    /// The variables set or added, in the order edited.
    pub changed_keys: Vec<String>,
}

impl FileEdit {
    /// A unified diff of the edit (`a/<path>` → `b/<path>`), without colours.
    pub fn unified_diff(&self) -> String {
        unified_diff(&self.path, &self.before, &self.after)
    }

    /// Write the edited text to [`FileEdit::target`] (so a symlink inside the inventory stays a
    /// link): atomically, keeping the file's permission bits, synced to disk with its directory
    /// ([`files::write_atomic`]). Refuses if the file changed since it was read.
    pub fn write(&self) -> Result<(), Error> {
        let current = files::read_capped(&self.target, files::MAX_INVENTORY_FILE_BYTES)
            .map_err(|e| Error::io(&self.target, "read", e))?;
        if current != self.before {
            return Err(Error::ChangedOnDisk {
                path: self.path.clone(),
            });
        }
        let mode = std::fs::metadata(&self.target)
            .map_err(|e| Error::io(&self.target, "read", e))?
            .permissions()
            .mode();
        files::write_atomic(&self.target, self.after.as_bytes(), mode)
            .map_err(|e| Error::io(&self.target, "replace", e))
    }
}

/// A unified diff of two texts of one file (`a/<path>` → `b/<path>`), without colours.
pub fn unified_diff(path: &Path, before: &str, after: &str) -> String {
    // `a//abs/path` reads badly; git shows `a/abs/path`.
    let shown = path.display().to_string();
    let name = shown.trim_start_matches('/');
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

/// The value a hand-over key must end up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A string (`cni`, `root`): written in the user's quote style.
    Str(&'static str),
    /// A boolean: written plain, because a quoted `"true"` is a string in YAML.
    Bool(bool),
}

impl Target {
    fn value(self) -> Value {
        match self {
            Target::Str(s) => Value::String(s.to_owned()),
            Target::Bool(b) => Value::Bool(b),
        }
    }

    fn is_met_by(self, v: &Value) -> bool {
        match (self, v) {
            (Target::Str(want), Value::String(have)) => want == have,
            (Target::Bool(want), Value::Bool(have)) => want == *have,
            (Target::Bool(true), Value::String(s)) => {
                matches!(s.to_ascii_lowercase().as_str(), "true" | "yes")
            }
            _ => false,
        }
    }
}

/// The keys and values of the hand-over edit for these options.
pub fn handover_keys(options: &HandoverOptions) -> Vec<(&'static str, Target)> {
    let mut keys = vec![
        ("kube_network_plugin", Target::Str("cni")),
        ("kube_owner", Target::Str("root")),
    ];
    if options.kube_proxy_remove {
        keys.push(("kube_proxy_remove", Target::Bool(true)));
    }
    keys
}

/// Where Kubespray's sample keeps the network settings, relative to `group_vars/`.
const NETWORK_SETTINGS_FILES: [&str; 2] =
    ["k8s_cluster/k8s-cluster.yml", "k8s-cluster/k8s-cluster.yml"];

impl Inventory {
    /// The file edits of the hand-over. A key already at its target is left alone; a key set in
    /// several files is edited where Ansible takes it from (the highest-precedence definition);
    /// a key set in no `group_vars` file is added to `group_vars/k8s_cluster/k8s-cluster.yml`.
    /// Nothing is written.
    pub fn handover_edits(&self, options: &HandoverOptions) -> Result<Vec<FileEdit>, Error> {
        let definitions = self.definitions();
        // (file, keys) in the order first touched.
        let mut plan: Vec<(PathBuf, Vec<(&'static str, Target)>)> = Vec::new();
        self.require_cilium(&definitions)?;
        for (key, target) in handover_keys(options) {
            self.refuse_overrides(key, target)?;
            let winner: Option<&Defined> = definitions.iter().rev().find(|d| d.name == key);
            if winner.is_some_and(|w| target.is_met_by(&w.value)) {
                continue;
            }
            let path = match winner.and_then(|w| w.vars_file) {
                Some(index) => self.vars_files[index].path.clone(),
                // Not in any group_vars file (maybe in the inventory file's group vars, which
                // group_vars files override): add it where Kubespray keeps network settings.
                None => self.network_settings_file(key)?,
            };
            match plan.iter_mut().find(|(p, _)| *p == path) {
                Some((_, keys)) => keys.push((key, target)),
                None => plan.push((path, vec![(key, target)])),
            }
        }
        let mut edits = Vec::new();
        for (path, keys) in plan {
            let target = self.edit_target(&path, &keys)?;
            let before = match self.vars_files.iter().find(|f| f.path == path) {
                Some(f) => f.text.clone(),
                None => files::read_capped(&target, files::MAX_INVENTORY_FILE_BYTES)
                    .map_err(|e| Error::io(&path, "read", e))?,
            };
            let after = edit_vars_text(&path, &before, &keys)?;
            edits.push(FileEdit {
                path,
                target,
                before,
                after,
                changed_keys: keys.iter().map(|(k, _)| (*k).to_owned()).collect(),
            });
        }
        Ok(edits)
    }

    /// The file an edit of `path` writes, every symlink resolved. A link that leads out of the
    /// inventory directory is refused: the file it leads to is shared (other clusters' inventories
    /// link it too, or it lives in another checkout), so the edit would hand those clusters over as
    /// well, and neither this inventory's backup nor its rollback would cover it.
    fn edit_target(&self, path: &Path, keys: &[(&str, Target)]) -> Result<PathBuf, Error> {
        let root = std::fs::canonicalize(&self.dir).map_err(|e| Error::io(&self.dir, "read", e))?;
        let target = std::fs::canonicalize(path).map_err(|e| Error::io(path, "read", e))?;
        if target.starts_with(&root) {
            return Ok(target);
        }
        Err(Error::CannotEdit {
            path: path.to_owned(),
            key: keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
            what: format!(
                "the file is reached through a symlink and is {}, outside the inventory {}: \
                 other inventories may share it, and the hand-over edit would change them too",
                target.display(),
                root.display()
            ),
            fix: format!(
                "make it a file of this inventory (replace the link with a copy of {}), or make the change by hand",
                target.display()
            ),
        })
    }

    /// Host variables and deeper groups win over `k8s_cluster`: an edit there would not take effect.
    fn refuse_overrides(&self, key: &str, target: Target) -> Result<(), Error> {
        for host in &self.hosts {
            if let Some(var) = host.vars.get(key)
                && !target.is_met_by(&var.value)
            {
                return Err(Error::CannotEdit {
                    path: var.file.clone(),
                    key: key.to_owned(),
                    what: format!(
                        "set as a host variable of '{}', which wins over group_vars",
                        host.name
                    ),
                    fix: format!(
                        "remove {key}=… from the host line; the hand-over sets it for the whole cluster"
                    ),
                });
            }
        }
        for file in &self.vars_files {
            if file.values.get(key).is_none_or(|v| target.is_met_by(v)) {
                continue;
            }
            let what = match &file.scope {
                Scope::Host(h) => format!("set in host_vars of '{h}', which wins over group_vars"),
                Scope::Group(g) if ["all", "k8s_cluster", "k8s-cluster"].contains(&g.as_str()) => {
                    continue;
                }
                Scope::Group(g) => format!(
                    "set in group_vars of group '{g}', which wins over k8s_cluster for its hosts"
                ),
            };
            return Err(Error::CannotEdit {
                path: file.path.clone(),
                key: key.to_owned(),
                what,
                fix: format!(
                    "remove {key} from that file; the hand-over sets it in the k8s_cluster group_vars"
                ),
            });
        }
        Ok(())
    }

    /// The hand-over is for a Kubespray-installed Cilium: refuse any other network plugin.
    fn require_cilium(&self, definitions: &[Defined]) -> Result<(), Error> {
        let winner = definitions
            .iter()
            .rev()
            .find(|d| d.name == "kube_network_plugin");
        let (value, path) = match winner {
            Some(d) => (d.value.clone(), d.origin.file()),
            None => (Value::from("calico"), self.dir.join("group_vars")),
        };
        if matches!(value.as_str(), Some("cilium" | "cni")) {
            return Ok(());
        }
        let shown = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        let (what, fix) = if winner.is_some() {
            (
                format!("is {shown:?}: this inventory does not install Cilium, so there is nothing to hand over"),
                "if Kubespray installed Cilium on this cluster, set kube_network_plugin: cilium first".to_owned(),
            )
        } else {
            (
                "is set nowhere, so Kubespray's default \"calico\" applies: this inventory does not install Cilium"
                    .to_owned(),
                "point --inventory at the inventory that installed Cilium (it sets kube_network_plugin: cilium)".to_owned(),
            )
        };
        Err(Error::CannotEdit {
            path,
            key: "kube_network_plugin".to_owned(),
            what,
            fix,
        })
    }

    fn network_settings_file(&self, key: &str) -> Result<PathBuf, Error> {
        let group_vars = self.dir.join("group_vars");
        NETWORK_SETTINGS_FILES
            .iter()
            .map(|f| group_vars.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::CannotEdit {
                path: group_vars.join(NETWORK_SETTINGS_FILES[0]),
                key: key.to_owned(),
                what: "is set in no group_vars file, and the file Kubespray keeps network settings in does not exist".to_owned(),
                fix: format!("create group_vars/k8s_cluster/k8s-cluster.yml (Kubespray's sample has it) or add {key} to your k8s_cluster group_vars by hand"),
            })
    }
}

/// Set `keys` in the YAML text of one vars file, losslessly, and check the result.
pub fn edit_vars_text(path: &Path, before: &str, keys: &[(&str, Target)]) -> Result<String, Error> {
    let original = parse_vars(path, before)?;
    let not_lossless = |detail: String| Error::EditNotLossless {
        path: path.to_owned(),
        detail,
    };
    // yaml-edit is a young CST library: a panic inside it must not take the caller down.
    let edited = std::panic::catch_unwind(|| cst_edit(before, keys, original.is_empty()))
        .map_err(|_| not_lossless("the YAML editor failed on this file".to_owned()))?
        .map_err(|what| Error::CannotEdit {
            path: path.to_owned(),
            key: keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
            what,
            fix: "make the change by hand".to_owned(),
        })?;
    let edited = with_line_endings_of(before, edited);
    verify(path, before, &edited, &original, keys)?;
    Ok(edited)
}

/// yaml-edit writes `\n` for the lines it adds or rewrites; a file written with `\r\n`
/// throughout keeps `\r\n` on every line. A file that mixes both is left as edited, and
/// `verify` refuses any line whose ending changed.
fn with_line_endings_of(before: &str, edited: String) -> String {
    let crlf_only =
        before.contains("\r\n") && before.matches('\n').count() == before.matches("\r\n").count();
    if !crlf_only {
        return edited;
    }
    let mut out = String::with_capacity(edited.len() + edited.len() / 16);
    for line in edited.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(body) => {
                out.push_str(body.strip_suffix('\r').unwrap_or(body));
                out.push_str("\r\n");
            }
            None => out.push_str(line),
        }
    }
    out
}

/// The text's lines with their endings; a last line without one gets the file's own ending,
/// since appending keys after it must give it one.
fn lines_with_endings(text: &str) -> Vec<String> {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    text.split_inclusive('\n')
        .map(|line| {
            if line.ends_with('\n') {
                line.to_owned()
            } else {
                format!("{line}{eol}")
            }
        })
        .collect()
}

fn cst_edit(before: &str, keys: &[(&str, Target)], no_values: bool) -> Result<String, String> {
    let file = YamlFile::from_str(before)
        .map_err(|e| format!("the YAML editor cannot read the file: {e}"))?;
    let documents: Vec<_> = file.documents().collect();
    if documents.len() > 1 {
        return Err("the file holds several YAML documents; group_vars files hold one".to_owned());
    }
    let mapping = documents.first().and_then(|d| d.as_mapping());
    let Some(mapping) = mapping else {
        if no_values {
            // A file of comments only: append the keys as new lines.
            let eol = if before.contains("\r\n") {
                "\r\n"
            } else {
                "\n"
            };
            let mut out = before.to_owned();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            for (key, target) in keys {
                let value = match target {
                    Target::Str(s) => (*s).to_owned(),
                    Target::Bool(b) => b.to_string(),
                };
                out.push_str(&format!("{key}: {value}{eol}"));
            }
            return Ok(out);
        }
        return Err("the file's top level is not a mapping".to_owned());
    };
    if mapping.is_flow_style() {
        return Err(
            "the file's top level is a flow mapping ({ … }); group_vars are edited line by line"
                .to_owned(),
        );
    }
    for (key, target) in keys {
        match target {
            Target::Str(s) => {
                let style = match mapping.get(*key) {
                    Some(YamlNode::Scalar(scalar)) => {
                        let raw = scalar.value();
                        if raw.starts_with('"') {
                            ScalarStyle::DoubleQuoted
                        } else if raw.starts_with('\'') {
                            ScalarStyle::SingleQuoted
                        } else {
                            ScalarStyle::Plain
                        }
                    }
                    _ => ScalarStyle::Plain,
                };
                mapping.set(*key, ScalarValue::with_style(*s, style));
            }
            Target::Bool(b) => mapping.set(*key, *b),
        }
    }
    Ok(file.to_string())
}

/// The safety net: the edited text parses, holds the same values except the intended keys, and
/// differs from the original only on the intended keys' lines.
fn verify(
    path: &Path,
    before: &str,
    after: &str,
    original: &serde_json::Map<String, Value>,
    keys: &[(&str, Target)],
) -> Result<(), Error> {
    let not_lossless = |detail: String| Error::EditNotLossless {
        path: path.to_owned(),
        detail,
    };
    let edited = parse_vars(path, after)
        .map_err(|e| not_lossless(format!("the edited file does not parse: {e}")))?;
    for (key, target) in keys {
        match edited.get(*key) {
            Some(v) if *v == target.value() => {}
            other => {
                return Err(not_lossless(format!(
                    "{key} reads back as {} instead of {}",
                    other.map_or("nothing".to_owned(), Value::to_string),
                    target.value()
                )));
            }
        }
    }
    let is_changed = |k: &str| keys.iter().any(|(c, _)| *c == k);
    for (k, v) in original {
        if !is_changed(k) && edited.get(k) != Some(v) {
            return Err(not_lossless(format!(
                "{k} would change too (anchors or aliases shared with an edited key?)"
            )));
        }
    }
    for k in edited.keys() {
        if !is_changed(k) && !original.contains_key(k) {
            return Err(not_lossless(format!("{k} would be added")));
        }
    }
    // Lines are compared with their endings, so a `\r\n` that became `\n` is a change too.
    let (old_owned, new_owned) = (lines_with_endings(before), lines_with_endings(after));
    let old_lines: Vec<&str> = old_owned.iter().map(String::as_str).collect();
    let new_lines: Vec<&str> = new_owned.iter().map(String::as_str).collect();
    let allowed_old = editable_lines(&old_lines, keys);
    let diff = similar::TextDiff::configure().diff_slices(&old_lines, &new_lines);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Equal => {}
            similar::ChangeTag::Delete => {
                let index = change.old_index().unwrap_or(usize::MAX);
                if !allowed_old.contains(&index) {
                    return Err(not_lossless(format!(
                        "line {} would change: {:?}",
                        index + 1,
                        change.value()
                    )));
                }
            }
            similar::ChangeTag::Insert => {
                let line = change.value();
                if !top_level_key(line).is_some_and(is_changed) {
                    return Err(not_lossless(format!(
                        "a line would be added that is not an intended key: {line:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Old line indexes an edit may replace: a changed key's line and its indented value lines.
fn editable_lines(lines: &[&str], keys: &[(&str, Target)]) -> Vec<usize> {
    let mut allowed = Vec::new();
    let mut inside = false;
    for (i, line) in lines.iter().enumerate() {
        if let Some(k) = top_level_key(line) {
            inside = keys.iter().any(|(c, _)| *c == k);
        } else if !line.starts_with([' ', '\t', '-']) || line.trim().is_empty() {
            inside = false;
        }
        if inside {
            allowed.push(i);
        }
    }
    allowed
}
