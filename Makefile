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
	# MDS reader/writer (mmbert/mds.py says why --no-deps); its real imports are in pyproject.
	$(PY) -m pip install --quiet --no-deps mosaicml-streaming==0.13.0
	# pip check, less the stale pins of mosaicml-streaming's metadata (transformers<5, numpy<2.2,
	# torchvision, cloud SDKs): any other conflict fails the setup.
	@conflicts="$$($(PY) -m pip check | grep -v -e '^mosaicml-streaming 0.13.0 ' -e '^No broken requirements' || true)"; \
	  if [ -n "$$conflicts" ]; then echo "$$conflicts"; exit 1; fi
	touch $(STAMP)

# The whole pipeline on params.yaml (embedded default), through Prefect, DVC and Ray.
reproduce: $(STAMP)
	$(PY) -m flows.reproduce

# Every test, the slow end-to-end one included.
test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"
