//! The workload gate: do the chart's agent DaemonSet and Deployments run on the nodes what the
//! live ones run?
//!
//! [`compare_workloads`] takes the live objects and the rendered ones (plain JSON, as the API or
//! `helm template` gives them) and compares the DaemonSet `cilium`, the Deployment
//! `cilium-operator` and, where both sides have them, the Hubble relay and UI Deployments: the
//! containers and init containers by name (image, command, args, env, mounts with what backs them,
//! resources, security context, probes, hooks), the pod's placement and identity (host
//! networking, DNS, priority class, node selection, affinity, tolerations, service account,
//! grace period) and the roll (update strategy, replicas).
//!
//! Both sides are first completed with the API server's defaults (the live objects carry them,
//! a render does not), so only real differences remain. Each difference gets a stable name the
//! operator accepts it by, and a verdict from the table `RULES`: the first rule that matches says
//! what it changes on a node and whether it blocks. The rules explain what the chart does
//! differently on purpose (privileged containers become explicit capabilities, extra init
//! containers, digests, labels and annotations Helm adds) and block what changes a node: a host
//! path or mount the live pods have and the render lacks (the etcd certificates in kvstore mode),
//! host networking, DNS, placement, priority, resources that may no longer fit or that cap the
//! agent lower. A difference no rule knows blocks.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value as Json, json};

/// The workloads compared: kind, name, and whether both sides must have it.
const WORKLOADS: &[(&str, &str, bool)] = &[
    ("DaemonSet", "cilium", true),
    ("Deployment", "cilium-operator", true),
    ("Deployment", "hubble-relay", false),
    ("Deployment", "hubble-ui", false),
];

/// One difference between a live and a rendered workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadDifference {
    /// Stable name, accepted with `--accept-workload-change NAME`
    /// (`DaemonSet/cilium: container cilium-agent: volumeMount /var/lib/etcd-config`).
    pub name: String,
    /// The live value, completed with the API server's defaults (`None`: absent).
    pub live: Option<Json>,
    /// The rendered value, completed likewise (`None`: absent).
    pub rendered: Option<Json>,
    /// What it changes on a node, in one sentence.
    pub effect: String,
    /// Whether it blocks the hand-over unless accepted by name.
    pub blocks: bool,
}

impl fmt::Display for WorkloadDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: live {} vs rendered {} ({}: {})",
            self.name,
            short(self.live.as_ref()),
            short(self.rendered.as_ref()),
            if self.blocks { "BLOCKS" } else { "explained" },
            self.effect
        )
    }
}

/// A value in one line of at most 160 characters.
fn short(value: Option<&Json>) -> String {
    let Some(value) = value else {
        return "(absent)".to_owned();
    };
    let text = value.to_string();
    if text.chars().count() <= 160 {
        text
    } else {
        format!("{}…", text.chars().take(159).collect::<String>())
    }
}

/// Compares the live workloads with the rendered ones. Every difference is returned, the
/// explained ones with `blocks: false`, in a stable order.
pub fn compare_workloads(live: &[Json], rendered: &[Json]) -> Vec<WorkloadDifference> {
    let mut out = Vec::new();
    for (kind, name, required) in WORKLOADS {
        let workload = format!("{kind}/{name}");
        match (find(live, kind, name), find(rendered, kind, name)) {
            (Some(l), Some(r)) => compare_workload(&workload, kind, l, r, &mut out),
            (Some(_), None) if *required => out.push(WorkloadDifference {
                name: workload.clone(),
                live: Some(json!("present")),
                rendered: None,
                effect: format!(
                    "the chart does not render {workload}: it would stop running after the hand-over"
                ),
                blocks: true,
            }),
            (None, Some(_)) if *required => out.push(WorkloadDifference {
                name: workload.clone(),
                live: None,
                rendered: Some(json!("present")),
                effect: format!("{workload} does not run now; Helm creates it"),
                blocks: false,
            }),
            // Hubble's Deployments are compared where both sides have them; the adoption plan
            // reports one the chart leaves alone or creates.
            _ => {}
        }
    }
    out
}

fn find<'a>(objects: &'a [Json], kind: &str, name: &str) -> Option<&'a Json> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

// ---------------------------------------------------------------------------------------------
// The raw differences.

/// Whether a value appeared, disappeared or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Removed,
    Changed,
}

/// One raw difference, before a rule judges it.
#[derive(Debug, Clone)]
struct Raw {
    /// `DaemonSet/cilium`.
    workload: String,
    /// `container NAME` or `initContainer NAME` (`None`: the workload or its pod).
    container: Option<String>,
    /// What differs: `volumeMount`, `env`, `dnsPolicy`, ... (`container`: the container itself).
    aspect: String,
    /// Which one of it (`/var/lib/etcd-config`, `GOMEMLIMIT`), or empty.
    key: String,
    live: Option<Json>,
    rendered: Option<Json>,
}

impl Raw {
    fn change(&self) -> Change {
        match (&self.live, &self.rendered) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            _ => Change::Changed,
        }
    }

    fn name(&self) -> String {
        let mut name = self.workload.clone();
        if let Some(container) = &self.container {
            name.push_str(": ");
            name.push_str(container);
        }
        if self.aspect != "container" {
            name.push_str(": ");
            name.push_str(&self.aspect);
            if !self.key.is_empty() {
                name.push(' ');
                name.push_str(&self.key);
            }
        }
        name
    }

    /// The container's name (without `container `/`initContainer `).
    fn container_name(&self) -> Option<&str> {
        self.container
            .as_deref()
            .and_then(|c| c.split_once(' ').map(|(_, n)| n))
    }

    /// The value on the side that has it (rendered first).
    fn either(&self) -> &Json {
        self.rendered
            .as_ref()
            .or(self.live.as_ref())
            .unwrap_or(&Json::Null)
    }
}

/// The two pods being compared, completed with defaults; rules look at them for context.
struct Ctx<'a> {
    live: &'a Json,
    rendered: &'a Json,
    /// The rendered replica count (1 for a DaemonSet), for the strategy's percentages.
    replicas: u64,
    /// The rendered pod template's annotations.
    rendered_annotations: Map<String, Json>,
}

/// Collects the raw differences of one workload.
struct Raws {
    workload: String,
    /// The container being compared (`None`: the workload or its pod).
    container: Option<String>,
    list: Vec<Raw>,
}

impl Raws {
    fn add(&mut self, aspect: &str, key: &str, live: Option<Json>, rendered: Option<Json>) {
        if live != rendered {
            self.list.push(Raw {
                workload: self.workload.clone(),
                container: self.container.clone(),
                aspect: aspect.to_owned(),
                key: key.to_owned(),
                live,
                rendered,
            });
        }
    }

    /// One difference per key of two maps.
    fn each(&mut self, aspect: &str, live: &Map<String, Json>, rendered: &Map<String, Json>) {
        for key in keys(live, rendered) {
            self.add(
                aspect,
                &key,
                live.get(&key).cloned(),
                rendered.get(&key).cloned(),
            );
        }
    }
}

fn compare_workload(
    workload: &str,
    kind: &str,
    live: &Json,
    rendered: &Json,
    out: &mut Vec<WorkloadDifference>,
) {
    let mut raws = Raws {
        workload: workload.to_owned(),
        container: None,
        list: Vec::new(),
    };

    // The roll.
    let (live_spec, rendered_spec) = (&live["spec"], &rendered["spec"]);
    if kind == "DaemonSet" {
        raws.add(
            "updateStrategy",
            "",
            Some(daemonset_strategy(&live_spec["updateStrategy"])),
            Some(daemonset_strategy(&rendered_spec["updateStrategy"])),
        );
    } else {
        let replicas = |spec: &Json| spec.get("replicas").cloned().unwrap_or(json!(1));
        raws.add(
            "replicas",
            "",
            Some(replicas(live_spec)),
            Some(replicas(rendered_spec)),
        );
        raws.add(
            "strategy",
            "",
            Some(deployment_strategy(&live_spec["strategy"])),
            Some(deployment_strategy(&rendered_spec["strategy"])),
        );
    }
    let min_ready = |spec: &Json| spec.get("minReadySeconds").cloned().unwrap_or(json!(0));
    raws.add(
        "minReadySeconds",
        "",
        Some(min_ready(live_spec)),
        Some(min_ready(rendered_spec)),
    );

    // The pod template's labels and annotations.
    let (lt, rt) = (&live_spec["template"], &rendered_spec["template"]);
    for (field, aspect) in [("labels", "label"), ("annotations", "annotation")] {
        raws.each(
            aspect,
            &object(&lt["metadata"][field]),
            &object(&rt["metadata"][field]),
        );
    }

    // The pod.
    let live_pod = pod_with_defaults(&lt["spec"]);
    let rendered_pod = pod_with_defaults(&rt["spec"]);
    let (lp, rp) = (object(&live_pod), object(&rendered_pod));
    for key in keys(&lp, &rp) {
        match key.as_str() {
            // Containers below; volumes through the mounts that use them.
            "containers" | "initContainers" | "volumes" => {}
            "nodeSelector" => raws.each(
                "nodeSelector",
                &object(&live_pod[&key]),
                &object(&rendered_pod[&key]),
            ),
            _ => raws.add(&key, "", lp.get(&key).cloned(), rp.get(&key).cloned()),
        }
    }

    // The containers, by name; the init containers also by order.
    for (field, scope) in [
        ("initContainers", "initContainer"),
        ("containers", "container"),
    ] {
        let l = containers(&live_pod, field);
        let r = containers(&rendered_pod, field);
        let mut names: Vec<&String> = l.iter().map(|(n, _)| n).collect();
        for (name, _) in &r {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for name in names {
            raws.container = Some(format!("{scope} {name}"));
            let lc = l.iter().find(|(n, _)| n == name).map(|(_, c)| c);
            let rc = r.iter().find(|(n, _)| n == name).map(|(_, c)| c);
            match (lc, rc) {
                (Some(lc), Some(rc)) => {
                    compare_container(&mut raws, lc, &live_pod, rc, &rendered_pod);
                }
                (lc, rc) => raws.add(
                    "container",
                    "",
                    lc.map(|c| c["image"].clone()),
                    rc.map(|c| c["image"].clone()),
                ),
            }
        }
        raws.container = None;
        if field == "initContainers" {
            let common = |a: &[(String, Json)], b: &[(String, Json)]| -> Vec<String> {
                a.iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| b.iter().any(|(m, _)| m == n))
                    .collect()
            };
            raws.add(
                "initContainer order",
                "",
                Some(json!(common(&l, &r))),
                Some(json!(common(&r, &l))),
            );
        }
    }

    let ctx = Ctx {
        live: &live_pod,
        rendered: &rendered_pod,
        replicas: rendered_spec["replicas"].as_u64().unwrap_or(1),
        rendered_annotations: object(&rt["metadata"]["annotations"]),
    };
    out.extend(raws.list.iter().map(|raw| judge(raw, &ctx)));
}

/// The differences of one container present on both sides.
fn compare_container(
    raws: &mut Raws,
    live: &Json,
    live_pod: &Json,
    rendered: &Json,
    rendered_pod: &Json,
) {
    let (l, r) = (
        container_with_defaults(live),
        container_with_defaults(rendered),
    );
    let (lm, rm) = (object(&l), object(&r));
    for field in keys(&lm, &rm) {
        match field.as_str() {
            "name" => {}
            "env" => raws.each("env", &named(&l["env"], "name"), &named(&r["env"], "name")),
            "volumeMounts" => {
                raws.each(
                    "volumeMount",
                    &mounts(&l, live_pod),
                    &mounts(&r, rendered_pod),
                );
            }
            "resources" => {
                let (lr, rr) = (resources(&l["resources"]), resources(&r["resources"]));
                for key in keys(&lr, &rr) {
                    let (a, b) = (lr.get(&key).cloned(), rr.get(&key).cloned());
                    // `1000m` is `1`: compare amounts, not spellings.
                    let same = matches!((&a, &b), (Some(a), Some(b)) if quantity(a).is_some() && quantity(a) == quantity(b));
                    if !same {
                        raws.add("resources", &key, a, b);
                    }
                }
            }
            "ports" => raws.each("port", &ports(&l["ports"]), &ports(&r["ports"])),
            "lifecycle" => {
                for hook in ["postStart", "preStop"] {
                    let get = |c: &Json| c["lifecycle"].get(hook).cloned();
                    raws.add(hook, "", get(&l), get(&r));
                }
            }
            _ => raws.add(&field, "", lm.get(&field).cloned(), rm.get(&field).cloned()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Defaults and normal forms.

fn object(value: &Json) -> Map<String, Json> {
    value.as_object().cloned().unwrap_or_default()
}

/// The keys of both maps, each once, in order.
fn keys(a: &Map<String, Json>, b: &Map<String, Json>) -> BTreeSet<String> {
    a.keys().chain(b.keys()).cloned().collect()
}

/// A list of objects keyed by `field` (`env` by name).
fn named(list: &Json, field: &str) -> Map<String, Json> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let key = item[field].as_str()?.to_owned();
            let mut rest = object(item);
            rest.remove(field);
            Some((key, Json::Object(rest)))
        })
        .collect()
}

fn containers(pod: &Json, field: &str) -> Vec<(String, Json)> {
    pod[field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c.clone())))
        .collect()
}

/// Sets `key` to `default` when absent (or null).
fn default(map: &mut Map<String, Json>, key: &str, default: Json) {
    if map.get(key).is_none_or(Json::is_null) {
        map.insert(key.to_owned(), default);
    }
}

/// The pod spec as the API server stores it: its defaults filled in, the fields admission
/// derives (priority, the deprecated `serviceAccount`) left out, selectors and tolerations in one
/// spelling.
fn pod_with_defaults(spec: &Json) -> Json {
    let mut pod = object(spec);
    if let Some(account) = pod.remove("serviceAccount") {
        default(&mut pod, "serviceAccountName", account);
    }
    for derived in ["priority", "preemptionPolicy", "nodeName"] {
        pod.remove(derived);
    }
    for (key, value) in [
        ("dnsPolicy", json!("ClusterFirst")),
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
        ("hostNetwork", json!(false)),
        ("hostPID", json!(false)),
        ("hostIPC", json!(false)),
        // Kubernetes' default: the node's user namespace (chart 1.20 writes it out).
        ("hostUsers", json!(true)),
        ("enableServiceLinks", json!(true)),
        ("automountServiceAccountToken", json!(true)),
        ("serviceAccountName", json!("default")),
        ("priorityClassName", json!("")),
        ("nodeSelector", json!({})),
        ("affinity", json!({})),
        ("tolerations", json!([])),
    ] {
        default(&mut pod, key, value);
    }
    let tolerations: BTreeSet<String> = pod["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut t = object(t);
            default(&mut t, "operator", json!("Equal"));
            t.retain(|_, v| v != "" && !v.is_null());
            Json::Object(t).to_string()
        })
        .collect();
    pod.insert(
        "tolerations".to_owned(),
        Json::Array(
            tolerations
                .iter()
                .filter_map(|t| serde_json::from_str(t).ok())
                .collect(),
        ),
    );
    let mut affinity = pod["affinity"].clone();
    normalise_selectors(&mut affinity);
    pod.insert("affinity".to_owned(), affinity);
    Json::Object(pod)
}

/// Label selectors in one spelling: `matchLabels` as `In` expressions, sorted.
fn normalise_selectors(value: &mut Json) {
    match value {
        Json::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "labelSelector" || key == "namespaceSelector" {
                    let mut expressions: Vec<Json> = v["matchExpressions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for (label, val) in object(&v["matchLabels"]) {
                        expressions.push(json!({"key": label, "operator": "In", "values": [val]}));
                    }
                    let mut sorted: Vec<String> = expressions.iter().map(Json::to_string).collect();
                    sorted.sort();
                    sorted.dedup();
                    *v = json!({"matchExpressions": sorted.iter().filter_map(|e| serde_json::from_str::<Json>(e).ok()).collect::<Vec<_>>()});
                } else {
                    normalise_selectors(v);
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalise_selectors),
        _ => {}
    }
}

fn container_with_defaults(container: &Json) -> Json {
    let mut c = object(container);
    let image = c
        .get("image")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let (_, tag, digest) = split_image(&image);
    let pull = if digest.is_none() && matches!(tag, None | Some("latest")) {
        "Always"
    } else {
        "IfNotPresent"
    };
    for (key, value) in [
        ("imagePullPolicy", json!(pull)),
        ("terminationMessagePath", json!("/dev/termination-log")),
        ("terminationMessagePolicy", json!("File")),
        ("securityContext", json!({})),
        ("command", json!([])),
        ("args", json!([])),
        ("env", json!([])),
        ("envFrom", json!([])),
        ("volumeMounts", json!([])),
        ("ports", json!([])),
        ("resources", json!({})),
    ] {
        default(&mut c, key, value);
    }
    // Empty parts of the security context mean nothing.
    if let Some(Json::Object(sc)) = c.get_mut("securityContext") {
        sc.retain(|_, v| !v.is_null() && v != &json!({}));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(Json::Object(p)) = c.get_mut(probe) {
            for (key, value) in [
                ("timeoutSeconds", json!(1)),
                ("periodSeconds", json!(10)),
                ("successThreshold", json!(1)),
                ("failureThreshold", json!(3)),
                ("initialDelaySeconds", json!(0)),
            ] {
                default(p, key, value);
            }
            if let Some(Json::Object(get)) = p.get_mut("httpGet") {
                default(get, "scheme", json!("HTTP"));
            }
        }
    }
    if let Some(Json::Array(env)) = c.get_mut("env") {
        for var in env.iter_mut() {
            if let Some(Json::Object(from)) = var.get_mut("valueFrom") {
                if let Some(Json::Object(r)) = from.get_mut("fieldRef") {
                    default(r, "apiVersion", json!("v1"));
                }
                for source in ["configMapKeyRef", "secretKeyRef"] {
                    if let Some(Json::Object(r)) = from.get_mut(source) {
                        default(r, "optional", json!(false));
                    }
                }
                if let Some(Json::Object(r)) = from.get_mut("resourceFieldRef") {
                    // "0" is how the API server stores the default divisor, which means 1.
                    if r.get("divisor").is_none_or(|d| d == "0" || d == 0) {
                        r.insert("divisor".to_owned(), json!("1"));
                    }
                }
            } else if var.get("value").is_none()
                && let Some(var) = var.as_object_mut()
            {
                var.insert("value".to_owned(), json!(""));
            }
        }
    }
    Json::Object(c)
}

/// The volume behind each mount, keyed by mount path.
fn mounts(container: &Json, pod: &Json) -> Map<String, Json> {
    let volumes = named(&pod["volumes"], "name");
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let path = m["mountPath"].as_str()?.to_owned();
            let name = m["name"].as_str().unwrap_or_default();
            let mut value = Map::new();
            let volume = volumes
                .get(name)
                .map_or_else(|| json!({"missing": name}), volume_with_defaults);
            // The kubelet mounts these read-only whatever the mount says.
            let always_read_only = ["configMap", "secret", "projected", "downwardAPI"]
                .iter()
                .any(|kind| volume.get(kind).is_some());
            value.insert("volume".to_owned(), volume);
            value.insert(
                "readOnly".to_owned(),
                if always_read_only {
                    json!(true)
                } else {
                    m.get("readOnly").cloned().unwrap_or(json!(false))
                },
            );
            value.insert(
                "mountPropagation".to_owned(),
                m.get("mountPropagation").cloned().unwrap_or(json!("None")),
            );
            for extra in ["subPath", "subPathExpr", "recursiveReadOnly"] {
                if let Some(v) = m.get(extra) {
                    value.insert(extra.to_owned(), v.clone());
                }
            }
            Some((path, Json::Object(value)))
        })
        .collect()
}

fn volume_with_defaults(volume: &Json) -> Json {
    let mut v = object(volume);
    // The order of `items` means nothing; each names its own file.
    sort_items(&mut v);
    for (source, mode) in [
        ("configMap", true),
        ("secret", true),
        ("projected", true),
        ("hostPath", false),
    ] {
        if let Some(Json::Object(s)) = v.get_mut(source) {
            if mode {
                default(s, "defaultMode", json!(420));
            } else {
                default(s, "type", json!(""));
            }
            if source != "projected" && source != "hostPath" {
                default(s, "optional", json!(false));
            }
        }
    }
    Json::Object(v)
}

fn sort_items(map: &mut Map<String, Json>) {
    for (key, value) in map.iter_mut() {
        match value {
            Json::Array(items) if key == "items" => {
                items.sort_by_key(|item| item["key"].as_str().unwrap_or_default().to_owned());
            }
            Json::Array(items) => {
                for item in items.iter_mut().filter_map(Json::as_object_mut) {
                    sort_items(item);
                }
            }
            Json::Object(inner) => sort_items(inner),
            _ => {}
        }
    }
}

/// `requests.cpu`, `limits.memory`, ... of a container's resources.
fn resources(value: &Json) -> Map<String, Json> {
    let mut out = Map::new();
    for part in ["requests", "limits"] {
        for (name, q) in object(&value[part]) {
            out.insert(format!("{part}.{name}"), q);
        }
    }
    out
}

/// Ports keyed `4244/TCP`.
fn ports(value: &Json) -> Map<String, Json> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = p["containerPort"].as_u64()?;
            let protocol = p["protocol"].as_str().unwrap_or("TCP");
            let mut rest = object(p);
            rest.remove("containerPort");
            rest.remove("protocol");
            Some((format!("{port}/{protocol}"), Json::Object(rest)))
        })
        .collect()
}

/// A rolling update strategy with the API server's defaults filled in (`maxUnavailable`,
/// `maxSurge`: a DaemonSet's are 1 and 0, a Deployment's 25% and 25%).
fn rolling_strategy(strategy: &Json, max_unavailable: Json, max_surge: Json) -> Json {
    let kind = strategy["type"].as_str().unwrap_or("RollingUpdate");
    if kind != "RollingUpdate" {
        return json!({ "type": kind });
    }
    let rolling = &strategy["rollingUpdate"];
    json!({
        "type": kind,
        "maxUnavailable": rolling.get("maxUnavailable").cloned().unwrap_or(max_unavailable),
        "maxSurge": rolling.get("maxSurge").cloned().unwrap_or(max_surge),
    })
}

fn daemonset_strategy(strategy: &Json) -> Json {
    rolling_strategy(strategy, json!(1), json!(0))
}

fn deployment_strategy(strategy: &Json) -> Json {
    rolling_strategy(strategy, json!("25%"), json!("25%"))
}

/// An int-or-percent of `replicas`, rounded as the Deployment controller rounds it.
fn scaled(value: &Json, replicas: u64, round_up: bool) -> Option<u64> {
    if let Some(n) = value.as_u64() {
        return Some(n);
    }
    let percent: u64 = value.as_str()?.strip_suffix('%')?.parse().ok()?;
    let exact = percent * replicas;
    Some(if round_up {
        exact.div_ceil(100)
    } else {
        exact / 100
    })
}

/// `repository`, tag and digest of an image reference.
fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    // A tag follows the last colon after the last slash (a registry port precedes a slash).
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

/// A Kubernetes quantity in base units (`100m` is 0.1, `64Mi` is 67108864).
fn quantity(value: &Json) -> Option<f64> {
    if let Some(n) = value.as_f64() {
        return Some(n);
    }
    let text = value.as_str()?.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0_f64.powi(2),
        "Gi" => 1024.0_f64.powi(3),
        "Ti" => 1024.0_f64.powi(4),
        "Pi" => 1024.0_f64.powi(5),
        "Ei" => 1024.0_f64.powi(6),
        exponent => 10f64.powi(exponent.strip_prefix(['e', 'E'])?.parse().ok()?),
    };
    Some(number * factor)
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// A rule: which raw differences it matches, and its verdict. In the effect, `{key}`, `{live}`,
/// `{rendered}` and `{source}` (what backs a mount) are filled in.
#[derive(Clone, Copy)]
struct Rule {
    /// The workload (`None`: any; `Deployment/hubble-*` matches by prefix).
    workload: Option<&'static str>,
    /// The container's name (`None`: any, or none).
    container: Option<&'static str>,
    /// Only for the pod itself, not a container.
    pod_only: bool,
    /// The aspect.
    aspect: &'static str,
    /// The key (`None`: any; a trailing `*` matches by prefix).
    key: Option<&'static str>,
    /// Added, removed or changed (`None`: any).
    change: Option<Change>,
    /// A further condition.
    when: Option<fn(&Raw, &Ctx<'_>) -> bool>,
    /// Whether it blocks.
    blocks: bool,
    /// What it changes on a node, in one sentence.
    effect: &'static str,
}

const fn explain(aspect: &'static str, effect: &'static str) -> Rule {
    Rule {
        workload: None,
        container: None,
        pod_only: false,
        aspect,
        key: None,
        change: None,
        when: None,
        blocks: false,
        effect,
    }
}

const fn block(aspect: &'static str, effect: &'static str) -> Rule {
    Rule {
        blocks: true,
        ..explain(aspect, effect)
    }
}

impl Rule {
    const fn on(self, workload: &'static str) -> Rule {
        Rule {
            workload: Some(workload),
            ..self
        }
    }
    const fn container(self, name: &'static str) -> Rule {
        Rule {
            container: Some(name),
            ..self
        }
    }
    const fn pod(self) -> Rule {
        Rule {
            pod_only: true,
            ..self
        }
    }
    const fn key(self, key: &'static str) -> Rule {
        Rule {
            key: Some(key),
            ..self
        }
    }
    const fn change(self, change: Change) -> Rule {
        Rule {
            change: Some(change),
            ..self
        }
    }
    const fn when(self, when: fn(&Raw, &Ctx<'_>) -> bool) -> Rule {
        Rule {
            when: Some(when),
            ..self
        }
    }

    fn matches(&self, raw: &Raw, ctx: &Ctx<'_>) -> bool {
        let glob = |pattern: &str, text: &str| match pattern.strip_suffix('*') {
            Some(prefix) => text.starts_with(prefix),
            None => pattern == text,
        };
        self.aspect == raw.aspect
            && self.workload.is_none_or(|w| glob(w, &raw.workload))
            && self
                .container
                .is_none_or(|c| raw.container_name() == Some(c))
            && (!self.pod_only || raw.container.is_none())
            && self.key.is_none_or(|k| glob(k, &raw.key))
            && self.change.is_none_or(|c| c == raw.change())
            && self.when.is_none_or(|when| when(raw, ctx))
    }
}

const AGENT: &str = "DaemonSet/cilium";
const OPERATOR: &str = "Deployment/cilium-operator";
const HUBBLE: &str = "Deployment/hubble-*";

/// The verdicts, first match wins; a difference no rule matches blocks.
const RULES: &[Rule] = &[
    // Labels and annotations of the pods.
    explain("label", "a label Helm adds to the pods; the selectors keep matching and nothing on the node reads it").change(Change::Added),
    block("label", "Services, network policies and monitors that select the pods by {key} no longer find them"),
    explain("annotation", "AppArmor leaves the container unconfined, as it leaves the live privileged container")
        .key("container.apparmor.security.beta.kubernetes.io/*")
        .when(rendered_unconfined),
    explain("annotation", "AppArmor leaves the container unconfined, now through the pod's appArmorProfile field")
        .key("container.apparmor.security.beta.kubernetes.io/*")
        .when(unconfined_as_field),
    block("annotation", "AppArmor confines the container with another profile than the live pods run with")
        .key("container.apparmor.security.beta.kubernetes.io/*"),
    block("annotation", "seccomp filters the container's system calls differently").key("seccomp.security.alpha.kubernetes.io/*"),
    explain("annotation", "a pre-1.6 scheduler annotation no Kubernetes release reads any more; the tolerations are compared on their own")
        .key("scheduler.alpha.kubernetes.io/tolerations"),
    explain("annotation", "an annotation for the tools that read it (rollout restarts, monitoring discovery); the kubelet and Cilium ignore it"),
    // The roll.
    block("replicas", "the number of {workload} pods changes from {live} to {rendered}"),
    explain("strategy", "the same number of pods surges and goes unavailable during a roll, written differently").when(same_effective_strategy),
    explain("strategy", "Hubble's relay or UI may be briefly unavailable during a roll; nothing on a node changes").on(HUBBLE),
    block("strategy", "how many pods are replaced at once during this hand-over's roll and every later one"),
    block("updateStrategy", "how many agents restart at once during this hand-over's roll and every later one; a node whose agent restarts cannot set up new pods meanwhile"),
    block("minReadySeconds", "how long a new pod must be ready before the roll moves on to the next node"),
    // The pod.
    block("hostNetwork", "the pods move between the node's network namespace and a pod network of their own"),
    block("hostPID", "whether the pods see the node's processes"),
    block("hostIPC", "whether the pods share the node's IPC namespace"),
    block("hostUsers", "whether the pods run in the node's user namespace or one of their own, which maps their root to an unprivileged user on the node"),
    block("dnsPolicy", "which resolver the pods ask: ClusterFirstWithHostNet resolves through the cluster DNS, ClusterFirst on the host network through the node's /etc/resolv.conf"),
    block("dnsConfig", "the resolver settings of the pods"),
    explain("priorityClassName", "both are critical priorities, which the kubelet never evicts for node pressure; only a node-critical pod may now preempt an operator pod on a full node")
        .on(OPERATOR)
        .when(critical_to_critical),
    block("priorityClassName", "the order in which the kubelet evicts the pods under node pressure, and which pods the scheduler may preempt for them"),
    explain("terminationGracePeriodSeconds", "how long Hubble's relay or UI has to close its connections when it stops; nothing on a node changes").on(HUBBLE),
    block("terminationGracePeriodSeconds", "how long a pod has to shut down cleanly before the kubelet kills it"),
    explain("nodeSelector", "every kubelet labels its node kubernetes.io/os=linux: the pods still run on every Linux node")
        .key("kubernetes.io/os")
        .change(Change::Added)
        .when(rendered_is_linux),
    block("nodeSelector", "the pods run only on nodes labelled {key}={rendered}, or now also on nodes without it"),
    block("affinity", "which nodes the pods may run on, and next to which pods"),
    block("tolerations", "the pods stop or start running on nodes with these taints"),
    explain("automountServiceAccountToken", "hubble-relay does not call the Kubernetes API: it reaches the agents through the hubble-peer Service")
        .on("Deployment/hubble-relay")
        .when(rendered_false),
    block("automountServiceAccountToken", "whether the pods get a Kubernetes API token"),
    block("serviceAccountName", "the pods act with another ServiceAccount's permissions"),
    explain("securityContext", "Hubble's relay and UI run as an unprivileged user; they only read mounted Secrets and serve gRPC or HTTP")
        .on(HUBBLE),
    explain("securityContext", "AppArmor or seccomp leave the agent unconfined, as they leave the live privileged agent")
        .pod()
        .when(only_unconfined_profiles),
    block("securityContext", "the user, groups and kernel confinement the pods run with").pod(),
    block("initContainer order", "the init containers run in another order each time a pod starts on a node"),
    // Containers that come or go.
    explain("container", "the chart's init container writes the agent's configuration from cilium-config into the pod before the agent starts; the live agent reads the ConfigMap directly: the same configuration")
        .on(AGENT)
        .container("config")
        .change(Change::Added),
    explain("container", "the chart's init container mounts the BPF filesystem at /sys/fs/bpf on the node when it is not mounted yet, as the live privileged agent could itself")
        .on(AGENT)
        .container("mount-bpf-fs")
        .change(Change::Added),
    block("container", "another program runs in the pods on every node").change(Change::Added),
    block("container", "a program the live pods run no longer runs"),
    // Images.
    explain("image", "the same image, pulled by its digest").when(same_repository_and_tag),
    explain("image", "the chart runs the operator build for the cluster's IPAM mode (generic for cluster-pool and kubernetes IPAM); the live all-in-one operator holds the same code")
        .on(OPERATOR)
        .when(operator_build),
    explain("image", "the chart's Hubble UI version: a web UI that reads flows through hubble-relay; nothing on a node changes")
        .on("Deployment/hubble-ui")
        .when(same_repository),
    block("image", "the container runs another build of the code, or pulls it from another registry"),
    explain("imagePullPolicy", "when the kubelet pulls the image, not what runs"),
    explain("command", "the operator build's own binary name (see its image)").on(OPERATOR).when(operator_build),
    explain("command", "the config step gets a flag with no value, which is the flag's own default (1.20 writes `--k8s-api-server-urls=` when no URL is set): it reads the configuration as before")
        .on(AGENT)
        .container("config")
        .when(only_empty_flags_added),
    block("command", "the container runs another program"),
    block("args", "the program's command-line flags change"),
    // Environment.
    explain("env", "the Go runtime collects garbage harder as the container nears its memory limit; the limit itself is compared under resources")
        .key("GOMEMLIMIT")
        .change(Change::Added),
    explain("env", "the container reads an optional cilium-config key, which the config gate compares").change(Change::Added).when(optional_config_key),
    explain("env", "AWS credentials from the optional Secret cilium-aws, read only by the AWS ENI IPAM build of the operator, which this cluster does not run")
        .on(OPERATOR)
        .key("AWS_*")
        .change(Change::Removed)
        .when(optional_aws_secret),
    explain("env", "the Hubble UI still connects to the relay with TLS; it verifies the relay's certificate under the name the chart issues that certificate for")
        .on("Deployment/hubble-ui")
        .key("TLS_RELAY_SERVER_NAME")
        .change(Change::Changed)
        .when(ui_keeps_relay_tls),
    explain("env", "the Hubble UI still connects to the relay with TLS; it reads this certificate file from the chart's certificate mount")
        .on("Deployment/hubble-ui")
        .key("TLS_RELAY_*")
        .change(Change::Changed)
        .when(ui_tls_file_mounted),
    explain("env", "the chart passes the agent's extra environment (extraEnv) to its init containers too; the live agent container has the same variable")
        .on(AGENT)
        .change(Change::Added)
        .when(same_env_in_live_agent),
    block("env", "the container's environment variable {key} changes"),
    block("envFrom", "the container's environment changes"),
    // Mounts.
    explain("volumeMount", "the live agent reads cilium-config from this ConfigMap mount; the chart's config init container writes the same configuration into the pod's /tmp")
        .on(AGENT)
        .key("/tmp/cilium/config-map")
        .change(Change::Removed)
        .when(rendered_has_config_init),
    explain("volumeMount", "hubble-relay reaches the agents through the hubble-peer Service, not through the node's socket directory")
        .on("Deployment/hubble-relay")
        .key("/var/run/cilium")
        .change(Change::Removed),
    explain("volumeMount", "the chart's mount-bpf-fs init container mounts the BPF filesystem on the node; the agent sees it (HostToContainer) instead of mounting it itself")
        .on(AGENT)
        .key("/sys/fs/bpf")
        .change(Change::Changed)
        .when(bpf_mounted_by_init),
    explain("volumeMount", "the unprivileged agent writes its sysctls through {source} (the live privileged agent wrote them directly)")
        .on(AGENT)
        .key("/host/proc/sys/*")
        .change(Change::Added)
        .when(host_proc_sys),
    explain("volumeMount", "mounts {source} into the container; nothing on the node changes").change(Change::Added).when(not_host_path),
    explain("volumeMount", "{source}, which the live pods mount already, is also mounted into this container")
        .change(Change::Added)
        .when(host_path_mounted_live),
    explain("volumeMount", "the kubelet checks (or creates) the host path before it starts the pod; the live pods mount it, so it exists on every node")
        .change(Change::Changed)
        .when(only_host_path_type),
    explain("volumeMount", "file permissions of the mounted files or optional extra sources; the container reads the same data")
        .change(Change::Changed)
        .when(same_data),
    explain("volumeMount", "Hubble's relay or UI reads the same kinds of certificate files (CA, certificate, key), now from the Secrets the chart issues ({source}); TLS stays on and nothing on a node changes")
        .on(HUBBLE)
        .change(Change::Changed)
        .when(chart_hubble_certificates),
    block("volumeMount", "the container no longer sees {source} at {key}").change(Change::Removed),
    block("volumeMount", "the container gets {source} at {key}").change(Change::Added),
    block("volumeMount", "what the container sees at {key} changes: {source}"),
    // Resources.
    block("resources", "the scheduler must fit {rendered} of {key} (was {live}) on every node: a full node leaves the new pod pending")
        .when(request_grows),
    explain("resources", "the pod reserves less ({key}: {live} → {rendered}) on the node").when(is_request),
    block("resources", "the kernel caps the container's {key} at {rendered} (was {live}): it throttles or kills it sooner").when(limit_shrinks),
    explain("resources", "the container may use more ({key}: {live} → {rendered}) before the kernel throttles or kills it"),
    // Privileges.
    explain("securityContext", "privileged becomes the chart's explicit capabilities; without CAP_DAC_OVERRIDE the init containers need a root-owned /opt/cni/bin, which the node gate checks")
        .on(AGENT)
        .when(privileged_to_capabilities),
    explain("securityContext", "Hubble's relay and UI run as an unprivileged user; they only read mounted Secrets and serve gRPC or HTTP")
        .on(HUBBLE),
    block("securityContext", "the privileges and user the container runs with"),
    // Ports, probes, hooks.
    explain("port", "a port declaration: the process listens where its configuration says (the config gate compares it); with host networking the scheduler also reserves it on the node")
        .when(host_network_or_no_host_port),
    block("port", "the node forwards host port {key} to the pod"),
    block("livenessProbe", "the kubelet no longer restarts a hung container").change(Change::Removed),
    block("readinessProbe", "the roll no longer waits for each pod to be ready before the next one").change(Change::Removed),
    block("startupProbe", "the kubelet checks liveness from the start, and may restart a slowly starting container").change(Change::Removed),
    explain("livenessProbe", "when and how the kubelet checks the container's health; not what it does"),
    explain("readinessProbe", "when and how the kubelet checks the container's health; not what it does"),
    explain("startupProbe", "when and how the kubelet checks the container's health; not what it does"),
    explain("postStart", "removes the iptables chains of the AWS VPC CNI when present; Kubespray's nodes have none")
        .change(Change::Added)
        .when(aws_snat_cleanup),
    block("postStart", "a command the kubelet runs in the container when it starts changes"),
    block("preStop", "a command the kubelet runs in the container before it stops changes"),
    explain("terminationMessagePolicy", "where the kubelet reads a failed container's last message"),
    explain("terminationMessagePath", "where the kubelet reads a failed container's last message"),
];

/// What no rule knows.
const UNKNOWN: &str = "not classified by this gate: check what it changes on the node";

fn judge(raw: &Raw, ctx: &Ctx<'_>) -> WorkloadDifference {
    let rule = RULES.iter().find(|r| r.matches(raw, ctx));
    let (blocks, effect) = rule.map_or((true, UNKNOWN), |r| (r.blocks, r.effect));
    let effect = effect
        .replace("{workload}", &raw.workload)
        .replace("{key}", &raw.key)
        .replace("{live}", &short(raw.live.as_ref()))
        .replace("{rendered}", &short(raw.rendered.as_ref()))
        .replace("{source}", &source(raw));
    WorkloadDifference {
        name: raw.name(),
        live: raw.live.clone(),
        rendered: raw.rendered.clone(),
        effect,
        blocks,
    }
}

/// What backs a mount, in words (the rendered side's when both have one).
fn source(raw: &Raw) -> String {
    let describe = |mount: &Json| {
        let v = &mount["volume"];
        if let Some(path) = v["hostPath"]["path"].as_str() {
            format!("the node's {path}")
        } else if let Some(name) = v["configMap"]["name"].as_str() {
            format!("ConfigMap {name}")
        } else if let Some(name) = v["secret"]["secretName"].as_str() {
            format!("Secret {name}")
        } else if v.get("emptyDir").is_some() {
            "a scratch directory of the pod".to_owned()
        } else if let Some(sources) = v["projected"]["sources"].as_array() {
            let names: Vec<String> = sources
                .iter()
                .filter_map(|s| {
                    s.as_object()?
                        .iter()
                        .find_map(|(kind, s)| Some(format!("{kind} {}", s["name"].as_str()?)))
                })
                .collect();
            format!("projected {}", names.join(", "))
        } else {
            "a volume".to_owned()
        }
    };
    match (&raw.live, &raw.rendered) {
        (Some(l), Some(r)) if raw.aspect == "volumeMount" => {
            let (a, b) = (describe(l), describe(r));
            if a == b {
                a
            } else {
                format!("{a} becomes {b}")
            }
        }
        _ if raw.aspect == "volumeMount" => describe(raw.either()),
        _ => String::new(),
    }
}

// The conditions of the rules.

fn critical_to_critical(raw: &Raw, _: &Ctx<'_>) -> bool {
    let critical = |v: &Option<Json>| {
        v.as_ref()
            .is_some_and(|v| v == "system-node-critical" || v == "system-cluster-critical")
    };
    critical(&raw.live) && critical(&raw.rendered)
}

fn rendered_unconfined(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.rendered == Some(json!("unconfined"))
}

fn rendered_is_linux(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.rendered == Some(json!("linux"))
}

fn rendered_false(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.rendered == Some(json!(false))
}

fn same_effective_strategy(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let replicas = ctx.replicas;
    l["type"] == r["type"]
        && [("maxSurge", true), ("maxUnavailable", false)]
            .iter()
            .all(|(field, up)| {
                let a = scaled(&l[field], replicas, *up);
                a.is_some() && a == scaled(&r[field], replicas, *up)
            })
}

/// Only the AppArmor or seccomp profile differs, and it stays unconfined: added as `Unconfined`,
/// or an `Unconfined` AppArmor profile that the render writes as per-container annotations (the
/// charts do below Kubernetes 1.30).
fn only_unconfined_profiles(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let (l, r) = (
        object(raw.live.as_ref().unwrap_or(&Json::Null)),
        object(raw.rendered.as_ref().unwrap_or(&Json::Null)),
    );
    let unconfined = |p: Option<&Json>| p.is_some_and(|p| p["type"] == "Unconfined");
    let annotated = ctx.rendered_annotations.iter().any(|(k, v)| {
        k.starts_with("container.apparmor.security.beta.kubernetes.io/") && v == "unconfined"
    });
    keys(&l, &r).iter().all(|key| {
        l.get(key) == r.get(key)
            || (["appArmorProfile", "seccompProfile"].contains(&key.as_str())
                && l.get(key).is_none()
                && unconfined(r.get(key)))
            || (key == "appArmorProfile"
                && unconfined(l.get(key))
                && r.get(key).is_none()
                && annotated)
    })
}

/// A live `unconfined` AppArmor annotation that the render writes as the pod's `Unconfined`
/// profile (the charts do from Kubernetes 1.30).
fn unconfined_as_field(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    raw.live == Some(json!("unconfined"))
        && raw.rendered.is_none()
        && ctx.rendered["securityContext"]["appArmorProfile"]["type"] == "Unconfined"
}

type Image<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// The live and the rendered image, split by [`split_image`]; `None` unless both sides have one.
fn images(raw: &Raw) -> Option<(Image<'_>, Image<'_>)> {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return None;
    };
    Some((
        split_image(l.as_str().unwrap_or_default()),
        split_image(r.as_str().unwrap_or_default()),
    ))
}

fn same_repository_and_tag(raw: &Raw, _: &Ctx<'_>) -> bool {
    images(raw).is_some_and(|(a, b)| a.0 == b.0 && a.1 == b.1)
}

/// The rendered command is the live one plus flags written with an empty value (`--name=`).
fn only_empty_flags_added(raw: &Raw, _: &Ctx<'_>) -> bool {
    let (Some(Json::Array(live)), Some(Json::Array(rendered))) = (&raw.live, &raw.rendered) else {
        return false;
    };
    rendered.len() > live.len()
        && rendered.starts_with(live)
        && rendered[live.len()..].iter().all(|arg| {
            arg.as_str()
                .and_then(|a| a.strip_prefix("--"))
                .and_then(|a| a.strip_suffix('='))
                .is_some_and(|name| {
                    !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
        })
}

/// Only the tag (or digest) changed: the same registry serves it.
fn same_repository(raw: &Raw, _: &Ctx<'_>) -> bool {
    images(raw).is_some_and(|(a, b)| a.0 == b.0)
}

/// `.../operator:T` became `.../operator-<build>:T` (or the binary `cilium-operator` became
/// `cilium-operator-<build>`).
fn operator_build(raw: &Raw, _: &Ctx<'_>) -> bool {
    const BUILDS: &[&str] = &["generic", "aws", "azure", "alibabacloud"];
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let build_of = |live: &str, rendered: &str| {
        rendered
            .strip_prefix(live)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|b| BUILDS.contains(&b))
    };
    if raw.aspect == "image" {
        images(raw).is_some_and(|(a, b)| a.1 == b.1 && build_of(a.0, b.0))
    } else {
        match (l.as_array(), r.as_array()) {
            (Some(a), Some(b)) if a.len() == b.len() && !a.is_empty() => {
                a[1..] == b[1..]
                    && build_of(
                        a[0].as_str().unwrap_or_default(),
                        b[0].as_str().unwrap_or_default(),
                    )
            }
            _ => false,
        }
    }
}

/// The variable is an optional reference (`configMapKeyRef`, `secretKeyRef`) into `name`.
fn optional_ref(raw: &Raw, reference: &str, name: &str) -> bool {
    let r = &raw.either()["valueFrom"][reference];
    r["name"] == name && r["optional"] == true
}

fn optional_config_key(raw: &Raw, _: &Ctx<'_>) -> bool {
    optional_ref(raw, "configMapKeyRef", "cilium-config")
}

fn optional_aws_secret(raw: &Raw, _: &Ctx<'_>) -> bool {
    optional_ref(raw, "secretKeyRef", "cilium-aws")
}

fn rendered_has_config_init(_: &Raw, ctx: &Ctx<'_>) -> bool {
    containers(ctx.rendered, "initContainers")
        .iter()
        .any(|(name, c)| name == "config" && c["command"].to_string().contains("build-config"))
}

fn bpf_mounted_by_init(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let only_propagation = {
        let (mut a, mut b) = (l.clone(), r.clone());
        a["mountPropagation"] = Json::Null;
        b["mountPropagation"] = Json::Null;
        a == b
    };
    only_propagation
        && l["mountPropagation"] == "Bidirectional"
        && r["mountPropagation"] == "HostToContainer"
        && containers(ctx.rendered, "initContainers")
            .iter()
            .any(|(_, c)| {
                c["volumeMounts"].as_array().into_iter().flatten().any(|m| {
                    m["mountPath"] == "/sys/fs/bpf" && m["mountPropagation"] == "Bidirectional"
                })
            })
}

fn host_proc_sys(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.either()["volume"]["hostPath"]["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("/proc/sys/"))
}

fn not_host_path(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.either()["volume"].get("hostPath").is_none()
}

/// The host path is mounted by the live pod already, writable there if it is writable here.
fn host_path_mounted_live(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let mount = raw.either();
    let Some(path) = mount["volume"]["hostPath"]["path"].as_str() else {
        return false;
    };
    let writable = mount["readOnly"] != true;
    ["initContainers", "containers"].iter().any(|field| {
        containers(ctx.live, field).iter().any(|(_, c)| {
            mounts(c, ctx.live).values().any(|m| {
                m["volume"]["hostPath"]["path"] == path && (!writable || m["readOnly"] != true)
            })
        })
    })
}

/// Only the host path's type changed, to one that checks or creates what the live pods mount.
fn only_host_path_type(raw: &Raw, _: &Ctx<'_>) -> bool {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let (mut a, mut b) = (l.clone(), r.clone());
    let (ta, tb) = (
        a["volume"]["hostPath"]["type"].clone(),
        b["volume"]["hostPath"]["type"].clone(),
    );
    if a["volume"].get("hostPath").is_none() {
        return false;
    }
    a["volume"]["hostPath"]["type"] = Json::Null;
    b["volume"]["hostPath"]["type"] = Json::Null;
    // From "no check" to a check of the same kind of thing, or to create-if-missing.
    a == b
        && ta == ""
        && matches!(
            tb.as_str(),
            Some("Directory" | "DirectoryOrCreate" | "File" | "FileOrCreate")
        )
}

/// The same ConfigMap or Secret data: only file modes differ, or a Secret became a projected
/// volume holding it plus optional sources.
fn same_data(raw: &Raw, _: &Ctx<'_>) -> bool {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let strip = |m: &Json| {
        let mut m = m.clone();
        for source in ["configMap", "secret", "projected"] {
            if let Some(s) = m["volume"].get_mut(source).and_then(Json::as_object_mut) {
                s.remove("defaultMode");
            }
        }
        m
    };
    let (a, b) = (strip(l), strip(r));
    if a == b {
        return true;
    }
    // secret S → projected [secret S, optional others]
    let (mut rest_a, mut rest_b) = (a.clone(), b.clone());
    rest_a["volume"] = Json::Null;
    rest_b["volume"] = Json::Null;
    let Some(secret) = a["volume"]["secret"].as_object() else {
        return false;
    };
    let Some(sources) = b["volume"]["projected"]["sources"].as_array() else {
        return false;
    };
    rest_a == rest_b
        && sources.iter().all(|s| {
            let p = &s["secret"];
            p["name"] == secret.get("secretName").cloned().unwrap_or_default()
                && p.get("items") == secret.get("items")
                || p["optional"] == true
        })
        && sources
            .iter()
            .any(|s| s["secret"]["name"] == secret.get("secretName").cloned().unwrap_or_default())
}

fn is_request(raw: &Raw, _: &Ctx<'_>) -> bool {
    raw.key.starts_with("requests.")
}

/// An amount under `prefix` (`requests.`, `limits.`) that the render sets where the live pod set
/// none, or to a value that is not `safe` from the live one (either not a number: not safe).
fn amount_moves(raw: &Raw, prefix: &str, safe: fn(live: f64, rendered: f64) -> bool) -> bool {
    raw.key.starts_with(prefix)
        && match (&raw.live, &raw.rendered) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(l), Some(r)) => {
                !matches!((quantity(l), quantity(r)), (Some(a), Some(b)) if safe(a, b))
            }
        }
}

fn request_grows(raw: &Raw, _: &Ctx<'_>) -> bool {
    amount_moves(raw, "requests.", |live, rendered| rendered <= live)
}

fn limit_shrinks(raw: &Raw, _: &Ctx<'_>) -> bool {
    amount_moves(raw, "limits.", |live, rendered| rendered >= live)
}

/// The live container was privileged; the rendered one runs with a capability list (and the
/// SELinux type of a privileged container), not privileged and not as another user.
fn privileged_to_capabilities(raw: &Raw, _: &Ctx<'_>) -> bool {
    let (Some(l), Some(r)) = (&raw.live, &raw.rendered) else {
        return false;
    };
    let allowed = ["capabilities", "seLinuxOptions", "privileged"];
    l["privileged"] == true
        && r["privileged"] != true
        && object(l).keys().all(|k| k == "privileged")
        && object(r).keys().all(|k| allowed.contains(&k.as_str()))
}

fn host_network_or_no_host_port(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let host_port = |p: &Option<Json>| p.as_ref().and_then(|p| p.get("hostPort").cloned());
    ctx.rendered["hostNetwork"] == true && ctx.live["hostNetwork"] == true
        || host_port(&raw.live) == host_port(&raw.rendered)
}

/// The Secrets the chart's Hubble certificates live in (whatever issues them).
const HUBBLE_CERTIFICATE_SECRETS: &[&str] = &[
    "hubble-server-certs",
    "hubble-relay-client-certs",
    "hubble-relay-server-certs",
    "hubble-ui-client-certs",
];

/// The Secret keys a volume mounts, sorted; `None` unless it holds only Hubble's certificate
/// Secrets (a `secret` volume or a projection of them).
fn hubble_certificate_keys(mount: &Json) -> Option<Vec<String>> {
    let volume = &mount["volume"];
    let sources: Vec<(&Json, &Json)> = if let Some(secret) = volume.get("secret") {
        vec![(&secret["secretName"], &secret["items"])]
    } else {
        let projected = volume["projected"]["sources"].as_array()?;
        let mut sources = Vec::new();
        for source in projected {
            let secret = source.get("secret")?;
            sources.push((&secret["name"], &secret["items"]));
        }
        sources
    };
    let mut keys = Vec::new();
    for (name, items) in sources {
        if !HUBBLE_CERTIFICATE_SECRETS.contains(&name.as_str()?) {
            return None;
        }
        for item in items.as_array()? {
            keys.push(item["key"].as_str()?.to_owned());
        }
    }
    keys.sort();
    (!keys.is_empty()).then_some(keys)
}

/// Both sides mount the same kinds of certificate files (`ca.crt`, `tls.crt`, `tls.key`, as
/// often each) from Hubble's certificate Secrets: the relay's server certificate from
/// `hubble-relay-server-certs` instead of the agents' `hubble-server-certs`, the UI's client
/// pair from `hubble-ui-client-certs`. A server certificate that goes (relay TLS off) changes
/// the kinds, and blocks.
fn chart_hubble_certificates(raw: &Raw, _: &Ctx<'_>) -> bool {
    match (&raw.live, &raw.rendered) {
        (Some(l), Some(r)) => {
            let keys = hubble_certificate_keys(l);
            keys.is_some() && keys == hubble_certificate_keys(r)
        }
        _ => false,
    }
}

/// A container's environment variable's plain value.
fn env_value<'a>(pod: &'a Json, container: &str, name: &str) -> Option<&'a str> {
    pod["containers"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == container)?["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

/// The Hubble UI talks TLS to the relay on both sides.
fn ui_keeps_relay_tls(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let Some(container) = raw.container_name() else {
        return false;
    };
    [ctx.live, ctx.rendered]
        .iter()
        .all(|pod| env_value(pod, container, "TLS_TO_RELAY_ENABLED") == Some("true"))
}

/// TLS stays on, and every file the rendered variable names is one a mount of the rendered
/// container provides (an item of its Secret volume).
fn ui_tls_file_mounted(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    let (Some(container), Some(value)) = (
        raw.container_name(),
        raw.rendered.as_ref().and_then(|r| r["value"].as_str()),
    ) else {
        return false;
    };
    let Some(rendered) = ctx.rendered["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
    else {
        return false;
    };
    let mounted = mounts(rendered, ctx.rendered);
    let provides = |file: &str| {
        mounted.iter().any(|(path, mount)| {
            let Some(rest) = file
                .strip_prefix(path.as_str())
                .and_then(|r| r.strip_prefix('/'))
            else {
                return false;
            };
            let volume = &mount["volume"];
            let mut items: Vec<&Json> = volume["secret"]["items"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            for source in volume["projected"]["sources"]
                .as_array()
                .into_iter()
                .flatten()
            {
                items.extend(source["secret"]["items"].as_array().into_iter().flatten());
            }
            items.iter().any(|i| i["path"] == rest)
        })
    };
    ui_keeps_relay_tls(raw, ctx) && value.split(',').map(str::trim).all(provides)
}

/// An init container's added variable that the live agent container sets to the same value.
fn same_env_in_live_agent(raw: &Raw, ctx: &Ctx<'_>) -> bool {
    raw.container
        .as_deref()
        .is_some_and(|c| c.starts_with("initContainer "))
        && raw.rendered.as_ref().is_some_and(|rendered| {
            containers(ctx.live, "containers")
                .iter()
                .find(|(name, _)| name == "cilium-agent")
                .is_some_and(|(_, agent)| {
                    named(&container_with_defaults(agent)["env"], "name").get(&raw.key)
                        == Some(rendered)
                })
        })
}

fn aws_snat_cleanup(raw: &Raw, _: &Ctx<'_>) -> bool {
    let text = raw.either().to_string();
    text.contains("AWS-SNAT-CHAIN") && text.contains("iptables-restore")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small agent DaemonSet as Kubespray writes it, and an operator Deployment.
    fn live() -> Vec<Json> {
        vec![
            json!({
                "kind": "DaemonSet",
                "metadata": {"name": "cilium"},
                "spec": {
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
                    "template": {
                        "metadata": {"labels": {"k8s-app": "cilium"}},
                        "spec": {
                            "hostNetwork": true,
                            "dnsPolicy": "ClusterFirstWithHostNet",
                            "priorityClassName": "system-node-critical",
                            "tolerations": [{"operator": "Exists"}],
                            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                                {"labelSelector": {"matchLabels": {"k8s-app": "cilium"}}, "topologyKey": "kubernetes.io/hostname"}
                            ]}},
                            "initContainers": [
                                {"name": "mount-cgroup", "image": "quay.io/cilium/cilium:v1.15.9", "securityContext": {"privileged": true}},
                                {"name": "clean-cilium-state", "image": "quay.io/cilium/cilium:v1.15.9", "securityContext": {"privileged": true}}
                            ],
                            "containers": [{
                                "name": "cilium-agent",
                                "image": "quay.io/cilium/cilium:v1.15.9",
                                "command": ["cilium-agent"],
                                "args": ["--config-dir=/tmp/cilium/config-map"],
                                "securityContext": {"privileged": true},
                                "lifecycle": {"preStop": {"exec": {"command": ["/cni-uninstall.sh"]}}},
                                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 9879}},
                                "resources": {"limits": {"cpu": "500m", "memory": "500M"}, "requests": {"cpu": "100m", "memory": "64M"}},
                                "volumeMounts": [
                                    {"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"},
                                    {"name": "etcd-secrets", "mountPath": "/etc/cilium/certs", "readOnly": true},
                                    {"name": "cilium-config-path", "mountPath": "/tmp/cilium/config-map", "readOnly": true}
                                ]
                            }],
                            "volumes": [
                                {"name": "bpf-maps", "hostPath": {"path": "/sys/fs/bpf", "type": "DirectoryOrCreate"}},
                                {"name": "etcd-secrets", "hostPath": {"path": "/etc/cilium/certs"}},
                                {"name": "cilium-config-path", "configMap": {"name": "cilium-config"}}
                            ]
                        }
                    }
                }
            }),
            json!({
                "kind": "Deployment",
                "metadata": {"name": "cilium-operator"},
                "spec": {
                    "replicas": 2,
                    "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}},
                    "template": {"spec": {
                        "hostNetwork": true,
                        "priorityClassName": "system-node-critical",
                        "containers": [{
                            "name": "cilium-operator",
                            "image": "quay.io/cilium/operator:v1.15.9",
                            "command": ["cilium-operator"],
                            "env": [{"name": "AWS_REGION", "valueFrom": {"secretKeyRef": {"name": "cilium-aws", "key": "AWS_REGION", "optional": true}}}]
                        }]
                    }}
                }
            }),
        ]
    }

    /// The value at `pointer` in the first object of `kind`, created when missing.
    fn at<'a>(objects: &'a mut [Json], kind: &str, pointer: &str) -> &'a mut Json {
        let mut here = objects
            .iter_mut()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"));
        for part in pointer.split('/').skip(1) {
            here = match here {
                Json::Array(items) => {
                    let i: usize = part.parse().unwrap_or_else(|_| panic!("{pointer}: {part}"));
                    items
                        .get_mut(i)
                        .unwrap_or_else(|| panic!("{kind} has no {pointer}"))
                }
                other => &mut other[part],
            };
        }
        here
    }

    const POD: &str = "/spec/template/spec";
    const AGENT: &str = "/spec/template/spec/containers/0";

    /// The differences of the live objects against the live objects changed by `change`.
    fn compare_changed(change: impl Fn(&mut Vec<Json>)) -> Vec<WorkloadDifference> {
        let mut rendered = live();
        change(&mut rendered);
        compare_workloads(&live(), &rendered)
    }

    fn list<'a>(objects: &'a mut [Json], kind: &str, pointer: &str) -> &'a mut Vec<Json> {
        at(objects, kind, pointer)
            .as_array_mut()
            .unwrap_or_else(|| panic!("{kind} {pointer} is not a list"))
    }

    fn fields<'a>(objects: &'a mut [Json], kind: &str, pointer: &str) -> &'a mut Map<String, Json> {
        at(objects, kind, pointer)
            .as_object_mut()
            .unwrap_or_else(|| panic!("{kind} {pointer} is not an object"))
    }

    #[test]
    fn the_same_workloads_have_no_difference() {
        assert_eq!(compare_workloads(&live(), &live()), []);
    }

    #[test]
    fn what_the_api_server_fills_in_is_no_difference() {
        let mut stored = live();
        let pod = at(&mut stored, "DaemonSet", POD);
        pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
        pod["schedulerName"] = json!("default-scheduler");
        pod["restartPolicy"] = json!("Always");
        pod["securityContext"] = json!({});
        pod["serviceAccount"] = json!("default");
        pod["hostUsers"] = json!(true);
        pod["priority"] = json!(2000001000);
        pod["tolerations"] = json!([{"operator": "Exists", "effect": ""}]);
        pod["volumes"][1]["hostPath"]["type"] = json!("");
        pod["volumes"][2]["configMap"]["defaultMode"] = json!(420);
        let agent = &mut pod["containers"][0];
        agent["imagePullPolicy"] = json!("IfNotPresent");
        agent["terminationMessagePath"] = json!("/dev/termination-log");
        agent["terminationMessagePolicy"] = json!("File");
        agent["resources"]["limits"]["cpu"] = json!("0.5");
        agent["livenessProbe"]["timeoutSeconds"] = json!(1);
        agent["livenessProbe"]["httpGet"]["scheme"] = json!("HTTP");
        // matchLabels written as an expression selects the same pods.
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"] = json!({"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["cilium"]}]});
        assert_eq!(compare_workloads(&stored, &live()), []);
    }

    #[test]
    fn each_rule_gives_its_verdict() {
        type Change = fn(&mut Vec<Json>);
        let cases: &[(&str, Change, &str, bool)] = &[
            (
                "host networking off",
                |o| *at(o, "DaemonSet", &format!("{POD}/hostNetwork")) = json!(false),
                "DaemonSet/cilium: hostNetwork",
                true,
            ),
            (
                "another resolver",
                |o| {
                    fields(o, "DaemonSet", POD).remove("dnsPolicy");
                },
                "DaemonSet/cilium: dnsPolicy",
                true,
            ),
            (
                "the agent's priority",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/priorityClassName")) =
                        json!("system-cluster-critical")
                },
                "DaemonSet/cilium: priorityClassName",
                true,
            ),
            (
                "the operator's critical priority",
                |o| {
                    *at(o, "Deployment", &format!("{POD}/priorityClassName")) =
                        json!("system-cluster-critical")
                },
                "Deployment/cilium-operator: priorityClassName",
                false,
            ),
            (
                "the operator's priority dropped",
                |o| *at(o, "Deployment", &format!("{POD}/priorityClassName")) = json!(""),
                "Deployment/cilium-operator: priorityClassName",
                true,
            ),
            (
                "no tolerations",
                |o| *at(o, "DaemonSet", &format!("{POD}/tolerations")) = json!([]),
                "DaemonSet/cilium: tolerations",
                true,
            ),
            (
                "the Linux node selector",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/nodeSelector")) =
                        json!({"kubernetes.io/os": "linux"})
                },
                "DaemonSet/cilium: nodeSelector kubernetes.io/os",
                false,
            ),
            (
                "another node selector",
                |o| *at(o, "DaemonSet", &format!("{POD}/nodeSelector")) = json!({"role": "edge"}),
                "DaemonSet/cilium: nodeSelector role",
                true,
            ),
            (
                "grace period",
                |o| {
                    *at(
                        o,
                        "DaemonSet",
                        &format!("{POD}/terminationGracePeriodSeconds"),
                    ) = json!(1)
                },
                "DaemonSet/cilium: terminationGracePeriodSeconds",
                true,
            ),
            (
                "more agents at once",
                |o| *at(o, "DaemonSet", "/spec/updateStrategy") = json!({}),
                "DaemonSet/cilium: updateStrategy",
                true,
            ),
            (
                "the same operator roll in percent",
                |o| {
                    *at(o, "Deployment", "/spec/strategy") =
                        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "50%"}})
                },
                "Deployment/cilium-operator: strategy",
                false,
            ),
            (
                "another operator roll",
                |o| {
                    *at(o, "Deployment", "/spec/strategy") =
                        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "100%"}})
                },
                "Deployment/cilium-operator: strategy",
                true,
            ),
            (
                "fewer operators",
                |o| *at(o, "Deployment", "/spec/replicas") = json!(1),
                "Deployment/cilium-operator: replicas",
                true,
            ),
            (
                "a label added",
                |o| {
                    *at(o, "DaemonSet", "/spec/template/metadata/labels") =
                        json!({"k8s-app": "cilium", "app.kubernetes.io/part-of": "cilium"})
                },
                "DaemonSet/cilium: label app.kubernetes.io/part-of",
                false,
            ),
            (
                "a label gone",
                |o| *at(o, "DaemonSet", "/spec/template/metadata/labels") = json!({}),
                "DaemonSet/cilium: label k8s-app",
                true,
            ),
            (
                "AppArmor unconfined",
                |o| *at(o, "DaemonSet", "/spec/template/metadata") = json!({"labels": {"k8s-app": "cilium"}, "annotations": {"container.apparmor.security.beta.kubernetes.io/cilium-agent": "unconfined"}}),
                "DaemonSet/cilium: annotation container.apparmor.security.beta.kubernetes.io/cilium-agent",
                false,
            ),
            (
                "AppArmor confined",
                |o| *at(o, "DaemonSet", "/spec/template/metadata") = json!({"labels": {"k8s-app": "cilium"}, "annotations": {"container.apparmor.security.beta.kubernetes.io/cilium-agent": "runtime/default"}}),
                "DaemonSet/cilium: annotation container.apparmor.security.beta.kubernetes.io/cilium-agent",
                true,
            ),
            (
                "pod AppArmor unconfined",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/securityContext")) =
                        json!({"appArmorProfile": {"type": "Unconfined"}})
                },
                "DaemonSet/cilium: securityContext",
                false,
            ),
            (
                "pod runs as a user",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/securityContext")) =
                        json!({"runAsUser": 1000})
                },
                "DaemonSet/cilium: securityContext",
                true,
            ),
            (
                "privileged to capabilities",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/securityContext")) = json!({"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "seLinuxOptions": {"type": "spc_t"}}),
                "DaemonSet/cilium: container cilium-agent: securityContext",
                false,
            ),
            (
                "privileged to another user",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/securityContext")) =
                        json!({"runAsUser": 1000})
                },
                "DaemonSet/cilium: container cilium-agent: securityContext",
                true,
            ),
            (
                "the etcd certificates gone",
                |o| {
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts")).remove(1);
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
                true,
            ),
            (
                "the certificates elsewhere on the node",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/volumes/1/hostPath/path")) =
                        json!("/etc/ssl/etcd")
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
                true,
            ),
            (
                "the host path checked",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/volumes/1/hostPath")) =
                        json!({"path": "/etc/cilium/certs", "type": "Directory"})
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
                false,
            ),
            (
                "the host path a socket",
                |o| {
                    *at(o, "DaemonSet", &format!("{POD}/volumes/1/hostPath")) =
                        json!({"path": "/etc/cilium/certs", "type": "Socket"})
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
                true,
            ),
            (
                "a writable certificate mount",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/volumeMounts/1/readOnly")) = json!(false),
                "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs",
                true,
            ),
            (
                "bpffs seen, not mounted, without an init container",
                |o| {
                    *at(
                        o,
                        "DaemonSet",
                        &format!("{AGENT}/volumeMounts/0/mountPropagation"),
                    ) = json!("HostToContainer")
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /sys/fs/bpf",
                true,
            ),
            (
                "bpffs mounted by the chart's init container",
                |o| {
                    *at(
                        o,
                        "DaemonSet",
                        &format!("{AGENT}/volumeMounts/0/mountPropagation"),
                    ) = json!("HostToContainer");
                    list(o, "DaemonSet", &format!("{POD}/initContainers")).push(json!({"name": "mount-bpf-fs", "image": "x", "volumeMounts": [{"name": "bpf-maps", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"}]}));
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /sys/fs/bpf",
                false,
            ),
            (
                "the config mount gone, nothing writes it",
                |o| {
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts")).remove(2);
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /tmp/cilium/config-map",
                true,
            ),
            (
                "the config written by the chart's init container",
                |o| {
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts")).remove(2);
                    list(o, "DaemonSet", &format!("{POD}/initContainers")).insert(0, json!({"name": "config", "image": "x", "command": ["cilium-dbg", "build-config"]}));
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /tmp/cilium/config-map",
                false,
            ),
            (
                "a new host path",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/volumes"))
                        .push(json!({"name": "root", "hostPath": {"path": "/"}}));
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts"))
                        .push(json!({"name": "root", "mountPath": "/host"}));
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /host",
                true,
            ),
            (
                "the sysctl host paths",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/volumes")).push(json!({"name": "net", "hostPath": {"path": "/proc/sys/net", "type": "Directory"}}));
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts"))
                        .push(json!({"name": "net", "mountPath": "/host/proc/sys/net"}));
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /host/proc/sys/net",
                false,
            ),
            (
                "a scratch directory",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/volumes"))
                        .push(json!({"name": "tmp", "emptyDir": {}}));
                    list(o, "DaemonSet", &format!("{AGENT}/volumeMounts"))
                        .push(json!({"name": "tmp", "mountPath": "/tmp"}));
                },
                "DaemonSet/cilium: container cilium-agent: volumeMount /tmp",
                false,
            ),
            (
                "a lower memory limit",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/resources/limits/memory")) =
                        json!("256Mi")
                },
                "DaemonSet/cilium: container cilium-agent: resources limits.memory",
                true,
            ),
            (
                "a higher memory limit",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/resources/limits/memory")) = json!("1Gi"),
                "DaemonSet/cilium: container cilium-agent: resources limits.memory",
                false,
            ),
            (
                "a larger CPU request",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/resources/requests/cpu")) = json!("1"),
                "DaemonSet/cilium: container cilium-agent: resources requests.cpu",
                true,
            ),
            (
                "a smaller CPU request",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/resources/requests/cpu")) = json!("50m"),
                "DaemonSet/cilium: container cilium-agent: resources requests.cpu",
                false,
            ),
            (
                "the image by digest",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/image")) =
                        json!("quay.io/cilium/cilium:v1.15.9@sha256:00")
                },
                "DaemonSet/cilium: container cilium-agent: image",
                false,
            ),
            (
                "the agent from another registry",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/image")) =
                        json!("registry.local:5000/cilium/cilium:v1.15.9")
                },
                "DaemonSet/cilium: container cilium-agent: image",
                true,
            ),
            (
                "the operator build from another registry",
                |o| {
                    *at(o, "Deployment", &format!("{AGENT}/image")) =
                        json!("registry.local/cilium/operator-generic:v1.15.9")
                },
                "Deployment/cilium-operator: container cilium-operator: image",
                true,
            ),
            (
                "another agent version",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/image")) =
                        json!("quay.io/cilium/cilium:v1.16.0")
                },
                "DaemonSet/cilium: container cilium-agent: image",
                true,
            ),
            (
                "the generic operator build",
                |o| {
                    *at(o, "Deployment", &format!("{AGENT}/image")) =
                        json!("quay.io/cilium/operator-generic:v1.15.9@sha256:00")
                },
                "Deployment/cilium-operator: container cilium-operator: image",
                false,
            ),
            (
                "the generic operator binary",
                |o| {
                    *at(o, "Deployment", &format!("{AGENT}/command")) =
                        json!(["cilium-operator-generic"])
                },
                "Deployment/cilium-operator: container cilium-operator: command",
                false,
            ),
            (
                "another program",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/command")) = json!(["sleep"]),
                "DaemonSet/cilium: container cilium-agent: command",
                true,
            ),
            (
                "another flag",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/args")) = json!(["--debug"]),
                "DaemonSet/cilium: container cilium-agent: args",
                true,
            ),
            (
                "the optional AWS credentials gone",
                |o| *at(o, "Deployment", &format!("{AGENT}/env")) = json!([]),
                "Deployment/cilium-operator: container cilium-operator: env AWS_REGION",
                false,
            ),
            (
                "GOMEMLIMIT",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/env")) = json!([{"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}]),
                "DaemonSet/cilium: container cilium-agent: env GOMEMLIMIT",
                false,
            ),
            (
                "another variable",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/env")) =
                        json!([{"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"}])
                },
                "DaemonSet/cilium: container cilium-agent: env KUBERNETES_SERVICE_HOST",
                true,
            ),
            (
                "a cilium-config key read",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/env")) = json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cilium-config", "key": "x", "optional": true}}}]),
                "DaemonSet/cilium: container cilium-agent: env X",
                false,
            ),
            (
                "the chart's init containers",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/initContainers"))
                        .push(json!({"name": "mount-bpf-fs", "image": "x"}));
                },
                "DaemonSet/cilium: initContainer mount-bpf-fs",
                false,
            ),
            (
                "an unknown init container",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/initContainers"))
                        .push(json!({"name": "surprise", "image": "x"}));
                },
                "DaemonSet/cilium: initContainer surprise",
                true,
            ),
            (
                "an init container gone",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/initContainers")).remove(0);
                },
                "DaemonSet/cilium: initContainer mount-cgroup",
                true,
            ),
            (
                "init containers reordered",
                |o| {
                    list(o, "DaemonSet", &format!("{POD}/initContainers")).reverse();
                },
                "DaemonSet/cilium: initContainer order",
                true,
            ),
            (
                "the AWS cleanup hook",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/lifecycle/postStart")) = json!({"exec": {"command": ["bash", "-c", "iptables-save | grep -E -v 'AWS-SNAT-CHAIN' | iptables-restore"]}}),
                "DaemonSet/cilium: container cilium-agent: postStart",
                false,
            ),
            (
                "the CNI uninstall hook gone",
                |o| *at(o, "DaemonSet", &format!("{AGENT}/lifecycle")) = json!({}),
                "DaemonSet/cilium: container cilium-agent: preStop",
                true,
            ),
            (
                "no liveness probe",
                |o| {
                    fields(o, "DaemonSet", AGENT).remove("livenessProbe");
                },
                "DaemonSet/cilium: container cilium-agent: livenessProbe",
                true,
            ),
            (
                "a slower liveness probe",
                |o| {
                    *at(
                        o,
                        "DaemonSet",
                        &format!("{AGENT}/livenessProbe/periodSeconds"),
                    ) = json!(30)
                },
                "DaemonSet/cilium: container cilium-agent: livenessProbe",
                false,
            ),
            (
                "a port declared",
                |o| {
                    *at(o, "DaemonSet", &format!("{AGENT}/ports")) =
                        json!([{"containerPort": 4244, "hostPort": 4244}])
                },
                "DaemonSet/cilium: container cilium-agent: port 4244/TCP",
                false,
            ),
            (
                "a field no rule knows",
                |o| *at(o, "DaemonSet", &format!("{POD}/runtimeClassName")) = json!("kata"),
                "DaemonSet/cilium: runtimeClassName",
                true,
            ),
        ];
        let mut wrong = Vec::new();
        for (what, change, name, blocks) in cases {
            let differences = compare_changed(change);
            match differences.iter().find(|d| d.name == *name) {
                Some(d) if d.blocks == *blocks && !d.effect.contains('{') => {}
                found => wrong.push(format!(
                    "{what}: want {name} blocks={blocks}, got {found:?}; all: {:#?}",
                    differences
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                )),
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }

    /// The charts write an unconfined AppArmor profile as annotations below Kubernetes 1.30 and as
    /// the pod's field from 1.30: either way round is the same, dropping it is not.
    #[test]
    fn apparmor_unconfined_as_annotation_or_field_is_the_same() {
        let annotated: fn(&mut Vec<Json>) = |o| {
            *at(o, "DaemonSet", "/spec/template/metadata/annotations") = json!({"container.apparmor.security.beta.kubernetes.io/cilium-agent": "unconfined"});
        };
        let field: fn(&mut Vec<Json>) = |o| {
            *at(o, "DaemonSet", &format!("{POD}/securityContext")) =
                json!({"appArmorProfile": {"type": "Unconfined"}});
        };
        for (live_form, rendered_form) in [(annotated, field), (field, annotated)] {
            let (mut l, mut r) = (live(), live());
            live_form(&mut l);
            rendered_form(&mut r);
            let differences = compare_workloads(&l, &r);
            assert_eq!(differences.len(), 2, "{differences:#?}");
            assert!(differences.iter().all(|d| !d.blocks), "{differences:#?}");
        }
        let mut l = live();
        field(&mut l);
        let dropped = compare_workloads(&l, &live());
        assert_eq!(dropped.len(), 1, "{dropped:#?}");
        assert!(dropped[0].blocks && dropped[0].name == "DaemonSet/cilium: securityContext");
    }

    /// 1.20 writes `--k8s-api-server-urls=` (no URL) on the config step: the flag's default.
    #[test]
    fn a_flag_with_no_value_added_to_the_config_step_is_its_default() {
        let with_command = |command: Json| {
            let mut o = live();
            list(&mut o, "DaemonSet", &format!("{POD}/initContainers")).push(json!({
                "name": "config",
                "image": "quay.io/cilium/cilium:v1.15.9",
                "command": command,
            }));
            o
        };
        let before = with_command(json!(["cilium-dbg", "build-config"]));
        let empty = with_command(json!([
            "cilium-dbg",
            "build-config",
            "--k8s-api-server-urls="
        ]));
        let differences = compare_workloads(&before, &empty);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert!(!differences[0].blocks, "{differences:#?}");
        let set = with_command(json!([
            "cilium-dbg",
            "build-config",
            "--k8s-api-server-urls=https://10.0.0.1:6443"
        ]));
        let differences = compare_workloads(&before, &set);
        assert!(
            differences.iter().all(|d| d.blocks) && differences.len() == 1,
            "{differences:#?}"
        );
    }

    #[test]
    fn amounts_compare_by_value_not_by_spelling() {
        let change = |o: &mut Vec<Json>| {
            *at(o, "DaemonSet", &format!("{AGENT}/resources")) = json!({"limits": {"cpu": "0.5", "memory": "500e6"}, "requests": {"cpu": "0.1", "memory": "64000k"}});
        };
        assert_eq!(compare_changed(change), []);
        assert_eq!(quantity(&json!("64Mi")), Some(67_108_864.0));
        assert_eq!(quantity(&json!("100m")), Some(0.1));
        assert_eq!(quantity(&json!("lots")), None);
    }

    #[test]
    fn a_workload_the_chart_does_not_render_blocks_and_hubble_is_compared_only_on_both_sides() {
        let live_only = |kind: &str, name: &str| {
            let mut objects = live();
            objects.push(json!({"kind": kind, "metadata": {"name": name}, "spec": {}}));
            compare_workloads(&objects, &live())
        };
        assert_eq!(live_only("Deployment", "hubble-relay"), []);
        let mut without_operator = live();
        without_operator.retain(|o| o["kind"] != "Deployment");
        let differences = compare_workloads(&live(), &without_operator);
        assert_eq!(differences.len(), 1, "{differences:#?}");
        assert_eq!(differences[0].name, "Deployment/cilium-operator");
        assert!(differences[0].blocks);
    }

    #[test]
    fn every_difference_names_itself_stably_and_reads_in_one_line() {
        let differences = compare_changed(|o| {
            list(o, "DaemonSet", &format!("{AGENT}/volumeMounts")).remove(1);
        });
        let d = &differences[0];
        assert_eq!(
            d.name,
            "DaemonSet/cilium: container cilium-agent: volumeMount /etc/cilium/certs"
        );
        assert_eq!(
            d.effect,
            "the container no longer sees the node's /etc/cilium/certs at /etc/cilium/certs"
        );
        let text = d.to_string();
        assert!(
            text.starts_with(&format!("{}: live ", d.name)) && text.contains("(BLOCKS: "),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
        assert_eq!(
            split_image("registry:5000/cilium/operator-generic:v1.15.9@sha256:ab"),
            (
                "registry:5000/cilium/operator-generic",
                Some("v1.15.9"),
                Some("sha256:ab")
            )
        );
    }

    /// A Hubble UI whose backend talks TLS to the relay, with its certificates from `secret`
    /// (a CA file named `ca_file`).
    fn hubble_ui(secret: &str, ca_file: &str, server_name: &str, tls: bool) -> Json {
        let mut env = vec![
            json!({"name": "FLOWS_API_ADDR", "value": if tls { "hubble-relay:443" } else { "hubble-relay:80" }}),
        ];
        let mut mounts = Vec::new();
        let mut volumes = Vec::new();
        if tls {
            env.extend([
                json!({"name": "TLS_TO_RELAY_ENABLED", "value": "true"}),
                json!({"name": "TLS_RELAY_SERVER_NAME", "value": server_name}),
                json!({"name": "TLS_RELAY_CA_CERT_FILES", "value": format!("/var/lib/hubble-ui/certs/{ca_file}")}),
            ]);
            mounts.push(
                json!({"name": "tls", "mountPath": "/var/lib/hubble-ui/certs", "readOnly": true}),
            );
            volumes.push(json!({"name": "tls", "projected": {"sources": [{"secret": {"name": secret, "items": [
                {"key": "ca.crt", "path": ca_file},
                {"key": "tls.crt", "path": "client.crt"},
                {"key": "tls.key", "path": "client.key"}
            ]}}]}}));
        }
        json!({
            "kind": "Deployment",
            "metadata": {"name": "hubble-ui"},
            "spec": {"replicas": 1, "template": {"spec": {
                "containers": [{"name": "backend", "image": "quay.io/cilium/hubble-ui-backend:v0.13.1", "env": env, "volumeMounts": mounts}],
                "volumes": volumes
            }}}
        })
    }

    #[test]
    fn hubble_tls_from_the_charts_certificates_is_explained_and_losing_it_blocks() {
        let with_ui = |ui: Json| {
            let mut objects = live();
            objects.push(ui);
            objects
        };
        let kubespray = with_ui(hubble_ui(
            "hubble-relay-client-certs",
            "hubble-server-ca.crt",
            "ui.default.hubble-grpc.cilium.io",
            true,
        ));
        let chart = with_ui(hubble_ui(
            "hubble-ui-client-certs",
            "hubble-relay-ca.crt",
            "ui.hubble-relay.cilium.io",
            true,
        ));
        let differences = compare_workloads(&kubespray, &chart);
        let names: Vec<&str> = differences.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Deployment/hubble-ui: container backend: env TLS_RELAY_CA_CERT_FILES",
                "Deployment/hubble-ui: container backend: env TLS_RELAY_SERVER_NAME",
                "Deployment/hubble-ui: container backend: volumeMount /var/lib/hubble-ui/certs",
            ]
        );
        assert!(differences.iter().all(|d| !d.blocks), "{differences:#?}");

        // A CA file the chart's mount does not provide blocks.
        let mut unmounted = chart.clone();
        *at(
            &mut unmounted[2..],
            "Deployment",
            "/spec/template/spec/containers/0/env/3/value",
        ) = json!("/etc/ssl/ca.crt");
        let d = compare_workloads(&kubespray, &unmounted);
        assert!(
            d.iter()
                .any(|d| d.name.ends_with("env TLS_RELAY_CA_CERT_FILES") && d.blocks),
            "{d:#?}"
        );
        // Certificates from a Secret that is not Hubble's block.
        let foreign = with_ui(hubble_ui(
            "my-certs",
            "hubble-relay-ca.crt",
            "ui.hubble-relay.cilium.io",
            true,
        ));
        let d = compare_workloads(&kubespray, &foreign);
        assert!(
            d.iter()
                .any(|d| d.name.ends_with("volumeMount /var/lib/hubble-ui/certs") && d.blocks),
            "{d:#?}"
        );
        // TLS off: everything about it blocks.
        let plain = with_ui(hubble_ui("", "", "", false));
        let d = compare_workloads(&kubespray, &plain);
        assert_eq!(d.len(), 5, "{d:#?}");
        assert!(d.iter().all(|d| d.blocks), "{d:#?}");
    }

    #[test]
    fn the_agents_extra_environment_in_the_charts_init_containers_is_explained() {
        let add = |o: &mut Vec<Json>, container: &str| {
            let pointer = format!("{POD}/{container}");
            let c = at(o, "DaemonSet", &pointer);
            c["env"] = json!([{"name": "GODEBUG", "value": "madvdontneed=1"}]);
        };
        let mut live_objects = live();
        add(&mut live_objects, "containers/0");
        let mut rendered = live_objects.clone();
        add(&mut rendered, "initContainers/1");
        let d = compare_workloads(&live_objects, &rendered);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(
            d[0].name,
            "DaemonSet/cilium: initContainer clean-cilium-state: env GODEBUG"
        );
        assert!(!d[0].blocks, "{}", d[0]);
        // Not on the live agent: blocks.
        let d = compare_workloads(&live(), &rendered);
        assert!(d.iter().all(|d| d.blocks), "{d:#?}");
    }
}
