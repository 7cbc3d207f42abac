"""PPAssignFCOSRuleAssigner: FCOS's spatial and scale constraint on anchor centres."""
import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.assigners import FCOSRuleAssigner
from retina_cases import assert_batch_equals_per_image, np_fcos, random_boxes, retina_anchors, t

STRIDES = (8, 16, 32)
SIZES = [[-1, 64], [64, 128], [128, np.inf]]


def run(gt, anchors, counts, radius=1.5, sizes=SIZES):
    m, lab = FCOSRuleAssigner(STRIDES, sizes, radius)(t(anchors), t(np.asarray(gt, "float32").reshape(-1, 4)),
                                                       num_anchors_list=counts)
    return m.numpy(), lab.numpy()


def test_hand_counted_one_level():
    # one level, stride 8: locations at x, y in {0, 8, 16, 24}; object [2, 2, 20, 14], centre (11, 8)
    anchors, counts = retina_anchors(32, strides=(8,))
    gt = np.array([[2, 2, 20, 14]], "float32")
    m, lab = FCOSRuleAssigner((8,), [[-1, np.inf]], 0.0)(t(anchors), t(gt), num_anchors_list=counts)
    grid = lab.numpy().reshape(4, 4)
    # inside the box: x in {8, 16}, y in {8}
    assert grid.tolist() == [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    # radius 0.5 (4 px around the centre): x in (7, 15), y in (4, 12) -> only (8, 8)
    m, lab = FCOSRuleAssigner((8,), [[-1, np.inf]], 0.5)(t(anchors), t(gt), num_anchors_list=counts)
    assert lab.numpy().reshape(4, 4)[1].tolist() == [0, 1, 0, 0] and lab.numpy().sum() == 1


def test_scale_range_picks_the_level_and_ambiguity_goes_to_the_smallest():
    anchors, counts = retina_anchors(128, strides=STRIDES)
    big = np.array([[0, 0, 120, 120]], "float32")       # max distance >= 64 at every location: not on P3
    m, lab = run(big, anchors, counts, radius=0.0)
    level = np.repeat(np.arange(3), counts)
    assert lab[level == 0].sum() == 0 and lab[level > 0].sum() > 0
    nested = np.array([[0, 0, 60, 60], [20, 20, 40, 40]], "float32")
    m, lab = run(nested, anchors, counts, radius=0.0)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    both = (lab == 1) & (centres > 20).all(1) & (centres < 40).all(1)
    assert both.any() and (m[both] == 1).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("radius", [0.0, 1.5])
def test_matches_numpy_reference(seed, radius):
    rng = np.random.default_rng(seed)
    anchors, counts = retina_anchors(160, strides=STRIDES, scales=(4.0, 6.35))
    gt = random_boxes(rng, int(rng.integers(1, 10)), 160)
    m, lab = run(gt, anchors, counts, radius)
    rm, rp = np_fcos(gt, anchors, counts, STRIDES, SIZES, radius)
    np.testing.assert_array_equal(lab, rp.astype("int32"))
    np.testing.assert_array_equal(m[rp], rm[rp])


def test_corner_cases():
    anchors, counts = retina_anchors(64, strides=STRIDES)
    m, lab = run(np.zeros((0, 4)), anchors, counts)
    assert (lab == 0).all()
    gt = np.array([[8, 8, 8, 30], [16, 16, 16.1, 16.1], [-30, -30, -10, -10]], "float32")
    m, lab = run(gt, anchors, counts)
    rm, rp = np_fcos(gt, anchors, counts, STRIDES, SIZES, 1.5)
    np.testing.assert_array_equal(lab, rp.astype("int32"))


def test_default_ranges_follow_fcos_and_bad_arguments_raise():
    assert FCOSRuleAssigner().sizes[:2] == [[-1, 64], [64, 128]] and FCOSRuleAssigner((8, 16)).sizes[1][1] == np.inf
    with pytest.raises(ValueError, match="object_sizes_of_interest"):
        FCOSRuleAssigner((8, 16), [[0, 64]])
    with pytest.raises(ValueError, match="strides"):
        FCOSRuleAssigner((0, 8))
    anchors, counts = retina_anchors(64, strides=STRIDES)
    with pytest.raises(ValueError, match="levels"):
        FCOSRuleAssigner((8, 16))(t(anchors), t(np.array([[0, 0, 9, 9]], "float32")), num_anchors_list=counts)



@pytest.mark.parametrize("seed", range(3))
def test_assign_batch_equals_per_image_assign(seed):
    rule = FCOSRuleAssigner(strides=(8, 16, 32), object_sizes_of_interest=[[-1, 16], [16, 32], [32, 1e8]])
    assert_batch_equals_per_image(rule, seed)
