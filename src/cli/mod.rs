//! The command-line layer: argument parsing, printing, diagnostics rendering and exit codes.
//! Nothing below this module prints.

/// `println!` that ignores a closed stdout (`mcopt ... | head` must not panic).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($t)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($t)*);
    }};
}

mod commands;
mod session;
mod train;
mod train_out;

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand};
use mcopt::diag::Diags;

/// Success, or the check passed. (Exit code 1, "the check ran and failed", belongs to
/// `stationarity` and `validate`.)
pub const EXIT_OK: u8 = 0;
/// Bad input: parse, shape, missing file, bad data, plugin that fails to load.
pub const EXIT_INPUT: u8 = 2;
/// A bug in mcopt (a panic); reported by the panic hook.
pub const EXIT_INTERNAL: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "mcopt",
    version,
    about = "Nonconvex nonsmooth multicomposite optimization: exact directional derivatives and d-stationarity"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Parse, resolve names and plugins, check shapes; print the multicomposite structure.
    Check {
        model: String,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Evaluate the objective (and the loss on the test split, when there is one).
    Eval {
        model: String,
        /// Point file (YAML); default: the initial values declared in the model.
        #[arg(long)]
        at: Option<String>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// f, f′(x; d) and, with --order 2, f″(x; d), with the number of active kinks.
    Diff {
        model: String,
        #[arg(long)]
        at: Option<String>,
        /// Direction file (YAML, same form as a point; missing names are zero).
        #[arg(long)]
        dir: String,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        order: u8,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Time f, f′, (f′, f″) and ∇f in one process and print the ratios to f.
    Bench {
        model: String,
        #[arg(long)]
        at: Option<String>,
        /// Direction file; default: a seeded random direction.
        #[arg(long)]
        dir: Option<String>,
        /// Seconds to spend measuring each quantity.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Measure at a seeded random point θ ~ N(0, 0.1²) instead of --at or the initial values.
        #[arg(long, value_name = "SEED", conflicts_with = "at")]
        random: Option<u64>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Train: run the run file's solver; progress bar; writes params, trace, plot, report and a
    /// checkpoint. Ctrl-C checkpoints and exits 130; --resume continues bit-identically.
    Train {
        runfile: String,
        /// Start from this point file instead of the run file's `init`.
        #[arg(long, value_name = "POINT")]
        init: Option<String>,
        /// Stop after N iterations in all (overrides the run file's `stop.max_iter`).
        #[arg(long, value_name = "N")]
        max_iter: Option<u64>,
        /// Write params.yaml, trace.csv, plot.svg, report.json and checkpoint.json into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<String>,
        /// Continue from the checkpoint (DIR/checkpoint.json with --out).
        #[arg(long, conflicts_with = "init")]
        resume: bool,
        /// Seed for the initialisation and minibatches (overrides the run file's `seed`).
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// No progress bar, no summary.
        #[arg(long)]
        quiet: bool,
        /// Load a plugin library (path, or a name searched on MCOPT_PLUGIN_PATH); repeatable.
        #[arg(long = "plugin", value_name = "LIB")]
        plugins: Vec<String>,
    },
    /// List loaded plugin functions and solvers, or load and self-test one library.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum PluginsCommand {
    /// Every function and solver with its kind, source library, version and options.
    List {
        #[command(flatten)]
        input: InputArgs,
    },
    /// Load one library (path or name) and run its self-test.
    Check {
        lib: String,
        #[command(flatten)]
        input: InputArgs,
    },
}

/// Options shared by the commands that read a model.
#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Load a plugin library (path, or a name searched on MCOPT_PLUGIN_PATH); repeatable.
    #[arg(long = "plugin", value_name = "LIB")]
    pub plugins: Vec<String>,
    /// Run file (YAML) giving data bindings, plugins and options.
    #[arg(long, value_name = "RUNFILE")]
    pub config: Option<String>,
    /// Bind data: NAME=FILE:COLUMNS (columns as a..b, a list 1,2,5 or names); repeatable.
    #[arg(long = "data", value_name = "BINDING")]
    pub data: Vec<String>,
    /// Training rows (0-based, half-open a..b) of the --data files.
    #[arg(long)]
    pub rows: Option<String>,
    /// Test rows of the --data files.
    #[arg(long)]
    pub test_rows: Option<String>,
    /// |argument − breakpoint| ≤ ztol counts as a kink.
    #[arg(long, default_value_t = 0.0)]
    pub ztol: f64,
}

/// Run the command line; returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_INPUT } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Check { model, input } => commands::check(&model, &input),
        Command::Eval { model, at, input } => commands::eval(&model, at.as_deref(), &input),
        Command::Diff {
            model,
            at,
            dir,
            order,
            input,
        } => commands::diff(&model, at.as_deref(), &dir, order, &input),
        Command::Bench {
            model,
            at,
            dir,
            seconds,
            random,
            input,
        } => commands::bench(
            &model,
            at.as_deref(),
            dir.as_deref(),
            random,
            seconds,
            &input,
        ),
        Command::Train {
            runfile,
            init,
            max_iter,
            out,
            resume,
            seed,
            json,
            quiet,
            plugins,
        } => train::train(&train::TrainArgs {
            runfile,
            init,
            max_iter,
            out,
            resume,
            seed,
            json,
            quiet,
            plugins,
        }),
        Command::Plugins {
            command: PluginsCommand::List { input },
        } => commands::plugins_list(&input),
        Command::Plugins {
            command: PluginsCommand::Check { lib, input },
        } => commands::plugins_check(&lib, &input),
    };
    match result {
        Ok(code) => code,
        Err(diags) => {
            report(&diags);
            EXIT_INPUT
        }
    }
}

/// Render diagnostics to stderr (colours only on a terminal).
pub fn report(diags: &Diags) {
    if std::io::stderr().is_terminal() {
        let handler = miette::GraphicalReportHandler::new();
        for d in diags.iter() {
            let mut out = String::new();
            let _ = handler.render_report(&mut out, d);
            eprint!("{out}");
        }
    } else {
        eprint!("{}", mcopt::diag::render_plain(diags));
    }
}
