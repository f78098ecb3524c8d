//! `cilium-migrate completions` as a shell user meets it.

use std::process::{Command, Stdio};

/// `cilium-migrate completions bash | head -3` closes the pipe early: the command must end
/// quietly with success, not panic.
#[test]
fn completions_into_a_closed_pipe_end_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cilium-migrate"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cilium-migrate");
    // Close the read end before the script is written.
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for cilium-migrate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn completions_print_a_script_naming_every_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_cilium-migrate"))
        .args(["completions", "bash"])
        .output()
        .expect("run cilium-migrate");
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).expect("UTF-8");
    for command in [
        "migrate",
        "upgrade",
        "kube-proxy-replacement",
        "gateway-api",
    ] {
        assert!(
            script.contains(command),
            "{command} missing from the script"
        );
    }
}
