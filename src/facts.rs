//! Facts: what the steps need to know about a host, gathered in one round trip.
//!
//! Each step names its probes (files to read, read-only commands to run); the engine sends all
//! probes of a host as one script and splits the answer on a per-run random marker.

use crate::shell::quote;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Probe {
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
pub(crate) struct Meta {
    pub(crate) owner: String,
    pub(crate) group: String,
    /// Octal permission bits as `stat -c %a` prints them, e.g. "640".
    pub(crate) mode: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FileFact {
    Absent,
    File { meta: Meta, content: Content },
    Dir { meta: Meta },
    Link { target: String },
    Other,
}

/// The bytes of a file, shared: a run often reads and writes the same content on many hosts,
/// and one copy serves them all (large contents are interned by their hash). Its sha256 is
/// computed once.
#[derive(Clone)]
pub(crate) struct Content(Arc<Shared>);

struct Shared {
    bytes: Box<[u8]>,
    sha256: OnceLock<String>,
}

/// Contents smaller than this are not worth hashing to share.
const INTERN_MIN: usize = 4096;

impl Content {
    pub(crate) fn sha256_hex(&self) -> &str {
        self.0.sha256.get_or_init(|| sha256_hex(&self.0.bytes))
    }
}

impl From<&[u8]> for Content {
    fn from(bytes: &[u8]) -> Content {
        if bytes.len() < INTERN_MIN {
            return Content(Arc::new(Shared {
                bytes: bytes.into(),
                sha256: OnceLock::new(),
            }));
        }
        static POOL: Mutex<BTreeMap<String, Weak<Shared>>> = Mutex::new(BTreeMap::new());
        let sha = sha256_hex(bytes);
        let mut pool = POOL.lock().expect("not poisoned");
        if let Some(shared) = pool.get(&sha).and_then(Weak::upgrade) {
            return Content(shared);
        }
        // Forget contents nobody holds any more, now and then.
        if pool.len() >= 64 && pool.len().is_power_of_two() {
            pool.retain(|_, w| w.strong_count() > 0);
        }
        let shared = Arc::new(Shared {
            bytes: bytes.into(),
            sha256: OnceLock::from(sha.clone()),
        });
        pool.insert(sha, Arc::downgrade(&shared));
        Content(shared)
    }
}

impl From<Vec<u8>> for Content {
    fn from(bytes: Vec<u8>) -> Content {
        Content::from(&bytes[..])
    }
}

impl std::ops::Deref for Content {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0.bytes
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Content) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.bytes == other.0.bytes
    }
}

impl Eq for Content {}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0.bytes))
    }
}

/// Results computed once per key (a content's hash and what is done with it) for the run:
/// the same change is planned on many hosts. Bounded; cleared when full.
pub(crate) struct Memo<K, V>(Mutex<BTreeMap<K, V>>);

impl<K: Ord, V: Clone> Default for Memo<K, V> {
    fn default() -> Self {
        Memo::new()
    }
}

impl<K: Ord, V: Clone> Memo<K, V> {
    pub(crate) const fn new() -> Self {
        Memo(Mutex::new(BTreeMap::new()))
    }

    pub(crate) fn get_or(&self, key: K, compute: impl FnOnce() -> V) -> V {
        if let Some(v) = self.0.lock().expect("not poisoned").get(&key) {
            return v.clone();
        }
        let v = compute();
        let mut memo = self.0.lock().expect("not poisoned");
        if memo.len() >= 256 {
            memo.clear();
        }
        memo.insert(key, v.clone());
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CmdFact {
    pub(crate) code: i32,
    pub(crate) stdout: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub(crate) files: BTreeMap<String, FileFact>,
    pub(crate) cmds: BTreeMap<String, CmdFact>,
    /// (host, paths joined by newlines) → the existing files' contents concatenated, `None`
    /// when none exists; `Err` when the host could not be read.
    pub(crate) peers: BTreeMap<(String, String), Result<Option<String>, String>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FactsError {
    #[error("the facts script printed no answer for probe {0}; output was cut short")]
    Missing(usize),
    #[error("a file changed while it was read")]
    Raced,
    #[error("unexpected facts output for {probe}: {detail}")]
    Garbled { probe: String, detail: String },
}

impl Facts {
    pub(crate) fn file(&self, path: &str) -> &FileFact {
        self.files.get(path).unwrap_or(&FileFact::Absent)
    }

    pub(crate) fn cmd(&self, cmd: &str) -> Option<&CmdFact> {
        self.cmds.get(cmd)
    }

    pub(crate) fn peer(&self, host: &str, paths: &[String]) -> Result<Option<&str>, String> {
        match self.peers.get(&(host.to_string(), paths.join("\n"))) {
            Some(Ok(c)) => Ok(c.as_deref()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("{host} was not read")),
        }
    }
}

/// Reads files for the facts: all at once, or one by one.
const FACTS_SH: &str = include_str!("remote/facts.sh");
/// Reads another host's files.
const PEER_SH: &str = include_str!("remote/peer.sh");

/// The script reading `paths` on a peer: a header line per path, then its content.
pub(crate) fn peer_script(paths: &[String]) -> String {
    format!("set -- {}\n{PEER_SH}", crate::shell::join(paths))
}

/// What [`peer_script`] printed: the files found, concatenated; `None` when none exists.
pub(crate) fn parse_peer(out: &str) -> Option<String> {
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

/// The script that answers `probes`. Files cost two processes in all, whatever their number
/// (`nd_files`). Commands follow, each answer ending with "\n<marker> <index> <rc>\n".
pub(crate) fn script(probes: &[Probe], marker: &str) -> String {
    let mut s = format!("LC_ALL=C; export LC_ALL\nnd_m={}\n", quote(marker));
    let paths: Vec<&String> = file_paths(probes).collect();
    if !paths.is_empty() {
        s.push_str(FACTS_SH);
        s.push_str(&format!("nd_files {}\n", crate::shell::join(&paths)));
    }
    for (i, p) in probes.iter().enumerate() {
        if let Probe::Cmd(cmd) = p {
            // A subshell: a probe's `exit` or `cd` cannot disturb the others. `eval`, not
            // `sh -c`: the probe's text (secrets included) stays off every process's arguments.
            s.push_str(&format!(
                "(eval {}) </dev/null 2>/dev/null\nprintf '\\n%s {i} %s\\n' \"$nd_m\" \"$?\"\n",
                quote(cmd)
            ));
        }
    }
    s
}

/// The script answering `probes` one by one (a process or two per file, `nd_file`): for when
/// a file changed while [`script`] read it.
pub(crate) fn script_each(probes: &[Probe], marker: &str) -> String {
    let mut s = format!(
        "LC_ALL=C; export LC_ALL\nnd_m={}\n{FACTS_SH}",
        quote(marker)
    );
    for (i, p) in probes.iter().enumerate() {
        match p {
            Probe::File(path) => s.push_str(&format!("nd_file {}", quote(path))),
            // As in [`script`]: a subshell, the text off the arguments.
            Probe::Cmd(cmd) => s.push_str(&format!("(eval {}) </dev/null 2>/dev/null", quote(cmd))),
            Probe::Peer { .. } => s.push_str("true"),
        }
        s.push_str(&format!(
            "\nprintf '\\n%s {i} %s\\n' {} \"$?\"\n",
            quote(marker)
        ));
    }
    s
}

/// The paths of the file probes, in probe order: the order [`script`] answers them in.
fn file_paths(probes: &[Probe]) -> impl Iterator<Item = &String> {
    probes.iter().filter_map(|p| match p {
        Probe::File(path) => Some(path),
        _ => None,
    })
}

/// Split the output of [`script`] into facts. [`FactsError::Raced`]: run [`script_each`].
pub(crate) fn parse(probes: &[Probe], marker: &str, out: &[u8]) -> Result<Facts, FactsError> {
    let mut facts = Facts::default();
    let files: Vec<&String> = file_paths(probes).collect();
    let mut rest = out;
    if !files.is_empty() {
        let garbled = |detail: &str| FactsError::Garbled {
            probe: "files".into(),
            detail: detail.to_string(),
        };
        let section = |rest: &[u8], name: &str| -> Result<usize, FactsError> {
            find(rest, format!("{marker} {name}\n").as_bytes()).ok_or(FactsError::Missing(0))
        };
        let start = section(rest, "files")? + marker.len() + " files\n".len();
        let cat = section(rest, "cat")?;
        let head = std::str::from_utf8(&rest[start..cat]).map_err(|_| garbled("not text"))?;
        if head.contains(&format!("{marker} raced")) {
            return Err(FactsError::Raced);
        }
        let mut lines = head.lines();
        let exists = lines.next().ok_or_else(|| garbled("no existence line"))?;
        if exists.len() != files.len() {
            return Err(garbled(exists));
        }
        let body_start = cat + marker.len() + " cat\n".len();
        let links_tag = format!("\n{marker} links\n");
        let links_at =
            memchr::memmem::rfind(rest, links_tag.as_bytes()).ok_or(FactsError::Missing(0))?;
        if links_at < body_start {
            return Err(FactsError::Missing(0));
        }
        let body = &rest[body_start..links_at];
        if find(body, format!("{marker} raced").as_bytes()).is_some() {
            return Err(FactsError::Raced);
        }
        let after_links = links_at + links_tag.len();
        let end = find(&rest[after_links..], format!("{marker} end\n").as_bytes())
            .ok_or(FactsError::Missing(0))?;
        let links_text =
            String::from_utf8_lossy(&rest[after_links..after_links + end]).into_owned();
        let mut links = links_text.lines();
        let mut offset = 0;
        for (path, e) in files.iter().zip(exists.bytes()) {
            let fact = if e == b'a' {
                FileFact::Absent
            } else {
                let line = lines.next().ok_or(FactsError::Raced)?;
                let w: Vec<&str> = line.split(' ').collect();
                let [raw, owner, group, mode, size] = w[..] else {
                    return Err(garbled(line));
                };
                let raw = u32::from_str_radix(raw, 16).map_err(|_| garbled(line))?;
                let size: usize = size.parse().map_err(|_| garbled(line))?;
                let meta = Meta {
                    owner: owner.into(),
                    group: group.into(),
                    mode: mode.into(),
                };
                match raw & 0o170000 {
                    0o100000 => {
                        let content = body.get(offset..offset + size).ok_or(FactsError::Raced)?;
                        offset += size;
                        FileFact::File {
                            meta,
                            content: Content::from(content),
                        }
                    }
                    0o040000 => FileFact::Dir { meta },
                    0o120000 => FileFact::Link {
                        target: links.next().ok_or(FactsError::Raced)?.to_string(),
                    },
                    _ => FileFact::Other,
                }
            };
            facts.files.insert((*path).clone(), fact);
        }
        // Every byte `cat` printed belongs to a file `stat` saw, or something changed.
        if offset != body.len() || lines.next().is_some() || links.next().is_some() {
            return Err(FactsError::Raced);
        }
        rest = &rest[after_links + end + marker.len() + " end\n".len()..];
    }
    parse_framed(probes, marker, rest, &mut facts, false)?;
    Ok(facts)
}

/// Split the output of [`script_each`] into facts.
pub(crate) fn parse_each(probes: &[Probe], marker: &str, out: &[u8]) -> Result<Facts, FactsError> {
    let mut facts = Facts::default();
    parse_framed(probes, marker, out, &mut facts, true)?;
    Ok(facts)
}

/// The answers framed one by one ("\n<marker> <index> <rc>\n" after each); file probes only
/// with `files`.
fn parse_framed(
    probes: &[Probe],
    marker: &str,
    out: &[u8],
    facts: &mut Facts,
    files: bool,
) -> Result<(), FactsError> {
    let mut rest = out;
    for (i, p) in probes.iter().enumerate() {
        match p {
            Probe::File(_) | Probe::Peer { .. } if !files => continue,
            _ => {}
        }
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
    Ok(())
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
            content: Content::from(content),
        },
        _ => return None,
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A marker that no file on the host will contain by accident.
pub(crate) fn new_marker() -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(format!(
        "{:?}{}{:?}",
        std::time::SystemTime::now(),
        std::process::id(),
        std::thread::current().id()
    ));
    format!("@@novadock-{}", hex::encode(&h.finalize()[..12]))
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
        for each in [false, true] {
            let marker = new_marker();
            let text = if each {
                script_each(&probes, &marker)
            } else {
                script(&probes, &marker)
            };
            let out = Command::new("sh").arg("-c").arg(text).output().unwrap();
            let facts = if each {
                parse_each(&probes, &marker, &out.stdout).unwrap()
            } else {
                parse(&probes, &marker, &out.stdout).unwrap()
            };
            check(&facts, &f, dir.path(), &empty, &link);
        }
    }

    fn check(
        facts: &Facts,
        f: &std::path::Path,
        dir: &std::path::Path,
        empty: &std::path::Path,
        link: &std::path::Path,
    ) {
        match facts.file(&f.display().to_string()) {
            FileFact::File { content, meta } => {
                assert_eq!(&content[..], b"x = 1\nno final newline");
                assert_eq!(meta.mode, "644");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            facts.file(&dir.join("missing").display().to_string()),
            &FileFact::Absent
        );
        assert!(matches!(
            facts.file(&dir.display().to_string()),
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

    #[test]
    fn peer_script_reads_the_files_that_exist() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a key.pub");
        std::fs::write(&a, "ssh-ed25519 AAAA x\n").unwrap();
        let paths = [
            a.display().to_string(),
            dir.path().join("missing").display().to_string(),
        ];
        let out = Command::new("sh")
            .arg("-c")
            .arg(peer_script(&paths))
            .output()
            .unwrap();
        assert!(out.status.success());
        let out = String::from_utf8(out.stdout).unwrap();
        assert_eq!(parse_peer(&out).as_deref(), Some("ssh-ed25519 AAAA x\n"));
        let none = Command::new("sh")
            .arg("-c")
            .arg(peer_script(&paths[1..]))
            .output()
            .unwrap();
        assert_eq!(parse_peer(&String::from_utf8(none.stdout).unwrap()), None);
    }

    /// Bytes that no `stat` size accounts for (a file grew between `stat` and `cat`): the
    /// engine reads the files one by one instead.
    #[test]
    fn a_file_that_changed_while_read_is_a_race() {
        let probes = vec![
            Probe::File("/a".into()),
            Probe::File("/b".into()),
            Probe::Cmd("x".into()),
        ];
        let m = "@@m";
        let ok = format!(
            "{m} files\nae\n81a4 root root 644 3\n{m} cat\nabc\n{m} links\n{m} end\nout\n{m} 2 0\n"
        );
        let facts = parse(&probes, m, ok.as_bytes()).unwrap();
        assert_eq!(facts.file("/a"), &FileFact::Absent);
        assert!(
            matches!(facts.file("/b"), FileFact::File { content, .. } if &content[..] == b"abc")
        );
        assert_eq!(facts.cmd("x").unwrap().stdout, "out");
        let grew = ok.replace("abc\n", "abcd\n");
        assert!(matches!(
            parse(&probes, m, grew.as_bytes()),
            Err(FactsError::Raced)
        ));
        let vanished = ok.replace("81a4 root root 644 3\n", &format!("{m} raced\n"));
        assert!(matches!(
            parse(&probes, m, vanished.as_bytes()),
            Err(FactsError::Raced)
        ));
    }
}
