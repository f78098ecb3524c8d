//! A typed driver over the real `helm` CLI (Helm 3.17+ and Helm 4), for handing a
//! Kubespray-installed Cilium over to a Helm release.
//!
//! [`Helm::locate`] finds the binary (`--helm`, else `helm` on `PATH`), reads
//! `helm version --template {{.Version}}` and refuses what it cannot drive: Helm 3 before 3.17
//! lacks `--take-ownership`; Helm 5+ is unknown. Every call runs the binary with an argument
//! vector, never a shell string; JSON output (`-o json`) is parsed with serde, and failures are
//! classified from stderr into [`HelmFailure`] with a hint ([`HelmFailure::hint`]).
//!
//! # What is passed per Helm major, and why
//!
//! | request | Helm 3 | Helm 4 |
//! |---|---|---|
//! | [`Ownership::Adopt`] `{ take_ownership: true }` | `--take-ownership` | `--take-ownership` |
//! | [`Ownership::Fresh`] `{ on_failure: RollBack }` | `--atomic` | `--rollback-on-failure` |
//! | [`Wait::HooksOnly`] | (nothing) | `--wait=hookOnly` |
//! | [`Wait::Ready`] | `--wait` | `--wait=watcher` |
//! | [`Wait::ReadyLegacy`] | `--wait` | `--wait=legacy` |
//! | [`ApplyMethod::Default`] when adopting | (nothing: client-side) | `--server-side=false` |
//! | [`ApplyMethod::Default`] otherwise | (nothing) | (nothing: Helm's default) |
//! | [`ApplyMethod::ServerSide`] | refused | `--server-side=true` (+ `--force-conflicts`) |
//! | any [`UpgradeInstall`] | `--reset-values` | `--reset-values` |
//!
//! **Values are exactly the request's files.** `helm upgrade` given no values silently reuses
//! the previous revision's; `--reset-values` is always passed so that the values files (or the
//! chart's defaults) are the whole truth, the same on a first run and on a resumed one.
//!
//! **No rollback on an adopting install.** `--atomic` (Helm 4: `--rollback-on-failure`) makes a
//! failed *first install* uninstall the release, and the release by then owns the adopted
//! objects: the running Cilium DaemonSet would be deleted. So [`Ownership::Adopt`] has no
//! failure policy at all; only [`Ownership::Fresh`] can ask for one. A failed adoption leaves a
//! `failed` revision and the objects in place; run again (a `failed` release is upgraded) or
//! roll back deliberately.
//!
//! **Server-side apply when adopting (Helm 4).** Kubespray writes Cilium's objects with
//! `kubectl apply`, so their fields belong to the field manager `kubectl-client-side-apply`.
//! Helm 4's `upgrade --install` of a release that does not exist yet installs with server-side
//! apply, and server-side apply fails with a conflict on every field whose value the chart
//! changes. The two ways out are `--server-side=true --force-conflicts` (Helm takes every
//! conflicting field from every manager, including controllers that legitimately own some) or
//! `--server-side=false` (Helm's three-way merge, exactly what Helm 3 does). This crate passes
//! **`--server-side=false`** for adopting requests: both majors then patch the objects the same
//! way, which the migration is tested with, and nothing is force-taken from other managers.
//! Helm 4 records the release as client-side (`apply_method: csa`) and later upgrades with
//! `--server-side=auto` stay client-side; moving to server-side apply later is an explicit
//! `helm upgrade --server-side=true` (Helm converts its own field ownership then). Callers who
//! want server-side apply say so with [`ApplyMethod::ServerSide`].
//!
//! **`--wait`.** Helm 3's `--wait` is a boolean that polls readiness (DaemonSets: updated and
//! ready pods within `maxUnavailable`). Helm 4's `--wait` takes a strategy: `hookOnly` (its
//! default: no waiting for resources), `watcher` (kstatus, what a bare `--wait` means) and
//! `legacy` (Helm 3's polling). [`Wait`] names the intent and is mapped per major. The two
//! readiness notions differ: on the testbed, Helm 4's watcher took a `LoadBalancer` Service with
//! no address as ready while Helm 3's polling (and Helm 4 `legacy`) waited for the address;
//! [`Wait::ReadyLegacy`] gives Helm 3's behaviour on both.
//!
//! **Uninstall and `helm.sh/resource-policy: keep`.** An uninstall (and an upgrade or rollback
//! that drops an object) deletes every object of the release except those annotated
//! `helm.sh/resource-policy: keep` in the release manifest; [`Helm::uninstall_plan`] lists both
//! from `helm get manifest`. CRDs from a chart's `crds/` directory are never deleted by Helm.

mod capabilities;
mod chart;
mod driver;
mod error;
mod manifest;
mod release;
mod request;
mod version;

pub use capabilities::{Capabilities, DiscoveryError};
pub use chart::{CILIUM_REPO_NAME, CILIUM_REPO_URL, ChartError, ChartSource, read_chart_yaml};
pub use driver::{Helm, Repository, UninstallReport, ValuesScope};
pub use error::{HelmError, HelmFailure, MetadataField, OwnershipProblem, UnownedObject};
pub use manifest::{
    Manifest, ManifestError, ManifestObject, ObjectRef, RESOURCE_POLICY_ANNOTATION, UninstallPlan,
};
pub use release::{
    ChartMetadata, ReleaseInfo, ReleaseStatus, ReleaseSummary, Revision, RevisionInfo,
    last_good_revision,
};
pub use request::{
    ApplyMethod, OnFailure, Ownership, RollbackRequest, TemplateRequest, UninstallRequest,
    UpgradeInstall, Wait,
};
pub use version::{HelmMajor, HelmVersion, UnsupportedVersion};
