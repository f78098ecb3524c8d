//! End-to-end: no two runs change a cluster at once, and a pending release that is not this
//! run's is left alone.
//!
//! - `a_second_run_is_refused_and_a_foreign_pending_release_is_left_alone`: a hand-over is held
//!   inside its `helm upgrade` (a helm wrapper waits on a FIFO the test opens); meanwhile a
//!   second `migrate` (another bundle), `rollback --apply` and `gateway-api enable --apply` are
//!   refused naming the holder, and nothing of theirs starts. The first run then stops right
//!   after its install (`fail_after`) and releases the Lease. Another operator's `helm upgrade
//!   --wait` then leaves the release `pending-upgrade` (its operator pods cannot be scheduled);
//!   the resumed hand-over refuses it, and the release stays as that operator's helm left it.

// Helpers of a test panic on failure by design; clippy only exempts `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod migrate_common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use migrate_common::{
    Recorder, inventory_copy, migrate_options, release_status, template_era_testbed, upstream,
};
use migration::flow::{self, FlowError};
use migration::journal::{Journal, Step, StepState};
use migration::lock::{LEASE_NAME, LEASE_NAMESPACE};

/// A helm that, on `upgrade`, says so on the FIFO `reached` and waits for the test to open the
/// FIFO `go` (at most five minutes, so that a failed test cannot hang), then runs the real helm.
fn held_helm(dir: &Path, real: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (reached, go) = (dir.join("reached"), dir.join("go"));
    for fifo in [&reached, &go] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }
    let path = dir.join("helm-held-at-upgrade");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = upgrade ]; then\n  echo reached > '{}'\n  timeout 300 cat '{}' > /dev/null\nfi\nexec '{}' \"$@\"\n",
            reached.display(),
            go.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, reached, go)
}

/// Runs `xtask` with `args`; returns (success, stderr).
async fn xtask(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let mut command = Command::new(tests::xtask_binary());
    command
        .args(args)
        .env_remove("CILIUM_MIGRATE_FAIL_AT")
        .stdin(Stdio::null());
    // Off the test's task: the held run beside it must keep being polled.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_is_refused_and_a_foreign_pending_release_is_left_alone() {
    let Some(upstream) =
        upstream("run_lock::a_second_run_is_refused_and_a_foreign_pending_release_is_left_alone")
    else {
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
    let bundle = tmp.path().join("bundle");
    let (held, reached, go) = held_helm(tmp.path(), &tools.helm3);
    let mut first = migrate_options(&testbed, &inventory, &bundle, &held, tmp.path(), &chart);
    first.fail_after = Some(Step::HelmInstall);

    // 1. The first run, held inside its helm upgrade; the rest runs meanwhile, beside it.
    let running = async {
        let mut progress = Recorder::default();
        let result = flow::run(&first, &mut progress).await;
        (result, progress.lines)
    };
    let meanwhile = async {
        let signal = tokio::task::spawn_blocking(move || std::fs::read_to_string(reached));
        tokio::time::timeout(Duration::from_secs(600), signal)
            .await
            .expect("the first run reaches helm upgrade")
            .unwrap()
            .unwrap();
        let holder = format!("pid {}: migrate --apply", std::process::id());

        // 2. A second hand-over (another bundle) is refused naming the holder; it wrote nothing.
        let second_bundle = tmp.path().join("bundle-2");
        let second = migrate_options(
            &testbed,
            &inventory,
            &second_bundle,
            &tools.helm3,
            tmp.path(),
            &chart,
        );
        let err = flow::run(&second, &mut Recorder::default())
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, FlowError::Refused(_)), "{err:?}");
        assert!(
            text.contains(&format!("Lease {LEASE_NAMESPACE}/{LEASE_NAME} is held by"))
                && text.contains(&holder)
                && text.contains(" ago"),
            "{text}"
        );
        assert!(!second_bundle.exists(), "the refused run made its bundle");

        // 3. So are a rollback of the first run's bundle and a Gateway API enable, from other
        //    processes.
        let (ok, stderr) = xtask(&[
            "rollback".as_ref(),
            "--bundle".as_ref(),
            bundle.as_os_str(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--helm".as_ref(),
            tools.helm3.as_os_str(),
            "--apply".as_ref(),
        ])
        .await;
        assert!(!ok && stderr.contains(&holder), "rollback:\n{stderr}");
        let (ok, stderr) = xtask(&[
            "gateway-api".as_ref(),
            "enable".as_ref(),
            "--apply".as_ref(),
            "--kubeconfig".as_ref(),
            kubeconfig.as_os_str(),
            "--helm".as_ref(),
            tools.helm3.as_os_str(),
            "--chart".as_ref(),
            chart.as_os_str(),
            "--journal".as_ref(),
            tmp.path().join("gateway-api-journal.json").as_os_str(),
        ])
        .await;
        assert!(
            !ok && stderr.contains(&holder),
            "gateway-api enable:\n{stderr}"
        );
        assert!(!tmp.path().join("gateway-api-journal.json").exists());

        // 4. The first run goes on, stops right after its install, and releases the Lease.
        tokio::task::spawn_blocking(move || std::fs::write(go, b"go"))
            .await
            .unwrap()
            .unwrap();
    };
    let ((result, lines), ()) = tokio::join!(running, meanwhile);
    assert!(
        matches!(result, Err(FlowError::Injected(Step::HelmInstall))),
        "{result:?}\n{}",
        lines.join("\n")
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    assert!(leases.get_opt(LEASE_NAME).await.unwrap().is_none());
    let deployed = release_status(&tools.helm3, &kubeconfig).unwrap();
    assert_eq!(deployed.info.status, helm::ReleaseStatus::Deployed);
    // The journal recorded the helm run before it started.
    let journal = Journal::open(&bundle).unwrap();
    let run = journal
        .helm_run("cilium", "kube-system", deployed.revision)
        .expect("the install's helm run is journaled");
    assert!(run.holder.ends_with(&format!("pid {}", std::process::id())));
    assert_eq!(run.action, "upgrade --install");
    assert!(run.chart_sha256.as_ref().is_some_and(|s| s.len() == 64));

    // 5. Another operator's `helm upgrade --wait` is pending: its operator pods can never be
    //    scheduled, so it waits (until its timeout) with the release pending-upgrade.
    let mut other = Command::new(&tools.helm3)
        .args(["upgrade", "cilium"])
        .arg(&chart)
        .args(["--namespace", "kube-system", "--reuse-values"])
        .args(["--set", "operator.nodeSelector.cilium-migrate-test=nowhere"])
        .args(["--wait", "--timeout", "10m", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pending = tests::wait_for(
        "the other operator's upgrade to leave the release pending",
        Duration::from_secs(120),
        async || match release_status(&tools.helm3, &kubeconfig) {
            Some(s) if s.info.status == helm::ReleaseStatus::PendingUpgrade => Ok(s),
            other => Err(format!("{:?}", other.map(|s| (s.revision, s.info.status)))),
        },
    )
    .await;

    // 6. The resumed hand-over refuses the pending release it did not start; nothing changes.
    let mut resumed = first.clone();
    resumed.helm = Some(tools.helm3.clone());
    resumed.fail_after = None;
    let mut progress = Recorder::default();
    let err = flow::run(&resumed, &mut progress).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "is pending-upgrade at revision {}",
            pending.revision
        )) && text.contains("did not record starting that helm run"),
        "{text}\n{}",
        progress.lines.join("\n")
    );
    let after = release_status(&tools.helm3, &kubeconfig).unwrap();
    assert_eq!(
        (after.revision, after.info.status),
        (pending.revision, helm::ReleaseStatus::PendingUpgrade),
        "the pending release was touched"
    );
    assert_eq!(
        Journal::open(&bundle).unwrap().state_of(Step::HelmInstall),
        Some(StepState::Failed)
    );
    other.kill().unwrap();
    other.wait().unwrap();
}
