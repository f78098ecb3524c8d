//! Whether a DaemonSet or Deployment has rolled out its current pod template, and rolling one the
//! way `kubectl rollout restart` does.
//!
//! One rule per kind, shared by `gateway-api enable` (operator and agent restarts) and the
//! `replace` hand-over (the roll of the adopted agents). The operator-facing checks in
//! [`crate::checks`] read the same status fields but explain each shortfall as a finding.

use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// The pod template annotation `kubectl rollout restart` sets; a new value is a new revision.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Whether a rollout is over, and what its status said (for progress lines and timeout errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// Every pod runs the current template, ready and available.
    pub done: bool,
    /// The status fields the verdict was made from, in words.
    pub seen: String,
}

/// Why [`wait_rolled_out`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// Reading the workload failed.
    #[error("reading {what} through the Kubernetes API: {source}")]
    Kube {
        /// The workload (`DaemonSet kube-system/cilium`).
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The rollout did not finish in time.
    #[error("{what} did not roll out within {timeout:?}; last seen: {seen}")]
    Timeout {
        /// The workload (`DaemonSet kube-system/cilium`).
        what: String,
        /// How long was waited.
        timeout: Duration,
        /// The last status seen ([`Rollout::seen`]).
        seen: String,
    },
}

/// A DaemonSet has rolled out when its controller has observed the current generation
/// (`status.observedGeneration` equals `metadata.generation`) and every pod it should schedule
/// is updated, available and ready (`updatedNumberScheduled`, `numberAvailable` and
/// `numberReady` all equal `desiredNumberScheduled`). Equality rather than "at least" is the
/// stricter reading: an observed generation the object does not carry (a stale or fabricated
/// status) never counts as current. Old pods need no separate count: a DaemonSet runs one pod
/// per node, so all desired pods updated means none is left on an older template (the
/// controller's own view; callers that must know each pod's revision check the pods).
pub fn daemon_set_rollout(daemon_set: &DaemonSet) -> Rollout {
    let generation = daemon_set.metadata.generation;
    let Some(status) = &daemon_set.status else {
        return Rollout {
            done: false,
            seen: "no status yet".to_owned(),
        };
    };
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let ready = status.number_ready;
    Rollout {
        done: status.observed_generation == generation
            && updated == desired
            && available == desired
            && ready == desired,
        seen: format!(
            "{}, {updated} updated, {available} available, {ready} ready, {desired} desired",
            observed(status.observed_generation, generation)
        ),
    }
}

/// A Deployment has rolled out when its controller has observed the current generation (as for
/// a DaemonSet) and the wanted replicas (`spec.replicas`, 1 when unset) are all updated,
/// available and ready, with no old replica left (`status.replicas`, which counts old and new
/// pods, equals the wanted number: until then a pod of the previous template still runs).
pub fn deployment_rollout(deployment: &Deployment) -> Rollout {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation;
    let Some(status) = &deployment.status else {
        return Rollout {
            done: false,
            seen: "no status yet".to_owned(),
        };
    };
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    Rollout {
        done: status.observed_generation == generation
            && updated == wanted
            && available == wanted
            && ready == wanted
            && total == wanted,
        seen: format!(
            "{}, {updated} updated, {available} available, {ready} ready, {total} total, {wanted} wanted",
            observed(status.observed_generation, generation)
        ),
    }
}

/// `observed generation 4 of 5` (`none` for a field not set).
fn observed(observed: Option<i64>, generation: Option<i64>) -> String {
    let number = |n: Option<i64>| n.map_or_else(|| "none".to_owned(), |n| n.to_string());
    format!(
        "observed generation {} of {}",
        number(observed),
        number(generation)
    )
}

/// What `kubectl rollout restart` does: sets [`RESTARTED_AT`] on the pod template to the current
/// time (RFC 3339, UTC, with sub-second digits so that two restarts within one second still
/// differ), written as `field_manager`. The controller then replaces the pods under the
/// workload's own update strategy; await that with [`wait_rolled_out`].
pub async fn restart<K>(api: &Api<K>, name: &str, field_manager: &str) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let now = jiff::Timestamp::now().to_string();
    let patch = json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } }
    });
    let params = PatchParams {
        field_manager: Some(field_manager.to_owned()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Strategic(&patch)).await?;
    Ok(())
}

/// Watches the workload (kube's `await_condition`) until `rollout` says it is done, or fails
/// after `timeout` with the last status seen.
pub async fn wait_rolled_out<K>(
    api: &Api<K>,
    name: &str,
    rollout: fn(&K) -> Rollout,
    timeout: Duration,
) -> Result<(), RolloutError>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    // The condition is called for every version of the object the watch delivers; the timeout
    // error names the last one.
    let last_seen = Mutex::new(String::from("no status read yet"));
    let rolled_out = |object: Option<&K>| {
        let Rollout { done, seen } = match object {
            Some(object) => rollout(object),
            None => Rollout {
                done: false,
                seen: "the object does not exist".to_owned(),
            },
        };
        *last_seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        done
    };
    let waited = tokio::time::timeout(
        timeout,
        kube::runtime::wait::await_condition(api.clone(), name, rolled_out),
    )
    .await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::runtime::wait::Error::ProbeFailed(error))) => Err(RolloutError::Kube {
            what: workload(api, name),
            source: Box::new(client_error(error)),
        }),
        Err(_elapsed) => Err(RolloutError::Timeout {
            what: workload(api, name),
            timeout,
            seen: last_seen.into_inner().unwrap_or_else(|e| e.into_inner()),
        }),
    }
}

/// The client error under a failed watch (the watch lists and watches instead of getting).
fn client_error(error: kube::runtime::watcher::Error) -> kube::Error {
    use kube::runtime::watcher::Error;
    match error {
        Error::InitialListFailed(error)
        | Error::WatchStartFailed(error)
        | Error::WatchFailed(error) => error,
        Error::WatchError(status) => kube::Error::Api(status),
        other @ Error::NoResourceVersion => kube::Error::Service(Box::new(other)),
    }
}

/// `DaemonSet kube-system/cilium`: the kind and the namespaced name.
pub fn workload<K>(api: &Api<K>, name: &str) -> String
where
    K: kube::Resource,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    match api.namespace() {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(
        generation: i64,
        observed: i64,
        total: i32,
        updated: i32,
        ready: i32,
    ) -> Deployment {
        serde_json::from_value(json!({
            "metadata": { "generation": generation },
            "spec": { "replicas": 2, "selector": {}, "template": {} },
            "status": { "observedGeneration": observed, "replicas": total, "updatedReplicas": updated,
                        "readyReplicas": ready, "availableReplicas": ready }
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A DaemonSet that should run on 3 nodes.
    fn daemon_set(
        generation: Option<i64>,
        observed: Option<i64>,
        updated: i32,
        ready: i32,
        available: i32,
    ) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": { "name": "cilium", "generation": generation },
            "spec": { "selector": { "matchLabels": { "k8s-app": "cilium" } }, "template": {} },
            "status": { "observedGeneration": observed, "desiredNumberScheduled": 3,
                        "currentNumberScheduled": 3, "numberMisscheduled": 0,
                        "updatedNumberScheduled": updated, "numberReady": ready,
                        "numberAvailable": available }
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn deployments_wait_for_the_new_generation_everywhere_and_no_old_replica() {
        // (generation, observed, total, updated, ready), done, why
        let cases = [
            ((3, 3, 2, 2, 2), true, "rolled out"),
            ((3, 2, 2, 2, 2), false, "generation 3 not observed yet"),
            ((3, 3, 3, 2, 2), false, "an old pod is still there"),
            (
                (3, 3, 2, 1, 2),
                false,
                "one replica still on the old template",
            ),
            ((3, 3, 2, 2, 1), false, "one replica not ready"),
        ];
        for ((generation, observed, total, updated, ready), done, why) in cases {
            let rollout =
                deployment_rollout(&deployment(generation, observed, total, updated, ready));
            assert_eq!(rollout.done, done, "{why}: {}", rollout.seen);
        }
        let seen = deployment_rollout(&deployment(3, 2, 3, 1, 1)).seen;
        assert_eq!(
            seen,
            "observed generation 2 of 3, 1 updated, 1 available, 1 ready, 3 total, 2 wanted"
        );
    }

    #[test]
    fn a_deployment_without_replicas_wants_one() -> Result<(), serde_json::Error> {
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": { "generation": 1 },
            "spec": { "selector": {}, "template": {} },
            "status": { "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                        "readyReplicas": 1, "availableReplicas": 1 }
        }))?;
        assert!(deployment_rollout(&deployment).done);
        Ok(())
    }

    #[test]
    fn daemon_sets_wait_for_every_pod_updated_available_and_ready() {
        // (generation, observed, updated, ready, available) of 3 desired, done, why
        let cases = [
            ((1, 1, 3, 3, 3), true, "rolled out"),
            ((5, 5, 3, 3, 3), true, "rolled out at a later generation"),
            (
                (2, 1, 3, 3, 3),
                false,
                "just restarted: generation 2 not observed yet",
            ),
            ((2, 2, 1, 3, 3), false, "two pods still on the old template"),
            ((5, 5, 2, 3, 3), false, "one pod still on the old template"),
            ((2, 2, 3, 2, 2), false, "one pod not ready"),
            (
                (5, 5, 3, 3, 2),
                false,
                "ready but not yet available (minReadySeconds)",
            ),
        ];
        for ((generation, observed, updated, ready, available), done, why) in cases {
            let rollout = daemon_set_rollout(&daemon_set(
                Some(generation),
                Some(observed),
                updated,
                ready,
                available,
            ));
            assert_eq!(rollout.done, done, "{why}: {}", rollout.seen);
        }
        let Rollout { seen, .. } = daemon_set_rollout(&daemon_set(Some(5), Some(5), 2, 3, 3));
        assert!(seen.contains("2 updated"), "{seen}");
        assert_eq!(
            seen,
            "observed generation 5 of 5, 2 updated, 3 available, 3 ready, 3 desired"
        );
    }

    #[test]
    fn only_the_generation_the_object_carries_counts_as_observed() -> Result<(), serde_json::Error>
    {
        // (metadata.generation, status.observedGeneration), done
        let cases = [
            (Some(5), Some(5), true),
            (Some(5), None, false),
            (Some(5), Some(4), false),
            // Never written by a real controller; the stricter reading refuses it.
            (Some(5), Some(6), false),
            (None, Some(1), false),
        ];
        for (generation, observed, done) in cases {
            let rollout = daemon_set_rollout(&daemon_set(generation, observed, 3, 3, 3));
            assert_eq!(rollout.done, done, "{}", rollout.seen);
        }
        let no_status: DaemonSet = serde_json::from_value(json!({
            "metadata": { "generation": 1 },
            "spec": { "selector": {}, "template": {} }
        }))?;
        assert_eq!(
            daemon_set_rollout(&no_status),
            Rollout {
                done: false,
                seen: "no status yet".to_owned()
            }
        );
        Ok(())
    }
}
