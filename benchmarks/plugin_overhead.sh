#!/usr/bin/env bash
# Cost of an activation called through the plugin interface against the evaluator's built-in,
# inlined elementwise code, on the real sp500 RNN forward pass (f only):
#   relu(u[t])  (standard plugin, through the C ABI descriptor)  vs  max(u[t], 0)  (built-in op).
# Both models are run alternately in one session, ROUNDS times each; medians and their ratio.
#   usage: benchmarks/plugin_overhead.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-5}"
cargo build --release -q
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/relu(u\[t\])/max(u[t], 0)/' examples/sp500/rnn.mco > "$tmp/rnn_max.mco"
sed "s|model: rnn.mco|model: rnn_max.mco|; s|file: ../data/sp500.csv|file: $PWD/examples/data/sp500.csv|" \
  examples/sp500/run.yaml > "$tmp/run.yaml"
f_of() { target/release/mcopt bench "$@" --random 1 --seconds 2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["f_seconds"])'; }
plugin=(); builtin=()
for _ in $(seq "$rounds"); do
  plugin+=("$(f_of examples/sp500/rnn.mco --config examples/sp500/run.yaml)")
  builtin+=("$(f_of "$tmp/rnn_max.mco" --config "$tmp/run.yaml")")
done
python3 - "${plugin[*]}" "${builtin[*]}" <<'PY'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
mp, mb = statistics.median(p), statistics.median(b)
print(f"sp500 forward pass, median of {len(p)} rounds")
print(f"  relu through the plugin interface  {mp * 1e6:9.1f} µs")
print(f"  built-in max(u, 0)                 {mb * 1e6:9.1f} µs")
print(f"  plugin / built-in                  {mp / mb:9.3f}")
PY
