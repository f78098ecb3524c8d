//! After the hand-over: check and enable Cilium's Gateway API safely.
