{{/* Labels every object carries. */}}
{{- define "mm.labels" -}}
app.kubernetes.io/part-of: market-media
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The one image: repository@digest when a digest is set, else repository:tag (default the chart's appVersion). */}}
{{- define "mm.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Pod-level security: Pod Security `restricted` (non-root, RuntimeDefault seccomp). */}}
{{- define "mm.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security: read-only root filesystem, no privilege escalation, every capability dropped. */}}
{{- define "mm.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* envFrom of the settings ConfigMap and a Secret synced by External Secrets. Args: dict "secret" NAME. */}}
{{- define "mm.envFrom" -}}
- configMapRef:
    name: mm-settings
- secretRef:
    name: {{ .secret }}
{{- end -}}

{{/* The writable paths of a read-only pod: MM_HOME and /tmp (emptyDir), the channel configuration (read-only). */}}
{{- define "mm.volumeMounts" -}}
- name: state
  mountPath: {{ .Values.settings.MM_HOME }}
- name: tmp
  mountPath: /tmp
- name: channels
  mountPath: /etc/mm/channels
  readOnly: true
{{- end -}}

{{- define "mm.volumes" -}}
- name: state
  emptyDir:
    sizeLimit: {{ .Values.api.stateSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.api.tmpSizeLimit }}
- name: channels
  configMap:
    name: mm-channels
{{- end -}}

{{/* NetworkPolicy peers of one target (network.<name>): ipBlocks for its CIDRs, else a namespace/pod selector. */}}
{{- define "mm.egressRule" -}}
- to:
  {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
  {{- end }}
  {{- if .namespace }}
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .namespace }}
      {{- with .podLabels }}
      podSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
      {{- end }}
  {{- end }}
  ports:
  {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
  {{- end }}
{{- end -}}

{{/* The services a namespace's pods reach. Args: dict "root" $ "targets" (list of network.<name> keys). */}}
{{- define "mm.egressRules" -}}
{{- $network := .root.Values.network -}}
{{- range .targets }}
{{ include "mm.egressRule" (index $network .) }}
{{- end }}
{{- end -}}
