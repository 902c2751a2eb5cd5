#!/usr/bin/env bash
# One GPU sitting in few, full calls (the machine is released ~30 s after a call; device time
# is short). Run ON THE DEVICE, in the repo root, carrying .gpu/b (scripts/gpu-bundle.sh), after
# the call that copies .gpu/a/part1 to /tmp/mlxw/ (../shared/gpu/README.md):
#   bash scripts/gpu-sitting.sh start; bash scripts/gpu-sitting.sh wait $((575 - SECONDS))
#   then, while the machine is held:  bash scripts/gpu-sitting.sh wait 585   (as often as needed)
# `start` installs MLX's CUDA build, runs the kernel checks in the foreground (each line as it
# comes, each check under a time limit), then the suite rows one folder after another in the
# background (setsid: they outlive the call); `wait` waits until the seconds given or the end,
# prints the progress and packs /tmp/so for $OUT (so.tgz). Timings never overlap.
set -u
s=/tmp/so
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 SUPEROPT_PYTHON=python3

rows() {  # NAME HARNESS...: a folder holding those harnesses and the suite's shared modules
  local d=/tmp/rows-$1; shift; mkdir -p "$d"; cp suite/_sizes.py suite/_qwen3_moe.py "$d/"
  for h in "$@"; do cp "$h" "$d/"; done; echo "$d"
}
log() { echo "$(date +%T) $*" >> $s/progress.txt; }
suite() {  # BUDGET LIMIT NAME HARNESS...
  local budget="$1" limit="$2"; shift 2
  bash .gpu/b/gpu-suite.sh .gpu/b $s "$(rows "$@")" "$1" "$budget" 9999 "$limit" > "$s/$1.out" 2>&1; log "$1 done"
}

background() {
  log start
  timeout 100 python3 scripts/worker-profile.py suite/moe_block_decode.py calls small > $s/profile-calls.txt 2>&1
  timeout 100 python3 scripts/worker-profile.py suite/moe_block_decode.py calls small > $s/profile-calls-2.txt 2>&1
  log profile done
  suite 180 480 chunked suite/gated_delta_chunked.py
  suite 120 300 quant suite/moe_block_decode.py suite/llama_mlp_4bit.py
  suite 90 240 reala suite/qwen3_attention_mlx_lm.py suite/moe_experts.py suite/gated_delta.py
  suite 90 240 realb suite/qwen3_attention_naive.py suite/naive_gqa_einsum.py suite/naive_mask_rebuilt.py \
    suite/swiglu_mlp.py
  bash .gpu/b/gpu-suite.sh .gpu/b $s suite/kernels kernels 90 9999 200 > $s/kernels.out 2>&1; log kernels done
  python3 tests/models/random_model.py qwen3_moe /tmp/moe30 --real > $s/model-make.txt 2>&1
  mkdir -p $s/model
  timeout 1200 .gpu/b/superopt model /tmp/moe30 -o $s/model/PATCH.py --json $s/model-moe.json \
    --plot $s/model-moe.svg --time-budget 120 --prompt-tokens 512 --new-tokens 200 > $s/model-moe.txt 2>&1
  log model done
  timeout 900 bash scripts/mutations.sh .gpu/b/superopt > $s/mutations.txt 2>&1; log mutations done
  touch $s/done
}

case "${1:-}" in
  start)
    mkdir -p $s
    bash .gpu/b/install.sh > $s/install.txt 2>&1 || { cat $s/install.txt; exit 1; }
    nvidia-smi --query-gpu=name,memory.total --format=csv | tee $s/gpu.txt
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/b/whl/*.whl
    echo "== solve"; timeout 150 python3 scripts/gpu-solve-check.py .gpu/b/solve_cuda.py 2>&1 | tee $s/solve.txt
    echo "== quantized"
    timeout 240 python3 scripts/gpu-quantized-check.py .gpu/b/quantized_cuda.py 2,4,8 2>&1 | tee $s/quantized.txt
    echo "== standard"; timeout 180 python3 scripts/gpu-kernel-check.py .gpu/b/standard_cuda.py 2>&1 | tee $s/standard.txt
    setsid nohup bash "$0" background > $s/background.txt 2>&1 < /dev/null &
    ;;
  background) background ;;
  wait)
    limit="${2:-560}"
    while [ "$SECONDS" -lt "$limit" ] && [ ! -f $s/done ]; do sleep 5; done
    cat $s/progress.txt; tail -n 20 $s/*.md 2>/dev/null
    tar czf "$OUT/so.tgz" -C $s --exclude=cache . 2>/dev/null
    ;;
  *) echo "usage: scripts/gpu-sitting.sh start|wait [SECONDS]"; exit 2 ;;
esac
