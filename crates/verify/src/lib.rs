//! What `cilium status` checks, read through the Kubernetes API only.
//!
//! [`ClusterSnapshot::collect`] reads the objects once; the functions in [`checks`] turn them into
//! [`Check`]s without touching the network (so they are tested on recorded objects);
//! [`probe`] runs a functional probe per node and [`http`] checks URLs through the ingress.
//! [`verify`] runs them all and returns a [`Report`]. [`rollout`] holds the one rule for "has this
//! DaemonSet/Deployment rolled out" and the `kubectl rollout restart` patch, for the crates that
//! restart workloads.

pub mod checks;
pub mod helm_release;
pub mod http;
pub mod probe;
mod report;
pub mod rollout;
pub mod snapshot;

use std::time::Duration;

pub use http::UrlCheck;
pub use probe::ProbeOptions;
pub use report::{Check, Report, State};
pub use snapshot::ClusterSnapshot;

/// Errors that stop `verify` from producing a report (a failing check is not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request to the Kubernetes API failed.
    #[error("reading {what} through the Kubernetes API: {source}")]
    Kube {
        /// What was being read or written.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A `--url` argument is malformed.
    #[error("--url {argument}: {problem}")]
    UrlArgument {
        /// The argument as given.
        argument: String,
        /// What is wrong and how to write it.
        problem: String,
    },
}

/// What to check and what to expect.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespace Cilium is installed in (`kube-system` for Kubespray).
    pub namespace: String,
    /// Helm release name.
    pub release: String,
    /// The chart version the release must be at, when known.
    pub chart_version: Option<String>,
    /// Run the per-node probe with these settings.
    pub probe: Option<ProbeOptions>,
    /// URLs to GET through the ingress.
    pub urls: Vec<UrlCheck>,
    /// Timeout of each URL check.
    pub url_timeout: Duration,
}

impl Options {
    /// The defaults for a Kubespray cluster: `kube-system`, release `cilium`, no probe, no URLs.
    pub fn new(namespace: impl Into<String>, release: impl Into<String>) -> Self {
        Options {
            namespace: namespace.into(),
            release: release.into(),
            chart_version: None,
            probe: None,
            urls: Vec::new(),
            url_timeout: Duration::from_secs(10),
        }
    }
}

/// Every snapshot check, in table order.
pub fn evaluate(
    snapshot: &ClusterSnapshot,
    release: &str,
    chart_version: Option<&str>,
) -> Vec<Check> {
    vec![
        checks::daemonset_converged("cilium", snapshot.agent.as_ref(), true),
        checks::agent_pods(&snapshot.agent_pods),
        checks::daemonset_converged("cilium-envoy", snapshot.envoy.as_ref(), false),
        checks::deployment_converged("cilium-operator", snapshot.operator.as_ref()),
        checks::deployment_converged("hubble-relay", snapshot.hubble_relay.as_ref()),
        checks::deployment_converged("hubble-ui", snapshot.hubble_ui.as_ref()),
        checks::config_errors(snapshot.cilium_config.as_ref()),
        checks::nodes_ready(&snapshot.nodes),
        checks::cilium_nodes(&snapshot.nodes, snapshot.cilium_nodes.as_deref()),
        checks::managed_pods(&snapshot.pods, snapshot.endpoints.as_deref()),
        checks::helm_release(
            &snapshot.helm_secrets,
            &snapshot.namespace,
            release,
            chart_version,
        ),
    ]
}

/// Collects a snapshot, evaluates it, runs the probe and URL checks, and reports.
pub async fn verify(client: &kube::Client, options: &Options) -> Result<Report, Error> {
    let snapshot = ClusterSnapshot::collect(client, &options.namespace, &options.release).await?;
    let mut checks = evaluate(
        &snapshot,
        &options.release,
        options.chart_version.as_deref(),
    );
    if let Some(probe) = &options.probe {
        let nodes: Vec<String> = snapshot
            .nodes
            .iter()
            .map(kube::ResourceExt::name_any)
            .collect();
        checks.extend(probe::run_probes(client, &nodes, probe).await?);
    }
    for url in &options.urls {
        checks.push(url.check(options.url_timeout).await);
    }
    Ok(Report::new(checks))
}

/// How often [`verify_until_healthy`] re-runs `verify`.
pub const REVERIFY_EVERY: std::time::Duration = std::time::Duration::from_secs(3);

/// Re-runs [`verify`] until no check outside `ignore` (check names) has a problem, or `timeout`
/// passes; returns the last report either way (the caller judges it with
/// [`Report::problems`]). Whole reports are polled on an interval: no single watch covers what
/// they check across kinds and endpoints.
pub async fn verify_until_healthy(
    client: &kube::Client,
    options: &Options,
    ignore: &[String],
    timeout: std::time::Duration,
) -> Result<Report, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let report = verify(client, options).await?;
        let healthy = report.problems().all(|c| ignore.contains(&c.name));
        if healthy || tokio::time::Instant::now() >= deadline {
            return Ok(report);
        }
        tokio::time::sleep(REVERIFY_EVERY).await;
    }
}
