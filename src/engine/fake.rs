//! A fake host for the engine's unit tests: it answers the scripts the engine sends (facts,
//! the batched changes, the apply lock) from a little state, and records every script.

use super::schedule::Connect;
use crate::inventory::Host;
use crate::transport::{ConnectOptions, ExecOutput, Held, Stream, Transport, TransportError};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Default)]
pub(super) struct FakeHost {
    /// Connecting fails with this message.
    pub(super) down: Option<String>,
    /// A change whose shell text contains this exits 1, with `boom` on stderr.
    pub(super) fail_on: Option<String>,
    /// Regular files (path, content); every other path is absent.
    pub(super) files: Mutex<BTreeMap<String, String>>,
    /// A change whose shell text contains the first string makes file .1 with content .2.
    pub(super) makes: Option<(String, String, String)>,
    /// Another apply holds the lock: its lock file's line.
    pub(super) lock_held: Option<String>,
    /// Connecting waits until this is true (another host's failure, say).
    pub(super) connect_after: Option<watch::Receiver<bool>>,
    /// Set once a change failed here.
    pub(super) failed: Option<watch::Sender<bool>>,
    /// Every script sent by `exec`, in order.
    pub(super) sent: Mutex<Vec<String>>,
}

impl FakeHost {
    pub(super) fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }
}

/// Reaches the fake hosts by name.
pub(super) struct Fakes(pub(super) BTreeMap<String, Arc<FakeHost>>);

#[async_trait]
impl Connect for Fakes {
    async fn connect(&self, host: &Host, _: &ConnectOptions) -> Result<Box<dyn Transport>, String> {
        let fake = self.0[&host.name].clone();
        if let Some(rx) = &fake.connect_after {
            let _ = rx.clone().wait_for(|v| *v).await;
        }
        if let Some(e) = &fake.down {
            return Err(e.clone());
        }
        Ok(Box::new(FakeTransport(fake)))
    }
}

struct FakeTransport(Arc<FakeHost>);

struct Guard;
impl Held for Guard {}

fn output(code: i32, stdout: String, stderr: &str) -> ExecOutput {
    ExecOutput {
        code: Some(code),
        stdout: stdout.into_bytes(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

impl FakeTransport {
    /// What `facts::script` prints: the files (all regular, root's, 644), then each command
    /// probe's answer (exit 1: a check that does not pass).
    fn facts(&self, script: &str) -> ExecOutput {
        let marker = script
            .lines()
            .find_map(|l| l.strip_prefix("nd_m="))
            .expect("a facts script names its marker")
            .trim_matches('\'');
        let mut out = String::new();
        let list = script.lines().find_map(|l| l.strip_prefix("nd_files "));
        if let Some(list) = list {
            let (mut exists, mut stats, mut cat) = (String::new(), String::new(), String::new());
            for p in list.split(' ') {
                match self.0.files.lock().unwrap().get(p.trim_matches('\'')) {
                    Some(c) => {
                        exists.push('e');
                        stats.push_str(&format!("81a4 root root 644 {}\n", c.len()));
                        cat.push_str(c);
                    }
                    None => exists.push('a'),
                }
            }
            out = format!(
                "{marker} files\n{exists}\n{stats}{marker} cat\n{cat}\n{marker} links\n{marker} end\n"
            );
        }
        for l in script.lines() {
            if let Some(i) = l
                .strip_prefix("printf '\\n%s ")
                .and_then(|r| r.strip_suffix(" %s\\n' \"$nd_m\" \"$?\""))
            {
                out.push_str(&format!("\n{marker} {i} 1\n"));
            }
        }
        output(0, out, "")
    }

    /// The batched changes: each marker line is printed, and the change after it fails when
    /// it contains `fail_on`.
    fn changes(&self, script: &str) -> ExecOutput {
        if let Some(holder) = &self.0.lock_held
            && script.contains("flock -n 9")
        {
            return output(75, format!("novadock-lock-held {holder}\n"), "");
        }
        let mut out = String::new();
        let mut current: Option<String> = None;
        let fails = |text: &str| self.0.fail_on.as_deref().is_some_and(|f| text.contains(f));
        let mut text = String::new();
        for l in script.lines() {
            let mark = l
                .strip_prefix("printf '\\n%s ")
                .and_then(|r| r.split_once("\\n' "))
                .map(|(i, m)| format!("\n{m} {i}\n"));
            match mark {
                Some(mark) => {
                    if current.is_some() && fails(&text) {
                        break;
                    }
                    out.push_str(&mark);
                    current = Some(mark);
                    text.clear();
                }
                None => {
                    text.push_str(l);
                    text.push('\n');
                }
            }
        }
        if current.is_some() && fails(&text) {
            if let Some(tx) = &self.0.failed {
                tx.send_replace(true);
            }
            return output(1, out, "boom\n");
        }
        if let Some((when, path, content)) = &self.0.makes
            && script.contains(when.as_str())
        {
            let mut files = self.0.files.lock().unwrap();
            files.insert(path.clone(), content.clone());
        }
        output(0, out, "")
    }

    /// `facts::peer_script`: the files among its paths that exist.
    fn peer(&self, script: &str) -> ExecOutput {
        let list = script.lines().next().unwrap_or("");
        let files = self.0.files.lock().unwrap();
        let mut out = String::new();
        for p in list.trim_start_matches("set -- ").split(' ') {
            if let Some(c) = files.get(p.trim_matches('\'')) {
                out.push_str(&format!("ND_PEER_FILE\n{c}\n"));
            }
        }
        output(0, out, "")
    }
}

#[async_trait]
impl Transport for FakeTransport {
    async fn exec(&self, script: &str) -> Result<ExecOutput, TransportError> {
        self.0.sent.lock().unwrap().push(script.to_string());
        Ok(if script.starts_with("LC_ALL=C; export LC_ALL\nnd_m=") {
            self.facts(script)
        } else if script.starts_with("ND_RUN=") {
            self.changes(script)
        } else if script.starts_with("set -- ") {
            self.peer(script)
        } else {
            output(2, String::new(), "fake: an unknown script")
        })
    }

    async fn hold(&self, _script: &str) -> Result<(String, Box<dyn Held>), TransportError> {
        let line = match &self.0.lock_held {
            Some(holder) => format!("HELD {holder}"),
            None => "LOCKED".into(),
        };
        Ok((line, Box::new(Guard)))
    }

    async fn stream(&self, _script: &str) -> Result<Stream, TransportError> {
        Err(TransportError::Local("fake: no streams".into()))
    }

    fn round_trips(&self) -> u64 {
        self.0.sent.lock().unwrap().len() as u64
    }

    async fn close(&self, _keep: bool) {}
}
