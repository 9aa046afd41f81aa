//! The command-line layer: argument parsing, printing, diagnostics rendering and exit codes.
//! Nothing below this module prints.

/// `println!` to stdout; a closed pipe (`mcopt ... | head`) is ignored, any other failure is
/// remembered and reported when the command ends (see [`output::finish`]).
macro_rules! out {
    ($($t:tt)*) => {{
        crate::cli::output::line(format_args!($($t)*));
    }};
}

/// `print!` to stdout, with the same error handling as `out!`.
macro_rules! out_raw {
    ($($t:tt)*) => {{
        crate::cli::output::raw(format_args!($($t)*));
    }};
}

mod commands;
mod output;
mod reformulate;
mod stationarity;
mod sweep;
mod train;
mod train_out;
mod validate;

use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand};
use mcopt::diag::{Diag, Diags};

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
        /// Model file (.mco); may be omitted when the run file (--config) names one.
        model: Option<String>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Evaluate the objective (and the loss on the test split, when there is one).
    Eval {
        /// Model file (.mco); may be omitted when the run file (--config) names one.
        model: Option<String>,
        /// Point file (YAML); default: the initial values declared in the model.
        #[arg(long)]
        at: Option<String>,
        /// Also print ∇f(θ) by parameter (reverse mode; at a kink, the documented selection).
        #[arg(long)]
        gradient: bool,
        #[command(flatten)]
        input: InputArgs,
    },
    /// f, f′(x; d) and, with --order 2, f″(x; d), with the number of active kinks.
    Diff {
        /// Model file (.mco); may be omitted when the run file (--config) names one.
        model: Option<String>,
        /// Point file (YAML); default: the initial values declared in the model.
        #[arg(long)]
        at: Option<String>,
        /// Direction file (YAML, same form as a point; missing names are zero).
        #[arg(long)]
        dir: String,
        /// 1 for f′(x; d), 2 for f′(x; d) and f″(x; d).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        order: u8,
        /// Which objective: p (f over θ), p0 (F over z = (θ, u)), p1 (Θ over z); directions
        /// of p0/p1 may give layer entries (`h[3]: [...]`).
        #[arg(long, value_enum, default_value = "p")]
        form: stationarity::FormArg,
        /// Penalty weight of p1: B for every layer, or NAME=B for one layer group; repeatable.
        #[arg(long = "beta", value_name = "B|NAME=B", allow_negative_numbers = true)]
        beta: Vec<String>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// Time f, f′, (f′, f″) and ∇f in one process and print the ratios to f.
    Bench {
        /// Model file (.mco); may be omitted when the run file (--config) names one.
        model: Option<String>,
        /// Point file (YAML); default: the initial values declared in the model.
        #[arg(long)]
        at: Option<String>,
        /// Direction file; default: a seeded random direction.
        #[arg(long)]
        dir: Option<String>,
        /// Seconds to spend measuring each quantity (finite, > 0).
        #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
        seconds: f64,
        /// Measure at a seeded random point θ ~ N(0, 0.1²) instead of --at or the initial values.
        #[arg(long, value_name = "SEED", conflicts_with = "at")]
        random: Option<u64>,
        #[command(flatten)]
        input: InputArgs,
    },
    /// First- (and second-) order d-stationarity certificate, with a witness when not stationary.
    Stationarity(stationarity::Args),
    /// Show the lifted (P0) or penalized (P1) problem: variables, blocks, penalty thresholds.
    Reformulate(reformulate::Args),
    /// Everything a CI job needs: named checks, JSON or JUnit, and the exit code.
    Validate(validate::Args),
    /// Train: run the run file's solver; progress bar; writes params, trace, plot, report and a
    /// checkpoint. Ctrl-C checkpoints and exits 130; --resume continues bit-identically.
    Train(train::TrainArgs),
    /// Grids of training runs: plan, run (locally or per cluster task), status, collect, job files.
    Sweep {
        #[command(subcommand)]
        command: sweep::SweepCommand,
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
        /// A library path, or a plugin name searched on MCOPT_PLUGIN_PATH.
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
    /// Where the test split's recurrence starts: `carry` (default) continues from the last
    /// training step when the test steps follow it; `restart` starts from the base cases.
    #[arg(long, value_enum, value_name = "STATE")]
    pub test_state: Option<TestStateArg>,
    /// |argument − breakpoint| ≤ ztol counts as a kink (finite, ≥ 0).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub ztol: f64,
    /// Replace the value of a model `const`: NAME=VALUE; repeatable (wins over the run file's `consts:`).
    #[arg(long = "const", value_name = "NAME=VALUE")]
    pub consts: Vec<String>,
}

impl InputArgs {
    /// The typed inputs of a session.
    pub fn inputs(&self) -> mcopt::session::Inputs {
        mcopt::session::Inputs {
            plugins: self.plugins.clone(),
            config: self.config.clone(),
            data: self.data.clone(),
            rows: self.rows.clone(),
            test_rows: self.test_rows.clone(),
            test_state: self.test_state.map(Into::into),
            consts: self.consts.clone(),
        }
    }
}

/// `--test-state`: the command-line form of [`mcopt::config::TestState`].
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStateArg {
    Carry,
    Restart,
}

impl From<TestStateArg> for mcopt::config::TestState {
    fn from(a: TestStateArg) -> Self {
        match a {
            TestStateArg::Carry => mcopt::config::TestState::Carry,
            TestStateArg::Restart => mcopt::config::TestState::Restart,
        }
    }
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
    let json = cli.command.wants_json();
    let result = check_numbers(&cli.command).and_then(|()| run(cli.command));
    let code = match result {
        Ok(code) => code,
        Err(diags) => {
            if json {
                out!("{}", output::diagnostics_json(&diags));
            }
            report(&diags);
            EXIT_INPUT
        }
    };
    match output::finish() {
        Ok(()) => code,
        Err(diags) => {
            report(&diags);
            code.max(EXIT_INPUT)
        }
    }
}

fn run(command: Command) -> Result<u8, Diags> {
    match command {
        Command::Check { model, input } => {
            model_arg(model, &input).and_then(|m| commands::check(&m, &input))
        }
        Command::Eval {
            model,
            at,
            gradient,
            input,
        } => model_arg(model, &input)
            .and_then(|m| commands::eval(&m, at.as_deref(), gradient, &input)),
        Command::Diff {
            model,
            at,
            dir,
            order,
            form,
            beta,
            input,
        } => model_arg(model, &input)
            .and_then(|m| commands::diff(&m, at.as_deref(), &dir, order, (form, &beta), &input)),
        Command::Stationarity(a) => {
            model_arg(a.model.clone(), &a.input).and_then(|m| stationarity::run(&m, &a))
        }
        Command::Reformulate(a) => {
            model_arg(a.model.clone(), &a.input).and_then(|m| reformulate::run(&m, &a))
        }
        Command::Validate(a) => {
            model_arg(a.model.clone(), &a.input).and_then(|m| validate::run(&m, &a))
        }
        Command::Bench {
            model,
            at,
            dir,
            seconds,
            random,
            input,
        } => model_arg(model, &input).and_then(|m| {
            commands::bench(&m, at.as_deref(), dir.as_deref(), random, seconds, &input)
        }),
        Command::Train(a) => train::train(&a),
        Command::Sweep { command } => sweep::run(command),
        Command::Plugins {
            command: PluginsCommand::List { input },
        } => commands::plugins_list(&input),
        Command::Plugins {
            command: PluginsCommand::Check { lib, input },
        } => commands::plugins_check(&lib, &input),
    }
}

impl Command {
    /// The options the model commands share (`train` reads its run file instead).
    fn input(&self) -> Option<&InputArgs> {
        match self {
            Command::Check { input, .. }
            | Command::Eval { input, .. }
            | Command::Diff { input, .. }
            | Command::Bench { input, .. }
            | Command::Plugins {
                command: PluginsCommand::List { input } | PluginsCommand::Check { input, .. },
            } => Some(input),
            Command::Stationarity(a) => Some(&a.input),
            Command::Reformulate(a) => Some(&a.input),
            Command::Validate(a) => Some(&a.input),
            Command::Train(_) | Command::Sweep { .. } => None,
        }
    }

    /// Whether the command was asked for JSON (then failures are JSON on stdout too).
    fn wants_json(&self) -> bool {
        match self {
            Command::Train(a) => a.json,
            Command::Sweep { command } => command.wants_json(),
            other => other.input().is_some_and(|i| i.json),
        }
    }
}

/// What a numeric option must satisfy, as the run file checks its values.
#[derive(Clone, Copy)]
enum NumberRule {
    /// Finite and ≥ 0.
    NonNegative,
    /// Finite and > 0.
    Positive,
}

/// Every numeric option checked before anything runs: `--ztol` finite and ≥ 0,
/// `bench --seconds` finite and > 0.
fn check_numbers(command: &Command) -> Result<(), Diags> {
    let mut diags = Diags::new();
    let mut check = |name: &str, value: f64, rule: NumberRule| {
        let (ok, need) = match rule {
            NumberRule::NonNegative => (value.is_finite() && value >= 0.0, "a finite number ≥ 0"),
            NumberRule::Positive => (value.is_finite() && value > 0.0, "a finite number > 0"),
        };
        if !ok {
            diags.push(
                Diag::new(
                    "mcopt::cli::value",
                    format!("expected `--{name}` to be {need}, found {value}"),
                )
                .in_file("<command line>")
                .help(format!("give `--{name}` as {need}")),
            );
        }
    };
    if let Some(input) = command.input() {
        check("ztol", input.ztol, NumberRule::NonNegative);
    }
    if let Command::Bench { seconds, .. } = command {
        check("seconds", *seconds, NumberRule::Positive);
    }
    diags.finish(())
}

/// The model file: the command line's, the run file's, or both when they are the same file.
fn model_arg(model: Option<String>, input: &InputArgs) -> Result<String, Diags> {
    mcopt::session::model_path(model.as_deref(), &input.inputs())
}

/// Render diagnostics to stderr (colours only on a terminal).
pub fn report(diags: &Diags) {
    use mcopt::diag::{render, RenderStyle};
    let style = if std::io::stderr().is_terminal() {
        RenderStyle::Terminal
    } else {
        RenderStyle::Plain
    };
    eprint!("{}", render(diags, style));
}

/// Render warnings to stderr (the command goes on).
pub fn warn(diags: &Diags) {
    use mcopt::diag::{render_warnings, RenderStyle};
    let style = if std::io::stderr().is_terminal() {
        RenderStyle::Terminal
    } else {
        RenderStyle::Plain
    };
    eprint!("{}", render_warnings(diags, style));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument and option of every command, in `command/path --option` form, that has
    /// no one-line help.
    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && arg.get_help().is_none() {
                out.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() && sub.get_name() != "help" {
                out.push(format!("{path} {} (no about)", sub.get_name()));
            }
            undocumented(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_of_every_command_has_help() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "mcopt", &mut missing);
        assert!(missing.is_empty(), "no help for: {missing:#?}");
    }

    #[test]
    fn the_walk_finds_a_missing_help() {
        let cmd = clap::Command::new("t").arg(clap::Arg::new("x").long("x"));
        let mut missing = Vec::new();
        undocumented(&cmd, "t", &mut missing);
        assert_eq!(missing, vec!["t x".to_owned()]);
    }
}
