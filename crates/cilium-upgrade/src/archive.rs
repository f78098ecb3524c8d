//! A released chart archive (`cilium-X.Y.Z.tgz`): its version, its sha256 (what a reviewed plan
//! pins), its own `values.yaml` and the text of its templates (which values it reads).
//!
//! The archive is read here rather than through `helm show values`: the templates are needed too
//! (a value such as 1.15's `kubeProxyReplacement` is read by the templates but only commented in
//! `values.yaml`), and Helm has no command that prints them.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// One chart archive, read.
#[derive(Debug, Clone)]
pub struct ChartArchive {
    /// The chart's version (`Chart.yaml`).
    pub version: semver::Version,
    /// The archive.
    pub path: PathBuf,
    /// sha256 of the archive file, hex.
    pub sha256: String,
    /// The chart's own `values.yaml`, as JSON.
    pub defaults: Json,
    /// Every template file, concatenated: what [`ChartArchive::reads_value`] searches.
    templates: String,
}

impl ChartArchive {
    /// Reads `path`; an error names the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<ChartArchive, Error> {
        let bad = |problem: String| Error::Chart {
            path: path.to_owned(),
            problem,
        };
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut tar)
            .map_err(|e| bad(format!("not a gzip chart archive ({e}); pass a .tgz made by `helm package` or `helm pull`")))?;
        let files = tar_files(&tar).map_err(bad)?;
        // The chart's own files sit under one top directory, its name; subcharts under
        // `<name>/charts/` are not this chart's.
        let top = |name: &str| {
            name.split_once('/')
                .map(|(top, rest)| (top.to_owned(), rest.to_owned()))
        };
        let mut chart_yaml = None;
        let mut values_yaml = None;
        let mut templates = String::new();
        for (name, data) in &files {
            let Some((_, rest)) = top(name) else { continue };
            let text = || String::from_utf8_lossy(data).into_owned();
            match rest.as_str() {
                "Chart.yaml" => chart_yaml = Some(text()),
                "values.yaml" => values_yaml = Some(text()),
                r if r.starts_with("templates/") => {
                    templates.push_str(&text());
                    templates.push('\n');
                }
                _ => {}
            }
        }
        let chart_yaml = chart_yaml.ok_or_else(|| bad("holds no Chart.yaml".to_owned()))?;
        let chart: helm::ChartMetadata =
            serde_saphyr::from_str(&chart_yaml).map_err(|e| bad(format!("Chart.yaml: {e}")))?;
        if chart.name != "cilium" {
            return Err(bad(format!(
                "is chart `{}`, not cilium; pass Cilium's chart archives",
                chart.name
            )));
        }
        let version = semver::Version::parse(chart.version.trim_start_matches('v'))
            .map_err(|e| bad(format!("Chart.yaml version {:?}: {e}", chart.version)))?;
        let values_yaml = values_yaml.ok_or_else(|| bad("holds no values.yaml".to_owned()))?;
        let defaults: Json =
            serde_saphyr::from_str(&values_yaml).map_err(|e| bad(format!("values.yaml: {e}")))?;
        Ok(ChartArchive {
            version,
            path: path.to_owned(),
            sha256,
            defaults,
            templates,
        })
    }

    /// Whether the chart reads the value at the dotted `path` (`hubble.relay.enabled`): its
    /// `values.yaml` has it, or it lies under a free-form map of it (`extraConfig`,
    /// `podAnnotations`: an empty map or `null` by default), or a template names it.
    pub fn reads_value(&self, path: &[&str]) -> bool {
        let mut at = &self.defaults;
        for (depth, key) in path.iter().enumerate() {
            match at {
                Json::Object(map) if map.is_empty() => return true,
                Json::Object(map) => match map.get(*key) {
                    Some(next) => at = next,
                    None => {
                        let dotted = path[..=depth].join(".");
                        return self.templates.contains(&format!(".Values.{dotted}"));
                    }
                },
                // A scalar, list or null default: what the user puts there is the value.
                _ => return true,
            }
        }
        true
    }
}

/// The regular files of a tar stream, `(path, data)`. Handles ustar prefixes, PAX `path`
/// records and GNU long names (what Go's archive/tar, which Helm packages with, writes).
fn tar_files(tar: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut files = Vec::new();
    let mut offset = 0;
    let mut long_name: Option<String> = None;
    while offset + 512 <= tar.len() {
        let header = &tar[offset..offset + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let field = |from: usize, to: usize| {
            let raw = &header[from..to];
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).into_owned()
        };
        let size_text = field(124, 136);
        let size = usize::from_str_radix(size_text.trim(), 8)
            .map_err(|_| format!("a tar header at byte {offset} has the size {size_text:?}"))?;
        let start = offset + 512;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| format!("the tar entry at byte {offset} runs past the end"))?;
        let data = &tar[start..end];
        let name = match long_name.take() {
            Some(name) => name,
            None => {
                let prefix = field(345, 500);
                let name = field(0, 100);
                if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                }
            }
        };
        match header[156] {
            b'0' | 0 => files.push((name, data.to_vec())),
            b'x' => long_name = pax_path(data),
            b'L' => {
                let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            _ => {}
        }
        offset = start + size.div_ceil(512) * 512;
    }
    Ok(files)
}

/// The `path=` record of a PAX extended header (`"<len> path=<value>\n"` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    text.lines().find_map(|record| {
        let (_, rest) = record.split_once(' ')?;
        rest.strip_prefix("path=").map(str::to_owned)
    })
}
