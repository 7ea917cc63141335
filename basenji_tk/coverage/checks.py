"""Checks around :func:`basenji_tk.coverage.pipeline.bam_cov`: outputs, the BAM, the GC FASTA, stranded data.

Kept apart from the computation (events, EM, GC model, tracks) because each is a question about the
inputs a user gave, answered with one :class:`InputError` line or one warning line:

- :func:`output_plan`: what a run writes (track(s), ``STEM.json``, the GC report), so that a
  finished output is refused before the BAM is read (:func:`basenji_tk.files.refuse_overwrite`);
- :func:`open_bam`: the BAM's header. No index is needed or made: the records are decoded from
  start to end, and the decoder itself finds an out-of-order record or a damaged block;
- :func:`fasta_length_mismatches`: FASTA chromosomes whose length differs from the BAM header's;
- :func:`strand_asymmetry`: how strand-specific the reads look (nascent or 3' RNA versus DNA).
"""

from __future__ import annotations

import logging
import os

import numpy as np

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

TRACK_EXTS = {".bw": "bigwig", ".bigwig": "bigwig", ".h5": "hdf5", ".hdf5": "hdf5"}
SORT_HINT = "sort it: samtools sort -o sorted.bam {path}"


def output_plan(out: str, strand: bool, gc: bool) -> tuple[str, list[str], str, list[str]]:
    """(format, track paths, stem, every path the run writes) for the output name ``out``.

    Tracks: ``out``, or ``STEM.plus.EXT`` and ``STEM.minus.EXT`` with ``strand``; then
    ``STEM.json``, and ``STEM.gc_model.tsv`` / ``.png`` with ``gc``.
    """
    stem, ext = os.path.splitext(out)
    fmt = TRACK_EXTS.get(ext.lower())
    if fmt is None:
        raise InputError(f"{out}: the output must end in .bw/.bigwig (BigWig) or .h5/.hdf5 (HDF5), not '{ext}'")
    tracks = [f"{stem}.plus{ext}", f"{stem}.minus{ext}"] if strand else [out]
    written = tracks + [stem + ".json"] + ([stem + ".gc_model.tsv", stem + ".gc_model.png"] if gc else [])
    return fmt, tracks, stem, written


def open_bam(path: str):
    """The BAM opened with pysam (header read, positioned at the first record).

    Refused here: a missing or unreadable file, SAM/CRAM, a file pysam cannot open, a header
    without reference sequences. The header's ``SO`` tag is not trusted either way (samtools
    does not trust it either): the decoder refuses the first record out of coordinate order.
    """
    import pysam

    if not os.path.exists(path):
        raise InputError(f"{path}: no such BAM file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a BAM file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable")
    try:
        bam = pysam.AlignmentFile(path, "rb", check_sq=False)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable BAM file ({str(err).splitlines()[0]})") from None
    if not bam.is_bam:
        bam.close()
        raise InputError(f"{path}: not a BAM file (SAM/CRAM given); convert it with 'samtools view -b'")
    if not bam.nreferences:
        bam.close()
        raise InputError(f"{path}: the BAM header lists no reference sequences (@SQ lines); nothing to cover")
    return bam


def header_sort_order(bam) -> str:
    return (bam.header.to_dict().get("HD") or {}).get("SO", "unknown")


def unsorted_message(path: str, contigs: list, order: str, at: tuple, after: tuple) -> str:
    """The one line for a BAM whose records are out of coordinate order (0-based positions given)."""
    claim = f"; its header says SO:{order}" if order != "unknown" else ""
    return (f"{path}: not coordinate-sorted (first out-of-order read at {contigs[at[0]]}:{at[1] + 1:,}, after "
            f"{contigs[after[0]]}:{after[1] + 1:,}{claim}); {SORT_HINT.format(path=path)}")


def _fasta_names(fasta_names, contig: str):
    from basenji_tk.io.genome import normalize_chrom

    if contig in fasta_names:
        return contig
    norm = {normalize_chrom(n): n for n in fasta_names}
    return norm.get(normalize_chrom(contig))


def fasta_length_mismatches(fasta: str, contigs: list, lengths: list) -> list[tuple[str, int, int]]:
    """``[(BAM contig, BAM length, FASTA length)]`` for BAM header contigs whose FASTA chromosome
    (same name, or equal after ``chr`` normalisation) has another length. Contigs the FASTA lacks
    are not listed (a FASTA lacking a contig that holds reads is refused later)."""
    import pysam

    try:
        fa = pysam.FastaFile(fasta)
    except (OSError, ValueError) as err:
        raise InputError(f"{fasta}: cannot read the FASTA (--gc): {err}") from None
    try:
        names = set(fa.references)
        out = []
        for contig, length in zip(contigs, lengths):
            name = _fasta_names(names, contig)
            if name is not None and fa.get_reference_length(name) != length:
                out.append((contig, int(length), int(fa.get_reference_length(name))))
        return out
    finally:
        fa.close()


def length_mismatch_error(fasta: str, bam_path: str, mismatches: list) -> InputError:
    shown = ", ".join(f"{c} {f:,} bp (BAM {b:,} bp)" for c, b, f in mismatches[:3])
    more = f" and {len(mismatches) - 3} more" if len(mismatches) > 3 else ""
    return InputError(f"{fasta}: chromosome lengths differ from the header of {bam_path}: {shown}{more}; use the "
                      "FASTA the reads were aligned to, or --gc_length_mismatch to correct only the bases the FASTA "
                      "holds")


def warn_length_mismatch(fasta: str, mismatches: list, used_contigs: set, events_past_end: dict) -> None:
    """One warning line: per mismatched contig holding reads, the bases left uncorrected."""
    rows, bases, events = [], 0, 0.0
    for contig, bam_len, fa_len in mismatches:
        if contig not in used_contigs:
            continue
        past = max(bam_len - fa_len, 0)
        bases += past
        events += events_past_end.get(contig, 0.0)
        rows.append(f"{contig} {fa_len:,} bp (BAM {bam_len:,} bp)")
    if not rows:
        return
    shown = ", ".join(rows[:3]) + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")
    log.warning(f"warning: {fasta}: chromosome lengths differ from the BAM header (--gc_length_mismatch): {shown}; "
                f"{bases:,} bases past the FASTA's ends ({events:,.0f} read events there) stay uncorrected")


# ---------------------------------------------------------------- stranded, unfragmented data

ASYM_WINDOW = 1000  # bp
ASYM_MIN_READS = 10  # reads a window needs to count
ASYM_MIN_WINDOWS = 20
ASYM_STRANDED = 0.5  # DNA (fragments read from both ends) stays near 0.1; strand-specific RNA near 0.9


def strand_asymmetry(global_pos: np.ndarray, reverse: np.ndarray) -> tuple[float | None, int]:
    """(sum |plus - minus| / sum reads over 1-kb windows holding >= 10 reads, number of windows).

    ``global_pos``: 5' ends in one coordinate (int64, bp) with chromosomes far apart; ``reverse``:
    bool per read. Near 0 when both strands cover every region (DNA fragments sequenced from either
    end, unstranded RNA), near 1 when each region's reads lie on one strand (GRO-seq, PRO-seq,
    3' RNA). ``None`` with fewer than 20 such windows.
    """
    if len(global_pos) == 0:
        return None, 0
    window = global_pos // ASYM_WINDOW
    keys, inverse = np.unique(window, return_inverse=True)
    minus = np.bincount(inverse, weights=reverse.astype(np.float64), minlength=len(keys))
    total = np.bincount(inverse, minlength=len(keys)).astype(np.float64)
    sel = total >= ASYM_MIN_READS
    n = int(sel.sum())
    if n < ASYM_MIN_WINDOWS:
        return None, n
    plus = total - minus
    return float(np.abs(plus - minus)[sel].sum() / total[sel].sum()), n


def warn_if_stranded(asymmetry: float | None, windows: int, shift: int) -> bool:
    """Warn (one line) that a learned shift is meant for DNA fragments when the reads look stranded."""
    if asymmetry is None or asymmetry < ASYM_STRANDED:
        return False
    log.warning(f"warning: the reads look strand-specific, as nascent or 3' RNA (GRO-seq, PRO-seq, Drop-seq): "
                f"strand asymmetry {asymmetry:.2f} over {windows:,} 1-kb windows (DNA fragments give about 0.1); "
                f"the learned shift of {shift} bp assumes fragments read from both ends: for read ends as they "
                "are, per strand, use --shift 0 --strand")
    return True
