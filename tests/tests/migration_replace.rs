//! End-to-end: the `replace` strategy's parts: adoption of everything the chart renders but the
//! workloads (ServiceAccounts, RBAC, `cilium-config`, the kept Secrets stay in place), deletion
//! of only the workloads through the guard, the Helm install, and rollback (forget the release,
//! delete what it created, restore from the bundle), compared object by object, with the custom
//! resources that churn on a live cluster changed meanwhile.
//!
//! On the objects Kubespray v2.27.1 applies with Hubble fully on (`hubble-full`: relay, UI,
//! certgen, so there are Secrets to keep), with the released Cilium 1.15.9 chart. Starts a
//! testbed of its own (the fixture owns `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migration_common;

use std::time::Duration;

use kube::Api;
use kube::api::DynamicObject;
use kube::runtime::conditions;
use kube::runtime::wait::await_condition;
use migration::adopt::{self, Phase, Release};
use migration::bundle::{BackupRequest, Bundle, Section};
use migration::era;
use migration::guard;
use migration::identity::ClusterIdentity;
use migration::journal::{Journal, Step, Strategy};
use migration::object::ObjectRef;
use migration::restore::{self, Difference};
use migration::template_era::{self, KEPT_SECRETS};
use migration_common::{helm, options_for, render, resource_of, seed_template_era, start_testbed};
use tests::{bundle_uids, live_uids};

/// How long the garbage collector may take to finish a delete.
const DELETE_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_deletes_only_template_objects_and_rollback_recreates_them() {
    let Some(upstream) = upstream::Upstream::for_test(
        "migration_replace::replace_deletes_only_template_objects_and_rollback_recreates_them",
    ) else {
        return;
    };
    let case = tests::rendered_case(&upstream, "hubble-full", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = start_testbed(&tmp.path().join("testbed")).await;
    let options = options_for(&testbed);
    seed_template_era(&testbed, &case, &options);
    let client = testbed.client().await.unwrap();
    let values = tests::xtask_values(&case, tests::HANDOVER_CHART_VERSION, tmp.path());
    let values_args = [format!("--values={}", values.display())];

    let identity = ClusterIdentity::read(&client, testbed.api_server())
        .await
        .unwrap();
    let tools = testbed.tools();
    let rendered = render(&tools.helm, &chart, &values_args);
    let release = Release::default();
    let bundle_dir = tmp.path().join("bundle");
    let mut journal = Journal::create(&bundle_dir, identity.clone(), Strategy::Replace).unwrap();
    journal.start(Step::Backup).unwrap();
    let request = BackupRequest {
        dir: bundle_dir.clone(),
        cluster: identity,
        extra_objects: rendered.iter().filter_map(ObjectRef::of).collect(),
        inventory: Vec::new(),
        page_size: 100,
    };
    let bundle = Bundle::create(&client, &request).await.unwrap();
    bundle.verify().unwrap();
    journal.done(Step::Backup).unwrap();

    // What `replace` does: adopt everything the chart renders except the workloads, then
    // delete those (orphaning their pods) through the guard, waiting until each is gone.
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let deletions = guard::replace_deletions(&live, &rendered);
    let kinds: Vec<&str> = deletions.iter().map(|(r, _)| r.kind.as_str()).collect();
    assert!(kinds.contains(&"DaemonSet"), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| *k == "DaemonSet" || *k == "Deployment"),
        "replace deletes only workloads: {kinds:?}"
    );
    let replaced: Vec<ObjectRef> = deletions.iter().map(|(r, _)| r.clone()).collect();
    let plan = adopt::plan_adoption(&live, &rendered, &release).without(&replaced);
    assert!(plan.can_adopt(), "{:?}", plan.blockers);
    let adopted_kinds: Vec<&str> = plan
        .patches
        .iter()
        .map(|p| p.object.kind.as_str())
        .collect();
    for kind in [
        "ServiceAccount",
        "ConfigMap",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
    ] {
        assert!(
            adopted_kinds.contains(&kind),
            "{kind} not adopted: {adopted_kinds:?}"
        );
    }
    journal.start(Step::DeleteTemplateObjects).unwrap();
    adopt::apply_adoption(&client, &plan, Phase::Metadata)
        .await
        .unwrap();
    for (object, uid) in &deletions {
        let kind = template_era::template_kind(object).unwrap();
        let resource = resource_of(object, kind.plural);
        // Workload pods are orphaned, so the replacement adopts them instead of a restart wave.
        guard::delete(&client, &resource, object, uid, true)
            .await
            .unwrap();
        let api: Api<DynamicObject> = match &object.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let gone = tokio::time::timeout(
            DELETE_TIMEOUT,
            await_condition(api, &object.name, conditions::is_deleted(uid)),
        )
        .await;
        assert!(
            matches!(gone, Ok(Ok(_))),
            "{object} was not deleted within {DELETE_TIMEOUT:?}"
        );
    }
    journal.done(Step::DeleteTemplateObjects).unwrap();

    // Secrets, CRDs and custom resources are untouched: same UIDs as in the bundle.
    for section in [Section::CustomResources, Section::Crds] {
        let before = bundle_uids(&bundle, section);
        let after = live_uids(&client, &bundle, section).await;
        assert!(!before.is_empty(), "{section:?}");
        for (r, uid) in &before {
            assert_eq!(after.get(r), Some(uid), "{r}");
        }
    }
    let handover_after = live_uids(&client, &bundle, Section::Handover).await;
    let secrets: Vec<&ObjectRef> = handover_after
        .keys()
        .filter(|r| r.kind == "Secret")
        .collect();
    assert!(!secrets.is_empty(), "certgen wrote the Hubble Secrets");
    for r in secrets {
        assert!(KEPT_SECRETS.contains(&r.name.as_str()));
        assert!(handover_after[r].is_some(), "{r} was deleted");
    }
    // The deleted objects are really gone.
    for (r, _) in &deletions {
        let live = handover_after
            .iter()
            .find(|(x, _)| x.same_object(r))
            .map(|(_, uid)| uid.clone());
        assert_eq!(live, Some(None), "{r}");
    }

    // Everything that stayed is adopted already: a fresh plan has nothing left to do before
    // the install (only kubectl's last-applied annotation, which goes after it).
    let live = adopt::fetch_live(&client, &rendered, &release)
        .await
        .unwrap();
    let plan = adopt::plan_adoption(&live, &rendered, &release);
    assert!(plan.can_adopt(), "{:?}", plan.blockers);
    for p in &plan.patches {
        assert!(
            p.metadata.is_none() && p.prune_json_patch_for(Phase::Metadata).is_none(),
            "{} is not adopted",
            p.object
        );
    }
    // Helm installs the chart, which creates the workloads anew.
    journal.start(Step::HelmInstall).unwrap();
    helm(
        &tools.helm3,
        testbed.kubeconfig(),
        &[
            "upgrade".into(),
            "--install".into(),
            "cilium".into(),
            chart.display().to_string(),
            "--namespace=kube-system".into(),
            values_args[0].clone(),
        ],
    );
    journal.done(Step::HelmInstall).unwrap();
    let after_install = live_uids(&client, &bundle, Section::Handover).await;
    let ds_after = after_install
        .iter()
        .find(|(r, _)| r.kind == "DaemonSet")
        .unwrap();
    assert!(ds_after.1.is_some(), "Helm created the DaemonSet");

    // Rollback: forget the release, delete what it created, put the bundle back, compare.
    guard::forget_release(&client, &release).await.unwrap();
    let removed = restore::remove_created(&client, &bundle, &release)
        .await
        .unwrap();
    assert!(removed.iter().any(|r| r.kind == "Role"), "{removed:?}");
    let restored = restore::restore_handover(&client, &bundle).await.unwrap();
    assert!(
        restored
            .replaced
            .iter()
            .any(|r| r.kind == "DaemonSet" && r.name == "cilium"),
        "{restored:?}"
    );
    // What churns on a live cluster by itself is no rollback difference: an endpoint whose pod
    // went, an identity the operator collected, a CiliumNode its agent rewrote.
    churn(&client).await;
    let differences = restore::compare_with_cluster(
        &client,
        &bundle,
        &[Section::Handover, Section::CustomResources, Section::Crds],
    )
    .await
    .unwrap();
    assert_eq!(differences, Vec::<Difference>::new());
    // Re-created objects are new objects (new UIDs); the comparison ignores that on purpose.
    let recreated = live_uids(&client, &bundle, Section::Handover).await;
    let ds = recreated
        .iter()
        .find(|(r, _)| r.kind == "DaemonSet")
        .unwrap();
    let old = bundle_uids(&bundle, Section::Handover);
    assert_ne!(Some(ds.1), old.get(ds.0));
    // And the cluster is recognised as the template era again.
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(
            &state,
            migration::journal::JournalStatus::Absent,
            era::InventoryClaim::ManagesCilium
        ),
        Ok(era::Era::TemplateManifests { .. })
    ));
}

/// What a running Cilium does to its own custom resources while nobody hands anything over:
/// one CiliumEndpoint goes (and one CiliumIdentity, when identities live in CRDs: this case
/// keeps them in etcd), one CiliumNode is rewritten.
async fn churn(client: &kube::Client) {
    for (kind, plural, required) in [
        ("CiliumEndpoint", "ciliumendpoints", true),
        ("CiliumIdentity", "ciliumidentities", false),
    ] {
        let resource =
            migration_common::resource_of(&ObjectRef::new("cilium.io/v2", kind, None, "x"), plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let first = api
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .unwrap()
            .items
            .into_iter()
            .next();
        let Some(first) = first else {
            assert!(!required, "the fixture has no {kind}");
            continue;
        };
        let name = first.metadata.name.clone().unwrap();
        let scoped: Api<DynamicObject> = match first.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
            None => api,
        };
        scoped
            .delete(&name, &kube::api::DeleteParams::default())
            .await
            .unwrap();
    }
    let nodes: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &migration_common::resource_of(
            &ObjectRef::new("cilium.io/v2", "CiliumNode", None, "x"),
            "ciliumnodes",
        ),
    );
    let node = nodes
        .list(&kube::api::ListParams::default().limit(1))
        .await
        .unwrap()
        .items
        .into_iter()
        .next()
        .expect("the fixture has CiliumNodes");
    let patch =
        serde_json::json!({"metadata": {"annotations": {"network.cilium.io/churn": "rewritten"}}});
    nodes
        .patch(
            &node.metadata.name.unwrap(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
}
