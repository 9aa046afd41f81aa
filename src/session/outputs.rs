//! Where `mcopt train` writes (`--out DIR` or the run file's `output:`, else
//! out/<run file stem>/): every output path checked writable before a run starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::RunFile;
use crate::diag::{Diag, Diags, SourceFile, Span};

/// Output paths; `None` is not written.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub params: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
}

impl Outputs {
    /// `DIR/{params.yaml, trace.csv, plot.svg, report.json, checkpoint.json}` with `--out DIR`,
    /// else the run file's `output:` paths (relative to the current directory), else
    /// `DIR = out/<run file stem>` under the current directory.
    pub fn new(out: Option<&str>, run: &RunFile) -> Outputs {
        match out {
            Some(dir) => Outputs::in_dir(Path::new(dir)),
            None if run.output.any() => Outputs {
                params: run.output.params.clone(),
                trace: run.output.trace.clone(),
                plot: run.output.plot.clone(),
                report: run.output.json.clone(),
                checkpoint: run.output.checkpoint.clone(),
            },
            None => Outputs::in_dir(&default_dir(run)),
        }
    }

    /// [`Outputs::new`], refused before anything runs when `--out` is empty or an output
    /// cannot be written: a file where a directory is needed, a directory where a file is, or
    /// a directory in which no file can be created (probed by creating and removing one).
    pub fn checked(out: Option<&str>, run: &RunFile) -> Result<Outputs, Diags> {
        if out.is_some_and(|d| d.trim().is_empty()) {
            return Err(Diag::new("mcopt::train::out", "`--out` is empty")
                .in_file("<command line>")
                .help("give `--out DIR`, or omit it to write into out/<run file stem>/")
                .into());
        }
        let outputs = Outputs::new(out, run);
        // A path from the run file's `output:` is reported at its key's line.
        let place = |key: &'static str| -> Option<(Arc<SourceFile>, Span)> {
            let span = run
                .output
                .spans
                .get(key)
                .copied()
                .filter(|_| out.is_none())?;
            Some((Arc::clone(&run.source), span))
        };
        let mut diags = Diags::new();
        if let Some(dir) = out {
            if let Err(why) = writable_dir(Path::new(dir)) {
                diags.push(out_diag(Path::new(dir), &why, None));
                return Err(diags);
            }
        }
        for (key, path) in outputs.all() {
            if let Err(why) = writable_file(path) {
                diags.push(out_diag(path, &why, place(key)));
            }
        }
        diags.finish(outputs)
    }

    /// Every configured output with the run file's `output:` key that names it.
    fn all(&self) -> Vec<(&'static str, &Path)> {
        [
            ("params", &self.params),
            ("trace", &self.trace),
            ("plot", &self.plot),
            ("json", &self.report),
            ("checkpoint", &self.checkpoint),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_deref().map(|p| (k, p)))
        .collect()
    }

    fn in_dir(d: &Path) -> Outputs {
        Outputs {
            params: Some(d.join("params.yaml")),
            trace: Some(d.join("trace.csv")),
            plot: Some(d.join("plot.svg")),
            report: Some(d.join("report.json")),
            checkpoint: Some(d.join("checkpoint.json")),
        }
    }
}

/// `out/<run file stem>` (relative to the current directory).
fn default_dir(run: &RunFile) -> PathBuf {
    let stem = run
        .path
        .file_stem()
        .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned());
    Path::new("out").join(stem)
}

/// The refusal of an output path, at the run file's `output:` key when it comes from there.
fn out_diag(path: &Path, why: &str, place: Option<(Arc<SourceFile>, Span)>) -> Diag {
    let d = Diag::new(
        "mcopt::train::out",
        format!("cannot write the output `{}`: {why}", path.display()),
    )
    .help("choose another place with --out DIR or the run file's `output:`; nothing was trained");
    match place {
        Some((source, span)) => d.at(&source, span, "this output"),
        None => d.in_file(path.display().to_string()),
    }
}

/// An output file can be written at `path`: it is not a directory, and its directory is
/// (or can be created as) a writable directory.
fn writable_file(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("the path is empty".to_string());
    }
    if path.is_dir() {
        return Err("it is a directory".to_string());
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => writable_dir(dir),
        None => writable_dir(Path::new(".")),
    }
}

/// `dir` is a directory, or can be created below its nearest existing ancestor, and a file
/// can be created there (probed: created and removed at once).
fn writable_dir(dir: &Path) -> Result<(), String> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("`{}` is not a directory", existing.display())),
            Err(_) => match existing.parent() {
                Some(p) if !p.as_os_str().is_empty() => existing = p,
                _ => {
                    existing = Path::new(".");
                    break;
                }
            },
        }
    }
    let probe = existing.join(format!(".mcopt-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!(
            "cannot write into `{}`: {}",
            existing.display(),
            crate::input::os_error(&e)
        )),
    }
}
