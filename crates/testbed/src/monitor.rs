//! Agent availability: which nodes had no Ready Cilium agent, when, and for how long, while a
//! hand-over runs; and whether the `cilium` DaemonSet was deleted (its UID changed or vanished).
//!
//! Two parts:
//! - [`AvailabilityLog`]: pure bookkeeping over a sequence of observations (pod seen with its
//!   node and readiness, pod gone, DaemonSet seen or gone), each stamped with the time since the
//!   monitor started. It turns them into per-node gaps and the numbers a report needs: the most
//!   nodes at once without an agent, the longest gap on one node, node-seconds without an agent.
//!   Unit-tested on recorded event sequences.
//! - [`AgentMonitor`]: watches the agent pods and the DaemonSet with the Kubernetes API and feeds
//!   the log as events arrive (time of receipt, which is finer than the API's one-second
//!   condition timestamps).
//!
//! A node "has a Ready agent" while at least one agent pod bound to it has the `Ready` condition
//! `True` and no deletion timestamp: a terminating pod is on its way out, and Kubernetes itself
//! stops counting it as ready. On a kwok testbed nothing runs a datapath, so a gap there is the
//! time from a pod's deletion to its replacement becoming Ready: real controller, scheduler and
//! kwok latency, not packet loss.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt as _, watcher::watcher};
use kube::{Api, Client};

/// The namespace the agent runs in (both Kubespray eras and the chart).
pub const AGENT_NAMESPACE: &str = "kube-system";
/// The agent DaemonSet's name.
pub const AGENT_DAEMONSET: &str = "cilium";
/// The label selector of the agent pods (the DaemonSet's selector in both eras).
pub const AGENT_SELECTOR: &str = "k8s-app=cilium";

/// What one observation says about one agent pod, keyed by the pod's UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodObservation {
    /// The pod exists: the node it is bound to (if scheduled) and whether it is a Ready agent.
    Seen {
        /// The pod's UID.
        uid: String,
        /// `spec.nodeName`.
        node: Option<String>,
        /// Ready condition `True` and not terminating.
        ready: bool,
    },
    /// The pod is gone.
    Gone {
        /// The pod's UID.
        uid: String,
    },
}

/// What one observation says about the DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonSetObservation {
    /// The DaemonSet exists with this UID.
    Seen {
        /// `metadata.uid`.
        uid: String,
    },
    /// The DaemonSet is gone.
    Gone,
}

/// One interval during which a node had no Ready agent. Times are since the monitor started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The node.
    pub node: String,
    /// When the node lost its last Ready agent.
    pub start: Duration,
    /// When a Ready agent came back (or the end of the observation, see `open`).
    pub end: Duration,
    /// Still without an agent when the observation ended.
    pub open: bool,
}

impl Gap {
    /// How long the node was without an agent.
    pub fn duration(&self) -> Duration {
        self.end.saturating_sub(self.start)
    }
}

/// What happened to the DaemonSet while it was watched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaemonSetHistory {
    /// Every UID seen, in order (more than one: it was deleted and created again).
    pub uids: Vec<String>,
    /// It was deleted at least once (seen gone, or seen with a new UID).
    pub deleted: bool,
    /// When it was first seen deleted.
    pub deleted_at: Option<Duration>,
}

/// The numbers of one observation window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvailabilityReport {
    /// How many nodes were watched.
    pub nodes: usize,
    /// From the baseline (the first complete list) to the end.
    pub observed: Duration,
    /// Every gap, ordered by start time, then node.
    pub gaps: Vec<Gap>,
    /// The most nodes without a Ready agent at the same moment.
    pub max_nodes_without_agent: usize,
    /// When that maximum was first reached.
    pub max_nodes_without_agent_at: Option<Duration>,
    /// The longest single gap.
    pub longest_gap: Option<Gap>,
    /// The sum of every gap's length.
    pub node_time_without_agent: Duration,
    /// Nodes still without a Ready agent at the end.
    pub nodes_without_agent_at_end: Vec<String>,
    /// The DaemonSet's history.
    pub daemonset: DaemonSetHistory,
    /// Agent pods on the watched nodes at the baseline.
    pub agents_at_start: usize,
    /// How many of those were gone at the end (replaced by new pods, or not).
    pub agents_replaced: usize,
}

impl AvailabilityReport {
    /// Node-seconds without an agent.
    pub fn node_seconds_without_agent(&self) -> f64 {
        self.node_time_without_agent.as_secs_f64()
    }
}

/// Pure bookkeeping: observations in, gaps and numbers out.
///
/// Observations before [`AvailabilityLog::baseline`] only build the initial picture; from the
/// baseline on, a node that has no Ready agent is in a gap (a node without one at the baseline
/// starts its gap there).
#[derive(Debug, Clone)]
pub struct AvailabilityLog {
    nodes: BTreeSet<String>,
    /// Agent pods by UID: (node, ready).
    pods: BTreeMap<String, (Option<String>, bool)>,
    baseline: Option<Duration>,
    /// Agent pods on the watched nodes at the baseline.
    initial_pods: BTreeSet<String>,
    /// Gaps still running, by node: their start.
    open: BTreeMap<String, Duration>,
    closed: Vec<Gap>,
    daemonset: DaemonSetHistory,
    daemonset_live: Option<String>,
}

impl AvailabilityLog {
    /// A log for these nodes (pods on other nodes are ignored).
    pub fn new<I, S>(nodes: I) -> AvailabilityLog
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AvailabilityLog {
            nodes: nodes.into_iter().map(Into::into).collect(),
            pods: BTreeMap::new(),
            baseline: None,
            initial_pods: BTreeSet::new(),
            open: BTreeMap::new(),
            closed: Vec::new(),
            daemonset: DaemonSetHistory::default(),
            daemonset_live: None,
        }
    }

    /// Whether `node` has a Ready agent now.
    pub fn has_ready_agent(&self, node: &str) -> bool {
        self.pods
            .values()
            .any(|(on, ready)| *ready && on.as_deref() == Some(node))
    }

    /// The watched nodes without a Ready agent now.
    pub fn nodes_without_agent(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|node| !self.has_ready_agent(node))
            .cloned()
            .collect()
    }

    /// Whether the baseline has been taken.
    pub fn started(&self) -> bool {
        self.baseline.is_some()
    }

    /// The DaemonSet's UID now, if it exists.
    pub fn daemonset_uid(&self) -> Option<&str> {
        self.daemonset_live.as_deref()
    }

    /// Starts counting at `at`: nodes without a Ready agent now open a gap. Later calls do nothing.
    pub fn baseline(&mut self, at: Duration) {
        if self.baseline.is_some() {
            return;
        }
        self.baseline = Some(at);
        self.initial_pods = self
            .pods
            .iter()
            .filter(|(_, (node, _))| node.as_ref().is_some_and(|node| self.nodes.contains(node)))
            .map(|(uid, _)| uid.clone())
            .collect();
        for node in self.nodes_without_agent() {
            self.open.insert(node, at);
        }
    }

    /// Records what a watch event says about an agent pod.
    pub fn observe_pod(&mut self, at: Duration, observation: PodObservation) {
        let uid = match &observation {
            PodObservation::Seen { uid, .. } | PodObservation::Gone { uid } => uid,
        };
        // The node the pod was on and the node it is on now (usually the same).
        let mut affected: Vec<String> = self
            .pods
            .get(uid)
            .and_then(|(node, _)| node.clone())
            .into_iter()
            .collect();
        if let PodObservation::Seen {
            node: Some(node), ..
        } = &observation
        {
            affected.push(node.clone());
        }
        match observation {
            PodObservation::Seen { uid, node, ready } => {
                self.pods.insert(uid, (node, ready));
            }
            PodObservation::Gone { uid } => {
                self.pods.remove(&uid);
            }
        }
        for node in affected {
            self.update_node(at, &node);
        }
    }

    /// After a re-list: every pod not in `live` is gone (its delete event may have been missed
    /// while the watch was down).
    pub fn retain_pods(&mut self, at: Duration, live: &BTreeSet<String>) {
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.observe_pod(at, PodObservation::Gone { uid });
        }
    }

    /// Records what a watch event says about the DaemonSet.
    pub fn observe_daemonset(&mut self, at: Duration, observation: DaemonSetObservation) {
        match observation {
            DaemonSetObservation::Seen { uid } => {
                if self.daemonset.uids.last() != Some(&uid) {
                    // A new UID after an earlier one: the old object was deleted, whether or
                    // not its delete event was seen.
                    if !self.daemonset.uids.is_empty() {
                        self.mark_daemonset_deleted(at);
                    }
                    self.daemonset.uids.push(uid.clone());
                }
                self.daemonset_live = Some(uid);
            }
            DaemonSetObservation::Gone => {
                if self.daemonset_live.take().is_some() {
                    self.mark_daemonset_deleted(at);
                }
            }
        }
    }

    fn mark_daemonset_deleted(&mut self, at: Duration) {
        self.daemonset.deleted = true;
        self.daemonset.deleted_at.get_or_insert(at);
    }

    fn update_node(&mut self, at: Duration, node: &str) {
        if self.baseline.is_none() || !self.nodes.contains(node) {
            return;
        }
        let ready = self.has_ready_agent(node);
        match (ready, self.open.contains_key(node)) {
            (false, false) => {
                self.open.insert(node.to_owned(), at);
            }
            (true, true) => {
                if let Some(start) = self.open.remove(node) {
                    self.closed.push(Gap {
                        node: node.to_owned(),
                        start,
                        end: at,
                        open: false,
                    });
                }
            }
            _ => {}
        }
    }

    /// The numbers as of `end`: gaps still running are cut at `end` and marked open.
    pub fn report(&self, end: Duration) -> AvailabilityReport {
        let baseline = self.baseline.unwrap_or(end);
        let mut gaps = self.closed.clone();
        gaps.extend(self.open.iter().map(|(node, start)| Gap {
            node: node.clone(),
            start: *start,
            end: end.max(*start),
            open: true,
        }));
        gaps.sort_by(|a, b| (a.start, &a.node).cmp(&(b.start, &b.node)));
        let (max, max_at) = max_overlap(&gaps);
        let longest_gap = gaps
            .iter()
            // The first of equally long gaps.
            .fold(None::<&Gap>, |best, gap| match best {
                Some(best) if best.duration() >= gap.duration() => Some(best),
                _ => Some(gap),
            })
            .cloned();
        AvailabilityReport {
            nodes: self.nodes.len(),
            observed: end.saturating_sub(baseline),
            node_time_without_agent: gaps.iter().map(Gap::duration).sum(),
            max_nodes_without_agent: max,
            max_nodes_without_agent_at: max_at,
            longest_gap,
            nodes_without_agent_at_end: self.open.keys().cloned().collect(),
            daemonset: self.daemonset.clone(),
            agents_at_start: self.initial_pods.len(),
            agents_replaced: self
                .initial_pods
                .iter()
                .filter(|uid| !self.pods.contains_key(*uid))
                .count(),
            gaps,
        }
    }
}

/// The most intervals covering one instant, and the first instant it happens. Intervals are
/// half-open (`[start, end)`): a node whose agent comes back at the moment another node's goes
/// away does not count twice. An empty interval (a gap of zero length) still counts as one node.
fn max_overlap(gaps: &[Gap]) -> (usize, Option<Duration>) {
    // (time, order, delta). At equal times: ends of gaps come first (order 0), then starts
    // (order 1), then the ends of zero-length gaps (order 2), which thus count at their instant.
    let mut edges: Vec<(Duration, u8, i64)> = Vec::with_capacity(gaps.len() * 2);
    for gap in gaps {
        edges.push((gap.start, 1, 1));
        let order = if gap.end > gap.start { 0 } else { 2 };
        edges.push((gap.end.max(gap.start), order, -1));
    }
    edges.sort();
    let (mut now, mut max, mut max_at) = (0i64, 0i64, None);
    for (at, _, delta) in edges {
        now += delta;
        if now > max {
            max = now;
            max_at = Some(at);
        }
    }
    (usize::try_from(max).unwrap_or(0), max_at)
}

/// Watches the agent pods and the DaemonSet and keeps an [`AvailabilityLog`].
///
/// Dropping it stops the watches. Typical use: [`AgentMonitor::start`],
/// [`AgentMonitor::wait_until`] every node has an agent, run the hand-over, then
/// [`AgentMonitor::stop`] for the report.
#[derive(Debug)]
pub struct AgentMonitor {
    started: Instant,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    log: Mutex<AvailabilityLog>,
    /// Bumped after every change, so waiters re-check.
    changed: tokio::sync::watch::Sender<u64>,
    /// The last watch error (the watches retry with a backoff).
    last_error: Mutex<Option<String>>,
    /// Which watches have finished their first list.
    listed: Mutex<(bool, bool)>,
    /// Every controller (owner UID) each agent pod was seen with, by pod UID.
    controllers: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Shared {
    fn with_log<T>(&self, f: impl FnOnce(&mut AvailabilityLog) -> T) -> T {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let result = f(&mut log);
        drop(log);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        result
    }

    /// Records that one watch listed; the baseline is taken once both have.
    fn listed(&self, at: Duration, pods: bool) {
        let both = {
            let mut listed = self.listed.lock().unwrap_or_else(PoisonError::into_inner);
            if pods {
                listed.0 = true;
            } else {
                listed.1 = true;
            }
            listed.0 && listed.1
        };
        if both {
            self.with_log(|log| log.baseline(at));
        }
    }
}

impl AgentMonitor {
    /// Starts watching the agent pods and DaemonSet ([`AGENT_NAMESPACE`], [`AGENT_DAEMONSET`],
    /// [`AGENT_SELECTOR`]) on these nodes. Needs a Tokio runtime.
    pub fn start(client: &Client, nodes: &[String]) -> AgentMonitor {
        let started = Instant::now();
        let (changed, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared {
            log: Mutex::new(AvailabilityLog::new(nodes.iter().cloned())),
            changed,
            last_error: Mutex::new(None),
            listed: Mutex::new((false, false)),
            controllers: Mutex::new(BTreeMap::new()),
        });
        let pods: Api<Pod> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
        let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), AGENT_NAMESPACE);
        let tasks = vec![
            tokio::spawn(watch_pods(pods, started, Arc::clone(&shared))),
            tokio::spawn(watch_daemonset(daemonsets, started, Arc::clone(&shared))),
        ];
        AgentMonitor {
            started,
            shared,
            tasks,
        }
    }

    /// Time since the monitor started (the clock of every [`Gap`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reads the log now.
    pub fn inspect<T>(&self, f: impl FnOnce(&AvailabilityLog) -> T) -> T {
        let log = self
            .shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&log)
    }

    /// The numbers so far (gaps still running are cut now).
    pub fn report(&self) -> AvailabilityReport {
        let end = self.elapsed();
        self.inspect(|log| log.report(end))
    }

    /// Every controller (the UID of its controlling owner, a DaemonSet) each agent pod was seen
    /// with while watched, by pod UID: a pod adopted by a re-created DaemonSet shows both.
    pub fn pod_controllers(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.shared
            .controllers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The last error of a watch, if any (they retry on their own).
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `condition` holds on the log (re-checked after every event), or fails after
    /// `timeout` saying `what` did not happen.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&AvailabilityLog) -> bool,
    ) -> Result<(), MonitorTimeout> {
        let mut changed = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if self.inspect(&condition) {
                    return;
                }
                if changed.changed().await.is_err() {
                    // The sender lives in `shared`, which outlives this call: never happens.
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| MonitorTimeout {
                what: what.to_owned(),
                timeout,
                without_agent: self.inspect(AvailabilityLog::nodes_without_agent),
                last_error: self.last_error(),
            })
    }

    /// Waits until both watches have listed and every node has a Ready agent.
    pub async fn wait_all_ready(&self, timeout: Duration) -> Result<(), MonitorTimeout> {
        self.wait_until("every node to have a Ready agent", timeout, |log| {
            log.started() && log.nodes_without_agent().is_empty()
        })
        .await
    }

    /// Stops watching and returns the numbers.
    pub fn stop(mut self) -> AvailabilityReport {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.report()
    }
}

impl Drop for AgentMonitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A wait on the monitor ran out of time.
#[derive(Debug, thiserror::Error)]
#[error(
    "timed out after {timeout:?} waiting for {what}; nodes without a Ready agent: {}{}",
    list_or_none(without_agent),
    last_error.as_ref().map(|e| format!("; last watch error: {e}")).unwrap_or_default()
)]
pub struct MonitorTimeout {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub timeout: Duration,
    /// The nodes without a Ready agent when time ran out.
    pub without_agent: Vec<String>,
    /// The last watch error, if any.
    pub last_error: Option<String>,
}

fn list_or_none(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "none".to_owned()
    } else {
        nodes.join(", ")
    }
}

/// Whether a pod counts as a Ready agent: condition `Ready` is `True` and it is not terminating.
pub fn is_ready_agent(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|status| status.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|condition| condition.type_ == "Ready" && condition.status == "True")
            })
}

fn pod_observation(pod: &Pod) -> Option<PodObservation> {
    Some(PodObservation::Seen {
        uid: pod.metadata.uid.clone()?,
        node: pod.spec.as_ref().and_then(|spec| spec.node_name.clone()),
        ready: is_ready_agent(pod),
    })
}

async fn watch_pods(api: Api<Pod>, started: Instant, shared: Arc<Shared>) {
    let config = watcher::Config::default().labels(AGENT_SELECTOR);
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    // UIDs listed since the last `Init`: a re-list replaces what was known.
    let mut relisted: BTreeSet<String> = BTreeSet::new();
    while let Some(event) = events.next().await {
        let at = started.elapsed();
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                record_controller(&shared, &pod);
                if let Some(observation) = pod_observation(&pod) {
                    if let PodObservation::Seen { uid, .. } = &observation {
                        relisted.insert(uid.clone());
                    }
                    shared.with_log(|log| log.observe_pod(at, observation));
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.clone() {
                    shared.with_log(|log| log.observe_pod(at, PodObservation::Gone { uid }));
                }
            }
            Ok(Event::Init) => relisted.clear(),
            Ok(Event::InitDone) => {
                shared.with_log(|log| log.retain_pods(at, &relisted));
                shared.listed(at, true);
            }
            Err(error) => record_error(&shared, format!("watching agent pods: {error}")),
        }
    }
}

fn record_controller(shared: &Shared, pod: &Pod) {
    let (Some(uid), Some(owner)) = (
        pod.metadata.uid.clone(),
        pod.metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true)),
    ) else {
        return;
    };
    shared
        .controllers
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(uid)
        .or_default()
        .insert(owner.uid.clone());
}

async fn watch_daemonset(api: Api<DaemonSet>, started: Instant, shared: Arc<Shared>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={AGENT_DAEMONSET}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut relisted = false;
    while let Some(event) = events.next().await {
        let at = started.elapsed();
        match event {
            Ok(Event::Apply(ds) | Event::InitApply(ds)) => {
                relisted = true;
                if let Some(uid) = ds.metadata.uid {
                    shared.with_log(|log| {
                        log.observe_daemonset(at, DaemonSetObservation::Seen { uid })
                    });
                }
            }
            Ok(Event::Delete(_)) => {
                shared.with_log(|log| log.observe_daemonset(at, DaemonSetObservation::Gone));
            }
            Ok(Event::Init) => relisted = false,
            Ok(Event::InitDone) => {
                if !relisted {
                    shared.with_log(|log| log.observe_daemonset(at, DaemonSetObservation::Gone));
                }
                shared.listed(at, false);
            }
            Err(error) => record_error(&shared, format!("watching DaemonSet: {error}")),
        }
    }
}

fn record_error(shared: &Shared, error: String) {
    *shared
        .last_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner) = Some(error);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    fn seen(uid: &str, node: &str, ready: bool) -> PodObservation {
        PodObservation::Seen {
            uid: uid.to_owned(),
            node: Some(node.to_owned()),
            ready,
        }
    }

    fn gone(uid: &str) -> PodObservation {
        PodObservation::Gone {
            uid: uid.to_owned(),
        }
    }

    /// A recorded sequence of `(seconds, observation)`; those up to `baseline_at` are the initial list.
    fn replay(
        nodes: &[&str],
        baseline_at: f64,
        events: &[(f64, PodObservation)],
    ) -> AvailabilityLog {
        let mut log = AvailabilityLog::new(nodes.iter().copied());
        for (at, observation) in events {
            if *at > baseline_at {
                log.baseline(s(baseline_at));
            }
            log.observe_pod(s(*at), observation.clone());
        }
        log.baseline(s(baseline_at));
        log
    }

    /// Three nodes all covered at the start.
    fn initial() -> Vec<(f64, PodObservation)> {
        vec![
            (0.0, seen("a1", "node1", true)),
            (0.0, seen("a2", "node2", true)),
            (0.0, seen("a3", "node3", true)),
        ]
    }

    #[test]
    fn a_rolling_update_two_at_a_time() {
        // maxUnavailable 2: node1 and node2 go at 1 s, come back at 3 s and 3.5 s; node3 goes at
        // 3 s (as node1 returns) and comes back at 5 s.
        let mut events = initial();
        events.extend([
            (1.0, seen("a1", "node1", false)),
            (1.0, seen("a2", "node2", false)),
            (1.2, gone("a1")),
            (1.3, gone("a2")),
            (2.0, seen("b1", "node1", false)),
            (3.0, seen("b1", "node1", true)),
            (3.0, seen("a3", "node3", false)),
            (3.5, seen("b2", "node2", true)),
            (3.6, gone("a3")),
            (5.0, seen("b3", "node3", true)),
        ]);
        let report = replay(&["node1", "node2", "node3"], 0.5, &events).report(s(10.0));
        assert_eq!(report.max_nodes_without_agent, 2);
        assert_eq!(report.max_nodes_without_agent_at, Some(s(1.0)));
        let longest = report.longest_gap.expect("a gap");
        assert_eq!(
            (longest.node.as_str(), longest.duration()),
            ("node2", s(2.5))
        );
        assert_eq!(report.node_time_without_agent, s(2.0 + 2.5 + 2.0));
        assert_eq!(report.gaps.len(), 3);
        assert!(report.gaps.iter().all(|gap| !gap.open));
        assert!(report.nodes_without_agent_at_end.is_empty());
        assert_eq!(report.observed, s(9.5));
        assert_eq!((report.agents_at_start, report.agents_replaced), (3, 3));
    }

    #[test]
    fn replace_takes_every_node_down_at_once() {
        let mut events = initial();
        events.extend([
            (1.0, gone("a1")),
            (1.1, gone("a2")),
            (1.2, gone("a3")),
            (4.0, seen("b1", "node1", true)),
            (4.5, seen("b2", "node2", true)),
        ]);
        let report = replay(&["node1", "node2", "node3"], 0.5, &events).report(s(6.0));
        assert_eq!(report.max_nodes_without_agent, 3);
        assert_eq!(report.max_nodes_without_agent_at, Some(s(1.2)));
        // node3 never came back: its gap is cut at the end and marked open.
        let node3 = report
            .gaps
            .iter()
            .find(|gap| gap.node == "node3")
            .expect("node3");
        assert!(node3.open);
        assert_eq!(node3.duration(), s(4.8));
        assert_eq!(
            report.longest_gap.map(|gap| gap.node),
            Some("node3".to_owned())
        );
        assert_eq!(report.nodes_without_agent_at_end, vec!["node3".to_owned()]);
        assert_eq!(report.node_time_without_agent, s(3.0 + 3.4 + 4.8));
    }

    #[test]
    fn a_surge_pod_keeps_the_node_covered() {
        // The new pod is Ready before the old one goes: no gap at all.
        let mut events = initial();
        events.extend([
            (1.0, seen("b1", "node1", false)),
            (2.0, seen("b1", "node1", true)),
            (2.5, gone("a1")),
        ]);
        let report = replay(&["node1", "node2", "node3"], 0.0, &events).report(s(3.0));
        assert_eq!(report.max_nodes_without_agent, 0);
        assert_eq!((report.agents_at_start, report.agents_replaced), (3, 1));
        assert_eq!(report.longest_gap, None);
        assert_eq!(report.node_time_without_agent, Duration::ZERO);
    }

    #[test]
    fn touching_gaps_on_two_nodes_are_not_simultaneous() {
        let mut events = initial();
        events.extend([
            (1.0, gone("a1")),
            (2.0, seen("b1", "node1", true)),
            (2.0, gone("a2")),
            (3.0, seen("b2", "node2", true)),
        ]);
        let report = replay(&["node1", "node2", "node3"], 0.0, &events).report(s(4.0));
        assert_eq!(report.max_nodes_without_agent, 1);
        assert_eq!(report.node_time_without_agent, s(2.0));
    }

    #[test]
    fn a_node_without_agent_at_the_baseline_starts_its_gap_there() {
        let events = vec![
            (0.0, seen("a1", "node1", true)),
            (0.0, seen("a2", "node2", false)),
            (3.0, seen("a2", "node2", true)),
        ];
        let report = replay(&["node1", "node2"], 1.0, &events).report(s(5.0));
        assert_eq!(report.gaps.len(), 1);
        assert_eq!((report.gaps[0].start, report.gaps[0].end), (s(1.0), s(3.0)));
    }

    #[test]
    fn pods_before_the_baseline_or_on_unwatched_nodes_make_no_gap() {
        let events = vec![
            (0.0, seen("a1", "node1", false)),
            (0.1, seen("a1", "node1", true)),
            (2.0, seen("x", "other", true)),
            (3.0, gone("x")),
        ];
        let report = replay(&["node1"], 0.5, &events).report(s(4.0));
        assert!(report.gaps.is_empty(), "{:?}", report.gaps);
    }

    #[test]
    fn terminating_and_unscheduled_pods_do_not_cover() {
        let mut log = AvailabilityLog::new(["node1"]);
        log.observe_pod(
            s(0.0),
            PodObservation::Seen {
                uid: "a".into(),
                node: None,
                ready: true,
            },
        );
        assert!(!log.has_ready_agent("node1"));
        log.observe_pod(s(0.0), seen("a", "node1", true));
        assert!(log.has_ready_agent("node1"));
        // A pod that moves (impossible for a DaemonSet, but the arithmetic holds) leaves its node.
        log.baseline(s(0.0));
        log.observe_pod(s(1.0), seen("a", "node2", true));
        assert_eq!(log.nodes_without_agent(), vec!["node1".to_owned()]);
    }

    #[test]
    fn a_relist_removes_pods_whose_delete_was_missed() {
        let mut log = replay(
            &["node1", "node2"],
            0.0,
            &[
                (0.0, seen("a1", "node1", true)),
                (0.0, seen("a2", "node2", true)),
            ],
        );
        log.retain_pods(s(2.0), &BTreeSet::from(["a2".to_owned()]));
        assert_eq!(log.nodes_without_agent(), vec!["node1".to_owned()]);
        log.observe_pod(s(2.5), seen("b1", "node1", true));
        let report = log.report(s(3.0));
        assert_eq!(report.node_time_without_agent, s(0.5));
    }

    #[test]
    fn zero_length_gaps_count_as_one_node_at_their_instant() {
        let mut events = initial();
        events.extend([(1.0, gone("a1")), (1.0, seen("b1", "node1", true))]);
        let report = replay(&["node1", "node2", "node3"], 0.0, &events).report(s(2.0));
        assert_eq!(report.max_nodes_without_agent, 1);
        assert_eq!(report.node_time_without_agent, Duration::ZERO);
    }

    #[test]
    fn the_daemonset_deleted_is_seen_by_event_or_by_a_new_uid() {
        let mut log = AvailabilityLog::new(["node1"]);
        log.observe_daemonset(s(0.0), DaemonSetObservation::Seen { uid: "u1".into() });
        log.observe_daemonset(s(1.0), DaemonSetObservation::Seen { uid: "u1".into() });
        assert!(
            !log.report(s(2.0)).daemonset.deleted,
            "an update is no delete"
        );

        log.observe_daemonset(s(2.0), DaemonSetObservation::Gone);
        log.observe_daemonset(s(3.0), DaemonSetObservation::Seen { uid: "u2".into() });
        let history = log.report(s(4.0)).daemonset;
        assert!(history.deleted);
        assert_eq!(history.deleted_at, Some(s(2.0)));
        assert_eq!(history.uids, vec!["u1".to_owned(), "u2".to_owned()]);

        // The delete event was missed (watch down): the new UID gives it away.
        let mut log = AvailabilityLog::new(["node1"]);
        log.observe_daemonset(s(0.0), DaemonSetObservation::Seen { uid: "u1".into() });
        log.observe_daemonset(s(5.0), DaemonSetObservation::Seen { uid: "u2".into() });
        let history = log.report(s(6.0)).daemonset;
        assert!(history.deleted);
        assert_eq!(history.deleted_at, Some(s(5.0)));
        assert_eq!(log.daemonset_uid(), Some("u2"));
    }
}
