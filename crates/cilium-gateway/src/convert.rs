//! `convert`: ingress-nginx Ingresses → a Gateway per namespace and HTTPRoutes for GatewayClass
//! `cilium`, with a warning for every annotation that does not carry over.
//!
//! Converted, like ingress2gateway's ingress-nginx provider: hosts, paths (`Prefix` and
//! `ImplementationSpecific` → `PathPrefix`, `Exact` → `Exact`), TLS (an HTTPS listener per host
//! with the Ingress's Secret), the canary annotations (`canary`, `canary-weight`,
//! `canary-weight-total`, `canary-by-header`, `canary-by-header-value`) and `server-alias`.
//! ingress-nginx redirects HTTP to HTTPS for hosts with TLS unless `ssl-redirect: "false"`; that
//! becomes a `RequestRedirect` route on the HTTP listener (status 301, Gateway API's core code;
//! ingress-nginx answers 308 by default). Every other `nginx.ingress.kubernetes.io/`
//! annotation is reported, never silently dropped.

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::gateways::{
    Gateway, GatewayListeners, GatewayListenersTls, GatewayListenersTlsCertificateRefs,
    GatewayListenersTlsMode, GatewaySpec,
};
use gateway_api::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs,
    HttpRouteRulesFilters, HttpRouteRulesFiltersRequestRedirect,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersType, HttpRouteRulesMatches,
    HttpRouteRulesMatchesHeaders, HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPath,
    HttpRouteRulesMatchesPathType, HttpRouteSpec,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use serde::Serialize;
use serde_json::Value;

/// The annotation prefix of ingress-nginx.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// Annotations this conversion carries over (without the prefix).
const CONVERTED: &[&str] = &[
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "server-alias",
    "ssl-redirect",
];

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The IngressClass whose Ingresses are converted (`nginx`).
    pub ingress_class: String,
    /// The GatewayClass the Gateways use (`cilium`).
    pub gateway_class: String,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            ingress_class: "nginx".to_owned(),
            gateway_class: "cilium".to_owned(),
        }
    }
}

/// One thing the conversion could not carry over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Warning {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The annotation, when it is about one.
    pub annotation: Option<String>,
    /// What is lost and what to do.
    pub message: String,
}

/// The result: Gateway and HTTPRoute objects, and the warnings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Conversion {
    /// Gateways first, then HTTPRoutes, each sorted by namespace and name.
    pub objects: Vec<Value>,
    /// Sorted by Ingress, then annotation.
    pub warnings: Vec<Warning>,
    /// Ingresses of other classes, left alone (`namespace/name`).
    pub skipped: Vec<String>,
}

impl Conversion {
    /// The objects as a multi-document YAML stream.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        let mut out = String::new();
        for object in &self.objects {
            out.push_str("---\n");
            out.push_str(&serde_saphyr::to_string(object)?);
        }
        Ok(out)
    }
}

/// A backend with its weight.
#[derive(Debug, Clone, PartialEq)]
struct Backend {
    service: String,
    port: Option<i32>,
    weight: Option<i32>,
}

/// One rule being built: a path match and its backends (and an optional header match).
#[derive(Debug, Clone)]
struct Rule {
    path_type: HttpRouteRulesMatchesPathType,
    path: String,
    header: Option<(String, String)>,
    backends: Vec<Backend>,
}

/// The route of one host of one namespace.
#[derive(Debug, Default)]
struct Route {
    name: String,
    hostnames: BTreeSet<String>,
    rules: Vec<Rule>,
    tls: bool,
    redirect_to_https: bool,
}

/// Converts `ingresses` (all namespaces) using `services` to resolve named ports.
pub fn convert(
    ingresses: &[Ingress],
    services: &[Service],
    options: &ConvertOptions,
) -> Conversion {
    let mut conversion = Conversion::default();
    // (namespace, host) → route; canaries are merged after their primaries.
    let mut routes: BTreeMap<(String, String), Route> = BTreeMap::new();
    // (namespace, host) → TLS secret.
    let mut tls_secrets: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut ordered: Vec<&Ingress> = ingresses.iter().collect();
    ordered.sort_by_key(|i| {
        (
            is_canary(i),
            i.metadata.namespace.clone(),
            i.metadata.name.clone(),
        )
    });

    for ingress in ordered {
        let namespace = ingress
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = ingress.metadata.name.clone().unwrap_or_default();
        let id = format!("{namespace}/{name}");
        if ingress_class(ingress).as_deref() != Some(options.ingress_class.as_str()) {
            conversion.skipped.push(id);
            continue;
        }
        let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
        let nginx = |key: &str| {
            annotations
                .get(&format!("{NGINX_PREFIX}{key}"))
                .map(String::as_str)
        };
        for key in annotations.keys() {
            if let Some(short) = key.strip_prefix(NGINX_PREFIX)
                && !CONVERTED.contains(&short)
            {
                conversion.warnings.push(Warning {
                    ingress: id.clone(),
                    annotation: Some(key.clone()),
                    message: "no Gateway API equivalent is generated; configure it by hand (an HTTPRoute filter, a policy, or Cilium's Envoy config)".to_owned(),
                });
            }
        }
        let Some(spec) = &ingress.spec else { continue };
        if spec.default_backend.is_some() {
            conversion.warnings.push(Warning {
                ingress: id.clone(),
                annotation: None,
                message: "spec.defaultBackend is not converted: add an HTTPRoute with a PathPrefix / rule for it".to_owned(),
            });
        }
        let canary = is_canary(ingress);
        let weight_total = nginx("canary-weight-total")
            .and_then(|w| w.parse::<i32>().ok())
            .unwrap_or(100);
        let weight = nginx("canary-weight").and_then(|w| w.parse::<i32>().ok());
        let header = nginx("canary-by-header").map(|h| {
            (
                h.to_owned(),
                nginx("canary-by-header-value")
                    .unwrap_or("always")
                    .to_owned(),
            )
        });
        let ssl_redirect = nginx("ssl-redirect").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let aliases: Vec<String> = nginx("server-alias")
            .map(|a| {
                a.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();

        for tls in spec.tls.iter().flatten() {
            for host in tls.hosts.iter().flatten() {
                match &tls.secret_name {
                    Some(secret) => {
                        tls_secrets.insert((namespace.clone(), host.clone()), secret.clone());
                    }
                    None => conversion.warnings.push(Warning {
                        ingress: id.clone(),
                        annotation: None,
                        message: format!("TLS for {host} has no secretName (the controller's default certificate): give the HTTPS listener a certificateRef"),
                    }),
                }
            }
        }

        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default();
            let Some(http) = &rule.http else { continue };
            let key = (namespace.clone(), host.clone());
            if canary && !routes.contains_key(&key) {
                conversion.warnings.push(Warning {
                    ingress: id.clone(),
                    annotation: Some(format!("{NGINX_PREFIX}canary")),
                    message: format!(
                        "no primary Ingress for host {host:?}: the canary is not converted"
                    ),
                });
                continue;
            }
            let route = routes.entry(key.clone()).or_insert_with(|| Route {
                name: route_name(&name, &host),
                ..Route::default()
            });
            if !host.is_empty() {
                route.hostnames.insert(host.clone());
            }
            for alias in &aliases {
                route.hostnames.insert(alias.clone());
                if tls_secrets.contains_key(&key) {
                    conversion.warnings.push(Warning {
                        ingress: id.clone(),
                        annotation: Some(format!("{NGINX_PREFIX}server-alias")),
                        message: format!("the HTTPS listener of alias {alias} reuses the certificate of {host}: make sure it covers {alias}"),
                    });
                }
            }
            if tls_secrets.contains_key(&key) {
                route.tls = true;
                route.redirect_to_https |= ssl_redirect && !canary;
            }
            for path in &http.paths {
                let Some(backend) = backend(
                    &path.backend,
                    &namespace,
                    services,
                    &id,
                    &mut conversion.warnings,
                ) else {
                    continue;
                };
                let path_type = match path.path_type.as_str() {
                    "Exact" => HttpRouteRulesMatchesPathType::Exact,
                    _ => HttpRouteRulesMatchesPathType::PathPrefix,
                };
                let value = path.path.clone().unwrap_or_else(|| "/".to_owned());
                if !canary {
                    route.rules.push(Rule {
                        path_type,
                        path: value,
                        header: None,
                        backends: vec![backend],
                    });
                    continue;
                }
                let Some(primary) = route
                    .rules
                    .iter_mut()
                    .find(|r| r.header.is_none() && r.path == value && r.path_type == path_type)
                else {
                    conversion.warnings.push(Warning {
                        ingress: id.clone(),
                        annotation: Some(format!("{NGINX_PREFIX}canary")),
                        message: format!("no primary path {value} on host {host:?}: this canary path is not converted"),
                    });
                    continue;
                };
                if let Some(weight) = weight.filter(|w| *w > 0) {
                    let weight = weight.min(weight_total);
                    for existing in &mut primary.backends {
                        existing.weight = Some(weight_total - weight);
                    }
                    primary.backends.push(Backend {
                        weight: Some(weight),
                        ..backend.clone()
                    });
                }
                if let Some(header) = &header {
                    let rule = Rule {
                        path_type,
                        path: value.clone(),
                        header: Some(header.clone()),
                        backends: vec![backend.clone()],
                    };
                    route.rules.push(rule);
                }
            }
        }
    }

    // Listeners per namespace: one HTTP (and with TLS one HTTPS) listener per host, aliases
    // included; keyed by name so that hosts shared by several routes appear once.
    let mut gateways: BTreeMap<String, BTreeMap<String, GatewayListeners>> = BTreeMap::new();
    let mut route_objects = Vec::new();
    for ((namespace, host), route) in &routes {
        let secret = tls_secrets.get(&(namespace.clone(), host.clone()));
        let mut hosts: Vec<String> = vec![host.clone()];
        hosts.extend(route.hostnames.iter().filter(|h| *h != host).cloned());
        let listeners = gateways.entry(namespace.clone()).or_default();
        let mut route_sections = Vec::new();
        let mut redirect_sections = Vec::new();
        for listener_host in &hosts {
            let slug = listener_slug(listener_host);
            let hostname = Some(listener_host.clone()).filter(|h| !h.is_empty());
            let http_name = format!("{slug}-http");
            let http = GatewayListeners {
                name: http_name.clone(),
                protocol: "HTTP".to_owned(),
                port: 80,
                hostname: hostname.clone(),
                ..GatewayListeners::default()
            };
            listeners.insert(http_name.clone(), http);
            let Some(secret) = secret else {
                route_sections.push(http_name);
                continue;
            };
            let https_name = format!("{slug}-https");
            let https = GatewayListeners {
                name: https_name.clone(),
                protocol: "HTTPS".to_owned(),
                port: 443,
                hostname,
                tls: Some(GatewayListenersTls {
                    mode: Some(GatewayListenersTlsMode::Terminate),
                    certificate_refs: Some(vec![GatewayListenersTlsCertificateRefs {
                        kind: Some("Secret".to_owned()),
                        name: secret.clone(),
                        ..GatewayListenersTlsCertificateRefs::default()
                    }]),
                    ..GatewayListenersTls::default()
                }),
                ..GatewayListeners::default()
            };
            listeners.insert(https_name.clone(), https);
            route_sections.push(https_name);
            if route.redirect_to_https {
                redirect_sections.push(http_name);
            } else {
                route_sections.push(http_name);
            }
        }
        let parents = |sections: &[String]| -> Option<Vec<HttpRouteParentRefs>> {
            let refs = sections.iter().map(|s| HttpRouteParentRefs {
                name: options.gateway_class.clone(),
                section_name: Some(s.clone()),
                ..HttpRouteParentRefs::default()
            });
            Some(refs.collect())
        };
        let hostnames =
            Some(route.hostnames.iter().cloned().collect::<Vec<_>>()).filter(|h| !h.is_empty());
        route_objects.push(object(&http_route(
            &route.name,
            namespace,
            HttpRouteSpec {
                parent_refs: parents(&route_sections),
                rules: Some(route.rules.iter().map(route_rule).collect()),
                hostnames: hostnames.clone(),
            },
        )));
        if !redirect_sections.is_empty() {
            let redirect = HttpRouteRulesFilters {
                r#type: HttpRouteRulesFiltersType::RequestRedirect,
                request_redirect: Some(HttpRouteRulesFiltersRequestRedirect {
                    scheme: Some(HttpRouteRulesFiltersRequestRedirectScheme::Https),
                    status_code: Some(301),
                    ..HttpRouteRulesFiltersRequestRedirect::default()
                }),
                ..HttpRouteRulesFilters::default()
            };
            route_objects.push(object(&http_route(
                &format!("{}-https-redirect", route.name),
                namespace,
                HttpRouteSpec {
                    parent_refs: parents(&redirect_sections),
                    rules: Some(vec![HttpRouteRules {
                        filters: Some(vec![redirect]),
                        ..HttpRouteRules::default()
                    }]),
                    hostnames,
                },
            )));
        }
    }
    for (namespace, listeners) in gateways {
        let mut gateway = Gateway::new(
            &options.gateway_class,
            GatewaySpec {
                gateway_class_name: options.gateway_class.clone(),
                listeners: listeners.into_values().collect(),
                ..GatewaySpec::default()
            },
        );
        gateway.metadata.namespace = Some(namespace);
        conversion.objects.push(object(&gateway));
    }
    conversion.objects.extend(route_objects);
    conversion.warnings.sort();
    conversion.warnings.dedup();
    conversion.skipped.sort();
    conversion
}

fn is_canary(ingress: &Ingress) -> bool {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{NGINX_PREFIX}canary")))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn ingress_class(ingress: &Ingress) -> Option<String> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()?
                .get("kubernetes.io/ingress.class")
                .cloned()
        })
}

fn backend(
    backend: &IngressBackend,
    namespace: &str,
    services: &[Service],
    id: &str,
    warnings: &mut Vec<Warning>,
) -> Option<Backend> {
    let Some(service) = &backend.service else {
        warnings.push(Warning {
            ingress: id.to_owned(),
            annotation: None,
            message: "a resource backend has no HTTPRoute equivalent; it is left out".to_owned(),
        });
        return None;
    };
    let port = service.port.as_ref();
    let number = port.and_then(|p| p.number).or_else(|| {
        let port_name = port?.name.as_deref()?;
        let found = services
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(service.name.as_str())
            })?
            .spec
            .as_ref()?
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(port_name))?
            .port;
        Some(found)
    });
    if number.is_none() {
        warnings.push(Warning {
            ingress: id.to_owned(),
            annotation: None,
            message: format!(
                "the port of Service {} is not a number and the Service does not name it; set backendRefs[].port by hand",
                service.name
            ),
        });
    }
    Some(Backend {
        service: service.name.clone(),
        port: number,
        weight: None,
    })
}

fn http_route(name: &str, namespace: &str, spec: HttpRouteSpec) -> HttpRoute {
    let mut route = HttpRoute::new(name, spec);
    route.metadata.namespace = Some(namespace.to_owned());
    route
}

/// A typed object as the JSON the output is made of (serializing a typed object cannot fail).
fn object(typed: &impl Serialize) -> Value {
    serde_json::to_value(typed).unwrap_or_default()
}

fn route_rule(rule: &Rule) -> HttpRouteRules {
    let matched = HttpRouteRulesMatches {
        path: Some(HttpRouteRulesMatchesPath {
            r#type: Some(rule.path_type.clone()),
            value: Some(rule.path.clone()),
        }),
        headers: rule.header.as_ref().map(|(name, value)| {
            vec![HttpRouteRulesMatchesHeaders {
                r#type: Some(HttpRouteRulesMatchesHeadersType::Exact),
                name: name.clone(),
                value: value.clone(),
            }]
        }),
        ..HttpRouteRulesMatches::default()
    };
    let backends = rule.backends.iter().map(|b| HttpRouteRulesBackendRefs {
        name: b.service.clone(),
        port: b.port,
        weight: b.weight,
        ..HttpRouteRulesBackendRefs::default()
    });
    HttpRouteRules {
        matches: Some(vec![matched]),
        backend_refs: Some(backends.collect()),
        ..HttpRouteRules::default()
    }
}

/// A listener/route name part for a host: `app.example.com` stays, `*.example.com` becomes
/// `wildcard.example.com`, no host is `all`.
fn listener_slug(host: &str) -> String {
    if host.is_empty() {
        return "all".to_owned();
    }
    host.replace('*', "wildcard").to_ascii_lowercase()
}

fn route_name(ingress: &str, host: &str) -> String {
    if host.is_empty() {
        return ingress.to_owned();
    }
    let slug: String = listener_slug(host)
        .chars()
        .map(|c| if c == '.' { '-' } else { c })
        .collect();
    let name = format!("{ingress}-{slug}");
    name.chars().take(253).collect()
}

/// Reads the Ingresses and Services to convert (one namespace, or all with `None`).
pub async fn read_ingresses(
    client: &kube::Client,
    namespace: Option<&str>,
) -> Result<(Vec<Ingress>, Vec<Service>), crate::Error> {
    use kube::api::{Api, ListParams};
    let (ingresses, services): (Api<Ingress>, Api<Service>) = match namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let error = |what: &'static str| {
        move |source| crate::Error::Kube {
            what: what.to_owned(),
            source: Box::new(source),
        }
    };
    let ingresses = ingresses
        .list(&ListParams::default())
        .await
        .map_err(error("Ingresses"))?
        .items;
    let services = services
        .list(&ListParams::default())
        .await
        .map_err(error("Services"))?
        .items;
    Ok((ingresses, services))
}
