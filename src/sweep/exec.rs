//! `sweep run`: run one entry as a `mcopt train` child process (idempotent, resumable), or
//! every entry with a local pool of worker processes.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{content_hash, entry_state, lock, run_dir, EntryState, Manifest, LOCK_FILE};
use crate::atomic::write as write_atomic;
use crate::diag::{Diag, Diags};
use crate::input::{os_error, read_source, InputKind};
use crate::signals;

/// What running one entry did.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryOutcome {
    /// Its report was complete with the same hash: nothing ran.
    Skipped,
    /// Another worker holds the entry (its lock): nothing ran here.
    Busy,
    /// `mcopt train` ran to completion (`resumed`: from the entry's checkpoint).
    Ran { resumed: bool, seconds: f64 },
    /// `mcopt train` failed; its exit code (None: killed by a signal) and what it said (the
    /// messages of its diagnostics, else the end of its log).
    Failed {
        exit_code: Option<i32>,
        message: String,
    },
    /// A stop signal reached the worker: it was forwarded to `mcopt train`, which stopped
    /// (with a checkpoint, if it handles the signal); the next `sweep run` resumes the entry.
    Interrupted { signal: i32 },
}

/// What a pool run did, entry by entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSummary {
    pub ran: Vec<usize>,
    pub skipped: Vec<usize>,
    /// Entries another worker was running (their locks were held).
    pub busy: Vec<usize>,
    pub failed: Vec<(usize, String)>,
    pub interrupted: Vec<usize>,
}

/// Run entry `index` of the sweep in `dir` with the mcopt executable `exe`.
///
/// The entry is claimed first with an exclusive, non-blocking lock on `runs/NNNN/lock`
/// (held by this worker and inherited by its `mcopt train`): an entry another worker holds is
/// [`EntryOutcome::Busy`]. Then its inputs are re-hashed: a planned entry whose model, data or
/// run file changed since planning is refused. An entry already done with the same hash is
/// skipped; one with a checkpoint (interrupted or killed) resumes from it. A stop signal
/// (see [`crate::signals`]) is forwarded to the running `mcopt train`, and the entry is
/// recorded as interrupted.
pub fn run_entry(
    exe: &Path,
    dir: &Path,
    manifest: &Manifest,
    index: usize,
) -> Result<EntryOutcome, Diags> {
    let entry = manifest.entry(index)?;
    let run_file = dir.join(&entry.run_file);
    let out = run_dir(dir, index);
    if !out.is_dir() {
        let msg = format!("the directory of entry {index} is missing");
        return Err(Diag::new("mcopt::sweep::missing", msg)
            .in_file(run_file.display().to_string())
            .help("the sweep directory was changed after planning: plan the sweep again into a new directory")
            .into());
    }
    let Some(lock) = claim(&out)? else {
        return Ok(EntryOutcome::Busy);
    };
    let text = read_source(&run_file, InputKind::RunFile)?.text.clone();
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
    if let Some(EntryState::Done { hash: h, .. }) = entry_state(dir, index) {
        if h == hash && out.join("report.json").exists() {
            return Ok(EntryOutcome::Skipped);
        }
    }
    let resumed = has_checkpoint(&out);
    let state = |s: &EntryState| write_atomic(&out.join("state.json"), &state_bytes(s));
    let log_path = out.join("train.log");
    let json_path = out.join("train.json");
    let create = |p: &Path| {
        std::fs::File::create(p).map_err(|e| {
            Diags::from(
                Diag::new(
                    "mcopt::io::write",
                    format!("cannot write the run log: {}", os_error(&e)),
                )
                .in_file(p.display().to_string()),
            )
        })
    };
    let log = create(&log_path)?;
    let json = create(&json_path)?;
    let mut cmd = Command::new(exe);
    cmd.arg("train")
        .arg(&run_file)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .arg("--json")
        .stdin(Stdio::null())
        .stdout(Stdio::from(json))
        .stderr(Stdio::from(log));
    if resumed {
        cmd.arg("--resume");
    }
    lock::hand_down(&mut cmd, &lock);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Diags::from(
            Diag::new(
                "mcopt::sweep::spawn",
                format!("cannot start `mcopt train`: {}", os_error(&e)),
            )
            .in_file(exe.display().to_string()),
        )
    })?;
    let running = state(&EntryState::Running {
        pid: child.id(),
        hash: hash.clone(),
    });
    let (status, forwarded) = wait_forwarding(&mut child);
    let status = status.map_err(|e| {
        Diags::from(Diag::new(
            "mcopt::sweep::spawn",
            format!("lost the `mcopt train` process: {}", os_error(&e)),
        ))
    })?;
    running?;
    let seconds = start.elapsed().as_secs_f64();
    // A directory removed (or replaced) while the entry ran holds no result of this run.
    if !run_file.is_file() {
        let message = "the entry's directory was removed while it ran".to_string();
        if out.is_dir() {
            let _ = state(&EntryState::Failed {
                hash,
                exit_code: status.code(),
                message: message.clone(),
            });
        }
        return Ok(EntryOutcome::Failed {
            exit_code: status.code(),
            message,
        });
    }
    let outcome = if status.success() && out.join("report.json").is_file() {
        state(&EntryState::Done { hash, seconds })?;
        EntryOutcome::Ran { resumed, seconds }
    } else if let Some(signal) = forwarded
        .or_else(signals::received)
        .or_else(|| stopped_by(&status))
    {
        state(&EntryState::Interrupted { hash, signal })?;
        EntryOutcome::Interrupted { signal }
    } else {
        let message = if status.success() {
            "`mcopt train` succeeded but wrote no report.json".to_string()
        } else {
            failure_message(&json_path, &log_path, &status)
        };
        state(&EntryState::Failed {
            hash,
            exit_code: status.code(),
            message: message.clone(),
        })?;
        EntryOutcome::Failed {
            exit_code: status.code(),
            message,
        }
    };
    drop(lock);
    Ok(outcome)
}

/// Take the entry's lock, or None when another worker holds it. The lock file is created in
/// the entry's directory, never the directory itself (a removed entry stays removed).
fn claim(out: &Path) -> Result<Option<std::fs::File>, Diags> {
    let path = out.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            Diags::from(
                Diag::new(
                    "mcopt::sweep::lock",
                    format!("cannot create the entry's lock: {}", os_error(&e)),
                )
                .in_file(path.display().to_string()),
            )
        })?;
    // A `sweep status` probing the lock holds it for an instant: try a few times.
    for attempt in 0..4 {
        match lock::try_exclusive(&file) {
            Ok(true) => return Ok(Some(file)),
            Ok(false) if attempt < 3 => std::thread::sleep(Duration::from_millis(30)),
            Ok(false) => return Ok(None),
            Err(e) => {
                return Err(Diag::new(
                    "mcopt::sweep::lock",
                    format!("cannot lock the entry: {}", os_error(&e)),
                )
                .in_file(path.display().to_string())
                .into())
            }
        }
    }
    Ok(None)
}

/// Wait for `mcopt train`, forwarding the first stop signal this process receives to it
/// (once: a second one would make it exit without writing its outputs). Returns its exit
/// status and the signal forwarded, if any.
///
/// Inside a Slurm job (`SLURM_JOB_ID` set) the signal is not forwarded: Slurm signals every
/// process of the job itself (time limit, preemption, `scancel --full`), so `mcopt train`
/// already has it, and a forwarded copy would be the second signal that makes it exit at once.
/// The stop signal a `mcopt train` exit status reports (128 + signal: it stopped on it after
/// writing its outputs), also when the signal reached it before this worker saw one (Slurm
/// signals every process of a job; a user may signal the train alone).
fn stopped_by(status: &ExitStatus) -> Option<i32> {
    let code = status.code()?;
    signals::STOP_SIGNALS
        .into_iter()
        .find(|&sig| i32::from(signals::exit_code(sig)) == code)
}

fn wait_forwarding(child: &mut std::process::Child) -> (std::io::Result<ExitStatus>, Option<i32>) {
    let slurm = std::env::var_os("SLURM_JOB_ID").is_some();
    let mut forwarded = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), forwarded),
            Ok(None) => {}
            Err(e) => return (Err(e), forwarded),
        }
        if forwarded.is_none() {
            if let Some(sig) = signals::received() {
                if !slurm {
                    lock::signal(child.id(), sig);
                }
                forwarded = Some(sig);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run every entry with `jobs` worker processes at a time, in index order. Entries already
/// done are skipped, entries another worker holds are left to it; an entry that fails (even
/// before its run starts: a missing directory, changed inputs) fails alone, with its reason.
/// After a stop signal no further entry starts.
pub fn run_pool(
    exe: &Path,
    dir: &Path,
    manifest: &Manifest,
    jobs: usize,
    on_finish: &(dyn Fn(usize, &EntryOutcome) + Sync),
) -> Result<PoolSummary, Diags> {
    let next = AtomicUsize::new(0);
    let summary = Mutex::new(PoolSummary::default());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                if signals::stop_requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= manifest.entries.len() {
                    break;
                }
                let outcome =
                    run_entry(exe, dir, manifest, i).unwrap_or_else(|d| EntryOutcome::Failed {
                        exit_code: None,
                        message: diags_text(&d),
                    });
                on_finish(i, &outcome);
                let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                match outcome {
                    EntryOutcome::Skipped => s.skipped.push(i),
                    EntryOutcome::Busy => s.busy.push(i),
                    EntryOutcome::Ran { .. } => s.ran.push(i),
                    EntryOutcome::Failed { message, .. } => s.failed.push((i, message)),
                    EntryOutcome::Interrupted { .. } => s.interrupted.push(i),
                }
            });
        }
    });
    let mut s = summary.into_inner().unwrap_or_else(|p| p.into_inner());
    s.ran.sort_unstable();
    s.skipped.sort_unstable();
    s.busy.sort_unstable();
    s.interrupted.sort_unstable();
    s.failed.sort_unstable_by_key(|(i, _)| *i);
    Ok(s)
}

/// Diagnostics as one line each: `code: file: message`.
pub fn diags_text(d: &Diags) -> String {
    d.iter()
        .map(|x| format!("{}: {x}", x.code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a failed `mcopt train` said: the messages of the diagnostics it printed as JSON (with
/// file and line), else the error lines of its log, else its last lines; and the signal that
/// killed it, if one did.
fn failure_message(json_path: &Path, log_path: &Path, status: &ExitStatus) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(sig) = killed_by(status) {
        parts.push(format!("`mcopt train` was killed by signal {sig}"));
    }
    let diags = read_capped(json_path)
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("diagnostics").and_then(|d| d.as_array()).cloned())
        .unwrap_or_default();
    let from_json: Vec<String> = diags
        .iter()
        .filter_map(|d| {
            let message = d.get("message")?.as_str()?;
            let code = d.get("code").and_then(|c| c.as_str()).unwrap_or("error");
            let at = match (d.get("file").and_then(|f| f.as_str()), d.get("line")) {
                (Some(f), Some(l)) if l.is_u64() => format!(" ({f}:{l})"),
                (Some(f), _) => format!(" ({f})"),
                _ => String::new(),
            };
            Some(format!("{code}: {message}{at}"))
        })
        .collect();
    if !from_json.is_empty() {
        parts.extend(from_json);
    } else {
        parts.push(log_tail(log_path));
    }
    let joined = parts.join("\n");
    crate::text::clip_to(&joined, 2000).into_owned()
}

#[cfg(unix)]
fn killed_by(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn killed_by(_: &ExitStatus) -> Option<i32> {
    None
}

/// A small output file of the child (at most 1 MiB read).
fn read_capped(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    f.take(1 << 20).read_to_string(&mut s).ok()?;
    Some(s)
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

/// The end of a run's log: its error lines (miette's `×`, diagnostic codes) when it has any,
/// else its last lines.
fn log_tail(path: &Path) -> String {
    let text = read_capped(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with('×') || t.starts_with("mcopt::") || t.starts_with("Error")
        })
        .collect();
    let shown = if errors.is_empty() {
        &lines[lines.len().saturating_sub(6)..]
    } else {
        &errors[..]
    };
    let joined = shown.join("\n");
    if joined.is_empty() {
        "the run stopped without a message (killed?)".to_string()
    } else {
        joined
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}
