//! One cluster for the whole run: the kubeconfig context is resolved once, when the run
//! connects, and written as a kubeconfig holding only that context (0600, in a private
//! temporary directory). The Kubernetes client is built from it and every helm call gets it
//! with `--kubeconfig` and `--kube-context`, so a `kubectl config use-context` in another
//! terminal, or a `HELM_KUBECONTEXT` in the environment, cannot send helm to another cluster
//! than the one the run identified.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use helm::Helm;
use kube::config::Kubeconfig;

/// File name of the pinned kubeconfig in its private directory.
const PINNED_FILE: &str = "kubeconfig";

/// Why the kubeconfig cannot be pinned.
#[derive(Debug, thiserror::Error)]
#[error("kubeconfig {path}: {reason}")]
pub struct KubeconfigError {
    /// The file (or `$KUBECONFIG`).
    pub path: String,
    /// What is wrong, with the fix.
    pub reason: String,
}

/// The resolved context of a kubeconfig, written alone to a private file for the run.
#[derive(Debug)]
pub struct PinnedKubeconfig {
    /// Removed when the run ends.
    _dir: tempfile::TempDir,
    path: PathBuf,
    context: String,
    config: Kubeconfig,
    warnings: Vec<String>,
}

impl PinnedKubeconfig {
    /// Pins `kubeconfig` (`--kubeconfig`), else `$KUBECONFIG`, else `~/.kube/config`; `Ok(None)`
    /// when there is none of them (in a pod: the in-cluster service account, which nothing
    /// can switch).
    pub fn pin(kubeconfig: Option<&Path>) -> Result<Option<PinnedKubeconfig>, KubeconfigError> {
        let read = |path: &Path| {
            Kubeconfig::read_from(path).map_err(|e| KubeconfigError {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        };
        let (file, shown) = match kubeconfig {
            Some(path) => (read(path)?, path.display().to_string()),
            None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                Some(value) => (
                    Kubeconfig::read().map_err(|e| KubeconfigError {
                        path: format!("$KUBECONFIG ({})", value.to_string_lossy()),
                        reason: e.to_string(),
                    })?,
                    format!("$KUBECONFIG ({})", value.to_string_lossy()),
                ),
                None => {
                    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
                        return Ok(None);
                    };
                    let default = home.join(".kube").join("config");
                    if !default.exists() {
                        return Ok(None);
                    }
                    (read(&default)?, default.display().to_string())
                }
            },
        };
        Self::from_kubeconfig(file, &shown).map(Some)
    }

    /// Pins the current context of `file` (read from `shown`, for messages).
    pub fn from_kubeconfig(
        file: Kubeconfig,
        shown: &str,
    ) -> Result<PinnedKubeconfig, KubeconfigError> {
        let bad = |reason: String| KubeconfigError {
            path: shown.to_owned(),
            reason,
        };
        let name = file.current_context.clone().ok_or_else(|| {
            bad(
                "no current-context: pick the cluster with `kubectl config use-context NAME`"
                    .into(),
            )
        })?;
        let named = file
            .contexts
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| bad(format!("current-context {name} is not among its contexts")))?;
        let context = named
            .context
            .as_ref()
            .ok_or_else(|| bad(format!("context {name} is empty")))?;
        let cluster = file
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(|| {
                bad(format!(
                    "context {name} names cluster {}, which it does not define",
                    context.cluster
                ))
            })?;
        let user = match &context.user {
            Some(user) => Some(
                file.auth_infos
                    .iter()
                    .find(|a| &a.name == user)
                    .ok_or_else(|| {
                        bad(format!(
                            "context {name} names user {user}, which it does not define"
                        ))
                    })?,
            ),
            None => None,
        };
        let mut warnings = Vec::new();
        if cluster
            .cluster
            .as_ref()
            .and_then(|c| c.insecure_skip_tls_verify)
            == Some(true)
        {
            warnings.push(format!(
                "kubeconfig {shown}: cluster {} has insecure-skip-tls-verify: true: the API server's certificate is not checked, so whoever sits between this host and the cluster can pose as it (and read the Secrets the backup fetches); set certificate-authority-data and remove insecure-skip-tls-verify",
                cluster.name
            ));
        }
        let config = Kubeconfig {
            preferences: file.preferences.clone(),
            clusters: vec![cluster.clone()],
            auth_infos: user.into_iter().cloned().collect(),
            contexts: vec![named.clone()],
            current_context: Some(name.clone()),
            kind: Some("Config".into()),
            api_version: Some("v1".into()),
            ..Kubeconfig::default()
        };
        let dir = tempfile::Builder::new()
            .prefix("cilium-migrate-kubeconfig-")
            .tempdir()
            .map_err(|e| {
                bad(format!(
                    "cannot make a private directory for its pinned copy: {e}"
                ))
            })?;
        let path = dir.path().join(PINNED_FILE);
        // JSON is YAML to client-go; it also carries the credentials, hence 0600 from the start.
        let text = serde_json::to_string_pretty(&config)
            .map_err(|e| bad(format!("cannot write its pinned copy: {e}")))?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| {
                bad(format!(
                    "cannot write its pinned copy {}: {e}",
                    path.display()
                ))
            })?;
        Ok(PinnedKubeconfig {
            _dir: dir,
            path,
            context: name,
            config,
            warnings,
        })
    }

    /// The single-context kubeconfig file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned context's name.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The pinned kubeconfig, for the Kubernetes client.
    pub fn config(&self) -> &Kubeconfig {
        &self.config
    }

    /// What the operator should know about this kubeconfig (`insecure-skip-tls-verify`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `helm` talking to exactly this context.
    pub fn helm(&self, helm: Helm) -> Helm {
        helm.with_kubeconfig(&self.path)
            .with_kube_context(&self.context)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    const TWO_CONTEXTS: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
  - name: prod
    cluster:
      server: https://prod.example:6443
      certificate-authority: ca.pem
  - name: lab
    cluster:
      server: https://lab.example:6443
      insecure-skip-tls-verify: true
contexts:
  - name: prod
    context: {cluster: prod, user: admin}
  - name: lab
    context: {cluster: lab, user: lab-admin}
users:
  - name: admin
    user: {token: prod-token}
  - name: lab-admin
    user: {token: lab-token}
"#;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config");
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    #[test]
    fn only_the_current_context_is_pinned_privately_and_paths_stay_valid() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = write(dir.path(), TWO_CONTEXTS);
        let pinned = PinnedKubeconfig::pin(Some(&source))
            .expect("pinned")
            .expect("a kubeconfig");
        assert_eq!(pinned.context(), "prod");
        let mode = std::fs::metadata(pinned.path())
            .expect("pinned file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let written = Kubeconfig::read_from(pinned.path()).expect("readable");
        assert_eq!(written.current_context.as_deref(), Some("prod"));
        let names = |v: Vec<String>| v.join(",");
        assert_eq!(
            names(written.contexts.iter().map(|c| c.name.clone()).collect()),
            "prod"
        );
        assert_eq!(
            names(written.clusters.iter().map(|c| c.name.clone()).collect()),
            "prod"
        );
        assert_eq!(
            names(written.auth_infos.iter().map(|a| a.name.clone()).collect()),
            "admin"
        );
        // A relative file reference still points next to the original kubeconfig.
        let ca = written.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.certificate_authority.clone());
        assert_eq!(ca, Some(dir.path().join("ca.pem").display().to_string()));
        assert!(pinned.warnings().is_empty(), "{:?}", pinned.warnings());
        // Switching the original afterwards changes nothing in the pinned copy.
        write(
            dir.path(),
            &TWO_CONTEXTS.replace("current-context: prod", "current-context: lab"),
        );
        let again = Kubeconfig::read_from(pinned.path()).expect("readable");
        assert_eq!(again.current_context.as_deref(), Some("prod"));
    }

    #[test]
    fn an_unchecked_server_certificate_is_warned_about() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = write(
            dir.path(),
            &TWO_CONTEXTS.replace("current-context: prod", "current-context: lab"),
        );
        let pinned = PinnedKubeconfig::pin(Some(&source))
            .expect("pinned")
            .expect("a kubeconfig");
        let [warning] = pinned.warnings() else {
            panic!("one warning expected: {:?}", pinned.warnings())
        };
        assert!(
            warning.contains("cluster lab has insecure-skip-tls-verify")
                && warning.contains(&source.display().to_string())
                && warning.contains("certificate-authority-data"),
            "{warning}"
        );
    }

    #[test]
    fn a_kubeconfig_without_current_context_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = write(
            dir.path(),
            &TWO_CONTEXTS.replace("current-context: prod", ""),
        );
        let err = PinnedKubeconfig::pin(Some(&source)).expect_err("no context");
        assert!(
            err.to_string().contains("kubectl config use-context"),
            "{err}"
        );
    }
}
