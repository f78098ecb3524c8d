//! A real Kubernetes control plane on loopback (etcd, kube-apiserver, controller-manager, scheduler,
//! kwok nodes) for end-to-end tests, and the cluster fixtures seeded into it.
//!
//! - [`tools`]: builds the binaries from the Go modules under `testbed/go/` into
//!   `target/tools/bin` (or `$CILIUM_MIGRATE_TOOLS`) and finds them.
//! - [`Testbed`]: starts, reattaches to, reports on and stops one cluster.
//! - [`fixtures`]: the objects Kubespray's eras leave behind.
//!
//! How end-to-end tests share clusters: `cargo xtask e2e` starts one testbed and runs
//! `cargo test -p tests -- --test-threads=1` with [`KUBECONFIG_ENV`], [`tools::TOOLS_DIR_ENV`],
//! [`STATE_DIR_ENV`] and [`NODES_ENV`] set, so tests share it one at a time (each in its own
//! namespace). A test that needs a pristine cluster starts its own with [`Testbed::up`] in a
//! temporary state directory; the returned value stops it when dropped.

mod cluster;
mod error;
pub mod fixtures;
pub mod monitor;
mod pki;
mod process;
mod stages;
pub mod tools;

pub use cluster::{
    KUBECONFIG_ENV, NODES_ENV, Options, POD_CIDR, Ports, ProcessStatus, SERVICE_CIDR,
    STATE_DIR_ENV, Status, Testbed, client_for, default_state_dir, is_ready,
};
pub use error::{Error, Result};
pub use process::{ProcessRecord, tail};
pub use tools::Tools;
