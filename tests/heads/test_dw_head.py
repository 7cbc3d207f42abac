"""DWHead (ppassign/heads/dw_head.py): the dual weights, the loss against a NumPy re-computation, box refinement,
empty ground truth, a short training run, ppdet YAML use, and input checks."""
import contextlib
import io
import math
import os

import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401  (registers DWHead)
from ppassign.heads import dw_head as dw
from ppassign.heads import fcos_base
from ppassign.heads.dw_head import DWHead
from export_check import export_and_predict

NUM_CLASSES = 3
STRIDES = [8, 16]
FEAT_SIZES = [(6, 7), (3, 4)]  # input 48 x 56


def _small_head(with_refine=True, num_convs=1, **kwargs):
    paddle.seed(0)
    return DWHead(num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, num_convs=num_convs, norm_groups=2,
                  fpn_stride=STRIDES, with_refine=with_refine, nms=None, **kwargs)


def _feats(batch=2, seed=1):
    rng = np.random.default_rng(seed)
    return [paddle.to_tensor(rng.normal(size=(batch, 8, h, w)).astype("float32")) for h, w in FEAT_SIZES]


def _targets():
    """Image 0: one object (+ a padding slot); image 1: two overlapping objects of one class."""
    return dict(gt_bbox=paddle.to_tensor([[[3.3, 5.1, 40.2, 30.7], [0, 0, 0, 0]],
                                          [[10.4, 9.6, 50.3, 44.2], [4.1, 13.3, 29.7, 47.9]]], "float32"),
                gt_class=paddle.to_tensor([[[1], [0]], [[2], [2]]], "int32"),
                pad_gt_mask=paddle.to_tensor([[[1], [0]], [[1], [1]]], "float32"))


# --- NumPy re-computation (float64, loops as in the official code) -------------------------------------------

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _np_points():
    pts, strides = [], []
    for (h, w), s in zip(FEAT_SIZES, STRIDES):
        ys, xs = np.meshgrid((np.arange(h) + 0.5) * s, (np.arange(w) + 0.5) * s, indexing="ij")
        pts.append(np.stack([xs.ravel(), ys.ravel()], -1))
        strides.append(np.full(h * w, s, float))
    return np.concatenate(pts), np.concatenate(strides)


def _np_bilinear(img, y, x):
    """Bilinear sample of img [H, W] at (y, x) with zeros outside (deformable-conv convention)."""
    height, width = img.shape
    if y <= -1 or x <= -1 or y >= height or x >= width:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    out = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < height and 0 <= xx < width:
                out += wy * wx * img[yy, xx]
    return out


def _np_refine(ltrb, offsets, stride, clamp=False):
    """ltrb [B, 4, H, W] px, offsets [B, 8, H, W] -> refined ltrb (paper Fig. 4, official deform_sampling);
    clamp: boundary points moved into the map first."""
    batch, _, height, width = ltrb.shape
    out = np.zeros_like(ltrb)
    for b in range(batch):
        ys, xs = np.meshgrid((np.arange(height) + 0.5) * stride, (np.arange(width) + 0.5) * stride, indexing="ij")
        l, t, r, bo = ltrb[b]
        coords = [xs - l, ys - t, xs + r, ys + bo]
        for i in range(height):
            for j in range(width):
                o = offsets[b, :, i, j]
                d = ltrb[b, :, i, j] / stride
                pts = [(i + o[0], j + o[1] - d[0]), (i + o[2] - d[1], j + o[3]),
                       (i + o[4], j + o[5] + d[2]), (i + o[6] + d[3], j + o[7])]
                if clamp:
                    pts = [(min(max(py, 0), height - 1), min(max(px, 0), width - 1)) for py, px in pts]
                x1, y1, x2, y2 = [_np_bilinear(coords[c], *pts[c]) for c in range(4)]
                px, py = xs[i, j], ys[i, j]
                out[b, :, i, j] = np.maximum([px - x1, py - y1, x2 - px, y2 - py], 0)
    return out


def _np_iou_giou(p, g, eps):
    area_p = max(p[2] - p[0], 0) * max(p[3] - p[1], 0)
    area_g = max(g[2] - g[0], 0) * max(g[3] - g[1], 0)
    inter = max(min(p[2], g[2]) - max(p[0], g[0]), 0) * max(min(p[3], g[3]) - max(p[1], g[1]), 0)
    union = area_p + area_g - inter + eps
    enclose = max(max(p[2], g[2]) - min(p[0], g[0]), 0) * max(max(p[3], g[3]) - min(p[1], g[1]), 0) + eps
    return inter / union, inter / union - (enclose - union) / enclose


def _np_loss(cls_logits, ltrb, ctr, gt_bbox, gt_class, pad, norm_mu=3.0, pos_weighting=True, neg_weighting=True):
    """DW loss of flattened outputs cls [B, L, C], ltrb [B, L, 4], ctr [B, L, 1] (official formulas).

    Ablations: pos_weighting=False -> w_pos = prior / sum prior; neg_weighting=False -> w_neg = s^2 everywhere
    (the normaliser keeps the real P_neg)."""
    points, pstrides = _np_points()
    scores = _sigmoid(cls_logits) * _sigmoid(ctr)
    k = 1 / (0.5 ** 2 - 1)
    cls_pos = loc = neg = neg_factor = 0.0
    num_gt = int(pad.sum())
    high_iou = 0  # candidates on the decreasing part of P_neg
    for b in range(scores.shape[0]):
        s = scores[b]
        p_neg_map = np.ones_like(s)
        boxes = np.stack([points[:, 0] - ltrb[b, :, 0], points[:, 1] - ltrb[b, :, 1],
                          points[:, 0] + ltrb[b, :, 2], points[:, 1] + ltrb[b, :, 3]], -1)
        for j in range(gt_bbox.shape[1]):
            if not pad[b, j]:
                continue
            g, c = gt_bbox[b, j], int(gt_class[b, j])
            inside = ((points[:, 0] > g[0]) & (points[:, 1] > g[1]) & (points[:, 0] < g[2]) & (points[:, 1] < g[3]))
            centre = np.array([(g[0] + g[2]) / 2, (g[1] + g[3]) / 2])
            dist = (points - centre) / pstrides[:, None]
            prior = np.exp(-(dist ** 2).sum(-1) / (2 * 1.11 ** 2)) * inside
            ious = np.zeros(len(points))
            reg = np.zeros(len(points))
            for i in range(len(points)):
                iou, giou = _np_iou_giou(boxes[i], g, 1e-6)
                ious[i], reg[i] = iou, 1 - giou
            p_cls = s[:, c]
            p_loc = np.exp(-5 * reg)
            t = p_cls * p_loc
            w_pos = np.exp(5 * t) * t * prior / max((np.exp(norm_mu * t) * t * prior).sum(), 1e-12)
            if not pos_weighting:
                w_pos = prior / max(prior.sum(), 1e-12)
            cls_pos += 0.25 * (w_pos * -np.log(p_cls)).sum()
            loc += 0.25 * (w_pos * -np.log(p_loc)).sum()
            if inside.any():
                x = k * ious[inside] ** 2 - k
                t1, t2 = x.min(), min(1.0, x.max())
                y = (x - t1 + 1e-12) / (t2 - t1 + 1e-12)
                y[ious[inside] < 0.5] = 1
                high_iou += int((ious[inside] >= 0.5).sum())
                idx = np.nonzero(inside)[0]
                p_neg_map[idx, c] = np.minimum(p_neg_map[idx, c], y)
        neg += ((p_neg_map if neg_weighting else 1.0) * s ** 2 * -np.log(1 - s)).sum()
        neg_factor += (1 - p_neg_map).sum()
    out = dict(loss_cls_pos=cls_pos / max(num_gt, 1), loss_loc=loc / max(num_gt, 1),
               loss_cls_neg=neg / max(neg_factor, 1))
    out["loss"] = sum(out.values())
    return out, high_iou


def _flat(maps):
    return np.concatenate([m.reshape(m.shape[0], m.shape[1], -1).transpose(0, 2, 1) for m in maps], 1)


# --- weights on hand-made inputs ----------------------------------------------------------------------------

def test_positive_weights_sum_to_one_per_object_with_paper_normaliser():
    t = paddle.to_tensor([[[0.2, 0.5, 0.9, 0.4], [0.3, 0.3, 0.1, 0.0]]])
    prior = paddle.to_tensor([[[1.0, 0.5, 0.8, 0.0], [0.2, 0.9, 1.0, 0.0]]])
    w = dw.positive_weights(t, prior, mu=dw.MU, norm_mu=dw.MU).numpy()
    np.testing.assert_allclose(w.sum(-1), [[1.0, 1.0]], rtol=1e-6)
    assert w[0, 0, 3] == 0 and w[0, 1, 3] == 0  # outside the candidates (prior 0)
    assert w[0, 0, 2] > w[0, 0, 1] > w[0, 0, 0]  # larger consistency, larger weight


def test_positive_weights_official_normaliser_scales_up_by_at_most_e_to_2t():
    t = paddle.to_tensor([[[0.2, 0.5, 0.9]]])
    prior = paddle.to_tensor([[[1.0, 0.5, 0.8]]])
    paper = dw.positive_weights(t, prior, mu=dw.MU, norm_mu=dw.MU).numpy()
    official = dw.positive_weights(t, prior).numpy()
    total = official.sum()
    assert 1.0 < total < math.exp(2 * 0.9)
    ratio = official / paper
    np.testing.assert_allclose(ratio, np.full_like(ratio, ratio[0, 0, 0]), rtol=1e-5)  # same ranking


def test_positive_weights_zero_for_object_without_candidates():
    w = dw.positive_weights(paddle.to_tensor([[[0.5, 0.7]]]), paddle.zeros([1, 1, 2])).numpy()
    assert np.isfinite(w).all() and (w == 0).all()


def test_negative_probability_one_below_half_iou_and_zero_at_full_iou():
    ious = paddle.to_tensor([[[0.0, 0.3, 0.49, 0.6, 0.8, 1.0]]])
    candidates = paddle.to_tensor([[[True] * 6]])
    p = dw.negative_probability(ious, candidates).numpy()[0, 0]
    np.testing.assert_array_equal(p[:3], 1.0)
    assert p[5] < 1e-6
    assert 1.0 >= p[3] > p[4] > p[5]  # decreasing above 0.5


def test_negative_probability_curve_passes_through_half_iou_one_and_full_iou_zero():
    curve = dw.negative_probability_curve(paddle.to_tensor([0.5, 1.0])).numpy()
    np.testing.assert_allclose(curve, [1.0, 0.0], atol=1e-6)


def test_negative_probability_is_one_outside_candidates():
    ious = paddle.to_tensor([[[0.9, 0.95, 0.7]]])
    candidates = paddle.to_tensor([[[False, True, True]]])
    p = dw.negative_probability(ious, candidates).numpy()[0, 0]
    assert p[0] == 1.0 and p[1] < 1e-6 and p[2] > 0.9


def test_negative_weights_lie_in_unit_interval():
    rng = np.random.default_rng(0)
    ious = paddle.to_tensor(rng.uniform(0, 1, (2, 3, 50)).astype("float32"))
    candidates = paddle.to_tensor(rng.uniform(size=(2, 3, 50)) < 0.6)
    labels = paddle.to_tensor(rng.integers(0, 4, (2, 3)))
    p_map = dw.negative_probability_map(dw.negative_probability(ious, candidates), labels, 4)
    scores = paddle.to_tensor(rng.uniform(0, 1, (2, 50, 4)).astype("float32"))
    w = dw.negative_weights(p_map, scores).numpy()
    assert w.shape == (2, 50, 4)
    assert (w >= 0).all() and (w <= 1).all()
    assert (p_map.numpy() < 1).any()


def test_same_positive_weight_different_iou_gives_different_negative_weight():
    # Two candidates of one object with equal consistency t = s * p_loc (so equal w_pos): A is well localised
    # (IoU 0.9) with a low score, B badly localised (IoU 0.6) with a high score (paper Fig. 1); a third
    # candidate has IoU 0.3.
    iou = np.array([0.9, 0.6, 0.3])
    reg_loss = paddle.to_tensor((1 - iou)[None, None].astype("float32"))  # GIoU = IoU for nested boxes
    p_loc = np.exp(-dw.BETA * (1 - iou))
    score = (0.2 * p_loc[0] / p_loc).clip(max=1)
    p_cls = paddle.to_tensor(score[None, None].astype("float32"))
    _, t = dw.consistency(p_cls, reg_loss)
    np.testing.assert_allclose(t.numpy()[0, 0, 0], t.numpy()[0, 0, 1], rtol=1e-5)
    w_pos = dw.positive_weights(t, paddle.ones([1, 1, 3])).numpy()[0, 0]
    np.testing.assert_allclose(w_pos[0], w_pos[1], rtol=1e-5)
    p_neg = dw.negative_probability(paddle.to_tensor(iou[None, None].astype("float32")),
                                    paddle.ones([1, 1, 3], "bool"))
    w_neg = dw.negative_weights(p_neg.transpose([0, 2, 1]), p_cls.transpose([0, 2, 1])).numpy()[0, :, 0]
    assert w_neg[0] < 1e-6  # the best-IoU candidate is (almost) never a negative
    assert w_neg[1] > 0.5  # the badly localised, confident one is pushed down


def test_negative_map_keeps_smallest_for_same_class_objects_and_one_elsewhere():
    p_neg = paddle.to_tensor([[[0.2, 1.0, 0.7], [0.5, 0.1, 1.0]]])
    labels = paddle.to_tensor([[1, 1]])
    p_map = dw.negative_probability_map(p_neg, labels, 3).numpy()[0]
    np.testing.assert_allclose(p_map[:, 1], [0.2, 0.1, 0.7])
    np.testing.assert_array_equal(p_map[:, [0, 2]], 1.0)


# --- the loss against NumPy ---------------------------------------------------------------------------------

@pytest.mark.parametrize("with_refine", [False, True])
def test_loss_equals_numpy_recomputation(with_refine):
    head = _small_head(with_refine)
    head.train()
    rng = np.random.default_rng(2)
    for param in head.parameters():  # spread the scores and boxes beyond the initial near-constants
        param.set_value(param + paddle.to_tensor(rng.normal(0, 0.05, param.shape).astype("float32")))
    head.conv_reg.bias.set_value(paddle.full([4], 1.6))  # boxes of about the GTs' size: some IoU >= 0.5
    feats = _feats()
    coarse = head.forward_coarse(feats)
    losses = head(feats, _targets())
    cls_maps = [c[0].numpy().astype(float) for c in coarse]
    ctr_maps = [c[2].numpy().astype(float) for c in coarse]
    ltrb_maps = [c[1].numpy().astype(float) for c in coarse]
    if with_refine:
        ltrb_maps = [_np_refine(ltrb, c[3].numpy().astype(float), s)
                     for ltrb, c, s in zip(ltrb_maps, coarse, STRIDES)]
    tg = {k: v.numpy() for k, v in _targets().items()}
    ref, high_iou = _np_loss(_flat(cls_maps), _flat(ltrb_maps), _flat(ctr_maps), tg["gt_bbox"].astype(float),
                   tg["gt_class"][..., 0], tg["pad_gt_mask"][..., 0] > 0)
    for key, value in ref.items():
        np.testing.assert_allclose(float(losses[key]), value, rtol=1e-5, atol=1e-5, err_msg=key)
    assert ref["loss_cls_pos"] > 0 and ref["loss_loc"] > 0 and ref["loss_cls_neg"] > 0
    assert high_iou > 0  # the fixture exercises the IoU-dependent part of P_neg


@pytest.mark.parametrize("switches", [dict(pos_weighting=False), dict(neg_weighting=False),
                                      dict(pos_weighting=False, neg_weighting=False)])
def test_ablation_losses_equal_numpy_recomputation_and_differ_from_dw(switches):
    losses = {}
    for name, kw in (("dw", {}), ("ablation", switches)):
        head = _small_head(False, **kw)
        head.train()
        rng = np.random.default_rng(2)
        for param in head.parameters():
            param.set_value(param + paddle.to_tensor(rng.normal(0, 0.05, param.shape).astype("float32")))
        head.conv_reg.bias.set_value(paddle.full([4], 1.6))
        losses[name] = head(_feats(), _targets())
    coarse = head.forward_coarse(_feats())
    tg = {k: v.numpy() for k, v in _targets().items()}
    ref, _ = _np_loss(_flat([c[0].numpy().astype(float) for c in coarse]),
                      _flat([c[1].numpy().astype(float) for c in coarse]),
                      _flat([c[2].numpy().astype(float) for c in coarse]), tg["gt_bbox"].astype(float),
                      tg["gt_class"][..., 0], tg["pad_gt_mask"][..., 0] > 0, **switches)
    for key, value in ref.items():
        np.testing.assert_allclose(float(losses["ablation"][key]), value, rtol=1e-5, atol=1e-5, err_msg=key)
    changed = ["loss_cls_pos", "loss_loc"] if "pos_weighting" in switches else []
    changed += ["loss_cls_neg"] if "neg_weighting" in switches else []
    for key in ("loss_cls_pos", "loss_loc", "loss_cls_neg"):
        a, b = float(losses["ablation"][key]), float(losses["dw"][key])
        assert (abs(a - b) > 1e-4 * abs(b)) == (key in changed), (key, a, b)


def test_prior_positive_weights_are_the_normalised_prior():
    prior = paddle.to_tensor([[[0.5, 0.25, 0.0, 0.25], [0.0, 0.0, 0.0, 0.0]]])
    w = dw.prior_positive_weights(prior).numpy()
    np.testing.assert_allclose(w[0, 0], [0.5, 0.25, 0.0, 0.25], rtol=1e-6)
    np.testing.assert_array_equal(w[0, 1], 0)  # no candidates: no weight


def _one_object_terms(**switches):
    """dw_loss_terms of one GT [0, 0, 16, 16] with three candidates, predicted boxes of IoU 1, 0.75 and 0.25,
    and a fourth location far outside; every score 0.3."""
    scores = paddle.full([1, 4, NUM_CLASSES], 0.3)
    # predicted boxes: the GT itself (IoU 1), [0, 0, 16, 12] (IoU 0.75), [0, 8, 8, 16] (IoU 0.25), far away
    ltrb = paddle.to_tensor([[[4.0, 4.0, 12.0, 12.0], [12.0, 4.0, 4.0, 8.0], [4.0, 4.0, 4.0, 4.0],
                              [4.0, 4.0, 4.0, 4.0]]])
    points = paddle.to_tensor([[4.0, 4.0], [12.0, 4.0], [4.0, 12.0], [40.0, 40.0]])
    return dw.dw_loss_terms(scores, ltrb, points, paddle.full([4], 8.0), paddle.to_tensor([[[0.0, 0.0, 16.0, 16.0]]]),
                            gt_labels=paddle.to_tensor([[1]]), gt_valid=paddle.to_tensor([[True]]),
                            num_classes=NUM_CLASSES, **switches)


def test_neg_weighting_off_makes_candidates_full_negatives():
    # With P_neg = 1 a candidate's negative term is s^2 * -log(1 - s), as at a location outside every box.
    off = _one_object_terms(neg_weighting=False)
    np.testing.assert_allclose(float(off["cls_neg"]), 4 * NUM_CLASSES * 0.09 * -math.log(0.7), rtol=1e-5)
    assert float(_one_object_terms()["cls_neg"]) < float(off["cls_neg"])  # DW lowers the candidates' weight


def test_neg_weighting_off_keeps_dws_negative_normaliser():
    np.testing.assert_allclose(float(_one_object_terms(neg_weighting=False)["neg_factor"]),
                               float(_one_object_terms()["neg_factor"]), rtol=1e-6)


def test_negative_normaliser_sums_one_minus_p_neg_over_the_candidates():
    # ~1 at IoU 1, 1 - 4/3 (1 - 0.75^2) at IoU 0.75, 0 at IoU 0.25 (< 0.5: P_neg = 1)
    np.testing.assert_allclose(float(_one_object_terms()["neg_factor"]), 1 + 1 - 4 / 3 * (1 - 0.75 ** 2), rtol=1e-5)


def test_refinement_changes_boxes_when_enabled():
    feats = _feats()
    coarse = _small_head(True).forward_coarse(feats)
    refined = _small_head(True)(feats)[1]
    assert not np.allclose(refined[0].numpy(), coarse[0][1].numpy())


def test_without_refinement_boxes_are_the_coarse_boxes():
    feats = _feats()
    coarse = _small_head(False).forward_coarse(feats)
    np.testing.assert_allclose(_small_head(False)(feats)[1][0].numpy(), coarse[0][1].numpy())


def test_refinement_with_zero_offsets_keeps_a_box_all_locations_agree_on():
    # Every location predicts the same box, whose sides lie between the first and last cell centres: each
    # boundary point then samples that same box, so refinement changes nothing (up to the clip at 0).
    stride, height, width = 8, 5, 6
    points = fcos_base.level_points(height, width, stride)
    box = paddle.to_tensor([5.0, 6.0, 43.0, 35.0])
    ltrb = fcos_base.box_to_distance(points, box).transpose([1, 0]).reshape([1, 4, height, width])
    refined = dw.refine_ltrb(ltrb, paddle.zeros([1, 8, height, width]), points, stride).numpy()
    np.testing.assert_allclose(refined, ltrb.numpy().clip(0), atol=1e-4)


def test_gradients_reach_the_refinement_offset_conv():
    head = _small_head(True)
    head.train()
    head(_feats(), _targets())["loss"].backward()
    grad = head.reg_offset.weight.grad
    assert grad is not None
    assert np.isfinite(grad.numpy()).all() and np.abs(grad.numpy()).sum() > 0


def test_refined_distances_pass_gradients_to_the_offsets():
    offsets = paddle.zeros([1, 8, 3, 3])
    offsets.stop_gradient = False
    ltrb = paddle.to_tensor(np.random.default_rng(0).uniform(2, 12, (1, 4, 3, 3)).astype("float32"))
    dw.refine_ltrb(ltrb, offsets, fcos_base.level_points(3, 3, 8), 8).sum().backward()
    assert np.abs(offsets.grad.numpy()).sum() > 0


def test_normalisers_are_averaged_across_ranks(monkeypatch):
    # Two ranks, the other one holding 3x this rank's value: all_reduce sums to 4x, the mean is 2x.
    head = _small_head(False)
    head.train()
    feats, targets = _feats(), _targets()
    single = {k: float(v) for k, v in head(feats, targets).items()}
    calls = []

    def fake_all_reduce(x):
        calls.append(float(x))
        x.set_value(x * 4)

    monkeypatch.setattr(fcos_base.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(fcos_base.dist, "all_reduce", fake_all_reduce)
    double = {k: float(v) for k, v in head(feats, targets).items()}
    assert calls[0] == 3.0 and len(calls) == 2  # the object count (3 objects), then the negative factor
    np.testing.assert_allclose(double["loss_cls_pos"], single["loss_cls_pos"] / 2, rtol=1e-6)
    np.testing.assert_allclose(double["loss_loc"], single["loss_loc"] / 2, rtol=1e-6)


def test_operators_and_host_copies_per_step_do_not_grow_with_batch():
    from benchmarks import head_bench as bench_heads
    counts = {}
    # random 2-8 objects per image in 8 slots, image 1 without any. (The slot count is fixed: Paddle's
    # put_along_axis dispatches one more `expand` when the slots do not outnumber the classes.)
    for batch in (2, 8):
        head = _small_head(True)
        head.train()
        prof = bench_heads.step_profile(head, batch, image_size=64, num_slots=8)[0]
        counts[batch] = (prof.operators, prof.host_copies, prof.shape_syncs)
    assert counts[2] == counts[8], counts
    assert counts[2][1] <= 3 and counts[2][2] == 0  # only the input checks copy to the host


# --- empty ground truth -------------------------------------------------------------------------------------

def _assert_finite_losses(losses):
    for key in ("loss_cls_pos", "loss_loc", "loss_cls_neg", "loss"):
        assert np.isfinite(float(losses[key])), key


def test_zero_object_image_gives_finite_losses_and_gradients():
    head = _small_head(True)
    head.train()
    targets = _targets()
    targets["pad_gt_mask"] = paddle.to_tensor([[[0], [0]], [[1], [0]]], "float32")  # image 0 has no object
    losses = head(_feats(), targets)
    _assert_finite_losses(losses)
    losses["loss"].backward()
    assert all(np.isfinite(p.grad.numpy()).all() for p in head.parameters() if p.grad is not None)


def test_zero_object_batch_gives_finite_losses():
    head = _small_head(True)
    head.train()
    targets = dict(gt_bbox=paddle.zeros([2, 0, 4]), gt_class=paddle.zeros([2, 0, 1], "int32"),
                   pad_gt_mask=paddle.zeros([2, 0, 1]))
    losses = head(_feats(), targets)
    _assert_finite_losses(losses)
    assert float(losses["loss_cls_pos"]) == 0 and float(losses["loss_cls_neg"]) > 0
    losses["loss"].backward()
    assert np.abs(head.conv_cls.weight.grad.numpy()).sum() > 0


def test_missing_pad_gt_mask_treats_zero_boxes_as_padding():
    head = _small_head(False)
    head.train()
    feats = _feats()
    targets = _targets()
    with_mask = head(feats, targets)
    del targets["pad_gt_mask"]
    without = head(feats, targets)
    np.testing.assert_allclose(float(without["loss"]), float(with_mask["loss"]), rtol=1e-6)


# --- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, name", [
    (dict(beta=0.0), "beta"),
    (dict(mu="5"), "mu"),
    (dict(gamma2=-2.0), "gamma2"),
    (dict(with_refine=1), "with_refine"),
    (dict(soft_prior="yes"), "soft_prior"),
    (dict(pos_weighting="off"), "pos_weighting"),
    (dict(neg_weighting=None), "neg_weighting"),
    (dict(refine_sampling="border"), "refine_sampling"),
])
def test_bad_dw_argument_raises_value_error_naming_it(kwargs, name):
    args = dict(num_classes=NUM_CLASSES, in_channels=8, feat_channels=8, num_convs=1, norm_groups=2,
                fpn_stride=STRIDES, nms=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        DWHead(**args)


@pytest.mark.parametrize("change, name", [
    (lambda t: t.pop("gt_bbox"), "gt_bbox"),
    (lambda t: t.update(gt_class=t["gt_class"].astype("float32")), "gt_labels"),
    (lambda t: t.update(gt_class=paddle.full([2, 2, 1], NUM_CLASSES, "int32")), "gt_labels"),
    (lambda t: t.update(gt_bbox=t["gt_bbox"][:, :, :3]), "gt_bboxes"),
    (lambda t: t.update(gt_bbox=paddle.to_tensor([[[9.0, 9, 1, 1], [0, 0, 0, 0]]] * 2)), "gt_bboxes"),
    (lambda t: t.update(pad_gt_mask=paddle.ones([2, 3, 1])), "pad_gt_mask"),
])
def test_bad_targets_raise_value_error_naming_the_argument(change, name):
    head = _small_head(False)
    head.train()
    targets = _targets()
    change(targets)
    with pytest.raises(ValueError, match=name):
        head(_feats(), targets)


# --- through ppdet's YAML -----------------------------------------------------------------------------------
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "dw")


@pytest.mark.parametrize("name, with_refine", [("dw_r50_fpn_1x_coco.yml", True),
                                               ("dw_r50_fpn_1x_coco_worefine.yml", False)])
def test_coco_configs_carry_the_official_settings(name, with_refine):
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    cfg = load_config(os.path.join(CONFIG_DIR, name))
    assert cfg.architecture == "FCOS" and cfg.FCOS["fcos_head"] == "DWHead"
    assert cfg.DWHead["nms"]["nms_threshold"] == 0.6 and cfg.DWHead["nms"]["score_threshold"] == 0.05
    assert cfg.LearningRate["base_lr"] == 0.01 and cfg.epoch == 12
    assert cfg.LearningRate["schedulers"][0].milestones == [8, 11]
    assert cfg.TrainReader["batch_size"] * 8 == 16
    assert cfg.num_classes == 80
    head = create(cfg.architecture).fcos_head
    assert head.with_refine is with_refine
    assert head.fpn_stride == [8, 16, 32, 64, 128] and head.nms_pre == 1000
    assert (head.beta, head.mu, head.norm_mu, head.gamma1, head.gamma2) == (5.0, 5.0, 3.0, 2.0, 2.0)


def test_synthetic_config_builds_fcos_with_dw_head_that_trains_and_predicts():
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    cfg = load_config(os.path.join(CONFIG_DIR, "dw_synthetic.yml"))
    model = create(cfg.architecture)
    assert type(model).__name__ == "FCOS" and isinstance(model.fcos_head, DWHead)
    assert model.fcos_head.with_refine and model.fcos_head.num_classes == 5
    model.train()
    image = paddle.rand([2, 3, 64, 64])
    shapes = dict(im_shape=paddle.to_tensor([[64.0, 64.0]] * 2), scale_factor=paddle.to_tensor([[1.0, 1.0]] * 2))
    inputs = dict(image=image, gt_bbox=paddle.to_tensor([[[4.0, 4, 40, 30]], [[10.0, 10, 60, 50]]]),
                  gt_class=paddle.to_tensor([[[1]], [[4]]], "int32"), pad_gt_mask=paddle.ones([2, 1, 1]), **shapes)
    losses = model(inputs)
    assert {"loss", "loss_cls_pos", "loss_loc", "loss_cls_neg"} <= set(losses)
    _assert_finite_losses(losses)
    model.eval()
    out = model(dict(image=image, **shapes))
    assert out["bbox"].shape[-1] == 6 and out["bbox_num"].shape == [2]


# --- a short training ---------------------------------------------------------------------------------------

class _TinyDetector(paddle.nn.Layer):
    """Four 3x3 convs (strides 2, 2, 2, then dilated) -> stride-8 map, one more -> stride 16; a DWHead."""

    def __init__(self, channels=32):
        super().__init__()
        nn = paddle.nn
        self.stem = nn.Sequential(nn.Conv2D(3, channels, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2D(channels, channels, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2D(channels, channels, 3, 2, 1), nn.ReLU(),
                                  nn.Conv2D(channels, channels, 3, 1, 2, dilation=2), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2D(channels, channels, 3, 2, 1), nn.ReLU())
        from ppdet.modeling.layers import MultiClassNMS
        self.head = DWHead(num_classes=5, in_channels=channels, feat_channels=channels, num_convs=1,
                           norm_groups=8, fpn_stride=[8, 16], with_refine=True,
                           nms=MultiClassNMS(score_threshold=0.01, nms_top_k=1000, keep_top_k=100,
                                             nms_threshold=0.6))

    def forward(self, images, targets=None):
        c3 = self.stem(images)
        return self.head([c3, self.down(c3)], targets)


def _synthetic_batch(num_images, size):
    from ppassign.data.synthetic import render_image
    images, objects = [], []
    for i in range(num_images):
        image, objs = render_image(i, split="train", image_size=size, min_object_size=12, max_objects=2,
                                   num_clutter=0)
        images.append(image.transpose(2, 0, 1).astype("float32") / 255 - 0.5)
        objects.append([(c, box) for c, box, _ in objs])
    num = max(len(o) for o in objects)
    boxes = np.zeros((num_images, num, 4), "float32")
    labels = np.zeros((num_images, num, 1), "int32")
    mask = np.zeros((num_images, num, 1), "float32")
    for b, objs in enumerate(objects):
        for j, (c, box) in enumerate(objs):
            boxes[b, j], labels[b, j], mask[b, j] = box, c, 1
    targets = dict(gt_bbox=paddle.to_tensor(boxes), gt_class=paddle.to_tensor(labels),
                   pad_gt_mask=paddle.to_tensor(mask))
    return paddle.to_tensor(np.stack(images)), targets


def _coco_map(model, images, targets, size):
    """COCO mAP@[.5:.95] of the model's detections on `images` (pycocotools)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    model.eval()
    with paddle.no_grad():
        bbox, num = model.head.post_process(model(images), paddle.ones([images.shape[0], 2]))
    model.train()
    gt = dict(images=[dict(id=i, width=size, height=size) for i in range(images.shape[0])],
              categories=[dict(id=c) for c in range(5)], annotations=[])
    boxes, labels, mask = (targets[k].numpy() for k in ("gt_bbox", "gt_class", "pad_gt_mask"))
    for i, j in zip(*np.nonzero(mask[..., 0])):
        x1, y1, x2, y2 = boxes[i, j].tolist()
        gt["annotations"].append(dict(id=len(gt["annotations"]) + 1, image_id=int(i), category_id=int(labels[i, j]),
                                      bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1), iscrowd=0))
    dets, start = [], 0
    for i, count in enumerate(num.numpy().tolist()):
        for row in bbox.numpy()[start:start + count]:
            dets.append(dict(image_id=i, category_id=int(row[0]), score=float(row[1]),
                             bbox=[float(row[2]), float(row[3]), float(row[4] - row[2]), float(row[5] - row[3])]))
        start += count
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.slow
def test_short_training_raises_map_above_untrained():
    # 8 generated 96 px images (the built-in synthetic generator), 100 Adam steps, refinement on; mAP on the
    # same images: this checks that the DW loss drives a detector, not generalisation (docs/dw.md has the
    # longer run on held-out images).
    size = 96
    paddle.seed(0)
    model = _TinyDetector()
    images, targets = _synthetic_batch(8, size)
    untrained = _coco_map(model, images, targets, size)
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    for _ in range(100):
        losses = model(images, targets)
        losses["loss"].backward()
        optimizer.step()
        optimizer.clear_grad()
    trained = _coco_map(model, images, targets, size)
    assert trained > untrained + 0.2, (untrained, trained)


# --- export -------------------------------------------------------------------------------------------------

def test_exported_model_boxes_equal_dygraph_boxes(tmp_path):
    """tools/export_model.py's library call on the synthetic config (refinement on), Paddle Inference vs dygraph."""
    from ppassign.engine.config import build_model, load_config
    from ppassign.data.synthetic import make_synthetic_coco
    config = os.path.join(CONFIG_DIR, "dw_synthetic.yml")
    image_dir, anno = make_synthetic_coco(tmp_path / "data", "val", num_images=1, image_size=128, seed=0)
    overrides = [f"TestDataset.anno_path={anno}", f"EvalDataset.dataset_dir={tmp_path / 'data'}",
                 "EvalDataset.num_images=1", "EvalDataset.image_size=128"]
    cfg = load_config(config, overrides)
    paddle.seed(0)
    model = build_model(cfg)
    # untrained scores (0.02 * 0.5) sit below NMS's score threshold: lift the class prior so boxes come out
    model.fcos_head.conv_cls.bias.set_value(paddle.full_like(model.fcos_head.conv_cls.bias, 2.0))
    dygraph, exported = export_and_predict(config, overrides, model, image_dir, tmp_path)
    assert len(dygraph) > 10
    np.testing.assert_allclose(exported, dygraph, rtol=1e-4, atol=1e-3)


def test_padding_slot_contents_do_not_change_the_loss():
    head = _small_head(False)
    head.train()
    feats, targets = _feats(), _targets()
    clean = {k: float(v) for k, v in head(feats, targets).items()}
    targets["gt_bbox"][0, 1] = paddle.to_tensor([5.0, 6.0, 40.0, 41.0])  # image 0's padding slot: a real box
    targets["gt_class"][0, 1] = 99  # and a label outside [0, C)
    junk = {k: float(v) for k, v in head(feats, targets).items()}
    for key, value in clean.items():
        np.testing.assert_allclose(junk[key], value, rtol=1e-6, err_msg=key)


def _uniform_ltrb(side_px, height=3, width=3):
    ltrb = paddle.full([1, 4, height, width], float(side_px))
    ltrb.stop_gradient = False
    return ltrb


def test_refine_points_outside_counts_boundary_points_beyond_the_map():
    # 3x3 map, every side 2 strides long: the left point leaves the map for columns 0-1, the right one for
    # columns 1-2, and the same for rows: 6 of 9 locations per side.
    outside = dw.refine_points_outside(_uniform_ltrb(16), paddle.zeros([1, 8, 3, 3]), 8).numpy()
    np.testing.assert_allclose(outside.mean(axis=(0, 2, 3)), [6 / 9] * 4)
    assert outside[0, 2, :, 0].sum() == 0 and outside[0, 2, :, 1:].all()  # right side: columns 1-2 only


@pytest.mark.parametrize("clamp, expected_right, grad_nonzero", [(False, 0.0, False), (True, 16.0, True)])
def test_zeros_sampling_kills_a_side_beyond_the_map_clamp_keeps_it(clamp, expected_right, grad_nonzero):
    points = fcos_base.level_points(3, 3, 8)
    ltrb = _uniform_ltrb(16)
    refined = dw.refine_ltrb(ltrb, paddle.zeros([1, 8, 3, 3]), points, 8, clamp=clamp)
    # location (row 1, column 2): its right point (column 4) is beyond the map
    assert float(refined[0, 2, 1, 2]) == pytest.approx(expected_right, abs=1e-4)
    refined[0, 2, 1, 2].backward()
    assert (np.abs(ltrb.grad.numpy()).sum() > 0) == grad_nonzero


@pytest.mark.parametrize("clamp", [False, True])
def test_refine_ltrb_matches_numpy_with_points_far_outside(clamp):
    rng = np.random.default_rng(3)
    ltrb = rng.uniform(0, 60, (2, 4, 4, 5)).astype("float32")
    offsets = rng.normal(0, 1.0, (2, 8, 4, 5)).astype("float32")
    out = dw.refine_ltrb(paddle.to_tensor(ltrb), paddle.to_tensor(offsets), fcos_base.level_points(4, 5, 8), 8,
                         clamp=clamp).numpy()
    np.testing.assert_allclose(out, _np_refine(ltrb, offsets, 8, clamp), atol=1e-3)


def test_head_refine_sampling_clamp_changes_the_refined_boxes():
    feats = _feats()
    zeros = _small_head(True)(feats)[1]
    clamped = _small_head(True, refine_sampling="clamp")(feats)[1]
    assert any(not np.allclose(a.numpy(), b.numpy()) for a, b in zip(zeros, clamped))
