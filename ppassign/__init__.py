"""ppassign: label assignment for PaddleDetection on Paddle 3.

``import ppassign`` applies the platform shims (ppassign.compat) and registers every ppassign module in
ppdet's workspace (ppassign.registry); both are idempotent.

Layout: ``assigners/`` (one file per assignment method), ``heads/`` (heads whose loss assigns), ``ops/``
(geometry, input checks), ``compat/`` (every ppdet / Paddle shim), ``engine/`` (what tools/ run), ``data/``
(built-in dataset), ``analysis/`` (maps, statistics, comparison, benchmark).
"""
from . import compat
from .assigners import ATSSAssigner, TaskAlignedAssigner
from . import registry
from . import data  # noqa: F401  (built-in synthetic dataset, registers SyntheticCOCODataSet)
from . import heads  # noqa: F401  (registers AutoAssignHead, DWHead)

__version__ = "0.1.0"

compat.apply()
registry.register_all()
