{{/* Names, labels and the pieces every pod shares. */}}

{{- define "skerry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-skerry, or the release name alone when it already says skerry. */}}
{{- define "skerry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The StatefulSet, its pods' prefix and its headless Service. */}}
{{- define "skerry.broker.fullname" -}}
{{- printf "%s-broker" (include "skerry.fullname" .) | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "skerry.lb.fullname" -}}
{{- printf "%s-lb" (include "skerry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "skerry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "skerry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "skerry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skerry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "skerry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Pod annotations: Prometheus scraping of the admin port. */}}
{{- define "skerry.metricsAnnotations" -}}
{{- if .Values.metrics.annotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.admin.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Liveness on /health, readiness on /ready, both on the admin port. */}}
{{- define "skerry.probes" -}}
livenessProbe:
  httpGet:
    path: /health
    port: admin
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /ready
    port: admin
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}

{{/* The Skerry config sections both kinds of pod share. */}}
{{- define "skerry.commonConfig" -}}
logging:
  level: {{ .Values.logging.level | quote }}
  format: {{ .Values.logging.format }}
admin:
  bind: 0.0.0.0:{{ .Values.admin.port }}
  {{- if .Values.admin.tokenSecret }}
  token_file: /etc/skerry/admin/token
  {{- end }}
{{- end }}

{{/* Prefer one pod of a component per host unless affinity is given. */}}
{{- define "skerry.affinity" -}}
{{- $ := index . 0 }}{{ $component := index . 1 }}{{ $given := index . 2 }}
{{- if $given }}
{{- toYaml $given }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "skerry.selectorLabels" $ | nindent 12 }}
            app.kubernetes.io/component: {{ $component }}
{{- end }}
{{- end }}

{{/* Pass-through blocks may not set what the chart itself derives. */}}
{{- define "skerry.reservedKeys" -}}
{{- range $block := list
  (list "broker.settings" .Values.broker.settings (list "nodes" "users_file" "allow_anonymous" "acl"))
  (list "broker.listener" .Values.broker.listener (list "name" "bind" "transport" "tls" "proxy_protocol"))
  (list "lb.settings" .Values.lb.settings (list "listeners" "pools"))
  (list "lb.pool" .Values.lb.pool (list "name" "members" "proxy_protocol")) }}
{{- range $key := index $block 2 }}
{{- if hasKey (index $block 1 | default dict) $key }}
{{- fail (printf "%s.%s is set by the chart itself; see values.yaml" (index $block 0) $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
