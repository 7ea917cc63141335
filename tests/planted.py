"""The GENERATED planted-motif set and a small model trained on it, built once per test session.

Two JASPAR 2024 motifs are planted into dinucleotide-shuffled 200-bp windows of data/'s chr20
(:mod:`basenji_tk.interpret.planted`): CTCF (MA0139.2, 15 bp, GC-rich zinc-finger site, 16.2
bits) and Spi1 (MA0080.7, 13 bp, A-rich ETS site around GGAA, 14.5 bits). They were picked as
dissimilar (composition, family, no shared core) and as specific enough to be found: GATA1
(MA0035.5, 7 bp, 9.8 bits) was tried first, but a 200-bp background holds about one chance
GATA site in two, so a model could not tell planted from chance sites (test AUROC 0.53 against
0.98 for CTCF). Each sequence carries each motif with probability 1/3; the two tasks are
"carries CTCF" and "carries Spi1". The set goes through make_table.py (chrom/start/end rows read
from the generated contigs) and train.py (tests/planted_params.json: 2 convolutions, max pooling,
a dense layer, two sigmoid outputs), so the test split and the planted bases are known exactly.
"""

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FASTA, REPO, run_script

MOTIFS = ("MA0139.2", "MA0080.7")  # CTCF, Spi1
N_SEQUENCES = 6000
LENGTH = 200
PARAMS = REPO / "tests" / "planted_params.json"


@dataclass
class PlantedModel:
    """``planted``: the :class:`basenji_tk.interpret.planted.PlantedSet`; ``paths``: what
    write_planted wrote (fasta, table, sites, test BED); ``model_dir`` and ``data_dir`` from
    train.py and make_table.py; ``tasks``: the TF names in output order; ``motifs``: the
    planted :class:`basenji_tk.io.meme.Motif` objects; ``seconds``: build and training times."""

    planted: object
    paths: dict
    data_dir: Path
    model_dir: Path
    tasks: list
    motifs: list
    seconds: dict


@pytest.fixture(scope="session")
def planted_model(tmp_path_factory):
    from basenji_tk.interpret.planted import LABEL, planted_set, write_planted
    from basenji_tk.io.meme import jaspar_motifs

    work = tmp_path_factory.mktemp("planted_GENERATED")
    seconds = {}
    t = time.perf_counter()
    motifs = jaspar_motifs(names=list(MOTIFS))
    motifs = sorted(motifs, key=lambda m: MOTIFS.index(m.name))
    planted = planted_set(FASTA, motifs, n=N_SEQUENCES, length=LENGTH, seed=0)
    paths = write_planted(planted, work / "set")
    seconds["generate"] = time.perf_counter() - t
    data = work / "data"
    t = time.perf_counter()
    run_script("make_table.py", "-q", paths["table"], "--coords", "chrom,start,end", "--fasta", paths["fasta"],
               "--activity", ",".join(planted.motifs), "--split_column", "split", "--description", LABEL,
               "-o", data, check=True)
    seconds["make_table"] = time.perf_counter() - t
    t = time.perf_counter()
    model = work / "model"
    run_script("train.py", "-q", "--seed", 0, PARAMS, data, "-o", model, check=True)
    seconds["train"] = time.perf_counter() - t
    return PlantedModel(planted, paths, data, model, list(planted.motifs), motifs, seconds)
