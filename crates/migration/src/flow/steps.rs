//! The journaled steps of a hand-over as [`Session`] methods: backup, adoption metadata or
//! deletion of the template objects, `helm upgrade --install` (with the agent roll of `replace`),
//! pruning, the inventory edit and verification. Separate from the planning because these are
//! the only parts of [`run`](super::run) that change the cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use helm::{Ownership, ReleaseStatus, RollbackRequest, UpgradeInstall, Wait};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, conditions};
use kubespray_config::{HandoverOptions, Inventory};
use serde_json::json;
use verify::rollout::{self, RESTARTED_AT, daemon_set_rollout};

use super::{
    CheckLine, FlowError, Progress, Session, Step, VALUES_FILE, api, blocking, io, utc_stamp,
};
use crate::adopt::{self, AdoptPlan, Phase};
use crate::bundle::{BackupRequest, Bundle, DEFAULT_PAGE_SIZE};
use crate::era;
use crate::etcd;
use crate::guard;
use crate::journal::Strategy;
use crate::object::{self, ObjectRef};
use crate::restore;
use crate::template_era::{self, NAMESPACE};

/// How long a deleted template-era object may take to go (its finalizers).
const DELETE_TIMEOUT: Duration = Duration::from_secs(120);

impl Session<'_> {
    pub(super) async fn run_step(
        &mut self,
        step: Step,
        progress: &mut dyn Progress,
    ) -> Result<(), FlowError> {
        match step {
            Step::Backup => self.backup(progress).await,
            Step::AdoptMetadata => {
                self.seed_hubble_ca(progress).await?;
                let plan = self.adoption_plan().await?;
                adopt::apply_adoption(&self.client, &plan, Phase::Metadata).await?;
                Ok(())
            }
            Step::DeleteTemplateObjects => {
                self.seed_hubble_ca(progress).await?;
                self.delete_template_objects(progress).await
            }
            Step::HelmInstall => self.install(progress).await,
            Step::PruneFields => {
                let plan = self.adoption_plan().await?;
                adopt::apply_adoption(&self.client, &plan, Phase::Prune).await?;
                Ok(())
            }
            Step::InventoryEdit => self.edit_inventory(progress),
            Step::Verify => self.verify(progress).await,
        }
    }

    async fn backup(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let inventory_dir = absolute(&self.inventory.dir)?;
        if absolute(&self.bundle_dir)?.starts_with(&inventory_dir) {
            return Err(FlowError::Refused(format!(
                "the bundle {} is inside the inventory {}, which the backup copies: put the bundle elsewhere",
                self.bundle_dir.display(),
                inventory_dir.display()
            )));
        }
        let request = BackupRequest {
            dir: self.bundle_dir.clone(),
            cluster: self.identity.clone(),
            extra_objects: self.rendered.iter().filter_map(ObjectRef::of).collect(),
            inventory: vec![inventory_dir],
            page_size: DEFAULT_PAGE_SIZE,
        };
        let mut bundle = Bundle::create(&self.client, &request).await?;
        if let Some(options) = &self.options.etcd_snapshot {
            let file = etcd::snapshot_into(&mut bundle, &self.inventory, options).await?;
            progress.note(&format!(
                "etcd snapshot from {} ({} bytes, sha256 {})",
                file.node, file.bytes, file.sha256
            ));
        }
        let report = bundle.verify()?;
        progress.note(&format!(
            "backup {} verified: {} ({} inventory files)",
            self.bundle_dir.display(),
            report
                .objects
                .iter()
                .map(|(section, n)| format!("{section} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            report.inventory_files
        ));
        Ok(())
    }

    async fn adoption_plan(&self) -> Result<AdoptPlan, FlowError> {
        let live = adopt::fetch_live(&self.client, &self.rendered, &self.release).await?;
        Ok(adopt::plan_adoption(&live, &self.rendered, &self.release))
    }

    /// Kubespray's certgen wrote the hubble CA to `hubble-ca-secret`; the chart reuses a CA only
    /// from `cilium-ca`. Copying it there (with the release's ownership metadata, so that a
    /// rollback removes it as created by the hand-over) makes the chart sign the new hubble
    /// certificates with the CA that agents and relay already trust.
    async fn seed_hubble_ca(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let renders_ca = self.rendered.iter().any(|o| {
            o["kind"] == "Secret" && object::str_at(o, &["metadata", "name"]) == Some("cilium-ca")
        });
        if !renders_ca {
            return Ok(());
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), NAMESPACE);
        if secrets
            .get_opt("cilium-ca")
            .await
            .map_err(api("reading Secret kube-system/cilium-ca"))?
            .is_some()
        {
            return Ok(());
        }
        let Some(kubespray_ca) = secrets
            .get_opt("hubble-ca-secret")
            .await
            .map_err(api("reading Secret kube-system/hubble-ca-secret"))?
        else {
            return Ok(());
        };
        let data = kubespray_ca.data.unwrap_or_default();
        let (Some(cert), Some(key)) = (data.get("ca.crt"), data.get("ca.key")) else {
            progress
                .note("hubble-ca-secret has no ca.crt/ca.key: the chart generates a new hubble CA");
            return Ok(());
        };
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {
                "name": "cilium-ca",
                "namespace": NAMESPACE,
                "labels": { object::MANAGED_BY_LABEL: "Helm" },
                "annotations": {
                    object::RELEASE_NAME_ANNOTATION: self.release.name,
                    object::RELEASE_NAMESPACE_ANNOTATION: self.release.namespace,
                },
            },
            "data": { "ca.crt": cert, "ca.key": key },
        }))
        .map_err(|e| FlowError::Refused(format!("building Secret cilium-ca: {e}")))?;
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            // Created by an interrupted earlier attempt of this step.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api("creating Secret kube-system/cilium-ca")(e)),
        }
        progress.note("copied Kubespray's hubble CA (hubble-ca-secret) to cilium-ca: the chart keeps signing with it");
        Ok(())
    }

    /// `replace`: the template-era objects are adopted as `adopt` does (metadata and pruning),
    /// except the workloads the chart renders, which are deleted with their pods orphaned
    /// ([`guard::replace_deletions`]). The ServiceAccounts, RBAC and `cilium-config` the
    /// orphaned agents run on stay in place throughout. Adoption comes first: what blocks it
    /// stops the step before anything is deleted.
    async fn delete_template_objects(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let live = adopt::fetch_live(&self.client, &self.rendered, &self.release).await?;
        let deletions = guard::replace_deletions(&live, &self.rendered);
        let replaced: Vec<ObjectRef> = deletions.iter().map(|(r, _)| r.clone()).collect();
        let plan = adopt::plan_adoption(&live, &self.rendered, &self.release).without(&replaced);
        let adopted = adopt::apply_adoption(&self.client, &plan, Phase::Metadata).await?;
        for (object, uid) in &deletions {
            let Some(kind) = template_era::template_kind(object) else {
                continue;
            };
            let gvk =
                kube::api::GroupVersionKind::gvk(object.group(), object.version(), &object.kind);
            let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, kind.plural);
            // Workload pods are orphaned (the blog's manual procedure cascades): the chart's
            // workload with the same selector takes them over instead of leaving every node
            // without an agent; the install step then rolls the adopted agents.
            guard::delete(&self.client, &resource, object, uid, true).await?;
            let api_: Api<kube::api::DynamicObject> = match &object.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            // Gone, or replaced by another object of that name (another uid).
            let gone = tokio::time::timeout(
                DELETE_TIMEOUT,
                await_condition(api_, &object.name, conditions::is_deleted(uid)),
            )
            .await;
            match gone {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    return Err(FlowError::Refused(format!(
                        "{object} was deleted but watching it until it is gone failed: {e}; check it and run again"
                    )));
                }
                Err(_) => {
                    return Err(FlowError::Refused(format!(
                        "{object} was deleted but is still there after {} minutes (finalizers?); check it and run again",
                        DELETE_TIMEOUT.as_secs() / 60
                    )));
                }
            }
        }
        progress.note(&format!(
            "adopted {} template-era objects; deleted {} workloads, their pods orphaned for the chart's to take over: {}",
            adopted.len(),
            deletions.len(),
            replaced
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        Ok(())
    }

    async fn install(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        // A previous attempt of this step may have been cut short while helm ran: repair the
        // pending revision it left, as Helm's own hint says, but only when the journal shows it
        // is that attempt's.
        let helm = self.helm.clone();
        let release = self.release.clone();
        let status = {
            let helm = helm.clone();
            let release = release.clone();
            blocking(move || helm.status(&release.name, &release.namespace)).await??
        };
        if let Some(status) = status
            && matches!(
                status.info.status,
                ReleaseStatus::PendingInstall
                    | ReleaseStatus::PendingUpgrade
                    | ReleaseStatus::PendingRollback
            )
        {
            self.ensure_pending_is_ours(&status)?;
            let history = {
                let helm = helm.clone();
                let release = release.clone();
                blocking(move || helm.history(&release.name, &release.namespace)).await??
            };
            match helm::last_good_revision(&history) {
                None => {
                    let forgotten = guard::forget_release(&self.client, &self.release).await?;
                    progress.note(&format!(
                        "release cilium was left pending-install by an interrupted run: removed its record ({}); the objects stay",
                        forgotten.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
                Some(good) => {
                    let mut request =
                        RollbackRequest::new(&release.name, &release.namespace, Some(good));
                    request.wait = Wait::ReadyLegacy;
                    request.timeout = self.options.helm_timeout;
                    self.record_helm_run(
                        Step::HelmInstall,
                        "rollback",
                        Some(status.revision),
                        None,
                    )?;
                    let helm = helm.clone();
                    blocking(move || helm.rollback(&request)).await??;
                    progress.note(&format!(
                        "release cilium was left {} by an interrupted run: rolled back to revision {good}",
                        status.info.status
                    ));
                }
            }
        }
        let mut request = UpgradeInstall::adopt(
            &release.name,
            &release.namespace,
            self.options.chart.clone(),
        );
        request.version = Some(self.chart_version.clone());
        request.values_files = vec![self.values_file.path().to_owned()];
        request.wait = Wait::ReadyLegacy;
        request.timeout = self.options.helm_timeout;
        if self.strategy == Strategy::TakeOverRelease {
            // The release owns its objects already; Helm keeps its own apply method.
            request.ownership = Ownership::Fresh {
                on_failure: helm::OnFailure::Keep,
            };
        }
        let last_revision = {
            let helm = helm.clone();
            let release = release.clone();
            blocking(move || helm.status(&release.name, &release.namespace))
                .await??
                .map(|s| s.revision)
        };
        let chart_sha256 = self.verified_chart()?;
        self.record_helm_run(
            Step::HelmInstall,
            "upgrade --install",
            last_revision,
            Some(chart_sha256),
        )?;
        let info = blocking(move || helm.upgrade_install(&request)).await??;
        progress.note(&format!(
            "release {} revision {} {}",
            info.name, info.revision, info.info.status
        ));
        if self.strategy == Strategy::Replace {
            // Part of this step so that a resumed install rolls what an interrupted one left.
            self.roll_adopted_agents(progress).await?;
        }
        Ok(())
    }

    /// `replace` orphans the template-era agent pods and the chart's DaemonSet adopts them, but
    /// the DaemonSet controller treats a pod as up to date when its `pod-template-generation`
    /// label equals the DaemonSet's generation, which is 1 for both: they would keep running
    /// Kubespray's privileged pod spec. Agents whose `controller-revision-hash` is not the
    /// DaemonSet's current revision are rolled the way `kubectl rollout restart` does (a new
    /// pod template annotation), node by node within the chart's `maxUnavailable`, and the
    /// rollout is awaited. Helm leaves that live-only annotation alone on later upgrades (its
    /// three-way merge and server-side apply only touch fields it rendered before or renders now).
    async fn roll_adopted_agents(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let daemonsets: Api<DaemonSet> = Api::namespaced(self.client.clone(), NAMESPACE);
        let deadline = Instant::now() + self.options.helm_timeout;
        let mut restarted = false;
        let mut stale: Vec<String>;
        loop {
            let daemonset = daemonsets
                .get_opt(AGENT_DAEMONSET)
                .await
                .map_err(api("reading DaemonSet kube-system/cilium"))?;
            let Some(daemonset) = daemonset else {
                return Ok(());
            };
            stale = Vec::new();
            if daemon_set_rollout(&daemonset).done {
                match restore::current_revision_hash(&self.client, &daemonset)
                    .await
                    .map_err(api("reading the agent ControllerRevisions in kube-system"))?
                {
                    // The controller has not written the revision yet.
                    None => stale.push("(no ControllerRevision yet)".into()),
                    Some(hash) => {
                        stale = restore::pods_not_on(&self.client, &daemonset, &hash)
                            .await
                            .map_err(api("listing the agent pods in kube-system"))?;
                        if stale.is_empty() {
                            if restarted {
                                progress.note("agent rollout finished: every agent pod runs the chart's pod template");
                            }
                            return Ok(());
                        }
                        if !restarted {
                            self.restart_agents(&daemonsets).await?;
                            restarted = true;
                            progress.note(&format!(
                                "{} adopted agent pods still run the template-era pod spec: rolling them ({RESTARTED_AT})",
                                stale.len()
                            ));
                            continue;
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(FlowError::Refused(format!(
                    "the agent DaemonSet kube-system/cilium did not roll out within {:?}; pods not on its current revision: {}; check `kubectl -n kube-system rollout status ds/cilium` and run again (the run resumes at helm-install)",
                    self.options.helm_timeout,
                    if stale.is_empty() {
                        "(rollout still in progress)".to_owned()
                    } else {
                        stale.join(", ")
                    }
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// What `kubectl rollout restart` does: a new pod template annotation, hence a new revision.
    async fn restart_agents(&self, daemonsets: &Api<DaemonSet>) -> Result<(), FlowError> {
        rollout::restart(daemonsets, AGENT_DAEMONSET, FIELD_MANAGER)
            .await
            .map_err(api("restarting DaemonSet kube-system/cilium"))
    }

    fn edit_inventory(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let inventory = Inventory::load(&self.options.inventory)?;
        let edits = inventory.handover_edits(&HandoverOptions {
            kube_proxy_remove: self.kube_proxy_replaced,
        })?;
        for edit in &edits {
            super::inventory::write_edit(&self.bundle_dir, edit)?;
            progress.note(&format!(
                "inventory: {} ({})",
                edit.path.display(),
                edit.changed_keys.join(", ")
            ));
        }
        let path = inventory.dir.join(VALUES_FILE);
        super::inventory::write_values(&self.bundle_dir, &path, &self.values_yaml)?;
        progress.note(&format!(
            "values for `helm upgrade cilium -n kube-system -f {}` saved",
            path.display()
        ));
        Ok(())
    }

    async fn verify(&self, progress: &mut dyn Progress) -> Result<(), FlowError> {
        let options = verify::Options::new(&self.release.namespace, &self.release.name);
        let ignore = &self.options.ignore_checks;
        let report = verify::verify_until_healthy(
            &self.client,
            &options,
            ignore,
            self.options.verify_timeout,
        )
        .await?;
        let line = |c: &verify::Check| format!("{}: {} {}", c.name, c.state.label(), c.detail);
        let failing: Vec<String> = report
            .problems()
            .filter(|c| !ignore.contains(&c.name))
            .map(|c| format!("- {}", line(c)))
            .collect();
        if !failing.is_empty() {
            return Err(FlowError::VerifyTimeout {
                timeout: self.options.verify_timeout,
                problems: failing.join("\n"),
            });
        }
        for c in report.problems() {
            progress.note(&format!("ignored check {}", line(c)));
        }
        era::write_handover_marker(
            &self.client,
            &format!(
                "{} {}",
                utc_stamp(jiff::Timestamp::now()),
                self.bundle_dir.display()
            ),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn checks(&self) -> Result<Vec<CheckLine>, FlowError> {
        let options = verify::Options::new(&self.release.namespace, &self.release.name);
        let report = verify::verify(&self.client, &options).await?;
        Ok(report
            .checks
            .iter()
            .map(|c| CheckLine {
                name: c.name.clone(),
                state: c.state.label().to_owned(),
                detail: c.detail.clone(),
                green: c.state.is_green(),
                ignored: self.options.ignore_checks.contains(&c.name),
            })
            .collect())
    }
}

/// The agent DaemonSet, in both eras.
const AGENT_DAEMONSET: &str = "cilium";
/// Field manager of this tool's own writes.
const FIELD_MANAGER: &str = "cilium-migrate";

fn absolute(path: &Path) -> Result<PathBuf, FlowError> {
    std::path::absolute(path).map_err(io(path))
}
