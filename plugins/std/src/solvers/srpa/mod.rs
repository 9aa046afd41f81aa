//! SRPA, the authors' sequential regularized piecewise affine algorithm on (P1) (docs/math.md §5),
//! as the standard plugin's solver `srpa`: the exact subproblem solver ([`subproblem`], over the
//! sparse LDLᵀ of [`ldl`]), the iteration ([`iteration`]), and its wrapper on the step-wise
//! solver interface, which needs the host's (P1) structure (`PROBLEM_CAP_STRUCTURE`).
//!
//! The host builds Θ with the β of the run file's `form: {p1: {beta: …}}`, which the final
//! certificate reads too. The options `beta`, `beta1` and `beta2` are the old spelling, still
//! read by the host with a warning: `beta` > 0 gives every layer group that β; otherwise the
//! last layer group (the output layer, `v` in the RNN) gets `beta2` and all others `beta1`.

pub mod bound_columns;
mod helper;
pub mod instance;
pub mod iteration;
pub mod kronecker;
pub mod ldl;
pub mod newton_cg;
pub mod operator;
pub mod schur;
pub mod sparse;
pub mod subproblem;

use iteration::{Srpa, SrpaOptions};
use mcopt_plugin_sdk::abi::{
    OptionDescriptor, OptionType, Str, OPEN_HI, OPEN_LO, PROBLEM_CAP_STRUCTURE,
};
use mcopt_plugin_sdk::p1::{P1Problem, P1Structure};
use mcopt_plugin_sdk::{Metrics, Options, Problem, Signal, Solver, Start, Step, OBJECTIVE_METRIC};
use subproblem::{Method, SubOptions};

/// The solver `srpa`; see the module docs.
pub struct SrpaSolver {
    run: Srpa,
    /// The (P1) pattern read from the host's table at init; lent to each step's view of the
    /// table instead of copying it again (`None` only while a step holds it).
    structure: Option<P1Structure>,
    /// Why the last step ended the run (for [`Solver::stop_reason`]); not saved: a resumed run
    /// goes on from a step that did not end it.
    stop: Option<String>,
}

/// The values of the option `subproblem`, in the order of [`method`].
const SUBPROBLEM_PATHS: &[Str] = &[
    Str::new("auto"),
    Str::new("direct"),
    Str::new("schur"),
    Str::new("matrix_free"),
];

/// The subproblem path an option value names.
fn method(name: &str) -> Method {
    match name {
        "direct" => Method::Direct,
        "schur" => Method::Schur,
        "matrix_free" => Method::MatrixFree,
        _ => Method::Auto,
    }
}

fn options(o: Options<'_>) -> Result<SrpaOptions, String> {
    Ok(SrpaOptions {
        eta1: o.number("eta1")?,
        eta2: o.number("eta2")?,
        rho1: o.number("rho1")?,
        tol: o.number("tol")?,
        sub: SubOptions {
            tol: o.number("sub_tol")?,
            ..SubOptions::default()
        },
        method: method(o.choice("subproblem")?),
    })
}

impl Solver for SrpaSolver {
    const NAME: &'static str = "srpa";
    const DESCRIPTION: &'static str =
        "sequential regularized piecewise affine algorithm on the l1-penalized lifted problem (P1)";
    const OPTIONS: &'static [OptionDescriptor] =
        &[
            OptionDescriptor::new(
                "beta",
                OptionType::Real,
                0.0,
                "one penalty weight for every layer group (0: use beta1 and beta2)",
            )
            .nonnegative(),
            OptionDescriptor::new(
                "beta1",
                OptionType::Real,
                1.0,
                "penalty weight of the hidden layer groups",
            )
            .positive(),
            OptionDescriptor::new(
                "beta2",
                OptionType::Real,
                1.0,
                "penalty weight of the output layer group (the last one)",
            )
            .positive(),
            OptionDescriptor::new(
                "eta1",
                OptionType::Real,
                0.9,
                "accept when the decrease is at least eta1 rho / 2 |s|^2",
            )
            .range(0.0, 1.0, OPEN_LO | OPEN_HI),
            OptionDescriptor::new(
                "eta2",
                OptionType::Real,
                1.3,
                "rho grows by this factor after a rejected step",
            )
            .range(1.0, iteration::ETA2_MAX, OPEN_LO),
            OptionDescriptor::new("rho1", OptionType::Real, 0.5, "initial proximal weight rho")
                .range(0.0, iteration::RHO1_MAX, OPEN_LO),
            OptionDescriptor::new(
                "tol",
                OptionType::Real,
                1e-10,
                "converged when the predicted decrease is at most tol",
            )
            .range(0.0, 1.0, OPEN_HI),
            OptionDescriptor::new(
                "sub_tol",
                OptionType::Real,
                1e-10,
                "relative tolerance of the subproblem (duality gap and optimality residual)",
            )
            .range(0.0, 1.0, OPEN_LO | OPEN_HI),
            OptionDescriptor::choice(
                "subproblem",
                SUBPROBLEM_PATHS,
                0,
                "how the subproblems' Newton systems are solved: auto (by size, and matrix_free \
                 when the host does not store J), direct, schur or matrix_free",
            ),
        ];
    /// `objective` is Θ(z) of (P1), the quantity SRPA decreases (not f(θ)).
    const METRICS: &'static [Str] = &[
        Str::new(OBJECTIVE_METRIC),
        Str::new("feasibility"),
        Str::new("predicted_decrease"),
        Str::new("step_norm"),
        Str::new("rho"),
        Str::new("accepted"),
        Str::new("ties"),
        Str::new("newton_steps"),
        Str::new("rejected_in_a_row"),
    ];
    const REQUIRES: u64 = PROBLEM_CAP_STRUCTURE;

    fn init(problem: &mut Problem<'_>, start: Start<'_>) -> Result<Self, String> {
        let mut p1 = problem.p1()?;
        let mut z = vec![0.0; p1.structure().n_z];
        p1.complete(start.x, &mut z)?;
        let run = Srpa::new(&mut p1, z, options(start.options)?)?;
        Ok(SrpaSolver {
            stop: None,
            run,
            structure: Some(p1.into_structure()),
        })
    }

    fn step(
        &mut self,
        problem: &mut Problem<'_>,
        x: &mut [f64],
        metrics: &mut Metrics<'_>,
    ) -> Result<Step, String> {
        let structure = self
            .structure
            .take()
            .ok_or("srpa: the structure is missing")?;
        let mut p1 = problem.p1_reusing(structure)?;
        let m = self.run.step(&mut p1);
        self.structure = Some(p1.into_structure());
        let m = m?;
        let n = x.len().min(self.run.z.len());
        x[..n].copy_from_slice(&self.run.z[..n]);
        let values = [
            (OBJECTIVE_METRIC, m.objective),
            ("feasibility", m.feasibility),
            ("predicted_decrease", m.predicted_decrease),
            ("step_norm", m.step_norm),
            ("rho", m.rho),
            ("accepted", if m.accepted { 1.0 } else { 0.0 }),
            ("ties", m.ties as f64),
            ("newton_steps", m.newton_steps as f64),
            ("rejected_in_a_row", m.rejected_in_a_row as f64),
        ];
        for (name, v) in values {
            metrics.set(name, v)?;
        }
        let (signal, stop) = if !m.objective.is_finite() {
            (Signal::Diverged, Some("Θ is not finite".to_string()))
        } else if let Some(stall) = m.stall {
            (
                Signal::Stalled,
                Some(format!(
                    "{stall} (rho {:e}, {} rejected in a row)",
                    m.rho, m.rejected_in_a_row
                )),
            )
        } else if m.predicted_decrease <= self.run.opts.tol && m.sub_converged {
            (
                Signal::Converged,
                Some(format!(
                    "predicted decrease {:e} ≤ tol {:e}, subproblem solved",
                    m.predicted_decrease, self.run.opts.tol
                )),
            )
        } else {
            (Signal::Continue, None)
        };
        self.stop = stop;
        Ok(Step {
            signal,
            stationarity: m.predicted_decrease,
        })
    }

    fn stop_reason(&self) -> Option<String> {
        self.stop.clone()
    }

    fn save(&self, out: &mut Vec<u8>) {
        self.run.save(out);
    }

    fn restore(problem: &mut Problem<'_>, start: Start<'_>, bytes: &[u8]) -> Result<Self, String> {
        let mut p1 = problem.p1()?;
        let run = Srpa::restore(&mut p1, bytes, options(start.options)?)?;
        Ok(SrpaSolver {
            stop: None,
            run,
            structure: Some(p1.into_structure()),
        })
    }
}
