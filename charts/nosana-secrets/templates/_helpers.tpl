{{/* Names, labels and the image, shared by every template. */}}

{{- define "nosana-secrets.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nosana-secrets.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A part's resource name, e.g. "<fullname>-server". Call with (dict "root" $ "part" "server"). */}}
{{- define "nosana-secrets.partName" -}}
{{- printf "%s-%s" (include "nosana-secrets.fullname" .root | trunc 52 | trimSuffix "-") .part -}}
{{- end -}}

{{- define "nosana-secrets.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nosana-secrets.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .part }}
{{- end -}}

{{/* Labels of every object; call with (dict "root" $ "part" "server"), part may be empty. */}}
{{- define "nosana-secrets.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "nosana-secrets.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .part }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: nosana-secrets
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object, plus extra ones; call with (dict "root" $ "extra" dict). */}}
{{- define "nosana-secrets.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .extra)) (deepCopy (default (dict) .root.Values.commonAnnotations)) -}}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "nosana-secrets.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount name of a part; call with (dict "root" $ "part" "server"). */}}
{{- define "nosana-secrets.serviceAccountName" -}}
{{- $sa := (index .root.Values .part).serviceAccount -}}
{{- if $sa.create -}}
{{- default (include "nosana-secrets.partName" .) $sa.name -}}
{{- else -}}
{{- default "default" $sa.name -}}
{{- end -}}
{{- end -}}

{{- define "nosana-secrets.serverUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "nosana-secrets.partName" (dict "root" . "part" "server")) .Release.Namespace .Values.server.service.port -}}
{{- end -}}

{{- define "nosana-secrets.storageIsSqlite" -}}
{{- if and (not .Values.server.storage.existingSecret) (hasPrefix "sqlite://" .Values.server.storage.connection) -}}true{{- end -}}
{{- end -}}

{{- define "nosana-secrets.keysSecretName" -}}
{{- default (include "nosana-secrets.partName" (dict "root" . "part" "keys")) .Values.server.keys.existingSecret -}}
{{- end -}}

{{/* A part's topologySpreadConstraints; a constraint without labelSelector spreads that part's own pods. Call with
  (dict "root" $ "part" "server"). */}}
{{- define "nosana-secrets.topologySpreadConstraints" -}}
{{- $part := . -}}
{{- range (index .root.Values .part).topologySpreadConstraints }}
- {{- toYaml (merge (deepCopy .) (dict "labelSelector" (dict "matchLabels" (include "nosana-secrets.selectorLabels" $part | fromYaml)))) | nindent 2 }}
{{- end }}
{{- end -}}
