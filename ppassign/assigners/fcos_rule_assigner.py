"""FCOS's assignment rule, on any anchor-based detector (a location = an anchor's centre).

Rule (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019, Sec. 3.1-3.2, as
restated by the ATSS paper, Sec. 3: "spatial and scale constraint"): a location is a candidate for an object
when it lies inside the box -- or, with centre sampling (``center_sampling_radius`` > 0, FCOS's improvement,
1.5 in its code and in PaddleDetection), inside the box cut to ``radius x stride`` around the object's centre
-- and the object's largest regression distance max(l, t, r, b) from it lies in the level's range
(``lo < max < hi``, strict as PaddleDetection's ``Gt2FCOSTarget``). A location that is a candidate for
several objects takes the smallest (by area; ties: the lower object index). Everything else is negative.

With A anchors per location all A anchors of a location share its assignment. Using this on RetinaNet
(with ``PPAssignRetinaHead``, which passes ``num_anchors_list``) gives the ATSS paper's experiment:
the same detector, only the assignment differs.
"""
import numpy as np
import paddle

from ..ops.geometry import box_centers, points_inside_boxes
from .retina_base import RetinaAssigner, check_fraction, hard_assignment

# FCOS's ranges for P3-P7 (FCOS Sec. 3.2): m2..m6 = 0, 64, 128, 256, 512, inf.
FCOS_SIZES = ((-1, 64), (64, 128), (128, 256), (256, 512), (512, np.inf))


def fcos_candidates(points, gt_bbox, strides, lower, upper, radius):
    """FCOS's spatial and scale constraint.

    Args:
        points (Tensor[L, 2]): location of every anchor; gt_bbox (Tensor[B, n, 4]).
        strides, lower, upper (Tensor[L]): the level's stride and size range of every anchor.
        radius (float): centre-sampling radius in strides (0: the whole box).
    Returns:
        Tensor[B, n, L] bool.
    """
    boxes = gt_bbox[:, :, None, :]                                                    # [B, n, 1, 4]
    if radius > 0:
        centres = box_centers(boxes)
        reach = (radius * strides)[:, None]                                           # [L, 1]
        region = paddle.concat([paddle.maximum(centres - reach, boxes[..., :2]),
                                paddle.minimum(centres + reach, boxes[..., 2:])], axis=-1)   # [B, n, L, 4]
    else:
        region = boxes
    inside = points_inside_boxes(points, region, eps=0.0)
    x, y = points[:, 0], points[:, 1]
    largest = paddle.maximum(paddle.maximum(x - boxes[..., 0], y - boxes[..., 1]),
                             paddle.maximum(boxes[..., 2] - x, boxes[..., 3] - y))  # [B, n, L]
    return inside & (largest > lower) & (largest < upper)


def smallest_object(candidates, gt_bbox):
    """Each location's smallest candidate object.

    Args:
        candidates (Tensor[B, n, L] bool), gt_bbox (Tensor[B, n, 4]).
    Returns:
        (matches Tensor[B, L] int64, positive Tensor[B, L] bool).
    """
    area = ((gt_bbox[..., 2] - gt_bbox[..., 0]) * (gt_bbox[..., 3] - gt_bbox[..., 1]))[..., None]
    masked = paddle.where(candidates, area.expand(candidates.shape), paddle.full(candidates.shape, np.inf))
    return masked.argmin(axis=1), candidates.any(axis=1)


class FCOSRuleAssigner(RetinaAssigner):
    """FCOS's rule with RetinaNet's outputs (see the module docstring).

    Args:
        strides (list[float]): stride of each level, in num_anchors_list order.
        object_sizes_of_interest (list[[lo, hi]] | None): size range of each level (default FCOS's, cut to the
            number of levels, the last one open-ended).
        center_sampling_radius (float): in strides; 0 turns centre sampling off (plain "inside the box").
    """
    needs = ("num_anchors_list",)

    def __init__(self, strides=(8, 16, 32, 64, 128), object_sizes_of_interest=None, center_sampling_radius=1.5):
        self.strides = [float(s) for s in strides]
        if not self.strides or min(self.strides) <= 0:
            raise ValueError(f"strides must be positive numbers, got {strides!r}")
        if object_sizes_of_interest is None:
            sizes = [list(r) for r in FCOS_SIZES[:len(self.strides)]]
            sizes[-1][1] = np.inf
        else:
            sizes = [[float(lo), float(hi)] for lo, hi in object_sizes_of_interest]
        if len(sizes) != len(self.strides) or any(lo >= hi for lo, hi in sizes):
            raise ValueError(f"object_sizes_of_interest must give one [lo, hi] (lo < hi) per stride "
                             f"({len(self.strides)}), got {object_sizes_of_interest!r}")
        self.sizes = sizes
        self.center_sampling_radius = check_fraction("center_sampling_radius", center_sampling_radius, 0, 1e6)

    def per_anchor(self, num_anchors_list):
        """Stride, lower and upper size bound of every anchor (Tensor[L] each), from the level sizes."""
        if len(num_anchors_list) != len(self.strides):
            raise ValueError(f"num_anchors_list has {len(num_anchors_list)} levels but strides "
                             f"{len(self.strides)}")
        reps = np.asarray(num_anchors_list)
        per = lambda values: paddle.to_tensor(np.repeat(np.asarray(values, "float32"), reps))
        return (per(self.strides), per([s[0] for s in self.sizes]),
                per([s[1] for s in self.sizes]))

    def _assign_batch(self, anchors, gt_bbox, valid, gt_class, pred_bboxes, pred_scores, num_anchors_list):
        strides, lower, upper = self.per_anchor(num_anchors_list)
        candidates = fcos_candidates(box_centers(anchors), gt_bbox, strides, lower, upper,
                                     self.center_sampling_radius) & valid[..., None]
        matches, positive = smallest_object(candidates, gt_bbox)
        return hard_assignment(matches, positive.astype("int32"))
