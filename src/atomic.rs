//! Atomic file writes: the one way mcopt writes an output file (params, traces, plots,
//! reports, checkpoints, sweep manifests and run files, JUnit XML).

use std::io::Write as _;
use std::path::Path;

use crate::diag::{Diag, Diags};
use crate::input::os_error;

/// Write `bytes` to `path` atomically: a temporary file beside it, fsync, rename, so a reader
/// sees the old file or the new one, never half of one. Creates the parent directory.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), Diags> {
    write_with(path, |f| f.write_all(bytes))
}

/// [`write`] with the contents streamed by `fill` into the temporary file, for outputs too large
/// to hold twice in memory (checkpoints of large models).
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), Diags> {
    let fail = |what: &str, e: std::io::Error| -> Diags {
        Diag::new(
            "mcopt::io::write",
            format!("cannot {what}: {}", os_error(&e)),
        )
        .in_file(path.display().to_string())
        .into()
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(|e| fail("create its directory", e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(d) = dir {
            // Persist the rename itself; not every platform can open a directory, so best effort.
            if let Ok(dh) = std::fs::File::open(d) {
                let _ = dh.sync_all();
            }
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("write the file", e)
    })
}
