{{/*
Expand the name of the chart.
*/}}
{{- define "tideflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name. Truncated at 46 characters, not 63: the longest suffix
the chart appends is "-operator-metrics" (17), and every name must stay a DNS label.
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "tideflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 46 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 46 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "tideflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "tideflow.labels" -}}
helm.sh/chart: {{ include "tideflow.chart" . }}
{{ include "tideflow.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tideflow
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "tideflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tideflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per component: labels and selector labels with app.kubernetes.io/component.
Call with (dict "root" $ "component" "operator").
*/}}
{{- define "tideflow.componentLabels" -}}
{{ include "tideflow.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tideflow.componentSelectorLabels" -}}
{{ include "tideflow.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Names of the components' objects.
*/}}
{{- define "tideflow.operator.fullname" -}}
{{- printf "%s-operator" (include "tideflow.fullname" .) }}
{{- end }}

{{- define "tideflow.api.fullname" -}}
{{- printf "%s-api" (include "tideflow.fullname" .) }}
{{- end }}

{{- define "tideflow.runtime.fullname" -}}
{{- printf "%s-runtime" (include "tideflow.fullname" .) }}
{{- end }}

{{/*
ServiceAccount names.
*/}}
{{- define "tideflow.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "tideflow.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tideflow.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create }}
{{- default (include "tideflow.api.fullname" .) .Values.api.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.api.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Images.
*/}}
{{- define "tideflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "tideflow.runtime.image" -}}
{{- $repository := .Values.runtime.image.repository | default .Values.image.repository }}
{{- $tag := .Values.runtime.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}

{{/*
The namespaces served, as a comma-separated list (TIDEFLOW_NAMESPACES); empty for all.
*/}}
{{- define "tideflow.namespaces" -}}
{{- join "," .Values.watchNamespaces }}
{{- end }}

{{/*
Namespaces that get the runtime pods' NetworkPolicy.
*/}}
{{- define "tideflow.runtimePolicyNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson .Values.networkPolicy.runtimeNamespaces }}
{{- end }}
{{- end }}

{{/*
The bootstrap key Secret's name: the user's existing Secret, or the chart's.
*/}}
{{- define "tideflow.bootstrapSecretName" -}}
{{- .Values.api.bootstrap.existingSecret | default (printf "%s-bootstrap" (include "tideflow.fullname" .)) }}
{{- end }}

{{/*
The bootstrap key the chart's Secret holds: the value given, else the one already in the cluster's
Secret (an upgrade keeps it), else 48 new random characters. Never printed anywhere but the Secret.
*/}}
{{- define "tideflow.bootstrapKey" -}}
{{- if .Values.api.bootstrap.apiKey }}
{{- .Values.api.bootstrap.apiKey }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "tideflow.bootstrapSecretName" .) }}
{{- if and $existing $existing.data (index $existing.data "api-key") }}
{{- index $existing.data "api-key" | b64dec }}
{{- else }}
{{- randAlphaNum 48 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Restricted-PSS volume and mount for /tmp, the only writable path (the root filesystem is read-only).
*/}}
{{- define "tideflow.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "tideflow.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
