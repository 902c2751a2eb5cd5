#!/usr/bin/env bash
# As a new user would: a fresh virtualenv, `pip install .` ("[cpu]" on Linux: MLX's backend),
# then `superopt run` on a shipped example. No other Python can serve the worker here (python3
# on PATH is a stub that fails), so success means it used the environment's own MLX.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
extra=""
if [ "$(uname)" = Linux ]; then extra="[cpu]"; fi
# The repo's own target folder: the build reuses what `cargo build --release` made.
CARGO_TARGET_DIR="$PWD/target" "$tmp/venv/bin/pip" install --quiet ".$extra"
mkdir -p "$tmp/stub" "$tmp/cache"
printf '#!/bin/sh\nexit 1\n' > "$tmp/stub/python3"
chmod +x "$tmp/stub/python3"
env -u SUPEROPT_PYTHON PATH="$tmp/stub:/usr/bin:/bin" XDG_CACHE_HOME="$tmp/cache" \
  "$tmp/venv/bin/superopt" run examples/rms_norm.py --time-budget 20 -o "$tmp/rms_norm_fast.py" > "$tmp/log" 2>&1 \
  || { cat "$tmp/log" >&2; echo "pip-install-check: superopt run failed in the installed environment" >&2; exit 1; }
grep -E "^(verified speedup|no verified speedup|no change)" "$tmp/log" \
  || { cat "$tmp/log" >&2; echo "pip-install-check: the run printed no decision" >&2; exit 1; }
echo "pip-install-check: ok ($("$tmp/venv/bin/superopt" --version))"
