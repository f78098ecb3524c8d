//! The workload gate on what users run: for every template-era case that Kubespray's own templates
//! rendered, the objects Kubespray applies (the live workloads) against the released 1.15.9 chart
//! rendered with the values `translate` derives for that case.
//!
//! The charts and Kubespray's renders are found only through the `upstream` crate (never copied
//! into the project); without them these tests are skipped loudly, and under CI they fail.

mod support;

use std::path::PathBuf;

use cilium_values::{
    ChartVersion, LiveConfig, Sources, Translation, WorkloadDifference, compare_config_across,
    compare_workloads, translate,
};
use serde_json::{Value as Json, json};
use support::{
    Chart, HANDOVER_CHART, changes, chart, helm_template, inventory_copy, inventory_vars,
    rendered_case, template_cases, tools_helm,
};
use upstream::{RenderedCase, Upstream};

/// `helm3` from `$CILIUM_MIGRATE_TOOLS` or `target/tools/bin`; missing fails the test.
fn helm3() -> PathBuf {
    tools_helm("helm3", "")
}

/// Multi-document YAML as `kubectl apply` reads it: `0400` is octal, and a repeated key keeps the
/// last value (Kubespray v2.27.1's operator manifest says `hostNetwork: true` twice).
fn objects(text: &str, origin: &str) -> Vec<Json> {
    let mut options = serde_saphyr::Options::default();
    options.legacy_octal_numbers = true;
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let docs: Vec<Json> = serde_saphyr::from_multiple_with_options(text, options)
        .unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"));
    docs.into_iter()
        .filter(|d| d.get("kind").is_some())
        .collect()
}

/// The objects Kubespray applied for a rendered case (its `objects.yaml`): the live workloads.
fn live_objects(rendered: &RenderedCase) -> Vec<Json> {
    let objects_file = rendered.file("objects.yaml");
    objects(
        &std::fs::read_to_string(&objects_file)
            .unwrap_or_else(|e| panic!("{}: {e}", objects_file.display())),
        &objects_file.display().to_string(),
    )
}

/// The objects the chart renders from `values` with `helm3`.
fn render(chart: &Chart, values: &Json) -> Vec<Json> {
    let helm = helm3();
    let output = helm_template(&helm, &chart.archive, &[&values.to_string()], &[]);
    assert!(
        output.status.success(),
        "{} template {} failed: {}\nvalues: {values:#}",
        helm.display(),
        chart.archive.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    objects(
        &String::from_utf8(output.stdout).expect("helm prints UTF-8"),
        "helm template output",
    )
}

/// One case: its live cilium-config, the live objects and the chart's render of the translated
/// values.
struct Case {
    id: String,
    config: LiveConfig,
    live: Vec<Json>,
    rendered: Vec<Json>,
}

/// A rendered case whose inventory (copied to `inventory`) is translated for the hand-over chart
/// and rendered; `live` is what Kubespray applied.
fn translated(
    upstream: &Upstream,
    rendered: &RenderedCase,
    inventory: &tempfile::TempDir,
    id: String,
    live: Vec<Json>,
) -> (Case, Translation) {
    let config = LiveConfig::read(rendered.file("cilium-config.yaml"))
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let chart = chart(upstream, HANDOVER_CHART);
    let translation = translate(&Sources {
        live: Some(config.clone()),
        inventory: inventory_vars(inventory.path(), kubespray_config::Era::Template),
        version: chart.version,
    })
    .unwrap_or_else(|e| panic!("{id}: translates: {e}"));
    let values = translation.values.to_json().expect("values serialise");
    let case = Case {
        id,
        config,
        live,
        rendered: render(&chart, &values),
    };
    (case, translation)
}

/// A rendered case with its translation.
fn translated_case(upstream: &Upstream, rendered: &RenderedCase) -> (Case, Translation) {
    translated(
        upstream,
        rendered,
        &inventory_copy(rendered),
        rendered.id(),
        live_objects(rendered),
    )
}

/// The names that are in `names` and not in `want` (new), and the other way round (gone).
fn new_and_gone(names: &[String], want: &[String]) -> String {
    let new: Vec<&String> = names.iter().filter(|n| !want.contains(n)).collect();
    let gone: Vec<&String> = want.iter().filter(|n| !names.contains(n)).collect();
    format!("new {new:?}, gone {gone:?}")
}

/// The differences every template-era case shows: the chart's way of running the same agent.
/// Reviewed: each is explained (does not block) on a case whose agent runs the chart's version.
const EXPLAINED: &[&str] = &[
    "DaemonSet/cilium: annotation scheduler.alpha.kubernetes.io/tolerations",
    "DaemonSet/cilium: container cilium-agent: env GOMEMLIMIT",
    "DaemonSet/cilium: container cilium-agent: image",
    "DaemonSet/cilium: container cilium-agent: postStart",
    "DaemonSet/cilium: container cilium-agent: readinessProbe",
    "DaemonSet/cilium: container cilium-agent: securityContext",
    "DaemonSet/cilium: container cilium-agent: startupProbe",
    "DaemonSet/cilium: container cilium-agent: terminationMessagePolicy",
    "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
    "DaemonSet/cilium: container cilium-agent: volumeMount /host/proc/sys/kernel",
    "DaemonSet/cilium: container cilium-agent: volumeMount /host/proc/sys/net",
    "DaemonSet/cilium: container cilium-agent: volumeMount /sys/fs/bpf",
    "DaemonSet/cilium: container cilium-agent: volumeMount /tmp",
    "DaemonSet/cilium: container cilium-agent: volumeMount /tmp/cilium/config-map",
    "DaemonSet/cilium: container cilium-agent: volumeMount /var/lib/cilium/clustermesh",
    "DaemonSet/cilium: container cilium-agent: volumeMount /var/lib/etcd-config",
    "DaemonSet/cilium: initContainer apply-sysctl-overwrites: image",
    "DaemonSet/cilium: initContainer apply-sysctl-overwrites: securityContext",
    "DaemonSet/cilium: initContainer apply-sysctl-overwrites: terminationMessagePolicy",
    "DaemonSet/cilium: initContainer clean-cilium-state: env WRITE_CNI_CONF_WHEN_READY",
    "DaemonSet/cilium: initContainer clean-cilium-state: image",
    "DaemonSet/cilium: initContainer clean-cilium-state: resources requests.cpu",
    "DaemonSet/cilium: initContainer clean-cilium-state: resources requests.memory",
    "DaemonSet/cilium: initContainer clean-cilium-state: securityContext",
    "DaemonSet/cilium: initContainer clean-cilium-state: terminationMessagePolicy",
    "DaemonSet/cilium: initContainer clean-cilium-state: volumeMount /etc/cilium/certs",
    "DaemonSet/cilium: initContainer clean-cilium-state: volumeMount /var/lib/etcd-config",
    "DaemonSet/cilium: initContainer config",
    "DaemonSet/cilium: initContainer install-cni-binaries: image",
    "DaemonSet/cilium: initContainer install-cni-binaries: securityContext",
    "DaemonSet/cilium: initContainer mount-bpf-fs",
    "DaemonSet/cilium: initContainer mount-cgroup: image",
    "DaemonSet/cilium: initContainer mount-cgroup: securityContext",
    "DaemonSet/cilium: initContainer mount-cgroup: terminationMessagePolicy",
    "DaemonSet/cilium: label app.kubernetes.io/name",
    "DaemonSet/cilium: label app.kubernetes.io/part-of",
    "DaemonSet/cilium: nodeSelector kubernetes.io/os",
    "DaemonSet/cilium: securityContext",
    "Deployment/cilium-operator: container cilium-operator: command",
    "Deployment/cilium-operator: container cilium-operator: env AWS_ACCESS_KEY_ID",
    "Deployment/cilium-operator: container cilium-operator: env AWS_DEFAULT_REGION",
    "Deployment/cilium-operator: container cilium-operator: env AWS_SECRET_ACCESS_KEY",
    "Deployment/cilium-operator: container cilium-operator: image",
    "Deployment/cilium-operator: container cilium-operator: readinessProbe",
    "Deployment/cilium-operator: container cilium-operator: terminationMessagePolicy",
    "Deployment/cilium-operator: container cilium-operator: volumeMount /etc/cilium/certs",
    "Deployment/cilium-operator: label app.kubernetes.io/name",
    "Deployment/cilium-operator: label app.kubernetes.io/part-of",
    "Deployment/cilium-operator: nodeSelector kubernetes.io/os",
    "Deployment/cilium-operator: priorityClassName",
    "Deployment/cilium-operator: strategy",
];

/// What hubble-full adds: Hubble's relay and UI, and the agent's peer-service port.
const HUBBLE_EXPLAINED: &[&str] = &[
    "DaemonSet/cilium: container cilium-agent: port 4244/TCP",
    "Deployment/hubble-relay: automountServiceAccountToken",
    "Deployment/hubble-relay: container hubble-relay: image",
    "Deployment/hubble-relay: container hubble-relay: livenessProbe",
    "Deployment/hubble-relay: container hubble-relay: readinessProbe",
    "Deployment/hubble-relay: container hubble-relay: securityContext",
    "Deployment/hubble-relay: container hubble-relay: startupProbe",
    "Deployment/hubble-relay: container hubble-relay: terminationMessagePolicy",
    "Deployment/hubble-relay: container hubble-relay: volumeMount /var/run/cilium",
    "Deployment/hubble-relay: label app.kubernetes.io/name",
    "Deployment/hubble-relay: label app.kubernetes.io/part-of",
    "Deployment/hubble-relay: nodeSelector kubernetes.io/os",
    "Deployment/hubble-relay: securityContext",
    "Deployment/hubble-relay: terminationGracePeriodSeconds",
    "Deployment/hubble-ui: container backend: image",
    "Deployment/hubble-ui: container backend: terminationMessagePolicy",
    "Deployment/hubble-ui: container frontend: image",
    "Deployment/hubble-ui: container frontend: livenessProbe",
    "Deployment/hubble-ui: container frontend: readinessProbe",
    "Deployment/hubble-ui: container frontend: terminationMessagePolicy",
    "Deployment/hubble-ui: label app.kubernetes.io/name",
    "Deployment/hubble-ui: label app.kubernetes.io/part-of",
    "Deployment/hubble-ui: nodeSelector kubernetes.io/os",
    "Deployment/hubble-ui: securityContext",
    "Deployment/hubble-ui: strategy",
];

/// hubble-full's relay serves TLS (Kubespray's `cilium_hubble_tls_generate`) and its UI talks TLS
/// to it: the values keep both (`hubble.relay.tls.server.enabled`), with the certificates the
/// chart issues. What differs is which Secret holds them, the CA file's name and the name the UI
/// expects in the relay's certificate; each is explained, none blocks.
const HUBBLE_RELAY_TLS_EXPLAINED: &[&str] = &[
    "Deployment/hubble-relay: container hubble-relay: volumeMount /var/lib/hubble-relay/tls",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_CA_CERT_FILES",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_SERVER_NAME",
    "Deployment/hubble-ui: container backend: volumeMount /var/lib/hubble-ui/certs",
];

/// What the gate reports for hubble-full when the relay's TLS is lost (the finding before the
/// values carried it): the relay serves plain gRPC on 80 without its server certificate, and the
/// UI follows. Every one of them blocks.
const HUBBLE_RELAY_TLS_LOST: &[&str] = &[
    "Deployment/hubble-relay: container hubble-relay: volumeMount /var/lib/hubble-relay/tls",
    "Deployment/hubble-ui: container backend: env FLOWS_API_ADDR",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_CA_CERT_FILES",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_CLIENT_CERT_FILE",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_CLIENT_KEY_FILE",
    "Deployment/hubble-ui: container backend: env TLS_RELAY_SERVER_NAME",
    "Deployment/hubble-ui: container backend: env TLS_TO_RELAY_ENABLED",
    "Deployment/hubble-ui: container backend: volumeMount /var/lib/hubble-ui/certs",
];

/// sample@v2.26.0 runs Cilium 1.15.4 and only the 1.15.9 chart is at hand: the version change
/// blocks, as it must; an operator going ahead accepts these names (`migrate` defaults the chart
/// to the running version, where they do not arise).
const V1_15_4_TO_1_15_9: &[&str] = &[
    "DaemonSet/cilium: container cilium-agent: image",
    "DaemonSet/cilium: initContainer apply-sysctl-overwrites: image",
    "DaemonSet/cilium: initContainer clean-cilium-state: image",
    "DaemonSet/cilium: initContainer install-cni-binaries: image",
    "DaemonSet/cilium: initContainer mount-cgroup: image",
    "Deployment/cilium-operator: container cilium-operator: image",
];

fn sorted(names: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().map(Into::into).collect();
    names.sort();
    names
}

fn blocking(differences: &[WorkloadDifference]) -> Vec<String> {
    sorted(
        differences
            .iter()
            .filter(|d| d.blocks)
            .map(|d| d.name.clone()),
    )
}

/// The texts of the blocking differences, for failure messages.
fn blocking_texts(differences: &[WorkloadDifference]) -> String {
    differences
        .iter()
        .filter(|d| d.blocks)
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_template_case_hands_over_its_workloads_as_reviewed() {
    let Some(upstream) =
        Upstream::for_test("workload::every_template_case_hands_over_its_workloads_as_reviewed")
    else {
        return;
    };
    let mut failures = Vec::new();
    let cases: Vec<Case> = template_cases(&upstream)
        .iter()
        .map(|rendered| translated_case(&upstream, rendered).0)
        .collect();
    for case in &cases {
        let differences = compare_workloads(&case.live, &case.rendered);
        let hubble = case.id.starts_with("hubble-full@");
        let mut want: Vec<&str> = EXPLAINED.to_vec();
        let mut want_blocking: Vec<&str> = Vec::new();
        if hubble {
            want.extend(HUBBLE_EXPLAINED);
            want.extend(HUBBLE_RELAY_TLS_EXPLAINED);
        }
        if case.id == "sample@v2.26.0" {
            want_blocking.extend(V1_15_4_TO_1_15_9);
        }
        let names = sorted(differences.iter().map(|d| d.name.clone()));
        let want = sorted(want.iter().copied());
        if names != want {
            failures.push(format!("{}: {}", case.id, new_and_gone(&names, &want)));
        }
        if blocking(&differences) != sorted(want_blocking.iter().copied()) {
            failures.push(format!(
                "{}: blocking differences:\n{}",
                case.id,
                blocking_texts(&differences)
            ));
        }
        // Every difference says what it changes on a node, and a rule knew it.
        for d in &differences {
            if d.effect.contains('{') || d.effect.starts_with("not classified") {
                failures.push(format!("{}: unexplained: {d}", case.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A kvstore case (Kubespray v2.27's default) and its translated values, for the negative controls.
fn kvstore_case(upstream: &Upstream) -> (Case, Json) {
    let (case, translation) = translated_case(upstream, &rendered_case(upstream, "sample@v2.27.1"));
    assert_eq!(
        case.config.get("identity-allocation-mode"),
        Some("kvstore"),
        "sample@v2.27.1 is no longer a kvstore case"
    );
    (
        case,
        translation.values.to_json().expect("values serialise"),
    )
}

#[test]
fn hubble_relay_tls_is_kept_and_losing_it_blocks() {
    let Some(upstream) =
        Upstream::for_test("workload::hubble_relay_tls_is_kept_and_losing_it_blocks")
    else {
        return;
    };
    let (case, translation) =
        translated_case(&upstream, &rendered_case(&upstream, "hubble-full@v2.27.1"));
    let mut values = translation.values.to_json().expect("values serialise");
    // The values carry the relay's TLS from the inventory, and pin who issues the certificates.
    assert_eq!(values["hubble"]["relay"]["tls"]["server"]["enabled"], true);
    assert_eq!(values["hubble"]["tls"]["auto"]["method"], "helm");
    let origin = translation
        .values
        .provenance_of("hubble.relay.tls.server.enabled")
        .expect("provenance")
        .to_string();
    assert!(origin.contains("cilium_hubble_tls_generate"), "{origin}");
    // The operator is told what to remove after the hand-over.
    assert!(
        translation.warnings.iter().any(|w| w
            .message
            .contains("delete Kubespray's CronJob hubble-generate-certs")),
        "no warning names Kubespray's certgen CronJob: {:#?}",
        translation.warnings
    );
    let differences = compare_workloads(&case.live, &case.rendered);
    assert_eq!(
        blocking(&differences),
        Vec::<String>::new(),
        "{}",
        blocking_texts(&differences)
    );

    // Negative control: the relay without its server TLS, as before the fix.
    values["hubble"]["relay"]["tls"]["server"]["enabled"] = json!(false);
    let chart = chart(&upstream, HANDOVER_CHART);
    let differences = compare_workloads(&case.live, &render(&chart, &values));
    assert_eq!(
        blocking(&differences),
        sorted(HUBBLE_RELAY_TLS_LOST.iter().copied()),
        "{}",
        blocking_texts(&differences)
    );
}

#[test]
fn a_render_without_the_etcd_mounts_blocks() {
    let Some(upstream) = Upstream::for_test("workload::a_render_without_the_etcd_mounts_blocks")
    else {
        return;
    };
    let (case, mut values) = kvstore_case(&upstream);
    let chart = chart(&upstream, HANDOVER_CHART);
    for key in ["extraVolumes", "extraVolumeMounts"] {
        assert!(
            values.as_object_mut().and_then(|v| v.remove(key)).is_some(),
            "values carry {key}"
        );
        assert!(
            values["operator"]
                .as_object_mut()
                .and_then(|v| v.remove(key))
                .is_some(),
            "values carry operator.{key}"
        );
    }
    let differences = compare_workloads(&case.live, &render(&chart, &values));
    let blocks = blocking(&differences);
    for name in [
        "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
        "DaemonSet/cilium: container cilium-agent: volumeMount /var/lib/etcd-config",
        "Deployment/cilium-operator: container cilium-operator: volumeMount /etc/cilium/certs",
        "Deployment/cilium-operator: container cilium-operator: volumeMount /var/lib/etcd-config",
    ] {
        assert!(
            blocks.iter().any(|b| b == name),
            "{name} does not block: {blocks:#?}"
        );
    }
    let certs = differences
        .iter()
        .find(|d| {
            d.name == "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs"
        })
        .expect("reported");
    assert!(certs.effect.contains("/etc/cilium/certs"), "{certs}");
}

#[test]
fn another_host_path_or_no_host_network_blocks() {
    let Some(upstream) =
        Upstream::for_test("workload::another_host_path_or_no_host_network_blocks")
    else {
        return;
    };
    let (case, mut values) = kvstore_case(&upstream);
    let chart = chart(&upstream, HANDOVER_CHART);
    // The CNI binaries elsewhere on the node: every container that mounts them is affected.
    values["cni"]["binPath"] = json!("/usr/libexec/cni");
    let mut rendered = render(&chart, &values);
    let daemonset = rendered
        .iter_mut()
        .find(|o| o["kind"] == "DaemonSet" && o["metadata"]["name"] == "cilium")
        .expect("the chart renders the agent");
    daemonset["spec"]["template"]["spec"]["hostNetwork"] = json!(false);
    let differences = compare_workloads(&case.live, &rendered);
    let blocks = blocking(&differences);
    assert_eq!(
        blocks,
        sorted([
            "DaemonSet/cilium: hostNetwork",
            "DaemonSet/cilium: initContainer apply-sysctl-overwrites: env BIN_PATH",
            "DaemonSet/cilium: initContainer apply-sysctl-overwrites: volumeMount /hostbin",
            "DaemonSet/cilium: initContainer install-cni-binaries: volumeMount /host/opt/cni/bin",
            "DaemonSet/cilium: initContainer mount-cgroup: env BIN_PATH",
            "DaemonSet/cilium: initContainer mount-cgroup: volumeMount /hostbin",
        ]),
        "{}",
        blocking_texts(&differences)
    );
    let moved = differences
        .iter()
        .find(|d| d.name == "DaemonSet/cilium: initContainer install-cni-binaries: volumeMount /host/opt/cni/bin")
        .expect("reported");
    assert!(
        moved.effect.contains("/opt/cni/bin") && moved.effect.contains("/usr/libexec/cni"),
        "{moved}"
    );
}

/// The workload settings of Kubespray's inventory (`k8s-net-cilium.yml`) that its v2.27.1
/// templates put into the DaemonSet and the operator Deployment rather than into cilium-config.
const WORKLOAD_SETTINGS: &str = r#"
# workload settings (cilium-values tests/workload.rs)
cilium_mtu: "1400"
cilium_agent_custom_args:
  - --log-opt=format=json
cilium_operator_custom_args:
  - --log-opt=format=json
cilium_agent_extra_env_vars:
  - name: GODEBUG
    value: "madvdontneed=1"
cilium_agent_extra_volume_mounts:
  - name: hostproc
    mountPath: /hostproc
    readOnly: true
cilium_operator_extra_volumes:
  - name: extra-ca
    hostPath:
      path: /etc/ssl/certs
      type: Directory
cilium_operator_extra_volume_mounts:
  - name: extra-ca
    mountPath: /etc/ssl/certs
    readOnly: true
"#;

/// Appends to `list` (created when missing) at `pointer` of the workload `kind`/`name`.
fn append(objects: &mut [Json], kind: &str, name: &str, pointer: &str, items: &[Json]) {
    let object = objects
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"));
    let list = object
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{kind}/{name} has no {pointer}"))
        .as_array_mut()
        .unwrap_or_else(|| panic!("{kind}/{name} {pointer} is not a list"));
    list.extend(items.iter().cloned());
}

/// sample@v2.27.1 with [`WORKLOAD_SETTINGS`] in its inventory, and its objects as Kubespray
/// v2.27.1's templates render them: each setting appended where the template appends it.
/// Checked by rendering that inventory with Kubespray v2.27.1's own role
/// (`render-kubespray v2.27.1`): its objects differ from sample@v2.27.1's by exactly these items,
/// and its cilium-config not at all. Built here from the shared case because the upstream folder
/// holds no rendered case that sets them.
fn workload_settings_case(upstream: &Upstream) -> (Case, Translation) {
    let rendered = rendered_case(upstream, "sample@v2.27.1");
    let dir = inventory_copy(&rendered);
    let cilium_vars = dir.path().join("group_vars/k8s_cluster/k8s-net-cilium.yml");
    let mut text = std::fs::read_to_string(&cilium_vars)
        .unwrap_or_else(|e| panic!("{}: {e}", cilium_vars.display()));
    text.push_str(WORKLOAD_SETTINGS);
    std::fs::write(&cilium_vars, text).expect("write the inventory");

    let mut live = live_objects(&rendered);
    let agent = "/spec/template/spec/containers/0";
    let operator = "/spec/template/spec/containers/0";
    for (kind, name, pointer, items) in [
        (
            "DaemonSet",
            "cilium",
            format!("{agent}/args"),
            vec![json!("--mtu=1400"), json!("--log-opt=format=json")],
        ),
        (
            "DaemonSet",
            "cilium",
            format!("{agent}/env"),
            vec![json!({"name": "GODEBUG", "value": "madvdontneed=1"})],
        ),
        (
            "DaemonSet",
            "cilium",
            format!("{agent}/volumeMounts"),
            vec![json!({"mountPath": "/hostproc", "name": "hostproc", "readOnly": true})],
        ),
        (
            "Deployment",
            "cilium-operator",
            format!("{operator}/args"),
            vec![json!("--log-opt=format=json")],
        ),
        (
            "Deployment",
            "cilium-operator",
            format!("{operator}/volumeMounts"),
            vec![json!({"mountPath": "/etc/ssl/certs", "name": "extra-ca", "readOnly": true})],
        ),
        (
            "Deployment",
            "cilium-operator",
            "/spec/template/spec/volumes".to_owned(),
            vec![
                json!({"hostPath": {"path": "/etc/ssl/certs", "type": "Directory"}, "name": "extra-ca"}),
            ],
        ),
    ] {
        append(&mut live, kind, name, &pointer, &items);
    }
    translated(
        upstream,
        &rendered,
        &dir,
        "sample@v2.27.1 with workload settings".to_owned(),
        live,
    )
}

/// What the chart adds for these settings: it passes the agent's extra environment and mounts to
/// its init containers too (`clean-cilium-state`, and `config`, which is new as a whole).
const WORKLOAD_SETTINGS_EXPLAINED: &[&str] = &[
    "DaemonSet/cilium: initContainer clean-cilium-state: env GODEBUG",
    "DaemonSet/cilium: initContainer clean-cilium-state: volumeMount /hostproc",
];

#[test]
fn inventory_workload_settings_render_as_kubespray_rendered_them() {
    let Some(upstream) = Upstream::for_test(
        "workload::inventory_workload_settings_render_as_kubespray_rendered_them",
    ) else {
        return;
    };
    let (case, translation) = workload_settings_case(&upstream);
    let values = translation.values.to_json().expect("values serialise");
    // Each setting is carried, with the variable it came from.
    for (path, variable) in [
        ("extraArgs", "cilium_mtu"),
        ("extraArgs", "cilium_agent_custom_args"),
        ("operator.extraArgs", "cilium_operator_custom_args"),
        ("extraEnv", "cilium_agent_extra_env_vars"),
        ("extraVolumeMounts", "cilium_agent_extra_volume_mounts"),
        ("operator.extraVolumes", "cilium_operator_extra_volumes"),
        (
            "operator.extraVolumeMounts",
            "cilium_operator_extra_volume_mounts",
        ),
    ] {
        let origin = translation
            .values
            .provenance_of(path)
            .unwrap_or_else(|| panic!("no provenance for {path}"))
            .to_string();
        assert!(origin.contains(variable), "{path}: {origin}");
    }
    assert_eq!(
        values["extraArgs"],
        json!(["--mtu=1400", "--log-opt=format=json"])
    );
    assert!(
        values.get("MTU").is_none(),
        "the MTU stays a flag: {values:#}"
    );
    // The settings stay out of cilium-config: the config gate still finds no behaviour change.
    let rendered_config = case
        .rendered
        .iter()
        .find(|o| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "cilium-config")
        .and_then(|o| o["data"].as_object())
        .expect("the chart renders cilium-config")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let version = ChartVersion::parse(HANDOVER_CHART).expect("version");
    let changes = changes(&compare_config_across(
        &case.config,
        version,
        &LiveConfig::from_map(rendered_config, "helm template"),
        version,
    ));
    assert_eq!(changes, Vec::<String>::new());

    let differences = compare_workloads(&case.live, &case.rendered);
    let names = sorted(differences.iter().map(|d| d.name.clone()));
    let want = sorted(EXPLAINED.iter().chain(WORKLOAD_SETTINGS_EXPLAINED).copied());
    assert_eq!(names, want, "{}: {}", case.id, new_and_gone(&names, &want));
    assert_eq!(
        blocking(&differences),
        Vec::<String>::new(),
        "{}",
        blocking_texts(&differences)
    );

    // Negative controls: without each value the gate blocks on what the node loses.
    let chart = chart(&upstream, HANDOVER_CHART);
    for (path, blocks) in [
        (
            "/extraArgs",
            "DaemonSet/cilium: container cilium-agent: args",
        ),
        (
            "/operator/extraArgs",
            "Deployment/cilium-operator: container cilium-operator: args",
        ),
        (
            "/extraEnv",
            "DaemonSet/cilium: container cilium-agent: env GODEBUG",
        ),
        (
            "/extraVolumeMounts",
            "DaemonSet/cilium: container cilium-agent: volumeMount /hostproc",
        ),
        (
            "/operator/extraVolumeMounts",
            "Deployment/cilium-operator: container cilium-operator: volumeMount /etc/ssl/certs",
        ),
    ] {
        let mut without = values.clone();
        let (parent, key) = path.rsplit_once('/').expect("a path");
        let list = without
            .pointer_mut(if parent.is_empty() { "" } else { parent })
            .and_then(Json::as_object_mut)
            .and_then(|o| o.get_mut(key))
            .and_then(Json::as_array_mut)
            .unwrap_or_else(|| panic!("values carry {path}"));
        list.pop();
        let differences = compare_workloads(&case.live, &render(&chart, &without));
        assert!(
            blocking(&differences).iter().any(|b| b == blocks),
            "without the last item of {path}, {blocks} does not block:\n{}",
            blocking_texts(&differences)
        );
    }
}
