"""Installs basenji_tk; metadata and dependencies live in pyproject.toml.

setup.py remains for one thing pyproject.toml cannot say: every bin/*.py script
is installed on PATH under its own name (e.g. make_targets.py).
"""

from glob import glob

from setuptools import setup

setup(scripts=sorted(glob("bin/*.py")))
