"""The result classes of mcopt: Certificate, Validation and Report.

Each wraps the JSON object the command line prints (``to_dict()`` returns it unchanged) and
adds the arrays that JSON cannot hold as arrays (witnesses, the trace, the final parameters).
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np


def _verdict_key(data: Dict[str, Any]) -> str:
    """The verdict a certificate is summarised by: the first order unless it holds (then the second)."""
    first = data["first_order"]
    if "second_order" in data and first["status"] == "stationary":
        return "second_order"
    return "first_order"


class Certificate:
    """A certificate of d-stationarity, as ``mcopt stationarity --json`` gives it.

    ``status``, ``method``, ``slope``, ``curvature``, ``reason`` and ``witness`` are those of the
    deciding verdict: the second order's when the first order holds and a second order was
    asked for, else the first order's. ``first_order`` and ``second_order`` are the verdicts
    as dicts (``second_order`` is None for order 1).
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
