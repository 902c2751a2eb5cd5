#!/usr/bin/env bash
# How long `superopt lint` takes on real model code: mlx-lm's models/ folder as files, the same
# lines as one file, and a file of about 1,000 lines (whole model files up to that). Median of 5.
#   bash scripts/lint-bench.sh [SUPEROPT_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/superopt}"
[ -x "$bin" ] || cargo build --release -q
py="${SUPEROPT_PYTHON:-$(bash scripts/dev-python.sh)}"
models="$("$py" -c 'import mlx_lm, os; print(os.path.join(os.path.dirname(mlx_lm.__file__), "models"))')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cat "$models"/*.py > "$tmp/all.py"
for f in "$models"/*.py; do cat "$f" >> "$tmp/k1.py"; [ "$(wc -l < "$tmp/k1.py")" -ge 1000 ] && break; done
median() {  # CMD...: the median wall time of 5 runs, in seconds
  for _ in 1 2 3 4 5; do
    s=$(date +%s.%N); "$@" > /dev/null 2>&1 || true; e=$(date +%s.%N)
    echo "$e - $s" | bc -l
  done | sort -n | sed -n 3p
}
printf '%-28s %8s %10s\n' what lines seconds
printf '%-28s %8s %10.3f\n' "models/ ($(ls "$models"/*.py | wc -l) files)" "$(cat "$models"/*.py | wc -l)" "$(median "$bin" lint "$models")"
printf '%-28s %8s %10.3f\n' "one file, all of them" "$(wc -l < "$tmp/all.py")" "$(median "$bin" lint "$tmp/all.py")"
printf '%-28s %8s %10.3f\n' "one file, ~1,000 lines" "$(wc -l < "$tmp/k1.py")" "$(median "$bin" lint "$tmp/k1.py")"
