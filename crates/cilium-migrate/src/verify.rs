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

/// Parses `90`, `90s`, `5m`, `1h30m`, `1m30s`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration: write e.g. 90s, 5m or 1h30m");
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let value: u64 = number.parse().map_err(|_| bad())?;
        total = value
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || text.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
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
        for (text, seconds) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5400),
            ("1m30s", 90),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(seconds)),
                "{text}"
            );
        }
        for text in ["", "5x", "m", "5m3", "1.5m"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("90s, 5m or 1h30m"), "{error}");
        }
    }
}
