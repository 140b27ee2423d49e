#!/usr/bin/env bash
# The README's main command: bootstrap on first use, then run the embedded default end to end (CPU, minutes).
#   bash tools/run_default.sh [--out-dir outputs/default]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/bootstrap.sh"
cd "$ROOT"
exec "${DECLIP_VENV:-$ROOT/.venv}/bin/python" "$ROOT/tools/run_default.py" "$@"
