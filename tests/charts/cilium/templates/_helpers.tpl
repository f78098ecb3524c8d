{{/*
Helpers of the look-alike chart's cilium-config template (a test fixture, never the real chart).
*/}}

{{/*
The kube-proxy replacement mode as the agent gets it: the value as text, "false" when unset
(the default since 1.14). Chart 1.15 still accepts the legacy partial/strict/disabled.
*/}}
{{- define "cilium-config.kubeProxyReplacement" -}}
{{- $text := toString .Values.kubeProxyReplacement -}}
{{- if or (eq $text "<nil>") (eq $text "") -}}
{{- $text = "false" -}}
{{- end -}}
{{- if not (has $text (list "true" "false" "partial" "strict" "disabled")) -}}
{{- fail (printf "kubeProxyReplacement must be one of true, false, partial, strict, disabled (got %q)" $text) -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/* The operator's health API address: loopback of the first enabled IP family. */}}
{{- define "cilium-config.operatorApiServeAddr" -}}
{{- if .Values.ipv4.enabled -}}
127.0.0.1:9234
{{- else -}}
[::1]:9234
{{- end -}}
{{- end -}}

{{/* The CNI chaining mode, "none" when unset. */}}
{{- define "cilium-config.chainingMode" -}}
{{- if kindIs "invalid" .Values.cni.chainingMode -}}
none
{{- else -}}
{{- .Values.cni.chainingMode -}}
{{- end -}}
{{- end -}}

{{/* "true" when a value is set (not null). */}}
{{- define "cilium-config.isSet" -}}
{{- if not (kindIs "invalid" .) }}true{{ end -}}
{{- end -}}
