//! `mcopt train RUNFILE`: check everything (run file, model, data, solver, options, starting
//! point, checkpoint) before anything runs or is written, run the executor with a progress bar,
//! periodic checkpoints and the stop signals (SIGINT, SIGTERM, SIGHUP: `mcopt::signals`), then
//! write the outputs atomically (see `train_out.rs` and `train_record.rs`).

use std::path::Path;

use mcopt::config::{self, RunFile, Split};
use mcopt::diag::{Diag, Diags};
use mcopt::eval::EvalOptions;
use mcopt::forms::{self, p1host::P1Host, Betas, Lifted};
use mcopt::graph::Graph;
use mcopt::registry::SolverStart;
use mcopt::solve::{Checkpoint, Executor, Fingerprint, GraphProblem, RunState, Status, StopRules};
use mcopt_plugin_sdk::abi::PROBLEM_CAP_STRUCTURE;
use mcopt_plugin_sdk::p1::Published;

use super::train_out::{self, Outputs, Progress};
use super::train_record::{self, Recorder, RunIdentity};
use super::EXIT_OK;
use mcopt::session::train::{
    batcher, beta_span, final_certificate, form_betas, full_data_only, model_identity, p1_memory,
    solver_and_options, start_point, thread_split,
};
use mcopt::session::{Inputs, Session};

/// Exit code of a run stopped by Ctrl-C (after writing everything); SIGTERM and SIGHUP give
/// 128 + their number (`mcopt::signals::exit_code`).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code of a run that diverged (its outputs are written).
pub const EXIT_DIVERGED: u8 = 1;
/// Iterations when neither `--max-iter` nor the run file's `stop.max_iter` says.
pub const DEFAULT_MAX_ITER: u64 = 100;

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
    let model_path = run.model.to_string_lossy().into_owned();
    let session = Session::open(&model_path, &input, Some(&run))?;
    let (id, options, beta_by_layer) = solver_and_options(&session.registry, &run)?;
    let outputs = Outputs::checked(a.out.as_deref(), &run)?;
    let seed = a.seed.unwrap_or(run.seed);
    let max_iter = a
        .max_iter
        .or(run.stop.max_iter.map(|m| m as u64))
        .unwrap_or(DEFAULT_MAX_ITER);
    let fingerprint = Fingerprint::of(
        &model_identity(&session, &a.consts),
        run.source.text.as_bytes(),
    );
    let train_graph = match session.graph(Split::Train)? {
        Some(g) => g,
        None => {
            return Err(
                Diag::new("mcopt::data::unbound", "no training data are bound")
                    .in_file(&a.runfile)
                    .into(),
            )
        }
    };
    let test_graph = session.graph(Split::Test)?;
    let info = session.registry.solver_info(id);
    full_data_only(&run, info)?;
    let resumed = if a.resume {
        Some(load_checkpoint(
            &outputs,
            &info.name,
            &options,
            fingerprint,
        )?)
    } else {
        None
    };
    let x0 = match &resumed {
        Some(cp) => cp.state.x.clone(),
        None => start_point(&session, &run, a.init.as_deref(), seed)?,
    };
    if let Some(cp) = &resumed {
        refuse_other_seed(a.seed, cp.seed, &outputs)?;
    }
    let seed = resumed.as_ref().map_or(seed, |cp| cp.seed);
    let opts = EvalOptions { ztol: run.ztol };
    let halves = thread_split(&session, &run, &train_graph)?;
    let mut problem = GraphProblem::new(&session.registry, &train_graph, test_graph.as_ref(), opts)
        .map_err(|e| Diags::from(Diag::new("mcopt::train::eval", e).in_file(&model_path)))?;
    if let Some(batcher) = batcher(&session, &run, seed)? {
        problem = problem.with_batches(batcher);
    } else if !halves.is_empty() {
        let parts: Vec<(&Graph, f64)> = halves.iter().map(|(g, w)| (g, *w)).collect();
        problem = problem
            .with_split(&parts)
            .map_err(|e| Diags::from(Diag::new("mcopt::train::eval", e).in_file(&model_path)))?;
    }
    // SRPA and other solvers that need (P1): the lifted problem with the form's β, which the
    // final certificate in (P1) reads too.
    let needs_p1 = info.requires & PROBLEM_CAP_STRUCTURE != 0;
    let certify_p1 = run.validate.form == config::ProblemForm::P1;
    let lifted = (needs_p1 || certify_p1).then(|| forms::lift(&train_graph));
    let names: Vec<String> = info.options.iter().map(|o| o.name.clone()).collect();
    let betas = match &lifted {
        Some(l) => Some(p1_betas(
            l,
            &names,
            &options,
            &beta_by_layer,
            &run,
            needs_p1,
        )?),
        None => None,
    };
    let penalized = lifted
        .as_ref()
        .zip(betas.as_ref())
        .filter(|_| needs_p1)
        .map(|(l, b)| l.penalized(b));
    let lifted_p1 = lifted.as_ref().filter(|_| needs_p1);
    if let Some(l) = lifted_p1 {
        p1_memory(l, a.memory_limit, &model_path)?;
    }
    let mut host = match (lifted_p1, &penalized, &betas) {
        (Some(l), Some(pen), Some(b)) => Some(
            P1Host::new(l, pen, b, &train_graph, &session.registry).map_err(|e| {
                Diags::from(Diag::new("mcopt::train::p1", e.to_string()).in_file(&model_path))
            })?,
        ),
        _ => None,
    };
    let published = host.as_mut().map(Published::new);
    if let Some(p) = &published {
        problem.set_structure(p.table());
    }
    let start = SolverStart {
        options: &options,
        x: &x0,
        seed,
    };
    let instance = match &resumed {
        Some(cp) => session
            .registry
            .restore_solver(id, &mut problem, start, &cp.solver_state)
            .map_err(|e| Diags::from(Diag::from(e).in_file(checkpoint_shown(&outputs)))),
        None => session
            .registry
            .init_solver(id, &mut problem, start)
            .map_err(|e| Diags::from(Diag::from(e).in_file(&a.runfile))),
    };
    let mut instance = instance?;
    let identity = RunIdentity {
        solver: info.name.clone(),
        options: options.clone(),
        seed,
        fingerprint,
        metrics: info.metrics.clone(),
    };
    let (mut state, mut recorder) = match resumed {
        Some(cp) => (
            cp.state,
            Recorder::resume(identity.clone(), &outputs, run.checkpoint, cp.trace)?,
        ),
        None => {
            train_record::clear_previous(&outputs)?;
            let rec = Recorder::start(identity.clone(), &outputs, run.checkpoint)?;
            (RunState::start(x0), rec)
        }
    };
    let stop_flag = mcopt::signals::install();
    let mut progress = Progress::new(max_iter, !a.quiet && !a.json);
    let mut ex = Executor {
        stop: StopRules {
            max_iter,
            tol: run.stop.tol,
            max_seconds: run.stop.max_seconds,
        },
        interrupt: Some(stop_flag),
        observers: vec![&mut progress, &mut recorder],
        reason: None,
    };
    let status = ex.run(&mut problem, &mut instance, &mut state);
    let reason = ex.reason.take();
    drop(ex);
    progress.finish();
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            train_record::write_failure(&outputs, &mut recorder, &state, &message)?;
            return Err(Diag::new("mcopt::train::run", message)
                .in_file(&a.runfile)
                .into());
        }
    };
    recorder.flush()?;
    let solver_state = instance
        .save()
        .map_err(|e| Diags::from(Diag::from(e).in_file(&a.runfile)))?;
    let checkpoint = identity.checkpoint(&state, solver_state, recorder.mark());
    let certify = |params: &Path| final_certificate(&session, &run, status, params, betas.clone());
    let report = train_out::write_all(
        &outputs,
        &session,
        &checkpoint,
        (&recorder.curves, recorder.steps()),
        (status, reason.as_deref()),
        &certify,
    )?;
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

/// `--resume` continues with the checkpoint's seed; another `--seed` is refused.
fn refuse_other_seed(given: Option<u64>, saved: u64, outputs: &Outputs) -> Result<(), Diags> {
    match given {
        Some(s) if s != saved => {
            let shown = checkpoint_shown(outputs);
            Err(Diag::new(
                "mcopt::train::resume",
                format!("`--seed {s}` conflicts with the checkpoint's seed {saved}"),
            )
            .in_file(shown)
            .help(format!("a resumed run keeps its seed: omit --seed (or give --seed {saved}), or start again without --resume"))
            .into())
        }
        _ => Ok(()),
    }
}

/// The checkpoint's path as shown in diagnostics.
fn checkpoint_shown(outputs: &Outputs) -> String {
    outputs
        .checkpoint
        .as_ref()
        .map_or(String::new(), |p| p.display().to_string())
}

/// β of (P1), the form's: the run file's `form: {p1: {beta: …}}` (one number for every layer
/// group, or numbers by layer name; a group not named gets 1). For a solver that minimizes
/// (P1) (`solver_p1`), the old spelling in its options is still read, with a warning showing
/// the new one: `beta` > 0 for every layer group, otherwise `beta2` for the last group (the
/// output layer) and `beta1` for the others, then `beta` as a mapping by layer name. Both
/// spellings with different values are an error at the option. A name that is not a lifted
/// layer is an error where it is written.
fn p1_betas(
    lifted: &Lifted,
    names: &[String],
    values: &[f64],
    by_layer: &[(String, f64)],
    run: &RunFile,
    solver_p1: bool,
) -> Result<Betas, Diags> {
    const OLD: [&str; 3] = ["beta", "beta1", "beta2"];
    let spec = run.solver.as_ref();
    let old_key = spec
        .filter(|_| solver_p1)
        .and_then(|s| OLD.iter().find(|k| s.options.contains_key(**k)));
    let groups = lifted.layout.group_names();
    let new = match &run.form.p1 {
        Some(p1) => Some(form_betas(lifted, &p1.beta, p1.span, run)?),
        None => None,
    };
    let Some(key) = old_key else {
        return Ok(new.unwrap_or_else(|| Betas::uniform(1.0)));
    };
    let get = |n: &str, d: f64| names.iter().position(|x| x == n).map_or(d, |i| values[i]);
    let beta = get("beta", 0.0);
    let mut betas = if beta > 0.0 {
        Betas::uniform(beta)
    } else {
        let mut betas = Betas::uniform(get("beta1", 1.0));
        if let Some(last) = lifted.layout.groups.last() {
            betas.per_group.insert(last.name.clone(), get("beta2", 1.0));
        }
        betas
    };
    let mut diags = Diags::new();
    for (name, beta) in by_layer {
        if lifted.layout.group(name).is_some() {
            betas.per_group.insert(name.clone(), *beta);
        } else {
            diags.push(
                Diag::new(
                    "mcopt::train::option",
                    format!("`beta` names `{name}`, which is not a lifted layer of the model"),
                )
                .at(&run.source, beta_span(run), "this option")
                .help(format!(
                    "{}the lifted layers are {}",
                    mcopt::text::did_you_mean(name, &groups),
                    groups.join(", ")
                )),
            );
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let written = |b: &Betas| {
        let first = groups.first().map_or(b.default, |g| b.of(g));
        if groups.iter().all(|g| b.of(g) == first) {
            config::BetaSpec::All(first)
        } else {
            config::BetaSpec::ByLayer(groups.iter().map(|g| (g.to_string(), b.of(g))).collect())
        }
    };
    let old = config::P1Beta {
        beta: written(&betas),
        span: spec
            .and_then(|s| s.option_spans.get(*key).copied())
            .unwrap_or_else(|| run.source.line_span(1)),
    };
    let what = "the solver option `beta`, `beta1` or `beta2`";
    match (new, &run.form.p1) {
        (Some(new), Some(p1)) if groups.iter().any(|g| new.of(g) != betas.of(g)) => {
            let shown = config::P1Beta {
                beta: written(&new),
                span: p1.span,
            };
            Err(config::beta_conflict(&run.source, &old, what, &shown).into())
        }
        (Some(new), _) => {
            super::warn(&config::beta_deprecated(&run.source, &old, what).into());
            Ok(new)
        }
        (None, _) => {
            super::warn(&config::beta_deprecated(&run.source, &old, what).into());
            Ok(betas)
        }
    }
}

/// The solver's id, its option values (in its schema's order) and the β per layer name given
/// as a mapping in `beta` (empty otherwise).
/// The checkpoint to resume from, refused when it belongs to other inputs.
fn load_checkpoint(
    outputs: &Outputs,
    solver: &str,
    options: &[f64],
    fp: Fingerprint,
) -> Result<Checkpoint, Diags> {
    let Some(path) = &outputs.checkpoint else {
        return Err(Diag::new("mcopt::train::resume", "--resume needs a checkpoint, and none is configured")
            .help("give --out DIR (the checkpoint is DIR/checkpoint.json) or `output: {checkpoint: FILE}` in the run file")
            .into());
    };
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::train::resume",
                format!("cannot read the checkpoint: {e}"),
            )
            .in_file(&shown),
        )
    })?;
    let cp = Checkpoint::from_bytes(&bytes).map_err(|e| {
        Diags::from(Diag::new("mcopt::train::checkpoint", e.to_string()).in_file(&shown))
    })?;
    let refuse = |what: &str| -> Diags {
        Diag::new("mcopt::train::resume", format!("the checkpoint was written for a different {what}"))
            .in_file(&shown)
            .help("resume only with the model, run file, solver and options that wrote it; start again without --resume")
            .into()
    };
    if cp.fingerprint.model != fp.model {
        return Err(refuse("model (its text changed)"));
    }
    if cp.fingerprint.run != fp.run {
        return Err(refuse("run file (its text changed)"));
    }
    let same_options = cp.options.len() == options.len()
        && cp
            .options
            .iter()
            .zip(options)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    if cp.solver != solver || !same_options {
        return Err(refuse("solver or solver options"));
    }
    Ok(cp)
}
