#![cfg(feature = "lab-tests")] // a test tier: docs/tests.md
//! The shipped bootstrap playbook against the lab's real OpenStack Zed (tests/lab): Glance and
//! Nova config, flavors, the docker aggregate, the Docker driver on cmp1/cmp2, isolation both
//! ways, the guard stopping apply, then adding cmp3 (the check after apply, cells discovery),
//! a Docker restart under an instance. Slow (it resets the lab first); one lab for all of it.

mod common;

use common::lab::{Lab, addr, lines_with, on, os};
use common::repo;
use std::process::Command;
use std::time::{Duration, Instant};

/// A server of `flavor` and `image` created with `--host HOST` at compute microversion 2.74
/// (the scheduler's filters still run), waited for: (its final status, its fault message).
fn boot_on(name: &str, flavor: &str, image: &str, host: &str) -> (String, String) {
    os(&format!(
        "--os-compute-api-version 2.74 server create --flavor {flavor} --image {image} --nic none --host {host} {name} -f value -c id"
    ));
    let t = Instant::now();
    loop {
        let status = os(&format!("server show {name} -f value -c status"));
        let status = status.trim();
        if status == "ACTIVE" {
            return (status.to_string(), String::new());
        }
        if status == "ERROR" {
            // (an ACTIVE server has no fault column)
            let fault = os(&format!("server show {name} -f value -c fault"));
            return (status.to_string(), fault);
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "{name} still {status} after 180 s"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The compute hosts cells know (`nova-manage cell_v2 list_hosts`), by name.
fn mapped_hosts() -> String {
    on(
        "ctl",
        "su -s /bin/sh -c 'nova-manage cell_v2 list_hosts' nova | tr -d ' ' | awk -F'|' 'NF > 3 && $4 != \"Hostname\" {print $4}' | sort | tr '\\n' ' '",
    )
}

#[test]
fn bootstrap_then_add_a_compute_host_on_the_lab() {
    let lab = Lab::fresh();
    let inv = lab.inventory("lab.yml", "", "");
    let kvm1_before = on(
        "kvm1",
        "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum",
    );
    let scheduler_before = on(
        "ctl",
        "systemctl show -p InvocationID --value nova-scheduler",
    );
    // Counting starts in the journal from here: "restarted exactly once", not "restarted".
    let cursor = on(
        "ctl",
        "journalctl -n 0 --show-cursor -q | sed -n 's/^-- cursor: //p'",
    );
    let scheduler_starts = || {
        on(
            "ctl",
            &format!(
                "journalctl -u nova-scheduler --after-cursor '{}' -o cat --no-pager | grep -c '^Started ' || true",
                cursor.trim()
            ),
        )
        .trim()
        .to_string()
    };

    // 1. The plan shows every change and changes nothing.
    let plan = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(plan.code, 2, "{plan:?}");
    let e = &plan.stderr;
    for expected in [
        "  = ctl: unchanged — [image_format] container_formats in /etc/glance/glance-api.conf ([image_format] container_formats is not set; already effective through the default (ami,ari,aki,bare,ovf,ova,docker,compressed); release zed)\n",
        "  ~ ctl: would change: extend [filter_scheduler] enabled_filters in /etc/nova/nova.conf (release zed)\n",
        "      +enabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter\n",
        "  ~ ctl: would change: set [scheduler] enable_isolated_aggregate_filtering in /etc/nova/nova.conf\n",
        "  ~ ctl: would change: create flavor d1.small (ram 2048 MB, disk 20 GB, 1 vCPU, aggregate_instance_extra_specs:hypervisor_type=docker, trait:CUSTOM_NOVADOCK_DOCKER=required); create flavor d1.medium (ram 4096 MB, disk 40 GB, 2 vCPUs, aggregate_instance_extra_specs:hypervisor_type=docker, trait:CUSTOM_NOVADOCK_DOCKER=required); create flavor d1.large (ram 8192 MB, disk 80 GB, 4 vCPUs, aggregate_instance_extra_specs:hypervisor_type=docker, trait:CUSTOM_NOVADOCK_DOCKER=required)\n",
        // Isolation: the plan names the cloud's flavors that lose the Docker hosts.
        "  ~ ctl: would change: aggregate docker: create, set metadata hypervisor_type=docker, trait:CUSTOM_NOVADOCK_DOCKER=required, add host cmp1, add host cmp2 (isolation: the hosts of aggregate docker will take only flavors and images with trait:CUSTOM_NOVADOCK_DOCKER=required; flavors that can no longer be scheduled there: m1.tiny)\n",
        "  ~ ctl: would change: check after the changes that nova-compute is up with hypervisor type docker on cmp1, cmp2 (now cmp1: nova-compute is up, hypervisor type `fake`; cmp2: nova-compute is up, hypervisor type `fake`; waits up to 300 s)\n",
        "  ~ cmp1, cmp2: would change: add nova to docker\n",
        "  ~ cmp1, cmp2: would change: set [DEFAULT] compute_driver in /etc/nova/nova-compute.conf\n",
        "  ~ ctl: would run: restart nova-scheduler (one host at a time)\n",
        "  ~ cmp1, cmp2: would run: restart nova-compute\n",
    ] {
        assert!(e.contains(expected), "missing {expected:?} in\n{e}");
    }
    assert!(!e.contains("kvm1"), "kvm1 is in the plan:\n{e}");
    assert!(
        os("flavor list -f value -c Name")
            .lines()
            .all(|f| !f.starts_with("d1."))
    );

    // 2. Apply, then check the cloud.
    let apply = lab.novadock(&["apply", "-i", &inv, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(
        os("flavor show d1.large -f value -c properties"),
        "{'aggregate_instance_extra_specs:hypervisor_type': 'docker', 'trait:CUSTOM_NOVADOCK_DOCKER': 'required'}\n"
    );
    assert_eq!(
        os("aggregate show docker -f json -c hosts -c properties -c availability_zone")
            .split_whitespace()
            .collect::<String>(),
        r#"{"availability_zone":null,"hosts":["cmp1","cmp2"],"properties":{"hypervisor_type":"docker","trait:CUSTOM_NOVADOCK_DOCKER":"required"}}"#
    );
    let nova_conf = on("ctl", "cat /etc/nova/nova.conf");
    assert!(
        nova_conf.contains("\nenable_isolated_aggregate_filtering = true\n")
            && nova_conf.contains("\ndiscover_hosts_in_cells_interval = -1\n"),
        "{nova_conf}"
    );
    // The check after apply passed: both report docker now (kvm1 is no Docker host).
    let hv = os("hypervisor list -f value -c 'Hypervisor Hostname' -c 'Hypervisor Type' -c State");
    for line in ["cmp1 docker up", "cmp2 docker up", "kvm1 fake up"] {
        assert!(hv.contains(line), "{line:?} not in\n{hv}");
    }
    // The lab maps its computes without periodic discovery, all but cmp3 (add-compute's).
    assert_eq!(mapped_hosts(), "cmp1 cmp2 kvm1 ");
    let scheduler_after = on(
        "ctl",
        "systemctl show -p InvocationID --value nova-scheduler",
    );
    assert_ne!(
        scheduler_before, scheduler_after,
        "nova-scheduler was not restarted"
    );
    assert_eq!(
        scheduler_starts(),
        "1",
        "nova-scheduler restarts during apply"
    );
    assert!(
        on("ctl", "cat /etc/nova/nova.conf").contains("\nenabled_filters = ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter,AggregateInstanceExtraSpecsFilter\n")
    );
    // The driver reports hypervisor type docker once nova-compute is back.
    let t = Instant::now();
    loop {
        let hv = os("hypervisor list -f value -c 'Hypervisor Hostname' -c 'Hypervisor Type'");
        let docker: Vec<&str> = lines_with(&hv, " docker");
        if docker.len() == 2 && hv.contains("cmp1 docker") && hv.contains("cmp2 docker") {
            assert!(hv.contains("kvm1 fake"), "{hv}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(180),
            "hypervisors never became docker:\n{hv}"
        );
        std::thread::sleep(Duration::from_secs(5));
    }
    assert_eq!(
        on(
            "kvm1",
            "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
        ),
        kvm1_before,
        "kvm1 was touched"
    );

    // 3. Converged: a second plan changes nothing, and nothing restarts.
    let again = lab.novadock(&["plan", "-i", &inv]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        on(
            "ctl",
            "systemctl show -p InvocationID --value nova-scheduler"
        ),
        scheduler_after
    );
    assert_eq!(scheduler_starts(), "1", "nova-scheduler restarted again");

    // 4. A server of a docker flavor lands on a docker host, as a container: the filter
    //    matches the flavor's extra spec against the aggregate.
    on(
        "cmp1",
        r#"set -e
rm -rf /root/tiny && mkdir -p /root/tiny
for f in /bin/dash /bin/sleep $(ldd /bin/dash /bin/sleep | grep -o "/[^ :]*\.so[^ :]*"); do cp --parents -L "$f" /root/tiny/; done
ln -s dash /root/tiny/bin/sh
tar -C /root/tiny -cf /root/tiny-rootfs.tar .
docker rmi -f lab/tiny:latest >/dev/null 2>&1 || true
docker import --change 'CMD ["/bin/sleep", "infinity"]' /root/tiny-rootfs.tar lab/tiny:latest >/dev/null"#,
    );
    let host = repo().join("tests/lab/host").display().to_string();
    let copy = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{host} exec cmp1 docker save lab/tiny:latest | {host} exec ctl sh -c 'cat > /root/tiny.tar'"
        ))
        .status()
        .unwrap();
    assert!(copy.success());
    let img = os(
        "image create --container-format docker --disk-format raw --file /root/tiny.tar --public lab/tiny-plain -f value -c id",
    );
    let img = img.trim();
    let server = os(&format!(
        "--os-compute-api-version 2.37 server create --flavor d1.small --image {img} --nic none --wait nd-docker -f value -c id -c status"
    ));
    assert!(server.contains("ACTIVE"), "{server}");
    let uuid = server
        .lines()
        .find(|l| l.len() == 36)
        .unwrap_or_default()
        .to_string();
    let on_host = os("server show nd-docker -f value -c OS-EXT-SRV-ATTR:host");
    let on_host = on_host.trim();
    assert!(
        on_host == "cmp1" || on_host == "cmp2",
        "a docker flavor landed on {on_host}"
    );
    assert_eq!(
        on(
            on_host,
            &format!("docker inspect -f '{{{{.State.Running}}}}' nova-{uuid}")
        ),
        "true\n"
    );
    os("server delete --wait nd-docker");

    // 5. A KVM aggregate and a flavor scoped to it: its servers stay off the Docker hosts.
    let inv_kvm = lab.inventory(
        "lab-kvm.yml",
        "",
        "  other_aggregates: [{ name: kvm, metadata: { hypervisor_type: kvm }, hosts: kvm_computes }]\n  docker_flavors:\n    - { name: d1.small, ram: 2048, disk: 20, vcpus: 1 }\n    - { name: d1.medium, ram: 4096, disk: 40, vcpus: 2 }\n    - { name: d1.large, ram: 8192, disk: 80, vcpus: 4 }\n    - { name: k1.small, ram: 2048, disk: 20, vcpus: 1, properties: { \"aggregate_instance_extra_specs:hypervisor_type\": kvm } }\n",
    );
    let plan = lab.novadock(&["plan", "-i", &inv_kvm]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stderr.contains("  ~ ctl: would change: aggregate kvm: create, set metadata hypervisor_type=kvm, add host kvm1\n"),
        "{plan:?}"
    );
    let apply = lab.novadock(&["apply", "-i", &inv_kvm, "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let kvm = os(&format!(
        "--os-compute-api-version 2.37 server create --flavor k1.small --image {img} --nic none --wait nd-kvm -f value -c status"
    ));
    assert!(kvm.contains("ACTIVE"), "{kvm}");
    assert_eq!(
        os("server show nd-kvm -f value -c OS-EXT-SRV-ATTR:host"),
        "kvm1\n"
    );
    // The guard: kvm1 made a Docker compute while it hosts nd-kvm (the fake driver's). The
    // docker aggregate's refusal stops the whole apply: kvm1's own steps change nothing.
    let text = std::fs::read_to_string(common::lab::inventory_path())
        .unwrap()
        .replace(
            "kvm1: { address: 10.11.0.15, groups: [kvm_computes] }",
            "kvm1: { address: 10.11.0.15, groups: [docker_computes] }",
        );
    assert!(text.contains("kvm1: { address: 10.11.0.15, groups: [docker_computes] }"));
    let busy = lab.dir.path().join("busy.yml");
    std::fs::write(&busy, text).unwrap();
    let r = lab.novadock(&["apply", "-i", busy.to_str().unwrap(), "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    for expected in [
        "aggregate docker: kvm1 still hosts 1 instance of its fake driver: ",
        "error: step `The docker aggregate holds the Docker compute hosts` failed on ctl, and its failure stops the whole apply (any_errors_fatal): nothing was applied on any host\n",
        "hint: move them off first: ",
    ] {
        assert!(r.stderr.contains(expected), "missing {expected:?}\n{r:?}");
    }
    assert_eq!(
        on(
            "kvm1",
            "find /etc -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
        ),
        kvm1_before,
        "kvm1 was changed by an apply its guard refused"
    );
    os("server delete --wait nd-kvm");

    // 6. Add cmp3: --limit shows only cmp3's changes, its aggregate membership, the check
    //    after apply and cells discovery.
    let inv3 = lab.inventory(
        "lab3.yml",
        &format!(
            "  cmp3: {{ address: {}, groups: [docker_computes] }}\n",
            addr("cmp3")
        ),
        "",
    );
    let plan3 = lab.novadock(&["plan", "-i", &inv3, "--limit", "cmp3"]);
    assert_eq!(plan3.code, 2, "{plan3:?}");
    assert!(
        plan3
            .stderr
            .contains("  ~ ctl: would change: aggregate docker: add host cmp3\n"),
        "{plan3:?}"
    );
    for line in plan3
        .stderr
        .lines()
        .filter(|l| l.starts_with("  ~ ") || l.starts_with("  = "))
    {
        // ctl manages cmp3 too: its aggregate membership, and the prefetch job's host list.
        assert!(
            line.starts_with("  ~ cmp3: ")
                || line.starts_with("  = cmp3: ")
                || line == "  ~ ctl: would change: aggregate docker: add host cmp3"
                || line == "  ~ ctl: would change: edit /etc/novadock/known_hosts"
                || line == "  ~ ctl: would change: edit /etc/novadock/prefetch.yml"
                || line
                    == "  ~ ctl: would change: run su -s /bin/sh -c 'nova-manage cell_v2 discover_hosts' nova"
                || line.starts_with("  ~ ctl: would change: check after the changes that nova-compute is up with hypervisor type docker on cmp3 (now cmp3: ")
                || line.starts_with("  = ctl: unchanged — "),
            "a change for another host under --limit cmp3: {line}\n{}",
            plan3.stderr
        );
    }
    assert!(
        plan3.stderr.contains("  ~ ctl: would change: run su -s /bin/sh -c 'nova-manage cell_v2 discover_hosts' nova\n"),
        "{plan3:?}"
    );
    // Applied first with compute_driver written to a file nova-compute does not read: the
    // check after apply fails naming cmp3 and what it reports; discovery has mapped it.
    let unread = lab.inventory(
        "lab3-unread.yml",
        "  cmp3: { address: 10.11.0.14, groups: [docker_computes], vars: { nova_compute_conf: /etc/nova/nova-compute-unread.conf } }\n",
        "  docker_verify_timeout: 45\n",
    );
    let r = lab.novadock(&["apply", "-i", &unread, "--limit", "cmp3", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    for expected in [
        "compute_driver in /etc/nova/nova-compute-unread.conf",
        "nova-compute does not run with hypervisor type `docker` after 45 s: cmp3: nova-compute is up, hypervisor type `fake`\n",
        "hint: on that host, check that nova-compute reads the file compute_driver was written to",
    ] {
        assert!(r.stderr.contains(expected), "missing {expected:?}\n{r:?}");
    }
    // Discovery ran before the check (the lab's periodic discovery is off).
    assert_eq!(mapped_hosts(), "cmp1 cmp2 cmp3 kvm1 ");
    let apply3 = lab.novadock(&["apply", "-i", &inv3, "--limit", "cmp3", "--yes"]);
    assert_eq!(apply3.code, 0, "{apply3:?}");
    // The check runs after every host's changes (after_all): cmp3 may report docker already.
    assert!(
        apply3.stderr.contains("hypervisor type docker on cmp3"),
        "{apply3:?}"
    );
    let again = lab.novadock(&["plan", "-i", &inv3]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(os("aggregate show docker -f value -c hosts").contains("cmp3"));
    // Mapped by add-compute (the lab's periodic discovery is off), so schedulable: a docker
    // flavor's server targeted at cmp3 runs there.
    assert_eq!(mapped_hosts(), "cmp1 cmp2 cmp3 kvm1 ");
    let (status, fault) = boot_on("nd-cmp3", "d1.small", img, "cmp3");
    assert_eq!(status, "ACTIVE", "{fault}");
    os("server delete --wait nd-cmp3");

    // 7. Clear errors: an unknown compute host is named; bad credentials give OpenStack's words.
    let bad_host = lab.inventory(
        "bad-host.yml",
        &format!(
            "  cmp3: {{ address: {}, groups: [docker_computes], vars: {{ nova_host: cmp9 }} }}\n",
            addr("cmp3")
        ),
        "",
    );
    let r = lab.novadock(&["plan", "-i", &bad_host]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("aggregate docker: unknown compute host `cmp9`: not a nova-compute service host (`openstack compute service list` has: cmp1, cmp2, cmp3, kvm1)"),
        "{r:?}"
    );
    on(
        "ctl",
        "sed 's/OS_PASSWORD=.*/OS_PASSWORD=wrong/' /root/admin-openrc > /root/bad-openrc",
    );
    let bad_creds = lab.inventory(
        "bad-creds.yml",
        "",
        "  openstack_openrc: /root/bad-openrc\n",
    );
    let r = lab.novadock(&["plan", "-i", &bad_creds, "--limit", "ctl"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("OpenStack: Unauthorized: "), "{r:?}");
    assert!(!r.all().contains("Traceback"), "{r:?}");

    // Upstream nova-docker on Zed is refused in the plan, before anything on the host changes.
    let upstream = lab.inventory(
        "upstream.yml",
        "",
        "  docker_driver_import: novadocker.virt.docker.driver.DockerDriver\n  docker_driver_source: pip\n  docker_driver_pip: nova-docker\n  docker_driver_module: novadocker_shim\n",
    );
    let before = on(
        "cmp1",
        "find /etc /usr/lib/python3/dist-packages/nova/virt -xdev -type f -print0 | sort -z | xargs -0 sha256sum",
    );
    let r = lab.novadock(&["apply", "-i", &upstream, "--limit", "cmp1", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("  ✗ cmp1: failed\n      the upstream nova-docker driver (novadocker.virt.docker.driver.DockerDriver) cannot run on zed: "),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("      hint: use a Docker driver maintained for zed"),
        "{r:?}"
    );
    assert_eq!(
        on(
            "cmp1",
            "find /etc /usr/lib/python3/dist-packages/nova/virt -xdev -type f -print0 | sort -z | xargs -0 sha256sum"
        ),
        before,
        "cmp1 was changed"
    );

    // A driver installed with pip outside nova.virt, loaded through the shim the plan writes:
    // a server boots on it. (The package re-exports novadock's driver, installed above; the
    // prefetch job stays on Nova's pre-cache API, which that driver serves. Without the
    // bundled driver the default would be the SSH path, whose key `--limit cmp1` cannot make.)
    on(
        "cmp1",
        r#"set -e
rm -rf /root/ndshim && mkdir -p /root/ndshim/ndshim_driver
printf '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "ndshim-driver"\nversion = "1.0"\n' > /root/ndshim/pyproject.toml
echo 'from novadock_driver.driver import DockerDriver  # noqa: F401' > /root/ndshim/ndshim_driver/__init__.py"#,
    );
    let shim = lab.inventory(
        "shim.yml",
        "",
        "  docker_driver_source: pip\n  docker_driver_pip: /root/ndshim\n  docker_driver_pip_args: [--break-system-packages, --no-build-isolation]\n  docker_driver_import: ndshim_driver.DockerDriver\n  docker_driver_module: ndshim\n  docker_conf: { stop_timeout: 5 }\n  prefetch_source: nova\n",
    );
    let r = lab.novadock(&["apply", "-i", &shim, "--limit", "cmp1", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "  ~ cmp1: changed: create /usr/lib/python3/dist-packages/nova/virt/ndshim.py (shim nova.virt.ndshim for ndshim_driver.DockerDriver (release zed))\n",
        "  ~ cmp1: changed: set [docker] stop_timeout in /etc/nova/nova-compute.conf\n",
        "  ~ cmp1: ran: restart nova-compute\n",
    ] {
        assert!(r.stderr.contains(line), "missing {line:?}\n{r:?}");
    }
    let r = lab.novadock(&["plan", "-i", &shim, "--limit", "cmp1"]);
    assert_eq!(r.code, 0, "pip's step is not idempotent: {r:?}");
    let added = lab.novadock(&[
        "image",
        "add",
        "-i",
        &shim,
        "lab/tiny:latest",
        "--from-host",
        "cmp1",
        "--json",
    ]);
    assert_eq!(added.code, 0, "{added:?}");
    let tiny: serde_json::Value = serde_json::from_str(&added.stdout).unwrap();
    let server = os(&format!(
        "--os-compute-api-version 2.37 server create --flavor d1.small --image {} --nic none --availability-zone nova:cmp1 --wait nd-shim -f value -c status -c OS-EXT-SRV-ATTR:host",
        tiny["id"].as_str().unwrap()
    ));
    assert!(
        server.contains("ACTIVE") && server.contains("cmp1"),
        "{server}"
    );
    let tiny_id = tiny["id"].as_str().unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&os(&format!("image show {tiny_id} -f json -c properties"))).unwrap();
    assert_eq!(
        shown["properties"]["hypervisor_type"], "docker",
        "image add sets hypervisor_type: {shown}"
    );

    // Isolation, proven by the scheduler (--host at 2.74 keeps the filters): a plain flavor's
    // server on a Docker host, and a docker image's on kvm1, get no host. What differs from
    // a server that runs: the flavor (a docker flavor with this image runs on cmp1: nd-shim),
    // the image (m1.tiny with an image lacking hypervisor_type runs on kvm1: nd-plain-kvm).
    for (name, flavor, image, host, want) in [
        ("nd-plain", "m1.tiny", tiny_id, "cmp1", "ERROR"),
        ("nd-img", "m1.tiny", tiny_id, "kvm1", "ERROR"),
        ("nd-plain-kvm", "m1.tiny", img, "kvm1", "ACTIVE"),
    ] {
        let (status, fault) = boot_on(name, flavor, image, host);
        assert_eq!(status, want, "{name} on {host}: {fault}");
        if want == "ERROR" {
            assert!(fault.contains("No valid host was found"), "{name}: {fault}");
        }
        os(&format!("server delete --wait {name}"));
    }

    // Docker restarts under an instance (live-restore, set by the bootstrap's daemon.json):
    // the container keeps running, the same process, and the server stays ACTIVE.
    let shim_uuid = os("server show nd-shim -f value -c id");
    let container = format!("nova-{}", shim_uuid.trim());
    let pid = |c: &str| {
        on(
            "cmp1",
            &format!("docker inspect -f '{{{{.State.Running}}}} {{{{.State.Pid}}}}' {c}"),
        )
    };
    assert_eq!(
        on("cmp1", "docker info -f '{{.LiveRestoreEnabled}}'"),
        "true\n"
    );
    let before = pid(&container);
    assert!(before.starts_with("true "), "{before}");
    on(
        "cmp1",
        "systemctl restart docker && for i in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1",
    );
    assert_eq!(
        pid(&container),
        before,
        "the container did not survive dockerd's restart"
    );
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(os("server show nd-shim -f value -c status"), "ACTIVE\n");
    assert_eq!(pid(&container), before);
    os("server delete --wait nd-shim");

    // The same driver from git (a repository on cmp1, as pip reads any git URL), at a ref:
    // installed once, then unchanged while the ref's commit is the one installed.
    on(
        "cmp1",
        r#"set -e
command -v git >/dev/null  # in the compute image (the hosts have no network)
rm -rf /root/ndshim-git && cp -r /root/ndshim /root/ndshim-git && cd /root/ndshim-git
sed -i 's/^version = .*/version = "1.1"/' pyproject.toml
git init -q -b main && git add -A && git -c user.name=lab -c user.email=lab@lab commit -qm driver"#,
    );
    let text = std::fs::read_to_string(&shim)
        .unwrap()
        .replace(
            "  docker_driver_source: pip\n",
            "  docker_driver_source: git\n  docker_driver_git: file:///root/ndshim-git\n  docker_driver_ref: main\n",
        );
    std::fs::write(&shim, text).unwrap();
    let r = lab.novadock(&["apply", "-i", &shim, "--limit", "cmp1", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("git+file:///root/ndshim-git@main\n"),
        "{r:?}"
    );
    assert_eq!(
        on(
            "cmp1",
            "python3 -c 'import importlib.metadata as m; print(m.version(\"ndshim-driver\"))'"
        ),
        "1.1\n"
    );
    let r = lab.novadock(&["plan", "-i", &shim, "--limit", "cmp1"]);
    assert_eq!(r.code, 0, "the git source is not idempotent: {r:?}");
    os(&format!("image delete {img}"));
}
