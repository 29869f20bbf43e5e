//! What novadock knows about OpenStack releases: which option holds what, and its built-in
//! default, per release (verified against the projects' sources; see issue 4).

use crate::remote::Py;
use std::fmt;

/// OpenStack releases in order, Icehouse onwards.
pub(crate) const RELEASES: &[&str] = &[
    "icehouse",
    "juno",
    "kilo",
    "liberty",
    "mitaka",
    "newton",
    "ocata",
    "pike",
    "queens",
    "rocky",
    "stein",
    "train",
    "ussuri",
    "victoria",
    "wallaby",
    "xena",
    "yoga",
    "zed",
    "antelope",
    "bobcat",
    "caracal",
    "dalmatian",
    "epoxy",
    "flamingo",
    "gazpacho",
    "hibiscus",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Release(usize);

impl Release {
    pub(crate) fn named(name: &str) -> Option<Release> {
        let n = name.trim().to_ascii_lowercase();
        // The year names of 2023 onwards are accepted too.
        let n = match n.as_str() {
            "2023.1" => "antelope",
            "2023.2" => "bobcat",
            "2024.1" => "caracal",
            "2024.2" => "dalmatian",
            "2025.1" => "epoxy",
            "2025.2" => "flamingo",
            "2026.1" => "gazpacho",
            "2026.2" => "hibiscus",
            other => other,
        };
        RELEASES.iter().position(|r| *r == n).map(Release)
    }

    fn r(name: &str) -> Release {
        Release::named(name).expect("a release in RELEASES")
    }

    pub(crate) fn name(self) -> &'static str {
        RELEASES[self.0]
    }

    fn newest() -> Release {
        Release(RELEASES.len() - 1)
    }

    /// From an installed nova version ("2:26.2.2-1~deb12u4", "26.2.2", "2014.1.3"): nova 12 =
    /// Liberty … nova 34 = Hibiscus (2026.2). A newer major is `Newer`: the newest known rules.
    pub(crate) fn from_nova_version(v: &str) -> Option<Detected> {
        Release::from_major(v, 12)
    }

    /// From an installed glance version: glance 11 = Liberty … glance 33 = Hibiscus (2026.2).
    pub(crate) fn from_glance_version(v: &str) -> Option<Detected> {
        Release::from_major(v, 11)
    }

    /// Majors count one per release from Liberty (`liberty_major`) on; before that, years.
    fn from_major(v: &str, liberty_major: u32) -> Option<Detected> {
        let (major, minor) = major_minor(v)?;
        let liberty = Release::r("liberty").0;
        let known = |r| Some(Detected::Known(r));
        match major {
            2014 => known(Release::r(if minor == 1 { "icehouse" } else { "juno" })),
            2015 => known(Release::r("kilo")),
            m if m >= liberty_major && m < 2000 => {
                let i = liberty + (m - liberty_major) as usize;
                if i < RELEASES.len() {
                    known(Release(i))
                } else {
                    Some(Detected::Newer(Release::newest()))
                }
            }
            _ => None,
        }
    }
}

/// A release read off an installed version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detected {
    Known(Release),
    /// Newer than any release novadock knows: planned with the newest known one's rules.
    Newer(Release),
}

#[cfg(test)]
impl Detected {
    pub(crate) fn release(self) -> Release {
        match self {
            Detected::Known(r) | Detected::Newer(r) => r,
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn major_minor(v: &str) -> Option<(u32, u32)> {
    // Debian: an epoch before ':' and a revision after '-'.
    let v = v.trim();
    let v = v.split_once(':').map_or(v, |(_, rest)| rest);
    let mut parts = v.split(['.', '-', '~', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

/// Where an option lives in a given release, and what it is when unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownOption {
    pub(crate) section: &'static str,
    pub(crate) option: &'static str,
    pub(crate) aliases: Vec<(&'static str, &'static str)>,
    pub(crate) default: String,
}

/// Names usable as `known:` in an `ini` step.
pub(crate) const KNOWN: &[&str] = &["glance.container_formats", "nova.scheduler_filters"];

pub(crate) fn known(name: &str, r: Release) -> Option<KnownOption> {
    match name {
        "glance.container_formats" => {
            let mut formats = vec!["ami", "ari", "aki", "bare", "ovf", "ova"];
            if r >= Release::r("mitaka") {
                formats.push("docker");
            }
            if r >= Release::r("train") {
                formats.push("compressed");
            }
            Some(KnownOption {
                section: "image_format",
                option: "container_formats",
                aliases: vec![("DEFAULT", "container_formats")],
                default: formats.join(","),
            })
        }
        "nova.scheduler_filters" => {
            let mut filters = vec![
                "RetryFilter",
                "AvailabilityZoneFilter",
                "RamFilter",
                "DiskFilter",
                "ComputeFilter",
                "ComputeCapabilitiesFilter",
                "ImagePropertiesFilter",
                "ServerGroupAntiAffinityFilter",
                "ServerGroupAffinityFilter",
            ];
            if r >= Release::r("pike") {
                filters.retain(|f| !matches!(*f, "RamFilter" | "DiskFilter"));
            }
            if r >= Release::r("train") {
                filters.retain(|f| *f != "RetryFilter");
            }
            if r >= Release::r("xena") {
                filters.retain(|f| *f != "AvailabilityZoneFilter");
            }
            let (section, option, aliases) = if r <= Release::r("newton") {
                ("DEFAULT", "scheduler_default_filters", vec![])
            } else if r <= Release::r("wallaby") {
                (
                    "filter_scheduler",
                    "enabled_filters",
                    vec![("DEFAULT", "scheduler_default_filters")],
                )
            } else {
                ("filter_scheduler", "enabled_filters", vec![])
            };
            Some(KnownOption {
                section,
                option,
                aliases,
                default: filters.join(","),
            })
        }
        _ => None,
    }
}

/// A read-only command that prints the installed nova and glance versions (Debian packages,
/// else the Python packages).
pub(crate) const RELEASE_PROBE: &str = include_str!("remote/release-probe.sh");

/// The release a step works for: `release` named (or a template that rendered to a name), or
/// `auto`/absent, detected on the host by [`RELEASE_PROBE`]; with a phrase saying which.
pub(crate) fn resolve_release(
    release: Option<&str>,
    facts: &crate::facts::Facts,
    what: &str,
    project: Project,
) -> Result<(Release, String), String> {
    match release.map(str::trim) {
        None | Some("auto") | Some("") => {
            let out = facts
                .cmd(RELEASE_PROBE)
                .map(|c| c.stdout.as_str())
                .unwrap_or("");
            let (d, from) = detect(out, project).ok_or_else(|| {
                format!(
                    "{what}: cannot detect the OpenStack release (no python3-nova or python3-glance installed); set `release:`"
                )
            })?;
            Ok(match d {
                Detected::Known(r) => (r, format!("release {r}, detected from {from}")),
                // Defaults rarely change between releases; a wrong error would block a working
                // cloud, so the newest rules are used, visibly.
                Detected::Newer(r) => (
                    r,
                    format!(
                        "warning: {from} is newer than the releases novadock knows; planned with the rules of {r}, the newest known"
                    ),
                ),
            })
        }
        Some(name) => {
            let r = Release::named(name).ok_or_else(|| {
                format!(
                    "unknown OpenStack release `{name}` (known: {})",
                    RELEASES.join(", ")
                )
            })?;
            Ok((r, format!("release {r}")))
        }
    }
}

/// The project whose package tells a step's release: the one whose option it edits (nova's
/// and glance's packages can differ in the middle of an upgrade).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Project {
    Nova,
    Glance,
}

impl Project {
    /// The project of a known option ("glance.container_formats").
    pub(crate) fn of_known(name: &str) -> Project {
        if name.starts_with("glance.") {
            Project::Glance
        } else {
            Project::Nova
        }
    }

    fn package(self) -> &'static str {
        match self {
            Project::Nova => "python3-nova",
            Project::Glance => "python3-glance",
        }
    }
}

/// The release from [`RELEASE_PROBE`]'s output, with what it was read from: `prefer`'s
/// package, else the other one.
pub(crate) fn detect(probe_output: &str, prefer: Project) -> Option<(Detected, String)> {
    let mut found = probe_output.lines().filter_map(|line| {
        let (pkg, version) = line.split_once(' ')?;
        let r = match pkg {
            "python3-nova" => Release::from_nova_version(version),
            "python3-glance" => Release::from_glance_version(version),
            _ => None,
        }?;
        Some((pkg, r, format!("{pkg} {}", version.trim())))
    });
    let first = found.next()?;
    let preferred = prefer.package();
    let pick = if first.0 == preferred {
        first
    } else {
        found.find(|f| f.0 == preferred).unwrap_or(first)
    };
    Some((pick.1, pick.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 12 of issue 14: a name with a newline ended the `# label` comment, and the
    /// rest of it ran as a command.
    #[test]
    fn a_label_with_a_newline_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let auth = Auth {
            openrc: Some("/dev/null".into()),
            cloud: None,
        };
        let label = format!("openstack flavor x\ntouch {}\n#", pwned.display());
        let py = crate::remote::Py::bare("pass\n");
        let script = auth.change(&label, &py, &serde_json::json!({}));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(!pwned.exists(), "the label ran: {out:?}");
    }

    /// The values reach Python as they are: the here-document that carries them is one JSON
    /// line, which no value can end early.
    #[test]
    fn values_reach_python_as_json_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let pwned = dir.path().join("pwned");
        let auth = Auth {
            openrc: Some("/dev/null".into()),
            cloud: None,
        };
        let args = serde_json::json!({
            "v": format!("x\nND_ARGS\ntouch {}\n'$(id)' \\ \"", pwned.display()),
        });
        let py = crate::remote::Py::bare("print(json.dumps(ARGS))\n");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(auth.change("label", &py, &args))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got, args);
        assert!(!pwned.exists());
    }

    /// The probe (src/remote/release-probe.sh) through eval, as facts.rs runs it: Debian's
    /// packages, the uninstalled one (an empty version) left out; then Python's distributions.
    #[test]
    fn the_release_probe_reads_dpkg_then_python() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in [
            (
                "dpkg-query",
                "printf 'python3-nova 2:26.2.2-1\\npython3-glance \\n'",
            ),
            (
                "python3",
                "case \"$2\" in *\"'nova'\"*) echo python3-nova 30.0.0;; *) exit 1;; esac",
            ),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "(eval {}) </dev/null 2>/dev/null",
                crate::shell::quote(RELEASE_PROBE)
            ))
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "python3-nova 2:26.2.2-1\npython3-nova 30.0.0\n"
        );
        assert!(out.status.success());
    }

    #[test]
    fn versions_map_to_releases() {
        let nova = |v| Release::from_nova_version(v).map(|d| d.release().name());
        let glance = |v| Release::from_glance_version(v).map(|d| d.release().name());
        assert_eq!(nova("2:26.2.2-1~deb12u4"), Some("zed"));
        assert_eq!(glance("2:25.1.0-2+deb12u3"), Some("zed"));
        assert_eq!(nova("13.1.4"), Some("mitaka"));
        assert_eq!(nova("2014.1.5"), Some("icehouse"));
        assert_eq!(glance("12.0.0"), Some("mitaka"));
        assert_eq!(nova("30.0.0"), Some("dalmatian"));
        // Debian trixie's 2025.1 (nova 31, glance 30), and the 2026 releases.
        assert_eq!(nova("2:31.0.0-6"), Some("epoxy"));
        assert_eq!(glance("2:30.0.0-3"), Some("epoxy"));
        assert_eq!(nova("33.0.0"), Some("gazpacho"));
        assert_eq!(glance("32.0.0"), Some("gazpacho"));
        assert_eq!(nova("34.0.0"), Some("hibiscus"));
        assert_eq!(glance("33.0.0"), Some("hibiscus"));
        assert_eq!(
            Release::from_nova_version("34.1.0"),
            Some(Detected::Known(Release::r("hibiscus")))
        );
        assert_eq!(nova("11.0.0"), None);
        assert_eq!(nova("x"), None);
        assert_eq!(Release::named("2024.1").unwrap().name(), "caracal");
        assert_eq!(Release::named("2026.1").unwrap().name(), "gazpacho");
        assert_eq!(Release::named("2026.2").unwrap().name(), "hibiscus");
        assert_eq!(Release::named("Hibiscus").unwrap().name(), "hibiscus");
        assert!(Release::named("grizzly").is_none());
        assert_eq!(
            detect(
                "python3-nova 2:26.2.2-1~deb12u4\npython3-glance 2:25.1.0-2\n",
                Project::Nova
            ),
            Some((
                Detected::Known(Release::r("zed")),
                "python3-nova 2:26.2.2-1~deb12u4".into()
            ))
        );
        // What RELEASE_PROBE prints on the trixie lab's computes (Debian 13's 2025.1).
        assert_eq!(
            detect(
                "python3-nova 2:31.0.0-6+deb13u3\npython3-glance 2:30.0.0-3+deb13u5\n",
                Project::Nova
            ),
            Some((
                Detected::Known(Release::r("epoxy")),
                "python3-nova 2:31.0.0-6+deb13u3".into()
            ))
        );
        assert_eq!(
            detect("python3-glance 2:30.0.0-3+deb13u5\n", Project::Nova)
                .map(|(d, _)| d.release().name()),
            Some("epoxy")
        );
        // dpkg-query lists glance before nova: a nova option's release is read from nova, a
        // glance option's from glance (the two differ in the middle of an upgrade).
        let probe = "python3-glance 2:25.1.0-2\npython3-nova 2:31.0.0-6+deb13u3\n";
        assert_eq!(
            detect(probe, Project::Nova).map(|(d, from)| (d.release().name(), from)),
            Some(("epoxy", "python3-nova 2:31.0.0-6+deb13u3".into()))
        );
        assert_eq!(
            detect(probe, Project::Glance).map(|(d, from)| (d.release().name(), from)),
            Some(("zed", "python3-glance 2:25.1.0-2".into()))
        );
    }

    fn probed(out: &str) -> crate::facts::Facts {
        let mut f = crate::facts::Facts::default();
        f.cmds.insert(
            RELEASE_PROBE.into(),
            crate::facts::CmdFact {
                code: 0,
                stdout: out.into(),
            },
        );
        f
    }

    #[test]
    fn a_newer_major_gets_the_newest_rules_and_a_warning() {
        assert_eq!(
            Release::from_nova_version("35.0.0"),
            Some(Detected::Newer(Release::r("hibiscus")))
        );
        assert_eq!(
            Release::from_glance_version("40.2.0"),
            Some(Detected::Newer(Release::r("hibiscus")))
        );
        let facts = probed("python3-nova 35.0.0\n");
        let (r, how) = resolve_release(None, &facts, "x", Project::Nova).unwrap();
        assert_eq!(r.name(), "hibiscus");
        assert_eq!(
            how,
            "warning: python3-nova 35.0.0 is newer than the releases novadock knows; planned with the rules of hibiscus, the newest known"
        );
        let (r, how) = resolve_release(Some("2026.1"), &facts, "x", Project::Nova).unwrap();
        assert_eq!((r.name(), how.as_str()), ("gazpacho", "release gazpacho"));
        let facts = probed("python3-nova 2:33.0.0-1\n");
        let (r, how) = resolve_release(Some("auto"), &facts, "x", Project::Nova).unwrap();
        assert_eq!(
            (r.name(), how.as_str()),
            (
                "gazpacho",
                "release gazpacho, detected from python3-nova 2:33.0.0-1"
            )
        );
    }

    #[test]
    fn defaults_of_the_2026_releases_are_those_of_zed() {
        // Read from nova 34.0.0's nova/conf/scheduler.py and glance 33.0.0's
        // glance/common/config.py: unchanged since Zed.
        for k in KNOWN {
            assert_eq!(
                known(k, Release::r("hibiscus")),
                known(k, Release::r("zed"))
            );
        }
    }

    #[test]
    fn glance_defaults_by_release() {
        let d = |r| {
            known("glance.container_formats", Release::r(r))
                .unwrap()
                .default
        };
        assert_eq!(d("liberty"), "ami,ari,aki,bare,ovf,ova");
        assert_eq!(d("mitaka"), "ami,ari,aki,bare,ovf,ova,docker");
        assert_eq!(d("zed"), "ami,ari,aki,bare,ovf,ova,docker,compressed");
    }

    #[test]
    fn nova_filters_by_release() {
        let k = |r| known("nova.scheduler_filters", Release::r(r)).unwrap();
        let newton = k("newton");
        assert_eq!(
            (newton.section, newton.option),
            ("DEFAULT", "scheduler_default_filters")
        );
        assert!(
            newton
                .default
                .starts_with("RetryFilter,AvailabilityZoneFilter,RamFilter,DiskFilter,")
        );
        let ocata = k("ocata");
        assert_eq!(
            (ocata.section, ocata.option),
            ("filter_scheduler", "enabled_filters")
        );
        assert_eq!(ocata.aliases, [("DEFAULT", "scheduler_default_filters")]);
        assert!(ocata.default.contains("RamFilter"));
        assert!(!k("pike").default.contains("RamFilter"));
        assert!(k("stein").default.starts_with("RetryFilter,"));
        assert_eq!(
            k("train").default,
            "AvailabilityZoneFilter,ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter"
        );
        let xena = k("xena");
        assert!(xena.aliases.is_empty());
        assert_eq!(
            xena.default,
            "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter"
        );
        assert_eq!(k("zed").default, xena.default);
    }
}

/// How steps reach the cloud: credentials stay on the controller, as operators keep them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Auth {
    /// A shell file exporting OS_* variables (default /root/admin-openrc).
    pub(crate) openrc: Option<String>,
    /// A clouds.yaml entry, instead of `openrc`.
    pub(crate) cloud: Option<String>,
}

impl Auth {
    /// Shell that sets up credentials and runs `py` with `args` (crate::remote's convention).
    fn python(&self, py: &Py, args: &serde_json::Value) -> String {
        self.python_bounded(py, args, PY_TIMEOUT_SECS)
    }

    /// As `python`, with the whole run bounded by `secs` (boot-time's runs take longer).
    pub(crate) fn python_bounded(&self, py: &Py, args: &serde_json::Value, secs: u32) -> String {
        use crate::shell::quote;
        let env = match (&self.cloud, &self.openrc) {
            (Some(c), _) => format!("OS_CLOUD={} ", quote(c)),
            (None, o) => format!(
                ". {} >/dev/null && ",
                quote(o.as_deref().unwrap_or("/root/admin-openrc"))
            ),
        };
        // A cloud that accepts connections but never answers (say, Keystone still starting)
        // must not hang the run: every request and the whole run are bounded.
        format!(
            "{env}OS_API_TIMEOUT=60 timeout {secs} {} <<'ND_ARGS'\n{}ND_ARGS",
            py.command(),
            crate::remote::args_line(args)
        )
    }

    /// Checks shared by the OpenStack steps: a resource `name`, one credential source.
    pub(crate) fn validate(&self, name: &str) -> Result<(), String> {
        if name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if self.openrc.is_some() && self.cloud.is_some() {
            return Err("give `openrc` or `cloud`, not both".into());
        }
        Ok(())
    }

    /// What the shared probe found on this host.
    pub(crate) fn facts(&self, facts: &crate::facts::Facts) -> Result<CloudFacts, String> {
        cloud_facts(facts.cmd(&self.facts_probe()))
    }

    /// The read-only probe every OpenStack step of this auth shares: one run for all.
    pub(crate) fn facts_probe(&self) -> String {
        self.python(&crate::remote::CLOUD_FACTS, &serde_json::json!({}))
    }

    /// A change: `args` reach Python as JSON on its stdin, so no value is ever parsed as code.
    pub(crate) fn change(&self, label: &str, py: &Py, args: &serde_json::Value) -> String {
        self.change_bounded(label, py, args, PY_TIMEOUT_SECS)
    }

    /// As `change`, bounded by `secs` (a check that waits for the computes takes longer).
    pub(crate) fn change_bounded(
        &self,
        label: &str,
        py: &Py,
        args: &serde_json::Value,
        secs: u32,
    ) -> String {
        // A no-op command, not a comment: a name with a newline would end a comment.
        format!(
            ": {}\n{}",
            crate::shell::quote(label),
            self.python_bounded(py, args, secs)
        )
    }
}

/// Upper bound for one OpenStack probe or change (Python start-up, auth, a few API calls).
pub(crate) const PY_TIMEOUT_SECS: u32 = 300;

/// What the facts probe found.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct CloudFacts {
    #[serde(default)]
    pub(crate) flavors: Vec<Flavor>,
    #[serde(default)]
    pub(crate) aggregates: Vec<Aggregate>,
    /// (nova-compute service host, "up"/"down")
    #[serde(default)]
    pub(crate) compute_hosts: Vec<(String, String)>,
    /// Glance images of container format docker.
    #[serde(default)]
    pub(crate) docker_images: Vec<GlanceEntry>,
    /// nova-compute host → (hypervisor type, instances on it).
    #[serde(default)]
    pub(crate) hypervisors: std::collections::BTreeMap<String, (String, u64)>,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct GlanceEntry {
    pub(crate) name: Option<String>,
    pub(crate) id: String,
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) hypervisor_type: Option<String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Flavor {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) ram: u64,
    pub(crate) disk: u64,
    pub(crate) vcpus: u64,
    pub(crate) extra_specs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Aggregate {
    pub(crate) name: String,
    pub(crate) id: serde_json::Value,
    pub(crate) hosts: Vec<String>,
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
}

/// Parse the probe's output; an OpenStack error becomes the step's error, verbatim.
pub(crate) fn cloud_facts(out: Option<&crate::facts::CmdFact>) -> Result<CloudFacts, String> {
    let Some(out) = out else {
        return Err("no OpenStack facts were gathered".into());
    };
    let text = out.stdout.trim();
    if text.is_empty() {
        return Err(if out.code == 124 {
            format!("the OpenStack API did not answer within {PY_TIMEOUT_SECS} s")
        } else {
            format!(
                "the OpenStack facts probe printed nothing (exit {}); are the credentials file and python3-openstacksdk on this host?",
                out.code
            )
        });
    }
    let facts: CloudFacts = serde_json::from_str(text.lines().last().unwrap_or(""))
        .map_err(|e| format!("unexpected output from the OpenStack facts probe: {e}"))?;
    match facts.error {
        Some(e) => Err(format!("OpenStack: {e}")),
        None => Ok(facts),
    }
}
