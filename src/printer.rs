//! All output goes through here: human text on stderr, `--json` data on stdout, secrets
//! masked in both, color only when wanted (`NO_COLOR` respected).

use console::Style;
use std::io::{IsTerminal, Write};
use std::sync::{OnceLock, RwLock};

pub const MASK: &str = "********";

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

/// Secret values (from `secret_env`/`secret_file`) are replaced by `********` in all output.
pub fn add_secrets(secrets: &[String]) {
    let mut s = state().write().expect("printer lock");
    s.secrets
        .extend(secrets.iter().filter(|x| !x.is_empty()).cloned());
    // Longest first, so a secret containing another is masked whole.
    s.secrets.sort_by_key(|x| std::cmp::Reverse(x.len()));
}

pub fn mask(text: &str) -> String {
    let s = state().read().expect("printer lock");
    let mut out = text.to_string();
    for secret in &s.secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

pub fn color() -> bool {
    state().read().expect("printer lock").color
}

pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

fn paint(style: Style, text: &str) -> String {
    if color() {
        style.force_styling(true).apply_to(text).to_string()
    } else {
        text.to_string()
    }
}

pub fn bold(t: &str) -> String {
    paint(Style::new().bold(), t)
}
pub fn green(t: &str) -> String {
    paint(Style::new().green(), t)
}
pub fn yellow(t: &str) -> String {
    paint(Style::new().yellow(), t)
}
pub fn red(t: &str) -> String {
    paint(Style::new().red().bold(), t)
}
pub fn dim(t: &str) -> String {
    paint(Style::new().dim(), t)
}
pub fn cyan(t: &str) -> String {
    paint(Style::new().cyan(), t)
}

/// One line (or several) of human output on stderr.
pub fn say(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{}", mask(text));
}

/// The `--json` document on stdout.
pub fn json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{}", mask(&text));
}

/// A color-aware diff body, indented.
pub fn diff(text: &str, indent: &str) -> String {
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
pub fn progress(len: u64) -> indicatif::ProgressBar {
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
pub fn multi() -> indicatif::MultiProgress {
    if stderr_is_tty() {
        indicatif::MultiProgress::new()
    } else {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    }
}

/// A byte progress bar for one transfer, under `multi`.
pub fn bytes_bar(
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
pub fn error(err: &anyhow::Error) {
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
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: message.into(),
        hint: hint.into(),
    })
}

/// `NOVADOCK_TRACE=1`: timings for whoever tunes the engine, seconds since the first trace
/// line; never part of the output contract.
pub fn trace(what: impl FnOnce() -> String) {
    static ON: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    if let Some(t0) =
        ON.get_or_init(|| std::env::var_os("NOVADOCK_TRACE").map(|_| std::time::Instant::now()))
    {
        eprintln!("[{:8.3}] {}", t0.elapsed().as_secs_f64(), what());
    }
}
