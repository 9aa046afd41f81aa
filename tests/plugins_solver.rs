//! The solver interface, exercised with the standard plugin's gradient descent: a quadratic with a
//! known minimizer within an evaluation budget, the observer stopping a run, option checking,
//! and host callback errors surfacing as solver errors.

use mcopt::registry::Registry;
use mcopt::registry::{ObserverAction, SolverProblem, SolverStatus};

/// f(x) = Σ c_i (x_i − m_i)², minimizer m, minimum 0.
struct Quadratic {
    c: Vec<f64>,
    m: Vec<f64>,
    evaluations: usize,
    fail_after: Option<usize>,
}

impl Quadratic {
    fn new() -> Quadratic {
        Quadratic {
            c: vec![1.0, 0.5, 2.0, 0.25],
            m: vec![1.0, -2.0, 0.5, 3.0],
            evaluations: 0,
            fail_after: None,
        }
    }

    fn count(&mut self) -> Result<(), String> {
        self.evaluations += 1;
        match self.fail_after {
            Some(k) if self.evaluations > k => Err("the model evaluation overflowed".to_string()),
            _ => Ok(()),
        }
    }
}

impl SolverProblem for Quadratic {
    fn dim(&self) -> usize {
        self.c.len()
    }

    fn value(&mut self, x: &[f64]) -> Result<f64, String> {
        self.count()?;
        Ok(x.iter()
            .zip(&self.c)
            .zip(&self.m)
            .map(|((x, c), m)| c * (x - m) * (x - m))
            .sum())
    }

    fn directional(&mut self, x: &[f64], d: &[f64], second: bool) -> Result<[f64; 3], String> {
        let f = self.value(x)?;
        let f1 = (0..x.len())
            .map(|i| 2.0 * self.c[i] * (x[i] - self.m[i]) * d[i])
            .sum();
        let f2 = if second {
            (0..x.len()).map(|i| 2.0 * self.c[i] * d[i] * d[i]).sum()
        } else {
            0.0
        };
        Ok([f, f1, f2])
    }

    fn gradient(&mut self, x: &[f64], g: &mut [f64]) -> Result<f64, String> {
        for i in 0..x.len() {
            g[i] = 2.0 * self.c[i] * (x[i] - self.m[i]);
        }
        self.value(x)
    }
}

#[test]
fn gradient_descent_finds_the_minimizer_of_a_quadratic_within_budget() {
    let r = Registry::with_standard();
    let gd = r.solver("gd").expect("the standard plugin ships gd");
    let info = r.solver_info(gd);
    let names: Vec<&str> = info.options.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["max_iter", "step", "tol"]);
    let options = info
        .resolve_options(&[("step".to_string(), 0.5), ("tol".to_string(), 1e-9)])
        .unwrap();
    assert_eq!(options, vec![1000.0, 0.5, 1e-9]);
    let mut p = Quadratic::new();
    let mut x = vec![0.0; 4];
    let mut seen = 0;
    let out = r
        .run_solver(gd, &mut p, &options, &mut x, &mut |_| {
            seen += 1;
            ObserverAction::Continue
        })
        .expect("runs");
    assert_eq!(out.status, SolverStatus::Converged);
    for (xi, mi) in x.iter().zip([1.0, -2.0, 0.5, 3.0]) {
        assert!((xi - mi).abs() < 1e-8, "{x:?}");
    }
    assert!(out.value < 1e-15);
    assert!(p.evaluations <= 400, "{} evaluations", p.evaluations);
    assert_eq!(out.evaluations as usize, p.evaluations);
    assert_eq!(seen as u64, out.iterations);
}

#[test]
fn the_observer_can_stop_a_run_and_max_iter_is_a_status() {
    let r = Registry::with_standard();
    let gd = r.solver("gd").unwrap();
    let options = r.solver_info(gd).resolve_options(&[]).unwrap();
    let mut x = vec![0.0; 4];
    let out = r
        .run_solver(gd, &mut Quadratic::new(), &options, &mut x, &mut |p| {
            if p.iteration >= 3 {
                ObserverAction::Stop
            } else {
                ObserverAction::Continue
            }
        })
        .unwrap();
    assert_eq!(
        (out.status, out.iterations),
        (SolverStatus::StoppedByObserver, 3)
    );
    let options = r
        .solver_info(gd)
        .resolve_options(&[("max_iter".to_string(), 2.0)])
        .unwrap();
    let out = r
        .run_solver(gd, &mut Quadratic::new(), &options, &mut x, &mut |_| {
            ObserverAction::Continue
        })
        .unwrap();
    assert_eq!(
        (out.status, out.iterations),
        (SolverStatus::MaxIterations, 2)
    );
}

#[test]
fn options_are_checked_against_the_schema() {
    let r = Registry::with_standard();
    let info = r.solver_info(r.solver("gd").unwrap());
    let d = info
        .resolve_options(&[("stepsize".to_string(), 1.0), ("max_iter".to_string(), 2.5)])
        .unwrap_err();
    assert_eq!(d.len(), 2);
    assert!(d.0[0].message.contains("no option `stepsize`"));
    assert!(d.0[0]
        .help
        .as_deref()
        .unwrap()
        .contains("max_iter, step, tol"));
    assert_eq!(
        d.0[1].message,
        "option `max_iter` of solver `gd` expected an integer, found 2.5"
    );
}

#[test]
fn a_failing_host_callback_is_a_solver_error_with_the_host_message() {
    let r = Registry::with_standard();
    let gd = r.solver("gd").unwrap();
    let options = r.solver_info(gd).resolve_options(&[]).unwrap();
    let mut p = Quadratic::new();
    p.fail_after = Some(3);
    let e = r
        .run_solver(gd, &mut p, &options, &mut [0.0; 4], &mut |_| {
            ObserverAction::Continue
        })
        .unwrap_err();
    assert_eq!(e.solver, "gd");
    assert!(
        e.to_string().contains("the model evaluation overflowed"),
        "{e}"
    );
    assert_eq!(mcopt::diag::Diag::from(e).code, "mcopt::plugin::solver");
}
