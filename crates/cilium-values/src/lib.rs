//! cilium-values
