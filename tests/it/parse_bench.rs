//! Parser throughput on generated models. The timing test is ignored by default; run it with
//! `cargo test --release --test it parse_bench:: -- --ignored --nocapture`.

use crate::common;

use std::time::Instant;

use mcopt::diag::SourceFile;
use mcopt::syntax::parse;

#[test]
fn generated_model_parses() {
    let text = common::gen::model(1000, 1);
    assert_eq!(text.lines().count(), 1000);
    let program = parse(&SourceFile::new("gen.mco", text)).unwrap_or_else(|d| panic!("{d}"));
    // Every line but the leading comment is one statement.
    assert_eq!(program.items.len(), 999);
}

#[test]
#[ignore = "timing; run in release with --ignored --nocapture"]
fn time_parse_of_a_1000_line_model() {
    let text = common::gen::model(1000, 1);
    let source = SourceFile::new("gen.mco", text);
    let runs = 50;
    let mut best = f64::INFINITY;
    let start = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        let program = parse(&source).unwrap_or_else(|d| panic!("{d}"));
        best = best.min(t.elapsed().as_secs_f64());
        std::hint::black_box(program);
    }
    let mean = start.elapsed().as_secs_f64() / f64::from(runs);
    println!(
        "1000-line model ({} bytes): best {:.2} ms, mean {:.2} ms over {runs} runs",
        source.text.len(),
        best * 1e3,
        mean * 1e3
    );
}
