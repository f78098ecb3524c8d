//! The checks: pure functions over API objects, each returning one [`Check`].
//!
//! They follow what `cilium status` reports (rollout state of the DaemonSets and Deployments, pod
//! phases, "pods managed by Cilium", config errors, Helm chart version), plus what it misses for a
//! Kubespray hand-over: init-container failures, one CiliumNode per Node, the Helm release status.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Node, Pod, Secret};
use kube::ResourceExt;
use kube::api::DynamicObject;

use crate::helm_release;
use crate::report::{Check, State};

/// Annotation prefix under which Cilium reports configuration errors on `cilium-config`
/// (cilium's `annotation.ConfigPrefix`, read the same way by `cilium status`). Every annotation
/// whose key starts with it counts as an error; Helm's own `meta.helm.sh/*` annotations and
/// anything else do not.
pub const CONFIG_ERROR_ANNOTATION_PREFIX: &str = "config.cilium.io/";

/// How many names a detail lists before saying "and N more".
const LIST_LIMIT: usize = 8;

fn list_names(names: &[String]) -> String {
    if names.len() <= LIST_LIMIT {
        names.join(", ")
    } else {
        format!(
            "{} and {} more",
            names[..LIST_LIMIT].join(", "),
            names.len() - LIST_LIMIT
        )
    }
}

/// Collects problems and picks the worst state.
#[derive(Default)]
struct Findings {
    state: Option<State>,
    messages: Vec<String>,
}

impl Findings {
    fn add(&mut self, state: State, message: impl Into<String>) {
        self.state = Some(self.state.map_or(state, |s| s.max(state)));
        self.messages.push(message.into());
    }

    fn into_check(self, name: String, healthy_detail: String) -> Check {
        match self.state {
            None => Check::new(name, State::Pass, healthy_detail),
            Some(state) => Check::new(name, state, self.messages.join("; ")),
        }
    }
}

fn generation_current(generation: Option<i64>, observed: Option<i64>) -> Option<String> {
    match (generation, observed) {
        (Some(g), Some(o)) if o < g => Some(format!(
            "generation {g} not yet observed (observed {o}): the rollout has not started"
        )),
        (Some(g), None) => Some(format!("generation {g} not yet observed by its controller")),
        _ => None,
    }
}

/// A DaemonSet has converged: desired = ready = updated, nothing unavailable, generation observed.
/// A missing DaemonSet fails when `required`, else it is reported as disabled.
pub fn daemonset_converged(name: &str, daemonset: Option<&DaemonSet>, required: bool) -> Check {
    let check_name = format!("DaemonSet {name}");
    let Some(ds) = daemonset else {
        return if required {
            Check::new(check_name, State::Fail, "not found")
                .with_hint("is Cilium installed in this namespace? pass --namespace")
        } else {
            Check::new(check_name, State::Disabled, "not installed")
        };
    };
    let Some(status) = ds.status.as_ref() else {
        return Check::new(
            check_name,
            State::Warn,
            "no status yet: its controller has not seen it",
        );
    };
    let desired = status.desired_number_scheduled;
    let ready = status.number_ready;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let unavailable = status.number_unavailable.unwrap_or(0);
    let mut findings = Findings::default();
    if let Some(message) = generation_current(ds.metadata.generation, status.observed_generation) {
        findings.add(State::Fail, message);
    }
    if desired == 0 {
        findings.add(State::Warn, "no node is scheduled to run it (desired 0)");
    }
    if ready < desired {
        findings.add(
            State::Fail,
            format!("{} of {desired} pods not ready", desired - ready),
        );
    }
    if updated < desired {
        findings.add(
            State::Fail,
            format!("rolling out: {updated} of {desired} pods updated"),
        );
    }
    if unavailable > desired - ready {
        findings.add(State::Warn, format!("{unavailable} pods unavailable"));
    }
    findings.into_check(
        check_name,
        format!("{ready}/{desired} ready, {updated} updated, {available} available"),
    )
}

/// A Deployment has converged (same rules as a DaemonSet); a missing one is disabled.
pub fn deployment_converged(name: &str, deployment: Option<&Deployment>) -> Check {
    let check_name = format!("Deployment {name}");
    let Some(deploy) = deployment else {
        return Check::new(check_name, State::Disabled, "not installed");
    };
    let desired = deploy.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = deploy.status.as_ref() else {
        return Check::new(
            check_name,
            State::Warn,
            "no status yet: its controller has not seen it",
        );
    };
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let unavailable = status.unavailable_replicas.unwrap_or(0);
    let mut findings = Findings::default();
    if let Some(message) =
        generation_current(deploy.metadata.generation, status.observed_generation)
    {
        findings.add(State::Fail, message);
    }
    if desired == 0 {
        findings.add(State::Warn, "scaled to 0 replicas");
    }
    if ready < desired {
        findings.add(
            State::Fail,
            format!("{} of {desired} replicas not ready", desired - ready),
        );
    }
    if updated < desired {
        findings.add(
            State::Fail,
            format!("rolling out: {updated} of {desired} replicas updated"),
        );
    }
    if unavailable > (desired - ready).max(0) {
        findings.add(State::Warn, format!("{unavailable} replicas unavailable"));
    }
    findings.into_check(
        check_name,
        format!("{ready}/{desired} ready, {updated} updated, {available} available"),
    )
}

/// The message that shows the node's CNI directories are not writable by the unprivileged agent.
fn is_hostbin_permission_error(message: &str) -> bool {
    message.contains("Permission denied")
        && (message.contains("/hostbin/") || message.contains("/host/opt/cni/bin"))
}

/// What went wrong with one container, if anything: (state, description, message text).
fn container_problem(status: &ContainerStatus, init: bool) -> Option<(State, String, String)> {
    let kind = if init { "init container" } else { "container" };
    let name = &status.name;
    let last_message = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| (t.exit_code, t.message.clone().unwrap_or_default()));
    let state = status.state.as_ref();
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.clone().unwrap_or_default();
        // Normal steps on the way to running.
        if reason.is_empty() || reason == "PodInitializing" || reason == "ContainerCreating" {
            return None;
        }
        let mut text = format!("{kind} {name} {reason}");
        if status.restart_count > 0 {
            text.push_str(&format!(" (restarts {})", status.restart_count));
        }
        let mut message = waiting.message.clone().unwrap_or_default();
        if let Some((code, last)) = &last_message {
            text.push_str(&format!(", last exit {code}"));
            if !last.trim().is_empty() {
                message = last.clone();
            }
        }
        if !message.trim().is_empty() {
            text.push_str(&format!(": {}", message.trim()));
        }
        return Some((State::Fail, text, message));
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        if terminated.exit_code != 0 {
            let message = terminated.message.clone().unwrap_or_default();
            let mut text = format!("{kind} {name} exited {}", terminated.exit_code);
            if let Some(reason) = &terminated.reason {
                text.push_str(&format!(" ({reason})"));
            }
            if !message.trim().is_empty() {
                text.push_str(&format!(": {}", message.trim()));
            }
            return Some((State::Fail, text, message));
        }
        return None;
    }
    if !init && state.and_then(|s| s.running.as_ref()).is_some() && !status.ready {
        return Some((
            State::Warn,
            format!("{kind} {name} running but not ready"),
            String::new(),
        ));
    }
    None
}

/// Agent pods: phases, crash loops and init-container failures (with their termination messages).
pub fn agent_pods(pods: &[Pod]) -> Check {
    let name = "agent pods".to_owned();
    if pods.is_empty() {
        return Check::new(name, State::Fail, "no pods with label k8s-app=cilium")
            .with_hint("the agent DaemonSet has no pods: check it with kubectl -n <namespace> describe daemonset cilium");
    }
    let mut findings = Findings::default();
    let mut hostbin_nodes = BTreeSet::new();
    let mut crashing = Vec::new();
    let mut running = 0;
    for pod in pods {
        let pod_name = pod.name_any();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        let where_ = match &node {
            Some(n) => format!("{pod_name} on {n}"),
            None => pod_name.clone(),
        };
        let Some(status) = pod.status.as_ref() else {
            findings.add(State::Warn, format!("{where_}: no status yet"));
            continue;
        };
        let phase = status.phase.clone().unwrap_or_else(|| "Unknown".to_owned());
        let mut problems = Vec::new();
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .map(|s| (s, true))
            .chain(
                status
                    .container_statuses
                    .iter()
                    .flatten()
                    .map(|s| (s, false)),
            );
        for (container, init) in statuses {
            if let Some((state, text, message)) = container_problem(container, init) {
                if is_hostbin_permission_error(&message) || is_hostbin_permission_error(&text) {
                    hostbin_nodes.insert(node.clone().unwrap_or_else(|| pod_name.clone()));
                } else if state == State::Fail {
                    crashing.push((
                        pod.namespace().unwrap_or_default(),
                        pod_name.clone(),
                        container.name.clone(),
                    ));
                }
                problems.push((state, text));
            }
        }
        match phase.as_str() {
            "Running" if problems.is_empty() => running += 1,
            "Failed" => {
                let reason = status.reason.clone().unwrap_or_default();
                findings.add(
                    State::Fail,
                    format!("{where_}: phase Failed {reason}")
                        .trim_end()
                        .to_owned(),
                );
            }
            "Pending" if problems.is_empty() => {
                findings.add(State::Warn, format!("{where_}: Pending"));
            }
            _ => {}
        }
        for (state, text) in problems {
            findings.add(state, format!("{where_}: {text}"));
        }
    }
    let mut check = findings.into_check(name, format!("{running}/{} running", pods.len()));
    if !hostbin_nodes.is_empty() {
        let nodes: Vec<String> = hostbin_nodes.into_iter().collect();
        check = check.with_hint(format!(
            "the agent's init containers run as root without CAP_DAC_OVERRIDE and cannot write the \
             node's /opt/cni/bin (owned by Kubespray's kube_owner): run `cilium-migrate nodes check` \
             and `cilium-migrate nodes fix --apply` for node(s) {}",
            list_names(&nodes)
        ));
    } else if let Some((namespace, pod, container)) = crashing.first() {
        check = check.with_hint(format!(
            "read the failing container's log: kubectl -n {namespace} logs {pod} -c {container} --previous"
        ));
    }
    check
}

fn namespaced_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or("default"))
}

/// "Pods managed by Cilium": every non-hostNetwork Running or Pending pod that is on a node has a
/// CiliumEndpoint of the same namespace/name; the others are listed as unmanaged.
pub fn managed_pods(pods: &[Pod], endpoints: Option<&[DynamicObject]>) -> Check {
    let name = "pods managed by Cilium".to_owned();
    let Some(endpoints) = endpoints else {
        return Check::new(
            name,
            State::Fail,
            "the CiliumEndpoint CRD (cilium.io/v2) is not installed",
        )
        .with_hint("the Cilium operator installs the CRDs: check Deployment cilium-operator");
    };
    let managed: BTreeSet<String> = endpoints
        .iter()
        .map(|e| namespaced_key(e.metadata.namespace.as_deref(), &e.name_any()))
        .collect();
    let candidates: Vec<String> = pods
        .iter()
        .filter(|p| {
            let spec = p.spec.as_ref();
            let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
            let on_node = spec.and_then(|s| s.node_name.as_ref()).is_some();
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !host_network && on_node && matches!(phase, Some("Running" | "Pending"))
        })
        .map(|p| namespaced_key(p.metadata.namespace.as_deref(), &p.name_any()))
        .collect();
    let unmanaged: Vec<String> = candidates
        .iter()
        .filter(|k| !managed.contains(*k))
        .cloned()
        .collect();
    let total = candidates.len();
    let detail = format!("{}/{total} managed by Cilium", total - unmanaged.len());
    if unmanaged.is_empty() {
        Check::new(name, State::Pass, detail)
    } else {
        Check::new(
            name,
            State::Warn,
            format!("{detail}; unmanaged: {}", list_names(&unmanaged)),
        )
        .with_hint(
            "these pods have no CiliumEndpoint: they started before the agent on their node was \
                 ready, or the agent lost them; once the agents are ready, restart them \
                 (kubectl -n <ns> delete pod <name>, or roll their workload)",
        )
    }
}

fn node_condition<'a>(node: &'a Node, kind: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.as_str())
}

/// Nodes are Ready and none reports `NetworkUnavailable=True`.
pub fn nodes_ready(nodes: &[Node]) -> Check {
    let name = "nodes".to_owned();
    if nodes.is_empty() {
        return Check::new(name, State::Fail, "the cluster has no Nodes");
    }
    let mut findings = Findings::default();
    let mut not_ready = Vec::new();
    let mut no_network = Vec::new();
    for node in nodes {
        if node_condition(node, "Ready") != Some("True") {
            not_ready.push(node.name_any());
        }
        if node_condition(node, "NetworkUnavailable") == Some("True") {
            no_network.push(node.name_any());
        }
    }
    if !no_network.is_empty() {
        findings.add(
            State::Fail,
            format!("NetworkUnavailable: {}", list_names(&no_network)),
        );
    }
    if !not_ready.is_empty() {
        findings.add(
            State::Warn,
            format!("not Ready: {}", list_names(&not_ready)),
        );
    }
    let check = findings.into_check(name, format!("{} Ready", nodes.len()));
    if no_network.is_empty() {
        check
    } else {
        check.with_hint(
            "the Cilium agent on these nodes has not set up networking: check its pod there",
        )
    }
}

/// One CiliumNode per Node (the agent registers its node); stale CiliumNodes are a warning.
pub fn cilium_nodes(nodes: &[Node], cilium_nodes: Option<&[DynamicObject]>) -> Check {
    let name = "CiliumNodes".to_owned();
    let Some(cilium_nodes) = cilium_nodes else {
        return Check::new(
            name,
            State::Fail,
            "the CiliumNode CRD (cilium.io/v2) is not installed",
        )
        .with_hint("the Cilium operator installs the CRDs: check Deployment cilium-operator");
    };
    let node_names: BTreeSet<String> = nodes.iter().map(ResourceExt::name_any).collect();
    let registered: BTreeSet<String> = cilium_nodes.iter().map(ResourceExt::name_any).collect();
    let missing: Vec<String> = node_names.difference(&registered).cloned().collect();
    let stale: Vec<String> = registered.difference(&node_names).cloned().collect();
    let mut findings = Findings::default();
    if !missing.is_empty() {
        findings.add(
            State::Fail,
            format!("no CiliumNode for: {}", list_names(&missing)),
        );
    }
    if !stale.is_empty() {
        findings.add(
            State::Warn,
            format!("CiliumNode without a Node: {}", list_names(&stale)),
        );
    }
    let check = findings.into_check(
        name,
        format!(
            "{}/{} nodes registered",
            node_names.len() - missing.len(),
            node_names.len()
        ),
    );
    if missing.is_empty() {
        check
    } else {
        check.with_hint("the agent on these nodes has not registered: check its pod and log there")
    }
}

/// The newest revision of the Helm release is `deployed`, at `expected_chart_version` when given.
/// No release at all is "disabled" (Cilium not managed by Helm, as in Kubespray ≤ v2.27) unless a
/// chart version is expected.
pub fn helm_release(
    secrets: &[Secret],
    namespace: &str,
    release: &str,
    expected_chart_version: Option<&str>,
) -> Check {
    let name = format!("Helm release {release}");
    let latest = match helm_release::latest(secrets, release) {
        None => {
            let detail = format!("no Helm release {release} in namespace {namespace}");
            return match expected_chart_version {
                Some(version) => Check::new(name, State::Fail, detail).with_hint(format!(
                    "chart {version} was expected: has the hand-over to Helm run? (helm -n {namespace} list)"
                )),
                None => Check::new(name, State::Disabled, format!("{detail}: Cilium is not managed by Helm")),
            };
        }
        Some(Err(error)) => return Check::new(name, State::Fail, error.to_string()),
        Some(Ok(latest)) => latest,
    };
    let app = latest
        .app_version
        .as_deref()
        .map(|v| format!(" (app {v})"))
        .unwrap_or_default();
    let detail = format!(
        "revision {} {}, chart {}{app}",
        latest.revision, latest.status, latest.chart_version
    );
    let mut findings = Findings::default();
    let mut hint = None;
    if latest.status != "deployed" {
        findings.add(State::Fail, detail.clone());
        hint = Some(if latest.status.starts_with("pending-") {
            format!(
                "a Helm operation is in progress or was interrupted: wait for it, or roll back with \
                 helm -n {namespace} rollback {release}"
            )
        } else {
            format!(
                "see helm -n {namespace} history {release} and helm -n {namespace} status {release}"
            )
        });
    }
    if let Some(expected) = expected_chart_version {
        let expected = expected.trim_start_matches('v');
        if latest.chart_version.trim_start_matches('v') != expected {
            findings.add(
                State::Fail,
                format!(
                    "chart {} deployed, {expected} expected",
                    latest.chart_version
                ),
            );
        }
    }
    let check = findings.into_check(name, detail);
    match hint {
        Some(hint) => check.with_hint(hint),
        None => check,
    }
}

/// `cilium-config` exists and carries no configuration-error annotation
/// (see [`CONFIG_ERROR_ANNOTATION_PREFIX`]).
pub fn config_errors(config: Option<&ConfigMap>) -> Check {
    let name = "ConfigMap cilium-config".to_owned();
    let Some(config) = config else {
        return Check::new(name, State::Fail, "not found").with_hint(
            "the agent cannot start without it: is Cilium installed in this namespace?",
        );
    };
    let errors: BTreeMap<&String, &String> = config
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(CONFIG_ERROR_ANNOTATION_PREFIX))
        .collect();
    if errors.is_empty() {
        let keys = config.data.as_ref().map_or(0, BTreeMap::len);
        return Check::new(
            name,
            State::Pass,
            format!("{keys} keys, no configuration errors"),
        );
    }
    let listed: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    Check::new(
        name,
        State::Fail,
        format!("configuration errors: {}", listed.join("; ")),
    )
    .with_hint("fix the named settings in the Helm values (or cilium-config) and roll the agents")
}
