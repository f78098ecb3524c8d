{{/*
Helpers of the look-alike chart's workload templates (a test fixture, never the real chart).
Every value is read with a default so that the templates render with a sparse values.yaml.
*/}}

{{/*
A boolean value that defaults to true when the key is absent ("true" or "").
Usage: include "lookalike.enabled" (list $map "key" true)
*/}}
{{- define "lookalike.enabled" -}}
{{- $map := index . 0 | default dict -}}
{{- $key := index . 1 -}}
{{- $default := index . 2 -}}
{{- if hasKey $map $key -}}
{{- if index $map $key }}true{{ end -}}
{{- else if $default -}}
true
{{- end -}}
{{- end -}}

{{/* An image reference from an image map (repository, suffix, tag) and defaults. */}}
{{- define "lookalike.image" -}}
{{- $image := index . 0 | default dict -}}
{{- $repository := index . 1 -}}
{{- $tag := index . 2 -}}
{{- printf "%s%s:%s" ($image.repository | default $repository) ($image.suffix | default "") ($image.tag | default $tag) -}}
{{- end -}}

{{/* The labels the upstream chart puts on every object of a component. */}}
{{- define "lookalike.partOf" -}}
app.kubernetes.io/part-of: cilium
app.kubernetes.io/name: {{ . }}
{{- end -}}

{{/* Whether Hubble is on ("true" or ""); the chart's default is on. */}}
{{- define "lookalike.hubble" -}}
{{- include "lookalike.enabled" (list .Values.hubble "enabled" true) -}}
{{- end -}}

{{/* Whether the Hubble relay is rendered ("true" or ""). */}}
{{- define "lookalike.hubbleRelay" -}}
{{- $hubble := .Values.hubble | default dict -}}
{{- if and (include "lookalike.hubble" .) (include "lookalike.enabled" (list $hubble.relay "enabled" false)) }}true{{ end -}}
{{- end -}}

{{/* Whether the Hubble UI is rendered ("true" or ""). */}}
{{- define "lookalike.hubbleUI" -}}
{{- $hubble := .Values.hubble | default dict -}}
{{- if and (include "lookalike.hubble" .) (include "lookalike.enabled" (list $hubble.ui "enabled" false)) }}true{{ end -}}
{{- end -}}

{{/* Whether the agent runs privileged ("true" or ""): securityContext.privileged, default off. */}}
{{- define "lookalike.privileged" -}}
{{- $securityContext := .Values.securityContext | default dict -}}
{{- if $securityContext.privileged }}true{{ end -}}
{{- end -}}

{{/*
A container securityContext: privileged when the agent runs privileged, otherwise the
capabilities of `securityContext.capabilities.<name>` (or the defaults) with ALL dropped.
Usage: include "lookalike.capabilities" (list $ "mountCgroup" (list "SYS_ADMIN" ...))
*/}}
{{- define "lookalike.capabilities" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $defaults := index . 2 -}}
{{- $securityContext := $root.Values.securityContext | default dict -}}
{{- $capabilities := $securityContext.capabilities | default dict -}}
{{- if include "lookalike.privileged" $root -}}
privileged: true
{{- else -}}
seLinuxOptions:
  level: s0
  type: spc_t
capabilities:
  add:
    {{- toYaml (index $capabilities $name | default $defaults) | nindent 4 }}
  drop:
    - ALL
{{- end -}}
{{- end -}}

{{/*
Sets $.lookalikeCA to the cluster's CA: the live Secret `cilium-ca` if there is one (lookup
returns nothing under `helm template`), else a new one. Shared by every TLS template.
*/}}
{{- define "lookalike.ca" -}}
{{- if not $.lookalikeCA -}}
{{- $existing := lookup "v1" "Secret" $.Release.Namespace "cilium-ca" -}}
{{- if and $existing $existing.data -}}
{{- $_ := set $ "lookalikeCA" (buildCustomCert (index $existing.data "ca.crt") (index $existing.data "ca.key")) -}}
{{- else -}}
{{- $_ := set $ "lookalikeCA" (genCA "Cilium CA" 1095) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether Helm generates the Hubble certificates ("true" or ""): hubble.tls.auto, method helm. */}}
{{- define "lookalike.hubbleTLS" -}}
{{- $hubble := .Values.hubble | default dict -}}
{{- $tls := $hubble.tls | default dict -}}
{{- $auto := $tls.auto | default dict -}}
{{- if and (include "lookalike.hubble" .) (include "lookalike.enabled" (list $tls "enabled" true)) (include "lookalike.enabled" (list $auto "enabled" true)) (eq ($auto.method | default "helm") "helm") }}true{{ end -}}
{{- end -}}

{{/* The cluster name (`cluster.name`, default `default`). */}}
{{- define "lookalike.clusterName" -}}
{{- $cluster := .Values.cluster | default dict -}}
{{- $cluster.name | default "default" -}}
{{- end -}}
