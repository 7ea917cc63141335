#!/usr/bin/env bash
# Build .venv-bench at the repo root: basenji_tk (CPU TensorFlow) + torch 2.13.0 + tangermeme,
# for benchmarks/bench_one_hot.py only. torch and tangermeme never go into the main .venv.
#
# torch is pinned to 2.13.0 (a local CPU wheel is served for exactly that version; an
# unpinned 'torch' would pull several GB of CUDA packages) and installed BEFORE tangermeme,
# which is then installed under a constraint so that pip cannot replace torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
VENV=.venv-bench
TORCH=torch==2.13.0

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" -e '.[cpu]'
"${PIP[@]}" "$TORCH"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "$TORCH" > "$constraints"
"${PIP[@]}" tangermeme -c "$constraints"
"${PIP[@]}" deeptools -c "$constraints"   # bamCoverage, the peer of bench_bam_cov.py
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch, tangermeme  # noqa: F401  (fails here if either is broken)
print(f"{__import__('sys').prefix}: torch {torch.__version__}, tangermeme {md.version('tangermeme')}")
PY
