"""stationarity (p, p0, p1 with beta), reformulate and validate against the CLI's JSON."""

import numpy as np
import pytest

import mcopt
from conftest import (
    EXAMPLES,
    SYN_MODEL,
    SYN_RUN,
    as_arrays,
    same_floats,
    without_timings,
    write_point,
)

CASES = EXAMPLES / "cases"
CI = EXAMPLES / "ci"


def decisive(out, order):
    """The verdict the certificate is summarised by: that of the highest order asked for."""
    return out["second_order"] if order == 2 else out["first_order"]


def assert_certificate_is_the_clis(cert, out, order):
    verdict = decisive(out, order)
    assert cert.order == order
    assert cert.form == out["form"]
    assert cert.status == verdict["status"]
    assert cert.method == verdict["method"]
    assert cert.reason == verdict.get("reason")
    assert cert.slope == verdict.get("slope")
    assert cert.curvature == verdict.get("curvature")
    if "direction" in verdict:
        expected = as_arrays(verdict["direction"])
        assert cert.witness is not None
        assert set(cert.witness) == set(expected)
        for k, v in cert.witness.items():
            assert isinstance(v, np.ndarray)
            assert same_floats(v, expected[k]), k
    else:
        assert cert.witness is None
    assert cert.first_order == cert.to_dict()["first_order"]
    assert cert.second_order == cert.to_dict().get("second_order")
    assert without_timings(cert.to_dict()) == without_timings(out)


def syn_point(tmp_path):
    rng = np.random.default_rng(5)
    model = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    point = {k: 0.1 * rng.standard_normal(v.shape) for k, v in model.params.items()}
    return model, point, write_point(tmp_path / "theta.yaml", point)


def test_second_order_failure_with_a_witness(cli):
    # |y - x^2| - 1.5 x^2 at 0: first-order stationary, negative curvature along (1, 0).
    model = mcopt.Model.load(CASES / "abs_parabola_neg.mco")
    cert = model.stationarity({"x": 0.0, "y": 0.0}, order=2)
    code, out, err = cli(
        "stationarity", CASES / "abs_parabola_neg.mco", "--at", CASES / "origin_xy.yaml",
        "--order", 2, "--json",
    )
    assert code == 1, err
    assert_certificate_is_the_clis(cert, out, 2)
    assert cert.status == "not_stationary"
    assert cert.curvature == -1.0
    assert cert.witness["x"].shape == ()
    assert (float(cert.witness["x"]), float(cert.witness["y"])) == (1.0, 0.0)


def test_a_stationary_point_has_no_witness(cli):
    model = mcopt.Model.load(CI / "model.mco")
    w = np.array([0.9090909090909091, 1.8181818181818181])
    cert = model.stationarity({"w": w}, order=2)
    code, out, err = cli("stationarity", CI / "model.mco", "--at", CI / "params.yaml", "--order", 2, "--json")
    assert code == 0, err
    assert_certificate_is_the_clis(cert, out, 2)
    assert cert.status == "stationary"
    assert cert.witness is None


@pytest.mark.parametrize("form", ["p", "p0", "p1"])
@pytest.mark.parametrize("order", [1, 2])
def test_syn_certificates_equal_the_cli_field_by_field(form, order, cli, tmp_path):
    model, point, at = syn_point(tmp_path)
    kwargs = {"beta": 1.0} if form == "p1" else {}
    cert = model.stationarity(point, order=order, form=form, **kwargs)
    args = ["--beta", "1"] if form == "p1" else []
    code, out, err = cli(
        "stationarity", SYN_MODEL, "--config", SYN_RUN, "--at", at, "--order", order,
        "--form", form, *args, "--json",
    )
    assert code in (0, 1), err
    assert_certificate_is_the_clis(cert, out, order)
    if form != "p" and cert.witness is not None:
        # The lifted forms' witness holds the layer variables too.
        assert cert.witness["u[1]"].shape == (4,)
        assert cert.witness["A"].shape == (3, 4)


def test_p1_with_a_beta_per_layer_group(cli, tmp_path):
    model, point, at = syn_point(tmp_path)
    betas = {"u": 1.0, "h": 0.5, "v": 2.0}
    cert = model.stationarity(point, order=2, form="p1", beta=betas, tol=1e-7)
    code, out, err = cli(
        "stationarity", SYN_MODEL, "--config", SYN_RUN, "--at", at, "--order", 2,
        "--form", "p1", "--beta", "u=1", "--beta", "h=0.5", "--beta", "v=2",
        "--tol", "1e-7", "--json",
    )
    assert code in (0, 1), err
    assert out["tol"] == 1e-7
    assert_certificate_is_the_clis(cert, out, 2)
    uniform = model.stationarity(point, order=2, form="p1", beta=1.0, tol=1e-7)
    assert without_timings(uniform.to_dict()) != without_timings(cert.to_dict())


def test_ztol_max_pieces_and_time_limit_are_the_clis_flags(cli, tmp_path):
    # |y - x^2| - 1.5 x^2 at (0, 1e-9): a kink only within ztol; pieces capped; a time limit.
    model = mcopt.Model.load(CASES / "abs_parabola_neg.mco")
    point = {"x": 0.0, "y": 1e-9}
    at_file = write_point(tmp_path / "x.yaml", point)
    for kwargs, flags in [
        ({}, []),
        ({"ztol": 1e-6}, ["--ztol", "1e-6"]),
        ({"ztol": 1e-6, "max_pieces": 1}, ["--ztol", "1e-6", "--max-pieces", "1"]),
        ({"ztol": 1e-6, "time_limit": 30.0}, ["--ztol", "1e-6", "--time-limit", "30"]),
    ]:
        cert = model.stationarity(point, order=2, **kwargs)
        code, out, err = cli(
            "stationarity", CASES / "abs_parabola_neg.mco", "--at", at_file, "--order", 2, *flags, "--json"
        )
        assert code in (0, 1), err
        assert_certificate_is_the_clis(cert, out, 2)
    assert out["ztol"] == 1e-6


@pytest.mark.parametrize("form", ["p0", "p1"])
def test_reformulate_is_the_clis_reformulate_json(form, cli):
    model = mcopt.Model.load(SYN_MODEL, config=SYN_RUN)
    kwargs = {"beta": 0.25} if form == "p1" else {}
    args = ["--beta", "0.25"] if form == "p1" else []
    code, out, err = cli("reformulate", SYN_MODEL, "--config", SYN_RUN, "--form", form, *args, "--json")
    assert code == 0, err
    assert model.reformulate(form, **kwargs) == out
    if form == "p1":
        assert [p["beta"] for p in out["penalties"]] == [0.25, 0.25, 0.25]


@pytest.mark.parametrize("params", ["params.yaml", "initial"])
def test_validate_has_the_clis_checks_and_exit_code(params, cli, tmp_path):
    at = CI / "params.yaml" if params == "params.yaml" else write_point(tmp_path / "w.yaml", {"w": [0.5, 0.5]})
    code, out, err = cli("validate", CI / "model.mco", "--params", at, "--config", CI / "run.yaml", "--json")
    assert code == (0 if params == "params.yaml" else 1), err
    result = mcopt.validate(CI / "model.mco", config=CI / "run.yaml", at=at)
    assert result.exit_code == code
    assert result.passed is out["passed"]
    assert isinstance(result.status, str)
    assert without_timings(result.checks) == without_timings(out["checks"])
    assert without_timings(result.to_dict()) == without_timings(out)


def test_validate_at_a_dict_of_arrays_or_the_initial_values(cli, tmp_path):
    at = write_point(tmp_path / "w.yaml", {"w": [0.5, 0.5]})  # the model's initial values
    code, out, err = cli("validate", CI / "model.mco", "--params", at, "--config", CI / "run.yaml", "--json")
    assert code == 1, err
    for point in ({"w": np.array([0.5, 0.5])}, None):
        result = mcopt.validate(CI / "model.mco", config=CI / "run.yaml", at=point)
        assert (result.exit_code, result.passed) == (1, False)
        assert without_timings(result.to_dict()) == without_timings(out)
    # --allow-not-stationary: the failing train_loss check still fails the run.
    code, out, err = cli(
        "validate", CI / "model.mco", "--params", at, "--config", CI / "run.yaml",
        "--allow-not-stationary", "--json",
    )
    result = mcopt.validate(CI / "model.mco", config=CI / "run.yaml", at=at, allow_not_stationary=True)
    assert result.exit_code == code
    assert without_timings(result.to_dict()) == without_timings(out)


def test_validate_bad_input_raises_instead_of_exit_code_2(tmp_path):
    bad = write_point(tmp_path / "bad.yaml", {"w": [1.0, 2.0, 3.0]})
    with pytest.raises(mcopt.DiagnosticError) as info:
        mcopt.validate(CI / "model.mco", config=CI / "run.yaml", at=bad)
    assert info.value.code == "mcopt::point::shape"
