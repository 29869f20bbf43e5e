//! `address: local`: run on this machine, no SSH.

use super::{ExecOutput, Held, Transport, TransportError};
use async_trait::async_trait;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::process::{Child, Command};

#[derive(Default)]
pub(crate) struct Local {
    trips: AtomicU64,
}

struct LocalHeld {
    _child: Child,
}
impl Held for LocalHeld {}

impl Local {
    fn command() -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-s")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

fn local_err(e: std::io::Error) -> TransportError {
    TransportError::Local(format!("cannot run sh on this machine: {e}"))
}

#[async_trait]
impl Transport for Local {
    async fn exec(&self, script: &str) -> Result<ExecOutput, TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = Self::command().spawn().map_err(local_err)?;
        let stdin = child.stdin.take().expect("piped stdin");
        super::send_and_wait(stdin, script, child.wait_with_output())
            .await
            .map_err(local_err)
    }

    async fn hold(&self, script: &str) -> Result<(String, Box<dyn Held>), TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = Self::command().spawn().map_err(local_err)?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.as_mut().expect("piped stdin");
        let line = super::send_and_read_line(stdin, stdout, script)
            .await
            .map_err(local_err)?;
        Ok((line, Box::new(LocalHeld { _child: child })))
    }

    async fn stream(&self, script: &str) -> Result<super::Stream, TransportError> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(local_err)?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let wait = async move { child.wait().await.map(|s| s.code()).map_err(local_err) };
        Ok(super::Stream::new(stdin, stdout, stderr, wait))
    }

    fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    async fn close(&self, _keep: bool) {}
}
