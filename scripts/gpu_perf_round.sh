#!/usr/bin/env bash
# One GPU-machine call of performance work (#4, #6): build, the GPU tests, the attention-backend
# probe, an SFT benchmark row with the step profiler on, and generation benchmarks, each under its
# own time limit; everything lands in $OUT/round.tgz plus $OUT/summary.txt (the device tool returns
# a few files only).
#   bash scripts/gpu_perf_round.sh      (carry .debs and .gpu-shared; see scripts/gpu_stage_benches.sh)
# Env: OUT (gpu-out), STEPS (what to run, in order; default "tests probe sft gen hf"; also: sweep),
#   SFT_CONFIGS ("8:false": micro_batch:checkpointing pairs, each profiled), GEN ("0.5b:64 1.5b:8
#   1.5b:64": preset:G[:flags], see the gen step), HF ("1.5b:64": transformers runs, preset:G), LIMIT_<STEP> seconds per step.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
work=/tmp/mathrl-perf
rm -rf "$work" && mkdir -p "$OUT" "$work"
export SHARED="${SHARED:-$PWD/.gpu-shared}" MATHRL_SHARED_DIR="${SHARED:-$PWD/.gpu-shared}" PYTHONUNBUFFERED=1
STEPS="${STEPS:-tests probe sft gen hf}"
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
targets="mathrl"
[[ " $STEPS " == *" tests "* ]] && targets="mathrl kernels_gpu_tests model_gpu_tests sampler_gpu_tests train_gpu_tests"
start=$(date +%s)
MATHRL_GPU_TARGETS="$targets" bash scripts/gpu_build.sh build-gpu > "$work/build.log" 2>&1 || { tail -40 "$work/build.log"; exit 1; }
note "build $(( $(date +%s) - start )) s"
# shellcheck disable=SC1091
source /tmp/mathrl-deps/env.sh
bin=build-gpu/mathrl
limit() { local v="LIMIT_$1"; echo "${!v:-$2}"; }
for step in $STEPS; do
  t0=$(date +%s)
  case $step in
    tests)
      for t in kernels_gpu_tests train_gpu_tests model_gpu_tests sampler_gpu_tests; do
        timeout "$(limit TESTS 240)" "build-gpu/tests/${t%%_gpu_tests}/$t" > "$work/$t.txt" 2>&1
        note "$t exit $?: $(grep -h 'PASSED\|FAILED' "$work/$t.txt" | tr '\n' ' ')"
      done ;;
    probe)
      timeout "$(limit PROBE 90)" python3 scripts/gpu_attention_probe.py "$work/attention_probe.json" > "$work/probe.txt" 2>&1
      note "probe exit $?"; cat "$work/probe.txt" >> "$summary" ;;
    sft)  # one bench_sft call per config, each profiled (steps 12-14) into its own folder
      for config in ${SFT_CONFIGS:-8:false}; do
        name="m${config/:/_}"
        MATHRL_PROFILE="$work/profile_$name:12:3" OUT="$work/sft_$name" MATHRL="$bin" SKIP_CEILING=1 CONFIGS="$config" \
          STEPS=20 WARMUP=5 timeout "$(limit SFT 200)" bash scripts/bench_sft.sh > "$work/sft_$name.txt" 2>&1
        note "sft $config exit $?"; tail -1 "$work/sft_$name/sft/results.md" >> "$summary" 2>/dev/null
        [ -f "$work/profile_$name/kernels.md" ] && head -14 "$work/profile_$name/kernels.md" >> "$summary"
        rm -f "$work/sft_$name/sft/train.bin" "$work/sft_$name/sft/train_text.jsonl" "$work/profile_$name/trace.json"
      done ;;
    sweep)  # the CPU-size pipeline sweep (scripts/gpu_cpu_sweep.sh), detached: collect it with MODE=wait
      MODE=start WAIT_S=0 OUT="$work/sweep_start" bash scripts/gpu_cpu_sweep.sh > "$work/sweep_start.txt" 2>&1
      note "sweep started: $(head -1 "$work/sweep_start/sweep.txt")" ;;
    gen)  # preset:G[:flags], flags comma-separated: share (MATHRL_SHARE_PREFIX=1), kernel
      # (MATHRL_DECODE_ATTENTION=kernel: our decode kernel instead of FlashAttention), profile (decode steps 200-204)
      for pg in ${GEN:-0.5b:64 1.5b:8 1.5b:64}; do
        IFS=: read -r preset g flags <<< "$pg"
        name="gen_${preset}_g${g}${flags:+_${flags//,/_}}"
        share=0 attention=flash profile=""
        [[ ",$flags," == *",share,"* ]] && share=1
        [[ ",$flags," == *",kernel,"* ]] && attention=kernel
        [[ ",$flags," == *",profile,"* ]] && profile="$work/profile_$name:200:5"
        MATHRL_SHARE_PREFIX=$share MATHRL_DECODE_ATTENTION=$attention MATHRL_PROFILE="$profile" timeout "$(limit GEN 150)" \
          "$bin" bench generate --preset "$preset" --device cuda --prompts 64 --n "$g" --prompt-len 256 \
          --max-new-tokens 512 --split-timing > "$work/$name.txt" 2>&1
        note "gen $pg exit $?: $(tail -3 "$work/$name.txt" | tr '\n' ' ')"
        [ -n "$profile" ] && [ -f "$work/profile_$name/kernels.md" ] && head -24 "$work/profile_$name/kernels.md" >> "$summary"
        rm -f "$work/profile_$name/trace.json"
      done ;;
    hf)
      for pg in ${HF:-1.5b:64}; do
        timeout "$(limit HF 200)" python3 scripts/hf_generate_bench.py --preset "${pg%%:*}" --device cuda --dtype bfloat16 \
          --prompts 64 --n "${pg##*:}" --prompt-len 256 --max-new-tokens 512 --batch 0 > "$work/hf_${pg/:/_g}.txt" 2>&1
        note "hf $pg exit $?: $(tail -2 "$work/hf_${pg/:/_g}.txt" | tr '\n' ' ')"
      done ;;
  esac
  note "-- $step $(( $(date +%s) - t0 )) s"
done
tar -C "$work" -czf "$OUT/round.tgz" --exclude='*.safetensors' --exclude='*.bin' --exclude='checkpoints' . 2>/dev/null
ls -la "$OUT"
