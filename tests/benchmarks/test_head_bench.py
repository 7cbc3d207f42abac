"""benchmarks.head_bench (tools/bench_heads.py): the inputs it feeds and the table it prints."""
import numpy as np

from benchmarks import head_bench as bench_heads


class _HeadShape:
    in_channels, fpn_stride, num_classes = 8, [8, 16, 32], 5


def test_make_batch_pads_gt_and_leaves_image_one_empty():
    feats, targets = bench_heads.make_batch(_HeadShape(), 4, image_size=128, seed=3)
    assert [list(f.shape) for f in feats] == [[4, 8, 16, 16], [4, 8, 8, 8], [4, 8, 4, 4]]
    mask = targets["pad_gt_mask"].numpy()[..., 0]
    counts = mask.sum(1)
    assert counts[1] == 0 and all(2 <= c <= 8 for i, c in enumerate(counts) if i != 1)
    assert mask.shape[1] == counts.max()  # padded to the largest count, as PadGT
    boxes = targets["gt_bbox"].numpy()[mask > 0]
    assert (boxes[:, 2:] > boxes[:, :2]).all() and boxes.min() >= 0 and boxes.max() <= 128
    assert (targets["gt_bbox"].numpy()[mask == 0] == 0).all()
    labels = targets["gt_class"].numpy()[..., 0][mask > 0]
    assert labels.min() >= 0 and labels.max() < 5
    _, fixed = bench_heads.make_batch(_HeadShape(), 4, image_size=128, seed=3, num_slots=9)
    assert fixed["gt_bbox"].shape == [4, 9, 4]


def test_markdown_table_side_by_side_and_growth():
    row = dict(head="H", host_copies=3, shape_syncs=0, seconds=0.5)
    after = [dict(row, batch=2, operators=100), dict(row, batch=16, operators=120)]
    before = [dict(row, batch=2, operators=100, seconds=1.0), dict(row, batch=16, operators=800)]
    table = bench_heads.markdown_table(after, before).splitlines()
    assert table[0].startswith("| head | B | operators / step")
    assert table[3] == "| H | 16 | 800 -> 120 | 3 -> 3 | 0 -> 0 | 0.500 -> 0.500 |"
    assert "| 100 |" in bench_heads.markdown_table(after).splitlines()[2]
    np.testing.assert_allclose(bench_heads.growth(after)["H"], 1.2)
    np.testing.assert_allclose(bench_heads.growth(before)["H"], 8.0)
