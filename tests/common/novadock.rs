//! The one way tests run the binary, a builder in the manner of just's `Test`: what to run it
//! with (arguments, directory, files, environment), what it must answer (exit code, stdout,
//! stderr: each compared exactly when given), then `run`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What a run of the binary (or of any command) answered.
#[derive(PartialEq, Eq)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_novadock")
}

/// One run of novadock. Output is uncolored (`NO_COLOR=1`) and stdin is empty.
#[must_use = "a Novadock does nothing until `run`"]
pub struct Novadock {
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    files: Vec<(String, String)>,
    code: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl Default for Novadock {
    fn default() -> Self {
        Novadock::new()
    }
}

impl Novadock {
    pub fn new() -> Novadock {
        Novadock {
            args: Vec::new(),
            dir: None,
            env: vec![("NO_COLOR".into(), "1".into())],
            files: Vec::new(),
            code: None,
            stdout: None,
            stderr: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The working directory (relative paths in the arguments and `file`s are from there).
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// A file written (over any old one) in `dir` just before the run.
    pub fn file(mut self, name: &str, text: &str) -> Self {
        self.files.push((name.into(), text.into()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The exit code it must end with.
    pub fn code(mut self, code: i32) -> Self {
        self.code = Some(code);
        self
    }

    /// Its whole stdout, exactly.
    pub fn stdout(mut self, text: impl Into<String>) -> Self {
        self.stdout = Some(text.into());
        self
    }

    /// Its whole stderr, exactly.
    pub fn stderr(mut self, text: impl Into<String>) -> Self {
        self.stderr = Some(text.into());
        self
    }

    /// The command, for a test that spawns it (to signal it, say); expectations are not
    /// checked.
    pub fn command(&self) -> Command {
        for (name, text) in &self.files {
            let dir = self.dir.as_deref().expect("`file` needs `dir`");
            std::fs::write(dir.join(name), text).unwrap();
        }
        let mut c = Command::new(bin());
        c.args(&self.args).stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// The command in a terminal, for the interactive prompt: `script` gives novadock one and
    /// relays its piped stdin and stdout.
    pub fn tty_command(&self) -> Command {
        let quote = |a: &OsStr| format!("'{}'", a.to_str().unwrap().replace('\'', "'\\''"));
        let line = std::iter::once(OsStr::new(bin()))
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("script");
        c.args(["-qefc", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        c
    }

    /// Run it to the end and check what was expected.
    #[track_caller]
    pub fn run(self) -> Run {
        let r = Run::from(self.command().output().unwrap());
        let args = self
            .args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(code) = self.code {
            assert_eq!(r.code, code, "novadock {args}: exit code\n{r:?}");
        }
        if let Some(out) = &self.stdout {
            assert_eq!(&r.stdout, out, "novadock {args}: stdout\n{r:?}");
        }
        if let Some(err) = &self.stderr {
            assert_eq!(&r.stderr, err, "novadock {args}: stderr\n{r:?}");
        }
        r
    }
}
