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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    options: SshOptions,
    session: Arc<Session>,
    ctl: PathBuf,
    channels: Semaphore,
    trips: AtomicU64,
    idle: Arc<Mutex<Idle>>,
    /// One task at a time revives the master.
    reviving: tokio::sync::Mutex<()>,
}

/// A master exits ControlPersist seconds after its last channel closed, also in the middle of a
/// run whose other hosts keep it busy (a slow OpenStack step on the controller while the
/// computes wait): a host this run left idle that long needs its master checked, or revived.
struct Idle {
    open: usize,
    since: Instant,
}

/// An open channel of this run; the host counts as idle from when the last one closes.
struct Channel(Arc<Mutex<Idle>>);

impl Channel {
    fn open(idle: &Arc<Mutex<Idle>>) -> Channel {
        idle.lock().expect("idle lock").open += 1;
        Channel(idle.clone())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut i = self.0.lock().expect("idle lock");
        i.open -= 1;
        i.since = Instant::now();
    }
}

struct SshHeld {
    _child: openssh::Child<Arc<Session>>,
    _channel: Channel,
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
        let ctl = control_dir()?.join(socket_name(address, o));
        ensure_master(address, o, &ctl).await?;
        Ok(Ssh {
            address: address.to_string(),
            user: o.user.clone(),
            options: o.clone(),
            session: Arc::new(Session::resume_mux(ctl.clone().into_boxed_path(), None)),
            ctl,
            channels: Semaphore::new(MAX_CHANNELS),
            trips: AtomicU64::new(0),
            idle: Arc::new(Mutex::new(Idle {
                open: 0,
                since: Instant::now(),
            })),
            reviving: tokio::sync::Mutex::new(()),
        })
    }

    /// A channel on a live master. Idle for less than half of ControlPersist, the master still
    /// runs (other clients only extend its life); idle longer, a trivial command through it
    /// either restarts its timer or shows it gone, and then a new master is launched.
    async fn channel(&self) -> Result<Channel, TransportError> {
        let stale = || {
            let i = self.idle.lock().expect("idle lock");
            i.open == 0 && i.since.elapsed() >= master_persist(&self.options) / 2
        };
        if stale() {
            let _one = self.reviving.lock().await;
            if stale() {
                let _touch = Channel::open(&self.idle);
                let alive = self
                    .session
                    .raw_command("true")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success());
                if !alive {
                    ensure_master(&self.address, &self.options, &self.ctl).await?;
                }
            }
        }
        Ok(Channel::open(&self.idle))
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

/// ControlPersist of the masters we launch. Without persistence the run closes its masters at
/// its end (`close`); this only bounds how long one outlives a killed run.
fn master_persist(o: &SshOptions) -> Duration {
    Duration::from_secs(if o.persist_secs == 0 {
        30
    } else {
        o.persist_secs
    })
}

/// Make sure a master answers on `ctl`, launching one if not. Serialised per host across
/// concurrent novadock processes by a lock file beside the socket.
async fn ensure_master(address: &str, o: &SshOptions, ctl: &Path) -> Result<(), TransportError> {
    let connect_err = |message: String| TransportError::Connect {
        address: address.to_string(),
        message,
    };
    let name = ctl.file_name().expect("socket name").to_string_lossy();
    let log = ctl.with_file_name(format!("{name}.log"));
    let lock_path = ctl.with_file_name(format!("{name}.lock"));
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

    let session = Session::resume_mux(ctl.to_path_buf().into_boxed_path(), None);
    if !(ctl.exists() && session.check().await.is_ok()) {
        let _ = std::fs::remove_file(ctl);
        let _ = std::fs::remove_file(&log);
        launch_master(address, o, ctl, &log)
            .await
            .map_err(connect_err)?;
    }
    drop(lock);
    Ok(())
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
        .arg(format!("ControlPersist={}s", master_persist(o).as_secs()))
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
        let _channel = self.channel().await?;
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
        let channel = self.channel().await?;
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
        Ok((
            line,
            Box::new(SshHeld {
                _child: child,
                _channel: channel,
            }),
        ))
    }

    async fn stream(&self, script: &str) -> Result<super::Stream, TransportError> {
        let channel = self.channel().await?;
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = self
            .spawn(&super::sh_c(&self.user, false, script), Stdio::piped())
            .await?;
        let stdin = child.stdin().take().expect("piped stdin");
        let stdout = child.stdout().take().expect("piped stdout");
        let stderr = child.stderr().take().expect("piped stderr");
        let address = self.address.clone();
        let wait = async move {
            let _channel = channel;
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
