"""Writes the recorded API objects in this folder (run: python3 generate.py). Shaped like real
kube-apiserver output; the Helm Secrets carry real base64+gzip release payloads."""
import json, gzip, base64, copy, os
OUT = os.path.dirname(os.path.abspath(__file__))
os.makedirs(OUT, exist_ok=True)
def w(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=2); f.write("\n")
TS = "2026-11-20T09:14:03Z"
def meta(name, ns=None, uid="0", **extra):
    m = {"name": name, "uid": uid, "resourceVersion": "48213", "creationTimestamp": TS}
    if ns: m["namespace"] = ns
    m.update(extra); return m

# DaemonSets
def ds(name, gen, observed, desired, ready, updated, available, unavailable=None):
    st = {"currentNumberScheduled": desired, "desiredNumberScheduled": desired, "numberMisscheduled": 0,
          "numberReady": ready, "observedGeneration": observed, "updatedNumberScheduled": updated,
          "numberAvailable": available}
    if unavailable: st["numberUnavailable"] = unavailable
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": meta(name, "kube-system", "5f0c1a9e-7d0b-4e52-9a55-" + name.ljust(12, "0")[:12].encode().hex()[:12], generation=gen,
                             labels={"k8s-app": name}, annotations={"deprecated.daemonset.template.generation": str(gen)}),
            "spec": {"selector": {"matchLabels": {"k8s-app": name}},
                     "template": {"metadata": {"labels": {"k8s-app": name}},
                                  "spec": {"containers": [{"name": "cilium-agent", "image": "quay.io/cilium/cilium:v1.15.9"}]}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                     "revisionHistoryLimit": 10},
            "status": st}
w("daemonset-cilium-healthy.json", ds("cilium", 3, 3, 3, 3, 3, 3))
w("daemonset-cilium-rolling-out.json", ds("cilium", 4, 4, 3, 2, 1, 2, 1))
w("daemonset-cilium-not-observed.json", ds("cilium", 5, 4, 3, 3, 3, 3))
w("daemonset-cilium-envoy-unavailable.json", ds("cilium-envoy", 1, 1, 3, 3, 3, 2, 1))

def deploy(name, gen, observed, replicas, ready, updated, available, unavailable=None):
    st = {"observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated}
    if ready: st["readyReplicas"] = ready
    if available: st["availableReplicas"] = available
    if unavailable: st["unavailableReplicas"] = unavailable
    st["conditions"] = [{"type": "Available", "status": "True" if available >= replicas else "False",
                         "lastUpdateTime": TS, "lastTransitionTime": TS, "reason": "MinimumReplicasAvailable",
                         "message": "Deployment has minimum availability."}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta(name, "kube-system", "8d1e9f32-22c1-4d0e-b7a4-0b6f1e2d3c4a", generation=gen,
                             labels={"io.cilium/app": "operator", "name": name}),
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"name": name}},
                     "template": {"metadata": {"labels": {"name": name}},
                                  "spec": {"containers": [{"name": name, "image": "quay.io/cilium/operator-generic:v1.15.9"}]}}},
            "status": st}
w("deployment-cilium-operator-healthy.json", deploy("cilium-operator", 2, 2, 2, 2, 2, 2))
w("deployment-cilium-operator-unready.json", deploy("cilium-operator", 2, 2, 2, 1, 2, 1, 1))

# Agent pods
def container_status(name, image, running=True, ready=True, restarts=0, waiting=None, terminated=None, last=None):
    s = {"name": name, "image": image, "imageID": image + "@sha256:" + "ab" * 32,
         "containerID": "containerd://" + "cd" * 32, "ready": ready, "restartCount": restarts, "started": running}
    if waiting: s["state"] = {"waiting": waiting}
    elif terminated: s["state"] = {"terminated": terminated}
    else: s["state"] = {"running": {"startedAt": TS}}
    s["lastState"] = {"terminated": last} if last else {}
    return s
IMG = "quay.io/cilium/cilium:v1.15.9"
def done(code=0, reason="Completed", message=None):
    t = {"exitCode": code, "reason": reason, "startedAt": TS, "finishedAt": TS, "containerID": "containerd://" + "ef" * 32}
    if message: t["message"] = message
    return t
INITS = ["config", "mount-cgroup", "apply-sysctl-overwrites", "mount-bpf-fs", "clean-cilium-state", "install-cni-binaries"]
def agent_pod(name, node, phase="Running", inits=None, main=None):
    inits = inits or [container_status(n, IMG, running=False, terminated=done()) for n in INITS]
    main = main or [container_status("cilium-agent", IMG)]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(name, "kube-system", "2b7c" + name[-5:].encode().hex().ljust(28, "0"), generateName="cilium-",
                             labels={"k8s-app": "cilium", "controller-revision-hash": "7d9f8c6b5", "pod-template-generation": "3"},
                             ownerReferences=[{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "cilium", "uid": "5f0c1a9e",
                                               "controller": True, "blockOwnerDeletion": True}]),
            "spec": {"nodeName": node, "hostNetwork": True, "restartPolicy": "Always",
                     "containers": [{"name": "cilium-agent", "image": IMG}],
                     "initContainers": [{"name": n, "image": IMG} for n in INITS]},
            "status": {"phase": phase, "hostIP": "10.0.0.1", "podIP": "10.0.0.1", "startTime": TS,
                       "qosClass": "Burstable", "initContainerStatuses": inits, "containerStatuses": main}}
def podlist(items): return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "48300"}, "items": items}
w("pods-agent-healthy.json", podlist([agent_pod("cilium-4xk2p", "node1"), agent_pod("cilium-9qz7d", "node2"), agent_pod("cilium-tb8wm", "node3")]))
HOSTBIN = "cp: cannot create regular file '/hostbin/cilium-mount': Permission denied\n"
hostbin_inits = [container_status("config", IMG, running=False, terminated=done()),
                 container_status("mount-cgroup", IMG, running=False, ready=False, restarts=4,
                                  waiting={"reason": "CrashLoopBackOff", "message": "back-off 1m20s restarting failed container=mount-cgroup pod=cilium-x7k2n_kube-system(2b7c)"},
                                  last=done(1, "Error", HOSTBIN))] + \
                [container_status(n, IMG, running=False, ready=False, waiting={"reason": "PodInitializing"}) for n in INITS[2:]]
hostbin_main = [container_status("cilium-agent", IMG, running=False, ready=False, waiting={"reason": "PodInitializing"})]
w("pods-agent-hostbin-denied.json", podlist([agent_pod("cilium-4xk2p", "node1"), agent_pod("cilium-x7k2n", "node2", "Pending", hostbin_inits, hostbin_main), agent_pod("cilium-tb8wm", "node3")]))
crash_main = [container_status("cilium-agent", IMG, running=False, ready=False, restarts=7,
                               waiting={"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container=cilium-agent"},
                               last=done(1, "Error", "level=fatal msg=\"Error while creating daemon\" error=\"invalid daemon configuration: unable to parse ipv4-native-routing-cidr\""))]
w("pods-agent-crashloop.json", podlist([agent_pod("cilium-4xk2p", "node1"), agent_pod("cilium-9qz7d", "node2", "Running", None, crash_main)]))
unready_main = [container_status("cilium-agent", IMG, running=True, ready=False)]
w("pods-agent-not-ready.json", podlist([agent_pod("cilium-4xk2p", "node1", "Running", None, unready_main)]))

# Cluster pods
def app_pod(ns, name, node, phase="Running", host_network=False):
    spec = {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}], "restartPolicy": "Always"}
    if node: spec["nodeName"] = node
    if host_network: spec["hostNetwork"] = True
    st = {"phase": phase}
    if phase == "Running": st.update({"podIP": "10.233.64.%d" % (len(name) + 10), "startTime": TS})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(name, ns, "7e" + name.encode().hex()[:30].ljust(30, "0")), "spec": spec, "status": st}
cluster = [app_pod("kube-system", "coredns-77f7cc69db-2lq9x", "node1"), app_pod("kube-system", "coredns-77f7cc69db-r8v4k", "node2"),
           app_pod("kube-system", "kube-apiserver-node1", "node1", host_network=True), agent_pod("cilium-4xk2p", "node1"),
           app_pod("default", "web-6d4cf56db6-hk2fz", "node2"), app_pod("default", "web-6d4cf56db6-pq8jw", "node3", "Pending"),
           app_pod("default", "backup-28871040-zz9lm", "node3", "Succeeded"), app_pod("default", "web-6d4cf56db6-unsch", None, "Pending")]
w("pods-cluster.json", podlist(cluster))
def cep(ns, name):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumEndpoint",
            "metadata": meta(name, ns, "9a" + name.encode().hex()[:30].ljust(30, "0"), generation=1,
                             ownerReferences=[{"apiVersion": "v1", "kind": "Pod", "name": name, "uid": "7e"}]),
            "status": {"id": 1234, "identity": {"id": 48861, "labels": ["k8s:io.kubernetes.pod.namespace=" + ns]},
                       "networking": {"addressing": [{"ipv4": "10.233.64.20"}], "node": "10.0.0.2"}, "state": "ready",
                       "encryption": {}, "external-identifiers": {"pod-name": name, "k8s-namespace": ns}}}
def ceplist(items): return {"apiVersion": "cilium.io/v2", "kind": "CiliumEndpointList", "metadata": {"resourceVersion": "48301"}, "items": items}
w("ciliumendpoints-all.json", ceplist([cep("kube-system", "coredns-77f7cc69db-2lq9x"), cep("kube-system", "coredns-77f7cc69db-r8v4k"),
                                        cep("default", "web-6d4cf56db6-hk2fz"), cep("default", "web-6d4cf56db6-pq8jw")]))
w("ciliumendpoints-missing-web.json", ceplist([cep("kube-system", "coredns-77f7cc69db-2lq9x"), cep("kube-system", "coredns-77f7cc69db-r8v4k"),
                                                cep("default", "web-6d4cf56db6-pq8jw")]))

# Nodes
def node(name, ready="True", net=None):
    conds = []
    if net is not None:
        conds.append({"type": "NetworkUnavailable", "status": net, "reason": "CiliumIsUp" if net == "False" else "NoRouteCreated",
                      "message": "Cilium is running on this node" if net == "False" else "Node created without a route",
                      "lastHeartbeatTime": TS, "lastTransitionTime": TS})
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"]:
        conds.append({"type": t, "status": "False", "reason": "KubeletHasSufficient", "lastHeartbeatTime": TS, "lastTransitionTime": TS})
    conds.append({"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
                  "message": "kubelet is posting ready status", "lastHeartbeatTime": TS, "lastTransitionTime": TS})
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": meta(name, None, "c1" + name.encode().hex().ljust(30, "0"), labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}),
            "spec": {"podCIDR": "10.233.64.0/24", "podCIDRs": ["10.233.64.0/24"]},
            "status": {"conditions": conds, "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": name}],
                       "nodeInfo": {"kubeletVersion": "v1.30.4", "containerRuntimeVersion": "containerd://1.7.21", "osImage": "Ubuntu 24.04 LTS",
                                    "architecture": "amd64", "operatingSystem": "linux", "kernelVersion": "6.8.0-45-generic",
                                    "kubeProxyVersion": "v1.30.4", "machineID": "m", "systemUUID": "s", "bootID": "b"}}}
def nodelist(items): return {"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "48302"}, "items": items}
w("nodes-healthy.json", nodelist([node("node1", net="False"), node("node2", net="False"), node("node3", net="False")]))
w("nodes-network-unavailable.json", nodelist([node("node1", net="False"), node("node2", "False", net="True"), node("node3")]))
def cn(name):
    return {"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
            "metadata": meta(name, None, "d4" + name.encode().hex().ljust(30, "0"), generation=2, labels={"kubernetes.io/hostname": name},
                             ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": name, "uid": "c1"}]),
            "spec": {"addresses": [{"type": "InternalIP", "ip": "10.0.0.1"}, {"type": "CiliumInternalIP", "ip": "10.233.64.1"}],
                     "health": {"ipv4": "10.233.64.7"}, "ipam": {"podCIDRs": ["10.233.64.0/24"]}, "encryption": {}, "eni": {}},
            "status": {"ipam": {"operator-status": {}}}}
def cnlist(items): return {"apiVersion": "cilium.io/v2", "kind": "CiliumNodeList", "metadata": {"resourceVersion": "48303"}, "items": items}
w("ciliumnodes-all.json", cnlist([cn("node1"), cn("node2"), cn("node3")]))
w("ciliumnodes-missing-node3-stale-node9.json", cnlist([cn("node1"), cn("node2"), cn("node9")]))

# cilium-config
def cm(annotations):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": meta("cilium-config", "kube-system", "e5a0b7c2-1f3d-4e6a-8b9c-0d1e2f3a4b5c", annotations=annotations),
            "data": {"identity-allocation-mode": "crd", "cluster-name": "default", "enable-ipv4": "true", "enable-ipv6": "false",
                     "ipam": "cluster-pool", "cluster-pool-ipv4-cidr": "10.233.64.0/18", "tunnel-protocol": "vxlan",
                     "kube-proxy-replacement": "false", "cni-exclusive": "true"}}
w("configmap-cilium-config-healthy.json", cm({"meta.helm.sh/release-name": "cilium", "meta.helm.sh/release-namespace": "kube-system"}))
w("configmap-cilium-config-error.json", cm({"meta.helm.sh/release-name": "cilium", "meta.helm.sh/release-namespace": "kube-system",
                                            "config.cilium.io/error-tunnel-protocol": "unsupported tunnel protocol \"gre\""}))

# Helm storage secrets
def payload(rev, status, chart="1.16.19", app="1.16.19"):
    return {"name": "cilium", "namespace": "kube-system", "version": rev,
            "info": {"first_deployed": "2026-11-20T09:10:00Z", "last_deployed": "2026-11-20T09:%02d:00Z" % (10 + rev),
                     "deleted": "", "description": "Upgrade complete" if rev > 1 else "Install complete", "status": status,
                     "notes": "You have successfully installed Cilium with Hubble."},
            "chart": {"metadata": {"name": "cilium", "home": "https://cilium.io/", "version": chart, "appVersion": app,
                                   "apiVersion": "v2", "kubeVersion": ">= 1.21.0-0", "description": "eBPF-based Networking, Security, and Observability",
                                   "keywords": ["BPF", "eBPF", "Kubernetes", "Networking", "Security", "Observability", "Troubleshooting"]},
                      "lock": None, "templates": [], "values": {"debug": {"enabled": False}}, "schema": None, "files": []},
            "config": {"k8sServiceHost": "10.0.0.1", "k8sServicePort": 6443},
            "manifest": "---\n# Source: cilium/templates/cilium-agent/serviceaccount.yaml\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: \"cilium\"\n  namespace: kube-system\n"}
def secret(rev, status, chart="1.16.19", app="1.16.19", raw=None, gz=True):
    body = json.dumps(payload(rev, status, chart, app), separators=(",", ":")).encode()
    if gz: body = gzip.compress(body, 9, mtime=0)
    helm_b64 = base64.b64encode(body) if raw is None else raw
    return {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
            "metadata": meta("sh.helm.release.v1.cilium.v%d" % rev, "kube-system", "f6a1b2c3-d4e5-4f60-8172-93a4b5c6d7e%d" % rev,
                             labels={"modifiedAt": "1763629800", "name": "cilium", "owner": "helm", "status": status, "version": str(rev)}),
            "data": {"release": base64.b64encode(helm_b64).decode()}}
def secretlist(items): return {"apiVersion": "v1", "kind": "SecretList", "metadata": {"resourceVersion": "48304"}, "items": items}
w("secrets-helm-deployed.json", secretlist([secret(1, "superseded", "1.15.9", "1.15.9"), secret(2, "deployed")]))
w("secrets-helm-pending-upgrade.json", secretlist([secret(1, "deployed", "1.15.9", "1.15.9"), secret(2, "pending-upgrade")]))
w("secrets-helm-failed.json", secretlist([secret(1, "superseded", "1.15.9", "1.15.9"), secret(2, "failed")]))
w("secrets-helm-plain-json.json", secretlist([secret(1, "deployed", gz=False)]))
w("secrets-helm-corrupt.json", secretlist([secret(1, "deployed", raw=b"H4sIAAAAAAAC/not-gzip-at-all")]))

# Probe pods (what a Job's pod looks like when it finished)
PIMG = "docker.io/library/alpine:3.22"
def probe_pod(name, node, phase, resolve, healthz):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(name, "kube-system", "a7" + name.encode().hex()[:30].ljust(30, "0"), generateName="cilium-verify-probe-4kq8z-",
                             labels={"app.kubernetes.io/name": "cilium-verify-probe", "cilium-verify/run": "19a2b3c4d5e6f1234",
                                     "batch.kubernetes.io/job-name": "cilium-verify-probe-4kq8z", "job-name": "cilium-verify-probe-4kq8z"},
                             annotations={"cilium-verify/node": node},
                             ownerReferences=[{"apiVersion": "batch/v1", "kind": "Job", "name": "cilium-verify-probe-4kq8z", "uid": "b8", "controller": True, "blockOwnerDeletion": True}],
                             finalizers=["batch.kubernetes.io/job-tracking"]),
            "spec": {"nodeName": node, "restartPolicy": "Never", "initContainers": [{"name": "resolve", "image": PIMG}],
                     "containers": [{"name": "healthz", "image": PIMG}]},
            "status": {"phase": phase, "startTime": TS, "initContainerStatuses": [resolve], "containerStatuses": [healthz]}}
ok_resolve = container_status("resolve", PIMG, running=False, terminated=done())
w("probe-pod-succeeded.json", probe_pod("cilium-verify-probe-4kq8z-m2x7t", "node1", "Succeeded", ok_resolve,
                                         container_status("healthz", PIMG, running=False, terminated=done())))
w("probe-pod-dns-failed.json", probe_pod("cilium-verify-probe-4kq8z-m2x7t", "node2", "Failed",
                                          container_status("resolve", PIMG, running=False, terminated=done(1, "Error", ";; connection timed out; no servers could be reached\n")),
                                          container_status("healthz", PIMG, running=False, ready=False, waiting={"reason": "PodInitializing"})))
w("probe-pod-healthz-failed.json", probe_pod("cilium-verify-probe-4kq8z-m2x7t", "node3", "Failed", ok_resolve,
                                              container_status("healthz", PIMG, running=False, terminated=done(1, "Error", "wget: download timed out\n"))))
w("probe-pod-image-pull.json", probe_pod("cilium-verify-probe-4kq8z-m2x7t", "node3", "Pending",
                                          container_status("resolve", PIMG, running=False, ready=False, waiting={"reason": "ImagePullBackOff", "message": "Back-off pulling image \"docker.io/library/alpine:3.22\""}),
                                          container_status("healthz", PIMG, running=False, ready=False, waiting={"reason": "PodInitializing"})))
