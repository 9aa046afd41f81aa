//! SRPA, the authors' sequential regularized piecewise affine algorithm on (P1) (docs/math.md §5),
//! as the standard plugin's solver `srpa`: the exact subproblem solver ([`subproblem`], over the
//! sparse LDLᵀ of [`ldl`]), the iteration ([`iteration`]), and its wrapper on the step-wise
//! solver interface, which needs the host's (P1) structure (`PROBLEM_CAP_STRUCTURE`).
//!
//! The host builds Θ with the β of the run file's `form: {p1: {beta: …}}`, which the final
//! certificate reads too. The options `beta`, `beta1` and `beta2` are the old spelling, still
//! read by the host with a warning: `beta` > 0 gives every layer group that β; otherwise the
//! last layer group (the output layer, `v` in the RNN) gets `beta2` and all others `beta1`.

pub mod iteration;
pub mod ldl;
pub mod schur;
pub mod subproblem;

use iteration::{Srpa, SrpaOptions};
use mcopt_plugin_sdk::abi::{
    OptionDescriptor, OptionType, Str, OPEN_HI, OPEN_LO, PROBLEM_CAP_STRUCTURE,
};
use mcopt_plugin_sdk::p1::{P1Problem, P1Structure, RemoteP1, P1_STRUCTURE_VERSION};
use mcopt_plugin_sdk::{Problem, Signal, Solver, Start, Step};
use subproblem::SubOptions;

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

/// Option indices (the order of [`SrpaSolver::OPTIONS`]; the host reads the betas by name).
const ETA1: usize = 3;
const ETA2: usize = 4;
const RHO1: usize = 5;
const TOL: usize = 6;
const SUB_TOL: usize = 7;

fn table(problem: &Problem<'_>) -> Result<*const std::ffi::c_void, String> {
    problem
        .structure(P1_STRUCTURE_VERSION)
        .ok_or_else(|| "srpa needs the (P1) structure of the problem (layout version 1)".into())
}

fn remote<'a>(problem: &Problem<'a>) -> Result<RemoteP1<'a>, String> {
    let ptr = table(problem)?;
    // SAFETY: the host published a P1Table of this version, valid while the problem lives.
    Ok(unsafe { RemoteP1::new(ptr) })
}

fn options(o: &[f64]) -> SrpaOptions {
    SrpaOptions {
        eta1: o[ETA1],
        eta2: o[ETA2],
        rho1: o[RHO1],
        tol: o[TOL],
        sub: SubOptions {
            tol: o[SUB_TOL],
            ..SubOptions::default()
        },
        ..SrpaOptions::default()
    }
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
        ];
    const METRICS: &'static [Str] = &[
        Str::new("objective"),
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
        let mut p1 = remote(problem)?;
        let mut z = vec![0.0; p1.structure().n_z];
        p1.complete(start.x, &mut z)?;
        let run = Srpa::new(&mut p1, z, options(start.options))?;
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
        metrics: &mut [f64],
    ) -> Result<Step, String> {
        let ptr = table(problem)?;
        let structure = self
            .structure
            .take()
            .ok_or("srpa: the structure is missing")?;
        // SAFETY: the host published a P1Table of this version, valid while the problem lives;
        // `structure` was read from it at init.
        let mut p1 = unsafe { RemoteP1::with_structure(ptr, structure) };
        let m = self.run.step(&mut p1);
        self.structure = Some(p1.into_structure());
        let m = m?;
        let n = x.len().min(self.run.z.len());
        x[..n].copy_from_slice(&self.run.z[..n]);
        let values = [
            m.objective,
            m.feasibility,
            m.predicted_decrease,
            m.step_norm,
            m.rho,
            if m.accepted { 1.0 } else { 0.0 },
            m.ties as f64,
            m.newton_steps as f64,
            m.rejected_in_a_row as f64,
        ];
        for (slot, v) in metrics.iter_mut().zip(values) {
            *slot = v;
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
        let mut p1 = remote(problem)?;
        let run = Srpa::restore(&mut p1, bytes, options(start.options))?;
        Ok(SrpaSolver {
            stop: None,
            run,
            structure: Some(p1.into_structure()),
        })
    }
}
