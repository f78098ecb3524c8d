//! Which Kubespray era installed the Cilium that runs, decided from live objects.
//!
//! [`detect`] is a pure function over a [`ClusterState`] (recorded or collected by
//! [`collect_state`]). The decision, in order:
//!
//! 1. **Handed over**: the journal of this tool is finished, or the `kube-system` namespace
//!    carries the [`HANDOVER_MARKER_ANNOTATION`] this tool writes at the end, or the release
//!    `cilium` is deployed, every Cilium object carries its Helm metadata, and the inventory no
//!    longer manages Cilium (`kube_network_plugin` is not `cilium`). Requires a deployed release.
//! 2. **In progress**: the journal has an unfinished step (a mixed state is expected then).
//! 3. A release whose latest revision is not `deployed`/`superseded` (pending-*, failed,
//!    uninstalling) is refused: Helm itself would refuse or misbehave.
//! 4. **Template era** (Kubespray <= v2.27): no release, DaemonSet `cilium` selecting
//!    `k8s-app: cilium`, applied by `kubectl apply` (last-applied annotation), no object with
//!    Helm metadata.
//! 5. **cilium-cli release** (Kubespray >= v2.28): a deployed release `cilium` in
//!    `kube-system` and every Cilium object owned by it, while the inventory still manages
//!    Cilium (or says nothing).
//! 6. Anything else is refused with the objects that do not fit: some objects Helm-owned and
//!    some not, objects owned by another release, partial ownership metadata, no Cilium at all.

use std::fmt;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::journal::{JournalStatus, Step};
use crate::object::{self, HelmOwner, LAST_APPLIED_ANNOTATION, ObjectRef};
use crate::template_era::{self, NAMESPACE};

/// Name of the release, as cilium-cli and this tool create it.
pub const RELEASE_NAME: &str = "cilium";
/// Namespace of the release.
pub const RELEASE_NAMESPACE: &str = "kube-system";
/// Annotation this tool sets on namespace `kube-system` when a hand-over finished.
pub const HANDOVER_MARKER_ANNOTATION: &str = "cilium-migrate.kubespray.io/handed-over";

/// One revision of a Helm release, from the labels of its storage Secret
/// `sh.helm.release.v1.<name>.v<N>` (`owner=helm`, `name`, `status`, `version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRecord {
    /// Release name.
    pub name: String,
    /// Revision number.
    pub revision: u32,
    /// `deployed`, `superseded`, `failed`, `pending-install`, ...
    pub status: String,
}

impl ReleaseRecord {
    /// Reads a storage Secret (JSON); `None` when it is not a Helm release record.
    pub fn from_secret(secret: &Value) -> Option<ReleaseRecord> {
        if object::label(secret, "owner") != Some("helm") {
            return None;
        }
        Some(ReleaseRecord {
            name: object::label(secret, "name")?.to_owned(),
            revision: object::label(secret, "version")?.parse().ok()?,
            status: object::label(secret, "status")?.to_owned(),
        })
    }
}

/// Whether the Kubespray inventory still installs Cilium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryClaim {
    /// `kube_network_plugin: cilium` (or `cilium_deploy_additionally`).
    ManagesCilium,
    /// `kube_network_plugin` is something else (after the hand-over: `cni`).
    DoesNotManageCilium,
    /// No inventory given.
    Unknown,
}

/// What the cluster looks like, as far as era detection cares.
#[derive(Debug, Clone, Default)]
pub struct ClusterState {
    /// The template-era objects that exist (JSON, as the API returns them).
    pub objects: Vec<Value>,
    /// Revisions of release `cilium` in `kube-system`.
    pub releases: Vec<ReleaseRecord>,
    /// Value of [`HANDOVER_MARKER_ANNOTATION`] on namespace `kube-system`.
    pub handover_marker: Option<String>,
}

/// The era of the running Cilium.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// Kubespray <= v2.27: Jinja manifests applied with `kubectl apply`, no release.
    TemplateManifests {
        /// Agent image version, e.g. `1.15.9`.
        cilium_version: Option<String>,
    },
    /// Kubespray >= v2.28: release `cilium` installed by cilium-cli.
    CiliumCliRelease {
        /// Latest deployed revision.
        revision: u32,
        /// Agent image version.
        cilium_version: Option<String>,
    },
    /// The hand-over already happened: nothing to do.
    HandedOver {
        /// Latest deployed revision.
        revision: u32,
        /// What says so.
        evidence: HandoverEvidence,
    },
    /// A migration of this tool is under way; resume at this step.
    InProgress {
        /// The step a re-run starts with.
        next_step: Step,
    },
}

/// Why the cluster counts as handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoverEvidence {
    /// The journal is finished.
    Journal,
    /// The marker annotation on `kube-system`.
    Marker,
    /// The release owns everything and the inventory no longer manages Cilium.
    InventoryReleased,
}

/// Why the era cannot be decided; each names what to look at and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EraError {
    /// No DaemonSet `cilium` and no release.
    #[error(
        "no Cilium found: kube-system has no DaemonSet cilium and no Helm release cilium; \
         check the kubeconfig context points at the Kubespray cluster"
    )]
    NoCilium,
    /// The latest release revision is in a state Helm cannot upgrade from.
    #[error(
        "release cilium revision {revision} is {status}: a previous Helm operation did not finish; \
         run `helm rollback cilium -n kube-system` to the last deployed revision (or, for a \
         pending-install with no deployed revision, delete Secret kube-system/sh.helm.release.v1.cilium.v{revision}), \
         then run again"
    )]
    ReleaseNotSettled {
        /// The revision.
        revision: u32,
        /// Its status.
        status: String,
    },
    /// Objects belong to another release.
    #[error(
        "{} belong to another Helm release ({}); the chart cannot adopt them: rename or remove that release first",
        list(objects), owners.join(", ")
    )]
    OwnedByOtherRelease {
        /// The objects.
        objects: Vec<ObjectRef>,
        /// `namespace/name` of the releases.
        owners: Vec<String>,
    },
    /// Some objects carry only part of the Helm ownership metadata.
    #[error(
        "{} carry only part of Helm's ownership metadata (app.kubernetes.io/managed-by, meta.helm.sh/release-name, \
         meta.helm.sh/release-namespace): an adoption was interrupted or edited by hand; resume with the bundle of \
         that run, or run rollback with it",
        list(.0)
    )]
    PartialOwnership(Vec<ObjectRef>),
    /// Some objects are owned by the release `cilium`, some not.
    #[error(
        "mixed state: {} carry Helm metadata of release cilium but {} do not{}; resume the migration with the bundle \
         of the interrupted run, or run rollback with it",
        list(owned), list(unowned), release_note(*has_release)
    )]
    Mixed {
        /// Objects owned by the release.
        owned: Vec<ObjectRef>,
        /// Objects without Helm metadata.
        unowned: Vec<ObjectRef>,
        /// Whether release records exist.
        has_release: bool,
    },
    /// The DaemonSet does not look like Kubespray's or the chart's.
    #[error("unknown state: {0}")]
    Unknown(String),
}

fn release_note(has_release: bool) -> &'static str {
    if has_release {
        ""
    } else {
        " and no release cilium exists"
    }
}

fn list(objects: &[ObjectRef]) -> String {
    let names: Vec<String> = objects.iter().map(ToString::to_string).collect();
    names.join(", ")
}

impl fmt::Display for Era {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Era::TemplateManifests { cilium_version } => write!(
                f,
                "Kubespray template era (<= v2.27), Cilium {}",
                cilium_version.as_deref().unwrap_or("(unknown version)")
            ),
            Era::CiliumCliRelease {
                revision,
                cilium_version,
            } => write!(
                f,
                "Kubespray cilium-cli era (>= v2.28), release cilium revision {revision}, Cilium {}",
                cilium_version.as_deref().unwrap_or("(unknown version)")
            ),
            Era::HandedOver { revision, .. } => {
                write!(
                    f,
                    "already handed over to Helm (release cilium revision {revision})"
                )
            }
            Era::InProgress { next_step } => {
                write!(f, "migration in progress, next step {next_step}")
            }
        }
    }
}

/// Decides the era (see the module documentation for the rules).
pub fn detect(
    state: &ClusterState,
    journal: JournalStatus,
    inventory: InventoryClaim,
) -> Result<Era, EraError> {
    let latest = state
        .releases
        .iter()
        .filter(|r| r.name == RELEASE_NAME)
        .max_by_key(|r| r.revision);
    let deployed = state
        .releases
        .iter()
        .filter(|r| r.name == RELEASE_NAME && r.status == "deployed")
        .max_by_key(|r| r.revision);

    match journal {
        JournalStatus::Finished => return handed_over(deployed, HandoverEvidence::Journal),
        JournalStatus::InProgress(next_step) => return Ok(Era::InProgress { next_step }),
        JournalStatus::Absent => {}
    }
    if state.handover_marker.is_some() {
        return handed_over(deployed, HandoverEvidence::Marker);
    }
    if let Some(latest) = latest
        && !matches!(latest.status.as_str(), "deployed" | "superseded")
    {
        return Err(EraError::ReleaseNotSettled {
            revision: latest.revision,
            status: latest.status.clone(),
        });
    }

    let mut owned = Vec::new();
    let mut unowned = Vec::new();
    let mut partial = Vec::new();
    let mut foreign = Vec::new();
    let mut owners = Vec::new();
    for o in &state.objects {
        let Some(r) = ObjectRef::of(o) else { continue };
        match object::helm_owner(o) {
            HelmOwner::None => unowned.push(r),
            HelmOwner::Partial => partial.push(r),
            HelmOwner::Release { name, namespace } => {
                if name == RELEASE_NAME && namespace == RELEASE_NAMESPACE {
                    owned.push(r);
                } else {
                    let owner = format!("{namespace}/{name}");
                    if !owners.contains(&owner) {
                        owners.push(owner);
                    }
                    foreign.push(r);
                }
            }
        }
    }
    if !foreign.is_empty() {
        return Err(EraError::OwnedByOtherRelease {
            objects: foreign,
            owners,
        });
    }
    if !partial.is_empty() {
        return Err(EraError::PartialOwnership(partial));
    }

    let daemonset = state.objects.iter().find(|o| {
        ObjectRef::of(o).is_some_and(|r| {
            r.kind == "DaemonSet"
                && r.group() == "apps"
                && r.name == "cilium"
                && r.namespace.as_deref() == Some(NAMESPACE)
        })
    });
    let Some(daemonset) = daemonset else {
        return match deployed {
            None => Err(EraError::NoCilium),
            Some(r) => Err(EraError::Unknown(format!(
                "release cilium revision {} is deployed but DaemonSet kube-system/cilium does not exist; \
                 run `helm rollback cilium -n kube-system` or reinstall before handing over",
                r.revision
            ))),
        };
    };
    if object::str_at(daemonset, &["spec", "selector", "matchLabels", "k8s-app"]) != Some("cilium")
    {
        return Err(EraError::Unknown(
            "DaemonSet kube-system/cilium does not select k8s-app: cilium, which both Kubespray and the chart use; \
             this is neither a Kubespray nor a chart install"
                .into(),
        ));
    }
    let cilium_version = agent_version(daemonset);

    match deployed {
        None => {
            if !owned.is_empty() {
                return Err(EraError::Mixed {
                    owned,
                    unowned,
                    has_release: !state.releases.is_empty(),
                });
            }
            if object::annotation(daemonset, LAST_APPLIED_ANNOTATION).is_none() {
                return Err(EraError::Unknown(
                    "DaemonSet kube-system/cilium has no kubectl.kubernetes.io/last-applied-configuration \
                     annotation and no Helm release: it was not installed by Kubespray's templates \
                     (kubectl apply) nor by Helm"
                        .into(),
                ));
            }
            Ok(Era::TemplateManifests { cilium_version })
        }
        Some(release) => {
            if !unowned.is_empty() {
                return Err(EraError::Mixed {
                    owned,
                    unowned,
                    has_release: true,
                });
            }
            match inventory {
                InventoryClaim::DoesNotManageCilium => Ok(Era::HandedOver {
                    revision: release.revision,
                    evidence: HandoverEvidence::InventoryReleased,
                }),
                // Without an inventory that says otherwise, treat the release as Kubespray's:
                // handing over an already-handed-over release again changes nothing.
                InventoryClaim::ManagesCilium | InventoryClaim::Unknown => {
                    Ok(Era::CiliumCliRelease {
                        revision: release.revision,
                        cilium_version,
                    })
                }
            }
        }
    }
}

fn handed_over(
    deployed: Option<&ReleaseRecord>,
    evidence: HandoverEvidence,
) -> Result<Era, EraError> {
    match deployed {
        Some(r) => Ok(Era::HandedOver {
            revision: r.revision,
            evidence,
        }),
        None => Err(EraError::Unknown(format!(
            "{} says the hand-over finished, but release cilium has no deployed revision: \
             it was uninstalled or failed since; run rollback with the bundle, or check `helm history cilium -n kube-system`",
            match evidence {
                HandoverEvidence::Journal => "the journal",
                HandoverEvidence::Marker => "the marker annotation on namespace kube-system",
                HandoverEvidence::InventoryReleased => "the inventory",
            }
        ))),
    }
}

/// The version of the agent image (`quay.io/cilium/cilium:v1.15.9@sha256:...` gives `1.15.9`).
pub fn agent_version(daemonset: &Value) -> Option<String> {
    let containers = object::value_at(daemonset, &["spec", "template", "spec", "containers"])?;
    let container = containers
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some("cilium-agent"))
        .or_else(|| containers.as_array()?.first())?;
    let image = container.get("image")?.as_str()?;
    let without_digest = image.split('@').next()?;
    let (repo, tag) = without_digest.rsplit_once(':')?;
    // A registry port (`host:5000/cilium`) is not a tag.
    if tag.contains('/') || repo.is_empty() {
        return None;
    }
    Some(tag.trim_start_matches('v').to_owned())
}

/// Errors collecting the cluster state.
#[derive(Debug, thiserror::Error)]
#[error("reading {what} from the API server: {source}")]
pub struct CollectError {
    /// What was being read.
    pub what: String,
    /// The API error.
    pub source: kube::Error,
}

/// Reads the [`ClusterState`] through the API: the template-era objects by name, the release
/// records of `cilium`, and the hand-over marker.
pub async fn collect_state(client: &Client) -> Result<ClusterState, CollectError> {
    let mut state = ClusterState::default();
    for kind in template_era::TEMPLATE_OBJECTS {
        let gvk = kube::api::GroupVersionKind::gvk(
            object::group_of(kind.api_version),
            object::version_of(kind.api_version),
            kind.kind,
        );
        let resource = ApiResource::from_gvk_with_plural(&gvk, kind.plural);
        let api: Api<DynamicObject> = if kind.namespaced {
            Api::namespaced_with(client.clone(), NAMESPACE, &resource)
        } else {
            Api::all_with(client.clone(), &resource)
        };
        for name in kind.names {
            let found = api.get_opt(name).await.map_err(|source| CollectError {
                what: format!("{} {name}", kind.kind),
                source,
            })?;
            if let Some(mut o) = found {
                o.types = Some(kube::api::TypeMeta {
                    api_version: kind.api_version.to_owned(),
                    kind: kind.kind.to_owned(),
                });
                state
                    .objects
                    .push(serde_json::to_value(&o).unwrap_or(Value::Null));
            }
        }
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let records = secrets
        .list_metadata(&ListParams::default().labels(&format!("owner=helm,name={RELEASE_NAME}")))
        .await
        .map_err(|source| CollectError {
            what: "Helm release Secrets".into(),
            source,
        })?;
    for s in records.items {
        let json = serde_json::json!({ "metadata": { "labels": s.metadata.labels } });
        if let Some(r) = ReleaseRecord::from_secret(&json) {
            state.releases.push(r);
        }
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = namespaces
        .get_metadata("kube-system")
        .await
        .map_err(|source| CollectError {
            what: "namespace kube-system".into(),
            source,
        })?;
    state.handover_marker = ns
        .metadata
        .annotations
        .and_then(|mut a| a.remove(HANDOVER_MARKER_ANNOTATION));
    Ok(state)
}

/// Writes the hand-over marker on namespace `kube-system` (the last act of a finished
/// migration): `value` says when, or by which run.
pub async fn write_handover_marker(client: &Client, value: &str) -> Result<(), CollectError> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch =
        serde_json::json!({"metadata": {"annotations": {HANDOVER_MARKER_ANNOTATION: value}}});
    namespaces
        .patch(
            "kube-system",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .map_err(|source| CollectError {
            what: "the hand-over marker on namespace kube-system".into(),
            source,
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// DaemonSet `cilium` as Kubespray v2.27.1 leaves it (trimmed recording).
    fn template_daemonset() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {
                "name": "cilium", "namespace": "kube-system", "uid": "b3f5",
                "labels": {"k8s-app": "cilium"},
                "annotations": {
                    "deprecated.daemonset.template.generation": "1",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\"}\n"
                }
            },
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "cilium"}},
                "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
                    "spec": {"containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.15.9"}]}}
            }
        })
    }

    fn simple(kind: &str, api_version: &str, name: &str, namespaced: bool) -> Value {
        let mut meta = json!({"name": name, "annotations": {LAST_APPLIED_ANNOTATION: "{}"}});
        if namespaced {
            meta["namespace"] = json!("kube-system");
        }
        json!({"apiVersion": api_version, "kind": kind, "metadata": meta})
    }

    fn helm_owned(mut o: Value, release: &str) -> Value {
        let meta = o["metadata"].as_object_mut().unwrap();
        meta.entry("labels").or_insert(json!({}))["app.kubernetes.io/managed-by"] = json!("Helm");
        let ann = meta.entry("annotations").or_insert(json!({}));
        ann["meta.helm.sh/release-name"] = json!(release);
        ann["meta.helm.sh/release-namespace"] = json!("kube-system");
        ann.as_object_mut().unwrap().remove(LAST_APPLIED_ANNOTATION);
        o
    }

    fn template_state() -> ClusterState {
        ClusterState {
            objects: vec![
                template_daemonset(),
                simple("ServiceAccount", "v1", "cilium", true),
                simple("ConfigMap", "v1", "cilium-config", true),
                simple(
                    "ClusterRole",
                    "rbac.authorization.k8s.io/v1",
                    "cilium",
                    false,
                ),
            ],
            ..Default::default()
        }
    }

    fn cli_state(status: &str) -> ClusterState {
        let mut s = template_state();
        s.objects = s
            .objects
            .into_iter()
            .map(|o| helm_owned(o, "cilium"))
            .collect();
        s.releases = vec![
            ReleaseRecord {
                name: "cilium".into(),
                revision: 1,
                status: "superseded".into(),
            },
            ReleaseRecord {
                name: "cilium".into(),
                revision: 2,
                status: status.into(),
            },
        ];
        s
    }

    #[test]
    fn template_era_objects_without_release() {
        let era = detect(
            &template_state(),
            JournalStatus::Absent,
            InventoryClaim::ManagesCilium,
        )
        .unwrap();
        assert_eq!(
            era,
            Era::TemplateManifests {
                cilium_version: Some("1.15.9".into())
            }
        );
    }

    #[test]
    fn cilium_cli_release() {
        let era = detect(
            &cli_state("deployed"),
            JournalStatus::Absent,
            InventoryClaim::ManagesCilium,
        )
        .unwrap();
        assert_eq!(
            era,
            Era::CiliumCliRelease {
                revision: 2,
                cilium_version: Some("1.15.9".into())
            }
        );
        let era = detect(
            &cli_state("deployed"),
            JournalStatus::Absent,
            InventoryClaim::Unknown,
        )
        .unwrap();
        assert!(matches!(era, Era::CiliumCliRelease { .. }));
    }

    #[test]
    fn handed_over_by_journal_marker_or_inventory() {
        let s = cli_state("deployed");
        let by_inventory = detect(
            &s,
            JournalStatus::Absent,
            InventoryClaim::DoesNotManageCilium,
        )
        .unwrap();
        assert_eq!(
            by_inventory,
            Era::HandedOver {
                revision: 2,
                evidence: HandoverEvidence::InventoryReleased
            }
        );
        let by_journal =
            detect(&s, JournalStatus::Finished, InventoryClaim::ManagesCilium).unwrap();
        assert_eq!(
            by_journal,
            Era::HandedOver {
                revision: 2,
                evidence: HandoverEvidence::Journal
            }
        );
        let mut marked = s.clone();
        marked.handover_marker = Some("2026-11-26T18:00:00Z".into());
        let by_marker = detect(&marked, JournalStatus::Absent, InventoryClaim::Unknown).unwrap();
        assert_eq!(
            by_marker,
            Era::HandedOver {
                revision: 2,
                evidence: HandoverEvidence::Marker
            }
        );
        // A finished journal without a deployed release is not "done", it is a problem.
        let err = detect(
            &template_state(),
            JournalStatus::Finished,
            InventoryClaim::Unknown,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no deployed revision"), "{err}");
    }

    #[test]
    fn a_journal_in_progress_wins_over_a_mixed_state() {
        let mut s = template_state();
        s.objects[1] = helm_owned(s.objects[1].clone(), "cilium");
        let era = detect(
            &s,
            JournalStatus::InProgress(Step::AdoptMetadata),
            InventoryClaim::Unknown,
        )
        .unwrap();
        assert_eq!(
            era,
            Era::InProgress {
                next_step: Step::AdoptMetadata
            }
        );
    }

    #[test]
    fn refusals_name_the_objects_and_the_fix() {
        // Some objects adopted, no journal: an interrupted run whose bundle was lost.
        let mut s = template_state();
        s.objects[1] = helm_owned(s.objects[1].clone(), "cilium");
        let err = detect(&s, JournalStatus::Absent, InventoryClaim::Unknown).unwrap_err();
        assert!(
            matches!(err, EraError::Mixed { ref owned, .. } if owned.len() == 1),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("ServiceAccount kube-system/cilium"),
            "{err}"
        );
        assert!(
            err.to_string().contains("no release cilium exists"),
            "{err}"
        );

        // A deployed release but one object still Kubespray's.
        let mut s = cli_state("deployed");
        s.objects[2] = simple("ConfigMap", "v1", "cilium-config", true);
        let err = detect(&s, JournalStatus::Absent, InventoryClaim::Unknown).unwrap_err();
        assert!(
            matches!(err, EraError::Mixed { ref unowned, has_release: true, .. } if unowned.len() == 1)
        );

        // Another release owns the DaemonSet.
        let mut s = template_state();
        s.objects[0] = helm_owned(template_daemonset(), "my-cilium");
        let err = detect(&s, JournalStatus::Absent, InventoryClaim::Unknown).unwrap_err();
        assert!(err.to_string().contains("kube-system/my-cilium"), "{err}");

        // Half the metadata.
        let mut s = template_state();
        s.objects[2]["metadata"]["labels"] = json!({"app.kubernetes.io/managed-by": "Helm"});
        s.objects[2]["metadata"]["annotations"]["meta.helm.sh/release-name"] = json!("cilium");
        let err = detect(&s, JournalStatus::Absent, InventoryClaim::Unknown).unwrap_err();
        assert_eq!(
            err,
            EraError::PartialOwnership(vec![ObjectRef::new(
                "v1",
                "ConfigMap",
                Some("kube-system"),
                "cilium-config"
            )])
        );

        // Nothing at all.
        let err = detect(
            &ClusterState::default(),
            JournalStatus::Absent,
            InventoryClaim::Unknown,
        )
        .unwrap_err();
        assert_eq!(err, EraError::NoCilium);

        // A DaemonSet that nobody we know installed.
        let mut s = template_state();
        s.objects[0]["metadata"]["annotations"] = json!({});
        let err = detect(&s, JournalStatus::Absent, InventoryClaim::Unknown).unwrap_err();
        assert!(matches!(err, EraError::Unknown(_)), "{err}");
        let mut s = template_state();
        s.objects[0]["spec"]["selector"] = json!({"matchLabels": {"app": "cilium-agent"}});
        assert!(matches!(
            detect(&s, JournalStatus::Absent, InventoryClaim::Unknown),
            Err(EraError::Unknown(_))
        ));
    }

    #[test]
    fn unsettled_releases_are_refused_with_the_helm_fix() {
        for status in [
            "pending-install",
            "pending-upgrade",
            "pending-rollback",
            "failed",
            "uninstalling",
        ] {
            let err = detect(
                &cli_state(status),
                JournalStatus::Absent,
                InventoryClaim::Unknown,
            )
            .unwrap_err();
            assert_eq!(
                err,
                EraError::ReleaseNotSettled {
                    revision: 2,
                    status: status.into()
                }
            );
            assert!(
                err.to_string()
                    .contains("helm rollback cilium -n kube-system"),
                "{err}"
            );
        }
    }

    #[test]
    fn release_records_come_from_storage_secret_labels() {
        let secret = json!({"metadata": {"name": "sh.helm.release.v1.cilium.v3",
            "labels": {"owner": "helm", "name": "cilium", "status": "deployed", "version": "3"}}});
        assert_eq!(
            ReleaseRecord::from_secret(&secret),
            Some(ReleaseRecord {
                name: "cilium".into(),
                revision: 3,
                status: "deployed".into()
            })
        );
        let not_helm = json!({"metadata": {"labels": {"name": "cilium", "status": "deployed", "version": "3"}}});
        assert_eq!(ReleaseRecord::from_secret(&not_helm), None);
    }

    #[test]
    fn agent_version_from_image_reference() {
        let mut ds = template_daemonset();
        for (image, want) in [
            ("quay.io/cilium/cilium:v1.15.9", Some("1.15.9")),
            ("quay.io/cilium/cilium:v1.17.3@sha256:abcd", Some("1.17.3")),
            ("registry.local:5000/cilium/cilium:1.16.1", Some("1.16.1")),
            ("registry.local:5000/cilium/cilium", None),
        ] {
            ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            assert_eq!(agent_version(&ds).as_deref(), want, "{image}");
        }
    }

    /// The tag is read as a chart version with semver: a pre-release runs as its release, and a
    /// tag that is no version is refused with the tag in the message.
    #[test]
    fn agent_tags_read_as_chart_versions() {
        let mut ds = template_daemonset();
        let mut chart = |image: &str| {
            ds["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            let tag = agent_version(&ds).expect("a tag");
            cilium_values::ChartVersion::parse(&tag).map_err(|e| e.to_string())
        };
        let rc = chart("quay.io/cilium/cilium:v1.18.0-rc.1@sha256:abcd").expect("parses");
        assert_eq!(rc.to_string(), "1.18.0");
        let error = chart("quay.io/cilium/cilium:latest").expect_err("no version");
        assert!(error.contains("`latest`"), "{error}");
    }
}
