//! What several commands share to reach a cluster and its nodes.

use std::path::Path;

use anyhow::{Context as _, bail};
use cni_fs::Node;

/// A Kubernetes client from `--kubeconfig`, else `KUBECONFIG`/`~/.kube/config`/in-cluster, and
/// the API server URL: the same connection (and URL spelling, which the cluster identity in
/// bundles and journals is made of) as `migrate`.
pub(crate) async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<(kube::Client, String)> {
    Ok(migration::flow::connect(kubeconfig).await?)
}

/// One cluster for the whole command: the kubeconfig's context resolved once and pinned, for
/// the client and every helm call (`migration::flow::Connection`); its warnings go to stderr.
pub(crate) async fn connect_pinned(
    kubeconfig: Option<&Path>,
) -> anyhow::Result<migration::flow::Connection> {
    let connection = migration::flow::Connection::open(kubeconfig).await?;
    for warning in connection.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(connection)
}

/// The cluster's run lock (Lease kube-system/cilium-migrate) for this process running
/// `command`: refused with the holder and its age while another run holds it.
pub(crate) async fn lock(
    client: &kube::Client,
    command: &str,
) -> anyhow::Result<migration::lock::ClusterLease> {
    let lease = migration::lock::ClusterLease::acquire(
        client,
        migration::lock::Holder::this_process(command),
    )
    .await?;
    if let Some(previous) = lease.taken_over() {
        eprintln!("took over the run lock from {previous}: it lapsed or its process is gone");
    }
    Ok(lease)
}

/// Releases `lease` after `result`, keeping `result`'s error first.
pub(crate) async fn unlock<T>(
    lease: migration::lock::ClusterLease,
    result: anyhow::Result<T>,
) -> anyhow::Result<T> {
    if let Err(e) = lease.release().await {
        eprintln!("warning: {e}");
    }
    result
}

/// A Kubernetes client, as [`connect`] makes it.
pub(crate) async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    Ok(connect(kubeconfig).await?.0)
}

/// The Kubespray inventory's hosts in `group`, as nodes to reach over SSH.
pub(crate) fn inventory_nodes(dir: &Path, group: &str) -> anyhow::Result<Vec<Node>> {
    let inventory = kubespray_config::Inventory::load(dir)
        .with_context(|| format!("reading the inventory {}", dir.display()))?;
    let nodes: Vec<Node> = inventory
        .hosts
        .iter()
        .filter(|h| h.in_group(group))
        .map(|h| Node {
            name: h.name.clone(),
            address: h.connect_address().to_owned(),
            user: h.ansible_user.clone(),
            port: h.ansible_port,
        })
        .collect();
    if nodes.is_empty() {
        bail!(
            "{}: no hosts in group {group}; pass --group with the group of your Kubernetes nodes",
            dir.display(),
        );
    }
    Ok(nodes)
}
