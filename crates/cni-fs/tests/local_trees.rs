//! Property tests on generated trees in temp dirs (owners, modes, symlinks in and out of the tree,
//! nested directories), through `Access::Local`. Needs root (to chown to other uids).
//!
//! Three oracles: a reference model of the kernel's permission check written from the spec, the
//! kernel itself (`setpriv` runs `touch` as root without CAP_DAC_OVERRIDE), and snapshots of
//! everything outside the tree.

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

use cni_fs::{Access, Kind, Node, NodeReport, TreeState, fixed_attrs};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
enum Link {
    /// A file outside the tree (absolute).
    OutsideFile,
    /// A directory outside the tree (absolute).
    OutsideDir,
    /// `..`: from the root's children this leaves the tree.
    Parent,
    /// Nothing.
    Dangling,
}

#[derive(Debug, Clone)]
enum Spec {
    Dir {
        uid: u32,
        gid: u32,
        mode: u32,
        children: Vec<(String, Spec)>,
    },
    File {
        uid: u32,
        gid: u32,
        mode: u32,
    },
    Symlink {
        uid: u32,
        target: Link,
    },
}

fn owner() -> impl Strategy<Value = (u32, u32)> {
    (
        prop::sample::select(vec![0u32, 1001, 65534]),
        prop::sample::select(vec![0u32, 1001]),
    )
}

/// Names with spaces, quotes, newlines and a leading dash; made unique by an index prefix.
fn name_suffix() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["f", " space", "'q\"", "\nnl", "-dash", "ü"])
}

fn spec() -> impl Strategy<Value = Spec> {
    let file =
        (owner(), 0u32..=0o7777).prop_map(|((uid, gid), mode)| Spec::File { uid, gid, mode });
    let link = (
        prop::sample::select(vec![0u32, 1001]),
        prop_oneof![
            Just(Link::OutsideFile),
            Just(Link::OutsideDir),
            Just(Link::Parent),
            Just(Link::Dangling)
        ],
    )
        .prop_map(|(uid, target)| Spec::Symlink { uid, target });
    let leaf = prop_oneof![file, link];
    let tree = leaf.prop_recursive(3, 24, 4, |inner| {
        (
            owner(),
            0u32..=0o7777,
            prop::collection::vec((name_suffix(), inner), 0..4),
        )
            .prop_map(|((uid, gid), mode, children)| Spec::Dir {
                uid,
                gid,
                mode,
                children: children
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, s))| (format!("{i}{n}"), s))
                    .collect(),
            })
    });
    // The root is always a directory.
    (
        owner(),
        0u32..=0o7777,
        prop::collection::vec((name_suffix(), tree), 0..4),
    )
        .prop_map(|((uid, gid), mode, children)| Spec::Dir {
            uid,
            gid,
            mode,
            children: children
                .into_iter()
                .enumerate()
                .map(|(i, (n, s))| (format!("{i}{n}"), s))
                .collect(),
        })
}

struct World {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
}

fn build(spec: &Spec) -> World {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    // Things a symlink could lead a careless fix to: owned by 1001, setuid, world-writable.
    let outside = base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir(outside.join("dir")).unwrap();
    std::fs::write(outside.join("file"), b"x").unwrap();
    for (p, mode) in [
        (outside.join("file"), 0o4777),
        (outside.join("dir"), 0o777),
        (outside.clone(), 0o777),
    ] {
        std::os::unix::fs::chown(&p, Some(1001), Some(1001)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let root = base.join("opt cni").join("bin 'q\"");
    std::fs::create_dir(base.join("opt cni")).unwrap();
    create(&root, spec, &outside);
    World {
        _tmp: tmp,
        base,
        root,
        outside,
    }
}

fn create(path: &Path, spec: &Spec, outside: &Path) {
    match spec {
        Spec::Dir {
            uid,
            gid,
            mode,
            children,
        } => {
            std::fs::create_dir(path).unwrap();
            for (name, child) in children {
                create(&path.join(name), child, outside);
            }
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        Spec::File { uid, gid, mode } => {
            std::fs::write(path, b"#!/bin/sh\n").unwrap();
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid)).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        Spec::Symlink { uid, target } => {
            let target = match target {
                Link::OutsideFile => outside.join("file"),
                Link::OutsideDir => outside.join("dir"),
                Link::Parent => PathBuf::from(".."),
                Link::Dangling => PathBuf::from("nowhere"),
            };
            std::os::unix::fs::symlink(target, path).unwrap();
            std::os::unix::fs::lchown(path, Some(*uid), Some(0)).unwrap();
        }
    }
}

/// The reference model: the verdict word for every directory, from the spec alone.
fn expected_verdicts(
    path: &Path,
    spec: &Spec,
    reachable: bool,
    out: &mut BTreeMap<PathBuf, &'static str>,
) {
    if let Spec::Dir {
        uid,
        gid,
        mode,
        children,
    } = spec
    {
        let bits = if *uid == 0 {
            (mode >> 6) & 7
        } else if *gid == 0 {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        let word = match (reachable, bits & 0o3 == 0o3) {
            (false, _) => "UNREACHABLE",
            (true, true) => "ok",
            (true, false) => "DENIED",
        };
        out.insert(path.to_path_buf(), word);
        for (name, child) in children {
            expected_verdicts(&path.join(name), child, reachable && bits & 1 == 1, out);
        }
    }
}

/// `(uid, gid, mode)` of every path under `dir` (not following symlinks), and `dir` itself.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.insert(p.clone(), (m.uid(), m.gid(), m.mode() & 0o7777));
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// Asks the kernel: can `touch` running as root without DAC capabilities create a file here?
fn kernel_allows_create(dir: &Path) -> bool {
    let probe = dir.join(".cni-fs-probe");
    let ok = Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--",
            "touch",
        ])
        .arg(&probe)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success();
    if ok {
        std::fs::remove_file(&probe).unwrap();
    }
    ok
}

fn verdicts(report: &NodeReport) -> BTreeMap<PathBuf, &'static str> {
    report.trees[0]
        .entries()
        .iter()
        .filter_map(|e| Some((e.path.clone(), e.verdict.as_ref()?.word())))
        .collect()
}

/// The test trees live in temp dirs, outside the CNI directories: fix them as `--force` would.
fn forced(roots: &[PathBuf]) -> cni_fs::FixPaths {
    cni_fs::FixPaths::new(roots, true).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn verdicts_match_the_model_and_the_kernel_and_fix_is_exact(spec in spec()) {
        let world = build(&spec);
        let rt = runtime();
        let node = Node::named("this-machine");
        let roots = vec![world.root.clone()];

        // Inspection: every directory judged as the model says, and as the kernel does.
        let report = rt.block_on(Access::Local.inspect(&node, &roots)).unwrap();
        let mut expected = BTreeMap::new();
        expected_verdicts(&world.root, &spec, true, &mut expected);
        let found = verdicts(&report);
        prop_assert_eq!(&found, &expected);
        for (dir, word) in &found {
            prop_assert_eq!(kernel_allows_create(dir), *word == "ok", "kernel disagrees on {:?}", dir);
        }
        prop_assert_eq!(report.agent_would_fail(), expected.values().any(|w| *w != "ok"));

        // A dry run plans but changes nothing.
        let outside_before = snapshot(&world.outside);
        let tree_before = snapshot(&world.root);
        let dry = rt.block_on(Access::Local.fix(&node, &forced(&roots), false)).unwrap();
        prop_assert!(dry.changed.is_none());
        prop_assert_eq!(&snapshot(&world.root), &tree_before);

        // The fix changes exactly what it planned, makes every directory pass, and touches
        // nothing outside the tree (links are never followed).
        let base_before = std::fs::symlink_metadata(&world.base).unwrap().mode();
        let fix = rt.block_on(Access::Local.fix(&node, &forced(&roots), true)).unwrap();
        prop_assert_eq!(fix.changed.as_ref().unwrap(), &fix.planned);
        let after = fix.after.as_ref().unwrap();
        prop_assert!(!after.agent_would_fail(), "after fix: {:?}", verdicts(after));
        for dir in verdicts(after).keys() {
            prop_assert!(kernel_allows_create(dir), "kernel still denies {:?}", dir);
        }
        for entry in after.trees[0].entries() {
            prop_assert_eq!((entry.attrs.uid, entry.attrs.gid), (0, 0));
            let before = tree_before[&entry.path];
            let fixed = fixed_attrs(entry.kind, cni_fs::Attrs { uid: before.0, gid: before.1, mode: before.2 });
            prop_assert_eq!(entry.attrs, fixed, "{:?}", entry.path);
            if entry.kind == Kind::Dir {
                prop_assert_eq!(entry.attrs.mode & 0o022, 0);
            }
        }
        prop_assert_eq!(&snapshot(&world.outside), &outside_before);
        prop_assert_eq!(std::fs::symlink_metadata(&world.base).unwrap().mode(), base_before);

        // Idempotent: a second fix plans and changes nothing.
        let again = rt.block_on(Access::Local.fix(&node, &forced(&roots), true)).unwrap();
        prop_assert!(again.planned.is_empty());
        prop_assert_eq!(again.changed.as_deref(), Some(&[][..]));
        let present = matches!(again.before.trees[0].state, TreeState::Present { .. });
        prop_assert!(present);
    }
}

#[test]
fn kubespray_tree_is_denied_with_the_hostbin_error_and_fixed() {
    let spec = Spec::Dir {
        uid: 1001,
        gid: 0,
        mode: 0o755,
        children: vec![(
            "loopback".into(),
            Spec::File {
                uid: 1001,
                gid: 0,
                mode: 0o755,
            },
        )],
    };
    let world = build(&spec);
    let rt = runtime();
    // `--via local` inspects the node it runs on.
    let node = Node::this_machine();
    let roots = vec![world.root.clone(), world.base.join("missing")];
    let reports = vec![rt.block_on(Access::Local.inspect(&node, &roots)).unwrap()];
    let table = cni_fs::render_check(&reports);
    assert!(
        table.contains("DENIED") && table.contains("cilium-mount': Permission denied"),
        "{table}"
    );
    assert!(table.contains("missing"), "{table}");
    let err = rt
        .block_on(cni_fs::ensure_agent_can_write(
            &Access::Local,
            std::slice::from_ref(&node),
            &roots,
        ))
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("  {}: ", node.name))
            && err.to_string().contains("nodes fix --apply"),
        "{err}"
    );

    let fix = rt
        .block_on(Access::Local.fix(&node, &forced(&roots), true))
        .unwrap();
    assert_eq!(
        fix.changed.as_ref().map(Vec::len),
        Some(2),
        "{}",
        cni_fs::render_fix(std::slice::from_ref(&fix))
    );
    assert!(
        rt.block_on(cni_fs::ensure_agent_can_write(
            &Access::Local,
            &[node],
            &roots
        ))
        .is_ok()
    );
}

#[test]
fn a_symlinked_root_is_reported_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::chown(&real, Some(1001), Some(1001)).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let rt = runtime();
    let node = Node::named("n");
    let report = rt
        .block_on(Access::Local.inspect(&node, std::slice::from_ref(&link)))
        .unwrap();
    assert!(matches!(
        report.trees[0].state,
        TreeState::NotADirectory { .. }
    ));
    assert!(report.agent_would_fail());
    let fix = rt
        .block_on(Access::Local.fix(&node, &forced(&[link]), true))
        .unwrap();
    assert_eq!(fix.changed.as_deref(), Some(&[][..]));
    assert_eq!(
        std::fs::metadata(&real).unwrap().uid(),
        1001,
        "the link's target is untouched"
    );
}

#[test]
fn a_hard_linked_file_is_left_alone_and_named_in_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("bin");
    std::fs::create_dir(&root).unwrap();
    // A kube-owned file outside the tree with a second name inside it.
    let outside = tmp.path().join("elsewhere");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::chown(&outside, Some(1001), Some(1001)).unwrap();
    std::fs::hard_link(&outside, root.join("linked")).unwrap();
    std::fs::write(root.join("plain"), b"x").unwrap();
    for p in [&root, &root.join("plain")] {
        std::os::unix::fs::chown(p, Some(1001), Some(0)).unwrap();
    }
    let rt = runtime();
    let node = Node::named("n");
    let roots = vec![root.clone()];
    let report = rt.block_on(Access::Local.inspect(&node, &roots)).unwrap();
    let table = cni_fs::render_check(std::slice::from_ref(&report));
    assert!(
        table.contains("1 hard-linked files not root:root: fix leaves them"),
        "{table}"
    );
    let fix = rt
        .block_on(Access::Local.fix(&node, &forced(&roots), true))
        .unwrap();
    let planned: Vec<&Path> = fix.planned.iter().map(|c| c.path.as_path()).collect();
    assert_eq!(planned, [root.as_path(), &root.join("plain")]);
    assert_eq!(fix.changed.as_ref(), Some(&fix.planned));
    assert_eq!(
        std::fs::metadata(&outside).unwrap().uid(),
        1001,
        "the file elsewhere changed owner through its hard link"
    );
}

#[test]
fn via_local_names_the_nodes_it_did_not_check() {
    let tmp = tempfile::tempdir().unwrap();
    let roots = vec![tmp.path().to_path_buf()];
    let rt = runtime();
    let here = Node::this_machine();
    let nodes = vec![
        Node::named("elsewhere-1"),
        here.clone(),
        Node::named("elsewhere-2"),
    ];
    let reports = rt
        .block_on(cni_fs::check_nodes(&Access::Local, &nodes, &roots))
        .unwrap();
    let outcomes: Vec<(&str, String)> = reports
        .iter()
        .map(|r| (r.node.as_str(), r.outcome()))
        .collect();
    let why = |node: &str| {
        format!(
            "not checked: --via local inspects only the machine it runs on ({}); check {node} \
             with --via ssh or --via pod, or run there",
            here.name
        )
    };
    assert_eq!(
        outcomes,
        [
            (here.name.as_str(), "ok".to_string()),
            ("elsewhere-1", why("elsewhere-1")),
            ("elsewhere-2", why("elsewhere-2")),
        ]
    );
    assert!(reports[1].trees.is_empty());
    let table = cni_fs::render_check(&reports);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("elsewhere-2") && l.contains("NOT CHECKED")),
        "{table}"
    );

    // No node named like this machine: it is inspected under its own name, every node listed
    // is not checked.
    let reports = rt
        .block_on(cni_fs::check_nodes(
            &Access::Local,
            &[Node::named("elsewhere-1")],
            &roots,
        ))
        .unwrap();
    let outcomes: Vec<(&str, String)> = reports
        .iter()
        .map(|r| (r.node.as_str(), r.outcome()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (here.name.as_str(), "ok".to_string()),
            ("elsewhere-1", why("elsewhere-1")),
        ]
    );
}
