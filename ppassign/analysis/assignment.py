"""Per-location assignment maps of every method, as plain arrays (the core of tools/vis_assign.py and
tools/assign_stats.py).

An `AssignmentMap` holds, for the n objects of one image and the L locations of all FPN levels:
  * ``positive`` [n, L]: how much each location is a positive of each object. Hard assigners (ATSS,
    task-aligned) give 0/1 (their ``mask_positive`` after conflict resolution); AutoAssign gives w+ (paper
    eq. 1, sums to 1 over S_n), DW its positive weight w_pos (official normaliser, see ppassign.heads.dw_head).
  * ``negative`` [n, L] or None: the method's per-object negative weighting inside the object's candidates,
    NaN elsewhere (outside every candidate set a location is a plain negative with weight 1). AutoAssign: w-
    (eq. 11) on the object's class channel; DW: the negative probability P_neg (eq. 5-6) before its
    importance factor s^gamma1 (which depends on the score only, not on the assignment).

The weights are computed by the methods' own code: ppassign's / PaddleDetection's assigner classes for ATSS
and task-aligned assignment, and the pure weight functions of ppassign.heads.autoassign_head and ppassign.heads.dw_head
(called here in the order their heads call them) for AutoAssign and DW.
"""
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import paddle

from ..heads import autoassign_head as aa
from ..heads import dw_head as dw
from ..heads import fcos_base
from ..ops.geometry import aligned_iou, points_inside_boxes

# PP-YOLOE / TOOD anchors for ATSS: a square of grid_cell_scale strides around each location
# (ppdet PPYOLOEHead grid_cell_scale=5.0, grid_cell_offset=0.5).
GRID_CELL_SCALE = 5.0
GRID_CELL_OFFSET = 0.5


@dataclass
class Grid:
    """Locations of all FPN levels, level by level, row-major in a level.

    Attributes:
        points (np.ndarray[L, 2]): (x, y) in input pixels.
        strides (np.ndarray[L]): stride of each location's level.
        shapes (list[(H_l, W_l)]): feature map size of each level.
        level_strides (list[int]): stride of each level.
    """
    points: np.ndarray
    strides: np.ndarray
    shapes: List[tuple]
    level_strides: List[int]

    @property
    def counts(self):
        """Locations per level (list[int])."""
        return [h * w for h, w in self.shapes]

    def level_index(self):
        """np.ndarray[L] int: the level of each location."""
        return np.repeat(np.arange(len(self.shapes)), self.counts)

    def anchors(self, cell_scale=GRID_CELL_SCALE):
        """np.ndarray[L, 4] xyxy: squares of `cell_scale` strides centred on the locations."""
        half = (cell_scale * self.strides / 2.0)[:, None]
        return np.concatenate([self.points - half, self.points + half], axis=1).astype(np.float32)


def make_grid(height, width, strides, offset=GRID_CELL_OFFSET):
    """The Grid of an input of `height` x `width` pixels (feature maps of ceil(size / stride)).

    Args:
        height, width (int): input size in pixels. strides (list[int]): one per level, in the head's order.
        offset (float): 0.5 = cell centres (PP-YOLOE, FCOS, AutoAssign and DW here).
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height} x {width}")
    if not strides or any(int(s) < 1 for s in strides):
        raise ValueError(f"strides must be a non-empty list of positive ints, got {strides!r}")
    shapes = [(-(-int(height) // int(s)), -(-int(width) // int(s))) for s in strides]
    return grid_from_shapes(shapes, strides, offset)


def grid_from_shapes(shapes, strides, offset=GRID_CELL_OFFSET):
    """The Grid of feature maps of the given [(H_l, W_l)] shapes and strides."""
    if len(shapes) != len(strides):
        raise ValueError(f"shapes has {len(shapes)} levels but strides has {len(strides)}")
    points, point_strides = [], []
    for (h, w), stride in zip(shapes, strides):
        ys, xs = np.meshgrid((np.arange(h) + offset) * stride, (np.arange(w) + offset) * stride, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        point_strides.append(np.full(h * w, float(stride)))
    return Grid(np.concatenate(points).astype(np.float32), np.concatenate(point_strides).astype(np.float32),
                [(int(h), int(w)) for h, w in shapes], [int(s) for s in strides])


@dataclass
class AssignmentMap:
    """One method's assignment of one image (see the module docstring).

    Attributes:
        method (str). grid (Grid). boxes (np.ndarray[n, 4]) xyxy input pixels. labels (np.ndarray[n]) int.
        positive (np.ndarray[n, L]). negative (np.ndarray[n, L] | None).
        hard (bool): positive is 0/1.
    """
    method: str
    grid: Grid
    boxes: np.ndarray
    labels: np.ndarray
    positive: np.ndarray
    negative: Optional[np.ndarray] = None
    hard: bool = True


def check_objects(boxes, labels, num_classes):
    """Checked float32 [n, 4] boxes and int64 [n] labels (ValueError naming the argument)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) if np.size(boxes) else np.zeros([0, 4], np.float32)
    labels = np.asarray(labels, np.int64).reshape(-1)
    if len(labels) != len(boxes):
        raise ValueError(f"labels must have one entry per box: {len(labels)} labels for {len(boxes)} boxes")
    if not np.isfinite(boxes).all():
        raise ValueError("boxes must be finite")
    if len(boxes) and ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise ValueError("boxes must be xyxy with x2 > x1 and y2 > y1")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, num_classes={num_classes}), got {labels.min()}..{labels.max()}")
    return boxes, labels


def _gt_tensors(boxes, labels):
    """[1, n, 4] float32, [1, n, 1] int32 and the [1, n, 1] all-ones pad mask of one image."""
    n = len(boxes)
    return (paddle.to_tensor(boxes.reshape(1, n, 4)), paddle.to_tensor(labels.reshape(1, n, 1).astype(np.int32)),
            paddle.ones([1, n, 1], "float32"))


def _mask_positive(outputs, boxes, labels, bg_index):
    """The [n, L] 0/1 mask_positive of an assigner's outputs for one image's `boxes` [n, 4] / `labels` [n].

    paddledet 2.6 (and ppassign's with return_mask_positive=True) return it as the 4th value. PaddleDetection
    2.7+ returns 3 values; then a location is positive for the object whose box and label it was assigned (the
    assigned box is gathered from the object boxes, so it equals one exactly; of identical objects, the first).
    """
    num_locations = outputs[0].shape[-1]
    if len(outputs) >= 4:
        return outputs[3].numpy().reshape(len(boxes), num_locations).astype(np.float32)
    assigned_labels = outputs[0].numpy().reshape(num_locations)
    assigned_boxes = outputs[1].numpy().reshape(num_locations, 4)
    same = (assigned_boxes[None] == np.asarray(boxes, np.float32)[:, None]).all(-1) \
        & (assigned_labels[None] == np.asarray(labels)[:, None])                                    # [n, L]
    first = same & (np.cumsum(same, axis=0) == 1)
    return (first & (assigned_labels != bg_index)[None]).astype(np.float32)


def atss_map(assigner, grid, boxes, labels, num_classes, cell_scale=GRID_CELL_SCALE, method="atss"):
    """ATSS positives: `assigner` (ppassign's or ppdet's ATSSAssigner) on the grid's anchors.

    Args:
        assigner: called as PP-YOLOE's head calls its static assigner.
        grid (Grid), boxes (np.ndarray[n, 4]), labels (np.ndarray[n]), num_classes (int).
        cell_scale (float): anchor side in strides.
    Returns:
        AssignmentMap with a 0/1 positive [n, L].
    """
    boxes, labels = check_objects(boxes, labels, num_classes)
    num_locations = len(grid.points)
    if len(boxes) == 0:
        return AssignmentMap(method, grid, boxes, labels, np.zeros([0, num_locations], np.float32))
    gt_boxes, gt_labels, pad = _gt_tensors(boxes, labels)
    outputs = assigner(paddle.to_tensor(grid.anchors(cell_scale)), grid.counts, gt_labels, gt_boxes, pad,
                       bg_index=num_classes)
    return AssignmentMap(method, grid, boxes, labels, _mask_positive(outputs, boxes, labels, num_classes))


def task_aligned_map(assigner, grid, boxes, labels, pred_scores, pred_boxes, method="tal"):
    """Task-aligned positives: `assigner` (ppassign's or ppdet's TaskAlignedAssigner) on predictions.

    Args:
        assigner: called as PP-YOLOE's head calls its assigner.
        grid (Grid), boxes (np.ndarray[n, 4]), labels (np.ndarray[n]).
        pred_scores (np.ndarray[L, C]): class probabilities. pred_boxes (np.ndarray[L, 4]): xyxy input pixels.
    Returns:
        AssignmentMap with a 0/1 positive [n, L].
    """
    num_locations, num_classes = np.shape(pred_scores)
    boxes, labels = check_objects(boxes, labels, num_classes)
    if np.shape(pred_boxes) != (num_locations, 4) or num_locations != len(grid.points):
        raise ValueError(f"pred_scores [L, C] and pred_boxes [L, 4] must have L = {len(grid.points)} rows, got "
                         f"{list(np.shape(pred_scores))} and {list(np.shape(pred_boxes))}")
    if len(boxes) == 0:
        return AssignmentMap(method, grid, boxes, labels, np.zeros([0, num_locations], np.float32))
    gt_boxes, gt_labels, pad = _gt_tensors(boxes, labels)
    outputs = assigner(paddle.to_tensor(np.asarray(pred_scores, np.float32)[None]),
                       paddle.to_tensor(np.asarray(pred_boxes, np.float32)[None]), paddle.to_tensor(grid.points),
                       grid.counts, gt_labels, gt_boxes, pad, bg_index=num_classes)
    return AssignmentMap(method, grid, boxes, labels, _mask_positive(outputs, boxes, labels, num_classes))


def fcos_map(target_op, grid, boxes, labels, num_classes):
    """FCOS positives as PaddleDetection's ``Gt2FCOSTarget`` reader op builds them (locations inside the box,
    or its centre region with centre sampling, on the level whose scale range holds the object; a location
    claimed by several objects goes to the smallest).

    The op returns per-level labels and regression targets, not object indices: each positive location's object
    is recovered as the box its regression target decodes to.

    Args:
        target_op (Gt2FCOSTarget): with ``downsample_ratios`` equal to the grid's strides.
        grid (Grid): offset 0.5 (FCOS num_shift), levels from the finest.
        boxes (np.ndarray[n, 4]), labels (np.ndarray[n]), num_classes (int).
    Returns:
        AssignmentMap with a 0/1 positive [n, L].
    """
    boxes, labels = check_objects(boxes, labels, num_classes)
    if [int(s) for s in target_op.downsample_ratios] != grid.level_strides:
        raise ValueError(f"Gt2FCOSTarget downsample_ratios {target_op.downsample_ratios} must equal the grid's "
                         f"strides {grid.level_strides}")
    num_locations = len(grid.points)
    positive = np.zeros([len(boxes), num_locations], np.float32)
    if len(boxes) == 0:
        return AssignmentMap("fcos", grid, boxes, labels, positive)
    height, width = grid.shapes[0][0] * grid.level_strides[0], grid.shapes[0][1] * grid.level_strides[0]
    sample = {"image": np.zeros([3, height, width], np.float32), "gt_bbox": boxes.copy(),
              "gt_class": labels.reshape(-1, 1).astype(np.int32)}
    with np.errstate(invalid="ignore", divide="ignore"):  # ppdet's centerness of negatives: sqrt of < 0, 0/0
        sample = target_op([sample])[0]
    start = 0
    for level, (count, stride) in enumerate(zip(grid.counts, grid.level_strides)):
        located = sample[f"labels{level}"].reshape(-1) > 0
        reg = sample[f"reg_target{level}"].reshape(-1, 4).astype(np.float64)
        if target_op.norm_reg_targets and not target_op.multiply_strides_reg_targets:
            reg = reg * stride
        points = grid.points[start:start + count]
        decoded = np.concatenate([points - reg[:, :2], points + reg[:, 2:]], axis=1)[located]
        owner = np.abs(decoded[:, None, :] - boxes[None]).sum(-1).argmin(1)
        positive[owner, start + np.nonzero(located)[0]] = 1.0
        start += count
    return AssignmentMap("fcos", grid, boxes, labels, positive)


def proxy_predictions(grid, num_classes, cell_scale=GRID_CELL_SCALE, score=0.5):
    """A model-free stand-in for task-aligned assignment: every location predicts its own anchor box with the
    same score for every class.

    The alignment metric s^alpha u^beta then ranks the locations inside a box by the IoU of their anchor with it,
    i.e. the assignment of a detector whose boxes are its anchors. Returns (scores [L, C], boxes [L, 4]).
    """
    return np.full([len(grid.points), num_classes], score, np.float32), grid.anchors(cell_scale)


def autoassign_map(head, grid, boxes, labels, cls_prob, pred_boxes):
    """AutoAssign's w+ and w- with the head's parameters (mu, sigma, temperature, loc_weight, force_topk).

    Args:
        head (AutoAssignHead). grid (Grid): the head's locations.
        boxes (np.ndarray[n, 4]), labels (np.ndarray[n]).
        cls_prob (np.ndarray[L, C]): P(cls | obj) P(obj). pred_boxes (np.ndarray[L, 4]): xyxy input pixels.
    Returns:
        AssignmentMap, soft: positive = w+ [n, L], negative = w- on each object's class, NaN outside S_n.
    """
    boxes, labels = check_objects(boxes, labels, head.num_classes)
    num_locations = len(grid.points)
    if len(boxes) == 0:
        return AssignmentMap("autoassign", grid, boxes, labels, np.zeros([0, num_locations], np.float32),
                             np.zeros([0, num_locations], np.float32), hard=False)
    points, strides = paddle.to_tensor(grid.points), paddle.to_tensor(grid.strides)
    gts, gt_labels = paddle.to_tensor(boxes), paddle.to_tensor(labels)
    cls_prob = paddle.to_tensor(np.asarray(cls_prob, np.float32))
    pred = paddle.to_tensor(np.asarray(pred_boxes, np.float32))
    with paddle.no_grad():
        inside = aa.inside_boxes(points, gts)
        _, in_s, pos_prior = head.center_weighting(points, strides, gts, gt_labels, inside)
        loc_loss = fcos_base.giou_loss(pred.unsqueeze(0), gts.unsqueeze(1))
        p_cls = paddle.gather(cls_prob, gt_labels, axis=1).t()
        _, w_pos = aa.positive_loss(p_cls, loc_loss, pos_prior, in_s, head.temperature, head.loc_weight,
                                    head.confidence_weighting)
        best_iou = aligned_iou(pred.unsqueeze(0), gts.unsqueeze(1)).max(0)
        negative = np.full([len(boxes), num_locations], np.nan, np.float32)
        in_s_np = in_s.numpy()
        for j in range(len(boxes)):  # one object at a time: its own w- (the head merges same-class objects)
            w_neg = aa.negative_weights(best_iou, in_s[j:j + 1], gt_labels[j:j + 1], head.num_classes).numpy()
            negative[j, in_s_np[j]] = w_neg[in_s_np[j], labels[j]]
    return AssignmentMap("autoassign", grid, boxes, labels, w_pos.numpy(), negative, hard=False)


def dw_map(head, grid, boxes, labels, scores, ltrb):
    """DW's positive weight w_pos and negative probability P_neg with the head's settings.

    Args:
        head (DWHead). grid (Grid): the head's locations.
        boxes (np.ndarray[n, 4]), labels (np.ndarray[n]).
        scores (np.ndarray[L, C]): sigmoid(cls) * sigmoid(centerness). ltrb (np.ndarray[L, 4]): pixels.
    Returns:
        AssignmentMap, soft: positive = w_pos [n, L], negative = P_neg inside each object's candidates.
    """
    boxes, labels = check_objects(boxes, labels, head.num_classes)
    num_locations = len(grid.points)
    if len(boxes) == 0:
        return AssignmentMap("dw", grid, boxes, labels, np.zeros([0, num_locations], np.float32),
                             np.zeros([0, num_locations], np.float32), hard=False)
    points, strides = paddle.to_tensor(grid.points), paddle.to_tensor(grid.strides)
    gts, gt_labels = paddle.to_tensor(boxes[None]), paddle.to_tensor(labels[None])
    scores = paddle.to_tensor(np.asarray(scores, np.float32)[None])
    ltrb = paddle.to_tensor(np.asarray(ltrb, np.float32)[None])
    with paddle.no_grad():
        candidates = points_inside_boxes(points.unsqueeze(0).unsqueeze(0), gts.unsqueeze(2))
        prior = dw.center_prior(points, strides, gts, candidates, head.soft_prior)
        pred_boxes = fcos_base.distance_to_box(points.unsqueeze(0), ltrb).unsqueeze(1)
        reg_loss = fcos_base.giou_loss(pred_boxes, gts.unsqueeze(2))
        ious = aligned_iou(pred_boxes, gts.unsqueeze(2), eps=dw.IOU_EPS)
        _, t = dw.consistency(dw.class_scores_of_gts(scores, gt_labels), reg_loss, head.beta)
        w_pos = (dw.positive_weights(t, prior, head.mu, head.norm_mu) if head.pos_weighting
                 else dw.prior_positive_weights(prior))
        p_neg = dw.negative_probability(ious, candidates, head.gamma2)
        if not head.neg_weighting:  # the ablation's weight: P_neg = 1 (the normaliser keeps the real P_neg)
            p_neg = paddle.ones_like(p_neg)
    cand = candidates.numpy()[0]
    negative = np.where(cand, p_neg.numpy()[0], np.nan).astype(np.float32)
    return AssignmentMap("dw", grid, boxes, labels, w_pos.numpy()[0], negative, hard=False)
