//! A real Kubernetes control plane on loopback (etcd, kube-apiserver, controller-manager, scheduler,
//! kwok nodes) for end-to-end tests, and the cluster fixtures seeded into it.

pub mod fixtures;
