#!/usr/bin/env bash
# Everything the [gpu] work needs measured on a CUDA machine, in one command. Run from the
# repository root with the environment installed (`make install`):
#
#     bash scripts/gpu_check.sh a               # part (a), then b, then c: each <= 5 min
#     bash scripts/gpu_check.sh parity bench    # only these steps
#     bash scripts/gpu_check.sh all             # every step, ~15 min on one H100
#
# The device budget is 15 minutes a session, start-up included, at most 10 a command: run the
# parts in order of value, one command each, and stop when the budget is spent. Each part is cut
# at PART_LIMIT seconds (default 300; 1200 for `all`) by `timeout`; what it wrote stays in $OUT.
#   a  info parity   the CUDA parity, CUDA-graph and autocast tests (both placements of backward)
#   b  bench         scratch vs cuDNN, fwd+bwd with recording, float32 and bf16, plain and graphs
#   c  train ddp     a short bf16-mixed trainer=gpu run per cell; one NCCL rank vs one process
#
# Steps (each writes its log and files under $OUT, default ./gpu_check):
#   info    nvidia-smi, torch/CUDA/cuDNN versions
#   parity  the CUDA tests: scratch cells vs torch.nn (cuDNN) in float32/float64, eager and
#           compiled, step by step and as CUDA graphs; bf16/fp16 autocast gradients vs float32
#           and vs cuDNN
#   bench   scripts/bench_cells.py on CUDA, float32 and bf16 autocast, at the reference size
#           (B=64 T=100 I=32 H=128) and the fastrnns size (B=64 T=100 I=H=512), the step-by-step
#           loops and the loops as CUDA graphs (--cuda-graphs, column "graphs"): bench_*.json
#   train   a short real run per cell (rnn gru lstm mingru minlstm indrnn; gru and lstm also
#           with RNNLAB_CUDA_GRAPHS=1), trainer=gpu,
#           bf16-mixed, the gradient-flow monitor every step; checks results.json and
#           gradflow.npz were written once and are finite
#   ddp     the same seed and full-batch steps three ways: one process (trainer=gpu), DDP with
#           one NCCL rank (trainer=ddp trainer.devices=1), and two gloo ranks on the CPU
#           (trainer=ddp_cpu; two ranks cannot share the one GPU: Lightning refuses
#           trainer.devices=[0,0], "Device ID's (GPU) must be unique"); metrics compared in ddp_compare.txt (one process vs one NCCL rank < 1e-3).
#           SINGLE=cpu DDP1=ddp_cpu runs this step on a CPU-only machine (gloo instead of NCCL).
# A dry run of the train step on a CPU-only machine (checks this script, not the GPU):
#     TRAINER=cpu PRECISION=32-true bash scripts/gpu_check.sh train
# Exit status: non-zero if any step failed; the summary is $OUT/summary.txt.
set -uo pipefail

OUT=${OUT:-gpu_check}
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
TRAIN=${TRAIN:-$ROOT/.venv/bin/rnnlab-train}
GPU_TRAINER=${TRAINER:-gpu}
PRECISION=${PRECISION:-bf16-mixed}
STEPS=()
for arg in "$@"; do
  case $arg in
    a) STEPS+=(info parity) ;;
    b) STEPS+=(bench) ;;
    c) STEPS+=(train ddp) ;;
    all) STEPS+=(info parity bench train ddp) ;;
    *) STEPS+=("$arg") ;;
  esac
done
[ ${#STEPS[@]} -eq 0 ] && STEPS=(info parity bench train ddp)
# one limit for the whole command: 5 minutes for a part, more when every step is asked for
if [ ${#STEPS[@]} -ge 5 ]; then PART_LIMIT=${PART_LIMIT:-1200}; else PART_LIMIT=${PART_LIMIT:-300}; fi
START=$SECONDS
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
failed=0

note() { echo "$*" | tee -a "$SUMMARY"; }
run_step() {  # name, step function: runs it, logs to $OUT/<name>.log, records pass/fail and time
  local name=$1; shift
  local t0=$SECONDS
  local left=$((PART_LIMIT - (SECONDS - START)))
  if [ "$left" -le 0 ]; then
    note "SKIP  $name  (PART_LIMIT=${PART_LIMIT} s spent)"
    failed=1
    return
  fi
  # the step runs in a child bash (the functions and settings exported to it) so that
  # `timeout` can stop it and everything it started
  timeout --kill-after=10 "$left" bash -c "$1" > "$OUT/$name.log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then
    note "PASS  $name  ($((SECONDS - t0)) s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    note "TIME  $name  (stopped at PART_LIMIT=${PART_LIMIT} s after $((SECONDS - t0)) s; see $name.log)"
    failed=1
  else
    note "FAIL  $name  ($((SECONDS - t0)) s; see $name.log)"
    failed=1
  fi
}

step_info() {
  nvidia-smi || true
  "$PY" - <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
      torch.backends.cudnn.version())
assert torch.cuda.is_available(), "CUDA is not available"
print("device", torch.cuda.get_device_name(), "bf16", torch.cuda.is_bf16_supported())
EOF
}

step_parity() {
  "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cells_parity.py tests/test_cells_api.py \
    tests/test_cells_autocast.py tests/test_cells_loop_graph.py -k "cuda" -o addopts="" \
    --junitxml="$OUT/parity.xml"
}

step_bench() {
  for autocast in none bf16; do
    "$PY" scripts/bench_cells.py --device cuda --cells rnn,gru,lstm --sizes ref,fastrnns \
      --repeats 30 --autocast "$autocast" --cuda-graphs --json "$OUT/bench_$autocast.json" \
      || return 1
  done
}

_train() {  # dir, overrides...: one run in $OUT/<dir> (its own logs/ tree)
  local dir=$1; shift
  mkdir -p "$OUT/$dir"
  (cd "$OUT/$dir" && RNNLAB_COMPILE=1 "$TRAIN" "$@")
}

_check_run() {  # dir: exactly one results.json and one gradflow.npz, completed, finite metrics
  "$PY" - "$OUT/$1" <<'EOF'
import json, math, sys
from pathlib import Path
import numpy as np
root = Path(sys.argv[1])
results = list(root.rglob("results.json"))
flows = list(root.rglob("gradflow.npz"))
assert len(results) == 1 and len(flows) == 1, (results, flows)
r = json.loads(results[0].read_text())
assert r["status"] == "completed", r.get("error")
bad = {k: v for k, v in r["metrics"].items() if not math.isfinite(v)}
assert not bad, bad
with np.load(flows[0]) as npz:
    for key in npz.files:
        if npz[key].dtype.kind == "f":
            assert np.isfinite(npz[key]).any(), key
print(root.name, "ok:", {k: round(v, 4) for k, v in r["metrics"].items() if k.startswith("test/")},
      f"{r['wall_time_s']} s")
EOF
}

step_train() {
  local cell
  for cell in rnn gru lstm mingru minlstm indrnn; do
    _train "train_$cell" model="$cell" trainer="$GPU_TRAINER" trainer.precision="$PRECISION" data=adding \
      trainer.max_epochs=2 callbacks.gradflow.every_n_steps=1 experiment_name="gpu_$cell" \
      || return 1
    _check_run "train_$cell" || return 1
  done
  # the classic cells once more with their loops as CUDA graphs (rnnlab.cells.loop_graph)
  for cell in gru lstm; do
    RNNLAB_CUDA_GRAPHS=1 _train "train_${cell}_graphs" model="$cell" trainer="$GPU_TRAINER" \
      trainer.precision="$PRECISION" data=adding trainer.max_epochs=2 \
      callbacks.gradflow.every_n_steps=1 experiment_name="gpu_${cell}_graphs" || return 1
    _check_run "train_${cell}_graphs" || return 1
  done
}

step_ddp() {
  # full-batch steps (batch = training set): DDP's sampler order cannot matter, and two ranks'
  # averaged half-batch gradients equal the full batch's, so all three runs take the same steps
  local common=(model=gru data=adding seed=0 data.train_size=256 data.batch_size=256
                data.val_size=128 data.test_size=128 trainer.max_epochs=5
                callbacks.gradflow.every_n_steps=1)
  _train ddp_single "${common[@]}" trainer="${SINGLE:-gpu}" experiment_name=ddp_single || return 1
  _train ddp_nccl1 "${common[@]}" trainer="${DDP1:-ddp}" trainer.devices=1 \
    experiment_name=ddp_nccl1 || return 1
  _train ddp_gloo2 "${common[@]}" trainer=ddp_cpu experiment_name=ddp_gloo2 || return 1
  for d in ddp_single ddp_nccl1 ddp_gloo2; do _check_run "$d" || return 1; done
  "$PY" - "$OUT" <<'EOF' | tee "$OUT/ddp_compare.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
m = {d: json.loads(next((out / d).rglob("results.json")).read_text())["metrics"]
     for d in ("ddp_single", "ddp_nccl1", "ddp_gloo2")}
keys = sorted(k for k in m["ddp_single"] if k.startswith(("test/", "val/", "train/")))
print(f"{'metric':24} {'1 process':>12} {'NCCL 1 rank':>12} {'rel.diff':>9} {'gloo 2 ranks CPU':>17}")
worst = 0.0
for k in keys:
    a, b, c = m["ddp_single"][k], m["ddp_nccl1"].get(k, float("nan")), m["ddp_gloo2"].get(k)
    rel = abs(a - b) / max(abs(a), 1e-12)
    worst = max(worst, rel)
    print(f"{k:24} {a:12.6g} {b:12.6g} {rel:9.2e} {c if c is None else f'{c:17.6g}'}")
worst_cpu = max(abs(m["ddp_single"][k] - m["ddp_gloo2"][k]) / max(abs(m["ddp_single"][k]), 1e-12)
                for k in keys)
print(f"worst relative difference, one process vs one NCCL rank: {worst:.2e}")
print(f"worst relative difference, one GPU process vs two gloo ranks on the CPU: {worst_cpu:.2e}")
# the same full batches, seed and device: only reduction order may differ; the CPU ranks also
# differ in float rounding (on CPU, tests/test_gradflow_run.py holds 2 ranks = 1 process to 1e-5)
assert worst < 1e-3, "one NCCL rank should reproduce the single-process run"
assert worst_cpu < 1e-2, "two gloo ranks should reproduce the single-process run"
EOF
  [ "${PIPESTATUS[0]}" -eq 0 ]
}

export OUT ROOT PY TRAIN GPU_TRAINER PRECISION SUMMARY
export -f note _train _check_run step_info step_parity step_bench step_train step_ddp
for s in "${STEPS[@]}"; do
  case $s in
    info|parity|bench|train|ddp) run_step "$s" "step_$s" ;;
    *) note "unknown step '$s' (allowed: a b c all info parity bench train ddp)"; failed=1 ;;
  esac
done
echo "summary: $SUMMARY"
exit $failed
