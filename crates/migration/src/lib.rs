//! The hand-over itself: detect the era, back up, adopt or replace, journal, roll back.
//!
//! Pure parts work on plain JSON objects (recorded or live): [`era::detect`],
//! [`adopt::plan_adoption`], [`guard::check_deletable`], [`guard::replace_deletions`],
//! [`restore::compare_objects`]. The parts that talk to the API server take a `kube::Client`:
//! [`era::collect_state`], [`identity::ClusterIdentity::read`], [`bundle::Bundle::create`],
//! [`adopt::fetch_live`], [`adopt::apply_adoption`], [`restore::restore_handover`],
//! [`restore::compare_with_cluster`]. Every delete goes through [`guard`].
//!
//! How `migrate` composes them (the steps are [`journal::Strategy::steps`]):
//! 1. Read the identity; open the journal in the bundle directory if there is one
//!    ([`journal::Journal::ensure_cluster`] refuses another cluster) and
//!    [`era::detect`] with its status: handed over is a no-op, in progress resumes at
//!    [`journal::Journal::next_step`].
//! 2. Render the chart; [`adopt::plan_adoption`] (blockers refuse `adopt`, suggesting `replace`).
//! 3. `backup`: [`bundle::Bundle::create`] with the rendered objects as `extra_objects`, then
//!    [`bundle::Bundle::verify`] before any write.
//! 4. `adopt-metadata`: [`adopt::apply_adoption`] with [`adopt::Phase::Metadata`]; or
//!    `delete-template-objects`: the same plan without the workloads the chart renders
//!    ([`adopt::AdoptPlan::without`]) applied with [`adopt::Phase::Metadata`], then those
//!    workloads ([`guard::replace_deletions`]) deleted through [`guard::delete`], their pods
//!    orphaned.
//! 5. `helm-install` (the helm crate), then `prune-fields`: a fresh plan, applied with
//!    [`adopt::Phase::Prune`].
//! 6. `inventory-edit`, `verify` (other crates), then [`era::write_handover_marker`].
//!
//! Each step: [`journal::Journal::start`], run, [`journal::Journal::done`] (or `failed`).
//!
//! Rollback: undo the release without deleting what it adopted ([`guard::forget_release`] when
//! the bundle holds no release records; `helm rollback` to the recorded revision otherwise),
//! [`restore::remove_created`], [`restore::restore_handover`],
//! [`bundle::Bundle::restore_written`], then [`restore::compare_with_cluster`] (empty means
//! restored exactly).

pub mod adopt;
pub mod bundle;
pub mod era;
pub mod etcd;
pub mod flow;
pub mod guard;
pub mod identity;
pub mod journal;
pub mod kubeconfig;
pub mod lock;
pub mod object;
pub mod restore;
pub mod template_era;
