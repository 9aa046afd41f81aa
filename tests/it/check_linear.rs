//! `check` is linear in the number of declarations (issue 7, item 6): checking 16× more
//! parameters costs about 16× more, far from the 256× of a quadratic pass. The bound is a ratio
//! of two timings in the same process (best of five each, in the thread's CPU time, so the
//! other tests of this crate running beside it do not count), with a wide margin, not a
//! wall-clock threshold.

use mcopt::check;
use mcopt::diag::SourceFile;
use mcopt::registry::Registry;
use mcopt::syntax::parse;

/// `n` scalar parameters and an objective over a few of them.
fn model(n: usize) -> String {
    let mut text = String::with_capacity(n * 24);
    for i in 0..n {
        text.push_str(&format!("param p{i}: real = 1\n"));
    }
    let terms: Vec<String> = (0..n).step_by(1000).map(|i| format!("p{i}^2")).collect();
    text.push_str(&format!("minimize {}\n", terms.join(" + ")));
    text
}

/// The CPU time this thread has used, in seconds.
fn thread_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID needs nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Best of five timings (thread CPU time) of checking the model with `n` parameters, in
/// seconds.
fn check_seconds(n: usize, registry: &Registry) -> f64 {
    let source = SourceFile::new("many.mco", model(n));
    let program = parse(&source).unwrap_or_else(|_| panic!("the generated model parses"));
    (0..5)
        .map(|_| {
            let start = thread_seconds();
            let m = check::check(&source, &program, registry);
            let t = thread_seconds() - start;
            assert_eq!(m.map(|m| m.params.len()).ok(), Some(n));
            t
        })
        .fold(f64::INFINITY, f64::min)
}

#[test]
fn checking_is_linear_in_the_number_of_parameters() {
    let registry = Registry::with_standard();
    let small = check_seconds(5_000, &registry);
    let large = check_seconds(80_000, &registry);
    let ratio = large / small.max(1e-6);
    eprintln!("check: 5,000 parameters {small:.4} s, 80,000 {large:.4} s, ratio {ratio:.1}");
    // Linear: about 16. Quadratic: about 256. The margin (6× over linear) absorbs a loaded,
    // shared machine, where 4.6× noise was seen on a smaller pair.
    assert!(
        ratio < 100.0,
        "16× the parameters took {ratio:.1}× the time ({small:.4} s → {large:.4} s)"
    );
}
