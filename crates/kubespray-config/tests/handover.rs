//! The hand-over edit on hand-written group_vars: quoting, comments, odd layouts, which file wins.

mod common;

use kubespray_config::{HandoverOptions, Inventory, Target, edit_vars_text};
use std::path::Path;

const INI: &str = "[kube_control_plane]\ncp1\n[kube_node]\nw1\n";

fn edit(text: &str, keys: &[(&str, Target)]) -> String {
    edit_vars_text(Path::new("k8s-cluster.yml"), text, keys).unwrap_or_else(|e| panic!("{e}"))
}

const CNI: (&str, Target) = ("kube_network_plugin", Target::Str("cni"));
const ROOT: (&str, Target) = ("kube_owner", Target::Str("root"));
const NO_PROXY: (&str, Target) = ("kube_proxy_remove", Target::Bool(true));

#[test]
fn edits_keep_every_other_byte() {
    // (input, expected output) for the keys CNI, ROOT, NO_PROXY
    let cases: &[(&str, &str)] = &[
        (
            "---\n# network\nkube_network_plugin: cilium    # switched in 2024\nkube_owner: \"kube\"\nother: 'x'\n",
            "---\n# network\nkube_network_plugin: cni    # switched in 2024\nkube_owner: \"root\"\nother: 'x'\nkube_proxy_remove: true\n",
        ),
        (
            "kube_network_plugin: 'cilium'\nkube_owner: kube\nkube_proxy_remove: false\n# trailing comment\n",
            "kube_network_plugin: 'cni'\nkube_owner: root\nkube_proxy_remove: true\n# trailing comment\n",
        ),
        // no final newline
        (
            "kube_owner: kube\nkube_network_plugin: cilium",
            "kube_owner: root\nkube_network_plugin: cni\nkube_proxy_remove: true",
        ),
        // Windows line endings stay, also on the added line
        (
            "kube_owner: kube\r\nkube_network_plugin: cilium\r\n",
            "kube_owner: root\r\nkube_network_plugin: cni\r\nkube_proxy_remove: true\r\n",
        ),
        // a block value replaced in a CRLF file, and a last line without a line break
        (
            "kube_network_plugin:\r\n  - a\r\n  - b\r\n# ",
            "kube_network_plugin: cni\r\n# \r\nkube_owner: root\r\nkube_proxy_remove: true",
        ),
        // a nested key of the same name and a commented one stay alone
        (
            "x:\n  kube_owner: kube\n# kube_owner: kube\nkube_owner: kube\nkube_network_plugin: cilium\nkube_proxy_remove: \"false\"\n",
            "x:\n  kube_owner: kube\n# kube_owner: kube\nkube_owner: root\nkube_network_plugin: cni\nkube_proxy_remove: true\n",
        ),
    ];
    for (input, want) in cases {
        let got = edit(input, &[CNI, ROOT, NO_PROXY]);
        assert_eq!(&got, want, "input:\n{input}");
    }
}

#[test]
fn a_comment_only_file_gets_the_keys_appended() {
    assert_eq!(
        edit("# nothing here yet\n", &[ROOT]),
        "# nothing here yet\nkube_owner: root\n"
    );
    assert_eq!(edit("---", &[NO_PROXY]), "---\nkube_proxy_remove: true\n");
}

#[test]
fn unsupported_layouts_are_refused_not_mangled() {
    for text in ["{kube_owner: kube}\n", "kube_owner: kube\n---\nb: 1\n"] {
        let err = edit_vars_text(Path::new("f.yml"), text, &[ROOT]).expect_err(text);
        assert!(err.to_string().contains("f.yml"), "{err}");
    }
}

#[test]
fn the_file_ansible_takes_the_value_from_is_edited() {
    let dir = common::inventory(&[
        ("inventory.ini", INI),
        (
            "group_vars/all/all.yml",
            "kube_owner: kube\nkube_network_plugin: calico\n",
        ),
        (
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "kube_network_plugin: cilium\n",
        ),
        (
            "group_vars/k8s_cluster/k8s-net-cilium.yml",
            "kube_network_plugin: cilium\n",
        ),
    ]);
    let inv = Inventory::load(dir.path()).expect("load");
    let edits = inv
        .handover_edits(&HandoverOptions {
            kube_proxy_remove: true,
        })
        .expect("edits");
    let summary: Vec<(String, Vec<String>)> = edits
        .iter()
        .map(|e| {
            (
                e.path
                    .strip_prefix(dir.path())
                    .expect("inside")
                    .display()
                    .to_string(),
                e.changed_keys.clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            // the later file of the child group wins for kube_network_plugin
            (
                "group_vars/k8s_cluster/k8s-net-cilium.yml".to_owned(),
                vec!["kube_network_plugin".to_owned()]
            ),
            // kube_owner is only set in all: edited there
            (
                "group_vars/all/all.yml".to_owned(),
                vec!["kube_owner".to_owned()]
            ),
            // kube_proxy_remove is set nowhere: added where Kubespray keeps network settings
            (
                "group_vars/k8s_cluster/k8s-cluster.yml".to_owned(),
                vec!["kube_proxy_remove".to_owned()]
            ),
        ]
    );
}

#[test]
fn a_key_only_in_the_inventory_file_is_overridden_from_group_vars() {
    let ini = format!(
        "{INI}[k8s_cluster:children]\nkube_control_plane\nkube_node\n[k8s_cluster:vars]\nkube_network_plugin=cilium\n"
    );
    let dir = common::inventory(&[
        ("inventory.ini", &ini),
        (
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "kube_owner: root\n",
        ),
    ]);
    let inv = Inventory::load(dir.path()).expect("load");
    let edits = inv
        .handover_edits(&HandoverOptions::default())
        .expect("edits");
    assert_eq!(edits.len(), 1);
    assert_eq!(
        edits[0].after,
        "kube_owner: root\nkube_network_plugin: cni\n"
    );
    edits[0].write().expect("write");
    let vars = Inventory::load(dir.path())
        .expect("reload")
        .variables(kubespray_config::Era::CiliumCli)
        .expect("vars");
    assert_eq!(
        vars.value("kube_network_plugin"),
        Some(&serde_json::json!("cni"))
    );
}

#[test]
fn written_files_keep_their_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::inventory(&[
        ("inventory.ini", INI),
        (
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "kube_network_plugin: cilium\n",
        ),
    ]);
    let path = dir.path().join("group_vars/k8s_cluster/k8s-cluster.yml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let edits = Inventory::load(dir.path())
        .expect("load")
        .handover_edits(&HandoverOptions::default())
        .expect("edits");
    edits[0].write().expect("write");
    assert_eq!(
        std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "kube_network_plugin: cni\nkube_owner: root\n"
    );
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("ls")
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary file left behind");
}

/// A shared `group_vars` linked into several inventories (a symlinked file or directory that
/// leads out of the inventory) is refused, naming the link, the shared file and the fix, and
/// nothing is written: the edit would hand the other clusters over too.
#[test]
fn a_vars_file_shared_through_a_symlink_is_refused_and_left_alone() {
    use std::os::unix::fs::symlink;
    let shared = tempfile::tempdir().expect("shared");
    let shared_file = shared.path().join("k8s-cluster.yml");
    std::fs::write(&shared_file, "kube_network_plugin: cilium\n").expect("shared file");
    // A linked file, and a linked directory.
    for link_dir in [false, true] {
        let dir = common::inventory(&[("inventory.ini", INI), ("group_vars/all/all.yml", "")]);
        let group_dir = dir.path().join("group_vars/k8s_cluster");
        if link_dir {
            symlink(shared.path(), &group_dir).expect("link dir");
        } else {
            std::fs::create_dir_all(&group_dir).expect("dir");
            symlink(&shared_file, group_dir.join("k8s-cluster.yml")).expect("link file");
        }
        let err = Inventory::load(dir.path())
            .expect("load")
            .handover_edits(&HandoverOptions::default())
            .expect_err("a shared file is not edited");
        let text = err.to_string();
        let real = std::fs::canonicalize(&shared_file).expect("real path");
        assert!(
            text.contains("group_vars/k8s_cluster/k8s-cluster.yml")
                && text.contains(&real.display().to_string())
                && text.contains("other inventories may share it")
                && text.contains("replace the link with a copy"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(&shared_file).expect("read"),
            "kube_network_plugin: cilium\n"
        );
    }
}

/// A symlink that stays inside the inventory (a legacy group name linked to the new one) is
/// edited at the file it leads to, and stays a link.
#[test]
fn a_symlink_inside_the_inventory_is_edited_through_and_stays_a_link() {
    use std::os::unix::fs::symlink;
    let dir = common::inventory(&[
        ("inventory.ini", INI),
        ("shared/k8s-cluster.yml", "kube_network_plugin: cilium\n"),
    ]);
    let group_dir = dir.path().join("group_vars/k8s_cluster");
    std::fs::create_dir_all(&group_dir).expect("dir");
    let link = group_dir.join("k8s-cluster.yml");
    symlink("../../shared/k8s-cluster.yml", &link).expect("link");
    let edits = Inventory::load(dir.path())
        .expect("load")
        .handover_edits(&HandoverOptions::default())
        .expect("edits");
    assert_eq!(edits.len(), 1);
    let real = std::fs::canonicalize(dir.path().join("shared/k8s-cluster.yml")).expect("real");
    assert_eq!(edits[0].path, link);
    assert_eq!(edits[0].target, real);
    edits[0].write().expect("write");
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&real).expect("read"),
        "kube_network_plugin: cni\nkube_owner: root\n"
    );
}
