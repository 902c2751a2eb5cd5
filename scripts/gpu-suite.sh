#!/usr/bin/env bash
# Runs `superopt suite` on the GPU machine, in sittings that fit its per-call limit.
# Before: the MLX CUDA install of ../shared/gpu/README.md; a release binary built here and
# carried in BUNDLE (the GPU machine has no Rust); mlx-lm's wheel in BUNDLE/whl for the
# mlx-lm workloads (its own dependencies are on that machine already).
# Usage: scripts/gpu-suite.sh BUNDLE OUTDIR SUITE_DIR NAME [TIME_BUDGET] [STOP_AFTER] [HARNESS_LIMIT]
#   Resumes BUNDLE/NAME.json if it is there (the rows of an earlier sitting) and writes
#   OUTDIR/NAME.json, OUTDIR/NAME.md, OUTDIR/capsules (each harness's run capsule) and
#   OUTDIR/cache (the per-device caches, to carry into the next sitting as BUNDLE/cache).
set -uo pipefail
bundle="$1"; out="$2"; dir="$3"; name="$4"; budget="${5:-90}"; stop="${6:-420}"; limit="${7:-400}"
export SUPEROPT_PYTHON="${SUPEROPT_PYTHON:-python3}" PYTHONUNBUFFERED=1
if compgen -G "$bundle/whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$bundle"/whl/*.whl
fi
mkdir -p "$out" ~/.cache/superopt
[ -d "$bundle/cache" ] && cp -r "$bundle/cache/." ~/.cache/superopt/
[ -f "$bundle/$name.json" ] && cp "$bundle/$name.json" "$out/$name.json"
"$bundle/superopt" suite "$dir" --json "$out/$name.json" --resume --stop-after "$stop" --harness-limit "$limit" --time-budget "$budget" --plot "$out/$name.svg" --capsules "$out/capsules" > "$out/$name.md"
status=$?
cat "$out/$name.md"
mkdir -p "$out/cache" && cp -r ~/.cache/superopt/. "$out/cache/"
exit $status
