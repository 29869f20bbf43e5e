//! The plan is data: what each step would do on a host, as a list of actions.
//!
//! Steps never touch a host. They turn facts into [`Action`]s; the engine decides, in one
//! place, whether actions are only reported (plan) or also executed (apply).

use crate::facts::{Content, Facts, FileFact, Meta};
use crate::shell::quote;

/// What a path must look like when an action runs; checked again on the host before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    Absent,
    Sha256(String),
    Dir,
    Link(String),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Attrs {
    pub(crate) owner: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Atomically replace (or create) a regular file.
    Write {
        path: String,
        content: Content,
        expect: Expect,
        attrs: Attrs,
    },
    Remove {
        path: String,
        expect: Expect,
    },
    Mkdir {
        path: String,
        attrs: Attrs,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// Change owner/group/mode of an existing path.
    SetAttrs {
        path: String,
        attrs: Attrs,
    },
    /// A docker image into Glance through this host (the controller), from another inventory
    /// host's `docker save` or a tarball on this machine: data, not a script, so the engine
    /// carries it (`novadock image add`'s checks) where the script would run.
    Upload(UploadSpec),
    /// A command; the host's state it depends on is unknown to the plan afterwards.
    Run {
        command: String,
        /// Needs systemd to know about unit files written earlier in this run.
        systemd: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadSpec {
    pub(crate) name: String,
    /// An inventory host that has the image, or empty with `file`.
    pub(crate) from_host: String,
    pub(crate) file: String,
    pub(crate) public: bool,
    pub(crate) auth: crate::openstack::Auth,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub(crate) actions: Vec<Action>,
    /// One line for humans: "edit /etc/nova/nova.conf", "install docker.io".
    pub(crate) summary: String,
    pub(crate) diff: Option<String>,
    /// Why nothing changes, when that is worth saying ("docker is in the default").
    pub(crate) note: Option<String>,
}

impl Outcome {
    pub(crate) fn unchanged(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            ..Default::default()
        }
    }

    pub(crate) fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

/// The expectation matching what the facts say is at `path` now.
pub(crate) fn expect_of(fact: &FileFact) -> Expect {
    match fact {
        FileFact::Absent => Expect::Absent,
        FileFact::File { content, .. } => Expect::Sha256(content.sha256_hex().to_string()),
        FileFact::Dir { .. } => Expect::Dir,
        FileFact::Link { target } => Expect::Link(target.clone()),
        FileFact::Other => Expect::Any,
    }
}

/// True when `attrs` asks for something `meta` does not already have.
pub(crate) fn attrs_differ(attrs: &Attrs, meta: &Meta) -> bool {
    attrs.owner.as_ref().is_some_and(|o| *o != meta.owner)
        || attrs.group.as_ref().is_some_and(|g| *g != meta.group)
        || attrs
            .mode
            .as_ref()
            .is_some_and(|m| normalize_mode(m) != normalize_mode(&meta.mode))
}

/// "0640", "640" and "00640" are the same mode.
pub(crate) fn normalize_mode(m: &str) -> String {
    let t = m.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

/// Record the effect of executed (or planned) actions, so later steps see the new state.
pub(crate) fn overlay(facts: &mut Facts, actions: &[Action]) {
    for a in actions {
        match a {
            Action::Write {
                path,
                content,
                attrs,
                ..
            } => {
                let old = match facts.file(path) {
                    FileFact::File { meta, .. } | FileFact::Dir { meta } => meta.clone(),
                    _ => Meta {
                        owner: "root".into(),
                        group: "root".into(),
                        mode: "644".into(),
                    },
                };
                let meta = apply_attrs(old, attrs);
                facts.files.insert(
                    path.clone(),
                    FileFact::File {
                        meta,
                        content: content.clone(),
                    },
                );
            }
            Action::Remove { path, .. } => {
                facts.files.insert(path.clone(), FileFact::Absent);
            }
            Action::Mkdir { path, attrs } => {
                let meta = apply_attrs(
                    Meta {
                        owner: "root".into(),
                        group: "root".into(),
                        mode: "755".into(),
                    },
                    attrs,
                );
                facts.files.insert(path.clone(), FileFact::Dir { meta });
            }
            Action::Symlink { path, target } => {
                facts.files.insert(
                    path.clone(),
                    FileFact::Link {
                        target: target.clone(),
                    },
                );
            }
            Action::SetAttrs { path, attrs } => {
                if let Some(FileFact::File { meta, .. } | FileFact::Dir { meta }) =
                    facts.files.get_mut(path)
                {
                    *meta = apply_attrs(meta.clone(), attrs);
                }
            }
            Action::Run { .. } | Action::Upload(_) => {}
        }
    }
}

fn apply_attrs(mut meta: Meta, attrs: &Attrs) -> Meta {
    if let Some(o) = &attrs.owner {
        meta.owner = o.clone();
    }
    if let Some(g) = &attrs.group {
        meta.group = g.clone();
    }
    if let Some(m) = &attrs.mode {
        meta.mode = normalize_mode(m);
    }
    meta
}

/// Paths whose change makes systemd need a daemon-reload.
pub(crate) fn is_unit_path(path: &str) -> bool {
    [
        "/etc/systemd/system/",
        "/lib/systemd/system/",
        "/usr/lib/systemd/system/",
        "/run/systemd/system/",
    ]
    .iter()
    .any(|d| path.starts_with(d))
}

/// Shell functions every apply script starts with. Writes are atomic: a temp file in the same
/// directory, fsync, rename; the directories are synced once at the end of the script
/// ([`sync_dirs`]). The old file is kept outside its directory (conf.d directories would load
/// a backup left next to it), as a hard link where the filesystem allows it.
///
/// Every process costs ~1 ms on a busy host: tests, `printf` and parameter expansion are shell
/// built-ins, and once-per-script work is done once.
pub(crate) const PRELUDE: &str = include_str!("remote/prelude.sh");

/// Files smaller than this are sent whole: a splice costs two more processes on the host.
const SPLICE_MIN: usize = 16 * 1024;

/// The shell text that carries out one action (after [`PRELUDE`]). `old` is the current
/// content of a written file as the facts know it: a large file whose expected hash it
/// matches is sent as an edit of itself, not whole.
pub(crate) fn action_script(a: &Action, old: Option<&Content>) -> String {
    let attrs = |a: &Attrs| {
        format!(
            "{} {} {}",
            quote(a.owner.as_deref().unwrap_or("")),
            quote(a.group.as_deref().unwrap_or("")),
            quote(a.mode.as_deref().unwrap_or(""))
        )
    };
    match a {
        Action::Write {
            path,
            content,
            expect,
            attrs: at,
        } => {
            let head = format!(
                "nd_write {} {} {}",
                quote(path),
                quote(&expect_word(expect)),
                attrs(at)
            );
            let base = match (expect, old) {
                (Expect::Sha256(h), Some(old))
                    if content.len() >= SPLICE_MIN && old.sha256_hex() == h =>
                {
                    Some(old)
                }
                _ => None,
            };
            if let Some((keep, from, part)) = base.and_then(|old| splice(old, content)) {
                match as_text(part) {
                    Some(t) => format!("{head} splice {keep} {from} {}\n", quote(t)),
                    None => format!(
                        "{head} splice-b64 {keep} {from} <<'ND_EOF'\n{}ND_EOF\n",
                        base64(part)
                    ),
                }
            } else {
                match as_text(content) {
                    Some(t) => format!("{head} text {}\n", quote(t)),
                    None => format!("{head} b64 <<'ND_EOF'\n{}ND_EOF\n", base64(content)),
                }
            }
        }
        Action::Remove { path, expect } => {
            format!(
                "nd_remove {} {}\n",
                quote(path),
                quote(&expect_word(expect))
            )
        }
        Action::Mkdir { path, attrs: at } => format!("nd_mkdir {} {}\n", quote(path), attrs(at)),
        Action::Symlink { path, target } => {
            format!("nd_link {} {}\n", quote(target), quote(path))
        }
        Action::SetAttrs { path, attrs: at } => {
            format!("nd_setattrs {} {}\n", quote(path), attrs(at))
        }
        // Not fd 9, the apply lock: a daemon the command starts must not hold it.
        Action::Run { command, .. } => format!("( {command}\n) 9>&-\n"),
        // Carried by the engine, never part of a script.
        Action::Upload(_) => String::new(),
    }
}

/// Text a shell word can carry (`printf %s`): UTF-8 without NUL.
fn as_text(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok().filter(|t| !t.contains('\0'))
}

/// `new` as (bytes of `old` to keep, 1-based offset in `old` to resume from, new part):
/// whole lines, so that a part never splits a character. `None` when the part would not be
/// much smaller than the file.
fn splice<'a>(old: &[u8], new: &'a [u8]) -> Option<(usize, usize, &'a [u8])> {
    let keep = old[..common_head(old, new)]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let mut tail = common_tail(old, new, old.len().min(new.len()) - keep);
    // The kept tail starts right after a newline (or is empty).
    while tail > 0 && tail < old.len() && old[old.len() - tail - 1] != b'\n' {
        tail -= 1;
    }
    let part = &new[keep..new.len() - tail];
    (part.len() * 2 < new.len()).then_some((keep, old.len() - tail + 1, part))
}

/// How many items `a` and `b` share at their start.
pub(crate) fn common_head<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// How many items `a` and `b` share at their end, at most `limit` (what their common start
/// leaves them).
pub(crate) fn common_tail<T: PartialEq>(a: &[T], b: &[T], limit: usize) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take(limit)
        .take_while(|(x, y)| x == y)
        .count()
}

/// The directories whose entries `actions` change (written or removed files): synced once at
/// the end of a script, so that the renames are on disk too.
pub(crate) fn changed_dirs(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Write { path, .. } | Action::Remove { path, .. } => Some(
                match path.rsplit_once('/') {
                    Some(("", _)) | None => "/",
                    Some((d, _)) => d,
                }
                .to_string(),
            ),
            _ => None,
        })
        .collect()
}

fn expect_word(e: &Expect) -> String {
    match e {
        Expect::Absent => "absent".into(),
        Expect::Sha256(h) => h.clone(),
        Expect::Dir => "dir".into(),
        Expect::Link(t) => format!("link:{t}"),
        Expect::Any => "any".into(),
    }
}

/// Base64 in 76-column lines, as `base64 -d` reads it.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 + 4);
    for line in data.chunks(57) {
        for c in line.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 {
                T[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if c.len() > 2 {
                T[n as usize & 63] as char
            } else {
                '='
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::sha256_hex;

    #[test]
    fn base64_matches_coreutils() {
        for data in [&b""[..], b"a", b"ab", b"abc", b"hello world\n\0\xff"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "printf %s {} | base64 -d",
                    quote(&base64(data).replace('\n', ""))
                ))
                .output()
                .unwrap();
            assert_eq!(out.stdout, data);
        }
        let big: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 256) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b64");
        std::fs::write(&p, base64(&big)).unwrap();
        let out = std::process::Command::new("base64")
            .arg("-d")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.stdout, big);
    }

    #[test]
    fn modes_compare_numerically() {
        assert_eq!(normalize_mode("0640"), "640");
        let meta = Meta {
            owner: "root".into(),
            group: "glance".into(),
            mode: "640".into(),
        };
        let same = Attrs {
            owner: Some("root".into()),
            group: None,
            mode: Some("0640".into()),
        };
        assert!(!attrs_differ(&same, &meta));
        let other = Attrs {
            mode: Some("0644".into()),
            ..Default::default()
        };
        assert!(attrs_differ(&other, &meta));
    }

    /// Runs `actions` (each against `old`, the content the facts would hold) through a real
    /// shell, backups under the temp dir.
    fn run_script(dir: &std::path::Path, script: &str) -> std::process::Output {
        let script = format!("ND_RUN=test\n{PRELUDE}{script}");
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("ND_BACKUPS", dir.join("backups"))
            .output()
            .unwrap()
    }

    fn write(path: &std::path::Path, content: &[u8], expect: Expect) -> Action {
        Action::Write {
            path: path.display().to_string(),
            content: content.into(),
            expect,
            attrs: Attrs::default(),
        }
    }

    #[test]
    fn write_script_is_atomic_and_checks_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.conf");
        std::fs::write(&p, "old\n").unwrap();
        let stale = write(&p, b"x", Expect::Sha256(sha256_hex(b"stale\n")));
        let out = run_script(dir.path(), &action_script(&stale, None));
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("changed since it was planned"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");

        let new = b"new 'quoted' $(id) \\n %s `x`\n";
        let a = write(&p, new, Expect::Sha256(sha256_hex(b"old\n")));
        let out = run_script(dir.path(), &action_script(&a, Some(&b"old\n"[..].into())));
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&p).unwrap(), new);
        let backup = dir.path().join(format!("backups/test{}", p.display()));
        assert_eq!(std::fs::read(backup).unwrap(), b"old\n");
        // No temp file left next to it.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn binary_and_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bin");
        let data = b"\0\xff\xfe no text\n";
        let a = Action::Write {
            path: p.display().to_string(),
            content: data[..].into(),
            expect: Expect::Absent,
            attrs: Attrs {
                mode: Some("0600".into()),
                ..Default::default()
            },
        };
        let s = action_script(&a, None);
        assert!(s.contains(" b64 <<'ND_EOF'"), "{s}");
        let out = run_script(dir.path(), &s);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&p).unwrap(), data);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A file that is not there yet, without a mode: 644 whatever the umask.
        let q = dir.path().join("plain");
        let out = run_script(
            dir.path(),
            &format!(
                "umask 077\n{}",
                action_script(&write(&q, b"", Expect::Absent), None)
            ),
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&q).unwrap(), b"");
        assert_eq!(
            std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    /// A large file with a small change goes as an edit of itself, and the host ends with
    /// exactly the planned bytes, wherever the change is.
    #[test]
    fn large_files_are_sent_as_edits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.conf");
        let old: String = (0..3000).map(|i| format!("# line {i} ü\n")).collect();
        let cases: Vec<String> = vec![
            format!("[new]\n{old}"),
            format!("{old}[end]\nx = 1\n"),
            old.replacen("# line 1500 ü\n", "line = 1500 'q' $x\n", 1),
            old.replacen("# line 10 ü\n", "", 1),
            old.replacen("# line 2999 ü\n", "# line 2999 ü", 1),
            old.replacen("line 7 ü", "line 7 \u{0}", 1),
        ];
        for new in cases {
            std::fs::write(&p, &old).unwrap();
            let a = write(
                &p,
                new.as_bytes(),
                Expect::Sha256(sha256_hex(old.as_bytes())),
            );
            let s = action_script(&a, Some(&old.as_bytes().into()));
            assert!(s.contains(" splice"), "not an edit");
            assert!(s.len() < 1000, "{} bytes", s.len());
            let out = run_script(dir.path(), &s);
            assert!(out.status.success(), "{out:?}");
            assert_eq!(std::fs::read_to_string(&p).unwrap(), new);
        }
        // Facts that do not match the expectation: the whole file.
        let a = write(&p, old.as_bytes(), Expect::Sha256(sha256_hex(b"other")));
        assert!(action_script(&a, Some(&b"other but not this"[..].into())).contains(" text '"));
    }

    /// Finding 6 of issue 14: the temporary file already has its final (private) mode while
    /// its content goes in, so no reader can open it in between.
    #[test]
    fn content_goes_into_a_file_that_already_has_its_mode() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        // The content comes from a pipe this test holds open: the write waits for it.
        let s = format!(
            "nd_write {} absent '' '' 0600 b64\n",
            quote(&p.display().to_string())
        );
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask 022\nND_RUN=test\n{PRELUDE}{s}"))
            .env("ND_BACKUPS", dir.path().join("backups"))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let tmp = dir.path().join(".novadock.test");
        let t = std::time::Instant::now();
        while !tmp.exists() {
            assert!(t.elapsed().as_secs() < 10, "no temporary file");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mode = std::fs::metadata(&tmp).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "readable while being written");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(base64(b"\0secret").as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(&p).unwrap(), b"\0secret");
    }

    /// Findings 3 and 4 of issue 14: no write through a symlinked directory, or below one that
    /// users other than root can change.
    #[test]
    fn writes_below_symlinks_or_shared_directories_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let via = dir.path().join("link/f");
        let out = run_script(
            dir.path(),
            &action_script(&write(&via, b"x", Expect::Absent), None),
        );
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("link is a symbolic link, not a directory"),
            "{out:?}"
        );
        assert!(!real.join("f").exists());
        // A directory others can change is fine for its own entries (the write goes through
        // descriptors), not above them: they could swap what is below.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = run_script(
            dir.path(),
            &action_script(&write(&real.join("f"), b"x", Expect::Absent), None),
        );
        assert!(out.status.success(), "{out:?}");
        std::fs::create_dir(real.join("sub")).unwrap();
        let out = run_script(
            dir.path(),
            &action_script(&write(&real.join("sub/f"), b"x", Expect::Absent), None),
        );
        assert_eq!(out.status.code(), Some(3), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("can be changed by users other than root (mode 777)"),
            "{out:?}"
        );
        assert!(!real.join("sub/f").exists());
        // Sticky and world-writable (/tmp) is fine: no one else can replace the file there.
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let out = run_script(
            dir.path(),
            &action_script(&write(&real.join("sub/g"), b"x", Expect::Absent), None),
        );
        assert!(out.status.success(), "{out:?}");
    }

    #[test]
    fn splice_keeps_whole_lines() {
        assert_eq!(
            splice(b"a\nb\nc\n", b"a\nB\nc\n"),
            Some((2, 5, &b"B\n"[..]))
        );
        assert_eq!(splice(b"a\n", b"b\n"), None, "not smaller");
        assert_eq!(splice(b"x\n", b"y\nx\n"), None, "not smaller");
        let old = b"aaaa\nbbbb\ncccc\ndddd\neeee\n";
        let new = b"aaaa\nbbbb\ncXcc\ndddd\neeee\n";
        assert_eq!(splice(old, new), Some((10, 16, &b"cXcc\n"[..])));
    }
}
