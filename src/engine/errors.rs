//! How failures on a host read: what ran, its exit, the end of its output, and a hint.

use super::host::HostRun;
use crate::transport::ExecOutput;

impl HostRun {
    /// sudo's own words ("a password is required") do not say what to do about it.
    pub(super) fn explain_sudo(&self, e: String) -> String {
        if e.contains("sudo: a password is required") || e.contains("sudo: a terminal is required")
        {
            format!(
                "{} cannot run sudo without a password on {}\nhint: give it NOPASSWD in sudoers (novadock runs `sudo -n sh -s`), or connect as root\n({e})",
                self.host.user, self.host.name
            )
        } else {
            e
        }
    }
}

pub(super) fn command_failure(host: &str, what: &[String], out: &ExecOutput) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut msg = format!(
        "on {host}: `{}` exited with {}",
        what.join("; "),
        out.code.map_or("a signal".to_string(), |c| c.to_string())
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        msg.push_str(&format!(
            "\nstdout:\n{}",
            crate::printer::escape(&tail(&stdout))
        ));
    }
    if !stderr.trim().is_empty() {
        msg.push_str(&format!(
            "\nstderr:\n{}",
            crate::printer::escape(&tail(&stderr))
        ));
    }
    if stderr.contains("sudo: a password is required") {
        msg.push_str("\nhint: the SSH user needs passwordless sudo (NOPASSWD) for novadock");
    }
    msg
}

/// The last 20 lines: enough to see why, not a wall of apt output.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(20);
    lines[start..].join("\n")
}
