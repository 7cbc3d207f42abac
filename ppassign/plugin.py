"""Everything ``import ppassign`` does to Paddle and PaddleDetection, in one place.

`install` (called once by ``import ppassign``; idempotent):

1. applies the platform shims of `ppassign.compat` (each decided by what the installed ppdet / Paddle does);
2. makes ppassign's ATSS / task-aligned assigners return as many values as the installed ppdet's heads unpack
   (4 in paddledet 2.6.0, 3 in PaddleDetection 2.7+; `compat.ASSIGNER_RETURNS_MASK_POSITIVE`);
3. registers every module of `MODULES` in ppdet's workspace under its YAML name;
4. with ``PPASSIGN_OVERRIDE_PPDET=1`` in the environment, makes the ppdet names of `DROP_INS` build ppassign's
   classes (`use_ppassign_for_ppdet_names`).

Nothing else in ppassign patches Paddle or ppdet or writes to ppdet's workspace.
"""
import os

from . import compat, registry
from .assigners import (ATSSAssigner, ATSSRetinaAssigner, DynamicSoftLabelAssigner, FCOSRuleAssigner,
                        HAMBoxAssigner, MaxIoUAssigner, NoisyAnchorAssigner, SimOTAAssigner, TaskAlignedAssigner,
                        TopKAssigner)
from .data import SyntheticCOCODataSet
from .heads import AutoAssignHead, DWHead, PPAssignFCOSHead, PPAssignRetinaHead

# YAML name -> class: every module ppassign adds to ppdet's workspace.
MODULES = {
    "PPAssignATSSAssigner": ATSSAssigner,
    "PPAssignTaskAlignedAssigner": TaskAlignedAssigner,
    "PPAssignDynamicSoftLabelAssigner": DynamicSoftLabelAssigner,
    "PPAssignSimOTAAssigner": SimOTAAssigner,
    "PPAssignMaxIoUAssigner": MaxIoUAssigner,
    "PPAssignTopKAssigner": TopKAssigner,
    "PPAssignATSSRetinaAssigner": ATSSRetinaAssigner,
    "PPAssignFCOSRuleAssigner": FCOSRuleAssigner,
    "PPAssignNoisyAnchorAssigner": NoisyAnchorAssigner,
    "PPAssignHAMBoxAssigner": HAMBoxAssigner,
    "AutoAssignHead": AutoAssignHead,
    "DWHead": DWHead,
    "PPAssignRetinaHead": PPAssignRetinaHead,
    "PPAssignFCOSHead": PPAssignFCOSHead,
    "SyntheticCOCODataSet": SyntheticCOCODataSet,
}
# ppdet YAML name -> the ppassign class that can stand in for it (same call, same outputs), for the opt-in.
DROP_INS = {"ATSSAssigner": ATSSAssigner, "TaskAlignedAssigner": TaskAlignedAssigner}
# Assigners with PaddleDetection's dense outputs (labels, bboxes, scores[, mask_positive]).
DENSE_ASSIGNERS = (ATSSAssigner, TaskAlignedAssigner, DynamicSoftLabelAssigner)
OVERRIDE_ENV = "PPASSIGN_OVERRIDE_PPDET"


def install():
    """Steps 1-4 of this module's docstring; returns the shims applied (sorted names)."""
    applied = compat.apply()
    compat.match_ppdet_outputs(DENSE_ASSIGNERS)
    for name, cls in MODULES.items():
        registry.register(name, cls)
    if os.environ.get(OVERRIDE_ENV, "") not in ("", "0"):
        use_ppassign_for_ppdet_names()
    return applied


def use_ppassign_for_ppdet_names(names=tuple(DROP_INS)):
    """Opt in: make the ppdet YAML names ``ATSSAssigner`` / ``TaskAlignedAssigner`` build ppassign's classes.

    Call before the model is created; `restore_ppdet_names` undoes it. Returns the names overridden.
    """
    for name in names:
        if name not in DROP_INS:
            raise ValueError(f"names must be among {sorted(DROP_INS)}, got {name!r}")
    for name in names:
        registry.override(name, DROP_INS[name])
    return list(names)


def restore_ppdet_names():
    """Undo `use_ppassign_for_ppdet_names`."""
    registry.restore(list(DROP_INS))
