"""Motifs in MEME format, and the JASPAR database through pyjaspar.

:func:`read_meme` reads MEME version 4 motif text: the minimal format that MEME, JASPAR
(``*.meme`` downloads), TF-MoDISco reports and ``meme2meme`` write, and MEME's own ``meme.txt``
(whose other sections are skipped). Only the ``letter-probability matrix`` of each ``MOTIF``
is read; each is checked (4 columns of numbers, as many rows as ``w=`` declares, no negative
entry, rows summing to 1 within 0.02 and then renormalised) and a bad one is an
:class:`InputError` naming ``file:line``. Two motifs with the same name are an error as well:
motifs are chosen and reported by name, so a duplicate would make a match ambiguous.

:func:`write_meme` writes the minimal format back (six decimals; it round-trips
:func:`read_meme`). :func:`jaspar_motifs` turns pyjaspar's count matrices into probabilities,
and :func:`motif_database` resolves a ``--db`` value: a MEME path or ``jaspar[:COLLECTION[:TAX
[:RELEASE]]]``.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError

ALPHABET = "ACGT"
ROW_TOLERANCE = 0.02  # a row may sum to 1 +- this before it is renormalised
JASPAR_PSEUDOCOUNT = 1.0  # total pseudocount per column, spread evenly (MEME's jaspar2meme convention)

_KEYVAL = re.compile(r"(\w+)\s*=\s*(\S+)")


@dataclass
class Motif:
    """A DNA motif: ``pwm`` is ``(W, 4)`` letter probabilities in the order A, C, G, T."""

    name: str
    pwm: np.ndarray
    alt: str = ""
    nsites: int = 0
    url: str = ""

    def __post_init__(self):
        self.pwm = np.asarray(self.pwm, dtype=np.float64)
        if self.pwm.ndim != 2 or self.pwm.shape[1] != 4 or len(self.pwm) == 0:
            raise ValueError(f"motif {self.name}: pwm must be (W, 4) with W >= 1, not {self.pwm.shape}")

    @property
    def width(self) -> int:
        return len(self.pwm)

    @property
    def consensus(self) -> str:
        """The most probable letter at each position."""
        return "".join(ALPHABET[i] for i in self.pwm.argmax(axis=1))

    def reverse_complement(self) -> "Motif":
        """The motif on the other strand (same name)."""
        return Motif(self.name, self.pwm[::-1, ::-1].copy(), self.alt, self.nsites, self.url)

    def information(self) -> np.ndarray:
        """Information content in bits at each position against a uniform background."""
        p = self.pwm
        with np.errstate(divide="ignore", invalid="ignore"):
            plogp = np.where(p > 0, p * np.log2(p), 0.0)
        return 2.0 + plogp.sum(axis=1)

    @property
    def label(self) -> str:
        """``name`` or ``name (alt)``, for titles."""
        return f"{self.name} ({self.alt})" if self.alt else self.name


def _open(path):
    if str(path).endswith(".gz"):
        return gzip.open(path, "rt")
    return open(path)


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _matrix_header(path, lineno, line):
    """``(w or None, nsites)`` from a ``letter-probability matrix:`` line."""
    values = dict(_KEYVAL.findall(line.split(":", 1)[1]))
    alength = values.get("alength", "4")
    if alength != "4":
        raise InputError(f"{path}:{lineno}: letter-probability matrix with alength= {alength}; "
                         "only DNA motifs (alength= 4, A C G T) are read")
    try:
        w = int(values["w"]) if "w" in values else None
        nsites = int(float(values.get("nsites", "0")))
    except ValueError:
        raise InputError(f"{path}:{lineno}: w= and nsites= must be numbers in '{line.strip()}'") from None
    if w is not None and w < 1:
        raise InputError(f"{path}:{lineno}: w= {w}; a motif needs at least one position")
    return w, nsites


def _check_row(path, lineno, tokens):
    if len(tokens) != 4:
        raise InputError(f"{path}:{lineno}: a matrix row needs 4 columns (A C G T), found {len(tokens)}")
    try:
        row = np.array([float(t) for t in tokens])
    except ValueError:
        bad = next(t for t in tokens if not _is_number(t))
        raise InputError(f"{path}:{lineno}: '{bad}' in a matrix row is not a number") from None
    if not np.isfinite(row).all():
        raise InputError(f"{path}:{lineno}: a matrix row holds a non-finite value: {' '.join(tokens)}")
    if (row < 0).any():
        raise InputError(f"{path}:{lineno}: a matrix row holds a negative probability: {' '.join(tokens)}")
    total = row.sum()
    if abs(total - 1.0) > ROW_TOLERANCE:
        raise InputError(f"{path}:{lineno}: a matrix row sums to {total:.4g}, not 1 (within {ROW_TOLERANCE})")
    return row / total


def _read_matrix(path, lines, i, w):
    """Rows after the header at index ``i``: ``(rows, next index)``."""
    rows = []
    j = i + 1
    while j < len(lines):
        tokens = lines[j].split()
        if not tokens:
            j += 1
            if rows and w is None:
                break
            continue
        if not _is_number(tokens[0]):
            break
        if w is not None and len(rows) == w:
            raise InputError(f"{path}:{j + 1}: more matrix rows than w= {w} (line {i + 1})")
        rows.append(_check_row(path, j + 1, tokens))
        j += 1
    if w is not None and len(rows) != w:
        raise InputError(f"{path}:{i + 1}: the matrix declares w= {w} but has {len(rows)} rows")
    if not rows:
        raise InputError(f"{path}:{i + 1}: letter-probability matrix with no rows")
    return np.array(rows), j


def read_meme(path) -> list[Motif]:
    """The motifs of a MEME version 4 file (plain or ``.gz``), in file order."""
    path = str(path)
    try:
        with _open(path) as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: no such MEME file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read it as MEME text ({err})") from None
    motifs, where, current = [], {}, None
    seen_version = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("MEME version"):
            seen_version = True
        elif stripped.startswith("ALPHABET"):
            letters = stripped.split("=", 1)[1].strip() if "=" in stripped else stripped.split(None, 1)[-1]
            if letters.split()[0].upper() not in ("ACGT", '"DNA"', "DNA"):
                raise InputError(f"{path}:{i + 1}: ALPHABET {letters}; only DNA (ACGT) motifs are read")
        elif line.startswith("MOTIF"):
            parts = stripped.split()
            if len(parts) < 2:
                raise InputError(f"{path}:{i + 1}: MOTIF line without a name")
            if current is not None and current["pwm"] is None:
                raise InputError(f"{path}:{current['line']}: MOTIF {current['name']} has no letter-probability "
                                 "matrix")
            name = parts[1]
            if name in where:
                raise InputError(f"{path}:{i + 1}: motif name {name} again (first at line {where[name]}); "
                                 "names must be unique")
            where[name] = i + 1
            alt = parts[2] if len(parts) > 2 and "=" not in parts[2] else ""
            current = {"name": name, "alt": alt, "line": i + 1, "pwm": None, "nsites": 0, "url": ""}
            motifs.append(current)
        elif stripped.startswith("letter-probability matrix"):
            if current is None:
                raise InputError(f"{path}:{i + 1}: letter-probability matrix before any MOTIF line")
            if current["pwm"] is not None:
                raise InputError(f"{path}:{i + 1}: a second letter-probability matrix for MOTIF {current['name']}")
            w, current["nsites"] = _matrix_header(path, i + 1, stripped)
            current["pwm"], i = _read_matrix(path, lines, i, w)
            continue
        elif stripped.startswith("URL") and current is not None:
            url = stripped[3:].strip()
            current["url"] = "" if url == "BLANK" else url
        i += 1
    if not motifs:
        what = "no MOTIF line" if seen_version else "no 'MEME version' header and no MOTIF line"
        raise InputError(f"{path}: no motif ({what}); expected MEME version 4 motif text")
    if motifs[-1]["pwm"] is None:
        raise InputError(f"{path}:{motifs[-1]['line']}: MOTIF {motifs[-1]['name']} has no letter-probability matrix")
    return [Motif(m["name"], m["pwm"], m["alt"], m["nsites"], m["url"]) for m in motifs]


def write_meme(motifs, path, background=None) -> str:
    """Write ``motifs`` as minimal MEME version 4 text (atomically); returns ``path``."""
    path = str(path)
    bg = np.full(4, 0.25) if background is None else np.asarray(background, dtype=np.float64)
    if bg.shape != (4,) or (bg < 0).any() or abs(bg.sum() - 1) > 1e-6:
        raise ValueError(f"background must be 4 frequencies summing to 1, not {background}")
    names = set()
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
           "Background letter frequencies", " ".join(f"{a} {f:.5f}" for a, f in zip(ALPHABET, bg)), ""]
    for m in motifs:
        if not m.name or any(c.isspace() for c in m.name + m.alt):
            raise ValueError(f"motif name and alt must be non-empty words without spaces: {m.name!r} {m.alt!r}")
        if m.name in names:
            raise ValueError(f"motif name {m.name} twice")
        names.add(m.name)
        out.append(f"MOTIF {m.name} {m.alt}".rstrip())
        out.append(f"letter-probability matrix: alength= 4 w= {m.width} nsites= {m.nsites} E= 0")
        out.extend(" " + "  ".join(f"{x:.6f}" for x in row) for row in m.pwm)
        if m.url:
            out.append(f"URL {m.url}")
        out.append("")
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write("\n".join(out) + "\n")
    os.replace(tmp, path)
    return path


def _counts_to_motif(m, pseudocount: float) -> Motif:
    counts = np.array([m.counts[a] for a in ALPHABET], dtype=np.float64).T  # (W, 4)
    totals = counts.sum(axis=1, keepdims=True)
    pwm = (counts + pseudocount / 4.0) / (totals + pseudocount)
    nsites = int(round(float(totals.max())))
    url = f"https://jaspar.elixir.no/matrix/{m.matrix_id}"
    return Motif(m.matrix_id, pwm, alt=str(m.name).replace(" ", "_"), nsites=nsites, url=url)


def jaspar_motifs(collection: str = "CORE", tax_group: str | None = "vertebrates", release: str = "JASPAR2024",
                  names=None, pseudocount: float = JASPAR_PSEUDOCOUNT) -> list[Motif]:
    """The latest version of each JASPAR matrix of a collection (pyjaspar ships the database).

    ``name`` is the matrix id (``MA0139.2``), ``alt`` the TF name (``CTCF``); probabilities are
    the counts plus ``pseudocount`` per column spread evenly over the 4 letters. ``names``
    keeps the matrices whose id, base id (``MA0139``) or TF name (any case) is listed; a name
    that matches nothing is an :class:`InputError`.
    """
    from pyjaspar import jaspardb

    try:
        db = jaspardb(release=release)
    except Exception as err:  # pyjaspar raises a bare Exception for an unknown release
        raise InputError(f"JASPAR release {release}: {err}") from None
    found = db.fetch_motifs(collection=collection, tax_group=tax_group)
    if not found:
        raise InputError(f"JASPAR {release}: no matrix in collection {collection}, tax group {tax_group}")
    motifs = [_counts_to_motif(m, pseudocount) for m in found]
    if names is None:
        return motifs
    return select(motifs, names, f"JASPAR {release} {collection} {tax_group or 'all'}", jaspar=True)


def select(motifs, names, source: str, jaspar: bool = False) -> list[Motif]:
    """The motifs named in ``names`` (by name or alt, any case; for JASPAR also the base id), in the
    order of ``motifs``; an unknown name is an :class:`InputError` naming ``source``."""
    wanted = {str(n).upper() for n in names}
    keys = []
    for m in motifs:
        k = {m.name.upper(), m.alt.upper()}
        if jaspar:
            k.add(m.name.split(".")[0].upper())
        keys.append(k)
    missing = sorted(n for n in wanted if not any(n in k for k in keys))
    if missing:
        raise InputError(f"{source}: no motif named {', '.join(missing)}")
    return [m for m, k in zip(motifs, keys) if k & wanted]


def motif_database(spec) -> list[Motif]:
    """Motifs from a ``--db`` value: a MEME file, ``jaspar`` (JASPAR 2024 CORE vertebrates) or
    ``jaspar:COLLECTION[:TAX_GROUP[:RELEASE]]`` (TAX_GROUP ``all`` for every group)."""
    spec = str(spec)
    if spec.lower() == "jaspar" or spec.lower().startswith("jaspar:"):
        parts = spec.split(":")[1:]
        collection = parts[0] if parts and parts[0] else "CORE"
        tax = parts[1] if len(parts) > 1 and parts[1] else "vertebrates"
        release = parts[2] if len(parts) > 2 and parts[2] else "JASPAR2024"
        if len(parts) > 3:
            raise InputError(f"--db {spec}: expected jaspar[:COLLECTION[:TAX_GROUP[:RELEASE]]]")
        return jaspar_motifs(collection, None if tax.lower() == "all" else tax, release)
    return read_meme(spec)
