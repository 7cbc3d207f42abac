"""PPAssignFCOSHead: FCOS targets from a RetinaNet assigner on virtual anchors; with FCOS's rule, ppdet's targets."""
import numpy as np
import paddle
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import ATSSRetinaAssigner, FCOSRuleAssigner, NoisyAnchorAssigner
from ppassign.heads import PPAssignFCOSHead
from ppdet.data.transform.batch_operators import Gt2FCOSTarget
from ppdet.modeling.heads.fcos_head import FCOSFeat, FCOSHead
from ppdet.modeling.layers import MultiClassNMS
from ppdet.modeling.losses import FCOSLoss
from retina_cases import random_boxes

STRIDES = [8, 16, 32]
BOUNDARIES = [32, 64]          # 128 px images: P3 < 32, P4 32-64, P5 > 64
SIZES = [[-1, 32], [32, 64], [64, np.inf]]
NUM_CLASSES = 3
SIZE = 128


def make(cls, **kwargs):
    paddle.seed(0)
    head = cls(num_classes=NUM_CLASSES, fcos_feat=FCOSFeat(feat_in=8, feat_out=256, num_convs=1, norm_type="gn"),
               fpn_stride=STRIDES, fcos_loss=FCOSLoss(iou_loss_type="giou"), nms=MultiClassNMS(), **kwargs)
    head.train()
    return head


def fcos_rule():
    return FCOSRuleAssigner(strides=STRIDES, object_sizes_of_interest=SIZES, center_sampling_radius=1.5)


def batch(seed, num_images=3):
    rng = np.random.default_rng(seed)
    boxes = [random_boxes(rng, int(rng.integers(1, 6)), SIZE, min_size=6.0).clip(0, SIZE) for _ in range(num_images)]
    classes = [rng.integers(0, NUM_CLASSES, (len(b), 1)).astype("int32") for b in boxes]
    return boxes, classes


def reader_targets(boxes, classes):
    """Gt2FCOSTarget's per-level fields, stacked over the batch."""
    samples = [{"image": np.zeros((3, SIZE, SIZE), "float32"), "gt_bbox": b.copy(), "gt_class": c.copy()}
               for b, c in zip(boxes, classes)]
    samples = Gt2FCOSTarget(BOUNDARIES, 1.5, STRIDES, num_shift=0.5, norm_reg_targets=True)(samples)
    return {k: paddle.to_tensor(np.stack([s[k] for s in samples])) for k in samples[0] if k != "image"}


def padded(boxes, classes):
    num = max(len(b) for b in boxes)
    gt = np.zeros((len(boxes), num, 4), "float32")
    cls = np.zeros((len(boxes), num, 1), "int32")
    mask = np.zeros((len(boxes), num, 1), "float32")
    for i, (b, c) in enumerate(zip(boxes, classes)):
        gt[i, :len(b)], cls[i, :len(b)], mask[i, :len(b)] = b, c, 1
    return {"gt_bbox": paddle.to_tensor(gt), "gt_class": paddle.to_tensor(cls), "pad_gt_mask": paddle.to_tensor(mask)}


def features(batch_size, seed=0):
    rng = np.random.default_rng(seed)
    return [paddle.to_tensor(rng.normal(0, 1, (batch_size, 8, SIZE // s, SIZE // s)).astype("float32"))
            for s in STRIDES]


@pytest.mark.parametrize("seed", range(3))
def test_fcos_rule_gives_gt2fcostargets_targets(seed):
    boxes, classes = batch(seed)
    ref = reader_targets(boxes, classes)
    shapes = [(SIZE // s, SIZE // s) for s in STRIDES]
    labels, reg, ctn = make(PPAssignFCOSHead, assigner=fcos_rule()).build_targets(shapes, padded(boxes, classes), 3)
    for lvl in range(len(STRIDES)):
        ref_labels = ref[f"labels{lvl}"].numpy()
        np.testing.assert_array_equal(labels[lvl].numpy(), ref_labels)
        pos = ref_labels[..., 0] > 0
        np.testing.assert_allclose(reg[lvl].numpy()[pos], ref[f"reg_target{lvl}"].numpy()[pos], rtol=1e-6)
        np.testing.assert_allclose(ctn[lvl].numpy(), ref[f"centerness{lvl}"].numpy(), rtol=1e-5, atol=1e-7)
    assert sum(int((lab.numpy() > 0).sum()) for lab in labels) > 0


def test_fcos_rule_loss_and_gradients_equal_ppdets_fcos_head_with_reader_targets():
    boxes, classes = batch(7)
    ppdet_head = make(FCOSHead)
    ours = make(PPAssignFCOSHead, assigner=fcos_rule())
    ours.set_state_dict(ppdet_head.state_dict())
    feats = features(3)
    results = []
    for head, tgts in ((ppdet_head, reader_targets(boxes, classes)), (ours, padded(boxes, classes))):
        loss = head(feats, tgts)
        total = sum(v for k, v in loss.items() if k.startswith("loss"))
        total.backward()
        grads = {k: p.grad.numpy().copy() for k, p in head.named_parameters() if p.grad is not None}
        head.clear_gradients()
        results.append(({k: float(v) for k, v in loss.items()}, grads))
    (ref_loss, ref_grads), (got_loss, got_grads) = results
    assert got_loss.keys() == ref_loss.keys()
    for key in ref_loss:
        np.testing.assert_allclose(got_loss[key], ref_loss[key], rtol=1e-5, err_msg=key)
    for key in ref_grads:
        np.testing.assert_allclose(got_grads[key], ref_grads[key], rtol=1e-4, atol=1e-7, err_msg=key)


def _atss_targets_against_the_assigner(boxes, classes):
    """(head's positive flags [N*L], the assigner's own positives [N*L], whether each point lies inside the object
    the assigner gives it [N*L], the head's ltrb [N*L, 4], centerness [N*L], labels [N, L], assigner labels)."""
    n = len(boxes)
    head = make(PPAssignFCOSHead, assigner=ATSSRetinaAssigner(topk=9), anchor_scale=4.0)
    shapes = [(SIZE // s, SIZE // s) for s in STRIDES]
    labels, reg, ctn = head.build_targets(shapes, padded(boxes, classes), n)
    # the same assignment, called directly on 4S squares centred on the points
    pts = np.concatenate([np.stack(np.meshgrid(np.arange(h), np.arange(h), indexing="xy"), -1).reshape(-1, 2) * s
                          + s / 2 for (h, _), s in zip(shapes, STRIDES)]).astype("float32")
    half = np.concatenate([np.full(h * h, 2.0 * s) for (h, _), s in zip(shapes, STRIDES)])[:, None]
    anchors = paddle.to_tensor(np.concatenate([pts - half, pts + half], 1).astype("float32"))
    flat = np.concatenate([lab.numpy().reshape(n, -1) for lab in labels], axis=1)
    expected, assigner_positive, inside = [], [], []
    for b, c in zip(boxes, classes):
        m, lab = ATSSRetinaAssigner(topk=9)(anchors, paddle.to_tensor(b), num_anchors_list=[h * h for h, _ in shapes])
        m, lab = m.numpy(), lab.numpy()
        box = b[m]
        within = (pts[:, 0] > box[:, 0]) & (pts[:, 0] < box[:, 2]) & (pts[:, 1] > box[:, 1]) & (pts[:, 1] < box[:, 3])
        expected.append(np.where((lab == 1) & within, c[m, 0] + 1, 0))
        assigner_positive.append(lab == 1)
        inside.append(within)
    ltrb = np.concatenate([r.numpy().reshape(n, -1, 4) for r in reg], axis=1).reshape(-1, 4)
    centers = np.concatenate([x.numpy().reshape(n, -1) for x in ctn], axis=1).reshape(-1)
    return (flat.reshape(-1) > 0, np.concatenate(assigner_positive), np.concatenate(inside), ltrb, centers,
            flat, np.stack(expected))


def test_atss_targets_are_the_assigners_positives_on_virtual_anchors():
    positive, _, _, ltrb, centers, flat, expected = _atss_targets_against_the_assigner(*batch(3))
    np.testing.assert_array_equal(flat, expected)
    assert positive.any() and (ltrb[positive] > 0).all()
    assert (centers[positive] > 0).all() and (centers[positive] <= 1).all() and (centers[~positive] == 0).all()


def test_atss_positives_whose_point_is_outside_their_object_are_negatives():
    # Crowded, overlapping objects: ATSS gives an anchor claimed by several objects to the one of highest IoU
    # among all objects, which need not contain the anchor's point; FCOS has no distances to regress there.
    dropped = 0
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        boxes = [random_boxes(rng, 40, SIZE, min_size=6.0).clip(0, SIZE) for _ in range(2)]
        classes = [rng.integers(0, NUM_CLASSES, (len(b), 1)).astype("int32") for b in boxes]
        positive, assigner_positive, inside, ltrb, centers, flat, expected = _atss_targets_against_the_assigner(
            boxes, classes)
        np.testing.assert_array_equal(flat, expected)
        assert np.isfinite(ltrb).all() and np.isfinite(centers).all()
        assert (ltrb[positive] > 0).all() and (centers[positive] > 0).all()
        dropped += int((assigner_positive & ~inside).sum())
    assert dropped > 0          # the case occurs in these scenes (else this test would check nothing)


def test_batch_without_objects_gets_background_targets():
    # (FCOSLoss itself divides by the number of positives, with ppdet's reader targets too)
    head = make(PPAssignFCOSHead, assigner=ATSSRetinaAssigner())
    tgts = {"gt_bbox": paddle.zeros([2, 0, 4]), "gt_class": paddle.zeros([2, 0, 1], "int32"),
            "pad_gt_mask": paddle.zeros([2, 0, 1])}
    labels, reg, ctn = head.build_targets([(SIZE // s, SIZE // s) for s in STRIDES], tgts, 2)
    assert [list(x.shape) for x in labels] == [[2, 16, 16, 1], [2, 8, 8, 1], [2, 4, 4, 1]]
    assert all((x.numpy() == 0).all() for x in labels + ctn) and all(np.isfinite(x.numpy()).all() for x in reg)


def test_assigners_that_need_predictions_or_are_not_ppassigns_are_refused():
    with pytest.raises(ValueError, match="predictions"):
        make(PPAssignFCOSHead, assigner=NoisyAnchorAssigner())
    with pytest.raises(ValueError, match="assign_batch"):
        make(PPAssignFCOSHead, assigner=object())
