//! A real `sshd` on 127.0.0.1 (free port) with a throwaway host key and client key in a temp
//! dir, and a client config for the system `ssh` (`-F`), so `~/.ssh` is never touched. Shared by
//! the cni-fs and migration tests (`#[path]`-included). Needs root and `/usr/sbin/sshd`.

// Each including test uses a different part of it; a failed setup panics with its cause.
#![allow(dead_code, clippy::unwrap_used)]

use cni_fs::{Access, Node, Ssh};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd, killed on drop.
pub(crate) struct Sshd {
    child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// Starts sshd and waits until it listens.
    pub(crate) fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install -y openssh-server"
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (key, comment) in [("host_key", "host"), ("client_key", "client")] {
            let ok = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(d.join(key))
                .status()
                .unwrap()
                .success();
            assert!(ok, "ssh-keygen failed");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile none\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_pub}"),
        )
        .unwrap();
        // A client config with an alias, as an operator's ~/.ssh/config would have.
        let client = format!(
            "Host cni-test-alias\n  HostName 127.0.0.1\n  Port {port}\n\
             Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n\
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n",
            key = d.join("client_key").display(),
            kh = d.join("known_hosts").display(),
        );
        std::fs::write(d.join("ssh_config"), client).unwrap();
        std::fs::set_permissions(d.join("ssh_config"), std::fs::Permissions::from_mode(0o600))
            .unwrap();

        let mut child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Ready when sshd says it listens (it logs to stderr with -e).
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains("Server listening on 127.0.0.1") => break,
                Ok(line) => log.push(line),
                Err(_) => panic!("sshd did not start listening within 20 s: {log:?}"),
            }
        }
        Sshd { child, dir, port }
    }

    /// The client: system `ssh` with the test's config file.
    pub(crate) fn ssh(&self, become_root: bool) -> Ssh {
        Ssh {
            config: Some(self.config_file()),
            become_root,
            ..Ssh::default()
        }
    }

    /// The client config file (`ssh -F`).
    pub(crate) fn config_file(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// Node access through [`Sshd::ssh`].
    pub(crate) fn access(&self, become_root: bool) -> Access {
        Access::Ssh(self.ssh(become_root))
    }

    /// A node reaching this sshd as root, with a name full of quotes.
    pub(crate) fn node(&self) -> Node {
        Node {
            name: "node 'one' \"q\"".into(),
            address: "127.0.0.1".into(),
            user: Some("root".into()),
            port: Some(self.port),
        }
    }
}
