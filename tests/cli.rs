//! The binary's command-line contract, offline (no hosts needed).

use std::path::Path;
use std::process::{Command, Stdio};

fn novadock(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_novadock"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const INV: &str = "hosts:\n  ctl: { address: 127.0.0.11, groups: [controllers] }\n";

#[test]
fn malformed_inventory_points_at_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "inv.yml",
        "hosts:\n  ctl: { address: 127.0.0.11, grups: [x] }\n",
    );
    let (code, out, err) = novadock(&["check", "-i", "inv.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: invalid inventory\n  Caused by: inv.yml:2:31: hosts.ctl: unknown field `grups`, expected one of `address`, `groups`, `vars`, `user`, `port`\n"
    );
    write(
        d.path(),
        "inv.yml",
        "hosts:\n  ctl: { address: 127.0.0.11\n  cmp1: [\n",
    );
    let (code, _, err) = novadock(&["check", "-i", "inv.yml"], d.path());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: invalid inventory\n  Caused by: inv.yml:3:"),
        "{err}"
    );
}

#[test]
fn malformed_playbook_points_at_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.yml", INV);
    write(
        d.path(),
        "pb.yml",
        "steps:\n  - name: x\n    hosts: all\n    ini:\n      path: /etc/x.conf\n      section: s\n      option: o\n      valeu: 1\n",
    );
    let (code, _, err) = novadock(&["check", "-i", "inv.yml", "-p", "pb.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: pb.yml has 1 problem\n  Caused by: step 1 (x) on ctl: ini: unknown field `valeu`, expected one of `path`, `section`, `option`, `known`, `release`, `value`, `list_contains`, `absent`, `default`, `aliases`, `owner`, `group`, `mode`\n"
    );
    write(
        d.path(),
        "pb.yml",
        "steps:\n  - name: x\n    hosts: all\n    ini: { path: /etc/x\n",
    );
    let (code, _, err) = novadock(&["plan", "-i", "inv.yml", "-p", "pb.yml"], d.path());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: invalid playbook\n  Caused by: pb.yml:5:1: "),
        "{err}"
    );
}

#[test]
fn check_renders_every_step_for_every_host() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.yml", INV);
    write(
        d.path(),
        "pb.yml",
        "steps:\n  - name: uses an undefined variable\n    hosts: controllers\n    file: { path: \"{{ nope }}\", content: x }\n  - name: relative path\n    hosts: all\n    file: { path: etc/x, content: x }\n  - name: two kinds\n    hosts: all\n    service: { name: x, enabled: true }\n    command: { cmd: x }\n",
    );
    let (code, _, err) = novadock(&["check", "-i", "inv.yml", "-p", "pb.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: invalid playbook\n  Caused by: pb.yml: step 3 (two kinds): has several kinds (service, command); a step does one thing\n"
    );
    write(
        d.path(),
        "pb.yml",
        "steps:\n  - name: uses an undefined variable\n    hosts: controllers\n    file: { path: \"{{ nope }}\", content: x }\n  - name: relative path\n    hosts: all\n    file: { path: etc/x, content: x }\n  - name: restart outside a handler\n    hosts: all\n    service: { name: nova-api, state: restarted }\n",
    );
    let (code, _, err) = novadock(&["check", "-i", "inv.yml", "-p", "pb.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: pb.yml has 3 problems\n  Caused by: step 1 (uses an undefined variable) on ctl: cannot render `{{ nope }}`: undefined value (in <string>:1)\nstep 2 (relative path) on ctl: file: path `etc/x` must be absolute\nstep 3 (restart outside a handler) on ctl: service: nova-api: `state: restarted`/`reloaded` belongs in a handler, notified by the steps that change its config\n"
    );
    let (code, _, err) = novadock(&["check", "-i", "inv.yml", "-p", "nope.yml"], d.path());
    assert_eq!(code, 1);
    assert!(err.starts_with("error: playbook nope.yml not found on disk, and no embedded playbook has that name\nhint: embedded playbooks: "), "{err}");
}

#[test]
fn the_embedded_playbook_works_from_any_directory() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.yml", INV);
    let (code, _, err) = novadock(&["check", "-i", "inv.yml"], d.path());
    assert_eq!(code, 0, "{err}");
    // The inventory has no docker_computes: those steps match nothing, and check says so.
    assert!(
        err.starts_with("warning: step 7 (Nova can load the Docker driver on this release): hosts `docker_computes` matches no host in this inventory\n"),
        "{err}"
    );
    assert!(
        err.ends_with("ok: inv.yml and embedded:playbooks/bootstrap.yml are valid: 1 host, 32 steps, 5 handlers\n"),
        "{err}"
    );
}

#[test]
fn the_example_inventory_is_valid() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, _, err) = novadock(&["check", "-i", "inventories/example.yml"], repo);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        "ok: inventories/example.yml and embedded:playbooks/bootstrap.yml are valid: 3 hosts, 32 steps, 5 handlers\n"
    );
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.yml", INV);
    let (code, _, err) = novadock(&["apply", "-i", "inv.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: refusing to apply without confirmation: stdin is not a terminal\nhint: run `novadock plan` to review, then `novadock apply --yes`\n"
    );
}

#[test]
fn help_explains_with_examples_and_completions_print() {
    let d = tempfile::tempdir().unwrap();
    for (sub, example) in [
        ("check", "novadock check -i inventories/lab.yml"),
        ("plan", "novadock plan -i inventories/lab.yml --limit cmp3"),
        ("apply", "novadock apply -i inventories/lab.yml --yes"),
        (
            "prefetch",
            "novadock prefetch -i inventories/lab.yml --dry-run",
        ),
        (
            "boot-time",
            "novadock boot-time -i inventories/lab.yml --flavor d1.large --image bt-big:latest --count 10",
        ),
    ] {
        let (code, out, _) = novadock(&[sub, "--help"], d.path());
        assert_eq!(code, 0);
        assert!(out.contains(example), "{sub} --help: {out}");
        assert!(out.contains("Exit codes:"), "{sub} --help: {out}");
    }
    let (code, out, _) = novadock(&["completions", "bash"], d.path());
    assert_eq!(code, 0);
    assert!(out.contains("_novadock()"), "{out}");
}

#[test]
fn add_compute_runs_only_with_limit() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "inv.yml", INV);
    let (code, _, err) = novadock(
        &["plan", "-i", "inv.yml", "-p", "playbooks/add-compute.yml"],
        d.path(),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: embedded:playbooks/add-compute.yml runs only on the hosts being added\nhint: name them with --limit, e.g. --limit cmp3 (the controller's steps for them are included)\n"
    );
    // It is the bootstrap playbook: same steps, same handlers.
    let (code, _, err) = novadock(
        &[
            "check",
            "-i",
            "inv.yml",
            "-p",
            "add-compute.yml",
            "--limit",
            "ctl",
        ],
        d.path(),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.ends_with("are valid: 1 host, 32 steps, 5 handlers\n"),
        "{err}"
    );
}

/// The nova source (the default with novadock's own driver) cannot prune or work on some
/// hosts only: refused before anything is contacted (127.0.0.254 runs nothing).
#[test]
fn prefetch_through_nova_refuses_what_nova_cannot_do() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "inv.yml",
        "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n",
    );
    let (code, _, err) = novadock(&["prefetch", "-i", "inv.yml", "--prune"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: --prune: the nova source cannot remove images (Nova's image cache API has no un-cache call)\nhint: --source glance (or prefetch_source: glance) loads the images over SSH from the controller, host by host\n"
    );
    let (code, _, err) = novadock(
        &[
            "prefetch", "-i", "inv.yml", "--source", "nova", "--limit", "cmp1",
        ],
        d.path(),
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: --limit: the nova source asks Nova to cache on every host of the aggregate\nhint: "),
        "{err}"
    );
    // An explicit source, or another driver, keeps the SSH path (and its checks).
    write(
        d.path(),
        "bad.yml",
        "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\nvars: { docker_driver_source: pip, prefetch_source: ftp }\n",
    );
    let (code, _, err) = novadock(&["prefetch", "-i", "bad.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: bad.yml: prefetch_source `ftp`: expected nova, glance or registry\n"
    );
}

#[test]
fn prefetch_and_image_add_need_a_controller_and_a_matching_name() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "none.yml",
        "hosts:\n  cmp1: { address: 127.0.0.254, groups: [docker_computes] }\n",
    );
    let (code, _, err) = novadock(&["prefetch", "-i", "none.yml"], d.path());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: none.yml: no host in group `controllers`\nhint: the controller (where Glance and the credentials are) must be in group `controllers`\n"
    );
    // The tarball's name is checked before anything is contacted (127.0.0.254 runs nothing).
    write(
        d.path(),
        "inv.yml",
        "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n",
    );
    let tar = |name: &str, body: &[u8]| {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
        h[156] = b'0';
        let mut out = h.to_vec();
        out.extend_from_slice(body);
        out.resize(512 + body.len().div_ceil(512) * 512, 0);
        out
    };
    let mut t = tar(
        "manifest.json",
        br#"[{"Config":"c","RepoTags":["nd/inner:1"],"Layers":[]}]"#,
    );
    t.extend([0u8; 1024]);
    std::fs::write(d.path().join("img.tar"), t).unwrap();
    let (code, _, err) = novadock(
        &[
            "image",
            "add",
            "-i",
            "inv.yml",
            "nd/outer:1",
            "--file",
            "img.tar",
        ],
        d.path(),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: the tarball holds nd/inner:1, not nd/outer:1: nova-docker looks the image up in dockerd by its Glance name, so an image uploaded under another name cannot boot\nhint: give the name the image has (`docker image ls`), or `docker tag` it first\n"
    );
    let (code, _, err) = novadock(&["image", "add", "-i", "inv.yml", "nd/outer:1"], d.path());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: say where the image comes from\n"),
        "{err}"
    );
}

#[test]
fn boot_time_needs_a_controller_and_a_host_to_compare_on() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "inv.yml",
        "hosts:\n  cmp1: { address: 127.0.0.12 }\n",
    );
    let (code, out, err) = novadock(
        &[
            "boot-time",
            "-i",
            "inv.yml",
            "--flavor",
            "f",
            "--image",
            "i",
        ],
        d.path(),
    );
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error: inv.yml: no host in group `controllers`\nhint: boot-time talks to Nova from the first host of group `controllers`, where the credentials are\n"
    );
    write(d.path(), "inv.yml", INV);
    let (code, _, err) = novadock(
        &[
            "boot-time",
            "-i",
            "inv.yml",
            "--flavor",
            "f",
            "--image",
            "i",
            "--compare-prefetch",
        ],
        d.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--host <HOST>"), "{err}");
    let (code, _, err) = novadock(
        &[
            "boot-time",
            "-i",
            "inv.yml",
            "--flavor",
            "f",
            "--image",
            "i",
            "--count",
            "0",
        ],
        d.path(),
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn help_prints_the_manual_built_into_the_binary() {
    // From an empty directory: an installed novadock has no docs/ beside it.
    let d = tempfile::tempdir().unwrap();
    let (code, out, err) = novadock(&["help"], d.path());
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "The novadock manual. `novadock help TOPIC` prints a page:

  boot-time         How long a server takes to boot
  bootstrap         The shipped playbooks: bootstrap and add-compute
  commands          Commands, options, exit codes and output
  driver            novadock's Nova Docker driver
  image-add         A docker image into Glance, checked
  internals         Internals: how a run works
  inventory         Inventory: hosts, groups, variables
  lab               The lab: a real OpenStack on this machine
  playbook          Playbook: steps, handlers, templating
  prefetch          Glance's docker images on every Docker compute host
  steps             Step kinds: the reference
  tests             Tests: the tiers and what each checks

A link to NAME.md in a page is the topic NAME. `novadock COMMAND --help` lists a command's options;
`novadock help COMMAND` shows the same for a command without a page.
"
    );
    // A page is the file in docs/, byte for byte.
    let steps =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/steps.md"))
            .unwrap();
    assert_eq!(
        novadock(&["help", "steps"], d.path()),
        (0, steps, String::new())
    );
    // A command without a page: exactly its --help.
    let plan = novadock(&["plan", "--help"], d.path());
    assert_eq!(plan.0, 0);
    assert_eq!(novadock(&["help", "plan"], d.path()), plan);
    assert_eq!(
        novadock(&["help", "nope"], d.path()),
        (
            1,
            String::new(),
            "error: no help topic `nope`\nhint: topics: boot-time, bootstrap, commands, driver, image-add, internals, inventory, lab, playbook, prefetch, steps, tests; `novadock help` lists them with their titles\n".into()
        )
    );
    // --help points there, not at a README an installed user does not have.
    let (code, out, _) = novadock(&["--help"], d.path());
    assert_eq!(code, 0);
    assert!(
        out.ends_with("\nExit codes: 0 success (plan: no changes), 1 error, 2 plan has changes pending.\nDocs: `novadock help` lists the manual's topics (inventory, playbook, steps, …);\n`novadock help TOPIC` prints one.\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  help         The manual, built in: list its topics, or print one\n"),
        "{out}"
    );
}
