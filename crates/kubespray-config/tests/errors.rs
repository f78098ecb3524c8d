//! Bad inventories end with a clear error naming the file, the key and the fix, and nothing is
//! written (every file's bytes are compared before and after).

mod common;

use kubespray_config::{Era, Error, HandoverOptions, Inventory};

const INI: &str = "[kube_control_plane]\ncp1 ansible_host=10.0.0.1\n[kube_node]\nw1\n[etcd:children]\nkube_control_plane\n";

/// Load, resolve and compute the hand-over edits; return the first error.
fn run(dir: &std::path::Path) -> Result<(), Error> {
    let inventory = Inventory::load(dir)?;
    inventory.variables(Era::Template)?;
    inventory.handover_edits(&HandoverOptions {
        kube_proxy_remove: true,
    })?;
    Ok(())
}

/// (name, files, words the message must hold)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);

#[test]
fn bad_inventories_fail_clearly_and_write_nothing() {
    let cases: Vec<Case> = vec![
        (
            "broken YAML",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_debug: false\ncilium_tunnel_mode: [vxlan\n",
                ),
            ],
            &["k8s-net-cilium.yml:", "broken YAML", "fix:"],
        ),
        (
            "vars file that is a list",
            vec![
                ("inventory.ini", INI),
                ("group_vars/all/all.yml", "- a\n- b\n"),
            ],
            &["all.yml", "mapping of variables", "fix:"],
        ),
        (
            "unknown child group",
            vec![
                (
                    "inventory.ini",
                    "[kube_node]\nw1\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n",
                ),
                ("group_vars/all/all.yml", "a: 1\n"),
            ],
            &[
                "inventory.ini:4",
                "kube_control_plane",
                "not defined",
                "fix:",
            ],
        ),
        (
            "missing group_vars",
            vec![("inventory.ini", INI)],
            &["missing group_vars", "fix:"],
        ),
        (
            "no inventory file",
            vec![("group_vars/all/all.yml", "a: 1\n")],
            &["no inventory file", "fix:"],
        ),
        (
            "boolean that is not one",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_enable_hubble: \"maybe\"\n",
                ),
            ],
            &[
                "k8s-net-cilium.yml",
                "cilium_enable_hubble",
                "expected a boolean",
                "\"maybe\"",
                "fix:",
            ],
        ),
        (
            "tunnel mode that is a number",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_tunnel_mode: 5\n",
                ),
            ],
            &[
                "k8s-net-cilium.yml",
                "cilium_tunnel_mode",
                "one of vxlan, geneve, disabled",
                "found 5",
                "fix:",
            ],
        ),
        (
            "cluster id out of range",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_cluster_id: 300\n",
                ),
            ],
            &["cilium_cluster_id", "from 0 to 255"],
        ),
        (
            "cilium_version written as a number",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_version: 1.17\n",
                ),
            ],
            &["cilium_version", "expected a string", "fix:"],
        ),
        (
            "wrong type reached through a reference",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_enable_hubble_ui: '{{ my_list }}'\nmy_list: [1]\n",
                ),
            ],
            &[
                "k8s-net-cilium.yml",
                "cilium_enable_hubble_ui",
                "expected a boolean",
            ],
        ),
        (
            "Jinja filter",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_enable_ipv6: \"{{ enable_dual_stack_networks | bool }}\"\n",
                ),
            ],
            &[
                "k8s-net-cilium.yml",
                "cilium_enable_ipv6",
                "cannot evaluate",
                "enable_dual_stack_networks | bool",
                "fix:",
            ],
        ),
        (
            "Jinja block in a referenced variable",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_cluster_name: '{{ name }}'\nname: '{% if a %}x{% endif %}'\n",
                ),
            ],
            &["k8s-net-cilium.yml", "key 'name'", "cannot evaluate"],
        ),
        (
            "undefined reference",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_cluster_name: '{{ nowhere }}'\n",
                ),
            ],
            &[
                "k8s-net-cilium.yml",
                "cilium_cluster_name",
                "undefined variable 'nowhere'",
                "fix:",
            ],
        ),
        (
            "reference cycle",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_cluster_name: '{{ a }}'\na: '{{ b }}'\nb: '{{ a }}'\n",
                ),
            ],
            &["k8s-net-cilium.yml", "cycle", "a -> b -> a"],
        ),
        (
            "hand-over key set as host variable",
            vec![
                (
                    "inventory.ini",
                    "[kube_control_plane]\ncp1 kube_owner=kube\n",
                ),
                (
                    "group_vars/k8s_cluster/k8s-cluster.yml",
                    "kube_network_plugin: cilium\n",
                ),
            ],
            &["inventory.ini", "kube_owner", "host variable", "fix:"],
        ),
        (
            "hand-over key in a deeper group's group_vars",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-cluster.yml",
                    "kube_network_plugin: cilium\n",
                ),
                ("group_vars/kube_node.yml", "kube_owner: kube\n"),
            ],
            &["kube_node.yml", "kube_owner", "group 'kube_node'", "fix:"],
        ),
        (
            "nowhere to add a key",
            vec![
                ("inventory.ini", INI),
                ("group_vars/all/all.yml", "kube_network_plugin: cilium\n"),
            ],
            &["k8s-cluster.yml", "kube_owner", "does not exist", "fix:"],
        ),
        (
            "not a Cilium inventory",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-cluster.yml",
                    "kube_network_plugin: calico\n",
                ),
            ],
            &[
                "k8s-cluster.yml",
                "kube_network_plugin",
                "\"calico\"",
                "does not install Cilium",
                "fix:",
            ],
        ),
        (
            "network plugin set nowhere",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-cluster.yml",
                    "kube_owner: kube\n",
                ),
            ],
            &["group_vars", "kube_network_plugin", "set nowhere", "fix:"],
        ),
        (
            "anchor shared with an edited key",
            vec![
                ("inventory.ini", INI),
                (
                    "group_vars/k8s_cluster/k8s-cluster.yml",
                    "kube_owner: &owner kube\nkube_network_plugin: cilium\netcd_owner: *owner\n",
                ),
            ],
            &[
                "k8s-cluster.yml",
                "etcd_owner would change",
                "nothing was written",
            ],
        ),
    ];
    for (name, files, words) in cases {
        let dir = common::inventory(&files);
        let before = common::snapshot(dir.path());
        let err = run(dir.path()).expect_err(name);
        let msg = err.to_string();
        eprintln!("{name}: {msg}");
        for w in words {
            assert!(msg.contains(w), "{name}: {w:?} not in: {msg}");
        }
        assert_eq!(
            common::snapshot(dir.path()),
            before,
            "{name}: a file changed"
        );
    }
}

#[test]
fn broken_yaml_reports_line_and_column() {
    let dir = common::inventory(&[
        ("inventory.ini", INI),
        ("group_vars/all/all.yml", "a: 1\nb: [1\n"),
    ]);
    match Inventory::load(dir.path()) {
        Err(Error::Yaml {
            path, line, column, ..
        }) => {
            assert!(path.ends_with("group_vars/all/all.yml"));
            assert!(line >= 2 && column > 0, "{line}:{column}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn write_refuses_a_file_changed_since_it_was_read() {
    let dir = common::inventory(&[
        ("inventory.ini", INI),
        (
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "kube_network_plugin: cilium\n",
        ),
    ]);
    let edits = Inventory::load(dir.path())
        .expect("load")
        .handover_edits(&HandoverOptions::default())
        .expect("edits");
    let path = dir.path().join("group_vars/k8s_cluster/k8s-cluster.yml");
    std::fs::write(&path, "kube_network_plugin: calico\n").expect("write");
    let err = edits[0].write().expect_err("changed on disk");
    assert!(matches!(err, Error::ChangedOnDisk { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "kube_network_plugin: calico\n"
    );
}
