//! The driver against the real Helm 3 and Helm 4 binaries, without a cluster: version, template
//! of a chart directory and of its `.tgz`, schema and chart failures, a loopback repository,
//! and an unreachable cluster.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use helm::{
    ChartError, ChartSource, Helm, HelmError, HelmFailure, HelmMajor, Manifest, TemplateRequest,
    UpgradeInstall,
};
use support::{LoopbackRepo, helm_binaries, write_tiny_chart};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn each_helm(home: &Path) -> Result<Vec<Helm>, HelmError> {
    helm_binaries()
        .into_iter()
        .map(|(major, path)| {
            let helm = Helm::locate(Some(&path))?.with_home(&home.join(format!("helm{major}")));
            Ok(helm)
        })
        .collect()
}

#[test]
fn locate_reads_the_version_of_both_majors() -> TestResult {
    for (major, path) in helm_binaries() {
        let helm = Helm::locate(Some(&path))?;
        let expected = if major == 3 {
            HelmMajor::V3
        } else {
            HelmMajor::V4
        };
        assert_eq!(helm.major(), expected, "{}", path.display());
        assert_eq!(helm.version().major, major);
        if major == 3 {
            assert!(helm.version().minor >= 17, "{}", helm.version());
        }
    }
    Ok(())
}

fn script(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[test]
fn locate_refuses_old_and_unreadable_binaries() -> TestResult {
    // A Helm 3.16 cannot be built here; a script answering `version` like it stands in.
    let dir = tempfile::tempdir()?;
    let old = script(dir.path(), "helm-3.16", "echo v3.16.4")?;
    let err = Helm::locate(Some(&old)).expect_err("3.16 is refused");
    assert!(matches!(err, HelmError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("Helm 3.16.4 lacks --take-ownership; install Helm 3.17+ or 4.x"),
        "{err}"
    );
    let garbage = script(dir.path(), "not-helm", "echo hello; exit 0")?;
    let err = Helm::locate(Some(&garbage)).expect_err("not a version");
    assert!(matches!(err, HelmError::VersionUnreadable { .. }), "{err}");
    assert!(err.to_string().contains("\"hello\""), "{err}");
    Ok(())
}

#[test]
fn template_of_a_directory_and_of_its_package_agree() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chart_dir = write_tiny_chart(dir.path(), "0.1.0")?;
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "clusterName: homelab\ndebug: true\n")?;
    for helm in each_helm(dir.path())? {
        let which = helm.version().to_string();
        let mut request = TemplateRequest::new(
            "cilium",
            "kube-system",
            ChartSource::Directory(chart_dir.clone()),
        );
        request.values_files = vec![values.clone()];
        let rendered = helm.template(&request)?;
        let manifest = Manifest::parse(&rendered)?;
        let config = manifest
            .find("ConfigMap", "cilium-config")
            .ok_or("no ConfigMap")?;
        let json = config.to_json()?;
        assert_eq!(json["data"]["cluster-name"], "homelab", "{which}");
        assert_eq!(json["data"]["debug"], "true", "{which}");
        assert_eq!(json["data"]["kube-proxy-replacement"], "false", "{which}");
        assert_eq!(
            config.source.as_deref(),
            Some("tiny/templates/configmap.yaml")
        );
        let kinds: Vec<&str> = manifest
            .objects
            .iter()
            .map(|o| o.id.kind.as_str())
            .collect();
        assert_eq!(kinds.len(), 4, "{which}: {kinds:?}");
        assert!(manifest.find("DaemonSet", "cilium").is_some());
        assert!(manifest.find("ClusterRole", "cilium-kube-system").is_some());

        // The same chart as a .tgz renders the same objects.
        let out = dir.path().join(format!("pkg-{}", helm.version().major));
        std::fs::create_dir_all(&out)?;
        let tgz = helm.package(&chart_dir, &out)?;
        assert_eq!(tgz, out.join("tiny-0.1.0.tgz"));
        let archive = ChartSource::parse(&tgz.to_string_lossy())?;
        assert_eq!(archive, ChartSource::Archive(tgz.clone()));
        assert_eq!(helm.show_chart(&archive, None)?.version, "0.1.0");
        request.chart = archive.clone();
        assert_eq!(
            Manifest::parse(&helm.template(&request)?)?,
            manifest,
            "{which}"
        );

        // A version that is not the archive's is refused before anything renders.
        request.version = Some("1.16.0".to_owned());
        let err = helm.template(&request).expect_err("version mismatch");
        assert!(
            matches!(err, HelmError::Chart(ChartError::VersionMismatch { .. })),
            "{which}: {err}"
        );
        request.version = Some("0.1.0".to_owned());
        helm.template(&request)?;
    }
    Ok(())
}

#[test]
fn schema_violations_are_typed_with_the_offending_key() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chart_dir = write_tiny_chart(dir.path(), "0.1.0")?;
    // Kubespray's `kube_proxy_replacement: partial` is a string; the chart wants a boolean.
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "kubeProxyReplacement: partial\n")?;
    for helm in each_helm(dir.path())? {
        let mut request = TemplateRequest::new(
            "cilium",
            "kube-system",
            ChartSource::Directory(chart_dir.clone()),
        );
        request.values_files = vec![values.clone()];
        let err = helm.template(&request).expect_err("schema violation");
        let HelmError::Helm {
            failure: HelmFailure::SchemaViolation { violations },
            ..
        } = &err
        else {
            panic!("Helm {} gave {err}", helm.version());
        };
        assert!(
            violations
                .iter()
                .any(|v| v.contains("kubeProxyReplacement")),
            "Helm {}: {violations:?}",
            helm.version()
        );
        assert!(
            err.to_string()
                .contains("hint: fix these keys in the values file"),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn missing_charts_and_repositories_are_typed() -> TestResult {
    let dir = tempfile::tempdir()?;
    for helm in each_helm(dir.path())? {
        let source = ChartSource::parse("nowhere/cilium")?;
        let err = helm
            .template(&TemplateRequest::new(
                "cilium",
                "kube-system",
                source.clone(),
            ))
            .expect_err("repo is not added");
        assert!(
            matches!(&err, HelmError::Helm { failure: HelmFailure::RepoNotFound { repo }, .. } if repo == "nowhere"),
            "Helm {}: {err}",
            helm.version()
        );
        // And it cannot be added: its URL is unknown.
        let err = helm.prepare(&source).expect_err("unknown repository URL");
        assert!(
            matches!(err, HelmError::Chart(ChartError::RepositoryUnknown { .. })),
            "{err}"
        );
    }
    Ok(())
}

#[test]
fn a_loopback_repository_is_refused_until_added_then_updated_and_pulled_from() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chart_dir = write_tiny_chart(&dir.path().join("src"), "0.2.0")?;
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir)?;
    let helms = each_helm(dir.path())?;
    let first = helms.first().ok_or("no helm")?;
    first.package(&chart_dir, &repo_dir)?;
    let server = LoopbackRepo::serve(&repo_dir, 200)?;
    first.run([
        "repo",
        "index",
        &repo_dir.to_string_lossy(),
        "--url",
        &server.url,
    ])?;

    for helm in &helms {
        let which = helm.version().to_string();
        let source = ChartSource::Repository {
            repo: "local".to_owned(),
            url: Some(server.url.clone()),
            chart: "tiny".to_owned(),
        };
        assert!(
            helm.repo_list()?.is_empty(),
            "{which}: a fresh home has no repositories"
        );
        // Not added: refused with the command that adds it, the Helm configuration untouched.
        let err = helm
            .prepare(&source)
            .expect_err("the repository is not added");
        assert!(
            matches!(&err, HelmError::Chart(ChartError::RepositoryNotAdded { repo, .. }) if repo == "local")
                && err
                    .to_string()
                    .contains(&format!("helm repo add local {}", server.url)),
            "{which}: {err}"
        );
        assert!(
            helm.repo_list()?.is_empty(),
            "{which}: a repository was added"
        );
        helm.repo_add("local", &server.url)?;
        let repos = helm.repo_list()?;
        assert_eq!(repos.len(), 1, "{which}");
        assert_eq!(
            (repos[0].name.as_str(), repos[0].url.trim_end_matches('/')),
            ("local", server.url.trim_end_matches('/'))
        );
        helm.prepare(&source)?; // added: refreshes its index

        let dest = dir.path().join(format!("pulled-{}", helm.version().major));
        std::fs::create_dir_all(&dest)?;
        let tgz = helm.pull(&source, Some("0.2.0"), &dest)?;
        assert_eq!(tgz, dest.join("tiny-0.2.0.tgz"), "{which}");
        assert_eq!(helm.show_chart(&source, Some("0.2.0"))?.version, "0.2.0");

        let err = helm
            .pull(&source, Some("9.9.9"), &dest)
            .expect_err("no such version");
        assert!(
            matches!(
                err,
                HelmError::Helm {
                    failure: HelmFailure::ChartNotFound { .. },
                    ..
                }
            ),
            "{which}: {err}"
        );
    }
    Ok(())
}

#[test]
fn an_unreachable_cluster_is_typed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chart_dir = write_tiny_chart(dir.path(), "0.1.0")?;
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
    )?;
    for helm in each_helm(dir.path())? {
        let helm = helm.with_kubeconfig(&kubeconfig);
        let request = UpgradeInstall::adopt(
            "cilium",
            "kube-system",
            ChartSource::Directory(chart_dir.clone()),
        );
        for err in [
            helm.upgrade_install(&request).expect_err("no cluster"),
            helm.list(None).expect_err("no cluster"),
        ] {
            assert!(
                matches!(
                    err,
                    HelmError::Helm {
                        failure: HelmFailure::ClusterUnreachable { .. },
                        ..
                    }
                ),
                "Helm {}: {err}",
                helm.version()
            );
            assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        }
    }
    Ok(())
}

#[test]
fn an_index_that_cannot_be_refreshed_fails_the_update() -> TestResult {
    let dir = tempfile::tempdir()?;
    let chart_dir = write_tiny_chart(&dir.path().join("src"), "0.1.0")?;
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir_all(&repo_dir)?;
    let helms = each_helm(dir.path())?;
    let first = helms.first().ok_or("no helm")?;
    first.package(&chart_dir, &repo_dir)?;
    first.run(["repo", "index", &repo_dir.to_string_lossy()])?;
    for helm in &helms {
        // One request: `repo add` fetches the index, then the server is gone.
        let server = LoopbackRepo::serve(&repo_dir, 1)?;
        helm.repo_add("gone", &server.url)?;
        // Helm 3 alone would only warn and keep using the old index.
        let err = helm
            .repo_update(&["gone"])
            .expect_err("the repository no longer answers");
        assert!(
            matches!(err, HelmError::Helm { .. }),
            "Helm {}: {err}",
            helm.version()
        );
    }
    Ok(())
}
