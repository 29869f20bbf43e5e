#![cfg(feature = "hosts-tests")] // a test tier: docs/tests.md
//! Steps that need a real systemd (`service`, daemon-reload, handlers restarting units) and
//! real apt/dpkg (`package`), against a Debian bookworm host booted with systemd-nspawn
//! (tests/lab/host).

mod common;

use common::{Novadock, Run, repo};
use std::process::{Command, Stdio};

const NAME: &str = "nd-systemd-test";
const ADDR: &str = "127.0.0.61";

fn lab_dir() -> String {
    std::env::var("NOVADOCK_LAB_DIR").unwrap_or_else(|_| "/var/lib/novadock-lab".into())
}

struct Host;

impl Host {
    fn up() -> Host {
        common::require_root();
        let out = Command::new(repo().join("tests/lab/host"))
            .args(["up", NAME, ADDR])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/lab/host up failed: {:?}",
            Run::from(out)
        );
        Host
    }

    fn sh(&self, script: &str) -> Run {
        Run::from(
            Command::new(repo().join("tests/lab/host"))
                .args(["exec", NAME, "sh", "-c", script])
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }
}

impl Host {
    /// /var/log/nd-demo.log once it says `want`, or after 10 s: "active" (what the handler
    /// waits for) comes as the unit's process starts, its first line a moment later.
    fn log_once_started(&self, want: &str) -> String {
        let t = std::time::Instant::now();
        loop {
            let log = self.sh("cat /var/log/nd-demo.log").stdout;
            if log == want || t.elapsed() > std::time::Duration::from_secs(10) {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/lab/host"))
            .args(["down", NAME])
            .stdin(Stdio::null())
            .output();
    }
}

#[test]
fn services_handlers_daemon_reload_and_packages_on_real_systemd() {
    let host = Host::up();
    let dir = tempfile::tempdir().unwrap();
    let lab = lab_dir();
    let inv = dir.path().join("inventory.yml");
    let write_inv = |greeting: &str| {
        std::fs::write(
            &inv,
            format!(
                "ssh:\n  identity_file: {lab}/id_ed25519\n  known_hosts: {lab}/known_hosts\nhosts:\n  sys: {{ address: {ADDR} }}\nvars:\n  greeting: {greeting}\n"
            ),
        )
        .unwrap();
    };
    write_inv("hello");
    let pb = dir.path().join("pb.yml");
    std::fs::write(
        &pb,
        r#"steps:
  - name: a tool from Debian
    hosts: all
    package: { names: [tree] }
  - name: the unit
    hosts: all
    file:
      path: /etc/systemd/system/nd-demo.service
      content: |
        [Unit]
        Description=novadock demo ({{ greeting }})
        [Service]
        ExecStart=/bin/sh -c 'echo started {{ greeting }} >> /var/log/nd-demo.log; exec sleep infinity'
        [Install]
        WantedBy=multi-user.target
    notify: [nd-demo]
  - name: the unit runs
    hosts: all
    service: { name: nd-demo, enabled: true, state: started }
handlers:
  nd-demo: { serial: 1, active_timeout: 30, service: { name: nd-demo, state: restarted } }
"#,
    )
    .unwrap();
    let novadock = |args: &[&str]| {
        Novadock::new()
            .env("XDG_RUNTIME_DIR", dir.path())
            .args(args)
    };
    let (i, p) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    let plan = novadock(&["plan", "-i", i, "-p", p]).code(2).run();
    assert!(
        plan.stderr
            .contains("  ~ sys: would change: install tree\n"),
        "{plan:?}"
    );
    assert!(
        plan.stderr
            .contains("  ~ sys: would change: enable and start nd-demo\n"),
        "{plan:?}"
    );

    let apply = novadock(&["apply", "-i", i, "-p", p, "--yes"])
        .code(0)
        .run();
    // A rolling restart: the handler waited for the unit to be active again.
    assert!(
        apply
            .stderr
            .contains("[handler] nd-demo\n  ~ sys: ran: restart nd-demo (one host at a time)\n"),
        "{apply:?}"
    );
    assert_eq!(host.sh("systemctl is-active nd-demo").stdout, "active\n");
    assert_eq!(host.sh("systemctl is-enabled nd-demo").stdout, "enabled\n");
    assert_eq!(
        host.sh("dpkg-query -W -f='${db:Status-Abbrev}' tree")
            .stdout,
        "ii "
    );
    // Started by the service step, then restarted once by the handler.
    assert_eq!(
        host.log_once_started("started hello\nstarted hello\n"),
        "started hello\nstarted hello\n"
    );

    novadock(&["plan", "-i", i, "-p", p]).code(0).run();

    // A changed unit file: daemon-reload happens before the restart, so the new ExecStart runs.
    write_inv("bonjour");
    novadock(&["apply", "-i", i, "-p", p, "--yes"])
        .code(0)
        .run();
    assert_eq!(
        host.log_once_started("started hello\nstarted hello\nstarted bonjour\n"),
        "started hello\nstarted hello\nstarted bonjour\n"
    );
    assert_eq!(
        host.sh("systemctl show -p NeedDaemonReload --value nd-demo")
            .stdout,
        "no\n"
    );
    novadock(&["plan", "-i", i, "-p", p]).code(0).run();

    // A unit that is not active after its restart (a oneshot without RemainAfterExit is
    // inactive once done): the rolling restart fails there after `active_timeout`, and the
    // restart stays pending.
    let once = dir.path().join("oneshot.yml");
    std::fs::write(
        &once,
        r#"steps:
  - name: the oneshot unit
    hosts: all
    file:
      path: /etc/systemd/system/nd-oneshot.service
      content: |
        [Service]
        Type=oneshot
        ExecStart=/bin/true
    notify: [nd-oneshot]
handlers:
  nd-oneshot: { serial: 1, active_timeout: 2, service: { name: nd-oneshot, state: restarted } }
"#,
    )
    .unwrap();
    let apply = novadock(&["apply", "-i", i, "-p", once.to_str().unwrap(), "--yes"])
        .code(1)
        .run();
    assert!(
        apply.stderr.contains(
            "[handler] nd-oneshot\n  ✗ sys: failed (one host at a time)\n      on sys: `systemctl restart nd-oneshot; wait until nd-oneshot is active again (at most 2 s); forget the pending handler (it ran)` exited with 1\n"
        ),
        "{apply:?}"
    );
    assert!(
        apply.stderr.contains(
            "      novadock: nd-oneshot is not active 2 s after the handler ran (systemctl is-active: inactive); the rolling restart stops here\n"
        ),
        "{apply:?}"
    );
    assert_eq!(
        host.sh("cat /var/lib/novadock/pending-handlers").stdout,
        "nd-oneshot\n"
    );

    // The bootstrap turns the prefetch timer off on all but the first controller: where the
    // unit does not exist, that changes nothing.
    let off = dir.path().join("off.yml");
    std::fs::write(
        &off,
        "steps:\n  - name: no such timer runs\n    hosts: all\n    service: { name: nd-absent.timer, enabled: false, state: stopped }\n",
    )
    .unwrap();
    let plan = novadock(&["plan", "-i", i, "-p", off.to_str().unwrap()])
        .code(0)
        .run();
    assert_eq!(
        plan.stderr,
        "[1/1] no such timer runs\n  = sys: unchanged — service nd-absent.timer\nPlan: 0 to change, 1 unchanged, 0 failed, 0 skipped on 1 host\n"
    );
}
