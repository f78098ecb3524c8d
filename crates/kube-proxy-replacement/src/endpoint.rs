//! The API server endpoint the agents use once kube-proxy is gone (`k8sServiceHost` /
//! `k8sServicePort`): derived from the inventory as Kubespray wires each node group to the API
//! server, then proved against the cluster.
//!
//! Kubespray (`kubespray-defaults`, `kube_apiserver_endpoint`):
//! - `loadbalancer_apiserver` set: every node uses the external load balancer
//!   (`loadbalancer_apiserver.address`, `.port`, default `kube_apiserver_port`).
//! - else `loadbalancer_apiserver_localhost` (its default then): workers reach a local
//!   nginx/haproxy at `localhost:{loadbalancer_apiserver_port | kube_apiserver_port}`, control
//!   planes their own API server at `127.0.0.1:kube_apiserver_port` (bind address `0.0.0.0`). One
//!   value serves both only when the two ports are equal.
//! - else the first control plane's address and `kube_apiserver_port`.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};
use kubespray_config::{Inventory, Scope};
use serde_json::Value;

use crate::Error;

/// `HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Endpoint, String> {
        let bad = || format!("{text:?} is not HOST:PORT (e.g. 10.0.0.10:6443 or [fd00::10]:6443)");
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

/// How the nodes reach the API server, per the inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Wiring {
    /// `--api-server`.
    Given {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// `loadbalancer_apiserver`: every node uses it.
    External {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// `loadbalancer_apiserver_localhost`: a local proxy on workers, the local API server on
    /// control planes, on the same port.
    NodeLocal {
        /// `127.0.0.1:port`.
        endpoint: Endpoint,
    },
    /// Workers and control planes use different local ports: no single value fits.
    Split {
        /// Workers' `localhost:port`.
        workers: Endpoint,
        /// Control planes' `127.0.0.1:port`.
        control_planes: Endpoint,
    },
    /// The first control plane's address.
    FirstControlPlane {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its inventory name.
        host: String,
    },
}

impl Wiring {
    /// The one endpoint every node can use, if there is one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Wiring::Given { endpoint }
            | Wiring::External { endpoint }
            | Wiring::NodeLocal { endpoint }
            | Wiring::FirstControlPlane { endpoint, .. } => Some(endpoint),
            Wiring::Split { .. } => None,
        }
    }

    /// For people.
    pub fn describe(&self) -> String {
        match self {
            Wiring::Given { endpoint } => format!("{endpoint} (--api-server)"),
            Wiring::External { endpoint } => {
                format!(
                    "{endpoint} (loadbalancer_apiserver: every node uses the external load balancer)"
                )
            }
            Wiring::NodeLocal { endpoint } => format!(
                "{endpoint} (loadbalancer_apiserver_localhost: workers' local nginx/haproxy, control planes' own API server)"
            ),
            Wiring::Split {
                workers,
                control_planes,
            } => format!(
                "workers {workers} (local proxy), control planes {control_planes}: no single k8sServiceHost/Port"
            ),
            Wiring::FirstControlPlane { endpoint, host } => {
                format!("{endpoint} (the first control plane, {host})")
            }
        }
    }
}

/// A variable as Ansible takes it for a `k8s_cluster` host: the inventory file's group vars,
/// then the `group_vars` files, `all` before `k8s_cluster` (later wins).
fn var(inventory: &Inventory, name: &str) -> Option<(Value, String)> {
    const GROUPS: [&str; 3] = ["all", "k8s-cluster", "k8s_cluster"];
    let mut found = None;
    for group in GROUPS {
        if let Some(var) = inventory.groups.get(group).and_then(|g| g.vars.get(name)) {
            found = Some((var.value.clone(), var.file.display().to_string()));
        }
    }
    for group in GROUPS {
        for file in &inventory.vars_files {
            if file.scope == Scope::Group(group.to_owned())
                && let Some(value) = file.values.get(name)
            {
                found = Some((value.clone(), file.path.display().to_string()));
            }
        }
    }
    found
}

fn jinja(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.contains("{{"))
}

fn port_of(name: &str, found: Option<(Value, String)>, default: u16) -> Result<u16, Error> {
    match found {
        None => Ok(default),
        Some((value, file)) => {
            let port = match &value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            };
            port.and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| Error::Inventory {
                    problem: format!(
                        "{file}: {name} is {value}, not a port number{}; pass --api-server HOST:PORT",
                        if jinja(&value) { " (a Jinja expression is not evaluated)" } else { "" }
                    ),
                })
        }
    }
}

fn bool_of(name: &str, found: Option<(Value, String)>, default: bool) -> Result<bool, Error> {
    match found {
        None => Ok(default),
        Some((Value::Bool(b), _)) => Ok(b),
        Some((Value::String(s), file)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" => Ok(true),
            "false" | "no" => Ok(false),
            _ => Err(Error::Inventory {
                problem: format!(
                    "{file}: {name} is {s:?}, not true/false (a Jinja expression is not evaluated); pass --api-server HOST:PORT"
                ),
            }),
        },
        Some((value, file)) => Err(Error::Inventory {
            problem: format!("{file}: {name} is {value}, not true/false"),
        }),
    }
}

/// How the inventory wires the nodes to the API server.
pub fn derive(inventory: &Inventory) -> Result<Wiring, Error> {
    let api_port = port_of(
        "kube_apiserver_port",
        var(inventory, "kube_apiserver_port"),
        6443,
    )?;
    if let Some((lb, file)) = var(inventory, "loadbalancer_apiserver") {
        let plain = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|a| !a.is_empty() && !a.contains("{{"))
                .map(str::to_owned)
        };
        // The address when given (Kubespray also puts it in every node's /etc/hosts under the
        // domain name); else the domain name set explicitly, which DNS must then resolve.
        let address = plain(lb.get("address")).or_else(|| {
            plain(
                var(inventory, "apiserver_loadbalancer_domain_name")
                    .map(|(v, _)| v)
                    .as_ref(),
            )
        });
        let Some(address) = address else {
            return Err(Error::Inventory {
                problem: format!(
                    "{file}: loadbalancer_apiserver has no plain address (it is {lb}) and apiserver_loadbalancer_domain_name is not set; set loadbalancer_apiserver.address or pass --api-server HOST:PORT"
                ),
            });
        };
        let port = port_of(
            "loadbalancer_apiserver.port",
            lb.get("port").map(|p| (p.clone(), file.clone())),
            api_port,
        )?;
        return Ok(Wiring::External {
            endpoint: Endpoint {
                host: address,
                port,
            },
        });
    }
    let localhost = bool_of(
        "loadbalancer_apiserver_localhost",
        var(inventory, "loadbalancer_apiserver_localhost"),
        true,
    )?;
    if localhost {
        let lb_port = port_of(
            "loadbalancer_apiserver_port",
            var(inventory, "loadbalancer_apiserver_port"),
            api_port,
        )?;
        let bind = var(inventory, "kube_apiserver_bind_address")
            .and_then(|(v, _)| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "0.0.0.0".to_owned());
        let control_host = if bind == "0.0.0.0" {
            "127.0.0.1".to_owned()
        } else {
            bind
        };
        let workers = Endpoint {
            host: "127.0.0.1".to_owned(),
            port: lb_port,
        };
        let control_planes = Endpoint {
            host: control_host,
            port: api_port,
        };
        return Ok(if workers == control_planes {
            Wiring::NodeLocal { endpoint: workers }
        } else {
            Wiring::Split {
                workers,
                control_planes,
            }
        });
    }
    let first = inventory
        .hosts
        .iter()
        .find(|h| h.in_group("kube_control_plane"))
        .ok_or_else(|| Error::Inventory {
            problem: format!(
                "{}: no host in kube_control_plane; pass --api-server HOST:PORT",
                inventory.dir.display()
            ),
        })?;
    Ok(Wiring::FirstControlPlane {
        endpoint: Endpoint {
            host: first.access_address().to_owned(),
            port: api_port,
        },
        host: first.name.clone(),
    })
}

/// How an endpoint was proved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proof {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// What shows that every node reaches the API server there.
    pub evidence: Vec<String>,
}

/// The API server's own addresses and port (EndpointSlices of Service `default/kubernetes`).
pub async fn api_server_endpoints(
    client: &Client,
) -> Result<(BTreeSet<String>, BTreeSet<u16>), Error> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let list = slices
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .map_err(crate::kube_error(
            "listing EndpointSlices default/kubernetes",
        ))?;
    let mut addresses = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for slice in list.items {
        for endpoint in slice.endpoints {
            addresses.extend(endpoint.addresses);
        }
        for port in slice.ports.unwrap_or_default() {
            if let Some(p) = port.port.and_then(|p| u16::try_from(p).ok()) {
                ports.insert(p);
            }
        }
    }
    Ok((addresses, ports))
}

/// Whether the API server answers `/version` at `endpoint` from this host with a certificate
/// the kubeconfig's CA trusts for that name (the same credentials, only the URL changed).
pub async fn answers_here(config: &kube::Config, endpoint: &Endpoint) -> Result<String, String> {
    let mut config = config.clone();
    let url = format!("https://{endpoint}");
    config.cluster_url = url.parse().map_err(|e| format!("{url}: {e}"))?;
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    config.read_timeout = Some(std::time::Duration::from_secs(10));
    let client = Client::try_from(config).map_err(|e| e.to_string())?;
    client
        .apiserver_version()
        .await
        .map(|v| format!("the API server answered /version ({}) at https://{endpoint} from this host, its certificate valid for {}", v.git_version, endpoint.host))
        .map_err(|e| e.to_string())
}

/// Node names by role: (control planes, others).
async fn node_roles(client: &Client) -> Result<(Vec<String>, Vec<String>), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .map_err(crate::kube_error("listing Nodes"))?;
    let (mut control, mut others) = (Vec::new(), Vec::new());
    for node in list.items {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.unwrap_or_default();
        if labels.contains_key("node-role.kubernetes.io/control-plane")
            || labels.contains_key("node-role.kubernetes.io/master")
        {
            control.push(name);
        } else {
            others.push(name);
        }
    }
    Ok((control, others))
}

/// Proves that every node reaches the API server at `wiring`'s endpoint, or says why not and
/// what to do ([`Error::EndpointNotProved`]).
pub async fn prove(
    client: &Client,
    config: Option<&kube::Config>,
    wiring: &Wiring,
) -> Result<Proof, Error> {
    let refuse = |endpoint: String, why: Vec<String>| Error::EndpointNotProved {
        endpoint,
        why: why.join("; "),
    };
    let Some(endpoint) = wiring.endpoint().cloned() else {
        return Err(refuse(
            wiring.describe(),
            vec!["Cilium takes one k8sServiceHost/k8sServicePort for every node".to_owned()],
        ));
    };
    let (addresses, ports) = api_server_endpoints(client).await?;
    let listed = addresses.contains(&endpoint.host) && ports.contains(&endpoint.port);
    let here = match config {
        Some(config) => answers_here(config, &endpoint).await,
        None => Err("no kubeconfig to connect with".to_owned()),
    };
    let mut evidence = Vec::new();
    let mut against = Vec::new();
    match wiring {
        Wiring::NodeLocal { .. } => {
            if !ports.contains(&endpoint.port) {
                against.push(format!(
                    "the API server serves on port(s) {ports:?} (EndpointSlice default/kubernetes), not {}: control planes do not answer at {endpoint}",
                    endpoint.port
                ));
            } else {
                evidence.push(format!(
                    "control planes: the API server listens on port {} (EndpointSlice default/kubernetes)",
                    endpoint.port
                ));
            }
            let (_, workers) = node_roles(client).await?;
            let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
            let proxies: BTreeSet<String> =
                pods.list(&ListParams::default())
                    .await
                    .map_err(crate::kube_error("listing Pods in kube-system"))?
                    .items
                    .into_iter()
                    .filter(|p| {
                        p.metadata.name.as_deref().is_some_and(|n| {
                            n.starts_with("nginx-proxy-") || n.starts_with("haproxy-")
                        }) && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                    })
                    .filter_map(|p| p.spec.and_then(|s| s.node_name))
                    .collect();
            let without: Vec<&String> = workers.iter().filter(|w| !proxies.contains(*w)).collect();
            if without.is_empty() {
                evidence.push(format!(
                    "workers: Kubespray's local API server proxy (nginx-proxy/haproxy) runs on all {}",
                    workers.len()
                ));
            } else {
                against.push(format!(
                    "no running Kubespray local API server proxy (pod nginx-proxy-<node> or haproxy-<node> in kube-system) on {}",
                    without.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Wiring::External { .. } | Wiring::Given { .. } | Wiring::FirstControlPlane { .. } => {
            if listed {
                evidence.push(format!(
                    "{endpoint} is an API server address of EndpointSlice default/kubernetes"
                ));
            }
            match &here {
                Ok(line) => evidence.push(line.clone()),
                Err(e) => against.push(format!(
                    "https://{endpoint} does not answer from this host: {e}"
                )),
            }
            if !listed && here.is_err() {
                against.push(format!(
                    "{endpoint} is not among the API server's own addresses {addresses:?} port(s) {ports:?}"
                ));
            }
        }
        Wiring::Split { .. } => {}
    }
    let proved = match wiring {
        Wiring::NodeLocal { .. } => against.is_empty(),
        _ => listed || here.is_ok(),
    };
    if proved {
        Ok(Proof { endpoint, evidence })
    } else {
        Err(refuse(wiring.describe(), against))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inventory(all_yml: &str) -> (tempfile::TempDir, Inventory) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        std::fs::create_dir_all(root.join("group_vars/all")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(root.join("group_vars/k8s_cluster"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("group_vars/all/all.yml"), all_yml)
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            root.join("group_vars/k8s_cluster/k8s-cluster.yml"),
            "kube_network_plugin: cni\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            root.join("inventory.ini"),
            "[kube_control_plane]\ncp1 ansible_host=10.0.0.10 ip=10.0.0.10\n[kube_node]\nw1 ansible_host=10.0.0.20\n[etcd]\ncp1\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let inventory = Inventory::load(root).unwrap_or_else(|e| panic!("{e}"));
        (dir, inventory)
    }

    fn at(host: &str, port: u16) -> Endpoint {
        Endpoint {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn kubesprays_default_is_node_local_on_the_api_server_port() {
        let (_dir, inv) = inventory("---\n");
        assert_eq!(
            derive(&inv).unwrap_or_else(|e| panic!("{e}")),
            Wiring::NodeLocal {
                endpoint: at("127.0.0.1", 6443)
            }
        );
    }

    #[test]
    fn a_different_local_proxy_port_has_no_single_endpoint() {
        let (_dir, inv) = inventory("loadbalancer_apiserver_port: 8383\n");
        let wiring = derive(&inv).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wiring.endpoint(), None);
        assert!(wiring.describe().contains("127.0.0.1:8383"));
    }

    #[test]
    fn an_external_load_balancer_serves_every_node() {
        let (_dir, inv) = inventory(
            "apiserver_loadbalancer_domain_name: lb.example\nloadbalancer_apiserver:\n  address: 10.0.0.100\n  port: 8443\n",
        );
        assert_eq!(
            derive(&inv).unwrap_or_else(|e| panic!("{e}")),
            Wiring::External {
                endpoint: at("10.0.0.100", 8443)
            }
        );
    }

    #[test]
    fn a_load_balancer_without_an_address_is_reached_by_its_domain_name() {
        let (_dir, inv) = inventory(
            "apiserver_loadbalancer_domain_name: lb.example\nloadbalancer_apiserver:\n  port: 8443\n",
        );
        assert_eq!(
            derive(&inv).unwrap_or_else(|e| panic!("{e}")),
            Wiring::External {
                endpoint: at("lb.example", 8443)
            }
        );
        let (_dir, inv) = inventory("loadbalancer_apiserver:\n  port: 8443\n");
        let error = derive(&inv).unwrap_err().to_string();
        assert!(error.contains("loadbalancer_apiserver.address"), "{error}");
    }

    #[test]
    fn without_any_load_balancer_the_first_control_plane() {
        let (_dir, inv) =
            inventory("loadbalancer_apiserver_localhost: false\nkube_apiserver_port: 7443\n");
        assert_eq!(
            derive(&inv).unwrap_or_else(|e| panic!("{e}")),
            Wiring::FirstControlPlane {
                endpoint: at("10.0.0.10", 7443),
                host: "cp1".to_owned()
            }
        );
    }

    #[test]
    fn a_jinja_port_is_refused_with_the_file_and_the_fix() {
        let (_dir, inv) = inventory("loadbalancer_apiserver_port: \"{{ my_port }}\"\n");
        let error = derive(&inv).unwrap_err().to_string();
        assert!(
            error.contains("all.yml") && error.contains("--api-server"),
            "{error}"
        );
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!("10.0.0.1:6443".parse(), Ok(at("10.0.0.1", 6443)));
        assert_eq!("[fd00::1]:6443".parse(), Ok(at("fd00::1", 6443)));
        assert!("10.0.0.1".parse::<Endpoint>().is_err());
        assert_eq!(at("fd00::1", 6443).to_string(), "[fd00::1]:6443");
    }
}
