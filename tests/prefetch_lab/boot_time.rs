//! `novadock boot-time` against the lab's real OpenStack Zed (tests/lab), issue 7, on the cloud
//! prefetch_lab.rs leaves (cmp3 in the aggregate): a 300 MB docker image put in Glance with
//! `novadock image add` and on the Docker hosts with `novadock prefetch`, 10 servers of flavor
//! d1.small with a port on lab-net timed and deleted, then `--compare-prefetch` on cmp1.
//! Timings are printed (`cargo test --features lab-tests --test prefetch_lab -- --nocapture`),
//! never asserted.

use crate::common::lab::{Lab, lab, on, os};
use crate::common::{Run, repo};
use serde_json::Value;
use std::process::{Command, Stdio};

const IMAGE: &str = "bt-big:latest";
// An application image of a few hundred MB: what a boot without prefetch has to fetch and
// load grows with its size, a prefetched boot does not (the README states the size with the
// figures).
const IMAGE_MB: u32 = 300;

/// `bash -c SCRIPT` on this machine, with tests/lab/lib.sh sourced.
fn lib(script: &str) -> Run {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/tests/lab/lib.sh && {script}",
            repo().display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run::from(out)
}

/// Our servers still in Nova (any state).
fn our_servers() -> String {
    os("server list --name '^bt-' -f value -c Name -c Status")
}

/// What this test created, removed whatever happens: the Glance image, the image on the
/// hosts it was loaded onto, and (should boot-time ever fail to) servers named `bt-…`.
struct Cleanup {
    glance_id: Option<String>,
    loaded_on: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let sh = |host: &str, cmd: &str| lab("host", &["exec", host, "bash", "-c", cmd]);
        let left = sh(
            "ctl",
            ". /root/admin-openrc && openstack server list --name '^bt-' -f value -c ID",
        );
        for id in left.stdout.split_whitespace() {
            eprintln!("cleanup: deleting left-over server {id}");
            sh(
                "ctl",
                &format!(". /root/admin-openrc && openstack server delete --wait {id}"),
            );
        }
        if let Some(id) = &self.glance_id {
            sh(
                "ctl",
                &format!(". /root/admin-openrc && openstack image delete {id}"),
            );
        }
        sh("ctl", "rm -f /root/bt-big.tar");
        for h in &self.loaded_on {
            sh(h, &format!("docker rmi {IMAGE} >/dev/null 2>&1 || true"));
        }
    }
}

/// `Lab::novadock`, printing the command and what it said (the figures, with --nocapture).
fn novadock(lab: &Lab, args: &[&str]) -> Run {
    let r = lab.novadock(args);
    eprintln!("$ novadock {}\n{}", args.join(" "), r.stderr);
    r
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Boots per phase of `--compare-prefetch`: the first boot of a phase meets colder caches,
/// and with 3 that one sample moved the median, and the ratio, from run to run.
const COMPARE_EACH: usize = 5;

/// `inv`: the lab's inventory with cmp3 among the Docker computes.
pub(crate) fn boot_time_on_the_lab(lab_: &Lab, inv: &str) {
    let inv = inv.to_string();

    // 1. The bootstrapped cloud (idempotent), and room for 10 servers:
    //    Nova's default quota is 10 instances, 20 cores, 50 GB.
    let apply = novadock(lab_, &["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let limits = os("limits show --absolute -f value");
    let limit = |k: &str| -> i64 {
        limits
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    if limit("maxTotalInstances") < 40
        || limit("maxTotalCores") < 160
        || limit("maxTotalRAMSize") < 327_680
    {
        os("quota set --instances 40 --cores 160 --ram 327680 admin");
    }
    assert_eq!(
        our_servers(),
        "",
        "servers named bt-… exist before the test"
    );

    // 2. A 300 MB image, built on cmp1, in Glance under the repo:tag it holds (the driver
    //    finds images in dockerd by their Glance id's tag), and on every host of the docker
    //    aggregate (cmp1, cmp2 and cmp3).
    let mut cleanup = Cleanup {
        glance_id: None,
        loaded_on: vec!["cmp1".into()],
    };
    let made = lib(&format!("make_big_image cmp1 {IMAGE} {IMAGE_MB}"));
    assert_eq!(made.code, 0, "make_big_image: {made:?}");
    let added = novadock(
        lab_,
        &[
            "image",
            "add",
            "-i",
            &inv,
            IMAGE,
            "--from-host",
            "cmp1",
            "--public",
            "--json",
        ],
    );
    assert_eq!(added.code, 0, "{added:?}");
    let added: Value = serde_json::from_str(&added.stdout).unwrap();
    cleanup.glance_id = Some(added["id"].as_str().unwrap().to_string());
    assert!(
        added["size"].as_u64().unwrap() >= u64::from(IMAGE_MB) << 20,
        "{added}"
    );
    let aggregate = os("aggregate show docker -f value -c hosts");
    let docker_hosts: Vec<String> = ["cmp1", "cmp2", "cmp3"].map(String::from).to_vec();
    assert!(
        docker_hosts.iter().all(|h| aggregate.contains(h.as_str())),
        "{aggregate}"
    );
    // The prefetch job puts it on every Docker host before any boot (it distributes public
    // images; a public image whose name is a docker reference is tagged by its name too).
    // The SSH path: it loads before it returns (the nova source asks Nova, which works after).
    let pre = novadock(lab_, &["prefetch", "-i", &inv, "--source", "glance"]);
    assert_eq!(pre.code, 0, "{pre:?}");
    cleanup.loaded_on = docker_hosts.clone();
    for h in &docker_hosts {
        on(h, &format!("docker image inspect {IMAGE} >/dev/null"));
    }

    // 3. Clear errors, and nothing left behind by them.
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.nope",
            "--image",
            IMAGE,
            "--count",
            "1",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("unknown flavor `d1.nope` (flavors: ") && r.stderr.contains("hint: "),
        "{r:?}"
    );
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.small",
            "--image",
            "bt-nope:latest",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown image `bt-nope:latest`"), "{r:?}");
    // kvm1 is no Docker host: the scheduler refuses a docker flavor there, and Nova says why.
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.small",
            "--image",
            IMAGE,
            "--count",
            "1",
            "--host",
            "kvm1",
        ],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("No valid host was found")
            && r.stderr
                .contains("hint: no compute host passed the scheduler's filters"),
        "{r:?}"
    );
    assert!(!r.all().contains("Traceback"), "{r:?}");
    assert_eq!(our_servers(), "", "a failed run left servers behind");

    // 4. 10 × d1.small with a port on lab-net, prefetched: each timed, all on Docker hosts
    //    (the driver waits for Neutron's network-vif-plugged), all deleted. d1.small: the
    //    hosts report their real capacity (2 CPUs each), no room for 10 × d1.large.
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.small",
            "--image",
            IMAGE,
            "--count",
            "10",
            "--network",
            "lab-net",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 10, "{doc}");
    for s in servers {
        let h = s["host"].as_str().unwrap();
        assert!(docker_hosts.iter().any(|d| d == h), "landed on {h}: {s}");
        assert_eq!(s["hypervisor_type"], "docker", "{s}");
        assert!(num(&s["api_to_active_s"]) > 0.0, "{s}");
        assert!(s["created_to_launched_s"].is_number(), "{s}");
        assert!(num(&s["request_to_container_s"]) > 0.0, "{s}");
        assert!(s["name"].as_str().unwrap().starts_with("bt-"), "{s}");
    }
    for k in ["api_to_active_s", "created_to_launched_s"] {
        let st = &doc["summary"][k];
        assert_eq!(st["n"], 10, "{doc}");
        assert!(
            num(&st["min"]) <= num(&st["median"])
                && num(&st["median"]) <= num(&st["p95"])
                && num(&st["p95"]) <= num(&st["max"]),
            "{st}"
        );
    }
    for line in [
        "server ",
        "API → ACTIVE (wall clock)",
        "created → launched_at (Nova)",
        "request → container started",
        "hosts: cmp",
        "ok: all 10 servers deleted",
    ] {
        assert!(r.stderr.contains(line), "missing {line:?} in\n{}", r.stderr);
    }
    assert_eq!(our_servers(), "", "boot-time left servers behind");
    let prefetched = doc["summary"]["api_to_active_s"].clone();

    // 4b. The same without a network: what is left of a boot without Neutron's part (port
    //     creation and binding by nova-compute, the agent's wiring, network-vif-plugged).
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.small",
            "--image",
            IMAGE,
            "--count",
            "5",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let bare: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(bare["servers"].as_array().unwrap().len(), 5, "{bare}");
    assert!(r.stderr.contains("ok: all 5 servers deleted"), "{r:?}");
    assert_eq!(our_servers(), "", "boot-time left servers behind");
    let bare = bare["summary"]["api_to_active_s"].clone();

    // 5. The same image removed from cmp1 before each boot, against it present.
    let r = novadock(
        lab_,
        &[
            "boot-time",
            "-i",
            &inv,
            "--flavor",
            "d1.small",
            "--image",
            IMAGE,
            "--count",
            &COMPARE_EACH.to_string(),
            "--network",
            "lab-net",
            "--compare-prefetch",
            "--host",
            "cmp1",
            "--json",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let cmp: Value = serde_json::from_str(&r.stdout).unwrap();
    for phase in ["present", "fetched"] {
        let servers = cmp[phase]["servers"].as_array().unwrap();
        assert_eq!(servers.len(), COMPARE_EACH, "{cmp}");
        assert!(servers.iter().all(|s| s["host"] == "cmp1"), "{cmp}");
    }
    let ratio = num(&cmp["ratio"]);
    assert!(ratio > 0.0, "{cmp}");
    assert!(r.stderr.contains("ratio: "), "{r:?}");
    assert!(
        r.stderr
            .contains("image absent (image fetched from Glance)"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains(&format!("ok: all {} servers deleted", 2 * COMPARE_EACH)),
        "{r:?}"
    );
    assert_eq!(our_servers(), "", "--compare-prefetch left servers behind");
    // The last fetched boot loaded it again: the host keeps its image, under its Glance id's
    // tag (the driver never applies the tarball's own name).
    let glance_id = cleanup.glance_id.clone().unwrap();
    on(
        "cmp1",
        &format!("docker image inspect glance/{glance_id}:latest >/dev/null"),
    );

    let m = |v: &Value| format!("{:.2} s", num(v));
    println!(
        "boot-time (lab): 10 × d1.small with a port on lab-net, {IMAGE_MB} MB image prefetched: API→ACTIVE median {} (min {}, p95 {}, max {}); \
         5 without a network: median {}; \
         --compare-prefetch on cmp1 ({COMPARE_EACH} each): median {} present, {} fetched from Glance, ratio {ratio:.2}×",
        m(&prefetched["median"]),
        m(&prefetched["min"]),
        m(&prefetched["p95"]),
        m(&prefetched["max"]),
        m(&bare["median"]),
        m(&cmp["present"]["summary"]["api_to_active_s"]["median"]),
        m(&cmp["fetched"]["summary"]["api_to_active_s"]["median"]),
    );
    drop(cleanup);
}
