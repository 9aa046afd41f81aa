#!/usr/bin/env python3
"""Train the same ReLU Elman RNN (docs/math.md §5) in mcopt, JAX and PyTorch, each where installed,
from the same initial weights, and print the time per full-batch Adam epoch and the losses.

An epoch is one full-batch Adam step: forward pass, gradient and update (float64).
  mcopt:   `mcopt train` with the workload's Adam run file; the time per epoch is the report's
           `seconds_per_iteration`: the full iteration, the solver's step and the host's
           per-iteration measurement of the objective, train and test loss and the trace row
           (the column `step only` is `step_seconds_per_iteration`, the step without the
           measurement). `--trace-every K` runs a copy of the run file with `trace: {every: K}`:
           the test loss and the trace row every K iterations (objective and train loss still
           at each).
  JAX:     `jax.jit` of value_and_grad + the Adam update, the recurrence as `lax.scan`.
  PyTorch: a hand-written cell, autograd and the same Adam update (torch.float64).
All three start from the weights mcopt draws for the run file's `init` and `seed` (written
by `mcopt train --max-iter 0`), so the objective at iteration 0 must agree; the script checks it.

usage: benchmarks/compare_train.py [--epochs E] [--blocks B] [--workloads syn,sp500,large]
                                  [--trace-every K]
       (needs `cargo build --release`; `large` needs examples/large/data.csv, see
        examples/large/run.yaml for the command that generates it)
"""

import argparse
import csv
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCOPT = os.path.join(ROOT, "target", "release", "mcopt")
LR = 0.01

# name: (run file, model sizes, tau, data loader)
SX = [f"x{i}" for i in range(1, 17)]
SY = [f"y{i}" for i in range(1, 5)]
SP_X = ["DP", "EP", "MKT", "HML", "SMB", "STR", "TB", "TS", "DEF", "INF", "IP"]


def load_syn():
    with open(os.path.join(ROOT, "examples/data/syn_T10.csv")) as f:
        rows = [[float(v) for v in r] for r in csv.reader(f) if r][:8]
    return [[r[0:5] for r in rows]], [[r[5:8] for r in rows]]


def load_sp500():
    with open(os.path.join(ROOT, "examples/data/sp500.csv")) as f:
        rows = list(csv.DictReader(f))
    n = int(0.9 * len(rows))
    rows = rows[:n]
    return [[[float(r[c]) for c in SP_X] for r in rows]], [[[float(r["RV_SP500"])] for r in rows]]


def load_large():
    path = os.path.join(ROOT, "examples/large/data.csv")
    seqs = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            seqs.setdefault(r["seq"], []).append(r)
    xs = [[[float(r[c]) for c in SX] for r in s] for s in seqs.values()]
    ys = [[[float(r[c]) for c in SY] for r in s] for s in seqs.values()]
    return xs, ys


WORKLOADS = {
    "syn": ("examples/syn/adam.yaml", 1.2, load_syn),
    "sp500": ("examples/sp500/adam.yaml", 1.0, load_sp500),
    "large": ("examples/large/adam.yaml", 1.0, load_large),
}


def read_point(path):
    """The point files mcopt writes: `name: number`, `name: [..]`, or `name:` + `  - [..]` rows."""
    out, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.rstrip()
            if not line:
                continue
            if line.startswith("  - "):
                out[cur].append(json.loads(line[4:]))
            else:
                name, _, rest = line.partition(":")
                cur = name.strip()
                rest = rest.strip()
                out[cur] = json.loads(rest) if rest else []
    return out


def mcopt_run(run, out, extra):
    cmd = [MCOPT, "train", run, "--out", out, "--quiet", "--json"] + extra
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"mcopt failed: {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def traced_every(run, every, tmp):
    """A copy of `run` in `tmp` with `trace: {every: K}` (its model and data paths made absolute);
    `run` itself when K is 1."""
    if every == 1:
        return run
    base = os.path.dirname(os.path.join(ROOT, run))
    lines = []
    with open(os.path.join(ROOT, run)) as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model", "file") and value.strip():
                value = value.split("#")[0].strip()
                line = f"{key}: {os.path.join(base, value)}\n"
            lines.append(line)
    lines.append(f"trace: {{every: {every}}}\n")
    path = os.path.join(tmp, f"every{every}-" + os.path.basename(run))
    with open(path, "w") as f:
        f.writelines(lines)
    return path


def mcopt_epochs(run, init, epochs, blocks, tmp):
    times, rep = [], None
    for k in range(blocks):
        rep = mcopt_run(run, os.path.join(tmp, f"m{k}"), ["--init", init, "--max-iter", str(epochs)])
        times.append((rep["seconds_per_iteration"], rep["step_seconds_per_iteration"]))
    full = statistics.median(t[0] for t in times)
    step = statistics.median(t[1] for t in times)
    return full, step, rep["objective"], rep["train_loss"]


def jax_problem(theta0, xs, ys, tau):
    """The JAX loss (f, training loss) and the initial parameters."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_enable_x64", True)
    X = jnp.asarray(xs, dtype=jnp.float64).transpose(1, 0, 2)  # (T, N, Nx)
    Y = jnp.asarray(ys, dtype=jnp.float64).transpose(1, 0, 2)
    T, N, _ = X.shape
    A0 = jnp.asarray(theta0["A"], dtype=jnp.float64).reshape(-1, len(theta0["b"]))
    nh, ny = A0.shape[1], A0.shape[0]
    nx = X.shape[2]
    lam = (tau / (nh * ny), tau / nh**2, tau / (nx * nh), tau / nh, tau / ny)
    th = (
        A0,
        jnp.asarray(theta0["W"]),
        jnp.asarray(theta0["V"]),
        jnp.asarray(theta0["b"]),
        jnp.atleast_1d(jnp.asarray(theta0["c"], dtype=jnp.float64)),
    )

    def loss(p):
        A, W, V, b, c = p

        def step(h, xy):
            x, y = xy
            h = jax.nn.relu(h @ W.T + x @ V.T + b)
            v = h @ A.T + c
            return h, jnp.sum((v - y) ** 2)

        _, err = lax.scan(step, jnp.zeros((N, nh)), (X, Y))
        reg = sum(l * jnp.sum(q * q) for l, q in zip(lam, p))
        return jnp.sum(err) / (N * T) + reg, jnp.sum(err) / (N * T)

    return loss, th


def jax_eval(theta0, xs, ys, tau, blocks, reps=50):
    """Median times of the jitted f and (f, ∇f), or None when JAX is not installed."""
    try:
        import jax
    except ImportError:
        return None
    loss, th = jax_problem(theta0, xs, ys, tau)
    f = jax.jit(lambda p: loss(p)[0])
    g = jax.jit(jax.value_and_grad(lambda p: loss(p)[0]))
    out = []
    for fn in (f, g):
        jax.block_until_ready(fn(th))  # compile
        times = []
        for _ in range(blocks):
            t0 = time.perf_counter()
            for _ in range(reps):
                r = fn(th)
            jax.block_until_ready(r)
            times.append((time.perf_counter() - t0) / reps)
        out.append(statistics.median(times))
    return out


def jax_bench(theta0, xs, ys, tau, epochs, blocks):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    loss, th = jax_problem(theta0, xs, ys, tau)

    @jax.jit
    def epoch(p, m, v, k):
        (f, _), g = jax.value_and_grad(loss, has_aux=True)(p)
        k = k + 1
        m = jax.tree_util.tree_map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
        v = jax.tree_util.tree_map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
        c1, c2 = 1 / (1 - 0.9**k), 1 / (1 - 0.999**k)
        p = jax.tree_util.tree_map(
            lambda p, m, v: p - LR * (m * c1) / (jnp.sqrt(v * c2) + 1e-8), p, m, v
        )
        return p, m, v, k

    f0 = float(jax.jit(loss)(th)[0])
    zeros = jax.tree_util.tree_map(jnp.zeros_like, th)
    p, m, v, k = epoch(th, zeros, zeros, 0.0)  # compile
    jax.block_until_ready(p)
    times = []
    for _ in range(blocks):
        p, m, v, k = th, zeros, zeros, 0.0
        t0 = time.perf_counter()
        for _ in range(epochs):
            p, m, v, k = epoch(p, m, v, k)
        jax.block_until_ready(p)
        times.append((time.perf_counter() - t0) / epochs)
    f, tl = jax.jit(loss)(p)
    return statistics.median(times), f0, float(f), float(tl)


def torch_bench(theta0, xs, ys, tau, epochs, blocks):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    dt = torch.float64
    X = torch.tensor(xs, dtype=dt).transpose(0, 1)
    Y = torch.tensor(ys, dtype=dt).transpose(0, 1)
    T, N, nx = X.shape
    nh = len(theta0["b"])
    A0 = torch.tensor(theta0["A"], dtype=dt).reshape(-1, nh)
    ny = A0.shape[0]
    lam = (tau / (nh * ny), tau / nh**2, tau / (nx * nh), tau / nh, tau / ny)

    def init():
        c = torch.tensor(theta0["c"], dtype=dt).reshape(-1)
        ps = [A0.clone(), torch.tensor(theta0["W"], dtype=dt), torch.tensor(theta0["V"], dtype=dt),
              torch.tensor(theta0["b"], dtype=dt), c]
        return [q.requires_grad_() for q in ps]

    def loss(p):
        A, W, V, b, c = p
        h = torch.zeros(N, nh, dtype=dt)
        err = 0.0
        for t in range(T):
            h = torch.relu(h @ W.T + X[t] @ V.T + b)
            err = err + ((h @ A.T + c - Y[t]) ** 2).sum()
        return err / (N * T) + sum(l * (q * q).sum() for l, q in zip(lam, p))

    times, f0 = [], None
    for _ in range(blocks):
        p = init()
        opt = torch.optim.Adam(p, lr=LR, betas=(0.9, 0.999), eps=1e-8)
        t0 = time.perf_counter()
        for _ in range(epochs):
            opt.zero_grad()
            f = loss(p)
            f0 = f0 if f0 is not None else float(f)
            f.backward()
            opt.step()
        times.append((time.perf_counter() - t0) / epochs)
    return statistics.median(times), f0, float(loss(p))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--workloads", default="syn,sp500,large")
    ap.add_argument("--trace-every", type=int, default=1,
                    help="mcopt: the test loss and the trace row every K iterations (run file `trace: {every: K}`)")
    a = ap.parse_args()
    if a.trace_every < 1:
        sys.exit("--trace-every must be at least 1")
    if not os.path.exists(MCOPT):
        sys.exit("build first: cargo build --release")
    print(f"full-batch Adam (lr {LR}), {a.epochs} epochs, median of {a.blocks} blocks, float64; "
          f"mcopt's ms/epoch is the full iteration (step and measurement), test loss and trace row "
          f"every {a.trace_every} iteration{'s' if a.trace_every > 1 else ''}")
    print(f"{'workload':<8} {'impl':<8} {'ms/epoch':>10} {'step only':>10} {'f(θ⁰)':>14} {'f after':>14} {'JAX/impl':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.workloads.split(","):
            run, tau, load = WORKLOADS[name]
            if name == "large" and not os.path.exists(os.path.join(ROOT, "examples/large/data.csv")):
                print(f"{name:<8} skipped: examples/large/data.csv missing (see examples/large/run.yaml)")
                continue
            start = mcopt_run(run, os.path.join(tmp, f"{name}0"), ["--max-iter", "0"])
            init = os.path.join(tmp, f"{name}0", "params.yaml")
            theta0 = read_point(init)
            xs, ys = load()
            timed = traced_every(run, a.trace_every, tmp)
            m_t, m_step, m_f, _ = mcopt_epochs(timed, init, a.epochs, a.blocks, tmp)
            j = jax_bench(theta0, xs, ys, tau, a.epochs, a.blocks)
            t = torch_bench(theta0, xs, ys, tau, a.epochs, a.blocks)
            jt = j[0] if j else None
            ratio = lambda x: f"{jt / x:9.2f}" if jt else f"{'-':>9}"
            print(f"{name:<8} {'mcopt':<8} {m_t * 1e3:10.4f} {m_step * 1e3:10.4f} {start['objective']:14.10f} {m_f:14.10f} {ratio(m_t)}")
            if j:
                print(f"{name:<8} {'jax':<8} {j[0] * 1e3:10.4f} {'':>10} {j[1]:14.10f} {j[2]:14.10f} {ratio(j[0])}")
                if not math.isclose(j[1], start["objective"], rel_tol=1e-9):
                    print(f"  WARNING: JAX f(θ⁰) differs from mcopt's: not the same problem")
            else:
                print(f"{name:<8} {'jax':<8} not installed (pip install jax jaxlib)")
            if t:
                print(f"{name:<8} {'pytorch':<8} {t[0] * 1e3:10.4f} {'':>10} {t[1]:14.10f} {t[2]:14.10f} {ratio(t[0])}")
            else:
                print(f"{name:<8} {'pytorch':<8} not installed (pip install torch)")


if __name__ == "__main__":
    main()
