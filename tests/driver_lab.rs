#![cfg(feature = "lab-tests")] // a test tier: docs/tests.md
//! novadock's own Nova Docker driver (driver/), installed by the shipped bootstrap, against the
//! lab's real Nova, Glance and Neutron (Zed, or 2025.1 with NOVADOCK_LAB_RELEASE=trixie;
//! ML2/Open vSwitch on the userspace datapath):
//! networked containers reachable through security groups, across hosts over VXLAN, through
//! reboot, pause, power off/on and snapshot; Nova's image pre-cache API; nothing left behind;
//! a third compute added by the shipped add-compute playbook, and a networked `boot-time`.
//! tests/run-all runs it on trixie's 2025.1, the release operators run now; on Zed the same
//! driver boots networked containers in openstack_lab and prefetch_lab, and meets Debian's Zed
//! Nova, os-vif and Open vSwitch in driver/tests/run-host.

mod common;

use common::lab::{Lab, on, os, release, timer_run};
use std::time::{Duration, Instant};

/// A scratch image on cmp1: a static busybox serving /www on port 8080 (and saying so on its
/// console), uploaded to Glance by `novadock image add`; its Glance id.
fn web_image(lab: &Lab, inv: &str, name: &str, page: &str) -> String {
    on(
        "cmp1",
        &format!(
            r#"set -e
rm -rf /root/web && mkdir -p /root/web/bin /root/web/www
cp "$(command -v busybox)" /root/web/bin/busybox
ln -s busybox /root/web/bin/sh
echo {page} > /root/web/www/index.html
printf '#!/bin/busybox sh\necho "web: serving on $(/bin/busybox hostname)"\nexec /bin/busybox httpd -f -p 8080 -h /www\n' > /root/web/bin/start
chmod 755 /root/web/bin/start
tar -C /root/web -cf /root/web.tar .
docker rmi -f {name} >/dev/null 2>&1 || true
docker import --change 'CMD ["/bin/start"]' /root/web.tar {name} >/dev/null"#
        ),
    );
    let r = lab.novadock(&[
        "image",
        "add",
        "-i",
        inv,
        name,
        "--from-host",
        "cmp1",
        "--public",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// `openstack server create … --wait`, as admin: (server id, its address on `net`).
fn boot(name: &str, image: &str, net: &str, extra: &str) -> (String, String) {
    let out = os(&format!(
        "server create --flavor d1.small --image {image} --network {net} {extra} --wait {name} -f value -c id -c status"
    ));
    assert!(out.contains("ACTIVE"), "{name}: {out}");
    let id = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 36)
        .unwrap_or_else(|| panic!("{name}: no id in {out}"))
        .to_string();
    (id, address(name, net))
}

fn address(name: &str, net: &str) -> String {
    let out = os(&format!("server show {name} -f json -c addresses"));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let addr = &v["addresses"][net][0];
    addr.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{name} has no address on {net}: {out}"))
}

fn status(name: &str) -> String {
    os(&format!("server show {name} -f value -c status"))
        .trim()
        .to_string()
}

fn wait_status(name: &str, want: &str) {
    let t = Instant::now();
    loop {
        let s = status(name);
        if s == want {
            return;
        }
        assert!(
            s != "ERROR" && t.elapsed() < Duration::from_secs(120),
            "{name} is {s}, not {want}: {}",
            os(&format!("server show {name} -f value -c fault"))
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// GET http://ADDR:8080/ from lab-net's DHCP namespace on ctl (outside every instance):
/// the page, or the error (`timed out` when a firewall drops the SYN).
fn get(dhcp_ns: &str, addr: &str) -> Result<String, String> {
    let out = on(
        "ctl",
        &format!(
            "ip netns exec {dhcp_ns} python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://{addr}:8080/\", timeout=4).read().decode().strip())' 2>&1 | tail -1; echo rc=${{PIPESTATUS[0]}}"
        ),
    );
    let (text, rc) = out.trim().rsplit_once("rc=").unwrap();
    if rc == "0" {
        Ok(text.trim().to_string())
    } else {
        Err(text.trim().to_string())
    }
}

/// The page, once the instance's port is up and its flows are in (bounded wait).
fn reachable(dhcp_ns: &str, addr: &str) -> String {
    let t = Instant::now();
    loop {
        match get(dhcp_ns, addr) {
            Ok(page) => return page,
            Err(e) if t.elapsed() > Duration::from_secs(90) => {
                panic!("{addr}:8080 unreachable from {dhcp_ns}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}

fn host_of(name: &str) -> String {
    os(&format!(
        "server show {name} -f value -c OS-EXT-SRV-ATTR:host"
    ))
    .trim()
    .to_string()
}

/// The host's devices and br-int ports named after `port_id` (tap…, qvo…, qvb…, qbr…). Asked
/// of `ip`: a lab host's /sys/class/net shows another namespace's devices.
fn leftovers(host: &str, port_id: &str) -> String {
    let short = &port_id[..11];
    on(
        host,
        &format!("{{ ip -o link show; ovs-vsctl list-ports br-int; }} | grep -- '{short}' || true"),
    )
}

fn port_of(server_id: &str) -> String {
    os(&format!("port list --device-id {server_id} -f value -c ID"))
        .trim()
        .to_string()
}

/// One lab for both parts (a pristine lab and its first bootstrap cost ~5 min): the second
/// starts from what the first leaves, a bootstrapped cloud without servers or docker images.
#[test]
fn the_shipped_driver_on_the_lab() {
    let lab = Lab::fresh();
    networked_containers(&lab);
    prefetch_through_nova_needs_no_key_on_the_computes(&lab);
}

/// The shipped bootstrap on a pristine lab; containers as networked instances through their
/// life; nothing left behind, not even their images in Glance.
fn networked_containers(lab: &Lab) {
    let inv = lab.inventory("lab.yml", "", "");
    let apply = lab.novadock(&["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply.stderr.contains(
            "  ~ cmp1, cmp2: changed: set [DEFAULT] compute_driver in /etc/nova/nova-compute.conf\n"
        ),
        "{apply:?}"
    );
    // The `docker` command: docker.io's own on bookworm; trixie's docker.io only Recommends
    // docker-cli, which the lab's computes lack (tests/lab/README.md, Releases).
    assert_eq!(
        apply
            .stderr
            .contains("  ~ cmp1, cmp2: changed: install docker-cli\n"),
        release() == "trixie",
        "{apply:?}"
    );
    let plan = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(plan.code, 0, "the second plan is not empty: {plan:?}");

    // The hypervisors are docker, with the host's own figures (not a fake's).
    let t = Instant::now();
    loop {
        let h =
            os("hypervisor list -f value -c 'Hypervisor Hostname' -c 'Hypervisor Type' -c State");
        if h.contains("cmp1 docker up") && h.contains("cmp2 docker up") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{h}");
        std::thread::sleep(Duration::from_secs(2));
    }
    // 2.87: the last microversion with the hypervisor's figures (2.88 moved them to Placement);
    // OSC 7 (trixie) asks for the newest one by default, OSC 6 (bookworm) for 2.1.
    let shown = os("--os-compute-api-version 2.87 hypervisor show cmp1 -f json");
    let hv: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let cpus: u64 = on("cmp1", "nproc --all").trim().parse().unwrap();
    let mem_mb: u64 = on(
        "cmp1",
        "awk '/^MemTotal/ { print int($2 / 1024) }' /proc/meminfo",
    )
    .trim()
    .parse()
    .unwrap();
    assert_eq!(hv["vcpus"].as_u64(), Some(cpus), "{shown}");
    assert_eq!(hv["memory_mb"].as_u64(), Some(mem_mb), "{shown}");

    let net = os("network show lab-net -f value -c id").trim().to_string();
    let dhcp_ns = format!("qdhcp-{net}");
    let image = web_image(lab, &inv, "lab/web:1", "novadock-web");
    os("security group create nd-web -f value -c id");
    os("security group rule create --ingress --protocol tcp --dst-port 8080 nd-web");
    os("security group rule create --ingress --protocol icmp nd-web");

    // 1. A server on lab-net serving HTTP: reachable through a group that allows it.
    let (web1, ip1) = boot(
        "web1",
        &image,
        "lab-net",
        "--security-group nd-web --availability-zone nova:cmp1",
    );
    assert_eq!(reachable(&dhcp_ns, &ip1), "novadock-web");
    assert_eq!(
        on(
            "cmp1",
            &format!(
                "docker inspect -f '{{{{.HostConfig.NetworkMode}}}} {{{{.Config.Hostname}}}}' nova-{web1}"
            )
        ),
        "none web1\n"
    );
    // One without the rule is not: its SYN is dropped (a timeout, not a refusal).
    let (web2, ip2) = boot("web2", &image, "lab-net", "--availability-zone nova:cmp2");
    on("cmp2", &format!("docker inspect nova-{web2} >/dev/null"));
    match get(&dhcp_ns, &ip2) {
        Err(e) => assert!(e.contains("timed out"), "{e}"),
        Ok(page) => panic!("web2 answered without a rule: {page}"),
    }

    // 2. Console log: the container's output, bounded.
    let t = Instant::now();
    while !os("console log show web1").contains("web: serving on web1") {
        assert!(t.elapsed() < Duration::from_secs(30), "no console output");
        std::thread::sleep(Duration::from_secs(1));
    }

    // 3. Reboot (soft, hard), pause/unpause, power off/on: same address, reachable again.
    os("server reboot --wait web1");
    assert_eq!(address("web1", "lab-net"), ip1);
    assert_eq!(reachable(&dhcp_ns, &ip1), "novadock-web");
    os("server reboot --hard --wait web1");
    assert_eq!(reachable(&dhcp_ns, &ip1), "novadock-web");
    os("server pause web1");
    wait_status("web1", "PAUSED");
    assert_eq!(
        on(
            "cmp1",
            &format!("docker inspect -f '{{{{.State.Paused}}}}' nova-{web1}")
        ),
        "true\n"
    );
    os("server unpause web1");
    wait_status("web1", "ACTIVE");
    assert_eq!(reachable(&dhcp_ns, &ip1), "novadock-web");
    os("server stop web1");
    wait_status("web1", "SHUTOFF");
    assert_eq!(
        on(
            "cmp1",
            &format!("docker inspect -f '{{{{.State.Running}}}}' nova-{web1}")
        ),
        "false\n"
    );
    os("server start web1");
    wait_status("web1", "ACTIVE");
    assert_eq!(address("web1", "lab-net"), ip1);
    assert_eq!(reachable(&dhcp_ns, &ip1), "novadock-web");

    // 4. Snapshot → a docker image in Glance → boot from it → reachable.
    on(
        "cmp1",
        &format!(
            "docker exec nova-{web1} /bin/busybox sh -c 'echo snapshot-web > /www/index.html'"
        ),
    );
    os("server image create --name web1-snap --wait web1");
    assert_eq!(
        os("image show web1-snap -f value -c container_format -c status"),
        "docker\nactive\n"
    );
    let snap = os("image show web1-snap -f value -c id").trim().to_string();
    let (_web3, ip3) = boot(
        "web3",
        &snap,
        "lab-net",
        "--security-group nd-web --availability-zone nova:cmp2",
    );
    assert_eq!(reachable(&dhcp_ns, &ip3), "snapshot-web");

    // 5. Two servers on lab-vx on different hosts reach each other through the tunnel.
    let (vxa, _) = boot(
        "vx-a",
        &image,
        "lab-vx",
        "--security-group nd-web --availability-zone nova:cmp1",
    );
    let (_vxb, ipb) = boot(
        "vx-b",
        &image,
        "lab-vx",
        "--security-group nd-web --availability-zone nova:cmp2",
    );
    assert_eq!(
        (host_of("vx-a"), host_of("vx-b")),
        ("cmp1".into(), "cmp2".into())
    );
    let t = Instant::now();
    loop {
        // busybox nc: the static busybox's wget crashes (SIGSEGV) in this scratch image.
        let out = on(
            "cmp1",
            &format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | docker exec -i nova-{vxa} /bin/busybox nc -w 4 {ipb} 8080 2>&1; true"
            ),
        );
        if out.lines().last() == Some("novadock-web") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "vx-a cannot reach vx-b at {ipb}: {out}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // 6. Nova's image pre-cache API puts an image on every host of the aggregate, by id.
    let cached = web_image(lab, &inv, "lab/web:2", "cached");
    on("cmp1", "docker rmi -f lab/web:2 >/dev/null");
    os(&format!(
        "--os-compute-api-version 2.81 aggregate cache image docker {cached}"
    ));
    for h in ["cmp1", "cmp2"] {
        let t = Instant::now();
        while on(
            h,
            &format!(
                "docker image inspect glance/{cached}:latest >/dev/null 2>&1 && echo yes || echo no"
            ),
        ) != "yes\n"
        {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{cached} not cached on {h}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    // 7. Delete leaves no container, no veth, no OVS port.
    let ports: Vec<(String, String, String)> = ["web1", "web2", "web3", "vx-a", "vx-b"]
        .iter()
        .map(|n| {
            let id = os(&format!("server show {n} -f value -c id"))
                .trim()
                .to_string();
            (n.to_string(), host_of(n), port_of(&id))
        })
        .collect();
    for (n, _, _) in &ports {
        os(&format!("server delete --wait {n}"));
    }
    for (n, host, port) in &ports {
        assert_eq!(
            leftovers(host, port),
            "",
            "{n}'s port {port} left devices on {host}"
        );
    }
    for h in ["cmp1", "cmp2"] {
        assert_eq!(
            on(h, "docker ps -aq --filter label=novadock.instance"),
            "",
            "containers left on {h}"
        );
    }
    // The images go too: the next part counts the docker images in Glance.
    os(&format!("image delete {image} {cached} {snap}"));
    let left = os("image list -f value -c ID");
    for id in [&image, &cached, &snap] {
        assert!(
            !left.contains(id.as_str()),
            "image {id} left in Glance: {left}"
        );
    }
}

/// Whether `host`'s dockerd has the image tagged by Glance id `id`, within `secs`.
fn cached_within(host: &str, id: &str, secs: u64) -> bool {
    let t = Instant::now();
    loop {
        let has = on(
            host,
            &format!(
                "docker image inspect glance/{id}:latest >/dev/null 2>&1 && echo yes || echo no"
            ),
        );
        if has == "yes\n" {
            return true;
        }
        if t.elapsed() > Duration::from_secs(secs) {
            return false;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Issue 13, "Prefetch through Nova": with the shipped driver the prefetch job's default
/// source is Nova's image pre-cache API. Switching to it takes the controller's key back from
/// the computes; the timer's run puts every public docker image on every host of the
/// aggregate, tagged by Glance id, with no SSH from the controller to them. A compute added
/// later by add-compute gets them at the next run; `boot-time --network` boots on all three.
fn prefetch_through_nova_needs_no_key_on_the_computes(lab: &Lab) {
    let calendar = "  prefetch_on_calendar: \"2099-01-01\"\n";
    // 1. An earlier bootstrap with the SSH source authorized the controller's key...
    let ssh_inv = lab.inventory(
        "ssh.yml",
        "",
        &format!("{calendar}  prefetch_source: glance\n"),
    );
    let apply = lab.novadock(&["apply", "-i", &ssh_inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        on("cmp1", "cat /root/.ssh/authorized_keys").contains(" novadock-prefetch@ctl\n"),
        "the glance source authorizes the prefetch key"
    );
    // ... the default (nova, with the bundled driver) removes it, on every compute.
    let inv = lab.inventory("lab.yml", "", calendar);
    let apply = lab.novadock(&["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stderr
            .contains("  ~ cmp1, cmp2: changed: edit /root/.ssh/authorized_keys\n"),
        "{apply:?}"
    );
    for h in ["cmp1", "cmp2"] {
        let authorized = on(h, "cat /root/.ssh/authorized_keys");
        assert!(
            !authorized.contains("novadock-prefetch@") && !authorized.contains("prefetch-host.py"),
            "{h}: {authorized}"
        );
    }
    let job = on("ctl", "cat /etc/novadock/prefetch.yml");
    assert!(
        job.contains("  prefetch_source: \"nova\"\n") && !job.contains("identity_file"),
        "{job}"
    );
    let plan = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(plan.code, 0, "the second plan is not empty: {plan:?}");

    // 2. Two public docker images in Glance (Nova 26 refuses some requests of several images:
    //    novadock then asks for them one by one).
    let one = web_image(lab, &inv, "lab/pre:1", "pre-1");
    let two = web_image(lab, &inv, "lab/pre:2", "pre-2");
    on("cmp1", "docker rmi -f lab/pre:1 lab/pre:2 >/dev/null");
    let dry = lab.novadock(&["prefetch", "-i", &inv, "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stderr.contains(
            "  ~ aggregate docker: would ask Nova to cache 2 images on 2 hosts (lab/pre:1, lab/pre:2)\n"
        ),
        "{dry:?}"
    );
    assert!(!cached_within("cmp1", &one, 0), "a dry run cached {one}");

    // 3. The timer's run asks Nova; the driver loads both images on both hosts.
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains(
            "  ~ aggregate docker: asked Nova to cache 2 images on 2 hosts (lab/pre:1, lab/pre:2)\n"
        ) && log.contains("Nova caches asynchronously"),
        "{log}"
    );
    for h in ["cmp1", "cmp2"] {
        for id in [&one, &two] {
            assert!(cached_within(h, id, 180), "{id} not cached on {h}");
        }
    }

    // 4. Asking again is harmless (the driver finds them there); the JSON names images and hosts.
    let again = lab.novadock(&["prefetch", "-i", &inv, "--json"]);
    assert_eq!(again.code, 0, "{again:?}");
    let v: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["source"], "nova", "{v}");
    assert_eq!(v["hosts"], serde_json::json!(["cmp1", "cmp2"]), "{v}");
    let mut ids: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want = vec![one.as_str(), two.as_str()];
    want.sort();
    assert_eq!(ids, want, "{v}");
    assert!(v["requests"].as_u64().unwrap() >= 1, "{v}");

    // 5. Nova has no un-cache call: --prune is refused, with the way to do it.
    let prune = lab.novadock(&["prefetch", "-i", &inv, "--prune"]);
    assert_eq!(prune.code, 1, "{prune:?}");
    assert!(prune.stderr.contains("hint: --source glance"), "{prune:?}");

    // 6. A third compute joins through the shipped add-compute playbook (Docker engine and
    //    command, the driver, the aggregate), and the timer's next run caches both images on it.
    let (inv3, add) = lab.add_compute("lab3", "cmp3", calendar);
    assert_eq!(add.code, 0, "{add:?}");
    assert!(
        add.stderr
            .contains("  ~ ctl: changed: aggregate docker: add host cmp3\n"),
        "{add:?}"
    );
    assert_eq!(
        add.stderr
            .contains("  ~ cmp3: changed: install docker-cli\n"),
        release() == "trixie",
        "{add:?}"
    );
    let plan3 = lab.novadock(&["plan", "-i", &inv3]);
    assert_eq!(
        plan3.code, 0,
        "the plan after add-compute is not empty: {plan3:?}"
    );
    let (ok, log) = timer_run();
    assert!(ok, "{log}");
    assert!(
        log.contains("  ~ aggregate docker: asked Nova to cache 2 images on 3 hosts"),
        "{log}"
    );
    for id in [&one, &two] {
        assert!(cached_within("cmp3", id, 180), "{id} not cached on cmp3");
    }

    // 7. boot-time, networked, on the three hosts: every server ACTIVE on a Docker host, the
    //    containers' start times read over SSH with `docker` on each, all deleted.
    let bt = lab.novadock(&[
        "boot-time",
        "-i",
        &inv3,
        "--flavor",
        "d1.small",
        "--image",
        "lab/pre:1",
        "--count",
        "3",
        "--network",
        "lab-net",
        "--json",
    ]);
    assert_eq!(bt.code, 0, "{bt:?}");
    let doc: serde_json::Value = serde_json::from_str(&bt.stdout).unwrap();
    let servers = doc["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{doc}");
    for s in servers {
        let h = s["host"].as_str().unwrap();
        assert!(["cmp1", "cmp2", "cmp3"].contains(&h), "landed on {h}: {s}");
        assert_eq!(s["hypervisor_type"], "docker", "{s}");
        assert!(s["api_to_active_s"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["request_to_container_s"].as_f64().unwrap() > 0.0, "{s}");
    }
    assert!(bt.stderr.contains("ok: all 3 servers deleted"), "{bt:?}");
    assert_eq!(
        os("server list -f value -c Name"),
        "",
        "boot-time left servers behind"
    );
}
