"""What every script in ``bin/`` shares: logging set-up and the error boundary."""

import argparse
import logging
import os
import sys
from contextlib import contextmanager

import basenji_tk
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")


def add_logging_options(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``--verbose``, the same on every script."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    p.add_argument("--verbose", action="store_true", help="debug messages, and TensorFlow's own start-up lines")


@contextmanager
def _stderr_muted():
    """Point file descriptor 2 at /dev/null for the block (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _muted_import(load):
    """``exec_module`` of ``tensorflow`` with stderr muted (see :func:`setup_logging`)."""

    def exec_module(module):
        with _stderr_muted():
            load(module)

    return exec_module


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """INFO to stderr (WARNING only with ``--quiet``, DEBUG with ``--verbose``), one plain line per message.

    Without ``verbose`` TensorFlow's start-up lines are kept out of stderr.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # TensorFlow 2.21's C++ start-up lines (oneDNN, cpu_feature_guard, absl's "before
        # InitializeLog") ignore TF_CPP_MIN_LOG_LEVEL and are written while it is imported, so
        # muting the import alone keeps every later warning visible; a failed import still raises.
        basenji_tk.on_import("tensorflow", _muted_import)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def show_progress(quiet: bool = False) -> bool:
    """A progress bar only on a terminal, never with ``--quiet`` or in CI."""
    return not quiet and sys.stderr.isatty() and not os.environ.get("CI")


def add_prediction_options(p: argparse.ArgumentParser) -> None:
    """The options every script that runs a trained model shares: ensembling, batch size, model file."""
    p.add_argument("--rc", action="store_true", help="average with reverse-complement predictions")
    p.add_argument("--shifts", default="0", help="comma-separated shifts (bp) to average over, e.g. 1,0,-1 "
                   "(write negative shifts as --shifts=-1,0,1)")
    p.add_argument("--batch_size", type=int, default=8, help="sequences per prediction batch")
    p.add_argument("--model", default=None, help="a .keras file to use instead of MODEL_DIR/model_best.keras")


def add_input_options(p: argparse.ArgumentParser) -> None:
    """What fills a model's inputs besides the DNA (:mod:`basenji_tk.analysis.inputs`): a context
    vector, fixed values, and where the training dataset is now."""
    p.add_argument("--context", default=None, metavar="NAME",
                   help="context (cell type) whose vector a two-input model takes: a context of the training "
                        "pairs dataset, or a row of --context_tsv")
    p.add_argument("--context_tsv", default=None, metavar="FILE",
                   help="TSV of contexts x features (as make_pairs.py's TABLE) to take the --context row from")
    p.add_argument("--input", action="append", default=None, metavar="NAME=VALUE",
                   help="a fixed value for a model input: a number, v1,v2,... or FILE.npy (repeatable)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="the training dataset folder, if it moved since training (for its context table)")


def add_score_at_option(p: argparse.ArgumentParser) -> None:
    """``--score_at CHROM:POS``: score the output bin holding a distal position (Basenji's distal
    element to TSS analysis) in a window centred between each region and it."""
    p.add_argument("--score_at", default=None, metavar="CHROM:POS",
                   help="score the output bin(s) holding this position (1-based; +- --tss_flank bins) instead of "
                        "--stat, in a window centred between each region and it; the region's bases are explained")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's own line breaks.

    A default is added only where it says something: not for flags (False), not for an
    unset option (None, ""), not for positional arguments, and not where the help text
    already says what the default is.
    """

    def _get_help_string(self, action):
        text = action.help or ""
        if (not action.option_strings or "default" in text or action.default is argparse.SUPPRESS
                or action.default is None or action.default is False or action.default == ""):
            return text
        return super()._get_help_string(action)


def run(main, argv=None) -> None:
    """Call ``main(argv)``; turn :class:`InputError` into a one-line error and exit 2."""
    try:
        status = main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        # A file the checks could not foresee (a disk that filled up, a file removed under us):
        # one line naming it, not a traceback. --verbose shows the traceback.
        if log.isEnabledFor(logging.DEBUG):
            raise
        name = f"{err.filename}: " if err.filename else ""
        print(f"error: {name}{err.strerror or err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


def add_genome_split_options(p, default: str = "0.1", what: str = "") -> None:
    """``--valid``/``--test``/``--chunk_size``: the genome splits every dataset builder deals the same
    way (fractions of whole chunks, or chromosome lists; :func:`basenji_tk.data.targets.assign_splits`)."""
    p.add_argument("--valid", default=default, help=f"{what}validation share: a fraction, or chromosomes like "
                   "'chr12,chr15'")
    p.add_argument("--test", default=default, help=f"{what}test share: a fraction, or chromosomes")
    p.add_argument("--chunk_size", type=int, default=1_048_576, help="size of the genome pieces dealt to splits (bp)")
