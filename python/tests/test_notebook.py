"""examples/python/srpa_syn.ipynb runs from top to bottom without an error (nbclient)."""

import json
import sys

import nbformat
from nbclient import NotebookClient

from conftest import EXAMPLES

NOTEBOOK = EXAMPLES / "python" / "srpa_syn.ipynb"


def test_the_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_the_srpa_notebook_executes(tmp_path, monkeypatch):
    # The kernel is this interpreter (the one with mcopt installed): a `python3` kernel spec on
    # JUPYTER_PATH, which comes before the user's and the system's kernels.
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (mcopt tests)",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    texts = [
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    ]
    printed = "".join(texts)
    assert "srpa: max_iter after 100 iterations" in printed
    assert "Θ(z¹) = 2.078273570" in printed
    assert "certificate of the final point, form (P1), order 2: not_stationary" in printed
    images = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 1
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", out
