//! Cluster fixtures: what a Kubespray-installed Cilium leaves in a cluster.
//!
//! What Kubespray itself applies comes from Kubespray's own output, never from a generator here
//! (`rendered.rs`): the template era (≤ v2.27) is the `objects.yaml` its role templates rendered
//! for an inventory, applied client-side from the file with `kubectl apply` ([`template_era`]);
//! the cilium-cli era (≥ v2.28) is its rendered `values.yaml` installed from a released chart
//! archive the way cilium-cli does ([`cilium_cli_era`]). Tests find both through the `upstream`
//! crate.
//!
//! Generated here, from a few [`FixtureOptions`], is only what no released artefact carries
//! because a running Cilium creates it: the CRDs the operator registers (`crds.rs`), the custom
//! resources of the agents and the user's policies (`resources.rs`, [`cilium_custom_resources`]),
//! and the Secrets of the Hubble certgen Job (`certgen.rs`).

mod certgen;
mod crds;
mod kubectl;
mod meta;
mod rendered;
mod resources;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::Value;

pub use kubectl::{apply, missing_objects};
pub use rendered::{
    CHART_RELEASE, CHART_RELEASE_NAMESPACE, CiliumCliInstall, cilium_cli_era,
    cilium_cli_values_args, host_and_port, read_objects, template_era,
};

/// Namespace of every namespaced Cilium object.
pub const KUBE_SYSTEM: &str = "kube-system";

/// How Cilium allocates security identities (`cilium_identity_allocation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAllocation {
    /// Identities live in etcd (Kubespray ≤ v2.27's default); no CiliumIdentity objects exist.
    Kvstore,
    /// Identities are CiliumIdentity custom resources.
    Crd,
}

impl IdentityAllocation {
    /// The value of `identity-allocation-mode` in `cilium-config`.
    pub fn as_config_value(self) -> &'static str {
        match self {
            IdentityAllocation::Kvstore => "kvstore",
            IdentityAllocation::Crd => "crd",
        }
    }
}

/// One cluster node, as Kubespray's inventory names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureNode {
    /// The Kubernetes node name (`node1`, ...).
    pub name: String,
    /// The node's InternalIP (also its etcd address when it is a control-plane node).
    pub internal_ip: Ipv4Addr,
}

/// What the generated run-time objects describe: the nodes, the IPAM pool and identity mode
/// the agents work with, and the user's demo workload and policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureOptions {
    /// `cilium_identity_allocation_mode`: CiliumIdentity objects exist only in CRD mode.
    pub identity_allocation: IdentityAllocation,
    /// `cilium_pool_cidr` (cluster-pool IPAM).
    pub pool_cidr: String,
    /// `cilium_pool_mask_size`: the prefix length of each node's pod CIDR.
    pub pool_mask_size: u8,
    /// `cilium_cluster_name`.
    pub cluster_name: String,
    /// The cluster's nodes; the first one is the control plane (and the etcd member).
    pub nodes: Vec<FixtureNode>,
    /// The CIDR of the `CiliumLoadBalancerIPPool` the fixture creates.
    pub lb_pool_cidr: String,
    /// The namespace of the demo pods (one per node) that get CiliumEndpoints.
    pub demo_namespace: String,
}

impl Default for FixtureOptions {
    /// Kubespray v2.27.1's role defaults (kvstore identities, 10.233.64.0/18 in /24s, cluster
    /// `default`) on three nodes named like its sample inventory.
    fn default() -> Self {
        FixtureOptions {
            identity_allocation: IdentityAllocation::Kvstore,
            pool_cidr: "10.233.64.0/18".to_owned(),
            pool_mask_size: 24,
            cluster_name: "default".to_owned(),
            nodes: FixtureOptions::nodes_named(["node1", "node2", "node3"]),
            lb_pool_cidr: "10.5.0.0/24".to_owned(),
            demo_namespace: "demo".to_owned(),
        }
    }
}

impl FixtureOptions {
    /// Nodes with the given names and InternalIPs 10.0.0.11, 10.0.0.12, ... (the addresses of
    /// the rendered cases' inventory).
    pub fn nodes_named<I, S>(names: I) -> Vec<FixtureNode>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        names
            .into_iter()
            .zip(11u8..)
            .map(|(name, host)| FixtureNode {
                name: name.into(),
                internal_ip: Ipv4Addr::new(10, 0, 0, host),
            })
            .collect()
    }

    /// The defaults with `count` nodes named like Kubespray's inventory (`node1`, `node2`, ...).
    pub fn with_node_count(count: usize) -> Self {
        FixtureOptions {
            nodes: FixtureOptions::nodes_named((1..=count).map(|i| format!("node{i}"))),
            ..FixtureOptions::default()
        }
    }

    /// Checks the options and resolves the per-node pod CIDRs.
    fn validate(&self) -> Result<Vec<PodCidr>, FixtureError> {
        if self.nodes.is_empty() {
            return Err(FixtureError::InvalidOption {
                option: "nodes",
                value: "[]".to_owned(),
                fix: "give at least one node (the first one is the control plane)",
            });
        }
        let pool = parse_cidr("pool_cidr", &self.pool_cidr)?;
        parse_cidr("lb_pool_cidr", &self.lb_pool_cidr)?;
        pool.split(self.pool_mask_size, self.nodes.len())
            .ok_or_else(|| FixtureError::InvalidOption {
                option: "pool_mask_size",
                value: format!(
                    "{} (pool {}, {} nodes)",
                    self.pool_mask_size,
                    self.pool_cidr,
                    self.nodes.len()
                ),
                fix: "the mask size must be at least the pool's prefix length, at most 30, and \
                      leave one pod CIDR per node",
            })
    }
}

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PodCidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl PodCidr {
    /// The first `count` sub-blocks of length `mask`, or `None` if they do not fit.
    fn split(self, mask: u8, count: usize) -> Option<Vec<PodCidr>> {
        if mask < self.prefix || mask > 30 {
            return None;
        }
        let available = 1u64 << (mask - self.prefix);
        if count as u64 > available {
            return None;
        }
        let base = u32::from(self.network);
        let step = 1u64 << (32 - mask);
        (0..count as u64)
            .map(|i| {
                let network = u32::try_from(u64::from(base) + i * step).ok()?;
                Some(PodCidr {
                    network: Ipv4Addr::from(network),
                    prefix: mask,
                })
            })
            .collect()
    }

    /// The `n`-th address of the block (0 is the network address).
    fn host(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }
}

impl std::fmt::Display for PodCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn parse_cidr(option: &'static str, value: &str) -> Result<PodCidr, FixtureError> {
    let invalid = || FixtureError::InvalidOption {
        option,
        value: value.to_owned(),
        fix: "write an IPv4 network in CIDR notation with no host bits set, e.g. `10.233.64.0/18`",
    };
    let (address, prefix) = value.split_once('/').ok_or_else(invalid)?;
    let network: Ipv4Addr = address.parse().map_err(|_| invalid())?;
    let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
    if prefix > 32 {
        return Err(invalid());
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    if u32::from(network) & host_bits != 0 {
        return Err(invalid());
    }
    Ok(PodCidr { network, prefix })
}

/// Errors from generating, rendering or applying fixtures.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    /// A fixture option has a value the generator cannot use.
    #[error("fixture option `{option}` = {value:?} is invalid: {fix}")]
    InvalidOption {
        /// The option's field name in `FixtureOptions`.
        option: &'static str,
        /// The value given.
        value: String,
        /// How to fix it.
        fix: &'static str,
    },
    /// A tool (`kubectl`, `helm`) could not be started.
    #[error("cannot run {program}: {source} (build the tools with `cargo xtask testbed build`)")]
    Spawn {
        /// The program's path.
        program: PathBuf,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A tool ran and failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Command {
        /// The command line, for the message only (it was run as an argument vector).
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its standard error.
        stderr: String,
    },
    /// The fixtures could not be written as YAML.
    #[error("cannot write the fixtures as YAML: {0}")]
    Serialize(#[from] serde_saphyr::SerializeError),
    /// A tool's YAML output could not be read.
    #[error("cannot read the YAML output of `{command}`: {message}")]
    Parse {
        /// The command whose output it was.
        command: String,
        /// The parser's message.
        message: String,
    },
    /// A fixture file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Hubble certificates could not be generated.
    #[error("cannot generate the Hubble certificates: {0}")]
    Certificate(String),
}

/// The Cilium CRDs and custom resources shared by both eras (never part of a Helm release).
pub fn cilium_custom_resources(options: &FixtureOptions) -> Result<Vec<Value>, FixtureError> {
    let pod_cidrs = options.validate()?;
    let mut objects = crds::cilium_crds();
    objects.extend(resources::custom_resources(options, &pod_cidrs));
    Ok(objects)
}

/// A multi-document YAML stream (`---` before each document), as `kubectl apply -f` reads it.
pub fn to_yaml_stream(objects: &[Value]) -> Result<String, FixtureError> {
    let mut stream = String::new();
    for object in objects {
        stream.push_str("---\n");
        stream.push_str(&serde_saphyr::to_string(object)?);
        if !stream.ends_with('\n') {
            stream.push('\n');
        }
    }
    Ok(stream)
}

/// What names one object in the cluster: `apiVersion`, `kind`, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `apiVersion`, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `DaemonSet`.
    pub kind: String,
    /// `metadata.namespace`, if the object is namespaced.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// The reference of a generated or rendered object (missing fields become empty).
    pub fn of(object: &Value) -> ObjectRef {
        let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
        ObjectRef {
            api_version: text("/apiVersion").unwrap_or_default().to_owned(),
            kind: text("/kind").unwrap_or_default().to_owned(),
            namespace: text("/metadata/namespace").map(str::to_owned),
            name: text("/metadata/name").unwrap_or_default().to_owned(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}
