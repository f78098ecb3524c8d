//! Reading inventory files: hosts, groups, children, vars, and the addresses to connect to.

mod common;

use kubespray_config::{Error, Inventory, parse_ini, parse_yaml};
use serde_json::json;
use std::path::Path;

const INI: &str = r#"# a homelab
[kube_control_plane]
cp1 ansible_host=192.168.1.10 ip=10.0.0.10 access_ip=10.0.0.10 etcd_member_name=etcd1  # the first one
cp[2:3] ansible_host=192.168.1.11 ansible_user=ops

[etcd:children]
kube_control_plane

[kube_node]
worker01.lan:2222 ansible_user='ubuntu admin'
worker[02:03].lan

[calico_rr]

[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr

[k8s_cluster:vars]
kube_network_plugin=cilium
cilium_operator_replicas=1
"#;

#[test]
fn ini_inventory_hosts_groups_and_vars() {
    let dir = common::inventory(&[("inventory.ini", INI), ("group_vars/all/all.yml", "---\n")]);
    let inv = Inventory::load(dir.path()).expect("load");
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cp1",
            "cp2",
            "cp3",
            "worker01.lan",
            "worker02.lan",
            "worker03.lan"
        ]
    );
    let cp1 = &inv.hosts[0];
    assert_eq!(cp1.ansible_host.as_deref(), Some("192.168.1.10"));
    assert_eq!(cp1.ip.as_deref(), Some("10.0.0.10"));
    assert_eq!(cp1.access_ip.as_deref(), Some("10.0.0.10"));
    assert_eq!(cp1.connect_address(), "192.168.1.10");
    assert_eq!(cp1.groups, ["etcd", "k8s_cluster", "kube_control_plane"]);
    assert!(
        !cp1.vars.contains_key("ip=10.0.0.10"),
        "inline comment must not become a variable"
    );
    assert_eq!(inv.hosts[1].ansible_user.as_deref(), Some("ops"));
    let w1 = &inv.hosts[3];
    assert_eq!(w1.ansible_port, Some(2222));
    assert_eq!(w1.ansible_user.as_deref(), Some("ubuntu admin"));
    assert_eq!(w1.connect_address(), "worker01.lan");
    assert_eq!(w1.access_address(), "worker01.lan");
    assert_eq!(inv.group_hosts("etcd").len(), 3);
    assert_eq!(inv.group_hosts("k8s_cluster").len(), 6);
    assert_eq!(
        inv.groups["k8s_cluster"].vars["cilium_operator_replicas"].value,
        json!(1)
    );
    assert_eq!(
        inv.groups["k8s_cluster"].vars["cilium_operator_replicas"].line,
        Some(22)
    );
}

#[test]
fn inventory_file_path_itself_is_accepted() {
    let dir = common::inventory(&[("inventory.ini", INI), ("group_vars/all.yml", "a: 1\n")]);
    let inv = Inventory::load(dir.path().join("inventory.ini")).expect("load");
    assert_eq!(inv.dir, dir.path());
    assert_eq!(inv.hosts.len(), 6);
    assert_eq!(inv.vars_files.len(), 1);
}

const HOSTS_YAML: &str = "all:
  hosts:
    node1: {ansible_host: 10.0.0.1, ip: 10.0.0.1, access_ip: 10.0.0.1}
    node2:
      ansible_host: 10.0.0.2
      ansible_port: 2200
  children:
    kube_control_plane: {hosts: {node1: }}
    kube_node: {hosts: {node1: , node2: }}
    etcd: {hosts: {node1: }}
    k8s_cluster: {children: {kube_control_plane: , kube_node: }}
    calico_rr: {hosts: {}}
";

#[test]
fn yaml_inventory_in_the_inventory_builders_shape() {
    for name in ["hosts.yaml", "hosts.yml"] {
        let dir = common::inventory(&[
            (name, HOSTS_YAML),
            ("group_vars/k8s_cluster/k8s-cluster.yml", "x: 1\n"),
        ]);
        let inv = Inventory::load(dir.path()).expect("load");
        assert_eq!(inv.hosts.len(), 2, "{name}");
        assert_eq!(
            inv.hosts[0].groups,
            ["etcd", "k8s_cluster", "kube_control_plane", "kube_node"]
        );
        assert_eq!(inv.hosts[1].ansible_port, Some(2200));
        assert_eq!(inv.group_hosts("k8s_cluster").len(), 2);
        assert_eq!(
            inv.group_hosts("kube_control_plane")[0].access_address(),
            "10.0.0.1"
        );
    }
}

#[test]
fn k8s_cluster_is_the_union_when_not_declared_and_legacy_names_count() {
    let ini = "[kube-master]\ncp1\n[kube_node]\nw1\n[etcd]\ncp1\n";
    let dir = common::inventory(&[("inventory.ini", ini), ("group_vars/all.yml", "a: 1\n")]);
    let inv = Inventory::load(dir.path()).expect("load");
    let names: Vec<&str> = inv
        .group_hosts("k8s_cluster")
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["cp1", "w1"]);
    assert_eq!(inv.group_hosts("kube_control_plane").len(), 1);
}

#[test]
fn ini_lines_that_ansible_rejects_are_errors_with_line_numbers() {
    let cases: &[(&str, usize, &str)] = &[
        ("[a]\nnode1 ansible_host\n", 2, "expected key=value"),
        ("[a\nnode1\n", 1, "section header"),
        ("[a:weird]\n", 1, "section header"),
        ("[a]\nnode1 ansible_host='x\n", 2, "unbalanced quotes"),
        ("[a:vars]\nx=1\n", 1, "not defined"),
        ("[a]\nn[3:1]\n", 2, "host range"),
    ];
    for (text, line, words) in cases {
        match parse_ini(Path::new("inventory.ini"), text) {
            Err(Error::Ini {
                line: l, message, ..
            }) => {
                assert_eq!(l, *line, "{text:?}");
                assert!(message.contains(words), "{text:?}: {message}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn yaml_inventory_shape_errors_name_the_group() {
    let err = parse_yaml(
        Path::new("hosts.yaml"),
        "all:\n  children:\n    kube_node: [a, b]\n",
    )
    .expect_err("list");
    let msg = err.to_string();
    assert!(
        msg.contains("hosts.yaml") && msg.contains("kube_node"),
        "{msg}"
    );
    let warned = parse_yaml(Path::new("hosts.yaml"), "all:\n  hostz: {}\n").expect("warn only");
    assert_eq!(warned.warnings.len(), 1);
}
