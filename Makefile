# Two commands do everything on a fresh machine (README.md):
#   make quickstart   # create .venv, train + evaluate the quickstart detector on the built-in dataset
#   make test         # create .venv, run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python

.PHONY: venv quickstart test clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[cpu,test]"
	touch $@

venv: $(VENV)/.installed

quickstart: venv
	OMP_NUM_THREADS=1 $(PY) tools/train.py -c configs/quickstart/quickstart_tal.yml --eval

test: venv
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) output
