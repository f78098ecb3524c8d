//! Starting, checking and stopping the testbed's processes, by pid.
//!
//! Every process is started from an argument vector (never a shell string) in its own process
//! group, so that a Ctrl-C in the terminal reaches only the command that owns the testbed, which
//! then stops the processes itself. A pid is trusted only while `/proc/<pid>/cmdline` still
//! starts with the recorded binary, so a recycled pid is never signalled.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// One process the testbed started, as recorded in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The component (`etcd`, `kube-apiserver`, ...).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    /// The binary it runs (argv\[0\]).
    pub binary: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

impl ProcessRecord {
    /// Whether the recorded process still runs (a zombie or a recycled pid counts as gone).
    pub fn is_alive(&self) -> bool {
        match process_state(self.pid).as_deref() {
            None | Some("Z" | "X") => return false,
            Some(_) => {}
        }
        let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        let argv0 = cmdline.split(|byte| *byte == 0).next().unwrap_or_default();
        argv0 == self.binary.as_os_str().as_encoded_bytes()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn signal(&self, signal: Signal) {
        if !self.is_alive() {
            return;
        }
        let Some(pid) = i32::try_from(self.pid).ok().and_then(Pid::from_raw) else {
            return;
        };
        // The process may exit between the check and the signal; ESRCH is fine then.
        let _ = kill_process(pid, signal);
    }
}

/// The state letter of a process (`R`, `S`, `Z`, ...), or `None` when there is no such process.
fn process_state(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name, which may itself contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next().map(str::to_owned)
}

/// Starts `binary` with `args`, appending its output to `log`.
pub(crate) fn spawn(
    name: &str,
    binary: &Path,
    args: &[String],
    log: &Path,
) -> Result<(Child, ProcessRecord)> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).at(dir)?;
    }
    let out = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .at(log)?;
    let err = out.try_clone().at(log)?;
    let child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|source| Error::Spawn {
            name: name.to_owned(),
            binary: binary.to_path_buf(),
            source,
        })?;
    let mut child = child;
    let record = ProcessRecord {
        name: name.to_owned(),
        pid: child.id(),
        binary: binary.to_path_buf(),
        log: log.to_path_buf(),
    };
    // A vfork-style spawn returns while execve is still filling in the new argv, so
    // /proc/<pid>/cmdline can be briefly empty: wait until it names the binary (or the child exits).
    let deadline = Instant::now() + Duration::from_secs(2);
    while !record.is_alive() && Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((child, record))
}

/// Stops the processes in order: SIGTERM, up to `grace` to exit, then SIGKILL.
/// `children` are the handles of processes this process started, reaped so none stays a zombie.
/// Returns the names of processes still alive after SIGKILL (none, normally).
pub(crate) fn stop_all(
    records: &[ProcessRecord],
    children: &mut [Child],
    grace: Duration,
) -> Vec<String> {
    for record in records {
        record.signal(Signal::TERM);
        if !wait_gone(record, children, grace) {
            record.signal(Signal::KILL);
            wait_gone(record, children, Duration::from_secs(5));
        }
    }
    records
        .iter()
        .filter(|record| record.is_alive())
        .map(|record| format!("{} (pid {})", record.name, record.pid))
        .collect()
}

/// Polls until the process is gone (reaped, when it is our child) or `timeout` passes.
fn wait_gone(record: &ProcessRecord, children: &mut [Child], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut own = children.iter_mut().find(|child| child.id() == record.pid);
    loop {
        let gone = match own.as_mut() {
            // Our child: gone once reaped (an exiting process loses its cmdline before it is a
            // zombie, so /proc alone cannot tell "exited" from "exiting").
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => !record.is_alive(),
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `lines` lines of a log file (at most its last 64 KiB), or a note why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = fs::File::open(path) else {
        return format!("({} is missing)", path.display());
    };
    let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.is_empty() {
        format!("({} is empty)", path.display())
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> (Child, ProcessRecord) {
        let sleep = PathBuf::from("/bin/sleep");
        spawn(
            "sleeper",
            &sleep,
            &["600".to_owned()],
            &dir.join("sleeper.log"),
        )
        .unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn a_started_process_is_alive_until_stopped_and_then_reaped() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let (child, record) = sleeper(dir.path());
        assert!(record.is_alive());
        let mut children = vec![child];
        let left = stop_all(
            std::slice::from_ref(&record),
            &mut children,
            Duration::from_secs(5),
        );
        assert!(left.is_empty(), "{left:?}");
        assert!(!record.is_alive());
        assert!(
            !Path::new(&format!("/proc/{}", record.pid)).exists(),
            "reaped"
        );
    }

    #[test]
    fn a_recycled_pid_is_not_taken_for_the_recorded_binary() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let (child, record) = sleeper(dir.path());
        let impostor = ProcessRecord {
            binary: PathBuf::from("/usr/bin/kube-apiserver"),
            ..record.clone()
        };
        assert!(!impostor.is_alive());
        // Stopping the impostor must not signal the real process behind the pid.
        let left = stop_all(&[impostor], &mut [], Duration::from_millis(100));
        assert!(left.is_empty());
        assert!(record.is_alive());
        let mut children = vec![child];
        stop_all(&[record], &mut children, Duration::from_secs(5));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let log = dir.path().join("x.log");
        let text: String = (1..=50).map(|n| format!("line {n}\n")).collect();
        fs::write(&log, text).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(tail(&log, 2), "line 49\nline 50");
        assert!(tail(&dir.path().join("none.log"), 2).contains("missing"));
    }

    #[test]
    fn spawn_names_the_component_when_the_binary_is_missing() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let missing = dir.path().join("kube-apiserver");
        let error = spawn("kube-apiserver", &missing, &[], &dir.path().join("a.log"))
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(error.contains("starting kube-apiserver"), "{error}");
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }
}
