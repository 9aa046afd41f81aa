//! Expected-output files: compare a rendering with the file beside the input; a missing file
//! is written and the test fails (so every new case is reviewed once). `MCOPT_BLESS=1`
//! rewrites files that differ.

use std::fs;
use std::path::{Path, PathBuf};

/// The inputs `dir/*.ext`, sorted.
pub fn inputs(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

/// Compare `actual` with the file `expected`; returns a failure description, if any.
pub fn check(expected: &Path, actual: &str) -> Option<String> {
    let bless = std::env::var_os("MCOPT_BLESS").is_some();
    match fs::read_to_string(expected) {
        Ok(want) if want == actual => None,
        Ok(want) => {
            if bless {
                write(expected, actual);
            }
            Some(format!(
                "{} differs{}\n--- expected\n{want}\n--- actual\n{actual}",
                expected.display(),
                if bless { " (rewritten)" } else { "" }
            ))
        }
        Err(_) => {
            write(expected, actual);
            Some(format!(
                "{} was missing; written, review it:\n{actual}",
                expected.display()
            ))
        }
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// `(path without extension, source named by its file name)` for every `*.mco` file in the
/// repository folder `dir` (for example `tests/parse/ok`).
pub fn sources(dir: &str) -> Vec<(String, std::sync::Arc<mcopt::diag::SourceFile>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    inputs(&dir, "mco")
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (
                p.with_extension("").to_string_lossy().into_owned(),
                mcopt::diag::SourceFile::new(name, text),
            )
        })
        .collect()
}
