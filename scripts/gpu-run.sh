#!/usr/bin/env bash
# Runs superopt on the examples (and the mx.fast zoo harnesses) on the GPU machine and
# collects the tables, capsules and traces into one archive.
# Before: the MLX CUDA install of ../shared/gpu/README.md, and a release binary built here
# (copy target/release/superopt into the carried folder; the GPU machine has no Rust).
# Usage: scripts/gpu-run.sh BINARY OUTDIR [HARNESS...]
set -uo pipefail
bin="$1"; out="$2"; shift 2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(examples/*.py tests/harnesses/zoo/fast_ops.py tests/harnesses/zoo/sdpa_fast.py tests/harnesses/zoo/rope_fast.py tests/harnesses/zoo/layer_norm_fast.py)
export SUPEROPT_PYTHON="${SUPEROPT_PYTHON:-python3}"
work="$(mktemp -d)"
mkdir -p "$out"
"$SUPEROPT_PYTHON" -c 'import mlx.core as mx; print("mlx", mx.__version__, mx.default_device(), "cuda", mx.cuda.is_available())' | tee "$work/device.txt"
for h in "${harnesses[@]}"; do
  name="$(basename "$h" .py)"
  echo "=== $name"
  "$bin" trace "$h" --size typical --format text > "$work/$name.trace.txt" 2>&1
  grep -oE '= [A-Za-z]+\(' "$work/$name.trace.txt" | sort | uniq -c | sort -rn | head -8 | tr '\n' ' '; echo
  timeout 300 "$bin" run "$h" --json "$work/$name.json" -o "$work/$name.fast.py" --time-budget 60 > "$work/$name.txt" 2>&1
  echo "exit $?" >> "$work/$name.txt"
  grep -E "^(small|typical|large) |winner|no verified|no change|round trip|dropped|error" "$work/$name.txt"
done
tar czf "$out/gpu-run.tgz" -C "$work" .
echo "archive: $out/gpu-run.tgz"
