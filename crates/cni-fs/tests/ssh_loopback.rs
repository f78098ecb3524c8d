//! The ssh path against a real `sshd` started on 127.0.0.1 (free port) with a throwaway host key
//! and client key in a temp dir; the client is the system `ssh` with a temp config file (`-F`),
//! so `~/.ssh` is never touched. Needs root and `/usr/sbin/sshd` (package openssh-server).

// Test helpers outside #[test] fns: a failed setup should panic with its cause.
#![allow(clippy::unwrap_used)]

use cni_fs::{Access, Node, TreeState};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod support {
    pub(crate) mod sshd;
}

use support::sshd::Sshd;

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

/// A Kubespray-like tree (uid 1001 standing in for `kube`, group root, 0755) at a path full of
/// shell syntax that would create `marker` if any of it reached a shell unquoted.
fn kube_owned_tree(base: &Path, marker: &Path) -> PathBuf {
    let m = marker.display();
    let root = base.join(format!(
        "x/opt cni/bin 'q\" $(touch {m}) `touch {m}`; touch {m} && touch {m}"
    ));
    std::fs::create_dir_all(&root).unwrap();
    let outside = base.join("outside-file");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::chown(&outside, Some(1001), Some(1001)).unwrap();
    std::fs::write(root.join("cilium-cni"), b"#!/bin/sh\n").unwrap();
    std::fs::write(root.join("odd 'name\"\nwith newline"), b"").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("link-out")).unwrap();
    std::fs::create_dir(root.join("sub dir")).unwrap();
    for p in [
        root.join("cilium-cni"),
        root.join("odd 'name\"\nwith newline"),
        root.join("sub dir"),
        root.clone(),
    ] {
        std::os::unix::fs::chown(&p, Some(1001), Some(0)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::lchown(root.join("link-out"), Some(1001), Some(0)).unwrap();
    root
}

#[test]
fn ssh_check_finds_kube_owned_tree_fix_repairs_it_and_second_fix_changes_nothing() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("INJECTED");
    let root = kube_owned_tree(work.path(), &marker);
    let roots = vec![root.clone(), work.path().join("no such dir")];
    let access = sshd.access(false);
    let node = sshd.node();

    // check: the remote listing parses to exactly what the local inspection sees.
    let report = rt.block_on(access.inspect(&node, &roots)).unwrap();
    let local = rt.block_on(Access::Local.inspect(&node, &roots)).unwrap();
    assert_eq!(report.trees[0], local.trees[0]);
    assert!(report.agent_would_fail());
    assert_eq!(report.trees[0].entries().len(), 5, "{:#?}", report.trees[0]);
    for r in [&report, &local] {
        assert!(
            matches!(r.trees[1].state, TreeState::Missing { .. }),
            "{:?}",
            r.trees[1]
        );
    }
    let table = cni_fs::render_check(std::slice::from_ref(&report));
    assert!(
        table.contains("DENIED") && table.contains("Permission denied"),
        "{table}"
    );

    // fix without --apply changes nothing.
    let before = snapshot(work.path());
    let dry = rt
        .block_on(access.fix(&node, &forced(&roots), false))
        .unwrap();
    assert_eq!(dry.planned.len(), 5, "root, sub dir, two files, the link");
    assert_eq!(snapshot(work.path()), before);

    // fix --apply repairs exactly what it planned.
    let fix = rt
        .block_on(access.fix(&node, &forced(&roots), true))
        .unwrap();
    assert_eq!(fix.changed.as_ref(), Some(&fix.planned));
    assert!(!fix.after.as_ref().unwrap().agent_would_fail());
    let after = snapshot(work.path());
    for (path, (uid, gid, _)) in &after {
        if path.starts_with(&root) {
            assert_eq!((*uid, *gid), (0, 0), "{}", path.display());
        }
    }
    let outside = work.path().join("outside-file");
    assert_eq!(
        after[&outside].0, 1001,
        "the symlink's target outside the tree is untouched"
    );

    // The second fix changes nothing.
    let again = rt
        .block_on(access.fix(&node, &forced(&roots), true))
        .unwrap();
    assert!(again.planned.is_empty());
    assert_eq!(again.changed.as_deref(), Some(&[][..]));

    // No word of the path ever ran as a command.
    assert!(
        !marker.exists(),
        "shell injection created {}",
        marker.display()
    );
    assert!(!Path::new("/root/INJECTED").exists());
}

#[test]
fn become_runs_through_sudo_and_the_ssh_config_alias_is_honoured() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("INJECTED");
    let root = kube_owned_tree(work.path(), &marker);
    // Host, port and user come from the config file, as with an operator's ~/.ssh/config.
    let node = Node {
        name: "alias".into(),
        address: "cni-test-alias".into(),
        user: None,
        port: None,
    };
    let access = sshd.access(true);
    let fix = rt
        .block_on(access.fix(&node, &forced(std::slice::from_ref(&root)), true))
        .unwrap();
    assert_eq!(fix.changed.as_ref().map(Vec::len), Some(5));
    assert!(!marker.exists());
}

#[test]
fn unreachable_node_and_shell_words_in_host_fail_clearly_before_running_anything() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("INJECTED");
    let roots = vec![PathBuf::from("/opt/cni/bin")];
    let access = sshd.access(false);

    let evil = Node {
        address: format!("127.0.0.1;touch {}", marker.display()),
        ..sshd.node()
    };
    let err = rt
        .block_on(access.inspect(&evil, &roots))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ansible_host") && err.contains("fix the inventory"),
        "{err}"
    );
    assert!(!marker.exists());

    // Nothing listens on the port sshd had before: ssh's own failure is named as such.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Node {
        port: Some(closed),
        ..sshd.node()
    };
    let err = rt
        .block_on(access.inspect(&down, &roots))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssh to 127.0.0.1 failed") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn run_returns_stdout_bytes_exactly_and_quotes_every_word() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("INJECTED");
    // A file with every byte value and a name a shell would run.
    let file = work.path().join(format!(
        "data $(touch {m}); touch {m} 'q\"",
        m = marker.display()
    ));
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &content).unwrap();
    let ssh = sshd.ssh(false);
    let out = rt
        .block_on(ssh.run(&sshd.node(), vec!["cat".into(), file.clone().into()]))
        .unwrap();
    assert_eq!(out.status, 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == content, "the bytes came back changed");

    // A failing command is a status, not an error; through sudo with become.
    let out = rt
        .block_on(sshd.ssh(true).run(
            &sshd.node(),
            vec!["cat".into(), work.path().join("missing").into()],
        ))
        .unwrap();
    assert_eq!(out.status, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such file"),
        "{out:?}"
    );
    assert!(
        !marker.exists(),
        "shell injection created {}",
        marker.display()
    );
}

/// A writer that records how large each write was, and fails after `fail_after` bytes.
struct RecordingWriter {
    content: Vec<u8>,
    largest_write: usize,
    fail_after: Option<usize>,
}

impl std::io::Write for RecordingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self
            .fail_after
            .is_some_and(|limit| self.content.len() + buf.len() > limit)
        {
            return Err(std::io::Error::other("disk full (test)"));
        }
        self.largest_write = self.largest_write.max(buf.len());
        self.content.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn run_to_writer_streams_through_a_fixed_buffer_and_stops_when_the_writer_fails() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("INJECTED");
    let file = work.path().join(format!(
        "snapshot $(touch {m}); touch {m} 'q\".db",
        m = marker.display()
    ));
    // Many buffers' worth, not a multiple of the buffer, every byte value.
    let content: Vec<u8> = (0..5 * 1024 * 1024 + 123)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    // The marker's path makes directories of the name.
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &content).unwrap();
    let node = sshd.node();
    let cat = vec!["cat".into(), "--".into(), file.clone().into()];

    let mut out = RecordingWriter {
        content: Vec::new(),
        largest_write: 0,
        fail_after: None,
    };
    let streamed = rt
        .block_on(sshd.ssh(true).run_to_writer(&node, cat.clone(), &mut out))
        .unwrap();
    assert_eq!(
        streamed.status,
        0,
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    assert_eq!(streamed.bytes, content.len() as u64);
    assert!(out.content == content, "the bytes came back changed");
    assert!(
        out.largest_write <= cni_fs::STREAM_BUFFER_BYTES,
        "a write of {} bytes: more than the buffer",
        out.largest_write
    );

    // A writer that fails ends the copy with an error instead of hanging on a full pipe.
    let mut full = RecordingWriter {
        content: Vec::new(),
        largest_write: 0,
        fail_after: Some(100_000),
    };
    let err = rt
        .block_on(sshd.ssh(false).run_to_writer(&node, cat, &mut full))
        .unwrap_err();
    assert!(
        matches!(&err, cni_fs::Error::StreamWrite { source, .. } if source.to_string().contains("disk full")),
        "{err}"
    );
    assert!(full.content.len() <= 100_000);

    // A failing command is a status with its stderr, nothing written.
    let mut empty = RecordingWriter {
        content: Vec::new(),
        largest_write: 0,
        fail_after: None,
    };
    let missing = rt
        .block_on(sshd.ssh(false).run_to_writer(
            &node,
            vec!["cat".into(), work.path().join("missing").into()],
            &mut empty,
        ))
        .unwrap();
    assert_eq!((missing.status, missing.bytes), (1, 0));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("No such file"),
        "{missing:?}"
    );
    assert!(empty.content.is_empty());
    assert!(
        !marker.exists(),
        "shell injection created {}",
        marker.display()
    );
}

#[test]
fn user_ssh_options_cannot_turn_off_host_key_checking() {
    let sshd = Sshd::start();
    let rt = runtime();
    // An operator's `--ssh-option` that would accept any host key with no known_hosts at all.
    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, b"").unwrap();
    let ssh = cni_fs::Ssh {
        options: vec![
            "StrictHostKeyChecking=no".into(),
            format!("UserKnownHostsFile={}", empty.display()),
        ],
        ..sshd.ssh(false)
    };
    let err = rt
        .block_on(ssh.run(&sshd.node(), vec!["true".into()]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Host key verification failed") && err.contains("known_hosts"),
        "{err}"
    );
}

#[test]
fn ssh_fix_leaves_a_hard_linked_file_alone() {
    let sshd = Sshd::start();
    let rt = runtime();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("bin");
    std::fs::create_dir(&root).unwrap();
    let outside = work.path().join("elsewhere");
    std::fs::write(&outside, b"x").unwrap();
    std::os::unix::fs::chown(&outside, Some(1001), Some(1001)).unwrap();
    std::fs::hard_link(&outside, root.join("linked")).unwrap();
    std::os::unix::fs::chown(&root, Some(1001), Some(0)).unwrap();
    let roots = vec![root.clone()];
    let fix = rt
        .block_on(sshd.access(false).fix(&sshd.node(), &forced(&roots), true))
        .unwrap();
    assert_eq!(fix.changed.as_ref(), Some(&fix.planned));
    assert_eq!(
        fix.planned.len(),
        1,
        "only the directory: {:?}",
        fix.planned
    );
    let linked = &fix.before.trees[0].entries()[1];
    assert_eq!((linked.links, linked.hard_linked()), (2, true));
    assert_eq!(
        std::fs::metadata(&outside).unwrap().uid(),
        1001,
        "the file elsewhere changed owner through its hard link"
    );
}
