//! The host's products with J by passes over the lifted graph (issue 19 item 2, docs/srpa.md
//! "Products"), against the stored J: on syn at its start point and at points with ties (pieces
//! chosen by the tie rule, and switched by it), on a model with every operation the kernels
//! cover (batched: two sequences), and on automatically lifted LASSO and max-type models. The
//! checks themselves are `common::products::check`.

use crate::common;

use common::eval::{compile, lower, model, repo, syn_graph};
use common::products::{check, group_entries, splits, At};
use mcopt::config::{ColumnSel, DataSpec, HeaderMode, RowSel, SeqLayout, Split, TestState};
use mcopt::eval::Evaluator;
use mcopt::forms::linearize::memory::estimate;
use mcopt::forms::linearize::Jacobian;
use mcopt::forms::{self, LiftMode, Lifted};
use mcopt::graph::{ElemBinary, ElemUnary, Graph, Op, ReduceKind};
use mcopt::registry::{Order, Registry};
use mcopt::rng::Rng;
use mcopt::session::train::{TrainOverrides, TrainPlan};
use mcopt::session::Inputs;

fn completed(source: &Graph, r: &Registry, l: &Lifted, theta: &[f64]) -> Vec<f64> {
    let mut ev = Evaluator::new(source, r, Order::Zero).unwrap();
    l.complete(&mut ev, theta).unwrap()
}

#[test]
fn syn_products_equal_the_stored_jacobians_at_a_start_and_at_ties() {
    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    let theta =
        mcopt::session::read_theta(&g, &repo().join("examples/data/srpa_syn_theta0.yaml")).unwrap();
    let l = forms::lift(&g);
    let z = completed(&g, &r, &l, &theta);
    // every other pre-activation on its ReLU kink (a tie bounded on the lifted u), then the
    // same point with every bound pushed against (the tie rule switches those pieces)
    let mut tied = z.clone();
    let u = group_entries(&l, "u");
    for &k in u.iter().step_by(2) {
        tied[k] = 0.0;
    }
    let pushed = vec![1.0; z.len()];
    let mut rng = Rng::new(3);
    let moved: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
    let points = [
        At::new(&z),
        At::new(&tied),
        At::after(&tied, &pushed),
        At::new(&moved),
    ];
    let (ties, switched) = check(&l, &g, &r, &points, 1, "syn");
    assert!(ties >= u.len(), "{ties} ties");
    assert!(switched >= u.len() / 2, "{switched} switched");
}

/// Every operation the product kernels cover inside layers: matrix products (θ times a lifted
/// layer), elementwise + − × ÷ with broadcasting of a scalar, `max` against a constant and
/// `min` of two lifted layers, every elementwise unary operation, registry functions with and
/// without breakpoints, transposes, entries (`a[t][2]`), gathers over an index range, sums,
/// squared norms, means, and an inner product (which goes by the per-entry rules).
const OPS: &str = "data x: seq(vec(5))
data y: seq(vec(3))
param W: mat(4, 5)
param U: mat(4, 4)
param M: mat(4, 4)
param A: mat(3, 4)
param s: real
layer h[0] = zeros(4)
layer a[t] = W * x[t] + U * h[t-1] + s
layer c[t] = M * a[t] - s * a[t][2]
layer h[t] = tanh(a[t]) * s + max(a[t], 0.1) - min(a[t], c[t]) + abs(a[t]) / (2 + exp(-c[t])) + relu(c[t]) + leaky_relu(a[t], 0.1)
layer q[t] = sqrt(1 + h[t]^2) + log(2 + a[t]^2) + pow(1 + c[t]^2, 1.5) + 3 * h[t]
layer n[t] = sum(q[t]) + mean(a[t]) + sqnorm(h[t]) + dot(q[t], a[t]) + sum(i in 1..3, q[t][i+1] * h[t][i])
layer o[t] = transpose(transpose(A)) * h[t] + n[t]
layer p = transpose(U * M)
layer p2 = sqnorm(transpose(p) - M)
minimize mean(t, sqnorm(o[t] - y[t])) + 0.1 * sqnorm(W) + 0.1 * p2
";

/// Model `src` on `file` (with or without a header) as `sequences` blocks of rows, the first
/// `steps` of each, x and y the column ranges `cols` (batched nodes).
fn batched(
    src: &str,
    r: &Registry,
    file: &str,
    header: HeaderMode,
    cols: [(usize, usize); 2],
    steps: usize,
    sequences: usize,
) -> Graph {
    let m = model(src, r);
    let spec = DataSpec {
        file: file.into(),
        header,
        bind: ["x", "y"]
            .iter()
            .zip(cols)
            .map(|(name, (start, end))| (name.to_string(), ColumnSel::Range { start, end }))
            .collect(),
        train: RowSel::Range {
            start: 0,
            end: steps,
        },
        test: None,
        sequences: SeqLayout::Blocks(sequences),
        test_state: TestState::Carry,
        origin: None,
    };
    let data = mcopt::session::bind_data(&m, &spec, &repo(), Split::Train).unwrap();
    lower(&m, data)
}

/// The OPS model on syn_T10.csv as two sequences (blocks of five rows), four steps each
/// (batched nodes).
fn ops_graph(r: &Registry) -> Graph {
    let file = "examples/data/syn_T10.csv";
    batched(OPS, r, file, HeaderMode::No, [(0, 5), (5, 8)], 4, 2)
}

#[test]
fn every_kernel_equals_the_stored_jacobian_and_the_per_entry_rules() {
    let r = Registry::with_standard();
    let g = ops_graph(&r);
    assert_eq!(g.sequences, 2);
    let l = forms::lift(&g);
    // the lifted graph has every operation the kernels cover
    let ops: Vec<&Op> = l.graph.nodes.iter().map(|n| &n.op).collect();
    let has = |f: &dyn Fn(&Op) -> bool| ops.iter().any(|o| f(o));
    for b in [
        ElemBinary::Add,
        ElemBinary::Sub,
        ElemBinary::Mul,
        ElemBinary::Div,
        ElemBinary::Max,
        ElemBinary::Min,
    ] {
        assert!(has(&|o| matches!(o, Op::Binary(x, ..) if *x == b)), "{b:?}");
    }
    for u in [
        ElemUnary::Neg,
        ElemUnary::Abs,
        ElemUnary::Exp,
        ElemUnary::Log,
        ElemUnary::Sqrt,
        ElemUnary::PowI(2),
        ElemUnary::Pow(1.5),
        ElemUnary::Scale(0.25),
    ] {
        assert!(has(&|o| matches!(o, Op::Unary(x, _) if *x == u)), "{u:?}");
    }
    for (what, f) in [
        (
            "matmul",
            &(|o: &Op| matches!(o, Op::MatMul(..))) as &dyn Fn(&Op) -> bool,
        ),
        ("transpose", &|o| matches!(o, Op::Transpose(_))),
        ("gather", &|o| matches!(o, Op::Gather { .. })),
        ("element", &|o| matches!(o, Op::Element { .. })),
        ("call", &|o| matches!(o, Op::Call { .. })),
        ("dot", &|o| matches!(o, Op::Dot(..))),
        ("sum", &|o| matches!(o, Op::Reduce(ReduceKind::Sum, _))),
        ("sqnorm", &|o| {
            matches!(o, Op::Reduce(ReduceKind::SqNorm, _))
        }),
    ] {
        assert!(has(f), "{what}");
    }
    let mut rng = Rng::new(11);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.4 * rng.normal()).collect();
    let z = completed(&g, &r, &l, &theta);
    let moved: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
    // ties: a on max(a, 0.1)'s kink, c on min(a, c)'s and on relu(c)'s, alternately
    let mut tied = moved.clone();
    let (a, c) = (group_entries(&l, "a"), group_entries(&l, "c"));
    for k in (0..a.len()).step_by(3) {
        tied[a[k]] = 0.1;
    }
    for k in (1..a.len()).step_by(3) {
        tied[c[k]] = tied[a[k]];
    }
    for k in (2..c.len()).step_by(3) {
        tied[c[k]] = 0.0;
    }
    let pushed = vec![1.0; z.len()];
    let points = [At::new(&z), At::new(&tied), At::after(&tied, &pushed)];
    let (ties, switched) = check(&l, &g, &r, &points, 2, "ops");
    assert!(ties >= 2 * a.len() / 3, "{ties} ties");
    assert!(switched > 0, "{switched} switched");
}

/// A ReLU RNN over a batch, with a scalar gain (a broadcast parameter in a layer) and a kink
/// between two varying sides: every operation the split passes allow.
const BATCH_RNN: &str = "data x: seq(vec(3))
data y: seq(vec(2))
param W: mat(4, 4)
param V: mat(4, 3)
param b: vec(4)
param s: real
param A: mat(2, 4)
param c: vec(2)
layer h[0] = zeros(4)
layer u[t] = W * h[t-1] + V * x[t] + b
layer h[t] = relu(u[t]) + s * tanh(u[t])
layer v[t] = A * max(h[t], 0.5 * u[t]) + c
minimize mean(t, sqnorm(v[t] - y[t])) + 0.1 * sqnorm(W)
";

/// Passes split over the batch (three unequal windows of 19 sequences, six steps each) equal the whole
/// passes and the stored J, at a start point and at ties.
#[test]
fn passes_split_over_the_batch_equal_the_stored_jacobians() {
    let r = Registry::with_standard();
    let file = "examples/data/sp500.csv";
    let g = batched(
        BATCH_RNN,
        &r,
        file,
        HeaderMode::Yes,
        [(1, 4), (11, 13)],
        6,
        19,
    );
    assert_eq!(g.sequences, 19);
    let l = forms::lift(&g);
    assert!(splits(&l, &g, &r), "the batched RNN's passes split");
    // the OPS model's transposes and reductions keep its passes whole
    let ops = ops_graph(&r);
    assert!(!splits(&forms::lift(&ops), &ops, &r));
    let mut rng = Rng::new(5);
    let theta: Vec<f64> = (0..g.n_params()).map(|_| 0.5 * rng.normal()).collect();
    let z = completed(&g, &r, &l, &theta);
    let mut tied = z.clone();
    for &k in group_entries(&l, "u").iter().step_by(3) {
        tied[k] = 0.0;
    }
    let pushed = vec![1.0; z.len()];
    let points = [At::new(&z), At::after(&tied, &pushed)];
    let (ties, _) = check(&l, &g, &r, &points, 7, "batched RNN");
    assert!(ties > 0, "{ties} ties");
}

/// Automatically lifted kinks: a LASSO and a max-type model (every kink outside layers).
#[test]
fn automatically_lifted_models_have_the_stored_jacobians_products() {
    let r = Registry::with_standard();
    let models = [
        "param x: vec(3)\nminimize sqnorm([[1, 2, 0], [0, 1, -1]] * x - [1, 2]) + 0.3 * norm1(x)",
        "const n = 5\nparam x: vec(n)\nminimize sum(i in 1..n-1, max(-x[i] - x[i+1], x[i]^2 + x[i+1]^2 - 1)) + min(x[1], x[2]) + abs(x[3] - 1)",
    ];
    for (i, text) in models.iter().enumerate() {
        let g = compile(text, &r);
        let l = forms::lift_with(&g, &r, LiftMode::Auto);
        assert!(l.layout.blocks.iter().any(|b| b.origin.is_some()), "{text}");
        let mut rng = Rng::new(20 + i as u64);
        let theta: Vec<f64> = (0..g.n_params()).map(|_| rng.normal()).collect();
        let z = completed(l.source_of(&g), &r, &l, &theta);
        let moved: Vec<f64> = z.iter().map(|v| v + 0.1 * rng.normal()).collect();
        // every lifted kink argument at its kink
        let mut tied = z.clone();
        for b in &l.layout.blocks {
            if b.name.ends_with(".arg") || b.name.contains(".arg[") {
                tied[b.range()].fill(0.0);
            }
        }
        let points = [At::new(&z), At::new(&moved), At::new(&tied)];
        check(&l, l.source_of(&g), &r, &points, 30 + i as u64, text);
    }
}

/// `mcopt train`'s plan on syn under `limit`, with `form.p1` replaced by `p1` when given: how
/// the host will hold J, and the codes of its warnings.
fn syn_plan(
    limit: Option<u64>,
    p1: Option<&str>,
) -> Result<(Option<Jacobian>, Vec<String>), String> {
    let mut path = repo().join("examples/syn/run.yaml");
    if let Some(p1) = p1 {
        let dir = crate::support::syn_copy(&format!("products-plan-{p1}"));
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("form: {p1: {beta: 1.0}}", &format!("form: {{p1: {p1}}}"));
        assert!(text.contains(p1));
        path = dir.join("syn/run.yaml");
        std::fs::write(&path, text).unwrap();
    }
    let run = mcopt::config::load_run(&path).map_err(|d| mcopt::diag::render_plain(&d))?;
    let inputs = Inputs {
        config: Some(path.to_string_lossy().into_owned()),
        ..Inputs::default()
    };
    let overrides = TrainOverrides {
        memory_limit: limit,
        ..TrainOverrides::default()
    };
    match TrainPlan::from_run(&run, &inputs, overrides) {
        Ok(plan) => Ok((
            plan.jacobian,
            plan.warnings.iter().map(|d| d.code.to_string()).collect(),
        )),
        Err(d) => Err(mcopt::diag::render_plain(&d)),
    }
}

/// The host stores J when the stored path fits, takes the products path (with a warning) under
/// a limit between the two paths' estimates, and refuses below both, naming both.
#[test]
fn the_memory_limit_chooses_how_the_host_holds_j() {
    let l = forms::lift(&syn_graph(
        &Registry::with_standard(),
        RowSel::Range { start: 0, end: 8 },
    ));
    let est = estimate(&l).unwrap();
    let (stored, products) = (est.total(), est.products_total());
    assert!(products < stored, "{est:?}");
    assert_eq!(
        syn_plan(Some(stored), None).unwrap(),
        (Some(Jacobian::Stored), Vec::new())
    );
    assert_eq!(syn_plan(None, None).unwrap().0, Some(Jacobian::Stored));
    let (chosen, warnings) = syn_plan(Some((stored + products) / 2), None).unwrap();
    assert_eq!(chosen, Some(Jacobian::Products));
    assert_eq!(warnings, ["mcopt::train::products"]);
    let e = syn_plan(Some(products - 1), None).unwrap_err();
    for needle in [
        "mcopt::train::memory",
        &format!("{stored} bytes"),
        &format!("{products} bytes"),
        "with J reached through products",
    ] {
        assert!(e.contains(needle), "{needle:?} missing: {e}");
    }
}

/// `form: {p1: {jacobian: …}}` forces the way J is held (β may then be left out); a forced way
/// that does not fit the limit is refused.
#[test]
fn the_run_file_can_force_how_the_host_holds_j() {
    let l = forms::lift(&syn_graph(
        &Registry::with_standard(),
        RowSel::Range { start: 0, end: 8 },
    ));
    let est = estimate(&l).unwrap();
    let (stored, products) = (est.total(), est.products_total());
    let forced = "{beta: 1.0, jacobian: products}";
    assert_eq!(
        syn_plan(Some(stored), Some(forced)).unwrap(),
        (Some(Jacobian::Products), Vec::new())
    );
    assert_eq!(
        syn_plan(None, Some("{jacobian: products}")).unwrap().0,
        Some(Jacobian::Products)
    );
    let e = syn_plan(Some(products - 1), Some(forced)).unwrap_err();
    assert!(e.contains("mcopt::train::memory"), "{e}");
    let between = Some((stored + products) / 2);
    let e = syn_plan(between, Some("{beta: 1.0, jacobian: stored}")).unwrap_err();
    assert!(e.contains("mcopt::train::memory"), "{e}");
    assert_eq!(
        syn_plan(between, Some("{jacobian: auto}")).unwrap(),
        (
            Some(Jacobian::Products),
            vec!["mcopt::train::products".to_string()]
        )
    );
    let e = syn_plan(None, Some("{jacobian: sparse}")).unwrap_err();
    assert!(
        e.contains("mcopt::config::value") && e.contains("products"),
        "{e}"
    );
}

/// The Kronecker-preconditioned Newton–CG (the path SRPA takes past the dense complement's
/// n_θ, forced here on syn): on real subproblems of syn's run (at its start and after five
/// SRPA steps), solved through the products of a host that does not store J, it gives the
/// direct factorization's step to 1e-8; the host hands the solver the parameters' shapes.
#[test]
fn the_kronecker_preconditioner_gives_the_direct_step_on_syn() {
    use mcopt::forms::p1host::P1Host;
    use mcopt::forms::Betas;
    use mcopt_plugin_sdk::p1::{Linearization, P1Problem, ParamShape};
    use mcopt_std::solvers::srpa::iteration::{Srpa, SrpaOptions};
    use mcopt_std::solvers::srpa::newton_cg::{MfSolver, ThetaPreconditioner};
    use mcopt_std::solvers::srpa::operator::HostJac;
    use mcopt_std::solvers::srpa::subproblem::{Method, SubOptions, SubSolution, SubSolver};

    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    let theta =
        mcopt::session::read_theta(&g, &repo().join("examples/data/srpa_syn_theta0.yaml")).unwrap();
    let l = forms::lift(&g);
    let betas = Betas::uniform(1.0);
    let pen = l.penalized(&betas);
    let z0 = completed(&g, &r, &l, &theta);
    let mut host = P1Host::new(&l, &pen, &betas, &g, &r).unwrap();
    let mut unstored = P1Host::with_jacobian(&l, &pen, &betas, &g, &r, Jacobian::Products).unwrap();
    // A 3×4, W 4×4, V 4×5, b 4, c 3, in θ's order
    let shapes: Vec<(usize, usize)> = unstored
        .structure()
        .params
        .iter()
        .map(|p: &ParamShape| (p.rows, p.cols))
        .collect();
    assert_eq!(shapes, [(3, 4), (4, 4), (4, 5), (4, 1), (3, 1)]);
    let opts = SrpaOptions {
        eta1: 0.9,
        eta2: 1.3,
        rho1: 0.5,
        ..SrpaOptions::default()
    };
    let mut srpa = Srpa::new(&mut host, z0, opts).unwrap();
    let st = unstored.structure().clone();
    for round in 0..2 {
        if round == 1 {
            for _ in 0..5 {
                srpa.step(&mut host).unwrap();
            }
        }
        let p = srpa.subproblem(&host);
        let mut direct = SubSolver::with_parameters(p.jac, st.n_theta, Method::Direct).unwrap();
        let mut reference = SubSolution::default();
        let rep = direct
            .solve(&p, SubOptions::default(), &mut reference)
            .unwrap();
        assert!(rep.converged, "{rep:?}");
        let mut lin = Linearization::for_structure(&st);
        let mut pieces = srpa.pieces.clone();
        unstored
            .linearize(&srpa.z, None, &mut pieces, &mut lin)
            .unwrap();
        assert_eq!(pieces, srpa.pieces);
        let kind = ThetaPreconditioner::Kronecker;
        let mut mf = MfSolver::with_preconditioner(st.n_z, st.rows(), kind);
        let mut sol = SubSolution::default();
        let rep = mf
            .solve(
                &p,
                &mut HostJac::new(&mut unstored),
                SubOptions::default(),
                &mut sol,
            )
            .unwrap();
        assert!(rep.converged && rep.cg_iterations > 0, "{rep:?}");
        assert_eq!(
            rep.schur_forms, 1,
            "the factors are formed once per J: {rep:?}"
        );
        assert!(mf.has_preconditioner());
        let d = crate::clarabel_ref::rel_diff(&sol.s, &reference.s);
        assert!(
            d <= 1e-8,
            "round {round}: the Kronecker path's step differs from the direct one by {d:e} \
             ({rep:?})"
        );
    }
}
