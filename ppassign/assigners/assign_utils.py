"""Steps shared by ATSSAssigner and TaskAlignedAssigner, batched over every image of a call.

Both assigners work on the real objects of the whole batch at once: M objects flattened image after image,
each known by its image ``b`` and GT slot ``j``. The helpers here

- bring what the host needs in one device-to-host copy (`HostInputs.fetch`),
- resolve anchors claimed by several objects (`resolve_claims`, as PaddleDetection: highest IoU over all GT
  slots of the image, computed for the slots whose boxes overlap the anchor's only),
- reduce per segment with the same operators whatever the sizes (`segment_reduce`),
- build PaddleDetection's dense outputs with static-shape scatters (`build_targets`, `mask_positive_dense`),

so that the number of Paddle operators a call dispatches depends neither on the batch size nor on the data
(a step with no work still runs, on empty tensors; `row_chunks` gives it one empty piece). Index work is
host-side NumPy (uploads cost no operator); every float that decides an assignment is computed by Paddle ops
in the same order as PaddleDetection's, so outputs stay identical.
"""
from typing import NamedTuple

import numpy as np
import paddle

from ..ops import geometry as G
from ..ops.validation import fetch_gt

def row_chunks(num_rows, row_bytes, budget_mb):
    """[(start, stop)] splitting `num_rows` rows of `row_bytes` temporaries each into pieces within the budget.

    Always at least one piece (empty when there are no rows), so that a step dispatches the same operators
    whether or not the data gives it work.
    """
    step = max(1, int(budget_mb * 2**20) // max(int(row_bytes), 1))
    return [(i, min(i + step, num_rows)) for i in range(0, max(num_rows, 1), step)]


class HostInputs:
    """The ground truth (and anchors) on the host, brought by one device-to-host copy, and checked.

    Attributes:
        valid (np.ndarray[B, n] bool), boxes (np.ndarray[B, n, 4] float32), labels (np.ndarray[B, n] int64),
        extra (list of np.ndarray): the `extra` tensors, flattened; image (np.ndarray[M]), slot (np.ndarray[M]):
        image and GT slot of each real object, image after image; obj_boxes (np.ndarray[M, 4]), obj_labels [M].
    """

    @classmethod
    def fetch(cls, gt_labels, gt_bboxes, pad_gt_mask, num_classes, extra=(), finite=()):
        """One copy of GT boxes, mask, labels, `extra` tensors and the finiteness of each (name, tensor) in `finite`.

        Raises ValueError naming the argument for NaN/inf values, x2 < x1, labels outside [0, num_classes).
        """
        self = cls()
        self.valid, self.boxes, self.labels, self.extra = fetch_gt(gt_labels, gt_bboxes, pad_gt_mask, num_classes,
                                                                   extra, finite)
        self.image, self.slot = np.nonzero(self.valid)
        self.obj_boxes = self.boxes[self.image, self.slot]
        self.obj_labels = self.labels[self.image, self.slot]
        return self

    @property
    def num_objects(self):
        return len(self.image)


def std_unbiased(x):
    """Unbiased standard deviation over the last axis, keepdim: Tensor[..., K] -> Tensor[..., 1].

    The operations of ``paddle.std`` (mean, squared deviations, sum, divide by K - 1, sqrt), so the values are
    bit-identical, without its host round-trip (``paddle.std`` checks ``any(K - 1 <= 0)`` on the host).
    """
    deviation = paddle.pow(x - x.mean(axis=-1, keepdim=True), 2)
    total = paddle.sum(deviation, axis=-1, keepdim=True, dtype=x.dtype)
    return paddle.sqrt(total / paddle.full([], max(x.shape[-1] - 1, 0), x.dtype))


def segment_reduce(values, segment, num_segments, reduce, init=0):
    """Per segment s, the `reduce` ("amax", "amin", "add") of init and the values whose segment is s.

    Args:
        values (Tensor[E]), segment (Tensor[E] int64) in [0, num_segments), num_segments (int), init: start value.
    Returns:
        Tensor[num_segments] of values.dtype.

    ``paddle.put_along_axis`` broadcasts its index with one or two ``expand`` operators depending on whether
    the index is longer than the target, and slicing a whole tensor dispatches nothing; reducing into a buffer
    longer than both the index and the result, then slicing the result off, dispatches the same operators
    whatever the sizes.
    """
    buffer = paddle.full([max(num_segments, values.shape[0]) + 1], init, values.dtype)
    return paddle.put_along_axis(buffer, segment, values, axis=0, reduce=reduce)[:num_segments]


def gather_rows(x, index):
    """x[index] along axis 0 for a NumPy index (uploaded, no operator): Tensor[len(index), ...]."""
    return paddle.gather(x, paddle.to_tensor(np.asarray(index, np.int64)))


# Float temporaries per candidate (anchor, GT slot) pair while `resolve_claims` computes their IoUs.
_CLAIM_PAIR_BYTES = 4 * 24


class Claims(NamedTuple):
    """One GT slot per positive anchor (`resolve_claims`).

    flat (np.ndarray[F] int64): positive anchors b * L + a, sorted; slot (Tensor[F] int64): their GT slot;
    claimer (np.ndarray[F]): for each, the first input pair claiming it; multi (np.ndarray[Q]): positions in
    `flat` of the anchors claimed several times; multi_iou (Tensor[Q]): IoU of each of those with its slot.
    """
    flat: np.ndarray
    slot: paddle.Tensor
    claimer: np.ndarray
    multi: np.ndarray
    multi_iou: paddle.Tensor


def resolve_claims(pair_image, pair_slot, pair_anchor, num_anchors, host_boxes_of, boxes_of, host_gt_boxes,
                   gt_bboxes, eps, budget_mb):
    """One GT slot per anchor from the positive (object, anchor) pairs of the whole batch.

    An anchor claimed by one object goes to it. An anchor claimed by several goes, as in PaddleDetection, to the
    GT slot of its image whose box overlaps it most: the argmax of IoU over *all* n slots (padding included, the
    first on ties, slot 0 when nothing overlaps), which may be an object that did not claim it. Only slots whose
    box overlaps the anchor's (`geometry.overlapping_pairs`, on the host) and slot 0 can be that argmax, so IoUs
    are computed for those pairs alone: the cost follows the overlaps, not anchors x n.

    Args:
        pair_image, pair_slot, pair_anchor (np.ndarray[P] int64): positive pairs.
        num_anchors (int): L.
        host_boxes_of (callable): np.ndarray[Q] flat anchor index (b * L + a) -> np.ndarray[Q, 4] float32 host
            copy of the boxes IoU is measured with (anchors for ATSS, predictions for TAL); boxes_of: the same
            as Tensor[Q, 4].
        host_gt_boxes (np.ndarray[B, n, 4]), gt_bboxes (Tensor[B, n, 4]): every slot's box.
        eps (float): IoU epsilon; budget_mb: memory budget for the pairs' temporaries.
    Returns:
        Claims.
    """
    batch, num_max = gt_bboxes.shape[:2]
    flat, first, counts = np.unique(pair_image * num_anchors + pair_anchor, return_index=True, return_counts=True)
    multi = np.nonzero(counts > 1)[0]
    contested = flat[multi]                                                               # [Q] b * L + a
    image = contested // num_anchors
    query, gt = G.overlapping_pairs(host_boxes_of(contested), image, host_gt_boxes.reshape(-1, 4),
                                    np.repeat(np.arange(batch), num_max))
    query = np.concatenate([np.arange(len(multi)), query])                              # slot 0 of every image
    gt = np.concatenate([image * num_max, gt])                                            # b * n + j
    gt_boxes = gt_bboxes.reshape([-1, 4])
    ious = []
    for start, stop in row_chunks(len(query), _CLAIM_PAIR_BYTES, budget_mb):
        ious.append(G.aligned_iou(gather_rows(gt_boxes, gt[start:stop]),
                                  boxes_of(contested[query[start:stop]]), eps=eps))
    ious = paddle.concat(ious) if len(ious) > 1 else ious[0]                              # [E]
    query_t = paddle.to_tensor(query)
    best = segment_reduce(ious, query_t, len(multi), "amax")                              # IoUs are >= 0
    at_best = ious == paddle.gather(best, query_t)
    candidate = paddle.where(at_best, paddle.to_tensor(gt % num_max), paddle.to_tensor(np.int64(num_max)))
    winner = segment_reduce(candidate, query_t, len(multi), "amin", init=num_max)         # first slot of best IoU
    slot = paddle.to_tensor(np.where(counts == 1, pair_slot[first], 0).astype(np.int64))
    slot = paddle.scatter(slot, paddle.to_tensor(multi), winner)
    return Claims(flat, slot, first, multi, best)


def dense_assignment(flat, slot, batch, num_anchors):
    """Dense (assigned GT slot, positive) from positive anchors.

    Args:
        flat (np.ndarray[F]): positive anchors b * L + a; slot (Tensor[F] int64): their GT slots.
    Returns:
        assigned (Tensor[B, L] int64): slot of each anchor, 0 for negatives (as ppdet's argmax gives);
        positive (Tensor[B, L] bool).
    """
    positive = np.zeros(batch * num_anchors, bool)
    positive[flat] = True
    assigned = paddle.scatter(paddle.zeros([batch * num_anchors], "int64"), paddle.to_tensor(flat), slot)
    return assigned.reshape([batch, num_anchors]), paddle.to_tensor(positive.reshape(batch, num_anchors))


def assigned_boxes(gt_bboxes, assigned_gt):
    """The box of each anchor's GT slot: Tensor[B, n, 4], Tensor[B, L] int64 -> Tensor[B, L, 4]."""
    return paddle.take_along_axis(gt_bboxes, assigned_gt.unsqueeze(-1), axis=1, broadcast=True)


def build_targets(assigned_gt, positive, gt_labels, gt_bboxes, bg_index, num_classes, weights=None, bboxes=None):
    """Dense targets from each anchor's GT, with static shapes (no data-dependent operator).

    Args:
        assigned_gt (Tensor[B, L], int64): GT slot per anchor (any valid slot where not positive).
        positive (Tensor[B, L], bool).
        gt_labels (Tensor[B, n, 1], int), gt_bboxes (Tensor[B, n, 4]).
        bg_index (int): label of negatives; its column is left out of the scores.
        num_classes (int): C.
        weights (Tensor[B, L] | None): score of each positive anchor (1 when None).
        bboxes (Tensor[B, L, 4] | None): `assigned_boxes(gt_bboxes, assigned_gt)` when already computed.
    Returns:
        labels (Tensor[B, L], gt_labels.dtype), bboxes (Tensor[B, L, 4]),
        scores (Tensor[B, L, C]): `weights` at the label's column (ppdet's one-hot over C + 1 labels without the
        bg_index column, times the weight), 0 elsewhere and for negatives.
    """
    batch, num_anchors = positive.shape
    labels = paddle.take_along_axis(gt_labels.squeeze(-1), assigned_gt, axis=1)
    labels = paddle.where(positive, labels, paddle.full_like(labels, bg_index))
    if bboxes is None:
        bboxes = assigned_boxes(gt_bboxes, assigned_gt)
    # ppdet's one-hot over C + 1 labels without the bg column: one write per anchor into a zero [B * L * C]
    column = labels.astype("int64")
    column = column - (column > bg_index).astype("int64")
    value = (positive & (labels != bg_index)).astype(gt_bboxes.dtype)
    if weights is not None:
        value = value * weights
    base = paddle.to_tensor(np.arange(batch * num_anchors, dtype=np.int64).reshape(batch, num_anchors) * num_classes)
    index = (base + column.clip(0, num_classes - 1)).flatten()
    scores = paddle.zeros([batch * num_anchors * num_classes], gt_bboxes.dtype)
    scores.scatter_(index, value.flatten())                     # in place: the [B, L, C] output exists once
    scores = scores.reshape([batch, num_anchors, num_classes])
    return labels, bboxes, scores


def mask_positive_dense(assigned_gt, positive, num_max_boxes, dtype):
    """ppdet 2.6's fourth output: 1 where anchor l is a positive of GT j.

    Args:
        assigned_gt (Tensor[B, L], int64), positive (Tensor[B, L], bool), num_max_boxes (int): n.
    Returns:
        Tensor[B, n, L] of `dtype`.
    """
    batch, num_anchors = positive.shape
    if num_max_boxes == 0:
        return paddle.zeros([batch, 0, num_anchors], dtype)
    # one write per anchor, at (b, its slot, a), of 1 for positives and 0 for negatives
    image, anchor = np.divmod(np.arange(batch * num_anchors, dtype=np.int64).reshape(batch, num_anchors), num_anchors)
    index = assigned_gt * num_anchors + paddle.to_tensor(image * num_max_boxes * num_anchors + anchor)
    mask = paddle.zeros([batch * num_max_boxes * num_anchors], dtype)
    mask.scatter_(index.flatten(), positive.astype(dtype).flatten())     # in place: [B, n, L] exists once
    return mask.reshape([batch, num_max_boxes, num_anchors])


def background_outputs(batch, num_anchors, num_classes, gt_labels, gt_bboxes, bg_index):
    """Outputs for a batch without any real object: every anchor negative (as ppdet's, slot 0's box)."""
    assigned = paddle.zeros([batch, num_anchors], "int64")
    positive = paddle.zeros([batch, num_anchors], "bool")
    if gt_bboxes.shape[1] == 0:
        labels = paddle.full([batch, num_anchors], bg_index, gt_labels.dtype)
        return (labels, paddle.zeros([batch, num_anchors, 4], gt_bboxes.dtype),
                paddle.zeros([batch, num_anchors, num_classes], gt_bboxes.dtype), assigned, positive)
    return build_targets(assigned, positive, gt_labels, gt_bboxes, bg_index, num_classes) + (assigned, positive)


def pack_outputs(labels, bboxes, scores, assigned_gt, positive, num_max_boxes, return_mask_positive):
    """Return 4 values (ppdet 2.6 heads) or 3 (ppdet 2.7+), whatever the input."""
    if not return_mask_positive:
        return labels, bboxes, scores
    return labels, bboxes, scores, mask_positive_dense(assigned_gt, positive, num_max_boxes, bboxes.dtype)

