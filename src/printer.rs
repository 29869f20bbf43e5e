//! All output goes through here: human text on stderr, `--json` data on stdout, secrets
//! masked in both, color only when wanted (`NO_COLOR` respected).

use console::Style;
use std::io::{IsTerminal, Write};
use std::sync::{OnceLock, RwLock};

pub(crate) const MASK: &str = "********";

/// `1 host`, `2 hosts`.
pub(crate) fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

struct State {
    color: bool,
    secrets: Vec<String>,
}

static STATE: OnceLock<RwLock<State>> = OnceLock::new();

fn state() -> &'static RwLock<State> {
    STATE.get_or_init(|| {
        let color = std::io::stderr().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        RwLock::new(State {
            color,
            secrets: Vec::new(),
        })
    })
}

/// Secret values (from `secret_env`/`secret_file`) are replaced by `********` in all output,
/// in every form they can take there: each line of a multi-line one (diffs show lines), JSON-
/// and Debug-escaped, and shell-quoted (command summaries).
pub(crate) fn add_secrets(secrets: &[String]) {
    let mut s = state().write().expect("printer lock");
    for secret in secrets.iter().filter(|x| !x.is_empty()) {
        s.secrets.extend(forms(secret));
    }
    s.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
    s.secrets.dedup();
}

/// What `secret` can look like in output. Lines shorter than 4 characters are not masked on
/// their own (they would mask half the output); the whole secret still is.
fn forms(secret: &str) -> Vec<String> {
    let mut base = vec![secret.to_string()];
    base.extend(
        secret
            .lines()
            .map(str::trim)
            .filter(|l| l.chars().count() >= 4 && *l != secret)
            .map(str::to_string),
    );
    let mut out = Vec::new();
    for b in base {
        let shell = b.replace('\'', "'\\''");
        for v in [b.clone(), shell] {
            let json = serde_json::to_string(&v).expect("strings serialize");
            out.push(json[1..json.len() - 1].to_string());
            let debug = format!("{v:?}");
            out.push(debug[1..debug.len() - 1].to_string());
            out.push(v);
        }
    }
    out.retain(|x| !x.is_empty());
    out
}

pub(crate) fn mask(text: &str) -> String {
    let s = state().read().expect("printer lock");
    let mut out = text.to_string();
    for secret in &s.secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

pub(crate) fn color() -> bool {
    state().read().expect("printer lock").color
}

pub(crate) fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

fn paint(style: Style, text: &str) -> String {
    if color() {
        style.force_styling(true).apply_to(text).to_string()
    } else {
        text.to_string()
    }
}

pub(crate) fn bold(t: &str) -> String {
    paint(Style::new().bold(), t)
}
pub(crate) fn green(t: &str) -> String {
    paint(Style::new().green(), t)
}
pub(crate) fn yellow(t: &str) -> String {
    paint(Style::new().yellow(), t)
}
pub(crate) fn red(t: &str) -> String {
    paint(Style::new().red().bold(), t)
}
pub(crate) fn dim(t: &str) -> String {
    paint(Style::new().dim(), t)
}
pub(crate) fn cyan(t: &str) -> String {
    paint(Style::new().cyan(), t)
}

/// One line (or several) of human output on stderr. Control characters are escaped here,
/// whatever a caller forgot: only the colors this printer adds get through.
pub(crate) fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", escape_with(&mask(text), true, color()));
}

/// Text from outside novadock (a host's output, a Glance name, the lock file's holder) made
/// safe to print: control characters other than newline and tab are shown as `\x1b`, so it
/// cannot move the cursor, retitle the terminal or overwrite a line.
pub(crate) fn escape(text: &str) -> String {
    escape_with(text, true, false)
}

/// As [`escape`], newlines and tabs too: for a value shown within one line.
pub(crate) fn escape_line(text: &str) -> String {
    escape_with(text, false, false)
}

fn escape_with(text: &str, keep_lines: bool, keep_colors: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if keep_colors && let Some(n) = sgr_len(rest) {
            out.push_str(&rest[..n]);
            rest = &rest[n..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c.is_control() && !(keep_lines && (c == '\n' || c == '\t')) {
            // Every control character is below U+0100: `\x1b`, as a terminal user reads it.
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            // Bidirectional overrides reorder what follows on the line.
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Length of a color sequence (`ESC [ digits ; m`) at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    let n = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';')
        .count();
    (body.as_bytes().get(n) == Some(&b'm')).then_some(2 + n + 1)
}

/// A question on stderr, answered by a line of stdin (`apply`'s confirmation).
pub(crate) fn ask(question: &str) -> std::io::Result<String> {
    let mut e = std::io::stderr();
    write!(e, "{question} [y/N] ")?;
    e.flush()?;
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    Ok(s)
}

/// A page of the manual (`novadock help`) on stdout, as it is: a reader's `| head` closing
/// the pipe is not an error worth a panic.
pub(crate) fn page(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The `--json` document on stdout.
pub(crate) fn json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", mask(&text));
}

/// A color-aware diff body, indented.
pub(crate) fn diff(text: &str, indent: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let styled = if line.starts_with("+++") || line.starts_with("---") {
            bold(line)
        } else if line.starts_with('+') {
            green(line)
        } else if line.starts_with('-') {
            red(line)
        } else if line.starts_with("@@") {
            cyan(line)
        } else {
            line.to_string()
        };
        out.push_str(indent);
        out.push_str(&styled);
        out.push('\n');
    }
    out
}

/// A progress bar over hosts; hidden unless stderr is a terminal.
pub(crate) fn progress(len: u64) -> indicatif::ProgressBar {
    if !stderr_is_tty() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} hosts {wide_msg}")
            .expect("valid template"),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(100));
    pb
}

/// Bars for several concurrent transfers; drawn only on a terminal.
pub(crate) fn multi() -> indicatif::MultiProgress {
    if stderr_is_tty() {
        indicatif::MultiProgress::new()
    } else {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    }
}

/// A byte progress bar for one transfer, under `multi`.
pub(crate) fn bytes_bar(
    multi: &indicatif::MultiProgress,
    len: u64,
    label: &str,
) -> indicatif::ProgressBar {
    if multi.is_hidden() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = multi.add(indicatif::ProgressBar::new(len));
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:30!} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {wide_bar}",
        )
        .expect("valid template"),
    );
    pb.set_message(label.to_string());
    pb
}

/// `error: …` / `Caused by: …` / `hint: …`.
pub(crate) fn error(err: &anyhow::Error) {
    let mut lines = vec![format!("{} {}", red("error:"), err)];
    let mut hints = Vec::new();
    for cause in err.chain().skip(1) {
        lines.push(format!("  {} {cause}", bold("Caused by:")));
    }
    for cause in err.chain() {
        if let Some(h) = cause.downcast_ref::<Hinted>() {
            hints.push(h.hint.clone());
        }
    }
    for h in hints {
        lines.push(format!("{} {h}", cyan("hint:")));
    }
    say(&lines.join("\n"));
}

/// An error that carries advice for the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Hinted {
    pub(crate) message: String,
    pub(crate) hint: String,
}

pub(crate) fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// `NOVADOCK_TRACE=1`: timings for whoever tunes the engine, seconds since the first trace
/// line; never part of the output contract.
pub(crate) fn trace(what: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    if let Some(t0) =
        ON.get_or_init(|| std::env::var_os("NOVADOCK_TRACE").map(|_| std::time::Instant::now()))
    {
        eprintln!("[{:8.3}] {}", t0.elapsed().as_secs_f64(), what());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_secret_is_known() {
        let f = forms("pa\"ss\\wo'rd\n-----BEGIN KEY-----\nMIIEvQIB\nab\n");
        for form in [
            "pa\"ss\\wo'rd\n-----BEGIN KEY-----\nMIIEvQIB\nab\n",
            "pa\"ss\\wo'rd",
            "pa\\\"ss\\\\wo'rd",
            "pa\"ss\\wo'\\''rd",
            "MIIEvQIB",
            "-----BEGIN KEY-----",
        ] {
            assert!(f.iter().any(|x| x == form), "{form:?} not in {f:?}");
        }
        assert!(!f.iter().any(|x| x == "ab"), "{f:?}");
    }

    #[test]
    fn outside_text_cannot_drive_the_terminal() {
        let evil = "img\x1b]0;pwned\x07\r\nh1: ok\t\u{202e}x\u{9b}";
        assert_eq!(
            escape_line(evil),
            "img\\x1b]0;pwned\\x07\\x0d\\x0ah1: ok\\x09\\u{202e}x\\x9b"
        );
        assert_eq!(escape("a\nb\tc\rd"), "a\nb\tc\\x0dd");
        // The printer's own colors survive, anything else is shown escaped.
        let colored = format!(
            "{}\x1b[2J",
            Style::new().green().force_styling(true).apply_to("ok")
        );
        assert_eq!(
            escape_with(&colored, true, true),
            "\x1b[32mok\x1b[0m\\x1b[2J"
        );
        assert_eq!(escape_with("\x1b[31;1mred", true, false), "\\x1b[31;1mred");
    }
}
