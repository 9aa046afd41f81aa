//! `mcopt train RUNFILE`: check everything (run file, model, data, solver, options, starting
//! point, checkpoint) before anything runs or is written, run the executor with a progress bar,
//! periodic checkpoints and the stop signals (SIGINT, SIGTERM, SIGHUP: `mcopt::signals`), then
//! write the outputs atomically (see `train_out.rs` and `mcopt::session::record`).

use std::path::Path;

use mcopt::config;
use mcopt::diag::Diags;
use mcopt::solve::{RunState, Status};

use super::train_out::{self, Progress};
use super::EXIT_OK;
use mcopt::session::outputs::Outputs;
use mcopt::session::record::{self as train_record, Recorder, RunIdentity};
use mcopt::session::resume::{checkpoint_shown, load_checkpoint, refuse_other_seed};
use mcopt::session::train::{finish, Finished, Resume, Started, TrainOverrides, TrainPlan};
use mcopt::session::Inputs;

/// Exit code of a run stopped by Ctrl-C (after writing everything); SIGTERM and SIGHUP give
/// 128 + their number (`mcopt::signals::exit_code`).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code of a run that diverged (its outputs are written).
pub const EXIT_DIVERGED: u8 = 1;

/// The command line of `mcopt train`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrainArgs {
    /// The run file (YAML): model, data, solver and options, init, seed, stop rules, outputs.
    pub runfile: String,
    /// Start from this point file instead of the run file's `init`.
    #[arg(long, value_name = "POINT")]
    pub init: Option<String>,
    /// Stop after N iterations in all (overrides the run file's `stop.max_iter`).
    #[arg(long, value_name = "N")]
    pub max_iter: Option<u64>,
    /// Write params.yaml, trace.csv, plot.svg, report.json and checkpoint.json into DIR
    /// (default: the run file's `output:`, else out/<run file stem>/ in the current directory).
    #[arg(long, value_name = "DIR")]
    pub out: Option<String>,
    /// Continue from the checkpoint (DIR/checkpoint.json with --out).
    #[arg(long, conflicts_with = "init")]
    pub resume: bool,
    /// Seed for the initialisation and minibatches (overrides the run file's `seed`).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar, no summary.
    #[arg(long)]
    pub quiet: bool,
    /// Load a plugin library (path, or a name searched on MCOPT_PLUGIN_PATH); repeatable.
    #[arg(long = "plugin", value_name = "LIB")]
    pub plugins: Vec<String>,
    /// Replace the value of a model `const`: NAME=VALUE; repeatable (wins over the run file's `consts:`).
    #[arg(long = "const", value_name = "NAME=VALUE")]
    pub consts: Vec<String>,
    /// Refuse to start a solver on the lifted problem (srpa) whose estimated memory exceeds
    /// BYTES (suffixes K, M, G, T; default: the memory available to this process).
    #[arg(long, value_name = "BYTES", value_parser = mcopt::memory::parse_bytes)]
    pub memory_limit: Option<u64>,
}

/// Run `mcopt train`.
pub fn train(a: &TrainArgs) -> Result<u8, Diags> {
    let run = config::load_run(Path::new(&a.runfile))?;
    if !run.warnings.is_empty() {
        super::warn(&run.warnings);
    }
    // The run file is read once: the session opens with it.
    let input = Inputs {
        plugins: a.plugins.clone(),
        config: Some(a.runfile.clone()),
        consts: a.consts.clone(),
        ..Inputs::default()
    };
    let overrides = TrainOverrides {
        init: a.init.clone(),
        max_iter: a.max_iter,
        seed: a.seed,
        memory_limit: a.memory_limit,
    };
    let plan = TrainPlan::from_run(&run, &input, overrides)?;
    if !plan.warnings.is_empty() {
        super::warn(&plan.warnings);
    }
    let outputs = Outputs::checked(a.out.as_deref(), &run)?;
    let info = plan.solver_info();
    let resumed = if a.resume {
        Some(load_checkpoint(
            &outputs,
            &info.name,
            &plan.options,
            plan.fingerprint,
        )?)
    } else {
        None
    };
    let resume = resumed.as_ref().map(|cp| Resume {
        checkpoint: cp,
        shown: checkpoint_shown(&outputs),
    });
    let x0 = plan.start_point(resume.as_ref())?;
    if let Some(cp) = &resumed {
        refuse_other_seed(a.seed, cp.seed, &outputs)?;
    }
    let identity = RunIdentity {
        solver: info.name.clone(),
        options: plan.options.clone(),
        seed: resumed.as_ref().map_or(plan.seed, |cp| cp.seed),
        fingerprint: plan.fingerprint,
        metrics: info.metrics.clone(),
    };
    let mut progress = Progress::new(plan.max_iter, !a.quiet && !a.json);
    let trained = plan.run(&x0, resume.as_ref(), &mut progress, || {
        let id = &identity;
        let (state, recorder) = match &resumed {
            Some(cp) => (
                cp.state.clone(),
                Recorder::resume(id.clone(), &outputs, run.checkpoint, cp.trace)?,
            ),
            None => {
                train_record::clear_previous(&outputs)?;
                let rec = Recorder::start(id.clone(), &outputs, run.checkpoint)?;
                (RunState::start(x0.clone()), rec)
            }
        };
        Ok(Started {
            state,
            recorder,
            interrupt: Some(mcopt::signals::install()),
        })
    });
    progress.finish();
    let Finished { report, status, .. } = finish(&plan, &outputs, &identity, trained?, None)?;
    if a.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if !a.quiet {
        out_raw!("{}", train_out::summary(&report));
    }
    Ok(match mcopt::signals::received() {
        Some(sig) => mcopt::signals::exit_code(sig),
        None => match status {
            Status::Interrupted => EXIT_INTERRUPTED,
            Status::Diverged => EXIT_DIVERGED,
            _ => EXIT_OK,
        },
    })
}
