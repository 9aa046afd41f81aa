//! Check speed (issue #2: "checking a generated 1,000-line model takes under 50 ms"): parse,
//! check and lower a model from tests/common/gen.rs. The timing test is ignored by default; run
//! it with `cargo test --release --test it check_bench:: -- --ignored --nocapture`.

use crate::common;

use std::time::Instant;

use mcopt::check::{self, LayerBody};
use mcopt::diag::{render_plain, SourceFile};
use mcopt::graph::{self, LowerOptions};
use mcopt::registry::Registry;
use mcopt::syntax::parse;

/// The generated models check and lower, with the structure the generator writes.
#[test]
fn generated_models_check_and_lower() {
    let registry = Registry::with_standard();
    for seed in 1..=4 {
        let text = common::gen::model(1000, seed);
        let source = SourceFile::new("gen.mco", text);
        let program = parse(&source).unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        let model = check::check(&source, &program, &registry)
            .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        // Statement i (1..=995) is a layer when i % 10 is 8 or 9: 2 per 10 lines.
        let layers = (1..996).filter(|i| i % 10 >= 8).count();
        assert_eq!(model.layers.len(), layers);
        assert!(model
            .layers
            .iter()
            .all(|l| matches!(l.body, LayerBody::Plain(_)) && l.shape.rows == 4));
        // Parameters: v0, W0, a0 and statements with i % 10 in 0..=4.
        assert_eq!(
            model.params.len(),
            3 + (1..996).filter(|i| i % 10 <= 4).count()
        );
        let g = graph::lower(&model, &LowerOptions::default())
            .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
        assert_eq!(g.layers.len(), layers);
        assert_eq!(g.n_params(), model.n_params());
    }
}

/// Median and best of `runs` timings of `f`, in milliseconds.
fn time_ms(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], t[0])
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn time_check_of_a_1000_line_model() {
    let registry = Registry::with_standard();
    let text = common::gen::model(1000, 1);
    let source = SourceFile::new("gen.mco", text);
    let program = parse(&source).unwrap_or_else(|d| panic!("{}", render_plain(&d)));
    let model = check::check(&source, &program, &registry)
        .unwrap_or_else(|d| panic!("{}", render_plain(&d)));
    let runs = 30;
    let parse_t = time_ms(runs, || {
        std::hint::black_box(parse(&source).ok());
    });
    let check_t = time_ms(runs, || {
        std::hint::black_box(check::check(&source, &program, &registry).ok());
    });
    let lower_t = time_ms(runs, || {
        std::hint::black_box(graph::lower(&model, &LowerOptions::default()).ok());
    });
    let all_t = time_ms(runs, || {
        let program = parse(&source).ok();
        let model = program.and_then(|p| check::check(&source, &p, &registry).ok());
        std::hint::black_box(model.and_then(|m| graph::lower(&m, &LowerOptions::default()).ok()));
    });
    println!(
        "1000-line model ({} bytes, {} params, {} layers), median / best of {runs} runs:",
        source.text.len(),
        model.params.len(),
        model.layers.len()
    );
    for (name, (median, best)) in [
        ("parse", parse_t),
        ("check", check_t),
        ("lower", lower_t),
        ("parse+check+lower", all_t),
    ] {
        println!("  {name:<18} {median:8.3} ms  {best:8.3} ms");
    }
}
