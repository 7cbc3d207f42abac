"""Detection heads whose loss carries its own assignment, for ppdet's ``FCOS`` architecture, and a RetinaNet
head that takes ppassign's RetinaNet assigners.

- autoassign_head.AutoAssignHead: AutoAssign (differentiable centre prior, implicit objectness, w+/w- maps).
- dw_head.DWHead: DW (dual positive/negative weighting, box refinement).
- fcos_base: the FCOS-style towers, points and loss helpers both heads share.
- fcos_assign_head.PPAssignFCOSHead: ppdet's FCOSHead with its targets from a ppassign RetinaNet assigner on
  one virtual anchor per point (FCOS with ATSS, as the ATSS paper runs it).
- retina_head.PPAssignRetinaHead: ppdet's RetinaHead with predictions passed to the assigner and soft
  targets / per-anchor weights in the loss (ppdet's ``RetinaNet`` architecture).
``import ppassign`` registers them in ppdet's workspace (ppassign.plugin).
"""
from .autoassign_head import AutoAssignHead
from .dw_head import DWHead
from .fcos_assign_head import PPAssignFCOSHead
from .retina_head import PPAssignRetinaHead

__all__ = ["AutoAssignHead", "DWHead", "PPAssignFCOSHead", "PPAssignRetinaHead"]
