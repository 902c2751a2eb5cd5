#!/usr/bin/env bash
# The mutation suite with a given binary, at the harnesses' real sizes (on a GPU, where the
# device runs them in time); crates/cli/tests/mutations.rs runs it at CPU sizes.
# Every file of tests/mutations/wrong must be rejected, every file of tests/mutations/right
# accepted. Prints one line per file and a closing count; exits non-zero if any is judged wrong.
# Usage: scripts/mutations.sh [BINARY] [SIZES]   (SIZES: empty for real sizes, or cpu)
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/superopt}"
export SUPEROPT_SIZES="${2:-}"
passed=0 failed=0
for kind in wrong right; do
  for f in tests/mutations/$kind/*.py; do
    case "$(basename "$f")" in _*) continue ;; esac
    harness="$(sed -n 's/^HARNESS = "\(.*\)"$/\1/p' "$f")"
    start=$(date +%s)
    out="$("$bin" verify "$harness" "$f" 2>&1)"
    code=$?
    line="$(grep -m1 -E 'caught by|FAILED' <<< "$out" || echo accepted)"
    want=1; [ "$kind" = right ] && want=0
    if [ "$code" = "$want" ] && { [ "$kind" = right ] || grep -q 'caught by' <<< "$line"; }; then
      passed=$((passed + 1)); verdict=ok
    else
      failed=$((failed + 1)); verdict=WRONG
    fi
    printf '%-6s %-5s %-55s %4ss  %s\n' "$verdict" "$kind" "$(basename "$f")" "$(( $(date +%s) - start ))" "$line"
  done
done
echo "mutations: $passed passed, $failed failed"
[ "$failed" = 0 ]
