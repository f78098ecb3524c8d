//! Hostile or mistaken inventories stop with a clear error naming the file instead of
//! exhausting memory: YAML alias bombs, host ranges that multiply, files larger than any
//! inventory.

use std::fs;
use std::path::Path;

use kubespray_config::{Inventory, parse_vars, parse_yaml};

/// Nine anchored levels of nine aliases each: 9^9 strings once expanded ("billion laughs").
fn alias_bomb(levels: usize, last: Option<usize>) -> String {
    let mut text = format!("a: &a [{}]\n", ["\"lol\""; 9].join(","));
    let names: Vec<char> = ('a'..='z').take(levels).collect();
    for pair in names.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        text.push_str(&format!(
            "{next}: &{next} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
    }
    if let Some(n) = last {
        // One unanchored list of `n` aliases to the largest anchor.
        let largest = names[names.len() - 1];
        text.push_str(&format!(
            "z: [{}]\n",
            vec![format!("*{largest}"); n].join(",")
        ));
    }
    text
}

#[test]
fn a_yaml_alias_bomb_is_refused_as_too_large_naming_the_file() {
    let path = Path::new("group_vars/all/all.yml");
    // Deep (9^9) and wide (9^5 per alias, a thousand aliases): both stop before expanding.
    for bomb in [alias_bomb(9, None), alias_bomb(6, Some(1000))] {
        let err = parse_vars(path, &bomb).expect_err("alias bomb");
        let text = err.to_string();
        assert!(
            text.contains("group_vars/all/all.yml")
                && text.contains("expands to more than an inventory file holds")
                && text.contains("aliases"),
            "{text}"
        );
    }
    let err = parse_yaml(Path::new("hosts.yaml"), &alias_bomb(9, None)).expect_err("alias bomb");
    assert!(err.to_string().contains("hosts.yaml"), "{err}");
    // A few aliases, as people write them, still read.
    let vars = parse_vars(path, "a: &x [1, 2]\nb: *x\n").expect("small aliases");
    assert_eq!(vars["b"], serde_json::json!([1, 2]));
}

fn inventory(ini: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("group_vars/all")).expect("group_vars");
    fs::write(dir.path().join("inventory.ini"), ini).expect("inventory");
    dir
}

#[test]
fn host_ranges_that_multiply_are_refused_with_the_line() {
    let dir = inventory("[kube_node]\nnode[0:99999][0:99999]\n");
    let err = Inventory::load(dir.path()).expect_err("ten billion hosts");
    let text = err.to_string();
    assert!(
        text.contains("inventory.ini:2") && text.contains("more than the 10000"),
        "{text}"
    );
    // Many lines that each stay under the limit add up too.
    let lines: String = (0..3)
        .map(|i| format!("r{i}n[0:99][0:49]\n"))
        .collect::<Vec<_>>()
        .concat();
    let dir = inventory(&format!("[kube_node]\n{lines}"));
    let err = Inventory::load(dir.path()).expect_err("15000 hosts");
    assert!(err.to_string().contains("more than 10000 hosts"), "{err}");
}

#[test]
fn a_file_larger_than_any_inventory_is_not_read() {
    let dir = inventory("[kube_node]\nnode1\n");
    let big = dir.path().join("group_vars/all/big.yml");
    let file = fs::File::create(&big).expect("create");
    // Sparse: the size is what counts, not the bytes on disk.
    file.set_len(kubespray_config::files::MAX_INVENTORY_FILE_BYTES + 1)
        .expect("set_len");
    let err = Inventory::load(dir.path()).expect_err("too large");
    let text = err.to_string();
    assert!(
        text.contains("big.yml") && text.contains("larger than"),
        "{text}"
    );
}
