//! `convert`: ingress-nginx Ingresses → a Gateway per namespace and HTTPRoutes (GRPCRoutes,
//! TLSRoutes, BackendTLSPolicies) for GatewayClass `cilium`, with a warning for everything that
//! does not carry over.
//!
//! Each annotation follows ingress-nginx's documented behaviour (the per-annotation notes are in
//! [`convert_ingress`] and the corpus tests cite the documentation). A feature is emitted only
//! when the target takes it: the Cilium minor and the installed Gateway API CRDs (channel and
//! release) are [`ConvertOptions`] inputs, judged by `support`; otherwise a warning says what is
//! lost and why. Every `nginx.ingress.kubernetes.io/` annotation ends up in
//! [`Conversion::converted`] or in a [`Warning`]: nothing is dropped silently. Capture groups
//! (`$1`) are translated (`paths`) or refused, never copied.

mod paths;
mod support;

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::backendtlspolicies::{
    BackendTlsPolicy, BackendTlsPolicySpec, BackendTlsPolicyTargetRefs, BackendTlsPolicyValidation,
    BackendTlsPolicyValidationCaCertificateRefs,
};
use gateway_api::experimental::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteRules, HttpRouteRulesBackendRefs,
    HttpRouteRulesFilters, HttpRouteRulesFiltersCors, HttpRouteRulesFiltersRequestHeaderModifier,
    HttpRouteRulesFiltersRequestHeaderModifierSet, HttpRouteRulesFiltersRequestRedirect,
    HttpRouteRulesFiltersRequestRedirectPath, HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersResponseHeaderModifier,
    HttpRouteRulesFiltersResponseHeaderModifierSet, HttpRouteRulesFiltersType,
    HttpRouteRulesFiltersUrlRewrite, HttpRouteRulesFiltersUrlRewritePath,
    HttpRouteRulesFiltersUrlRewritePathType, HttpRouteRulesMatches, HttpRouteRulesMatchesHeaders,
    HttpRouteRulesMatchesHeadersType, HttpRouteRulesMatchesPath, HttpRouteRulesMatchesPathType,
    HttpRouteRulesSessionPersistence, HttpRouteRulesSessionPersistenceCookieConfig,
    HttpRouteRulesSessionPersistenceCookieConfigLifetimeType, HttpRouteRulesSessionPersistenceType,
    HttpRouteRulesTimeouts, HttpRouteSpec,
};
use gateway_api::gateways::{
    Gateway, GatewayListeners, GatewayListenersTls, GatewayListenersTlsCertificateRefs,
    GatewayListenersTlsMode, GatewaySpec,
};
use gateway_api::grpcroutes::{
    GrpcRoute, GrpcRouteParentRefs, GrpcRouteRules, GrpcRouteRulesBackendRefs,
    GrpcRouteRulesMatches, GrpcRouteRulesMatchesMethod, GrpcRouteRulesMatchesMethodType,
    GrpcRouteSpec,
};
use gateway_api::tlsroutes::{
    TlsRoute, TlsRouteParentRefs, TlsRouteRules, TlsRouteRulesBackendRefs, TlsRouteSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use serde::Serialize;
use serde_json::Value;

use crate::bundle::{BundleFit, BundleVersion, Channel, Requirement, bundle_fit};
use paths::{PathMatch, PathRewrite};
use support::Support;

/// The annotation prefix of ingress-nginx.
pub const NGINX_PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// What to convert, and for which target.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The IngressClass whose Ingresses are converted (`nginx`).
    pub ingress_class: String,
    /// The GatewayClass the Gateways use (`cilium`).
    pub gateway_class: String,
    /// The Cilium minor the Gateways run on (`17` for 1.17); what Cilium implements depends on
    /// it. Default 15, the oldest with Gateway API: features it lacks are warned about.
    pub cilium_minor: u32,
    /// The channel of the installed Gateway API CRDs.
    pub crd_channel: Channel,
    /// The release of the installed Gateway API CRDs (default v1.0.0, what Cilium 1.15 needs).
    pub crd_version: BundleVersion,
    /// Whether the (experimental) TLSRoute CRD is installed (needed for `ssl-passthrough`).
    pub tls_route_crd: bool,
    /// Also convert Ingresses without a class (ingress-nginx serves them when its IngressClass
    /// is the cluster's default or with `--watch-ingress-without-class`).
    pub include_classless: bool,
    /// ConfigMaps that `custom-headers` annotations name (`namespace/name`); a header ConfigMap
    /// that is not here is warned about.
    pub config_maps: Vec<ConfigMap>,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            ingress_class: "nginx".to_owned(),
            gateway_class: "cilium".to_owned(),
            cilium_minor: 15,
            crd_channel: Channel::Standard,
            crd_version: BundleVersion::new(1, 0, 0),
            tls_route_crd: true,
            include_classless: false,
            config_maps: Vec::new(),
        }
    }
}

/// One thing the conversion could not carry over (or carried over with a difference).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Warning {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The annotation, when it is about one.
    pub annotation: Option<String>,
    /// What is lost and what to do.
    pub message: String,
}

/// An annotation that was carried over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Converted {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// The annotation.
    pub annotation: String,
}

/// The result: Gateway API objects, and the warnings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Conversion {
    /// Gateways first, then HTTPRoutes, GRPCRoutes, TLSRoutes and BackendTLSPolicies, each
    /// sorted by namespace and name.
    pub objects: Vec<Value>,
    /// Sorted by Ingress, then annotation.
    pub warnings: Vec<Warning>,
    /// Ingresses of other classes, left alone (`namespace/name`).
    pub skipped: Vec<String>,
    /// The annotations carried over (some with a warning about a difference as well).
    pub converted: Vec<Converted>,
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

/// A header match of a rule.
#[derive(Debug, Clone, PartialEq)]
struct HeaderMatch {
    name: String,
    value: String,
    regex: bool,
}

/// One rule being built.
#[derive(Debug, Clone)]
struct Rule {
    /// The Ingress path and pathType it came from (canaries find their primary by it).
    source: (String, String),
    matched: PathMatch,
    headers: Vec<HeaderMatch>,
    backends: Vec<Backend>,
    filters: Vec<HttpRouteRulesFilters>,
    timeouts: Option<HttpRouteRulesTimeouts>,
    session: Option<HttpRouteRulesSessionPersistence>,
    /// Served on plain HTTP too when its host redirects to HTTPS (`ssl-redirect: "false"` is
    /// per Ingress in ingress-nginx).
    http_too: bool,
}

/// One GRPCRoute rule.
#[derive(Debug, Clone)]
struct GrpcRule {
    service: Option<String>,
    method: Option<String>,
    backends: Vec<Backend>,
}

/// Everything of one host of one namespace.
#[derive(Debug, Default)]
struct Host {
    name: String,
    hostnames: BTreeSet<String>,
    rules: Vec<Rule>,
    grpc: Vec<GrpcRule>,
    passthrough: Option<Backend>,
    /// `from-to-www-redirect`: this host only redirects to that one.
    www_redirect_to: Option<String>,
    /// The secret of the HTTPS listener.
    secret: Option<String>,
    redirect_to_https: bool,
    /// The Ingress that asked for the HTTPS redirect (for the warning about its code).
    redirect_ingress: String,
    /// Whether a primary (non-canary) Ingress defined this host.
    primary: bool,
}

/// Notes about one Ingress: what was converted, what warned.
struct Notes {
    id: String,
    annotations: BTreeMap<String, String>,
    converted: BTreeSet<String>,
    warnings: Vec<Warning>,
    /// A canary Ingress: only its canary annotations count.
    canary: bool,
}

impl Notes {
    fn get(&self, short: &str) -> Option<&str> {
        self.annotations
            .get(&format!("{NGINX_PREFIX}{short}"))
            .map(|v| v.trim())
    }

    fn is_true(&self, short: &str) -> bool {
        self.get(short)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    fn converted(&mut self, short: &str) {
        if self.canary && !CANARY.contains(&short) {
            return;
        }
        let key = format!("{NGINX_PREFIX}{short}");
        if self.annotations.contains_key(&key) {
            self.converted.insert(key);
        }
    }

    fn warn(&mut self, short: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            ingress: self.id.clone(),
            annotation: Some(format!("{NGINX_PREFIX}{short}")),
            message: message.into(),
        });
    }

    fn warned(&self, short: &str) -> bool {
        let key = format!("{NGINX_PREFIX}{short}");
        self.warnings
            .iter()
            .any(|w| w.annotation.as_deref() == Some(key.as_str()))
    }

    /// Warns about `short` only when the Ingress has it.
    fn warn_if_set(&mut self, short: &str, message: impl Into<String>) {
        if self.get(short).is_some() {
            self.warn(short, message);
        }
    }

    /// A warning about a regex path: on `use-regex` when this Ingress has it (else the host's
    /// regex mode came from another Ingress).
    fn warn_regex(&mut self, message: impl Into<String>) {
        if self.get("use-regex").is_some() {
            self.warn("use-regex", message);
        } else {
            self.warn_ingress(message);
        }
    }

    fn warn_ingress(&mut self, message: impl Into<String>) {
        self.warnings.push(Warning {
            ingress: self.id.clone(),
            annotation: None,
            message: message.into(),
        });
    }

    /// Every nginx annotation neither converted nor warned about gets the general warning.
    fn finish(mut self, conversion: &mut Conversion) {
        let warned: BTreeSet<String> = self
            .warnings
            .iter()
            .filter_map(|w| w.annotation.clone())
            .collect();
        let keys: Vec<String> = self.annotations.keys().cloned().collect();
        for key in &keys {
            // A switch left off changes nothing: nothing to carry over.
            let short = key.trim_start_matches(NGINX_PREFIX);
            if OFF_SWITCHES.contains(&short)
                && self.annotations[key].trim().eq_ignore_ascii_case("false")
                && !warned.contains(key)
            {
                self.converted.insert(key.clone());
            }
        }
        for key in keys {
            if let Some(short) = key.strip_prefix(NGINX_PREFIX)
                && !self.converted.contains(&key)
                && !warned.contains(&key)
            {
                let message = other_annotation(short);
                self.warnings.push(Warning {
                    ingress: self.id.clone(),
                    annotation: Some(key.clone()),
                    message,
                });
            }
        }
        conversion.warnings.extend(self.warnings);
        conversion
            .converted
            .extend(self.converted.into_iter().map(|annotation| Converted {
                ingress: self.id.clone(),
                annotation,
            }));
    }
}

/// Boolean annotations whose `"false"` is ingress-nginx's default (nothing to carry over).
const OFF_SWITCHES: &[&str] = &[
    "canary",
    "use-regex",
    "enable-cors",
    "ssl-passthrough",
    "from-to-www-redirect",
    "force-ssl-redirect",
];

/// The canary annotations.
const CANARY: [&str; 7] = [
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
];

/// The warning for an annotation this conversion has no mapping for.
fn other_annotation(short: &str) -> String {
    let why = match short {
        "proxy-body-size" | "client-body-buffer-size" | "client-max-body-size" => {
            "Gateway API has no request-body limit and Cilium's Envoy does not cap bodies per route: enforce it in the application"
        }
        "proxy-buffering"
        | "proxy-buffer-size"
        | "proxy-buffers-number"
        | "proxy-request-buffering"
        | "proxy-max-temp-file-size" => {
            "Envoy streams requests and responses; nginx buffering has no Gateway API setting"
        }
        "configuration-snippet" | "server-snippet" | "stream-snippet" | "auth-snippet" => {
            "nginx configuration snippets cannot be translated: express their effect with HTTPRoute filters or a CiliumEnvoyConfig"
        }
        "limit-rps"
        | "limit-rpm"
        | "limit-connections"
        | "limit-burst-multiplier"
        | "limit-whitelist" => {
            "Gateway API has no rate limit: Cilium offers none per route; use a CiliumEnvoyConfig with Envoy's local_ratelimit filter"
        }
        "proxy-redirect-from" | "proxy-redirect-to" => {
            "rewriting the backend's Location header has no Gateway API filter"
        }
        "proxy-ssl-verify-depth" | "proxy-ssl-protocols" | "proxy-ssl-ciphers" => {
            "BackendTLSPolicy has no setting for it"
        }
        "service-upstream" => {
            "Cilium's Envoy balances over the Service's endpoints itself; there is no switch to the ClusterIP"
        }
        "use-forwarded-headers" | "enable-real-ip" | "forwarded-for-header" => {
            "Cilium's Envoy trusts X-Forwarded-For per the Helm value envoy.xffNumTrustedHops (gatewayAPI.xffNumTrustedHops), not per route"
        }
        _ if short.starts_with("auth-") => {
            "authentication has no Gateway API equivalent Cilium implements (ExternalAuth is experimental and not in Cilium): put it in the application or an auth proxy"
        }
        _ => {
            "no Gateway API equivalent is generated; configure it by hand (an HTTPRoute filter, a policy, or Cilium's Envoy config)"
        }
    };
    why.to_owned()
}

/// The most listeners a Gateway may have (`maxItems` of the CRDs).
const MAX_LISTENERS: usize = 64;

/// The most rules an HTTPRoute or GRPCRoute may have (`maxItems` of the CRDs).
const MAX_RULES: usize = 16;

/// The name of the `index`th route of a host whose rules are split.
fn chunk_name(name: &str, index: usize) -> String {
    if index == 0 {
        name.to_owned()
    } else {
        format!("{name}-{}", index + 1)
    }
}

/// An Ingress path: path, pathType, backend.
type IngressPath = (String, String, IngressBackend);

/// The builder over all Ingresses.
#[derive(Default)]
struct Builder {
    /// Hosts where an Ingress uses regex paths (`use-regex` or `rewrite-target`): ingress-nginx
    /// then matches every path of the host as a regex (the docs' Ingress Path Matching).
    regex_hosts: BTreeSet<(String, String)>,
    hosts: BTreeMap<(String, String), Host>,
    /// (namespace, service) → (hostname, CA note) for BackendTLSPolicies.
    backend_tls: BTreeMap<(String, String), (String, String)>,
}

/// Converts `ingresses` (all namespaces) using `services` to resolve named ports.
pub fn convert(
    ingresses: &[Ingress],
    services: &[Service],
    options: &ConvertOptions,
) -> Conversion {
    let support = Support::new(options);
    let mut conversion = Conversion::default();
    let mut builder = Builder::default();
    for ingress in ingresses {
        let annotations = ingress.metadata.annotations.clone().unwrap_or_default();
        let on = |short: &str| annotations.get(&format!("{NGINX_PREFIX}{short}"));
        let regex = on("use-regex").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || on("rewrite-target").is_some();
        if regex && !is_canary(ingress) && selected(ingress, options) {
            let namespace = ingress
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            for rule in ingress.spec.iter().flat_map(|s| s.rules.iter().flatten()) {
                builder
                    .regex_hosts
                    .insert((namespace.clone(), rule.host.clone().unwrap_or_default()));
            }
        }
    }
    // Primaries first, so that canaries find their rules.
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
        if !selected(ingress, options) {
            if ingress_class(ingress).is_none() {
                conversion.warnings.push(Warning {
                    ingress: id.clone(),
                    annotation: None,
                    message: format!(
                        "no ingress class: ingress-nginx serves it only when IngressClass {} is the cluster's default (or with --watch-ingress-without-class); then convert with --include-classless",
                        options.ingress_class
                    ),
                });
            }
            conversion.skipped.push(id);
            continue;
        }
        let mut notes = Notes {
            id,
            annotations: ingress.metadata.annotations.clone().unwrap_or_default(),
            converted: BTreeSet::new(),
            warnings: Vec::new(),
            canary: is_canary(ingress),
        };
        builder.ingress(
            ingress, &namespace, &name, services, options, &support, &mut notes,
        );
        notes.finish(&mut conversion);
    }
    builder.emit(&mut conversion, options, &support);
    conversion.warnings.extend(target_warnings(options));
    // ingress-nginx merges a host's paths from every namespace into one server; a Gateway per
    // namespace gives each its own address.
    let mut namespaces_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (namespace, host) in builder.hosts.keys() {
        if !host.is_empty() {
            namespaces_of.entry(host).or_default().push(namespace);
        }
    }
    for (host, namespaces) in namespaces_of.into_iter().filter(|(_, n)| n.len() > 1) {
        conversion.warnings.push(Warning {
            ingress: "*".to_owned(),
            annotation: None,
            message: format!(
                "host {host} has Ingresses in namespaces {}: ingress-nginx served them at one address, these Gateways (one per namespace) get one each; share one Gateway (migrate-ingress --shared-gateway) or move the Ingresses into one namespace",
                namespaces.join(", ")
            ),
        });
    }
    conversion.warnings.sort();
    conversion.warnings.dedup();
    conversion.skipped.sort();
    conversion.converted.sort();
    conversion.converted.dedup();
    conversion
}

/// What an Ingress's annotations do to each of its paths.
#[derive(Default)]
struct PathPlan {
    /// `use-regex` or `rewrite-target` (which implies it).
    regex: bool,
    rewrite_target: Option<String>,
    /// `permanent-redirect` / `temporal-redirect`: every path answers with it.
    redirect: Option<HttpRouteRulesFiltersRequestRedirect>,
    host_rewrite: Option<String>,
    request_headers: Vec<(String, String)>,
    response_headers: Vec<(String, String)>,
    cors: Option<HttpRouteRulesFiltersCors>,
    timeouts: Option<HttpRouteRulesTimeouts>,
    session: Option<HttpRouteRulesSessionPersistence>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn ingress(
        &mut self,
        ingress: &Ingress,
        namespace: &str,
        name: &str,
        services: &[Service],
        options: &ConvertOptions,
        support: &Support,
        notes: &mut Notes,
    ) {
        let Some(spec) = &ingress.spec else { return };
        let canary = notes.is_true("canary");

        // TLS: the secret per host (an HTTPS listener each).
        let mut tls_hosts = BTreeMap::new();
        for tls in spec.tls.iter().flatten() {
            for host in tls.hosts.iter().flatten() {
                match &tls.secret_name {
                    Some(secret) => {
                        tls_hosts.insert(host.clone(), secret.clone());
                    }
                    None => notes.warn_ingress(format!(
                        "TLS for {host} has no secretName (the controller's default certificate): give the HTTPS listener a certificateRef"
                    )),
                }
            }
        }

        // ssl-passthrough (docs: "SSL Passthrough ... invalidates all the other annotations set
        // on an Ingress object"; the backend is chosen by SNI only): a TLSRoute on a Passthrough
        // listener, nothing else of this Ingress.
        if notes.is_true("ssl-passthrough") {
            self.passthrough(spec, namespace, name, services, support, notes);
            return;
        }

        // The docs: "when you mark an ingress as canary, then all the other non-canary
        // annotations will be ignored (inherited from the corresponding main ingress) except
        // load-balance, upstream-hash-by, and annotations related to session affinity".
        if canary {
            let others: Vec<String> = notes
                .annotations
                .keys()
                .filter_map(|k| k.strip_prefix(NGINX_PREFIX))
                .filter(|k| !CANARY.contains(k))
                .map(str::to_owned)
                .collect();
            for short in others {
                notes.warn(
                    &short,
                    "ingress-nginx ignores it on a canary Ingress: the main Ingress's settings apply (and are carried over with it)",
                );
            }
        }
        let plan = if canary {
            PathPlan::default()
        } else {
            self.plan(namespace, options, support, notes)
        };
        // A canary inherits the main Ingress's protocol.
        let protocol = if canary {
            "HTTP".to_owned()
        } else {
            notes
                .get("backend-protocol")
                .unwrap_or("HTTP")
                .to_ascii_uppercase()
        };
        let grpc = match protocol.as_str() {
            "GRPC" | "GRPCS" => match support.grpc_route() {
                Ok(_) => {
                    notes.converted("backend-protocol");
                    true
                }
                Err(why) => {
                    notes.warn(
                        "backend-protocol",
                        format!("not converted to a GRPCRoute: {why}; the paths become HTTPRoute rules, which Envoy proxies as HTTP/1.1 unless the Service port has appProtocol kubernetes.io/h2c"),
                    );
                    false
                }
            },
            "HTTP" | "AUTO_HTTP" => {
                notes.converted("backend-protocol");
                false
            }
            "HTTPS" => false,
            "H2C" => {
                notes.warn(
                    "backend-protocol",
                    "set appProtocol: kubernetes.io/h2c on the Service port: Cilium then speaks HTTP/2 cleartext to the backend",
                );
                false
            }
            other => {
                notes.warn(
                    "backend-protocol",
                    format!(
                        "{other} has no Gateway API equivalent: the backend is spoken to in HTTP"
                    ),
                );
                false
            }
        };
        let backend_tls = matches!(protocol.as_str(), "HTTPS" | "GRPCS");

        // ssl-redirect (default true with TLS) and force-ssl-redirect (also without TLS); the
        // docs: "the default redirect status code is 308".
        let ssl_redirect = notes
            .get("ssl-redirect")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let force_ssl_redirect = notes.is_true("force-ssl-redirect");
        let redirects = ssl_redirect || force_ssl_redirect;
        notes.converted("ssl-redirect");
        // A Gateway redirect keeps the path as it is: what preserve-trailing-slash asks for.
        if notes.is_true("preserve-trailing-slash") {
            notes.converted("preserve-trailing-slash");
        }
        if force_ssl_redirect {
            if tls_hosts.is_empty() {
                notes.warn(
                    "force-ssl-redirect",
                    "the Ingress has no TLS: nginx redirected because TLS ends in front of it (X-Forwarded-Proto); a Gateway cannot tell, so redirect at the TLS terminator",
                );
            } else {
                notes.converted("force-ssl-redirect");
            }
        }
        let aliases: Vec<String> = notes
            .get("server-alias")
            .map(|a| {
                a.split([',', ' '])
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        notes.converted("server-alias");

        // Canary: by header (value "always"/"never", or the exact value of
        // canary-by-header-value, or canary-by-header-pattern), then by cookie, then by weight.
        let weight_total = notes
            .get("canary-weight-total")
            .and_then(|w| w.parse::<i32>().ok())
            .unwrap_or(100);
        let weight = notes
            .get("canary-weight")
            .and_then(|w| w.parse::<i32>().ok());
        let mut canary_matches: Vec<(Vec<HeaderMatch>, bool)> = Vec::new();
        if canary {
            if let Some(header) = notes.get("canary-by-header").map(str::to_owned) {
                if let Some(value) = notes.get("canary-by-header-value").map(str::to_owned) {
                    if notes.get("canary-by-header-pattern").is_some() {
                        notes.warn(
                            "canary-by-header-pattern",
                            "ignored, as ingress-nginx does when canary-by-header-value is set",
                        );
                    }
                    canary_matches.push((
                        vec![HeaderMatch {
                            name: header,
                            value,
                            regex: false,
                        }],
                        true,
                    ));
                } else if let Some(pattern) =
                    notes.get("canary-by-header-pattern").map(str::to_owned)
                {
                    notes.warn(
                        "canary-by-header-pattern",
                        format!("nginx searched the header for the PCRE {pattern:?} anywhere in the value; the RegularExpression match `.*(?:{pattern}).*` (RE2, full match) says the same unless the pattern uses PCRE-only syntax"),
                    );
                    canary_matches.push((
                        vec![HeaderMatch {
                            name: header,
                            value: format!(".*(?:{pattern}).*"),
                            regex: true,
                        }],
                        true,
                    ));
                } else {
                    for (value, to_canary) in [("always", true), ("never", false)] {
                        canary_matches.push((
                            vec![HeaderMatch {
                                name: header.clone(),
                                value: value.to_owned(),
                                regex: false,
                            }],
                            to_canary,
                        ));
                    }
                }
            } else {
                notes.warn_if_set(
                    "canary-by-header-value",
                    "ignored, as ingress-nginx does without canary-by-header",
                );
                notes.warn_if_set(
                    "canary-by-header-pattern",
                    "ignored, as ingress-nginx does without canary-by-header",
                );
            }
            if let Some(cookie) = notes.get("canary-by-cookie").map(str::to_owned) {
                let name = regex_escape(&cookie);
                notes.warn(
                    "canary-by-cookie",
                    format!("Gateway API has no cookie match: the Cookie header is matched with a regular expression for {cookie}=always (to the canary) and {cookie}=never (never to it)"),
                );
                for (value, to_canary) in [("always", true), ("never", false)] {
                    canary_matches.push((
                        vec![HeaderMatch {
                            name: "Cookie".to_owned(),
                            value: format!("(?:.*;\\s*)?{name}={value}(?:;.*)?"),
                            regex: true,
                        }],
                        to_canary,
                    ));
                }
            }
        }

        // The Ingress's defaultBackend: the `/` of each of its hosts that has no `/` path,
        // and the catch-all when the Ingress has no rules (ingress-nginx's behaviour).
        let default_backend = spec.default_backend.as_ref().and_then(|b| {
            backend(
                b,
                namespace,
                services,
                &notes.id.clone(),
                &mut notes.warnings,
            )
        });
        let mut rules: Vec<(String, Vec<IngressPath>)> = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default();
            let paths = rule
                .http
                .iter()
                .flat_map(|h| h.paths.iter())
                .map(|p| {
                    (
                        p.path.clone().unwrap_or_else(|| "/".to_owned()),
                        p.path_type.clone(),
                        p.backend.clone(),
                    )
                })
                .collect();
            rules.push((host, paths));
        }
        if spec.default_backend.is_some() && rules.is_empty() {
            rules.push((String::new(), Vec::new()));
        }

        let mut tls_services = BTreeSet::new();
        let mut merged = false;
        for (host, ingress_paths) in rules {
            let key = (namespace.to_owned(), host.clone());
            let mut host_plan = plan_clone(&plan);
            if !plan.regex
                && self.regex_hosts.contains(&key)
                && !ingress_paths.is_empty()
                && !canary
            {
                host_plan.regex = true;
                notes.warn_ingress(format!(
                    "another Ingress of host {host:?} uses regex paths (use-regex or rewrite-target), so ingress-nginx matched this Ingress's paths as case-insensitive regex prefixes too; they are converted that way"
                ));
            }
            if canary && !self.hosts.get(&key).is_some_and(|h| h.primary) {
                notes.warn(
                    "canary",
                    format!("no primary Ingress for host {host:?}: the canary is not converted"),
                );
                continue;
            }
            let entry = self.hosts.entry(key.clone()).or_insert_with(|| Host {
                name: route_name(name, &host),
                ..Host::default()
            });
            if !canary {
                entry.primary = true;
            }
            if !host.is_empty() {
                entry.hostnames.insert(host.clone());
            }
            if let Some(secret) = tls_hosts.get(&host) {
                entry.secret = Some(secret.clone());
            }
            for alias in &aliases {
                entry.hostnames.insert(alias.clone());
                if entry.secret.is_some() {
                    notes.warn(
                        "server-alias",
                        format!("the HTTPS listener of alias {alias} reuses the certificate of {host}: make sure it covers {alias}"),
                    );
                }
            }
            if entry.secret.is_some() && !canary && (ssl_redirect || force_ssl_redirect) {
                entry.redirect_to_https = true;
                entry.redirect_ingress = notes.id.clone();
            }
            if notes.is_true("from-to-www-redirect") && !canary && !host.is_empty() {
                notes.converted("from-to-www-redirect");
                // The controller's template answers http-redirect-code (308) with the request
                // URI less a trailing slash.
                if let (_, Some(why)) = support.redirect_code(308) {
                    notes.warn(
                        "from-to-www-redirect",
                        format!("ingress-nginx answers 308; {why}"),
                    );
                }
                notes.warn(
                    "from-to-www-redirect",
                    "ingress-nginx also dropped a trailing `/` of the path; the redirect keeps the path as it is",
                );
                let other = match host.strip_prefix("www.") {
                    Some(bare) => bare.to_owned(),
                    None => format!("www.{host}"),
                };
                let secret = entry.secret.clone();
                let www = self
                    .hosts
                    .entry((namespace.to_owned(), other.clone()))
                    .or_insert_with(|| Host {
                        name: format!("{}-www-redirect", route_name(name, &host)),
                        ..Host::default()
                    });
                if !www.primary {
                    www.hostnames.insert(other.clone());
                    www.www_redirect_to = Some(host.clone());
                    if www.secret.is_none()
                        && let Some(secret) = secret
                    {
                        www.secret = Some(secret);
                        notes.warn(
                            "from-to-www-redirect",
                            format!("the HTTPS listener of {other} uses the certificate of {host}: as ingress-nginx requires, it must cover both names"),
                        );
                    }
                } else {
                    notes.warn(
                        "from-to-www-redirect",
                        format!("{other} has an Ingress of its own: no redirect (ingress-nginx omits it too)"),
                    );
                }
            }
            let Some(entry) = self.hosts.get_mut(&key) else {
                continue;
            };

            // app-root: `/` answers 302 to the app root (the docs' `if ($uri = /)` redirect).
            if let Some(root) = notes.get("app-root").map(str::to_owned)
                && !canary
            {
                if root.starts_with('/') && !paths::has_capture_ref(&root) {
                    notes.converted("app-root");
                    entry.rules.push(Rule {
                        source: (String::new(), "app-root".to_owned()),
                        matched: PathMatch::Exact("/".to_owned()),
                        headers: Vec::new(),
                        backends: Vec::new(),
                        filters: vec![redirect_filter(HttpRouteRulesFiltersRequestRedirect {
                            path: Some(HttpRouteRulesFiltersRequestRedirectPath {
                                r#type:
                                    HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath,
                                replace_full_path: Some(root),
                                ..HttpRouteRulesFiltersRequestRedirectPath::default()
                            }),
                            status_code: Some(302),
                            ..HttpRouteRulesFiltersRequestRedirect::default()
                        })],
                        timeouts: None,
                        session: None,
                        http_too: !redirects,
                    });
                } else {
                    notes.warn("app-root", format!("{root:?} is not an absolute path"));
                }
            }

            let mut has_root = false;
            for (path, path_type, ingress_backend) in &ingress_paths {
                let Some(backend) = backend(
                    ingress_backend,
                    namespace,
                    services,
                    &notes.id.clone(),
                    &mut notes.warnings,
                ) else {
                    continue;
                };
                if backend_tls {
                    tls_services.insert(backend.service.clone());
                }
                has_root |= path == "/" && path_type != "Exact";
                if grpc && !canary {
                    match grpc_rule(path, path_type, &backend) {
                        Ok(rule) => entry.grpc.push(rule),
                        Err(why) => notes.warn("backend-protocol", why),
                    }
                    continue;
                }
                let source = (path.clone(), path_type.clone());
                if canary {
                    let Some(primary) = entry.rules.iter().position(|r| {
                        r.source == source && r.headers.is_empty() && !r.backends.is_empty()
                    }) else {
                        notes.warn(
                            "canary",
                            format!("no primary path {path} on host {host:?} that proxies (a redirect has no backends): this canary path is not converted"),
                        );
                        continue;
                    };
                    for (headers, to_canary) in &canary_matches {
                        let mut rule = entry.rules[primary].clone();
                        rule.headers = headers.clone();
                        if *to_canary {
                            rule.backends = vec![backend.clone()];
                        } else {
                            for b in &mut rule.backends {
                                b.weight = None;
                            }
                        }
                        entry.rules.push(rule);
                    }
                    merged = true;
                    if let Some(weight) = weight.filter(|w| *w > 0) {
                        let weight = weight.min(weight_total);
                        let rule = &mut entry.rules[primary];
                        for existing in &mut rule.backends {
                            existing.weight = Some(weight_total - weight);
                        }
                        rule.backends.push(Backend {
                            weight: Some(weight),
                            ..backend.clone()
                        });
                    }
                    continue;
                }
                let Some(mut rule) = path_rule(path, path_type, &host_plan, backend, notes) else {
                    continue;
                };
                rule.http_too = !redirects;
                entry.rules.push(rule);
            }
            if !canary
                && !has_root
                && let Some(default) = &default_backend
            {
                if grpc {
                    entry.grpc.push(GrpcRule {
                        service: None,
                        method: None,
                        backends: vec![default.clone()],
                    });
                } else if let Some(rule) = path_rule(
                    "/",
                    "Prefix",
                    &PathPlan {
                        regex: false,
                        rewrite_target: None,
                        ..plan_clone(&plan)
                    },
                    default.clone(),
                    notes,
                ) {
                    entry.rules.push(Rule {
                        http_too: !redirects,
                        ..rule
                    });
                }
            }
            if grpc && !entry.rules.is_empty() {
                notes.warn(
                    "backend-protocol",
                    format!("host {host:?} has HTTP paths too: a GRPCRoute and an HTTPRoute on one listener and hostname conflict, and implementations may reject the GRPCRoute; give the gRPC service a host of its own"),
                );
            }
        }
        for service in tls_services {
            self.backend_tls_for(namespace, &service, support, notes);
        }
        if canary {
            for key in CANARY {
                if merged {
                    // A warned one (an ignored pattern, the cookie's regex) stays a warning.
                    if !notes.warned(key) {
                        notes.converted(key);
                    }
                } else if key != "canary" {
                    notes.warn_if_set(key, "lost with the canary (not converted)");
                }
            }
        }
    }

    /// The annotations that shape every path of the Ingress.
    fn plan(
        &mut self,
        namespace: &str,
        options: &ConvertOptions,
        support: &Support,
        notes: &mut Notes,
    ) -> PathPlan {
        let mut plan = PathPlan {
            regex: notes.is_true("use-regex"),
            rewrite_target: notes.get("rewrite-target").map(str::to_owned),
            ..PathPlan::default()
        };
        if plan.rewrite_target.is_some() {
            // The docs: rewrite-target enforces regex path matching (case insensitive).
            plan.regex = true;
        }
        if notes.get("use-regex").is_some() {
            notes.converted("use-regex");
        }

        // temporal-redirect wins over permanent-redirect (ingress-nginx's order).
        for (short, default_code) in [("temporal-redirect", 302), ("permanent-redirect", 301)] {
            let Some(url) = notes.get(short).map(str::to_owned) else {
                continue;
            };
            if plan.redirect.is_some() {
                notes.warn(
                    short,
                    "ignored: temporal-redirect takes precedence, as in ingress-nginx",
                );
                continue;
            }
            let code_key = format!("{short}-code");
            let wanted = notes
                .get(&code_key)
                .and_then(|c| c.parse::<i64>().ok())
                .unwrap_or(default_code);
            match redirect_to_url(&url) {
                Ok(mut redirect) => {
                    let (code, why) = support.redirect_code(wanted);
                    redirect.status_code = Some(code);
                    if let Some(why) = why {
                        let annotation = if notes.get(&code_key).is_some() {
                            code_key.clone()
                        } else {
                            short.to_owned()
                        };
                        notes.warn(&annotation, format!("nginx answered {wanted}; {why}"));
                    }
                    notes.converted(short);
                    notes.converted(&code_key);
                    plan.redirect = Some(redirect);
                }
                Err(why) => notes.warn(short, why),
            }
        }
        for short in ["permanent-redirect-code", "temporal-redirect-code"] {
            let base = short.trim_end_matches("-code");
            if notes.get(base).is_none() {
                notes.warn_if_set(
                    short,
                    format!("ignored without {base}, as in ingress-nginx"),
                );
            }
        }

        // upstream-vhost: the Host the backend sees. Envoy does not let a header filter set
        // Host, so it is the URLRewrite filter's hostname (Cilium implements host rewrites).
        if let Some(vhost) = notes.get("upstream-vhost").map(str::to_owned) {
            if !is_precise_hostname(&vhost) {
                notes.warn(
                    "upstream-vhost",
                    format!("{vhost:?} is not a plain hostname (an nginx variable or a port): the URLRewrite filter's hostname cannot express it"),
                );
            } else {
                plan.host_rewrite = Some(vhost);
                notes.converted("upstream-vhost");
            }
        }
        if let Some(prefix) = notes.get("x-forwarded-prefix").map(str::to_owned) {
            if paths::has_capture_ref(&prefix) || prefix.contains('$') {
                notes.warn(
                    "x-forwarded-prefix",
                    format!("{prefix:?} uses an nginx variable; Gateway API cannot express it"),
                );
            } else {
                plan.request_headers
                    .push(("X-Forwarded-Prefix".to_owned(), prefix));
                notes.converted("x-forwarded-prefix");
            }
        }
        if let Some(connection) = notes.get("connection-proxy-header").map(str::to_owned) {
            if connection.eq_ignore_ascii_case("keep-alive") {
                // Envoy keeps upstream connections alive by default: the same behaviour, and
                // Envoy strips hop-by-hop headers such as Connection anyway.
                notes.converted("connection-proxy-header");
            } else {
                notes.warn(
                    "connection-proxy-header",
                    format!("Envoy manages the upstream connection (keep-alive) and drops hop-by-hop headers: Connection: {connection} cannot be sent to the backend"),
                );
            }
        }
        // custom-headers: the docs add the ConfigMap's key/value pairs to every response.
        if let Some(reference) = notes.get("custom-headers").map(str::to_owned) {
            let (cm_namespace, cm_name) = match reference.split_once('/') {
                Some((ns, n)) => (ns.to_owned(), n.to_owned()),
                None => (namespace.to_owned(), reference.clone()),
            };
            let found = options.config_maps.iter().find(|c| {
                c.metadata.namespace.as_deref() == Some(cm_namespace.as_str())
                    && c.metadata.name.as_deref() == Some(cm_name.as_str())
            });
            match found.and_then(|c| c.data.clone()) {
                Some(data) if !data.is_empty() => {
                    plan.response_headers = data.into_iter().collect();
                    notes.converted("custom-headers");
                }
                _ => notes.warn(
                    "custom-headers",
                    format!("ConfigMap {cm_namespace}/{cm_name} (the headers) was not given or is empty: add a ResponseHeaderModifier filter with its data by hand"),
                ),
            }
        }

        // Timeouts: nginx bounds each connect, write and read (default 60s); HTTPRoute bounds
        // the whole request. The read timeout is the wait for the backend's answer.
        let read = notes.get("proxy-read-timeout").map(str::to_owned);
        if let Some(read) = read {
            match (read.parse::<u32>(), support.timeouts()) {
                (Ok(seconds), Ok(())) => {
                    plan.timeouts = Some(HttpRouteRulesTimeouts {
                        request: Some(duration(seconds)),
                        ..HttpRouteRulesTimeouts::default()
                    });
                    notes.converted("proxy-read-timeout");
                    notes.warn(
                        "proxy-read-timeout",
                        format!("nginx bounded the wait between two reads by {seconds}s; the HTTPRoute request timeout bounds the whole request: a response that streams longer is cut"),
                    );
                }
                (Err(_), _) => notes.warn(
                    "proxy-read-timeout",
                    format!("{read:?} is not a number of seconds"),
                ),
                (_, Err(why)) => notes.warn("proxy-read-timeout", format!("not converted: {why}")),
            }
        }
        notes.warn_if_set(
            "proxy-send-timeout",
            "nginx bounded the wait between two writes to the backend; Gateway API has no such timeout (the request timeout, from proxy-read-timeout, bounds the whole request)",
        );
        notes.warn_if_set(
            "proxy-connect-timeout",
            "Gateway API has no connect timeout; Cilium's Envoy uses its cluster default",
        );

        // CORS (the docs' defaults: origin *, methods GET, PUT, POST, DELETE, PATCH, OPTIONS,
        // credentials true, max age 1728000).
        if notes.is_true("enable-cors") {
            match support.cors() {
                Ok(()) => {
                    plan.cors = Some(cors_filter(notes));
                    for key in [
                        "enable-cors",
                        "cors-allow-origin",
                        "cors-allow-methods",
                        "cors-allow-headers",
                        "cors-expose-headers",
                        "cors-allow-credentials",
                        "cors-max-age",
                    ] {
                        notes.converted(key);
                    }
                }
                Err(why) => {
                    notes.warn(
                        "enable-cors",
                        format!("no CORS filter: {why}; answer preflight requests and set the Access-Control-* headers in the application"),
                    );
                    for key in [
                        "cors-allow-origin",
                        "cors-allow-methods",
                        "cors-allow-headers",
                        "cors-expose-headers",
                        "cors-allow-credentials",
                        "cors-max-age",
                    ] {
                        notes.warn_if_set(key, "lost with enable-cors");
                    }
                }
            }
        } else {
            for key in [
                "cors-allow-origin",
                "cors-allow-methods",
                "cors-allow-headers",
                "cors-expose-headers",
                "cors-allow-credentials",
                "cors-max-age",
            ] {
                notes.warn_if_set(
                    key,
                    "ignored without enable-cors: \"true\", as in ingress-nginx",
                );
            }
        }

        // Session affinity (the docs: affinity "cookie", the cookie named by
        // session-cookie-name, default INGRESSCOOKIE). Cilium's sessionPersistence takes only
        // Cookie with a session lifetime and sets Path, Secure, HttpOnly and SameSite=Strict itself.
        let related: Vec<String> = notes
            .annotations
            .keys()
            .filter_map(|k| k.strip_prefix(NGINX_PREFIX))
            .filter(|k| {
                k.starts_with("session-cookie-")
                    || *k == "affinity-mode"
                    || *k == "affinity-canary-behavior"
            })
            .map(str::to_owned)
            .collect();
        if let Some(affinity) = notes.get("affinity").map(str::to_owned) {
            match (
                affinity.eq_ignore_ascii_case("cookie"),
                support.session_persistence(),
            ) {
                (true, Ok(())) => {
                    let name = notes
                        .get("session-cookie-name")
                        .unwrap_or("INGRESSCOOKIE")
                        .to_owned();
                    plan.session = Some(HttpRouteRulesSessionPersistence {
                        r#type: Some(HttpRouteRulesSessionPersistenceType::Cookie),
                        session_name: Some(name),
                        cookie_config: Some(HttpRouteRulesSessionPersistenceCookieConfig {
                            lifetime_type: Some(
                                HttpRouteRulesSessionPersistenceCookieConfigLifetimeType::Session,
                            ),
                        }),
                        ..HttpRouteRulesSessionPersistence::default()
                    });
                    notes.converted("affinity");
                    notes.converted("session-cookie-name");
                    notes.warn(
                        "affinity",
                        "Cilium's session cookie is always Secure (browsers send it over HTTPS only), HttpOnly and SameSite=Strict",
                    );
                    for key in related.iter().filter(|k| *k != "session-cookie-name") {
                        notes.warn(
                            key,
                            "Cilium's sessionPersistence has no such setting (a session cookie; Path from the route)",
                        );
                    }
                }
                (cookie, result) => {
                    let why = match result {
                        Err(why) => why,
                        Ok(()) if !cookie => {
                            "Gateway API's sessionPersistence is cookie- or header-based".to_owned()
                        }
                        Ok(()) => String::new(),
                    };
                    notes.warn(
                        "affinity",
                        format!("affinity {affinity:?} (sticky sessions) is lost: {why}; requests are balanced over the endpoints"),
                    );
                    for key in &related {
                        notes.warn(key, "lost with affinity");
                    }
                }
            }
        }

        // Source ranges: no Gateway API equivalent; Cilium filters by identity.
        for (short, verb) in [
            ("whitelist-source-range", "allow only"),
            ("denylist-source-range", "deny"),
        ] {
            if let Some(ranges) = notes.get(short).map(str::to_owned) {
                let rule = if verb == "deny" {
                    "ingressDeny: [{fromCIDRSet: [...]}]"
                } else {
                    "ingress: [{fromCIDRSet: [...]}]"
                };
                notes.warn(
                    short,
                    format!("Gateway API cannot {verb} client ranges {ranges}: Cilium enforces it on the Gateway's Envoy with a CiliumClusterwideNetworkPolicy selecting the ingress identity (endpointSelector matchExpressions key reserved:ingress, operator Exists) with {rule}; it applies to the whole Gateway, not per host, and needs the client IP preserved (externalTrafficPolicy: Local)"),
                );
            }
        }

        plan
    }

    /// A BackendTLSPolicy for `service` (backend-protocol HTTPS/GRPCS).
    fn backend_tls_for(
        &mut self,
        namespace: &str,
        service: &str,
        support: &Support,
        notes: &mut Notes,
    ) {
        match support.backend_tls() {
            Ok(_) => {
                let hostname = notes
                    .get("proxy-ssl-name")
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{service}.{namespace}.svc"));
                let verified = notes
                    .get("proxy-ssl-verify")
                    .is_some_and(|v| v.eq_ignore_ascii_case("on"));
                let ca = notes.get("proxy-ssl-secret").map(str::to_owned);
                for key in [
                    "backend-protocol",
                    "proxy-ssl-name",
                    "proxy-ssl-verify",
                    "proxy-ssl-secret",
                    "proxy-ssl-server-name",
                ] {
                    notes.converted(key);
                }
                let how = match (verified, ca) {
                    (true, Some(secret)) => format!(
                        "ingress-nginx verified it with the CA of Secret {secret}: copy its ca.crt into ConfigMap {service}-backend-ca"
                    ),
                    _ => format!(
                        "ingress-nginx did not verify the backend's certificate (proxy-ssl-verify off); BackendTLSPolicy always verifies: create ConfigMap {service}-backend-ca with the CA (key ca.crt) that signed it, for hostname {hostname}"
                    ),
                };
                notes.warn("backend-protocol", how);
                self.backend_tls.insert(
                    (namespace.to_owned(), service.to_owned()),
                    (hostname, String::new()),
                );
            }
            Err(why) => {
                notes.warn(
                    "backend-protocol",
                    format!("no BackendTLSPolicy: {why}; the Gateway speaks plain HTTP to {service}, which expects TLS"),
                );
                for key in [
                    "proxy-ssl-name",
                    "proxy-ssl-verify",
                    "proxy-ssl-secret",
                    "proxy-ssl-server-name",
                ] {
                    notes.warn_if_set(key, "lost with backend-protocol (no BackendTLSPolicy)");
                }
            }
        }
    }

    fn passthrough(
        &mut self,
        spec: &k8s_openapi::api::networking::v1::IngressSpec,
        namespace: &str,
        name: &str,
        services: &[Service],
        support: &Support,
        notes: &mut Notes,
    ) {
        if let Err(why) = support.tls_route() {
            notes.warn(
                "ssl-passthrough",
                format!("no TLSRoute: {why}; the host is not converted"),
            );
            return;
        }
        notes.converted("ssl-passthrough");
        let keys: Vec<String> = notes
            .annotations
            .keys()
            .filter(|k| k.starts_with(NGINX_PREFIX) && !k.ends_with("/ssl-passthrough"))
            .cloned()
            .collect();
        for key in keys {
            let short = key.trim_start_matches(NGINX_PREFIX).to_owned();
            notes.warn(
                &short,
                "ingress-nginx ignores it with ssl-passthrough (TLS is not terminated, so no HTTP is seen)",
            );
        }
        notes.warn(
            "ssl-passthrough",
            "ingress-nginx needs --enable-ssl-passthrough for it; the TLSRoute needs Cilium's TLSRoute support (the TLSRoute CRD installed before Cilium's operator starts)",
        );
        for rule in spec.rules.iter().flatten() {
            let Some(host) = rule.host.clone() else {
                notes.warn_ingress(
                    "ssl-passthrough needs a host (SNI): a rule without host is not converted",
                );
                continue;
            };
            let Some(path) = rule.http.iter().flat_map(|h| h.paths.iter()).next() else {
                continue;
            };
            let id = notes.id.clone();
            let Some(backend) =
                backend(&path.backend, namespace, services, &id, &mut notes.warnings)
            else {
                continue;
            };
            let entry = self
                .hosts
                .entry((namespace.to_owned(), host.clone()))
                .or_insert_with(|| Host {
                    name: route_name(name, &host),
                    ..Host::default()
                });
            entry.hostnames.insert(host.clone());
            entry.primary = true;
            entry.passthrough = Some(backend);
        }
    }

    fn emit(&self, conversion: &mut Conversion, options: &ConvertOptions, support: &Support) {
        let mut gateways: BTreeMap<String, BTreeMap<String, GatewayListeners>> = BTreeMap::new();
        let mut http_routes = Vec::new();
        let mut grpc_routes = Vec::new();
        let mut tls_routes = Vec::new();
        for ((namespace, host), state) in &self.hosts {
            let listeners = gateways.entry(namespace.clone()).or_default();
            let mut hosts: Vec<String> = vec![host.clone()];
            hosts.extend(state.hostnames.iter().filter(|h| *h != host).cloned());
            let mut route_sections = Vec::new();
            let mut redirect_sections = Vec::new();
            let mut tls_sections = Vec::new();
            let has_http = !state.rules.is_empty()
                || !state.grpc.is_empty()
                || state.www_redirect_to.is_some();
            for listener_host in &hosts {
                let slug = listener_slug(listener_host);
                let hostname = Some(listener_host.clone()).filter(|h| !h.is_empty());
                if let Some(_backend) = &state.passthrough {
                    let name = format!("{slug}-tls-passthrough");
                    listeners.insert(
                        name.clone(),
                        GatewayListeners {
                            name: name.clone(),
                            protocol: "TLS".to_owned(),
                            port: 443,
                            hostname: hostname.clone(),
                            tls: Some(GatewayListenersTls {
                                mode: Some(GatewayListenersTlsMode::Passthrough),
                                ..GatewayListenersTls::default()
                            }),
                            ..GatewayListeners::default()
                        },
                    );
                    tls_sections.push(name);
                }
                if !has_http {
                    continue;
                }
                let http_name = format!("{slug}-http");
                listeners.insert(
                    http_name.clone(),
                    GatewayListeners {
                        name: http_name.clone(),
                        protocol: "HTTP".to_owned(),
                        port: 80,
                        hostname: hostname.clone(),
                        ..GatewayListeners::default()
                    },
                );
                let secret = state
                    .secret
                    .as_ref()
                    .filter(|_| state.passthrough.is_none());
                let Some(secret) = secret else {
                    route_sections.push(http_name);
                    continue;
                };
                let https_name = format!("{slug}-https");
                listeners.insert(
                    https_name.clone(),
                    GatewayListeners {
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
                    },
                );
                route_sections.push(https_name);
                if state.redirect_to_https {
                    redirect_sections.push(http_name);
                } else {
                    route_sections.push(http_name);
                }
            }
            let hostnames =
                Some(state.hostnames.iter().cloned().collect::<Vec<_>>()).filter(|h| !h.is_empty());
            let parents = |sections: &[String]| -> Vec<HttpRouteParentRefs> {
                sections
                    .iter()
                    .map(|s| HttpRouteParentRefs {
                        name: options.gateway_class.clone(),
                        section_name: Some(s.clone()),
                        ..HttpRouteParentRefs::default()
                    })
                    .collect()
            };
            // An Ingress of its own for the other name wins (the docs: the annotation is omitted).
            if let Some(target) = state.www_redirect_to.as_ref().filter(|_| !state.primary) {
                // from-to-www-redirect: the docs' 308 to the other name, path and query kept.
                let (code, _) = support.redirect_code(308);
                let mut sections = route_sections.clone();
                sections.extend(redirect_sections.iter().cloned());
                http_routes.push(object(&http_route(
                    &state.name,
                    namespace,
                    HttpRouteSpec {
                        parent_refs: Some(parents(&sections)),
                        rules: Some(vec![HttpRouteRules {
                            filters: Some(vec![redirect_filter(
                                HttpRouteRulesFiltersRequestRedirect {
                                    hostname: Some(target.clone()),
                                    status_code: Some(code),
                                    ..HttpRouteRulesFiltersRequestRedirect::default()
                                },
                            )]),
                            ..HttpRouteRules::default()
                        }]),
                        hostnames: hostnames.clone(),
                        ..HttpRouteSpec::default()
                    },
                )));
                continue;
            }
            // The CRDs allow 16 rules per route: more are split over `<name>`, `<name>-2`, ...
            // (in order, so that the rule-order tie-break within a route is kept).
            for (index, chunk) in state.rules.chunks(MAX_RULES).enumerate() {
                http_routes.push(object(&http_route(
                    &chunk_name(&state.name, index),
                    namespace,
                    HttpRouteSpec {
                        parent_refs: Some(parents(&route_sections)),
                        rules: Some(chunk.iter().map(route_rule).collect()),
                        hostnames: hostnames.clone(),
                        ..HttpRouteSpec::default()
                    },
                )));
            }
            for (index, chunk) in state.grpc.chunks(MAX_RULES).enumerate() {
                let Ok(api_version) = support.grpc_route() else {
                    break;
                };
                let mut route = GrpcRoute::new(
                    &chunk_name(&state.name, index),
                    GrpcRouteSpec {
                        hostnames: hostnames.clone(),
                        parent_refs: Some(
                            route_sections
                                .iter()
                                .map(|s| GrpcRouteParentRefs {
                                    name: options.gateway_class.clone(),
                                    section_name: Some(s.clone()),
                                    ..GrpcRouteParentRefs::default()
                                })
                                .collect(),
                        ),
                        rules: Some(chunk.iter().map(grpc_route_rule).collect()),
                    },
                );
                route.metadata.namespace = Some(namespace.clone());
                grpc_routes.push(with_api_version(object(&route), api_version));
            }
            // Rules of Ingresses with `ssl-redirect: "false"` stay on plain HTTP beside the
            // redirect (more specific matches win over its catch-all).
            let plain: Vec<&Rule> = state.rules.iter().filter(|r| r.http_too).collect();
            if !redirect_sections.is_empty() && !plain.is_empty() {
                for (index, chunk) in plain.chunks(MAX_RULES).enumerate() {
                    http_routes.push(object(&http_route(
                        &chunk_name(&format!("{}-http", state.name), index),
                        namespace,
                        HttpRouteSpec {
                            parent_refs: Some(parents(&redirect_sections)),
                            rules: Some(chunk.iter().map(|r| route_rule(r)).collect()),
                            hostnames: hostnames.clone(),
                            ..HttpRouteSpec::default()
                        },
                    )));
                }
            }
            if has_http && !redirect_sections.is_empty() {
                let (code, why) = support.redirect_code(308);
                if let Some(why) = why {
                    conversion.warnings.push(Warning {
                        ingress: state.redirect_ingress.clone(),
                        annotation: None,
                        message: format!(
                            "the HTTP→HTTPS redirect of {host}: ingress-nginx answers 308 (and drops a trailing `/` unless preserve-trailing-slash); {why}"
                        ),
                    });
                }
                http_routes.push(object(&http_route(
                    &format!("{}-https-redirect", state.name),
                    namespace,
                    HttpRouteSpec {
                        parent_refs: Some(parents(&redirect_sections)),
                        rules: Some(vec![HttpRouteRules {
                            filters: Some(vec![redirect_filter(
                                HttpRouteRulesFiltersRequestRedirect {
                                    scheme: Some(HttpRouteRulesFiltersRequestRedirectScheme::Https),
                                    status_code: Some(code),
                                    ..HttpRouteRulesFiltersRequestRedirect::default()
                                },
                            )]),
                            ..HttpRouteRules::default()
                        }]),
                        hostnames: hostnames.clone(),
                        ..HttpRouteSpec::default()
                    },
                )));
            }
            if let Some(backend) = &state.passthrough
                && let Ok(api_version) = support.tls_route()
            {
                let mut route = TlsRoute::new(
                    &state.name,
                    TlsRouteSpec {
                        hostnames: state.hostnames.iter().cloned().collect(),
                        parent_refs: Some(
                            tls_sections
                                .iter()
                                .map(|s| TlsRouteParentRefs {
                                    name: options.gateway_class.clone(),
                                    section_name: Some(s.clone()),
                                    ..TlsRouteParentRefs::default()
                                })
                                .collect(),
                        ),
                        rules: vec![TlsRouteRules {
                            backend_refs: vec![TlsRouteRulesBackendRefs {
                                name: backend.service.clone(),
                                port: backend.port,
                                ..TlsRouteRulesBackendRefs::default()
                            }],
                            ..TlsRouteRules::default()
                        }],
                    },
                );
                route.metadata.namespace = Some(namespace.clone());
                tls_routes.push(with_api_version(object(&route), api_version));
            }
        }
        // A Gateway takes at most 64 listeners: more are split over `<class>`, `<class>-2`, ...,
        // and each route's parentRefs name the Gateway that holds their section.
        let mut moved: BTreeMap<(String, String), String> = BTreeMap::new();
        for (namespace, listeners) in gateways {
            let listeners: Vec<GatewayListeners> = listeners.into_values().collect();
            for (index, chunk) in listeners.chunks(MAX_LISTENERS).enumerate() {
                let name = chunk_name(&options.gateway_class, index);
                if index > 0 {
                    for listener in chunk {
                        moved.insert((namespace.clone(), listener.name.clone()), name.clone());
                    }
                }
                let mut gateway = Gateway::new(
                    &name,
                    GatewaySpec {
                        gateway_class_name: options.gateway_class.clone(),
                        listeners: chunk.to_vec(),
                        ..GatewaySpec::default()
                    },
                );
                gateway.metadata.namespace = Some(namespace.clone());
                conversion.objects.push(object(&gateway));
            }
        }
        if !moved.is_empty() {
            for route in http_routes
                .iter_mut()
                .chain(grpc_routes.iter_mut())
                .chain(tls_routes.iter_mut())
            {
                let namespace = route["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                for parent in route["spec"]["parentRefs"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    let section = parent["sectionName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(gateway) = moved.get(&(namespace.clone(), section)) {
                        parent["name"] = Value::String(gateway.clone());
                    }
                }
            }
        }
        conversion.objects.extend(http_routes);
        conversion.objects.extend(grpc_routes);
        conversion.objects.extend(tls_routes);
        for ((namespace, service), (hostname, _)) in &self.backend_tls {
            let mut policy = BackendTlsPolicy::new(
                service,
                BackendTlsPolicySpec {
                    target_refs: vec![BackendTlsPolicyTargetRefs {
                        group: String::new(),
                        kind: "Service".to_owned(),
                        name: service.clone(),
                        section_name: None,
                    }],
                    validation: BackendTlsPolicyValidation {
                        ca_certificate_refs: Some(vec![
                            BackendTlsPolicyValidationCaCertificateRefs {
                                group: String::new(),
                                kind: "ConfigMap".to_owned(),
                                name: format!("{service}-backend-ca"),
                            },
                        ]),
                        hostname: hostname.clone(),
                        ..BackendTlsPolicyValidation::default()
                    },
                    options: None,
                },
            );
            policy.metadata.namespace = Some(namespace.clone());
            conversion.objects.push(object(&policy));
        }
    }
}

/// Warnings about the target itself (ingress `*`): a Cilium minor this crate does not know, or
/// CRDs that do not fit it (`bundle::bundle_fit`).
fn target_warnings(options: &ConvertOptions) -> Vec<Warning> {
    let minor = options.cilium_minor;
    let warning = |message: String| Warning {
        ingress: "*".to_owned(),
        annotation: None,
        message,
    };
    match Requirement::for_cilium_minor(minor) {
        None => vec![warning(format!(
            "Cilium 1.{minor} is not a minor this tool knows (1.{} to 1.{}): its Gateway features are judged from Cilium's newest documentation; check them against its release notes",
            cilium_values::OLDEST_MINOR,
            cilium_values::NEWEST_MINOR
        ))],
        Some(requirement) => {
            match bundle_fit(&requirement, &options.crd_version, options.crd_channel) {
                BundleFit::TooOld => vec![warning(format!(
                    "the Gateway API {} CRDs are older than Cilium 1.{minor} needs ({}): `gateway-api check` says what to install",
                    options.crd_version, requirement.bundle
                ))],
                BundleFit::Breaks(why) => vec![warning(format!(
                    "the Gateway API {} {} CRDs break Cilium 1.{minor}: {why}",
                    options.crd_version, options.crd_channel
                ))],
                BundleFit::Expected | BundleFit::Newer => Vec::new(),
            }
        }
    }
}

/// The same plan without anything path-specific (for the defaultBackend's `/`).
fn plan_clone(plan: &PathPlan) -> PathPlan {
    PathPlan {
        regex: plan.regex,
        rewrite_target: plan.rewrite_target.clone(),
        redirect: plan.redirect.clone(),
        host_rewrite: plan.host_rewrite.clone(),
        request_headers: plan.request_headers.clone(),
        response_headers: plan.response_headers.clone(),
        cors: plan.cors.clone(),
        timeouts: plan.timeouts.clone(),
        session: plan.session.clone(),
    }
}

/// The rule of one Ingress path under the Ingress's plan; `None` when it cannot be matched.
fn path_rule(
    path: &str,
    path_type: &str,
    plan: &PathPlan,
    backend: Backend,
    notes: &mut Notes,
) -> Option<Rule> {
    let mut rewrite = None;
    let matched = if let Some(target) = &plan.rewrite_target {
        match paths::rewrite(path, target) {
            Ok(t) => {
                notes.converted("rewrite-target");
                for note in t.notes {
                    notes.warn("rewrite-target", note);
                }
                rewrite = t.rewrite;
                t.matched
            }
            Err(why) => {
                notes.warn("rewrite-target", why);
                match paths::regex_match(path) {
                    Ok(m) => m,
                    Err(why) => {
                        notes.warn("rewrite-target", why);
                        return None;
                    }
                }
            }
        }
    } else if plan.regex {
        match paths::regex_match(path) {
            Ok(m) => {
                notes.warn_regex(paths::regex_note(path));
                m
            }
            Err(why) => {
                notes.warn_regex(why);
                return None;
            }
        }
    } else if path_type == "Exact" {
        PathMatch::Exact(path.to_owned())
    } else {
        // Prefix and ImplementationSpecific (a prefix in ingress-nginx without use-regex).
        if path_type == "ImplementationSpecific" && path != "/" {
            notes.warn_ingress(format!(
                "the ImplementationSpecific path {path:?} was a plain nginx prefix (it also matched {:?}); PathPrefix matches whole segments only",
                format!("{}x", path.trim_end_matches('/'))
            ));
        }
        PathMatch::Prefix(path.to_owned())
    };
    let mut filters = Vec::new();
    if let Some(redirect) = &plan.redirect {
        filters.push(redirect_filter(redirect.clone()));
        return Some(Rule {
            source: (path.to_owned(), path_type.to_owned()),
            matched,
            headers: Vec::new(),
            backends: Vec::new(),
            filters,
            timeouts: None,
            session: None,
            http_too: false,
        });
    }
    if !plan.request_headers.is_empty() {
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::RequestHeaderModifier,
            request_header_modifier: Some(HttpRouteRulesFiltersRequestHeaderModifier {
                set: Some(
                    plan.request_headers
                        .iter()
                        .map(
                            |(name, value)| HttpRouteRulesFiltersRequestHeaderModifierSet {
                                name: name.clone(),
                                value: value.clone(),
                            },
                        )
                        .collect(),
                ),
                ..HttpRouteRulesFiltersRequestHeaderModifier::default()
            }),
            ..HttpRouteRulesFilters::default()
        });
    }
    if !plan.response_headers.is_empty() {
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::ResponseHeaderModifier,
            response_header_modifier: Some(HttpRouteRulesFiltersResponseHeaderModifier {
                set: Some(
                    plan.response_headers
                        .iter()
                        .map(
                            |(name, value)| HttpRouteRulesFiltersResponseHeaderModifierSet {
                                name: name.clone(),
                                value: value.clone(),
                            },
                        )
                        .collect(),
                ),
                ..HttpRouteRulesFiltersResponseHeaderModifier::default()
            }),
            ..HttpRouteRulesFilters::default()
        });
    }
    // Gateway API allows one URLRewrite per rule: host and path together.
    if rewrite.is_some() || plan.host_rewrite.is_some() {
        let path = rewrite.map(|r| match r {
            PathRewrite::Full(full) => HttpRouteRulesFiltersUrlRewritePath {
                r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath,
                replace_full_path: Some(full),
                ..HttpRouteRulesFiltersUrlRewritePath::default()
            },
            PathRewrite::Prefix(prefix) => HttpRouteRulesFiltersUrlRewritePath {
                r#type: HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch,
                replace_prefix_match: Some(prefix),
                ..HttpRouteRulesFiltersUrlRewritePath::default()
            },
        });
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::UrlRewrite,
            url_rewrite: Some(HttpRouteRulesFiltersUrlRewrite {
                hostname: plan.host_rewrite.clone(),
                path,
            }),
            ..HttpRouteRulesFilters::default()
        });
    }
    if let Some(cors) = &plan.cors {
        filters.push(HttpRouteRulesFilters {
            r#type: HttpRouteRulesFiltersType::Cors,
            cors: Some(cors.clone()),
            ..HttpRouteRulesFilters::default()
        });
    }
    Some(Rule {
        source: (path.to_owned(), path_type.to_owned()),
        matched,
        headers: Vec::new(),
        backends: vec![backend],
        filters,
        timeouts: plan.timeouts.clone(),
        session: plan.session.clone(),
        http_too: false,
    })
}

/// A gRPC path of an Ingress as a GRPCRoute method match: `/` is every method,
/// `/pkg.Service` a service, `/pkg.Service/Method` one method.
fn grpc_rule(path: &str, path_type: &str, backend: &Backend) -> Result<GrpcRule, String> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    };
    let (service, method) = match parts.as_slice() {
        [""] => (None, None),
        [service] if valid(service) && path_type != "Exact" => (Some(service.to_string()), None),
        [service, method] if valid(service) && valid(method) => {
            (Some(service.to_string()), Some(method.to_string()))
        }
        _ => {
            return Err(format!(
                "the gRPC path {path:?} is not `/`, `/package.Service` or `/package.Service/Method`: no GRPCRoute match expresses it, so it is left out"
            ));
        }
    };
    Ok(GrpcRule {
        service,
        method,
        backends: vec![backend.clone()],
    })
}

fn grpc_route_rule(rule: &GrpcRule) -> GrpcRouteRules {
    let matches = rule.service.as_ref().map(|service| {
        vec![GrpcRouteRulesMatches {
            method: Some(GrpcRouteRulesMatchesMethod {
                r#type: Some(GrpcRouteRulesMatchesMethodType::Exact),
                service: Some(service.clone()),
                method: rule.method.clone(),
            }),
            ..GrpcRouteRulesMatches::default()
        }]
    });
    GrpcRouteRules {
        matches,
        backend_refs: Some(
            rule.backends
                .iter()
                .map(|b| GrpcRouteRulesBackendRefs {
                    name: b.service.clone(),
                    port: b.port,
                    weight: b.weight,
                    ..GrpcRouteRulesBackendRefs::default()
                })
                .collect(),
        ),
        ..GrpcRouteRules::default()
    }
}

/// A `permanent-redirect`/`temporal-redirect` URL as a redirect: nginx's `return <code> <url>`
/// answers with exactly that URL, so the path is replaced (by `/` when the URL has none);
/// `$request_uri` at the end keeps the request's path.
fn redirect_to_url(url: &str) -> Result<HttpRouteRulesFiltersRequestRedirect, String> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (HttpRouteRulesFiltersRequestRedirectScheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (HttpRouteRulesFiltersRequestRedirectScheme::Http, rest)
    } else {
        return Err(format!(
            "{url:?} is not an http(s) URL; Gateway API redirects need a scheme and host"
        ));
    };
    let (authority, path) = match rest.find(['/', '$', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (hostname, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<i32>() {
            Ok(port) => (h, Some(port)),
            Err(_) => return Err(format!("{url:?} has an invalid port")),
        },
        None => (authority, None),
    };
    if !is_precise_hostname(hostname) {
        return Err(format!(
            "{url:?} takes its host from an nginx variable or has no plain hostname; Gateway API cannot express it"
        ));
    }
    let path = if path == "$request_uri" {
        None
    } else if path.contains('$') || path.contains('?') {
        return Err(format!(
            "{url:?} uses an nginx variable or a query string; Gateway API redirects cannot express it"
        ));
    } else {
        Some(HttpRouteRulesFiltersRequestRedirectPath {
            r#type: HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath,
            replace_full_path: Some(if path.is_empty() { "/" } else { path }.to_owned()),
            ..HttpRouteRulesFiltersRequestRedirectPath::default()
        })
    };
    Ok(HttpRouteRulesFiltersRequestRedirect {
        scheme: Some(scheme),
        hostname: Some(hostname.to_owned()),
        port,
        path,
        status_code: None,
    })
}

fn redirect_filter(redirect: HttpRouteRulesFiltersRequestRedirect) -> HttpRouteRulesFilters {
    HttpRouteRulesFilters {
        r#type: HttpRouteRulesFiltersType::RequestRedirect,
        request_redirect: Some(redirect),
        ..HttpRouteRulesFilters::default()
    }
}

fn list(value: Option<&str>, default: &str) -> Vec<String> {
    value
        .unwrap_or(default)
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn cors_filter(notes: &Notes) -> HttpRouteRulesFiltersCors {
    let expose = list(notes.get("cors-expose-headers"), "");
    HttpRouteRulesFiltersCors {
        allow_origins: Some(list(notes.get("cors-allow-origin"), "*")),
        allow_methods: Some(list(
            notes.get("cors-allow-methods"),
            "GET, PUT, POST, DELETE, PATCH, OPTIONS",
        )),
        allow_headers: Some(list(
            notes.get("cors-allow-headers"),
            "DNT,X-CustomHeader,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Authorization",
        )),
        expose_headers: Some(expose).filter(|e| !e.is_empty()),
        allow_credentials: Some(
            notes
                .get("cors-allow-credentials")
                .is_none_or(|v| !v.eq_ignore_ascii_case("false")),
        ),
        max_age: Some(
            notes
                .get("cors-max-age")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1_728_000),
        ),
    }
}

/// Seconds as a Gateway API duration (at most 5 digits per unit).
fn duration(seconds: u32) -> String {
    if seconds <= 99_999 {
        format!("{seconds}s")
    } else {
        let (hours, rest) = (seconds / 3600, seconds % 3600);
        format!("{hours}h{}m{}s", rest / 60, rest % 60)
    }
}

/// A hostname the CRDs' PreciseHostname pattern takes (lowercase labels, no port, no wildcard).
fn is_precise_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn is_canary(ingress: &Ingress) -> bool {
    ingress
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{NGINX_PREFIX}canary")))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether `ingress` is one of the class converted (or has no class and those are included).
fn selected(ingress: &Ingress, options: &ConvertOptions) -> bool {
    match ingress_class(ingress) {
        Some(class) => class == options.ingress_class,
        None => options.include_classless,
    }
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

/// The typed structs carry the newest version; older CRDs serve the same fields under an older
/// version (GRPCRoute v1alpha2 in v1.0, TLSRoute v1alpha2 up to v1.4).
fn with_api_version(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = Value::String(api_version.to_owned());
    object
}

fn route_rule(rule: &Rule) -> HttpRouteRules {
    let (kind, value) = match &rule.matched {
        PathMatch::Exact(p) => (HttpRouteRulesMatchesPathType::Exact, p.clone()),
        PathMatch::Prefix(p) => (HttpRouteRulesMatchesPathType::PathPrefix, p.clone()),
        PathMatch::Regex(p) => (HttpRouteRulesMatchesPathType::RegularExpression, p.clone()),
    };
    let matched = HttpRouteRulesMatches {
        path: Some(HttpRouteRulesMatchesPath {
            r#type: Some(kind),
            value: Some(value),
        }),
        headers: Some(
            rule.headers
                .iter()
                .map(|h| HttpRouteRulesMatchesHeaders {
                    r#type: Some(if h.regex {
                        HttpRouteRulesMatchesHeadersType::RegularExpression
                    } else {
                        HttpRouteRulesMatchesHeadersType::Exact
                    }),
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect::<Vec<_>>(),
        )
        .filter(|h| !h.is_empty()),
        ..HttpRouteRulesMatches::default()
    };
    let backends: Vec<HttpRouteRulesBackendRefs> = rule
        .backends
        .iter()
        .map(|b| HttpRouteRulesBackendRefs {
            name: b.service.clone(),
            port: b.port,
            weight: b.weight,
            ..HttpRouteRulesBackendRefs::default()
        })
        .collect();
    HttpRouteRules {
        matches: Some(vec![matched]),
        backend_refs: Some(backends).filter(|b| !b.is_empty()),
        filters: Some(rule.filters.clone()).filter(|f| !f.is_empty()),
        timeouts: rule.timeouts.clone(),
        session_persistence: rule.session.clone(),
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

/// The ConfigMaps the Ingresses' `custom-headers` annotations name (`namespace/name`, or a name
/// in the Ingress's namespace), read from the cluster, so that convert can carry the headers
/// (ingress-nginx adds the ConfigMap's pairs to every response). A missing one is left out:
/// convert then warns about it by name.
pub async fn read_custom_header_config_maps(
    client: &kube::Client,
    ingresses: &[Ingress],
) -> Result<Vec<ConfigMap>, crate::Error> {
    let mut found = Vec::new();
    for (namespace, name) in custom_header_references(ingresses) {
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &namespace);
        let config_map = api
            .get_opt(&name)
            .await
            .map_err(|source| crate::Error::Kube {
                what: format!("ConfigMap {namespace}/{name} (custom-headers)"),
                source: Box::new(source),
            })?;
        found.extend(config_map);
    }
    Ok(found)
}

/// The `(namespace, name)` of every ConfigMap a `custom-headers` annotation names, once each.
pub fn custom_header_references(
    ingresses: &[Ingress],
) -> std::collections::BTreeSet<(String, String)> {
    ingresses
        .iter()
        .filter_map(|ingress| {
            let reference = ingress
                .metadata
                .annotations
                .as_ref()?
                .get(&format!("{NGINX_PREFIX}custom-headers"))?;
            let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
            Some(match reference.split_once('/') {
                Some((ns, name)) => (ns.to_owned(), name.to_owned()),
                None => (namespace, reference.clone()),
            })
        })
        .collect()
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
