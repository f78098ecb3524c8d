//! The functional probe: one short-lived Job pinned to each node whose pod resolves
//! `kubernetes.default` (init container `resolve`) and then calls the API server's `/healthz`
//! through the `kubernetes` Service (container `healthz`). Each step is its own container with an
//! argument vector, so no shell is involved and a failure names the step that failed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, Pod, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt as _, reflector, watcher};
use kube::{Api, Client, ResourceExt};

use crate::Error;
use crate::report::{Check, State};

/// Default probe image: small, with busybox `nslookup` and `wget` (HTTPS through `ssl_client`).
pub const DEFAULT_PROBE_IMAGE: &str = "docker.io/library/alpine:3.22";

/// Label every probe object carries, so they can be found and cleaned up.
pub const PROBE_NAME_LABEL: &str = "app.kubernetes.io/name";
/// Value of [`PROBE_NAME_LABEL`] on probe objects.
pub const PROBE_NAME: &str = "cilium-verify-probe";
/// Label holding one probe run's id.
pub const PROBE_RUN_LABEL: &str = "cilium-verify/run";
/// Annotation naming the node a probe Job is pinned to.
pub const PROBE_NODE_ANNOTATION: &str = "cilium-verify/node";

/// The URL the probe calls: the API server through the `kubernetes` Service, by DNS name.
pub const HEALTHZ_URL: &str = "https://kubernetes.default.svc/healthz";

/// How long cleanup may take before leftovers are reported.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the probe runs and how long it waits.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Namespace the probe Jobs run in.
    pub namespace: String,
    /// Image with `nslookup` and `wget`.
    pub image: String,
    /// How long to wait for all probe pods to finish.
    pub timeout: Duration,
}

/// A run id unique enough to tell concurrent runs apart (time plus process id).
pub fn new_run_id() -> String {
    let nanos = jiff::Timestamp::now().as_nanosecond();
    format!("{:x}{:x}", nanos & 0xffff_ffff_ffff, std::process::id())
}

fn step(name: &str, image: &str, args: &[&str]) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        command: Some(args.iter().map(|a| (*a).to_owned()).collect()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("10m".to_owned())),
                ("memory".to_owned(), Quantity("16Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("64Mi".to_owned()),
            )])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Default::default()
    }
}

/// The probe Job for one node: pinned with `nodeName` (no scheduler, cordons don't matter),
/// tolerating every taint, unprivileged, pod network (not hostNetwork), no retries.
pub fn probe_job(namespace: &str, node: &str, image: &str, run_id: &str) -> Job {
    let labels = BTreeMap::from([
        (PROBE_NAME_LABEL.to_owned(), PROBE_NAME.to_owned()),
        (PROBE_RUN_LABEL.to_owned(), run_id.to_owned()),
    ]);
    let annotations = BTreeMap::from([(PROBE_NODE_ANNOTATION.to_owned(), node.to_owned())]);
    let metadata = ObjectMeta {
        generate_name: Some(format!("{PROBE_NAME}-")),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..Default::default()
    };
    let pod_spec = PodSpec {
        node_name: Some(node.to_owned()),
        restart_policy: Some("Never".to_owned()),
        tolerations: Some(vec![Toleration {
            operator: Some("Exists".to_owned()),
            ..Default::default()
        }]),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        termination_grace_period_seconds: Some(0),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65534),
            run_as_group: Some(65534),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        init_containers: Some(vec![step(
            "resolve",
            image,
            &["nslookup", "kubernetes.default"],
        )]),
        containers: vec![step(
            "healthz",
            image,
            &[
                "wget",
                "-q",
                "-O",
                "-",
                "-T",
                "5",
                "--no-check-certificate",
                HEALTHZ_URL,
            ],
        )],
        ..Default::default()
    };
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(300),
            // A safety net if cleanup is interrupted.
            ttl_seconds_after_finished: Some(600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod_spec),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The node a probe Job or pod is pinned to.
pub fn probe_node(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()?
        .get(PROBE_NODE_ANNOTATION)
        .map(String::as_str)
}

fn job_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

fn pod_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The container that failed first in a finished probe pod, with its exit code and message.
fn failed_step(pod: &Pod) -> Option<(String, i32, String)> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                (
                    c.name.clone(),
                    t.exit_code,
                    t.message.clone().unwrap_or_default().trim().to_owned(),
                )
            })
        })
}

/// The check for one node from what the probe left behind (pure: tested on recorded pods).
/// `pod` is the probe's pod (if one was created), `log` the failing step's log when it was read.
pub fn probe_outcome(node: &str, job: Option<&Job>, pod: Option<&Pod>, log: Option<&str>) -> Check {
    let name = format!("probe {node}");
    let Some(pod) = pod else {
        let why = if job.is_some() {
            "its Job created no pod"
        } else {
            "no probe Job"
        };
        return Check::new(name, State::Fail, format!("{why} in time"))
            .with_hint("check the Job's events (quota, admission policy): kubectl describe job -l app.kubernetes.io/name=cilium-verify-probe");
    };
    let pod_name = pod.name_any();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Unknown".to_owned());
    match phase.as_str() {
        "Succeeded" => Check::new(
            name,
            State::Pass,
            format!("pod {pod_name} resolved kubernetes.default and got /healthz ok"),
        ),
        "Failed" => {
            let (detail, hint) = match failed_step(pod) {
                Some((step, code, message)) => {
                    let text = log
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .unwrap_or(&message);
                    let hint = if step == "resolve" {
                        "DNS from pods on this node fails: check CoreDNS (and nodelocaldns) and that the \
                         Cilium agent on this node is ready"
                    } else {
                        "DNS works but the API server's Service is unreachable from this node's pods: \
                         check the Cilium agent on this node (kube-proxy replacement, routing)"
                    };
                    (
                        format!("pod {pod_name}: step {step} exited {code}: {text}")
                            .trim_end_matches(": ")
                            .to_owned(),
                        hint,
                    )
                }
                None => (
                    format!(
                        "pod {pod_name} Failed {}",
                        pod.status
                            .as_ref()
                            .and_then(|s| s.reason.clone())
                            .unwrap_or_default()
                    )
                    .trim_end()
                    .to_owned(),
                    "the probe pod failed before running: check its events",
                ),
            };
            Check::new(name, State::Fail, detail).with_hint(hint)
        }
        other => {
            let waiting = pod
                .status
                .as_ref()
                .into_iter()
                .flat_map(|s| {
                    s.init_container_statuses
                        .iter()
                        .flatten()
                        .chain(s.container_statuses.iter().flatten())
                })
                .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
            let detail = match &waiting {
                Some(reason) => format!("pod {pod_name} still {other} ({reason}) at the timeout"),
                None => format!("pod {pod_name} still {other} at the timeout"),
            };
            let check = Check::new(name, State::Fail, detail);
            match waiting.as_deref() {
                Some("ErrImagePull" | "ImagePullBackOff") => check.with_hint(
                    "the node cannot pull the probe image: pass --probe-image with an image it has",
                ),
                _ => check.with_hint(
                    "the pod did not finish: is the node's kubelet and Cilium agent up?",
                ),
            }
        }
    }
}

fn kube_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Kube {
        what,
        source: Box::new(source),
    }
}

/// Runs one probe Job per node, waits for them (up to the timeout), reads the results and deletes
/// every probe object it created, even when waiting failed.
pub async fn run_probes(
    client: &Client,
    nodes: &[String],
    options: &ProbeOptions,
) -> Result<Vec<Check>, Error> {
    let run_id = new_run_id();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &options.namespace);
    let selector = format!("{PROBE_RUN_LABEL}={run_id}");

    let mut created = Ok(());
    for node in nodes {
        let job = probe_job(&options.namespace, node, &options.image, &run_id);
        if let Err(e) = jobs.create(&PostParams::default(), &job).await {
            created = Err(kube_error(format!(
                "creating the probe Job for node {node}"
            ))(e));
            break;
        }
    }
    let outcome = match created {
        Ok(()) => wait_and_read(&jobs, &pods, &selector, nodes, options.timeout).await,
        Err(e) => Err(e),
    };
    let leftovers = clean_up(&jobs, &pods, &selector).await;
    let mut checks = outcome?;
    match leftovers {
        Ok(left) if left.is_empty() => {}
        Ok(left) => checks.push(
            Check::new(
                "probe cleanup",
                State::Warn,
                format!("still present: {}", left.join(", ")),
            )
            .with_hint(format!(
                "delete them: kubectl -n {} delete job,pod -l {selector}",
                options.namespace
            )),
        ),
        Err(e) => checks.push(Check::new("probe cleanup", State::Warn, e.to_string())),
    }
    Ok(checks)
}

/// Returns once every node's probe Job or pod has finished, watching both (kube's reflectors)
/// rather than polling. Watch errors are retried with kube's backoff; the caller's timeout bounds
/// the wait.
async fn wait_finished(jobs: &Api<Job>, pods: &Api<Pod>, selector: &str, nodes: &[String]) {
    let config = watcher::Config::default().labels(selector);
    let (job_store, job_writer) = reflector::store();
    let (pod_store, pod_writer) = reflector::store();
    let job_events = reflector(
        job_writer,
        watcher(jobs.clone(), config.clone()).default_backoff(),
    )
    .map(|_| ());
    let pod_events =
        reflector(pod_writer, watcher(pods.clone(), config).default_backoff()).map(|_| ());
    let mut events = std::pin::pin!(futures::stream::select(job_events, pod_events));
    let finished = || {
        let (jobs, pods) = (job_store.state(), pod_store.state());
        nodes.iter().all(|node| {
            jobs.iter()
                .any(|j| probe_node(&j.metadata) == Some(node) && job_finished(j))
                || pods
                    .iter()
                    .any(|p| probe_node(&p.metadata) == Some(node) && pod_finished(p))
        })
    };
    while events.next().await.is_some() {
        if finished() {
            return;
        }
    }
}

async fn wait_and_read(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    selector: &str,
    nodes: &[String],
    timeout: Duration,
) -> Result<Vec<Check>, Error> {
    // Timing out is not an error here: unfinished nodes are reported by `probe_outcome`.
    let _ = tokio::time::timeout(timeout, wait_finished(jobs, pods, selector, nodes)).await;
    let params = ListParams::default().labels(selector);
    let (job_list, pod_list) = list_probe_objects(jobs, pods, &params).await?;
    let mut checks = Vec::new();
    for node in nodes {
        let job = job_list
            .iter()
            .find(|j| probe_node(&j.metadata) == Some(node));
        // Prefer a finished pod if there are several (there should not be: backoffLimit 0).
        let pod = pod_list
            .iter()
            .filter(|p| probe_node(&p.metadata) == Some(node))
            .max_by_key(|p| pod_finished(p));
        let log = match pod.and_then(failed_step) {
            Some((container, _, _)) => {
                let params = LogParams {
                    container: Some(container),
                    tail_lines: Some(5),
                    ..Default::default()
                };
                // No log is fine (the node may be gone); the termination message is the fallback.
                pods.logs(&pod.map(ResourceExt::name_any).unwrap_or_default(), &params)
                    .await
                    .ok()
            }
            None => None,
        };
        checks.push(probe_outcome(node, job, pod, log.as_deref()));
    }
    Ok(checks)
}

/// Deletes the run's Jobs and pods and waits until they are gone; returns what is left.
async fn clean_up(jobs: &Api<Job>, pods: &Api<Pod>, selector: &str) -> Result<Vec<String>, Error> {
    let params = ListParams::default().labels(selector);
    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    jobs.delete_collection(&background, &params)
        .await
        .map_err(kube_error("deleting probe Jobs".into()))?;
    // Don't wait for the garbage collector: the pods are finished or useless now.
    pods.delete_collection(&DeleteParams::default().grace_period(0), &params)
        .await
        .map_err(kube_error("deleting probe pods".into()))?;
    // Wait for each object's deletion (kube's `await_condition`), bounded by CLEANUP_TIMEOUT.
    let (job_list, pod_list) = list_probe_objects(jobs, pods, &params).await?;
    let gone = futures::future::join(
        futures::future::join_all(job_list.iter().map(|j| deleted(jobs, j))),
        futures::future::join_all(pod_list.iter().map(|p| deleted(pods, p))),
    );
    // Timing out is fine: a fresh list says what is left over.
    let _ = tokio::time::timeout(CLEANUP_TIMEOUT, gone).await;
    let (jobs_left, pods_left) = list_probe_objects(jobs, pods, &params).await?;
    Ok(jobs_left
        .iter()
        .map(|j| format!("job/{}", j.name_any()))
        .chain(pods_left.iter().map(|p| format!("pod/{}", p.name_any())))
        .collect())
}

/// The run's Jobs and pods.
async fn list_probe_objects(
    jobs: &Api<Job>,
    pods: &Api<Pod>,
    params: &ListParams,
) -> Result<(Vec<Job>, Vec<Pod>), Error> {
    let job_list = jobs
        .list(params)
        .await
        .map_err(kube_error("listing probe Jobs".into()))?;
    let pod_list = pods
        .list(params)
        .await
        .map_err(kube_error("listing probe pods".into()))?;
    Ok((job_list.items, pod_list.items))
}

/// Returns once the object is gone (or its watch failed: the caller lists what is left).
async fn deleted<K>(api: &Api<K>, object: &K)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let uid = object.meta().uid.clone().unwrap_or_default();
    let _ = await_condition(
        api.clone(),
        &object.name_any(),
        conditions::is_deleted(&uid),
    )
    .await;
}
