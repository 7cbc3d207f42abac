"""Every version / platform shim ppassign applies, in one place; nothing outside this package patches Paddle or
ppdet.

Each shim is decided by what the installed ppdet and Paddle actually do (a small call at import, or the
signature of a class), never by a version string: a PaddleDetection source checkout reports "0.0.0" or no
version at all. Supported and tested: paddledet 2.6.0 (PyPI), PaddleDetection v2.7.0 and develop from source,
on Paddle 3.x. docs/platform.md lists what each one fixes.

- `ppdet_assigners`: arity of ppdet's own assigners (`ASSIGNER_RETURNS_MASK_POSITIVE`; `match_ppdet_outputs`
  gives ppassign's the same) and their int64 / empty-batch fixes;
- `ppdet_heads`: TOODHead on Paddle 3, PicoHeadV2 without positives, LCPAN rebuilt in one process;
- `export`: Trainer.export and NMS under PIR, the Paddle Inference config;
- `ppdet_trainer`: checkpoints in ``<save_dir>/<config name>/`` on every ppdet (applied to each Trainer);
- `dataloader`: a reader exception ends the run (`DataLoadingError`) instead of hanging it;
- `quiet`: known-harmless start-up noise.

`apply()` is called once by ``import ppassign``; it is idempotent.
"""
from . import quiet

quiet.filter_import_warnings()

# What to do when `import paddle` / `import ppdet` fails because a module is missing, by the missing module's name:
# one line naming the install that brings it (the pins are pyproject.toml's).
MISSING_MODULE_HINTS = {
    "paddle": "ppassign needs PaddlePaddle 3.x, which is not installed: pip install 'paddlepaddle>=3.0,<3.4' "
              "(CPU; or the 'cpu' extra), or paddlepaddle-gpu 3.x from Paddle's own package index (README)",
    "ppdet": "ppassign needs PaddleDetection (ppdet), which is not installed: pip install --no-deps "
             "paddledet==2.6.0 (its own pins do not install on Python 3.12+; ppassign's dependencies replace "
             "them), or put a PaddleDetection checkout on PYTHONPATH and pip install 'imgaug>=0.4.0' "
             "(the 'ppdet-src' extra)",
    "imgaug": "PaddleDetection from source imports imgaug at `import ppdet`: pip install 'imgaug>=0.4.0' "
              "(or the 'ppdet-src' extra)",
    "pkg_resources": "ppdet imports pkg_resources, which setuptools 82 and newer no longer ship: "
                     "pip install 'setuptools<80.9'",
}


def missing_module_error(error):
    """The one-line ImportError for `error` (a failed import) when its missing module has a hint, else None."""
    name = getattr(error, "name", None)
    hint = MISSING_MODULE_HINTS.get(name) if isinstance(error, ModuleNotFoundError) else None
    return ImportError(hint, name=name) if hint else None


try:
    import paddle  # noqa: E402,F401

    with quiet.without_stdout_lines(quiet.IMPORT_LINES):
        import ppdet  # noqa: E402,F401
except ImportError as _error:
    _clear = missing_module_error(_error)
    if _clear is None:
        raise
    raise _clear from None

from .applied import APPLIED  # noqa: E402
from .dataloader import DataLoadingError, fix_dataloader_errors  # noqa: E402,F401
from .export import (INFERENCE_PARAMS_FILE, INFERENCE_PROGRAM_FILES, fix_export,  # noqa: E402,F401
                     inference_config)
from .ppdet_assigners import (ASSIGNER_RETURNS_MASK_POSITIVE, BEHAVIOURS,  # noqa: E402,F401
                              fix_ppdet_assigners, match_ppdet_outputs)
from .ppdet_heads import (_pico_get_loss_with_min_avg_factor, _tood_reg_grid_sample,  # noqa: E402,F401
                          fix_tood_and_pico_heads)
from .ppdet_trainer import checkpoint_dir, save_checkpoints_under_config_name  # noqa: E402,F401


def apply():
    """Install every shim the installed ppdet / Paddle needs (idempotent); returns the names installed."""
    fix_ppdet_assigners()
    fix_tood_and_pico_heads()
    fix_export()
    fix_dataloader_errors()
    return sorted(APPLIED)
