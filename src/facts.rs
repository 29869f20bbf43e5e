//! Facts: what the steps need to know about a host, gathered in one round trip.
//!
//! Each step names its probes (files to read, read-only commands to run); the engine sends all
//! probes of a host as one script and splits the answer on a per-run random marker.

use crate::shell::quote;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// Type, owner, group, mode and (for regular files) the content of a path.
    File(String),
    /// A read-only command: its exit code and stdout.
    Cmd(String),
    /// Files on another inventory host (say, a key the controller generates), read over that
    /// host's own connection; `after_run` waits until this run is done with that host.
    /// Answered by the engine, not by the facts script.
    Peer {
        host: String,
        paths: Vec<String>,
        after_run: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub owner: String,
    pub group: String,
    /// Octal permission bits as `stat -c %a` prints them, e.g. "640".
    pub mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFact {
    Absent,
    File { meta: Meta, content: Vec<u8> },
    Dir { meta: Meta },
    Link { target: String },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdFact {
    pub code: i32,
    pub stdout: String,
}

#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub files: BTreeMap<String, FileFact>,
    pub cmds: BTreeMap<String, CmdFact>,
    /// (host, paths joined by newlines) → the existing files' contents concatenated, `None`
    /// when none exists; `Err` when the host could not be read.
    pub peers: BTreeMap<(String, String), Result<Option<String>, String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("the facts script printed no answer for probe {0}; output was cut short")]
    Missing(usize),
    #[error("unexpected facts output for {probe}: {detail}")]
    Garbled { probe: String, detail: String },
}

impl Facts {
    pub fn file(&self, path: &str) -> &FileFact {
        self.files.get(path).unwrap_or(&FileFact::Absent)
    }

    pub fn cmd(&self, cmd: &str) -> Option<&CmdFact> {
        self.cmds.get(cmd)
    }

    pub fn peer(&self, host: &str, paths: &[String]) -> Result<Option<&str>, String> {
        match self.peers.get(&(host.to_string(), paths.join("\n"))) {
            Some(Ok(c)) => Ok(c.as_deref()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("{host} was not read")),
        }
    }
}

/// The script reading `paths` on a peer: a header line per path, then its content.
pub fn peer_script(paths: &[String]) -> String {
    let mut s = String::new();
    for p in paths {
        s.push_str(&format!(
            "if [ -f {q} ]; then echo ND_PEER_FILE; cat {q}; echo; fi\n",
            q = quote(p)
        ));
    }
    s
}

/// What [`peer_script`] printed: the files found, concatenated; `None` when none exists.
pub fn parse_peer(out: &str) -> Option<String> {
    if !out.contains("ND_PEER_FILE") {
        return None;
    }
    let text: String = out
        .lines()
        .filter(|l| *l != "ND_PEER_FILE" && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    Some(text)
}

/// The script that answers `probes`; every answer ends with "\n<marker> <index> <rc>\n".
pub fn script(probes: &[Probe], marker: &str) -> String {
    let mut s = String::from(
        "LC_ALL=C; export LC_ALL\n\
         nd_file() {\n\
         \tif [ -L \"$1\" ]; then printf 'link\\n'; readlink \"$1\"\n\
         \telif [ -f \"$1\" ]; then printf 'file %s\\n' \"$(stat -c '%U %G %a' \"$1\")\" && cat \"$1\"\n\
         \telif [ -d \"$1\" ]; then printf 'dir %s\\n' \"$(stat -c '%U %G %a' \"$1\")\"\n\
         \telif [ -e \"$1\" ]; then printf 'other\\n'\n\
         \telse printf 'absent\\n'; fi\n\
         }\n",
    );
    for (i, p) in probes.iter().enumerate() {
        match p {
            Probe::File(path) => s.push_str(&format!("nd_file {}", quote(path))),
            // A subshell: a probe's `exit` or `cd` cannot disturb the others.
            Probe::Cmd(cmd) => {
                s.push_str(&format!("(sh -c {}) </dev/null 2>/dev/null", quote(cmd)))
            }
            Probe::Peer { .. } => s.push_str("true"),
        }
        s.push_str(&format!(
            "\nprintf '\\n%s {i} %s\\n' {} \"$?\"\n",
            quote(marker)
        ));
    }
    s
}

/// Split the output of [`script`] into facts.
pub fn parse(probes: &[Probe], marker: &str, out: &[u8]) -> Result<Facts, FactsError> {
    let mut facts = Facts::default();
    let mut rest = out;
    for (i, p) in probes.iter().enumerate() {
        let tag = format!("\n{marker} {i} ");
        let pos = find(rest, tag.as_bytes()).ok_or(FactsError::Missing(i))?;
        let body = &rest[..pos];
        let after = &rest[pos + tag.len()..];
        let eol = after
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(FactsError::Missing(i))?;
        let rc: i32 = String::from_utf8_lossy(&after[..eol])
            .trim()
            .parse()
            .map_err(|_| FactsError::Missing(i))?;
        rest = &after[eol + 1..];
        match p {
            Probe::File(path) => {
                let fact = parse_file(body).ok_or_else(|| FactsError::Garbled {
                    probe: path.clone(),
                    detail: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                })?;
                facts.files.insert(path.clone(), fact);
            }
            Probe::Peer { .. } => {}
            Probe::Cmd(cmd) => {
                facts.cmds.insert(
                    cmd.clone(),
                    CmdFact {
                        code: rc,
                        stdout: String::from_utf8_lossy(body).into_owned(),
                    },
                );
            }
        }
    }
    Ok(facts)
}

fn parse_file(body: &[u8]) -> Option<FileFact> {
    let nl = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let head = std::str::from_utf8(&body[..nl]).ok()?;
    let content = if nl < body.len() {
        &body[nl + 1..]
    } else {
        &[][..]
    };
    let mut words = head.split(' ');
    let kind = words.next()?;
    let meta = |mut w: std::str::Split<'_, char>| -> Option<Meta> {
        Some(Meta {
            owner: w.next()?.to_string(),
            group: w.next()?.to_string(),
            mode: w.next()?.to_string(),
        })
    };
    Some(match kind {
        "absent" => FileFact::Absent,
        "other" => FileFact::Other,
        "link" => FileFact::Link {
            target: String::from_utf8_lossy(content)
                .trim_end_matches('\n')
                .to_string(),
        },
        "dir" => FileFact::Dir { meta: meta(words)? },
        "file" => FileFact::File {
            meta: meta(words)?,
            content: content.to_vec(),
        },
        _ => return None,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A marker that no file on the host will contain by accident.
pub fn new_marker() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    ));
    let d = h.finalize();
    format!(
        "@@novadock-{}",
        d.iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn script_round_trips_through_a_real_shell() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a b.conf");
        std::fs::write(&f, "x = 1\nno final newline").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("/target", &link).unwrap();
        let probes = vec![
            Probe::File(f.display().to_string()),
            Probe::File(dir.path().join("missing").display().to_string()),
            Probe::File(dir.path().display().to_string()),
            Probe::File(empty.display().to_string()),
            Probe::File(link.display().to_string()),
            Probe::Cmd("echo hi; exit 3".into()),
        ];
        let marker = new_marker();
        let out = Command::new("sh")
            .arg("-c")
            .arg(script(&probes, &marker))
            .output()
            .unwrap();
        let facts = parse(&probes, &marker, &out.stdout).unwrap();
        match facts.file(&f.display().to_string()) {
            FileFact::File { content, meta } => {
                assert_eq!(content, b"x = 1\nno final newline");
                assert_eq!(meta.mode, "644");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            facts.file(&dir.path().join("missing").display().to_string()),
            &FileFact::Absent
        );
        assert!(matches!(
            facts.file(&dir.path().display().to_string()),
            FileFact::Dir { .. }
        ));
        assert!(matches!(
            facts.file(&empty.display().to_string()),
            FileFact::File { content, .. } if content.is_empty()
        ));
        assert_eq!(
            facts.file(&link.display().to_string()),
            &FileFact::Link {
                target: "/target".into()
            }
        );
        assert_eq!(
            facts.cmd("echo hi; exit 3"),
            Some(&CmdFact {
                code: 3,
                stdout: "hi\n".into()
            })
        );
    }
}
