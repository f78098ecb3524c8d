//! What the target cluster can take: the Gateway API CRDs installed (channel and release, the
//! fields each release's CRDs have, read from the upstream tags) and what Cilium's Gateway
//! implements at its minor. A feature is emitted only when both have it; otherwise the reason
//! goes into the warning.

use super::ConvertOptions;
use crate::bundle::Channel;

/// The target's capabilities, from the options.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Support {
    cilium: u32,
    channel: Channel,
    crds: u32,
    tls_route_crd: bool,
}

impl Support {
    pub(crate) fn new(options: &ConvertOptions) -> Support {
        Support {
            cilium: options.cilium_minor,
            channel: options.crd_channel,
            crds: options.crd_version.minor,
            tls_route_crd: options.tls_route_crd,
        }
    }

    fn crds(&self) -> String {
        format!("Gateway API v1.{} {} CRDs", self.crds, self.channel)
    }

    fn experimental(&self) -> bool {
        self.channel == Channel::Experimental
    }

    /// Redirect codes beyond 301/302: the `statusCode` enum of both channels lists 303, 307 and
    /// 308 from v1.5 on (301 and 302 only in v1.0 … v1.4); Cilium maps each to Envoy's code.
    pub(crate) fn redirect_code(&self, wanted: i64) -> (i64, Option<String>) {
        if matches!(wanted, 301 | 302) || (self.crds >= 5 && matches!(wanted, 303 | 307 | 308)) {
            return (wanted, None);
        }
        let fallback = if matches!(wanted, 308 | 301) {
            301
        } else {
            302
        };
        let why = if matches!(wanted, 303 | 307 | 308) {
            format!(
                "the {} allow only 301 and 302 (303/307/308 from v1.5): {fallback} is used, so clients may turn a redirected POST into a GET",
                self.crds()
            )
        } else {
            format!("{wanted} is not a redirect code Gateway API knows: {fallback} is used")
        };
        (fallback, Some(why))
    }

    /// HTTPRoute `timeouts`: experimental channel from v1.0, standard from v1.2; Cilium reads
    /// them from 1.16 on.
    pub(crate) fn timeouts(&self) -> Result<(), String> {
        if !(self.experimental() || self.crds >= 2) {
            return Err(format!(
                "the {} have no HTTPRoute timeouts (standard from v1.2)",
                self.crds()
            ));
        }
        if self.cilium < 16 {
            return Err(format!(
                "Cilium 1.{} does not apply HTTPRoute timeouts (from 1.16)",
                self.cilium
            ));
        }
        Ok(())
    }

    /// The CORS filter: experimental channel from v1.3, standard from v1.5. Cilium's Gateway up
    /// to 1.19 does not implement it (its translation has no CORS case); 1.20 does
    /// (`operator/pkg/model/ingestion/gateway.go` reads `HTTPRouteFilterCORS`).
    pub(crate) fn cors(&self) -> Result<(), String> {
        if !((self.experimental() && self.crds >= 3) || self.crds >= 5) {
            return Err(format!(
                "the {} have no CORS filter (experimental from v1.3, standard from v1.5)",
                self.crds()
            ));
        }
        if self.cilium <= 19 {
            return Err(format!(
                "Cilium 1.{} does not implement the HTTPRoute CORS filter",
                self.cilium
            ));
        }
        Ok(())
    }

    /// `sessionPersistence`: experimental channel only (from v1.1). Cilium's main-branch docs
    /// describe it (Cookie, session lifetime), but no released minor up to 1.20 reads it: v1.20.0's
    /// `operator/pkg/model/ingestion` and `translation` have no sessionPersistence, so it would
    /// be dropped without a word.
    pub(crate) fn session_persistence(&self) -> Result<(), String> {
        if !(self.experimental() && self.crds >= 1) {
            return Err(format!(
                "the {} have no sessionPersistence (experimental channel only, from v1.1)",
                self.crds()
            ));
        }
        if self.cilium <= 20 {
            return Err(format!(
                "Cilium 1.{} does not implement HTTPRoute sessionPersistence",
                self.cilium
            ));
        }
        Ok(())
    }

    /// BackendTLSPolicy `v1`: both channels from v1.4 (v1alpha2/v1alpha3 before, experimental
    /// only); Cilium implements it from 1.19.
    pub(crate) fn backend_tls(&self) -> Result<&'static str, String> {
        if self.crds < 4 {
            return Err(format!(
                "the {} have no BackendTLSPolicy v1 (from v1.4)",
                self.crds()
            ));
        }
        if self.cilium < 19 {
            return Err(format!(
                "Cilium 1.{} does not implement BackendTLSPolicy (from 1.19)",
                self.cilium
            ));
        }
        Ok("gateway.networking.k8s.io/v1")
    }

    /// GRPCRoute: `v1` from v1.1 in both channels, `v1alpha2` in v1.0's experimental channel
    /// (what Cilium 1.15 reads).
    pub(crate) fn grpc_route(&self) -> Result<&'static str, String> {
        match (self.crds, self.channel) {
            (0, Channel::Experimental) => Ok("gateway.networking.k8s.io/v1alpha2"),
            (0, Channel::Standard) => Err(format!(
                "the {} have no GRPCRoute (experimental in v1.0, standard from v1.1)",
                self.crds()
            )),
            _ => Ok("gateway.networking.k8s.io/v1"),
        }
    }

    /// TLSRoute: the experimental CRD (`v1alpha2` up to v1.4, which Cilium up to 1.19 reads;
    /// `v1` in both channels from v1.5, which Cilium 1.20 reads). Cilium 1.15/1.16 need it
    /// installed, 1.17 to 1.19 take it as optional (`tls_route_crd` says whether it is there),
    /// 1.20 requires it again.
    pub(crate) fn tls_route(&self) -> Result<&'static str, String> {
        if !self.tls_route_crd && self.cilium >= 20 {
            return Err(format!(
                "the TLSRoute CRD is not installed: Cilium 1.{} keeps its whole Gateway controller off without it; `gateway-api check` says which TLSRoute CRD to install",
                self.cilium
            ));
        }
        if !self.tls_route_crd && self.cilium >= 17 {
            return Err(
                "the TLSRoute CRD is not installed (Cilium turns TLSRoute support off without it): install the experimental TLSRoute CRD"
                    .to_owned(),
            );
        }
        if self.crds >= 5 {
            Ok("gateway.networking.k8s.io/v1")
        } else {
            Ok("gateway.networking.k8s.io/v1alpha2")
        }
    }
}
