//! Sweep files: a base run file, a grid (and/or a random search) over run-file keys by
//! dotted path, and seeds; and the rendering of one effective run file per sweep entry.
//! The format is documented in `docs/sweeps.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::fields::{Reader, Val};
use super::run::parse_run;
use super::yaml::{parse_node, Node};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::input::{read_source, InputKind};
use crate::rng::Rng;

/// The most entries a sweep may plan (a typo in a range should not write a million files).
pub const MAX_ENTRIES: usize = 100_000;

/// A validated sweep file.
#[derive(Debug, Clone)]
pub struct SweepFile {
    pub path: PathBuf,
    /// The base run file (resolved against the sweep file's directory).
    pub base: PathBuf,
    /// Overrides applied to every entry (`fixed:`), in file order.
    pub fixed: Vec<Axis>,
    /// Grid axes (`grid:`), in file order; the settings are their Cartesian product.
    pub grid: Vec<Axis>,
    /// Random search (`random:`): settings drawn from distributions, added after the grid.
    pub random: Option<RandomSearch>,
    /// Seeds: every setting runs once per seed.
    pub seeds: Vec<u64>,
    pub source: Arc<SourceFile>,
}

/// One key path with its candidate values.
#[derive(Debug, Clone)]
pub struct Axis {
    /// Dotted run-file key path, e.g. `solver.options.rho1`.
    pub key: String,
    pub values: Vec<Value>,
    pub key_span: Span,
}

/// `random: {n, seed, space: {key: {uniform|log_uniform: [a, b]} | {choice: [...]}}}`.
#[derive(Debug, Clone)]
pub struct RandomSearch {
    pub n: usize,
    pub seed: u64,
    pub space: Vec<(String, Distribution, Span)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Uniform(f64, f64),
    LogUniform(f64, f64),
    Choice(Vec<Value>),
}

/// One setting: the overrides of one grid point or random draw, as (key path, value).
pub type Setting = Vec<(String, Value)>;

const TOP_KEYS: &[&str] = &["base", "grid", "fixed", "random", "seeds"];
const RANDOM_KEYS: &[&str] = &["n", "seed", "space"];
const DIST_KEYS: &[&str] = &["uniform", "log_uniform", "choice"];
/// Keys a sweep may not set: the seed comes from `seeds`, outputs from `sweep run`.
const RESERVED: &[&str] = &["seed", "output", "model"];

/// Read and validate a sweep file (not yet the key paths: see [`render_entry`]).
pub fn load_sweep(path: &Path) -> Result<SweepFile, Diags> {
    let source = read_source(path, InputKind::RunFile)?;
    parse_sweep(&source, path)
}

/// Validate sweep-file text read from `path`.
pub fn parse_sweep(source: &Arc<SourceFile>, path: &Path) -> Result<SweepFile, Diags> {
    let root = parse_node(source, "mcopt::config::yaml")?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut r = Reader::new(source);
    let root_val = Val::root(&root);
    let Some(top) = r.fields(Some(&root_val), TOP_KEYS) else {
        return Err(r.diags);
    };
    let base = r
        .required(
            &top,
            "base",
            "the run file every entry starts from, e.g. `run.yaml`",
        )
        .and_then(|v| r.string(&v))
        .map(|b| dir.join(b));
    let grid = top.get("grid").map(|v| read_axes(&mut r, &v, true));
    let fixed = top.get("fixed").map(|v| read_axes(&mut r, &v, false));
    let random = top.get("random").and_then(|v| read_random(&mut r, &v));
    let seeds = match top.get("seeds") {
        Some(v) => read_seeds(&mut r, &v),
        None => Some(vec![0]),
    };
    let grid = grid.unwrap_or_default();
    // Without a grid or a random search, `fixed:` or `seeds:` alone make one setting over the
    // seeds; an explicit empty `grid:` (or nothing at all to vary) is refused.
    let one_setting =
        top.get("grid").is_none() && (top.get("fixed").is_some() || top.get("seeds").is_some());
    if grid.is_empty() && random.is_none() && !one_setting && r.diags.is_empty() {
        let span = top
            .get("grid")
            .map_or(source.line_span(1), |v| r.span(&v.path));
        let d = Diag::new("mcopt::sweep::empty", "the sweep has no settings")
            .at(source, span, "no grid axis and no `random:`")
            .help(
                "add `grid: {solver.options.lr: [0.01, 0.001]}` or `random: {n: 10, space: {...}}`",
            );
        r.diags.push(d);
    }
    let sweep = SweepFile {
        path: path.to_path_buf(),
        base: base.unwrap_or_default(),
        fixed: fixed.unwrap_or_default(),
        grid,
        random,
        seeds: seeds.unwrap_or_default(),
        source: Arc::clone(source),
    };
    if r.diags.is_empty() {
        // Counted (saturating) before any setting or entry exists.
        let total = sweep.settings_count().saturating_mul(sweep.seeds.len());
        if total > MAX_ENTRIES {
            let shown = if total == usize::MAX {
                "more entries than can be counted".to_string()
            } else {
                format!("{total} entries")
            };
            let msg = format!("the sweep has {shown}, more than the limit of {MAX_ENTRIES}");
            // At the part that multiplies: the grid, else the random search, else the seeds.
            let span = ["grid", "random", "seeds"]
                .iter()
                .find_map(|k| top.get(k))
                .map_or(source.line_span(1), |v| r.key_span(&v.path));
            let d = Diag::new("mcopt::sweep::too_large", msg)
                .at(source, span, "this makes too many entries")
                .help("use fewer grid values or seeds, or split the sweep");
            r.diags.push(d);
        }
    }
    r.diags.finish(sweep)
}

impl SweepFile {
    /// Number of settings: the grid's product plus the random draws (saturating, so a product
    /// too large to count is still refused by the entry limit); one setting (the fixed
    /// overrides) when there is neither a grid nor a random search.
    pub fn settings_count(&self) -> usize {
        let random = self.random.as_ref().map_or(0, |r| r.n);
        if self.grid.is_empty() {
            return if self.random.is_none() { 1 } else { random };
        }
        self.grid
            .iter()
            .fold(1usize, |n, a| n.saturating_mul(a.values.len()))
            .saturating_add(random)
    }

    /// Every setting, grid first (the last axis varies fastest), then the random draws.
    /// Fixed overrides come first in each setting.
    pub fn settings(&self) -> Vec<Setting> {
        let fixed: Setting = self
            .fixed
            .iter()
            .filter_map(|a| a.values.first().map(|v| (a.key.clone(), v.clone())))
            .collect();
        let mut out: Vec<Setting> = Vec::new();
        if !self.grid.is_empty() {
            let mut idx = vec![0usize; self.grid.len()];
            loop {
                let mut s = fixed.clone();
                for (a, &i) in self.grid.iter().zip(&idx) {
                    s.push((a.key.clone(), a.values[i].clone()));
                }
                out.push(s);
                if !advance(&mut idx, &self.grid) {
                    break;
                }
            }
        }
        if self.grid.is_empty() && self.random.is_none() {
            out.push(fixed.clone());
        }
        if let Some(r) = &self.random {
            let mut rng = Rng::new(r.seed);
            for _ in 0..r.n {
                let mut s = fixed.clone();
                for (key, dist, _) in &r.space {
                    s.push((key.clone(), draw(dist, &mut rng)));
                }
                out.push(s);
            }
        }
        out
    }

    /// Where a key path is written in the sweep file (for diagnostics about that key).
    pub fn key_span(&self, key: &str) -> Span {
        let from_axes = self
            .grid
            .iter()
            .chain(&self.fixed)
            .find(|a| a.key == key)
            .map(|a| a.key_span);
        let from_random = self.random.as_ref().and_then(|r| {
            r.space
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, _, s)| *s)
        });
        from_axes
            .or(from_random)
            .unwrap_or_else(|| self.source.line_span(1))
    }
}

/// Odometer step over the grid; false once every combination was produced.
fn advance(idx: &mut [usize], grid: &[Axis]) -> bool {
    for k in (0..idx.len()).rev() {
        idx[k] += 1;
        if idx[k] < grid[k].values.len() {
            return true;
        }
        idx[k] = 0;
    }
    false
}

fn draw(dist: &Distribution, rng: &mut Rng) -> Value {
    match dist {
        Distribution::Uniform(a, b) => number(a + (b - a) * rng.uniform()),
        Distribution::LogUniform(a, b) => {
            number((a.ln() + (b.ln() - a.ln()) * rng.uniform()).exp())
        }
        Distribution::Choice(values) => {
            let i = ((rng.uniform() * values.len() as f64) as usize).min(values.len() - 1);
            values[i].clone()
        }
    }
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// `grid:` or `fixed:` — a mapping from dotted key paths to lists (grid) or single values (fixed).
fn read_axes(r: &mut Reader, v: &Val, lists: bool) -> Vec<Axis> {
    let Some(fields) = r.free_fields(v) else {
        return Vec::new();
    };
    let mut axes = Vec::new();
    for (key, val) in fields.all() {
        let key_span = r.key_span(&val.path);
        if !check_key_path(r, key, key_span) {
            continue;
        }
        let values = if lists {
            let Node::Seq(items) = val.node else {
                let msg = format!(
                    "expected the values of `{key}` to be a list, found {}",
                    val.node.describe()
                );
                let d = Diag::new("mcopt::sweep::type", msg)
                    .at(r.source, r.span(&val.path), "not a list")
                    .help(format!(
                        "write `{key}: [a, b, ...]`; a single value belongs under `fixed:`"
                    ));
                r.diags.push(d);
                continue;
            };
            if items.is_empty() {
                let msg = format!("the grid axis `{key}` has no values");
                let d = Diag::new("mcopt::sweep::empty", msg)
                    .at(r.source, r.span(&val.path), "empty list")
                    .help("give at least one value, or remove the axis");
                r.diags.push(d);
                continue;
            }
            let values: Option<Vec<Value>> =
                (0..items.len()).map(|i| r.json(&val.item(i))).collect();
            values
        } else {
            r.json(&val).map(|v| vec![v])
        };
        let Some(values) = values else {
            continue;
        };
        axes.push(Axis {
            key: key.to_string(),
            values,
            key_span,
        });
    }
    axes
}

/// Syntax of a key path, and keys a sweep may not set; the rest is checked by rendering.
fn check_key_path(r: &mut Reader, key: &str, span: Span) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.trim().is_empty()) {
        let msg = format!("`{key}` is not a key path");
        let d = Diag::new("mcopt::sweep::key", msg)
            .at(r.source, span, "empty segment")
            .help("write run-file keys joined by dots, e.g. `solver.options.rho1`");
        r.diags.push(d);
        return false;
    }
    if RESERVED.contains(&parts[0]) {
        let msg = format!("a sweep may not set `{key}`");
        let help = match parts[0] {
            "seed" => "give the seeds with `seeds:` at the top level",
            "output" => "`mcopt sweep run` writes every run's outputs into its own directory",
            _ => "sweep over the base run file's model with `consts.NAME` instead",
        };
        let d = Diag::new("mcopt::sweep::key", msg)
            .at(r.source, span, "reserved key")
            .help(help);
        r.diags.push(d);
        return false;
    }
    true
}

fn read_random(r: &mut Reader, v: &Val) -> Option<RandomSearch> {
    let f = r.fields(Some(v), RANDOM_KEYS)?;
    let n = r
        .required(&f, "n", "the number of settings to draw, e.g. `n: 20`")
        .and_then(|n| r.usize(&n).map(|k| (k, n)))
        .and_then(|(k, nv)| {
            if k > MAX_ENTRIES {
                let msg = format!(
                    "the random search draws {k} settings, more than the limit of {MAX_ENTRIES} entries"
                );
                let help = Some("draw fewer settings, or split the sweep".to_string());
                r.error("mcopt::sweep::too_large", &nv, msg, "too many draws", help);
                None
            } else {
                Some(k)
            }
        })?;
    let seed = f.get("seed").and_then(|s| r.u64(&s)).unwrap_or(0);
    let space_val = f.get("space")?;
    let space_fields = r.free_fields(&space_val)?;
    let mut space = Vec::new();
    for (key, val) in space_fields.all() {
        let span = r.key_span(&val.path);
        if !check_key_path(r, key, span) {
            continue;
        }
        let Some(df) = r.fields(Some(&val), DIST_KEYS) else {
            continue;
        };
        let dist = if let Some(c) = df.get("choice") {
            match c.node {
                Node::Seq(items) if !items.is_empty() => (0..items.len())
                    .map(|i| r.json(&c.item(i)))
                    .collect::<Option<Vec<Value>>>()
                    .map(Distribution::Choice),
                _ => {
                    let msg = format!("expected `{key}.choice` to be a non-empty list");
                    r.error("mcopt::sweep::type", &c, msg, "not a non-empty list", None);
                    None
                }
            }
        } else if let Some(u) = df.get("uniform") {
            interval(r, &u, false).map(|(a, b)| Distribution::Uniform(a, b))
        } else if let Some(u) = df.get("log_uniform") {
            interval(r, &u, true).map(|(a, b)| Distribution::LogUniform(a, b))
        } else {
            let msg = format!("`{key}` names no distribution");
            let d = Diag::new("mcopt::sweep::type", msg)
                .at(r.source, span, "no distribution")
                .help("use `{uniform: [a, b]}`, `{log_uniform: [a, b]}` or `{choice: [...]}`");
            r.diags.push(d);
            None
        };
        if let Some(dist) = dist {
            space.push((key.to_string(), dist, span));
        }
    }
    Some(RandomSearch { n, seed, space })
}

/// `[a, b]` with a < b (and 0 < a for a log scale).
fn interval(r: &mut Reader, v: &Val, log: bool) -> Option<(f64, f64)> {
    let pair = match v.node {
        Node::Seq(items) if items.len() == 2 => {
            let a = r.f64(&v.item(0));
            let b = r.f64(&v.item(1));
            a.zip(b)
        }
        _ => None,
    };
    match pair {
        Some((a, b)) if a < b && (!log || a > 0.0) => Some((a, b)),
        _ => {
            let need = if log {
                "a list [a, b] with 0 < a < b"
            } else {
                "a list [a, b] with a < b"
            };
            let msg = format!("expected `{}` to be {need}", v.name);
            r.error("mcopt::sweep::type", v, msg, "not an interval", None);
            None
        }
    }
}

/// `seeds: [1, 2, 3]`, `seeds: 10` (0..10), `seeds: "0..10"` or `seeds: {from: 0, count: 10}`.
fn read_seeds(r: &mut Reader, v: &Val) -> Option<Vec<u64>> {
    let seeds = match v.node {
        Node::Seq(items) => {
            let s: Option<Vec<u64>> = (0..items.len()).map(|i| r.u64(&v.item(i))).collect();
            s?
        }
        Node::Int(_) => {
            let count = r.u64(v)?;
            seed_range(r, v, 0, count)?
        }
        Node::Str(s) => match parse_range(s) {
            Some(range) => seed_range(r, v, range.start, range.end - range.start)?,
            None => {
                let msg = format!("expected `seeds` to be a range `a..b`, found `{s}`");
                r.error("mcopt::sweep::type", v, msg, "not a range", None);
                return None;
            }
        },
        Node::Map(_) => {
            let f = r.fields(Some(v), &["from", "count"])?;
            let from = f.get("from").and_then(|x| r.u64(&x)).unwrap_or(0);
            let count = f.get("count").and_then(|x| r.u64(&x)).unwrap_or(1);
            seed_range(r, v, from, count)?
        }
        other => {
            let msg = format!(
                "expected `seeds` to be a list, a count or a range, found {}",
                other.describe()
            );
            r.error(
                "mcopt::sweep::type",
                v,
                msg,
                "not seeds",
                Some("write `seeds: [1, 2, 3]`, `seeds: 10` or `seeds: 0..10`".into()),
            );
            return None;
        }
    };
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if seeds.is_empty() || sorted.len() != seeds.len() {
        let msg = if seeds.is_empty() {
            "the sweep has no seeds".to_string()
        } else {
            "the seeds repeat".to_string()
        };
        r.error(
            "mcopt::sweep::seeds",
            v,
            msg,
            "here",
            Some("give distinct seeds".into()),
        );
        return None;
    }
    Some(seeds)
}

/// The seeds `from..from + count`, counted before anything is allocated: more seeds than
/// [`MAX_ENTRIES`] (each seed is at least one entry), or a range past the largest seed, is a
/// diagnostic at `v`.
fn seed_range(r: &mut Reader, v: &Val, from: u64, count: u64) -> Option<Vec<u64>> {
    if count > MAX_ENTRIES as u64 {
        let msg =
            format!("the sweep has {count} seeds, more than the limit of {MAX_ENTRIES} entries");
        let help = "use fewer seeds, or split the sweep".to_string();
        r.error(
            "mcopt::sweep::too_large",
            v,
            msg,
            "too many seeds",
            Some(help),
        );
        return None;
    }
    let Some(end) = from.checked_add(count) else {
        let msg = format!("the seeds run past the largest seed, {}", u64::MAX);
        r.error("mcopt::sweep::seeds", v, msg, "here", None);
        return None;
    };
    Some((from..end).collect())
}

fn parse_range(s: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = s.trim().split_once("..")?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a < b).then_some(a..b)
}

/// The base run file as a JSON tree, with every relative path made absolute (so an
/// effective run file works from any directory) and the outputs removed.
pub fn base_tree(base: &Path) -> Result<Value, Diags> {
    let source = read_source(base, InputKind::RunFile)?;
    // Validate the base first: its own errors belong to it, not to the sweep.
    let run = parse_run(&source, base)?;
    let root = parse_node(&source, "mcopt::config::yaml")?;
    let mut r = Reader::new(&source);
    let mut tree = r.json(&Val::root(&root)).ok_or(r.diags)?;
    let abs = |p: &Path| -> String {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    if let Value::Object(m) = &mut tree {
        m.insert("model".into(), Value::String(abs(&run.model)));
        m.remove("output");
        if let Some(Value::Object(data)) = m.get_mut("data") {
            if let Some(Value::String(f)) = data.get("file").cloned() {
                data.insert("file".into(), Value::String(abs(&run.dir.join(f))));
            }
        }
        if let Some(Value::Object(init)) = m.get_mut("init") {
            for key in ["file", "from"] {
                if let Some(Value::String(f)) = init.get(key).cloned() {
                    init.insert(key.into(), Value::String(abs(&run.dir.join(f))));
                }
            }
        }
        if !run.plugins.is_empty() {
            let plugins = run
                .plugins
                .iter()
                .map(|p| {
                    let path = Path::new(p);
                    if path.components().count() > 1 || path.extension().is_some() {
                        Value::String(abs(path))
                    } else {
                        Value::String(p.clone())
                    }
                })
                .collect();
            m.insert("plugins".into(), Value::Array(plugins));
        }
    }
    Ok(tree)
}

/// The effective run file of one entry: the base tree with `setting` and `seed` applied, as
/// YAML text, validated as a run file. A problem is reported at the sweep key that caused it.
pub fn render_entry(
    sweep: &SweepFile,
    base: &Value,
    setting: &Setting,
    seed: u64,
    write_to: &Path,
) -> Result<String, Diags> {
    let mut tree = base.clone();
    for (key, value) in setting {
        set_path(&mut tree, key, value.clone()).map_err(|why| {
            Diags::from(
                Diag::new("mcopt::sweep::key", format!("cannot set `{key}`: {why}")).at(
                    &sweep.source,
                    sweep.key_span(key),
                    "this key path",
                ),
            )
        })?;
    }
    if let Value::Object(m) = &mut tree {
        m.insert("seed".into(), Value::from(seed));
    }
    let text = yaml_text(&tree);
    let source = SourceFile::new(write_to.display().to_string(), text.clone());
    if let Err(diags) = parse_run(&source, write_to) {
        let mut out = Diags::new();
        for d in diags.iter() {
            let key = setting
                .iter()
                .map(|(k, _)| k)
                .find(|k| d.message.contains(k.as_str()) || mentions_leaf(&d.message, k))
                .cloned();
            let span = key
                .as_deref()
                .map_or(sweep.source.line_span(1), |k| sweep.key_span(k));
            let label = match &key {
                Some(k) => format!("`{k}` makes the run file invalid"),
                None => "this sweep".to_string(),
            };
            let msg = format!(
                "an entry of the sweep is not a valid run file: {}",
                d.message
            );
            let mut nd = Diag::new("mcopt::sweep::key", msg).at(&sweep.source, span, label);
            nd.help = d.help.clone();
            out.push(nd);
        }
        return Err(out);
    }
    Ok(text)
}

/// Whether a run-file message names the last segment of `key` in backquotes.
fn mentions_leaf(message: &str, key: &str) -> bool {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    message.contains(&format!("`{leaf}`"))
}

/// A key path whose prefix is not a mapping in the base run file, so nothing can be set below it.
struct NotAMapping(String);

impl std::fmt::Display for NotAMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is not a mapping in the base run file", self.0)
    }
}

/// Set `tree[a][b][c] = value` for the path `a.b.c`, creating mappings on the way.
fn set_path(tree: &mut Value, key: &str, value: Value) -> Result<(), NotAMapping> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        if node.is_null() {
            *node = Value::Object(serde_json::Map::new());
        }
        let Value::Object(m) = node else {
            return Err(NotAMapping(parts[..i].join(".")));
        };
        if i + 1 == parts.len() {
            m.insert((*part).to_string(), value);
            return Ok(());
        }
        node = m
            .entry((*part).to_string())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    Ok(())
}

/// A JSON tree as YAML text (block style, keys sorted).
pub fn yaml_text(tree: &Value) -> String {
    // serde_norway writes any serde value; a JSON tree always serializes.
    let body = serde_norway::to_string(tree).unwrap_or_default();
    format!("# written by mcopt sweep plan: the effective run file of one entry\n{body}")
}

/// Overrides as a flat JSON object (for the manifest).
pub fn setting_object(setting: &Setting) -> Value {
    let m: BTreeMap<String, Value> = setting.iter().cloned().collect();
    serde_json::to_value(m).unwrap_or(Value::Null)
}
