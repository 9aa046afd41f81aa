"""Model.load: files, run files, numpy and pandas data, consts, plugins; params and check()."""

import os
import shutil
import subprocess

import numpy as np
import pytest

import mcopt
from conftest import (
    EXAMPLES,
    MODELS,
    ROOT,
    SP500_MODEL,
    SP500_RUN,
    SYN_MODEL,
    SYN_RUN,
    write_point,
)

SYN_CSV = EXAMPLES / "data" / "syn_T10.csv"
SP500_CSV = EXAMPLES / "data" / "sp500.csv"
SP500_X = ["DP", "EP", "MKT", "HML", "SMB", "STR", "TB", "TS", "DEF", "INF", "IP"]


def test_params_are_shaped_as_declared_on_a_non_square_matrix():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    assert model.param_names == ["W", "b", "s"]
    params = model.params
    assert set(params) == {"W", "b", "s"}
    assert params["W"].shape == (2, 3)
    assert params["W"].dtype == np.float64
    assert params["W"].tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert params["b"].shape == (2,)
    assert params["b"].tolist() == [0.5, -0.5]
    assert params["s"].shape == ()
    assert float(params["s"]) == 2.0
    assert os.path.samefile(model.path, MODELS / "nonsquare.mco")


def test_params_is_a_fresh_copy_on_each_access():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    first = model.params
    first["W"][0, 0] = 100.0
    assert model.params["W"][0, 0] == 1.0


@pytest.mark.parametrize("i", [0, 1])
@pytest.mark.parametrize("j", [0, 1, 2])
def test_entry_i_j_of_an_array_is_the_models_entry_i1_j1(i, j, cli, tmp_path):
    # f = W[I, J] with the 1-based I, J set as consts; the array is row-major and not transposed.
    model = mcopt.Model.load(MODELS / "entry.mco", consts={"I": i + 1, "J": j + 1})
    w = np.array([[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]])
    assert model.value({"W": w}) == w[i, j]
    onehot = np.zeros((2, 3))
    onehot[i, j] = 1.0
    assert model.gradient({"W": w})["W"].tolist() == onehot.tolist()
    # The CLI reads the same point file rows the same way.
    at = write_point(tmp_path / "w.yaml", {"W": w})
    code, out, err = cli(
        "eval", MODELS / "entry.mco", "--at", at,
        "--const", f"I={i + 1}", "--const", f"J={j + 1}", "--json",
    )
    assert code == 0, err
    assert out["value"] == w[i, j]


def test_the_initial_values_give_the_clis_value(cli):
    for path in ["nonsquare.mco", "smooth.mco", "abs_kink.mco"]:
        model = mcopt.Model.load(MODELS / path)
        code, out, err = cli("eval", MODELS / path, "--json")
        assert code == 0, err
        assert model.value(model.params) == out["value"], path


def test_check_is_the_clis_check_json(cli):
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    code, out, err = cli("check", MODELS / "nonsquare.mco", "--json")
    assert code == 0, err
    assert model.check() == out

    syn = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    code, out, err = cli("check", SYN_MODEL, "--config", SYN_RUN, "--json")
    assert code == 0, err
    assert syn.check() == out
    assert out["L"] == 25


def test_config_run_file_binds_the_data(cli):
    model = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    code, out, err = cli("eval", SYN_MODEL, "--config", SYN_RUN, "--json")
    assert code == 0, err
    assert model.value(model.params) == out["value"]
    assert [model.params[k].shape for k in model.param_names] == [
        (3, 4), (4, 4), (4, 5), (4,), (3,)
    ]


def test_numpy_data_equals_the_csv_binding(cli):
    table = np.loadtxt(SYN_CSV, delimiter=",")
    assert table.shape == (10, 8)
    code, out, err = cli("eval", SYN_MODEL, "--config", SYN_RUN, "--json")
    assert code == 0, err
    # The whole table with the run file's splits as strings, as --rows / --test-rows.
    model = mcopt.Model.load(
        SYN_MODEL, data={"x": table[:, 0:5], "y": table[:, 5:8]}, rows="0..8", test_rows="8..10"
    )
    assert model.value(model.params) == out["value"]
    # Only the training rows: every row is a training row.
    model = mcopt.Model.load(SYN_MODEL, data={"x": table[:8, 0:5], "y": table[:8, 5:8]})
    assert model.value(model.params) == out["value"]
    # A non-contiguous (column-sliced, Fortran-ordered) array is accepted too.
    fortran = np.asfortranarray(table)
    model = mcopt.Model.load(
        SYN_MODEL, data={"x": fortran[:8, 0:5], "y": fortran[:8, 5:8]}
    )
    assert model.value(model.params) == out["value"]


def test_data_strings_are_the_clis_data_values(cli):
    model = mcopt.Model.load(
        SYN_MODEL,
        data={"x": f"{SYN_CSV}:0..5", "y": f"{SYN_CSV}:5..8"},
        rows="0..8",
        test_rows="8..10",
    )
    code, out, err = cli(
        "eval", SYN_MODEL, "--data", f"x={SYN_CSV}:0..5", "--data", f"y={SYN_CSV}:5..8",
        "--rows", "0..8", "--test-rows", "8..10", "--json",
    )
    assert code == 0, err
    assert model.value(model.params) == out["value"]


def test_pandas_frames_and_a_one_dimensional_target(cli):
    pd = pytest.importorskip("pandas")
    # The correctly rounded parse, as mcopt's CSV reader: pandas 3's default, "round_trip" before.
    precise = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    frame = pd.read_csv(SP500_CSV, index_col=0, **precise)
    assert len(frame) == 437
    code, out, err = cli("eval", SP500_MODEL, "--config", SP500_RUN, "--json")
    assert code == 0, err
    # The run file's split: the first int(0.9 * 437) = 393 steps train.
    model = mcopt.Model.load(
        SP500_MODEL, data={"x": frame[SP500_X], "y": frame[["RV_SP500"]]}, rows="0..393"
    )
    assert model.value(model.params) == out["value"]
    model = mcopt.Model.load(
        SP500_MODEL,
        data={"x": frame[SP500_X].iloc[:393], "y": frame["RV_SP500"].to_numpy()[:393]},
    )
    assert model.value(model.params) == out["value"]


def test_plugins_std_is_built_in_and_a_library_loads_by_path(cli):
    model = mcopt.Model.load(EXAMPLES / "cases" / "relu_lin.mco", plugins=("std",))
    assert model.value(model.params) == 0.0
    lib = swish_library()
    model = mcopt.Model.load(MODELS / "swish.mco", plugins=[lib])
    code, out, err = cli("eval", MODELS / "swish.mco", "--plugin", lib, "--json")
    assert code == 0, err
    assert model.value(model.params) == out["value"]
    with pytest.raises(mcopt.DiagnosticError):
        mcopt.Model.load(MODELS / "swish.mco")


def swish_library():
    """The swish example plugin, built as the Rust tests build it (target/plugin-fixtures)."""
    target = ROOT / "target" / "plugin-fixtures"
    lib = target / "debug" / "libmcopt_swish.so"
    if not lib.is_file():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.skip("the swish plugin is not built and cargo is not on PATH")
        subprocess.run(
            [cargo, "build", "-q", "-p", "mcopt-swish", "--target-dir", str(target)],
            cwd=ROOT, check=True,
        )
    return lib
