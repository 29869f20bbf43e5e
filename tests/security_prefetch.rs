#![cfg(feature = "hosts-tests")] // a test tier: docs/tests.md
//! Issue 14 (prefetch): the compute-host program against a real dockerd, on a Debian host
//! booted with systemd-nspawn (tests/lab/host, like tests/systemd.rs; run it under
//! `flock /tmp/novadock-hosts.lock`). The end-to-end run with Glance is in prefetch_lab.rs.

mod common;

use common::{Novadock, Run, repo};
use std::process::{Command, Stdio};

const NAME: &str = "nd-secp-test";
const ADDR: &str = "127.0.0.62";
/// The program bootstrap installs on the computes and novadock sends (include_str! of it).
const HOST_PY: &str = include_str!("../templates/prefetch/prefetch-host.py");

fn lab_dir() -> String {
    std::env::var("NOVADOCK_LAB_DIR").unwrap_or_else(|_| "/var/lib/novadock-lab".into())
}

struct Host {
    name: &'static str,
}

impl Host {
    fn boot(name: &'static str, addr: &str, docker: bool) -> Host {
        common::require_root();
        let mut args = vec!["up", name, addr];
        if docker {
            args.push("--docker");
        }
        let out = Command::new(repo().join("tests/lab/host"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/lab/host up: {:?}",
            Run::from(out)
        );
        Host { name }
    }

    fn up() -> Host {
        let h = Host::boot(NAME, ADDR, true);
        let r = h.sh("command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null 2>&1; systemctl start docker && docker info >/dev/null");
        assert_eq!(r.code, 0, "docker on the test host: {r:?}");
        h
    }

    fn sh(&self, script: &str) -> Run {
        Run::from(
            Command::new(repo().join("tests/lab/host"))
                .args(["exec", self.name, "sh", "-c", script])
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    }

    /// Writes `content` to `path` on the host with `mode`.
    fn put(&self, path: &str, content: &[u8], mode: &str) {
        use std::io::Write;
        let mut c = Command::new(repo().join("tests/lab/host"))
            .args(["exec", self.name, "sh", "-c"])
            .arg(format!(
                "mkdir -p \"$(dirname {path})\" && cat > {path} && chmod {mode} {path}"
            ))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(content).unwrap();
        assert!(c.wait().unwrap().success(), "writing {path}");
    }

    fn ok(&self, script: &str) -> String {
        let r = self.sh(script);
        assert_eq!(r.code, 0, "{script}\n{r:?}");
        r.stdout
    }

    /// The host program with `request` and the tarball at `tar` (a path on the host) on stdin.
    fn run(&self, request: &serde_json::Value, tar: Option<&str>) -> Run {
        let data = tar.map_or(String::new(), |t| format!("; cat {t}"));
        self.sh(&format!(
            "{{ printf '%s\\n' '{request}'{data}; }} | python3 -c '{}'",
            HOST_PY.replace('\'', "'\\''")
        ))
    }

    fn docker_id(&self, reference: &str) -> Option<String> {
        let r = self.sh(&format!(
            "docker image inspect --format '{{{{.Id}}}}' -- '{reference}'"
        ));
        (r.code == 0).then(|| r.stdout.trim().to_string())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tests/lab/host"))
            .args(["down", self.name])
            .stdin(Stdio::null())
            .output();
    }
}

fn load(h: &Host, tar: &str, id: &str, name: &str, public: bool, hash: Option<&str>) -> Run {
    let (size, sha) = {
        let out = h.ok(&format!(
            "stat -c %s {tar}; sha512sum {tar} | cut -d' ' -f1"
        ));
        let mut l = out.lines();
        (
            l.next().unwrap().parse::<u64>().unwrap(),
            l.next().unwrap().to_string(),
        )
    };
    let req = serde_json::json!({
        "op": "load", "id": id, "name": name, "public": public, "algo": "sha512",
        "hash": hash.unwrap_or(&sha), "size": size, "source": "glance", "registries": [],
    });
    h.run(&req, Some(tar))
}

/// Findings 2 and 16: no tag from the tarball reaches dockerd, a tarball tagged with another
/// name is refused, a hash mismatch loads nothing, images are tagged glance/ID (and by name
/// only when public), and registry pulls are held to the operator's list.
#[test]
fn loader_tags_by_glance_id_and_never_by_the_tarball() {
    let h = Host::up();
    h.ok(r#"set -e; cd /root; rm -rf seed; mkdir seed; echo a > seed/a; tar -C seed -cf a.tar .
echo b > seed/a; tar -C seed -cf b.tar .
docker import a.tar library/nginx:latest >/dev/null; docker save library/nginx:latest > evil.tar
docker tag library/nginx:latest nd/good:1; docker save nd/good:1 > good.tar
docker rmi library/nginx:latest nd/good:1 >/dev/null
docker import b.tar nd/other:1 >/dev/null; docker save nd/other:1 > other.tar; docker rmi nd/other:1 >/dev/null"#);

    // A tenant's tarball that says `nginx` under the Glance name nd/evil: refused, nothing named.
    let r = load(
        &h,
        "/root/evil.tar",
        "11111111-0000-0000-0000-000000000001",
        "nd/evil",
        true,
        None,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("not with its Glance name nd/evil: refused"),
        "{r:?}"
    );
    assert!(h.docker_id("library/nginx:latest").is_none());
    assert!(h.docker_id("nginx:latest").is_none());
    assert!(
        h.docker_id("glance/11111111-0000-0000-0000-000000000001:latest")
            .is_none()
    );

    // Not Glance's bytes: dockerd never gets a manifest, so nothing at all is loaded.
    let before = h.ok("docker image ls -aq --no-trunc | sort");
    let r = load(
        &h,
        "/root/other.tar",
        "11111111-0000-0000-0000-000000000002",
        "nd/other:1",
        true,
        Some("00"),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not loaded"), "{r:?}");
    assert_eq!(h.ok("docker image ls -aq --no-trunc | sort"), before);

    // A private image: tagged by its Glance id only, never by its (tenant-chosen) name.
    let r = load(
        &h,
        "/root/good.tar",
        "11111111-0000-0000-0000-000000000003",
        "nd/good:1",
        false,
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let id = h
        .docker_id("glance/11111111-0000-0000-0000-000000000003:latest")
        .expect("tagged by id");
    assert!(h.docker_id("nd/good:1").is_none());
    let rec = h.ok("cat /var/lib/novadock/prefetch/11111111-0000-0000-0000-000000000003.json");
    let rec: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(rec["docker_id"], id.as_str());
    assert_eq!(
        rec["ref"],
        "glance/11111111-0000-0000-0000-000000000003:latest"
    );
    assert_eq!(rec["name_ref"], serde_json::Value::Null);
    assert_eq!(h.ok("stat -c %a /var/lib/novadock/prefetch"), "700\n");

    // A public image gets its name too.
    let r = load(
        &h,
        "/root/good.tar",
        "11111111-0000-0000-0000-000000000004",
        "nd/good:1",
        true,
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(h.docker_id("nd/good:1"), Some(id.clone()));

    // Registry mode: only listed registries, only references (never an option).
    for (name, msg) in [
        ("evil.example:5000/x:1", "not in prefetch_registries"),
        ("--help", "is not a docker reference"),
    ] {
        let req = serde_json::json!({
            "op": "load", "id": "11111111-0000-0000-0000-000000000005", "name": name,
            "public": true, "algo": "sha512", "hash": "x", "size": 1, "source": "registry",
            "registries": ["127.0.0.14:5000"],
        });
        let r = h.run(&req, None);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(msg), "{name}: {r:?}");
    }

    // The state check sees the records, and prune removes the id's tag with the record.
    let r = h.run(&serde_json::json!({"op": "check"}), None);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("glance/11111111-0000-0000-0000-000000000004:latest"),
        "{r:?}"
    );
    let req = serde_json::json!({
        "op": "prune", "glance_id": "11111111-0000-0000-0000-000000000004", "docker_id": id,
        "name_ref": "nd/good:1", "remove_image": false,
    });
    let r = h.run(&req, None);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        h.docker_id("glance/11111111-0000-0000-0000-000000000004:latest")
            .is_none()
    );
    assert!(
        h.docker_id("glance/11111111-0000-0000-0000-000000000003:latest")
            .is_some()
    );

    // Anything else is refused (the program is the prefetch key's forced command).
    let r = h.run(&serde_json::json!({"op": "shell", "cmd": "id"}), None);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown operation"), "{r:?}");
}

/// Finding 10: the prefetch unit as bootstrap renders it runs sandboxed on a real systemd, with
/// its SSH control sockets in its own runtime directory: a local user who plants
/// /tmp/novadock-0 no longer stops every run.
#[test]
fn prefetch_unit_is_sandboxed_on_real_systemd() {
    const UNIT_HOST: &str = "nd-secp-unit";
    const UNIT_ADDR: &str = "127.0.0.63";
    let h = Host::boot(UNIT_HOST, UNIT_ADDR, false);
    let lab = lab_dir();
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yml");
    std::fs::write(
        &inv,
        format!(
            "ssh:\n  identity_file: {lab}/id_ed25519\n  known_hosts: {lab}/known_hosts\nhosts:\n  u: {{ address: {UNIT_ADDR} }}\nvars:\n  prefetch_binary_path: /usr/local/bin/novadock\n  prefetch_prune: false\n  prefetch_spool_dir: /var/tmp\n  prefetch_timeout: 10min\n"
        ),
    )
    .unwrap();
    let pb = dir.path().join("pb.yml");
    std::fs::write(
        &pb,
        "steps:\n  - name: the prefetch unit\n    hosts: all\n    template: { src: prefetch/novadock-prefetch.service.j2, dest: /etc/systemd/system/novadock-prefetch.service, mode: \"0644\" }\n",
    )
    .unwrap();
    Novadock::new()
        .args(["apply", "-i"])
        .arg(&inv)
        .arg("-p")
        .arg(&pb)
        .arg("--yes")
        .env("XDG_RUNTIME_DIR", dir.path())
        .code(0)
        .run();
    // The job on this host reaches its "controller" (this host) over SSH, as it reaches
    // computes: that needs the control-socket directory.
    h.put(
        "/usr/local/bin/novadock",
        &std::fs::read(common::bin()).unwrap(),
        "0755",
    );
    h.put(
        "/etc/novadock/id",
        &std::fs::read(format!("{lab}/id_ed25519")).unwrap(),
        "0600",
    );
    h.put(
        "/etc/novadock/known_hosts",
        &std::fs::read(format!("{lab}/known_hosts")).unwrap(),
        "0644",
    );
    h.put(
        "/etc/novadock/prefetch.yml",
        format!("ssh:\n  user: root\n  identity_file: /etc/novadock/id\n  known_hosts: /etc/novadock/known_hosts\nhosts:\n  ctl: {{ address: {UNIT_ADDR}, groups: [controllers] }}\nvars:\n  openstack_openrc: /root/no-openrc\n").as_bytes(),
        "0600",
    );
    // A local user plants the control-socket directory novadock falls back to.
    h.ok("setpriv --reuid=65534 --regid=65534 --clear-groups mkdir -m 0777 /tmp/novadock-0");
    let show = h.ok("systemctl daemon-reload && systemctl show -p PrivateTmp -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p UMask -p RuntimeDirectory -p CapabilityBoundingSet novadock-prefetch.service");
    for want in [
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "UMask=0077",
        "RuntimeDirectory=novadock-prefetch",
        "CapabilityBoundingSet=cap_dac_read_search",
    ] {
        assert!(show.contains(want), "{want} not in\n{show}");
    }
    let exposure = h.ok("systemd-analyze security --no-pager novadock-prefetch.service | tail -1");
    let level: f64 = exposure
        .split("novadock-prefetch.service: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {exposure}"));
    assert!(level < 5.0, "{exposure}");
    // It runs: through SSH (sockets in /run/novadock-prefetch) up to the missing openrc.
    let r = h.sh("systemctl start novadock-prefetch.service; journalctl -u novadock-prefetch.service --no-pager -o cat");
    assert!(
        r.stdout.contains("discovery on the controller ctl failed")
            && r.stdout.contains("no-openrc")
            && !r.stdout.contains("control sockets"),
        "{r:?}"
    );
}

/// The prefetch key's line in authorized_keys as bootstrap writes it, with `from`.
fn bootstrap_key_options(from: &str) -> String {
    let pb: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("playbooks/bootstrap.yml")).unwrap(),
    )
    .unwrap();
    let step = pb["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| {
            s["authorized_key"]["key_from"]["path"].as_str() == Some("{{ prefetch_key }}.pub")
        })
        .expect("bootstrap authorizes the prefetch key");
    let options = step["authorized_key"]["options"].as_str().unwrap();
    options.replace(
        "{{ prefetch_key_from or groups.controllers[0].address }}",
        from,
    )
}

/// Finding 8: the prefetch key is no root shell. With bootstrap's options it runs the
/// prefetch program whatever command the client asks for, and only from the controller.
#[test]
fn prefetch_key_runs_the_prefetch_program_only() {
    let hosts = common::Hosts::up(1);
    hosts.put(
        "h1",
        "/usr/local/lib/novadock/prefetch-host.py",
        HOST_PY.as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("prefetch");
    let kg = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "nd-prefetch-test",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(kg.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    // The test hosts' sshd reads this file (tests/hosts/up), not ~/.ssh/authorized_keys.
    let keys = hosts.path("authorized_keys");
    let original = std::fs::read_to_string(&keys).unwrap();
    let authorize = |from: &str| {
        let options = bootstrap_key_options(from);
        assert!(
            options.starts_with("restrict,from=") && options.contains(",command="),
            "{options}"
        );
        std::fs::write(&keys, format!("{original}{options} {public}")).unwrap();
    };
    let ssh = |command: &str, stdin: &str| {
        use std::io::Write;
        let mut c = Command::new("ssh")
            .arg("-i")
            .arg(&key)
            .args([
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                hosts.path("known_hosts").display()
            ))
            .arg(format!("root@{}", hosts.address("h1")))
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        Run::from(c.wait_with_output().unwrap())
    };
    authorize("127.0.0.0/8");
    // A shell command is not run: the program wants its JSON request.
    let r = ssh("id; touch /root/pwned", "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("expected a JSON request") && !r.stdout.contains("uid=0"),
        "{r:?}"
    );
    hosts.sh_ok("h1", "test ! -e /root/pwned");
    // What the job sends is served, whatever command line comes with it.
    let r = ssh("sh -c 'exec python3 -c anything'", "{\"op\":\"check\"}\n");
    // (These hosts share the VM's /usr: a docker CLI may be there, a dockerd is not.)
    assert!(
        r.stdout.starts_with("ND_RECORDS\n")
            || r.stderr.contains("docker is not installed on this host"),
        "{r:?}"
    );
    let r = ssh("true", "{\"op\":\"shell\",\"cmd\":\"id\"}\n");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown operation"), "{r:?}");
    // From anywhere but the controller, the key does not log in.
    authorize("10.9.9.9");
    let r = ssh("id", "");
    assert_eq!(r.code, 255, "{r:?}");
    assert!(r.stderr.contains("Permission denied"), "{r:?}");
}
