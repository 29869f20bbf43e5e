//! The binary's command-line contract, offline (no hosts needed).

mod common;

use common::Novadock;
use std::path::Path;

const INV: &str = "hosts:\n  ctl: { address: 127.0.0.11, groups: [controllers] }\n";

#[test]
fn malformed_inventory_points_at_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    let check = || {
        Novadock::new()
            .dir(d.path())
            .args(["check", "-i", "inv.yml"])
    };
    check()
        .file("inv.yml", "hosts:\n  ctl: { address: 127.0.0.11, grups: [x] }\n")
        .code(1)
        .stdout("")
        .stderr("error: invalid inventory\n  Caused by: inv.yml:2:31: hosts.ctl: unknown field `grups`, expected one of `address`, `groups`, `vars`, `user`, `port`\n")
        .run();
    let r = check()
        .file(
            "inv.yml",
            "hosts:\n  ctl: { address: 127.0.0.11\n  cmp1: [\n",
        )
        .code(1)
        .run();
    assert!(
        r.stderr
            .starts_with("error: invalid inventory\n  Caused by: inv.yml:3:"),
        "{r:?}"
    );
}

#[test]
fn malformed_playbook_points_at_file_line_col() {
    let d = tempfile::tempdir().unwrap();
    let nd = || Novadock::new().dir(d.path()).file("inv.yml", INV);
    nd().file(
        "pb.yml",
        "steps:\n  - name: x\n    hosts: all\n    ini:\n      path: /etc/x.conf\n      section: s\n      option: o\n      valeu: 1\n",
    )
    .args(["check", "-i", "inv.yml", "-p", "pb.yml"])
    .code(1)
    .stderr("error: pb.yml has 1 problem\n  Caused by: step 1 (x) on ctl: ini: unknown field `valeu`, expected one of `path`, `section`, `option`, `known`, `release`, `value`, `list_contains`, `absent`, `default`, `aliases`, `owner`, `group`, `mode`\n")
    .run();
    let r = nd()
        .file(
            "pb.yml",
            "steps:\n  - name: x\n    hosts: all\n    ini: { path: /etc/x\n",
        )
        .args(["plan", "-i", "inv.yml", "-p", "pb.yml"])
        .code(1)
        .run();
    assert!(
        r.stderr
            .starts_with("error: invalid playbook\n  Caused by: pb.yml:5:1: "),
        "{r:?}"
    );
}

#[test]
fn check_renders_every_step_for_every_host() {
    let d = tempfile::tempdir().unwrap();
    let check = |pb: &str| {
        Novadock::new()
            .dir(d.path())
            .file("inv.yml", INV)
            .args(["check", "-i", "inv.yml", "-p", pb])
    };
    check("pb.yml")
        .file(
            "pb.yml",
            "steps:\n  - name: uses an undefined variable\n    hosts: controllers\n    file: { path: \"{{ nope }}\", content: x }\n  - name: relative path\n    hosts: all\n    file: { path: etc/x, content: x }\n  - name: two kinds\n    hosts: all\n    service: { name: x, enabled: true }\n    command: { cmd: x }\n",
        )
        .code(1)
        .stderr("error: invalid playbook\n  Caused by: pb.yml: step 3 (two kinds): has several kinds (service, command); a step does one thing\n")
        .run();
    check("pb.yml")
        .file(
            "pb.yml",
            "steps:\n  - name: uses an undefined variable\n    hosts: controllers\n    file: { path: \"{{ nope }}\", content: x }\n  - name: relative path\n    hosts: all\n    file: { path: etc/x, content: x }\n  - name: restart outside a handler\n    hosts: all\n    service: { name: nova-api, state: restarted }\n",
        )
        .code(1)
        .stderr("error: pb.yml has 3 problems\n  Caused by: step 1 (uses an undefined variable) on ctl: cannot render `{{ nope }}`: undefined value (in <string>:1)\nstep 2 (relative path) on ctl: file: path `etc/x` must be absolute\nstep 3 (restart outside a handler) on ctl: service: nova-api: `state: restarted`/`reloaded` belongs in a handler, notified by the steps that change its config\n")
        .run();
    let r = check("nope.yml").code(1).run();
    assert!(r.stderr.starts_with("error: playbook nope.yml not found on disk, and no embedded playbook has that name\nhint: embedded playbooks: "), "{r:?}");
}

#[test]
fn the_embedded_playbook_works_from_any_directory() {
    let d = tempfile::tempdir().unwrap();
    let err = Novadock::new()
        .dir(d.path())
        .file("inv.yml", INV)
        .args(["check", "-i", "inv.yml"])
        .code(0)
        .run()
        .stderr;
    // The inventory has no docker_computes: those steps match nothing, and check says so.
    assert!(
        err.starts_with("warning: step 8 (Nova can load the Docker driver on this release): hosts `docker_computes` matches no host in this inventory\n"),
        "{err}"
    );
    assert!(
        err.ends_with("ok: inv.yml and embedded:playbooks/bootstrap.yml are valid: 1 host, 35 steps, 5 handlers\n"),
        "{err}"
    );
}

/// The build names the commit and the target: two checkouts of one commit are the same
/// novadock on the controller (steps/novadock_binary.rs).
#[test]
fn the_version_names_the_build() {
    Novadock::new()
        .args(["--version"])
        .code(0)
        .stdout(format!(
            "novadock {} (build {}, {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("NOVADOCK_BUILD"),
            env!("NOVADOCK_TARGET")
        ))
        .run();
}

/// `prefetch_parallel`, the old name of `prefetch_forks`, is still read, with a warning.
#[test]
fn the_old_name_of_prefetch_forks_warns() {
    let example = std::fs::read_to_string(common::repo().join("inventories/example.yml")).unwrap();
    let old = example.replace("  prefetch_forks: 4 ", "  prefetch_parallel: 4 ");
    assert_ne!(old, example);
    let d = tempfile::tempdir().unwrap();
    Novadock::new()
        .dir(d.path())
        .file("inv.yml", &old)
        .args(["check", "-i", "inv.yml"])
        .code(0)
        .stderr("warning: inv.yml: `prefetch_parallel` is deprecated: rename it `prefetch_forks` (it is read as `prefetch_forks` until then)\nok: inv.yml and embedded:playbooks/bootstrap.yml are valid: 3 hosts, 35 steps, 5 handlers\n")
        .run();
    // `prefetch` reads it too, and says so before anything else (here: a bad source, so
    // that it stops before reaching a host).
    let bad = old.replace("  prefetch_source: nova", "  prefetch_source: bogus");
    assert_ne!(bad, old);
    Novadock::new()
        .dir(d.path())
        .file("bad.yml", &bad)
        .args(["prefetch", "-i", "bad.yml"])
        .code(1)
        .stderr("warning: bad.yml: `prefetch_parallel` is deprecated: rename it `prefetch_forks` (it is read as `prefetch_forks` until then)\nerror: bad.yml: prefetch_source `bogus`: expected nova, glance or registry\n")
        .run();
}

#[test]
fn the_example_inventory_is_valid() {
    Novadock::new()
        .dir(common::repo())
        .args(["check", "-i", "inventories/example.yml"])
        .code(0)
        .stderr("ok: inventories/example.yml and embedded:playbooks/bootstrap.yml are valid: 3 hosts, 35 steps, 5 handlers\n")
        .run();
}

#[test]
fn apply_without_a_terminal_needs_yes() {
    let d = tempfile::tempdir().unwrap();
    Novadock::new()
        .dir(d.path())
        .file("inv.yml", INV)
        .args(["apply", "-i", "inv.yml"])
        .code(1)
        .stderr("error: refusing to apply without confirmation: stdin is not a terminal\nhint: run `novadock plan` to review, then `novadock apply --yes`\n")
        .run();
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
        let out = Novadock::new()
            .dir(d.path())
            .args([sub, "--help"])
            .code(0)
            .run()
            .stdout;
        assert!(out.contains(example), "{sub} --help: {out}");
        assert!(out.contains("Exit codes:"), "{sub} --help: {out}");
    }
    let out = Novadock::new()
        .dir(d.path())
        .args(["completions", "bash"])
        .code(0)
        .run()
        .stdout;
    assert!(out.contains("_novadock()"), "{out}");
}

#[test]
fn add_compute_runs_only_with_limit() {
    let d = tempfile::tempdir().unwrap();
    let nd = || Novadock::new().dir(d.path()).file("inv.yml", INV);
    nd().args(["plan", "-i", "inv.yml", "-p", "playbooks/add-compute.yml"])
        .code(1)
        .stderr("error: embedded:playbooks/add-compute.yml runs only on the hosts being added\nhint: name them with --limit, e.g. --limit cmp3 (the controller's steps for them are included)\n")
        .run();
    // It is the bootstrap playbook: same steps, same handlers.
    let r = nd()
        .args(["check", "-i", "inv.yml", "-p", "add-compute.yml"])
        .args(["--limit", "ctl"])
        .code(0)
        .run();
    assert!(
        r.stderr
            .ends_with("are valid: 1 host, 35 steps, 5 handlers\n"),
        "{r:?}"
    );
}

/// The nova source (the default with novadock's own driver) cannot prune or work on some
/// hosts only: refused before anything is contacted (127.0.0.254 runs nothing).
#[test]
fn prefetch_through_nova_refuses_what_nova_cannot_do() {
    let d = tempfile::tempdir().unwrap();
    let nd = || {
        Novadock::new().dir(d.path()).file(
            "inv.yml",
            "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n",
        )
    };
    nd().args(["prefetch", "-i", "inv.yml", "--prune"])
        .code(1)
        .stderr("error: --prune: the nova source cannot remove images (Nova's image cache API has no un-cache call)\nhint: --source glance (or prefetch_source: glance) loads the images over SSH from the controller, host by host\n")
        .run();
    let r = nd()
        .args([
            "prefetch", "-i", "inv.yml", "--source", "nova", "--limit", "cmp1",
        ])
        .code(1)
        .run();
    assert!(
        r.stderr.starts_with("error: --limit: the nova source asks Nova to cache on every host of the aggregate\nhint: "),
        "{r:?}"
    );
    // An explicit source, or another driver, keeps the SSH path (and its checks).
    nd().file(
        "bad.yml",
        "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\nvars: { docker_driver_source: pip, prefetch_source: ftp }\n",
    )
    .args(["prefetch", "-i", "bad.yml"])
    .code(1)
    .stderr("error: bad.yml: prefetch_source `ftp`: expected nova, glance or registry\n")
    .run();
}

/// `prefetch --limit` selects as `plan --limit` does: hosts and groups of the inventory, and a
/// name that is neither is an error before anything is contacted (127.0.0.254 runs nothing).
#[test]
fn prefetch_limit_is_resolved_as_plan_resolves_it() {
    let d = tempfile::tempdir().unwrap();
    let inv = "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n  cmp1: { address: 127.0.0.254, groups: [docker_computes] }\n";
    for cmd in [
        &["prefetch", "-i", "inv.yml", "--source", "glance"][..],
        &["plan", "-i", "inv.yml"][..],
    ] {
        Novadock::new()
            .dir(d.path())
            .file("inv.yml", inv)
            .args(cmd)
            .args(["--limit", "cmp1,docker_computess"])
            .code(1)
            .stderr("error: --limit cmp1,docker_computess\n  Caused by: unknown host or group `docker_computess`\n")
            .run();
    }
}

/// Concurrency has one name, `--forks`, as for plan and apply; `--parallel` still works.
#[test]
fn prefetch_forks_and_its_old_name() {
    let d = tempfile::tempdir().unwrap();
    for flag in ["--forks", "--parallel"] {
        Novadock::new()
            .dir(d.path())
            .file(
                "inv.yml",
                "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n",
            )
            .args(["prefetch", "-i", "inv.yml", flag, "0"])
            .code(1)
            .stderr("error: --forks must be at least 1\n")
            .run();
    }
}

#[test]
fn prefetch_and_image_add_need_a_controller_and_a_matching_name() {
    let d = tempfile::tempdir().unwrap();
    let nd = || Novadock::new().dir(d.path());
    nd().file(
        "none.yml",
        "hosts:\n  cmp1: { address: 127.0.0.254, groups: [docker_computes] }\n",
    )
    .args(["prefetch", "-i", "none.yml"])
    .code(1)
    .stderr("error: none.yml: no host in group `controllers`\nhint: the controller (where Glance and the credentials are) must be in group `controllers`\n")
    .run();
    // The tarball's name is checked before anything is contacted (127.0.0.254 runs nothing).
    let nd = || {
        nd().file(
            "inv.yml",
            "hosts:\n  ctl: { address: 127.0.0.254, groups: [controllers] }\n",
        )
    };
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
    nd().args(["image", "add", "-i", "inv.yml", "nd/outer:1", "--file", "img.tar"])
        .code(1)
        .stderr("error: the tarball holds nd/inner:1, not nd/outer:1: nova-docker looks the image up in dockerd by its Glance name, so an image uploaded under another name cannot boot\nhint: give the name the image has (`docker image ls`), or `docker tag` it first\n")
        .run();
    let r = nd()
        .args(["image", "add", "-i", "inv.yml", "nd/outer:1"])
        .code(1)
        .run();
    assert!(
        r.stderr
            .starts_with("error: say where the image comes from\n"),
        "{r:?}"
    );
}

#[test]
fn boot_time_needs_a_controller_and_a_host_to_compare_on() {
    let d = tempfile::tempdir().unwrap();
    let boot_time = || {
        Novadock::new().dir(d.path()).args([
            "boot-time",
            "-i",
            "inv.yml",
            "--flavor",
            "f",
            "--image",
            "i",
        ])
    };
    boot_time()
        .file("inv.yml", "hosts:\n  cmp1: { address: 127.0.0.12 }\n")
        .code(1)
        .stdout("")
        .stderr("error: inv.yml: no host in group `controllers`\nhint: boot-time talks to Nova from the first host of group `controllers`, where the credentials are\n")
        .run();
    let r = boot_time()
        .file("inv.yml", INV)
        .arg("--compare-prefetch")
        .code(2)
        .run();
    assert!(r.stderr.contains("--host <HOST>"), "{r:?}");
    boot_time().args(["--count", "0"]).code(2).run();
}

#[test]
fn help_prints_the_manual_built_into_the_binary() {
    // From an empty directory: an installed novadock has no docs/ beside it.
    let d = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| Novadock::new().dir(d.path()).args(args);
    help(&["help"])
        .code(0)
        .stderr("")
        .stdout(
            "The novadock manual. `novadock help TOPIC` prints a page:

  boot-time         How long a server takes to boot
  bootstrap         The shipped playbooks: bootstrap and add-compute
  commands          Commands, options, exit codes and output
  deploy-debian     One controller, Debian or Ubuntu packages
  deploy-ha         Several controllers (an HA pair or trio)
  deploy-kolla-osa  Clouds deployed by kolla-ansible or openstack-ansible, refused
  deploy-rdo        RDO on RHEL, Rocky, Alma or CentOS Stream
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
",
        )
        .run();
    // A page is the file in docs/, byte for byte.
    let steps =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/steps.md"))
            .unwrap();
    help(&["help", "steps"])
        .code(0)
        .stdout(steps)
        .stderr("")
        .run();
    // A command without a page: exactly its --help.
    let plan = help(&["plan", "--help"]).code(0).run();
    help(&["help", "plan"])
        .code(plan.code)
        .stdout(plan.stdout)
        .stderr(plan.stderr)
        .run();
    help(&["help", "nope"])
        .code(1)
        .stdout("")
        .stderr("error: no help topic `nope`\nhint: topics: boot-time, bootstrap, commands, deploy-debian, deploy-ha, deploy-kolla-osa, deploy-rdo, driver, image-add, internals, inventory, lab, playbook, prefetch, steps, tests; `novadock help` lists them with their titles\n")
        .run();
    // --help points there, not at a README an installed user does not have.
    let out = help(&["--help"]).code(0).run().stdout;
    assert!(
        out.ends_with("\nExit codes: 0 success (plan: no changes), 1 error, 2 plan has changes pending.\nDocs: `novadock help` lists the manual's topics (inventory, playbook, steps, …);\n`novadock help TOPIC` prints one.\n"),
        "{out}"
    );
    assert!(
        out.contains("\n  help         The manual, built in: list its topics, or print one\n"),
        "{out}"
    );
}
