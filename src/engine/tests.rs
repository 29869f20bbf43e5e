//! The host run over fake hosts: which host and step a failure is pinned on, what
//! `--fail-fast` stops, which handlers stay pending.

use super::fake::{FakeHost, Fakes};
use super::{Engine, HostReport, Mode, Options, PENDING_FILE, Status, StepReport};
use crate::assets::Templates;
use crate::inventory::Inventory;
use crate::playbook::Playbook;
use crate::render::Renderer;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Three `command` steps on every host; the second notifies handler `restart`.
const PLAYBOOK: &str = r#"
steps:
  - name: one
    hosts: all
    command: { cmd: echo one }
  - name: two
    hosts: all
    command: { cmd: echo two }
    notify: [restart]
  - name: three
    hosts: all
    command: { cmd: echo three }
handlers:
  restart: { command: { cmd: echo restarting } }
"#;

fn options(mode: Mode) -> Options {
    Options {
        mode,
        forks: 4,
        fail_fast: false,
        persist_secs: 0,
        accept_new_host_keys: false,
        connect_timeout_secs: 1,
        run_id: "20261201T000000Z-test".into(),
        planned_facts: None,
        limit: None,
        keep_facts: false,
        once_hosts: None,
    }
}

/// Run `playbook` on hosts h1, h2, … (one per fake, in order).
async fn run(playbook: &str, fakes: &[Arc<FakeHost>], opts: &Options) -> Vec<HostReport> {
    let map: BTreeMap<String, Arc<FakeHost>> = (1..)
        .map(|i| format!("h{i}"))
        .zip(fakes.iter().cloned())
        .collect();
    let engine = engine(playbook, map.len());
    engine
        .run_with(
            Arc::new(Fakes(map)),
            opts,
            &indicatif::ProgressBar::hidden(),
        )
        .await
}

/// An engine for `playbook` on hosts h1 … hN, each with the steps its `hosts:` select.
fn engine(playbook: &str, hosts: usize) -> Engine {
    let mut inv = String::from("hosts:\n");
    for i in 1..=hosts {
        inv.push_str(&format!("  h{i}: {{ address: 192.0.2.{i} }}\n"));
    }
    let inventory = Inventory::parse(Path::new("inventory.yml"), &inv).unwrap();
    let playbook = Playbook::parse(Path::new("playbook.yml"), playbook, None).unwrap();
    let renderer = Renderer::new(Arc::new(Templates::embedded_only()), playbook.vars.clone())
        .with_inventory(&inventory);
    let targets = inventory
        .hosts
        .iter()
        .map(|h| {
            let steps = (0..playbook.steps.len())
                .filter(|&i| {
                    inventory
                        .select_steps(&playbook.steps[i].hosts)
                        .iter()
                        .any(|s| s.name == h.name)
                })
                .collect();
            (h.clone(), steps)
        })
        .collect();
    Engine {
        inventory: Arc::new(inventory),
        playbook: Arc::new(playbook),
        renderer: Arc::new(renderer),
        targets,
    }
}

fn host(fail_on: Option<&str>) -> Arc<FakeHost> {
    Arc::new(FakeHost {
        fail_on: fail_on.map(str::to_string),
        ..FakeHost::default()
    })
}

/// Each step's (name, status, note or error), for assertions that read like the report.
fn lines(steps: &[StepReport]) -> Vec<(String, Status, String)> {
    steps
        .iter()
        .map(|s| {
            let text = s.error.clone().or(s.note.clone()).unwrap_or_default();
            (s.name.clone(), s.status, text)
        })
        .collect()
}

fn line(name: &str, status: Status, text: &str) -> (String, Status, String) {
    (name.into(), status, text.into())
}

const EARLIER_CHANGE: &str = "not run: an earlier change failed on this host";
const STILL_PENDING: &str = "not run after a failed change; still pending for the next apply";
const FAIL_FAST: &str = "stopped by --fail-fast after a failure on another host";

#[tokio::test]
async fn a_failed_change_is_pinned_on_its_host_and_step() {
    let fakes = [host(None), host(Some("echo two"))];
    let reports = run(PLAYBOOK, &fakes, &options(Mode::Apply)).await;
    // h1 is untouched by h2's failure.
    assert!(!reports[0].failed(), "{:?}", reports[0]);
    assert!(reports[0].steps.iter().all(|s| s.status == Status::Changed));
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Changed, "")]
    );
    // On h2 the changes went in one script; the second failed, the third did not run.
    assert_eq!(
        fakes[1].sent().len(),
        2,
        "facts, then one script of changes"
    );
    assert_eq!(
        lines(&reports[1].steps),
        [
            line("one", Status::Changed, ""),
            line(
                "two",
                Status::Failed,
                "on h2: `echo two` exited with 1\nstderr:\nboom"
            ),
            line("three", Status::Skipped, EARLIER_CHANGE),
        ]
    );
    // The handler's change came after the failure: it stays pending on the host.
    assert_eq!(
        lines(&reports[1].handlers),
        [line("restart", Status::Skipped, STILL_PENDING)]
    );
    assert!(reports[1].error.is_none());
}

#[tokio::test]
async fn the_handler_is_recorded_pending_before_any_change_runs() {
    let fakes = [host(Some("echo one"))];
    let reports = run(PLAYBOOK, &fakes, &options(Mode::Apply)).await;
    let script = &fakes[0].sent()[1];
    let pending = script.find("nd_pending restart\n").expect(script);
    let first_change = script.find("echo one").unwrap();
    assert!(pending < first_change, "{script}");
    assert_eq!(
        lines(&reports[0].steps),
        [
            line(
                "one",
                Status::Failed,
                "on h1: `echo one` exited with 1\nstderr:\nboom"
            ),
            line("two", Status::Skipped, EARLIER_CHANGE),
            line("three", Status::Skipped, EARLIER_CHANGE),
        ]
    );
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Skipped, STILL_PENDING)]
    );
}

#[tokio::test]
async fn a_handler_left_pending_by_an_interrupted_run_runs_and_is_forgotten() {
    let playbook = r#"
steps:
  - name: nothing to do
    hosts: all
    command: { cmd: echo never, creates: /etc/done }
handlers:
  restart: { command: { cmd: echo restarting } }
  other: { command: { cmd: echo other } }
"#;
    let fake = Arc::new(FakeHost {
        files: Mutex::new(
            [
                (PENDING_FILE.to_string(), "restart\n".to_string()),
                ("/etc/done".to_string(), String::new()),
            ]
            .into(),
        ),
        ..FakeHost::default()
    });
    let reports = run(playbook, std::slice::from_ref(&fake), &options(Mode::Apply)).await;
    assert_eq!(
        lines(&reports[0].steps),
        [line("nothing to do", Status::Unchanged, "")]
    );
    assert_eq!(
        lines(&reports[0].handlers),
        [line(
            "restart",
            Status::Changed,
            "pending from an interrupted run"
        )]
    );
    let script = &fake.sent()[1];
    assert!(script.contains("echo restarting"), "{script}");
    assert!(
        script.contains("# forget the pending handler (it ran)"),
        "{script}"
    );
    assert!(!script.contains("echo other"), "{script}");
}

#[tokio::test]
async fn fail_fast_stops_the_other_hosts() {
    // h2 connects only once h1's change has failed, so what it sees is decided.
    let (failed, h1_failed) = watch::channel(false);
    let h1 = Arc::new(FakeHost {
        fail_on: Some("echo one".into()),
        failed: Some(failed),
        ..FakeHost::default()
    });
    let h2 = Arc::new(FakeHost {
        connect_after: Some(h1_failed),
        ..FakeHost::default()
    });
    let opts = Options {
        fail_fast: true,
        ..options(Mode::Apply)
    };
    let reports = run(PLAYBOOK, &[h1.clone(), h2.clone()], &opts).await;
    assert_eq!(
        lines(&reports[0].steps),
        [
            line(
                "one",
                Status::Failed,
                "on h1: `echo one` exited with 1\nstderr:\nboom"
            ),
            line("two", Status::Skipped, EARLIER_CHANGE),
            line("three", Status::Skipped, EARLIER_CHANGE),
        ]
    );
    assert_eq!(
        lines(&reports[1].steps),
        [
            line("one", Status::Skipped, FAIL_FAST),
            line("two", Status::Skipped, FAIL_FAST),
            line("three", Status::Skipped, FAIL_FAST),
        ]
    );
    assert!(reports[1].handlers.is_empty());
    assert_eq!(h2.sent().len(), 1, "h2 got only the facts script");
}

#[tokio::test]
async fn fail_fast_sends_each_step_on_its_own() {
    let fake = host(Some("echo two"));
    let opts = Options {
        fail_fast: true,
        ..options(Mode::Apply)
    };
    let reports = run(PLAYBOOK, std::slice::from_ref(&fake), &opts).await;
    // Facts, step one, step two (failed); step three was never sent.
    let sent = fake.sent();
    assert_eq!(sent.len(), 3, "{sent:#?}");
    assert!(sent[1].contains("echo one") && !sent[1].contains("echo two"));
    assert!(sent.iter().all(|s| !s.contains("echo three")));
    assert_eq!(
        lines(&reports[0].steps),
        [
            line("one", Status::Changed, ""),
            line(
                "two",
                Status::Failed,
                "on h1: `echo two` exited with 1\nstderr:\nboom"
            ),
            line("three", Status::Skipped, EARLIER_CHANGE),
        ]
    );
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Skipped, STILL_PENDING)]
    );
}

#[tokio::test]
async fn an_unreachable_host_fails_alone() {
    let down = Arc::new(FakeHost {
        down: Some("cannot connect to 192.0.2.1: no route".into()),
        ..FakeHost::default()
    });
    let up = host(None);
    let reports = run(PLAYBOOK, &[down, up], &options(Mode::Apply)).await;
    assert_eq!(
        reports[0].error.as_deref(),
        Some("cannot connect to 192.0.2.1: no route")
    );
    assert!(reports[0].steps.is_empty());
    assert!(!reports[1].failed(), "{:?}", reports[1]);
}

#[tokio::test]
async fn another_apply_holding_the_lock_fails_every_change_on_that_host() {
    let fake = Arc::new(FakeHost {
        lock_held: Some("novadock run other (pid 1 on elsewhere, user ops)".into()),
        ..FakeHost::default()
    });
    let reports = run(PLAYBOOK, std::slice::from_ref(&fake), &options(Mode::Apply)).await;
    let held = "h1 is locked by another apply: novadock run other (pid 1 on elsewhere, user ops)";
    assert_eq!(
        lines(&reports[0].steps),
        [
            line("one", Status::Failed, held),
            line("two", Status::Failed, held),
            line("three", Status::Failed, held),
        ]
    );
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Failed, held)]
    );
}

#[tokio::test]
async fn plan_sends_no_change() {
    let fake = host(None);
    let reports = run(PLAYBOOK, std::slice::from_ref(&fake), &options(Mode::Plan)).await;
    assert_eq!(fake.sent().len(), 1, "only the facts script");
    assert!(reports[0].steps.iter().all(|s| s.status == Status::Changed));
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Changed, "")]
    );
}

#[tokio::test]
async fn after_a_failed_step_the_handlers_still_run_for_what_changed() {
    let playbook = r#"
steps:
  - name: one
    hosts: all
    command: { cmd: echo one }
    notify: [restart]
  - name: broken
    hosts: all
    when: "{{ nope.field }}"
    command: { cmd: echo broken }
  - name: three
    hosts: all
    command: { cmd: echo three }
handlers:
  restart: { command: { cmd: echo restarting } }
"#;
    let fake = host(None);
    let reports = run(playbook, std::slice::from_ref(&fake), &options(Mode::Apply)).await;
    let steps = lines(&reports[0].steps);
    assert_eq!(steps[0], line("one", Status::Changed, ""));
    assert_eq!(
        (steps[1].0.as_str(), steps[1].1),
        ("broken", Status::Failed)
    );
    assert!(steps[1].2.contains("nope"), "{steps:?}");
    assert_eq!(
        steps[2],
        line(
            "three",
            Status::Skipped,
            "not run: an earlier step failed on this host"
        )
    );
    assert_eq!(
        lines(&reports[0].handlers),
        [line("restart", Status::Changed, "")]
    );
    let script = &fake.sent()[1];
    assert!(script.contains("echo one") && script.contains("echo restarting"));
    assert!(!script.contains("echo three"), "{script}");
}

#[tokio::test]
async fn a_rolling_handler_stops_at_the_host_where_it_failed() {
    let playbook = r#"
steps:
  - name: config
    hosts: all
    command: { cmd: echo config }
    notify: [roll]
handlers:
  roll: { serial: 1, command: { cmd: echo rolling } }
"#;
    // h2 comes once h1's restart has failed: the rolling is stopped by then.
    let (failed, h1_failed) = watch::channel(false);
    let h1 = Arc::new(FakeHost {
        fail_on: Some("echo rolling".into()),
        failed: Some(failed),
        ..FakeHost::default()
    });
    let h2 = Arc::new(FakeHost {
        connect_after: Some(h1_failed),
        ..FakeHost::default()
    });
    let reports = run(playbook, &[h1.clone(), h2.clone()], &options(Mode::Apply)).await;
    let h1_handler = &reports[0].handlers[0];
    assert_eq!(h1_handler.status, Status::Failed, "{h1_handler:?}");
    assert!(
        h1_handler.error.as_deref().unwrap().starts_with(
            "on h1: `echo rolling; forget the pending handler (it ran)` exited with 1"
        ),
        "{h1_handler:?}"
    );
    // h2's change went out; its restart did not, and stays pending there.
    assert_eq!(
        lines(&reports[1].steps),
        [line("config", Status::Changed, "")]
    );
    assert_eq!(
        lines(&reports[1].handlers),
        [line(
            "roll",
            Status::Skipped,
            "not run: the rolling restart stopped at h1; still pending for the next apply"
        )]
    );
    let sent = h2.sent();
    assert!(
        sent.iter().any(|s| s.contains("nd_pending roll\n")),
        "{sent:#?}"
    );
    assert!(
        sent.iter().all(|s| !s.contains("echo rolling")),
        "{sent:#?}"
    );
}

#[tokio::test]
async fn a_rolling_step_stops_at_the_host_where_it_failed() {
    let playbook = r#"
steps:
  - name: before
    hosts: all
    command: { cmd: echo before }
  - name: roll
    hosts: all
    serial: 1
    command: { cmd: echo rolling }
  - name: after
    hosts: all
    command: { cmd: echo after }
"#;
    let (failed, h1_failed) = watch::channel(false);
    let h1 = Arc::new(FakeHost {
        fail_on: Some("echo rolling".into()),
        failed: Some(failed),
        ..FakeHost::default()
    });
    let h2 = Arc::new(FakeHost {
        connect_after: Some(h1_failed),
        ..FakeHost::default()
    });
    let plain = || Arc::new(FakeHost::default());
    let plan = run(playbook, &[plain(), plain()], &options(Mode::Plan)).await;
    assert_eq!(
        lines(&plan[0].steps)[1],
        line("roll", Status::Changed, "one host at a time")
    );
    let reports = run(playbook, &[h1.clone(), h2.clone()], &options(Mode::Apply)).await;
    assert_eq!(reports[0].steps[1].status, Status::Failed, "{reports:?}");
    // h2's step before went out; the rolling one and what follows did not.
    assert_eq!(
        lines(&reports[1].steps),
        [
            line("before", Status::Changed, ""),
            line(
                "roll",
                Status::Skipped,
                "not run: the rolling change stopped at h1"
            ),
            line(
                "after",
                Status::Skipped,
                "not run: a rolling step before it stopped at another host"
            ),
        ]
    );
    let sent = h2.sent();
    assert!(sent.iter().any(|s| s.contains("echo before")), "{sent:#?}");
    assert!(
        sent.iter()
            .all(|s| !s.contains("echo rolling") && !s.contains("echo after")),
        "{sent:#?}"
    );
}

#[tokio::test]
async fn a_run_once_step_runs_on_the_first_host_that_is_up() {
    let playbook = r#"
steps:
  - name: cloud-wide
    hosts: all
    run_once: true
    command: { cmd: echo once }
  - name: each
    hosts: all
    command: { cmd: echo each }
"#;
    let down = Arc::new(FakeHost {
        down: Some("cannot connect to 192.0.2.1: no route".into()),
        ..FakeHost::default()
    });
    let (h2, h3) = (host(None), host(None));
    let reports = run(
        playbook,
        &[down, h2.clone(), h3.clone()],
        &options(Mode::Apply),
    )
    .await;
    assert!(reports[0].error.is_some());
    assert_eq!(
        lines(&reports[1].steps),
        [
            line("cloud-wide", Status::Changed, ""),
            line("each", Status::Changed, "")
        ]
    );
    assert_eq!(
        lines(&reports[2].steps),
        [line("each", Status::Changed, "")]
    );
    assert!(h2.sent()[1].contains("echo once"));
    assert!(h3.sent().iter().all(|s| !s.contains("echo once")));
}

/// h1 authorizes a key that h2 makes in the same run: it reads it once h2's run is done, and
/// with one fork it gives its slot back while it waits (or neither could go on).
#[tokio::test]
async fn a_key_made_on_another_host_is_read_once_that_host_is_done() {
    let playbook = r#"
steps:
  - name: key made
    hosts: h2
    command: { cmd: make-key, creates: /etc/k.pub }
  - name: key authorized
    hosts: h1
    authorized_key: { key_from: { host: h2, path: /etc/k.pub } }
"#;
    let key =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9qWc0yKlGcYdq1b8p4lWc8m6xVfH3vJ2oQ7y1eZ3Rb nd@h2";
    let h1 = host(None);
    let h2 = Arc::new(FakeHost {
        makes: Some(("make-key".into(), "/etc/k.pub".into(), format!("{key}\n"))),
        ..FakeHost::default()
    });
    let opts = Options {
        forks: 1,
        ..options(Mode::Apply)
    };
    let reports = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        run(playbook, &[h1.clone(), h2.clone()], &opts),
    )
    .await
    .expect("the run deadlocked");
    assert_eq!(
        lines(&reports[1].steps),
        [line("key made", Status::Changed, "")]
    );
    assert_eq!(
        lines(&reports[0].steps),
        [line("key authorized", Status::Changed, "")]
    );
    let write = h1.sent().pop().unwrap();
    assert!(write.contains(key), "{write}");
}
