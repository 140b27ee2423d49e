#!/usr/bin/env bash
# Environment for compiling CUDA extensions (mmcv 2.1.0's ops) against a virtualenv's torch.
#
#   eval "$(tools/cuda_toolkit.sh VENV/bin/python [--install])"
#
# Prints `export` lines for CUDA_HOME, PYTORCH_NVCC (nvcc behind the tools/cxx20.sh shim), FORCE_CUDA=1,
# DECLIP_CUDA_EXTRA_INCLUDE (torch's nvidia/cuXX headers: cuBLAS/cuSPARSE/cuSOLVER) and, when unset,
# TORCH_CUDA_ARCH_LIST (the visible GPUs' architectures, else every architecture torch itself was built for).
#
# nvcc comes from $CUDA_HOME / $CUDA_PATH, /usr/local/cuda or `nvcc` on PATH when its CUDA major version equals
# torch's (DECLIP_CUDA_FROM=pypi skips these); else from the nvidia/cuXX packages on sys.path when they hold nvcc;
# else, with --install, from the PyPI wheels nvidia-cuda-nvcc / nvidia-cuda-crt / nvidia-cuda-cccl /
# nvidia-nvvm at torch's CUDA minor version (e.g. 13.0.*), installed into the venv next to torch's own nvidia/cuXX
# runtime packages. Exits 1 (with a message on stderr) when no usable nvcc is found.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${1:?usage: cuda_toolkit.sh VENV/bin/python [--install]}"
INSTALL="${2:-}"
log() { echo "[cuda] $*" >&2; }

# torch's CUDA version, the nvidia/cuXX package dirs on sys.path (the first one holding bin/nvcc, and every
# include dir), torch's compiled architectures and the visible GPUs' ones
probe() {
"$PY" - <<'EOF2'
import importlib.util, os, torch
cu = torch.version.cuda or 'none'
nvcc_dir, incs = 'none', []
spec = importlib.util.find_spec('nvidia')
if spec is not None and cu != 'none':
    for p in spec.submodule_search_locations:
        d = os.path.join(p, 'cu' + cu.split('.')[0])
        if os.path.isdir(os.path.join(d, 'include')):
            incs.append(os.path.join(d, 'include'))
        if nvcc_dir == 'none' and os.path.isfile(os.path.join(d, 'bin', 'nvcc')):
            nvcc_dir = d
archs = ';'.join(f'{a[3:-1]}.{a[-1]}' for a in torch.cuda.get_arch_list() if a.startswith('sm_')) or 'none'
vis = ';'.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})) \
    if torch.cuda.is_available() else 'none'
print(cu, nvcc_dir, ':'.join(incs) or 'none', archs, vis)
EOF2
}
read -r TORCH_CUDA PIP_NVCC_DIR CU_INCLUDES ARCHS VISIBLE < <(probe)
if [[ "$TORCH_CUDA" == none ]]; then
  log "this torch is a CPU-only build (torch.version.cuda is None): CUDA ops cannot be built against it"; exit 1
fi
MAJOR="${TORCH_CUDA%%.*}"

nvcc_release() { "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p'; }
usable() {  # $1 = candidate CUDA_HOME: nvcc of torch's CUDA major version (+ cuda_runtime.h unless $2 = pip)
  [[ -n "$1" && -x "$1/bin/nvcc" ]] || return 1
  [[ "${2:-}" == pip || -f "$1/include/cuda_runtime.h" ]] || return 1
  local rel; rel="$(nvcc_release "$1/bin/nvcc")"
  [[ "${rel%%.*}" == "$MAJOR" ]] || { log "skipping $1/bin/nvcc: CUDA $rel, torch needs $MAJOR.x"; return 1; }
}
fix_pip_layout() {  # the wheels' nvcc.profile wants TOP/targets/<arch>-linux/{include,lib}; the linker libcudart.so
  local top="$1" arch_dir so
  arch_dir="$top/targets/$(uname -m)-linux"
  mkdir -p "$arch_dir"
  [[ -e "$arch_dir/include" ]] || ln -s ../../include "$arch_dir/include"
  [[ -e "$arch_dir/lib" ]] || ln -s ../../lib "$arch_dir/lib"
  [[ -e "$top/lib64" ]] || ln -s lib "$top/lib64"
  if [[ ! -e "$top/lib/libcudart.so" ]]; then
    so="$(cd "$top/lib" && ls libcudart.so.* 2>/dev/null | head -1 || true)"
    [[ -n "$so" ]] && ln -s "$so" "$top/lib/libcudart.so"
  fi
  return 0
}

CUDA_HOME_FOUND=""
if [[ "${DECLIP_CUDA_FROM:-}" != pypi ]]; then  # DECLIP_CUDA_FROM=pypi: skip the system toolkit
  on_path="$(command -v nvcc || true)"
  for cand in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda \
      "${on_path:+$(dirname "$(dirname "$(readlink -f "$on_path")")")}"; do
    if usable "$cand"; then CUDA_HOME_FOUND="$cand"; break; fi
  done
fi
if [[ -z "$CUDA_HOME_FOUND" && "$PIP_NVCC_DIR" == none ]]; then
  if [[ "$INSTALL" != --install ]]; then
    log "no nvcc for CUDA $MAJOR.x found (CUDA_HOME, /usr/local/cuda, PATH, nvidia/cu$MAJOR); rerun with --install"
    exit 1
  fi
  log "installing nvcc $TORCH_CUDA.* from PyPI (nvidia-cuda-nvcc, -crt, -cccl, nvidia-nvvm) into the venv"
  "$PY" -m pip install --disable-pip-version-check -q "nvidia-cuda-nvcc==$TORCH_CUDA.*" \
    "nvidia-cuda-crt==$TORCH_CUDA.*" "nvidia-cuda-cccl==$TORCH_CUDA.*" "nvidia-nvvm==$TORCH_CUDA.*" >&2
  read -r TORCH_CUDA PIP_NVCC_DIR CU_INCLUDES ARCHS VISIBLE < <(probe)
fi
if [[ -z "$CUDA_HOME_FOUND" ]]; then
  fix_pip_layout "$PIP_NVCC_DIR"
  usable "$PIP_NVCC_DIR" pip || { log "the PyPI nvcc in $PIP_NVCC_DIR is not usable"; exit 1; }
  CUDA_HOME_FOUND="$PIP_NVCC_DIR"
fi

log "nvcc: $CUDA_HOME_FOUND/bin/nvcc (CUDA $(nvcc_release "$CUDA_HOME_FOUND/bin/nvcc")), torch CUDA $TORCH_CUDA"
echo "export CUDA_HOME='$CUDA_HOME_FOUND'"
echo "export FORCE_CUDA=1"
echo "export PYTORCH_NVCC='$ROOT/tools/cxx20.sh --nvcc $CUDA_HOME_FOUND/bin/nvcc'"
extra=""
IFS=':' read -r -a incs <<< "$CU_INCLUDES"
for d in "${incs[@]}"; do
  [[ "$d" == none || "$d" == "$CUDA_HOME_FOUND/include" ]] || extra="${extra:+$extra:}$d"
done
[[ -z "$extra" ]] || echo "export DECLIP_CUDA_EXTRA_INCLUDE='$extra'"
if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
  if [[ "$VISIBLE" != none ]]; then
    arch="$VISIBLE"
  else
    arch="$ARCHS+PTX"
    log "no GPU visible: building for every architecture torch was built for ($arch); this multiplies the build"
    log "time: set TORCH_CUDA_ARCH_LIST (e.g. 9.0 for H100/H200, 8.0 A100, 8.9 L40S/RTX 4090) to build one"
  fi
  echo "export TORCH_CUDA_ARCH_LIST='$arch'"
fi
