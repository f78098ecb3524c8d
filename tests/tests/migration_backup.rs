//! End-to-end: the hand-over building blocks of `crates/migration` on a real control plane
//! seeded with the objects Kubespray v2.27.1 applies (and the released Cilium 1.15.9 chart to
//! adopt them into): era detection, backup bundle (paged, verified,
//! private), the delete guard, adoption (ownership metadata, pruning, same UIDs), and restore
//! from the bundle compared object by object.
//!
//! The fixture owns `kube-system` and cluster-scoped objects, so the test starts a testbed of
//! its own in a temporary directory; tools come from `$CILIUM_MIGRATE_TOOLS` (or
//! `target/tools/bin`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migration_common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use migration::adopt::{self, Phase, Release};
use migration::bundle::{BackupRequest, Bundle, Section};
use migration::era::{self, Era, InventoryClaim};
use migration::guard::{self, DeleteError};
use migration::identity::ClusterIdentity;
use migration::journal::{Journal, JournalStatus, Step, Strategy};
use migration::object::{self, HelmOwner, LAST_APPLIED_ANNOTATION, ObjectRef, is_cilium_group};
use migration::restore::{self, Difference};
use migration_common::{
    helm, inventory_copy, live_json, options_for, render, resource_of, sample_v2_27,
    seed_template_era, start_testbed,
};
use serde_json::json;
use tests::{bundle_uids, files_under, live_uids};

/// Objects per list request: small, so that every kind with more objects takes several pages.
const PAGE_SIZE: u32 = 2;

/// Which Helm installs the chart over the adopted objects.
#[derive(Clone, Copy, Debug)]
enum HelmMajor {
    /// Client-side three-way merge.
    Three,
    /// Server-side apply; Kubespray's fields belong to `kubectl-client-side-apply`, so the
    /// install must force the conflicts on the fields the chart sets differently.
    Four,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_backup_adopt_with_helm3_and_restore_exactly() {
    backup_adopt_and_restore(
        "migration_backup::v2_27_backup_adopt_with_helm3_and_restore_exactly",
        HelmMajor::Three,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_27_backup_adopt_with_helm4_and_restore_exactly() {
    backup_adopt_and_restore(
        "migration_backup::v2_27_backup_adopt_with_helm4_and_restore_exactly",
        HelmMajor::Four,
    )
    .await;
}

async fn backup_adopt_and_restore(test: &str, helm_major: HelmMajor) {
    let Some(upstream) = upstream::Upstream::for_test(test) else {
        return;
    };
    let case = sample_v2_27(&upstream);
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = start_testbed(&tmp.path().join("testbed")).await;
    let tools = testbed.tools();
    let options = options_for(&testbed);
    let seeded = seed_template_era(&testbed, &case, &options);
    let client = testbed.client().await.unwrap();
    // The values `cargo xtask values` writes for this case: what the hand-over installs.
    let values = tests::xtask_values(&case, tests::HANDOVER_CHART_VERSION, tmp.path());
    let values_args = [format!("--values={}", values.display())];

    // Era: the template era, Cilium 1.15.9, nothing Helm-owned.
    let state = era::collect_state(&client).await.unwrap();
    let detected =
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap();
    assert_eq!(
        detected,
        Era::TemplateManifests {
            cilium_version: Some("1.15.9".into())
        }
    );

    // What the chart renders (the backup also records which of those objects do not exist).
    let rendered = render(&tools.helm, &chart, &values_args);

    // Journal and backup.
    let identity = ClusterIdentity::read(&client, testbed.api_server())
        .await
        .unwrap();
    let bundle_dir = tmp.path().join("bundle");
    fs::create_dir(&bundle_dir).unwrap();
    let mut journal = Journal::create(&bundle_dir, identity.clone(), Strategy::Adopt).unwrap();
    journal.start(Step::Backup).unwrap();
    let inventory = inventory_copy(&case, tmp.path());
    let request = BackupRequest {
        dir: bundle_dir.clone(),
        cluster: identity.clone(),
        extra_objects: rendered.iter().filter_map(ObjectRef::of).collect(),
        inventory: vec![inventory.clone()],
        page_size: PAGE_SIZE,
    };
    let bundle = Bundle::create(&client, &request).await.unwrap();
    let report = bundle.verify().unwrap();
    journal.done(Step::Backup).unwrap();
    assert_eq!(
        Journal::open(&bundle_dir).unwrap().next_step(),
        Some(Step::AdoptMetadata)
    );

    // Every Cilium custom resource and CRD of the fixture is in the bundle, however many pages.
    let cilium_objects = seeded
        .iter()
        .filter(|o| ObjectRef::of(o).is_some_and(|r| is_cilium_group(r.group())))
        .count() as u64;
    let crds = seeded
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .count() as u64;
    assert!(
        cilium_objects > u64::from(PAGE_SIZE),
        "the fixture should need several pages"
    );
    assert_eq!(
        report.objects.get("custom-resources"),
        Some(&cilium_objects),
        "{report:?}"
    );
    assert_eq!(report.objects.get("crds"), Some(&crds), "{report:?}");
    // Every template-era object and kept Secret the fixture created is in the hand-over section.
    let template = migration::template_era::template_object_refs();
    let expected_handover = seeded
        .iter()
        .filter_map(ObjectRef::of)
        .filter(|r| {
            template.iter().any(|t| t.same_object(r))
                || (r.kind == "Secret"
                    && migration::template_era::KEPT_SECRETS.contains(&r.name.as_str()))
        })
        .count() as u64;
    assert_eq!(
        report.objects.get("handover"),
        Some(&expected_handover),
        "{report:?}"
    );
    assert_eq!(
        report.objects.get("helm-release"),
        Some(&0),
        "no release in the template era"
    );
    assert_eq!(report.inventory_files, files_under(&inventory).len());
    assert_eq!(bundle.manifest().cluster, identity);
    // Private: directories 0700, files 0600 (Secrets are inside).
    for path in files_under(&bundle_dir).into_keys() {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&bundle_dir)) {
            assert_eq!(
                fs::metadata(d).unwrap().permissions().mode() & 0o777,
                0o700,
                "{}",
                d.display()
            );
            dir = d.parent();
        }
    }

    // The guard: CRDs and Cilium custom resources cannot be deleted through this crate.
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crd_api.get("ciliumnodes.cilium.io").await.unwrap();
    let crd_ref = ObjectRef::new(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        "ciliumnodes.cilium.io",
    );
    let refused = guard::delete(
        &client,
        &ApiResource::erase::<CustomResourceDefinition>(&()),
        &crd_ref,
        crd.metadata.uid.as_deref().unwrap(),
        false,
    )
    .await;
    assert!(
        matches!(refused, Err(DeleteError::Refused { .. })),
        "{refused:?}"
    );
    let node_ref = ObjectRef::new("cilium.io/v2", "CiliumNode", None, &testbed.nodes()[0]);
    let refused = guard::delete(
        &client,
        &resource_of(&node_ref, "ciliumnodes"),
        &node_ref,
        "any",
        false,
    )
    .await;
    assert!(
        matches!(refused, Err(DeleteError::Refused { .. })),
        "{refused:?}"
    );
    assert_eq!(
        crd_api
            .get("ciliumnodes.cilium.io")
            .await
            .unwrap()
            .metadata
            .uid,
        crd.metadata.uid
    );

    // Adopt: plan from live objects and the rendered chart.
    let release = Release::default();
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let plan = adopt::plan_adoption(&live, &rendered, &release);
    assert!(plan.can_adopt(), "{:?}", plan.blockers);
    assert!(!plan.patches.is_empty());
    let ds_patch = plan
        .patches
        .iter()
        .find(|p| p.object.kind == "DaemonSet")
        .expect("the DaemonSet is adopted");
    // The pod template has Kubespray-only fields: it is replaced whole by the rendered one.
    let template = ds_patch
        .prune
        .iter()
        .find(|p| p.path == "/spec/template")
        .expect("the DaemonSet's pod template is replaced");
    let tolerations = "/metadata/annotations/scheduler.alpha.kubernetes.io~1tolerations";
    assert!(template.live.pointer(tolerations).is_some());
    assert!(
        template
            .replacement
            .as_ref()
            .unwrap()
            .pointer(tolerations)
            .is_none()
    );

    // A merge patch carrying another UID is refused by the API server: the precondition holds.
    let cm = ObjectRef::new("v1", "ConfigMap", Some("kube-system"), "cilium-config");
    let cm_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "kube-system",
        &resource_of(&cm, "configmaps"),
    );
    let wrong_uid =
        json!({"metadata": {"uid": "00000000-0000-0000-0000-000000000000", "labels": {"x": "y"}}});
    assert!(
        cm_api
            .patch(
                "cilium-config",
                &PatchParams::default(),
                &Patch::Merge(&wrong_uid)
            )
            .await
            .is_err()
    );
    assert!(
        live_json(&client, &cm, "configmaps").await.unwrap()["metadata"]["labels"]
            .get("x")
            .is_none()
    );

    let mut journal = Journal::open(&bundle_dir).unwrap();
    journal.ensure_cluster(&identity).unwrap();
    journal.start(Step::AdoptMetadata).unwrap();
    adopt::apply_adoption(&client, &plan, Phase::Metadata)
        .await
        .unwrap();
    journal.done(Step::AdoptMetadata).unwrap();
    let ds_ref = ObjectRef::new("apps/v1", "DaemonSet", Some("kube-system"), "cilium");
    let generation = |ds: &serde_json::Value| ds["metadata"]["generation"].as_i64();
    let adopted_generation = generation(&live_json(&client, &ds_ref, "daemonsets").await.unwrap());

    // Mid-way, era detection refuses the half-adopted state without the journal, and resumes
    // with it.
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::Unknown),
        Err(era::EraError::Mixed {
            has_release: false,
            ..
        })
    ));
    assert_eq!(
        era::detect(
            &state,
            Journal::status_in(&bundle_dir).unwrap(),
            InventoryClaim::Unknown
        )
        .unwrap(),
        Era::InProgress {
            next_step: Step::HelmInstall
        }
    );

    // The install (the real flow drives it through the helm crate).
    journal.start(Step::HelmInstall).unwrap();
    let mut install: Vec<String> = vec![
        "upgrade".into(),
        "--install".into(),
        "cilium".into(),
        chart.display().to_string(),
        "--namespace=kube-system".into(),
    ];
    install.extend(values_args.iter().cloned());
    let helm_binary = match helm_major {
        HelmMajor::Three => &tools.helm3,
        HelmMajor::Four => {
            install.extend(["--server-side=true".into(), "--force-conflicts".into()]);
            &tools.helm4
        }
    };
    helm(helm_binary, testbed.kubeconfig(), &install);
    journal.done(Step::HelmInstall).unwrap();
    // The template was already the rendered one: the install does not roll the agents again.
    assert_eq!(
        generation(&live_json(&client, &ds_ref, "daemonsets").await.unwrap()),
        adopted_generation,
        "the install changed the DaemonSet's spec"
    );

    // Pruning, from a fresh plan: Kubespray's leftovers go, nothing else.
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let plan = adopt::plan_adoption(&live, &rendered, &release);
    assert!(plan.can_adopt(), "{:?}", plan.blockers);
    assert!(
        plan.patches.iter().all(|p| p.metadata.is_none()),
        "Helm owns them all now"
    );
    let ds_patch = plan
        .patches
        .iter()
        .find(|p| p.object.kind == "DaemonSet")
        .unwrap();
    let after_install: Vec<&str> = ds_patch
        .prune
        .iter()
        .filter(|p| p.phase() == Phase::Prune)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(
        after_install,
        ["/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"],
        "after the install only kubectl's record is left to remove"
    );
    // A concurrent change to a field the plan removes makes the JSON patch's `test` fail on the
    // server: nothing of that object is removed, the step fails, and a re-plan succeeds.
    let ds_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "kube-system",
        &resource_of(&ds_patch.object, "daemonsets"),
    );
    // Someone runs `kubectl apply` meanwhile: the record changes.
    let concurrent = json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: "{}"}}});
    ds_api
        .patch(
            "cilium",
            &PatchParams::default(),
            &Patch::Merge(&concurrent),
        )
        .await
        .unwrap();
    journal.start(Step::PruneFields).unwrap();
    let failed = adopt::apply_adoption(&client, &plan, Phase::Prune).await;
    assert!(
        matches!(failed, Err(adopt::ApplyError::Patch { ref object, what: "prune", .. }) if object.kind == "DaemonSet"),
        "{failed:?}"
    );
    journal
        .failed(Step::PruneFields, "concurrent change")
        .unwrap();
    let ds = live_json(&client, &ds_patch.object, "daemonsets")
        .await
        .unwrap();
    assert!(
        object::annotation(&ds, LAST_APPLIED_ANNOTATION).is_some(),
        "nothing was removed"
    );
    let mut journal = Journal::open(&bundle_dir).unwrap();
    assert_eq!(journal.next_step(), Some(Step::PruneFields));
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let plan = adopt::plan_adoption(&live, &rendered, &release);
    journal.start(Step::PruneFields).unwrap();
    adopt::apply_adoption(&client, &plan, Phase::Prune)
        .await
        .unwrap();
    journal.done(Step::PruneFields).unwrap();
    assert_eq!(journal.next_step(), Some(Step::InventoryEdit));

    // Every adopted object carries the ownership metadata, has lost the kubectl record, and is
    // the same object (same UID) as in the bundle.
    let before = bundle_uids(&bundle, Section::Handover);
    let mut resources = adopt::Resources::default();
    for p in &plan.patches {
        let (resource, _) = resources.resolve(&client, &p.object).await.unwrap();
        let object = live_json(&client, &p.object, &resource.plural)
            .await
            .unwrap();
        assert_eq!(
            object::helm_owner(&object),
            HelmOwner::Release {
                name: "cilium".into(),
                namespace: "kube-system".into()
            },
            "{}",
            p.object
        );
        assert!(
            object::annotation(&object, LAST_APPLIED_ANNOTATION).is_none(),
            "{}",
            p.object
        );
        assert_eq!(
            object::str_at(&object, &["metadata", "uid"]),
            Some(p.uid.as_str())
        );
        if let Some(backed_up) = before.iter().find(|(r, _)| r.same_object(&p.object)) {
            assert_eq!(
                backed_up.1.as_deref(),
                Some(p.uid.as_str()),
                "{} was re-created",
                p.object
            );
        }
    }
    let ds = live_json(&client, &ds_patch.object, "daemonsets")
        .await
        .unwrap();
    assert!(
        ds.pointer(
            "/spec/template/metadata/annotations/scheduler.alpha.kubernetes.io~1tolerations"
        )
        .is_none()
    );
    // A re-plan finds nothing left to do: the adoption is idempotent.
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    assert!(adopt::plan_adoption(&live, &rendered, &release).is_empty());

    // Rollback: keep the adopted objects, uninstall the release, restore from the bundle, then
    // compare object by object.
    let bundle = Bundle::open(&bundle_dir).unwrap();
    bundle.verify().unwrap();
    // The release did not exist before: forget it (its uninstall would delete the adopted
    // DaemonSet), then delete what it created.
    assert_eq!(report.objects.get("helm-release"), Some(&0));
    let forgotten = guard::forget_release(&client, &release).await.unwrap();
    assert_eq!(forgotten.len(), 1, "{forgotten:?}");
    let removed = restore::remove_created(&client, &bundle, &release)
        .await
        .unwrap();
    assert!(
        removed.iter().any(|r| r.kind == "Role"),
        "the chart's Role goes: {removed:?}"
    );
    let restored = restore::restore_handover(&client, &bundle).await.unwrap();
    assert!(!restored.replaced.is_empty(), "{restored:?}");
    let differences = restore::compare_with_cluster(
        &client,
        &bundle,
        &[Section::Handover, Section::CustomResources, Section::Crds],
    )
    .await
    .unwrap();
    assert_eq!(differences, Vec::<Difference>::new());
    // Same objects, not re-created ones.
    let after = live_uids(&client, &bundle, Section::Handover).await;
    for (r, uid) in &before {
        assert_eq!(after.get(r), Some(uid), "{r}");
    }
    let cr_before = bundle_uids(&bundle, Section::CustomResources);
    let cr_after = live_uids(&client, &bundle, Section::CustomResources).await;
    assert_eq!(cr_before.len() as u64, cilium_objects);
    for (r, uid) in &cr_before {
        assert_eq!(cr_after.get(r), Some(uid), "{r}");
    }
    // The restored state is the template era again.
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium).unwrap(),
        Era::TemplateManifests { .. }
    ));

    // An inventory file the hand-over wrote (recorded first) comes back byte for byte.
    let cilium_vars = files_under(&inventory)
        .into_keys()
        .find(|p| p.ends_with("k8s-net-cilium.yml"))
        .expect("the rendered inventory has k8s-net-cilium.yml");
    let original = fs::read(&cilium_vars).unwrap();
    let mut bundle = bundle;
    let edited = b"kube_network_plugin: cni\n";
    bundle
        .record_write(&cilium_vars, Some((&original, 0o644)), (edited, 0o644))
        .unwrap();
    fs::write(&cilium_vars, edited).unwrap();
    bundle.restore_written().unwrap();
    assert_eq!(fs::read(&cilium_vars).unwrap(), original);

    // A change to the bundle after the backup is caught before anything is written.
    let secret_file = bundle
        .files(Section::Handover)
        .find(|f| f.kind == "Secret")
        .map(|f| bundle_dir.join(&f.path));
    if let Some(secret_file) = secret_file {
        let mut text = fs::read_to_string(&secret_file).unwrap();
        text.push_str(
            "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"extra\"}}\n",
        );
        fs::write(&secret_file, text).unwrap();
        let err = Bundle::open(&bundle_dir)
            .unwrap()
            .verify()
            .unwrap_err()
            .to_string();
        assert!(err.contains("SHA-256"), "{err}");
    }
}
