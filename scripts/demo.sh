#!/usr/bin/env bash
# The demo pipeline on data/: each step is one basenji_tk script. Later issues add
# variant scoring and more to this chain.
set -euo pipefail
out=${1:-demo_out}
cd "$(dirname "$0")/.."
mkdir -p "$out"

echo "== make_targets.py: 20 Mb of GRCh37 chr20, CTCF / CpG / TSS tracks -> $out/data"
make_targets.py -l 16384 -w 128 --stride 8192 --valid 0.1 --test 0.1 --force \
    data/hg19_chr20_20Mb.fa.gz data/targets.txt -o "$out/data"

python - "$out/data" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/statistics.json"))
print(f"dataset: {s['seq_length']} bp sequences, {s['target_length']} bins x {s['num_targets']} targets "
      f"({', '.join(s['target_ids'])}); train {s['train_seqs']}, valid {s['valid_seqs']}, test {s['test_seqs']}")
PY

echo "== train.py: params/demo.json on $out/data -> $out/model (about 5-10 minutes on 2 CPU cores)"
train.py --force params/demo.json "$out/data" -o "$out/model"

echo "== test.py: the held-out test split, against a GC/CpG linear baseline fitted on the train split"
test.py --peaks --baseline "$out/model" "$out/data" -o "$out/test"
echo "demo finished: $out (model in $out/model, accuracy table and plots in $out/test)"
