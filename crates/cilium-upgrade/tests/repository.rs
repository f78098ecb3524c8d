//! Charts from a Helm chart repository (`ChartStore::Repository`), offline: a real repository
//! (`helm repo index` of copies of the released archives) served over HTTP on loopback by a
//! small file server in the test, added to an isolated Helm configuration (never the user's),
//! with both Helm majors. The plan computed from the repository lists its versions, pulls the
//! archives into the cache and pins their sha256, exactly as `--charts DIR` does; a repository
//! that is not added, or whose index cannot be refreshed, is refused with the command that fixes
//! it, nothing changed.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cilium_upgrade::live::plan_upgrade;
use cilium_upgrade::{ChartArchive, ChartStore, Target};

/// Both Helm majors the tool drives.
fn helms() -> Vec<PathBuf> {
    ["helm3", "helm4"]
        .into_iter()
        .map(support::helm_path)
        .collect()
}

/// helm whose repositories, index cache, config and data are all under `home`
/// (`Helm::with_home` sets every variable Helm reads for them, so neither the user's Helm
/// configuration nor a `HELM_REPOSITORY_*` exported in the shell running the tests is used).
fn isolated_helm(program: &Path, home: &Path) -> helm::Helm {
    helm::Helm::locate(Some(program)).unwrap().with_home(home)
}

/// Helm's repository list in `home`.
fn repositories_file(home: &Path) -> PathBuf {
    home.join("config/repositories.yaml")
}

/// A static file server on 127.0.0.1 (what a chart repository is: `index.yaml` and the
/// archives). While `up` is false it answers 503, as an unreachable mirror would.
struct Server {
    url: String,
    up: Arc<AtomicBool>,
}

impl Server {
    fn serve(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let root = root.to_owned();
        let serving = up.clone();
        // Detached: it ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                // One request per connection (`Connection: close`); a broken client is dropped.
                let _ = answer(stream, &root, serving.load(Ordering::SeqCst));
            }
        });
        Server { url, up }
    }
}

fn answer(mut stream: TcpStream, root: &Path, up: bool) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers: read to the blank line and ignored.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
    let file = (!name.contains("..") && !name.contains('/') && !name.is_empty())
        .then(|| root.join(name))
        .filter(|p| p.is_file());
    let (status, body) = match (up, file) {
        (false, _) => ("503 Service Unavailable", b"down\n".to_vec()),
        (true, Some(file)) => ("200 OK", std::fs::read(file)?),
        (true, None) => ("404 Not Found", b"not found\n".to_vec()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}

/// Copies the released archives of `versions` into `repo` and indexes it (`helm repo index`).
fn publish(helm: &helm::Helm, upstream: &upstream::Upstream, repo: &Path, versions: &[&str]) {
    std::fs::create_dir_all(repo).unwrap();
    for version in versions {
        let archive = upstream.chart(version).unwrap();
        std::fs::copy(&archive, repo.join(archive.file_name().unwrap())).unwrap();
    }
    helm.run(["repo".into(), "index".into(), repo.as_os_str().to_owned()])
        .unwrap();
}

fn archives_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tgz"))
                .collect()
        })
        .unwrap_or_default()
}

fn versions(list: &[semver::Version]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

#[test]
fn the_plan_from_the_repository_lists_pulls_and_pins_its_charts_as_charts_dir_does() {
    let Some(upstream) = upstream::Upstream::for_test(
        "repository::the_plan_from_the_repository_lists_pulls_and_pins_its_charts_as_charts_dir_does",
    ) else {
        return;
    };
    for program in helms() {
        let tmp = tempfile::tempdir().unwrap();
        let helm = isolated_helm(&program, &tmp.path().join("helm"));
        let repo = tmp.path().join("repo");
        publish(&helm, &upstream, &repo, &["1.17.3", "1.17.18", "1.18.12"]);
        let server = Server::serve(&repo);
        helm.repo_add("cilium", &server.url).unwrap();

        let cache = tmp.path().join("state/charts");
        let store = ChartStore::Repository {
            cache: cache.clone(),
        };
        assert_eq!(
            versions(&store.versions(&helm).unwrap()),
            ["1.17.3", "1.17.18", "1.18.12"],
            "{}",
            program.display()
        );
        let scratch = tmp.path().join("scratch");
        let start = support::start(
            &helm,
            &ChartArchive::read(&upstream.chart("1.17.3").unwrap()).unwrap(),
            support::kubespray_2_28_values(&upstream),
            1,
            &scratch,
        );
        let target = Some("1.18".parse::<Target>().unwrap());
        let from_repository = plan_upgrade(&start, target, &store, &helm, None, &scratch).unwrap();
        let hops: Vec<&str> = from_repository
            .hops
            .iter()
            .map(|h| h.version.as_str())
            .collect();
        assert_eq!(hops, ["1.17.18", "1.18.12"], "{}", program.display());
        // The state directory holds values files with secrets: created for its owner only,
        // also when the chart cache is what creates it first.
        for dir in [tmp.path().join("state"), cache.clone()] {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&dir).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        // Pulled into the cache, only what the path needs; pinned by the released files' sha256.
        assert_eq!(
            archives_in(&cache),
            BTreeSet::from([
                "cilium-1.17.18.tgz".to_owned(),
                "cilium-1.18.12.tgz".to_owned()
            ])
        );
        for hop in &from_repository.hops {
            let released = ChartArchive::read(&upstream.chart(&hop.version).unwrap()).unwrap();
            assert_eq!(hop.chart.sha256, released.sha256, "hop {}", hop.version);
            assert_eq!(hop.chart.file, format!("cilium-{}.tgz", hop.version));
        }
        // The same plan as from a directory of the same archives.
        let from_directory = plan_upgrade(
            &start,
            target,
            &ChartStore::Directory(repo.clone()),
            &helm,
            None,
            &scratch,
        )
        .unwrap();
        assert_eq!(from_repository, from_directory, "{}", program.display());

        // `--apply` reads the archives the plan pinned from the cache: the repository is not
        // asked again (it is down now) and the file is the same.
        server.up.store(false, Ordering::SeqCst);
        let again = store
            .archive(&helm, &semver::Version::new(1, 18, 12))
            .unwrap();
        assert_eq!(again.sha256, from_repository.hops[1].chart.sha256);
    }
}

#[test]
fn a_repository_that_is_not_added_is_refused_with_the_command_that_adds_it_and_nothing_changes() {
    for program in helms() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("helm");
        let helm = isolated_helm(&program, &home);
        let cache = tmp.path().join("state/charts");
        let store = ChartStore::Repository {
            cache: cache.clone(),
        };
        let err = store.versions(&helm).unwrap_err().to_string();
        assert!(
            err.contains("helm repo add cilium https://helm.cilium.io/")
                && err.contains("--charts")
                && err.contains("nothing was changed"),
            "{}: {err}",
            program.display()
        );
        // No repository was added behind the operator's back, nothing was pulled.
        assert_eq!(
            helm.repo_list().unwrap(),
            Vec::new(),
            "{}",
            program.display()
        );
        assert!(!repositories_file(&home).exists());
        assert!(!cache.exists());
        let err = store
            .archive(&helm, &semver::Version::new(1, 17, 18))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("helm repo add cilium https://helm.cilium.io/"),
            "{}: {err}",
            program.display()
        );
        assert!(!cache.exists());
    }
}

#[test]
fn a_stale_index_is_refreshed_and_one_that_cannot_be_is_refused_with_the_fix() {
    let Some(upstream) = upstream::Upstream::for_test(
        "repository::a_stale_index_is_refreshed_and_one_that_cannot_be_is_refused_with_the_fix",
    ) else {
        return;
    };
    for program in helms() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("helm");
        let helm = isolated_helm(&program, &home);
        let repo = tmp.path().join("repo");
        publish(&helm, &upstream, &repo, &["1.17.3"]);
        let server = Server::serve(&repo);
        helm.repo_add("cilium", &server.url).unwrap();
        // Published after the index was fetched: the index helm holds is stale.
        publish(&helm, &upstream, &repo, &["1.17.18", "1.18.12"]);

        let cache = tmp.path().join("state/charts");
        let store = ChartStore::Repository {
            cache: cache.clone(),
        };
        let scratch = tmp.path().join("scratch");
        let start = support::start(
            &helm,
            &ChartArchive::read(&upstream.chart("1.17.3").unwrap()).unwrap(),
            support::kubespray_2_28_values(&upstream),
            1,
            &scratch,
        );
        // 1.17's latest patch is the one published last, not the stale index's 1.17.3.
        let plan = plan_upgrade(
            &start,
            Some("1.17".parse::<Target>().unwrap()),
            &store,
            &helm,
            None,
            &scratch,
        )
        .unwrap();
        let hops: Vec<&str> = plan.hops.iter().map(|h| h.version.as_str()).collect();
        assert_eq!(hops, ["1.17.18"], "{}", program.display());

        // The repository stops answering: its index cannot be refreshed, so the latest patches
        // are unknown: refused, naming the repository and the fix; nothing changed.
        server.up.store(false, Ordering::SeqCst);
        let repositories = std::fs::read(repositories_file(&home)).unwrap();
        let pulled = archives_in(&cache);
        let err = store.versions(&helm).unwrap_err().to_string();
        assert!(
            err.contains(&server.url)
                && err.contains("helm repo update cilium")
                && err.contains("--charts")
                && err.contains("nothing was changed"),
            "{}: {err}",
            program.display()
        );
        assert_eq!(
            std::fs::read(repositories_file(&home)).unwrap(),
            repositories
        );
        assert_eq!(archives_in(&cache), pulled);
    }
}
