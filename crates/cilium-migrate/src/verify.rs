//! `cilium-migrate verify`: Cilium's health through the Kubernetes API, like `cilium status`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use verify::{Options, ProbeOptions, Report, UrlCheck};

use crate::output::{Output, OutputArg};

#[derive(clap::Args)]
pub struct Args {
    /// Namespace Cilium runs in.
    #[arg(long, default_value = "kube-system")]
    namespace: String,
    /// Helm release name (read from Helm's storage Secrets in the namespace).
    #[arg(long, default_value = "cilium")]
    release: String,
    /// Chart version the release must be deployed at (also makes a missing release an error).
    #[arg(long, value_name = "X.Y.Z")]
    chart_version: Option<String>,
    /// Poll until every check passes or this long has passed (e.g. 90s, 5m, 1h30m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    wait: Option<Duration>,
    /// Time between polls with --wait.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    interval: Duration,
    /// Run a probe Job on every node: resolve kubernetes.default and GET the API server's /healthz.
    #[arg(long)]
    probe: bool,
    /// Image for the probe (needs nslookup and wget).
    #[arg(long, value_name = "IMAGE", default_value = verify::probe::DEFAULT_PROBE_IMAGE)]
    probe_image: String,
    /// How long the probe pods may take (image pull included).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "2m")]
    probe_timeout: Duration,
    /// HTTP check through the ingress: http://HOST[:PORT]/PATH, optionally =CODE (default 200).
    #[arg(long, value_name = "URL[=CODE]", num_args = 1.., value_parser = parse_url)]
    url: Vec<UrlCheck>,
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config or in-cluster).
    #[arg(long, value_name = "FILE", env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// `--output json` prints one object: `{"healthy": bool, "checks": [...]}`.
    #[command(flatten)]
    output: OutputArg,
}

fn parse_url(arg: &str) -> Result<UrlCheck, String> {
    arg.parse().map_err(|e: verify::Error| e.to_string())
}

/// A duration flag, Go-style (`90s`, `5m`, `1h30m`, `1m30s`, `1.5m`, `500ms`) or a bare number
/// of seconds (`90`). The one parser of every `DURATION` flag.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write e.g. 90s, 5m or 1h30m");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    // jiff also reads what Go's `time.ParseDuration` refuses (ISO 8601 `PT5M`, signs, spaces,
    // `5 mins`): only Go's digits and unit letters may reach it.
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || ".hmsunµ".contains(c))
    {
        return Err(bad());
    }
    let duration: jiff::SignedDuration = text.parse().map_err(|_| bad())?;
    Duration::try_from(duration).map_err(|_| bad())
}

async fn run_async(args: Args) -> anyhow::Result<Report> {
    let client = crate::cluster::client(args.kubeconfig.as_deref()).await?;
    let mut options = Options::new(&args.namespace, &args.release);
    options.chart_version = args.chart_version.clone();
    options.urls = args.url.clone();
    if args.probe {
        options.probe = Some(ProbeOptions {
            namespace: args.namespace.clone(),
            image: args.probe_image.clone(),
            timeout: args.probe_timeout,
        });
    }
    let Some(wait) = args.wait else {
        return Ok(verify::verify(&client, &options).await?);
    };
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let result = verify::verify(&client, &options).await;
        let progress = match &result {
            Ok(report) if report.healthy => return result.map_err(Into::into),
            Ok(report) => report.progress_line(),
            Err(e) => format!("retrying after error: {e}"),
        };
        if elapsed >= wait {
            return result.map_err(Into::into);
        }
        eprintln!("[{:>4}s/{}s] {progress}", elapsed.as_secs(), wait.as_secs());
        tokio::time::sleep(args.interval.min(wait.saturating_sub(elapsed))).await;
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<()> {
    let output = args.output.output;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(run_async(args))?;
    match output {
        Output::Text => print!("{}", report.table()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    if !report.healthy {
        let names: Vec<&str> = report.problems().map(|c| c.name.as_str()).collect();
        bail!("not healthy: {}", names.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, millis) in [
            ("90", 90_000),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1m30s", 90_000),
            ("1.5m", 90_000),
            ("500ms", 500),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for text in ["", "5x", "m", "5m3", "-5m", "PT5M", "5 minutes", "5mins"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("90s, 5m or 1h30m"), "{error}");
        }
    }
}
