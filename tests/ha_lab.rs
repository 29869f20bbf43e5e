#![cfg(feature = "lab-tests")] // a test tier: docs/tests.md
//! The shipped bootstrap on an HA pair of controllers: the lab with ctl2 (`tests/lab/up --ha`:
//! glance-api, nova-api and nova-scheduler on ctl's database and queues). Cloud-wide steps run
//! once, control services restart one controller at a time, the prefetch timer runs on the
//! first controller only, and a cloud-wide step fails over when the first controller is down.

mod common;

use common::lab::{Lab, addr, lines_with, on, os};

/// The host's journal cursor now: what is logged after it is this test's.
fn cursor(host: &str) -> String {
    on(
        host,
        "journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'",
    )
    .trim()
    .to_string()
}

/// The kinds of `restarts`, in order.
fn kinds(restarts: &[(f64, String)]) -> Vec<&str> {
    restarts.iter().map(|(_, k)| k.as_str()).collect()
}

/// systemd's `Stopping`/`Started` messages of nova-scheduler on `host` since `cursor`, as
/// (seconds since the epoch, "Stopping" | "Started"). Lab hosts share the VM's clock.
fn scheduler_restarts(host: &str, cursor: &str) -> Vec<(f64, String)> {
    on(
        host,
        &format!(
            "journalctl -u nova-scheduler --after-cursor '{cursor}' -o short-unix --no-pager | grep -E ' systemd\\[1\\]: (Stopping|Started) ' || true"
        ),
    )
    .lines()
    .map(|l| {
        let mut w = l.split_whitespace();
        let t: f64 = w.next().unwrap().parse().unwrap();
        let what = w.nth(2).unwrap().to_string();
        (t, what)
    })
    .collect()
}

#[test]
fn the_bootstrap_on_a_pair_of_controllers() {
    let lab = Lab::fresh_ha();
    let inv = lab.inventory("lab.yml", "", "");
    let text = std::fs::read_to_string(&inv).unwrap();
    assert!(
        text.contains(&format!(
            "  ctl2: {{ address: {}, groups: [controllers] }}\n",
            addr("ctl2")
        )),
        "{text}"
    );
    let (c1, c2) = (cursor("ctl"), cursor("ctl2"));

    // 1. The plan: config on both controllers, cloud-wide changes once (on ctl), the
    // schedulers' restart one host at a time.
    let plan = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(plan.code, 2, "{plan:?}");
    let e = &plan.stderr;
    for expected in [
        // (release zed on bookworm, epoxy detected on trixie)
        "  ~ ctl, ctl2: would change: extend [filter_scheduler] enabled_filters in /etc/nova/nova.conf (release ",
        "  ~ ctl, ctl2: would change: set [scheduler] enable_isolated_aggregate_filtering in /etc/nova/nova.conf\n",
        "  ~ ctl, ctl2: would run: restart nova-scheduler (one host at a time)\n",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in\n{e}");
    }
    for once in ["create flavor d1.small", "aggregate docker: create"] {
        let lines = lines_with(e, once);
        assert_eq!(lines.len(), 1, "{once:?}: {lines:?}\n{e}");
        assert!(lines[0].starts_with("  ~ ctl: would change: "), "{lines:?}");
    }

    // 2. Apply: one of each flavor and aggregate, both controllers configured.
    let apply = lab.novadock(&["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let mut flavors: Vec<String> = os("flavor list -f value -c Name")
        .lines()
        .filter(|f| f.starts_with("d1."))
        .map(String::from)
        .collect();
    flavors.sort();
    assert_eq!(flavors, ["d1.large", "d1.medium", "d1.small"]);
    assert_eq!(
        os("aggregate list -f value -c Name")
            .lines()
            .filter(|a| *a == "docker")
            .count(),
        1
    );
    for host in ["ctl", "ctl2"] {
        let nova_conf = on(host, "cat /etc/nova/nova.conf");
        assert!(
            nova_conf.contains(",AggregateInstanceExtraSpecsFilter\n")
                && nova_conf.contains("\nenable_isolated_aggregate_filtering = true\n"),
            "{host}: {nova_conf}"
        );
    }

    // 3. The schedulers restarted once each, one after the other: the second stopped only
    // after the first had started again.
    let r1 = scheduler_restarts("ctl", &c1);
    let r2 = scheduler_restarts("ctl2", &c2);
    assert_eq!(kinds(&r1), ["Stopping", "Started"], "ctl: {r1:?}");
    assert_eq!(kinds(&r2), ["Stopping", "Started"], "ctl2: {r2:?}");
    let (first, second) = if r1[0].0 < r2[0].0 {
        (&r1, &r2)
    } else {
        (&r2, &r1)
    };
    assert!(
        first[1].0 <= second[0].0,
        "restarts overlap: ctl {r1:?}, ctl2 {r2:?}"
    );

    // 4. The prefetch timer runs on the first controller only.
    assert_eq!(
        on("ctl", "systemctl is-enabled novadock-prefetch.timer").trim(),
        "enabled"
    );
    // (systemd 252 prints nothing for a unit it does not know, 257 `not-found`)
    let ctl2_timer = on(
        "ctl2",
        "systemctl is-enabled novadock-prefetch.timer 2>/dev/null || true",
    );
    assert!(
        ["", "not-found"].contains(&ctl2_timer.trim()),
        "{ctl2_timer}"
    );

    // 5. Nothing left to do on either controller.
    let again = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(again.code, 0, "{again:?}");

    // 6. With ctl unreachable, the cloud-wide steps run on ctl2 (and what reads ctl's files
    // fails, naming it).
    // (novadock's SSH masters from the runs above would outlive sshd's listener alone; trixie's
    // sessions are `sshd-session` processes)
    on("ctl", "systemctl stop ssh.service; pkill sshd || true");
    let failover = lab.novadock(&["plan", "-i", &inv]);
    on("ctl", "systemctl start ssh.service");
    let e = &failover.stderr;
    let lines: Vec<&str> = e.lines().collect();
    let after = |header: &str| {
        let i = lines
            .iter()
            .position(|l| l.ends_with(header))
            .unwrap_or_else(|| panic!("no step {header:?} in\n{e}"));
        lines[i + 1]
    };
    assert_eq!(
        after("] Docker flavors carry the extra spec the filter matches"),
        "  = ctl2: unchanged — 3 items"
    );
    assert_eq!(
        after("] The docker aggregate holds the Docker compute hosts"),
        "  = ctl2: unchanged — aggregate docker"
    );
    assert!(e.contains("\n✗ ctl: unreachable or unusable\n"), "{e}");
    assert_eq!(failover.code, 1, "{failover:?}");
}
