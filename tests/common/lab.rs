//! The local OpenStack lab (tests/lab): reset it, run commands in its hosts, write inventories
//! for it, run novadock against it.
#![allow(dead_code)] // each test binary uses a different part of this module

use super::{Run, repo};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The lab's Debian release (tests/lab/lib.sh LAB_RELEASE): `NOVADOCK_LAB_RELEASE`, bookworm
/// (Zed) unless set; tests/run-all's trixie tier sets `trixie` (2025.1). The lab scripts these
/// tests run read the same variable, so the whole test runs against that release's lab.
pub fn release() -> String {
    std::env::var("NOVADOCK_LAB_RELEASE").unwrap_or_else(|_| "bookworm".into())
}

/// What names the release's lab apart: "" for bookworm, "-trixie" for trixie (lib.sh LAB_SUFFIX).
fn suffix() -> String {
    match release().as_str() {
        "bookworm" => String::new(),
        r => format!("-{r}"),
    }
}

/// The lab's management /24 (tests/lab/lib.sh LAB_NET): hosts are .11 to .15.
pub fn net() -> &'static str {
    match release().as_str() {
        "bookworm" => "10.11.0",
        "trixie" => "10.13.0",
        r => panic!("unknown lab release {r} (NOVADOCK_LAB_RELEASE: bookworm or trixie)"),
    }
}

/// A lab host's address (tests/lab/lib.sh CTL_ADDR, CLUSTER_COMPUTES), as inventories/lab.yml has it.
pub fn addr(host: &str) -> String {
    let n = match host {
        "ctl" => 11,
        "cmp1" => 12,
        "cmp2" => 13,
        "cmp3" => 14,
        "kvm1" => 15,
        "ctl2" => 16, // the HA lab's (Lab::fresh_ha)
        h => panic!("{h} is not a lab host"),
    };
    format!("{}.{n}", net())
}

/// The lab's own network namespace (tests/lab/lib.sh LAB_NS): the operator's side. The
/// hosts' addresses (inventories/lab.yml) are reachable only from there.
pub fn lab_ns() -> String {
    format!("novadock-lab{}", suffix())
}

/// The inventory `tests/lab/up` writes: inventories/lab.yml (bookworm), lab-trixie.yml (trixie).
pub fn inventory_path() -> PathBuf {
    repo().join(format!("inventories/lab{}.yml", suffix()))
}

/// `program` run in the lab's namespace, as an operator's workstation on the lab network.
/// (`ip netns exec` execs it: the child's PID is the program's own.)
pub fn operator(program: &str) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", &lab_ns(), program]);
    c
}

pub fn lab(script: &str, args: &[&str]) -> Run {
    let out = Command::new(repo().join("tests/lab").join(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

/// Run `cmd` with bash inside lab host `host`; it must succeed.
pub fn on(host: &str, cmd: &str) -> String {
    let r = lab("host", &["exec", host, "bash", "-c", cmd]);
    assert_eq!(r.code, 0, "on {host}: {cmd}\n{r:?}");
    r.stdout
}

/// `openstack CMD` on the controller, as admin; it must succeed.
pub fn os(cmd: &str) -> String {
    on(
        "ctl",
        &format!(". /root/admin-openrc && timeout 120 openstack {cmd}"),
    )
}

/// Start the timer's service on ctl and wait for it: (succeeded, its journal of this run).
pub fn timer_run() -> (bool, String) {
    let cursor = on(
        "ctl",
        "journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'",
    );
    let r = lab(
        "host",
        &[
            "exec",
            "ctl",
            "systemctl",
            "start",
            "novadock-prefetch.service",
        ],
    );
    let log = on(
        "ctl",
        &format!(
            "journalctl -u novadock-prefetch.service --after-cursor '{}' -o cat --no-pager",
            cursor.trim()
        ),
    );
    (r.code == 0, log)
}

pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Drop for Lab {
    /// The lab goes down after the test (NOVADOCK_KEEP_LAB=1 keeps it, for debugging).
    fn drop(&mut self) {
        if std::env::var_os("NOVADOCK_KEEP_LAB").is_none() {
            let _ = lab("down", &[]);
        }
    }
}

impl Lab {
    /// A pristine lab, and an inventory for it with the driver's source path.
    pub fn fresh() -> Lab {
        Lab::fresh_with(&[])
    }

    /// A pristine HA lab: also ctl2, the second controller (`tests/lab/up --ha`).
    pub fn fresh_ha() -> Lab {
        Lab::fresh_with(&["--ha"])
    }

    fn fresh_with(up_args: &[&str]) -> Lab {
        super::require_root();
        let down = lab("down", &[]);
        assert_eq!(down.code, 0, "{down:?}");
        let up = lab("up", up_args);
        assert_eq!(up.code, 0, "tests/lab/up failed: {up:?}");
        let dir = tempfile::tempdir().unwrap();
        let l = Lab { dir };
        l.inventory("lab.yml", "", "");
        l
    }

    /// The lab's inventory (inventory_path) plus `hosts` lines and `vars` lines.
    pub fn inventory(&self, name: &str, hosts: &str, vars: &str) -> String {
        let base = std::fs::read_to_string(inventory_path()).unwrap();
        // The copy lives elsewhere: paths beside the real inventory become absolute.
        let base = base
            .replace("hosts:\n", &format!("hosts:\n{hosts}"))
            .replace("{{ inventory_dir }}/..", &repo().display().to_string());
        let text = format!("{base}{vars}");
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    /// `host` added to docker_computes (inventory `NAME.yml` with `vars`) by the shipped
    /// add-compute playbook, `--limit host --yes`: (the inventory's path, the run).
    pub fn add_compute(&self, name: &str, host: &str, vars: &str) -> (String, Run) {
        let inv = self.inventory(
            &format!("{name}.yml"),
            &format!(
                "  {host}: {{ address: {}, groups: [docker_computes] }}\n",
                addr(host)
            ),
            vars,
        );
        let run = self.novadock(&[
            "apply",
            "-i",
            &inv,
            "-p",
            "playbooks/add-compute.yml",
            "--limit",
            host,
            "--yes",
        ]);
        (inv, run)
    }

    pub fn novadock(&self, args: &[&str]) -> Run {
        Run::from(self.novadock_cmd(args).output().unwrap())
    }

    pub fn novadock_cmd(&self, args: &[&str]) -> Command {
        let mut c = operator(env!("CARGO_BIN_EXE_novadock"));
        c.args(args)
            .env("NO_COLOR", "1")
            .env("XDG_RUNTIME_DIR", self.dir.path())
            .env("TMPDIR", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

pub fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}
