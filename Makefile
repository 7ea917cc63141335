# basenji_tk: the README's two set-up commands are 'make demo' and 'make test'.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean

install: $(STAMP)

# (Re)install when the package metadata or the scripts change; 'pip install -e'
# copies bin/*.py onto the venv's PATH.
$(STAMP): pyproject.toml setup.py $(wildcard bin/*.py)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,test]'
	touch $(STAMP)

# The demo pipeline on the bundled data/ (no ../shared needed), into demo_out/.
demo: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/demo.sh demo_out

# Two workers, each taking whole test files (module fixtures are built once); most tests wait on
# script subprocesses, so two workers on two cores finish well ahead of one.
test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

# Benchmarks need torch 2.13.0 + tangermeme, installed only in a separate venv.
bench: $(STAMP)
	bash benchmarks/run_all.sh

clean:
	rm -rf demo_out build *.egg-info
