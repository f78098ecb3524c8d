//! Where tests find the released upstream artefacts: the Cilium chart archives, the Gateway API
//! CRDs, Kubespray's sample inventories, role defaults and the objects its own templates render.
//!
//! One environment variable, [`ENV`] (`CILIUM_MIGRATE_UPSTREAM`), names the folder; it defaults to
//! `../shared` beside the project root. Tests never copy these files into the project.
//!
//! A test that needs them calls [`Upstream::for_test`]:
//! - present: it gets the folder;
//! - missing under CI (`CI` set): the test fails at once, naming the folder and the variable;
//! - missing elsewhere: the test is skipped, loudly: a line on stderr and one in the skip log
//!   ([`SKIP_LOG_ENV`]) that `cargo xtask ci` counts and reports as its last line.
//!
//! *Why a crate of its own:* the library crates' tests (cilium-values, kubespray-config,
//! cilium-gateway, helm) need it as a light dev-dependency; the testbed crate that would otherwise be
//! its home pulls a Kubernetes client and the Go tool builder into every one of them.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The folder of upstream artefacts; default `../shared` relative to the project root.
pub const ENV: &str = "CILIUM_MIGRATE_UPSTREAM";
/// A file to which every skipped test appends one line (set by `cargo xtask ci` and `e2e`).
pub const SKIP_LOG_ENV: &str = "CILIUM_MIGRATE_SKIP_LOG";

/// The sub-folders a usable upstream folder has.
const EXPECTED: &[&str] = &["cilium-charts", "gateway-api-crds", "kubespray"];

/// The project root (this crate's manifest sits two levels below it).
pub fn project_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent()
        .and_then(Path::parent)
        .unwrap_or(dir)
        .to_path_buf()
}

/// True when running under CI (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The upstream folder is missing or incomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The folder looked at.
    pub folder: PathBuf,
    /// What is missing in it (empty when the folder itself is).
    pub lacks: Vec<String>,
    /// Whether the folder came from [`ENV`] (else the default).
    pub from_env: bool,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = if self.from_env {
            format!("${ENV}")
        } else {
            format!("the default of ${ENV}")
        };
        if self.lacks.is_empty() {
            write!(
                f,
                "the upstream artefacts folder {} ({origin}) does not exist",
                self.folder.display()
            )?;
        } else {
            write!(
                f,
                "the upstream artefacts folder {} ({origin}) lacks {}",
                self.folder.display(),
                self.lacks.join(", ")
            )?;
        }
        write!(
            f,
            "; set {ENV} to the folder holding cilium-charts/, gateway-api-crds/ and kubespray/ (the project's ../shared)"
        )
    }
}

impl std::error::Error for Missing {}

/// The folder of released upstream artefacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    root: PathBuf,
}

impl Upstream {
    /// The folder [`ENV`] names (relative to the project root when relative), else
    /// `<project root>/../shared`; an error when it or one of its expected parts is missing.
    pub fn locate() -> Result<Upstream, Missing> {
        let (folder, from_env) = match std::env::var_os(ENV) {
            Some(dir) if !dir.is_empty() => (project_root().join(dir), true),
            _ => (project_root().join("../shared"), false),
        };
        Upstream::at(folder, from_env)
    }

    /// The upstream folder at `folder`, checked.
    pub fn at(folder: impl Into<PathBuf>, from_env: bool) -> Result<Upstream, Missing> {
        let folder = folder.into();
        if !folder.is_dir() {
            return Err(Missing {
                folder,
                lacks: Vec::new(),
                from_env,
            });
        }
        let lacks: Vec<String> = EXPECTED
            .iter()
            .filter(|part| !folder.join(part).is_dir())
            .map(|part| format!("{part}/"))
            .collect();
        if !lacks.is_empty() {
            return Err(Missing {
                folder,
                lacks,
                from_env,
            });
        }
        let root = folder.canonicalize().unwrap_or(folder);
        Ok(Upstream { root })
    }

    /// For a test named `test`: the folder when present. When it is missing: under CI a panic
    /// naming the folder and the variable; elsewhere `None`, after a `SKIP` line on stderr and in
    /// the skip log.
    pub fn for_test(test: &str) -> Option<Upstream> {
        match Upstream::locate() {
            Ok(upstream) => Some(upstream),
            Err(missing) => {
                assert!(!in_ci(), "{test}: {missing} (CI requires them)");
                record_skip(test, &missing.to_string());
                None
            }
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `cilium-charts/`: the released chart archives.
    pub fn charts_dir(&self) -> PathBuf {
        self.root.join("cilium-charts")
    }

    /// The released chart archive `cilium-<version>.tgz`; an error naming the versions present.
    pub fn chart(&self, version: &str) -> Result<PathBuf, String> {
        let path = self.charts_dir().join(format!("cilium-{version}.tgz"));
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} is missing; released charts present: {}",
                path.display(),
                self.chart_versions()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// The versions of every released chart archive present, oldest first.
    pub fn chart_versions(&self) -> Vec<semver::Version> {
        let mut versions: Vec<semver::Version> = read_names(&self.charts_dir())
            .iter()
            .filter_map(|name| name.strip_prefix("cilium-")?.strip_suffix(".tgz"))
            .filter_map(|v| semver::Version::parse(v).ok())
            .collect();
        versions.sort();
        versions
    }

    /// `gateway-api-crds/<version>/` (version with its `v`, as `v1.2.1`).
    pub fn gateway_api_crds(&self, version: &str) -> PathBuf {
        self.root.join("gateway-api-crds").join(version)
    }

    /// `kubespray/`: samples, role defaults and rendered cases.
    pub fn kubespray(&self) -> PathBuf {
        self.root.join("kubespray")
    }

    /// Kubespray's sample inventory of `tag` (`v2.27.1`).
    pub fn kubespray_sample(&self, tag: &str) -> PathBuf {
        self.kubespray().join("samples").join(tag)
    }

    /// The sample inventory tags present, oldest first.
    pub fn kubespray_sample_tags(&self) -> Vec<String> {
        let mut tags = read_names(&self.kubespray().join("samples"));
        tags.sort_by_key(|tag| tag_version(tag));
        tags
    }

    /// Kubespray's role defaults files of `tag`.
    pub fn kubespray_defaults(&self, tag: &str) -> PathBuf {
        self.kubespray().join("defaults").join(tag)
    }

    /// Every case rendered by Kubespray's own templates, by case name then tag.
    pub fn rendered_cases(&self) -> Vec<RenderedCase> {
        let base = self.kubespray().join("rendered");
        let mut cases = Vec::new();
        for case in read_names(&base) {
            let dir = base.join(&case);
            if !dir.join("inventory.ini").is_file() {
                continue;
            }
            let mut tags: Vec<String> = read_names(&dir)
                .into_iter()
                .filter(|name| name.starts_with('v') && dir.join(name).is_dir())
                .collect();
            tags.sort_by_key(|tag| tag_version(tag));
            for tag in tags {
                let output = dir.join(&tag);
                let group_vars = if output.join("group_vars").is_dir() {
                    output.join("group_vars")
                } else {
                    dir.join("group_vars")
                };
                cases.push(RenderedCase {
                    case: case.clone(),
                    tag,
                    inventory_ini: dir.join("inventory.ini"),
                    group_vars,
                    output,
                });
            }
        }
        cases
    }

    /// The rendered case `case` at `tag`; an error naming the cases present.
    pub fn rendered_case(&self, case: &str, tag: &str) -> Result<RenderedCase, String> {
        let cases = self.rendered_cases();
        cases
            .iter()
            .find(|c| c.case == case && c.tag == tag)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "no rendered case {case} at {tag} under {}; present: {}",
                    self.kubespray().join("rendered").display(),
                    cases
                        .iter()
                        .map(RenderedCase::id)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Which way Kubespray installed Cilium for a rendered case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderedEra {
    /// `objects.yaml` applied with `kubectl apply` (≤ v2.27).
    Template,
    /// `values.yaml` installed by cilium-cli as Helm release `cilium` (≥ v2.28).
    CiliumCli,
}

/// One inventory and what Kubespray's own role rendered from it at one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedCase {
    /// The case name (`sample`, `hubble-full`, ...).
    pub case: String,
    /// The Kubespray tag (`v2.27.1`).
    pub tag: String,
    /// The render output folder (`objects.yaml`, `cilium-config.yaml`, or `values.yaml`, ...).
    pub output: PathBuf,
    /// The `group_vars` folder of the inventory the render used.
    pub group_vars: PathBuf,
    /// The inventory's `inventory.ini`.
    pub inventory_ini: PathBuf,
}

impl RenderedCase {
    /// `case@tag`, for messages.
    pub fn id(&self) -> String {
        format!("{}@{}", self.case, self.tag)
    }

    /// Template era when the render wrote `objects.yaml`, else cilium-cli era.
    pub fn era(&self) -> RenderedEra {
        if self.output.join("objects.yaml").is_file() {
            RenderedEra::Template
        } else {
            RenderedEra::CiliumCli
        }
    }

    /// A file of the render output (`objects.yaml`, `cilium-config.yaml`, `values.yaml`, ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.output.join(name)
    }

    /// The inventory (`inventory.ini` and `group_vars/`) copied to `into` (never the shared
    /// original: the hand-over edit and rollback write to it); returns `into`.
    pub fn inventory_copy(&self, into: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(into)?;
        std::fs::copy(&self.inventory_ini, into.join("inventory.ini"))?;
        copy_tree(&self.group_vars, &into.join("group_vars"))?;
        Ok(into.to_path_buf())
    }
}

/// Copies the files and directories under `from` to `to` (symlinks are not followed).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Records that `test` was skipped because of `why`: a line on stderr, and one in the skip log
/// when [`SKIP_LOG_ENV`] names one.
pub fn record_skip(test: &str, why: &str) {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIP {test}: {why}");
    }
    if let Some(log) = std::env::var_os(SKIP_LOG_ENV).filter(|v| !v.is_empty()) {
        let line = format!("{test}\t{why}\n");
        // Appends of one short line are atomic enough for tests running in parallel.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(error) = written {
            panic!(
                "{test}: cannot record the skip in {}: {error}",
                Path::new(&log).display()
            );
        }
    }
}

/// The skipped tests recorded in a skip log: `(test, why)` per line.
pub fn read_skips(log: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (test, why) = line.split_once('\t')?;
            Some((test.to_owned(), why.to_owned()))
        })
        .collect()
}

fn read_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tag_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.trim_start_matches('v')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_names_the_variable_and_the_fix() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let missing = Upstream::at(tmp.path().join("nope"), true).expect_err("missing");
        let text = missing.to_string();
        assert!(
            text.contains("does not exist") && text.contains(ENV),
            "{text}"
        );
    }

    #[test]
    fn an_incomplete_folder_names_what_it_lacks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("kubespray")).expect("mkdir");
        let missing = Upstream::at(tmp.path(), false).expect_err("incomplete");
        assert_eq!(missing.lacks, ["cilium-charts/", "gateway-api-crds/"]);
    }

    #[test]
    fn rendered_cases_find_group_vars_per_tag_or_per_case() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        for part in EXPECTED {
            std::fs::create_dir_all(root.join(part)).expect("mkdir");
        }
        let rendered = root.join("kubespray/rendered");
        for dir in [
            "a/group_vars/k8s_cluster",
            "a/v2.27.1",
            "b/v2.9.0/group_vars",
            "b/v2.10.0",
        ] {
            std::fs::create_dir_all(rendered.join(dir)).expect("mkdir");
        }
        for case in ["a", "b"] {
            std::fs::write(rendered.join(case).join("inventory.ini"), "").expect("write");
        }
        std::fs::write(rendered.join("a/v2.27.1/objects.yaml"), "").expect("write");
        let upstream = Upstream::at(root, false).expect("complete");
        let cases = upstream.rendered_cases();
        let ids: Vec<String> = cases.iter().map(RenderedCase::id).collect();
        assert_eq!(ids, ["a@v2.27.1", "b@v2.9.0", "b@v2.10.0"]);
        assert!(cases[0].group_vars.ends_with("a/group_vars"));
        assert!(cases[1].group_vars.ends_with("b/v2.9.0/group_vars"));
        assert_eq!(cases[0].era(), RenderedEra::Template);
        assert_eq!(cases[1].era(), RenderedEra::CiliumCli);
    }

    #[test]
    fn skips_are_read_back_from_the_log() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("skips");
        std::fs::write(&log, "t1\twhy one\nt2\twhy two\n").expect("write");
        assert_eq!(read_skips(&log).len(), 2);
        assert_eq!(read_skips(&tmp.path().join("none")), []);
    }
}
