//! How commands reach a host: one trait, an `ssh` and a `local` implementation.
//!
//! Every remote interaction is a POSIX sh script sent on the stdin of `sh -s`: no argument
//! length limits, and nothing from an inventory is ever spliced into a command line unquoted.

pub(crate) mod local;
pub(crate) mod ssh;

use async_trait::async_trait;
use std::future::Future;
use std::pin::Pin;

#[derive(Debug, Clone)]
pub(crate) struct ExecOutput {
    /// `None` when the remote process died from a signal.
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

impl ExecOutput {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("cannot connect to {address}: {message}")]
    Connect { address: String, message: String },
    #[error("lost the connection to {address}: {message}")]
    Disconnected { address: String, message: String },
    #[error("{0}")]
    Local(String),
}

/// A remote process whose stdin and stdout carry bytes (say, an image into `docker load`), not
/// a script: the script is given on the command line, so the data can follow on stdin.
pub(crate) struct Stream {
    pub(crate) stdin: Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pub(crate) stdout: Pin<Box<dyn tokio::io::AsyncRead + Send>>,
    /// Resolves when the process ends: its exit code and stderr (stdout stays with the caller).
    pub(crate) done: Pin<Box<dyn Future<Output = Result<ExecOutput, TransportError>> + Send>>,
}

impl Stream {
    /// A started process's pipes; `wait` yields its exit code once stderr has been read.
    pub(crate) fn new<I, O, E, W>(stdin: I, stdout: O, mut stderr: E, wait: W) -> Stream
    where
        I: tokio::io::AsyncWrite + Send + 'static,
        O: tokio::io::AsyncRead + Send + 'static,
        E: tokio::io::AsyncRead + Send + Unpin + 'static,
        W: Future<Output = Result<Option<i32>, TransportError>> + Send + 'static,
    {
        use tokio::io::AsyncReadExt;
        let done = async move {
            let mut err = Vec::new();
            let _ = stderr.read_to_end(&mut err).await;
            Ok(ExecOutput {
                code: wait.await?,
                stdout: Vec::new(),
                stderr: err,
            })
        };
        Stream {
            stdin: Box::pin(stdin),
            stdout: Box::pin(stdout),
            done: Box::pin(done),
        }
    }
}

/// The command line that runs `script` with `sh -c`, as the configured user.
pub(crate) fn sh_c(user: &str, local: bool, script: &str) -> String {
    let sh = format!("sh -c {}", crate::shell::quote(script));
    if local || user == "root" {
        sh
    } else {
        format!("sudo -n {sh}")
    }
}

/// A long-running remote process (e.g. the holder of the apply lock); it ends when dropped.
pub(crate) trait Held: Send {}

#[async_trait]
pub(crate) trait Transport: Send + Sync {
    /// Run `script` with `sh -s` (through `sudo -n` when needed) and collect its output.
    async fn exec(&self, script: &str) -> Result<ExecOutput, TransportError>;

    /// Start `script` and wait for its first line of stdout. The script's stdin stays open
    /// until the returned guard is dropped, so a script ending in `cat >/dev/null` lives
    /// exactly as long as the guard (and dies with this process, whatever kills it).
    async fn hold(&self, script: &str) -> Result<(String, Box<dyn Held>), TransportError>;

    /// Start `script` with its stdin and stdout as byte streams (see [`Stream`]).
    async fn stream(&self, script: &str) -> Result<Stream, TransportError>;

    /// Number of remote commands started so far (round trips), for `-v` and benchmarks.
    fn round_trips(&self) -> u64;

    /// Release the connection; `keep` leaves an SSH master running for the next run.
    async fn close(&self, keep: bool);
}

/// How to reach hosts, from the inventory's `ssh:` section and the command line.
#[derive(Debug, Clone)]
pub(crate) struct ConnectOptions {
    pub(crate) ssh: crate::inventory::SshConfig,
    pub(crate) accept_new_host_keys: bool,
    /// ControlPersist in seconds; 0 closes the master when the run ends.
    pub(crate) persist_secs: u64,
    pub(crate) connect_timeout_secs: u64,
}

impl ConnectOptions {
    /// The inventory's SSH settings with a command's connection flags.
    pub(crate) fn of(
        inventory: &crate::inventory::Inventory,
        persist_secs: u64,
        connect_timeout_secs: u64,
        accept_new_host_keys: bool,
    ) -> ConnectOptions {
        ConnectOptions {
            ssh: inventory.ssh.clone(),
            accept_new_host_keys,
            persist_secs,
            connect_timeout_secs,
        }
    }
}

/// A transport to `host`: `local`, or SSH through a (possibly kept) master.
pub(crate) async fn connect(
    host: &crate::inventory::Host,
    o: &ConnectOptions,
) -> Result<Box<dyn Transport>, String> {
    match &host.address {
        crate::inventory::Address::Local => Ok(Box::new(local::Local::default())),
        crate::inventory::Address::Ssh(addr) => {
            let so = ssh::SshOptions {
                user: host.user.clone(),
                port: host.port,
                identity_file: o.ssh.identity_file.clone(),
                known_hosts: o.ssh.known_hosts.clone(),
                accept_new_host_keys: o.accept_new_host_keys
                    || o.ssh.strict_host_key_checking == Some(false),
                persist_secs: o.persist_secs,
                connect_timeout_secs: o.connect_timeout_secs,
            };
            ssh::Ssh::connect(addr, &so)
                .await
                .map(|s| Box::new(s) as Box<dyn Transport>)
                .map_err(|e| e.to_string())
        }
    }
}

/// The script as sent: one brace group, which sh parses whole before running any of it. If
/// the connection dies mid-transfer (say, novadock is killed), sh sees an unfinished group and
/// runs nothing — never half a script, never a here-document cut short into a file.
pub(crate) fn guarded(script: &str) -> String {
    format!(
        "{{
{script}
}}
"
    )
}

/// Send `script` (guarded) to a started `sh -s` while `output` waits for it to end: written
/// concurrently with the reading, so a large output cannot deadlock the pipe.
pub(crate) async fn send_and_wait<W, E>(
    mut stdin: W,
    script: &str,
    output: impl Future<Output = Result<std::process::Output, E>>,
) -> Result<ExecOutput, E>
where
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::AsyncWriteExt;
    let script = guarded(script).into_bytes();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&script).await;
        let _ = stdin.shutdown().await;
    });
    let out = output.await?;
    let _ = writer.await;
    Ok(ExecOutput {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

/// Send `script` (guarded) to a started `sh -s` and wait for the first line it prints; stdin
/// stays open, for scripts that live as long as their caller (see [`Transport::hold`]).
pub(crate) async fn send_and_read_line<W, R>(
    stdin: &mut W,
    stdout: R,
    script: &str,
) -> std::io::Result<String>
where
    W: tokio::io::AsyncWrite + Unpin,
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    stdin.write_all(guarded(script).as_bytes()).await?;
    stdin.flush().await?;
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await?;
    Ok(line.trim_end().to_string())
}

/// The remote command that reads the script from stdin, as the configured user.
pub(crate) fn shell_command(user: &str, local: bool) -> &'static str {
    if local || user == "root" {
        "sh -s"
    } else {
        "sudo -n sh -s"
    }
}

#[cfg(test)]
mod tests {
    use super::guarded;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn a_script_cut_short_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("f");
        let script = guarded(&format!(
            "echo started > {t}.marker\nbase64 -d > {t} <<'ND_EOF'\naGVsbG8K\naGVsbG8K\nND_EOF\n",
            t = target.display()
        ));
        // Every prefix that lacks the closing brace runs nothing; the whole script runs all.
        let closing = script.len() - 2;
        for cut in (0..closing).chain([script.len()]) {
            let mut child = Command::new("sh")
                .arg("-s")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(&script.as_bytes()[..cut])
                .unwrap();
            child.wait().unwrap();
            if cut == script.len() {
                assert_eq!(std::fs::read(&target).unwrap(), b"hello\nhello\n");
                continue;
            }
            assert!(
                !target.exists(),
                "a script cut at byte {cut} wrote the file"
            );
            assert!(
                !dir.path().join("f.marker").exists(),
                "cut at {cut} ran a command"
            );
        }
    }
}
