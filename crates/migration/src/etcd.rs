//! `--etcd-snapshot`: an etcd snapshot in the backup bundle, taken on the first etcd host the way
//! Kubespray's own tooling reaches etcd.
//!
//! Kubespray runs etcd on `groups['etcd'][0]` (the first control-plane host when the group is
//! empty). Where its client certificates are depends on `etcd_deployment_type` (found in
//! Kubespray's role defaults v2.27.1..v2.31.0, `/work/shared/kubespray/defaults`, and its
//! sample inventories, `group_vars/all/etcd.yml`, where it is `host`):
//! - `host` (the default of every release): `etcd_cert_dir` = `/etc/ssl/etcd/ssl`, with
//!   `ca.pem` and the admin pair `admin-<inventory_hostname>.pem` /
//!   `admin-<inventory_hostname>-key.pem` that its `etcdctl.sh` wrapper uses.
//! - `kubeadm` (stacked etcd, a kubeadm static pod): kubeadm writes the etcd certificates to
//!   its `certificatesDir`, which Kubespray sets to `kube_cert_dir` (`/etc/kubernetes/ssl`;
//!   Kubespray links kubeadm's usual `/etc/kubernetes/pki`, its `kube_cert_compat_dir`, to
//!   it). Kubespray's own etcdctl calls in that mode use `<kube_cert_dir>/etcd/ca.crt`,
//!   `server.crt` and `server.key`; kubeadm's client-only `healthcheck-client.crt` /
//!   `healthcheck-client.key` there work as well (pass them with `--etcd-cert`/`--etcd-key`).
//!
//! Certificate files not given in [`EtcdSnapshotOptions`] follow the inventory: with
//! `etcd_deployment_type: kubeadm` resolved from it, Kubespray's kubeadm files above; else the
//! `host` files.
//!
//! The snapshot is saved in a private temporary directory on the node (`mktemp -d`: 0700, a
//! name nobody can guess or plant beforehand) with `env ETCDCTL_API=3 etcdctl ... snapshot
//! save`, hashed there with `sha256sum`, streamed back with `cat` over the same SSH runner
//! straight into the bundle file (hashed as it arrives, one fixed buffer of
//! [`cni_fs::STREAM_BUFFER_BYTES`] in memory whatever the snapshot's size: production snapshots
//! reach gigabytes), checked, and removed from the node with its directory. A run interrupted
//! (Ctrl-C) cannot remove it: the next snapshot first removes every such directory left in
//! `remote_tmp_dir` (a copy of etcd, Secrets included, must not stay on the node). Every remote
//! command is an argument vector quoted by `cni-fs` (the only crate that sends commands to
//! nodes).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use cni_fs::{Node, RemoteOutput, Ssh};
use kubespray_config::{Era, Host, Inventory};
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, BundleError, EtcdSnapshotFile, EtcdSnapshotWriter};

/// Kubespray's `etcd_cert_dir`.
pub const KUBESPRAY_ETCD_CERT_DIR: &str = "/etc/ssl/etcd/ssl";
/// Kubespray's `kube_cert_dir` default, kubeadm's `certificatesDir` there.
pub const KUBESPRAY_KUBE_CERT_DIR: &str = "/etc/kubernetes/ssl";
/// The CA, certificate and key Kubespray's etcdctl calls use with `etcd_deployment_type:
/// kubeadm`, in `<kube_cert_dir>/etcd`.
pub const KUBEADM_ETCD_FILES: [&str; 3] = ["ca.crt", "server.crt", "server.key"];
/// etcd's client port in Kubespray's `etcd_access_addresses`.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// The bbolt magic number at offset 16 of an etcd snapshot (its first meta page).
const BBOLT_MAGIC: u32 = 0xED0C_DAED;
/// The name of the private directory the snapshot is saved in on the node, before `mktemp`'s
/// ten random characters.
pub const REMOTE_TMP_PREFIX: &str = "cilium-migrate-etcd.";
/// The snapshot's name in that directory.
const REMOTE_SNAPSHOT_NAME: &str = "snapshot.db";

/// How to take the snapshot.
#[derive(Debug, Clone)]
pub struct EtcdSnapshotOptions {
    /// How the etcd host is reached (the same runner as the node check).
    pub ssh: Ssh,
    /// The directory holding `ca.pem` and `admin-<host>[-key].pem` on the node (and the
    /// certificate files given by name).
    pub cert_dir: PathBuf,
    /// The etcdctl program on the node (Kubespray installs it in `/usr/local/bin`).
    pub etcdctl: PathBuf,
    /// The endpoint (default: the host's first `etcd_access_addresses` entry).
    pub endpoint: Option<String>,
    /// Where the private temporary directory for the snapshot is made on the node.
    pub remote_tmp_dir: PathBuf,
    /// The CA certificate: a file name in `cert_dir` or an absolute path (default: `ca.pem`,
    /// or Kubespray's kubeadm file when the inventory says `etcd_deployment_type: kubeadm`).
    pub ca_file: Option<PathBuf>,
    /// The client certificate, like `ca_file` (default: `admin-<host>.pem`).
    pub cert_file: Option<PathBuf>,
    /// The client key, like `ca_file` (default: `admin-<host>-key.pem`).
    pub key_file: Option<PathBuf>,
}

impl EtcdSnapshotOptions {
    /// Kubespray's defaults: `/etc/ssl/etcd/ssl`, `etcdctl` from `PATH`, the temp file in `/tmp`.
    pub fn new(ssh: Ssh) -> EtcdSnapshotOptions {
        EtcdSnapshotOptions {
            ssh,
            cert_dir: KUBESPRAY_ETCD_CERT_DIR.into(),
            etcdctl: "etcdctl".into(),
            endpoint: None,
            remote_tmp_dir: "/tmp".into(),
            ca_file: None,
            cert_file: None,
            key_file: None,
        }
    }

    /// The CA, certificate and key files on `host` (absolute, or relative to the working
    /// directory of the SSH session when `cert_dir` is): the given ones, else Kubespray's
    /// `host` names in `cert_dir`.
    pub fn certificate_files(&self, host: &str) -> [PathBuf; 3] {
        let file = |given: &Option<PathBuf>, default: String| {
            // `join` keeps an absolute path as it is.
            self.cert_dir
                .join(given.clone().unwrap_or_else(|| default.into()))
        };
        [
            file(&self.ca_file, "ca.pem".into()),
            file(&self.cert_file, format!("admin-{host}.pem")),
            file(&self.key_file, format!("admin-{host}-key.pem")),
        ]
    }

    /// These options with the certificate files that are not given set by the inventory:
    /// Kubespray's kubeadm files ([`KUBEADM_ETCD_FILES`] in `<kube_cert_dir>/etcd`, or in
    /// `cert_dir` when that is not Kubespray's default) when `etcd_deployment_type` resolves
    /// to `kubeadm` for `host`; else unchanged (Kubespray's `host` names).
    pub fn for_inventory(
        &self,
        inventory: &Inventory,
        host: &str,
    ) -> Result<EtcdSnapshotOptions, EtcdError> {
        let mut options = self.clone();
        if self.ca_file.is_some() && self.cert_file.is_some() && self.key_file.is_some() {
            return Ok(options);
        }
        // Both variables have the same role default in every era: any era resolves them.
        let era = inventory.detect_era().era.unwrap_or(Era::CiliumCli);
        let variables = inventory
            .variables(era)
            .map_err(|source| EtcdError::Variables {
                inventory: inventory.dir.clone(),
                source: Box::new(source),
            })?;
        let text = |name: &str| {
            variables
                .get(name)
                .and_then(|v| v.for_host(host).as_str().map(str::to_owned))
        };
        if text("etcd_deployment_type").as_deref() != Some("kubeadm") {
            return Ok(options);
        }
        let dir = if self.cert_dir == Path::new(KUBESPRAY_ETCD_CERT_DIR) {
            PathBuf::from(text("kube_cert_dir").unwrap_or_else(|| KUBESPRAY_KUBE_CERT_DIR.into()))
                .join("etcd")
        } else {
            self.cert_dir.clone()
        };
        let [ca, cert, key] = KUBEADM_ETCD_FILES.map(|name| Some(dir.join(name)));
        options.ca_file = options.ca_file.or(ca);
        options.cert_file = options.cert_file.or(cert);
        options.key_file = options.key_file.or(key);
        Ok(options)
    }
}

/// The etcd host and how etcdctl reaches etcd from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTarget {
    /// The host as SSH reaches it (its name is the `inventory_hostname`).
    pub node: Node,
    /// The etcd endpoint given to etcdctl.
    pub endpoint: String,
}

/// What can go wrong; each names the host, the step and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The inventory has no host to take the snapshot on.
    #[error(
        "{inventory}: no host in group etcd or kube_control_plane to take the etcd snapshot on; fix the inventory, or drop --etcd-snapshot"
    )]
    NoEtcdHost {
        /// The inventory directory.
        inventory: PathBuf,
    },
    /// The host name cannot be part of a certificate file name.
    #[error(
        "{inventory}: host {host:?} cannot name the etcd certificates admin-<host>.pem (it contains '/' or is empty); rename the host in the inventory"
    )]
    HostName {
        /// The inventory directory.
        inventory: PathBuf,
        /// The host.
        host: String,
    },
    /// The inventory's variables do not resolve (needed for `etcd_deployment_type`).
    #[error(
        "{inventory}: cannot tell where the etcd certificates are (etcd_deployment_type): {source}; fix the inventory, or pass --etcd-ca, --etcd-cert and --etcd-key"
    )]
    Variables {
        /// The inventory directory.
        inventory: PathBuf,
        /// The cause.
        source: Box<kubespray_config::Error>,
    },
    /// SSH itself failed.
    #[error("etcd snapshot on {node}: {source}")]
    Ssh {
        /// The host.
        node: String,
        /// The cause.
        source: Box<cni_fs::Error>,
    },
    /// etcdctl is not installed where it was looked for.
    #[error(
        "etcdctl not found on {node} (looked for {etcdctl:?}): Kubespray installs it in /usr/local/bin; pass --etcdctl PATH"
    )]
    EtcdctlMissing {
        /// The host.
        node: String,
        /// The program looked for.
        etcdctl: PathBuf,
    },
    /// A remote step failed.
    #[error("etcd snapshot on {node}: {step} failed with exit status {status}: {stderr}; {fix}")]
    Step {
        /// The host.
        node: String,
        /// What was run.
        step: &'static str,
        /// Its exit status.
        status: i32,
        /// What it printed on stderr.
        stderr: String,
        /// What to do.
        fix: String,
    },
    /// The snapshot that arrived is not what was saved.
    #[error("etcd snapshot on {node}: {problem}; take the backup again")]
    Damaged {
        /// The host.
        node: String,
        /// What is wrong.
        problem: String,
    },
    /// Writing it into the bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

/// The host to snapshot on: the first of group `etcd`, else the first control-plane host; the
/// endpoint: `endpoint`, else `https://<access_ip|ip>:2379` of that host, else the loopback
/// client URL every Kubespray etcd member listens on.
pub fn target(inventory: &Inventory, endpoint: Option<&str>) -> Result<SnapshotTarget, EtcdError> {
    let first = |group: &str| inventory.group_hosts(group).first().copied();
    let host: &Host = first("etcd")
        .or_else(|| first("kube_control_plane"))
        .ok_or_else(|| EtcdError::NoEtcdHost {
            inventory: inventory.dir.clone(),
        })?;
    if host.name.is_empty() || host.name.contains('/') {
        return Err(EtcdError::HostName {
            inventory: inventory.dir.clone(),
            host: host.name.clone(),
        });
    }
    let endpoint = match endpoint {
        Some(endpoint) => endpoint.to_owned(),
        None => {
            let address = host
                .access_ip
                .as_deref()
                .or(host.ip.as_deref())
                .unwrap_or("127.0.0.1");
            if address.contains(':') {
                format!("https://[{address}]:{ETCD_CLIENT_PORT}")
            } else {
                format!("https://{address}:{ETCD_CLIENT_PORT}")
            }
        }
    };
    Ok(SnapshotTarget {
        node: Node {
            name: host.name.clone(),
            address: host.connect_address().to_owned(),
            user: host.ansible_user.clone(),
            port: host.ansible_port,
        },
        endpoint,
    })
}

/// `env ETCDCTL_API=3 etcdctl --endpoints ... --cacert ... --cert ... --key ... snapshot save
/// <remote_path>` with the certificate files of `options` (default: Kubespray's admin
/// certificates of `target`'s host).
pub fn snapshot_save_argv(
    target: &SnapshotTarget,
    options: &EtcdSnapshotOptions,
    remote_path: &Path,
) -> Vec<OsString> {
    let [ca, cert, key] = options
        .certificate_files(&target.node.name)
        .map(PathBuf::into_os_string);
    let mut argv: Vec<OsString> = vec![
        "env".into(),
        "ETCDCTL_API=3".into(),
        options.etcdctl.clone().into_os_string(),
        "--endpoints".into(),
        target.endpoint.clone().into(),
        "--cacert".into(),
        ca,
        "--cert".into(),
        cert,
        "--key".into(),
        key,
    ];
    argv.extend(["snapshot", "save"].map(OsString::from));
    argv.push(remote_path.as_os_str().to_owned());
    argv
}

/// `remote_tmp_dir` as `find` and `mktemp` must be given it: a relative one as `./dir`, so it
/// can never read as an option.
fn remote_tmp_dir(options: &EtcdSnapshotOptions) -> PathBuf {
    if options.remote_tmp_dir.is_absolute() {
        options.remote_tmp_dir.clone()
    } else {
        Path::new(".").join(&options.remote_tmp_dir)
    }
}

/// `mktemp -d -- <remote_tmp_dir>/cilium-migrate-etcd.XXXXXXXXXX`: the private directory
/// (0700, unpredictable name) the snapshot is saved in.
pub fn mktemp_argv(options: &EtcdSnapshotOptions) -> Vec<OsString> {
    let mut template = remote_tmp_dir(options).into_os_string();
    template.push("/");
    template.push(REMOTE_TMP_PREFIX);
    template.push("XXXXXXXXXX");
    vec!["mktemp".into(), "-d".into(), "--".into(), template]
}

/// Removes the directories [`mktemp_argv`] made that an interrupted run left in
/// `remote_tmp_dir` (directly in it, directories only, symlinks never followed).
pub fn remove_stale_argv(options: &EtcdSnapshotOptions) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec!["find".into(), remote_tmp_dir(options).into_os_string()];
    argv.extend(
        [
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-type",
            "d",
            "-name",
            &format!("{REMOTE_TMP_PREFIX}??????????"),
            "-execdir",
            "rm",
            "-rf",
            "--",
            "{}",
            "+",
        ]
        .map(OsString::from),
    );
    argv
}

/// Takes the snapshot on the inventory's etcd host and streams it into `bundle`
/// (`etcd/snapshot.db`, 0600, its SHA-256 in the manifest). On any error nothing is added to
/// the bundle (a partial file is removed), and the temporary file on the node is removed.
pub async fn snapshot_into(
    bundle: &mut Bundle,
    inventory: &Inventory,
    options: &EtcdSnapshotOptions,
) -> Result<EtcdSnapshotFile, EtcdError> {
    let target = target(inventory, options.endpoint.as_deref())?;
    let options = &options.for_inventory(inventory, &target.node.name)?;
    // Refuse a bundle that already holds a snapshot before anything runs on the node.
    let writer = bundle.etcd_snapshot_writer()?;
    let stale = run(&target, options, remove_stale_argv(options)).await?;
    if stale.status != 0 {
        return Err(step_error(
            &target,
            "removing the temporary snapshots of interrupted runs",
            &stale,
            format!(
                "remove {}/{REMOTE_TMP_PREFIX}* on {} by hand",
                options.remote_tmp_dir.display(),
                target.node.name
            ),
        ));
    }
    let made = run(&target, options, mktemp_argv(options)).await?;
    let mut dir = made.stdout.clone();
    if dir.last() == Some(&b'\n') {
        dir.pop();
    }
    let dir = PathBuf::from(OsString::from_vec(dir));
    if made.status != 0
        || !dir.starts_with(remote_tmp_dir(options))
        || dir == remote_tmp_dir(options)
    {
        return Err(step_error(
            &target,
            "making a private temporary directory (mktemp -d)",
            &made,
            format!(
                "check that {} exists and is writable on {}",
                options.remote_tmp_dir.display(),
                target.node.name
            ),
        ));
    }
    let remote_path = dir.join(REMOTE_SNAPSHOT_NAME);
    let result = fetch_snapshot(&target, options, &remote_path, writer).await;
    // The directory goes with everything in it (etcdctl's `.part` file too), whatever happened.
    let cleanup = run(
        &target,
        options,
        vec![
            "rm".into(),
            "-rf".into(),
            "--".into(),
            dir.clone().into_os_string(),
        ],
    )
    .await;
    let writer = result?;
    let cleanup = cleanup?;
    if cleanup.status != 0 {
        return Err(step_error(
            &target,
            "removing the temporary snapshot",
            &cleanup,
            format!("remove {} on {} by hand", dir.display(), target.node.name),
        ));
    }
    Ok(bundle.finish_etcd_snapshot(writer, &target.node.name, &target.endpoint)?)
}

/// Saves and hashes the snapshot on the node, streams it into `writer`, and checks that it
/// arrived whole; on error `writer` is dropped, which removes the partial file.
async fn fetch_snapshot(
    target: &SnapshotTarget,
    options: &EtcdSnapshotOptions,
    remote_path: &Path,
    mut writer: EtcdSnapshotWriter,
) -> Result<EtcdSnapshotWriter, EtcdError> {
    let node = &target.node.name;
    let save = run(
        target,
        options,
        snapshot_save_argv(target, options, remote_path),
    )
    .await?;
    // `env` exits 127 when it cannot find the program.
    if save.status == 127 {
        return Err(EtcdError::EtcdctlMissing {
            node: node.clone(),
            etcdctl: options.etcdctl.clone(),
        });
    }
    if save.status != 0 {
        let stderr = String::from_utf8_lossy(&save.stderr);
        let fix = if stderr.contains("no such file") || stderr.contains("No such file") {
            let files: Vec<String> = options
                .certificate_files(node)
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            format!(
                "the certificates {} are not on {node}; pass --etcd-cert-dir DIR (Kubespray: {KUBESPRAY_ETCD_CERT_DIR}), or --etcd-ca, --etcd-cert, --etcd-key (kubeadm etcd: {KUBESPRAY_KUBE_CERT_DIR}/etcd/ca.crt, server.crt, server.key)",
                files.join(", ")
            )
        } else if stderr.contains("ermission denied") && !options.ssh.become_root {
            format!(
                "{} is readable by root only; add --become",
                options.cert_dir.display()
            )
        } else if stderr.contains("password is required") {
            "--become needs passwordless sudo for the SSH user".into()
        } else {
            format!(
                "check that etcd answers on {} and that --etcd-cert-dir holds its client certificates",
                target.endpoint
            )
        };
        return Err(step_error(target, "etcdctl snapshot save", &save, fix));
    }
    let sum = run(
        target,
        options,
        vec![
            "sha256sum".into(),
            "--".into(),
            remote_path.as_os_str().to_owned(),
        ],
    )
    .await?;
    if sum.status != 0 {
        return Err(step_error(
            target,
            "sha256sum of the snapshot",
            &sum,
            "the node needs coreutils' sha256sum".into(),
        ));
    }
    let remote_sum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let copy = options
        .ssh
        .run_to_writer(
            &target.node,
            vec![
                "cat".into(),
                "--".into(),
                remote_path.as_os_str().to_owned(),
            ],
            &mut writer,
        )
        .await
        .map_err(|source| match source {
            cni_fs::Error::StreamWrite { source: io, .. } => EtcdError::Bundle(BundleError::Io {
                path: writer.path().to_owned(),
                source: io,
            }),
            source => EtcdError::Ssh {
                node: node.clone(),
                source: Box::new(source),
            },
        })?;
    if copy.status != 0 {
        return Err(step_error(
            target,
            "copying the snapshot back (cat)",
            &RemoteOutput {
                status: copy.status,
                stdout: Vec::new(),
                stderr: copy.stderr,
            },
            format!(
                "check the space and permissions of {}",
                remote_path.display()
            ),
        ));
    }
    check_streamed(node, &writer, &remote_sum)?;
    Ok(writer)
}

/// [`check_snapshot`] of what streamed into `writer` (its first page, size and hash).
pub fn check_streamed(
    node: &str,
    writer: &EtcdSnapshotWriter,
    remote_sha256: &str,
) -> Result<(), EtcdError> {
    check_parts(
        node,
        writer.head(),
        writer.bytes(),
        &writer.sha256(),
        remote_sha256,
    )
}

/// What `etcdctl snapshot status` would catch first: empty, not a bbolt file, or changed on the
/// way (the node's `sha256sum` against ours).
pub fn check_snapshot(node: &str, content: &[u8], remote_sha256: &str) -> Result<(), EtcdError> {
    let local: String = Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    check_parts(node, content, content.len() as u64, &local, remote_sha256)
}

/// The checks of [`check_snapshot`] on the parts a stream keeps: the first bytes (`head`, at
/// least the 20 that hold the magic number), the size and the local SHA-256.
fn check_parts(
    node: &str,
    head: &[u8],
    bytes: u64,
    local_sha256: &str,
    remote_sha256: &str,
) -> Result<(), EtcdError> {
    let damaged = |problem: String| EtcdError::Damaged {
        node: node.to_owned(),
        problem,
    };
    if bytes == 0 {
        return Err(damaged("the snapshot is empty".into()));
    }
    let magic = head
        .get(16..20)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes);
    if magic != Some(BBOLT_MAGIC) {
        return Err(damaged(format!(
            "the snapshot ({bytes} bytes) is not an etcd (bbolt) database"
        )));
    }
    if local_sha256 != remote_sha256 {
        return Err(damaged(format!(
            "SHA-256 {local_sha256} of the copy differs from {remote_sha256:?} on the node"
        )));
    }
    Ok(())
}

async fn run(
    target: &SnapshotTarget,
    options: &EtcdSnapshotOptions,
    argv: Vec<OsString>,
) -> Result<RemoteOutput, EtcdError> {
    options
        .ssh
        .run(&target.node, argv)
        .await
        .map_err(|source| EtcdError::Ssh {
            node: target.node.name.clone(),
            source: Box::new(source),
        })
}

fn step_error(
    target: &SnapshotTarget,
    step: &'static str,
    out: &RemoteOutput,
    fix: String,
) -> EtcdError {
    EtcdError::Step {
        node: target.node.name.clone(),
        step,
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        fix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(hosts_yaml: &str) -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("group_vars")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("hosts.yaml"), hosts_yaml).unwrap_or_else(|e| panic!("{e}"));
        let inventory = Inventory::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        (dir, inventory)
    }

    #[test]
    fn the_target_is_the_first_etcd_host_else_the_first_control_plane() {
        let cases = [
            (
                "all:\n  hosts:\n    cp1: {ansible_host: 10.0.0.1, ip: 10.1.0.1}\n    e1: {ansible_host: 10.0.0.2, ansible_user: ops, ansible_port: 2222, access_ip: 10.2.0.2}\n    e2: {ansible_host: 10.0.0.3}\n  children:\n    kube_control_plane: {hosts: {cp1: }}\n    etcd: {hosts: {e1: , e2: }}\n",
                (
                    "e1",
                    "10.0.0.2",
                    Some("ops"),
                    Some(2222),
                    "https://10.2.0.2:2379",
                ),
            ),
            (
                "all:\n  hosts:\n    cp1: {ansible_host: 10.0.0.1, ip: 10.1.0.1}\n  children:\n    kube_control_plane: {hosts: {cp1: }}\n",
                ("cp1", "10.0.0.1", None, None, "https://10.1.0.1:2379"),
            ),
            (
                "all:\n  hosts:\n    node1: {ansible_host: 'fd00::1'}\n  children:\n    etcd: {hosts: {node1: }}\n",
                ("node1", "fd00::1", None, None, "https://127.0.0.1:2379"),
            ),
            (
                "all:\n  hosts:\n    node1: {ip: 'fd00::2'}\n  children:\n    etcd: {hosts: {node1: }}\n",
                ("node1", "node1", None, None, "https://[fd00::2]:2379"),
            ),
        ];
        for (yaml, (name, address, user, port, endpoint)) in cases {
            let (_dir, inventory) = inventory(yaml);
            let target = target(&inventory, None).unwrap_or_else(|e| panic!("{yaml}: {e}"));
            assert_eq!(target.node.name, name, "{yaml}");
            assert_eq!(target.node.address, address, "{yaml}");
            assert_eq!(target.node.user.as_deref(), user, "{yaml}");
            assert_eq!(target.node.port, port, "{yaml}");
            assert_eq!(target.endpoint, endpoint, "{yaml}");
        }
        let (_dir, inventory) =
            inventory("all:\n  hosts:\n    w1: {}\n  children:\n    kube_node: {hosts: {w1: }}\n");
        let err = target(&inventory, None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("no host in group etcd or kube_control_plane")
                && err.contains("fix the inventory"),
            "{err}"
        );
        let overridden = target(
            &self::inventory("all:\n  children:\n    etcd: {hosts: {n: }}\n").1,
            Some("https://127.0.0.1:32379"),
        )
        .map(|t| t.endpoint)
        .unwrap_or_default();
        assert_eq!(overridden, "https://127.0.0.1:32379");
    }

    #[test]
    fn the_save_command_uses_kubesprays_admin_certificates_of_the_host() {
        let target = SnapshotTarget {
            node: Node::named("node1"),
            endpoint: "https://10.0.0.1:2379".into(),
        };
        let mut options = EtcdSnapshotOptions::new(Ssh::default());
        let argv = |options: &EtcdSnapshotOptions| -> Vec<String> {
            snapshot_save_argv(&target, options, Path::new("/tmp/s.db"))
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            argv(&options).join(" "),
            "env ETCDCTL_API=3 etcdctl --endpoints https://10.0.0.1:2379 \
             --cacert /etc/ssl/etcd/ssl/ca.pem --cert /etc/ssl/etcd/ssl/admin-node1.pem \
             --key /etc/ssl/etcd/ssl/admin-node1-key.pem snapshot save /tmp/s.db"
        );
        options.cert_dir = "/etc/kubernetes/ssl/etcd".into();
        options.etcdctl = "/usr/local/bin/etcdctl".into();
        let text = argv(&options);
        assert_eq!(text[2], "/usr/local/bin/etcdctl");
        assert_eq!(text[6], "/etc/kubernetes/ssl/etcd/ca.pem");
    }

    #[test]
    fn certificate_files_are_names_in_the_cert_dir_or_absolute_paths() {
        let target = SnapshotTarget {
            node: Node::named("node1"),
            endpoint: "https://10.0.0.1:2379".into(),
        };
        let options = EtcdSnapshotOptions {
            ca_file: Some("ca.crt".into()),
            cert_file: Some("/etc/kubernetes/pki/etcd/healthcheck-client.crt".into()),
            ..EtcdSnapshotOptions::new(Ssh::default())
        };
        let text: Vec<String> = snapshot_save_argv(&target, &options, Path::new("/tmp/s.db"))
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            text[5..11],
            [
                "--cacert",
                "/etc/ssl/etcd/ssl/ca.crt",
                "--cert",
                "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                "--key",
                "/etc/ssl/etcd/ssl/admin-node1-key.pem",
            ]
        );
    }

    #[test]
    fn kubeadm_etcd_in_the_inventory_picks_kubesprays_kubeadm_files() {
        let hosts = "all:\n  hosts:\n    node1: {}\n  children:\n    etcd: {hosts: {node1: }}\n";
        let with_vars = |vars: &str| {
            let (dir, inventory) = inventory(hosts);
            let all = dir.path().join("group_vars/all");
            std::fs::create_dir_all(&all).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(all.join("etcd.yml"), vars).unwrap_or_else(|e| panic!("{e}"));
            drop(inventory);
            let inventory = Inventory::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
            (dir, inventory)
        };
        let files = |inventory: &Inventory, options: &EtcdSnapshotOptions| -> Vec<String> {
            options
                .for_inventory(inventory, "node1")
                .unwrap_or_else(|e| panic!("{e}"))
                .certificate_files("node1")
                .iter()
                .map(|f| f.display().to_string())
                .collect()
        };
        let defaults = EtcdSnapshotOptions::new(Ssh::default());
        let cases = [
            (
                "etcd_deployment_type: host\n",
                defaults.clone(),
                [
                    "/etc/ssl/etcd/ssl/ca.pem",
                    "/etc/ssl/etcd/ssl/admin-node1.pem",
                    "/etc/ssl/etcd/ssl/admin-node1-key.pem",
                ],
            ),
            (
                "etcd_deployment_type: kubeadm\n",
                defaults.clone(),
                [
                    "/etc/kubernetes/ssl/etcd/ca.crt",
                    "/etc/kubernetes/ssl/etcd/server.crt",
                    "/etc/kubernetes/ssl/etcd/server.key",
                ],
            ),
            (
                "etcd_deployment_type: kubeadm\nkube_config_dir: /srv/kubernetes\n",
                defaults.clone(),
                [
                    "/srv/kubernetes/ssl/etcd/ca.crt",
                    "/srv/kubernetes/ssl/etcd/server.crt",
                    "/srv/kubernetes/ssl/etcd/server.key",
                ],
            ),
            (
                "etcd_deployment_type: kubeadm\n",
                EtcdSnapshotOptions {
                    cert_dir: "/etc/kubernetes/pki/etcd".into(),
                    cert_file: Some("healthcheck-client.crt".into()),
                    key_file: Some("healthcheck-client.key".into()),
                    ..defaults.clone()
                },
                [
                    "/etc/kubernetes/pki/etcd/ca.crt",
                    "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
                    "/etc/kubernetes/pki/etcd/healthcheck-client.key",
                ],
            ),
        ];
        for (vars, options, want) in cases {
            let (_dir, inventory) = with_vars(vars);
            assert_eq!(files(&inventory, &options), want, "{vars}");
        }
        // Nothing set: Kubespray's default, `host`.
        let (_dir, plain) = inventory(hosts);
        assert_eq!(
            files(&plain, &defaults),
            files(&with_vars("etcd_deployment_type: host\n").1, &defaults)
        );
        // A value Kubespray does not know is an error naming the fix.
        let (_dir, bad) = with_vars("etcd_deployment_type: podman\n");
        let err = defaults
            .for_inventory(&bad, "node1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("etcd_deployment_type") && err.contains("--etcd-ca"),
            "{err}"
        );
    }

    #[test]
    fn the_snapshot_goes_to_a_private_directory_and_stale_ones_are_found_by_name() {
        let text = |argv: Vec<OsString>| -> String {
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut options = EtcdSnapshotOptions::new(Ssh::default());
        assert_eq!(
            text(mktemp_argv(&options)),
            "mktemp -d -- /tmp/cilium-migrate-etcd.XXXXXXXXXX"
        );
        assert_eq!(
            text(remove_stale_argv(&options)),
            "find /tmp -mindepth 1 -maxdepth 1 -type d -name cilium-migrate-etcd.?????????? \
             -execdir rm -rf -- {} +"
        );
        // A relative directory can never read as an option.
        options.remote_tmp_dir = "-tmp".into();
        assert_eq!(
            text(mktemp_argv(&options)),
            "mktemp -d -- ./-tmp/cilium-migrate-etcd.XXXXXXXXXX"
        );
        assert!(text(remove_stale_argv(&options)).starts_with("find ./-tmp -mindepth"));
    }

    #[test]
    fn a_snapshot_must_be_non_empty_bbolt_and_match_the_nodes_hash() {
        let mut db = vec![0u8; 64];
        db[16..20].copy_from_slice(&BBOLT_MAGIC.to_le_bytes());
        let sum: String = Sha256::digest(&db)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(check_snapshot("n", &db, &sum).is_ok());
        let cases: [(&[u8], &str, &str); 3] = [
            (b"", &sum, "empty"),
            (&[0u8; 64], &sum, "not an etcd (bbolt) database"),
            (&db, "00", "differs"),
        ];
        for (content, remote, want) in cases {
            let err = check_snapshot("node1", content, remote)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(want) && err.contains("node1"), "{err}");
        }
    }
}
