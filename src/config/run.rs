//! Run files: the YAML file `mcopt train` (and `mcopt validate --config`) reads — model,
//! data bindings, solver and options, initialisation, seed, stopping rules, outputs and
//! validation thresholds. The format is documented in `docs/run-files.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bind::{parse_columns, ColumnSel, DataSpec, RowSel, SeqLayout, SpecOrigin, TestState};
use super::data::HeaderMode;
use super::fields::{Reader, Val};
use super::yaml::{block_key_spans, parse_node, Node};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::input::{read_source, InputKind};

/// A validated run file. Paths are resolved against the run file's directory `dir`
/// (lexically: `dir.join(path)`), except `data.file`, which `bind` resolves from `dir`, and
/// the `output:` paths, which are relative to the current directory (where training tools
/// write their outputs).
#[derive(Debug, Clone)]
pub struct RunFile {
    /// The run file as given.
    pub path: PathBuf,
    /// Its directory (empty for a file in the current directory).
    pub dir: PathBuf,
    /// The model file, resolved against `dir`; see [`RunFile::model_path`].
    pub model: PathBuf,
    /// Where `model:` is written.
    pub model_span: Span,
    /// Plugin libraries and names, as written: `PluginSearch::add_run_file` resolves the
    /// entries that are paths against `dir` (once).
    pub plugins: Vec<String>,
    /// Data bindings; pass `dir` as `base_dir` to [`super::bind`].
    pub data: Option<DataSpec>,
    pub solver: Option<SolverSpec>,
    pub init: InitSpec,
    pub seed: u64,
    pub stop: StopRules,
    pub output: OutputPaths,
    pub validate: Thresholds,
    pub ztol: f64,
    /// `consts:` — values that replace the model's `const` declarations, with the span of each key.
    pub consts: Vec<(String, f64, Span)>,
    /// `checkpoint:` — when `train` writes its checkpoint during a run.
    pub checkpoint: CheckpointEvery,
    /// `trace:` — how often `train` measures the test loss and writes a trace row.
    pub trace: TraceEvery,
    /// `form:` — settings of the problem's forms: β of (P1), read by the solvers that minimize
    /// (P1) and by the certificate alike.
    pub form: FormSettings,
    /// `lift:` — which terms a solver on (P1) lifts into blocks of z.
    pub lift: LiftChoice,
    /// Warnings about the file (old spellings still accepted), for the caller to show.
    pub warnings: Diags,
    pub source: Arc<SourceFile>,
}

/// `lift:` of a run file: `auto` (the default) lifts the `layer` declarations and every kink of
/// the objective outside them; `layers` lifts the declarations only (SRPA then refuses a model
/// with kinks outside them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LiftChoice {
    #[default]
    Auto,
    Layers,
}

/// `form:` of a run file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FormSettings {
    /// `form: {p1: {beta: …}}`, or the old `validate: {form: p1, beta: B}`.
    pub p1: Option<P1Beta>,
    /// `form: {p1: {jacobian: auto | stored | products}}`: how the (P1) host holds J.
    pub jacobian: JacobianChoice,
}

/// How the (P1) host holds J (`form: {p1: {jacobian: …}}`): `auto` (the default) stores it when
/// it fits the memory (docs/srpa.md), `stored` and `products` force one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JacobianChoice {
    #[default]
    Auto,
    Stored,
    Products,
}

/// β of (P1) as a run file gives it, with where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct P1Beta {
    pub beta: BetaSpec,
    pub span: Span,
}

/// β of (P1): one number for every layer group, or numbers by layer name (a group not named
/// gets 1).
#[derive(Debug, Clone, PartialEq)]
pub enum BetaSpec {
    All(f64),
    ByLayer(Vec<(String, f64)>),
}

impl BetaSpec {
    /// How it is written in a run file: `1.0` or `{u: 0.1, v: 1.0}`.
    pub fn yaml(&self) -> String {
        match self {
            BetaSpec::All(b) => format!("{b:?}"),
            BetaSpec::ByLayer(m) => {
                let items: Vec<String> = m.iter().map(|(n, b)| format!("{n}: {b:?}")).collect();
                format!("{{{}}}", items.join(", "))
            }
        }
    }
}

/// When `train` writes its checkpoint during a run (besides at the end and on a stop signal):
/// after `every_seconds` of wall time since the last one and/or every `every_iterations`
/// iterations. Without a `checkpoint:` key, every 60 seconds; the keys given replace that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointEvery {
    pub every_seconds: Option<f64>,
    pub every_iterations: Option<u64>,
}

impl Default for CheckpointEvery {
    fn default() -> Self {
        CheckpointEvery {
            every_seconds: Some(60.0),
            every_iterations: None,
        }
    }
}

/// `trace: {every: k}`: `train` measures the test loss and writes a trace row at every k-th
/// iteration (and always at the start, the final iterate and each checkpoint); the objective,
/// the training loss and the best iterate are still followed at every iteration. Default 1:
/// every iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceEvery {
    pub every: u64,
}

impl Default for TraceEvery {
    fn default() -> Self {
        TraceEvery { every: 1 }
    }
}

/// A solver by name with free-form options (checked later against the solver's schema).
#[derive(Debug, Clone, PartialEq)]
pub struct SolverSpec {
    pub name: String,
    pub options: BTreeMap<String, serde_json::Value>,
    /// Where the name is written, for "unknown solver" diagnostics.
    pub name_span: Span,
    /// Where each option's key is written, for "unknown option" / "bad value" diagnostics.
    pub option_spans: BTreeMap<String, Span>,
    /// Minibatches (`batch:`); `None` is the full batch.
    pub batch: Option<BatchSpec>,
    /// Where `batch` is written.
    pub batch_span: Span,
}

/// Minibatches for gradient solvers; one iteration is one epoch over all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSpec {
    /// `{sequences: k}`: the sequences shuffled and split into batches of k (all time steps).
    Sequences(usize),
    /// `{window: w, per_step: m}`: windows of w consecutive time steps at random starts (each
    /// from h₀ = 0), m of them per step; an epoch draws ⌊T / w⌋ windows per sequence.
    Windows { window: usize, per_step: usize },
}

/// How the parameters are initialised (layers then come from a forward pass).
#[derive(Debug, Clone, PartialEq)]
pub enum InitSpec {
    Gaussian {
        std: f64,
    },
    He,
    Glorot,
    Lecun,
    Zeros,
    /// A point file (resolved against the run file's directory).
    File(PathBuf),
}

/// Stopping rules; `None` leaves the solver's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopRules {
    pub max_iter: Option<usize>,
    pub tol: Option<f64>,
    pub max_seconds: Option<f64>,
}

/// Output files, as written (relative paths are relative to the current directory); `None`
/// means not written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputPaths {
    pub params: Option<PathBuf>,
    pub trace: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub junit: Option<PathBuf>,
    /// Where each given key's value is written (`params`, `trace`, ...), for diagnostics.
    pub spans: BTreeMap<&'static str, Span>,
}

impl OutputPaths {
    /// Whether any training output (`params`, `trace`, `plot`, `checkpoint`, `json`) is given.
    pub fn any(&self) -> bool {
        [
            &self.params,
            &self.trace,
            &self.plot,
            &self.checkpoint,
            &self.json,
        ]
        .iter()
        .any(|p| p.is_some())
    }
}

/// What `mcopt validate` checks; `None` thresholds are not checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub train_max: Option<f64>,
    pub test_max: Option<f64>,
    pub stationarity_tol: Option<f64>,
    /// `order: 1` or `2`.
    pub order: CertificateOrder,
    /// `form: p`, `p0` or `p1`.
    pub form: ProblemForm,
    pub beta: Option<f64>,
    pub allow_inconclusive: bool,
}

/// Which d-stationarity certificate `validate` runs (`validate.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertificateOrder {
    /// First order: f′(x; d) ≥ 0 for every direction d.
    #[default]
    First,
    /// Second order as well: f″(x; d) ≥ 0 along the directions where f′(x; d) = 0.
    Second,
}

impl CertificateOrder {
    /// 1 or 2, as written in a run file.
    pub fn number(self) -> u8 {
        match self {
            CertificateOrder::First => 1,
            CertificateOrder::Second => 2,
        }
    }
}

/// Which problem `validate` certifies (`validate.form`): the model's (P), its lifted form
/// (P0), or its penalized form (P1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProblemForm {
    #[default]
    P,
    P0,
    P1,
}

impl ProblemForm {
    /// `p`, `p0` or `p1`, as written in a run file.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemForm::P => "p",
            ProblemForm::P0 => "p0",
            ProblemForm::P1 => "p1",
        }
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            train_max: None,
            test_max: None,
            stationarity_tol: None,
            order: CertificateOrder::First,
            form: ProblemForm::P,
            beta: None,
            allow_inconclusive: false,
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "model",
    "plugins",
    "data",
    "solver",
    "init",
    "seed",
    "stop",
    "output",
    "validate",
    "ztol",
    "consts",
    "checkpoint",
    "form",
    "lift",
    "trace",
];
const FORM_KEYS: &[&str] = &["p1"];
const P1_KEYS: &[&str] = &["beta", "jacobian"];
const CHECKPOINT_KEYS: &[&str] = &["every_seconds", "every_iterations"];
const TRACE_KEYS: &[&str] = &["every"];
const DATA_KEYS: &[&str] = &[
    "file",
    "header",
    "bind",
    "train",
    "test",
    "sequences",
    "test_state",
];
const SOLVER_KEYS: &[&str] = &["name", "options", "batch"];
const BATCH_KEYS: &[&str] = &["sequences", "window", "per_step"];
const INIT_KEYS: &[&str] = &["scheme", "std", "file", "from"];
const STOP_KEYS: &[&str] = &["max_iter", "tol", "max_seconds"];
const OUTPUT_KEYS: &[&str] = &["params", "trace", "plot", "checkpoint", "json", "junit"];
const VALIDATE_KEYS: &[&str] = &[
    "max_train_loss",
    "max_test_loss",
    "tol",
    "order",
    "form",
    "beta",
    "allow_inconclusive",
];
const SCHEMES: &[&str] = &["gaussian", "he", "glorot", "lecun", "zeros", "file"];

/// Read and validate a run file, reporting every problem found.
pub fn load_run(path: &Path) -> Result<RunFile, Diags> {
    let source = read_source(path, InputKind::RunFile)?;
    parse_run(&source, path)
}

/// Validate run-file text; `path` is where it was read from (for resolving relative paths).
pub fn parse_run(source: &Arc<SourceFile>, path: &Path) -> Result<RunFile, Diags> {
    let root = parse_node(source, "mcopt::config::yaml")?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut r = Reader::new(source);
    let root_val = Val::root(&root);
    let Some(top) = r.fields(Some(&root_val), TOP_KEYS) else {
        return Err(r.diags);
    };
    let model_val = r.required(
        &top,
        "model",
        "the model file (`.mco`), relative to the run file",
    );
    let model_span = model_val
        .as_ref()
        .map_or(Span::new(0, 0), |v| r.span(&v.path));
    let model = model_val.and_then(|v| r.string(&v)).map(|m| dir.join(m));
    let run = RunFile {
        path: path.to_path_buf(),
        plugins: top
            .get("plugins")
            .and_then(|v| r.strings(&v))
            .unwrap_or_default(),
        data: top.get("data").and_then(|v| read_data(&mut r, &v)),
        solver: top.get("solver").and_then(|v| read_solver(&mut r, &v)),
        init: top
            .get("init")
            .and_then(|v| read_init(&mut r, &v, &dir))
            .unwrap_or(InitSpec::Gaussian { std: 0.1 }),
        seed: top.get("seed").and_then(|v| r.u64(&v)).unwrap_or(0),
        stop: read_stop(&mut r, top.get("stop").as_ref()).unwrap_or_default(),
        output: read_output(&mut r, top.get("output").as_ref()).unwrap_or_default(),
        validate: read_thresholds(&mut r, top.get("validate").as_ref()).unwrap_or_default(),
        ztol: top
            .get("ztol")
            .and_then(|v| r.f64_where(&v, "a number ≥ 0", |x| x >= 0.0))
            .unwrap_or(0.0),
        consts: top
            .get("consts")
            .map(|v| read_consts(&mut r, &v))
            .unwrap_or_default(),
        checkpoint: match top.get("checkpoint") {
            Some(v) => read_checkpoint_every(&mut r, &v).unwrap_or_default(),
            None => CheckpointEvery::default(),
        },
        trace: match top.get("trace") {
            Some(v) => read_trace_every(&mut r, &v).unwrap_or_default(),
            None => TraceEvery::default(),
        },
        form: FormSettings::default(),
        lift: top
            .get("lift")
            .and_then(|v| r.choice(&v, &["auto", "layers"]))
            .map_or(LiftChoice::Auto, |s| match s.as_str() {
                "layers" => LiftChoice::Layers,
                _ => LiftChoice::Auto,
            }),
        warnings: Diags::new(),
        model: model.unwrap_or_default(),
        model_span,
        dir,
        source: Arc::clone(source),
    };
    let mut run = run;
    let (p1, jacobian) = top
        .get("form")
        .and_then(|v| read_form(&mut r, &v))
        .unwrap_or_default();
    run.form.jacobian = jacobian;
    let old = top.get("validate").and_then(|v| {
        let beta = run.validate.beta?;
        let mut path = v.path.clone();
        path.push(super::yaml::Seg::val("beta"));
        Some((beta, r.span(&path)))
    });
    run.form.p1 = match (p1, old) {
        (p1, None) => p1,
        (p1, Some((b, span))) => {
            let old = P1Beta {
                beta: BetaSpec::All(b),
                span,
            };
            match p1 {
                Some(new) if new.beta != old.beta => {
                    r.diags
                        .push(beta_conflict(source, &old, "`validate.beta`", &new));
                    Some(new)
                }
                Some(new) => {
                    run.warnings
                        .push(beta_deprecated(source, &old, "`validate.beta`"));
                    Some(new)
                }
                None => {
                    run.warnings
                        .push(beta_deprecated(source, &old, "`validate.beta`"));
                    Some(old)
                }
            }
        }
    };
    r.diags.finish(run)
}

/// `form: {p1: {beta: B | {NAME: B, ...}, jacobian: auto | stored | products}}`, every β
/// finite and > 0; β may be left out when `jacobian` is given.
fn read_form(r: &mut Reader, v: &Val) -> Option<(Option<P1Beta>, JacobianChoice)> {
    let f = r.fields(Some(v), FORM_KEYS)?;
    let p1 = f.get("p1")?;
    let g = r.fields(Some(&p1), P1_KEYS)?;
    let jacobian = match g.get("jacobian") {
        Some(j) => Some(
            match r.choice(&j, &["auto", "stored", "products"])?.as_str() {
                "stored" => JacobianChoice::Stored,
                "products" => JacobianChoice::Products,
                _ => JacobianChoice::Auto,
            },
        ),
        None => None,
    };
    if jacobian.is_some() && g.get("beta").is_none() {
        return Some((None, jacobian.unwrap_or_default()));
    }
    let beta = r.required(&g, "beta", "β of (P1): a number > 0, or one by layer name")?;
    let span = r.span(&beta.path);
    let spec = match beta.node {
        Node::Map(_) => {
            let m = r.free_fields(&beta)?;
            let mut out = Vec::new();
            for (name, val) in m.all() {
                out.push((
                    name.to_string(),
                    r.f64_where(&val, "a number > 0", |x| x > 0.0)?,
                ));
            }
            BetaSpec::ByLayer(out)
        }
        _ => BetaSpec::All(r.f64_where(&beta, "a number > 0", |x| x > 0.0)?),
    };
    Some((
        Some(P1Beta { beta: spec, span }),
        jacobian.unwrap_or_default(),
    ))
}

/// The warning (render it with `diag::render_warnings`) for an old spelling of β (`what`, at `old.span`), showing the new one.
pub fn beta_deprecated(source: &Arc<SourceFile>, old: &P1Beta, what: &str) -> Diag {
    Diag::new(
        "mcopt::config::deprecated",
        format!("{what} is the old spelling of β of (P1)"),
    )
    .at(source, old.span, "old spelling")
    .help(format!(
        "write `form: {{p1: {{beta: {}}}}}` at the top level; the solver and the certificate both read it",
        old.beta.yaml()
    ))
}

/// The error for β given both ways with different values: at the old spelling, with the new.
pub fn beta_conflict(source: &Arc<SourceFile>, old: &P1Beta, what: &str, new: &P1Beta) -> Diag {
    Diag::new(
        "mcopt::config::conflict",
        format!(
            "β of (P1) is given twice with different values: {what} says {}, `form.p1.beta` says {}",
            old.beta.yaml(),
            new.beta.yaml()
        ),
    )
    .at(source, old.span, "old spelling")
    .label(new.span, "new spelling")
    .help("keep only `form: {p1: {beta: …}}`")
}

impl RunFile {
    /// The model to read, given the model named on the command line, if any. The run file's
    /// `model:` must exist; the command-line model may be omitted, and when both are given
    /// they must name the same file.
    pub fn model_path(&self, cli: Option<&Path>) -> Result<PathBuf, Diag> {
        let ours = std::fs::canonicalize(&self.model).map_err(|e| {
            let msg = format!(
                "the run file's model `{}` cannot be read: {}",
                self.model.display(),
                crate::input::os_error(&e)
            );
            Diag::new("mcopt::config::model", msg)
                .at(&self.source, self.model_span, "this model")
                .help("`model:` is relative to the run file's directory")
        })?;
        let Some(cli) = cli else {
            return Ok(self.model.clone());
        };
        // A command-line model that cannot be read is reported when it is read.
        match std::fs::canonicalize(cli) {
            Ok(theirs) if theirs != ours => {
                let msg = format!(
                    "the command line names model `{}`, but the run file names `{}`",
                    cli.display(),
                    self.model.display()
                );
                Err(Diag::new("mcopt::config::model", msg)
                    .at(&self.source, self.model_span, "the run file's model")
                    .help("omit the model on the command line to use the run file's, or name the same file in both"))
            }
            _ => Ok(cli.to_path_buf()),
        }
    }
}

/// `consts: {tau: 1.2, ...}`: constant names (checked against the model later) and numbers.
fn read_consts(r: &mut Reader, v: &Val) -> Vec<(String, f64, Span)> {
    let Some(fields) = r.free_fields(v) else {
        return Vec::new();
    };
    fields
        .all()
        .into_iter()
        .filter_map(|(name, val)| {
            let x = r.f64(&val)?;
            Some((name.to_string(), x, r.key_span(&val.path)))
        })
        .collect()
}

fn read_data(r: &mut Reader, v: &Val) -> Option<DataSpec> {
    let f = r.fields(Some(v), DATA_KEYS)?;
    let data_span = r.key_span(&v.path);
    let file_val = r.required(&f, "file", "the CSV data file, relative to the run file");
    let file = file_val.as_ref().and_then(|v| r.string(v));
    let header = f
        .get("header")
        .and_then(|v| read_header(r, &v))
        .unwrap_or_default();
    let bind_val = r.required(
        &f,
        "bind",
        "a mapping from data names to columns, e.g. `x: 0..5`",
    );
    let (bind, bind_spans) = bind_val
        .and_then(|b| read_bindings(r, &b))
        .unwrap_or_default();
    let train_val = f.get("train");
    let train = train_val
        .as_ref()
        .map_or(Some(RowSel::All), |v| read_rows(r, v));
    let test_val = f.get("test");
    let test = test_val.as_ref().map(|v| read_rows(r, v));
    let seq_val = f.get("sequences");
    let sequences = seq_val
        .as_ref()
        .map_or(Some(SeqLayout::Single), |v| read_layout(r, v));
    let test_state = f.get("test_state").map_or(Some(TestState::Carry), |v| {
        let choice = r.choice(&v, &["carry", "restart"])?;
        Some(match choice.as_str() {
            "restart" => TestState::Restart,
            _ => TestState::Carry,
        })
    });
    let origin = SpecOrigin {
        source: Arc::clone(r.source),
        data: data_span,
        file: file_val.map_or(data_span, |v| r.span(&v.path)),
        bind: bind_spans,
        train: train_val.map_or(data_span, |v| r.span(&v.path)),
        test: test_val.map(|v| r.span(&v.path)),
        sequences: seq_val.map_or(data_span, |v| r.span(&v.path)),
    };
    Some(DataSpec {
        file: PathBuf::from(file?),
        header,
        bind,
        train: train?,
        test: match test {
            Some(t) => Some(t?),
            None => None,
        },
        sequences: sequences?,
        test_state: test_state?,
        origin: Some(origin),
    })
}

fn read_header(r: &mut Reader, v: &Val) -> Option<HeaderMode> {
    match v.node {
        Node::Bool(true) => Some(HeaderMode::Yes),
        Node::Bool(false) => Some(HeaderMode::No),
        _ => match r.choice(v, &["auto", "yes", "no"])?.as_str() {
            "yes" => Some(HeaderMode::Yes),
            "no" => Some(HeaderMode::No),
            _ => Some(HeaderMode::Auto),
        },
    }
}

type Bindings = (Vec<(String, ColumnSel)>, Vec<Span>);

fn read_bindings(r: &mut Reader, v: &Val) -> Option<Bindings> {
    let f = r.free_fields(v)?;
    let mut bind = Vec::new();
    let mut spans = Vec::new();
    let mut ok = true;
    for (name, val) in f.all() {
        match read_columns(r, &val) {
            Some(sel) => {
                spans.push(r.span(&val.path));
                bind.push((name.to_string(), sel));
            }
            None => ok = false,
        }
    }
    ok.then_some((bind, spans))
}

const COLUMNS_HELP: &str = "write columns as a range `0..5` (end excluded), a list `[0, 1, 4]`, names `[DP, EP]` or a name range `DP..IP`";

fn read_columns(r: &mut Reader, v: &Val) -> Option<ColumnSel> {
    let bad = |r: &mut Reader, msg: String| {
        r.error(
            "mcopt::config::columns",
            v,
            msg,
            "bad column selection",
            Some(COLUMNS_HELP.to_string()),
        );
        None
    };
    match v.node {
        Node::Str(s) => match parse_columns(s) {
            Ok(sel) => Some(sel),
            Err(m) => bad(r, format!("binding `{}`: {m}", last_name(&v.name))),
        },
        Node::Int(i) if *i >= 0 => Some(ColumnSel::Indices(vec![*i as usize])),
        Node::Seq(items)
            if !items.is_empty() && items.iter().all(|n| matches!(n, Node::Int(i) if *i >= 0)) =>
        {
            Some(ColumnSel::Indices(
                items
                    .iter()
                    .map(|n| if let Node::Int(i) = n { *i as usize } else { 0 })
                    .collect(),
            ))
        }
        Node::Seq(items)
            if !items.is_empty() && items.iter().all(|n| matches!(n, Node::Str(_))) =>
        {
            Some(ColumnSel::Names(
                items
                    .iter()
                    .map(|n| {
                        if let Node::Str(s) = n {
                            s.clone()
                        } else {
                            String::new()
                        }
                    })
                    .collect(),
            ))
        }
        other => bad(
            r,
            format!(
                "expected columns for binding `{}`, found {}",
                last_name(&v.name),
                other.describe()
            ),
        ),
    }
}

fn last_name(dotted: &str) -> &str {
    dotted.rsplit('.').next().unwrap_or(dotted)
}

const ROWS_HELP: &str =
    "write time steps as a range `0..8` (0-based, end excluded), `all`, or a fraction `{fraction: 0.9}` (or just `0.9`)";

fn read_rows(r: &mut Reader, v: &Val) -> Option<RowSel> {
    let x = match v.node {
        Node::Str(s) => {
            return super::bind::parse_row_sel(s)
                .map_err(|d| {
                    rows_error(
                        r,
                        v,
                        format!("`{}`: {}", v.name, d.message),
                        "bad row selection",
                    )
                })
                .ok();
        }
        Node::Num(x) => *x,
        Node::Map(_) => {
            let f = r.fields(Some(v), &["fraction"])?;
            r.required(&f, "fraction", "a number between 0 and 1")
                .and_then(|x| r.f64(&x))?
        }
        other => {
            let msg = format!(
                "expected a row selection for `{}`, found {}",
                v.name,
                other.describe()
            );
            rows_error(r, v, msg, "bad row selection");
            return None;
        }
    };
    if x > 0.0 && x < 1.0 {
        return Some(RowSel::Fraction(x));
    }
    let msg = format!(
        "expected `{}` to be a fraction strictly between 0 and 1, found {x}",
        v.name
    );
    rows_error(r, v, msg, "not in (0, 1)");
    None
}

fn rows_error(r: &mut Reader, v: &Val, msg: String, label: &str) {
    r.error(
        "mcopt::config::rows",
        v,
        msg,
        label,
        Some(ROWS_HELP.to_string()),
    );
}

fn read_layout(r: &mut Reader, v: &Val) -> Option<SeqLayout> {
    match v.node {
        Node::Int(1) => Some(SeqLayout::Single),
        Node::Int(n) if *n > 1 => usize::try_from(*n).ok().map(SeqLayout::Blocks),
        Node::Str(s) if s == "single" => Some(SeqLayout::Single),
        Node::Map(_) => {
            let f = r.fields(Some(v), &["blocks", "column"])?;
            match (f.get("blocks"), f.get("column")) {
                (Some(b), None) => match r.usize(&b)? {
                    0 => {
                        r.error(
                            "mcopt::config::value",
                            &b,
                            "expected at least 1 block, found 0".into(),
                            "zero blocks",
                            None,
                        );
                        None
                    }
                    1 => Some(SeqLayout::Single),
                    n => Some(SeqLayout::Blocks(n)),
                },
                (None, Some(c)) => r.string(&c).map(SeqLayout::Column),
                _ => {
                    let msg = format!(
                        "expected `{}` to give exactly one of `blocks` or `column`",
                        v.name
                    );
                    r.error("mcopt::config::value", v, msg, "", None);
                    None
                }
            }
        }
        other => {
            let msg = format!(
                "expected a sequence layout for `{}`, found {}",
                v.name,
                other.describe()
            );
            let help = "write `1` (one sequence), `{blocks: N}` (N equal consecutive blocks) or `{column: NAME}` (a sequence-id column)";
            r.error(
                "mcopt::config::value",
                v,
                msg,
                "bad layout",
                Some(help.to_string()),
            );
            None
        }
    }
}

fn read_solver(r: &mut Reader, v: &Val) -> Option<SolverSpec> {
    let f = r.fields(Some(v), SOLVER_KEYS)?;
    let name_val = r.required(&f, "name", "the solver's name, e.g. `srpa`")?;
    let name = r.string(&name_val)?;
    let mut options = BTreeMap::new();
    let mut option_spans = BTreeMap::new();
    if let Some(opts) = f.get("options") {
        let of = r.free_fields(&opts)?;
        let all = of.all();
        // One scan for every key's span (locating each key would re-parse the file per key).
        let scanned: BTreeMap<String, Span> = all
            .first()
            .and_then(|(k, _)| block_key_spans(r.source, &opts.path, k))
            .unwrap_or_default()
            .into_iter()
            .rev()
            .collect();
        for (key, val) in all {
            let span = match scanned.get(key) {
                Some(span) => *span,
                None => r.key_span(&val.path),
            };
            option_spans.insert(key.to_string(), span);
            options.insert(key.to_string(), r.json(&val)?);
        }
    }
    let (batch, batch_span) = match f.get("batch") {
        Some(b) => (Some(read_batch(r, &b)?), r.span(&b.path)),
        None => (None, r.span(&name_val.path)),
    };
    Some(SolverSpec {
        name,
        options,
        name_span: r.span(&name_val.path),
        option_spans,
        batch,
        batch_span,
    })
}

/// `{sequences: k}` or `{window: w, per_step: m}` (m defaults to 1), every count ≥ 1.
fn read_batch(r: &mut Reader, v: &Val) -> Option<BatchSpec> {
    let f = r.fields(Some(v), BATCH_KEYS)?;
    let mut count = |key: &str| -> Option<Option<usize>> {
        match f.get(key) {
            None => Some(None),
            Some(x) => r
                .f64_where(&x, "an integer ≥ 1", |n| {
                    n >= 1.0 && n.fract() == 0.0 && n <= 1e12
                })
                .map(|n| Some(n as usize)),
        }
    };
    let (seqs, window, per_step) = (count("sequences")?, count("window")?, count("per_step")?);
    match (seqs, window, per_step) {
        (Some(k), None, None) => Some(BatchSpec::Sequences(k)),
        (None, Some(w), m) => Some(BatchSpec::Windows {
            window: w,
            per_step: m.unwrap_or(1),
        }),
        _ => {
            let msg =
                "expected `batch` to be `{sequences: k}` or `{window: w, per_step: m}`".to_string();
            r.error(
                "mcopt::config::value",
                v,
                msg,
                "not a batch layout",
                Some("give either `sequences` or `window` (with `per_step`)".into()),
            );
            None
        }
    }
}

fn read_init(r: &mut Reader, v: &Val, dir: &Path) -> Option<InitSpec> {
    if let Node::Str(_) = v.node {
        let scheme = r.choice(v, &SCHEMES[..5])?;
        return scheme_of(&scheme, 0.1);
    }
    let f = r.fields(Some(v), INIT_KEYS)?;
    // `from: FILE` and `file: FILE` are the same: a point file to start from.
    if let Some(file) = f.get("from").or_else(|| f.get("file")) {
        if let Some(s) = f
            .get("scheme")
            .filter(|s| s.node != &Node::Str("file".into()))
        {
            let msg = "expected either `scheme` or `from` in `init`, found both".to_string();
            r.error(
                "mcopt::config::value",
                &s,
                msg,
                "remove this or `from`",
                None,
            );
            return None;
        }
        return r.string(&file).map(|p| InitSpec::File(dir.join(p)));
    }
    let scheme = match f.get("scheme") {
        Some(s) => r.choice(&s, &SCHEMES[..5])?,
        None => "gaussian".to_string(),
    };
    let std = match f.get("std") {
        Some(s) if scheme != "gaussian" => {
            let msg = format!("`init.std` only applies to the gaussian scheme, not `{scheme}`");
            r.error(
                "mcopt::config::value",
                &s,
                msg,
                "not used",
                Some("remove `std` or use `scheme: gaussian`".into()),
            );
            return None;
        }
        Some(s) => r.f64_where(&s, "a positive number", |x| x > 0.0)?,
        None => 0.1,
    };
    scheme_of(&scheme, std)
}

fn scheme_of(scheme: &str, std: f64) -> Option<InitSpec> {
    Some(match scheme {
        "gaussian" => InitSpec::Gaussian { std },
        "he" => InitSpec::He,
        "glorot" => InitSpec::Glorot,
        "lecun" => InitSpec::Lecun,
        _ => InitSpec::Zeros,
    })
}

fn read_stop(r: &mut Reader, v: Option<&Val>) -> Option<StopRules> {
    let f = r.fields(v, STOP_KEYS)?;
    let positive = |r: &mut Reader, key: &str| {
        f.get(key)
            .filter(|v| v.node != &Node::Null)
            .and_then(|v| r.f64_where(&v, "a positive number", |x| x > 0.0))
    };
    Some(StopRules {
        max_iter: f
            .get("max_iter")
            .filter(|v| v.node != &Node::Null)
            .and_then(|v| r.usize(&v)),
        tol: positive(r, "tol"),
        max_seconds: positive(r, "max_seconds"),
    })
}

/// `checkpoint: {every_seconds: S, every_iterations: K}` (S > 0, K ≥ 1; each optional).
fn read_checkpoint_every(r: &mut Reader, v: &Val) -> Option<CheckpointEvery> {
    let f = r.fields(Some(v), CHECKPOINT_KEYS)?;
    let every_seconds = f
        .get("every_seconds")
        .filter(|v| v.node != &Node::Null)
        .map(|v| r.f64_where(&v, "a positive number of seconds", |x| x > 0.0));
    let every_iterations = f
        .get("every_iterations")
        .filter(|v| v.node != &Node::Null)
        .map(|v| match r.u64(&v)? {
            0 => {
                let msg = "expected `checkpoint.every_iterations` to be at least 1, found 0";
                r.error("mcopt::config::value", &v, msg.into(), "zero", None);
                None
            }
            k => Some(k),
        });
    Some(CheckpointEvery {
        every_seconds: every_seconds.map_or(Some(None), |s| s.map(Some))?,
        every_iterations: every_iterations.map_or(Some(None), |k| k.map(Some))?,
    })
}

/// `trace: {every: K}` (K ≥ 1; default 1).
fn read_trace_every(r: &mut Reader, v: &Val) -> Option<TraceEvery> {
    let f = r.fields(Some(v), TRACE_KEYS)?;
    let Some(e) = f.get("every").filter(|v| v.node != &Node::Null) else {
        return Some(TraceEvery::default());
    };
    match r.u64(&e)? {
        0 => {
            let msg = "expected `trace.every` to be at least 1, found 0";
            r.error("mcopt::config::value", &e, msg.into(), "zero", None);
            None
        }
        every => Some(TraceEvery { every }),
    }
}

/// `output:` paths, kept as written: relative ones are relative to the current directory.
fn read_output(r: &mut Reader, v: Option<&Val>) -> Option<OutputPaths> {
    let f = r.fields(v, OUTPUT_KEYS)?;
    let mut spans = BTreeMap::new();
    let mut path = |key: &'static str| {
        let v = f.get(key).filter(|v| v.node != &Node::Null)?;
        spans.insert(key, r.span(&v.path));
        r.string(&v).map(PathBuf::from)
    };
    Some(OutputPaths {
        params: path("params"),
        trace: path("trace"),
        plot: path("plot"),
        checkpoint: path("checkpoint"),
        json: path("json"),
        junit: path("junit"),
        spans,
    })
}

fn read_thresholds(r: &mut Reader, v: Option<&Val>) -> Option<Thresholds> {
    let f = r.fields(v, VALIDATE_KEYS)?;
    let nonneg = |r: &mut Reader, key: &str| {
        f.get(key)
            .filter(|v| v.node != &Node::Null)
            .and_then(|v| r.f64_where(&v, "a number ≥ 0", |x| x >= 0.0))
    };
    let order = f.get("order").and_then(|o| {
        let n = r.u64(&o)?;
        match n {
            1 => return Some(CertificateOrder::First),
            2 => return Some(CertificateOrder::Second),
            _ => {}
        }
        r.error(
            "mcopt::config::value",
            &o,
            format!("expected `validate.order` to be 1 or 2, found {n}"),
            "not 1 or 2",
            None,
        );
        None
    });
    Some(Thresholds {
        train_max: nonneg(r, "max_train_loss"),
        test_max: nonneg(r, "max_test_loss"),
        // Below 1e100: a larger tolerance passes every slope, and the verdict says nothing.
        stationarity_tol: f
            .get("tol")
            .filter(|v| v.node != &Node::Null)
            .and_then(|v| {
                r.f64_where(&v, "a number ≥ 0 and below 1e100", |x| {
                    (0.0..1e100).contains(&x)
                })
            }),
        order: order.unwrap_or_default(),
        form: f
            .get("form")
            .and_then(|v| r.choice(&v, &["p", "p0", "p1"]))
            .map(|s| match s.as_str() {
                "p0" => ProblemForm::P0,
                "p1" => ProblemForm::P1,
                _ => ProblemForm::P,
            })
            .unwrap_or_default(),
        beta: f
            .get("beta")
            .and_then(|v| r.f64_where(&v, "a positive number", |x| x > 0.0)),
        allow_inconclusive: f
            .get("allow_inconclusive")
            .and_then(|v| r.bool(&v))
            .unwrap_or(false),
    })
}
