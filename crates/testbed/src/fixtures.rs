//! Cluster fixtures: the objects Kubespray's eras leave behind, generated from a few parameters.
