"""The model zoo: one small trained model folder of every kind, built once per test session.

Each ``zoo_KIND`` session fixture returns a :class:`ZooModel` (model folder, the dataset it was
trained on, a BED of a few regions of data/'s genome, the extra options every script needs for
it); ``zoo`` is all of them by kind. Everything comes from data/ (nothing from ../shared, so
nothing skips): the models are tiny and train one epoch of two steps, so the figures they score
are poor on purpose; tests check shapes, columns and that numbers are what the model gives.

Kinds:

- ``binned``: the demo binned model (conftest's ``tiny_model``, sequence -> 128 bins x 3 tracks);
- ``pairs``: ChromDragoNN-style two inputs, sequence + a context's vector of 20 "TFs" of
  SEMI-SYNTHETIC expression, one sigmoid output (a make_pairs.py dataset of 5 contexts);
- ``profile``: a per-base profile (softmax over the 100 central bp of 3 tracks) and their totals,
  sequence only, on a make_regions.py dataset around CTCF peaks;
- ``table``: one value per sequence (4 MPRA tasks) on the SEMI-SYNTHETIC make_table.py dataset;
- ``signal``: no sequence, two BED tracks at 100 bp in -> the CTCF peak track, cropped, out (a
  make_targets.py --features dataset);
- ``imported_keras``: a cropped per-base seq-to-seq Keras model (400 bp in, 100 bp x 3 out),
  saved as .keras by the fixture and imported with import_model.py;
- ``imported_h5``: a Keras model with an open input length saved as a legacy .h5, imported with
  --seq_length 16384 (128 bp bins x the 3 demo tracks).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, FASTA, TARGETS, run_script, write_json

VCF = DATA / "variants_1kg.vcf.gz"
KINDS = ("binned", "pairs", "profile", "table", "signal", "imported_keras", "imported_h5")
# a few regions of data/'s genome (contig "20"), away from its ends and from the N run at 0-60 kb
REGIONS = [("20", 1_500_000, 1_500_400, "r0"), ("20", 2_000_000, 2_000_100, "r1"), ("20", 5_000_000, 5_000_200, "r2")]


@dataclass
class ZooModel:
    """One zoo member: ``kind``, ``model_dir``, the training ``data_dir``, a ``bed`` of regions;
    ``options``: the input options every script needs for it (``--context cpg`` for pairs);
    ``genome_options``: what scripts that read the genome need besides (``--fasta`` for a model whose
    dataset has no genome); ``predict_options`` is both."""

    kind: str
    model_dir: Path
    data_dir: Path
    bed: Path
    options: list = field(default_factory=list)
    genome_options: list = field(default_factory=list)
    vcf: Path = VCF

    @property
    def predict_options(self) -> list:
        return [*self.options, *self.genome_options]


def _bed(folder: Path) -> Path:
    path = folder / "regions.bed"
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in REGIONS))
    return path


def _train(params: dict, data, out: Path) -> Path:
    from basenji_tk.model.train import Options, train

    path = write_json(out.parent / f"{out.name}_params.json", params)
    train(path, [data], str(out), Options(seed=0, quiet=True))
    return out


def _tracks(path: Path, rows) -> Path:
    path.write_text("identifier\tfile\tsum_stat\tdescription\n"
                    + "".join(f"{i}\t{f}\tmean\t{d}\n" for i, f, d in rows))
    return path


@pytest.fixture(scope="session")
def zoo_binned(tiny_model, demo_dataset, tmp_path_factory):
    return ZooModel("binned", tiny_model, demo_dataset, _bed(tmp_path_factory.mktemp("zoo_binned")))


@pytest.fixture(scope="session")
def zoo_pairs(tmp_path_factory):
    from basenji_tk.data import pairs

    work = tmp_path_factory.mktemp("zoo_pairs")
    ctcf = (DATA / "ctcf_peaks.bed").read_text().splitlines()
    (work / "ctcf_half_a_SEMI-SYNTHETIC.bed").write_text("\n".join(ctcf[::2]) + "\n")
    (work / "ctcf_half_b_SEMI-SYNTHETIC.bed").write_text("\n".join(ctcf[1::2]) + "\n")
    contexts = {"ctcf": DATA / "ctcf_peaks.bed", "cpg": DATA / "cpg_islands.bed", "tss": DATA / "tss_pm500.bed",
                "half_a": work / "ctcf_half_a_SEMI-SYNTHETIC.bed", "half_b": work / "ctcf_half_b_SEMI-SYNTHETIC.bed"}
    (work / "contexts.tsv").write_text("context\tpeaks\n" + "".join(f"{k}\t{v}\n" for k, v in contexts.items()))
    rng = np.random.default_rng(0)
    tfs = [f"TF{i}" for i in range(20)]
    (work / "expression_SEMI-SYNTHETIC.tsv").write_text(
        "context\t" + "\t".join(tfs) + "\n"
        + "".join(f"{k}\t" + "\t".join(f"{v:.3f}" for v in rng.lognormal(1, 1, len(tfs))) + "\n" for k in contexts))
    (work / "window.bed").write_text("20\t1000000\t1300000\n")
    data = work / "pairs_SEMI-SYNTHETIC"
    pairs.make_pairs(FASTA, work / "contexts.tsv", work / "expression_SEMI-SYNTHETIC.tsv", data, pairs.Options(
        seq_length=500, bin_length=200, stride=500, regions=str(work / "window.bed"), valid="0.25", test="0",
        chunk_size=60_000, valid_contexts="half_b", test_contexts="tss", empty_fraction=0.1, log="log2"))
    params = {
        "train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "loss": "bce", "monitor": "val_loss", "seed": 0},
        "model": {"name": "zoo_pairs",
                  "inputs": {"sequence": {"kind": "sequence", "shape": [500, 4]},
                             "expression": {"kind": "vector", "shape": [20]}},
                  "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 9, "pool_size": 4, "batch_norm": False},
                            {"name": "conv_block", "filters": 8, "kernel_size": 5, "pool_size": 5, "batch_norm": False}],
                  "heads": {"accessible": {"label": "accessible", "loss": "bce", "blocks": [
                      {"name": "expression_fusion", "input": "expression", "units": [16], "dropout": 0.1,
                       "batch_norm": False},
                      {"name": "final", "units": 1, "activation": "sigmoid"}]}}}}
    model = _train(params, data, work / "model")
    return ZooModel("pairs", model, data, _bed(work), ["--context", "cpg"])


@pytest.fixture(scope="session")
def zoo_profile(tmp_path_factory):
    from basenji_tk.data.regions import Options, make_regions

    work = tmp_path_factory.mktemp("zoo_profile")
    _tracks(work / "cells.txt", [("tss", DATA / "tss_pm500.bed", "TSS +-500"),
                                 ("cpg", DATA / "cpg_islands.bed", "CpG islands"),
                                 ("ctcf", DATA / "ctcf_peaks.bed", "CTCF peaks")])
    write_json(work / "plan.json", {"sequence": True, "labels": {
        "profile": {"tracks": "cells.txt", "resolution": 1, "crop": 100, "label_type": "profile"},
        "total": {"tracks": "cells.txt", "total": True, "crop": 100, "log": True}}})
    peaks = work / "ctcf_first80.bed"
    peaks.write_text("".join((DATA / "ctcf_peaks.bed").read_text().splitlines(keepends=True)[:80]))
    data = work / "regions_ctcf"
    make_regions(FASTA, peaks, data, Options(seq_length=400, valid="0.2", test="0.2", chunk_size=300_000,
                                              blacklist=(str(DATA / "blacklist.bed"),)),
                 plan_path=work / "plan.json")
    params = {
        "train": {"batch_size": 8, "epochs": 1, "steps_per_epoch": 2, "monitor": "val_loss", "seed": 0},
        "model": {"name": "zoo_profile", "inputs": {"sequence": {"kind": "sequence", "shape": [400, 4]}},
                  "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 9, "batch_norm": False}],
                  "heads": {"profile": {"label": "profile", "loss": "profile_ce", "weight": 0.5, "blocks": [
                                {"name": "conv_block", "filters": 3, "kernel_size": 5, "batch_norm": False,
                                 "activation": "linear"},
                                {"name": "cropping", "crop": 150}, {"name": "softmax_positions"}]},
                            "total": {"label": "total", "loss": "mse", "weight": 0.5, "blocks": [
                                {"name": "pool", "pool_size": 4},
                                {"name": "final", "units": 3, "flatten": True, "activation": "linear"}]}}}}
    return ZooModel("profile", _train(params, data, work / "model"), data, _bed(work))


@pytest.fixture(scope="session")
def zoo_table(tmp_path_factory):
    from test_tables import options, simulate_mpra

    from basenji_tk.data import tables

    work = tmp_path_factory.mktemp("zoo_table")
    table = work / "mpra_SEMI-SYNTHETIC.tsv"
    simulate_mpra(table, n_regions=8)
    data = work / "mpra_SEMI-SYNTHETIC"
    tables.build_table_dataset(table, data, options(replicate_weight=True, valid=0.25, test=0.25))
    params = {
        "train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "loss": "mse", "monitor": "val_loss",
                  "sample_weight": "weight", "seed": 0},
        "model": {"name": "zoo_table", "inputs": {"sequence": {"kind": "sequence", "shape": [295, 4]}},
                  "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 4, "padding": "valid",
                             "batch_norm": False},
                            {"name": "pool", "pool_size": 44, "padding": "valid"}],
                  "heads": {"activity": {"label": "activity", "loss": "mse", "blocks": [
                      {"name": "final", "units": 4, "flatten": True, "activation": "linear"}]}}}}
    return ZooModel("table", _train(params, data, work / "model"), data, _bed(work), [], ["--fasta", FASTA])


@pytest.fixture(scope="session")
def zoo_signal(tmp_path_factory):
    from basenji_tk.data.dataset import Options, make_tiling

    work = tmp_path_factory.mktemp("zoo_signal")
    _tracks(work / "marks.txt", [("tss", DATA / "tss_pm500.bed", "TSS +-500"),
                                 ("cpg", DATA / "cpg_islands.bed", "CpG islands")])
    _tracks(work / "ctcf.txt", [("ctcf", DATA / "ctcf_peaks.bed", "CTCF peaks")])
    write_json(work / "plan.json", {"sequence": False,
                                    "inputs": {"marks": {"tracks": "marks.txt", "resolution": 100}},
                                    "labels": {"ctcf": {"tracks": "ctcf.txt", "resolution": 100, "crop": 1000}}})
    (work / "window.bed").write_text("20\t1000000\t2000000\n")
    data = work / "signal_tiles"
    make_tiling(FASTA, work / "plan.json", data, Options(seq_length=2000, stride=2000, regions=(str(work / "window.bed"),),
                                                         valid="0.2", test="0.2", chunk_size=200_000))
    params = {
        "train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "loss": "poisson", "monitor": "val_loss",
                  "seed": 0},
        "model": {"name": "zoo_signal",
                  "inputs": {"marks": {"kind": "signal", "shape": [20, 2], "resolution": 100}},
                  "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 3, "batch_norm": False}],
                  "heads": {"ctcf": {"label": "ctcf", "loss": "poisson", "blocks": [
                      {"name": "cropping", "crop": 5}, {"name": "final", "units": 1, "activation": "softplus"}]}}}}
    return ZooModel("signal", _train(params, data, work / "model"), data, _bed(work))


def seq_to_seq_keras(length=400, crop=150, targets=3):
    """A cropped per-base seq-to-seq model: ``(length, 4) -> (length - 2 crop, targets)``, softplus."""
    import keras

    keras.utils.set_random_seed(1)
    x = inp = keras.Input((length, 4), name="dna")
    x = keras.layers.Conv1D(8, 9, padding="same", activation="relu")(x)
    x = keras.layers.Conv1D(targets, 1, activation="softplus")(x)
    x = keras.layers.Cropping1D(crop)(x)
    return keras.Model(inp, x, name="seq_to_seq")


def open_length_h5(pool=128, targets=3):
    """A binned model with an open input length: ``(None, 4) -> (None / pool, targets)``."""
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((None, 4))
    x = keras.layers.Conv1D(4, 9, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling1D(pool)(x)
    x = keras.layers.Conv1D(targets, 1)(x)
    x = keras.layers.Activation("softplus")(x)
    return keras.Model(inp, x, name="open_length")


@pytest.fixture(scope="session")
def zoo_imported_keras(tmp_path_factory, zoo_profile):
    work = tmp_path_factory.mktemp("zoo_imported_keras")
    source = work / "seq_to_seq.keras"
    seq_to_seq_keras().save(source)
    out = work / "model"
    run_script("import_model.py", "-q", source, "-o", out, "--kind", "binned", "--resolution", 1,
               "--targets", "tss,cpg,ctcf", "--fasta", FASTA, check=True)
    return ZooModel("imported_keras", out, zoo_profile.data_dir, _bed(work))


@pytest.fixture(scope="session")
def zoo_imported_h5(tmp_path_factory, demo_dataset):
    import warnings

    work = tmp_path_factory.mktemp("zoo_imported_h5")
    source = work / "open_length.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras calls .h5 legacy; that is the point
        open_length_h5().save(source)
    out = work / "model"
    run_script("import_model.py", "-q", source, "-o", out, "--seq_length", 16384, "--targets", TARGETS,
               "--fasta", FASTA, check=True)
    return ZooModel("imported_h5", out, demo_dataset, _bed(work))


@pytest.fixture(scope="session")
def zoo(request):
    """Every zoo model by kind (builds all of them)."""
    return {kind: request.getfixturevalue(f"zoo_{kind}") for kind in KINDS}


def card(model_dir) -> dict:
    return json.loads((Path(model_dir) / "model_card.json").read_text())
