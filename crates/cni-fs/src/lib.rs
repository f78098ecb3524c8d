//! The node directories the chart's unprivileged Cilium agent must write (`/opt/cni/bin`,
//! `/etc/cni/net.d`): inspect them, judge whether a root process without `CAP_DAC_OVERRIDE` can
//! create files there, and fix them (root:root, `u+rwx,go-w` on directories), on this machine,
//! over SSH, or through a short-lived privileged pod.
//!
//! Why it matters: Kubespray makes `/opt/cni/bin` owned by `kube_owner` (default `kube`), mode
//! 0755. The chart's init containers run as uid 0 with every capability dropped except a few, so
//! the kernel applies the group/other bits `r-x` and `cp` fails with [`HOSTBIN_ERROR`].

mod error;
mod local;
mod model;
mod pod;
mod policy;
mod remote;
mod ssh;

pub use error::Error;
pub use model::{
    Attrs, Change, Class, DEFAULT_PATHS, Entry, HOSTBIN_ERROR, Kind, Node, NodeFix, NodeReport,
    Tree, TreeState, Verdict, rwx,
};
pub use pod::{
    POD_LABEL, PodAccess, PodResult, cilium_agent_image, parse_logs, pod_name, pod_spec,
};
pub use policy::{diff, fixed_attrs, judge, needs_fix, parent_at_risk, parent_fixable, plan_fix};
pub use remote::{FixPaths, fix_argvs, fix_parent_argv, inspect_argv, shell_command, shell_quote};
pub use ssh::{RemoteOutput, STREAM_BUFFER_BYTES, Ssh, StreamedOutput};

use std::fmt::Write as _;
use std::path::PathBuf;

/// How nodes are reached.
#[derive(Clone)]
pub enum Access {
    /// This machine, directly (the tool runs on the node).
    Local,
    /// The system OpenSSH client.
    Ssh(Ssh),
    /// A privileged pod per node.
    Pod(PodAccess),
}

impl Access {
    /// Inspects `roots` on `node`.
    pub async fn inspect(&self, node: &Node, roots: &[PathBuf]) -> Result<NodeReport, Error> {
        let roots = remote::validate_roots(roots)?;
        match self {
            Access::Local => local::inspect(&node.name, &roots),
            Access::Ssh(ssh) => ssh.inspect(node, &roots).await,
            Access::Pod(pod) => Ok(pod.run(&node.name, &roots, false).await?.before),
        }
    }

    /// Which of `nodes` this access reaches, and a "not checked" report for each other one.
    /// SSH and pods reach every node; `--via local` only the machine the tool runs on: the node
    /// named like it ([`Node::is_this_machine`]), else this machine under its host name (and
    /// then every node listed is not checked).
    pub fn reach(&self, nodes: &[Node]) -> (Vec<Node>, Vec<NodeReport>) {
        if !matches!(self, Access::Local) {
            return (nodes.to_vec(), Vec::new());
        }
        let here = nodes
            .iter()
            .find(|n| n.is_this_machine())
            .cloned()
            .unwrap_or_else(Node::this_machine);
        let unchecked = nodes
            .iter()
            .filter(|n| n.name != here.name)
            .map(|n| {
                NodeReport::not_checked(
                    &n.name,
                    format!(
                        "--via local inspects only the machine it runs on ({}); check {} with \
                         --via ssh or --via pod, or run there",
                        here.name, n.name
                    ),
                )
            })
            .collect();
        (vec![here], unchecked)
    }

    /// Plans the fix of `roots` on `node`, and with `apply` carries it out and inspects again.
    pub async fn fix(&self, node: &Node, roots: &FixPaths, apply: bool) -> Result<NodeFix, Error> {
        let roots = roots.paths();
        let (before, after) = match self {
            Access::Pod(pod) => {
                let result = pod.run(&node.name, roots, apply).await?;
                (result.before, result.after)
            }
            _ => {
                let before = self.inspect(node, roots).await?;
                let planned = plan_fix(&before);
                if !apply || planned.is_empty() {
                    (before, None)
                } else {
                    let present: Vec<PathBuf> = before
                        .trees
                        .iter()
                        .filter(|t| matches!(t.state, TreeState::Present { .. }))
                        .map(|t| t.root.clone())
                        .collect();
                    let parents = policy::parents_to_fix(&before);
                    match self {
                        Access::Ssh(ssh) => ssh.fix(node, &parents, &present).await?,
                        _ => local::fix(&parents, &present)?,
                    }
                    let after = self.inspect(node, roots).await?;
                    (before, Some(after))
                }
            }
        };
        let planned = plan_fix(&before);
        // With nothing to do, applying is a no-op: report "changed nothing", not "not applied".
        let after = match after {
            None if apply => Some(before.clone()),
            other => other,
        };
        let changed = after.as_ref().map(|after| diff(&before, after));
        Ok(NodeFix {
            node: node.name.clone(),
            before,
            planned,
            after,
            changed,
        })
    }
}

/// Inspects every node `access` reaches ([`Access::reach`]), in the order of `nodes`, followed
/// by a "not checked" report for each node it does not reach.
pub async fn check_nodes(
    access: &Access,
    nodes: &[Node],
    roots: &[PathBuf],
) -> Result<Vec<NodeReport>, Error> {
    let (reached, unchecked) = access.reach(nodes);
    let mut reports = Vec::with_capacity(reached.len() + unchecked.len());
    for node in &reached {
        reports.push(access.inspect(node, roots).await?);
    }
    reports.extend(unchecked);
    Ok(reports)
}

/// What `migrate` calls before anything restarts: inspects every node and fails with
/// [`Error::AgentWouldFail`] (naming each node, directory and reason) when the agent would fail.
pub async fn ensure_agent_can_write(
    access: &Access,
    nodes: &[Node],
    roots: &[PathBuf],
) -> Result<Vec<NodeReport>, Error> {
    let reports = check_nodes(access, nodes, roots).await?;
    let summary = failure_summary(&reports);
    if summary.is_empty() {
        Ok(reports)
    } else {
        Err(Error::AgentWouldFail { summary })
    }
}

/// One line per directory that would make the agent fail (empty when all pass).
pub fn failure_summary(reports: &[NodeReport]) -> String {
    let mut out = String::new();
    for report in reports {
        for tree in &report.trees {
            if let TreeState::NotADirectory { entry } = &tree.state {
                let _ = writeln!(
                    out,
                    "  {}: {} is a {:?}, not a directory (symlinks are not followed; give the real path)",
                    report.node,
                    entry.path.display(),
                    entry.kind
                );
            }
            for entry in tree.entries() {
                if let Some(verdict) = entry.verdict.as_ref().filter(|v| !v.passes()) {
                    let _ = writeln!(
                        out,
                        "  {}: {}: {}",
                        report.node,
                        entry.path.display(),
                        verdict.explain(entry)
                    );
                }
            }
        }
    }
    out.trim_end().to_string()
}

/// The check table: one row per directory (node, path, owner:group, mode, verdict, why), plus a
/// row per tree counting other entries that are not root:root.
pub fn render_check(reports: &[NodeReport]) -> String {
    let mut rows: Vec<[String; 6]> =
        vec![["NODE", "PATH", "OWNER:GROUP", "MODE", "VERDICT", "WHY"].map(String::from)];
    for report in reports {
        if let Some(reason) = &report.not_checked {
            rows.push([
                report.node.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "NOT CHECKED".into(),
                reason.clone(),
            ]);
        }
        let mut parents_shown: Vec<&std::path::Path> = Vec::new();
        for tree in &report.trees {
            if let (Some(parent), Some(why)) = (&tree.parent, tree.parent_concern())
                && !parents_shown.contains(&parent.path.as_path())
            {
                parents_shown.push(&parent.path);
                rows.push([
                    report.node.clone(),
                    parent.path.display().to_string(),
                    parent.owner_group(),
                    parent.attrs.mode_octal(),
                    "PARENT".into(),
                    why,
                ]);
            }
            match &tree.state {
                TreeState::Missing { reason } => rows.push([
                    report.node.clone(),
                    tree.root.display().to_string(),
                    "-".into(),
                    "-".into(),
                    "missing".into(),
                    format!("{reason} (kubelet creates it root:root 0755 for the agent)"),
                ]),
                TreeState::NotADirectory { entry } => rows.push([
                    report.node.clone(),
                    tree.root.display().to_string(),
                    entry.owner_group(),
                    entry.attrs.mode_octal(),
                    "NOT A DIR".into(),
                    format!(
                        "a {:?}; symlinks are not followed: give the real path",
                        entry.kind
                    ),
                ]),
                TreeState::Present { entries } => {
                    for entry in entries {
                        if let Some(verdict) = &entry.verdict {
                            rows.push([
                                report.node.clone(),
                                entry.path.display().to_string(),
                                entry.owner_group(),
                                entry.attrs.mode_octal(),
                                verdict.word().into(),
                                verdict.explain(entry),
                            ]);
                        }
                    }
                    let not_root =
                        |e: &&Entry| e.kind != Kind::Dir && (e.attrs.uid, e.attrs.gid) != (0, 0);
                    let linked = entries
                        .iter()
                        .filter(not_root)
                        .filter(|e| e.hard_linked())
                        .count();
                    let others = entries.iter().filter(not_root).count() - linked;
                    if others > 0 {
                        rows.push([
                            report.node.clone(),
                            format!("{}/*", tree.root.display()),
                            "-".into(),
                            "-".into(),
                            "note".into(),
                            format!("{others} files/links not root:root (fix chowns them too)"),
                        ]);
                    }
                    if linked > 0 {
                        rows.push([
                            report.node.clone(),
                            format!("{}/*", tree.root.display()),
                            "-".into(),
                            "-".into(),
                            "note".into(),
                            format!(
                                "{linked} hard-linked files not root:root: fix leaves them (each is \
                                 also a file elsewhere); check them by hand"
                            ),
                        ]);
                    }
                }
            }
        }
    }
    table(&rows)
}

/// The fix table: one row per planned or done change.
pub fn render_fix(fixes: &[NodeFix]) -> String {
    let mut out = String::new();
    for fix in fixes {
        let (title, changes) = match &fix.changed {
            Some(changed) => ("changed", changed),
            None => ("would change (run with --apply)", &fix.planned),
        };
        let _ = writeln!(out, "{}: {title}: {} entries", fix.node, changes.len());
        for change in changes {
            let _ = writeln!(out, "  {change}");
        }
    }
    out
}

fn table(rows: &[[String; 6]]) -> String {
    let mut table = comfy_table::Table::new();
    // No borders, no styling: the same plain text on a terminal, in a pipe and in tests.
    table.load_preset(comfy_table::presets::NOTHING);
    table.add_rows(rows.iter().map(|row| row.iter().map(String::as_str)));
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = table.trim_fmt();
    if !rows.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_trims_line_ends() {
        let rows = [
            ["NODE", "PATH", "OWNER:GROUP", "MODE", "VERDICT", "WHY"].map(String::from),
            ["n1", "/opt/cni/bin", "kube:root", "0755", "DENIED", ""].map(String::from),
        ];
        assert_eq!(
            table(&rows),
            "NODE  PATH          OWNER:GROUP  MODE  VERDICT  WHY\n\
             n1    /opt/cni/bin  kube:root    0755  DENIED\n"
        );
    }
}
