#!/usr/bin/env bash
# One-command environment for declip-mm.  Creates ./.venv (or $DECLIP_VENV) and installs the pinned
# OpenMMLab stack: torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 built from source
# with ops (C++20 compiler shim), mmdet 3.3.0, mmsegmentation 1.2.2, open_clip_torch 3.3.0, timm, pycocotools,
# lvis, pytest, and declip_mm itself.
# mmcv's CUDA ops are built when torch sees a GPU, or when DECLIP_CUDA_OPS=1 (DECLIP_CUDA_OPS=0: never). nvcc
# comes from the system (CUDA_HOME, /usr/local/cuda, PATH) or, when none matches torch's CUDA 13, from PyPI's
# nvidia-cuda-nvcc/-crt/-cccl/nvidia-nvvm wheels (tools/cuda_toolkit.sh); TORCH_CUDA_ARCH_LIST is honoured.
# A CUDA build of mmcv takes about 50 min on 2 CPU cores for one architecture (~7 min on 16), the CPU-only one 15-20.
# Idempotent: a stamp of the requirement files short-circuits a second run (~1 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DECLIP_VENV:-$ROOT/.venv}"
PY="${DECLIP_PYTHON:-python3.11}"
STAMP="$VENV/.declip_stamp"
CUDA_OPS="${DECLIP_CUDA_OPS:-auto}"
case "$CUDA_OPS" in auto|0|1) ;; *) echo "[bootstrap] DECLIP_CUDA_OPS must be 0, 1 or unset, got '$CUDA_OPS'" >&2; exit 1 ;; esac
gpu_seen=0; command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && gpu_seen=1
want="$( (cat "$ROOT/tools/bootstrap.sh" "$ROOT/tools/cuda_toolkit.sh" "$ROOT/requirements/"*.txt "$ROOT/setup.py";
          echo "cuda_ops=$CUDA_OPS gpu=$gpu_seen arch=${TORCH_CUDA_ARCH_LIST:-}") | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi
log() { echo "[bootstrap] $*" >&2; }
command -v "$PY" >/dev/null || { log "need $PY on PATH (or set DECLIP_PYTHON)"; exit 1; }
[[ -x "$VENV/bin/python" ]] || { log "creating virtualenv $VENV"; "$PY" -m venv "$VENV"; }
# pip on some machines warns about every missing local index folder; keep the log readable
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
log "installing torch 2.14.1 + torchvision 0.29.1"
pip_install torch==2.14.1 torchvision==0.29.1
log "installing build tools"
pip_install "setuptools<81" ninja wheel "mmengine==0.10.7"
want_cuda=0
if [[ "$CUDA_OPS" == 1 ]] || { [[ "$CUDA_OPS" == auto ]] && \
    "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }; then
  want_cuda=1
fi
# an installed mmcv is kept when it is 2.1.0 with ops, and has the CUDA ops if they are wanted
mmcv_ok="import mmcv, mmcv.ops, sys; assert mmcv.__version__ == '2.1.0'"
[[ $want_cuda == 1 ]] && mmcv_ok="$mmcv_ok; assert mmcv.ops.get_compiling_cuda_version() != 'not available'"
if ! "$VENV/bin/python" -c "$mmcv_ok" 2>/dev/null; then
  export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
  export DECLIP_REAL_CXX="${CXX:-g++}" CXX="$ROOT/tools/cxx20.sh"
  cuda_pip=()
  if [[ $want_cuda == 1 ]]; then
    cuda_env="$("$ROOT/tools/cuda_toolkit.sh" "$VENV/bin/python" --install)" \
      || { log "DECLIP_CUDA_OPS: no nvcc matching torch's CUDA (see above)"; exit 1; }
    eval "$cuda_env"
    export PATH="$VENV/bin:$PATH"  # ninja: torch passes PYTORCH_NVCC (our shim) only on its ninja path
    cuda_pip=(--no-cache-dir)  # never reuse a cached CPU-only mmcv wheel (nor an installed one:)
    "$VENV/bin/python" -m pip uninstall -y -q mmcv >/dev/null 2>&1 || true
    log "building mmcv CUDA ops for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST with $CUDA_HOME/bin/nvcc:"
    log "about 50 min on 2 CPU cores per architecture (not hung), ~7 min with 16 cores (MAX_JOBS)."
  else
    log "building mmcv 2.1.0 with ops from source: the FIRST run takes ~15-20 min on 2 cores (not hung);"
    log "pip caches the wheel, later installs take seconds."
  fi
  log "Build log: $VENV/mmcv-build.log"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-build-isolation -v ${cuda_pip[@]+"${cuda_pip[@]}"} \
      mmcv==2.1.0 >"$VENV/mmcv-build.log" 2>&1; then
    tail -40 "$VENV/mmcv-build.log" >&2; log "mmcv build failed (log above: $VENV/mmcv-build.log)"; exit 1
  fi
fi
log "installing mmdet, mmseg, open_clip, timm, metrics, pytest"
pip_install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/tests.txt"
log "installing declip_mm (editable)"
pip_install --no-build-isolation --no-deps -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, open_clip, timm, pycocotools, lvis" \
  || { log "import check of the installed stack failed"; exit 1; }
if [[ $want_cuda == 1 ]]; then
  "$VENV/bin/python" -c "import mmcv.ops as o; v = o.get_compiling_cuda_version(); assert v != 'not available'; \
print('[bootstrap] mmcv CUDA ops compiled with CUDA', v)" || { log "mmcv was built without its CUDA ops"; exit 1; }
fi
echo "$want" > "$STAMP"
log "environment ready: $VENV"
