"""RetinaNet with ppassign's assigners end to end on a tiny generated dataset: train -> eval -> export -> infer,
and every shipped RetinaNet config (COCO settings, synthetic, the ppdet-head swap) loads / trains."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ppassign  # noqa: F401
from ppassign.engine.config import load_config
from ppassign.engine.evaluate import evaluate
from ppassign.engine.export import export
from ppassign.engine.predict import DygraphPredictor, ExportedPredictor, read_image
from ppassign.engine.train import train

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RETINA = os.path.join(REPO, "configs", "retinanet")
CONFIG = os.path.join(RETINA, "retinanet_synthetic.yml")
METHODS = {"maxiou": "PPAssignMaxIoUAssigner", "topk": "PPAssignTopKAssigner", "atss": "PPAssignATSSRetinaAssigner",
           "fcos_rule": "PPAssignFCOSRuleAssigner", "noisy_anchor": "PPAssignNoisyAnchorAssigner",
           "hambox": "PPAssignHAMBoxAssigner"}


def synthetic(method):
    return CONFIG if method == "maxiou" else os.path.join(RETINA, f"retinanet_synthetic_{method}.yml")


def coco(method):
    name = "retinanet_r50_fpn_1x_coco" + ("" if method == "maxiou" else f"_{method}")
    return os.path.join(RETINA, name + ".yml")


def tiny_overrides(dataset_dir, head="PPAssignRetinaHead"):
    """1 epoch of 8 images of 64 px."""
    out = ["epoch=1", "snapshot_epoch=1", "log_iter=1", "TrainReader.batch_size=4", "EvalReader.batch_size=4",
           f"{head}.nms.score_threshold=0.0", f"{head}.nms.keep_top_k=20"]
    for split, count in (("TrainDataset", 8), ("EvalDataset", 4)):
        out += [f"{split}.dataset_dir={dataset_dir}", f"{split}.num_images={count}", f"{split}.image_size=64"]
    return out


def run_tool(tool, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("retina")
    overrides = tiny_overrides(work / "dataset")
    proc = run_tool("train.py", "-c", CONFIG, "--eval", "--output_dir", str(work / "out"), "-o", *overrides, cwd=work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return work, overrides, str(work / "out" / "retinanet_synthetic" / "model_final"), proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_with_eval_writes_weights_and_metrics(trained):
    _, _, weights, log = trained
    assert os.path.isfile(weights + ".pdparams")
    assert "final COCO bbox mAP(0.50:0.95) = " in log


@pytest.mark.slow
def test_eval_export_and_inference_match_dygraph(trained):
    work, overrides, weights, _ = trained
    metrics = evaluate(CONFIG, overrides + [f"weights={weights}"])
    assert 0.0 <= metrics["mAP"] <= metrics["AP50"] <= 1.0
    model_dir = export(CONFIG, overrides + [f"weights={weights}"], output_dir=str(work / "inference"))
    assert {"model.pdiparams", "infer_cfg.yml"} <= set(os.listdir(model_dir))
    image_dir, _ = load_config(CONFIG, overrides)["EvalDataset"].generate()
    image = read_image(os.path.join(image_dir, "000000.png"))
    exported = ExportedPredictor(model_dir).predict(image)
    dygraph = DygraphPredictor(CONFIG, overrides + [f"weights={weights}"]).predict(image)
    assert exported.ndim == 2 and exported.shape[1] == 6 and len(exported) > 0
    np.testing.assert_allclose(exported, dygraph, atol=1e-4, rtol=1e-4)
    out = work / "infer_exported"
    proc = run_tool("infer.py", "--model_dir", model_dir, "--infer_img", os.path.join(image_dir, "000001.png"),
                    "--output_dir", str(out), "--draw_threshold", "0.0", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.load(open(out / "detections.json"))


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in METHODS if m != "maxiou"])
def test_every_assigner_config_trains_a_step(method, tmp_path):
    result = train(synthetic(method), tiny_overrides(tmp_path / "dataset") + ["epoch=1"],
                            output_dir=str(tmp_path / "out"))
    assert os.path.isfile(result["weights"] + ".pdparams")


@pytest.mark.slow
def test_ppdets_own_retina_head_trains_with_our_max_iou(tmp_path):
    config = os.path.join(REPO, "configs", "swap_examples", "retinanet_ppdet_head_synthetic.yml")
    cfg = load_config(config)
    assert cfg["RetinaNet"]["head"] == "RetinaHead" and cfg["RetinaHead"]["bbox_assigner"]["name"] == \
        "PPAssignMaxIoUAssigner"
    result = train(config, tiny_overrides(tmp_path / "dataset", head="RetinaHead"),
                            output_dir=str(tmp_path / "out"))
    assert os.path.isfile(result["weights"] + ".pdparams")


@pytest.mark.parametrize("method", list(METHODS))
def test_coco_configs_have_paddledetection_settings_and_build(method):
    from ppdet.core.workspace import create
    cfg = load_config(coco(method))
    head = cfg["PPAssignRetinaHead"]
    assert cfg.architecture == "RetinaNet" and cfg["RetinaNet"]["head"] == "PPAssignRetinaHead"
    assert head["bbox_assigner"] == METHODS[method]
    assert cfg.epoch == 12 and cfg.LearningRate["base_lr"] == 0.01 and cfg.TrainReader["batch_size"] == 2
    assert cfg.num_classes == 80 and cfg["FPN"]["out_channel"] == 256 and cfg["ResNet"]["depth"] == 50
    # focal alpha: RetinaNet's 0.25; the noisy-anchor authors' configs use 0.5
    assert head["loss_class"]["alpha"] == (0.5 if method == "noisy_anchor" else 0.25)
    assert head["loss_bbox"]["beta"] == 0.0
    anchors = head["anchor_generator"]
    assert len(anchors["aspect_ratios"]) * anchors["scales_per_octave"] == (1 if method in ("atss", "fcos_rule")
                                                                            else 9)
    model = create(cfg.architecture)
    assert type(model.head.bbox_assigner).__name__ == METHODS[method]
