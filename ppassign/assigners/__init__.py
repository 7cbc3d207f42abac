"""Label assigners: one file per method, registered in ppdet's workspace by ``ppassign.plugin``.

- atss_assigner.ATSSAssigner: ATSS (adaptive IoU threshold over centre-nearest candidates), drop-in for ppdet's.
- task_aligned_assigner.TaskAlignedAssigner: TOOD's task-aligned assigner, drop-in for ppdet's.
- dynamic_soft_label_assigner.DynamicSoftLabelAssigner (``PPAssignDynamicSoftLabelAssigner``): RTMDet's dynamic
  soft labels, with the task-aligned assigner's call and outputs.
- simota_assigner.SimOTAAssigner (``PPAssignSimOTAAssigner``): YOLOX's SimOTA, drop-in for ppdet's per-image
  SimOTAAssigner, with a batched path (`assign_batch`).
- assign_utils: conflict resolution and dense targets shared by these; grid: regular-grid index work;
  dynamic_k: the dynamic-k matching of the dynamic assigners.

RetinaNet-style (per image, ppdet ``MaxIoUAssigner``'s call ``matches, labels = assigner(anchors, gt_bbox)``;
``retina_base`` holds what they share):

- max_iou_assigner.MaxIoUAssigner (``PPAssignMaxIoUAssigner``): max-IoU, drop-in for ppdet's.
- topk_assigner.TopKAssigner (``PPAssignTopKAssigner``): every object's k best anchors.
- atss_retina_assigner.ATSSRetinaAssigner (``PPAssignATSSRetinaAssigner``): ATSS with RetinaNet's outputs.
- fcos_rule_assigner.FCOSRuleAssigner (``PPAssignFCOSRuleAssigner``): FCOS's spatial and scale constraint.
- noisy_anchor_assigner.NoisyAnchorAssigner (``PPAssignNoisyAnchorAssigner``): cleanliness soft targets.
- hambox_assigner.HAMBoxAssigner (``PPAssignHAMBoxAssigner``): online high-quality anchor compensation.
"""
from .atss_assigner import ATSSAssigner
from .task_aligned_assigner import TaskAlignedAssigner
from .dynamic_soft_label_assigner import DynamicSoftLabelAssigner
from .simota_assigner import SimOTAAssigner
from .max_iou_assigner import MaxIoUAssigner
from .topk_assigner import TopKAssigner
from .atss_retina_assigner import ATSSRetinaAssigner
from .fcos_rule_assigner import FCOSRuleAssigner
from .noisy_anchor_assigner import NoisyAnchorAssigner
from .hambox_assigner import HAMBoxAssigner

__all__ = ["ATSSAssigner", "TaskAlignedAssigner", "DynamicSoftLabelAssigner", "SimOTAAssigner", "MaxIoUAssigner",
           "TopKAssigner", "ATSSRetinaAssigner", "FCOSRuleAssigner", "NoisyAnchorAssigner", "HAMBoxAssigner"]
