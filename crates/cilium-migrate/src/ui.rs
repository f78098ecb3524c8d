//! Output for people: headings, tables and coloured diffs (colour only on a terminal).

pub use crate::output::{Output, OutputArg};

/// A section heading, bold on a terminal.
pub fn heading(text: &str, colour: bool) -> String {
    if colour {
        format!("\x1b[1m== {text}\x1b[0m")
    } else {
        format!("== {text}")
    }
}

/// Progress of a journaled run on stderr: a line when a step starts and one when it ends (its
/// error's first line; the whole error comes back from the run). `confirm` answers the run's
/// question before it changes anything: `migrate` asks on the terminal, `rollback` never
/// confirms (it runs only with `--apply`).
pub struct StderrProgress<F> {
    confirm: F,
}

impl<F: FnMut(&migration::flow::Plan) -> bool> StderrProgress<F> {
    /// Progress lines on stderr, with `confirm` as the answer to the run's question.
    pub fn new(confirm: F) -> Self {
        StderrProgress { confirm }
    }
}

impl<F: FnMut(&migration::flow::Plan) -> bool> migration::flow::Progress for StderrProgress<F> {
    fn started(&mut self, name: &str, elapsed: std::time::Duration) {
        eprintln!("[{:>7.1}s] {name} ...", elapsed.as_secs_f64());
    }

    fn finished(&mut self, name: &str, took: std::time::Duration, error: Option<&str>) {
        match error {
            None => eprintln!("{:>11} {name} ok ({:.1}s)", "", took.as_secs_f64()),
            Some(e) => eprintln!(
                "{:>11} {name} FAILED ({:.1}s): {}",
                "",
                took.as_secs_f64(),
                e.lines().next().unwrap_or_default()
            ),
        }
    }

    fn note(&mut self, message: &str) {
        eprintln!("{:>11} {message}", "");
    }

    fn confirm(&mut self, plan: &migration::flow::Plan) -> bool {
        (self.confirm)(plan)
    }
}

/// A headed list, `== TITLE (N)` then one `- item` per line: the plans' warnings and blockers.
pub fn section<T: std::fmt::Display>(title: &str, items: &[T], colour: bool) -> String {
    let mut out = format!(
        "\n{}\n",
        heading(&format!("{title} ({})", items.len()), colour)
    );
    for item in items {
        out.push_str(&format!("- {item}\n"));
    }
    out
}

/// A table with left-aligned columns as wide as their widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut table = comfy_table::Table::new();
    // No borders, no styling: the same plain text on a terminal, in a pipe and in tests.
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.iter().copied());
    table.add_rows(rows.iter().map(|row| row.iter().map(String::as_str)));
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt() + "\n"
}

/// Colour a unified diff for a terminal (red removals, green additions, cyan hunk headers).
pub fn paint_diff(diff: &str, colour: bool) -> String {
    if !colour {
        return diff.to_owned();
    }
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "\x1b[1m"
        } else if line.starts_with('+') {
            "\x1b[32m"
        } else if line.starts_with('-') {
            "\x1b[31m"
        } else if line.starts_with("@@") {
            "\x1b[36m"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let (text, eol) = match line.strip_suffix('\n') {
                Some(t) => (t, "\n"),
                None => (line, ""),
            };
            out.push_str(code);
            out.push_str(text);
            out.push_str("\x1b[0m");
            out.push_str(eol);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_counts_its_items_and_lists_each() {
        let text = section("Warnings", &["one", "two"], false);
        assert_eq!(text, "\n== Warnings (2)\n- one\n- two\n");
        assert_eq!(section::<&str>("BLOCKED", &[], false), "\n== BLOCKED (0)\n");
    }

    #[test]
    fn table_aligns_columns_to_the_widest_cell() {
        let rows = vec![
            vec!["node-1".to_owned(), "10.0.0.1".to_owned()],
            vec!["n2".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            table(&["NODE", "ADDRESS"], &rows),
            "NODE    ADDRESS\nnode-1  10.0.0.1\nn2      x\n"
        );
    }

    #[test]
    fn diff_is_coloured_only_when_asked() {
        let diff =
            "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-kube_owner: kube\n+kube_owner: root\n context\n";
        assert_eq!(paint_diff(diff, false), diff);
        let painted = paint_diff(diff, true);
        assert!(painted.contains("\x1b[31m-kube_owner: kube\x1b[0m\n"));
        assert!(painted.contains("\x1b[32m+kube_owner: root\x1b[0m\n"));
        assert!(painted.ends_with(" context\n"));
    }
}
