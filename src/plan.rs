//! The plan is data: what each step would do on a host, as a list of actions.
//!
//! Steps never touch a host. They turn facts into [`Action`]s; the engine decides, in one
//! place, whether actions are only reported (plan) or also executed (apply).

use crate::facts::{Facts, FileFact, Meta};
use crate::shell::quote;
use sha2::{Digest, Sha256};

/// What a path must look like when an action runs; checked again on the host before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Absent,
    Sha256(String),
    Dir,
    Link(String),
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs {
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Atomically replace (or create) a regular file.
    Write {
        path: String,
        content: Vec<u8>,
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
pub struct UploadSpec {
    pub name: String,
    /// An inventory host that has the image, or empty with `file`.
    pub from_host: String,
    pub file: String,
    pub public: bool,
    pub auth: crate::openstack::Auth,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub actions: Vec<Action>,
    /// One line for humans: "edit /etc/nova/nova.conf", "install docker.io".
    pub summary: String,
    pub diff: Option<String>,
    /// Why nothing changes, when that is worth saying ("docker is in the default").
    pub note: Option<String>,
}

impl Outcome {
    pub fn unchanged(summary: impl Into<String>) -> Outcome {
        Outcome {
            summary: summary.into(),
            ..Default::default()
        }
    }

    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The expectation matching what the facts say is at `path` now.
pub fn expect_of(fact: &FileFact) -> Expect {
    match fact {
        FileFact::Absent => Expect::Absent,
        FileFact::File { content, .. } => Expect::Sha256(sha256_hex(content)),
        FileFact::Dir { .. } => Expect::Dir,
        FileFact::Link { target } => Expect::Link(target.clone()),
        FileFact::Other => Expect::Any,
    }
}

/// True when `attrs` asks for something `meta` does not already have.
pub fn attrs_differ(attrs: &Attrs, meta: &Meta) -> bool {
    attrs.owner.as_ref().is_some_and(|o| *o != meta.owner)
        || attrs.group.as_ref().is_some_and(|g| *g != meta.group)
        || attrs
            .mode
            .as_ref()
            .is_some_and(|m| normalize_mode(m) != normalize_mode(&meta.mode))
}

/// "0640", "640" and "00640" are the same mode.
pub fn normalize_mode(m: &str) -> String {
    let t = m.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

/// Record the effect of executed (or planned) actions, so later steps see the new state.
pub fn overlay(facts: &mut Facts, actions: &[Action]) {
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
pub fn is_unit_path(path: &str) -> bool {
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
/// directory, fsync, rename, fsync the directory; the old file is backed up outside its
/// directory (conf.d directories would load a backup left next to it).
pub const PRELUDE: &str = r#"set -eu
LC_ALL=C; export LC_ALL
nd_fail() { printf 'novadock: %s\n' "$*" >&2; exit 3; }
nd_state() {
	if [ -L "$1" ]; then printf 'link:%s' "$(readlink "$1")"
	elif [ -d "$1" ]; then printf dir
	elif [ -e "$1" ]; then sha256sum < "$1" | cut -d' ' -f1
	else printf absent; fi
}
nd_expect() {
	[ "$2" = any ] && return 0
	[ "$(nd_state "$1")" = "$2" ] || nd_fail "$1 changed since it was planned; run plan again"
}
nd_backup() {
	[ -f "$1" ] && [ ! -L "$1" ] || return 0
	nd_b="/var/backups/novadock/$ND_RUN$1"
	mkdir -p "${nd_b%/*}" && chmod 700 /var/backups/novadock && cp -p "$1" "$nd_b"
	# keep the last 5 runs
	ls -1 /var/backups/novadock | sort | head -n -5 | while read -r old; do rm -rf "/var/backups/novadock/$old"; done
}
nd_attrs() {
	[ -z "$2" ] || chown -h -- "$2" "$1"
	[ -z "$3" ] || chgrp -h -- "$3" "$1"
	[ -z "$4" ] || chmod -- "$4" "$1"
}
nd_write() {
	nd_expect "$1" "$2"
	nd_d=$(dirname -- "$1")
	[ -d "$nd_d" ] || nd_fail "directory $nd_d does not exist"
	nd_t=$(mktemp "$nd_d/.novadock.XXXXXX")
	trap 'rm -f "$nd_t"' EXIT
	base64 -d > "$nd_t"
	if [ -f "$1" ]; then
		chown --reference="$1" -- "$nd_t"; chmod --reference="$1" -- "$nd_t"; nd_backup "$1"
	else
		chmod 644 -- "$nd_t"
	fi
	nd_attrs "$nd_t" "$3" "$4" "$5"
	sync -- "$nd_t"
	mv -f -- "$nd_t" "$1"
	trap - EXIT
	sync -- "$nd_d"
}
nd_remove() {
	nd_expect "$1" "$2"
	nd_backup "$1"
	rm -rf -- "$1"
	sync -- "$(dirname -- "$1")"
}
nd_pending() {
	mkdir -p /var/lib/novadock
	grep -qxF -- "$1" /var/lib/novadock/pending-handlers 2>/dev/null && return 0
	printf '%s\n' "$1" >> /var/lib/novadock/pending-handlers
	sync -- /var/lib/novadock/pending-handlers
}
"#;

/// The shell text that carries out one action (after [`PRELUDE`]).
pub fn action_script(a: &Action) -> String {
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
            let b64 = base64(content);
            format!(
                "nd_write {} {} {} <<'ND_EOF'\n{}ND_EOF\n",
                quote(path),
                quote(&expect_word(expect)),
                attrs(at),
                b64
            )
        }
        Action::Remove { path, expect } => {
            format!(
                "nd_remove {} {}\n",
                quote(path),
                quote(&expect_word(expect))
            )
        }
        Action::Mkdir { path, attrs: at } => format!(
            "mkdir -p -- {p}\nnd_attrs {p} {}\n",
            attrs(at),
            p = quote(path)
        ),
        Action::Symlink { path, target } => format!(
            "nd_backup {p}\nln -sfn -- {} {p}\n",
            quote(target),
            p = quote(path)
        ),
        Action::SetAttrs { path, attrs: at } => format!("nd_attrs {} {}\n", quote(path), attrs(at)),
        Action::Run { command, .. } => format!("( {command}\n)\n"),
        // Carried by the engine, never part of a script.
        Action::Upload(_) => String::new(),
    }
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
pub fn base64(data: &[u8]) -> String {
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

    #[test]
    fn write_script_is_atomic_and_checks_expectation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.conf");
        std::fs::write(&p, "old\n").unwrap();
        let path = p.display().to_string();
        let run = |expect: Expect| {
            let a = Action::Write {
                path: path.clone(),
                content: b"new 'quoted' $(id)\n".to_vec(),
                expect,
                attrs: Attrs::default(),
            };
            let script = format!("ND_RUN=test\n{PRELUDE}{}", action_script(&a));
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .env("HOME", dir.path())
                .output()
                .unwrap()
        };
        let out = run(Expect::Sha256(sha256_hex(b"stale\n")));
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("changed since it was planned"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n");
        // The real backup directory is the host's; here we only check the content logic.
        let a = Action::Write {
            path: path.clone(),
            content: b"x".to_vec(),
            expect: Expect::Sha256(sha256_hex(b"old\n")),
            attrs: Attrs::default(),
        };
        assert!(action_script(&a).contains("nd_write"));
    }
}
