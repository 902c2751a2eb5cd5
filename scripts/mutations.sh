#!/usr/bin/env bash
# The mutation suite with a given binary, at the harnesses' real sizes (on a GPU, where the
# device runs them in time); crates/cli/tests/mutations.rs runs it at CPU sizes.
# Every file of tests/mutations/wrong must be rejected by a named check, every file of
# tests/mutations/right accepted. One `superopt verify` per harness judges all its files (the
# float64 references computed once). Prints one line per file and a closing count; exits
# non-zero if any is judged wrong.
# Usage: scripts/mutations.sh [BINARY] [SIZES]   (SIZES: empty for real sizes, or cpu)
set -uo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/superopt}"
export SUPEROPT_SIZES="${2:-}"
passed=0 failed=0
harness_of() { sed -n 's/^HARNESS = "\(.*\)"$/\1/p' "$1"; }
for harness in $(for f in tests/mutations/{wrong,right}/[!_]*.py; do harness_of "$f"; done | sort -u); do
  files=()
  for f in tests/mutations/{wrong,right}/[!_]*.py; do [ "$(harness_of "$f")" = "$harness" ] && files+=("$f"); done
  start=$(date +%s)
  out="$("$bin" verify "$harness" "${files[@]}" 2>&1)"
  took=$(( $(date +%s) - start ))
  for f in "${files[@]}"; do
    block="$(awk -v f="candidate: $f" '$0 == f {on=1; next} /^candidate: / {on=0} on' <<< "$out")"
    line="$(grep -m1 -E 'caught by|FAILED' <<< "$block" || echo accepted)"
    verdict="$(tail -n1 <<< "$block")"
    kind="$(basename "$(dirname "$f")")"
    if { [ "$kind" = right ] && [ "$verdict" = accepted ]; } ||
       { [ "$kind" = wrong ] && [ "$verdict" = rejected ] && grep -q 'caught by' <<< "$line"; }; then
      passed=$((passed + 1)); mark=ok
    else
      failed=$((failed + 1)); mark=WRONG
    fi
    printf '%-6s %-5s %-55s %s\n' "$mark" "$kind" "$(basename "$f")" "$line"
  done
  echo "       ($harness: ${#files[@]} files, ${took}s)"
done
echo "mutations: $passed passed, $failed failed"
[ "$failed" = 0 ]
