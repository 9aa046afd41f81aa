//! Opening a session: what a command needs — plugins, the model, bound data, graphs and points
//! — from typed [`Inputs`] (the command line's, or an embedding program's).

use std::path::{Path, PathBuf};

use crate::check::{ConstOverride, Model};
use crate::config::{
    self, DataSpec, HeaderMode, PointMode, RowSel, SeqLayout, Split, TestState, VarRole, VarSpec,
};
use crate::diag::{Diag, Diags};
use crate::graph::{self, Graph, LowerOptions};
use crate::input::{read_source, InputKind};
use crate::memory;
use crate::plugin_host::{self, PluginSearch};
use crate::registry::Registry;

/// Where a session's model, data, plugins and constants come from: the command line's options
/// (or an embedding program's), typed. The run file, when there is one, adds to them.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Plugin libraries (paths, or names searched on MCOPT_PLUGIN_PATH).
    pub plugins: Vec<String>,
    /// The run file.
    pub config: Option<String>,
    /// Data bindings `NAME=FILE:COLUMNS` (they replace the run file's).
    pub data: Vec<String>,
    /// Training rows of the `data` files (0-based, half-open `a..b`).
    pub rows: Option<String>,
    /// Test rows of the `data` files.
    pub test_rows: Option<String>,
    /// Where the test split's recurrence starts (replaces the run file's `test_state`).
    pub test_state: Option<TestState>,
    /// `NAME=VALUE` values of the model's `const`s (they win over the run file's `consts:`).
    pub consts: Vec<String>,
}

/// A checked model with its registry and, when data are bound, its graphs.
pub struct Session {
    pub registry: Registry,
    pub model: Model,
    pub model_path: String,
    pub data: Option<DataSpec>,
    pub data_dir: PathBuf,
    /// The data `data` binds, when an embedding program holds them in memory (read instead
    /// of `data`'s file).
    pub memory: Option<std::sync::Arc<config::Table>>,
    /// The run file's `lift:` (`auto` without a run file): what `reformulate` lifts.
    pub lift: config::LiftChoice,
}

impl Session {
    /// Load plugins, parse and check the model, and collect the data bindings (not yet bound).
    /// With a run file, `model_path` must be the run file's model (see [`model_path`]).
    pub fn load(model_path: &str, input: &Inputs) -> Result<Session, Diags> {
        let run = match &input.config {
            Some(p) => Some(config::load_run(Path::new(p))?),
            None => None,
        };
        Session::open(model_path, input, run.as_ref())
    }

    /// [`Session::load`] with the run file already read (`input.config` is not read again).
    pub fn open(
        model_path: &str,
        input: &Inputs,
        run: Option<&config::RunFile>,
    ) -> Result<Session, Diags> {
        if let Some(run) = run {
            run.model_path(Some(Path::new(model_path)))?;
        }
        let registry = registry(input, run)?;
        let source = read_source(Path::new(model_path), InputKind::Model)?;
        let overrides = const_overrides(input, run)?;
        let model = super::compile_with(&source, &registry, &overrides)?;
        let (data, data_dir) = data_spec(input, run)?;
        Ok(Session {
            registry,
            model,
            model_path: model_path.to_owned(),
            data,
            data_dir,
            memory: None,
            lift: run.map_or(config::LiftChoice::Auto, |r| r.lift),
        })
    }

    /// Lower the model with the data of `split`; `None` when the split is not bound.
    pub fn graph(&self, split: Split) -> Result<Option<Graph>, Diags> {
        let data = match (&self.data, split) {
            (None, Split::Train) => Vec::new(),
            (None, Split::Test) => return Ok(None),
            (Some(spec), Split::Test) if !spec.has_test() => return Ok(None),
            (Some(spec), _) => match &self.memory {
                Some(table) => super::bind_memory(&self.model, spec, table, split)?,
                None => super::bind_data(&self.model, spec, &self.data_dir, split)?,
            },
        };
        if data.is_empty() && !self.model.data.is_empty() {
            let d = Diag::new(
                "mcopt::data::unbound",
                format!(
                    "the model declares {} data sequence(s) but no data are bound",
                    self.model.data.len()
                ),
            )
            .at(&self.model.source, self.model.data[0].span, "declared here")
            .help("bind them with --config RUNFILE or --data NAME=FILE:COLUMNS");
            return Err(d.into());
        }
        graph::lower(&self.model, &LowerOptions { data }).map(Some)
    }

    /// The specs of the parameters, for point and direction files.
    pub fn param_specs(&self) -> Vec<VarSpec> {
        self.model
            .params
            .iter()
            .map(|p| VarSpec::new(&p.name, p.shape.rows, p.shape.cols, VarRole::Param))
            .collect()
    }

    /// θ from a point file, or the model's initial values.
    pub fn point(&self, path: Option<&str>) -> Result<Vec<f64>, Diags> {
        self.point_of(path, None)
    }

    /// θ from a point file, or the model's initial values; layer values (`h[3]: [...]`) of
    /// `graph`'s layers are accepted and shape-checked, and θ does not use them.
    pub fn point_in(&self, path: Option<&str>, graph: &Graph) -> Result<Vec<f64>, Diags> {
        self.point_of(path, Some(graph))
    }

    fn point_of(&self, path: Option<&str>, graph: Option<&Graph>) -> Result<Vec<f64>, Diags> {
        match path {
            None => {
                let mut theta = self.theta_buffer()?;
                for p in &self.model.params {
                    theta.extend_from_slice(&p.init);
                }
                Ok(theta)
            }
            Some(path) => self.read_vars(path, PointMode::Point, graph),
        }
    }

    /// A direction in θ from a direction file (missing names are zero; layer entries of
    /// `graph`'s layers are accepted and shape-checked, and not used).
    pub fn direction_in(&self, path: &str, graph: &Graph) -> Result<Vec<f64>, Diags> {
        self.read_vars(path, PointMode::Direction, Some(graph))
    }

    /// The specs of the parameters, then of the layer instances that are variables of (P0)/(P1).
    pub fn var_specs(&self, graph: &Graph) -> Vec<VarSpec> {
        let layers = crate::forms::lifted_layers(graph).into_iter().map(|i| {
            let slot = &graph.layers[i];
            let n = graph.node(slot.node);
            VarSpec::new(&slot.name, n.rows, n.cols, VarRole::Layer)
        });
        self.param_specs().into_iter().chain(layers).collect()
    }

    fn read_vars(
        &self,
        path: &str,
        mode: PointMode,
        graph: Option<&Graph>,
    ) -> Result<Vec<f64>, Diags> {
        let specs = match graph {
            Some(g) => self.var_specs(g),
            None => self.param_specs(),
        };
        let values = config::load_point(Path::new(path), &specs, mode)?;
        let mut theta = self.theta_buffer()?;
        let params = self.model.params.len();
        for (v, s) in values.values.into_iter().zip(&specs).take(params) {
            match v {
                Some(v) => theta.extend_from_slice(&v),
                None => theta.resize(theta.len() + s.rows * s.cols, 0.0),
            }
        }
        Ok(theta)
    }

    /// An empty vector with room for θ, or a diagnostic with the bytes it needs.
    pub fn theta_buffer(&self) -> Result<Vec<f64>, Diags> {
        memory::with_capacity(self.model.n_params()).map_err(|e| {
            Diag::new("mcopt::eval::memory", e.message("the parameters θ"))
                .in_file(&self.model_path)
                .help(memory::AllocError::HELP)
                .into()
        })
    }
}

/// `consts:` of the run file, then `--const NAME=VALUE` (the command line wins).
fn const_overrides(
    input: &Inputs,
    run: Option<&config::RunFile>,
) -> Result<Vec<ConstOverride>, Diags> {
    let mut out: Vec<ConstOverride> = run
        .map(|r| {
            r.consts
                .iter()
                .map(|(name, value, span)| ConstOverride {
                    name: name.clone(),
                    value: *value,
                    origin: Some((std::sync::Arc::clone(&r.source), *span)),
                })
                .collect()
        })
        .unwrap_or_default();
    for arg in &input.consts {
        out.push(parse_const_arg(arg)?);
    }
    Ok(out)
}

/// `NAME=VALUE` with a finite number.
pub fn parse_const_arg(arg: &str) -> Result<ConstOverride, Diags> {
    let bad = |why: String| -> Diags {
        Diag::new(
            "mcopt::cli::const",
            format!("`--const {arg}` is not NAME=VALUE: {why}"),
        )
        .help("write e.g. `--const tau=1.2`")
        .into()
    };
    let Some((name, value)) = arg.split_once('=') else {
        return Err(bad("there is no `=`".to_string()));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err(bad(format!("`{name}` is not a name")));
    }
    match value.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(ConstOverride {
            name: name.to_string(),
            value: v,
            origin: None,
        }),
        _ => Err(bad(format!("`{}` is not a finite number", value.trim()))),
    }
}

/// The model to read: the one on the command line, the run file's `model:` (which must
/// exist), or both when they name the same file.
pub fn model_path(model: Option<&str>, input: &Inputs) -> Result<String, Diags> {
    resolve(model, input).map(|(m, _)| m)
}

/// [`model_path`] with the run file `input.config` names, read once, for [`Session::open`].
pub fn resolve(
    model: Option<&str>,
    input: &Inputs,
) -> Result<(String, Option<config::RunFile>), Diags> {
    let run = match &input.config {
        Some(p) => Some(config::load_run(Path::new(p))?),
        None => None,
    };
    let model = match (&run, model) {
        (Some(run), m) => run.model_path(m.map(Path::new))?.display().to_string(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => {
            return Err(Diag::new(
                "mcopt::cli::model",
                "expected a model file, found none on the command line and no run file",
            )
            .help("give the model file (.mco), or a run file (--config) that names one")
            .into())
        }
    };
    Ok((model, run))
}

/// Data bindings from the run file or from --data/--rows/--test-rows.
fn data_spec(
    input: &Inputs,
    run: Option<&config::RunFile>,
) -> Result<(Option<DataSpec>, PathBuf), Diags> {
    if input.data.is_empty() {
        return Ok(match run {
            Some(r) => {
                let mut data = r.data.clone();
                if let (Some(d), Some(state)) = (data.as_mut(), input.test_state) {
                    d.test_state = state;
                }
                (data, r.dir.clone())
            }
            None => (None, PathBuf::from(".")),
        });
    }
    let mut file: Option<PathBuf> = None;
    let mut bind = Vec::new();
    for arg in &input.data {
        let (name, path, cols) = config::parse_cli_binding(arg)?;
        if file.as_ref().is_some_and(|f| f != &path) {
            return Err(Diag::new(
                "mcopt::data::files",
                "all --data bindings must read the same file",
            )
            .help(format!(
                "found {} and {}",
                file.unwrap_or_default().display(),
                path.display()
            ))
            .into());
        }
        file = Some(path);
        bind.push((name, cols));
    }
    let train = match &input.rows {
        Some(r) => config::parse_row_sel(r)?,
        None => RowSel::All,
    };
    let test = input
        .test_rows
        .as_deref()
        .map(config::parse_row_sel)
        .transpose()?;
    let spec = DataSpec {
        file: file.unwrap_or_default(),
        header: HeaderMode::Auto,
        bind,
        train,
        test,
        sequences: SeqLayout::Single,
        test_state: input.test_state.unwrap_or_default(),
        origin: None,
    };
    Ok((Some(spec), PathBuf::from(".")))
}

/// The standard functions plus every plugin named by --plugin, the run file and the environment.
pub fn registry(input: &Inputs, run: Option<&config::RunFile>) -> Result<Registry, Diags> {
    let mut registry = Registry::with_standard();
    let mut search = PluginSearch::from_env();
    for p in &input.plugins {
        search.add_cli(p.clone());
    }
    if let Some(run) = run {
        for p in &run.plugins {
            search.add_run_file(p.clone(), &run.dir);
        }
    }
    plugin_host::load_all(&mut registry, &search)?;
    Ok(registry)
}
