#!/usr/bin/env bash
# One-command environment for declip-mm.  Creates ./.venv (or $DECLIP_VENV) and installs the pinned
# OpenMMLab stack: torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 built from source
# with ops (C++20 compiler shim, CUDA ops when nvcc and a GPU are present), mmdet 3.3.0,
# mmsegmentation 1.2.2, open_clip_torch 3.3.0, timm, pycocotools, lvis, pytest, and declip_mm itself.
# Idempotent: a stamp of the requirement files short-circuits a second run (~1 s).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DECLIP_VENV:-$ROOT/.venv}"
PY="${DECLIP_PYTHON:-python3.11}"
STAMP="$VENV/.declip_stamp"
want="$(cat "$ROOT/tools/bootstrap.sh" "$ROOT/requirements/"*.txt "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)"
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
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}"
  export DECLIP_REAL_CXX="${CXX:-g++}" CXX="$ROOT/tools/cxx20.sh"
  if command -v nvcc >/dev/null && "$VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    export FORCE_CUDA=1; log "CUDA + nvcc found: building mmcv CUDA ops too"
  fi
  log "building mmcv 2.1.0 with ops from source: the FIRST run takes ~15-20 min on 2 cores (not hung);"
  log "pip caches the wheel, later installs take seconds. Build log: $VENV/mmcv-build.log"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-build-isolation -v \
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
echo "$want" > "$STAMP"
log "environment ready: $VENV"
