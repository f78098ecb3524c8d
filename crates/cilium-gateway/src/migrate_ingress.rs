//! `migrate-ingress`: move the traffic of ingress-nginx to Cilium's Gateway API in stages.
//!
//! - [`plan()`] (pure, read-only): what `apply` creates, from [`convert()`](crate::convert::convert)'s
//!   [`Conversion`](crate::convert::Conversion): the Gateways in the chosen [`Layout`] (one per namespace, or one shared
//!   Gateway whose listeners admit the routes' namespaces, with ReferenceGrants for TLS Secrets
//!   in other namespaces), the routes, and what gives the Gateway an address ([`AddressMode`]:
//!   an LB-IPAM pool announced by L2 or BGP, ingress-nginx's own external IP taken over at
//!   cut-over, host-network mode, or whatever provider the cluster already has).
//! - [`run`]: `apply` (backup, journal, create beside ingress-nginx, wait until Programmed and
//!   Accepted, probe), `cutover` (move the IP, or print the DNS changes) and `rollback`.
//! - [`probe`]: every host and path through both front doors, compared.

pub mod probe;
pub mod run;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use gateway_api::gateways::{
    Gateway, GatewayAddresses, GatewayListenersAllowedRoutes,
    GatewayListenersAllowedRoutesNamespaces, GatewayListenersAllowedRoutesNamespacesFrom,
    GatewayListenersAllowedRoutesNamespacesSelector,
    GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions,
};
use gateway_api::referencegrants::{
    ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::Ingress;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::convert::Warning;

pub use probe::{Difference, FrontDoor, ProbeReport, ProbeTarget};
pub use run::{
    Applied, Backup, CutOver, MigrateJournal, ProbeOptions, RolledBack, Stage, apply, cutover,
    read_facts, rollback,
};

/// The label every object `apply` creates carries, so that they can be found and told apart
/// from the operator's own.
pub const MANAGED_LABEL: &str = "cilium-migrate.io/migrate-ingress";
/// The name of the LB-IPAM pool and the L2 announcement policy `apply` creates.
pub const POOL_NAME: &str = "cilium-migrate-ingress";
/// The annotation LB-IPAM reads for the IPs a Service asks for.
pub const LBIPAM_IPS_ANNOTATION: &str = "lbipam.cilium.io/ips";

/// Where the Gateways live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "layout")]
pub enum Layout {
    /// One Gateway per namespace with Ingresses (convert's output as it is).
    PerNamespace,
    /// One Gateway in `namespace`; its listeners admit routes from the Ingresses' namespaces and
    /// ReferenceGrants let it read their TLS Secrets.
    Shared {
        /// The Gateway's namespace.
        namespace: String,
    },
}

/// What gives the Gateway an address without a cloud load balancer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum AddressMode {
    /// The LoadBalancer provider the cluster already has (LB-IPAM pools, MetalLB): nothing is
    /// created; cut-over prints the DNS changes.
    Existing,
    /// A new CiliumLoadBalancerIPPool with this CIDR, announced by a CiliumL2AnnouncementPolicy
    /// (or by BGP when the cluster runs Cilium's BGP control plane); cut-over prints the DNS
    /// changes.
    Pool {
        /// The block, as `10.0.0.240/29`.
        cidr: String,
    },
    /// ingress-nginx's external IP moves to the (shared) Gateway at cut-over, so DNS need not
    /// change.
    TakeOver,
    /// `gatewayAPI.hostNetwork.enabled` (Cilium 1.16+): Envoy listens on the nodes' ports.
    HostNetwork,
}

/// The ingress-nginx installation being replaced (names as its released manifests have them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressNginx {
    /// Its namespace (`ingress-nginx`).
    pub namespace: String,
    /// The controller's Service, Deployment and ConfigMap (`ingress-nginx-controller`).
    pub controller: String,
    /// Its IngressClass (`nginx`).
    pub ingress_class: String,
}

impl Default for IngressNginx {
    fn default() -> Self {
        IngressNginx {
            namespace: "ingress-nginx".to_owned(),
            controller: "ingress-nginx-controller".to_owned(),
            ingress_class: "nginx".to_owned(),
        }
    }
}

/// One LB-IPAM pool's blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFacts {
    /// The pool's name.
    pub name: String,
    /// Its CIDRs (and `start-stop` ranges, as `start-stop`).
    pub blocks: Vec<String>,
}

/// What `plan` looks at, read once ([`read_facts`]).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Every Ingress (all classes; convert leaves the others alone).
    pub ingresses: Vec<Ingress>,
    /// Services, for named ports.
    pub services: Vec<Service>,
    /// ingress-nginx's controller Service, when it exists.
    pub nginx_service: Option<Service>,
    /// The LB-IPAM pools (`None`: the CRD is not installed).
    pub pools: Option<Vec<PoolFacts>>,
    /// Whether the L2 announcement policy CRD is installed.
    pub l2_policy_crd: bool,
    /// `cilium-config`'s `enable-bgp-control-plane`.
    pub bgp: bool,
    /// `cilium-config`'s `gateway-api-hostnetwork-enabled`.
    pub host_network: bool,
    /// The ConfigMaps the Ingresses' `custom-headers` annotations name (those that exist).
    pub header_config_maps: Vec<ConfigMap>,
}

/// What to migrate and how.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Convert's options (IngressClass, GatewayClass).
    pub convert: crate::convert::ConvertOptions,
    /// Where the Gateways live.
    pub layout: Layout,
    /// Where their address comes from.
    pub address: AddressMode,
    /// The ingress-nginx installation.
    pub nginx: IngressNginx,
}

/// Everything `apply` would create, and how traffic moves at cut-over.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// In creation order: LB-IPAM pool and L2 policy, ReferenceGrants, Gateways, routes.
    pub objects: Vec<Value>,
    /// Convert's warnings and the plan's own.
    pub warnings: Vec<Warning>,
    /// ingress-nginx's current external addresses.
    pub nginx_addresses: Vec<String>,
    /// The address the Gateway takes over at cut-over (take-over mode).
    pub take_over: Option<String>,
    /// A `/32` (`/128`) pool to create at cut-over because no pool contains the taken-over IP.
    pub take_over_pool: Option<String>,
    /// Every host and path, as the probe requests them.
    pub targets: Vec<ProbeTarget>,
    /// The Gateways (`namespace/name`).
    pub gateways: Vec<String>,
}

/// Why a plan cannot be made; nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The address mode does not fit the cluster.
    #[error("--address {mode}: {problem}")]
    Address {
        /// The mode given.
        mode: &'static str,
        /// What is wrong and the fix.
        problem: String,
    },
    /// There is nothing to migrate.
    #[error(
        "no Ingress of class {0} to migrate; pass --ingress-class with the class ingress-nginx serves"
    )]
    Nothing(String),
}

/// ingress-nginx's external addresses: `status.loadBalancer.ingress`, `spec.loadBalancerIP`,
/// `spec.externalIPs`, in that order, without repeats.
pub fn nginx_addresses(service: &Service) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let status = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()));
    let spec = service.spec.as_ref();
    let requested = spec.and_then(|s| s.load_balancer_ip.clone());
    let external = spec
        .and_then(|s| s.external_ips.clone())
        .unwrap_or_default();
    for address in status.chain(requested).chain(external) {
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// Whether `ip` lies in one of `blocks` (`a.b.c.d/n` or `start-stop`).
pub fn block_contains(block: &str, ip: IpAddr) -> bool {
    if let Some((start, stop)) = block.split_once('-') {
        return match (
            start.trim().parse::<IpAddr>(),
            stop.trim().parse::<IpAddr>(),
        ) {
            (Ok(start), Ok(stop)) => start <= ip && ip <= stop,
            _ => false,
        };
    }
    let Some((base, len)) = block.split_once('/') else {
        return block.parse::<IpAddr>().is_ok_and(|b| b == ip);
    };
    let (Ok(base), Ok(len)) = (base.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (base, ip) {
        (IpAddr::V4(base), IpAddr::V4(ip)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(base) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(base), IpAddr::V6(ip)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(base) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// The pool containing `ip`, if any.
pub fn pool_containing<'a>(pools: &'a [PoolFacts], ip: &str) -> Option<&'a PoolFacts> {
    let ip: IpAddr = ip.parse().ok()?;
    pools
        .iter()
        .find(|p| p.blocks.iter().any(|b| block_contains(b, ip)))
}

/// The plan: pure over the facts.
pub fn plan(facts: &Facts, options: &MigrateOptions) -> Result<Plan, PlanError> {
    let convert_options = crate::convert::ConvertOptions {
        config_maps: facts.header_config_maps.clone(),
        ..options.convert.clone()
    };
    let conversion = crate::convert::convert(&facts.ingresses, &facts.services, &convert_options);
    let mut plan = Plan {
        warnings: conversion.warnings.clone(),
        nginx_addresses: facts
            .nginx_service
            .as_ref()
            .map(nginx_addresses)
            .unwrap_or_default(),
        targets: probe::targets(&facts.ingresses, &options.convert.ingress_class),
        ..Plan::default()
    };
    let (gateways, mut rest): (Vec<Value>, Vec<Value>) = conversion
        .objects
        .iter()
        .cloned()
        .partition(|o| o["kind"] == "Gateway");
    if gateways.is_empty() {
        return Err(PlanError::Nothing(options.convert.ingress_class.clone()));
    }
    let mut gateways: Vec<Gateway> = gateways
        .into_iter()
        .filter_map(|g| serde_json::from_value(g).ok())
        .collect();
    let mut grants = Vec::new();
    if let Layout::Shared { namespace } = &options.layout {
        let (shared, shared_grants) = share(
            &gateways,
            &mut rest,
            namespace,
            &options.convert.gateway_class,
            &mut plan.warnings,
        );
        gateways = vec![shared];
        grants = shared_grants;
    }

    let mut infrastructure = Vec::new();
    match &options.address {
        AddressMode::Existing => {
            if facts.pools.as_ref().is_none_or(Vec::is_empty) {
                plan.warnings.push(plan_warning(
                    "no CiliumLoadBalancerIPPool exists: the Gateways' Services get an address only from another provider (MetalLB, a cloud); otherwise pass --address pool=CIDR or --address take-over",
                ));
            }
        }
        AddressMode::Pool { cidr } => {
            let valid = cidr
                .split_once('/')
                .is_some_and(|(ip, len)| ip.parse::<IpAddr>().is_ok() && len.parse::<u8>().is_ok());
            if !valid {
                return Err(PlanError::Address {
                    mode: "pool=CIDR",
                    problem: format!("{cidr:?} is not a CIDR; pass one as 10.0.0.240/29"),
                });
            }
            if facts.pools.is_none() {
                return Err(PlanError::Address {
                    mode: "pool=CIDR",
                    problem: "the CiliumLoadBalancerIPPool CRD is not installed (Cilium 1.13+ installs it; is the operator running?)".to_owned(),
                });
            }
            infrastructure.push(pool_object(POOL_NAME, cidr));
            if facts.bgp {
                plan.warnings.push(plan_warning(format!(
                    "BGP control plane is on: advertise {cidr} (a CiliumBGPAdvertisement of Service LoadBalancerIP addresses, or the peering policy's serviceSelector) so that the Gateway's address is reachable"
                )));
            } else if facts.l2_policy_crd {
                infrastructure.push(l2_policy_object(POOL_NAME));
            } else {
                plan.warnings.push(plan_warning(
                    "neither BGP nor L2 announcements are available (no CiliumL2AnnouncementPolicy CRD): set l2announcements.enabled: true, or announce the pool by other means",
                ));
            }
        }
        AddressMode::TakeOver => {
            if gateways.len() != 1 {
                return Err(PlanError::Address {
                    mode: "take-over",
                    problem: format!(
                        "{} Gateways would share one IP; pass --layout shared",
                        gateways.len()
                    ),
                });
            }
            let Some(ip) = plan
                .nginx_addresses
                .iter()
                .find(|a| a.parse::<IpAddr>().is_ok())
                .cloned()
            else {
                return Err(PlanError::Address {
                    mode: "take-over",
                    problem: format!(
                        "Service {}/{} has no external IP (status.loadBalancer.ingress, spec.loadBalancerIP, spec.externalIPs); pass --address pool=CIDR and change DNS instead",
                        options.nginx.namespace, options.nginx.controller
                    ),
                });
            };
            let Some(pools) = &facts.pools else {
                return Err(PlanError::Address {
                    mode: "take-over",
                    problem: "the CiliumLoadBalancerIPPool CRD is not installed, so Cilium cannot assign the IP to the Gateway".to_owned(),
                });
            };
            if pools.is_empty() {
                plan.warnings.push(plan_warning(
                    "no LB-IPAM pool exists: until cutover the Gateway has no address of its own, so apply waits in vain for it to be Programmed; add a pool (or pass --address pool=CIDR) for the time beside ingress-nginx",
                ));
            }
            if pool_containing(pools, &ip).is_none() {
                let len = if ip.contains(':') { 128 } else { 32 };
                plan.take_over_pool = Some(format!("{ip}/{len}"));
            }
            plan.take_over = Some(ip);
        }
        AddressMode::HostNetwork => {
            if !facts.host_network {
                return Err(PlanError::Address {
                    mode: "host-network",
                    problem: "cilium-config has gateway-api-hostnetwork-enabled off: set gatewayAPI.hostNetwork.enabled: true on the release (Cilium 1.16+) first".to_owned(),
                });
            }
        }
    }
    plan.gateways = gateways
        .iter()
        .map(|g| {
            format!(
                "{}/{}",
                g.metadata.namespace.clone().unwrap_or_default(),
                g.metadata.name.clone().unwrap_or_default()
            )
        })
        .collect();
    plan.objects = infrastructure;
    plan.objects.extend(grants.iter().map(to_value));
    plan.objects.extend(gateways.iter().map(to_value));
    plan.objects.extend(rest);
    for object in &mut plan.objects {
        label(object);
    }
    plan.warnings.sort();
    plan.warnings.dedup();
    Ok(plan)
}

fn plan_warning(message: impl Into<String>) -> Warning {
    Warning {
        ingress: "(plan)".to_owned(),
        annotation: None,
        message: message.into(),
    }
}

fn to_value(typed: &impl Serialize) -> Value {
    serde_json::to_value(typed).unwrap_or_default()
}

fn label(object: &mut Value) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(MANAGED_LABEL.to_owned(), json!("true"));
        }
    }
}

/// One Gateway in `namespace` with every Gateway's listeners: identical listeners are shared,
/// a clash of names with different settings is renamed `<namespace>-<name>` (and its routes'
/// `sectionName` follows); listeners admit routes from the Ingresses' namespaces only; TLS
/// Secrets elsewhere get a ReferenceGrant.
fn share(
    gateways: &[Gateway],
    routes: &mut [Value],
    namespace: &str,
    class: &str,
    warnings: &mut Vec<Warning>,
) -> (Gateway, Vec<ReferenceGrant>) {
    let namespaces: BTreeSet<String> = gateways
        .iter()
        .filter_map(|g| g.metadata.namespace.clone())
        .collect();
    let allowed = GatewayListenersAllowedRoutes {
        namespaces: Some(GatewayListenersAllowedRoutesNamespaces {
            from: Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector),
            selector: Some(GatewayListenersAllowedRoutesNamespacesSelector {
                match_expressions: Some(vec![
                    GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions {
                        key: "kubernetes.io/metadata.name".to_owned(),
                        operator: "In".to_owned(),
                        values: Some(namespaces.iter().cloned().collect()),
                    },
                ]),
                match_labels: None,
            }),
        }),
        kinds: None,
    };
    let mut listeners: BTreeMap<String, gateway_api::gateways::GatewayListeners> = BTreeMap::new();
    let mut secrets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // (namespace, old section) → new section
    let mut renamed: BTreeMap<(String, String), String> = BTreeMap::new();
    for gateway in gateways {
        let from = gateway.metadata.namespace.clone().unwrap_or_default();
        for listener in &gateway.spec.listeners {
            let mut listener = listener.clone();
            for reference in listener
                .tls
                .iter_mut()
                .flat_map(|t| t.certificate_refs.iter_mut().flatten())
            {
                if from != namespace {
                    reference.namespace = Some(from.clone());
                    secrets
                        .entry(from.clone())
                        .or_default()
                        .insert(reference.name.clone());
                }
            }
            listener.allowed_routes = Some(allowed.clone());
            match listeners.get(&listener.name) {
                None => {
                    listeners.insert(listener.name.clone(), listener);
                }
                Some(existing) if *existing == listener => {}
                Some(_) => {
                    let old = listener.name.clone();
                    let new = format!("{from}-{old}");
                    warnings.push(Warning {
                        ingress: format!("{from}/*"),
                        annotation: None,
                        message: format!(
                            "listener {old} of namespace {from} differs from another namespace's (the same host with another certificate?): it becomes {new}, and the two listeners on one hostname conflict until one is removed"
                        ),
                    });
                    listener.name = new.clone();
                    renamed.insert((from.clone(), old), new.clone());
                    listeners.insert(new, listener);
                }
            }
        }
    }
    for route in routes.iter_mut() {
        let route_namespace = route
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for parent in route
            .pointer_mut("/spec/parentRefs")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            parent["namespace"] = json!(namespace);
            let section = parent["sectionName"].as_str().map(str::to_owned);
            if let Some(section) = section
                && let Some(new) = renamed.get(&(route_namespace.clone(), section))
            {
                parent["sectionName"] = json!(new);
            }
        }
    }
    let mut shared = Gateway::new(
        class,
        gateway_api::gateways::GatewaySpec {
            gateway_class_name: class.to_owned(),
            listeners: listeners.into_values().collect(),
            ..gateway_api::gateways::GatewaySpec::default()
        },
    );
    shared.metadata.namespace = Some(namespace.to_owned());
    let grants = secrets
        .into_iter()
        .map(|(from_namespace, names)| {
            let mut grant = ReferenceGrant::new(
                &format!("{class}-gateway-{namespace}-secrets"),
                ReferenceGrantSpec {
                    from: vec![ReferenceGrantFrom {
                        group: "gateway.networking.k8s.io".to_owned(),
                        kind: "Gateway".to_owned(),
                        namespace: namespace.to_owned(),
                    }],
                    to: names
                        .into_iter()
                        .map(|name| ReferenceGrantTo {
                            group: String::new(),
                            kind: "Secret".to_owned(),
                            name: Some(name),
                        })
                        .collect(),
                },
            );
            grant.metadata.namespace = Some(from_namespace);
            grant
        })
        .collect();
    (shared, grants)
}

/// Cilium's LB-IPAM pool, as its CRD declares it (`spec.blocks`, Cilium 1.15+).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct CiliumObject<S: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: S,
}

#[derive(Debug, Clone, Serialize)]
struct PoolSpec {
    blocks: Vec<PoolBlock>,
}

#[derive(Debug, Clone, Serialize)]
struct PoolBlock {
    cidr: String,
}

/// `camelCase` spells these `loadBalancerIPs` and `externalIPs`, as the CRD does.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct L2PolicySpec {
    load_balancer_i_ps: bool,
    external_i_ps: bool,
}

fn named(name: &str) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

/// A CiliumLoadBalancerIPPool with one block (its apiVersion is replaced by the version the
/// cluster serves when it is applied).
pub fn pool_object(name: &str, cidr: &str) -> Value {
    to_value(&CiliumObject {
        api_version: "cilium.io/v2alpha1",
        kind: "CiliumLoadBalancerIPPool",
        metadata: named(name),
        spec: PoolSpec {
            blocks: vec![PoolBlock {
                cidr: cidr.to_owned(),
            }],
        },
    })
}

/// A CiliumL2AnnouncementPolicy announcing LoadBalancer IPs on every node and interface.
fn l2_policy_object(name: &str) -> Value {
    to_value(&CiliumObject {
        api_version: "cilium.io/v2alpha1",
        kind: "CiliumL2AnnouncementPolicy",
        metadata: named(name),
        spec: L2PolicySpec {
            load_balancer_i_ps: true,
            external_i_ps: false,
        },
    })
}

/// The Gateway's `spec.addresses` for one IP.
pub fn gateway_addresses(ip: &str) -> Vec<GatewayAddresses> {
    vec![GatewayAddresses {
        r#type: Some("IPAddress".to_owned()),
        value: Some(ip.to_owned()),
    }]
}

/// Convert's options for this cluster: the Cilium minor of the release (`check`'s facts) and the
/// channel, release and TLSRoute CRD of the installed Gateway API CRDs, so that every route kind
/// and filter `apply` creates is one the cluster serves and Cilium implements.
pub fn convert_options_for(
    state: &crate::ClusterState,
    ingress_class: &str,
    gateway_class: &str,
) -> crate::convert::ConvertOptions {
    let defaults = crate::convert::ConvertOptions::default();
    let minor = state
        .cilium_version
        .as_deref()
        .and_then(|v| v.trim_start_matches('v').split('.').nth(1)?.parse().ok());
    let gateways = state.crd("gateways");
    crate::convert::ConvertOptions {
        ingress_class: ingress_class.to_owned(),
        gateway_class: gateway_class.to_owned(),
        cilium_minor: minor.unwrap_or(defaults.cilium_minor),
        crd_channel: gateways
            .and_then(|c| c.channel.as_deref())
            .and_then(crate::bundle::Channel::parse)
            .unwrap_or(defaults.crd_channel),
        crd_version: gateways
            .and_then(|c| c.bundle_version.as_deref())
            .and_then(crate::bundle::BundleVersion::parse)
            .unwrap_or(defaults.crd_version),
        tls_route_crd: state.crd("tlsroutes").is_some(),
        ..defaults
    }
}

/// `plan`'s text for the operator.
pub fn plan_text(plan: &Plan) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "apply would create, beside ingress-nginx:");
    for object in &plan.objects {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {namespace}{}",
            object["kind"].as_str().unwrap_or_default(),
            object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "ingress-nginx's address: {}",
        if plan.nginx_addresses.is_empty() {
            "none".to_owned()
        } else {
            plan.nginx_addresses.join(", ")
        }
    );
    match (&plan.take_over, &plan.take_over_pool) {
        (Some(ip), pool) => {
            let _ = writeln!(
                out,
                "cutover moves {ip} from ingress-nginx's Service to Gateway {}{}",
                plan.gateways.join(", "),
                pool.as_ref()
                    .map(|p| format!(
                        " (and creates pool {POOL_NAME}-takeover with {p}: no pool contains it)"
                    ))
                    .unwrap_or_default()
            );
        }
        (None, _) => {
            let _ = writeln!(
                out,
                "cutover prints the DNS changes: each host from ingress-nginx's address to its Gateway's"
            );
        }
    }
    let _ = writeln!(
        out,
        "the probe requests {} host/path pairs through both",
        plan.targets.len()
    );
    for warning in &plan.warnings {
        let _ = writeln!(
            out,
            "warning: {}: {}{}",
            warning.ingress,
            warning
                .annotation
                .as_ref()
                .map(|a| format!("{a}: "))
                .unwrap_or_default(),
            warning.message
        );
    }
    out
}

#[cfg(test)]
mod tests;
