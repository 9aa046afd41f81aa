#!/usr/bin/env python3
"""The evaluator's speed table (docs/bench.md): for each RNN workload, the time of f, of ∇f and of
a full Adam iteration (the solver's step plus the host's measurement of the objective and the
test loss) in mcopt, next to the fused C kernel (benchmarks/rnn_limit.c, compiled with gcc when
gcc is present) and JAX (when installed), with ratios.

  mcopt f, ∇f:   `mcopt bench --config <workload's Adam run file> --json` (medians of blocks).
  mcopt iter:    `mcopt train <run file> --max-iter E --json`: the report's
                 `seconds_per_iteration` (full) and `step_seconds_per_iteration` (step only).
  fused C:       rnn_limit.c with the workload's sizes (`gcc -O3 -march=native`), its medians.
  JAX:           jit of the loss, of value_and_grad and of the Adam iteration
                 (benchmarks/compare_train.py's model), medians of blocks.

Several `--mcopt` binaries are measured alternately in one run (before/after comparisons on a
noisy machine); ratios are to the first.

usage: benchmarks/table.py [--seconds S] [--epochs E] [--blocks B] [--workloads syn,sp500,large]
                           [--mcopt PATH ...]
       (needs `cargo build --release`; `large` needs examples/large/data.csv, see
        examples/large/run.yaml for the command that generates it)
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_train as ct  # noqa: E402

# name: (Adam run file, sizes for rnn_limit.c (N, T, NX, NH, NY) or None, fused-kernel reps)
WORKLOADS = {
    "syn": ("examples/syn/adam.yaml", None, None),
    "sp500": ("examples/sp500/adam.yaml", (1, 393, 11, 20, 1), (2000, 1000)),
    "large": ("examples/large/adam.yaml", (8, 1000, 16, 128, 4), (20, 10)),
}


def run_json(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def mcopt_eval(binary, run, seconds):
    rep = run_json([binary, "bench", "--config", run, "--json", "--seconds", str(seconds)])
    return rep["f_seconds"], rep["grad_seconds"]


def mcopt_iteration(binary, run, epochs, tmp):
    out = os.path.join(tmp, "train")
    shutil.rmtree(out, ignore_errors=True)
    rep = run_json([binary, "train", run, "--out", out, "--quiet", "--json", "--max-iter", str(epochs)])
    return rep["seconds_per_iteration"], rep["step_seconds_per_iteration"]


def fused(sizes, reps, tmp):
    if sizes is None or shutil.which("gcc") is None:
        return None
    n, t, nx, nh, ny = sizes
    exe = os.path.join(tmp, f"rnn_limit_{n}_{t}_{nx}_{nh}_{ny}")
    if not os.path.exists(exe):
        src = os.path.join(ROOT, "benchmarks", "rnn_limit.c")
        cmd = ["gcc", "-O3", "-march=native", "-fopenmp-simd", f"-DN={n}", f"-DT={t}", f"-DNX={nx}",
               f"-DNH={nh}", f"-DNY={ny}", "-DTAU=1.0", "-o", exe, src, "-lm"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
    r = subprocess.run([exe, str(reps[0]), str(reps[1])], capture_output=True, text=True)
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    return rep["f_med_s"], rep["grad_med_s"]


def jax_times(name, run, binary, epochs, blocks, tmp):
    """f, ∇f and the Adam iteration in JAX, or None when JAX is not installed."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    _, tau, load = ct.WORKLOADS[name]
    out = os.path.join(tmp, f"{name}0")
    shutil.rmtree(out, ignore_errors=True)
    ct.MCOPT = binary
    ct.mcopt_run(run, out, ["--max-iter", "0"])
    theta0 = ct.read_point(os.path.join(out, "params.yaml"))
    xs, ys = load()
    it = ct.jax_bench(theta0, xs, ys, tau, epochs, blocks)
    fg = ct.jax_eval(theta0, xs, ys, tau, blocks)
    return fg[0], fg[1], it[0]


def us(s):
    if s is None:
        return "—"
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=1.0, help="per quantity and block of mcopt bench")
    ap.add_argument("--epochs", type=int, default=100, help="Adam iterations per timed run")
    ap.add_argument("--blocks", type=int, default=3, help="alternating rounds; medians")
    ap.add_argument("--workloads", default="syn,sp500,large")
    ap.add_argument("--mcopt", action="append", help="binary (repeatable); default target/release/mcopt")
    a = ap.parse_args()
    bins = a.mcopt or [os.path.join(ROOT, "target", "release", "mcopt")]
    for b in bins:
        if not os.path.exists(b):
            sys.exit(f"no binary {b}: cargo build --release")
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for name in a.workloads.split(","):
            run, sizes, reps = WORKLOADS[name]
            if name == "large" and not os.path.exists(os.path.join(ROOT, "examples/large/data.csv")):
                print(f"{name}: skipped, examples/large/data.csv missing (see examples/large/run.yaml)")
                continue
            m = {b: {"f": [], "g": [], "it": [], "step": []} for b in bins}
            fc = {"f": [], "g": []}
            for _ in range(a.blocks):
                for b in bins:
                    f, g = mcopt_eval(b, run, a.seconds)
                    it, step = mcopt_iteration(b, run, a.epochs, tmp)
                    for k, v in (("f", f), ("g", g), ("it", it), ("step", step)):
                        m[b][k].append(v)
                c = fused(sizes, reps, tmp)
                if c:
                    fc["f"].append(c[0])
                    fc["g"].append(c[1])
            med = lambda xs: statistics.median(xs) if xs else None
            j = jax_times(name, run, bins[0], a.epochs, a.blocks, tmp)
            rows.append((name, {b: {k: med(v) for k, v in d.items()} for b, d in m.items()},
                         med(fc["f"]), med(fc["g"]), j))
    print(f"medians of {a.blocks} alternating blocks; mcopt bench {a.seconds} s per quantity; "
          f"Adam over {a.epochs} iterations; float64, one core")
    print("ratios: ×C = mcopt time / fused C time (≥ 1, lower is better); "
          "JAX/mcopt = JAX time / mcopt time (above 1: mcopt faster)")
    hdr = f"{'workload':<8} {'binary':<22} {'f':>10} {'×C':>6} {'∇f':>10} {'×C':>6} {'iter (full)':>12} {'step only':>10} {'JAX/mcopt':>10}"
    print(hdr)
    for name, m, cf, cg, j in rows:
        for b, t in m.items():
            xc = lambda v, c: f"{v / c:6.2f}" if c else f"{'—':>6}"
            jr = f"{j[2] / t['it']:10.2f}" if j else f"{'—':>10}"
            label = os.path.relpath(b, ROOT) if b.startswith(ROOT) else b
            print(f"{name:<8} {label[-22:]:<22} {us(t['f']):>10} {xc(t['f'], cf)} {us(t['g']):>10} {xc(t['g'], cg)} "
                  f"{us(t['it']):>12} {us(t['step']):>10} {jr}")
        print(f"{name:<8} {'fused C (rnn_limit.c)':<22} {us(cf):>10} {'':>6} {us(cg):>10} "
              f"{'':>6} {'':>12} {'':>10} {'' if cf else '(no gcc or no sizes)':>10}")
        if j:
            print(f"{name:<8} {'JAX':<22} {us(j[0]):>10} {'':>6} {us(j[1]):>10} {'':>6} {us(j[2]):>12}")
        else:
            print(f"{name:<8} {'JAX':<22} not installed (pip install jax)")


if __name__ == "__main__":
    main()
