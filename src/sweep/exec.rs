//! `sweep run`: run one entry as a `mcopt train` child process (idempotent, resumable), or
//! every entry with a local pool of worker processes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::{content_hash, entry_state, run_dir, EntryState, Manifest};
use crate::atomic::write as write_atomic;
use crate::diag::{Diag, Diags};

/// What running one entry did.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryOutcome {
    /// Its report was complete with the same hash: nothing ran.
    Skipped,
    /// `mcopt train` ran to completion (`resumed`: from the entry's checkpoint).
    Ran { resumed: bool, seconds: f64 },
    /// `mcopt train` failed; its exit code (None: killed by a signal) and the tail of its log.
    Failed {
        exit_code: Option<i32>,
        message: String,
    },
}

/// What a pool run did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSummary {
    pub ran: Vec<usize>,
    pub skipped: Vec<usize>,
    pub failed: Vec<(usize, String)>,
}

/// Run entry `index` of the sweep in `dir` with the mcopt executable `exe`.
///
/// The entry's inputs are re-hashed first: a planned entry whose model, data or run file
/// changed since planning is refused. An entry already done with the same hash is skipped;
/// one with a checkpoint (interrupted or killed) resumes from it.
pub fn run_entry(
    exe: &Path,
    dir: &Path,
    manifest: &Manifest,
    index: usize,
) -> Result<EntryOutcome, Diags> {
    let entry = manifest.entry(index)?;
    let run_file = dir.join(&entry.run_file);
    let text = std::fs::read_to_string(&run_file).map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::sweep::input",
                format!("cannot read the entry's run file: {e}"),
            )
            .in_file(run_file.display().to_string()),
        )
    })?;
    let hash = content_hash(&run_file, &text)?;
    if hash != entry.hash {
        let msg = format!(
            "the inputs of entry {index} changed since the sweep was planned (hash {} planned, {} now)",
            short(&entry.hash),
            short(&hash)
        );
        return Err(Diag::new("mcopt::sweep::hash_mismatch", msg)
            .in_file(run_file.display().to_string())
            .help("the model, data or run file differ from the plan: plan the sweep again into a new directory")
            .into());
    }
    let out = run_dir(dir, index);
    if let Some(EntryState::Done { hash: h, .. }) = entry_state(dir, index) {
        if h == hash && out.join("report.json").exists() {
            return Ok(EntryOutcome::Skipped);
        }
    }
    let resumed = has_checkpoint(&out);
    let state = |s: &EntryState| write_atomic(&out.join("state.json"), &state_bytes(s));
    let log_path = out.join("train.log");
    let log = std::fs::File::create(&log_path).map_err(|e| {
        Diags::from(
            Diag::new("mcopt::io::write", format!("cannot write the run log: {e}"))
                .in_file(log_path.display().to_string()),
        )
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg(&run_file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    if resumed {
        cmd.arg("--resume");
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::sweep::spawn",
                format!("cannot start `mcopt train`: {e}"),
            )
            .in_file(exe.display().to_string()),
        )
    })?;
    state(&EntryState::Running {
        pid: child.id(),
        hash: hash.clone(),
    })?;
    let status = child.wait().map_err(|e| {
        Diags::from(Diag::new(
            "mcopt::sweep::spawn",
            format!("lost the `mcopt train` process: {e}"),
        ))
    })?;
    let seconds = start.elapsed().as_secs_f64();
    if status.success() {
        state(&EntryState::Done { hash, seconds })?;
        Ok(EntryOutcome::Ran { resumed, seconds })
    } else {
        let message = log_tail(&log_path);
        state(&EntryState::Failed {
            hash,
            exit_code: status.code(),
            message: message.clone(),
        })?;
        Ok(EntryOutcome::Failed {
            exit_code: status.code(),
            message,
        })
    }
}

/// Run every entry with `jobs` worker processes at a time, in index order. Entries already
/// done are skipped; a failed entry does not stop the others.
pub fn run_pool(
    exe: &Path,
    dir: &Path,
    manifest: &Manifest,
    jobs: usize,
    on_finish: &(dyn Fn(usize, &EntryOutcome) + Sync),
) -> Result<PoolSummary, Diags> {
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(PoolSummary::default());
    let first_error: Mutex<Option<Diags>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= manifest.entries.len() {
                    break;
                }
                let outcome = match run_entry(exe, dir, manifest, i) {
                    Ok(o) => o,
                    Err(d) => {
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(d);
                        // Stop handing out entries: an input problem affects every entry.
                        next.store(manifest.entries.len(), Ordering::Relaxed);
                        break;
                    }
                };
                on_finish(i, &outcome);
                let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                match outcome {
                    EntryOutcome::Skipped => s.skipped.push(i),
                    EntryOutcome::Ran { .. } => s.ran.push(i),
                    EntryOutcome::Failed { message, .. } => s.failed.push((i, message)),
                }
            });
        }
    });
    if let Some(d) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(d);
    }
    let mut s = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    s.ran.sort_unstable();
    s.skipped.sort_unstable();
    s.failed.sort_unstable_by_key(|(i, _)| *i);
    Ok(s)
}

/// Whether `mcopt train --out DIR` left a checkpoint there.
fn has_checkpoint(out: &Path) -> bool {
    std::fs::read_dir(out).is_ok_and(|rd| {
        rd.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("checkpoint"))
    })
}

fn state_bytes(s: &EntryState) -> Vec<u8> {
    serde_json::to_vec_pretty(s).unwrap_or_default()
}

/// The last lines of a run's log (what a failed run said).
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(6)..];
    let joined = tail.join("\n");
    if joined.is_empty() {
        "the run stopped without a message (killed?)".to_string()
    } else {
        joined.chars().take(2000).collect()
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
