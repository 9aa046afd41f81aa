//! Cost of calling activations through the plugin interface (`Registry::call`) against an
//! inlined built-in loop computing the same coefficients: per call on slices of 20, 160 (20×8)
//! and 128 elements, and on a simulated sp500 RNN forward pass (Nh = 20, Nx = 11, T = 393).
//!
//! Run: `cargo bench --bench plugin_overhead` (release profile; no criterion, plain timing,
//! median of several blocks).

use mcopt::registry::{FunctionId, Order, Registry};
use std::hint::black_box;
use std::time::Instant;

/// Alternating measurement blocks per figure.
const BLOCKS: usize = 41;

/// Time per iteration (ns) of `a` and of `b`, measured in alternating blocks so both see the
/// same machine load: the medians of each and the median of the per-block ratios a/b.
fn paired(
    blocks: usize,
    iters: usize,
    mut a: impl FnMut(),
    mut b: impl FnMut(),
) -> (f64, f64, f64) {
    let block = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        t.elapsed().as_nanos() as f64 / iters as f64
    };
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..blocks {
        let x = block(&mut a);
        let y = block(&mut b);
        ta.push(x);
        tb.push(y);
        ratio.push(x / y);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(ta), median(tb), median(ratio))
}

/// The inlined built-in: relu or tanh, order 0 or 1 (lexicographic side choice and kink count
/// at order 1, as the plugin does).
#[inline(always)]
fn builtin(
    tanh: bool,
    order: Order,
    a0: &[f64],
    a1: &[f64],
    f0: &mut [f64],
    f1: &mut [f64],
) -> usize {
    let mut kinks = 0;
    match (tanh, order) {
        (false, Order::Zero) => {
            for (y, &x) in f0.iter_mut().zip(a0) {
                *y = x.max(0.0);
            }
        }
        (false, _) => {
            for i in 0..a0.len() {
                let (x, d) = (a0[i], a1[i]);
                kinks += (x == 0.0) as usize;
                let right = x > 0.0 || (x == 0.0 && d > 0.0);
                f0[i] = if right { x } else { 0.0 };
                f1[i] = if right { d } else { 0.0 };
            }
        }
        (true, Order::Zero) => {
            for (y, &x) in f0.iter_mut().zip(a0) {
                *y = x.tanh();
            }
        }
        (true, _) => {
            for i in 0..a0.len() {
                let t = a0[i].tanh();
                f0[i] = t;
                f1[i] = (1.0 - t * t) * a1[i];
            }
        }
    }
    kinks
}

fn inputs(n: usize) -> (Vec<f64>, Vec<f64>) {
    let a0 = (0..n)
        .map(|i| ((i * 7919) % 101) as f64 / 25.0 - 2.0)
        .collect();
    let a1 = (0..n)
        .map(|i| ((i * 104_729) % 37) as f64 / 18.0 - 1.0)
        .collect();
    (a0, a1)
}

fn per_call(r: &Registry, name: &str, id: FunctionId, n: usize, order: Order) {
    let (a0, a1) = inputs(n);
    let (mut f0, mut f1) = (vec![0.0; n], vec![0.0; n]);
    let tanh = name == "tanh";
    let iters = 2_000_000 / n.max(1);
    let (mut g0, mut g1) = (vec![0.0; n], vec![0.0; n]);
    let (plugin, inline, ratio) = paired(
        BLOCKS,
        iters,
        || {
            let a1s: &[f64] = if order == Order::Zero { &[] } else { &a1 };
            let f1s: &mut [f64] = if order == Order::Zero {
                &mut []
            } else {
                &mut f1
            };
            let k = r.call(
                id,
                &[],
                order,
                0.0,
                [black_box(&a0), a1s, &[]],
                [&mut f0, f1s, &mut []],
            );
            black_box((k.ok(), &f0));
        },
        || {
            let k = builtin(tanh, order, black_box(&a0), &a1, &mut g0, &mut g1);
            black_box((k, &g0));
        },
    );
    println!(
        "{name:5} order {} n = {n:4}: plugin {plugin:8.1} ns/call, inlined {inline:8.1} ns/call, ratio {:.3}",
        order.as_u32(),
        ratio
    );
}

/// Applies φ to a slice: (z, dz) → (h, dh).
type Activation<'a> = dyn FnMut(&[f64], &[f64], &mut [f64], &mut [f64]) + 'a;

/// One simulated forward pass of the sp500 RNN, h_t = φ(W h_{t−1} + U x_t + b), with value
/// and (order one) first directional coefficients; `act` applies φ to a slice.
fn forward(w: &[f64], u: &[f64], xs: &[f64], order: Order, act: &mut Activation<'_>) -> f64 {
    const NH: usize = 20;
    const NX: usize = 11;
    let (mut h, mut dh) = ([0.0; NH], [0.0; NH]);
    let (mut z, mut dz) = ([0.0; NH], [0.0; NH]);
    let mut acc = 0.0;
    for x in xs.chunks_exact(NX) {
        for i in 0..NH {
            let row = &w[i * NH..(i + 1) * NH];
            let mut s = 0.1;
            let mut ds = 0.0;
            for j in 0..NH {
                s += row[j] * h[j];
            }
            if order != Order::Zero {
                for j in 0..NH {
                    ds += row[j] * dh[j] + 0.01 * h[j];
                }
            }
            for (k, xk) in x.iter().enumerate() {
                s += u[i * NX + k] * xk;
            }
            z[i] = s;
            dz[i] = ds;
        }
        act(&z, &dz, &mut h, &mut dh);
        acc += h[0];
    }
    acc
}

fn forward_pass(r: &Registry, name: &str, id: FunctionId, order: Order) {
    let w: Vec<f64> = (0..400)
        .map(|i| ((i * 31) % 17) as f64 / 40.0 - 0.2)
        .collect();
    let u: Vec<f64> = (0..220)
        .map(|i| ((i * 13) % 11) as f64 / 30.0 - 0.15)
        .collect();
    let xs: Vec<f64> = (0..393 * 11)
        .map(|i| ((i * 7) % 23) as f64 / 11.0 - 1.0)
        .collect();
    let tanh = name == "tanh";
    let mut plugin_act = |z: &[f64], dz: &[f64], h: &mut [f64], dh: &mut [f64]| {
        let (a1, f1): (&[f64], &mut [f64]) = if order == Order::Zero {
            (&[], &mut [])
        } else {
            (dz, dh)
        };
        let _ = r.call(id, &[], order, 0.0, [z, a1, &[]], [h, f1, &mut []]);
    };
    let mut inline_act = |z: &[f64], dz: &[f64], h: &mut [f64], dh: &mut [f64]| {
        builtin(tanh, order, z, dz, h, dh);
    };
    let (plugin, inline, ratio) = paired(
        BLOCKS,
        10,
        || {
            black_box(forward(black_box(&w), &u, &xs, order, &mut plugin_act));
        },
        || {
            black_box(forward(black_box(&w), &u, &xs, order, &mut inline_act));
        },
    );
    println!(
        "{name:5} order {} sp500 forward pass (20 hidden, 393 steps): plugin {:8.1} µs, inlined {:8.1} µs, ratio {:.3}",
        order.as_u32(),
        plugin / 1e3,
        inline / 1e3,
        ratio
    );
}

fn main() {
    // `cargo bench --bench plugin_overhead -- relu` runs only the cases whose label contains
    // "relu" (labels look like "relu order 0").
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let r = Registry::with_standard();
    for name in ["relu", "tanh"] {
        let id = r.lookup(name).expect("standard function");
        for order in [Order::Zero, Order::One] {
            let label = format!("{name} order {}", order.as_u32());
            if filter.as_ref().is_some_and(|f| !label.contains(f.as_str())) {
                continue;
            }
            for n in [20, 160, 128] {
                per_call(&r, name, id, n, order);
            }
            forward_pass(&r, name, id, order);
        }
    }
}
