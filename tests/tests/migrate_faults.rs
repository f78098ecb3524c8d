//! End-to-end: faults in the middle of the hand-over of the objects Kubespray v2.27.1 applies to
//! the released Cilium 1.15.9 chart.
//!
//! - `faults_then_resume`: one migration meets, in turn, a failing `helm` (a wrapper that
//!   refuses `upgrade`), the API server stopped as `helm-install` starts, a failure injected
//!   after the install (the `fail_after` hook, `CILIUM_MIGRATE_FAIL_AT`), the API server
//!   stopped as `prune-fields` starts, and the `cargo xtask migrate` process killed (with its
//!   helm) mid-step. Each re-run resumes from the journal; the last one ends consistent (release
//!   deployed, DaemonSet never deleted, every cilium.io object the same), and `rollback` then
//!   restores the backup exactly.
//! - `rollback_after_a_failure_at_every_step`: for every step of `adopt` and `replace`, a run
//!   fails right after that step's work, and `rollback` restores the backup exactly.
//!
//! Each test starts a testbed of its own (the fixture owns `kube-system`).

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use migrate_common::{
    Recorder, inventory_copy, live_cilium_config, migrate_options, release_cilium_config,
    release_status, template_era_testbed, upstream,
};
use migration::bundle::{Bundle, Section};
use migration::era::{self, Era, InventoryClaim};
use migration::flow::{self, FlowError, Outcome, RollbackOptions};
use migration::journal::{Journal, JournalStatus, Step, StepState, Strategy};
use testbed::Testbed;
use testbed::monitor::AgentMonitor;
use tests::{bundle_uids, files_under, live_uids};

/// How long the API server may take to serve again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// A helm that fails every `upgrade` the way Helm reports a failed install, and runs the real
/// helm for everything else.
fn failing_helm(dir: &Path, real: &Path) -> PathBuf {
    let path = dir.join("helm-failing-upgrade");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = upgrade ]; then\n  echo 'Error: UPGRADE FAILED: injected by the test' >&2\n  exit 1\nfi\nexec '{}' \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The testbed behind a lock, so that a progress hook can stop its API server mid-run.
type SharedTestbed = Arc<Mutex<Option<Testbed>>>;

fn stop_apiserver_when(testbed: &SharedTestbed, step: &'static str) -> Recorder {
    let testbed = Arc::clone(testbed);
    Recorder {
        on_start: Some(Box::new(move |name| {
            if name == step {
                let mut guard = testbed.lock().unwrap_or_else(PoisonError::into_inner);
                guard.as_mut().unwrap().stop_apiserver().unwrap();
            }
        })),
        ..Recorder::default()
    }
}

async fn start_apiserver(testbed: &SharedTestbed) {
    let mut taken = testbed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap();
    taken.start_apiserver(RESTART_TIMEOUT).await.unwrap();
    *testbed.lock().unwrap_or_else(PoisonError::into_inner) = Some(taken);
}

fn journal_state(bundle: &Path, step: Step) -> Option<StepState> {
    Journal::open(bundle).unwrap().state_of(step)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_then_resume() {
    let Some(upstream) = upstream("migrate_faults::faults_then_resume") else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    let nodes = testbed.nodes().to_vec();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);
    let bundle_dir = tmp.path().join("bundle");
    let migrate = migrate_options(
        &testbed,
        &inventory,
        &bundle_dir,
        &tools.helm3,
        tmp.path(),
        &chart,
    );
    let testbed: SharedTestbed = Arc::new(Mutex::new(Some(testbed)));

    let monitor = AgentMonitor::start(&client, &nodes);
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let daemonset_uid = monitor
        .inspect(|log| log.daemonset_uid().map(str::to_owned))
        .unwrap();

    // 1. helm fails: the step is journaled failed; the objects are adopted but no release exists.
    let mut with_failing_helm = migrate.clone();
    with_failing_helm.helm = Some(failing_helm(tmp.path(), &tools.helm3));
    let err = flow::run(&with_failing_helm, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::Helm(_)), "{err:?}");
    assert!(err.to_string().contains("injected by the test"), "{err}");
    assert_eq!(
        journal_state(&bundle_dir, Step::HelmInstall),
        Some(StepState::Failed)
    );
    assert!(release_status(&tools.helm3, &kubeconfig).is_none());
    // Without the journal this half-adopted state is refused; with it, it is a resume.
    let state = era::collect_state(&client).await.unwrap();
    assert!(matches!(
        era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium),
        Err(era::EraError::Mixed { .. })
    ));

    // 2. The API server goes away as the install starts.
    let err = flow::run(&migrate, &mut stop_apiserver_when(&testbed, "helm-install"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, FlowError::Helm(_) | FlowError::Api { .. }),
        "{err:?}"
    );
    assert_eq!(
        journal_state(&bundle_dir, Step::HelmInstall),
        Some(StepState::Failed)
    );
    start_apiserver(&testbed).await;

    // 3. A crash right after the install's work: the release is there, the step not done.
    let mut crash = migrate.clone();
    crash.fail_after = Some(Step::HelmInstall);
    let err = flow::run(&crash, &mut Recorder::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FlowError::Injected(Step::HelmInstall)),
        "{err:?}"
    );
    assert_eq!(
        release_status(&tools.helm3, &kubeconfig)
            .unwrap()
            .info
            .status,
        helm::ReleaseStatus::Deployed
    );
    assert_eq!(
        Journal::open(&bundle_dir).unwrap().next_step(),
        Some(Step::HelmInstall)
    );

    // 4. The API server goes away as the pruning starts (the install is re-run first: an
    //    upgrade to the same values).
    let mut progress = stop_apiserver_when(&testbed, "prune-fields");
    let err = flow::run(&migrate, &mut progress).await.unwrap_err();
    assert!(
        matches!(err, FlowError::Api { .. } | FlowError::Adopt(_)),
        "{err:?}"
    );
    assert_eq!(
        journal_state(&bundle_dir, Step::HelmInstall),
        Some(StepState::Done)
    );
    assert_eq!(
        journal_state(&bundle_dir, Step::PruneFields),
        Some(StepState::Failed)
    );
    start_apiserver(&testbed).await;

    // 5. `cargo xtask migrate` is killed, helm and all, once a step has started.
    let killed_at = kill_xtask_when_started(&migrate, "prune-fields", tmp.path());
    assert!(killed_at.contains("prune-fields"), "{killed_at}");
    let next = Journal::open(&bundle_dir).unwrap().next_step();
    assert!(
        matches!(next, Some(Step::PruneFields | Step::InventoryEdit)),
        "{next:?}"
    );

    // 6. The last run resumes and finishes; the cluster is consistent.
    let mut progress = Recorder::default();
    let outcome = flow::run(&migrate, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", progress.lines.join("\n")));
    let Outcome::Migrated { steps, .. } = outcome else {
        panic!("expected a migration, got {outcome:?}")
    };
    assert!(
        !steps
            .iter()
            .any(|s| s.step == Step::Backup || s.step == Step::AdoptMetadata)
    );
    assert!(Journal::open(&bundle_dir).unwrap().is_finished());
    monitor
        .wait_all_ready(Duration::from_secs(120))
        .await
        .unwrap();
    let availability = monitor.stop();
    assert!(
        !availability.daemonset.deleted,
        "{:?}",
        availability.daemonset
    );
    assert_eq!(availability.daemonset.uids, vec![daemonset_uid]);
    assert_eq!(
        release_status(&tools.helm3, &kubeconfig)
            .unwrap()
            .info
            .status,
        helm::ReleaseStatus::Deployed
    );
    assert_eq!(
        release_cilium_config(&tools.helm3, &kubeconfig),
        live_cilium_config(&client).await
    );
    let bundle = Bundle::open(&bundle_dir).unwrap();
    for section in [Section::CustomResources, Section::Crds] {
        assert_eq!(
            live_uids(&client, &bundle, section).await,
            bundle_uids(&bundle, section),
            "{section:?}"
        );
    }
    // Nothing was lost: rollback brings the backup back exactly.
    let rolled = flow::rollback(
        &rollback_options(&bundle_dir, &kubeconfig, &tools.helm3),
        &mut Recorder::default(),
    )
    .await
    .unwrap();
    assert!(rolled.differences.is_empty(), "{:#?}", rolled.differences);
    assert_eq!(files_under(&inventory), inventory_before);
    drop(testbed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_a_failure_at_every_step() {
    let Some(upstream) = upstream("migrate_faults::rollback_after_a_failure_at_every_step") else {
        return;
    };
    let case = tests::rendered_case(&upstream, "sample", "v2.27.1");
    let chart = tests::cilium_chart(&upstream);
    let tmp = tempfile::tempdir().unwrap();
    let testbed = template_era_testbed(&tmp.path().join("testbed"), &case).await;
    let tools = testbed.tools();
    let client = testbed.client().await.unwrap();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let inventory = inventory_copy(&case, tmp.path());
    let inventory_before = files_under(&inventory);

    for strategy in [Strategy::Adopt, Strategy::Replace] {
        for (n, step) in strategy.steps().iter().enumerate() {
            let bundle_dir = tmp.path().join(format!("bundle-{strategy}-{n}"));
            let mut migrate = migrate_options(
                &testbed,
                &inventory,
                &bundle_dir,
                &tools.helm4,
                tmp.path(),
                &chart,
            );
            migrate.strategy = Some(strategy);
            migrate.fail_after = Some(*step);
            let mut progress = Recorder::default();
            let err = flow::run(&migrate, &mut progress).await.err();
            assert!(
                matches!(err, Some(FlowError::Injected(s)) if s == *step),
                "{strategy} {step}: {err:?}\n{}",
                progress.lines.join("\n")
            );
            let daemonset_before =
                bundle_uids(&Bundle::open(&bundle_dir).unwrap(), Section::Handover)
                    .into_iter()
                    .find(|(r, _)| r.kind == "DaemonSet")
                    .map(|(_, uid)| uid);

            let mut progress = Recorder::default();
            let rolled = flow::rollback(
                &rollback_options(&bundle_dir, &kubeconfig, &tools.helm4),
                &mut progress,
            )
            .await
            .unwrap_or_else(|e| panic!("{strategy} {step}: {e}\n{}", progress.lines.join("\n")));
            assert!(
                rolled.differences.is_empty(),
                "{strategy} {step}: {:#?}",
                rolled.differences
            );
            assert_eq!(
                files_under(&inventory),
                inventory_before,
                "{strategy} {step}"
            );
            assert!(
                release_status(&tools.helm4, &kubeconfig).is_none(),
                "{strategy} {step}"
            );
            let bundle = Bundle::open(&bundle_dir).unwrap();
            for section in [Section::CustomResources, Section::Crds] {
                assert_eq!(
                    live_uids(&client, &bundle, section).await,
                    bundle_uids(&bundle, section),
                    "{strategy} {step} {section:?}"
                );
            }
            // Adoption keeps the DaemonSet itself; replace re-creates it.
            let live_ds = live_uids(&client, &bundle, Section::Handover)
                .await
                .into_iter()
                .find(|(r, _)| r.kind == "DaemonSet")
                .map(|(_, uid)| uid);
            if strategy == Strategy::Adopt {
                assert_eq!(live_ds, daemonset_before, "{strategy} {step}");
            } else {
                assert!(matches!(live_ds, Some(Some(_))), "{strategy} {step}");
            }
            let state = era::collect_state(&client).await.unwrap();
            assert!(
                matches!(
                    era::detect(&state, JournalStatus::Absent, InventoryClaim::ManagesCilium),
                    Ok(Era::TemplateManifests { .. })
                ),
                "{strategy} {step}"
            );
        }
    }
}

fn rollback_options(bundle: &Path, kubeconfig: &Path, helm: &Path) -> RollbackOptions {
    RollbackOptions {
        bundle: bundle.to_path_buf(),
        kubeconfig: Some(kubeconfig.to_path_buf()),
        helm: Some(helm.to_path_buf()),
        apply: true,
    }
}

/// Runs `cargo xtask migrate --apply --yes` (the built binary) in its own process group and
/// kills the whole group (xtask and any helm it runs) when stderr says `step` started. Returns
/// the line it reacted to.
fn kill_xtask_when_started(migrate: &flow::MigrateOptions, step: &str, scratch: &Path) -> String {
    let mut command = Command::new(migrate_common::xtask_binary());
    command
        .args(migrate_common::migrate_args(migrate, scratch))
        .args(["--apply", "--yes", "--verify-timeout", "3m"]);
    let mut child = command
        .env_remove("CILIUM_MIGRATE_FAIL_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut trigger = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(&format!("] {step} ...")) {
            // The child leads its own process group (process_group(0)): the group is it and
            // the helm it runs, nothing else.
            let group = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
            rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
            trigger = Some(line);
            break;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap();
    assert!(!status.success());
    trigger.unwrap_or_else(|| panic!("{step} never started; stderr:\n{}", seen.join("\n")))
}
