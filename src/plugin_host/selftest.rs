//! The self-test run on every loaded plugin and by `mcopt plugins check`: each function's
//! (f1, f2) against one-sided finite differences along rays at sample points and at its
//! declared breakpoints, in both directions, plus NaN, kink-count, order-consistency and
//! proximal-map checks.

use crate::diag::{Diag, Diags};
use crate::registry::{FunctionId, Order, Registry};

/// Points sampled away from breakpoints (points closer than [`MIN_GAP`] to one are skipped).
const SAMPLES: [f64; 5] = [-2.1, -0.6, 0.35, 1.7, 3.2];
const MIN_GAP: f64 = 0.05;
/// Steps of the one-sided differences (Richardson-extrapolated, so errors are O(h²)).
const H1: f64 = 1e-4;
const H2: f64 = 1e-3;
const TOL1: f64 = 1e-5;
const TOL2: f64 = 1e-4;

/// One failed check.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Failure {
    pub function: String,
    pub plugin: String,
    /// The ray (a0, a1, a2) the check ran along (empty for parameter and prox checks).
    pub ray: Vec<f64>,
    pub what: String,
}

impl Failure {
    fn to_diag(&self, library: &str) -> Diag {
        let at = match self.ray.as_slice() {
            [a0, a1, a2] => format!(" along the ray a = ({a0}, {a1}, {a2})"),
            _ => String::new(),
        };
        Diag::new(
            "mcopt::plugin::self_test",
            format!(
                "function `{}` of plugin {} fails its self-test{at}: {}",
                self.function, self.plugin, self.what
            ),
        )
        .in_file(library.to_string())
        .help("f1 and f2 must be the one-sided derivatives of t ↦ φ(a0 + a1 t + a2 t²/2) at t = 0+")
    }
}

/// Outcome of the self-test of some functions.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SelfTestReport {
    /// Library path (or "built in").
    pub library: String,
    /// Per function: name and number of rays checked.
    pub checked: Vec<(String, usize)>,
    pub failures: Vec<Failure>,
}

impl SelfTestReport {
    /// `Ok` if nothing failed, else one diagnostic per failure.
    pub fn into_result(self) -> Result<SelfTestReport, Diags> {
        if self.failures.is_empty() {
            return Ok(self);
        }
        Err(Diags(
            self.failures
                .iter()
                .map(|f| f.to_diag(&self.library))
                .collect(),
        ))
    }
}

/// Self-test functions `ids` of `registry` at their default parameters.
pub fn self_test(registry: &Registry, ids: &[FunctionId]) -> SelfTestReport {
    let mut report = SelfTestReport::default();
    for &id in ids {
        let info = registry.info(id);
        report.library = info
            .source
            .library
            .as_ref()
            .map_or("built in".to_string(), |p| p.display().to_string());
        let mut t = Tester {
            registry,
            id,
            params: Vec::new(),
            failures: Vec::new(),
            rays: 0,
        };
        t.run();
        report.checked.push((info.name.clone(), t.rays));
        report.failures.extend(t.failures);
    }
    report
}

struct Tester<'a> {
    registry: &'a Registry,
    id: FunctionId,
    params: Vec<f64>,
    failures: Vec<Failure>,
    rays: usize,
}

impl Tester<'_> {
    fn fail(&mut self, ray: &[f64], what: String) {
        let info = self.registry.info(self.id);
        self.failures.push(Failure {
            function: info.name.clone(),
            plugin: info.source.plugin.clone(),
            ray: ray.to_vec(),
            what,
        });
    }

    fn run(&mut self) {
        // Default parameters; 1 for a parameter without a default (skipped if the plugin
        // refuses that, since no value is then known to be valid).
        let info = self.registry.info(self.id);
        let all_defaults = info.params.iter().all(|p| p.default.is_some());
        let guess: Vec<f64> = info
            .params
            .iter()
            .map(|p| p.default.unwrap_or(1.0))
            .collect();
        match self.registry.check_params(self.id, &guess) {
            Ok(p) => self.params = p,
            Err(_) if !all_defaults => return,
            Err(e) => {
                self.fail(&[], format!("its default parameters are refused: {e}"));
                return;
            }
        }
        let bps = self.registry.info(self.id).breakpoints.clone();
        for &x in &SAMPLES {
            if bps.iter().all(|b| (x - b).abs() >= MIN_GAP) {
                for (d, c) in [(1.0, 0.0), (-1.0, 0.0), (1.0, 0.7), (-1.0, -0.4)] {
                    self.ray([x, d, c], false);
                }
            }
        }
        for &b in &bps {
            for (d, c) in [
                (1.0, 0.0),
                (-1.0, 0.0),
                (1.0, 0.7),
                (-1.0, 0.7),
                (0.0, 1.0),
                (0.0, -1.0),
            ] {
                self.ray([b, d, c], true);
            }
        }
        if self.registry.info(self.id).has_prox && self.failures.is_empty() {
            self.prox();
        }
    }

    /// Values φ(a(t)) at the given t (one vectorized order-zero call).
    fn values(&mut self, a: [f64; 3], ts: &[f64; 6]) -> Option<[f64; 6]> {
        let a0: Vec<f64> = ts
            .iter()
            .map(|t| a[0] + a[1] * t + 0.5 * a[2] * t * t)
            .collect();
        let mut f0 = [0.0; 6];
        let r = self.registry.call(
            self.id,
            &self.params,
            Order::Zero,
            0.0,
            [&a0, &[], &[]],
            [&mut f0, &mut [], &mut []],
        );
        match r {
            Ok(_) => Some(f0),
            Err(e) => {
                self.fail(&a, format!("the value call failed: {e}"));
                None
            }
        }
    }

    /// Coefficients at `order` along ray `a`, with the kink count.
    fn coeffs(&mut self, a: [f64; 3], order: Order) -> Option<([f64; 3], usize)> {
        let (a0, a1, a2) = ([a[0]], [a[1]], [a[2]]);
        let (mut f0, mut f1, mut f2) = ([f64::NAN], [f64::NAN], [f64::NAN]);
        let (ai, fi): ([&[f64]; 3], [&mut [f64]; 3]) = match order {
            Order::Zero => ([&a0, &[], &[]], [&mut f0, &mut [], &mut []]),
            Order::One => ([&a0, &a1, &[]], [&mut f0, &mut f1, &mut []]),
            Order::Two => ([&a0, &a1, &a2], [&mut f0, &mut f1, &mut f2]),
        };
        match self
            .registry
            .call(self.id, &self.params, order, 0.0, ai, fi)
        {
            Ok(k) => Some(([f0[0], f1[0], f2[0]], k)),
            Err(e) => {
                self.fail(&a, format!("the order-{} call failed: {e}", order.as_u32()));
                None
            }
        }
    }

    fn ray(&mut self, a: [f64; 3], at_kink: bool) {
        if !self.failures.is_empty() {
            // One diagnostic per function: the first failing ray says enough.
            return;
        }
        self.rays += 1;
        let ts = [0.0, 0.5 * H1, H1, 0.5 * H2, H2, 2.0 * H2];
        let (Some(g), Some((f, kinks))) = (self.values(a, &ts), self.coeffs(a, Order::Two)) else {
            return;
        };
        let (Some((z, _)), Some((o, _))) =
            (self.coeffs(a, Order::Zero), self.coeffs(a, Order::One))
        else {
            return;
        };
        if f.iter().chain(&g).any(|v| v.is_nan()) {
            return self.fail(
                &a,
                format!("NaN among the coefficients {f:?} or the values {g:?}"),
            );
        }
        let near = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs()));
        if !near(z[0], f[0]) || !near(o[0], f[0]) || !near(o[1], f[1]) {
            return self.fail(
                &a,
                format!(
                    "orders 0, 1, 2 disagree: f0 = {}, {}, {}; f1 = {}, {}",
                    z[0], o[0], f[0], o[1], f[1]
                ),
            );
        }
        if !near(f[0], g[0]) {
            return self.fail(
                &a,
                format!("f0 expected {} (the value), found {}", g[0], f[0]),
            );
        }
        // One-sided first differences D(h) = (g(h) − g(0))/h, extrapolated: 2D(h/2) − D(h).
        let d = |i: usize, h: f64| (g[i] - g[0]) / h;
        let f1 = 2.0 * d(1, 0.5 * H1) - d(2, H1);
        if (f1 - f[1]).abs() > TOL1 * (1.0 + f[1].abs()) {
            return self.fail(
                &a,
                format!("f1 expected {f1:.8} (one-sided difference), found {}", f[1]),
            );
        }
        // One-sided second differences S(h) = (g(2h) − 2g(h) + g(0))/h², extrapolated.
        let s_half = (g[4] - 2.0 * g[3] + g[0]) / (0.25 * H2 * H2);
        let s = (g[5] - 2.0 * g[4] + g[0]) / (H2 * H2);
        let f2 = 2.0 * s_half - s;
        if (f2 - f[2]).abs() > TOL2 * (1.0 + f[2].abs()) {
            return self.fail(
                &a,
                format!(
                    "f2 expected {f2:.6} (one-sided second difference), found {}",
                    f[2]
                ),
            );
        }
        if kinks != at_kink as usize {
            self.fail(
                &a,
                format!(
                    "{} active kink(s) expected, found {kinks}",
                    at_kink as usize
                ),
            );
        }
    }

    /// The proximal map must beat nearby points, zero and the input on its own objective.
    fn prox(&mut self) {
        let step = 0.8;
        let vs = [-2.7, -0.9, -0.2, 0.0, 0.4, 1.1, 3.5];
        let mut z = [0.0; 7];
        if let Err(e) = self.registry.prox(self.id, &self.params, step, &vs, &mut z) {
            return self.fail(&[], format!("the proximal map failed: {e}"));
        }
        for (&v, &zi) in vs.iter().zip(&z) {
            let cands = [zi, zi - 1e-3, zi + 1e-3, 0.0, v, 0.5 * v];
            let Some(vals) = self.values([0.0, 1.0, 0.0], &cands) else {
                return;
            };
            let obj: Vec<f64> = cands
                .iter()
                .zip(vals)
                .map(|(c, p)| p + (c - v) * (c - v) / (2.0 * step))
                .collect();
            if let Some(k) = (1..6).find(|&k| obj[k] < obj[0] - 1e-9 * (1.0 + obj[0].abs())) {
                return self.fail(
                    &[],
                    format!("prox at v = {v}, step {step} returned {zi} with objective {}, but {} gives {}", obj[0], cands[k], obj[k]),
                );
            }
        }
    }
}
