//! SSH through the `openssh` crate: one multiplexed master per host, kept between runs.
//!
//! We launch the master ourselves (`ssh -M -f -N -S PATH`) so that its ControlPath is stable
//! and ControlPersist is ours to set; every later run (and every command in this run) resumes
//! it with `Session::resume_mux`, so `plan` followed by `apply` pays the handshake once.

use super::{ExecOutput, Held, Transport, TransportError, shell_command};
use async_trait::async_trait;
use openssh::{Session, Stdio};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// sshd's default MaxSessions is 10; stay below it with room for a human's own session.
const MAX_CHANNELS: usize = 8;
/// sun_path is 108 bytes; leave room for ssh's temporary suffix on the socket name.
const MAX_SOCKET_PATH: usize = 90;

#[derive(Debug, Clone)]
pub(crate) struct SshOptions {
    pub(crate) user: String,
    pub(crate) port: u16,
    pub(crate) identity_file: Option<PathBuf>,
    pub(crate) known_hosts: Option<PathBuf>,
    pub(crate) accept_new_host_keys: bool,
    /// ControlPersist in seconds; 0 closes the master when the run ends.
    pub(crate) persist_secs: u64,
    pub(crate) connect_timeout_secs: u64,
}

pub(crate) struct Ssh {
    address: String,
    user: String,
    session: Arc<Session>,
    ctl: PathBuf,
    channels: Semaphore,
    trips: AtomicU64,
}

struct SshHeld {
    _child: openssh::Child<Arc<Session>>,
}
impl Held for SshHeld {}

/// A stable, private, short directory for control sockets.
pub(crate) fn control_dir() -> Result<PathBuf, TransportError> {
    let uid = unsafe_free_uid();
    let candidates = [
        std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("novadock")),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/novadock/cp")),
        Some(PathBuf::from(format!("/tmp/novadock-{uid}"))),
    ];
    for dir in candidates.into_iter().flatten() {
        // socket name is 16 hex chars + '/' + room for ssh's ".XXXXXXXXXXXXXXXX" temp suffix
        if dir.as_os_str().len() + 17 > MAX_SOCKET_PATH {
            continue;
        }
        if ensure_private_dir(&dir).is_ok() {
            return Ok(dir);
        }
    }
    Err(TransportError::Local(
        "no private directory for SSH control sockets (tried $XDG_RUNTIME_DIR/novadock, ~/.cache/novadock/cp, /tmp/novadock-UID)".into(),
    ))
}

fn unsafe_free_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    // Someone else's directory (or a symlink planted in /tmp) must never hold our sockets.
    if !meta.is_dir() || meta.uid() != unsafe_free_uid() {
        return Err(std::io::Error::other("not ours"));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn socket_name(address: &str, o: &SshOptions) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "{}@{}:{}|{:?}|{:?}|{}",
        o.user, address, o.port, o.identity_file, o.known_hosts, o.accept_new_host_keys
    ));
    hex::encode(&h.finalize()[..8])
}

impl Ssh {
    pub(crate) async fn connect(address: &str, o: &SshOptions) -> Result<Ssh, TransportError> {
        let dir = control_dir()?;
        let name = socket_name(address, o);
        let ctl = dir.join(&name);
        let log = dir.join(format!("{name}.log"));
        let connect_err = |message: String| TransportError::Connect {
            address: address.to_string(),
            message,
        };
        // Serialise master creation for this host across concurrent novadock processes.
        let lock_path = dir.join(format!("{name}.lock"));
        let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(lock_path)?;
            f.lock()?;
            Ok(f)
        })
        .await
        .map_err(|e| connect_err(e.to_string()))?
        .map_err(|e| connect_err(format!("cannot lock the control socket: {e}")))?;

        let session = Session::resume_mux(ctl.clone().into_boxed_path(), None);
        if !(ctl.exists() && session.check().await.is_ok()) {
            let _ = std::fs::remove_file(&ctl);
            let _ = std::fs::remove_file(&log);
            launch_master(address, o, &ctl, &log)
                .await
                .map_err(connect_err)?;
        }
        drop(lock);
        Ok(Ssh {
            address: address.to_string(),
            user: o.user.clone(),
            session: Arc::new(Session::resume_mux(ctl.clone().into_boxed_path(), None)),
            ctl,
            channels: Semaphore::new(MAX_CHANNELS),
            trips: AtomicU64::new(0),
        })
    }

    fn disconnected(&self, e: openssh::Error) -> TransportError {
        TransportError::Disconnected {
            address: self.address.clone(),
            message: e.to_string(),
        }
    }

    /// Starts `command` over the master, its stdin and stdout piped.
    async fn spawn(
        &self,
        command: &str,
        stderr: Stdio,
    ) -> Result<openssh::Child<Arc<Session>>, TransportError> {
        Session::to_raw_command(self.session.clone(), command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .await
            .map_err(|e| self.disconnected(e))
    }
}

async fn launch_master(
    address: &str,
    o: &SshOptions,
    ctl: &Path,
    log: &Path,
) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .arg("-E")
        .arg(log)
        .arg("-S")
        .arg(ctl)
        .args(["-M", "-f", "-N"])
        .arg("-o")
        .arg(if o.persist_secs == 0 {
            // The master must outlive `ssh -f` until our first mux client attaches.
            "ControlPersist=5s".to_string()
        } else {
            format!("ControlPersist={}s", o.persist_secs)
        })
        .args(["-o", "BatchMode=yes"])
        .arg("-o")
        .arg(if o.accept_new_host_keys {
            "StrictHostKeyChecking=accept-new"
        } else {
            "StrictHostKeyChecking=yes"
        })
        .arg("-o")
        .arg(format!("ConnectTimeout={}", o.connect_timeout_secs))
        .args(["-o", "ServerAliveInterval=15"])
        .arg("-p")
        .arg(o.port.to_string())
        .arg("-l")
        .arg(&o.user);
    if let Some(k) = &o.identity_file {
        cmd.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(k);
    }
    if let Some(kh) = &o.known_hosts {
        let mut opt = std::ffi::OsString::from("UserKnownHostsFile=");
        opt.push(kh);
        cmd.arg("-o").arg(opt);
    }
    cmd.arg("--").arg(address);
    let status = cmd
        .status()
        .await
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    Err(if lines.is_empty() {
        format!("ssh exited with {status}")
    } else {
        lines.join("; ")
    })
}

#[async_trait]
impl Transport for Ssh {
    async fn exec(&self, script: &str) -> Result<ExecOutput, TransportError> {
        let _permit = self
            .channels
            .acquire()
            .await
            .expect("semaphore never closed");
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = self
            .spawn(shell_command(&self.user, false), Stdio::piped())
            .await?;
        let stdin = child.stdin().take().expect("piped stdin");
        super::send_and_wait(stdin, script, child.wait_with_output())
            .await
            .map_err(|e| self.disconnected(e))
    }

    async fn hold(&self, script: &str) -> Result<(String, Box<dyn Held>), TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = self
            .spawn(shell_command(&self.user, false), Stdio::null())
            .await?;
        let io = |e: std::io::Error| TransportError::Disconnected {
            address: self.address.clone(),
            message: e.to_string(),
        };
        let stdout = child.stdout().take().expect("piped stdout");
        let stdin = child.stdin().as_mut().expect("piped stdin");
        let line = super::send_and_read_line(stdin, stdout, script)
            .await
            .map_err(io)?;
        Ok((line, Box::new(SshHeld { _child: child })))
    }

    async fn stream(&self, script: &str) -> Result<super::Stream, TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = self
            .spawn(&super::sh_c(&self.user, false, script), Stdio::piped())
            .await?;
        let stdin = child.stdin().take().expect("piped stdin");
        let stdout = child.stdout().take().expect("piped stdout");
        let stderr = child.stderr().take().expect("piped stderr");
        let address = self.address.clone();
        let wait = async move {
            child
                .wait()
                .await
                .map(|s| s.code())
                .map_err(|e| TransportError::Disconnected {
                    address,
                    message: e.to_string(),
                })
        };
        Ok(super::Stream::new(stdin, stdout, stderr, wait))
    }

    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    async fn close(&self, keep: bool) {
        if !keep {
            let _ = tokio::process::Command::new("ssh")
                .arg("-S")
                .arg(&self.ctl)
                .args(["-O", "exit", "novadock"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await;
        }
    }
}
