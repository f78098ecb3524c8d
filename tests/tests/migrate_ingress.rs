//! End-to-end: `gateway-api migrate-ingress apply | cutover | rollback` against a real API server
//! with the real Gateway API CRDs (v1.2.1 standard channel, from `gateway-api-crds/`) and
//! Cilium's CRDs (LB-IPAM pools).
//!
//! ingress-nginx is a look-alike of its released `deploy/static/provider/cloud/deploy.yaml`
//! (controller v1.12): the controller Deployment, its LoadBalancer Service, ConfigMap and
//! IngressClass `nginx` with the names, labels and ports that manifest declares, reduced to the
//! fields the migration reads or changes (no RBAC, no admission webhook). The released file is
//! not available offline, so the objects are built here.
//!
//! What this cannot prove: nothing runs a Gateway controller (or ingress-nginx, or LB-IPAM) on
//! the testbed, so the test plays them: it writes the Service's external IP into its status, and
//! marks each Gateway Programmed with an address and each route Accepted with ResolvedRefs once
//! it exists (waiting on the API with `await_condition`, never sleeping). The two front doors the
//! probe compares are small HTTP servers on 127.0.0.1 that answer differently for one path.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use cilium_gateway::convert::ConvertOptions;
use cilium_gateway::migrate_ingress::{
    self, AddressMode, CutOver, FrontDoor, IngressNginx, Layout, MigrateOptions, ProbeOptions,
    Stage,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};
use testbed::fixtures::{self, FixtureOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// ingress-nginx's external IP (outside the fixture's pool 10.5.0.0/24, so cut-over creates a
/// /32 pool for it).
const NGINX_IP: &str = "203.0.113.10";
const WAIT: Duration = Duration::from_secs(120);
const SHARED: &str = "gateway";

/// Ingress-nginx as its released manifest declares it (see the file's comment).
fn ingress_nginx() -> Vec<Value> {
    let labels = json!({
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/part-of": "ingress-nginx",
        "app.kubernetes.io/version": "1.12.1",
    });
    let selector = json!({
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/name": "ingress-nginx",
    });
    let meta = |kind: &str| {
        json!({ "name": "ingress-nginx-controller", "namespace": "ingress-nginx", "labels": labels.clone(),
                "annotations": { "test/kind": kind } })
    };
    vec![
        json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": "ingress-nginx", "labels": { "app.kubernetes.io/name": "ingress-nginx" } } }),
        json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("ConfigMap"),
                "data": { "allow-snippet-annotations": "false" } }),
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": meta("Service"),
                "spec": {
                    "type": "LoadBalancer", "externalTrafficPolicy": "Local",
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                    "selector": selector.clone(),
                    "ports": [
                        { "appProtocol": "http", "name": "http", "port": 80, "protocol": "TCP", "targetPort": "http" },
                        { "appProtocol": "https", "name": "https", "port": 443, "protocol": "TCP", "targetPort": "https" },
                    ],
                } }),
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("Deployment"),
                "spec": {
                    "minReadySeconds": 0, "revisionHistoryLimit": 10,
                    "selector": { "matchLabels": selector.clone() },
                    "strategy": { "rollingUpdate": { "maxUnavailable": 1 }, "type": "RollingUpdate" },
                    "template": {
                        "metadata": { "labels": labels.clone() },
                        "spec": { "containers": [{
                            "name": "controller",
                            "image": "registry.k8s.io/ingress-nginx/controller:v1.12.1",
                            "args": ["/nginx-ingress-controller", "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
                                     "--election-id=ingress-nginx-leader", "--controller-class=k8s.io/ingress-nginx",
                                     "--ingress-class=nginx", "--configmap=$(POD_NAMESPACE)/ingress-nginx-controller"],
                            "ports": [{ "containerPort": 80, "name": "http", "protocol": "TCP" },
                                      { "containerPort": 443, "name": "https", "protocol": "TCP" }],
                        }] },
                    },
                } }),
        json!({ "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": { "name": "nginx", "labels": labels.clone() },
                "spec": { "controller": "k8s.io/ingress-nginx" } }),
    ]
}

fn applications() -> Vec<Value> {
    let ingress = |namespace: &str, host: &str, paths: Value, tls: Option<&str>| {
        let mut spec = json!({ "ingressClassName": "nginx",
                               "rules": [{ "host": host, "http": { "paths": paths } }] });
        if let Some(secret) = tls {
            spec["tls"] = json!([{ "hosts": [host], "secretName": secret }]);
        }
        json!({ "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": { "name": "web", "namespace": namespace,
                              "annotations": { "nginx.ingress.kubernetes.io/proxy-body-size": "8m" } },
                "spec": spec })
    };
    let path = |p: &str| {
        json!({ "path": p, "pathType": "Prefix",
                "backend": { "service": { "name": "web", "port": { "number": 8080 } } } })
    };
    let mut objects = Vec::new();
    for namespace in ["shop", "blog", SHARED] {
        objects.push(
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } }),
        );
    }
    for namespace in ["shop", "blog"] {
        objects.push(json!({ "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web", "namespace": namespace },
            "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 8080 }] } }));
    }
    objects.push(ingress(
        "shop",
        "shop.example.com",
        json!([path("/"), path("/cart")]),
        Some("shop-tls"),
    ));
    objects.push(ingress(
        "blog",
        "blog.example.com",
        json!([path("/")]),
        None,
    ));
    objects
}

/// The objects `rollback` must leave as they were: labels, annotations and content.
async fn state(client: &kube::Client) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let keep = |labels: &Option<BTreeMap<String, String>>,
                annotations: &Option<BTreeMap<String, String>>,
                content: Value| json!({ "labels": labels, "annotations": annotations, "content": content });
    let ingresses = Api::<Ingress>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for i in ingresses {
        out.insert(
            format!(
                "Ingress {}/{}",
                i.metadata.namespace.clone().unwrap_or_default(),
                i.metadata.name.clone().unwrap_or_default()
            ),
            keep(&i.metadata.labels, &i.metadata.annotations, json!(i.spec)),
        );
    }
    let get = async |what: &str| -> Value {
        let ns = "ingress-nginx";
        let name = "ingress-nginx-controller";
        match what {
            "Service" => {
                let s = Api::<Service>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                keep(&s.metadata.labels, &s.metadata.annotations, json!(s.spec))
            }
            "Deployment" => {
                let d = Api::<Deployment>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                keep(&d.metadata.labels, &d.metadata.annotations, json!(d.spec))
            }
            "ConfigMap" => {
                let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get(name)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                keep(&c.metadata.labels, &c.metadata.annotations, json!(c.data))
            }
            _ => {
                let c = Api::<IngressClass>::all(client.clone())
                    .get("nginx")
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                keep(&c.metadata.labels, &c.metadata.annotations, json!(c.spec))
            }
        }
    };
    for kind in ["Service", "Deployment", "ConfigMap", "IngressClass"] {
        out.insert(kind.to_owned(), get(kind).await);
    }
    out
}

/// A front door on 127.0.0.1: `answers` maps a path to (status, Location); anything else 404.
async fn front_door(answers: Vec<(&'static str, u16, Option<&'static str>)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let answers = answers.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, location) = answers
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .map_or((404, None), |(_, s, l)| (*s, *l));
                let location = location
                    .map(|l| format!("location: {l}\r\n"))
                    .unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{location}connection: close\r\n\r\n"
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

fn gateway_api(
    client: &kube::Client,
    namespace: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", kind);
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

fn condition(kind: &str) -> Value {
    json!({ "type": kind, "status": "True", "reason": kind, "message": "set by the test's stand-in controller",
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string() })
}

/// Plays Cilium's Gateway controller for one migration: marks Gateway `gateway/cilium`
/// Programmed at 127.0.0.1 (or at the address its spec asks for, once it does), and each route
/// Accepted with ResolvedRefs, as each appears.
fn stand_in_controller(client: &kube::Client, routes: Vec<(String, String)>) {
    let gateways = gateway_api(client, SHARED, "Gateway", "gateways");
    tokio::spawn(async move {
        for wanted in [None, Some(NGINX_IP)] {
            let asked = move |o: Option<&DynamicObject>| match wanted {
                None => o.is_some(),
                Some(ip) => o.is_some_and(|o| o.data["spec"]["addresses"][0]["value"] == ip),
            };
            if await_condition(gateways.clone(), "cilium", asked)
                .await
                .is_err()
            {
                return;
            }
            let status = json!({ "status": {
                "addresses": [{ "type": "IPAddress", "value": wanted.unwrap_or("127.0.0.1") }],
                "conditions": [condition("Accepted"), condition("Programmed")],
            } });
            if let Err(e) = gateways
                .patch_status("cilium", &PatchParams::default(), &Patch::Merge(status))
                .await
            {
                panic!("the stand-in controller cannot write the Gateway's status: {e}");
            }
        }
    });
    for (namespace, name) in routes {
        let api = gateway_api(client, &namespace, "HTTPRoute", "httproutes");
        tokio::spawn(async move {
            let Ok(Some(route)) =
                await_condition(api.clone(), &name, |o: Option<&DynamicObject>| o.is_some()).await
            else {
                return;
            };
            let parents: Vec<Value> = route.data["spec"]["parentRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|parent| json!({ "parentRef": parent, "controllerName": "io.cilium/gateway-controller",
                                      "conditions": [condition("Accepted"), condition("ResolvedRefs")] }))
                .collect();
            let status = json!({ "status": { "parents": parents } });
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
            {
                panic!("the stand-in controller cannot write {namespace}/{name}'s status: {e}");
            }
        });
    }
}

/// Runs `xtask` (the operator's commands) with `args`: (success, stdout, stderr).
async fn xtask(args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(tests::xtask_binary());
    command.args(args).stdin(std::process::Stdio::null());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("running xtask: {e}"));
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `apply` creates the shared Gateway and the routes beside ingress-nginx and probes both front
/// doors; `cutover` is refused while the probe found a difference (nothing changes); `rollback`
/// leaves the Ingresses and ingress-nginx's objects exactly as before. A second round cuts over
/// despite the difference (`--accept-differences`): ingress-nginx's IP moves to the Gateway
/// (through a /32 pool), and `rollback` again restores everything as it was.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_ingress_apply_cutover_rollback() {
    let Some(upstream) =
        upstream::Upstream::for_test("migrate_ingress::migrate_ingress_apply_cutover_rollback")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let testbed = tests::start_own_testbed(&dir.path().join("testbed"), 1).await;
    let tools = testbed.tools();
    let kubeconfig = testbed.kubeconfig().to_path_buf();
    let client = testbed.client().await.unwrap_or_else(|e| panic!("{e}"));

    let crd_file = upstream
        .gateway_api_crds("v1.2.1")
        .join("standard-install.yaml");
    let text = std::fs::read_to_string(&crd_file)
        .unwrap_or_else(|e| panic!("{}: {e}", crd_file.display()));
    let mut objects: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{e}"));
    objects.retain(|o| !o.is_null());
    let fixture = FixtureOptions {
        nodes: FixtureOptions::nodes_named(testbed.nodes().iter().cloned()),
        ..FixtureOptions::default()
    };
    objects.extend(fixtures::cilium_custom_resources(&fixture).unwrap_or_else(|e| panic!("{e}")));
    objects.extend(ingress_nginx());
    objects.extend(applications());
    fixtures::apply(&tools.kubectl, &kubeconfig, &objects)
        .unwrap_or_else(|e| panic!("seeding: {e}"));
    // Play the load balancer: ingress-nginx's Service has its external IP.
    Api::<Service>::namespaced(client.clone(), "ingress-nginx")
        .patch_status(
            "ingress-nginx-controller",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "loadBalancer": { "ingress": [{ "ip": NGINX_IP }] } } }),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = state(&client).await;

    // `gateway-api check` sees the pools and ingress-nginx's address.
    let facts = cilium_gateway::collect(&client, None, &cilium_gateway::Target::kubespray())
        .await
        .unwrap_or_else(|e| panic!("collect: {e}"));
    let nginx = facts
        .ingress_nginx
        .clone()
        .unwrap_or_else(|| panic!("no ingress-nginx found"));
    assert_eq!(nginx.service, "ingress-nginx/ingress-nginx-controller");
    assert_eq!(nginx.addresses, [NGINX_IP]);
    assert!(
        facts
            .lb_ip_pool_blocks
            .iter()
            .any(|p| p.name == "homelab-pool" && p.blocks == ["10.5.0.0/24"]),
        "{:?}",
        facts.lb_ip_pool_blocks
    );
    let mut facts = facts;
    facts.cilium_version = Some("1.17.3".to_owned());
    let report = cilium_gateway::check(&facts, None);
    let item = report
        .item("ingress-nginx address")
        .unwrap_or_else(|| panic!("no item"));
    assert!(
        item.detail.contains("203.0.113.10 is in no LB-IPAM pool"),
        "{}",
        item.detail
    );

    let options = MigrateOptions {
        // Aimed at the installed CRDs (v1.2.1 standard) and a Cilium that serves them (1.17).
        convert: ConvertOptions {
            cilium_minor: 17,
            crd_version: cilium_gateway::bundle::BundleVersion::new(1, 2, 1),
            tls_route_crd: false,
            ..ConvertOptions::default()
        },
        layout: Layout::Shared {
            namespace: SHARED.to_owned(),
        },
        address: AddressMode::TakeOver,
        nginx: IngressNginx::default(),
    };
    let facts = migrate_ingress::read_facts(&client, &options.nginx, "kube-system")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let plan = migrate_ingress::plan(&facts, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.take_over.as_deref(), Some(NGINX_IP));
    assert_eq!(plan.take_over_pool.as_deref(), Some("203.0.113.10/32"));
    let routes: Vec<(String, String)> = plan
        .objects
        .iter()
        .filter(|o| o["kind"] == "HTTPRoute")
        .map(|o| {
            (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(!routes.is_empty());

    let nginx_door = front_door(vec![
        ("/", 200, None),
        ("/cart", 308, Some("https://shop.example.com/cart")),
    ])
    .await;
    let gateway_door = front_door(vec![
        ("/", 200, None),
        ("/cart", 302, Some("https://shop.example.com/cart")),
    ])
    .await;
    let probe = ProbeOptions {
        nginx: Some(FrontDoor {
            http: nginx_door,
            https: None,
        }),
        gateway: Some(FrontDoor {
            http: gateway_door,
            https: None,
        }),
        headers: Vec::new(),
        timeout: Duration::from_secs(10),
    };
    let mut progress = |line: &str| eprintln!("migrate-ingress: {line}");

    // Round 1: apply, cutover refused, rollback.
    let journal = dir.path().join("round1.json");
    // A Gateway of the same name that apply did not make is never taken over.
    let gateways = gateway_api(&client, SHARED, "Gateway", "gateways");
    let theirs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "name": "cilium", "namespace": SHARED },
        "spec": { "gatewayClassName": "cilium",
                  "listeners": [{ "name": "http", "protocol": "HTTP", "port": 80 }] },
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    gateways
        .create(&Default::default(), &theirs)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let refused = migrate_ingress::apply(
        &client,
        &options,
        "kube-system",
        &journal,
        None,
        WAIT,
        &mut progress,
    )
    .await
    .expect_err("apply must not take over the operator's Gateway");
    assert!(
        refused
            .to_string()
            .contains("Gateway gateway/cilium exists and was not made by migrate-ingress"),
        "{refused}"
    );
    assert!(!journal.exists(), "a refused apply wrote a journal");
    assert!(
        !migrate_ingress::run::backup_path(&journal).exists(),
        "a refused apply wrote a backup"
    );
    let untouched = gateways
        .get("cilium")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        untouched.data["spec"]["listeners"].as_array().map(Vec::len),
        Some(1)
    );
    gateways
        .delete("cilium", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    await_condition(
        gateways.clone(),
        "cilium",
        kube::runtime::conditions::is_deleted(
            untouched.metadata.uid.as_deref().unwrap_or_default(),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    stand_in_controller(&client, routes.clone());
    let applied = migrate_ingress::apply(
        &client,
        &options,
        "kube-system",
        &journal,
        Some(&probe),
        WAIT,
        &mut progress,
    )
    .await
    .unwrap_or_else(|e| panic!("apply: {e}"));
    assert_eq!(
        applied
            .gateway_addresses
            .get("gateway/cilium")
            .map(String::as_str),
        Some("127.0.0.1")
    );
    let report = applied.probe.unwrap_or_else(|| panic!("no probe report"));
    assert_eq!(report.compared, 3, "{}", report.text());
    assert_eq!(report.differences.len(), 1, "{}", report.text());
    assert_eq!(report.differences[0].path, "/cart");
    assert_eq!(mode(&journal), 0o600);
    let backup = migrate_ingress::run::backup_path(&journal);
    assert_eq!(mode(&backup), 0o600);
    // ingress-nginx keeps serving: nothing of it changed.
    assert_eq!(state(&client).await, before);

    // apply again resumes the same migration: nothing new, the first backup kept.
    let backup_text = std::fs::read_to_string(&backup).unwrap_or_else(|e| panic!("{e}"));
    let resumed = migrate_ingress::apply(
        &client,
        &options,
        "kube-system",
        &journal,
        Some(&probe),
        WAIT,
        &mut progress,
    )
    .await
    .unwrap_or_else(|e| panic!("apply again: {e}"));
    assert_eq!(resumed.probe.map(|r| r.differences.len()), Some(1));
    assert_eq!(
        std::fs::read_to_string(&backup).unwrap_or_else(|e| panic!("{e}")),
        backup_text,
        "a resumed apply overwrote the backup"
    );

    // The command line: plan is read-only and says where the IP goes; cutover is refused too,
    // and releases the run Lease it took.
    let (ok, stdout, stderr) = xtask(&[
        "gateway-api",
        "migrate-ingress",
        "plan",
        "--shared-gateway",
        SHARED,
        "--address",
        "take-over",
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--helm",
        &tools.helm3.display().to_string(),
        "--cilium-version",
        "1.17.3",
    ])
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "cutover moves 203.0.113.10 from ingress-nginx's Service to Gateway gateway/cilium"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("ReferenceGrant shop/cilium-gateway-gateway-secrets"),
        "{stdout}"
    );
    let (ok, _, stderr) = xtask(&[
        "gateway-api",
        "migrate-ingress",
        "cutover",
        "--journal",
        &journal.display().to_string(),
        "--kubeconfig",
        &kubeconfig.display().to_string(),
    ])
    .await;
    assert!(!ok, "the command line cut over despite the difference");
    assert!(stderr.contains("the probe found 1 difference"), "{stderr}");
    assert_eq!(
        state(&client).await,
        before,
        "a refused cutover changed something"
    );

    let refused = migrate_ingress::cutover(&client, &journal, false, WAIT, &mut progress)
        .await
        .expect_err("cutover must be refused while the probe found a difference");
    let text = refused.to_string();
    assert!(text.contains("shop.example.com/cart"), "{text}");
    assert!(text.contains("--accept-differences"), "{text}");
    assert_eq!(
        state(&client).await,
        before,
        "a refused cutover changed something"
    );
    let recorded = migrate_ingress::MigrateJournal::load(&journal)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no journal"));
    assert_eq!(recorded.stage, Stage::Applied);

    let rolled = migrate_ingress::rollback(&client, &journal, WAIT, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("rollback: {e}"));
    assert!(rolled.restored.is_empty(), "{rolled:?}");
    assert_eq!(state(&client).await, before);
    assert!(
        gateway_api(&client, SHARED, "Gateway", "gateways")
            .get_opt("cilium")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    for (namespace, name) in &routes {
        assert!(
            gateway_api(&client, namespace, "HTTPRoute", "httproutes")
                .get_opt(name)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
    }

    // Round 2: apply, cutover with --accept-differences moves the IP, rollback restores it.
    let journal = dir.path().join("round2.json");
    stand_in_controller(&client, routes.clone());
    migrate_ingress::apply(
        &client,
        &options,
        "kube-system",
        &journal,
        Some(&probe),
        WAIT,
        &mut progress,
    )
    .await
    .unwrap_or_else(|e| panic!("apply: {e}"));
    let moved = migrate_ingress::cutover(&client, &journal, true, WAIT, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("cutover: {e}"));
    assert_eq!(
        moved,
        CutOver::Moved {
            ip: NGINX_IP.to_owned(),
            gateway: "gateway/cilium".to_owned()
        }
    );
    let service = Api::<Service>::namespaced(client.clone(), "ingress-nginx")
        .get("ingress-nginx-controller")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        service.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort")
    );
    let pools = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cilium.io", "v2alpha1", "CiliumLoadBalancerIPPool"),
        "ciliumloadbalancerippools",
    );
    let pools: Api<DynamicObject> = Api::all_with(client.clone(), &pools);
    let takeover = pools
        .get("cilium-migrate-ingress-takeover")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        takeover.data["spec"]["blocks"],
        json!([{ "cidr": "203.0.113.10/32" }])
    );

    let rolled = migrate_ingress::rollback(&client, &journal, WAIT, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("rollback: {e}"));
    assert_eq!(
        rolled.restored,
        ["Service ingress-nginx/ingress-nginx-controller"]
    );
    assert_eq!(state(&client).await, before);
    assert!(
        pools
            .get_opt("cilium-migrate-ingress-takeover")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
    assert!(
        pools
            .get_opt("homelab-pool")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some(),
        "rollback deleted the operator's pool"
    );
    let recorded = migrate_ingress::MigrateJournal::load(&journal)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no journal"));
    assert_eq!(recorded.stage, Stage::RolledBack);
}
