//! cni-fs
