//! `cilium-migrate inventory`: show (or write) the hand-over edit of a Kubespray inventory.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use kubespray_config::{Era, HandoverOptions, Inventory};

#[derive(clap::Args)]
pub struct Args {
    /// The Kubespray inventory directory (the one holding group_vars/), or its inventory file.
    #[arg(long, value_name = "DIR")]
    inventory: PathBuf,
    /// Apply the edit to the files (default: only print the diff).
    #[arg(long)]
    write: bool,
    /// Also set `kube_proxy_remove: true` (Cilium replaces kube-proxy, so Kubespray must not deploy it).
    #[arg(long)]
    kube_proxy_remove: bool,
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let inventory = Inventory::load(&args.inventory)
        .with_context(|| format!("cannot read the inventory {}", args.inventory.display()))?;
    for warning in &inventory.warnings {
        eprintln!("warning: {warning}");
    }
    validate(&inventory)?;
    let options = HandoverOptions {
        kube_proxy_remove: args.kube_proxy_remove,
    };
    let edits = inventory
        .handover_edits(&options)
        .context("cannot prepare the hand-over edit")?;
    if edits.is_empty() {
        eprintln!(
            "{}: already handed over, nothing to change",
            inventory.dir.display()
        );
        return Ok(());
    }
    let colour = std::io::stdout().is_terminal();
    for edit in &edits {
        // A neighbouring line can hold a key (cilium_ipsec_key): never printed.
        let diff = cilium_values::redact_yaml_lines(&edit.unified_diff());
        print!("{}", crate::ui::paint_diff(&diff, colour));
    }
    if !args.write {
        eprintln!("(dry run: pass --write to apply)");
        return Ok(());
    }
    for edit in &edits {
        edit.write()
            .with_context(|| format!("cannot write {}", edit.path.display()))?;
        eprintln!(
            "wrote {} ({})",
            edit.path.display(),
            edit.changed_keys.join(", ")
        );
    }
    Ok(())
}

/// Refuse to edit an inventory whose Cilium settings do not resolve (wrong types, Jinja that
/// cannot be evaluated): the operator fixes those first. With no era evidence, both eras are tried.
fn validate(inventory: &Inventory) -> anyhow::Result<()> {
    let detection = inventory.detect_era();
    let eras = match detection.era {
        Some(era) => vec![era],
        None => vec![Era::Template, Era::CiliumCli],
    };
    for era in eras {
        inventory
            .variables(era)
            .context("the inventory's Cilium settings do not resolve")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Args, run};
    use std::path::PathBuf;

    /// A scratch directory under the system temp dir, removed on drop.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "cilium-migrate-inventory-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    #[test]
    fn write_applies_the_edit_once_and_bad_input_fails_without_writing() {
        let Some(upstream) = upstream::Upstream::for_test(
            "inventory::tests::write_applies_the_edit_once_and_bad_input_fails_without_writing",
        ) else {
            return;
        };
        let dir = scratch("write");
        upstream::copy_tree(&upstream.kubespray_sample("v2.27.1"), &dir.0).expect("copy sample");
        let file = dir.0.join("group_vars/k8s_cluster/k8s-cluster.yml");
        let text = std::fs::read_to_string(&file).expect("read");
        std::fs::write(
            &file,
            text.replace(
                "\nkube_network_plugin: calico\n",
                "\nkube_network_plugin: cilium\n",
            ),
        )
        .expect("write");
        let args = |write| Args {
            inventory: dir.0.clone(),
            write,
            kube_proxy_remove: true,
        };

        run(args(false)).expect("dry run");
        assert!(
            std::fs::read_to_string(&file)
                .expect("read")
                .contains("\nkube_network_plugin: cilium\n"),
            "dry run wrote"
        );
        run(args(true)).expect("write");
        let after = std::fs::read_to_string(&file).expect("read");
        for line in [
            "\nkube_network_plugin: cni\n",
            "\nkube_owner: root\n",
            "\nkube_proxy_remove: true\n",
        ] {
            assert!(after.contains(line), "{line:?} missing");
        }
        run(args(true)).expect("second run is a no-op");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), after);

        let cilium = dir.0.join("group_vars/k8s_cluster/k8s-net-cilium.yml");
        std::fs::write(&cilium, "cilium_enable_hubble: maybe\n").expect("write");
        std::fs::write(
            &file,
            text.replace(
                "\nkube_network_plugin: calico\n",
                "\nkube_network_plugin: cilium\n",
            ),
        )
        .expect("write");
        let err = format!("{:#}", run(args(true)).expect_err("wrong type"));
        assert!(
            err.contains("k8s-net-cilium.yml") && err.contains("cilium_enable_hubble"),
            "{err}"
        );
        assert!(
            std::fs::read_to_string(&file)
                .expect("read")
                .contains("\nkube_network_plugin: cilium\n"),
            "wrote on error"
        );
    }
}
