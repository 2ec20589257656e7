{{/* Labels every object carries, as the kustomize base's. */}}
{{- define "foresight.labels" -}}
app.kubernetes.io/name: foresight
app.kubernetes.io/part-of: foresight
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The pods' selector: the same as the kustomize base's. */}}
{{- define "foresight.selector" -}}
app.kubernetes.io/name: foresight
app.kubernetes.io/component: forecaster
{{- end -}}

{{- define "foresight.certSecret" -}}
{{- if eq .Values.certs.mode "existing" -}}{{ required "certs.existingSecret is required with certs.mode=existing" .Values.certs.existingSecret }}{{- else -}}foresight-serving-cert{{- end -}}
{{- end -}}

{{/* The serving certificate and its CA for certs.mode=generate, made once
per render and shared by the Secret and the APIServices. */}}
{{- define "foresight.generatedCerts" -}}
{{- if not .Values._certs -}}
{{- $ns := .Release.Namespace -}}
{{- $ca := genCA "foresight-ca" (int .Values.certs.validityDays) -}}
{{- $cert := genSignedCert (printf "foresight.%s.svc" $ns) nil (list (printf "foresight.%s.svc" $ns) (printf "foresight.%s.svc.cluster.local" $ns)) (int .Values.certs.validityDays) $ca -}}
{{- $_ := set .Values "_certs" (dict "ca" $ca.Cert "crt" $cert.Cert "key" $cert.Key) -}}
{{- end -}}
{{- end -}}

{{/* caBundle of the APIServices (empty with cert-manager: its CA injector
fills it in). */}}
{{- define "foresight.caBundle" -}}
{{- if eq .Values.certs.mode "generate" -}}
{{- include "foresight.generatedCerts" . -}}
{{- .Values._certs.ca | b64enc -}}
{{- else if eq .Values.certs.mode "existing" -}}
{{- required "certs.caBundle (base64 PEM of the CA that signed certs.existingSecret) is required with certs.mode=existing" .Values.certs.caBundle -}}
{{- end -}}
{{- end -}}
