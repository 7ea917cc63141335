#!/usr/bin/env bash
# The demo pipeline on data/: each step is one basenji_tk script. Later issues add
# variant scoring and more to this chain.
set -euo pipefail
out=${1:-demo_out}
cd "$(dirname "$0")/.."
mkdir -p "$out"

echo "== bam_cov.py: data/dropseq.bam (real Drop-seq reads) -> $out/dropseq.bw, multi-mappers by EM, GC bias removed"
echo "   (Drop-seq is 3' RNA, so bam_cov warns that its learned shift means little: 4 bp, harmless at 128-bp bins;"
echo "    the demo FASTA is the first 20 Mb of chr20, hence --gc_length_mismatch)"
bam_cov.py --multi_em 20 --gc data/hg19_chr20_20Mb.fa.gz --gc_length_mismatch --force data/dropseq.bam "$out/dropseq.bw"

# the demo targets: data/targets.txt plus the new track (paths absolute, so the table can live in $out)
python - "$out" <<'PY'
import os, sys
out = os.path.abspath(sys.argv[1])
rows = [line.rstrip("\n").split("\t") for line in open("data/targets.txt")]
for row in rows[1:]:
    row[1] = os.path.abspath(os.path.join("data", row[1]))
rows.append(["dropseq", f"{out}/dropseq.bw", "sum", "128", "128", "1", "Drop-seq 3' RNA, bam_cov EM + GC"])
with open(f"{out}/targets.txt", "w") as f:
    f.writelines("\t".join(row) + "\n" for row in rows)
PY

echo "== make_targets.py: 20 Mb of GRCh37 chr20, CTCF / CpG / TSS / Drop-seq tracks -> $out/data"
make_targets.py -l 16384 -w 128 --stride 8192 --valid 0.1 --test 0.1 --force \
    data/hg19_chr20_20Mb.fa.gz "$out/targets.txt" -o "$out/data"

python - "$out/data" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/statistics.json"))
print(f"dataset: {s['seq_length']} bp sequences, {s['target_length']} bins x {s['num_targets']} targets "
      f"({', '.join(s['target_ids'])}); train {s['train_seqs']}, valid {s['valid_seqs']}, test {s['test_seqs']}")
PY

echo "== train.py: params/demo.json on $out/data -> $out/model (about 5-10 minutes on 2 CPU cores)"
train.py --force params/demo.json "$out/data" -o "$out/model"

echo "== test.py: the held-out test split, against a GC/CpG linear baseline fitted on the train split"
test.py --force --peaks --baseline "$out/model" "$out/data" -o "$out/test"
python - "$out" <<'PY'
import csv, json, sys
out = sys.argv[1]
reads = json.load(open(f"{out}/dropseq.json"))["reads_used"]
rows = {r["identifier"]: r for r in csv.DictReader(open(f"{out}/test/acc.tsv"), delimiter="\t")}
print(f"note: dropseq has r = {float(rows['dropseq']['pearsonr']):.3f} by design: its {reads:,} reads over 20 Mb "
      f"(one per {20_000_000 // max(reads, 1):,} bp) show the BAM -> coverage -> dataset chain, too few for any "
      "model to learn; the three annotation tracks are the ones to read")
PY
echo "== sed.py: the 1000 Genomes variants of data/ against every GENCODE TSS near them -> $out/sed"
sed.py --force -q "$out/model" data/variants_1kg.vcf.gz data/tss.bed -f data/hg19_chr20_20Mb.fa.gz -o "$out/sed"
python - "$out/sed" <<'PY'
import sys, h5py, numpy as np
with h5py.File(f"{sys.argv[1]}/sed.h5") as h5:
    a = dict(h5.attrs)
    sed = h5["SED"][:].astype(np.float64)
    ids = [t.decode() for t in h5["target_ids"][:]]
    print(f"sed: {a['count_vcf_scorable']:,} variants ({a['count_vcf_ref_mismatch_skipped']} REF mismatches), "
          f"{a['count_pairs']:,} variant-gene pairs, {a['count_variants_per_second']:.0f} variants/s")
    k = ids.index("tss")
    top = np.argsort(-np.abs(sed[:, k]))[:3]
    for i in top:
        print(f"  largest |SED| on tss: {h5['snp'][i].decode()} -> {h5['gene'][i].decode()} "
              f"({int(h5['tss_dist'][i]):+,} bp from its TSS): {sed[i, k]:+.3f}")
PY
echo "== sat_mut.py: saturation mutagenesis of two CTCF peaks of data/ctcf_peaks.bed -> $out/sat_mut"
sed -n '600,601p' data/ctcf_peaks.bed | cut -f1-3 | awk 'BEGIN{OFS="\t"} {print $1, $2, $3, "ctcf_peak_" NR}' \
    > "$out/sat_mut_regions.bed"
sat_mut.py --force -q "$out/model" "$out/sat_mut_regions.bed" -f data/hg19_chr20_20Mb.fa.gz -o "$out/sat_mut" \
    --stat center --targets ctcf --plots
python - "$out/sat_mut" <<'PY'
import sys, h5py, numpy as np
from basenji_tk.data import dna
with h5py.File(f"{sys.argv[1]}/scores.h5") as h5:
    for i, name in enumerate(h5["name"][:]):
        loss = -h5["scores"][i, :, :, 0].astype(np.float64).sum(axis=1) / 3
        k = int(np.argmax(np.convolve(loss, np.ones(12), mode="valid")))
        print(f"  {name.decode()} {h5['chrom'][i].decode()}:{h5['start'][i]:,}: 12 bp the ctcf prediction leans on "
              f"most: {dna.decode(h5['seqs'][i, k:k + 12])}")
PY
echo "== attribute.py + motifs.py: gradient x input at the held-out CTCF peaks, TF-MoDISco, TOMTOM against JASPAR 2024 -> $out/motifs"
python - "$out" <<'PY'
import sys
out = sys.argv[1]
split = [line.split() for line in open(f"{out}/data/sequences.bed")]
test = [(c, int(s), int(e)) for c, s, e, k in split if k == "test"]
seen = [(c, int(s), int(e)) for c, s, e, k in split if k != "test"]
with open(f"{out}/held_out_ctcf.bed", "w") as fh:  # inside a test sequence, touching no training/validation one
    for c, s, e in ((f[0], int(f[1]), int(f[2])) for f in (line.split() for line in open("data/ctcf_peaks.bed"))):
        if any(c == t[0] and t[1] <= s and e <= t[2] for t in test) and \
                not any(c == t[0] and t[1] < e and s < t[2] for t in seen):
            fh.write(f"{c}\t{s}\t{e}\n")
PY
attribute.py --force -q "$out/model" "$out/held_out_ctcf.bed" -f data/hg19_chr20_20Mb.fa.gz -o "$out/attributions" \
    --method grad_x_input --targets ctcf --stat center --center_len 200 --crop 1000 --no_plots
motifs.py --force -q "$out/attributions/attributions.h5" -o "$out/motifs" --window 400 --db jaspar --no_report
echo "demo finished: $out (model in $out/model, accuracy table and plots in $out/test, variant scores in $out/sed, ISM in $out/sat_mut, motifs in $out/motifs)"
