//! kubespray-config
