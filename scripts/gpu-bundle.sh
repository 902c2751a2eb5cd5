#!/usr/bin/env bash
# Run HERE: prepares everything the GPU machine needs (it has no Rust and no network), in
# folders that each fit one upload (64 MiB):
#   .gpu/a   the first part of MLX's CUDA wheel (../shared/gpu/prepare.sh)
#   .gpu/b   the rest of it and its installer, the release binary, scripts/gpu-suite.sh,
#            mlx-lm's wheel (whl/) and the per-device caches of earlier sittings (cache/)
#   .gpu/c   phew-mlx and what its optimizer imports (egglog's wheel alone is ~57 MB)
# Then, on the GPU machine, one call after another (it is released ~30 s after a call):
#   1. carry .gpu/a:  mkdir -p /tmp/mlxw && cp .gpu/a/part1 /tmp/mlxw/
#   2. carry .gpu/b:  bash scripts/gpu-sitting.sh start; bash scripts/gpu-sitting.sh wait $((575 - SECONDS))
#   3. carry .gpu/b, while held:  bash scripts/gpu-sitting.sh wait 585   (the background goes on)
# (phew: carry .gpu/c once before 2: python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/c/*.whl)
# Usage: scripts/gpu-bundle.sh [--no-phew]
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
# prepare.sh empties .gpu/a and .gpu/b of files (and stops at folders): keep the caches.
rm -rf .gpu/b/whl .gpu/c .gpu/cache && { [ ! -d .gpu/b/cache ] || mv .gpu/b/cache .gpu/cache; }
../shared/gpu/prepare.sh .gpu > /dev/null
[ ! -d .gpu/cache ] || mv .gpu/cache .gpu/b/cache
cargo build --release --quiet
cp "${CARGO_TARGET_DIR:-target}/release/superopt" scripts/gpu-suite.sh .gpu/b/
cargo run --release --quiet -p superopt-kernel --example standard -- cuda > .gpu/b/standard_cuda.py
cargo run --release --quiet -p superopt-kernel --example quantized -- cuda > .gpu/b/quantized_cuda.py
cargo run --release --quiet -p superopt-kernel --example solve -- cuda > .gpu/b/solve_cuda.py
wheels() {  # DIR PACKAGE... : wheels for the GPU machine's CPython 3.12, without dependencies
  local dir="$1"; shift
  mkdir -p "$dir"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$dir" "$@"
}
wheels .gpu/b/whl mlx-lm==0.32.2 threadpoolctl==3.8.0
if [ "${1:-}" != "--no-phew" ]; then
  wheels .gpu/c phew-mlx==0.3.0 egglog==13.2.0 black click cloudpickle graphviz mypy-extensions \
    opentelemetry-api importlib-metadata zipp packaging pathspec platformdirs pytokens typing-extensions
fi
du -sh .gpu/* | sed 's/^/  /'
