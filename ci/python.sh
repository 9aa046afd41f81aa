#!/usr/bin/env bash
# CI for the Python package (python/): a virtual environment under target/py-venv, the test
# dependencies from PyPI, `pip install ./python` (the extension's release build shares
# target/release with `cargo test --release`), and the pytest suite, notebook included.
# Run from the repository root after the Rust tests (which build target/release/mcopt, the CLI
# the suite compares against). The notebook's test runs its kernel on this venv's interpreter
# (a kernel spec of its own on JUPYTER_PATH), so no kernel is registered here.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/py-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install -q -r python/requirements-test.txt

# The CLI the tests compare against (nothing to do when the Rust steps built it).
cargo build --release -q --bin mcopt

# The extension: a release build into the workspace's target directory, so it reuses the
# dependencies `cargo test --release` compiled.
CARGO_TARGET_DIR="$PWD/target" "$py" -m pip install -q ./python

"$py" -m pytest -q python/tests
