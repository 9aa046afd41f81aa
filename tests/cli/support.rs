//! The one CLI runner of the end-to-end tests: run the `mcopt` binary (by default in an
//! empty scratch directory, without plugin paths from the environment) and capture its exit
//! code and output.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An absolute path to `rel` inside the repository, as a string argument.
pub fn at(rel: &str) -> String {
    repo().join(rel).to_string_lossy().into_owned()
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Files left in the scratch directory the command ran in.
    pub written: Vec<String>,
}

impl Run {
    /// The stdout parsed as JSON; panics with the whole run on failure.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// A panic reached the user (the hook's message, Rust's default message, or exit 3).
    pub fn panicked(&self) -> bool {
        self.code == Some(3)
            || self.stderr.contains("internal error")
            || self.stderr.contains("panicked at")
    }
}

/// The `mcopt` binary as a process to configure, for a test that needs the process itself (a
/// child to signal or to read while it runs, a full or closed stdout): with [`command`], the
/// one place the tests name the binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcopt"))
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Run `mcopt args..` with an empty scratch directory as working directory (so any file the
/// command writes there is noticed), without plugin paths from the environment.
pub fn mcopt(args: &[&str]) -> Run {
    command(args).run()
}

/// One invocation of the binary, to adjust before [`Invocation::run`]: the one way the tests
/// run `mcopt`.
#[derive(Debug, Clone)]
pub struct Invocation {
    args: Vec<String>,
    dir: Option<PathBuf>,
    env: Vec<(String, String)>,
}

/// `mcopt args..`, by default in a fresh scratch directory and without `MCOPT_PLUGIN_PATH`.
pub fn command(args: &[&str]) -> Invocation {
    Invocation {
        args: args.iter().map(|s| s.to_string()).collect(),
        dir: None,
        env: Vec::new(),
    }
}

impl Invocation {
    /// One more argument (a path, say).
    pub fn arg(mut self, arg: impl AsRef<Path>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Run in `dir` instead of a scratch directory (then `Run::written` stays empty).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Set an environment variable (for example `MCOPT_PLUGIN_PATH`).
    pub fn env(mut self, key: &str, value: impl AsRef<Path>) -> Self {
        self.env.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    /// Run the binary and capture what it did.
    pub fn run(self) -> Run {
        let scratch = match &self.dir {
            Some(_) => None,
            None => {
                let n = COUNTER.fetch_add(1, Ordering::SeqCst);
                let dir = scratch_root().join(format!("cli-{n}"));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
                Some(dir)
            }
        };
        let cwd = self
            .dir
            .clone()
            .or_else(|| scratch.clone())
            .unwrap_or_default();
        let mut cmd = bin();
        cmd.args(&self.args)
            .current_dir(&cwd)
            .env_remove("MCOPT_PLUGIN_PATH");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run mcopt: {e}"));
        let written = scratch.as_deref().map(list).unwrap_or_default();
        if let Some(dir) = &scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
        Run {
            args: self.args,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            written,
        }
    }
}

fn list(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The number at `key` of a JSON object, or a panic naming the run.
pub fn num(v: &serde_json::Value, key: &str, run: &Run) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number `{key}` in {v}: {run:#?}"))
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// This test process's directory for scratch files, `<temp>/mcopt-tests-<pid>`. Its first use
/// removes the directories of earlier test processes that are no longer running, so what a run
/// leaves behind lasts only until the next run.
pub fn scratch_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let temp = std::env::temp_dir();
        remove_roots_of_ended_processes(&temp);
        let root = temp.join(format!("{ROOT_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        root
    })
}

const ROOT_PREFIX: &str = "mcopt-tests-";

/// Removes the scratch roots under `temp` whose process has ended (by `/proc`; where there is
/// no `/proc`, nothing is removed, since a running process's root cannot be told apart).
pub fn remove_roots_of_ended_processes(temp: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(ROOT_PREFIX))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !proc.join(pid.to_string()).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A fresh path in this process's scratch root for `tag` (what an earlier use left there is
/// removed; the directory itself is not created).
pub fn fresh_dir(tag: &str) -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::SeqCst);
    let dir = scratch_root().join(format!("{tag}-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A fresh, existing scratch directory for `tag`.
pub fn scratch_dir(tag: &str) -> PathBuf {
    let dir = fresh_dir(tag);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A file `name` holding `bytes` in a fresh scratch directory, its path as an argument.
pub fn scratch_file(name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = scratch_dir("file").join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// A scratch directory holding a copy of the syn example (`syn/rnn.mco`, `syn/adam.yaml`,
/// `data/syn_T10.csv`), so a test may change the inputs without touching the repository.
pub fn syn_copy(tag: &str) -> PathBuf {
    let dir = scratch_dir(tag);
    for sub in ["syn", "data"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for f in ["rnn.mco", "adam.yaml"] {
        std::fs::copy(repo().join("examples/syn").join(f), dir.join("syn").join(f)).unwrap();
    }
    std::fs::copy(
        repo().join("examples/data/syn_T10.csv"),
        dir.join("data/syn_T10.csv"),
    )
    .unwrap();
    dir
}

/// A path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// A JSON file, parsed; panics naming the file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The standard error of a finished process, as text.
pub fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rendered diagnostics as one line: the renderer wraps long messages at the terminal width
/// (continuation lines start with `│`), so a phrase may be split across lines.
pub fn unwrapped(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}
