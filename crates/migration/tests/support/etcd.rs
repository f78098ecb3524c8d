//! A real single-member etcd from the testbed tools for tests: TLS on free loopback ports,
//! client-certificate authentication, and Kubespray's client files (`ca.pem`,
//! `admin-<host>.pem`, `admin-<host>-key.pem`) in a cert dir laid out like
//! `/etc/ssl/etcd/ssl`. Shared by the migration and end-to-end tests (`#[path]`-included).

// Each including test uses a different part of it; a failed setup panics with its cause.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The inventory host name the admin certificates are made for.
pub(crate) const HOST: &str = "node1";

/// `$CILIUM_MIGRATE_TOOLS`, else the workspace's `target/tools/bin`.
pub(crate) fn tools_dir() -> PathBuf {
    match std::env::var_os("CILIUM_MIGRATE_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // Both including crates (crates/migration, tests) sit at depth one or two.
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("target/tools/bin").is_dir())
            .unwrap_or(Path::new(env!("CARGO_MANIFEST_DIR")))
            .join("target/tools/bin"),
    }
}

/// A testbed tool's absolute path; fails with the fix when it is not built.
pub(crate) fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask testbed build`",
        path.display()
    );
    std::fs::canonicalize(path).unwrap()
}

/// A loopback port nothing listens on.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` with mode 0600.
pub(crate) fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A CA, etcd's serving certificate (in `server/`) and Kubespray's client files in `ssl/`:
/// `ca.pem`, `admin-<host>.pem`, `admin-<host>-key.pem`.
fn certificates(base: &Path) -> (PathBuf, PathBuf) {
    let ssl = base.join("ssl");
    let server = base.join("server");
    std::fs::create_dir_all(&ssl).unwrap();
    std::fs::create_dir_all(&server).unwrap();
    std::fs::set_permissions(&ssl, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "etcd-ca");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    for dir in [&ssl, &server] {
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    }
    let leaf = |names: Vec<String>, cn: &str, usages: Vec<ExtendedKeyUsagePurpose>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (cert, key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        "member-node1",
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    );
    std::fs::write(server.join("member.pem"), cert).unwrap();
    write_private(&server.join("member-key.pem"), &key);
    let (cert, key) = leaf(
        Vec::new(),
        &format!("admin-{HOST}"),
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    );
    std::fs::write(ssl.join(format!("admin-{HOST}.pem")), cert).unwrap();
    write_private(&ssl.join(format!("admin-{HOST}-key.pem")), &key);
    (ssl, server)
}

/// A single-member etcd serving TLS clients with client-certificate authentication.
pub(crate) struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    /// `https://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
    /// The client files, as in `/etc/ssl/etcd/ssl`.
    pub(crate) cert_dir: PathBuf,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    /// Starts etcd and waits until it serves clients.
    pub(crate) fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let (cert_dir, server) = certificates(dir.path());
        let client = free_port();
        let peer = free_port();
        let endpoint = format!("https://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut child = Command::new(tool("etcd"))
            .arg("--name=t")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={endpoint}"))
            .arg(format!("--advertise-client-urls={endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=t={peer_url}"))
            .arg(format!(
                "--cert-file={}",
                server.join("member.pem").display()
            ))
            .arg(format!(
                "--key-file={}",
                server.join("member-key.pem").display()
            ))
            .arg(format!(
                "--trusted-ca-file={}",
                server.join("ca.pem").display()
            ))
            .arg("--client-cert-auth")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
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
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.contains("serving client traffic securely") => break,
                Ok(line) => log.push(line),
                Err(_) => panic!("etcd did not serve clients within 30 s: {log:#?}"),
            }
        }
        // Keep draining its log so that etcd never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Etcd {
            child,
            _dir: dir,
            endpoint,
            cert_dir,
        }
    }

    /// Runs the testbed's etcdctl locally with the admin certificates.
    pub(crate) fn etcdctl(&self, args: &[&str]) -> String {
        let ssl = &self.cert_dir;
        let out = Command::new(tool("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg(format!("--cacert={}", ssl.join("ca.pem").display()))
            .arg(format!(
                "--cert={}",
                ssl.join(format!("admin-{HOST}.pem")).display()
            ))
            .arg(format!(
                "--key={}",
                ssl.join(format!("admin-{HOST}-key.pem")).display()
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A finished bundle with no objects (what `Bundle::create` leaves, minus the cluster): where a
/// test puts the snapshot without a cluster to back up.
pub(crate) fn empty_bundle(dir: &Path) -> migration::bundle::Bundle {
    use migration::bundle::{Bundle, MANIFEST_FILE, Manifest};
    for d in [
        dir.to_path_buf(),
        dir.join("objects"),
        dir.join("inventory"),
    ] {
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let manifest = Manifest {
        format: 1,
        created: 0,
        cluster: migration::identity::ClusterIdentity {
            api_server: "https://127.0.0.1:6443".into(),
            kube_system_uid: "test".into(),
        },
        objects: Vec::new(),
        absent: Vec::new(),
        inventory: Vec::new(),
        etcd_snapshot: None,
        written: Vec::new(),
    };
    write_private(
        &dir.join(MANIFEST_FILE),
        &serde_json::to_string_pretty(&manifest).unwrap(),
    );
    Bundle::open(dir).unwrap()
}
