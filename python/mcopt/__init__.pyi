"""Type stubs of mcopt (the native module mcopt._mcopt and mcopt._results)."""

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, "os.PathLike[str]"]
ArrayLike = npt.ArrayLike
Params = Mapping[str, ArrayLike]
"""Variables keyed by name: vec(n) as (n,), mat(r, c) as (r, c) row-major, a scalar as () or a float."""

class DiagnosticError(ValueError):
    """A diagnostic of mcopt; ``str()`` is every problem rendered as the CLI prints it."""

    code: str
    """The stable code, e.g. ``mcopt::check::unknown_name``."""
    message: str
    """The first problem's message."""
    file: Optional[str]
    """The file the first problem is in (or names), if any."""
    line: Optional[int]
    """1-based line of the first problem's span, if it has one."""
    column: Optional[int]
    """1-based column (in characters) of that span."""
    help: Optional[str]
    """What to do about it, if the diagnostic says."""

class Model:
    """A checked model with its bound data, evaluated on the training split."""

    @staticmethod
    def load(
        path: PathLike,
        config: Optional[PathLike] = None,
        data: Optional[Mapping[str, Any]] = None,
        consts: Optional[Mapping[str, float]] = None,
        plugins: Sequence[PathLike] = (),
        rows: Optional[str] = None,
        test_rows: Optional[str] = None,
    ) -> "Model":
        """Load a ``.mco`` model: ``config`` a run file (its data, consts and plugins, as
        ``--config``); ``data`` maps data names to numpy arrays (rows × width, 1-D for width 1),
        pandas frames, or ``"FILE:COLUMNS"`` strings (as ``--data``); ``rows``/``test_rows``
        ``"a..b"`` as ``--rows``/``--test-rows``; ``consts`` as ``--const``; ``plugins`` as
        ``--plugin``."""
    @property
    def path(self) -> str:
        """The model file's path."""
    @property
    def params(self) -> Dict[str, np.ndarray]:
        """The initial values of the parameters (a fresh copy on each access)."""
    @property
    def param_names(self) -> List[str]:
        """The parameter names in declaration order."""
    def check(self) -> Dict[str, Any]:
        """The structure ``mcopt check --json`` prints."""
    def value(self, params: Params) -> float:
        """f(θ) on the training split."""
    def gradient(self, params: Params) -> Dict[str, np.ndarray]:
        """∇f(θ) where f is differentiable (the reverse-mode selection of ``bench``)."""
    def directional(
        self,
        params: Params,
        direction: Params,
        order: int = 2,
        form: str = "p",
        beta: Union[float, Mapping[str, float], None] = None,
        ztol: float = 0.0,
    ) -> Tuple[float, float, Optional[float], int]:
        """(f, f′(θ; d), f″(θ; d) or None for order 1, active kinks), as ``mcopt diff``;
        missing names of ``direction`` are zero; for p0/p1 it may name layer variables."""
    def stationarity(
        self,
        params: Params,
        order: int = 2,
        form: str = "p",
        beta: Union[float, Mapping[str, float], None] = None,
        tol: Optional[float] = None,
        ztol: Optional[float] = None,
        max_pieces: Optional[int] = None,
        time_limit: Optional[float] = None,
    ) -> "Certificate":
        """The certificate of d-stationarity of ``mcopt stationarity`` at ``params``."""
    def reformulate(
        self, form: str = "p1", beta: Union[float, Mapping[str, float], None] = None
    ) -> Dict[str, Any]:
        """What ``mcopt reformulate --json`` prints."""
    def _time_value(self, params: Params, reps: int) -> float:
        """Seconds per evaluation of f, looped in Rust (for overhead measurements)."""

class Certificate:
    """A certificate as ``mcopt stationarity --json`` gives it (``to_dict()``)."""

    status: str
    order: int
    form: str
    method: str
    slope: Optional[float]
    curvature: Optional[float]
    reason: Optional[str]
    witness: Optional[Dict[str, np.ndarray]]
    first_order: Dict[str, Any]
    second_order: Optional[Dict[str, Any]]
    def to_dict(self) -> Dict[str, Any]:
        """Exactly the CLI's ``stationarity --json`` object."""

class Validation:
    """The checks of ``mcopt validate`` (``to_dict()`` is ``validate --json``)."""

    passed: bool
    status: str
    exit_code: int
    checks: List[Dict[str, Any]]
    def to_dict(self) -> Dict[str, Any]:
        """Exactly the CLI's ``validate --json`` object."""

class Report:
    """The outcome of ``train``: report.json (``to_dict()``), the final θ and the trace."""

    status: str
    iterations: int
    solver: str
    params: Dict[str, np.ndarray]
    best: Optional[Dict[str, Any]]
    trace: np.ndarray
    certificate: Optional[Certificate]
    out: Optional[str]
    def to_pandas(self) -> Any:
        """The trace as a pandas DataFrame (ImportError without pandas)."""
    def to_dict(self) -> Dict[str, Any]:
        """Exactly report.json's object."""

def validate(
    model: PathLike,
    config: Optional[PathLike] = None,
    data: Optional[Mapping[str, str]] = None,
    consts: Optional[Mapping[str, float]] = None,
    plugins: Sequence[PathLike] = (),
    at: Union[PathLike, Params, None] = None,
    order: Optional[int] = None,
    tol: Optional[float] = None,
    ztol: float = 0.0,
    allow_not_stationary: bool = False,
    allow_inconclusive: bool = False,
    rows: Optional[str] = None,
    test_rows: Optional[str] = None,
) -> Validation:
    """The checks of ``mcopt validate`` at ``at`` (a point file, a dict of arrays, or the
    initial values when None); bad input raises DiagnosticError (the CLI's exit 2)."""

def train(
    run: Union[PathLike, Mapping[str, Any]],
    init: Union[PathLike, Params, None] = None,
    max_iter: Optional[int] = None,
    out: Optional[PathLike] = None,
    callback: Optional[Callable[[Dict[str, float]], Optional[bool]]] = None,
) -> Report:
    """``mcopt train``: the callback gets each iteration's trace row and may return False to
    stop; an exception raised in it (or Ctrl-C) stops the run, writes the outputs, and is
    raised again. The GIL is released while the run goes, but for the callback."""
