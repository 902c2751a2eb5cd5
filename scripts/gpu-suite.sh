#!/usr/bin/env bash
# Runs `superopt suite` on the GPU machine, in sittings that fit its per-call limit.
# Before: the MLX CUDA install of ../shared/gpu/README.md; a release binary built here and
# carried in BUNDLE (the GPU machine has no Rust); mlx-lm's wheel in BUNDLE/whl for the
# mlx-lm workloads (its own dependencies are on that machine already).
# Usage: scripts/gpu-suite.sh BUNDLE STATE SUITE_DIR NAME [TIME_BUDGET] [STOP_AFTER] [HARNESS_LIMIT]
#   STATE is a folder on the GPU machine (e.g. /tmp/so) that outlives the call while the
#   machine is held: a later call with the same STATE resumes where this one stopped (or
#   from BUNDLE/NAME.json, the rows of an earlier machine). It holds STATE/NAME.json,
#   STATE/NAME.md, STATE/NAME.svg, STATE/capsules-NAME (each harness's run capsule) and
#   STATE/cache (the per-device caches; carry them into the next machine as BUNDLE/cache).
#   Pack it for $OUT (8 files at most come back) with `tar czf $OUT/so.tgz -C STATE .`.
set -uo pipefail
bundle="$1"; state="$2"; dir="$3"; name="$4"; budget="${5:-90}"; stop="${6:-420}"; limit="${7:-400}"
export SUPEROPT_PYTHON="${SUPEROPT_PYTHON:-python3}" PYTHONUNBUFFERED=1
if compgen -G "$bundle/whl/*.whl" > /dev/null && ! python3 -c 'import mlx_lm' 2> /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$bundle"/whl/*.whl
fi
mkdir -p "$state" ~/.cache/superopt
if [ ! -d "$state/cache" ]; then
  [ -d "$bundle/cache" ] && cp -r "$bundle/cache/." ~/.cache/superopt/
fi
[ -f "$state/$name.json" ] || { [ -f "$bundle/$name.json" ] && cp "$bundle/$name.json" "$state/$name.json"; }
"$bundle/superopt" suite "$dir" --json "$state/$name.json" --resume --stop-after "$stop" --harness-limit "$limit" \
  --time-budget "$budget" --plot "$state/$name.svg" --capsules "$state/capsules-$name" > "$state/$name.md"
status=$?
cat "$state/$name.md"
mkdir -p "$state/cache" && cp -r ~/.cache/superopt/. "$state/cache/"
exit $status
