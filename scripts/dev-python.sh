#!/usr/bin/env bash
# Creates .venv with MLX and mlx-lm (requirements-dev.txt) if it is missing; prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c "import mlx.core, mlx_lm" >/dev/null 2>&1; then
  echo "setting up .venv from requirements-dev.txt (once)" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt >&2
fi
echo "$PWD/.venv/bin/python"
