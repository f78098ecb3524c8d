//! The inventory as a whole: inventory file(s), hosts, groups and vars files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;
use crate::hosts::{self, Group, HostList, InventoryVar};
use crate::vars::{self, Scope, VarsFile};

/// The inventory file names Kubespray documents, in the order they are looked for.
pub const INVENTORY_FILE_NAMES: [&str; 3] = ["inventory.ini", "hosts.yaml", "hosts.yml"];

/// Kubespray's group renames (v2.16): the old name still works through `group_by` in its playbooks.
const LEGACY_GROUPS: [(&str, &str); 4] = [
    ("kube_control_plane", "kube-master"),
    ("kube_node", "kube-node"),
    ("k8s_cluster", "k8s-cluster"),
    ("calico_rr", "calico-rr"),
];

/// A Kubespray inventory: where it is, its hosts and groups, and its vars files.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The inventory directory (the one that holds `group_vars/`).
    pub dir: PathBuf,
    /// The inventory file(s) read (`inventory.ini`, `hosts.yaml`, …).
    pub inventory_files: Vec<PathBuf>,
    /// The hosts, in the order they first appear.
    pub hosts: Vec<Host>,
    /// The groups as written, by name (always holds `all` and `ungrouped`).
    pub groups: BTreeMap<String, Group>,
    /// Every `group_vars/` and `host_vars/` file, in Ansible's load order per group or host.
    pub vars_files: Vec<VarsFile>,
    /// Things Ansible would warn about and skip.
    pub warnings: Vec<String>,
}

/// One host of the inventory with the connection variables the tool needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// The inventory host name (`inventory_hostname`).
    pub name: String,
    /// `ansible_host`: the address SSH connects to.
    pub ansible_host: Option<String>,
    /// `ansible_user`: the SSH user.
    pub ansible_user: Option<String>,
    /// `ansible_port`: the SSH port.
    pub ansible_port: Option<u16>,
    /// `ip`: the address Kubernetes services bind to.
    pub ip: Option<String>,
    /// `access_ip`: the address other hosts use to reach this one.
    pub access_ip: Option<String>,
    /// Every group the host is in, directly or through `children`, sorted (without `all`).
    pub groups: Vec<String>,
    /// All host variables written in the inventory file.
    pub vars: BTreeMap<String, InventoryVar>,
}

impl Host {
    /// The address to connect to: `ansible_host`, else the inventory name (as Ansible does).
    pub fn connect_address(&self) -> &str {
        self.ansible_host.as_deref().unwrap_or(&self.name)
    }

    /// The address other nodes reach this host on: `access_ip`, `ip`, then the connect address.
    pub fn access_address(&self) -> &str {
        self.access_ip
            .as_deref()
            .or(self.ip.as_deref())
            .unwrap_or_else(|| self.connect_address())
    }

    /// Whether the host is in `group` (legacy Kubespray group names count, e.g. `kube-master`).
    pub fn in_group(&self, group: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g == group || legacy_name(group) == Some(g.as_str()))
    }
}

fn legacy_name(group: &str) -> Option<&'static str> {
    LEGACY_GROUPS
        .iter()
        .find(|(new, _)| *new == group)
        .map(|(_, old)| *old)
}

impl Inventory {
    /// Read an inventory from its directory, or from the inventory file itself.
    ///
    /// A directory is searched for `inventory.ini`, `hosts.yaml` and `hosts.yml`; every one
    /// present is read (as `ansible -i DIR` would). `group_vars/` next to the inventory file must
    /// exist; `host_vars/` is read when present.
    pub fn load(path: impl AsRef<Path>) -> Result<Inventory, Error> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, "read", e))?;
        let (dir, files) = if meta.is_dir() {
            let files: Vec<PathBuf> = INVENTORY_FILE_NAMES
                .iter()
                .map(|n| path.join(n))
                .filter(|p| p.is_file())
                .collect();
            (path.to_owned(), files)
        } else {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            (dir, vec![path.to_owned()])
        };
        if files.is_empty() {
            return Err(Error::NoInventoryFile {
                path: path.to_owned(),
            });
        }
        let mut list = HostList::default();
        for file in &files {
            let text = crate::files::read_capped(file, crate::files::MAX_INVENTORY_FILE_BYTES)
                .map_err(|e| Error::io(file, "read", e))?;
            let parsed = if is_yaml_name(file) {
                hosts::parse_yaml(file, &text)?
            } else {
                hosts::parse_ini(file, &text)?
            };
            list.merge(parsed);
            if list.hosts.len() > hosts::MAX_HOSTS {
                return Err(Error::Shape {
                    path: file.clone(),
                    what: format!(
                        "the inventory files list more than {} hosts together",
                        hosts::MAX_HOSTS
                    ),
                    fix: "point --inventory at the inventory of one cluster".to_owned(),
                });
            }
        }
        let group_vars = dir.join("group_vars");
        if !group_vars.is_dir() {
            return Err(Error::MissingGroupVars { dir });
        }
        let mut vars_files = vars::load_vars_dir(&group_vars, false)?;
        let host_vars = dir.join("host_vars");
        if host_vars.is_dir() {
            vars_files.extend(vars::load_vars_dir(&host_vars, true)?);
        }
        let hosts = list
            .hosts
            .iter()
            .map(|entry| build_host(entry, &list.groups))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Inventory {
            dir,
            inventory_files: files,
            hosts,
            groups: list.groups,
            vars_files,
            warnings: list.warnings,
        })
    }

    /// The hosts of a group, through its children. `k8s_cluster` is Kubespray's union of
    /// `kube_control_plane`, `kube_node` and `calico_rr` when the inventory does not declare it.
    pub fn group_hosts(&self, group: &str) -> Vec<&Host> {
        let declared = self.groups.contains_key(group)
            || legacy_name(group).is_some_and(|g| self.groups.contains_key(g));
        if group == "k8s_cluster" && !declared {
            return self
                .hosts
                .iter()
                .filter(|h| {
                    h.in_group("kube_control_plane")
                        || h.in_group("kube_node")
                        || h.in_group("calico_rr")
                })
                .collect();
        }
        if group == "all" {
            return self.hosts.iter().collect();
        }
        self.hosts.iter().filter(|h| h.in_group(group)).collect()
    }

    /// The `group_vars` files of one group, in load order (later wins).
    pub fn group_vars_files(&self, group: &str) -> impl Iterator<Item = &VarsFile> {
        let group = group.to_owned();
        self.vars_files
            .iter()
            .filter(move |f| f.scope == Scope::Group(group.clone()))
    }

    /// A path relative to the inventory directory when it is inside it, for short messages.
    pub fn display_path<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.dir).unwrap_or(path)
    }
}

fn is_yaml_name(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn build_host(entry: &hosts::HostEntry, groups: &BTreeMap<String, Group>) -> Result<Host, Error> {
    let text = |key: &str| -> Result<Option<String>, Error> {
        match entry.vars.get(key) {
            None => Ok(None),
            Some(v) => match &v.value {
                Value::String(s) => Ok(Some(s.clone())),
                Value::Number(n) => Ok(Some(n.to_string())),
                other => Err(Error::WrongType {
                    path: v.file.clone(),
                    key: format!("{key} (host {})", entry.name),
                    expected: "a string".to_owned(),
                    found: other.to_string(),
                    fix: format!("write {key}=<address or name> on the host line"),
                }),
            },
        }
    };
    let ansible_port = match entry.vars.get("ansible_port") {
        None => None,
        Some(v) => {
            let port = match &v.value {
                Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Value::String(s) => s.trim().parse::<u16>().ok(),
                _ => None,
            };
            Some(port.ok_or_else(|| Error::WrongType {
                path: v.file.clone(),
                key: format!("ansible_port (host {})", entry.name),
                expected: "a TCP port number (1-65535)".to_owned(),
                found: v.value.to_string(),
                fix: "write ansible_port=22 (a number)".to_owned(),
            })?)
        }
    };
    let mut all_groups: Vec<String> = Vec::new();
    for g in &entry.groups {
        collect_ancestors(g, groups, &mut all_groups);
    }
    all_groups.retain(|g| g != "all");
    all_groups.sort();
    all_groups.dedup();
    Ok(Host {
        name: entry.name.clone(),
        ansible_host: text("ansible_host")?,
        ansible_user: text("ansible_user")?,
        ansible_port,
        ip: text("ip")?,
        access_ip: text("access_ip")?,
        groups: all_groups,
        vars: entry.vars.clone(),
    })
}

/// `group` and every group that lists it (directly or further up) as a child.
fn collect_ancestors(group: &str, groups: &BTreeMap<String, Group>, out: &mut Vec<String>) {
    if out.iter().any(|g| g == group) {
        return; // also stops cycles
    }
    out.push(group.to_owned());
    for parent in groups
        .values()
        .filter(|p| p.children.iter().any(|c| c == group))
    {
        collect_ancestors(&parent.name, groups, out);
    }
}
