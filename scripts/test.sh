#!/usr/bin/env bash
# The test command: format and lints, unit tests, integration tests on real MLX (CPU backend),
# then `pip install .` from a fresh virtualenv.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# No line of the crates' sources is over 120 characters (rustfmt leaves strings and comments alone).
long="$(git ls-files -co --exclude-standard 'crates/*/src/*.rs' | xargs awk 'length > 120 {print FILENAME ":" FNR}')"
if [ -n "$long" ]; then
  echo "lines over 120 characters:" >&2
  echo "$long" >&2
  exit 1
fi
SUPEROPT_PYTHON="$(scripts/dev-python.sh)"
export SUPEROPT_PYTHON
cargo test --workspace --release 2>&1
# As a new user installs it: `pip install .` into a fresh virtualenv, then a run with its MLX.
bash scripts/pip-install-check.sh
