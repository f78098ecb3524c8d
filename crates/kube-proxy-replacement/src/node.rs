//! Removing kube-proxy's rules on a node, through the node access `nodes` uses: this machine,
//! the system OpenSSH client (`cni_fs::Ssh`: its argument vector, host key checking and `sudo
//! -n`), or a privileged pod per node ([`crate::node_pod`]). Every command is an argument vector; the rules to remove reach `iptables-restore` on
//! its standard input, never through a shell string.
//!
//! Why here and not in `cni-fs`: `cni_fs::Ssh::run` gives the remote command no standard input,
//! which `iptables-restore` needs; this file adds that on top of `Ssh::argv` (so the ssh
//! invocation is still cni-fs's), without widening cni-fs's API for one caller.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::process::Stdio;

use tokio::io::AsyncWriteExt as _;

use crate::Error;
use crate::rules;

/// How nodes are reached.
#[derive(Clone)]
pub enum NodeAccess {
    /// This machine (the tool runs on the node, as root).
    Local,
    /// The system OpenSSH client.
    Ssh(cni_fs::Ssh),
    /// A privileged pod per node, each command exec'd into the node's namespaces.
    Pod(crate::node_pod::PodExec),
}

impl std::fmt::Debug for NodeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeAccess::Local => f.write_str("Local"),
            NodeAccess::Ssh(ssh) => f.debug_tuple("Ssh").field(ssh).finish(),
            NodeAccess::Pod(pod) => f
                .debug_struct("Pod")
                .field("namespace", &pod.namespace)
                .field("image", &pod.image)
                .finish(),
        }
    }
}

/// One node reached: through this machine or ssh directly, or through its cleanup pod.
enum Session<'a> {
    Direct(&'a NodeAccess),
    Pod(Box<crate::node_pod::PodSession>),
}

impl Session<'_> {
    async fn run(
        &self,
        node: &cni_fs::Node,
        argv: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, Error> {
        match self {
            Session::Direct(access) => access.run(node, argv, stdin).await,
            Session::Pod(pod) => pod.run(argv, stdin).await,
        }
    }

    async fn must(
        &self,
        node: &cni_fs::Node,
        argv: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, Error> {
        let out = self.run(node, argv, stdin).await?;
        if out.ok() {
            Ok(out)
        } else {
            Err(Error::Node {
                node: node.name.clone(),
                problem: format!(
                    "`{}` exited with {}: {}",
                    argv.join(" "),
                    out.status,
                    out.stderr.trim()
                ),
            })
        }
    }
}

/// What a command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit status (127: the program is not installed).
    pub status: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    fn ok(&self) -> bool {
        self.status == 0
    }
}

/// The status a shell gives a command it cannot find.
const NOT_FOUND: i32 = 127;

impl NodeAccess {
    /// Runs `argv` on `node` with `stdin` as its standard input (this machine or ssh; pods run
    /// commands only inside [`clean_node`], which starts and deletes them).
    pub async fn run(
        &self,
        node: &cni_fs::Node,
        argv: &[&str],
        stdin: Option<&str>,
    ) -> Result<Output, Error> {
        let (program, args): (OsString, Vec<OsString>) = match self {
            NodeAccess::Local => (
                argv[0].into(),
                argv[1..].iter().map(OsString::from).collect(),
            ),
            NodeAccess::Ssh(ssh) => {
                let remote: Vec<OsString> = argv.iter().map(OsString::from).collect();
                let args = ssh.argv(node, &[remote]).map_err(|e| Error::Node {
                    node: node.name.clone(),
                    problem: e.to_string(),
                })?;
                (
                    ssh.program
                        .clone()
                        .map_or_else(|| "ssh".into(), |p| p.into_os_string()),
                    args,
                )
            }
            NodeAccess::Pod(_) => {
                return Err(Error::Node {
                    node: node.name.clone(),
                    problem: "a pod runs commands only inside clean_node".to_owned(),
                });
            }
        };
        let spawned = tokio::process::Command::new(&program)
            .args(&args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            // Locally a missing program is what a shell's 127 is over ssh.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && matches!(self, NodeAccess::Local) =>
            {
                return Ok(Output {
                    status: NOT_FOUND,
                    stdout: String::new(),
                    stderr: format!("{}: not found", argv[0]),
                });
            }
            Err(e) => {
                return Err(Error::Node {
                    node: node.name.clone(),
                    problem: format!("running {}: {e}", program.to_string_lossy()),
                });
            }
        };
        // Written while the output is read: a command that prints while it reads cannot block.
        let pipe = child.stdin.take();
        let write = async move {
            if let (Some(text), Some(mut pipe)) = (stdin, pipe) {
                pipe.write_all(text.as_bytes()).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (written, out) = tokio::join!(write, child.wait_with_output());
        let out = out.map_err(|e| Error::Node {
            node: node.name.clone(),
            problem: format!("waiting for {}: {e}", argv[0]),
        })?;
        written.map_err(|e| Error::Node {
            node: node.name.clone(),
            problem: format!(
                "writing to {}: {e} ({})",
                argv[0],
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })?;
        let status = out.status.code().unwrap_or(-1);
        if matches!(self, NodeAccess::Ssh(_)) && status == 255 {
            return Err(Error::Node {
                node: node.name.clone(),
                problem: format!(
                    "ssh failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The iptables front ends a node may have: the default one, and each back end by name, so
/// that rules kube-proxy wrote through the other back end (its image picks one) are found too.
/// Running one twice is harmless: the second finds nothing left.
pub const IPTABLES_TOOLS: &[(&str, &str)] = &[
    ("iptables-save", "iptables-restore"),
    ("ip6tables-save", "ip6tables-restore"),
    ("iptables-legacy-save", "iptables-legacy-restore"),
    ("ip6tables-legacy-save", "ip6tables-legacy-restore"),
    ("iptables-nft-save", "iptables-nft-restore"),
    ("ip6tables-nft-save", "ip6tables-nft-restore"),
];

/// What was removed on one node.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NodeCleanup {
    /// The node.
    pub node: String,
    /// Per iptables front end that had something: what it removed.
    pub iptables: Vec<(String, rules::Cleanup)>,
    /// IPVS virtual services deleted.
    pub ipvs_services: Vec<String>,
    /// Whether kube-ipvs0 was deleted.
    pub ipvs_device: bool,
    /// ipsets destroyed.
    pub ipsets: Vec<String>,
    /// nftables tables deleted (`ip kube-proxy`, `ip6 kube-proxy`).
    pub nft_tables: Vec<String>,
    /// kube-proxy chains kept (another chain refers to them), `tool: table/chain: why`.
    pub kept: Vec<String>,
}

impl NodeCleanup {
    /// One line for people.
    pub fn summary(&self) -> String {
        let chains: usize = self.iptables.iter().map(|(_, c)| c.chain_count()).sum();
        let mut line = format!(
            "{}: {chains} iptables chains, {} IPVS services{}, {} ipsets, {} nftables tables removed",
            self.node,
            self.ipvs_services.len(),
            if self.ipvs_device {
                " and kube-ipvs0"
            } else {
                ""
            },
            self.ipsets.len(),
            self.nft_tables.len()
        );
        if !self.kept.is_empty() {
            line.push_str(&format!(
                "; KEPT (remove by hand): {}",
                self.kept.join("; ")
            ));
        }
        line
    }
}

/// Removes kube-proxy's rules from `node` (iptables in every front end present, IPVS services
/// and kube-ipvs0, its ipsets, its nftables tables), then checks that none is left.
/// `node_ports`: the cluster's NodePorts (IPVS services at them are kube-proxy's).
pub async fn clean_node(
    access: &NodeAccess,
    node: &cni_fs::Node,
    node_ports: &BTreeSet<u16>,
) -> Result<NodeCleanup, Error> {
    let session = match access {
        NodeAccess::Pod(pod) => Session::Pod(Box::new(pod.open(&node.name).await?)),
        direct => Session::Direct(direct),
    };
    let result = clean(&session, node, node_ports).await;
    if let Session::Pod(pod) = session {
        pod.close().await;
    }
    result
}

async fn clean(
    access: &Session<'_>,
    node: &cni_fs::Node,
    node_ports: &BTreeSet<u16>,
) -> Result<NodeCleanup, Error> {
    let mut done = NodeCleanup {
        node: node.name.clone(),
        ..NodeCleanup::default()
    };
    // IPVS first: its virtual services are what still answers once the iptables hooks go.
    let ipvs = access.run(node, &["ipvsadm-save", "-n"], None).await?;
    if ipvs.ok() {
        let addresses = access
            .run(
                node,
                &["ip", "-o", "addr", "show", "dev", rules::IPVS_DEVICE],
                None,
            )
            .await?;
        let device = addresses.ok();
        let dummy = if device {
            rules::dummy_addresses(&addresses.stdout)
        } else {
            BTreeSet::new()
        };
        for service in rules::kube_proxy_virtual_services(&ipvs.stdout, &dummy, node_ports) {
            let argv = service.delete_argv();
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            access.must(node, &argv, None).await?;
            done.ipvs_services.push(service.address);
        }
        if device {
            access
                .must(node, &["ip", "link", "delete", rules::IPVS_DEVICE], None)
                .await?;
            done.ipvs_device = true;
        }
    }
    for (save, restore) in IPTABLES_TOOLS {
        let dump = access.run(node, &[save], None).await?;
        if dump.status == NOT_FOUND {
            continue;
        }
        if !dump.ok() {
            return Err(Error::Node {
                node: node.name.clone(),
                problem: format!(
                    "`{save}` exited with {}: {}",
                    dump.status,
                    dump.stderr.trim()
                ),
            });
        }
        let (input, cleanup) =
            rules::cleanup_restore_input(&dump.stdout).map_err(|problem| Error::Node {
                node: node.name.clone(),
                problem: format!("reading `{save}` output: {problem}"),
            })?;
        done.kept
            .extend(cleanup.kept().into_iter().map(|k| format!("{save}: {k}")));
        if input.is_empty() {
            continue;
        }
        access
            .must(node, &[restore, "--noflush"], Some(&input))
            .await?;
        // Proof: the same front end now shows no removable kube-proxy chain.
        let after = access.must(node, &[save], None).await?;
        let (left, _) =
            rules::cleanup_restore_input(&after.stdout).map_err(|problem| Error::Node {
                node: node.name.clone(),
                problem: format!("reading `{save}` output: {problem}"),
            })?;
        if !left.is_empty() {
            return Err(Error::Node {
                node: node.name.clone(),
                problem: format!("`{restore} --noflush` left kube-proxy's chains:\n{left}"),
            });
        }
        done.iptables.push(((*save).to_owned(), cleanup));
    }
    // ipsets last: a set still referenced by an iptables rule cannot be destroyed.
    let sets = access.run(node, &["ipset", "list", "-n"], None).await?;
    if sets.ok() {
        for set in rules::kube_proxy_ipsets(&sets.stdout) {
            access.must(node, &["ipset", "destroy", &set], None).await?;
            done.ipsets.push(set);
        }
    }
    for family in ["ip", "ip6"] {
        let listed = access
            .run(node, &["nft", "list", "table", family, "kube-proxy"], None)
            .await?;
        if listed.ok() {
            access
                .must(
                    node,
                    &["nft", "delete", "table", family, "kube-proxy"],
                    None,
                )
                .await?;
            done.nft_tables.push(format!("{family} kube-proxy"));
        }
    }
    Ok(done)
}
