//! Forward mode: one node's ray-Taylor coefficients from its children's, at tensor level.

use super::kernels::{self as kn, Tay};
use super::linalg::{gemm, Mat};
use super::{EvalError, EvalErrorKind};
use crate::graph::{ElemBinary, ElemUnary, Graph, Node, NodeId, Op, ReduceKind};
use crate::registry::Order;

/// What a node's evaluation reads besides the arena.
pub(super) struct Frame<'a> {
    pub graph: &'a Graph,
    /// The registry's functions (the built-in relu inline).
    pub calls: super::kernels::Calls<'a>,
    pub off: &'a [usize],
    /// Where each node's value lives (see [`value_offsets`]).
    pub voff: &'a [usize],
    pub stride: usize,
    pub ztol: f64,
    pub scratch: &'a mut Vec<f64>,
    /// What the second coefficient a₂ is computed for (see [`UnaryFail`]).
    pub a2_use: A2Use,
    /// Set to the node where a first-order pass met `sqrt` at a₀ = a₁ = 0.
    pub needs_a2: &'a mut Option<NodeId>,
}

/// What a pass with three coefficients computes a₂ for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum A2Use {
    /// f″ is wanted: every a₂ must be exact.
    SecondOrder,
    /// Only f′ is wanted; a₂ only serves `sqrt` at 0, whose f′ = √(a₂/2) needs it.
    FirstOrderOnly,
}

/// Why an elementwise function failed at one entry.
enum UnaryFail {
    Domain(String),
    /// A first-order pass met a₀ = a₁ = 0: f′ = √(a₂/2) needs the second coefficient.
    NeedsA2,
}

/// √a along the ray. At a₀ = 0, √a(t) is finite only when a₁ = 0 (a₁ > 0 gives √t, a₁ < 0
/// leaves the domain); then √(a₂t²/2) = t√(a₂/2), so f′ = √(a₂/2), while f″ depends on the
/// argument's third coefficient, which is not computed, and is refused (unless a₂ = 0 too).
#[inline(always)]
fn sqrt_tay<const K: usize>(x: Tay<K>, a2_use: A2Use) -> Result<Tay<K>, UnaryFail> {
    if x[0] < 0.0 {
        return Err(UnaryFail::Domain(format!(
            "sqrt of the negative number {} is undefined",
            x[0]
        )));
    }
    if x[0] > 0.0 || K == 1 {
        let s = x[0].sqrt();
        let d1 = if s > 0.0 { 0.5 / s } else { 0.0 };
        let d2 = if s > 0.0 { -0.25 / (s * s * s) } else { 0.0 };
        return Ok(kn::smooth(x, s, d1, d2));
    }
    if x[1] != 0.0 {
        let why = if x[1] > 0.0 {
            "grows like √t"
        } else {
            "leaves the domain"
        };
        return Err(UnaryFail::Domain(format!(
            "sqrt at 0 has no finite derivative along this direction: its argument moves \
             linearly (a₁ = {}), so the square root {why}",
            x[1]
        )));
    }
    if K == 2 {
        return Err(UnaryFail::NeedsA2);
    }
    match (x[2], a2_use) {
        (a2, _) if a2 < 0.0 => Err(UnaryFail::Domain(format!(
            "sqrt at 0 is undefined along this direction: its argument decreases like \
             a₂t²/2 with a₂ = {a2}"
        ))),
        (0.0, _) => Ok([0.0; K]),
        (a2, A2Use::FirstOrderOnly) => {
            let mut o = [0.0; K];
            o[1] = (a2 / 2.0).sqrt();
            Ok(o)
        }
        (a2, A2Use::SecondOrder) => Err(UnaryFail::Domain(format!(
            "sqrt at 0 along this direction: its argument grows like a₂t²/2 (a₂ = {a2}), so \
             f′ = √(a₂/2) = {} is finite, but f″ depends on the argument's third Taylor \
             coefficient, which mcopt does not compute; for a norm write norm2(v), which is \
             exact to second order at 0, instead of sqrt(sqnorm(v))",
            (a2 / 2.0).sqrt()
        ))),
    }
}

/// `pow(a, p)` along the ray. An integer p is x^p for every a (a₀ ≠ 0 when p < 0). Otherwise
/// a₀ > 0 is smooth, a₀ < 0 is outside the domain, and at a₀ = 0 (p > 0) the one-sided
/// expansion of a(t)^p decides, as for `sqrt` (p = ½), whose rules these extend:
/// - a₁ > 0: a(t)^p = (a₁t)^p (1 + O(t)): f′ = 0 for p > 1 and is infinite (refused) for
///   p < 1; f″ = 0 for p > 2 and is infinite (refused) for 1 < p < 2.
/// - a₁ < 0: a(t) leaves the domain (refused).
/// - a₁ = 0, a₂ > 0: a(t)^p = (a₂/2)^p t^{2p} (1 + O(t)): f′ = 0 for p > ½, √(a₂/2) for
///   p = ½, infinite (refused) for p < ½; f″ = 0 for p > 1, refused for p < 1 (infinite, or
///   for p = ½ dependent on the third coefficient, which is not computed).
/// - a₁ = 0, a₂ < 0: leaves the domain (refused); a₁ = a₂ = 0: 0 (as `sqrt`).
///
/// A first-order pass at a₀ = a₁ = 0 with p ≤ ½ needs a₂ (like `sqrt`).
#[inline(always)]
fn pow_tay<const K: usize>(x: Tay<K>, p: f64, a2_use: A2Use) -> Result<Tay<K>, UnaryFail> {
    if p.fract() == 0.0 && p.abs() <= i32::MAX as f64 {
        let k = p as i32;
        let (f0, f1, f2) = kn::powi_parts(x[0], k)
            .ok_or_else(|| UnaryFail::Domain(format!("0 to the power {k} is undefined")))?;
        return Ok(kn::smooth(x, f0, f1, f2));
    }
    if x[0] > 0.0 || K == 1 && x[0] == 0.0 && p > 0.0 {
        let f0 = x[0].powf(p);
        let (f1, f2) = if x[0] > 0.0 {
            (p * x[0].powf(p - 1.0), p * (p - 1.0) * x[0].powf(p - 2.0))
        } else {
            (0.0, 0.0)
        };
        return Ok(kn::smooth(x, f0, f1, f2));
    }
    if x[0] < 0.0 {
        return Err(UnaryFail::Domain(format!(
            "pow({}, {p}) is undefined: a non-integer power needs a ≥ 0 (write pow(abs(a), p))",
            x[0]
        )));
    }
    if p <= 0.0 {
        return Err(UnaryFail::Domain(format!(
            "pow(0, {p}) is undefined: at 0 the power must be positive"
        )));
    }
    let refuse = |what: &str| {
        Err(UnaryFail::Domain(format!(
            "pow(a, {p}) at a = 0 along this direction: {what}"
        )))
    };
    let second = K > 2 && a2_use == A2Use::SecondOrder;
    let mut o = [0.0; K];
    if x[1] < 0.0 {
        return refuse(&format!("a moves linearly into a < 0 (a₁ = {})", x[1]));
    }
    if x[1] > 0.0 {
        if p < 1.0 {
            return refuse(&format!(
                "a grows linearly (a₁ = {}), so a^p grows like t^{p}: no finite derivative",
                x[1]
            ));
        }
        if second && p < 2.0 {
            return refuse(&format!(
                "a grows linearly (a₁ = {}), so a^p grows like t^{p}: f′ = 0 but f″ is infinite",
                x[1]
            ));
        }
        return Ok(o);
    }
    if K == 2 {
        if p > 0.5 {
            return Ok(o);
        }
        return Err(UnaryFail::NeedsA2);
    }
    let a2 = if K > 2 { x[2] } else { 0.0 };
    if a2 < 0.0 {
        return refuse(&format!("a decreases like a₂t²/2 with a₂ = {a2}"));
    }
    if a2 == 0.0 {
        return Ok(o);
    }
    if p < 0.5 {
        return refuse(&format!(
            "a grows like a₂t²/2 (a₂ = {a2}), so a^p grows like t^{}: no finite derivative",
            2.0 * p
        ));
    }
    if second && p < 1.0 {
        return refuse(&format!(
            "a grows like a₂t²/2 (a₂ = {a2}), so f″ is infinite or needs the argument's third \
             Taylor coefficient, which mcopt does not compute"
        ));
    }
    if p == 0.5 {
        o[1] = (a2 / 2.0).sqrt();
    }
    Ok(o)
}

/// The three coefficient slices of a child (empty beyond the evaluator's stride): its value
/// at `voff`, the others in its block at `off`.
pub(super) fn coeffs(
    left: &[f64],
    voff: usize,
    off: usize,
    stride: usize,
    len: usize,
) -> [&[f64]; 3] {
    std::array::from_fn(|k| match k {
        0 => &left[voff..voff + len],
        _ if k < stride => &left[off + k * len..off + (k + 1) * len],
        _ => &[][..],
    })
}

/// Where each node's value (coefficient 0) lives in the arena: in its own block (at `off`),
/// except for a contiguous gather of a vector, whose value is the range of its operand's
/// value that it takes (a view: nothing is copied); its other coefficients stay in its
/// block. A matrix product reads its operands' coefficients as one block, so its operands
/// are not views.
pub(super) fn value_offsets(g: &Graph, off: &[usize]) -> Vec<usize> {
    let mut product_operand = vec![false; g.nodes.len()];
    for n in &g.nodes {
        if let Op::MatMul(a, b) = n.op {
            product_operand[a.index()] = true;
            product_operand[b.index()] = true;
        }
    }
    let mut voff = off[..g.nodes.len()].to_vec();
    for (i, n) in g.nodes.iter().enumerate() {
        if let Op::Gather {
            arg,
            start,
            step: 1,
            ..
        } = n.op
        {
            if !g.node(arg).batched && n.cols == 1 && !product_operand[i] {
                voff[i] = voff[arg.index()] + start;
            }
        }
    }
    voff
}

/// The first `K` coefficient slices of a node's own block, mutable.
fn outputs<const K: usize>(own: &mut [f64], len: usize) -> [&mut [f64]; K] {
    let mut rest = own;
    std::array::from_fn(|_| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
        rest = tail;
        head
    })
}

#[inline(always)]
fn load<const K: usize>(c: &[&[f64]; 3], i: usize) -> Tay<K> {
    std::array::from_fn(|k| c[k][i])
}

#[inline(always)]
fn store<const K: usize>(out: &mut [&mut [f64]; K], i: usize, v: Tay<K>) {
    for k in 0..K {
        out[k][i] = v[k];
    }
}

/// The operand indexes of the products summed into group `g` of a dot product: element e of
/// column g when batched, otherwise flat index e of equal shapes (with broadcasting).
pub(crate) fn dot_pairs<'a>(
    na: &'a Node,
    nb: &'a Node,
    n: &Node,
    g: usize,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let rows = na.rows.max(nb.rows);
    let (batched, group) = if n.batched {
        (true, rows)
    } else {
        (false, na.len().max(nb.len()))
    };
    let ((ars, acs), (brs, bcs)) = (bstrides(na), bstrides(nb));
    (0..group).map(move |e| {
        let (i, j) = if batched {
            (e, g)
        } else {
            (e % rows, e / rows)
        };
        (i * ars + j * acs, i * brs + j * bcs)
    })
}

/// Strides that broadcast an operand of shape `(rows, cols)` to the output's shape.
#[inline(always)]
pub(super) fn bstrides(n: &Node) -> (usize, usize) {
    (
        usize::from(n.rows != 1),
        if n.cols == 1 { 0 } else { n.rows },
    )
}

pub(super) use crate::graph::gather_index;

pub(super) fn order_of(k: usize) -> Order {
    match k {
        1 => Order::Zero,
        2 => Order::One,
        _ => Order::Two,
    }
}

impl Frame<'_> {
    /// Evaluate node `id`; returns the number of active kinks.
    pub(super) fn node<const K: usize>(
        &mut self,
        arena: &mut [f64],
        id: NodeId,
    ) -> Result<usize, EvalError> {
        let g = self.graph;
        let n = g.node(id);
        let (left, right) = arena.split_at_mut(self.off[id.index()]);
        let len = n.len();
        let own = &mut right[..self.stride * len];
        let child = |c: NodeId| {
            let (ci, len) = (c.index(), g.node(c).len());
            coeffs(left, self.voff[ci], self.off[ci], self.stride, len)
        };
        let err = |msg: String| EvalError {
            node: id,
            kind: EvalErrorKind::Domain(msg),
        };
        match &n.op {
            Op::Const(range) => {
                own[..len].copy_from_slice(&g.consts[range.clone()]);
                Ok(0)
            }
            Op::Param(_) => Ok(0),
            Op::Unary(op, a) => {
                match unary::<K>(
                    *op,
                    child(*a),
                    outputs::<K>(own, len),
                    self.ztol,
                    self.a2_use,
                ) {
                    Ok(k) => Ok(k),
                    Err(UnaryFail::Domain(m)) => Err(err(m)),
                    Err(UnaryFail::NeedsA2) => {
                        *self.needs_a2 = Some(id);
                        Err(err(
                            "sqrt at 0 along this direction: its argument has a₀ = a₁ = 0, \
                             so f′ = √(a₂/2) needs the second Taylor coefficient; evaluate with \
                             an evaluator built for order 2"
                                .to_owned(),
                        ))
                    }
                }
            }
            Op::Binary(op, a, b) => {
                let (na, nb) = (g.node(*a), g.node(*b));
                binary::<K>(
                    *op,
                    (child(*a), na),
                    (child(*b), nb),
                    n,
                    outputs::<K>(own, len),
                    self.ztol,
                )
                .map_err(err)
            }
            Op::MatMul(a, b) => {
                self.matmul::<K>(left, *a, *b, own, n);
                Ok(0)
            }
            Op::Transpose(a) => {
                let na = g.node(*a);
                let ca = child(*a);
                for (k, o) in outputs::<K>(own, len).into_iter().enumerate() {
                    for i in 0..na.rows {
                        for j in 0..na.cols {
                            o[j + i * na.cols] = ca[k][i + j * na.rows];
                        }
                    }
                }
                Ok(0)
            }
            Op::Reduce(kind, a) => Ok(reduce::<K>(
                *kind,
                child(*a),
                g.node(*a),
                outputs::<K>(own, len),
                self.ztol,
            )),
            Op::Dot(a, b) => {
                dot::<K>(
                    (child(*a), g.node(*a)),
                    (child(*b), g.node(*b)),
                    n,
                    outputs::<K>(own, len),
                );
                Ok(0)
            }
            Op::Element { arg, row, col } => {
                let na = g.node(*arg);
                let ca = child(*arg);
                let mut out = outputs::<K>(own, len);
                for j in 0..n.cols {
                    let src = if n.batched {
                        row + j * na.rows
                    } else {
                        row + col * na.rows
                    };
                    store(&mut out, j, load::<K>(&ca, src));
                }
                Ok(0)
            }
            Op::Gather {
                arg,
                start,
                step,
                len: m,
            } => {
                let na = g.node(*arg);
                let ca = child(*arg);
                let group = na.group_len();
                let mut out = outputs::<K>(own, len);
                if self.voff[id.index()] != self.off[id.index()] {
                    // A view (see `value_offsets`): only the coefficients after the value.
                    for (k, o) in out.iter_mut().enumerate().skip(1) {
                        o.copy_from_slice(&ca[k][*start..start + m]);
                    }
                    return Ok(0);
                }
                if *step == 1 {
                    // A contiguous range: one slice copy per coefficient and column.
                    for (k, o) in out.iter_mut().enumerate() {
                        for j in 0..n.cols {
                            let src = j * group + start;
                            o[j * m..(j + 1) * m].copy_from_slice(&ca[k][src..src + m]);
                        }
                    }
                    return Ok(0);
                }
                for j in 0..n.cols {
                    for k in 0..*m {
                        let src = j * group + gather_index(*start, *step, k);
                        store(&mut out, k + j * m, load::<K>(&ca, src));
                    }
                }
                Ok(0)
            }
            Op::Call { func, params, arg } => {
                let ca = child(*arg);
                let a: [&[f64]; 3] = std::array::from_fn(|k| if k < K { ca[k] } else { &[][..] });
                let mut o = outputs::<K>(own, len).into_iter();
                let f: [&mut [f64]; 3] = std::array::from_fn(|_| o.next().unwrap_or(&mut []));
                self.calls
                    .call(
                        *func,
                        &g.fparams[params.clone()],
                        order_of(K),
                        self.ztol,
                        a,
                        f,
                    )
                    .map_err(|e| EvalError::call(id, e))
            }
            Op::Accumulate {
                terms,
                scale,
                per_column_mean,
            } => {
                let mut acc = [0.0; K];
                for &t in &g.lists[terms.clone()] {
                    let w = g.accumulate_weight(t, *scale, *per_column_mean);
                    let ct = child(t);
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a += w * ct[k].iter().sum::<f64>();
                    }
                }
                store(&mut outputs::<K>(own, len), 0, acc);
                Ok(0)
            }
        }
    }

    /// C = A B to order K, skipping the terms that are identically zero.
    fn matmul<const K: usize>(
        &mut self,
        left: &[f64],
        a: NodeId,
        b: NodeId,
        own: &mut [f64],
        n: &Node,
    ) {
        let g = self.graph;
        let (na, nb) = (g.node(a), g.node(b));
        let (oa, ob) = (self.off[a.index()], self.off[b.index()]);
        let (la, lb, lc) = (na.len(), nb.len(), n.len());
        let am = |k: usize| Mat::new(&left[oa + k * la..oa + (k + 1) * la], na.rows, na.cols);
        // [B0 B1 ..] are contiguous: one product with A0 gives [C0 C1 ..].
        let nbk = if K == 1 || !nb.varies {
            1
        } else if K == 3 && !nb.affine {
            3
        } else {
            2
        };
        let bblock = &left[ob..ob + nbk * lb];
        gemm_blocks(am(0), bblock, (nb.rows, nb.cols), nbk, &mut own[..nbk * lc]);
        own[nbk * lc..K * lc].fill(0.0);
        if K == 1 || !na.varies {
            return;
        }
        let b0 = Mat::new(&left[ob..ob + lb], nb.rows, nb.cols);
        if K == 3 && nb.varies {
            // T = A1 [B0 B1]; C1 += T0, C2 += 2 T1.
            let t = &mut self.scratch[..2 * lc];
            gemm_blocks(am(1), &left[ob..ob + 2 * lb], (nb.rows, nb.cols), 2, t);
            for i in 0..lc {
                own[lc + i] += t[i];
                own[2 * lc + i] += 2.0 * t[lc + i];
            }
        } else {
            gemm(1.0, am(1), b0, 1.0, &mut own[lc..2 * lc]);
        }
        if K == 3 && !na.affine {
            gemm(1.0, am(2), b0, 1.0, &mut own[2 * lc..3 * lc]);
        }
    }
}

/// `c = A [B₀ B₁ ..]` for `blocks` contiguous coefficient blocks of `B` of `rows × cols` each:
/// one product, or one per block when `cols` is odd. The two-column kernels fuse multiply–adds
/// (`eval::linalg`), so a column's bits depend on which column it is paired with: with an even
/// number of columns per block, the pairs never straddle two blocks, and each coefficient's
/// columns are paired as in a pass that computes that coefficient alone (the value of a
/// directional pass is the value pass's to the bit).
fn gemm_blocks(a: Mat<'_>, b: &[f64], (rows, cols): (usize, usize), blocks: usize, c: &mut [f64]) {
    let (lb, lc) = (rows * cols, c.len() / blocks.max(1));
    if cols % 2 == 0 || blocks == 1 || lb == 0 || lc == 0 {
        gemm(1.0, a, Mat::new(b, rows, blocks * cols), 0.0, c);
        return;
    }
    for (bk, ck) in b.chunks_exact(lb).zip(c.chunks_exact_mut(lc)) {
        gemm(1.0, a, Mat::new(bk, rows, cols), 0.0, ck);
    }
}

fn unary<const K: usize>(
    op: ElemUnary,
    a: [&[f64]; 3],
    mut out: [&mut [f64]; K],
    ztol: f64,
    a2_use: A2Use,
) -> Result<usize, UnaryFail> {
    // The common operations in loops of their own (the operation hoisted out of the loop).
    match op {
        ElemUnary::Neg => return Ok(unary_map(a, out, |x| kn::scale(x, -1.0))),
        ElemUnary::Scale(s) => return Ok(unary_map(a, out, |x| kn::scale(x, s))),
        ElemUnary::PowI(2) => {
            return Ok(unary_map(a, out, |x| {
                kn::smooth(x, x[0] * x[0], 2.0 * x[0], 2.0)
            }))
        }
        ElemUnary::Abs => {
            let mut kinks = 0;
            unary_map(a, out, |x| {
                let (v, kink) = kn::abs(x, ztol);
                kinks += usize::from(kink);
                v
            });
            return Ok(kinks);
        }
        _ => {}
    }
    let len = out[0].len();
    let mut kinks = 0;
    for i in 0..len {
        let x: Tay<K> = load(&a, i);
        let v = match op {
            ElemUnary::Neg => kn::scale(x, -1.0),
            ElemUnary::Scale(s) => kn::scale(x, s),
            ElemUnary::Abs => {
                let (v, kink) = kn::abs(x, ztol);
                kinks += usize::from(kink);
                v
            }
            ElemUnary::Exp => {
                let e = x[0].exp();
                kn::smooth(x, e, e, e)
            }
            ElemUnary::Log => {
                if x[0] <= 0.0 {
                    return Err(UnaryFail::Domain(format!("log of {} is undefined", x[0])));
                }
                let r = 1.0 / x[0];
                kn::smooth(x, x[0].ln(), r, -r * r)
            }
            ElemUnary::Sqrt => sqrt_tay(x, a2_use)?,
            ElemUnary::Pow(p) => pow_tay(x, p, a2_use)?,
            ElemUnary::PowI(k) => {
                let (f0, f1, f2) = kn::powi_parts(x[0], k)
                    .ok_or_else(|| UnaryFail::Domain(format!("0 to the power {k} is undefined")))?;
                kn::smooth(x, f0, f1, f2)
            }
        };
        store(&mut out, i, v);
    }
    Ok(kinks)
}

/// `out = op(a)` entrywise, for an operation that cannot fail; the value-only pass (K = 1)
/// reads and writes plain slices.
#[inline(always)]
fn unary_map<const K: usize>(
    a: [&[f64]; 3],
    mut out: [&mut [f64]; K],
    mut op: impl FnMut(Tay<K>) -> Tay<K>,
) -> usize {
    if K == 1 {
        let [o] = &mut out[..] else { return 0 };
        let len = o.len();
        for (o, &x) in o.iter_mut().zip(&a[0][..len]) {
            *o = op(std::array::from_fn(|_| x))[0];
        }
        return 0;
    }
    for i in 0..out[0].len() {
        store(&mut out, i, op(load(&a, i)));
    }
    0
}

fn binary<const K: usize>(
    op: ElemBinary,
    (ca, na): ([&[f64]; 3], &Node),
    (cb, nb): ([&[f64]; 3], &Node),
    n: &Node,
    mut out: [&mut [f64]; K],
    ztol: f64,
) -> Result<usize, String> {
    // The smooth operations in loops of their own (the operation hoisted out of the loop).
    match op {
        ElemBinary::Add => return Ok(binary_map((ca, na), (cb, nb), n, out, kn::add)),
        ElemBinary::Sub => return Ok(binary_map((ca, na), (cb, nb), n, out, kn::sub)),
        ElemBinary::Mul => return Ok(binary_map((ca, na), (cb, nb), n, out, kn::mul)),
        _ => {}
    }
    let full = |m: &Node| m.rows == n.rows && m.cols == n.cols;
    if let (1, ElemBinary::Max | ElemBinary::Min, true, true) = (K, op, full(na), full(nb)) {
        // The value-only max/min of equal shapes: kn::max_min with K = 1, on plain slices.
        let is_max = op == ElemBinary::Max;
        let mut kinks = 0;
        for ((o, &x), &y) in out[0].iter_mut().zip(ca[0]).zip(cb[0]) {
            let (v, kink) = kn::max_min([x], [y], ztol, is_max);
            kinks += usize::from(kink);
            *o = v[0];
        }
        return Ok(kinks);
    }
    let ((ars, acs), (brs, bcs)) = (bstrides(na), bstrides(nb));
    let mut kinks = 0;
    for j in 0..n.cols {
        for i in 0..n.rows {
            let x: Tay<K> = load(&ca, i * ars + j * acs);
            let y: Tay<K> = load(&cb, i * brs + j * bcs);
            let v = match op {
                ElemBinary::Add => kn::add(x, y),
                ElemBinary::Sub => kn::sub(x, y),
                ElemBinary::Mul => kn::mul(x, y),
                ElemBinary::Div => kn::div(x, y).ok_or_else(|| "division by zero".to_owned())?,
                ElemBinary::Max | ElemBinary::Min => {
                    let (v, kink) = kn::max_min(x, y, ztol, op == ElemBinary::Max);
                    kinks += usize::from(kink);
                    v
                }
            };
            store(&mut out, i + j * n.rows, v);
        }
    }
    Ok(kinks)
}

/// `out = op(a, b)` elementwise with broadcasting, for an operation that cannot fail. Operands
/// of the output's shape are read contiguously; a column (rows × 1) broadcast over the output's
/// columns too; anything else through the broadcast strides. The same kernel per entry in
/// every case, so the values do not depend on the path.
fn binary_map<const K: usize>(
    (ca, na): ([&[f64]; 3], &Node),
    (cb, nb): ([&[f64]; 3], &Node),
    n: &Node,
    mut out: [&mut [f64]; K],
    op: impl Fn(Tay<K>, Tay<K>) -> Tay<K>,
) -> usize {
    let full = |m: &Node| m.rows == n.rows && m.cols == n.cols;
    let column = |m: &Node| m.rows == n.rows && m.cols == 1;
    let scalar = |m: &Node| m.rows == 1 && m.cols == 1;
    let rows = n.rows;
    if full(na) && full(nb) {
        if K == 1 {
            for ((o, &x), &y) in out[0].iter_mut().zip(ca[0]).zip(cb[0]) {
                *o = op(std::array::from_fn(|_| x), std::array::from_fn(|_| y))[0];
            }
            return 0;
        }
        for i in 0..n.len() {
            store(&mut out, i, op(load(&ca, i), load(&cb, i)));
        }
    } else if full(na) && scalar(nb) {
        let y: Tay<K> = load(&cb, 0);
        for i in 0..n.len() {
            store(&mut out, i, op(load(&ca, i), y));
        }
    } else if scalar(na) && full(nb) {
        let x: Tay<K> = load(&ca, 0);
        for i in 0..n.len() {
            store(&mut out, i, op(x, load(&cb, i)));
        }
    } else if full(na) && column(nb) {
        for j in 0..n.cols {
            for i in 0..rows {
                let at = i + j * rows;
                store(&mut out, at, op(load(&ca, at), load(&cb, i)));
            }
        }
    } else if column(na) && full(nb) {
        for j in 0..n.cols {
            for i in 0..rows {
                let at = i + j * rows;
                store(&mut out, at, op(load(&ca, i), load(&cb, at)));
            }
        }
    } else {
        let ((ars, acs), (brs, bcs)) = (bstrides(na), bstrides(nb));
        for j in 0..n.cols {
            for i in 0..rows {
                let x: Tay<K> = load(&ca, i * ars + j * acs);
                let y: Tay<K> = load(&cb, i * brs + j * bcs);
                store(&mut out, i + j * rows, op(x, y));
            }
        }
    }
    0
}

/// Reduce each group (a column when batched, else everything) to one number.
fn reduce<const K: usize>(
    kind: ReduceKind,
    a: [&[f64]; 3],
    na: &Node,
    mut out: [&mut [f64]; K],
    ztol: f64,
) -> usize {
    let group = na.group_len();
    let mut kinks = 0;
    for g in 0..out[0].len() {
        let entries = g * group..(g + 1) * group;
        let (v, k) = match kind {
            ReduceKind::Norm2 => {
                let mut sums = kn::Norm2Sums::default();
                for i in entries {
                    sums.add::<K>(load(&a, i));
                }
                let (v, kink) = kn::norm2::<K>(sums, ztol);
                (v, usize::from(kink))
            }
            ReduceKind::Max => {
                let (v, ties) = max_select::<K>(&a, entries, ztol);
                (v, usize::from(ties > 1))
            }
            ReduceKind::Sum => {
                // Each coefficient summed in entry order, as entrywise_sum does.
                let mut acc = [0.0; K];
                for (k, s) in acc.iter_mut().enumerate() {
                    *s = a[k][entries.clone()].iter().fold(0.0, |s, x| s + x);
                }
                (acc, 0)
            }
            ReduceKind::SqNorm | ReduceKind::Norm1 => entrywise_sum(kind, &a, entries, ztol),
        };
        kinks += k;
        store(&mut out, g, v);
    }
    kinks
}

/// The n-ary max of `entries` along the ray: the exact largest a₀, and the a₁, a₂ of the
/// tied entry (a₀ within ztol of the largest) with the lexicographically largest (a₁, a₂);
/// with the number of tied entries.
#[inline(always)]
fn max_select<const K: usize>(
    a: &[&[f64]; 3],
    entries: std::ops::Range<usize>,
    ztol: f64,
) -> (Tay<K>, usize) {
    if K == 1 {
        // Only the number of ties is needed beside the largest value.
        let v = &a[0][entries];
        let (top, ties) = if ztol == 0.0 {
            max_and_ties(v)
        } else {
            let top = max_value(v);
            let ties = v.iter().filter(|&&x| x >= top - ztol || x.is_nan()).count();
            (top, ties)
        };
        let mut o = [0.0; K];
        o[0] = top;
        return (o, ties);
    }
    let top = max_value(&a[0][entries.clone()]);
    let mut best: Option<Tay<K>> = None;
    let mut ties = 0;
    for i in entries {
        if a[0][i] < top - ztol {
            continue;
        }
        ties += 1;
        let x: Tay<K> = load(a, i);
        best = match best {
            Some(b)
                if (1..K)
                    .map(|k| x[k] - b[k])
                    .find(|d| *d != 0.0)
                    .is_none_or(|d| d < 0.0) =>
            {
                Some(b)
            }
            _ => Some(x),
        };
    }
    let mut o = best.unwrap_or([0.0; K]);
    o[0] = top;
    (o, ties)
}

/// The largest entry (NaN ignored; −∞ when empty): four running maxima, which the
/// processor overlaps, combined at the end. The maximum of numbers does not depend on the
/// order except for the sign of a zero, so a zero result is recomputed in entry order.
fn max_value(v: &[f64]) -> f64 {
    let mut m = [f64::NEG_INFINITY; 4];
    let mut quads = v.chunks_exact(4);
    for q in &mut quads {
        for (m, x) in m.iter_mut().zip(q) {
            *m = m.max(*x);
        }
    }
    let tail = quads
        .remainder()
        .iter()
        .fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let top = m[0].max(m[1]).max(m[2].max(m[3])).max(tail);
    if top == 0.0 {
        return v.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    }
    top
}

/// `max_value(v)` and the number of entries x with x ≥ it or NaN (the ties at ztol = 0), with
/// one pass over memory: block by block, each block's maximum and then its count, read
/// again from the cache. A block whose maximum is below the running one only adds its NaNs;
/// one above it restarts the count (the earlier entries are below it, their NaNs stay).
fn max_and_ties(v: &[f64]) -> (f64, usize) {
    const BLOCK: usize = 2048;
    let (mut top, mut ties, mut nans) = (f64::NEG_INFINITY, 0, 0);
    for b in v.chunks(BLOCK) {
        let m = max_value(b);
        let t = m.max(top);
        let (mut ge, mut nan) = (0, 0);
        for &x in b {
            ge += usize::from(x >= t);
            nan += usize::from(x.is_nan());
        }
        ties = if m > top { nans } else { ties } + ge + nan;
        nans += nan;
        top = t;
    }
    if top == 0.0 {
        // The sign of a zero maximum depends on the order: max_value's, in entry order.
        top = max_value(v);
    }
    (top, ties)
}

/// Σ of x, x² or |x| over `entries`, with the number of kinks of |x|.
fn entrywise_sum<const K: usize>(
    kind: ReduceKind,
    a: &[&[f64]; 3],
    entries: std::ops::Range<usize>,
    ztol: f64,
) -> (Tay<K>, usize) {
    let mut acc = [0.0; K];
    let mut kinks = 0;
    for i in entries {
        let x: Tay<K> = load(a, i);
        let v = match kind {
            ReduceKind::SqNorm => kn::mul(x, x),
            ReduceKind::Norm1 => {
                let (v, kink) = kn::abs(x, ztol);
                kinks += usize::from(kink);
                v
            }
            ReduceKind::Sum | ReduceKind::Norm2 | ReduceKind::Max => x,
        };
        acc = kn::add(acc, v);
    }
    (acc, kinks)
}

fn dot<const K: usize>(
    (ca, na): ([&[f64]; 3], &Node),
    (cb, nb): ([&[f64]; 3], &Node),
    n: &Node,
    mut out: [&mut [f64]; K],
) {
    for g in 0..n.cols {
        let mut acc = [0.0; K];
        for (ia, ib) in dot_pairs(na, nb, n, g) {
            let x: Tay<K> = load(&ca, ia);
            let y: Tay<K> = load(&cb, ib);
            acc = kn::add(acc, kn::mul(x, y));
        }
        store(&mut out, g, acc);
    }
}

#[cfg(test)]
mod tests {
    use crate::eval::test_models::{graph_of, point_with_kinks};
    use crate::eval::{EvalOptions, Evaluator};
    use crate::registry::Order;

    /// The one-pass maximum and tie count equal the two passes (max_value, then the count of
    /// entries ≥ it or NaN) over several blocks: the maximum in a later block, ties across
    /// blocks, NaNs before and after it, signed zeros, all −∞.
    #[test]
    fn max_and_ties_match_two_passes() {
        let two = |v: &[f64]| {
            let top = super::max_value(v);
            (top, v.iter().filter(|&&x| x >= top || x.is_nan()).count())
        };
        let mut cases: Vec<Vec<f64>> = Vec::new();
        let base: Vec<f64> = (0..5000).map(|i| (i as f64 * 0.731).sin()).collect();
        cases.push(base.clone());
        let mut v = base.clone();
        (v[10], v[3000], v[4999]) = (7.0, 7.0, 7.0);
        (v[5], v[4100]) = (f64::NAN, f64::NAN);
        cases.push(v);
        let mut v = base.clone();
        (v[2500], v[100], v[4500]) = (f64::NAN, 3.0, 3.5);
        cases.push(v);
        cases.push(
            (0..4500)
                .map(|i| if i % 3 == 0 { -0.0 } else { -1.0 })
                .collect(),
        );
        let mut v: Vec<f64> = (0..4500)
            .map(|i| if i % 7 == 0 { 0.0 } else { -0.0 })
            .collect();
        v[4000] = f64::NAN;
        cases.push(v);
        cases.push(vec![f64::NEG_INFINITY; 4097]);
        cases.push(vec![f64::NAN; 3000]);
        cases.push(Vec::new());
        for v in &cases {
            let (t, n) = super::max_and_ties(v);
            let (t2, n2) = two(v);
            assert_eq!((t.to_bits(), n), (t2.to_bits(), n2));
        }
    }

    /// The value-only pass (K = 1) runs the slice loops of Neg, Scale, Abs, x², max/min of
    /// equal shapes and the n-ary max; the second-order pass runs the per-entry kernels. Their
    /// values and kink counts must agree bit for bit, at ties and zeros too.
    #[test]
    fn value_only_fast_paths_match_the_per_entry_kernels() {
        let text = "const n = 41
param x: vec(n)
let chain = sum(i in 1..n-1, max(-x[i] - x[i+1], 2 * x[i]^2 + x[i+1]^2 - 1))
let rest = sum(i in 1..n, abs(x[i])) + max(i in 1..n, x[i]^2)
minimize chain + rest + sum(i in 1..n-1, min(x[i], 0.5 * x[i+1]))
";
        let (r, g) = graph_of(text);
        let (x, d) = point_with_kinks(41);
        let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
        let opts = EvalOptions::default();
        let fast = ev
            .directional(&x, &d, Order::Zero, opts)
            .unwrap_or_else(|e| panic!("{e}"));
        let slow = ev
            .directional(&x, &d, Order::Two, opts)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fast.value.to_bits(), slow.value.to_bits());
        assert_eq!(fast.active_kinks, slow.active_kinks);
        assert!(fast.active_kinks >= 9, "kinks: {}", fast.active_kinks);
    }
    /// Matrix products whose right operand varies (one column: its coefficients side by side
    /// in one product would pair a₀ with a₁ in the two-column kernels, which fuse
    /// multiply–adds): each product's value from a directional pass of order 1 and 2 is the
    /// value pass's to the bit.
    #[test]
    fn directional_passes_compute_the_value_pass_values() {
        let text = "param W: mat(12, 12)
param V: mat(12, 12)
param h: vec(12)
let u = relu(W * h)
minimize sum(relu(V * u - W * u)) + sum(V * (W * h))
";
        let (r, g) = graph_of(text);
        let (x, d) = point_with_kinks(g.n_params());
        let o = EvalOptions::default();
        let mut ev = Evaluator::new(&g, &r, Order::Two).unwrap_or_else(|e| panic!("{e}"));
        ev.value(&x, o).unwrap_or_else(|e| panic!("{e}"));
        let products: Vec<_> = (0..g.nodes.len() as u32)
            .map(crate::graph::NodeId)
            .filter(|&id| matches!(g.node(id).op, crate::graph::Op::MatMul(..)))
            .collect();
        assert_eq!(products.len(), 5);
        let bits = |ev: &Evaluator| -> Vec<Vec<u64>> {
            products
                .iter()
                .map(|&id| ev.coeff(id, 0).iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        let want = bits(&ev);
        for order in [Order::One, Order::Two] {
            let t = ev
                .directional(&x, &d, order, o)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(t.d1.is_some());
            assert!(want == bits(&ev), "products of the {order:?} pass");
        }
    }
}
