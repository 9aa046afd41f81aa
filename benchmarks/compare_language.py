#!/usr/bin/env python3
"""Evaluate f and ∇f of nonsmooth test functions (examples/nonsmooth/) at n = 10⁴ and 10⁶ in
mcopt and in hand-vectorized numpy, side by side in one run, and print a table with the ratios.

  mcopt:  `mcopt bench MODEL --const n=N --at START --json` (release build): the median time of
          f(x) (`f_seconds`) and of ∇f(x) (`grad_seconds`, a forward and a reverse pass), in the
          mcopt process, after the model is compiled and lowered once.
  numpy:  the same function written with vector operations (slices x[:-1], x[1:], maximum,
          where), and its gradient written by hand (value and gradient in one function, as
          mcopt's ∇f also computes the value), timed by the same rule: median per call over
          blocks of calls filling --seconds.

Both start from the standard starting point of the problem (written to a point file for mcopt).
Before timing, the script checks that both compute the same thing: f(start) from `mcopt eval`
against numpy's value, and mcopt's f′(start; d) from `mcopt diff` against numpy's ∇f · d for a
seeded direction d (at these starts no max is at a tie, so f is differentiable there).

usage: benchmarks/compare_language.py [--sizes 10000,1000000] [--seconds S]
                                      [--models chained_lq,chained_cb3_1,maxq]
       (needs `cargo build --release` and numpy)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MCOPT = os.path.join(ROOT, "target", "release", "mcopt")
MIN_BLOCKS = 7


# ---- the models in numpy: start, value, value and gradient --------------------------------


def lq_start(n):
    return np.full(n, -0.5)


def lq_f(x):
    u, v = x[:-1], x[1:]
    a = -u - v
    return np.maximum(a, a + u * u + v * v - 1.0).sum()


def lq_fg(x):
    u, v = x[:-1], x[1:]
    a = -u - v
    b = a + u * u + v * v - 1.0
    f = np.maximum(a, b).sum()
    second = b > a
    g = np.zeros_like(x)
    g[:-1] = np.where(second, 2.0 * u - 1.0, -1.0)
    g[1:] += np.where(second, 2.0 * v - 1.0, -1.0)
    return f, g


def cb3_start(n):
    return np.full(n, 2.0)


def cb3_pieces(x):
    u, v = x[:-1], x[1:]
    p = u**4 + v * v
    q = (2.0 - u) ** 2 + (2.0 - v) ** 2
    r = 2.0 * np.exp(-u + v)
    return u, v, p, q, r


def cb3_f(x):
    _, _, p, q, r = cb3_pieces(x)
    return np.maximum(p, np.maximum(q, r)).sum()


def cb3_fg(x):
    u, v, p, q, r = cb3_pieces(x)
    qr = np.maximum(q, r)
    f = np.maximum(p, qr).sum()
    take_p = p >= qr
    take_q = q >= r
    gu = np.where(take_p, 4.0 * u**3, np.where(take_q, -2.0 * (2.0 - u), -r))
    gv = np.where(take_p, 2.0 * v, np.where(take_q, -2.0 * (2.0 - v), r))
    g = np.zeros_like(x)
    g[:-1] = gu
    g[1:] += gv
    return f, g


def maxq_start(n):
    i = np.arange(1, n + 1, dtype=float)
    return np.where(i <= n // 2, i, -i)


def maxq_f(x):
    return np.max(x * x)


def maxq_fg(x):
    sq = x * x
    k = np.argmax(sq)
    g = np.zeros_like(x)
    g[k] = 2.0 * x[k]
    return sq[k], g


MODELS = {
    "chained_lq": (lq_start, lq_f, lq_fg),
    "chained_cb3_1": (cb3_start, cb3_f, cb3_fg),
    "maxq": (maxq_start, maxq_f, maxq_fg),
}


# ---- timing and the mcopt side -------------------------------------------------------------


def measure(fn, seconds):
    """Median seconds per call over at least MIN_BLOCKS blocks filling `seconds`."""
    start = time.perf_counter()
    t0 = time.perf_counter()
    fn()
    probe = time.perf_counter() - t0
    reps = int(min(max((seconds / MIN_BLOCKS) / max(probe, 1e-9), 1), 1e7))
    times = []
    while len(times) < MIN_BLOCKS or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps)
    return statistics.median(times)


def write_point(path, x):
    with open(path, "w") as f:
        f.write("x: [")
        f.write(", ".join(repr(float(v)) for v in x))
        f.write("]\n")


def mcopt_json(*args):
    run = subprocess.run([MCOPT, *args, "--json"], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"mcopt {' '.join(args)} failed ({run.returncode}):\n{run.stderr}")
    return json.loads(run.stdout)


def compare(name, n, seconds, tmp):
    start, f, fg = MODELS[name]
    model = os.path.join(ROOT, "examples", "nonsmooth", f"{name}.mco")
    x = start(n)
    d = np.random.default_rng(20261204).standard_normal(n)
    point = os.path.join(tmp, f"{name}_{n}.yaml")
    direction = os.path.join(tmp, f"{name}_{n}.dir.yaml")
    write_point(point, x)
    write_point(direction, d)
    size = f"n={n}"

    # The same function on both sides.
    value = mcopt_json("eval", model, "--const", size, "--at", point)["value"]
    slope = mcopt_json("diff", model, "--const", size, "--at", point, "--dir", direction)["d1"]
    fv, g = fg(x)
    for what, got, want in [
        ("f(start)", value, f(x)),
        ("f(start) of the gradient routine", fv, f(x)),
        ("f'(start; d) = grad f . d", slope, float(g @ d)),
    ]:
        if abs(got - want) > 1e-9 * max(1.0, abs(want)):
            sys.exit(f"{name} at n = {n}: {what}: mcopt {got!r}, numpy {want!r}")

    bench = mcopt_json(
        "bench", model, "--const", size, "--at", point, "--seconds", str(seconds)
    )
    np_f = measure(lambda: f(x), seconds)
    np_fg = measure(lambda: fg(x), seconds)
    return {
        "model": name,
        "n": n,
        "nodes": bench["nodes"],
        "mcopt_f": bench["f_seconds"],
        "numpy_f": np_f,
        "mcopt_grad": bench["grad_seconds"],
        "numpy_grad": np_fg,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per timed quantity")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    if not os.path.exists(MCOPT):
        sys.exit(f"{MCOPT} not found: run `cargo build --release` first")
    sizes = [int(s) for s in args.sizes.split(",")]
    names = args.models.split(",")
    for name in names:
        if name not in MODELS:
            sys.exit(f"unknown model {name}; known: {', '.join(MODELS)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for n in sizes:
                rows.append(compare(name, n, args.seconds, tmp))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"numpy {np.__version__}; times are medians per call, ms; ratio = mcopt / numpy")
    head = f"{'model':<15}{'n':>9}{'nodes':>7}"
    head += f"{'f mcopt':>11}{'f numpy':>11}{'ratio':>7}"
    head += f"{'∇f mcopt':>11}{'f,∇f numpy':>12}{'ratio':>7}"
    print(head)
    for r in rows:
        line = f"{r['model']:<15}{r['n']:>9}{r['nodes']:>7}"
        line += f"{r['mcopt_f'] * 1e3:>11.3f}{r['numpy_f'] * 1e3:>11.3f}"
        line += f"{r['mcopt_f'] / r['numpy_f']:>7.2f}"
        line += f"{r['mcopt_grad'] * 1e3:>11.3f}{r['numpy_grad'] * 1e3:>12.3f}"
        line += f"{r['mcopt_grad'] / r['numpy_grad']:>7.2f}"
        print(line)


if __name__ == "__main__":
    main()
