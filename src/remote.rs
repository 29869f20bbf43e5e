//! The Python that runs on hosts, as files in src/remote/ (the shell there is included where it
//! is used). A program is prelude.py, the library of what it talks to (openstack.py: the SDK;
//! glance.py: Glance's API with a token), then its own file, run with `python3 -c`. One calling
//! convention: the values go as one JSON line on stdin ([`args_line`]), data after it; one
//! error convention: `error: MESSAGE` on stderr, exit 1 ([`py_error`]).

use crate::shell::quote;

const PRELUDE: &str = include_str!("remote/prelude.py");
const OPENSTACK: &str = include_str!("remote/openstack.py");
const GLANCE: &str = include_str!("remote/glance.py");

/// A Python program run on a host.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Py {
    lib: &'static str,
    body: &'static str,
}

const fn openstack(body: &'static str) -> Py {
    Py {
        lib: OPENSTACK,
        body,
    }
}

const fn glance(body: &'static str) -> Py {
    Py { lib: GLANCE, body }
}

pub(crate) const CLOUD_FACTS: Py = openstack(include_str!("remote/cloud-facts.py"));
pub(crate) const FLAVOR_CREATE: Py = openstack(include_str!("remote/flavor-create.py"));
pub(crate) const FLAVOR_SET: Py = openstack(include_str!("remote/flavor-set.py"));
pub(crate) const AGGREGATE: Py = openstack(include_str!("remote/aggregate.py"));
/// `nova_computes`: waits until the hosts' nova-compute is up with the hypervisor type wanted.
pub(crate) const COMPUTES_CHECK: Py = openstack(include_str!("remote/computes-check.py"));
pub(crate) const CLOUD_SESSION: Py = openstack(include_str!("remote/cloud-session.py"));
/// `prefetch --source nova`: finds the aggregate, checks Nova's microversion, asks Nova to cache
/// (unless a dry run).
pub(crate) const PRECACHE: Py = openstack(include_str!("remote/precache.py"));
pub(crate) const BOOT_TIME: Py = openstack(include_str!("remote/boottime.py"));
pub(crate) const GLANCE_DOWNLOAD: Py = glance(include_str!("remote/glance-download.py"));
pub(crate) const GLANCE_UPLOAD: Py = glance(include_str!("remote/glance-upload.py"));
pub(crate) const GLANCE_DELETE: Py = glance(include_str!("remote/glance-delete.py"));

/// Programs that run alone with a Python of the host's choosing (nova-compute's), given to
/// playbooks as `remote_py.NAME`: built in, so no inventory can replace them.
pub(crate) const STANDALONE: &[(&str, &str)] = &[
    ("pip_satisfied", include_str!("remote/pip-satisfied.py")),
    ("pyc_current", include_str!("remote/pyc-current.py")),
];

impl Py {
    /// A program with the prelude and no library.
    #[cfg(test)]
    pub(crate) const fn bare(body: &'static str) -> Py {
        Py { lib: "", body }
    }

    /// The whole program text.
    pub(crate) fn source(&self) -> String {
        format!("{PRELUDE}{}{}", self.lib, self.body)
    }

    /// `python3 -c PROGRAM`, for a shell.
    pub(crate) fn command(&self) -> String {
        format!("python3 -c {}", quote(&self.source()))
    }
}

/// The first line of a program's stdin: its values. serde writes JSON on one line (a newline
/// in a value is `\n`), so the line also ends a here-document safely.
pub(crate) fn args_line(args: &serde_json::Value) -> String {
    format!("{args}\n")
}

/// What a failed program said: its stderr without the `error: ` of the convention.
pub(crate) fn py_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.trim().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs a program with this machine's python3 (the lint tier compiles every file; these
    /// check that the parts work together).
    fn run(src: &str, stdin: &str) -> std::process::Output {
        use std::io::Write;
        // -S: no site-packages, so no openstacksdk whatever this machine has installed.
        let mut c = Command::new("python3")
            .args(["-S", "-c"])
            .arg(src)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs (the unit tier needs it, as the lint tier does)");
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    }

    #[test]
    fn every_program_compiles_whole() {
        let check = "import json, sys\nfor p in json.loads(sys.stdin.buffer.readline()):\n    compile(p, '<program>', 'exec')\nprint('ok')\n";
        let all = [
            CLOUD_FACTS,
            FLAVOR_CREATE,
            FLAVOR_SET,
            AGGREGATE,
            COMPUTES_CHECK,
            CLOUD_SESSION,
            PRECACHE,
            BOOT_TIME,
            GLANCE_DOWNLOAD,
            GLANCE_UPLOAD,
            GLANCE_DELETE,
        ];
        let sources: Vec<String> = all.iter().map(Py::source).collect();
        let out = run(check, &args_line(&serde_json::json!(sources)));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{out:?}");
    }

    #[test]
    fn values_come_on_the_first_line_and_data_after_it() {
        let src = format!("{PRELUDE}print(ARGS['n'], repr(sys.stdin.buffer.read()))\n");
        let out = run(&src, &args_line(&serde_json::json!({"n": "a\nb"})));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a\nb b''\n");
        let out = run(&src, "{\"n\": 1}\nDATA\x00\n");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "1 b'DATA\\x00\\n'\n");
    }

    #[test]
    fn an_exception_in_guard_is_one_error_line() {
        let src = format!("{PRELUDE}guard(lambda: {{}}['missing'])\n");
        let out = run(&src, "{}\n");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err, "error: KeyError: 'missing'\n");
        assert_eq!(py_error(&out.stderr), "KeyError: 'missing'");
    }

    #[test]
    fn a_glance_program_reads_verify_and_the_sdk_ones_need_openstacksdk() {
        let out = run(
            &GLANCE_DELETE.source(),
            "{\"verify\": false, \"glance\": \"x\", \"token\": \"t\", \"ids\": []}\n",
        );
        assert!(out.status.success(), "{out:?}");
        let out = run(&CLOUD_SESSION.source(), "{}\n");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: python3-openstacksdk is not installed on this host\n"
        );
    }
}
