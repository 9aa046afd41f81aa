//! Point files: values land column-major in spec order, write_point round-trips bit-exactly,
//! missing files are reported, and a large point loads fast.

use std::path::Path;
use std::time::Instant;

use mcopt::config::{load_point, parse_point, write_point, PointMode, VarRole, VarSpec};
use mcopt::diag::SourceFile;
use proptest::prelude::*;

fn specs() -> Vec<VarSpec> {
    vec![
        VarSpec::new("A", 2, 3, VarRole::Param),
        VarSpec::new("b", 2, 1, VarRole::Param),
        VarSpec::new("x", 1, 1, VarRole::Param),
        VarSpec::new("h[1]", 2, 1, VarRole::Layer),
        VarSpec::new("h[2]", 2, 1, VarRole::Layer),
    ]
}

#[test]
fn good_point_gives_column_major_values_in_spec_order() {
    let p = load_point(
        Path::new("tests/config/point/good_point.yaml"),
        &specs(),
        PointMode::Point,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A = [[1, 2, 3], [4.5, -5e-3, 6]] column-major: 1, 4.5, 2, -0.005, 3, 6.
    assert_eq!(
        p.values[0].as_deref(),
        Some(&[1.0, 4.5, 2.0, -0.005, 3.0, 6.0][..])
    );
    assert_eq!(p.values[1].as_deref(), Some(&[0.25, -1.0][..]));
    assert_eq!(p.values[2].as_deref(), Some(&[3.0][..]));
    assert_eq!(p.values[3].as_deref(), Some(&[0.0, 1.0][..]));
    assert_eq!(
        p.values[4], None,
        "a missing layer is left to the forward pass"
    );
}

#[test]
fn direction_fills_missing_names_with_zeros() {
    let p = load_point(
        Path::new("tests/config/point/good_dir_partial.yaml"),
        &specs(),
        PointMode::Direction,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.values[0].as_deref(), Some(&[0.0; 6][..]));
    assert_eq!(p.values[2].as_deref(), Some(&[-1.0][..]));
    assert_eq!(p.values[4].as_deref(), Some(&[1.0, 0.0][..]));
}

#[test]
fn missing_file_names_the_file() {
    let e = load_point(
        Path::new("tests/config/point/no_such.yaml"),
        &specs(),
        PointMode::Point,
    )
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(
        e.0[0].path.as_deref(),
        Some("tests/config/point/no_such.yaml")
    );
    assert!(e.0[0].message.contains("os error"), "{}", e.0[0].message);
}

#[test]
fn written_form_is_lists_of_rows() {
    let s = [
        VarSpec::new("M", 2, 2, VarRole::Param),
        VarSpec::new("h[3]", 2, 1, VarRole::Layer),
    ];
    let text = write_point(&s, &[vec![1.0, 3.0, 2.0, 4.0], vec![0.1, -0.0]]);
    assert_eq!(
        text,
        "M:\n  - [1.0, 2.0]\n  - [3.0, 4.0]\n\"h[3]\": [0.1, -0.0]\n"
    );
}

fn round_trip(specs: &[VarSpec], values: &[Vec<f64>]) {
    let text = write_point(specs, values);
    let src = SourceFile::new("rt.yaml", text.clone());
    let back = parse_point(&src, specs, PointMode::Point).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for (v, b) in values.iter().zip(&back.values) {
        let b = b.as_ref().expect("every value was written");
        let bits: Vec<u64> = v.iter().map(|x| x.to_bits()).collect();
        let back_bits: Vec<u64> = b.iter().map(|x| x.to_bits()).collect();
        assert_eq!(bits, back_bits, "{text}");
    }
}

fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(f64::MIN_POSITIVE),
        Just(5e-324),
        Just(f64::MAX),
        (-1000i64..1000).prop_map(|i| i as f64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn write_then_parse_is_bit_exact(a in prop::collection::vec(finite(), 6), b in prop::collection::vec(finite(), 2), x in finite()) {
        let s = specs();
        round_trip(&s[..3], &[a, b, vec![x]]);
    }
}

#[test]
fn large_point_loads_fast() {
    // A lifted RNN: Nh = 20, 393 steps, layers u[t], h[t] (20 each) and v[t] (1) per step,
    // plus parameters: about 16.5k layer values, and a 200×200 matrix for 40k more.
    let mut specs = vec![VarSpec::new("W", 200, 200, VarRole::Param)];
    for t in 1..=393 {
        for (n, r) in [("u", 20), ("h", 20), ("v", 1)] {
            specs.push(VarSpec::new(format!("{n}[{t}]"), r, 1, VarRole::Layer));
        }
    }
    for i in 0..120 {
        specs.push(VarSpec::new(format!("P{i}"), 20, 20, VarRole::Param));
    }
    let values: Vec<Vec<f64>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (0..s.len())
                .map(|k| ((i * 7919 + k) as f64).sin() * 1e-3)
                .collect()
        })
        .collect();
    let total: usize = values.iter().map(Vec::len).sum();
    assert!(total > 100_000, "{total}");
    let text = write_point(&specs, &values);
    let start = Instant::now();
    let back = parse_point(&SourceFile::new("big.yaml", text), &specs, PointMode::Point)
        .unwrap_or_else(|e| panic!("{e}"));
    let elapsed = start.elapsed();
    assert_eq!(back.values[0].as_ref().map(Vec::len), Some(40_000));
    assert_eq!(back.values.last().and_then(|v| v.as_ref()), values.last());
    // Timing is reported, not asserted (shared machines are noisy; `mcopt bench` measures).
    eprintln!("parsed {total} numbers in {elapsed:?}");
}

#[test]
fn many_bad_values_are_capped() {
    let specs: Vec<VarSpec> = (0..200)
        .map(|i| VarSpec::new(format!("p{i}"), 50, 1, VarRole::Param))
        .collect();
    let text: String = (0..200)
        .map(|i| format!("p{i}: [{}]\n", vec![".nan"; 50].join(", ")))
        .collect();
    let start = Instant::now();
    let e = parse_point(&SourceFile::new("nan.yaml", text), &specs, PointMode::Point).unwrap_err();
    assert_eq!(e.len(), 20);
    assert!(e.0[19]
        .help
        .as_deref()
        .unwrap_or("")
        .contains("more problems"));
    eprintln!("refused in {:?}", start.elapsed());
}

#[test]
fn comment_only_file_is_an_empty_point() {
    let src = SourceFile::new("c.yaml", "# nothing here\n");
    let p = parse_point(
        &src,
        &[VarSpec::new("h[1]", 2, 1, VarRole::Layer)],
        PointMode::Point,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.values, [None]);
}
