# `make demo` runs the main job, `make test` the suite; both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo demo-robust lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest -q

# The zoo's CE and iCE MNIST models audited side by side on the embedded test
# images with the zoo oracle: no network, no data folder.
demo: $(STAMP)
	$(BIN)/invaudit compare zoo:mnist-ce zoo:mnist-ice --suite quick --out runs/demo

# The second demo: a plain CNN against the same CNN trained with PGD (issue 17),
# on both sides: ε-robustness and excessive invariance.
demo-robust: $(STAMP)
	$(BIN)/invaudit compare zoo:mnist-cnn zoo:mnist-cnn-robust --suite quick --out runs/demo-robust

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
