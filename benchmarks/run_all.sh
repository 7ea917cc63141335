#!/usr/bin/env bash
# Run the four benchmarks; each prints a table and a final ratio line (goal met or not).
#   bench_one_hot.py       with .venv-bench/bin/python (torch 2.13.0 + tangermeme; built here if absent)
#   bench_deepshap_tangermeme.py  with .venv-bench/bin/python: DeepSHAP and shuffles against tangermeme
#   bench_make_targets.py  with .venv/bin/python (or $MAIN_PYTHON), profile -> benchmarks/out/
#   bench_reader.py        with .venv/bin/python (or $MAIN_PYTHON); trains demo.json and basenji2018.json
#   bench_train.py         with .venv/bin/python (or $MAIN_PYTHON); generated input, needs no data
#   bench_bam_cov.py       with .venv/bin/python; needs benchmarks/make_bench_bam.py's BAMs (samtools,
#                          bowtie2 from Debian) and deepTools bamCoverage (pip, in .venv-bench)
# The data benchmarks skip (exit 0, "skipped: ...") when ../shared/data is absent. bench_train.py
# --jit adds the XLA figures (about 3 more minutes on 2 cores). Copy the figures into
# benchmarks/RESULTS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${MAIN_PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
    echo "run_all.sh: $PY not found: run 'make install' first (or set MAIN_PYTHON)" >&2
    exit 2
fi
if [ ! -x .venv-bench/bin/python ]; then
    echo "== building .venv-bench (benchmarks/setup_env.sh, a few minutes)"
    bash benchmarks/setup_env.sh
fi
echo "== $(date -I) on $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB"
echo; echo "== bench_one_hot.py"
.venv-bench/bin/python benchmarks/bench_one_hot.py
echo; echo "== bench_deepshap_tangermeme.py (.venv-bench; GENERATED planted set from data/, trains a small model)"
.venv-bench/bin/python benchmarks/bench_deepshap_tangermeme.py
echo; echo "== bench_make_targets.py"
"$PY" benchmarks/bench_make_targets.py --profile
echo; echo "== bench_reader.py"
"$PY" benchmarks/bench_reader.py
echo; echo "== bench_train.py"
"$PY" benchmarks/bench_train.py
echo; echo "== bench_bam_cov.py"
"$PY" benchmarks/bench_bam_cov.py
echo; echo "== bench_sed.py (needs demo_out/model from 'make demo')"
"$PY" benchmarks/bench_sed.py
echo; echo "== bench_ism.py (random-weight models; no data)"
"$PY" benchmarks/bench_ism.py
echo; echo "== ism_ctcf_motif.py (needs demo_out/model from 'make demo' and ../shared/data/motifs)"
"$PY" benchmarks/ism_ctcf_motif.py -o benchmarks/out/ism_ctcf
echo; echo "== bench_hyper.py (synthetic objective; no data)"
"$PY" benchmarks/bench_hyper.py
echo; echo "== bench_regions.py (needs ../shared/data: the whole chr20)"
"$PY" benchmarks/bench_regions.py
echo; echo "== bench_pairs.py (needs ../shared/data: the chr20 TF sites)"
"$PY" benchmarks/bench_pairs.py
