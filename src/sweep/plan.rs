//! `sweep plan`: expand a sweep file into entries, write one effective run file per entry
//! and the manifest, with a content hash per entry.

use std::io::Read as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{run_dir, Entry, Manifest, MANIFEST_VERSION};
use crate::atomic::write as write_atomic;
use crate::config::{self, InitSpec, SweepFile};
use crate::diag::{Diag, Diags};
use crate::input::{os_error, InputKind};

/// Options of [`plan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// Write nothing: only validate every entry and return the manifest.
    pub dry_run: bool,
}

/// Expand `sweep` into entries under `dir`. Every entry's run file is rendered and validated
/// before anything is written; an existing manifest that differs is refused.
pub fn plan(sweep: &SweepFile, dir: &Path, opts: PlanOptions) -> Result<Manifest, Diags> {
    let base = config::base_tree(&sweep.base)?;
    let settings = sweep.settings();
    let mut entries = Vec::new();
    let mut texts = Vec::new();
    let mut diags = Diags::new();
    for (s, setting) in settings.iter().enumerate() {
        for &seed in &sweep.seeds {
            let index = entries.len();
            let run_file = run_dir(dir, index).join("run.yaml");
            let text = match config::render_entry(sweep, &base, setting, seed, &run_file) {
                Ok(t) => t,
                Err(d) => {
                    // One setting's problem is the same for every seed: report it once.
                    if seed == sweep.seeds[0] {
                        for x in d.iter() {
                            let seen = diags
                                .iter()
                                .any(|y| y.message == x.message && y.primary() == x.primary());
                            if !seen {
                                diags.push(x.clone());
                            }
                        }
                    }
                    continue;
                }
            };
            let hash = content_hash(&run_file, &text)?;
            entries.push(Entry {
                index,
                setting: s,
                overrides: config::setting_object(setting),
                seed,
                run_file: format!("runs/{index:04}/run.yaml"),
                hash,
            });
            texts.push((run_file, text));
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        sweep: sweep.path.display().to_string(),
        base: sweep.base.display().to_string(),
        settings: settings.len(),
        seeds: sweep.seeds.clone(),
        entries,
    };
    if opts.dry_run {
        return Ok(manifest);
    }
    refuse_other_sweep(dir, &manifest)?;
    for (path, text) in &texts {
        write_atomic(path, text.as_bytes())?;
    }
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    write_atomic(&dir.join("manifest.json"), json.as_bytes())?;
    Ok(manifest)
}

/// Planning into a directory that already holds a different sweep would orphan its runs.
fn refuse_other_sweep(dir: &Path, manifest: &Manifest) -> Result<(), Diags> {
    if !dir.join("manifest.json").exists() {
        return Ok(());
    }
    match Manifest::load(dir) {
        Ok(old) if old.entries == manifest.entries => Ok(()),
        _ => {
            let msg = format!(
                "{} already holds a different sweep",
                dir.join("manifest.json").display()
            );
            Err(Diag::new("mcopt::sweep::exists", msg)
                .in_file(dir.join("manifest.json").display().to_string())
                .help("plan into another directory (--out), or remove this one")
                .into())
        }
    }
}

/// sha256 over the effective run file text and the bytes of the files it reads (model, data,
/// starting point), each prefixed by its length, so that a changed input changes the hash.
pub fn content_hash(run_path: &Path, text: &str) -> Result<String, Diags> {
    let source = crate::diag::SourceFile::new(run_path.display().to_string(), text.to_string());
    let run = config::parse_run(&source, run_path)?;
    let mut h = Sha256::new();
    h.update((text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
    let mut files = vec![(run.model.clone(), InputKind::Model)];
    if let Some(d) = &run.data {
        files.push((run.dir.join(&d.file), InputKind::Data));
    }
    if let InitSpec::File(p) = &run.init {
        files.push((p.clone(), InputKind::Point));
    }
    for (f, kind) in files {
        hash_file(&mut h, &f, kind)?;
    }
    let digest = h.finalize();
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// Feed a file's length and bytes to the hash, streaming, with the read cap of its kind:
/// devices, FIFOs and directories are refused before the file is opened, and a file larger
/// than the cap before it is read.
fn hash_file(h: &mut Sha256, path: &Path, kind: InputKind) -> Result<(), Diags> {
    let input_error = |why: String| -> Diags {
        Diag::new(
            "mcopt::sweep::input",
            format!("cannot read an input of the sweep: {why}"),
        )
        .in_file(path.display().to_string())
        .into()
    };
    // Devices, FIFOs and directories are refused from their metadata, and the open does not
    // block: neither an endless device nor a FIFO without a writer is ever read.
    let (file, meta) = crate::input::open_regular(path).map_err(|e| match e {
        crate::input::OpenError::Io(e) => input_error(os_error(&e)),
        crate::input::OpenError::NotAFile(what) => Diags::from(
            Diag::new(
                "mcopt::sweep::input",
                format!("cannot read an input of the sweep: it is not a regular file ({what})"),
            )
            .in_file(path.display().to_string())
            .help("the model, the data and a starting point must be ordinary files"),
        ),
    })?;
    let len = meta.len();
    if len > kind.cap() {
        let msg = format!(
            "the file has {len} bytes, more than the {} MiB mcopt reads as {}",
            kind.cap() >> 20,
            kind.noun()
        );
        return Err(Diag::new("mcopt::io::too_large", msg)
            .in_file(path.display().to_string())
            .help("the limits per kind of input are listed in docs/run-files.md")
            .into());
    }
    h.update(len.to_le_bytes());
    // At most one byte past the length seen: a file that grows while it is read is an error,
    // never an endless read.
    let mut reader = file.take(len.saturating_add(1));
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(input_error(os_error(&e))),
        };
        read += n as u64;
        h.update(&buf[..n]);
    }
    if read != len {
        return Err(input_error(
            "the file changed while it was read".to_string(),
        ));
    }
    Ok(())
}
