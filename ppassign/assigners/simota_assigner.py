"""SimOTA (Ge et al., 2021, "YOLOX: Exceeding YOLO Series in 2021", Sec. 2.2), a drop-in for ppdet's SimOTAAssigner.

Outputs equal PaddleDetection's ``SimOTAAssigner`` (tests/assigners/test_simota_assigner.py checks parity), which
YOLOX, PicoDet-legacy (PicoHead) and the OTA heads call once per image. The rule:

1. candidates: anchors whose centre lies strictly inside some object's box or inside the square of
   ±center_radius strides around some object's centre;
2. every (candidate, object) pair costs cls_weight * C_cls + iou_weight * C_iou, plus 1e8 unless the anchor is
   inside both that object's box and its centre square. With use_vfl: C_cls = varifocal loss against the
   IoU at the object's class, C_iou = 1 - GIoU; without: C_cls = BCE against the object's one-hot class,
   C_iou = -log(IoU + eps);
3. dynamic-k matching (`dynamic_k`): each object takes its k cheapest candidates, k = max(1, int(sum of its
   candidate_topk highest IoUs)); a candidate taken by several objects goes to its cheapest object.

Where ppdet's per-image NumPy code loops over objects and builds a candidates x objects x classes tensor, this
computes the batch's [B, n, V] costs (V: candidates of the image with the most) without a class axis: the class
sum is taken once per candidate and the object's class term swapped in. Picking the k cheapest is exact from one
top-k over all objects wherever the k-th and (k+1)-th cost of an object differ; where they tie (in practice:
objects that need candidates outside their box-and-centre region, whose costs all round to 1e8 + a multiple
of 8) the object's candidates get ppdet's own per-object top-k, grouped by (image, k) so that it runs at most
candidate_topk times per image, whatever the number of objects.

`assign_batch` is the batched path (padded ground truth and a mask, as the task-aligned call) for heads that can
use tensors for every image at once; ``__call__`` is ppdet's per-image call, with NumPy outputs.
"""
from typing import NamedTuple, Optional

import numpy as np
import paddle

from ..ops.precision import float32_inputs
from ..ops.validation import NonFiniteError, require_shape, require_tensor
from . import grid
from .assign_utils import HostInputs, row_chunks
from .dynamic_k import candidate_columns, dynamic_ks, flat_columns, gather_columns, \
    resolve_to_lowest_cost, scatter_to_anchors

# ppdet.modeling.assigners.simota_assigner: the cost added to pairs outside the box-and-centre region.
OUTSIDE_COST = 100000000.0
# ppdet.modeling.bbox_utils.batch_bbox_overlaps: the union (and enclosing area) is clamped at 1e-6.
UNION_EPS = 1e-6
# ppdet.modeling.losses.varifocal_loss defaults (as SimOTAAssigner calls it).
VFL_ALPHA = 0.75
# Paddle's binary_cross_entropy clamps log(p) and log(1 - p) at -100.
LOG_MIN = -100.0
DEFAULT_MEMORY_BUDGET_MB = 256
# Argument names in errors: those of the call the user made (ppdet's per-image call or `assign_batch`).
_BATCH_NAMES = {"scores": "pred_scores", "anchors": "center_and_strides", "pred": "pred_bboxes"}
_CALL_NAMES = {"scores": "flatten_cls_pred_scores", "anchors": "flatten_center_and_stride", "pred": "flatten_bboxes"}
# Up to this many (object, anchor) pairs, step 1 tests every pair on the host (fewer NumPy calls than the
# per-level grid ranges, the same float32 tests).
HOST_PAIRS_DENSE = 2 ** 20
# Float temporaries alive per (image, slot, candidate) entry while a chunk's costs are computed.
_TEMPS_PER_ENTRY = 48


def _log(x):
    return paddle.log(x).clip(min=LOG_MIN)


def _bce_zero(p):
    """Paddle's binary_cross_entropy of probabilities p against target 0: -max(log(1 - p), -100)."""
    return -_log(1 - p)


def _bce_one(p):
    """Paddle's binary_cross_entropy of probabilities p against target 1: -max(log(p), -100)."""
    return -_log(p)


def _iou_and_giou_loss(pred, gt, with_giou):
    """ppdet's batch_bbox_overlaps (mode iou, and 1 - GIoU for mode giou), with its arithmetic, broadcasting.

    Args:
        pred, gt: (x1, y1, x2, y2), four broadcastable Tensors each, e.g. [B, 1, V] and [B, c, 1].
    Returns:
        iou (Tensor, the broadcast shape, e.g. [B, c, V]); 1 - GIoU (same) or None.
    """
    px1, py1, px2, py2 = pred
    gx1, gy1, gx2, gy2 = gt
    area_pred = (px2 - px1) * (py2 - py1)
    area_gt = (gx2 - gx1) * (gy2 - gy1)
    width = (paddle.minimum(px2, gx2) - paddle.maximum(px1, gx1)).clip(min=0)
    height = (paddle.minimum(py2, gy2) - paddle.maximum(py1, gy1)).clip(min=0)
    overlap = width * height
    union = (area_pred + area_gt - overlap).clip(min=UNION_EPS)
    iou = overlap / union
    if not with_giou:
        return iou, None
    enclose_w = (paddle.maximum(px2, gx2) - paddle.minimum(px1, gx1)).clip(min=0)
    enclose_h = (paddle.maximum(py2, gy2) - paddle.minimum(py1, gy1)).clip(min=0)
    enclose_area = (enclose_w * enclose_h).clip(min=UNION_EPS)
    return iou, 1 - (iou - (enclose_area - union) / enclose_area)


def _axis_range(coords, lo, hi):
    """Per row, the index range [a, b) of sorted float32 coords c with fl(c - lo) > 0 and fl(hi - c) > 0
    (ppdet's strict test, in float32: the first holds on a suffix, the second on a prefix).

    Args:
        coords (np.ndarray[w] float32), lo, hi (np.ndarray[m] float32).
    Returns:
        a, b (np.ndarray[m] int64); a >= b means none.
    """
    left = (coords[None] - lo[:, None]) > 0
    right = (hi[:, None] - coords[None]) > 0
    a = np.where(left.any(1), left.argmax(1), len(coords))
    return a.astype(np.int64), right.sum(1).astype(np.int64)


class _State(NamedTuple):
    """One call's host-side facts: `HostInputs`, the candidate layout (`dynamic_k.candidate_columns`, None when no
    image has a candidate) and each (slot, candidate)'s cost offset (`SimOTAAssigner._pair_offsets`)."""
    host: HostInputs
    columns: Optional[np.ndarray]
    real: Optional[np.ndarray]
    flat: Optional[np.ndarray]
    offsets: Optional[np.ndarray]


class SimOTAAssigner(object):
    """SimOTA label assignment (see the module docstring); ppdet's constructor and call.

    Args:
        center_radius (float): half-size, in strides, of the square around an object's centre.
        candidate_topk (int): highest IoUs summed for an object's dynamic k.
        iou_weight (float), cls_weight (float): weights of the IoU and classification costs.
        num_classes (int): C.
        use_vfl (bool): varifocal + GIoU costs (True) or BCE + -log IoU costs (False).
        memory_budget_mb (int): above it, costs are computed in slot chunks (same result).
    Note:
        Float16 / bfloat16 inputs are computed in float32 and give float32 outputs. Where ppdet's assigner
        raises (objects but no candidate anchor at all in an image: its top-k gets k = 0), every anchor of the
        image is negative.
    """
    __shared__ = ["num_classes"]

    def __init__(self, center_radius=2.5, candidate_topk=10, iou_weight=3.0, cls_weight=1.0, num_classes=80,
                 use_vfl=True, memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB):
        if int(candidate_topk) < 1:
            raise ValueError(f"candidate_topk must be >= 1, got {candidate_topk}")
        if float(center_radius) <= 0:
            raise ValueError(f"center_radius must be > 0, got {center_radius}")
        self.center_radius = center_radius
        self.candidate_topk = int(candidate_topk)
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight
        self.num_classes = num_classes
        self.use_vfl = use_vfl
        self.memory_budget_mb = memory_budget_mb

    def __call__(self, flatten_cls_pred_scores, flatten_center_and_stride, flatten_bboxes, gt_bboxes, gt_labels,
                 eps=1e-7):
        """Assign one image's anchors, as ppdet's SimOTAAssigner.

        Args:
            flatten_cls_pred_scores (Tensor[L, C]): class probabilities.
            flatten_center_and_stride (Tensor[L, 4]): (x, y, stride_x, stride_y) of every anchor.
            flatten_bboxes (Tensor[L, 4]): xyxy predicted boxes, in the GTs' units.
            gt_bboxes (Tensor[n, 4]), gt_labels (Tensor[n, 1]): every row is an object (ppdet has no mask).
            eps (float): in -log(IoU + eps).
        Returns:
            pos_num (int): max(positives, 1), 0 without objects; label (np.ndarray[L] int64): num_classes for
            negatives; label_weight (np.ndarray[L] float32): ones; bbox_target (np.ndarray[L, 4] float32).
        Device-to-host copies: 2 (3 when some object's k-th cost ties), the outputs built on the host.
        """
        require_tensor("flatten_cls_pred_scores", flatten_cls_pred_scores, 2)
        require_tensor("flatten_center_and_stride", flatten_center_and_stride, 2, last=4)
        require_tensor("flatten_bboxes", flatten_bboxes, 2, last=4)
        require_tensor("gt_bboxes", gt_bboxes, 2, last=4)
        num_gt = gt_bboxes.shape[0]
        require_tensor("gt_labels", gt_labels, 2, last=1)
        require_shape("gt_labels", gt_labels, [num_gt, 1], "gt_bboxes is [n, 4]")
        with paddle.no_grad():
            inputs = (flatten_cls_pred_scores.unsqueeze(0), flatten_center_and_stride, flatten_bboxes.unsqueeze(0),
                      gt_bboxes.unsqueeze(0), gt_labels.unsqueeze(0), None)
            state = self._prepare(*inputs, _CALL_NAMES)
            num_anchors = flatten_bboxes.shape[0]
            if state.columns is None:
                winner = positive = np.zeros((1, 0), np.int64)
            else:
                cost, selected, tie_k = self._match(*inputs[:5], state, eps)
                winner, positive = resolve_to_lowest_cost(selected, cost)
                width = cost.shape[-1]
                # device-to-host copy 2 (3 after a tie): ties, and the assignment of every candidate
                host_view = paddle.concat([tie_k.astype("int64").flatten(), winner.flatten(),
                                           positive.astype("int64").flatten()]).numpy()
                tie_host = host_view[:num_gt].reshape(1, num_gt)
                winner, positive = host_view[num_gt:num_gt + width], host_view[num_gt + width:]
                if tie_host.any():
                    selected = self._ppdet_topk_rows(cost, selected, tie_host, state.real.sum(1))
                    winner, positive = resolve_to_lowest_cost(selected, cost)
                    host_view = paddle.concat([winner.flatten(), positive.astype("int64").flatten()]).numpy()
                    winner, positive = host_view[:width], host_view[width:]
                winner, positive = winner.reshape(1, width), positive.reshape(1, width).astype(bool)
        return self._host_outputs(state, winner, positive, num_anchors)

    def assign_batch(self, pred_scores, center_and_strides, pred_bboxes, gt_bboxes, gt_labels, pad_gt_mask=None,
                     eps=1e-7):
        """Assign every image of a batch at once (image b: ppdet's call on its real objects).

        Args:
            pred_scores (Tensor[B, L, C]): class probabilities.
            center_and_strides (Tensor[L, 4]): (x, y, stride_x, stride_y) of every anchor.
            pred_bboxes (Tensor[B, L, 4]): xyxy predicted boxes, in the GTs' units.
            gt_bboxes (Tensor[B, n, 4]), gt_labels (Tensor[B, n, 1]),
            pad_gt_mask (Tensor[B, n, 1] | None): 1 for real objects; None: every slot is one (as ppdet's call).
            eps (float): in -log(IoU + eps).
        Returns:
            pos_num (Tensor[B] int64): max(positives, 1) per image, 0 for an image without objects;
            labels (Tensor[B, L] int64): num_classes for negatives; label_weights (Tensor[B, L] float32): ones;
            bbox_targets (Tensor[B, L, 4] float32): the object's box for positives, 0 elsewhere.
        Device-to-host copies: 2, the outputs stay on the device.
        """
        with paddle.no_grad():
            inputs = (pred_scores, center_and_strides, pred_bboxes, gt_bboxes, gt_labels, pad_gt_mask)
            state = self._prepare(*inputs, _BATCH_NAMES)
            batch, num_anchors = pred_bboxes.shape[:2]
            if state.columns is None:
                assigned = paddle.zeros([batch, num_anchors], "int64")
                return self._device_outputs(state, assigned, paddle.zeros([batch, num_anchors], "bool"))
            cost, selected, tie_k = self._match(*inputs[:5], state, eps)
            tie_host = tie_k.numpy()                         # device-to-host copy 2
            if tie_host.any():
                selected = self._ppdet_topk_rows(cost, selected, tie_host, state.real.sum(1))
            winner, positive = resolve_to_lowest_cost(selected, cost)
            assigned, positive = scatter_to_anchors(winner, positive, state.flat, state.real, num_anchors)
            return self._device_outputs(state, assigned, positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _prepare(self, pred_scores, center_and_strides, pred_bboxes, gt_bboxes, gt_labels, pad_gt_mask, names):
        """Checks, device-to-host copy 1 and step 1: the candidates of every image.

        Returns:
            _State; its `columns` is None when no image has a candidate (or an object).
        """
        pred_scores, center_and_strides, pred_bboxes, gt_bboxes = float32_inputs(
            pred_scores, center_and_strides, pred_bboxes, gt_bboxes)
        batch, num_anchors, num_classes = self._check(pred_scores, center_and_strides, pred_bboxes, gt_bboxes,
                                                      gt_labels, pad_gt_mask, names)
        if pad_gt_mask is None:
            pad_gt_mask = paddle.ones(gt_labels.shape, "float32")
        # device-to-host copy 1: ground truth, anchors, finiteness of the predictions
        host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=[center_and_strides],
                                finite=[(names["pred"], pred_bboxes), (names["scores"], pred_scores)])
        anchors_host = host.extra[0].reshape(num_anchors, 4)
        if not np.isfinite(anchors_host).all():
            raise NonFiniteError(names["anchors"])
        if (anchors_host[:, 2:] <= 0).any():
            raise ValueError(f"{names['anchors']} must hold positive strides in its last two columns")
        candidates, both = self._regions(anchors_host, host, batch)
        state = _State(host, None, None, None, None)
        if host.num_objects == 0 or not candidates.any():
            return state
        columns, real = candidate_columns(candidates)
        flat = flat_columns(columns, num_anchors)
        return _State(host, columns, real, flat, self._pair_offsets(host, columns, real, both, num_anchors))

    @staticmethod
    def _pair_offsets(host, columns, real, both, num_anchors):
        """What ppdet adds to each (slot, candidate) cost: 0 inside the object's box and centre square, 1e8
        elsewhere, +inf for padding slots and columns. np.ndarray[B, n, V] float32."""
        batch, width = columns.shape
        offsets = np.full((batch, host.valid.shape[1], width), np.inf, np.float32)
        offsets[host.valid[:, :, None] & real[:, None, :]] = OUTSIDE_COST
        column_of = np.zeros((batch, num_anchors), np.int64)
        image, column = np.nonzero(real)
        column_of[image, columns[real]] = column
        obj, anchor = both
        offsets[host.image[obj], host.slot[obj], column_of[host.image[obj], anchor]] = 0
        return offsets

    def _check(self, pred_scores, center_and_strides, pred_bboxes, gt_bboxes, gt_labels, pad_gt_mask, names):
        """Shapes and dtypes (no host copy) -> (B, L, C)."""
        scores, anchors, pred = names["scores"], names["anchors"], names["pred"]
        require_tensor(scores, pred_scores, 3)
        batch, num_anchors, num_classes = pred_scores.shape
        require_tensor(anchors, center_and_strides, 2, last=4)
        require_shape(anchors, center_and_strides, [num_anchors, 4], f"{scores} has L rows")
        require_tensor(pred, pred_bboxes, 3, last=4)
        require_shape(pred, pred_bboxes, [batch, num_anchors, 4], f"{scores} has L rows")
        require_tensor("gt_bboxes", gt_bboxes, 3, last=4)
        require_shape("gt_bboxes", gt_bboxes, [batch] + list(gt_bboxes.shape[1:]), f"{scores} is [B, L, C]")
        num_max = gt_bboxes.shape[1]
        require_tensor("gt_labels", gt_labels, 3, last=1)
        require_shape("gt_labels", gt_labels, [batch, num_max, 1], "gt_bboxes is [B, n, 4]")
        if gt_labels.dtype not in (paddle.int32, paddle.int64):
            raise ValueError(f"gt_labels must be int32 or int64, got {gt_labels.dtype}")
        if pad_gt_mask is not None:
            require_tensor("pad_gt_mask", pad_gt_mask, 3, last=1)
            require_shape("pad_gt_mask", pad_gt_mask, [batch, num_max, 1], "gt_bboxes is [B, n, 4]")
        if self.use_vfl and num_classes != self.num_classes:
            raise ValueError(f"{scores} must have num_classes={self.num_classes} columns with use_vfl=True "
                             f"(ppdet's varifocal cost), got shape {list(pred_scores.shape)}")
        return batch, num_anchors, num_classes

    def _regions(self, anchors_host, host, batch):
        """Step 1 on the host, with ppdet's float32 tests: which anchors are candidates, and which (object, anchor)
        pairs lie inside both the object's box and its centre square.

        Returns:
            candidates (np.ndarray[B, L] bool); both (np.ndarray[P] object index, np.ndarray[P] anchor).
        """
        num_anchors = anchors_host.shape[0]
        candidates = np.zeros((batch, num_anchors), bool)
        none = np.zeros(0, np.int64)
        if host.num_objects == 0:
            return candidates, (none, none)
        points, strides = anchors_host[:, :2], anchors_host[:, 2:]
        axes = None
        if host.num_objects * num_anchors > HOST_PAIRS_DENSE:
            change = np.nonzero((strides[1:] != strides[:-1]).any(1))[0] + 1
            counts = np.diff(np.r_[0, change, num_anchors]).tolist()
            axes = grid.level_axes(points, counts)
        boxes = host.obj_boxes
        radius = np.float32(self.center_radius)
        cx = (boxes[:, 0] + boxes[:, 2]) / np.float32(2)
        cy = (boxes[:, 1] + boxes[:, 3]) / np.float32(2)
        if axes is None:                           # few pairs, or points off a grid: every (object, anchor)
            both_obj, both_anchor = [], []
            rx, ry = radius * strides[None, :, 0], radius * strides[None, :, 1]
            x, y = points[None, :, 0], points[None, :, 1]
            for start, stop in row_chunks(host.num_objects, num_anchors * 8, self.memory_budget_mb):
                part = slice(start, stop)
                in_box = ((x - boxes[part, None, 0] > 0) & (y - boxes[part, None, 1] > 0)
                          & (boxes[part, None, 2] - x > 0) & (boxes[part, None, 3] - y > 0))
                in_centre = ((x - (cx[part, None] - rx) > 0) & (y - (cy[part, None] - ry) > 0)
                             & ((cx[part, None] + rx) - x > 0) & ((cy[part, None] + ry) - y > 0))
                obj, anchor = np.nonzero(in_box | in_centre)
                candidates[host.image[start + obj], anchor] = True
                obj, anchor = np.nonzero(in_box & in_centre)
                both_obj.append(start + obj)
                both_anchor.append(anchor)
            return candidates, (np.concatenate(both_obj), np.concatenate(both_anchor))
        rows, start = np.arange(host.num_objects), 0
        both_obj, both_anchor = [], []
        for (xs, ys), count in zip(axes, counts):
            sx, sy = strides[start]
            box = _axis_range(ys, boxes[:, 1], boxes[:, 3]) + _axis_range(xs, boxes[:, 0], boxes[:, 2])
            centre = (_axis_range(ys, cy - radius * sy, cy + radius * sy)
                      + _axis_range(xs, cx - radius * sx, cx + radius * sx))
            for r0, r1, c0, c1 in (box, centre):
                owners, anchors = grid.expand_rectangles(rows, start, len(xs), r0, r1, c0, c1)
                candidates[host.image[owners], anchors] = True
            both = [np.maximum(box[i], centre[i]) if i % 2 == 0 else np.minimum(box[i], centre[i]) for i in range(4)]
            owners, anchors = grid.expand_rectangles(rows, start, len(xs), *both)
            both_obj.append(owners)
            both_anchor.append(anchors)
            start += count
        return candidates, (np.concatenate(both_obj), np.concatenate(both_anchor))

    def _class_terms(self, cand_scores):
        """Per candidate and class, what the classification cost of a pair needs (Tensors [B, C, V]), and the cost
        of a candidate against an object whose class has target 0 everywhere (Tensor[B, V])."""
        p = cand_scores.transpose([0, 2, 1])                                             # [B, C, V]
        zero = _bce_zero(p)                                                              # BCE(p, 0)
        if self.use_vfl:
            zero = zero * (VFL_ALPHA * p.abs().pow(2.0))                                 # ... x focal weight
            terms = {"p": p, "log_p": _log(p), "log_1p": _log(1 - p), "zero": zero}
        else:
            terms = {"swap": _bce_one(p) - zero}                                         # BCE(p, 1) - BCE(p, 0)
        return terms, zero.sum(1)

    def _pair_costs(self, gt, labels, pred, terms, background, eps):
        """Step 2 for GT slots [B, c] against the candidates [B, V]: (cost, IoU), Tensor[B, c, V] each, without
        the 1e8 / padding offset.

        Args:
            gt (4 Tensors [B, c, 1]): x1, y1, x2, y2; labels (Tensor[B, c, 1] int64); pred (4 Tensors [B, 1, V]);
            terms, background: `_class_terms`.
        """
        iou, giou_loss = _iou_and_giou_loss(pred, gt, self.use_vfl)
        at_label = lambda name: paddle.take_along_axis(terms[name], labels, axis=1, broadcast=True)   # [B, c, V]
        if self.use_vfl:
            zero = at_label("zero")
            own = paddle.where(iou > 0, ((iou - 1) * at_label("log_1p") - iou * at_label("log_p")) * iou, zero)
            cls_cost = background.unsqueeze(1) - zero + own
            reg_cost = giou_loss
        else:
            cls_cost = background.unsqueeze(1) + at_label("swap")
            reg_cost = -paddle.log(iou + eps)
        if self.cls_weight != 1:
            cls_cost = cls_cost * self.cls_weight
        return cls_cost + reg_cost * self.iou_weight, iou

    def _match(self, pred_scores, center_and_strides, pred_bboxes, gt_bboxes, gt_labels, state, eps):
        """Steps 2 and 3 up to the matches, in slot chunks.

        Returns:
            cost (Tensor[B, n, V]): ppdet's, +inf in padding; selected (Tensor[B, n, V] bool): the k cheapest of
            each object where its k-th and (k+1)-th cost differ; tie_k (Tensor[B, n] int32): k where they tie
            (those objects need `_ppdet_topk_rows`), 0 elsewhere.
        """
        pred_scores, pred_bboxes, gt_bboxes = float32_inputs(pred_scores, pred_bboxes, gt_bboxes)
        batch, num_max = gt_bboxes.shape[:2]
        width = state.columns.shape[1]
        cand_pred = gather_columns(pred_bboxes, state.flat).transpose([0, 2, 1])          # [B, 4, V]
        pred = paddle.split(cand_pred, 4, axis=1)                                          # 4 x [B, 1, V]
        terms, background = self._class_terms(gather_columns(pred_scores, state.flat))
        labels = gt_labels.astype("int64")                                                 # [B, n, 1]
        real_column = paddle.to_tensor(state.real[:, None, :].astype(np.float32))          # [B, 1, V]
        real_row = state.host.valid                                                        # [B, n]
        kmax = min(self.candidate_topk + 1, width)
        costs, matches, ties = [], [], []
        for start, stop in row_chunks(num_max, batch * width * 4 * _TEMPS_PER_ENTRY, self.memory_budget_mb):
            whole = start == 0 and stop == num_max
            part = (lambda t: t) if whole else (lambda t: t[:, start:stop])
            cost, iou = self._pair_costs(paddle.split(part(gt_bboxes), 4, axis=-1), part(labels), pred, terms,
                                         background, eps)
            cost = cost + paddle.to_tensor(state.offsets[:, start:stop])                   # ppdet's + 1e8
            k = dynamic_ks(iou * real_column, self.candidate_topk)                         # [B, c]
            values = paddle.topk(cost, kmax, axis=-1, largest=False)[0]
            values = paddle.concat([values, paddle.full(values.shape[:2] + [1], float("inf"))], axis=-1)
            index = (k.astype("int64") - 1).unsqueeze(-1)
            kth = paddle.take_along_axis(values, index, axis=-1)
            row_ok = paddle.to_tensor(real_row[:, start:stop])
            matches.append((cost <= kth) & row_ok.unsqueeze(-1))
            tie = (paddle.take_along_axis(values, index + 1, axis=-1) == kth).squeeze(-1) & row_ok
            ties.append(paddle.where(tie, k, paddle.zeros_like(k)))
            costs.append(cost)
        if len(costs) == 1:
            return costs[0], matches[0], ties[0]
        return paddle.concat(costs, axis=1), paddle.concat(matches, axis=1), paddle.concat(ties, axis=1)

    @staticmethod
    def _ppdet_topk_rows(cost, selected, tie_k, widths):
        """Replace the matches of objects with a tie at their k-th cost by paddle.topk over the object's own
        candidates (ppdet's call, whose tie order depends on the row), one top-k per (image, k).

        Args:
            cost (Tensor[B, n, V]), selected (Tensor[B, n, V] bool), tie_k (np.ndarray[B, n]: k, 0 for no tie),
            widths (np.ndarray[B]): candidates per image.
        """
        batch, num_max, width = cost.shape
        rows, blocks = [], []
        for b, k in sorted({(int(b), int(tie_k[b, s])) for b, s in zip(*np.nonzero(tie_k))}):
            slots = np.nonzero(tie_k[b] == k)[0]
            picked = paddle.topk(cost[b][paddle.to_tensor(slots)][:, :int(widths[b])], k, axis=-1,
                                 largest=False)[1]
            block = paddle.put_along_axis(paddle.zeros([len(slots), width], "int32"), picked,
                                          paddle.ones([1], "int32"), axis=1, broadcast=True)
            rows.append(b * num_max + slots)
            blocks.append(block)
        flat = selected.reshape([batch * num_max, width]).astype("int32")
        flat = paddle.scatter(flat, paddle.to_tensor(np.concatenate(rows)), paddle.concat(blocks))
        return flat.reshape([batch, num_max, width]).astype("bool")

    def _device_outputs(self, state, assigned, positive):
        """assign_batch's outputs from each anchor's slot and positive flag (Tensors [B, L])."""
        host = state.host
        batch, num_anchors = positive.shape
        if host.valid.shape[1] == 0:
            labels = paddle.full([batch, num_anchors], self.num_classes, "int64")
            targets = paddle.zeros([batch, num_anchors, 4], "float32")
        else:
            labels = paddle.take_along_axis(paddle.to_tensor(host.labels), assigned, axis=1)
            labels = paddle.where(positive, labels, paddle.full_like(labels, self.num_classes))
            targets = paddle.take_along_axis(paddle.to_tensor(host.boxes), assigned.unsqueeze(-1), axis=1,
                                             broadcast=True)
            targets = paddle.where(positive.unsqueeze(-1), targets, paddle.zeros_like(targets))
        count = positive.astype("int64").sum(1)
        pos_num = paddle.where(paddle.to_tensor(host.valid.any(1)), count.clip(min=1), paddle.zeros_like(count))
        return pos_num, labels, paddle.ones([batch, num_anchors], "float32"), targets

    def _host_outputs(self, state, winner, positive, num_anchors):
        """ppdet's per-image outputs (NumPy) from each candidate's slot and positive flag (np.ndarray[1, V])."""
        host = state.host
        label = np.full(num_anchors, self.num_classes, np.int64)
        bbox_target = np.zeros((num_anchors, 4), np.float32)
        if state.columns is not None:
            keep = positive[0] & state.real[0]
            anchors, slots = state.columns[0, keep], winner[0, keep]
            label[anchors] = host.labels[0, slots]
            bbox_target[anchors] = host.boxes[0, slots]
            pos_num = max(len(anchors), 1)
        else:
            pos_num = 1 if host.num_objects else 0
        return pos_num, label, np.ones(num_anchors, np.float32), bbox_target
