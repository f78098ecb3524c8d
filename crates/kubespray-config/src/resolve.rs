//! Resolving the effective value of every Cilium-related variable, with where it came from.
//!
//! Precedence implemented (lowest first), as Ansible applies it to a host of `k8s_cluster`:
//! 1. Kubespray's role defaults for the era ([`crate::defaults`]);
//! 2. group variables written in the inventory file: `[all:vars]` / `all: vars:`, then
//!    `k8s_cluster` (also the pre-v2.16 name `k8s-cluster`);
//! 3. `group_vars/all` files, then `group_vars/k8s-cluster`, then `group_vars/k8s_cluster` files
//!    (the child group wins over `all`; within a group, files load in sorted order and a later
//!    file wins).
//!
//! Host variables and other groups (`kube_node`, `etcd`, …) are not part of this group-level view.
//! A value that is exactly `{{ var }}` takes `var`'s value with its type (as Ansible does); a
//! string with `{{ var }}` inside gets the text of it. Host-specific names such as
//! `inventory_hostname` stay in the text (see [`Variable::for_host`]). Anything else in `{{ }}`,
//! and any `{% %}` block, is an error: nothing is guessed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use serde_json::Value;

use crate::defaults::{self, Eval, Kind};
use crate::hosts::kind_name;
use crate::{Era, Error, Inventory, Scope};

/// Where a variable's value came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Written in an inventory file (a `group_vars` file or the inventory file's group vars).
    Inventory {
        /// The file.
        file: PathBuf,
        /// The key in it.
        key: String,
        /// 1-based line, when known.
        line: Option<usize>,
    },
    /// Kubespray's role default for the era.
    RoleDefault {
        /// The era.
        era: Era,
        /// The Kubespray tag the default was checked against.
        kubespray: &'static str,
        /// The defaults file in the Kubespray repository.
        file: &'static str,
    },
    /// A Jinja template whose `{{ var }}` references were resolved.
    Template {
        /// The template as written.
        template: String,
        /// Where the template is written.
        defined: Box<Origin>,
        /// The variables it used, each with its own origin.
        uses: Vec<Variable>,
    },
}

impl Origin {
    /// The file this value was written in (for a template: where the template is).
    pub fn file(&self) -> PathBuf {
        match self {
            Origin::Inventory { file, .. } => file.clone(),
            Origin::RoleDefault { file, .. } => PathBuf::from(file),
            Origin::Template { defined, .. } => defined.file(),
        }
    }

    /// Whether the value (or the template that produced it) was written in the inventory.
    pub fn is_inventory(&self) -> bool {
        match self {
            Origin::Inventory { .. } => true,
            Origin::RoleDefault { .. } => false,
            Origin::Template { defined, .. } => defined.is_inventory(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Inventory {
                file,
                key,
                line: Some(line),
            } => write!(f, "{}:{line} ({key})", file.display()),
            Origin::Inventory {
                file,
                key,
                line: None,
            } => write!(f, "{} ({key})", file.display()),
            Origin::RoleDefault {
                era: _,
                kubespray,
                file,
            } => write!(f, "Kubespray {kubespray} default ({file})"),
            Origin::Template {
                template,
                defined,
                uses,
            } => {
                write!(f, "{template:?} at {defined}")?;
                for u in uses {
                    write!(f, "; {} = {} from {}", u.name, u.value, u.origin)?;
                }
                Ok(())
            }
        }
    }
}

/// A resolved variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    /// The variable name.
    pub name: String,
    /// Its effective value.
    pub value: Value,
    /// Where the value came from.
    pub origin: Origin,
}

impl Variable {
    /// Whether the value still holds a per-host name (`{{ inventory_hostname }}`).
    pub fn is_per_host(&self) -> bool {
        contains_host_name(&self.value)
    }

    /// The value for one host: per-host names replaced by that host's name.
    pub fn for_host(&self, inventory_hostname: &str) -> Value {
        substitute_host(&self.value, inventory_hostname)
    }
}

/// The resolved variables of an inventory for one era.
#[derive(Debug, Clone, PartialEq)]
pub struct Variables {
    era: Era,
    vars: BTreeMap<String, Variable>,
}

impl Variables {
    /// The era whose role defaults were used.
    pub fn era(&self) -> Era {
        self.era
    }

    /// One variable.
    pub fn get(&self, name: &str) -> Option<&Variable> {
        self.vars.get(name)
    }

    /// One variable's value.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.vars.get(name).map(|v| &v.value)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Variable> {
        self.vars.values()
    }

    /// How many variables were resolved.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether nothing was resolved.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}

impl<'a> IntoIterator for &'a Variables {
    type Item = &'a Variable;
    type IntoIter = std::collections::btree_map::Values<'a, String, Variable>;

    fn into_iter(self) -> Self::IntoIter {
        self.vars.values()
    }
}

/// One definition of a variable in the inventory, in precedence order (later wins).
#[derive(Debug, Clone)]
pub(crate) struct Defined {
    pub(crate) name: String,
    pub(crate) value: Value,
    pub(crate) origin: Origin,
    /// Index into `Inventory::vars_files` when written in a group_vars file.
    pub(crate) vars_file: Option<usize>,
}

/// The groups whose variables apply, in precedence order.
const GROUPS: [&str; 3] = ["all", "k8s-cluster", "k8s_cluster"];

impl Inventory {
    /// Every definition of every variable that applies to a `k8s_cluster` host, lowest first.
    pub(crate) fn definitions(&self) -> Vec<Defined> {
        let mut out = Vec::new();
        for group in GROUPS {
            if let Some(g) = self.groups.get(group) {
                for (name, var) in &g.vars {
                    out.push(Defined {
                        name: name.clone(),
                        value: var.value.clone(),
                        origin: Origin::Inventory {
                            file: var.file.clone(),
                            key: name.clone(),
                            line: var.line,
                        },
                        vars_file: None,
                    });
                }
            }
        }
        for group in GROUPS {
            for (index, file) in self.vars_files.iter().enumerate() {
                if file.scope != Scope::Group(group.to_owned()) {
                    continue;
                }
                for (name, value) in &file.values {
                    out.push(Defined {
                        name: name.clone(),
                        value: value.clone(),
                        origin: Origin::Inventory {
                            file: file.path.clone(),
                            key: name.clone(),
                            line: file.line_of(name),
                        },
                        vars_file: Some(index),
                    });
                }
            }
        }
        out
    }

    /// Resolve every `cilium_*` variable and the cluster variables they depend on, with the role
    /// defaults of `era`. Errors name the file and key: a value of the wrong type, a Jinja
    /// expression that is not a plain reference, an undefined reference, a reference cycle.
    pub fn variables(&self, era: Era) -> Result<Variables, Error> {
        let mut defs: HashMap<String, Def> = HashMap::new();
        for d in defaults::role_defaults(era) {
            let origin = Origin::RoleDefault {
                era,
                kubespray: defaults::checked_against(era),
                file: d.file.repo_path(era),
            };
            let value = match d.eval {
                Eval::AsWritten => parse_table_yaml(d.yaml),
                _ => Value::String(d.yaml.to_owned()),
            };
            defs.insert(
                d.name.to_owned(),
                Def {
                    value,
                    origin,
                    eval: d.eval,
                },
            );
        }
        for d in self.definitions() {
            defs.insert(
                d.name,
                Def {
                    value: d.value,
                    origin: d.origin,
                    eval: Eval::AsWritten,
                },
            );
        }
        let mut scope: Vec<String> = defaults::role_defaults(era)
            .iter()
            .map(|d| d.name.to_owned())
            .collect();
        scope.extend(defs.keys().filter(|n| n.starts_with("cilium_")).cloned());
        scope.extend(
            defaults::CLUSTER_VARIABLES
                .iter()
                .filter(|n| defs.contains_key(**n))
                .map(|n| (*n).to_owned()),
        );
        scope.sort();
        scope.dedup();

        let mut resolver = Resolver {
            defs: &defs,
            done: BTreeMap::new(),
            stack: Vec::new(),
        };
        for name in &scope {
            resolver.resolve(name, None)?;
        }
        Ok(Variables {
            era,
            vars: resolver.done,
        })
    }
}

fn parse_table_yaml(yaml: &str) -> Value {
    // The table is ours and checked by tests; an unreadable entry is a bug, kept visible as text.
    serde_saphyr::from_str_with_options(yaml, crate::vars::yaml_options())
        .unwrap_or_else(|_| Value::String(yaml.to_owned()))
}

struct Def {
    value: Value,
    origin: Origin,
    eval: Eval,
}

struct Resolver<'a> {
    defs: &'a HashMap<String, Def>,
    done: BTreeMap<String, Variable>,
    stack: Vec<String>,
}

/// Names that differ per host; left in the text and filled in by [`Variable::for_host`].
const HOST_NAMES: [&str; 2] = ["inventory_hostname", "inventory_hostname_short"];

impl Resolver<'_> {
    fn resolve(
        &mut self,
        name: &str,
        referrer: Option<(&Origin, &str)>,
    ) -> Result<Variable, Error> {
        if let Some(v) = self.done.get(name) {
            return Ok(v.clone());
        }
        let Some(def) = self.defs.get(name) else {
            let (origin, key) = referrer.map_or((None, name), |(o, k)| (Some(o), k));
            return Err(Error::UndefinedVariable {
                path: origin.map(Origin::file).unwrap_or_default(),
                key: key.to_owned(),
                variable: name.to_owned(),
            });
        };
        if let Some(start) = self.stack.iter().position(|n| n == name) {
            let mut chain: Vec<String> = self.stack[start..].to_vec();
            chain.push(name.to_owned());
            return Err(Error::ReferenceCycle {
                path: def.origin.file(),
                key: name.to_owned(),
                chain,
            });
        }
        self.stack.push(name.to_owned());
        let result = self.evaluate(name, def);
        self.stack.pop();
        let var = result?;
        check_kind(&var)?;
        self.done.insert(name.to_owned(), var.clone());
        Ok(var)
    }

    fn evaluate(&mut self, name: &str, def: &Def) -> Result<Variable, Error> {
        match def.eval {
            Eval::AsWritten => {
                let mut uses = Vec::new();
                let value = self.render(&def.value, name, &def.origin, &mut uses)?;
                let origin = if uses.is_empty() && !contains_jinja(&def.value) {
                    def.origin.clone()
                } else {
                    Origin::Template {
                        template: template_text(&def.value),
                        defined: Box::new(def.origin.clone()),
                        uses,
                    }
                };
                Ok(Variable {
                    name: name.to_owned(),
                    value,
                    origin,
                })
            }
            Eval::CiliumVersionAtLeast {
                version,
                then,
                otherwise,
            } => {
                let cilium_version = self.resolve("cilium_version", Some((&def.origin, name)))?;
                let written = match &cilium_version.value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let (Some(have), Some(want)) = (parse_version(&written), parse_version(version))
                else {
                    return Err(Error::CannotEvaluate {
                        path: cilium_version.origin.file(),
                        key: "cilium_version".to_owned(),
                        expression: format!(
                            "{written} (needed by {name}: not a version like v1.15.9)"
                        ),
                    });
                };
                let chosen = if have >= want { then } else { otherwise };
                Ok(Variable {
                    name: name.to_owned(),
                    value: Value::String(chosen.to_owned()),
                    origin: Origin::Template {
                        template: template_text(&def.value),
                        defined: Box::new(def.origin.clone()),
                        uses: vec![cilium_version],
                    },
                })
            }
            Eval::DefaultOr { var, fallback } => {
                let (value, uses) = if self.defs.contains_key(var) {
                    let used = self.resolve(var, Some((&def.origin, name)))?;
                    (used.value.clone(), vec![used])
                } else {
                    (parse_table_yaml(fallback), Vec::new())
                };
                Ok(Variable {
                    name: name.to_owned(),
                    value,
                    origin: Origin::Template {
                        template: template_text(&def.value),
                        defined: Box::new(def.origin.clone()),
                        uses,
                    },
                })
            }
        }
    }

    /// Resolve references in a value, through lists and mappings (Ansible templates them too).
    fn render(
        &mut self,
        value: &Value,
        key: &str,
        origin: &Origin,
        uses: &mut Vec<Variable>,
    ) -> Result<Value, Error> {
        match value {
            Value::String(s) => self.render_string(s, key, origin, uses),
            Value::Array(items) => items
                .iter()
                .map(|v| self.render(v, key, origin, uses))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    out.insert(k.clone(), self.render(v, key, origin, uses)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_string(
        &mut self,
        s: &str,
        key: &str,
        origin: &Origin,
        uses: &mut Vec<Variable>,
    ) -> Result<Value, Error> {
        if !contains_jinja_str(s) {
            return Ok(Value::String(s.to_owned()));
        }
        let cannot = || Error::CannotEvaluate {
            path: origin.file(),
            key: key.to_owned(),
            expression: s.to_owned(),
        };
        let parts = split_template(s).ok_or_else(cannot)?;
        // Exactly one `{{ var }}` and nothing else: the value keeps the referenced type.
        if let [Part::Var(var)] = parts.as_slice() {
            if HOST_NAMES.contains(&var.as_str()) {
                return Ok(Value::String(s.to_owned()));
            }
            let used = self.resolve(var, Some((origin, key)))?;
            let value = used.value.clone();
            push_use(uses, used);
            return Ok(value);
        }
        let mut out = String::new();
        for part in parts {
            match part {
                Part::Text(t) => out.push_str(&t),
                Part::Var(var) if HOST_NAMES.contains(&var.as_str()) => {
                    out.push_str("{{ ");
                    out.push_str(&var);
                    out.push_str(" }}");
                }
                Part::Var(var) => {
                    let used = self.resolve(&var, Some((origin, key)))?;
                    match &used.value {
                        Value::String(t) => out.push_str(t),
                        Value::Number(n) => out.push_str(&n.to_string()),
                        // Python's str() of a boolean, which is what Jinja writes.
                        Value::Bool(true) => out.push_str("True"),
                        Value::Bool(false) => out.push_str("False"),
                        _ => return Err(cannot()),
                    }
                    push_use(uses, used);
                }
            }
        }
        Ok(Value::String(out))
    }
}

fn push_use(uses: &mut Vec<Variable>, used: Variable) {
    if !uses.iter().any(|u| u.name == used.name) {
        uses.push(used);
    }
}

enum Part {
    Text(String),
    Var(String),
}

/// Split `a{{ x }}b` into text and plain variable references; `None` if anything else is in it.
fn split_template(s: &str) -> Option<Vec<Part>> {
    if s.contains("{%") || s.contains("{#") {
        return None;
    }
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let inner = after[..close].trim();
        let inner = inner.strip_prefix('-').unwrap_or(inner).trim();
        let inner = inner.strip_suffix('-').unwrap_or(inner).trim();
        if !is_identifier(inner) {
            return None;
        }
        parts.push(Part::Var(inner.to_owned()));
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        return None;
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Some(parts)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(s, "true" | "false" | "True" | "False" | "none" | "None")
}

fn contains_jinja_str(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn contains_jinja(v: &Value) -> bool {
    match v {
        Value::String(s) => contains_jinja_str(s),
        Value::Array(a) => a.iter().any(contains_jinja),
        Value::Object(m) => m.values().any(contains_jinja),
        _ => false,
    }
}

fn template_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn contains_host_name(v: &Value) -> bool {
    match v {
        Value::String(s) => HOST_NAMES
            .iter()
            .any(|h| s.contains(&format!("{{{{ {h} }}}}"))),
        Value::Array(a) => a.iter().any(contains_host_name),
        Value::Object(m) => m.values().any(contains_host_name),
        _ => false,
    }
}

fn substitute_host(v: &Value, host: &str) -> Value {
    match v {
        Value::String(s) => {
            let short = host.split('.').next().unwrap_or(host);
            Value::String(
                s.replace("{{ inventory_hostname }}", host)
                    .replace("{{ inventory_hostname_short }}", short),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_host(x, host)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute_host(x, host)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `v1.15.9` / `1.17` (for `1.17.0`) as a release; `None` if not a version. A pre-release or
/// build suffix is dropped: Kubespray's `version` test compares the numbers.
pub(crate) fn parse_version(s: &str) -> Option<semver::Version> {
    let s = s.trim();
    let s = s.strip_prefix('v').unwrap_or(s);
    // semver wants all three numbers; Kubespray writes `1.12` too.
    let mut version = semver::Version::parse(s).ok().or_else(|| {
        let (core, suffix) = s.split_at(s.find(['-', '+']).unwrap_or(s.len()));
        (core.matches('.').count() == 1)
            .then(|| semver::Version::parse(&format!("{core}.0{suffix}")).ok())
            .flatten()
    })?;
    version.pre = semver::Prerelease::EMPTY;
    version.build = semver::BuildMetadata::EMPTY;
    Some(version)
}

/// Whether Ansible's `bool` filter reads this string as a boolean.
fn is_bool_word(s: &str) -> bool {
    matches!(
        s.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0" | "y" | "n"
    )
}

fn check_kind(var: &Variable) -> Result<(), Error> {
    let Some(kind) = defaults::expected_kind(&var.name) else {
        return Ok(());
    };
    let v = &var.value;
    let ok = match kind {
        Kind::Bool => match v {
            Value::Bool(_) => true,
            Value::String(s) => is_bool_word(s),
            Value::Number(n) => matches!(n.as_i64(), Some(0 | 1)),
            _ => false,
        },
        Kind::Str => matches!(v, Value::String(_) | Value::Null),
        Kind::OneOf(allowed) => matches!(v, Value::String(s) if allowed.contains(&s.as_str())),
        Kind::Scalar => matches!(v, Value::String(_) | Value::Number(_) | Value::Null),
        Kind::Int { min, max } => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            n.is_some_and(|n| (min..=max).contains(&n))
        }
        Kind::List => matches!(v, Value::Array(_) | Value::Null),
        Kind::Map => matches!(v, Value::Object(_) | Value::Null),
        Kind::ListOrMap => matches!(v, Value::Array(_) | Value::Object(_) | Value::Null),
        Kind::KubeProxyReplacement => match v {
            Value::Bool(_) => true,
            Value::String(s) => {
                matches!(
                    s.to_ascii_lowercase().as_str(),
                    "strict" | "partial" | "disabled" | "probe" | "true" | "false"
                )
            }
            _ => false,
        },
    };
    if ok {
        return Ok(());
    }
    let (expected, fix) = describe(kind, &var.name);
    let found = match v {
        Value::String(s) => format!("{s:?} (a string)"),
        other => format!("{other} ({})", kind_name(other)),
    };
    let path = var.origin.file();
    let mut fix = fix;
    if let Origin::Template { .. } = &var.origin {
        fix = format!("{fix} (the value came from {})", var.origin);
    }
    Err(Error::WrongType {
        path,
        key: var.name.clone(),
        expected,
        found,
        fix,
    })
}

fn describe(kind: Kind, name: &str) -> (String, String) {
    match kind {
        Kind::Bool => (
            "a boolean (true or false)".into(),
            format!("write {name}: true or {name}: false, unquoted"),
        ),
        Kind::Str => (
            "a string".into(),
            format!("quote the value: {name}: \"...\""),
        ),
        Kind::OneOf(allowed) => (
            format!("one of {}", allowed.join(", ")),
            format!(
                "write {name}: {}",
                allowed.first().copied().unwrap_or_default()
            ),
        ),
        Kind::Scalar => (
            "a string or a number".into(),
            format!("write {name}: \"<value>\""),
        ),
        Kind::Int { min, max } => (
            format!("a whole number from {min} to {max}"),
            format!("write {name}: <number>"),
        ),
        Kind::List => (
            "a list".into(),
            format!("write {name}: [] or one '- item' per line"),
        ),
        Kind::Map => (
            "a mapping".into(),
            format!("write {name}: {{}} or 'key: value' lines under it"),
        ),
        Kind::ListOrMap => ("a list or a mapping".into(), format!("write {name}: [] ")),
        Kind::KubeProxyReplacement => (
            "true, false, or one of strict, partial, disabled".into(),
            format!("write {name}: false (or true to replace kube-proxy)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_plain_references_only() {
        let ok = [
            "{{ a }}",
            "x{{b}}y",
            "{{- a -}}/ssl",
            "node-{{ inventory_hostname }}.pem",
        ];
        for s in ok {
            assert!(split_template(s).is_some(), "{s}");
        }
        let bad = [
            "{{ a | bool }}",
            "{% if x %}1{% endif %}",
            "{{ a.b }}",
            "{{ groups['etcd'] }}",
            "{{ a }",
            "x }} y",
            "{{ true }}",
        ];
        for s in bad {
            assert!(split_template(s).is_none(), "{s}");
        }
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(parse_version("v1.15.9") >= parse_version("1.12"));
        assert!(parse_version("1.11.5") < parse_version("1.11.6"));
        assert!(parse_version("v1.9.0") < parse_version("1.12"));
        assert_eq!(parse_version("latest"), None);
        // A pre-release compares as its release, as before semver.
        assert_eq!(parse_version("v1.12.0-rc.1"), parse_version("1.12"));
        // semver refuses what the hand-written parser padded or let through.
        for text in ["1", "1.2.3.4", "1.012.0", "v1.12.0-"] {
            assert_eq!(parse_version(text), None, "{text}");
        }
    }
}
