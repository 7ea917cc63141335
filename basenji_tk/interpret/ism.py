"""In-silico saturation mutagenesis (ISM) and gradient saliency maps.

ISM changes every position of a region to each other base and records how the
model's prediction moves. A mutant's **score** per target is its prediction minus
the reference prediction, reduced over output bins by a statistic:

* ``sum``: all output bins;
* ``center``: the bins overlapping the mutated region (at least one);
* ``tss``: the bin holding a given position (``tss_flank`` bins either side too).

Models whose output has no bin axis (``(batch, targets)``) are scored on the
output itself. Predictions come from :class:`basenji_tk.interpret.fastism.FastISM` when it
can handle the model (``method='auto'`` or ``'fast'``), which reuses the
reference activations outside each mutation's band and gives the same numbers;
``method='naive'`` predicts every mutant in full. With ``center`` or ``tss``,
mutations farther from the scored bins than the model's receptive field cannot
change them: they score exactly 0 and are not predicted.

Reverse complements (``rc``) and ``shifts`` are averaged the way
:func:`basenji_tk.model.models.ensemble` does: each mutant is moved (and complemented)
with its sequence, and reversed outputs are flipped back.

Saliency (:class:`Saliency`): gradient x input at each base for a chosen output
(target and bins), and Basenji's map, the dot product of each bin's representation
after the convolution tower (the output of the last pooling layer) with its
gradient, one signed value per bin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

STATS = ("sum", "center", "tss")
METHODS = ("auto", "fast", "naive")


# ----------------------------------------------------------------------------- pure pieces
def mutants(reference: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every single-base change of ``reference`` ``(L, 4)`` in ``[start, stop)``.

    Returns ``(positions (M,), bases (M,))`` int64, by position then base (A, C, G, T):
    the three other bases at each position, all four where the reference is N."""
    ref = np.asarray(reference)[start:stop]
    is_ref = ref > 0.5
    is_ref[~is_ref.any(axis=1)] = False  # N: every base is a change
    pos, base = np.nonzero(~is_ref)
    return pos.astype(np.int64) + start, base.astype(np.int64)


def score_bins(stat: str, num_bins: int, pool_width: int, offset: int, mut_start: int, mut_stop: int,
               position: int | None = None, tss_flank: int = 0) -> np.ndarray:
    """Output bins a statistic sums over, for a window whose first bin starts ``offset`` bp in.

    ``mut_start``, ``mut_stop``, ``position``: window coordinates (bp). ``sum``: all bins;
    ``center``: the bins overlapping ``[mut_start, mut_stop)`` (at least the one holding its
    middle); ``tss``: the bin holding ``position``, with ``tss_flank`` bins either side."""
    if stat == "sum":
        return np.arange(num_bins)
    if stat == "center":
        lo = (mut_start - offset) // pool_width
        hi = (mut_stop - 1 - offset) // pool_width
        if hi < lo:
            lo = hi = ((mut_start + mut_stop) // 2 - offset) // pool_width
    elif stat == "tss":
        b = (int(position) - offset) // pool_width
        lo, hi = b - tss_flank, b + tss_flank
    else:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    bins = np.arange(max(lo, 0), min(hi, num_bins - 1) + 1)
    if not len(bins):
        raise InputError(f"--stat {stat}: no output bin covers the scored position(s); the model predicts bins "
                         f"from {offset} to {offset + num_bins * pool_width} bp of its window")
    return bins


def reachable(positions: np.ndarray, bins: np.ndarray, pool_width: int, offset: int, field) -> np.ndarray:
    """Which ``positions`` (window bp) can change the output ``bins``: ``(M,)`` bool.

    Conservative: within a whole receptive field (``field.size`` bp) of the bins' span."""
    if field is None or field.whole:
        return np.ones(len(positions), dtype=bool)
    lo = offset + int(bins.min()) * pool_width - field.size
    hi = offset + (int(bins.max()) + 1) * pool_width + field.size
    return (positions >= lo) & (positions < hi)


def reduce_scores(pred: np.ndarray, ref: np.ndarray, bins: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mutant minus reference, summed over ``bins``: ``(M, bins, T) , (bins, T) -> (M, t)`` for chosen targets.

    Outputs without a bin axis (``(M, T)``, ``(T,)``) are differenced directly."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.ndim == 2:
        return (pred - ref[None])[:, targets]
    return (pred[:, bins][:, :, targets] - ref[bins][None][:, :, targets]).sum(axis=1)


def reference_score(ref: np.ndarray, bins: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The reference prediction summed over ``bins`` for the chosen targets: ``(t,)``."""
    ref = np.asarray(ref, dtype=np.float64)
    return ref[targets] if ref.ndim == 1 else ref[bins][:, targets].sum(axis=0)


def importance(scores: np.ndarray) -> np.ndarray:
    """The change with the largest absolute value at each position, signed: ``(L, 4, T) -> (L, T)``."""
    scores = np.asarray(scores)
    pick = np.abs(scores).argmax(axis=1)
    return np.take_along_axis(scores, pick[:, None, :], axis=1)[:, 0, :]


def _shift(one_hot: np.ndarray, shift: int) -> np.ndarray:
    """``(L, 4)`` moved ``shift`` bases right (left when negative), N-padded (as ``layers.ShiftSequence``)."""
    out = np.zeros_like(one_hot)
    if shift >= 0:
        out[shift:] = one_hot[:len(one_hot) - shift]
    else:
        out[:shift] = one_hot[-shift:]
    return out


# ----------------------------------------------------------------------------- prediction engines
def model_inputs(model, seqs: np.ndarray, other_inputs=None):
    """The model's input for one-hot ``seqs`` ``(B, L, 4)``: the array itself, or a dict with
    ``other_inputs`` (``{name: (D,)}``, the same for every sequence) repeated over the batch."""
    from basenji_tk.model.models import SEQUENCE

    if not isinstance(model.input, dict):
        return seqs
    other = other_inputs or {}
    missing = [k for k in model.input if k != SEQUENCE and k not in other]
    if missing:
        raise InputError(f"model '{model.name}' also takes the input '{missing[0]}'; give it with the sequences")
    return {SEQUENCE: seqs, **{k: np.repeat(np.asarray(v, dtype=np.float32)[None], len(seqs), axis=0)
                               for k, v in other.items()}}


class Predictor:
    """Predictions of single-base mutants of one reference, averaged over ``rc`` and ``shifts``.

    ``model``: a basenji_tk ``keras.Model`` (not an ensemble wrapper). ``method``: ``auto``
    (fast path where supported, else naive), ``fast`` (an :class:`InputError` when the model
    has a layer the fast path cannot handle) or ``naive``."""

    def __init__(self, model, method: str = "auto", rc: bool = False, shifts=(0,), batch_size: int = 32):
        from basenji_tk.interpret import fastism

        if method not in METHODS:
            raise InputError(f"--method: '{method}' (expected one of {', '.join(METHODS)})")
        self.model, self.rc, self.shifts, self.batch_size = model, bool(rc), tuple(int(s) for s in shifts), batch_size
        self.engine = None
        self.method = "naive"
        if method != "naive":
            try:
                self.engine = fastism.FastISM(model)
                self.method = "fast"
            except fastism.NotSupported as err:
                if method == "fast":
                    raise InputError(f"--method fast: {err}") from None
                log.warning(f"warning: the fast ISM path does not apply ({err}); predicting every mutant in full")
        self.positional = len(model.output_shape) == 3

    def _one(self, reference, positions, bases, other):
        from basenji_tk.interpret import fastism

        if not len(positions):
            return np.zeros((0, *self.model.output_shape[1:]), dtype=np.float32)
        if self.engine is not None:
            return self.engine.predict_mutants(reference, positions, bases, other, self.batch_size)
        return fastism.naive_predict_mutants(self.model, reference, positions, bases, other, self.batch_size)

    def _reference(self, reference, other):
        if self.engine is not None:  # from the activations it caches for the mutants anyway
            return self.engine.reference_prediction(reference, other)
        x = model_inputs(self.model, reference[None], other)
        return np.asarray(self.model(x, training=False), dtype=np.float32)[0]

    def predict(self, reference: np.ndarray, positions, bases, other_inputs=None):
        """``(ref_pred (*out), mutant_preds (M, *out))`` for ``reference`` ``(L, 4)`` float32."""
        reference = np.asarray(reference, dtype=np.float32)
        positions, bases = np.asarray(positions, dtype=np.int64), np.asarray(bases, dtype=np.int64)
        L = len(reference)
        ref_sum, mut_sum, n = None, None, 0
        for shift in self.shifts:
            moved = _shift(reference, shift) if shift else reference
            p = positions + shift
            inside = (p >= 0) & (p < L)
            for reverse in ([False, True] if self.rc else [False]):
                seq = moved[::-1, ::-1].copy() if reverse else moved
                q = L - 1 - p[inside] if reverse else p[inside]
                b = 3 - bases[inside] if reverse else bases[inside]
                ref = self._reference(seq, other_inputs)
                out = np.repeat(ref[None], len(positions), axis=0)
                out[inside] = self._one(seq, q, b, other_inputs)
                if reverse and self.positional:
                    ref, out = ref[::-1], out[:, ::-1]
                ref_sum = ref.astype(np.float64) if ref_sum is None else ref_sum + ref
                mut_sum = out.astype(np.float64) if mut_sum is None else mut_sum + out
                n += 1
        return (ref_sum / n).astype(np.float32), (mut_sum / n).astype(np.float32)


@dataclass
class IsmResult:
    """ISM of one sequence: ``scores`` ``(len, 4, t)`` (0 at reference bases), ``ref_score`` ``(t,)``,
    ``predicted`` and ``skipped`` mutant counts (skipped: out of the scored bins' reach, score 0)."""

    scores: np.ndarray
    ref_score: np.ndarray
    predicted: int
    skipped: int


def saturation_mutagenesis(predictor: Predictor, reference: np.ndarray, mut_start: int, mut_stop: int,
                           bins: np.ndarray, targets, pool_width: int = 1, offset: int = 0, field=None,
                           other_inputs=None) -> IsmResult:
    """Score every single-base change of ``reference`` ``(L, 4)`` in ``[mut_start, mut_stop)``.

    ``bins``: output bins summed (see :func:`score_bins`); ``targets``: output targets kept;
    ``field``: the model's :class:`~basenji_tk.model.models.ReceptiveField` (None: predict all)."""
    targets = np.asarray(targets, dtype=np.int64)
    positions, bases = mutants(reference, mut_start, mut_stop)
    keep = reachable(positions, bins, pool_width, offset, field) if predictor.positional else \
        np.ones(len(positions), dtype=bool)
    ref, preds = predictor.predict(reference, positions[keep], bases[keep], other_inputs)
    scores = np.zeros((mut_stop - mut_start, 4, len(targets)), dtype=np.float32)
    scores[positions[keep] - mut_start, bases[keep]] = reduce_scores(preds, ref, bins, targets)
    return IsmResult(scores, reference_score(ref, bins, targets).astype(np.float32), int(keep.sum()),
                     int((~keep).sum()))


# ----------------------------------------------------------------------------- saliency
def representation_layer(model):
    """The layer whose output is the bin representation: the last pooling (or strided
    convolution) layer before the output. An :class:`InputError` when there is none."""
    import keras

    last = None
    for layer in model.layers:
        if isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.AveragePooling1D)):
            last = layer
        elif isinstance(layer, keras.layers.Conv1D) and layer.strides[0] > 1:
            last = layer
    if last is None:
        raise InputError(f"model '{model.name}' has no pooling layer, so it has no bin representation; "
                         "pass --layer NAME")
    return last


def _selected(y, bins, target):
    import tensorflow as tf

    if len(y.shape) == 2:
        return y[:, target]
    return tf.reduce_sum(tf.gather(y[:, :, target], bins, axis=1), axis=1)


class Saliency:
    """Gradient maps of one output of ``model``: a target summed over chosen bins.

    ``layer``: the bin representation (default :func:`representation_layer`); the model is
    split there once, so one forward and backward pass gives both maps."""

    def __init__(self, model, layer=None):
        import keras

        self.layer = layer or representation_layer(model)
        self.split = keras.Model(model.inputs, [self.layer.output, model.outputs[0]])

    def __call__(self, one_hot: np.ndarray, target: int, bins) -> tuple[np.ndarray, np.ndarray]:
        """``(B, L, 4)`` -> ``(gradients (B, L, 4), bin_saliency (B, R))``.

        ``gradients``: of the output with respect to the input (multiply by ``one_hot`` for
        gradient x input); ``bin_saliency``: per representation bin, the sum over channels of
        activation x gradient (Basenji's saliency map)."""
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(one_hot, dtype=np.float32))
        bins = tf.constant(np.asarray(bins, dtype=np.int32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, y = self.split(x, training=False)
            y = _selected(y, bins, target)
        gx, gh = tape.gradient(y, [x, h])
        sal = tf.reduce_sum(tf.cast(h, tf.float32) * tf.cast(gh, tf.float32), axis=-1)
        return gx.numpy(), sal.numpy()


# ----------------------------------------------------------------------------- sat_mut.py
@dataclass
class Site:
    """One sequence to mutate: a BED region or a variant allele (``allele`` 'ref'/'alt', '' for BED)."""

    chrom: str
    start: int  # region (0-based, half-open) or the variant's position (1 bp)
    end: int
    name: str
    strand: str = "+"
    allele: str = ""
    ref: str = ""
    alt: str = ""


def read_sites(bed_path, genome) -> list[Site]:
    """The regions of a BED file in file order (name from column 4, strand from column 6)."""
    import os

    from basenji_tk.io.genome import chrom_lookup, table_lines

    path = str(bed_path)
    if not os.path.exists(path):
        raise InputError(f"{path}: BED file not found")
    to_genome = chrom_lookup(genome.chroms)
    sites, renamed = [], set()
    for lineno, f in table_lines(path):
        try:
            start, end = int(f[1]), int(f[2])
        except (ValueError, IndexError):
            shown = "\t".join(f)[:80]
            raise InputError(f"{path}:{lineno}: expected chrom, start, end (tab-separated integers): {shown!r}") \
                from None
        if start < 0 or end < start:
            raise InputError(f"{path}:{lineno}: expected 0 <= start <= end, got {start} {end}")
        g = to_genome(f[0])
        if g is None:
            raise InputError(f"{path}:{lineno}: chromosome {f[0]} is not in the FASTA {genome.path}")
        if g != f[0]:
            renamed.add(f"{f[0]}->{g}")
        if start >= genome.sizes[g]:
            raise InputError(f"{path}:{lineno}: region {f[0]}:{start}-{end} starts past the end of {f[0]} "
                             f"({genome.sizes[g]:,} bp)")
        name = f[3] if len(f) > 3 and f[3] else f"{f[0]}:{start}-{end}"
        strand = f[5] if len(f) > 5 and f[5] in ("+", "-") else "+"
        sites.append(Site(g, start, end, name, strand))
    if not sites:
        raise InputError(f"{path}: no regions (the BED file is empty)")
    if renamed:
        log.warning(f"warning: {path}: chromosome names normalised to the FASTA's: {', '.join(sorted(renamed)[:5])}")
    return sites


def variant_sites(vcf_path, genome) -> tuple[list[Site], dict]:
    """Two sites (reference and alternative allele) per SNP of a VCF; other alleles are counted."""
    from basenji_tk.analysis.variants import read_vcf

    v = read_vcf(vcf_path, genome, max_indel=0)
    sites, skipped = [], 0
    for i in range(len(v)):
        if len(v.ref[i]) != 1 or len(v.alt[i]) != 1:
            skipped += 1
            continue
        p = int(v.pos[i])
        for allele in ("ref", "alt"):
            sites.append(Site(v.chrom[i], p, p + 1, v.ids[i], "+", allele, v.ref[i], v.alt[i]))
    counts = {f"vcf_{k}": int(n) for k, n in v.counts.items()}
    counts["vcf_not_snp_skipped"] = skipped
    if not sites:
        raise InputError(f"{vcf_path}: no SNP to mutate ({len(v)} scorable variants, {skipped} not SNPs)")
    return sites, counts


def sat_mut(model_dir, out_dir, bed=None, vcf=None, fasta=None, mut_len: int = 200, stat: str = "sum",
            targets=None, rc: bool = False, shifts=(0,), batch_size: int = 32, method: str = "auto",
            tss_flank: int = 0, float32: bool = False, plots: bool = False, model_file=None,
            quiet: bool = False, force: bool = False) -> dict:
    """``sat_mut.py``: ISM of the central ``mut_len`` bp of a window centred on each BED region or
    VCF SNP (both alleles). Writes ``out_dir/scores.h5`` (and PNGs with ``plots``); returns counts."""
    import os
    import time

    import h5py
    from tqdm import tqdm

    from basenji_tk import cli
    from basenji_tk.data import dna
    from basenji_tk.analysis.predict import _tmp_name, bin_offset
    from basenji_tk.analysis.trained import TrainedModel, folder_genome

    if (bed is None) == (vcf is None):
        raise InputError("give either a BED file of regions or --vcf, not both")
    if stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    if int(batch_size) < 1 or int(mut_len) < 1 or int(tss_flank) < 0:
        raise InputError("expected --batch_size >= 1, --mut_len >= 1 and --tss_flank >= 0")
    shifts = tuple(int(x) for x in shifts) or (0,)
    genome = folder_genome(model_dir, fasta)
    if bed is not None:
        sites, counts = read_sites(bed, genome), {}
    else:
        sites, counts = variant_sites(vcf, genome)

    with files.claim(out_dir):
        from basenji_tk.model.models import receptive_field

        tm = TrainedModel.load(model_dir, model_file)
        model, model_path = tm.model, tm.model_path
        details, chosen = tm.track_layout("sat_mut.py"), tm.select_targets(targets)
        L, num_bins, pool_width = details["seq_length"], details["num_bins"], details["pool_width"]
        if mut_len > L:
            raise InputError(f"--mut_len {mut_len} is longer than the model's {L:,} bp input")
        if any(abs(s) >= L for s in shifts):
            raise InputError(f"--shifts: every shift must be shorter than the model's {L:,} bp input")
        tidx = np.array([c[0] for c in chosen])
        offset = bin_offset(L, num_bins, pool_width)
        field = receptive_field(model)
        predictor = Predictor(model, method, rc, shifts, int(batch_size))

        mut_start = L // 2 - mut_len // 2
        mut_stop = mut_start + mut_len
        todo, padded, off_end = [], 0, 0
        for s in sites:
            mid = (s.start + s.end) // 2
            w0 = mid - L // 2
            size = genome.sizes[s.chrom]
            if w0 + mut_start < 0 or w0 + mut_stop > size:
                off_end += 1
                continue
            padded += int(w0 < 0 or w0 + L > size)
            todo.append((s, w0))
        counts.update(sites=len(sites), sites_off_chromosome_end_skipped=off_end, windows_padded_with_n=padded)
        if off_end:
            log.warning(f"warning: {off_end} site(s) skipped: their central {mut_len} bp run off a chromosome end")
        if padded:
            log.info(f"{padded} window(s) run off a chromosome end and are padded with N")
        if not todo:
            raise InputError(f"{bed or vcf}: no site left to mutate ({off_end} run off chromosome ends)")
        files.refuse_overwrite(out_dir, ["scores.h5"], force)

        out_path = os.path.join(str(out_dir), "scores.h5")
        tmp = _tmp_name(out_path)
        n, T = len(todo), len(chosen)
        dtype = "float32" if float32 else "float16"
        predicted = skipped = 0
        started = time.time()
        log.info(f"mutating {n:,} sequences x {mut_len} bp x 3 bases ({predictor.method} path, stat {stat})")
        try:
            with h5py.File(tmp, "w") as h5:
                seqs = h5.create_dataset("seqs", (n, mut_len, 4), dtype="uint8")
                scores = h5.create_dataset("scores", (n, mut_len, 4, T), dtype=dtype,
                                           chunks=(1, mut_len, 4, T), compression="gzip")
                imp = h5.create_dataset("importance", (n, mut_len, T), dtype=dtype)
                ref_scores = h5.create_dataset("ref_score", (n, T), dtype="float32")
                for i, (s, w0) in enumerate(tqdm(todo, desc="sequences", unit="seq",
                                                  disable=not cli.show_progress(quiet))):
                    text = genome.fetch(s.chrom, w0, w0 + L)
                    if s.allele == "alt":
                        k = s.start - w0
                        text = text[:k] + s.alt + text[k + 1:]
                    one_hot = dna.one_hot(text, dtype=np.float32)
                    position = (s.start + s.end) // 2 - w0
                    bins = score_bins(stat, num_bins, pool_width, offset, mut_start, mut_stop, position, tss_flank) \
                        if predictor.positional else np.zeros(0, np.int64)
                    res = saturation_mutagenesis(predictor, one_hot, mut_start, mut_stop, bins, tidx, pool_width,
                                                 offset, field)
                    seqs[i] = one_hot[mut_start:mut_stop].astype(np.uint8)
                    scores[i] = res.scores
                    imp[i] = importance(res.scores)
                    ref_scores[i] = res.ref_score
                    predicted += res.predicted
                    skipped += res.skipped
                seconds = time.time() - started
                for name, values in (("chrom", [s.chrom for s, _ in todo]), ("name", [s.name for s, _ in todo]),
                                     ("strand", [s.strand for s, _ in todo]), ("allele", [s.allele for s, _ in todo]),
                                     ("ref", [s.ref for s, _ in todo]), ("alt", [s.alt for s, _ in todo]),
                                     ("target_ids", [c[1] for c in chosen]), ("target_labels", [c[2] for c in chosen])):
                    h5.create_dataset(name, data=np.array(values, dtype="S"))
                w0s = np.array([w0 for _, w0 in todo], dtype=np.int64)
                h5.create_dataset("window_start", data=w0s)
                h5.create_dataset("start", data=w0s + mut_start)
                h5.create_dataset("end", data=w0s + mut_stop)
                h5.create_dataset("site_start", data=np.array([s.start for s, _ in todo], dtype=np.int64))
                h5.create_dataset("site_end", data=np.array([s.end for s, _ in todo], dtype=np.int64))
                counts.update(mutants_predicted=predicted, mutants_out_of_reach=skipped, seconds=round(seconds, 2),
                              mutants_per_second=round(predicted / seconds, 1) if seconds > 0 else None)
                h5.attrs.update(model=os.path.abspath(model_path), genome=os.path.abspath(genome.path), stat=stat,
                                mut_len=mut_len, tss_flank=tss_flank, rc=bool(rc), shifts=",".join(map(str, shifts)),
                                method=predictor.method, seq_length=L, pool_width=pool_width,
                                **{k: v for k, v in counts.items() if v is not None})
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log.info(f"wrote {out_path}: {n:,} sequences, {predicted:,} mutants predicted at "
                 f"{counts['mutants_per_second'] or 0:,.0f}/s ({predictor.method} path)"
                 + (f", {skipped:,} out of the scored bins' reach (0)" if skipped else ""))
        if plots:
            counts["plots"] = len(plot_scores(out_path, os.path.join(str(out_dir), "plots")))
        return counts


def plot_scores(scores_path, plot_dir) -> list[str]:
    """One PNG per sequence and target of a ``scores.h5``: loss and gain logos and a heatmap."""
    import os

    import h5py

    from basenji_tk import plots
    from basenji_tk.analysis.evaluate import file_label

    os.makedirs(plot_dir, exist_ok=True)
    paths = []
    with h5py.File(scores_path, "r") as h5:
        targets = [t.decode() for t in h5["target_ids"][:]]
        names = [x.decode() for x in h5["name"][:]]
        alleles = [x.decode() for x in h5["allele"][:]]
        chroms = [x.decode() for x in h5["chrom"][:]]
        starts = h5["start"][:]
        for i in range(len(names)):
            seq = h5["seqs"][i].astype(np.float32)
            sc = h5["scores"][i].astype(np.float32)
            label = file_label(names[i] + (f"_{alleles[i]}" if alleles[i] else ""))
            for k, t in enumerate(targets):
                path = os.path.join(plot_dir, f"{i:04d}_{label}_{file_label(t)}.png")
                title = f"{names[i]}{' (' + alleles[i] + ')' if alleles[i] else ''} {chroms[i]}:{starts[i]:,} — {t}"
                paths.append(plots.ism_figure(sc[:, :, k], seq, path, title=title, start=int(starts[i])))
    return paths


# ----------------------------------------------------------------------------- saliency.py
def saliency_maps(model_dir, bed, out_dir, fasta=None, target="0", stat: str = "center", tss_flank: int = 0,
                  center_len: int = 200, layer=None, batch_size: int = 8, plots: bool = True, model_file=None,
                  quiet: bool = False, force: bool = False) -> dict:
    """``saliency.py``: gradient x input and Basenji's bin saliency for a window centred on each
    BED region, for one target's output summed over ``stat`` bins. Writes ``saliency.h5``, BigWigs
    ``grad_x_input.bw`` and ``bin_saliency.bw``, and a track plot per region; returns counts."""
    import os

    import h5py
    from tqdm import tqdm

    from basenji_tk import cli, plots as plot
    from basenji_tk.data import dna
    from basenji_tk.analysis.evaluate import file_label
    from basenji_tk.analysis.predict import _tmp_name, bin_offset, write_window_bigwigs
    from basenji_tk.analysis.trained import TrainedModel, folder_genome

    if stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    genome = folder_genome(model_dir, fasta)
    sites = read_sites(bed, genome)

    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        model, model_path = tm.model, tm.model_path
        details, chosen = tm.track_layout("saliency.py"), tm.select_targets(target, option="--target")
        L, num_bins, pool_width = details["seq_length"], details["num_bins"], details["pool_width"]
        if len(chosen) != 1:
            raise InputError(f"--target: choose one target, got {len(chosen)}")
        t_index, t_id = chosen[0][0], chosen[0][1]
        if layer is not None:
            names = [x.name for x in model.layers]
            if layer not in names:
                raise InputError(f"--layer: '{layer}' is not a layer of {model_path} (e.g. {', '.join(names[-8:])})")
            layer = model.get_layer(layer)
        files.refuse_overwrite(out_dir, ["saliency.h5"], force)
        maps = Saliency(model, layer)
        layer = maps.layer
        R = int(layer.output.shape[1])
        offset = bin_offset(L, num_bins, pool_width)
        c0 = L // 2 - center_len // 2
        n = len(sites)
        w0s = np.array([(s.start + s.end) // 2 - L // 2 for s in sites], dtype=np.int64)
        out_path = os.path.join(str(out_dir), "saliency.h5")
        tmp = _tmp_name(out_path)
        try:
            with h5py.File(tmp, "w") as h5:
                grads = h5.create_dataset("gradients", (n, L, 4), dtype="float16", compression="gzip")
                gxi = h5.create_dataset("grad_x_input", (n, L), dtype="float32", compression="gzip")
                sal = h5.create_dataset("bin_saliency", (n, R), dtype="float32")
                for i in tqdm(range(0, n, batch_size), desc="batches", unit="batch",
                              disable=not cli.show_progress(quiet)):
                    rows = range(i, min(n, i + batch_size))
                    x = np.stack([dna.one_hot(genome.fetch(sites[j].chrom, int(w0s[j]), int(w0s[j]) + L),
                                              dtype=np.float32) for j in rows])
                    for j in rows:  # the bins may differ per region (tss)
                        k = j - i
                        pos = (sites[j].start + sites[j].end) // 2 - int(w0s[j])
                        bins = score_bins(stat, num_bins, pool_width, offset, c0, c0 + center_len, pos, tss_flank)
                        g, sv = maps(x[k:k + 1], t_index, bins)
                        grads[j] = g[0]
                        gxi[j] = (g[0] * x[k]).sum(axis=1)
                        sal[j] = sv[0]
                for name, values in (("chrom", [s.chrom for s in sites]), ("name", [s.name for s in sites]),
                                     ("strand", [s.strand for s in sites])):
                    h5.create_dataset(name, data=np.array(values, dtype="S"))
                h5.create_dataset("start", data=w0s)
                h5.create_dataset("end", data=w0s + L)
                h5.attrs.update(model=os.path.abspath(model_path), genome=os.path.abspath(genome.path), target=t_id,
                                stat=stat, layer=layer.name, bin_width=L // R, seq_length=L)
                gx, sv = gxi[:], sal[:]
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        chroms = np.array([s.chrom for s in sites])
        bw = [write_window_bigwigs([os.path.join(str(out_dir), "grad_x_input.bw")], genome.sizes, chroms, w0s, 1,
                                   lambda rows: gx[rows][:, :, None]),
              write_window_bigwigs([os.path.join(str(out_dir), "bin_saliency.bw")], genome.sizes, chroms, w0s, L // R,
                                   lambda rows: sv[rows][:, :, None])]
        pngs = []
        if plots:
            for j, s in enumerate(sites):
                path = os.path.join(str(out_dir), f"{j:04d}_{file_label(s.name)}_{file_label(t_id)}.png")
                pngs.append(plot.saliency_track(sv[j], path, start=int(w0s[j]), bin_width=L // R, chrom=s.chrom,
                                                title=f"{s.name}: bin saliency for {t_id} ({stat} bins)"))
        log.info(f"wrote {out_path}, {len(bw)} BigWigs and {len(pngs)} plots for {n} regions (layer {layer.name}, "
                 f"{R} bins of {L // R} bp)")
        return {"regions": n, "layer": layer.name, "bins": R, "bin_width": L // R, "plots": len(pngs)}
