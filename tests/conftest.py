"""Shared paths and fixtures. Real data comes from data/ (bundled) or ../shared/data."""

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SHARED = REPO.parent / "shared" / "data"
FASTA = DATA / "hg19_chr20_20Mb.fa.gz"
TARGETS = DATA / "targets.txt"
# pip puts bin/*.py next to the interpreter; BASENJI_TK_BIN points the tests at a checkout's own bin/ instead
BIN_DIR = Path(os.environ.get("BASENJI_TK_BIN") or Path(sys.executable).parent)


def run_script(name, *args, check=False, prefix=()):
    """Run an installed script (after the command ``prefix``, if any); returns the CompletedProcess (text output)."""
    exe = BIN_DIR / name
    assert exe.exists(), f"{name} is not installed next to {sys.executable}"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([*prefix, str(exe), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def assert_clean_failure(proc, *words):
    """The script failed as bad input should: exit 2 and one ``error:`` line holding ``words``."""
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def read_only(path):
    """A command prefix that runs a command with the folder ``path`` bind-mounted read-only.

    The mount lives in a private mount namespace (``unshare -rm``), so nothing outside the
    command sees it; root's ``chmod`` bypass does not apply to a read-only mount.
    """
    path = str(path)
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a read-only bind mount")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f'mount --bind -o ro "{path}" "{path}" && ! touch '
                            f'"{path}/.probe"'], capture_output=True)
    if probe.returncode:
        pytest.skip(f"no read-only bind mount here (unshare -rm: {probe.stderr.decode().strip()[:80]})")
    return ["unshare", "-rm", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', path]


_HOLD = """
import sys, time
from basenji_tk import files
with files.claim(sys.argv[1], folder=sys.argv[2] == "1"):
    print("held", flush=True)
    time.sleep(300)
"""


def hold_claim(path, folder=True):
    """Another process that claims the output ``path`` (basenji_tk.files.claim) until killed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(path), "1" if folder else "0"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def shared(*parts):
    """A path under ../shared/data, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not checked out here)")
    return path


def write_fasta(path, records, bgzip=False, plain_gzip=False):
    """Write ``{name: sequence}`` as FASTA (60 per line); GENERATED test data."""
    text = "".join(f">{name}\n" + "".join(seq[i:i + 60] + "\n" for i in range(0, len(seq), 60))
                   for name, seq in records.items())
    if plain_gzip:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    elif bgzip:
        import pysam

        plain = str(path) + ".plain"
        Path(plain).write_text(text)
        pysam.tabix_compress(plain, str(path), force=True)
        os.remove(plain)
    else:
        Path(path).write_text(text)
    return path


def paired(seed, n_rows=500, n_targets=4, noise=1.0):
    """GENERATED: y ~ gamma, p = y + noise (different noise per target)."""
    rng = np.random.default_rng(seed)
    y = rng.gamma(2.0, 3.0, size=(n_rows, n_targets))
    p = y * rng.uniform(0.2, 2.0, n_targets) + rng.normal(0, noise * (1 + np.arange(n_targets)), (n_rows, n_targets))
    return y, p


def classes(seed, n_rows=400, n_targets=3, decimals=1):
    """GENERATED: labels with per-target prevalence; scores rounded so they tie often."""
    rng = np.random.default_rng(seed)
    labels = rng.random((n_rows, n_targets)) < rng.uniform(0.05, 0.5, n_targets)
    scores = np.round(labels * rng.uniform(0, 1.5, n_targets) + rng.normal(0, 1, (n_rows, n_targets)), decimals)
    return labels, scores


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory):
    """The issue's acceptance command on data/, run once through the installed script."""
    out = tmp_path_factory.mktemp("demo") / "d"
    run_script("make_targets.py", "-q", "-l", 16384, "-w", 128, "--valid", 0.1, "--test", 0.1,
               FASTA, TARGETS, "-o", out, check=True)
    return out


def tiny_params(**train):
    """A model small enough to train in seconds on the demo dataset (16,384 bp, 128 bp bins)."""
    return {
        "train": {"batch_size": 8, "epochs": 1, "steps_per_epoch": 10, "patience": 5, "seed": 0, **train},
        "model": {
            "seq_length": 16384,
            "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 9, "pool_size": 8, "batch_norm": False},
                      {"name": "conv_block", "filters": 8, "kernel_size": 5, "pool_size": 16, "batch_norm": False}],
            "head": [{"name": "final", "activation": "softplus"}],
        },
    }


def write_json(path, obj):
    import json

    Path(path).write_text(json.dumps(obj, indent=1))
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, demo_dataset):
    """A model folder from train.py: the tiny model, 2 epochs of 10 batches on the demo dataset."""
    work = tmp_path_factory.mktemp("tiny")
    params = write_json(work / "params.json", tiny_params(epochs=2))
    out = work / "model"
    run_script("train.py", "-q", "--seed", 0, params, demo_dataset, "-o", out, check=True)
    return out


# The model zoo (tests/zoo.py): session fixtures zoo, zoo_binned, zoo_pairs, zoo_profile, zoo_table,
# zoo_signal, zoo_imported_keras, zoo_imported_h5. Imported last: zoo.py imports from this module.
from zoo import (zoo, zoo_binned, zoo_imported_h5, zoo_imported_keras, zoo_pairs, zoo_profile,  # noqa: E402,F401
                 zoo_signal, zoo_table)

# The GENERATED planted-motif set and its model (tests/planted.py): session fixture planted_model.
from planted import planted_model  # noqa: E402,F401
