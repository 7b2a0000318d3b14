# Two entry points (see README): `make reproduce` and `make test`.
# Both create the virtual environment on first use; torch goes in first so that
# pip takes the pinned CPU wheel instead of resolving a CUDA build.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup reproduce test test-fast gpu-wheels clean-outputs

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 uv==0.13.9
	# uv installs the rest in ~30 s instead of pip's ~2 min (the same versions); torch is in already,
	# so it keeps the CPU wheel pip took from this disk. --compile-bytecode writes the packages' .pyc
	# once (~45 s): uv does not by default, and where PYTHONDONTWRITEBYTECODE is set (as on these
	# machines) every process (each DVC stage, Ray worker, Prefect server) would otherwise compile
	# transformers, ray and prefect from source again, seconds of CPU each.
	$(VENV)/bin/uv pip install --quiet --python $(PY) --compile-bytecode -e ".[dev]"
	# MDS reader/writer (mmbert/mds.py says why --no-deps); its real imports are in pyproject.
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps --compile-bytecode mosaicml-streaming==0.13.0
	# pip check, less the stale pins of mosaicml-streaming's metadata (transformers<5, numpy<2.2,
	# torchvision, cloud SDKs): any other conflict fails the setup.
	@conflicts="$$($(PY) -m pip check | grep -v -e '^mosaicml-streaming 0.13.0 ' -e '^No broken requirements' || true)"; \
	  if [ -n "$$conflicts" ]; then echo "$$conflicts"; exit 1; fi
	touch $(STAMP)

# The whole pipeline on params.yaml (embedded default), through Prefect, DVC and Ray.
reproduce: $(STAMP)
	$(PY) -m flows.reproduce

# The report page's browser test runs Debian's headless Chromium and its driver (packages the
# machine does not have until this installs them; CI runs as root).
BROWSER := /usr/bin/chromedriver
$(BROWSER):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver

# Every test, the slow end-to-end ones included, on two pytest-xdist workers, a test file at a
# time (the end-to-end module builds its pipeline once; loadgroup ignores xdist_group under pytest 9).
test: $(STAMP) $(BROWSER)
	$(PY) -m pytest -n 2 --dist loadfile

# The edit-test loop: everything but the end-to-end tests.
test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile -m "not slow"

# Wheels benchmarks/gpu_check.py needs beyond a lent GPU machine's own Python 3.12 (torch,
# transformers, numpy, pyyaml are there): carried along with the working tree, unpacked by the script.
GPU_WHEELS := pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
	typing-extensions==4.16.0 torch-optimi==0.3.3
gpu-wheels: $(STAMP)
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --implementation cp --python-version 3.12 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d benchmarks/wheels $(GPU_WHEELS)
