"""mcopt from Python: load a ``.mco`` model with numpy or pandas data, evaluate it and its exact
directional derivatives, certify d-stationarity, and train RNNs — the same Rust code as the
``mcopt`` command line (``mcopt::session``), so the same inputs give the same floats.

Parameters and directions are dicts of float64 numpy arrays keyed by variable name, shaped as
declared (``vec(n)`` → ``(n,)``, ``mat(r, c)`` → ``(r, c)`` row-major, a scalar → ``()``).
"""

from ._mcopt import DiagnosticError, Model, __version__, train, validate
from ._results import Certificate, Report, Validation

__all__ = ["Certificate", "DiagnosticError", "Model", "Report", "Validation", "__version__", "train", "validate"]
