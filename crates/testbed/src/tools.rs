//! The testbed's tools: Kubernetes control-plane binaries, kubectl, etcd, kwok, Helm 3 and Helm 4,
//! built from the Go modules under `testbed/go/` (one module per tool family, so that minimal
//! version selection never mixes their dependencies).
//!
//! Each family is rebuilt only when its stamp (tool version, Go version, hash of its go.mod and
//! go.sum, build recipe) differs from the one recorded beside the binaries. The Go caches stay at
//! their defaults (`GOCACHE`, `GOMODCACHE`), so a machine that built once rebuilds fast.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::process::tail;

/// Environment variable naming the tools directory; overrides `target/tools/bin`.
pub const TOOLS_DIR_ENV: &str = "CILIUM_MIGRATE_TOOLS";

/// Bumped when the build commands change, so that stamps from older recipes rebuild.
const RECIPE: &str = "2";

/// The workspace root (where `Cargo.toml`, `target/` and `testbed/go/` are).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.to_path_buf())
}

/// Paths of every testbed tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The directory holding them.
    pub dir: PathBuf,
    /// kube-apiserver.
    pub kube_apiserver: PathBuf,
    /// kube-controller-manager.
    pub kube_controller_manager: PathBuf,
    /// kube-scheduler.
    pub kube_scheduler: PathBuf,
    /// kubectl.
    pub kubectl: PathBuf,
    /// etcd.
    pub etcd: PathBuf,
    /// etcdctl, at etcd's version (snapshots, as on a Kubespray etcd host).
    pub etcdctl: PathBuf,
    /// The kwok controller (fake nodes and pods).
    pub kwok: PathBuf,
    /// Helm 3.
    pub helm3: PathBuf,
    /// Helm 4.
    pub helm4: PathBuf,
    /// `helm`, a symlink to Helm 4.
    pub helm: PathBuf,
}

/// File names of every binary in the tools directory.
pub const TOOL_NAMES: [&str; 10] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "etcdctl",
    "kwok",
    "helm3",
    "helm4",
    "helm",
];

impl Tools {
    /// The tools directory: `$CILIUM_MIGRATE_TOOLS`, else `<workspace>/target/tools/bin`.
    pub fn default_dir() -> PathBuf {
        match std::env::var_os(TOOLS_DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => workspace_root().join("target/tools/bin"),
        }
    }

    /// The tool paths in `dir`, whether or not they exist.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Tools {
        let dir = dir.into();
        let path = |name: &str| dir.join(name);
        Tools {
            kube_apiserver: path("kube-apiserver"),
            kube_controller_manager: path("kube-controller-manager"),
            kube_scheduler: path("kube-scheduler"),
            kubectl: path("kubectl"),
            etcd: path("etcd"),
            etcdctl: path("etcdctl"),
            kwok: path("kwok"),
            helm3: path("helm3"),
            helm4: path("helm4"),
            helm: path("helm"),
            dir,
        }
    }

    /// The tools in the default directory, failing when any is missing.
    pub fn locate() -> Result<Tools> {
        Tools::locate_in(Tools::default_dir())
    }

    /// The tools in `dir`, failing when any is missing.
    pub fn locate_in(dir: impl Into<PathBuf>) -> Result<Tools> {
        let tools = Tools::in_dir(dir);
        for name in TOOL_NAMES {
            if !tools.dir.join(name).is_file() {
                return Err(Error::ToolMissing {
                    tool: name,
                    dir: tools.dir.clone(),
                });
            }
        }
        Ok(tools)
    }

    /// Builds every tool family whose stamp is stale into `options.out_dir`, then locates them.
    /// `progress` hears one line per family (started, skipped, built).
    pub fn build(options: &BuildOptions, progress: &mut dyn FnMut(&str)) -> Result<BuildReport> {
        let go_version = go_version()?;
        fs::create_dir_all(&options.out_dir).at(&options.out_dir)?;
        let log_dir = options.log_dir();
        fs::create_dir_all(&log_dir).at(&log_dir)?;
        let mut report = BuildReport::default();
        for family in FAMILIES {
            let module_dir = options.go_dir.join(family.module);
            let version = module_version(&module_dir.join("go.mod"), family.version_of)?;
            let stamp = family_stamp(family, &module_dir, &version, &go_version)?;
            let stamp_path = options.out_dir.join(format!(".stamp-{}", family.name));
            let current = fs::read_to_string(&stamp_path).unwrap_or_default();
            let binaries_present = family
                .outputs()
                .iter()
                .all(|name| options.out_dir.join(name).is_file());
            if !options.force && binaries_present && current == stamp {
                progress(&format!("{} {version}: up to date", family.name));
                report.families.push(FamilyReport {
                    family: family.name,
                    version,
                    built: false,
                    duration: Duration::ZERO,
                });
                continue;
            }
            progress(&format!("{} {version}: building (go build)", family.name));
            let started = Instant::now();
            // A stale stamp must not survive a failed build.
            let _ = fs::remove_file(&stamp_path);
            let log = log_dir.join(format!("{}.log", family.name));
            fs::write(&log, "").at(&log)?;
            for step in family.steps {
                run_go_build(family, step, &module_dir, &version, &options.out_dir, &log)?;
            }
            fs::write(&stamp_path, &stamp).at(&stamp_path)?;
            let duration = started.elapsed();
            progress(&format!(
                "{} {version}: built in {:.0?}",
                family.name, duration
            ));
            report.families.push(FamilyReport {
                family: family.name,
                version,
                built: true,
                duration,
            });
        }
        let link = options.out_dir.join("helm");
        if fs::read_link(&link).ok().as_deref() != Some(Path::new("helm4")) {
            let _ = fs::remove_file(&link);
            std::os::unix::fs::symlink("helm4", &link).at(&link)?;
        }
        report.tools = Tools::locate_in(&options.out_dir)?;
        Ok(report)
    }
}

/// Where and how to build the tools.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The Go modules (`<workspace>/testbed/go`).
    pub go_dir: PathBuf,
    /// Where the binaries go (`Tools::default_dir()`).
    pub out_dir: PathBuf,
    /// Rebuild even when the stamps match.
    pub force: bool,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            go_dir: workspace_root().join("testbed/go"),
            out_dir: Tools::default_dir(),
            force: false,
        }
    }
}

impl BuildOptions {
    /// Build logs live beside the binaries' directory (`target/tools/logs`).
    pub fn log_dir(&self) -> PathBuf {
        self.out_dir
            .parent()
            .map(|parent| parent.join("logs"))
            .unwrap_or_else(|| self.out_dir.join("logs"))
    }
}

/// What [`Tools::build`] did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// One entry per tool family, in build order.
    pub families: Vec<FamilyReport>,
    /// The tools, all present.
    pub tools: Tools,
}

impl Default for Tools {
    fn default() -> Self {
        Tools::in_dir(Tools::default_dir())
    }
}

/// One tool family's build.
#[derive(Debug, Clone)]
pub struct FamilyReport {
    /// `helm3`, `helm4`, `k8s` or `kwok`.
    pub family: &'static str,
    /// The version built (from the module's go.mod).
    pub version: String,
    /// False when the stamp matched and nothing was built.
    pub built: bool,
    /// How long `go build` took.
    pub duration: Duration,
}

/// A Go module under `testbed/go/` and the binaries built from it.
struct Family {
    name: &'static str,
    module: &'static str,
    /// The module whose version (from go.mod) is stamped into the binaries.
    version_of: &'static str,
    steps: &'static [Step],
}

/// One `go build` invocation.
struct Step {
    packages: &'static [&'static str],
    /// The output file (one package) or none (several packages into the directory).
    output: Option<&'static str>,
    tags: &'static str,
    /// `-X` flags; `{version}`, `{major}` and `{minor}` are filled from the family's version,
    /// `{kube_major}` and `{kube_minor}` from the `k8s.io/client-go` the module requires.
    stamps: &'static [&'static str],
}

impl Family {
    fn outputs(&self) -> Vec<&'static str> {
        self.steps
            .iter()
            .flat_map(|step| match step.output {
                Some(output) => vec![output],
                None => step
                    .packages
                    .iter()
                    .filter_map(|package| package.rsplit('/').next())
                    .collect(),
            })
            .collect()
    }
}

const KUBE_VERSION_STAMPS: &[&str] = &[
    "k8s.io/component-base/version.gitVersion={version}",
    "k8s.io/component-base/version.gitMajor={major}",
    "k8s.io/component-base/version.gitMinor={minor}",
    "k8s.io/component-base/version.gitTreeState=clean",
    "k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z",
    "k8s.io/client-go/pkg/version.gitVersion={version}",
    "k8s.io/client-go/pkg/version.gitMajor={major}",
    "k8s.io/client-go/pkg/version.gitMinor={minor}",
    "k8s.io/client-go/pkg/version.gitTreeState=clean",
    "k8s.io/client-go/pkg/version.buildDate=1970-01-01T00:00:00Z",
];

/// Build order: Helm first (other work waits for it), then the control plane, then kwok.
const FAMILIES: &[Family] = &[
    Family {
        name: "helm3",
        module: "helm3",
        version_of: "helm.sh/helm/v3",
        steps: &[Step {
            packages: &["helm.sh/helm/v3/cmd/helm"],
            output: Some("helm3"),
            tags: "",
            stamps: &[
                "helm.sh/helm/v3/internal/version.version={version}",
                "helm.sh/helm/v3/internal/version.gitTreeState=clean",
                // Helm 3's Makefile stamps the Kubernetes version `helm template` assumes from
                // client-go (v0.37 gives 1.37); without it the default is 1.20, and a chart that
                // requires `kubeVersion: >= 1.21` (Cilium 1.16+) does not render.
                "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor={kube_major}",
                "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor={kube_minor}",
                "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor={kube_major}",
                "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor={kube_minor}",
            ],
        }],
    },
    Family {
        name: "helm4",
        module: "helm4",
        version_of: "helm.sh/helm/v4",
        steps: &[Step {
            packages: &["helm.sh/helm/v4/cmd/helm"],
            output: Some("helm4"),
            tags: "",
            stamps: &[
                "helm.sh/helm/v4/internal/version.version={version}",
                "helm.sh/helm/v4/internal/version.gitTreeState=clean",
            ],
        }],
    },
    Family {
        name: "k8s",
        module: "k8s",
        version_of: "k8s.io/kubernetes",
        steps: &[
            Step {
                packages: &[
                    "k8s.io/kubernetes/cmd/kube-apiserver",
                    "k8s.io/kubernetes/cmd/kube-controller-manager",
                    "k8s.io/kubernetes/cmd/kube-scheduler",
                    "k8s.io/kubernetes/cmd/kubectl",
                ],
                output: None,
                // Upstream's release tags: no SELinux cgo, no test hooks, no gRPC tracing.
                tags: "selinux,notest,grpcnotrace",
                stamps: KUBE_VERSION_STAMPS,
            },
            Step {
                // etcd at the version k8s.io/kubernetes pins; its version is compiled in.
                packages: &["go.etcd.io/etcd/server/v3"],
                output: Some("etcd"),
                tags: "grpcnotrace",
                stamps: &[],
            },
            Step {
                // etcdctl from the same etcd release, for snapshot tests.
                packages: &["go.etcd.io/etcd/etcdctl/v3"],
                output: Some("etcdctl"),
                tags: "grpcnotrace",
                stamps: &[],
            },
        ],
    },
    Family {
        name: "kwok",
        module: "kwok",
        version_of: "sigs.k8s.io/kwok",
        steps: &[Step {
            packages: &["sigs.k8s.io/kwok/cmd/kwok"],
            output: Some("kwok"),
            tags: "",
            stamps: &["sigs.k8s.io/kwok/pkg/consts.Version={version}"],
        }],
    },
];

fn go_version() -> Result<String> {
    let output = Command::new("go")
        .args(["env", "GOVERSION"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(Error::GoMissing)?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The version `module` is required at in a go.mod (`\tmodule vX.Y.Z // indirect` or
/// `require module vX.Y.Z`).
pub(crate) fn module_version(go_mod: &Path, module: &'static str) -> Result<String> {
    let text = fs::read_to_string(go_mod).at(go_mod)?;
    text.lines()
        .map(|line| line.trim().trim_start_matches("require").trim())
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(module))
                .then(|| words.next())
                .flatten()
                .filter(|version| version.starts_with('v'))
                .map(str::to_owned)
        })
        .ok_or_else(|| Error::GoModVersion {
            file: go_mod.to_path_buf(),
            module,
        })
}

fn family_stamp(
    family: &Family,
    module_dir: &Path,
    version: &str,
    go_version: &str,
) -> Result<String> {
    let mut hash = Sha256::new();
    for file in ["go.mod", "go.sum"] {
        let path = module_dir.join(file);
        hash.update(fs::read(&path).at(&path)?);
    }
    let digest = hash.finalize();
    let mut hex = String::new();
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(format!(
        "recipe {RECIPE}\nfamily {}\nversion {version}\ngo {go_version}\nmodules sha256:{hex}\n",
        family.name
    ))
}

/// `ldflags` for `step`: `version` is the family's, `client_go` the `k8s.io/client-go` version
/// the module requires (`v0.37.0`: Kubernetes 1.37, as Helm's Makefile computes it).
fn ldflags(step: &Step, version: &str, client_go: Option<&str>) -> String {
    // Go module versions are semver with a leading `v`.
    let numbers = |text: &str, major_offset: u64| {
        semver::Version::parse(text.trim_start_matches('v'))
            .map(|v| {
                (
                    v.major.saturating_add(major_offset).to_string(),
                    v.minor.to_string(),
                )
            })
            .unwrap_or_default()
    };
    let (major, minor) = numbers(version, 0);
    // client-go `v0.X.Y` belongs to Kubernetes `1.X`.
    let (kube_major, kube_minor) = client_go.map(|v| numbers(v, 1)).unwrap_or_default();
    let mut flags = String::from("-s -w");
    for stamp in step.stamps {
        let stamp = stamp
            .replace("{version}", version)
            .replace("{major}", &major)
            .replace("{minor}", &minor)
            .replace("{kube_major}", &kube_major)
            .replace("{kube_minor}", &kube_minor);
        flags.push_str(" -X ");
        flags.push_str(&stamp);
    }
    flags
}

fn run_go_build(
    family: &Family,
    step: &Step,
    module_dir: &Path,
    version: &str,
    out_dir: &Path,
    log: &Path,
) -> Result<()> {
    let mut command = Command::new("go");
    command
        .current_dir(module_dir)
        .env("CGO_ENABLED", "0")
        .args(["build", "-trimpath", "-mod=readonly"]);
    if !step.tags.is_empty() {
        command.args(["-tags", step.tags]);
    }
    let client_go = if step.stamps.iter().any(|stamp| stamp.contains("{kube_")) {
        Some(module_version(
            &module_dir.join("go.mod"),
            "k8s.io/client-go",
        )?)
    } else {
        None
    };
    command
        .arg("-ldflags")
        .arg(ldflags(step, version, client_go.as_deref()));
    let output = match step.output {
        Some(name) => out_dir.join(name),
        // A trailing slash makes `go build -o` write one binary per package into the directory.
        None => {
            let mut dir = out_dir.as_os_str().to_owned();
            dir.push("/");
            PathBuf::from(dir)
        }
    };
    command.arg("-o").arg(output).args(step.packages);
    let log_file = fs::OpenOptions::new().append(true).open(log).at(log)?;
    let log_err = log_file.try_clone().at(log)?;
    command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    let status = command.status().map_err(Error::GoMissing)?;
    if status.success() {
        return Ok(());
    }
    Err(Error::ToolBuild {
        family: family.name,
        status: status.to_string(),
        log: log.to_path_buf(),
        tail: tail(log, 30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_modules_pin_the_versions_the_testbed_documents() {
        let go_dir = workspace_root().join("testbed/go");
        let cases = [
            ("k8s", "k8s.io/kubernetes", "v1.35."),
            ("k8s", "go.etcd.io/etcd/server/v3", "v3.6."),
            ("kwok", "sigs.k8s.io/kwok", "v0.8."),
            ("helm3", "helm.sh/helm/v3", "v3."),
            ("helm4", "helm.sh/helm/v4", "v4."),
        ];
        for (module_dir, module, prefix) in cases {
            let version = module_version(&go_dir.join(module_dir).join("go.mod"), module)
                .unwrap_or_else(|error| panic!("{error}"));
            assert!(
                version.starts_with(prefix),
                "{module} is {version}, expected {prefix}*"
            );
        }
    }

    #[test]
    fn every_kubernetes_staging_module_is_replaced_at_the_kubernetes_version() {
        let go_mod = workspace_root().join("testbed/go/k8s/go.mod");
        let kubernetes = module_version(&go_mod, "k8s.io/kubernetes").unwrap_or_default();
        let staging = kubernetes.replacen("v1.", "v0.", 1);
        let text = fs::read_to_string(&go_mod).unwrap_or_default();
        let replaces: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|line| {
                let (from, to) = line.trim().split_once("=>")?;
                let mut to = to.split_whitespace();
                let (_, version) = (to.next()?, to.next()?);
                Some((from.trim(), version))
            })
            .filter(|(from, _)| from.starts_with("k8s.io/"))
            .collect();
        assert_eq!(replaces.len(), 31, "the 31 staging modules of 1.35");
        for (module, version) in replaces {
            assert_eq!(version, staging, "{module} must be replaced at {staging}");
        }
    }

    #[test]
    fn kubernetes_ldflags_fill_major_and_minor() {
        let flags = ldflags(&FAMILIES[2].steps[0], "v1.35.4", None);
        assert!(flags.starts_with("-s -w "));
        assert!(flags.contains("-X k8s.io/component-base/version.gitVersion=v1.35.4"));
        assert!(flags.contains("-X k8s.io/component-base/version.gitMajor=1"));
        assert!(flags.contains("-X k8s.io/client-go/pkg/version.gitMinor=35"));
        assert!(!flags.contains('{'));
    }

    #[test]
    fn helm3_ldflags_assume_the_kubernetes_of_its_client_go() {
        let flags = ldflags(&FAMILIES[0].steps[0], "v3.22.0", Some("v0.37.0"));
        assert!(flags.contains("-X helm.sh/helm/v3/internal/version.version=v3.22.0"));
        assert!(flags.contains("-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"));
        assert!(flags.contains("-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37"));
        assert!(flags.contains("-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"));
        assert!(!flags.contains('{'));
    }

    /// A pre-release stamps its numbers; a version that is not semver (Go modules always are)
    /// stamps none, where the hand-written split took whatever preceded the dots.
    #[test]
    fn ldflags_read_versions_as_semver() {
        let flags = ldflags(
            &FAMILIES[0].steps[0],
            "v4.0.0-rc.1",
            Some("v0.38.0-alpha.1"),
        );
        assert!(flags.contains("-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=38"));
        let flags = ldflags(&FAMILIES[2].steps[0], "v1.35", None);
        assert!(flags.contains("-X k8s.io/component-base/version.gitMajor= "));
    }

    #[test]
    fn module_version_names_the_file_when_the_module_is_absent() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let go_mod = dir.path().join("go.mod");
        fs::write(
            &go_mod,
            "module x\n\nrequire helm.sh/helm/v3 v3.22.0 // indirect\n",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            module_version(&go_mod, "helm.sh/helm/v3").ok().as_deref(),
            Some("v3.22.0")
        );
        let error = module_version(&go_mod, "sigs.k8s.io/kwok")
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("go.mod"), "{error}");
        assert!(error.contains("sigs.k8s.io/kwok"), "{error}");
    }

    #[test]
    fn the_stamp_changes_with_go_sum_version_and_go() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let write = |name: &str, text: &str| {
            fs::write(dir.path().join(name), text).unwrap_or_else(|error| panic!("{error}"))
        };
        write("go.mod", "module x\n");
        write("go.sum", "a v1 h1:x\n");
        let family = &FAMILIES[0];
        let stamp = |version: &str, go: &str| {
            family_stamp(family, dir.path(), version, go).unwrap_or_else(|error| panic!("{error}"))
        };
        let first = stamp("v3.22.0", "go1.26.8");
        assert_eq!(first, stamp("v3.22.0", "go1.26.8"), "stable");
        assert_ne!(first, stamp("v3.22.1", "go1.26.8"));
        assert_ne!(first, stamp("v3.22.0", "go1.26.9"));
        write("go.sum", "a v1 h1:y\n");
        assert_ne!(first, stamp("v3.22.0", "go1.26.8"), "go.sum is hashed");
    }

    #[test]
    fn outputs_name_every_binary_the_testbed_needs() {
        let mut outputs: Vec<&str> = FAMILIES.iter().flat_map(Family::outputs).collect();
        outputs.push("helm");
        outputs.sort_unstable();
        let mut expected = TOOL_NAMES.to_vec();
        expected.sort_unstable();
        assert_eq!(outputs, expected);
    }
}
