//! `mcopt validate` below the command line: the named checks a CI job gates on (parse and
//! check, the plugins' self-test, a finite objective, the stationarity certificate of each
//! order, the training and test losses against a run file's `validate:`), as a [`Validation`].

use std::path::Path;
use std::time::Instant;

use crate::config::{self, Split, Thresholds};
use crate::diag::Diags;
use crate::eval::{EvalOptions, Evaluator};
use crate::forms::Betas;
use crate::plugin_host;
use crate::registry::Order;
use crate::report::{Check, CheckStatus, Validation};
use crate::stationarity::{Certificate, Status, Verdict};
use crate::text::plural;

use super::{certify, CertifyRequest, FormSpec, Inputs, Session};

/// A validation to run: every option of `mcopt validate` but the inputs and the outputs.
#[derive(Debug, Clone, Default)]
pub struct ValidateRequest {
    /// The point file of the trained parameters.
    pub params: String,
    /// 1 or 2 (default: the run file's `validate.order`).
    pub order: Option<u8>,
    /// Tolerance of the certificate (default: the run file's `validate.tol`, else 1e-6).
    pub tol: Option<f64>,
    /// Kink tolerance of the evaluator.
    pub ztol: f64,
    /// A point shown not stationary is a warning, not a failure.
    pub allow_not_stationary: bool,
    /// An inconclusive verdict is a warning, not a failure.
    pub allow_inconclusive: bool,
}

/// The checks of `req` on `model`. On bad input the check that met it fails, the rest are
/// skipped, and the diagnostics come back beside the validation.
pub fn validate(
    model: &str,
    inputs: &Inputs,
    req: &ValidateRequest,
) -> (Validation, Result<(), Diags>) {
    let run = match &inputs.config {
        Some(p) => config::load_run(Path::new(p)).map(Some),
        None => Ok(None),
    };
    match run {
        Ok(run) => validate_with(model, inputs, run.as_ref(), req),
        Err(d) => {
            let mut checks = Checks {
                list: Vec::new(),
                clock: Instant::now(),
            };
            fail_rest(&mut checks, &d);
            (Validation::new(checks.list), Err(d))
        }
    }
}

/// [`validate`] with the run file `inputs.config` names already read (it is not read again).
pub fn validate_with(
    model: &str,
    inputs: &Inputs,
    run: Option<&config::RunFile>,
    req: &ValidateRequest,
) -> (Validation, Result<(), Diags>) {
    let mut checks = Checks {
        list: Vec::new(),
        clock: Instant::now(),
    };
    let result = run_checks(model, inputs, run, req, &mut checks);
    if let Err(d) = &result {
        fail_rest(&mut checks, d);
    }
    (Validation::new(checks.list), result)
}

/// Bad input: the check that met it fails, the rest are skipped; exit 2 with the diagnostic.
fn fail_rest(checks: &mut Checks, d: &Diags) {
    let first = d
        .iter()
        .next()
        .map(|d| d.message.clone())
        .unwrap_or_default();
    let name = NAMES[checks.list.len().min(NAMES.len() - 1)];
    checks.push(name, CheckStatus::Fail, format!("bad input: {first}"));
    checks.skip_rest("not run after bad input");
}

const NAMES: [&str; 7] = [
    "parse_and_check",
    "plugins_self_test",
    "objective_finite",
    "first_order_stationarity",
    "second_order_stationarity",
    "train_loss",
    "test_loss",
];

struct Checks {
    list: Vec<Check>,
    clock: Instant,
}

impl Checks {
    fn push(&mut self, name: &'static str, status: CheckStatus, message: impl Into<String>) {
        let seconds = self.clock.elapsed().as_secs_f64();
        self.clock = Instant::now();
        self.list.push(Check {
            name,
            status,
            message: message.into(),
            seconds,
            tol: None,
            ztol: None,
        });
    }

    /// A stationarity check: its certificate's tolerances, and `seconds` of its own (the
    /// certificate's time since the last check goes to the first order, less the second's).
    fn push_verdict(
        &mut self,
        name: &'static str,
        status: CheckStatus,
        message: String,
        c: &Certificate,
    ) {
        let since = self.clock.elapsed().as_secs_f64();
        let seconds = match (name, &c.second) {
            ("second_order_stationarity", Some(v)) => v.seconds,
            (_, Some(v)) => (since - v.seconds).max(0.0),
            (_, None) => since,
        };
        if name == "second_order_stationarity" {
            self.clock = Instant::now();
        }
        self.list.push(Check {
            name,
            status,
            message,
            seconds,
            tol: Some(c.tol),
            ztol: Some(c.ztol),
        });
    }

    /// Every check not yet run, skipped with `why`.
    fn skip_rest(&mut self, why: &str) {
        for name in NAMES {
            if !self.list.iter().any(|c| c.name == name) {
                self.push(name, CheckStatus::Skipped, why);
            }
        }
    }
}

fn run_checks(
    model: &str,
    inputs: &Inputs,
    run: Option<&config::RunFile>,
    a: &ValidateRequest,
    checks: &mut Checks,
) -> Result<(), Diags> {
    let thresholds = run.map_or_else(Thresholds::default, |r| r.validate.clone());
    // β of (P1) is the form's (`form.p1.beta`, or the old `validate.beta`).
    let betas = match run.and_then(|r| r.form.p1.as_ref()) {
        Some(p1) => certify::betas_of(&p1.beta),
        None => Betas::uniform(1.0),
    };
    let s = Session::open(model, inputs, run)?;
    let layers = s.model.layers.len();
    checks.push(
        "parse_and_check",
        CheckStatus::Pass,
        format!(
            "{} parameters, {layers} layer declarations",
            s.model.n_params()
        ),
    );
    let ids: Vec<_> = s.registry.function_ids().collect();
    let selftest = plugin_host::self_test(&s.registry, &ids);
    match selftest.failures.first() {
        None => checks.push(
            "plugins_self_test",
            CheckStatus::Pass,
            format!("{} functions checked", selftest.checked.len()),
        ),
        Some(f) => checks.push(
            "plugins_self_test",
            CheckStatus::Fail,
            format!(
                "{} of {}: {} ({} failures)",
                f.function,
                f.plugin,
                f.what,
                selftest.failures.len()
            ),
        ),
    }
    let order = a.order.unwrap_or(thresholds.order.number());
    let req = CertifyRequest {
        tol: a.tol.or(thresholds.stationarity_tol),
        ztol: a.ztol,
        ..CertifyRequest::new(
            FormSpec::of(thresholds.form, betas),
            if order == 2 { Order::Two } else { Order::One },
        )
    };
    let opts = req.options()?;
    let prep = certify::prepare(&s, &req.form, Some(&a.params), opts.tol)?;
    // objective_finite
    let mut ev = Evaluator::new(&prep.graph, &s.registry, Order::Zero)
        .map_err(|e| Diags::from(e.to_diag(&prep.graph)))?;
    let value = ev.value(&prep.theta, EvalOptions { ztol: opts.ztol });
    let finite = value.as_ref().is_ok_and(|v| v.is_finite());
    match &value {
        Ok(v) if v.is_finite() => {
            checks.push("objective_finite", CheckStatus::Pass, format!("f = {v}"))
        }
        Ok(v) => checks.push("objective_finite", CheckStatus::Fail, format!("f = {v}")),
        Err(e) => checks.push("objective_finite", CheckStatus::Fail, e.to_string()),
    }
    let train_loss = ev.loss();
    if finite {
        let c = prep.certify(&s, &opts)?;
        stationarity_checks(a, &thresholds, &c, order, checks);
    } else {
        checks.push(
            "first_order_stationarity",
            CheckStatus::Skipped,
            "the objective is not finite",
        );
        checks.push(
            "second_order_stationarity",
            CheckStatus::Skipped,
            "the objective is not finite",
        );
    }
    loss_check(
        checks,
        "train_loss",
        finite.then_some(train_loss),
        thresholds.train_max,
        "max_train_loss",
    );
    let test = match thresholds.test_max {
        Some(_) => match s.graph(Split::Test)? {
            Some(tg) => {
                let mut tev = Evaluator::new(&tg, &s.registry, Order::Zero)
                    .map_err(|e| Diags::from(e.to_diag(&tg)))?;
                tev.value(&prep.theta, EvalOptions { ztol: opts.ztol })
                    .ok()
                    .map(|_| tev.loss())
            }
            None => None,
        },
        None => None,
    };
    loss_check(
        checks,
        "test_loss",
        test,
        thresholds.test_max,
        "max_test_loss",
    );
    Ok(())
}

fn stationarity_checks(
    a: &ValidateRequest,
    t: &Thresholds,
    c: &Certificate,
    order: u8,
    checks: &mut Checks,
) {
    let allow_inconclusive = a.allow_inconclusive || t.allow_inconclusive;
    let status = |v: &Verdict| match v.status {
        Status::Stationary => CheckStatus::Pass,
        Status::NotStationary if a.allow_not_stationary => CheckStatus::Warn,
        Status::Inconclusive if allow_inconclusive => CheckStatus::Warn,
        _ => CheckStatus::Fail,
    };
    let message = |v: &Verdict| {
        let mut m = format!(
            "{} ({}, {}; tol = {:e}, ztol = {})",
            v.status.as_str(),
            v.method,
            plural(v.active_kinks, "active kink", "active kinks"),
            c.tol,
            c.ztol
        );
        if let Some(s) = v.slope {
            m.push_str(&format!("; slope {s:.6e} along the witness"));
        }
        if let Some(k) = v.curvature {
            m.push_str(&format!("; curvature {k:.6e} along the witness"));
        }
        if let Some(r) = &v.reason {
            m.push_str(&format!("; {r}"));
        }
        m
    };
    checks.push_verdict(
        "first_order_stationarity",
        status(&c.first),
        message(&c.first),
        c,
    );
    match (&c.second, order) {
        (Some(v), 2) => checks.push_verdict("second_order_stationarity", status(v), message(v), c),
        _ => checks.push(
            "second_order_stationarity",
            CheckStatus::Skipped,
            "pass --order 2 (or validate.order: 2)",
        ),
    }
}

fn loss_check(
    checks: &mut Checks,
    name: &'static str,
    value: Option<f64>,
    max: Option<f64>,
    key: &str,
) {
    match (max, value) {
        (None, _) => checks.push(
            name,
            CheckStatus::Skipped,
            format!("no validate.{key} in the run file"),
        ),
        (Some(m), Some(v)) if v <= m => checks.push(name, CheckStatus::Pass, format!("{v} ≤ {m}")),
        (Some(m), Some(v)) => checks.push(
            name,
            CheckStatus::Fail,
            format!("{v} > {m} (validate.{key})"),
        ),
        (Some(_), None) => checks.push(
            name,
            CheckStatus::Fail,
            "no value: the split is not bound or the loss is not finite".to_string(),
        ),
    }
}
