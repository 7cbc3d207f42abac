"""The built-in synthetic dataset: deterministic, pycocotools-loadable, all size scales, cached, ppdet-usable."""
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

import ppassign  # noqa: F401  (registers SyntheticCOCODataSet)
from ppassign.data import CLASS_NAMES, make_synthetic_coco
from ppassign.data.synthetic import MAX_ASPECT


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_same_seed_gives_identical_files(tmp_path):
    d1, a1 = make_synthetic_coco(tmp_path / "a", num_images=4, image_size=96, seed=3)
    d2, a2 = make_synthetic_coco(tmp_path / "b", num_images=4, image_size=96, seed=3)
    assert _read(a1) == _read(a2)
    for name in sorted(os.listdir(d1)):
        assert _read(os.path.join(d1, name)) == _read(os.path.join(d2, name))


def test_other_seed_or_split_gives_other_images(tmp_path):
    d1, _ = make_synthetic_coco(tmp_path / "a", num_images=2, image_size=96, seed=0)
    d2, _ = make_synthetic_coco(tmp_path / "b", num_images=2, image_size=96, seed=1)
    d3, _ = make_synthetic_coco(tmp_path / "a", split="val", num_images=2, image_size=96, seed=0)
    first = _read(os.path.join(d1, "000000.png"))
    assert first != _read(os.path.join(d2, "000000.png"))
    assert first != _read(os.path.join(d3, "000000.png"))


def test_loadable_by_pycocotools_with_valid_boxes(tmp_path):
    image_dir, anno = make_synthetic_coco(tmp_path, num_images=8, image_size=128)
    coco = COCO(anno)
    assert len(coco.getImgIds()) == 8
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASS_NAMES)
    assert len(coco.getAnnIds()) >= 8
    for ann in coco.loadAnns(coco.getAnnIds()):
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 128 and y + h <= 128
        assert 0 < ann["area"] <= w * h
    for img in coco.loadImgs(coco.getImgIds()):
        assert os.path.isfile(os.path.join(image_dir, img["file_name"]))


def test_objects_span_all_fpn_scales_aspects_and_classes(tmp_path):
    _, anno = make_synthetic_coco(tmp_path, num_images=32, image_size=256)
    anns = json.load(open(anno))["annotations"]
    boxes = np.array([a["bbox"] for a in anns], dtype=float)
    sizes = np.sqrt(boxes[:, 2] * boxes[:, 3])
    assert sizes.min() < 12  # below the stride-8 cell pair
    assert ((sizes > 32) & (sizes < 96)).any()  # medium (stride 16)
    assert sizes.max() > 128  # half the image and more (stride 32)
    aspect = boxes[:, 2] / boxes[:, 3]
    assert aspect.min() < 1 / (MAX_ASPECT - 1.5) and aspect.max() > MAX_ASPECT - 1.5
    assert {a["category_id"] for a in anns} == set(range(1, len(CLASS_NAMES) + 1))


def test_images_contain_overlapping_objects(tmp_path):
    _, anno = make_synthetic_coco(tmp_path, num_images=16, image_size=256)
    coco = COCO(anno)
    overlapping = 0
    for img_id in coco.getImgIds():
        b = np.array([a["bbox"] for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))], dtype=float)
        x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
        iw = np.clip(np.minimum(x2[:, None], x2) - np.maximum(x1[:, None], x1), 0, None)
        ih = np.clip(np.minimum(y2[:, None], y2) - np.maximum(y1[:, None], y1), 0, None)
        overlapping += int(((iw * ih) > 0).sum() - len(b)) // 2
    assert overlapping >= 5


def test_cached_files_are_reused_and_regenerated_on_param_change(tmp_path):
    _, anno = make_synthetic_coco(tmp_path, num_images=3, image_size=64)
    mtime = os.stat(anno).st_mtime_ns
    make_synthetic_coco(tmp_path, num_images=3, image_size=64)
    assert os.stat(anno).st_mtime_ns == mtime
    make_synthetic_coco(tmp_path, num_images=4, image_size=64)
    assert len(json.load(open(anno))["images"]) == 4


def test_missing_image_triggers_regeneration(tmp_path):
    image_dir, _ = make_synthetic_coco(tmp_path, num_images=2, image_size=64)
    os.remove(os.path.join(image_dir, "000001.png"))
    make_synthetic_coco(tmp_path, num_images=2, image_size=64)
    assert os.path.isfile(os.path.join(image_dir, "000001.png"))


@pytest.mark.parametrize("kwargs, name", [({"num_images": 0}, "num_images"), ({"image_size": 8}, "image_size"),
                                          ({"seed": -1}, "seed"), ({"split": ""}, "split"),
                                          ({"min_object_size": 200, "image_size": 128}, "min_object_size")])
def test_bad_parameters_raise_value_error_naming_them(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        make_synthetic_coco(tmp_path, **kwargs)


def test_ppdet_dataset_class_generates_on_first_use(tmp_path):
    from ppdet.core.workspace import create, global_config
    assert "SyntheticCOCODataSet" in global_config
    from ppassign.data import SyntheticCOCODataSet
    ds = SyntheticCOCODataSet(dataset_dir=str(tmp_path), split="val", num_images=3, image_size=64,
                              data_fields=["image", "gt_bbox", "gt_class", "is_crowd"])
    assert os.path.isfile(ds.get_anno())
    ds.check_or_download_dataset()
    ds.parse_dataset()
    assert len(ds.roidbs) == 3
    assert ds.roidbs[0]["gt_bbox"].shape[1] == 4


def test_override_of_constructed_dataset_takes_effect(tmp_path):
    from ppassign.data import SyntheticCOCODataSet
    ds = SyntheticCOCODataSet(dataset_dir=str(tmp_path), num_images=3, image_size=64)
    ds.split, ds.num_images = "val", 2
    assert ds.get_anno().endswith(os.path.join("annotations", "val.json"))
    assert len(json.load(open(ds.get_anno()))["images"]) == 2
