//! Test hosts for the end-to-end tests: real sshd processes, each in its own mount namespace
//! with its own copy-on-write /etc, /var, /usr, /opt and /root (see tests/hosts/README.md).
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod lab;
mod novadock;

#[allow(unused_imports)] // each test binary uses a different part
pub use novadock::{Novadock, Run, bin};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// 127.0.0.201 onwards; every test gets its own addresses, so tests run in parallel.
static NEXT_OCTET: AtomicU32 = AtomicU32::new(201);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `YYYYMMDDTHHMMSSZ` of Unix time `t`, as novadock's run ids begin (with `date`).
pub fn run_time(t: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Fails loudly (never skips) when the machine cannot run real hosts.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root: it starts real hosts (sshd in mount namespaces, systemd-nspawn); run its tier as root: `tests/run-all hosts` or `tests/run-all lab` (docs/tests.md)"
    );
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "/usr/sbin/sshd is missing: run tests/hosts/install-deps (the README's test command does)"
    );
}

pub struct Hosts {
    pub dir: tempfile::TempDir,
    /// Per-test control-socket directory (XDG_RUNTIME_DIR), so tests never share masters.
    pub runtime: tempfile::TempDir,
    pub names: Vec<String>,
    pub first: u32,
}

impl Hosts {
    pub fn up(n: usize) -> Hosts {
        require_root();
        let first = NEXT_OCTET.fetch_add(n as u32, Ordering::SeqCst);
        assert!(first as usize + n <= 254, "out of test addresses");
        let dir = tempfile::Builder::new()
            .prefix("nd-hosts")
            .tempdir_in("/tmp")
            .unwrap();
        let runtime = tempfile::Builder::new()
            .prefix("nd-rt")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Command::new(repo().join("tests/hosts/up"))
            .arg(dir.path())
            .arg(n.to_string())
            .arg(first.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/hosts/up failed: {:?}",
            Run::from(out)
        );
        Hosts {
            dir,
            runtime,
            names: (1..=n).map(|i| format!("h{i}")).collect(),
            first,
        }
    }

    pub fn address(&self, host: &str) -> String {
        let i: u32 = host.trim_start_matches('h').parse().unwrap();
        format!("127.0.0.{}", self.first + i - 1)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write an inventory for these hosts, every host in group `targets`; `extra` (say, `vars:`)
    /// follows the hosts.
    pub fn inventory(&self, name: &str, extra: &str) -> PathBuf {
        self.inventory_with(name, |_| "targets", extra)
    }

    /// As [`Hosts::inventory`], each host in the groups `groups` gives it (a YAML list's
    /// items: `"targets, controllers"`).
    pub fn inventory_with(
        &self,
        name: &str,
        groups: impl Fn(&str) -> &'static str,
        extra: &str,
    ) -> PathBuf {
        let mut s = format!(
            "ssh:\n  user: root\n  identity_file: {}\n  known_hosts: {}\nhosts:\n",
            self.path("id_ed25519").display(),
            self.path("known_hosts").display()
        );
        for h in &self.names {
            s.push_str(&format!(
                "  {h}: {{ address: {}, groups: [{}] }}\n",
                self.address(h),
                groups(h)
            ));
        }
        s.push_str(extra);
        let p = self.path(name);
        std::fs::write(&p, s).unwrap();
        p
    }

    pub fn write_file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Run a shell script inside a host's namespace (no SSH).
    pub fn sh(&self, host: &str, script: &str) -> Run {
        let out = Command::new(repo().join("tests/hosts/exec"))
            .arg(self.dir.path())
            .arg(host)
            .args(["sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    pub fn sh_ok(&self, host: &str, script: &str) -> String {
        let r = self.sh(host, script);
        assert_eq!(r.code, 0, "on {host}: {script}\n{r:?}");
        r.stdout
    }

    pub fn put(&self, host: &str, path: &str, content: &[u8]) {
        let tmp = self.path(&format!("put-{host}"));
        std::fs::write(&tmp, content).unwrap();
        self.sh_ok(
            host,
            &format!(
                "mkdir -p \"$(dirname '{path}')\" && cat '{}' > '{path}'",
                tmp.display()
            ),
        );
    }

    pub fn read(&self, host: &str, path: &str) -> Vec<u8> {
        let out = Command::new(repo().join("tests/hosts/exec"))
            .arg(self.dir.path())
            .arg(host)
            .args(["cat", path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cat {path} on {host}: {:?}",
            Run::from(out)
        );
        out.stdout
    }

    pub fn read_str(&self, host: &str, path: &str) -> String {
        String::from_utf8(self.read(host, path)).unwrap()
    }

    /// A digest of everything the host ever wrote (its overlay upper layers): names, modes,
    /// owners and contents.
    pub fn tree_hash(&self, host: &str) -> String {
        let ovl = self.path(&format!("{host}/ovl"));
        let out = Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . -path '*/work' -prune -o -printf '%p %y %m %U:%G %l\\n' | LC_ALL=C sort && find . -path '*/work' -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum")
            .arg("sh")
            .arg(&ovl)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn stop(&self, host: &str) {
        let out = Command::new(repo().join("tests/hosts/stop"))
            .arg(self.dir.path())
            .arg(host)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", Run::from(out));
    }

    pub fn start(&self, host: &str) {
        let out = Command::new(repo().join("tests/hosts/start"))
            .arg(self.dir.path())
            .arg(host)
            .output()
            .unwrap();
        assert!(out.status.success(), "{:?}", Run::from(out));
    }

    /// novadock against these hosts: its SSH masters in this test's own directory.
    pub fn novadock<I, S>(&self, args: I) -> Novadock
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Novadock::new()
            .env("XDG_RUNTIME_DIR", self.runtime.path())
            .args(args)
    }

    /// `novadock plan -i INVENTORY -p PLAYBOOK`.
    pub fn plan(&self, inventory: impl AsRef<OsStr>, playbook: impl AsRef<OsStr>) -> Novadock {
        self.novadock([OsStr::new("plan"), "-i".as_ref(), inventory.as_ref()])
            .args([OsStr::new("-p"), playbook.as_ref()])
    }

    /// `novadock apply -i INVENTORY -p PLAYBOOK --yes`.
    pub fn apply(&self, inventory: impl AsRef<OsStr>, playbook: impl AsRef<OsStr>) -> Novadock {
        self.novadock([OsStr::new("apply"), "-i".as_ref(), inventory.as_ref()])
            .args([OsStr::new("-p"), playbook.as_ref(), "--yes".as_ref()])
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/hosts/down"))
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .output();
    }
}
