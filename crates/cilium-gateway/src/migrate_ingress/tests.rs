//! The plan over recorded facts, and the probe against local HTTP servers that play ingress-nginx
//! and the Gateway.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use serde_json::{Value, json};

use super::*;
use crate::convert::ConvertOptions;

fn ingress(namespace: &str, name: &str, host: &str, paths: &[&str], tls: Option<&str>) -> Ingress {
    let paths: Vec<Value> = paths
        .iter()
        .map(|p| {
            json!({ "path": p, "pathType": "Prefix",
                    "backend": { "service": { "name": "web", "port": { "number": 80 } } } })
        })
        .collect();
    let mut spec = json!({
        "ingressClassName": "nginx",
        "rules": [{ "host": host, "http": { "paths": paths } }],
    });
    if let Some(secret) = tls {
        spec["tls"] = json!([{ "hosts": [host], "secretName": secret }]);
    }
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn nginx_service(status_ip: Option<&str>) -> Service {
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "ingress-nginx-controller", "namespace": "ingress-nginx" },
        "spec": { "type": "LoadBalancer", "ports": [{ "name": "http", "port": 80 }] },
    });
    if let Some(ip) = status_ip {
        service["status"] = json!({ "loadBalancer": { "ingress": [{ "ip": ip }] } });
    }
    serde_json::from_value(service).unwrap_or_else(|e| panic!("{e}"))
}

fn facts() -> Facts {
    Facts {
        ingresses: vec![
            ingress(
                "shop",
                "web",
                "shop.example.com",
                &["/", "/cart"],
                Some("shop-tls"),
            ),
            ingress("blog", "web", "blog.example.com", &["/"], Some("blog-tls")),
        ],
        nginx_service: Some(nginx_service(Some("192.0.2.10"))),
        pools: Some(vec![PoolFacts {
            name: "lan".into(),
            blocks: vec!["192.0.2.0/24".into()],
        }]),
        l2_policy_crd: true,
        ..Facts::default()
    }
}

fn options(layout: Layout, address: AddressMode) -> MigrateOptions {
    MigrateOptions {
        convert: ConvertOptions::default(),
        layout,
        address,
        nginx: IngressNginx::default(),
    }
}

fn kinds(plan: &Plan) -> Vec<String> {
    plan.objects
        .iter()
        .map(|o| {
            format!(
                "{} {}/{}",
                o["kind"].as_str().unwrap_or_default(),
                o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("-"),
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// The shared layout: one Gateway whose listeners admit exactly the Ingresses' namespaces,
/// certificate references into those namespaces with a ReferenceGrant in each, and every route's
/// parent pointing at the shared Gateway's namespace.
#[test]
fn shared_gateway_admits_the_namespaces_and_grants_their_secrets() {
    let shared = Layout::Shared {
        namespace: "gateway".into(),
    };
    let plan =
        plan(&facts(), &options(shared, AddressMode::Existing)).unwrap_or_else(|e| panic!("{e}"));
    let kinds = kinds(&plan);
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("Gateway "))
            .collect::<Vec<_>>(),
        ["Gateway gateway/cilium"]
    );
    assert!(
        kinds.contains(&"ReferenceGrant blog/cilium-gateway-gateway-secrets".to_owned()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"ReferenceGrant shop/cilium-gateway-gateway-secrets".to_owned()),
        "{kinds:?}"
    );
    let gateway = plan
        .objects
        .iter()
        .find(|o| o["kind"] == "Gateway")
        .unwrap_or_else(|| panic!("no Gateway"));
    for listener in gateway["spec"]["listeners"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(
            listener.pointer("/allowedRoutes/namespaces/selector/matchExpressions/0/values"),
            Some(&json!(["blog", "shop"])),
            "{listener}"
        );
        if let Some(reference) = listener.pointer("/tls/certificateRefs/0") {
            assert!(
                reference["namespace"] == "shop" || reference["namespace"] == "blog",
                "{reference}"
            );
        }
    }
    let grant = plan
        .objects
        .iter()
        .find(|o| o["kind"] == "ReferenceGrant" && o["metadata"]["namespace"] == "shop")
        .unwrap_or_else(|| panic!("no grant"));
    assert_eq!(
        grant["spec"]["to"],
        json!([{ "group": "", "kind": "Secret", "name": "shop-tls" }])
    );
    assert_eq!(grant["spec"]["from"][0]["namespace"], "gateway");
    for route in plan.objects.iter().filter(|o| o["kind"] == "HTTPRoute") {
        for parent in route["spec"]["parentRefs"].as_array().into_iter().flatten() {
            assert_eq!(parent["namespace"], "gateway", "{route}");
        }
    }
    for object in &plan.objects {
        assert_eq!(
            object["metadata"]["labels"][MANAGED_LABEL], "true",
            "{object}"
        );
    }
}

/// Take-over: the IP ingress-nginx has now is what the Gateway gets at cut-over; a pool must
/// contain it (else a /32 pool is planned), and several Gateways cannot share it.
#[test]
fn take_over_plans_ingress_nginx_ip_and_its_pool() {
    let shared = || Layout::Shared {
        namespace: "gateway".into(),
    };
    let plan_in_pool =
        plan(&facts(), &options(shared(), AddressMode::TakeOver)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan_in_pool.take_over.as_deref(), Some("192.0.2.10"));
    assert_eq!(plan_in_pool.take_over_pool, None);

    let mut outside = facts();
    outside.pools = Some(vec![]);
    let plan_outside =
        plan(&outside, &options(shared(), AddressMode::TakeOver)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        plan_outside.take_over_pool.as_deref(),
        Some("192.0.2.10/32")
    );
    assert!(plan_text(&plan_outside).contains("cutover moves 192.0.2.10"));

    let error = plan(
        &facts(),
        &options(Layout::PerNamespace, AddressMode::TakeOver),
    )
    .expect_err("two Gateways, one IP");
    assert!(error.to_string().contains("--layout shared"), "{error}");

    let mut no_ip = facts();
    no_ip.nginx_service = Some(nginx_service(None));
    let error = plan(&no_ip, &options(shared(), AddressMode::TakeOver)).expect_err("no IP");
    assert!(error.to_string().contains("has no external IP"), "{error}");
}

/// A new pool is announced by an L2 policy, unless the cluster runs BGP (then the operator is
/// told to advertise it); host-network mode needs the release value first.
#[test]
fn pool_is_announced_by_l2_or_bgp_and_host_network_needs_the_value() {
    let pool = AddressMode::Pool {
        cidr: "198.51.100.0/29".into(),
    };
    let l2 = plan(&facts(), &options(Layout::PerNamespace, pool.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let kinds = kinds(&l2);
    assert_eq!(
        kinds[0],
        "CiliumLoadBalancerIPPool -/cilium-migrate-ingress"
    );
    assert_eq!(
        kinds[1],
        "CiliumL2AnnouncementPolicy -/cilium-migrate-ingress"
    );
    assert_eq!(
        l2.objects[0]["spec"]["blocks"],
        json!([{ "cidr": "198.51.100.0/29" }])
    );
    assert_eq!(l2.objects[1]["spec"]["loadBalancerIPs"], true);

    let mut bgp_facts = facts();
    bgp_facts.bgp = true;
    let bgp =
        plan(&bgp_facts, &options(Layout::PerNamespace, pool)).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !bgp.objects
            .iter()
            .any(|o| o["kind"] == "CiliumL2AnnouncementPolicy")
    );
    assert!(
        bgp.warnings
            .iter()
            .any(|w| w.message.contains("BGP control plane is on"))
    );

    let error = plan(
        &facts(),
        &options(Layout::PerNamespace, AddressMode::HostNetwork),
    )
    .expect_err("value off");
    assert!(
        error.to_string().contains("gatewayAPI.hostNetwork.enabled"),
        "{error}"
    );
    let bad = plan(
        &facts(),
        &options(
            Layout::PerNamespace,
            AddressMode::Pool {
                cidr: "10.0.0.1".into(),
            },
        ),
    )
    .expect_err("not a CIDR");
    assert!(bad.to_string().contains("not a CIDR"), "{bad}");
}

#[test]
fn addresses_and_blocks() {
    let service = nginx_service(Some("192.0.2.10"));
    assert_eq!(nginx_addresses(&service), ["192.0.2.10"]);
    let ip = |s: &str| s.parse().unwrap_or_else(|e| panic!("{e}"));
    assert!(block_contains("192.0.2.0/24", ip("192.0.2.10")));
    assert!(!block_contains("192.0.2.0/28", ip("192.0.2.17")));
    assert!(block_contains("192.0.2.5-192.0.2.20", ip("192.0.2.10")));
    assert!(block_contains("2001:db8::/64", ip("2001:db8::5")));
    assert!(!block_contains("2001:db8::/64", ip("192.0.2.10")));
}

/// A local HTTP server answering by path: `routes` maps a path to (status, Location).
async fn front_door(routes: Vec<(&'static str, u16, Option<&'static str>)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let found = routes
                            .iter()
                            .find(|(p, _, _)| *p == request.uri().path())
                            .cloned();
                        async move {
                            let (status, location) = found.map_or((404, None), |(_, s, l)| (s, l));
                            let mut response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "text/plain");
                            if let Some(location) = location {
                                response = response.header("location", location);
                            }
                            Ok::<_, Infallible>(
                                response.body(Empty::<Bytes>::new()).unwrap_or_default(),
                            )
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    address
}

/// The probe asks both front doors for every host and path with the Host header set, follows
/// no redirect, and names exactly the path whose status and Location differ.
#[tokio::test]
async fn probe_names_the_path_that_answers_differently() {
    let nginx = front_door(vec![
        ("/", 200, None),
        ("/cart", 308, Some("https://shop.example.com/cart")),
    ])
    .await;
    let gateway = front_door(vec![
        ("/", 200, None),
        ("/cart", 301, Some("https://shop.example.com:443/cart")),
    ])
    .await;
    let ingresses = vec![ingress(
        "shop",
        "web",
        "shop.example.com",
        &["/", "/cart"],
        None,
    )];
    let targets = probe::targets(&ingresses, "nginx");
    assert_eq!(targets.len(), 2);
    let door = |http| FrontDoor { http, https: None };
    let report = probe::probe(
        &targets,
        &door(nginx),
        &door(gateway),
        &["content-type".to_owned()],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(report.compared, 2);
    assert_eq!(report.differences.len(), 1, "{}", report.text());
    let difference = &report.differences[0];
    assert_eq!(
        (difference.host.as_str(), difference.path.as_str()),
        ("shop.example.com", "/cart")
    );
    let text = report.text();
    assert!(
        text.contains(
            "http://shop.example.com/cart: ingress-nginx 308 -> https://shop.example.com/cart"
        ),
        "{text}"
    );
    assert!(
        text.contains("Gateway 301 -> https://shop.example.com:443/cart"),
        "{text}"
    );

    // The same doors agree with themselves: no difference.
    let same = probe::probe(
        &targets,
        &door(nginx),
        &door(nginx),
        &[],
        Duration::from_secs(10),
    )
    .await;
    assert!(same.differences.is_empty(), "{}", same.text());

    // A door that does not answer is a difference too, never a pass.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let closed_address = closed.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(closed);
    let down = probe::probe(
        &targets,
        &door(nginx),
        &door(closed_address),
        &[],
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(down.differences.len(), 2);
}

/// An HTTPS front door on 127.0.0.1 that answers with the SNI it was given (header `x-sni`) and
/// the Host header (`x-host`), with a self-signed certificate for `host`.
async fn tls_front_door(host: &str) -> SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let certified =
        rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap_or_else(|e| panic!("{e}"));
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                let host = text
                    .lines()
                    .find_map(|l| l.strip_prefix("host: "))
                    .unwrap_or("-")
                    .trim()
                    .to_owned();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nx-sni: {sni}\r\nx-host: {host}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = tls.write_all(response.as_bytes()).await;
            });
        }
    });
    address
}

/// HTTPS requests carry the host as SNI and Host header, and a self-signed certificate does not
/// stop the comparison.
#[tokio::test]
async fn probe_sets_sni_and_host_over_https() {
    let door = tls_front_door("shop.example.com").await;
    let answer = probe::request(
        door,
        true,
        "shop.example.com",
        "/cart",
        &["x-sni".to_owned(), "x-host".to_owned()],
        Duration::from_secs(10),
    )
    .await;
    let probe::Answer::Response {
        status, headers, ..
    } = answer
    else {
        panic!("no response: {answer}");
    };
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("x-sni").map(String::as_str),
        Some("shop.example.com")
    );
    assert_eq!(
        headers.get("x-host").map(String::as_str),
        Some("shop.example.com")
    );
}

/// Convert is aimed at the cluster: the release's Cilium minor and the installed CRDs' channel,
/// release and TLSRoute.
#[test]
fn convert_options_follow_the_cluster() {
    let state: crate::ClusterState = serde_json::from_value(json!({
        "cilium_version": "1.17.3",
        "crds": [
            { "plural": "gateways", "served": ["v1"], "bundle_version": "v1.2.1", "channel": "experimental" },
        ],
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let options = convert_options_for(&state, "nginx", "cilium");
    assert_eq!(options.cilium_minor, 17);
    assert_eq!(options.crd_channel, crate::bundle::Channel::Experimental);
    assert_eq!(
        options.crd_version,
        crate::bundle::BundleVersion::new(1, 2, 1)
    );
    assert!(!options.tls_route_crd);
}

/// The header ConfigMaps `read_facts` found reach convert: `custom-headers` becomes a response
/// header filter on the route instead of a warning.
#[test]
fn the_plan_carries_custom_headers_from_the_configmaps_in_the_facts() {
    let mut facts = facts();
    facts.ingresses[0]
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            "nginx.ingress.kubernetes.io/custom-headers".into(),
            "security-headers".into(),
        );
    let header_warning = |plan: &Plan| {
        plan.warnings.iter().any(|w| {
            w.annotation
                .as_deref()
                .is_some_and(|a| a.ends_with("custom-headers"))
        })
    };
    let options = options(Layout::PerNamespace, AddressMode::Existing);
    let without = plan(&facts, &options).unwrap_or_else(|e| panic!("{e}"));
    assert!(header_warning(&without), "no ConfigMap: warned");
    facts.header_config_maps = vec![
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "security-headers", "namespace": "shop" },
            "data": { "X-Frame-Options": "DENY" },
        }))
        .unwrap_or_else(|e| panic!("{e}")),
    ];
    let with = plan(&facts, &options).unwrap_or_else(|e| panic!("{e}"));
    assert!(!header_warning(&with), "{:?}", with.warnings);
    assert!(
        serde_json::to_string(&with.objects)
            .unwrap_or_default()
            .contains("X-Frame-Options"),
        "the route adds the header"
    );
}
