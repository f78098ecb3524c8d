//! The one answer to "does Cilium replace kube-proxy?", for every spelling that reaches us: the
//! agent's `kube-proxy-replacement` key, the chart's `kubeProxyReplacement` value (a string or a
//! YAML boolean) and Kubespray's `cilium_kube_proxy_replacement`.

use serde_json::Value;

/// Whether this `kube-proxy-replacement` setting replaces kube-proxy: `true`, or 1.15's `strict`
/// (`partial`, `probe`, `disabled` and `false` keep kube-proxy's service handling).
pub fn replaces_kube_proxy(setting: &str) -> bool {
    let setting = setting.trim();
    setting.eq_ignore_ascii_case("true") || setting.eq_ignore_ascii_case("strict")
}

/// [`replaces_kube_proxy`] for a value as YAML or JSON holds it (Helm values may say `true`
/// unquoted); anything else, missing included, keeps kube-proxy.
pub fn replaces_kube_proxy_value(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(on)) => *on,
        Some(Value::String(text)) => replaces_kube_proxy(text),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_true_and_strict_replace_kube_proxy() {
        for on in ["true", "TRUE", " strict ", "Strict"] {
            assert!(replaces_kube_proxy(on), "{on}");
        }
        for off in ["false", "partial", "probe", "disabled", ""] {
            assert!(!replaces_kube_proxy(off), "{off}");
        }
    }

    #[test]
    fn helm_values_may_spell_it_as_a_boolean() {
        assert!(replaces_kube_proxy_value(Some(&json!(true))));
        assert!(replaces_kube_proxy_value(Some(&json!("strict"))));
        assert!(!replaces_kube_proxy_value(Some(&json!(false))));
        assert!(!replaces_kube_proxy_value(Some(&json!("partial"))));
        assert!(!replaces_kube_proxy_value(None));
    }
}
