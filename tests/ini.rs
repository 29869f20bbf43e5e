//! Tests of the format-preserving INI editor: golden edits on real Debian
//! OpenStack Zed files (every edit must change exactly the intended lines),
//! small targeted cases, and property tests (lossless round trip, idempotence,
//! edits never disturb other options).

use novadock::ini::*;
use proptest::prelude::*;

const NOVA: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/zed-debian/nova.conf"
));
const GLANCE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/zed-debian/glance-api.conf"
));

const ZED_ENABLED_FILTERS: &str = "ComputeFilter,ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,ServerGroupAffinityFilter";
const ZED_CONTAINER_FORMATS: &str = "ami,ari,aki,bare,ovf,ova,docker,compressed";

// ---- helpers ---------------------------------------------------------------

/// One diff entry: `('-', old line number, line)` or `('+', new line number, line)`,
/// 1-based, lines including their terminator (so EOL changes are visible).
type Change = (char, usize, String);

/// Minimal line diff: common prefix/suffix stripped, LCS on the rest.
fn diff(old: &str, new: &str) -> Vec<Change> {
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        suf += 1;
    }
    let (x, y) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    assert!(
        x.len() * y.len() <= 4_000_000,
        "diff too large for this helper"
    );
    // lcs[i][j] = LCS length of x[i..] and y[j..]
    let mut lcs = vec![vec![0usize; y.len() + 1]; x.len() + 1];
    for i in (0..x.len()).rev() {
        for j in (0..y.len()).rev() {
            lcs[i][j] = if x[i] == y[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < x.len() || j < y.len() {
        if i < x.len() && j < y.len() && x[i] == y[j] {
            i += 1;
            j += 1;
        } else if i < x.len() && (j == y.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals first, like unified diffs.
            out.push(('-', pre + i + 1, x[i].to_string()));
            i += 1;
        } else {
            out.push(('+', pre + j + 1, y[j].to_string()));
            j += 1;
        }
    }
    out
}

fn add(line: usize, text: &str) -> Change {
    ('+', line, text.to_string())
}

fn del(line: usize, text: &str) -> Change {
    ('-', line, text.to_string())
}

fn edit(section: &str, option: &str, op: IniOp) -> IniEdit {
    IniEdit {
        section: section.into(),
        option: option.into(),
        op,
        default: None,
        aliases: vec![],
    }
}

fn value(v: &str) -> IniOp {
    IniOp::Value(v.into())
}

fn list(items: &[&str]) -> IniOp {
    IniOp::ListContains(items.iter().map(|s| s.to_string()).collect())
}

/// Applies `e` to `text`; returns the outcome, the new text and the diff.
fn run(text: &str, e: &IniEdit) -> (EditOutcome, String, Vec<Change>) {
    let mut doc = IniDoc::parse(text);
    let outcome = doc.apply(e).expect("edit applies");
    let after = doc.to_text();
    // Every edit must be idempotent.
    let mut again = IniDoc::parse(&after);
    let second = again.apply(e).expect("edit applies twice");
    assert!(
        !second.changed,
        "second application changed the file: {e:?}"
    );
    assert_eq!(again.to_text(), after);
    let d = diff(text, &after);
    assert_eq!(
        outcome.changed,
        !d.is_empty(),
        "changed flag disagrees with diff"
    );
    (outcome, after, d)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l == needle)
        .expect("line present")
        + 1
}

// ---- golden tests on the real files ----------------------------------------

#[test]
fn real_files_round_trip_byte_identical() {
    for text in [NOVA, GLANCE] {
        assert_eq!(IniDoc::parse(text).to_text(), text);
    }
    assert_eq!(NOVA.lines().count(), 10_157);
    assert_eq!(GLANCE.lines().count(), 6_841);
}

#[test]
fn real_files_lookups() {
    let nova = IniDoc::parse(NOVA);
    assert_eq!(nova.get_all("DEFAULT", "my_ip"), vec!["192.0.2.2"]);
    assert_eq!(
        nova.get_all("database", "connection"),
        vec!["sqlite:////var/lib/nova/novadb"]
    );
    assert_eq!(
        nova.get("keystone_authtoken", "username").as_deref(),
        Some("nova")
    );
    assert!(
        nova.get_all("filter_scheduler", "enabled_filters")
            .is_empty()
    );
    // [DEFAULT] is not inherited by other sections.
    assert!(nova.get_all("api", "my_ip").is_empty());
    assert!(nova.sections().contains(&"filter_scheduler".to_string()));
    let glance = IniDoc::parse(GLANCE);
    assert_eq!(
        glance.get_all("glance_store", "filesystem_store_datadir"),
        vec!["/var/lib/glance/images"]
    );
}

#[test]
fn nova_enabled_filters_inserted_after_sample_line() {
    let mut e = edit(
        "filter_scheduler",
        "enabled_filters",
        list(&["AggregateInstanceExtraSpecsFilter"]),
    );
    e.default = Some(ZED_ENABLED_FILTERS.into());
    let (outcome, _, d) = run(NOVA, &e);
    assert!(outcome.changed);
    let sample = line_of(NOVA, &format!("#enabled_filters = {ZED_ENABLED_FILTERS}"));
    assert_eq!(sample, 3469);
    assert_eq!(
        d,
        vec![add(
            sample + 1,
            &format!("enabled_filters = {ZED_ENABLED_FILTERS},AggregateInstanceExtraSpecsFilter\n")
        )]
    );
}

#[test]
fn nova_enabled_filters_crlf_uses_crlf() {
    let crlf = NOVA.replace('\n', "\r\n");
    assert_eq!(IniDoc::parse(&crlf).to_text(), crlf);
    let mut e = edit(
        "filter_scheduler",
        "enabled_filters",
        list(&["AggregateInstanceExtraSpecsFilter"]),
    );
    e.default = Some(ZED_ENABLED_FILTERS.into());
    let (_, _, d) = run(&crlf, &e);
    assert_eq!(
        d,
        vec![add(
            3470,
            &format!(
                "enabled_filters = {ZED_ENABLED_FILTERS},AggregateInstanceExtraSpecsFilter\r\n"
            )
        )]
    );
}

#[test]
fn glance_container_formats_already_in_default() {
    let mut e = edit("image_format", "container_formats", list(&["docker"]));
    e.default = Some(ZED_CONTAINER_FORMATS.into());
    e.aliases = vec![("DEFAULT".into(), "container_formats".into())];
    let (outcome, after, d) = run(GLANCE, &e);
    assert!(!outcome.changed);
    assert!(d.is_empty());
    assert_eq!(after, GLANCE);
    let note = outcome.note.expect("note");
    assert!(
        note.contains("already effective through the default"),
        "{note}"
    );
    assert!(note.contains(ZED_CONTAINER_FORMATS), "{note}");
}

#[test]
fn glance_container_formats_default_without_docker() {
    let mut e = edit("image_format", "container_formats", list(&["docker"]));
    e.default = Some("ami,ari,aki,bare,ovf,ova,compressed".into());
    e.aliases = vec![("DEFAULT".into(), "container_formats".into())];
    let (outcome, _, d) = run(GLANCE, &e);
    assert_eq!(
        outcome,
        EditOutcome {
            changed: true,
            note: None
        }
    );
    let sample = line_of(
        GLANCE,
        &format!("#container_formats = {ZED_CONTAINER_FORMATS}"),
    );
    assert_eq!(
        d,
        vec![add(
            sample + 1,
            "container_formats = ami,ari,aki,bare,ovf,ova,compressed,docker\n"
        )]
    );
}

#[test]
fn glance_alias_in_default_edited_in_place() {
    // An operator set the deprecated [DEFAULT] name; oslo still reads it.
    let text = GLANCE.replacen(
        "[DEFAULT]\n",
        "[DEFAULT]\ncontainer_formats = ami,bare\n",
        1,
    );
    let mut e = edit("image_format", "container_formats", list(&["docker"]));
    e.default = Some(ZED_CONTAINER_FORMATS.into());
    e.aliases = vec![("DEFAULT".into(), "container_formats".into())];
    let (outcome, _, d) = run(&text, &e);
    assert!(outcome.changed);
    let note = outcome.note.expect("note");
    assert!(
        note.contains("deprecated alias [DEFAULT] container_formats"),
        "{note}"
    );
    assert_eq!(
        d,
        vec![
            del(2, "container_formats = ami,bare\n"),
            add(2, "container_formats = ami,bare,docker\n"),
        ]
    );
}

#[test]
fn primary_wins_over_alias() {
    let text = "[DEFAULT]\ncontainer_formats = ami\n\n[image_format]\ncontainer_formats = bare\n";
    let mut e = edit("image_format", "container_formats", list(&["docker"]));
    e.aliases = vec![("DEFAULT".into(), "container_formats".into())];
    let (outcome, _, d) = run(text, &e);
    assert_eq!(
        d,
        vec![
            del(5, "container_formats = bare\n"),
            add(5, "container_formats = bare, docker\n"),
        ]
    );
    assert!(outcome.note.expect("note").contains("also set"));
}

#[test]
fn nova_value_on_set_key() {
    let e = edit("DEFAULT", "my_ip", value("10.0.0.5"));
    let (outcome, _, d) = run(NOVA, &e);
    assert_eq!(
        outcome,
        EditOutcome {
            changed: true,
            note: None
        }
    );
    assert_eq!(
        d,
        vec![
            del(1329, "my_ip = 192.0.2.2\n"),
            add(1329, "my_ip = 10.0.0.5\n")
        ]
    );
    // Same value, also with surrounding whitespace: no change.
    for same in ["192.0.2.2", "  192.0.2.2 "] {
        let (outcome, after, _) = run(NOVA, &edit("DEFAULT", "my_ip", value(same)));
        assert!(!outcome.changed);
        assert_eq!(after, NOVA);
    }
}

#[test]
fn nova_value_inserted_after_sample_line() {
    let e = edit(
        "DEFAULT",
        "compute_driver",
        value("novadock.virt.DockerDriver"),
    );
    let (_, _, d) = run(NOVA, &e);
    assert_eq!(line_of(NOVA, "#compute_driver = <None>"), 100);
    assert_eq!(
        d,
        vec![add(101, "compute_driver = novadock.virt.DockerDriver\n")]
    );

    // `#password =` sample in [keystone_authtoken] (not the other sections' samples).
    let e = edit("keystone_authtoken", "password", value("s3cret"));
    let (_, _, d) = run(NOVA, &e);
    assert_eq!(d, vec![add(4900, "password = s3cret\n")]);
}

#[test]
fn nova_value_equal_to_default_is_no_change() {
    let mut e = edit("DEFAULT", "compute_driver", value("libvirt.LibvirtDriver"));
    e.default = Some("libvirt.LibvirtDriver".into());
    let (outcome, after, _) = run(NOVA, &e);
    assert!(!outcome.changed);
    assert!(outcome.note.unwrap().contains("default"));
    assert_eq!(after, NOVA);
}

fn nova_with_repeated_filters() -> String {
    NOVA.replacen(
        "my_ip = 192.0.2.2\n",
        "my_ip = 192.0.2.2\n\
         scheduler_available_filters = nova.scheduler.filters.all_filters\n\
         scheduler_available_filters = novadock.scheduler.DockerFilter\n",
        1,
    )
}

#[test]
fn repeated_key_is_kept_and_refused() {
    let text = nova_with_repeated_filters();
    let mut doc = IniDoc::parse(&text);
    assert_eq!(doc.to_text(), text);
    assert_eq!(
        doc.get_all("DEFAULT", "scheduler_available_filters"),
        vec![
            "nova.scheduler.filters.all_filters",
            "novadock.scheduler.DockerFilter"
        ]
    );
    let err = doc
        .apply(&edit("DEFAULT", "scheduler_available_filters", value("x")))
        .unwrap_err();
    assert_eq!(
        err,
        IniError::RepeatedKey {
            section: "DEFAULT".into(),
            option: "scheduler_available_filters".into(),
            count: 2
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("repeated (MultiStrOpt) key"), "{msg}");
    assert!(msg.contains("single value"), "{msg}");
    // Through the alias too: [filter_scheduler] available_filters is unset.
    let mut e = edit("filter_scheduler", "available_filters", list(&["x"]));
    e.aliases = vec![("DEFAULT".into(), "scheduler_available_filters".into())];
    assert!(matches!(
        doc.apply(&e),
        Err(IniError::RepeatedKey { count: 2, .. })
    ));
    assert_eq!(
        doc.to_text(),
        text,
        "a failed edit leaves the document alone"
    );
}

#[test]
fn absent_removes_all_active_lines() {
    let text = nova_with_repeated_filters();
    let mut e = edit("filter_scheduler", "available_filters", IniOp::Absent);
    e.aliases = vec![("DEFAULT".into(), "scheduler_available_filters".into())];
    let (outcome, after, d) = run(&text, &e);
    assert!(outcome.changed);
    assert!(outcome.note.unwrap().contains("deprecated alias"));
    assert_eq!(
        d,
        vec![
            del(
                1330,
                "scheduler_available_filters = nova.scheduler.filters.all_filters\n"
            ),
            del(
                1331,
                "scheduler_available_filters = novadock.scheduler.DockerFilter\n"
            ),
        ]
    );
    assert_eq!(after, NOVA);

    let (_, _, d) = run(NOVA, &edit("DEFAULT", "my_ip", IniOp::Absent));
    assert_eq!(d, vec![del(1329, "my_ip = 192.0.2.2\n")]);
    // Commented lines are never touched.
    let (outcome, after, _) = run(NOVA, &edit("DEFAULT", "compute_driver", IniOp::Absent));
    assert!(!outcome.changed);
    assert_eq!(after, NOVA);
}

#[test]
fn nova_missing_section_appended() {
    let (_, after, d) = run(NOVA, &edit("novadock", "enabled", value("true")));
    let n = NOVA.lines().count();
    assert!(NOVA.ends_with("\n") && !NOVA.ends_with("\n\n"));
    assert_eq!(
        d,
        vec![
            add(n + 1, "\n"),
            add(n + 2, "[novadock]\n"),
            add(n + 3, "enabled = true\n")
        ]
    );
    assert_eq!(
        IniDoc::parse(&after).get_all("novadock", "enabled"),
        vec!["true"]
    );
}

#[test]
fn real_files_masked() {
    let masked = mask_secrets(NOVA);
    assert_eq!(masked.lines().count(), NOVA.lines().count());
    assert!(masked.contains("\nconnection = ********\n"));
    assert!(masked.contains("\n#transport_url = ********\n"));
    assert!(masked.contains("\n#password = ********\n"));
    assert!(
        masked.contains("\n#password =\n"),
        "empty values stay empty"
    );
    assert!(masked.contains("\nmy_ip = 192.0.2.2\n"));
    assert!(masked.contains("\n#password_length = 12\n"));
    // Only values change: every differing line keeps its key part and gains the mask.
    for (orig, m) in NOVA.lines().zip(masked.lines()).filter(|(o, m)| o != m) {
        assert!(m.ends_with("********"), "{m}");
        let key = &m[..m.len() - "********".len()];
        assert!(orig.starts_with(key), "{orig} vs {m}");
    }
    assert_eq!(mask_secrets(&masked), masked);
    let glance = mask_secrets(GLANCE);
    assert!(glance.contains("\nconnection = ********\n"));
}

// ---- targeted cases ---------------------------------------------------------

#[test]
fn spacing_style_of_edited_line_is_kept() {
    let cases = [
        ("[s]\na=b\n", "[s]\na=new\n"),
        ("[s]\na = b\n", "[s]\na = new\n"),
        ("[s]\na  =  b\n", "[s]\na  =  new\n"),
        ("[s]\na\t=\tb\n", "[s]\na\t=\tnew\n"),
        ("[s]\na = b   \n", "[s]\na = new   \n"),
        ("[s]\na: b\n", "[s]\na: new\n"),
        ("[s]\n  a = b\n", "[s]\n  a = new\n"),
        ("[s]\na =\n", "[s]\na = new\n"),
        ("[s]\na=\n", "[s]\na=new\n"),
        ("[s]\na = \n", "[s]\na = new\n"),
        // No inline comments in oslo: the whole rest of the line is the value.
        ("[s]\na = b # old\n", "[s]\na = new\n"),
    ];
    for (before, expected) in cases {
        let (_, after, _) = run(before, &edit("s", "a", value("new")));
        assert_eq!(after, expected, "from {before:?}");
    }
}

#[test]
fn list_separator_style_is_kept() {
    let cases = [
        ("[s]\na = x, y\n", "[s]\na = x, y, docker\n"),
        ("[s]\na = x,y\n", "[s]\na = x,y,docker\n"),
        ("[s]\na=x,y\n", "[s]\na=x,y,docker\n"),
        ("[s]\na = x ,y\n", "[s]\na = x ,y ,docker\n"),
        ("[s]\na = x\n", "[s]\na = x, docker\n"),
        ("[s]\na = x,\n", "[s]\na = x, docker\n"),
        ("[s]\na = x,y,\n", "[s]\na = x,y,docker\n"),
        ("[s]\na =\n", "[s]\na = x, docker\n"),
        ("[s]\na = \"x,y\"\n", "[s]\na = \"x,y,docker\"\n"),
        ("[s]\na = x,\n  y\n", "[s]\na = x,\n  y, docker\n"),
        ("[s]\na = x,\n  y,v\n", "[s]\na = x,\n  y,v,docker\n"),
    ];
    for (before, expected) in cases {
        let (_, after, _) = run(before, &edit("s", "a", list(&["x", "docker"])));
        assert_eq!(after, expected, "from {before:?}");
    }
    // Nothing missing: unchanged, whatever the spacing.
    let (outcome, _, _) = run("[s]\na =  y ,  x  \n", &edit("s", "a", list(&["x", " y "])));
    assert!(!outcome.changed);
    // A single item takes the default's style.
    let mut e = edit("s", "a", list(&["z"]));
    e.default = Some("p,q".into());
    let (_, after, _) = run("[s]\na = x\n", &e);
    assert_eq!(after, "[s]\na = x,z\n");
}

#[test]
fn unset_list_inserted_with_default_style() {
    let mut e = edit("s", "a", list(&["z", "p"]));
    e.default = Some("p, q".into());
    let (_, after, _) = run("[s]\nb = 1\n", &e);
    assert_eq!(after, "[s]\nb = 1\na = p, q, z\n");
    e.default = None;
    let (_, after, _) = run("[s]\nb = 1\n", &e);
    assert_eq!(after, "[s]\nb = 1\na = z, p\n");
    e.default = Some(String::new());
    let (_, after, _) = run("[s]\nb = 1\n", &e);
    assert_eq!(after, "[s]\nb = 1\na = z, p\n");
}

#[test]
fn insertion_positions() {
    // After the last active option, not after the section's trailing comments/blanks.
    let text = "[s]\n# help\nb = 1\n\nc = 2\n\n# trailing\n\n[t]\nx = 1\n";
    let (_, after, _) = run(text, &edit("s", "a", value("v")));
    assert_eq!(
        after,
        "[s]\n# help\nb = 1\n\nc = 2\na = v\n\n# trailing\n\n[t]\nx = 1\n"
    );
    // Right after the header when the section has no active lines.
    let text = "[s]\n# only comments\n\n[t]\n";
    let (_, after, _) = run(text, &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\na = v\n# only comments\n\n[t]\n");
    // After the last sample line; sample styles `#a = `, `# a = `, `#a=`.
    for sample in ["#a = 1", "# a = 1", "#a=1", ";a = 1"] {
        let text = format!("[s]\n#a = old\n\n{sample}\nb = 1\n\n[t]\n#a = other\n");
        let (_, after, _) = run(&text, &edit("s", "a", value("v")));
        assert_eq!(
            after,
            format!("[s]\n#a = old\n\n{sample}\na = v\nb = 1\n\n[t]\n#a = other\n")
        );
    }
    // Help text mentioning the name is not a sample line.
    let text = "[s]\n# a is great\n# abc = 1\nb = 1\n";
    let (_, after, _) = run(text, &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\n# a is great\n# abc = 1\nb = 1\na = v\n");
    // After the continuation lines of the last option.
    let text = "[s]\nb = 1,\n  2\n\n";
    let (_, after, _) = run(text, &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1,\n  2\na = v\n\n");
}

#[test]
fn inserted_spacing_follows_compact_sections() {
    let (_, after, _) = run("[s]\nb=1\nc=2\n", &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\nb=1\nc=2\na=v\n");
    let (_, after, _) = run("[s]\nb=1\nc = 2\n", &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\nb=1\nc = 2\na = v\n");
    let (_, after, _) = run("[s]\n", &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\na = v\n");
}

#[test]
fn duplicate_sections_are_one_section() {
    let text = "[s]\na = 1\n\n[t]\nx = 1\n\n[s]\nb = 2\n";
    let doc = IniDoc::parse(text);
    assert_eq!(doc.get_all("s", "a"), vec!["1"]);
    assert_eq!(doc.get_all("s", "b"), vec!["2"]);
    assert_eq!(doc.sections(), vec!["s", "t"]);
    // Edit in place where the line is.
    let (_, after, _) = run(text, &edit("s", "a", value("9")));
    assert_eq!(after, "[s]\na = 9\n\n[t]\nx = 1\n\n[s]\nb = 2\n");
    // Insert into the last occurrence.
    let (_, after, _) = run(text, &edit("s", "c", value("3")));
    assert_eq!(after, "[s]\na = 1\n\n[t]\nx = 1\n\n[s]\nb = 2\nc = 3\n");
    // A key repeated across occurrences is a repeated key.
    let text = "[s]\na = 1\n[s]\na = 2\n";
    let err = IniDoc::parse(text)
        .apply(&edit("s", "a", value("3")))
        .unwrap_err();
    assert!(matches!(err, IniError::RepeatedKey { count: 2, .. }));
}

#[test]
fn names_are_case_sensitive() {
    let text = "[DEFAULT]\ndebug = false\n\n[default]\nDebug = x\n";
    let doc = IniDoc::parse(text);
    assert_eq!(doc.get_all("DEFAULT", "debug"), vec!["false"]);
    assert!(doc.get_all("DEFAULT", "Debug").is_empty());
    assert_eq!(doc.get_all("default", "Debug"), vec!["x"]);
    let (_, after, _) = run(text, &edit("DEFAULT", "Debug", value("true")));
    assert_eq!(
        after,
        "[DEFAULT]\ndebug = false\nDebug = true\n\n[default]\nDebug = x\n"
    );
    let (_, after, _) = run(text, &edit("Default", "debug", value("true")));
    assert_eq!(after, format!("{text}\n[Default]\ndebug = true\n"));
}

#[test]
fn default_section_is_ordinary() {
    let text = "[DEFAULT]\ndebug = true\n\n[api]\nx = 1\n";
    let doc = IniDoc::parse(text);
    assert!(doc.get_all("api", "debug").is_empty());
    let (_, after, _) = run(text, &edit("api", "debug", value("true")));
    assert_eq!(
        after,
        "[DEFAULT]\ndebug = true\n\n[api]\nx = 1\ndebug = true\n"
    );
}

#[test]
fn no_final_newline() {
    let (_, after, _) = run("[s]\nb = 1", &edit("s", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1\na = v");
    let (_, after, _) = run("[s]\nb = 1", &edit("s", "b", value("2")));
    assert_eq!(after, "[s]\nb = 2");
    let (_, after, _) = run("[s]\nb = 1", &edit("t", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1\n\n[t]\na = v");
    let (_, after, _) = run("[s]\nb = 1\r\n\r\nc = 2", &edit("t", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1\r\n\r\nc = 2\r\n\r\n[t]\r\na = v");
    let (_, after, _) = run("[s]\nb = 1\n", &edit("t", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1\n\n[t]\na = v\n");
    let (_, after, _) = run("[s]\nb = 1\n\n", &edit("t", "a", value("v")));
    assert_eq!(after, "[s]\nb = 1\n\n[t]\na = v\n");
    let (_, after, _) = run("", &edit("t", "a", value("v")));
    assert_eq!(after, "[t]\na = v\n");
}

#[test]
fn crlf_and_bom() {
    let text = "\u{feff}[s]\r\nb = 1\r\n\r\n[t]\r\n";
    assert_eq!(IniDoc::parse(text).to_text(), text);
    assert_eq!(IniDoc::parse(text).get_all("s", "b"), vec!["1"]);
    let (_, after, _) = run(text, &edit("s", "a", value("v")));
    assert_eq!(after, "\u{feff}[s]\r\nb = 1\r\na = v\r\n\r\n[t]\r\n");
    let (_, after, _) = run(text, &edit("s", "b", value("2")));
    assert_eq!(after, "\u{feff}[s]\r\nb = 2\r\n\r\n[t]\r\n");
}

#[test]
fn continuation_lines() {
    let text = "[s]\na = x,\n  y\n\ty2\nb = 1\n";
    let doc = IniDoc::parse(text);
    assert_eq!(doc.get_all("s", "a"), vec!["x,\ny\ny2"]);
    assert_eq!(doc.get_all("s", "b"), vec!["1"]);
    let (_, after, _) = run(text, &edit("s", "a", value("z")));
    assert_eq!(after, "[s]\na = z\nb = 1\n");
    let (_, after, _) = run(text, &edit("s", "a", IniOp::Absent));
    assert_eq!(after, "[s]\nb = 1\n");
    // Comments and blank lines end a multi-line value.
    let doc = IniDoc::parse("[s]\na = 1\n# c\n  b = 2\n");
    assert_eq!(doc.get_all("s", "a"), vec!["1"]);
}

#[test]
fn commented_and_garbage_lines_untouched() {
    let text = "top = 1\n[s]\n#a = 1\n;a = 2\ngarbage line\n[broken\na = 3\n[s]\n";
    let doc = IniDoc::parse(text);
    assert!(
        doc.get_all("s", "a").is_empty(),
        "lines after a broken header belong nowhere"
    );
    assert!(doc.get_all("s", "top").is_empty());
    let (outcome, after, _) = run(text, &edit("s", "a", IniOp::Absent));
    assert!(!outcome.changed);
    assert_eq!(after, text);
}

#[test]
fn invalid_input_is_refused() {
    let mut doc = IniDoc::parse("[s]\n");
    for e in [
        edit("s", "a", value("x\ny")),
        edit("s", "a", list(&["x,y"])),
        edit("s", "a=b", value("x")),
        edit("s", "", value("x")),
        edit("s", "#a", value("x")),
        edit("", "a", value("x")),
        edit("s\n", "a", value("x")),
    ] {
        assert!(doc.apply(&e).is_err(), "{e:?}");
    }
    assert_eq!(doc.to_text(), "[s]\n");
    // Secret values never appear in error messages.
    let err = doc
        .apply(&edit("s", "password", value("hunter2\n")))
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn secret_option_names() {
    for name in [
        "password",
        "admin_password",
        "rabbit_password",
        "ssl_key_password",
        "memcache_secret_key",
        "api_key",
        "fixed_key",
        "auth_token",
        "admin_token",
        "client_secret",
        "s3_store_secret_key",
        "transport_url",
        "connection",
        "slave_connection",
        "backend_url",
        "connection_string",
        "Password",
        "API_KEY",
    ] {
        assert!(is_secret_option(name), "{name} should be secret");
    }
    for name in [
        "key_manager",
        "keymap",
        "key_file",
        "ssl_key_file",
        "token_cache_time",
        "service_token_roles",
        "password_length",
        "rbd_secret_uuid",
        "keystone_authtoken_url",
        "connection_recycle_time",
        "auth_url",
        "username",
        "my_ip",
    ] {
        assert!(!is_secret_option(name), "{name} should not be secret");
    }
}

#[test]
fn masking_keeps_layout() {
    let text = "\u{feff}[s]\r\npassword=hunter2\r\n#admin_password = old  \r\n\
                api_key  =  k\r\nname = x\r\ntransport_url = rabbit://u:p@h:5672/\r\n\
                other = mysql://nova:pw@db/nova\r\ntoken = a,\r\n  b\r\nempty_password =\r\n# plain comment: password\r\n";
    let masked = mask_secrets(text);
    assert_eq!(
        masked,
        "\u{feff}[s]\r\npassword=********\r\n#admin_password = ********  \r\n\
         api_key  =  ********\r\nname = x\r\ntransport_url = ********\r\n\
         other = ********\r\ntoken = ********\r\n  ********\r\nempty_password =\r\n# plain comment: password\r\n"
    );
    assert_eq!(mask_secrets("no ini at all"), "no ini at all");
}

#[test]
fn notes_do_not_leak_secret_defaults() {
    let mut e = edit("s", "password", value("hunter2"));
    e.default = Some("hunter2".into());
    let outcome = IniDoc::parse("[s]\n").apply(&e).unwrap();
    assert!(!outcome.changed);
    assert!(!outcome.note.unwrap().contains("hunter2"));
}

// ---- property tests ------------------------------------------------------------

fn ini_line() -> impl Strategy<Value = String> {
    let header = prop::sample::select(vec![
        "[DEFAULT]",
        "[a]",
        "[b]",
        "[A]",
        " [a]",
        "[a",
        "[]",
        "[a] ",
    ])
    .prop_map(str::to_string);
    let option = (
        prop::sample::select(vec!["a", "b", "A", "c", " a", "\ta"]),
        prop::sample::select(vec!["=", " = ", "  =  ", ":", " =", "= ", "\t=\t"]),
        prop::sample::select(vec!["", "x", "x,y", "x, y", "\"q,r\"", "1 # c", "x,", "y"]),
        prop::sample::select(vec!["", " ", "\t", "\r"]),
    )
        .prop_map(|(k, s, v, t)| format!("{k}{s}{v}{t}"));
    let other = prop::sample::select(vec![
        "",
        "  ",
        "#a = x",
        "# a = 1",
        ";b=2",
        "# text",
        "#",
        "  cont",
        "\tz,w",
        "garbage",
        "=x",
        "  # indented comment",
        "  [b]",
    ])
    .prop_map(str::to_string);
    prop_oneof![2 => header, 4 => option, 3 => other, 1 => "\\PC{0,6}"]
}

fn ini_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec((ini_line(), prop::bool::weighted(0.2)), 0..24),
        any::<bool>(),
    )
        .prop_map(|(bom, lines, final_newline)| {
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            let n = lines.len();
            for (i, (line, crlf)) in lines.into_iter().enumerate() {
                s.push_str(&line);
                if i + 1 < n || final_newline {
                    s.push_str(if crlf { "\r\n" } else { "\n" });
                }
            }
            s
        })
}

fn ini_edit() -> impl Strategy<Value = IniEdit> {
    let names = || prop::sample::select(vec!["DEFAULT", "a", "b", "A", "c"]);
    let options = || prop::sample::select(vec!["a", "b", "A", "c"]);
    let op = prop_oneof![
        prop::sample::select(vec!["x", "y", "", "x, y", " z "])
            .prop_map(|v| IniOp::Value(v.into())),
        prop::collection::vec(prop::sample::select(vec!["x", "y", "z", " y"]), 0..3)
            .prop_map(|v| IniOp::ListContains(v.into_iter().map(String::from).collect())),
        Just(IniOp::Absent),
    ];
    let default = prop::option::of(prop::sample::select(vec!["x,y", "x", "", "y, z"]));
    let aliases = prop::collection::vec((names(), options()), 0..3);
    (names(), options(), op, default, aliases).prop_map(|(s, o, op, d, al)| IniEdit {
        section: s.into(),
        option: o.into(),
        op,
        default: d.map(String::from),
        aliases: al.into_iter().map(|(s, o)| (s.into(), o.into())).collect(),
    })
}

/// Effective value after an edit, oslo style: primary, else aliases in order, else default.
fn effective(doc: &IniDoc, e: &IniEdit) -> Option<String> {
    std::iter::once((e.section.clone(), e.option.clone()))
        .chain(e.aliases.iter().cloned())
        .find_map(|(s, o)| doc.get(&s, &o))
        .or_else(|| e.default.clone())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_round_trip(s in any::<String>()) {
        prop_assert_eq!(IniDoc::parse(&s).to_text(), s.clone());
        // Masking keeps the line structure of anything.
        prop_assert_eq!(mask_secrets(&s).split('\n').count(), s.split('\n').count());
    }

    #[test]
    fn ini_like_strings_round_trip(s in ini_text()) {
        prop_assert_eq!(IniDoc::parse(&s).to_text(), s.clone());
        let masked = mask_secrets(&s);
        prop_assert_eq!(mask_secrets(&masked), masked);
    }

    #[test]
    fn edits_are_idempotent_and_local(s in ini_text(), e in ini_edit()) {
        let mut doc = IniDoc::parse(&s);
        let before = doc.clone();
        match doc.apply(&e) {
            Err(_) => prop_assert_eq!(doc.to_text(), s.clone()),
            Ok(first) => {
                let text = doc.to_text();
                prop_assert_eq!(first.changed, text != s);
                // The result is stable through a re-parse.
                prop_assert_eq!(IniDoc::parse(&text).to_text(), text.clone());
                let mut again = IniDoc::parse(&text);
                let second = again.apply(&e);
                prop_assert!(matches!(second, Ok(EditOutcome { changed: false, .. })), "{:?}", second);
                prop_assert_eq!(again.to_text(), text.clone());
                // Options not named by the edit read exactly as before.
                let targeted: Vec<(String, String)> = std::iter::once((e.section.clone(), e.option.clone()))
                    .chain(e.aliases.iter().cloned())
                    .collect();
                for sec in ["DEFAULT", "a", "b", "A", "c", " a", "a ", "b"] {
                    for opt in ["a", "b", "A", "c"] {
                        if targeted.iter().any(|(s, o)| s == sec && o == opt) {
                            continue;
                        }
                        prop_assert_eq!(before.get_all(sec, opt), doc.get_all(sec, opt), "[{}] {}", sec, opt);
                    }
                }
                // And the edit did what it says.
                match &e.op {
                    IniOp::Value(v) => prop_assert_eq!(effective(&doc, &e).map(|x| x.trim().to_string()), Some(v.trim().to_string())),
                    IniOp::ListContains(items) => {
                        let eff = effective(&doc, &e).unwrap_or_default();
                        let eff = eff.trim();
                        let eff = eff.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(eff);
                        let have: Vec<&str> = eff.split(',').map(str::trim).collect();
                        for item in items {
                            prop_assert!(have.contains(&item.trim()), "{:?} not in {:?}", item, have);
                        }
                    }
                    IniOp::Absent => {
                        for (s, o) in &targeted {
                            prop_assert!(doc.get_all(s, o).is_empty());
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn quoted_values_compare_as_oslo_reads_them() {
    let (outcome, _, _) = run("[s]\na = \"x\"\n", &edit("s", "a", value("x")));
    assert!(!outcome.changed);
    let (outcome, after, _) = run("[s]\na = 'x'\n", &edit("s", "a", value("y")));
    assert!(outcome.changed);
    assert_eq!(after, "[s]\na = y\n");
}

#[test]
fn insertion_never_captures_indented_lines() {
    // Inserting right before an indented line would make it a continuation
    // of the new option (oslo semantics), so such positions are skipped.
    let cases = [
        ("[a]\n#a = x\n  stray\n", "[a]\na = v\n#a = x\n  stray\n"),
        ("[a]\n  # indented\n", "[a]\n  # indented\na = v\n"),
        (
            "[a]\n  # i1\n  # i2\n\n[b]\n",
            "[a]\n  # i1\n  # i2\na = v\n\n[b]\n",
        ),
        (
            "[a]\n  # i1\n  [b]\n  x = 1\n",
            "[a]\n  # i1\n  [b]\n  x = 1\n\n[a]\na = v\n",
        ),
    ];
    for (before, expected) in cases {
        let (_, after, _) = run(before, &edit("a", "a", value("v")));
        assert_eq!(after, expected, "from {before:?}");
    }
}
