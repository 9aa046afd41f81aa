//! The depth limits, exactly at and just past them, in threads with a 2 MiB stack: the deepest
//! accepted inputs must parse (and drop) without overflowing, the next level must be refused.

use crate::common;

use mcopt::diag::SourceFile;
use mcopt::syntax::ast::Program;
use mcopt::syntax::{parse, MAX_DEPTH, MAX_NESTING};

fn small_stack(f: impl FnOnce() + Send + 'static) {
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn a test thread");
    if let Err(e) = handle.join() {
        std::panic::resume_unwind(e);
    }
}

fn run(text: String) -> Result<Program, String> {
    parse(&SourceFile::new("limits.mco", text)).map_err(|d| {
        d.iter()
            .map(|d| format!("{}: {}", d.code, d.message))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// `minimize` followed by `open` n times, `x`, and `close` n times.
fn nested(open: &str, close: &str, n: usize) -> String {
    format!("minimize {}x{}\n", open.repeat(n), close.repeat(n))
}

fn assert_refused(result: Result<Program, String>, code: &str) {
    match result {
        Ok(_) => panic!("accepted, expected {code}"),
        Err(e) => assert!(e.starts_with(code), "expected {code}, got {e}"),
    }
}

#[test]
fn brackets_at_the_nesting_limit() {
    small_stack(|| {
        for (open, close) in [("(", ")"), ("[", "]"), ("f(", ")"), ("x[", "]")] {
            let ok = run(nested(open, close, MAX_NESTING));
            assert!(ok.is_ok(), "{open}: {:?}", ok.err());
            assert_refused(
                run(nested(open, close, MAX_NESTING + 1)),
                "mcopt::parse::nesting",
            );
        }
    });
}

#[test]
fn unary_minus_and_powers_at_the_nesting_limit() {
    small_stack(|| {
        assert!(run(nested("-", "", MAX_NESTING)).is_ok());
        assert_refused(
            run(nested("-", "", MAX_NESTING + 1)),
            "mcopt::parse::nesting",
        );
        // `-(` is two levels per repetition.
        assert!(run(nested("-(", ")", MAX_NESTING / 2)).is_ok());
        assert_refused(
            run(nested("-(", ")", MAX_NESTING / 2 + 1)),
            "mcopt::parse::nesting",
        );
        // A chain of powers recurses too; it fails later as a non-integer exponent.
        assert_refused(
            run(nested("x^", "", MAX_NESTING + 1)),
            "mcopt::parse::nesting",
        );
        assert_refused(
            run(nested("x^", "", MAX_NESTING - 1)),
            "mcopt::parse::syntax",
        );
    });
}

#[test]
fn long_chains_at_the_depth_limit() {
    small_stack(|| {
        // n terms make a left-leaning tree n levels deep.
        let sum = |n: usize| run(common::gen::long_sum(n));
        assert!(sum(MAX_DEPTH).is_ok());
        assert_refused(sum(MAX_DEPTH + 1), "mcopt::parse::depth");
        assert_refused(sum(50_000), "mcopt::parse::depth");
        let product = format!("minimize ({})\n", vec!["x"; MAX_DEPTH + 1].join(" * "));
        assert_refused(run(product), "mcopt::parse::depth");
    });
}

#[test]
fn deep_brackets_with_long_chains_inside() {
    small_stack(|| {
        // Each level is `(inner + x + x + x + x)`: four levels of AST per bracket.
        let ok = nested("(", " + x + x + x + x)", 200);
        assert!(run(ok).is_ok());
        // 250 brackets of 5 terms: 1251 levels, too deep for the AST.
        let deep = nested("(", " + x + x + x + x + x)", 250);
        assert_refused(run(deep), "mcopt::parse::depth");
    });
}

#[test]
fn a_wide_model_is_fine() {
    small_stack(|| {
        // Wide is not deep: a 100 000-entry list and 20 000 statements.
        let list = format!(
            "param w: vec(100000) = [{}]\n",
            vec!["1"; 100_000].join(", ")
        );
        assert!(run(list).is_ok());
        let many = "let a = 1\n".repeat(20_000);
        assert_eq!(run(many).map(|p| p.items.len()), Ok(20_000));
    });
}
