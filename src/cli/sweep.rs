//! `mcopt sweep plan|run|status|collect|slurm|k8s`: grids of training runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use mcopt::check::ConstOverride;
use mcopt::config::{self, SweepFile};
use mcopt::diag::{Diag, Diags};
use mcopt::session;
use mcopt::signals;
use mcopt::sweep::{self, cluster, collect, EntryOutcome, Manifest, PlanOptions};
use serde_json::json;

use super::commands::print_json;
use super::EXIT_OK;
use mcopt::input::read_source;
use mcopt::session::registry;

/// Exit code when a sweep entry failed (the runs ran, and some failed).
const EXIT_FAILED: u8 = 1;

type Outcome = Result<u8, Diags>;

#[derive(Subcommand, Debug)]
pub enum SweepCommand {
    /// Expand SWEEP.yaml into a manifest and one run file per entry (setting × seed).
    Plan {
        /// The sweep file: `base` run file, `grid`/`fixed`/`random` over run-file keys, `seeds`.
        sweep: String,
        /// Directory to plan into (default: `sweep-STEM` beside the current directory).
        #[arg(long)]
        out: Option<String>,
        #[command(flatten)]
        common: SweepArgs,
    },
    /// Run one entry (--index, SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX) or all of them.
    Run {
        /// The planned sweep directory.
        dir: String,
        /// The entry to run (else SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX, else all).
        #[arg(long, conflicts_with = "jobs")]
        index: Option<usize>,
        /// Run every entry with this many worker processes at a time.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
        jobs: Option<u32>,
        #[command(flatten)]
        common: SweepArgs,
    },
    /// Counts of done, running, failed and pending entries.
    Status {
        /// The planned sweep directory.
        dir: String,
        #[command(flatten)]
        common: SweepArgs,
    },
    /// One row per setting over its seeds, ranked by mean test error; CSV, Markdown, JSON, SVG.
    Collect {
        /// The planned sweep directory.
        dir: String,
        /// Group by these key paths only (e.g. `--by solver.options.rho1`); repeatable.
        #[arg(long = "by", value_name = "KEY")]
        by: Vec<String>,
        #[command(flatten)]
        common: SweepArgs,
    },
    /// Write an sbatch job-array script running `mcopt sweep run DIR` per array index.
    Slurm {
        /// The planned sweep directory.
        dir: String,
        /// Slurm partition.
        #[arg(long)]
        partition: Option<String>,
        /// Time limit per task (Slurm syntax, e.g. 10:00).
        #[arg(long)]
        time: Option<String>,
        /// CPUs per task.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
        cpus_per_task: Option<u32>,
        /// At most this many array tasks at once.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100000))]
        max_parallel: Option<u32>,
        /// Submit the script with sbatch and print the job id.
        #[arg(long)]
        submit: bool,
        #[command(flatten)]
        common: SweepArgs,
    },
    /// Write a Kubernetes Job (completionMode: Indexed) running `mcopt sweep run DIR`.
    K8s {
        /// The planned sweep directory (on a shared volume).
        dir: String,
        /// Container image with mcopt on its PATH.
        #[arg(long)]
        image: String,
        /// Pods running at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100000))]
        parallelism: u32,
        /// PersistentVolumeClaim holding the sweep directory.
        #[arg(long, default_value = "mcopt-sweeps")]
        claim: String,
        /// Where the claim is mounted in the container.
        #[arg(long, default_value = "/sweeps")]
        mount: String,
        #[command(flatten)]
        common: SweepArgs,
    },
}

impl SweepCommand {
    /// Whether JSON was asked for (then failures are JSON on stdout too).
    pub fn wants_json(&self) -> bool {
        match self {
            SweepCommand::Plan { common, .. }
            | SweepCommand::Run { common, .. }
            | SweepCommand::Status { common, .. }
            | SweepCommand::Collect { common, .. }
            | SweepCommand::Slurm { common, .. }
            | SweepCommand::K8s { common, .. } => common.json,
        }
    }
}

/// Options every sweep command takes.
#[derive(Args, Debug, Clone, Default)]
pub struct SweepArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run a `sweep` subcommand.
pub fn run(cmd: SweepCommand) -> Outcome {
    match cmd {
        SweepCommand::Plan { sweep, out, common } => plan(&sweep, out.as_deref(), &common),
        SweepCommand::Run {
            dir,
            index,
            jobs,
            common,
        } => run_entries(Path::new(&dir), index, jobs, &common),
        SweepCommand::Status { dir, common } => status(Path::new(&dir), &common),
        SweepCommand::Collect { dir, by, common } => collect_table(Path::new(&dir), &by, &common),
        SweepCommand::Slurm {
            dir,
            partition,
            time,
            cpus_per_task,
            max_parallel,
            submit,
            common,
        } => {
            let o = cluster::SlurmOptions {
                partition,
                time,
                cpus_per_task,
                max_parallel,
                job_name: String::new(),
            };
            slurm(Path::new(&dir), o, submit, &common)
        }
        SweepCommand::K8s {
            dir,
            image,
            parallelism,
            claim,
            mount,
            common,
        } => k8s(Path::new(&dir), image, parallelism, claim, mount, &common),
    }
}

fn plan(sweep_path: &str, out: Option<&str>, common: &SweepArgs) -> Outcome {
    let sweep = config::load_sweep(Path::new(sweep_path))?;
    let dir = match out {
        Some(d) => PathBuf::from(d),
        None => {
            let stem = Path::new(sweep_path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "sweep".into());
            PathBuf::from(format!("sweep-{stem}"))
        }
    };
    // Every problem at once: the constants against the model, every entry as a run file.
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
    if common.json {
        let v = json!({
            "dir": dir.display().to_string(),
            "settings": manifest.settings,
            "seeds": manifest.seeds.len(),
            "entries": manifest.entries.len(),
            "manifest": dir.join("manifest.json").display().to_string(),
        });
        print_json(&v);
    } else {
        out!(
            "planned {} entries ({} settings × {} seeds) in {}",
            manifest.entries.len(),
            manifest.settings,
            manifest.seeds.len(),
            dir.display()
        );
        out!("run them with `mcopt sweep run {} --jobs 2`, or on a cluster with `mcopt sweep slurm` / `mcopt sweep k8s`", dir.display());
    }
    Ok(EXIT_OK)
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
    let registry = registry(&mcopt::session::Inputs::default(), Some(&run))?;
    let source = read_source(&run.model, mcopt::input::InputKind::Model)?;
    let overrides: Vec<ConstOverride> = names
        .iter()
        .map(|k| ConstOverride {
            name: k["consts.".len()..].to_string(),
            value: 1.0,
            origin: Some((sweep.source.clone(), sweep.key_span(k))),
        })
        .collect();
    session::compile_with(&source, &registry, &overrides).map(|_| ())
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

fn run_entries(dir: &Path, index: Option<usize>, jobs: Option<u32>, common: &SweepArgs) -> Outcome {
    let manifest = Manifest::load(dir)?;
    let exe = current_exe()?;
    let index = match (index, jobs) {
        (Some(i), _) => Some(i),
        (None, Some(_)) => None,
        (None, None) => index_from_env()?,
    };
    // SIGINT, SIGTERM and SIGHUP: forwarded to the running entries, which stop and are
    // marked interrupted; no further entry starts; exit 128 + signal.
    signals::install();
    if let Some(i) = index {
        let outcome = sweep::run_entry(&exe, dir, &manifest, i)?;
        report_entry(i, &outcome, common);
        if let Some(sig) = signals::received() {
            return Ok(signals::exit_code(sig));
        }
        return Ok(match outcome {
            EntryOutcome::Failed { .. } => EXIT_FAILED,
            _ => EXIT_OK,
        });
    }
    let total = manifest.entries.len();
    let bar = progress_bar(total as u64);
    let summary = sweep::run_pool(
        &exe,
        dir,
        &manifest,
        jobs.unwrap_or(1) as usize,
        &|i, outcome| {
            bar.inc(1);
            if let EntryOutcome::Failed { message, .. } = outcome {
                bar.suspend(|| eprintln!("entry {i} failed: {message}"));
            }
        },
    )?;
    bar.finish_and_clear();
    if common.json {
        let failed: Vec<_> = summary
            .failed
            .iter()
            .map(|(i, m)| json!({"index": i, "message": m}))
            .collect();
        print_json(&json!({
            "entries": total,
            "ran": summary.ran,
            "skipped": summary.skipped,
            "running_elsewhere": summary.busy,
            "interrupted": summary.interrupted,
            "failed": failed,
        }));
    } else {
        out!(
            "{} entries: {} ran, {} already done, {} failed",
            total,
            summary.ran.len(),
            summary.skipped.len(),
            summary.failed.len()
        );
        if !summary.busy.is_empty() {
            out!(
                "{} running in another worker: {}",
                plural(summary.busy.len(), "entry", "entries"),
                indices(&summary.busy)
            );
        }
        if !summary.interrupted.is_empty() {
            out!(
                "{} interrupted (`mcopt sweep run` resumes them): {}",
                plural(summary.interrupted.len(), "entry", "entries"),
                indices(&summary.interrupted)
            );
        }
    }
    if let Some(sig) = signals::received() {
        if !common.json {
            eprintln!("stopped by {}", signals::name(sig));
        }
        return Ok(signals::exit_code(sig));
    }
    Ok(if summary.failed.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn indices(v: &[usize]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report_entry(i: usize, outcome: &EntryOutcome, common: &SweepArgs) {
    let v = match outcome {
        EntryOutcome::Skipped => json!({"index": i, "outcome": "skipped"}),
        EntryOutcome::Busy => json!({"index": i, "outcome": "running_elsewhere"}),
        EntryOutcome::Ran { resumed, seconds } => {
            json!({"index": i, "outcome": "ran", "resumed": resumed, "seconds": seconds})
        }
        EntryOutcome::Failed { exit_code, message } => {
            json!({"index": i, "outcome": "failed", "exit_code": exit_code, "message": message})
        }
        EntryOutcome::Interrupted { signal } => {
            json!({"index": i, "outcome": "interrupted", "signal": signals::name(*signal)})
        }
    };
    if common.json {
        print_json(&v);
    } else {
        match outcome {
            EntryOutcome::Skipped => out!("entry {i}: already done"),
            EntryOutcome::Busy => out!("entry {i}: another worker is running it"),
            EntryOutcome::Ran { resumed, seconds } => out!(
                "entry {i}: done in {seconds:.2} s{}",
                if *resumed { " (resumed)" } else { "" }
            ),
            EntryOutcome::Failed { message, .. } => out!("entry {i}: failed\n{message}"),
            EntryOutcome::Interrupted { signal } => out!(
                "entry {i}: interrupted by {} (`mcopt sweep run` resumes it)",
                signals::name(*signal)
            ),
        }
    }
}

fn status(dir: &Path, common: &SweepArgs) -> Outcome {
    let manifest = Manifest::load(dir)?;
    let c = sweep::counts(dir, &manifest);
    let failures = sweep::failures(dir, &manifest);
    if common.json {
        let mut v = serde_json::to_value(c).unwrap_or_default();
        v["failed_entries"] = serde_json::to_value(&failures).unwrap_or_default();
        print_json(&v);
        return Ok(EXIT_OK);
    }
    if std::io::stdout().is_terminal() {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(c.total as u64),
            indicatif::ProgressDrawTarget::stdout(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40.green/white} {pos}/{len} done")
        {
            bar.set_style(style);
        }
        bar.set_position(c.done as u64);
        bar.abandon();
    }
    out!(
        "{} entries: {} done, {} running, {} failed, {} interrupted, {} pending",
        c.total,
        c.done,
        c.running,
        c.failed,
        c.interrupted,
        c.pending
    );
    for f in &failures {
        let code = f
            .exit_code
            .map_or("no exit code".to_string(), |c| format!("exit {c}"));
        out!("entry {} failed ({code}):", f.index);
        for line in f.message.lines() {
            out!("  {line}");
        }
    }
    Ok(EXIT_OK)
}

fn collect_table(dir: &Path, by: &[String], common: &SweepArgs) -> Outcome {
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
    let table = collect::collect(dir, &manifest, by);
    for u in &table.unreadable {
        eprintln!(
            "warning: the report of entry {} cannot be read ({}): {}; left out of the table",
            u.index, u.file, u.reason
        );
    }
    if table.unreadable_reports > 0 {
        eprintln!(
            "warning: {} of done entries left out",
            plural(
                table.unreadable_reports,
                "unreadable report",
                "unreadable reports"
            )
        );
    }
    let out_dir = dir.join("collect");
    mcopt::atomic::write(&out_dir.join("summary.csv"), table.to_csv().as_bytes())?;
    mcopt::atomic::write(&out_dir.join("summary.md"), table.to_markdown().as_bytes())?;
    mcopt::atomic::write(&out_dir.join("summary.json"), table.to_json().as_bytes())?;
    mcopt::atomic::write(&out_dir.join("test_loss.svg"), table.to_svg().as_bytes())?;
    if common.json {
        out_raw!("{}\n", table.to_json());
    } else {
        out_raw!("{}", table.to_markdown());
        out!(
            "written: {}/summary.{{csv,md,json}} and test_loss.svg",
            out_dir.display()
        );
    }
    Ok(EXIT_OK)
}

fn slurm(dir: &Path, mut o: cluster::SlurmOptions, submit: bool, common: &SweepArgs) -> Outcome {
    let manifest = Manifest::load(dir)?;
    let dir_abs = absolute(dir)?;
    let exe = current_exe()?;
    o.job_name = format!(
        "mcopt-{}",
        dir_abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sweep".into())
    );
    let script = cluster::slurm_script(&exe, &dir_abs, manifest.entries.len(), &o)?;
    let path = dir_abs.join("sweep.sbatch");
    mcopt::atomic::write(&path, script.as_bytes())?;
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
    if common.json {
        print_json(&json!({"script": path.display().to_string(), "job_id": job_id}));
    } else {
        out!("wrote {}", path.display());
        match &job_id {
            Some(id) => out!("submitted job {id}"),
            None => out!("submit it with `sbatch {}`", path.display()),
        }
    }
    Ok(EXIT_OK)
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

fn k8s(
    dir: &Path,
    image: String,
    parallelism: u32,
    claim: String,
    mount: String,
    common: &SweepArgs,
) -> Outcome {
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
        image,
        parallelism,
        name: name.trim_end_matches('-').to_string(),
        dir_in_pod: format!("{}/{leaf}", mount.trim_end_matches('/')),
        claim,
        mount,
        backoff_limit_per_index: 2,
    };
    let text = cluster::k8s_job(manifest.entries.len(), &o)?;
    let path = dir_abs.join("k8s-job.yaml");
    mcopt::atomic::write(&path, text.as_bytes())?;
    if common.json {
        print_json(
            &json!({"manifest": path.display().to_string(), "completions": manifest.entries.len()}),
        );
    } else {
        out!("wrote {}", path.display());
        out!(
            "copy {} to the volume `{}` as {}, then `kubectl apply -f {}`",
            dir_abs.display(),
            o.claim,
            o.dir_in_pod,
            path.display()
        );
    }
    Ok(EXIT_OK)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40.cyan/blue} {pos}/{len} entries  {elapsed_precise} (eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

fn current_exe() -> Result<PathBuf, Diags> {
    std::env::current_exe().map_err(|e| {
        Diag::new(
            "mcopt::sweep::spawn",
            format!("cannot find the mcopt executable: {e}"),
        )
        .into()
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
