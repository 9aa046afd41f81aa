//! SRPA on (P1): the linearization of the residuals against exact directional derivatives, and
//! the authors' runs reproduced from their starting weights (docs/math.md §5, issue 10).

use crate::clarabel_ref;
use crate::common;

use common::eval::{bind, lower, model, sp500_graph, syn_data_graph, syn_graph};
use mcopt::config::RowSel;
use mcopt::config::{ColumnSel, HeaderMode, Split};
use mcopt::eval::{EvalOptions, Evaluator};
use mcopt::forms::linearize::{Jacobian, Linearization, Linearizer, NO_PIECE};
use mcopt::forms::p1host::P1Host;
use mcopt::forms::{self, Betas, Lifted};
use mcopt::graph::Graph;
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;
use mcopt_std::solvers::srpa::iteration::{Srpa, SrpaOptions};
use mcopt_std::solvers::srpa::subproblem::{Method, SubOptions, SubSolution, SubSolver};

const OPTS: EvalOptions = EvalOptions { ztol: 0.0 };

/// θ of a bundled point file, in the graph's parameter order.
fn theta_from(g: &Graph, path: &str) -> Vec<f64> {
    mcopt::session::read_theta(g, &common::eval::repo().join(path)).expect("point file")
}

fn completed(g: &Graph, r: &Registry, l: &Lifted, theta: &[f64]) -> Vec<f64> {
    let mut ev = Evaluator::new(g, r, Order::Zero).unwrap();
    l.complete(&mut ev, theta).unwrap()
}

/// The stored linearization at z against exact derivatives (`common::linearize`).
fn check_linearization(g: &Graph, r: &Registry, z: &[f64], seed: u64) {
    common::linearize::check_linearization(&forms::lift(g), r, z, seed, "");
}

#[test]
fn syn_linearization_equals_exact_directional_derivatives() {
    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
    let l = forms::lift(&g);
    let z = completed(&g, &r, &l, &theta);
    check_linearization(&g, &r, &z, 1);
    // off the feasible set too (no kinks hit with probability one)
    let mut rng = Rng::new(5);
    let z2: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
    check_linearization(&g, &r, &z2, 2);
}

#[test]
fn sp500_linearization_equals_exact_directional_derivatives() {
    let r = Registry::with_standard();
    let g = sp500_graph(&r);
    let theta = theta_from(&g, "examples/data/srpa_sp500_theta0.yaml");
    let l = forms::lift(&g);
    let z = completed(&g, &r, &l, &theta);
    check_linearization(&g, &r, &z, 3);
}

/// The Jacobian's values by levels of nodes on two threads (each level split into two parts,
/// plugin calls on the calling thread) are those of one pass, bit for bit, on sp500 and syn
/// (whose levels are below the default threshold, so it is lowered here).
#[test]
fn the_linearization_by_levels_on_two_threads_gives_the_one_pass_numbers() {
    let r = Registry::with_standard();
    for (g, point) in [
        (sp500_graph(&r), "examples/data/srpa_sp500_theta0.yaml"),
        (
            syn_graph(&r, RowSel::Range { start: 0, end: 8 }),
            "examples/data/srpa_syn_theta0.yaml",
        ),
    ] {
        let theta = theta_from(&g, point);
        let l = forms::lift(&g);
        let z = completed(&g, &r, &l, &theta);
        let mut rng = Rng::new(11);
        let elsewhere: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
        let linearize = |halves_min: usize| {
            let mut lin = Linearizer::new(&l, &r).unwrap();
            lin.level_halves_min = halves_min;
            let mut out = Linearization::default();
            let mut pieces = vec![NO_PIECE; lin.sites()];
            // first elsewhere: a node read before its children's values were set at z would
            // read those of the other point
            lin.linearize(&elsewhere, None, &mut pieces, &mut out)
                .unwrap();
            let mut pieces = vec![NO_PIECE; lin.sites()];
            lin.linearize(&z, None, &mut pieces, &mut out).unwrap();
            out
        };
        let (one, two) = (linearize(usize::MAX), linearize(0));
        assert!(one.jac.iter().any(|&v| v != 0.0 && v != 1.0 && v != -1.0));
        assert_eq!(one.jac, two.jac);
        assert_eq!(one.residual, two.residual);
        assert_eq!(one.grad, two.grad);
    }
}

/// docs/bench.md's large RNN (examples/large/rnn.mco: a batch of sequences, Nh = 128, Nx = 16,
/// Ny = 4) on a small generated batch: 3 sequences of 6 steps, so the linearization is checked
/// on its real structure in the default suite.
#[test]
fn large_linearization_equals_exact_directional_derivatives() {
    let r = Registry::with_standard();
    let m = common::eval::model_file("examples/large/rnn.mco", &r);
    let dir = crate::support::scratch_dir("srpa-large");
    let mut rng = Rng::new(5);
    let mut csv = String::from("seq");
    for j in 1..=16 {
        csv += &format!(",x{j}");
    }
    for j in 1..=4 {
        csv += &format!(",y{j}");
    }
    csv.push('\n');
    for seq in 0..3 {
        for _ in 0..6 {
            csv += &seq.to_string();
            for _ in 0..20 {
                csv += &format!(",{}", rng.normal());
            }
            csv.push('\n');
        }
    }
    let file = dir.join("large.csv");
    std::fs::write(&file, csv).unwrap();
    let spec = mcopt::config::DataSpec {
        file: file.clone(),
        header: HeaderMode::Yes,
        bind: vec![
            ("x".into(), ColumnSel::Range { start: 1, end: 17 }),
            ("y".into(), ColumnSel::Range { start: 17, end: 21 }),
        ],
        train: RowSel::Range { start: 0, end: 6 },
        test: None,
        sequences: mcopt::config::SeqLayout::Column("seq".into()),
        test_state: mcopt::config::TestState::Carry,
        origin: None,
    };
    let data = mcopt::session::bind_data(&m, &spec, &dir, Split::Train).unwrap();
    let g = lower(&m, data);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.1 * rng.normal()).collect();
    let l = forms::lift(&g);
    let names: Vec<&str> = l.layout.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["u", "h", "v"]);
    let z = completed(&g, &r, &l, &theta);
    assert_eq!(z.len() - g.n_params(), 3 * 6 * (128 + 128 + 4));
    check_linearization(&g, &r, &z, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A two-layer feed-forward network applied at every time step of the syn data: a ReLU hidden
/// layer (written with its pre-activation as a layer, so its pieces are bounds) and a tanh
/// output (linearized: prox-linear).
const FEED_FORWARD: &str = "
data x: seq(vec(5))
data y: seq(vec(3))
param W1: mat(6, 5)
param b1: vec(6)
param W2: mat(3, 6)
param b2: vec(3)
layer a[t] = W1 * x[t] + b1
layer h[t] = relu(a[t])
layer o[t] = tanh(W2 * h[t] + b2)
minimize mean(t, sqnorm(o[t] - y[t])) + 0.01 * sqnorm(W1) + 0.01 * sqnorm(W2)
";

fn feed_forward(r: &Registry) -> Graph {
    let m = model(FEED_FORWARD, r);
    syn_data_graph(&m, RowSel::Range { start: 0, end: 8 })
}

#[test]
fn feed_forward_linearization_and_srpa_steps() {
    let r = Registry::with_standard();
    let g = feed_forward(&r);
    let mut rng = Rng::new(11);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect();
    let l = forms::lift(&g);
    let z = completed(&g, &r, &l, &theta);
    check_linearization(&g, &r, &z, 4);
    let names: Vec<&str> = l.layout.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["a", "h", "o"]);
    let t = run_from(&g, &r, &l, z, &Betas::uniform(1.0), 20);
    for w in t.windows(2) {
        assert!(w[1] <= w[0], "Θ increased: {w:?}");
    }
    assert!(t[20] < t[0] - 1e-3, "no progress: {t:?}");
}

/// syn (its 8 training steps) lifted, with the authors' β = 1 and their start completed to z⁰:
/// what the SRPA tests on syn run from.
struct Syn {
    r: Registry,
    g: Graph,
    l: Lifted,
    betas: Betas,
    pen: Graph,
    z0: Vec<f64>,
}

impl Syn {
    fn new() -> Syn {
        let r = Registry::with_standard();
        let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
        let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
        let l = forms::lift(&g);
        let betas = Betas::uniform(1.0);
        let pen = l.penalized(&betas);
        let z0 = completed(&g, &r, &l, &theta);
        Syn {
            r,
            g,
            l,
            betas,
            pen,
            z0,
        }
    }

    fn host(&self) -> P1Host<'_> {
        P1Host::new(&self.l, &self.pen, &self.betas, &self.g, &self.r).unwrap()
    }

    /// A host that does not store J: the solver reaches it through the products.
    fn products_host(&self) -> P1Host<'_> {
        let j = Jacobian::Products;
        P1Host::with_jacobian(&self.l, &self.pen, &self.betas, &self.g, &self.r, j).unwrap()
    }
}

/// The authors' SRPA settings on syn: η₁ = 0.9, η₂ = 1.3, ρ₁ = 0.5.
fn authors_syn_options() -> SrpaOptions {
    SrpaOptions {
        eta1: 0.9,
        eta2: 1.3,
        rho1: 0.5,
        ..SrpaOptions::default()
    }
}

/// Runs SRPA on syn from the authors' start; returns Θ(z^k) for k = 0..=iters.
fn syn_run(iters: usize) -> Vec<f64> {
    let syn = Syn::new();
    run_from(&syn.g, &syn.r, &syn.l, syn.z0.clone(), &syn.betas, iters)
}

/// SRPA with the authors' syn settings (η₁ = 0.9, η₂ = 1.3, ρ₁ = 0.5) from z0; Θ(z^k) for
/// k = 0..=iters (every subproblem solved to tolerance, the feasibility at its level).
fn run_from(
    g: &Graph,
    r: &Registry,
    l: &Lifted,
    z0: Vec<f64>,
    betas: &Betas,
    iters: usize,
) -> Vec<f64> {
    let betas = betas.clone();
    let pen = l.penalized(&betas);
    let mut host = P1Host::new(l, &pen, &betas, g, r).unwrap();
    let mut srpa = Srpa::new(&mut host, z0, authors_syn_options()).unwrap();
    let mut trace = vec![srpa.objective];
    for k in 0..iters {
        let m = srpa.step(&mut host).unwrap();
        assert!(m.sub_converged, "iteration {k}: {m:?}");
        assert!(
            m.sub_gap <= 1e-9 && m.sub_residual <= 1e-9,
            "iteration {k}: {m:?}"
        );
        if std::env::var("SRPA_TRACE").is_ok() {
            eprintln!("{k} {m:?}");
        }
        trace.push(m.objective);
    }
    trace
}

#[test]
fn syn_first_step_matches_the_authors() {
    let t = syn_run(1);
    assert!((t[0] - 2.17392515056).abs() <= 1e-9, "{t:?}");
    assert!((t[1] - 2.07827357021).abs() <= 1e-6, "{t:?}");
}

#[test]
fn syn_hundred_iterations_track_the_authors_and_end_lower() {
    let t = syn_run(100);
    let k10 = 1.40155724576;
    assert!((t[10] - k10).abs() <= 0.01 * k10, "k = 10: {}", t[10]);
    assert!(t[100] <= 1.07370660933, "k = 100: {}", t[100]);
    for w in t.windows(2) {
        assert!(w[1] <= w[0], "Θ increased: {w:?}");
    }
}

#[test]
fn two_runs_give_identical_traces() {
    assert_eq!(syn_run(30), syn_run(30));
}

/// The real syn subproblems at k = 0, 10 and 50 (the later ones with active piece bounds and
/// ties) against Clarabel: objective and solution to 1e-6 relative.
#[test]
fn syn_subproblems_agree_with_clarabel() {
    let syn = Syn::new();
    let mut host = syn.host();
    let mut srpa = Srpa::new(&mut host, syn.z0.clone(), authors_syn_options()).unwrap();
    let mut bounded = 0;
    for k in 0..=50 {
        if [0, 10, 50].contains(&k) {
            let p = srpa.subproblem(&host);
            bounded += p.lower.iter().filter(|v| v.is_finite()).count();
            let mut sol = SubSolution::default();
            let rep = SubSolver::new(p.jac)
                .unwrap()
                .solve(&p, SubOptions::default(), &mut sol)
                .unwrap();
            assert!(rep.converged, "k = {k}: {rep:?}");
            let (x_ref, certified) = clarabel_ref::clarabel_solve(&p);
            assert!(certified, "k = {k}: clarabel did not certify its solution");
            let mut w = vec![0.0; p.r.len()];
            let (ours, theirs) = (p.objective(&sol.s, &mut w), p.objective(&x_ref, &mut w));
            assert!(
                (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1.0),
                "k = {k}"
            );
            let d = clarabel_ref::rel_diff(&sol.s, &x_ref);
            assert!(d <= 1e-6, "k = {k}: {d}");
        }
        srpa.step(&mut host).unwrap();
    }
    assert!(bounded > 0, "no piece bounds in the syn subproblems");
}

/// syn with the parameter-Schur path and B through its augmented matrix (the path the TIMIT
/// shape takes): the direct trajectory to 1e-8, the Newton steps found by the conjugate
/// gradients; and a run saved at any iteration and restored continues bit for bit (the
/// checkpoint carries the conjugate gradients' preconditioner H on C itself, with what they
/// learnt since C̃ was formed).
#[test]
fn the_augmented_schur_path_follows_the_direct_trajectory_and_resumes_bit_for_bit() {
    schur_path_follows_the_direct_trajectory_and_resumes(Method::SchurAugmented);
}

/// SRPA on syn with the subproblems' parameter-Schur path forced (conjugate gradients with a
/// preconditioner kept across subproblems): the same trajectory as direct solves, to the
/// subproblem tolerance; and a run saved midway and restored continues bit for bit (the
/// checkpoint carries the point the kept preconditioner was formed at).
#[test]
fn the_schur_path_follows_the_direct_trajectory_and_resumes_bit_for_bit() {
    schur_path_follows_the_direct_trajectory_and_resumes(Method::Schur);
}

/// syn for 40 iterations by the parameter-Schur path `method`: the conjugate gradients, not
/// the direct fallback, found the Newton steps, and [`follows_the_direct_path_and_resumes`].
fn schur_path_follows_the_direct_trajectory_and_resumes(method: Method) {
    let syn = Syn::new();
    let z0 = &syn.z0;
    let mut host = syn.host();
    let opts = SrpaOptions {
        method,
        ..authors_syn_options()
    };
    let run = |srpa: &mut Srpa, host: &mut P1Host, iters: usize, out: &mut Vec<f64>| {
        let (mut fallbacks, mut systems) = (0, 0);
        for _ in 0..iters {
            let m = srpa.step(host).unwrap();
            assert!(m.sub_converged, "{m:?}");
            out.push(m.objective);
            fallbacks += m.factorizations;
            systems += m.newton_steps;
        }
        (fallbacks, systems)
    };
    let mut straight = Srpa::new(&mut host, z0.clone(), opts).unwrap();
    let mut t = vec![straight.objective];
    let (fallbacks, systems) = run(&mut straight, &mut host, 40, &mut t);
    assert!(
        fallbacks * 20 <= systems,
        "{fallbacks} fallbacks in {systems} systems"
    );
    follows_the_direct_path_and_resumes(&mut host, z0, opts, &straight, &t, run);
}

/// A straight syn run `straight` of 40 iterations (objectives `t`, from `z0` under `opts`, by
/// `run`) against the direct path's objectives to 1e-8; and the same run saved at every
/// iteration and restored, which must continue bit for bit (some checkpoints so fall where a
/// kept preconditioner had just served a system slowly, and the next system re-forms it first).
fn follows_the_direct_path_and_resumes<R>(
    host: &mut P1Host,
    z0: &[f64],
    opts: SrpaOptions,
    straight: &Srpa,
    t: &[f64],
    run: impl Fn(&mut Srpa, &mut P1Host, usize, &mut Vec<f64>) -> R,
) {
    let direct = syn_run(40);
    for (k, (a, b)) in t.iter().zip(&direct).enumerate() {
        assert!((a - b).abs() <= 1e-8 * b.abs(), "k = {k}: {a} vs {b}");
    }
    for at in 1..40 {
        let mut first = Srpa::new(host, z0.to_vec(), opts).unwrap();
        let mut resumed = vec![first.objective];
        run(&mut first, host, at, &mut resumed);
        let mut bytes = Vec::new();
        first.save(&mut bytes);
        drop(first);
        let mut second = Srpa::restore(host, &bytes, opts).unwrap();
        run(&mut second, host, 40 - at, &mut resumed);
        assert_eq!(resumed, t, "saved at k = {at}");
        assert_eq!(second.z, straight.z, "saved at k = {at}");
    }
}

/// SRPA on syn with the subproblems' matrix-free Newton–CG path forced (J only through
/// products, here over the stored J): the same trajectory as direct solves to 1e-8, with the
/// Woodbury complement kept across subproblems; and a run saved at any iteration and restored
/// continues bit for bit (the checkpoint carries the point that complement was formed at).
#[test]
fn the_matrix_free_path_follows_the_direct_trajectory_and_resumes_bit_for_bit() {
    matrix_free_trajectory(false);
}

/// The same with a host that does not store J (`Jacobian::Products`): `Method::Auto` takes the
/// matrix-free path, and J is reached through the host's products alone.
#[test]
fn syn_through_the_hosts_products_follows_the_direct_trajectory_and_resumes_bit_for_bit() {
    matrix_free_trajectory(true);
}

fn matrix_free_trajectory(products: bool) {
    let syn = Syn::new();
    let z0 = &syn.z0;
    let mut host = if products {
        syn.products_host()
    } else {
        syn.host()
    };
    let opts = SrpaOptions {
        method: if products {
            Method::Auto
        } else {
            Method::MatrixFree
        },
        ..authors_syn_options()
    };
    let run = |srpa: &mut Srpa, host: &mut P1Host, iters: usize, out: &mut Vec<f64>| {
        let (mut forms, mut systems, mut cg) = (0, 0, 0);
        for _ in 0..iters {
            let m = srpa.step(host).unwrap();
            assert!(m.sub_converged, "{m:?}");
            assert_eq!(m.factorizations, 0, "{m:?}");
            out.push(m.objective);
            forms += m.schur_forms;
            systems += m.newton_steps;
            cg += m.cg_iterations;
        }
        (forms, systems, cg)
    };
    let mut straight = Srpa::new(&mut host, z0.clone(), opts).unwrap();
    let mut t = vec![straight.objective];
    let (forms, systems, cg) = run(&mut straight, &mut host, 40, &mut t);
    // C is formed once per J (per accepted step), and serves all the systems of that J
    assert!(
        forms <= straight.accepted + 1 && forms * 2 < systems,
        "{forms} formations in {systems} systems, {} accepted steps",
        straight.accepted
    );
    assert!(
        cg >= systems,
        "{cg} conjugate-gradient iterations in {systems} systems"
    );
    follows_the_direct_path_and_resumes(&mut host, z0, opts, &straight, &t, run);
}

/// A two-layer network over the syn data whose hidden layer is `hidden` (over the lifted layers
/// `a`, and `c` when `both` is set); the output is affine.
fn max_min_model(r: &Registry, hidden: &str, both: bool) -> Graph {
    let c = if both {
        "param W3: mat(6, 5)\nlayer c[t] = W3 * x[t]\n"
    } else {
        ""
    };
    let text = format!(
        "data x: seq(vec(5))
data y: seq(vec(3))
param W1: mat(6, 5)
param b1: vec(6)
param W2: mat(3, 6)
param b2: vec(3)
layer a[t] = W1 * x[t] + b1
{c}layer h[t] = {hidden}
layer o[t] = W2 * h[t] + b2
minimize mean(t, sqnorm(o[t] - y[t])) + 0.01 * sqnorm(W1) + 0.01 * sqnorm(W2)
"
    );
    let m = model(&text, r);
    syn_data_graph(&m, RowSel::Range { start: 0, end: 6 })
}

/// The hidden layers of issue 15 that once panicked the linearizer, and the value an entry of
/// `a` takes at a tie (`None`: ties with `c`, both sides varying).
const MAX_MIN_LAYERS: [(&str, Option<f64>); 6] = [
    ("max(a[t], 0)", Some(0.0)),
    ("min(a[t], 1)", Some(1.0)),
    ("max(0, a[t])", Some(0.0)),
    ("a[t] + max(a[t], 0)", Some(0.0)),
    ("min(1, a[t]) - max(a[t], 0)", Some(0.0)),
    ("max(a[t], c[t]) + min(a[t], c[t])", None),
];

/// The z offsets of the entries of a lifted layer group, in order.
fn group_entries(l: &Lifted, name: &str) -> Vec<usize> {
    let g = &l.layout.groups[l.layout.group(name).unwrap()];
    g.blocks
        .iter()
        .flat_map(|&k| {
            let b = &l.layout.blocks[k];
            b.offset..b.offset + b.len()
        })
        .collect()
}

/// Where [`check_on_pieces`] linearizes: the point, the previous subproblem's bound
/// multipliers, and the seed of its directions.
struct At<'a> {
    z: &'a [f64],
    multipliers: Option<&'a [f64]>,
    seed: u64,
}

/// J d on the chosen pieces against the exact one-sided directional derivatives r′(z; d), for
/// directions `d` that `conform` moves into the chosen pieces (at a tie only they stay there).
fn check_on_pieces(
    l: &Lifted,
    r: &Registry,
    at: At,
    lin: &mut Linearizer,
    pieces: &mut [u32],
    conform: &dyn Fn(&mut [f64], &Linearization),
) -> Linearization {
    let At {
        z,
        multipliers,
        seed,
    } = at;
    let mut out = Linearization::default();
    lin.linearize(z, multipliers, pieces, &mut out).unwrap();
    let pat = lin.pattern().clone();
    let mut ev = Evaluator::new(&l.graph, r, Order::One).unwrap();
    let mut rng = Rng::new(seed);
    for _ in 0..4 {
        let mut d: Vec<f64> = (0..z.len()).map(|_| rng.normal()).collect();
        conform(&mut d, &out);
        ev.directional(z, &d, Order::One, OPTS).unwrap();
        let mut row = 0;
        for b in &l.layout.blocks {
            for (e, want) in ev.coeff(b.residual, 1).iter().enumerate() {
                let jd: f64 = (pat.row_ptr[row]..pat.row_ptr[row + 1])
                    .map(|p| out.jac[p] * d[pat.col_idx[p]])
                    .sum();
                assert!(
                    (jd - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "seed {seed}: {} entry {e}: J d = {jd}, r′(z; d) = {want}",
                    b.name
                );
                row += 1;
            }
        }
    }
    out
}

/// A direction moved into the pieces' bounds: where a bound on the step is 0 (a tie on a lifted
/// argument) the direction keeps to its side.
fn into_bounds(d: &mut [f64], out: &Linearization) {
    for (j, v) in d.iter_mut().enumerate() {
        if out.lower[j].abs() <= 1e-9 {
            *v = v.abs();
        }
        if out.upper[j].abs() <= 1e-9 {
            *v = -v.abs();
        }
    }
}

/// `max` and `min` against a lifted layer (a constant on either side, or both sides varying):
/// J d equals the exact one-sided directional derivatives at generic points, and at ties on
/// the chosen piece, before and after the tie rule switches it; a tie on a lifted argument
/// against a constant is a bound on the step.
#[test]
fn max_min_linearization_equals_exact_directional_derivatives() {
    let r = Registry::with_standard();
    for (i, (hidden, tie)) in MAX_MIN_LAYERS.iter().enumerate() {
        let g = max_min_model(&r, hidden, tie.is_none());
        let mut rng = Rng::new(20 + i as u64);
        let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect();
        let l = forms::lift(&g);
        let z = completed(&g, &r, &l, &theta);
        check_linearization(&g, &r, &z, 30 + i as u64);
        let z2: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
        check_linearization(&g, &r, &z2, 40 + i as u64);

        // every other entry of `a` on its kink
        let a = group_entries(&l, "a");
        let c = if tie.is_none() {
            group_entries(&l, "c")
        } else {
            Vec::new()
        };
        let mut zt = z2.clone();
        let on_tie: Vec<usize> = (0..a.len()).step_by(2).collect();
        for &k in &on_tie {
            zt[a[k]] = match tie {
                Some(v) => *v,
                None => zt[c[k]],
            };
        }
        let conform = |d: &mut [f64], out: &Linearization| {
            into_bounds(d, out);
            // both sides varying: no bound; a tie takes the right piece (a − c > 0)
            for &k in &on_tie {
                if let Some(&ck) = c.get(k) {
                    d[ck] = d[a[k]] - d[ck].abs();
                }
            }
        };
        let mut lin = Linearizer::new(&l, &r).unwrap();
        let mut pieces = vec![NO_PIECE; lin.sites()];
        let at = At {
            z: &zt,
            multipliers: None,
            seed: 50,
        };
        let out = check_on_pieces(&l, &r, at, &mut lin, &mut pieces, &conform);
        assert!(out.ties >= on_tie.len(), "{hidden}: {} ties", out.ties);
        let bounded = on_tie
            .iter()
            .filter(|&&k| out.lower[a[k]] == 0.0 || out.upper[a[k]] == 0.0)
            .count();
        if tie.is_some() {
            assert_eq!(bounded, on_tie.len(), "{hidden}: ties without a bound");
        }
        // the step pushed against every kink: the tie rule switches the bounded pieces
        let pushed = vec![1.0; z.len()];
        let at = At {
            z: &zt,
            multipliers: Some(&pushed),
            seed: 60,
        };
        let again = check_on_pieces(&l, &r, at, &mut lin, &mut pieces, &conform);
        assert!(again.switched >= bounded, "{hidden}: {}", again.switched);
    }
}

/// SRPA trains each of those models (every subproblem solved, Θ non-increasing).
#[test]
fn max_min_layers_train_with_srpa() {
    let r = Registry::with_standard();
    for (i, (hidden, tie)) in MAX_MIN_LAYERS.iter().enumerate() {
        let g = max_min_model(&r, hidden, tie.is_none());
        let mut rng = Rng::new(70 + i as u64);
        let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect();
        let l = forms::lift(&g);
        let z = completed(&g, &r, &l, &theta);
        let t = run_from(&g, &r, &l, z, &Betas::uniform(1.0), 8);
        for w in t.windows(2) {
            assert!(w[1] <= w[0], "{hidden}: Θ increased: {w:?}");
        }
        assert!(t[8] < t[0], "{hidden}: no progress: {t:?}");
    }
}

/// syn with `relu(u[t])` written `max(u[t], 0)`: the same pieces, bounds and Jacobian, so the
/// same SRPA trajectory.
#[test]
fn syn_with_max_follows_the_relu_trajectory() {
    let r = Registry::with_standard();
    let text = std::fs::read_to_string(common::eval::repo().join("examples/syn/rnn.mco")).unwrap();
    let written = text.replace("relu(u[t])", "max(u[t], 0)");
    assert_ne!(written, text);
    let m = model(&written, &r);
    let data = bind(
        &m,
        "examples/data/syn_T10.csv",
        HeaderMode::No,
        vec![
            ("x", ColumnSel::Range { start: 0, end: 5 }),
            ("y", ColumnSel::Range { start: 5, end: 8 }),
        ],
        RowSel::Range { start: 0, end: 8 },
        Split::Train,
    );
    let g = lower(&m, data);
    let theta = theta_from(&g, "examples/data/srpa_syn_theta0.yaml");
    let l = forms::lift(&g);
    let z0 = completed(&g, &r, &l, &theta);
    let with_max = run_from(&g, &r, &l, z0, &Betas::uniform(1.0), 30);
    let with_relu = syn_run(30);
    for (k, (a, b)) in with_max.iter().zip(&with_relu).enumerate() {
        assert!((a - b).abs() <= 1e-12 * b.abs(), "k = {k}: {a} vs {b}");
    }
}

/// syn's (P1) whose Θ lies: every trial point looks worse than the start, so every step is
/// rejected.
struct Rejecting<'a> {
    host: P1Host<'a>,
    start: Vec<f64>,
}

impl mcopt_plugin_sdk::p1::P1Problem for Rejecting<'_> {
    fn structure(&self) -> &mcopt_plugin_sdk::p1::P1Structure {
        self.host.structure()
    }
    fn complete(&mut self, theta: &[f64], z: &mut [f64]) -> Result<(), String> {
        self.host.complete(theta, z)
    }
    fn penalized(&mut self, z: &[f64]) -> Result<f64, String> {
        let v = self.host.penalized(z)?;
        Ok(if z == self.start { v } else { v + 1.0 })
    }
    fn linearize(
        &mut self,
        z: &[f64],
        multipliers: Option<&[f64]>,
        pieces: &mut [u32],
        out: &mut Linearization,
    ) -> Result<(), String> {
        self.host.linearize(z, multipliers, pieces, out)
    }
}

/// Rejected steps end in `stall` (ρ at its cap, or too many rejections in a row), never in a
/// tiny predicted decrease taken for convergence; the count of rejections in a row survives a
/// save and restore.
#[test]
fn rejected_steps_stall_with_a_reason() {
    use mcopt_std::solvers::srpa::iteration::{Stall, REJECTED_IN_A_ROW_MAX, RHO_GROWTH_MAX};
    let syn = Syn::new();
    let mut p = Rejecting {
        host: syn.host(),
        start: syn.z0.clone(),
    };
    let run = |p: &mut Rejecting, eta2: f64| {
        let opts = SrpaOptions {
            eta2,
            ..authors_syn_options()
        };
        let mut srpa = Srpa::new(p, syn.z0.clone(), opts).unwrap();
        for k in 1.. {
            let m = srpa.step(p).unwrap();
            assert!(!m.accepted);
            assert_eq!(m.rejected_in_a_row, k);
            assert!(srpa.rho <= RHO_GROWTH_MAX * opts.rho1);
            if let Some(stall) = m.stall {
                return (k, stall, srpa);
            }
            assert!(k < 10_000);
        }
        unreachable!()
    };
    // ρ × 1000 per rejection: the cap (10⁶ ρ₁) after two
    let (k, stall, _) = run(&mut p, 1e3);
    assert_eq!((k, stall), (3, Stall::RhoCap));
    // ρ × 1.01: the cap is far, the rejections in a row stop it
    let (k, stall, srpa) = run(&mut p, 1.01);
    assert_eq!((k, stall), (REJECTED_IN_A_ROW_MAX, Stall::Rejected));
    let mut bytes = Vec::new();
    srpa.save(&mut bytes);
    let restored = Srpa::restore(&mut p, &bytes, srpa.opts).unwrap();
    assert_eq!(restored.rejected_in_a_row, REJECTED_IN_A_ROW_MAX);
    assert_eq!(restored.rho, srpa.rho);
}
