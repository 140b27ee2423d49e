#!/usr/bin/env bash
# C++ compiler shim for building mmcv 2.1.0 against torch 2.14: torch's headers need C++20,
# mmcv's setup.py hard-codes -std=c++14/-std=c++17. Rewrite the flag and call the real compiler.
args=()
for a in "$@"; do
  case "$a" in
    -std=c++14|-std=c++17|-std=gnu++14|-std=gnu++17) args+=("-std=c++20") ;;
    *) args+=("$a") ;;
  esac
done
exec "${DECLIP_REAL_CXX:-g++}" "${args[@]}"
