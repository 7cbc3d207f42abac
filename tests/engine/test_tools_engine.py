"""tools/ and ppassign.engine end to end on a tiny generated dataset: train -> eval -> export -> infer."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import ppassign  # noqa: F401
from ppassign.compat import quiet
from ppassign.engine import config, evaluate, export, predict
from ppassign.engine.common import PipelineError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "configs", "quickstart", "quickstart_tal.yml")
TOOLS = os.path.join(REPO, "tools")


def tiny_overrides(dataset_dir):
    """A 1-epoch, 8-image, narrow-model version of the quickstart config."""
    return [f"TrainDataset.dataset_dir={dataset_dir}", "TrainDataset.num_images=8",
            f"EvalDataset.dataset_dir={dataset_dir}", "EvalDataset.num_images=4", "epoch=1", "snapshot_epoch=1",
            "TrainReader.batch_size=4", "EvalReader.batch_size=4", "width_mult=0.125", "log_iter=1",
            # a 2-iteration model scores every box near its 0.01 prior: keep some for the comparisons
            "PPYOLOEHead.nms.score_threshold=0.001", "PPYOLOEHead.nms.keep_top_k=20"]


def run_tool(tool, *args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, os.path.join(TOOLS, tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train the tiny model once with tools/train.py --eval; returns (workdir, overrides, weights)."""
    work = tmp_path_factory.mktemp("tools")
    overrides = tiny_overrides(work / "dataset")
    proc = run_tool("train.py", "-c", CONFIG, "--eval", "--output_dir", str(work / "out"), "-o", *overrides,
                    cwd=work)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    weights = work / "out" / "quickstart_tal" / "model_final"
    return work, overrides, str(weights), proc.stdout + proc.stderr


@pytest.mark.slow
def test_train_writes_weights_and_prints_final_coco_metrics(trained):
    _, _, weights, log = trained
    assert os.path.isfile(weights + ".pdparams")
    assert "final COCO bbox mAP(0.50:0.95) = " in log and "AP50 = " in log
    assert "eta:" in log  # progress line with ETA


def noise_in(text):
    """The known noise lines (compat.quiet) found in a tool's output."""
    return [line for line in text.splitlines() if quiet.TYPE_PROMOTION in line or quiet.PIR_OUT_TENSOR in line
            or line.startswith(quiet.PYCOCOTOOLS_LINES)
            or any(p in line for prefixes in quiet.PPDET_LOG_LINES.values() for p in prefixes)]


@pytest.mark.slow
def test_train_prints_one_line_per_evaluation_and_no_known_noise(trained):
    log = trained[3]
    assert noise_in(log) == []
    evals = [line for line in log.splitlines() if line.startswith("ppassign: eval after epoch ")]
    assert len(evals) == 1 and evals[0].startswith("ppassign: eval after epoch 1/1 (4 images): COCO bbox mAP")


@pytest.mark.slow
def test_export_tool_prints_no_pir_or_type_promotion_warning(trained):
    work, overrides, weights, _ = trained
    proc = run_tool("export_model.py", "-c", CONFIG, "--output_dir", str(work / "inference_tool"), "-o", *overrides,
                    f"weights={weights}", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert noise_in(proc.stdout + proc.stderr) == []
    assert "ppassign: exported inference model to" in proc.stdout


@pytest.mark.slow
def test_verbose_brings_back_what_the_tools_drop(trained):
    work, overrides, weights, _ = trained
    proc = run_tool("eval.py", "-c", CONFIG, "--verbose", "-o", *overrides, f"weights={weights}", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loading annotations into memory..." in proc.stdout and " Average Precision  (AP) @[" in proc.stdout
    assert "Total sample number: " in proc.stdout
    quiet_proc = run_tool("eval.py", "-c", CONFIG, "-o", *overrides, f"weights={weights}", cwd=work)
    assert noise_in(quiet_proc.stdout + quiet_proc.stderr) == []
    assert quiet_proc.stdout.strip().splitlines()[-1].startswith("ppassign: COCO bbox mAP(0.50:0.95) = ")


@pytest.mark.slow
def test_eval_returns_coco_metrics(trained):
    work, overrides, weights, _ = trained
    metrics = evaluate.evaluate(CONFIG, overrides + [f"weights={weights}"])
    assert set(metrics) >= {"mAP", "AP50", "AP75", "stats"}
    assert len(metrics["stats"]) == 12
    assert 0.0 <= metrics["mAP"] <= metrics["AP50"] <= 1.0


@pytest.mark.slow
def test_export_then_inference_matches_dygraph(trained):
    work, overrides, weights, _ = trained
    model_dir = export.export(CONFIG, overrides + [f"weights={weights}"], output_dir=str(work / "inference"))
    files = set(os.listdir(model_dir))
    assert "model.pdiparams" in files and "infer_cfg.yml" in files
    assert files & {"model.json", "model.pdmodel"}
    image_dir, _ = config.load_config(CONFIG, overrides)["EvalDataset"].generate()
    image = predict.read_image(os.path.join(image_dir, "000000.png"))
    exported = predict.ExportedPredictor(model_dir).predict(image)
    dygraph = predict.DygraphPredictor(CONFIG, overrides + [f"weights={weights}"]).predict(image)
    assert exported.ndim == 2 and exported.shape[1] == 6 and len(exported) > 0
    assert exported.shape == dygraph.shape
    np.testing.assert_allclose(exported, dygraph, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_infer_from_weights_and_from_exported_model_write_images_and_json(trained):
    work, overrides, weights, _ = trained
    model_dir = os.path.join(work, "inference", "quickstart_tal")
    if not os.path.isdir(model_dir):
        export.export(CONFIG, overrides + [f"weights={weights}"], output_dir=str(work / "inference"))
    image = os.path.join(work, "dataset", "images", "val", "000001.png")
    out1 = work / "infer_weights"
    proc = run_tool("infer.py", "-c", CONFIG, "--infer_img", image, "--output_dir", str(out1),
                    "--draw_threshold", "0.0", "-o", *overrides, f"weights={weights}", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out2 = work / "infer_exported"
    predict.infer(model_dir=model_dir, infer_dir=os.path.dirname(image), output_dir=str(out2), draw_threshold=0.0)
    for out, count in ((out1, 1), (out2, 4)):
        assert len([f for f in os.listdir(out) if f.endswith(".png")]) == count
        detections = json.load(open(out / "detections.json"))
        assert detections and set(detections[0]) == {"image", "category_id", "category", "score", "bbox"}
        assert len(detections[0]["bbox"]) == 4


@pytest.mark.slow
def test_infer_writes_to_output_infer_by_name_by_default_with_boxes_inside_the_image(trained, monkeypatch):
    work, overrides, weights, _ = trained
    model_dir = os.path.join(work, "inference", "quickstart_tal")
    if not os.path.isdir(model_dir):
        export.export(CONFIG, overrides + [f"weights={weights}"], output_dir=str(work / "inference"))
    image_dir = os.path.join(work, "dataset", "images", "val")
    monkeypatch.chdir(work / "inference")
    from_weights = predict.infer(CONFIG, overrides + [f"weights={weights}"], infer_dir=image_dir, draw_threshold=0.0)
    from_model = predict.infer(model_dir=model_dir, infer_dir=image_dir, draw_threshold=0.0)
    assert sorted(os.listdir(work / "inference" / "output" / "infer")) == ["quickstart_tal"]  # both: same name
    assert "detections.json" in os.listdir(work / "inference" / "output" / "infer" / "quickstart_tal")
    size = predict.read_image(os.path.join(image_dir, "000000.png")).shape[:2]
    for detections in (from_weights, from_model):
        boxes = np.array([d["bbox"] for d in detections])
        assert len(boxes) and (boxes >= 0).all() and (boxes[:, [0, 2]] <= size[1]).all()
        assert (boxes[:, [1, 3]] <= size[0]).all()


def test_boxes_are_clipped_to_the_image_and_boxes_outside_it_dropped():
    rows = np.array([[0, 0.9, -118.9, 74.3, 134.8, 243.7],   # a short-trained model's box on a 244x164 image
                     [1, 0.8, 250.0, 10.0, 300.0, 20.0],     # wholly right of the image
                     [2, 0.7, 10.0, 10.0, 20.0, 20.0]], np.float32)
    clipped = predict.clip_to_image(rows, height=164, width=244)
    np.testing.assert_allclose(clipped, [[0, 0.9, 0.0, 74.3, 134.8, 164.0], [2, 0.7, 10.0, 10.0, 20.0, 20.0]],
                               rtol=1e-6)


# --------------------------------------------------------------------------------------- clear errors

def test_tool_error_is_one_line_without_stack_trace(tmp_path):
    proc = run_tool("eval.py", "-c", str(tmp_path / "missing.yml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: config file not found")
    assert "Traceback" not in proc.stderr


def test_corrupt_config_is_reported(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("architecture: [unclosed\n  - x: :\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        config.load_config(str(bad))


def test_unknown_module_name_in_config_is_reported(tmp_path):
    bad = tmp_path / "unknown.yml"
    bad.write_text(f"_BASE_: ['{CONFIG}']\nPPYOLOEHead:\n  assigner:\n    name: NoSuchAssigner\n")
    with pytest.raises(PipelineError, match="unknown module name 'NoSuchAssigner'"):
        config.load_config(str(bad))


def test_unknown_architecture_is_reported(tmp_path):
    with pytest.raises(PipelineError, match="unknown module name 'NoSuchArch'"):
        config.load_config(CONFIG, ["architecture=NoSuchArch"])


@pytest.mark.slow
def test_weights_that_do_not_match_the_config_are_reported(trained):
    _, overrides, weights, _ = trained
    wider = [o for o in overrides if not o.startswith("width_mult")] + ["width_mult=0.25"]
    with pytest.raises(PipelineError, match="do not match the config"):
        predict.DygraphPredictor(CONFIG, wider + [f"weights={weights}"])


def test_missing_weights_file_is_reported(tmp_path):
    with pytest.raises(PipelineError, match="weights file not found"):
        evaluate.evaluate(CONFIG, tiny_overrides(tmp_path) + [f"weights={tmp_path / 'nothing'}"])


def test_empty_image_folder_is_reported(tmp_path):
    with pytest.raises(PipelineError, match="no images"):
        predict.infer(model_dir=str(tmp_path), infer_dir=str(tmp_path))


def test_override_without_equals_is_reported():
    with pytest.raises(PipelineError, match="key=value"):
        config.parse_overrides(["epoch"])


def test_override_in_exponent_notation_is_a_number_not_a_string():
    assert config.parse_overrides(["LearningRate.base_lr=1e-3", "a=5E4", "b=-2.5e+1", "c=1.0e-2"]) == [
        (["LearningRate", "base_lr"], 0.001), (["a"], 50000.0), (["b"], -25.0), (["c"], 0.01)]
    assert config.parse_overrides(["name=e5", "v=1e", "w='1e-3'"]) == [(["name"], "e5"), (["v"], "1e"),
                                                                     (["w"], "1e-3")]


def test_config_file_number_in_exponent_notation_is_a_number(tmp_path):
    path = tmp_path / "lr.yml"
    path.write_text(f"_BASE_: [{CONFIG}]\n"
                    "LearningRate:\n  base_lr: 1e-3\n  schedulers:\n    - !PiecewiseDecay\n"
                    "      gamma: 1E-1\n      milestones: [8]\n"
                    "OptimizerBuilder:\n  optimizer: {type: AdamW, weight_decay: 5.0e-2}\n"
                    "note: '1e-3'\n")
    cfg = config.load_config(str(path))
    assert cfg["LearningRate"]["base_lr"] == 0.001
    assert cfg["LearningRate"]["schedulers"][0].gamma == [0.1]  # PiecewiseDecay keeps a list
    assert cfg["OptimizerBuilder"]["optimizer"]["weight_decay"] == 0.05
    assert cfg["note"] == "1e-3"  # quoted: a string


def test_config_loading_leaves_pyyaml_as_it_was(tmp_path):
    config.load_config(CONFIG)
    assert yaml.load("a: 1e-3", Loader=yaml.Loader) == {"a": "1e-3"}


def test_override_ppdet_assigners_switches_yaml_names():
    from ppdet.core.workspace import global_config
    from ppassign import plugin
    try:
        config.load_config(CONFIG, override_ppdet_assigners=True)
        cls = global_config["ATSSAssigner"].pymodule.ATSSAssigner
        assert cls.__module__.startswith("ppassign")
    finally:
        plugin.restore_ppdet_names()


# ------------------------------------------------------------------------------------- config handling

def test_name_form_dataset_sections_become_dataset_objects(tmp_path):
    cfg_file = tmp_path / "named.yml"
    cfg_file.write_text(f"_BASE_: ['{CONFIG}']\nTestDataset:\n  name: ImageFolder\n  anno_path: x.json\n")
    cfg = config.load_config(str(cfg_file))
    from ppdet.data.source.dataset import ImageFolder
    assert isinstance(cfg["TestDataset"], ImageFolder) and cfg["TestDataset"].anno_path == "x.json"


def test_unknown_dataset_name_is_reported(tmp_path):
    cfg_file = tmp_path / "named.yml"
    cfg_file.write_text(f"_BASE_: ['{CONFIG}']\nTestDataset:\n  name: NoSuchDataSet\n")
    with pytest.raises(PipelineError, match="unknown module name 'NoSuchDataSet'"):
        config.load_config(str(cfg_file))


def test_second_config_in_one_process_starts_clean(tmp_path):
    cfg = config.load_config(CONFIG, ["epoch=3", "PPYOLOEHead.nms.score_threshold=0.2"])
    assert cfg.epoch == 3
    cfg_file = tmp_path / "named.yml"
    cfg_file.write_text(f"_BASE_: ['{CONFIG}']\nTestDataset:\n  name: ImageFolder\n")
    cfg = config.load_config(str(cfg_file))
    assert cfg.epoch != 3 and cfg["PPYOLOEHead"]["nms"]["score_threshold"] != 0.2
    from ppdet.core.workspace import global_config
    assert hasattr(global_config["SyntheticCOCODataSet"], "pymodule")


def test_dataset_fields_can_be_overridden():
    cfg = config.load_config(CONFIG, ["TrainDataset.num_images=3", "EvalDataset.split=holdout"])
    assert cfg["TrainDataset"].num_images == 3 and cfg["EvalDataset"].split == "holdout"


def test_preprocess_pads_to_stride_like_padbatch():
    image = np.zeros((50, 70, 3), np.uint8)
    reader = {"sample_transforms": [{"Decode": {}}, {"Permute": {}}], "batch_transforms": [{"PadBatch": {"pad_to_stride": 32}}]}
    inputs = predict.preprocess(image, predict.test_transforms(reader))
    assert inputs["image"].shape == (1, 3, 64, 96)
    assert inputs["im_shape"].tolist() == [[50, 70]]
