"""What a model that knew the planted motifs would reach on a ChromDragoNN benchmark folder
(LABELLED SEMI-SYNTHETIC; the work folder of ``bench_chromdragonn.py``).

The oracle scores a (bin, held-out context) pair ``mean * (1 + w * sum_t hit_t * active_t)``:
``mean`` the bin's accessibility over the training contexts (the mean baseline), ``hit_t`` a
FIMO hit (p below ``--p``, either strand) of programme TF t's JASPAR motif within 150 bp of
the bin centre (a site counts for a bin when it lies within 100 bp of the centre, and its motif
within 50 bp of the site), ``active_t`` TF t's log2 expression above 4 in the context (active
TFs are drawn at 6-8, inactive at 0-1.5). It bounds what sequence + expression + mean can add
over the mean when the sequence features are exactly the true motifs, so a benchmark where it
does not beat the RNA-weighted baseline cannot show ChromDragoNN's claim. Prints pooled AUPRC
over the fixed split's held-out contexts: all bins, the training genome, the held-out genome.

    python benchmarks/chromdragonn_oracle.py benchmarks/out/chromdragonn
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def labels(peaks_bed, centre, size):
    """Whether > 100 bp of each 200 bp bin lies in a peak of ``peaks_bed``."""
    step = np.zeros(size + 1, np.int32)
    for line in open(peaks_bed):
        f = line.split("\t")
        step[int(f[1])] += 1
        step[int(f[2])] -= 1
    covered = np.concatenate([[0], np.cumsum(np.cumsum(step) > 0)])
    return (covered[centre + 100] - covered[centre - 100]) > 100


def main(argv=None):
    from sklearn.metrics import average_precision_score

    from basenji_tk.data import dna
    from basenji_tk.interpret.site_motifs import motif_hits, one_hot_windows
    from basenji_tk.io import genome as gn
    from basenji_tk.io.meme import jaspar_motifs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", help="bench_chromdragonn.py work folder (contexts_SEMI-SYNTHETIC/, pairs_fixed/)")
    p.add_argument("--p", type=float, nargs="+", default=[1e-5], help="FIMO p-value threshold(s)")
    p.add_argument("--w", type=float, nargs="+", default=[0.5], help="weight(s) of the motif term")
    a = p.parse_args(argv)
    bench, pairs = os.path.join(a.work, "contexts_SEMI-SYNTHETIC"), os.path.join(a.work, "pairs_fixed")
    truth = json.load(open(os.path.join(bench, "truth.json")))
    info = json.load(open(os.path.join(pairs, "statistics.json")))["pairs"]
    fold = info["folds"][0]
    bed = [line.split("\t") for line in open(os.path.join(pairs, "sequences.bed")).read().splitlines()]
    centre = np.array([(int(b[1]) + int(b[2])) // 2 for b in bed])
    part = np.array([b[3] for b in bed])
    g = gn.Genome(truth["design"]["sources"]["fasta"])
    codes = dna.encode(g.fetch(g.chroms[0], 0, g.sizes[g.chroms[0]]).upper())
    g.close()
    names = info["contexts"]
    y = {c: labels(os.path.join(bench, "peaks", f"{c}.SEMI-SYNTHETIC.bed"), centre, len(codes)) for c in names}
    mean = np.mean([y[c] for c in fold["train"]], axis=0)
    motifs = {m.name: m for m in jaspar_motifs()}
    tfs = truth["programme_tfs"]
    windows = one_hot_windows(codes, centre, 150)
    table = np.load(os.path.join(pairs, "contexts.npy"))
    active = table[:, [info["context_features"].index(t) for t in tfs]] > 4

    def pooled(score, genome=None):
        keep = np.ones(len(bed), bool) if genome is None else part == genome
        truth_, scores = zip(*[(y[c][keep], score(names.index(c))[keep]) for c in fold["test"]])
        return average_precision_score(np.concatenate(truth_), np.concatenate(scores))

    print(f"{a.work} (SEMI-SYNTHETIC; plant_motifs: {bool(truth['design'].get('plant_motifs'))}), "
          f"{len(fold['test'])} held-out contexts: AUPRC all / training genome / held-out genome")
    print(f"mean baseline: {pooled(lambda k: mean):.3f} / {pooled(lambda k: mean, 'train'):.3f} / "
          f"{pooled(lambda k: mean, 'test'):.3f}")
    for pv in a.p:
        hit = np.stack([motif_hits(motifs[truth["tf_selection"]["tfs"][t]["motif"]], windows, pv) for t in tfs], 1)
        print(f"p < {pv:g}: {hit.any(1).mean():.0%} of bins hold a programme motif")
        for w in a.w:
            def score(k):
                return mean * (1 + w * (hit * active[k]).sum(1))
            print(f"  oracle w={w:g}: {pooled(score):.3f} / {pooled(score, 'train'):.3f} / {pooled(score, 'test'):.3f}")


if __name__ == "__main__":
    main()
