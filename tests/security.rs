#![cfg(feature = "hosts-tests")] // a test tier: docs/tests.md
//! Regression tests for the engine-side findings of issue 14 (a tenant or a local user against
//! novadock), on real sshd hosts. Each test failed before its fix.

mod common;

use common::{Hosts, Novadock, Run, run_time};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9qWc0yKlGcYdq1b8p4lWc8m6xVfH3vJ2oQ7y1eZ3Rb nd@test";

/// A local user `u` with a home directory on `host`.
fn add_user(hosts: &Hosts, host: &str) {
    hosts.sh_ok(
        host,
        "id u >/dev/null 2>&1 || useradd -m -d /home/u -s /bin/sh u",
    );
}

/// As user `u` on the host.
fn as_u(hosts: &Hosts, host: &str, script: &str) {
    hosts.sh_ok(
        host,
        &format!(
            "setpriv --reuid=u --regid=u --init-groups sh -c '{}'",
            script.replace('\'', "'\\''")
        ),
    );
}

fn authorized_key_playbook(hosts: &Hosts) -> std::path::PathBuf {
    hosts.write_file(
        "pb.yml",
        &format!(
            "steps:\n  - name: key for u\n    hosts: all\n    authorized_key: {{ user: u, key: \"{KEY}\" }}\n"
        ),
    )
}

/// Finding 4: `~u/.ssh` is a symlink the user planted to a root-owned directory; root must
/// not create a user-owned authorized_keys in it.
#[test]
fn authorized_key_does_not_follow_a_symlinked_ssh_dir() {
    let hosts = Hosts::up(1);
    add_user(&hosts, "h1");
    hosts.sh_ok(
        "h1",
        "mkdir -p /etc/nd-rootonly && chmod 755 /etc/nd-rootonly",
    );
    as_u(&hosts, "h1", "ln -s /etc/nd-rootonly /home/u/.ssh");
    let inv = hosts.inventory("inventory.yml", "");
    let r = hosts.apply(&inv, authorized_key_playbook(&hosts)).run();
    let planted = hosts.sh("h1", "ls -l /etc/nd-rootonly/");
    assert!(
        !planted.stdout.contains("authorized_keys"),
        "root wrote through ~u/.ssh: {planted:?}\n{r:?}"
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("symlink"), "{r:?}");
}

/// Finding 3: the temporary file in the user's own `~/.ssh` has a predictable name; a
/// symlink planted there made root create (and fill) a file anywhere.
#[test]
fn a_planted_temp_file_does_not_make_root_write_elsewhere() {
    let hosts = Hosts::up(1);
    add_user(&hosts, "h1");
    as_u(&hosts, "h1", "mkdir -m 700 /home/u/.ssh");
    let pb = authorized_key_playbook(&hosts);
    planted_run(&hosts, &pb, "/home/u/.ssh");
    // The same for a root file written as root in a directory u owns (descriptors).
    hosts.sh_ok("h1", "mkdir -p /etc/nd-userdir && chown u /etc/nd-userdir");
    let pb = hosts.write_file(
        "pb2.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-userdir/x.conf, content: \"x\\n\" }\n",
    );
    planted_run(&hosts, &pb, "/etc/nd-userdir");
}

/// Apply `pb` while user u plants `.novadock.RUN` in `dir` as a symlink to /etc/nd-pwned.
fn planted_run(hosts: &Hosts, pb: &std::path::Path, dir: &str) {
    let inv = hosts.inventory("inventory.yml", "");
    let secs = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = secs();
    let child = hosts.apply(&inv, pb).command().spawn().unwrap();
    let after = secs();
    // The run id is the start time and the pid: plant every candidate before the write.
    let mut plant = String::new();
    for t in before..=after + 1 {
        plant.push_str(&format!(
            "ln -s /etc/nd-pwned {dir}/.novadock.{}-{}; ",
            run_time(t),
            child.id()
        ));
    }
    as_u(hosts, "h1", &plant);
    let r = Run::from(child.wait_with_output().unwrap());
    let pwned = hosts.sh("h1", "ls -l /etc/nd-pwned");
    assert_ne!(
        pwned.code, 0,
        "root wrote through a planted symlink: {pwned:?}\n{r:?}"
    );
}

/// Finding 3: writes in a user's own directory happen as that user, so the result is
/// theirs, and a directory owned by someone else is refused.
#[test]
fn writes_in_a_users_directory_run_as_that_user_and_others_are_refused() {
    let hosts = Hosts::up(1);
    add_user(&hosts, "h1");
    as_u(&hosts, "h1", "mkdir -m 700 /home/u/.ssh");
    let inv = hosts.inventory("inventory.yml", "");
    hosts
        .apply(&inv, authorized_key_playbook(&hosts))
        .code(0)
        .run();
    assert_eq!(
        hosts.sh_ok("h1", "stat -c '%U %a' /home/u/.ssh/authorized_keys"),
        "u 600\n"
    );
    assert!(
        hosts
            .read_str("h1", "/home/u/.ssh/authorized_keys")
            .contains(KEY)
    );
    // A root file directly in a directory u owns: written through descriptors, so a symlink
    // u plants at the temporary name is refused, not followed.
    hosts.sh_ok(
        "h1",
        "mkdir -p /etc/nd-userdir/sub && chown u /etc/nd-userdir",
    );
    let pb = hosts.write_file(
        "pb2.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-userdir/x.conf, content: \"x\\n\", mode: \"0600\" }\n",
    );
    hosts.apply(&inv, &pb).code(0).run();
    assert_eq!(
        hosts.sh_ok("h1", "stat -c '%U %a' /etc/nd-userdir/x.conf"),
        "root 600\n"
    );
    // Below it, u could swap the directory itself: refused.
    let pb = hosts.write_file(
        "pb3.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-userdir/sub/x.conf, content: \"x\\n\" }\n",
    );
    let r = hosts.apply(&inv, &pb).code(1).run();
    assert!(r.stderr.contains("/etc/nd-userdir is owned by u"), "{r:?}");
    assert_eq!(hosts.sh("h1", "test -e /etc/nd-userdir/sub/x.conf").code, 1);
    // A system account's directory (Debian's /etc/nova is nova:nova 0770) is not refused.
    hosts.sh_ok(
        "h1",
        "useradd -r nd-svc && mkdir -p /etc/nd-svc/rootwrap.d && chown nd-svc:nd-svc /etc/nd-svc && chmod 770 /etc/nd-svc",
    );
    let pb = hosts.write_file(
        "pb4.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-svc/rootwrap.d/x.filters, content: \"x\\n\" }\n",
    );
    hosts.apply(&inv, &pb).code(0).run();
}

/// Finding 5: any local user could take the apply lock in world-writable /run/lock (and its
/// text was printed raw).
#[test]
fn a_local_user_cannot_hold_the_apply_lock() {
    let hosts = Hosts::up(1);
    add_user(&hosts, "h1");
    hosts.sh_ok("h1", "mkdir -p /run/lock && chmod 1777 /run/lock");
    // Held by u for longer than the apply takes, with a line that retitles a terminal.
    let holder = hosts.sh_ok(
        "h1",
        "setpriv --reuid=u --regid=u --init-groups sh -c 'printf \"\\033]0;pwned\\007me\\n\" > /run/lock/novadock.lock; exec flock /run/lock/novadock.lock sleep 20' >/dev/null 2>&1 & echo $!",
    );
    std::thread::sleep(Duration::from_millis(300));
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-lock-test, content: x }\n",
    );
    let r = hosts.apply(&inv, &pb).run();
    assert_eq!(r.code, 0, "a local user locked novadock out: {r:?}");
    assert!(!r.all().contains('\u{1b}'), "{r:?}");
    assert_eq!(
        hosts.sh_ok("h1", "stat -c '%U %a' /run/novadock"),
        "root 700\n"
    );
    // A lock directory someone else could change is refused, not used.
    hosts.sh_ok("h1", "chown u /run/novadock");
    let pb = hosts.write_file(
        "pb2.yml",
        "steps:\n  - name: f\n    hosts: all\n    file: { path: /etc/nd-lock-test, content: y }\n",
    );
    let r = hosts.apply(&inv, &pb).code(1).run();
    assert!(
        r.stderr
            .contains("/run/novadock is not a directory of root only"),
        "{r:?}"
    );
    // Only the holder this test started (its sleep ends by itself).
    let _ = std::process::Command::new("kill")
        .arg(holder.trim())
        .status();
}

/// Finding 7: every form of a secret is masked; a secret is never rendered as a template;
/// `unless:` probes do not carry secrets in a process's arguments.
#[test]
fn secrets_are_masked_in_every_form_and_never_rendered() {
    let hosts = Hosts::up(1);
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nq1w2e3r4t5y6u7i8o9p0aSdFgHjKlZxCvBnM1234567890abcd\n-----END PRIVATE KEY-----\n";
    hosts.write_file("key.pem", pem);
    let quoted = r#"pa"ss\wo'rd-{{ 7 * 6 }}-x"#;
    let inv = hosts.inventory(
        "inventory.yml",
        "vars:\n  pem: { secret_file: key.pem }\n  pw: { secret_env: ND_TEST_PW }\n",
    );
    let pb = hosts.write_file(
        "pb.yml",
        r#"steps:
  - name: a key file
    hosts: all
    file: { path: /etc/nd-key.pem, content: "{{ pem }}\n", mode: "0600" }
  - name: a password file
    hosts: all
    file: { path: /etc/nd-pw, content: "{{ pw }}\n", mode: "0600" }
  - name: a failing command with it
    hosts: all
    command:
      cmd: "echo {{ pw }} >&2; exit 3"
      unless: "tr '\\0' ' ' < /proc/$$/cmdline > /etc/nd-probe-args; test x = {{ pw }}"
"#,
    );
    let run = |args: &[&str]| hosts.novadock(args).env("ND_TEST_PW", quoted).run();
    let (i, p) = (inv.to_str().unwrap(), pb.to_str().unwrap());
    let json_pw = serde_json::to_string(quoted).unwrap();
    let json_pw = &json_pw[1..json_pw.len() - 1];
    let shell_pw = quoted.replace('\'', "'\\''");
    for args in [
        vec!["plan", "-i", i, "-p", p],
        vec!["plan", "-i", i, "-p", p, "--json"],
        vec!["apply", "-i", i, "-p", p, "--yes"],
    ] {
        let r = run(&args);
        let all = r.all();
        for leak in [
            quoted,
            json_pw,
            &shell_pw,
            "pa\"ss",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7",
        ] {
            assert!(!all.contains(leak), "{leak:?} leaked by {args:?}: {r:?}");
        }
        assert!(all.contains("********"), "{args:?}: {r:?}");
    }
    // Deployed literally, not rendered.
    assert_eq!(hosts.read_str("h1", "/etc/nd-pw"), format!("{quoted}\n"));
    // (A secret file's trailing newline is not part of the secret.)
    assert_eq!(hosts.read_str("h1", "/etc/nd-key.pem"), pem);
    // The probe ran, and no process's arguments held the secret.
    let args = hosts.read_str("h1", "/etc/nd-probe-args");
    assert!(!args.is_empty());
    assert!(
        !args.contains("cmdline"),
        "the probe's text was in argv: {args}"
    );
}

/// Finding 13: text from outside (a failing command's output) cannot move the cursor, retitle
/// the terminal or forge lines.
#[test]
fn remote_output_is_printed_escaped() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: noisy\n    hosts: all\n    command: { cmd: \"printf '\\\\033]0;pwned\\\\007\\\\rh1: ok\\\\n' >&2; exit 1\" }\n",
    );
    let r = hosts.apply(&inv, &pb).code(1).run();
    assert!(r.stderr.contains("pwned"), "{r:?}");
    assert!(!r.all().contains('\u{1b}'), "raw escape printed: {r:?}");
    assert!(!r.all().contains('\r'), "raw CR printed: {r:?}");
    assert!(!r.all().contains('\u{7}'), "raw BEL printed: {r:?}");
}

/// Finding 14: `copy` keeps each file's mode and refuses symlinks in its source.
#[test]
fn copy_keeps_modes_and_refuses_symlinks() {
    let hosts = Hosts::up(1);
    let src = hosts.path("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("private.conf"), "secret\n").unwrap();
    std::fs::write(src.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        src.join("private.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        src.join("sub/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let inv = hosts.inventory("inventory.yml", "");
    let pb = hosts.write_file(
        "pb.yml",
        &format!(
            "steps:\n  - name: tree\n    hosts: all\n    copy: {{ src: {}, dest: /opt/nd-copy }}\n",
            src.display()
        ),
    );
    hosts.apply(&inv, &pb).code(0).run();
    assert_eq!(
        hosts.sh_ok(
            "h1",
            "stat -c '%a' /opt/nd-copy/private.conf /opt/nd-copy/sub/run.sh"
        ),
        "600\n755\n"
    );
    std::os::unix::fs::symlink("/etc/shadow", src.join("sub/shadow")).unwrap();
    let r = hosts.apply(&inv, &pb).code(1).run();
    assert!(r.stderr.contains("symlink"), "{r:?}");
    assert_eq!(hosts.sh("h1", "test -e /opt/nd-copy/sub/shadow").code, 1);
}

/// Finding 16: a `creates:` path with a space matches (the value is not shell-quoted there).
#[test]
fn creates_with_a_space_matches() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory("inventory.yml", "vars:\n  name: \"a b\"\n");
    let pb = hosts.write_file(
        "pb.yml",
        "steps:\n  - name: once\n    hosts: all\n    command: { cmd: \"echo x >> /etc/nd-count; touch /etc/{{ name }}\", creates: \"/etc/{{ name }}\" }\n",
    );
    for _ in 0..2 {
        hosts.apply(&inv, &pb).code(0).run();
    }
    assert_eq!(hosts.read_str("h1", "/etc/nd-count"), "x\n");
}

/// Finding 11: a playbook or templates in the directory novadock runs from are not used
/// unless `-p` names them.
#[test]
fn the_current_directory_does_not_replace_the_shipped_playbook() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("playbooks")).unwrap();
    let r = Novadock::new()
        .dir(d.path())
        .file(
            "playbooks/bootstrap.yml",
            "steps:\n  - name: planted\n    hosts: all\n    command: { cmd: \"touch /etc/planted\" }\n",
        )
        .file(
            "inv.yml",
            "hosts:\n  ctl: { address: 127.0.0.1, groups: [controllers] }\n",
        )
        .args(["check", "-i", "inv.yml"])
        .code(0)
        .run();
    assert!(
        r.stderr
            .contains("embedded:playbooks/bootstrap.yml are valid"),
        "{r:?}"
    );
}

/// Finding 15: `boot-time` kept its pid and abort files at predictable names in /tmp, and its
/// Ctrl-C clean-up, as root, touched the abort file through whatever a local user had planted
/// there and killed the process a planted pid file named. Here the controller is a real host
/// whose credentials are slow to read (an openrc that sleeps), so the run is still going when
/// the operator presses Ctrl-C; no OpenStack is needed up to the clean-up.
#[test]
fn boot_time_files_are_private_and_planted_ones_are_ignored() {
    use std::io::{BufRead, BufReader};
    let hosts = Hosts::up(1);
    add_user(&hosts, "h1");
    hosts.sh_ok(
        "h1",
        "chmod 1777 /tmp && printf 'sleep 4\\n' > /root/nd-slow-openrc",
    );
    // A root process u would like to see killed, and its start time (the pid file's check).
    let victim = hosts.sh_ok("h1", "sleep 300 >/dev/null 2>&1 & echo $!");
    let victim = victim.trim();
    let start = hosts.sh_ok(
        "h1",
        &format!("sed 's/.*) //' /proc/{victim}/stat | cut -d' ' -f20"),
    );
    let inv = hosts.inventory_with(
        "inventory.yml",
        |_| "controllers",
        "vars:\n  openstack_openrc: /root/nd-slow-openrc\n",
    );
    let secs = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = secs();
    let mut child = hosts
        .novadock(["boot-time", "-i"])
        .arg(&inv)
        .args(["--flavor", "f", "--image", "i", "--count", "1"])
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let after = secs();
    // The names the run's files had in /tmp: the run id is the start time and the pid.
    let mut plant = String::new();
    for t in before..=after + 1 {
        let old = format!("/tmp/novadock-bt-{}-{}-", run_time(t), child.id());
        plant.push_str(&format!(
            "ln -s /etc/nd-pwned {old}abort; echo '{victim} {}' > {old}pid; ",
            start.trim()
        ));
    }
    as_u(&hosts, "h1", &plant);
    // Ctrl-C once the run is under way (its first line is printed inside it).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("boot-time:") {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    assert!(seen.contains("boot-time:"), "{seen}");
    // Meanwhile the run's own directory (checked below).
    let own = hosts.sh("h1", "stat -c '%U %a %n' /run/novadock-boot-time.*");
    // SAFETY: kill has no preconditions; the pid is this test's own child.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: format!("{seen}{rest}"),
    };
    assert_eq!(r.code, 130, "{r:?}");
    assert!(r.stderr.contains("interrupted"), "{r:?}");
    let pwned = hosts.sh("h1", "ls -l /etc/nd-pwned");
    assert_ne!(
        pwned.code, 0,
        "root wrote through a planted symlink: {pwned:?}\n{r:?}"
    );
    assert_eq!(
        hosts.sh("h1", &format!("kill -0 {victim}")).code,
        0,
        "a planted pid file made root kill pid {victim}: {r:?}"
    );
    // The run's files were in a new directory, root's, 0700, gone at the end.
    assert!(
        own.stdout.starts_with("root 700 /run/novadock-boot-time.")
            && own.stdout.lines().count() == 1,
        "{own:?}"
    );
    assert_eq!(
        hosts
            .sh("h1", "ls -d /run/novadock-boot-time.* 2>/dev/null")
            .stdout,
        "",
        "{r:?}"
    );
    hosts.sh_ok("h1", &format!("kill {victim}"));
}

/// Finding 1: the spool of `image add --from-host` (and of the bootstrap's `glance_image`
/// step, which shares it) is a new private directory with a random name, and a `docker save`
/// that fails leaves none behind (a partial tarball stayed in $TMPDIR).
#[test]
fn a_failed_docker_save_leaves_no_spool_behind() {
    let hosts = Hosts::up(1);
    let inv = hosts.inventory_with("inventory.yml", |_| "controllers", "");
    let tmp = tempfile::tempdir().unwrap();
    // (No dockerd runs on these hosts: docker save fails, whether the CLI is there or not.)
    let r = hosts
        .novadock(["image", "add", "-i"])
        .arg(&inv)
        .args(["nd/x:1", "--from-host", "h1"])
        .env("TMPDIR", tmp.path())
        .code(1)
        .run();
    assert!(
        r.stderr.contains("docker save nd/x:1 on h1 failed"),
        "{r:?}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}\n{r:?}");
}
