#!/usr/bin/env bash
# Compiler shim for building mmcv 2.1.0 against torch 2.14 (and, for the CUDA ops, CUDA 13).
#
# torch 2.14's headers need C++20; mmcv's setup.py hard-codes -std=c++14/-std=c++17 for both the
# host compiler and nvcc. The shim rewrites that flag and calls the real compiler.
#
#   C++:  CXX=tools/cxx20.sh                          -> ${DECLIP_REAL_CXX:-g++} <args>
#   CUDA: PYTORCH_NVCC="tools/cxx20.sh --nvcc NVCC"   -> NVCC <args>
#
# In nvcc mode it also fixes what CUDA 13 breaks for mmcv 2.1.0:
#   * -std=c++17 would be forwarded to the host compiler as well, and torch's headers fail under it;
#   * torch's ATen/cuda headers include cuBLAS/cuSPARSE/cuSOLVER headers, which a CUDA 13 install
#     made of the nvcc wheels (or a minimal toolkit) does not ship: torch's own `nvidia/cu13`
#     packages do. DECLIP_CUDA_EXTRA_INCLUDE (':'-separated) is appended with -isystem, after the
#     toolkit's own include dir, so the toolkit's cuda_runtime headers still win;
#   * the host compiler nvcc drives is pinned with -ccbin to ${DECLIP_REAL_CXX:-g++} unless the
#     caller already chose one (torch passes $CC when set).
set -u
std_flag() {
  case "$1" in
    -std=c++14|-std=c++17|-std=gnu++14|-std=gnu++17) echo "-std=c++20" ;;
    *) echo "$1" ;;
  esac
}
if [[ "${1:-}" == "--nvcc" ]]; then
  real="${2:?usage: cxx20.sh --nvcc /path/to/nvcc <args>}"
  shift 2
  args=()
  have_ccbin=0
  for a in "$@"; do
    case "$a" in
      -ccbin|-ccbin=*|--compiler-bindir|--compiler-bindir=*) have_ccbin=1 ;;
    esac
    args+=("$(std_flag "$a")")
  done
  [[ $have_ccbin == 1 ]] || args+=(-ccbin "${DECLIP_REAL_CXX:-g++}")
  IFS=':' read -r -a extra <<< "${DECLIP_CUDA_EXTRA_INCLUDE:-}"
  for d in "${extra[@]}"; do
    [[ -n "$d" ]] && args+=(-isystem "$d")
  done
  exec "$real" "${args[@]}"
fi
args=()
for a in "$@"; do
  args+=("$(std_flag "$a")")
done
IFS=':' read -r -a extra <<< "${DECLIP_CUDA_EXTRA_INCLUDE:-}"
for d in "${extra[@]}"; do
  [[ -n "$d" ]] && args+=(-isystem "$d")
done
exec "${DECLIP_REAL_CXX:-g++}" "${args[@]}"
