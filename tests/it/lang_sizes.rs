//! Issue 17: sizes from constants (`vec(n)`, `vec(n-1)`, `mat(n, 2*n)`), resized by
//! `--const` on the command line and by overrides; a size that is not a positive integer is
//! a diagnostic at the size.

use crate::common;
use crate::support;

use common::eval::*;
use mcopt::check::Shape;
use mcopt::registry::Registry;

fn shapes(text: &str, consts: &[(&str, f64)]) -> Result<Vec<Shape>, Vec<mcopt::diag::Diag>> {
    compile_consts(text, consts, &Registry::with_standard())
        .map(|m| m.params.iter().map(|p| p.shape).collect())
        .map_err(|d| d.iter().cloned().collect())
}

const MODEL: &str = "const n = 4
const m = n + 1
param x: vec(n)
param y: vec(n-1) = 2
param M: mat(n, 2*m)
minimize sum(x) + sum(y) + sum(M)
";

#[test]
fn sizes_are_integer_expressions_of_constants() {
    let s = shapes(MODEL, &[]).unwrap();
    assert_eq!(
        s,
        [Shape::vector(4), Shape::vector(3), Shape::matrix(4, 10)]
    );
    let s = shapes(MODEL, &[("n", 7.0)]).unwrap();
    assert_eq!(
        s,
        [Shape::vector(7), Shape::vector(6), Shape::matrix(7, 16)]
    );
    let r = Registry::with_standard();
    let m = model(MODEL, &r);
    assert_eq!(m.params[1].init, vec![2.0; 3]);
}

#[test]
fn a_size_that_is_not_a_positive_integer_is_a_diagnostic_at_the_size() {
    for (consts, found) in [(&[("n", 1.0)][..], "is 0"), (&[("n", 2.5)][..], "is 1.5")] {
        let d = shapes(
            "const n = 4\nparam x: vec(n - 1)\nminimize sum(x)\n",
            consts,
        )
        .unwrap_err();
        assert_eq!(d[0].code, "mcopt::check::size");
        let span = d[0].primary().unwrap();
        let text = "const n = 4\nparam x: vec(n - 1)\nminimize sum(x)\n";
        assert_eq!(&text[span.start..span.end], "n - 1");
        assert!(d[0].labels[0].1.contains(found), "{:?}", d[0].labels);
    }
    let d = shapes("param w: real\nparam x: vec(w)\nminimize sum(x)\n", &[]).unwrap_err();
    assert_eq!(d[0].code, "mcopt::check::size");
    let d = shapes("const n = 1e12\nparam x: vec(n)\nminimize sum(x)\n", &[]).unwrap_err();
    assert_eq!(d[0].code, "mcopt::check::size");
    // A constant computed from a let keeps working (declared with the lets).
    let s = shapes(
        "let k = 2\nconst c = k + 1\nparam x: vec(3)\nminimize c * sum(x)\n",
        &[],
    )
    .unwrap();
    assert_eq!(s, [Shape::vector(3)]);
    // A size before its constant is an unknown name.
    let d = shapes("param x: vec(n)\nconst n = 3\nminimize sum(x)\n", &[]).unwrap_err();
    assert_eq!(d[0].code, "mcopt::check::unknown_name");
}

#[test]
fn const_on_the_command_line_resizes_the_model() {
    let dir = crate::support::scratch_dir("lang-sizes");
    let path = dir.join("m.mco");
    std::fs::write(
        &path,
        "const n = 3\nparam x: vec(n) = 1\nminimize sum(i in 1..n-1, max(x[i]^2 + x[i+1]^2, x[i] + x[i+1]))\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = support::bin().args(args).arg(&path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run(&["check"]).contains("vec(3)"));
    assert!(run(&["check", "--const", "n=50"]).contains("vec(50)"));
    // Each of the n − 1 terms is max(2, 2) = 2.
    let v = run(&["eval", "--const", "n=50"]);
    assert!(v.contains("98"), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
