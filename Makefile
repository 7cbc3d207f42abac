# Two commands do everything on a fresh machine (README.md):
#   make quickstart   # create .venv, train + evaluate the quickstart detector on the built-in dataset
#   make test         # create .venv, run the test suite
# Against a PaddleDetection source checkout (release/2.7, develop, ...) instead of paddledet 2.6.0 from PyPI:
#   make test PPDET_SRC=/path/to/PaddleDetection       (also: make quickstart PPDET_SRC=...)
# That the install resolves to wheels only on Python 3.12 and 3.13 (needs the package index):
#   make check-install
PYTHON    ?= python3
VENV      ?= .venv
PY         = $(VENV)/bin/python
PPDET_SRC ?=

# paddledet 2.6.0 (the newest PaddleDetection wheel) pins numpy<1.24 and opencv-python<=4.6.0, which have no
# wheels for Python 3.12 / 3.13; it is installed without them, setup.py declares what its code imports.
PADDLEDET  = paddledet==2.6.0

ifneq ($(strip $(PPDET_SRC)),)
PPDET_PATH := $(abspath $(PPDET_SRC))
RUN_ENV     = PYTHONPATH=$(PPDET_PATH) OMP_NUM_THREADS=1
RUN_DEPS    = $(VENV)/.ppdet-src
else
RUN_ENV     = OMP_NUM_THREADS=1
RUN_DEPS    =
endif

.PHONY: venv quickstart test check-install clean

$(VENV)/.installed: setup.py
	@echo "== creating $(VENV): Paddle, paddledet and ppassign's dependencies (first run: a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar off --upgrade pip
	$(PY) -m pip install --progress-bar off -e ".[cpu,test]"
	$(PY) -m pip install --progress-bar off --no-deps "$(PADDLEDET)"
	touch $@

# A PaddleDetection checkout imports imgaug at `import ppdet`; it is put first on the path (PYTHONPATH).
$(VENV)/.ppdet-src: $(VENV)/.installed
	@test -f "$(PPDET_PATH)/ppdet/__init__.py" || \
		{ echo "PPDET_SRC=$(PPDET_SRC) is not a PaddleDetection checkout (no ppdet/__init__.py)"; exit 2; }
	$(PY) -m pip install --progress-bar off -e ".[ppdet-src]"
	touch $@

venv: $(VENV)/.installed

quickstart: venv $(RUN_DEPS)
	@$(RUN_ENV) $(PY) -c "import ppassign, ppdet; print('== ppdet from', ppdet.__path__[0])"
	$(RUN_ENV) $(PY) tools/train.py -c configs/quickstart/quickstart_tal.yml --eval

test: venv $(RUN_DEPS)
	@$(RUN_ENV) $(PY) -c "import ppassign, ppdet; print('== ppdet from', ppdet.__path__[0])"
	$(RUN_ENV) $(PY) -m pytest -q tests

check-install: venv
	$(PY) .ci/check_install.py 3.9 3.10 3.11 3.12 3.13

clean:
	rm -rf $(VENV) output
