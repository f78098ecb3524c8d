//! No two runs at once: a `coordination.k8s.io/v1` Lease in the cluster ([`ClusterLease`]) for
//! every run that changes it (`migrate --apply`, `rollback --apply`, `gateway-api enable
//! --apply` and `gateway-api rollback`), from any host, and an exclusive lock on the bundle
//! directory ([`BundleLock`]) for runs on one host that share a bundle.
//!
//! The Lease `kube-system/cilium-migrate` names its holder (`user@host pid N: command`) and is
//! renewed by a background task every [`RENEW_EVERY`]; it lapses [`LEASE_DURATION`] after the
//! last renewal. A second run is refused with the holder and its age. A stale Lease is taken
//! over when it lapsed, or at once when its holder ran on this host and that run has ended: its
//! process is gone (killed, crashed), or the file it keeps `flock`ed while it runs is unlocked
//! (a run that could not release the Lease because the API server was away); a holder on
//! another host that vanished is waited out: the refusal says when its Lease lapses. There is deliberately no flag to break a live Lease: a run that
//! still renews it is still changing the cluster.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};

/// Name of the Lease.
pub const LEASE_NAME: &str = "cilium-migrate";
/// Its namespace.
pub const LEASE_NAMESPACE: &str = "kube-system";
/// How long a Lease lasts after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(60);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(15);

const HOST_ANNOTATION: &str = "cilium-migrate.io/host";
const PID_ANNOTATION: &str = "cilium-migrate.io/pid";
const RUN_ANNOTATION: &str = "cilium-migrate.io/run";
/// A file on the holder's host that the run keeps `flock`ed while it runs: on that host, a
/// Lease whose file is gone or lockable belongs to a run that ended (even one whose process
/// lives on, as a test's does, or could not release it because the API server was down).
const ALIVE_ANNOTATION: &str = "cilium-migrate.io/alive-file";

/// Numbers the runs of this process.
static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Why a run may not start (or lost its lock).
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds the Lease.
    #[error(
        "another run is changing this cluster: Lease {LEASE_NAMESPACE}/{LEASE_NAME} is held by {holder} since {age} (last renewed {renewed} ago); \
         wait for it to finish. If that run is gone, its Lease lapses at {lapses} ({LEASE_DURATION:?} after its last renewal; a run on this host that died is recognised at once): run again then"
    )]
    Held {
        /// `user@host pid N: command`.
        holder: String,
        /// How long ago it acquired the Lease (`3m 12s`).
        age: String,
        /// How long ago it renewed it.
        renewed: String,
        /// When it lapses.
        lapses: String,
    },
    /// Another process on this host has the bundle directory.
    #[error(
        "bundle {0} is in use by another cilium-migrate process on this host (it holds the directory's lock); wait for it to finish"
    )]
    BundleBusy(PathBuf),
    /// The Lease was taken by another run while this one held it (it could not renew in time).
    #[error(
        "lost Lease {LEASE_NAMESPACE}/{LEASE_NAME} to {0} while running (renewals failed for longer than {LEASE_DURATION:?}); stopped before the next change: check what that run does, then run again"
    )]
    Lost(String),
    /// An API request failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: Box<kube::Error>,
    },
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Who runs: `user@host pid N`, and the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// This host's name.
    pub host: String,
    /// This process.
    pub pid: u32,
    /// This run (unique in this process: one process may run several, as tests do).
    pub run: String,
    /// `user@host pid N: command`.
    pub identity: String,
}

impl Holder {
    /// This process running `command` (`migrate --apply`, ...).
    pub fn this_process(command: &str) -> Holder {
        let host = this_host();
        let pid = std::process::id();
        let run = format!(
            "{pid}-{}-{}",
            jiff::Timestamp::now().as_nanosecond(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        Holder {
            identity: format!("{}@{host} pid {pid}: {command}", this_user()),
            host,
            pid,
            run,
        }
    }

    /// `user@host pid N`, without the command (what the journal records for a helm run).
    pub fn process(&self) -> &str {
        self.identity
            .split_once(": ")
            .map_or(self.identity.as_str(), |(process, _)| process)
    }
}

/// The cluster-wide lock of one run. Release it with [`ClusterLease::release`]; dropped
/// without that, its renewals stop and it lapses after [`LEASE_DURATION`].
#[derive(Debug)]
pub struct ClusterLease {
    api: Api<Lease>,
    holder: Holder,
    lost: Arc<std::sync::Mutex<Option<String>>>,
    renewing: Option<tokio::task::JoinHandle<()>>,
    taken_over: Option<String>,
    /// Locked while this run holds the Lease; removed when it ends.
    _alive: tempfile::NamedTempFile,
}

impl ClusterLease {
    /// Acquires the Lease for `holder`, or says who holds it. Needs a Tokio runtime (the
    /// renewals run on it).
    pub async fn acquire(client: &Client, holder: Holder) -> Result<ClusterLease, LockError> {
        let api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
        let alive = tempfile::Builder::new()
            .prefix("cilium-migrate-run-")
            .tempfile()
            .map_err(|source| LockError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        alive.as_file().lock().map_err(|source| LockError::Io {
            path: alive.path().to_owned(),
            source,
        })?;
        let mut taken_over = None;
        // A conflict means another run wrote the Lease between our read and our write: read
        // it again and judge the new holder.
        for _ in 0..5 {
            let now = jiff::Timestamp::now();
            let existing = api
                .get_opt(LEASE_NAME)
                .await
                .map_err(api_error("reading Lease kube-system/cilium-migrate"))?;
            let written = match existing {
                None => {
                    api.create(
                        &PostParams::default(),
                        &lease(&holder, alive.path(), now, None),
                    )
                    .await
                }
                Some(current) => {
                    if let Some(refusal) = still_held(&current, now) {
                        return Err(refusal);
                    }
                    taken_over = current
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.clone())
                        .filter(|h| !h.is_empty());
                    api.replace(
                        LEASE_NAME,
                        &PostParams::default(),
                        &lease(&holder, alive.path(), now, Some(&current)),
                    )
                    .await
                }
            };
            match written {
                Ok(_) => {
                    let lost = Arc::new(std::sync::Mutex::new(None));
                    let renewing =
                        tokio::spawn(renew(api.clone(), holder.clone(), Arc::clone(&lost)));
                    return Ok(ClusterLease {
                        api,
                        holder,
                        lost,
                        renewing: Some(renewing),
                        taken_over,
                        _alive: alive,
                    });
                }
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => return Err(api_error("writing Lease kube-system/cilium-migrate")(e)),
            }
        }
        Err(LockError::Lost(
            "other runs (the Lease kept changing while this run tried to take it)".into(),
        ))
    }

    /// The holder a lapsed or dead run left, when this run took the Lease over from one.
    pub fn taken_over(&self) -> Option<&str> {
        self.taken_over.as_deref()
    }

    /// Who holds it (this run).
    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Refuses to go on when another run took the Lease.
    pub fn ensure_held(&self) -> Result<(), LockError> {
        match self
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
        {
            Some(other) => Err(LockError::Lost(other)),
            None => Ok(()),
        }
    }

    /// Stops renewing and deletes the Lease when it is still this run's.
    pub async fn release(mut self) -> Result<(), LockError> {
        // Stopped first, so that no renewal lands between our read and the delete (one that
        // did would fail the delete's precondition, and the Lease would lapse by itself).
        if let Some(renewing) = self.renewing.take() {
            renewing.abort();
            let _ = renewing.await;
        }
        let current = self
            .api
            .get_opt(LEASE_NAME)
            .await
            .map_err(api_error("reading Lease kube-system/cilium-migrate"))?;
        let Some(current) = current.filter(|l| run_of(l) == Some(&self.holder.run)) else {
            return Ok(());
        };
        crate::guard::release_lease(
            &self.api,
            LEASE_NAME,
            current.metadata.uid.clone(),
            current.metadata.resource_version.clone(),
        )
        .await
        .map_err(api_error("releasing Lease kube-system/cilium-migrate"))
    }
}

impl Drop for ClusterLease {
    fn drop(&mut self) {
        if let Some(renewing) = &self.renewing {
            renewing.abort();
        }
    }
}

/// The Lease for `holder` (its run keeps `alive` locked), replacing `current` (keeping its
/// object identity) when given.
fn lease(holder: &Holder, alive: &Path, now: jiff::Timestamp, current: Option<&Lease>) -> Lease {
    let transitions = current
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .map_or(0, |n| n.saturating_add(1));
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.into()),
            namespace: Some(LEASE_NAMESPACE.into()),
            resource_version: current.and_then(|l| l.metadata.resource_version.clone()),
            annotations: Some(
                [
                    (HOST_ANNOTATION.to_owned(), holder.host.clone()),
                    (PID_ANNOTATION.to_owned(), holder.pid.to_string()),
                    (RUN_ANNOTATION.to_owned(), holder.run.clone()),
                    (ALIVE_ANNOTATION.to_owned(), alive.display().to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.identity.clone()),
            lease_duration_seconds: i32::try_from(LEASE_DURATION.as_secs()).ok(),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

fn run_of(lease: &Lease) -> Option<&String> {
    lease.metadata.annotations.as_ref()?.get(RUN_ANNOTATION)
}

fn holder_of(lease: &Lease) -> Option<&String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_ref())
        .filter(|h| !h.is_empty())
}

/// The refusal when `lease` still binds at `now`: a holder that renewed it within its duration
/// and is not a dead process of this host.
fn still_held(lease: &Lease, now: jiff::Timestamp) -> Option<LockError> {
    let spec = lease.spec.as_ref()?;
    let holder = holder_of(lease)?;
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    let duration = spec.lease_duration_seconds.map_or(LEASE_DURATION, |s| {
        Duration::from_secs(u64::try_from(s).unwrap_or(0))
    });
    let lapses = renewed
        .checked_add(jiff::SignedDuration::try_from(duration).unwrap_or_default())
        .unwrap_or(renewed);
    if lapses <= now || dead_here(lease) {
        return None;
    }
    let acquired = spec.acquire_time.as_ref().map_or(renewed, |t| t.0);
    Some(LockError::Held {
        holder: holder.clone(),
        age: format!("{} ({} ago)", acquired, ago(acquired, now)),
        renewed: ago(renewed, now),
        lapses: lapses.to_string(),
    })
}

/// Whether the Lease's holder ran on this host and that run has ended: its process is gone, or
/// its file is gone or no longer locked.
fn dead_here(lease: &Lease) -> bool {
    let annotations = lease.metadata.annotations.as_ref();
    let host = annotations.and_then(|a| a.get(HOST_ANNOTATION));
    let pid = annotations
        .and_then(|a| a.get(PID_ANNOTATION))
        .and_then(|p| p.parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw);
    match (host, pid) {
        (Some(host), Some(pid)) if *host == this_host() => {
            // ESRCH: no such process. EPERM means it exists (as another user): alive.
            if rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH) {
                return true;
            }
            let Some(alive) = annotations.and_then(|a| a.get(ALIVE_ANNOTATION)) else {
                return false;
            };
            // A file we cannot open (another user's) or that is locked: its run lives.
            match File::open(alive) {
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                Ok(file) => file.try_lock().is_ok(),
            }
        }
        _ => false,
    }
}

/// `3m 12s`.
fn ago(then: jiff::Timestamp, now: jiff::Timestamp) -> String {
    let seconds = now.as_second().saturating_sub(then.as_second()).max(0);
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

async fn renew(api: Api<Lease>, holder: Holder, lost: Arc<std::sync::Mutex<Option<String>>>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        // A failed request is retried at the next tick: the Lease lasts four ticks.
        let mut current = match api.get_opt(LEASE_NAME).await {
            Ok(Some(current)) if run_of(&current) == Some(&holder.run) => current,
            Ok(other) => {
                let other = other
                    .as_ref()
                    .and_then(holder_of)
                    .cloned()
                    .unwrap_or_else(|| "nobody (the Lease was deleted or released)".into());
                *lost
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(other);
                return;
            }
            Err(_) => continue,
        };
        if let Some(spec) = current.spec.as_mut() {
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        let _ = api
            .replace(LEASE_NAME, &PostParams::default(), &current)
            .await;
    }
}

fn api_error(what: &str) -> impl FnOnce(kube::Error) -> LockError + '_ {
    move |source| LockError::Api {
        what: what.to_owned(),
        source: Box::new(source),
    }
}

fn this_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn this_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()))
}

/// An exclusive lock on a bundle directory (`flock` on the directory itself, so nothing is
/// added to the bundle), held until dropped; the kernel drops it when the process dies.
#[derive(Debug)]
pub struct BundleLock {
    _dir: File,
}

impl BundleLock {
    /// Locks `dir`, creating it (0700: it will hold Secrets) when missing.
    pub fn acquire(dir: &Path) -> Result<BundleLock, LockError> {
        let io = |source| LockError::Io {
            path: dir.to_owned(),
            source,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        let file = File::open(dir).map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(BundleLock { _dir: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(LockError::BundleBusy(dir.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + seconds).expect("a time")
    }

    fn held_by(holder: &Holder, acquired: jiff::Timestamp, renewed: jiff::Timestamp) -> Lease {
        held_by_run(
            holder,
            Path::new("/nonexistent/cilium-migrate-run"),
            acquired,
            renewed,
        )
    }

    fn held_by_run(
        holder: &Holder,
        alive: &Path,
        acquired: jiff::Timestamp,
        renewed: jiff::Timestamp,
    ) -> Lease {
        let mut lease = lease(holder, alive, acquired, None);
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(MicroTime(renewed));
        }
        lease
    }

    fn other_host() -> Holder {
        Holder {
            host: format!("{}-elsewhere", this_host()),
            pid: 4242,
            run: "4242-1-0".into(),
            identity: "ops@elsewhere pid 4242: migrate --apply".into(),
        }
    }

    #[test]
    fn a_live_lease_is_refused_with_its_holder_and_age() {
        let lease = held_by(&other_host(), at(0), at(190));
        let refusal = still_held(&lease, at(200)).expect("held").to_string();
        assert!(
            refusal.contains("ops@elsewhere pid 4242: migrate --apply")
                && refusal.contains("3m 20s ago")
                && refusal.contains("last renewed 10s ago")
                && refusal.contains("lapses at"),
            "{refusal}"
        );
    }

    #[test]
    fn a_lapsed_or_released_lease_is_free() {
        let lapsed = held_by(&other_host(), at(0), at(100));
        assert!(still_held(&lapsed, at(161)).is_none());
        let mut released = lapsed.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
        }
        assert!(still_held(&released, at(101)).is_none());
    }

    #[test]
    fn a_dead_holder_on_this_host_is_recognised_at_once() {
        // A child that has exited and been reaped: its pid names no process.
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("reaped");
        let dead = Holder {
            host: this_host(),
            pid,
            run: format!("{pid}-1-0"),
            identity: format!("root@{} pid {pid}: migrate --apply", this_host()),
        };
        assert!(still_held(&held_by(&dead, at(0), at(10)), at(11)).is_none());
        // A run of a live process binds while it keeps its file locked, and not once it ended
        // without releasing the Lease (its file unlocked, then removed).
        let alive = Holder::this_process("migrate --apply");
        let file = tempfile::NamedTempFile::new().expect("temp file");
        file.as_file().lock().expect("locked");
        let lease = held_by_run(&alive, file.path(), at(0), at(10));
        assert!(still_held(&lease, at(11)).is_some());
        file.as_file().unlock().expect("unlocked");
        assert!(still_held(&lease, at(11)).is_none());
        drop(file);
        assert!(still_held(&lease, at(11)).is_none());
        assert!(
            alive
                .identity
                .ends_with(&format!("pid {}: migrate --apply", std::process::id()))
        );
        assert_eq!(
            alive.process(),
            alive.identity.split(": ").next().expect("process")
        );
    }

    #[test]
    fn a_bundle_is_locked_once_and_free_again_when_dropped() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("bundle");
        let first = BundleLock::acquire(&dir).expect("first lock");
        let err = BundleLock::acquire(&dir).expect_err("second lock");
        assert!(
            matches!(&err, LockError::BundleBusy(p) if p == &dir)
                && err.to_string().contains("in use"),
            "{err}"
        );
        drop(first);
        BundleLock::acquire(&dir).expect("free again");
    }
}
