//! `novadock help [TOPIC]`: the manual (`docs/*.md`) built into the binary, because an
//! installed novadock has no source tree to point at.

use crate::printer::hinted;
use anyhow::Result;
use include_dir::{Dir, include_dir};

static DOCS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/docs");

/// What `help TOPIC` resolved to.
#[derive(Debug, PartialEq)]
pub(crate) enum Help {
    /// A page of the manual, printed as it is in `docs/`.
    Page(&'static str),
    /// No topic: the list of pages.
    Topics(String),
    /// A command without a page of its own: its `--help`.
    Command(String),
}

/// Every page but the folder's index (`README.md`, for browsing the source): (topic, text),
/// sorted by topic.
fn pages() -> Vec<(&'static str, &'static str)> {
    let mut pages: Vec<_> = DOCS
        .files()
        .filter_map(|f| {
            let name = f.path().to_str()?.strip_suffix(".md")?;
            (name != "README").then_some((name, f.contents_utf8()?))
        })
        .collect();
    pages.sort();
    pages
}

/// A page's first line without `# `, and without a leading `TOPIC: ` (`boot-time: how long…`),
/// which the listing already shows.
fn title(topic: &str, text: &str) -> String {
    let first = text.lines().next().unwrap_or("");
    let first = first.strip_prefix("# ").unwrap_or(first);
    match first.split_once(": ") {
        Some((head, rest)) if head.replace(' ', "-") == topic => {
            let mut chars = rest.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        }
        _ => first.to_string(),
    }
}

fn topics() -> String {
    let pages = pages();
    // At least 16 wide: a new page with a longer name adds its line without moving the others.
    let width = pages
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(16);
    let mut s = String::from("The novadock manual. `novadock help TOPIC` prints a page:\n\n");
    for (name, text) in &pages {
        s.push_str(&format!("  {name:width$}  {}\n", title(name, text)));
    }
    s.push_str(
        "\nA link to NAME.md in a page is the topic NAME. `novadock COMMAND --help` lists a \
         command's options;\n`novadock help COMMAND` shows the same for a command without a page.\n",
    );
    s
}

/// `commands` are the subcommands' names, for `help plan` to mean `plan --help`.
pub(crate) fn resolve(topic: Option<&str>, commands: &[String]) -> Result<Help> {
    let Some(topic) = topic else {
        return Ok(Help::Topics(topics()));
    };
    if let Some((_, text)) = pages().into_iter().find(|(n, _)| *n == topic) {
        return Ok(Help::Page(text));
    }
    if commands.iter().any(|c| c == topic) {
        return Ok(Help::Command(topic.to_string()));
    }
    let names: Vec<_> = pages().into_iter().map(|(n, _)| n).collect();
    Err(hinted(
        format!("no help topic `{topic}`"),
        format!(
            "topics: {}; `novadock help` lists them with their titles",
            names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_a_title_and_the_index_is_no_topic() {
        let pages = pages();
        assert!(pages.iter().any(|(n, _)| *n == "steps"));
        assert!(pages.iter().all(|(n, _)| *n != "README"));
        for (name, text) in pages {
            assert!(
                text.starts_with("# "),
                "docs/{name}.md starts with its title"
            );
            assert!(!title(name, text).is_empty());
        }
        assert_eq!(title("boot-time", "# boot-time: how long\n"), "How long");
        assert_eq!(
            title("image-add", "# image add: into Glance\n"),
            "Into Glance"
        );
        assert_eq!(
            title("steps", "# Step kinds: the reference\n"),
            "Step kinds: the reference"
        );
        assert_eq!(
            title("driver", "# novadock's driver\n"),
            "novadock's driver"
        );
    }

    #[test]
    fn a_command_without_a_page_is_its_help_and_anything_else_an_error() {
        let cmds = ["plan".to_string(), "prefetch".to_string()];
        assert_eq!(
            resolve(Some("plan"), &cmds).unwrap(),
            Help::Command("plan".into())
        );
        // A command with a page gets the page, which says more than --help.
        assert!(matches!(
            resolve(Some("prefetch"), &cmds).unwrap(),
            Help::Page(t) if t.starts_with("# prefetch")
        ));
        let e = resolve(Some("nope"), &cmds).unwrap_err();
        assert_eq!(e.to_string(), "no help topic `nope`");
    }
}
