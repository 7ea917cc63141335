"""Opening VCFs for ``sed.py`` and ``sed_ld.py``: plain text, bgzip or plain gzip, and errors
that name the line.

pysam parses the records. A VCF compressed with plain ``gzip`` (not ``bgzip``) cannot be opened
by htslib directly (it needs to seek), so :func:`open_vcf` streams it: a thread decompresses it
into a pipe that pysam reads from. Such a file has no index, so it is always read from start to
end.

htslib reports most malformed records as "truncated file". :func:`bad_record` reads the text
itself to say what is wrong with the failing line: its number as a text editor counts it
(header lines included, from 1), and whether it is empty, has fewer than the 8 fixed
columns, a POS that is not a number, or really is the cut-off end of the file.
"""

from __future__ import annotations

import gzip
import os
import threading
from contextlib import contextmanager

from basenji_tk.errors import InputError

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
