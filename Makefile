# Two commands do everything on a fresh machine (README.md):
#   make quickstart   # create .venv, train + evaluate the quickstart detector on the built-in dataset
#   make test         # create .venv, run the test suite
# Against a PaddleDetection source checkout (release/2.7, develop, ...) instead of paddledet 2.6.0 from PyPI:
#   make test PPDET_SRC=/path/to/PaddleDetection       (also: make quickstart PPDET_SRC=...)
# On another Python (3.9 to 3.13), in its own venv (what CI does for 3.13):
#   make test PYTHON=$(pyenv root)/versions/3.13.0/bin/python VENV=.venv313
PYTHON    ?= python3
VENV      ?= .venv
PY         = $(VENV)/bin/python
PPDET_SRC ?=

# paddledet 2.6.0 (the newest PaddleDetection wheel) pins numpy<1.24 and opencv-python<=4.6.0, which have no
# wheels for Python 3.12 / 3.13; it is installed without them, pyproject.toml declares what its code imports.
PADDLEDET  = paddledet==2.6.0

ifneq ($(strip $(PPDET_SRC)),)
PPDET_PATH := $(abspath $(PPDET_SRC))
RUN_ENV     = PYTHONPATH=$(PPDET_PATH) OMP_NUM_THREADS=1
RUN_DEPS    = $(VENV)/.ppdet-src
else
RUN_ENV     = OMP_NUM_THREADS=1
RUN_DEPS    =
endif

.PHONY: venv quickstart test clean

$(VENV)/.installed: pyproject.toml
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
	@$(RUN_ENV) $(PY) -c "import ppassign, ppdet; import sys; print('== Python', sys.version.split()[0], '- ppdet from', ppdet.__path__[0])"
	$(RUN_ENV) $(PY) tools/train.py -c configs/quickstart/quickstart_tal.yml --eval

test: venv $(RUN_DEPS)
	@$(RUN_ENV) $(PY) -c "import ppassign, ppdet; import sys; print('== Python', sys.version.split()[0], '- ppdet from', ppdet.__path__[0])"
	$(RUN_ENV) $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) output
