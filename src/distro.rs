//! The host's distribution, as the playbook's defaults need it: unit names, the file
//! nova-compute reads the driver's options from, the package manager. Detected from files the
//! facts read anyway (one round trip), and given to templates as `distro`.
//!
//! A host whose OpenStack was deployed by kolla-ansible or openstack-ansible is refused: its
//! configuration files are generated from that tool's overrides (a file novadock writes is
//! overwritten or never read), and its services run in containers or virtualenvs.

use crate::facts::{Facts, FileFact, Probe};
use serde::Serialize;

/// What the playbook's defaults read, as `distro.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Profile {
    /// os-release's ID (`debian`, `ubuntu`, `rocky`, ...), `unknown` without one.
    pub(crate) id: String,
    /// `debian` (Debian, Ubuntu and their derivatives) or `redhat` (RHEL, Rocky, Alma,
    /// CentOS Stream, Fedora: RDO's packages).
    pub(crate) family: &'static str,
    /// `apt` or `dnf`.
    pub(crate) package_manager: &'static str,
    pub(crate) glance_api_unit: &'static str,
    pub(crate) nova_scheduler_unit: &'static str,
    pub(crate) nova_compute_unit: &'static str,
    /// The file the compute driver's options go to: one nova-compute reads, after nova.conf.
    pub(crate) nova_compute_conf: String,
    /// nova/virt of the distribution's Python, when known for the release.
    pub(crate) nova_virt_dir: String,
    /// The Docker engine's package (RHEL's is Docker's own docker-ce, from Docker's repository).
    pub(crate) docker_package: &'static str,
    /// The `docker` command's package where it is not the engine's nor one of its dependencies
    /// (Debian 13: `docker-cli`), else empty.
    pub(crate) docker_cli_package: &'static str,
}

const OS_RELEASE: [&str; 2] = ["/etc/os-release", "/usr/lib/os-release"];
/// Where each family's nova-compute unit file is (the admin's copy in /etc first).
const UNIT_DIRS: [&str; 3] = [
    "/etc/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];
const KOLLA: &str = "/etc/kolla";
const OSA: [&str; 2] = ["/openstack/venvs", "/etc/openstack_deploy"];
const CONF_D: &str = "/etc/nova/nova.conf.d";

/// The files the detection reads; every host's facts include them.
pub(crate) fn probes() -> Vec<Probe> {
    let mut p: Vec<String> = OS_RELEASE.iter().map(|s| s.to_string()).collect();
    for dir in UNIT_DIRS {
        for unit in ["nova-compute", "openstack-nova-compute"] {
            p.push(format!("{dir}/{unit}.service"));
        }
    }
    p.push(KOLLA.into());
    p.extend(OSA.iter().map(|s| s.to_string()));
    p.push(CONF_D.into());
    p.into_iter().map(Probe::File).collect()
}

/// The profile templates see before the facts are read: Debian's. A host detected as another
/// family is planned again with its own (one more round trip, for that host only).
pub(crate) fn assumed() -> Profile {
    debian("debian".into(), None, "")
}

/// Debian split the `docker` command off docker.io into docker-cli in 26.1.4+dfsg1-7, which
/// Debian 13 (trixie) ships; docker.io only Recommends it. A host that installs no Recommends
/// then has dockerd but no `docker`, which prefetch over SSH, `image add --from-host` and
/// boot-time run. Debian's testing and unstable (no VERSION_ID) have the split too. Ubuntu's
/// docker.io carries the command; other derivatives set `docker_cli_package` themselves.
fn docker_cli_package(id: &str, version_id: Option<&str>) -> &'static str {
    let split = match version_id {
        None => true,
        Some(v) => v
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= 13),
    };
    if id == "debian" && split {
        "docker-cli"
    } else {
        ""
    }
}

fn debian(id: String, unit: Option<&str>, docker_cli: &'static str) -> Profile {
    Profile {
        id,
        family: "debian",
        package_manager: "apt",
        glance_api_unit: "glance-api",
        nova_scheduler_unit: "nova-scheduler",
        nova_compute_unit: "nova-compute",
        // The unit runs /etc/init.d/nova-compute, which adds this file after nova.conf.
        nova_compute_conf: unit
            .and_then(|u| compute_conf(u, false))
            .unwrap_or_else(|| "/etc/nova/nova-compute.conf".into()),
        nova_virt_dir: "/usr/lib/python3/dist-packages/nova/virt".into(),
        docker_package: "docker.io",
        docker_cli_package: docker_cli,
    }
}

fn redhat(id: String, version: &str, unit: Option<&str>, conf_d: bool) -> Profile {
    // The platform Python RDO's packages are built for.
    let python = match version.split('.').next().unwrap_or("") {
        "8" => "python3.6",
        "9" => "python3.9",
        "10" => "python3.12",
        _ => "python3",
    };
    Profile {
        id,
        family: "redhat",
        package_manager: "dnf",
        glance_api_unit: "openstack-glance-api",
        nova_scheduler_unit: "openstack-nova-scheduler",
        nova_compute_unit: "openstack-nova-compute",
        nova_compute_conf: unit
            .and_then(|u| compute_conf(u, conf_d))
            .unwrap_or_else(|| default_conf(conf_d)),
        nova_virt_dir: format!("/usr/lib/{python}/site-packages/nova/virt"),
        docker_package: "docker-ce",
        // docker-ce depends on docker-ce-cli.
        docker_cli_package: "",
    }
}

/// Without `--config-file`, nova-compute reads oslo.config's defaults: nova.conf, then the
/// files of /etc/nova/nova.conf.d/ when that directory exists (they win).
fn default_conf(conf_d: bool) -> String {
    if conf_d {
        format!("{CONF_D}/novadock.conf")
    } else {
        "/etc/nova/nova.conf".into()
    }
}

/// The file a unit's nova-compute reads last, from its `ExecStart`: the last `--config-file`,
/// or a file in its last `--config-dir`; `None` when ExecStart runs something else (Debian's
/// runs its init script). `conf_d`: /etc/nova/nova.conf.d exists.
pub(crate) fn compute_conf(unit: &str, conf_d: bool) -> Option<String> {
    let exec = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .next_back()?;
    let words: Vec<&str> = exec.split_whitespace().collect();
    let program = words.first()?.trim_start_matches(['-', '@', '+', '!', ':']);
    // Debian's and Ubuntu's unit runs the init script, also named nova-compute.
    let nova = program.ends_with("/nova-compute") && !program.starts_with("/etc/init.d/");
    if !nova && program != "nova-compute" {
        return None;
    }
    let mut file = None;
    let mut dir = None;
    let mut it = words.iter().skip(1);
    while let Some(w) = it.next() {
        for (flag, slot) in [("--config-file", &mut file), ("--config-dir", &mut dir)] {
            if let Some(v) = w.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
                *slot = Some(v.to_string());
            } else if *w == flag {
                *slot = it.clone().next().map(|v| v.to_string());
            }
        }
    }
    Some(match (dir, file) {
        (Some(d), _) => format!("{}/novadock.conf", d.trim_end_matches('/')),
        (None, Some(f)) => f,
        (None, None) => default_conf(conf_d),
    })
}

/// os-release's `KEY=value` (quotes removed).
fn os_release_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').trim_matches('\''))
    })
}

fn text(facts: &Facts, path: &str) -> Option<String> {
    match facts.file(path) {
        FileFact::File { content, .. } => Some(String::from_utf8_lossy(content).into_owned()),
        _ => None,
    }
}

fn exists(facts: &Facts, path: &str) -> bool {
    !matches!(facts.file(path), FileFact::Absent)
}

/// The host's profile from its facts, or why novadock must not configure it (`error` text,
/// then a `hint:` line).
pub(crate) fn detect(facts: &Facts) -> Result<Profile, String> {
    if exists(facts, KOLLA) {
        return Err(KOLLA_REFUSAL.into());
    }
    if let Some(p) = OSA.iter().find(|p| exists(facts, p)) {
        return Err(OSA_REFUSAL.replace("{path}", p));
    }
    let release = OS_RELEASE
        .iter()
        .find_map(|p| text(facts, p))
        .unwrap_or_default();
    let id = os_release_field(&release, "ID")
        .unwrap_or("unknown")
        .to_string();
    let like = os_release_field(&release, "ID_LIKE").unwrap_or("");
    let is = |names: &[&str]| {
        std::iter::once(id.as_str())
            .chain(like.split_whitespace())
            .any(|w| names.contains(&w))
    };
    let unit = |name: &str| {
        UNIT_DIRS
            .iter()
            .find_map(|d| text(facts, &format!("{d}/{name}.service")))
    };
    let conf_d = matches!(facts.file(CONF_D), FileFact::Dir { .. });
    if is(&["rhel", "fedora", "centos"]) {
        let version = os_release_field(&release, "VERSION_ID").unwrap_or("");
        return Ok(redhat(
            id,
            version,
            unit("openstack-nova-compute").as_deref(),
            conf_d,
        ));
    }
    // Debian, Ubuntu and what is like them; an unknown distribution gets Debian's defaults,
    // which the inventory can override one by one.
    let cli = docker_cli_package(&id, os_release_field(&release, "VERSION_ID"));
    Ok(debian(id, unit("nova-compute").as_deref(), cli))
}

const KOLLA_REFUSAL: &str = "this host's OpenStack is deployed by kolla-ansible (/etc/kolla exists): its services run in containers whose configuration kolla-ansible generates from its overrides, so a file novadock wrote here would never be read, and the next `kolla-ansible reconfigure` would undo the rest. Nothing was changed on this host.
hint: configure the Docker driver through kolla-ansible on its deployment host: [DEFAULT] compute_driver in /etc/kolla/config/nova/nova-compute.conf, [filter_scheduler] enabled_filters (with AggregateInstanceExtraSpecsFilter) in /etc/kolla/config/nova/nova-scheduler.conf, [image_format] container_formats (with docker) in /etc/kolla/config/glance/glance-api.conf, then `kolla-ansible reconfigure` (`novadock help deploy-kolla-osa`)";

const OSA_REFUSAL: &str = "this host's OpenStack is deployed by openstack-ansible ({path} exists): its services run from virtualenvs and its configuration files are generated from openstack-ansible's overrides, so a file novadock wrote here would be overwritten by the next playbook run. Nothing was changed on this host.
hint: configure the Docker driver through openstack-ansible's overrides in /etc/openstack_deploy/user_variables.yml: nova_nova_conf_overrides ([DEFAULT] compute_driver, [filter_scheduler] enabled_filters with AggregateInstanceExtraSpecsFilter) and glance_glance_api_conf_overrides ([image_format] container_formats with docker), then run os-nova-install.yml and os-glance-install.yml (`novadock help deploy-kolla-osa`)";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{Content, Meta};

    fn meta() -> Meta {
        Meta {
            owner: "root".into(),
            group: "root".into(),
            mode: "644".into(),
        }
    }

    fn facts(files: &[(&str, &str)], dirs: &[&str]) -> Facts {
        let mut f = Facts::default();
        for (p, c) in files {
            f.files.insert(
                p.to_string(),
                FileFact::File {
                    meta: meta(),
                    content: Content::from(c.as_bytes()),
                },
            );
        }
        for d in dirs {
            f.files
                .insert(d.to_string(), FileFact::Dir { meta: meta() });
        }
        f
    }

    const DEBIAN12: &str = include_str!("../tests/data/distro/os-release.debian12");
    const DEBIAN13: &str = include_str!("../tests/data/distro/os-release.debian13");
    const UBUNTU2404: &str = include_str!("../tests/data/distro/os-release.ubuntu2404");
    const ROCKY9: &str = include_str!("../tests/data/distro/os-release.rocky9");
    const RHEL9: &str = include_str!("../tests/data/distro/os-release.rhel9");
    const DEBIAN_UNIT: &str = include_str!("../tests/data/distro/nova-compute.service.debian12");
    const RDO_UNIT: &str = include_str!("../tests/data/distro/openstack-nova-compute.service.rdo");

    #[test]
    fn debian_and_ubuntu_use_their_packages_names_and_nova_compute_conf() {
        for (release, id) in [(DEBIAN12, "debian"), (UBUNTU2404, "ubuntu")] {
            let p = detect(&facts(
                &[
                    ("/etc/os-release", release),
                    ("/usr/lib/systemd/system/nova-compute.service", DEBIAN_UNIT),
                ],
                &[],
            ))
            .unwrap();
            assert_eq!(p.id, id);
            assert_eq!(p.family, "debian");
            assert_eq!(p.package_manager, "apt");
            assert_eq!(p.glance_api_unit, "glance-api");
            assert_eq!(p.nova_scheduler_unit, "nova-scheduler");
            assert_eq!(p.nova_compute_conf, "/etc/nova/nova-compute.conf");
            assert_eq!(p.docker_package, "docker.io");
            assert_eq!(p.docker_cli_package, "");
            // What templates saw before the facts: a Debian host is planned once.
            assert_eq!(
                Profile {
                    id: "debian".into(),
                    ..p
                },
                assumed()
            );
        }
    }

    /// trixie's docker.io only Recommends docker-cli, which holds the `docker` command.
    #[test]
    fn debian_13_and_later_install_docker_cli_too() {
        let cli = |release: &str| {
            detect(&facts(&[("/usr/lib/os-release", release)], &[]))
                .unwrap()
                .docker_cli_package
        };
        assert_eq!(cli(DEBIAN13), "docker-cli");
        assert_eq!(
            cli(&DEBIAN13.replace("VERSION_ID=\"13\"", "VERSION_ID=\"14\"")),
            "docker-cli"
        );
        // testing and unstable name no version.
        let sid = "PRETTY_NAME=\"Debian GNU/Linux forky/sid\"\nNAME=\"Debian GNU/Linux\"\nVERSION_CODENAME=forky\nID=debian\n";
        assert_eq!(cli(sid), "docker-cli");
        for older in [DEBIAN12, UBUNTU2404, ROCKY9, ""] {
            assert_eq!(cli(older), "", "{older}");
        }
        // Everything else about trixie is bookworm's.
        let p = detect(&facts(&[("/etc/os-release", DEBIAN13)], &[])).unwrap();
        assert_eq!(
            Profile {
                docker_cli_package: "",
                ..p
            },
            assumed()
        );
    }

    #[test]
    fn rdo_reads_no_nova_compute_conf() {
        for (release, id) in [(ROCKY9, "rocky"), (RHEL9, "rhel")] {
            let unit = "/usr/lib/systemd/system/openstack-nova-compute.service";
            let p = detect(&facts(
                &[("/etc/os-release", release), (unit, RDO_UNIT)],
                &[],
            ))
            .unwrap();
            assert_eq!(p.id, id);
            assert_eq!(p.family, "redhat");
            assert_eq!(p.package_manager, "dnf");
            assert_eq!(p.glance_api_unit, "openstack-glance-api");
            assert_eq!(p.nova_scheduler_unit, "openstack-nova-scheduler");
            assert_eq!(p.nova_compute_unit, "openstack-nova-compute");
            assert_eq!(p.nova_compute_conf, "/etc/nova/nova.conf");
            assert_eq!(
                p.nova_virt_dir,
                "/usr/lib/python3.9/site-packages/nova/virt"
            );
            // With nova.conf.d, which oslo.config reads after nova.conf, a file of its own.
            let p = detect(&facts(
                &[("/etc/os-release", release), (unit, RDO_UNIT)],
                &["/etc/nova/nova.conf.d"],
            ))
            .unwrap();
            assert_eq!(p.nova_compute_conf, "/etc/nova/nova.conf.d/novadock.conf");
        }
    }

    #[test]
    fn the_units_exec_start_decides_the_file() {
        assert_eq!(compute_conf(DEBIAN_UNIT, false), None);
        assert_eq!(
            compute_conf(RDO_UNIT, false).as_deref(),
            Some("/etc/nova/nova.conf")
        );
        let custom = "[Service]\nExecStart=/opt/nova/bin/nova-compute --config-file /etc/nova/nova.conf --config-file=/etc/nova/compute.conf\n";
        assert_eq!(
            compute_conf(custom, true).as_deref(),
            Some("/etc/nova/compute.conf")
        );
        let dir = "[Service]\nExecStart=\nExecStart=-/usr/bin/nova-compute --config-dir /etc/nova/conf.d/\n";
        assert_eq!(
            compute_conf(dir, false).as_deref(),
            Some("/etc/nova/conf.d/novadock.conf")
        );
        // An admin's copy in /etc wins over the package's.
        let p = detect(&facts(
            &[
                ("/etc/os-release", ROCKY9),
                ("/etc/systemd/system/openstack-nova-compute.service", custom),
                (
                    "/usr/lib/systemd/system/openstack-nova-compute.service",
                    RDO_UNIT,
                ),
            ],
            &[],
        ))
        .unwrap();
        assert_eq!(p.nova_compute_conf, "/etc/nova/compute.conf");
    }

    #[test]
    fn no_os_release_gets_debians_defaults() {
        let p = detect(&Facts::default()).unwrap();
        assert_eq!(p.id, "unknown");
        assert_eq!(p.family, "debian");
    }

    #[test]
    fn kolla_and_openstack_ansible_hosts_are_refused() {
        let e = detect(&facts(&[("/etc/os-release", UBUNTU2404)], &["/etc/kolla"])).unwrap_err();
        assert!(
            e.starts_with("this host's OpenStack is deployed by kolla-ansible (/etc/kolla exists)"),
            "{e}"
        );
        assert!(
            e.contains("\nhint: configure the Docker driver through kolla-ansible"),
            "{e}"
        );
        for p in OSA {
            let e = detect(&facts(&[("/etc/os-release", UBUNTU2404)], &[p])).unwrap_err();
            assert!(
                e.starts_with(&format!(
                    "this host's OpenStack is deployed by openstack-ansible ({p} exists)"
                )),
                "{e}"
            );
            assert!(e.contains("\nhint: configure the Docker driver through openstack-ansible's overrides in /etc/openstack_deploy/user_variables.yml: nova_nova_conf_overrides"), "{e}");
        }
    }
}
