//! The apply lock: one apply at a time per host, held by a remote `flock` that lives as long
//! as the run (or, for a run of one script, by that script itself).

use super::host::{HostRun, Live};
use crate::shell::quote;

/// Makes /run/novadock, root's only; sent before either lock script.
const LOCK_DIR_SH: &str = include_str!("../remote/lock-dir.sh");
/// The lock held for a whole run, by a process of its own ([`HostRun::lock`]).
const LOCK_HOLD_SH: &str = include_str!("../remote/lock-hold.sh");
/// The lock taken by the run's only script ([`HostRun::inline_lock`]).
const LOCK_INLINE_SH: &str = include_str!("../remote/lock-inline.sh");
/// What a script that found the apply lock taken prints, and its exit code.
pub(super) const LOCK_HELD: &str = "novadock-lock-held ";
pub(super) const LOCK_HELD_CODE: i32 = 75;

impl HostRun {
    /// The lock taken by a script itself: held by its shell until it exits, the whole of
    /// this run's changes.
    pub(super) fn inline_lock(&self) -> String {
        format!(
            "nd_owner={}\n{LOCK_DIR_SH}{LOCK_INLINE_SH}",
            quote(&self.lock_owner())
        )
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
        let script = format!("nd_owner={}\n{LOCK_DIR_SH}{LOCK_HOLD_SH}", quote(&who));
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
    use super::{LOCK_HELD, LOCK_HELD_CODE, LOCK_INLINE_SH};

    #[test]
    fn the_inline_lock_answers_as_the_engine_reads_it() {
        let held = format!("printf '{}%s\\n'", LOCK_HELD);
        assert!(LOCK_INLINE_SH.contains(&held), "{LOCK_INLINE_SH}");
        let exit = format!("\texit {LOCK_HELD_CODE}\n");
        assert!(LOCK_INLINE_SH.contains(&exit), "{LOCK_INLINE_SH}");
    }
}
