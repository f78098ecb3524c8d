//! The testbed's certificates and kubeconfig: one CA, the API server's serving certificate for
//! 127.0.0.1, an admin client certificate in `system:masters`, and the service-account signing
//! key. Private keys are written 0600.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::error::{IoContext, Result};

/// The files of the testbed's PKI, under `<state>/pki`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub(crate) apiserver_cert: PathBuf,
    pub(crate) apiserver_key: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) front_proxy_cert: PathBuf,
    pub(crate) front_proxy_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_public_key: PathBuf,
}

impl Pki {
    /// The file layout under `dir`.
    pub(crate) fn in_dir(dir: &Path) -> Pki {
        Pki {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            front_proxy_cert: dir.join("front-proxy-client.crt"),
            front_proxy_key: dir.join("front-proxy-client.key"),
            service_account_key: dir.join("sa.key"),
            service_account_public_key: dir.join("sa.pub"),
        }
    }

    /// Generates every certificate and key into `dir`.
    /// `service_ip` is the first address of the service range (the `kubernetes` Service).
    pub(crate) fn generate(dir: &Path, service_ip: &str) -> Result<Pki> {
        fs::create_dir_all(dir).at(dir)?;
        let pki = Pki::in_dir(dir);

        let ca_key = KeyPair::generate()?;
        write_private(&pki.ca_key, &ca_key.serialize_pem())?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cilium-migrate testbed CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, ca_key)?;
        write_public(&pki.ca_cert, &ca.pem())?;

        let serving_names: Vec<String> = [
            "127.0.0.1",
            "localhost",
            service_ip,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(str::to_owned)
        .to_vec();
        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(serving_names)?;
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving.signed_by(&serving_key, &ca)?;
        write_public(&pki.apiserver_cert, &serving_cert.pem())?;
        write_private(&pki.apiserver_key, &serving_key.serialize_pem())?;

        // Group system:masters: the admin (and the controllers using its kubeconfig) bypass RBAC,
        // while the API server still enforces RBAC for every other identity a test creates.
        let admin_key = KeyPair::generate()?;
        let mut admin = CertificateParams::new(Vec::<String>::new())?;
        admin
            .distinguished_name
            .push(DnType::CommonName, "kubernetes-admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let admin_cert = admin.signed_by(&admin_key, &ca)?;
        write_public(&pki.admin_cert, &admin_cert.pem())?;
        write_private(&pki.admin_key, &admin_key.serialize_pem())?;

        // The aggregation layer's client identity (allowed by name in --requestheader-allowed-names).
        let front_proxy_key = KeyPair::generate()?;
        let mut front_proxy = CertificateParams::new(Vec::<String>::new())?;
        front_proxy
            .distinguished_name
            .push(DnType::CommonName, "front-proxy-client");
        front_proxy.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        front_proxy.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let front_proxy_cert = front_proxy.signed_by(&front_proxy_key, &ca)?;
        write_public(&pki.front_proxy_cert, &front_proxy_cert.pem())?;
        write_private(&pki.front_proxy_key, &front_proxy_key.serialize_pem())?;

        // ES256 service-account tokens: the API server signs and verifies with this one key file.
        let service_account_key = KeyPair::generate()?;
        write_private(
            &pki.service_account_key,
            &service_account_key.serialize_pem(),
        )?;
        // The API server verifies with a public key file (it rejects a PKCS#8 private key there).
        write_public(
            &pki.service_account_public_key,
            &service_account_key.public_key_pem(),
        )?;
        Ok(pki)
    }

    /// An admin kubeconfig for `server`, referring to the PKI files by absolute path.
    pub(crate) fn admin_kubeconfig(&self, server: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: kubernetes-admin
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: testbed
  context:
    cluster: testbed
    user: kubernetes-admin
    namespace: default
current-context: testbed
",
            ca = self.ca_cert.display(),
            cert = self.admin_cert.display(),
            key = self.admin_key.display(),
        )
    }
}

/// Writes a private key readable by the owner only.
fn write_private(path: &Path, pem: &str) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .at(path)?;
    file.write_all(pem.as_bytes()).at(path)
}

fn write_public(path: &Path, pem: &str) -> Result<()> {
    fs::write(path, pem).at(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn keys_are_private_and_certificates_are_pem() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let pki = Pki::generate(&dir.path().join("pki"), "10.233.0.1")
            .unwrap_or_else(|error| panic!("{error}"));
        for key in [
            &pki.ca_key,
            &pki.apiserver_key,
            &pki.admin_key,
            &pki.front_proxy_key,
            &pki.service_account_key,
        ] {
            let mode = fs::metadata(key)
                .map(|meta| meta.permissions().mode() & 0o777)
                .unwrap_or_default();
            assert_eq!(mode, 0o600, "{}", key.display());
            let pem = fs::read_to_string(key).unwrap_or_default();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        }
        let public = fs::read_to_string(&pki.service_account_public_key).unwrap_or_default();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
        for cert in [&pki.ca_cert, &pki.apiserver_cert, &pki.admin_cert] {
            let pem = fs::read_to_string(cert).unwrap_or_default();
            assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        }
        let kubeconfig = pki.admin_kubeconfig("https://127.0.0.1:6443");
        assert!(kubeconfig.contains("server: https://127.0.0.1:6443"));
        assert!(kubeconfig.contains(&pki.admin_key.display().to_string()));
    }
}
