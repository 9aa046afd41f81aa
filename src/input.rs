//! Reading input files: one function for every kind of input (model, point, run file, data),
//! with a byte cap per kind so an endless file (`/dev/zero`) is refused instead of filling
//! memory, UTF-8 checking, and a leading byte-order mark skipped.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::diag::{Diag, SourceFile};

/// What a file is read as; decides the byte cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A `.mco` model.
    Model,
    /// A point or direction file (YAML).
    Point,
    /// A run file (YAML).
    RunFile,
    /// A CSV data file.
    Data,
}

impl InputKind {
    /// The most bytes read for this kind (documented in `docs/run-files.md`).
    pub fn cap(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            InputKind::Model => 16 * MIB,
            InputKind::Point => 256 * MIB,
            InputKind::RunFile => MIB,
            InputKind::Data => 2048 * MIB,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            InputKind::Model => "a model",
            InputKind::Point => "a point or direction file",
            InputKind::RunFile => "a run file",
            InputKind::Data => "a data file",
        }
    }
}

/// The UTF-8 byte-order mark some editors write at the start of a file.
const BOM: &str = "\u{feff}";

/// Read `path` as text of `kind` into a [`SourceFile`] named by the path. Failures are
/// `mcopt::io::read` (cannot open or read), `mcopt::io::too_large` (past the cap) and
/// `mcopt::io::utf8` (not UTF-8), each naming the file.
pub fn read_source(path: &Path, kind: InputKind) -> Result<Arc<SourceFile>, Diag> {
    let name = path.display().to_string();
    let cap = kind.cap();
    let read_error = |e: std::io::Error| {
        Diag::new(
            "mcopt::io::read",
            format!("cannot read the file: {}", os_error(&e)),
        )
        .in_file(name.clone())
        .help(
            "check the path; relative paths in a run file are relative to the run file's directory",
        )
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > cap {
        return Err(Diag::new(
            "mcopt::io::too_large",
            format!(
                "the file is larger than {} MiB, the most mcopt reads as {}",
                cap >> 20,
                kind.noun()
            ),
        )
        .in_file(name)
        .help("the limits per kind of input are listed in docs/run-files.md"));
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        Diag::new(
            "mcopt::io::utf8",
            format!(
                "expected UTF-8 text, found invalid bytes at byte {}",
                e.utf8_error().valid_up_to()
            ),
        )
        .in_file(name.clone())
    })?;
    if text.starts_with(BOM) {
        text.drain(..BOM.len());
    }
    Ok(SourceFile::new(name, text))
}

/// An OS error in lowercase words ("no such file or directory (os error 2)").
pub fn os_error(e: &std::io::Error) -> String {
    let s = e.to_string();
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_uppercase() && !chars.clone().next().is_some_and(char::is_uppercase) => {
            c.to_lowercase().chain(chars).collect()
        }
        _ => s,
    }
}
