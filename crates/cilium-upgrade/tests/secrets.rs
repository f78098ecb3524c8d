//! A taken-over release's values can hold keys (`tls.ca.key`, Hubble's server key, tokens): the
//! plan, what `--output json` prints and `--plan` reads back, shows them as `<redacted>` and pins
//! each hop's real values file by sha256 instead; the values derived again from a release whose
//! secret changed since do not match it, so `--plan --apply` refuses that plan.
#![allow(clippy::unwrap_used)]

mod support;

use cilium_upgrade::plan::{check_values_files, values_files};
use cilium_upgrade::redact::{sha256_hex, values_sha256};
use cilium_upgrade::{ChartArchive, UpgradePlan, plan};
use serde_json::{Value as Json, json};
use support::{helm, start};

// Throwaway CAs made for this test (`openssl req -x509 -newkey ec`): the charts build Hubble's
// certificates from `tls.ca`, so the material must parse.
const CA_CERT: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrVENDQVRlZ0F3SUJBZ0lVU2s5UHRob29TVlhLN05QYlhNOEd1S3ZaZTBvd0NnWUlLb1pJemowRUF3SXcKSFRFYk1Ca0dBMVVFQXd3U2RHVnpkQzFqWVMxdWIzUXRjMlZqY21WME1DQVhEVEkyTVRJd05qSXpOVEEwT1ZvWQpEekl4TWpZeE1URXlNak0xTURRNVdqQWRNUnN3R1FZRFZRUUREQkowWlhOMExXTmhMVzV2ZEMxelpXTnlaWFF3CldUQVRCZ2NxaGtqT1BRSUJCZ2dxaGtqT1BRTUJCd05DQUFRUHlRWkIrUllCaVZoNG9VQWZadTBlYWlSV28zRVMKYVlLbUVvMW9iemR2Nm1lUXRGNVFNODF5SmM1bi9KNlFjcGk0NFJlRm1wRzk5cFp2c05tanFtRktvMU13VVRBZApCZ05WSFE0RUZnUVUrVVRpcEtYME8xTWdQKzArU2xzUFVSS28rL293SHdZRFZSMGpCQmd3Rm9BVStVVGlwS1gwCk8xTWdQKzArU2xzUFVSS28rL293RHdZRFZSMFRBUUgvQkFVd0F3RUIvekFLQmdncWhrak9QUVFEQWdOSUFEQkYKQWlCa3dZemlaMnpQOVdJcFZJZUxUWXVjRVVVNDUxVFQ1dVBLMlhMSmJ4WXdHZ0loQU1ob3FlQW5vaGEySEc0VgpzZmVMeXBMQklJVDdQcFo0eE10NlZkdHZBNml4Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K";
const CA_KEY: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZ04vcmQ4OEdLZiswOUVLV0sKNHF0NzYyaUlHZnpBWXFMZExlQmJXdkY0dGpDaFJBTkNBQVFQeVFaQitSWUJpVmg0b1VBZlp1MGVhaVJXbzNFUwphWUttRW8xb2J6ZHY2bWVRdEY1UU04MXlKYzVuL0o2UWNwaTQ0UmVGbXBHOTlwWnZzTm1qcW1GSwotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==";
const ROTATED_CA_CERT: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJvRENDQVVlZ0F3SUJBZ0lVYUVZdTZLSGk0c0pUK2ZWdG5vU3RBSkx2bWRFd0NnWUlLb1pJemowRUF3SXcKSlRFak1DRUdBMVVFQXd3YWRHVnpkQzFqWVMxeWIzUmhkR1ZrTFc1dmRDMXpaV055WlhRd0lCY05Nall4TWpBMgpNak0xTURVeFdoZ1BNakV5TmpFeE1USXlNelV3TlRGYU1DVXhJekFoQmdOVkJBTU1HblJsYzNRdFkyRXRjbTkwCllYUmxaQzF1YjNRdGMyVmpjbVYwTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFbDNNZGNiazkKWUd5eUF2VEtZTi8xU3pWTzRTeFgvTGR0TmJJRmFvNUlWd256UHJjWDlVaE1EdjJSR3pKN3VUK054aHUrUXpxNQpxU3paZm80dUwrYmFEcU5UTUZFd0hRWURWUjBPQkJZRUZDN1Jpdjk2dVZMZU9YY0hBODhGVUJLTUFpV0dNQjhHCkExVWRJd1FZTUJhQUZDN1Jpdjk2dVZMZU9YY0hBODhGVUJLTUFpV0dNQThHQTFVZEV3RUIvd1FGTUFNQkFmOHcKQ2dZSUtvWkl6ajBFQXdJRFJ3QXdSQUlnUGVwWFlUNUpDUDBBR3poSHFCcE5oYmUwZEhvUGhVdThxQW5KaFU0TgpTcTBDSUhXNDRHNFRwVG85MVFkY0Nmd0sxRXFqZWg3TjlwQ0VaL3BtQXpHL3lVNisKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
const ROTATED_CA_KEY: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JR0hBZ0VBTUJNR0J5cUdTTTQ5QWdFR0NDcUdTTTQ5QXdFSEJHMHdhd0lCQVFRZzRMNUptQUN6Q2dVVm9md0kKKzdSSG5ZWHJSb3F1ZExtU0RWektEZHRUSTBhaFJBTkNBQVNYY3gxeHVUMWdiTElDOU1wZzMvVkxOVTdoTEZmOAp0MjAxc2dWcWpraFhDZk0rdHhmMVNFd08vWkViTW51NVA0M0dHNzVET3JtcExObCtqaTR2NXRvTwotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==";
const SERVER_KEY: &str = "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCnNlcnZlci1rZXktMDAx";
const TOKEN: &str = "s3cr";

/// A release as taken over: Hubble's TLS material and the CA key in its values, and a token
/// under a key the next charts do not read (left out, shown in a behaviour change).
fn release_values(ca_cert: &str, ca_key: &str) -> Json {
    json!({
        "k8sServiceHost": "10.0.0.10",
        "k8sServicePort": 6443,
        "kubeProxyReplacement": "strict",
        "tls": {"ca": {"cert": ca_cert, "key": ca_key}},
        "hubble": {
            "enabled": true,
            "tls": {
                "enabled": true,
                "auto": {"enabled": false},
                "server": {"cert": ca_cert, "key": SERVER_KEY}
            }
        },
        "notACiliumValue": {"token": TOKEN},
    })
}

#[test]
fn the_plan_shows_secrets_redacted_pins_each_values_file_and_refuses_values_that_changed() {
    let Some(upstream) = upstream::Upstream::for_test(
        "secrets::the_plan_shows_secrets_redacted_pins_each_values_file_and_refuses_values_that_changed",
    ) else {
        return;
    };
    let scratch = tempfile::tempdir().unwrap();
    let helm = helm();
    let charts: Vec<ChartArchive> = ["1.15.9", "1.15.19", "1.16.19"]
        .iter()
        .map(|v| ChartArchive::read(&upstream.chart(v).unwrap()).unwrap())
        .collect();
    let start = start(
        &helm,
        &charts[0],
        release_values(CA_CERT, CA_KEY),
        4,
        scratch.path(),
    );
    let plan = plan(&start, &charts[1..], &helm, None, scratch.path()).unwrap();
    assert_eq!(plan.hops.len(), 2);

    // What `--output json` prints (and `--plan` reads back): no secret, `<redacted>` in place.
    let json = serde_json::to_string_pretty(&plan).unwrap();
    for secret in [CA_KEY, CA_CERT, SERVER_KEY, TOKEN, "MIGHAgEAMBMGByqGSM49"] {
        assert!(!json.contains(secret), "{secret} in the plan:\n{json}");
    }
    for hop in &plan.hops {
        assert_eq!(
            hop.values["tls"]["ca"]["key"], "<redacted>",
            "{}",
            hop.version
        );
        assert_eq!(
            hop.values["hubble"]["tls"]["server"]["key"], "<redacted>",
            "{}",
            hop.version
        );
        assert_eq!(hop.values["k8sServiceHost"], "10.0.0.10");
        for path in ["tls.ca.key", "tls.ca.cert", "hubble.tls.server.key"] {
            assert!(
                hop.values_redacted.iter().any(|p| p == path),
                "{}: {:?}",
                hop.version,
                hop.values_redacted
            );
        }
    }
    // The token's key is not read by 1.15.19: left out, and the change says so without it.
    let left_out = plan.hops[0]
        .changes
        .iter()
        .find(|c| c.key == "value:notACiliumValue")
        .unwrap();
    assert!(left_out.what.contains("<redacted>"), "{left_out}");

    // Each hop pins the values file helm gets, secrets included: the very bytes written.
    let files = values_files(
        &start.values,
        &start.version,
        &start.objects,
        &charts[1..],
        &helm,
        None,
        scratch.path(),
    )
    .unwrap();
    assert_eq!(files[0]["tls"]["ca"]["key"], CA_KEY);
    let state = scratch.path().join("state");
    for (hop, file) in plan.hops.iter().zip(&files) {
        assert_eq!(hop.values_sha256, values_sha256(file), "{}", hop.version);
        let written = cilium_upgrade::write_values(&state, &hop.version, file).unwrap();
        assert_eq!(
            sha256_hex(&std::fs::read(&written).unwrap()),
            hop.values_sha256
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", written.display());
    }
    let saved: UpgradePlan = serde_json::from_str(&json).unwrap();
    assert_eq!(check_values_files(&saved, &files, 4), Ok(()));

    // The CA key rotated since the plan was reviewed: the same plan no longer matches, and the
    // refusal names the hop without showing either key.
    let rotated = values_files(
        &release_values(ROTATED_CA_CERT, ROTATED_CA_KEY),
        &start.version,
        &start.objects,
        &charts[1..],
        &helm,
        None,
        scratch.path(),
    )
    .unwrap();
    let problem = check_values_files(&saved, &rotated, 4).expect_err("the values changed");
    assert!(
        problem.contains("hop 1.15.9 -> 1.15.19") && problem.contains("revision 4"),
        "{problem}"
    );
    assert!(
        !problem.contains(CA_KEY) && !problem.contains(ROTATED_CA_KEY),
        "{problem}"
    );
    // A plan of the old format (values whole, no hash) matches nothing.
    let mut old = saved.clone();
    old.hops[1].values_sha256.clear();
    let problem = check_values_files(&old, &files, 4).expect_err("no hash");
    assert!(
        problem.contains("hop 1.15.19 -> 1.16.19") && problem.contains("pinned none"),
        "{problem}"
    );
}

#[test]
fn a_values_file_left_readable_by_others_or_a_symlink_is_replaced_by_a_private_file() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    // A file of an earlier run (or copied in by hand) that anyone may read.
    let path = state.join("values-1.16.19.values.json");
    std::fs::write(&path, "{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let values = json!({"tls": {"ca": {"key": CA_KEY}}});
    let written = cilium_upgrade::write_values(&state, "values-1.16.19", &values).unwrap();
    assert_eq!(written, path);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        sha256_hex(&std::fs::read(&path).unwrap()),
        values_sha256(&values)
    );
    // A symlink at the name (say, to a file others read) is replaced, not written through.
    let elsewhere = dir.path().join("shared.json");
    std::fs::write(&elsewhere, "shared\n").unwrap();
    let linked = state.join("values-1.17.18.values.json");
    std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
    cilium_upgrade::write_values(&state, "values-1.17.18", &values).unwrap();
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "shared\n");
    assert!(!std::fs::symlink_metadata(&linked).unwrap().is_symlink());
    let mode = std::fs::metadata(&linked).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
