//! Helm releases read from Helm's storage Secrets (`sh.helm.release.v1.<release>.v<N>`), so that
//! `verify` needs no `helm` binary: labels `owner=helm`, `name`, `status`, `version`, and key
//! `release` holding base64 of the gzipped release JSON (Helm 3 and 4 write the same format).

use std::io::Read;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

/// One revision of a Helm release, as far as `verify` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRevision {
    /// The storage Secret's name.
    pub secret: String,
    /// Release name.
    pub name: String,
    /// Revision number (label `version`).
    pub revision: u32,
    /// Status from the payload (`deployed`, `superseded`, `failed`, `pending-upgrade`, ...).
    pub status: String,
    /// Chart version from the payload (`chart.metadata.version`).
    pub chart_version: String,
    /// Application version from the payload (`chart.metadata.appVersion`), often the Cilium version.
    pub app_version: Option<String>,
}

/// Why a storage Secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The Secret lacks a label Helm always sets.
    #[error(
        "Secret {secret}: label `{label}` is missing or not a number; it is not a Helm storage Secret"
    )]
    Label {
        /// Secret name.
        secret: String,
        /// The label.
        label: &'static str,
    },
    /// The payload key is missing.
    #[error("Secret {secret}: data key `release` is missing; it is not a Helm storage Secret")]
    MissingPayload {
        /// Secret name.
        secret: String,
    },
    /// The payload is not base64, gzip or JSON as Helm writes it.
    #[error("Secret {secret}: data key `release` is not Helm's base64+gzip JSON ({problem})")]
    Payload {
        /// Secret name.
        secret: String,
        /// What was wrong.
        problem: String,
    },
}

#[derive(Deserialize)]
struct Payload {
    name: String,
    info: PayloadInfo,
    chart: PayloadChart,
}

#[derive(Deserialize)]
struct PayloadInfo {
    status: String,
}

#[derive(Deserialize)]
struct PayloadChart {
    metadata: PayloadChartMetadata,
}

#[derive(Deserialize)]
struct PayloadChartMetadata {
    version: String,
    #[serde(rename = "appVersion")]
    app_version: Option<String>,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Decodes one storage Secret.
pub fn decode(secret: &Secret) -> Result<ReleaseRevision, DecodeError> {
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let revision = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("version"))
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| DecodeError::Label {
            secret: secret_name.clone(),
            label: "version",
        })?;
    let raw = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .ok_or_else(|| DecodeError::MissingPayload {
            secret: secret_name.clone(),
        })?;
    let payload_error = |problem: String| DecodeError::Payload {
        secret: secret_name.clone(),
        problem,
    };
    // The Secret's data is base64 on the wire (decoded by serde); Helm's payload inside is base64 again.
    let text: Vec<u8> = raw
        .0
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| payload_error(format!("base64: {e}")))?;
    let json = if bytes.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| payload_error(format!("gzip: {e}")))?;
        out
    } else {
        // Very old Helm 3 releases stored plain JSON.
        bytes
    };
    let payload: Payload =
        serde_json::from_slice(&json).map_err(|e| payload_error(format!("JSON: {e}")))?;
    Ok(ReleaseRevision {
        secret: secret_name,
        name: payload.name,
        revision,
        status: payload.info.status,
        chart_version: payload.chart.metadata.version,
        app_version: payload.chart.metadata.app_version,
    })
}

/// The storage Secrets that belong to `release` (by labels `owner=helm` and `name`).
pub fn secrets_of<'a>(secrets: &'a [Secret], release: &'a str) -> impl Iterator<Item = &'a Secret> {
    secrets.iter().filter(move |s| {
        let labels = s.metadata.labels.as_ref();
        let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
        label("owner") == Some("helm") && label("name") == Some(release)
    })
}

/// The newest revision of `release` (highest `version` label), decoded.
pub fn latest(secrets: &[Secret], release: &str) -> Option<Result<ReleaseRevision, DecodeError>> {
    let revision_of = |s: &Secret| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("version"))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    secrets_of(secrets, release)
        .max_by_key(|s| revision_of(s))
        .map(decode)
}
