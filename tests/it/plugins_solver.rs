//! The step-wise solver interface, exercised with the standard plugin's `gd` and `adam` under
//! the executor: a quadratic with a known minimizer within an evaluation budget, stop rules and
//! the interrupt flag, option checking (unknown, wrong type, out of range), host callback errors
//! surfacing as solver errors, and save/restore continuing bit for bit.

use std::sync::atomic::{AtomicBool, Ordering};

use mcopt::registry::{OptionValue, Order, Registry, SolverProblem, SolverStart};
use mcopt::solve::{Executor, Measures, Observer, Row, RunState, Status, StopRules, TrainProblem};

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

    fn directional(&mut self, x: &[f64], d: &[f64], order: Order) -> Result<[f64; 3], String> {
        let f = self.value(x)?;
        let f1 = (0..x.len())
            .map(|i| 2.0 * self.c[i] * (x[i] - self.m[i]) * d[i])
            .sum();
        let f2 = if order == Order::Two {
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

impl TrainProblem for Quadratic {
    fn measure(&mut self, x: &[f64]) -> Result<Measures, String> {
        let f = self.value(x)?;
        self.evaluations -= 1; // measurements are the host's, not the solver's
        Ok(Measures {
            objective: f,
            train_loss: f,
            test_loss: None,
        })
    }
}

fn num(name: &str, v: f64) -> (String, OptionValue) {
    (name.to_string(), OptionValue::Number(v))
}

fn run(
    r: &Registry,
    solver: &str,
    options: &[(String, OptionValue)],
    stop: StopRules,
    p: &mut Quadratic,
    state: &mut RunState,
    rows: &mut Rows,
) -> Status {
    let id = r.solver(solver).unwrap();
    let options = r.solver_info(id).resolve_options(options).unwrap();
    let start = SolverStart {
        options: &options,
        x: &state.x.clone(),
        seed: 1,
    };
    let mut inst = r.init_solver(id, p, start).unwrap();
    let mut ex = Executor {
        stop,
        interrupt: None,
        observers: vec![rows],
        reason: None,
    };
    ex.run(p, &mut inst, state).unwrap()
}

/// Keeps every row (the executor keeps only the newest).
#[derive(Default)]
struct Rows(Vec<Row>);

impl Observer for Rows {
    fn row(&mut self, row: &Row) {
        self.0.push(row.clone());
    }
}

#[test]
fn gradient_descent_finds_the_minimizer_of_a_quadratic_within_budget() {
    let r = Registry::with_standard();
    let gd = r.solver("gd").expect("the standard plugin ships gd");
    let info = r.solver_info(gd);
    let names: Vec<&str> = info.options.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["lr", "momentum", "nesterov", "clip", "armijo"]);
    assert_eq!(info.metrics, vec!["grad_norm", "step"]);
    let opts = [
        num("lr", 1.0),
        ("armijo".to_string(), OptionValue::Bool(true)),
    ];
    let mut p = Quadratic::new();
    let mut state = RunState::start(vec![0.0; 4]);
    let stop = StopRules {
        max_iter: 1000,
        tol: Some(1e-9),
        max_seconds: None,
    };
    let mut rows = Rows::default();
    let status = run(&r, "gd", &opts, stop, &mut p, &mut state, &mut rows);
    assert_eq!(status, Status::Converged);
    for (xi, mi) in state.x.iter().zip([1.0, -2.0, 0.5, 3.0]) {
        assert!((xi - mi).abs() < 1e-8, "{:?}", state.x);
    }
    assert!(state.last.as_ref().unwrap().objective < 1e-15);
    assert!(p.evaluations <= 400, "{} evaluations", p.evaluations);
    assert_eq!(state.evaluations.total() as usize, p.evaluations);
    assert_eq!(rows.0.len() as u64, state.iter + 1);
    assert_eq!(rows.0.last(), state.last.as_ref());
}

#[test]
fn nesterov_and_adam_decrease_the_objective_and_max_iter_is_a_status() {
    let r = Registry::with_standard();
    for (solver, opts) in [
        (
            "gd",
            vec![
                num("lr", 0.1),
                num("momentum", 0.9),
                ("nesterov".into(), OptionValue::Bool(true)),
            ],
        ),
        ("adam", vec![num("lr", 0.05)]),
    ] {
        let mut state = RunState::start(vec![0.0; 4]);
        let stop = StopRules {
            max_iter: 30,
            ..StopRules::default()
        };
        let mut rows = Rows::default();
        let status = run(
            &r,
            solver,
            &opts,
            stop,
            &mut Quadratic::new(),
            &mut state,
            &mut rows,
        );
        assert_eq!((status, state.iter), (Status::MaxIter, 30), "{solver}");
        let (first, last) = (rows.0[0].objective, rows.0[30].objective);
        assert!(last < 0.5 * first, "{solver}: {first} → {last}");
    }
}

struct StopAfter<'a>(u64, &'a AtomicBool);

impl Observer for StopAfter<'_> {
    fn row(&mut self, row: &Row) {
        if row.iter >= self.0 {
            self.1.store(true, Ordering::SeqCst);
        }
    }
}

#[test]
fn the_interrupt_flag_finishes_the_iteration_and_stops() {
    let r = Registry::with_standard();
    let id = r.solver("adam").unwrap();
    let options = r.solver_info(id).resolve_options(&[]).unwrap();
    let mut p = Quadratic::new();
    let mut state = RunState::start(vec![0.0; 4]);
    let flag = AtomicBool::new(false);
    let mut obs = StopAfter(3, &flag);
    let mut inst = r
        .init_solver(
            id,
            &mut p,
            SolverStart {
                options: &options,
                x: &[0.0; 4],
                seed: 0,
            },
        )
        .unwrap();
    let mut ex = Executor {
        stop: StopRules {
            max_iter: 100,
            ..StopRules::default()
        },
        interrupt: Some(&flag),
        observers: vec![&mut obs],
        reason: None,
    };
    let status = ex.run(&mut p, &mut inst, &mut state).unwrap();
    assert_eq!((status, state.iter), (Status::Interrupted, 3));
}

#[test]
fn options_are_checked_against_the_schema() {
    let r = Registry::with_standard();
    let info = r.solver_info(r.solver("gd").unwrap());
    let d = info
        .resolve_options(&[
            num("lr_", 1.0),
            ("nesterov".into(), OptionValue::Number(2.0)),
            num("lr", -1.0),
            ("clip".into(), OptionValue::Other("a string")),
        ])
        .unwrap_err();
    assert_eq!(d.len(), 4);
    assert!(d[0].message.contains("no option `lr_`"));
    assert!(
        d[0].help.as_deref().unwrap().contains("did you mean `lr`?"),
        "{:?}",
        d[0]
    );
    assert_eq!(
        d[1].message,
        "option `nesterov` of solver `gd` expected a boolean, found 2"
    );
    assert_eq!(
        d[2].message,
        "option `lr` of solver `gd` must be > 0, found -1"
    );
    assert_eq!(d[3].option, "clip");
    let adam = r.solver_info(r.solver("adam").unwrap());
    let d = adam.resolve_options(&[num("b1", 1.0)]).unwrap_err();
    assert_eq!(
        d[0].message,
        "option `b1` of solver `adam` must be in [0, 1), found 1"
    );
}

#[test]
fn a_failing_host_callback_is_a_solver_error_with_the_host_message() {
    let r = Registry::with_standard();
    let gd = r.solver("gd").unwrap();
    let options = r.solver_info(gd).resolve_options(&[]).unwrap();
    let mut p = Quadratic::new();
    p.fail_after = Some(3);
    let mut inst = r
        .init_solver(
            gd,
            &mut p,
            SolverStart {
                options: &options,
                x: &[0.0; 4],
                seed: 0,
            },
        )
        .unwrap();
    let mut x = vec![0.0; 4];
    let e = (0..10)
        .find_map(|_| inst.step(&mut p, &mut x).err())
        .expect("fails after 3 evaluations");
    assert_eq!(e.solver, "gd");
    assert!(
        e.to_string().contains("the model evaluation overflowed"),
        "{e}"
    );
    assert_eq!(mcopt::diag::Diag::from(e).code, "mcopt::plugin::solver");
}

#[test]
fn save_and_restore_continue_bit_for_bit() {
    let r = Registry::with_standard();
    for (solver, opts) in [
        ("adam", vec![num("lr", 0.05)]),
        ("gd", vec![num("lr", 0.1), num("momentum", 0.5)]),
    ] {
        let id = r.solver(solver).unwrap();
        let options = r.solver_info(id).resolve_options(&opts).unwrap();
        let mut p = Quadratic::new();
        let start = SolverStart {
            options: &options,
            x: &[0.0; 4],
            seed: 0,
        };
        let mut straight = vec![0.0; 4];
        let mut a = r.init_solver(id, &mut p, start).unwrap();
        for _ in 0..10 {
            a.step(&mut p, &mut straight).unwrap();
        }
        let mut x = vec![0.0; 4];
        let mut b = r.init_solver(id, &mut p, start).unwrap();
        for _ in 0..4 {
            b.step(&mut p, &mut x).unwrap();
        }
        let blob = b.save().unwrap();
        drop(b);
        let resumed = SolverStart {
            options: &options,
            x: &x.clone(),
            seed: 0,
        };
        let mut c = r.restore_solver(id, &mut p, resumed, &blob).unwrap();
        for _ in 4..10 {
            c.step(&mut p, &mut x).unwrap();
        }
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x), bits(&straight), "{solver}");
        assert!(r
            .restore_solver(id, &mut p, resumed, &blob[..blob.len() - 1])
            .is_err());
    }
}
