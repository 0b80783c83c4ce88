# spikeforge: everything installs from PyPI into .venv; nothing else is needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test slow bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/spikeforge demo

# The CI suite: unit tests, RTL-vs-golden cocotb benches, formal checks. Long sweeps are marked slow.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

# The long sweeps (many examples, real builds).
slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Resource/Fmax/throughput benchmarks; writes benchmarks/results.json and docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m spikeforge.bench

clean:
	rm -rf demo-out build-out .pytest_cache
