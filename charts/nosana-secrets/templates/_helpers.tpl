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
{{- printf "%s://%s.%s.svc:%v" (ternary "https" "http" .Values.server.tls.enabled) (include "nosana-secrets.partName" (dict "root" . "part" "server")) .Release.Namespace .Values.server.service.port -}}
{{- end -}}

{{/* The Secret with tls.crt, tls.key and ca.crt; fails the render with the fix when TLS has no source. */}}
{{- define "nosana-secrets.tlsSecretName" -}}
{{- if .Values.server.tls.existingSecret -}}
{{- .Values.server.tls.existingSecret -}}
{{- else if .Values.server.tls.certManager.enabled -}}
{{- printf "%s-tls" (include "nosana-secrets.partName" (dict "root" . "part" "server")) -}}
{{- else -}}
{{- fail "server.tls.enabled needs a certificate: set server.tls.existingSecret (a Secret with tls.crt, tls.key, ca.crt) or server.tls.certManager.enabled=true with server.tls.certManager.issuerRef.name" -}}
{{- end -}}
{{- end -}}

{{/* env and volume of a client (operator, injector) that trusts the server's CA; call with (dict "root" $ "part" "env"|"mount"|"volume"). */}}
{{- define "nosana-secrets.caClient" -}}
{{- if .root.Values.server.tls.enabled -}}
{{- if eq .part "env" }}
- name: NOSANA_SECRETS_CA_FILE
  value: /etc/nosana-secrets/ca/ca.crt
{{- else if eq .part "mount" }}
- name: server-ca
  mountPath: /etc/nosana-secrets/ca
  readOnly: true
{{- else }}
# Only the CA: the server's key stays with the server.
- name: server-ca
  secret:
    secretName: {{ include "nosana-secrets.tlsSecretName" .root }}
    items:
      - key: ca.crt
        path: ca.crt
    defaultMode: 0444
{{- end }}
{{- end -}}
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
