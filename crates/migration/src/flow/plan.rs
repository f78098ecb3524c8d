//! Deciding before changing anything: the chart values (translated for the template era, a
//! release's own for the cilium-cli era) and the gate (render, `cilium-config` comparison,
//! workload comparison, adoption plan, node directories). Read-only: nothing here writes to the
//! cluster.

use std::collections::BTreeMap;

use cilium_values::{ChartVersion, LiveConfig};
use helm::{Helm, TemplateRequest, ValuesScope};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde_json::Value;

use super::{
    AdoptionSummary, FlowError, GateDifference, GateWorkloadDifference, NodeCheck, Progress,
    Session, api, io,
};
use crate::adopt::{self, AdoptPlan, Release};
use crate::bundle::{Bundle, Section};
use crate::era;
use crate::guard;
use crate::journal::Strategy;
use crate::object::{self, ObjectRef};
use crate::template_era::NAMESPACE;

pub(super) struct ValuesChoice {
    pub(super) json: Value,
    pub(super) yaml: String,
    pub(super) version: String,
}

/// What the gate found.
pub(super) struct GateResult {
    pub(super) config: Vec<GateDifference>,
    pub(super) workloads: Vec<GateWorkloadDifference>,
    pub(super) adoption: Option<AdoptionSummary>,
    pub(super) nodes: Vec<String>,
    pub(super) blockers: Vec<String>,
}

impl Session<'_> {
    fn chart_request(&self) -> TemplateRequest {
        let mut request = TemplateRequest::new(
            &self.release.name,
            &self.release.namespace,
            self.options.chart.clone(),
        );
        request.version = Some(self.chart_version.clone());
        request.values_files = vec![self.values_file.path().to_owned()];
        request
    }

    /// Renders the chart, compares `cilium-config` and the workloads, plans the adoption, checks
    /// the nodes. `backed_up_workloads`: what ran before a resumed run began (the bundle's), else
    /// the live objects are compared.
    pub(super) async fn gate(
        &mut self,
        live_config: &LiveConfig,
        backed_up_workloads: Option<&[Value]>,
        install_done: bool,
        progress: &mut dyn Progress,
    ) -> Result<GateResult, FlowError> {
        let helm = self.helm.clone();
        let chart = self.options.chart.clone();
        let mut request = self.chart_request();
        // `helm upgrade --install` gives the chart the cluster's version and APIs: rendered
        // without them, an object it creates only when an API is served (Cilium's
        // GatewayClass) would be applied without the gate having seen it.
        helm::Capabilities::discover(&self.client)
            .await
            .map_err(|e| FlowError::Api {
                what: format!("reading {} from the API server", e.what),
                source: e.source,
            })?
            .apply_to(&mut request);
        let text = tokio::task::spawn_blocking(move || {
            helm.prepare(&chart)?;
            helm.template(&request)
        })
        .await
        .map_err(|e| FlowError::Refused(format!("helm template did not finish: {e}")))??;
        self.rendered = object::parse_manifest(&text).map_err(|e| {
            FlowError::Refused(format!(
                "helm template printed something that is not YAML: {e}"
            ))
        })?;
        let mut blockers = Vec::new();

        // cilium-config, key by key.
        let rendered_config = rendered_cilium_config(
            &self.rendered,
            &self.options.chart.reference().to_string_lossy(),
        )?;
        let version = ChartVersion::parse(&self.chart_version)?;
        // Keys only the render sets are weighed against the defaults of the agent that runs now.
        let live_agent = match self.live_agent_version.as_deref().map(ChartVersion::parse) {
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                progress.note(&format!(
                    "the running agent is Cilium {}, older or newer than the agent-default table (1.15 to 1.19): keys only the chart sets are weighed against chart {version}'s defaults",
                    self.live_agent_version.as_deref().unwrap_or_default()
                ));
                version
            }
            None => version,
        };
        let (differences, config_blockers) = config_gate(
            cilium_values::compare_config_across(
                live_config,
                live_agent,
                &rendered_config,
                version,
            ),
            &self.options.accept_config_changes,
            install_done,
        );
        blockers.extend(config_blockers);
        for key in &self.options.accept_config_changes {
            if !differences.iter().any(|d| &d.difference.key == key) {
                progress.note(&format!(
                    "--accept-config-change {key}: cilium-config has no such difference; nothing to accept"
                ));
            }
        }

        // Adoption.
        let live = adopt::fetch_live(&self.client, &self.rendered, &self.release).await?;

        // The workloads, from the same render.
        let (workloads, workload_blockers, notes) = workload_gate(
            cilium_values::compare_workloads(backed_up_workloads.unwrap_or(&live), &self.rendered),
            &self.options.accept_workload_changes,
            install_done,
        );
        blockers.extend(workload_blockers);
        for note in notes {
            progress.note(&note);
        }
        let mut plan = adopt::plan_adoption(&live, &self.rendered, &self.release);
        if self.strategy == Strategy::Replace {
            // `replace` adopts everything but the workloads it re-creates, whose selectors may
            // differ (what it is for): the rest blocks it as it blocks `adopt`.
            let replaced: Vec<ObjectRef> = guard::replace_deletions(&live, &self.rendered)
                .into_iter()
                .map(|(r, _)| r)
                .collect();
            plan = plan.without(&replaced);
        }
        let adoption =
            matches!(self.strategy, Strategy::Adopt | Strategy::Replace).then(|| summary(&plan));
        if !install_done {
            blockers.extend(plan.blockers.iter().map(ToString::to_string));
        }

        // Node directories, before anything restarts.
        let mut nodes = Vec::new();
        if !install_done
            && let NodeCheck::Check {
                access,
                nodes: list,
                paths,
            } = &self.options.nodes
        {
            let reports = cni_fs::check_nodes(access, list, paths).await?;
            let summary = cni_fs::failure_summary(&reports);
            for report in &reports {
                // `not checked: <why>` for a node --via local does not reach.
                nodes.push(format!("{}: {}", report.node, report.outcome()));
            }
            if !summary.is_empty() {
                blockers.push(format!(
                    "node directories the unprivileged agent cannot write:\n{summary}\nfix them with `cilium-migrate nodes fix --apply` and set kube_owner: root"
                ));
            }
        }
        Ok(GateResult {
            config: differences,
            workloads,
            adoption,
            nodes,
            blockers,
        })
    }
}

/// The workload differences as the operator sees them: each marked accepted when named in
/// `accepted`; a blocking one not accepted blocks (unless the install is done: then it is history);
/// plus a note for each accepted name that matches nothing.
fn workload_gate(
    differences: Vec<cilium_values::WorkloadDifference>,
    accepted: &[String],
    install_done: bool,
) -> (Vec<GateWorkloadDifference>, Vec<String>, Vec<String>) {
    let mut blockers = Vec::new();
    let shown: Vec<GateWorkloadDifference> = differences
        .into_iter()
        .map(|difference| {
            let accepted = accepted.contains(&difference.name);
            if difference.blocks && !accepted && !install_done {
                blockers.push(format!(
                    "workload {difference}; keep it with the values, or accept it with --accept-workload-change '{}'",
                    difference.name
                ));
            }
            GateWorkloadDifference {
                difference,
                accepted,
            }
        })
        .collect();
    let notes = accepted
        .iter()
        .filter(|name| !shown.iter().any(|d| &d.difference.name == *name))
        .map(|name| {
            format!("--accept-workload-change '{name}': the workloads have no such difference; nothing to accept")
        })
        .collect();
    (shown, blockers, notes)
}

fn summary(plan: &AdoptPlan) -> AdoptionSummary {
    let show = |r: &ObjectRef| r.to_string();
    AdoptionSummary {
        adopted: plan
            .patches
            .iter()
            .filter(|p| p.metadata.is_some())
            .map(|p| show(&p.object))
            .collect(),
        pruned: plan
            .patches
            .iter()
            .filter(|p| !p.prune.is_empty())
            .map(|p| format!("{} ({} fields)", p.object, p.prune.len()))
            .collect(),
        created: plan.to_create.iter().map(show).collect(),
        left_alone: plan.leftovers.iter().map(show).collect(),
        deleted_jobs: plan
            .hook_job_deletions
            .iter()
            .map(|(r, _)| show(r))
            .collect(),
    }
}

/// The rendered `cilium-config`, or why a chart that renders none is no Cilium chart.
pub(super) fn rendered_cilium_config(
    rendered: &[Value],
    chart: &str,
) -> Result<LiveConfig, FlowError> {
    rendered
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && object::str_at(o, &["metadata", "name"]) == Some("cilium-config")
        })
        .map(|o| LiveConfig::from_map(string_map(&o["data"]), "helm template"))
        .ok_or_else(|| {
            FlowError::Refused(format!(
                "the chart {chart} renders no ConfigMap cilium-config with these values: it is not a Cilium chart, or the values disable the agent"
            ))
        })
}

/// The config gate's verdict, live and offline alike: a behaviour change blocks unless accepted
/// by key (or the install already ran: a resumed run compares with what it installed).
pub(super) fn config_gate(
    found: Vec<cilium_values::ConfigDifference>,
    accepted_keys: &[String],
    install_done: bool,
) -> (Vec<GateDifference>, Vec<String>) {
    let mut blockers = Vec::new();
    let differences = found
        .into_iter()
        .map(|d| {
            let accepted = accepted_keys.contains(&d.key);
            if d.changes_behaviour && !accepted && !install_done {
                blockers.push(format!(
                    "cilium-config {}; keep it with the values, or accept it with --accept-config-change {}",
                    d, d.key
                ));
            }
            GateDifference {
                difference: d,
                accepted,
            }
        })
        .collect();
    (differences, blockers)
}

pub(super) fn string_map(data: &Value) -> BTreeMap<String, String> {
    data.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) async fn read_live_config(client: &Client) -> Result<LiveConfig, FlowError> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let cm = maps
        .get_opt("cilium-config")
        .await
        .map_err(api("reading ConfigMap kube-system/cilium-config"))?
        .ok_or_else(|| {
            FlowError::Refused(
                "ConfigMap kube-system/cilium-config does not exist: there is no Cilium configuration to carry over".into(),
            )
        })?;
    Ok(LiveConfig::from_map(
        cm.data.unwrap_or_default().into_iter().collect(),
        "live ConfigMap kube-system/cilium-config",
    ))
}

/// The `cilium-config` of the backup (a resumed run compares with what ran before it began).
pub(super) fn backed_up_config(bundle: &Bundle) -> Result<LiveConfig, FlowError> {
    for file in bundle
        .files(Section::Handover)
        .filter(|f| f.kind == "ConfigMap")
    {
        for o in bundle.read_objects(file)? {
            let o = o?;
            if object::str_at(&o, &["metadata", "name"]) == Some("cilium-config") {
                return Ok(LiveConfig::from_map(
                    string_map(&o["data"]),
                    format!("backed-up cilium-config in {}", bundle.dir().display()),
                ));
            }
        }
    }
    Err(FlowError::Refused(format!(
        "the bundle {} holds no cilium-config: it is not the backup of this migration",
        bundle.dir().display()
    )))
}

/// The backed-up DaemonSets and Deployments (a resumed run compares the workloads that ran
/// before it began).
pub(super) fn backed_up_workloads(bundle: &Bundle) -> Result<Vec<Value>, FlowError> {
    let mut out = Vec::new();
    for file in bundle
        .files(Section::Handover)
        .filter(|f| f.kind == "DaemonSet" || f.kind == "Deployment")
    {
        for o in bundle.read_objects(file)? {
            let mut o = o?;
            // The bundle's files hold one kind each; the objects may not say it.
            if o.get("kind").is_none() {
                o["kind"] = Value::String(file.kind.clone());
            }
            out.push(o);
        }
    }
    Ok(out)
}

/// The agent version of the backed-up DaemonSet `cilium`.
pub(super) fn backed_up_agent_version(bundle: &Bundle) -> Result<Option<String>, FlowError> {
    for file in bundle
        .files(Section::Handover)
        .filter(|f| f.kind == "DaemonSet")
    {
        for o in bundle.read_objects(file)? {
            let o = o?;
            if object::str_at(&o, &["metadata", "name"]) == Some("cilium") {
                return Ok(era::agent_version(&o));
            }
        }
    }
    Ok(None)
}

/// Values of a cilium-cli release, for handing it over unchanged.
pub(super) fn release_values(
    helm: &Helm,
    release: &Release,
    version: Option<&str>,
) -> Result<ValuesChoice, FlowError> {
    let status = helm
        .status(&release.name, &release.namespace)?
        .ok_or_else(|| {
            FlowError::Refused("release cilium disappeared while planning; run again".into())
        })?;
    let values = helm.get_values(&release.name, &release.namespace, ValuesScope::User, None)?;
    // `helm status` leaves the chart out in some versions; the history names it `name-version`.
    let from_history = || -> Result<Option<String>, FlowError> {
        let history = helm.history(&release.name, &release.namespace)?;
        Ok(history
            .iter()
            .filter(|r| r.revision == status.revision)
            .find_map(|r| chart_version_of(&r.chart)))
    };
    let version = match (version, status.chart.clone()) {
        (Some(v), _) => v.trim_start_matches('v').to_owned(),
        (None, Some(chart)) => chart.version,
        (None, None) => from_history()?.ok_or_else(|| {
            FlowError::Refused(
                "helm does not say which chart version release cilium runs; pass --cilium-version"
                    .into(),
            )
        })?,
    };
    let yaml = format!(
        "# The values of release cilium revision {} (set by cilium-cli), handed over unchanged.\n{}",
        status.revision,
        serde_saphyr::to_string(&values)
            .map_err(|e| FlowError::Refused(format!("writing the release values as YAML: {e}")))?
    );
    Ok(ValuesChoice {
        json: values,
        yaml,
        version,
    })
}

/// The version in Helm's `name-version` chart label (`cilium-1.17.3` gives `1.17.3`).
fn chart_version_of(label: &str) -> Option<String> {
    let bytes = label.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map(|i| label[i..].to_owned())
}

pub(super) fn write_temp_values(values: &Value) -> Result<tempfile::NamedTempFile, FlowError> {
    use std::io::Write as _;
    let mut file = tempfile::Builder::new()
        .prefix("cilium-values-")
        .suffix(".json")
        .tempfile()
        .map_err(io(&std::env::temp_dir()))?;
    let text = serde_json::to_string_pretty(values).unwrap_or_default();
    file.write_all(text.as_bytes())
        .map_err(io(&std::env::temp_dir()))?;
    Ok(file)
}

pub(super) fn agent_version_of(state: &era::ClusterState) -> Option<String> {
    state
        .objects
        .iter()
        .find(|o| {
            o["kind"] == "DaemonSet" && object::str_at(o, &["metadata", "name"]) == Some("cilium")
        })
        .and_then(era::agent_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, blocks: bool) -> cilium_values::WorkloadDifference {
        cilium_values::WorkloadDifference {
            name: name.to_owned(),
            live: Some(serde_json::json!(true)),
            rendered: Some(serde_json::json!(false)),
            effect: "what it changes".to_owned(),
            blocks,
        }
    }

    #[test]
    fn a_blocking_workload_difference_blocks_until_accepted_by_name() {
        let differences = || {
            vec![
                workload("DaemonSet/cilium: hostNetwork", true),
                workload("DaemonSet/cilium: label a", false),
            ]
        };
        let (shown, blockers, notes) = workload_gate(differences(), &[], false);
        assert_eq!(shown.len(), 2);
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert!(
            blockers[0].contains("--accept-workload-change 'DaemonSet/cilium: hostNetwork'"),
            "{blockers:?}"
        );
        assert!(notes.is_empty());

        let accepted = [
            "DaemonSet/cilium: hostNetwork".to_owned(),
            "nothing".to_owned(),
        ];
        let (shown, blockers, notes) = workload_gate(differences(), &accepted, false);
        assert!(blockers.is_empty(), "{blockers:?}");
        assert!(shown[0].accepted && !shown[1].accepted);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("'nothing'"), "{notes:?}");

        // After the install, what differed is history, not a reason to stop a resumed run.
        let (_, blockers, _) = workload_gate(differences(), &[], true);
        assert!(blockers.is_empty(), "{blockers:?}");
    }

    #[test]
    fn chart_versions_come_from_helm_chart_labels() {
        assert_eq!(chart_version_of("cilium-1.17.3").as_deref(), Some("1.17.3"));
        assert_eq!(
            chart_version_of("my-cilium-1.18.0-rc.1").as_deref(),
            Some("1.18.0-rc.1")
        );
        assert_eq!(chart_version_of("cilium"), None);
    }
}
