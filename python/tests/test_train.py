"""train: SRPA on syn and sp500 bit for bit against `mcopt train`, dict runs, Report."""

import json
import sys

import numpy as np
import pytest

import mcopt
from conftest import (
    EXAMPLES,
    SP500_RUN,
    SP500_THETA0,
    SYN_MODEL,
    SYN_RUN,
    SYN_THETA0,
    TIMING_KEYS,
    read_trace_csv,
    same_floats,
    without_timings,
    write_point,
)


def timeless_trace_lines(path):
    """trace.csv with its `seconds` column removed."""
    lines = path.read_text().splitlines()
    col = lines[0].split(",").index("seconds")
    return [",".join(c for i, c in enumerate(line.split(",")) if i != col) for line in lines]


def comparable_report(report):
    """report.json without its timings and output paths."""
    return {k: v for k, v in without_timings(report).items() if k != "outputs"}


def assert_trace_is_the_csv(trace, csv_path):
    header, rows = read_trace_csv(csv_path)
    assert list(trace.dtype.names) == header
    assert len(trace) == len(rows)
    for i, name in enumerate(header):
        if name not in TIMING_KEYS:
            assert same_floats(trace[name].astype(float), rows[:, i]), name


def train_both(cli, tmp_path, run, init, max_iter):
    py_out, cli_out = tmp_path / "py", tmp_path / "cli"
    report = mcopt.train(run, init=init, max_iter=max_iter, out=py_out)
    code, _, err = cli("train", run, "--init", init, "--max-iter", max_iter, "--out", cli_out, "--quiet", cwd=tmp_path)
    assert code == 0, err
    return report, py_out, cli_out


def assert_same_run(report, py_out, cli_out):
    assert report.out is not None and (py_out / "report.json").samefile(report.out + "/report.json")
    # The files the two runs wrote, bit for bit (but the times).
    assert timeless_trace_lines(py_out / "trace.csv") == timeless_trace_lines(cli_out / "trace.csv")
    assert (py_out / "params.yaml").read_bytes() == (cli_out / "params.yaml").read_bytes()
    py_json = json.loads((py_out / "report.json").read_text())
    cli_json = json.loads((cli_out / "report.json").read_text())
    assert comparable_report(py_json) == comparable_report(cli_json)
    # The Report object is the report and the trace the CLI wrote.
    assert_trace_is_the_csv(report.trace, cli_out / "trace.csv")
    assert report.to_dict() == py_json
    assert report.status == cli_json["status"]
    assert report.iterations == cli_json["iterations"]
    assert report.solver == cli_json["solver"]
    assert report.best == cli_json.get("best")
    if "certificate" in cli_json:
        assert report.certificate is not None
        assert without_timings(report.certificate.to_dict()) == without_timings(cli_json["certificate"])
    else:
        assert report.certificate is None


def test_srpa_on_syn_equals_the_cli_bit_for_bit(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report, py_out, cli_out = train_both(cli, tmp_path, SYN_RUN, SYN_THETA0, 5)
    assert (report.status, report.iterations, report.solver) == ("max_iter", 5, "srpa")
    assert_same_run(report, py_out, cli_out)
    assert len(report.trace) == 6
    # Θ(z¹) from the authors' start (docs/srpa.md).
    assert report.trace["objective"][1] == pytest.approx(2.078273570, abs=1e-9)
    # The final θ is the one in params.yaml: the CLI evaluates it to the same value.
    code, out, err = cli("eval", SYN_MODEL, "--config", SYN_RUN, "--at", cli_out / "params.yaml", "--json")
    assert code == 0, err
    model = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    assert model.value(report.params) == out["value"]
    assert {k: v.shape for k, v in report.params.items()} == {
        k: v.shape for k, v in model.params.items()
    }
    # The run file asks for a (P1) certificate of the final point to second order.
    assert (report.certificate.form, report.certificate.order) == ("p1", 2)


def test_srpa_on_sp500_equals_the_cli_bit_for_bit(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report, py_out, cli_out = train_both(cli, tmp_path, SP500_RUN, SP500_THETA0, 2)
    assert (report.status, report.iterations, report.solver) == ("max_iter", 2, "srpa")
    assert_same_run(report, py_out, cli_out)
    # Without `validate:` in the run file, the final point gets a first-order certificate in (P).
    assert (report.certificate.form, report.certificate.order) == ("p", 1)


SYN_DICT = {
    "model": str(SYN_MODEL),
    "data": {
        "file": str(EXAMPLES / "data" / "syn_T10.csv"),
        "header": False,
        "bind": {"x": "0..5", "y": "5..8"},
        "train": "0..8",
        "test": "8..10",
    },
    "solver": {"name": "srpa", "options": {"eta1": 0.9, "eta2": 1.3, "rho1": 0.5}},
    "init": {"scheme": "gaussian", "std": 0.1},
    "seed": 123456,
    "stop": {"max_iter": 3},
    "form": {"p1": {"beta": 1.0}},
}


def test_a_dict_run_is_the_run_file_and_writes_nothing_without_out(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = mcopt.train(SYN_DICT)
    assert report.out is None
    assert list(tmp_path.iterdir()) == []
    assert (report.status, report.iterations) == ("max_iter", 3)
    code, _, err = cli("train", SYN_RUN, "--max-iter", 3, "--out", tmp_path / "cli", "--quiet")
    assert code == 0, err
    assert_trace_is_the_csv(report.trace, tmp_path / "cli" / "trace.csv")


def test_init_as_a_dict_of_arrays_is_the_point_file(cli, tmp_path):
    # A start away from the authors': the end of a short run, as arrays and as a point file.
    start = mcopt.train(SYN_DICT, max_iter=2).params
    at = write_point(tmp_path / "start.yaml", start)
    report = mcopt.train(SYN_DICT, init=start, max_iter=4)
    assert report.iterations == 4
    code, _, err = cli("train", SYN_RUN, "--init", at, "--max-iter", 4, "--out", tmp_path / "cli", "--quiet")
    assert code == 0, err
    assert_trace_is_the_csv(report.trace, tmp_path / "cli" / "trace.csv")


def test_to_pandas_is_the_trace():
    pd = pytest.importorskip("pandas")
    report = mcopt.train(SYN_DICT)
    frame = report.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(report.trace.dtype.names)
    assert len(frame) == len(report.trace) == 4
    assert same_floats(frame["objective"].to_numpy(dtype=float), report.trace["objective"])
    assert np.isnan(frame["stationarity"].iloc[0])


def test_to_pandas_without_pandas_is_an_import_error(monkeypatch):
    report = mcopt.train(SYN_DICT, max_iter=1)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now raises ImportError
    with pytest.raises(ImportError, match="pandas"):
        report.to_pandas()
