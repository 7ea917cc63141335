"""What every script in ``bin/`` shares: logging set-up and the error boundary."""

import argparse
import logging
import os
import sys

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")


def setup_logging(quiet: bool = False) -> None:
    """INFO to stderr (WARNING only with ``--quiet``), one plain line per message."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's own line breaks."""


def run(main, argv=None) -> None:
    """Call ``main(argv)``; turn :class:`InputError` into a one-line error and exit 2."""
    try:
        status = main(argv)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
