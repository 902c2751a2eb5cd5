#!/usr/bin/env bash
# Creates .venv from requirements-dev.txt (MLX, mlx-lm, NVRTC) if it is missing or the
# requirements changed since; prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
want="$(python3 -c 'import hashlib; print(hashlib.sha256(open("requirements-dev.txt", "rb").read()).hexdigest())')"
if ! .venv/bin/python -c "import mlx.core, mlx_lm" >/dev/null 2>&1 || [ "$(cat .venv/requirements.sha256 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv from requirements-dev.txt" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -r requirements-dev.txt >&2
  echo "$want" > .venv/requirements.sha256
fi
echo "$PWD/.venv/bin/python"
