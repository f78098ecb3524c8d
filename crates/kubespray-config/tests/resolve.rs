//! Variable resolution: precedence, references, per-era defaults, era detection.

mod common;

use kubespray_config::{Era, Inventory, Origin};
use serde_json::{Value, json};

const INI: &str = "[kube_control_plane]\ncp1\n[kube_node]\nw1\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n";

fn resolve(files: &[(&str, &str)], era: Era) -> (tempfile::TempDir, kubespray_config::Variables) {
    let mut all = vec![("inventory.ini", INI)];
    all.extend_from_slice(files);
    let dir = common::inventory(&all);
    let vars = Inventory::load(dir.path())
        .expect("load")
        .variables(era)
        .expect("resolve");
    (dir, vars)
}

fn origin_file(origin: &Origin, base: &std::path::Path) -> String {
    origin
        .file()
        .strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| origin.file().display().to_string())
}

#[test]
fn precedence_follows_ansible() {
    // (files, variable, expected value, file it must come from)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Value, &'a str);
    let cases: &[Case] = &[
        // the child group k8s_cluster wins over all
        (
            &[
                ("group_vars/all/all.yml", "cilium_debug: true\n"),
                (
                    "group_vars/k8s_cluster/k8s-net-cilium.yml",
                    "cilium_debug: false\n",
                ),
            ],
            "cilium_debug",
            json!(false),
            "group_vars/k8s_cluster/k8s-net-cilium.yml",
        ),
        // within a group directory, the later file (sorted) wins
        (
            &[
                (
                    "group_vars/k8s_cluster/a.yml",
                    "cilium_tunnel_mode: geneve\n",
                ),
                (
                    "group_vars/k8s_cluster/b.yml",
                    "cilium_tunnel_mode: disabled\n",
                ),
            ],
            "cilium_tunnel_mode",
            json!("disabled"),
            "group_vars/k8s_cluster/b.yml",
        ),
        // group_vars/<group>.yml loads before group_vars/<group>/
        (
            &[
                ("group_vars/k8s_cluster.yml", "cilium_mtu: 1400\n"),
                ("group_vars/k8s_cluster/x.yml", "cilium_mtu: 1450\n"),
            ],
            "cilium_mtu",
            json!(1450),
            "group_vars/k8s_cluster/x.yml",
        ),
        // the pre-2.16 directory name is read too
        (
            &[(
                "group_vars/k8s-cluster/k8s-net-cilium.yml",
                "cilium_ipam_mode: kubernetes\n",
            )],
            "cilium_ipam_mode",
            json!("kubernetes"),
            "group_vars/k8s-cluster/k8s-net-cilium.yml",
        ),
        // the inventory file's group vars lose against group_vars files
        (
            &[("group_vars/all/all.yml", "kube_owner: root\n")],
            "kube_owner",
            json!("root"),
            "group_vars/all/all.yml",
        ),
        // ... and win against role defaults
        (
            &[("group_vars/all/all.yml", "a: 1\n")],
            "kube_network_plugin",
            json!("cilium"),
            "inventory.ini",
        ),
        // nothing set: the role default of the era
        (
            &[("group_vars/all/all.yml", "a: 1\n")],
            "cilium_identity_allocation_mode",
            json!("kvstore"),
            "roles/network_plugin/cilium/defaults/main.yml",
        ),
    ];
    for (files, name, value, from) in cases {
        let mut files = files.to_vec();
        let ini_with_vars =
            format!("{INI}[k8s_cluster:vars]\nkube_network_plugin=cilium\nkube_owner=kube\n");
        let mut all = vec![("inventory.ini", ini_with_vars.as_str())];
        all.append(&mut files);
        let dir = common::inventory(&all);
        let vars = Inventory::load(dir.path())
            .expect("load")
            .variables(Era::Template)
            .expect("resolve");
        let var = vars.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&var.value, value, "{name}");
        assert_eq!(
            origin_file(&var.origin, dir.path()),
            *from,
            "{name}: {}",
            var.origin
        );
    }
}

#[test]
fn plain_references_resolve_recursively_and_keep_the_chain() {
    let (dir, vars) = resolve(
        &[(
            "group_vars/k8s_cluster/k8s-net-cilium.yml",
            "cilium_enable_hubble: yes\ncluster_name: homelab.local\ncilium_cluster_name: \"{{ my_name }}\"\nmy_name: '{{ cluster_name }}'\ncilium_pool_cidr: '{{ kube_pods_subnet }}'\n",
        )],
        Era::CiliumCli,
    );
    // a role default that refers to an inventory value: native type kept
    let ui = vars.get("cilium_enable_hubble_ui").expect("ui");
    assert_eq!(ui.value, json!(true));
    let Origin::Template {
        template,
        defined,
        uses,
    } = &ui.origin
    else {
        panic!("{:?}", ui.origin)
    };
    assert_eq!(template, "{{ cilium_enable_hubble }}");
    assert!(matches!(
        **defined,
        Origin::RoleDefault {
            era: Era::CiliumCli,
            kubespray: "v2.31.0",
            ..
        }
    ));
    assert_eq!(uses[0].name, "cilium_enable_hubble");
    assert!(uses[0].origin.is_inventory());
    // two hops, through a variable the tool does not otherwise resolve
    let name = vars.get("cilium_cluster_name").expect("name");
    assert_eq!(name.value, json!("homelab.local"));
    let Origin::Template { uses, .. } = &name.origin else {
        panic!()
    };
    assert_eq!(uses[0].name, "my_name");
    let Origin::Template { uses: inner, .. } = &uses[0].origin else {
        panic!("{:?}", uses[0].origin)
    };
    assert_eq!(inner[0].name, "cluster_name");
    assert_eq!(
        origin_file(&inner[0].origin, dir.path()),
        "group_vars/k8s_cluster/k8s-net-cilium.yml"
    );
    // defaults of the era that refer to other defaults
    assert_eq!(
        vars.value("cilium_hubble_peer_service_cluster_domain"),
        Some(&json!("homelab.local"))
    );
    assert_eq!(vars.value("cilium_enable_ipv4"), Some(&json!(true)));
    assert_eq!(vars.value("cilium_enable_ipv6"), Some(&json!(false)));
    assert_eq!(
        vars.value("cilium_pool_cidr"),
        Some(&json!("10.233.64.0/18"))
    );
    // references inside mappings are resolved too
    let certgen = vars.value("cilium_certgen_args").expect("certgen");
    assert_eq!(
        certgen["hubble-server-cert-common-name"],
        json!("*.homelab.local.hubble-grpc.cilium.io")
    );
}

#[test]
fn ipv6_stack_follows_dual_stack_in_the_cilium_cli_era() {
    let (_dir, vars) = resolve(
        &[(
            "group_vars/k8s_cluster/k8s-cluster.yml",
            "enable_dual_stack_networks: true\n",
        )],
        Era::CiliumCli,
    );
    assert_eq!(vars.value("ipv6_stack"), Some(&json!(true)));
    assert_eq!(vars.value("cilium_enable_ipv6"), Some(&json!(true)));
}

#[test]
fn template_era_ports_follow_the_pinned_cilium_version() {
    for (version, health, scrape) in [
        ("v1.15.9", "9879", "9962"),
        ("v1.11.0", "9876", "9090"),
        ("v1.11.7", "9879", "9090"),
    ] {
        let text = format!("cilium_version: {version}\n");
        let (_dir, vars) = resolve(
            &[("group_vars/k8s_cluster/k8s-net-cilium.yml", &text)],
            Era::Template,
        );
        assert_eq!(
            vars.value("cilium_agent_health_port"),
            Some(&json!(health)),
            "{version}"
        );
        assert_eq!(
            vars.value("cilium_agent_scrape_port"),
            Some(&json!(scrape)),
            "{version}"
        );
        let Some(Origin::Template { uses, .. }) =
            vars.get("cilium_agent_health_port").map(|v| &v.origin)
        else {
            panic!()
        };
        assert_eq!(uses[0].name, "cilium_version");
    }
}

#[test]
fn era_defaults_differ() {
    let files = [("group_vars/all/all.yml", "a: 1\n")];
    let (_d1, template) = resolve(&files, Era::Template);
    let (_d2, cli) = resolve(&files, Era::CiliumCli);
    for (name, t, c) in [
        (
            "cilium_identity_allocation_mode",
            json!("kvstore"),
            json!("crd"),
        ),
        (
            "cilium_kube_proxy_replacement",
            json!("partial"),
            json!(false),
        ),
        (
            "cilium_enable_host_legacy_routing",
            json!(true),
            json!(false),
        ),
        ("cilium_version", json!("v1.15.9"), json!("1.19.3")),
    ] {
        assert_eq!(template.value(name), Some(&t), "{name}");
        assert_eq!(cli.value(name), Some(&c), "{name}");
    }
    assert!(template.get("cilium_gateway_api_enabled").is_none());
    assert_eq!(cli.value("cilium_gateway_api_enabled"), Some(&json!(false)));
    assert_eq!(cli.era(), Era::CiliumCli);
    assert!(template.iter().all(|v| v.name.starts_with("cilium_")
        || kubespray_config::CLUSTER_VARIABLES.contains(&v.name.as_str())
        || ["kube_etcd_cacert_file", "cilium_cli_version"].contains(&v.name.as_str())));
}

#[test]
fn era_detection_reports_its_evidence() {
    let detect = |files: &[(&str, &str)]| {
        let mut all = vec![("inventory.ini", INI)];
        all.extend_from_slice(files);
        let dir = common::inventory(&all);
        let inv = Inventory::load(dir.path()).expect("load");
        (inv.detect_era(), dir)
    };
    let (d, _x) = detect(&[(
        "group_vars/k8s_cluster/k8s-net-cilium.yml",
        "cilium_version: v1.15.9\n",
    )]);
    assert_eq!(d.era, Some(Era::Template));
    assert!(
        d.evidence[0].reason.contains("with a 'v' prefix"),
        "{:?}",
        d.evidence
    );
    let (d, _x) = detect(&[(
        "group_vars/k8s_cluster/k8s-net-cilium.yml",
        "cilium_version: \"1.17.3\"\ncilium_gateway_api_enabled: true\n",
    )]);
    assert_eq!(d.era, Some(Era::CiliumCli));
    assert_eq!(d.evidence.len(), 2);
    // no evidence: no guess, and an error that says how to choose
    let (d, dir) = detect(&[("group_vars/all/all.yml", "a: 1\n")]);
    assert_eq!(d.era, None);
    let msg = d.require(dir.path()).expect_err("unknown").to_string();
    assert!(
        msg.contains("--era template") && msg.contains("no evidence"),
        "{msg}"
    );
    // conflicting evidence: no guess either
    let (d, dir) = detect(&[(
        "group_vars/k8s_cluster/k8s-net-cilium.yml",
        "cilium_version: v1.15.9\ncilium_extra_values: {}\n",
    )]);
    assert_eq!(d.era, None);
    assert!(
        d.require(dir.path())
            .expect_err("conflict")
            .to_string()
            .contains("disagrees")
    );
}

#[test]
fn era_detection_reads_the_surrounding_kubespray_checkout() {
    let root = tempfile::tempdir().expect("tempdir");
    common::write_files(
        root.path(),
        &[
            (
                "galaxy.yml",
                "namespace: kubernetes_sigs\nname: kubespray\nversion: 2.28.1\n",
            ),
            ("inventory/mycluster/inventory.ini", INI),
            ("inventory/mycluster/group_vars/all/all.yml", "a: 1\n"),
        ],
    );
    let inv = Inventory::load(root.path().join("inventory/mycluster")).expect("load");
    let d = inv.detect_era();
    assert_eq!(d.era, Some(Era::CiliumCli));
    assert_eq!(d.evidence[0].file, root.path().join("galaxy.yml"));
}
