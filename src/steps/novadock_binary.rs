//! `novadock_binary`: novadock itself on a host (the controller's prefetch timer runs it).
//!
//! A binary built for another OS or architecture than the host's is refused (an operator on
//! a Mac). "The same novadock" is decided by `--version`, which names the build (the commit and
//! the target, build.rs): the host's copy is asked, not read, so a current copy costs no 40 MB
//! of facts, and a build of the same commit in another checkout is not sent again.

use super::{Mode, PlanCx, StepError, StepKind};
use crate::facts::Probe;
use crate::plan::{Action, Attrs, Expect, Outcome};
use crate::shell::quote;
use serde::Deserialize;
use std::io::Read;

/// What `novadock --version` prints after the name: the version and the build.
pub(crate) const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (build ",
    env!("NOVADOCK_BUILD"),
    ", ",
    env!("NOVADOCK_TARGET"),
    ")"
);

const UNAME: &str = "uname -sm";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NovadockBinary {
    /// The binary here (absolute): `{{ novadock_exe }}`, the running novadock, by default.
    pub(crate) src: String,
    /// Where it goes on the host (absolute).
    pub(crate) dest: String,
    pub(crate) mode: Option<Mode>,
}

/// (OS, architecture) as `uname -s` and `uname -m` name them (`Linux`, `x86_64`), read from
/// an executable's header; `None` for a file that is no executable novadock knows.
pub(crate) fn platform_of(header: &[u8]) -> Option<(&'static str, &'static str)> {
    let le16 = |o: usize| Some(u16::from_le_bytes(header.get(o..o + 2)?.try_into().ok()?));
    let le32 = |o: usize| Some(u32::from_le_bytes(header.get(o..o + 4)?.try_into().ok()?));
    if header.starts_with(b"\x7fELF") {
        // e_ident[EI_DATA] 1: little-endian, what every target below is.
        if header.get(5) != Some(&1) {
            return None;
        }
        let os = match header.get(7)? {
            9 => "FreeBSD",
            _ => "Linux",
        };
        let arch = match le16(18)? {
            0x3e => "x86_64",
            0xb7 => "aarch64",
            0xf3 => "riscv64",
            0x03 => "i686",
            _ => return None,
        };
        return Some((os, arch));
    }
    if header.starts_with(&[0xcf, 0xfa, 0xed, 0xfe]) {
        let arch = match le32(4)? {
            0x0100_0007 => "x86_64",
            0x0100_000c => "aarch64",
            _ => return None,
        };
        return Some(("Darwin", arch));
    }
    if header.starts_with(b"MZ") {
        return Some(("Windows", "x86_64"));
    }
    None
}

/// `uname -sm`'s answer with arm64 named aarch64, as Linux names it.
fn host_platform(uname: &str) -> Option<(String, String)> {
    let mut w = uname.split_whitespace();
    let os = w.next()?.to_string();
    let arch = match w.next()? {
        "arm64" => "aarch64".to_string(),
        a => a.to_string(),
    };
    Some((os, arch))
}

/// Refuses a binary the host cannot run.
pub(crate) fn check_platform(src: &str, header: &[u8], uname: &str) -> Result<(), String> {
    let host = host_platform(uname).ok_or_else(|| {
        format!(
            "cannot tell this host's OS and architecture (`uname -sm` printed `{}`)",
            uname.trim()
        )
    })?;
    let Some((os, arch)) = platform_of(header) else {
        return Err(format!(
            "{src} is not an executable novadock can tell the platform of; the host is {} {}",
            host.0, host.1
        ));
    };
    if (os, arch) != (host.0.as_str(), host.1.as_str()) {
        let target = match (host.0.as_str(), host.1.as_str()) {
            ("Linux", a) => format!("{a}-unknown-linux-gnu"),
            (o, a) => format!("{a} {o}"),
        };
        return Err(format!(
            "{src} is built for {os} {arch}, and this host is {} {}: the copy would not run there. Nothing was changed on this host.\nhint: build novadock for the host (`cargo build --release --target {target}`) and set novadock_binary: to that binary",
            host.0, host.1
        ));
    }
    Ok(())
}

impl NovadockBinary {
    fn version_probe(&self) -> String {
        format!("{} --version 2>/dev/null", quote(&self.dest))
    }

    /// `src` is the running novadock: its build is known without reading it.
    fn is_running(&self) -> bool {
        let canon = |p: &std::path::Path| std::fs::canonicalize(p).ok();
        let exe = std::env::current_exe().ok();
        exe.and_then(|e| canon(&e))
            .is_some_and(|e| canon(self.src.as_ref()) == Some(e))
    }

    fn header(&self) -> Result<Vec<u8>, StepError> {
        let mut buf = vec![0u8; 64];
        let n = std::fs::File::open(&self.src)
            .and_then(|mut f| f.read(&mut buf))
            .map_err(|e| StepError::Invalid(format!("cannot read {}: {e}", self.src)))?;
        buf.truncate(n);
        Ok(buf)
    }
}

impl StepKind for NovadockBinary {
    fn validate(&self) -> Result<(), StepError> {
        super::require_absolute(&self.dest)?;
        if !self.src.starts_with('/') {
            return Err(StepError::Invalid(format!(
                "src `{}` must be absolute",
                self.src
            )));
        }
        self.header().map(|_| ())
    }

    fn probes(&self) -> Vec<Probe> {
        vec![Probe::Cmd(UNAME.into()), Probe::Cmd(self.version_probe())]
    }

    fn plan(&self, cx: &PlanCx<'_>) -> Result<Outcome, StepError> {
        let uname = cx.facts.cmd(UNAME).map(|c| c.stdout.as_str()).unwrap_or("");
        check_platform(&self.src, &self.header()?, uname).map_err(StepError::Invalid)?;
        let there = cx
            .facts
            .cmd(&self.version_probe())
            .filter(|c| c.code == 0)
            .map(|c| c.stdout.trim().to_string());
        let want = format!("novadock {VERSION}");
        if self.is_running() && there.as_deref() == Some(want.as_str()) {
            return Ok(Outcome::unchanged(format!("{} is {want}", self.dest)));
        }
        // Read here, only when it is sent: 40 MB the facts never carry.
        let content = std::fs::read(&self.src)
            .map_err(|e| StepError::Invalid(format!("cannot read {}: {e}", self.src)))?;
        Ok(Outcome {
            actions: vec![Action::Write {
                path: self.dest.clone(),
                content: content.into(),
                // Never read: whatever is there is replaced.
                expect: Expect::Any,
                attrs: Attrs {
                    owner: None,
                    group: None,
                    mode: Some(self.mode.as_ref().map_or("0755".into(), |m| m.0.clone())),
                },
            }],
            summary: match there {
                Some(v) => format!("replace {} ({v})", self.dest),
                None => format!("install {}", self.dest),
            },
            note: Some(if self.is_running() {
                format!("novadock {VERSION}")
            } else {
                format!(
                    "{}, not the running novadock: sent on every apply",
                    self.src
                )
            }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test binary itself: a real executable of this machine.
    fn this_exe_header() -> Vec<u8> {
        let mut buf = vec![0u8; 64];
        let n = std::fs::File::open(std::env::current_exe().unwrap())
            .unwrap()
            .read(&mut buf)
            .unwrap();
        buf.truncate(n);
        buf
    }

    fn uname_here() -> String {
        let out = std::process::Command::new("uname")
            .arg("-sm")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn a_binary_of_this_machine_runs_here() {
        let h = this_exe_header();
        assert!(platform_of(&h).is_some());
        assert_eq!(check_platform("/x/novadock", &h, &uname_here()), Ok(()));
    }

    #[test]
    fn a_binary_for_another_platform_is_refused() {
        // A Mach-O arm64 header (an operator's Mac build): magic, CPU_TYPE_ARM64.
        let mac = [0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0x00, 0x00, 0x01, 0, 0, 0, 0];
        assert_eq!(platform_of(&mac), Some(("Darwin", "aarch64")));
        assert_eq!(
            check_platform("/Users/op/novadock", &mac, "Linux x86_64\n").unwrap_err(),
            "/Users/op/novadock is built for Darwin aarch64, and this host is Linux x86_64: the copy would not run there. Nothing was changed on this host.\nhint: build novadock for the host (`cargo build --release --target x86_64-unknown-linux-gnu`) and set novadock_binary: to that binary"
        );
        // This machine's binary on an arm64 controller.
        let mut h = this_exe_header();
        h[18] = 0x3e;
        h[19] = 0;
        assert!(
            check_platform("/x/novadock", &h, "Linux aarch64")
                .unwrap_err()
                .contains("is built for Linux x86_64, and this host is Linux aarch64")
        );
        // uname -m arm64 (macOS's name) is aarch64.
        assert_eq!(check_platform("/m", &mac, "Darwin arm64"), Ok(()));
        assert!(
            check_platform("/t", b"#!/bin/sh\n", "Linux x86_64")
                .unwrap_err()
                .starts_with("/t is not an executable novadock can tell the platform of")
        );
    }

    #[test]
    fn the_version_names_the_build_and_target() {
        assert!(VERSION.starts_with(env!("CARGO_PKG_VERSION")), "{VERSION}");
        assert!(VERSION.contains(" (build "), "{VERSION}");
        assert!(
            VERSION.ends_with(&format!(", {})", env!("NOVADOCK_TARGET"))),
            "{VERSION}"
        );
    }
}
