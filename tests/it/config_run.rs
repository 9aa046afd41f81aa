//! Run files: the documented full example parses with every setting in place.

use std::path::Path;

use mcopt::config::{
    parse_run, BetaSpec, CertificateOrder, ColumnSel, HeaderMode, InitSpec, ProblemForm, RowSel,
    SeqLayout,
};
use mcopt::diag::SourceFile;

/// The first ```yaml block of docs/run-files.md.
fn doc_example() -> String {
    let doc = std::fs::read_to_string("docs/run-files.md").expect("docs/run-files.md");
    let start = doc.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let len = doc[start..].find("```").expect("end of block");
    doc[start..start + len].to_string()
}

#[test]
fn documented_example_parses() {
    let src = SourceFile::new("docs/example.yaml", doc_example());
    let run = parse_run(&src, Path::new("docs/example.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.model, Path::new("docs/rnn.mco"));
    // As written: the plugin search joins paths with the run file's directory, once.
    assert_eq!(run.plugins, ["plugins/libswish.so", "std"]);
    let data = run.data.as_ref().expect("data");
    assert_eq!(data.header, HeaderMode::No);
    assert_eq!(
        data.bind[0],
        ("x".to_string(), ColumnSel::Range { start: 0, end: 5 })
    );
    assert_eq!(
        data.bind[1],
        ("y".to_string(), ColumnSel::Indices(vec![5, 6, 7]))
    );
    assert_eq!(
        (data.train, data.test),
        (
            RowSel::Range { start: 0, end: 8 },
            Some(RowSel::Range { start: 8, end: 10 })
        )
    );
    assert_eq!(data.sequences, SeqLayout::Single);
    let solver = run.solver.as_ref().expect("solver");
    assert_eq!(solver.options.len(), 3);
    assert_eq!(solver.options["rho1"], serde_json::json!(0.5));
    assert!(src.text[solver.option_spans["eta1"].start..].starts_with("eta1"));
    assert_eq!(run.init, InitSpec::Gaussian { std: 0.1 });
    assert_eq!(run.seed, 123456);
    assert_eq!(
        (run.stop.max_iter, run.stop.tol, run.stop.max_seconds),
        (Some(100), Some(1.0e-8), Some(600.0))
    );
    // output paths are relative to the current directory, not to the run file's
    assert_eq!(
        run.output.junit.as_deref(),
        Some(Path::new("out/junit.xml"))
    );
    let v = &run.validate;
    assert_eq!(
        (v.train_max, v.test_max, v.stationarity_tol),
        (Some(0.5), Some(1.0), Some(1.0e-6))
    );
    assert_eq!(
        (v.order, v.form, v.beta, v.allow_inconclusive),
        (CertificateOrder::First, ProblemForm::P, None, false)
    );
    // β of (P1) is the form's, without a warning in the new spelling.
    let p1 = run.form.p1.as_ref().expect("form.p1");
    assert_eq!(p1.beta, BetaSpec::All(1.0));
    assert!(src.text[p1.span.start..].starts_with("1.0"));
    assert!(run.warnings.is_empty());
    assert_eq!((v.order.number(), v.form.as_str()), (1, "p"));
    assert_eq!(run.ztol, 0.0);
}

#[test]
fn integer_options_stay_integers() {
    let src = SourceFile::new(
        "r.yaml",
        "model: m.mco\nsolver: {name: adam, options: {max_inner: 50, lr: 1e-3}}\n",
    );
    let run = parse_run(&src, Path::new("r.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let o = &run.solver.as_ref().expect("solver").options;
    assert_eq!(o["max_inner"].as_u64(), Some(50));
    assert_eq!(o["lr"].as_f64(), Some(1e-3));
    assert_eq!(run.model, Path::new("m.mco"));
}

#[test]
fn init_forms() {
    let cases = [
        ("init: he", InitSpec::He),
        ("init: {scheme: zeros}", InitSpec::Zeros),
        ("init: {std: 0.5}", InitSpec::Gaussian { std: 0.5 }),
        (
            "init: {file: start.yaml}",
            InitSpec::File("runs/start.yaml".into()),
        ),
    ];
    for (line, want) in cases {
        let src = SourceFile::new("r.yaml", format!("model: m.mco\n{line}\n"));
        let run =
            parse_run(&src, Path::new("runs/r.yaml")).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(run.init, want, "{line}");
    }
    let src = SourceFile::new("r.yaml", "model: m.mco\ninit: {scheme: glorot, std: 1}\n");
    let e = parse_run(&src, Path::new("r.yaml")).unwrap_err();
    assert_eq!(e.0[0].code, "mcopt::config::value");
    assert_eq!(src.line_of(e.0[0].primary().expect("span").start), 2);
}

#[test]
fn validate_order_and_form_are_typed() {
    let src = SourceFile::new(
        "v.yaml",
        "model: m.mco\nvalidate: {order: 2, form: p1, beta: 3}\n",
    );
    let run = parse_run(&src, Path::new("v.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.validate.order, CertificateOrder::Second);
    assert_eq!(run.validate.form, ProblemForm::P1);
    for (bad, code) in [
        ("{order: 3}", "mcopt::config::value"),
        ("{form: p2}", "mcopt::config::value"),
        ("{order: first}", "mcopt::config::type"),
    ] {
        let src = SourceFile::new("v.yaml", format!("model: m.mco\nvalidate: {bad}\n"));
        let e = parse_run(&src, Path::new("v.yaml")).unwrap_err();
        assert_eq!(e.0[0].code, code, "{bad}: {e}");
    }
}
