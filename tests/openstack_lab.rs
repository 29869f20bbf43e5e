#![cfg(feature = "lab-tests")] // a test tier: docs/tests.md
//! The shipped bootstrap playbook against the lab's real OpenStack Zed (tests/lab): Glance and
//! Nova config, flavors, the docker aggregate, the Docker driver on cmp1/cmp2, then adding
//! cmp3. Slow (it resets the lab first); run by the README's test command.

mod common;

use common::lab::{Lab, addr, lines_with, on, os};
use common::repo;
use std::process::Command;
use std::time::{Duration, Instant};

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
        "  ~ ctl: would change: create flavor d1.small (ram 2048 MB, disk 20 GB, 1 vCPU, aggregate_instance_extra_specs:hypervisor_type=docker); create flavor d1.medium (ram 4096 MB, disk 40 GB, 2 vCPUs, aggregate_instance_extra_specs:hypervisor_type=docker); create flavor d1.large (ram 8192 MB, disk 80 GB, 4 vCPUs, aggregate_instance_extra_specs:hypervisor_type=docker)\n",
        "  ~ ctl: would change: aggregate docker: create, set metadata hypervisor_type=docker, add host cmp1, add host cmp2\n",
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
        "{'aggregate_instance_extra_specs:hypervisor_type': 'docker'}\n"
    );
    assert_eq!(
        os("aggregate show docker -f json -c hosts -c properties -c availability_zone")
            .split_whitespace()
            .collect::<String>(),
        r#"{"availability_zone":null,"hosts":["cmp1","cmp2"],"properties":{"hypervisor_type":"docker"}}"#
    );
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
        "image create --container-format docker --disk-format raw --file /root/tiny.tar --public lab/tiny:latest -f value -c id",
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
    os("server delete --wait nd-kvm");
    os(&format!("image delete {img}"));

    // 6. Add cmp3: --limit shows only cmp3's changes and its aggregate membership.
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
                || line.starts_with("  = ctl: unchanged — "),
            "a change for another host under --limit cmp3: {line}\n{}",
            plan3.stderr
        );
    }
    let apply3 = lab.novadock(&["apply", "-i", &inv3, "--limit", "cmp3", "--yes"]);
    assert_eq!(apply3.code, 0, "{apply3:?}");
    let again = lab.novadock(&["plan", "-i", &inv3]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(os("aggregate show docker -f value -c hosts").contains("cmp3"));

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
}
