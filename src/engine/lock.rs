//! The apply lock: one apply at a time per host, held by a remote `flock` that lives as long
//! as the run (or, for a run of one script, by that script itself).

use super::host::{HostRun, Live};
use crate::shell::quote;

/// Makes /run/novadock, root's only; sent before either lock script.
const LOCK_DIR_SH: &str = include_str!("../remote/lock-dir.sh");
/// Takes the lock, the same way for either holder below.
const LOCK_TAKE_SH: &str = include_str!("../remote/lock-take.sh");
/// The lock held for a whole run, by a process of its own ([`HostRun::lock`]), once taken.
const LOCK_HOLD_SH: &str = include_str!("../remote/lock-hold.sh");
/// What a script that found the apply lock taken prints, and its exit code.
pub(super) const LOCK_HELD: &str = "novadock-lock-held ";
pub(super) const LOCK_HELD_CODE: i32 = 75;

/// The script that takes the lock for `owner`; another apply's lock makes it print `held`,
/// a space and the holder's line, and exit with `code`.
fn take(owner: &str, held: &str, code: i32) -> String {
    format!(
        "nd_owner={}\nnd_held={}\nnd_held_exit={code}\n{LOCK_DIR_SH}{LOCK_TAKE_SH}",
        quote(owner),
        quote(held)
    )
}

impl HostRun {
    /// The lock taken by a script itself: held by its shell until it exits, the whole of
    /// this run's changes.
    pub(super) fn inline_lock(&self) -> String {
        take(&self.lock_owner(), LOCK_HELD.trim_end(), LOCK_HELD_CODE)
    }

    /// Who holds the apply lock, as the lock file says.
    fn lock_owner(&self) -> String {
        format!(
            "novadock run {} (pid {} on {}, user {})",
            self.opts.run_id,
            std::process::id(),
            hostname(),
            std::env::var("USER").unwrap_or_else(|_| "?".into())
        )
    }

    pub(super) fn held_by(&self, holder: &str) -> String {
        let mut e = format!(
            "{} is locked by another apply: {}",
            self.host.name,
            crate::printer::escape_line(holder)
        );
        // A run killed here: the script it sent goes on, and holds the lock, until it is done.
        let gone = holder
            .split_once("(pid ")
            .and_then(|(_, r)| r.split_once(" on "))
            .and_then(|(pid, r)| {
                let here = r.split_once(',').is_some_and(|(h, _)| h == hostname());
                (here && !std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
            })
            .is_some();
        if gone {
            e.push_str(&format!(
                "\nhint: that novadock process has ended, but the changes it sent are still running on {}; apply again once they are done",
                self.host.name
            ));
        }
        e
    }

    pub(super) async fn lock(&self, live: &mut Live) -> Result<(), String> {
        if live.lock.is_some() {
            return Ok(());
        }
        let who = self.lock_owner();
        let script = format!("{}{LOCK_HOLD_SH}", take(&who, "HELD", 0));
        let (line, guard) = live
            .transport
            .hold(&script)
            .await
            .map_err(|e| e.to_string())?;
        match line.strip_prefix("HELD ") {
            None if line == "LOCKED" => {
                live.lock = Some(guard);
                Ok(())
            }
            Some(holder) => Err(self.held_by(holder)),
            None => Err(format!(
                "could not take the apply lock on {}: {line:?}",
                self.host.name
            )),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::{LOCK_DIR_SH, LOCK_HELD, LOCK_HELD_CODE, take};
    use std::os::unix::fs::PermissionsExt;

    /// The answer of the taking script when another apply holds the lock, as the engine
    /// reads it: run by sh with a `flock` that fails, on a lock file of the test's own.
    #[test]
    fn a_held_lock_answers_as_the_engine_reads_it() {
        let d = tempfile::tempdir().unwrap();
        let flock = d.path().join("flock");
        std::fs::write(&flock, "#!/bin/sh\nexit 1\n").unwrap();
        std::fs::set_permissions(&flock, std::fs::Permissions::from_mode(0o755)).unwrap();
        let lock = d.path().join("lock");
        std::fs::write(&lock, "novadock run r1 (pid 1 on h, user u)\n").unwrap();
        let script = take("me", LOCK_HELD.trim_end(), LOCK_HELD_CODE)
            .replace(LOCK_DIR_SH, "")
            .replace("/run/novadock/lock", lock.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", d.path().display()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(LOCK_HELD_CODE), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{LOCK_HELD}novadock run r1 (pid 1 on h, user u)\n")
        );
        // Its owner's line is left alone.
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            "novadock run r1 (pid 1 on h, user u)\n"
        );
    }
}
