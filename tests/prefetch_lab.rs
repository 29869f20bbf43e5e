#![cfg(feature = "lab-tests")] // a test tier: docs/tests.md
//! `novadock prefetch` and its systemd timer against the lab's real Glance and dockerds
//! (issue: prefetch). Slow: it resets the lab, bootstraps it, then walks through the cases an
//! operator meets — first load, nothing to do, an image replaced in Glance, a host down, a
//! transfer killed midway, a host added to the aggregate — and checks that the bootstrap
//! plan stays clean; then what prefetch buys: `boot-time` with the image prefetched and
//! fetched (boot_time.rs). Run by the README's test command.

#[path = "prefetch_lab/boot_time.rs"]
mod boot_time;
mod common;

use common::lab::{Lab, addr, lab, on, os, timer_run};
use common::run_time;
use serde_json::Value;
use std::time::{Duration, Instant};

/// A docker image on cmp3 (not in the aggregate at first: our image workshop), from a tiny
/// rootfs, `extra_mb` of random bytes and `cmd`; saved and uploaded to Glance as `glance_name`.
/// Returns the Glance id.
fn upload(reference: &str, glance_name: &str, cmd: &str, extra_mb: u32) -> String {
    on(
        "cmp3",
        &format!(
            r#"set -e
rm -rf /root/img && mkdir -p /root/img
for f in /bin/dash /bin/sleep $(ldd /bin/dash /bin/sleep | grep -o "/[^ :]*\.so[^ :]*"); do cp --parents -L "$f" /root/img/; done
ln -s dash /root/img/bin/sh
echo {cmd} > /root/img/which
if [ {extra_mb} -gt 0 ]; then head -c {extra_mb}M /dev/urandom > /root/img/blob; fi
tar -C /root/img -cf /root/img.tar .
docker rmi -f {reference} >/dev/null 2>&1 || true
docker import --change 'CMD ["/bin/sleep", "{cmd}"]' /root/img.tar {reference} >/dev/null
docker save {reference} > /root/upload.tar
docker rmi -f {reference} >/dev/null"#
        ),
    );
    // cmp3 → ctl through this machine, as an operator's workstation would carry it.
    let host = common::repo().join("tests/lab/host").display().to_string();
    let copied = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{host} exec cmp3 cat /root/upload.tar | {host} exec ctl sh -c 'cat > /root/upload.tar'"
        ))
        .status()
        .unwrap();
    assert!(copied.success());
    os(&format!(
        "image create --container-format docker --disk-format raw --file /root/upload.tar --public {glance_name} -f value -c id"
    ))
    .trim()
    .to_string()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn docker_id(host: &str, reference: &str) -> Option<String> {
    let r = lab(
        "host",
        &[
            "exec", host, "docker", "image", "inspect", "--format", "{{.Id}}", reference,
        ],
    );
    (r.code == 0).then(|| r.stdout.trim().to_string())
}

fn record(host: &str, glance_id: &str) -> Option<Value> {
    let r = lab(
        "host",
        &[
            "exec",
            host,
            "cat",
            &format!("/var/lib/novadock/prefetch/{glance_id}.json"),
        ],
    );
    (r.code == 0).then(|| serde_json::from_str(&r.stdout).unwrap())
}

/// Whether a report line says `text` for `host` (lines name all hosts they hold for).
fn says(log: &str, host: &str, text: &str) -> bool {
    log.lines().any(|l| {
        l.get(4..)
            .and_then(|rest| rest.split_once(": "))
            .is_some_and(|(hosts, what)| {
                hosts.split(", ").any(|h| h == host) && what.starts_with(text)
            })
    })
}

fn json(r: &common::Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("no JSON ({e}): {r:?}"))
}

/// (host, image name) → (action, reason) from a `--json` summary.
fn items(v: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for h in v["hosts"].as_array().unwrap() {
        for i in h["items"].as_array().unwrap() {
            out.push((
                h["name"].as_str().unwrap().to_string(),
                i["name"].as_str().unwrap().to_string(),
                i["action"].as_str().unwrap().to_string(),
                i["reason"].as_str().unwrap().to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn it(h: &str, n: &str, a: &str, r: &str) -> (String, String, String, String) {
    (h.into(), n.into(), a.into(), r.into())
}

/// One lab for the three parts (a pristine lab and its bootstrap cost ~5 min): each runs on
/// what the one before leaves, cmp3 in the aggregate and the source still `glance`; the last
/// times boots of a prefetched image against a fetched one (boot_time.rs).
#[test]
fn prefetch_and_boot_time_on_the_lab() {
    let lab_ = Lab::fresh();
    let inv3 = keeps_every_docker_host_current(&lab_);
    tags_by_glance_id_and_skips_private_images(&lab_, &inv3);
    boot_time::boot_time_on_the_lab(&lab_, &inv3);
}

/// The cases an operator meets, one after the other; the inventory with cmp3 added.
fn keeps_every_docker_host_current(lab_: &Lab) -> String {
    // The timer is installed but never fires on its own during the test: runs are started
    // explicitly, so each step's effect is known.
    // The SSH path (the driver's own, Nova's pre-cache API, is driver_lab.rs's).
    let (ctl, cmp1, cmp2, cmp3) = (addr("ctl"), addr("cmp1"), addr("cmp2"), addr("cmp3"));
    let registry = format!("{cmp3}:5000");
    let vars = &format!(
        "  prefetch_on_calendar: \"2099-01-01\"\n  prefetch_registries: [\"{registry}\"]\n  prefetch_source: glance\n"
    );
    let inv = lab_.inventory("lab.yml", "", vars);
    let apply = lab_.novadock(&["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stderr
            .contains("  ~ cmp1, cmp2: changed: edit /root/.ssh/authorized_keys\n"),
        "{apply:?}"
    );
    assert_eq!(
        on(
            "ctl",
            "systemctl is-enabled novadock-prefetch.timer; systemctl is-active novadock-prefetch.timer"
        ),
        "enabled\nactive\n"
    );
    // The controller's key runs the prefetch program only (issue 14, finding 8), and the
    // computes' host keys are pinned.
    let authorized = on("cmp1", "cat /root/.ssh/authorized_keys");
    assert!(
        authorized.contains(&format!("restrict,from=\"{ctl}\",command=\"python3 /usr/local/lib/novadock/prefetch-host.py\" ssh-ed25519 "))
            && authorized.contains(" novadock-prefetch@ctl\n"),
        "{authorized}"
    );
    let shell = on(
        "ctl",
        &format!(
            "ssh -i /etc/novadock/prefetch_ed25519 -o UserKnownHostsFile=/etc/novadock/known_hosts -o BatchMode=yes root@{cmp1} id </dev/null 2>&1; echo rc=$?"
        ),
    );
    assert!(
        !shell.contains("uid=0") && shell.contains("expected a JSON request"),
        "{shell}"
    );
    // No rootwrap `ln` filter (finding 9).
    assert_eq!(
        on(
            "cmp1",
            "test -e /etc/nova/rootwrap.d/docker.filters && echo present || echo absent"
        ),
        "absent\n"
    );
    let pinned = on("ctl", "cat /etc/novadock/known_hosts");
    assert!(
        pinned.contains(&format!("{cmp1} ssh-ed25519 "))
            && pinned.contains(&format!("{cmp2} ssh-ed25519 "))
    );

    // 0. The inventory's `images:` are seeded into Glance by the bootstrap, shown in the plan.
    on(
        "cmp1",
        r#"set -e
rm -rf /root/seed && mkdir -p /root/seed/bin && cp -L /bin/sleep /root/seed/bin/
tar -C /root/seed -cf /root/seed.tar . && docker import /root/seed.tar nd/seed:1 >/dev/null"#,
    );
    let seeded = lab_.inventory(
        "seeded.yml",
        "",
        &format!("{vars}  images: [{{ name: \"nd/seed:1\", from_host: cmp1 }}]\n"),
    );
    let plan = lab_.novadock(&["plan", "-i", &seeded]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stderr.contains(
            "  ~ ctl: would change: upload image nd/seed:1 to Glance from cmp1 (docker save)\n"
        ),
        "{plan:?}"
    );
    // Its spool has a random name (issue 14, finding 1): a directory planted at the name it
    // had, $TMPDIR/novadock-image-RUN-ctl, neither stops the upload nor gets the tarball.
    let before = unix_now();
    let child = lab_
        .novadock_cmd(&["apply", "-i", &seeded, "--yes"])
        .spawn()
        .unwrap();
    let planted: Vec<_> = (before..=unix_now() + 1)
        .map(|t| {
            let p =
                lab_.dir
                    .path()
                    .join(format!("novadock-image-{}-{}-ctl", run_time(t), child.id()));
            std::fs::create_dir(&p).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
            p
        })
        .collect();
    let apply = common::Run::from(child.wait_with_output().unwrap());
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stderr.contains(
            "  ~ ctl: changed: upload image nd/seed:1 to Glance from cmp1 (docker save)\n"
        ),
        "{apply:?}"
    );
    for p in &planted {
        assert_eq!(std::fs::read_dir(p).unwrap().count(), 0, "{}", p.display());
    }
    let seed_id = os("image list -f value -c ID -c Name")
        .lines()
        .find_map(|l| l.strip_suffix(" nd/seed:1").map(str::to_string))
        .expect("nd/seed:1 is not in Glance");
    assert_eq!(
        os(&format!(
            "image show {seed_id} -f value -c container_format -c disk_format -c status"
        )),
        "docker\nraw\nactive\n"
    );
    let plan = lab_.novadock(&["plan", "-i", &seeded]);
    assert_eq!(plan.code, 0, "{plan:?}");
    os(&format!("image delete {seed_id}"));

    // 1. An image in Glance; the timer's job loads it onto cmp1 and cmp2 and records it.
    let one = upload("nd/one:latest", "nd/one:latest", "1001", 0);
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains("  ~ cmp1, cmp2: loaded nd/one:latest (missing, "),
        "{log}"
    );
    assert!(
        !log.contains("MiB/s"),
        "a progress bar without a terminal:\n{log}"
    );
    for h in ["cmp1", "cmp2"] {
        let id = docker_id(h, "nd/one:latest").unwrap_or_else(|| panic!("not on {h}"));
        let rec = record(h, &one).unwrap_or_else(|| panic!("no record on {h}"));
        assert_eq!(rec["docker_id"], id.as_str());
        assert_eq!(rec["algo"], "sha512");
    }
    assert!(
        docker_id("cmp3", "nd/one:latest").is_none(),
        "cmp3 is not in the aggregate yet"
    );

    // 2. Again: nothing to transfer, nothing read from Glance.
    let again = lab_.novadock(&["prefetch", "-i", &inv, "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let v = json(&again);
    assert_eq!(
        items(&v),
        vec![
            it("cmp1", "nd/one:latest", "none", "current"),
            it("cmp2", "nd/one:latest", "none", "current")
        ]
    );
    assert_eq!(v["read_from_glance"], serde_json::json!({}));
    assert!(
        again
            .stderr
            .contains("  = cmp1, cmp2: nd/one:latest: current\n"),
        "{again:?}"
    );

    // 3. Replaced in Glance under the same name: the new upload is an image of its own (images
    //    are tagged by Glance id), missing everywhere and loaded everywhere; the name follows it.
    os(&format!("image delete {one}"));
    let one_v2 = upload("nd/one:latest", "nd/one:latest", "1002", 0);
    let dry = lab_.novadock(&["prefetch", "-i", &inv, "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stderr
            .contains("  ~ cmp1, cmp2: would load nd/one:latest (missing)\n"),
        "{dry:?}"
    );
    assert!(
        record("cmp1", &one_v2).is_none(),
        "a dry run recorded something"
    );
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains("  ~ cmp1, cmp2: loaded nd/one:latest (missing, "),
        "{log}"
    );
    let new_id = record("cmp1", &one_v2).unwrap()["docker_id"].clone();
    let new_id = new_id.as_str().unwrap();
    for h in ["cmp1", "cmp2"] {
        assert_eq!(docker_id(h, "nd/one:latest").unwrap(), new_id);
        assert_eq!(
            docker_id(h, &format!("glance/{one_v2}:latest")).unwrap(),
            new_id
        );
    }
    // The id's tag moved to another image behind novadock's back: stale, and reloaded.
    on(
        "cmp1",
        &format!("docker tag nd/seed:1 glance/{one_v2}:latest"),
    );
    let dry = lab_.novadock(&["prefetch", "-i", &inv, "--dry-run"]);
    assert!(
        dry.stderr
            .contains("  ~ cmp1: would load nd/one:latest (stale)\n"),
        "{dry:?}"
    );
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains("  ~ cmp1: loaded nd/one:latest (stale, "),
        "{log}"
    );
    assert_eq!(
        docker_id("cmp1", &format!("glance/{one_v2}:latest")).unwrap(),
        new_id
    );

    // 4. cmp2 down: cmp1 still gets the new image, cmp2 is reported failed, exit 1; cmp2 back
    //    → the next run catches up. (Nova still counts cmp2's service as up for a minute.)
    let two = upload("nd/two:latest", "nd/two:latest", "2001", 0);
    let down = lab("host", &["down", "cmp2", "--keep"]);
    assert_eq!(down.code, 0, "{down:?}");
    let (ok, log) = timer_run();
    assert!(!ok, "the run succeeded with cmp2 down:\n{log}");
    assert!(
        log.contains("  ~ cmp1: loaded nd/two:latest (missing, "),
        "{log}"
    );
    assert!(
        log.contains(&format!("  x cmp2: failed: cannot connect to {cmp2}")),
        "{log}"
    );
    assert!(record("cmp1", &two).is_some());
    // The lab's `up` starts what is down, on its kept layer, and waits for its services.
    let up = lab("up", &[]);
    assert_eq!(up.code, 0, "{up:?}");
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains("  ~ cmp2: loaded nd/two:latest (missing, "),
        "{log}"
    );
    assert!(
        log.contains("  = cmp1, cmp2: nd/one:latest: current\n"),
        "{log}"
    );

    // 5. A transfer killed midway leaves no "done" record; the next run completes it.
    let big = upload("nd/big:latest", "nd/big:latest", "3001", 300);
    let mut child = lab_
        .novadock_cmd(&["prefetch", "-i", &inv, "--limit", "cmp1"])
        .spawn()
        .unwrap();
    let spool = lab_.dir.path();
    let t = Instant::now();
    let partial = loop {
        let size: u64 = std::fs::read_dir(spool)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("novadock-prefetch-")
            })
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter_map(|f| f.metadata().ok().map(|m| m.len()))
            .sum();
        if size > 20 << 20 {
            break size;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the transfer finished before it could be killed"
        );
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the transfer never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(partial < 300 << 20, "already complete: {partial}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Whatever the host side still does with the cut stream, it never records it.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        record("cmp1", &big).is_none(),
        "a cut transfer was recorded"
    );
    assert!(
        docker_id("cmp1", "nd/big:latest").is_none(),
        "a cut transfer was loaded"
    );
    // On a terminal, the transfer shows a byte progress bar per host (never without one: the
    // timer's journal above has none).
    let tty = std::process::Command::new("script")
        .args([
            "-qefc",
            &format!(
                "ip netns exec {} {} prefetch -i {inv} --limit cmp1",
                common::lab::lab_ns(),
                env!("CARGO_BIN_EXE_novadock")
            ),
            "/dev/null",
        ])
        .env("XDG_RUNTIME_DIR", lab_.dir.path())
        .env("TMPDIR", lab_.dir.path())
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout).replace("\r\n", "\n");
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("cmp1 nd/big:latest") && shown.contains("MiB/s"),
        "no progress bar on a terminal:\n{shown}"
    );
    assert!(
        shown.contains("  ~ cmp1: loaded nd/big:latest (missing, "),
        "{shown}"
    );
    assert!(record("cmp1", &big).is_some());

    // 6. cmp3 joins the aggregate (add a compute host); the next timer run loads onto it.
    let (inv3, add) = lab_.add_compute("lab3", "cmp3", vars);
    assert_eq!(add.code, 0, "{add:?}");
    assert!(
        on("ctl", "cat /etc/novadock/prefetch.yml")
            .contains(&format!("\"cmp3\": {{ address: \"{cmp3}\""))
    );
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    for name in ["nd/big:latest", "nd/one:latest", "nd/two:latest"] {
        assert!(
            says(&log, "cmp3", &format!("loaded {name} (missing, ")),
            "{name} not loaded on cmp3:\n{log}"
        );
    }
    // One read from Glance per image, whatever the number of hosts that needed it.
    assert!(log.contains("read from Glance: "), "{log}");

    // 7. Prefetch state is not config drift: the bootstrap plan is clean.
    let plan = lab_.novadock(&["plan", "-i", &inv3]);
    assert_eq!(plan.code, 0, "{plan:?}");

    // --prune: an image gone from Glance leaves the hosts, unless a container uses it.
    on(
        "cmp1",
        "docker create --name nd-keep nd/two:latest >/dev/null",
    );
    os(&format!("image delete {two}"));
    let pruned = lab_.novadock(&["prefetch", "-i", &inv3, "--prune"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    assert!(
        pruned
            .stderr
            .contains("  - cmp2, cmp3: pruned nd/two:latest (gone from Glance)\n"),
        "{pruned:?}"
    );
    assert!(
        pruned
            .stderr
            .contains("  = cmp1: kept nd/two:latest: gone from Glance, but a container uses it\n"),
        "{pruned:?}"
    );
    assert!(docker_id("cmp2", "nd/two:latest").is_none());
    assert!(docker_id("cmp1", "nd/two:latest").is_some());
    assert!(record("cmp2", &two).is_none());

    // A tarball tagged with another name than its Glance name is refused before dockerd
    // sees a name (issue 14, finding 2): neither name, nor its Glance id, is tagged.
    let odd = upload("nd/inner:latest", "nd/outer:latest", "4001", 0);
    let r = lab_.novadock(&["prefetch", "-i", &inv3, "--limit", "cmp1"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("the tarball is tagged nd/inner:latest, not with its Glance name nd/outer:latest: refused"),
        "{r:?}"
    );
    assert!(docker_id("cmp1", "nd/inner:latest").is_none());
    assert!(docker_id("cmp1", "nd/outer:latest").is_none());
    assert!(docker_id("cmp1", &format!("glance/{odd}:latest")).is_none());
    assert!(record("cmp1", &odd).is_none());
    os(&format!("image delete {odd}"));

    // `image add`: the paper's `docker save | glance image-create`, checked and idempotent.
    on("cmp3", "docker tag nd/one:latest nd/added:1");
    let add = |extra: &[&str]| {
        let mut args = vec![
            "image",
            "add",
            "-i",
            &inv3,
            "nd/added:1",
            "--from-host",
            "cmp3",
        ];
        args.extend_from_slice(extra);
        lab_.novadock(&args)
    };
    let r = add(&["--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let first = json(&r);
    assert_eq!(first["action"], "uploaded");
    assert_eq!(
        os(&format!(
            "image show {} -f value -c container_format -c disk_format -c status",
            first["id"].as_str().unwrap()
        )),
        "docker\nraw\nactive\n"
    );
    let r = add(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .starts_with("= unchanged: nd/added:1 is in Glance with this content"),
        "{r:?}"
    );
    on(
        "cmp3",
        "docker rmi nd/added:1 >/dev/null && docker import --change 'CMD [\"/bin/sleep\", \"5\"]' /root/img.tar nd/added:1 >/dev/null",
    );
    let r = add(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("hint: --replace uploads it as a new version"),
        "{r:?}"
    );
    let r = add(&["--replace", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let second = json(&r);
    assert_eq!(second["action"], "replaced");
    assert_eq!(second["removed"], serde_json::json!([first["id"]]));

    os(&format!("image delete {}", second["id"].as_str().unwrap()));

    // The `registry` source, the paper's way: `docker pull NAME` on the host. The registry is
    // Debian's docker-registry on cmp3 (in the compute image), on cmp3's address (plain http:
    // the lab inventory's docker_daemon lists it in insecure-registries).
    on(
        "cmp3",
        &format!(
            r#"set -e
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/docker-registry\nhttp:\n  addr: {registry}\n' > /etc/docker/registry/config.yml
systemctl restart docker-registry
for i in $(seq 50); do docker tag nd/one:latest {registry}/nd/reg:1 && docker push {registry}/nd/reg:1 >/dev/null 2>&1 && exit 0; sleep 0.2; done
exit 1"#
        ),
    );
    let r = lab_.novadock(&[
        "image",
        "add",
        "-i",
        &inv3,
        &format!("{registry}/nd/reg:1"),
        "--from-host",
        "cmp3",
        "--public",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = lab_.novadock(&[
        "prefetch", "-i", &inv3, "--limit", "cmp1", "--source", "registry",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("  ~ cmp1: loaded {registry}/nd/reg:1 (missing)\n")),
        "{r:?}"
    );
    assert!(docker_id("cmp1", &format!("{registry}/nd/reg:1")).is_some());
    inv3
}

/// Issue 14, finding 2: a tenant's private image is not distributed, and no tenant can
/// replace another image's name on the hosts; every image is known by its Glance id.
fn tags_by_glance_id_and_skips_private_images(lab_: &Lab, inv: &str) {
    let public = upload("nd/pub:1", "nd/pub:1", "4101", 0);
    // A private image: uploaded the same way, then made private.
    let private = upload("nd/priv:1", "nd/priv:1", "4102", 0);
    os(&format!("image set --private {private}"));
    let r = lab_.novadock(&["prefetch", "-i", inv, "--limit", "cmp1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let id = docker_id("cmp1", &format!("glance/{public}:latest")).expect("tagged by Glance id");
    assert_eq!(docker_id("cmp1", "nd/pub:1"), Some(id.clone()));
    assert_eq!(record("cmp1", &public).unwrap()["docker_id"], id.as_str());
    assert!(docker_id("cmp1", &format!("glance/{private}:latest")).is_none());
    assert!(docker_id("cmp1", "nd/priv:1").is_none());
}
