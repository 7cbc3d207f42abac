"""The shipped PP-YOLOE+, PicoDet and TOOD configs: PaddleDetection's settings with ppassign's assigners.

Configs are loaded the way tools/train.py loads them (ppassign.engine.config.load_config, ``-o`` overrides).
"""
import os

import pytest
from ppdet.core.workspace import create

import ppassign
from ppassign.engine.config import load_config

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs")
COCO = {
    "ppyoloe": os.path.join(CONFIGS, "ppyoloe", "ppyoloe_plus_crn_s_80e_coco.yml"),
    "picodet": os.path.join(CONFIGS, "picodet", "picodet_s_416_coco_lcnet.yml"),
    "tood": os.path.join(CONFIGS, "tood", "tood_r50_fpn_1x_coco.yml"),
}
TINY = {
    "ppyoloe": os.path.join(CONFIGS, "ppyoloe", "ppyoloe_plus_tiny_synthetic.yml"),
    "picodet": os.path.join(CONFIGS, "picodet", "picodet_tiny_synthetic.yml"),
    "tood": os.path.join(CONFIGS, "tood", "tood_tiny_synthetic.yml"),
}
HEAD_SECTION = {"ppyoloe": "PPYOLOEHead", "picodet": "PicoHeadV2", "tood": "TOODHead"}

# Facts from PaddleDetection v2.6.0's configs (configs/<family>/<name>.yml and their _base_ files).
PADDLEDET_SETTINGS = {
    "ppyoloe": {"epoch": 80, "base_lr": 0.001, "batch_size": 8, "static_assigner_epoch": 30,
                "pretrain_weights": "https://bj.bcebos.com/v1/paddledet/models/pretrained/"
                                    "ppyoloe_crn_s_obj365_pretrained.pdparams"},
    "picodet": {"epoch": 300, "base_lr": 0.24, "batch_size": 48, "static_assigner_epoch": 100,
                "pretrain_weights": "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
                                    "legendary_models/PPLCNet_x0_75_pretrained.pdparams"},
    "tood": {"epoch": 12, "base_lr": 0.01, "batch_size": 4, "static_assigner_epoch": 4,
             "pretrain_weights": "https://paddledet.bj.bcebos.com/models/pretrained/"
                                 "ResNet50_cos_pretrained.pdparams"},
}
# Same in all three: ATSS topk 9; task-aligned topk 13, alpha 1, beta 6.
STATIC_ASSIGNER = {"name": "PPAssignATSSAssigner", "topk": 9}
ASSIGNER = {"name": "PPAssignTaskAlignedAssigner", "topk": 13, "alpha": 1.0, "beta": 6.0}


@pytest.mark.parametrize("family", sorted(COCO))
def test_coco_config_has_paddledetection_settings_and_our_assigners(family):
    cfg = load_config(COCO[family])
    expect = PADDLEDET_SETTINGS[family]
    head = cfg[HEAD_SECTION[family]]
    assert head["static_assigner_epoch"] == expect["static_assigner_epoch"]
    assert {k: head["static_assigner"][k] for k in STATIC_ASSIGNER} == STATIC_ASSIGNER
    assert {k: head["assigner"][k] for k in ASSIGNER} == ASSIGNER
    assert cfg.epoch == expect["epoch"]
    assert cfg.LearningRate["base_lr"] == expect["base_lr"]
    assert cfg.TrainReader["batch_size"] == expect["batch_size"]
    assert cfg.pretrain_weights == expect["pretrain_weights"]
    assert cfg.num_classes == 80 and cfg.metric == "COCO"


def _paths(dataset):
    """(dataset_dir, image_dir, anno_path) of a dataset section, a dict or the object ppdet/pipeline built."""
    keys = ("dataset_dir", "image_dir", "anno_path")
    if isinstance(dataset, dict):
        return tuple(dataset[k] for k in keys)
    return tuple(getattr(dataset, k) for k in keys)


@pytest.mark.parametrize("family", sorted(COCO))
def test_coco_config_reads_the_usual_coco_layout(family):
    cfg = load_config(COCO[family])
    assert _paths(cfg.TrainDataset) == ("dataset/coco", "train2017", "annotations/instances_train2017.json")
    assert _paths(cfg.EvalDataset) == ("dataset/coco", "val2017", "annotations/instances_val2017.json")


@pytest.mark.parametrize("family", sorted(COCO))
def test_pretrain_weights_can_be_switched_off_from_the_command_line(family):
    cfg = load_config(COCO[family], overrides=["pretrain_weights="])
    assert cfg.get("pretrain_weights") is None


@pytest.mark.parametrize("family", sorted(COCO))
def test_coco_config_builds_the_model_with_ppassign_assigners(family):
    cfg = load_config(COCO[family])
    model = create(cfg.architecture)
    head = getattr(model, "yolo_head", None) or model.head
    assert type(head).__name__ == HEAD_SECTION[family]
    assert isinstance(head.static_assigner, ppassign.ATSSAssigner)
    assert isinstance(head.assigner, ppassign.TaskAlignedAssigner)
    assert head.num_classes == 80


@pytest.mark.parametrize("family", sorted(TINY))
def test_tiny_config_keeps_the_recipe_on_the_synthetic_dataset(family):
    coco = load_config(COCO[family])
    coco_head = {k: dict(coco[HEAD_SECTION[family]][k]) for k in ("static_assigner", "assigner")}
    tiny = load_config(TINY[family])
    tiny_head = {k: dict(tiny[HEAD_SECTION[family]][k]) for k in ("static_assigner", "assigner")}
    assert tiny_head == coco_head
    assert type(tiny.TrainDataset).__name__ == "SyntheticCOCODataSet"
    assert tiny.get("pretrain_weights") is None
    assert tiny.worker_num == 0
