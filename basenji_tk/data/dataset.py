"""make_targets: FASTA + coverage tracks -> a training dataset folder.

The folder holds ``sequences.bed`` (chrom, start, end, split; one row per record),
``targets.txt`` (the resolved targets table), ``statistics.json`` and
``tfrecords/{train,valid,test}-N.tfr``. It is written under a temporary name
next to the destination and renamed into place only when complete.
"""

import hashlib
import json
import logging
import os
import queue
import shutil
import threading
from dataclasses import dataclass

import numpy as np

from basenji_tk import __version__, files
from basenji_tk.data import dna, records
from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError
from basenji_tk.files import file_sha256

log = logging.getLogger("basenji_tk")

FORMAT = "basenji_tk.dataset/1"
TARGET_DTYPES = ("float16", "float32")


@dataclass
class Options:
    """What ``make_targets.py`` takes besides the three paths (see its ``--help``)."""

    seq_length: int = 131072
    pool_width: int = 128
    stride: int | None = None  # None: seq_length (no overlap)
    max_n: float = 0.1
    gap_min: int = 1000
    unmap: tuple = ()
    blacklist: tuple = ()
    valid: str = "0.1"
    test: str = "0.1"
    chunk_size: int = 1_048_576
    chroms: tuple = ()
    seed: int = 0
    seqs_per_tfr: int = 256
    target_dtype: str = "float16"
    force: bool = False
    progress: bool = False
    sizes: str | None = None  # chromosome sizes (signal-only datasets without a FASTA)
    regions: tuple = ()  # BED files: tile only inside these intervals


NEW_OPTIONS = {"sizes": None, "regions": ()}  # left out of an old call's settings while unset




def _check_options(o: Options, pool=True):
    for name in ("seq_length", "pool_width", "gap_min", "chunk_size", "seqs_per_tfr"):
        if getattr(o, name) <= 0:
            raise InputError(f"--{name} must be a positive integer, got {getattr(o, name)}")
    if pool and o.seq_length % o.pool_width:
        raise InputError(
            f"--seq_length {o.seq_length} is not a multiple of --pool_width {o.pool_width} "
            f"(nearest: {o.seq_length // o.pool_width * o.pool_width} or "
            f"{(o.seq_length // o.pool_width + 1) * o.pool_width})"
        )
    if o.stride is not None and o.stride <= 0:
        raise InputError(f"--stride must be a positive integer, got {o.stride}")
    if not 0 <= o.max_n <= 1:
        raise InputError(f"--max_n must be a fraction in [0, 1], got {o.max_n}")
    if o.target_dtype not in TARGET_DTYPES:
        raise InputError(f"--target_dtype must be one of {', '.join(TARGET_DTYPES)}, got {o.target_dtype}")


def _check_destination(out_dir, fingerprint, force):
    """Refuse to replace a different dataset or unrelated files unless forced."""
    if not os.path.exists(out_dir):
        return
    if not os.path.isdir(out_dir):
        raise InputError(f"{out_dir}: exists and is not a folder")
    if not os.listdir(out_dir) or force:
        return
    stats_path = os.path.join(out_dir, "statistics.json")
    old = None
    if os.path.exists(stats_path):
        try:
            with open(stats_path) as fh:
                old = json.load(fh).get("fingerprint")
        except (OSError, json.JSONDecodeError):
            old = None
    if old is None:
        raise InputError(f"{out_dir}: folder holds other files, not a dataset; choose another -o or pass --force")
    if old != fingerprint:
        raise InputError(
            f"{out_dir}: already holds a different dataset (other inputs or options); "
            "choose another -o or pass --force to replace it"
        )


def _settings(o: Options) -> dict:
    """The options recorded in statistics.json (the new ones only when set, so that an old call's
    output stays as it was)."""
    return {k: v for k, v in vars(o).items()
            if k not in ("force", "progress") and not (k in NEW_OPTIONS and v == NEW_OPTIONS[k])}


def inside(contigs, regions: dict) -> list:
    """The parts of ``contigs`` inside ``regions`` ``{chrom: IntervalSet}``, in contig order."""
    out = []
    for c in contigs:
        r = regions.get(c.chrom)
        if r is None:
            continue
        i = np.searchsorted(r.ends, c.start, side="right")
        j = np.searchsorted(r.starts, c.end, side="left")
        for s, e in zip(r.starts[i:j], r.ends[i:j]):
            out.append(gn.Interval(c.chrom, max(int(s), c.start), min(int(e), c.end)))
    return out


def plan_sequences(genome, o: Options):
    """Contigs, splits and tiling: ``(rows, counts)`` where each row is ``(Interval, split)``.

    Train rows are shuffled with ``o.seed`` (so a shuffle buffer mixes the genome);
    valid and test rows stay in genome order.
    """
    chroms = list(o.chroms) or genome.chroms
    missing = [c for c in chroms if c not in genome.sizes]
    if missing:
        raise InputError(f"--chroms: not in {genome.path}: {', '.join(missing)}")
    unmap = gn.read_bed_sets(o.unmap, chroms)
    blacklist = gn.read_bed_sets(o.blacklist, chroms)
    contigs, masked = gn.find_contigs(genome, o.gap_min, unmap, blacklist, chroms)
    if o.regions:
        contigs = inside(contigs, gn.read_bed_sets(o.regions, chroms))
    valid, test = tg.parse_split(o.valid, "--valid"), tg.parse_split(o.test, "--test")
    for opt, spec in (("--valid", valid), ("--test", test)):
        if isinstance(spec, list):
            absent = [c for c in spec if c not in genome.sizes and
                      gn.normalize_chrom(c) not in {gn.normalize_chrom(g) for g in genome.sizes}]
            if absent:
                raise InputError(f"{opt}: chromosome(s) not in {genome.path}: {', '.join(absent)}")
    stride = o.stride or o.seq_length
    by_split = tg.assign_splits(contigs, valid, test, o.seq_length, o.chunk_size, o.seed)
    rows, dropped = [], 0
    for split in tg.SPLITS:
        for piece in by_split[split]:
            for start in tg.tile(piece, o.seq_length, stride):
                end = start + o.seq_length
                if masked[piece.chrom].covered(start, end) > o.max_n * o.seq_length:
                    dropped += 1
                    continue
                rows.append((gn.Interval(piece.chrom, start, end), split))
    counts = {s: sum(1 for _, sp in rows if sp == s) for s in tg.SPLITS}
    log.info(f"{len(contigs)} contigs; {sum(counts.values())} sequences of {o.seq_length} bp "
             f"(train {counts['train']}, valid {counts['valid']}, test {counts['test']}); "
             f"{dropped} dropped for > {o.max_n:g} N/unmappable")
    wanted = {"train": True, "valid": valid != 0.0, "test": test != 0.0}
    for split in tg.SPLITS:
        if wanted[split] and counts[split] == 0:
            raise InputError(
                f"the {split} split is empty ({sum(counts.values())} sequences in all): "
                f"give it a larger share, a smaller --chunk_size ({o.chunk_size}) or a shorter --seq_length"
            )
    train = [r for r in rows if r[1] == "train"]
    order = np.random.default_rng(o.seed).permutation(len(train))
    rows = [train[i] for i in order] + [r for r in rows if r[1] != "train"]
    return rows, counts


def make_targets(fasta, targets_file, out_dir, options: Options | None = None) -> dict:
    """Build the dataset folder ``out_dir``; returns its statistics.

    Options, the targets table and the FASTA are checked first; then ``out_dir`` is claimed
    (:func:`files.claim`, lock file beside it) before any hashing, tiling or reading, so an
    unwritable location or a second run into the same folder is one :class:`InputError`."""
    o = options or Options()
    _check_options(o)
    out_dir = os.path.abspath(str(out_dir))
    targets = tg.read_targets(targets_file)
    genome = gn.Genome(fasta)
    try:
        with files.claim(out_dir, folder=False):
            return _make(genome, targets, out_dir, o)
    finally:
        genome.close()


def _make(genome, targets, out_dir, o: Options) -> dict:
    """The work of :func:`make_targets`, inside its claim on ``out_dir``."""
    hashes = {"genome": file_sha256(genome.path)}
    hashes.update({t.identifier: file_sha256(t.file) for t in targets})
    settings = _settings(o)
    settings["stride"] = o.stride or o.seq_length
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    table = [{k: v for k, v in vars(t).items() if k != "row"} for t in targets]
    fingerprint = hashlib.sha256(json.dumps([FORMAT, settings, table, hashes], sort_keys=True,
                                            default=str).encode()).hexdigest()
    _check_destination(out_dir, fingerprint, o.force)

    rows, counts = plan_sequences(genome, o)
    needed = sorted({iv.chrom for iv, _ in rows}, key=genome.chroms.index)
    tracks = [tg.open_track(t, genome.chroms, needed) for t in targets]
    from basenji_tk.data import tfrecords as tfr  # TensorFlow only once the inputs look right
    target_length = o.seq_length // o.pool_width
    dtype = np.dtype(o.target_dtype)

    tmp = records.private_temp_dir(out_dir)
    try:
        os.makedirs(os.path.join(tmp, "tfrecords"))
        overflow = {t.identifier: 0 for t in targets}
        from tqdm import tqdm

        with open(os.path.join(tmp, "sequences.bed"), "w") as bed, \
                tfr.BackgroundWriter(os.path.join(tmp, "tfrecords"), tg.SPLITS, o.seqs_per_tfr) as writer:
            sequences = background(_read_sequences(genome.path, rows))
            for index, (iv, split) in enumerate(tqdm(rows, desc="sequences", unit="seq", disable=not o.progress)):
                codes = next(sequences)
                y = tg.target_matrix(tracks, iv.chrom, iv.start, iv.end, o.pool_width)
                if dtype == np.float16:
                    big = np.abs(y) > np.finfo(np.float16).max
                    if big.any():
                        for j in np.flatnonzero(big.any(axis=0)):
                            overflow[targets[j].identifier] += int(big[:, j].sum())
                        y = np.clip(y, -np.finfo(np.float16).max, np.finfo(np.float16).max)
                writer.write(split, tfr.example_bytes(index, codes, y.astype(dtype)))
                bed.write(f"{iv.chrom}\t{iv.start}\t{iv.end}\t{split}\n")

        bad = {}
        for track in tracks:
            t = track.target
            bad[t.identifier] = {"nan": track.nan_count, "no_data": track.no_data_count, "inf": track.inf_count,
                                 "float16_overflow": overflow[t.identifier]}
            if track.nan_count or track.inf_count or track.no_data_count:
                log.info(f"{t.identifier}: {track.nan_count:,} NaN, {track.inf_count:,} inf and "
                         f"{track.no_data_count:,} no-data base values read as 0")
            if overflow[t.identifier]:
                log.warning(f"warning: {t.identifier}: {overflow[t.identifier]} bins above the float16 maximum "
                            "were clipped to it; set a 'clip' or use --target_dtype float32")
            track.close()

        _write_table(targets, os.path.join(tmp, "targets.txt"))
        stats = {
            "format": FORMAT,
            "created_by": f"basenji_tk {__version__}",
            "seq_length": o.seq_length,
            "pool_width": o.pool_width,
            "crop_bp": 0,
            "target_length": target_length,
            "num_targets": len(targets),
            "target_ids": [t.identifier for t in targets],
            "target_dtype": o.target_dtype,
            "sequence_encoding": "uint8 codes A0 C1 G2 T3 N4",
            "train_seqs": counts["train"], "valid_seqs": counts["valid"], "test_seqs": counts["test"],
            "counts": counts,
            "records_per_file": o.seqs_per_tfr,
            "settings": settings,
            "genome": {"path": os.path.abspath(genome.path), "sha256": hashes["genome"],
                       "chrom_sizes": {c: genome.sizes[c] for c in needed}},
            "files": {t.identifier: {"path": os.path.abspath(t.file), "sha256": hashes[t.identifier]}
                      for t in targets},
            "nonfinite_values": bad,
            "fingerprint": fingerprint,
        }
        # the contract of every dataset (basenji_tk.data.records): the same two features an older
        # statistics.json without them is read as; FORMAT above still keys the fingerprint
        stats["format"], stats["kind"] = records.FORMAT, "tiling"
        stats["features"] = {f.name: f.to_json() for f in records.old_features(stats, out_dir).values()}
        with open(os.path.join(tmp, "statistics.json"), "w") as fh:
            json.dump(stats, fh, indent=2)
            fh.write("\n")
        records.replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(f"wrote {out_dir}")
    return stats


def _read_sequences(fasta, rows):
    """Integer codes of each row's sequence, from a FASTA handle of its own."""
    genome = gn.Genome(fasta)
    try:
        for iv, _ in rows:
            yield dna.encode(genome.fetch(iv.chrom, iv.start, iv.end))
    finally:
        genome.close()


def background(items, maxsize=32):
    """Run the generator ``items`` in a thread, a few items ahead; errors reach the caller.

    pysam reads and decompresses without holding the GIL, so reading the genome
    overlaps with computing targets.
    """
    q = queue.Queue(maxsize=maxsize)
    done = object()

    def run():
        try:
            for item in items:
                q.put((True, item))
        except BaseException as err:
            q.put((False, err))
        q.put((True, done))

    threading.Thread(target=run, daemon=True).start()
    while True:
        ok, item = q.get()
        if not ok:
            raise item
        if item is done:
            return
        yield item


def _write_table(targets, path):
    cols = ("identifier", "file", "sum_stat", "clip", "clip_soft", "scale", "score_column", "description")
    with open(path, "w") as fh:
        fh.write("\t".join(cols) + "\n")
        for t in targets:
            values = [t.identifier, os.path.abspath(t.file), t.sum_stat, f"{t.clip:g}", f"{t.clip_soft:g}",
                      f"{t.scale:g}", str(t.score_column or ""), t.description]
            fh.write("\t".join(values) + "\n")


# ----------------------------------------------------------------------------- feature plans
FORMAT_2 = "basenji_tk.dataset/2"


class ChromSizes:
    """A genome without sequence (signal-only datasets): chromosome sizes, no N runs."""

    def __init__(self, sizes: dict, path: str):
        self.sizes, self.path = dict(sizes), path

    @property
    def chroms(self):
        return list(self.sizes)

    def n_runs(self, chrom):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)

    def close(self):
        pass


def read_sizes(path) -> dict:
    """A chromosome sizes file (``chrom<TAB>size`` per line, UCSC chrom.sizes) -> ``{chrom: size}``."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: chromosome sizes file not found")
    sizes = {}
    for n, line in enumerate(open(path), 1):
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        if len(f) < 2 or not f[1].isdigit() or int(f[1]) <= 0:
            raise InputError(f"{path}:{n}: expected 'chrom<TAB>size' with a positive size, got {line.strip()!r}")
        if f[0] in sizes:
            raise InputError(f"{path}:{n}: chromosome {f[0]} listed twice")
        sizes[f[0]] = int(f[1])
    if not sizes:
        raise InputError(f"{path}: no chromosome sizes in the file")
    return sizes


def sizes_from_tracks(plan) -> ChromSizes:
    """Chromosome sizes from the header of the plan's first BigWig track."""
    import pyBigWig

    for g in plan.groups:
        for t in g.targets:
            with open(t.file, "rb") as fh:
                if fh.read(4) != tg.BIGWIG_MAGIC:
                    continue
            bw = pyBigWig.open(t.file)
            sizes = dict(bw.chroms())
            bw.close()
            return ChromSizes(sizes, f"{t.file} (BigWig header)")
    raise InputError(f"{plan.path}: no FASTA and no BigWig track to take chromosome sizes from; give --sizes")


def make_tiling(fasta, plan_path, out_dir, options: Options | None = None) -> dict:
    """Tile a genome into windows of ``seq_length`` and write the features of the plan
    (:mod:`basenji_tk.data.features`) through :class:`basenji_tk.data.records.DatasetWriter`.

    ``fasta`` may be None for a plan without ``sequence``: chromosome sizes then come from
    ``options.sizes`` or the first BigWig track's header, and contigs are whole chromosomes
    (no N masking; ``--unmap``/``--blacklist`` still apply). Returns the statistics."""
    from basenji_tk.data import features as ft

    o = options or Options()
    _check_options(o, pool=False)  # each feature has its own resolution
    out_dir = os.path.abspath(str(out_dir))
    plan = ft.load_plan(plan_path).check_window(o.seq_length)
    if plan.sequence and fasta is None:
        raise InputError(f"{plan_path}: the plan asks for the sequence ('sequence': true) but no FASTA was given")
    if fasta is not None:
        genome = gn.Genome(fasta)
    elif o.sizes:
        genome = ChromSizes(read_sizes(o.sizes), str(o.sizes))
    else:
        genome = sizes_from_tracks(plan)
    try:
        with files.claim(out_dir, folder=False):
            return _make_tiling(genome, fasta is not None, plan, out_dir, o)
    finally:
        genome.close()
        plan.close()


def _make_tiling(genome, has_fasta, plan, out_dir, o: Options) -> dict:
    from basenji_tk.data import records

    with open(plan.path, "rb") as fh:
        plan_text = fh.read().decode()
    hashes = {"genome": file_sha256(genome.path)} if has_fasta else {}
    hashes.update({t.file: file_sha256(t.file) for g in plan.groups for t in g.targets})
    settings = {k: v for k, v in _settings(o).items() if k not in ("pool_width", "target_dtype")}
    settings["stride"] = o.stride or o.seq_length
    settings["regions"] = [os.path.abspath(r) for r in o.regions]
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    tables = {g.tracks_file: open(g.tracks_file).read() for g in plan.groups}  # clip, scale, sum_stat
    fingerprint = hashlib.sha256(json.dumps([FORMAT_2, settings, plan_text, tables, hashes], sort_keys=True,
                                            default=str).encode()).hexdigest()
    _check_destination(out_dir, fingerprint, o.force)

    rows, counts = plan_sequences(genome, o)
    needed = sorted({iv.chrom for iv, _ in rows}, key=genome.chroms.index)
    plan.open(genome.sizes, needed)
    features = plan.features()
    from tqdm import tqdm

    normalised = plan.quantile_pass([(iv.chrom, iv.start, iv.end) for iv, _ in rows], progress=o.progress)
    rest = [g.name for g in plan.groups if g.name not in normalised]
    info = {
        "seq_length": o.seq_length,
        "settings": settings,
        "plan": {"path": os.path.abspath(plan.path), "text": plan_text},
        "genome": {"path": os.path.abspath(genome.path), "sha256": hashes.get("genome"), "has_sequence": has_fasta,
                   "chrom_sizes": {c: genome.sizes[c] for c in needed}},
        "files": {f: {"sha256": h} for f, h in hashes.items() if f != "genome"},
        "fingerprint": fingerprint,
    }
    with records.DatasetWriter(out_dir, features, kind="tiling", records_per_file=o.seqs_per_tfr) as writer:
        sequences = background(_read_sequences(genome.path, rows)) if plan.sequence else None
        for index, (iv, split) in enumerate(tqdm(rows, desc="sequences", unit="seq", disable=not o.progress)):
            values = plan.values(iv.chrom, iv.start, iv.end, rest)
            for name, stacked in normalised.items():
                values[name] = stacked[index]
            if sequences is not None:
                values["sequence"] = next(sequences)
            writer.add(split, values, (iv.chrom, iv.start, iv.end))
        info["nonfinite_values"] = plan.track_counts()
        stats = writer.finish(info)
    log.info(f"wrote {out_dir}")
    return stats


def build(fasta, targets_file, plan_path, out_dir, options: Options) -> dict:
    """What ``make_targets.py`` does with its arguments: ``FASTA TARGETS`` (the old dataset, unchanged),
    or ``[FASTA] --features PLAN``."""
    if plan_path is None:
        if fasta is None or targets_file is None:
            raise InputError("give FASTA and TARGETS, or --features PLAN.json (with a FASTA unless the plan "
                             "has no sequence)")
        if options.sizes:
            raise InputError("--sizes is for --features plans without a FASTA")
        return make_targets(fasta, targets_file, out_dir, options)
    if targets_file is not None:
        raise InputError(f"--features {plan_path} replaces TARGETS ({targets_file}): give one of them")
    if fasta is not None and options.sizes:
        raise InputError("--sizes is for plans without a FASTA; the FASTA gives the chromosome sizes")
    return make_tiling(fasta, plan_path, out_dir, options)
