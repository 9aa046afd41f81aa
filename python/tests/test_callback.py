"""The training callback: metrics every iteration, False stops, an exception (Ctrl-C included)
stops the run, writes the outputs and is re-raised; a real SIGINT during training too."""

import json
import math
import signal
import subprocess
import sys
import time

import pytest

import mcopt
from conftest import SYN_RUN, SYN_THETA0, TIMING_KEYS, read_trace_csv


def test_the_callback_gets_each_iterations_trace_row(tmp_path):
    seen = []
    report = mcopt.train(SYN_RUN, init=SYN_THETA0, max_iter=4, out=tmp_path / "out", callback=seen.append)
    assert report.iterations == 4
    iters = [m["iter"] for m in seen]
    assert all(isinstance(i, int) for i in iters)
    assert set(range(1, 5)) <= set(iters)
    assert iters == sorted(iters)
    header, rows = read_trace_csv(tmp_path / "out" / "trace.csv")
    for metrics in seen:
        row = rows[int(metrics["iter"])]
        assert set(metrics) == set(header)
        for i, name in enumerate(header):
            if name in TIMING_KEYS:
                continue
            if math.isnan(row[i]):
                assert math.isnan(metrics[name]), name
            else:
                assert metrics[name] == row[i], name


def test_returning_false_stops_the_run(tmp_path):
    def stop_at_three(metrics):
        return metrics["iter"] < 3

    report = mcopt.train(SYN_RUN, init=SYN_THETA0, max_iter=50, out=tmp_path / "out", callback=stop_at_three)
    assert report.status == "stopped"
    assert report.iterations == 3
    assert len(report.trace) == 4
    assert report.trace["iter"].tolist() == [0, 1, 2, 3]
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    # report.json says what the CLI writes for a run stopped from outside.
    assert (written["status"], written["iterations"]) == ("interrupted", 3)
    assert report.to_dict() == written


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("exc", [KeyboardInterrupt, Boom])
def test_raising_stops_the_run_writes_the_outputs_and_re_raises(exc, tmp_path):
    out = tmp_path / "out"

    def interrupt(metrics):
        if metrics["iter"] == 2:
            raise exc()

    with pytest.raises(exc):
        mcopt.train(SYN_RUN, init=SYN_THETA0, max_iter=50, out=out, callback=interrupt)
    for name in ["params.yaml", "trace.csv", "report.json", "checkpoint.json"]:
        assert (out / name).is_file(), name
    written = json.loads((out / "report.json").read_text())
    if exc is KeyboardInterrupt:
        assert written["status"] == "interrupted"  # as Ctrl-C in the CLI
    assert written["iterations"] == 2
    _, rows = read_trace_csv(out / "trace.csv")
    assert len(rows) == 3


CHILD = """
import sys, mcopt
try:
    mcopt.train(sys.argv[1], max_iter=100_000_000, out=sys.argv[2])
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    sys.exit(0)
print("finished without an interrupt", flush=True)
sys.exit(1)
"""


def test_ctrl_c_during_training_writes_the_outputs_and_raises_keyboardinterrupt(tmp_path):
    # SIGINT while the run is inside Rust (no callback, the GIL released), as Ctrl-C would.
    out = tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(SYN_RUN), str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "trace.csv").is_file():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the run wrote no trace within 60 s"
            time.sleep(0.05)
        time.sleep(0.2)
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, stderr
    assert stdout.strip() == "KeyboardInterrupt"
    written = json.loads((out / "report.json").read_text())
    assert written["status"] == "interrupted"
    assert written["iterations"] >= 1
    _, rows = read_trace_csv(out / "trace.csv")
    assert len(rows) == written["iterations"] + 1
