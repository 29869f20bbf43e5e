#![cfg(feature = "hosts-tests")] // a test tier: docs/tests.md
//! End to end: the real binary against real sshd hosts (see tests/common and tests/hosts).

mod common;

use common::{Hosts, Run, repo};
use std::time::{Duration, Instant};

const NOVA: &str = include_str!("data/zed-debian/nova.conf");
const GLANCE: &str = include_str!("data/zed-debian/glance-api.conf");

fn core_playbook() -> String {
    repo()
        .join("tests/data/playbooks/core.yml")
        .display()
        .to_string()
}

/// Every host gets Debian's Zed configs, glance's as root:glance 0640 like the package ships
/// it; h1 and h2 are controllers.
fn zed_hosts(n: usize) -> (Hosts, String) {
    let hosts = Hosts::up(n);
    for h in &hosts.names {
        hosts.put(h, "/etc/nova/nova.conf", NOVA.as_bytes());
        hosts.put(h, "/etc/glance/glance-api.conf", GLANCE.as_bytes());
        hosts.sh_ok(
            h,
            "groupadd -f glance && chown root:glance /etc/glance/glance-api.conf \
             && chmod 0640 /etc/glance/glance-api.conf && mkdir -p /etc/nova/rootwrap.d",
        );
    }
    let groups = |h: &str| match h {
        "h1" | "h2" => "targets, controllers",
        _ => "targets",
    };
    let inv = hosts.inventory_with(
        "inventory.yml",
        groups,
        "vars:\n  glance_default_formats: ami,ari,aki,bare,ovf,ova\n",
    );
    let inv = inv.display().to_string();
    (hosts, inv)
}

const GLANCE_DIFF: &str = "      --- /etc/glance/glance-api.conf
      +++ /etc/glance/glance-api.conf
      @@ -5328,6 +5328,7 @@
       # value)
       # Deprecated group/name - [DEFAULT]/container_formats
       #container_formats = ami,ari,aki,bare,ovf,ova,docker,compressed
      +container_formats = ami,ari,aki,bare,ovf,ova,docker
       
       # Supported values for the 'disk_format' image attribute (list value)
       # Deprecated group/name - [DEFAULT]/disk_formats
";

const NOVA_DIFF: &str = "      --- /etc/nova/nova.conf
      +++ /etc/nova/nova.conf
      @@ -3467,6 +3467,7 @@
       # - ``[filter_scheduler] available_filters``
       #  (list value)
       #enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter
      +enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter
       
       #
       # Weighers that the scheduler will use.
";

fn filters_diff(host: &str) -> String {
    format!(
        "      --- /dev/null
      +++ /etc/nova/rootwrap.d/docker.filters
      @@ -0,0 +1,4 @@
      +# nova-rootwrap command filters for the Docker driver on {host}
      +# (rendered by novadock; do not edit by hand)
      +[Filters]
      +ln: CommandFilter, /bin/ln, root
"
    )
}

fn expected_run(verb: &str, ran: &str, head: &str) -> String {
    format!(
        "[1/3] Glance accepts the docker container format
  ~ h1, h2: {verb}: extend [image_format] container_formats in /etc/glance/glance-api.conf
{GLANCE_DIFF}[2/3] Nova's scheduler runs AggregateInstanceExtraSpecsFilter
  ~ h1, h2: {verb}: extend [filter_scheduler] enabled_filters in /etc/nova/nova.conf
{NOVA_DIFF}[3/3] Rootwrap filters for the Docker driver
  ~ h1: {verb}: create /etc/nova/rootwrap.d/docker.filters
{}  ~ h2: {verb}: create /etc/nova/rootwrap.d/docker.filters
{}  ~ h3: {verb}: create /etc/nova/rootwrap.d/docker.filters
{}[handler] glance-api
  ~ h1, h2: {ran}: run echo glance-api restarted >> /var/log/nd-handlers.log
[handler] nova-scheduler
  ~ h1, h2: {ran}: run echo nova-scheduler restarted >> /var/log/nd-handlers.log
{head}: 11 {}, 0 unchanged, 0 failed, 0 skipped on 3 hosts
",
        filters_diff("h1"),
        filters_diff("h2"),
        filters_diff("h3"),
        if head == "Plan" {
            "to change"
        } else {
            "changed"
        },
    )
}

const CONVERGED: &str = "\
[1/3] Glance accepts the docker container format
  = h1, h2: unchanged — [image_format] container_formats in /etc/glance/glance-api.conf
[2/3] Nova's scheduler runs AggregateInstanceExtraSpecsFilter
  = h1, h2: unchanged — [filter_scheduler] enabled_filters in /etc/nova/nova.conf
[3/3] Rootwrap filters for the Docker driver
  = h1, h2, h3: unchanged — /etc/nova/rootwrap.d/docker.filters
Plan: 0 to change, 7 unchanged, 0 failed, 0 skipped on 3 hosts
";

#[test]
fn plan_apply_plan_converges_and_plan_changes_nothing() {
    let (hosts, inv) = zed_hosts(3);
    let pb = core_playbook();
    let before: Vec<String> = hosts.names.iter().map(|h| hosts.tree_hash(h)).collect();

    let plan = hosts.plan(&inv, &pb).code(2).run();
    assert_eq!(plan.stdout, "");
    assert_eq!(
        plan.stderr,
        expected_run("would change", "would run", "Plan")
    );
    let after: Vec<String> = hosts.names.iter().map(|h| hosts.tree_hash(h)).collect();
    assert_eq!(before, after, "plan modified a host");

    let apply = hosts.apply(&inv, &pb).code(0).run();
    assert_eq!(apply.stderr, expected_run("changed", "ran", "Apply"));

    // Only the targeted lines changed, owner/group/mode kept, handlers ran once.
    let nova = hosts.read_str("h1", "/etc/nova/nova.conf");
    let expected = NOVA.replacen(
        "#enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter\n",
        "#enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter\nenabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter\n",
        1,
    );
    assert_eq!(nova, expected);
    assert_eq!(
        hosts.sh_ok("h2", "stat -c '%U:%G %a' /etc/glance/glance-api.conf"),
        "root:glance 640\n"
    );
    for h in ["h1", "h2"] {
        assert_eq!(
            hosts.read_str(h, "/var/log/nd-handlers.log"),
            "glance-api restarted\nnova-scheduler restarted\n"
        );
    }
    assert_eq!(hosts.sh("h3", "test -e /var/log/nd-handlers.log").code, 1);
    // Backups live outside the config directories.
    assert_eq!(
        hosts.sh_ok("h1", "ls /etc/nova | sort"),
        "nova.conf\nrootwrap.d\n"
    );
    let backup = hosts.sh_ok(
        "h1",
        "find /var/backups/novadock -path '*/etc/nova/nova.conf'",
    );
    assert_eq!(backup.lines().count(), 1, "{backup}");
    assert_eq!(
        hosts.read_str("h1", backup.trim()),
        NOVA,
        "the backup is the previous version"
    );

    let again = hosts.plan(&inv, &pb).code(0).run();
    assert_eq!(again.stderr, CONVERGED);
    hosts.apply(&inv, &pb).code(0).run();
    for h in ["h1", "h2"] {
        assert_eq!(
            hosts
                .read_str(h, "/var/log/nd-handlers.log")
                .lines()
                .count(),
            2,
            "a no-op apply ran handlers again"
        );
    }
}

#[test]
fn json_output_is_one_document_on_stdout() {
    let (hosts, inv) = zed_hosts(3);
    let pb = core_playbook();
    let plan = hosts.plan(&inv, &pb).arg("--json").code(2).run();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).expect("stdout is JSON");
    assert_eq!(
        v["summary"],
        serde_json::json!({"changed": 11, "unchanged": 0, "failed": 0, "skipped": 0, "hosts": 3, "failed_hosts": 0})
    );
    let h1 = &v["hosts"]["h1"]["steps"];
    assert_eq!(h1[0]["name"], "Glance accepts the docker container format");
    assert_eq!(h1[0]["status"], "changed");
    assert!(
        h1[0]["diff"]
            .as_str()
            .unwrap()
            .contains("+container_formats = ami,ari,aki,bare,ovf,ova,docker\n")
    );
    assert_eq!(v["hosts"]["h3"]["steps"].as_array().unwrap().len(), 1);
    assert_eq!(v["hosts"]["h1"]["handlers"][0]["status"], "changed");
    // First converge: facts, then every change and handler in one script, which takes the
    // apply lock itself.
    let apply = hosts.apply(&inv, &pb).arg("--json").code(0).run();
    let v: serde_json::Value = serde_json::from_str(&apply.stdout).unwrap();
    for h in &hosts.names {
        assert_eq!(v["hosts"][h]["round_trips"], 2, "{h}: {apply:?}");
    }
    // No-op run: one round trip per host (the facts), masters reused.
    let noop = hosts.apply(&inv, &pb).arg("--json").run();
    let v: serde_json::Value = serde_json::from_str(&noop.stdout).unwrap();
    for h in &hosts.names {
        assert_eq!(v["hosts"][h]["round_trips"], 1, "{h}: {noop:?}");
    }
    assert_eq!(v["summary"]["changed"], 0);
}

#[test]
fn a_down_host_is_reported_and_the_others_are_applied() {
    let (hosts, inv) = zed_hosts(3);
    let pb = core_playbook();
    hosts.stop("h2");
    let apply = hosts.apply(&inv, &pb).code(1).run();
    let addr = hosts.address("h2");
    assert!(
        apply.stderr.contains(&format!(
            "✗ h2: unreachable or unusable\n      cannot connect to {addr}: ssh: connect to host {addr} port 22: Connection refused\n"
        )),
        "{apply:?}"
    );
    assert!(
        apply.stderr.ends_with(
            "Apply: 6 changed, 0 unchanged, 1 failed, 0 skipped on 3 hosts (hosts failed: h2)\n"
        ),
        "{apply:?}"
    );
    assert!(
        hosts
            .read_str("h1", "/etc/nova/nova.conf")
            .contains("\nenabled_filters = ")
    );
    assert!(
        hosts
            .read_str("h3", "/etc/nova/rootwrap.d/docker.filters")
            .contains("on h3")
    );
    hosts.start("h2");
    let apply = hosts.apply(&inv, &pb).code(0).run();
    assert!(
        apply
            .stderr
            .ends_with("Apply: 5 changed, 4 unchanged, 0 failed, 0 skipped on 3 hosts\n"),
        "{apply:?}"
    );
}

#[test]
fn fail_fast_stops_the_other_hosts() {
    let hosts = Hosts::up(2);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: fails on h1\n    hosts: h1\n    command: { cmd: 'exit 7' }\n  - name: slow\n    hosts: all\n    command: { cmd: 'sleep 1' }\n  - name: after\n    hosts: all\n    file: { path: /etc/after, content: x }\n",
    );
    let r = hosts.apply(&inv, &pb).arg("--fail-fast").code(1).run();
    assert!(r.stderr.contains("on h1: `exit 7` exited with 7"), "{r:?}");
    assert_eq!(hosts.sh("h1", "test -e /etc/after").code, 1);
    assert_eq!(hosts.sh("h2", "test -e /etc/after").code, 1, "{r:?}");
}

#[test]
fn hostile_values_end_up_literally_and_nothing_runs() {
    let hosts = Hosts::up(1);
    let evil = [
        "'; touch /tmp/pwned; '",
        "$(touch /tmp/pwned2)",
        "`touch /tmp/pwned3`",
        "a\nb; touch /tmp/pwned4",
        "x'; touch pwned5; '$(id)",
    ];
    let inv = hosts.inventory(
        "inventory.yml",
        &format!(
            "vars:\n  e1: {:?}\n  e2: {:?}\n  e3: {:?}\n  e4: {:?}\n  e5: {:?}\n",
            evil[0], evil[1], evil[2], evil[3], evil[4]
        ),
    );
    let pb = hosts.write_file(
        "pb.yml",
        r#"steps:
  - name: ini value
    hosts: all
    ini: { path: /etc/evil.conf, section: DEFAULT, option: x, value: "{{ e1 }}{{ e2 }}{{ e3 }}" }
  - name: file content and path
    hosts: all
    file: { path: "/etc/{{ e5 }}", content: "{{ e1 }}\n{{ e2 }}\n{{ e3 }}\n{{ e4 }}\n" }
  - name: command
    hosts: all
    command: { cmd: "printf '%s|' {{ e1 }} {{ e2 }} {{ e3 }} {{ e4 }} > /etc/evil.out", creates: "/etc/{{ e2 }}" }
  - name: user groups
    hosts: all
    user_groups: { user: "{{ e1 }}", groups: ["{{ e2 }}"] }
"#,
    );
    let r = hosts.apply(&inv, &pb).run();
    // The last step fails (no such user) — with a clean error, not an injection.
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("usermod"), "{r:?}");
    assert_eq!(
        hosts.read_str("h1", "/etc/evil.conf"),
        format!("[DEFAULT]\nx = {}{}{}\n", evil[0], evil[1], evil[2])
    );
    assert_eq!(
        hosts.read_str("h1", &format!("/etc/{}", evil[4])),
        format!("{}\n{}\n{}\n{}\n", evil[0], evil[1], evil[2], evil[3])
    );
    assert_eq!(
        hosts.read_str("h1", "/etc/evil.out"),
        format!("{}|{}|{}|{}|", evil[0], evil[1], evil[2], evil[3])
    );
    let pwned = hosts.sh("h1", "ls /tmp/pwned* /pwned* /root/pwned* 2>/dev/null");
    assert_eq!(pwned.stdout, "", "a hostile value ran: {pwned:?}");
    assert!(!std::path::Path::new("/tmp/pwned").exists());
}

#[test]
fn a_second_concurrent_apply_is_refused_naming_the_holder() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: slow change\n    hosts: all\n    command: { cmd: 'sleep 4; touch /etc/slow-done', creates: /etc/slow-done }\n",
    );
    let first = hosts.apply(&inv, &pb).command().spawn().unwrap();
    // Wait until the first run holds the lock on the host.
    let t = Instant::now();
    loop {
        let holder = hosts.sh("h1", "cat /run/novadock/lock 2>/dev/null");
        if holder.stdout.contains(&format!("pid {}", first.id())) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = hosts.apply(&inv, &pb).code(1).run();
    let msg = "h1 is locked by another apply: novadock run ";
    assert!(second.stderr.contains(msg), "{second:?}");
    assert!(
        second.stderr.contains(&format!("(pid {} on ", first.id())),
        "{second:?}"
    );
    let first = Run::from(first.wait_with_output().unwrap());
    assert_eq!(first.code, 0, "{first:?}");
}

#[test]
fn secrets_never_appear_in_any_output() {
    let hosts = Hosts::up(1);
    let secret = "Zq8-very-secret-4711";
    let inv = hosts.inventory(
        "inventory.yml",
        "vars:\n  db_password: { secret_env: ND_TEST_DB_PASSWORD }\n",
    );
    let pb = hosts.write_file(
        "pb.yml",
        r#"steps:
  - name: database connection
    hosts: all
    ini: { path: /etc/nova/nova.conf, section: database, option: connection, value: "mysql+pymysql://nova:{{ db_password }}@127.0.0.1/nova" }
  - name: an option not named like a secret
    hosts: all
    ini: { path: /etc/nova/nova.conf, section: api, option: motd, value: "{{ db_password }}" }
  - name: a file with it
    hosts: all
    file: { path: /etc/nova/secret.txt, content: "pw={{ db_password }}\n", mode: "0600" }
  - name: a failing command with it
    hosts: all
    command: { cmd: "echo {{ db_password }}; echo {{ db_password }} >&2; exit 3" }
"#,
    );
    hosts.sh_ok("h1", "mkdir -p /etc/nova");
    let run = |args: &[&str]| {
        hosts
            .novadock(args)
            .env("ND_TEST_DB_PASSWORD", secret)
            .run()
    };
    let (i, p) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    for args in [
        vec!["plan", "-i", i, "-p", p],
        vec!["plan", "-i", i, "-p", p, "--json"],
        vec!["apply", "-i", i, "-p", p, "--yes", "--json"],
        vec!["plan", "-i", i, "-p", p, "--json"],
    ] {
        let r = run(&args);
        assert!(
            !r.all().contains(secret),
            "secret leaked by {args:?}: {r:?}"
        );
        assert!(r.all().contains("********"), "{args:?}: {r:?}");
    }
    // It did reach the host.
    assert_eq!(
        hosts.read_str("h1", "/etc/nova/secret.txt"),
        format!("pw={secret}\n")
    );
    assert_eq!(
        hosts.sh_ok("h1", "stat -c %a /etc/nova/secret.txt"),
        "600\n"
    );
}

#[test]
fn strict_host_key_checking_by_default() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/x, content: x }\n",
    );
    std::fs::write(hosts.path("known_hosts"), "").unwrap();
    let r = hosts.plan(&inv, &pb).code(1).run();
    assert!(r.stderr.contains("Host key verification failed"), "{r:?}");
    // --persist 0: no master survives to vouch for the host in the next run.
    hosts
        .plan(&inv, &pb)
        .args(["--accept-new-host-keys", "--persist", "0"])
        .code(2)
        .run();
    assert!(
        std::fs::read_to_string(hosts.path("known_hosts"))
            .unwrap()
            .contains("ssh-ed25519")
    );
    // A changed key is refused even with --accept-new-host-keys.
    // (the client key stands in for an impostor's host key)
    let impostor = std::fs::read_to_string(hosts.path("id_ed25519.pub")).unwrap();
    let key: Vec<&str> = impostor.split_whitespace().take(2).collect();
    std::fs::write(
        hosts.path("known_hosts"),
        format!("{} {} {}\n", hosts.address("h1"), key[0], key[1]),
    )
    .unwrap();
    let r = hosts
        .plan(&inv, &pb)
        .args(["--accept-new-host-keys", "--persist", "0"])
        .code(1)
        .run();
    assert!(
        r.stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{r:?}"
    );
}

#[test]
fn limit_and_local_hosts() {
    let hosts = Hosts::up(2);
    let scratch = tempfile::tempdir().unwrap();
    let inv = hosts.inventory("inventory.yml", "");
    let text = std::fs::read_to_string(&inv)
        .unwrap()
        .replace(
            "hosts:\n",
            "hosts:\n  here: { address: local, groups: [targets], vars: { dir: SCRATCH } }\n",
        )
        .replace("SCRATCH", &scratch.path().display().to_string());
    std::fs::write(&inv, text).unwrap();
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: targets\n    file: { path: \"{{ dir | default('/etc') }}/{{ host.name }}\", content: \"{{ host.address }}\\n\" }\n",
    );
    hosts
        .apply(&inv, &pb)
        .args(["--limit", "here,h2"])
        .code(0)
        .run();
    assert_eq!(
        std::fs::read_to_string(scratch.path().join("here")).unwrap(),
        "local\n"
    );
    assert!(
        !scratch.path().join("h2").exists(),
        "h2 wrote into the VM's filesystem"
    );
    assert_eq!(
        hosts.read_str("h2", "/etc/h2"),
        format!("{}\n", hosts.address("h2"))
    );
    assert_eq!(hosts.sh("h1", "test -e /etc/h1").code, 1);
    assert!(!std::path::Path::new("/etc/h2").exists());
    let r = hosts.plan(&inv, &pb).args(["--limit", "nope"]).run();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "error: --limit nope\n  Caused by: unknown host or group `nope`\n"
    );
}

/// SIGKILL novadock at different moments while it writes 2 MB files to several hosts: every
/// file is always the old or the new version, never a mix or truncated, and the next apply
/// converges and runs the handler that the killed run left pending.
#[test]
fn an_apply_killed_mid_run_leaves_old_or_new_and_the_pending_restart_runs() {
    let hosts = Hosts::up(4);
    let files = ["a", "b", "c", "d"];
    // One step per file (a step manages one path), then a slow step, then the handler.
    let mut pb = String::from("steps:\n");
    for f in files {
        pb.push_str(&format!(
            "  - name: big file {f}\n    hosts: all\n    file: {{ path: /etc/big/{f}, content: \"{{{{ ('v' ~ version ~ '-{f}.') * 200000 }}}}\" }}\n    notify: [restart]\n"
        ));
    }
    pb.push_str(
        r#"  - name: slow step after the writes
    hosts: all
    command: { cmd: "echo $$ > /run/nd-script.pid; sleep 8; touch /etc/big/slept-{{ version }}", creates: "/etc/big/slept-{{ version }}" }
handlers:
  restart: { command: { cmd: "echo {{ version }} >> /var/log/restarts.log" } }
"#,
    );
    let pb = hosts.write_file("pb.yml", &pb);
    for h in &hosts.names {
        hosts.sh_ok(h, "mkdir -p /etc/big");
    }
    let content = |v: u32, f: &str| format!("v{v}-{f}.").repeat(200_000);
    let pbs = pb.to_str().unwrap().to_string();

    // What each file held before the current run: the "old" it may still hold.
    let mut old: std::collections::HashMap<(String, &str), Option<String>> = Default::default();
    for h in &hosts.names {
        for f in files {
            old.insert((h.clone(), f), None);
        }
    }
    let mut version = 0;
    // Kills at fixed delays land anywhere (connecting, writing, between steps); the last one
    // waits until every host has written all files, i.e. lands in the slow step, before the
    // handler: the case the pending-handler record exists for.
    for delay_ms in [150u64, 300, 600, 1000, 0] {
        version += 1;
        let inv = hosts.inventory("inventory.yml", &format!("vars:\n  version: {version}\n"));
        let mut child = hosts
            .apply(&inv, &pbs)
            .command()
            .stderr(std::fs::File::create(hosts.path(&format!("killed-{version}.log"))).unwrap())
            .spawn()
            .unwrap();
        if delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(delay_ms));
        } else {
            let t = Instant::now();
            // Writes are atomic renames: a file that starts new is new.
            let want = format!("v{version}-d.");
            while !hosts
                .names
                .iter()
                .all(|h| hosts.sh(h, "head -c 5 /etc/big/d 2>/dev/null").stdout == want)
            {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the files were never written"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Let remote scripts that were already fully sent reach the slow step.
        std::thread::sleep(Duration::from_millis(300));
        if delay_ms == 0 {
            // The script the killed run sent still runs, and holds the apply lock.
            let r = hosts.apply(&inv, &pbs).code(1).run();
            assert!(
                r.stderr.contains("h1 is locked by another apply: novadock run ")
                    && r.stderr.contains("hint: that novadock process has ended, but the changes it sent are still running on h1"),
                "{r:?}"
            );
        }
        // Then the host loses it too (a crash, sshd killed): the case the pending-handler
        // record exists for.
        for h in &hosts.names {
            let t = Instant::now();
            loop {
                let r = hosts.sh(
                    h,
                    "if [ ! -e /run/novadock/lock ] || flock -n /run/novadock/lock true; then echo free; \
                     elif [ -s /run/nd-script.pid ]; then p=$(cat /run/nd-script.pid); rm -f /run/nd-script.pid; \
                     kill -STOP $p; pkill -9 -P $p; kill -9 $p; echo killed; \
                     else echo busy; fi",
                );
                if r.stdout.trim() != "busy" {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "{h}: the killed run's script never reached the slow step"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        for h in &hosts.names {
            for f in files {
                let path = format!("/etc/big/{f}");
                let r = hosts.sh(h, &format!("cat {path}"));
                let got = (r.code == 0).then_some(r.stdout);
                let before = old.insert((h.clone(), f), got.clone()).unwrap();
                let ok = got.as_deref() == Some(content(version, f).as_str()) || got == before;
                let got = got.unwrap_or_default();
                assert!(
                    ok,
                    "{h}:{path} after a kill at {delay_ms} ms is neither old nor new ({} bytes)",
                    got.len()
                );
            }
        }
    }
    // The last kill came while the slow step ran: files new, handler not yet run.
    let pending: Vec<String> = hosts
        .names
        .iter()
        .map(|h| {
            hosts
                .sh(h, "cat /var/lib/novadock/pending-handlers 2>/dev/null")
                .stdout
        })
        .collect();
    assert!(
        pending.iter().all(|p| p == "restart\n"),
        "no host was left with a pending restart: {pending:?}\nlast killed run said:\n{}",
        std::fs::read_to_string(hosts.path(&format!("killed-{version}.log"))).unwrap()
    );
    let inv = hosts.inventory("inventory.yml", &format!("vars:\n  version: {version}\n"));
    hosts.apply(&inv, &pbs).code(0).run();
    for h in &hosts.names {
        for f in files {
            assert_eq!(
                hosts.read_str(h, &format!("/etc/big/{f}")),
                content(version, f)
            );
        }
        let log = hosts.read_str(h, "/var/log/restarts.log");
        assert_eq!(
            log.lines().last(),
            Some(version.to_string().as_str()),
            "{h}: the restart for the last change never ran: {log:?}"
        );
        assert_eq!(
            hosts.sh(h, "cat /var/lib/novadock/pending-handlers").stdout,
            "",
            "{h}: pending handlers left behind"
        );
    }
    hosts.plan(&inv, &pbs).code(0).run();
}

#[test]
fn every_step_kind_converges_and_is_idempotent() {
    let hosts = Hosts::up(1);
    hosts.sh_ok(
        "h1",
        "groupadd -f docker && groupadd -f libvirt && (id nova >/dev/null 2>&1 || useradd -M -G libvirt nova) \
         && mkdir -p /etc/containerd && printf '# containerd\\nversion = 2\\n\\n[plugins.\"io.containerd.grpc.v1.cri\"]\\n  sandbox_image = \"pause:3.6\"   # pinned\\n' > /etc/containerd/config.toml \
         && echo stale > /etc/obsolete.conf",
    );
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        r#"steps:
  - name: directory
    hosts: all
    file: { path: /etc/novadock-test, state: directory, mode: "0750" }
  - name: content
    hosts: all
    file: { path: /etc/novadock-test/a.conf, content: "a = 1\n", owner: root, group: docker, mode: "0640" }
  - name: symlink
    hosts: all
    file: { path: /etc/novadock-test/current, state: link, target: /etc/novadock-test/a.conf }
  - name: gone
    hosts: all
    file: { path: /etc/obsolete.conf, state: absent }
  - name: toml
    hosts: all
    toml: { path: /etc/containerd/config.toml, key: 'plugins."io.containerd.grpc.v1.cri".sandbox_image', value: "pause:3.9" }
  - name: groups, append-only
    hosts: all
    user_groups: { user: nova, groups: [docker] }
  - name: guarded command
    hosts: all
    command: { cmd: "echo ran >> /etc/novadock-test/ran", unless: "grep -q ran /etc/novadock-test/ran" }
  - name: package
    hosts: all
    package: { names: [sl] }
"#,
    );
    let apply = hosts.apply(&inv, &pb).code(0).run();
    assert!(
        apply
            .stderr
            .ends_with("Apply: 8 changed, 0 unchanged, 0 failed, 0 skipped on 1 host\n"),
        "{apply:?}"
    );
    assert_eq!(
        hosts.sh_ok(
            "h1",
            "stat -c '%a' /etc/novadock-test; stat -c '%U:%G %a' /etc/novadock-test/a.conf; readlink /etc/novadock-test/current; test -e /etc/obsolete.conf || echo gone; id -nG nova; cat /etc/novadock-test/ran; dpkg-query -W -f='${db:Status-Abbrev}\\n' sl"
        ),
        "750\nroot:docker 640\n/etc/novadock-test/a.conf\ngone\nnova docker libvirt\nran\nii \n"
    );
    assert_eq!(
        hosts.read_str("h1", "/etc/containerd/config.toml"),
        "# containerd\nversion = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.9\"   # pinned\n"
    );
    let plan = hosts.plan(&inv, &pb).code(0).run();
    assert!(
        plan.stderr
            .ends_with("Plan: 0 to change, 8 unchanged, 0 failed, 0 skipped on 1 host\n"),
        "{plan:?}"
    );
    // Drift in attributes only is seen and fixed without rewriting the content.
    hosts.sh_ok("h1", "chmod 0644 /etc/novadock-test/a.conf");
    let plan = hosts.plan(&inv, &pb).code(2).run();
    assert!(
        plan.stderr
            .contains("  ~ h1: would change: set owner root, group docker, mode 0640 on /etc/novadock-test/a.conf\n"),
        "{plan:?}"
    );
}

#[test]
fn ssh_masters_outlive_the_run_and_are_resumed() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/x, content: x }\n",
    );
    let master_pid = || {
        let dir = hosts.runtime.path().join("novadock");
        let Some(sock) = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_none())
        else {
            return "no control socket".to_string();
        };
        let out = std::process::Command::new("ssh")
            .arg("-S")
            .arg(&sock)
            .args(["-O", "check", "x"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    hosts.plan(&inv, &pb).code(2).run();
    let first = master_pid();
    assert!(first.starts_with("Master running (pid="), "{first}");
    hosts.plan(&inv, &pb).code(2).run();
    assert_eq!(master_pid(), first, "the second run started a new master");
    hosts.plan(&inv, &pb).args(["--persist", "0"]).code(2).run();
    assert!(
        !master_pid().starts_with("Master running"),
        "--persist 0 left the master running"
    );
}

/// A host that waits longer than its master's ControlPersist is still reachable afterwards:
/// in the lab, the computes wait for the controller's whole run (they authorize its key), and
/// their masters had exited by the time they wrote their first file.
#[test]
fn a_host_idle_longer_than_its_masters_persistence_is_still_reachable() {
    let hosts = Hosts::up(2);
    let inv = hosts.inventory("inventory.yml", "");
    let keys = hosts.path("authorized_keys");
    let pb = hosts.write_file(
        "pb.yml",
        &r#"steps:
  - name: a key on h2, slowly
    hosts: h2
    command: { cmd: "sleep 4; ssh-keygen -q -t ed25519 -N '' -C nd-test@h2 -f /etc/nd-test-key", creates: /etc/nd-test-key }
  - name: h2's key may log into h1
    hosts: h1
    authorized_key: { user: root, path: KEYS, key_from: { host: h2, path: /etc/nd-test-key.pub } }
  - name: then a file on h1
    hosts: h1
    file: { path: /etc/x, content: x }
"#
        .replace("KEYS", &keys.display().to_string()),
    );
    let r = hosts
        .apply(&inv, &pb)
        .args(["--persist", "1"])
        .env("NO_COLOR", "1")
        .run();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("~ h1: changed: create /etc/x"), "{r:?}");
    assert_eq!(hosts.sh_ok("h1", "cat /etc/x"), "x");
}

/// Interactive apply on a terminal (a real pty from `script`): the plan is shown, the answer
/// read; a file that changes while the question is open is not overwritten.
#[test]
fn interactive_apply_asks_and_applies_exactly_the_plan_shown() {
    use std::io::{Read, Write};
    let hosts = Hosts::up(2);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/asked, content: \"new\\n\" }\n",
    );
    for h in &hosts.names {
        hosts.put(h, "/etc/asked", b"old\n");
    }
    let answer = |reply: &str, meddle: bool| -> (i32, String) {
        let mut child = hosts
            .novadock(["apply", "-i"])
            .arg(&inv)
            .arg("-p")
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
        if meddle {
            hosts.put("h2", "/etc/asked", b"edited by someone else\n");
        }
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(reply.as_bytes())
            .unwrap();
        out.read_to_end(&mut seen).unwrap();
        let status = child.wait().unwrap();
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&seen).replace("\r\n", "\n"),
        )
    };
    let (code, out) = answer("n\n", false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("  ~ h1, h2: would change: edit /etc/asked\n"),
        "{out}"
    );
    assert!(
        out.contains("error: apply cancelled; nothing was changed"),
        "{out}"
    );
    assert_eq!(hosts.read_str("h1", "/etc/asked"), "old\n");

    let (code, out) = answer("y\n", true);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("  ~ h1: changed: edit /etc/asked\n"), "{out}");
    assert!(
        out.contains("novadock: /etc/asked changed since it was planned; run plan again"),
        "{out}"
    );
    assert_eq!(hosts.read_str("h1", "/etc/asked"), "new\n");
    assert_eq!(
        hosts.read_str("h2", "/etc/asked"),
        "edited by someone else\n"
    );
}

/// A non-root SSH user works through `sudo -n`; one whose sudo wants a password gets a clear
/// error naming the fix.
#[test]
fn non_root_users_go_through_sudo() {
    let hosts = Hosts::up(1);
    hosts.sh_ok(
        "h1",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo >/dev/null \
         && for u in deploy nopw; do useradd -m -s /bin/sh $u && usermod -p '*' $u; done \
         && echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy \
         && echo 'nopw ALL=(ALL) ALL' > /etc/sudoers.d/nopw",
    );
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: root-owned file\n    hosts: all\n    file: { path: /etc/by-sudo, content: \"x\\n\", mode: \"0600\" }\n",
    );
    let p = pb.to_str().unwrap();
    let inv = hosts.inventory("deploy.yml", "").display().to_string();
    std::fs::write(
        &inv,
        std::fs::read_to_string(&inv)
            .unwrap()
            .replace("user: root", "user: deploy"),
    )
    .unwrap();
    hosts.apply(&inv, p).code(0).run();
    assert_eq!(
        hosts.sh_ok("h1", "stat -c '%U %a' /etc/by-sudo"),
        "root 600\n"
    );
    let inv = hosts.inventory("nopw.yml", "").display().to_string();
    std::fs::write(
        &inv,
        std::fs::read_to_string(&inv)
            .unwrap()
            .replace("user: root", "user: nopw"),
    )
    .unwrap();
    let r = hosts.plan(&inv, p).code(1).run();
    assert!(
        r.stderr
            .contains("nopw cannot run sudo without a password on h1"),
        "{r:?}"
    );
}

#[test]
fn backups_keep_the_last_five_runs() {
    let hosts = Hosts::up(1);
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/rotated.conf, content: \"v{{ v }}\\n\" }\n",
    );
    for v in 0..8 {
        let inv = hosts.inventory("inventory.yml", &format!("vars:\n  v: {v}\n"));
        hosts.apply(&inv, &pb).code(0).run();
    }
    // Runs 1..7 had a previous version to back up; the newest five stay.
    let kept = hosts.sh_ok(
        "h1",
        "cat $(ls -d /var/backups/novadock/*/etc/rotated.conf | sort)",
    );
    assert_eq!(kept, "v2\nv3\nv4\nv5\nv6\n");
    assert_eq!(
        hosts.sh_ok("h1", "stat -c %a /var/backups/novadock"),
        "700\n"
    );
}

/// Changes go to a host in one script; when one fails, the report says which, the changes
/// after it did not run, and the handlers stay pending for the next apply.
#[test]
fn a_failure_inside_a_batch_is_attributed_to_its_step() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        r#"steps:
  - name: first file
    hosts: all
    file: { path: /etc/batch-1, content: "1\n" }
    notify: [h]
  - name: a command that fails
    hosts: all
    command: { cmd: "echo partial output; echo broken >&2; exit 3" }
  - name: second file
    hosts: all
    file: { path: /etc/batch-2, content: "2\n" }
handlers:
  h: { command: { cmd: "echo ran >> /etc/batch-handler" } }
"#,
    );
    let r = hosts.apply(&inv, &pb).code(1).run();
    assert_eq!(
        r.stderr,
        "[1/3] first file
  ~ h1: changed: create /etc/batch-1
      --- /dev/null
      +++ /etc/batch-1
      @@ -0,0 +1 @@
      +1
[2/3] a command that fails
  ✗ h1: failed
      on h1: `echo partial output; echo broken >&2; exit 3` exited with 3
      stdout:
      partial output
      stderr:
      broken
[3/3] second file
  - h1: skipped (not run: an earlier change failed on this host)
[handler] h
  - h1: skipped (not run after a failed change; still pending for the next apply)
Apply: 1 changed, 0 unchanged, 1 failed, 2 skipped on 1 host (hosts failed: h1)
"
    );
    assert_eq!(hosts.read_str("h1", "/etc/batch-1"), "1\n");
    assert_eq!(hosts.sh("h1", "test -e /etc/batch-2").code, 1);
    assert_eq!(
        hosts.read_str("h1", "/var/lib/novadock/pending-handlers"),
        "h\n"
    );
}

#[test]
fn a_key_made_on_one_host_is_authorized_and_pinned_on_another_in_one_apply() {
    // h2 makes a key that h1 authorizes, and pins h1's host key: h1 waits for h2's run. With
    // --forks 1 and h1 first, h1 must give its slot back while it waits, or this hangs.
    let hosts = Hosts::up(2);
    let inv = hosts.inventory("inventory.yml", "");
    // The test hosts' sshd reads this file (tests/hosts/up), not ~/.ssh/authorized_keys.
    let keys = hosts.path("authorized_keys");
    let pb = hosts.write_file(
        "pb.yml",
        &r#"steps:
  - name: a key on h2
    hosts: h2
    command: { cmd: "ssh-keygen -q -t ed25519 -N '' -C nd-test@h2 -f /etc/nd-test-key", creates: /etc/nd-test-key }
  - name: h1's host keys pinned on h2
    hosts: h2
    known_hosts: { path: /etc/nd-test-known, hosts: h1 }
  - name: h2's key may log into h1
    hosts: h1
    authorized_key: { user: root, path: KEYS, key_from: { host: h2, path: /etc/nd-test-key.pub }, options: restrict }
"#
        .replace("KEYS", &keys.display().to_string()),
    );
    let plan = hosts.plan(&inv, &pb).args(["--forks", "1"]).code(2).run();
    assert!(
        plan.stderr.contains(
            &format!("  ~ h1: would change: authorize the key h2:/etc/nd-test-key.pub in {} (created in this run)\n", keys.display())
        ),
        "{plan:?}"
    );
    let before = std::fs::read_to_string(&keys).unwrap();
    hosts.apply(&inv, &pb).args(["--forks", "1"]).code(0).run();
    let after = std::fs::read_to_string(&keys).unwrap();
    assert!(after.starts_with(&before), "lines were lost:\n{after}");
    assert!(
        after.ends_with(" nd-test@h2\n") && after.contains("\nrestrict ssh-ed25519 "),
        "{after}"
    );
    // The proof: from h2, with that key and only the pinned host keys, h1 answers.
    let addr = hosts.address("h1");
    assert_eq!(
        hosts.sh_ok(
            "h2",
            &format!("ssh -i /etc/nd-test-key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/nd-test-known root@{addr} echo reached"),
        ),
        "reached\n"
    );
    hosts.plan(&inv, &pb).code(0).run();
    // `state: absent` takes the key back (bootstrap does so when prefetch stops using SSH):
    // the other lines stay, and the key no longer logs in.
    let pb2 = hosts.write_file(
        "pb2.yml",
        &r#"steps:
  - name: h2's key no longer logs into h1
    hosts: h1
    authorized_key: { state: absent, user: root, path: KEYS, key_from: { host: h2, path: /etc/nd-test-key.pub } }
"#
        .replace("KEYS", &keys.display().to_string()),
    );
    let p2 = pb2.to_str().unwrap();
    hosts.apply(&inv, p2).code(0).run();
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), before);
    let r = hosts.sh(
        "h2",
        &format!("ssh -i /etc/nd-test-key -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/nd-test-known root@{addr} echo reached"),
    );
    assert_ne!(r.code, 0, "{r:?}");
    hosts.plan(&inv, p2).code(0).run();
}

/// The distribution is detected on each host (src/distro.rs): h1 is this machine's Debian, h2
/// is given Rocky's os-release and RDO's nova-compute unit (its steps are rendered again
/// with RDO's defaults, in one more round trip), h3 has /etc/kolla and is refused before
/// anything changes on it.
#[test]
fn each_host_gets_its_distributions_defaults_and_kolla_is_refused() {
    let hosts = Hosts::up(3);
    let data = repo().join("tests/data/distro");
    let read = |f: &str| std::fs::read(data.join(f)).unwrap();
    hosts.put("h2", "/etc/os-release", &read("os-release.rocky9"));
    hosts.put(
        "h2",
        "/usr/lib/systemd/system/openstack-nova-compute.service",
        &read("openstack-nova-compute.service.rdo"),
    );
    hosts.sh_ok("h3", "mkdir -p /etc/kolla/nova-compute");
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: what the host is\n    hosts: all\n    file: { path: \"/etc/nd-{{ distro.family }}\", content: \"{{ distro.id }} {{ distro.nova_compute_unit }} {{ distro.nova_compute_conf }}\\n\" }\n",
    );
    let plan = hosts.plan(&inv, &pb).arg("--json").code(1).run();
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["hosts"]["h1"]["round_trips"], 1, "{plan:?}");
    assert_eq!(v["hosts"]["h2"]["round_trips"], 2, "{plan:?}");
    let apply = hosts.apply(&inv, &pb).code(1).run();
    assert_eq!(
        apply.stderr,
        "[1/1] what the host is\n  ~ h1: changed: create /etc/nd-debian\n      --- /dev/null\n      +++ /etc/nd-debian\n      @@ -0,0 +1 @@\n      +debian nova-compute /etc/nova/nova-compute.conf\n  ~ h2: changed: create /etc/nd-redhat\n      --- /dev/null\n      +++ /etc/nd-redhat\n      @@ -0,0 +1 @@\n      +rocky openstack-nova-compute /etc/nova/nova.conf\n✗ h3: unreachable or unusable\n      this host's OpenStack is deployed by kolla-ansible (/etc/kolla exists): its services run in containers whose configuration kolla-ansible generates from its overrides, so a file novadock wrote here would never be read, and the next `kolla-ansible reconfigure` would undo the rest. Nothing was changed on this host.\n      hint: configure the Docker driver through kolla-ansible on its deployment host: [DEFAULT] compute_driver in /etc/kolla/config/nova/nova-compute.conf, [filter_scheduler] enabled_filters (with AggregateInstanceExtraSpecsFilter) in /etc/kolla/config/nova/nova-scheduler.conf, [image_format] container_formats (with docker) in /etc/kolla/config/glance/glance-api.conf, then `kolla-ansible reconfigure` (`novadock help deploy-kolla-osa`)\nApply: 2 changed, 0 unchanged, 1 failed, 0 skipped on 3 hosts (hosts failed: h3)\n"
    );
    assert_eq!(
        hosts.read_str("h1", "/etc/nd-debian"),
        "debian nova-compute /etc/nova/nova-compute.conf\n"
    );
    assert_eq!(
        hosts.read_str("h2", "/etc/nd-redhat"),
        "rocky openstack-nova-compute /etc/nova/nova.conf\n"
    );
    assert_eq!(hosts.sh("h3", "ls /etc/nd-*").code, 2);
}

/// novadock on a host: sent once, then known by its --version (the copy is not read); a
/// binary for another platform is refused in the plan.
#[test]
fn novadock_is_sent_once_and_only_to_a_host_it_runs_on() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: novadock\n    hosts: all\n    novadock_binary: { src: \"{{ novadock_exe }}\", dest: /usr/local/bin/novadock }\n",
    );
    let version = format!(
        "novadock {} (build {}, {})",
        env!("CARGO_PKG_VERSION"),
        env!("NOVADOCK_BUILD"),
        env!("NOVADOCK_TARGET")
    );
    let apply = hosts.apply(&inv, &pb).code(0).run();
    assert!(
        apply.stderr.starts_with(&format!(
            "[1/1] novadock\n  ~ h1: changed: install /usr/local/bin/novadock ({version})\n"
        )),
        "{apply:?}"
    );
    assert_eq!(
        hosts.sh_ok(
            "h1",
            "/usr/local/bin/novadock --version; stat -c %a /usr/local/bin/novadock"
        ),
        format!("{version}\n755\n")
    );
    let plan = hosts.plan(&inv, &pb).code(0).run();
    assert_eq!(
        plan.stderr,
        format!(
            "[1/1] novadock\n  = h1: unchanged — /usr/local/bin/novadock is {version}\nPlan: 0 to change, 1 unchanged, 0 failed, 0 skipped on 1 host\n"
        )
    );
    // A Mac's build (a Mach-O arm64 header) is refused; nothing is sent.
    let mac = hosts.write_file("novadock-mac", "");
    std::fs::write(&mac, [0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0, 0, 0x01, 0, 0, 0, 0]).unwrap();
    let pb = hosts.write_file(
        "mac.yml",
        &format!("steps:\n  - name: novadock\n    hosts: all\n    novadock_binary: {{ src: {}, dest: /usr/local/bin/novadock }}\n", mac.display()),
    );
    let plan = hosts.plan(&inv, &pb).code(1).run();
    let arch = hosts.sh_ok("h1", "uname -m");
    assert!(
        plan.stderr.contains(&format!(
            "      {} is built for Darwin aarch64, and this host is Linux {}: the copy would not run there. Nothing was changed on this host.\n      hint: build novadock for the host (`cargo build --release --target {}-unknown-linux-gnu`) and set novadock_binary: to that binary\n",
            mac.display(), arch.trim(), arch.trim()
        )),
        "{plan:?}"
    );
}
