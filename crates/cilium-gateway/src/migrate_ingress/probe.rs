//! The probe: every host and path of the Ingresses, requested through ingress-nginx and through
//! the Gateway (the Host header and, for TLS hosts, the SNI set; redirects not followed;
//! certificates not verified, since the point is to compare the two, not to trust them), and
//! every difference in status, redirect target (`Location`) or a selected header reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::networking::v1::Ingress;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// One request the probe makes through both front doors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProbeTarget {
    /// The Ingress's namespace (its Gateway, in the per-namespace layout).
    pub namespace: String,
    /// The Host header (and SNI).
    pub host: String,
    /// The path requested.
    pub path: String,
    /// Whether the host has TLS (then it is requested over HTTPS too).
    pub tls: bool,
}

/// Where one front door is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontDoor {
    /// Its HTTP port's address.
    pub http: SocketAddr,
    /// Its HTTPS port's address (TLS hosts are not probed over HTTPS without one).
    pub https: Option<SocketAddr>,
}

impl FrontDoor {
    /// Ports 80 and 443 of `ip`.
    pub fn standard(ip: std::net::IpAddr) -> FrontDoor {
        FrontDoor {
            http: SocketAddr::new(ip, 80),
            https: Some(SocketAddr::new(ip, 443)),
        }
    }
}

/// What one front door answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// A response.
    Response {
        /// Its status code.
        status: u16,
        /// Its `Location`, when it redirects.
        location: Option<String>,
        /// The selected headers it has (lower-case names).
        headers: BTreeMap<String, String>,
    },
    /// No response: why.
    Failed(String),
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Response {
                status,
                location,
                headers,
            } => {
                write!(f, "{status}")?;
                if let Some(location) = location {
                    write!(f, " -> {location}")?;
                }
                for (name, value) in headers {
                    write!(f, " {name}: {value}")?;
                }
                Ok(())
            }
            Answer::Failed(why) => write!(f, "no response ({why})"),
        }
    }
}

/// One request whose answers differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// `http` or `https`.
    pub scheme: String,
    /// The host.
    pub host: String,
    /// The path.
    pub path: String,
    /// What ingress-nginx answered.
    pub nginx: Answer,
    /// What the Gateway answered.
    pub gateway: Answer,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}://{}{}: ingress-nginx {}, Gateway {}",
            self.scheme, self.host, self.path, self.nginx, self.gateway
        )
    }
}

/// The probe's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// How many requests were compared.
    pub compared: usize,
    /// The ones that differ.
    pub differences: Vec<Difference>,
}

impl ProbeReport {
    /// The report as lines for the operator.
    pub fn text(&self) -> String {
        let mut out = format!(
            "probe: {} requests compared, {} differ\n",
            self.compared,
            self.differences.len()
        );
        for difference in &self.differences {
            out.push_str(&format!("  {difference}\n"));
        }
        out
    }
}

/// Every host and path of the Ingresses of `class`, as the probe requests them. Regular
/// expression paths are requested at their literal prefix (the part before the first
/// metacharacter).
pub fn targets(ingresses: &[Ingress], class: &str) -> Vec<ProbeTarget> {
    let mut out = Vec::new();
    for ingress in ingresses {
        let Some(spec) = &ingress.spec else { continue };
        let of_class = spec.ingress_class_name.as_deref() == Some(class)
            || ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class"))
                .is_some_and(|c| c == class);
        if !of_class {
            continue;
        }
        let tls_hosts: Vec<&String> = spec
            .tls
            .iter()
            .flatten()
            .flat_map(|t| t.hosts.iter().flatten())
            .collect();
        for rule in spec.rules.iter().flatten() {
            let Some(host) = rule.host.clone().filter(|h| !h.starts_with('*')) else {
                continue;
            };
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                let raw = path.path.clone().unwrap_or_else(|| "/".to_owned());
                let literal: String = raw
                    .chars()
                    .take_while(|c| !"^$.*+?()[]{}|\\".contains(*c))
                    .collect();
                let literal = if literal.is_empty() {
                    "/".to_owned()
                } else {
                    literal
                };
                out.push(ProbeTarget {
                    namespace: ingress.metadata.namespace.clone().unwrap_or_default(),
                    host: host.clone(),
                    path: literal,
                    tls: tls_hosts.contains(&&host),
                });
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Requests every target through both front doors and compares status, `Location` and the
/// `headers` named (lower-case).
pub async fn probe(
    targets: &[ProbeTarget],
    nginx: &FrontDoor,
    gateway: &FrontDoor,
    headers: &[String],
    timeout: Duration,
) -> ProbeReport {
    let mut report = ProbeReport::default();
    for target in targets {
        let mut schemes = vec![("http", nginx.http, gateway.http)];
        if target.tls
            && let (Some(a), Some(b)) = (nginx.https, gateway.https)
        {
            schemes.push(("https", a, b));
        }
        for (scheme, a, b) in schemes {
            let tls = scheme == "https";
            let (first, second) = tokio::join!(
                request(a, tls, &target.host, &target.path, headers, timeout),
                request(b, tls, &target.host, &target.path, headers, timeout),
            );
            report.compared += 1;
            if first != second {
                report.differences.push(Difference {
                    scheme: scheme.to_owned(),
                    host: target.host.clone(),
                    path: target.path.clone(),
                    nginx: first,
                    gateway: second,
                });
            }
        }
    }
    report
}

/// One GET, its answer head only.
pub async fn request(
    address: SocketAddr,
    tls: bool,
    host: &str,
    path: &str,
    headers: &[String],
    timeout: Duration,
) -> Answer {
    let attempt = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect {address}: {e}"))?;
        if tls {
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config()?));
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("SNI {host}: {e}"))?;
            let stream = connector
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS to {address}: {e}"))?;
            exchange(stream, host, path, headers).await
        } else {
            exchange(stream, host, path, headers).await
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(why)) => Answer::Failed(why),
        Err(_) => Answer::Failed(format!("no answer within {timeout:?}")),
    }
}

async fn exchange<S>(
    stream: S,
    host: &str,
    path: &str,
    headers: &[String],
) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "cilium-migrate-probe")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request {host}{path}: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("GET {host}{path}: {e}"))?;
    driver.abort();
    let text = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    Ok(Answer::Response {
        status: response.status().as_u16(),
        location: text("location"),
        headers: headers
            .iter()
            .filter_map(|name| Some((name.to_ascii_lowercase(), text(name)?)))
            .collect(),
    })
}

/// TLS without certificate verification: both front doors serve the same Secrets, and the probe
/// compares their answers; trusting them is not its job.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
