//! The outcome of each check and the report that collects them.

use serde::{Deserialize, Serialize};

/// How a check came out; ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Healthy.
    Pass,
    /// The component is not installed (an optional part such as Hubble); nothing to check.
    Disabled,
    /// Degraded or not settled yet; the report is not green.
    Warn,
    /// Broken.
    Fail,
}

impl State {
    /// The word shown in the status table.
    pub fn label(self) -> &'static str {
        match self {
            State::Pass => "ok",
            State::Disabled => "disabled",
            State::Warn => "warning",
            State::Fail => "error",
        }
    }

    /// Whether this state lets `verify` exit 0.
    pub fn is_green(self) -> bool {
        matches!(self, State::Pass | State::Disabled)
    }
}

/// One line of the status table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, in the operator's words ("agent DaemonSet cilium").
    pub name: String,
    /// The outcome.
    pub state: State,
    /// One line saying what was seen.
    pub detail: String,
    /// What to do about it, when the cause is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Check {
    /// A check with the given outcome and no hint.
    pub fn new(name: impl Into<String>, state: State, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            state,
            detail: detail.into(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every check of one `verify` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// True when every check passed (or is disabled).
    pub healthy: bool,
    /// The checks, in the order they were run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Builds a report and works out whether it is green.
    pub fn new(checks: Vec<Check>) -> Self {
        let healthy = checks.iter().all(|c| c.state.is_green());
        Report { healthy, checks }
    }

    /// The checks that keep the report from being green.
    pub fn problems(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.state.is_green())
    }

    /// The status table, one line per check, hints indented below their check.
    pub fn table(&self) -> String {
        use comfy_table::{ColumnConstraint, Table, Width};
        let mut table = Table::new();
        // No borders, no styling: the same plain text on a terminal, in a pipe and in tests.
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["CHECK", "STATE", "DETAIL"]);
        for check in &self.checks {
            table.add_row([check.name.as_str(), check.state.label(), &check.detail]);
            if let Some(hint) = &check.hint {
                table.add_row(["", "", &format!("hint: {hint}")]);
            }
        }
        for column in table.column_iter_mut() {
            column.set_padding((0, 2));
        }
        // STATE is as wide as its longest label ("disabled") whichever states occur, so the
        // columns do not move between `--wait` rounds; the width counts the padding.
        if let Some(state) = table.column_mut(1) {
            state.set_constraint(ColumnConstraint::Absolute(Width::Fixed(8 + 2)));
        }
        let mut out = table.trim_fmt();
        out.push('\n');
        let problems = self.problems().count();
        if problems == 0 {
            out.push_str(&format!("\nall {} checks passed\n", self.checks.len()));
        } else {
            out.push_str(&format!(
                "\n{problems} of {} checks did not pass\n",
                self.checks.len()
            ));
        }
        out
    }

    /// One line for `--wait` progress: what is still not green.
    pub fn progress_line(&self) -> String {
        let names: Vec<&str> = self.problems().map(|c| c.name.as_str()).collect();
        if names.is_empty() {
            "all checks passed".to_owned()
        } else {
            format!("waiting for: {}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_is_green_and_warning_is_not() {
        let report = Report::new(vec![
            Check::new("hubble-ui Deployment", State::Disabled, "not installed"),
            Check::new("agent DaemonSet cilium", State::Pass, "3/3 ready"),
        ]);
        assert!(report.healthy);
        let report = Report::new(vec![Check::new("x", State::Warn, "settling")]);
        assert!(!report.healthy);
        assert_eq!(report.progress_line(), "waiting for: x");
    }

    #[test]
    fn table_shows_hint_under_its_check() {
        let report = Report::new(vec![
            Check::new("agent pods", State::Fail, "init failed").with_hint("run nodes fix"),
            Check::new("cilium-config", State::Pass, "no errors"),
        ]);
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("CHECK"));
        assert!(lines[1].starts_with("agent pods") && lines[1].contains("error"));
        assert!(lines[2].trim_start().starts_with("hint: run nodes fix"));
        assert!(lines[3].starts_with("cilium-config"));
        assert!(table.ends_with("1 of 2 checks did not pass\n"));
        assert_eq!(
            table,
            "CHECK          STATE     DETAIL\n\
             agent pods     error     init failed\n\
             \x20                        hint: run nodes fix\n\
             cilium-config  ok        no errors\n\
             \n\
             1 of 2 checks did not pass\n"
        );
    }
}
