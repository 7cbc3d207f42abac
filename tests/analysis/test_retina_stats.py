"""ppassign.analysis.retina_stats / tools/retina_assign_stats.py: positives per object of the RetinaNet rules."""
import json

import pytest

import ppassign  # noqa: F401
from ppassign.analysis import retina_stats


def coco(tmp_path, boxes, size=64):
    data = {"images": [{"id": 1, "width": size, "height": size, "file_name": "a.png"}],
            "annotations": [{"id": i, "image_id": 1, "bbox": b, "category_id": 1, "iscrowd": 0}
                            for i, b in enumerate(boxes)], "categories": [{"id": 1, "name": "x"}]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_topk_gives_every_isolated_object_k_positives_and_rows_cover_both_anchor_sets(tmp_path):
    rows = retina_stats.positive_stats(coco(tmp_path, [[4, 4, 50, 50], [40, 40, 10, 12]]))
    assert [(r["anchors"], r["rule"]) for r in rows][:4] == [("A=1", "max-IoU"), ("A=1", "top-k"), ("A=1", "ATSS"),
                                                              ("A=1", "FCOS rule")]
    assert len(rows) == 8 and all(r["objects"] == 2 for r in rows)
    topk9 = next(r for r in rows if r["anchors"] == "A=9" and r["rule"] == "top-k")
    assert topk9["medium"] == 9 and topk9["no_positive"] == 0.0
    assert "| A=9 | top-k |" in retina_stats.markdown(rows)


def test_images_of_different_sizes_are_refused(tmp_path):
    path = coco(tmp_path, [[4, 4, 20, 20]])
    data = json.loads(open(path).read())
    data["images"].append({"id": 2, "width": 128, "height": 128, "file_name": "b.png"})
    open(path, "w").write(json.dumps(data))
    with pytest.raises(ValueError, match="one size"):
        retina_stats.positive_stats(path)
