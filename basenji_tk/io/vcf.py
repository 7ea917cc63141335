"""Reading VCFs for ``sed.py``, ``sed_ld.py`` and ``sat_mut.py``: plain text, bgzip or plain gzip,
errors that name the line, and the variants to score checked against the genome.

pysam parses the records. A VCF compressed with plain ``gzip`` (not ``bgzip``) cannot be opened
by htslib directly (it needs to seek), so :func:`open_vcf` streams it: a thread decompresses it
into a pipe that pysam reads from. Such a file has no index, so it is always read from start to
end.

htslib reports most malformed records as "truncated file". :func:`bad_record` reads the text
itself to say what is wrong with the failing line: its number as a text editor counts it
(header lines included, from 1), and whether it is empty, has fewer than the 8 fixed
columns, a POS that is not a number, or really is the cut-off end of the file.

:func:`read_vcf` gives the variants to score: multi-allelic records are split; a variant seen
twice (same chromosome, position and alleles) is scored once; REF is checked against the FASTA:
a SNP whose ALT is the genome base is flipped (scored with the genome base as reference,
recorded in ``flipped``), other mismatches are skipped and counted, as are symbolic alleles,
indels longer than ``max_indel`` and chromosomes the FASTA lacks. Positions are 0-based
internally; outputs show the VCF's 1-based position.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.io.genome import Genome, chrom_lookup

log = logging.getLogger("basenji_tk")

FIXED_COLUMNS = 8  # CHROM POS ID REF ALT QUAL FILTER INFO


def compression(path) -> str:
    """``"bgzf"`` (bgzip, also BCF), ``"gzip"`` (plain gzip) or ``"plain"`` from the first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # bgzip blocks are gzip members with an extra field (FLG bit 2) holding the subfield 'BC'
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def _text(path):
    """The file as text lines (any compression), keeping line endings."""
    if compression(path) == "plain":
        return open(path, "rt", newline="", errors="replace")
    return gzip.open(path, "rt", newline="", errors="replace")


class _Feeder(threading.Thread):
    """Decompress a plain-gzip file into the write end of a pipe."""

    def __init__(self, path, fd):
        super().__init__(daemon=True)
        self.path, self.fd, self.error = path, fd, None

    def run(self):
        try:
            with gzip.open(self.path, "rb") as src, os.fdopen(self.fd, "wb") as out:
                while True:
                    block = src.read(1 << 16)
                    if not block:
                        break
                    out.write(block)
        except BrokenPipeError:  # the reader stopped early
            pass
        except (OSError, EOFError) as err:
            self.error = str(err) or type(err).__name__


@contextmanager
def open_vcf(path, what: str = "VCF"):
    """``pysam.VariantFile`` of ``path`` (VCF plain, bgzip or plain gzip; or BCF).

    Raises :class:`InputError` when it cannot be opened; a plain-gzip file whose compressed data
    is cut short is an :class:`InputError` when the block ends.
    """
    import pysam

    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such {what} file")
    feeder = None
    # htslib's own warnings and errors are not the user's concern: bad records are reported here
    quiet = pysam.set_verbosity(0)
    try:
        if compression(path) == "gzip":
            read_fd, write_fd = os.pipe()
            feeder = _Feeder(path, write_fd)
            feeder.start()
            source = read_fd
        else:
            source = path
        vcf = pysam.VariantFile(source)
    except (OSError, ValueError, NotImplementedError) as err:
        pysam.set_verbosity(quiet)
        if feeder is not None:
            _close_fd(read_fd)
            feeder.join()
            if feeder.error:
                raise InputError(f"{path}: the gzip data is damaged or cut short ({feeder.error})") from None
            raise InputError(f"{path}: not a readable {what} (plain gzip; {err})") from None
        raise InputError(f"{path}: not a readable {what} ({err})") from None
    failed = False  # by something else than bad input: kept as it is
    try:
        yield vcf
    except InputError:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        vcf.close()
        pysam.set_verbosity(quiet)
        if feeder is not None:
            _close_fd(read_fd)
            feeder.join()
            if feeder.error and not failed:  # the real cause of any bad record seen at the end
                raise InputError(f"{path}: the gzip data is damaged or cut short ({feeder.error})")


def _close_fd(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def header_lines(path) -> int | None:
    """How many ``#`` lines the VCF starts with (None for a BCF, which has no text lines)."""
    with _text(path) as fh:
        n = 0
        try:
            for line in fh:
                if n == 0 and line.startswith("BCF\x02"):
                    return None
                if not line.startswith("#"):
                    break
                n += 1
        except (OSError, EOFError):
            pass
    return n


def bad_record(path, number: int | None, err) -> str:
    """A one-line message for the VCF record that pysam failed on.

    ``number``: 1-based count of the record among the data lines (None: unknown, e.g. when
    records were fetched through an index; the first line found wrong is named). ``err``:
    pysam's own error, used when the text itself shows nothing wrong.
    """
    path = str(path)
    if header_lines(path) is None:  # BCF
        return f"{path}: record {number or '?'}: malformed BCF record ({err})"
    data = 0
    last = None
    try:
        with _text(path) as fh:
            for lineno, raw in enumerate(fh, 1):
                if raw.startswith("#") and data == 0:
                    continue
                data += 1
                last = lineno
                problem = _line_problem(raw, at_failure=number is not None)
                if number is None and problem is None:
                    continue
                if number is not None and data < number:
                    continue
                if problem is None:
                    return f"{path}: line {lineno}: malformed VCF record ({err})"
                return f"{path}: line {lineno}: {problem}"
    except (OSError, EOFError) as cut:
        where = f"after line {last}" if last else "in its header"
        return f"{path}: the compressed data is cut short {where} (truncated file: {cut})"
    if number is None:
        return f"{path}: malformed VCF record ({err})"
    return f"{path}: line {last or 0}: malformed VCF record after the last line ({err})"


def _line_problem(raw: str, at_failure: bool) -> str | None:
    """What is wrong with one VCF data line, as far as the 8 fixed columns tell; None if nothing.

    ``at_failure``: the line is the one pysam failed on (so a last line without its line end is
    the cut-off end of the file)."""
    ended = raw.endswith("\n")
    line = raw.rstrip("\r\n")
    if not line.strip():
        return "empty line (expected a tab-separated VCF record)"
    cols = line.split("\t", FIXED_COLUMNS)
    if not ended and (at_failure or len(cols) < FIXED_COLUMNS):
        return "the file ends in the middle of this record, without its line end (truncated file)"
    if len(cols) < FIXED_COLUMNS:
        return (f"{len(cols)} tab-separated columns where {FIXED_COLUMNS} or more are expected "
                "(CHROM POS ID REF ALT QUAL FILTER INFO ...)")
    if not cols[1].isdigit():
        return f"POS {cols[1][:20]!r} is not a whole number"
    if not cols[3] or not cols[4]:
        return "empty REF or ALT column"
    return None


# ----------------------------------------------------------------------------- variants to score
@dataclass
class Variants:
    """Variants sorted by (FASTA chromosome order, position), one row per (position, REF, ALT)."""

    chrom: list  # FASTA name per variant
    pos: np.ndarray  # int64, 0-based
    ref: list  # as scored (the genome's base after a flip)
    alt: list
    ids: list
    flipped: np.ndarray  # bool
    counts: Counter = field(default_factory=Counter)

    def __len__(self):
        return len(self.pos)


def read_vcf(path, genome: Genome, max_indel: int = 32) -> Variants:
    """Every scorable variant of a VCF (plain, bgzip or plain gzip; any order), checked against ``genome``.

    A malformed record is an :class:`InputError` naming its line (as a text editor counts
    them, header included)."""
    path = str(path)
    to_fasta = chrom_lookup(genome.chroms)
    order = {c: i for i, c in enumerate(genome.chroms)}
    counts, missing = Counter(), Counter()
    seen, rows = set(), []
    with open_vcf(path) as vcf:
        records = iter(vcf)
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except (ValueError, OSError) as err:
                raise InputError(bad_record(path, counts["records"] + 1, err)) from None
            counts["records"] += 1
            chrom = to_fasta(rec.chrom)
            if chrom is None:
                missing[rec.chrom] += 1
                continue
            if rec.ref is None or not rec.alts:
                counts["no_alt"] += 1
                continue
            for alt in rec.alts:
                counts["alleles"] += 1
                ref = rec.ref.upper()
                alt = alt.upper()
                if not re.fullmatch(r"[ACGTN]+", alt) or not re.fullmatch(r"[ACGTN]+", ref):
                    counts["symbolic_skipped"] += 1
                    continue
                if len(ref) != len(alt) and max(len(ref), len(alt)) > max_indel + 1:
                    counts["long_indel_skipped"] += 1
                    continue
                pos = rec.pos - 1
                if pos < 0 or pos + len(ref) > genome.sizes[chrom]:
                    counts["past_chrom_end_skipped"] += 1  # e.g. a whole-chromosome VCF on a part of it
                    continue
                key = (chrom, pos, ref, alt)
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                genome_ref = genome.fetch(chrom, pos, pos + len(ref)).upper()
                flipped = False
                if genome_ref != ref:
                    if len(ref) == 1 and len(alt) == 1 and genome_ref == alt:
                        ref, alt, flipped = alt, ref, True
                        counts["flipped"] += 1
                    else:
                        counts["ref_mismatch_skipped"] += 1
                        continue
                vid = rec.id if rec.id and rec.id != "." else f"{rec.chrom}:{rec.pos}:{rec.ref}:{alt if not flipped else ref}"
                rows.append((order[chrom], pos, ref, alt, vid, flipped))
    if missing:
        counts["chrom_not_in_fasta"] = sum(missing.values())
        names = ", ".join(sorted(missing)[:5]) + (" ..." if len(missing) > 5 else "")
        if not rows:
            raise InputError(f"{path}: no VCF chromosome is in the FASTA {genome.path} (VCF has {names}; FASTA has "
                             f"{', '.join(genome.chroms[:5])}{' ...' if len(genome.chroms) > 5 else ''})")
        log.warning(f"warning: {counts['chrom_not_in_fasta']:,} VCF records on chromosomes missing from the FASTA "
                    f"skipped: {names}")
    rows.sort(key=lambda r: (r[0], r[1]))
    counts["scorable"] = len(rows)
    names = genome.chroms
    return Variants(chrom=[names[r[0]] for r in rows], pos=np.array([r[1] for r in rows], dtype=np.int64),
                    ref=[r[2] for r in rows], alt=[r[3] for r in rows], ids=[r[4] for r in rows],
                    flipped=np.array([r[5] for r in rows], dtype=bool), counts=counts)
