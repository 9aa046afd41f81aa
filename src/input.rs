//! Reading input files: one function for every kind of input (model, point, run file, data),
//! with a byte cap per kind so an endless file (`/dev/zero`) is refused instead of filling
//! memory, UTF-8 checking, and a leading byte-order mark skipped. Only regular files are
//! read: a directory, device, FIFO or socket is refused from its metadata before it is opened
//! (and a file is opened without blocking, so a FIFO put in its place cannot hang the open).

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

    /// What a file of this kind is called in messages ("a model", "a data file", ...).
    pub fn noun(self) -> &'static str {
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
    let too_large = || {
        Diag::new(
            "mcopt::io::too_large",
            format!(
                "the file is larger than {} MiB, the most mcopt reads as {}",
                cap >> 20,
                kind.noun()
            ),
        )
        .in_file(name.clone())
        .help("the limits per kind of input are listed in docs/run-files.md")
    };
    let (file, meta) = open_regular(path).map_err(|e| match e {
        OpenError::Io(e) => read_error(e),
        OpenError::NotAFile(found) => not_a_file(&name, kind, found),
    })?;
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
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

/// Why [`open_regular`] did not give a file.
#[derive(Debug)]
pub enum OpenError {
    /// The file could not be opened or its metadata read.
    Io(std::io::Error),
    /// It is not a regular file: what it is ("a directory", "a FIFO", ...).
    NotAFile(&'static str),
}

/// Open `path` for reading if it is a regular file: its metadata are checked before it is
/// opened, the open does not block (a FIFO swapped in meanwhile cannot hang it), and the opened
/// file is checked again. Returns the file and its metadata.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), OpenError> {
    let meta = std::fs::metadata(path).map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotAFile(file_type_name(&meta.file_type())));
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(OpenError::Io)?;
    let meta = file.metadata().map_err(OpenError::Io)?;
    if !meta.is_file() {
        return Err(OpenError::NotAFile(file_type_name(&meta.file_type())));
    }
    Ok((file, meta))
}

/// What a file is, with its article: "a directory", "a character device", "a FIFO", ...
pub fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "something other than a regular file"
    }
}

/// `mcopt::io::not_a_file`: `path` is a directory, device, FIFO or socket.
fn not_a_file(name: &str, kind: InputKind, found: &str) -> Diag {
    Diag::new(
        "mcopt::io::not_a_file",
        format!("a regular file expected as {}, found {found}", kind.noun()),
    )
    .in_file(name.to_owned())
    .help("mcopt reads inputs from regular files only; save the stream to a file first")
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
