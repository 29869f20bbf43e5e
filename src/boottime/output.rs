//! What the boot-time Python process reports, and a run's error made of it.

use super::Options;
use crate::printer::hinted;
use crate::transport::ExecOutput;
use anyhow::{Context, Result, anyhow};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PyOut {
    #[serde(default)]
    pub(crate) servers: Vec<PyServer>,
    #[serde(default)]
    pub(crate) left_behind: Vec<String>,
    /// The final sweep itself failed (say, Nova went away): nobody knows what is left.
    pub(crate) sweep_error: Option<String>,
    pub(crate) error: Option<PyError>,
    pub(crate) image: Option<Named>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PyError {
    pub(crate) kind: String,
    pub(crate) message: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Named {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PyServer {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) host: Option<String>,
    pub(crate) hypervisor_type: Option<String>,
    /// Epoch seconds on the controller's clock.
    pub(crate) requested_at: f64,
    pub(crate) active_at: Option<f64>,
    /// Nova's timestamps, epoch seconds.
    pub(crate) created: Option<f64>,
    pub(crate) launched_at: Option<f64>,
}

/// One server's figures, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) hypervisor_type: Option<String>,
    /// Wall clock: create request → first poll that saw ACTIVE.
    pub(crate) api_to_active: f64,
    /// Nova's own `created` → `OS-SRV-USG:launched_at` (whole seconds).
    pub(crate) created_to_launched: Option<f64>,
    /// Create request → the container started (Docker hosts only; clocks synced by NTP).
    pub(crate) to_container: Option<f64>,
}

impl PyServer {
    pub(super) fn sample(&self, container_started: Option<f64>) -> Sample {
        Sample {
            name: self.name.clone(),
            id: self.id.clone(),
            host: self.host.clone().unwrap_or_else(|| "?".into()),
            hypervisor_type: self.hypervisor_type.clone(),
            api_to_active: self.active_at.map_or(f64::NAN, |a| a - self.requested_at),
            created_to_launched: match (self.created, self.launched_at) {
                (Some(c), Some(l)) => Some(l - c),
                _ => None,
            },
            to_container: container_started.map(|s| s - self.requested_at),
        }
    }
}

/// The JSON line the Python process printed last; an empty stdout means it never got that
/// far (no openstacksdk, bad credentials file, the run's time bound).
pub(crate) fn parse_py(out: &ExecOutput, bound: u32) -> Result<PyOut> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
    else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        return Err(anyhow!(if out.code == Some(124) {
            format!("the OpenStack run did not finish within {bound} s")
        } else if let Some(e) = stderr.lines().rev().find(|l| l.starts_with("error: ")) {
            format!("on the controller: {}", &e["error: ".len()..])
        } else {
            format!(
                "the boot-time run on the controller printed nothing (exit {}){}",
                out.code.map_or("by signal".into(), |c| c.to_string()),
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            )
        }));
    };
    serde_json::from_str(line).context("unexpected output from the boot-time run on the controller")
}

/// `docker events` lines "<instance uuid> <TimeNano>" → uuid → epoch seconds of the first
/// start. Lines that are not that are ignored.
pub(crate) fn parse_starts(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(nanos), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(nanos) = nanos.parse::<u128>() else {
            continue;
        };
        out.entry(id.to_string())
            .or_insert((nanos / 1000) as f64 / 1e6);
    }
    out
}

/// A run's error, with a hint by kind; servers left behind are an error of their own.
pub(super) fn outcome(o: &Options, prefix: &str, out: &PyOut) -> Result<()> {
    // Said even when the run failed for another reason: the operator must know.
    let left = if let Some(e) = &out.sweep_error {
        Some(format!(
            "could not make sure that every server of this run is deleted ({e}); `openstack server list --name '^{}'` lists them",
            prefix
        ))
    } else if out.left_behind.is_empty() {
        None
    } else {
        Some(format!(
            "servers left behind after 300 s of deleting; `openstack server delete {}` deletes them",
            out.left_behind.join(" ")
        ))
    };
    let Some(e) = &out.error else {
        return left.map_or(Ok(()), |l| Err(anyhow!(l)));
    };
    let hint = match e.kind.as_str() {
        "unknown_flavor" => Some("`openstack flavor list` shows the flavors".to_string()),
        "unknown_network" => Some("`openstack network list` shows the networks".to_string()),
        "unknown_image" => Some(
            "a Docker image goes to Glance with `docker save NAME:TAG > x.tar && openstack image create --container-format docker --disk-format raw --file x.tar NAME:TAG`".into(),
        ),
        "no_valid_host" => Some(format!(
            "no compute host passed the scheduler's filters for flavor {}{}: are the hosts of its aggregate up (`openstack compute service list`), and does `novadock plan` show the flavor and aggregate converged?",
            o.flavor,
            o.host.as_deref().map(|h| format!(" on {h}")).unwrap_or_default()
        )),
        "quota" => Some(format!(
            "raise the project's quota (`openstack quota set --instances N --cores N --ram MB PROJECT`) or boot fewer at once (--count {}, --concurrency {})",
            o.count, o.concurrency
        )),
        _ if e.message.contains("Compute host") => Some("--host takes a nova-compute host name: `openstack compute service list`".into()),
        _ => None,
    };
    let mut err = match hint {
        Some(h) => hinted(e.message.clone(), h),
        None => anyhow!(e.message.clone()),
    };
    if let Some(l) = left {
        err = err.context(l);
    }
    Err(err.context(format!(
        "boot-time of {} × {} from {} failed",
        o.count, o.flavor, o.image
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boottime::stats::Measured;
    use crate::printer;

    #[test]
    fn docker_start_events_parse() {
        let text = "15b1da30-66a3-4cdb-a053-8d6b7e81971d 1796029849455775953\n\
                    garbage\n\
                    a6d81f9c-2ee0-4f7e-b17b-4e50dc218a6e notanumber\n\
                    15b1da30-66a3-4cdb-a053-8d6b7e81971d 1796029999000000000\n";
        let m = parse_starts(text);
        assert_eq!(m.len(), 1);
        // the first start counts; microsecond precision survives the f64
        let t = m["15b1da30-66a3-4cdb-a053-8d6b7e81971d"];
        assert!((t - 1_796_029_849.455_776).abs() < 1e-5, "{t}");
    }

    fn exec(code: i32, stdout: &str, stderr: &str) -> ExecOutput {
        ExecOutput {
            code: Some(code),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn python_output_parses_into_samples() {
        let out = parse_py(&exec(0, r#"{"servers": [{"name": "bt-x-01", "id": "u1", "requested_at": 100.25, "status": "ACTIVE", "active_at": 101.0, "host": "cmp1", "created": 100.0, "launched_at": 102.0, "hypervisor_type": "docker"}], "left_behind": [], "error": null, "flavor": {"id": "f", "name": "d1.large"}, "image": {"id": "i", "name": "bt-big:latest", "size": 1, "container_format": "docker"}}"#, ""), 300).unwrap();
        assert_eq!(out.image.unwrap().name.as_deref(), Some("bt-big:latest"));
        let s = out.servers[0].sample(Some(100.75));
        assert_eq!(s.api_to_active, 0.75);
        assert_eq!(s.created_to_launched, Some(2.0));
        assert_eq!(s.to_container, Some(0.5));
        let m = Measured {
            samples: vec![s],
            notes: vec![],
        };
        let j = m.json();
        assert_eq!(j["summary"]["api_to_active_s"]["median"], 0.75);
        assert_eq!(j["hosts"]["cmp1"], 1);
        assert!(m.human().contains("API → ACTIVE (wall clock)"));
    }

    #[test]
    fn python_failures_become_one_line() {
        let e = parse_py(
            &exec(
                1,
                "",
                "error: python3-openstacksdk is not installed on this host\n",
            ),
            300,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "on the controller: python3-openstacksdk is not installed on this host"
        );
        let e = parse_py(&exec(124, "", ""), 300).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the OpenStack run did not finish within 300 s"
        );
        let e = parse_py(
            &exec(2, "", "sh: 1: .: cannot open /root/nope: No such file\n"),
            300,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("printed nothing (exit 2): sh: 1: .: cannot open /root/nope"),
            "{e}"
        );
        let out = parse_py(
            &exec(
                0,
                "noise\n{\"error\": {\"kind\": \"quota\", \"message\": \"Quota exceeded\"}}\n",
                "",
            ),
            300,
        )
        .unwrap();
        assert_eq!(out.error.unwrap().kind, "quota");
    }

    fn opts() -> Options {
        Options {
            inventory: "inv.yml".into(),
            flavor: "d1.large".into(),
            image: "bt-big:latest".into(),
            count: 10,
            concurrency: 2,
            host: None,
            network: None,
            json: false,
            compare_prefetch: false,
            timeout: 300,
            persist_secs: 0,
            connect_timeout_secs: 10,
            accept_new_host_keys: false,
        }
    }

    /// The whole error as printed: message, causes, hints.
    fn shown(e: &anyhow::Error) -> String {
        let mut s: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        for c in e.chain() {
            if let Some(h) = c.downcast_ref::<printer::Hinted>() {
                s.push(format!("hint: {}", h.hint));
            }
        }
        s.join("\n")
    }

    #[test]
    fn outcomes_explain_themselves() {
        let fail = |kind: &str, message: &str| PyOut {
            error: Some(PyError {
                kind: kind.into(),
                message: message.into(),
            }),
            ..PyOut::default()
        };
        assert!(outcome(&opts(), "bt-r-", &PyOut::default()).is_ok());
        let e = outcome(&opts(), "bt-r-", &fail("quota", "server bt-r-06 is ERROR: Quota exceeded for cores: Requested 4, but already used 20 of 20 cores")).unwrap_err();
        assert_eq!(
            shown(&e),
            "boot-time of 10 × d1.large from bt-big:latest failed\n\
             server bt-r-06 is ERROR: Quota exceeded for cores: Requested 4, but already used 20 of 20 cores\n\
             hint: raise the project's quota (`openstack quota set --instances N --cores N --ram MB PROJECT`) or boot fewer at once (--count 10, --concurrency 2)"
        );
        let e = outcome(
            &Options {
                host: Some("kvm1".into()),
                ..opts()
            },
            "bt-r-",
            &fail(
                "no_valid_host",
                "server bt-r-01 is ERROR: No valid host was found. ",
            ),
        )
        .unwrap_err();
        assert!(
            shown(&e).contains(
                "hint: no compute host passed the scheduler's filters for flavor d1.large on kvm1"
            ),
            "{}",
            shown(&e)
        );
        let e = outcome(
            &opts(),
            "bt-r-",
            &fail(
                "api",
                "creating a server: Compute host cmp9 could not be found.",
            ),
        )
        .unwrap_err();
        assert!(
            shown(&e).ends_with(
                "hint: --host takes a nova-compute host name: `openstack compute service list`"
            ),
            "{}",
            shown(&e)
        );
        // Servers left behind are said, on success as on failure.
        let left = PyOut {
            left_behind: vec!["bt-r-01".into()],
            ..PyOut::default()
        };
        assert_eq!(
            outcome(&opts(), "bt-r-", &left).unwrap_err().to_string(),
            "servers left behind after 300 s of deleting; `openstack server delete bt-r-01` deletes them"
        );
        let both = PyOut {
            sweep_error: Some("ConnectFailure: refused".into()),
            ..fail("api", "ConnectFailure: refused")
        };
        let e = outcome(&opts(), "bt-r-", &both).unwrap_err();
        assert_eq!(
            shown(&e),
            "boot-time of 10 × d1.large from bt-big:latest failed\n\
             could not make sure that every server of this run is deleted (ConnectFailure: refused); `openstack server list --name '^bt-r-'` lists them\n\
             ConnectFailure: refused"
        );
    }
}
