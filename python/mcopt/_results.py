"""The result classes of mcopt: Certificate, Validation and Report.

Each wraps the JSON object the command line prints (``to_dict()`` returns it unchanged) and
adds the arrays that JSON cannot hold as arrays (witnesses, the trace, the final parameters).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np


def _verdict_key(data: Dict[str, Any]) -> str:
    """The verdict a certificate is summarised by: that of the highest order asked for."""
    return "second_order" if "second_order" in data else "first_order"


class Certificate:
    """A certificate of d-stationarity, as ``mcopt stationarity --json`` gives it.

    ``status``, ``method``, ``slope``, ``curvature``, ``reason`` and ``witness`` are those of the
    verdict of the highest order asked for (the second order's for order 2: a point that is not
    first-order stationary is not second-order stationary either, with the same witness).
    ``first_order`` and ``second_order`` are the verdicts as dicts (``second_order`` is None
    for order 1).
    """

    status: str
    """"stationary", "not_stationary" or "inconclusive" (the CLI's JSON values)."""
    order: int
    """1 or 2: the order that was asked for."""
    form: str
    """"p", "p0" or "p1"."""
    method: str
    """The tier that decided (``gradient``, ``lanczos``, ``convex_qp``, ``pieces``, ``search``, …)."""
    slope: Optional[float]
    """f′(x; d) along the witness (first order), if any."""
    curvature: Optional[float]
    """f″(x; d) along the witness (second order), if any."""
    reason: Optional[str]
    """Why a verdict is inconclusive, or what its tier measured."""
    witness: Optional[Dict[str, np.ndarray]]
    """The witness direction keyed by variable name (θ names; layer variables for p0/p1)."""
    first_order: Dict[str, Any]
    """The first-order verdict as in the JSON."""
    second_order: Optional[Dict[str, Any]]
    """The second-order verdict as in the JSON (order 2 only)."""

    def __init__(self, data: Dict[str, Any], witnesses: Dict[str, Dict[str, np.ndarray]]):
        self._data = data
        key = _verdict_key(data)
        v = data[key]
        self.form = data["form"]
        self.order = 2 if "second_order" in data else 1
        self.status = v["status"]
        self.method = v["method"]
        self.slope = v.get("slope")
        self.curvature = v.get("curvature")
        self.reason = v.get("reason")
        self.witness = witnesses.get(key)
        self.first_order = data["first_order"]
        self.second_order = data.get("second_order")

    def to_dict(self) -> Dict[str, Any]:
        """Exactly the object ``mcopt stationarity --json`` prints."""
        return self._data

    def __repr__(self) -> str:
        return f"Certificate(status={self.status!r}, form={self.form!r}, order={self.order}, method={self.method!r})"


class Report:
    """The outcome of ``mcopt.train``: report.json's object (``to_dict()``), the final θ, the trace.

    ``status`` is report.json's, but "stopped" when the callback returned False (report.json
    then says "interrupted", as for Ctrl-C in the CLI).
    """

    status: str
    """"max_iter", "converged", "stalled", "time_limit", "diverged", "interrupted" or "stopped"."""
    iterations: int
    """Iterations of the final point."""
    solver: str
    """The solver's name."""
    params: Dict[str, np.ndarray]
    """The final θ keyed by parameter name."""
    best: Optional[Dict[str, Any]]
    """The best iterate of the run, as report.json's "best"."""
    trace: np.ndarray
    """A structured array: one float64 field per trace.csv column, one row per iteration (from 0)."""
    certificate: Optional[Certificate]
    """The final certificate the run file asks for (``validate:``), if any."""
    out: Optional[str]
    """The output directory written, if any."""

    def __init__(self, data, status, params, trace, certificate, out):
        self._data = data
        self.status = status
        self.iterations = data["iterations"]
        self.solver = data["solver"]
        self.best = data.get("best")
        self.params = params
        self.trace = trace
        self.certificate = certificate
        self.out = out

    def to_pandas(self):
        """The trace as a pandas DataFrame (one column per field)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("Report.to_pandas() needs pandas: pip install pandas") from e
        return pd.DataFrame.from_records(self.trace)

    def to_dict(self) -> Dict[str, Any]:
        """Exactly report.json's object."""
        return self._data

    def __repr__(self) -> str:
        return f"Report(status={self.status!r}, iterations={self.iterations}, solver={self.solver!r})"


class Validation:
    """The checks of ``mcopt validate`` (``to_dict()`` is what ``validate --json`` prints)."""

    passed: bool
    """Whether no check failed."""
    status: str
    """"passed" or "failed"."""
    exit_code: int
    """The CLI's exit code: 0 passed, 1 a check failed (bad input raises DiagnosticError, the CLI's 2)."""
    checks: List[Dict[str, Any]]
    """One dict per check: name, status ("pass", "fail", "warn", "skipped"), message, seconds."""

    def __init__(self, data: Dict[str, Any]):
        self._data = data
        self.passed = bool(data["passed"])
        self.status = "passed" if self.passed else "failed"
        self.exit_code = 0 if self.passed else 1
        self.checks = data["checks"]

    def to_dict(self) -> Dict[str, Any]:
        """Exactly the object ``mcopt validate --json`` prints."""
        return self._data

    def __repr__(self) -> str:
        return f"Validation(status={self.status!r}, checks={len(self.checks)})"
