//! The checker's driver: declarations, scopes, layers and the objective, item by item.

use std::collections::HashMap;
use std::sync::Arc;

use super::ctx::Ctx;
use super::{Binary, MAX_ELEMENTS, MAX_PARAMETERS};
use super::{
    CExpr, CKind, DataDef, LayerBody, LayerDef, Model, ParamDef, Shape, Term, TermClass, Unary,
};
use crate::diag::{Diag, Diags, SourceFile, Span};
use crate::registry::Registry;
use crate::syntax::ast::{self, Item, LayerIndex, TypeKind};

/// What a name in scope refers to.
#[derive(Debug, Clone)]
pub(super) enum Binding {
    Param(usize),
    Data(usize),
    Const(f64),
    Let(Arc<CExpr>),
    Layer(usize),
    /// A declaration that was refused: uses are silently dropped (no cascade of errors).
    Poisoned,
}

/// A layer name collected before bodies are checked.
#[derive(Debug, Clone)]
pub(super) struct LayerSlot {
    pub name: String,
    pub indexed: bool,
    pub shape: Option<Shape>,
    /// Plain layer checked, or general case of an indexed layer checked.
    pub defined: bool,
    /// A diagnostic already explains why this layer has no shape: later uses stay silent.
    pub failed: bool,
    pub bases: Vec<(u64, CExpr)>,
    pub general: Option<CExpr>,
    pub span: Span,
}

pub(crate) struct Checker<'a> {
    pub(super) source: Arc<SourceFile>,
    pub(super) registry: &'a Registry,
    pub(super) diags: Diags,
    pub(super) scope: HashMap<String, (Binding, Span)>,
    pub(super) params: Vec<ParamDef>,
    /// Entries of all parameters declared so far (kept so the size limit check is O(1)).
    pub(super) param_entries: usize,
    /// Per parameter: where its size was written and the value its entries start at, for
    /// the initial values allocated by `finish` once every size is known and accepted.
    init_fill: Vec<(Span, f64)>,
    pub(super) data: Vec<DataDef>,
    pub(super) layers: Vec<LayerSlot>,
    /// Values from outside for `const` declarations, and whether each one was used.
    overrides: Vec<(super::ConstOverride, bool)>,
    /// [`Model::notes`](super::Model::notes), at most one per span.
    pub(super) notes: Vec<(Span, String)>,
    /// The constants declared in the first pass (their value needs no `let`).
    early_consts: Vec<Span>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(source: &Arc<SourceFile>, registry: &'a Registry) -> Self {
        Checker {
            source: Arc::clone(source),
            registry,
            diags: Diags::new(),
            scope: HashMap::new(),
            params: Vec::new(),
            param_entries: 0,
            init_fill: Vec::new(),
            data: Vec::new(),
            layers: Vec::new(),
            overrides: Vec::new(),
            notes: Vec::new(),
            early_consts: Vec::new(),
        }
    }

    pub(crate) fn with_overrides(mut self, overrides: &[super::ConstOverride]) -> Self {
        self.overrides = overrides.iter().map(|o| (o.clone(), false)).collect();
        self
    }

    /// The outside value for constant `name`, marking the override as used.
    fn override_for(&mut self, name: &str) -> Option<f64> {
        // The last override of a name wins (the command line comes after the run file).
        let mut value = None;
        for (o, used) in self.overrides.iter_mut().filter(|(o, _)| o.name == name) {
            *used = true;
            value = Some(o.value);
        }
        value
    }

    /// Overrides that named no constant of the model.
    fn report_unused_overrides(&mut self) {
        let names: Vec<String> = self
            .scope
            .iter()
            .filter(|(_, (b, _))| matches!(b, Binding::Const(_)))
            .map(|(n, _)| n.clone())
            .collect();
        let mut names = names;
        names.sort();
        let unused: Vec<super::ConstOverride> = self
            .overrides
            .iter()
            .filter(|(_, used)| !used)
            .map(|(o, _)| o.clone())
            .collect();
        for o in unused {
            let msg = format!("the model has no constant `{}`", o.name);
            let mut d = Diag::new("mcopt::config::unknown_const", msg);
            d = match &o.origin {
                Some((src, span)) => d.at(src, *span, "not a `const` of the model"),
                None => d.in_file(&self.source.name),
            };
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let help = if names.is_empty() {
                "the model declares no `const`".to_string()
            } else {
                format!(
                    "{}constants of the model: {}",
                    crate::text::did_you_mean(&o.name, &refs),
                    crate::text::list_names(&refs)
                )
            };
            self.error(d.help(help));
        }
    }

    pub(crate) fn run(mut self, program: &ast::Program) -> Result<Model, Diags> {
        self.declare_globals(program);
        let mut objective: Option<(CExpr, Span)> = None;
        for item in &program.items {
            match item {
                Item::Param(p) => self.param_init(p),
                // Most are declared with the parameters (`declare_globals`), so sizes can use them.
                Item::Const(c) if !self.early_consts.contains(&c.span) => self.constant(c),
                Item::Const(_) => {}
                Item::Let(l) => self.let_decl(l),
                Item::Layer(l) => self.layer(l),
                Item::Data(_) => {}
                Item::Minimize(m) => {
                    if let Some((_, first)) = &objective {
                        let first = *first;
                        self.error(
                            Diag::new(
                                "mcopt::check::minimize",
                                "a model has exactly one `minimize`",
                            )
                            .at(&self.source, m.span, "second objective")
                            .label(first, "first objective here"),
                        );
                    } else if let Some(e) = self.expr(&m.expr, &Ctx::top()) {
                        objective = Some((e, m.span));
                    } else {
                        objective = Some((
                            CExpr {
                                kind: CKind::Literal(vec![0.0]),
                                shape: Shape::SCALAR,
                                span: m.span,
                            },
                            m.span,
                        ));
                    }
                }
            }
        }
        self.report_unused_overrides();
        self.finish(objective)
    }

    pub(super) fn error(&mut self, d: Diag) {
        self.diags.push(d);
    }

    /// The values of a declared quantity could not be allocated.
    pub(super) fn out_of_memory(&mut self, e: crate::memory::AllocError, span: Span, name: &str) {
        let d = Diag::new(
            "mcopt::check::memory",
            e.message(&format!("the values of `{}`", crate::text::clip(name))),
        )
        .at(&self.source, span, "this size")
        .help(crate::memory::AllocError::HELP);
        self.error(d);
    }

    fn finish(mut self, objective: Option<(CExpr, Span)>) -> Result<Model, Diags> {
        let Some((expr, span)) = objective else {
            let end = self.source.text.len();
            self.error(
                Diag::new("mcopt::check::no_objective", "the model has no objective")
                    .at(
                        &self.source,
                        Span::new(end, end),
                        "expected `minimize <expression>`",
                    )
                    .help("add a line like `minimize (u - 1)^2 + 0.5 * x^2`"),
            );
            return Err(self.diags);
        };
        if !expr.shape.is_scalar() {
            let d = Diag::new(
                "mcopt::check::objective_shape",
                format!("the objective must be real, found {}", expr.shape),
            )
            .at(&self.source, expr.span, format!("this is {}", expr.shape))
            .help("reduce it with sum, sqnorm, norm1 or dot");
            self.error(d);
        }
        let layers = self.finish_layers();
        let terms = split_terms(&expr);
        if !self.diags.is_empty() {
            return Err(self.diags);
        }
        self.allocate_initial_values();
        let source = Arc::clone(&self.source);
        let model = Model {
            source,
            params: self.params,
            data: self.data,
            layers,
            terms,
            objective_span: span,
            notes: self.notes,
        };
        self.diags.finish(model)
    }

    /// The initial values not given in full, allocated only now that every size has been
    /// checked: `mcopt::check::memory` at the size (or the scalar initial value) when the
    /// system refuses the memory.
    fn allocate_initial_values(&mut self) {
        for id in 0..self.params.len() {
            let len = self.params[id].shape.len();
            if self.params[id].init.len() == len {
                continue;
            }
            let (span, fill) = self.init_fill[id];
            match crate::memory::filled(len, fill) {
                Ok(init) => self.params[id].init = init,
                Err(e) => {
                    let name = self.params[id].name.clone();
                    self.out_of_memory(e, span, &name);
                }
            }
        }
    }

    fn finish_layers(&mut self) -> Vec<LayerDef> {
        let slots = std::mem::take(&mut self.layers);
        slots
            .into_iter()
            .filter_map(|s| {
                let shape = s.shape?;
                let body = if s.indexed {
                    LayerBody::Indexed {
                        bases: s.bases,
                        general: s.general,
                    }
                } else {
                    LayerBody::Plain(s.general?)
                };
                Some(LayerDef {
                    name: s.name,
                    shape,
                    body,
                    span: s.span,
                })
            })
            .collect()
    }

    /// First pass: constants, parameters, data and layer names, so bodies can refer to them
    /// and order errors can say "declared later" instead of "unknown". Constants come in
    /// source order with the declarations, so a size like `vec(n)` sees the `const n` above it.
    fn declare_globals(&mut self, program: &ast::Program) {
        for item in &program.items {
            match item {
                Item::Const(c) => self.early_constant(c),
                Item::Param(p) => {
                    let Some(shape) = self.value_type(&p.ty) else {
                        self.poison(&p.name);
                        continue;
                    };
                    let id = self.params.len();
                    let total = self.param_entries.checked_add(shape.len());
                    if total.is_none_or(|n| n > MAX_PARAMETERS) {
                        // In bytes, with checked arithmetic: nothing is allocated yet.
                        let need = total
                            .and_then(|n| n.checked_mul(std::mem::size_of::<f64>()))
                            .map_or("more than 2^64".to_owned(), |b| b.to_string());
                        let most = MAX_PARAMETERS * std::mem::size_of::<f64>();
                        let msg = format!("the parameters would take {need} bytes in all, more than the {most} bytes ({MAX_PARAMETERS} entries) mcopt allows");
                        let d = Diag::new("mcopt::check::too_large", msg).at(
                            &self.source,
                            p.ty.span,
                            "this parameter crosses the limit",
                        );
                        self.error(d);
                        self.poison(&p.name);
                        continue;
                    }
                    if self.bind(&p.name, Binding::Param(id)) {
                        self.param_entries += shape.len();
                        // Nothing is allocated before every size is checked (`finish`).
                        self.init_fill.push((p.ty.span, 0.0));
                        self.params.push(ParamDef {
                            name: p.name.name.clone(),
                            shape,
                            init: Vec::new(),
                            span: p.span,
                        });
                    }
                }
                Item::Data(d) => self.declare_data(d),
                Item::Layer(l) => self.declare_layer(l),
                _ => {}
            }
        }
    }

    /// The written sequence count of a `batch(N, ..)` type.
    fn batch_count(&self, ty: &ast::TypeExpr) -> Option<u64> {
        match &ty.kind {
            TypeKind::Batch { count, .. } => count.as_ref().map(|c| c.value),
            _ => None,
        }
    }

    /// Bind a refused declaration's name so that its uses add no further errors.
    fn poison(&mut self, name: &ast::Ident) {
        self.scope
            .entry(name.name.clone())
            .or_insert((Binding::Poisoned, name.span));
    }

    fn declare_data(&mut self, d: &ast::DataDecl) {
        if let Some(count) = self.batch_count(&d.ty) {
            if count == 0 {
                let d2 = Diag::new("mcopt::check::size", "a batch needs at least one sequence").at(
                    &self.source,
                    d.ty.span,
                    "batch of 0 sequences",
                );
                self.error(d2);
                self.poison(&d.name);
                return;
            }
        }
        let (inner, batch) = match &d.ty.kind {
            TypeKind::Batch { count, inner } => {
                (inner.as_ref(), Some(count.as_ref().map(|c| c.value)))
            }
            _ => (&d.ty, None),
        };
        let TypeKind::Seq(step) = &inner.kind else {
            let msg = format!(
                "data `{}` must be a sequence, like seq(vec(5)) or batch(seq(vec(5)))",
                d.name.name
            );
            self.error(Diag::new("mcopt::check::data_type", msg).at(
                &self.source,
                d.ty.span,
                "expected seq(..)",
            ));
            self.poison(&d.name);
            return;
        };
        let Some(shape) = self.value_type(step) else {
            self.poison(&d.name);
            return;
        };
        if shape.cols != 1 {
            let msg = format!("a data step must be real or a vector, found {shape}");
            self.error(Diag::new("mcopt::check::data_type", msg).at(
                &self.source,
                step.span,
                "matrix step",
            ));
            self.poison(&d.name);
            return;
        }
        let id = self.data.len();
        if self.bind(&d.name, Binding::Data(id)) {
            self.data.push(DataDef {
                name: d.name.name.clone(),
                shape,
                batch,
                span: d.span,
            });
        }
    }

    fn declare_layer(&mut self, l: &ast::LayerDecl) {
        let indexed = l.index.is_some();
        if let Some((Binding::Layer(id), prev)) = self.scope.get(&l.name.name).cloned() {
            let slot = &self.layers[id];
            if slot.indexed && indexed {
                return; // another case of the same indexed layer
            }
            let msg = if slot.indexed != indexed {
                format!(
                    "layer `{}` is declared both with and without a time index",
                    l.name.name
                )
            } else {
                format!("layer `{}` is declared twice", l.name.name)
            };
            self.error(
                Diag::new("mcopt::check::duplicate", msg)
                    .at(&self.source, l.name.span, "declared again here")
                    .label(prev, "first declared here"),
            );
            return;
        }
        let id = self.layers.len();
        if self.bind(&l.name, Binding::Layer(id)) {
            self.layers.push(LayerSlot {
                name: l.name.name.clone(),
                indexed,
                shape: None,
                defined: false,
                failed: false,
                bases: Vec::new(),
                general: None,
                span: l.span,
            });
        }
    }

    /// Put `name` in scope; a clash is a diagnostic and returns false.
    pub(super) fn bind(&mut self, name: &ast::Ident, binding: Binding) -> bool {
        if let Some((_, prev)) = self.scope.get(&name.name) {
            let prev = *prev;
            self.error(
                Diag::new(
                    "mcopt::check::duplicate",
                    format!("`{}` is declared twice", name.name),
                )
                .at(&self.source, name.span, "declared again here")
                .label(prev, "first declared here")
                .help("every parameter, constant, let, layer and data name must be distinct"),
            );
            return false;
        }
        self.scope.insert(name.name.clone(), (binding, name.span));
        true
    }

    /// The shape of a value type (`real`, `vec(n)`, `mat(r, c)`); sequence types are refused here.
    pub(super) fn value_type(&mut self, ty: &ast::TypeExpr) -> Option<Shape> {
        let shape = match &ty.kind {
            TypeKind::Real => Shape::SCALAR,
            TypeKind::Vec(n) => Shape::vector(self.dim(n)?),
            TypeKind::Mat(r, c) => {
                let (r, c) = (self.dim(r), self.dim(c));
                Shape::matrix(r?, c?)
            }
            TypeKind::Seq(_) | TypeKind::Batch { .. } => {
                let d = Diag::new(
                    "mcopt::check::type",
                    "sequences are only allowed in `data` declarations",
                )
                .at(&self.source, ty.span, "sequence type here")
                .help("parameters are real, vec(n) or mat(r, c)");
                self.error(d);
                return None;
            }
        };
        if !shape.fits() {
            let msg = format!(
                "{shape} has more than {MAX_ELEMENTS} entries, which would not fit in memory"
            );
            self.error(Diag::new("mcopt::check::too_large", msg).at(
                &self.source,
                ty.span,
                "declared here",
            ));
            return None;
        }
        Some(shape)
    }

    fn dim(&mut self, d: &ast::Dim) -> Option<usize> {
        if let Some(e) = &d.expr {
            return self.size_expr(e);
        }
        match usize::try_from(d.value) {
            Ok(n) if (1..=MAX_ELEMENTS).contains(&n) => Some(n),
            _ => {
                let msg = format!(
                    "a size must be between 1 and {MAX_ELEMENTS}, found {}",
                    d.value
                );
                self.error(Diag::new("mcopt::check::size", msg).at(
                    &self.source,
                    d.span,
                    "size here",
                ));
                None
            }
        }
    }

    /// A size written as an expression of constants (`vec(n - 1)`): a whole number between 1
    /// and [`MAX_ELEMENTS`], or `mcopt::check::size` at the expression.
    fn size_expr(&mut self, e: &ast::Expr) -> Option<usize> {
        let v = self.expr(e, &Ctx::top())?;
        let value = super::ctx::scalar_of(&v);
        match value {
            Some(x) if x.fract() == 0.0 && x >= 1.0 && x <= MAX_ELEMENTS as f64 => Some(x as usize),
            _ => {
                let found = match value {
                    Some(x) => format!("this size is {x}"),
                    None => format!("this is a {} expression, not a constant", v.shape),
                };
                let d = Diag::new(
                    "mcopt::check::size",
                    format!("a size must be a whole number between 1 and {MAX_ELEMENTS}"),
                )
                .at(&self.source, e.span, found)
                .help("sizes are integer expressions of constants, like vec(n) or vec(n - 1); `--const n=..` and a run file's `consts:` change them");
                self.error(d);
                None
            }
        }
    }

    fn param_init(&mut self, p: &ast::ParamDecl) {
        let Some(init) = &p.init else { return };
        let Some(Binding::Param(id)) = self.scope.get(&p.name.name).map(|b| b.0.clone()) else {
            return;
        };
        let shape = self.params[id].shape;
        let Some(value) = self.expr(init, &Ctx::top()) else {
            return;
        };
        match (value.kind, value.shape) {
            (CKind::Literal(v), s) if s == shape => self.params[id].init = v,
            (CKind::Literal(v), s) if s.is_scalar() => {
                // Filled by `finish`, in one allocation of the parameter's size.
                self.init_fill[id] = (init.span, v[0]);
            }
            (CKind::Literal(_), s) => {
                let msg = format!(
                    "the initial value of `{}` must be {shape}, found {s}",
                    p.name.name
                );
                self.error(Diag::new("mcopt::check::shape", msg).at(
                    &self.source,
                    init.span,
                    format!("this is {s}"),
                ));
            }
            _ => {
                let msg = format!("the initial value of `{}` must be a constant", p.name.name);
                self.error(Diag::new("mcopt::check::not_constant", msg).at(
                    &self.source,
                    init.span,
                    "not a constant",
                ));
            }
        }
    }

    /// A constant whose value is known in the first pass (it uses numbers and constants
    /// above it, not lets), declared there so that sizes like `vec(n)` can use it; the others
    /// are declared in source order with the lets, as before.
    fn early_constant(&mut self, c: &ast::ConstDecl) {
        let mut quiet = Diags::new();
        std::mem::swap(&mut quiet, &mut self.diags);
        let value = self.expr(&c.value, &Ctx::top());
        std::mem::swap(&mut quiet, &mut self.diags);
        if value.is_some_and(|v| matches!(v.kind, CKind::Literal(_)) && v.shape.is_scalar()) {
            self.constant(c);
            self.early_consts.push(c.span);
        }
    }

    fn constant(&mut self, c: &ast::ConstDecl) {
        let outside = self.override_for(&c.name.name);
        let Some(value) = self.expr(&c.value, &Ctx::top()) else {
            self.bind(&c.name, Binding::Const(outside.unwrap_or(0.0)));
            return;
        };
        match value.kind {
            CKind::Literal(v) if value.shape.is_scalar() => {
                self.bind(&c.name, Binding::Const(outside.unwrap_or(v[0])));
            }
            _ => {
                let msg = format!(
                    "constant `{}` must be a real number known before evaluation",
                    c.name.name
                );
                let d = Diag::new("mcopt::check::not_constant", msg)
                    .at(
                        &self.source,
                        c.value.span,
                        format!("this is a {} expression", value.shape),
                    )
                    .help("use `let` for an expression of parameters");
                self.error(d);
                self.bind(&c.name, Binding::Const(0.0));
            }
        }
    }

    fn let_decl(&mut self, l: &ast::LetDecl) {
        if let Some(value) = self.expr(&l.value, &Ctx::top()) {
            self.bind(&l.name, Binding::Let(Arc::new(value)));
        } else {
            // Bind an error placeholder so later uses do not cascade into "unknown name".
            let placeholder = CExpr {
                kind: CKind::Literal(vec![0.0]),
                shape: Shape::SCALAR,
                span: l.value.span,
            };
            self.scope
                .entry(l.name.name.clone())
                .or_insert((Binding::Let(Arc::new(placeholder)), l.name.span));
        }
    }

    fn layer(&mut self, l: &ast::LayerDecl) {
        let Some((Binding::Layer(id), _)) = self.scope.get(&l.name.name).cloned() else {
            return;
        };
        if self.layers[id].indexed != l.index.is_some() {
            return; // reported at declaration
        }
        if let Some(LayerIndex::Var(t)) = &l.index {
            if let Some((_, declared)) = self.scope.get(&t.name) {
                let msg = format!(
                    "`{}` cannot be the time variable: the name is already declared",
                    t.name
                );
                let d = Diag::new("mcopt::check::time", msg)
                    .at(&self.source, t.span, "time variable")
                    .label(*declared, "declared here")
                    .help("pick a fresh name for time, like t");
                self.error(d);
                self.layers[id].defined = true;
                return;
            }
        }
        let ctx = match &l.index {
            Some(LayerIndex::Var(t)) => Ctx::layer_general(id, &t.name),
            Some(LayerIndex::Base { .. }) | None => Ctx::layer(id),
        };
        let value = self.expr(&l.value, &ctx);
        let slot_span = l.name.span;
        match &value {
            Some(v) => self.unify_layer_shape(id, v, slot_span),
            None => self.layers[id].failed = true,
        }
        let slot = &mut self.layers[id];
        match &l.index {
            Some(LayerIndex::Base { value: time, span }) => {
                if slot.bases.iter().any(|(t, _)| t == time) {
                    let msg = format!("base case `{}[{}]` is declared twice", slot.name, time);
                    let d = Diag::new("mcopt::check::duplicate", msg).at(
                        &self.source,
                        *span,
                        "again here",
                    );
                    self.error(d);
                } else if let Some(v) = value {
                    slot.bases.push((*time, v));
                }
            }
            _ => {
                if slot.defined && !slot.indexed {
                    // reported when the name was declared the second time
                } else if slot.defined {
                    let msg = format!("layer `{}` is defined twice", slot.name);
                    let d = Diag::new("mcopt::check::duplicate", msg).at(
                        &self.source,
                        slot_span,
                        "again here",
                    );
                    self.error(d);
                } else {
                    slot.defined = true;
                    slot.general = value;
                }
            }
        }
    }

    fn unify_layer_shape(&mut self, id: usize, v: &CExpr, name_span: Span) {
        let slot = &mut self.layers[id];
        match slot.shape {
            None => slot.shape = Some(v.shape),
            Some(s) if s == v.shape => {}
            Some(s) => {
                let msg = format!(
                    "every case of layer `{}` must have the same shape: {} and {}",
                    slot.name, s, v.shape
                );
                let d = Diag::new("mcopt::check::shape", msg)
                    .at(&self.source, v.span, format!("this is {}", v.shape))
                    .label(name_span, format!("earlier cases are {s}"));
                self.error(d);
            }
        }
    }
}

/// The objective as a linear combination of its non-additive parts: sums, differences,
/// negations and scalings by constants are flattened (also through lets), and a part that
/// occurs several times gets one term with the summed coefficient.
///
/// Lets are shared (`Arc`), so the expression is a DAG; the walk visits each node once and
/// propagates coefficients in topological order, linear in the DAG's size.
fn split_terms(root: &CExpr) -> Vec<Term> {
    // Post-order over the additive nodes, each node once.
    let mut order: Vec<&CExpr> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![(root, false)];
    while let Some((e, done)) = stack.pop() {
        if done {
            order.push(e);
            continue;
        }
        if !seen.insert(e as *const CExpr) {
            continue;
        }
        stack.push((e, true));
        for (child, _) in additive_children(e).into_iter().flatten().rev() {
            stack.push((child, false));
        }
    }
    // Reverse post-order is topological from the root: push coefficients down.
    let mut coef = std::collections::HashMap::from([(root as *const CExpr, 1.0)]);
    let mut leaves: Vec<&CExpr> = Vec::new();
    for &e in order.iter().rev() {
        let c = coef.get(&(e as *const CExpr)).copied().unwrap_or(0.0);
        let children = additive_children(e);
        if children.iter().all(Option::is_none) {
            leaves.push(e);
            continue;
        }
        for (child, factor) in children.into_iter().flatten() {
            *coef.entry(child as *const CExpr).or_insert(0.0) += c * factor;
        }
    }
    // Terms in reading order (the order leaves were first met from the left).
    let rank: std::collections::HashMap<*const CExpr, usize> = order
        .iter()
        .enumerate()
        .map(|(i, e)| (*e as *const CExpr, i))
        .collect();
    leaves.sort_by_key(|e| rank[&(*e as *const CExpr)]);
    leaves
        .iter()
        .map(|e| term(e, coef[&(*e as *const CExpr)]))
        .collect()
}

/// The operands of an additive node with their factors (`a - b`: 1 and −1; `c · a`: c).
fn additive_children(e: &CExpr) -> [Option<(&CExpr, f64)>; 2] {
    match &e.kind {
        CKind::Binary(Binary::Add, a, b) => [Some((a, 1.0)), Some((b, 1.0))],
        CKind::Binary(Binary::Sub, a, b) => [Some((a, 1.0)), Some((b, -1.0))],
        CKind::Unary(Unary::Neg, a) => [Some((a, -1.0)), None],
        CKind::Binary(Binary::ElemMul, a, b)
            if b.shape.is_scalar() && scalar_literal(a).is_some() =>
        {
            [Some((b, scalar_literal(a).unwrap_or(1.0))), None]
        }
        CKind::Binary(Binary::ElemMul, a, b)
            if a.shape.is_scalar() && scalar_literal(b).is_some() =>
        {
            [Some((a, scalar_literal(b).unwrap_or(1.0))), None]
        }
        CKind::Binary(Binary::Div, a, b)
            if a.shape.is_scalar() && scalar_literal(b).is_some_and(|c| c != 0.0) =>
        {
            [Some((a, 1.0 / scalar_literal(b).unwrap_or(1.0))), None]
        }
        _ => [None, None],
    }
}

fn term(e: &CExpr, coef: f64) -> Term {
    Term {
        coef,
        expr: e.clone(),
        class: classify(e, coef),
    }
}

fn scalar_literal(e: &CExpr) -> Option<f64> {
    match &e.kind {
        CKind::Literal(v) if v.len() == 1 => Some(v[0]),
        _ => None,
    }
}

fn classify(e: &CExpr, coef: f64) -> TermClass {
    if let CKind::Unary(Unary::SqNorm, inner) = &e.kind {
        if let CKind::Param(p) = inner.kind {
            if coef > 0.0 {
                return TermClass::Tikhonov { param: p };
            }
        }
    }
    if depends_on_layers(e) {
        TermClass::Loss
    } else {
        TermClass::Other
    }
}

fn depends_on_layers(e: &CExpr) -> bool {
    // Terms are small trees at the top of the objective; lets are shared (Arc), so guard
    // against exponential walks with a visited set of node addresses.
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![e];
    while let Some(n) = stack.pop() {
        if !seen.insert(n as *const CExpr) {
            continue;
        }
        match &n.kind {
            CKind::Data { .. } | CKind::Layer { .. } | CKind::TimeReduce { .. } => return true,
            CKind::Unary(_, a) | CKind::Element { base: a, .. } | CKind::Gather { base: a, .. } => {
                stack.push(a)
            }
            CKind::Call { arg, .. } => stack.push(arg),
            CKind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            CKind::Literal(_) | CKind::Param(_) => {}
        }
    }
    false
}
