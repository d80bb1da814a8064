# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build on this machine; other versions pull gigabytes of CUDA wheels.
TORCH_VERSION ?= 2.13.0

.PHONY: demo test lint bench clean

$(BIN)/videodd: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(BIN)/videodd

demo: $(BIN)/videodd
	$(BIN)/videodd demo --out demo-out

# one thread per process: the tests run many tiny ops, where OpenMP threads only wait on each other
# (the suite is several times faster this way on a 2-core machine)
test: $(BIN)/videodd
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

lint: $(BIN)/videodd
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf demo-out .pytest_cache .ruff_cache
