# Two entry points, both self-contained on a machine that has only Python:
#   make run   - create .venv (pip), install the package, run the main job (quickstart on the embedded CIFAR-10 mini set)
#   make test  - same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test setup benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(PY) -m pip install -q torch torchvision
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/liouna-snn run experiments/quickstart.toml

test: $(STAMP)
	$(PY) -m pytest tests

# The full CIFAR-10 benchmark: needs the standard layout in $(DATA) (see README).
DATA ?= data
benchmark: $(STAMP)
	$(VENV)/bin/liouna-snn run experiments/cifar10_local_rules.toml --data-root $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info
