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
{{- if semverCompare ">=1.16.0-0" .Chart.Version -}}
{{- if not (has $text (list "true" "false")) -}}
{{- fail (printf "kubeProxyReplacement must be true or false from chart 1.16 (got %q)" $text) -}}
{{- end -}}
{{- else if not (has $text (list "true" "false" "partial" "strict" "disabled")) -}}
{{- fail (printf "kubeProxyReplacement must be one of true, false, partial, strict, disabled (got %q)" $text) -}}
{{- end -}}
{{- $text -}}
{{- end -}}

{{/*
Which chart minors (and the patches where a rendered key moved) this render stands in for, as a
JSON object of booleans: v1_16, v1_17, v1_17_2, v1_17_6, v1_18, v1_19. From `.Chart.Version`.
*/}}
{{- define "cilium-config.since" -}}
{{- $v := .Chart.Version -}}
{{- $since := dict -}}
{{- range $name, $floor := dict "v1_16" "1.16.0" "v1_17" "1.17.0" "v1_17_2" "1.17.2" "v1_17_6" "1.17.6" "v1_18" "1.18.0" "v1_19" "1.19.0" -}}
{{- $_ := set $since $name (semverCompare (printf ">=%s-0" $floor) $v) -}}
{{- end -}}
{{- toJson $since -}}
{{- end -}}

{{/*
The IPsec key file. 1.15 uses encryption.ipsec.mountPath/keyFile when both are set, else the legacy
encryption.mountPath/keyFile (default /etc/ipsec/keys); 1.16 knows only encryption.ipsec.*, whose
defaults are /etc/ipsec and keys.
*/}}
{{- define "cilium-config.ipsecKeyFile" -}}
{{- $ipsec := .Values.encryption.ipsec -}}
{{- if and $ipsec.mountPath $ipsec.keyFile -}}
{{- printf "%s/%s" $ipsec.mountPath $ipsec.keyFile -}}
{{- else if semverCompare ">=1.16.0-0" .Chart.Version -}}
{{- printf "%s/%s" ($ipsec.mountPath | default "/etc/ipsec") ($ipsec.keyFile | default "keys") -}}
{{- else -}}
{{- printf "%s/%s" (.Values.encryption.mountPath | default "/etc/ipsec") (.Values.encryption.keyFile | default "keys") -}}
{{- end -}}
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
