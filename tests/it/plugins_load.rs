//! Plugins loaded at run time: the swish example plugin (built as a shared library by this test)
//! and the deliberately broken fixture plugins, each giving its own diagnostic and never a crash;
//! discovery on the search path; `plugins check` and `plugins list` data.

use crate::common;

use common::plugins::{lib, lib_dir};
use mcopt::plugin_host::{plugins_check, plugins_list, LoadOptions, PluginSearch};
use mcopt::registry::{CallErrorKind, Order, Registry};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plugins")
        .join(name)
}

fn with_swish() -> Registry {
    let mut r = Registry::with_standard();
    r.load_library(&lib("mcopt_swish"))
        .expect("swish loads and passes its self-test");
    r
}

fn ray(r: &Registry, name: &str, a: [f64; 3]) -> [f64; 3] {
    let id = r.lookup(name).expect("known function");
    let (mut f0, mut f1, mut f2) = ([0.0], [0.0], [0.0]);
    r.call(
        id,
        &[],
        Order::Two,
        0.0,
        [&[a[0]], &[a[1]], &[a[2]]],
        [&mut f0, &mut f1, &mut f2],
    )
    .expect("call succeeds");
    [f0[0], f1[0], f2[0]]
}

fn codes(d: &mcopt::diag::Diags) -> Vec<&'static str> {
    d.iter().map(|d| d.code).collect()
}

#[test]
fn swish_matches_its_closed_form() {
    let r = with_swish();
    let info = r.info(r.lookup("swish").unwrap());
    assert_eq!(info.source.plugin, "swish");
    assert!(info
        .source
        .library
        .as_ref()
        .unwrap()
        .ends_with(lib("mcopt_swish").file_name().unwrap()));
    for (x, a1, a2) in [
        (-3.0, 1.0, 0.0),
        (-0.5, -2.0, 0.3),
        (0.0, 1.0, 1.0),
        (1.2, 0.7, -1.0),
        (6.0, 1.0, 2.0),
    ] {
        let s = 1.0 / (1.0 + f64::exp(-x));
        let d = s + x * s * (1.0 - s);
        let dd = 2.0 * s * (1.0 - s) + x * s * (1.0 - s) * (1.0 - 2.0 * s);
        let want = [x * s, d * a1, dd * a1 * a1 + d * a2];
        let got = ray(&r, "swish", [x, a1, a2]);
        for k in 0..3 {
            assert!(
                (got[k] - want[k]).abs() < 1e-12 * (1.0 + want[k].abs()),
                "x {x}: {got:?} vs {want:?}"
            );
        }
    }
    // mish(1) = tanh(ln(1 + e)).
    let m = ray(&r, "mish", [1.0, 0.0, 0.0]);
    assert!((m[0] - (1.0 + 1f64.exp()).ln().tanh()).abs() < 1e-14);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// f1 is the one-sided derivative and f2 the one-sided second derivative of t ↦ swish(a(t)).
    #[test]
    fn swish_coefficients_are_one_sided_derivatives(x in -4.0..4.0f64, d in -2.0..2.0f64, c in -1.0..1.0f64) {
        let r = with_swish();
        let f = ray(&r, "swish", [x, d, c]);
        let g = |t: f64| ray(&r, "swish", [x + d * t + 0.5 * c * t * t, 0.0, 0.0])[0];
        let h = 1e-4;
        let d1 = 2.0 * (g(h / 2.0) - g(0.0)) / (h / 2.0) - (g(h) - g(0.0)) / h;
        prop_assert!((d1 - f[1]).abs() < 1e-6 * (1.0 + f[1].abs()), "f1 {} vs {}", f[1], d1);
        let h = 1e-3;
        let s = |h: f64| (g(2.0 * h) - 2.0 * g(h) + g(0.0)) / (h * h);
        let d2 = 2.0 * s(h / 2.0) - s(h);
        prop_assert!((d2 - f[2]).abs() < 1e-4 * (1.0 + f[2].abs()), "f2 {} vs {}", f[2], d2);
    }

    /// Positive homogeneity in the direction: (a1, a2) → (λ a1, λ² a2) scales f1 by λ, f2 by λ².
    #[test]
    fn swish_is_positively_homogeneous(x in -4.0..4.0f64, d in -2.0..2.0f64, c in -1.0..1.0f64, l in 0.1..5.0f64) {
        let r = with_swish();
        let f = ray(&r, "swish", [x, d, c]);
        let g = ray(&r, "swish", [x, l * d, l * l * c]);
        prop_assert!((g[1] - l * f[1]).abs() < 1e-12 * (1.0 + g[1].abs()));
        prop_assert!((g[2] - l * l * f[2]).abs() < 1e-12 * (1.0 + g[2].abs()));
    }
}

#[test]
fn a_bare_name_is_found_on_the_search_path() {
    let mut search = PluginSearch {
        env_path: Some(format!("/nonexistent/mcopt:{}", lib_dir().display())),
        ..PluginSearch::default()
    };
    search.add_cli("swish");
    let paths = search.resolve_all().expect("found");
    assert_eq!(
        paths,
        vec![std::fs::canonicalize(lib("mcopt_swish")).unwrap()]
    );
    let mut r = Registry::with_standard();
    mcopt::plugin_host::load_all(&mut r, &search).expect("loads");
    assert!(r.lookup("swish").is_some());
}

#[test]
fn run_file_paths_are_relative_to_the_run_file() {
    let mut search = PluginSearch::default();
    let file = lib("mcopt_swish");
    search.add_run_file(
        format!("./{}", file.file_name().unwrap().to_str().unwrap()),
        lib_dir(),
    );
    assert_eq!(search.resolve_all().expect("found").len(), 1);
}

#[test]
fn a_missing_library_lists_every_path_tried() {
    let mut search = PluginSearch {
        env_path: Some("/nonexistent/a:/nonexistent/b".to_string()),
        ..PluginSearch::default()
    };
    search.add_cli("nosuchplugin");
    let d = search.resolve_all().unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::not_found"]);
    let msg = &d.0[0].message;
    for p in [
        "/nonexistent/a/libnosuchplugin.so",
        "/nonexistent/a/libmcopt_nosuchplugin.so",
        "/nonexistent/b/nosuchplugin.so",
    ] {
        assert!(msg.contains(p), "{p} not in {msg}");
    }
    // A bare name is never looked up in the current directory.
    assert!(
        !msg.lines().any(|l| l.trim() == "libnosuchplugin.so"),
        "{msg}"
    );
    let d = Registry::empty()
        .load_library(Path::new("/nonexistent/libx.so"))
        .unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::not_found"]);
}

#[test]
fn a_text_file_is_not_a_library() {
    let d = Registry::empty()
        .load_library(&fixture("not_a_library.so"))
        .unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::not_a_library"]);
    // Refused by the ELF check, before the loader sees the file.
    assert!(
        d.0[0]
            .message
            .contains("not an ELF shared library for this machine"),
        "{}",
        d.0[0].message
    );
    assert!(d.0[0]
        .path
        .as_deref()
        .unwrap()
        .ends_with("not_a_library.so"));
}

#[test]
fn a_library_without_the_entry_symbol() {
    let d = Registry::empty()
        .load_library(&lib("mcopt_fixture_no_entry"))
        .unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::no_entry"]);
    assert!(d.0[0].message.contains("mcopt_plugin_entry"));
}

#[test]
fn a_wrong_abi_version_names_both_versions() {
    let d = Registry::empty()
        .load_library(&lib("mcopt_fixture_wrong_abi"))
        .unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::abi"]);
    assert!(
        d.0[0]
            .message
            .contains("version 3 expected, found version 2"),
        "{}",
        d.0[0].message
    );
    assert!(d.0[0].message.contains("positional solver options"));
}

#[test]
fn misbehaving_functions_fail_the_self_test_one_diagnostic_each() {
    let mut r = Registry::with_standard();
    let d = r
        .load_library(&lib("mcopt_fixture_misbehaving"))
        .unwrap_err();
    assert!(
        d.iter().all(|d| d.code == "mcopt::plugin::self_test"),
        "{d}"
    );
    let text = d.to_string();
    assert!(
        text.contains("`panicky` of plugin misbehaving") && text.contains("panicky always panics"),
        "{text}"
    );
    assert!(
        text.contains("`nan_value` of plugin misbehaving") && text.contains("NaN"),
        "{text}"
    );
    assert!(
        text.contains("`wrong_derivative` of plugin misbehaving") && text.contains("f1 expected"),
        "{text}"
    );
    // Nothing of the failed plugin was registered.
    assert!(r.lookup("panicky").is_none() && r.lookup("wrong_derivative").is_none());
    assert!(plugins_check(&lib("mcopt_fixture_misbehaving")).is_err());
}

#[test]
fn calls_into_misbehaving_functions_are_errors() {
    let mut r = Registry::empty();
    r.load_library_with(
        &lib("mcopt_fixture_misbehaving"),
        LoadOptions { self_test: false },
    )
    .expect("loads unchecked");
    let mut f0 = [0.0; 2];
    let e = r.call(
        r.lookup("panicky").unwrap(),
        &[],
        Order::Zero,
        0.0,
        [&[1.0, 2.0], &[], &[]],
        [&mut f0, &mut [], &mut []],
    );
    let e = e.unwrap_err();
    let CallErrorKind::Panicked(m) = &e.kind else {
        panic!("{e:?}")
    };
    assert!(
        m.starts_with("panicked at ")
            && m.contains("misbehaving/src/lib.rs:")
            && m.ends_with(": panicky always panics"),
        "{m}"
    );
    assert!(
        e.to_string()
            .starts_with("function `panicky` of plugin misbehaving panicked at "),
        "{e}"
    );
    assert_eq!(mcopt::diag::Diag::from(e).code, "mcopt::plugin::call");
    let e = r.call(
        r.lookup("nan_value").unwrap(),
        &[],
        Order::Zero,
        0.0,
        [&[-1.0, 2.0], &[], &[]],
        [&mut f0, &mut [], &mut []],
    );
    assert_eq!(
        e.unwrap_err().kind,
        CallErrorKind::NotANumber {
            index: 1,
            coefficient: 0,
            argument: 2.0
        }
    );
    // A NaN argument may give a NaN result.
    let ok = r.call(
        r.lookup("nan_value").unwrap(),
        &[],
        Order::Zero,
        0.0,
        [&[-1.0, f64::NAN], &[], &[]],
        [&mut f0, &mut [], &mut []],
    );
    assert!(ok.is_ok());
}

#[test]
fn two_plugins_defining_the_same_name() {
    let mut r = with_swish();
    let d = r.load_library(&lib("mcopt_fixture_duplicate")).unwrap_err();
    assert_eq!(codes(&d), vec!["mcopt::plugin::duplicate"]);
    let msg = &d.0[0].message;
    assert!(
        msg.contains("`swish`")
            && msg.contains("libmcopt_swish")
            && msg.contains("libmcopt_fixture_duplicate"),
        "{msg}"
    );
    assert!(
        msg.contains("plugin swish ") && msg.contains("plugin swish_clone "),
        "{msg}"
    );
}

#[test]
fn plugins_check_reports_a_good_library() {
    let report = plugins_check(&lib("mcopt_swish")).expect("swish passes");
    assert_eq!(report.plugin, "swish");
    assert_eq!(report.abi_version, 3);
    let names: Vec<&str> = report.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["swish", "mish"]);
    assert!(report.functions.iter().all(|f| f.rays_checked >= 20));
    assert!(report.render_text().contains("function swish:"));
    assert!(serde_json::to_string(&report)
        .unwrap()
        .contains("\"plugin\":\"swish\""));
}

#[test]
fn plugins_list_shows_sources_parameters_and_solver_options() {
    let r = with_swish();
    let list = plugins_list(&r);
    let swish = list.functions.iter().find(|f| f.name == "swish").unwrap();
    assert!(swish
        .library
        .ends_with(lib("mcopt_swish").file_name().unwrap().to_str().unwrap()));
    let relu = list.functions.iter().find(|f| f.name == "relu").unwrap();
    assert_eq!(
        (relu.library.as_str(), relu.plugin.as_str()),
        ("built in", "std")
    );
    let text = list.render_text();
    assert!(text.contains("leaky_relu(x, slope = 0.01)"), "{text}");
    assert!(text.contains("gd  gradient descent"), "{text}");
    assert!(text.contains("lr (real, default 0.01, > 0)"), "{text}");
    assert!(text.contains("adam  Adam"), "{text}");
    assert!(serde_json::to_string(&list).is_ok());
}

#[test]
fn the_guide_shows_the_swish_plugin_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("plugins/sdk/src/guide.rs")).unwrap();
    let source = std::fs::read_to_string(root.join("plugins/swish/src/lib.rs")).unwrap();
    let guide_code: Vec<&str> = guide
        .lines()
        .map(|l| l.strip_prefix("//! ").unwrap_or(""))
        .collect();
    for line in source
        .lines()
        .filter(|l| !l.starts_with("//!") && !l.trim().is_empty())
    {
        assert!(
            guide_code.contains(&line),
            "the guide lacks the swish line `{line}`"
        );
    }
}

#[test]
fn the_guide_shows_the_momentum_solver_plugin_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("plugins/sdk/src/guide.rs")).unwrap();
    let source = std::fs::read_to_string(root.join("plugins/momentum/src/lib.rs")).unwrap();
    let guide_code: Vec<&str> = guide
        .lines()
        .map(|l| l.strip_prefix("//! ").unwrap_or(""))
        .collect();
    for line in source
        .lines()
        .filter(|l| !l.starts_with("//!") && !l.trim().is_empty())
    {
        assert!(
            guide_code.contains(&line),
            "the guide lacks the momentum line `{line}`"
        );
    }
}

#[test]
fn the_standard_plugin_built_as_a_shared_library_passes_check() {
    let report =
        plugins_check(&lib("mcopt_std")).expect("std passes its self-test through dlopen too");
    assert_eq!(report.plugin, "std");
    assert_eq!(report.functions.len(), 11);
    assert_eq!(
        report.solvers,
        vec!["adam".to_string(), "gd".to_string(), "srpa".to_string()]
    );
    // Loading it next to the built-in copy names both sources.
    let d = Registry::with_standard()
        .load_library(&lib("mcopt_std"))
        .unwrap_err();
    assert!(d.iter().all(|d| d.code == "mcopt::plugin::duplicate"));
    assert_eq!(d.len(), 14, "11 functions and 3 solvers collide");
    assert!(
        d.0[0].message.contains("(built in)") && d.0[0].message.contains("libmcopt_std"),
        "{}",
        d.0[0].message
    );
}

#[test]
fn the_registry_can_be_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Registry>();
}
