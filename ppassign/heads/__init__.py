"""Detection heads whose loss carries its own assignment, for ppdet's ``FCOS`` architecture.

- autoassign_head.AutoAssignHead: AutoAssign (differentiable centre prior, implicit objectness, w+/w- maps).
- dw_head.DWHead: DW (dual positive/negative weighting, box refinement).
- fcos_base: the FCOS-style towers, points and loss helpers both heads share.
Importing this package registers the heads in ppdet's workspace.
"""
from .autoassign_head import AutoAssignHead
from .dw_head import DWHead

__all__ = ["AutoAssignHead", "DWHead"]
