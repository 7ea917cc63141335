"""GENERATED planted-motif sets: database motifs planted into dinucleotide-shuffled genome windows.

A known truth for attribution and motif discovery. :func:`planted_set` samples ``n`` windows of
``length`` bp without N from a genome FASTA, dinucleotide-shuffles each
(:func:`basenji_tk.interpret.shuffle.dinuc_shuffle`: real base and dinucleotide composition, no
real regulatory grammar left), and plants instances sampled base by base from each motif's
position probability matrix, at a uniform position on a random strand. Each sequence carries
motif ``k`` with probability ``rate`` independently of the others (rate 1/3 and two motifs:
2/9 carry only the first, 2/9 only the second, 1/9 both, 4/9 none); instances in one sequence
never overlap. The labels are one binary task per motif (the sequence carries it) and every
planted base is recorded (:attr:`PlantedSet.sites`).

:func:`write_planted` writes what the pipeline trains from: a FASTA with one contig per
sequence, a task table for ``make_table.py --coords chrom,start,end --fasta`` (split column
included), a BED of the planted sites and a BED of the held-out (test) sequences.

The set is labelled GENERATED in every file it writes; say so in any table or plot made from it.
It lives in ``interpret/`` rather than ``data/`` because it draws its backgrounds with
:mod:`basenji_tk.interpret.shuffle` (a data/ module may not import a later stage).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.interpret.shuffle import dinuc_shuffle

LABEL = "GENERATED (planted motifs in shuffled real chr20 sequence)"
_COMPLEMENT = np.array([3, 2, 1, 0])  # A<->T, C<->G on codes


@dataclass
class PlantedSet:
    """``one_hot`` (N, L, 4) uint8; ``labels`` (N, M) bool (sequence i carries motif k);
    ``sites``: one row per planted instance, ``(sequence, motif, start, end, strand)`` (0-based,
    end exclusive, strand '+' or '-'); ``motifs``: the M names; ``source``: the genome window
    ``(chrom, start, end)`` each background was shuffled from; ``split`` (N,) train/valid/test."""

    one_hot: np.ndarray
    labels: np.ndarray
    sites: list
    motifs: list
    source: list
    split: np.ndarray

    @property
    def names(self) -> list[str]:
        return [f"planted{i:05d}" for i in range(len(self.one_hot))]

    def mask(self, motif: int) -> np.ndarray:
        """``(N, L)`` bool: the bases of planted instances of ``motif``."""
        out = np.zeros(self.one_hot.shape[:2], dtype=bool)
        for seq, k, start, end, _ in self.sites:
            if k == motif:
                out[seq, start:end] = True
        return out

    def sequences(self) -> list[str]:
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)
        return [letters[x.argmax(1)].tobytes().decode() for x in self.one_hot]


def _pwm_and_name(motif, i: int):
    """A motif given as an object with ``.pwm`` (W, 4) (and ``.alt`` or ``.name``), a
    ``(name, pwm)`` pair or a bare (W, 4) array -> ``(name, probabilities (W, 4))``."""
    if hasattr(motif, "pwm"):
        name, pwm = getattr(motif, "alt", "") or getattr(motif, "name", "") or f"motif{i}", motif.pwm
    elif isinstance(motif, tuple) and len(motif) == 2:
        name, pwm = motif
    else:
        name, pwm = f"motif{i}", motif
    pwm = np.asarray(pwm, dtype=np.float64)
    if pwm.ndim != 2 or pwm.shape[1] != 4 or (pwm < 0).any() or not np.allclose(pwm.sum(1), 1, atol=1e-3):
        raise InputError(f"motif {name}: expected a (width, 4) matrix of probabilities A,C,G,T summing to 1 per row")
    return str(name), pwm / pwm.sum(1, keepdims=True)


def genome_windows(fasta, n: int, length: int, rng, max_tries: int = 50) -> tuple[list, np.ndarray]:
    """``n`` random windows of ``length`` bp without N (or other non-ACGT letters) from ``fasta``,
    chromosomes drawn by size -> ``([(chrom, start, end)], one_hot (n, length, 4) uint8)``."""
    from basenji_tk.io.genome import Genome

    genome = Genome(fasta)
    try:
        chroms = [c for c, s in genome.sizes.items() if s >= length]
        if not chroms:
            raise InputError(f"{fasta}: no sequence is {length} bp or longer")
        sizes = np.array([genome.sizes[c] - length + 1 for c in chroms], dtype=np.float64)
        windows, seqs = [], []
        for _ in range(n * max_tries):
            chrom = chroms[rng.choice(len(chroms), p=sizes / sizes.sum())]
            start = int(rng.integers(genome.sizes[chrom] - length + 1))
            codes = dna.encode(genome.fetch(chrom, start, start + length).upper())
            if (codes == dna.N_CODE).any():
                continue
            windows.append((chrom, start, start + length))
            seqs.append(codes)
            if len(seqs) == n:
                break
        else:
            raise InputError(f"{fasta}: found {len(seqs)} of {n} windows of {length} bp without N "
                             f"in {n * max_tries} draws")
    finally:
        genome.close()
    return windows, np.eye(4, dtype=np.uint8)[np.stack(seqs)]


def _free_start(taken: np.ndarray, width: int, rng) -> int | None:
    """A uniform start for ``width`` bases that overlap no ``taken`` base; None when none fits."""
    clash = np.convolve(taken.astype(np.int64), np.ones(width, dtype=np.int64), mode="valid") > 0
    free = np.flatnonzero(~clash)
    return None if free.size == 0 else int(rng.choice(free))


def planted_set(fasta, motifs, n: int = 3000, length: int = 200, seed: int = 0, rate: float = 1 / 3,
                valid: float = 0.1, test: float = 0.2) -> PlantedSet:
    """The GENERATED set described in the module docstring. ``motifs``: see :func:`_pwm_and_name`;
    ``valid``/``test``: fractions of the sequences in each held-out split, dealt at random."""
    named = [_pwm_and_name(m, i) for i, m in enumerate(motifs)]
    if not named:
        raise InputError("planted_set: no motifs given")
    if sum(p.shape[0] for _, p in named) > length:
        raise InputError(f"planted_set: the motifs ({', '.join(f'{m} {p.shape[0]} bp' for m, p in named)}) "
                         f"do not fit together in {length} bp")
    if not 0 < rate < 1 or not 0 <= valid + test < 1:
        raise InputError(f"planted_set: expected 0 < rate < 1 and valid + test < 1, got {rate}, {valid}, {test}")
    rng = np.random.default_rng(seed)
    source, real = genome_windows(fasta, n, length, rng)
    one_hot = dinuc_shuffle(real, 1, rng)[:, 0].astype(np.uint8)
    codes = one_hot.argmax(2)
    labels = rng.random((n, len(named))) < rate
    sites = []
    for i in range(n):
        taken = np.zeros(length, dtype=bool)
        for k in rng.permutation(len(named)):
            if not labels[i, k]:
                continue
            _, pwm = named[k]
            width = pwm.shape[0]
            start = _free_start(taken, width, rng)
            if start is None:  # cannot happen while the motifs fit together (checked above)
                raise InputError(f"planted_set: no room for motif {named[k][0]} in sequence {i}")
            instance = (rng.random((width, 1)) > pwm.cumsum(1)).sum(1).clip(0, 3)
            strand = "+" if rng.random() < 0.5 else "-"
            if strand == "-":
                instance = _COMPLEMENT[instance[::-1]]
            codes[i, start:start + width] = instance
            taken[start:start + width] = True
            sites.append((i, int(k), start, start + width, strand))
    sites.sort()
    split = np.array(["train"] * n, dtype=object)
    order = rng.permutation(n)
    n_valid, n_test = int(round(valid * n)), int(round(test * n))
    split[order[:n_valid]] = "valid"
    split[order[n_valid:n_valid + n_test]] = "test"
    return PlantedSet(np.eye(4, dtype=np.uint8)[codes], labels, sites, [m for m, _ in named], source, split)


def _atomic_text(path, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_planted(planted: PlantedSet, out_dir) -> dict:
    """Write ``out_dir``/ ``planted.fa`` (one contig per sequence, indexed), ``tasks.tsv`` (name,
    chrom, start, end, split, one 0/1 column per motif, the source window), ``sites.bed``
    (contig, start, end, motif, 0, strand), ``test.bed`` (the test sequences) -> the paths."""
    import pysam

    os.makedirs(out_dir, exist_ok=True)
    names, seqs, length = planted.names, planted.sequences(), planted.one_hot.shape[1]
    paths = {k: os.path.join(out_dir, f) for k, f in
             (("fasta", "planted.fa"), ("table", "tasks.tsv"), ("sites", "sites.bed"), ("test", "test.bed"))}
    _atomic_text(paths["fasta"], "".join(f">{nm} {LABEL}\n" + "".join(s[j:j + 60] + "\n" for j in range(0, length, 60))
                                         for nm, s in zip(names, seqs)))
    pysam.faidx(paths["fasta"])
    header = "\t".join(["name", "chrom", "start", "end", "split", *planted.motifs, "source"])
    rows = ["\t".join([nm, nm, "0", str(length), str(planted.split[i]), *map(str, planted.labels[i].astype(int)),
                       "{}:{}-{}".format(*planted.source[i])]) for i, nm in enumerate(names)]
    _atomic_text(paths["table"], f"# {LABEL}\n" + header + "\n" + "\n".join(rows) + "\n")
    _atomic_text(paths["sites"], "".join(f"{names[i]}\t{s}\t{e}\t{planted.motifs[k]}\t0\t{strand}\n"
                                         for i, k, s, e, strand in planted.sites))
    _atomic_text(paths["test"], "".join(f"{nm}\t0\t{length}\t{nm}\t0\t+\n"
                                        for nm, sp in zip(names, planted.split) if sp == "test"))
    return paths
