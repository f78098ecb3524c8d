//! `cilium-migrate backup --bundle DIR [--kubeconfig FILE] [--inventory DIR]`: take the backup the
//! hand-over takes, and nothing else.
//!
//! Writes a bundle (see `migration::bundle`): the template-era objects the hand-over touches, the
//! kept Hubble Secrets, the storage Secrets of release `cilium`, the Cilium CRDs, every `cilium.io`
//! custom resource of every kind the API serves, and the inventory files given; then reads it
//! back and checks every checksum. Lists are paged and streamed to disk, so memory stays flat
//! however many objects the cluster holds. Files are 0600 (Secrets are inside), directories 0700.
//!
//! Useful before any risky change to Cilium, and used by `cargo xtask bench` to measure the
//! backup on its own. Hidden from `--help` because `migrate` takes the same backup itself.

use std::path::PathBuf;
use std::time::Instant;

use migration::bundle::{BackupRequest, Bundle, DEFAULT_PAGE_SIZE};
use migration::identity::ClusterIdentity;

#[derive(clap::Args)]
pub struct Args {
    /// The bundle directory to create (must be new or empty).
    #[arg(long, value_name = "DIR")]
    bundle: PathBuf,
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Kubespray inventory files or directories to copy into the bundle.
    #[arg(long, value_name = "PATH")]
    inventory: Vec<PathBuf>,
    /// Objects per list request.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PAGE_SIZE)]
    page_size: u32,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(backup(args))
}

async fn backup(args: Args) -> anyhow::Result<()> {
    // The same URL spelling as `migrate`: the bundle's cluster identity must match its journal.
    let (client, api_server) = crate::cluster::connect(args.kubeconfig.as_deref()).await?;
    let cluster = ClusterIdentity::read(&client, &api_server).await?;
    let request = BackupRequest {
        dir: args.bundle.clone(),
        cluster,
        extra_objects: Vec::new(),
        inventory: args.inventory.clone(),
        page_size: args.page_size,
    };
    let started = Instant::now();
    let bundle = Bundle::create(&client, &request).await?;
    let report = bundle.verify()?;
    let objects: u64 = report.objects.values().sum();
    println!(
        "backup: {objects} objects ({}) and {} inventory files in {} ({:.1?}, read back and checked)",
        report
            .objects
            .iter()
            .map(|(section, count)| format!("{section} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
        report.inventory_files,
        bundle.dir().display(),
        started.elapsed()
    );
    Ok(())
}
