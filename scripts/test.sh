#!/usr/bin/env bash
# The test command: unit tests, then integration tests on real MLX (CPU backend).
set -euo pipefail
cd "$(dirname "$0")/.."
SUPEROPT_PYTHON="$(scripts/dev-python.sh)"
export SUPEROPT_PYTHON
cargo test --workspace --release 2>&1
