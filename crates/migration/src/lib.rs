//! The hand-over itself: detect the era, gate, back up, adopt or replace, journal, roll back.
//!
//! Pure parts work on plain JSON objects (recorded or live): [`era::detect`],
//! [`adopt::plan_adoption`], [`guard::check_deletable`], [`restore::compare_objects`].
//! The parts that talk to the API server take a `kube::Client`: [`era::collect_state`],
//! [`identity::ClusterIdentity::read`], [`bundle::Bundle::create`], [`adopt::apply_adoption`],
//! [`restore::restore_handover`], [`restore::compare_with_cluster`]. Every delete goes through
//! [`guard::delete`].

pub mod adopt;
pub mod bundle;
pub mod era;
pub mod guard;
pub mod identity;
pub mod journal;
pub mod object;
pub mod restore;
pub mod template_era;
