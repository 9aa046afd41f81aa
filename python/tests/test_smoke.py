"""Smoke tests of the extension written while developing it (the full suite is the others)."""

from pathlib import Path

import numpy as np
import pytest

import mcopt

ROOT = Path(__file__).resolve().parents[2]
SYN_MODEL = ROOT / "examples" / "syn" / "rnn.mco"
SYN_RUN = ROOT / "examples" / "syn" / "run.yaml"
SYN_CSV = ROOT / "examples" / "data" / "syn_T10.csv"


def test_data_in_memory_binds_as_the_run_files_csv():
    table = np.loadtxt(SYN_CSV, delimiter=",")
    from_file = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    in_memory = mcopt.Model.load(
        SYN_MODEL, data={"x": table[:, :5], "y": table[:, 5:8]}, rows="0..8", test_rows="8..10"
    )
    p = from_file.params
    assert in_memory.value(p) == from_file.value(p)


def test_matrices_are_row_major_and_not_transposed():
    m = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    p = m.params
    assert p["A"].shape == (3, 4)
    # A Fortran-ordered copy and nested lists are the same point.
    fortran = {k: np.asfortranarray(v) for k, v in p.items()}
    lists = {k: v.tolist() for k, v in p.items()}
    assert m.value(fortran) == m.value(lists) == m.value(p)
    g = m.gradient(p)
    assert {k: v.shape for k, v in g.items()} == {k: v.shape for k, v in p.items()}


def test_a_transposed_matrix_is_a_shape_error():
    m = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    p = dict(m.params)
    p["A"] = p["A"].T
    with pytest.raises(mcopt.DiagnosticError) as e:
        m.value(p)
    assert e.value.code == "mcopt::python::shape"
    assert "(4, 3)" in e.value.message and "(3, 4)" in e.value.message
    assert isinstance(e.value, ValueError)


def test_a_diagnostic_carries_its_place():
    with pytest.raises(mcopt.DiagnosticError) as e:
        mcopt.Model.load(SYN_MODEL)
    err = e.value
    assert err.code == "mcopt::data::unbound"
    assert (Path(err.file).name, err.line, err.column) == ("rnn.mco", 3, 1)
    assert "mcopt::data::unbound" in str(err) and err.help


def test_the_rust_call_alone_is_timed():
    m = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    assert m._time_value(m.params, 10) > 0
