//! Where plugin specs point (issue 7 items 12–14): run-file paths joined with the run file's
//! directory once, `std` naming the built-in standard plugin (never shadowed by a library on
//! MCOPT_PLUGIN_PATH), and relative paths versus bare names.

use crate::common;

use crate::support;

use std::path::Path;

use common::plugins::lib;

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn copy(from: &Path, to: &Path) {
    if let Some(d) = to.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

type Out = support::Run;

/// Run mcopt in `cwd` with `MCOPT_PLUGIN_PATH` set to `plugin_path` (or unset).
fn run(cwd: &Path, plugin_path: Option<&Path>, marker: Option<&Path>, args: &[&str]) -> Out {
    let mut inv = support::command(args).current_dir(cwd);
    if let Some(p) = plugin_path {
        inv = inv.env("MCOPT_PLUGIN_PATH", p);
    }
    if let Some(m) = marker {
        inv = inv.env("MCOPT_FIXTURE_MARKER", m);
    }
    inv.run()
}

const SWISH_MODEL: &str = "param x: real = 1\nminimize swish(x)\n";
const STD_MODEL: &str = "param x: real = 1\nminimize relu(x) + 1\n";

fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn run_file_plugin_paths_are_joined_with_its_directory_once() {
    let dir = support::scratch_dir("join");
    let swish = lib("mcopt_swish");
    copy(&swish, &dir.join("plant/lib").join(file_name(&swish)));
    write(&dir.join("plant/model.mco"), SWISH_MODEL);
    let entry = format!("lib/{}", file_name(&swish));
    write(
        &dir.join("plant/run.yaml"),
        &format!("model: model.mco\nplugins: [{entry}]\n"),
    );
    // A relative run-file path: `plant/run.yaml` must find `plant/lib/...`, not `plant/plant/lib/...`.
    let o = run(&dir, None, None, &["eval", "--config", "plant/run.yaml"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.stdout.contains("value"), "{}", o.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_marker_fixture_leaves_its_marker_when_loaded() {
    // The check below that `libstd.so` is never loaded is only as good as this fixture.
    let dir = support::scratch_dir("marker");
    let planted = dir.join("plugins/libstd.so");
    copy(&lib("mcopt_fixture_marker"), &planted);
    write(&dir.join("model.mco"), STD_MODEL);
    let marker = dir.join("marker.txt");
    let path = planted.display().to_string();
    let o = run(
        &dir,
        None,
        Some(&marker),
        &["eval", "model.mco", "--plugin", &path],
    );
    assert_eq!(o.code, Some(2), "not a plugin: {}", o.stderr);
    assert!(marker.exists(), "the constructor did not run: {}", o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn std_names_the_built_in_plugin_and_cannot_be_shadowed() {
    let dir = support::scratch_dir("std");
    let plugins = dir.join("plugins");
    for name in ["libstd.so", "libmcopt_std.so", "std.so"] {
        copy(&lib("mcopt_fixture_marker"), &plugins.join(name));
    }
    write(&dir.join("model.mco"), STD_MODEL);
    write(&dir.join("run.yaml"), "model: model.mco\nplugins: [std]\n");
    let marker = dir.join("marker.txt");
    let runs: [&[&str]; 4] = [
        &["eval", "model.mco", "--plugin", "std"],
        &["eval", "model.mco", "--plugin", "mcopt_std"],
        &["eval", "--config", "run.yaml"],
        &[
            "check",
            "model.mco",
            "--config",
            "run.yaml",
            "--plugin",
            "std",
        ],
    ];
    for args in runs {
        let o = run(&dir, Some(&plugins), Some(&marker), args);
        assert_eq!(o.code, Some(0), "{args:?}: {}", o.stderr);
        assert!(!marker.exists(), "{args:?}: a planted library was loaded");
    }
    let o = run(
        &dir,
        Some(&plugins),
        Some(&marker),
        &["eval", "model.mco", "--json"],
    );
    assert!(o.stdout.contains("\"value\": 2.0"), "{}", o.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_relative_library_file_name_is_a_path_not_a_name() {
    let dir = support::scratch_dir("relative");
    let swish = lib("mcopt_swish");
    let name = file_name(&swish);
    let here = dir.join("here");
    copy(&swish, &here.join(&name));
    write(&here.join("model.mco"), SWISH_MODEL);
    // On the command line: relative to the current directory.
    let o = run(&here, None, None, &["eval", "model.mco", "--plugin", &name]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // Not searched for: a directory on MCOPT_PLUGIN_PATH holding it does not help.
    let elsewhere = dir.join("elsewhere");
    write(&elsewhere.join("model.mco"), SWISH_MODEL);
    let o = run(
        &elsewhere,
        Some(&here),
        None,
        &["eval", "model.mco", "--plugin", &name],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("mcopt::plugin::not_found"),
        "{}",
        o.stderr
    );
    // While the bare name is searched for there.
    let o = run(
        &elsewhere,
        Some(&here),
        None,
        &["eval", "model.mco", "--plugin", "swish"],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    // In a run file: relative to the run file's directory.
    write(
        &here.join("run.yaml"),
        &format!("model: model.mco\nplugins: [{name}]\n"),
    );
    let o = run(&dir, None, None, &["eval", "--config", "here/run.yaml"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}
