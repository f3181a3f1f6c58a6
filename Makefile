# dl4mic: `make demo` runs the whole workflow on bundled data; `make test` runs the test suite.
# Both create .venv and install what they need on a fresh Linux machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch (an unpinned torch pulls a multi-GB CUDA build); pydantic<2.14 for bioimageio.core 0.11.
PIP_PINS := torch==2.13.0 "pydantic<2.14"

.PHONY: demo test test-all install system-deps clean

$(VENV)/.installed: python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_PINS)
	$(PY) -m pip install -q -e "python[export,fiji,test]" $(PIP_PINS)
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/dl4mic demo --workdir dl4mic-demo --overwrite

system-deps:
	sh tools/system-deps.sh

# Fast suite (~10 min on 2 cores); ImageJ tests need a display, hence xvfb-run.
test: install system-deps
	xvfb-run -a $(PY) -m pytest -q -m "not slow" tests

# Everything, including the long real-data quality runs.
test-all: install system-deps
	DL4MIC_FUZZ_EXAMPLES=1000 xvfb-run -a $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) dl4mic-demo .pytest_cache
