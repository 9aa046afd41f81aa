//! Sweeps of training runs: planning a manifest of entries from a sweep file, running
//! entries (one by index, or a local pool of worker processes), their status, and the
//! ranked table over seeds. Cluster engines (Slurm job arrays, Kubernetes indexed jobs)
//! run the same `mcopt sweep run DIR` per index; [`cluster`] writes their job files.
//!
//! Layout of a sweep directory (nothing is shared between runs but the read-only manifest):
//!
//! ```text
//! DIR/manifest.json            entries: index, setting, overrides, seed, run file, hash
//! DIR/runs/0007/run.yaml       the effective run file of entry 7
//! DIR/runs/0007/…              train's outputs (params.yaml, trace.csv, report.json, checkpoint)
//! DIR/runs/0007/state.json     running (pid) / done / failed / interrupted, with its hash
//! DIR/runs/0007/lock           flock'ed by the worker running the entry (and its train)
//! DIR/runs/0007/train.log      train's stderr; train.json its JSON output (or diagnostics)
//! ```

pub mod cluster;
pub mod collect;
mod exec;
mod lock;
mod plan;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::{Diag, Diags};

pub use exec::{diags_text, run_entry, run_pool, EntryOutcome, PoolSummary};
pub use plan::{content_hash, plan, PlanOptions};

/// The lock file of an entry, in its directory (see `lock.rs`).
pub const LOCK_FILE: &str = "lock";

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// The plan of a sweep: written once by `sweep plan`, read-only afterwards.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub version: u32,
    /// The sweep file it was planned from.
    pub sweep: String,
    pub base: String,
    pub settings: usize,
    pub seeds: Vec<u64>,
    pub entries: Vec<Entry>,
}

/// One run of the sweep: one setting with one seed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub index: usize,
    /// Index of the setting (entries of one setting differ only in the seed).
    pub setting: usize,
    /// The overrides of the setting, by key path.
    pub overrides: Value,
    pub seed: u64,
    /// The effective run file, relative to the sweep directory.
    pub run_file: String,
    /// sha256 of the model, data (and starting point) files and the effective run file.
    pub hash: String,
}

/// The state of one entry, as recorded in its `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    Running {
        pid: u32,
        hash: String,
    },
    Done {
        hash: String,
        seconds: f64,
    },
    Failed {
        hash: String,
        exit_code: Option<i32>,
        message: String,
    },
    /// Stopped by a signal forwarded from its worker; `sweep run` resumes it.
    Interrupted {
        hash: String,
        signal: i32,
    },
}

/// Where an entry stands for `sweep status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Done,
    Running,
    Failed,
    /// Stopped by a signal, or a `running` entry whose process is gone (its lock released, or
    /// its pid dead): `sweep run` resumes it from its checkpoint.
    Interrupted,
    Pending,
}

impl Manifest {
    /// Read `DIR/manifest.json`.
    pub fn load(dir: &Path) -> Result<Manifest, Diags> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diags::from(
                Diag::new(
                    "mcopt::sweep::manifest",
                    format!(
                        "cannot read the sweep's manifest: {}",
                        crate::input::os_error(&e)
                    ),
                )
                .in_file(path.display().to_string())
                .help("plan the sweep first: `mcopt sweep plan SWEEP.yaml --out DIR`"),
            )
        })?;
        let m: Manifest = serde_json::from_str(&text).map_err(|e| {
            Diags::from(
                Diag::new(
                    "mcopt::sweep::manifest",
                    format!("the manifest is not valid: {e}"),
                )
                .in_file(path.display().to_string()),
            )
        })?;
        if m.version != MANIFEST_VERSION {
            let msg = format!(
                "the manifest has format version {}, this mcopt reads version {MANIFEST_VERSION}",
                m.version
            );
            return Err(Diag::new("mcopt::sweep::manifest", msg)
                .in_file(path.display().to_string())
                .into());
        }
        Ok(m)
    }

    /// The entry with `index`, or a diagnostic giving the valid range.
    pub fn entry(&self, index: usize) -> Result<&Entry, Diags> {
        self.entries.get(index).ok_or_else(|| {
            let msg = format!(
                "the sweep has no entry {index}: its indices are 0..{}",
                self.entries.len()
            );
            Diag::new("mcopt::sweep::index", msg).into()
        })
    }
}

/// The directory of entry `index`.
pub fn run_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join("runs").join(format!("{index:04}"))
}

/// The recorded state of an entry, if any.
pub fn entry_state(dir: &Path, index: usize) -> Option<EntryState> {
    use std::io::Read as _;
    // A state is a few hundred bytes: never read a device or an endless file.
    let (file, _) = crate::input::open_regular(&run_dir(dir, index).join("state.json")).ok()?;
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Where an entry stands: done (with the planned hash), running (its lock is held, or without
/// a lock file a live process on this machine), interrupted (a signal, or a `running` state
/// whose process is gone), failed, or pending.
pub fn status_of(dir: &Path, entry: &Entry) -> Status {
    match entry_state(dir, entry.index) {
        Some(EntryState::Done { hash, .. }) if hash == entry.hash => Status::Done,
        Some(EntryState::Done { .. }) => Status::Pending,
        Some(EntryState::Running { pid, .. }) => match lock_held(&run_dir(dir, entry.index)) {
            Some(true) => Status::Running,
            Some(false) => Status::Interrupted,
            None if process_alive(pid) => Status::Running,
            None => Status::Interrupted,
        },
        Some(EntryState::Interrupted { .. }) => Status::Interrupted,
        Some(EntryState::Failed { .. }) => Status::Failed,
        None => Status::Pending,
    }
}

/// Whether a worker holds the entry's lock (None: no lock file, or it cannot be probed).
fn lock_held(run: &Path) -> Option<bool> {
    let file = std::fs::File::open(run.join(LOCK_FILE)).ok()?;
    lock::held_elsewhere(&file).ok()
}

/// A failed entry, for `sweep status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub index: usize,
    pub exit_code: Option<i32>,
    pub message: String,
}

/// The failed entries of a sweep, in index order, with their exit codes and messages.
pub fn failures(dir: &Path, manifest: &Manifest) -> Vec<Failure> {
    manifest
        .entries
        .iter()
        .filter(|e| status_of(dir, e) == Status::Failed)
        .filter_map(|e| match entry_state(dir, e.index) {
            Some(EntryState::Failed {
                exit_code, message, ..
            }) => Some(Failure {
                index: e.index,
                exit_code,
                message,
            }),
            _ => None,
        })
        .collect()
}

/// Counts of entries by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub done: usize,
    pub running: usize,
    pub failed: usize,
    pub interrupted: usize,
    pub pending: usize,
}

/// Count the entries of a sweep by status.
pub fn counts(dir: &Path, manifest: &Manifest) -> Counts {
    let mut c = Counts {
        total: manifest.entries.len(),
        ..Counts::default()
    };
    for e in &manifest.entries {
        match status_of(dir, e) {
            Status::Done => c.done += 1,
            Status::Running => c.running += 1,
            Status::Failed => c.failed += 1,
            Status::Interrupted => c.interrupted += 1,
            Status::Pending => c.pending += 1,
        }
    }
    c
}

/// Whether a process with this id exists on this machine (Linux: `/proc/PID`).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
