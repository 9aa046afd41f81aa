"""Shared fixtures: the repository's paths, the CLI binary, and helpers that run it.

The CLI is found as $MCOPT_BIN, else target/release/mcopt, else target/debug/mcopt
(relative to the repository root); CI builds it before the Python step.
"""

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MODELS = Path(__file__).resolve().parent / "models"
SYN_RUN = EXAMPLES / "syn" / "run.yaml"
SYN_MODEL = EXAMPLES / "syn" / "rnn.mco"
SYN_THETA0 = EXAMPLES / "data" / "srpa_syn_theta0.yaml"
SP500_RUN = EXAMPLES / "sp500" / "run.yaml"
SP500_MODEL = EXAMPLES / "sp500" / "rnn.mco"
SP500_THETA0 = EXAMPLES / "data" / "srpa_sp500_theta0.yaml"

# Report fields that hold times (they differ between two runs of the same computation).
TIMING_KEYS = {"seconds", "seconds_per_iteration", "step_seconds_per_iteration"}


def mcopt_bin():
    env = os.environ.get("MCOPT_BIN")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        path = ROOT / "target" / profile / "mcopt"
        if path.is_file():
            return path
    return None


@pytest.fixture(scope="session")
def cli():
    """`cli(*args)` runs the mcopt binary and returns (exit code, stdout parsed as JSON or None)."""
    binary = mcopt_bin()
    if binary is None:
        pytest.fail("no mcopt binary: set MCOPT_BIN or run `cargo build --release` first")

    def run(*args, cwd=ROOT):
        proc = subprocess.run(
            [str(binary), *map(str, args)], cwd=cwd, capture_output=True, text=True
        )
        out = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
        return proc.returncode, out, proc.stderr

    return run


def without_timings(value):
    """The JSON value with every timing field removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def point_text(params):
    """A point or direction file (JSON is YAML) holding the arrays exactly (shortest round-trip reprs)."""
    return json.dumps({k: np.asarray(v, dtype=float).tolist() for k, v in params.items()})


def write_point(path, params):
    path.write_text(point_text(params))
    return path


def as_arrays(obj):
    """A JSON map of numbers / lists / lists of rows as a dict of float64 arrays."""
    return {k: np.asarray(v, dtype=float) for k, v in obj.items()}


def same_floats(a, b):
    """Bit-for-bit equality of two float arrays (NaN equal to NaN, +0 and -0 told apart)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    nan = np.isnan(a)
    return bool((nan == np.isnan(b)).all()) and a[~nan].tobytes() == b[~nan].tobytes()


def read_trace_csv(path):
    """trace.csv as (header, rows of floats; an empty cell is NaN)."""
    lines = Path(path).read_text().splitlines()
    header = lines[0].split(",")
    rows = [[float(c) if c else math.nan for c in line.split(",")] for line in lines[1:]]
    return header, np.array(rows, dtype=float)
