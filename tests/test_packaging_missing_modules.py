"""`import ppassign` when Paddle, ppdet, imgaug (PaddleDetection from source) or pkg_resources is missing: one
ImportError line naming the install, checked in a fresh process where the module is hidden."""
import os
import subprocess
import sys

import pytest

from ppassign import compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Run by a child python: a meta-path finder that makes `hidden` (and its submodules) not found, then the import.
HIDE_AND_IMPORT = r"""
import sys
hidden = sys.argv[1]

class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == hidden or name.startswith(hidden + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Hide())
import ppassign
"""


def _import_without(module):
    """(exit status, last stderr line, stderr) of `import ppassign` in a fresh process without `module`."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", HIDE_AND_IMPORT, module], cwd=REPO, env=env,
                          capture_output=True, text=True)
    lines = proc.stderr.strip().splitlines()
    return proc.returncode, lines[-1] if lines else "", proc.stderr


def test_missing_ppdet_names_both_ways_to_get_it():
    status, last, stderr = _import_without("ppdet")
    assert status == 1, stderr
    assert last.startswith("ImportError: ppassign needs PaddleDetection (ppdet)")
    assert "pip install --no-deps paddledet==2.6.0" in last
    assert "PaddleDetection checkout on PYTHONPATH" in last and "pip install 'imgaug>=0.4.0'" in last
    assert "ModuleNotFoundError" not in stderr


def test_missing_paddle_names_the_cpu_and_gpu_installs():
    status, last, stderr = _import_without("paddle")
    assert status == 1, stderr
    assert last.startswith("ImportError: ppassign needs PaddlePaddle 3.x")
    assert "pip install 'paddlepaddle>=3.0,<3.4'" in last and "paddlepaddle-gpu" in last
    assert "ModuleNotFoundError" not in stderr


def test_missing_pkg_resources_names_the_setuptools_pin():
    status, last, stderr = _import_without("pkg_resources")
    assert status == 1, stderr
    assert last == "ImportError: " + compat.MISSING_MODULE_HINTS["pkg_resources"]
    assert "pip install 'setuptools<80.9'" in last


def test_missing_imgaug_error_names_imgaug():
    error = compat.missing_module_error(ModuleNotFoundError("No module named 'imgaug'", name="imgaug"))
    assert isinstance(error, ImportError) and error.name == "imgaug"
    assert "pip install 'imgaug>=0.4.0'" in str(error)


@pytest.mark.parametrize("error", [ModuleNotFoundError("No module named 'numpy'", name="numpy"),
                                   ModuleNotFoundError("No module named 'ppdet.core'", name="ppdet.core"),
                                   ImportError("cannot import name 'x' from 'ppdet'", name="ppdet")],
                         ids=["other-module", "ppdet-submodule", "not-a-missing-module"])
def test_other_import_errors_are_left_as_they_are(error):
    assert compat.missing_module_error(error) is None


def test_every_hint_is_one_line():
    assert all("\n" not in hint for hint in compat.MISSING_MODULE_HINTS.values())
