//! The plan (no cluster writes): per hop the values, the render, and every behaviour change
//! against the previous hop (hop 1: what runs), weighed with the right agents' defaults.
//!
//! The plan holds no secret: its values are shown redacted ([`crate::redact`]), and each hop
//! pins the sha256 of the values file it installs, which [`values_files`] derives again from
//! the release for `--plan --apply`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use cilium_values::{
    ChartVersion, ConfigDifference, LiveConfig, WorkloadDifference, compare_config_across,
    compare_workloads,
};
use helm::{Capabilities, ChartSource, Helm, Manifest, TemplateRequest};
use migration::identity::ClusterIdentity;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::Error;
use crate::archive::ChartArchive;
use crate::redact::{Secrets, values_sha256};
use crate::values::{Dropped, HopValues, Translated, hop_values, pointer};

/// The plan file's format; a plan of another format is refused (format 1 held the values with
/// their secrets and no hash of them).
pub const PLAN_FORMAT: u32 = 2;

/// What runs before the upgrade: the release and the live objects the first hop is compared with.
#[derive(Debug, Clone)]
pub struct Start {
    /// The cluster (`None` offline).
    pub cluster: Option<ClusterIdentity>,
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// The release's current revision.
    pub revision: u32,
    /// The release's chart version.
    pub version: semver::Version,
    /// The release's user values (`helm get values -o json`).
    pub values: Json,
    /// The live `cilium-config` data.
    pub config: BTreeMap<String, String>,
    /// The live agent DaemonSet, operator and Hubble Deployments.
    pub workloads: Vec<Json>,
    /// The release's objects (`helm get manifest`), as `Kind/name`.
    pub objects: BTreeSet<String>,
    /// The cluster's Gateway API CRDs (empty offline): TLSRoutes stored at `v1alpha2` before
    /// 1.20 need the experimental TLSRoute of the 1.20 bundle.
    pub gateway_api_crds: Vec<cilium_gateway::state::CrdFacts>,
}

/// The release a plan starts from; `--plan` refuses a release that moved since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleasePin {
    /// Release name.
    pub name: String,
    /// Release namespace.
    pub namespace: String,
    /// Its revision when planned.
    pub revision: u32,
    /// Its chart version when planned.
    pub version: String,
}

/// A chart archive as the plan pins it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartPin {
    /// The archive's file name (`cilium-1.16.19.tgz`).
    pub file: String,
    /// sha256 of the archive.
    pub sha256: String,
}

/// One `cilium-config` difference (the gate's [`ConfigDifference`], as the plan file keeps it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigChange {
    /// The key.
    pub key: String,
    /// The value before the hop.
    pub before: Option<String>,
    /// The value after it.
    pub after: Option<String>,
    /// Whether the agent behaves differently.
    pub changes_behaviour: bool,
    /// Why (or why not), weighed with each side's agent defaults.
    pub reason: String,
}

impl From<&ConfigDifference> for ConfigChange {
    fn from(d: &ConfigDifference) -> Self {
        ConfigChange {
            key: d.key.clone(),
            before: d.live.clone(),
            after: d.rendered.clone(),
            changes_behaviour: d.changes_behaviour,
            reason: d.reason.clone(),
        }
    }
}

/// One workload difference (the workload gate's [`WorkloadDifference`], as the plan keeps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadChange {
    /// The difference's name.
    pub name: String,
    /// Before the hop.
    pub before: Option<Json>,
    /// After it.
    pub after: Option<Json>,
    /// What it changes on a node.
    pub effect: String,
    /// Whether it must be accepted.
    pub blocks: bool,
}

/// An object a hop adds or removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChange {
    /// `Kind/name`.
    pub object: String,
    /// Added or removed by the hop.
    pub added: bool,
}

/// The Gateway API CRDs a hop needs (`gatewayAPI.enabled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayApiNeed {
    /// The bundle (`v1.1.0`).
    pub bundle: String,
    /// `Kind version (required|optional, channel)`.
    pub crds: Vec<String>,
}

/// One behaviour change: accepted by its key with `--accept KEY` or by a reviewed plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BehaviourChange {
    /// `config:<cilium-config key>`, `workload:<difference>`, `object:<Kind/name>` or
    /// `value:<dotted path>`.
    pub key: String,
    /// What it changes, in one line.
    pub what: String,
}

impl fmt::Display for BehaviourChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.what)
    }
}

/// One hop of the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// The version before the hop.
    pub from: String,
    /// The chart version of the hop.
    pub version: String,
    /// The chart archive.
    pub chart: ChartPin,
    /// The whole values file `helm upgrade` gets, each secret-looking value shown as
    /// `<redacted>`.
    pub values: Json,
    /// sha256 of the exact values file `helm upgrade` gets (secrets included): `--plan --apply`
    /// derives the values again from the release and refuses the hop when this differs.
    #[serde(default)]
    pub values_sha256: String,
    /// The dotted paths of the values shown as `<redacted>`.
    #[serde(default)]
    pub values_redacted: Vec<String>,
    /// Values carried in another form (same behaviour).
    pub translated: Vec<Translated>,
    /// Values the chart no longer reads (left out; behaviour changes).
    pub dropped: Vec<Dropped>,
    /// Every `cilium-config` difference, the ones that keep the behaviour too.
    pub config: Vec<ConfigChange>,
    /// Every workload difference, the explained ones too.
    pub workloads: Vec<WorkloadChange>,
    /// Objects added or removed.
    pub objects: Vec<ObjectChange>,
    /// The Gateway API CRDs this minor needs, when `gatewayAPI.enabled`.
    pub gateway_api: Option<GatewayApiNeed>,
    /// Whether the preflight check runs before this hop (Cilium's upgrade guide: before every
    /// upgrade; it pre-pulls the image on every node).
    pub preflight: bool,
    /// What must be accepted.
    pub changes: Vec<BehaviourChange>,
}

/// The whole plan: what `--output json` prints and `--plan FILE` applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradePlan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// The cluster planned on.
    pub cluster: Option<ClusterIdentity>,
    /// The release as planned.
    pub release: ReleasePin,
    /// The last hop's version (the release's when there is nothing to do).
    pub target: String,
    /// The `upgradeCompatibility` every hop keeps.
    pub upgrade_compatibility: String,
    /// Where it comes from.
    pub upgrade_compatibility_origin: String,
    /// The hops, in order.
    pub hops: Vec<Hop>,
}

impl UpgradePlan {
    /// Every change of every hop, with the hop's version.
    pub fn changes(&self) -> impl Iterator<Item = (&str, &BehaviourChange)> {
        self.hops
            .iter()
            .flat_map(|h| h.changes.iter().map(move |c| (h.version.as_str(), c)))
    }

    /// The changes `accepted` does not name: a key accepts it in every hop, `VERSION=KEY`
    /// (`1.16.19=object:DaemonSet/cilium-envoy`) in one hop.
    pub fn unaccepted(&self, accepted: &[String]) -> Vec<(String, BehaviourChange)> {
        self.changes()
            .filter(|(version, change)| {
                !accepted.iter().any(|a| {
                    a == &change.key
                        || a.split_once('=')
                            .is_some_and(|(v, k)| v == *version && k == change.key)
                })
            })
            .map(|(version, change)| (version.to_owned(), change.clone()))
            .collect()
    }
}

/// Plans the hops to `charts` (the path's archives, in order) from `start`. `capabilities` are
/// the cluster's (its Kubernetes version and served APIs, which `helm upgrade` gives the chart):
/// `None` plans offline with Helm's built-in ones, so objects a chart renders only when the
/// cluster serves an API (Cilium's GatewayClass) are not in the plan.
pub fn plan(
    start: &Start,
    charts: &[ChartArchive],
    helm: &Helm,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<UpgradePlan, Error> {
    let (upgrade_compatibility, origin) = upgrade_compatibility(&start.values, &start.version);
    let mut secrets = Secrets::default();
    secrets.add_values(&start.values);
    secrets.add_config(&start.config);
    let mut previous = Previous {
        version: start.version.clone(),
        values: start.values.clone(),
        config: start.config.clone(),
        workloads: start.workloads.clone(),
        objects: start.objects.clone(),
    };
    let mut hops = Vec::new();
    for chart in charts {
        let hop = plan_hop(
            &previous,
            chart,
            &upgrade_compatibility,
            &mut secrets,
            helm,
            capabilities,
            scratch,
        )?;
        previous = hop.1;
        let mut hop = hop.0;
        hop.gateway_api = gateway_api_need(&hop.values, &previous.version, &start.gateway_api_crds);
        hops.push(hop);
    }
    Ok(UpgradePlan {
        format: PLAN_FORMAT,
        cluster: start.cluster.clone(),
        release: ReleasePin {
            name: start.release.clone(),
            namespace: start.namespace.clone(),
            revision: start.revision,
            version: start.version.to_string(),
        },
        target: hops
            .last()
            .map_or_else(|| start.version.to_string(), |h| h.version.clone()),
        upgrade_compatibility,
        upgrade_compatibility_origin: origin,
        hops,
    })
}

/// The `upgradeCompatibility` every hop keeps, and where it comes from.
fn upgrade_compatibility(values: &Json, version: &semver::Version) -> (String, String) {
    match pointer(values, &["upgradeCompatibility"]).and_then(Json::as_str) {
        Some(set) => (set.to_owned(), "the release's values".to_owned()),
        None => (
            format!("{}.{}", version.major, version.minor),
            format!(
                "the release's minor ({}.{}): the first installed minor this tool can know",
                version.major, version.minor
            ),
        ),
    }
}

/// The values of the hop to `chart` after a hop whose values and objects are `values` and
/// `objects`, and the chart rendered with them: [`plan`] and [`values_files`] both derive each
/// hop with this, so that a reviewed plan's values hash is of what `--apply` installs.
fn carry(
    values: &Json,
    objects: &BTreeSet<String>,
    chart: &ChartArchive,
    upgrade_compatibility: &str,
    helm: &Helm,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<(HopValues, Manifest), Error> {
    let envoy_runs = objects.contains("DaemonSet/cilium-envoy");
    let carried = hop_values(values, chart, upgrade_compatibility, envoy_runs)?;
    let manifest = render(helm, chart, &carried.values, capabilities, scratch)?;
    Ok((carried, manifest))
}

/// The whole values file of each hop to `charts` (in order) from a release whose user values,
/// chart version and objects are these, derived as [`plan`] derives them: the values `--apply`
/// installs, secrets included (never printed; their sha256 is checked against the plan's).
pub fn values_files(
    release_values: &Json,
    release_version: &semver::Version,
    release_objects: &BTreeSet<String>,
    charts: &[ChartArchive],
    helm: &Helm,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<Vec<Json>, Error> {
    let (upgrade_compatibility, _) = upgrade_compatibility(release_values, release_version);
    let mut values = release_values.clone();
    let mut objects = release_objects.clone();
    let mut files = Vec::new();
    for chart in charts {
        let (carried, manifest) = carry(
            &values,
            &objects,
            chart,
            &upgrade_compatibility,
            helm,
            capabilities,
            scratch,
        )?;
        objects = object_names(&manifest);
        values = carried.values;
        files.push(values.clone());
    }
    Ok(files)
}

/// Whether `files` (from [`values_files`]) are the values files `plan` pinned, hop by hop;
/// otherwise what differs, naming the first hop that differs. `revision` is the release revision
/// they were derived from.
pub fn check_values_files(plan: &UpgradePlan, files: &[Json], revision: u32) -> Result<(), String> {
    if files.len() != plan.hops.len() {
        return Err(format!(
            "{} hop(s) planned, {} values file(s) derived from release revision {revision}",
            plan.hops.len(),
            files.len()
        ));
    }
    for (hop, file) in plan.hops.iter().zip(files) {
        let derived = values_sha256(file);
        if derived != hop.values_sha256 {
            let pinned = if hop.values_sha256.is_empty() {
                "none"
            } else {
                &hop.values_sha256
            };
            return Err(format!(
                "hop {} -> {}: its values file, derived again from release revision {revision}, has sha256 {derived}, the plan pinned {pinned}: the release's values (or this tool's translation of them) are not the ones reviewed",
                hop.from, hop.version
            ));
        }
    }
    Ok(())
}

/// What a hop is compared with.
struct Previous {
    version: semver::Version,
    values: Json,
    config: BTreeMap<String, String>,
    workloads: Vec<Json>,
    objects: BTreeSet<String>,
}

fn chart_version(version: &semver::Version) -> Result<ChartVersion, Error> {
    ChartVersion::parse(&version.to_string()).map_err(|_| Error::UnsupportedTarget {
        target: version.to_string(),
    })
}

/// Renders `chart` with `values` (`helm template`, the release's name and namespace) as `helm
/// upgrade` on the cluster of `capabilities` would (`None`: offline, Helm's built-in
/// capabilities).
pub fn render(
    helm: &Helm,
    chart: &ChartArchive,
    values: &Json,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<Manifest, Error> {
    let file = crate::write_values(scratch, &format!("render-{}", chart.version), values)?;
    let mut request = TemplateRequest::new(
        crate::RELEASE,
        crate::NAMESPACE,
        ChartSource::Archive(chart.path.clone()),
    );
    request.values_files = vec![file];
    if let Some(capabilities) = capabilities {
        capabilities.apply_to(&mut request);
    }
    let text = helm.template(&request).map_err(|source| Error::Render {
        version: chart.version.to_string(),
        source: Box::new(source),
    })?;
    Manifest::parse(&text).map_err(|e| Error::Chart {
        path: chart.path.clone(),
        problem: e.to_string(),
    })
}

/// The `Kind/name` of every object of a manifest.
pub fn object_names(manifest: &Manifest) -> BTreeSet<String> {
    manifest
        .objects
        .iter()
        .map(|o| format!("{}/{}", o.id.kind, o.id.name))
        .collect()
}

/// The `cilium-config` data and the workloads of a manifest.
pub fn config_and_workloads(
    manifest: &Manifest,
    chart: &Path,
) -> Result<(BTreeMap<String, String>, Vec<Json>), Error> {
    let bad = |problem: String| Error::Chart {
        path: chart.to_owned(),
        problem,
    };
    let config = match manifest.find("ConfigMap", "cilium-config") {
        Some(object) => {
            let json = object.to_json().map_err(|e| bad(e.to_string()))?;
            json.get("data")
                .and_then(Json::as_object)
                .map(|data| {
                    data.iter()
                        .map(|(k, v)| {
                            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                            (k.clone(), text)
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
        None => return Err(bad("renders no ConfigMap cilium-config".to_owned())),
    };
    let workloads = manifest
        .objects
        .iter()
        .filter(|o| matches!(o.id.kind.as_str(), "DaemonSet" | "Deployment"))
        .map(|o| o.to_json().map_err(|e| bad(e.to_string())))
        .collect::<Result<_, _>>()?;
    Ok((config, workloads))
}

fn plan_hop(
    previous: &Previous,
    chart: &ChartArchive,
    upgrade_compatibility: &str,
    secrets: &mut Secrets,
    helm: &Helm,
    capabilities: Option<&Capabilities>,
    scratch: &Path,
) -> Result<(Hop, Previous), Error> {
    let version = chart_version(&chart.version)?;
    let before = chart_version(&previous.version)?;
    let (carried, manifest) = carry(
        &previous.values,
        &previous.objects,
        chart,
        upgrade_compatibility,
        helm,
        capabilities,
        scratch,
    )?;
    let (config, workloads) = config_and_workloads(&manifest, &chart.path)?;
    let objects = object_names(&manifest);
    // Everything below is shown: secrets are redacted before any text is made of them.
    secrets.add_values(&carried.values);
    secrets.add_config(&config);
    let values_sha256 = values_sha256(&carried.values);
    let mut shown_values = carried.values.clone();
    let values_redacted = secrets.json(&mut shown_values);
    let translated: Vec<Translated> = carried
        .translated
        .iter()
        .map(|t| Translated {
            path: t.path.clone(),
            before: secrets.value_at(&t.path, &t.before),
            to_path: t.to_path.clone(),
            after: secrets.value_at(&t.to_path, &t.after),
            why: secrets.text(&t.why),
        })
        .collect();
    let dropped: Vec<Dropped> = carried
        .dropped
        .iter()
        .map(|d| Dropped {
            path: d.path.clone(),
            value: secrets.value_at(&d.path, &d.value),
            why: secrets.text(&d.why),
        })
        .collect();

    let mut config_differences = compare_config_across(
        &LiveConfig::from_map(
            previous.config.clone(),
            format!("cilium-config {}", previous.version),
        ),
        before,
        &LiveConfig::from_map(config.clone(), format!("cilium-config {}", chart.version)),
        version,
    );
    let mut workload_differences = compare_workloads(&previous.workloads, &workloads);
    for difference in &mut workload_differences {
        if is_the_upgrade(difference, &chart.version) {
            difference.blocks = false;
            difference.effect = format!("the upgrade itself: Cilium {}", chart.version);
        }
        for side in [&mut difference.live, &mut difference.rendered]
            .into_iter()
            .flatten()
        {
            secrets.json(side);
        }
        difference.name = secrets.text(&difference.name);
        difference.effect = secrets.text(&difference.effect);
    }
    for difference in &mut config_differences {
        difference.live = secrets.config_value(&difference.key, difference.live.take());
        difference.rendered = secrets.config_value(&difference.key, difference.rendered.take());
        difference.reason = secrets.text(&difference.reason);
    }
    let mut object_changes: Vec<ObjectChange> = objects
        .difference(&previous.objects)
        .map(|o| ObjectChange {
            object: o.clone(),
            added: true,
        })
        .collect();
    object_changes.extend(previous.objects.difference(&objects).map(|o| ObjectChange {
        object: o.clone(),
        added: false,
    }));

    let mut changes = Vec::new();
    for dropped in &dropped {
        changes.push(BehaviourChange {
            key: format!("value:{}", dropped.path),
            what: format!(
                "{} = {} is left out: {}",
                dropped.path, dropped.value, dropped.why
            ),
        });
    }
    for difference in config_differences.iter().filter(|d| d.changes_behaviour) {
        changes.push(BehaviourChange {
            key: format!("config:{}", difference.key),
            what: difference.to_string(),
        });
    }
    for difference in workload_differences.iter().filter(|d| d.blocks) {
        changes.push(BehaviourChange {
            key: format!("workload:{}", difference.name),
            what: difference.effect.clone(),
        });
    }
    for change in &object_changes {
        changes.push(BehaviourChange {
            key: format!("object:{}", change.object),
            what: format!(
                "the chart {} {} {}",
                chart.version,
                if change.added { "adds" } else { "removes" },
                change.object
            ),
        });
    }

    let hop = Hop {
        from: previous.version.to_string(),
        version: chart.version.to_string(),
        chart: ChartPin {
            file: chart
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: chart.sha256.clone(),
        },
        values: shown_values,
        values_sha256,
        values_redacted,
        translated,
        dropped,
        config: config_differences.iter().map(ConfigChange::from).collect(),
        workloads: workload_differences
            .into_iter()
            .map(|d| WorkloadChange {
                name: d.name,
                before: d.live,
                after: d.rendered,
                effect: d.effect,
                blocks: d.blocks,
            })
            .collect(),
        objects: object_changes,
        // Set by `plan`, which knows the cluster's Gateway API CRDs.
        gateway_api: None,
        preflight: true,
        changes,
    };
    let next = Previous {
        version: chart.version.clone(),
        values: carried.values,
        config,
        workloads,
        objects,
    };
    Ok((hop, next))
}

/// The Gateway API CRDs the hop to `version` needs when its `values` turn the Gateway API on;
/// `crds` are the cluster's (TLSRoutes stored at `v1alpha2` keep the experimental TLSRoute).
fn gateway_api_need(
    values: &Json,
    version: &semver::Version,
    crds: &[cilium_gateway::state::CrdFacts],
) -> Option<GatewayApiNeed> {
    pointer(values, &["gatewayAPI", "enabled"])
        .and_then(Json::as_bool)
        .filter(|on| *on)?;
    let minor = u32::try_from(version.minor).ok()?;
    let r = cilium_gateway::bundle::Requirement::for_cluster(minor, crds)?;
    Some(GatewayApiNeed {
        bundle: r.bundle.to_string(),
        crds: r
            .crds
            .iter()
            .map(|c| {
                let keep = if c.keep_served.is_empty() {
                    String::new()
                } else {
                    format!(", keeps serving {}", c.keep_served.join(", "))
                };
                format!(
                    "{} {} ({:?}, {:?} channel{keep})",
                    c.kind, c.version, c.need, c.channel
                )
            })
            .collect(),
    })
}

/// An image difference that is the upgrade: the same repository, the hop's tag.
fn is_the_upgrade(difference: &WorkloadDifference, version: &semver::Version) -> bool {
    if !difference.name.ends_with(": image") {
        return false;
    }
    let split = |image: Option<&Json>| {
        let image = image?.as_str()?;
        let image = image.split_once('@').map_or(image, |(i, _)| i);
        let (repository, tag) = image.rsplit_once(':')?;
        Some((repository.to_owned(), tag.to_owned()))
    };
    match (
        split(difference.live.as_ref()),
        split(difference.rendered.as_ref()),
    ) {
        (Some((live_repository, _)), Some((repository, tag))) => {
            live_repository == repository && tag == format!("v{version}")
        }
        _ => false,
    }
}
