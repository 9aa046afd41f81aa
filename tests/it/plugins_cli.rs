//! Bad plugins through the command line: each fixture gives its own diagnostic on stderr and
//! exit code 2, never a crash, and nothing on stdout.

use crate::common;

use common::plugins::lib;
use std::path::{Path, PathBuf};

use crate::support;

use support::{command, Run};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `mcopt args.. --plugin P..` in the repository.
fn mcopt(args: &[&str], plugins: &[PathBuf]) -> Run {
    let mut inv = command(args).current_dir(repo());
    for p in plugins {
        inv = inv.arg("--plugin").arg(p);
    }
    inv.run()
}

/// Exit 2, the diagnostic code on stderr, nothing on stdout, no panic.
fn refused(out: &Run, code: &str) -> String {
    let err = out.stderr.clone();
    assert_eq!(out.code, Some(2), "{err}");
    assert!(err.contains(code), "expected {code} in:\n{err}");
    assert!(!err.contains("internal error"), "{err}");
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    err
}

#[test]
fn a_library_that_is_not_there_lists_the_paths_tried() {
    let out = command(&["plugins", "list", "--plugin", "nosuchplugin"])
        .env("MCOPT_PLUGIN_PATH", "/nonexistent/dir")
        .run();
    let err = refused(&out, "mcopt::plugin::not_found");
    assert!(err.contains("/nonexistent/dir/libnosuchplugin.so"), "{err}");
}

#[test]
fn a_file_that_is_not_a_library() {
    let path = repo().join("tests/fixtures/plugins/not_a_library.so");
    refused(
        &mcopt(
            &["plugins", "check", path.to_str().unwrap_or_default()],
            &[],
        ),
        "mcopt::plugin::not_a_library",
    );
}

#[test]
fn a_library_without_the_entry_symbol() {
    let path = lib("mcopt_fixture_no_entry");
    refused(
        &mcopt(
            &["plugins", "check", path.to_str().unwrap_or_default()],
            &[],
        ),
        "mcopt::plugin::no_entry",
    );
}

#[test]
fn a_wrong_abi_version_names_both_versions() {
    let path = lib("mcopt_fixture_wrong_abi");
    let err = refused(
        &mcopt(
            &["plugins", "check", path.to_str().unwrap_or_default()],
            &[],
        ),
        "mcopt::plugin::abi",
    );
    assert!(err.contains("found version 2"), "{err}");
    assert!(err.contains("older mcopt-plugin-sdk"), "{err}");
}

#[test]
fn functions_that_panic_return_nan_or_fail_the_self_test_are_refused_at_load() {
    let out = mcopt(
        &["eval", "examples/cases/abs_sq.mco"],
        &[lib("mcopt_fixture_misbehaving")],
    );
    let err = refused(&out, "mcopt::plugin::self_test");
    for word in ["panic", "NaN"] {
        assert!(
            err.to_lowercase().contains(&word.to_lowercase()),
            "{word} not in:\n{err}"
        );
    }
}

#[test]
fn two_plugins_defining_the_same_name() {
    let out = mcopt(
        &["plugins", "list"],
        &[lib("mcopt_swish"), lib("mcopt_fixture_duplicate")],
    );
    refused(&out, "mcopt::plugin::duplicate");
}

#[test]
fn a_good_plugin_checks_and_lists() {
    let swish = lib("mcopt_swish");
    let out = mcopt(
        &["plugins", "check", swish.to_str().unwrap_or_default()],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let out = mcopt(&["plugins", "list", "--json"], &[swish]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let text = &out.stdout;
    assert!(text.contains("swish") && text.contains("relu"), "{text}");
}

#[test]
fn plugins_list_shows_a_choice_option_with_its_names_and_default() {
    let out = mcopt(&["plugins", "list"], &[lib("mcopt_polyak")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("target (choice, default adaptive, one of known, adaptive)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("nesterov (bool, default false)"),
        "{}",
        out.stdout
    );
}
