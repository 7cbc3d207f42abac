"""Run a config's detector on one image and turn its raw outputs into assignment maps.

Supported heads (what their predictions feed):
  * ``PPYOLOEHead`` (YOLOv3/PPYOLOE architectures, or any with a ``yolo_head``): methods ``atss`` and ``tal``
    (the head's own static assigner and assigner, e.g. ppassign's) and ``ppdet_atss`` / ``ppdet_tal``
    (PaddleDetection's classes with the same settings); ``tal_proxy`` (the task-aligned assigner on
    `assignment.proxy_predictions`, no model output used).
  * ``FCOSHead`` (PaddleDetection's, FCOS architecture): ``fcos``, from the config's ``Gt2FCOSTarget`` reader
    op (needs no prediction).
  * ``AutoAssignHead`` (FCOS architecture): ``autoassign``.
  * ``DWHead`` (FCOS architecture): ``dw``.
Predictions come from the model in eval mode: untrained (random init) unless weights are loaded.
"""
import numpy as np
import paddle
import paddle.nn.functional as F

from ..engine.common import PipelineError, load_weights_strict
from ..engine.config import build_model, load_config
from ..engine.predict import preprocess
from ..heads import fcos_base
from ..assigners import ATSSAssigner
from ..heads.autoassign_head import AutoAssignHead
from ..heads.dw_head import DWHead
from ..assigners import TaskAlignedAssigner
from . import assignment as A

# Inputs are zero-padded at the bottom/right to a multiple of the largest stride (ppdet's PadBatch).
PAD_VALUE = 0.0

METHODS_BY_HEAD = {
    "PPYOLOEHead": ("atss", "tal", "ppdet_atss", "ppdet_tal", "tal_proxy"),
    "FCOSHead": ("fcos",),
    "AutoAssignHead": ("autoassign",),
    "DWHead": ("dw",),
}


class AnalysisModel:
    """A config's model (eval mode) with what the analysis needs: its head, preprocessing and methods.

    Args:
        config (str): ppdet YAML. overrides (list[str]): ``-o`` items; ``weights=<path>`` loads trained
            weights (all parameters must match), otherwise the model keeps its random init.
    """

    def __init__(self, config, overrides=()):
        self.cfg = load_config(config, overrides)
        paddle.set_device("cpu")
        self.model = build_model(self.cfg)
        weights = self.cfg.get("weights") if any(o.strip().startswith("weights=") for o in overrides) else None
        if weights:
            load_weights_strict(self.model, weights)
        self.trained = bool(weights)
        self.model.eval()
        self.head = _find_head(self.model)
        self.head_name = _head_kind(self.head)
        if self.head_name is None:
            raise PipelineError(f"{config}: head {type(self.head).__name__} is not supported by the "
                                f"assignment analysis (supported: {', '.join(METHODS_BY_HEAD)})")
        self.methods = METHODS_BY_HEAD[self.head_name]
        self.num_classes = int(self.head.num_classes)
        reader = self.cfg.get("EvalReader") or self.cfg.get("TestReader")
        self.transforms = reader["sample_transforms"]
        self.strides = [int(s) for s in (getattr(self.head, "fpn_strides", None) or self.head.fpn_stride)]

    def check_methods(self, methods):
        """None -> all of this head's methods; otherwise ValueError naming a method this head cannot show."""
        if not methods:
            return list(self.methods)
        bad = [m for m in methods if m not in self.methods]
        if bad:
            raise ValueError(f"method {bad[0]!r} needs another head; this config's {self.head_name} supports "
                             f"{', '.join(self.methods)}")
        return list(methods)

    def prepare(self, image_rgb, boxes):
        """Preprocess an image like the EvalReader and pad it; boxes follow the resize.

        Args:
            image_rgb (np.ndarray[H, W, 3] uint8). boxes (np.ndarray[n, 4]) xyxy in image pixels.
        Returns:
            inputs (dict of Tensors: image [1, 3, H', W'], im_shape, scale_factor), boxes [n, 4] in input pixels.
        """
        inputs = preprocess(image_rgb, self.transforms)
        image = inputs["image"]
        stride = max(self.strides)
        height, width = image.shape[2:]
        padded = np.full([1, 3, -(-height // stride) * stride, -(-width // stride) * stride], PAD_VALUE,
                         np.float32)
        padded[:, :, :height, :width] = image
        scale_y, scale_x = inputs["scale_factor"][0]
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([scale_x, scale_y, scale_x, scale_y],
                                                                        np.float32)
        tensors = {"image": paddle.to_tensor(padded), "im_shape": paddle.to_tensor(inputs["im_shape"]),
                   "scale_factor": paddle.to_tensor(inputs["scale_factor"])}
        return tensors, boxes

    @paddle.no_grad()
    def features(self, inputs):
        """The neck's feature maps (list of [1, C, H_l, W_l]) in the head's level order."""
        body = self.model.backbone(inputs)
        return self.model.neck(body)

    def assignment_maps(self, inputs, boxes, labels, methods=None):
        """Assignment maps of one preprocessed image.

        Args:
            inputs: from `prepare`. boxes (np.ndarray[n, 4]) input pixels. labels (np.ndarray[n]) 0-based.
            methods (list[str] | None): default: all of this head's methods.
        Returns:
            dict method -> AssignmentMap.
        """
        methods = self.check_methods(methods)
        feats = self.features(inputs)
        if self.head_name == "PPYOLOEHead":
            return self._ppyoloe_maps(feats, boxes, labels, methods)
        if self.head_name == "FCOSHead":
            grid = _grid_of(feats, self.strides, self.head.num_shift)
            return {"fcos": A.fcos_map(self._fcos_target_op(), grid, boxes, labels, self.num_classes)}
        if self.head_name == "AutoAssignHead":
            cls_logits, ltrbs, obj_logits, _ = self.head(feats)
            grid = _grid_of(feats, self.strides, self.head.point_offset)
            cls_prob = self.head.class_probability(
                fcos_base.flatten_levels(cls_logits),
                fcos_base.flatten_levels(obj_logits) if self.head.objectness else None)
            pred = fcos_base.distance_to_box(paddle.to_tensor(grid.points), fcos_base.flatten_levels(ltrbs))
            return {"autoassign": A.autoassign_map(self.head, grid, boxes, labels, cls_prob.numpy()[0],
                                                   pred.numpy()[0])}
        cls_list, ltrb_list, ctr_list = self.head(feats)
        grid = _grid_of(feats, self.strides, self.head.point_offset)
        scores = F.sigmoid(fcos_base.flatten_levels(cls_list)) * F.sigmoid(fcos_base.flatten_levels(ctr_list))
        return {"dw": A.dw_map(self.head, grid, boxes, labels, scores.numpy()[0],
                               fcos_base.flatten_levels(ltrb_list).numpy()[0])}

    def _fcos_target_op(self):
        """The Gt2FCOSTarget of the config's TrainReader (PipelineError when it has none)."""
        from ppdet.data.transform.batch_operators import Gt2FCOSTarget
        for item in self.cfg.get("TrainReader", {}).get("batch_transforms", []) or []:
            if isinstance(item, dict) and "Gt2FCOSTarget" in item:
                return Gt2FCOSTarget(**(item["Gt2FCOSTarget"] or {}))
        raise PipelineError("an FCOSHead config needs Gt2FCOSTarget in TrainReader.batch_transforms")

    def _ppyoloe_maps(self, feats, boxes, labels, methods):
        head = self.head
        grid = _grid_of(feats, self.strides, head.grid_cell_offset)
        out = {}
        if {"tal", "ppdet_tal"} & set(methods):
            with paddle.no_grad():
                cls_score, reg_dist, _, _ = head.forward_eval(feats)
            scores = cls_score.numpy()[0].T                                     # [L, C]
            dist = reg_dist.numpy()[0] * grid.strides[:, None]                  # [L, 4] ltrb pixels
            pred = np.concatenate([grid.points - dist[:, :2], grid.points + dist[:, 2:]], axis=1)
        for method in methods:
            if method in ("atss", "ppdet_atss"):
                assigner = _own_assigner(head.static_assigner) if method == "atss" else \
                    _ppdet_atss(head.static_assigner, self.num_classes)
                out[method] = A.atss_map(assigner, grid, boxes, labels, self.num_classes, head.grid_cell_scale,
                                         method)
            elif method in ("tal", "ppdet_tal"):
                assigner = _own_assigner(head.assigner) if method == "tal" else _ppdet_tal(head.assigner)
                out[method] = A.task_aligned_map(assigner, grid, boxes, labels, scores, pred, method)
            elif method == "tal_proxy":
                proxy_scores, proxy_boxes = A.proxy_predictions(grid, self.num_classes, head.grid_cell_scale)
                out[method] = A.task_aligned_map(_own_assigner(head.assigner), grid, boxes, labels, proxy_scores,
                                                 proxy_boxes, method)
        return out


def _head_kind(head):
    """'PPYOLOEHead', 'FCOSHead', 'AutoAssignHead', 'DWHead' or None."""
    if isinstance(head, AutoAssignHead):
        return "AutoAssignHead"
    if isinstance(head, DWHead):
        return "DWHead"
    if type(head).__name__ == "FCOSHead":
        return "FCOSHead"
    if type(head).__name__ == "PPYOLOEHead" or hasattr(head, "static_assigner") and hasattr(head, "forward_eval"):
        return "PPYOLOEHead"
    return None


def _find_head(model):
    for name in ("yolo_head", "fcos_head", "head"):
        head = getattr(model, name, None)
        if head is not None:
            return head
    raise PipelineError(f"cannot find the detection head of {type(model).__name__}")


def _grid_of(feats, strides, offset):
    """The Grid of the feature maps' actual sizes."""
    return A.grid_from_shapes([tuple(int(v) for v in f.shape[2:]) for f in feats], strides, offset)


def _own_assigner(assigner):
    """The head's assigner, made to return mask_positive when it is one of ppassign's."""
    if isinstance(assigner, (ATSSAssigner, TaskAlignedAssigner)):
        assigner.return_mask_positive = True
    return assigner


def _ppdet_atss(like, num_classes):
    from ppdet.modeling.assigners import ATSSAssigner as PPDetATSS
    return PPDetATSS(topk=like.topk, num_classes=num_classes,
                     force_gt_matching=getattr(like, "force_gt_matching", False))


def _ppdet_tal(like):
    from ppdet.modeling.assigners import TaskAlignedAssigner as PPDetTAL
    return PPDetTAL(topk=like.topk, alpha=like.alpha, beta=like.beta)
