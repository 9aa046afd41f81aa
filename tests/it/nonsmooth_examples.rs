//! The classic nonsmooth test functions of `examples/nonsmooth/` (Haarala, Miettinen & Mäkelä
//! 2004): each model, resized with `--const n=...`, is evaluated by `mcopt eval` at its standard
//! start and at its known minimizer and compared with an independent evaluation written here
//! from the published formula (plain loops, 1e-12 relative), and with the closed forms of
//! f(start) and f* that `examples/nonsmooth/README.md` lists; `mcopt diff` at the minimizer is
//! compared with one-sided difference quotients of the independent evaluation.

use crate::support;

use std::path::{Path, PathBuf};

use mcopt::config::{load_point, PointMode, VarRole, VarSpec};
use support::{at, mcopt, num, path_str, repo, scratch_dir, Run};

/// One example: its file, its formula, its standard start, its minimizer and the closed forms.
struct Example {
    /// File name under `examples/nonsmooth/`.
    file: &'static str,
    /// The `const n` the file declares.
    default_n: usize,
    /// The sizes the tests resize it to (the default among them).
    sizes: [usize; 2],
    /// f(x), from the formula.
    f: fn(&[f64]) -> f64,
    /// The standard starting point at size n.
    start: fn(usize) -> Vec<f64>,
    /// Where the start is written down: `None` when it is the `param` initial value of the
    /// model, else a point file (at `default_n`) beside it.
    start_file: Option<&'static str>,
    /// f(start) in closed form.
    f_start: fn(usize) -> f64,
    /// The known minimizer at size n.
    x_star: fn(usize) -> Vec<f64>,
    /// f* in closed form.
    f_star: fn(usize) -> f64,
}

// ---- the formulas, written independently of the models -------------------------------------

/// Generalization of MAXQ: max_i x_i².
fn maxq(x: &[f64]) -> f64 {
    let mut f = f64::NEG_INFINITY;
    for &xi in x {
        f = f.max(xi * xi);
    }
    f
}

/// Generalization of MXHILB: max_i |Σ_j x_j / (i + j − 1)| (1-based i, j).
fn mxhilb(x: &[f64]) -> f64 {
    let n = x.len();
    let mut f = f64::NEG_INFINITY;
    for i in 1..=n {
        let mut s = 0.0;
        for j in 1..=n {
            s += x[j - 1] / (i + j - 1) as f64;
        }
        f = f.max(s.abs());
    }
    f
}

/// Chained LQ: Σ max(−x_i − x_{i+1}, −x_i − x_{i+1} + x_i² + x_{i+1}² − 1).
fn chained_lq(x: &[f64]) -> f64 {
    let mut f = 0.0;
    for i in 0..x.len() - 1 {
        let (a, b) = (x[i], x[i + 1]);
        let p = -a - b;
        f += p.max(p + a * a + b * b - 1.0);
    }
    f
}

/// The three pieces of Chained CB3 at (x_i, x_{i+1}).
fn cb3_pieces(a: f64, b: f64) -> [f64; 3] {
    [
        a.powi(4) + b * b,
        (2.0 - a) * (2.0 - a) + (2.0 - b) * (2.0 - b),
        2.0 * (-a + b).exp(),
    ]
}

/// Chained CB3 I: Σ max of the three pieces.
fn chained_cb3_1(x: &[f64]) -> f64 {
    let mut f = 0.0;
    for i in 0..x.len() - 1 {
        let [p, q, r] = cb3_pieces(x[i], x[i + 1]);
        f += p.max(q).max(r);
    }
    f
}

/// Chained CB3 II: max of the three sums.
fn chained_cb3_2(x: &[f64]) -> f64 {
    let mut s = [0.0; 3];
    for i in 0..x.len() - 1 {
        let p = cb3_pieces(x[i], x[i + 1]);
        for k in 0..3 {
            s[k] += p[k];
        }
    }
    s[0].max(s[1]).max(s[2])
}

/// Number of active faces: max(g(−Σ x_i), max_i g(x_i)), g(y) = ln(|y| + 1).
fn active_faces(x: &[f64]) -> f64 {
    let g = |y: f64| (y.abs() + 1.0).ln();
    let mut sum = 0.0;
    let mut f = f64::NEG_INFINITY;
    for &xi in x {
        sum += xi;
        f = f.max(g(xi));
    }
    f.max(g(-sum))
}

/// The two pieces of the chained crescents at (x_i, x_{i+1}).
fn crescent_pieces(a: f64, b: f64) -> [f64; 2] {
    [
        a * a + (b - 1.0) * (b - 1.0) + b - 1.0,
        -a * a - (b - 1.0) * (b - 1.0) + b + 1.0,
    ]
}

/// Chained crescent I: max of the two sums.
fn chained_crescent_1(x: &[f64]) -> f64 {
    let (mut s, mut t) = (0.0, 0.0);
    for i in 0..x.len() - 1 {
        let [p, q] = crescent_pieces(x[i], x[i + 1]);
        s += p;
        t += q;
    }
    s.max(t)
}

/// Chained crescent II: Σ max of the two pieces.
fn chained_crescent_2(x: &[f64]) -> f64 {
    let mut f = 0.0;
    for i in 0..x.len() - 1 {
        let [p, q] = crescent_pieces(x[i], x[i + 1]);
        f += p.max(q);
    }
    f
}

// ---- starts, minimizers, closed forms ------------------------------------------------------

fn constant(n: usize, v: f64) -> Vec<f64> {
    vec![v; n]
}

/// x_i = odd for odd i, even for even i (1-based).
fn alternating(n: usize, odd: f64, even: f64) -> Vec<f64> {
    (1..=n)
        .map(|i| if i % 2 == 1 { odd } else { even })
        .collect()
}

/// MAXQ's start: x_i = i for i ≤ n/2, −i after.
fn maxq_start(n: usize) -> Vec<f64> {
    (1..=n)
        .map(|i| if i <= n / 2 { i as f64 } else { -(i as f64) })
        .collect()
}

/// The chained crescents' f(start): 4.25 per odd i, 7.75 per even i, i = 1..n−1.
fn crescent_f_start(n: usize) -> f64 {
    let odd = n / 2; // odd i in 1..n−1
    let even = (n - 1) / 2;
    4.25 * odd as f64 + 7.75 * even as f64
}

fn examples() -> Vec<Example> {
    let big = 1000;
    vec![
        Example {
            file: "maxq.mco",
            default_n: big,
            sizes: [7, big],
            f: maxq,
            start: maxq_start,
            start_file: Some("maxq.start.yaml"),
            f_start: |n| (n * n) as f64,
            x_star: |n| constant(n, 0.0),
            f_star: |_| 0.0,
        },
        Example {
            file: "mxhilb.mco",
            default_n: 50,
            sizes: [7, 50],
            f: mxhilb,
            start: |n| constant(n, 1.0),
            start_file: None,
            f_start: |n| (1..=n).map(|j| 1.0 / j as f64).sum(),
            x_star: |n| constant(n, 0.0),
            f_star: |_| 0.0,
        },
        Example {
            file: "chained_lq.mco",
            default_n: big,
            sizes: [7, big],
            f: chained_lq,
            start: |n| constant(n, -0.5),
            start_file: None,
            f_start: |n| (n - 1) as f64,
            x_star: |n| constant(n, std::f64::consts::FRAC_1_SQRT_2),
            f_star: |n| -((n - 1) as f64) * std::f64::consts::SQRT_2,
        },
        Example {
            file: "chained_cb3_1.mco",
            default_n: big,
            sizes: [7, big],
            f: chained_cb3_1,
            start: |n| constant(n, 2.0),
            start_file: None,
            f_start: |n| 20.0 * (n - 1) as f64,
            x_star: |n| constant(n, 1.0),
            f_star: |n| 2.0 * (n - 1) as f64,
        },
        Example {
            file: "chained_cb3_2.mco",
            default_n: big,
            sizes: [7, big],
            f: chained_cb3_2,
            start: |n| constant(n, 2.0),
            start_file: None,
            f_start: |n| 20.0 * (n - 1) as f64,
            x_star: |n| constant(n, 1.0),
            f_star: |n| 2.0 * (n - 1) as f64,
        },
        Example {
            file: "active_faces.mco",
            default_n: big,
            sizes: [7, big],
            f: active_faces,
            start: |n| constant(n, 1.0),
            start_file: None,
            f_start: |n| ((n + 1) as f64).ln(),
            x_star: |n| constant(n, 0.0),
            f_star: |_| 0.0,
        },
        Example {
            file: "chained_crescent_1.mco",
            default_n: big,
            sizes: [7, big],
            f: chained_crescent_1,
            start: |n| alternating(n, -1.5, 2.0),
            start_file: Some("chained_crescent.start.yaml"),
            f_start: crescent_f_start,
            x_star: |n| constant(n, 0.0),
            f_star: |_| 0.0,
        },
        Example {
            file: "chained_crescent_2.mco",
            default_n: big,
            sizes: [7, big],
            f: chained_crescent_2,
            start: |n| alternating(n, -1.5, 2.0),
            start_file: Some("chained_crescent.start.yaml"),
            f_start: crescent_f_start,
            x_star: |n| constant(n, 0.0),
            f_star: |_| 0.0,
        },
    ]
}

// ---- helpers -------------------------------------------------------------------------------

fn model(e: &Example) -> String {
    at(&format!("examples/nonsmooth/{}", e.file))
}

/// `x: [..]` as a point or direction file in `dir`.
fn write_point(dir: &Path, name: &str, x: &[f64]) -> PathBuf {
    let values: Vec<String> = x.iter().map(|v| format!("{v}")).collect();
    let path = dir.join(name);
    std::fs::write(&path, format!("x: [{}]\n", values.join(", ")))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn assert_ok(run: &Run) {
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!run.panicked(), "{run:#?}");
}

/// `|a − b| ≤ rel · max(|a|, |b|)`.
fn assert_rel(got: f64, want: f64, rel: f64, what: &str) {
    let tol = rel * got.abs().max(want.abs());
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got:e}, expected {want:e} (difference {:e} > {tol:e})",
        (got - want).abs()
    );
}

/// `mcopt eval --json --const n=N MODEL [--at POINT]`: the value.
fn eval(e: &Example, n: usize, point: Option<&Path>) -> f64 {
    let m = model(e);
    let size = format!("n={n}");
    let mut args = vec!["eval", m.as_str(), "--const", size.as_str(), "--json"];
    if let Some(p) = point {
        args.extend(["--at", path_str(p)]);
    }
    let run = mcopt(&args);
    assert_ok(&run);
    num(&run.json(), "value", &run)
}

/// A direction with entries in [−1, 1] from a seeded linear congruential generator.
fn seeded(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn at_least_eight_examples_all_listed_in_the_readme() {
    let list = examples();
    assert!(list.len() >= 8, "only {} examples", list.len());
    let dir = repo().join("examples/nonsmooth");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("examples/nonsmooth")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.ends_with(".mco"))
        .collect();
    on_disk.sort();
    let mut tested: Vec<String> = list.iter().map(|e| e.file.to_owned()).collect();
    tested.sort();
    assert_eq!(on_disk, tested, "every model in the folder is tested here");
    for e in &list {
        assert!(
            readme.contains(e.file),
            "README.md does not list {}",
            e.file
        );
        let text = std::fs::read_to_string(dir.join(e.file)).expect("model");
        assert!(
            text.contains(&format!("const n = {}\n", e.default_n)),
            "{} does not declare const n = {}",
            e.file,
            e.default_n
        );
        assert!(text.contains("Source:"), "{} cites no source", e.file);
    }
}

#[test]
fn the_closed_forms_agree_with_the_formulas() {
    for e in examples() {
        for n in e.sizes {
            assert_rel((e.f)(&(e.start)(n)), (e.f_start)(n), 1e-12, e.file);
            assert_rel((e.f)(&(e.x_star)(n)), (e.f_star)(n), 1e-12, e.file);
        }
    }
}

#[test]
fn values_at_the_start_and_the_minimizer_match_the_formula() {
    let dir = scratch_dir("nonsmooth-values");
    for e in examples() {
        for n in e.sizes {
            let what = format!("{} at n = {n}", e.file);
            let start = (e.start)(n);
            let want = (e.f)(&start);
            // The start as the model declares it: the initial value, or a point file.
            let got = match e.start_file {
                None => eval(&e, n, None),
                Some(_) => eval(&e, n, Some(&write_point(&dir, "start.yaml", &start))),
            };
            assert_rel(got, want, 1e-12, &format!("f(start) of {what}"));
            let x_star = (e.x_star)(n);
            let got = eval(&e, n, Some(&write_point(&dir, "xstar.yaml", &x_star)));
            assert_rel(got, (e.f)(&x_star), 1e-12, &format!("f(x*) of {what}"));
            assert_rel(got, (e.f_star)(n), 1e-12, &format!("f* of {what}"));
        }
    }
}

#[test]
fn the_start_files_hold_the_standard_starts() {
    for e in examples() {
        let Some(file) = e.start_file else { continue };
        let path = repo().join("examples/nonsmooth").join(file);
        let spec = [VarSpec::new("x", e.default_n, 1, VarRole::Param)];
        let read = load_point(&path, &spec, PointMode::Point).unwrap_or_else(|d| panic!("{d}"));
        let x = read.values[0].clone().expect("x");
        assert_eq!(x, (e.start)(e.default_n), "{file}");
        let got = eval(&e, e.default_n, Some(&path));
        assert_rel(got, (e.f_start)(e.default_n), 1e-12, file);
    }
}

#[test]
fn directional_derivatives_at_the_minimizer_match_difference_quotients() {
    let dir = scratch_dir("nonsmooth-diff");
    for e in examples() {
        for n in e.sizes {
            let x = (e.x_star)(n);
            let at_x = write_point(&dir, "xstar.yaml", &x);
            let mut e1 = vec![0.0; n];
            e1[0] = 1.0;
            let r = seeded(n, 17);
            let minus_r: Vec<f64> = r.iter().map(|v| -v).collect();
            for (k, d) in [e1, vec![1.0; n], r, minus_r].iter().enumerate() {
                let what = format!("{} at n = {n}, direction {k}", e.file);
                let dfile = write_point(&dir, "dir.yaml", d);
                let (m, size) = (model(&e), format!("n={n}"));
                // x* of chained LQ is 1/√2 rounded: its ties hold within a few ulps.
                let run = mcopt(&[
                    "diff",
                    &m,
                    "--const",
                    &size,
                    "--at",
                    path_str(&at_x),
                    "--dir",
                    path_str(&dfile),
                    "--ztol",
                    "1e-9",
                    "--json",
                ]);
                assert_ok(&run);
                let d1 = num(&run.json(), "d1", &run);
                // One-sided quotients at t and t/2, extrapolated (Richardson) to cancel their
                // O(t) error: the pieces active on (0, t] do not change for t this small.
                let q = |t: f64| {
                    let moved: Vec<f64> = x.iter().zip(d).map(|(a, b)| a + t * b).collect();
                    ((e.f)(&moved) - (e.f)(&x)) / t
                };
                let t = 1e-6;
                let quotient = 2.0 * q(t / 2.0) - q(t);
                let tol = 1e-4 * d1.abs().max(1.0);
                assert!(
                    (d1 - quotient).abs() <= tol,
                    "{what}: f′(x*; d) = {d1}, difference quotient {quotient}"
                );
            }
        }
    }
}

#[test]
fn const_n_resizes_the_parameter() {
    for e in examples() {
        for n in [e.sizes[0], e.default_n, 3 * e.sizes[0]] {
            let m = model(&e);
            let size = format!("n={n}");
            let run = mcopt(&["check", &m, "--const", &size, "--json"]);
            assert_ok(&run);
            let v = run.json();
            assert_eq!(v["n"].as_u64(), Some(n as u64), "{}: {v}", e.file);
            assert_eq!(v["params"][0]["size"].as_u64(), Some(n as u64));
        }
        // Without --const the declared size holds.
        let run = mcopt(&["check", &model(&e), "--json"]);
        assert_ok(&run);
        assert_eq!(run.json()["n"].as_u64(), Some(e.default_n as u64));
    }
}
