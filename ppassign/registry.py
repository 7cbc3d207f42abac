"""ppassign's names in PaddleDetection's workspace.

ppdet refuses a second class of an existing name, so ppassign's assigners are registered under
``PPAssignATSSAssigner`` and ``PPAssignTaskAlignedAssigner``; a PaddleDetection YAML switches with one line::

    static_assigner:
      name: PPAssignATSSAssigner      # was: ATSSAssigner

Unmodified YAMLs that say ``ATSSAssigner`` / ``TaskAlignedAssigner`` keep PaddleDetection's classes unless the
user opts in explicitly with :func:`use_ppassign_for_ppdet_names` (or ``PPASSIGN_OVERRIDE_PPDET=1`` in the
environment, or ``--override_ppdet_assigners`` in ppassign's tools). The override is logged, never silent.
"""
import logging
import os
import sys
import types

from ppdet.core import workspace
from ppdet.core.config.schema import extract_schema

from .assigners import ATSSAssigner, TaskAlignedAssigner

logger = logging.getLogger("ppassign")

PREFIX = "PPAssign"
# ppdet name -> ppassign class that can stand in for it (same call, same outputs).
DROP_INS = {"ATSSAssigner": ATSSAssigner, "TaskAlignedAssigner": TaskAlignedAssigner}
OVERRIDE_ENV = "PPASSIGN_OVERRIDE_PPDET"

# Extra modules (heads, datasets, ...) add themselves here: registered name -> class.
_MODULES = {}
_OVERRIDDEN = {}


def add(cls, name=None):
    """Queue `cls` for registration under `name` (default: its class name); returns cls (decorator-friendly)."""
    _MODULES[name or cls.__name__] = cls
    if "ppassign" in sys.modules and getattr(sys.modules["ppassign"], "_REGISTERED", False):
        _register(name or cls.__name__, cls)
    return cls


def _register(name, cls):
    """Register cls in ppdet's workspace as `name` (no-op when already ours)."""
    existing = workspace.global_config.get(name)
    if existing is not None:
        current = getattr(getattr(existing, "pymodule", None), name, None)
        if current is cls or getattr(current, "__module__", "").startswith("ppassign"):
            return  # already ours (second import, or a reload)
        raise ValueError(f"ppdet already has a module named {name!r}; ppassign cannot register its own")
    if cls.__name__ != name:
        cls = type(name, (cls,), {"__doc__": cls.__doc__, "__module__": cls.__module__})
    schema = extract_schema(cls)
    schema.pymodule = types.SimpleNamespace(**{name: cls})
    workspace.global_config[name] = schema


def register_all():
    """Register every ppassign module in ppdet's workspace (idempotent)."""
    for ppdet_name, cls in DROP_INS.items():
        _register(PREFIX + ppdet_name, cls)
    for name, cls in _MODULES.items():
        _register(name, cls)
    sys.modules["ppassign"]._REGISTERED = True
    if os.environ.get(OVERRIDE_ENV, "") not in ("", "0"):
        use_ppassign_for_ppdet_names()


def use_ppassign_for_ppdet_names(names=tuple(DROP_INS)):
    """Opt in: make ppdet YAML names ``ATSSAssigner`` / ``TaskAlignedAssigner`` build ppassign's classes.

    Call before the model is created. Returns the names overridden. `restore_ppdet_names` undoes it.
    """
    for name in names:
        if name not in DROP_INS:
            raise ValueError(f"names must be among {sorted(DROP_INS)}, got {name!r}")
        if name in _OVERRIDDEN:
            continue
        _OVERRIDDEN[name] = workspace.global_config.get(name)
        cls = type(name, (DROP_INS[name],), {"__doc__": DROP_INS[name].__doc__,
                                             "__module__": DROP_INS[name].__module__})
        schema = extract_schema(cls)
        schema.pymodule = types.SimpleNamespace(**{name: cls})
        workspace.global_config[name] = schema
        logger.warning("ppassign: YAML name %r now builds ppassign's %s (opt-in override)", name,
                       DROP_INS[name].__name__)
    return list(names)


def restore_ppdet_names():
    """Undo `use_ppassign_for_ppdet_names`."""
    for name, schema in list(_OVERRIDDEN.items()):
        workspace.global_config[name] = schema
        del _OVERRIDDEN[name]
