//! `apply`, `cutover` and `rollback` against the cluster, journaled and backed up.
//!
//! The journal (JSON, 0600) records what is about to be created *before* it is created, so an
//! interrupted run is resumed by running the same command again, and `rollback` knows what to
//! delete. The backup (JSON, 0600, beside the journal, written once by the first `apply` and
//! never overwritten) holds the Ingresses and ingress-nginx's controller Service, Deployment,
//! ConfigMap and IngressClass as they were; `rollback` restores any of them that changed and
//! then compares them all with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::try_join_all;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::probe::{FrontDoor, ProbeReport};
use super::{AddressMode, Facts, IngressNginx, MigrateOptions, POOL_NAME, Plan, PoolFacts, plan};
use crate::Error;
use crate::journal::{load_json, now_unix, save_json, write_private};

/// The field manager of everything `apply` writes.
const MANAGER: &str = "cilium-migrate";

/// How far a migration got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Creating the Gateways and routes (interrupted if still here: run `apply` again).
    Applying,
    /// They serve beside ingress-nginx.
    Applied,
    /// Moving the traffic (interrupted if still here: run `cutover` again, or `rollback`).
    CuttingOver,
    /// The Gateway is in front.
    CutOver,
    /// Rolling back (interrupted if still here: run `rollback` again).
    RollingBack,
    /// ingress-nginx is in front again and what `apply` created is gone.
    RolledBack,
}

/// One object `apply` created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// `group/version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (cluster-scoped: `None`).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Its plural, for the API path.
    pub plural: String,
}

/// The record of one migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrateJournal {
    /// How far it got.
    pub stage: Stage,
    /// The backup file.
    pub backup: PathBuf,
    /// The ingress-nginx installation.
    pub nginx: IngressNginx,
    /// The address mode.
    pub address: AddressMode,
    /// Everything apply creates, in creation order (recorded before it is created).
    pub created: Vec<Created>,
    /// Each Gateway's (`namespace/name`) address once Programmed.
    #[serde(default)]
    pub gateway_addresses: BTreeMap<String, String>,
    /// ingress-nginx's addresses at apply.
    #[serde(default)]
    pub nginx_addresses: Vec<String>,
    /// The IP that moves at cut-over (take-over mode).
    #[serde(default)]
    pub take_over: Option<String>,
    /// The `/32` pool created at cut-over for it, when no pool contained it.
    #[serde(default)]
    pub take_over_pool: Option<String>,
    /// The hosts, for the DNS changes.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The last probe.
    #[serde(default)]
    pub probe: Option<ProbeReport>,
    /// What happened, in order (Unix seconds, text).
    #[serde(default)]
    pub events: Vec<(i64, String)>,
}

impl MigrateJournal {
    /// Reads a journal; `Ok(None)` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<MigrateJournal>, Error> {
        load_json(path, "a migrate-ingress journal")
    }

    /// Writes it (0600, atomically).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        save_json(self, path)
    }

    fn note(&mut self, what: impl Into<String>) {
        self.events.push((now_unix(), what.into()));
    }
}

/// The Ingresses and ingress-nginx objects as `apply` found them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    /// Every Ingress, whole.
    pub ingresses: Vec<Value>,
    /// ingress-nginx's controller Service, Deployment, ConfigMap and IngressClass by
    /// `Kind namespace/name`; `null` when it did not exist.
    pub nginx: BTreeMap<String, Value>,
}

impl Backup {
    fn load(path: &Path) -> Result<Backup, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Journal {
            path: path.to_owned(),
            problem: format!("the backup is unreadable: {e}"),
        })
    }
}

/// The backup's path for a journal: `<journal>.backup.json`.
pub fn backup_path(journal: &Path) -> PathBuf {
    let mut name = journal.as_os_str().to_owned();
    name.push(".backup.json");
    PathBuf::from(name)
}

/// How `apply` probes.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Where ingress-nginx is reached (default: its external IP, ports 80/443).
    pub nginx: Option<FrontDoor>,
    /// Where the Gateway is reached (default: its address, ports 80/443).
    pub gateway: Option<FrontDoor>,
    /// Headers compared besides status and `Location`.
    pub headers: Vec<String>,
    /// Per request.
    pub timeout: Duration,
}

/// What `apply` did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The plan it carried out.
    pub plan: Plan,
    /// Each Gateway's address.
    pub gateway_addresses: BTreeMap<String, String>,
    /// The probe's result, when asked for.
    pub probe: Option<ProbeReport>,
}

fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

fn refused(journal: &Path, problem: impl Into<String>) -> Error {
    Error::Journal {
        path: journal.to_owned(),
        problem: problem.into(),
    }
}

/// Reads what `plan` needs: Ingresses, Services, ingress-nginx's Service, the LB-IPAM pools and
/// `cilium-config` (in `cilium_namespace`).
pub async fn read_facts(
    client: &kube::Client,
    nginx: &IngressNginx,
    cilium_namespace: &str,
) -> Result<Facts, Error> {
    let (ingresses, services) = crate::convert::read_ingresses(client, None).await?;
    let header_config_maps =
        crate::convert::read_custom_header_config_maps(client, &ingresses).await?;
    let nginx_service = Api::<Service>::namespaced(client.clone(), &nginx.namespace)
        .get_opt(&nginx.controller)
        .await
        .map_err(kube_error(format!(
            "Service {}/{}",
            nginx.namespace, nginx.controller
        )))?;
    let pools = match resource(client, "cilium.io", None, "CiliumLoadBalancerIPPool").await? {
        None => None,
        Some(resource) => {
            let list = Api::<DynamicObject>::all_with(client.clone(), &resource)
                .list(&ListParams::default())
                .await
                .map_err(kube_error("CiliumLoadBalancerIPPools"))?;
            Some(list.items.iter().map(pool_facts).collect())
        }
    };
    let l2_policy_crd = resource(client, "cilium.io", None, "CiliumL2AnnouncementPolicy")
        .await?
        .is_some();
    let config = Api::<ConfigMap>::namespaced(client.clone(), cilium_namespace)
        .get_opt("cilium-config")
        .await
        .map_err(kube_error(format!(
            "ConfigMap {cilium_namespace}/cilium-config"
        )))?
        .and_then(|c| c.data)
        .unwrap_or_default();
    let on = |key: &str| {
        config
            .get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    };
    Ok(Facts {
        ingresses,
        services,
        nginx_service,
        pools,
        l2_policy_crd,
        bgp: on("enable-bgp-control-plane"),
        host_network: on("gateway-api-hostnetwork-enabled"),
        header_config_maps,
    })
}

/// A pool's blocks (`spec.blocks[].cidr` or `start-stop`, and the older `spec.cidrs`).
pub fn pool_facts(pool: &DynamicObject) -> PoolFacts {
    let mut blocks = Vec::new();
    for key in ["blocks", "cidrs"] {
        for block in pool.data["spec"][key].as_array().into_iter().flatten() {
            if let Some(cidr) = block["cidr"].as_str() {
                blocks.push(cidr.to_owned());
            } else if let (Some(start), Some(stop)) =
                (block["start"].as_str(), block["stop"].as_str())
            {
                blocks.push(format!("{start}-{stop}"));
            }
        }
    }
    PoolFacts {
        name: pool.metadata.name.clone().unwrap_or_default(),
        blocks,
    }
}

/// The API resource of `kind` in `group`: at `version` when the cluster serves it, else the
/// version it prefers; `None` when the cluster does not serve the kind.
async fn resource(
    client: &kube::Client,
    group: &str,
    version: Option<&str>,
    kind: &str,
) -> Result<Option<ApiResource>, Error> {
    let discovered = match kube::discovery::group(client, group).await {
        Ok(discovered) => discovered,
        Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => {
            return Ok(None);
        }
        Err(e) => return Err(kube_error(format!("discovering {group}"))(e)),
    };
    if let Some(version) = version
        && let Some((resource, _)) = discovered
            .versioned_resources(version)
            .into_iter()
            .find(|(r, _)| r.kind == kind)
    {
        return Ok(Some(resource));
    }
    // The kind's own most stable version: a group's preferred version need not serve every kind
    // (cilium.io prefers v2, its LB-IPAM pools were v2alpha1 until 1.18).
    Ok(discovered
        .resources_by_stability()
        .into_iter()
        .find(|(r, _)| r.kind == kind)
        .map(|(r, _)| r))
}

async fn object_resource(client: &kube::Client, object: &Value) -> Result<ApiResource, Error> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    resource(client, group, Some(version), kind)
        .await?
        .ok_or_else(|| Error::Wait {
            what: format!("the API of {kind} ({api_version})"),
            last: format!(
                "the cluster does not serve {kind}: install its CRD (for Gateway API, the bundle `gateway-api check` names)"
            ),
        })
}

fn created_of(object: &Value, resource: &ApiResource) -> Created {
    Created {
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        namespace: object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        name: object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        plural: resource.plural.clone(),
    }
}

fn api_of(client: &kube::Client, created: &Created) -> Api<DynamicObject> {
    let (group, version) = created
        .api_version
        .split_once('/')
        .unwrap_or(("", created.api_version.as_str()));
    let gvk = kube::core::GroupVersionKind::gvk(group, version, &created.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &created.plural);
    match &created.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Reads the objects the backup holds, as they are now.
async fn snapshot(client: &kube::Client, nginx: &IngressNginx) -> Result<Backup, Error> {
    let mut ingresses: Vec<Value> = Api::<Ingress>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(kube_error("Ingresses"))?
        .items
        .into_iter()
        .map(|i| serde_json::to_value(i).unwrap_or_default())
        .collect();
    ingresses.sort_by_key(|i| {
        (
            i.pointer("/metadata/namespace")
                .cloned()
                .unwrap_or_default()
                .to_string(),
            i.pointer("/metadata/name")
                .cloned()
                .unwrap_or_default()
                .to_string(),
        )
    });
    let (ns, name) = (nginx.namespace.as_str(), nginx.controller.as_str());
    let objects = BTreeMap::from([
        object(
            Api::<Service>::namespaced(client.clone(), ns),
            "Service",
            ns,
            name,
        )
        .await?,
        object(
            Api::<Deployment>::namespaced(client.clone(), ns),
            "Deployment",
            ns,
            name,
        )
        .await?,
        object(
            Api::<ConfigMap>::namespaced(client.clone(), ns),
            "ConfigMap",
            ns,
            name,
        )
        .await?,
        object(
            Api::<IngressClass>::all(client.clone()),
            "IngressClass",
            "",
            &nginx.ingress_class,
        )
        .await?,
    ]);
    Ok(Backup {
        ingresses,
        nginx: objects,
    })
}

/// `Kind namespace/name` (`Kind name` when cluster-scoped) and the object as JSON, `null` when it
/// does not exist.
async fn object<K>(api: Api<K>, kind: &str, ns: &str, name: &str) -> Result<(String, Value), Error>
where
    K: Clone + serde::de::DeserializeOwned + Serialize + std::fmt::Debug,
{
    let key = if ns.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {ns}/{name}")
    };
    let found = api.get_opt(name).await.map_err(kube_error(key.clone()))?;
    let value = found.map_or(Value::Null, |o| serde_json::to_value(o).unwrap_or_default());
    Ok((key, value))
}

/// What "exactly as before" compares: name, namespace, labels, annotations and the content
/// (`spec`, `data`); the server's bookkeeping (resourceVersion, managedFields, status) is left
/// out.
fn comparable(object: &Value) -> Value {
    if object.is_null() {
        return Value::Null;
    }
    let metadata = &object["metadata"];
    json!({
        "name": metadata["name"],
        "namespace": metadata["namespace"],
        "labels": metadata["labels"],
        "annotations": metadata["annotations"],
        "spec": object["spec"],
        "data": object["data"],
    })
}

/// Every object of `before` that differs from `after` (`Kind namespace/name`).
pub fn differences(before: &Backup, after: &Backup) -> Vec<String> {
    let mut out = Vec::new();
    let key = |i: &Value| {
        format!(
            "Ingress {}/{}",
            i.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            i.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )
    };
    let before_ingresses: BTreeMap<String, Value> = before
        .ingresses
        .iter()
        .map(|i| (key(i), comparable(i)))
        .collect();
    let after_ingresses: BTreeMap<String, Value> = after
        .ingresses
        .iter()
        .map(|i| (key(i), comparable(i)))
        .collect();
    for name in before_ingresses.keys().chain(after_ingresses.keys()) {
        if before_ingresses.get(name) != after_ingresses.get(name) && !out.contains(name) {
            out.push(name.clone());
        }
    }
    for (name, object) in &before.nginx {
        let now = after.nginx.get(name).cloned().unwrap_or(Value::Null);
        if comparable(object) != comparable(&now) {
            out.push(name.clone());
        }
    }
    out
}

/// `apply`: back up, journal, create the Gateways and routes beside ingress-nginx, wait until
/// every Gateway is Programmed with an address and every route Accepted with ResolvedRefs, and
/// probe when asked.
pub async fn apply(
    client: &kube::Client,
    options: &MigrateOptions,
    cilium_namespace: &str,
    journal_path: &Path,
    probe: Option<&ProbeOptions>,
    wait: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Applied, Error> {
    let previous = MigrateJournal::load(journal_path)?;
    if let Some(previous) = &previous
        && !matches!(previous.stage, Stage::Applying | Stage::Applied)
    {
        return Err(refused(
            journal_path,
            format!(
                "this migration is at stage {:?}: apply only starts or resumes one; run rollback first, or move the journal away to start over",
                previous.stage
            ),
        ));
    }
    let facts = read_facts(client, &options.nginx, cilium_namespace).await?;
    let plan = plan(&facts, options).map_err(|e| refused(journal_path, e.to_string()))?;

    let mut created = Vec::new();
    for object in &plan.objects {
        let resource = object_resource(client, object).await?;
        created.push(created_of(object, &resource));
    }
    // Never take over an object of the same name that apply did not make: rollback would
    // delete it.
    for target in &created {
        let live = api_of(client, target)
            .get_opt(&target.name)
            .await
            .map_err(kube_error(format!(
                "reading {} {}",
                target.kind, target.name
            )))?;
        if let Some(live) = live
            && !live
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(super::MANAGED_LABEL))
        {
            return Err(refused(
                journal_path,
                format!(
                    "{} {}{} exists and was not made by migrate-ingress (no {} label); nothing was changed: rename or remove it, or pass another --gateway-class",
                    target.kind,
                    target
                        .namespace
                        .as_ref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default(),
                    target.name,
                    super::MANAGED_LABEL
                ),
            ));
        }
    }
    // A resumed run keeps what an earlier one recorded, so rollback still deletes it when the
    // Ingresses changed in between.
    let earlier: Vec<Created> = previous
        .iter()
        .flat_map(|p| p.created.iter())
        .filter(|c| !created.contains(c))
        .cloned()
        .collect();
    let backup = backup_path(journal_path);
    if previous.is_none() || !backup.exists() {
        let taken = snapshot(client, &options.nginx).await?;
        let text =
            serde_json::to_string_pretty(&taken).map_err(|e| refused(&backup, e.to_string()))?;
        write_private(&backup, text.as_bytes())?;
        progress(&format!(
            "backed up {} Ingresses and ingress-nginx's objects to {}",
            taken.ingresses.len(),
            backup.display()
        ));
    }

    let mut journal = MigrateJournal {
        stage: Stage::Applying,
        backup: backup.clone(),
        nginx: options.nginx.clone(),
        address: options.address.clone(),
        created: earlier.into_iter().chain(created.iter().cloned()).collect(),
        gateway_addresses: BTreeMap::new(),
        nginx_addresses: plan.nginx_addresses.clone(),
        take_over: plan.take_over.clone(),
        take_over_pool: plan.take_over_pool.clone(),
        hosts: plan.targets.iter().map(|t| t.host.clone()).collect(),
        probe: None,
        events: previous.map(|p| p.events).unwrap_or_default(),
    };
    journal.hosts.dedup();
    journal.note("apply started");
    journal.save(journal_path)?;

    for (object, target) in plan.objects.iter().zip(&created) {
        let mut object = object.clone();
        object["apiVersion"] = json!(target.api_version);
        let typed: DynamicObject =
            serde_json::from_value(object).map_err(|e| refused(journal_path, e.to_string()))?;
        api_of(client, target)
            .patch(
                &target.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&typed),
            )
            .await
            .map_err(kube_error(format!(
                "creating {} {}",
                target.kind, target.name
            )))?;
        progress(&format!(
            "created {} {}{}",
            target.kind,
            target
                .namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            target.name
        ));
    }

    progress(
        "waiting until every Gateway is Programmed with an address and every route Accepted with resolved references",
    );
    // In host-network mode Envoy listens on the nodes: a Gateway need not report an address.
    let need_address = options.address != AddressMode::HostNetwork;
    journal.gateway_addresses = wait_until_serving(client, &created, need_address, wait).await?;
    journal.stage = Stage::Applied;
    journal.note("Gateways programmed, routes accepted");
    journal.save(journal_path)?;

    let report = match probe {
        None => None,
        Some(probe_options) => {
            let mut report = ProbeReport::default();
            for (nginx, gateway, targets) in probe_groups(&plan, &journal, options, probe_options)?
            {
                let part = super::probe::probe(
                    &targets,
                    &nginx,
                    &gateway,
                    &probe_options.headers,
                    probe_options.timeout,
                )
                .await;
                report.compared += part.compared;
                report.differences.extend(part.differences);
            }
            journal.probe = Some(report.clone());
            journal.note(format!(
                "probe: {} compared, {} differ",
                report.compared,
                report.differences.len()
            ));
            journal.save(journal_path)?;
            Some(report)
        }
    };
    Ok(Applied {
        plan,
        gateway_addresses: journal.gateway_addresses.clone(),
        probe: report,
    })
}

/// The probe's requests grouped by front doors: each host goes to the Gateway of its namespace
/// (or the shared one) unless the operator named one door for all.
fn probe_groups(
    plan: &Plan,
    journal: &MigrateJournal,
    options: &MigrateOptions,
    probe: &ProbeOptions,
) -> Result<Vec<(FrontDoor, FrontDoor, Vec<super::ProbeTarget>)>, Error> {
    let standard = |address: Option<&String>, what: &str| {
        address
            .and_then(|a| a.parse().ok())
            .map(FrontDoor::standard)
            .ok_or_else(|| Error::Wait {
                what: format!("{what}'s address for the probe"),
                last: format!(
                    "{}: pass the front door with --probe-nginx / --probe-gateway",
                    address.map_or("it has none".to_owned(), |a| format!("{a} is not an IP"))
                ),
            })
    };
    let nginx = match &probe.nginx {
        Some(door) => door.clone(),
        None => standard(
            plan.nginx_addresses
                .iter()
                .find(|a| a.parse::<std::net::IpAddr>().is_ok()),
            "ingress-nginx",
        )?,
    };
    let mut groups: Vec<(FrontDoor, FrontDoor, Vec<super::ProbeTarget>)> = Vec::new();
    for target in &plan.targets {
        let gateway = match &probe.gateway {
            Some(door) => door.clone(),
            None => {
                let namespace = match &options.layout {
                    super::Layout::Shared { namespace } => namespace.as_str(),
                    super::Layout::PerNamespace => target.namespace.as_str(),
                };
                let id = format!("{namespace}/{}", options.convert.gateway_class);
                standard(journal.gateway_addresses.get(&id), &format!("Gateway {id}"))?
            }
        };
        match groups.iter_mut().find(|(_, g, _)| *g == gateway) {
            Some((_, _, targets)) => targets.push(target.clone()),
            None => groups.push((nginx.clone(), gateway, vec![target.clone()])),
        }
    }
    Ok(groups)
}

fn condition_true(conditions: &Value, kind: &str) -> bool {
    conditions
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn programmed(object: &DynamicObject) -> bool {
    condition_true(&object.data["status"]["conditions"], "Programmed")
}

/// A Gateway's first address, once Programmed.
fn programmed_address(object: &DynamicObject) -> Option<String> {
    let status = &object.data["status"];
    if !programmed(object) {
        return None;
    }
    status["addresses"]
        .as_array()?
        .iter()
        .find_map(|a| a["value"].as_str().map(str::to_owned))
}

/// Whether every parent of a route accepted it with resolved references.
fn route_serving(object: &DynamicObject) -> bool {
    let parents = object.data["status"]["parents"].as_array();
    parents.is_some_and(|parents| {
        !parents.is_empty()
            && parents.iter().all(|p| {
                condition_true(&p["conditions"], "Accepted")
                    && condition_true(&p["conditions"], "ResolvedRefs")
            })
    })
}

async fn wait_until_serving(
    client: &kube::Client,
    created: &[Created],
    need_address: bool,
    wait: Duration,
) -> Result<BTreeMap<String, String>, Error> {
    let gateways = created.iter().filter(|c| c.kind == "Gateway");
    let routes = created.iter().filter(|c| c.kind.ends_with("Route"));
    let gateway_waits = gateways.map(|g| async move {
        let api = api_of(client, g);
        let ready = move |o: Option<&DynamicObject>| {
            o.is_some_and(|o| programmed(o) && (!need_address || programmed_address(o).is_some()))
        };
        let found = tokio::time::timeout(wait, await_condition(api.clone(), &g.name, ready)).await;
        let id = format!("{}/{}", g.namespace.clone().unwrap_or_default(), g.name);
        match found {
            Ok(Ok(Some(object))) => Ok((id, programmed_address(&object))),
            _ => Err(last_seen(&api, g, "Programmed with an address").await),
        }
    });
    let route_waits = routes.map(|r| async move {
        let api = api_of(client, r);
        let ready = |o: Option<&DynamicObject>| o.is_some_and(route_serving);
        match tokio::time::timeout(wait, await_condition(api.clone(), &r.name, ready)).await {
            Ok(Ok(Some(_))) => Ok(()),
            _ => Err(last_seen(&api, r, "Accepted with ResolvedRefs by every parent").await),
        }
    });
    let (addresses, _) =
        futures::future::try_join(try_join_all(gateway_waits), try_join_all(route_waits)).await?;
    Ok(addresses
        .into_iter()
        .filter_map(|(id, address)| Some((id, address?)))
        .collect())
}

async fn last_seen(api: &Api<DynamicObject>, object: &Created, what: &str) -> Error {
    let last = match api.get_opt(&object.name).await {
        Ok(Some(o)) => serde_json::to_string(&o.data["status"]).unwrap_or_default(),
        Ok(None) => "it is gone".to_owned(),
        Err(e) => e.to_string(),
    };
    Error::Wait {
        what: format!(
            "{} {}/{} to be {what} (is the Cilium operator running with gatewayAPI.enabled?)",
            object.kind,
            object.namespace.clone().unwrap_or_default(),
            object.name
        ),
        last,
    }
}

/// What `cutover` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CutOver {
    /// The IP moved from ingress-nginx's Service to the Gateway.
    Moved {
        /// The IP.
        ip: String,
        /// The Gateway (`namespace/name`).
        gateway: String,
    },
    /// The DNS changes to make: host, ingress-nginx's address, the Gateway's.
    Dns(Vec<(String, String, String)>),
}

/// `cutover`: refuses unless `apply --probe` found no difference (or `accept_differences`);
/// then moves ingress-nginx's IP to the Gateway (take-over) or lists the DNS changes.
pub async fn cutover(
    client: &kube::Client,
    journal_path: &Path,
    accept_differences: bool,
    wait: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<CutOver, Error> {
    let mut journal = MigrateJournal::load(journal_path)?.ok_or_else(|| {
        refused(
            journal_path,
            "no such journal: run `migrate-ingress apply` first",
        )
    })?;
    if !matches!(
        journal.stage,
        Stage::Applied | Stage::CuttingOver | Stage::CutOver
    ) {
        return Err(refused(
            journal_path,
            format!(
                "the migration is at stage {:?}: cutover needs a finished apply",
                journal.stage
            ),
        ));
    }
    if !accept_differences {
        match &journal.probe {
            None => {
                return Err(refused(
                    journal_path,
                    "no probe has compared ingress-nginx and the Gateway: run `migrate-ingress apply --probe`, or pass --accept-differences",
                ));
            }
            Some(report) if !report.differences.is_empty() => {
                let lines: Vec<String> =
                    report.differences.iter().map(ToString::to_string).collect();
                return Err(refused(
                    journal_path,
                    format!(
                        "the probe found {} difference(s); nothing was changed; fix them and run apply --probe again, or pass --accept-differences:\n  {}",
                        lines.len(),
                        lines.join("\n  ")
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    let Some(ip) = journal.take_over.clone() else {
        let changes = dns_changes(&journal);
        journal.stage = Stage::CutOver;
        journal.note("cut over by DNS (changes printed)");
        journal.save(journal_path)?;
        return Ok(CutOver::Dns(changes));
    };
    let gateway = journal
        .created
        .iter()
        .find(|c| c.kind == "Gateway")
        .cloned()
        .ok_or_else(|| refused(journal_path, "the journal records no Gateway"))?;
    journal.stage = Stage::CuttingOver;
    journal.note(format!("moving {ip} from ingress-nginx to the Gateway"));
    journal.save(journal_path)?;

    release_nginx_ip(client, &journal.nginx, &ip).await?;
    progress(&format!(
        "ingress-nginx's Service {}/{} no longer holds {ip}",
        journal.nginx.namespace, journal.nginx.controller
    ));
    if let Some(block) = &journal.take_over_pool {
        let pool = super::pool_object(&format!("{POOL_NAME}-takeover"), block);
        let resource = object_resource(client, &pool).await?;
        let target = created_of(&pool, &resource);
        if !journal.created.contains(&target) {
            journal.created.insert(0, target.clone());
            journal.save(journal_path)?;
        }
        let mut pool = pool;
        pool["apiVersion"] = json!(target.api_version);
        super::label(&mut pool);
        let typed: DynamicObject =
            serde_json::from_value(pool).map_err(|e| refused(journal_path, e.to_string()))?;
        api_of(client, &target)
            .patch(
                &target.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&typed),
            )
            .await
            .map_err(kube_error(format!("creating pool {}", target.name)))?;
        progress(&format!(
            "created CiliumLoadBalancerIPPool {} with {block}",
            target.name
        ));
    }
    let addresses = serde_json::to_value(super::gateway_addresses(&ip)).unwrap_or_default();
    let api = api_of(client, &gateway);
    api.patch(
        &gateway.name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "addresses": addresses } })),
    )
    .await
    .map_err(kube_error(format!(
        "giving {ip} to Gateway {}",
        gateway.name
    )))?;
    let wanted = ip.clone();
    let has_ip = move |o: Option<&DynamicObject>| {
        o.and_then(programmed_address).is_some_and(|a| a == wanted)
    };
    match tokio::time::timeout(wait, await_condition(api.clone(), &gateway.name, has_ip)).await {
        Ok(Ok(Some(_))) => {}
        _ => return Err(last_seen(&api, &gateway, &format!("Programmed with {ip}")).await),
    }
    let id = format!(
        "{}/{}",
        gateway.namespace.clone().unwrap_or_default(),
        gateway.name
    );
    journal.gateway_addresses.insert(id.clone(), ip.clone());
    journal.stage = Stage::CutOver;
    journal.note(format!("{ip} moved to Gateway {id}"));
    journal.save(journal_path)?;
    Ok(CutOver::Moved { ip, gateway: id })
}

fn dns_changes(journal: &MigrateJournal) -> Vec<(String, String, String)> {
    let from = journal
        .nginx_addresses
        .first()
        .cloned()
        .unwrap_or_else(|| "(ingress-nginx's address)".to_owned());
    let to = journal
        .gateway_addresses
        .values()
        .next()
        .cloned()
        .unwrap_or_else(|| "(the Gateway's address)".to_owned());
    let mut hosts = journal.hosts.clone();
    hosts.sort();
    hosts.dedup();
    hosts
        .into_iter()
        .map(|h| (h, from.clone(), to.clone()))
        .collect()
}

/// Frees `ip` on ingress-nginx's Service: a LoadBalancer Service becomes NodePort (its node
/// ports stay, so whatever points at the nodes keeps working; every provider, LB-IPAM or
/// MetalLB, releases the IP of a Service that is no longer a LoadBalancer), its
/// `loadBalancerIP` is cleared and the IP leaves `externalIPs`. `rollback` restores the Service
/// from the backup.
async fn release_nginx_ip(
    client: &kube::Client,
    nginx: &IngressNginx,
    ip: &str,
) -> Result<(), Error> {
    let api = Api::<Service>::namespaced(client.clone(), &nginx.namespace);
    let what = format!("Service {}/{}", nginx.namespace, nginx.controller);
    let Some(service) = api
        .get_opt(&nginx.controller)
        .await
        .map_err(kube_error(what.clone()))?
    else {
        return Ok(());
    };
    let spec = service.spec.unwrap_or_default();
    let mut patch = json!({ "spec": {} });
    if spec.type_.as_deref() == Some("LoadBalancer") {
        patch["spec"]["type"] = json!("NodePort");
        patch["spec"]["allocateLoadBalancerNodePorts"] = Value::Null;
        patch["spec"]["loadBalancerClass"] = Value::Null;
        patch["spec"]["loadBalancerSourceRanges"] = Value::Null;
    }
    if spec.load_balancer_ip.is_some() {
        patch["spec"]["loadBalancerIP"] = Value::Null;
    }
    if let Some(external) = spec.external_ips.filter(|e| e.iter().any(|a| a == ip)) {
        let kept: Vec<String> = external.into_iter().filter(|a| a != ip).collect();
        patch["spec"]["externalIPs"] = json!(kept);
    }
    api.patch(
        &nginx.controller,
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(kube_error(format!("releasing {ip} from {what}")))?;
    Ok(())
}

/// What `rollback` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// Objects deleted.
    pub deleted: Vec<String>,
    /// Objects restored from the backup.
    pub restored: Vec<String>,
}

/// `rollback`: deletes what `apply` (and `cutover`) created, newest first, waits until it is
/// gone, restores any Ingress or ingress-nginx object that differs from the backup, and then
/// compares them all with the backup.
pub async fn rollback(
    client: &kube::Client,
    journal_path: &Path,
    wait: Duration,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<RolledBack, Error> {
    let mut journal = MigrateJournal::load(journal_path)?
        .ok_or_else(|| refused(journal_path, "no such journal: nothing was applied with it"))?;
    let backup = Backup::load(&journal.backup)?;
    journal.stage = Stage::RollingBack;
    journal.note("rollback started");
    journal.save(journal_path)?;

    if journal.take_over.is_none() && matches!(journal.stage, Stage::CutOver | Stage::RollingBack) {
        let back: Vec<String> = dns_changes(&journal)
            .into_iter()
            .map(|(host, nginx, gateway)| format!("{host}: {gateway} -> {nginx}"))
            .collect();
        progress(&format!(
            "DNS was moved to the Gateway at cutover: point it back to ingress-nginx ({}) before the Gateway goes",
            back.join(", ")
        ));
    }
    let mut deleted = Vec::new();
    for target in journal.created.iter().rev() {
        let api = api_of(client, target);
        let id = format!(
            "{} {}{}",
            target.kind,
            target
                .namespace
                .as_ref()
                .map(|n| format!("{n}/"))
                .unwrap_or_default(),
            target.name
        );
        let Some(live) = api
            .get_opt(&target.name)
            .await
            .map_err(kube_error(id.clone()))?
        else {
            continue;
        };
        // Only what apply made: an object of the same name without the label is the operator's.
        let ours = live
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(super::MANAGED_LABEL));
        if !ours {
            progress(&format!(
                "left {id} alone: it does not carry {}",
                super::MANAGED_LABEL
            ));
            continue;
        }
        api.delete(&target.name, &DeleteParams::default())
            .await
            .map_err(kube_error(format!("deleting {id}")))?;
        let uid = live.metadata.uid.clone().unwrap_or_default();
        match tokio::time::timeout(
            wait,
            await_condition(api.clone(), &target.name, conditions::is_deleted(&uid)),
        )
        .await
        {
            Ok(Ok(_)) => {}
            _ => {
                return Err(Error::Wait {
                    what: format!("{id} to be deleted"),
                    last: "it is still there (a finalizer?)".to_owned(),
                });
            }
        }
        progress(&format!("deleted {id}"));
        deleted.push(id);
    }

    let now = snapshot(client, &journal.nginx).await?;
    let mut restored = Vec::new();
    for name in differences(&backup, &now) {
        restore(client, &backup, &now, &name).await?;
        progress(&format!("restored {name} from the backup"));
        restored.push(name);
    }
    let after = snapshot(client, &journal.nginx).await?;
    let remaining = differences(&backup, &after);
    if !remaining.is_empty() {
        return Err(refused(
            journal_path,
            format!(
                "after the rollback these still differ from the backup {}: {}; compare them by hand",
                journal.backup.display(),
                remaining.join(", ")
            ),
        ));
    }
    journal.stage = Stage::RolledBack;
    journal.note("rolled back: the Ingresses and ingress-nginx's objects match the backup");
    journal.save(journal_path)?;
    Ok(RolledBack { deleted, restored })
}

/// Puts one object back as the backup has it (its labels, annotations and content), on top of
/// the live object's bookkeeping; re-creates it when it is gone.
async fn restore(
    client: &kube::Client,
    backup: &Backup,
    now: &Backup,
    name: &str,
) -> Result<(), Error> {
    let (kind, rest) = name.split_once(' ').unwrap_or((name, ""));
    let (namespace, object_name) = rest.split_once('/').unwrap_or(("", rest));
    let wanted = if kind == "Ingress" {
        backup.ingresses.iter().find(|i| {
            i.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
                && i.pointer("/metadata/name").and_then(Value::as_str) == Some(object_name)
        })
    } else {
        backup.nginx.get(name).filter(|v| !v.is_null())
    };
    let current = if kind == "Ingress" {
        now.ingresses.iter().find(|i| {
            i.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
                && i.pointer("/metadata/name").and_then(Value::as_str) == Some(object_name)
        })
    } else {
        now.nginx.get(name).filter(|v| !v.is_null())
    };
    let Some(wanted) = wanted else {
        // It did not exist before: something else created it since; leave it, the comparison
        // names it.
        return Ok(());
    };
    let mut body = wanted.clone();
    if let Some(metadata) = body["metadata"].as_object_mut() {
        metadata.remove("managedFields");
        metadata.remove("uid");
        metadata.remove("creationTimestamp");
        metadata.remove("generation");
        match current {
            Some(current) => {
                metadata.insert(
                    "resourceVersion".to_owned(),
                    current["metadata"]["resourceVersion"].clone(),
                );
            }
            None => {
                metadata.remove("resourceVersion");
            }
        }
    }
    if let Some(object) = body.as_object_mut() {
        object.remove("status");
    }
    let what = format!("restoring {name}");
    let pp = PostParams::default();
    macro_rules! put {
        ($ty:ty, $api:expr) => {{
            let api: Api<$ty> = $api;
            let typed: $ty = serde_json::from_value(body).map_err(|e| Error::Wait {
                what: what.clone(),
                last: e.to_string(),
            })?;
            if current.is_some() {
                api.replace(object_name, &pp, &typed)
                    .await
                    .map_err(kube_error(what))?;
            } else {
                api.create(&pp, &typed).await.map_err(kube_error(what))?;
            }
        }};
    }
    match kind {
        "Ingress" => put!(Ingress, Api::namespaced(client.clone(), namespace)),
        "Service" => put!(Service, Api::namespaced(client.clone(), namespace)),
        "Deployment" => put!(Deployment, Api::namespaced(client.clone(), namespace)),
        "ConfigMap" => put!(ConfigMap, Api::namespaced(client.clone(), namespace)),
        "IngressClass" => put!(IngressClass, Api::all(client.clone())),
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate_ingress::{Layout, ProbeTarget};

    fn target(namespace: &str, host: &str) -> ProbeTarget {
        ProbeTarget {
            namespace: namespace.to_owned(),
            host: host.to_owned(),
            path: "/".to_owned(),
            tls: false,
        }
    }

    fn journal_at(stage: Stage, probe: Option<ProbeReport>) -> MigrateJournal {
        MigrateJournal {
            stage,
            backup: PathBuf::from("backup.json"),
            nginx: IngressNginx::default(),
            address: AddressMode::Existing,
            created: Vec::new(),
            gateway_addresses: [("shop/cilium".to_owned(), "198.51.100.7".to_owned())].into(),
            nginx_addresses: vec!["192.0.2.10".to_owned()],
            take_over: None,
            take_over_pool: None,
            hosts: vec!["shop.example.com".to_owned(), "api.example.com".to_owned()],
            probe,
            events: Vec::new(),
        }
    }

    /// A client that is never reached: these cut-overs decide from the journal alone.
    fn unreachable_client() -> kube::Client {
        let config = kube::Config::new(
            "http://127.0.0.1:9"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// cutover is refused without a probe and while it found a difference (the journal stays
    /// at Applied); with a clean probe and no IP to move it lists the DNS changes and records
    /// the cut-over.
    #[tokio::test]
    async fn cutover_needs_a_clean_probe_and_lists_dns_changes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("journal.json");
        let client = unreachable_client();
        let mut progress = |_: &str| {};
        let wait = Duration::from_secs(1);

        journal_at(Stage::Applied, None)
            .save(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let error = cutover(&client, &path, false, wait, &mut progress)
            .await
            .expect_err("no probe");
        assert!(error.to_string().contains("apply --probe"), "{error}");

        let difference = super::super::probe::Difference {
            scheme: "http".into(),
            host: "shop.example.com".into(),
            path: "/cart".into(),
            nginx: super::super::probe::Answer::Failed("x".into()),
            gateway: super::super::probe::Answer::Failed("y".into()),
        };
        let dirty = ProbeReport {
            compared: 3,
            differences: vec![difference],
        };
        journal_at(Stage::Applied, Some(dirty))
            .save(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let error = cutover(&client, &path, false, wait, &mut progress)
            .await
            .expect_err("a difference");
        assert!(
            error.to_string().contains("http://shop.example.com/cart"),
            "{error}"
        );
        let stage = MigrateJournal::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|j| j.stage);
        assert_eq!(stage, Some(Stage::Applied));

        let clean = ProbeReport {
            compared: 3,
            differences: Vec::new(),
        };
        journal_at(Stage::Applied, Some(clean))
            .save(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let done = cutover(&client, &path, false, wait, &mut progress)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            done,
            CutOver::Dns(vec![
                (
                    "api.example.com".into(),
                    "192.0.2.10".into(),
                    "198.51.100.7".into()
                ),
                (
                    "shop.example.com".into(),
                    "192.0.2.10".into(),
                    "198.51.100.7".into()
                ),
            ])
        );
        let stage = MigrateJournal::load(&path)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|j| j.stage);
        assert_eq!(stage, Some(Stage::CutOver));

        journal_at(Stage::Applying, None)
            .save(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let error = cutover(&client, &path, true, wait, &mut progress)
            .await
            .expect_err("unfinished apply");
        assert!(
            error.to_string().contains("needs a finished apply"),
            "{error}"
        );
    }

    /// Per namespace, each host is probed through its own namespace's Gateway; a Gateway
    /// without an IP is an error naming the flag, never a silent skip.
    #[test]
    fn each_host_is_probed_through_its_namespaces_gateway() {
        let plan = Plan {
            nginx_addresses: vec!["ingress.example.com".into(), "192.0.2.10".into()],
            targets: vec![
                target("blog", "blog.example.com"),
                target("shop", "shop.example.com"),
            ],
            ..Plan::default()
        };
        let mut journal = MigrateJournal {
            stage: Stage::Applied,
            backup: PathBuf::from("backup.json"),
            nginx: IngressNginx::default(),
            address: AddressMode::Existing,
            created: Vec::new(),
            gateway_addresses: [
                ("blog/cilium".to_owned(), "192.0.2.2".to_owned()),
                ("shop/cilium".to_owned(), "192.0.2.1".to_owned()),
            ]
            .into(),
            nginx_addresses: Vec::new(),
            take_over: None,
            take_over_pool: None,
            hosts: Vec::new(),
            probe: None,
            events: Vec::new(),
        };
        let options = MigrateOptions {
            convert: crate::convert::ConvertOptions::default(),
            layout: Layout::PerNamespace,
            address: AddressMode::Existing,
            nginx: IngressNginx::default(),
        };
        let probe = ProbeOptions {
            nginx: None,
            gateway: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
        };
        let groups =
            probe_groups(&plan, &journal, &options, &probe).unwrap_or_else(|e| panic!("{e}"));
        let seen: Vec<(String, String, Vec<String>)> = groups
            .iter()
            .map(|(n, g, t)| {
                (
                    n.http.to_string(),
                    g.http.to_string(),
                    t.iter().map(|t| t.host.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "192.0.2.10:80".to_owned(),
                    "192.0.2.2:80".to_owned(),
                    vec!["blog.example.com".to_owned()]
                ),
                (
                    "192.0.2.10:80".to_owned(),
                    "192.0.2.1:80".to_owned(),
                    vec!["shop.example.com".to_owned()]
                ),
            ]
        );
        journal.gateway_addresses.remove("shop/cilium");
        let error = probe_groups(&plan, &journal, &options, &probe).expect_err("no address");
        assert!(error.to_string().contains("Gateway shop/cilium"), "{error}");
        assert!(error.to_string().contains("--probe-gateway"), "{error}");
    }
}
