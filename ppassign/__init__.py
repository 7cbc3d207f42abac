"""ppassign: label assignment for PaddleDetection on Paddle 3.

``import ppassign`` applies the platform shims (ppassign.compat) and registers every ppassign module in
ppdet's workspace (ppassign.registry); both are idempotent.
"""
from . import compat
from .atss_assigner import ATSSAssigner
from .task_aligned_assigner import TaskAlignedAssigner
from . import registry
from . import data  # noqa: F401  (built-in synthetic dataset, registers SyntheticCOCODataSet)
from . import dw_head  # noqa: F401  (registers DWHead)
from . import autoassign_head  # noqa: F401  (registers AutoAssignHead)

__version__ = "0.1.0"

compat.apply()
registry.register_all()
