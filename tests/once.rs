#![cfg(feature = "hosts-tests")] // a test tier: docs/tests.md
//! Scheduling across hosts on real sshd hosts (tests/hosts): `run_once` steps run on one
//! host, with failover to the next when it is unreachable; `serial` handlers roll over the
//! hosts one at a time and stop at the first failure.

mod common;

use common::Hosts;

/// h1 and h2 are controllers, h3 a compute.
fn cloud() -> (Hosts, String) {
    let hosts = Hosts::up(3);
    let groups = |h: &str| match h {
        "h3" => "targets, computes",
        _ => "targets, controllers",
    };
    let inv = hosts.inventory_with("inventory.yml", groups, "");
    let inv = inv.display().to_string();
    (hosts, inv)
}

const ONCE: &str = r#"steps:
  - name: The cloud-wide change
    hosts: targets
    run_once: true
    command: { cmd: "hostname > /etc/once", creates: /etc/once }
  - name: Each host's file
    hosts: targets
    file: { path: /etc/each, content: "x\n" }
  - name: The compute's membership
    hosts: controllers
    run_once: true
    for_hosts: computes
    command: { cmd: "hostname > /etc/member", creates: /etc/member }
"#;

/// Which hosts have `path`, and what it says.
fn holders(hosts: &Hosts, path: &str) -> Vec<(String, String)> {
    hosts
        .names
        .iter()
        .filter(|h| hosts.sh(h, &format!("test -e {path}")).code == 0)
        .map(|h| (h.clone(), hosts.read_str(h, path)))
        .collect()
}

#[test]
fn a_run_once_step_runs_on_one_host_and_fails_over_when_it_is_down() {
    let (hosts, inv) = cloud();
    let pb = hosts.write_file("pb.yml", ONCE);
    let pb = pb.to_str().unwrap();
    let plan = hosts.plan(&inv, pb).code(2).run();
    assert_eq!(
        plan.stderr,
        "[1/3] The cloud-wide change
  ~ h1: would change: run hostname > /etc/once
[2/3] Each host's file
  ~ h1, h2, h3: would change: create /etc/each
      --- /dev/null
      +++ /etc/each
      @@ -0,0 +1 @@
      +x
[3/3] The compute's membership
  ~ h1: would change: run hostname > /etc/member
Plan: 5 to change, 0 unchanged, 0 failed, 0 skipped on 3 hosts
"
    );
    hosts.apply(&inv, pb).code(0).run();
    assert_eq!(holders(&hosts, "/etc/once"), [("h1".into(), "h1\n".into())]);
    assert_eq!(holders(&hosts, "/etc/each").len(), 3);

    // h1 down: the second host of the pattern takes the step over. h1's own steps cannot
    // run, so the apply still fails, naming h1.
    hosts.sh_ok("h1", "rm /etc/once /etc/member");
    hosts.stop("h1");
    let addr = hosts.address("h1");
    let plan = hosts.plan(&inv, pb).code(1).run();
    assert_eq!(
        plan.stderr,
        format!(
            "[1/3] The cloud-wide change
  ~ h2: would change: run hostname > /etc/once
[2/3] Each host's file
  = h2, h3: unchanged — /etc/each
[3/3] The compute's membership
  ~ h2: would change: run hostname > /etc/member
✗ h1: unreachable or unusable
      cannot connect to {addr}: ssh: connect to host {addr} port 22: Connection refused
Plan: 2 to change, 2 unchanged, 1 failed, 0 skipped on 3 hosts (hosts failed: h1)
"
        )
    );
    let apply = hosts.apply(&inv, pb).code(1).run();
    assert!(
        apply.stderr.ends_with(
            "Apply: 2 changed, 2 unchanged, 1 failed, 0 skipped on 3 hosts (hosts failed: h1)\n"
        ),
        "{apply:?}"
    );
    hosts.start("h1");
    assert_eq!(holders(&hosts, "/etc/once"), [("h2".into(), "h2\n".into())]);
    assert_eq!(
        holders(&hosts, "/etc/member"),
        [("h2".into(), "h2\n".into())]
    );

    // --limit on the compute still pulls in the controllers' step for it: once, on h1. A
    // run_once step of the compute's own pattern runs once among the limited hosts.
    hosts.sh_ok("h2", "rm /etc/member");
    let apply = hosts.apply(&inv, pb).args(["--limit", "h3"]).code(0).run();
    assert_eq!(
        apply.stderr,
        "[1/3] The cloud-wide change
  ~ h3: changed: run hostname > /etc/once
[2/3] Each host's file
  = h3: unchanged — /etc/each
[3/3] The compute's membership
  ~ h1: changed: run hostname > /etc/member
Apply: 2 changed, 1 unchanged, 0 failed, 0 skipped on 3 hosts
"
    );
    assert_eq!(
        holders(&hosts, "/etc/member"),
        [("h1".into(), "h1\n".into())]
    );
}

/// Each host's handler writes when it started and ended (seconds since the epoch).
const ROLLING: &str = r#"steps:
  - name: The service's config
    hosts: targets
    file: { path: /etc/svc.conf, content: "v1\n" }
    notify: [svc]
handlers:
  svc:
    serial: 1
    command: { cmd: "date +%s.%N > /var/log/svc-roll; sleep 1; date +%s.%N >> /var/log/svc-roll" }
"#;

#[test]
fn a_serial_handler_restarts_one_host_at_a_time() {
    let hosts = Hosts::up(3);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file("pb.yml", ROLLING);
    let (i, p) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    let plan = hosts.plan(i, p).code(2).run();
    assert!(
        plan.stderr.ends_with(
            "[handler] svc
  ~ h1, h2, h3: would run: run date +%s.%N > /var/log/svc-roll; sleep 1; date +%s.%N >> /var/log/svc-roll (one host at a time)
Plan: 6 to change, 0 unchanged, 0 failed, 0 skipped on 3 hosts
"
        ),
        "{plan:?}"
    );
    let apply = hosts.apply(i, p).code(0).run();
    assert!(
        apply.stderr.contains(
            "[handler] svc
  ~ h1, h2, h3: ran: run date +%s.%N > /var/log/svc-roll; sleep 1; date +%s.%N >> /var/log/svc-roll (one host at a time)
"
        ),
        "{apply:?}"
    );
    // The proof of order: sorted by start, each host started after the previous one ended.
    let mut spans: Vec<(f64, f64, String)> = hosts
        .names
        .iter()
        .map(|h| {
            let log = hosts.read_str(h, "/var/log/svc-roll");
            let t: Vec<f64> = log.lines().map(|l| l.parse().unwrap()).collect();
            assert_eq!(t.len(), 2, "{h}: {log}");
            (t[0], t[1], h.clone())
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "{} restarted while {} was still restarting: {spans:?}",
            w[1].2,
            w[0].2
        );
    }
}

#[test]
fn a_rolling_restart_stops_at_the_first_host_where_it_fails() {
    let hosts = Hosts::up(3);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        &ROLLING.replace(
            "date +%s.%N > /var/log/svc-roll; sleep 1; date +%s.%N >> /var/log/svc-roll",
            "hostname > /var/log/svc-tried; exit 3",
        ),
    );
    let (i, p) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    let apply = hosts.apply(i, p).code(1).run();
    // Whichever host had the first turn failed; the others never ran it.
    let tried = holders(&hosts, "/var/log/svc-tried");
    assert_eq!(tried.len(), 1, "{tried:?}\n{apply:?}");
    let first = &tried[0].0;
    let others: Vec<&str> = hosts
        .names
        .iter()
        .map(String::as_str)
        .filter(|h| h != first)
        .collect();
    assert!(
        apply.stderr.contains(&format!(
            "  ✗ {first}: failed (one host at a time)\n      on {first}: `hostname > /var/log/svc-tried; exit 3; forget the pending handler (it ran)` exited with 3\n"
        )),
        "{apply:?}"
    );
    assert!(
        apply.stderr.contains(&format!(
            "  - {}: skipped (not run: the rolling restart stopped at {first}; still pending for the next apply)\n",
            others.join(", ")
        )),
        "{apply:?}"
    );
    // Still pending everywhere: the next apply tries again (and the config is unchanged).
    for h in &hosts.names {
        assert_eq!(
            hosts.read_str(h, "/var/lib/novadock/pending-handlers"),
            "svc\n"
        );
    }
}

/// An interactive apply runs a run_once step where its plan showed it: with that host down by
/// the time the operator says yes, the step runs nowhere (no other host's facts were shown).
#[test]
fn a_confirmed_plan_keeps_its_run_once_host() {
    use std::io::{Read, Write};
    let (hosts, inv) = cloud();
    let pb = hosts.write_file("pb.yml", ONCE);
    let mut child = hosts
        .novadock(["apply", "-i", &inv, "-p"])
        .arg(&pb)
        .tty_command()
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Apply these changes? [y/N]") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen)
            .replace("\r\n", "\n")
            .contains(
                "[1/3] The cloud-wide change\n  ~ h1: would change: run hostname > /etc/once\n"
            ),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    hosts.stop("h1");
    child.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    out.read_to_end(&mut seen).unwrap();
    let code = child.wait().unwrap().code();
    let seen = String::from_utf8_lossy(&seen).replace("\r\n", "\n");
    assert_eq!(code, Some(1), "{seen}");
    let applied = seen.split("Apply these changes? [y/N]").nth(1).unwrap();
    assert!(
        applied.contains("[2/3] Each host's file\n  ~ h2, h3: changed: create /etc/each\n"),
        "{seen}"
    );
    assert!(!applied.contains("[1/3]"), "{seen}");
    assert!(!applied.contains("[3/3]"), "{seen}");
    hosts.start("h1");
    assert_eq!(holders(&hosts, "/etc/once"), []);
    assert_eq!(holders(&hosts, "/etc/member"), []);
}
