//! `sweep collect`: one row per setting over its seeds (mean and standard deviation of the
//! test error, train error, final objective and time), ranked by mean test error, the
//! authors' rule; written as CSV, Markdown, JSON and an SVG plot (bytes only).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{run_dir, status_of, Manifest, Status};

/// One row of the table: a setting (or a group of settings, with `--by`) over its seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SettingRow {
    pub rank: usize,
    pub overrides: Value,
    /// Completed runs that entered the statistics.
    pub runs: usize,
    /// Planned runs of the setting.
    pub planned: usize,
    pub test_loss_mean: Option<f64>,
    pub test_loss_std: Option<f64>,
    pub train_loss_mean: Option<f64>,
    pub train_loss_std: Option<f64>,
    pub objective_mean: Option<f64>,
    pub seconds_mean: Option<f64>,
    pub seeds: Vec<u64>,
    /// The test error of each completed run, in the order of `seeds`.
    pub test_losses: Vec<f64>,
}

/// The ranked table, best first.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Table {
    pub settings: Vec<SettingRow>,
    /// Key paths the rows are grouped by.
    pub by: Vec<String>,
    /// How many done entries have a report that cannot be read (left out of the statistics).
    pub unreadable_reports: usize,
    /// Those entries, with the reason.
    pub unreadable: Vec<Unreadable>,
}

/// A done entry whose `report.json` cannot be read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unreadable {
    pub index: usize,
    pub file: String,
    pub reason: String,
}

/// The numbers `mcopt train` wrote into a run's `report.json`.
#[derive(Debug, Clone, Copy, Default)]
struct RunNumbers {
    test_loss: Option<f64>,
    train_loss: Option<f64>,
    objective: Option<f64>,
    seconds: Option<f64>,
}

/// One seed of a setting, with its numbers once it is done.
type SeedRun = (u64, Option<RunNumbers>);

/// Build the table from the done entries of the sweep in `dir`. `by` selects the key paths to
/// group by (empty: every override, so one row per setting).
pub fn collect(dir: &Path, manifest: &Manifest, by: &[String]) -> Table {
    let mut groups: BTreeMap<String, (Value, Vec<SeedRun>)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut unreadable = Vec::new();
    for e in &manifest.entries {
        let key_val = group_of(&e.overrides, by);
        let key = key_val.to_string();
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        let numbers = if status_of(dir, e) == Status::Done {
            let file = run_dir(dir, e.index).join("report.json");
            match read_report(&file) {
                Ok(n) => Some(n),
                Err(reason) => {
                    unreadable.push(Unreadable {
                        index: e.index,
                        file: file.display().to_string(),
                        reason: reason.to_string(),
                    });
                    None
                }
            }
        } else {
            None
        };
        groups
            .entry(key)
            .or_insert_with(|| (key_val, Vec::new()))
            .1
            .push((e.seed, numbers));
    }
    let mut rows: Vec<SettingRow> = order
        .iter()
        .filter_map(|k| groups.remove(k))
        .map(|(overrides, runs)| row(overrides, &runs))
        .collect();
    // Ranked by mean test error; settings without any result last, in plan order.
    rows.sort_by(|a, b| match (a.test_loss_mean, b.test_loss_mean) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Table {
        settings: rows,
        by: by.to_vec(),
        unreadable_reports: unreadable.len(),
        unreadable,
    }
}

fn group_of(overrides: &Value, by: &[String]) -> Value {
    if by.is_empty() {
        return overrides.clone();
    }
    let mut m = serde_json::Map::new();
    for k in by {
        m.insert(
            k.clone(),
            overrides.get(k.as_str()).cloned().unwrap_or(Value::Null),
        );
    }
    Value::Object(m)
}

/// Why a `report.json` cannot be read; its `Display` is the reason shown.
#[derive(Debug)]
enum ReportError {
    /// The OS error of reading it.
    Io(String),
    NotAFile,
    Json(serde_json::Error),
    NotAnObject,
}

impl std::fmt::Display for ReportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportError::Io(e) => f.write_str(e),
            ReportError::NotAFile => f.write_str("it is not a regular file"),
            ReportError::Json(e) => write!(f, "not valid JSON: {e}"),
            ReportError::NotAnObject => f.write_str("not a JSON object"),
        }
    }
}

/// The numbers of a `report.json` (at most 16 MiB read), or why it cannot be read.
fn read_report(file: &Path) -> Result<RunNumbers, ReportError> {
    use std::io::Read as _;
    let io = |e: std::io::Error| ReportError::Io(crate::input::os_error(&e));
    let meta = std::fs::metadata(file).map_err(io)?;
    if !meta.is_file() {
        return Err(ReportError::NotAFile);
    }
    let mut text = String::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(16 << 20).read_to_string(&mut text))
        .map_err(io)?;
    let v: Value = serde_json::from_str(&text).map_err(ReportError::Json)?;
    if !v.is_object() {
        return Err(ReportError::NotAnObject);
    }
    let num = |k: &str| v.get(k).and_then(Value::as_f64);
    Ok(RunNumbers {
        test_loss: num("test_loss"),
        train_loss: num("train_loss"),
        objective: num("objective"),
        seconds: num("seconds"),
    })
}

fn row(overrides: Value, runs: &[SeedRun]) -> SettingRow {
    let done: Vec<(u64, RunNumbers)> = runs
        .iter()
        .filter_map(|(s, n)| n.map(|n| (*s, n)))
        .collect();
    let pick = |f: fn(&RunNumbers) -> Option<f64>| -> Vec<f64> {
        done.iter().filter_map(|(_, n)| f(n)).collect()
    };
    let test = pick(|n| n.test_loss);
    let train = pick(|n| n.train_loss);
    SettingRow {
        rank: 0,
        overrides,
        runs: done.len(),
        planned: runs.len(),
        test_loss_mean: mean(&test),
        test_loss_std: std_dev(&test),
        train_loss_mean: mean(&train),
        train_loss_std: std_dev(&train),
        objective_mean: mean(&pick(|n| n.objective)),
        seconds_mean: mean(&pick(|n| n.seconds)),
        seeds: done.iter().map(|(s, _)| *s).collect(),
        test_losses: test,
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Sample standard deviation (n − 1); none (`n/a`) for fewer than two runs.
fn std_dev(v: &[f64]) -> Option<f64> {
    if v.len() < 2 {
        return None;
    }
    let m = mean(v)?;
    let ss: f64 = v.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (v.len() - 1) as f64).sqrt())
}

impl Table {
    /// `{"settings": [...], "by": [...]}`, best first.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// CSV with one column per override key, then the statistics.
    pub fn to_csv(&self) -> String {
        let keys = self.keys();
        let mut out = String::new();
        let mut header: Vec<String> = vec!["rank".into()];
        header.extend(keys.iter().cloned());
        header.extend(
            [
                "runs",
                "test_loss_mean",
                "test_loss_std",
                "train_loss_mean",
                "train_loss_std",
                "objective_mean",
                "seconds_mean",
            ]
            .map(String::from),
        );
        let _ = writeln!(out, "{}", header.join(","));
        for r in &self.settings {
            let mut cells = vec![r.rank.to_string()];
            cells.extend(
                keys.iter()
                    .map(|k| csv_cell(&value_text(r.overrides.get(k)))),
            );
            cells.push(r.runs.to_string());
            for x in [
                r.test_loss_mean,
                r.test_loss_std,
                r.train_loss_mean,
                r.train_loss_std,
                r.objective_mean,
                r.seconds_mean,
            ] {
                cells.push(x.map_or(String::new(), |x| format!("{x:.10e}")));
            }
            let _ = writeln!(out, "{}", cells.join(","));
        }
        out
    }

    /// A Markdown table (what `sweep collect` prints).
    pub fn to_markdown(&self) -> String {
        let keys = self.keys();
        let mut out = String::new();
        let mut header = vec!["rank".to_string()];
        header.extend(keys.iter().map(|k| format!("`{k}`")));
        header.extend(
            [
                "runs",
                "test loss (mean ± std)",
                "train loss",
                "objective",
                "seconds",
            ]
            .map(String::from),
        );
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for r in &self.settings {
            let mut cells = vec![r.rank.to_string()];
            cells.extend(keys.iter().map(|k| value_text(r.overrides.get(k))));
            cells.push(format!("{}/{}", r.runs, r.planned));
            cells.push(match (r.test_loss_mean, r.test_loss_std) {
                (Some(m), Some(s)) => format!("{m:.6} ± {s:.6}"),
                (Some(m), None) => format!("{m:.6} ± n/a"),
                _ => "—".into(),
            });
            for x in [r.train_loss_mean, r.objective_mean] {
                cells.push(x.map_or("—".into(), |x| format!("{x:.6}")));
            }
            cells.push(r.seconds_mean.map_or("—".into(), |x| format!("{x:.3e}")));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }

    /// The override keys shown as columns, in first-seen order.
    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for r in &self.settings {
            if let Value::Object(m) = &r.overrides {
                for k in m.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
        }
        keys
    }

    /// An SVG plot: the test error of every seed (dots) and the mean (bar) per setting, in rank order.
    pub fn to_svg(&self) -> String {
        let rows: Vec<&SettingRow> = self
            .settings
            .iter()
            .filter(|r| !r.test_losses.is_empty())
            .collect();
        let (w, h, left, right, top, bottom) = (860.0, 420.0, 70.0, 20.0, 40.0, 50.0);
        let all: Vec<f64> = rows.iter().flat_map(|r| r.test_losses.clone()).collect();
        let (lo, hi) = all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let (lo, hi) = if all.is_empty() {
            (0.0, 1.0)
        } else if hi - lo < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        };
        let pw = w - left - right;
        let ph = h - top - bottom;
        let y = |v: f64| top + ph * (1.0 - (v - lo) / (hi - lo));
        let n = rows.len().max(1) as f64;
        let x = |i: usize| left + pw * (i as f64 + 0.5) / n;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">test error per setting (dots: seeds; bar: mean), ranked</text>"#,
            w / 2.0
        );
        let _ = writeln!(
            s,
            r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
        );
        for k in 0..=4 {
            let v = lo + (hi - lo) * k as f64 / 4.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{left}" x2="{}" y1="{yy:.2}" y2="{yy:.2}" stroke="#ddd"/><text x="{}" y="{:.2}" text-anchor="end">{v:.4}</text>"##,
                left + pw,
                left - 6.0,
                yy + 4.0
            );
        }
        for (i, r) in rows.iter().enumerate() {
            let xx = x(i);
            for t in &r.test_losses {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{xx:.2}" cy="{:.2}" r="3" fill="#1f77b4" fill-opacity="0.6"/>"##,
                    y(*t)
                );
            }
            if let Some(m) = r.test_loss_mean {
                let half = (pw / n * 0.35).min(14.0);
                let _ = writeln!(
                    s,
                    r##"<line x1="{:.2}" x2="{:.2}" y1="{:.2}" y2="{:.2}" stroke="#d62728" stroke-width="2"/>"##,
                    xx - half,
                    xx + half,
                    y(m),
                    y(m)
                );
            }
            if rows.len() <= 40 {
                let _ = writeln!(
                    s,
                    r#"<text x="{xx:.2}" y="{}" text-anchor="middle">{}</text>"#,
                    top + ph + 16.0,
                    r.rank
                );
            }
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">setting (rank)</text>"#,
            left + pw / 2.0,
            h - 12.0
        );
        let _ = writeln!(s, "</svg>");
        s
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
