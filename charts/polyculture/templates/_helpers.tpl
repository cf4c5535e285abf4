{{/* Labels every operator object carries; selector labels are the stable subset. */}}
{{- define "polyculture.operatorSelector" -}}
app.kubernetes.io/name: polyculture-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "polyculture.operatorLabels" -}}
{{ include "polyculture.operatorSelector" . }}
app.kubernetes.io/part-of: polyculture
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "polyculture.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
