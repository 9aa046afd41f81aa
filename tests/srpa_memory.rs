//! SRPA's memory known before it is spent (issue 19 item 1): the estimate of the (P1)
//! structure from the lifted graph against the structures actually built on syn and sp500, and
//! `mcopt train --memory-limit` refusing a run whose estimate exceeds it, before anything is
//! allocated or written.

mod common;
#[path = "cli/support.rs"]
mod support;

use common::eval::{sp500_graph, syn_graph};
use mcopt::config::RowSel;
use mcopt::forms::linearize::memory::estimate;
use mcopt::forms::linearize::Linearizer;
use mcopt::forms::{self};
use mcopt::graph::Graph;
use mcopt::registry::Registry;
use mcopt_std::solvers::srpa::sparse::SparseRows;
use mcopt_std::solvers::srpa::subproblem::{Method, SubSolver};

/// The estimate against the linearizer's pattern and the subproblem solver's factor and path.
fn check_estimate(g: &Graph, r: &Registry, factor_within: f64) {
    let l = forms::lift(g);
    let est = estimate(&l).unwrap();
    let lin = Linearizer::new(&l, r).unwrap();
    let pat = lin.pattern();
    assert_eq!(est.jac_nnz, pat.col_idx.len() as u64);
    assert_eq!(est.rows, pat.row_ptr.len() - 1);
    assert_eq!(est.n_z, l.layout.n_z);
    let jac = SparseRows {
        ncols: l.layout.n_z,
        row_ptr: pat.row_ptr.clone(),
        col_idx: pat.col_idx.clone(),
        values: vec![1.0; pat.col_idx.len()],
    };
    let solver = SubSolver::with_parameters(&jac, l.layout.n_theta, Method::Auto).unwrap();
    let (want, got) = (solver.factor_nnz() as f64, est.factor_nnz as f64);
    assert!(
        got >= want / factor_within && got <= want * factor_within,
        "factor: estimated {got}, actual {want}"
    );
    assert_eq!(est.schur, solver.uses_schur(), "{est:?}");
    assert!(
        est.total() > 8 * (3 * est.jac_nnz + est.factor_nnz),
        "{est:?}"
    );
}

#[test]
fn the_estimate_matches_the_structure_on_syn() {
    let r = Registry::with_standard();
    let g = syn_graph(&r, RowSel::Range { start: 0, end: 8 });
    // syn is small: the factor is dominated by the matrix itself, the θ fill rule overshoots
    check_estimate(&g, &r, 4.0);
}

#[test]
#[cfg_attr(debug_assertions, ignore)]
fn the_estimate_matches_the_structure_on_sp500() {
    let r = Registry::with_standard();
    let g = sp500_graph(&r);
    check_estimate(&g, &r, 1.25);
}

/// `mcopt train` on syn with `extra` arguments, in a scratch directory (outputs in `out/`).
fn train_syn(extra: &[&str]) -> support::Run {
    let mut args = vec!["train", "--quiet", "--out", "out", "--max-iter", "2"];
    args.extend_from_slice(extra);
    support::command(&args)
        .arg(support::repo().join("examples/syn/run.yaml"))
        .run()
}

#[test]
fn a_run_whose_estimate_exceeds_the_memory_limit_is_refused_before_anything_is_written() {
    let run = train_syn(&["--memory-limit", "64K"]);
    let text = support::unwrapped(&run.stderr);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(!run.panicked(), "{run:#?}");
    for needle in [
        "mcopt::train::memory",
        "the lifted problem needs about",
        "--memory-limit is 65536 bytes",
        "the KKT factor",
        "adam",
    ] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
    assert!(run.written.is_empty(), "{run:#?}");
    // the same run under a limit it fits in trains
    let run = train_syn(&["--memory-limit", "1G"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.written.contains(&"out".to_string()), "{run:#?}");
}

#[test]
fn a_memory_limit_that_is_not_a_byte_count_is_bad_input() {
    for bad in ["0", "4X", "-1", "G"] {
        let run = train_syn(&["--memory-limit", bad]);
        assert_eq!(run.code, Some(2), "{bad}: {run:#?}");
        assert!(run.written.is_empty(), "{run:#?}");
    }
}
