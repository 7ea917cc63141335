"""The tables ``sed_ld.py`` and ``gwas_classify.py`` read besides genotypes.

``sed.h5`` from ``sed.py`` (:func:`read_sed_h5` into a :class:`SedTable`: one row per SNP-gene
pair, one statistic for the chosen targets; :func:`sed_targets`, :func:`resolve_targets`), eQTL
summary statistics (:func:`read_eqtl` into an :class:`EqtlTable`, each row's statistic as a
1-df chi^2) and tissue-to-target maps (:func:`read_tissue_targets`). Genotypes are read by
:mod:`basenji_tk.io.genotypes`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from basenji_tk.analysis.sedld_stats import chi2_from_beta_se, chi2_from_p, chi2_from_z, p_from_chi2
from basenji_tk.errors import InputError

# Without a significance column an eQTL counts as significant at p < 1e-5: a common per-variant
# cis-eQTL threshold for a few hundred samples (about 1e-3 after testing ~100 cis variants per gene).
DEFAULT_SIG_P = 1e-5

SED_STATS = ("SED", "logSED", "SAD", "maxlog2")
MISSING_VALUES = {"", "na", "nan", "none", "null", "."}


def _strings(values) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind in "SO":
        out = [x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()]
        return np.array(out, dtype=object).reshape(a.shape)
    return a.astype(str).astype(object)


@dataclass
class SedTable:
    """``sed.h5`` rows (P SNP-gene pairs) with one statistic for the chosen targets.

    ``pos`` is 0-based; ``values`` is ``(P, T)`` float64 for ``target_index`` ``(T,)``.
    """

    path: str
    snp: np.ndarray
    chrom: np.ndarray  # as in the file
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    gene: np.ndarray
    tss_dist: np.ndarray
    values: np.ndarray
    stat: str
    target_index: np.ndarray
    target_ids: np.ndarray
    target_labels: np.ndarray
    attrs: dict

    def __len__(self):
        return len(self.pos)


SED_REQUIRED = ("snp", "chrom", "pos", "ref", "alt", "gene", "tss_dist", "target_ids")


def sed_targets(path):
    """``(target_ids, target_labels)`` of a sed.h5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            ids = _strings(h5["target_ids"][()]) if "target_ids" in h5 else None
            labels = _strings(h5["target_labels"][()]) if "target_labels" in h5 else ids
    except OSError as err:
        raise InputError(f"{path}: cannot read as HDF5 ({err})") from None
    if ids is None:
        raise InputError(f"{path}: dataset 'target_ids' missing (expected sed.py's sed.h5)")
    return ids, labels


def resolve_targets(spec, target_ids, where: str = "--target") -> list:
    """Target indices from ``'0,ctcf'``-style text: each item an id of ``target_ids`` or an index."""
    ids = list(target_ids)
    out = []
    for item in [s.strip() for s in str(spec).split(",") if s.strip()]:
        if item in ids:
            out.append(ids.index(item))
        elif re.fullmatch(r"-?\d+", item) and -len(ids) <= int(item) < len(ids):
            out.append(int(item) % len(ids))
        else:
            raise InputError(f"{where}: '{item}' is neither a target id nor an index below {len(ids)} "
                             f"(targets: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''})")
    if not out:
        raise InputError(f"{where}: no target given (expected indices or ids, comma-separated)")
    return list(dict.fromkeys(out))


def read_sed_h5(path, stat: str = "SED", targets=(0,)) -> SedTable:
    """Read the sed.py format: pair columns and ``stat`` for target indices ``targets``."""
    import h5py

    if stat not in SED_STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(SED_STATS)})")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: cannot read as HDF5 ({err})") from None
    with h5:
        for key in (*SED_REQUIRED, stat):
            if key not in h5:
                raise InputError(f"{path}: dataset '{key}' missing (expected sed.py's sed.h5 with "
                                 f"{', '.join(SED_REQUIRED)}, {stat})")
        P = h5["pos"].shape[0]
        for key in SED_REQUIRED[:-1]:
            if h5[key].shape[:1] != (P,):
                raise InputError(f"{path}: dataset '{key}' has {h5[key].shape[0]} rows, 'pos' has {P}")
        ids = _strings(h5["target_ids"][()])
        labels = _strings(h5["target_labels"][()]) if "target_labels" in h5 else ids
        if h5[stat].shape != (P, len(ids)):
            raise InputError(f"{path}: dataset '{stat}' has shape {h5[stat].shape}, expected ({P}, {len(ids)})")
        t = np.asarray(targets, dtype=np.int64)
        if len(t) and (t.min() < 0 or t.max() >= len(ids)):
            raise InputError(f"{path}: target index {int(t.max())} is out of range (it has {len(ids)} targets)")
        values = h5[stat][()][:, t].astype(np.float64) if P else np.zeros((0, len(t)))
        return SedTable(path=str(path), snp=_strings(h5["snp"][()]), chrom=_strings(h5["chrom"][()]),
                        pos=h5["pos"][()].astype(np.int64) - 1, ref=_strings(h5["ref"][()]),
                        alt=_strings(h5["alt"][()]), gene=_strings(h5["gene"][()]),
                        tss_dist=h5["tss_dist"][()].astype(np.int64), values=values, stat=stat, target_index=t,
                        target_ids=ids, target_labels=labels,
                        attrs={k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()})


@dataclass
class EqtlTable:
    """An eQTL table's usable rows: variant key, gene, chi^2, significance, tissue (``(R,)`` each).

    ``snp`` holds the id column (None without one); ``chrom``/``pos`` (1-based as written) and
    ``ref``/``alt`` are None unless the table has them. ``line`` is each row's line number.
    """

    path: str
    snp: np.ndarray | None
    chrom: np.ndarray | None
    pos: np.ndarray | None
    ref: np.ndarray | None
    alt: np.ndarray | None
    gene: np.ndarray
    chi2: np.ndarray
    significant: np.ndarray
    tissue: np.ndarray
    line: np.ndarray
    stat_column: str
    counts: Counter

    def __len__(self):
        return len(self.gene)


ID_COLUMNS = ("snp", "variant_id")
P_COLUMNS = ("p", "pval", "pvalue", "p_value")
TRUE_WORDS, FALSE_WORDS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}


def _float_column(values, lines, path, name):
    out = np.empty(len(values))
    missing = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        s = v.strip()
        if s.lower() in MISSING_VALUES:
            out[i], missing[i] = np.nan, True
            continue
        try:
            out[i] = float(s)
        except ValueError:
            raise InputError(f"{path}: line {lines[i]}: column '{name}' is '{v}' (expected a number or NA)") from None
    return out, missing


def read_eqtl(path, sig_p: float = DEFAULT_SIG_P) -> EqtlTable:
    """Read an eQTL summary table (tab-separated, header line, '#' comment lines skipped).

    Columns: a variant id (``snp`` or ``variant_id``) or ``chrom`` + ``pos`` (1-based; optional
    ``ref``/``alt``); ``gene``; one statistic, first found of ``chi2``, ``z``, ``beta`` + ``se``,
    ``p`` (two-sided; also ``pval``, ``pvalue``, ``p_value``); optional ``significant`` (1/0,
    true/false, yes/no) and ``tissue``. Rows with a missing statistic (empty, NA, nan) are
    skipped and counted; p must lie in [0, 1]. Significance is the flag where given, else
    ``p < sig_p`` (p from the table's p column when it has one, else from chi^2).
    """
    try:
        fh = open(path, newline="")
    except OSError as err:
        raise InputError(f"{path}: cannot read the eQTL table ({err.strerror})") from None
    with fh:
        header, header_line, rows, lines = None, 0, [], []
        for ln, raw in enumerate(fh, start=1):
            s = raw.rstrip("\r\n")
            if not s.strip() or s.startswith("#"):
                continue
            cells = s.split("\t")
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], ln
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}: line {ln}: {len(cells)} tab-separated fields, the header has {len(header)}")
            rows.append(cells)
            lines.append(ln)
    if header is None:
        raise InputError(f"{path}: empty (expected a header line with gene, a variant id and a statistic)")
    col = {c: i for i, c in enumerate(header)}
    has_id = next((c for c in ID_COLUMNS if c in col), None)
    has_pos = "chrom" in col and "pos" in col
    stat_col = next((c for c in ("chi2", "z") if c in col), None)
    if stat_col is None and "beta" in col and "se" in col:
        stat_col = "beta+se"
    if stat_col is None:
        stat_col = next((c for c in P_COLUMNS if c in col), None)
    needs = []
    if not (has_id or has_pos):
        needs.append("a variant id (snp or variant_id) or chrom and pos")
    if "gene" not in col:
        needs.append("gene")
    if stat_col is None:
        needs.append("one of chi2, z, beta and se, p")
    if needs:
        raise InputError(f"{path}: line {header_line}: header lacks {'; '.join(needs)} "
                         f"(columns: {', '.join(header)})")
    counts = Counter(rows=len(rows))
    lines = np.asarray(lines, dtype=np.int64)
    get = lambda name: [r[col[name]] for r in rows]
    if stat_col == "chi2":
        chi2, missing = _float_column(get("chi2"), lines, path, "chi2")
    elif stat_col == "z":
        z, missing = _float_column(get("z"), lines, path, "z")
        chi2 = chi2_from_z(z)
    elif stat_col == "beta+se":
        beta, m1 = _float_column(get("beta"), lines, path, "beta")
        se, m2 = _float_column(get("se"), lines, path, "se")
        missing = m1 | m2 | (se == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = chi2_from_beta_se(beta, se)
    else:
        chi2 = None
    p_col = next((c for c in P_COLUMNS if c in col), None)
    p = None
    if p_col is not None:
        p, p_missing = _float_column(get(p_col), lines, path, p_col)
        bad = ~p_missing & ((p < 0) | (p > 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{path}: line {lines[i]}: column '{p_col}' is {p[i]:g} (expected a p-value in [0, 1])")
        if chi2 is None:
            missing = p_missing
            chi2 = np.where(p_missing, np.nan, chi2_from_p(np.where(p_missing, 1.0, p)))
    if stat_col == "chi2" and np.any(chi2[~missing] < 0):
        i = int(np.argmax(~missing & (chi2 < 0)))
        raise InputError(f"{path}: line {lines[i]}: chi2 is {chi2[i]:g} (expected >= 0)")
    if "significant" in col:
        flags = np.zeros(len(rows), dtype=bool)
        for i, v in enumerate(get("significant")):
            w = v.strip().lower()
            if w in TRUE_WORDS:
                flags[i] = True
            elif w not in FALSE_WORDS:
                raise InputError(f"{path}: line {lines[i]}: column 'significant' is '{v}' (expected 1/0, true/false)")
        significant = flags
        counts["significance_from"] = "column 'significant'"  # type: ignore[assignment]
    else:
        with np.errstate(invalid="ignore"):
            pv = p_from_chi2(chi2) if p is None else np.where(np.isnan(p), p_from_chi2(chi2), p)
            significant = np.nan_to_num(pv, nan=1.0) < sig_p
        counts["significance_from"] = f"p < {sig_p:g}"  # type: ignore[assignment]
    keep = ~missing & np.isfinite(chi2)
    counts["stat_missing"] = int((~keep).sum())
    counts["used"] = int(keep.sum())
    sel = lambda name: (np.array(get(name), dtype=object)[keep] if name in col else None)
    strip = lambda a: None if a is None else np.array([x.strip() for x in a], dtype=object)
    pos = None
    if has_pos:
        pos_text = strip(sel("pos"))
        try:
            pos = np.array([int(x) for x in pos_text], dtype=np.int64)
        except ValueError:
            bad = next(i for i, x in enumerate(pos_text) if not re.fullmatch(r"\d+", x))
            raise InputError(f"{path}: line {lines[keep][bad]}: pos is '{pos_text[bad]}' "
                             f"(expected a 1-based integer)") from None
    tissue = strip(sel("tissue")) if "tissue" in col else np.full(int(keep.sum()), "all", dtype=object)
    return EqtlTable(path=str(path), snp=strip(sel(has_id)) if has_id else None,
                     chrom=strip(sel("chrom")) if has_pos else None, pos=pos,
                     ref=strip(sel("ref")) if "ref" in col and "alt" in col else None,
                     alt=strip(sel("alt")) if "ref" in col and "alt" in col else None,
                     gene=strip(sel("gene")), chi2=chi2[keep], significant=significant[keep], tissue=tissue,
                     line=lines[keep], stat_column=stat_col, counts=counts)


def read_tissue_targets(path, target_ids) -> dict:
    """``{tissue: target index}`` from a two-column TSV (tissue, target id or index; '#' lines skipped)."""
    out = {}
    try:
        with open(path) as fh:
            for ln, raw in enumerate(fh, start=1):
                s = raw.strip()
                if not s or s.startswith("#"):
                    continue
                cells = s.split("\t")
                if len(cells) != 2:
                    raise InputError(f"{path}: line {ln}: {len(cells)} fields (expected tissue<TAB>target)")
                out[cells[0].strip()] = resolve_targets(cells[1].strip(), target_ids, where=f"{path}: line {ln}")[0]
    except OSError as err:
        raise InputError(f"{path}: cannot read the tissue-target map ({err.strerror})") from None
    if not out:
        raise InputError(f"{path}: no tissue-target lines (expected tissue<TAB>target)")
    return out
