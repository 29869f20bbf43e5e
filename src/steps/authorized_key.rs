//! `authorized_key`: one public key in a user's authorized_keys, given inline or read from
//! another inventory host (e.g. the key the controller generates for its prefetch job). Other
//! lines are kept; a line with the same key and other options is replaced. `state: absent`
//! removes every line holding the key (whatever its options), e.g. when the prefetch job stops
//! reaching the hosts over SSH.

use super::{PlanCx, StepError, StepKind, plan_file_content, require_absolute};
use crate::facts::{FileFact, Probe};
use crate::plan::{Action, Attrs, Outcome};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerFile {
    /// An inventory host name.
    pub(crate) host: String,
    pub(crate) path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizedKey {
    #[serde(default = "root")]
    pub(crate) user: String,
    /// Defaults to /root/.ssh/authorized_keys for root, /home/USER/.ssh/authorized_keys else.
    pub(crate) path: Option<String>,
    /// `ssh-ed25519 AAAA… comment`
    pub(crate) key: Option<String>,
    /// Read the key from a file on another inventory host, once this run is done there.
    pub(crate) key_from: Option<PeerFile>,
    /// authorized_keys options, e.g. `restrict` (no forwarding, no pty).
    pub(crate) options: Option<String>,
    #[serde(default)]
    pub(crate) state: KeyState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyState {
    #[default]
    Present,
    Absent,
}

fn root() -> String {
    "root".into()
}

impl AuthorizedKey {
    fn path(&self) -> String {
        match &self.path {
            Some(p) => p.clone(),
            None if self.user == "root" => "/root/.ssh/authorized_keys".into(),
            None => format!("/home/{}/.ssh/authorized_keys", self.user),
        }
    }

    fn dir(&self) -> String {
        let p = self.path();
        p.rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default()
    }

    fn peer_paths(&self) -> Vec<String> {
        self.key_from
            .as_ref()
            .map(|k| vec![k.path.clone()])
            .unwrap_or_default()
    }
}

/// The key type and blob of an authorized_keys or .pub line, options skipped.
pub(crate) fn key_of(line: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))?;
    Some((words[at], words.get(at + 1)?))
}

/// `current` with `line` in it: replacing the line holding the same key, or appended.
pub(crate) fn with_key(current: &str, line: &str) -> String {
    let key = key_of(line);
    let mut out = String::new();
    let mut placed = false;
    for l in current.lines() {
        if !l.trim_start().starts_with('#') && key.is_some() && key_of(l) == key {
            if !placed {
                out.push_str(line);
                out.push('\n');
                placed = true;
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    if !placed {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `current` without any line holding `key` (comments kept).
pub(crate) fn without_key(current: &str, key: (&str, &str)) -> String {
    let mut out = String::new();
    for l in current.lines() {
        if l.trim_start().starts_with('#') || key_of(l) != Some(key) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

impl StepKind for AuthorizedKey {
    fn validate(&self) -> Result<(), StepError> {
        require_absolute(&self.path())?;
        match (&self.key, &self.key_from) {
            (Some(_), Some(_)) => Err(StepError::Invalid(
                "give `key` or `key_from`, not both".into(),
            )),
            (None, None) => Err(StepError::Invalid("`key` or `key_from` is required".into())),
            (Some(k), None) if key_of(k).is_none() => Err(StepError::Invalid(format!(
                "`key` is not an OpenSSH public key: {k}"
            ))),
            _ => Ok(()),
        }
    }

    fn probes(&self) -> Vec<Probe> {
        let mut p = vec![Probe::File(self.path()), Probe::File(self.dir())];
        if let Some(k) = &self.key_from {
            p.push(Probe::Peer {
                host: k.host.clone(),
                paths: self.peer_paths(),
                after_run: true,
            });
        }
        p
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let path = self.path();
        let key = match (&self.key, &self.key_from) {
            (Some(k), _) => k.trim().to_string(),
            (None, Some(from)) => {
                let read = cx
                    .facts
                    .peer(&from.host, &self.peer_paths())
                    .map_err(StepError::Invalid)?;
                match read.and_then(|t| t.lines().find(|l| key_of(l).is_some())) {
                    Some(k) => k.trim().to_string(),
                    // No key there: none of it can be authorized here.
                    None if self.state == KeyState::Absent => {
                        return Ok(Outcome::unchanged(format!(
                            "no key at {}:{}: none authorized in {path}",
                            from.host, from.path
                        )));
                    }
                    None => {
                        // Created by an earlier step on that host in this run (planned, not yet
                        // made); at apply, that host's run has finished before this is read.
                        let why = format!("{}:{} does not exist yet", from.host, from.path);
                        return Ok(Outcome {
                            actions: vec![Action::Run {
                                command: format!(
                                    "echo {} >&2; exit 1",
                                    crate::shell::quote(&format!(
                                        "no public key: {why} (did the step creating it fail?)"
                                    ))
                                ),
                                systemd: false,
                            }],
                            summary: format!(
                                "authorize the key {}:{} in {path} (created in this run)",
                                from.host, from.path
                            ),
                            ..Default::default()
                        });
                    }
                }
            }
            (None, None) => unreachable!("validated"),
        };
        let current = match cx.facts.file(&path) {
            FileFact::File { content, .. } => String::from_utf8_lossy(content).into_owned(),
            _ => String::new(),
        };
        if self.state == KeyState::Absent {
            let Some(k) = key_of(&key) else {
                return Err(StepError::Invalid(format!(
                    "not an OpenSSH public key: {key}"
                )));
            };
            let kept = without_key(&current, k);
            if kept == current {
                return Ok(Outcome::unchanged(format!("the key is not in {path}")));
            }
            return plan_file_content(
                &path,
                cx.facts.file(&path),
                kept.into_bytes(),
                &Attrs {
                    owner: Some(self.user.clone()),
                    group: None,
                    mode: Some("600".into()),
                },
                false,
            );
        }
        let line = match &self.options {
            Some(o) if !o.trim().is_empty() => format!("{} {key}", o.trim()),
            _ => key,
        };
        let attrs = Attrs {
            owner: Some(self.user.clone()),
            group: None,
            mode: Some("600".into()),
        };
        let mut outcome = plan_file_content(
            &path,
            cx.facts.file(&path),
            with_key(&current, &line).into_bytes(),
            &attrs,
            false,
        )?;
        if matches!(cx.facts.file(&self.dir()), FileFact::Absent) {
            outcome.actions.insert(
                0,
                Action::Mkdir {
                    path: self.dir(),
                    attrs: Attrs {
                        owner: Some(self.user.clone()),
                        group: None,
                        mode: Some("700".into()),
                    },
                },
            );
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_matched_by_type_and_blob() {
        assert_eq!(key_of("ssh-ed25519 AAA c"), Some(("ssh-ed25519", "AAA")));
        assert_eq!(
            key_of("restrict,from=\"10.0.0.1\" ssh-ed25519 AAA c"),
            Some(("ssh-ed25519", "AAA"))
        );
        assert_eq!(key_of("# comment"), None);
    }

    #[test]
    fn a_key_is_appended_or_replaced_never_duplicated() {
        let cur = "ssh-rsa BBB me\nssh-ed25519 AAA old\n";
        assert_eq!(
            with_key(cur, "restrict ssh-ed25519 AAA novadock"),
            "ssh-rsa BBB me\nrestrict ssh-ed25519 AAA novadock\n"
        );
        assert_eq!(with_key("", "ssh-ed25519 CCC x"), "ssh-ed25519 CCC x\n");
        assert_eq!(
            with_key(cur, "ssh-ed25519 CCC x"),
            format!("{cur}ssh-ed25519 CCC x\n")
        );
    }

    #[test]
    fn absent_removes_every_line_of_the_key_whatever_its_options() {
        let cur = "# ssh-ed25519 AAA kept comment\nssh-rsa BBB me\nrestrict,command=\"x\" ssh-ed25519 AAA novadock\nssh-ed25519 AAA again\n";
        assert_eq!(
            without_key(cur, ("ssh-ed25519", "AAA")),
            "# ssh-ed25519 AAA kept comment\nssh-rsa BBB me\n"
        );
        assert_eq!(without_key(cur, ("ssh-ed25519", "ZZZ")), cur);
        let step: AuthorizedKey =
            serde_yaml::from_str("{ key_from: { host: ctl, path: /k.pub }, state: absent }")
                .unwrap();
        assert_eq!(step.state, KeyState::Absent);
        assert!(serde_yaml::from_str::<AuthorizedKey>("{ key: k, state: gone }").is_err());
    }
}
