import json
import os

import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401  (shims + registration)
from ppassign.heads import autoassign_head as aa
from ppassign.heads import fcos_base as fb
from export_check import export_and_predict
from ppdet.modeling.layers import MultiClassNMS

C = 3
STRIDES = [8, 16]
CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "autoassign", "autoassign_synthetic.yml")


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x, dtype=dtype))


def make_head(**kw):
    args = dict(num_classes=C, in_channels=16, feat_channels=16, num_convs=1, norm_groups=4, fpn_stride=STRIDES,
                nms=MultiClassNMS(score_threshold=0.05, keep_top_k=100, nms_threshold=0.6))
    args.update(kw)
    return aa.AutoAssignHead(**args)


def grid_points():
    """Points of a 4x4 level (stride 8) and a 2x2 level (stride 16): L = 20."""
    pts = [fb.level_points(4, 4, 8), fb.level_points(2, 2, 16)]
    strides = paddle.concat([paddle.full([16], 8.0), paddle.full([4], 16.0)])
    return pts, paddle.concat(pts), strides


# ---------------------------------------------------------------------------------------------- weight maps
def test_positive_weights_sum_to_one_over_each_objects_locations():
    _, points, strides = grid_points()
    gts = t([[2, 3, 27, 30], [10, 8, 31, 29]])
    labels = t([1, 0], "int64")
    inside = aa.inside_boxes(points, gts)
    prior, in_s = aa.center_weights(points, strides, gts, labels, t(np.full([C, 2], 0.3)),
                                    t(np.full([C, 2], 1.2)), inside)
    rng = np.random.RandomState(0)
    _, w_pos = aa.positive_loss(t(rng.rand(2, 20)), t(rng.rand(2, 20) * 2), prior, in_s)
    w = w_pos.numpy()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert (w[~in_s.numpy()] == 0).all()
    assert (w[in_s.numpy()] > 0).all()


def _two_object_negative_weights():
    """w- [L=6, C] of object 0 (class 2, locations 0-2) and object 1 (class 0, locations 2-4)."""
    in_s = t([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0]], "bool")
    best_iou = t([0.2, 0.7, 0.4, 0.1, 0.9, 0.95])
    return aa.negative_weights(best_iou, in_s, t([2, 0], "int64"), C).numpy()


def test_negative_weights_are_zero_at_each_objects_best_iou_and_one_at_its_worst():
    w = _two_object_negative_weights()
    assert w.shape == (6, C) and (w >= 0).all() and (w <= 1).all()
    np.testing.assert_allclose(w[1, 2], 0, atol=1e-6)  # object 0's best IoU (0.7) among locations 0-2
    np.testing.assert_allclose(w[4, 0], 0, atol=1e-6)  # object 1's best IoU (0.9) among locations 2-4
    np.testing.assert_allclose(w[0, 2], 1, atol=1e-6)  # object 0's worst location


def test_negative_weights_are_one_outside_every_box_and_off_the_objects_class():
    w = _two_object_negative_weights()
    np.testing.assert_allclose(w[5], 1)  # outside every box: 1 even with the highest IoU
    np.testing.assert_allclose(w[:, 1], 1)  # class without objects
    np.testing.assert_allclose(w[3:, 2], 1)  # outside object 0, on its class channel


def test_negative_weights_same_class_overlap_takes_the_smaller_weight():
    in_s = t([[1, 1, 1], [0, 1, 1]], "bool")
    best_iou = t([0.1, 0.5, 0.9])
    w = aa.negative_weights(best_iou, in_s, t([0, 0], "int64"), 1).numpy()[:, 0]
    # object 0 gives location 1 a weight in (0, 1); object 1 gives it 1 (its worst): the smaller wins.
    assert 0 < w[1] < 1
    np.testing.assert_allclose(w[2], 0, atol=1e-6)


def test_negative_weights_without_objects_are_all_one():
    w = aa.negative_weights(t([0.3, 0.5]), paddle.zeros([0, 2], "bool"), paddle.zeros([0], "int64"), C)
    np.testing.assert_array_equal(w.numpy(), np.ones([2, C]))


def test_center_prior_peaks_at_learned_mu_on_every_level():
    _, points, strides = grid_points()
    gts = t([[0, 0, 48, 48]])  # centre (24, 24)
    mu = t([[0.0, 0.0], [-1.0, -1.0], [0.0, 0.0]])  # class 1: one stride up-left of the centre
    prior, _ = aa.center_weights(points, strides, gts, t([1], "int64"), mu, t(np.ones([C, 2])),
                                 aa.inside_boxes(points, gts))
    prior = prior.numpy()[0]
    # stride 8: (20, 20) -> d = (-0.5, -0.5); (12, 12) -> (-1.5, -1.5); stride 16: (8, 8) -> (-1, -1) = mu.
    pts = points.numpy()
    at_mu = np.flatnonzero((pts[:, 0] == 8) & (pts[:, 1] == 8) & (strides.numpy() == 16))[0]
    np.testing.assert_allclose(prior[at_mu], 1.0, rtol=1e-6)
    assert prior.argmax() == at_mu
    l8 = np.flatnonzero((pts[:, 0] == 20) & (pts[:, 1] == 20) & (strides.numpy() == 8))[0]
    np.testing.assert_allclose(prior[l8], np.exp(-0.25), rtol=1e-6)


def _in_s_with_force_topk(force_topk):
    """S_n of a tiny box without any location strictly inside (object 0) and a large box (object 1)."""
    _, points, strides = grid_points()
    gts = t([[5, 5, 7, 6], [0, 0, 30, 30]])
    inside = aa.inside_boxes(points, gts)
    assert not inside.numpy()[0].any()
    _, in_s = aa.center_weights(points, strides, gts, t([0, 0], "int64"), paddle.zeros([C, 2]), paddle.ones([C, 2]),
                                inside, force_topk=force_topk)
    return inside.numpy(), in_s.numpy()


def test_force_topk_gives_a_box_without_locations_inside_its_k_highest_prior_locations():
    _, in_s = _in_s_with_force_topk(3)
    assert in_s[0].sum() == 3


def test_force_topk_leaves_boxes_with_locations_inside_unchanged():
    inside, in_s = _in_s_with_force_topk(3)
    np.testing.assert_array_equal(in_s[1], inside[1])


def test_force_topk_zero_leaves_a_box_without_locations_inside_empty():
    _, in_s = _in_s_with_force_topk(0)
    assert in_s[0].sum() == 0


# ---------------------------------------------------------------------------------------- full loss vs NumPy
def _sig(x):
    return 1 / (1 + np.exp(-x))


def _np_giou(p, g, eps=fb.GIOU_EPS):
    ap = (p[2] - p[0]) * (p[3] - p[1])
    ag = (g[2] - g[0]) * (g[3] - g[1])
    iw = max(min(p[2], g[2]) - max(p[0], g[0]), 0)
    ih = max(min(p[3], g[3]) - max(p[1], g[1]), 0)
    inter = iw * ih
    union = ap + ag - inter + eps
    enclose = (max(p[2], g[2]) - min(p[0], g[0])) * (max(p[3], g[3]) - min(p[1], g[1])) + eps
    return inter / union, inter / union - (enclose - union) / enclose


def numpy_losses(cls_logit, obj_logit, ltrb, points, strides, images, mu, sigma, force_topk, center_prior="learnable",
                 confidence_weighting=True, objectness=True):
    """Plain re-computation of AutoAssign's losses from the formulas (paper eq. 1-12, MMDetection weights).

    The ablations: center_prior='off' puts 1 in place of G in w+ only; confidence_weighting=False drops
    exp(P / tau) from w+; objectness=False makes P(cls) = sigmoid(cls)."""
    tau, lam, gamma, eps = 1 / 3, 5.0, 2.0, 1e-12
    batch, num_points, _ = cls_logit.shape
    pos_sum, neg_sum, mass_sum, num_obj, centers = 0.0, 0.0, 0.0, 0, []
    for b in range(batch):
        prob = _sig(cls_logit[b]) * (_sig(obj_logit[b])[:, None] if objectness else 1.0)
        pred = np.stack([points[:, 0] - ltrb[b, :, 0], points[:, 1] - ltrb[b, :, 1],
                         points[:, 0] + ltrb[b, :, 2], points[:, 1] + ltrb[b, :, 3]], 1)
        boxes, labels = images[b]
        n = len(boxes)
        num_obj += n
        w_neg = np.ones_like(prob)
        if n == 0:
            q = prob
            neg_sum += (q ** gamma * -np.log(1 - q)).sum()
            centers.append(0.0)
            continue
        iou = np.zeros([n, num_points])
        giou = np.zeros([n, num_points])
        for j in range(n):
            for i in range(num_points):
                iou[j, i], giou[j, i] = _np_giou(pred[i], boxes[j])
        best = iou.max(0)
        mass, with_s = 0.0, 0
        for j in range(n):
            x1, y1, x2, y2 = boxes[j]
            inside = np.minimum.reduce([points[:, 0] - x1, points[:, 1] - y1, x2 - points[:, 0],
                                        y2 - points[:, 1]]) > 0
            centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
            d = (points - centre) / strides[:, None]
            g = np.exp(-(((d - mu[labels[j]]) ** 2) / (2 * sigma[labels[j]] ** 2)).sum(1))
            if not inside.any() and force_topk:
                inside = np.zeros(num_points, bool)
                inside[np.argsort(-g, kind="stable")[:force_topk]] = True
            if not inside.any():
                continue
            with_s += 1
            prior = g * inside
            mass += prior.sum()
            joint = prob[:, labels[j]] * np.exp(-lam * (1 - giou[j]))
            w = inside.astype(float) if center_prior == "off" else prior
            if confidence_weighting:
                w = np.exp(joint / tau) * w
            w = w / w.sum()
            pos_sum += -np.log((w * joint).sum())
            v = 1 / (1 - best[inside])
            norm = (v - v.min() + eps) / (v.max() - v.min() + eps)
            idx = np.flatnonzero(inside)
            w_neg[idx, labels[j]] = np.minimum(w_neg[idx, labels[j]], 1 - norm)
        q = prob * w_neg
        neg_sum += (q ** gamma * -np.log(1 - q)).sum()
        mass_sum += mass
        centers.append(with_s / mass)
    return {"loss_pos": pos_sum / max(num_obj, 1) * 0.25,
            "loss_neg": neg_sum / max(mass_sum, 1) * 0.75,
            "loss_center": sum(centers) / batch * 0.75}


def fixed_case(seed=0):
    rng = np.random.RandomState(seed)
    pts_list, points, strides = grid_points()
    cls_logit = rng.randn(2, 20, C).astype("float32")
    obj_logit = rng.randn(2, 20).astype("float32")
    ltrb = (rng.rand(2, 20, 4) * 20 + 2).astype("float32")
    gt_bbox = np.zeros([2, 3, 4], "float32")
    gt_bbox[0] = [[2, 3, 27, 30], [10, 8, 31, 29], [5, 5, 7, 6]]  # two overlapping class-1 boxes + a tiny one
    gt_class = np.zeros([2, 3, 1], "int32")
    gt_class[0, :, 0] = [1, 1, 2]
    mask = np.zeros([2, 3, 1], "float32")
    mask[0] = 1  # image 1 has no objects
    mu = (rng.randn(C, 2) * 0.3).astype("float32")
    sigma = (rng.rand(C, 2) + 0.7).astype("float32")
    return dict(pts_list=pts_list, points=points, strides=strides, cls_logit=cls_logit, obj_logit=obj_logit,
                ltrb=ltrb, gt_bbox=gt_bbox, gt_class=gt_class, mask=mask, mu=mu, sigma=sigma)


def to_outs(case):
    """Head outputs (per-level [B, X, H, W] maps) holding the case's flat [B, L, X] values."""
    def levels(flat):
        x = paddle.to_tensor(flat)
        return [x[:, :16].transpose([0, 2, 1]).reshape([2, -1, 4, 4]),
                x[:, 16:].transpose([0, 2, 1]).reshape([2, -1, 2, 2])]
    return (levels(case["cls_logit"]), levels(case["ltrb"]), levels(case["obj_logit"][..., None]),
            case["pts_list"])


def targets_of(case):
    return {"gt_bbox": t(case["gt_bbox"]), "gt_class": t(case["gt_class"], "int32"),
            "pad_gt_mask": t(case["mask"])}


@pytest.mark.parametrize("force_topk", [0, 3])
def test_losses_equal_numpy_recomputation(force_topk):
    case = fixed_case()
    head = make_head(force_topk=force_topk)
    head.mu.set_value(case["mu"])
    head.sigma.set_value(case["sigma"])
    losses = head.get_loss(to_outs(case), targets_of(case))
    images = [(case["gt_bbox"][0].astype("float64"), case["gt_class"][0, :, 0]), (np.zeros([0, 4]), [])]
    expected = numpy_losses(case["cls_logit"].astype("float64"), case["obj_logit"].astype("float64"),
                            case["ltrb"].astype("float64"), case["points"].numpy().astype("float64"),
                            case["strides"].numpy().astype("float64"), images, case["mu"].astype("float64"),
                            case["sigma"].astype("float64"), force_topk)
    for key, value in expected.items():
        np.testing.assert_allclose(float(losses[key]), value, rtol=1e-5, atol=1e-7, err_msg=key)


def _mixed_batch(rng):
    """B=3 over grid_points(): image 0 has 2 objects (one tiny) + a padding slot holding junk, image 1 none,
    image 2 three objects. Returns flat outputs and padded targets, plus each image's real objects."""
    real = [(np.array([[2, 3, 27, 30], [5, 5, 7, 6]], "float32"), np.array([1, 2])),
            (np.zeros([0, 4], "float32"), np.zeros([0], "int64")),
            (np.array([[10, 8, 31, 29], [0, 0, 20, 12], [4, 16, 30, 31]], "float32"), np.array([0, 0, 2]))]
    gt_bbox = np.zeros([3, 3, 4], "float32")
    gt_class = np.zeros([3, 3, 1], "int32")
    mask = np.zeros([3, 3, 1], "float32")
    gt_bbox[0, 2], gt_class[0, 2] = [1, 1, 30, 30], 99  # junk in a padding slot: must change nothing
    for b, (boxes, labels) in enumerate(real):
        gt_bbox[b, :len(boxes)], gt_class[b, :len(boxes), 0], mask[b, :len(boxes)] = boxes, labels, 1
    cls_prob = t(rng.rand(3, 20, C) * 0.9 + 0.05)
    ltrb = t(rng.rand(3, 20, 4) * 20 + 2)
    targets = {"gt_bbox": t(gt_bbox), "gt_class": t(gt_class, "int32"), "pad_gt_mask": t(mask)}
    return cls_prob, ltrb, targets, real


@pytest.mark.parametrize("force_topk", [0, 3])
def test_batched_loss_sums_equal_per_image_sums_with_padding_and_an_image_without_objects(force_topk):
    _, points, strides = grid_points()
    head = make_head(force_topk=force_topk)
    rng = np.random.RandomState(1)
    head.mu.set_value(t(rng.randn(C, 2) * 0.3))
    head.sigma.set_value(t(rng.rand(C, 2) + 0.7))
    cls_prob, ltrb, targets, real = _mixed_batch(rng)
    boxes = fb.distance_to_box(points, ltrb)
    gt_bbox, gt_labels, valid = fb.padded_targets(targets, 3, C)
    batched = head._batch_losses(cls_prob, boxes, points, strides, gt_bbox, gt_labels, valid)
    per_image = np.zeros(4)
    for b, (gts, labels) in enumerate(real):  # one image at a time, its real objects only (no padding)
        sums = head._batch_losses(cls_prob[b:b + 1], boxes[b:b + 1], points, strides, t(gts[None]),
                                  t(labels[None], "int64"), paddle.ones([1, len(gts)], "bool"))
        per_image += [float(x) for x in sums]
    np.testing.assert_allclose([float(x) for x in batched], per_image, rtol=1e-5)
    assert per_image[0] > 0 and per_image[3] > 0  # positive sum and prior mass are not trivially zero


# ------------------------------------------------------------------------------------------ whole head
def feats(batch=2, seed=0):
    paddle.seed(seed)
    return [paddle.rand([batch, 16, 8, 8]), paddle.rand([batch, 16, 4, 4])]


def test_gradients_reach_prior_objectness_and_towers():
    head = make_head()
    head.train()
    case = fixed_case()
    losses = head(feats(), targets_of(case))
    assert set(losses) == {"loss_pos", "loss_neg", "loss_center", "loss"}
    losses["loss"].backward()
    for name, param in [("mu", head.mu), ("sigma", head.sigma), ("obj_conv", head.obj_conv.weight),
                        ("cls_conv", head.cls_conv.weight), ("reg_conv", head.reg_conv.weight),
                        ("cls_tower", head.cls_tower[0].weight), ("reg_tower", head.reg_tower[0].weight),
                        ("scale", head.scales[0].scale)]:
        assert param.grad is not None and float(param.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("targets", [
    "an image without objects",
    "only padding slots",
    "no slot at all",  # what ppdet's PadGT yields when no image of the batch has a box
])
def test_batches_with_empty_images_give_finite_losses_and_prior_gradients(targets):
    head = make_head()
    head.train()
    targets = {"an image without objects": targets_of(fixed_case()),
               "only padding slots": {"gt_bbox": paddle.zeros([2, 3, 4]), "gt_class": paddle.zeros([2, 3, 1], "int32"),
                                      "pad_gt_mask": paddle.zeros([2, 3, 1])},
               "no slot at all": {"gt_bbox": paddle.zeros([2, 0, 4]), "gt_class": paddle.zeros([2, 0, 1], "int32"),
                                  "pad_gt_mask": paddle.zeros([2, 0, 1])}}[targets]
    losses = head(feats(), targets)
    for key, value in losses.items():
        assert np.isfinite(float(value)), key
    losses["loss"].backward()
    assert head.mu.grad is not None


def test_post_process_returns_boxes_in_original_image_pixels():
    head = make_head()
    head.eval()
    # a confident class-2 object at the first stride-8 location
    outs = head(feats(batch=1))
    cls_logits, ltrbs, obj_logits, points = outs
    cls_logits = [paddle.full_like(c, -10.0) for c in cls_logits]
    obj_logits = [paddle.full_like(o, 10.0) for o in obj_logits]
    cls_logits[0][0, 2, 0, 0] = 10.0
    ltrbs = [paddle.full_like(d, 4.0) for d in ltrbs]
    bbox, num = head.post_process((cls_logits, ltrbs, obj_logits, points), t([[2.0, 4.0]]))
    assert int(num.numpy()[0]) == 1
    np.testing.assert_allclose(bbox.numpy()[0], [2, _sig(10) ** 2, 0, 0, 2, 4], rtol=1e-5)


def test_operators_and_host_copies_per_step_do_not_grow_with_batch():
    from benchmarks import head_bench as bench_heads
    counts = {}
    # random 2-8 objects per image in 8 slots, image 1 without any. (The slot count is fixed: Paddle's
    # put_along_axis dispatches one more `expand` when the slots do not outnumber the classes.)
    for batch in (2, 8):
        head = make_head()
        head.train()
        prof = bench_heads.step_profile(head, batch, image_size=64, num_slots=8)[0]
        counts[batch] = (prof.operators, prof.host_copies, prof.shape_syncs)
    assert counts[2] == counts[8], counts
    assert counts[2][1] <= 3 and counts[2][2] == 0  # only the input checks copy to the host


# ---------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("key, value, name", [
    ("gt_bbox", paddle.zeros([2, 3]), "gt_bbox"),
    ("gt_class", paddle.zeros([2, 2, 1], "int32"), "gt_class"),
    ("gt_class", paddle.full([2, 3, 1], C, "int32"), "gt_class"),
    ("gt_class", paddle.full([2, 3, 1], -1, "int32"), "gt_class"),
    ("pad_gt_mask", paddle.ones([2, 3]), "pad_gt_mask"),
])
def test_bad_targets_raise_value_error_naming_the_argument(key, value, name):
    head = make_head()
    head.train()
    targets = targets_of(fixed_case())
    targets["pad_gt_mask"] = paddle.ones([2, 3, 1])
    targets[key] = value
    with pytest.raises(ValueError, match=name):
        head(feats(), targets)


# ------------------------------------------------------------------------------------------------ ablations
ABLATIONS = [dict(center_prior="fixed"), dict(center_prior="off"), dict(confidence_weighting=False),
             dict(objectness=False), dict(center_prior="off", confidence_weighting=False)]


@pytest.mark.parametrize("switches", ABLATIONS)
def test_ablation_losses_equal_numpy_recomputation_and_differ_from_the_default(switches):
    case = fixed_case()
    fixed = switches.get("center_prior", "learnable") != "learnable"
    mu = np.zeros([C, 2], "float32") if fixed else case["mu"]
    sigma = np.ones([C, 2], "float32") if fixed else case["sigma"]
    head = make_head(force_topk=3, **switches)
    default = make_head(force_topk=3)
    for h in (head, default):
        h.mu.set_value(mu)
        h.sigma.set_value(sigma)
    losses = head.get_loss(to_outs(case), targets_of(case))
    images = [(case["gt_bbox"][0].astype("float64"), case["gt_class"][0, :, 0]), (np.zeros([0, 4]), [])]
    expected = numpy_losses(case["cls_logit"].astype("float64"), case["obj_logit"].astype("float64"),
                            case["ltrb"].astype("float64"), case["points"].numpy().astype("float64"),
                            case["strides"].numpy().astype("float64"), images, mu.astype("float64"),
                            sigma.astype("float64"), 3, **switches)
    for key, value in expected.items():
        np.testing.assert_allclose(float(losses[key]), value, rtol=1e-5, atol=1e-7, err_msg=key)
    base = default.get_loss(to_outs(case), targets_of(case))
    changed = "loss_pos" if "objectness" not in switches else "loss_neg"
    if switches.get("center_prior") != "fixed":  # 'fixed' equals the default at mu = 0, sigma = 1
        assert abs(float(losses[changed]) - float(base[changed])) > 1e-4, changed


def test_center_prior_off_without_confidence_gives_equal_positive_weights_inside_the_box():
    _, points, strides = grid_points()
    gts, labels = t([[2, 3, 27, 30]]), t([1], "int64")
    head = make_head(center_prior="off", confidence_weighting=False)
    head.mu.set_value(t(np.full([C, 2], 0.7)))  # whatever mu, sigma: 'off' ignores them in w+
    inside = aa.inside_boxes(points, gts)
    _, in_s, pos_prior = head.center_weighting(points, strides, gts, labels, inside)
    rng = np.random.RandomState(0)
    _, w_pos = aa.positive_loss(t(rng.rand(1, 20)), t(rng.rand(1, 20)), pos_prior, in_s,
                                confidence_weighting=False)
    w, s = w_pos.numpy()[0], in_s.numpy()[0]
    assert s.sum() == 16  # 3 x 4 stride-8 and 2 x 2 stride-16 cell centres lie inside the box
    np.testing.assert_allclose(w[s], 1 / 16, rtol=1e-6)
    np.testing.assert_array_equal(w[~s], 0)


def test_center_prior_off_keeps_the_confidence_factor_only():
    _, points, strides = grid_points()
    gts, labels = t([[2, 3, 27, 30]]), t([1], "int64")
    head = make_head(center_prior="off")
    inside = aa.inside_boxes(points, gts)
    _, in_s, pos_prior = head.center_weighting(points, strides, gts, labels, inside)
    rng = np.random.RandomState(1)
    p_cls, loc = rng.rand(1, 20).astype("float32"), rng.rand(1, 20).astype("float32")
    _, w_pos = aa.positive_loss(t(p_cls), t(loc), pos_prior, in_s)
    s = in_s.numpy()[0]
    c = np.exp(p_cls[0] * np.exp(-5 * loc[0]) * 3) * s
    np.testing.assert_allclose(w_pos.numpy()[0], c / c.sum(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["fixed", "off"])
def test_fixed_and_off_center_priors_are_never_trained(mode):
    head = make_head(center_prior=mode)
    head.train()
    losses = head(feats(), targets_of(fixed_case()))
    losses["loss"].backward()
    for param, value in ((head.mu, 0.0), (head.sigma, 1.0)):
        assert not param.trainable and param.grad is None, mode
        np.testing.assert_array_equal(param.numpy(), value)
    trainable = [n for n, p in head.named_parameters() if p.trainable]
    assert "mu" not in trainable and "sigma" not in trainable


def test_learnable_center_prior_is_trainable():
    head = make_head()
    assert head.mu.trainable and head.sigma.trainable


def test_objectness_off_creates_no_objectness_conv():
    head = make_head(objectness=False)
    assert head.obj_conv is None and not any("obj" in n for n, _ in head.named_parameters())
    head.eval()
    assert head(feats(batch=1))[2] == [None, None]


def test_objectness_off_class_probability_is_the_class_sigmoid():
    logits = t(np.random.RandomState(0).randn(2, 5, C))
    np.testing.assert_allclose(make_head(objectness=False).class_probability(logits).numpy(),
                               1 / (1 + np.exp(-logits.numpy())), rtol=1e-6)


def test_objectness_off_detection_score_has_no_objectness_factor():
    head = make_head(objectness=False)
    head.eval()
    cls_logits, ltrbs, obj_logits, points = head(feats(batch=1))
    cls_logits = [paddle.full_like(c, -10.0) for c in cls_logits]
    cls_logits[0][0, 1, 2, 3] = 3.0  # one confident location of class 1
    bbox, num = head.post_process((cls_logits, ltrbs, obj_logits, points), t([[1.0, 1.0]]))
    assert int(num[0]) == 1
    np.testing.assert_allclose(float(bbox[0, 1]), 1 / (1 + np.exp(-3.0)), rtol=1e-5)


def test_objectness_off_trains_with_finite_losses():
    head = make_head(objectness=False)
    head.train()
    losses = head(feats(), targets_of(fixed_case()))
    assert all(np.isfinite(float(v)) for v in losses.values())


@pytest.mark.parametrize("kwargs, name", [
    (dict(center_prior="gaussian"), "center_prior"), (dict(center_prior=None), "center_prior"),
    (dict(confidence_weighting="no"), "confidence_weighting"), (dict(objectness=0), "objectness"),
    (dict(temperature=0), "temperature"), (dict(loc_weight=-1.0), "loc_weight"),
    (dict(center_loss_weight=-0.5), "center_loss_weight"), (dict(focal_gamma="2"), "focal_gamma"),
    (dict(force_topk=-1), "force_topk"), (dict(force_topk=2.5), "force_topk"),
])
def test_bad_autoassign_argument_raises_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_head(**kwargs)


def test_old_name_num_groups_builds_the_same_towers_with_a_warning_naming_norm_groups(caplog):
    paddle.seed(0)
    new = make_head(norm_groups=2)
    args = dict(num_classes=C, in_channels=16, feat_channels=16, num_convs=1, fpn_stride=STRIDES, nms=None)
    paddle.seed(0)
    with caplog.at_level("WARNING", logger="ppassign"):
        old = aa.AutoAssignHead(num_groups=2, **args)
    assert "AutoAssignHead.num_groups is renamed norm_groups" in caplog.text
    assert old.cls_tower.norm0._num_groups == new.cls_tower.norm0._num_groups == 2
    np.testing.assert_array_equal(old.cls_tower.conv0.weight.numpy(), new.cls_tower.conv0.weight.numpy())


def test_old_and_new_group_names_with_different_values_raise_value_error_naming_both():
    with pytest.raises(ValueError, match="num_groups is the old name of norm_groups"):
        make_head(norm_groups=4, num_groups=2)


def test_old_name_num_groups_in_yaml_builds_the_head(tmp_path, caplog):
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    base = os.path.abspath(os.path.join(os.path.dirname(CONFIG), "..", "_base_", "fcos_style_synthetic.yml"))
    path = tmp_path / "old_names.yml"
    path.write_text(f"_BASE_: ['{base}']\nFCOS:\n  fcos_head: AutoAssignHead\n"
                    "AutoAssignHead:\n  feat_channels: 64\n  num_convs: 2\n  num_groups: 8\n")
    cfg = load_config(str(path))
    with caplog.at_level("WARNING", logger="ppassign"):
        head = create(cfg.architecture).fcos_head
    assert head.cls_tower.norm0._num_groups == 8 and "write 'norm_groups: 8'" in caplog.text


# ------------------------------------------------------------------------------------ through ppdet's YAML


def test_synthetic_config_builds_fcos_with_autoassign_head(tmp_path):
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    cfg = load_config(CONFIG)
    model = create(cfg.architecture)
    assert type(model).__name__ == "FCOS"
    assert isinstance(model.fcos_head, aa.AutoAssignHead)
    model.train()
    image = paddle.rand([2, 3, 64, 64])
    inputs = {"image": image, "gt_bbox": t([[[4, 4, 40, 30]], [[10, 10, 60, 50]]]),
              "gt_class": t([[[1]], [[4]]], "int32"), "pad_gt_mask": paddle.ones([2, 1, 1]),
              "im_shape": t([[64, 64]] * 2), "scale_factor": t([[1, 1]] * 2)}
    losses = model(inputs)
    assert np.isfinite(float(losses["loss"]))
    model.eval()
    out = model({"image": image, "im_shape": inputs["im_shape"], "scale_factor": inputs["scale_factor"]})
    assert out["bbox"].shape[-1] == 6 and out["bbox_num"].shape == [2]


# ------------------------------------------------------------------------------------- short training run
def _load_coco_split(root):
    """The generated split as (COCO api, category ids, image ids, images [N, 3, S, S], targets dict)."""
    import contextlib
    import io

    import cv2
    from pycocotools.coco import COCO

    from ppassign.data.synthetic import make_synthetic_coco
    image_dir, anno = make_synthetic_coco(root, "train", num_images=12, image_size=64, seed=0, min_object_size=10,
                                          max_objects=3, num_clutter=0)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(anno)
    cats, ids = sorted(coco.getCatIds()), sorted(coco.getImgIds())
    images, boxes, labels = [], [], []
    for i in ids:
        image = cv2.imread(os.path.join(image_dir, coco.loadImgs(i)[0]["file_name"]))[:, :, ::-1] / 255.0
        images.append(((image - 0.5) / 0.25).transpose(2, 0, 1))
        anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
        boxes.append([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                      for a in anns])
        labels.append([cats.index(a["category_id"]) for a in anns])
    n = max(len(b) for b in boxes)
    gt_bbox, gt_class, mask = np.zeros([len(ids), n, 4]), np.zeros([len(ids), n, 1]), np.zeros([len(ids), n, 1])
    for b, (bx, lb) in enumerate(zip(boxes, labels)):
        gt_bbox[b, :len(bx)], gt_class[b, :len(lb), 0], mask[b, :len(bx)] = bx, lb, 1
    targets = {"gt_bbox": t(gt_bbox), "gt_class": t(gt_class, "int32"), "pad_gt_mask": t(mask)}
    return coco, cats, ids, t(np.stack(images)), targets


class TinyDetector(paddle.nn.Layer):
    """3 stride-2 convs (stride 8) + 1 (stride 16) under an AutoAssignHead."""

    def __init__(self, num_classes):
        super().__init__()
        nn = paddle.nn

        def block(i, o):
            return [nn.Conv2D(i, o, 3, stride=2, padding=1), nn.GroupNorm(8, o), nn.ReLU()]
        self.c8 = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 32))
        self.c16 = nn.Sequential(*block(32, 32))
        self.head = aa.AutoAssignHead(num_classes=num_classes, in_channels=32, feat_channels=32, num_convs=2,
                                      norm_groups=8, fpn_stride=[8, 16],
                                      nms=MultiClassNMS(score_threshold=0.05, keep_top_k=100, nms_threshold=0.6))

    def forward(self, x, targets=None):
        f8 = self.c8(x)
        return self.head([f8, self.c16(f8)], targets)


def _coco_map(model, coco, cats, ids, images):
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval
    model.eval()
    with paddle.no_grad():
        bbox, num = model.head.post_process(model(images), paddle.ones([len(ids), 2]))
    model.train()
    bbox, num = bbox.numpy(), num.numpy()
    results, start = [], 0
    for image_id, count in zip(ids, num):
        for r in bbox[start:start + count]:
            results.append({"image_id": image_id, "category_id": cats[int(r[0])], "score": float(r[1]),
                            "bbox": [float(r[2]), float(r[3]), float(r[4] - r[2]), float(r[5] - r[3])]})
        start += count
    if not results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(results), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


@pytest.mark.slow
def test_short_training_reduces_loss_and_raises_map(tmp_path):
    """100 Adam steps on 12 generated 64 px images (overfitting them): mAP on those images must rise well
    above the untrained model's (about 0). The longer CPU run of the real config is in docs/autoassign.md."""
    coco, cats, ids, images, targets = _load_coco_split(tmp_path)
    paddle.seed(0)
    model = TinyDetector(len(cats))
    map_before = _coco_map(model, coco, cats, ids, images)
    opt = paddle.optimizer.Adam(learning_rate=3e-3, parameters=model.parameters())
    history = []
    for _ in range(100):
        loss = model(images, targets)["loss"]
        loss.backward()
        opt.step()
        opt.clear_grad()
        history.append(float(loss))
    map_after = _coco_map(model, coco, cats, ids, images)
    print("mAP before/after", map_before, map_after, "loss", np.mean(history[:10]), np.mean(history[-10:]))
    assert np.mean(history[-10:]) < 0.6 * np.mean(history[:10])
    assert map_after > map_before + 0.2, (map_before, map_after)


# ------------------------------------------------------------------------------------------------- export
def test_exported_model_boxes_equal_dygraph_boxes(tmp_path):
    """tools/export_model.py's library call on the synthetic config with a dynamic image size (as the COCO
    config exports), then Paddle Inference vs dygraph."""
    from ppassign.engine.config import build_model, load_config
    from ppassign.data.synthetic import make_synthetic_coco
    image_dir, anno = make_synthetic_coco(tmp_path / "data", "val", num_images=1, image_size=128, seed=0)
    overrides = ["TestReader.inputs_def.image_shape=[3,-1,-1]", f"TestDataset.anno_path={anno}", f"EvalDataset.dataset_dir={tmp_path / 'data'}",
                 "EvalDataset.num_images=1", "EvalDataset.image_size=128"]
    cfg = load_config(CONFIG, overrides)
    paddle.seed(0)
    model = build_model(cfg)
    # untrained scores sit below NMS's score threshold: lift P(cls | obj) to 0.5 so that boxes come out
    model.fcos_head.cls_conv.bias.set_value(paddle.zeros_like(model.fcos_head.cls_conv.bias))
    dygraph, exported = export_and_predict(CONFIG, overrides, model, image_dir, tmp_path)
    assert len(dygraph) > 10
    np.testing.assert_allclose(exported, dygraph, rtol=1e-4, atol=1e-3)


def test_coco_config_carries_the_papers_settings():
    from ppdet.core.workspace import create
    from ppassign.engine.config import load_config
    cfg = load_config(os.path.join(os.path.dirname(CONFIG), "autoassign_r50_fpn_1x_coco.yml"))
    assert cfg.architecture == "FCOS" and cfg.FCOS["fcos_head"] == "AutoAssignHead"
    assert cfg.ResNet["depth"] == 50 and cfg.num_classes == 80
    assert cfg.LearningRate["base_lr"] == 0.01 and cfg.epoch == 12
    assert cfg.LearningRate["schedulers"][0].milestones == [8, 11]
    assert cfg.TrainReader["batch_size"] * 8 == 16
    assert cfg.AutoAssignHead["nms"]["nms_threshold"] == 0.6
    head = create(cfg.architecture).fcos_head
    assert head.fpn_stride == [8, 16, 32, 64, 128]
    assert (head.temperature, head.loc_weight) == (aa.TEMPERATURE, aa.LOC_WEIGHT) == (1 / 3, 5.0)


def test_normalisers_are_averaged_across_ranks(monkeypatch):
    """With 2 ranks the object count and prior mass are all-reduced and divided by the world size."""
    case = fixed_case()
    head = make_head()
    single = {k: float(v) for k, v in head.get_loss(to_outs(case), targets_of(case)).items()}
    reduced = []

    def fake_all_reduce(x):  # the other rank holds 3x this rank's value
        reduced.append(float(x))
        x.set_value(x * 4)
    monkeypatch.setattr(fb.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(fb.dist, "all_reduce", fake_all_reduce)
    multi = {k: float(v) for k, v in head.get_loss(to_outs(case), targets_of(case)).items()}
    assert len(reduced) == 2 and reduced[0] == 3.0  # number of objects, then prior mass
    np.testing.assert_allclose(multi["loss_pos"], single["loss_pos"] / 2, rtol=1e-6)
    np.testing.assert_allclose(multi["loss_neg"], single["loss_neg"] / 2, rtol=1e-6)
    np.testing.assert_allclose(multi["loss_center"], single["loss_center"], rtol=1e-6)
