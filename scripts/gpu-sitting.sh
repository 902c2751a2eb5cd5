#!/usr/bin/env bash
# One GPU sitting in few, full calls (the machine is released ~30 s after a call; device time
# is short). Run ON THE DEVICE, in the repo root, carrying .gpu/b (scripts/gpu-bundle.sh), after
# the call that copies .gpu/a/part1 to /tmp/mlxw/ (../shared/gpu/README.md):
#   bash scripts/gpu-sitting.sh start [STEP...]; bash scripts/gpu-sitting.sh wait $((575 - SECONDS))
#   then, while the machine is held:  bash scripts/gpu-sitting.sh wait 585   (as often as needed;
#   carry nothing then: a carried .gpu/b replaces the binary under a running step, which then
#   cannot start its next `superopt`)
# `start` installs MLX's CUDA build, then runs the steps one after another in the background
# (setsid: they outlive the call; timings never overlap); `wait` waits until the seconds given
# or the end, prints the progress and packs /tmp/so for $OUT (so.tgz).
# Steps (default: all but profile, in this order): quant chunked model mutations reala realb kernels
# quantized solve standard; prefill (the MoE block at prefill), gated (gated_delta alone), realc (reala and realb's rows not yet verified), profile (fn's first calls in three processes), model-moe and model-dense
# (one of the two models), layernorm (the LayerNorm kernel rows), ncu-moe (the MoE products under ncu), stage (x staged or not), recurrences (the scan kernel's
# spellings) on request.
set -u
s=/tmp/so
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 SUPEROPT_PYTHON=python3
all="quant chunked model mutations reala realb kernels quantized solve standard"

rows() {  # NAME HARNESS...: a folder holding those harnesses and the suite's shared modules
  local d=/tmp/rows-$1; shift; mkdir -p "$d"; cp suite/_sizes.py suite/_qwen3_moe.py "$d/"
  for h in "$@"; do cp "$h" "$d/"; done; echo "$d"
}
log() { echo "$(date +%T) $*" >> $s/progress.txt; }
suite() {  # BUDGET LIMIT NAME HARNESS...
  local budget="$1" limit="$2"; shift 2
  bash .gpu/b/gpu-suite.sh .gpu/b $s "$(rows "$@")" "$1" "$budget" 9999 "$limit" > "$s/$1.out" 2>&1
}
model() {  # KIND: a random model of real shapes through `superopt model`
  [ -f "/tmp/model-$1/config.json" ] || python3 tests/models/random_model.py "$1" "/tmp/model-$1" --real \
    > "$s/model-make-$1.txt" 2>&1
  mkdir -p "$s/model-$1"
  timeout 1200 .gpu/b/superopt model "/tmp/model-$1" -o "$s/model-$1/PATCH.py" --json "$s/model-$1.json" \
    --plot "$s/model-$1.svg" --time-budget 120 --prompt-tokens 512 --new-tokens 200 > "$s/model-$1.txt" 2>&1
}
step() {
  case "$1" in
    profile)
      # fn's first calls: a first process, then two with a driver cache big enough for MLX's kernels
      timeout 100 python3 scripts/worker-profile.py suite/moe_block_decode.py calls small > $s/profile-calls-1.txt 2>&1
      for k in 2 3; do
        CUDA_CACHE_MAXSIZE=4294967296 timeout 100 python3 scripts/worker-profile.py suite/moe_block_decode.py \
          calls small > $s/profile-calls-$k.txt 2>&1
      done ;;
    solve) timeout 240 python3 scripts/gpu-solve-check.py .gpu/b/solve_cuda.py > $s/solve.txt 2>&1 ;;
    quantized) timeout 480 python3 scripts/gpu-quantized-check.py .gpu/b/quantized_cuda.py \
      4/0/0,4/1/1,4/0/1,4/0/2,4/0/4,8/0/2,2/0/4 > $s/quantized.txt 2>&1 ;;
    ncu-moe)  # superopt's gathered products at decode 32 (256 sorted pairs) under Nsight Compute
      local ncu; ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
      BATCHES=32 ONLY=gate_up,down REPS=2 timeout 400 "$ncu" --clock-control none --kernel-name-base demangled \
        --kernel-name regex:superopt --launch-count 12 --section SpeedOfLight --section Occupancy \
        --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
        python3 scripts/gpu-quantized-check.py .gpu/b/quantized_cuda.py 4/4/2/0,4/4/2/1 > $s/ncu-moe.txt 2>&1 ;;
    stage)  # the products with x staged in shared memory or not, at every batch
      ONLY=gate_up,down,dense_gate_up timeout 400 python3 scripts/gpu-quantized-check.py .gpu/b/quantized_cuda.py \
        4/0/0/0,4/0/0/1,4/4/2/0,4/4/2/1,4/8/2/1,4/2/2/1 > $s/stage.txt 2>&1 ;;
    standard) timeout 240 python3 scripts/gpu-kernel-check.py .gpu/b/standard_cuda.py > $s/standard.txt 2>&1 ;;
    chunked) suite 180 480 chunked suite/gated_delta_chunked.py ;;
    quant) suite 120 300 quant suite/moe_block_decode.py suite/llama_mlp_4bit.py ;;
    prefill) suite 120 420 prefill suite/moe_block_prefill.py ;;
    gated) suite 90 300 gated suite/gated_delta.py ;;
    reala) suite 90 420 reala suite/qwen3_attention_mlx_lm.py suite/moe_experts.py suite/gated_delta.py ;;
    realb) suite 90 240 realb suite/qwen3_attention_naive.py suite/naive_gqa_einsum.py \
      suite/naive_mask_rebuilt.py suite/swiglu_mlp.py ;;
    realc) suite 90 420 realc suite/gated_delta.py suite/moe_experts.py suite/naive_gqa_einsum.py ;;
    recurrences)  # the recurrence kernel's spellings (tests/harnesses/kernels, their CPU sizes)
      suite 60 300 recurrences tests/harnesses/kernels/delta_rule_*.py \
        tests/harnesses/kernels/linear_attention_heads_first.py tests/harnesses/kernels/ema_time_major.py \
        tests/harnesses/kernels/selective_scan.py tests/harnesses/kernels/mamba2_group_steps.py \
        tests/harnesses/kernels/linear_attention_bf16_state.py ;;
    kernels) bash .gpu/b/gpu-suite.sh .gpu/b $s suite/kernels kernels 90 9999 200 > $s/kernels.out 2>&1 ;;
    spell)  # probe/spell's rows, where an uncommitted probe/ is carried
      bash .gpu/b/gpu-suite.sh .gpu/b $s probe/spell spell 60 9999 200 > $s/spell.out 2>&1 ;;
    layernorm)  # the LayerNorm kernel rows alone
      local d=/tmp/rows-layernorm; mkdir -p $d; cp suite/kernels/_kernels.py suite/kernels/layer_norm_*.py $d/
      bash .gpu/b/gpu-suite.sh .gpu/b $s $d layernorm 90 9999 200 > $s/layernorm.out 2>&1 ;;
    model) model qwen3_moe; model qwen3 ;;
    model-moe) model qwen3_moe ;;
    model-dense) model qwen3 ;;
    probe)  # an uncommitted probe/run.py, where one is carried
      [ -f "/tmp/model-qwen3_moe/config.json" ] || python3 tests/models/random_model.py qwen3_moe /tmp/model-qwen3_moe \
        --real > $s/model-make-qwen3_moe.txt 2>&1
      timeout 900 python3 probe/run.py ${PROBE_SECTIONS:-} > $s/probe.txt 2>&1 ;;
    mutations) timeout 900 bash scripts/mutations.sh .gpu/b/superopt > $s/mutations.txt 2>&1 ;;
    *) echo "unknown step $1 (steps: $all)" ;;
  esac
}

case "${1:-}" in
  start)
    shift; mkdir -p $s
    bash .gpu/b/install.sh > $s/install.txt 2>&1 || { cat $s/install.txt; exit 1; }
    nvidia-smi --query-gpu=name,memory.total --format=csv | tee $s/gpu.txt
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/b/whl/*.whl
    setsid nohup bash "$0" background "${@:-$all}" > $s/background.txt 2>&1 < /dev/null &
    ;;
  background)
    shift; log start
    for name in $*; do step "$name"; log "$name done"; done
    touch $s/done ;;
  wait)
    limit="${2:-560}"
    while [ "$SECONDS" -lt "$limit" ] && [ ! -f $s/done ]; do sleep 5; done
    cat $s/progress.txt; tail -n 20 $s/*.md 2>/dev/null
    tar czf "$OUT/so.tgz" -C $s --exclude=cache . 2>/dev/null
    ;;
  *) echo "usage: scripts/gpu-sitting.sh start [STEP...] | wait [SECONDS]"; exit 2 ;;
esac
