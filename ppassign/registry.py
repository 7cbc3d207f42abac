"""Putting classes into PaddleDetection's workspace under a YAML name, and taking them out again.

This module knows nothing of ppassign's own classes: `ppassign.plugin` holds the list of what is registered.
ppdet refuses a second class of an existing name, so ppassign's classes live under their own names
(``PPAssignATSSAssigner``, ``DWHead``, ...); a PaddleDetection YAML switches with one line::

    static_assigner:
      name: PPAssignATSSAssigner      # was: ATSSAssigner

`override` makes an existing ppdet name (``ATSSAssigner``) build another class, for users who opt in; it is
logged, never silent, and `restore` undoes it.
"""
import logging
import types

from ppdet.core import workspace
from ppdet.core.config.schema import extract_schema

logger = logging.getLogger("ppassign")

_OVERRIDDEN = {}  # ppdet name -> the schema it had before `override`


def _schema(name, cls):
    """ppdet's schema of `cls` under the YAML name `name` (a subclass of that name where the names differ)."""
    if cls.__name__ != name:
        cls = type(name, (cls,), {"__doc__": cls.__doc__, "__module__": cls.__module__})
    schema = extract_schema(cls)
    schema.pymodule = types.SimpleNamespace(**{name: cls})
    return schema


def register(name, cls):
    """Register `cls` in ppdet's workspace as `name`; a no-op when `name` already builds a ppassign class
    (a second import, or a reload). Raises ValueError when ppdet has another module of that name."""
    existing = getattr(getattr(workspace.global_config.get(name), "pymodule", None), name, None)
    if existing is not None:
        if existing.__module__.startswith("ppassign"):
            return
        raise ValueError(f"ppdet already has a module named {name!r}; ppassign cannot register its own")
    workspace.global_config[name] = _schema(name, cls)


def override(name, cls):
    """Make the existing ppdet YAML name `name` build `cls` until `restore` (logged once per name)."""
    if name in _OVERRIDDEN:
        return
    _OVERRIDDEN[name] = workspace.global_config.get(name)
    workspace.global_config[name] = _schema(name, cls)
    logger.warning("ppassign: YAML name %r now builds ppassign's %s (opt-in override)", name, cls.__name__)


def overridden():
    """Names `override` has taken over (sorted)."""
    return sorted(_OVERRIDDEN)


def restore(names=None):
    """Give the names `override` took (all, or those in `names`) back to the classes they had."""
    for name in list(_OVERRIDDEN) if names is None else names:
        if name in _OVERRIDDEN:
            schema = _OVERRIDDEN.pop(name)
            if schema is None:
                workspace.global_config.pop(name, None)
            else:
                workspace.global_config[name] = schema
