"""Bad input: DiagnosticError with the CLI's code, message, place and help."""

import os

import numpy as np
import pytest

import mcopt
from conftest import MODELS


def first_cli_diagnostic(cli, path):
    code, out, err = cli("check", path, "--json")
    assert code == 2, err
    return out["diagnostics"][0]


@pytest.mark.parametrize(
    "name,code,line,column",
    [
        ("syntax_error.mco", "mcopt::parse::syntax", 2, 16),
        ("unknown_name.mco", "mcopt::check::unknown_name", 3, 16),
    ],
)
def test_a_bad_model_raises_the_clis_diagnostic(name, code, line, column, cli):
    path = MODELS / name
    with pytest.raises(mcopt.DiagnosticError) as info:
        mcopt.Model.load(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.code, err.line, err.column) == (code, line, column)
    assert err.file is not None and os.path.basename(err.file) == name
    expected = first_cli_diagnostic(cli, path)
    assert (err.code, err.message, err.line, err.column, err.help) == (
        expected["code"], expected["message"], expected["line"], expected["column"], expected["help"],
    )
    rendered = str(err)
    assert code in rendered
    assert err.message in rendered
    assert f"{name}:{line}:{column}" in rendered


def test_a_missing_file_is_a_diagnostic_without_a_place():
    with pytest.raises(mcopt.DiagnosticError) as info:
        mcopt.Model.load(MODELS / "no_such_model.mco")
    assert info.value.code == "mcopt::io::read"
    assert info.value.line is None and info.value.column is None


def test_a_wrong_shape_names_the_parameter_and_both_shapes():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    params = model.params
    params["W"] = np.zeros((3, 2))  # the transpose of the declared 2 × 3
    for call in (model.value, model.gradient, lambda p: model.directional(p, {})):
        with pytest.raises(mcopt.DiagnosticError) as info:
            call(params)
        assert info.value.code == "mcopt::python::shape"
        message = info.value.message
        assert "W" in message and "2" in message and "3" in message
    bad_direction = {"b": np.zeros(3)}
    with pytest.raises(mcopt.DiagnosticError) as info:
        model.directional(model.params, bad_direction)
    assert info.value.code == "mcopt::python::shape"
    assert "b" in info.value.message


def test_a_missing_parameter_is_a_diagnostic():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    params = model.params
    del params["s"]
    with pytest.raises(mcopt.DiagnosticError) as info:
        model.value(params)
    assert info.value.code == "mcopt::python::missing"
    assert "`s`" in info.value.message or "'s'" in info.value.message or " s " in info.value.message


def test_a_name_that_is_no_variable_is_a_diagnostic():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    params = model.params
    params["Q"] = np.zeros(2)
    with pytest.raises(mcopt.DiagnosticError) as info:
        model.value(params)
    assert info.value.code == "mcopt::python::name"
    assert "Q" in info.value.message
    with pytest.raises(mcopt.DiagnosticError) as info:
        model.directional(model.params, {"Q": 1.0})
    assert info.value.code == "mcopt::python::name"


def test_bad_arguments_are_diagnostics():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    x = model.params
    for call in (
        lambda: model.stationarity(x, form="p2"),
        lambda: model.stationarity(x, order=3),
        lambda: model.directional(x, {}, order=0),
        lambda: model.reformulate("p"),  # the CLI reformulates to p0 or p1 only
        lambda: model.value({**x, "b": ["a", "b"]}),
    ):
        with pytest.raises(mcopt.DiagnosticError) as info:
            call()
        assert info.value.code == "mcopt::python::value", info.value.code


def test_a_scalar_may_be_given_as_shape_one():
    model = mcopt.Model.load(MODELS / "nonsquare.mco")
    x = model.params
    assert model.value({**x, "s": np.array([2.0])}) == model.value(x)
