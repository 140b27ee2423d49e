#!/usr/bin/env bash
# The GPU table of docs/benchmarks.md: one script, bf16, random weights (no checkpoints or datasets needed).
#
#   bash tools/gpu_bench.sh [OUT_DIR]        # default work_dirs/gpu_bench/<date>; ~15 min on an H100
#
# Measures, each with images/s (or s/image), peak memory, FLOPs per image and MFU (tools/benchmark.py):
#   1. DeCLIP distillation step, EVA02-B/16 + DINOv2-B, official 560/490 and paper 1024/896, the largest batch of
#      BATCHES that fits (eager, then with --compile at that batch);
#   2. F-ViT B/16 OV-COCO test at 640 (batch 1 and 8);
#   3. CAT-Seg B/16 ADE-150 test (4 sliding 384 windows + global view) at 640 x 853;
#   4. the training-free DeCLIP segmentor (ADE-150) at 640 x 853;
#   5. the distillation data pipeline on this host's CPUs (workers 0 / 4 / 8).
# Raw JSON and logs stay in OUT_DIR; summary.md is the table to paste into docs/benchmarks.md.
# Unknown GPUs: PEAK_TFLOPS=<dense bf16 TFLOP/s> bash tools/gpu_bench.sh
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python}"
OUT="${1:-work_dirs/gpu_bench/$(date -u +%Y%m%d-%H%M)}"
mkdir -p "$OUT"
PEAK=()
[[ -n "${PEAK_TFLOPS:-}" ]] && PEAK=(--peak-tflops "$PEAK_TFLOPS")
BATCHES="${BATCHES:-64 48 32 24 16 12 8 4 2 1}"
B="$PY tools/benchmark.py"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
"$PY" -c "import torch, mmcv.ops as o; print(torch.__version__, torch.cuda.get_device_name(), 'mmcv CUDA', o.get_compiling_cuda_version())" \
  | tee "$OUT/env.txt"

run() {  # name, then the benchmark command line; JSON to OUT/name.json, log to OUT/name.log
  local name="$1"; shift
  echo "== $name: $*" | tee "$OUT/$name.log"
  $B "$@" --json "$OUT/$name.json" "${PEAK[@]}" >>"$OUT/$name.log" 2>&1
  local rc=$?
  tail -12 "$OUT/$name.log"
  return $rc
}

distill_largest() {  # name, config, size args...: the largest batch of BATCHES that fits, then compiled
  local name="$1" cfg="$2"; shift 2
  for b in $BATCHES; do
    if run "${name}_b$b" distill "$cfg" --random-weights --dtype bfloat16 --batch-size "$b" --iters 10 --warmup 3 "$@"; then
      cp "$OUT/${name}_b$b.json" "$OUT/$name.json"
      run "${name}_compile_b$b" distill "$cfg" --random-weights --dtype bfloat16 --batch-size "$b" --iters 10 \
        --warmup 5 --compile "$@" && cp "$OUT/${name}_compile_b$b.json" "$OUT/${name}_compile.json"
      return 0
    fi
    grep -q "out of memory\|OutOfMemoryError" "$OUT/${name}_b$b.log" || { echo "$name failed (not OOM)"; return 1; }
  done
}

distill_largest distill_560 configs/declip/declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py
distill_largest distill_1024 configs/declip/declip_eva02-b16_dinov2-b-paper_8xb2-6e_coco-1024.py --image-size 768 1024
run fvit_640_b1 det configs/fvit/fvit_eva02-b16-declip_8xb8-3e_ov-coco-640.py --random-weights --amp --batch 1 --num-images 100
run fvit_640_b8 det configs/fvit/fvit_eva02-b16-declip_8xb8-3e_ov-coco-640.py --random-weights --amp --batch 8 --num-images 200
run ovdquo_1024_b1 det configs/ovdquo/ovdquo_eva02-b16-declip_8xb4-35e_ov-lvis-1024.py --random-weights --amp --batch 1 --num-images 50
run ovdquo_896_b1 det configs/ovdquo/ovdquo_eva02-l14-336-declip_8xb4-35e_ov-lvis-896.py --random-weights --amp --batch 1 --num-images 50
run catseg_ade150 seg configs/catseg/catseg_eva02-b16-declip_4xb1-80k_ade150.py --random-weights --amp --size 640 853 --iters 30
run zeroshot_ade150 seg configs/zeroshot_seg/trainingfree_eva02-b16-declip_ade150-448.py --random-weights --amp --size 640 853 --iters 30
run pipeline pipeline configs/declip/declip_eva02-b16_dinov2-b_4xb4-6e_coco-560.py --num-images 96 --workers 0 4 8 \
  --gpu-images-per-s "$("$PY" -c "import json; print(json.load(open('$OUT/distill_560.json'))['images_per_s'])" 2>/dev/null || echo 40)"

"$PY" - "$OUT" <<'EOF'
import datetime, json, os, sys
out = sys.argv[1]
def load(n):
    p = os.path.join(out, n + '.json')
    return json.load(open(p)) if os.path.isfile(p) else None
env = open(os.path.join(out, 'env.txt')).read().strip()
rows = ['| measurement | batch | images/s | s/image | peak mem (GiB) | GFLOP/image | MFU |', '|---|---|---|---|---|---|---|']
def pct(x): return f'{100 * x:.1f} %' if x is not None else 'n/a'
def gf(x): return f'{x / 1e9:,.0f}' if x else 'n/a'
for n, label in (('distill_560', 'distillation step 560/490'), ('distill_560_compile', '  + torch.compile'),
                 ('distill_1024', 'distillation step 1024/896'), ('distill_1024_compile', '  + torch.compile')):
    r = load(n)
    if r:
        rows.append(f"| {label} | {r['batch']} | {r['images_per_s']:.1f} | {1 / r['images_per_s']:.3f} | "
                    f"{r['peak_mem_gib']:.1f} | {gf(r['total_flops_per_image'])} | {pct(r['mfu'])} |")
for n, label in (('fvit_640_b1', 'F-ViT B/16 OV-COCO test 640'), ('fvit_640_b8', 'F-ViT B/16 OV-COCO test 640'),
                 ('ovdquo_1024_b1', 'OV-DQUO B/16 OV-LVIS test 1024'), ('ovdquo_896_b1', 'OV-DQUO L/14 OV-LVIS test 896')):
    r = load(n)
    if r:
        rows.append(f"| {label} | {r['batch']} | {r['images_per_s']:.1f} | {1 / r['images_per_s']:.3f} | "
                    f"{r['peak_memory_mb'] / 1024:.1f} | {gf(r['flops_per_image'])} | {pct(r['mfu'])} |")
for n, label in (('catseg_ade150', 'CAT-Seg B/16 ADE-150 test'), ('zeroshot_ade150', 'training-free DeCLIP ADE-150')):
    r = load(n)
    if r:
        rows.append(f"| {label} | {r['batch']} | {r['images_per_s']:.2f} | {r['s_per_image']:.3f} | "
                    f"{r.get('peak_gpu_mem_mib', 0) / 1024:.1f} | {gf(r['flops_per_image'])} | {pct(r['mfu'])} |")
p = load('pipeline')
text = f'GPU: {env} ({datetime.date.today()})\n\n' + '\n'.join(rows) + '\n'
if p:
    text += (f"\nData pipeline on {p['cpu_count']} CPUs: {p['per_worker_images_per_s']:.1f} images/s per worker; "
             + ', '.join(f"{r['workers']} workers {r['images_per_s'] or 0:.1f} images/s" for r in p['loader']) + '\n')
open(os.path.join(out, 'summary.md'), 'w').write(text)
print(text)
EOF
echo "raw logs and JSON: $OUT"
