"""A user's own COCO dataset with images of mixed sizes, swapped into every shipped CPU config (README "Your own
data"): train -> export -> infer works, detections carry the dataset's category ids, and a reader that cannot
batch the images ends tools/train.py with one error line and a non-zero exit instead of a hang."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.engine import export, predict, train
from ppassign.engine.common import PipelineError
import own_data_cases

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# (height, width) of the user's images: none alike, none square, none a multiple of 32
IMAGE_SIZES = [(96, 160), (200, 120), (130, 130), (150, 90)]
CATEGORIES = [{"id": 3, "name": "square"}, {"id": 7, "name": "bar"}]  # COCO ids need not start at 1
# Every shipped config that trains on a CPU, and how to make its model predict anything after 2 iterations.
CPU_CONFIGS = {
    "quickstart/quickstart_tal.yml": ["PPYOLOEHead.nms.score_threshold=0.0"],
    "ppyoloe/ppyoloe_plus_tiny_synthetic.yml": ["PPYOLOEHead.nms.score_threshold=0.0"],
    "picodet/picodet_tiny_synthetic.yml": ["PicoHeadV2.nms.score_threshold=0.0"],
    "tood/tood_tiny_synthetic.yml": ["TOODHead.nms.score_threshold=0.0"],
    "autoassign/autoassign_synthetic.yml": ["AutoAssignHead.nms.score_threshold=0.0"],
    "dw/dw_synthetic.yml": ["DWHead.nms.score_threshold=0.0"],
    "../benchmarks/configs/atss_only.yml": ["MultiClassNMS.score_threshold=0.0"],
}


def make_mixed_coco(root):
    """Write `root`/images/*.jpg (IMAGE_SIZES) and `root`/annotations/instances.json; returns root."""
    import cv2
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for index, (height, width) in enumerate(IMAGE_SIZES):
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        for k, category in enumerate(CATEGORIES):
            w, h = (width // 3, height // 3) if k == 0 else (width // 2, height // 6)
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            image[y:y + h, x:x + w] = (200, 80 + 100 * k, 40)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category["id"],
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
        name = f"{index:04d}.jpg"
        cv2.imwrite(os.path.join(root, "images", name), image)
        images.append({"id": index + 1, "file_name": name, "height": height, "width": width})
    with open(os.path.join(root, "annotations", "instances.json"), "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": CATEGORIES}, f)
    return root


def write_user_config(path, shipped, dataset_root, extra=""):
    """What README "Your own data" tells a user to write, on the shipped config `shipped` (under configs/)."""
    return own_data_cases.write_user_config(path, os.path.join(REPO, "configs", shipped), dataset_root, extra)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_mixed_coco(str(tmp_path_factory.mktemp("own_data")))


def short_run(work):
    return ["epoch=1", "snapshot_epoch=1", "log_iter=1", "TrainReader.batch_size=2", "EvalReader.batch_size=2",
            f"save_dir={work}"]


@pytest.mark.slow
@pytest.mark.parametrize("shipped", sorted(CPU_CONFIGS))
def test_shipped_config_trains_exports_and_infers_on_mixed_size_coco(shipped, dataset, tmp_path):
    config = write_user_config(tmp_path / "mine.yml", shipped, dataset)
    overrides = short_run(tmp_path / "out") + CPU_CONFIGS[shipped]
    result = train.train(config, overrides, eval=True)
    assert os.path.isfile(result["weights"] + ".pdparams") and result["metrics"] is not None
    model_dir = export.export(config, overrides + [f"weights={result['weights']}"],
                              output_dir=str(tmp_path / "inference"))
    detections = predict.infer(model_dir=model_dir, infer_dir=os.path.join(dataset, "images"),
                               output_dir=str(tmp_path / "infer"), draw_threshold=0.0)
    assert {d["image"] for d in detections} <= {f"{i:04d}.jpg" for i in range(len(IMAGE_SIZES))}
    assert {d["category_id"] for d in detections} <= {3, 7}
    assert {d["category"] for d in detections} <= {"square", "bar"}
    with open(os.path.join(str(tmp_path / "infer"), "detections.json")) as f:
        assert json.load(f) == detections


@pytest.mark.slow
def test_detections_carry_the_dataset_category_ids_not_class_indices(dataset, tmp_path):
    config = write_user_config(tmp_path / "mine.yml", "quickstart/quickstart_tal.yml", dataset)
    overrides = short_run(tmp_path / "out") + ["PPYOLOEHead.nms.score_threshold=0.0", "width_mult=0.125"]
    weights = train.train(config, overrides)["weights"]
    kwargs = dict(infer_dir=os.path.join(dataset, "images"), draw_threshold=0.0)
    dygraph = predict.infer(config=config, overrides=overrides + [f"weights={weights}"],
                            output_dir=str(tmp_path / "dygraph"), **kwargs)
    model_dir = export.export(config, overrides + [f"weights={weights}"], output_dir=str(tmp_path / "inference"))
    exported = predict.infer(model_dir=model_dir, output_dir=str(tmp_path / "exported"), **kwargs)
    for detections in (dygraph, exported):
        assert detections and {d["category_id"] for d in detections} == {3, 7}
        assert all(d["category"] == {3: "square", 7: "bar"}[d["category_id"]] for d in detections)


# The quickstart's reader as it was (no Resize): ppdet's collate cannot stack images of different sizes.
READER_WITHOUT_RESIZE = """
TrainReader:
  sample_transforms:
    - Decode: {}
  batch_transforms:
    - NormalizeImage: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], is_scale: true}
    - Permute: {}
    - PadGT: {}
  batch_size: 4
"""


def test_reader_without_resize_fails_with_one_line_within_seconds(dataset, tmp_path):
    config = write_user_config(tmp_path / "mine.yml", "quickstart/quickstart_tal.yml", dataset,
                               extra=READER_WITHOUT_RESIZE)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    tic = time.time()
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "train.py"), "-c", config,
                           "-o", f"save_dir={tmp_path / 'out'}"], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert time.time() - tic < 120
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-3000:]
    assert "data loading failed" in errors[0] and "Resize" in errors[0], errors[0]
    assert "Traceback" not in proc.stderr


def test_data_loading_error_is_a_pipeline_error_in_process(dataset, tmp_path):
    config = write_user_config(tmp_path / "mine.yml", "quickstart/quickstart_tal.yml", dataset,
                               extra=READER_WITHOUT_RESIZE)
    with pytest.raises(PipelineError, match="data loading failed in TrainReader"):
        train.train(config, [f"save_dir={tmp_path / 'out'}"])
