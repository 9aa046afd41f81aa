//! The sweep commands as typed requests: [`plan`] (a sweep file checked against its model and
//! planned into a directory), [`which`] (the entries `sweep run` runs: one by index or from a
//! cluster task's environment, or all), [`status`], [`collect`] (the ranked table written to
//! `DIR/collect/`), [`slurm`] and [`k8s`] (the job files written, an sbatch submission). The
//! command line keeps argument parsing, progress bars, signals, printing and exit codes.

use std::path::{Path, PathBuf};

use crate::check::ConstOverride;
use crate::config::{self, SweepFile};
use crate::diag::{Diag, Diags};
use crate::input::{read_source, InputKind};
use crate::sweep::{self, cluster, collect::Table, Counts, Failure, Manifest, PlanOptions};

use super::{compile_with, registry, Inputs};

/// A sweep file to plan into `out` (default: `sweep-STEM` in the current directory).
#[derive(Debug, Clone)]
pub struct PlanRequest {
    pub sweep: PathBuf,
    pub out: Option<PathBuf>,
}

/// A planned sweep: its directory and manifest.
#[derive(Debug, Clone)]
pub struct Planned {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Check every problem at once (each `consts.NAME` against the base model, every entry as a
/// run file), then write the manifest and the run files.
pub fn plan(req: &PlanRequest) -> Result<Planned, Diags> {
    let sweep = config::load_sweep(&req.sweep)?;
    let dir = match &req.out {
        Some(d) => d.clone(),
        None => {
            let stem = req
                .sweep
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into());
            PathBuf::from(format!("sweep-{stem}"))
        }
    };
    let consts = check_consts(&sweep);
    let dry = sweep::plan(&sweep, &dir, PlanOptions { dry_run: true });
    if consts.is_err() || dry.is_err() {
        let mut all = Diags::new();
        for d in [consts.err(), dry.err()].into_iter().flatten() {
            d.iter().cloned().for_each(|x| all.push(x));
        }
        return Err(all);
    }
    let manifest = sweep::plan(&sweep, &dir, PlanOptions::default())?;
    Ok(Planned { dir, manifest })
}

/// Every `consts.NAME` a setting overrides must be a `const` of the base model.
fn check_consts(sweep: &SweepFile) -> Result<(), Diags> {
    let mut names: Vec<String> = Vec::new();
    for s in sweep.settings() {
        for (k, _) in s {
            if k.starts_with("consts.") && !names.contains(&k) {
                names.push(k);
            }
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let run = config::load_run(&sweep.base)?;
    let registry = registry(&Inputs::default(), Some(&run))?;
    let source = read_source(&run.model, InputKind::Model)?;
    let overrides: Vec<ConstOverride> = names
        .iter()
        .map(|k| ConstOverride {
            name: k["consts.".len()..].to_string(),
            value: 1.0,
            origin: Some((sweep.source.clone(), sweep.key_span(k))),
        })
        .collect();
    compile_with(&source, &registry, &overrides).map(|_| ())
}

/// Which entries `sweep run` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// One entry (`--index`, else `SLURM_ARRAY_TASK_ID`, else `JOB_COMPLETION_INDEX`).
    One(usize),
    /// Every entry, with this many worker processes at a time.
    All { jobs: usize },
}

/// The entries to run from `--index` and `--jobs`, else a cluster task's environment.
pub fn which(index: Option<usize>, jobs: Option<u32>) -> Result<Which, Diags> {
    match (index, jobs) {
        (Some(i), _) => Ok(Which::One(i)),
        (None, Some(j)) => Ok(Which::All { jobs: j as usize }),
        (None, None) => Ok(match index_from_env()? {
            Some(i) => Which::One(i),
            None => Which::All { jobs: 1 },
        }),
    }
}

/// The entry index from the environment of a cluster task, if any.
fn index_from_env() -> Result<Option<usize>, Diags> {
    for var in ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"] {
        if let Ok(v) = std::env::var(var) {
            return v.trim().parse::<usize>().map(Some).map_err(|_| {
                Diag::new(
                    "mcopt::sweep::index",
                    format!("{var} is `{v}`, not an entry index"),
                )
                .into()
            });
        }
    }
    Ok(None)
}

/// The state of a sweep: counts per state and the failed entries with their messages.
#[derive(Debug, Clone)]
pub struct SweepStatus {
    pub counts: Counts,
    pub failures: Vec<Failure>,
}

/// [`SweepStatus`] of the sweep in `dir`.
pub fn status(dir: &Path) -> Result<SweepStatus, Diags> {
    let manifest = Manifest::load(dir)?;
    Ok(SweepStatus {
        counts: sweep::counts(dir, &manifest),
        failures: sweep::failures(dir, &manifest),
    })
}

/// The collected table and the directory its four files were written to.
#[derive(Debug)]
pub struct Collected {
    pub table: Table,
    pub out_dir: PathBuf,
}

/// Rank the settings of the sweep in `dir` over their seeds, grouped by the key paths `by`
/// (each must be one the sweep varies), and write `summary.{csv,md,json}` and
/// `test_loss.svg` into `DIR/collect/`.
pub fn collect(dir: &Path, by: &[String]) -> Result<Collected, Diags> {
    let manifest = Manifest::load(dir)?;
    let keys: Vec<String> = manifest
        .entries
        .iter()
        .filter_map(|e| e.overrides.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    for k in by {
        if !keys.contains(k) {
            let mut known = keys.clone();
            known.sort();
            known.dedup();
            let msg = format!("the sweep does not vary `{k}`");
            return Err(Diag::new("mcopt::sweep::key", msg)
                .in_file(dir.join("manifest.json").display().to_string())
                .help(format!("its keys: {}", known.join(", ")))
                .into());
        }
    }
    let table = sweep::collect::collect(dir, &manifest, by);
    let out_dir = dir.join("collect");
    crate::atomic::write(&out_dir.join("summary.csv"), table.to_csv().as_bytes())?;
    crate::atomic::write(&out_dir.join("summary.md"), table.to_markdown().as_bytes())?;
    crate::atomic::write(&out_dir.join("summary.json"), table.to_json().as_bytes())?;
    crate::atomic::write(&out_dir.join("test_loss.svg"), table.to_svg().as_bytes())?;
    Ok(Collected { table, out_dir })
}

/// The Slurm job written: the script, and the job id when it was submitted.
#[derive(Debug, Clone)]
pub struct SlurmJob {
    pub script: PathBuf,
    pub job_id: Option<String>,
}

/// Write `DIR/sweep.sbatch` (a job array running `EXE sweep run DIR` per index; the job
/// named `mcopt-LEAF`) and the log directory; with `submit`, submit it with sbatch.
pub fn slurm(
    dir: &Path,
    exe: &Path,
    mut o: cluster::SlurmOptions,
    submit: bool,
) -> Result<SlurmJob, Diags> {
    let manifest = Manifest::load(dir)?;
    let dir_abs = absolute(dir)?;
    o.job_name = format!(
        "mcopt-{}",
        dir_abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    );
    let script = cluster::slurm_script(exe, &dir_abs, manifest.entries.len(), &o)?;
    let path = dir_abs.join("sweep.sbatch");
    crate::atomic::write(&path, script.as_bytes())?;
    std::fs::create_dir_all(dir_abs.join("slurm")).map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::io::write",
                format!("cannot create the log directory: {e}"),
            )
            .in_file(dir_abs.join("slurm").display().to_string()),
        )
    })?;
    let job_id = if submit { Some(sbatch(&path)?) } else { None };
    Ok(SlurmJob {
        script: path,
        job_id,
    })
}

/// `sbatch --parsable SCRIPT`, returning the job id.
fn sbatch(script: &Path) -> Result<String, Diags> {
    let output = std::process::Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            Diags::from(
                Diag::new("mcopt::sweep::sbatch", format!("cannot run sbatch: {e}")).help(
                    "is Slurm installed and on the PATH? the script was written; submit it by hand",
                ),
            )
        })?;
    if !output.status.success() {
        let msg = format!(
            "sbatch refused the job: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
        return Err(Diag::new("mcopt::sweep::sbatch", msg)
            .in_file(script.display().to_string())
            .into());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string())
}

/// A Kubernetes indexed Job to write for a sweep.
#[derive(Debug, Clone)]
pub struct K8sRequest {
    /// Container image with mcopt on its PATH.
    pub image: String,
    /// Pods running at once.
    pub parallelism: u32,
    /// PersistentVolumeClaim holding the sweep directory.
    pub claim: String,
    /// Where the claim is mounted in the container.
    pub mount: String,
}

/// The Job written: its file, its options (the sweep directory as the pods see it) and the
/// number of completions.
#[derive(Debug, Clone)]
pub struct K8sJob {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub options: cluster::K8sOptions,
    pub completions: usize,
}

/// Write `DIR/k8s-job.yaml`, a Job named after the directory (`mcopt-LEAF`, a DNS label)
/// running `mcopt sweep run` per index on the claim mounted at `mount`.
pub fn k8s(dir: &Path, req: K8sRequest) -> Result<K8sJob, Diags> {
    let manifest = Manifest::load(dir)?;
    let dir_abs = absolute(dir)?;
    let leaf = dir_abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    let name: String = format!("mcopt-{leaf}")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    let o = cluster::K8sOptions {
        image: req.image,
        parallelism: req.parallelism,
        name: name.trim_end_matches('-').to_string(),
        dir_in_pod: format!("{}/{leaf}", req.mount.trim_end_matches('/')),
        claim: req.claim,
        mount: req.mount,
        backoff_limit_per_index: 2,
    };
    let text = cluster::k8s_job(manifest.entries.len(), &o)?;
    let path = dir_abs.join("k8s-job.yaml");
    crate::atomic::write(&path, text.as_bytes())?;
    Ok(K8sJob {
        path,
        dir: dir_abs,
        options: o,
        completions: manifest.entries.len(),
    })
}

fn absolute(dir: &Path) -> Result<PathBuf, Diags> {
    std::path::absolute(dir).map_err(|e| {
        Diag::new(
            "mcopt::io::read",
            format!("cannot resolve the directory: {e}"),
        )
        .in_file(dir.display().to_string())
        .into()
    })
}
