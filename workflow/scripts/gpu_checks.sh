#!/usr/bin/env bash
# GPU checks of the training engine on the embedded synthetic dataset, for a machine
# with a CUDA GPU: CUDA training with bf16 and fp16 autocast (GradScaler), evaluation,
# two trainings started at once on one GPU (the second waits for the first: never two
# on one device), DistributedDataParallel under torchrun (NCCL with 2+ GPUs, else 2
# processes with gloo on the one GPU), the training
# speed benchmark (default path vs eager float32) at the paper's input size, and the
# throughput check: in one run of at most 8 minutes, every speed lever (the released eager
# float32 path, TF32, channels-last, bf16, torch.compile, CUDA graphs) at the released batch
# (8) and at a batch that fills the GPU (64) with clips/s, TFLOP/s and the share of the bf16
# peak, then one end-to-end epoch with the real loader (data-wait and GPU-busy shares),
# summarised in results/bench/gpu_summary.json and .md (the report's efficiency table reads
# the JSON).
#
#   bash workflow/scripts/gpu_checks.sh [WORK_DIR]     # default: /tmp/mienet-gpu-checks
#   GPU_CHECKS=throughput bash workflow/scripts/gpu_checks.sh   # only the data and the throughput check
#
# Uses `mienet` when it is on PATH, else `python3 -m mienet` with src/ on PYTHONPATH. Run it
# from the repository root (the summary goes to results/bench/).
# Prints one line per check; the logs stay in WORK_DIR. Takes about 11 minutes on an H200.
set -uo pipefail
W=${1:-/tmp/mienet-gpu-checks}
mkdir -p "$W"
export PYTHONUNBUFFERED=1
if command -v mienet >/dev/null; then M=(mienet); else export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"; M=(python3 -m mienet); fi
D="$W/data"
step() { echo "== $*"; }
fail=0
to_file() { # out, command...: the command's standard output into out (its errors in the check's log)
    local out=$1; shift
    "$@" >"$out"
}
check() { # name, command...
    local name=$1; shift
    local t0=$SECONDS
    if "$@" >"$W/$name.log" 2>&1; then echo "ok   $name ($((SECONDS - t0)) s)"; else echo "FAIL $name ($((SECONDS - t0)) s): see $W/$name.log"; tail -5 "$W/$name.log"; fail=1; fi
}
nvidia-smi -L || { echo "no NVIDIA GPU here"; exit 1; }
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

step data
check synth "${M[@]}" synth "$D/videos" --classes 8 --clips-per-class 40 --frames 40 --size 128 -j 8
check extract "${M[@]}" extract-frames "$D/videos" -o "$D/frames" -j 8 --no-progress
check annotations "${M[@]}" make-annotations --format folder --videos "$D/videos" --frames "$D/frames" -o "$D/annotations"

if [ "${GPU_CHECKS:-all}" != throughput ]; then
TRAIN=("${M[@]}" train --annotations "$D/annotations" --root "$D" --variant mienet --arch resnet18 --segments 3
       --size 112 --epochs 3 --lr-steps 2 --batch-size 16 --lr 0.002 --workers 4 --device cuda --no-progress)
step "CUDA training"
check train_bf16 "${TRAIN[@]}" --amp bf16 --out "$W/runs/bf16"
check train_fp16 "${TRAIN[@]}" --amp fp16 --out "$W/runs/fp16"
check train_fp32 "${TRAIN[@]}" --amp off --channels-last off --out "$W/runs/fp32"
for r in bf16 fp16 fp32; do
    python3 - "$W/runs/$r" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(f"{sys.argv[1]}/log.csv")))
print(f"     {sys.argv[1].rsplit('/', 1)[1]}: " + "; ".join(
    f"epoch {r['epoch']} loss {float(r['train_loss']):.3f} val top-1 {float(r['val_top1']):.2f} ({float(r['seconds']):.1f} s)" for r in rows))
PY
done
check evaluate_cuda "${M[@]}" evaluate --checkpoint "$W/runs/bf16/checkpoints/best.pt" --annotations "$D/annotations" \
    --root "$D" --split val --out "$W/eval_bf16"

step "two trainings at once on one GPU"
( "${TRAIN[@]}" --epochs 1 --out "$W/runs/first" >"$W/first.log" 2>&1; date +%s.%N >"$W/first.end" ) &
sleep 1
( date +%s.%N >"$W/second.start"; "${TRAIN[@]}" --epochs 1 --out "$W/runs/second" >"$W/second.log" 2>&1 ) &
wait
for f in first second; do echo "     $f: $(grep -ho "all .* waiting\|GPU .* free now.*\|training [a-z_]*/[a-z0-9]* on cuda[:0-9]*" "$W/$f.log" | tr "\n" ";")"; done

NGPU=$(nvidia-smi -L | wc -l)
if [ "$NGPU" -ge 2 ]; then NPROC=$NGPU; export MIENET_DIST_BACKEND=nccl
else NPROC=2; export MIENET_DIST_BACKEND=gloo; fi   # NCCL refuses two ranks on one GPU
step "DistributedDataParallel (torchrun, $NPROC processes on $NGPU GPU(s), $MIENET_DIST_BACKEND)"
check ddp python3 -m torch.distributed.run --standalone --nproc_per_node "$NPROC" -m mienet train \
    --annotations "$D/annotations" --root "$D" --variant mienet --arch resnet18 --segments 3 --size 112 \
    --epochs 2 --lr-steps 1 --workers 2 --device cuda --no-progress --out "$W/runs/ddp"
grep -h "world size\|epoch 2/2" "$W/ddp.log" | cut -c1-160
unset MIENET_DIST_BACKEND

step "speed: mienet ResNet-50, T=3, 224 px, batch 8"
check bench_r50 timeout 240 "${M[@]}" bench train --variant mienet --arch resnet50 --segments 3 --size 224 --batch 8 --steps 20 --warmup 5 --device cuda --compare --no-compile
cat "$W/bench_r50.log" | tail -15
fi

step "throughput: every lever at batch 8 and 64, end to end with the loader (at most 8 minutes)"
B="$W/bench"
mkdir -p "$B" results/bench
SHAPE=(--variant mienet --arch resnet50 --segments 3 --size 224)
check bench_compare to_file "$B/train.json" timeout 400 "${M[@]}" bench train "${SHAPE[@]}" --batch 8 \
    --fill-batch 64 --steps 8 --warmup 3 --device cuda --compare --json
check bench_e2e to_file "$B/e2e.json" timeout 60 "${M[@]}" bench e2e --list "$D/annotations/train.txt" \
    --root "$D" --variant mienet --arch resnet50 --segments 3 --size 112 --batch 8 --workers 0 2 4 8 \
    --trial-batches 8 --max-steps 40 --device cuda --json
step "the paper's input (T=8, L=4, 224 px, 456x256 frames): loader per worker, then end to end with CPU and GPU decode"
check loader_paper to_file "$B/loader_paper.json" timeout 120 bash workflow/scripts/bench_loader_paper.sh "$W/loader" 8 \
    --batches 20 --train-rate 1000 --json
LP=(--list "$W/loader/train.txt" --root "$W/loader" --variant mienet --arch resnet50 --segments 8 --size 224
    --batch 8 --workers 8 --trial-batches 4 --max-steps 30 --device cuda --json)
check e2e_paper_cpu_decode to_file "$B/e2e_paper_cpu.json" timeout 90 "${M[@]}" bench e2e "${LP[@]}" --decode cpu
check e2e_paper_gpu_decode to_file "$B/e2e_paper_gpu.json" timeout 90 "${M[@]}" bench e2e "${LP[@]}" --decode gpu
python3 - "$B" <<'PY'
import json, sys
from pathlib import Path
b = Path(sys.argv[1])
for name in ("loader_paper", "e2e_paper_cpu", "e2e_paper_gpu"):
    f = b / f"{name}.json"
    if not f.is_file() or not f.stat().st_size:
        print(f"     {name}: no result"); continue
    r = json.loads(f.read_text())
    if name == "loader_paper":
        print(f"     loader: {r['clips_per_s_per_worker']:.1f} clips/s per worker ({r['workers']} workers: "
              f"{r['clips_per_s']:.1f}); uint8/float {r.get('uint8_over_float')}; workers per GPU at 1000 clips/s: "
              f"{r.get('workers_per_gpu')}")
    else:
        print(f"     {name}: {r['clips_per_s']:.1f} clips/s, data wait {100 * r['data_wait_share']:.1f} %, "
              f"GPU busy {100 * (r['gpu_busy_share'] or 0):.1f} %, workers {r['workers']}")
PY
cp "$B/loader_paper.json" results/bench/loader_paper_gpu_node.json 2>/dev/null || true
E2E=()
[ -s "$B/e2e.json" ] && E2E=(--e2e "$B/e2e.json")
if [ -s "$B/train.json" ]; then
    check bench_summary "${M[@]}" bench summary --train "$B/train.json" ${E2E[@]+"${E2E[@]}"} --out results/bench/gpu_summary
    cat results/bench/gpu_summary.md
else
    echo "FAIL bench_summary: no $B/train.json"; fail=1
fi
exit $fail
