#!/usr/bin/env python
"""Variant effects: score VCF variants with a trained model (SED near gene TSSs for binned tracks)."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Each output of MODEL_DIR is scored where it makes sense; effects are alternative - reference.

Binned tracks (Basenji): every gene of GENES (a TSS BED: chrom, start, end, name, +/- in
column 5 or 6, maybe a first line of column names; or a GTF: the TSS of each transcript,
grouped by gene_name) gets one window centred on its TSS(s); each variant inside it is
scored against the gene, the reference predicted once:
  SED      sum over the gene's TSS bins of alt - ref (Basenji's SNP expression difference)
  logSED   log2(sum alt + 1) - log2(sum ref + 1) over the same bins
  SAD      sum over all bins of alt - ref
  maxlog2  max over bins of |log2(alt + 1) - log2(ref + 1)|
  tss_dist variant position - the gene's nearest TSS (bp)
Other outputs: each variant gets a window centred on it (GENES optional: given, only
variants inside a gene's window, one row per variant-gene pair):
  profile      profile_jsd (Jensen-Shannon divergence of the normalised profiles, base 2)
  total        total_diff, log_total_ratio = log2(alt + 1) - log2(ref + 1)
  value        diff, log_ratio = log2((alt + 1e-6) / (ref + 1e-6))
  probability  diff, log_ratio, logit_diff (change of log-odds)
A model's other inputs come from --context / --context_tsv / --input or its tracks.

VCF: plain, bgzip or plain gzip, any order. Multi-allelic records are split, repeats scored
once; REF is checked against the FASTA (a SNP whose ALT is the genome base is flipped,
flipped=True; other mismatches and variants past the chromosome's end are skipped and
counted). Indels up to --max_indel bp keep the window aligned left of the variant.

Writes OUT_DIR/sed.h5 (snp, chrom, pos (1-based), ref, alt, flipped, gene, tss_dist, one
(rows, targets) matrix per statistic, target_ids, target_labels; counts as attributes) and
OUT_DIR/sed.tsv (a line per row and target); with several outputs, sed_OUTPUT.h5/.tsv each.
They grow window by window under '.partial' names: --restart continues an interrupted run
without rescoring finished windows, and refuses when the VCF, GENES, the FASTA, the model
file or a --context_tsv/.npy input changed since (size, mtime, a hash of sampled blocks). A
finished OUT_DIR is kept unless --force. OUT_DIR is checked and locked before any work: an
unwritable folder, or another run writing there, is one error.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="sed.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("vcf", help="variants (VCF: plain, bgzip or plain gzip)")
    p.add_argument("genes", nargs="?", default=None, help="gene TSSs: BED (name, strand) or GTF; needed for binned "
                   "outputs")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (None: the one the model was trained on)")
    p.add_argument("-o", "--out_dir", default="sed_out", help="output folder")
    p.add_argument("--output", default=None, help="the model output to score (default: every output)")
    p.add_argument("--targets", default=None, help="comma-separated target indices or ids to score; all when not given")
    cli.add_prediction_options(p)
    cli.add_input_options(p)
    p.add_argument("--max_indel", type=int, default=32, help="longest indel allele (bp) to score; longer skipped")
    p.add_argument("--float32", action="store_true", help="store statistics as float32 instead of float16")
    p.add_argument("--restart", action="store_true", help="continue an interrupted run in OUT_DIR (its inputs must "
                   "be unchanged)")
    p.add_argument("--force", action="store_true", help="replace a finished (or interrupted) run in OUT_DIR")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.evaluate import parse_shifts
    from basenji_tk.analysis.inputs import options_from_args
    from basenji_tk.analysis.variants import score_variants

    score_variants(args.model_dir, args.vcf, args.genes, args.out_dir, fasta=args.fasta, rc=args.rc,
                   shifts=parse_shifts(args.shifts), targets=args.targets, batch_size=args.batch_size,
                   restart=args.restart, float32=args.float32, max_indel=args.max_indel, model_file=args.model,
                   quiet=args.quiet, force=args.force, output=args.output, inputs=options_from_args(args))
    return 0


if __name__ == "__main__":
    cli.run(main)
