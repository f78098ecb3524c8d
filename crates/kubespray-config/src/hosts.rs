//! Reading Ansible inventory files (`inventory.ini`, `hosts.yaml`) into hosts and groups.
//!
//! Our own small parsers, because general INI crates mangle Ansible host lines (`[etcd:children]`,
//! `node1 ansible_host=1.2.3.4  # ip=…`). The INI rules follow Ansible's `ini` inventory plugin:
//! host lines are split like a shell does (quotes, `#` comments), `key=value` values are read as
//! Python literals where they look like one (`22` is a number, `True` a boolean), `[g:vars]` lines
//! are `key=value` with the value taken verbatim, and a `[g:children]` entry must name a group
//! defined somewhere in the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;

/// The most hosts an inventory may hold: twice the 5,000 nodes Kubernetes supports. Host
/// ranges are checked against it before they are expanded.
pub(crate) const MAX_HOSTS: usize = 10_000;

/// One variable assignment read from an inventory file, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryVar {
    /// The value (INI values are read like Ansible reads them: numbers, booleans, strings).
    pub value: Value,
    /// The inventory file.
    pub file: PathBuf,
    /// 1-based line, when known (INI files).
    pub line: Option<usize>,
}

/// A group as written in the inventory file(s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// The group name.
    pub name: String,
    /// Hosts listed directly under the group.
    pub hosts: Vec<String>,
    /// Child groups listed directly under the group.
    pub children: Vec<String>,
    /// Group variables written in the inventory file (`[g:vars]`, `vars:`).
    pub vars: BTreeMap<String, InventoryVar>,
}

/// A host as written in the inventory file(s), before groups are expanded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostEntry {
    /// The inventory host name.
    pub name: String,
    /// Host variables written on the host line or under the host.
    pub vars: BTreeMap<String, InventoryVar>,
    /// Groups that list this host directly.
    pub groups: Vec<String>,
}

/// What one or more inventory files declare: hosts and groups, in the order first seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostList {
    /// The hosts.
    pub hosts: Vec<HostEntry>,
    /// The groups, by name (always holds `all` and `ungrouped`).
    pub groups: BTreeMap<String, Group>,
    /// Things Ansible would warn about and skip.
    pub warnings: Vec<String>,
}

impl HostList {
    fn new() -> Self {
        let mut list = Self::default();
        list.group("all");
        list.group("ungrouped");
        list
    }

    fn group(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_owned()).or_insert_with(|| Group {
            name: name.to_owned(),
            ..Group::default()
        })
    }

    fn add_host(&mut self, group: &str, name: &str, vars: BTreeMap<String, InventoryVar>) {
        let g = self.group(group);
        if !g.hosts.iter().any(|h| h == name) {
            g.hosts.push(name.to_owned());
        }
        let host = match self.hosts.iter_mut().position(|h| h.name == name) {
            Some(i) => &mut self.hosts[i],
            None => {
                self.hosts.push(HostEntry {
                    name: name.to_owned(),
                    ..HostEntry::default()
                });
                let last = self.hosts.len() - 1;
                &mut self.hosts[last]
            }
        };
        if !host.groups.iter().any(|g| g == group) {
            host.groups.push(group.to_owned());
        }
        // Ansible merges the variables of repeated host lines; the later line wins.
        host.vars.extend(vars);
    }

    fn add_child(&mut self, parent: &str, child: &str) {
        self.group(child);
        let g = self.group(parent);
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_owned());
        }
    }

    /// Merge another file's hosts and groups into this list (later files win on variables).
    pub(crate) fn merge(&mut self, other: HostList) {
        for (name, group) in other.groups {
            let mine = self.group(&name);
            for h in group.hosts {
                if !mine.hosts.contains(&h) {
                    mine.hosts.push(h);
                }
            }
            for c in group.children {
                if !mine.children.contains(&c) {
                    mine.children.push(c);
                }
            }
            mine.vars.extend(group.vars);
        }
        for host in other.hosts {
            match self.hosts.iter_mut().find(|h| h.name == host.name) {
                Some(mine) => {
                    for g in host.groups {
                        if !mine.groups.contains(&g) {
                            mine.groups.push(g);
                        }
                    }
                    mine.vars.extend(host.vars);
                }
                None => self.hosts.push(host),
            }
        }
        self.warnings.extend(other.warnings);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Section {
    Hosts,
    Children,
    Vars,
}

/// Parse an Ansible INI inventory. `path` is only used in messages and origins.
pub fn parse_ini(path: &Path, text: &str) -> Result<HostList, Error> {
    let mut list = HostList::new();
    let mut current = ("ungrouped".to_owned(), Section::Hosts);
    // Groups written as a section header; children must name one of these.
    let mut declared: Vec<String> = vec!["all".into(), "ungrouped".into()];
    let mut pending_children: Vec<(String, String, usize)> = Vec::new();
    let mut pending_vars: Vec<(String, usize)> = Vec::new();
    let ini_err = |line: usize, message: String, fix: &str| Error::Ini {
        path: path.to_owned(),
        line,
        message,
        fix: fix.to_owned(),
    };

    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let (name, section) = parse_section_header(line).ok_or_else(|| {
                ini_err(
                    line_no,
                    format!("cannot read section header {line:?}"),
                    "write it as [group], [group:children] or [group:vars]",
                )
            })?;
            match section {
                Section::Vars => pending_vars.push((name.clone(), line_no)),
                Section::Hosts | Section::Children => {
                    list.group(&name);
                    if !declared.contains(&name) {
                        declared.push(name.clone());
                    }
                }
            }
            current = (name, section);
            continue;
        }
        match current.1 {
            Section::Hosts => {
                let tokens = split_host_line(line).ok_or_else(|| {
                    ini_err(
                        line_no,
                        format!("unbalanced quotes in host line {line:?}"),
                        "close the quote",
                    )
                })?;
                let Some((pattern, assignments)) = tokens.split_first() else {
                    continue; // only a comment
                };
                let (pattern, port) = split_port(pattern);
                let names = expand_host_pattern(pattern)
                    .map_err(|m| ini_err(line_no, m, "write ranges as name[01:10] or name[a:f]"))?;
                let mut vars = BTreeMap::new();
                if let Some(port) = port {
                    vars.insert(
                        "ansible_port".to_owned(),
                        InventoryVar {
                            value: Value::from(port),
                            file: path.to_owned(),
                            line: Some(line_no),
                        },
                    );
                }
                for token in assignments {
                    let Some((k, v)) = token.split_once('=') else {
                        return Err(ini_err(
                            line_no,
                            format!("expected key=value after host '{pattern}', found {token:?}"),
                            "write host variables as key=value, or start a comment with #",
                        ));
                    };
                    if k.is_empty() {
                        return Err(ini_err(
                            line_no,
                            format!("empty variable name in {token:?}"),
                            "write key=value",
                        ));
                    }
                    vars.insert(
                        k.to_owned(),
                        InventoryVar {
                            value: parse_ini_value(v),
                            file: path.to_owned(),
                            line: Some(line_no),
                        },
                    );
                }
                for name in names {
                    list.add_host(&current.0, &name, vars.clone());
                }
                if list.hosts.len() > MAX_HOSTS {
                    return Err(ini_err(
                        line_no,
                        format!("the inventory lists more than {MAX_HOSTS} hosts"),
                        "point --inventory at the inventory of one cluster",
                    ));
                }
            }
            Section::Children => {
                let child = line.split('#').next().unwrap_or_default().trim();
                if child.is_empty()
                    || child.contains(char::is_whitespace)
                    || child.contains(['[', ']', ':'])
                {
                    return Err(ini_err(
                        line_no,
                        format!(
                            "expected one group name in [{}:children], found {line:?}",
                            current.0
                        ),
                        "write one child group name per line",
                    ));
                }
                pending_children.push((current.0.clone(), child.to_owned(), line_no));
            }
            Section::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(ini_err(
                        line_no,
                        format!("expected key=value in [{}:vars], found {line:?}", current.0),
                        "write group variables as key=value",
                    ));
                };
                let key = k.trim();
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(ini_err(
                        line_no,
                        format!("bad variable name {key:?}"),
                        "write key=value",
                    ));
                }
                let value = parse_ini_value(unquote(v.trim()));
                list.group(&current.0).vars.insert(
                    key.to_owned(),
                    InventoryVar {
                        value,
                        file: path.to_owned(),
                        line: Some(line_no),
                    },
                );
            }
        }
    }

    // Like Ansible: a child group or a [g:vars] section must refer to a group defined somewhere.
    for (parent, child, line) in pending_children {
        if !declared.contains(&child) {
            return Err(Error::UnknownChildGroup {
                path: path.to_owned(),
                line,
                parent,
                child,
            });
        }
        list.add_child(&parent, &child);
    }
    for (group, line) in pending_vars {
        if !declared.contains(&group) {
            return Err(ini_err(
                line,
                format!("section [{group}:vars] is for group '{group}', which is not defined"),
                "add a [group] section for it or correct the name",
            ));
        }
    }
    // Groups without a parent hang under `all`.
    let child_names: Vec<String> = list
        .groups
        .values()
        .flat_map(|g| g.children.clone())
        .collect();
    let roots: Vec<String> = list
        .groups
        .keys()
        .filter(|n| n.as_str() != "all" && !child_names.contains(n))
        .cloned()
        .collect();
    for root in roots {
        list.add_child("all", &root);
    }
    Ok(list)
}

fn parse_section_header(line: &str) -> Option<(String, Section)> {
    let close = line.find(']')?;
    let rest = line[close + 1..].trim();
    if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
        return None;
    }
    let inner = &line[1..close];
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, k),
        None => (inner, "hosts"),
    };
    if name.is_empty() || name.contains(char::is_whitespace) || name.contains('[') {
        return None;
    }
    let section = match kind {
        "hosts" => Section::Hosts,
        "children" => Section::Children,
        "vars" => Section::Vars,
        _ => return None,
    };
    Some((name.to_owned(), section))
}

fn split_host_line(line: &str) -> Option<Vec<String>> {
    shlex::split(line)
}

/// `host:2222` → (`host`, 2222). Only a single `:` followed by digits counts, so IPv6 stays whole.
fn split_port(pattern: &str) -> (&str, Option<u16>) {
    if pattern.matches(':').count() == 1
        && !pattern.contains('[')
        && let Some((host, port)) = pattern.split_once(':')
        && !host.is_empty()
        && let Ok(port) = port.parse::<u16>()
    {
        return (host, Some(port));
    }
    (pattern, None)
}

/// Unquote a `[g:vars]` value written as `'x'` or `"x"`.
fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Read an INI value the way Ansible's `literal_eval` fallback does, for the scalar cases.
fn parse_ini_value(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if v.contains(['.', 'e', 'E'])
        && !v.contains(char::is_alphabetic)
        && let Ok(f) = v.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    match v {
        "True" => Value::Bool(true),
        "False" => Value::Bool(false),
        "None" => Value::Null,
        _ => Value::String(v.to_owned()),
    }
}

/// Expand Ansible host ranges: `node[1:3]`, `node[01:10:2]`, `[a:c]-x`.
pub(crate) fn expand_host_pattern(pattern: &str) -> Result<Vec<String>, String> {
    expand_part(pattern, pattern)
}

/// Expands `pattern`, a tail of `whole` (which messages name).
fn expand_part(pattern: &str, whole: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        if pattern.contains(']') {
            return Err(format!("unbalanced ']' in host name '{pattern}'"));
        }
        return Ok(vec![pattern.to_owned()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|c| c + open)
        .ok_or_else(|| format!("unclosed '[' in host name '{pattern}'"))?;
    let (head, range, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = range.split(':').collect();
    let bad = || format!("cannot read host range '[{range}]' in '{pattern}'");
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad());
    }
    let step: usize = match parts.get(2) {
        Some(s) => s.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?,
        None => 1,
    };
    let (start, end) = (parts[0], parts[1]);
    // Ranges multiply (`n[0:99999][0:99999]` is ten billion names): count before expanding.
    let tails = expand_part(tail, whole)?;
    let too_many = |count: u64| {
        format!(
            "host pattern '{whole}' expands to {count} hosts or more, more than the {MAX_HOSTS} an inventory may hold"
        )
    };
    let mut items = Vec::new();
    if let (Ok(a), Ok(b)) = (start.parse::<u64>(), end.parse::<u64>()) {
        if a > b {
            return Err(bad());
        }
        let count = ((b - a) / step as u64 + 1).saturating_mul(tails.len() as u64);
        if count > MAX_HOSTS as u64 {
            return Err(too_many(count));
        }
        let width = if start.starts_with('0') && start.len() > 1 {
            start.len()
        } else {
            0
        };
        for n in (a..=b).step_by(step) {
            items.push(format!("{n:0width$}"));
        }
    } else {
        let (mut a, mut b) = (start.chars(), end.chars());
        match (a.next(), a.next(), b.next(), b.next()) {
            (Some(x), None, Some(y), None)
                if x.is_ascii_alphabetic() && y.is_ascii_alphabetic() && x <= y =>
            {
                for c in (x..=y).step_by(step) {
                    items.push(c.to_string());
                }
            }
            _ => return Err(bad()),
        }
    }
    let count = (items.len() as u64).saturating_mul(tails.len() as u64);
    if count > MAX_HOSTS as u64 {
        return Err(too_many(count));
    }
    let mut out = Vec::new();
    for tail_name in tails {
        for item in &items {
            out.push(format!("{head}{item}{tail_name}"));
        }
    }
    Ok(out)
}

/// Parse an Ansible YAML inventory (`hosts.yaml` as Kubespray's inventory builder wrote it).
pub fn parse_yaml(path: &Path, text: &str) -> Result<HostList, Error> {
    let doc: Value = serde_saphyr::from_str_with_options(text, crate::vars::yaml_options())
        .map_err(|e| Error::yaml(path, &e))?;
    let mut list = HostList::new();
    let top = match doc {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(Error::Shape {
                path: path.to_owned(),
                what: format!(
                    "the inventory must be a mapping of groups, found {}",
                    kind_name(&other)
                ),
                fix: "start the file with 'all:' and put hosts under 'all: hosts:'".to_owned(),
            });
        }
    };
    for (name, data) in &top {
        yaml_group(path, &mut list, name, data, 0)?;
        if name != "all" {
            list.add_child("all", name);
        }
    }
    Ok(list)
}

fn yaml_group(
    path: &Path,
    list: &mut HostList,
    name: &str,
    data: &Value,
    depth: usize,
) -> Result<(), Error> {
    list.group(name);
    if depth > 64 {
        return Err(Error::Shape {
            path: path.to_owned(),
            what: format!("groups nest deeper than 64 levels at '{name}'"),
            fix: "flatten the group tree".to_owned(),
        });
    }
    let map = match data {
        Value::Null => return Ok(()),
        Value::Object(map) => map,
        other => {
            return Err(Error::Shape {
                path: path.to_owned(),
                what: format!(
                    "group '{name}' must be a mapping (hosts/children/vars), found {}",
                    kind_name(other)
                ),
                fix: format!("write '{name}:' followed by 'hosts:', 'children:' or 'vars:'"),
            });
        }
    };
    for (key, value) in map {
        match key.as_str() {
            "hosts" => {
                let hosts = match value {
                    Value::Null => continue,
                    Value::Object(h) => h,
                    other => {
                        return Err(Error::Shape {
                            path: path.to_owned(),
                            what: format!("'{name}.hosts' must be a mapping of host names, found {}", kind_name(other)),
                            fix: "write each host as 'name:' (optionally with its variables) under 'hosts:'".to_owned(),
                        });
                    }
                };
                for (pattern, host_vars) in hosts {
                    let (pattern, port) = split_port(pattern);
                    let names = expand_host_pattern(pattern).map_err(|m| Error::Shape {
                        path: path.to_owned(),
                        what: m,
                        fix: "write ranges as name[01:10] or name[a:f]".to_owned(),
                    })?;
                    let mut vars = yaml_vars(path, &format!("{name}.hosts.{pattern}"), host_vars)?;
                    if let Some(port) = port {
                        vars.insert(
                            "ansible_port".to_owned(),
                            InventoryVar {
                                value: Value::from(port),
                                file: path.to_owned(),
                                line: None,
                            },
                        );
                    }
                    for host in names {
                        list.add_host(name, &host, vars.clone());
                    }
                    if list.hosts.len() > MAX_HOSTS {
                        return Err(Error::Shape {
                            path: path.to_owned(),
                            what: format!("the inventory lists more than {MAX_HOSTS} hosts"),
                            fix: "point --inventory at the inventory of one cluster".to_owned(),
                        });
                    }
                }
            }
            "children" => {
                let children = match value {
                    Value::Null => continue,
                    Value::Object(c) => c,
                    other => {
                        return Err(Error::Shape {
                            path: path.to_owned(),
                            what: format!(
                                "'{name}.children' must be a mapping of groups, found {}",
                                kind_name(other)
                            ),
                            fix: "write each child group as 'group:' under 'children:'".to_owned(),
                        });
                    }
                };
                for (child, child_data) in children {
                    yaml_group(path, list, child, child_data, depth + 1)?;
                    list.add_child(name, child);
                }
            }
            "vars" => {
                let vars = yaml_vars(path, &format!("{name}.vars"), value)?;
                list.group(name).vars.extend(vars);
            }
            other => list.warnings.push(format!(
                "{}: group '{name}' has unexpected key '{other}' (Ansible skips it)",
                path.display()
            )),
        }
    }
    Ok(())
}

fn yaml_vars(
    path: &Path,
    at: &str,
    value: &Value,
) -> Result<BTreeMap<String, InventoryVar>, Error> {
    match value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(map) => Ok(map
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    InventoryVar {
                        value: v.clone(),
                        file: path.to_owned(),
                        line: None,
                    },
                )
            })
            .collect()),
        other => Err(Error::Shape {
            path: path.to_owned(),
            what: format!(
                "'{at}' must be a mapping of variables, found {}",
                kind_name(other)
            ),
            fix: "write variables as 'name: value' lines".to_owned(),
        }),
    }
}

/// A short name of a JSON value's kind, for messages.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ranges_expand_like_ansible() {
        let cases: &[(&str, &[&str])] = &[
            ("node1", &["node1"]),
            ("node[1:3]", &["node1", "node2", "node3"]),
            ("node[01:03]", &["node01", "node02", "node03"]),
            ("n[0:4:2].lan", &["n0.lan", "n2.lan", "n4.lan"]),
            ("[a:c]x", &["ax", "bx", "cx"]),
        ];
        for (pattern, want) in cases {
            let got = expand_host_pattern(pattern).expect("expands");
            assert_eq!(got, *want, "{pattern}");
        }
        for bad in ["node[3:1]", "node[1", "node[x]", "node]"] {
            assert!(expand_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_ranges_that_multiply_past_the_limit_are_refused_before_expanding() {
        let err = expand_host_pattern("n[0:99999][0:99999]").expect_err("ten billion hosts");
        assert!(
            err.contains("'n[0:99999][0:99999]'") && err.contains("more than the 10000"),
            "{err}"
        );
        let err = expand_host_pattern("n[0:99][0:99][0:99]").expect_err("a million hosts");
        assert!(err.contains("1000000 hosts"), "{err}");
        assert_eq!(
            expand_host_pattern("n[0:99][0:99]").map(|h| h.len()),
            Ok(10_000)
        );
    }

    #[test]
    fn ini_values_read_like_python_literals() {
        assert_eq!(parse_ini_value("22"), Value::from(22));
        assert_eq!(parse_ini_value("True"), Value::Bool(true));
        assert_eq!(parse_ini_value("1.2.3.4"), Value::from("1.2.3.4"));
        assert_eq!(parse_ini_value("1.5"), Value::from(1.5));
        assert_eq!(parse_ini_value("true"), Value::from("true"));
    }
}
