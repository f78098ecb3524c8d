//! Test support shared by the helm crate's tests and the testbed tests (`tests/tests/helm.rs`
//! includes this file): the real helm binaries, a tiny chart written to disk, and a loopback
//! chart repository.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `$CILIUM_MIGRATE_TOOLS`, else `<workspace>/target/tools/bin`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("CILIUM_MIGRATE_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|dir| dir.join("Cargo.lock").is_file())
            .unwrap_or(Path::new("."))
            .join("target/tools/bin"),
    }
}

/// The Helm binaries under test, `(major, path)`: `helm3` and `helm4`. Panics with the fix when
/// they are not built: these tests are about the real binaries.
pub fn helm_binaries() -> Vec<(u32, PathBuf)> {
    let dir = tools_dir();
    [(3, "helm3"), (4, "helm4")]
        .into_iter()
        .map(|(major, name)| {
            let path = dir.join(name);
            assert!(
                path.is_file(),
                "{} is missing: run `cargo xtask testbed build` (or set CILIUM_MIGRATE_TOOLS)",
                path.display()
            );
            (major, path)
        })
        .collect()
}

/// Writes chart `tiny` (version `version`) into `parent/tiny`: a ConfigMap, a ServiceAccount, a
/// DaemonSet and a ClusterRole, shaped like Cilium's (plus, with `loadBalancer: true`, a Service
/// that never becomes ready), and a values.schema.json that is type-strict like Cilium's.
pub fn write_tiny_chart(parent: &Path, version: &str) -> std::io::Result<PathBuf> {
    let dir = parent.join("tiny");
    std::fs::create_dir_all(dir.join("templates"))?;
    std::fs::write(
        dir.join("Chart.yaml"),
        format!("apiVersion: v2\nname: tiny\nversion: {version}\nappVersion: \"1.15.9\"\n"),
    )?;
    std::fs::write(
        dir.join("values.yaml"),
        "clusterName: default\nkubeProxyReplacement: false\ndebug: false\nkeepConfig: false\nloadBalancer: false\nimage: registry.local/cilium:v1.15.9\n",
    )?;
    std::fs::write(
        dir.join("values.schema.json"),
        r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "type": "object",
  "properties": {
    "clusterName": { "type": "string" },
    "kubeProxyReplacement": { "type": "boolean" },
    "debug": { "type": "boolean" },
    "keepConfig": { "type": "boolean" },
    "loadBalancer": { "type": "boolean" },
    "image": { "type": "string" }
  }
}
"#,
    )?;
    std::fs::write(
        dir.join("templates/configmap.yaml"),
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
  namespace: {{ .Release.Namespace }}
  {{- if .Values.keepConfig }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
data:
  cluster-name: {{ .Values.clusterName | quote }}
  kube-proxy-replacement: {{ .Values.kubeProxyReplacement | quote }}
  debug: {{ .Values.debug | quote }}
"#,
    )?;
    std::fs::write(
        dir.join("templates/serviceaccount.yaml"),
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
"#,
    )?;
    std::fs::write(dir.join("templates/daemonset.yaml"), daemonset_template())?;
    // No load-balancer controller runs on the testbed: a waiting install never becomes ready.
    std::fs::write(
        dir.join("templates/service.yaml"),
        r#"{{- if .Values.loadBalancer }}
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-lb
  namespace: {{ .Release.Namespace }}
spec:
  type: LoadBalancer
  selector:
    k8s-app: {{ .Release.Name }}
  ports:
    - port: 4244
{{- end }}
"#,
    )?;
    std::fs::write(
        dir.join("templates/clusterrole.yaml"),
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Name }}-{{ .Release.Namespace }}
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
"#,
    )?;
    Ok(dir)
}

fn daemonset_template() -> &'static str {
    r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels:
    k8s-app: {{ .Release.Name }}
spec:
  selector:
    matchLabels:
      k8s-app: {{ .Release.Name }}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 2
  template:
    metadata:
      labels:
        k8s-app: {{ .Release.Name }}
    spec:
      serviceAccountName: {{ .Release.Name }}
      tolerations:
        - operator: Exists
      containers:
        - name: agent
          image: {{ .Values.image | quote }}
          env:
            - name: DEBUG
              value: {{ .Values.debug | quote }}
"#
}

/// A static file server on 127.0.0.1 for a chart repository directory (`helm repo index`).
/// It serves at most `max_requests` requests, then its thread ends.
pub struct LoopbackRepo {
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl LoopbackRepo {
    /// Serves `root` until `max_requests` requests were answered.
    pub fn serve(root: &Path, max_requests: usize) -> std::io::Result<LoopbackRepo> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/", listener.local_addr()?);
        let root = root.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&stream);
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain the headers.
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
                let file = (!name.contains("..")).then(|| root.join(name));
                let response = match file.and_then(|f| std::fs::read(f).ok()) {
                    Some(body) => {
                        let mut r = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        r.extend(body);
                        r
                    }
                    None => {
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec()
                    }
                };
                let _ = stream.write_all(&response);
            }
        });
        Ok(LoopbackRepo { url })
    }
}
