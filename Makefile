# Two entry points (see README): `make reproduce` and `make test`.
# Both create the virtual environment on first use; torch goes in first so that
# pip takes the pinned CPU wheel instead of resolving a CUDA build.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup reproduce test test-fast clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip check
	touch $(STAMP)

# The whole pipeline on params.yaml (embedded default), through Prefect, DVC and Ray.
reproduce: $(STAMP)
	$(PY) -m flows.reproduce

# Every test, the slow end-to-end one included.
test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"
