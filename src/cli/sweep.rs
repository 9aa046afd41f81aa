//! `mcopt sweep plan|run|status|collect|slurm|k8s`: grids of training runs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use mcopt::diag::{Diag, Diags};
use mcopt::session::sweep::{
    self as ss, Collected, K8sRequest, PlanRequest, Planned, SlurmJob, SweepStatus, Which,
};
use mcopt::signals;
use mcopt::sweep::{self, cluster, EntryOutcome, Manifest};
use mcopt::text::plural;
use serde_json::json;

use super::commands::print_json;
use super::EXIT_OK;

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
        } => {
            let req = K8sRequest {
                image,
                parallelism,
                claim,
                mount,
            };
            k8s(Path::new(&dir), req, &common)
        }
    }
}

fn plan(sweep_path: &str, out: Option<&str>, common: &SweepArgs) -> Outcome {
    let req = PlanRequest {
        sweep: PathBuf::from(sweep_path),
        out: out.map(PathBuf::from),
    };
    let Planned { dir, manifest } = ss::plan(&req)?;
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

fn run_entries(dir: &Path, index: Option<usize>, jobs: Option<u32>, common: &SweepArgs) -> Outcome {
    let manifest = Manifest::load(dir)?;
    let exe = current_exe()?;
    let which = ss::which(index, jobs)?;
    // SIGINT, SIGTERM and SIGHUP: forwarded to the running entries, which stop and are
    // marked interrupted; no further entry starts; exit 128 + signal.
    signals::install();
    let jobs = match which {
        Which::All { jobs } => jobs,
        Which::One(i) => {
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
    };
    let total = manifest.entries.len();
    let bar = progress_bar(total as u64);
    let summary = sweep::run_pool(&exe, dir, &manifest, jobs, &|i, outcome| {
        bar.inc(1);
        if let EntryOutcome::Failed { message, .. } = outcome {
            bar.suspend(|| eprintln!("entry {i} failed: {message}"));
        }
    })?;
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
    let SweepStatus {
        counts: c,
        failures,
    } = ss::status(dir)?;
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
    let Collected { table, out_dir } = ss::collect(dir, by)?;
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

fn slurm(dir: &Path, o: cluster::SlurmOptions, submit: bool, common: &SweepArgs) -> Outcome {
    let exe = current_exe()?;
    let SlurmJob {
        script: path,
        job_id,
    } = ss::slurm(dir, &exe, o, submit)?;
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

fn k8s(dir: &Path, req: K8sRequest, common: &SweepArgs) -> Outcome {
    let job = ss::k8s(dir, req)?;
    let (path, o) = (&job.path, &job.options);
    if common.json {
        print_json(
            &json!({"manifest": path.display().to_string(), "completions": job.completions}),
        );
    } else {
        out!("wrote {}", path.display());
        out!(
            "copy {} to the volume `{}` as {}, then `kubectl apply -f {}`",
            job.dir.display(),
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
