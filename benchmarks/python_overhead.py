#!/usr/bin/env python3
"""The cost of calling mcopt from Python: `model.value(params)` on syn against the same
evaluation looped in Rust (`Model._time_value(params, reps)`, which calls the evaluator `reps`
times without leaving Rust and returns the seconds per call).

The difference is what Python adds per call: argument parsing, reading the parameter dict
(one gather of the arrays into θ), releasing and taking the GIL and building the result.
The issue's target is a difference within 5 µs (JAX's dispatch is about 20 µs).

usage: benchmarks/python_overhead.py [--reps N] [--rounds R]
       (in the environment where `pip install ./python` installed mcopt, e.g. target/py-venv)
"""

import argparse
import os
import statistics
import time

import mcopt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_per_call(model, params, reps):
    value = model.value
    start = time.perf_counter()
    for _ in range(reps):
        value(params)
    return (time.perf_counter() - start) / reps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each, alternated; medians")
    args = parser.parse_args()

    syn = os.path.join(ROOT, "examples", "syn")
    model = mcopt.Model.load(os.path.join(syn, "rnn.mco"), config=os.path.join(syn, "run.yaml"))
    params = model.params
    model.value(params)  # warm up
    model._time_value(params, args.reps)

    from_python, in_rust = [], []
    for _ in range(args.rounds):
        from_python.append(python_per_call(model, params, args.reps))
        in_rust.append(model._time_value(params, args.reps))
    py, rs = statistics.median(from_python), statistics.median(in_rust)
    print(f"syn: f(θ), median of {args.rounds} rounds of {args.reps} calls")
    print(f"  model.value(params) from Python   {py * 1e6:8.3f} µs per call")
    print(f"  the evaluation looped in Rust     {rs * 1e6:8.3f} µs per call")
    print(f"  Python's overhead                 {(py - rs) * 1e6:8.3f} µs per call (target: within 5 µs)")


if __name__ == "__main__":
    main()
