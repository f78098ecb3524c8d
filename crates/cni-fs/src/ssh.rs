//! Reaching nodes through the system OpenSSH client, so `~/.ssh/config`, agents and jump hosts
//! work as they do for Ansible.

use crate::error::Error;
use crate::model::{Node, NodeReport};
use crate::remote;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The read buffer of [`Ssh::run_to_writer`]: the most of a streamed stdout held in memory.
pub const STREAM_BUFFER_BYTES: usize = 64 * 1024;
/// The most stderr [`Ssh::run_to_writer`] keeps (a message; the rest is read and dropped).
const STREAM_STDERR_BYTES: usize = 64 * 1024;

/// How to run `ssh`.
#[derive(Debug, Clone, Default)]
pub struct Ssh {
    /// The client program (default `ssh` from `PATH`).
    pub program: Option<PathBuf>,
    /// An ssh config file (`ssh -F`).
    pub config: Option<PathBuf>,
    /// Extra `-o Key=Value` options.
    pub options: Vec<String>,
    /// Run the remote commands through `sudo -n`.
    pub become_root: bool,
}

/// What a remote command printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOutput {
    /// The remote exit status (never 255: that is ssh's own failure, an [`Error::Ssh`]).
    pub status: i32,
    /// Everything it wrote to stdout (a file streamed back with `cat` arrives here whole).
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// What a remote command returned while its stdout went to a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedOutput {
    /// The remote exit status (never 255: that is ssh's own failure, an [`Error::Ssh`]).
    pub status: i32,
    /// How many bytes of stdout went to the writer.
    pub bytes: u64,
    /// The first 64 KiB it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Ssh {
    /// The full `ssh` argument vector (without the program) for one remote command.
    pub fn argv(
        &self,
        node: &Node,
        remote_argvs: &[Vec<OsString>],
    ) -> Result<Vec<OsString>, Error> {
        validate_word(node, "ansible_host", &node.address)?;
        // ssh keeps the first value it sees for an option: host key checking comes before the
        // operator's options (and the config file), so none can turn it off.
        let mut argv: Vec<OsString> = [
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ]
        .map(OsString::from)
        .to_vec();
        if let Some(config) = &self.config {
            argv.push("-F".into());
            argv.push(config.into());
        }
        for option in &self.options {
            argv.push("-o".into());
            argv.push(option.into());
        }
        // ssh keeps the first value it sees for an option: this default yields to --ssh-option.
        argv.extend(["-o", "ConnectTimeout=15"].map(OsString::from));
        if let Some(port) = node.port {
            argv.push("-p".into());
            argv.push(port.to_string().into());
        }
        if let Some(user) = &node.user {
            validate_word(node, "ansible_user", user)?;
            argv.push("-l".into());
            argv.push(user.into());
        }
        argv.push("--".into());
        argv.push((&node.address).into());
        // ssh joins its remaining arguments into one string for the remote shell: hand it one
        // string in which every word is already quoted.
        let commands: Vec<Vec<OsString>> = remote_argvs
            .iter()
            .map(|argv| remote::with_become(argv.clone(), self.become_root))
            .collect();
        argv.push(remote::shell_and(&commands));
        Ok(argv)
    }

    /// Runs one argument vector on `node` (each word shell-quoted, through `sudo -n` with
    /// [`Ssh::become_root`]). A non-zero remote status is returned, not an error: the caller
    /// knows what it means.
    pub async fn run(&self, node: &Node, argv: Vec<OsString>) -> Result<RemoteOutput, Error> {
        self.run_all(node, &[argv]).await
    }

    /// Runs one argument vector on `node` like [`Ssh::run`], but streams its stdout into `out`
    /// through one fixed buffer of [`STREAM_BUFFER_BYTES`], so a file of any size copied back
    /// with `cat` never sits in memory. A failing `out` ends the remote command (ssh is killed)
    /// and is an [`Error::StreamWrite`]. `out` is written from the async task: meant for local files.
    pub async fn run_to_writer<W: std::io::Write + ?Sized>(
        &self,
        node: &Node,
        argv: Vec<OsString>,
        out: &mut W,
    ) -> Result<StreamedOutput, Error> {
        let argv = self.argv(node, &[argv])?;
        let program = self.program.clone().unwrap_or_else(|| "ssh".into());
        let spawn_error = |source| Error::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = tokio::process::Command::new(&program)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other(
                "the child has no stdout or stderr pipe",
            )));
        };
        let stream_error = |what: &'static str| {
            let node = node.name.clone();
            move |source| Error::Stream { node, what, source }
        };
        let write_error = |source| Error::StreamWrite {
            node: node.name.clone(),
            source,
        };
        let copy = async {
            let mut buffer = vec![0u8; STREAM_BUFFER_BYTES];
            let mut bytes = 0u64;
            loop {
                let n = stdout
                    .read(&mut buffer)
                    .await
                    .map_err(stream_error("reading the output of ssh"))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buffer[..n]).map_err(write_error)?;
                bytes += n as u64;
            }
            out.flush().map_err(write_error)?;
            Ok::<u64, Error>(bytes)
        };
        let errors = async { Ok(read_bounded(&mut stderr, STREAM_STDERR_BYTES).await) };
        // A failed copy ends both at once: stderr stays open as long as ssh runs, and ssh runs
        // until someone reads its stdout.
        let (bytes, stderr) = match tokio::try_join!(copy, errors) {
            Ok(done) => done,
            Err(e) => {
                // Nobody reads the rest: stop ssh (and with it the remote side).
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
        };
        let status = child
            .wait()
            .await
            .map_err(stream_error("waiting for ssh"))?
            .code()
            .unwrap_or(-1);
        if status == 255 {
            return Err(ssh_failed(node, &stderr));
        }
        Ok(StreamedOutput {
            status,
            bytes,
            stderr,
        })
    }

    /// Runs several argument vectors joined with `&&` in one ssh session.
    async fn run_all(
        &self,
        node: &Node,
        remote_argvs: &[Vec<OsString>],
    ) -> Result<RemoteOutput, Error> {
        let argv = self.argv(node, remote_argvs)?;
        let program = self.program.clone().unwrap_or_else(|| "ssh".into());
        let out = tokio::process::Command::new(&program)
            .args(&argv)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::Spawn {
                program: program.clone(),
                source,
            })?;
        let status = out.status.code().unwrap_or(-1);
        // 255 is ssh's own failure (connection, authentication, host key).
        if status == 255 {
            return Err(ssh_failed(node, &out.stderr));
        }
        Ok(RemoteOutput {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Inspects `roots` on `node`, and the directories holding them.
    pub async fn inspect(&self, node: &Node, roots: &[PathBuf]) -> Result<NodeReport, Error> {
        let out = self.run(node, remote::inspect_argv(roots)).await?;
        let mut report = remote::parse_inspection(
            &node.name,
            roots,
            roots,
            out.status,
            &out.stdout,
            &out.stderr,
        )
        .map_err(|e| self.hint_become(e))?;
        let parents = remote::parents_of(roots);
        if !parents.is_empty() {
            let out = self.run(node, remote::parents_argv(&parents)).await?;
            remote::attach_parents(
                &mut report,
                &parents,
                &parents,
                out.status,
                &out.stdout,
                &out.stderr,
            )
            .map_err(|e| self.hint_become(e))?;
        }
        Ok(report)
    }

    /// Runs the fix commands on `parents` (directories holding trees, see
    /// [`crate::policy::parent_fixable`]) and on the roots that exist.
    pub async fn fix(
        &self,
        node: &Node,
        parents: &[PathBuf],
        roots: &[PathBuf],
    ) -> Result<(), Error> {
        let mut commands = Vec::new();
        if !parents.is_empty() {
            commands.push(remote::fix_parent_argv(parents));
        }
        if !roots.is_empty() {
            commands.extend(remote::fix_argvs(roots));
        }
        if commands.is_empty() {
            return Ok(());
        }
        let out = self.run_all(node, &commands).await?;
        if out.status != 0 {
            return Err(self.hint_become(Error::Remote {
                node: node.name.clone(),
                what: "fixing".into(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            }));
        }
        Ok(())
    }

    fn hint_become(&self, error: Error) -> Error {
        match error {
            Error::Remote {
                node,
                what,
                status,
                stderr,
            } if !self.become_root && stderr.contains("ermission denied") => Error::Remote {
                node,
                what,
                status,
                stderr: format!("{stderr} (hint: add --become)"),
            },
            other => other,
        }
    }
}

/// ssh's own failure (exit status 255), with a hint when the host key is not known: host key
/// checking is always strict (no option turns it off), so a node must be in known_hosts.
fn ssh_failed(node: &Node, stderr: &[u8]) -> Error {
    let mut stderr = String::from_utf8_lossy(stderr).trim().to_string();
    if stderr.contains("Host key verification failed") {
        stderr.push_str(&format!(
            " (hint: check the node's host key and add it to known_hosts, e.g. with \
             `ssh-keyscan {}` after comparing the fingerprint; it is always checked)",
            node.address
        ));
    }
    Error::Ssh {
        node: node.name.clone(),
        address: node.address.clone(),
        stderr,
    }
}

/// Reads `reader` to its end, keeping the first `limit` bytes (a read error ends it early: what
/// was kept is all there is to show).
async fn read_bounded<R: AsyncRead + Unpin>(reader: &mut R, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = [0u8; 8192];
    while let Ok(n) = reader.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..n.min(room)]);
    }
    kept
}

/// Host and user names go to `ssh` as arguments, but ssh may expand them into a ProxyCommand
/// shell line; accept only characters that mean nothing to a shell.
fn validate_word(node: &Node, field: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidNode {
            node: node.name.clone(),
            field: field.to_string(),
            value: value.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_quotes_the_remote_command_and_sets_batch_mode() {
        let ssh = Ssh {
            become_root: true,
            ..Ssh::default()
        };
        let node = Node {
            name: "n 1".into(),
            address: "10.0.0.5".into(),
            user: Some("ops".into()),
            port: Some(2222),
        };
        let argv = ssh
            .argv(&node, &[remote::inspect_argv(&["/x/a b'c".into()])])
            .unwrap();
        let text: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            &text[..13],
            [
                "-T",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=15",
                "-p",
                "2222",
                "-l",
                "ops",
                "--",
                "10.0.0.5"
            ]
        );
        assert!(
            text[13].starts_with("'sudo' '-n' '--' 'find' '/x/a b'\\''c' '-xdev'"),
            "{}",
            text[13]
        );
    }

    #[test]
    fn shell_words_in_host_or_user_are_refused() {
        let ssh = Ssh::default();
        for (address, user) in [
            ("h; touch /tmp/pwned", None),
            ("-oProxyCommand=x", None),
            ("h", Some("a b")),
        ] {
            let node = Node {
                name: "n".into(),
                address: address.into(),
                user: user.map(Into::into),
                port: None,
            };
            let err = ssh.argv(&node, &[]).unwrap_err();
            assert!(matches!(err, Error::InvalidNode { .. }), "{err}");
        }
    }
}
