//! The one output convention: every command that prints a result takes `--output text|json`
//! through [`OutputArg`] (flattened into its `Args`), so scripts read every command alike.

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Tables and text for people (`table`, the older spelling of some commands, still works).
    #[default]
    #[value(alias = "table")]
    Text,
    /// One JSON document for machines.
    Json,
}

/// `--output text|json`, shared by every command that prints a result.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct OutputArg {
    /// `text` for people, `json` for machines.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl OutputArg {
    /// Whether machines read the result.
    pub fn is_json(self) -> bool {
        self.output == Output::Json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        output: OutputArg,
    }

    #[test]
    fn text_is_the_default_and_table_still_means_text() {
        assert_eq!(Cli::parse_from(["x"]).output.output, Output::Text);
        assert!(Cli::parse_from(["x", "--output", "json"]).output.is_json());
        assert_eq!(
            Cli::parse_from(["x", "--output", "table"]).output.output,
            Output::Text
        );
        assert!(Cli::try_parse_from(["x", "--output", "yaml"]).is_err());
    }
}
