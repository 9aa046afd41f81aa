//! Checkpoints: a versioned JSON document holding the run state, the solver's opaque state
//! blob and fingerprints of the inputs. Every float is stored as the 16 hex digits of its IEEE
//! bits, so a resumed run continues from exactly the same numbers. The trace is not embedded
//! (its size would grow with the run): only the newest row and the length of the trace file
//! with a hash of its last line, so a resumed run truncates the file there and appends.
//! A checkpoint whose iterate, clocks or newest row hold NaN or ±∞ is refused.

use serde::{Deserialize, Serialize};

use super::{Row, RunState};
use crate::registry::Evaluations;

/// The `format` field of every checkpoint.
pub const FORMAT: &str = "mcopt-checkpoint";
/// The current checkpoint version; others are refused.
pub const VERSION: u32 = 2;

/// Fingerprints of the inputs a checkpoint belongs to: FNV-1a 64 of the model text and of the
/// run file text (change detection, not security).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub model: u64,
    pub run: u64,
}

impl Fingerprint {
    pub fn of(model_text: &[u8], run_text: &[u8]) -> Fingerprint {
        Fingerprint {
            model: fnv1a(model_text),
            run: fnv1a(run_text),
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Everything needed to resume a run. `S` holds the solver's state: owned when read back, a
/// borrowed slice when a running solver's state is written (so the blob is not copied).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint<S = Vec<u8>> {
    pub solver: String,
    /// Option values in schema order.
    pub options: Vec<f64>,
    pub seed: u64,
    pub fingerprint: Fingerprint,
    /// Names of the solver's metrics (the trace's extra columns).
    pub metrics: Vec<String>,
    pub state: RunState,
    pub solver_state: S,
    /// The trace file as it was when the checkpoint was taken (`None`: no trace written).
    pub trace: Option<TraceMark>,
}

/// How far the trace file had been written: its data rows (after the header) and the FNV-1a
/// hash of the last one's text (without the newline).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceMark {
    pub rows: u64,
    pub last_line: u64,
    /// Iterations measured but not written (`trace: {every: k}` with k > 1), so `rows +
    /// skipped` is the iterations plus one; 0 when every iterate is a row.
    pub skipped: u64,
    /// The accepted and rejected steps so far, when rows were skipped (the trace alone no
    /// longer counts them; otherwise both 0 and recounted from the trace).
    pub accepted: u64,
    pub rejected: u64,
}

/// Why a checkpoint cannot be used.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckpointError {
    /// Not JSON, or not a checkpoint of this layout.
    Malformed(String),
    /// Another format version.
    Version(u32),
    /// A float that must be finite is NaN or ±∞ (which one, and the value).
    NonFinite(String),
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckpointError::Malformed(m) => write!(f, "not a valid mcopt checkpoint: {m}"),
            CheckpointError::Version(v) => {
                write!(f, "checkpoint version {VERSION} expected, found {v}")
            }
            CheckpointError::NonFinite(what) => {
                write!(f, "the checkpoint holds a non-finite number: {what}")
            }
        }
    }
}

/// The checkpoint's JSON document; `S` is the solver state's field: [`Hex`] when written, the
/// hex text borrowed from the file when read.
#[derive(Serialize, Deserialize)]
struct Doc<S> {
    format: String,
    version: u32,
    solver: String,
    options: Vec<String>,
    seed: u64,
    model_hash: String,
    run_hash: String,
    metrics: Vec<String>,
    iteration: u64,
    seconds: String,
    step_seconds: String,
    evaluations: Counts,
    x: Vec<String>,
    solver_state: S,
    last_row: DocRow,
    /// The best row so far (absent in checkpoints written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    best_row: Option<DocRow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace: Option<TraceDoc>,
}

#[derive(Serialize, Deserialize)]
struct TraceDoc {
    rows: u64,
    last_line: String,
    /// Present when rows were skipped (`trace: {every: k}`), with the step counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skipped: Option<Skipped>,
}

#[derive(Serialize, Deserialize)]
struct Skipped {
    iterations: u64,
    accepted: u64,
    rejected: u64,
}

#[derive(Serialize, Deserialize)]
struct Counts {
    value: u64,
    directional: u64,
    gradient: u64,
}

#[derive(Serialize, Deserialize)]
struct DocRow {
    iter: u64,
    objective: String,
    train_loss: String,
    test_loss: Option<String>,
    seconds: String,
    stationarity: String,
    metrics: Vec<String>,
}

fn bits(v: f64) -> String {
    format!("{:016x}", v.to_bits())
}

fn unbits(s: &str) -> Result<f64, CheckpointError> {
    if s.len() != 16 {
        return Err(CheckpointError::Malformed(format!(
            "`{s}` is not 16 hex digits"
        )));
    }
    u64::from_str_radix(s, 16)
        .map(f64::from_bits)
        .map_err(|_| CheckpointError::Malformed(format!("`{s}` is not 16 hex digits")))
}

fn unbits_all(v: &[String]) -> Result<Vec<f64>, CheckpointError> {
    v.iter().map(|s| unbits(s)).collect()
}

fn hash_text(h: u64) -> String {
    format!("fnv1a64:{h:016x}")
}

fn unhash(s: &str) -> Result<u64, CheckpointError> {
    s.strip_prefix("fnv1a64:")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| CheckpointError::Malformed(format!("bad hash `{s}`")))
}

impl<S: AsRef<[u8]>> Checkpoint<S> {
    /// Write the checkpoint as JSON to `out`, streamed: the solver's state (tens of megabytes on
    /// large models) goes out as hex without a copy of it or of the document in memory.
    pub fn write_to(&self, out: impl std::io::Write) -> std::io::Result<()> {
        use std::io::Write as _;
        let s = &self.state;
        let doc = Doc {
            format: FORMAT.to_string(),
            version: VERSION,
            solver: self.solver.clone(),
            options: self.options.iter().map(|v| bits(*v)).collect(),
            seed: self.seed,
            model_hash: hash_text(self.fingerprint.model),
            run_hash: hash_text(self.fingerprint.run),
            metrics: self.metrics.clone(),
            iteration: s.iter,
            seconds: bits(s.seconds),
            step_seconds: bits(s.step_seconds),
            evaluations: Counts {
                value: s.evaluations.value,
                directional: s.evaluations.directional,
                gradient: s.evaluations.gradient,
            },
            x: s.x.iter().map(|v| bits(*v)).collect(),
            solver_state: Hex(self.solver_state.as_ref()),
            last_row: row_doc(s.last.as_ref().unwrap_or(&NO_ROW)),
            best_row: s.best.as_ref().map(row_doc),
            trace: self.trace.map(|t| TraceDoc {
                rows: t.rows,
                last_line: hash_text(t.last_line),
                skipped: (t.skipped > 0).then_some(Skipped {
                    iterations: t.skipped,
                    accepted: t.accepted,
                    rejected: t.rejected,
                }),
            }),
        };
        let mut out = std::io::BufWriter::new(out);
        serde_json::to_writer_pretty(&mut out, &doc)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    /// The checkpoint as JSON bytes (what [`Checkpoint::write_to`] writes), for the tests.
    #[cfg(test)]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a vector fails only if serialization does, and every field serializes.
        let _ = self.write_to(&mut out);
        out
    }
}

/// Bytes serialized as a JSON string of two lowercase hex digits each, streamed to the writer.
struct Hex<'a>(&'a [u8]);

impl Serialize for Hex<'_> {
    fn serialize<Z: serde::Serializer>(&self, z: Z) -> Result<Z::Ok, Z::Error> {
        z.collect_str(self)
    }
}

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 4096];
        for chunk in self.0.chunks(buf.len() / 2) {
            for (pair, b) in buf.chunks_exact_mut(2).zip(chunk) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 15)];
            }
            let text = std::str::from_utf8(&buf[..2 * chunk.len()]).map_err(|_| std::fmt::Error)?;
            f.write_str(text)?;
        }
        Ok(())
    }
}

impl Checkpoint {
    /// Read a checkpoint written by [`Checkpoint::write_to`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let malformed = |e: serde_json::Error| CheckpointError::Malformed(e.to_string());
        let head: Head = serde_json::from_slice(bytes).map_err(malformed)?;
        if head.format.as_deref() != Some(FORMAT) {
            return Err(CheckpointError::Malformed(format!(
                "no `format: {FORMAT}` field"
            )));
        }
        let version = head.version.unwrap_or(0) as u32;
        if version != VERSION {
            return Err(CheckpointError::Version(version));
        }
        // The solver state's hex text is borrowed from `bytes` (hex needs no escapes), not copied.
        let doc: Doc<&str> = serde_json::from_slice(bytes).map_err(malformed)?;
        let last = doc_row(&doc.last_row)?;
        let best = match &doc.best_row {
            Some(b) => doc_row(b)?,
            None => last.clone(),
        };
        let state = RunState {
            iter: doc.iteration,
            x: unbits_all(&doc.x)?,
            last: Some(last),
            best: Some(best),
            seconds: unbits(&doc.seconds)?,
            step_seconds: unbits(&doc.step_seconds)?,
            evaluations: Evaluations {
                value: doc.evaluations.value,
                directional: doc.evaluations.directional,
                gradient: doc.evaluations.gradient,
            },
        };
        finite(&state)?;
        let trace = match doc.trace {
            Some(t) => Some(TraceMark {
                rows: t.rows,
                last_line: unhash(&t.last_line)?,
                skipped: t.skipped.as_ref().map_or(0, |s| s.iterations),
                accepted: t.skipped.as_ref().map_or(0, |s| s.accepted),
                rejected: t.skipped.as_ref().map_or(0, |s| s.rejected),
            }),
            None => None,
        };
        let counted = |t: &TraceMark| {
            let n = t.rows.checked_add(t.skipped);
            n.is_none_or(|n| Some(n) != state.iter.checked_add(1))
        };
        if let Some(t) = trace.filter(counted) {
            let skipped = match t.skipped {
                0 => String::new(),
                n => format!(" and {n} skipped"),
            };
            return Err(CheckpointError::Malformed(format!(
                "a trace of {} rows{skipped} for {} iterations",
                t.rows, state.iter
            )));
        }
        Ok(Checkpoint {
            solver: doc.solver,
            options: unbits_all(&doc.options)?,
            seed: doc.seed,
            fingerprint: Fingerprint {
                model: unhash(&doc.model_hash)?,
                run: unhash(&doc.run_hash)?,
            },
            metrics: doc.metrics,
            state,
            solver_state: unhex(doc.solver_state)?,
            trace,
        })
    }
}

/// The fields read before the rest: a checkpoint of another version may differ in any other.
#[derive(Deserialize)]
struct Head {
    format: Option<String>,
    version: Option<u64>,
}

/// The row written when a state has none (never the case for a state the executor ran).
pub const NO_ROW: Row = Row {
    iter: 0,
    objective: f64::NAN,
    train_loss: f64::NAN,
    test_loss: None,
    seconds: 0.0,
    stationarity: f64::NAN,
    metrics: Vec::new(),
};

/// Refuse NaN and ±∞ where a resumed run would compute with them: the iterate, the clocks and
/// the newest row's measurements (a row's stationarity and metrics may be NaN: "none").
fn finite(s: &RunState) -> Result<(), CheckpointError> {
    let bad = |what: String, v: f64| Err(CheckpointError::NonFinite(format!("{what} is {v}")));
    if let Some(i) = s.x.iter().position(|v| !v.is_finite()) {
        return bad(format!("entry {i} of the iterate `x`"), s.x[i]);
    }
    for (name, v) in [("seconds", s.seconds), ("step_seconds", s.step_seconds)] {
        if !v.is_finite() {
            return bad(format!("`{name}`"), v);
        }
    }
    if let Some(r) = &s.last {
        let values = [
            ("objective", Some(r.objective)),
            ("train_loss", Some(r.train_loss)),
            ("test_loss", r.test_loss),
            ("seconds", Some(r.seconds)),
        ];
        for (name, v) in values {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return bad(format!("`{name}` of the last trace row"), v);
            }
        }
    }
    Ok(())
}

fn row_doc(r: &Row) -> DocRow {
    DocRow {
        iter: r.iter,
        objective: bits(r.objective),
        train_loss: bits(r.train_loss),
        test_loss: r.test_loss.map(bits),
        seconds: bits(r.seconds),
        stationarity: bits(r.stationarity),
        metrics: r.metrics.iter().map(|v| bits(*v)).collect(),
    }
}

fn doc_row(r: &DocRow) -> Result<Row, CheckpointError> {
    Ok(Row {
        iter: r.iter,
        objective: unbits(&r.objective)?,
        train_loss: unbits(&r.train_loss)?,
        test_loss: r.test_loss.as_deref().map(unbits).transpose()?,
        seconds: unbits(&r.seconds)?,
        stationarity: unbits(&r.stationarity)?,
        metrics: unbits_all(&r.metrics)?,
    })
}

fn unhex(s: &str) -> Result<Vec<u8>, CheckpointError> {
    if s.len() % 2 != 0 {
        return Err(CheckpointError::Malformed(
            "odd-length solver state".to_string(),
        ));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| CheckpointError::Malformed("solver state is not hex".to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_blobs_round_trip_bit_for_bit() {
        let row = Row {
            iter: 0,
            objective: 0.1 + 0.2,
            train_loss: f64::MIN_POSITIVE / 3.0,
            test_loss: None,
            seconds: 1e-300,
            stationarity: f64::NAN,
            metrics: vec![-0.0, f64::INFINITY],
        };
        let cp = Checkpoint {
            solver: "adam".into(),
            options: vec![1e-3, 0.9],
            seed: 7,
            fingerprint: Fingerprint::of(b"model", b"run"),
            metrics: vec!["grad_norm".into(), "x".into()],
            state: RunState {
                iter: 0,
                x: vec![std::f64::consts::PI, -1e-310],
                last: Some(row.clone()),
                best: Some(row),
                seconds: 0.5,
                step_seconds: 0.25,
                evaluations: Evaluations::default(),
            },
            solver_state: vec![0, 255, 17],
            trace: Some(TraceMark {
                rows: 1,
                last_line: 42,
                skipped: 0,
                accepted: 0,
                rejected: 0,
            }),
        };
        let back = Checkpoint::from_bytes(&cp.to_bytes()).unwrap();
        assert_eq!(back.state.x[1].to_bits(), cp.state.x[1].to_bits());
        let last = back.state.last.as_ref().unwrap();
        assert!(last.stationarity.is_nan());
        assert_eq!(last.metrics[0].to_bits(), (-0.0f64).to_bits());
        assert_eq!(back.trace, cp.trace);
        assert_eq!(back.solver_state, cp.solver_state);
        assert_eq!(back.fingerprint, cp.fingerprint);
        let other = String::from_utf8(cp.to_bytes())
            .unwrap()
            .replace("\"version\": 2", "\"version\": 9");
        assert_eq!(
            Checkpoint::from_bytes(other.as_bytes()),
            Err(CheckpointError::Version(9))
        );
    }

    #[test]
    fn a_solver_state_longer_than_the_hex_buffer_is_streamed_whole() {
        let blob: Vec<u8> = (0..5001u32)
            .map(|i| (i.wrapping_mul(37) % 256) as u8)
            .collect();
        let mut state = RunState::start(vec![1.0]);
        state.last = Some(Row {
            objective: 1.0,
            train_loss: 1.0,
            ..NO_ROW
        });
        let cp = Checkpoint {
            solver: "srpa".into(),
            options: vec![],
            seed: 0,
            fingerprint: Fingerprint::of(b"m", b"r"),
            metrics: vec![],
            state,
            solver_state: blob.as_slice(),
            trace: None,
        };
        let text = String::from_utf8(cp.to_bytes()).unwrap();
        let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
        assert!(text.contains(&format!("\"solver_state\": \"{hex}\"")));
        let back = Checkpoint::from_bytes(text.as_bytes()).unwrap();
        assert_eq!(back.solver_state, blob);
    }

    #[test]
    fn nan_or_infinity_in_the_iterate_or_the_last_row_is_refused() {
        let mut state = RunState::start(vec![1.0, 2.0]);
        state.last = Some(NO_ROW);
        let mut cp = Checkpoint {
            solver: "gd".into(),
            options: vec![],
            seed: 0,
            fingerprint: Fingerprint::of(b"m", b"r"),
            metrics: vec![],
            state,
            solver_state: vec![],
            trace: None,
        };
        let err = Checkpoint::from_bytes(&cp.to_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("`objective` of the last trace row is NaN"),
            "{err}"
        );
        if let Some(r) = cp.state.last.as_mut() {
            (r.objective, r.train_loss) = (1.0, 1.0);
        }
        assert!(Checkpoint::from_bytes(&cp.to_bytes()).is_ok());
        cp.state.x[1] = f64::NEG_INFINITY;
        let err = Checkpoint::from_bytes(&cp.to_bytes()).unwrap_err();
        assert_eq!(
            err,
            CheckpointError::NonFinite("entry 1 of the iterate `x` is -inf".into())
        );
    }
}
