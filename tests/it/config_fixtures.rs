//! Data-driven tests of the config module: every file under `tests/config/{point,csv,run}/`
//! is read; a `bad_*` file must fail and its rendered diagnostics must equal the `.diag` file
//! beside it (written on the first run, which then fails), any other file must succeed.
//!
//! Point files are read against the specs of [`point_specs`] (file names containing `dir_`
//! as directions). Run files are loaded, then their data bound for the train split (and the
//! test split if there is one) to `data x` of width 5 and `data y` of width 3, unless a
//! `# slots: x=11 y=1` line says otherwise.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use mcopt::config::{
    bind, load_point, load_run, read_csv, DataSlot, HeaderMode, PointMode, RowSel, Split, VarRole,
    VarSpec,
};
use mcopt::diag::{render_plain, Diags};

/// The model the point fixtures are written for.
pub fn point_specs() -> Vec<VarSpec> {
    vec![
        VarSpec::new("A", 2, 3, VarRole::Param),
        VarSpec::new("b", 2, 1, VarRole::Param),
        VarSpec::new("x", 1, 1, VarRole::Param),
        VarSpec::new("h[1]", 2, 1, VarRole::Layer),
        VarSpec::new("h[2]", 2, 1, VarRole::Layer),
    ]
}

fn check_point(path: &Path) -> Result<(), Diags> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mode = if name.contains("dir_") {
        PointMode::Direction
    } else {
        PointMode::Point
    };
    load_point(path, &point_specs(), mode).map(|_| ())
}

fn check_csv(path: &Path) -> Result<(), Diags> {
    read_csv(path, HeaderMode::Auto).map(|_| ())
}

fn slots_of(text: &str) -> Vec<DataSlot> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("# slots:"))
        .unwrap_or("x=5 y=3");
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(n, w)| DataSlot {
            name: n.into(),
            width: w.parse().unwrap_or(0),
        })
        .collect()
}

fn check_run(path: &Path) -> Result<(), Diags> {
    let run = load_run(path)?;
    let Some(data) = &run.data else { return Ok(()) };
    let slots = slots_of(&run.source.text);
    bind(data, &run.dir, Split::Train, &slots)?;
    if data.test.is_some() || matches!(data.train, RowSel::Fraction(_)) {
        bind(data, &run.dir, Split::Test, &slots)?;
    }
    Ok(())
}

fn fixtures(kind: &str, ext: &str) -> Vec<PathBuf> {
    let dir = Path::new("tests/config").join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

/// Run every fixture of one kind; returns the failures as messages.
fn run_kind(kind: &str, ext: &str, check: fn(&Path) -> Result<(), Diags>) {
    let mut failures = Vec::new();
    let files = fixtures(kind, ext);
    assert!(!files.is_empty(), "no fixtures in tests/config/{kind}");
    for path in files {
        let bad = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("bad_"));
        match (check(&path), bad) {
            (Ok(()), false) => {}
            (Ok(()), true) => failures.push(format!(
                "{}: expected diagnostics, got none",
                path.display()
            )),
            (Err(d), false) => failures.push(format!(
                "{}: unexpected diagnostics:\n{}",
                path.display(),
                render_plain(&d)
            )),
            (Err(d), true) => compare(&path, &render_plain(&d), &mut failures),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn compare(path: &Path, got: &str, failures: &mut Vec<String>) {
    let expected = path.with_extension(format!(
        "{}.diag",
        path.extension().unwrap_or_default().to_string_lossy()
    ));
    failures.extend(common::golden::check(&expected, got));
}

#[test]
fn point_fixtures() {
    run_kind("point", "yaml", check_point);
}

#[test]
fn csv_fixtures() {
    run_kind("csv", "csv", check_csv);
}

#[test]
fn run_fixtures() {
    run_kind("run", "yaml", check_run);
}
