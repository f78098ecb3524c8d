//! Acceptance on the released Cilium charts, with the real `helm` binaries (Helm 3 and Helm 4).
//!
//! The charts and Kubespray's own renders are found only through the `upstream` crate (never
//! copied into the project); without them these tests are skipped loudly, and under CI they fail.
//!
//! - Hand-over: the homelab example and every template-era case Kubespray's own templates rendered
//!   are translated, rendered with the released 1.15.9 chart and gated against the agent that runs
//!   (the image Kubespray applied): no behaviour change, in either direction.
//! - cilium-cli era: the release Kubespray installed (its values, the released chart) is taken
//!   over with values derived from its cilium-config: no behaviour change.
//! - Per minor: every other released chart renders the homelab values; the gate's report is a
//!   reviewed list per minor, and a changed live key is always reported.

mod support;

use std::path::{Path, PathBuf};

use cilium_values::{
    ChartVersion, ConfigDifference, InventoryVars, LiveConfig, NEWEST_MINOR, OLDEST_MINOR, Sources,
    Translation, compare_config_across, translate,
};
use serde_json::Value as Json;
use support::{
    Chart, HANDOVER_CHART, case_inventory, changes, chart, helm_template, inventory_vars,
    project_root, rendered_case, template_cases, tools_helm,
};
use upstream::{RenderedCase, RenderedEra, Upstream};

/// The cilium-cli era cases and the released chart each is installed with here. Kubespray v2.28.1
/// installs 1.17.7 and v2.31.0 1.19.3; the closest released archives at hand stand in for them.
const CILIUM_CLI_CASES: &[(&str, &str)] = &[
    ("sample@v2.28.1", "1.17.3"),
    ("hubble-full@v2.28.1", "1.17.3"),
    ("sample@v2.31.0", "1.19.6"),
];

/// The helm binaries to render with: `HELM` alone when set, else `helm3` and `helm4` from
/// `$CILIUM_MIGRATE_TOOLS` or `target/tools/bin`. A missing binary fails the test: a silent pass
/// would prove nothing.
fn helms() -> Vec<PathBuf> {
    if let Some(path) = std::env::var_os("HELM") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "HELM={} is not a file", path.display());
        return vec![path];
    }
    ["helm3", "helm4"]
        .iter()
        .map(|name| tools_helm(name, ", or point HELM at a helm binary"))
        .collect()
}

fn rendered_text(helm: &Path, chart: &Chart, values: &[&str], extra: &[&str]) -> String {
    let output = helm_template(helm, &chart.archive, values, extra);
    assert!(
        output.status.success(),
        "{} template (released chart {}) failed: {}\nvalues:\n{}",
        helm.display(),
        chart.version,
        String::from_utf8_lossy(&output.stderr),
        values.join("\n---\n")
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// The cilium-config a chart renders from values files.
fn render(helm: &Path, chart: &Chart, values: &[&str]) -> LiveConfig {
    let text = rendered_text(
        helm,
        chart,
        values,
        &["--show-only", "templates/cilium-configmap.yaml"],
    );
    LiveConfig::from_configmap_yaml(&text, format!("helm template of chart {}", chart.version))
        .expect("the render holds cilium-config (and no key twice)")
}

fn json_text(translation: &Translation) -> String {
    serde_json::to_string_pretty(&translation.values.to_json().expect("values serialise"))
        .expect("json")
}

/// A translation's warnings, as text (for failure messages).
fn warnings(translation: &Translation) -> Vec<String> {
    translation
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// The keys of the behaviour-changing differences, sorted.
fn changed_keys(differences: &[ConfigDifference]) -> Vec<String> {
    let mut keys: Vec<String> = differences
        .iter()
        .filter(|d| d.changes_behaviour)
        .map(|d| d.key.clone())
        .collect();
    keys.sort();
    keys
}

/// A live cluster to hand over: its cilium-config, its inventory and the agent that runs.
struct Handover {
    name: String,
    live: LiveConfig,
    inventory: InventoryVars,
    /// The agent version that runs (the image Kubespray applied).
    running: ChartVersion,
}

impl Handover {
    fn translate(&self, version: ChartVersion) -> Translation {
        translate(&Sources {
            live: Some(self.live.clone()),
            inventory: self.inventory.clone(),
            version,
        })
        .unwrap_or_else(|e| panic!("{}: translates for {version}: {e}", self.name))
    }

    /// What changes behaviour when `rendered` (from `helm`) replaces the live cilium-config.
    fn changes_on(&self, helm: &Path, rendered: &LiveConfig, version: ChartVersion) -> Vec<String> {
        changes(&compare_config_across(
            &self.live,
            self.running,
            rendered,
            version,
        ))
        .into_iter()
        .map(|change| format!("{}: {change}", helm.display()))
        .collect()
    }
}

fn homelab() -> Handover {
    let dir = project_root().join("examples/homelab");
    let inventory = kubespray_config::Inventory::load(&dir).expect("the example inventory loads");
    let era = inventory
        .detect_era()
        .require(&dir)
        .expect("the example's era is detectable");
    Handover {
        name: "homelab".to_owned(),
        live: LiveConfig::read(dir.join("cilium-config.yaml"))
            .expect("the example's live cilium-config parses"),
        inventory: inventory_vars(&dir, era),
        // The example's inventory pins cilium_version v1.15.9.
        running: ChartVersion::KUBESPRAY_2_27,
    }
}

/// The Cilium version of the agent image in Kubespray's rendered DaemonSet.
fn agent_image_version(case: &RenderedCase) -> ChartVersion {
    let objects = std::fs::read_to_string(case.file("objects.yaml")).expect("objects.yaml");
    let tag = objects
        .split("quay.io/cilium/cilium:")
        .nth(1)
        .and_then(|rest| rest.split(['"', '\n', '\'']).next())
        .unwrap_or_else(|| panic!("{}: no cilium agent image in objects.yaml", case.id()));
    ChartVersion::parse(tag).unwrap_or_else(|e| panic!("{}: {tag}: {e}", case.id()))
}

/// The agent each template-era tag applies by default (its role's `cilium_version`).
const TAG_AGENTS: &[(&str, &str)] = &[("v2.26.0", "1.15.4"), ("v2.27.1", "1.15.9")];

fn template_case(case: &RenderedCase) -> Handover {
    let running = agent_image_version(case);
    if let Some(&(_, want)) = TAG_AGENTS.iter().find(|(tag, _)| *tag == case.tag) {
        assert_eq!(running.to_string(), want, "{}: the agent image", case.id());
    }
    Handover {
        name: case.id(),
        live: LiveConfig::read(case.file("cilium-config.yaml"))
            .unwrap_or_else(|e| panic!("{}: {e}", case.id())),
        inventory: case_inventory(case, kubespray_config::Era::Template),
        running,
    }
}

/// Run `check` on every hand-over (homelab first, then each template-era case) and fail once with
/// every case's failures, each under its own name.
fn for_each_handover(test: &str, check: impl Fn(&Upstream, &Handover) -> Vec<String>) {
    let Some(upstream) = Upstream::for_test(test) else {
        return;
    };
    let mut handovers = vec![homelab()];
    handovers.extend(template_cases(&upstream).iter().map(template_case));
    let mut failures = Vec::new();
    let mut failed = Vec::new();
    for handover in &handovers {
        let found = check(&upstream, handover);
        if !found.is_empty() {
            failed.push(handover.name.clone());
        }
        for failure in found {
            failures.push(format!("{}: {failure}", handover.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hand-overs failed ({}):\n{}",
        failed.len(),
        handovers.len(),
        failed.join(", "),
        failures.join("\n")
    );
}

#[test]
fn handover_on_the_released_1_15_9_chart_changes_no_behaviour() {
    for_each_handover(
        "handover_on_the_released_1_15_9_chart_changes_no_behaviour",
        |upstream, handover| {
            let chart = chart(upstream, HANDOVER_CHART);
            // The template era ran 1.15 agents only: v2.26.0 applied 1.15.4, v2.27.1 1.15.9.
            assert_eq!(handover.running.minor, 15, "{}", handover.name);
            let translation = handover.translate(chart.version);
            let json = translation.values.to_json().expect("values serialise");
            // Values the released chart's validate.yaml refuses are never written.
            assert_eq!(
                json.get("enableCnpStatusUpdates"),
                None,
                "{}",
                handover.name
            );
            let mut failures = Vec::new();
            for helm in helms() {
                let rendered = render(&helm, &chart, &[&json_text(&translation)]);
                // The commented YAML `values` writes is what Helm reads.
                let yaml = translation.values.to_yaml_with_provenance().expect("yaml");
                let from_yaml = render(&helm, &chart, &[&yaml]);
                if from_yaml.data() != rendered.data() {
                    failures.push(format!(
                        "{}: the commented YAML renders another cilium-config",
                        helm.display()
                    ));
                }
                failures.extend(handover.changes_on(&helm, &rendered, chart.version));
            }
            if !failures.is_empty() {
                let warnings = warnings(&translation);
                failures.push(format!("warnings: {warnings:#?}"));
            }
            failures
        },
    );
}

/// What cilium-cli puts under the user's values (`getHelmValues` in cilium-cli's
/// `install/helm.go`; the user's `-f` files are merged over it): one operator (Kubespray's
/// `operator.replicas` wins) and, for a cluster of no known flavour whose values set no routing
/// mode, tunnel routing.
const CILIUM_CLI_DEFAULTS: &str = "operator:\n  replicas: 1\nroutingMode: tunnel\n";

/// cilium-cli installs with `k8sServiceHost: auto` as Kubespray writes it, and the chart then
/// looks the API server up in the cluster (`kube-public/cluster-info`, the kubeconfig kubeadm
/// publishes: `https://<first control plane>:6443` for these inventories). `helm template` has
/// no cluster, so the address cilium-cli would get is written instead. It reaches only the
/// agents' KUBERNETES_SERVICE_HOST/PORT, never cilium-config.
const CILIUM_CLI_API_SERVER: &str = "k8sServiceHost: 10.0.0.11\nk8sServicePort: \"6443\"\n";

/// The cilium-config the release Kubespray installed through cilium-cli holds: the chart rendered
/// from cilium-cli's defaults, Kubespray's values file(s) and the API server address.
fn cilium_cli_live(helm: &Path, chart: &Chart, case: &RenderedCase) -> LiveConfig {
    let read = |name: &str| {
        std::fs::read_to_string(case.file(name))
            .unwrap_or_else(|e| panic!("{}: {name}: {e}", case.id()))
    };
    let values = read("values.yaml");
    let extra = case
        .file("extra-values.yaml")
        .is_file()
        .then(|| read("extra-values.yaml"));
    let mut files = vec![CILIUM_CLI_DEFAULTS, values.as_str()];
    if let Some(extra) = &extra {
        files.push(extra);
    }
    files.push(CILIUM_CLI_API_SERVER);
    let config = render(helm, chart, &files);
    LiveConfig::from_map(
        config.data().clone(),
        format!(
            "{} installed by cilium-cli (chart {})",
            case.id(),
            chart.version
        ),
    )
}

#[test]
fn cilium_cli_era_releases_are_taken_over_without_a_behaviour_change() {
    let Some(upstream) =
        Upstream::for_test("cilium_cli_era_releases_are_taken_over_without_a_behaviour_change")
    else {
        return;
    };
    let mut failures = Vec::new();
    for &(id, version) in CILIUM_CLI_CASES {
        let case = rendered_case(&upstream, id);
        assert_eq!(case.era(), RenderedEra::CiliumCli, "{id}");
        let chart = chart(&upstream, version);
        let inventory = case_inventory(&case, kubespray_config::Era::CiliumCli);
        for helm in helms() {
            let live = cilium_cli_live(&helm, &chart, &case);
            let translation = translate(&Sources {
                live: Some(live.clone()),
                inventory: inventory.clone(),
                version: chart.version,
            })
            .unwrap_or_else(|e| panic!("{id}: translates: {e}"));
            let rendered = render(&helm, &chart, &[&json_text(&translation)]);
            // The agent that runs is the chart's own.
            let differences = compare_config_across(&live, chart.version, &rendered, chart.version);
            let found = changes(&differences);
            // A key left to the chart is still checked: a live value the chart does not write
            // is reported.
            let mut edited = live.data().clone();
            edited.insert("nat-map-stats-interval".to_owned(), "1m0s".to_owned());
            let edited = LiveConfig::from_map(edited, "edited live cilium-config");
            let control = compare_config_across(&edited, chart.version, &rendered, chart.version);
            assert_eq!(
                changed_keys(&control),
                ["nat-map-stats-interval"],
                "{id} on chart {version}: the negative control"
            );
            assert!(
                live.data().len() > 100,
                "{id}: the released chart renders more than 100 keys, got {}",
                live.data().len()
            );
            if !found.is_empty() {
                let warnings = warnings(&translation);
                failures.push(format!(
                    "{id} on chart {version} with {}:\n  {}\n  warnings: {warnings:#?}",
                    helm.display(),
                    found.join("\n  ")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What the gate reports for the homelab (a 1.15.9 agent) on each later chart, reviewed:
/// `(key, first minor, last minor, why it is reported)`. Each is a setting a later agent
/// introduced whose 1.15 behaviour is not established in the gate's defaults table (so the gate
/// must call it a change), or a real change; the operator accepts them by name.
const REVIEWED_CHANGES: &[(&str, u32, u32, &str)] = &[
    (
        "bpf-lb-algorithm-annotation",
        17,
        20,
        "1.17 lets Services pick the LB algorithm by annotation; 1.15 had no such annotation",
    ),
    (
        "bpf-lb-mode-annotation",
        17,
        20,
        "1.17 lets Services pick SNAT/DSR by annotation; 1.15 had no such annotation",
    ),
    (
        "bpf-policy-stats-map-max",
        18,
        20,
        "a new BPF map for policy statistics (more memory)",
    ),
    (
        "clustermesh-cache-ttl",
        19,
        20,
        "a new cluster mesh cache; 1.15's equivalent not established",
    ),
    (
        "clustermesh-mcs-api-install-crds",
        19,
        20,
        "the operator may install the MCS-API CRDs; 1.15 never did",
    ),
    (
        "enable-drift-checker",
        18,
        20,
        "a new agent job comparing cilium-config with what runs",
    ),
    (
        "enable-dynamic-config",
        18,
        20,
        "the agent reads its config through a new dynamic table",
    ),
    (
        "enable-no-service-endpoints-routable",
        19,
        20,
        "new handling of Services without endpoints; 1.15's not established",
    ),
    (
        "enable-runtime-device-detection",
        16,
        17,
        "1.16+ detect devices at runtime; the 1.15 default detected them once, at start",
    ),
    (
        "envoy-access-log-buffer-size",
        16,
        20,
        "an Envoy setting 1.15's embedded proxy did not expose",
    ),
    (
        "envoy-base-id",
        16,
        20,
        "an Envoy setting 1.15's embedded proxy did not expose",
    ),
    (
        "envoy-keep-cap-netbindservice",
        16,
        20,
        "an Envoy capability setting 1.15 did not expose",
    ),
    (
        "health-check-icmp-failure-threshold",
        17,
        20,
        "a new health-check threshold; 1.15's behaviour not established",
    ),
    (
        "http-stream-idle-timeout",
        18,
        20,
        "an Envoy timeout 1.15 did not expose",
    ),
    (
        "hubble-metrics-server-enable-tls",
        16,
        20,
        "a new switch; 1.15 served Hubble metrics without one, not checked in its source here",
    ),
    (
        "hubble-network-policy-correlation-enabled",
        18,
        20,
        "Hubble starts correlating flows with policies",
    ),
    (
        "identity-management-mode",
        18,
        20,
        "a new switch over who allocates identities; 1.15's kvstore allocation not mapped to it here",
    ),
    ("metrics-sampling-interval", 18, 20, "a new metrics sampler"),
    (
        "nat-map-stats-entries",
        16,
        20,
        "new NAT map statistics collection",
    ),
    (
        "nat-map-stats-interval",
        16,
        20,
        "new NAT map statistics collection",
    ),
    (
        "policy-deny-response",
        19,
        20,
        "a new choice of how denied traffic is answered; 1.15's not established",
    ),
    (
        "policy-secrets-namespace",
        17,
        20,
        "L7 policy Secrets are read from cilium-secrets; 1.15 read them where the policy named them",
    ),
    (
        "policy-secrets-only-from-secrets-namespace",
        17,
        20,
        "L7 policy Secrets are read from cilium-secrets only",
    ),
    (
        "proxy-cluster-max-connections",
        19,
        20,
        "an Envoy limit 1.15 did not expose",
    ),
    (
        "proxy-cluster-max-requests",
        19,
        20,
        "an Envoy limit 1.15 did not expose",
    ),
    (
        "proxy-initial-fetch-timeout",
        16,
        20,
        "an Envoy timeout 1.15 did not expose",
    ),
    (
        "proxy-max-active-downstream-connections",
        19,
        20,
        "an Envoy limit 1.15 did not expose",
    ),
    (
        "proxy-max-concurrent-retries",
        17,
        20,
        "an Envoy limit 1.15 did not expose",
    ),
    (
        "proxy-use-original-source-address",
        19,
        20,
        "an Envoy setting 1.15 did not expose",
    ),
    (
        "tofqdns-preallocate-identities",
        18,
        20,
        "ToFQDNs starts preallocating identities",
    ),
    (
        "tunnel-source-port-range",
        17,
        20,
        "a new tunnel source-port setting; 1.15's range not established",
    ),
];

fn reviewed_changes(version: ChartVersion) -> Vec<String> {
    let mut keys: Vec<String> = REVIEWED_CHANGES
        .iter()
        .filter(|&&(_, first, last, _)| (first..=last).contains(&version.minor))
        .map(|&(key, ..)| key.to_owned())
        .collect();
    keys.sort();
    keys
}

/// A live config with some keys set (`Some`) or removed (`None`).
fn edited(live: &LiveConfig, edits: &[(&str, Option<&str>)]) -> LiveConfig {
    let mut data = live.data().clone();
    for (key, value) in edits {
        match value {
            Some(v) => data.insert((*key).to_owned(), (*v).to_owned()),
            None => data.remove(*key),
        };
    }
    LiveConfig::from_map(data, "edited live cilium-config")
}

#[test]
fn every_released_chart_renders_the_homelab_with_reviewed_changes() {
    let Some(upstream) =
        Upstream::for_test("every_released_chart_renders_the_homelab_with_reviewed_changes")
    else {
        return;
    };
    let homelab = homelab();
    let versions = upstream.chart_versions();
    assert!(versions.len() >= 8, "released charts: {versions:?}");
    let mut failures = Vec::new();
    for released in &versions {
        let text = released.to_string();
        let Ok(version) = ChartVersion::parse(&text) else {
            // A chart newer than the crate knows (none today) is refused with the way out.
            let message = ChartVersion::parse(&text).expect_err(&text).to_string();
            assert!(
                message.contains(&text)
                    && message.contains(&format!("1.{OLDEST_MINOR} to 1.{NEWEST_MINOR}"))
                    && message.contains("--cilium-version"),
                "{text}: {message}"
            );
            continue;
        };
        let chart = chart(&upstream, &text);
        let translation = homelab.translate(version);
        let values = json_text(&translation);
        let want = reviewed_changes(version);
        // A changed live key the values do not carry must be reported on every chart.
        let control = edited(&homelab.live, &[("bpf-policy-map-max", Some("65536"))]);
        for helm in helms() {
            // The whole chart renders, and its cilium-config is the one gated.
            let manifests = rendered_text(&helm, &chart, &[&values], &[]);
            let rendered = LiveConfig::from_configmap_yaml(&manifests, format!("chart {text}"))
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            for object in ["DaemonSet/cilium", "Deployment/cilium-operator"] {
                let (kind, name) = object.split_once('/').expect("kind/name");
                assert!(
                    manifests.contains(&format!("kind: {kind}\nmetadata:\n  name: {name}\n")),
                    "{text}: {object} missing from the render"
                );
            }
            // The per-minor facts the translation relies on hold for this released chart.
            let facts = [
                (
                    "enable-bgp-control-plane rendered while off",
                    rendered.get("enable-bgp-control-plane").is_some(),
                    version.renders_bgp_control_plane_when_off(),
                ),
                (
                    "enable-remote-node-identity rendered",
                    rendered.get("enable-remote-node-identity").is_some(),
                    version.has_legacy_1_15_values(),
                ),
                (
                    "disable-cnp-status-updates rendered",
                    rendered.get("disable-cnp-status-updates").is_some(),
                    false,
                ),
                (
                    "kube-proxy-replacement is \"false\"",
                    rendered.get("kube-proxy-replacement") == Some("false"),
                    true,
                ),
            ];
            for (fact, seen, claimed) in facts {
                if seen != claimed {
                    failures.push(format!(
                        "{text} with {}: {fact}: rendered {seen}, src/version.rs says {claimed}",
                        helm.display()
                    ));
                }
            }
            let got = changed_keys(&compare_config_across(
                &homelab.live,
                homelab.running,
                &rendered,
                version,
            ));
            if got != want {
                failures.push(format!(
                    "{text} with {}: reported {got:?}, reviewed {want:?}",
                    helm.display()
                ));
            }
            let mut with_control = want.clone();
            with_control.push("bpf-policy-map-max".to_owned());
            with_control.sort();
            let got = changed_keys(&compare_config_across(
                &control,
                homelab.running,
                &rendered,
                version,
            ));
            if got != with_control {
                failures.push(format!(
                    "{text} with {}: the negative control reported {got:?}, want {with_control:?}",
                    helm.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What a per-minor control must end in.
enum Expect {
    /// helm refuses to render, with this text in its error.
    Refused(&'static str),
    /// The render succeeds and the gate reports exactly these keys besides the reviewed ones.
    GateFlags(&'static [&'static str]),
}

/// Merge `patch` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(base), Json::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Json::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The per-minor rules of the released charts the translation relies on: what each refuses, and
/// what it no longer renders (the gate must report the live value as lost).
#[test]
fn each_released_minor_refuses_or_flags_what_it_lost() {
    use serde_json::json;
    type Edits<'a> = &'a [(&'a str, Option<&'a str>)];
    let Some(upstream) = Upstream::for_test("each_released_minor_refuses_or_flags_what_it_lost")
    else {
        return;
    };
    // (chart, what, values written on top of the homelab values, live edits, expectation)
    let cases: Vec<(&str, &str, Json, Edits, Expect)> = vec![
        (
            "1.15.9",
            "enableCnpStatusUpdates is refused since 1.15",
            json!({"enableCnpStatusUpdates": true}),
            &[],
            Expect::Refused("enableCnpStatusUpdates"),
        ),
        (
            "1.15.19",
            "a dropped CT size is caught",
            json!({"bpf": {"ctAnyMax": null}}),
            &[],
            Expect::GateFlags(&["bpf-ct-global-any-max"]),
        ),
        (
            "1.16.19",
            "remoteNodeIdentity is refused from 1.16",
            json!({"remoteNodeIdentity": true}),
            &[],
            Expect::Refused("remoteNodeIdentity"),
        ),
        (
            "1.16.19",
            "the legacy kube-proxy replacement spelling is refused from 1.16",
            json!({"kubeProxyReplacement": "partial"}),
            &[],
            Expect::Refused("kubeProxyReplacement"),
        ),
        (
            "1.16.19",
            "the schema refuses a string mask size",
            json!({"ipam": {"operator": {"clusterPoolIPv4MaskSize": "24"}}}),
            &[],
            Expect::Refused("clusterPoolIPv4MaskSize"),
        ),
        (
            "1.17.3",
            "hostPort.enabled written anyway renders nothing before 1.17.6",
            json!({"hostPort": {"enabled": true}}),
            &[("enable-host-port", Some("true"))],
            Expect::GateFlags(&["enable-host-port"]),
        ),
        (
            "1.17.18",
            "the wireguard userspace fallback written anyway renders nothing",
            json!({"encryption": {"enabled": true, "type": "wireguard", "wireguard": {"userspaceFallback": true}}}),
            &[
                ("enable-wireguard", Some("true")),
                ("enable-wireguard-userspace-fallback", Some("true")),
            ],
            Expect::GateFlags(&["enable-wireguard-userspace-fallback"]),
        ),
        (
            "1.17.18",
            "a cluster name 1.17 refuses",
            json!({"cluster": {"name": "Home_Lab"}, "upgradeCompatibility": "1.15"}),
            &[],
            Expect::Refused("cluster name"),
        ),
        (
            "1.18.12",
            "hostPort.enabled written anyway renders nothing",
            json!({"hostPort": {"enabled": true}}),
            &[("enable-host-port", Some("true"))],
            Expect::GateFlags(&["enable-host-port"]),
        ),
        (
            "1.18.12",
            "native routing with masquerading needs a native-routing CIDR",
            json!({"routingMode": "native", "enableIPv4Masquerade": true}),
            &[],
            Expect::Refused("ipv4NativeRoutingCIDR"),
        ),
        (
            "1.19.6",
            "nodePort.enabled written anyway renders nothing",
            json!({"nodePort": {"enabled": true}}),
            &[("enable-node-port", Some("true"))],
            Expect::GateFlags(&["enable-node-port"]),
        ),
        (
            "1.20.0",
            "encryption.ipsec.interface written anyway renders nothing and the dropped interface is caught",
            json!({"encryption": {"enabled": true, "type": "ipsec", "ipsec": {"interface": "eth0"}}}),
            &[
                ("enable-ipsec", Some("true")),
                ("ipsec-key-file", Some("/etc/ipsec/keys")),
                ("encrypt-interface", Some("eth0")),
            ],
            Expect::GateFlags(&["encrypt-interface"]),
        ),
    ];
    // Every supported released chart has a control.
    for released in upstream.chart_versions() {
        let text = released.to_string();
        if ChartVersion::parse(&text).is_ok() {
            assert!(
                cases.iter().any(|(t, ..)| *t == text),
                "no control for the released chart {text}"
            );
        }
    }
    let homelab = homelab();
    for (target, what, patch, live_edits, expect) in cases {
        let chart = chart(&upstream, target);
        let mut json = homelab
            .translate(chart.version)
            .values
            .to_json()
            .expect("json");
        merge(&mut json, &patch);
        let text = serde_json::to_string_pretty(&json).expect("json");
        let live = edited(&homelab.live, live_edits);
        for helm in helms() {
            let output = helm_template(
                &helm,
                &chart.archive,
                &[&text],
                &["--show-only", "templates/cilium-configmap.yaml"],
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            match &expect {
                Expect::Refused(needle) => {
                    assert!(
                        !output.status.success(),
                        "{target}: {what}: helm rendered it"
                    );
                    assert!(
                        stderr.contains(needle),
                        "{target}: {what}: {needle:?} not in {stderr}"
                    );
                }
                Expect::GateFlags(keys) => {
                    assert!(output.status.success(), "{target}: {what}: {stderr}");
                    let rendered = LiveConfig::from_configmap_yaml(
                        &String::from_utf8_lossy(&output.stdout),
                        "helm template output",
                    )
                    .expect("the render holds cilium-config");
                    let reviewed = reviewed_changes(chart.version);
                    let flagged: Vec<String> = changed_keys(&compare_config_across(
                        &live,
                        homelab.running,
                        &rendered,
                        chart.version,
                    ))
                    .into_iter()
                    .filter(|k| !reviewed.contains(k))
                    .collect();
                    assert_eq!(flagged, *keys, "{target}: {what}");
                }
            }
        }
    }
}

/// Without a cluster (`values`/`plan` on the inventory alone), the values must still render what
/// Kubespray's own templates rendered for that inventory.
#[test]
fn inventory_alone_renders_what_kubespray_rendered() {
    for_each_handover(
        "inventory_alone_renders_what_kubespray_rendered",
        |upstream, handover| {
            let chart = chart(upstream, HANDOVER_CHART);
            let translation = translate(&Sources {
                live: None,
                inventory: handover.inventory.clone(),
                version: chart.version,
            })
            .unwrap_or_else(|e| panic!("{}: translates: {e}", handover.name));
            let mut failures = Vec::new();
            for helm in helms() {
                let rendered = render(&helm, &chart, &[&json_text(&translation)]);
                failures.extend(handover.changes_on(&helm, &rendered, chart.version));
            }
            failures
        },
    );
}
