"""Dynamic-k matching, shared by SimOTA (YOLOX) and RTMDet's dynamic soft labels, batched over the images of a call.

Both rules compare each object with the *candidate* anchors of its image only (SimOTA: anchors in some object's
box or centre region; RTMDet: anchors inside some object's box). Here the candidates of image b are the first
V_b columns of a [B, V] layout (V the largest candidate count of the batch, the rest padding) and every GT slot
is a row, so a call holds costs and IoUs [B, n, V]: never [B, n, L], never a class axis. Then, per object:

1. dynamic k = max(1, int(sum of its `topk` highest IoUs over the candidates of its image));
2. its k candidates of lowest cost are matched to it;
3. a candidate matched to several objects goes to the object of its image with the lowest cost for it (the
   first slot on ties, as ``np.argmin``), which may be an object that did not match it.

Every step is a fixed sequence of Paddle operators over the whole batch; the index work (which anchors are
candidates) is host-side NumPy.
"""
import numpy as np
import paddle

def candidate_columns(candidates):
    """The [B, V] layout of each image's candidate anchors.

    Args:
        candidates (np.ndarray[B, L] bool).
    Returns:
        columns (np.ndarray[B, V] int64): anchor of each column, increasing, 0 in padding;
        real (np.ndarray[B, V] bool): False in padding. V = max(1, largest candidate count).
    """
    batch = candidates.shape[0]
    widths = candidates.sum(1)
    width = max(int(widths.max()) if batch else 0, 1)
    real = np.arange(width)[None] < widths[:, None]
    columns = np.zeros((batch, width), np.int64)
    columns[real] = np.nonzero(candidates)[1]          # row-major: each image's anchors in increasing order
    return columns, real


def flat_columns(columns, num_anchors):
    """Index of each column's anchor in a [B * L] flattening: np.ndarray[B, V] int64."""
    return columns + np.arange(columns.shape[0], dtype=np.int64)[:, None] * num_anchors


def gather_columns(x, flat):
    """x [B, L, ...] at the candidate columns: Tensor[B, V, ...]."""
    batch, num_anchors = x.shape[:2]
    rows = paddle.gather(x.reshape([batch * num_anchors] + list(x.shape[2:])),
                         paddle.to_tensor(flat.reshape(-1)))
    return rows.reshape(list(flat.shape) + list(x.shape[2:]))


def dynamic_ks(ious, topk):
    """Step 1: max(1, int(sum of the `topk` highest IoUs)) per row.

    Args:
        ious (Tensor[B, c, V]): 0 in padding columns (which then add nothing), topk (int).
    Returns:
        Tensor[B, c] int32.
    """
    values = paddle.topk(ious, min(topk, ious.shape[-1]), axis=-1)[0]
    return values.sum(-1).astype("int32").clip(min=1)


def lowest_k(cost, ks, kmax):
    """Step 2 with ties to the lowest column: the ks[b, s] lowest-cost columns of every row.

    Args:
        cost (Tensor[B, c, V]), ks (Tensor[B, c] int32, 1 <= ks <= min(kmax, real columns)), kmax (int).
    Returns:
        Tensor[B, c, V] bool.
    """
    values = paddle.topk(cost, min(kmax, cost.shape[-1]), axis=-1, largest=False)[0]
    index = (ks.astype("int64") - 1).clip(0, values.shape[-1] - 1).unsqueeze(-1)
    kth = paddle.take_along_axis(values, index, axis=-1)                       # [B, c, 1]
    less = cost < kth
    equal = cost == kth
    room = ks.astype("int64").unsqueeze(-1) - less.astype("int64").sum(-1, keepdim=True)
    return less | (equal & (paddle.cumsum(equal.astype("int64"), axis=-1) <= room))


def resolve_to_lowest_cost(selected, cost):
    """Step 3: one object per candidate.

    Args:
        selected (Tensor[B, n, V] bool), cost (Tensor[B, n, V]): +inf in padding rows.
    Returns:
        winner (Tensor[B, V] int64): GT slot of each candidate; positive (Tensor[B, V] bool).
    """
    count = selected.astype("int64").sum(1)
    first = paddle.argmax(selected.astype("int32"), axis=1)
    lowest = paddle.argmin(cost, axis=1)
    return paddle.where(count > 1, lowest, first), count > 0


def scatter_to_anchors(winner, positive, flat, real, num_anchors):
    """[B, V] candidate results -> ppdet's dense (assigned slot, positive) over all anchors.

    Args:
        winner (Tensor[B, V] int64), positive (Tensor[B, V] bool), flat (np.ndarray[B, V]): `flat_columns`,
        real (np.ndarray[B, V] bool), num_anchors (int): L.
    Returns:
        assigned (Tensor[B, L] int64): slot, 0 for negatives (as ppdet's argmax gives); positive (Tensor[B, L] bool).
    """
    batch = flat.shape[0]
    where = paddle.to_tensor(np.nonzero(real.reshape(-1))[0])
    target = paddle.to_tensor(flat[real])
    is_pos = paddle.gather(positive.reshape([-1]), where)
    slot = paddle.where(is_pos, paddle.gather(winner.reshape([-1]), where), paddle.zeros_like(target))
    assigned = paddle.scatter(paddle.zeros([batch * num_anchors], "int64"), target, slot)
    flags = paddle.scatter(paddle.zeros([batch * num_anchors], "int32"), target, is_pos.astype("int32"))
    return assigned.reshape([batch, num_anchors]), flags.reshape([batch, num_anchors]).astype("bool")
