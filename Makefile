PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

NUMPY2_VENV := .venv-numpy2

# the tests run in parallel (pytest-xdist), one worker a core, at most four: each test writes only in its own
# temporary folder
TEST_WORKERS ?= auto
PYTEST := -m pytest -n $(TEST_WORKERS) --maxprocesses=4

.PHONY: install run test test-numpy2 lint clean

install: $(STAMP)

# torch first and pinned: 2.13.0 is the CPU build on disk here; a bare `torch` pulls a multi-GB CUDA build.
# numpy and pandas pinned too, so that the measured numbers reproduce; numpy 2 is tested by `make test-numpy2`.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0 numpy==1.26.4 pandas==2.2.3
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

# the test suite in a second environment, on numpy 2 (and the pandas 2.x built for it)
test-numpy2:
	test -x $(NUMPY2_VENV)/bin/python || $(PYTHON) -m venv $(NUMPY2_VENV)
	$(NUMPY2_VENV)/bin/python -m pip install -q torch==2.13.0 "numpy>=2,<3" "pandas>=2.2.2,<3"
	$(NUMPY2_VENV)/bin/python -m pip install -q -e ".[test]"
	$(NUMPY2_VENV)/bin/python $(PYTEST) $(PYTEST_ARGS)

# the main job: GenNiSASRec with its defaults on RecBole's bundled ml-100k (MODEL=GRU4Rec ... for another model)
MODEL ?= GenNiSASRec
DATASET ?= ml-100k

run: install
	$(BIN)/python run_recbole_genni.py --model=$(MODEL) --dataset=$(DATASET) $(ARGS)

test: install
	$(BIN)/python $(PYTEST) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(NUMPY2_VENV) saved log log_tensorboard .pytest_cache *.egg-info
