"""TOOD's task-aligned assigner (Feng et al., ICCV 2021), a drop-in for ppdet's TaskAlignedAssigner.

Outputs equal PaddleDetection's TaskAlignedAssigner (tests/assigners/test_task_aligned_assigner.py checks
parity). One call handles the real objects of every image together, so the operators it dispatches depend
neither on the batch size nor on ties, and it needs 2 device-to-host copies (3 when a tie needs a full row):

1. ground truth, anchor points and predicted boxes (validation and the host-side index work);
2. each object's top-k metrics and anchors (to resolve anchors claimed by several objects);
3. only when a top-k tie makes the choice depend on the full row: those rows' top-k.

On a regular grid the anchors inside a box form a rectangle of each level, so the alignment metric is
computed for (object, inside anchor) pairs only: no [B, n, L] metric, no [B, n, k, L] one-hot. An anchor
claimed by several objects is compared with the GT slots whose boxes overlap its prediction only.
"""
import functools

import numpy as np
import paddle
import paddle.nn as nn

from ..ops import geometry as G
from ..ops.precision import float32_inputs
from ..ops.validation import NonFiniteError, check_task_aligned_inputs
from . import grid
from .assign_utils import HostInputs, background_outputs, build_targets, dense_assignment, gather_rows, \
    pack_outputs, resolve_claims, row_chunks, segment_reduce

# Bytes of float temporaries a call may hold for [rows, L] metrics before rows are chunked.
DEFAULT_MEMORY_BUDGET_MB = 256
# Host booleans per chunk when anchor points off a grid are tested against every object.
_HOST_INSIDE_BUDGET_MB = 64
# Paddle's CPU top-k (phi/kernels/cpu/top_k_kernel.cc) runs std::partial_sort when k * 64 < width.
_PARTIAL_SORT_FACTOR = 64


class TaskAlignedAssigner(nn.Layer):
    """Task-aligned assignment, as PaddleDetection computes it.

    The method (its step numbers are used in the code):

    1. Candidates: the anchor points strictly inside each GT box.
    2. Metric: t = s^alpha * u^beta at each candidate, s the predicted score of the GT's class and u the IoU of
       the predicted box with the GT.
    3. Top-k: each GT's `topk` candidates of highest t are its positives.
    4. Conflicts: an anchor that is a positive of several GTs goes to the GT slot its predicted box overlaps
       most (over all n slots of the image).
    5. Targets: the GT's label and box; the score of the label's class is t normalised per GT,
       t / (max t + eps) * max u over the GT's positives.

    Args:
        topk (int): positives per GT (clipped to L).
        alpha (float), beta (float): exponents of the metric.
        eps (float): added to the per-GT max metric before normalising.
        is_close_gt (bool): ppdet's distance-based candidate variant; not supported (raises).
        memory_budget_mb (int): above it, temporaries are computed in row chunks (same result).
        return_mask_positive (bool|None): return ppdet 2.6's 4th output (mask_positive); None: the class
            default, which ``import ppassign`` sets to what the installed ppdet's heads unpack.
    Note:
        `gt_scores` is accepted for signature compatibility and, as in PaddleDetection, not used.
        Float16 / bfloat16 inputs (mixed-precision training) are computed in float32; the outputs are float32.
    """
    return_mask_positive = False  # PaddleDetection 2.7+; set by ppassign.plugin for the installed ppdet

    def __init__(self, topk=13, alpha=1.0, beta=6.0, eps=1e-9, is_close_gt=False,
                 memory_budget_mb=DEFAULT_MEMORY_BUDGET_MB, return_mask_positive=None):
        super().__init__()
        if is_close_gt:
            raise ValueError("is_close_gt=True is not supported by ppassign's TaskAlignedAssigner")
        if int(topk) < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        self.topk = int(topk)
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.memory_budget_mb = memory_budget_mb
        if return_mask_positive is not None:
            self.return_mask_positive = bool(return_mask_positive)

    @paddle.no_grad()
    def forward(self, pred_scores, pred_bboxes, anchor_points, num_anchors_list, gt_labels, gt_bboxes,
                pad_gt_mask, bg_index, gt_scores=None):
        """Assign anchor points to GTs.

        Args:
            pred_scores (Tensor[B, L, C]): class probabilities.
            pred_bboxes (Tensor[B, L, 4]): xyxy predicted boxes, in the GTs' units.
            anchor_points (Tensor[L, 2]): (x, y) anchor centres.
            num_anchors_list (list[int]): anchors per level, summing to L.
            gt_labels (Tensor[B, n, 1], int32|int64), gt_bboxes (Tensor[B, n, 4]),
            pad_gt_mask (Tensor[B, n, 1]): 1 for real GTs, 0 for padding.
            bg_index (int): label given to negatives.
            gt_scores: unused (see class note).
        Returns:
            assigned_labels (Tensor[B, L]), assigned_bboxes (Tensor[B, L, 4]), assigned_scores (Tensor[B, L, C])
            and, for ppdet < 2.7, mask_positive (Tensor[B, n, L]).
        """
        pred_scores, pred_bboxes, anchor_points, gt_bboxes = float32_inputs(pred_scores, pred_bboxes, anchor_points,
                                                                            gt_bboxes)
        counts, bg_index = check_task_aligned_inputs(pred_scores, pred_bboxes, anchor_points, num_anchors_list,
                                                     gt_labels, gt_bboxes, pad_gt_mask, bg_index)
        batch, num_anchors, num_classes = pred_scores.shape
        num_max = gt_bboxes.shape[1]
        host, host_points, host_pred = _fetch_host(pred_scores, pred_bboxes, anchor_points, gt_labels, gt_bboxes,
                                                   pad_gt_mask)                           # host copy 1
        pairs = InsidePairs.find(host.obj_boxes, host_points, counts)                          # 1
        if host.num_objects == 0 or pairs.size == 0:        # no anchor inside any object: all negatives
            return pack_outputs(*background_outputs(batch, num_anchors, num_classes, gt_labels, gt_bboxes,
                                                    bg_index), num_max, self.return_mask_positive)
        flat_pred, flat_scores = pred_bboxes.reshape([-1, 4]), pred_scores.reshape([-1])
        ious, metric = self._pair_metric(flat_scores, flat_pred, gt_bboxes, pairs, host, num_anchors,
                                         num_classes)                                     # 2
        chosen = self._top_k(pairs, metric, num_anchors)                                  # 3; host copies 2 (+3)
        owner = pairs.owner[chosen]
        claims = resolve_claims(host.image[owner], host.slot[owner], pairs.anchor[chosen], num_anchors,
                                lambda f: host_pred[f], lambda f: gather_rows(flat_pred, f), host.boxes, gt_bboxes,
                                G.IOU_EPS_PRED, self.memory_budget_mb)                    # 4
        assigned, positive = dense_assignment(claims.flat, claims.slot, batch, num_anchors)
        weights = self._normalised_metric(claims, chosen, ious, metric, flat_scores, gt_labels, batch,
                                          num_anchors, num_classes, num_max)              # 5
        labels, bboxes, scores = build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index, num_classes,
                                               weights)
        return pack_outputs(labels, bboxes, scores, assigned, positive, num_max, self.return_mask_positive)

    # --- steps ------------------------------------------------------------------------------------------------

    def _metric(self, scores, ious):
        """t = s^alpha * u^beta, elementwise (ppdet's operation order)."""
        return scores.pow(self.alpha) * ious.pow(self.beta)

    def _pair_metric(self, flat_scores, flat_pred, gt_bboxes, pairs, host, num_anchors, num_classes):
        """2. IoU of the predicted box with the object, and the metric, for every (object, inside anchor) pair.

        Returns:
            ious, metric (Tensor[P]).
        """
        owner_gt = (host.image * gt_bboxes.shape[1] + host.slot)[pairs.owner]                # in B * n
        flat_anchor = host.image[pairs.owner] * num_anchors + pairs.anchor
        ious = G.aligned_iou(gather_rows(gt_bboxes.reshape([-1, 4]), owner_gt), gather_rows(flat_pred, flat_anchor),
                             eps=G.IOU_EPS_PRED)
        scores = gather_rows(flat_scores, flat_anchor * num_classes + host.obj_labels[pairs.owner])
        return ious, self._metric(scores, ious)

    def _top_k(self, pairs, metric, num_anchors):
        """3. The positive pairs: each object's k pairs of highest metric, as PaddleDetection's top-k over its row.

        PaddleDetection ranks a row of L values, metric inside the object and 0 outside. Ranking the object's
        pairs gives the same chosen set whenever that set does not depend on how the top-k kernel breaks ties,
        i.e. unless the k-th and (k+1)-th metric tie, or fewer than k inside pairs have a metric > 0 while some
        inside pair has metric <= 0 (then the zeros the kernel picks decide which inside anchors are chosen).
        Those objects' full rows are rebuilt from the pair metrics and ranked by the same kernel; the CPU
        shortcut `cpu_topk_keeps_zeros_of_the_row_start` settles the second case without the row where it holds.

        Returns (host copy 2, and copy 3 when some row is ranked in full):
            np.ndarray[C] int64: positions of the chosen pairs in `pairs`.
        """
        k = min(self.topk, num_anchors)
        host_top, host_after, host_top_anchor = self._ranked_pairs(pairs, metric, k)     # host copy 2
        keep = np.arange(k)[None] < pairs.counts[:, None]
        tied = np.zeros(len(pairs.first), bool)
        if k < num_anchors:                          # else every anchor of the row is chosen: no tie can matter
            keep &= host_top > 0
            tied = self._ties_need_the_row(pairs, keep, host_top, host_after, k, num_anchors)
        keep[tied] = False
        obj, col = np.nonzero(keep)
        chosen = pairs.position(obj, host_top_anchor[obj, col])
        rows = np.nonzero(tied)[0]
        row_top = self._full_row_top_k(pairs, metric, rows, num_anchors, k)
        if len(rows):                                # host copy 3
            found = pairs.position(np.repeat(rows, k), row_top.numpy().ravel())
            chosen = np.concatenate([chosen, found[found >= 0]])
        return chosen

    @staticmethod
    def _ranked_pairs(pairs, metric, k):
        """Each object's k + 1 best pairs (metric descending, then anchor index), brought to the host.

        Returns (host copy 2):
            top (np.ndarray[M, k] float32): the k best metrics (past an object's pairs: any value);
            after (np.ndarray[M]): the (k+1)-th metric; top_anchor (np.ndarray[M, k] int64): the k best anchors.
        """
        num_objects = len(pairs.first)
        position = np.minimum(pairs.first[:, None] + np.arange(k + 1), pairs.size - 1)   # [M, k + 1]
        # pairs by (object, metric descending, anchor): two stable sorts
        by_metric = paddle.argsort(metric, descending=True, stable=True)
        by_owner = paddle.argsort(paddle.gather(paddle.to_tensor(pairs.owner), by_metric), stable=True)
        picked = paddle.gather(paddle.gather(by_metric, by_owner), paddle.to_tensor(position.ravel()))
        anchor_values = paddle.to_tensor(pairs.anchor.astype(np.float32))               # exact below 2^24
        host_view = paddle.concat([paddle.gather(metric, picked), paddle.gather(anchor_values, picked)]).numpy()
        values, anchors = host_view.reshape(2, num_objects, k + 1)
        return values[:, :k], values[:, k], anchors[:, :k].astype(np.int64)

    @staticmethod
    def _ties_need_the_row(pairs, keep, top, after, k, num_anchors):
        """Objects whose chosen set depends on the top-k kernel's tie order (see `_top_k`): np.ndarray[M] bool."""
        tie = (pairs.counts > k) & (after > 0) & (top[:, k - 1] == after)
        num_pos = keep.sum(1)
        zeros_matter = np.ones(len(pairs.first), bool)
        if cpu_topk_keeps_zeros_of_the_row_start(k, num_anchors):
            # the zeros a full-row top-k picks are then among anchors 0..k-1: they matter only if inside
            zeros_matter = np.bincount(pairs.owner[pairs.anchor < k], minlength=len(pairs.first)) > 0
        return tie | ((num_pos < k) & (pairs.counts > num_pos) & zeros_matter)

    def _full_row_top_k(self, pairs, metric, rows, num_anchors, k):
        """PaddleDetection's top-k over full rows (metric inside the object, 0 elsewhere) for objects `rows`.

        Runs on every call (on no rows when no tie needs it), so the operators a call dispatches do not
        depend on ties.

        Returns:
            Tensor[R, k] int64: the chosen anchors of each row.
        """
        out = []
        for i, j in row_chunks(len(rows), num_anchors * 4 * 3, self.memory_budget_mb):
            part = rows[i:j]
            sel, row = pairs.ranges(part)
            full = paddle.scatter(paddle.zeros([len(part) * num_anchors], metric.dtype),
                                  paddle.to_tensor(row * num_anchors + pairs.anchor[sel]), gather_rows(metric, sel))
            out.append(paddle.topk(full.reshape([len(part), num_anchors]), k, axis=-1)[1])
        return paddle.concat(out) if len(out) > 1 else out[0]

    def _normalised_metric(self, claims, chosen, ious, metric, flat_scores, gt_labels, batch, num_anchors,
                           num_classes, num_max):
        """5. Per anchor, t / (max t of its GT + eps) * (max IoU of its GT), over the GT's positives; 0 elsewhere.

        A positive's t and IoU are those of its claiming pair or, for an anchor claimed several times, of the
        slot it went to (its IoU from `resolve_claims`, t recomputed with that slot's class).

        Args:
            claims (Claims), chosen (np.ndarray[C]): the pairs `claims` was built from (positions in the pairs),
            ious, metric (Tensor[P]): of every pair; flat_scores (Tensor[B * L * C]), gt_labels (Tensor[B, n, 1]).
        Returns:
            Tensor[B, L].
        """
        flat = claims.flat
        image = flat // num_anchors
        multi = paddle.to_tensor(claims.multi)
        winner = paddle.gather(claims.slot, multi)
        label = paddle.gather(gt_labels.reshape([-1]).astype("int64"),
                              winner + paddle.to_tensor(image[claims.multi] * num_max))
        scores = paddle.gather(flat_scores, label + paddle.to_tensor(flat[claims.multi] * num_classes))
        claimer = chosen[claims.claimer]
        pos_iou = paddle.scatter(gather_rows(ious, claimer), multi, claims.multi_iou)
        pos_metric = paddle.scatter(gather_rows(metric, claimer), multi, self._metric(scores, claims.multi_iou))
        gt = claims.slot + paddle.to_tensor(image * num_max)                                # [F] in B * n
        max_metric = segment_reduce(pos_metric, gt, batch * num_max, "amax")              # metrics are >= 0
        max_iou = segment_reduce(pos_iou, gt, batch * num_max, "amax")
        value = pos_metric / (paddle.gather(max_metric, gt) + self.eps) * paddle.gather(max_iou, gt)
        out = paddle.zeros([batch * num_anchors], metric.dtype)
        return paddle.scatter(out, paddle.to_tensor(flat), value).reshape([batch, num_anchors])


def _fetch_host(pred_scores, pred_bboxes, anchor_points, gt_labels, gt_bboxes, pad_gt_mask):
    """Host copy 1: the ground truth (`HostInputs`), anchor points [L, 2] and predicted boxes [B * L, 4], checked."""
    batch, num_anchors, num_classes = pred_scores.shape
    host = HostInputs.fetch(gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=[anchor_points, pred_bboxes],
                            finite=[("pred_scores", pred_scores)])
    host_points, host_pred = host.extra[0].reshape(num_anchors, 2), host.extra[1].reshape(batch * num_anchors, 4)
    if not np.isfinite(host_points).all():
        raise NonFiniteError("anchor_points")
    if not np.isfinite(host_pred).all():
        raise NonFiniteError("pred_bboxes")
    return host, host_points, host_pred


class InsidePairs:
    """1. The candidates: (object, anchor) pairs whose anchor point lies inside the object, on the host.

    Attributes:
        owner, anchor (np.ndarray[P] int64): sorted by owner, then anchor; first, counts (np.ndarray[M]): where
        each object's pairs start and how many it has; size (int): P.
    """

    @classmethod
    def find(cls, boxes, points, counts):
        """From the grid rectangles when the points form per-level grids, else by testing every point."""
        self = cls()
        axes = grid.level_axes(points, counts)
        if axes is not None:
            self.owner, self.anchor = grid.inside_pairs(boxes, points, axes, counts)
        else:
            owners, anchors = [], []
            for i, j in row_chunks(len(boxes), points.shape[0], _HOST_INSIDE_BUDGET_MB):
                o, a = np.nonzero(G.points_inside_boxes(points[None], boxes[i:j, None]))
                owners.append(o + i)
                anchors.append(a)
            self.owner, self.anchor = np.concatenate(owners), np.concatenate(anchors)
        self.num_anchors = points.shape[0]
        self.counts = np.bincount(self.owner, minlength=len(boxes))
        self.first = np.cumsum(self.counts) - self.counts
        self._keys = self.owner * self.num_anchors + self.anchor
        return self

    @property
    def size(self):
        return len(self.owner)

    def position(self, obj, anchor):
        """Positions of the pairs (obj, anchor) (np.ndarray int64), -1 where the anchor is not inside obj."""
        keys = np.asarray(obj, np.int64) * self.num_anchors + np.asarray(anchor, np.int64)
        pos = np.minimum(np.searchsorted(self._keys, keys), max(self.size - 1, 0))
        return np.where(self._keys[pos] == keys, pos, -1) if self.size else np.full(len(keys), -1)

    def ranges(self, objects):
        """All pairs of `objects`: (positions [S], index of the object in `objects` for each [S])."""
        sizes = self.counts[objects]
        row = np.repeat(np.arange(len(objects)), sizes)
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        return self.first[objects][row] + within, row


@functools.lru_cache(maxsize=None)
def _probe_zero_ties(k, width, place):
    """Whether this device's paddle.topk, on a row of zeros with a few positives, takes its zeros from the
    row's first k entries only."""
    rng = np.random.default_rng(0)
    positives = max(1, k // 2)
    row = np.zeros(width, np.float32)
    where = rng.choice(np.arange(k, width), size=positives, replace=False)
    row[where] = rng.uniform(0.1, 1.0, size=positives).astype(np.float32)
    row[: k // 2] = 0.5                        # positives inside the prefix too
    picked = paddle.topk(paddle.to_tensor(row), k)[1].numpy()
    zeros = picked[row[picked] == 0]
    return bool(np.isin(np.nonzero(row)[0], picked).all() and (zeros < k).all())


def cpu_topk_keeps_zeros_of_the_row_start(k, width):
    """True when paddle.topk(row, k), for this (k, width) on this device, picks its 0-valued entries among the
    row's first k only, whatever the rest of the row holds (non-negative values).

    Why it can be relied on: Paddle's CPU kernel runs std::partial_sort when k * 64 < width, whose heap
    selection keeps k entries and lets a later entry in only when it is strictly greater than the smallest kept
    one, so a 0 after the first k entries never enters. An object none of whose inside anchors is among anchors
    0..k-1 then needs no full row when it has fewer than k positive metrics. Checked once per (k, width, device)
    by a probe; False on other devices (their kernels differ), where such objects are ranked on the full row.
    """
    place = str(paddle.get_device())
    if not place.startswith("cpu") or k * _PARTIAL_SORT_FACTOR >= width:
        return False
    return _probe_zero_ties(int(k), int(width), place)
