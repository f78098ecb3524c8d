//! `enable` (the plan, then the journaled run) and `rollback`.
//!
//! The run, step by step, each journaled before the next starts (`journal.json` in the state
//! directory, 0600; a run that stops resumes at the first step not done):
//! 1. `backup`: kube-proxy's DaemonSet and ConfigMap as read (0600), the release revision and
//!    chart version, each inventory file the edit will change (its text before and after).
//! 2. `helm-upgrade`: the release's whole user values plus `kubeProxyReplacement: true`,
//!    `k8sServiceHost`, `k8sServicePort` (`--reset-values` with that file, never `--atomic`),
//!    at the release's own chart version; the agents restart when the pod template did not
//!    change (a new `cilium-config` alone does not roll them); agents and operator roll out;
//!    `verify` like `cilium status`.
//! 3. `delete-kube-proxy`: the DaemonSet and ConfigMap, through the migration's delete guard
//!    (never a CRD) with their UIDs as preconditions.
//! 4. `node-cleanup`: each node's kube-proxy rules ([`crate::node::clean_node`]), unless skipped.
//! 5. `inventory`: `kube_proxy_remove: true` (kubespray-config's lossless edit).
//! 6. `verify`: `kube-proxy-replacement: true` in cilium-config, no kube-proxy objects, the
//!    inventory says so, Cilium healthy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use helm::{
    ChartSource, Helm, OnFailure, Ownership, RollbackRequest, UpgradeInstall, ValuesScope, Wait,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, PostParams};
use kube::{Api, Client};
use kubespray_config::{FileEdit, HandoverOptions, Inventory};
use migration::object::ObjectRef;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use verify::rollout::{daemon_set_rollout, deployment_rollout, wait_rolled_out};

use crate::check::{self, Item, State, Status};
use crate::endpoint::{self, Endpoint, Proof, Wiring};
use crate::node::{NodeAccess, clean_node};
use crate::{Error, KUBE_PROXY, NAMESPACE, RELEASE, kube_error};

/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "journal.json";

/// What `enable` needs.
#[derive(Debug, Clone)]
pub struct EnableOptions {
    /// The chart to upgrade with (at the release's chart version).
    pub chart: ChartSource,
    /// Where the journal, backup and values file go.
    pub state_dir: PathBuf,
    /// The Kubespray inventory.
    pub inventory: PathBuf,
    /// `--api-server`: replaces the endpoint derived from the inventory.
    pub api_server: Option<Endpoint>,
    /// How to reach the nodes and which; `None`: `--skip-node-cleanup`.
    pub nodes: Option<(NodeAccess, Vec<cni_fs::Node>)>,
    /// Helm's `--timeout`.
    pub helm_timeout: Duration,
    /// How long the rollouts and verify may take.
    pub rollout_timeout: Duration,
    /// verify checks not to wait for (names, as `verify` prints them).
    pub ignore_checks: Vec<String>,
}

/// What `enable` would do.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The facts.
    pub state: State,
    /// The checks.
    pub items: Vec<Item>,
    /// How the inventory wires the nodes to the API server (or `--api-server`).
    pub wiring: Wiring,
    /// The proof, or why there is none.
    pub proof: Result<Proof, String>,
    /// The release's revision now.
    pub revision: u32,
    /// Its chart version.
    pub chart_version: String,
    /// The inventory edits (`kube_proxy_remove: true`).
    #[serde(skip)]
    pub inventory_edits: Vec<FileEdit>,
    /// What blocks `--apply` (each with its fix).
    pub blockers: Vec<String>,
}

impl Plan {
    /// The steps, for people.
    pub fn steps(&self, node_cleanup: bool) -> Vec<String> {
        let endpoint = self
            .proof
            .as_ref()
            .map_or_else(|_| "(not proved)".to_owned(), |p| p.endpoint.to_string());
        let mut steps = vec![
            format!(
                "back up kube-proxy's DaemonSet and ConfigMap, release revision {}, the inventory files",
                self.revision
            ),
            format!(
                "helm upgrade {RELEASE} (chart {}) with the release's values plus kubeProxyReplacement: true, k8sServiceHost/k8sServicePort {endpoint}; agents and operator roll out; verify",
                self.chart_version
            ),
            "delete DaemonSet and ConfigMap kube-system/kube-proxy".to_owned(),
        ];
        steps.push(if node_cleanup {
            "remove kube-proxy's iptables chains, IPVS services, kube-ipvs0, ipsets and nftables tables on each node".to_owned()
        } else {
            "SKIPPED (--skip-node-cleanup): kube-proxy's rules stay on every node until you remove them".to_owned()
        });
        for edit in &self.inventory_edits {
            steps.push(format!(
                "set {} in {}",
                edit.changed_keys.join(", "),
                edit.path.display()
            ));
        }
        steps.push("verify: kube-proxy-replacement true in cilium-config, no kube-proxy objects, Cilium healthy".to_owned());
        steps
    }
}

/// The refusal for an endpoint `prove` could not prove, with the fix.
pub fn not_proved(wiring: &Wiring, why: &str) -> Error {
    Error::EndpointNotProved {
        endpoint: wiring.describe(),
        why: why.to_owned(),
    }
}

/// The release's revision and chart version (`helm history`: `helm status` leaves the chart out).
pub fn release_revision(helm: &Helm) -> Result<(u32, String), Error> {
    let history = helm.history(RELEASE, NAMESPACE)?;
    let last = history.iter().max_by_key(|r| r.revision).ok_or_else(|| Error::Refused {
        items: vec![format!("no Helm release {RELEASE} in {NAMESPACE}: hand Cilium over first (cilium-migrate migrate --apply)")],
    })?;
    let version = last
        .chart
        .strip_prefix("cilium-")
        .unwrap_or(&last.chart)
        .to_owned();
    Ok((last.revision, version))
}

fn inventory_edits(inventory: &Inventory) -> Result<Vec<FileEdit>, Error> {
    inventory
        .handover_edits(&HandoverOptions {
            kube_proxy_remove: true,
        })
        .map_err(|e| Error::Inventory {
            problem: e.to_string(),
        })
}

/// Reads the cluster and the inventory and decides; changes nothing.
pub async fn plan(
    client: &Client,
    config: Option<&kube::Config>,
    helm: &Helm,
    inventory_dir: &Path,
    api_server: Option<&Endpoint>,
) -> Result<Plan, Error> {
    let inventory = Inventory::load(inventory_dir).map_err(|e| Error::Inventory {
        problem: e.to_string(),
    })?;
    let wiring = match api_server {
        Some(endpoint) => Wiring::Given {
            endpoint: endpoint.clone(),
        },
        None => endpoint::derive(&inventory)?,
    };
    let proof = endpoint::prove(client, config, &wiring)
        .await
        .map_err(|e| match e {
            Error::EndpointNotProved { why, .. } => why,
            other => other.to_string(),
        });
    let state = check::collect(client).await?;
    let items = check::judge(&state);
    let (revision, chart_version) = release_revision(helm)?;
    let edits = inventory_edits(&inventory)?;
    let mut blockers: Vec<String> = items
        .iter()
        .filter(|i| i.status == Status::Fail)
        .map(|i| {
            format!(
                "{}: {} (fix: {})",
                i.name,
                i.detail,
                i.fix.as_deref().unwrap_or("-")
            )
        })
        .collect();
    for edit in &edits {
        let others: Vec<&String> = edit
            .changed_keys
            .iter()
            .filter(|k| *k != "kube_proxy_remove")
            .collect();
        if !others.is_empty() {
            blockers.push(format!(
                "{}: the inventory is not handed over yet ({} would change too); run cilium-migrate migrate --apply first",
                edit.path.display(),
                others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    Ok(Plan {
        state,
        items,
        wiring,
        proof,
        revision,
        chart_version,
        inventory_edits: edits,
        blockers,
    })
}

/// One inventory file the run changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryFile {
    /// The file as written (resolved).
    pub target: PathBuf,
    /// Its text before, in the backup.
    pub before: PathBuf,
    /// Its text after, in the backup.
    pub after: PathBuf,
}

/// The record of one `enable` run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The API server URL the run talked to (a journal of another cluster is refused).
    pub api_server: String,
    /// The release revision before.
    pub previous_revision: u32,
    /// Its chart version.
    pub chart_version: String,
    /// cilium-config's kube-proxy-replacement before.
    pub previous_setting: Option<String>,
    /// The endpoint given to the agents.
    pub endpoint: Endpoint,
    /// The revision `helm upgrade` wrote.
    pub upgraded_revision: Option<u32>,
    /// Steps done, in order.
    pub done: Vec<String>,
    /// kube-proxy's DaemonSet backup (absent when there was none).
    pub daemon_set: Option<PathBuf>,
    /// kube-proxy's ConfigMap backup.
    pub config_map: Option<PathBuf>,
    /// Inventory files changed.
    pub inventory: Vec<InventoryFile>,
    /// Node cleanup summaries.
    pub nodes: Vec<String>,
    /// Set when rolled back.
    pub rolled_back: bool,
}

impl Journal {
    /// Reads `dir/journal.json`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Journal>, Error> {
        let path = dir.join(JOURNAL_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| Error::Journal {
                    path,
                    problem: format!("not a kube-proxy-replacement journal: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    fn save(&self, dir: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Journal {
            path: dir.join(JOURNAL_FILE),
            problem: e.to_string(),
        })?;
        write_private(&dir.join(JOURNAL_FILE), text.as_bytes())
    }

    fn is_done(&self, step: &str) -> bool {
        self.done.iter().any(|d| d == step)
    }

    fn mark(&mut self, dir: &Path, step: &str) -> Result<(), Error> {
        if !self.is_done(step) {
            self.done.push(step.to_owned());
        }
        self.save(dir)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    kubespray_config::files::write_private_atomic(path, bytes).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })
}

/// Progress lines.
pub type Progress<'a> = &'a mut (dyn FnMut(&str) + Send);

/// What `enable` did.
#[derive(Debug, Clone, Serialize)]
pub struct Enabled {
    /// The journal.
    pub journal: Journal,
    /// Whether this run found everything already done.
    pub already: bool,
}

/// Runs `enable` (the caller holds the cluster's run Lease). `api_server`: the URL the client
/// talks to (the journal's cluster identity).
pub async fn enable(
    client: &Client,
    config: Option<&kube::Config>,
    api_server: &str,
    helm: &Helm,
    options: &EnableOptions,
    progress: Progress<'_>,
) -> Result<Enabled, Error> {
    let dir = &options.state_dir;
    create_private_dir(dir)?;
    let mut journal = match Journal::load(dir)? {
        Some(j) if j.rolled_back => {
            return Err(Error::Journal {
                path: dir.join(JOURNAL_FILE),
                problem: "this run was rolled back; move the state directory away (or pass another --state-dir) to enable again".to_owned(),
            });
        }
        Some(j) if j.api_server != api_server => {
            return Err(Error::Journal {
                path: dir.join(JOURNAL_FILE),
                problem: format!(
                    "it belongs to the cluster at {}, not {api_server}; pass the --state-dir of this cluster's run",
                    j.api_server
                ),
            });
        }
        Some(j) => {
            progress(&format!(
                "resuming the run journaled in {} (done: {})",
                dir.display(),
                j.done.join(", ")
            ));
            j
        }
        None => {
            let plan = plan(
                client,
                config,
                helm,
                &options.inventory,
                options.api_server.as_ref(),
            )
            .await?;
            let proof = plan
                .proof
                .clone()
                .map_err(|why| not_proved(&plan.wiring, &why))?;
            if !plan.blockers.is_empty() {
                return Err(Error::Refused {
                    items: plan.blockers,
                });
            }
            for line in &proof.evidence {
                progress(&format!("API server endpoint {}: {line}", proof.endpoint));
            }
            let journal = Journal {
                api_server: api_server.to_owned(),
                previous_revision: plan.revision,
                chart_version: plan.chart_version.clone(),
                previous_setting: plan.state.cilium_setting.clone(),
                endpoint: proof.endpoint.clone(),
                upgraded_revision: None,
                done: Vec::new(),
                daemon_set: None,
                config_map: None,
                inventory: Vec::new(),
                nodes: Vec::new(),
                rolled_back: false,
            };
            journal.save(dir)?;
            backup(client, &plan.inventory_edits, dir, journal, progress).await?
        }
    };
    if journal.is_done("verify") {
        return Ok(Enabled {
            journal,
            already: true,
        });
    }
    if !journal.is_done("backup") {
        // The run stopped between starting its journal and finishing the backup: nothing has
        // changed yet, so the backup is taken again from what is there now.
        let inventory = Inventory::load(&options.inventory).map_err(|e| Error::Inventory {
            problem: e.to_string(),
        })?;
        journal.inventory.clear();
        journal = backup(
            client,
            &inventory_edits(&inventory)?,
            dir,
            journal,
            progress,
        )
        .await?;
    }
    if !journal.is_done("helm-upgrade") {
        upgrade(client, helm, options, &mut journal, progress).await?;
        journal.mark(dir, "helm-upgrade")?;
    }
    if !journal.is_done("delete-kube-proxy") {
        progress("deleting DaemonSet and ConfigMap kube-system/kube-proxy");
        delete_kube_proxy(client).await?;
        journal.mark(dir, "delete-kube-proxy")?;
    }
    if !journal.is_done("node-cleanup") {
        match &options.nodes {
            Some((access, nodes)) => {
                let state = check::collect(client).await?;
                let ports = check::node_ports(&state);
                for node in nodes {
                    progress(&format!("{}: removing kube-proxy's rules", node.name));
                    let done = clean_node(access, node, &ports).await?;
                    progress(&done.summary());
                    journal.nodes.push(done.summary());
                    journal.save(dir)?;
                }
            }
            None => {
                progress(
                    "WARNING: --skip-node-cleanup: kube-proxy's iptables/IPVS rules stay on every node; remove them yourself (only kube-proxy's chains: what `kube-proxy --cleanup` removes)",
                );
                journal
                    .nodes
                    .push("skipped (--skip-node-cleanup)".to_owned());
            }
        }
        journal.mark(dir, "node-cleanup")?;
    }
    if !journal.is_done("inventory") {
        for file in &journal.inventory {
            let before = read(&file.before)?;
            let after = read(&file.after)?;
            let current = read(&file.target)?;
            if current == after {
                continue;
            }
            if current != before {
                return Err(Error::Inventory {
                    problem: format!(
                        "{} changed since the backup; nothing was written: set kube_proxy_remove: true there by hand, then run again",
                        file.target.display()
                    ),
                });
            }
            progress(&format!(
                "setting kube_proxy_remove: true in {}",
                file.target.display()
            ));
            let mode = std::fs::metadata(&file.target)
                .map_err(|source| Error::Io {
                    path: file.target.clone(),
                    source,
                })?
                .permissions();
            kubespray_config::files::write_atomic(
                &file.target,
                after.as_bytes(),
                std::os::unix::fs::PermissionsExt::mode(&mode),
            )
            .map_err(|source| Error::Io {
                path: file.target.clone(),
                source,
            })?;
        }
        journal.mark(dir, "inventory")?;
    }
    progress("verify: cilium-config, kube-proxy's objects, the inventory, Cilium's health");
    verify_enabled(
        client,
        &options.inventory,
        options.rollout_timeout,
        &options.ignore_checks,
    )
    .await?;
    journal.mark(dir, "verify")?;
    Ok(Enabled {
        journal,
        already: false,
    })
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

async fn backup(
    client: &Client,
    edits: &[FileEdit],
    dir: &Path,
    mut journal: Journal,
    progress: Progress<'_>,
) -> Result<Journal, Error> {
    let backup = dir.join("backup");
    create_private_dir(&backup)?;
    progress(&format!("backup to {}", backup.display()));
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    if let Some(ds) = daemon_sets
        .get_opt(KUBE_PROXY)
        .await
        .map_err(kube_error("reading DaemonSet kube-system/kube-proxy"))?
    {
        let path = backup.join("daemonset-kube-proxy.json");
        write_private(&path, &to_json(&ds)?)?;
        journal.daemon_set = Some(path);
    }
    if let Some(cm) = config_maps
        .get_opt(KUBE_PROXY)
        .await
        .map_err(kube_error("reading ConfigMap kube-system/kube-proxy"))?
    {
        let path = backup.join("configmap-kube-proxy.json");
        write_private(&path, &to_json(&cm)?)?;
        journal.config_map = Some(path);
    }
    for (index, edit) in edits.iter().enumerate() {
        let name = edit
            .target
            .file_name()
            .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
        let before = backup.join(format!("inventory-{index}-{name}.before"));
        let after = backup.join(format!("inventory-{index}-{name}.after"));
        write_private(&before, edit.before.as_bytes())?;
        write_private(&after, edit.after.as_bytes())?;
        journal.inventory.push(InventoryFile {
            target: edit.target.clone(),
            before,
            after,
        });
    }
    // Read back: a backup that cannot be read is no backup.
    for path in journal.daemon_set.iter().chain(journal.config_map.iter()) {
        let text = read(path)?;
        serde_json::from_str::<Value>(&text).map_err(|e| Error::Journal {
            path: path.clone(),
            problem: format!("the backup does not read back: {e}"),
        })?;
    }
    journal.mark(dir, "backup")?;
    Ok(journal)
}

fn to_json<T: Serialize>(object: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(object).map_err(|e| Error::Unhealthy(e.to_string()))
}

async fn upgrade(
    client: &Client,
    helm: &Helm,
    options: &EnableOptions,
    journal: &mut Journal,
    progress: Progress<'_>,
) -> Result<(), Error> {
    let dir = &options.state_dir;
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    let generation = || async {
        daemon_sets
            .get_opt("cilium")
            .await
            .map_err(kube_error("reading DaemonSet kube-system/cilium"))
            .map(|d| d.and_then(|d| d.metadata.generation))
    };
    let (current, _) = release_revision(helm)?;
    if journal.upgraded_revision.is_none()
        && current != journal.previous_revision
        && !journal.is_done("helm-upgrade-started")
    {
        // Not this run's helm: someone changed the release since the backup.
        return Err(Error::Journal {
            path: dir.join(JOURNAL_FILE),
            problem: format!(
                "release {RELEASE} is at revision {current}, not {} as backed up, and this run did not upgrade it;                  look at `helm history {RELEASE} -n {NAMESPACE}`, then move the state directory away to start over",
                journal.previous_revision
            ),
        });
    }
    // A helm upgrade that ran before the run stopped is not run twice.
    if journal.upgraded_revision.is_none() && current == journal.previous_revision {
        let mut values = helm.get_values(
            RELEASE,
            NAMESPACE,
            ValuesScope::User,
            Some(journal.previous_revision),
        )?;
        if !values.is_object() {
            values = json!({});
        }
        values["kubeProxyReplacement"] = json!(true);
        values["k8sServiceHost"] = json!(journal.endpoint.host);
        values["k8sServicePort"] = json!(journal.endpoint.port);
        let text = serde_saphyr::to_string(&values).map_err(|e| Error::Unhealthy(e.to_string()))?;
        let file = dir.join("values.yaml");
        write_private(&file, text.as_bytes())?;
        let before = generation().await?;
        // Journaled before helm runs: a run that stops here is resumed, not repeated.
        journal.mark(dir, "helm-upgrade-started")?;
        progress(&format!(
            "helm upgrade {RELEASE} (revision {} -> next) with kubeProxyReplacement: true, k8sServiceHost/Port {}",
            journal.previous_revision, journal.endpoint
        ));
        let request = UpgradeInstall {
            release: RELEASE.to_owned(),
            namespace: NAMESPACE.to_owned(),
            chart: options.chart.clone(),
            version: Some(journal.chart_version.clone()),
            values_files: vec![file],
            ownership: Ownership::Fresh {
                on_failure: OnFailure::Keep,
            },
            wait: Wait::HooksOnly,
            wait_for_jobs: false,
            timeout: options.helm_timeout,
            apply: helm::ApplyMethod::Default,
        };
        let release = helm.upgrade_install(&request)?;
        journal.upgraded_revision = Some(release.revision);
        journal.save(dir)?;
        if generation().await? == before {
            // Only cilium-config changed: agents read it at start, so restart them.
            progress("the agent pod template did not change: restarting DaemonSet cilium");
            verify::rollout::restart(&daemon_sets, "cilium", "cilium-migrate")
                .await
                .map_err(kube_error("restarting DaemonSet kube-system/cilium"))?;
        }
    } else if journal.upgraded_revision.is_none() {
        // The run stopped after helm wrote the release: whether the agents were restarted is
        // unknown, so restart them (once more at worst).
        journal.upgraded_revision = Some(current);
        journal.save(dir)?;
        progress(&format!(
            "release revision {current} was written by the stopped run: restarting DaemonSet cilium so that every agent reads the new cilium-config"
        ));
        verify::rollout::restart(&daemon_sets, "cilium", "cilium-migrate")
            .await
            .map_err(kube_error("restarting DaemonSet kube-system/cilium"))?;
    }
    progress("waiting for the agents and the operator to roll out");
    wait_cilium_rolled_out(client, options.rollout_timeout).await?;
    progress("verify (like `cilium status`)");
    verify_healthy(client, options.rollout_timeout, &options.ignore_checks).await
}

/// `verify` re-run until healthy (or `timeout`); the problems left are the error.
async fn verify_healthy(
    client: &Client,
    timeout: Duration,
    ignore: &[String],
) -> Result<(), Error> {
    let options = verify::Options::new(NAMESPACE, RELEASE);
    let report = verify::verify_until_healthy(client, &options, ignore, timeout)
        .await
        .map_err(|e| Error::Unhealthy(format!("verify: {e}")))?;
    let problems: Vec<String> = report
        .problems()
        .filter(|c| !ignore.contains(&c.name))
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Unhealthy(format!(
        "Cilium is not healthy: {}; roll back with `cilium-migrate kube-proxy-replacement rollback --apply`",
        problems.join("; ")
    )))
}

async fn delete_kube_proxy(client: &Client) -> Result<(), Error> {
    delete_kube_proxy_object::<DaemonSet>(client, "apps/v1").await?;
    delete_kube_proxy_object::<ConfigMap>(client, "v1").await
}

/// Deletes `kube-system/kube-proxy` of kind `K` through the delete guard (when it exists) and
/// waits until it is gone.
async fn delete_kube_proxy_object<K>(client: &Client, api_version: &str) -> Result<(), Error>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let kind = K::kind(&());
    let api: Api<K> = Api::namespaced(client.clone(), NAMESPACE);
    let Some(uid) = api
        .get_opt(KUBE_PROXY)
        .await
        .map_err(kube_error(&format!(
            "reading {kind} kube-system/kube-proxy"
        )))?
        .and_then(|o| o.meta().uid.clone())
    else {
        return Ok(());
    };
    let object = ObjectRef::new(api_version, &kind, Some(NAMESPACE), KUBE_PROXY);
    migration::guard::delete(client, &ApiResource::erase::<K>(&()), &object, &uid, false).await?;
    wait_deleted(&api, &uid).await
}

async fn wait_deleted<K>(api: &Api<K>, uid: &str) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let condition = kube::runtime::conditions::is_deleted(uid);
    tokio::time::timeout(
        Duration::from_secs(120),
        kube::runtime::wait::await_condition(api.clone(), KUBE_PROXY, condition),
    )
    .await
    .map_err(|_| {
        Error::Unhealthy(
            "kube-system/kube-proxy was not deleted within 2m (a finalizer?)".to_owned(),
        )
    })?
    .map_err(|e| Error::Unhealthy(format!("waiting for kube-system/kube-proxy to go: {e}")))?;
    Ok(())
}

async fn verify_enabled(
    client: &Client,
    inventory: &Path,
    timeout: Duration,
    ignore: &[String],
) -> Result<(), Error> {
    let state = check::collect(client).await?;
    let mut wrong = Vec::new();
    if !state
        .cilium_setting
        .as_deref()
        .is_some_and(cilium_values::replaces_kube_proxy)
    {
        wrong.push(format!(
            "cilium-config kube-proxy-replacement is {:?}",
            state.cilium_setting
        ));
    }
    if state.daemon_set || state.config_map {
        wrong.push("kube-proxy's DaemonSet or ConfigMap is still there".to_owned());
    }
    let inventory = Inventory::load(inventory).map_err(|e| Error::Inventory {
        problem: e.to_string(),
    })?;
    if !inventory_edits(&inventory)?.is_empty() {
        wrong.push("the inventory does not say kube_proxy_remove: true".to_owned());
    }
    if !wrong.is_empty() {
        return Err(Error::Unhealthy(format!(
            "after enable: {}",
            wrong.join("; ")
        )));
    }
    verify_healthy(client, timeout, ignore).await
}

/// What `rollback` needs.
#[derive(Debug, Clone)]
pub struct RollbackOptions {
    /// The enable run's state directory.
    pub state_dir: PathBuf,
    /// Helm's `--timeout`.
    pub helm_timeout: Duration,
    /// How long rollouts and verify may take.
    pub rollout_timeout: Duration,
    /// verify checks not to wait for.
    pub ignore_checks: Vec<String>,
}

/// Undoes an `enable` (the caller holds the Lease): kube-proxy's ConfigMap and DaemonSet back
/// from the backup, `helm rollback` to the revision before, the inventory files restored (only
/// while they hold what the run wrote), then verify. kube-proxy writes its node rules again as
/// it starts.
pub async fn rollback(
    client: &Client,
    api_server: &str,
    helm: &Helm,
    options: &RollbackOptions,
    progress: Progress<'_>,
) -> Result<Journal, Error> {
    let dir = &options.state_dir;
    let path = dir.join(JOURNAL_FILE);
    let mut journal = Journal::load(dir)?.ok_or_else(|| Error::Journal {
        path: path.clone(),
        problem: "no enable run was journaled here; pass the --state-dir of the enable run"
            .to_owned(),
    })?;
    if journal.api_server != api_server {
        return Err(Error::Journal {
            path,
            problem: format!(
                "it belongs to the cluster at {}, not {api_server}",
                journal.api_server
            ),
        });
    }
    if journal.rolled_back {
        progress(&format!(
            "already rolled back to release revision {} ({})",
            journal.previous_revision,
            path.display()
        ));
        return Ok(journal);
    }
    // Inventory first, checked before the cluster changes: a file edited since is refused.
    let mut restores = Vec::new();
    for file in &journal.inventory {
        let before = read(&file.before)?;
        let after = read(&file.after)?;
        let current = read(&file.target)?;
        if current == before {
            continue;
        }
        if current != after {
            return Err(Error::Inventory {
                problem: format!(
                    "{} changed since enable wrote it; nothing was changed. Restore it by hand from {} (or make it equal {}), then run again",
                    file.target.display(),
                    file.before.display(),
                    file.after.display()
                ),
            });
        }
        restores.push((file.target.clone(), before));
    }
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    if let Some(backup) = &journal.config_map
        && config_maps
            .get_opt(KUBE_PROXY)
            .await
            .map_err(kube_error("reading ConfigMap kube-system/kube-proxy"))?
            .is_none()
    {
        progress("re-creating ConfigMap kube-system/kube-proxy from the backup");
        let object: ConfigMap = restorable(&read(backup)?, backup)?;
        config_maps
            .create(&PostParams::default(), &object)
            .await
            .map_err(kube_error("creating ConfigMap kube-system/kube-proxy"))?;
    }
    // A run that stopped while helm ran never recorded the revision helm wrote: the journal's
    // mark from before helm started says the release may have moved.
    if journal.upgraded_revision.is_some() || journal.is_done("helm-upgrade-started") {
        let (current, _) = release_revision(helm)?;
        if current != journal.previous_revision {
            progress(&format!(
                "helm rollback {RELEASE} {}",
                journal.previous_revision
            ));
            let mut request =
                RollbackRequest::new(RELEASE, NAMESPACE, Some(journal.previous_revision));
            request.wait = Wait::HooksOnly;
            request.timeout = options.helm_timeout;
            let generation = || async {
                daemon_sets
                    .get_opt("cilium")
                    .await
                    .map_err(kube_error("reading DaemonSet kube-system/cilium"))
                    .map(|d| d.and_then(|d| d.metadata.generation))
            };
            let before = generation().await?;
            helm.rollback(&request)?;
            if generation().await? == before {
                // As on the way in: a changed cilium-config alone does not restart the agents.
                verify::rollout::restart(&daemon_sets, "cilium", "cilium-migrate")
                    .await
                    .map_err(kube_error("restarting DaemonSet kube-system/cilium"))?;
            }
        }
    }
    if let Some(backup) = &journal.daemon_set
        && daemon_sets
            .get_opt(KUBE_PROXY)
            .await
            .map_err(kube_error("reading DaemonSet kube-system/kube-proxy"))?
            .is_none()
    {
        progress("re-creating DaemonSet kube-system/kube-proxy from the backup");
        let object: DaemonSet = restorable(&read(backup)?, backup)?;
        daemon_sets
            .create(&PostParams::default(), &object)
            .await
            .map_err(kube_error("creating DaemonSet kube-system/kube-proxy"))?;
    }
    for (target, before) in &restores {
        progress(&format!("restoring {}", target.display()));
        let mode = std::fs::metadata(target)
            .map_err(|source| Error::Io {
                path: target.clone(),
                source,
            })?
            .permissions();
        kubespray_config::files::write_atomic(
            target,
            before.as_bytes(),
            std::os::unix::fs::PermissionsExt::mode(&mode),
        )
        .map_err(|source| Error::Io {
            path: target.clone(),
            source,
        })?;
    }
    progress("waiting for the agents, the operator and kube-proxy to roll out");
    wait_cilium_rolled_out(client, options.rollout_timeout).await?;
    if journal.daemon_set.is_some() {
        wait_rolled_out(
            &daemon_sets,
            KUBE_PROXY,
            daemon_set_rollout,
            options.rollout_timeout,
        )
        .await
        .map_err(|e| Error::Unhealthy(e.to_string()))?;
    }
    let state = check::collect(client).await?;
    if state.cilium_setting != journal.previous_setting {
        return Err(Error::Unhealthy(format!(
            "after rollback cilium-config kube-proxy-replacement is {:?}, was {:?}",
            state.cilium_setting, journal.previous_setting
        )));
    }
    verify_healthy(client, options.rollout_timeout, &options.ignore_checks).await?;
    journal.rolled_back = true;
    journal.save(dir)?;
    Ok(journal)
}

/// An object from the backup, ready to create: no UID, resourceVersion, status or managed fields.
fn restorable<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, Error> {
    let mut value: Value = serde_json::from_str(text).map_err(|e| Error::Journal {
        path: path.to_owned(),
        problem: format!("the backup does not read: {e}"),
    })?;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
    }
    if let Some(object) = value.as_object_mut() {
        object.remove("status");
    }
    serde_json::from_value(value).map_err(|e| Error::Journal {
        path: path.to_owned(),
        problem: format!("the backup does not read: {e}"),
    })
}

/// Waits until the agent DaemonSet and the operator Deployment have rolled out.
async fn wait_cilium_rolled_out(client: &Client, timeout: Duration) -> Result<(), Error> {
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
    wait_rolled_out(&daemon_sets, "cilium", daemon_set_rollout, timeout)
        .await
        .map_err(|e| Error::Unhealthy(e.to_string()))?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    wait_rolled_out(&deployments, "cilium-operator", deployment_rollout, timeout)
        .await
        .map_err(|e| Error::Unhealthy(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_restorable_without_server_fields() {
        let text = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kube-proxy","namespace":"kube-system","uid":"u","resourceVersion":"5","creationTimestamp":"2026-01-01T00:00:00Z","managedFields":[{"manager":"kubeadm"}],"labels":{"app":"kube-proxy"}},"data":{"config.conf":"mode: ipvs\n"}}"#;
        let object: ConfigMap = restorable(text, Path::new("x")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(object.metadata.uid, None);
        assert_eq!(object.metadata.resource_version, None);
        assert_eq!(object.metadata.managed_fields, None);
        assert_eq!(
            object.metadata.labels.unwrap_or_default()["app"],
            "kube-proxy"
        );
        assert_eq!(
            object.data.unwrap_or_default()["config.conf"],
            "mode: ipvs\n"
        );
    }
}
